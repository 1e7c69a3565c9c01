// Homie 5 descriptions to TDs: every valid description gives a valid TD whose forms name the
// device's topics; nonsense gives a ValidationError with pointers, never another exception.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ValidationError } from "./errors.js";
import { homieAffordanceName, homieThingDescription, homieThingId, parseHomieTopic } from "./homie.js";
import { validateThingDescription } from "./thing-description-validation.js";

const context = { broker: "mqtt://127.0.0.1:1883" };
const homieId = fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,15}$/);

const property = fc.oneof(
  fc.record(
    {
      datatype: fc.constantFrom("integer", "float"),
      format: fc.constantFrom("0:100", "-10:10:0.5", ":5", "1:"),
      settable: fc.boolean(),
      retained: fc.boolean(),
      unit: fc.constantFrom("°C", "%", "W"),
      name: fc.string({ maxLength: 20 }),
    },
    { requiredKeys: ["datatype"] },
  ),
  fc.record(
    {
      datatype: fc.constantFrom("boolean", "string", "datetime", "duration", "json", "color"),
      settable: fc.boolean(),
      retained: fc.boolean(),
    },
    { requiredKeys: ["datatype"] },
  ),
  fc.record({
    datatype: fc.constant("enum"),
    format: fc
      .array(fc.stringMatching(/^[a-z]{1,6}$/), { minLength: 1, maxLength: 4 })
      .map((v) => v.join(",")),
    settable: fc.boolean(),
  }),
);

const description = fc.record(
  {
    homie: fc.constantFrom("5.0", "5.1"),
    version: fc.integer(),
    name: fc.string({ maxLength: 30 }),
    type: fc.string({ maxLength: 20 }),
    nodes: fc.dictionary(
      homieId,
      fc.record(
        { name: fc.string({ maxLength: 20 }), properties: fc.dictionary(homieId, property, { maxKeys: 4 }) },
        { requiredKeys: ["properties"] },
      ),
      { maxKeys: 4 },
    ),
  },
  { requiredKeys: ["homie", "nodes"] },
);

describe("homieThingDescription", () => {
  it("makes a valid TD with one affordance and topic per described property", () => {
    fc.assert(
      fc.property(homieId, description, (device, desc) => {
        const td = homieThingDescription("homie", device, desc, context);
        expect(() => validateThingDescription(td)).not.toThrow();
        expect(td.id).toBe(homieThingId(device));
        for (const [nodeId, node] of Object.entries(desc.nodes)) {
          for (const [propId, prop] of Object.entries(node.properties)) {
            const name = homieAffordanceName(nodeId, propId);
            const topic = `homie/5/${device}/${nodeId}/${propId}`;
            const retained = ("retained" in prop ? prop.retained : undefined) ?? true;
            const affordance = retained ? td.properties?.[name] : td.events?.[name];
            expect(affordance?.forms[0]?.["mqv:topic"]).toBe(topic);
            const writes = affordance?.forms.find((f) => f.op === "writeproperty");
            expect(writes?.["mqv:topic"]).toBe(
              retained && prop.settable === true ? `${topic}/set` : undefined,
            );
          }
        }
      }),
    );
  });

  it("maps datatypes and formats to data schemas", () => {
    const td = homieThingDescription(
      "homie",
      "boiler",
      {
        homie: "5.0",
        name: "Boiler",
        nodes: {
          heater: {
            properties: {
              temperature: { datatype: "float", format: "10:90:0.5", unit: "°C", settable: true },
              mode: { datatype: "enum", format: "eco,comfort" },
              alarm: { datatype: "string", retained: false },
            },
          },
        },
      },
      context,
    );
    expect(td.title).toBe("Boiler");
    expect(td["@type"]).toEqual(["homie:Device"]);
    expect(td.properties?.heater_temperature).toMatchObject({
      type: "number",
      minimum: 10,
      maximum: 90,
      multipleOf: 0.5,
      unit: "°C",
      readOnly: false,
      observable: true,
    });
    expect(td.properties?.heater_mode).toMatchObject({
      type: "string",
      enum: ["eco", "comfort"],
      readOnly: true,
    });
    expect(td.properties?.heater_mode?.forms[0]?.contentType).toBe("text/plain");
    expect(td.events?.heater_alarm?.data).toEqual({ type: "string" });
  });

  it("refuses nonsense with a ValidationError, never another exception", () => {
    fc.assert(
      fc.property(homieId, fc.anything(), (device, nonsense) => {
        try {
          const td = homieThingDescription("homie", device, nonsense, context);
          expect(() => validateThingDescription(td)).not.toThrow();
        } catch (err) {
          expect(err).toBeInstanceOf(ValidationError);
        }
      }),
    );
  });

  it("names every problem by its JSON pointer", () => {
    const attempt = () =>
      homieThingDescription(
        "homie",
        "dev",
        { homie: "4.0", nodes: { Bad: {}, ok: { properties: { t: { datatype: "kelvin" } } } } },
        context,
      );
    expect(attempt).toThrow(ValidationError);
    try {
      attempt();
    } catch (err) {
      expect((err as ValidationError).errors.map((e) => e.pointer)).toEqual([
        "/homie",
        "/nodes/Bad",
        "/nodes/ok/properties/t/datatype",
      ]);
    }
  });
});

describe("parseHomieTopic", () => {
  it("finds the device of any topic under the root, and nothing elsewhere", () => {
    fc.assert(
      fc.property(
        homieId,
        fc.array(fc.stringMatching(/^[$a-z0-9-]{1,8}$/), { minLength: 1, maxLength: 3 }),
        (device, rest) => {
          expect(parseHomieTopic("homie", `homie/5/${device}/${rest.join("/")}`)).toEqual({ device, rest });
          expect(parseHomieTopic("homie", `homie/4/${device}/${rest.join("/")}`)).toBeUndefined();
          expect(parseHomieTopic("homie", `other/5/${device}/${rest.join("/")}`)).toBeUndefined();
        },
      ),
    );
  });
});
