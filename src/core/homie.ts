// Homie 5 devices as Thing Descriptions: a device's `$description` (Homie 5 §"Device
// description") becomes a typed TD whose forms name the device's MQTT topics (W3C WoT Binding
// Templates, MQTT: `mqv:topic`), so that the MQTT binding can observe and write it. Pure.
import { ValidationError } from "./errors.js";
import {
  DescriptionProblems,
  MQTT_DEVICE_CONTEXT,
  isObject,
  mqttForm,
  mqttSecurity,
  optionalBoolean,
  optionalString,
  pointerToken,
  type MqttDeviceContext,
} from "./mqtt-device.js";
import type {
  DataSchema,
  EventAffordance,
  Form,
  PropertyAffordance,
  RegisteredThingDescription,
} from "./thing-description.js";

/** The Homie major version this code understands: topics are `{root}/5/{device}/…`. */
export const HOMIE_VERSION = "5";

// Homie 5 §"Topic IDs": lower-case letters, digits and hyphens, not starting with a hyphen.
const HOMIE_ID = /^[a-z0-9][a-z0-9-]*$/;
const MAX_ID_LENGTH = 64;
/** Bounds on what one description may declare, so that a device cannot make a TD of any size. */
export const HOMIE_LIMITS = { nodes: 64, propertiesPerNode: 128, formatLength: 1024 } as const;

export interface HomieTopic {
  /** The device id. */
  readonly device: string;
  /** `$description`, `$state`, or a node and property path. */
  readonly rest: readonly string[];
}

/** Splits `{root}/5/{device}/…` into the device id and the rest; undefined for other topics. */
export function parseHomieTopic(root: string, topic: string): HomieTopic | undefined {
  const prefix = `${root}/${HOMIE_VERSION}/`;
  if (!topic.startsWith(prefix)) return undefined;
  const [device, ...rest] = topic.slice(prefix.length).split("/");
  if (device === undefined || !isHomieId(device) || rest.length === 0) return undefined;
  return { device, rest };
}

export function isHomieId(id: string): boolean {
  return id.length <= MAX_ID_LENGTH && HOMIE_ID.test(id);
}

/** The Thing id of a Homie device: stable, so that a device that comes back is the same Thing. */
export function homieThingId(device: string): string {
  return `urn:homie:${device}`;
}

/** Homie 5 datatypes and how their payloads travel: JSON-compatible text, or plain text. */
const DATATYPES = [
  "integer",
  "float",
  "boolean",
  "string",
  "enum",
  "color",
  "datetime",
  "duration",
  "json",
] as const;
type Datatype = (typeof DATATYPES)[number];

// `min:max[:step]` (Homie 5 §"Property attributes", format for integer and float); each part may be empty.
const RANGE = /^(-?[0-9.eE+-]*):(-?[0-9.eE+-]*)(?::([0-9.eE+-]*))?$/;

function numberOrUndefined(text: string | undefined): number | undefined {
  if (text === undefined || text === "") return undefined;
  const value = Number(text);
  return Number.isFinite(value) ? value : Number.NaN;
}

/** The data schema and payload content type of a Homie property. */
function schemaOf(
  datatype: Datatype,
  format: string | undefined,
  pointer: string,
  problems: DescriptionProblems,
): { schema: DataSchema; contentType: string } {
  const json = "application/json";
  const text = "text/plain";
  switch (datatype) {
    case "integer":
    case "float": {
      const schema: DataSchema = { type: datatype === "integer" ? "integer" : "number" };
      if (format !== undefined) {
        const match = RANGE.exec(format);
        const [min, max, step] = [match?.[1], match?.[2], match?.[3]].map(numberOrUndefined);
        if (!match || [min, max, step].some((n) => Number.isNaN(n))) {
          problems.add(`${pointer}/format`, 'must be "min:max" or "min:max:step" for a number');
        } else {
          if (min !== undefined) schema.minimum = min;
          if (max !== undefined) schema.maximum = max;
          if (min !== undefined && max !== undefined && min > max) {
            problems.add(`${pointer}/format`, "has a minimum above its maximum");
          }
          if (step !== undefined) {
            if (step <= 0) problems.add(`${pointer}/format`, "has a step that is not positive");
            else schema.multipleOf = step;
          }
        }
      }
      return { schema, contentType: json };
    }
    case "boolean":
      return { schema: { type: "boolean" }, contentType: json };
    case "string":
      return { schema: { type: "string" }, contentType: text };
    case "enum": {
      const values = format?.split(",") ?? [];
      if (format === undefined || values.some((v) => v === "")) {
        problems.add(`${pointer}/format`, "must list the enum's values, separated by commas");
      }
      return { schema: { type: "string", enum: [...new Set(values)] }, contentType: text };
    }
    case "color": {
      const models = (format ?? "rgb").split(",");
      if (!models.every((m) => m === "rgb" || m === "hsv" || m === "xyz")) {
        problems.add(`${pointer}/format`, "must list colour models out of rgb, hsv and xyz");
      }
      return { schema: { type: "string", "@type": "homie:Color" }, contentType: text };
    }
    case "datetime":
      return { schema: { type: "string", format: "date-time" }, contentType: text };
    case "duration":
      return { schema: { type: "string", "@type": "homie:Duration" }, contentType: text };
    case "json":
      return { schema: {}, contentType: json };
  }
}

/** The property and event names of a node's property in the TD: `{node}_{property}` (`_` is never in a Homie id). */
export function homieAffordanceName(node: string, property: string): string {
  return `${node}_${property}`;
}

/**
 * The TD of a Homie 5 device from its `$description` payload (already parsed JSON). Retained
 * properties become observable properties, non-retained ones events; settable ones get a
 * `writeproperty` form on `…/set`. Throws a ValidationError naming every problem by pointer.
 */
export function homieThingDescription(
  root: string,
  device: string,
  description: unknown,
  context: MqttDeviceContext,
): RegisteredThingDescription {
  const problems = new DescriptionProblems(`The Homie description of device "${device}"`);
  if (!isHomieId(device)) {
    throw new ValidationError(`"${device}" is not a Homie device id`, [
      { pointer: "", message: "a Homie id is lower-case letters, digits and hyphens" },
    ]);
  }
  if (!isObject(description)) {
    throw new ValidationError(`The Homie description of device "${device}" is not a JSON object`, [
      { pointer: "", message: "must be an object" },
    ]);
  }
  const homie = description.homie;
  if (typeof homie !== "string" || !/^5\.\d+$/.test(homie)) {
    problems.add("/homie", 'must be the Homie version, "5.x"');
  }
  const version = description.version;
  if (version !== undefined && !Number.isSafeInteger(version)) problems.add("/version", "must be an integer");
  const name = optionalString(description.name, "/name", problems);
  const type = optionalString(description.type, "/type", problems);
  const base = `${root}/${HOMIE_VERSION}/${device}`;
  const properties: Record<string, PropertyAffordance> = {};
  const events: Record<string, EventAffordance> = {};
  const nodes = description.nodes ?? {};
  if (!isObject(nodes)) problems.add("/nodes", "must be an object of nodes by id");
  else {
    const nodeIds = Object.keys(nodes);
    if (nodeIds.length > HOMIE_LIMITS.nodes)
      problems.add("/nodes", `has more than ${HOMIE_LIMITS.nodes} nodes`);
    for (const nodeId of nodeIds.slice(0, HOMIE_LIMITS.nodes)) {
      const nodePointer = `/nodes/${pointerToken(nodeId)}`;
      if (!isHomieId(nodeId)) {
        problems.add(nodePointer, "is not a Homie id (lower-case letters, digits and hyphens)");
        continue;
      }
      const node = nodes[nodeId];
      if (!isObject(node)) {
        problems.add(nodePointer, "must be an object");
        continue;
      }
      const nodeName = optionalString(node.name, `${nodePointer}/name`, problems);
      const nodeType = optionalString(node.type, `${nodePointer}/type`, problems);
      const props = node.properties ?? {};
      if (!isObject(props)) {
        problems.add(`${nodePointer}/properties`, "must be an object of properties by id");
        continue;
      }
      const propIds = Object.keys(props);
      if (propIds.length > HOMIE_LIMITS.propertiesPerNode) {
        problems.add(
          `${nodePointer}/properties`,
          `has more than ${HOMIE_LIMITS.propertiesPerNode} properties`,
        );
      }
      for (const propId of propIds.slice(0, HOMIE_LIMITS.propertiesPerNode)) {
        const pointer = `${nodePointer}/properties/${pointerToken(propId)}`;
        if (!isHomieId(propId)) {
          problems.add(pointer, "is not a Homie id (lower-case letters, digits and hyphens)");
          continue;
        }
        const prop = props[propId];
        if (!isObject(prop)) {
          problems.add(pointer, "must be an object");
          continue;
        }
        const datatype = prop.datatype;
        if (typeof datatype !== "string" || !(DATATYPES as readonly string[]).includes(datatype)) {
          problems.add(`${pointer}/datatype`, `must be one of ${DATATYPES.join(", ")}`);
          continue;
        }
        const format = optionalString(prop.format, `${pointer}/format`, problems, HOMIE_LIMITS.formatLength);
        const settable = optionalBoolean(prop.settable, `${pointer}/settable`, problems) ?? false;
        const retained = optionalBoolean(prop.retained, `${pointer}/retained`, problems) ?? true;
        const unit = optionalString(prop.unit, `${pointer}/unit`, problems);
        const title = optionalString(prop.name, `${pointer}/name`, problems);
        const { schema, contentType } = schemaOf(datatype as Datatype, format, pointer, problems);
        const topic = `${base}/${nodeId}/${propId}`;
        const described: DataSchema = {
          ...schema,
          ...(title === undefined ? {} : { title }),
          ...(unit === undefined ? {} : { unit }),
        };
        const nodeTerms = {
          "homie:node": nodeId,
          ...(nodeName === undefined ? {} : { "homie:nodeName": nodeName }),
          ...(nodeType === undefined ? {} : { "homie:nodeType": nodeType }),
        };
        const affordanceName = homieAffordanceName(nodeId, propId);
        if (retained) {
          const forms: Form[] = [
            mqttForm(context.broker, topic, {
              op: ["readproperty", "observeproperty", "unobserveproperty"],
              contentType,
            }),
          ];
          if (settable) {
            forms.push(
              mqttForm(context.broker, `${topic}/set`, { op: "writeproperty", contentType, "mqv:qos": "1" }),
            );
          }
          properties[affordanceName] = {
            ...described,
            "@type": ["homie:Property", ...typesOf(schema)],
            ...nodeTerms,
            observable: true,
            readOnly: !settable,
            forms,
          };
        } else {
          events[affordanceName] = {
            "@type": ["homie:Property", ...typesOf(schema)],
            ...nodeTerms,
            ...(title === undefined ? {} : { title }),
            data: schema,
            forms: [mqttForm(context.broker, topic, { op: "subscribeevent", contentType })],
          };
        }
      }
    }
  }
  problems.throwIfAny();
  return {
    "@context": [...MQTT_DEVICE_CONTEXT],
    "@type": ["homie:Device", ...(type === undefined ? [] : [`homie:${safeTypeName(type)}`])],
    id: homieThingId(device),
    title: name ?? device,
    "homie:device": device,
    "homie:root": root,
    ...(typeof version === "number" ? { "homie:version": version } : {}),
    ...mqttSecurity(context),
    ...(Object.keys(properties).length > 0 ? { properties } : {}),
    ...(Object.keys(events).length > 0 ? { events } : {}),
  };
}

function typesOf(schema: DataSchema): string[] {
  const types = schema["@type"];
  return types === undefined ? [] : Array.isArray(types) ? types : [types];
}

/** A device's free-text `type` as a term name: letters, digits, `-` and `_` only. */
function safeTypeName(type: string): string {
  const cleaned = type.replace(/[^A-Za-z0-9_-]+/g, "-").replace(/^-+|-+$/g, "");
  return cleaned === "" ? "Unknown" : cleaned;
}

/** Homie 5 `$state` values. */
export const HOMIE_STATES = ["init", "ready", "disconnected", "sleeping", "lost"] as const;
export type HomieState = (typeof HOMIE_STATES)[number];
