// The MQTT gateway's topic layout (docs/mqtt.md): where devices publish state and events, where
// the hub publishes writes, errors and committed Changes. Thing ids and affordance names sit in
// one topic level each, percent-encoded where MQTT would misread them. Pure.
import { ValidationError } from "../../core/index.js";

// MQTT 5 §4.7: `/` separates levels, `+` and `#` are wildcards, U+0000 is forbidden; `%` is
// encoded so that decoding is exact.
// eslint-disable-next-line no-control-regex
const UNSAFE = /[%/+#\u0000]/g;

/** One topic level holding any string: `%`, `/`, `+`, `#` and NUL as `%25`, `%2F`, `%2B`, `%23`, `%00`. */
export function encodeTopicLevel(text: string): string {
  return text.replace(UNSAFE, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase().padStart(2, "0")}`);
}

/** The string in a topic level, every `%XX` decoded (UTF-8); undefined when an escape is malformed. */
export function decodeTopicLevel(level: string): string | undefined {
  if (!level.includes("%")) return level;
  try {
    return decodeURIComponent(level);
  } catch {
    return undefined;
  }
}

/** A topic the gateway understands, parsed. */
export type GatewayTopic =
  | { readonly kind: "property"; readonly thing: string; readonly name: string }
  | { readonly kind: "event"; readonly thing: string; readonly name: string }
  | { readonly kind: "set-result"; readonly thing: string; readonly name: string };

/** A parse failure: the topic is in the layout but a level does not decode. */
export interface GatewayTopicProblem {
  readonly kind: "malformed";
  /** The raw thing level, to answer on `…/things/{raw}/errors`. */
  readonly rawThing: string;
  readonly message: string;
}

/** Checks a topic root (`--mqtt-prefix`): levels without wildcards, not empty, not `$`-first. */
export function checkTopicPrefix(prefix: string): string {
  const levels = prefix.split("/");
  if (
    prefix === "" ||
    prefix.length > 256 ||
    prefix.startsWith("$") ||
    // eslint-disable-next-line no-control-regex
    levels.some((level) => level === "" || /[+#\u0000]/.test(level))
  ) {
    throw new ValidationError(
      `The MQTT topic prefix "${prefix}" must be topic levels without wildcards, empty levels or a leading $`,
      [{ pointer: "/mqttPrefix", message: "not a usable topic prefix" }],
    );
  }
  return prefix;
}

export class TopicLayout {
  readonly things: string;
  readonly changes: string;

  constructor(readonly prefix: string) {
    checkTopicPrefix(prefix);
    this.things = `${prefix}/things/`;
    this.changes = `${prefix}/changes/`;
  }

  /** The filters of everything devices publish to the hub. */
  inboundFilters(): string[] {
    return [
      `${this.things}+/properties/+`,
      `${this.things}+/events/+`,
      `${this.things}+/properties/+/set/result`,
    ];
  }

  property(thing: string, name: string): string {
    return `${this.things}${encodeTopicLevel(thing)}/properties/${encodeTopicLevel(name)}`;
  }

  event(thing: string, name: string): string {
    return `${this.things}${encodeTopicLevel(thing)}/events/${encodeTopicLevel(name)}`;
  }

  set(thing: string, name: string): string {
    return `${this.property(thing, name)}/set`;
  }

  setResult(thing: string, name: string): string {
    return `${this.set(thing, name)}/result`;
  }

  /** Where the hub tells a device why its message was refused. */
  errors(thing: string): string {
    return this.errorsRaw(encodeTopicLevel(thing));
  }

  errorsRaw(rawThing: string): string {
    return `${this.things}${rawThing}/errors`;
  }

  /** Where a committed Change is republished. */
  change(kind: string, thing: string): string {
    return `${this.changes}${encodeTopicLevel(kind)}/${encodeTopicLevel(thing)}`;
  }

  /** The topics a Thing's own device may publish to and subscribe to: `{prefix}/things/{id}/…`. */
  isThingTopic(topic: string, thing: string): boolean {
    if (!topic.startsWith(this.things)) return false;
    const rest = topic.slice(this.things.length);
    const end = rest.indexOf("/");
    const level = end === -1 ? rest : rest.slice(0, end);
    return decodeTopicLevel(level) === thing;
  }

  /** The Thing and property of a write topic `{prefix}/things/{id}/properties/{name}/set`, else undefined. */
  parseSet(topic: string): { thing: string; name: string } | undefined {
    if (!topic.startsWith(this.things) || !topic.endsWith("/set")) return undefined;
    const parsed = this.parse(topic.slice(0, -"/set".length));
    return parsed?.kind === "property" ? { thing: parsed.thing, name: parsed.name } : undefined;
  }

  /** Parses a topic under `{prefix}/things/`; undefined for topics outside the inbound layout. */
  parse(topic: string): GatewayTopic | GatewayTopicProblem | undefined {
    if (!topic.startsWith(this.things)) return undefined;
    const levels = topic.slice(this.things.length).split("/");
    const [rawThing = "", section, rawName = "", ...rest] = levels;
    let kind: GatewayTopic["kind"];
    if (section === "properties" && rest.length === 0) kind = "property";
    else if (section === "events" && rest.length === 0) kind = "event";
    else if (section === "properties" && rest.length === 2 && rest[0] === "set" && rest[1] === "result")
      kind = "set-result";
    else return undefined;
    const thing = decodeTopicLevel(rawThing);
    const name = decodeTopicLevel(rawName);
    if (thing === undefined || thing === "" || name === undefined || name === "") {
      return {
        kind: "malformed",
        rawThing,
        message: `The topic ${topic} has a level that is empty or not percent-encoded UTF-8`,
      };
    }
    return { kind, thing, name };
  }
}
