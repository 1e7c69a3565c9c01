// What the generated TDs of MQTT devices (Homie, Home Assistant discovery) share: the context,
// MQTT forms (W3C WoT Binding Templates, MQTT: `mqv:topic`), the broker's security, and the way
// problems in a device's announcement are collected with JSON pointers. Pure.
import { ValidationError, type ErrorLocation } from "./errors.js";
import type { Form, RegisteredThingDescription } from "./thing-description.js";

/** TD context of generated TDs for MQTT devices. */
export const MQTT_DEVICE_CONTEXT = [
  "https://www.w3.org/2022/wot/td/v1.1",
  {
    mqv: "http://www.w3.org/2018/wot/mqtt#",
    homie: "https://homieiot.github.io/specification/#",
    ha: "https://www.home-assistant.io/integrations/",
  },
] as const;

/** Where the device's broker is, as the hub reaches it. */
export interface MqttDeviceContext {
  /** `mqtt://host:port` (or `mqtts:`): the broker the hub reaches the device through. */
  readonly broker: string;
  /** The `securityDefinitions` entry for that broker; `nosec` when absent. */
  readonly security?: { readonly scheme: "nosec" | "basic"; readonly description?: string };
  /**
   * The topics the announcing client may publish to, when its credentials confine it (an
   * announcer password on the hub's broker). The hub observes and writes an announced topic with
   * credentials of its own, so an announcement naming a topic outside them would have the hub read
   * or publish for that client where its password does not reach: such a topic is refused.
   */
  readonly confinedTo?: {
    /** The filters, as the refusal names them. */
    readonly filters: readonly string[];
    readonly includes: (topic: string) => boolean;
  };
}

/** An MQTT form: the topic in `mqv:topic`, and as the href's path for tools that only read hrefs. */
export function mqttForm(broker: string, topic: string, extra: Record<string, unknown>): Form {
  const path = topic
    .split("/")
    .map((level) => encodeURIComponent(level))
    .join("/");
  return { href: `${broker.replace(/\/+$/, "")}/${path}`, "mqv:topic": topic, ...extra };
}

export function mqttSecurity(
  context: MqttDeviceContext,
): Pick<RegisteredThingDescription, "securityDefinitions" | "security"> {
  const scheme = context.security?.scheme ?? "nosec";
  const definition = {
    scheme,
    ...(context.security?.description === undefined ? {} : { description: context.security.description }),
  };
  return { securityDefinitions: { [`${scheme}_sc`]: definition }, security: `${scheme}_sc` };
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** RFC 6901 §3: one reference token. */
export function pointerToken(name: string): string {
  return name.replaceAll("~", "~0").replaceAll("/", "~1");
}

/** Problems in one announcement, each with its JSON pointer; thrown all at once. */
export class DescriptionProblems {
  readonly list: ErrorLocation[] = [];
  constructor(private readonly subject: string) {}
  add(pointer: string, message: string): void {
    this.list.push({ pointer, message });
  }
  throwIfAny(): void {
    const first = this.list[0];
    if (first === undefined) return;
    throw new ValidationError(
      `${this.subject} is not valid: ${first.pointer || "the payload"} ${first.message}`,
      this.list,
    );
  }
}

export function optionalString(
  value: unknown,
  pointer: string,
  problems: DescriptionProblems,
  max = 256,
): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "string" || value.length > max) {
    problems.add(pointer, `must be a string of at most ${max} characters`);
    return undefined;
  }
  return value;
}

export function optionalBoolean(
  value: unknown,
  pointer: string,
  problems: DescriptionProblems,
): boolean | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== "boolean") {
    problems.add(pointer, "must be true or false");
    return undefined;
  }
  return value;
}
