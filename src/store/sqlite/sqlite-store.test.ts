// SqliteStore: the Store conformance suite, then what only the embedded backend promises —
// migrations, the append-only Log's triggers, WAL + FULL, backpressure, group commit, crash safety,
// and the history index's merges (every entry in the table or the in-memory tail, exactly once).
import Database from "better-sqlite3";
import fc from "fast-check";
import { spawn } from "node:child_process";
import { once } from "node:events";
import {
  existsSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  DamagedLogError,
  UnavailableError,
  changeLeafHash,
  hashFromHex,
  hashToHex,
  inMemorySubtreeHasher,
  inclusionProofRanges,
  rootHash,
  type Cause,
  type Change,
  type RegisteredThingDescription,
} from "../../core/index.js";
import type { ChangeDraft, DescribeCommand } from "../store.js";
import { TestHlc, describeStoreConformance, expectHistoryAsInLog } from "../store-conformance.js";
import { streamKey, type HistoryTail } from "./history-tail.js";
import { migrations } from "./sqlite-migrations.js";
import type { SqliteLog } from "./sqlite-log.js";
import { DEFAULT_MMAP_BYTES, SqliteStore, type SqliteStoreOptions } from "./sqlite-store.js";
import { merkleNodeId, type WriteSet } from "./sqlite-writer.js";

async function temporaryDatabase(): Promise<{ dir: string; path: string }> {
  const dir = await mkdtemp(join(tmpdir(), "hyperthings-store-"));
  return { dir, path: join(dir, "hyperthings.db") };
}

describeStoreConformance("SqliteStore (file)", async (options) => {
  const { dir, path } = await temporaryDatabase();
  return {
    store: new SqliteStore({ path, ...options }),
    reopen: () => Promise.resolve(new SqliteStore({ path, ...options })),
    cleanup: () => rm(dir, { recursive: true, force: true }),
  };
});

describeStoreConformance("SqliteStore (:memory:)", (options) =>
  Promise.resolve({
    store: new SqliteStore({ path: ":memory:", ...options }),
    cleanup: () => Promise.resolve(),
  }),
);

const cause: Cause = { actor: "sqlite-test" };
const clock = new TestHlc();

function thing(id: string): RegisteredThingDescription {
  return {
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    id,
    title: id,
    security: "nosec_sc",
    securityDefinitions: { nosec_sc: { scheme: "nosec" } },
  };
}

function describeCommand(n: number): DescribeCommand {
  return { td: thing(thingName(n)), cause, hlc: clock.next() };
}

/** The store's root and the subtree hashes of `ranges` are those of the leaves of its Changes. */
async function expectTreeOfLeaves(store: SqliteStore, ranges: Array<[number, number]>): Promise<void> {
  const leaves = (await readLog(store)).map((c) => hashFromHex(c.leaf ?? ""));
  const hasher = inMemorySubtreeHasher(leaves);
  expect(hashToHex((await store.logHead()).root)).toBe(hashToHex(rootHash(leaves)));
  expect((await store.subtreeHashes(ranges)).map(hashToHex)).toEqual(
    ranges.map(([a, b]) => hashToHex(hasher(a, b))),
  );
  // The same from the leaves alone, without the stored subtrees.
  expect((await store.subtreeHashes(ranges, { fromLeaves: true })).map(hashToHex)).toEqual(
    ranges.map(([a, b]) => hashToHex(hasher(a, b))),
  );
}

function thingName(n: number): string {
  return `urn:test:sqlite-${String(n).padStart(4, "0")}`;
}

/** `count` reported values spread over Things 1..`things` and three affordances. */
function readings(count: number, things: number, offset = 0): ChangeDraft[] {
  return numbers(count).map((i) => ({
    thing: thingName(1 + ((i + offset) % things)),
    affordance: ["temperature", "humidity", "power"][(i + offset) % 3] ?? "temperature",
    kind: (i + offset) % 7 === 0 ? "desired" : "reported",
    value: i + offset,
    cause,
    hlc: clock.advance(1),
  }));
}

/** The store's insides, for tests that look at or drive the history index directly. */
interface Internals {
  db: Database.Database;
  log: SqliteLog;
  enqueue<T>(
    run: () => T,
    afterCommit?: (value: T) => void,
    flags?: { internal?: boolean; logOnly?: boolean; first?: boolean },
  ): Promise<T>;
}

function internals(store: SqliteStore): Internals {
  return store as unknown as Internals;
}

/** Every Change's history entry is in the table or in the tail, exactly once. */
function expectEveryEntryOnce(store: SqliteStore, log: readonly Change[]): void {
  const { db, log: sqliteLog } = internals(store);
  const tail = (sqliteLog as unknown as { tail: HistoryTail }).tail;
  // As readers see them: a chunk the writer thread committed before its answer came is applied.
  const rows = sqliteLog.consistent(() =>
    db
      .prepare<[], { thing: string; affordance: string; kind: string; seq: number }>("SELECT * FROM history")
      .all(),
  );
  const inTable = new Set(rows.map((r) => r.seq));
  expect(inTable.size).toBe(rows.length);
  for (const row of rows) {
    const change = log[row.seq - 1];
    expect([row.thing, row.affordance, row.kind]).toEqual([
      change?.thing,
      change?.affordance ?? "",
      change?.kind,
    ]);
    expect(tail.has(streamKey(row.thing, row.affordance, row.kind), row.seq), `seq ${row.seq} twice`).toBe(
      false,
    );
  }
  for (const change of log) {
    if (inTable.has(change.seq)) continue;
    const key = streamKey(change.thing, change.affordance ?? "", change.kind);
    expect(tail.has(key, change.seq), `seq ${change.seq} in neither`).toBe(true);
  }
  expect(rows.length + sqliteLog.tailSize).toBe(log.length);
}

async function readLog(store: SqliteStore): Promise<Change[]> {
  return store.changesAfter(0, 1_000_000);
}

function numbers(count: number): number[] {
  return Array.from({ length: count }, (_, i) => i + 1);
}

/**
 * Commits recorded in the WAL since it last restarted (https://sqlite.org/fileformat.html §4.1):
 * frames carrying the header's salt whose "database size after commit" field is non-zero.
 */
function walCommits(path: string): { salt: string; commits: number } {
  const wal = readFileSync(`${path}-wal`);
  const pageSize = wal.readUInt32BE(8);
  const salt1 = wal.readUInt32BE(16);
  const salt2 = wal.readUInt32BE(20);
  let commits = 0;
  for (let offset = 32; offset + 24 + pageSize <= wal.length; offset += 24 + pageSize) {
    if (wal.readUInt32BE(offset + 8) !== salt1 || wal.readUInt32BE(offset + 12) !== salt2) break;
    if (wal.readUInt32BE(offset + 4) !== 0) commits++;
  }
  return { salt: `${salt1}:${salt2}`, commits };
}

/** How many of this process's file descriptors are open on `path` (Linux). */
function openDescriptors(path: string): number {
  return readdirSync("/proc/self/fd").filter((fd) => {
    try {
      return readlinkSync(`/proc/self/fd/${fd}`) === path;
    } catch {
      return false; // closed since the listing
    }
  }).length;
}

describe("SqliteStore", () => {
  let dir: string;
  let path: string;
  const stores: SqliteStore[] = [];
  const connections: Database.Database[] = [];

  function openStore(options: Omit<SqliteStoreOptions, "path"> = {}): SqliteStore {
    const store = new SqliteStore({ path, ...options });
    stores.push(store);
    return store;
  }

  function connect(options?: Database.Options): Database.Database {
    const db = new Database(path, options);
    connections.push(db);
    return db;
  }

  beforeEach(async () => {
    ({ dir, path } = await temporaryDatabase());
  });

  afterEach(async () => {
    for (const db of connections.splice(0)) db.close();
    for (const store of stores.splice(0)) await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  describe("migrations", () => {
    /**
     * A file at schema `version`, holding what the store at `path` holds: the earlier migrations,
     * then every table copied (the subtrees by level and idx, as every version before 7 kept them).
     */
    function copyAsVersion(to: string, version: number): Database.Database {
      const old = new Database(to);
      connections.push(old);
      old.pragma("journal_mode = WAL");
      for (const migration of migrations.slice(0, version)) old.exec(migration);
      old.pragma(`user_version = ${version}`);
      old.exec(`ATTACH DATABASE '${path}' AS current`);
      const tables = old
        .prepare<[], { name: string }>(
          "SELECT name FROM main.sqlite_master WHERE type = 'table' AND name <> 'log_head'",
        )
        .all();
      old.transaction(() => {
        for (const { name } of tables) {
          const columns = name === "merkle_nodes" ? "level, idx, hash" : "*";
          old.exec(`INSERT INTO main.${name} SELECT ${columns} FROM current.${name}`);
        }
        old.exec(
          "UPDATE main.log_head SET (size, frontier, history_merged) = (SELECT size, frontier, history_merged FROM current.log_head)",
        );
      })();
      old.exec("DETACH DATABASE current");
      return old;
    }

    /** The store on an older file, which it migrates, and a read-only look at the file after. */
    function upgrade(oldPath: string): { upgraded: SqliteStore; db: Database.Database } {
      const upgraded = new SqliteStore({ path: oldPath });
      stores.push(upgraded);
      const db = new Database(oldPath, { readonly: true });
      connections.push(db);
      expect(db.pragma("user_version", { simple: true })).toBe(migrations.length);
      return { upgraded, db };
    }

    it("bring a new database to user_version = the number of migrations", async () => {
      await openStore().close();
      const db = connect({ readonly: true });
      expect(db.pragma("user_version", { simple: true })).toBe(migrations.length);
      const tables = db
        .prepare<[], { name: string }>("SELECT name FROM sqlite_master WHERE type = 'table'")
        .all();
      // The directory and the Log's tables (other parts add their own).
      expect(tables.map((t) => t.name)).toEqual(
        expect.arrayContaining([
          "changes",
          "checkpoints",
          "history_entries",
          "log_head",
          "merkle_nodes",
          "stream_ids",
          "stream_state",
          "things",
        ]),
      );
    });

    it("read the directory's revision (the highest TD version) from an index, not the whole table", async () => {
      await openStore().close();
      const db = connect({ readonly: true });
      const plan = db
        .prepare<[], { detail: string }>(
          "EXPLAIN QUERY PLAN SELECT coalesce(max(version), 0) AS v FROM things",
        )
        .all()
        .map((row) => row.detail);
      expect(plan).toEqual([expect.stringMatching(/^SEARCH things USING COVERING INDEX things_version/)]);
    });

    it("number the streams of a version 5 database in key order, keeping every history entry and stream row", async () => {
      // A Log with merged history, streams and a tail, written by this hub…
      const things = numbers(5).map(thingName);
      const source = openStore({ historyMergeThreshold: 40, historyMergeChunk: 25 });
      for (let i = 0; i < 8; i++) await source.append(readings(30, 5, i * 30));
      await source.close();
      // …copied into a file at version 5, where `history` and `streams` were keyed by their texts.
      const oldPath = join(dir, "v5.db");
      const old = copyAsVersion(oldPath, 5);
      const counts = (db: Database.Database) =>
        db
          .prepare(
            "SELECT (SELECT count(*) FROM history) AS history, (SELECT count(*) FROM streams) AS streams",
          )
          .get();
      const before = counts(old) as { history: number; streams: number };
      expect(before.history).toBeGreaterThan(100);
      expect(before.streams).toBeGreaterThan(0);
      old.close();

      const { upgraded, db } = upgrade(oldPath);
      await expectHistoryAsInLog(upgraded, things, "upgraded");
      expect(counts(db)).toEqual(before);
      // Numbered in key order, so that a merge cycle's order is the index's.
      const named = db
        .prepare<[], { thing: string; affordance: string; kind: string }>(
          "SELECT thing, affordance, kind FROM stream_ids ORDER BY id",
        )
        .all()
        .map((r) => streamKey(r.thing, r.affordance, r.kind));
      expect(named.length).toBeGreaterThan(0);
      expect(named).toEqual([...named].sort());
      // Appends and merges go on from there.
      for (let i = 8; i < 12; i++) await upgraded.append(readings(30, 5, i * 30));
      await expectHistoryAsInLog(upgraded, things, "appended after the upgrade");
    });

    it("key the subtrees of a version 6 database by where they end, keeping every hash: proofs and appends go on exactly", async () => {
      const source = openStore();
      await source.append(readings(700, 3));
      await source.close();
      const oldPath = join(dir, "v6.db");
      const old = copyAsVersion(oldPath, 6);
      const nodes = (db: Database.Database) =>
        db
          .prepare<[], { level: number; idx: number; hash: Buffer }>(
            "SELECT level, idx, hash FROM merkle_nodes ORDER BY level, idx",
          )
          .all()
          .map((n) => `${n.level}/${n.idx}/${n.hash.toString("hex")}`);
      const before = nodes(old);
      // 43 subtrees of 16 leaves and their parents.
      expect(before.length).toBeGreaterThan(43);
      old.close();

      const { upgraded, db } = upgrade(oldPath);
      expect(nodes(db)).toEqual(before);
      // In the order of where each subtree ends, then its level: a leaf's new subtrees go last.
      const keyedNodes = () =>
        db
          .prepare<[], { id: number; level: number; idx: number }>(
            "SELECT id, level, idx FROM merkle_nodes ORDER BY id",
          )
          .all();
      const keyed = keyedNodes();
      expect(keyed.map((n) => n.id)).toEqual(keyed.map((n) => merkleNodeId(n.level, n.idx)));
      const ends = keyed.map((n) => (n.idx + 1) * 2 ** n.level);
      expect(ends).toEqual([...ends].sort((a, b) => a - b));

      await upgraded.append(readings(400, 3, 700));
      await expectTreeOfLeaves(upgraded, [
        [0, 16],
        [512, 768],
        [0, 1024],
        [640, 720],
        [1024, 1100],
      ]);
      // Those written since the upgrade are keyed as the old ones were.
      const after = keyedNodes();
      expect(after.length).toBeGreaterThan(keyed.length);
      expect(after.map((n) => n.id)).toEqual(after.map((n) => merkleNodeId(n.level, n.idx)));
    });

    it("refuses a database from a newer hub with a clear error, leaving it as it was and closed", () => {
      const newer = new Database(path);
      newer.pragma(`user_version = ${migrations.length + 1}`);
      newer.close();
      const descriptors = process.platform === "linux" ? openDescriptors(path) : 0;

      expect(() => new SqliteStore({ path })).toThrow(
        `The database schema is version ${migrations.length + 1}, newer than this hub understands (${migrations.length}); upgrade the hub.`,
      );

      if (process.platform === "linux") expect(openDescriptors(path)).toBe(descriptors);
      const db = connect({ readonly: true });
      expect(db.pragma("user_version", { simple: true })).toBe(migrations.length + 1);
      expect(db.prepare("SELECT name FROM sqlite_master").all()).toEqual([]);
    });
  });

  describe("the append-only Log", () => {
    it("refuses UPDATE and DELETE on the changes table, from any connection", async () => {
      const store = openStore();
      await store.describe(describeCommand(1));
      await store.remove({ id: describeCommand(1).td.id, cause, hlc: clock.next() });
      await store.close();

      const db = connect();
      expect(() => db.prepare("UPDATE changes SET kind = 'tampered' WHERE seq = 1").run()).toThrow(
        "the log is append-only",
      );
      expect(() => db.prepare("DELETE FROM changes WHERE seq = 2").run()).toThrow("the log is append-only");
      expect(() => db.prepare("DELETE FROM changes").run()).toThrow("the log is append-only");
      expect(db.prepare("SELECT seq, kind FROM changes ORDER BY seq").all()).toEqual([
        { seq: 1, kind: "described" },
        { seq: 2, kind: "removed" },
      ]);
    });

    it("puts back at opening the triggers someone dropped or replaced, and says which", async () => {
      const store = openStore();
      expect(store.restoredGuards).toEqual([]);
      await store.describe(describeCommand(1));
      await store.close();
      const db = connect();
      db.exec("DROP TRIGGER changes_no_update");
      db.exec("DROP TRIGGER releases_no_delete");
      // A trigger of the same name that lets everything through.
      db.exec("DROP TRIGGER changes_no_delete");
      db.exec("CREATE TRIGGER changes_no_delete BEFORE DELETE ON changes WHEN 0 BEGIN SELECT 1; END");
      expect(() => db.prepare("UPDATE changes SET kind = 'tampered' WHERE seq = 1").run()).not.toThrow();
      db.close();

      const reopened = openStore();
      expect(reopened.restoredGuards).toEqual([
        { trigger: "changes_no_update", found: "missing" },
        { trigger: "changes_no_delete", found: "altered" },
        { trigger: "releases_no_delete", found: "missing" },
      ]);
      await reopened.close();
      const after = connect();
      expect(() => after.prepare("UPDATE changes SET kind = 'again' WHERE seq = 1").run()).toThrow(
        "the log is append-only",
      );
      expect(() => after.prepare("DELETE FROM changes").run()).toThrow("the log is append-only");
      // No release is stored, so no row fires it: it is back in the schema.
      expect(
        after.prepare("SELECT sql FROM sqlite_master WHERE name = 'releases_no_delete'").pluck().get(),
      ).toMatch(/BEFORE DELETE ON releases\s+BEGIN SELECT RAISE\(ABORT, 'releases are immutable'\); END/);
      after.close();
      // Once put back, the next opening finds nothing to say.
      const third = openStore();
      expect(third.restoredGuards).toEqual([]);
      await third.close();
    });

    // `REPLACE INTO changes (seq, …)` deletes the old row by conflict resolution, which fires no
    // DELETE trigger unless recursive_triggers is on: the changes_no_replace trigger (BEFORE
    // INSERT, refusing an existing seq) covers it, whatever the conflict clause.
    it.each([
      "INSERT INTO",
      "REPLACE INTO",
      "INSERT OR REPLACE INTO",
      "INSERT OR IGNORE INTO",
      "INSERT OR FAIL INTO",
    ])("refuses %s changes over an existing seq, from another connection", async (verb) => {
      const store = openStore();
      await store.describe(describeCommand(1));
      await store.append(readings(3, 1));
      const head = await store.logHead();
      await store.close();

      const db = connect();
      const before = db.prepare("SELECT * FROM changes ORDER BY seq").all();
      const tamper = db.prepare(
        `${verb} changes (seq, hlc, thing, kind, value, cause, leaf)
         VALUES (2, '000000000000-00000000-x', 'urn:test:other', 'reported', '666', '{"actor":"mallory"}', x'00')`,
      );
      expect(() => tamper.run()).toThrow("the log is append-only");
      expect(() =>
        db
          .prepare(
            `INSERT INTO changes (seq, hlc, thing, kind, cause, leaf) VALUES (1, 'x', 'y', 'z', '{}', x'00')
             ON CONFLICT (seq) DO UPDATE SET kind = 'tampered'`,
          )
          .run(),
      ).toThrow("the log is append-only");
      expect(db.prepare("SELECT * FROM changes ORDER BY seq").all()).toEqual(before);
      // Nor can the size the refusal compares with be lowered to let the row through.
      expect(() => db.prepare("UPDATE log_head SET size = 1 WHERE id = 1").run()).toThrow(
        "the log is append-only",
      );
      expect(() => tamper.run()).toThrow("the log is append-only");
      expect(db.prepare("SELECT * FROM changes ORDER BY seq").all()).toEqual(before);

      const again = openStore();
      const log = await readLog(again);
      expect(log.map((c) => c.seq)).toEqual([1, 2, 3, 4]);
      expect(hashToHex((await again.logHead()).root)).toBe(hashToHex(head.root));
      expect(hashToHex(rootHash(log.map((c) => Buffer.from(c.leaf ?? "", "hex"))))).toBe(
        hashToHex(head.root),
      );
    });
  });

  it("names the file and what to do when it is not a database, or a damaged one", async () => {
    const store = openStore();
    await store.describe(describeCommand(1));
    await store.close();
    const bytes = readFileSync(path);
    // The header's magic string: SQLite no longer takes the file for a database.
    writeFileSync(path, Buffer.concat([Buffer.from("not a database!!"), bytes.subarray(16)]));
    expect(() => openStore()).toThrow(
      `${path}: file is not a database. The file is damaged: restore it from a backup (docs/operations.md, "Backups")`,
    );
  });

  it("refuses a second store on a file another one has open, until that one is closed", async () => {
    const first = openStore();
    await first.describe(describeCommand(1));
    expect(() => openStore()).toThrow(
      `${path} is in use by another hub (it holds ${path}-lock): stop that hub first, or give this one another data directory (--data)`,
    );
    // The lock is the file alone: no journal is left beside it.
    expect(existsSync(`${path}-lock`)).toBe(true);
    expect(existsSync(`${path}-lock-journal`)).toBe(false);
    // The first store goes on writing, and its Log is whole when the file is opened again.
    await first.append(readings(2, 1));
    await first.close();
    const again = openStore();
    expect(await again.lastSeq()).toBe(3);
  });

  it("refuses a write that finds the disk full as unavailable (503, Retry-After), recording nothing of it, and goes on once there is room", async () => {
    const store = openStore({ writerThread: false });
    await store.describe(describeCommand(1));
    await store.append(readings(10, 1));
    const own = (store as unknown as { db: Database.Database }).db;
    const pages = own.pragma("page_count", { simple: true }) as number;
    // The file may not grow: what a full disk does to SQLite (SQLITE_FULL).
    own.pragma(`max_page_count = ${pages}`);
    const big = readings(2000, 1, 100).map((d) => ({ ...d, value: "x".repeat(2000) }));
    const refused = await store.append(big).catch((error: unknown) => error);
    expect(refused).toBeInstanceOf(UnavailableError);
    expect(refused).toMatchObject({ status: 503, retryAfter: 10, cause: { code: "SQLITE_FULL" } });
    expect((refused as Error).message).toBe(
      `The hub's disk is full (${dir}): nothing of this write was recorded. Retry once space has been freed there`,
    );
    // Said until a write commits again (GET /health answers 503 with it meanwhile).
    expect(store.writeFailure()).toEqual({
      since: expect.stringMatching(/^\d{4}-\d{2}-\d{2}T/) as string,
      reason: (refused as Error).message,
    });
    const refusedTd = await store.describe(describeCommand(2)).catch((error: unknown) => error);
    // A small write may still fit in the pages the file has; a refused one is refused the same way.
    if (refusedTd instanceof Error) expect(refusedTd).toBeInstanceOf(UnavailableError);
    expect((await store.logHead()).size).toBe(refusedTd instanceof Error ? 11 : 12);
    own.pragma("max_page_count = 4294967294");
    const after = await store.append(big);
    expect(after[0]?.seq).toBe((await store.logHead()).size - big.length + 1);
    expect(store.writeFailure()).toBeUndefined();
  });

  it.each([["hyperthings.db-lock"], ["hyperthings.db"]])(
    "refuses to open when %s cannot be opened, naming the file and the data directory",
    (name) => {
      // A directory where the file should be: SQLite cannot open it, as with a read-only or
      // unwritable data directory (which root, running these tests, would not see).
      mkdirSync(join(dir, name));
      expect(() => openStore()).toThrow(
        `${join(dir, name)}: unable to open database file. The hub reads and writes its data directory ${dir} ` +
          "(--data, HYPERTHINGS_DATA): it must be a directory this user may write, on a file system that is not read-only",
      );
    },
  );

  it.each([
    ["is a file", (file: string) => file],
    ["is under a file", (file: string) => join(file, "hub")],
  ])("refuses a data directory that %s, saying that a file is in the way", (_, dataOf) => {
    const file = join(dir, "not-a-directory");
    writeFileSync(file, "");
    const data = dataOf(file);
    expect(() => new SqliteStore({ path: join(data, "hyperthings.db") })).toThrow(
      `The data directory ${data} (--data, HYPERTHINGS_DATA) cannot be made: ${file} is a file, not a directory. ` +
        "It must be a directory this user may write, on a file system that is not read-only",
    );
  });

  it("creates a missing data directory readable by its owner alone (mode 0700), with the database in it", async () => {
    const data = join(dir, "data", "hub");
    const store = new SqliteStore({ path: join(data, "hyperthings.db") });
    stores.push(store);
    await store.describe(describeCommand(1));
    expect(statSync(data).mode & 0o777).toBe(0o700);
    expect(statSync(join(dir, "data")).mode & 0o777).toBe(0o700);
  });

  describe("a Log whose head and rows disagree", () => {
    it.each([
      [
        "a row past the head",
        "INSERT INTO changes SELECT seq + 1, hlc, at, thing, affordance, kind, value, previous, cause, leaf FROM changes WHERE seq = 4",
        /head says 4 Changes, the changes table ends at seq 5 and the Merkle tree covers 4/,
      ],
      [
        "the head raised",
        "UPDATE log_head SET size = size + 5",
        /head says 9 Changes, the changes table ends at seq 4 and the Merkle tree covers 4/,
      ],
    ])("is refused at opening, with %s, and is left as it was", async (_what, alteration, message) => {
      const store = openStore();
      await store.describe(describeCommand(1));
      await store.append(readings(3, 1));
      await store.close();
      const db = connect();
      db.exec(alteration);
      const before = db.prepare("SELECT * FROM changes ORDER BY seq").all();
      expect(() => openStore()).toThrow(message);
      expect(db.prepare("SELECT * FROM changes ORDER BY seq").all()).toEqual(before);
    });
  });

  it("runs in WAL mode with synchronous=FULL", async () => {
    const store = openStore();
    await store.describe(describeCommand(1));
    expect(connect({ readonly: true }).pragma("journal_mode", { simple: true })).toBe("wal");
    // synchronous is a setting of each connection, invisible from another: read the store's own.
    const own = (store as unknown as { db: Database.Database }).db;
    expect(own.pragma("synchronous", { simple: true })).toBe(2); // 2 = FULL
  });

  it("reads through a memory map of the size asked for: 1 GiB by default, none with 0", async () => {
    const mapped = (store: SqliteStore) =>
      (store as unknown as { db: Database.Database }).db.pragma("mmap_size", { simple: true });
    const byDefault = openStore();
    expect(mapped(byDefault)).toBe(DEFAULT_MMAP_BYTES);
    expect(DEFAULT_MMAP_BYTES).toBe(2 ** 30);
    await byDefault.close();
    const unmapped = openStore({ mmapBytes: 0 });
    expect(mapped(unmapped)).toBe(0);
    // Reads still answer, page by page.
    await unmapped.describe(describeCommand(1));
    expect((await unmapped.getThing(describeCommand(1).td.id))?.version).toBe(1);
  });

  describe("the state view", () => {
    const report = (thing: string, affordance: string, value: unknown, kind = "reported"): ChangeDraft => ({
      thing,
      affordance,
      kind,
      value,
      cause,
      hlc: clock.advance(1),
    });
    const visited = (store: SqliteStore, affordance: string, kind = "reported") => {
      const out: Array<[string, unknown, number]> = [];
      store.stateView.forEach(affordance, kind, (thing, value, seq) => out.push([thing, value, seq]));
      return out.sort((x, y) => x[0].localeCompare(y[0]));
    };

    it("reads each stream's latest committed value synchronously: not a batch in flight, not one that failed, and the same after reopening", async () => {
      const store = openStore();
      const view = store.stateView;
      const [a, b] = [thingName(1), thingName(2)];
      await store.describe(describeCommand(1));
      await store.describe(describeCommand(2));
      const first = await store.append([
        report(a, "temperature", 20.5),
        report(a, "colour", { r: 1, g: 2 }),
        report(b, "temperature", 19),
        report(b, "mode", "eco", "desired"),
        report(b, "temperature", 19.5),
      ]);
      const seqOf = (i: number) => first[i]?.seq ?? -1;
      expect(view.latest(a, "temperature", "reported")).toEqual({ seq: seqOf(0), value: 20.5 });
      expect(view.latest(a, "colour", "reported")).toEqual({ seq: seqOf(1), value: { r: 1, g: 2 } });
      expect(view.latest(b, "mode", "reported")).toBeUndefined();
      expect(view.latest(b, "mode", "desired")?.value).toBe("eco");
      // A Thing-level stream's value is its TD, in the Log: none here.
      expect(view.latest(a, "", "described")).toBeUndefined();
      expect(visited(store, "temperature")).toEqual([
        [a, 20.5, seqOf(0)],
        [b, 19.5, seqOf(4)],
      ]);
      expect([view.count("temperature", "reported"), view.count("colour", "reported")]).toEqual([2, 1]);
      expect(view.count("nothing", "reported")).toBe(0);

      // In flight with the writer thread: the projection has moved on (the new stream counts),
      // readers of the Log have not.
      const next = store.append([report(a, "temperature", 21), report(b, "humidity", 40)]);
      await new Promise((resolve) => setImmediate(resolve));
      expect(view.count("humidity", "reported")).toBe(1);
      expect(visited(store, "humidity")).toEqual([]);
      expect(view.latest(a, "temperature", "reported")?.value).toBe(20.5);
      const [, humidity] = await next;
      expect(view.latest(a, "temperature", "reported")?.value).toBe(21);
      expect(visited(store, "humidity")).toEqual([[b, 40, humidity?.seq]]);

      // A batch the writer could not commit leaves nothing behind, not even its new stream.
      connect().exec(
        "CREATE TRIGGER poison BEFORE INSERT ON changes WHEN NEW.value = '666' BEGIN SELECT RAISE(ABORT, 'poisoned'); END",
      );
      await expect(store.append([report(b, "pressure", 666), report(a, "temperature", 666)])).rejects.toThrow(
        "poisoned",
      );
      expect(view.count("pressure", "reported")).toBe(0);
      expect(visited(store, "pressure")).toEqual([]);
      expect(view.latest(a, "temperature", "reported")?.value).toBe(21);

      // Reopened, the projection comes from stream_state and the Log's tail: the same values.
      const before = ["temperature", "colour", "humidity"].map((p) => visited(store, p));
      await store.close();
      const reopened = openStore();
      expect(["temperature", "colour", "humidity"].map((p) => visited(reopened, p))).toEqual(before);
      expect(reopened.stateView.latest(b, "mode", "desired")?.value).toBe("eco");
      expect(reopened.stateView.count("temperature", "reported")).toBe(2);
    });
  });

  it("appends issued at once, some refused and some of several Changes, each take their stream's latest value as previous, as committed", async () => {
    // A batch's streams are looked up ahead of its appends (SqliteLog.warm), in windows: every
    // append must still find its stream as the Changes before it in the batch left it, whether
    // its Thing was new, a command before it failed halfway, or its stream was appended to twice.
    const store = openStore();
    const draft = (n: number, affordance: string, value: unknown): ChangeDraft => ({
      thing: thingName(n),
      affordance,
      kind: "reported",
      value,
      cause,
      hlc: clock.advance(1),
    });
    await store.append(numbers(20).map((n) => draft(n, "temperature", 0)));
    const calls: ChangeDraft[][] = numbers(400).map((i) => {
      const one = draft(1 + ((i * 7) % 40), ["temperature", "humidity"][i % 2] ?? "", i);
      if (i % 50 === 0) return [{ ...one, value: BigInt(i) }];
      if (i % 37 === 0) return [one, draft(3, "humidity", BigInt(i)), draft(4, "humidity", -i)];
      if (i % 41 === 0) return [one, draft(1 + (i % 40), "power", -i)];
      return [one];
    });
    const settled = await Promise.allSettled(calls.map((drafts) => store.append(drafts)));
    const latest = new Map<string, unknown>();
    for (const c of await readLog(store)) if (c.affordance) latest.set(`${c.thing} ${c.affordance}`, c.value);
    // The model: every call that was not refused, in the order made, over what the first append left.
    const model = new Map<string, unknown>(numbers(20).map((n) => [`${thingName(n)} temperature`, 0]));
    const expected: Array<{ value: unknown; previous: unknown }> = [];
    const recorded: Array<{ value: unknown; previous: unknown }> = [];
    calls.forEach((drafts, i) => {
      const outcome = settled[i];
      const refused = drafts.some((d) => typeof d.value === "bigint");
      expect(outcome?.status).toBe(refused ? "rejected" : "fulfilled");
      if (refused || outcome?.status !== "fulfilled") return;
      for (const d of drafts) {
        const key = `${d.thing} ${d.affordance ?? ""}`;
        expected.push({ value: d.value, previous: model.get(key) });
        model.set(key, d.value);
      }
      for (const c of outcome.value) recorded.push({ value: c.value, previous: c.previous });
    });
    expect(recorded).toEqual(expected);
    expect(latest).toEqual(model);
    for (const [key, value] of model) {
      const [thingId = "", affordance = ""] = key.split(" ");
      expect(store.stateView.latest(thingId, affordance, "reported")?.value).toBe(value);
    }
  });

  describe("backpressure", () => {
    it("with maxQueue 10, refuses the excess of 50 writes issued at once with UnavailableError and retryAfter, and commits the rest", async () => {
      const store = openStore({ maxQueue: 10 });
      const commands = numbers(50).map(describeCommand);
      const settled = await Promise.allSettled(commands.map((c) => store.describe(c)));

      const accepted = settled.flatMap((s, i) => (s.status === "fulfilled" ? [commands[i]?.td.id] : []));
      const refused = settled.flatMap((s) => (s.status === "rejected" ? [s.reason as unknown] : []));
      expect(accepted).toEqual(commands.slice(0, 10).map((c) => c.td.id));
      expect(refused).toHaveLength(40);
      for (const error of refused) {
        expect(error).toBeInstanceOf(UnavailableError);
        expect((error as UnavailableError).retryAfter).toBeGreaterThan(0);
      }
      expect(await store.countThings()).toBe(10);
      expect(await store.lastSeq()).toBe(10);

      // Once the queue has drained, writes are accepted again.
      await expect(store.describe(describeCommand(51))).resolves.toMatchObject({ created: true });
    });

    it("with maxQueuedChanges 250, refuses appends past 250 waiting Changes, however few the calls; one alone is always taken", async () => {
      const store = openStore({ maxQueuedChanges: 250 });
      await store.append(readings(3, 3));
      const start = await store.lastSeq();
      const calls = numbers(10).map((i) => readings(100, 3, i * 100));
      const settled = await Promise.allSettled(calls.map((drafts) => store.append(drafts)));
      expect(settled.map((s) => s.status)).toEqual([
        "fulfilled",
        "fulfilled",
        ...Array.from({ length: 8 }, () => "rejected"),
      ]);
      for (const s of settled.slice(2)) {
        const error = (s as PromiseRejectedResult).reason as UnavailableError;
        expect(error).toBeInstanceOf(UnavailableError);
        expect(error.message).toBe("200 Changes are waiting to be written (at most 250); retry shortly");
        expect(error.retryAfter).toBeGreaterThan(0);
      }
      // Only what was taken is in the Log.
      expect(await store.lastSeq()).toBe(start + 200);
      // A call bigger than the bound, alone, is taken.
      await expect(store.append(readings(1_000, 3, 5_000))).resolves.toHaveLength(1_000);
      expect(await store.lastSeq()).toBe(start + 1_200);
    });
  });

  describe("group commit", () => {
    // Each test reads the WAL before and after; the same salt shows it did not restart between.
    it("the WAL commit count is a true measure: five awaited describes are five commits", async () => {
      const store = openStore();
      const before = walCommits(path);
      for (const n of numbers(5)) await store.describe(describeCommand(n));
      const after = walCommits(path);
      expect(after.salt).toBe(before.salt);
      expect(after.commits - before.commits).toBe(5);
    });

    it("commits 200 describes issued at once in fewer than 200 transactions", async () => {
      const store = openStore();
      const before = walCommits(path);
      await Promise.all(numbers(200).map((n) => store.describe(describeCommand(n))));
      const after = walCommits(path);
      expect(after.salt).toBe(before.salt);
      expect(after.commits - before.commits).toBeGreaterThanOrEqual(1);
      expect(after.commits - before.commits).toBeLessThan(200);
      expect(await store.countThings()).toBe(200);
    });

    it("puts at most maxBatch commands in one transaction", async () => {
      const store = openStore({ maxBatch: 50 });
      const before = walCommits(path);
      await Promise.all(numbers(200).map((n) => store.describe(describeCommand(n))));
      const after = walCommits(path);
      expect(after.salt).toBe(before.salt);
      expect(after.commits - before.commits).toBeGreaterThanOrEqual(4);
      expect(after.commits - before.commits).toBeLessThan(200);
    });

    it("when a command's failure rolls back the whole transaction, it rejects alone and the rest of its batch commits", async () => {
      const store = openStore();
      await store.describe(describeCommand(1));
      // RAISE(ROLLBACK) ends the whole transaction, not just the command's savepoint — as a full
      // disk or an I/O error can. The store's statements see the new schema on their next run.
      const poison = describeCommand(3).td.id;
      connect().exec(
        `CREATE TRIGGER poison BEFORE INSERT ON things WHEN NEW.id = '${poison}' BEGIN SELECT RAISE(ROLLBACK, 'poisoned'); END`,
      );

      const settled = await Promise.allSettled([2, 3, 4].map((n) => store.describe(describeCommand(n))));
      expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
      const acknowledged = settled.flatMap((s) => (s.status === "fulfilled" ? [s.value.change] : []));

      expect(await store.getThing(describeCommand(2).td.id)).toBeDefined();
      expect(await store.getThing(poison)).toBeUndefined();
      expect(await store.getThing(describeCommand(4).td.id)).toBeDefined();
      expect(await store.changesAfter(1, 10)).toStrictEqual(acknowledged);
      expect(acknowledged.map((c) => c.seq)).toEqual([2, 3]);
    });
  });

  it("countStream counts exactly over any range of a stream with thousands of entries, while merges go on and after reopening", async () => {
    const store = openStore({
      historyMergeThreshold: 600,
      historyMergeChunk: 400,
      historyMergePace: 0,
      historyRankStep: 16,
    });
    const thingId = thingName(1);
    const streams = [
      ["temperature", "reported"],
      ["power", "desired"],
    ] as const;
    let state = 12345;
    const random = (n: number): number => {
      state = (state * 1103515245 + 12345) % 2 ** 31;
      return state % n;
    };
    const expectCounts = async (s: SqliteStore, log: readonly Change[]): Promise<void> => {
      for (const [affordance, kind] of streams) {
        const seqs = log.filter((c) => c.affordance === affordance && c.kind === kind).map((c) => c.seq);
        for (let q = 0; q < 25; q++) {
          const a = random(log.length + 1);
          const b = random(log.length + 1);
          const [after, upTo] = a <= b ? [a, b] : [b, a];
          const expected = seqs.filter((seq) => seq > after && seq <= upTo).length;
          expect(
            await s.countStream(thingId, affordance, kind, after, upTo),
            `${affordance} (${after}, ${upTo}]`,
          ).toBe(expected);
        }
        expect(await s.countStream(thingId, affordance, kind, 0, log.length)).toBe(seqs.length);
      }
    };
    for (let round = 0; round < 12; round++) {
      await store.append(readings(500, 1, round * 500));
      await expectCounts(store, await readLog(store));
    }
    // The marks were found on the first count and kept up by the merges since: one per 16 entries.
    const ranks = (
      internals(store).log as unknown as { ranks: Map<string, { marks: number[]; count: number }> }
    ).ranks;
    const inTable = internals(store)
      .db.prepare<[], { n: number }>(
        "SELECT count(*) AS n FROM history WHERE affordance = 'temperature' AND kind = 'reported'",
      )
      .get()?.n;
    const temperature = ranks.get(streamKey(thingId, "temperature", "reported"));
    expect(temperature?.count).toBe(inTable);
    expect(temperature?.marks.length).toBe(Math.floor((inTable ?? 0) / 16));
    expect(inTable).toBeGreaterThan(200);
    const log = await readLog(store);
    await store.close();
    await expectCounts(openStore({ historyRankStep: 16 }), log);
  });

  it("a batch rolled back after it completed blocks of leaves leaves the Merkle tree exact, in memory and after reopening", async () => {
    const store = openStore();
    await store.append(readings(250, 3));
    const poison = describeCommand(98).td.id;
    connect().exec(
      `CREATE TRIGGER poison BEFORE INSERT ON things WHEN NEW.id = '${poison}' BEGIN SELECT RAISE(ROLLBACK, 'poisoned'); END`,
    );
    // One batch: the first append completes the block (seq 256) and stores its subtree, then the
    // poisoned describe rolls the whole transaction back; the appends run again after it.
    const settled = await Promise.allSettled([
      store.append(readings(10, 3, 250)),
      store.describe(describeCommand(98)),
      store.append(readings(5, 3, 260)),
    ]);
    expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "fulfilled"]);
    await store.append(readings(300, 3, 265));
    const expectExact = async (s: SqliteStore): Promise<void> => {
      const leaves = (await readLog(s)).map((c) => hashFromHex(c.leaf ?? ""));
      expect(leaves).toHaveLength(565);
      const hasher = inMemorySubtreeHasher(leaves);
      expect(hashToHex((await s.logHead()).root)).toBe(hashToHex(rootHash(leaves)));
      const ranges: Array<[number, number]> = [
        [0, 256],
        [0, 512],
        [256, 512],
        [250, 260],
        [512, 565],
        [0, 565],
        [300, 301],
      ];
      expect((await s.subtreeHashes(ranges)).map(hashToHex)).toEqual(
        ranges.map(([a, b]) => hashToHex(hasher(a, b))),
      );
    };
    await expectExact(store);
    await store.close();
    await expectExact(openStore());
  });

  it("reads a block's leaves in one value for proofs, and names the Change whose stored leaf is not 32 bytes", async () => {
    const store = openStore();
    await store.append(readings(40, 3));
    // Ranges within blocks of 16, complete and partial: hashed from the leaves read back.
    await expectTreeOfLeaves(store, [
      [17, 19],
      [0, 3],
      [33, 38],
      [20, 40],
    ]);
    const [firstBlock] = await store.subtreeHashes([[0, 3]]);
    await store.close();
    const db = connect();
    db.exec("DROP TRIGGER changes_no_update");
    db.prepare("UPDATE changes SET leaf = x'00' WHERE seq = 20").run();
    db.close();
    const reopened = openStore();
    await expect(reopened.subtreeHashes([[17, 19]])).rejects.toThrow(
      "the leaf hash of Change 20 is 1 byte, not 32: the database was altered outside the hub. `things verify` checks the Log; restore the database from a backup",
    );
    await expect(reopened.subtreeHashes([[17, 19]])).rejects.toBeInstanceOf(DamagedLogError);
    // Other blocks are as they were.
    expect((await reopened.subtreeHashes([[0, 3]])).map(hashToHex)).toEqual([
      hashToHex(firstBlock ?? new Uint8Array()),
    ]);
  });

  it("a mark rolled back to twice keeps its Merkle frontier: leaves appended after the first rollback do not reach it", async () => {
    const store = openStore({ writerThread: false });
    await store.append(readings(21, 3));
    const { db, log } = internals(store);
    const rootHere = () =>
      hashToHex((log as unknown as { frontier: { root(): Uint8Array } }).frontier.root());
    const before = rootHere();
    // The rows go back with their transaction; the Log's memory with the mark.
    const appendThenUndo = db.transaction((drafts: ChangeDraft[]) => {
      for (const draft of drafts) log.append(draft);
      expect(rootHere()).not.toBe(before);
      throw new Error("undo the rows");
    });
    const mark = log.mark();
    expect(() => appendThenUndo(readings(1, 3, 21))).toThrow("undo the rows");
    log.rollback(mark);
    expect(rootHere()).toBe(before);
    expect(() => appendThenUndo(readings(2, 3, 22))).toThrow("undo the rows");
    log.rollback(mark);
    expect(rootHere()).toBe(before);
    // And the Log goes on exactly from there.
    await store.append(readings(40, 3, 24));
    await expectTreeOfLeaves(store, [
      [0, 61],
      [16, 32],
      [20, 40],
    ]);
  });

  it.each([
    ["hashed on the event loop", {}],
    ["hashed by the writer thread", { writerHashesFrom: 0 }],
  ])(
    "when the writer thread cannot commit a batch (%s), it and the batches built on it fail; the Log goes on exactly after them",
    async (_, hashing) => {
      // Small batches, so that several are with the writer thread at once.
      const store = openStore({ maxBatch: 4, ...hashing });
      await store.append(readings(30, 3));
      // The writer's connection refuses one value, as a full disk or an I/O error would refuse a
      // commit — slowly, so that the next batch is built on that one and sent meanwhile.
      connect().exec(
        `CREATE TRIGGER poison BEFORE INSERT ON changes WHEN NEW.value = '1000' BEGIN
         SELECT count(*) FROM (WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 2000000) SELECT x FROM n);
         SELECT RAISE(ABORT, 'poisoned');
       END`,
      );
      const calls = numbers(40).map((i) => readings(1, 3, 980 + i));
      const settled = await Promise.allSettled(calls.map((drafts) => store.append(drafts)));
      const poisoned = calls.findIndex((drafts) => drafts[0]?.value === 1000);
      expect(settled[poisoned]?.status).toBe("rejected");
      const rejected = settled.flatMap((s, i) => (s.status === "rejected" ? [i] : []));
      // The poisoned batch (up to 4 calls) and the one built on it while it was written failed;
      // nothing before them did, and the calls queued after the failure committed.
      expect(rejected.every((i) => i >= poisoned - 3)).toBe(true);
      expect(Math.max(...rejected)).toBeGreaterThan(poisoned + 1);
      expect(rejected.length).toBeLessThan(calls.length - poisoned);
      expect(settled.at(-1)?.status).toBe("fulfilled");
      const acknowledged = settled.flatMap((s) => (s.status === "fulfilled" ? s.value : []));
      // No gap and no Change that failed: the acknowledged ones, in order, follow the first 30.
      expect(acknowledged.map((c) => c.seq)).toEqual(numbers(acknowledged.length).map((i) => 30 + i));
      expect(await store.changesAfter(30, 100)).toStrictEqual(acknowledged);
      expect((await store.logHead()).size).toBe(30 + acknowledged.length);
      // Each acknowledged reading's `previous` is the value acknowledged before it in its stream.
      const log = await readLog(store);
      const lastValue = new Map<string, unknown>();
      for (const change of log) {
        const key = `${change.thing} ${change.affordance ?? ""} ${change.kind}`;
        expect(change.previous, `seq ${change.seq}`).toEqual(lastValue.get(key));
        lastValue.set(key, change.value);
      }
      const expectExact = async (s: SqliteStore): Promise<void> => {
        const leaves = (await readLog(s)).map((c) => hashFromHex(c.leaf ?? ""));
        expect(hashToHex((await s.logHead()).root)).toBe(hashToHex(rootHash(leaves)));
      };
      await expectExact(store);
      connect().exec("DROP TRIGGER poison");
      await store.append(readings(100, 3, 2000));
      await expectExact(store);
      await store.close();
      await expectExact(openStore());
    },
  );

  it("batches hashed by the writer thread and on the event loop, in any order, keep the Merkle tree exact", async () => {
    // Batches of 60 Changes and more are hashed by the thread, smaller ones here, and a small one
    // built while a big one is in flight goes to the thread too.
    const store = openStore({ writerHashesFrom: 60, maxBatch: 8 });
    const writer = (store as unknown as { writer: { write: (set: WriteSet, epoch: number) => unknown } })
      .writer;
    const write = writer.write.bind(writer);
    const sets = { thread: 0, here: 0 };
    writer.write = (set, epoch) => {
      if (set.canonical) sets.thread++;
      else if (set.changes.length > 0) sets.here++;
      return write(set, epoch);
    };
    let offset = 0;
    const call = (n: number): Promise<Change[]> => {
      const drafts = readings(n, 7, offset);
      offset += n;
      return store.append(drafts);
    };
    const written: Change[] = [];
    for (let round = 0; round < 4; round++) {
      // Calls of 30 to 90 Changes at once: batches for the thread (and small ones with them).
      written.push(...(await Promise.all(numbers(12).map((i) => call(30 + ((i * 37 + round) % 61))))).flat());
      // One small call at a time, nothing in flight: hashed here.
      for (let i = 0; i < 6; i++) written.push(...(await call(1 + ((i * 7 + round) % 20))));
      // A small call built while a big one is in flight: to the thread as well.
      const big = call(100);
      await new Promise((resolve) => setImmediate(resolve));
      written.push(...(await Promise.all([big, call(3)])).flat());
    }
    // Each acknowledged Change carries its leaf, as the Log has it.
    for (const change of written) expect(change.leaf).toBe(hashToHex(changeLeafHash(change)));
    expect(sets.thread).toBeGreaterThan(0);
    expect(sets.here).toBeGreaterThan(0);
    const expectExact = async (s: SqliteStore): Promise<void> => {
      const log = await readLog(s);
      expect(log.length).toBe(offset);
      for (const change of log)
        expect(change.leaf, `seq ${change.seq}`).toBe(hashToHex(changeLeafHash(change)));
      const leaves = log.map((c) => hashFromHex(c.leaf ?? ""));
      expect(hashToHex((await s.logHead()).root)).toBe(hashToHex(rootHash(leaves)));
      // Stored subtrees (16 leaves and more) and the block being filled, as proofs read them.
      const hasher = inMemorySubtreeHasher(leaves);
      const ranges: Array<[number, number]> = [
        [0, 16],
        [16, 32],
        [1024, 2048],
        [0, 2048],
        [2048, 3072],
        [offset - (offset % 16), offset],
        [offset - 40, offset],
        [3, offset],
      ];
      expect((await s.subtreeHashes(ranges)).map(hashToHex)).toEqual(
        ranges.map(([a, b]) => hashToHex(hasher(a, b))),
      );
    };
    await expectExact(store);
    // Reopened, it goes on from the head the thread wrote, with calls hashed here and there.
    await store.close();
    const reopened = openStore({ writerHashesFrom: 60 });
    await expectExact(reopened);
    await reopened.append(readings(5, 7, offset));
    offset += 5;
    await reopened.append(readings(200, 7, offset));
    offset += 200;
    await expectExact(reopened);
  });

  it("sends the writer thread a set's hashes in an array of their own, not a view of a larger shared one", async () => {
    // postMessage copies a view's whole ArrayBuffer: a slice of Node's 8 KiB Buffer pool sent
    // the whole pool with every small set.
    const store = openStore();
    const writer = (store as unknown as { writer: { write: (set: WriteSet, epoch: number) => unknown } })
      .writer;
    const write = writer.write.bind(writer);
    const sent: Array<{ leaves: number; nodes: number; buffer: number }> = [];
    writer.write = (set, epoch) => {
      if (set.leaves)
        sent.push({
          leaves: set.leaves.byteLength,
          nodes: set.nodeHashes.byteLength,
          buffer: set.leaves.buffer.byteLength,
        });
      return write(set, epoch);
    };
    let offset = 0;
    for (let round = 0; round < 5; round++) {
      await Promise.all(
        numbers(24).map((i) => {
          const drafts = readings(1 + (i % 2), 7, offset);
          offset += drafts.length;
          return store.append(drafts);
        }),
      );
    }
    expect(sent.length).toBeGreaterThan(0);
    expect(sent.some((s) => s.nodes > 0)).toBe(true);
    for (const s of sent) expect(s.buffer).toBe(s.leaves + s.nodes);
    const log = await readLog(store);
    expect(hashToHex((await store.logHead()).root)).toBe(
      hashToHex(rootHash(log.map((c) => hashFromHex(c.leaf ?? "")))),
    );
  });

  it("calls that fail halfway through a batch hashed on the event loop take their leaves back out of the Merkle tree", async () => {
    // A command's mark copies nothing of the frontier (SqliteLog.markCommand): a call whose last
    // Change cannot be recorded takes the leaves of the ones before it back out, in place.
    const store = openStore({ maxBatch: 16 });
    const writer = (store as unknown as { writer: { write: (set: WriteSet, epoch: number) => unknown } })
      .writer;
    const write = writer.write.bind(writer);
    let setsHere = 0;
    writer.write = (set, epoch) => {
      if (!set.canonical && set.changes.length > 0) setsHere++;
      return write(set, epoch);
    };
    let offset = 0;
    const call = (i: number): Promise<Change[]> => {
      const n = 1 + (i % 4);
      const drafts = readings(n, 5, offset);
      offset += n;
      // One call in three fails at its last Change, after 0 to 3 appended.
      if (i % 3 === 1) drafts[n - 1] = { ...(drafts[n - 1] as ChangeDraft), value: BigInt(i) };
      return store.append(drafts);
    };
    const settled = await Promise.allSettled(numbers(300).map((i) => call(i)));
    expect(setsHere).toBeGreaterThan(10);
    expect(settled.filter((s) => s.status === "rejected")).toHaveLength(100);
    const written = settled.flatMap((s) => (s.status === "fulfilled" ? s.value : []));
    const log = await readLog(store);
    expect(log).toStrictEqual(written);
    for (const change of log)
      expect(change.leaf, `seq ${change.seq}`).toBe(hashToHex(changeLeafHash(change)));
    const leaves = log.map((c) => hashFromHex(c.leaf ?? ""));
    expect(hashToHex((await store.logHead()).root)).toBe(hashToHex(rootHash(leaves)));
    const hasher = inMemorySubtreeHasher(leaves);
    const ranges: Array<[number, number]> = [
      [0, 16],
      [16, 32],
      [0, 256],
      [log.length - (log.length % 16), log.length],
      [5, log.length],
    ];
    expect((await store.subtreeHashes(ranges)).map(hashToHex)).toEqual(
      ranges.map(([a, b]) => hashToHex(hasher(a, b))),
    );
    // Reopened, the head on disk is that tree too.
    await store.close();
    const reopened = openStore();
    expect(hashToHex((await reopened.logHead()).root)).toBe(hashToHex(rootHash(leaves)));
  });

  it("the writer thread builds each leaf input as core does, for any strings, values and causes (property)", async () => {
    // Every batch to the thread: it builds the leaf inputs from the rows, told only the canonical
    // texts that are not the recorded ones (objects, previous values and causes out of order).
    const store = openStore({ writerHashesFrom: 1 });
    // No lone surrogates: the database holds UTF-8.
    const text = fc.string({ unit: "grapheme", maxLength: 10 });
    const json = fc.jsonValue({ maxDepth: 2 }).filter((v) => !JSON.stringify(v).includes("\\ud"));
    // Causes with their members in any order (the actor anywhere among them), and members of
    // their own.
    const cause = fc
      .shuffledSubarray(["via", "release", "rule", "correlation", "note"])
      .chain((keys) =>
        fc.tuple(
          fc.constant(keys),
          fc.nat({ max: keys.length }),
          fc.array(text, { minLength: keys.length + 1, maxLength: keys.length + 1 }),
        ),
      )
      .map(([keys, at, values]): Cause => {
        const members = keys.map((k, i): [string, string] => [k, values[i] ?? ""]);
        members.splice(at, 0, ["actor", values[keys.length] ?? ""]);
        // The actor is among the members, in its place: a literal would put it first.
        return Object.fromEntries(members) as unknown as Cause;
      });
    const draft = fc.record(
      {
        // Few Things and affordances: streams repeat, so Changes carry previous values.
        thing: fc.constantFrom("urn:test:a", 'urn:test:"b"', "urn:test:\u00e9\n"),
        affordance: fc.constantFrom("temperature", "mode\\x", "\u2603"),
        kind: fc.constantFrom("reported", "desired", "emitted"),
        value: json,
        at: text,
        cause,
      },
      { requiredKeys: ["thing", "kind", "cause"] },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(draft, { minLength: 1, maxLength: 8 }), async (batch) => {
        const written = await store.append(batch.map((d) => ({ ...d, hlc: clock.next() })));
        for (const change of written)
          expect(change.leaf, `seq ${change.seq}`).toBe(hashToHex(changeLeafHash(change)));
      }),
      { numRuns: 80 },
    );
    const log = await readLog(store);
    expect(log.some((c) => c.previous !== undefined)).toBe(true);
    for (const change of log)
      expect(change.leaf, `seq ${change.seq}`).toBe(hashToHex(changeLeafHash(change)));
    const leaves = log.map((c) => hashFromHex(c.leaf ?? ""));
    expect(hashToHex((await store.logHead()).root)).toBe(hashToHex(rootHash(leaves)));
  });

  it("while batches are with the writer thread, readers see each stream as committed; then as the batches left it", async () => {
    const store = openStore();
    const thing = thingName(1);
    const reading = (value: number): ChangeDraft[] => [
      { thing, affordance: "temperature", kind: "reported", value, cause, hlc: clock.advance(1) },
    ];
    const [first] = await store.append(reading(1));
    // The writer's connection takes its time over one value, so that batches wait with it.
    connect().exec(
      `CREATE TRIGGER slow BEFORE INSERT ON changes WHEN NEW.value = '777'
       BEGIN SELECT count(*) FROM (WITH RECURSIVE n(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM n WHERE x < 3000000) SELECT x FROM n); END`,
    );
    const slow = store.append(reading(777));
    await new Promise((resolve) => setImmediate(resolve));
    // Built on the slow one while it is written: its previous is 777, not yet committed.
    const next = store.append(reading(2));
    await new Promise((resolve) => setImmediate(resolve));
    await new Promise((resolve) => setImmediate(resolve));
    const inFlight = (store as unknown as { inFlight: unknown[] }).inFlight;
    expect(inFlight.length).toBe(2);
    const latestSeq = async (): Promise<number | undefined> =>
      (await store.streamsAt(thing)).find((s) => s.affordance === "temperature")?.latest.seq;
    expect(await latestSeq()).toBe(first?.seq);
    expect((await store.history({ thing, order: "asc", limit: 10 })).map((c) => c.value)).toEqual([1]);
    const [b] = await slow;
    // The first batch committed: readers see it, not yet the one behind it (if still in flight).
    if (inFlight.length > 0) expect(await latestSeq()).toBe(b?.seq);
    const [c] = await next;
    expect(c?.previous).toBe(777);
    expect(await latestSeq()).toBe(c?.seq);
    expect((await store.history({ thing, order: "asc", limit: 10 })).map((x) => x.value)).toEqual([
      1, 777, 2,
    ]);
    connect().exec("DROP TRIGGER slow");
    // A Change after them reads its previous from the committed chain.
    const [d] = await store.append(reading(3));
    expect(d?.previous).toBe(2);
  });

  it("a Log that kept only subtrees of 256 leaves and more goes on exactly: the smaller ones are computed from its leaves", async () => {
    const store = openStore();
    await store.append(readings(700, 3));
    await store.close();
    // As a Log written before subtrees of 16 leaves were kept.
    const db = connect();
    db.exec("DELETE FROM merkle_nodes WHERE level < 8");
    db.close();
    const reopened = openStore();
    await reopened.append(readings(400, 3, 700));
    await expectTreeOfLeaves(reopened, [
      [0, 16],
      [640, 656],
      [512, 768],
      [0, 1024],
      [690, 710],
      [0, 1100],
      [1024, 1100],
    ]);
  });

  it("the upper subtrees a proof reads are kept in memory: asked again, each is still its own range's", async () => {
    const store = openStore();
    await store.append(readings(4200, 5));
    const leaves = (await readLog(store)).map((c) => hashFromHex(c.leaf ?? ""));
    const hasher = inMemorySubtreeHasher(leaves);
    // Subtrees of 1024 leaves and more come from the cache once read: four at level 10, two at
    // level 11 and one at 12, each asked for twice, then within ragged ranges built on them.
    const perfect: Array<[number, number]> = [
      [0, 1024],
      [1024, 2048],
      [2048, 3072],
      [3072, 4096],
      [0, 2048],
      [2048, 4096],
      [0, 4096],
    ];
    const ragged: Array<[number, number]> = [
      [0, 4200],
      [1024, 4200],
      [2048, 4100],
      [3000, 4150],
    ];
    const ranges = [...perfect, ...perfect, ...ragged];
    expect((await store.subtreeHashes(ranges)).map(hashToHex)).toEqual(
      ranges.map(([a, b]) => hashToHex(hasher(a, b))),
    );
    expect((await store.subtreeHashes(ragged)).map(hashToHex)).toEqual(
      ragged.map(([a, b]) => hashToHex(hasher(a, b))),
    );
  });

  it("the ranges of many neighbouring proofs in one call share their work, each still its own range's", async () => {
    const store = openStore();
    // 4,200 + 1 Changes: the tree's right edge is ragged at every level.
    await store.append(readings(4200, 5));
    const size = (await store.logHead()).size;
    const leaves = (await readLog(store)).map((c) => hashFromHex(c.leaf ?? ""));
    const hasher = inMemorySubtreeHasher(leaves);
    // As `things export --thing` asks: the proofs of a run of Changes, and a few far apart.
    const seqs = [...Array.from({ length: 70 }, (_, i) => 1000 + i), 1, 4199, size];
    const ranges = seqs.flatMap((seq) => [
      [seq - 1, seq] as [number, number],
      ...inclusionProofRanges(seq - 1, size),
    ]);
    expect(new Set(ranges.map(([a, b]) => `${a}:${b}`)).size).toBeLessThan(ranges.length / 3);
    expect((await store.subtreeHashes(ranges)).map(hashToHex)).toEqual(
      ranges.map(([a, b]) => hashToHex(hasher(a, b))),
    );
  });

  it("commits through its writer thread in a process started with flags a thread cannot take (--trace-gc)", async () => {
    const built = fileURLToPath(new URL("../../../dist/store/index.js", import.meta.url));
    expect(existsSync(built), `${built} is missing: run npm run build (npm test does) first`).toBe(true);
    const script = `
      const { SqliteStore } = await import(process.env.STORE_MODULE);
      const store = new SqliteStore({ path: process.env.DB_PATH });
      const [change] = await store.append([{ thing: "urn:test:flags", affordance: "p", kind: "reported",
        value: 1, cause: { actor: "flags" }, hlc: "019ab2c3d4e5-00000001-urn:hub:flags" }]);
      await store.close();
      process.stdout.write("seq " + change.seq + "\\n");
    `;
    const child = spawn(process.execPath, ["--trace-gc", "--input-type=module", "-e", script], {
      env: { ...process.env, STORE_MODULE: pathToFileURL(built).href, DB_PATH: path },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let stdout = "";
    let stderr = "";
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    const [code] = (await once(child, "close")) as [number | null];
    expect(code, stderr).toBe(0);
    expect(stdout).toContain("seq 1\n");
    const store = openStore();
    expect((await readLog(store)).map((c) => c.thing)).toEqual(["urn:test:flags"]);
  });

  it("keeps every acknowledged write when the process is killed (SIGKILL) mid-stream", async () => {
    const built = fileURLToPath(new URL("../../../dist/store/index.js", import.meta.url));
    expect(existsSync(built), `${built} is missing: run npm run build (npm test does) first`).toBe(true);
    // The child writes waves of 10 describes and prints each id once its write is acknowledged.
    const script = `
      const { SqliteStore } = await import(process.env.STORE_MODULE);
      const { HybridLogicalClock, formatHlc } = await import(process.env.CORE_MODULE);
      const store = new SqliteStore({ path: process.env.DB_PATH });
      const hlc = new HybridLogicalClock({ node: "urn:hub:crash-test" });
      const cause = { actor: "crash-test" };
      for (let i = 0; i < 100000; i += 10) {
        await Promise.all(Array.from({ length: 10 }, (_, k) => {
          const id = "urn:test:crash-" + String(i + k).padStart(6, "0");
          const td = { "@context": "https://www.w3.org/2022/wot/td/v1.1", id, title: id, security: "nosec_sc",
            securityDefinitions: { nosec_sc: { scheme: "nosec" } } };
          return store.describe({ td, cause, hlc: formatHlc(hlc.now()) })
            .then(() => process.stdout.write(id + "\\n"));
        }));
      }
      await store.close();
    `;
    const killAfter = 500;
    const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
      env: {
        ...process.env,
        STORE_MODULE: new URL("../../../dist/store/index.js", import.meta.url).href,
        CORE_MODULE: new URL("../../../dist/core/index.js", import.meta.url).href,
        DB_PATH: path,
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const printed: string[] = [];
    let partial = "";
    let stderr = "";
    child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
    child.stdout.setEncoding("utf8").on("data", (chunk: string) => {
      const lines = (partial + chunk).split("\n");
      partial = lines.pop() ?? ""; // a line cut short by the kill was not acknowledged in full
      printed.push(...lines);
      if (printed.length >= killAfter && child.exitCode === null && child.signalCode === null)
        child.kill("SIGKILL");
    });
    const [, signal] = (await once(child, "close")) as [number | null, NodeJS.Signals | null];
    expect(signal, `the child ended on its own: ${stderr}`).toBe("SIGKILL");
    expect(printed.length).toBeGreaterThanOrEqual(killAfter);

    const store = openStore();
    for (const id of printed) expect(await store.getThing(id), id).toBeDefined();
    // Whatever else committed, the Log is whole: one Change per Thing, numbered 1..N.
    const count = await store.countThings();
    expect(count).toBeGreaterThanOrEqual(printed.length);
    expect(await store.lastSeq()).toBe(count);
    const log = await store.changesAfter(0, count + 1);
    expect(log.map((c) => c.seq)).toEqual(numbers(count));
    // The Merkle head written with each batch matches what committed.
    expect(hashToHex((await store.logHead()).root)).toBe(
      hashToHex(rootHash(log.map((c) => Buffer.from(c.leaf ?? "", "hex")))),
    );
  });

  describe("the history index", () => {
    const things = numbers(6).map(thingName);

    it("merging keeps pace with appends that outrun its chunks: the tail stays bounded, every entry once", async () => {
      const largestTail = async (pace: number): Promise<number> => {
        const store = openStore({
          historyMergeThreshold: 100,
          historyMergeChunk: 10,
          historyMergePace: pace,
        });
        let largest = 0;
        // Four producers at once, 50 Changes each, 25 times: 5,000 entries, far more per batch
        // than a chunk of 10 merges.
        for (let round = 0; round < 25; round++) {
          await Promise.all(numbers(4).map((p) => store.append(readings(50, 6, (round * 4 + p) * 50))));
          largest = Math.max(largest, internals(store).log.tailSize);
        }
        expectEveryEntryOnce(store, await readLog(store));
        await expectHistoryAsInLog(store, things, `pace ${pace}`);
        await store.close();
        await rm(path, { force: true });
        await rm(`${path}-wal`, { force: true });
        await rm(`${path}-shm`, { force: true });
        return largest;
      };
      const fixed = await largestTail(0);
      const paced = await largestTail(2);
      // Fixed chunks fall behind: the tail holds most of what was appended. Paced, it stays within
      // the threshold plus what a few batches append.
      expect(fixed).toBeGreaterThan(3_500);
      expect(paced).toBeLessThan(1_500);
    });

    it("merges the tail into the table in chunks while appends go on; every entry is in one place, once", async () => {
      const store = openStore({ historyMergeThreshold: 40, historyMergeChunk: 9, historyMergePace: 0 });
      const { db, log } = internals(store);
      const tableSize = db.prepare<[], { n: number }>("SELECT count(*) AS n FROM history");
      let sawBoth = false;
      // Six entries per append, a chunk of nine per transaction: merging keeps up.
      for (let i = 0; i < 60; i++) {
        await store.append(readings(6, 6, i * 6));
        const all = await readLog(store);
        expectEveryEntryOnce(store, all);
        const inTable = tableSize.get()?.n ?? 0;
        if (inTable > 0 && log.tailSize > 0) sawBoth = true;
        if (i % 10 === 9) await expectHistoryAsInLog(store, things, `after ${(i + 1) * 6}`);
      }
      expect(sawBoth).toBe(true);
      // Merges keep the tail near the threshold, not the whole Log.
      expect(log.tailSize).toBeLessThan(100);
      expect(tableSize.get()?.n).toBeGreaterThan(250);
    });

    it("mergeTail merges the whole tail below the threshold, while appends go on, each entry once", async () => {
      const store = openStore({ historyMergeThreshold: 1_000_000, historyMergeChunk: 25 });
      const { db, log } = internals(store);
      const tableSize = db.prepare<[], { n: number }>("SELECT count(*) AS n FROM history");
      await store.append(readings(300, 6));
      expect(log.tailSize).toBe(300);
      expect(tableSize.get()?.n).toBe(0);
      // Appends racing the merge: whatever they leave in the tail, nothing is lost or doubled.
      const racing = numbers(5).map((i) => store.append(readings(20, 6, 300 + i * 20)));
      await store.mergeTail();
      await Promise.all(racing);
      // Everything committed before the call is in the table (300 entries, in chunks of 25).
      expect(tableSize.get()?.n).toBeGreaterThanOrEqual(300);
      expectEveryEntryOnce(store, await readLog(store));
      await store.mergeTail();
      expect(log.tailSize).toBe(0);
      expect(tableSize.get()?.n).toBe(400);
      await expectHistoryAsInLog(store, things, "after mergeTail");
      // Nothing to merge: it answers at once.
      await store.mergeTail();
      expect(tableSize.get()?.n).toBe(400);
    });

    it("with nothing appended, builds the next merge chunk while the writer thread writes one: every entry once, after a chunk fails, and one at a time while appends come", async () => {
      const store = openStore({ historyMergeThreshold: 1_000_000, historyMergeChunk: 20 });
      const { db, log } = internals(store);
      const tableSize = db.prepare<[], { n: number }>("SELECT count(*) AS n FROM history");
      const writer = (
        store as unknown as { writer: { write: (set: WriteSet, epoch: number) => Promise<unknown> } }
      ).writer;
      const write = writer.write.bind(writer);
      // Sets with history entries in flight at once, the most seen; and one such set to spoil.
      let merging = 0;
      let mostMerging = 0;
      let spoil = -1;
      let sent = 0;
      writer.write = (set, epoch) => {
        if (set.history.length === 0) return write(set, epoch);
        sent += set.history.length / 2;
        // A set that does not continue the Log: the thread refuses it whole, and those after it.
        if (spoil-- === 0) set.changes = [0, "", null, "", null, "", null, null, "{}"];
        merging++;
        mostMerging = Math.max(mostMerging, merging);
        return write(set, epoch).finally(() => merging--);
      };
      await store.append(readings(1200, 9));
      await store.mergeTail();
      expect(mostMerging).toBe(2);
      // Each entry sent once: a chunk built while another is written starts after it.
      expect(sent).toBe(1200);
      expect(tableSize.get()?.n).toBe(1200);
      expect(log.tailSize).toBe(0);
      expectEveryEntryOnce(store, await readLog(store));

      // The third chunk of the next cycle fails, with the one built on it: the cycle ends, and
      // what they held is still in the tail for the next.
      await store.append(readings(900, 9, 1200));
      spoil = 2;
      await expect(store.mergeTail()).rejects.toThrow(/starts at seq 0/);
      const merged = tableSize.get()?.n ?? 0;
      expect(merged).toBeGreaterThan(1200);
      expect(merged).toBeLessThan(2100);
      expectEveryEntryOnce(store, await readLog(store));
      await store.mergeTail();
      expect(log.tailSize).toBe(0);
      expect(tableSize.get()?.n).toBe(2100);
      expectEveryEntryOnce(store, await readLog(store));
      await expectHistoryAsInLog(store, things, "after a failed chunk");

      // With Changes coming in from the start, chunks go one at a time: an acknowledgement
      // waits behind one chunk at most.
      await store.append(readings(900, 9, 2100));
      merging = 0;
      mostMerging = 0;
      let appending = true;
      let offset = 3000;
      const producers = numbers(8).map(async () => {
        while (appending) await store.append(readings(1, 9, offset++));
      });
      await store.mergeTail();
      appending = false;
      await Promise.all(producers);
      expect(mostMerging).toBe(1);
      expectEveryEntryOnce(store, await readLog(store));
      await store.close();
      const reopened = openStore();
      await expectHistoryAsInLog(reopened, things, "reopened");
    });

    it("counts exactly while the writer thread has committed a merge chunk whose answer has not come yet", async () => {
      const store = openStore({ historyMergeThreshold: 1_000_000 });
      const { log } = internals(store);
      await store.append(readings(120, 4));
      const expected = new Map<string, number>();
      for (const c of await readLog(store)) {
        const key = `${c.thing}|${c.affordance ?? ""}|${c.kind}`;
        expected.set(key, (expected.get(key) ?? 0) + 1);
      }
      const expectCounts = (when: string) => {
        for (const [key, n] of expected) {
          const [thing = "", affordance = "", kind = ""] = key.split("|");
          expect(log.countStream(thing, affordance, kind, 0, 120), `${when}: ${key}`).toBe(n);
        }
      };
      // No count before: the first one finds each stream's ranks in the table as it then is.
      const cycle = log.beginMerge();
      const written = internals(store).enqueue(
        () => log.mergeChunk(cycle, 1_000),
        (chunk) => log.merged(cycle, chunk),
        { internal: true, logOnly: true },
      );
      // One turn: the chunk is built and handed to the writer thread. Then, without a turn (its
      // answer cannot arrive), wait until its COMMIT shows in another connection.
      await new Promise((resolve) => setImmediate(resolve));
      const other = connect({ readonly: true });
      const inTable = other.prepare<[], { n: number }>("SELECT count(*) AS n FROM history");
      const until = Date.now() + 30_000;
      while ((inTable.get()?.n ?? 0) < 120 && Date.now() < until);
      expect(inTable.get()?.n).toBe(120);
      expect(log.tailSize, "the answer has not been handled").toBe(120);
      expectCounts("committed, unanswered");
      expect(log.tailSize, "the chunk was applied by the count").toBe(0);
      await written;
      expectCounts("answered");
      expectEveryEntryOnce(store, await readLog(store));
    });

    it("the streams table holds each stream's latest Change up to history_merged, through cycles that appends overtake", async () => {
      // Small cycles that interleave with appends, so streams change again while their cycle runs.
      const store = openStore({ historyMergeThreshold: 30, historyMergeChunk: 8 });
      const { db } = internals(store);
      const merged = db.prepare<[], { m: number }>("SELECT history_merged AS m FROM log_head");
      const rows = db.prepare<
        [],
        { thing: string; affordance: string; kind: string; seq: number; value: string | null }
      >("SELECT * FROM streams");
      const expectStreamsTable = async (when: string) => {
        const upTo = merged.get()?.m ?? 0;
        const latest = new Map<string, Change>();
        for (const c of await readLog(store)) latest.set(`${c.thing} ${c.affordance ?? ""} ${c.kind}`, c);
        const table = new Map(rows.all().map((r) => [`${r.thing} ${r.affordance} ${r.kind}`, r]));
        for (const [key, change] of latest) {
          // A stream whose latest Change is merged has that Change in its row; one changed since
          // may have an older row (the replay after history_merged restores it).
          if (change.seq > upTo) continue;
          const row = table.get(key);
          expect(row?.seq, `${when}: ${key}`).toBe(change.seq);
          if (change.affordance !== undefined)
            expect(row?.value, `${when}: ${key}`).toBe(JSON.stringify(change.value));
        }
      };
      for (let wave = 0; wave < 12; wave++) {
        // Three producers at once, so cycles start and go on between their batches.
        await Promise.all(numbers(3).map((p) => store.append(readings(7, 5, wave * 21 + p * 7))));
        await expectStreamsTable(`wave ${wave}`);
        // Every other wave, the cycles in progress go on alone for a moment.
        if (wave % 2 === 1) await new Promise((resolve) => setTimeout(resolve, 30));
      }
      expect(merged.get()?.m).toBeGreaterThan(100);
      await store.close();

      const again = openStore({ historyMergeThreshold: 30, historyMergeChunk: 8 });
      const all = await readLog(again);
      for (const thing of numbers(5).map(thingName)) {
        const streams = await again.streamsAt(thing);
        for (const s of streams) {
          const last = all
            .filter((c) => c.thing === thing && (c.affordance ?? "") === s.affordance && c.kind === s.kind)
            .at(-1);
          expect(s.latest.seq, `${thing} ${s.affordance} ${s.kind} after reopening`).toBe(last?.seq);
        }
      }
      // The next Change's previous is the stream's latest value, from the table and the replay.
      const [next] = await again.append([{ ...(readings(1, 5, 0)[0] as ChangeDraft) }]);
      const before = all
        .filter((c) => c.thing === next?.thing && c.affordance === next?.affordance && c.kind === next?.kind)
        .at(-1);
      expect(next?.previous).toBe(before?.value);
    });

    it("a stream appended to after its cycle began has its row written by the next cycle", async () => {
      // No automatic merges: the test drives the cycles through the store's own queue.
      const store = openStore({ historyMergeThreshold: 1_000_000 });
      const { db, log } = internals(store);
      const row = db.prepare<[string], { seq: number; value: string }>(
        "SELECT seq, value FROM streams WHERE thing = ? AND affordance = 'temperature' AND kind = 'reported'",
      );
      const runCycle = async (afterBegin?: () => Promise<unknown>) => {
        const cycle = log.beginMerge();
        // Appended now, a Change is past the cycle's end (upTo), whenever its chunks run.
        await afterBegin?.();
        for (;;) {
          const result = await internals(store).enqueue(
            () => log.mergeChunk(cycle, 5),
            (r) => log.merged(cycle, r),
            { internal: true },
          );
          if (result.done) return;
        }
      };
      await store.append(readings(60, 6));
      await runCycle();
      const before = row.get(thingName(4));
      expect(before?.seq).toBeGreaterThan(0);
      const late = { thing: thingName(4), affordance: "temperature", kind: "reported", value: 4242, cause };
      let appended: Change | undefined;
      await runCycle(async () => {
        [appended] = await store.append([{ ...late, hlc: clock.advance(1) }]);
      });
      // That cycle ended before the late Change: its row is as the cycle before left it.
      expect(row.get(thingName(4))).toEqual(before);
      await runCycle();
      expect(row.get(thingName(4))).toEqual({ seq: appended?.seq, value: "4242" });
    });

    it("after a stop in the middle of a merge cycle, reopening answers exactly and counts nothing twice", async () => {
      // No automatic merges: the test drives half a cycle through the store's own queue.
      const store = openStore({ historyMergeThreshold: 1_000_000 });
      await store.append(readings(400, 6));
      const { log } = internals(store);
      const cycle = log.beginMerge();
      for (let chunk = 0; chunk < 3; chunk++) {
        const result = await internals(store).enqueue(
          () => log.mergeChunk(cycle, 50),
          (r) => log.merged(cycle, r),
          { internal: true },
        );
        expect(result).toMatchObject({ done: false });
      }
      expect(log.tailSize).toBe(250);
      await expectHistoryAsInLog(store, things, "half merged");
      await store.close();

      const again = openStore({ historyMergeThreshold: 1_000_000 });
      // The tail is rebuilt from the Log past the last finished cycle, without what is in the table.
      expect(internals(again).log.tailSize).toBe(250);
      expectEveryEntryOnce(again, await readLog(again));
      await expectHistoryAsInLog(again, things, "reopened");
      await again.close();

      // Merging goes on from there (a chunk per transaction, beside appends), and the answers stay exact.
      const third = openStore({ historyMergeThreshold: 50, historyMergeChunk: 40, historyMergePace: 0 });
      for (let i = 0; i < 100 && (i < 10 || internals(third).log.tailSize >= 50); i++) {
        await third.append(readings(10, 6, 400 + i * 10));
        expectEveryEntryOnce(third, await readLog(third));
      }
      expect(internals(third).log.tailSize).toBeLessThan(50);
      await expectHistoryAsInLog(third, things, "merged on");
    });

    it("a merge chunk whose batch is rolled back (a command's RAISE(ROLLBACK)) is written again, so no entry is lost after reopening", async () => {
      const store = openStore({ historyMergeThreshold: 5, historyMergeChunk: 100 });
      const poison = describeCommand(99).td.id;
      connect().exec(
        `CREATE TRIGGER poison BEFORE INSERT ON things WHEN NEW.id = '${poison}' BEGIN SELECT RAISE(ROLLBACK, 'poisoned'); END`,
      );
      await store.append(readings(5, 2));
      // The tail reached the threshold: a merge chunk is queued. These join its batch, and the
      // poisoned one rolls the whole batch back; the chunk and the append run again.
      const settled = await Promise.allSettled([
        store.describe(describeCommand(99)),
        store.append(readings(1, 2, 5)),
      ]);
      expect(settled.map((s) => s.status)).toEqual(["rejected", "fulfilled"]);
      const all = await readLog(store);
      expect(all).toHaveLength(6);
      expectEveryEntryOnce(store, all);
      // The chunk ran again with the append, and wrote the five entries it had taken.
      const { db } = internals(store);
      expect(db.prepare<[], { n: number }>("SELECT count(*) AS n FROM history").get()?.n).toBe(5);
      await store.close();

      const again = openStore({ historyMergeThreshold: 1_000_000 });
      expectEveryEntryOnce(again, await readLog(again));
      await expectHistoryAsInLog(again, numbers(2).map(thingName), "reopened");
      expect(await again.countStream(thingName(1), "humidity", "reported", 0, 6)).toBe(
        all.filter((c) => c.thing === thingName(1) && c.affordance === "humidity" && c.kind === "reported")
          .length,
      );
    });

    it("a process SIGKILLed in the middle of a merge cycle leaves history exact after reopening", async () => {
      const built = fileURLToPath(new URL("../../../dist/store/index.js", import.meta.url));
      expect(existsSync(built), `${built} is missing: run npm run build (npm test does) first`).toBe(true);
      // The child appends in waves and prints each acknowledged seq; when the second chunk of its
      // third merge cycle has committed, it kills itself before the cycle can go on.
      const script = `
        const { SqliteStore } = await import(process.env.STORE_MODULE);
        const store = new SqliteStore({ path: process.env.DB_PATH, historyMergeThreshold: 60, historyMergeChunk: 7, historyMergePace: 0 });
        const log = store.log;
        let cycles = 0;
        let chunks = 0;
        const beginMerge = log.beginMerge.bind(log);
        log.beginMerge = () => { cycles++; chunks = 0; return beginMerge(); };
        const merged = log.merged.bind(log);
        log.merged = (cycle, chunk) => {
          merged(cycle, chunk);
          if (chunk.entries.length > 0 && ++chunks === 2 && cycles === 3) process.kill(process.pid, "SIGKILL");
        };
        const cause = { actor: "crash-test" };
        let n = 0;
        for (;;) {
          await Promise.all(Array.from({ length: 3 }, () => {
            const drafts = Array.from({ length: 4 }, () => {
              n++;
              const wall = (1735689600000 + n).toString(16).padStart(12, "0");
              return { thing: "urn:test:sqlite-000" + (1 + (n % 6)), affordance: ["temperature", "humidity", "power"][n % 3],
                kind: n % 5 === 0 ? "desired" : "reported", value: n, cause, hlc: wall + "-00000000-urn:hub:crash" };
            });
            return store.append(drafts).then((changes) => {
              for (const c of changes) process.stdout.write(c.seq + "\\n");
            });
          }));
        }
      `;
      const child = spawn(process.execPath, ["--input-type=module", "-e", script], {
        env: {
          ...process.env,
          STORE_MODULE: new URL("../../../dist/store/index.js", import.meta.url).href,
          DB_PATH: path,
        },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (chunk: string) => (stdout += chunk));
      child.stderr.setEncoding("utf8").on("data", (chunk: string) => (stderr += chunk));
      const [, signal] = (await once(child, "close")) as [number | null, NodeJS.Signals | null];
      expect(signal, `the child ended on its own: ${stderr}`).toBe("SIGKILL");
      const acknowledged = stdout.split("\n").slice(0, -1).map(Number);
      expect(acknowledged.length).toBeGreaterThan(150);

      const store = openStore({ historyMergeThreshold: 1_000_000 });
      const all = await readLog(store);
      expect(all.map((c) => c.seq)).toEqual(numbers(all.length));
      expect(all.length).toBeGreaterThanOrEqual(Math.max(...acknowledged));
      // The kill came in the middle of a cycle: the table holds entries past the last finished one.
      const { db } = internals(store);
      const pastMerged = db
        .prepare<[], { n: number }>(
          "SELECT count(*) AS n FROM history WHERE seq > (SELECT history_merged FROM log_head WHERE id = 1)",
        )
        .get();
      expect(pastMerged?.n).toBeGreaterThan(0);
      expectEveryEntryOnce(store, all);
      await expectHistoryAsInLog(store, things, "after SIGKILL");
    });
  });
});
