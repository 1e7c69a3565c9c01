// A Change's seq (its position in the Log), and any integer, as a request writes it — a path, a
// query, the Last-Event-ID header: decimal digits without a leading zero, up to Number.MAX_SAFE_INTEGER.
// Past that a JavaScript number is no longer the seq written (9007199254740993 reads as ...992).
import { echoed, quoted } from "./echo.js";
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
    throw new ValidationError(`${name} ${echoed(text)} ${message}`, [{ pointer, message }]);
  }
  if (typeof seq !== "number" || seq < min) {
    const message = `must be a whole number from ${min}, in decimal digits without a leading zero`;
    throw new ValidationError(`${name} ${message}, not ${quoted(text)}`, [{ pointer, message }]);
  }
  return seq;
}

/** "a whole number from 1 to 5": what a number in a request must be, in words. */
export function wholeNumbers(min: number, max?: number): string {
  return max === undefined ? `a whole number from ${min}` : `a whole number from ${min} to ${max}`;
}

/** A list of seqs in one parameter (`seqs=3,5,8`): its name and pointer, and its bounds. */
export interface SeqListSource {
  name: string;
  pointer: string;
  /** How many seqs it may list. */
  maxItems: number;
  /** The largest seq it may name (the size of the tree the seqs are looked up in). */
  max: number;
}

/**
 * The seqs a comma-separated list names, each from 1 to `source.max`; a ValidationError that
 * says which item is wrong and what it must be ("seqs item 3 ("x") must be a whole number from
 * 1 to 12345"), in place of a pattern over the whole list that could only say the list is wrong.
 */
export function parseSeqList(text: string, source: SeqListSource): number[] {
  const { name, pointer, maxItems, max } = source;
  const refusal = (message: string): ValidationError =>
    new ValidationError(`${name} ${message}`, [{ pointer, message }]);
  if (text === "") throw refusal(`is empty: give 1 to ${maxItems} seqs separated by commas`);
  const items = text.split(",");
  if (items.length > maxItems)
    throw refusal(`lists ${items.length} seqs: at most ${maxItems} in one request`);
  if (max < 1) throw refusal("names Changes, and the Log holds none yet");
  const range = wholeNumbers(1, max);
  return items.map((item, i) => {
    const which = `item ${i + 1}`;
    if (item === "") throw refusal(`${which} is empty: seqs are separated by one comma, each ${range}`);
    const seq = readInteger(item);
    if (typeof seq === "number" && seq >= 1 && seq <= max) return seq;
    // Past 2^53 - 1 is past every tree too: said so, as written, never read as a nearby seq.
    const beyond = typeof seq === "number" ? seq > max : seq === "range" && !item.startsWith("-");
    const past = beyond ? ` is past the tree of ${max} Changes: it` : "";
    throw refusal(`${which} (${quoted(item)})${past} must be ${range}`);
  });
}
