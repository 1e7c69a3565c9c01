// The conformance suite of the Store interface: every backend (sqlite/, postgres/) runs these very
// tests from its own test file, so they all keep the same contract (STYLE.md, "Interfaces").
import fc from "fast-check";
import { generateKeyPairSync } from "node:crypto";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  ConflictError,
  HybridLogicalClock,
  MAX_JSON_DEPTH,
  NotFoundError,
  UnavailableError,
  changeLeafHash,
  consistencyProofRanges,
  formatHlc,
  hashFromHex,
  hashToHex,
  inMemorySubtreeHasher,
  inclusionProofRanges,
  rootHash,
  signCheckpoint,
  verifyConsistency,
  verifyInclusion,
  type Cause,
  type Change,
  type Checkpoint,
  type RegisteredThingDescription,
} from "../core/index.js";
import type {
  ChangeDraft,
  ChangeFilter,
  DescribeCommand,
  HistoryQuery,
  HistoryStream,
  Store,
  ThingRecord,
} from "./store.js";

/** What a backend's test hands the suite: a fresh, empty store for each test. */
export interface StoreUnderTest {
  store: Store;
  /** Opens the same database again (after `store` is closed); omit for a non-durable backend. */
  reopen?: () => Promise<Store>;
  /** Removes what `open` created (files, schemas); runs after every store is closed. */
  cleanup: () => Promise<void>;
}

/** Tuning a backend may take; one without a history tail ignores it. */
export interface StoreOpenOptions {
  /** History entries kept in memory before they are merged into the index. */
  historyMergeThreshold?: number;
  /** Index entries written per merge transaction. */
  historyMergeChunk?: number;
}

/** Opens a fresh, empty store, passing the options on where the backend has them (also to `reopen`). */
export type OpenStore = (options?: StoreOpenOptions) => Promise<StoreUnderTest>;

/** The suite's stores merge their history tail often, so that reads cross merges everywhere. */
const SUITE_OPTIONS: StoreOpenOptions = { historyMergeThreshold: 50, historyMergeChunk: 16 };

const T1 = "2025-01-01T00:00:00.000Z";
const T2 = "2025-01-02T00:00:00.000Z";
const T3 = "2025-01-03T00:00:00.000Z";
const T4 = "2025-01-04T00:00:00.000Z";

const cause: Cause = { actor: "conformance", via: "test", correlation: "corr-1" };

/**
 * The hub's clock for tests: increasing `formatHlc` stamps from a wall clock the test sets, which
 * may step back (the stamps still increase, as the hub's do).
 */
export class TestHlc {
  #wall: number;
  readonly #clock: HybridLogicalClock;

  constructor(start: string = T1, node = "urn:hub:test") {
    this.#wall = Date.parse(start);
    this.#clock = new HybridLogicalClock({ node, clock: () => this.#wall, maxDriftMs: Infinity });
  }

  /** The next stamp; with `time` (RFC 3339), the wall clock is set to it first. */
  next(time?: string): string {
    if (time !== undefined) this.#wall = Date.parse(time);
    return formatHlc(this.#clock.now());
  }

  /** Moves the wall clock on by `ms` and returns the next stamp. */
  advance(ms: number): string {
    this.#wall += ms;
    return formatHlc(this.#clock.now());
  }
}

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

/** A Change as the Log must record it: with its leaf hash. */
function recorded(change: Omit<Change, "leaf">): Change {
  return { ...change, leaf: hashToHex(changeLeafHash(change)) };
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from + 1 }, (_, i) => from + i);
}

async function collect<T>(items: AsyncIterable<T>): Promise<T[]> {
  const all: T[] = [];
  for await (const item of items) all.push(item);
  return all;
}

/** The whole Log, oldest first, read a page at a time. */
async function readLog(store: Store): Promise<Change[]> {
  const log: Change[] = [];
  for (;;) {
    const page = await store.changesAfter(log.at(-1)?.seq ?? 0, 1000);
    log.push(...page);
    if (page.length < 1000) return log;
  }
}

function leavesOf(log: readonly Change[]): Uint8Array[] {
  return log.map((c) => hashFromHex(c.leaf));
}

/** Everything a write could have touched: to show that a refused command wrote nothing. */
async function contents(
  store: Store,
): Promise<{ lastSeq: number; head: { size: number; root: string }; things: ThingRecord[]; log: Change[] }> {
  const head = await store.logHead();
  return {
    lastSeq: await store.lastSeq(),
    head: { size: head.size, root: hashToHex(head.root) },
    things: await store.listThings({ offset: 0, limit: 10_000 }),
    log: await readLog(store),
  };
}

// --- a model of the Log's projections, computed from the Changes themselves ---

function matchesFilter(change: Change, filter: ChangeFilter): boolean {
  return (
    (filter.thing === undefined || change.thing === filter.thing) &&
    (filter.things === undefined || filter.things.includes(change.thing)) &&
    (filter.affordance === undefined || change.affordance === filter.affordance) &&
    (filter.kinds === undefined || filter.kinds.includes(change.kind)) &&
    (filter.actor === undefined || change.cause.actor === filter.actor) &&
    (filter.release === undefined || change.cause.release === filter.release) &&
    (filter.correlation === undefined || change.cause.correlation === filter.correlation)
  );
}

function modelHistory(log: readonly Change[], query: HistoryQuery): Change[] {
  const matching = log.filter(
    (c) =>
      c.thing === query.thing &&
      (query.affordance === undefined || (c.affordance ?? "") === query.affordance) &&
      (query.kinds === undefined || query.kinds.includes(c.kind)) &&
      c.seq > (query.after ?? 0) &&
      c.seq < (query.before ?? Number.MAX_SAFE_INTEGER),
  );
  if (query.order === "desc") matching.reverse();
  return matching.slice(0, query.limit);
}

function byStream(a: HistoryStream, b: HistoryStream): number {
  if (a.affordance !== b.affordance) return a.affordance < b.affordance ? -1 : 1;
  return a.kind < b.kind ? -1 : a.kind > b.kind ? 1 : 0;
}

function modelStreamsAt(
  log: readonly Change[],
  thingName: string,
  atSeq?: number,
  kinds?: readonly string[],
): HistoryStream[] {
  const latest = new Map<string, HistoryStream>();
  for (const c of log) {
    if (c.thing !== thingName || (atSeq !== undefined && c.seq > atSeq)) continue;
    if (kinds && !kinds.includes(c.kind)) continue;
    const affordance = c.affordance ?? "";
    latest.set(`${affordance}\u0000${c.kind}`, { affordance, kind: c.kind, latest: c });
  }
  return [...latest.values()].sort(byStream);
}

function modelCount(
  log: readonly Change[],
  thingName: string,
  affordance: string,
  kind: string,
  after: number,
  upTo: number,
): number {
  return log.filter(
    (c) =>
      c.thing === thingName &&
      (c.affordance ?? "") === affordance &&
      c.kind === kind &&
      c.seq > after &&
      c.seq <= upTo,
  ).length;
}

/** The streams (affordance, kind) the Log has for a Thing. */
function streamsIn(log: readonly Change[], thingName: string): Array<[affordance: string, kind: string]> {
  const seen = new Map<string, [string, string]>();
  for (const c of log) {
    if (c.thing === thingName) seen.set(`${c.affordance ?? ""}\u0000${c.kind}`, [c.affordance ?? "", c.kind]);
  }
  return [...seen.values()];
}

/**
 * Asserts that history, streamsAt and countStream answer for each of `things` exactly what a scan
 * of the Log gives (at several positions): for backends' own tests of their history index.
 */
export async function expectHistoryAsInLog(
  store: Store,
  things: readonly string[],
  label: string,
): Promise<void> {
  const log = await readLog(store);
  const size = log.length;
  const middle = Math.floor(size / 2);
  for (const id of things) {
    const where = `${label}, ${id}`;
    expect(await store.history({ thing: id, order: "asc", limit: 100_000 }), where).toStrictEqual(
      modelHistory(log, { thing: id, order: "asc", limit: 100_000 }),
    );
    const desc = { thing: id, order: "desc" as const, before: middle + 1, limit: 7 };
    expect(await store.history(desc), where).toStrictEqual(modelHistory(log, desc));
    for (const at of [undefined, 0, Math.floor(size / 3), middle, size - 1]) {
      expect((await store.streamsAt(id, at)).sort(byStream), `${where} at ${at}`).toStrictEqual(
        modelStreamsAt(log, id, at),
      );
    }
    for (const [affordance, kind] of streamsIn(log, id)) {
      for (const after of [0, middle]) {
        expect(await store.countStream(id, affordance, kind, after, size), where).toBe(
          modelCount(log, id, affordance, kind, after, size),
        );
      }
    }
  }
}

// --- fixtures for the Log ---

const AFFORDANCES = ["temperature", "humidity", "power", undefined] as const;
const KINDS = ["reported", "desired", "emitted"] as const;
const ACTORS = ["alice", "bob", "hub:rule"] as const;

/** A small deterministic generator (xorshift32): the same fixture on every run and backend. */
function randomSource(seed: number): (n: number) => number {
  let state = seed >>> 0 || 1;
  return (n) => {
    state ^= state << 13;
    state >>>= 0;
    state ^= state >>> 17;
    state ^= state << 5;
    state >>>= 0;
    return state % n;
  };
}

/**
 * `count` drafts over Things 1..`things`: three affordances and the Thing itself, three kinds,
 * several actors and releases, values of several shapes, device times on some; the wall clock
 * moves on a second per draft.
 */
function mixedDrafts(count: number, things: number, clock: TestHlc, seed = 7): ChangeDraft[] {
  const random = randomSource(seed);
  return Array.from({ length: count }, (_, i) => {
    const affordance = AFFORDANCES[random(AFFORDANCES.length)];
    const release = random(4);
    const draft: ChangeDraft = {
      thing: thingId(1 + random(things)),
      kind: KINDS[random(KINDS.length)] ?? "reported",
      value: random(3) === 0 ? { v: random(1000), unit: "°C", ok: random(2) === 0 } : random(10_000) / 10,
      cause: {
        actor: ACTORS[random(ACTORS.length)] ?? "alice",
        ...(release < 2 && { release: `sha256:r${release}` }),
        // From the position, not the random source: the drafts' other fields stay as they were.
        ...(i % 4 === 1 && { correlation: `corr-${i % 3}` }),
      },
      hlc: clock.advance(1000),
    };
    if (affordance !== undefined) draft.affordance = affordance;
    if (random(5) === 0) draft.at = new Date(Date.parse(T1) + i * 997).toISOString();
    return draft;
  });
}

/** A draft of one reported value, the wall clock moved on a second. */
function reported(clock: TestHlc, thingName: string, affordance: string, value: unknown): ChangeDraft {
  return { thing: thingName, affordance, kind: "reported", value, cause, hlc: clock.advance(1000) };
}

async function appendInBatches(
  store: Store,
  drafts: readonly ChangeDraft[],
  batch: number,
): Promise<Change[]> {
  const out: Change[] = [];
  for (let i = 0; i < drafts.length; i += batch)
    out.push(...(await store.append(drafts.slice(i, i + batch))));
  return out;
}

/** A value as its JSON text reads back. */
function asJson(value: unknown): unknown {
  return value === undefined ? undefined : (JSON.parse(JSON.stringify(value)) as unknown);
}

/** Arrays nested `depth` levels deep, built without recursion. */
function nested(depth: number): unknown {
  let value: unknown = 1;
  for (let i = 0; i < depth; i++) value = [value];
  return value;
}

function cyclic(): unknown {
  const value: Record<string, unknown> = { a: 1 };
  value.self = value;
  return value;
}

export function describeStoreConformance(name: string, open: OpenStore): void {
  describe(`Store conformance: ${name}`, () => {
    let opened: StoreUnderTest;
    let store: Store;
    let clock: TestHlc;
    const openStores = new Set<Store>();
    const cleanups: Array<() => Promise<void>> = [];

    beforeEach(async () => {
      opened = await open(SUITE_OPTIONS);
      store = opened.store;
      openStores.add(store);
      cleanups.push(opened.cleanup);
      clock = new TestHlc(T1);
    });

    afterEach(async () => {
      for (const s of openStores) await s.close();
      openStores.clear();
      for (const cleanup of cleanups.splice(0)) await cleanup();
    });

    async function closeStore(s: Store): Promise<void> {
      openStores.delete(s);
      await s.close();
    }

    async function reopen(reopenStore: () => Promise<Store>, current: Store = store): Promise<Store> {
      await closeStore(current);
      const again = await reopenStore();
      openStores.add(again);
      return again;
    }

    /** A second store, with other options, closed and removed after the test. */
    async function openWith(options: StoreOpenOptions): Promise<StoreUnderTest> {
      const other = await open(options);
      openStores.add(other.store);
      cleanups.push(other.cleanup);
      return other;
    }

    function describeCommand(id: string, time = T1, more: Partial<DescribeCommand> = {}): DescribeCommand {
      return { td: thing(id), cause, hlc: clock.next(time), ...more };
    }

    it("starts empty", async () => {
      expect(await store.lastSeq()).toBe(0);
      expect(await store.countThings()).toBe(0);
      expect(await store.listThings({ offset: 0, limit: 10 })).toEqual([]);
      expect(await collect(store.scanThings())).toEqual([]);
      expect(await store.changesAfter(0, 10)).toEqual([]);
      expect(await store.getThing(thingId(1))).toBeUndefined();
      expect(await store.getChange(1)).toBeUndefined();
      const head = await store.logHead();
      expect(head.size).toBe(0);
      expect(hashToHex(head.root)).toBe(hashToHex(rootHash([])));
      expect(await store.history({ thing: thingId(1), order: "asc", limit: 10 })).toEqual([]);
      expect(await store.streamsAt(thingId(1))).toEqual([]);
      expect(await store.seqBefore(clock.next())).toBe(0);
      expect(await store.checkpoints()).toEqual([]);
      expect(await store.latestCheckpoint()).toBeUndefined();
    });

    describe("describe", () => {
      it("registers a new Thing: created, version is the Change's seq, a described Change with the TD and no previous", async () => {
        const td = thing(thingId(1));
        const hlc = clock.next(T1);
        const result = await store.describe({ td, cause, hlc });

        expect(result.created).toBe(true);
        expect(result.change).toStrictEqual(
          recorded({ seq: 1, hlc, thing: td.id, kind: "described", value: td, cause }),
        );
        expect("previous" in result.change).toBe(false);
        // created and modified are the wall time of the Change's clock.
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
        expect(await store.getChange(1)).toStrictEqual(result.change);
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
        const hlc = clock.next(T2);
        const second = await store.describe({ td: td2, cause: { actor: "someone-else" }, hlc });

        expect(second.created).toBe(false);
        expect(second.change).toStrictEqual(
          recorded({
            seq: first.change.seq + 1,
            hlc,
            thing: id,
            kind: "described",
            value: td2,
            previous: first.record.td,
            cause: { actor: "someone-else" },
          }),
        );
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

      it("created and modified follow the clock's wall time, which never steps back", async () => {
        const id = thingId(1);
        await store.describe(describeCommand(id, T2));
        // The wall clock steps back to T1: the stamp still sorts after, with T2's wall time.
        const again = await store.describe(describeCommand(id, T1));
        expect(again.record.created).toBe(T2);
        expect(again.record.modified).toBe(T2);
        const [first, second] = await store.changesAfter(0, 10);
        expect((first?.hlc ?? "") < (second?.hlc ?? "")).toBe(true);
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
          hlc: clock.next(T2),
          expect: "absent",
        });
        await expect(attempt).rejects.toBeInstanceOf(ConflictError);
        expect(await contents(store)).toStrictEqual(before);
      });

      it("expect <version> replaces the Thing when its version matches (compare-and-set)", async () => {
        const id = thingId(1);
        const first = await store.describe(describeCommand(id, T1));
        const td2 = thing(id, { title: "Second" });
        const second = await store.describe({
          td: td2,
          cause,
          hlc: clock.next(T2),
          expect: first.record.version,
        });

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
          hlc: clock.next(T3),
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

    describe("describeAll", () => {
      it("registers every Thing in order, each with its related Changes after it, and returns them in order", async () => {
        await store.describe(describeCommand(thingId(1), T1));
        const link: ChangeDraft = {
          thing: thingId(2),
          kind: "linked",
          value: { rel: "dependsOn", href: thingId(1) },
          cause,
          hlc: clock.next(T2),
        };
        const results = await store.describeAll([
          describeCommand(thingId(2), T2, { expect: "absent", related: [link] }),
          describeCommand(thingId(1), T2, { expect: 1 }),
          describeCommand(thingId(3), T2),
        ]);

        expect(
          results.map((r) => [r.record.id, r.created, r.change.seq, r.related.map((c) => c.seq)]),
        ).toStrictEqual([
          [thingId(2), true, 2, [3]],
          [thingId(1), false, 4, []],
          [thingId(3), true, 5, []],
        ]);
        const log = await readLog(store);
        expect(log.map((c) => [c.thing, c.kind])).toStrictEqual([
          [thingId(1), "described"],
          [thingId(2), "described"],
          [thingId(2), "linked"],
          [thingId(1), "described"],
          [thingId(3), "described"],
        ]);
        expect(hashToHex((await store.logHead()).root)).toBe(hashToHex(rootHash(leavesOf(log))));
        for (const r of results) expect(await store.getThing(r.record.id)).toStrictEqual(r.record);
      });

      it("writes nothing when one command's precondition fails, those before it included", async () => {
        await store.describe(describeCommand(thingId(1), T1));
        const before = await contents(store);

        const attempt = store.describeAll([
          describeCommand(thingId(2), T2),
          describeCommand(thingId(3), T2, { expect: "absent" }),
          describeCommand(thingId(1), T2, { expect: "absent" }),
        ]);
        await expect(attempt).rejects.toBeInstanceOf(ConflictError);
        expect(await contents(store)).toStrictEqual(before);
        // The store's own head stayed with the database: the next Change follows the first.
        expect((await store.describe(describeCommand(thingId(2), T3))).change.seq).toBe(2);
      });
    });

    describe("remove", () => {
      it("removes a Thing and appends a removed Change with the TD as previous", async () => {
        const id = thingId(1);
        const described = await store.describe(describeCommand(id, T1));
        await store.describe(describeCommand(thingId(2), T1));
        const removeCause: Cause = { actor: "hub:expiry", via: "sweep" };
        const hlc = clock.next(T2);
        const { change, related } = await store.remove({ id, cause: removeCause, hlc });
        expect(related).toStrictEqual([]);

        expect(change).toStrictEqual(
          recorded({
            seq: described.change.seq + 2,
            hlc,
            thing: id,
            kind: "removed",
            previous: described.record.td,
            cause: removeCause,
          }),
        );
        expect("value" in change).toBe(false);
        expect(await store.getThing(id)).toBeUndefined();
        expect(await store.countThings()).toBe(1);
        expect(await store.lastSeq()).toBe(change.seq);
        expect(await store.changesAfter(change.seq - 1, 10)).toStrictEqual([change]);
        expect(await store.getChange(change.seq)).toStrictEqual(change);
      });

      it("fails with NotFoundError when the Thing is absent, and writes nothing", async () => {
        await store.describe(describeCommand(thingId(1), T1));
        const before = await contents(store);

        await expect(store.remove({ id: thingId(2), cause, hlc: clock.next(T2) })).rejects.toBeInstanceOf(
          NotFoundError,
        );
        expect(await contents(store)).toStrictEqual(before);
      });

      it("removes when expect matches the version, and fails with ConflictError on a stale one", async () => {
        const id = thingId(1);
        const first = await store.describe(describeCommand(id, T1));
        const second = await store.describe(describeCommand(id, T2));
        const before = await contents(store);

        await expect(
          store.remove({ id, cause, hlc: clock.next(T3), expect: first.record.version }),
        ).rejects.toBeInstanceOf(ConflictError);
        expect(await contents(store)).toStrictEqual(before);

        const { change } = await store.remove({
          id,
          cause,
          hlc: clock.next(T3),
          expect: second.record.version,
        });
        expect(change.kind).toBe("removed");
        expect(await store.getThing(id)).toBeUndefined();
      });

      it("a Thing described again after removal is new: created, with a new created time", async () => {
        const id = thingId(1);
        await store.describe(describeCommand(id, T1));
        await store.remove({ id, cause, hlc: clock.next(T2) });
        const again = await store.describe(describeCommand(id, T3));

        expect(again.created).toBe(true);
        expect("previous" in again.change).toBe(false);
        expect(again.record.created).toBe(T3);
        expect(again.record.modified).toBe(T3);
      });
    });

    describe("related Changes (a description's linked/unlinked edges)", () => {
      function edge(id: string, kind: "linked" | "unlinked", href: string): ChangeDraft {
        return { thing: id, kind, value: { rel: "dependsOn", href }, cause, hlc: clock.next() };
      }

      it("describe appends them right after the described Change, in one transaction, and returns them", async () => {
        await store.describe(describeCommand(thingId(9)));
        const id = thingId(1);
        const drafts = [edge(id, "linked", thingId(2)), edge(id, "linked", thingId(3))];
        const result = await store.describe(describeCommand(id, T1, { expect: "absent", related: drafts }));

        expect(result.related.map((c) => [c.seq, c.kind, c.value])).toStrictEqual([
          [result.change.seq + 1, "linked", { rel: "dependsOn", href: thingId(2) }],
          [result.change.seq + 2, "linked", { rel: "dependsOn", href: thingId(3) }],
        ]);
        for (const [i, change] of result.related.entries())
          expect(change).toStrictEqual(recorded({ seq: result.change.seq + 1 + i, ...drafts[i] } as Change));
        expect(result.record.version).toBe(result.change.seq);
        expect(await store.changesAfter(result.change.seq - 1, 10)).toStrictEqual([
          result.change,
          ...result.related,
        ]);
        const log = await readLog(store);
        expect(hashToHex((await store.logHead()).root)).toBe(hashToHex(rootHash(leavesOf(log))));
        expect(
          (await store.history({ thing: id, kinds: ["linked"], order: "asc", limit: 10 })).map((c) => c.seq),
        ).toStrictEqual(result.related.map((c) => c.seq));
      });

      it("describe without related returns none", async () => {
        expect((await store.describe(describeCommand(thingId(1)))).related).toStrictEqual([]);
      });

      it("a related Change that cannot be stored refuses the description too: neither is written", async () => {
        const first = await store.describe(describeCommand(thingId(1), T1));
        const before = await contents(store);
        const id = thingId(1);
        const bad = { ...edge(id, "linked", thingId(3)), value: { rel: "dependsOn", href: 3n } };
        // In one batch with a good command: the bad one's savepoint rolls back alone.
        const [refused, other] = await Promise.allSettled([
          store.describe({
            td: thing(id, { title: "Changed" }),
            cause,
            hlc: clock.next(T2),
            expect: first.record.version,
            related: [edge(id, "unlinked", thingId(2)), bad],
          }),
          store.append([reported(clock, thingId(2), "temperature", 21)]),
        ]);

        expect(refused.status).toBe("rejected");
        expect(other.status).toBe("fulfilled");
        const after = await readLog(store);
        expect(after.slice(0, before.log.length)).toStrictEqual(before.log);
        expect(after.slice(before.log.length).map((c) => [c.seq, c.kind])).toStrictEqual([
          [before.lastSeq + 1, "reported"],
        ]);
        expect(await store.getThing(id)).toStrictEqual(first.record);
        expect(await store.history({ thing: id, order: "asc", limit: 10 })).toStrictEqual([first.change]);
        const head = await store.logHead();
        expect(head.size).toBe(after.length);
        expect(hashToHex(head.root)).toBe(hashToHex(rootHash(leavesOf(after))));

        // The heads moved only with what committed: the next description goes on from there.
        const next = await store.describe(
          describeCommand(id, T3, {
            expect: first.record.version,
            related: [edge(id, "unlinked", thingId(2))],
          }),
        );
        expect(next.change.seq).toBe(before.lastSeq + 2);
        expect(next.related.map((c) => c.seq)).toStrictEqual([before.lastSeq + 3]);
      });

      it("a describe refused by its precondition writes no related Change", async () => {
        await store.describe(describeCommand(thingId(1), T1));
        const before = await contents(store);
        await expect(
          store.describe(
            describeCommand(thingId(1), T2, {
              expect: "absent",
              related: [edge(thingId(1), "linked", thingId(2))],
            }),
          ),
        ).rejects.toBeInstanceOf(ConflictError);
        expect(await contents(store)).toStrictEqual(before);
      });

      it("remove appends them right after the removed Change, and a failing one keeps the Thing", async () => {
        const id = thingId(1);
        const described = await store.describe(describeCommand(id, T1));
        const before = await contents(store);
        const bad = { ...edge(id, "unlinked", thingId(2)), value: Number.NaN };
        await expect(
          store.remove({ id, cause, hlc: clock.next(T2), expect: described.record.version, related: [bad] }),
        ).rejects.toBeInstanceOf(Error);
        expect(await contents(store)).toStrictEqual(before);

        const drafts = [edge(id, "unlinked", thingId(2))];
        const removed = await store.remove({ id, cause, hlc: clock.next(T2), related: drafts });
        expect(removed.change.kind).toBe("removed");
        expect(removed.related).toStrictEqual([
          recorded({ seq: removed.change.seq + 1, ...drafts[0] } as Change),
        ]);
        expect(await store.getThing(id)).toBeUndefined();
        expect(await store.changesAfter(removed.change.seq - 1, 10)).toStrictEqual([
          removed.change,
          ...removed.related,
        ]);
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

      it("listThings after an id lists the Things whose ids sort after it, present or not", async () => {
        await describeSix();
        const after = (id: string, limit = 100) =>
          store.listThings({ offset: 0, limit, after: id }).then((records) => records.map((r) => r.id));
        expect(await after(sortedIds[1] ?? "", 2)).toEqual(sortedIds.slice(2, 4));
        // A page's last Thing removed meanwhile: the next page starts where it would have.
        expect(await after(`${sortedIds[3] ?? ""}-gone`)).toEqual(sortedIds.slice(4));
        expect(await after(sortedIds[5] ?? "")).toEqual([]);
      });

      it("countThings counts registered Things, not removed ones", async () => {
        await describeSix();
        expect(await store.countThings()).toBe(6);
        await store.describe(describeCommand(thingId(0), T2));
        expect(await store.countThings()).toBe(6);
        await store.remove({ id: thingId(0), cause, hlc: clock.next(T2) });
        expect(await store.countThings()).toBe(5);
      });

      it("thingsVersion is the highest version of a stored Thing, 0 when there is none", async () => {
        expect(await store.thingsVersion()).toBe(0);
        await describeSix();
        const records = await store.listThings({ offset: 0, limit: 100 });
        expect(await store.thingsVersion()).toBe(Math.max(...records.map((r) => r.version)));
        const updated = await store.describe(describeCommand(thingId(0), T2));
        expect(await store.thingsVersion()).toBe(updated.record.version);
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
        await store.remove({ id: thingId(5), cause, hlc: clock.next(T1) });

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
        await store.remove({ id: thingId(2), cause, hlc: clock.next(T3) });

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
        for (const change of log) expect(await store.getChange(change.seq)).toStrictEqual(change);
        expect(await store.getChange(0)).toBeUndefined();
        expect(await store.getChange(6)).toBeUndefined();
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
        ack((await store.remove({ id: thingId(2), cause, hlc: clock.next(T2) })).change);
        await refused(store.remove({ id: thingId(2), cause, hlc: clock.next(T3) }));
        await refused(store.remove({ id: thingId(1), cause, hlc: clock.next(T3), expect: 1 }));
        for (const change of await store.append([reported(clock, thingId(2), "temperature", 20)]))
          ack(change);
        await refused(store.append([reported(clock, thingId(2), "temperature", 10n)]));
        ack((await store.describe(describeCommand(thingId(2), T3))).change);
        ack(
          (
            await store.remove({
              id: thingId(1),
              cause,
              hlc: clock.next(T3),
              expect: replaced.record.version,
            })
          ).change,
        );

        expect(acknowledged).toEqual(range(1, 7));
        expect((await store.changesAfter(0, 100)).map((c) => c.seq)).toEqual(range(1, 7));
        expect(await store.lastSeq()).toBe(7);
      });
    });

    describe("append", () => {
      it("assigns consecutive seqs across describe, remove and append, concurrent calls included", async () => {
        const seqs: number[] = [];
        seqs.push((await store.describe(describeCommand(thingId(1)))).change.seq);
        for (const c of await store.append(mixedDrafts(3, 2, clock))) seqs.push(c.seq);
        seqs.push((await store.remove({ id: thingId(1), cause, hlc: clock.next() })).change.seq);
        const concurrent = await Promise.all([
          store.append(mixedDrafts(4, 3, clock, 11)),
          store.describe(describeCommand(thingId(2))).then((r) => [r.change]),
          store.append(mixedDrafts(2, 3, clock, 12)),
          store.append([]),
          store.describe(describeCommand(thingId(3))).then((r) => [r.change]),
        ]);
        for (const changes of concurrent) {
          // One call's Changes are consecutive.
          const own = changes.map((c) => c.seq);
          expect(own).toEqual(own.length > 0 ? range(own[0] ?? 0, (own[0] ?? 0) + own.length - 1) : []);
          seqs.push(...own);
        }

        expect(seqs.sort((a, b) => a - b)).toEqual(range(1, 13));
        expect(await store.lastSeq()).toBe(13);
        expect((await readLog(store)).map((c) => c.seq)).toEqual(range(1, 13));
      });

      it("returns exactly what getChange and changesAfter return, leaf hash included", async () => {
        await store.describe(describeCommand(thingId(1)));
        const appended = await store.append(mixedDrafts(40, 3, clock));
        const log = await readLog(store);

        expect(log.slice(1)).toStrictEqual(appended);
        for (const change of appended) {
          expect(await store.getChange(change.seq)).toStrictEqual(change);
          expect(change.leaf).toMatch(/^[0-9a-f]{64}$/);
          // The leaf covers the Change as recorded, leaf excluded.
          expect(change.leaf).toBe(hashToHex(changeLeafHash(change)));
        }
      });

      it("keeps any JSON value, device time and cause exactly (property)", async () => {
        const drafts = fc.record(
          {
            thing: fc.constantFrom(thingId(1), thingId(2)),
            affordance: fc.constantFrom("temperature", "état", "🌡️", ""),
            kind: fc.constantFrom("reported", "desired", "emitted", "x-custom"),
            value: fc.jsonValue({ maxDepth: 3 }),
            previous: fc.jsonValue({ maxDepth: 2 }),
            at: fc.constantFrom("2025-03-01T10:00:00.000Z", "2025-03-01T10:00:00+02:00"),
            cause: fc.record(
              {
                actor: fc.string({ minLength: 1, maxLength: 10 }),
                via: fc.constantFrom("http", "mqtt"),
                release: fc.constant("sha256:abc"),
                rule: fc.string({ maxLength: 5 }),
                correlation: fc.uuid(),
              },
              { requiredKeys: ["actor"], noNullPrototype: true },
            ),
          },
          { requiredKeys: ["thing", "kind", "cause"], noNullPrototype: true },
        );
        await fc.assert(
          fc.asyncProperty(fc.array(drafts, { minLength: 1, maxLength: 5 }), async (inputs) => {
            const appended = await store.append(inputs.map((d) => ({ ...d, hlc: clock.advance(1) })));
            const after = (appended[0]?.seq ?? 1) - 1;
            const read = await store.changesAfter(after, inputs.length);
            expect(read).toStrictEqual(appended);
            for (const [i, change] of appended.entries()) {
              const input = inputs[i];
              // As JSON writes them (-0 is 0).
              expect(change.value).toStrictEqual(asJson(input?.value));
              if (input?.previous !== undefined)
                expect(change.previous).toStrictEqual(asJson(input.previous));
              expect(change.cause).toStrictEqual(input?.cause);
              expect(change.at).toBe(input?.at);
              expect(change.leaf).toBe(hashToHex(changeLeafHash(change)));
            }
          }),
          { numRuns: 40 },
        );
      });

      it("fills previous from the stream's latest value when not given, also within one call", async () => {
        const id = thingId(1);
        const [first, second, desired, event] = await store.append([
          reported(clock, id, "temperature", 20),
          reported(clock, id, "temperature", 21),
          { thing: id, affordance: "temperature", kind: "desired", value: 19, cause, hlc: clock.advance(1) },
          {
            thing: id,
            affordance: "alarm",
            kind: "emitted",
            value: { level: 2 },
            cause,
            hlc: clock.advance(1),
          },
        ]);
        // The first Change of a stream has no previous; the next has its value.
        expect(first).not.toHaveProperty("previous");
        expect(second?.previous).toBe(20);
        // Each (affordance, kind) is its own stream.
        expect(desired).not.toHaveProperty("previous");
        expect(event).not.toHaveProperty("previous");

        const [third, otherThing, givenPrevious, fourth, nextEvent] = await store.append([
          reported(clock, id, "temperature", { celsius: 22 }),
          reported(clock, thingId(2), "temperature", 5),
          { ...reported(clock, id, "humidity", 40), previous: "as the device said" },
          reported(clock, id, "temperature", null),
          {
            thing: id,
            affordance: "alarm",
            kind: "emitted",
            value: { level: 3 },
            cause,
            hlc: clock.advance(1),
          },
        ]);
        expect(third?.previous).toBe(21);
        expect(otherThing).not.toHaveProperty("previous");
        expect(givenPrevious?.previous).toBe("as the device said");
        expect(fourth?.previous).toStrictEqual({ celsius: 22 });
        expect(nextEvent?.previous).toStrictEqual({ level: 2 });
        const [afterNull] = await store.append([reported(clock, id, "temperature", 23)]);
        expect(afterNull?.previous).toBeNull();

        // A Change of the Thing itself (no affordance) gets no previous it was not given.
        const [thingLevel] = await store.append([
          { thing: id, kind: "reported", value: 1, cause, hlc: clock.advance(1) },
          { thing: id, kind: "reported", value: 2, cause, hlc: clock.advance(1) },
        ]);
        expect(thingLevel).not.toHaveProperty("previous");
        for (const change of await readLog(store)) {
          expect(await store.getChange(change.seq)).toStrictEqual(change);
          expect(change.leaf).toBe(hashToHex(changeLeafHash(change)));
        }
      });

      it.each([
        ["a Date", () => new Date(Date.parse(T2))],
        ["a Buffer", () => Buffer.from("hi")],
        [
          "an array with a hole",
          () => {
            const holey = new Array<number>(3);
            holey[0] = 1;
            holey[2] = 3;
            return holey;
          },
        ],
        ["undefined members and items", () => ({ a: undefined, b: [undefined, 1], c: { d: undefined } })],
        ["-0", () => -0],
        ["a Map", () => new Map([["a", 1]])],
        ["a null-prototype object", () => Object.assign(Object.create(null) as object, { a: 1 })],
        [
          "a class instance",
          () =>
            new (class Point {
              x = 1;
              y = [2];
            })(),
        ],
      ] as Array<[string, () => unknown]>)(
        "records %s as its JSON text says, with a leaf over the Change as recorded",
        async (_, make) => {
          const expected = asJson(make());
          const [change] = await store.append([
            { ...reported(clock, thingId(1), "temperature", make()), previous: make() },
          ]);
          if (!change) throw new Error("nothing appended");
          const read = await store.getChange(change.seq);
          expect(change).toStrictEqual(read);
          expect(read?.value).toStrictEqual(expected);
          expect(read?.previous).toStrictEqual(expected);
          if (read) expect(read.leaf).toBe(hashToHex(changeLeafHash(read)));
          // And the next Change of the stream gets it as previous.
          const [next] = await store.append([reported(clock, thingId(1), "temperature", 1)]);
          expect(next?.previous).toStrictEqual(expected);
          const log = await readLog(store);
          expect(hashToHex((await store.logHead()).root)).toBe(hashToHex(rootHash(leavesOf(log))));
        },
      );

      it("records a cause with undefined members without them", async () => {
        const [change] = await store.append([
          { ...reported(clock, thingId(1), "temperature", 1), cause: { actor: "a", via: undefined } },
        ]);
        expect(change?.cause).toStrictEqual({ actor: "a" });
        expect(await store.getChange(change?.seq ?? 0)).toStrictEqual(change);
      });

      it("append([]) writes nothing and returns []", async () => {
        await store.describe(describeCommand(thingId(1)));
        const before = await contents(store);
        expect(await store.append([])).toEqual([]);
        expect(await contents(store)).toStrictEqual(before);
      });

      it("records a value nested MAX_JSON_DEPTH levels as it is", async () => {
        await store.describe(describeCommand(thingId(1)));
        const value = nested(MAX_JSON_DEPTH);
        const [change] = await store.append([{ ...reported(clock, thingId(1), "temperature", 0), value }]);
        expect((await store.getChange(change?.seq ?? 0))?.value).toStrictEqual(value);
      });

      describe("is all or nothing: a draft whose value JSON cannot represent rejects the whole call", () => {
        const unrepresentable: Array<[string, () => Partial<ChangeDraft>]> = [
          ["a BigInt value", () => ({ value: 10n })],
          ["a cyclic value", () => ({ value: cyclic() })],
          ["a BigInt deep inside", () => ({ value: { a: [1, { b: 2n }] } })],
          ["a BigInt previous", () => ({ previous: 3n })],
          ["a cyclic previous", () => ({ previous: cyclic() })],
          ["a NaN inside", () => ({ value: { reading: Number.NaN } })],
          ["an Infinity", () => ({ value: [1, Number.POSITIVE_INFINITY] })],
          ["a function member", () => ({ value: { f: () => 1 } })],
          ["a symbol", () => ({ value: Symbol("s") })],
          // Every walk of such a value (JSON.stringify, canonical JSON, a verifier's) would
          // overflow its stack: the store takes MAX_JSON_DEPTH levels and no more.
          ["arrays nested one level too deep", () => ({ value: { a: nested(MAX_JSON_DEPTH) } })],
          ["arrays nested 100,000 deep", () => ({ value: nested(100_000) })],
        ];

        it.each(unrepresentable)("%s: nothing is written, and the Log goes on as before", async (_, bad) => {
          await store.describe(describeCommand(thingId(1)));
          await store.append(mixedDrafts(20, 2, clock));
          const before = await contents(store);
          const historyBefore = await store.history({ thing: thingId(1), order: "asc", limit: 1000 });
          const streamsBefore = await store.streamsAt(thingId(1));

          const drafts = [
            reported(clock, thingId(1), "temperature", 1),
            reported(clock, thingId(2), "humidity", 2),
            { ...reported(clock, thingId(1), "temperature", 3), ...bad() },
            reported(clock, thingId(1), "temperature", 4),
          ];
          await expect(store.append(drafts)).rejects.toBeInstanceOf(Error);

          expect(await contents(store)).toStrictEqual(before);
          expect(await store.history({ thing: thingId(1), order: "asc", limit: 1000 })).toStrictEqual(
            historyBefore,
          );
          expect((await store.streamsAt(thingId(1))).sort(byStream)).toStrictEqual(
            streamsBefore.sort(byStream),
          );

          // The Log goes on from where it was: next seq, a root over every leaf, previous from the
          // last committed value.
          const [next] = await store.append([reported(clock, thingId(1), "temperature", 5)]);
          expect(next?.seq).toBe(before.lastSeq + 1);
          const lastTemperature = before.log
            .filter((c) => c.thing === thingId(1) && c.affordance === "temperature" && c.kind === "reported")
            .at(-1);
          expect(next?.previous).toStrictEqual(lastTemperature?.value);
          const log = await readLog(store);
          const head = await store.logHead();
          expect(head.size).toBe(log.length);
          expect(hashToHex(head.root)).toBe(hashToHex(rootHash(leavesOf(log))));
        });

        it("a refused call that crossed a stored subtree boundary leaves the tree as it was", async () => {
          await appendInBatches(store, mixedDrafts(250, 3, clock), 50);
          const before = await contents(store);
          const crossing = [
            ...mixedDrafts(10, 3, clock, 21),
            { ...reported(clock, thingId(1), "power", 1), value: 1n },
          ];
          await expect(store.append(crossing)).rejects.toBeInstanceOf(Error);
          expect(await contents(store)).toStrictEqual(before);

          await store.append(mixedDrafts(300, 3, clock, 22));
          const leaves = leavesOf(await readLog(store));
          expect(hashToHex((await store.logHead()).root)).toBe(hashToHex(rootHash(leaves)));
          const expected = inMemorySubtreeHasher(leaves);
          const ranges: Array<[number, number]> = [
            [0, 256],
            [256, 512],
            [0, 512],
            [0, 550],
          ];
          expect((await store.subtreeHashes(ranges)).map(hashToHex)).toEqual(
            ranges.map(([start, end]) => hashToHex(expected(start, end))),
          );
        });

        it("in one batch with other calls, only the bad call fails; the others commit without gaps", async () => {
          await store.append(mixedDrafts(10, 2, clock));
          const settled = await Promise.allSettled([
            store.append([reported(clock, thingId(1), "temperature", 1)]),
            store.append([
              reported(clock, thingId(1), "temperature", 2),
              { ...reported(clock, thingId(1), "power", 0), value: 1n },
            ]),
            store.describe(describeCommand(thingId(3))),
            store.append([
              reported(clock, thingId(1), "temperature", 3),
              reported(clock, thingId(2), "power", 4),
            ]),
          ]);
          expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "fulfilled", "fulfilled"]);
          const log = await readLog(store);
          expect(log.map((c) => c.seq)).toEqual(range(1, 14));
          expect(log.filter((c) => c.affordance === "power" && c.value === 0)).toEqual([]);
          const head = await store.logHead();
          expect(hashToHex(head.root)).toBe(hashToHex(rootHash(leavesOf(log))));
        });
      });
    });

    describe("the Merkle tree", () => {
      it("logHead's root is the RFC 9162 root of every recorded leaf, at sizes up to and across 256 and 512", async () => {
        const sizes = [1, 2, 3, 7, 255, 256, 257, 300, 511, 512, 513, 770, 1024, 1025];
        const drafts = mixedDrafts(1025, 5, clock);
        let appended = 0;
        for (const size of sizes) {
          await appendInBatches(store, drafts.slice(appended, size), 97);
          appended = size;
          const log = await readLog(store);
          const head = await store.logHead();
          expect(head.size).toBe(size);
          expect(hashToHex(head.root), `root at size ${size}`).toBe(hashToHex(rootHash(leavesOf(log))));
        }
      });

      it("keeps the head across reopening, and goes on from it", async ({ skip }) => {
        const reopenStore = opened.reopen ?? skip("this backend cannot reopen its database");
        await appendInBatches(store, mixedDrafts(600, 5, clock), 100);
        const head = await store.logHead();
        const again = await reopen(reopenStore);
        const reopened = await again.logHead();
        expect(reopened.size).toBe(head.size);
        expect(hashToHex(reopened.root)).toBe(hashToHex(head.root));
        await again.append(mixedDrafts(100, 5, clock, 99));
        const log = await readLog(again);
        expect(hashToHex((await again.logHead()).root)).toBe(hashToHex(rootHash(leavesOf(log))));
      });

      describe("over a Log of 1100 Changes", () => {
        const SIZE = 1100;
        let leaves: Uint8Array[];

        beforeEach(async () => {
          await appendInBatches(store, mixedDrafts(SIZE, 8, clock), 250);
          leaves = leavesOf(await readLog(store));
          expect(leaves).toHaveLength(SIZE);
        });

        /** Any [start, end) within the Log. */
        const anyRange = fc
          .tuple(fc.nat({ max: SIZE - 1 }), fc.integer({ min: 1, max: SIZE }))
          .map(([start, length]): [number, number] => [start, Math.min(SIZE, start + length)]);
        /** A perfect subtree of 256, 512 or 1024 leaves, aligned: what the store keeps. */
        const perfectRange = fc
          .constantFrom(256, 512, 1024)
          .chain((n) =>
            fc.nat({ max: Math.floor(SIZE / n) - 1 }).map((i): [number, number] => [i * n, (i + 1) * n]),
          );
        /** A range from an aligned start to a ragged right edge. */
        const raggedRange = fc
          .tuple(fc.constantFrom(0, 256, 512, 768, 1024), fc.integer({ min: 1, max: SIZE }))
          .map(([start, length]): [number, number] => [start, Math.min(SIZE, start + length)]);

        it("subtreeHashes equals the in-memory hasher over the same leaves, for any ranges (property)", async () => {
          const expected = inMemorySubtreeHasher(leaves);
          await fc.assert(
            fc.asyncProperty(
              fc.array(fc.oneof(anyRange, perfectRange, raggedRange), { minLength: 1, maxLength: 8 }),
              async (ranges) => {
                const hashes = await store.subtreeHashes(ranges);
                expect(hashes.map(hashToHex)).toEqual(ranges.map(([s, e]) => hashToHex(expected(s, e))));
              },
            ),
            { numRuns: 60 },
          );
          // Every stored subtree, and the whole Log.
          const fixed: Array<[number, number]> = [
            [0, 256],
            [256, 512],
            [512, 768],
            [768, 1024],
            [0, 512],
            [512, 1024],
            [0, 1024],
            [1024, 1100],
            [0, 1100],
            [1099, 1100],
            [0, 1],
          ];
          const hashes = await store.subtreeHashes(fixed);
          expect(hashes.map(hashToHex)).toEqual(fixed.map(([s, e]) => hashToHex(expected(s, e))));
          expect(await store.subtreeHashes([])).toEqual([]);
        });

        it.each([[[0, SIZE + 1]], [[SIZE, SIZE + 1]], [[5, 5]], [[6, 5]], [[-1, 1]]] as Array<
          [[number, number]]
        >)("subtreeHashes rejects %j, a range outside the Log", async (bad) => {
          await expect(store.subtreeHashes([[0, 1], bad])).rejects.toBeInstanceOf(Error);
        });

        it("inclusion proofs built from subtreeHashes verify, at any tree size (property)", async () => {
          await fc.assert(
            fc.asyncProperty(
              fc
                .integer({ min: 1, max: SIZE })
                .chain((size) => fc.tuple(fc.nat({ max: size - 1 }), fc.constant(size))),
              async ([index, size]) => {
                const [root, leaf, ...proof] = await store.subtreeHashes([
                  [0, size],
                  [index, index + 1],
                  ...inclusionProofRanges(index, size),
                ]);
                if (!root || !leaf) throw new Error("missing hashes");
                expect(hashToHex(leaf)).toBe(hashToHex(leaves[index] ?? new Uint8Array()));
                expect(hashToHex(root)).toBe(hashToHex(rootHash(leaves.slice(0, size))));
                expect(verifyInclusion(leaf, index, size, proof, root)).toBe(true);
                // The proof is for this leaf only.
                const other = leaves[(index + 1) % size] ?? leaf;
                if (size > 1) expect(verifyInclusion(other, index, size, proof, root)).toBe(false);
              },
            ),
            { numRuns: 80 },
          );
          const head = await store.logHead();
          const ranges = inclusionProofRanges(SIZE - 1, SIZE);
          const proof = await store.subtreeHashes(ranges);
          expect(
            verifyInclusion(leaves[SIZE - 1] ?? new Uint8Array(), SIZE - 1, SIZE, proof, head.root),
          ).toBe(true);
        });

        it("consistency proofs built from subtreeHashes verify between any two sizes (property)", async () => {
          await fc.assert(
            fc.asyncProperty(
              fc
                .integer({ min: 1, max: SIZE })
                .chain((newSize) => fc.tuple(fc.integer({ min: 1, max: newSize }), fc.constant(newSize))),
              async ([oldSize, newSize]) => {
                const [oldRoot, newRoot, ...proof] = await store.subtreeHashes([
                  [0, oldSize],
                  [0, newSize],
                  ...consistencyProofRanges(oldSize, newSize),
                ]);
                if (!oldRoot || !newRoot) throw new Error("missing hashes");
                expect(verifyConsistency(oldSize, newSize, proof, oldRoot, newRoot)).toBe(true);
                if (oldSize < newSize) {
                  const wrong = rootHash(leaves.slice(1, oldSize + 1));
                  expect(verifyConsistency(oldSize, newSize, proof, wrong, newRoot)).toBe(false);
                }
              },
            ),
            { numRuns: 80 },
          );
          // From a signed-size-like point (a stored subtree boundary) to the head.
          const head = await store.logHead();
          const [oldRoot, ...proof] = await store.subtreeHashes([
            [0, 512],
            ...consistencyProofRanges(512, SIZE),
          ]);
          if (!oldRoot) throw new Error("missing hashes");
          expect(verifyConsistency(512, SIZE, proof, oldRoot, head.root)).toBe(true);
        });
      });
    });

    describe("history, state and counts", () => {
      const THINGS = 4;
      let log: Change[];

      beforeEach(async () => {
        await store.describe(describeCommand(thingId(1)));
        await store.describe(describeCommand(thingId(2)));
        // Enough Changes that the suite's small merge threshold moves some into the index.
        await appendInBatches(store, mixedDrafts(320, THINGS, clock), 23);
        await store.describe({
          td: thing(thingId(1), { title: "Renamed" }),
          cause,
          hlc: clock.advance(1000),
        });
        await store.remove({ id: thingId(2), cause, hlc: clock.advance(1000) });
        await appendInBatches(store, mixedDrafts(60, THINGS, clock, 3), 7);
        log = await readLog(store);
      });

      const things = fc.constantFrom(...range(1, THINGS + 1).map(thingId));
      const affordances = fc.constantFrom("temperature", "humidity", "power", "", "unknown");
      const kindSets = fc.subarray(["reported", "desired", "emitted", "described", "removed", "other"]);

      it("history answers any query like a filter over the Log: order, affordance, kinds, bounds, limit (property)", async () => {
        const size = log.length;
        await fc.assert(
          fc.asyncProperty(
            fc.record(
              {
                thing: things,
                affordance: affordances,
                kinds: kindSets,
                after: fc.integer({ min: 0, max: size + 2 }),
                before: fc.integer({ min: 0, max: size + 2 }),
                order: fc.constantFrom("asc" as const, "desc" as const),
                limit: fc.oneof(fc.integer({ min: 0, max: 12 }), fc.constant(1000)),
              },
              { requiredKeys: ["thing", "order", "limit"] },
            ),
            async (query) => {
              expect(await store.history(query)).toStrictEqual(modelHistory(log, query));
            },
          ),
          { numRuns: 150 },
        );
      });

      it("history of a Thing covers all its streams in both orders, and nothing of an unknown Thing", async () => {
        for (const id of range(1, THINGS).map(thingId)) {
          const all = modelHistory(log, { thing: id, order: "asc", limit: 10_000 });
          expect(all.length).toBeGreaterThan(0);
          expect(await store.history({ thing: id, order: "asc", limit: 10_000 })).toStrictEqual(all);
          expect(await store.history({ thing: id, order: "desc", limit: 10_000 })).toStrictEqual(
            [...all].reverse(),
          );
        }
        expect(
          (await store.history({ thing: thingId(2), kinds: ["removed"], order: "asc", limit: 10 })).map(
            (c) => c.kind,
          ),
        ).toEqual(["removed"]);
        expect(await store.history({ thing: "urn:test:never", order: "asc", limit: 10 })).toEqual([]);
        expect(await store.history({ thing: thingId(1), order: "desc", limit: 0 })).toEqual([]);
        expect(await store.history({ thing: thingId(1), kinds: [], order: "asc", limit: 10 })).toEqual([]);
      });

      it.each([
        ["asc", 1],
        ["asc", 3],
        ["asc", 17],
        ["desc", 1],
        ["desc", 5],
        ["desc", 64],
      ] as Array<["asc" | "desc", number]>)(
        "cursor paging (%s, pages of %i) visits every Change exactly once",
        async (order, pageSize) => {
          for (const [id, affordance, kinds] of [
            [thingId(1), undefined, undefined],
            [thingId(3), "temperature", undefined],
            [thingId(4), undefined, ["reported", "emitted"]],
          ] as Array<[string, string | undefined, string[] | undefined]>) {
            const base = {
              thing: id,
              ...(affordance !== undefined && { affordance }),
              ...(kinds !== undefined && { kinds }),
            };
            const seen: Change[] = [];
            let cursor: number | undefined;
            for (let pages = 0; pages < 10_000; pages++) {
              const page = await store.history({
                ...base,
                order,
                limit: pageSize,
                ...(cursor !== undefined && (order === "asc" ? { after: cursor } : { before: cursor })),
              });
              seen.push(...page);
              if (page.length < pageSize) break;
              cursor = page.at(-1)?.seq;
            }
            expect(seen).toStrictEqual(modelHistory(log, { ...base, order, limit: 10_000 }));
            expect(new Set(seen.map((c) => c.seq)).size).toBe(seen.length);
          }
        },
      );

      it("streamsAt gives, per stream, the latest Change at or before each position of the Log", async () => {
        const every = [...range(0, log.length), log.length + 5];
        for (const id of range(1, THINGS + 1).map(thingId)) {
          expect((await store.streamsAt(id)).sort(byStream), `${id} now`).toStrictEqual(
            modelStreamsAt(log, id),
          );
          // Every position for one Thing; for the others, every third and the Log's end.
          const positions =
            id === thingId(1) ? every : every.filter((at, i) => i % 3 === 0 || at >= log.length);
          for (const at of positions) {
            expect((await store.streamsAt(id, at)).sort(byStream), `${id} at ${at}`).toStrictEqual(
              modelStreamsAt(log, id, at),
            );
          }
        }
      });

      it("streamsAt with kinds gives only those streams (property)", async () => {
        await fc.assert(
          fc.asyncProperty(
            things,
            fc.option(fc.integer({ min: 0, max: log.length + 1 }), { nil: undefined }),
            kindSets,
            async (id, at, kinds) => {
              expect((await store.streamsAt(id, at, kinds)).sort(byStream)).toStrictEqual(
                modelStreamsAt(log, id, at, kinds),
              );
            },
          ),
          { numRuns: 150 },
        );
      });

      it("streamsAtEach gives each Thing's streamsAt, in the Things' order, at one position (property)", async () => {
        expect(await store.streamsAtEach([], log.length)).toEqual([]);
        await fc.assert(
          fc.asyncProperty(
            fc.array(fc.oneof(things, fc.constant("urn:never-registered")), { maxLength: 6 }),
            fc.integer({ min: 0, max: log.length + 1 }),
            fc.option(kindSets, { nil: undefined }),
            async (ids, at, kinds) => {
              const each = await store.streamsAtEach(ids, at, kinds);
              expect(each.map((streams) => [...streams].sort(byStream))).toStrictEqual(
                ids.map((id) => modelStreamsAt(log, id, at, kinds)),
              );
            },
          ),
          { numRuns: 100 },
        );
      });

      it("countStreamsEach counts streams of several Things at once, in their order, each as countStream does (property)", async () => {
        const stream = fc.record({
          thing: things,
          affordance: affordances,
          kind: fc.constantFrom("reported", "desired", "emitted", "described", "removed"),
        });
        expect(await store.countStreamsEach([], 0, log.length)).toEqual([]);
        await fc.assert(
          fc.asyncProperty(
            fc.array(stream, { maxLength: 10 }),
            fc.integer({ min: 0, max: log.length + 2 }),
            fc.integer({ min: 0, max: log.length + 2 }),
            async (streams, after, upTo) => {
              expect(await store.countStreamsEach(streams, after, upTo)).toEqual(
                streams.map((s) => modelCount(log, s.thing, s.affordance, s.kind, after, upTo)),
              );
            },
          ),
          { numRuns: 100 },
        );
      });

      it("countStream counts one stream's Changes with after < seq <= upTo (property)", async () => {
        for (const id of range(1, THINGS).map(thingId)) {
          for (const [affordance, kind] of streamsIn(log, id)) {
            expect(await store.countStream(id, affordance, kind, 0, log.length)).toBe(
              modelCount(log, id, affordance, kind, 0, log.length),
            );
          }
        }
        await fc.assert(
          fc.asyncProperty(
            things,
            affordances,
            fc.constantFrom("reported", "desired", "emitted", "described", "removed"),
            fc.integer({ min: 0, max: log.length + 2 }),
            fc.integer({ min: 0, max: log.length + 2 }),
            async (id, affordance, kind, after, upTo) => {
              expect(await store.countStream(id, affordance, kind, after, upTo)).toBe(
                modelCount(log, id, affordance, kind, after, upTo),
              );
            },
          ),
          { numRuns: 150 },
        );
      });

      it("countStreams counts several streams at once, in their order, each as countStream does (property)", async () => {
        const stream = fc.record({
          affordance: affordances,
          kind: fc.constantFrom("reported", "desired", "emitted", "described", "removed"),
        });
        for (const id of range(1, THINGS).map(thingId)) {
          const streams = streamsIn(log, id).map(([affordance, kind]) => ({ affordance, kind }));
          expect(await store.countStreams(id, streams, 0, log.length)).toEqual(
            streams.map((s) => modelCount(log, id, s.affordance, s.kind, 0, log.length)),
          );
        }
        expect(await store.countStreams(thingId(1), [], 0, log.length)).toEqual([]);
        await fc.assert(
          fc.asyncProperty(
            things,
            fc.array(stream, { maxLength: 8 }),
            fc.integer({ min: 0, max: log.length + 2 }),
            fc.integer({ min: 0, max: log.length + 2 }),
            async (id, streams, after, upTo) => {
              expect(await store.countStreams(id, streams, after, upTo)).toEqual(
                streams.map((s) => modelCount(log, id, s.affordance, s.kind, after, upTo)),
              );
            },
          ),
          { numRuns: 100 },
        );
      });

      it("countStream and streamsAt at a diff's edges: empty, both ends at one Change, a stream begun inside, past the Log", async () => {
        for (const id of range(1, THINGS + 1).map(thingId)) {
          for (const [affordance, kind] of streamsIn(log, id)) {
            const seqs = log
              .filter((c) => c.thing === id && (c.affordance ?? "") === affordance && c.kind === kind)
              .map((c) => c.seq);
            const first = seqs[0] ?? 0;
            const last = seqs.at(-1) ?? 0;
            const where = `${id} "${affordance}" ${kind}`;
            const count = (after: number, upTo: number) =>
              store.countStream(id, affordance, kind, after, upTo);
            expect(await count(first, first), `${where}: from = to at its first`).toBe(0);
            expect(await count(last, last), `${where}: from = to at its last`).toBe(0);
            expect(await count(first - 1, first), `${where}: only its first`).toBe(1);
            expect(await count(0, first - 1), `${where}: before it began`).toBe(0);
            expect(await count(first - 1, last), `${where}: begun inside`).toBe(seqs.length);
            expect(await count(0, log.length + 10), `${where}: past the Log`).toBe(seqs.length);
            expect(await count(last, log.length + 10), `${where}: after its last`).toBe(0);
            expect(await count(last, first), `${where}: reversed`).toBe(0);
            const inStream = (at: number) =>
              store
                .streamsAt(id, at)
                .then((streams) => streams.find((s) => s.affordance === affordance && s.kind === kind));
            expect(await inStream(first - 1), `${where}: not yet`).toBeUndefined();
            expect((await inStream(first))?.latest.seq, `${where}: from its first`).toBe(first);
          }
        }
        // Thing 1 was registered at seq 1 and described again later: both in (0, end], one after 1.
        const described = log
          .filter((c) => c.thing === thingId(1) && c.kind === "described")
          .map((c) => c.seq);
        expect(described).toHaveLength(2);
        expect(await store.countStream(thingId(1), "", "described", 0, log.length)).toBe(2);
        expect(await store.countStream(thingId(1), "", "described", 1, log.length)).toBe(1);
      });

      it("feed answers any stretch like a filter over the Log: bounds, order, filters, limit (property)", async () => {
        const bound = fc.integer({ min: 0, max: log.length + 2 });
        await fc.assert(
          fc.asyncProperty(
            fc.record(
              {
                thing: fc.oneof(things, fc.constant("urn:test:never")),
                things: fc.subarray([...range(1, THINGS + 1).map(thingId), "urn:test:never"]),
                affordance: fc.constantFrom("temperature", "humidity", "power", "unknown"),
                kinds: kindSets,
                actor: fc.constantFrom(...ACTORS, cause.actor, "nobody"),
                correlation: fc.constantFrom("corr-0", "corr-1", "corr-2", "corr-none"),
              },
              { requiredKeys: [] },
            ),
            bound,
            fc.option(bound, { nil: undefined }),
            fc.constantFrom("asc" as const, "desc" as const),
            fc.oneof(fc.integer({ min: 0, max: 20 }), fc.constant(1000)),
            async (filter: ChangeFilter, after, before, order, limit) => {
              const inRange = log.filter(
                (c) => c.seq > after && (before === undefined || c.seq < before) && matchesFilter(c, filter),
              );
              const expected = (order === "asc" ? inRange : inRange.reverse()).slice(0, limit);
              const query = { ...filter, after, ...(before !== undefined && { before }), order, limit };
              expect(await store.feed(query)).toStrictEqual(expected);
            },
          ),
          { numRuns: 150 },
        );
        // The bounds are exclusive, in both orders, with a set of Things too.
        const two = [thingId(1), thingId(2)];
        for (const before of [2, 8, Math.floor(log.length / 2), log.length + 1]) {
          const asc = log.filter((c) => c.seq > 1 && c.seq < before);
          expect(await store.feed({ after: 1, before, order: "asc", limit: 10_000 })).toStrictEqual(asc);
          expect(await store.feed({ after: 1, before, order: "desc", limit: 10_000 })).toStrictEqual(
            [...asc].reverse(),
          );
          expect(
            await store.feed({ things: two, after: 1, before, order: "desc", limit: 10_000 }),
          ).toStrictEqual(asc.filter((c) => two.includes(c.thing)).reverse());
        }
      });

      // Any ChangeFilter, its members each present or not, matching some Changes or none.
      const changeFilters = fc.record(
        {
          thing: fc.oneof(things, fc.constant("urn:test:never")),
          things: fc.subarray([...range(1, THINGS + 1).map(thingId), "urn:test:never"]),
          affordance: fc.constantFrom("temperature", "humidity", "power", "unknown"),
          kinds: kindSets,
          actor: fc.constantFrom(...ACTORS, cause.actor, "nobody"),
          release: fc.constantFrom("sha256:r0", "sha256:r1", "sha256:none"),
          correlation: fc.constantFrom("corr-0", "corr-1", "corr-2", "corr-none"),
        },
        { requiredKeys: [] },
      );

      it("changedThings names each Thing with a matching Change in a stretch once, by its first such seq (property)", async () => {
        const bound = fc.integer({ min: 0, max: log.length + 2 });
        await fc.assert(
          fc.asyncProperty(
            changeFilters,
            bound,
            fc.option(bound, { nil: undefined }),
            fc.oneof(fc.integer({ min: 0, max: 5 }), fc.constant(1000)),
            async (filter: ChangeFilter, after, before, limit) => {
              const first = new Map<string, number>();
              for (const c of log) {
                if (c.seq <= after || (before !== undefined && c.seq >= before)) continue;
                if (matchesFilter(c, filter) && !first.has(c.thing)) first.set(c.thing, c.seq);
              }
              const expected = [...first].map(([thing, seq]) => ({ thing, first: seq })).slice(0, limit);
              const query = { ...filter, after, ...(before !== undefined && { before }), limit };
              expect(await store.changedThings(query)).toStrictEqual(expected);
            },
          ),
          { numRuns: 150 },
        );
        expect(await store.changedThings({ after: 0, limit: 10, kinds: [] })).toEqual([]);
        expect(await store.changedThings({ after: 0, limit: 10, things: [] })).toEqual([]);
      });

      it("changesAfter filters by thing, a set of Things, affordance, kinds, actor, release and correlation, together or alone (property)", async () => {
        await fc.assert(
          fc.asyncProperty(
            changeFilters,
            fc.integer({ min: 0, max: log.length + 1 }),
            fc.oneof(fc.integer({ min: 0, max: 20 }), fc.constant(1000)),
            async (filter: ChangeFilter, after, limit) => {
              const expected = log.filter((c) => c.seq > after && matchesFilter(c, filter)).slice(0, limit);
              expect(await store.changesAfter(after, limit, filter)).toStrictEqual(expected);
            },
          ),
          { numRuns: 150 },
        );
        expect(await store.changesAfter(0, 10_000, { things: [] })).toEqual([]);
        // No kinds at all matches any kind; an empty list of kinds matches none — in either order.
        const byAlice = log.filter((c) => c.cause.actor === "alice");
        expect(byAlice.length).toBeGreaterThan(0);
        for (let round = 0; round < 2; round++) {
          expect(await store.changesAfter(0, 10_000, { actor: "alice" })).toStrictEqual(byAlice);
          expect(await store.changesAfter(0, 10_000, { kinds: [], actor: "alice" })).toEqual([]);
          expect(await store.changesAfter(0, 10_000, { kinds: [] })).toEqual([]);
          expect(await store.changesAfter(0, 10_000, { kinds: [], release: "sha256:r0" })).toEqual([]);
          expect(await store.changesAfter(0, 10_000, { release: "sha256:r0" })).toStrictEqual(
            log.filter((c) => c.cause.release === "sha256:r0"),
          );
          // One correlation's Changes: the drafts' and the descriptions' (corr-1), and no others.
          const correlated = log.filter((c) => c.cause.correlation === "corr-1");
          expect(correlated.some((c) => c.kind === "described")).toBe(true);
          expect(correlated.some((c) => c.kind !== "described")).toBe(true);
          expect(await store.changesAfter(0, 10_000, { correlation: "corr-1" })).toStrictEqual(correlated);
          expect(
            await store.feed({ correlation: "corr-1", after: 0, order: "desc", limit: 10_000 }),
          ).toStrictEqual([...correlated].reverse());
          expect(await store.changesAfter(0, 10_000, { correlation: "corr-none" })).toEqual([]);
        }
        // One affordance's Changes of every Thing, and of one, in either order.
        const powered = log.filter((c) => c.affordance === "power");
        expect(new Set(powered.map((c) => c.thing)).size).toBeGreaterThan(1);
        expect(await store.changesAfter(0, 10_000, { affordance: "power" })).toStrictEqual(powered);
        expect(
          await store.feed({
            affordance: "power",
            thing: thingId(3),
            after: 0,
            order: "desc",
            limit: 10_000,
          }),
        ).toStrictEqual(powered.filter((c) => c.thing === thingId(3)).reverse());
        // A filter that matches many Changes, read across pages.
        const everything = log.filter((c) => c.thing === thingId(3));
        expect(everything.length).toBeGreaterThan(50);
        expect(await store.changesAfter(0, 10_000, { thing: thingId(3) })).toStrictEqual(everything);
      });
    });

    describe("seqBefore", () => {
      it("finds the last position whose hlc sorts before a stamp: before the first, between, equal, after the last", async () => {
        // Stamps a minute apart, so that there are stamps between them.
        const stamps: string[] = [];
        for (let i = 0; i < 37; i++) {
          const hlc = clock.advance(60_000);
          stamps.push(hlc);
          await store.append([{ ...reported(clock, thingId(1 + (i % 3)), "temperature", i), hlc }]);
        }
        const wallOf = (hlc: string): number => Number.parseInt(hlc.slice(0, 12), 16);
        const stampAt = (wall: number): string => formatHlc({ wall, counter: 0, node: "urn:hub:other" });
        const floor = (wall: number): string => `${wall.toString(16).padStart(12, "0")}-`;

        expect(await store.seqBefore(stampAt(wallOf(stamps[0] ?? "") - 1))).toBe(0);
        expect(await store.seqBefore(floor(0))).toBe(0);
        for (const [i, hlc] of stamps.entries()) {
          // Equal: strictly before, so the one before it.
          expect(await store.seqBefore(hlc)).toBe(i);
          // Between this and the next.
          expect(await store.seqBefore(stampAt(wallOf(hlc) + 30_000))).toBe(i + 1);
          // The smallest stamp of a wall time (as the hub turns a time into a position).
          expect(await store.seqBefore(floor(wallOf(hlc)))).toBe(i);
          expect(await store.seqBefore(floor(wallOf(hlc) + 1))).toBe(i + 1);
        }
        expect(await store.seqBefore(stampAt(wallOf(stamps.at(-1) ?? "") + 1))).toBe(stamps.length);
        expect(await store.seqBefore("ffffffffffff-ffffffff-~")).toBe(stamps.length);
      });

      it("finds every Change of a Log that grows between searches", async () => {
        // Past a few hundred Changes a store may keep what its searches look at often: what it
        // kept must stay right as the Log grows (and a search must not look past the end).
        for (const more of [700, 800, 1100]) {
          await appendInBatches(store, mixedDrafts(more, 5, clock), 97);
          const log = await readLog(store);
          const sample = [0, 1, 255, 256, 257, 511, 512, 1023, 1024, log.length - 2, log.length - 1];
          for (let i = 3; i < log.length; i += 37) sample.push(i);
          for (const i of sample.filter((i) => i >= 0 && i < log.length)) {
            const hlc = log[i]?.hlc ?? "";
            expect(await store.seqBefore(hlc), `before seq ${i + 1}`).toBe(i);
            expect(await store.seqBefore(`${hlc}\u0000`), `after seq ${i + 1}`).toBe(i + 1);
          }
          expect(await store.seqBefore("0")).toBe(0);
          expect(await store.seqBefore("ffffffffffff-ffffffff-~")).toBe(log.length);
        }
      });

      it("agrees with a scan of the Log for any stamp (property)", async () => {
        await appendInBatches(store, mixedDrafts(300, 3, clock), 41);
        const log = await readLog(store);
        const first = Number.parseInt(log[0]?.hlc.slice(0, 12) ?? "0", 16);
        const last = Number.parseInt(log.at(-1)?.hlc.slice(0, 12) ?? "0", 16);
        await fc.assert(
          fc.asyncProperty(
            fc.integer({ min: first - 5000, max: last + 5000 }),
            fc.nat({ max: 3 }),
            async (wall, counter) => {
              const hlc = formatHlc({ wall, counter, node: "urn:hub:test" });
              expect(await store.seqBefore(hlc)).toBe(log.filter((c) => c.hlc < hlc).length);
            },
          ),
          { numRuns: 100 },
        );
      });
    });

    describe("checkpoints", () => {
      const { privateKey } = generateKeyPairSync("ed25519");

      async function checkpointNow(time: string): Promise<Checkpoint> {
        const head = await store.logHead();
        return signCheckpoint(
          { origin: "urn:hub:test", size: head.size, root: hashToHex(head.root), time },
          privateKey,
        );
      }

      it("are added, listed oldest first from a size on, and the latest is the largest", async () => {
        const made: Checkpoint[] = [];
        for (const [i, count] of [3, 5, 1, 10].entries()) {
          await store.append(mixedDrafts(count, 2, clock, i + 1));
          const checkpoint = await checkpointNow(new Date(Date.parse(T2) + i * 1000).toISOString());
          await store.addCheckpoint(checkpoint);
          made.push(checkpoint);
          expect(await store.latestCheckpoint()).toStrictEqual(checkpoint);
        }
        expect(made.map((c) => c.size)).toEqual([3, 8, 9, 19]);
        expect(await store.checkpoints()).toStrictEqual(made);
        expect(await store.checkpoints({ after: 3 })).toStrictEqual(made.slice(1));
        expect(await store.checkpoints({ after: 7, limit: 1 })).toStrictEqual([made[1]]);
        expect(await store.checkpoints({ after: 8, limit: 2 })).toStrictEqual(made.slice(2, 4));
        expect(await store.checkpoints({ after: 19 })).toEqual([]);
        expect(await store.checkpoints({ limit: 0 })).toEqual([]);
      });

      it("answer every range the same, however the checkpoints were added and queried between", async () => {
        // Sizes out of order, a repeat, and queries between the additions: a store that keeps
        // the latest checkpoints in memory must still answer as its table does.
        await store.append(mixedDrafts(20, 2, clock));
        const root = hashToHex((await store.logHead()).root);
        const made = new Map<number, Checkpoint>();
        const expectAll = async () => {
          const sorted = [...made.values()].sort((a, b) => a.size - b.size);
          expect(await store.latestCheckpoint()).toStrictEqual(sorted.at(-1));
          for (let after = 0; after <= 21; after++) {
            for (const limit of [1, 2, 5]) {
              const expected = sorted.filter((c) => c.size > after).slice(0, limit);
              expect(
                await store.checkpoints({ after, limit }),
                `after ${after}, limit ${limit}`,
              ).toStrictEqual(expected);
            }
          }
        };
        await expectAll();
        for (const [i, size] of [12, 5, 20, 16, 3, 20, 13, 19].entries()) {
          const checkpoint = signCheckpoint(
            { origin: "urn:hub:test", size, root, time: new Date(Date.parse(T2) + i * 1000).toISOString() },
            privateKey,
          );
          await store.addCheckpoint(checkpoint);
          if (!made.has(size)) made.set(size, checkpoint);
          await expectAll();
        }
      });

      it("a second checkpoint of the same size is ignored; the first stays", async () => {
        await store.append(mixedDrafts(4, 2, clock));
        const first = await checkpointNow(T2);
        const second = await checkpointNow(T3);
        await store.addCheckpoint(first);
        await expect(store.addCheckpoint(second)).resolves.toBeUndefined();
        expect(await store.checkpoints()).toStrictEqual([first]);
        expect(await store.latestCheckpoint()).toStrictEqual(first);
      });

      it("are kept across reopening", async ({ skip }) => {
        const reopenStore = opened.reopen ?? skip("this backend cannot reopen its database");
        await store.append(mixedDrafts(4, 2, clock));
        const checkpoint = await checkpointNow(T2);
        await store.addCheckpoint(checkpoint);
        const again = await reopen(reopenStore);
        expect(await again.checkpoints()).toStrictEqual([checkpoint]);
        expect(await again.latestCheckpoint()).toStrictEqual(checkpoint);
      });
    });

    describe("history merges", () => {
      it("history, streamsAt and countStream answer the same before, during and after merges, and after reopening", async () => {
        const other = await openWith({ historyMergeThreshold: 100, historyMergeChunk: 37 });
        let s = other.store;
        const drafts = mixedDrafts(1000, 20, clock, 5);
        for (let i = 0; i < drafts.length; i += 10) {
          // Two calls at once, so merge chunks queue between and beside appends.
          await Promise.all([s.append(drafts.slice(i, i + 5)), s.append(drafts.slice(i + 5, i + 10))]);
          if (i % 200 === 0 || (i > 90 && i < 130))
            await expectHistoryAsInLog(s, range(1, 20).map(thingId), `after ${i + 10}`);
        }
        await expectHistoryAsInLog(s, range(1, 20).map(thingId), "after 1000");

        if (other.reopen) {
          s = await reopen(other.reopen, s);
          // The tail is rebuilt from the Log: nothing lost, nothing counted twice.
          await expectHistoryAsInLog(s, range(1, 20).map(thingId), "reopened");
          await appendInBatches(s, mixedDrafts(250, 20, clock, 6), 10);
          await expectHistoryAsInLog(s, range(1, 20).map(thingId), "reopened, then 250 more");
          s = await reopen(other.reopen, s);
          await expectHistoryAsInLog(s, range(1, 20).map(thingId), "reopened twice");
        }
      });

      it("a Thing in one long stream is merged in chunks inside the stream, and read the same throughout", async () => {
        const other = await openWith({ historyMergeThreshold: 60, historyMergeChunk: 7 });
        let s = other.store;
        for (let i = 0; i < 300; i += 15) {
          await s.append(range(i, i + 14).map((v) => reported(clock, thingId(1), "temperature", v)));
          await expectHistoryAsInLog(s, [thingId(1)], `after ${i + 15}`);
        }
        if (other.reopen) {
          s = await reopen(other.reopen, s);
          await expectHistoryAsInLog(s, [thingId(1)], "reopened");
        }
        expect(await s.countStream(thingId(1), "temperature", "reported", 0, 300)).toBe(300);
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
        const result = await store.describe({ td, cause: fullCause, hlc: clock.next(T1) });
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
        expect(change?.leaf).toBe(result.change.leaf);

        const { change: removed } = await store.remove({ id: td.id, cause: fullCause, hlc: clock.next(T2) });
        expect(removed.previous).toStrictEqual(td);
        expect((await store.changesAfter(1, 10))[0]?.previous).toStrictEqual(td);
      });

      it("a TD round-trips exactly after reopening", async ({ skip }) => {
        const reopenStore = opened.reopen ?? skip("this backend cannot reopen its database");
        const result = await store.describe({ td, cause: fullCause, hlc: clock.next(T1) });
        const again = await reopen(reopenStore);
        expect(await again.getThing(td.id)).toStrictEqual(result.record);
        expect(await again.changesAfter(0, 10)).toStrictEqual([result.change]);
      });
    });

    describe("the rollout ledger", () => {
      const rollout = (id: string, release = "sha256:r1") => ({
        id,
        release,
        name: "r1",
        status: "running" as const,
        options: { concurrency: 2, maxFailures: 0 },
        actor: "test",
        created: T1,
      });
      const step = (id: string, thing: string, position: number, release = "sha256:r1") => ({
        rollout: id,
        release,
        thing,
        position,
        status: "pending" as const,
        items: [{ kind: "property" as const, name: "level", desired: position, status: "pending" as const }],
        desired: { level: position },
        updated: T1,
      });

      it("records a rollout with its steps; claims a step once; ends it, skipping what was pending", async () => {
        await store.createRollout(rollout("u1"), [
          step("u1", "urn:a", 0),
          step("u1", "urn:b", 1),
          step("u1", "urn:c", 2),
        ]);
        expect(await store.getRollout("u1")).toStrictEqual(rollout("u1"));
        const claim = { status: "applying" as const, updated: T2, expect: "pending" as const };
        expect(await store.updateRolloutStep("u1", "urn:a", claim)).toBe(true);
        expect(await store.updateRolloutStep("u1", "urn:a", claim)).toBe(false);
        const failed = [
          {
            kind: "property" as const,
            name: "level",
            desired: 0,
            status: "failed" as const,
            error: { reason: "status" },
          },
        ];
        await store.updateRolloutStep("u1", "urn:a", {
          status: "failed",
          items: failed,
          reason: "refused",
          updated: T2,
        });
        expect(await store.endRollout("u1", "failed", T3, "too many failures")).toBe(true);
        expect(await store.endRollout("u1", "completed", T3)).toBe(false);
        expect(await store.getRollout("u1")).toMatchObject({
          status: "failed",
          ended: T3,
          reason: "too many failures",
        });
        const steps = await store.rolloutSteps("u1", { limit: 10 });
        expect(steps.map((x) => [x.thing, x.status])).toStrictEqual([
          ["urn:a", "failed"],
          ["urn:b", "skipped"],
          ["urn:c", "skipped"],
        ]);
        expect(steps[0]?.items).toStrictEqual(failed);
        expect(await store.rolloutSteps("u1", { status: "skipped", after: 1, limit: 10 })).toHaveLength(1);
        expect(await store.rolloutProgress("u1")).toStrictEqual({
          pending: 0,
          applying: 0,
          completed: 0,
          failed: 1,
          skipped: 2,
          total: 3,
        });
        expect((await store.rolloutStepsOfThing("urn:b")).map((x) => x.rollout)).toStrictEqual(["u1"]);
      });

      it("refuses a second running rollout of the same release, and lists rollouts newest first", async () => {
        await store.createRollout(rollout("u1"), [step("u1", "urn:a", 0)]);
        await expect(store.createRollout(rollout("u2"), [step("u2", "urn:a", 0)])).rejects.toBeInstanceOf(
          ConflictError,
        );
        expect(await store.getRollout("u2")).toBeUndefined();
        await store.createRollout({ ...rollout("u3", "sha256:r2"), created: T2 }, [
          step("u3", "urn:b", 0, "sha256:r2"),
        ]);
        await store.endRollout("u1", "completed", T3);
        await store.createRollout({ ...rollout("u4"), created: T3 }, [step("u4", "urn:a", 0)]);
        const listed = await store.listRollouts({ limit: 10, offset: 0 });
        expect(listed.map((r) => r.id)).toStrictEqual(["u4", "u3", "u1"]);
        expect(
          (await store.listRollouts({ status: "running", limit: 10, offset: 0 })).map((r) => r.id),
        ).toStrictEqual(["u4", "u3"]);
      });

      it("refuses a rollout of another release that would apply to a Thing a running rollout has still to apply", async () => {
        await store.createRollout(rollout("u1"), [step("u1", "urn:a", 0), step("u1", "urn:b", 1)]);
        await store.updateRolloutStep("u1", "urn:a", { status: "applying", updated: T2, expect: "pending" });
        for (const thing of ["urn:a", "urn:b"]) {
          await expect(
            store.createRollout(rollout(`u2-${thing}`, "sha256:r2"), [
              step(`u2-${thing}`, "urn:c", 0, "sha256:r2"),
              step(`u2-${thing}`, thing, 1, "sha256:r2"),
            ]),
          ).rejects.toThrow(/u1.*still to apply its step to urn:/);
          expect(await store.getRollout(`u2-${thing}`)).toBeUndefined();
        }
        expect(await store.rolloutStepsOfThing("urn:c")).toStrictEqual([]);
        // A step that will not be applied (skipped: the release is active already) is no conflict.
        await store.createRollout(rollout("u3", "sha256:r3"), [
          { ...step("u3", "urn:a", 0, "sha256:r3"), status: "skipped" },
        ]);
        // Once the Thing's step is done, or the rollout has ended, the Thing is free.
        await store.updateRolloutStep("u1", "urn:a", { status: "completed", updated: T3 });
        await store.createRollout(rollout("u4", "sha256:r4"), [step("u4", "urn:a", 0, "sha256:r4")]);
        await store.endRollout("u1", "failed", T3, "stopped");
        await store.createRollout(rollout("u5", "sha256:r5"), [step("u5", "urn:b", 0, "sha256:r5")]);
      });

      it("keeps a Thing whose step an ended rollout is still applying, and lists such rollouts", async () => {
        await store.createRollout(rollout("u1"), [step("u1", "urn:a", 0), step("u1", "urn:b", 1)]);
        await store.updateRolloutStep("u1", "urn:a", { status: "applying", updated: T2, expect: "pending" });
        await store.endRollout("u1", "failed", T3, "cancelled by admin");
        const inFlight = { inFlight: true, limit: 10, offset: 0 };
        expect((await store.listRollouts({ ...inFlight, status: "failed" })).map((r) => r.id)).toStrictEqual([
          "u1",
        ]);
        for (const [id, release] of [
          ["u2", "sha256:r2"],
          ["u2-same", "sha256:r1"],
        ] as const) {
          await expect(
            store.createRollout(rollout(id, release), [step(id, "urn:a", 0, release)]),
          ).rejects.toThrow(/u1.*still to apply its step to urn:a/);
          expect(await store.getRollout(id)).toBeUndefined();
        }
        // Its skipped step holds nothing; its step that ends frees the Thing.
        await store.createRollout(rollout("u3", "sha256:r3"), [step("u3", "urn:b", 0, "sha256:r3")]);
        await store.updateRolloutStep("u1", "urn:a", { status: "completed", updated: T3 });
        expect(await store.listRollouts(inFlight)).toStrictEqual([]);
        await store.createRollout(rollout("u4", "sha256:r4"), [step("u4", "urn:a", 0, "sha256:r4")]);
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
          store.remove({ id: thingId(1), cause, hlc: clock.next(T2) }),
          store.append([reported(clock, thingId(1), "temperature", 1)]),
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
        await expect(store.history({ thing: thingId(1), order: "asc", limit: 1 })).rejects.toBeInstanceOf(
          Error,
        );

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
        await store.describe({
          td: thing(thingId(1), { title: "Second" }),
          cause,
          hlc: clock.next(T2),
          expires: T4,
        });
        await store.remove({ id: thingId(3), cause, hlc: clock.next(T3) });
        await store.append(mixedDrafts(80, 3, clock));
        const before = await contents(store);
        const streams = await store.streamsAt(thingId(2));

        const again = await reopen(reopenStore);
        expect(await contents(again)).toStrictEqual(before);
        expect((await again.streamsAt(thingId(2))).sort(byStream)).toStrictEqual(streams.sort(byStream));
        expect(await again.countThings()).toBe(2);
        expect(await again.expiredThings(T4, 10)).toEqual([thingId(1)]);

        const version = before.things.find((r) => r.id === thingId(2))?.version;
        expect(version).toBeDefined();
        const next = await again.describe(describeCommand(thingId(2), T3, { expect: version }));
        expect(next.change.seq).toBe(before.lastSeq + 1);
        expect(next.change.previous).toStrictEqual(thing(thingId(2)));
        // The stream's previous value survives the reopening too.
        const lastTemperature = before.log
          .filter((c) => c.thing === thingId(3) && c.affordance === "temperature" && c.kind === "reported")
          .at(-1);
        const [reading] = await again.append([reported(clock, thingId(3), "temperature", 1)]);
        expect(reading?.previous).toStrictEqual(lastTemperature?.value);
      });
    });
  });
}
