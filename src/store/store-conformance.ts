// The conformance suite of the Store interface: every backend (sqlite/, postgres/) runs these very
// tests from its own test file, so they all keep the same contract (STYLE.md, "Interfaces").
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  ConflictError,
  NotFoundError,
  UnavailableError,
  type Cause,
  type Change,
  type RegisteredThingDescription,
} from "../core/index.js";
import type { DescribeCommand, Store, ThingRecord } from "./store.js";

/** What a backend's test hands the suite: a fresh, empty store for each test. */
export interface StoreUnderTest {
  store: Store;
  /** Opens the same database again (after `store` is closed); omit for a non-durable backend. */
  reopen?: () => Promise<Store>;
  /** Removes what `open` created (files, schemas); runs after every store is closed. */
  cleanup: () => Promise<void>;
}

const T1 = "2025-01-01T00:00:00.000Z";
const T2 = "2025-01-02T00:00:00.000Z";
const T3 = "2025-01-03T00:00:00.000Z";
const T4 = "2025-01-04T00:00:00.000Z";

const cause: Cause = { actor: "conformance", via: "test", correlation: "corr-1" };

/** Ids of one shape (lower-case ASCII, zero-padded) sort the same in every collation. */
function thingId(n: number): string {
  return `urn:test:thing-${String(n).padStart(4, "0")}`;
}

function thing(id: string, extra: Record<string, unknown> = {}): RegisteredThingDescription {
  return {
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    id,
    title: `Thing ${id}`,
    security: "nosec_sc",
    securityDefinitions: { nosec_sc: { scheme: "nosec" } },
    ...extra,
  };
}

function describeCommand(id: string, time = T1, more: Partial<DescribeCommand> = {}): DescribeCommand {
  return { td: thing(id), cause, time, ...more };
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

/** Everything a write could have touched: to show that a refused command wrote nothing. */
async function contents(store: Store): Promise<{ lastSeq: number; things: ThingRecord[]; log: Change[] }> {
  return {
    lastSeq: await store.lastSeq(),
    things: await store.listThings({ offset: 0, limit: 10_000 }),
    log: await store.changesAfter(0, 10_000),
  };
}

export function describeStoreConformance(name: string, open: () => Promise<StoreUnderTest>): void {
  describe(`Store conformance: ${name}`, () => {
    let opened: StoreUnderTest;
    let store: Store;
    const openStores = new Set<Store>();

    beforeEach(async () => {
      opened = await open();
      store = opened.store;
      openStores.add(store);
    });

    afterEach(async () => {
      for (const s of openStores) await s.close();
      openStores.clear();
      await opened.cleanup();
    });

    async function closeStore(s: Store): Promise<void> {
      openStores.delete(s);
      await s.close();
    }

    async function reopen(reopenStore: () => Promise<Store>): Promise<Store> {
      await closeStore(store);
      const again = await reopenStore();
      openStores.add(again);
      return again;
    }

    it("starts empty", async () => {
      expect(await store.lastSeq()).toBe(0);
      expect(await store.countThings()).toBe(0);
      expect(await store.listThings({ offset: 0, limit: 10 })).toEqual([]);
      expect(await collect(store.scanThings())).toEqual([]);
      expect(await store.changesAfter(0, 10)).toEqual([]);
      expect(await store.getThing(thingId(1))).toBeUndefined();
    });

    describe("describe", () => {
      it("registers a new Thing: created, version is the Change's seq, a described Change with the TD and no previous", async () => {
        const td = thing(thingId(1));
        const result = await store.describe({ td, cause, time: T1 });

        expect(result.created).toBe(true);
        expect(result.change).toStrictEqual({
          seq: 1,
          time: T1,
          thing: td.id,
          kind: "described",
          value: td,
          cause,
        });
        expect("previous" in result.change).toBe(false);
        expect(result.record).toStrictEqual({
          id: td.id,
          td,
          created: T1,
          modified: T1,
          version: result.change.seq,
        });
        expect(await store.getThing(td.id)).toStrictEqual(result.record);
        expect(await store.lastSeq()).toBe(result.change.seq);
        // What was acknowledged is exactly what the Log holds.
        expect(await store.changesAfter(0, 10)).toStrictEqual([result.change]);
      });

      it("keeps expires and ttl when given, and has neither when not", async () => {
        const withExpiry = await store.describe(
          describeCommand(thingId(1), T1, { expires: T3, ttl: 172800 }),
        );
        const without = await store.describe(describeCommand(thingId(2), T1));

        expect(withExpiry.record.expires).toBe(T3);
        expect(withExpiry.record.ttl).toBe(172800);
        expect(await store.getThing(thingId(1))).toStrictEqual(withExpiry.record);
        expect(without.record).not.toHaveProperty("expires");
        expect(without.record).not.toHaveProperty("ttl");
        expect(await store.getThing(thingId(2))).toStrictEqual(without.record);
      });

      it("replaces a Thing: not created, previous is the old TD, created kept, modified and version move", async () => {
        const id = thingId(1);
        const first = await store.describe(describeCommand(id, T1));
        const td2 = thing(id, { title: "Renamed", description: "second version" });
        const second = await store.describe({ td: td2, cause: { actor: "someone-else" }, time: T2 });

        expect(second.created).toBe(false);
        expect(second.change).toStrictEqual({
          seq: first.change.seq + 1,
          time: T2,
          thing: id,
          kind: "described",
          value: td2,
          previous: first.record.td,
          cause: { actor: "someone-else" },
        });
        expect(second.record).toStrictEqual({
          id,
          td: td2,
          created: T1,
          modified: T2,
          version: second.change.seq,
        });
        expect(await store.getThing(id)).toStrictEqual(second.record);
        expect(await store.countThings()).toBe(1);
        expect(await store.changesAfter(0, 10)).toStrictEqual([first.change, second.change]);
      });

      it("a replacement carries the whole registration: expiry given anew, or cleared when not given", async () => {
        const id = thingId(1);
        await store.describe(describeCommand(id, T1, { expires: T2, ttl: 86400 }));
        const renewed = await store.describe(describeCommand(id, T2, { expires: T3 }));
        expect(renewed.record.expires).toBe(T3);
        expect(renewed.record).not.toHaveProperty("ttl");
        expect(await store.getThing(id)).toStrictEqual(renewed.record);

        const cleared = await store.describe(describeCommand(id, T3));
        expect(cleared.record).not.toHaveProperty("expires");
        expect(await store.getThing(id)).toStrictEqual(cleared.record);
        expect(await store.expiredThings(T4, 10)).toEqual([]);
      });

      it('expect "absent" registers a Thing that does not exist', async () => {
        const result = await store.describe(describeCommand(thingId(1), T1, { expect: "absent" }));
        expect(result.created).toBe(true);
        expect(await store.getThing(thingId(1))).toStrictEqual(result.record);
      });

      it('expect "absent" fails with ConflictError when the Thing exists, and writes nothing', async () => {
        await store.describe(describeCommand(thingId(1), T1));
        const before = await contents(store);

        const attempt = store.describe({
          td: thing(thingId(1), { title: "Other" }),
          cause,
          time: T2,
          expect: "absent",
        });
        await expect(attempt).rejects.toBeInstanceOf(ConflictError);
        expect(await contents(store)).toStrictEqual(before);
      });

      it("expect <version> replaces the Thing when its version matches (compare-and-set)", async () => {
        const id = thingId(1);
        const first = await store.describe(describeCommand(id, T1));
        const td2 = thing(id, { title: "Second" });
        const second = await store.describe({ td: td2, cause, time: T2, expect: first.record.version });

        expect(second.created).toBe(false);
        expect(second.record.version).toBe(second.change.seq);
        expect(second.record.version).not.toBe(first.record.version);
        expect(second.change.previous).toStrictEqual(first.record.td);
        expect((await store.getThing(id))?.td).toStrictEqual(td2);
      });

      it("expect <version> fails with ConflictError on a stale version, and writes nothing", async () => {
        const id = thingId(1);
        const first = await store.describe(describeCommand(id, T1));
        await store.describe(describeCommand(id, T2));
        const before = await contents(store);

        const stale = store.describe({
          td: thing(id, { title: "Lost" }),
          cause,
          time: T3,
          expect: first.record.version,
        });
        await expect(stale).rejects.toBeInstanceOf(ConflictError);
        expect(await contents(store)).toStrictEqual(before);
      });

      it("expect <version> fails with ConflictError when the Thing does not exist, and writes nothing", async () => {
        await store.describe(describeCommand(thingId(1), T1));
        const before = await contents(store);

        await expect(store.describe(describeCommand(thingId(2), T2, { expect: 1 }))).rejects.toBeInstanceOf(
          ConflictError,
        );
        expect(await contents(store)).toStrictEqual(before);
      });
    });

    describe("remove", () => {
      it("removes a Thing and appends a removed Change with the TD as previous", async () => {
        const id = thingId(1);
        const described = await store.describe(describeCommand(id, T1));
        await store.describe(describeCommand(thingId(2), T1));
        const removeCause: Cause = { actor: "hub:expiry", via: "sweep" };
        const change = await store.remove({ id, cause: removeCause, time: T2 });

        expect(change).toStrictEqual({
          seq: described.change.seq + 2,
          time: T2,
          thing: id,
          kind: "removed",
          previous: described.record.td,
          cause: removeCause,
        });
        expect("value" in change).toBe(false);
        expect(await store.getThing(id)).toBeUndefined();
        expect(await store.countThings()).toBe(1);
        expect(await store.lastSeq()).toBe(change.seq);
        expect(await store.changesAfter(change.seq - 1, 10)).toStrictEqual([change]);
      });

      it("fails with NotFoundError when the Thing is absent, and writes nothing", async () => {
        await store.describe(describeCommand(thingId(1), T1));
        const before = await contents(store);

        await expect(store.remove({ id: thingId(2), cause, time: T2 })).rejects.toBeInstanceOf(NotFoundError);
        expect(await contents(store)).toStrictEqual(before);
      });

      it("removes when expect matches the version, and fails with ConflictError on a stale one", async () => {
        const id = thingId(1);
        const first = await store.describe(describeCommand(id, T1));
        const second = await store.describe(describeCommand(id, T2));
        const before = await contents(store);

        await expect(
          store.remove({ id, cause, time: T3, expect: first.record.version }),
        ).rejects.toBeInstanceOf(ConflictError);
        expect(await contents(store)).toStrictEqual(before);

        const change = await store.remove({ id, cause, time: T3, expect: second.record.version });
        expect(change.kind).toBe("removed");
        expect(await store.getThing(id)).toBeUndefined();
      });

      it("a Thing described again after removal is new: created, with a new created time", async () => {
        const id = thingId(1);
        await store.describe(describeCommand(id, T1));
        await store.remove({ id, cause, time: T2 });
        const again = await store.describe(describeCommand(id, T3));

        expect(again.created).toBe(true);
        expect("previous" in again.change).toBe(false);
        expect(again.record.created).toBe(T3);
        expect(again.record.modified).toBe(T3);
      });
    });

    describe("reading the directory", () => {
      // Inserted out of order, so that id order is the store's doing.
      const order = [3, 0, 5, 1, 4, 2];
      const sortedIds = order.map(thingId).sort();

      async function describeSix(): Promise<void> {
        for (const n of order) await store.describe(describeCommand(thingId(n), T1));
      }

      it("getThing returns undefined for an unknown id", async () => {
        await describeSix();
        expect(await store.getThing("urn:test:unknown")).toBeUndefined();
      });

      it("listThings returns Things in id order, honouring offset and limit", async () => {
        await describeSix();
        const all = await store.listThings({ offset: 0, limit: 100 });
        expect(all.map((r) => r.id)).toEqual(sortedIds);
        for (const record of all) expect(await store.getThing(record.id)).toStrictEqual(record);

        expect((await store.listThings({ offset: 2, limit: 3 })).map((r) => r.id)).toEqual(
          sortedIds.slice(2, 5),
        );
        expect((await store.listThings({ offset: 4, limit: 10 })).map((r) => r.id)).toEqual(
          sortedIds.slice(4),
        );
        expect(await store.listThings({ offset: 6, limit: 10 })).toEqual([]);
        expect(await store.listThings({ offset: 0, limit: 0 })).toEqual([]);
      });

      it("countThings counts registered Things, not removed ones", async () => {
        await describeSix();
        expect(await store.countThings()).toBe(6);
        await store.describe(describeCommand(thingId(0), T2));
        expect(await store.countThings()).toBe(6);
        await store.remove({ id: thingId(0), cause, time: T2 });
        expect(await store.countThings()).toBe(5);
      });

      it.each([1, 2, 3, 4, 5, 6, 7, 100, undefined])(
        "scanThings(%s) yields every Thing once, in id order, across page boundaries",
        async (batchSize) => {
          await describeSix();
          const all = await store.listThings({ offset: 0, limit: 100 });
          expect(await collect(store.scanThings(batchSize))).toStrictEqual(all);
        },
      );

      it("expiredThings returns the Things whose expiry is at or before the time, at most limit", async () => {
        await store.describe(describeCommand(thingId(1), T1, { expires: T2 }));
        await store.describe(describeCommand(thingId(2), T1, { expires: T3 }));
        await store.describe(describeCommand(thingId(3), T1, { expires: T4 }));
        await store.describe(describeCommand(thingId(4), T1));
        await store.describe(describeCommand(thingId(5), T1, { expires: T2 }));
        await store.remove({ id: thingId(5), cause, time: T1 });

        expect(await store.expiredThings(T1, 10)).toEqual([]);
        expect(await store.expiredThings(T2, 10)).toEqual([thingId(1)]);
        expect((await store.expiredThings(T3, 10)).sort()).toEqual([thingId(1), thingId(2)]);
        expect((await store.expiredThings(T4, 10)).sort()).toEqual([thingId(1), thingId(2), thingId(3)]);
        const limited = await store.expiredThings(T4, 2);
        expect(limited).toHaveLength(2);
        expect(new Set(limited).size).toBe(2);
        for (const id of limited) expect([thingId(1), thingId(2), thingId(3)]).toContain(id);
      });
    });

    describe("the Log", () => {
      it("changesAfter returns Changes oldest first, after a seq, at most limit; lastSeq is the newest", async () => {
        for (const n of [1, 2, 3]) await store.describe(describeCommand(thingId(n), T1));
        await store.describe(describeCommand(thingId(1), T2));
        await store.remove({ id: thingId(2), cause, time: T3 });

        const log = await store.changesAfter(0, 100);
        expect(log.map((c) => c.seq)).toEqual([1, 2, 3, 4, 5]);
        expect(log.map((c) => [c.thing, c.kind])).toEqual([
          [thingId(1), "described"],
          [thingId(2), "described"],
          [thingId(3), "described"],
          [thingId(1), "described"],
          [thingId(2), "removed"],
        ]);
        expect(await store.changesAfter(2, 2)).toStrictEqual(log.slice(2, 4));
        expect(await store.changesAfter(4, 100)).toStrictEqual(log.slice(4));
        expect(await store.changesAfter(5, 100)).toEqual([]);
        expect(await store.changesAfter(0, 0)).toEqual([]);
        expect(await store.lastSeq()).toBe(5);
      });

      it("numbers Changes 1..N without gaps across mixed operations, refused ones included", async () => {
        const acknowledged: number[] = [];
        const ack = (change: Change): void => void acknowledged.push(change.seq);
        const refused = async (attempt: Promise<unknown>): Promise<void> => {
          await expect(attempt).rejects.toBeInstanceOf(Error);
        };

        ack((await store.describe(describeCommand(thingId(1), T1))).change);
        ack((await store.describe(describeCommand(thingId(2), T1))).change);
        await refused(store.describe(describeCommand(thingId(1), T2, { expect: "absent" })));
        const replaced = await store.describe(describeCommand(thingId(1), T2));
        ack(replaced.change);
        await refused(
          store.describe(describeCommand(thingId(1), T2, { expect: replaced.record.version - 1 })),
        );
        ack(await store.remove({ id: thingId(2), cause, time: T2 }));
        await refused(store.remove({ id: thingId(2), cause, time: T3 }));
        await refused(store.remove({ id: thingId(1), cause, time: T3, expect: 1 }));
        ack((await store.describe(describeCommand(thingId(2), T3))).change);
        ack(await store.remove({ id: thingId(1), cause, time: T3, expect: replaced.record.version }));

        expect(acknowledged).toEqual(range(1, 6));
        expect((await store.changesAfter(0, 100)).map((c) => c.seq)).toEqual(range(1, 6));
        expect(await store.lastSeq()).toBe(6);
      });
    });

    describe("concurrent commands", () => {
      it("500 describes issued at once all commit, with distinct consecutive seqs", async () => {
        const ids = range(1, 500).map(thingId);
        const results = await Promise.all(ids.map((id) => store.describe(describeCommand(id, T1))));

        const seqs = results.map((r) => r.change.seq).sort((a, b) => a - b);
        expect(seqs).toEqual(range(1, 500));
        for (const [i, result] of results.entries()) {
          expect(result.created).toBe(true);
          expect(result.record.id).toBe(ids[i]);
          expect(result.record.version).toBe(result.change.seq);
        }
        expect(await store.countThings()).toBe(500);
        expect(await store.lastSeq()).toBe(500);
        const log = await store.changesAfter(0, 1000);
        expect(log).toStrictEqual(results.map((r) => r.change).sort((a, b) => a.seq - b.seq));
      });

      it("in one batch, a failing command rejects alone while the others commit", async () => {
        const existing = await store.describe(describeCommand(thingId(1), T1));
        const before = await store.lastSeq();

        const settled = await Promise.allSettled([
          store.describe(describeCommand(thingId(2), T2)),
          store.describe(describeCommand(thingId(1), T2, { expect: "absent" })),
          store.describe(describeCommand(thingId(3), T2)),
          store.remove({ id: thingId(9), cause, time: T2 }),
          store.remove({ id: thingId(1), cause, time: T2, expect: existing.record.version + 1000 }),
          store.describe(describeCommand(thingId(4), T2)),
        ]);

        expect(settled.map((s) => s.status)).toEqual([
          "fulfilled",
          "rejected",
          "fulfilled",
          "rejected",
          "rejected",
          "fulfilled",
        ]);
        const reasons = settled.flatMap((s) => (s.status === "rejected" ? [s.reason as unknown] : []));
        expect(reasons[0]).toBeInstanceOf(ConflictError);
        expect(reasons[1]).toBeInstanceOf(NotFoundError);
        expect(reasons[2]).toBeInstanceOf(ConflictError);

        const log = await store.changesAfter(before, 100);
        expect(log.map((c) => c.seq)).toEqual(range(before + 1, before + 3));
        expect(log.map((c) => c.thing).sort()).toEqual([thingId(2), thingId(3), thingId(4)]);
        expect(await store.getThing(thingId(1))).toStrictEqual(existing.record);
        expect(await store.countThings()).toBe(4);
      });

      it("of concurrent compare-and-sets on one version, exactly one wins", async () => {
        const id = thingId(1);
        const first = await store.describe(describeCommand(id, T1));
        const settled = await Promise.allSettled(
          range(1, 10).map((n) =>
            store.describe({
              td: thing(id, { title: `Attempt ${n}` }),
              cause,
              time: T2,
              expect: first.record.version,
            }),
          ),
        );

        const winners = settled.flatMap((s) => (s.status === "fulfilled" ? [s.value] : []));
        expect(winners).toHaveLength(1);
        for (const s of settled) if (s.status === "rejected") expect(s.reason).toBeInstanceOf(ConflictError);
        expect(await store.getThing(id)).toStrictEqual(winners[0]?.record);
        expect(await store.lastSeq()).toBe(2);
      });
    });

    describe("values", () => {
      const td = thing(thingId(1), {
        title: "Température — 温度 — درجة الحرارة — 🌡️",
        description: 'e\u0301 is not \u00e9; tab\t, newline\n, quote", backslash\\, <script>&amp;',
        titles: { fr: "Capteur", ja: "センサー", "zh-Hant": "感測器" },
        "ex:numbers": [
          0,
          1,
          -1,
          1.5,
          -2.25,
          0.1,
          1e-7,
          1e21,
          123456789.123456,
          Number.MAX_SAFE_INTEGER,
          -Number.MAX_SAFE_INTEGER,
          1.7976931348623157e308,
          5e-324,
        ],
        "ex:nested": { a: { b: { c: [[1, [2, [3, { d: null }]]], {}, []] } }, "🔑": "clé", "": "empty key" },
        "ex:scalars": [true, false, null, "", " "],
        properties: {
          temperature: { type: "number", unit: "°C", forms: [{ href: "https://example.com/t?a=1&b=%20" }] },
        },
      });
      const fullCause: Cause = {
        actor: "ålice",
        via: "mqtt",
        release: "sha256:abc",
        rule: "r-1",
        correlation: "∆-1",
      };

      it("a TD and a cause round-trip exactly through every read", async () => {
        const result = await store.describe({ td, cause: fullCause, time: T1 });
        const expected: ThingRecord = {
          id: td.id,
          td,
          created: T1,
          modified: T1,
          version: result.change.seq,
        };

        expect(result.record).toStrictEqual(expected);
        expect(await store.getThing(td.id)).toStrictEqual(expected);
        expect(await store.listThings({ offset: 0, limit: 10 })).toStrictEqual([expected]);
        expect(await collect(store.scanThings())).toStrictEqual([expected]);
        const [change] = await store.changesAfter(0, 10);
        expect(change?.value).toStrictEqual(td);
        expect(change?.cause).toStrictEqual(fullCause);

        const removed = await store.remove({ id: td.id, cause: fullCause, time: T2 });
        expect(removed.previous).toStrictEqual(td);
        expect((await store.changesAfter(1, 10))[0]?.previous).toStrictEqual(td);
      });

      it("a TD round-trips exactly after reopening", async ({ skip }) => {
        const reopenStore = opened.reopen ?? skip("this backend cannot reopen its database");
        const result = await store.describe({ td, cause: fullCause, time: T1 });
        const again = await reopen(reopenStore);
        expect(await again.getThing(td.id)).toStrictEqual(result.record);
        expect(await again.changesAfter(0, 10)).toStrictEqual([result.change]);
      });
    });

    describe("close", () => {
      it("commits every queued write before close() resolves; writes after close() reject", async ({
        skip,
      }) => {
        const ids = range(1, 50).map(thingId);
        let committed = 0;
        const writes = ids.map((id) => store.describe(describeCommand(id, T1)));
        for (const w of writes) void w.then(() => committed++);
        const outcomes = Promise.allSettled(writes);

        const closing = closeStore(store);
        const late = Promise.allSettled([
          store.describe(describeCommand(thingId(900), T1)),
          store.remove({ id: thingId(1), cause, time: T2 }),
        ]);
        await closing;

        expect(committed).toBe(ids.length);
        expect((await outcomes).every((o) => o.status === "fulfilled")).toBe(true);
        for (const o of await late) {
          expect(o.status).toBe("rejected");
          if (o.status === "rejected") expect(o.reason).toBeInstanceOf(UnavailableError);
        }
        await expect(store.describe(describeCommand(thingId(901), T1))).rejects.toBeInstanceOf(
          UnavailableError,
        );
        // Reads on a closed store reject too (they do not throw where a promise is expected).
        await expect(store.getThing(thingId(1))).rejects.toBeInstanceOf(Error);
        await expect(store.lastSeq()).rejects.toBeInstanceOf(Error);

        const reopenStore = opened.reopen ?? skip("this backend cannot reopen its database");
        const again = await reopenStore();
        openStores.add(again);
        for (const id of ids) expect(await again.getThing(id)).toBeDefined();
        expect(await again.countThings()).toBe(ids.length);
        expect(await again.getThing(thingId(900))).toBeUndefined();
        expect(await again.lastSeq()).toBe(ids.length);
      });

      it("close() may be called more than once, and every call waits for the queued writes", async () => {
        const write = store.describe(describeCommand(thingId(1), T1));
        let committed = false;
        void write.then(() => (committed = true));
        const first = store.close();
        const second = store.close();
        await second;
        expect(committed).toBe(true);
        await first;
        await closeStore(store);
        await expect(write).resolves.toMatchObject({ created: true });
      });
    });

    describe("persistence", () => {
      it("keeps the directory and the Log across reopening, and goes on numbering from there", async ({
        skip,
      }) => {
        const reopenStore = opened.reopen ?? skip("this backend cannot reopen its database");
        await store.describe(describeCommand(thingId(1), T1, { expires: T4, ttl: 259200 }));
        await store.describe(describeCommand(thingId(2), T1));
        await store.describe(describeCommand(thingId(3), T1));
        await store.describe({ td: thing(thingId(1), { title: "Second" }), cause, time: T2, expires: T4 });
        await store.remove({ id: thingId(3), cause, time: T3 });
        const before = await contents(store);

        const again = await reopen(reopenStore);
        expect(await contents(again)).toStrictEqual(before);
        expect(await again.countThings()).toBe(2);
        expect(await again.expiredThings(T4, 10)).toEqual([thingId(1)]);

        const version = before.things.find((r) => r.id === thingId(2))?.version;
        expect(version).toBeDefined();
        const next = await again.describe(describeCommand(thingId(2), T3, { expect: version }));
        expect(next.change.seq).toBe(before.lastSeq + 1);
        expect(next.change.previous).toStrictEqual(thing(thingId(2)));
      });
    });
  });
}
