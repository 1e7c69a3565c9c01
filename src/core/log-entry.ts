// One line of the Log's entries (`GET /log/entries`, NDJSON) read for verification without
// parsing it: when the text of the Change is already its RFC 8785 form, its bytes are what the
// leaf hash covers, so they are hashed as they came, and anything else is parsed as JSON.
import { isUtf8 } from "node:buffer";
import type { Change } from "./change.js";
import { HASH_LENGTH, changeLeafHash, sha256Digest } from "./merkle.js";

const UTF8 = new TextDecoder();

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const MINUS = 0x2d;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;
/** Nesting deeper than this is left to JSON.parse. */
const MAX_DEPTH = 64;

/** `,"leaf":"` + 64 hex digits + `"}`: how a hub's entry line ends (the recorded leaf, last). */
const LEAF_SUFFIX_HEAD = Uint8Array.from(',"leaf":"', (c) => c.charCodeAt(0));
const LEAF_SUFFIX_LENGTH = LEAF_SUFFIX_HEAD.length + 2 * HASH_LENGTH + 2;

/** What `readEntryFast` found: the Change's seq and leaf hash, and its recorded leaf, if any. */
export interface FastEntry {
  seq: number;
  leaf: Uint8Array;
  /** Whether the line carried a `leaf` member equal to `leaf` (false: it differs or is missing). */
  recordedMatches: boolean;
  /** The recorded leaf as written, when it differs from `leaf`; undefined when none was given. */
  recorded: string | undefined;
}

/**
 * Reads entry lines of the Log, reusing one buffer for the bytes it hashes. Not thread-safe, not
 * re-entrant (it is synchronous, so one per verifier is enough).
 */
export class EntryReader {
  #scratch = new Uint8Array(4096);
  readonly #result: FastEntry = {
    seq: 0,
    leaf: new Uint8Array(0),
    recordedMatches: false,
    recorded: undefined,
  };

  /**
   * The seq and leaf hash of the Change on `line[start, end)` when its text shows them without
   * parsing: the line is the Change's canonical JSON (`canonicalChangeJson`, RFC 8785) without a
   * `leaf` member, optionally followed by its recorded leaf as a last member
   * `,"leaf":"<64 lowercase hex digits>"}` (the form `/log/entries` serves), with a top-level
   * `seq` that is an integer of at most 15 digits. Then the leaf hash is `SHA-256(0x00 || the
   * canonical bytes)`, exactly `changeLeafHash(JSON.parse(line))`. Otherwise undefined: the
   * caller parses the line (a non-canonical text still has a leaf hash, computed the long way).
   * The result is reused by the next call.
   */
  readFast(line: Uint8Array, start: number, end: number): FastEntry | undefined {
    const recordedAt = hasLeafSuffix(line, start, end) ? end - 2 - 2 * HASH_LENGTH : -1;
    if (recordedAt < 0 && (end - start < 2 || line[end - 1] !== CLOSE_BRACE)) return undefined;
    // Where the Change's own members end, before its `}`.
    const contentEnd = recordedAt < 0 ? end - 1 : end - LEAF_SUFFIX_LENGTH;
    // 0x00 || the members || `}`: the hashed bytes, contiguous.
    const length = contentEnd - start + 2;
    if (this.#scratch.length < length)
      this.#scratch = new Uint8Array(Math.max(length, 2 * this.#scratch.length));
    const bytes = this.#scratch;
    bytes[0] = 0x00;
    bytes.set(line.subarray(start, contentEnd), 1);
    bytes[length - 1] = CLOSE_BRACE;
    const seq = canonicalChangeSeq(bytes, 1, length);
    if (seq < 0) return undefined;
    const leaf = sha256Digest(bytes.subarray(0, length));
    let matches = recordedAt >= 0;
    if (matches) {
      // The recorded leaf: 64 lowercase hex digits (else the line is left to JSON.parse).
      for (let i = 0; i < HASH_LENGTH; i++) {
        const high = HEX[line[recordedAt + 2 * i] as number] as number;
        const low = HEX[line[recordedAt + 2 * i + 1] as number] as number;
        if (high < 0 || low < 0) return undefined;
        if (high * 16 + low !== leaf[i]) matches = false;
      }
    }
    const result = this.#result;
    result.seq = seq;
    result.leaf = leaf;
    result.recordedMatches = matches;
    result.recorded =
      recordedAt < 0 || matches
        ? undefined
        : Buffer.from(line.buffer, line.byteOffset + recordedAt, 2 * HASH_LENGTH).toString("latin1");
    return result;
  }
}

/** What became of one entry line (`hashEntry`). */
export const EntryStatus = {
  /** Hashed; its recorded `leaf` is the leaf hash. */
  hashed: 0,
  /** Hashed; its recorded `leaf` is another (`note`), or missing (no `note`). */
  leafDiffers: 1,
  /** Not the JSON of an object. */
  malformed: 2,
  /** JSON, but holding a value JSON cannot represent (`note`: why): no leaf hash. */
  unhashable: 3,
} as const;

/** One entry line, hashed (`hashEntry`). */
export interface HashedEntry {
  status: number;
  /** Its `seq`; NaN when it is not a number (`note` then describes it). */
  seq: number;
  leaf: Uint8Array | undefined;
  note: string | undefined;
}

/**
 * Hashes the entry line `line[start, end)` the way `LogVerifier.pushEntry` does — the bytes of a
 * canonical line as they are, any other line parsed — into `out`, without judging its place in the
 * Log: a run of lines can be hashed apart (on another thread) and handed to the verifier in order
 * (`hashEntries`, `LogVerifier.pushHashed`).
 */
export function hashEntry(
  reader: EntryReader,
  line: Uint8Array,
  start: number,
  end: number,
  out: HashedEntry,
): void {
  const fast = reader.readFast(line, start, end);
  if (fast !== undefined) {
    out.status = fast.recordedMatches ? EntryStatus.hashed : EntryStatus.leafDiffers;
    out.seq = fast.seq;
    out.leaf = fast.leaf;
    out.note = fast.recorded;
    return;
  }
  let change: unknown;
  try {
    change = JSON.parse(UTF8.decode(line.subarray(start, end)));
  } catch {
    change = undefined;
  }
  out.leaf = undefined;
  out.note = undefined;
  if (typeof change !== "object" || change === null || Array.isArray(change)) {
    out.status = EntryStatus.malformed;
    out.seq = Number.NaN;
    return;
  }
  const seq: unknown = (change as { seq?: unknown }).seq;
  out.seq = typeof seq === "number" ? seq : Number.NaN;
  if (typeof seq !== "number") out.note = describeValue(seq);
  try {
    out.leaf = changeLeafHash(change as Change);
  } catch (error) {
    out.status = EntryStatus.unhashable;
    if (typeof seq === "number") out.note = error instanceof Error ? error.message : String(error);
    return;
  }
  const recorded: unknown = (change as { leaf?: unknown }).leaf;
  const hex = Buffer.from(out.leaf.buffer, out.leaf.byteOffset, HASH_LENGTH).toString("hex");
  if (recorded === hex) {
    out.status = EntryStatus.hashed;
  } else {
    out.status = EntryStatus.leafDiffers;
    if (typeof seq === "number") out.note = typeof recorded === "string" ? recorded : undefined;
  }
}

/** The entry lines of a chunk, hashed (`hashEntries`): flat arrays, cheap to send between threads. */
export interface HashedEntries {
  count: number;
  /** Per line, its `seq` (NaN: not a number). */
  seqs: Float64Array;
  /** Per line, 32 bytes: its leaf hash (zeros when it has none). */
  leaves: Uint8Array;
  /** Per line, an `EntryStatus`. */
  status: Uint8Array;
  /** `[line, note]` for the lines that have a `HashedEntry.note`. */
  notes: Array<[number, string]>;
}

/**
 * `hashEntry` for every line of `chunk[start, end)` (lines end with a line feed; empty lines are
 * skipped; a last line without one counts).
 */
export function hashEntries(chunk: Uint8Array, start = 0, end: number = chunk.length): HashedEntries {
  let lines = 0;
  for (let i = start; i < end;) {
    let e = chunk.indexOf(0x0a, i);
    if (e < 0 || e > end) e = end;
    if (e > i) lines++;
    i = e + 1;
  }
  const out: HashedEntries = {
    count: lines,
    seqs: new Float64Array(lines),
    leaves: new Uint8Array(lines * HASH_LENGTH),
    status: new Uint8Array(lines),
    notes: [],
  };
  const reader = new EntryReader();
  const entry: HashedEntry = { status: 0, seq: 0, leaf: undefined, note: undefined };
  let n = 0;
  for (let i = start; i < end;) {
    let e = chunk.indexOf(0x0a, i);
    if (e < 0 || e > end) e = end;
    if (e > i) {
      hashEntry(reader, chunk, i, e, entry);
      out.status[n] = entry.status;
      out.seqs[n] = entry.seq;
      if (entry.leaf !== undefined) out.leaves.set(entry.leaf, n * HASH_LENGTH);
      if (entry.note !== undefined) out.notes.push([n, entry.note]);
      n++;
    }
    i = e + 1;
  }
  return out;
}

/** A value that should have been a seq, in words. */
function describeValue(value: unknown): string {
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return JSON.stringify(value);
  return value === undefined ? "none" : `a value of type ${typeof value}`;
}

// Whether the line ends with `,"leaf":"` + 64 characters + `"}` (whether they are hex is checked
// where they are compared).
function hasLeafSuffix(line: Uint8Array, start: number, end: number): boolean {
  const at = end - LEAF_SUFFIX_LENGTH;
  if (at <= start || line[end - 1] !== CLOSE_BRACE || line[end - 2] !== QUOTE) return false;
  for (let i = 0; i < LEAF_SUFFIX_HEAD.length; i++) if (line[at + i] !== LEAF_SUFFIX_HEAD[i]) return false;
  return true;
}

/** The value of each byte as a lowercase hex digit (the Log writes hashes so), else -1. */
const HEX = new Int8Array(256).fill(-1);
for (let i = 0; i < 16; i++) HEX["0123456789abcdef".charCodeAt(i)] = i;

/**
 * When `bytes[start, end)` is, byte for byte, the UTF-8 of `canonicalChangeJson(JSON.parse(text))`
 * for a JSON object with no `leaf` member and a top-level `seq` that is a non-negative integer of
 * at most 15 digits: that seq. Otherwise -1 — which only means "not shown canonical": a lone
 * surrogate's `\uD800` escape, a member name that is not plain ASCII, nesting beyond 64 levels
 * are canonical yet left to the caller's parse. Checked in one pass over the bytes, with no value
 * built, except for numbers with a fraction or an exponent, which must read back as themselves.
 */
export function canonicalChangeSeq(bytes: Uint8Array, start: number, end: number): number {
  const scan = new Scan(bytes, end);
  if (bytes[start] !== OPEN_BRACE) return -1;
  const after = scan.object(start, 0);
  if (after !== end) return -1;
  if (scan.nonAscii && !isUtf8(bytes.subarray(start, end))) return -1;
  return scan.seq;
}

// One pass of canonicalChangeSeq; positions past a value are returned, -1 meaning "not canonical".
class Scan {
  /** Whether a string held a byte >= 0x80 (then the whole text must be well-formed UTF-8). */
  nonAscii = false;
  seq = -1;

  constructor(
    private readonly b: Uint8Array,
    private readonly end: number,
  ) {}

  value(i: number, depth: number): number {
    const c = this.b[i];
    if (c === QUOTE) return this.string(i);
    if (c === OPEN_BRACE) return depth < MAX_DEPTH ? this.object(i, depth + 1) : -1;
    if (c === OPEN_BRACKET) return depth < MAX_DEPTH ? this.array(i, depth + 1) : -1;
    if (c === MINUS || (c !== undefined && c >= DIGIT_0 && c <= DIGIT_9)) return this.number(i);
    if (c === 0x74) return this.word(i, "true");
    if (c === 0x66) return this.word(i, "false");
    if (c === 0x6e) return this.word(i, "null");
    return -1;
  }

  // Members sorted by name, strictly (so no name twice); names plain printable ASCII without
  // escapes, whose byte order is then their UTF-16 order (RFC 8785 §3.2.3).
  object(i: number, depth: number): number {
    const b = this.b;
    const top = depth === 0;
    let p = i + 1;
    if (b[p] === CLOSE_BRACE) return p + 1;
    let previousStart = -1;
    let previousEnd = -1;
    for (;;) {
      if (b[p] !== QUOTE) return -1;
      const nameStart = p + 1;
      let q = nameStart;
      for (let c = b[q]; c !== QUOTE; c = b[++q]) {
        if (c === undefined || q >= this.end || c < 0x20 || c >= 0x7f || c === BACKSLASH) return -1;
      }
      const nameEnd = q;
      if (previousStart >= 0 && compareBytes(b, previousStart, previousEnd, nameStart, nameEnd) >= 0)
        return -1;
      previousStart = nameStart;
      previousEnd = nameEnd;
      p = q + 1;
      if (b[p] !== COLON) return -1;
      const valueStart = p + 1;
      p = this.value(valueStart, depth);
      if (p < 0) return -1;
      if (top) {
        if (isName(b, nameStart, nameEnd, "leaf")) return -1;
        if (isName(b, nameStart, nameEnd, "seq")) this.seq = smallInteger(b, valueStart, p);
      }
      if (b[p] === CLOSE_BRACE) return top && this.seq < 0 ? -1 : p + 1;
      if (b[p] !== COMMA) return -1;
      p++;
    }
  }

  array(i: number, depth: number): number {
    const b = this.b;
    let p = i + 1;
    if (b[p] === CLOSE_BRACKET) return p + 1;
    for (;;) {
      p = this.value(p, depth);
      if (p < 0) return -1;
      if (b[p] === CLOSE_BRACKET) return p + 1;
      if (b[p] !== COMMA) return -1;
      p++;
    }
  }

  // JSON.stringify's escapes and no others: \" \\ \b \f \n \r \t, and \u00xx (lowercase) for the
  // other control characters; everything else as itself.
  string(i: number): number {
    const b = this.b;
    const end = this.end;
    for (let p = i + 1; p < end;) {
      const c = b[p] as number;
      if (c === QUOTE) return p + 1;
      if (c < 0x20) return -1;
      if (c === BACKSLASH) {
        const e = b[p + 1];
        if (
          e === QUOTE ||
          e === BACKSLASH ||
          e === 0x62 ||
          e === 0x66 ||
          e === 0x6e ||
          e === 0x72 ||
          e === 0x74
        ) {
          p += 2;
          continue;
        }
        if (e !== 0x75 || b[p + 2] !== DIGIT_0 || b[p + 3] !== DIGIT_0) return -1;
        const high = b[p + 4];
        const low = HEX[b[p + 5] ?? 0] as number;
        if ((high !== DIGIT_0 && high !== 0x31) || low < 0) return -1;
        const code = (high === 0x31 ? 16 : 0) + low;
        // \b \t \n \f \r have their short escapes.
        if (code === 8 || code === 9 || code === 10 || code === 12 || code === 13) return -1;
        p += 6;
        continue;
      }
      if (c >= 0x80) this.nonAscii = true;
      p++;
    }
    return -1;
  }

  // ECMAScript's Number::toString form (RFC 8785 §3.2.2.3).
  number(i: number): number {
    const b = this.b;
    let p = i;
    const negative = b[p] === MINUS;
    if (negative) p++;
    const first = b[p];
    if (first === undefined || first < DIGIT_0 || first > DIGIT_9) return -1;
    p++;
    if (first !== DIGIT_0) while (isDigit(b[p])) p++;
    const integerDigits = p - i - (negative ? 1 : 0);
    let fractionDigits = 0;
    let fractionZeros = 0; // leading zeros of the fraction
    if (b[p] === 0x2e) {
      p++;
      const fractionStart = p;
      while (b[p] === DIGIT_0) p++;
      fractionZeros = p - fractionStart;
      while (isDigit(b[p])) p++;
      fractionDigits = p - fractionStart;
      if (fractionDigits === 0) return -1;
    }
    let exponent = false;
    if (b[p] === 0x65 || b[p] === 0x45) {
      exponent = true;
      p++;
      if (b[p] === 0x2b || b[p] === MINUS) p++;
      if (!isDigit(b[p])) return -1;
      while (isDigit(b[p])) p++;
    }
    if (p > this.end) return -1;
    if (!exponent) {
      if (fractionDigits === 0) {
        // An integer of up to 15 digits is written as itself; -0 is written 0.
        if (integerDigits <= 15) return negative && first === DIGIT_0 ? -1 : p;
      } else if (b[p - 1] !== DIGIT_0) {
        // A decimal of at most 15 significant digits is the shortest that reads back as its
        // number (two such decimals are further apart than a double's precision), and it is
        // written without an exponent from 1e-6 on: 0.000001, but 1e-7.
        const significant =
          first === DIGIT_0 ? fractionDigits - fractionZeros : integerDigits + fractionDigits;
        if (significant <= 15 && (first !== DIGIT_0 || fractionZeros <= 5)) return p;
      }
    }
    let text = "";
    for (let k = i; k < p; k++) text += String.fromCharCode(b[k] as number);
    return String(Number(text)) === text ? p : -1;
  }

  word(i: number, word: string): number {
    for (let k = 0; k < word.length; k++) if (this.b[i + k] !== word.charCodeAt(k)) return -1;
    return i + word.length;
  }
}

function isDigit(c: number | undefined): boolean {
  return c !== undefined && c >= DIGIT_0 && c <= DIGIT_9;
}

function isName(b: Uint8Array, start: number, end: number, name: string): boolean {
  if (end - start !== name.length) return false;
  for (let k = 0; k < name.length; k++) if (b[start + k] !== name.charCodeAt(k)) return false;
  return true;
}

function compareBytes(b: Uint8Array, aStart: number, aEnd: number, bStart: number, bEnd: number): number {
  const n = Math.min(aEnd - aStart, bEnd - bStart);
  for (let k = 0; k < n; k++) {
    const d = (b[aStart + k] as number) - (b[bStart + k] as number);
    if (d !== 0) return d;
  }
  return aEnd - aStart - (bEnd - bStart);
}

// A non-negative integer of at most 15 digits (no sign, fraction or exponent), else -1.
function smallInteger(b: Uint8Array, start: number, end: number): number {
  if (end - start > 15 || end <= start) return -1;
  let n = 0;
  for (let k = start; k < end; k++) {
    const c = b[k] as number;
    if (c < DIGIT_0 || c > DIGIT_9) return -1;
    n = n * 10 + (c - DIGIT_0);
  }
  return n;
}
