// A Change's seq (its position in the Log) as a request writes it — a path, a query, the
// Last-Event-ID header: decimal digits without a leading zero, up to Number.MAX_SAFE_INTEGER.
// Past that a JavaScript number is no longer the seq written (9007199254740993 reads as ...992).
import { ValidationError } from "./errors.js";

/** The largest seq a request may name: above it, numbers are rounded. */
export const MAX_SEQ = Number.MAX_SAFE_INTEGER;

/** The form of a seq in a request: decimal digits, no leading zero. */
const SEQ_FORM = /^(0|[1-9][0-9]*)$/;
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
  if (!SEQ_FORM.test(text) || (min === 1 && text === "0")) {
    const message = `must be a whole number from ${min}, in decimal digits without a leading zero`;
    throw new ValidationError(`${name} ${message}, not "${text}"`, [{ pointer, message }]);
  }
  const seq = Number(text);
  if (!Number.isSafeInteger(seq)) {
    const message = `is out of range: at most ${MAX_SEQ}`;
    throw new ValidationError(`${name} ${text} ${message}`, [{ pointer, message }]);
  }
  return seq;
}
