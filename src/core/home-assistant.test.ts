// Home Assistant discovery configs to TDs: valid configs give valid, typed TDs whose forms name
// the entity's topics; abbreviations and `~` are understood; nonsense gives a ValidationError.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ValidationError } from "./errors.js";
import {
  homeAssistantThingDescription,
  homeAssistantThingId,
  parseHomeAssistantTopic,
} from "./home-assistant.js";
import { validateThingDescription } from "./thing-description-validation.js";

const context = { broker: "mqtt://127.0.0.1:1883" };
const haId = fc.stringMatching(/^[A-Za-z0-9_-]{1,12}$/);
const topicName = fc.stringMatching(/^[a-z0-9]{1,8}(\/[a-z0-9]{1,8}){0,2}$/);

const entity = fc.record(
  {
    component: fc.constantFrom(
      "sensor",
      "binary_sensor",
      "switch",
      "light",
      "number",
      "select",
      "text",
      "button",
      "scene",
      "event",
      "climate",
    ),
    name: fc.string({ maxLength: 20 }),
    state_topic: topicName,
    command_topic: topicName,
    unit_of_measurement: fc.constantFrom("°C", "%"),
    device_class: fc.constantFrom("temperature", "door"),
    options: fc.array(fc.stringMatching(/^[a-z]{1,5}$/), { minLength: 1, maxLength: 3 }),
    min: fc.integer({ min: -10, max: 0 }),
    max: fc.integer({ min: 1, max: 100 }),
  },
  { requiredKeys: ["component", "state_topic", "command_topic", "options"] },
);

describe("homeAssistantThingDescription", () => {
  it("makes a valid TD, typed by component, for every well-formed entity", () => {
    fc.assert(
      fc.property(haId, entity, (object, { component, ...config }) => {
        const topic = { component, object };
        const td = homeAssistantThingDescription(topic, config, context);
        expect(() => validateThingDescription(td)).not.toThrow();
        expect(td.id).toBe(homeAssistantThingId(topic));
        expect(td["@type"]).toContain(`ha:${component}`);
        const topics = [
          ...Object.values(td.properties ?? {}),
          ...Object.values(td.actions ?? {}),
          ...Object.values(td.events ?? {}),
        ].flatMap((a) => a.forms.map((f) => f["mqv:topic"]));
        expect(topics.length).toBeGreaterThan(0);
        for (const t of topics) expect([config.state_topic, config.command_topic]).toContain(t);
      }),
    );
  });

  it("reads abbreviations and the ~ base topic", () => {
    const td = homeAssistantThingDescription(
      { component: "sensor", node: "garden", object: "temp" },
      {
        "~": "garden/sensor",
        name: "Garden temperature",
        stat_t: "~/state",
        unit_of_meas: "°C",
        dev_cla: "temperature",
        uniq_id: "garden-temp-1",
        dev: { ids: ["g1"], name: "Garden station", mf: "Acme" },
      },
      context,
    );
    expect(td.id).toBe("urn:homeassistant:sensor:garden:temp");
    expect(td.title).toBe("Garden temperature");
    expect(td["ha:manufacturer"]).toBe("Acme");
    expect(td.properties?.state).toMatchObject({
      type: "number",
      unit: "°C",
      readOnly: true,
      observable: true,
      "@type": ["ha:sensor", "ha:sensor.temperature"],
    });
    expect(td.properties?.state?.forms[0]?.["mqv:topic"]).toBe("garden/sensor/state");
  });

  it("takes a __proto__ member (own, after JSON.parse) for nothing, not as the config's prototype", () => {
    const config = JSON.parse(
      '{"__proto__": {"command_topic": "c/t6", "state_topic": "s/t6"}, "name": "q", "dev": {"__proto__": {"mf": "Evil"}, "constructor": "x"}}',
    ) as Record<string, unknown>;
    const bare = homeAssistantThingDescription({ component: "switch", object: "t6" }, config, context);
    expect(JSON.stringify(bare)).not.toMatch(/s\/t6|c\/t6|Evil/);
    const td = homeAssistantThingDescription(
      { component: "switch", object: "t7" },
      { ...config, state_topic: "s/t7", command_topic: "c/t7" },
      context,
    );
    expect(JSON.stringify(td)).not.toMatch(/s\/t6|c\/t6|Evil/);
  });

  it("makes one TD of a device-based config with its components", () => {
    const td = homeAssistantThingDescription(
      { component: "device", object: "plug1" },
      {
        dev: { ids: "plug1", name: "Plug" },
        o: { name: "firmware" },
        cmps: {
          relay: { p: "switch", stat_t: "plug1/relay", cmd_t: "plug1/relay/set" },
          power: { p: "sensor", stat_t: "plug1/power", unit_of_meas: "W" },
        },
      },
      context,
    );
    expect(() => validateThingDescription(td)).not.toThrow();
    expect(td.title).toBe("Plug");
    expect(Object.keys(td.properties ?? {}).sort()).toEqual(["power_state", "relay_state"]);
    expect(td.properties?.relay_state?.forms.map((f) => f["mqv:topic"])).toEqual([
      "plug1/relay",
      "plug1/relay/set",
    ]);
  });

  it("says a topic is too long when it is, and not that it has wildcards", () => {
    const long = (t: string) => () =>
      homeAssistantThingDescription(
        { component: "sensor", object: "long" },
        { "~": "x".repeat(500), stat_t: t },
        context,
      );
    try {
      long("~/state/of/the/garden")();
      expect.unreachable();
    } catch (err) {
      expect((err as ValidationError).errors).toContainEqual({
        pointer: "/state_topic",
        message: "must be at most 512 characters long",
      });
    }
    expect(long("a/+/state")).toThrow(ValidationError);
  });

  it("refuses nonsense with a ValidationError, never another exception", () => {
    fc.assert(
      fc.property(
        fc.constantFrom("sensor", "switch", "device", "button", "select"),
        haId,
        fc.anything(),
        (component, object, nonsense) => {
          try {
            const td = homeAssistantThingDescription({ component, object }, nonsense, context);
            expect(() => validateThingDescription(td)).not.toThrow();
          } catch (err) {
            expect(err).toBeInstanceOf(ValidationError);
          }
        },
      ),
    );
  });
});

describe("parseHomeAssistantTopic", () => {
  it("parses config topics with and without a node id", () => {
    fc.assert(
      fc.property(haId, fc.option(haId, { nil: undefined }), haId, (component, node, object) => {
        const topic = [
          "homeassistant",
          component,
          ...(node === undefined ? [] : [node]),
          object,
          "config",
        ].join("/");
        expect(parseHomeAssistantTopic("homeassistant", topic)).toEqual({
          component,
          ...(node === undefined ? {} : { node }),
          object,
        });
      }),
    );
    expect(parseHomeAssistantTopic("homeassistant", "homeassistant/sensor/x/state")).toBeUndefined();
    expect(parseHomeAssistantTopic("homeassistant", "homeassistant/a/b/c/d/config")).toBeUndefined();
  });
});
