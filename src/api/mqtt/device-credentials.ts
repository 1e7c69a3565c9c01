// Per-device MQTT credentials for the embedded broker: the username is the Thing's id (or, for a
// Homie or Home Assistant device not registered yet, `homie:{device}` / `homeassistant:{node}`),
// the password an HMAC of it and its generation under the hub's admin token. The hub records what
// it issued (hub/mqtt-credentials.ts): a credential issued after a revocation is of the next
// generation, another password; rotating the admin token revokes every device password at once.
import { createHmac, timingSafeEqual } from "node:crypto";
import { filterWithin } from "../../bindings/index.js";
import { isHomieId } from "../../core/index.js";

export { filterWithin };

const LABEL = "hyperthings mqtt device password\n";

export interface DeviceCredentials {
  username: string;
  password: string;
}

/** What a password is derived from: generation 0 is what hubs derived before they kept records. */
function derivedPassword(adminToken: string, label: string, username: string, generation: number): string {
  const subject = generation === 0 ? username : `${username}\u0000${generation}`;
  return createHmac("sha256", adminToken)
    .update(label + subject, "utf8")
    .digest("base64url");
}

function samePassword(expected: string, password: string): boolean {
  const a = Buffer.from(expected, "utf8");
  const b = Buffer.from(password, "utf8");
  return a.length === b.length && timingSafeEqual(a, b);
}

export function deviceCredentials(adminToken: string, thing: string, generation = 0): DeviceCredentials {
  return { username: thing, password: derivedPassword(adminToken, LABEL, thing, generation) };
}

/** True when `password` is the device password of the Thing named by `username`, of that generation. */
export function isDevicePassword(
  adminToken: string,
  username: string,
  password: string,
  generation = 0,
): boolean {
  return samePassword(deviceCredentials(adminToken, username, generation).password, password);
}

/**
 * A device that announces itself (Homie 5, Home Assistant discovery) before it is registered: its
 * credentials name its Homie device id or its Home Assistant node id, and open only its topics.
 */
export interface Announcer {
  readonly convention: "homie" | "homeassistant";
  /** The Homie device id, or the Home Assistant node id. */
  readonly name: string;
}

/** Where the hub's broker puts each convention's topics (the hub's settings). */
export interface AnnouncerRoots {
  /** The gateway's prefix (`hyperthings`). */
  readonly prefix: string;
  readonly homieRoot: string;
  readonly homeAssistantPrefix: string;
}

const ANNOUNCER_LABEL = "hyperthings mqtt announcer password\n";
/** Home Assistant discovery: a node id is one topic level of these characters. */
const HA_NODE_ID = /^[A-Za-z0-9_-]{1,64}$/;

/** Why `name` cannot be a convention's device: undefined when it can. */
export function announcerProblem(announcer: Announcer, roots: AnnouncerRoots): string | undefined {
  const { convention, name } = announcer;
  if (convention === "homie") {
    return isHomieId(name)
      ? undefined
      : `"${name}" is no Homie 5 device id: lower-case letters, digits and hyphens, neither first nor last`;
  }
  if (!HA_NODE_ID.test(name))
    return `"${name}" is no Home Assistant node id: letters, digits, "_" and "-", at most 64`;
  // Its state and command topics live under `{node}/`: never over the hub's or another convention's.
  const taken = [roots.prefix, roots.homieRoot, roots.homeAssistantPrefix].map((t) => t.split("/")[0]);
  return taken.includes(name)
    ? `"${name}" is the first topic level of the hub's, Homie's or Home Assistant's topics: choose another node id`
    : undefined;
}

/** The user name and password of an announcing device: `homie:{device}` or `homeassistant:{node}`. */
export function announcerCredentials(
  adminToken: string,
  announcer: Announcer,
  generation = 0,
): DeviceCredentials {
  const username = announcerName(announcer);
  return { username, password: derivedPassword(adminToken, ANNOUNCER_LABEL, username, generation) };
}

/** The user name of an announcing device: `homie:{device}` or `homeassistant:{node}`. */
export function announcerName(announcer: Announcer): string {
  return `${announcer.convention}:${announcer.name}`;
}

/** The announcing device a user name names, or undefined when it names none. */
export function announcerNamed(username: string): Announcer | undefined {
  const colon = username.indexOf(":");
  const convention = username.slice(0, colon);
  if (colon < 0 || (convention !== "homie" && convention !== "homeassistant")) return undefined;
  return { convention, name: username.slice(colon + 1) };
}

/** The announcing device whose credentials (of that generation) these are, or undefined. */
export function announcerOf(
  adminToken: string,
  username: string,
  password: string,
  generation = 0,
): Announcer | undefined {
  const announcer = announcerNamed(username);
  if (announcer === undefined) return undefined;
  return samePassword(announcerCredentials(adminToken, announcer, generation).password, password)
    ? announcer
    : undefined;
}

/**
 * The topic filters an announcing device may publish and subscribe to (MQTT 3.1.1 §4.7): its
 * subscriptions must lie within one of them. A Home Assistant device may also subscribe to the
 * errors topic of each Thing of its node (`urn:homeassistant:{component}:{node}:{object}`).
 */
export function announcerTopics(
  announcer: Announcer,
  roots: AnnouncerRoots,
  encode: (level: string) => string,
): { publish: string[]; subscribe: string[] } {
  const { name } = announcer;
  if (announcer.convention === "homie") {
    const own = `${roots.homieRoot}/5/${name}/#`;
    const thing = encode(`urn:homie:${name}`);
    return {
      publish: [own],
      subscribe: [
        own,
        `${roots.homieRoot}/5/$broadcast/#`,
        `${roots.prefix}/things/${thing}/#`,
        `${roots.prefix}/changes/+/${thing}`,
      ],
    };
  }
  const config = `${roots.homeAssistantPrefix}/+/${name}/+/config`;
  return {
    publish: [config, `${name}/#`],
    subscribe: [config, `${name}/#`, `${roots.homeAssistantPrefix}/status`],
  };
}

/** The topic filters a registered Thing's device may publish and subscribe within (docs/mqtt.md). */
export function deviceTopics(
  thing: string,
  prefix: string,
  encode: (level: string) => string,
): { publish: string[]; subscribe: string[] } {
  const own = `${prefix}/things/${encode(thing)}/#`;
  return { publish: [own], subscribe: [own, `${prefix}/changes/+/${encode(thing)}`] };
}
