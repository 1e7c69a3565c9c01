// Home Assistant MQTT discovery messages as Thing Descriptions: a config payload on
// `{prefix}/{component}/[{node}/]{object}/config` (or a device-based `{prefix}/device/{object}/config`
// with `cmps`) becomes a typed TD whose forms name the entity's MQTT topics. Pure.
// https://www.home-assistant.io/integrations/mqtt/#mqtt-discovery
import { ValidationError } from "./errors.js";
import {
  DescriptionProblems,
  MQTT_DEVICE_CONTEXT,
  isObject,
  mqttForm,
  mqttSecurity,
  optionalString,
  pointerToken,
  type MqttDeviceContext,
} from "./mqtt-device.js";
import type {
  ActionAffordance,
  DataSchema,
  EventAffordance,
  Form,
  PropertyAffordance,
  RegisteredThingDescription,
} from "./thing-description.js";

export interface HomeAssistantTopic {
  readonly component: string;
  readonly node?: string;
  readonly object: string;
}

// Home Assistant: component, node_id and object_id are [a-zA-Z0-9_-]+.
const HA_ID = /^[A-Za-z0-9_-]{1,128}$/;
/** Bounds on one announcement, so that a device cannot make a TD of any size. */
export const HOME_ASSISTANT_LIMITS = {
  components: 64,
  topicLength: 512,
  /**
   * Entities (Things) one node may register with its announcer password: each is a TD in the
   * directory and observed topics, and an announcer is otherwise confined to its own node.
   */
  entitiesPerNode: 500,
} as const;

/** Splits a discovery topic; undefined for topics that are not `…/config` discovery topics. */
export function parseHomeAssistantTopic(prefix: string, topic: string): HomeAssistantTopic | undefined {
  if (!topic.startsWith(`${prefix}/`) || !topic.endsWith("/config")) return undefined;
  const levels = topic.slice(prefix.length + 1, -"/config".length).split("/");
  if (!levels.every((level) => HA_ID.test(level))) return undefined;
  if (levels.length === 2) {
    const [component = "", object = ""] = levels;
    return { component, object };
  }
  if (levels.length === 3) {
    const [component = "", node = "", object = ""] = levels;
    return { component, node, object };
  }
  return undefined;
}

/** The Thing id of an announced entity (or device): stable across announcements. */
export function homeAssistantThingId(topic: HomeAssistantTopic): string {
  return [
    "urn:homeassistant",
    topic.component,
    ...(topic.node === undefined ? [] : [topic.node]),
    topic.object,
  ].join(":");
}

// The abbreviations Home Assistant accepts for the keys this code reads.
const ABBREVIATIONS: Record<string, string> = {
  stat_t: "state_topic",
  cmd_t: "command_topic",
  uniq_id: "unique_id",
  obj_id: "object_id",
  dev_cla: "device_class",
  unit_of_meas: "unit_of_measurement",
  stat_cla: "state_class",
  val_tpl: "value_template",
  pl_on: "payload_on",
  pl_off: "payload_off",
  stat_on: "state_on",
  stat_off: "state_off",
  pl_prs: "payload_press",
  ops: "options",
  dev: "device",
  t: "topic",
  stype: "subtype",
  pl: "payload",
  p: "platform",
  cmps: "components",
  o: "origin",
  ret: "retain",
  evt_typ: "event_types",
  json_attr_t: "json_attributes_topic",
  avty_t: "availability_topic",
  ids: "identifiers",
  mf: "manufacturer",
  mdl: "model",
  sw: "sw_version",
  min: "min",
  max: "max",
  step: "step",
  mode: "mode",
  schema: "schema",
};

/** The config with abbreviated keys expanded and `~` put in topics (HA: "~" base topic). */
function expand(config: Record<string, unknown>, base: string | undefined): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(config)) {
    // "__proto__" (an own member after JSON.parse) would set the result's prototype, and every
    // member read from it after would be the announcement's: it is no configuration member.
    if (key === "~" || key === "__proto__") continue;
    const name = Object.hasOwn(ABBREVIATIONS, key) ? (ABBREVIATIONS[key] ?? key) : key;
    let expanded = value;
    if (typeof value === "string" && base !== undefined && (name.endsWith("topic") || name === "topic")) {
      if (value.startsWith("~")) expanded = base + value.slice(1);
      else if (value.endsWith("~")) expanded = value.slice(0, -1) + base;
    }
    if (name === "device" && isObject(value)) {
      const device: Record<string, unknown> = {};
      for (const [k, v] of Object.entries(value)) {
        if (k !== "__proto__") device[Object.hasOwn(ABBREVIATIONS, k) ? (ABBREVIATIONS[k] ?? k) : k] = v;
      }
      expanded = device;
    }
    out[name] = expanded;
  }
  return out;
}

// Device classes of sensors whose state is a number (HA SensorDeviceClass, the numeric ones).
const NUMERIC_SENSOR_CLASSES = new Set([
  "apparent_power",
  "aqi",
  "atmospheric_pressure",
  "battery",
  "carbon_dioxide",
  "carbon_monoxide",
  "current",
  "data_rate",
  "data_size",
  "distance",
  "duration",
  "energy",
  "frequency",
  "gas",
  "humidity",
  "illuminance",
  "irradiance",
  "moisture",
  "monetary",
  "power",
  "power_factor",
  "precipitation",
  "pressure",
  "signal_strength",
  "sound_pressure",
  "speed",
  "temperature",
  "voltage",
  "volume",
  "weight",
  "wind_speed",
]);

interface Affordances {
  properties: Record<string, PropertyAffordance>;
  actions: Record<string, ActionAffordance>;
  events: Record<string, EventAffordance>;
}

function topicOf(
  config: Record<string, unknown>,
  key: string,
  pointer: string,
  problems: DescriptionProblems,
  confinedTo: MqttDeviceContext["confinedTo"],
): string | undefined {
  const value = config[key];
  if (value === undefined) return undefined;
  if (typeof value === "string" && value.length > HOME_ASSISTANT_LIMITS.topicLength) {
    problems.add(`${pointer}/${key}`, `must be at most ${HOME_ASSISTANT_LIMITS.topicLength} characters long`);
    return undefined;
  }
  if (typeof value !== "string" || value === "" || /[+#\0]/.test(value)) {
    problems.add(`${pointer}/${key}`, "must be an MQTT topic name (no wildcards)");
    return undefined;
  }
  if (confinedTo !== undefined && !confinedTo.includes(value)) {
    problems.add(
      `${pointer}/${key}`,
      `must be a topic this device may publish to (${confinedTo.filters.join(", ")}), not ${value}: the hub reads and writes it for the device`,
    );
    return undefined;
  }
  return value;
}

function payloadText(value: unknown, fallback: string): string {
  return typeof value === "string" || typeof value === "number" || typeof value === "boolean"
    ? String(value)
    : fallback;
}

function qosTerm(config: Record<string, unknown>): Record<string, string> {
  const qos = config.qos;
  return qos === 1 || qos === 2 ? { "mqv:qos": String(qos) } : {};
}

/** The affordances of one entity, named `{prefix}{name}`. */
function entityAffordances(
  component: string,
  config: Record<string, unknown>,
  pointer: string,
  names: { prefix: string },
  context: MqttDeviceContext,
  problems: DescriptionProblems,
  into: Affordances,
): void {
  const state = topicOf(config, "state_topic", pointer, problems, context.confinedTo);
  const command = topicOf(config, "command_topic", pointer, problems, context.confinedTo);
  const title = optionalString(config.name ?? undefined, `${pointer}/name`, problems);
  const deviceClass = optionalString(config.device_class, `${pointer}/device_class`, problems);
  const unit = optionalString(config.unit_of_measurement, `${pointer}/unit_of_measurement`, problems);
  const hasTemplate = config.value_template !== undefined;
  const types = [`ha:${component}`, ...(deviceClass === undefined ? [] : [`ha:${component}.${deviceClass}`])];
  const qos = qosTerm(config);
  const describe = { "@type": types, ...(title === undefined ? {} : { title }) };

  const property = (name: string, schema: DataSchema, contentType: string): void => {
    const forms: Form[] = [];
    if (state !== undefined) {
      forms.push(
        mqttForm(context.broker, state, {
          op: ["readproperty", "observeproperty", "unobserveproperty"],
          contentType,
          ...qos,
        }),
      );
    }
    if (command !== undefined) {
      forms.push(mqttForm(context.broker, command, { op: "writeproperty", contentType, ...qos }));
    }
    if (forms.length === 0) return;
    into.properties[`${names.prefix}${name}`] = {
      ...schema,
      ...describe,
      ...(unit === undefined ? {} : { unit }),
      ...(state === undefined ? { writeOnly: true } : { observable: true }),
      readOnly: command === undefined,
      forms,
    };
  };
  const onOff = (): DataSchema => {
    const values = [
      payloadText(config.state_on, payloadText(config.payload_on, "ON")),
      payloadText(config.state_off, payloadText(config.payload_off, "OFF")),
      payloadText(config.payload_on, "ON"),
      payloadText(config.payload_off, "OFF"),
    ];
    return { type: "string", enum: [...new Set(values)] };
  };

  switch (component) {
    case "sensor": {
      const numeric =
        unit !== undefined ||
        config.state_class !== undefined ||
        (deviceClass !== undefined && NUMERIC_SENSOR_CLASSES.has(deviceClass));
      if (hasTemplate) property("state", {}, "application/json");
      else if (numeric) property("state", { type: "number" }, "application/json");
      else property("state", { type: "string" }, "text/plain");
      break;
    }
    case "binary_sensor":
    case "switch":
    case "fan":
    case "siren":
    case "humidifier":
      property("state", hasTemplate ? {} : onOff(), hasTemplate ? "application/json" : "text/plain");
      break;
    case "light":
      if (config.schema === "json") property("state", { type: "object" }, "application/json");
      else property("state", hasTemplate ? {} : onOff(), hasTemplate ? "application/json" : "text/plain");
      break;
    case "number": {
      const schema: DataSchema = { type: "number" };
      for (const key of ["min", "max", "step"] as const) {
        const value = config[key];
        if (value === undefined) continue;
        if (typeof value !== "number" || !Number.isFinite(value))
          problems.add(`${pointer}/${key}`, "must be a number");
        else if (key === "min") schema.minimum = value;
        else if (key === "max") schema.maximum = value;
      }
      property("value", schema, "application/json");
      break;
    }
    case "select": {
      const options = config.options;
      if (!Array.isArray(options) || options.length === 0 || !options.every((o) => typeof o === "string")) {
        problems.add(`${pointer}/options`, "must be a non-empty array of strings");
        break;
      }
      property("option", { type: "string", enum: [...new Set(options)] }, "text/plain");
      break;
    }
    case "text":
      property("text", { type: "string" }, "text/plain");
      break;
    case "button":
    case "scene": {
      if (command === undefined) {
        // A topic given but refused is named once, by why (topicOf).
        if (config.command_topic === undefined)
          problems.add(`${pointer}/command_topic`, `is required for a ${component}`);
        break;
      }
      const payload =
        component === "button"
          ? payloadText(config.payload_press, "PRESS")
          : payloadText(config.payload_on, "ON");
      into.actions[`${names.prefix}${component === "button" ? "press" : "activate"}`] = {
        ...describe,
        input: { type: "string", const: payload, default: payload },
        forms: [mqttForm(context.broker, command, { op: "invokeaction", contentType: "text/plain", ...qos })],
      };
      break;
    }
    case "device_trigger": {
      const topic = topicOf(config, "topic", pointer, problems, context.confinedTo);
      if (topic === undefined) {
        if (config.topic === undefined) problems.add(`${pointer}/topic`, "is required for a device_trigger");
        break;
      }
      const kind = optionalString(config.type, `${pointer}/type`, problems);
      const subtype = optionalString(config.subtype, `${pointer}/subtype`, problems);
      const name = [kind, subtype].filter((part) => part !== undefined).join("_") || "trigger";
      into.events[`${names.prefix}${name}`] = {
        ...describe,
        data: { type: "string" },
        forms: [mqttForm(context.broker, topic, { op: "subscribeevent", contentType: "text/plain", ...qos })],
      };
      break;
    }
    case "event":
      if (state === undefined) {
        if (config.state_topic === undefined)
          problems.add(`${pointer}/state_topic`, "is required for an event");
        break;
      }
      into.events[`${names.prefix}event`] = {
        ...describe,
        data: {},
        forms: [
          mqttForm(context.broker, state, { op: "subscribeevent", contentType: "application/json", ...qos }),
        ],
      };
      break;
    default:
      // Any other component (climate, cover, lock, vacuum, …): its main state and command.
      property("state", {}, "application/json");
  }
}

/**
 * The TD of an entity (or a device, for `{prefix}/device/{object}/config`) from its discovery
 * config payload (already parsed JSON). Throws a ValidationError naming every problem by pointer.
 */
export function homeAssistantThingDescription(
  topic: HomeAssistantTopic,
  payload: unknown,
  context: MqttDeviceContext,
): RegisteredThingDescription {
  const problems = new DescriptionProblems(
    `The Home Assistant discovery config of ${topic.component} "${topic.object}"`,
  );
  if (!isObject(payload)) {
    throw new ValidationError(
      `The Home Assistant discovery config of "${topic.object}" is not a JSON object`,
      [{ pointer: "", message: "must be an object" }],
    );
  }
  const base = optionalString(payload["~"], "/~", problems, HOME_ASSISTANT_LIMITS.topicLength);
  const config = expand(payload, base);
  const device = isObject(config.device) ? config.device : undefined;
  const into: Affordances = { properties: {}, actions: {}, events: {} };
  const types: string[] = [];
  if (topic.component === "device") {
    const components = config.components;
    if (!isObject(components) || Object.keys(components).length === 0) {
      problems.add("/cmps", "must be an object of components by id");
    } else {
      const ids = Object.keys(components);
      if (ids.length > HOME_ASSISTANT_LIMITS.components) {
        problems.add("/cmps", `has more than ${HOME_ASSISTANT_LIMITS.components} components`);
      }
      for (const id of ids.slice(0, HOME_ASSISTANT_LIMITS.components)) {
        const pointer = `/cmps/${pointerToken(id)}`;
        const raw = components[id];
        if (!HA_ID.test(id) || !isObject(raw)) {
          problems.add(pointer, "must be an object, under an id of letters, digits, _ and -");
          continue;
        }
        const entity = expand(raw, base);
        const platform = entity.platform;
        if (typeof platform !== "string" || !HA_ID.test(platform)) {
          problems.add(`${pointer}/p`, "must name the component (sensor, switch, …)");
          continue;
        }
        types.push(`ha:${platform}`);
        entityAffordances(platform, entity, pointer, { prefix: `${id}_` }, context, problems, into);
      }
    }
  } else {
    types.push(`ha:${topic.component}`);
    entityAffordances(topic.component, config, "", { prefix: "" }, context, problems, into);
  }
  const title =
    optionalString(config.name ?? undefined, "/name", problems) ??
    (device === undefined ? undefined : optionalString(device.name, "/dev/name", problems));
  const uniqueId = optionalString(config.unique_id, "/uniq_id", problems);
  problems.throwIfAny();
  const deviceInfo: Record<string, unknown> = {};
  if (device !== undefined) {
    for (const key of ["manufacturer", "model", "sw_version", "name"] as const) {
      const value = device[key];
      if (typeof value === "string" && value.length <= 256) deviceInfo[`ha:${key}`] = value;
    }
  }
  return {
    "@context": [...MQTT_DEVICE_CONTEXT],
    "@type": ["ha:Entity", ...new Set(types)],
    id: homeAssistantThingId(topic),
    title: title ?? topic.object,
    "ha:component": topic.component,
    ...(uniqueId === undefined ? {} : { "ha:unique_id": uniqueId }),
    ...deviceInfo,
    ...mqttSecurity(context),
    ...(Object.keys(into.properties).length > 0 ? { properties: into.properties } : {}),
    ...(Object.keys(into.actions).length > 0 ? { actions: into.actions } : {}),
    ...(Object.keys(into.events).length > 0 ? { events: into.events } : {}),
  };
}
