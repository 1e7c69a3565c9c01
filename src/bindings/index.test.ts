import { describe, expect, it } from "vitest";
import type { ThingDescription } from "../core/index.js";
import { CoapBinding, HttpBinding, MqttBinding, SnmpBinding, createBindings, targetFor } from "./index.js";

const td: ThingDescription = {
  "@context": "https://www.w3.org/2022/wot/td/v1.1",
  id: "urn:test:plug",
  title: "Plug",
  securityDefinitions: { nosec_sc: { scheme: "nosec" } },
  security: "nosec_sc",
  properties: {
    on: {
      type: "boolean",
      forms: [
        { href: "coap://plug.example/on" },
        { href: "mqtt://broker.example/plug/on" },
        { href: "https://plug.example/on" },
      ],
    },
  },
};

describe("createBindings", () => {
  it("keys the HTTP, MQTT, CoAP and SNMP bindings by their schemes, and picks forms it can serve", async () => {
    const bindings = createBindings();
    try {
      expect([...bindings.byScheme.keys()].sort()).toEqual([
        "coap",
        "http",
        "https",
        "mqtt",
        "mqtts",
        "snmp",
      ]);
      expect(bindings.byScheme.get("https")).toBeInstanceOf(HttpBinding);
      expect(bindings.byScheme.get("mqtts")).toBeInstanceOf(MqttBinding);
      expect(bindings.byScheme.get("coap")).toBeInstanceOf(CoapBinding);
      expect(bindings.byScheme.get("snmp")).toBeInstanceOf(SnmpBinding);
      const target = targetFor(td, {
        op: "readproperty",
        affordance: { kind: "property", name: "on" },
        schemes: bindings.schemes,
      });
      expect(target.href).toBe("coap://plug.example/on");
      expect(bindings.bindingFor(target)).toBe(bindings.byScheme.get("coap"));
    } finally {
      await bindings.close();
    }
  });
  it("leaves out a binding set to false", async () => {
    const bindings = createBindings({ mqtt: false, coap: false, snmp: false });
    try {
      expect(bindings.schemes).toEqual(["http", "https"]);
      const target = targetFor(td, {
        op: "readproperty",
        affordance: { kind: "property", name: "on" },
        schemes: bindings.schemes,
      });
      expect(bindings.bindingFor(target)).toBeInstanceOf(HttpBinding);
    } finally {
      await bindings.close();
    }
  });
});
