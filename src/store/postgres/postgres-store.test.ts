// PostgresStore: the Store conformance suite against a real PostgreSQL (each test in a schema of
// its own), then what only this backend promises.
import { generateKeyPairSync } from "node:crypto";
import pg from "pg";
import { afterAll, afterEach, describe, expect, it, vi } from "vitest";
import {
  ConflictError,
  DamagedLogError,
  UnavailableError,
  hashFromHex,
  hashToHex,
  rootHash,
  signCheckpoint,
  LogVerifier,
  type Cause,
  type Change,
  type RegisteredThingDescription,
  type Release,
  type LogVerification,
} from "../../core/index.js";
import type { ChangeDraft, HeldRole, Store } from "../store.js";
import {
  PostgresProxy,
  blockedBy,
  dropSchema,
  postgresProblem,
  postgresUrl,
  servicesRequired as required,
  temporarySchema,
} from "../../../test/support/postgres.js";
import { TestHlc, describeStoreConformance, expectHistoryAsInLog } from "../store-conformance.js";
import { migrations } from "./postgres-migrations.js";
import { PostgresMqttCredentialStore } from "./postgres-mqtt-credentials.js";
import { PostgresSecretStore } from "./postgres-secret-store.js";
import { PostgresStore, lockHeldCheck, type Backend, type PostgresStoreOptions } from "./postgres-store.js";

const problem = await postgresProblem();
/**
 * The tests' sessions do not wait for the WAL to reach the disk at COMMIT (synchronous_commit=off):
 * what they test is the same, and a busy machine's fsyncs were most of the file's time.
 */
const url = `${postgresUrl}${postgresUrl.includes("?") ? "&" : "?"}options=${encodeURIComponent("-c synchronous_commit=off")}`;

if (problem !== undefined && !required) {
  describe("PostgresStore", () => {
    it.skip(`skipped: no PostgreSQL at ${postgresUrl} (${problem})`, () => undefined);
  });
} else if (problem !== undefined) {
  describe("PostgresStore", () => {
    it(`needs PostgreSQL at ${postgresUrl} (HYPERTHINGS_REQUIRE_SERVICES=1)`, () => {
      throw new Error(`no PostgreSQL at ${postgresUrl}: ${problem}`);
    });
  });
} else {
  // Making a schema takes a few hundred ms on a busy machine: the next test's is made while this
  // one runs, and dropped schemas go while the next one runs (all awaited at the end).
  let next: Promise<string> | undefined;
  const drops: Array<Promise<void>> = [];
  const prepare = async (): Promise<string> => {
    const schema = temporarySchema();
    await (await PostgresStore.open({ url, schema, maxConnections: 1 })).close();
    return schema;
  };
  afterAll(async () => {
    const unused = await next;
    if (unused !== undefined) drops.push(dropSchema(unused));
    await Promise.all(drops);
  });

  describeStoreConformance("PostgresStore", async () => {
    const schema = await (next ?? prepare());
    next = prepare();
    const open = () => PostgresStore.open({ url, schema, maxConnections: 4 });
    return {
      store: await open(),
      reopen: open,
      cleanup: () => {
        drops.push(dropSchema(schema));
        return Promise.resolve();
      },
    };
  });

  const cause: Cause = { actor: "postgres-test" };
  const clock = new TestHlc();
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");

  function thingName(n: number): string {
    return `urn:test:pg-${String(n).padStart(4, "0")}`;
  }

  function td(n: number): RegisteredThingDescription {
    return {
      "@context": "https://www.w3.org/2022/wot/td/v1.1",
      id: thingName(n),
      title: thingName(n),
      security: "nosec_sc",
      securityDefinitions: { nosec_sc: { scheme: "nosec" } },
    };
  }

  /** `count` reported values spread over Things 1..`things` and three affordances. */
  /** Undoes migrations 3 to 6: the schema as a hub of migration 2 left it (with its rows). */
  const BACK_TO_VERSION_2 =
    "DROP TABLE replica_identity; DROP TABLE mqtt_credentials; DROP TABLE mqtt_credentials_head; DROP FUNCTION mqtt_credentials_revise(); ALTER TABLE changes DROP COLUMN ordinal; DROP INDEX changes_correlation; DELETE FROM schema_migrations WHERE version >= 3";

  /** Rows whose ordinal is not their position in their stream (what migration 3 and appends keep at 0). */
  const WRONG_ORDINALS = `SELECT count(*)::int AS n FROM (SELECT ordinal, row_number() OVER (
      PARTITION BY thing, coalesce(affordance, ''), kind ORDER BY seq) AS position FROM changes) o
    WHERE ordinal IS DISTINCT FROM position`;

  function readings(count: number, things: number, offset = 0): ChangeDraft[] {
    return Array.from({ length: count }, (_, i) => ({
      thing: thingName(1 + ((i + offset) % things)),
      affordance: ["temperature", "humidity", "power"][(i + offset) % 3] ?? "temperature",
      kind: "reported",
      value: { v: i + offset, unit: "°C" },
      cause,
      hlc: clock.advance(1),
    }));
  }

  /** Undoes migrations 2 and 3: the schema as a hub of migration 1 left it (with its rows). */
  const BACK_TO_VERSION_1 = `${BACK_TO_VERSION_2}; DROP INDEX changes_actor; DROP INDEX changes_release;
    DELETE FROM schema_migrations WHERE version >= 2`;

  describe("PostgresStore", () => {
    const schemas: string[] = [];
    const stores: Array<{ close(): Promise<void> }> = [];
    const clients: pg.Client[] = [];

    /** The URL with the statement_timeout and lock_timeout of 1 s an operator may give the hub's. */
    const BOUNDED_URL = `${postgresUrl}${postgresUrl.includes("?") ? "&" : "?"}options=${encodeURIComponent(
      "-c synchronous_commit=off -c statement_timeout=1000 -c lock_timeout=1000",
    )}`;

    /**
     * Opens a store on `url` while `holder`'s transaction holds what its migration needs; once the
     * opening's statement like `waitingOn` has waited on that lock for more than 2 s, ends the
     * transaction. Resolves "opened", or the opening's error message.
     */
    async function openPastBounds(
      url: string,
      schema: string,
      db: pg.Client,
      waitingOn: string,
      holder: pg.Client,
    ): Promise<string> {
      const outcome = PostgresStore.open({ url, schema, maxConnections: 2 }).then(
        (store) => {
          stores.push(store);
          return "opened";
        },
        (error: Error) => error.message,
      );
      await vi.waitFor(
        async () => {
          const { rows } = await db.query<{ waiting: boolean }>(
            `SELECT count(*) > 0 AS waiting FROM pg_stat_activity
              WHERE wait_event_type = 'Lock' AND query LIKE $1 AND now() - query_start > interval '2 s'`,
            [waitingOn],
          );
          expect(rows[0]?.waiting).toBe(true);
        },
        { timeout: 20_000, interval: 200 },
      );
      await holder.query("COMMIT");
      return outcome;
    }

    afterEach(async () => {
      for (const s of stores.splice(0)) await s.close();
      for (const c of clients.splice(0)) await c.end();
      for (const schema of schemas.splice(0)) await dropSchema(schema);
    });

    function newSchema(): string {
      const schema = temporarySchema();
      schemas.push(schema);
      return schema;
    }

    async function openStore(
      schema: string,
      options: Partial<PostgresStoreOptions> = {},
    ): Promise<PostgresStore> {
      const store = await PostgresStore.open({ url, schema, maxConnections: 4, ...options });
      stores.push(store);
      return store;
    }

    /** A session of its own in the schema, as someone with the database's password would have. */
    async function connect(schema: string): Promise<pg.Client> {
      const client = new pg.Client({ connectionString: postgresUrl, options: `-c search_path=${schema}` });
      await client.connect();
      clients.push(client);
      return client;
    }

    it("elects one holder of a role among the replicas' stores, on sessions apart from its reads and writes", async () => {
      const schema = newSchema();
      // One session for the schema's lock, one for everything else: roles held take neither.
      const a = await openStore(schema, { replica: true, maxConnections: 2 });
      const b = await openStore(schema, { replica: true, maxConnections: 2 });
      const observation = await a.holdRole("observation");
      const sweep = await a.holdRole("expiry-sweep");
      expect(observation).toBeDefined();
      expect(sweep).toBeDefined();
      expect(await a.lastSeq()).toBe(0);
      expect(await b.holdRole("observation")).toBeUndefined();

      // A role given up ends its session: the lock is free once PostgreSQL has seen the session end.
      const takeOn = async (store: PostgresStore) => {
        let held: HeldRole | undefined;
        await vi.waitFor(async () => expect((held = await store.holdRole("observation"))).toBeDefined(), {
          timeout: 10_000,
          interval: 50,
        });
        return held;
      };
      // Its session answers: the role is held. Given up, it is not.
      expect(await observation?.confirm()).toBe(true);
      await observation?.release();
      expect(await observation?.lost).toBe("given up");
      expect(await observation?.confirm()).toBe(false);
      const taken = await takeOn(b);
      expect(await a.holdRole("observation")).toBeUndefined();
      // A store that closes gives its roles up.
      await b.close();
      expect(await taken?.lost).toBe("given up");
      await takeOn(a);
    });

    async function readLog(store: Store): Promise<Change[]> {
      return store.changesAfter(0, 1_000_000);
    }

    /** `things verify`'s check: every entry's leaf and the root of a signed checkpoint. */
    async function verify(store: Store): Promise<{ verdict: LogVerification; verifier: LogVerifier }> {
      const checkpoints = await store.checkpoints();
      const verifier = new LogVerifier(checkpoints, publicKey);
      const { body } = await store.logEntries(0, 1_000_000);
      let start = 0;
      for (let end = body.indexOf(10); end >= 0; start = end + 1, end = body.indexOf(10, start)) {
        const failure = verifier.pushEntry(body, start, end);
        if (failure) return { verdict: failure, verifier };
      }
      return { verdict: verifier.end(), verifier };
    }

    async function checkpoint(store: Store): Promise<void> {
      const head = await store.logHead();
      await store.addCheckpoint(
        signCheckpoint(
          {
            origin: "urn:hub:pg-test",
            size: head.size,
            root: hashToHex(head.root),
            time: new Date().toISOString(),
          },
          privateKey,
        ),
      );
    }

    it("two stores (two pools) appending at once to one schema make one gapless Log that verifies", async () => {
      const schema = newSchema();
      const one = await openStore(schema);
      const two = await openStore(schema);
      await one.describe({ td: td(1), cause, hlc: clock.next() });
      // Interleaved bursts from both, one- and many-Change calls, describes among them.
      const calls: Array<Promise<Change[]>> = [];
      for (let i = 0; i < 40; i++) {
        const store = i % 2 === 0 ? one : two;
        calls.push(store.append(readings(1 + (i % 5), 4, i * 10)));
        if (i % 10 === 3)
          calls.push(store.describe({ td: td(10 + i), cause, hlc: clock.next() }).then((r) => [r.change]));
      }
      const acknowledged = (await Promise.all(calls)).flat();
      // Each call's Changes are consecutive, and no seq is given twice.
      const seqs = acknowledged.map((c) => c.seq).sort((a, b) => a - b);
      expect(new Set(seqs).size).toBe(seqs.length);
      const log = await readLog(one);
      expect(log.map((c) => c.seq)).toEqual(Array.from({ length: log.length }, (_, i) => i + 1));
      expect(log.length).toBe(acknowledged.length + 1);
      // What each store acknowledged is what the Log holds, previous values included.
      for (const change of acknowledged) expect(log[change.seq - 1]).toStrictEqual(change);
      for (const [i, change] of log.entries()) {
        if (change.affordance === undefined) continue;
        const before = log
          .slice(0, i)
          .filter(
            (c) => c.thing === change.thing && c.affordance === change.affordance && c.kind === change.kind,
          );
        expect(change.previous, `previous of ${change.seq}`).toStrictEqual(before.at(-1)?.value);
      }
      // Both see the same head, the root of every leaf; the Log verifies against a checkpoint.
      const root = hashToHex(rootHash(log.map((c) => hashFromHex(c.leaf))));
      expect(hashToHex((await one.logHead()).root)).toBe(root);
      expect(hashToHex((await two.logHead()).root)).toBe(root);
      await checkpoint(two);
      expect((await verify(one)).verdict).toEqual({ ok: true, size: log.length, provenSize: log.length });
      // Each goes on from the other's head.
      const [next] = await one.append(readings(1, 1, 500));
      expect(next?.seq).toBe(log.length + 1);
      const [after] = await two.append(readings(1, 1, 503));
      expect(after?.seq).toBe(log.length + 2);
      expect(after?.previous).toStrictEqual(next?.value);
      // Each Change is numbered in its stream after the other store's Changes too.
      const db = await connect(schema);
      expect((await db.query(WRONG_ORDINALS)).rows[0]).toEqual({ n: 0 });
    });

    it("refuses UPDATE, DELETE and TRUNCATE of the Log from any session, and lowering its head", async () => {
      const schema = newSchema();
      const store = await openStore(schema);
      await store.describe({ td: td(1), cause, hlc: clock.next() });
      await store.append(readings(3, 1));
      const before = await readLog(store);
      const db = await connect(schema);
      for (const sql of [
        "UPDATE changes SET kind = 'tampered' WHERE seq = 1",
        "DELETE FROM changes WHERE seq = 2",
        "TRUNCATE changes",
        "UPDATE log_head SET size = 1",
        `INSERT INTO changes (seq, hlc, thing, kind, cause, leaf, ordinal) VALUES (1, 'x', 'y', 'z', '{}', decode(repeat('00', 32), 'hex'), 1)
           ON CONFLICT (seq) DO UPDATE SET kind = 'tampered'`,
      ]) {
        await expect(db.query(sql), sql).rejects.toThrow("the log is append-only");
      }
      await expect(
        db.query(
          `INSERT INTO changes (seq, hlc, thing, kind, cause, leaf, ordinal) VALUES (2, 'x', 'y', 'z', '{}', decode(repeat('00', 32), 'hex'), 1)`,
        ),
      ).rejects.toThrow(/duplicate key/);
      expect(await readLog(store)).toStrictEqual(before);
    });

    it("a row altered by someone who dropped the guard is found by verification; reopening puts the guards back and says which", async () => {
      const schema = newSchema();
      let store = await openStore(schema);
      expect(store.restoredGuards).toEqual([]);
      await store.describe({ td: td(1), cause, hlc: clock.next() });
      await store.append(readings(40, 3));
      await store.putRelease({
        release: { id: "sha256:r", name: "r" } as unknown as Release,
        thing: "urn:hub:pg",
        cause,
        hlc: clock.next(),
      });
      await checkpoint(store);
      expect((await verify(store)).verdict.ok).toBe(true);

      const db = await connect(schema);
      await db.query("DROP TRIGGER changes_no_update ON changes");
      await db.query("ALTER TABLE releases DISABLE TRIGGER releases_no_update");
      // A function of the same name that lets everything through.
      await db.query(
        "CREATE OR REPLACE FUNCTION log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN RETURN NULL; END $$",
      );
      await db.query(`UPDATE changes SET value = '{"v":999,"unit":"°C"}' WHERE seq = 17`);

      const { verdict, verifier } = await verify(store);
      expect(verdict).toMatchObject({ ok: false, problem: "root-mismatch" });
      expect(verifier.firstLeafMismatch?.seq).toBe(17);

      await store.close();
      store = await openStore(schema);
      expect(store.restoredGuards).toEqual([
        { trigger: "changes_no_update", found: "missing" },
        { trigger: "changes_no_truncate", found: "altered" },
        { trigger: "log_head_no_shrink", found: "altered" },
        { trigger: "releases_no_update", found: "disabled" },
      ]);
      await expect(db.query("UPDATE changes SET kind = 'again' WHERE seq = 1")).rejects.toThrow(
        "the log is append-only",
      );
      await expect(db.query("DELETE FROM releases")).rejects.toThrow("releases are immutable");
      // Still found altered: putting the guards back does not make the Log right.
      expect((await verify(store)).verdict).toMatchObject({ ok: false, problem: "root-mismatch" });
      await store.close();
      expect((await openStore(schema)).restoredGuards).toEqual([]);
    });

    it("puts back the leaf's CHECK when dropped or altered, and says so; one that rows break is put back for new rows and names the first", async () => {
      const schema = newSchema();
      let store = await openStore(schema);
      await store.append(readings(30, 3));
      await store.close();
      const db = await connect(schema);
      const badLeaf = (seq: number) =>
        db.query(
          `INSERT INTO changes (seq, hlc, thing, kind, cause, leaf, ordinal) VALUES (${seq}, 'x', 'y', 'z', '{}', '\\x00'::bytea, 1)`,
        );
      const constraint = async () =>
        (
          await db.query<{ def: string; valid: boolean }>(
            `SELECT pg_get_constraintdef(oid) AS def, convalidated AS valid FROM pg_constraint
              WHERE conrelid = 'changes'::regclass AND conname = 'changes_leaf_check'`,
          )
        ).rows;

      // Dropped: put back, and said.
      await db.query("ALTER TABLE changes DROP CONSTRAINT changes_leaf_check");
      store = await openStore(schema);
      expect(store.restoredGuards).toEqual([{ constraint: "changes_leaf_check", found: "missing" }]);
      expect(await constraint()).toEqual([{ def: "CHECK ((length(leaf) = 32))", valid: true }]);
      await expect(badLeaf(1000)).rejects.toThrow(/changes_leaf_check/);
      await store.close();
      store = await openStore(schema);
      expect(store.restoredGuards).toEqual([]);
      await store.close();

      // One of the same name that lets everything through.
      await db.query("ALTER TABLE changes DROP CONSTRAINT changes_leaf_check");
      await db.query("ALTER TABLE changes ADD CONSTRAINT changes_leaf_check CHECK (length(leaf) >= 0)");
      store = await openStore(schema);
      expect(store.restoredGuards).toEqual([{ constraint: "changes_leaf_check", found: "altered" }]);
      expect(await constraint()).toEqual([{ def: "CHECK ((length(leaf) = 32))", valid: true }]);
      await store.close();

      // Dropped, and a row's leaf cut short meanwhile: new rows are checked again, the hub starts,
      // and each opening names the row that breaks it until the database is restored.
      await db.query("ALTER TABLE changes DROP CONSTRAINT changes_leaf_check");
      await db.query("ALTER TABLE changes DISABLE TRIGGER changes_no_update");
      await db.query("UPDATE changes SET leaf = '\\x00'::bytea WHERE seq = 20");
      await db.query("ALTER TABLE changes ENABLE TRIGGER changes_no_update");
      store = await openStore(schema);
      expect(store.restoredGuards).toEqual([
        { constraint: "changes_leaf_check", found: "missing", brokenBy: 20 },
      ]);
      expect(await constraint()).toEqual([{ def: "CHECK ((length(leaf) = 32)) NOT VALID", valid: false }]);
      await expect(badLeaf(1001)).rejects.toThrow(/changes_leaf_check/);
      await store.close();
      store = await openStore(schema);
      expect(store.restoredGuards).toEqual([
        { constraint: "changes_leaf_check", found: "not valid", brokenBy: 20 },
      ]);
    });

    it("names the Change whose stored leaf is not 32 bytes when a proof reads it, as the SQLite store does", async () => {
      const schema = newSchema();
      const store = await openStore(schema);
      await store.append(readings(40, 3));
      const ranges: Array<[number, number]> = [
        [16, 24],
        [0, 3],
      ];
      const before = (await store.subtreeHashes(ranges)).map(hashToHex);
      // Past the column's CHECK and the Log's guard, as only someone with the database's password could.
      const db = await connect(schema);
      await db.query("ALTER TABLE changes DROP CONSTRAINT changes_leaf_check");
      await db.query("ALTER TABLE changes DISABLE TRIGGER changes_no_update");
      await db.query("UPDATE changes SET leaf = '\\x00'::bytea WHERE seq = 20");
      await db.query("ALTER TABLE changes ENABLE TRIGGER changes_no_update");
      const where = new RegExp(
        "^the leaf hash of Change 20 is 1 byte, not 32: the database \\(.*, schema " +
          schema +
          "\\) was altered outside the hub\\. `things verify` checks the Log; restore the database from a backup$",
      );
      for (const options of [{}, { fromLeaves: true }]) {
        const read = store.subtreeHashes([[16, 24]], options);
        await expect(read).rejects.toBeInstanceOf(DamagedLogError);
        await expect(read).rejects.toThrow(where);
        await expect(read).rejects.toMatchObject({ seq: 20 });
      }
      // A proof of Change 20 itself (a one-leaf subtree) says the same.
      await expect(store.subtreeHashes([[19, 20]])).rejects.toThrow(where);
      // Other ranges are as they were.
      expect((await store.subtreeHashes([[0, 3]])).map(hashToHex)).toEqual([before[1]]);
    });

    it("keeps releases, rollouts and checkpoints across reopening; a release is stored once", async () => {
      const schema = newSchema();
      let store = await openStore(schema);
      const release = (id: string, name: string): Release =>
        ({ id, name, created: "2025-01-01T00:00:00.000Z", things: [] }) as unknown as Release;
      const put = (r: Release) =>
        store.putRelease({ release: r, thing: "urn:hub:pg", cause, hlc: clock.next() });
      const [a, b, again, c] = await Promise.all([
        put(release("sha256:a", "alpha")),
        put(release("sha256:b", "beta")),
        put(release("sha256:a", "alpha")),
        put(release("sha256:c", "alpha")),
      ]);
      expect([a?.created, b?.created, again?.created, c?.created]).toEqual([true, true, false, true]);
      expect(again?.record).toStrictEqual(a?.record);
      expect(again?.change).toBeUndefined();
      expect(a?.change?.kind).toBe("released");
      await store.createRollout(
        {
          id: "u1",
          release: "sha256:a",
          name: "alpha",
          status: "running",
          options: { concurrency: 1, maxFailures: 0 },
          actor: "test",
          created: "2025-01-01T00:00:00.000Z",
        },
        [],
      );
      await checkpoint(store);
      const releases = await store.listReleases({ limit: 10 });
      await store.close();

      store = await openStore(schema);
      expect(await store.listReleases({ limit: 10 })).toStrictEqual(releases);
      expect(releases.map((r) => r.release.id)).toEqual(["sha256:c", "sha256:b", "sha256:a"]);
      expect((await store.listReleases({ limit: 10, name: "alpha" })).map((r) => r.release.id)).toEqual([
        "sha256:c",
        "sha256:a",
      ]);
      expect((await store.listReleases({ limit: 10, before: c?.record.seq ?? 0 })).map((r) => r.seq)).toEqual(
        releases.slice(1).map((r) => r.seq),
      );
      expect(await store.getRelease("sha256:b")).toStrictEqual(b?.record);
      expect(await store.getRelease("sha256:none")).toBeUndefined();
      expect(await put(release("sha256:b", "beta"))).toMatchObject({ created: false, record: b?.record });
      expect((await store.getRollout("u1"))?.status).toBe("running");
      expect(await store.checkpoints()).toHaveLength(1);
      expect((await verify(store)).verdict.ok).toBe(true);
    });

    it("refuses a schema newer than the code, saying so, and leaves it as it was", async () => {
      const schema = newSchema();
      await (await openStore(schema)).close();
      const db = await connect(schema);
      await db.query("INSERT INTO schema_migrations (version, applied) VALUES ($1, 'later')", [
        migrations.length + 1,
      ]);
      await expect(PostgresStore.open({ url, schema })).rejects.toThrow(
        `The PostgreSQL schema ${schema} is at version ${migrations.length + 1}, newer than this hub understands (${migrations.length}): upgrade the hub, or give this one another schema`,
      );
      expect((await db.query("SELECT max(version) AS v FROM schema_migrations")).rows[0]).toEqual({
        v: migrations.length + 1,
      });
    });

    it("migrations 2 and 3 bring a version-1 schema its feed indexes, which the actor, release and correlation filters use", async () => {
      const schema = newSchema();
      const first = await openStore(schema);
      await first.append([
        ...readings(30, 3),
        {
          ...(readings(1, 3, 30)[0] as ChangeDraft),
          cause: { actor: "rare", release: "sha256:r1", correlation: "rare" },
        },
      ]);
      await first.close();
      // The schema as a hub of migration 1 left it.
      const db = await connect(schema);
      await db.query(BACK_TO_VERSION_1);
      const store = await openStore(schema);
      expect((await db.query("SELECT max(version) AS v FROM schema_migrations")).rows[0]).toEqual({
        v: migrations.length,
      });
      expect(
        (await store.feed({ actor: "rare", after: 0, order: "desc", limit: 5 })).map((c) => c.seq),
      ).toEqual([31]);
      expect(
        (await store.feed({ release: "sha256:r1", after: 0, order: "asc", limit: 5 })).map((c) => c.seq),
      ).toEqual([31]);
      expect(
        (await store.feed({ correlation: "rare", after: 0, order: "desc", limit: 5 })).map((c) => c.seq),
      ).toEqual([31]);
      // The feed's own WHERE, planned as on a big Log (a scan of 31 rows would win here otherwise).
      await db.query("SET enable_seqscan = off");
      for (const [member, index] of [
        ["actor", "changes_actor"],
        ["release", "changes_release"],
        ["correlation", "changes_correlation"],
      ]) {
        const plan = await db.query<{ "QUERY PLAN": string }>(
          `EXPLAIN SELECT * FROM changes c WHERE c.seq > 0 AND c.seq < 100 AND (c.cause::json ->> '${member}') = 'rare' ORDER BY c.seq DESC LIMIT 50`,
        );
        expect(plan.rows.map((r) => r["QUERY PLAN"]).join("\n")).toContain(index);
      }
    });

    it("migration 3 numbers the Changes of a version-2 schema in their streams: the same Log and counts, then appends go on", async () => {
      const schema = newSchema();
      const first = await openStore(schema);
      await first.describe({ td: td(1), cause, hlc: clock.next() });
      await first.describe({ td: td(2), cause, hlc: clock.next() });
      await first.append(readings(60, 3));
      await first.describe({ td: { ...td(1), title: "renamed" }, cause, hlc: clock.next() });
      await first.remove({ id: thingName(2), cause, hlc: clock.next() });
      await first.append(readings(30, 3, 60));
      const log = await readLog(first);
      await checkpoint(first);
      await first.close();
      const db = await connect(schema);
      await db.query(BACK_TO_VERSION_2);

      const store = await openStore(schema);
      expect((await db.query("SELECT max(version) AS v FROM schema_migrations")).rows[0]).toEqual({
        v: migrations.length,
      });
      // The guard was set aside for the migration's UPDATE only: in force, and not said restored.
      expect(store.restoredGuards).toEqual([]);
      await expect(db.query("UPDATE changes SET ordinal = 0 WHERE seq = 1")).rejects.toThrow(
        "the log is append-only",
      );
      expect((await db.query(WRONG_ORDINALS)).rows[0]).toEqual({ n: 0 });
      expect(await readLog(store)).toStrictEqual(log);
      expect((await verify(store)).verdict).toEqual({ ok: true, size: log.length, provenSize: log.length });
      await expectHistoryAsInLog(store, [1, 2, 3].map(thingName), "migrated");
      // Every count as a scan of the Log gives it, at every pair of positions, edges included.
      const streams = new Map(log.map((c) => [`${c.thing} ${c.affordance ?? ""} ${c.kind}`, c]));
      for (const c of streams.values()) {
        const affordance = c.affordance ?? "";
        for (let after = 0; after <= log.length + 1; after += 7) {
          for (const upTo of [after, after + 1, after + 13, log.length, log.length + 2]) {
            const expected = log.filter(
              (x) =>
                x.thing === c.thing &&
                (x.affordance ?? "") === affordance &&
                x.kind === c.kind &&
                x.seq > after &&
                x.seq <= upTo,
            ).length;
            expect(
              await store.countStream(c.thing, affordance, c.kind, after, upTo),
              `${after}..${upTo}`,
            ).toBe(expected);
          }
        }
      }
      // Appends after the migration number on from each stream's last (old streams and new).
      await store.append(readings(45, 4, 90));
      await store.describe({ td: td(2), cause, hlc: clock.next() });
      expect((await db.query(WRONG_ORDINALS)).rows[0]).toEqual({ n: 0 });
      const size = log.length;
      expect(await store.countStream(thingName(4), "temperature", "reported", 0, size + 50)).toBe(
        (await store.history({ thing: thingName(4), affordance: "temperature", order: "asc", limit: 100 }))
          .length,
      );
      expect(await store.countStream(thingName(2), "", "described", 0, size + 50)).toBe(2);
    });

    it("migration 3 leaves a guard it finds disabled as it was, for the opening to put back and say, and makes an index that was dropped", async () => {
      const schema = newSchema();
      const first = await openStore(schema);
      await first.append(readings(10, 2));
      await first.close();
      const db = await connect(schema);
      await db.query(
        `${BACK_TO_VERSION_2}; ALTER TABLE changes DISABLE TRIGGER changes_no_update; DROP INDEX changes_hlc`,
      );
      const store = await openStore(schema);
      expect(
        (
          await db.query(
            "SELECT indexname FROM pg_indexes WHERE schemaname = current_schema() AND tablename = 'changes' ORDER BY 1",
          )
        ).rows,
      ).toEqual(
        [
          "changes_actor",
          "changes_correlation",
          "changes_hlc",
          "changes_pkey",
          "changes_release",
          "changes_stream",
        ].map((indexname) => ({
          indexname,
        })),
      );
      expect(store.restoredGuards).toEqual([{ trigger: "changes_no_update", found: "disabled" }]);
      expect((await db.query(WRONG_ORDINALS)).rows[0]).toEqual({ n: 0 });
      await expect(db.query("UPDATE changes SET ordinal = 0 WHERE seq = 1")).rejects.toThrow(
        "the log is append-only",
      );
    });

    it("migration 3 is not cut short by a statement_timeout or lock_timeout in the URL: it waits for the Log's lock as long as it takes", async () => {
      const schema = newSchema();
      const first = await openStore(schema);
      await first.append(readings(20, 2));
      await first.close();
      const db = await connect(schema);
      await db.query(BACK_TO_VERSION_2);
      // A reader (a `things verify --db`, say) holds the Log for longer than the sessions' bound.
      const other = await connect(schema);
      await other.query("BEGIN");
      await other.query("LOCK TABLE changes IN ACCESS SHARE MODE");
      expect(await openPastBounds(BOUNDED_URL, schema, db, "%ADD COLUMN ordinal%", other)).toBe("opened");
      expect((await db.query("SELECT max(version) AS v FROM schema_migrations")).rows[0]).toEqual({
        v: migrations.length,
      });
      expect((await db.query(WRONG_ORDINALS)).rows[0]).toEqual({ n: 0 });
    });

    it("a migration waits as long as it takes, past the statement bounds (query_timeout, and statement_timeout and lock_timeout in the URL)", async () => {
      const schema = newSchema();
      await (await openStore(schema)).close();
      const db = await connect(schema);
      await db.query(BACK_TO_VERSION_1);
      // Another hub migrating the schema holds the migration lock for longer than the bound.
      const other = await connect(schema);
      await other.query("BEGIN");
      await other.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`hyperthings:migrate:${schema}`]);
      expect(
        await openPastBounds(`${BOUNDED_URL}&query_timeout=1`, schema, db, "%pg_advisory_xact_lock%", other),
      ).toBe("opened");
      expect((await db.query("SELECT max(version) AS v FROM schema_migrations")).rows[0]).toEqual({
        v: migrations.length,
      });
    });

    it("refuses a schema name it would have to quote, and an unreachable server, each in one line", async () => {
      await expect(PostgresStore.open({ url, schema: "Robert'); DROP" })).rejects.toThrow(
        /The PostgreSQL schema name "Robert'\); DROP" is not one the hub takes/,
      );
      await expect(
        PostgresStore.open({ url: "postgres://nobody:secret@127.0.0.1:1/none", schema: "x" }),
      ).rejects.toThrow(
        /^PostgreSQL at postgres:\/\/nobody:\*\*\*@127\.0\.0\.1:1\/none cannot be used: .*Check that the server runs/,
      );
    });

    it("refuses a connect_timeout or query_timeout that is not a number of seconds, naming it", async () => {
      for (const [name, text] of [
        ["connect_timeout", "soon"],
        ["query_timeout", "0"],
        ["query_timeout", "-5"],
      ]) {
        await expect(PostgresStore.open({ url: `${url}&${name}=${text}`, schema: "x" })).rejects.toThrow(
          `The PostgreSQL URL's ${name} is "${text}": give a number of seconds greater than 0 (at most 86400)`,
        );
      }
    });

    it("an exclusive store holds its schema: a second is refused until the first closes", async () => {
      const schema = newSchema();
      const first = await openStore(schema, { exclusive: true });
      await expect(PostgresStore.open({ url, schema, exclusive: true })).rejects.toThrow(
        new RegExp(`^The PostgreSQL schema ${schema} \\(.*\\) is in use by another hub: stop that hub first`),
      );
      await expect(PostgresStore.open({ url, schema, exclusive: true })).rejects.toBeInstanceOf(
        ConflictError,
      );
      await first.close();
      await openStore(schema, { exclusive: true });
    });

    it("has given the schema's lock up when close resolves: a hub started right after a stop is not refused", async () => {
      const schema = newSchema();
      const other = await connect(schema);
      const heldLocks = `SELECT count(*)::int AS n FROM pg_locks
        WHERE locktype = 'advisory' AND ((classid::bigint << 32) | objid::bigint) = hashtext($1)::bigint`;
      // A closed session's locks go only once the server has ended its backend, a moment after the
      // client hung up: close() unlocks on the session itself first.
      for (const mode of ["exclusive", "replica", "exclusive", "replica", "exclusive"]) {
        const store = await openStore(schema, { [mode]: true });
        await store.close();
        expect((await other.query(heldLocks, [`hyperthings:hub:${schema}`])).rows[0]).toEqual({ n: 0 });
      }
    });

    it("checks before each batch that the lock is held by its session's backend, named by pid and start, not by pid alone", async () => {
      const schema = newSchema();
      const store = await openStore(schema, { exclusive: true });
      await store.describe({ td: td(1), cause, hlc: clock.next() });
      // The backend holding the lock, as another session sees it.
      const other = await connect(schema);
      const { rows } = await other.query<{ pid: number; started: string }>(
        `SELECT l.pid, (extract(epoch FROM a.backend_start) * 1000000)::bigint::text AS started
           FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted
            AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtext($1)::bigint`,
        [`hyperthings:hub:${schema}`],
      );
      expect(rows).toHaveLength(1);
      const holder = rows[0] as { pid: number; started: string };
      const held = async (backend: Backend) =>
        ((await other.query<{ held: boolean }>(lockHeldCheck(schema, backend))).rows[0] as { held: boolean })
          .held;
      expect(await held(holder)).toBe(true);
      // A backend started after the lock's session ended may have its pid (the OS reuses pids):
      // it holds no lock of this store's, whatever it holds.
      expect(await held({ pid: holder.pid, started: String(BigInt(holder.started) + 1n) })).toBe(false);
      expect(() => lockHeldCheck(schema, { pid: holder.pid, started: "1; DROP TABLE changes" })).toThrow();
      await store.describe({ td: td(2), cause, hlc: clock.next() });
      expect(await store.lastSeq()).toBe(2);
    });

    it("with maxQueue 10, refuses the excess of 50 writes issued at once with UnavailableError, and commits the rest", async () => {
      const store = await openStore(newSchema(), { maxQueue: 10 });
      const settled = await Promise.allSettled(
        Array.from({ length: 50 }, (_, i) => store.describe({ td: td(i), cause, hlc: clock.next() })),
      );
      expect(settled.filter((s) => s.status === "fulfilled")).toHaveLength(10);
      for (const s of settled.slice(10)) {
        expect(s.status).toBe("rejected");
        const error = (s as PromiseRejectedResult).reason as UnavailableError;
        expect(error).toBeInstanceOf(UnavailableError);
        expect(error.retryAfter).toBeGreaterThan(0);
      }
      expect(await store.countThings()).toBe(10);
      await expect(store.describe({ td: td(51), cause, hlc: clock.next() })).resolves.toMatchObject({
        created: true,
      });
    });

    it("with maxQueuedChanges 250, refuses appends past 250 waiting Changes; one alone is always taken", async () => {
      const store = await openStore(newSchema(), { maxQueuedChanges: 250 });
      const settled = await Promise.allSettled(
        Array.from({ length: 10 }, (_, i) => store.append(readings(100, 3, i * 100))),
      );
      expect(settled.map((s) => s.status)).toEqual([
        "fulfilled",
        "fulfilled",
        ...Array.from({ length: 8 }, () => "rejected"),
      ]);
      expect(((settled[2] as PromiseRejectedResult).reason as Error).message).toBe(
        "200 Changes are waiting to be written (at most 250); retry shortly",
      );
      await expect(store.append(readings(1_000, 3))).resolves.toHaveLength(1_000);
      expect(await store.lastSeq()).toBe(1_200);
    });

    it("commits calls issued at once in shared transactions, each acknowledged after COMMIT", async () => {
      const schema = newSchema();
      const store = await openStore(schema);
      await Promise.all(Array.from({ length: 200 }, (_, i) => store.append(readings(1, 5, i))));
      // Rows written by one transaction share its id (xmin).
      const db = await connect(schema);
      const { rows } = await db.query<{ n: string }>("SELECT count(DISTINCT xmin::text) AS n FROM changes");
      expect(Number(rows[0]?.n)).toBeLessThan(20);
      expect(await store.lastSeq()).toBe(200);
    });

    it("a text PostgreSQL cannot hold fails its own call only; the batch's others commit without gaps", async () => {
      const store = await openStore(newSchema());
      const settled = await Promise.allSettled([
        store.append(readings(2, 2)),
        store.append([{ ...readings(1, 1)[0], thing: "urn:test:nul\u0000" } as ChangeDraft]),
        store.describe({ td: td(1), cause, hlc: clock.next() }),
        store.append(readings(3, 2, 5)),
      ]);
      expect(settled.map((s) => s.status)).toEqual(["fulfilled", "rejected", "fulfilled", "fulfilled"]);
      const log = await readLog(store);
      expect(log.map((c) => c.seq)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(hashToHex((await store.logHead()).root)).toBe(
        hashToHex(rootHash(log.map((c) => hashFromHex(c.leaf)))),
      );
    });

    it("the secret store refuses with UnavailableError (503) while PostgreSQL cannot be reached", async () => {
      const schema = newSchema();
      await (await openStore(schema)).close();
      const proxy = new PostgresProxy();
      await proxy.open();
      try {
        const secrets = await PostgresSecretStore.open({
          url: proxy.url(""),
          schema,
          connectTimeoutMs: 2_000,
        });
        stores.push(secrets);
        await secrets.put("urn:a", "basic", new Uint8Array([1]));
        await proxy.cut();
        for (const call of [
          () => secrets.put("urn:a", "basic", new Uint8Array([2])),
          () => secrets.get("urn:a"),
          () => secrets.names("urn:a"),
          () => secrets.remove("urn:a"),
        ]) {
          const error = await call().then(
            () => undefined,
            (e: unknown) => e,
          );
          expect(error).toBeInstanceOf(UnavailableError);
          expect((error as UnavailableError).retryAfter).toBeGreaterThan(0);
        }
        await proxy.open(proxy.port);
        expect(await secrets.names("urn:a")).toEqual(["basic"]);
      } finally {
        await proxy.open(proxy.port);
      }
      await stores.pop()?.close();
      await proxy.cut();
    });

    it("the secret store keeps sealed secrets in the schema, and refuses a schema the store has not made", async () => {
      const schema = newSchema();
      await expect(PostgresSecretStore.open({ url, schema })).rejects.toThrow(/needs 1 to/);
      await (await openStore(schema)).close();
      const secrets = await PostgresSecretStore.open({ url, schema });
      stores.push(secrets);
      await secrets.put("urn:a", "basic", new Uint8Array([1, 2, 3]));
      await secrets.put("urn:a", "bearer", new Uint8Array([4]));
      await secrets.put("urn:a", "basic", new Uint8Array([5, 6]));
      await secrets.put("urn:b", "basic", new Uint8Array([7]));
      expect(await secrets.names("urn:a")).toEqual(["basic", "bearer"]);
      expect(await secrets.get("urn:a")).toEqual(
        new Map([
          ["basic", new Uint8Array([5, 6])],
          ["bearer", new Uint8Array([4])],
        ]),
      );
      expect(await secrets.remove("urn:a", "bearer")).toBe(1);
      expect(await secrets.remove("urn:a")).toBe(1);
      expect(await secrets.get("urn:a")).toEqual(new Map());
      expect(await secrets.names("urn:b")).toEqual(["basic"]);
    });

    it("the MQTT credential store answers the records written since a revision, in commit order, whoever wrote them", async () => {
      const schema = newSchema();
      await (await openStore(schema)).close();
      // Two replicas' stores on one schema.
      const a = await PostgresMqttCredentialStore.open({ url, schema });
      const b = await PostgresMqttCredentialStore.open({ url, schema });
      stores.push(a, b);
      const record = (username: string) => ({ username, kind: "homie" as const, generation: 0 });
      const names = (changes: { records: { username: string }[] }) => changes.records.map((r) => r.username);

      const empty = await b.changedSince(undefined);
      expect(empty.records).toEqual([]);
      expect(await a.replace(record("homie:x"), undefined)).toBe(true);
      expect(await a.replace(record("homie:y"), undefined)).toBe(true);
      const first = await b.changedSince(empty.revision);
      expect(names(first)).toEqual(["homie:x", "homie:y"]);
      // Nothing written since: nothing read.
      const unchanged = await b.changedSince(first.revision);
      expect(unchanged).toEqual({ records: [], revision: first.revision });
      // A revocation through A, and an operator's UPDATE: each is read once, with its new state.
      expect(
        await a.replace({ ...record("homie:x"), revokedAt: "2026-12-08T00:00:00.000Z" }, record("homie:x")),
      ).toBe(true);
      const db = await connect(schema);
      clients.push(db);
      await db.query("UPDATE mqtt_credentials SET revoked_at = 'then' WHERE username = 'homie:y'");
      const revoked = await b.changedSince(unchanged.revision);
      expect(revoked.records.map((r) => [r.username, r.revokedAt])).toEqual([
        ["homie:x", "2026-12-08T00:00:00.000Z"],
        ["homie:y", "then"],
      ]);

      // A write that takes its revision first and commits last: the one after it waits for it, so
      // no reader sees the later revision without the earlier one.
      const writer = await connect(schema);
      clients.push(writer);
      await writer.query("BEGIN");
      await writer.query(
        "INSERT INTO mqtt_credentials (username, kind, generation) VALUES ('homie:early', 'homie', 0)",
      );
      const later = a.replace(record("homie:late"), undefined);
      const { rows } = await writer.query<{ pid: number }>("SELECT pg_backend_pid() AS pid");
      await blockedBy(db, rows[0]?.pid);
      expect(await b.changedSince(revoked.revision)).toEqual({ records: [], revision: revoked.revision });
      await writer.query("COMMIT");
      expect(await later).toBe(true);
      expect(names(await b.changedSince(revoked.revision))).toEqual(["homie:early", "homie:late"]);

      // A head behind the revision asked from (the schema restored from an older dump): every record.
      await db.query("UPDATE mqtt_credentials_head SET revision = 1");
      expect(names(await b.changedSince((revoked.revision ?? 0) + 2))).toEqual([
        "homie:x",
        "homie:y",
        "homie:early",
        "homie:late",
      ]);
    });
  });
}
