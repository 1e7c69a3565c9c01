import { describe, expect, it } from "vitest";
import { deliveryOf } from "./change.js";

describe("deliveryOf", () => {
  const reported = (via?: string) => ({
    kind: "reported" as const,
    cause: { actor: "a", ...(via && { via }) },
  });

  it("says a read:<scheme> value was read by the hub, a plain scheme's pushed by the device", () => {
    expect(deliveryOf(reported("read:http"))).toBe("read by the hub over HTTP");
    expect(deliveryOf(reported("read:coap"))).toBe("read by the hub over COAP");
    expect(deliveryOf(reported("mqtt"))).toBe("pushed by the device over MQTT");
    expect(deliveryOf(reported("snmp"))).toBe("pushed by the device over SNMP");
  });

  it("says nothing for a surface that is no device protocol, no via, or another kind", () => {
    expect(deliveryOf(reported("cli"))).toBeUndefined();
    expect(deliveryOf(reported())).toBeUndefined();
    expect(deliveryOf({ kind: "desired", cause: { actor: "a", via: "read:http" } })).toBeUndefined();
  });
});
