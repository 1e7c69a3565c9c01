// Signed checkpoints of the Log (a tree size and its RFC 9162 root, signed by the hub with
// Ed25519), and `verifyLog`, which lets anyone check a copy of the Log against them without a hub.
import { KeyObject, createPrivateKey, createPublicKey, sign, verify } from "node:crypto";
import type { Change } from "./change.js";
import { ValidationError, type ErrorLocation } from "./errors.js";
import { EntryReader, EntryStatus, hashEntry, type HashedEntries, type HashedEntry } from "./log-entry.js";
import {
  HASH_LENGTH,
  MerkleFrontier,
  changeLeafHash,
  hashFromHex,
  hashToHex,
  hashesEqual,
} from "./merkle.js";

/**
 * A signed statement by a hub: "my Log had `size` Changes, with Merkle root `root`, at `time`".
 *
 * The signature is Ed25519 (RFC 8032) over the UTF-8 bytes of this text, four lines each ending
 * in a line feed (0x0A) — the body of a C2SP tlog-checkpoint signed note, with the time as its
 * one extension line:
 *
 *     <origin>\n
 *     <size, decimal, no leading zeros>\n
 *     <root, the 32 bytes in standard base64 with padding (RFC 4648 §4)>\n
 *     <time, exactly as in the checkpoint>\n
 *
 * e.g. "urn:hub:lab\n3\nrra8/idLcKFPsGel5VeCZNsPqbUa9eC6FZFY8yngbnc=\n2024-05-01T12:00:00.000Z\n".
 * The signature is thus also a valid C2SP signed-note Ed25519 signature of that note text.
 */
export interface Checkpoint {
  /** The hub's id: non-empty, no whitespace or control characters. */
  origin: string;
  /** The number of Changes covered: seq 1..size. */
  size: number;
  /** RFC 9162 Merkle Tree Hash of their leaf hashes (`changeLeafHash`), as 64 lowercase hex digits. */
  root: string;
  /** When the hub signed it: RFC 3339 with an upper-case `T` and `Z` or a numeric offset. */
  time: string;
  /** The Ed25519 signature, 64 bytes in standard base64 with padding. */
  signature: string;
}

/** A checkpoint before it is signed. */
export type UnsignedCheckpoint = Omit<Checkpoint, "signature">;

/** A checkpoint whose signature has been checked, with its root decoded. */
export interface VerifiedCheckpoint {
  origin: string;
  size: number;
  root: Uint8Array;
  time: string;
}

/** An Ed25519 private key: a KeyObject, a PEM string (PKCS #8), or DER bytes (PKCS #8). */
export type Ed25519PrivateKey = KeyObject | string | Uint8Array;
/** An Ed25519 public key: a KeyObject, a PEM string (SPKI), or DER bytes (SPKI). */
export type Ed25519PublicKey = KeyObject | string | Uint8Array;

/** The exact text a checkpoint's signature covers (see `Checkpoint`); throws ValidationError if malformed. */
export function checkpointBody(checkpoint: UnsignedCheckpoint): string {
  return bodyOf(checkpoint, decodeFields(checkpoint));
}

/** Signs a checkpoint with the hub's Ed25519 private key; throws ValidationError if it is malformed. */
export function signCheckpoint(checkpoint: UnsignedCheckpoint, privateKey: Ed25519PrivateKey): Checkpoint {
  const key = toPrivateKey(privateKey);
  const body = checkpointBody(checkpoint);
  return signed(checkpoint, sign(null, Buffer.from(body, "utf8"), key));
}

/**
 * `signCheckpoint` with the signature computed on libuv's thread pool: a hub that signs a
 * checkpoint every thousand Changes keeps the Ed25519 work (50–250 µs each) off its event loop.
 * Rejects with ValidationError if the checkpoint is malformed, before anything is signed.
 */
export function signCheckpointAsync(
  checkpoint: UnsignedCheckpoint,
  privateKey: Ed25519PrivateKey,
): Promise<Checkpoint> {
  return new Promise((resolve, reject) => {
    const key = toPrivateKey(privateKey);
    const body = checkpointBody(checkpoint);
    sign(null, Buffer.from(body, "utf8"), key, (error, signature) => {
      if (error) reject(error);
      else resolve(signed(checkpoint, signature));
    });
  });
}

function signed(checkpoint: UnsignedCheckpoint, signature: Buffer): Checkpoint {
  return {
    origin: checkpoint.origin,
    size: checkpoint.size,
    root: checkpoint.root,
    time: checkpoint.time,
    signature: signature.toString("base64"),
  };
}

export interface VerifyCheckpointOptions {
  /** The origin the checkpoint must name (the hub whose Log this is); unchecked when absent. */
  origin?: string;
}

/**
 * Checks a checkpoint: well-formed, from the expected origin if one is given, and signed by
 * `publicKey`. Returns it with its root decoded, or throws ValidationError saying what is wrong
 * (with a JSON pointer to the field: `/signature` when the signature does not verify).
 */
export function verifyCheckpoint(
  checkpoint: Checkpoint,
  publicKey: Ed25519PublicKey,
  options: VerifyCheckpointOptions = {},
): VerifiedCheckpoint {
  return verifyWithKey(checkpoint, toPublicKey(publicKey), options);
}

/** What `verifyLog` found wrong. */
export type LogProblem =
  /** A Change is missing, repeated or out of order: its `seq` is not its position. */
  | "sequence"
  /** A Change holds a value JSON cannot represent, so it has no leaf hash. */
  | "unhashable-change"
  /** A checkpoint is malformed, from another origin, or not signed by the key. */
  | "bad-checkpoint"
  /** The Changes up to a checkpoint's size do not hash to its root: one of them was altered. */
  | "root-mismatch"
  /** A validly signed checkpoint covers more Changes than the Log has. */
  | "missing-changes"
  /** An entry line (`pushEntry`) is not the JSON of a Change. */
  | "malformed-entry";

/** A Change whose entry records a leaf hash other than its own (`LogVerifier.firstLeafMismatch`). */
export interface LeafMismatch {
  seq: number;
  /** The `leaf` the entry gave, or undefined if it gave none (or not a string). */
  recorded: string | undefined;
  /** The Change's leaf hash, recomputed, as hex. */
  actual: string;
}

export type LogVerification =
  | {
      ok: true;
      /** How many Changes were read (all with consecutive seq from 1). */
      size: number;
      /** The largest checkpoint size verified: Changes 1..provenSize match a signed root. */
      provenSize: number;
    }
  | LogFailure;

export interface LogFailure {
  ok: false;
  /**
   * The first seq the verifier cannot vouch for. A root mismatch says only that some Change in a
   * checkpoint's range differs, so this is the first seq after the last checkpoint that verified
   * (exact when there is a checkpoint at every size); for sequence errors and unhashable Changes
   * it is the offending position itself.
   */
  firstBadSeq: number;
  /**
   * For a root mismatch, the last seq of the range the checkpoint vouched for: one of
   * firstBadSeq..lastBadSeq differs (the same seq when the range is one Change).
   */
  lastBadSeq?: number;
  problem: LogProblem;
  /** One line for a person. */
  reason: string;
}

/**
 * Verifies a copy of a Log against its signed checkpoints, streaming: recomputes each Change's
 * leaf hash (`changeLeafHash`) and the Merkle root at every checkpoint's size, and checks each
 * checkpoint's signature. Feed Changes in seq order with `push`, then call `end`. `verifyLog` is
 * this for an in-memory iterable; use the class directly to verify a Log fetched page by page.
 */
export class LogVerifier {
  readonly #key: KeyObject;
  readonly #options: VerifyCheckpointOptions;
  readonly #pending: Checkpoint[];
  #next = 0;
  #frontier = new MerkleFrontier();
  #provenSize = 0;
  #failure: LogFailure | undefined;
  #lastLeaf: Uint8Array | undefined;
  #mismatch: LeafMismatch | undefined;
  readonly #entries = new EntryReader();
  readonly #entry: HashedEntry = { status: 0, seq: 0, leaf: undefined, note: undefined };

  /** Throws ValidationError only if `publicKey` is not an Ed25519 key; bad checkpoints are reported by `push`/`end`. */
  constructor(
    checkpoints: readonly Checkpoint[],
    publicKey: Ed25519PublicKey,
    options: VerifyCheckpointOptions = {},
  ) {
    this.#key = toPublicKey(publicKey);
    this.#options = options;
    const unplaceable = checkpoints.find((c) => !isSizeValue((c as Partial<Checkpoint> | null)?.size));
    if (unplaceable === undefined) {
      this.#pending = [...checkpoints].sort((a, b) => a.size - b.size);
    } else {
      // A checkpoint without a usable size can't be put in order, so nothing is vouched for.
      const size = describe((unplaceable as Partial<Checkpoint> | null)?.size);
      this.#failure = fail(1, "bad-checkpoint", `a checkpoint has no valid size (${size})`);
      this.#pending = [];
    }
  }

  /** Adds the next Change; returns the failure if verification has failed (now or before). */
  push(change: Change): LogFailure | undefined {
    this.#lastLeaf = undefined;
    const earlier = this.#failure ?? this.#settle();
    if (earlier !== undefined) return earlier;
    return this.#pushChange(change, this.#frontier.size + 1);
  }

  /**
   * Adds the next Change as one entry line of the Log (the UTF-8 bytes `line[start, end)`, without
   * its line feed): the JSON of a Change, as `GET /log/entries` serves it — with the leaf hash the
   * Log recorded for it as a `leaf` member, which is not covered by the hash and is compared with
   * the recomputed one (see `firstLeafMismatch`). The same verdict as `push(JSON.parse(line))`,
   * and cheaper when the line is the Change's canonical JSON (RFC 8785) followed by
   * `,"leaf":"<hex>"}`, as the hub writes it: its bytes are then hashed as they are, unparsed.
   * A line that is not the JSON of an object fails with `malformed-entry`.
   */
  pushEntry(line: Uint8Array, start = 0, end: number = line.length): LogFailure | undefined {
    this.#lastLeaf = undefined;
    const earlier = this.#failure ?? this.#settle();
    if (earlier !== undefined) return earlier;
    hashEntry(this.#entries, line, start, end, this.#entry);
    const entry = this.#entry;
    return this.#pushHashed(entry.status, entry.seq, entry.leaf, entry.note);
  }

  /**
   * Adds the next `limit` (default: all) of entry lines hashed apart, in order (`hashEntries` —
   * on another thread, say): the same verdict as `pushEntry` of each line. Returns the failure if
   * verification has failed (now or before).
   */
  pushHashed(hashed: HashedEntries, limit: number = hashed.count): LogFailure | undefined {
    const notes = new Map(hashed.notes);
    const count = Math.min(limit, hashed.count);
    for (let i = 0; i < count; i++) {
      this.#lastLeaf = undefined;
      const earlier = this.#failure ?? this.#settle();
      if (earlier !== undefined) return earlier;
      const status = hashed.status[i] as number;
      const leaf =
        status === EntryStatus.hashed || status === EntryStatus.leafDiffers
          ? hashed.leaves.slice(i * HASH_LENGTH, (i + 1) * HASH_LENGTH)
          : undefined;
      const failure = this.#pushHashed(status, hashed.seqs[i] as number, leaf, notes.get(i));
      if (failure !== undefined) return failure;
    }
    return this.#failure;
  }

  // One hashed entry: the checks `push` makes, in its order (malformed, seq, hashable).
  #pushHashed(
    status: number,
    seq: number,
    leaf: Uint8Array | undefined,
    note: string | undefined,
  ): LogFailure | undefined {
    const expected = this.#frontier.size + 1;
    if (status === EntryStatus.malformed) {
      return (this.#failure = fail(
        expected,
        "malformed-entry",
        `the entry after seq ${expected - 1} is not the JSON of a Change`,
      ));
    }
    if (seq !== expected) {
      const found = Number.isNaN(seq) ? (note ?? "none") : String(seq);
      return (this.#failure = fail(expected, "sequence", `expected seq ${expected}, found ${found}`));
    }
    if (status === EntryStatus.unhashable || leaf === undefined) {
      return (this.#failure = fail(
        expected,
        "unhashable-change",
        `change ${expected} cannot be hashed: ${note ?? "no JSON form"}`,
      ));
    }
    this.#frontier.append(leaf);
    this.#lastLeaf = leaf;
    if (status === EntryStatus.leafDiffers) this.#noteMismatch(expected, note, leaf);
    return this.#settle();
  }

  /**
   * The first Change fed by `pushEntry` whose entry's recorded `leaf` (missing: undefined) is not
   * its recomputed leaf hash. A checkpoint's root only says that some Change in its range
   * differs; this names it, when the Log recorded the leaf before the Change was altered.
   */
  get firstLeafMismatch(): LeafMismatch | undefined {
    return this.#mismatch;
  }

  #noteMismatch(seq: number, recorded: string | undefined, leaf: Uint8Array): void {
    this.#mismatch ??= { seq, recorded, actual: hashToHex(leaf) };
  }

  #pushChange(change: Change, expected: number): LogFailure | undefined {
    const seq: unknown = typeof change === "object" && change !== null ? change.seq : undefined;
    if (seq !== expected) {
      return (this.#failure = fail(expected, "sequence", `expected seq ${expected}, found ${describe(seq)}`));
    }
    let leaf: Uint8Array;
    try {
      leaf = changeLeafHash(change);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      return (this.#failure = fail(
        expected,
        "unhashable-change",
        `change ${expected} cannot be hashed: ${message}`,
      ));
    }
    this.#frontier.append(leaf);
    this.#lastLeaf = leaf;
    return this.#settle();
  }

  /**
   * The leaf hash the last `push` or `pushEntry` computed for its Change, or undefined if it hashed none (the
   * Change was out of sequence or unhashable, or verification had already failed): a caller that
   * also compares the hub's recorded leaves needs no second hash.
   */
  get lastLeaf(): Uint8Array | undefined {
    return this.#lastLeaf;
  }

  /** Finishes: checks the checkpoints beyond the last Change and returns the verdict. */
  end(): LogVerification {
    const earlier = this.#failure ?? this.#settle();
    if (earlier !== undefined) return earlier;
    const size = this.#frontier.size;
    // Checkpoints are sorted, so the next one (if any) is the smallest beyond the end.
    const checkpoint = this.#pending[this.#next];
    if (checkpoint !== undefined) {
      // Report a forged checkpoint as such rather than as a truncated Log.
      const verified = this.#verify(checkpoint);
      if (!(verified instanceof Uint8Array)) return (this.#failure = verified);
      return (this.#failure = fail(
        size + 1,
        "missing-changes",
        `the checkpoint at size ${checkpoint.size} (${checkpoint.time}) covers seq 1..${checkpoint.size}, but the Log ends at seq ${size}`,
      ));
    }
    return { ok: true, size, provenSize: this.#provenSize };
  }

  // Verifies every checkpoint whose size is the number of Changes hashed so far.
  #settle(): LogFailure | undefined {
    const size = this.#frontier.size;
    // Several checkpoints may sign one size (the hub's, and one kept apart): the range a bad one
    // blames starts after the size proven before this one, whichever of them came first.
    const proven = this.#provenSize;
    let root: Uint8Array | undefined;
    for (
      let checkpoint = this.#pending[this.#next];
      checkpoint?.size === size;
      checkpoint = this.#pending[++this.#next]
    ) {
      const claimed = this.#verify(checkpoint, proven);
      if (!(claimed instanceof Uint8Array)) return (this.#failure = claimed);
      root ??= this.#frontier.root();
      if (!hashesEqual(root, claimed)) {
        const range = size === proven + 1 ? `seq ${size}` : `one of seq ${proven + 1}..${size}`;
        return (this.#failure = {
          ...fail(
            proven + 1,
            "root-mismatch",
            `the Merkle root of seq 1..${size} is ${hashToHex(root)}, but the checkpoint of ${checkpoint.time} signs ${checkpoint.root}: ${range} differs from what was signed`,
          ),
          lastBadSeq: size,
        });
      }
      this.#provenSize = size;
    }
    return undefined;
  }

  // The checkpoint's root if it is well-formed and signed, else the failure to report.
  #verify(checkpoint: Checkpoint, proven = this.#provenSize): Uint8Array | LogFailure {
    try {
      return verifyWithKey(checkpoint, this.#key, this.#options).root;
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      return fail(
        proven + 1,
        "bad-checkpoint",
        `the checkpoint at size ${checkpoint.size}: ${error.message}`,
      );
    }
  }
}

/**
 * Verifies a Log (its Changes in seq order) against signed checkpoints: see LogVerifier. Throws
 * ValidationError only if `publicKey` is not an Ed25519 key; everything wrong with the Log or the
 * checkpoints is in the result.
 */
export function verifyLog(
  changes: Iterable<Change>,
  checkpoints: readonly Checkpoint[],
  publicKey: Ed25519PublicKey,
  options: VerifyCheckpointOptions = {},
): LogVerification {
  const verifier = new LogVerifier(checkpoints, publicKey, options);
  for (const change of changes) {
    const failure = verifier.push(change);
    if (failure !== undefined) return failure;
  }
  return verifier.end();
}

function verifyWithKey(
  checkpoint: Checkpoint,
  key: KeyObject,
  options: VerifyCheckpointOptions,
): VerifiedCheckpoint {
  const root = decodeFields(checkpoint);
  if (options.origin !== undefined && checkpoint.origin !== options.origin) {
    const message = `is ${JSON.stringify(checkpoint.origin)}, not ${JSON.stringify(options.origin)}`;
    throw new ValidationError(`checkpoint origin ${message}`, [{ pointer: "/origin", message }]);
  }
  const signature = typeof checkpoint.signature === "string" ? checkpoint.signature : "";
  if (!SIGNATURE_BASE64.test(signature)) {
    const message = "must be a 64-byte Ed25519 signature in base64";
    throw new ValidationError(`checkpoint signature ${message}`, [{ pointer: "/signature", message }]);
  }
  const body = Buffer.from(bodyOf(checkpoint, root), "utf8");
  if (!verify(null, body, key, Buffer.from(signature, "base64"))) {
    const message = "does not verify with the given public key";
    throw new ValidationError(`checkpoint signature ${message}`, [{ pointer: "/signature", message }]);
  }
  return { origin: checkpoint.origin, size: checkpoint.size, root, time: checkpoint.time };
}

function bodyOf(checkpoint: UnsignedCheckpoint, root: Uint8Array): string {
  const base64Root = Buffer.from(root.buffer, root.byteOffset, root.byteLength).toString("base64");
  return `${checkpoint.origin}\n${checkpoint.size}\n${base64Root}\n${checkpoint.time}\n`;
}

// Checks origin, size, root and time; returns the decoded root.
function decodeFields(checkpoint: UnsignedCheckpoint): Uint8Array {
  const candidate = checkpoint as Partial<Record<keyof UnsignedCheckpoint, unknown>> | null;
  if (typeof candidate !== "object" || candidate === null) {
    throw new ValidationError("a checkpoint is an object", [{ pointer: "", message: "is not an object" }]);
  }
  const errors: ErrorLocation[] = [];
  const { origin, size, root, time } = candidate;
  if (typeof origin !== "string" || !ORIGIN.test(origin)) {
    errors.push({
      pointer: "/origin",
      message: "must be a non-empty id without whitespace or control characters",
    });
  }
  if (!isSizeValue(size)) errors.push({ pointer: "/size", message: "must be a non-negative safe integer" });
  let decoded: Uint8Array | undefined;
  try {
    decoded = hashFromHex(root, "/root");
  } catch (error) {
    if (!(error instanceof ValidationError)) throw error;
    errors.push(...error.errors);
  }
  const timeProblem = rfc3339Problem(time);
  if (timeProblem !== undefined) errors.push({ pointer: "/time", message: timeProblem });
  if (errors.length > 0 || decoded === undefined) {
    throw new ValidationError(
      `malformed checkpoint: ${errors.map((e) => `${e.pointer} ${e.message}`).join("; ")}`,
      errors,
    );
  }
  return decoded;
}

const ORIGIN = /^[^\s\p{Cc}]{1,1024}$/u;
const SIGNATURE_BASE64 = /^[A-Za-z0-9+/]{85}[AQgw]==$/;
const RFC3339 = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.\d{1,9})?(?:Z|[+-](\d{2}):(\d{2}))$/;

// RFC 3339 §5.6 date-time, with its §5.7 limits on each field.
function rfc3339Problem(value: unknown): string | undefined {
  const match = typeof value === "string" ? RFC3339.exec(value) : null;
  if (match === null) return "must be an RFC 3339 date-time such as 2024-05-01T12:00:00.000Z";
  const field = (i: number): number => Number(match[i] ?? 0);
  const [year, month, day] = [field(1), field(2), field(3)];
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const daysInMonth = month === 2 ? (leap ? 29 : 28) : [4, 6, 9, 11].includes(month) ? 30 : 31;
  const valid =
    month >= 1 &&
    month <= 12 &&
    day >= 1 &&
    day <= daysInMonth &&
    field(4) <= 23 &&
    field(5) <= 59 &&
    field(6) <= 60 &&
    field(7) <= 23 &&
    field(8) <= 59;
  return valid ? undefined : "is not a real date and time";
}

function isSizeValue(value: unknown): value is number {
  return typeof value === "number" && Number.isSafeInteger(value) && value >= 0;
}

function toPrivateKey(input: Ed25519PrivateKey): KeyObject {
  let key: KeyObject;
  try {
    key =
      input instanceof KeyObject
        ? input
        : typeof input === "string"
          ? createPrivateKey(input)
          : createPrivateKey({ key: Buffer.from(input), format: "der", type: "pkcs8" });
  } catch (error) {
    throw new ValidationError(`not a private key: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (key.type !== "private" || key.asymmetricKeyType !== "ed25519") {
    throw new ValidationError(`the signing key must be an Ed25519 private key, not ${describeKey(key)}`);
  }
  return key;
}

function toPublicKey(input: Ed25519PublicKey): KeyObject {
  let key: KeyObject;
  try {
    key =
      input instanceof KeyObject
        ? input
        : typeof input === "string"
          ? createPublicKey(input)
          : createPublicKey({ key: Buffer.from(input), format: "der", type: "spki" });
    // A private key also names its public half.
    if (key.type === "private") key = createPublicKey(key);
  } catch (error) {
    throw new ValidationError(`not a public key: ${error instanceof Error ? error.message : String(error)}`);
  }
  if (key.type !== "public" || key.asymmetricKeyType !== "ed25519") {
    throw new ValidationError(`the verifying key must be an Ed25519 public key, not ${describeKey(key)}`);
  }
  return key;
}

function describeKey(key: KeyObject): string {
  return key.type === "secret" ? "a secret key" : `a ${key.asymmetricKeyType ?? "unknown"} ${key.type} key`;
}

function describe(value: unknown): string {
  if (typeof value === "number") return String(value);
  if (typeof value === "string") return JSON.stringify(value);
  return value === undefined ? "none" : `a value of type ${typeof value}`;
}

function fail(firstBadSeq: number, problem: LogProblem, reason: string): LogFailure {
  return { ok: false, firstBadSeq, problem, reason };
}
