// The Log's Merkle tree, per RFC 9162 (Certificate Transparency 2.0) §2.1 with SHA-256: leaf and
// root hashes, an incremental frontier for ingest, and inclusion and consistency proofs.
//
// Hashes are 32-byte Uint8Arrays in memory and lowercase hex strings in JSON (as `sha256Hex`).
// Tree sizes and indices are JavaScript numbers: safe integers, so up to 2^53 - 1 leaves.
import { createHash, hash } from "node:crypto";
import { canonicalChangeJson, canonicalChangeText, type ChangeTexts } from "./canonical-json.js";
import type { Change } from "./change.js";
import { ValidationError } from "./errors.js";

/** The length of a SHA-256 hash in bytes. */
export const HASH_LENGTH = 32;

const LEAF_PREFIX = new Uint8Array([0x00]);
const EMPTY_ROOT: Uint8Array = createHash("sha256").digest();
// One reused input buffer for node hashes, 0x01 || left || right, so hashing a node allocates only
// its output: `hash` is synchronous, so no other call can write to it mid-use.
const nodeInput = new Uint8Array(1 + 2 * HASH_LENGTH);
nodeInput[0] = 0x01;

/**
 * SHA-256 of bytes or of a string's UTF-8, as 32 bytes. On Node 20 a one-shot `hash` is ~4× as
 * fast with a string output as with `"buffer"` (0.3 µs against 1.3 µs for a node hash, the cost
 * being the Buffer it makes), so the digest comes out as latin1 — one char per byte — and is
 * copied into an array of its own (never a view of a shared pool: a Log's writer thread is sent
 * its leaves).
 */
export function sha256Digest(data: string | Uint8Array): Uint8Array {
  return bytesOfBinary(hash("sha256", data, "binary"));
}

/** The 32 bytes of a digest given as a latin1 ("binary") string of 32 chars. */
function bytesOfBinary(binary: string): Uint8Array {
  const out = new Uint8Array(HASH_LENGTH);
  for (let i = 0; i < HASH_LENGTH; i++) out[i] = binary.charCodeAt(i);
  return out;
}

/** RFC 9162 §2.1.1: the hash of one leaf, `SHA-256(0x00 || bytes)`. */
export function leafHash(bytes: Uint8Array): Uint8Array {
  return createHash("sha256").update(LEAF_PREFIX).update(bytes).digest();
}

/** RFC 9162 §2.1.1: the hash of an interior node, `SHA-256(0x01 || left || right)`. */
export function nodeHash(left: Uint8Array, right: Uint8Array): Uint8Array {
  if (left.length !== HASH_LENGTH || right.length !== HASH_LENGTH) {
    throw new RangeError(
      `node hash inputs are ${HASH_LENGTH}-byte hashes, not ${left.length} and ${right.length}`,
    );
  }
  nodeInput.set(left, 1);
  nodeInput.set(right, 1 + HASH_LENGTH);
  return sha256Digest(nodeInput);
}

/**
 * The leaf hash of a Change in the Log: `SHA-256(0x00 || UTF-8(canonicalJson(change)))`.
 *
 * The leaf covers every own enumerable field of the object as given except `leaf` — for a Change
 * today `seq`, `hlc`, `thing`, `affordance`, `kind`, `value`, `previous`, `at`, `cause` (with all
 * its members), and any field a later version adds — serialised by RFC 8785 (JCS):
 * members sorted, no whitespace; members whose value is `undefined` are left out, as JSON has no
 * `undefined`. Pass exactly the recorded Change: an extra property (say, a database column) would
 * change the hash. Throws TypeError if the Change holds a value JSON cannot represent.
 */
export function changeLeafHash(change: Change): Uint8Array {
  // One-shot hashing of a string is UTF-8 and faster than a Hash object; U+0000 is the byte 0x00.
  // canonicalChangeJson is canonicalJson of the Change without `leaf`, without sorting per Change.
  return sha256Digest(`\u0000${canonicalChangeJson(change)}`);
}

/** changeLeafHash of a Change given as canonicalChangeText's members. */
export function changeTextsLeafHash(texts: ChangeTexts): Uint8Array {
  return sha256Digest(changeLeafInput(texts));
}

/**
 * What a Change's leaf hash is the SHA-256 of (0x00, then its canonical JSON), from
 * canonicalChangeText's members: for whoever hashes it elsewhere (a store's writer thread).
 */
export function changeLeafInput(texts: ChangeTexts): string {
  return `\u0000${canonicalChangeText(texts)}`;
}

/** RFC 9162 §2.1.1: the Merkle Tree Hash of a list of leaf hashes (SHA-256 of "" when empty). */
export function rootHash(leaves: readonly Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return emptyRoot();
  return rangeHash(leaves, 0, leaves.length);
}

// MTH(D[start:end]) straight from the definition; the frontier and the proofs are checked against it.
function rangeHash(leaves: readonly Uint8Array[], start: number, end: number): Uint8Array {
  if (end - start === 1) return leaves[start] ?? missingLeaf(start);
  const split = start + largestPowerOfTwoBelow(end - start);
  return nodeHash(rangeHash(leaves, start, split), rangeHash(leaves, split, end));
}

/** The root of the empty tree, SHA-256 of the empty string (a fresh copy). */
export function emptyRoot(): Uint8Array {
  return Uint8Array.from(EMPTY_ROOT);
}

/**
 * The Merkle Tree Hash of the leaves `[start, end)`, 0 <= start < end, for a store to implement
 * from whatever it keeps (leaf hashes, stored perfect-subtree hashes, a cache). Every range the
 * proof functions ask for is a node of the RFC 9162 tree: `start` is a multiple of the smallest
 * power of two >= `end - start`, so the range splits, like a frontier, into one perfect subtree
 * per set bit of `end - start`.
 */
export type SubtreeHasher = (start: number, end: number) => Uint8Array;

/**
 * A SubtreeHasher over leaf hashes held in memory (memoised, for tests and small logs); it reads
 * the array when called, so leaves appended later are seen.
 */
export function inMemorySubtreeHasher(leaves: readonly Uint8Array[]): SubtreeHasher {
  const memo = new Map<string, Uint8Array>();
  const subtree = (start: number, end: number): Uint8Array => {
    if (end - start === 1) return leaves[start] ?? missingLeaf(start);
    const key = `${start}:${end}`;
    const known = memo.get(key);
    if (known !== undefined) return known;
    const split = start + largestPowerOfTwoBelow(end - start);
    const value = nodeHash(subtree(start, split), subtree(split, end));
    memo.set(key, value);
    return value;
  };
  return (start, end) => {
    if (!(
      Number.isSafeInteger(start) &&
      Number.isSafeInteger(end) &&
      0 <= start &&
      start < end &&
      end <= leaves.length
    )) {
      throw new RangeError(`no subtree [${start}, ${end}) in a tree of ${leaves.length} leaves`);
    }
    return subtree(start, end);
  };
}

/**
 * The compact range of a growing tree: the roots of its perfect subtrees, largest first (one per
 * set bit of `size`), which is all it takes to append a leaf and compute the root in O(log n)
 * memory and O(1) amortised hashes per append.
 */
export class MerkleFrontier {
  #size = 0;
  readonly #hashes: Uint8Array[] = [];
  /**
   * `toJSON`'s hex of each of `#hashes`, once asked for: a store writes the frontier after every
   * batch, and all but its last few subtree roots are the same as last time (hex-encoding the
   * ~20 roots of a big Log each time was 1.3 % of a one-Change ingest's event loop).
   */
  readonly #hex: Array<string | undefined> = [];
  /**
   * `toJSONText`'s text of the first `#textCount` roots (each quoted, comma-separated: 67 chars a
   * root but the last): a store writes the frontier's JSON with every batch of one-Change calls,
   * and building it from an object with JSON.stringify was ~2 % of their event loop.
   */
  #text = "";
  #textCount = 0;

  /** The number of leaves appended. */
  get size(): number {
    return this.#size;
  }

  /**
   * Appends one leaf hash (from `leafHash` or `changeLeafHash`); the frontier may keep the array,
   * so don't reuse it. `completed` hears of every perfect subtree the leaf completes, smallest
   * first: its level (2^level leaves), its index among the subtrees of that level, and its hash —
   * the nodes a store keeps for proofs, without hashing them a second time. `merged`, if given,
   * gets the subtree roots the leaf was merged with, for `unappend`.
   */
  append(
    leaf: Uint8Array,
    completed?: (level: number, index: number, hash: Uint8Array) => void,
    merged?: Uint8Array[],
  ): void {
    if (leaf.length !== HASH_LENGTH)
      throw new RangeError(`a leaf hash is ${HASH_LENGTH} bytes, not ${leaf.length}`);
    if (this.#size === Number.MAX_SAFE_INTEGER) throw new RangeError("the tree is full");
    // Each trailing 1 bit of the old size is a perfect subtree as large as what we carry: merge.
    let carry = leaf;
    let level = 0;
    for (let size = this.#size; size % 2 === 1; size = (size - 1) / 2) {
      const left = this.#hashes.pop();
      if (left === undefined) throw new Error("MerkleFrontier invariant broken");
      merged?.push(left);
      this.#truncateHex(this.#hashes.length);
      carry = nodeHash(left, carry);
      level++;
      // The new size is a multiple of 2^level: the subtree ends there.
      completed?.(level, (this.#size + 1) / 2 ** level - 1, carry);
    }
    this.#hashes.push(carry);
    this.#size += 1;
  }

  /**
   * Takes the last leaf appended back out: `merged` is the array that `append` was given for it
   * (and for any appends before it, in order), and loses what that append put in it. A way back
   * without a `clone` before every append (a store marks before every command of a batch).
   */
  unappend(merged: Uint8Array[]): void {
    if (this.#size === 0) throw new RangeError("the tree is empty");
    const size = this.#size - 1;
    let count = 0;
    for (let n = size; n % 2 === 1; n = (n - 1) / 2) count++;
    if (merged.length < count) throw new RangeError("the subtree roots that the append merged are missing");
    this.#hashes.pop();
    // They were taken off the end, the last one pushed first: back in reverse.
    for (let i = merged.length - 1, end = merged.length - count; i >= end; i--)
      this.#hashes.push(merged[i] as Uint8Array);
    merged.length -= count;
    this.#truncateHex(Math.min(this.#hex.length, this.#hashes.length - count));
    this.#size = size;
  }

  /** RFC 9162 §2.1.1: the Merkle Tree Hash of everything appended so far. */
  root(): Uint8Array {
    const hashes = this.#hashes;
    let root = hashes[hashes.length - 1];
    if (root === undefined) return emptyRoot();
    if (hashes.length === 1) return Uint8Array.from(root); // not our own copy of the subtree root
    for (let i = hashes.length - 2; i >= 0; i--) root = nodeHash(hashes[i] as Uint8Array, root);
    return root;
  }

  /** An independent copy, e.g. to roll back to if a commit fails. */
  clone(): MerkleFrontier {
    const copy = new MerkleFrontier();
    copy.#size = this.#size;
    copy.#hashes.push(...this.#hashes);
    copy.#hex.push(...this.#hex);
    copy.#text = this.#text;
    copy.#textCount = this.#textCount;
    return copy;
  }

  /** The roots from `length` on are no longer what `#hex` and `#text` were written from. */
  #truncateHex(length: number): void {
    this.#hex.length = length;
    if (this.#textCount > length) this.#textCount = length;
  }

  /** `JSON.stringify(this.toJSON())`, with the text of the roots unchanged since the last call kept. */
  toJSONText(): string {
    const hashes = this.#hashes;
    const hex = this.#hex;
    const kept = this.#textCount;
    const length = 67 * kept - 1;
    let text = kept === 0 ? "" : this.#text.length === length ? this.#text : this.#text.slice(0, length);
    for (let i = kept; i < hashes.length; i++) {
      const root = (hex[i] ??= hashToHex(hashes[i] as Uint8Array));
      text = i === 0 ? `"${root}"` : `${text},"${root}"`;
    }
    this.#text = text;
    this.#textCount = hashes.length;
    return `{"size":${this.#size},"hashes":[${text}]}`;
  }

  /** `{ size, hashes }`: the perfect subtree roots, largest first, as lowercase hex. */
  toJSON(): MerkleFrontierJson {
    const hex = this.#hex;
    const hashes = this.#hashes.map((hash, i) => (hex[i] ??= hashToHex(hash)));
    return { size: this.#size, hashes };
  }

  /** Restores a frontier written by `toJSON`; throws ValidationError if it is not one. */
  static fromJSON(json: unknown): MerkleFrontier {
    const candidate = json as Partial<Record<keyof MerkleFrontierJson, unknown>> | null;
    if (typeof candidate !== "object" || candidate === null) {
      throw new ValidationError("a Merkle frontier is an object { size, hashes }", [
        { pointer: "", message: "is not an object" },
      ]);
    }
    const { size, hashes } = candidate;
    if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0) {
      throw new ValidationError("a Merkle frontier's size is a non-negative integer", [
        { pointer: "/size", message: "is not a non-negative safe integer" },
      ]);
    }
    if (!Array.isArray(hashes) || hashes.length !== bitCount(size)) {
      const message = `must be an array of ${bitCount(size)} hashes for size ${size}`;
      throw new ValidationError(`a Merkle frontier's hashes ${message}`, [{ pointer: "/hashes", message }]);
    }
    const frontier = new MerkleFrontier();
    frontier.#size = size;
    hashes.forEach((value, i) => {
      frontier.#hashes.push(hashFromHex(value, `/hashes/${i}`));
      frontier.#hex.push(hashToHex(frontier.#hashes[i] as Uint8Array));
    });
    return frontier;
  }
}

/** The JSON form of a MerkleFrontier. */
export interface MerkleFrontierJson {
  size: number;
  /** The perfect subtree roots, largest (leftmost) first, as 64 lowercase hex digits each. */
  hashes: string[];
}

/**
 * RFC 9162 §2.1.3.1: the ranges whose hashes make up the inclusion proof of leaf `index` in the
 * tree of `size` leaves, in proof order (from the leaf's sibling up to the root's other child).
 * A store can fetch or compute them in one batch, then hand the hashes over in this order.
 */
export function inclusionProofRanges(index: number, size: number): Array<[start: number, end: number]> {
  assertSize(size, "size");
  if (!Number.isSafeInteger(index) || index < 0 || index >= size) {
    throw new ValidationError(`leaf index ${index} is not in a tree of size ${size}`, [
      { pointer: "/index", message: `must be an integer in 0..${size - 1}` },
    ]);
  }
  // PATH(m, D[lo:hi]) = PATH(m, child holding m) : MTH(other child), so walking down from the root
  // meets the siblings last-to-first.
  const ranges: Array<[number, number]> = [];
  let lo = 0;
  let hi = size;
  while (hi - lo > 1) {
    const split = lo + largestPowerOfTwoBelow(hi - lo);
    if (index < split) {
      ranges.push([split, hi]);
      hi = split;
    } else {
      ranges.push([lo, split]);
      lo = split;
    }
  }
  return ranges.reverse();
}

/** RFC 9162 §2.1.3.1: the inclusion proof of leaf `index` in the tree of `size` leaves. */
export function inclusionProof(index: number, size: number, subtreeHash: SubtreeHasher): Uint8Array[] {
  return inclusionProofRanges(index, size).map(([start, end]) => subtreeHash(start, end));
}

/**
 * RFC 9162 §2.1.4.1: the ranges whose hashes make up the consistency proof from the tree of
 * `oldSize` leaves to the tree of `newSize`, in proof order. Empty when `oldSize` is 0 (the empty
 * tree is a prefix of every tree) or equals `newSize`.
 */
export function consistencyProofRanges(
  oldSize: number,
  newSize: number,
): Array<[start: number, end: number]> {
  assertSize(oldSize, "oldSize");
  assertSize(newSize, "newSize");
  if (oldSize > newSize) {
    throw new ValidationError(`no consistency proof from size ${oldSize} to the smaller size ${newSize}`, [
      { pointer: "/oldSize", message: `must be at most newSize (${newSize})` },
    ]);
  }
  const ranges: Array<[number, number]> = [];
  if (oldSize === 0 || oldSize === newSize) return ranges;
  // SUBPROOF(m, D[lo:hi], b): walking down, each step records the sibling subtree that the
  // recursion appends after its sub-proof, so they come out last-to-first.
  let m = oldSize;
  let lo = 0;
  let hi = newSize;
  let complete = true; // b: whether D[lo:lo+m] is a subtree whose hash the verifier already knows
  while (m !== hi - lo) {
    const k = largestPowerOfTwoBelow(hi - lo);
    if (m <= k) {
      ranges.push([lo + k, hi]);
      hi = lo + k;
    } else {
      ranges.push([lo, lo + k]);
      lo += k;
      m -= k;
      complete = false;
    }
  }
  if (!complete) ranges.push([lo, hi]); // SUBPROOF(m, D[m], false) = {MTH(D[m])}
  return ranges.reverse();
}

/** RFC 9162 §2.1.4.1: the consistency proof from the tree of `oldSize` leaves to that of `newSize`. */
export function consistencyProof(oldSize: number, newSize: number, subtreeHash: SubtreeHasher): Uint8Array[] {
  return consistencyProofRanges(oldSize, newSize).map(([start, end]) => subtreeHash(start, end));
}

/**
 * RFC 9162 §2.1.3.2: whether `proof` shows that `leaf` (a leaf hash) is leaf `index` of the tree of
 * `size` leaves whose root is `root`. Never throws: any malformed input is simply `false`.
 */
export function verifyInclusion(
  leaf: Uint8Array,
  index: number,
  size: number,
  proof: readonly Uint8Array[],
  root: Uint8Array,
): boolean {
  if (!isSize(index) || !isSize(size) || index >= size) return false;
  if (leaf.length !== HASH_LENGTH || root.length !== HASH_LENGTH || !proof.every(isHash)) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      while (fn % 2 === 0 && fn !== 0) {
        fn /= 2;
        sn = Math.floor(sn / 2);
      }
    } else {
      r = nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && hashesEqual(r, root);
}

/**
 * RFC 9162 §2.1.4.2: whether `proof` shows that the tree of `oldSize` leaves with root `oldRoot` is
 * a prefix of the tree of `newSize` leaves with root `newRoot`. Equal sizes need an empty proof and
 * equal roots; size 0 needs an empty proof and the empty tree's root. Never throws.
 */
export function verifyConsistency(
  oldSize: number,
  newSize: number,
  proof: readonly Uint8Array[],
  oldRoot: Uint8Array,
  newRoot: Uint8Array,
): boolean {
  if (!isSize(oldSize) || !isSize(newSize) || oldSize > newSize) return false;
  if (oldRoot.length !== HASH_LENGTH || newRoot.length !== HASH_LENGTH || !proof.every(isHash)) return false;
  if (oldSize === 0) return proof.length === 0 && hashesEqual(oldRoot, EMPTY_ROOT);
  if (oldSize === newSize) return proof.length === 0 && hashesEqual(oldRoot, newRoot);
  if (proof.length === 0) return false;
  // Step 2: when oldSize is a power of two the old root is itself a node of the new tree, and the
  // proof leaves it out.
  const path = isPowerOfTwo(oldSize) ? [oldRoot, ...proof] : proof;
  let fn = oldSize - 1;
  let sn = newSize - 1;
  while (fn % 2 === 1) {
    fn = (fn - 1) / 2;
    sn = Math.floor(sn / 2);
  }
  let fr = path[0] as Uint8Array;
  let sr = fr;
  for (let i = 1; i < path.length; i++) {
    const c = path[i] as Uint8Array;
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while (fn % 2 === 0 && fn !== 0) {
        fn /= 2;
        sn = Math.floor(sn / 2);
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && hashesEqual(fr, oldRoot) && hashesEqual(sr, newRoot);
}

/** A hash as 64 lowercase hex digits, its JSON form. */
export function hashToHex(value: Uint8Array): string {
  return Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString("hex");
}

/** Decodes a hash from 64 hex digits (lowercase only, so each hash has one spelling). */
export function hashFromHex(text: unknown, pointer = ""): Uint8Array {
  if (typeof text !== "string" || !HEX_HASH.test(text)) {
    const message = "must be a SHA-256 hash as 64 lowercase hex digits";
    throw new ValidationError(`${pointer === "" ? "hash" : pointer} ${message}`, [{ pointer, message }]);
  }
  return Buffer.from(text, "hex");
}

/** Whether two hashes have the same bytes. */
export function hashesEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

const HEX_HASH = /^[0-9a-f]{64}$/;

// RFC 9162 §2.1.1's k: the largest power of two smaller than n, for n > 1. Arithmetic rather
// than bit operations, which would truncate sizes past 2^31.
/** The largest power of two below n (n >= 2): where RFC 9162 splits a range of n leaves. */
export function largestPowerOfTwoBelow(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** Whether n (a safe integer) is a power of two. */
export function isPowerOfTwo(n: number): boolean {
  // With 32-bit integer operations below 2^31: a store's proofs ask this of every subtree they
  // split (Math.log2 and ** were 2 % of a Thing's export on the hub).
  if (n > 0 && n <= 0x7fffffff) return (n & (n - 1)) === 0;
  let k = 1;
  while (k < n) k *= 2;
  return k === n;
}

function bitCount(n: number): number {
  let count = 0;
  for (let rest = n; rest > 0; rest = Math.floor(rest / 2)) count += rest % 2;
  return count;
}

function isHash(value: Uint8Array): boolean {
  return value.length === HASH_LENGTH;
}

function isSize(n: number): boolean {
  return Number.isSafeInteger(n) && n >= 0;
}

function assertSize(n: number, name: string): void {
  if (!isSize(n)) {
    throw new ValidationError(`${name} ${n} is not a tree size`, [
      { pointer: `/${name}`, message: "must be a non-negative safe integer" },
    ]);
  }
}

function missingLeaf(index: number): never {
  throw new RangeError(`no leaf ${index}`);
}
