// Payloads: values to bytes and back by media type. JSON and text/plain are understood; other
// types travel as bytes.
import { ValidationError } from "../core/index.js";
import { bindingError } from "./binding.js";
import type { Target } from "./binding.js";

/** The media type without parameters, lower case: `application/json; charset=utf-8` → `application/json`. */
export function mediaType(contentType: string): string {
  return (contentType.split(";")[0] ?? "").trim().toLowerCase();
}

/** `application/json`, `application/td+json`, `application/merge-patch+json`, … */
export function isJson(contentType: string): boolean {
  const type = mediaType(contentType);
  return type === "application/json" || (type.startsWith("application/") && type.endsWith("+json"));
}

export function isText(contentType: string): boolean {
  return mediaType(contentType).startsWith("text/");
}

/** A value as the bytes of `contentType`; undefined for no value (an empty body). */
export function encodeValue(value: unknown, contentType: string): Buffer | undefined {
  if (value === undefined) return undefined;
  if (isJson(contentType)) return Buffer.from(JSON.stringify(value), "utf8");
  if (isText(contentType)) {
    if (typeof value === "string" || typeof value === "number" || typeof value === "boolean") {
      return Buffer.from(String(value), "utf8");
    }
    throw new ValidationError(`a ${mediaType(contentType)} payload is a string, number or boolean`, [
      { pointer: "", message: `cannot send ${typeof value} as ${mediaType(contentType)}` },
    ]);
  }
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength);
  throw new ValidationError(`cannot encode a value as ${mediaType(contentType)}`, [
    { pointer: "", message: "only JSON, text/* and bytes (Uint8Array) are supported" },
  ]);
}

/**
 * A value as the bytes of the target's `contentType` (undefined for no value); one it cannot carry
 * is the binding's `unsupported` BindingError, before anything is sent.
 */
export function encodeFor(target: Target, value: unknown): Buffer | undefined {
  try {
    return encodeValue(value, target.terms.contentType);
  } catch (cause) {
    throw bindingError(target, "unsupported", cause instanceof Error ? cause.message : String(cause), {
      cause,
    });
  }
}

/**
 * Bytes of `contentType` as a value: JSON parsed (a SyntaxError if it is not JSON), text as a
 * string, anything else as the bytes. An empty payload is undefined.
 */
export function decodeValue(bytes: Buffer, contentType: string): unknown {
  if (bytes.length === 0) return undefined;
  if (isJson(contentType)) return JSON.parse(bytes.toString("utf8"));
  if (isText(contentType)) return bytes.toString("utf8");
  return bytes;
}

/** For payloads of unknown type (MQTT, SSE data): JSON if it parses, else the text. */
export function decodeJsonOrText(bytes: Buffer): unknown {
  if (bytes.length === 0) return undefined;
  const text = bytes.toString("utf8");
  try {
    return JSON.parse(text);
  } catch {
    // Not JSON: the text is the value (a plain "on", "21.5 °C").
    return text;
  }
}
