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
