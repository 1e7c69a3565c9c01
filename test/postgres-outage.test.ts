// A hub on PostgreSQL whose database goes away mid-ingest, through a TCP proxy the tests cut
// (PostgreSQL down or restarting) or stall (a network that drops packets): writes that cannot
// commit are 503 problems with Retry-After, never 201 and never a hang; /health says why; the
// pool reconnects by itself; every acknowledged Change is in the Log afterwards, seqs gapless, and
// `things verify` passes.
import { generateKeyPairSync } from "node:crypto";
import pg from "pg";
import { afterAll, expect, it, vi } from "vitest";
import { thingPath } from "../src/api/index.js";
import { UnavailableError, hashToHex, signCheckpoint, verifyLog, type Change } from "../src/core/index.js";
import { PostgresStore, type ChangeDraft } from "../src/store/index.js";
import { TestHlc } from "../src/store/store-conformance.js";
import {
  PostgresProxy,
  blockedBy,
  describeWithPostgres,
  dropSchema,
  postgresProblem,
  postgresUrl,
  storeUrl,
  temporarySchema,
} from "./support/postgres.js";
import { minimalTd, putTd, startTestHub, type TestHub } from "./support/test-hub.js";
import { runThingsToEnd } from "./support/things-process.js";

const problem = await postgresProblem();

/** One POST of a report, as the hub answered it. */
interface Answer {
  value: number;
  status: number;
  type: string | null;
  retryAfter: string | null;
  body: { seqs?: number[]; detail?: string };
  /** Milliseconds from the request to its whole answer. */
  ms: number;
}

describeWithPostgres("a hub whose PostgreSQL goes away", problem, () => {
  const schemas: string[] = [];
  const proxies: PostgresProxy[] = [];
  const hubs: TestHub[] = [];
  const stores: PostgresStore[] = [];
  afterAll(async () => {
    // The hub stops through an open way to PostgreSQL, then the proxy's connections go.
    for (const proxy of proxies) await proxy.open(proxy.port);
    for (const hub of hubs) await hub.stop();
    for (const store of stores) await store.close();
    for (const proxy of proxies) await proxy.cut();
    for (const schema of schemas) await dropSchema(schema);
  });

  /**
   * A hub on PostgreSQL through a new proxy, with a Thing registered. Short bounds on waiting for
   * PostgreSQL (connect 2 s, a statement 4 s), so that the test's own timeout would catch a hang.
   */
  async function hubThroughProxy(
    thing: string,
    { connectTimeoutS = 2, queryTimeoutS = 4 } = {},
  ): Promise<{ hub: TestHub; proxy: PostgresProxy; schema: string }> {
    const schema = temporarySchema();
    schemas.push(schema);
    const proxy = new PostgresProxy();
    proxies.push(proxy);
    await proxy.open();
    const hub = await startTestHub({
      store: proxy.url(`schema=${schema}&connect_timeout=${connectTimeoutS}&query_timeout=${queryTimeoutS}`),
    });
    hubs.push(hub);
    await putTd(
      hub,
      minimalTd({
        id: thing,
        properties: { kwh: { type: "number", forms: [{ href: "http://meter.example/kwh" }] } },
      }),
    );
    return { hub, proxy, schema };
  }

  async function report(hub: TestHub, thing: string, value: number): Promise<Answer> {
    const sentAt = performance.now();
    const res = await hub.request(`${thingPath(thing)}/changes`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ kind: "reported", affordance: "kwh", value }),
    });
    return {
      value,
      status: res.status,
      type: res.headers.get("content-type"),
      retryAfter: res.headers.get("retry-after"),
      body: (await res.json()) as Answer["body"],
      ms: performance.now() - sentAt,
    };
  }

  /** Writers posting reports one after another each, until stopped; every answer kept. */
  function ingest(hub: TestHub, thing: string, writers: number) {
    const answers: Answer[] = [];
    let next = 0;
    let stopping = false;
    const done = Promise.all(
      Array.from({ length: writers }, async () => {
        while (!stopping) answers.push(await report(hub, thing, next++));
      }),
    );
    return {
      answers,
      acknowledged: () => answers.filter((a) => a.status === 201).length,
      refused: () => answers.filter((a) => a.status !== 201).length,
      async stop() {
        stopping = true;
        await done;
      },
    };
  }

  /** Who holds the schema's lock (`hyperthings:hub:<schema>`), as PostgreSQL says. */
  async function lockHolders(schema: string): Promise<Array<{ mode: string; granted: boolean }>> {
    const db = new pg.Client({ connectionString: postgresUrl });
    await db.connect();
    try {
      const { rows } = await db.query<{ mode: string; granted: boolean }>(
        `SELECT mode, granted FROM pg_locks WHERE locktype = 'advisory'
           AND ((classid::bigint << 32) | objid::bigint) = hashtext($1)::bigint ORDER BY mode`,
        [`hyperthings:hub:${schema}`],
      );
      return rows;
    } finally {
      await db.end();
    }
  }

  /** A store of its own on the schema, straight to PostgreSQL (another hub), once it can open. */
  async function otherHub(schema: string, mode: "exclusive" | "replica"): Promise<PostgresStore> {
    // The server ends the sessions of a cut proxy as it notices: the lock is free by then.
    const store = await vi.waitFor(() => PostgresStore.open({ url: storeUrl(schema), [mode]: true }), {
      timeout: 20_000,
      interval: 200,
    });
    stores.push(store);
    return store;
  }

  async function health(hub: TestHub): Promise<{ code: number; body: Record<string, unknown> }> {
    const res = await hub.request("/health", { auth: false });
    return { code: res.status, body: (await res.json()) as Record<string, unknown> };
  }

  /** Every Change in the Log, oldest first. */
  async function wholeLog(hub: TestHub): Promise<Change[]> {
    const all: Change[] = [];
    for (;;) {
      const res = await hub.request(`/changes?cursor=${all.at(-1)?.seq ?? 0}&limit=1000`);
      expect(res.status).toBe(200);
      const page = ((await res.json()) as { changes: Change[] }).changes;
      if (page.length === 0) return all;
      all.push(...page);
    }
  }

  /** What holds whatever happened: each answer a 201 or a 503 problem, and the Log whole. */
  async function expectNothingLost(hub: TestHub, thing: string, answers: readonly Answer[]) {
    for (const answer of answers) {
      if (answer.status === 201) continue;
      expect(answer.status, JSON.stringify(answer)).toBe(503);
      expect(answer.type).toMatch(/^application\/problem\+json/);
      expect(Number(answer.retryAfter)).toBeGreaterThan(0);
      expect(answer.body.detail).toMatch(/PostgreSQL/);
    }
    const log = await wholeLog(hub);
    expect(log.map((c) => c.seq)).toEqual(log.map((_, i) => i + 1));
    const recorded = new Map(log.filter((c) => c.thing === thing).map((c) => [c.seq, c.value]));
    for (const answer of answers.filter((a) => a.status === 201)) {
      for (const seq of answer.body.seqs ?? []) expect(recorded.get(seq)).toBe(answer.value);
    }
    const verify = await runThingsToEnd(["verify", "--url", hub.url, "--token", hub.token]);
    expect(verify.stderr).toBe("");
    expect(verify.code).toBe(0);
    expect(verify.stdout).toMatch(new RegExp(`^verified ${log.length} changes`));
  }

  it("refuses writes with 503 while PostgreSQL is down, says so in /health, and takes them again when it is back", async () => {
    const thing = "urn:example:pg:outage:cut";
    const { hub, proxy, schema } = await hubThroughProxy(thing);
    const load = ingest(hub, thing, 4);
    await vi.waitFor(() => expect(load.acknowledged()).toBeGreaterThanOrEqual(20), { timeout: 20_000 });

    await proxy.cut();
    const refusedBefore = load.refused();
    await vi.waitFor(() => expect(load.refused()).toBeGreaterThan(refusedBefore + 4), { timeout: 20_000 });
    const down = await health(hub);
    expect(down.code).toBe(503);
    expect(down.body).toMatchObject({ status: "failing" });
    expect((down.body.writes as { reason: string }).reason).toMatch(
      /^The hub could not (write to|read from) PostgreSQL/,
    );
    // The Thing's credentials live there too.
    for (const init of [
      { method: "PUT", body: JSON.stringify({ username: "meter", password: "a-password-long-enough" }) },
      { method: "GET" },
    ]) {
      const res = await hub.request(`${thingPath(thing)}/credentials`, {
        ...init,
        headers: { "content-type": "application/json" },
      });
      expect(res.status, `${init.method} credentials: ${await res.clone().text()}`).toBe(503);
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(Number(res.headers.get("retry-after"))).toBeGreaterThan(0);
    }

    await proxy.open(proxy.port);
    // The pool reconnects by itself: writes commit again, and /health stops saying they fail.
    const acknowledgedBefore = load.acknowledged();
    await vi.waitFor(() => expect(load.acknowledged()).toBeGreaterThan(acknowledgedBefore + 20), {
      timeout: 20_000,
    });
    await load.stop();
    // The session holding the schema's lock died with the rest: the hub took the lock back before
    // taking writes again, and says nothing more.
    await vi.waitFor(
      async () => {
        const back = await health(hub);
        expect(back.code).toBe(200);
        expect(back.body).toMatchObject({ status: "ok" });
      },
      { timeout: 20_000 },
    );
    expect(await lockHolders(schema)).toEqual([{ mode: "ExclusiveLock", granted: true }]);

    await expectNothingLost(hub, thing, load.answers);
  });

  it("bounds every write and /health while the network to PostgreSQL drops everything, and recovers when it carries again", async () => {
    const thing = "urn:example:pg:outage:stall";
    const { hub, proxy } = await hubThroughProxy(thing);
    const load = ingest(hub, thing, 4);
    await vi.waitFor(() => expect(load.acknowledged()).toBeGreaterThanOrEqual(20), { timeout: 20_000 });

    // Writes in flight stay unanswered by PostgreSQL: each gets a 503 within the bounds (else
    // this test times out), and the sessions left behind in their transactions (holding the
    // Log's head row) are ended by the server (idle_in_transaction_session_timeout).
    proxy.stall();
    const refusedBefore = load.refused();
    await vi.waitFor(() => expect(load.refused()).toBeGreaterThan(refusedBefore + 4), { timeout: 25_000 });
    const silent = await health(hub);
    expect(silent.code).toBe(503);
    expect(silent.body).toMatchObject({ status: "failing" });

    await proxy.open(proxy.port);
    const acknowledgedBefore = load.acknowledged();
    await vi.waitFor(() => expect(load.acknowledged()).toBeGreaterThan(acknowledgedBefore + 20), {
      timeout: 25_000,
    });
    await load.stop();
    await vi.waitFor(
      async () => {
        const again = await health(hub);
        expect(again.code).toBe(200);
        expect(again.body).toMatchObject({ status: "ok" });
      },
      { timeout: 20_000 },
    );

    await expectNothingLost(hub, thing, load.answers);
  });

  it("answers each of many writes waiting behind a silent network within query_timeout (and a margin), 201 or 503", async () => {
    const thing = "urn:example:pg:outage:bound";
    const queryTimeoutS = 6;
    // A write's whole wait, queued behind others and sent, is bounded by query_timeout; the half
    // again is the margin for a loaded machine. Before, a write queued behind a batch that waited
    // out its bound waited out the next batch's too (its connection, its statement): twice.
    const limitMs = 1.5 * queryTimeoutS * 1000;
    // Connections are waited for as long: a batch's new one counts in the write's wait too.
    const { hub, proxy } = await hubThroughProxy(thing, { connectTimeoutS: queryTimeoutS, queryTimeoutS });
    const writers = 40;
    const load = ingest(hub, thing, writers);
    await vi.waitFor(() => expect(load.acknowledged()).toBeGreaterThanOrEqual(writers), { timeout: 20_000 });

    proxy.stall();
    // Every writer has its write refused twice: the ones that waited in the queue behind the
    // batch in flight, and the next ones.
    const refusedBefore = load.refused();
    await vi.waitFor(() => expect(load.refused()).toBeGreaterThanOrEqual(refusedBefore + 2 * writers), {
      timeout: 60_000,
      interval: 200,
    });
    await proxy.open(proxy.port);
    const acknowledgedBefore = load.acknowledged();
    await vi.waitFor(() => expect(load.acknowledged()).toBeGreaterThan(acknowledgedBefore + writers), {
      timeout: 30_000,
    });
    await load.stop();

    const slowest = load.answers.reduce((a, b) => (b.ms > a.ms ? b : a));
    console.log(
      "FIGURES",
      JSON.stringify({
        n: load.answers.length,
        refused: load.refused(),
        slowest: Math.round(slowest.ms),
        over6s: load.answers.filter((a) => a.ms > 6000).length,
      }),
    );
    expect(slowest.ms, JSON.stringify(slowest)).toBeLessThan(limitMs);
    await expectNothingLost(hub, thing, load.answers);
  }, 150_000);

  it("takes no write until it holds the schema's lock again: refused, saying why, while another hub holds it, and for good once another hub wrote", async () => {
    const thing = "urn:example:pg:outage:lock";
    const { hub, proxy, schema } = await hubThroughProxy(thing);
    expect((await report(hub, thing, 1)).status).toBe(201);

    // PostgreSQL restarts: the session holding the lock ends, and another hub opens the schema
    // before this one reaches PostgreSQL again.
    await proxy.cut();
    const other = await otherHub(schema, "exclusive");
    await proxy.open(proxy.port);
    const taken =
      /^The PostgreSQL schema \w+ was taken by another hub while this hub's session holding its lock was lost: this hub takes no write until that hub stops/;
    await vi.waitFor(
      async () => {
        const refused = await health(hub);
        expect(refused.code).toBe(503);
        expect(refused.body).toMatchObject({ status: "failing" });
        expect((refused.body.writes as { reason: string }).reason).toMatch(taken);
      },
      { timeout: 20_000 },
    );
    const refused = await report(hub, thing, 2);
    expect(refused.status).toBe(503);
    expect(refused.type).toMatch(/^application\/problem\+json/);
    expect(Number(refused.retryAfter)).toBeGreaterThan(0);
    expect(refused.body.detail).toMatch(taken);
    expect(refused.body.detail).toMatch(/Nothing of this write was recorded/);
    // The Thing's credentials too: they are written by the hub holding the schema.
    const credentials = await hub.request(`${thingPath(thing)}/credentials`, { method: "DELETE" });
    expect(credentials.status).toBe(503);
    expect(((await credentials.json()) as { detail: string }).detail).toMatch(taken);

    // The other hub stops, having written nothing: this one takes the lock back, and writes.
    await other.close();
    await vi.waitFor(async () => expect((await report(hub, thing, 3)).status).toBe(201), {
      timeout: 20_000,
      interval: 200,
    });
    expect((await health(hub)).body).toMatchObject({ status: "ok" });
    expect(await lockHolders(schema)).toEqual([{ mode: "ExclusiveLock", granted: true }]);

    // Again, and the other hub writes this time: what this one keeps in memory is behind the Log,
    // so it takes no write until it restarts, and leaves the lock to whoever takes it.
    await proxy.cut();
    const writer = await otherHub(schema, "exclusive");
    const clock = new TestHlc(new Date().toISOString(), "urn:hub:other");
    await writer.append([
      { thing, affordance: "kwh", kind: "reported", value: 4, cause: { actor: "other" }, hlc: clock.next() },
    ]);
    await writer.close();
    await proxy.open(proxy.port);
    const behind =
      /^Another hub wrote 1 Changes to the PostgreSQL schema \w+ while this hub did not hold its lock: .* Restart it$/;
    await vi.waitFor(
      async () => expect(((await health(hub)).body.writes as { reason: string }).reason).toMatch(behind),
      { timeout: 20_000 },
    );
    const stale = await report(hub, thing, 5);
    expect(stale.status).toBe(503);
    expect(stale.body.detail).toMatch(
      /^Another hub wrote 1 Changes .* Restart it\. Nothing of this write was recorded$/,
    );
    expect(await lockHolders(schema)).toEqual([]);
    expect(
      (await wholeLog(hub)).map((c) => `${c.kind} ${c.kind === "reported" ? String(c.value) : ""}`),
    ).toEqual(["described ", "reported 1", "reported 3", "reported 4"]);
  });

  it("a replica takes its shared lock back too, taking no write while a hub that is not a replica holds the schema", async () => {
    const schema = temporarySchema();
    schemas.push(schema);
    const proxy = new PostgresProxy();
    proxies.push(proxy);
    await proxy.open();
    const replica = await PostgresStore.open({
      url: proxy.url(`schema=${schema}&connect_timeout=2&query_timeout=4`),
      replica: true,
    });
    stores.push(replica);
    const clock = new TestHlc(new Date().toISOString());
    const draft = (value: number) => [
      {
        thing: "urn:example:pg:replica",
        affordance: "kwh",
        kind: "reported",
        value,
        cause: { actor: "replica" },
        hlc: clock.next(),
      },
    ];
    expect(await replica.append(draft(1))).toHaveLength(1);

    await proxy.cut();
    const lone = await otherHub(schema, "exclusive");
    await proxy.open(proxy.port);
    const taken =
      /^The PostgreSQL schema \w+ was taken by a hub that is not a replica while this replica's session holding its lock was lost: this replica takes no write until that hub stops/;
    await vi.waitFor(() => expect(replica.writeFailure()?.reason).toMatch(taken), { timeout: 20_000 });
    const refusal = await replica.append(draft(2)).catch((error: unknown) => error);
    expect(refusal).toBeInstanceOf(UnavailableError);
    expect((refusal as Error).message).toMatch(taken);

    await lone.close();
    await vi.waitFor(async () => expect(await replica.append(draft(3))).toHaveLength(1), {
      timeout: 20_000,
      interval: 200,
    });
    expect(replica.writeFailure()).toBeUndefined();
    expect(await lockHolders(schema)).toEqual([{ mode: "ShareLock", granted: true }]);
    expect((await replica.changesAfter(0, 10)).map((c) => c.value)).toEqual([1, 3]);
  });

  it("commits no batch of a hub once its lock session is gone, even one sent before it knew: another hub writes after it, the Log gapless and verified", async () => {
    const schema = temporarySchema();
    schemas.push(schema);
    const thing = "urn:example:pg:outage:race";
    const one = await PostgresStore.open({ url: storeUrl(schema), exclusive: true });
    stores.push(one);
    const clock = new TestHlc(new Date().toISOString());
    const draft = (actor: string, value: number): ChangeDraft[] => [
      { thing, affordance: "kwh", kind: "reported", value, cause: { actor }, hlc: clock.next() },
    ];
    expect(await one.append(draft("one", 0))).toHaveLength(1);

    const db = new pg.Client({ connectionString: postgresUrl });
    await db.connect();
    try {
      const holderOf = async (): Promise<number[]> =>
        (
          await db.query<{ pid: number }>(
            `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
               AND ((classid::bigint << 32) | objid::bigint) = hashtext($1)::bigint`,
            [`hyperthings:hub:${schema}`],
          )
        ).rows.map((r) => r.pid);
      const [lockPid] = await holderOf();
      expect(lockPid).toBeGreaterThan(0);

      // Another session holds the Log's head row: the next batch of `one` is sent and waits there.
      const blocker = new pg.Client({ connectionString: postgresUrl });
      await blocker.connect();
      await blocker.query(`BEGIN; SELECT FROM ${schema}.log_head WHERE id = 1 FOR UPDATE`);
      const blockerPid = (await blocker.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]
        ?.pid;
      // Writes under way from `one`, each awaited before the next: the first waits on the head row.
      const oneAnswers: Array<{ value: number; seq?: number; error?: unknown }> = [];
      let stopping = false;
      let next = 1;
      const writing = (async () => {
        while (!stopping) {
          const value = next++;
          await one.append(draft("one", value)).then(
            ([change]) => oneAnswers.push({ value, seq: change?.seq ?? 0 }),
            (error: unknown) => oneAnswers.push({ value, error }),
          );
          // A refusal comes at once: the loop lets the rest of the process run between writes.
          await new Promise((resolve) => setImmediate(resolve));
        }
      })();
      await blockedBy(db, blockerPid);

      // The lock's session ends, and `one` learns it, its batch still in flight.
      await db.query("SELECT pg_terminate_backend($1)", [lockPid]);
      await vi.waitFor(() => expect(one.writeFailure()?.reason).toMatch(/holding the lock .* ended/), {
        timeout: 20_000,
      });
      // Another hub takes the schema; it reads the Log once the head row is free.
      const opening = vi.waitFor(() => PostgresStore.open({ url: storeUrl(schema), exclusive: true }), {
        timeout: 20_000,
        interval: 100,
      });
      await vi.waitFor(
        async () => {
          const holders = await holderOf();
          expect(holders).toHaveLength(1);
          expect(holders[0]).not.toBe(lockPid);
        },
        { timeout: 20_000, interval: 50 },
      );
      await blocker.query("COMMIT");
      await blocker.end();
      const two = await opening;
      stores.push(two);
      const openedAt = (await two.logHead()).size;

      // Both write for a while: `two` is taken, `one` refused, saying nothing was recorded.
      for (let value = 1; value <= 20; value++) expect(await two.append(draft("two", value))).toHaveLength(1);
      stopping = true;
      await writing;
      const acknowledged = oneAnswers.filter((a) => a.error === undefined);
      const refused = oneAnswers.filter((a) => a.error !== undefined);
      expect(refused.length).toBeGreaterThan(0);
      expect(refused[0]?.value).toBe(1); // the batch that was in flight when the lock went
      for (const { error } of refused) {
        expect(error).toBeInstanceOf(UnavailableError);
        expect((error as Error).message).toMatch(/Nothing of this write was recorded$/);
      }
      // Whatever `one` committed, it committed before `two` read the Log.
      for (const { seq } of acknowledged) expect(seq).toBeLessThanOrEqual(openedAt);

      const log = await two.changesAfter(0, 10_000);
      expect(log.map((c) => c.seq)).toEqual(log.map((_, i) => i + 1));
      expect(log.filter((c) => c.cause.actor === "one").map((c) => c.value)).toEqual([
        0,
        ...acknowledged.map((a) => a.value),
      ]);
      expect(log.filter((c) => c.cause.actor === "two").map((c) => c.value)).toEqual(
        Array.from({ length: 20 }, (_, i) => i + 1),
      );
      const head = await two.logHead();
      const { privateKey, publicKey } = generateKeyPairSync("ed25519");
      const checkpoint = signCheckpoint(
        {
          origin: "urn:hub:pg-race",
          size: head.size,
          root: hashToHex(head.root),
          time: new Date().toISOString(),
        },
        privateKey,
      );
      expect(verifyLog(log, [checkpoint], publicKey)).toEqual({
        ok: true,
        size: log.length,
        provenSize: log.length,
      });
    } finally {
      await db.end();
    }
  });
});
