// A Change's seq (its position in the Log), and any integer, as a request writes it — a path, a
// query, the Last-Event-ID header: decimal digits without a leading zero, up to Number.MAX_SAFE_INTEGER.
// Past that a JavaScript number is no longer the seq written (9007199254740993 reads as ...992).
import { ValidationError } from "./errors.js";

/** The largest seq a request may name: above it, numbers are rounded. */
export const MAX_SEQ = Number.MAX_SAFE_INTEGER;

/** An integer as a request writes it: decimal digits, no leading zero, a minus sign if negative. */
const INTEGER_FORM = /^(0|-?[1-9][0-9]*)$/;

/**
 * The integer `text` writes (see INTEGER_FORM), `"form"` if it is written otherwise, `"range"`
 * past Number.MAX_SAFE_INTEGER either way. The one reading of an integer in a request: a seq, and
 * every integer of a query string (query-numbers.ts).
 */
export function readInteger(text: string): number | "form" | "range" {
  if (!INTEGER_FORM.test(text)) return "form";
  const value = Number(text);
  return Number.isSafeInteger(value) ? value : "range";
}
/** The same form from 1 (a Change's seq), for a route schema's pattern; parseSeq checks the range. */
export const SEQ_FROM_1_PATTERN = "^[1-9][0-9]*$";
/** A comma-separated list of up to `count` of them. */
export function seqListPattern(count: number): string {
  return `^[1-9][0-9]*(,[1-9][0-9]*){0,${count - 1}}$`;
}

/** Where a seq came from, for the refusal: its name in words and its JSON pointer. */
export interface SeqSource {
  name: string;
  pointer: string;
  /** The smallest seq it may be: 1 for a Change, 0 for "after" (before the first Change). */
  min: 0 | 1;
}

/** The seq `text` names; a ValidationError naming `source` when it is not one, or out of range. */
export function parseSeq(text: string, source: SeqSource): number {
  const { name, pointer, min } = source;
  const seq = readInteger(text);
  if (seq === "range" && !text.startsWith("-")) {
    const message = `is out of range: at most ${MAX_SEQ}`;
    throw new ValidationError(`${name} ${text} ${message}`, [{ pointer, message }]);
  }
  if (typeof seq !== "number" || seq < min) {
    const message = `must be a whole number from ${min}, in decimal digits without a leading zero`;
    throw new ValidationError(`${name} ${message}, not "${text}"`, [{ pointer, message }]);
  }
  return seq;
}
