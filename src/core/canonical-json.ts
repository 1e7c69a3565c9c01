// Canonical JSON (RFC 8785, JCS) and SHA-256 helpers: the bytes that hashes and signatures cover.
import { createHash } from "node:crypto";

/**
 * Serialises a JSON value per RFC 8785. Primitives use ECMAScript's JSON.stringify, which is
 * what JCS specifies (§3.2.2); object members are sorted by their UTF-16 code units (§3.2.3),
 * which is JavaScript's default string order.
 */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== "object") {
    if (typeof value === "number" && !Number.isFinite(value)) {
      throw new TypeError(`${value} has no JSON representation`);
    }
    const text = JSON.stringify(value);
    if (text === undefined) throw new TypeError(`a ${typeof value} has no JSON representation`);
    return text;
  }
  // On the ingest hot path (leaf hashes): one string built in place, no intermediate arrays.
  if (Array.isArray(value)) {
    let out = "[";
    for (let i = 0; i < value.length; i++) {
      if (i > 0) out += ",";
      const item: unknown = value[i];
      out += item === undefined ? "null" : canonicalJson(item);
    }
    return `${out}]`;
  }
  const object = value as Record<string, unknown>;
  const keys = Object.keys(object).sort();
  let out = "{";
  let first = true;
  for (const key of keys) {
    const member = object[key];
    if (member === undefined) continue;
    if (!first) out += ",";
    first = false;
    out += `${JSON.stringify(key)}:${canonicalJson(member)}`;
  }
  return `${out}}`;
}

/** SHA-256 of bytes or a UTF-8 string, as lowercase hex. */
export function sha256Hex(data: string | Uint8Array): string {
  return createHash("sha256").update(data).digest("hex");
}

/** SHA-256 of the canonical JSON of a value, as `sha256:<hex>`. */
export function contentHash(value: unknown): string {
  return `sha256:${sha256Hex(canonicalJson(value))}`;
}

// --- the Log's hot path: a Change, canonicalised without sorting its members each time ---

/** A Change's own members, in RFC 8785 order (UTF-16 code units); `leaf` is never covered. */
const CHANGE_MEMBERS = ["affordance", "at", "cause", "hlc", "kind", "previous", "seq", "thing", "value"];
const CAUSE_MEMBERS = ["actor", "correlation", "release", "rule", "via"];

/**
 * Which of `members` are own enumerable members of `object` (as `Object.keys` sees them, which is
 * what canonicalJson reads), as bits by their place in `members`; -1 if it has any other member.
 */
function memberBits(object: object, members: readonly string[], ignored?: string): number {
  if (Array.isArray(object)) return -1;
  const keys = Object.keys(object);
  let bits = 0;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    const place = members.indexOf(key);
    if (place >= 0) bits |= 1 << place;
    else if (key !== ignored) return -1;
  }
  return bits;
}

// Writes the `bits` members of `object` in the order of `members` (already canonical), leaving
// out undefined ones as canonicalJson does: strings and finite numbers directly, a Change's cause
// the same way, anything else through canonicalJson.
function membersInOrder(object: Record<string, unknown>, members: readonly string[], bits: number): string {
  let out = "{";
  for (let i = 0; i < members.length; i++) {
    if ((bits & (1 << i)) === 0) continue;
    const key = members[i] as string;
    const member = object[key];
    if (member === undefined) continue;
    if (out.length > 1) out += ",";
    out += `"${key}":`;
    if (typeof member === "string" || (typeof member === "number" && Number.isFinite(member))) {
      out += JSON.stringify(member);
      continue;
    }
    const causeBits =
      key === "cause" && member !== null && typeof member === "object"
        ? memberBits(member, CAUSE_MEMBERS)
        : -1;
    out +=
      causeBits >= 0
        ? membersInOrder(member as Record<string, unknown>, CAUSE_MEMBERS, causeBits)
        : canonicalJson(member);
  }
  return `${out}}`;
}

/**
 * `canonicalJson` of a Change without its `leaf` member, byte for byte, without sorting member
 * names per Change: the members a Change (and its cause) can have are written in their fixed
 * canonical order. An object with any other member (a field a later version adds, a mistake)
 * takes the generic path, so the result never differs (a property test holds the two equal).
 */
export function canonicalChangeJson(change: object): string {
  const bits = memberBits(change, CHANGE_MEMBERS, "leaf");
  if (bits < 0) {
    const { leaf: _recorded, ...content } = change as Record<string, unknown>;
    return canonicalJson(content);
  }
  return membersInOrder(change as Record<string, unknown>, CHANGE_MEMBERS, bits);
}

/**
 * `canonicalJson` of a Change's cause, byte for byte: its known members in their fixed order
 * without sorting, anything else through canonicalJson.
 */
export function canonicalCauseJson(cause: unknown): string {
  if (cause === null || typeof cause !== "object") return canonicalJson(cause);
  const bits = memberBits(cause, CAUSE_MEMBERS);
  return bits < 0
    ? canonicalJson(cause)
    : membersInOrder(cause as Record<string, unknown>, CAUSE_MEMBERS, bits);
}

/**
 * The JSON text of a cause that JSON.stringify, canonicalJson and canonicalCauseJson all write the
 * same way: a plain object whose members are known cause members, already in canonical order,
 * each a string that needs no escape. Written once, it serves as the recorded text and as the
 * canonical one (a one-Change call records one cause: JSON.stringify, the JSON check and the
 * canonical form each cost about as much as this). Undefined for any other cause.
 */
export function plainCauseText(cause: unknown): string | undefined {
  if (cause === null || typeof cause !== "object" || Object.getPrototypeOf(cause) !== Object.prototype) {
    return undefined;
  }
  const keys = Object.keys(cause);
  let out = "{";
  let place = -1;
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i] as string;
    const next = CAUSE_MEMBERS.indexOf(key);
    const member = (cause as Record<string, unknown>)[key];
    if (next <= place || typeof member !== "string" || !PLAIN.test(member)) return undefined;
    place = next;
    if (i > 0) out += ",";
    out += `"${key}":"${member}"`;
  }
  return `${out}}`;
}

/** A Change's members as the store has them: the JSON values already as canonical JSON text. */
export interface ChangeTexts {
  seq: number;
  hlc: string;
  at?: string | undefined;
  thing: string;
  affordance?: string | undefined;
  kind: string;
  /** canonicalJson of the value, previous value and cause. */
  value?: string | undefined;
  previous?: string | undefined;
  cause: string;
}

/**
 * `canonicalChangeJson` of the Change these members make, from texts the store has already
 * serialised (a batch's cause once for all its Changes; a number's or a string's text as
 * recorded), with one template per member instead of walking objects. A property test holds it
 * byte-identical to canonicalChangeJson.
 */
export function canonicalChangeText(c: ChangeTexts): string {
  let out = "{";
  if (c.affordance !== undefined) out += `"affordance":${text(c.affordance)},`;
  if (c.at !== undefined) out += `"at":${text(c.at)},`;
  out += `"cause":${c.cause},"hlc":${text(c.hlc)},"kind":${text(c.kind)},`;
  if (c.previous !== undefined) out += `"previous":${c.previous},`;
  out += `"seq":${Number.isSafeInteger(c.seq) ? String(c.seq) : canonicalJson(c.seq)},"thing":${text(c.thing)}`;
  if (c.value !== undefined) out += `,"value":${c.value}`;
  return `${out}}`;
}

// A string JSON.stringify writes as it is, between quotes: no quote, backslash, control
// character or surrogate (JSON.stringify escapes lone surrogates; pairs take the slow path too).
// eslint-disable-next-line no-control-regex -- control characters are what JSON must escape
const PLAIN = /^[^"\\\u0000-\u001f\ud800-\udfff]*$/;

// A member typed as a string, written as canonicalJson writes whatever it really is. A plain
// string skips JSON.stringify (~100 ns against ~170 ns for an id or an HLC; four per Change).
function text(value: unknown): string {
  if (typeof value !== "string") return canonicalJson(value);
  return PLAIN.test(value) ? `"${value}"` : JSON.stringify(value);
}
