// SequencedDelivery over a Log in memory: Changes accepted out of order, twice, or not at all are
// delivered in seq order, each once, gaps read from the "Store".
import { describe, expect, it } from "vitest";
import type { Change } from "../core/index.js";
import { SequencedDelivery } from "./sequenced-delivery.js";

function change(seq: number): Change {
  return {
    seq,
    hlc: `${seq}`,
    thing: "urn:test:lamp",
    kind: "reported",
    value: seq,
    cause: { actor: "test" },
  };
}

/** A Log of `size` Changes, the reads made of it, and a delivery over it. */
function setUp(size: number, options: { maxHeld?: number; pageSize?: number; failReads?: number } = {}) {
  const log = Array.from({ length: size }, (_, i) => change(i + 1));
  const reads: [number, number][] = [];
  const delivered: number[] = [];
  const errors: unknown[] = [];
  let failures = options.failReads ?? 0;
  let settled: () => void = () => undefined;
  const delivery = new SequencedDelivery({
    replay: (after, limit) => {
      reads.push([after, limit]);
      if (failures-- > 0) return Promise.reject(new Error("database away"));
      return Promise.resolve(log.filter((c) => c.seq > after).slice(0, limit));
    },
    deliver: (c) => {
      delivered.push(c.seq);
      if (c.seq === size) settled();
    },
    onError: (error) => errors.push(error),
    retryMs: 1,
    ...(options.maxHeld !== undefined && { maxHeld: options.maxHeld }),
    ...(options.pageSize !== undefined && { pageSize: options.pageSize }),
  });
  const all = new Promise<void>((resolve) => (settled = resolve));
  return { log, reads, delivered, errors, delivery, all };
}

describe("delivery in seq order across replicas", () => {
  it("passes Changes straight on before it begins", () => {
    const { delivery, delivered, reads } = setUp(3);
    delivery.accept(change(2));
    delivery.accept(change(1));
    expect(delivered).toEqual([2, 1]);
    expect(reads).toEqual([]);
  });

  it("delivers in order what arrives in order, reading nothing", () => {
    const { delivery, delivered, reads } = setUp(5);
    delivery.begin(2);
    for (const seq of [3, 4, 5]) delivery.accept(change(seq));
    expect(delivered).toEqual([3, 4, 5]);
    expect(reads).toEqual([]);
  });

  it("ignores what was delivered or read at start, and a Change twice", () => {
    const { delivery, delivered } = setUp(4);
    delivery.begin(2);
    for (const seq of [1, 2, 3, 3, 2, 4, 4]) delivery.accept(change(seq));
    expect(delivered).toEqual([3, 4]);
  });

  it("holds a Change past a gap and reads the gap from the Store", async () => {
    const { delivery, delivered, reads, all } = setUp(6);
    delivery.begin(1);
    delivery.accept(change(5));
    expect(delivered).toEqual([]);
    delivery.accept(change(6));
    await all;
    expect(delivered).toEqual([2, 3, 4, 5, 6]);
    expect(reads[0]).toEqual([1, 4]);
  });

  it("takes a Change that arrives while the gap is read without delivering it twice", async () => {
    const { delivery, delivered, all } = setUp(5);
    delivery.begin(0);
    delivery.accept(change(4));
    delivery.accept(change(1));
    delivery.accept(change(3));
    delivery.accept(change(5));
    await all;
    expect(delivered).toEqual([1, 2, 3, 4, 5]);
  });

  it("reads what the Log's head says was committed, page by page", async () => {
    const { delivery, delivered, reads, all } = setUp(7, { pageSize: 3 });
    delivery.begin(0);
    delivery.committed(7);
    await all;
    expect(delivered).toEqual([1, 2, 3, 4, 5, 6, 7]);
    expect(reads).toEqual([
      [0, 3],
      [3, 3],
      [6, 1],
    ]);
  });

  it("holds at most maxHeld Changes past a gap, reading the others from the Store", async () => {
    const { delivery, delivered, all } = setUp(50, { maxHeld: 5, pageSize: 10 });
    delivery.begin(0);
    for (let seq = 50; seq >= 2; seq--) delivery.accept(change(seq));
    await all;
    expect(delivered).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
  });

  it("reads again after a failed read, and says so", async () => {
    const { delivery, delivered, errors, all } = setUp(3, { failReads: 2 });
    delivery.begin(0);
    delivery.accept(change(3));
    await all;
    expect(delivered).toEqual([1, 2, 3]);
    expect(errors.map(String)).toEqual(["Error: database away", "Error: database away"]);
  });

  it("delivers nothing after close", async () => {
    const { delivery, delivered, reads } = setUp(3);
    delivery.begin(0);
    delivery.accept(change(2));
    delivery.close();
    delivery.accept(change(1));
    await new Promise((resolve) => setImmediate(resolve));
    expect(delivered).toEqual([]);
    expect(reads.length).toBeLessThanOrEqual(1);
  });
});
