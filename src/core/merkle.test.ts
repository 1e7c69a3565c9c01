import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { createHash } from "node:crypto";
import { canonicalJson } from "./canonical-json.js";
import type { Change } from "./change.js";
import { ValidationError } from "./errors.js";
import {
  MerkleFrontier,
  changeLeafHash,
  consistencyProof,
  consistencyProofRanges,
  emptyRoot,
  hashFromHex,
  hashToHex,
  inMemorySubtreeHasher,
  inclusionProof,
  inclusionProofRanges,
  leafHash,
  nodeHash,
  rootHash,
  verifyConsistency,
  verifyInclusion,
  isPowerOfTwo,
  largestPowerOfTwoBelow,
} from "./merkle.js";

const hex = (bytes: Uint8Array): string => Buffer.from(bytes).toString("hex");
const unhex = (text: string): Uint8Array => new Uint8Array(Buffer.from(text, "hex"));
const sha256 = (...parts: Uint8Array[]): Uint8Array => {
  const h = createHash("sha256");
  for (const part of parts) h.update(part);
  return new Uint8Array(h.digest());
};
/** A hash with one bit flipped. */
const flip = (bytes: Uint8Array, bit = 0): Uint8Array => {
  const copy = Uint8Array.from(bytes);
  copy[bit >> 3] = (copy[bit >> 3] ?? 0) ^ (1 << (bit & 7));
  return copy;
};
/** n distinct leaf hashes. */
const leavesOf = (n: number): Uint8Array[] =>
  Array.from({ length: n }, (_, i) => leafHash(new TextEncoder().encode(`leaf ${i}`)));

// The reference tree of RFC 6962/9162 implementations (certificate-transparency, transparency-dev/merkle):
// eight leaf inputs, and the roots of their first 1..8.
const RFC_LEAF_INPUTS = [
  "",
  "00",
  "10",
  "2021",
  "3031",
  "40414243",
  "5051525354555657",
  "606162636465666768696a6b6c6d6e6f",
];
const RFC_ROOTS = [
  "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
  "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
  "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
  "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
  "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
  "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
  "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
  "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];
const rfcLeaves = RFC_LEAF_INPUTS.map((input) => leafHash(unhex(input)));

// RFC 9162 §2.1.3.1 and §2.1.4.1 written as the recursion they are, to check the iterative versions.
function mth(leaves: Uint8Array[]): Uint8Array {
  if (leaves.length === 0) return sha256();
  if (leaves.length === 1) return leaves[0] as Uint8Array;
  const k = 2 ** Math.ceil(Math.log2(leaves.length) - 1);
  return sha256(new Uint8Array([1]), mth(leaves.slice(0, k)), mth(leaves.slice(k)));
}
function referencePath(m: number, leaves: Uint8Array[]): Uint8Array[] {
  if (leaves.length === 1) return [];
  const k = 2 ** Math.ceil(Math.log2(leaves.length) - 1);
  return m < k
    ? [...referencePath(m, leaves.slice(0, k)), mth(leaves.slice(k))]
    : [...referencePath(m - k, leaves.slice(k)), mth(leaves.slice(0, k))];
}
function referenceSubproof(m: number, leaves: Uint8Array[], b: boolean): Uint8Array[] {
  if (m === leaves.length) return b ? [] : [mth(leaves)];
  const k = 2 ** Math.ceil(Math.log2(leaves.length) - 1);
  return m <= k
    ? [...referenceSubproof(m, leaves.slice(0, k), b), mth(leaves.slice(k))]
    : [...referenceSubproof(m - k, leaves.slice(k), false), mth(leaves.slice(0, k))];
}

describe("powers of two", () => {
  it("isPowerOfTwo answers alike on both sides of 2^31, where it leaves 32-bit operations", () => {
    for (let k = 0; k <= 52; k++) {
      const p = 2 ** k;
      expect(isPowerOfTwo(p)).toBe(true);
      if (p > 2) expect(isPowerOfTwo(p - 1)).toBe(false);
      if (p > 1) expect(isPowerOfTwo(p + 1)).toBe(false);
      if (k >= 2) expect(largestPowerOfTwoBelow(p + 1)).toBe(p);
    }
    for (const n of [0, -1, -2, 0x7fffffff, 0x80000001, 3 * 2 ** 31, 6]) expect(isPowerOfTwo(n)).toBe(false);
  });
});

describe("Merkle Tree Hash (RFC 9162 §2.1.1)", () => {
  it("gives the empty tree the SHA-256 of the empty string", () => {
    expect(hex(rootHash([]))).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(hex(new MerkleFrontier().root())).toBe(
      "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    );
  });

  it("hashes leaves and nodes with the 0x00 and 0x01 prefixes", () => {
    const a = new TextEncoder().encode("a");
    expect(hex(leafHash(a))).toBe(hex(sha256(new Uint8Array([0x00, 0x61]))));
    const left = sha256(new Uint8Array([1]));
    const right = sha256(new Uint8Array([2]));
    expect(hex(nodeHash(left, right))).toBe(hex(sha256(new Uint8Array([0x01]), left, right)));
  });

  it("computes small trees as the definition does by hand", () => {
    const [d0, d1, d2, d3, d4] = ["a", "b", "c", "d", "e"].map((s) =>
      sha256(new Uint8Array([0]), new TextEncoder().encode(s)),
    ) as [Uint8Array, Uint8Array, Uint8Array, Uint8Array, Uint8Array];
    const node = (l: Uint8Array, r: Uint8Array): Uint8Array => sha256(new Uint8Array([1]), l, r);
    const leaves = [d0, d1, d2, d3, d4];
    expect(hex(rootHash([d0]))).toBe(hex(d0));
    expect(hex(rootHash([d0, d1]))).toBe(hex(node(d0, d1)));
    // n = 3: k = 2, so MTH = H(H(d0, d1), d2)
    expect(hex(rootHash([d0, d1, d2]))).toBe(hex(node(node(d0, d1), d2)));
    expect(hex(rootHash([d0, d1, d2, d3]))).toBe(hex(node(node(d0, d1), node(d2, d3))));
    // n = 5: k = 4, so MTH = H(MTH(d0..d3), d4)
    expect(hex(rootHash(leaves))).toBe(hex(node(node(node(d0, d1), node(d2, d3)), d4)));
  });

  it("matches the RFC 6962 reference roots", () => {
    for (let n = 1; n <= 8; n++)
      expect(hex(rootHash(rfcLeaves.slice(0, n))), `size ${n}`).toBe(RFC_ROOTS[n - 1]);
  });

  it("hashes a Change as the leaf of its UTF-8 canonical JSON", () => {
    const change: Change = {
      seq: 7,
      hlc: "018f3418dc00-00000000-urn:hub:a",
      thing: "urn:example:lamp",
      affordance: "on",
      kind: "reported",
      value: { brightness: 0.5, colour: "wärm" },
      previous: undefined,
      cause: { actor: "admin", via: "http" },
    };
    const bytes = new TextEncoder().encode(canonicalJson(change));
    expect(hex(changeLeafHash(change))).toBe(hex(sha256(new Uint8Array([0]), bytes)));
    expect(canonicalJson(change)).toBe(
      '{"affordance":"on","cause":{"actor":"admin","via":"http"},"hlc":"018f3418dc00-00000000-urn:hub:a",' +
        '"kind":"reported","seq":7,"thing":"urn:example:lamp","value":{"brightness":0.5,"colour":"wärm"}}',
    );
    // Member order and undefined members do not matter; every field's value does.
    const reordered: Change = {
      cause: { via: "http", actor: "admin" },
      value: { colour: "wärm", brightness: 0.5 },
      kind: "reported",
      affordance: "on",
      thing: "urn:example:lamp",
      hlc: "018f3418dc00-00000000-urn:hub:a",
      seq: 7,
    };
    expect(hex(changeLeafHash(reordered))).toBe(hex(changeLeafHash(change)));
    expect(hex(changeLeafHash({ ...change, seq: 8 }))).not.toBe(hex(changeLeafHash(change)));
    expect(hex(changeLeafHash({ ...change, cause: { actor: "admin", via: "mqtt" } }))).not.toBe(
      hex(changeLeafHash(change)),
    );
  });
});

describe("MerkleFrontier", () => {
  it("has the batch root at every size", () => {
    const leaves = leavesOf(300);
    const frontier = new MerkleFrontier();
    const hasher = inMemorySubtreeHasher(leaves);
    for (let n = 1; n <= leaves.length; n++) {
      frontier.append(leaves[n - 1] as Uint8Array);
      expect(frontier.size).toBe(n);
      expect(hex(frontier.root())).toBe(hex(hasher(0, n)));
      if (n <= 64) expect(hex(frontier.root())).toBe(hex(rootHash(leaves.slice(0, n))));
    }
  });

  it("reports every perfect subtree a leaf completes, once, with the hash of its leaves", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 150 }), fc.integer({ min: 1, max: 150 }), (before, count) => {
        const leaves = leavesOf(before + count);
        const hasher = inMemorySubtreeHasher(leaves);
        const frontier = new MerkleFrontier();
        for (const leaf of leaves.slice(0, before)) frontier.append(leaf);
        const seen: string[] = [];
        for (const leaf of leaves.slice(before)) {
          frontier.append(leaf, (level, index, hash) => {
            const width = 2 ** level;
            seen.push(`${level}/${index}`);
            // It ends at the new size, and its hash is the Merkle Tree Hash of its leaves.
            expect((index + 1) * width).toBe(frontier.size + 1);
            expect(hex(hash)).toBe(hex(hasher(index * width, (index + 1) * width)));
          });
        }
        // Exactly the subtrees of two or more leaves that end in (before, before + count].
        const expected: string[] = [];
        for (let end = before + 1; end <= before + count; end++) {
          for (let level = 1; end % 2 ** level === 0; level++)
            expected.push(`${level}/${end / 2 ** level - 1}`);
        }
        expect(seen).toEqual(expected);
      }),
      { numRuns: 60 },
    );
  });

  it("keeps one hash per set bit of its size", () => {
    const frontier = new MerkleFrontier();
    for (const leaf of leavesOf(11)) frontier.append(leaf);
    expect(frontier.toJSON().hashes).toHaveLength(3); // 11 = 0b1011
  });

  it("round-trips through JSON and carries on appending to the same roots", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 200 }), fc.integer({ min: 0, max: 40 }), (split, more) => {
        const leaves = leavesOf(split + more);
        const frontier = new MerkleFrontier();
        leaves.slice(0, split).forEach((leaf) => frontier.append(leaf));
        const json = JSON.parse(JSON.stringify(frontier)) as unknown;
        const restored = MerkleFrontier.fromJSON(json);
        expect(restored.toJSON()).toEqual(frontier.toJSON());
        leaves.slice(split).forEach((leaf) => restored.append(leaf));
        expect(restored.size).toBe(leaves.length);
        expect(hex(restored.root())).toBe(hex(rootHash(leaves)));
      }),
      { numRuns: 50 },
    );
  });

  it("writes each root's hex as it is now, however the frontier grew, was cloned or restored", () => {
    // toJSON keeps the hex of roots it wrote before: after every append, and for a clone that
    // grows apart from its original, it must still be the hex of the roots the frontier has.
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 130 }),
        fc.integer({ min: 1, max: 70 }),
        fc.integer({ min: 1, max: 70 }),
        (start, forOriginal, forClone) => {
          const leaves = leavesOf(start + forOriginal + forClone);
          const expected = (n: number) => {
            const fresh = new MerkleFrontier();
            leaves.slice(0, n).forEach((leaf) => fresh.append(leaf));
            // The roots of the perfect subtrees, largest first, from the definition.
            const roots: string[] = [];
            for (let end = 0, bit = 2 ** 30; bit >= 1; bit /= 2) {
              if ((n & bit) === 0) continue;
              roots.push(hex(rootHash(leaves.slice(end, end + bit))));
              end += bit;
            }
            return { size: n, hashes: roots };
          };
          const frontier = new MerkleFrontier();
          for (const [i, leaf] of leaves.slice(0, start).entries()) {
            frontier.append(leaf);
            if (i % 7 === 0) expect(frontier.toJSON()).toEqual(expected(i + 1));
          }
          const restored = MerkleFrontier.fromJSON(frontier.toJSON());
          const clone = frontier.clone();
          leaves.slice(start, start + forOriginal).forEach((leaf) => {
            frontier.append(leaf);
            restored.append(leaf);
          });
          expect(frontier.toJSON()).toEqual(expected(start + forOriginal));
          expect(restored.toJSON()).toEqual(expected(start + forOriginal));
          // The clone takes other leaves than the original after the split, checked at each one
          // against a frontier that never wrote its JSON before.
          const cloneLeaves = [...leaves.slice(0, start)];
          for (const leaf of leaves.slice(start + forOriginal)) {
            clone.append(leaf);
            cloneLeaves.push(leaf);
            const other = new MerkleFrontier();
            cloneLeaves.forEach((l) => other.append(l));
            expect(clone.toJSON()).toEqual(other.toJSON());
          }
        },
      ),
      { numRuns: 60 },
    );
  });

  it("rejects JSON that is not a frontier", () => {
    const good = new MerkleFrontier();
    leavesOf(5).forEach((leaf) => good.append(leaf));
    const { size, hashes } = good.toJSON();
    for (const bad of [
      null,
      [],
      { size: -1, hashes: [] },
      { size: 1.5, hashes: [] },
      { size: "5", hashes },
      { size, hashes: hashes.slice(1) },
      { size: 4, hashes },
      { size, hashes: [hashes[0], (hashes[1] ?? "").toUpperCase()] },
      { size, hashes: [hashes[0], "00"] },
      { size, hashes: [hashes[0], 7] },
    ]) {
      expect(() => MerkleFrontier.fromJSON(bad), JSON.stringify(bad)).toThrow(ValidationError);
    }
  });

  it("clones independently, for rolling back a failed commit", () => {
    const leaves = leavesOf(9);
    const frontier = new MerkleFrontier();
    leaves.slice(0, 5).forEach((leaf) => frontier.append(leaf));
    const saved = frontier.clone();
    leaves.slice(5).forEach((leaf) => frontier.append(leaf));
    expect(saved.size).toBe(5);
    expect(hex(saved.root())).toBe(hex(rootHash(leaves.slice(0, 5))));
    expect(hex(frontier.root())).toBe(hex(rootHash(leaves)));
  });

  it("takes appended leaves back out with unappend, to the frontier it was at any size before (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 140 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 40 }), fc.integer({ min: 0, max: 40 })), {
          minLength: 1,
          maxLength: 6,
        }),
        (start, steps) => {
          const leaves = leavesOf(start + 40 * steps.length);
          const frontier = new MerkleFrontier();
          leaves.slice(0, start).forEach((leaf) => frontier.append(leaf));
          // toJSON keeps each root's hex: what it wrote before must not outlive an unappend.
          frontier.toJSON();
          const merged: Uint8Array[] = [];
          let size = start;
          for (const [add, remove] of steps) {
            for (const leaf of leaves.slice(size, size + add)) frontier.append(leaf, undefined, merged);
            size += add;
            const back = Math.min(remove, size - start);
            for (let i = 0; i < back; i++) frontier.unappend(merged);
            size -= back;
            const fresh = new MerkleFrontier();
            leaves.slice(0, size).forEach((leaf) => fresh.append(leaf));
            expect(frontier.size).toBe(size);
            expect(frontier.toJSON()).toEqual(fresh.toJSON());
            expect(hex(frontier.root())).toBe(hex(fresh.root()));
          }
          // Everything appended since `start` taken back: nothing is left of what it merged.
          while (frontier.size > start) frontier.unappend(merged);
          expect(merged).toEqual([]);
          // And it goes on exactly from there.
          leaves.slice(start).forEach((leaf) => frontier.append(leaf));
          expect(hex(frontier.root())).toBe(hex(rootHash(leaves)));
        },
      ),
      { numRuns: 80 },
    );
  });

  it("writes toJSONText as JSON.stringify writes toJSON, however it grew, shrank, was cloned or restored (property)", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 300 }),
        fc.array(fc.tuple(fc.integer({ min: 0, max: 70 }), fc.integer({ min: 0, max: 40 }), fc.boolean()), {
          minLength: 1,
          maxLength: 8,
        }),
        (start, steps) => {
          const leaves = leavesOf(start + 70 * steps.length);
          let frontier = new MerkleFrontier();
          const text = () => JSON.stringify(frontier.toJSON());
          expect(frontier.toJSONText()).toBe(text());
          leaves.slice(0, start).forEach((leaf) => frontier.append(leaf));
          expect(frontier.toJSONText()).toBe(text());
          let merged: Uint8Array[] = [];
          let size = start;
          // Where `merged` begins: unappend goes back no further.
          let from = start;
          for (const [add, remove, copy] of steps) {
            for (const leaf of leaves.slice(size, size + add)) {
              frontier.append(leaf, undefined, merged);
              if (leaf[0] !== undefined && leaf[0] % 5 === 0) expect(frontier.toJSONText()).toBe(text());
            }
            size += add;
            for (const end = Math.max(from, size - remove); size > end; size--) frontier.unappend(merged);
            expect(frontier.toJSONText()).toBe(text());
            if (copy) {
              // A copy, or one read back from its JSON, goes on alone from here.
              frontier =
                size % 2 === 0
                  ? frontier.clone()
                  : MerkleFrontier.fromJSON(JSON.parse(frontier.toJSONText()));
              merged = [];
              from = size;
            }
          }
          expect(frontier.size).toBe(size);
        },
      ),
      { numRuns: 80 },
    );
  });

  it("refuses to unappend without what the append merged, or from an empty tree", () => {
    const frontier = new MerkleFrontier();
    expect(() => frontier.unappend([])).toThrow(RangeError);
    leavesOf(3).forEach((leaf) => frontier.append(leaf));
    // The 4th leaf merges with two roots; they are not given.
    frontier.append(leavesOf(4)[3] as Uint8Array);
    expect(() => frontier.unappend([])).toThrow(RangeError);
  });

  it("refuses a leaf hash of the wrong length", () => {
    expect(() => new MerkleFrontier().append(new Uint8Array(31))).toThrow(RangeError);
  });
});

describe("inclusion proofs (RFC 9162 §2.1.3)", () => {
  it("matches the RFC 6962 reference proofs", () => {
    const hasher = inMemorySubtreeHasher(rfcLeaves);
    const cases: Array<[index: number, size: number, proof: string[]]> = [
      [0, 1, []],
      [
        0,
        8,
        [
          "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
          "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
          "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
      ],
      [
        5,
        8,
        [
          "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
          "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
          "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
      ],
      [2, 3, ["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"]],
      [
        1,
        5,
        [
          "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
          "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
          "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
      ],
    ];
    for (const [index, size, expected] of cases) {
      const proof = inclusionProof(index, size, hasher);
      expect(proof.map(hex), `${index} in ${size}`).toEqual(expected);
      const root = unhex(RFC_ROOTS[size - 1] ?? "");
      expect(verifyInclusion(rfcLeaves[index] as Uint8Array, index, size, proof, root)).toBe(true);
    }
  });

  it("verifies every leaf's proof and rejects a tampered leaf, proof, index or root, for sizes 1..300", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 300 }), fc.nat(), (size, seed) => {
        const leaves = leavesOf(size);
        const hasher = inMemorySubtreeHasher(leaves);
        const root = hasher(0, size);
        for (let index = 0; index < size; index++) {
          const leaf = leaves[index] as Uint8Array;
          const proof = inclusionProof(index, size, hasher);
          expect(verifyInclusion(leaf, index, size, proof, root)).toBe(true);
          expect(verifyInclusion(flip(leaf, seed % 256), index, size, proof, root)).toBe(false);
          expect(verifyInclusion(leaf, index, size, proof, flip(root, seed % 256))).toBe(false);
          if (size > 1) expect(verifyInclusion(leaf, (index + 1) % size, size, proof, root)).toBe(false);
          if (proof.length > 0) {
            const at = seed % proof.length;
            const tampered = proof.map((p, i) => (i === at ? flip(p, seed % 256) : p));
            expect(verifyInclusion(leaf, index, size, tampered, root)).toBe(false);
            expect(verifyInclusion(leaf, index, size, proof.slice(1), root)).toBe(false);
          }
          expect(verifyInclusion(leaf, index, size, [...proof, root], root)).toBe(false);
        }
      }),
      { numRuns: 40 },
    );
  });

  it("produces the proof of the recursive definition", () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 70 })
          .chain((size) => fc.tuple(fc.constant(size), fc.nat({ max: size - 1 }))),
        ([size, index]) => {
          const leaves = leavesOf(size);
          expect(inclusionProof(index, size, inMemorySubtreeHasher(leaves)).map(hex)).toEqual(
            referencePath(index, leaves).map(hex),
          );
        },
      ),
    );
  });

  it("asks only for ranges a store can compute, and works past 32-bit sizes", () => {
    expect(inclusionProofRanges(5, 8)).toEqual([
      [4, 5],
      [6, 8],
      [0, 4],
    ]);
    const size = 2 ** 33 + 1;
    expect(inclusionProofRanges(2 ** 33, size)).toEqual([[0, 2 ** 33]]);
    const left = leafHash(new Uint8Array([1])); // stands for the root of the first 2^33 leaves
    const last = leafHash(new Uint8Array([2]));
    expect(verifyInclusion(last, 2 ** 33, size, [left], nodeHash(left, last))).toBe(true);
    expect(verifyInclusion(last, 2 ** 33 - 1, size, [left], nodeHash(left, last))).toBe(false);
  });

  it("rejects impossible indices and sizes", () => {
    const hasher = inMemorySubtreeHasher(leavesOf(4));
    expect(() => inclusionProof(4, 4, hasher)).toThrow(ValidationError);
    expect(() => inclusionProof(-1, 4, hasher)).toThrow(ValidationError);
    expect(() => inclusionProof(0, 0, hasher)).toThrow(ValidationError);
    expect(() => inclusionProof(0, 1.5, hasher)).toThrow(ValidationError);
    const leaf = leavesOf(1)[0] as Uint8Array;
    expect(verifyInclusion(leaf, 0, 1, [], leaf)).toBe(true);
    expect(verifyInclusion(leaf, 1, 1, [], leaf)).toBe(false);
    expect(verifyInclusion(leaf, 0, 0, [], leaf)).toBe(false);
    expect(verifyInclusion(leaf, 0, 1, [], leaf.subarray(1))).toBe(false);
    expect(verifyInclusion(leaf, 0, 2, [new Uint8Array(31)], leaf)).toBe(false);
  });
});

describe("consistency proofs (RFC 9162 §2.1.4)", () => {
  it("matches the RFC 6962 reference proofs", () => {
    const hasher = inMemorySubtreeHasher(rfcLeaves);
    const cases: Array<[oldSize: number, newSize: number, proof: string[]]> = [
      [1, 1, []],
      [
        1,
        8,
        [
          "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
          "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
          "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
        ],
      ],
      [
        6,
        8,
        [
          "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
          "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
          "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
      ],
      [
        2,
        5,
        [
          "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
          "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
        ],
      ],
      [
        6,
        7,
        [
          "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
          "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
          "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
        ],
      ],
    ];
    for (const [oldSize, newSize, expected] of cases) {
      const proof = consistencyProof(oldSize, newSize, hasher);
      expect(proof.map(hex), `${oldSize} to ${newSize}`).toEqual(expected);
      const oldRoot = unhex(RFC_ROOTS[oldSize - 1] ?? "");
      const newRoot = unhex(RFC_ROOTS[newSize - 1] ?? "");
      expect(verifyConsistency(oldSize, newSize, proof, oldRoot, newRoot)).toBe(true);
    }
  });

  it("verifies every proof m <= n and rejects an altered root or proof, for sizes 1..300", () => {
    fc.assert(
      fc.property(fc.integer({ min: 1, max: 300 }), fc.nat(), (newSize, seed) => {
        const leaves = leavesOf(newSize);
        const hasher = inMemorySubtreeHasher(leaves);
        const newRoot = hasher(0, newSize);
        for (let oldSize = 0; oldSize <= newSize; oldSize++) {
          const oldRoot = oldSize === 0 ? emptyRoot() : hasher(0, oldSize);
          const proof = consistencyProof(oldSize, newSize, hasher);
          expect(verifyConsistency(oldSize, newSize, proof, oldRoot, newRoot)).toBe(true);
          expect(verifyConsistency(oldSize, newSize, proof, flip(oldRoot, seed % 256), newRoot)).toBe(false);
          if (oldSize > 0) {
            expect(verifyConsistency(oldSize, newSize, proof, oldRoot, flip(newRoot, seed % 256))).toBe(
              false,
            );
          }
          if (proof.length > 0) {
            const at = seed % proof.length;
            const tampered = proof.map((p, i) => (i === at ? flip(p, seed % 256) : p));
            expect(verifyConsistency(oldSize, newSize, tampered, oldRoot, newRoot)).toBe(false);
            expect(verifyConsistency(oldSize, newSize, proof.slice(0, -1), oldRoot, newRoot)).toBe(false);
          }
          expect(verifyConsistency(oldSize, newSize, [...proof, newRoot], oldRoot, newRoot)).toBe(false);
          if (oldSize > 0 && oldSize < newSize) {
            expect(verifyConsistency(oldSize, newSize, proof, newRoot, oldRoot)).toBe(false);
          }
        }
      }),
      { numRuns: 40 },
    );
  });

  it("produces the proof of the recursive definition", () => {
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 70 })
          .chain((size) => fc.tuple(fc.integer({ min: 1, max: size }), fc.constant(size))),
        ([oldSize, newSize]) => {
          const leaves = leavesOf(newSize);
          expect(consistencyProof(oldSize, newSize, inMemorySubtreeHasher(leaves)).map(hex)).toEqual(
            referenceSubproof(oldSize, leaves, true).map(hex),
          );
        },
      ),
    );
  });

  it("handles the trivial cases and sizes past 32 bits", () => {
    expect(consistencyProofRanges(0, 9)).toEqual([]);
    expect(consistencyProofRanges(9, 9)).toEqual([]);
    expect(() => consistencyProofRanges(10, 9)).toThrow(ValidationError);
    const root = rootHash(leavesOf(3));
    expect(verifyConsistency(3, 3, [], root, root)).toBe(true);
    expect(verifyConsistency(3, 3, [root], root, root)).toBe(false);
    expect(verifyConsistency(0, 3, [], emptyRoot(), root)).toBe(true);
    expect(verifyConsistency(0, 3, [], root, root)).toBe(false);
    expect(verifyConsistency(4, 3, [], root, root)).toBe(false);
    expect(verifyConsistency(2, 3, [], root, root)).toBe(false);

    const left = leafHash(new Uint8Array([1])); // stands for the root of the first 2^33 leaves
    const last = leafHash(new Uint8Array([2]));
    expect(consistencyProofRanges(2 ** 33, 2 ** 33 + 1)).toEqual([[2 ** 33, 2 ** 33 + 1]]);
    expect(verifyConsistency(2 ** 33, 2 ** 33 + 1, [last], left, nodeHash(left, last))).toBe(true);
  });
});

describe("hash encoding", () => {
  it("writes and reads 64 lowercase hex digits", () => {
    const h = leafHash(new Uint8Array([1, 2, 3]));
    expect(hashToHex(h)).toMatch(/^[0-9a-f]{64}$/);
    expect(hex(hashFromHex(hashToHex(h)))).toBe(hex(h));
    expect(hashToHex(h.subarray(0, 32))).toBe(hex(h));
    expect(() => hashFromHex(hashToHex(h).toUpperCase())).toThrow(ValidationError);
    expect(() => hashFromHex("abc")).toThrow(ValidationError);
  });
});
