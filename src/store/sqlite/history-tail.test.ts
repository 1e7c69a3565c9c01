// HistoryTail: the in-memory end of the history index — per-stream ranges and latest entries, and
// merge cycles that hand entries out in index order, chunk by chunk, until they are removed.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { HistoryTail, StreamOrder, splitStreamKey, streamKey, type TailEntry } from "./history-tail.js";

const A = streamKey("urn:t:a", "temperature", "reported");
const B = streamKey("urn:t:a", "", "described");
const C = streamKey("urn:t:b", "temperature", "reported");

/** Runs a whole cycle as the store does: write a chunk, then remove it from the tail. */
function runCycle(tail: HistoryTail, upTo: number, limit: number): TailEntry[][] {
  const cycle = tail.beginMerge(upTo);
  const chunks: TailEntry[][] = [];
  for (let chunk = cycle.nextChunk(limit); chunk.length > 0; chunk = cycle.nextChunk(limit)) {
    chunks.push(chunk);
    tail.remove(chunk);
  }
  return chunks;
}

/** Index order: stream key, then seq. */
function byIndexOrder(a: TailEntry, b: TailEntry): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : a.seq - b.seq;
}

describe("streamKey", () => {
  it("splits back into thing, affordance and kind, the empty affordance included", () => {
    expect(splitStreamKey(streamKey("urn:t:a", "temperature", "reported"))).toEqual([
      "urn:t:a",
      "temperature",
      "reported",
    ]);
    expect(splitStreamKey(streamKey("urn:t:a", "", "described"))).toEqual(["urn:t:a", "", "described"]);
  });

  it("round-trips any parts without U+0000, and sorts like the (thing, affordance, kind) tuple", () => {
    const part = fc.string({ unit: "grapheme", maxLength: 6 }).filter((s) => !s.includes("\u0000"));
    const parts = fc.tuple(part, part, part);
    fc.assert(
      fc.property(parts, parts, (x, y) => {
        expect(splitStreamKey(streamKey(...x))).toEqual(x);
        const tupleOrder = x[0] !== y[0] ? x[0] < y[0] : x[1] !== y[1] ? x[1] < y[1] : x[2] < y[2];
        const keyOrder = streamKey(...x) < streamKey(...y);
        if (x.some((p, i) => p !== y[i])) expect(keyOrder).toBe(tupleOrder);
      }),
    );
  });
});

describe("StreamOrder", () => {
  it("property: keys added in any waves, repeated or not, come out once each in ascending order", () => {
    const key = fc.string({ maxLength: 5 });
    fc.assert(
      fc.property(fc.array(fc.array(key, { maxLength: 20 }), { maxLength: 6 }), (waves) => {
        const order = new StreamOrder();
        const seen = new Set<string>();
        for (const wave of waves) {
          for (const k of wave) {
            order.add(k);
            seen.add(k);
          }
          const expected = [...seen].sort();
          expect(order.sorted()).toEqual(expected);
          expect(order.size).toBe(expected.length);
        }
      }),
    );
  });

  it("property: with a rank, keys come out once each in the order of their ranks, each ranked once", () => {
    const key = fc.string({ maxLength: 5 });
    fc.assert(
      fc.property(
        fc.array(fc.array(key, { maxLength: 20 }), { maxLength: 6 }),
        fc.integer(),
        (waves, seed) => {
          // Distinct ranks in no relation to the keys' own order (as stream numbers are).
          const ranks = new Map<string, number>();
          const calls = new Map<string, number>();
          const rank = (k: string): number => {
            calls.set(k, (calls.get(k) ?? 0) + 1);
            let r = ranks.get(k);
            if (r === undefined) ranks.set(k, (r = (Math.imul(ranks.size + 1, 2654435761) ^ seed) >>> 0));
            return r;
          };
          const order = new StreamOrder(rank);
          const seen = new Set<string>();
          for (const wave of waves) {
            for (const k of wave) {
              order.add(k);
              seen.add(k);
            }
            const sorted = order.sorted();
            expect(sorted).toEqual([...seen].sort((a, b) => (ranks.get(a) ?? 0) - (ranks.get(b) ?? 0)));
          }
          for (const k of seen) expect(calls.get(k), k).toBe(1);
        },
      ),
    );
  });

  it("keeps an array it handed out unchanged when keys arrive later (a merge cycle walks it)", () => {
    const order = new StreamOrder();
    order.add("b");
    order.add("d");
    const walked = order.sorted();
    order.add("a");
    order.add("c");
    expect(walked).toEqual(["b", "d"]);
    expect(order.sorted()).toEqual(["a", "b", "c", "d"]);
  });

  it("reset forgets every key but the given ones", () => {
    const order = new StreamOrder();
    for (const k of ["x", "y", "z"]) order.add(k);
    order.reset(["z", "w"]);
    expect(order.sorted()).toEqual(["w", "z"]);
    expect(order.size).toBe(2);
  });
});

describe("HistoryTail", () => {
  it("range returns one stream's seqs with after < seq < before, ascending", () => {
    const tail = new HistoryTail();
    for (const seq of [2, 5, 9, 14]) tail.add(A, seq);
    tail.add(B, 3);
    expect(tail.size).toBe(5);
    expect(tail.range(A, 0, Number.MAX_SAFE_INTEGER)).toEqual([2, 5, 9, 14]);
    expect(tail.range(A, 2, 14)).toEqual([5, 9]);
    expect(tail.range(A, 1, 15)).toEqual([2, 5, 9, 14]);
    expect(tail.range(A, 14, 100)).toEqual([]);
    expect(tail.range(A, 9, 9)).toEqual([]);
    expect(tail.range(B, 0, 10)).toEqual([3]);
    expect(tail.range(C, 0, 10)).toEqual([]);
  });

  it("latest returns a stream's greatest seq at or below a position, or undefined", () => {
    const tail = new HistoryTail();
    for (const seq of [2, 5, 9]) tail.add(A, seq);
    expect(tail.latest(A, 1)).toBeUndefined();
    expect(tail.latest(A, 2)).toBe(2);
    expect(tail.latest(A, 8)).toBe(5);
    expect(tail.latest(A, 9)).toBe(9);
    expect(tail.latest(A, 1000)).toBe(9);
    expect(tail.latest(C, 1000)).toBeUndefined();
  });

  it("has tells whether one entry is in the tail", () => {
    const tail = new HistoryTail();
    tail.add(A, 4);
    expect(tail.has(A, 4)).toBe(true);
    expect(tail.has(A, 5)).toBe(false);
    expect(tail.has(B, 4)).toBe(false);
  });

  it("remove forgets the given entries, ignores unknown ones, and drops emptied streams", () => {
    const tail = new HistoryTail();
    for (const seq of [1, 2, 3]) tail.add(A, seq);
    tail.add(B, 4);
    tail.remove([
      { key: A, seq: 2 },
      { key: A, seq: 99 },
      { key: C, seq: 1 },
      { key: B, seq: 4 },
    ]);
    expect(tail.size).toBe(2);
    expect(tail.range(A, 0, 100)).toEqual([1, 3]);
    expect(tail.range(B, 0, 100)).toEqual([]);
    expect(tail.latest(B, 100)).toBeUndefined();
    // A removed stream that comes back starts afresh.
    tail.add(B, 7);
    expect(tail.range(B, 0, 100)).toEqual([7]);
    expect(tail.size).toBe(3);
  });

  describe("merge cycles", () => {
    it("hand out every entry up to upTo in key order, then seq order, in chunks of at most limit", () => {
      const tail = new HistoryTail();
      // Added in seq order across streams, as appends arrive.
      const added: TailEntry[] = [];
      for (let seq = 1; seq <= 30; seq++) {
        const key = [C, A, B][seq % 3] ?? A;
        tail.add(key, seq);
        added.push({ key, seq });
      }
      const chunks = runCycle(tail, 24, 4);

      for (const chunk of chunks) expect(chunk.length).toBeLessThanOrEqual(4);
      expect(chunks.slice(0, -1).every((c) => c.length === 4)).toBe(true);
      const expected = added.filter((e) => e.seq <= 24).sort(byIndexOrder);
      expect(chunks.flat()).toEqual(expected);
      // What is newer than the cycle stays, for the next one.
      expect(tail.size).toBe(6);
      for (const key of [A, B, C]) {
        expect(tail.range(key, 0, 100)).toEqual(
          added.filter((e) => e.key === key && e.seq > 24).map((e) => e.seq),
        );
      }
    });

    it("chunk inside one long stream, each chunk taking up where the one before stopped", () => {
      const tail = new HistoryTail();
      tail.add(A, 1);
      for (let seq = 2; seq <= 101; seq++) tail.add(B, seq);
      tail.add(C, 102);
      const chunks = runCycle(tail, 102, 7);

      expect(chunks.map((c) => c.length)).toEqual([...Array<number>(14).fill(7), 4]);
      expect(chunks.flat()).toEqual([
        ...Array.from({ length: 100 }, (_, i) => ({ key: B, seq: i + 2 })),
        { key: A, seq: 1 },
        { key: C, seq: 102 },
      ]);
      expect(tail.size).toBe(0);
    });

    it("leave out entries added after the cycle began (they are newer than upTo)", () => {
      const tail = new HistoryTail();
      for (let seq = 1; seq <= 5; seq++) tail.add(A, seq);
      const cycle = tail.beginMerge(5);
      const first = cycle.nextChunk(3);
      tail.remove(first);
      tail.add(A, 6);
      tail.add(B, 7); // a stream the cycle has not seen
      const second = cycle.nextChunk(10);
      tail.remove(second);

      expect([...first, ...second].map((e) => e.seq)).toEqual([1, 2, 3, 4, 5]);
      expect(cycle.nextChunk(10)).toEqual([]);
      expect(tail.range(A, 0, 100)).toEqual([6]);
      expect(tail.range(B, 0, 100)).toEqual([7]);
    });

    it("hand a chunk out again until it is removed: a chunk whose transaction rolled back is written again", () => {
      const tail = new HistoryTail();
      for (let seq = 1; seq <= 10; seq++) tail.add(seq % 2 === 0 ? A : B, seq);
      const cycle = tail.beginMerge(10);
      const first = cycle.nextChunk(4);
      // Not removed: the batch holding the chunk did not commit, and the store runs it again.
      expect(cycle.nextChunk(4)).toEqual(first);
      tail.remove(first);
      const second = cycle.nextChunk(4);
      expect(second).not.toEqual(first);
      tail.remove(second);
      const third = cycle.nextChunk(4);
      tail.remove(third);
      expect(cycle.nextChunk(4)).toEqual([]);
      expect([...first, ...second, ...third].sort(byIndexOrder)).toEqual([...first, ...second, ...third]);
      expect(new Set([...first, ...second, ...third].map((e) => e.seq)).size).toBe(10);
    });

    it("hand out the entries after a chunk still being written (chunkAfter), whether or not it was removed meanwhile", () => {
      const tail = new HistoryTail();
      for (let seq = 1; seq <= 12; seq++) tail.add(seq % 3 === 0 ? A : B, seq);
      const cycle = tail.beginMerge(11);
      const first = cycle.chunkAfter(5, undefined);
      // Built while the first is written: no entry of it again, and it ends inside a stream.
      const second = cycle.chunkAfter(5, first.end);
      expect(second.entries.some((e) => first.entries.some((f) => f.seq === e.seq))).toBe(false);
      tail.remove(first.entries);
      // The first committed before the third was built: the same entries as from its end.
      const third = cycle.chunkAfter(5, second.end);
      tail.remove(second.entries);
      expect(cycle.chunkAfter(5, third.end)).toEqual({ entries: [], end: undefined });
      tail.remove(third.entries);
      const all = [...first.entries, ...second.entries, ...third.entries];
      expect(all.map((e) => e.seq).sort((a, b) => a - b)).toEqual(
        Array.from({ length: 11 }, (_, i) => i + 1),
      );
      expect([...all].sort(byIndexOrder)).toEqual(all);
      expect(cycle.nextChunk(5)).toEqual([]);
      expect(tail.range(A, 0, 100)).toEqual([12]);
    });

    it("of an empty tail, or with nothing up to upTo, is done at once", () => {
      const tail = new HistoryTail();
      expect(tail.beginMerge(100).nextChunk(10)).toEqual([]);
      tail.add(A, 50);
      expect(tail.beginMerge(49).nextChunk(10)).toEqual([]);
      expect(tail.size).toBe(1);
    });

    it("property: a cycle writes exactly the entries up to upTo, once each, in index order; the tail keeps the rest", () => {
      const keys = [A, B, C, streamKey("urn:t:b", "", "removed"), streamKey("urn:t:c", "x", "desired")];
      fc.assert(
        fc.property(
          fc.array(fc.nat({ max: keys.length - 1 }), { maxLength: 200 }),
          fc.nat({ max: 220 }),
          fc.integer({ min: 1, max: 40 }),
          (streamOf, upTo, limit) => {
            const tail = new HistoryTail();
            const added = streamOf.map((k, i) => ({ key: keys[k] ?? A, seq: i + 1 }));
            for (const e of added) tail.add(e.key, e.seq);

            const chunks = runCycle(tail, upTo, limit);
            expect(chunks.every((c) => c.length >= 1 && c.length <= limit)).toBe(true);
            expect(chunks.flat()).toEqual(added.filter((e) => e.seq <= upTo).sort(byIndexOrder));
            const kept = added.filter((e) => e.seq > upTo);
            expect(tail.size).toBe(kept.length);
            for (const key of keys) {
              expect(tail.range(key, 0, Number.MAX_SAFE_INTEGER)).toEqual(
                kept.filter((e) => e.key === key).map((e) => e.seq),
              );
            }
          },
        ),
      );
    });
  });

  it("property: range and latest agree with a plain list of entries, whatever was removed", () => {
    fc.assert(
      fc.property(
        fc.array(fc.tuple(fc.nat({ max: 2 }), fc.boolean()), { maxLength: 120 }),
        fc.nat({ max: 130 }),
        fc.nat({ max: 130 }),
        (entries, a, b) => {
          const keys = [A, B, C];
          const tail = new HistoryTail();
          const all = entries.map(([k], i) => ({ key: keys[k] ?? A, seq: i + 1 }));
          for (const e of all) tail.add(e.key, e.seq);
          const removed = all.filter((_, i) => entries[i]?.[1] === true);
          tail.remove(removed);
          const left = all.filter((_, i) => entries[i]?.[1] !== true);
          // The same entries in index order (as a merge chunk gives them): runs per stream, some
          // of them a stream's oldest entries (cut off as a prefix), some not.
          const byIndex = new HistoryTail();
          for (const e of all) byIndex.add(e.key, e.seq);
          byIndex.remove(
            [...removed].sort((x, y) => (x.key < y.key ? -1 : x.key > y.key ? 1 : x.seq - y.seq)),
          );

          expect(tail.size).toBe(left.length);
          expect(byIndex.size).toBe(left.length);
          for (const key of keys) {
            expect(byIndex.range(key, 0, Number.MAX_SAFE_INTEGER)).toEqual(
              left.filter((e) => e.key === key).map((e) => e.seq),
            );
            const seqs = left.filter((e) => e.key === key).map((e) => e.seq);
            expect(tail.range(key, a, b)).toEqual(seqs.filter((s) => s > a && s < b));
            expect(tail.latest(key, a)).toBe(seqs.filter((s) => s <= a).at(-1));
            for (const s of seqs) expect(tail.has(key, s)).toBe(true);
          }
        },
      ),
    );
  });

  it("property: addAll in batches leaves the tail, its order of streams and its merges as add one by one", () => {
    fc.assert(
      fc.property(
        // Entries of up to 5 streams, in seq order, cut into batches (a stream may be new in a
        // batch and appear again in it).
        fc.array(fc.tuple(fc.nat({ max: 4 }), fc.nat({ max: 3 })), { maxLength: 100 }),
        (entries) => {
          const keys = [
            A,
            B,
            C,
            streamKey("urn:t:c", "humidity", "reported"),
            streamKey("urn:t:d", "", "removed"),
          ];
          const single = new HistoryTail();
          const batched = new HistoryTail();
          let batch: TailEntry[] = [];
          entries.forEach(([k, cut], i) => {
            const entry = { key: keys[k] ?? A, seq: i + 1 };
            single.add(entry.key, entry.seq);
            batch.push(entry);
            if (cut === 0) {
              batched.addAll(batch);
              batch = [];
            }
          });
          batched.addAll(batch);

          expect(batched.size).toBe(single.size);
          expect([...batched.keys()]).toEqual([...single.keys()]);
          expect(batched.order.sorted()).toEqual(single.order.sorted());
          for (const key of keys) {
            expect(batched.range(key, 0, Number.MAX_SAFE_INTEGER)).toEqual(
              single.range(key, 0, Number.MAX_SAFE_INTEGER),
            );
          }
          expect(runCycle(batched, entries.length, 7)).toEqual(runCycle(single, entries.length, 7));
        },
      ),
    );
  });
});
