// A hub on PostgreSQL whose database goes away mid-ingest, through a TCP proxy the tests cut
// (PostgreSQL down or restarting) or stall (a network that drops packets): writes that cannot
// commit are 503 problems with Retry-After, never 201 and never a hang; /health says why; the
// pool reconnects by itself; every acknowledged Change is in the Log afterwards, seqs gapless, and
// `things verify` passes.
import { afterAll, expect, it, vi } from "vitest";
import { thingPath } from "../src/api/index.js";
import type { Change } from "../src/core/index.js";
import {
  PostgresProxy,
  describeWithPostgres,
  dropSchema,
  postgresProblem,
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
}

describeWithPostgres("a hub whose PostgreSQL goes away", problem, () => {
  const schemas: string[] = [];
  const proxies: PostgresProxy[] = [];
  const hubs: TestHub[] = [];
  afterAll(async () => {
    // The hub stops through an open way to PostgreSQL, then the proxy's connections go.
    for (const proxy of proxies) await proxy.open(proxy.port);
    for (const hub of hubs) await hub.stop();
    for (const proxy of proxies) await proxy.cut();
    for (const schema of schemas) await dropSchema(schema);
  });

  /**
   * A hub on PostgreSQL through a new proxy, with a Thing registered. Short bounds on waiting for
   * PostgreSQL (connect 2 s, a statement 4 s), so that the test's own timeout would catch a hang.
   */
  async function hubThroughProxy(thing: string): Promise<{ hub: TestHub; proxy: PostgresProxy }> {
    const schema = temporarySchema();
    schemas.push(schema);
    const proxy = new PostgresProxy();
    proxies.push(proxy);
    await proxy.open();
    const hub = await startTestHub({
      store: proxy.url(`schema=${schema}&connect_timeout=2&query_timeout=4`),
    });
    hubs.push(hub);
    await putTd(
      hub,
      minimalTd({
        id: thing,
        properties: { kwh: { type: "number", forms: [{ href: "http://meter.example/kwh" }] } },
      }),
    );
    return { hub, proxy };
  }

  async function report(hub: TestHub, thing: string, value: number): Promise<Answer> {
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
    const { hub, proxy } = await hubThroughProxy(thing);
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
    await vi.waitFor(async () => expect((await health(hub)).body).not.toHaveProperty("writes"), {
      timeout: 20_000,
    });
    // The session holding the schema's lock died with the rest: said until the hub restarts.
    const back = await health(hub);
    expect(back.code).toBe(200);
    expect(back.body).toMatchObject({ status: "degraded" });
    expect((back.body.storage as { reason: string }).reason).toMatch(/lock on the PostgreSQL schema/);

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
});
