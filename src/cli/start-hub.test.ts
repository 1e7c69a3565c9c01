import { describe, expect, it } from "vitest";
import { sameBroker } from "./start-hub.js";

describe("sameBroker", () => {
  it("takes two names of the loopback on one port for one broker, and nothing else", () => {
    expect(sameBroker("mqtt://127.0.0.1:41883", "mqtt://127.0.0.1:41883")).toBe(true);
    expect(sameBroker("mqtt://localhost:41883", "mqtt://127.0.0.1:41883")).toBe(true);
    expect(sameBroker("mqtt://[::1]:41883", "mqtt://127.0.0.1:41883")).toBe(true);
    expect(sameBroker("mqtt://broker.example:1883", "mqtt://broker.example")).toBe(true);
    expect(sameBroker("mqtt://127.0.0.1:41884", "mqtt://127.0.0.1:41883")).toBe(false);
    expect(sameBroker("mqtts://127.0.0.1:41883", "mqtt://127.0.0.1:41883")).toBe(false);
    expect(sameBroker("mqtt://10.0.0.5:1883", "mqtt://127.0.0.1:1883")).toBe(false);
    expect(sameBroker("not a url", "mqtt://127.0.0.1:1883")).toBe(false);
  });
});
