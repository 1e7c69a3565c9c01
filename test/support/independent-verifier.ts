// A verifier of the hub's Log written from docs/changes.md and the hub's HTTP answers alone, as a
// third party would write it: it imports nothing of src/, only node:crypto (RFC 8785, RFC 9162).
import { createHash, createPublicKey, verify as verifySignature, type KeyObject } from "node:crypto";

/** A signed checkpoint as `GET /log/checkpoint(s)` and an export give it. */
export interface SignedCheckpoint {
  origin: string;
  size: number;
  /** The tree's root, hex. */
  root: string;
  /** RFC 3339, as signed. */
  time: string;
  /** Ed25519 over the checkpoint's text, base64. */
  signature: string;
}

/** RFC 8785 (JCS): the canonical JSON text of a value; throws on what JCS has no form for. */
export function canonicalJson(value: unknown): string {
  if (value === null || value === true || value === false) return String(value);
  if (typeof value === "number") {
    // §3.2.2.3: ECMAScript's Number.prototype.toString; -0 is "0"; no NaN or Infinity.
    if (!Number.isFinite(value)) throw new Error(`RFC 8785 has no form for the number ${value}`);
    return Object.is(value, -0) ? "0" : String(value);
  }
  if (typeof value === "string") return canonicalString(value);
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (typeof value === "object") {
    // §3.2.3: members sorted by their names as arrays of UTF-16 code units.
    const names = Object.keys(value).sort(compareUtf16);
    const record = value as Record<string, unknown>;
    return `{${names.map((n) => `${canonicalString(n)}:${canonicalJson(record[n])}`).join(",")}}`;
  }
  throw new Error(`RFC 8785 has no form for a ${typeof value}`);
}

function compareUtf16(a: string, b: string): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) {
    const d = a.charCodeAt(i) - b.charCodeAt(i);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

const SHORT_ESCAPES: Record<number, string> = {
  0x08: "\\b",
  0x09: "\\t",
  0x0a: "\\n",
  0x0c: "\\f",
  0x0d: "\\r",
  0x22: '\\"',
  0x5c: "\\\\",
};

/** §3.2.2.2: `"` and `\` and the controls escaped (short forms where JSON has them, else \u00xx lower case), all else as is. */
function canonicalString(s: string): string {
  let out = '"';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    const short = SHORT_ESCAPES[c];
    if (short !== undefined) out += short;
    else if (c < 0x20) out += `\\u${c.toString(16).padStart(4, "0")}`;
    else if (c >= 0xd800 && c <= 0xdbff) {
      const next = s.charCodeAt(i + 1);
      if (!(next >= 0xdc00 && next <= 0xdfff)) throw new Error(`RFC 8785: a lone surrogate at ${i}`);
      out += s.slice(i, i + 2);
      i++;
    } else if (c >= 0xdc00 && c <= 0xdfff) throw new Error(`RFC 8785: a lone surrogate at ${i}`);
    else out += s.charAt(i);
  }
  return `${out}"`;
}

function sha256(...parts: Buffer[]): Buffer {
  const h = createHash("sha256");
  for (const p of parts) h.update(p);
  return h.digest();
}

/** RFC 9162 §2.1.1: the leaf hash of a Change, over its canonical JSON without `leaf`. */
export function leafHash(change: Record<string, unknown>): Buffer {
  const { leaf: _recorded, ...covered } = change;
  return sha256(Buffer.from([0x00]), Buffer.from(canonicalJson(covered), "utf8"));
}

export function nodeHash(left: Buffer, right: Buffer): Buffer {
  return sha256(Buffer.from([0x01]), left, right);
}

/** The largest power of two smaller than n (n > 1). */
function splitPoint(n: number): number {
  let k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

/** RFC 9162 §2.1.1: MTH over leaf hashes, by its recursive definition. */
export function merkleTreeHash(leaves: Buffer[]): Buffer {
  if (leaves.length === 0) return sha256();
  if (leaves.length === 1) return leaves[0] as Buffer;
  const k = splitPoint(leaves.length);
  return nodeHash(merkleTreeHash(leaves.slice(0, k)), merkleTreeHash(leaves.slice(k)));
}

/** RFC 9162 §2.1.3.2: checks an inclusion proof of the leaf at `index` (0-based) in a tree of `size`. */
export function verifyInclusion(
  index: number,
  size: number,
  leaf: Buffer,
  proof: Buffer[],
  root: Buffer,
): boolean {
  if (index >= size) return false;
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      r = nodeHash(p, r);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else r = nodeHash(r, p);
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && r.equals(root);
}

/** RFC 9162 §2.1.4.2: checks a consistency proof between trees of size1 and size2. */
export function verifyConsistency(
  size1: number,
  size2: number,
  proof: Buffer[],
  root1: Buffer,
  root2: Buffer,
): boolean {
  if (size1 > size2) return false;
  if (size1 === size2) return proof.length === 0 && root1.equals(root2);
  if (size1 === 0) return proof.length === 0;
  if (proof.length === 0) return false;
  const path = isPowerOfTwo(size1) ? [root1, ...proof] : [...proof];
  let fn = size1 - 1;
  let sn = size2 - 1;
  while (fn % 2 === 1) {
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  let fr = path[0] as Buffer;
  let sr = path[0] as Buffer;
  for (const c of path.slice(1)) {
    if (sn === 0) return false;
    if (fn % 2 === 1 || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      if (fn % 2 === 0) {
        while (fn % 2 === 0 && fn !== 0) {
          fn = Math.floor(fn / 2);
          sn = Math.floor(sn / 2);
        }
      }
    } else sr = nodeHash(sr, c);
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  return sn === 0 && fr.equals(root1) && sr.equals(root2);
}

function isPowerOfTwo(n: number): boolean {
  return n > 0 && (n & (n - 1)) === 0;
}

/** The text a checkpoint's signature covers: `<origin>\n<size>\n<root, base64>\n<time>\n`. */
export function checkpointText(cp: SignedCheckpoint): string {
  return `${cp.origin}\n${cp.size}\n${Buffer.from(cp.root, "hex").toString("base64")}\n${cp.time}\n`;
}

/** Ed25519 over the checkpoint's text, with the key as `GET /log/key` gives it (SPKI PEM). */
export function verifyCheckpointSignature(cp: SignedCheckpoint, publicKey: string | KeyObject): boolean {
  const key = typeof publicKey === "string" ? createPublicKey(publicKey) : publicKey;
  return verifySignature(
    null,
    Buffer.from(checkpointText(cp), "utf8"),
    key,
    Buffer.from(cp.signature, "base64"),
  );
}

/** Appends leaf hashes to an RFC 9162 compact range (the roots of perfect subtrees, largest first). */
export class Frontier {
  /** [size of subtree, its root], largest first. */
  private readonly ranges: Array<[number, Buffer]> = [];

  constructor(size: number, hashes: Buffer[]) {
    const sizes: number[] = [];
    for (let bit = 2 ** 52; bit >= 1; bit /= 2) if (Math.floor(size / bit) % 2 === 1) sizes.push(bit);
    if (sizes.length !== hashes.length)
      throw new Error(`a compact range of size ${size} has ${sizes.length} hashes, not ${hashes.length}`);
    sizes.forEach((s, i) => this.ranges.push([s, hashes[i] as Buffer]));
  }

  append(leaf: Buffer): void {
    let entry: [number, Buffer] = [1, leaf];
    for (;;) {
      const last = this.ranges.at(-1);
      if (last === undefined || last[0] !== entry[0]) break;
      this.ranges.pop();
      entry = [last[0] * 2, nodeHash(last[1], entry[1])];
    }
    this.ranges.push(entry);
  }

  root(): Buffer {
    if (this.ranges.length === 0) return sha256();
    let acc = (this.ranges.at(-1) as [number, Buffer])[1];
    for (let i = this.ranges.length - 2; i >= 0; i--)
      acc = nodeHash((this.ranges[i] as [number, Buffer])[1], acc);
    return acc;
  }
}

const hex = (h: string): Buffer => Buffer.from(h, "hex");

/** What an export file (`hyperthings-log-export/1`) proves, or the first reason it does not. */
export type ExportVerdict =
  { ok: true; from: number; to: number; checkpoint: SignedCheckpoint } | { ok: false; reason: string };

/**
 * Verifies `things export --since` output per docs/changes.md, against `trustedKey` (the auditor's
 * copy of the hub's key, never only the file's): the signature, each leaf, the seqs F..N in order,
 * the prefix frontier extended by them to the signed root, the inclusion proofs of F and N, and
 * the consistency proof from an earlier signed checkpoint when there is one.
 */
export function verifyExport(text: string, trustedKey: string): ExportVerdict {
  const lines = text.split("\n");
  if (lines.at(-1) === "") lines.pop();
  let records: Array<Record<string, unknown>>;
  try {
    records = lines.map((l) => JSON.parse(l) as Record<string, unknown>);
  } catch (err) {
    return { ok: false, reason: `a line is not JSON: ${(err as Error).message}` };
  }
  const header = records[0];
  const trailer = records.at(-1);
  if (header?.type !== "header" || header.format !== "hyperthings-log-export/1")
    return { ok: false, reason: "no hyperthings-log-export/1 header" };
  if (trailer?.type !== "checkpoint" || records.length < 2)
    return { ok: false, reason: "no checkpoint line at the end" };
  if (header.publicKey !== trustedKey) return { ok: false, reason: "the file's key is not the trusted one" };
  const cp = trailer.checkpoint as SignedCheckpoint;
  if (!verifyCheckpointSignature(cp, trustedKey))
    return { ok: false, reason: "the checkpoint's signature fails" };
  const from = header.from as number;
  const to = header.to as number;
  if (to !== cp.size)
    return { ok: false, reason: `the header's to ${to} is not the checkpoint's size ${cp.size}` };
  const prefix = header.prefix as { size: number; hashes: string[] };
  if (prefix.size !== from - 1)
    return { ok: false, reason: `the prefix covers ${prefix.size}, not ${from - 1}` };
  const frontier = new Frontier(prefix.size, prefix.hashes.map(hex));
  const changes = records.slice(1, -1);
  if (changes.length !== to - from + 1)
    return { ok: false, reason: `${changes.length} Change lines for seq ${from}..${to}` };
  const leaves = new Map<number, Buffer>();
  for (const [i, line] of changes.entries()) {
    if (line.type !== "change") return { ok: false, reason: `line ${i + 2} is a ${String(line.type)}` };
    const change = line.change as Record<string, unknown>;
    if (change.seq !== from + i)
      return { ok: false, reason: `line ${i + 2} holds seq ${String(change.seq)}, not ${from + i}` };
    let leaf: Buffer;
    try {
      leaf = leafHash(change);
    } catch (err) {
      return { ok: false, reason: `seq ${from + i}: ${(err as Error).message}` };
    }
    if (leaf.toString("hex") !== change.leaf)
      return { ok: false, reason: `seq ${from + i} does not hash to its leaf` };
    frontier.append(leaf);
    leaves.set(from + i, leaf);
  }
  if (!frontier.root().equals(hex(cp.root)))
    return { ok: false, reason: `seq ${from}..${to} do not make the signed root` };
  const proofs = trailer.proofs as {
    inclusion: Array<{ seq: number; proof: string[] }>;
    consistency?: { checkpoint: SignedCheckpoint; proof: string[] };
  };
  for (const p of proofs.inclusion) {
    const leaf = leaves.get(p.seq);
    if (leaf === undefined || !verifyInclusion(p.seq - 1, cp.size, leaf, p.proof.map(hex), hex(cp.root)))
      return { ok: false, reason: `the inclusion proof of seq ${p.seq} fails` };
  }
  if (proofs.consistency !== undefined) {
    const earlier = proofs.consistency.checkpoint;
    if (!verifyCheckpointSignature(earlier, trustedKey))
      return { ok: false, reason: "the earlier checkpoint's signature fails" };
    if (
      !verifyConsistency(
        earlier.size,
        cp.size,
        proofs.consistency.proof.map(hex),
        hex(earlier.root),
        hex(cp.root),
      )
    )
      return { ok: false, reason: `the consistency proof ${earlier.size} → ${cp.size} fails` };
  }
  return { ok: true, from, to, checkpoint: cp };
}
