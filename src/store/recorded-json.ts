// A value as the Log records it, shared by the Store backends: its JSON text, the value that text
// reads back as, and its canonical JSON (which the leaf hash covers), and a Change as a row holds
// it. See sqlite-log.ts.
import {
  MAX_JSON_DEPTH,
  ValidationError,
  canonicalJson,
  plainCauseText,
  type Change,
} from "../core/index.js";

/**
 * A value as the Log records it: its JSON text, and the value that text reads back as. The leaf
 * hash must cover the Change as the Log gives it back, so a value that JSON writes otherwise than
 * it is held (a Date or a Buffer through toJSON, an array hole, an undefined member, -0, a Map or
 * a class instance) is taken as its JSON text says; one that JSON cannot represent (a BigInt, a
 * cycle, a function, a symbol, NaN, ±Infinity) is refused with a TypeError.
 */
export interface Recorded {
  text: string;
  value: unknown;
  /**
   * canonicalJson of the value: its text already for a JSON primitive; for an object or array,
   * once asked for (a batch's cause is asked for per Change). Always a member (undefined until
   * known), so that every Recorded has one shape and setting it allocates nothing.
   */
  canonical: string | undefined;
}

/** The canonical JSON of a recorded value: its JSON text already, unless it is an object or array. */
export function canonicalOf(recorded: Recorded): string {
  const { value } = recorded;
  return (recorded.canonical ??=
    value === null || typeof value !== "object" ? recorded.text : canonicalJson(value));
}

/** A Change's cause as recorded: a plain one's text is its canonical text too (plainCauseText). */
export function recordedCause(cause: unknown): Recorded {
  const text = plainCauseText(cause);
  return text === undefined ? asRecorded(cause) : { text, value: cause, canonical: text };
}

export function asRecorded(value: unknown): Recorded {
  // First: a value nested too deep would overflow JSON.stringify's stack.
  const reshaped = reshapedByJson(value, 0);
  const text = JSON.stringify(value) as string | undefined; // throws on a BigInt or a cycle
  if (text === undefined) throw new TypeError(`a ${typeof value} has no JSON representation`);
  const recorded: unknown = reshaped ? JSON.parse(text) : value;
  return {
    text,
    value: recorded,
    canonical: recorded === null || typeof recorded !== "object" ? text : undefined,
  };
}

// Walks the whole value (no early return), so that anything JSON cannot represent is refused
// wherever it is, as is a value nested deeper than the hub takes (core's json-limits; the
// edges say where, this is the last line for any other way in).
function reshapedByJson(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case "string":
    case "boolean":
      return false;
    case "number":
      if (Number.isFinite(value)) return Object.is(value, -0);
      throw new ValidationError(`The number ${value} cannot be recorded: JSON has no such number`);
    case "object": {
      if (value === null) return false;
      if (depth >= MAX_JSON_DEPTH) {
        throw new ValidationError(
          `A value nested deeper than ${MAX_JSON_DEPTH} levels of arrays and objects cannot be recorded`,
        );
      }
      if (typeof (value as { toJSON?: unknown }).toJSON === "function") return true;
      let reshaped = false;
      if (Array.isArray(value)) {
        for (let i = 0; i < value.length; i++) {
          const item: unknown = value[i];
          if (!(i in value) || item === undefined) reshaped = true;
          else if (reshapedByJson(item, depth + 1)) reshaped = true;
        }
        return reshaped;
      }
      if (Object.getPrototypeOf(value) !== Object.prototype) reshaped = true;
      for (const member of Object.values(value)) {
        if (member === undefined) reshaped = true;
        else if (reshapedByJson(member, depth + 1)) reshaped = true;
      }
      return reshaped;
    }
  }
  throw new TypeError(`a ${typeof value} value has no JSON representation`);
}

/** A Change as both stores keep it: its JSON members as the text the hub wrote. */
export interface ChangeRow {
  seq: number;
  hlc: string;
  at: string | null;
  thing: string;
  affordance: string | null;
  kind: string;
  value: string | null;
  previous: string | null;
  cause: string;
  leaf: Buffer;
}

/** The Change a stored row holds. */
export function toChange(row: ChangeRow): Change {
  const change: Change = {
    seq: row.seq,
    hlc: row.hlc,
    thing: row.thing,
    kind: row.kind,
    cause: JSON.parse(row.cause) as Change["cause"],
  };
  if (row.at !== null) change.at = row.at;
  if (row.affordance !== null) change.affordance = row.affordance;
  if (row.value !== null) change.value = JSON.parse(row.value) as unknown;
  if (row.previous !== null) change.previous = JSON.parse(row.previous) as unknown;
  change.leaf = row.leaf.toString("hex");
  return change;
}
