// What JSON the hub takes: nested at most MAX_JSON_DEPTH levels, with finite numbers only, and
// strings that are whole Unicode text. JSON.parse reads 1e400 as Infinity, which no JSON text can
// hold again; it reads arrays nested 100,000 deep, which every recursive walk after it (canonical
// JSON, hashing, schema checks, a verifier's) would overflow its stack on; and it reads "\ud800"
// as a lone surrogate, which UTF-8 cannot encode and RFC 8785 has no form for (its input is
// I-JSON, RFC 7493 §2.1): a verifier in another language reads it as U+FFFD, or refuses it, and
// cannot recompute the leaf. All three are refused where input comes in.
import { ValidationError, type ErrorLocation } from "./errors.js";

/** Levels of arrays and objects one JSON document, or one recorded value, may nest. */
export const MAX_JSON_DEPTH = 64;

const OUT_OF_RANGE = "is a number out of range (JSON numbers here are 64-bit floats, at most ±1.8e308)";
const WHY_LONE =
  "(a \\uD800–\\uDFFF escape not in a pair, which no UTF-8 text or RFC 8785 canonical JSON holds)";
const LONE_SURROGATE = `is a string with a lone surrogate ${WHY_LONE}`;
const LONE_SURROGATE_NAME = `has a member name with a lone surrogate ${WHY_LONE}`;

// A high surrogate not followed by a low one, or a low one not preceded by a high one (UTF-16
// code units: no `u` flag). String.prototype.isWellFormed is ES2024, past this build's lib.
const LONE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;

/** RFC 6901: `~` and `/` in a reference token. */
function token(key: string | number): string {
  return String(key).replaceAll("~", "~0").replaceAll("/", "~1");
}

/**
 * The first place where `value` goes beyond what the hub takes (a number JSON cannot write, a
 * string or member name with a lone surrogate, or nesting deeper than `maxDepth`), as a pointer
 * relative to `value`; undefined when it is fine.
 */
export function jsonLimitProblem(
  value: unknown,
  maxDepth: number = MAX_JSON_DEPTH,
): ErrorLocation | undefined {
  // A reading is mostly a number: answered without the walk's allocations (ingest checks each).
  if (typeof value !== "object" || value === null) {
    if (typeof value === "number" && !Number.isFinite(value)) return { pointer: "", message: OUT_OF_RANGE };
    return typeof value === "string" && LONE.test(value)
      ? { pointer: "", message: LONE_SURROGATE }
      : undefined;
  }
  const path: Array<string | number> = [];
  const at = () => path.map((key) => `/${token(key)}`).join("");
  const walk = (item: unknown, depth: number): ErrorLocation | undefined => {
    if (typeof item === "number") {
      return Number.isFinite(item) ? undefined : { pointer: at(), message: OUT_OF_RANGE };
    }
    if (typeof item === "string")
      return LONE.test(item) ? { pointer: at(), message: LONE_SURROGATE } : undefined;
    if (typeof item !== "object" || item === null) return undefined;
    if (depth >= maxDepth)
      return { pointer: at(), message: `nests deeper than ${maxDepth} levels of arrays and objects` };
    const entries: Array<[string | number, unknown]> = Array.isArray(item)
      ? item.map((member, i) => [i, member])
      : Object.entries(item);
    for (const [key, member] of entries) {
      path.push(key);
      if (typeof key === "string" && LONE.test(key)) return { pointer: at(), message: LONE_SURROGATE_NAME };
      const problem = walk(member, depth + 1);
      if (problem) return problem;
      path.pop();
    }
    return undefined;
  };
  return walk(value, 0);
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/**
 * Bytes as UTF-8 text (a leading BOM dropped), or a ValidationError naming `what`: decoded
 * leniently, invalid bytes would become U+FFFD, and the Log would hold what nobody sent.
 */
export function utf8Text(bytes: Uint8Array, what = "The payload"): string {
  try {
    return utf8.decode(bytes);
  } catch {
    throw new ValidationError(`${what} is not valid UTF-8`, [{ pointer: "", message: "is not valid UTF-8" }]);
  }
}

/** A problem of jsonLimitProblem as one sentence about `subject` ("The JSON"), saying where. */
export function jsonLimitSentence(subject: string, problem: ErrorLocation): string {
  // The range in parentheses is for the error's location; the sentence names the place instead.
  const what = problem.message.replace(/ \(.*\)$/, "");
  return `${subject} ${what} ${problem.pointer === "" ? "at the top level" : `at ${problem.pointer}`}`;
}

/** Where an integer a 64-bit float cannot hold may stand: 16 digits in a row, anywhere. */
const LONG_DIGITS = /\d{16}/;
const NUMBER_LITERAL = /-?\d+(\.\d+)?([eE][+-]?\d+)?/y;

/**
 * The first number in JSON text (already known to parse) written as an integer — no fraction, no
 * exponent — that JSON.parse silently turns into another (9007199254740993 → 9007199254740992):
 * its pointer, in the text's order; undefined when none. An integer is taken when the 64-bit
 * float holds it exactly (2^60, 1e21 in digits) or when its digits are how that float is written
 * back (RFC 8785 and JSON.stringify write 1.2345678901234567e19 as 12345678901234567000), so a
 * value read from the hub can be sent back. Digits with a fraction or an exponent say they are a
 * float, and take the nearest one. With `under` (a pointer), only one at or under that place
 * counts: a graphql-ws message's variables, not the rest of its envelope.
 */
export function inexactInteger(text: string, under = ""): ErrorLocation | undefined {
  if (!LONG_DIGITS.test(text)) return undefined;
  // Each open array (its item's index) or object (where its member's name is in the text, once
  // read: decoded only for a pointer).
  const open: Array<{ index: number } | { name: number }> = [];
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x7b /* { */) open.push({ name: -1 });
    else if (c === 0x5b /* [ */) open.push({ index: 0 });
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) open.pop();
    else if (c === 0x2c /* , */) {
      const top = open.at(-1);
      if (top !== undefined && "index" in top) top.index++;
      else if (top !== undefined) top.name = -1;
    } else if (c === 0x22 /* " */) {
      const top = open.at(-1);
      if (top !== undefined && "name" in top && top.name === -1) top.name = i;
      i = stringEnd(text, i);
      if (i === -1) return undefined;
    } else if (c === 0x2d /* - */ || (c >= 0x30 && c <= 0x39)) {
      NUMBER_LITERAL.lastIndex = i;
      const match = NUMBER_LITERAL.exec(text);
      if (match === null) continue;
      const [written, fraction, exponent] = match;
      i += written.length - 1;
      if (fraction !== undefined || exponent !== undefined || written.length - (c === 0x2d ? 1 : 0) < 16)
        continue;
      const float = Number(written);
      if (String(float) === written || BigInt(float) === BigInt(written)) continue;
      const name = (at: number) => JSON.parse(text.slice(at, stringEnd(text, at) + 1)) as string;
      const pointer = open
        .map((place) => `/${token("index" in place ? place.index : name(place.name))}`)
        .join("");
      if (under !== "" && pointer !== under && !pointer.startsWith(`${under}/`)) continue;
      return {
        pointer,
        message: `is ${written}, which a JSON number here (a 64-bit float) holds only as ${String(float)}`,
      };
    }
  }
  return undefined;
}

/** Where the JSON string that opens at `start` (its quote) closes, or -1 if it does not. */
function stringEnd(text: string, start: number): number {
  let end = text.indexOf('"', start + 1);
  // A quote after an odd run of backslashes is escaped.
  for (;;) {
    if (end === -1) return -1;
    let k = end - 1;
    while (text.charCodeAt(k) === 0x5c /* \\ */) k--;
    if ((end - 1 - k) % 2 === 0) return end;
    end = text.indexOf('"', end + 1);
  }
}
