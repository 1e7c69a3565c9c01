// JSON Merge Patch (RFC 7396): apply one, and compute the one that turns a document into another.

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * A member, set as one: `object["__proto__"] = value` sets the object's prototype instead, so a
 * patch's `{"__proto__": {…}}` added nothing to the document and lent its members to it unseen.
 */
function setMember(object: JsonObject, key: string, value: unknown): void {
  Object.defineProperty(object, key, { value, enumerable: true, writable: true, configurable: true });
}

/** A member's value, never one inherited (`constructor`, `__proto__`, `toString`). */
function member(object: JsonObject, key: string): unknown {
  return Object.hasOwn(object, key) ? object[key] : undefined;
}

/** RFC 7396 §2 MergePatch(Target, Patch). Returns a new value; the inputs are not modified. */
export function applyMergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  const result: JsonObject = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else setMember(result, key, applyMergePatch(member(result, key), value));
  }
  return result;
}

function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== typeof b || a === null || b === null || typeof a !== "object") return false;
  if (Array.isArray(a) !== Array.isArray(b)) return false;
  if (Array.isArray(a) && Array.isArray(b)) {
    return a.length === b.length && a.every((item, i) => jsonEqual(item, b[i]));
  }
  const ao = a as JsonObject;
  const bo = b as JsonObject;
  const keys = Object.keys(ao);
  return (
    keys.length === Object.keys(bo).length &&
    keys.every((k) => Object.hasOwn(bo, k) && jsonEqual(ao[k], bo[k]))
  );
}

/**
 * The merge patch that turns `from` into `to`, or undefined when they are equal.
 * Values that contain `null` inside objects cannot be expressed by RFC 7396; such members are
 * replaced whole by their parent, which keeps `applyMergePatch(from, diff) == to` for TDs (which
 * never carry nulls in objects) and is the best RFC 7396 allows otherwise.
 */
export function createMergePatch(from: unknown, to: unknown): unknown {
  if (jsonEqual(from, to)) return undefined;
  if (!isObject(from) || !isObject(to)) return to;
  const patch: JsonObject = {};
  for (const key of Object.keys(from)) {
    if (!Object.hasOwn(to, key)) setMember(patch, key, null);
  }
  for (const [key, value] of Object.entries(to)) {
    const sub = Object.hasOwn(from, key) ? createMergePatch(from[key], value) : value;
    if (sub !== undefined) setMember(patch, key, sub);
  }
  return patch;
}

export { jsonEqual };
