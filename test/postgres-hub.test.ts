// A hub on PostgreSQL (`--store postgres://…`): it registers a Thing, records reports over HTTP,
// restarts on the same schema with everything kept, and `things verify` passes; a second hub on
// the schema is refused while the first runs. Its diffs count Changes from the stored ordinals.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import pg from "pg";
import { pino } from "pino";
import { afterAll, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import { startHub } from "../src/cli/index.js";
import type { Change } from "../src/core/index.js";
import { loadConfig } from "../src/hub/index.js";
import {
  describeWithPostgres,
  storeUrl,
  dropSchema,
  postgresProblem,
  postgresUrl,
  temporarySchema,
} from "./support/postgres.js";
import { minimalTd, startTestHub, type TestHub } from "./support/test-hub.js";
import { runThingsToEnd } from "./support/things-process.js";

const problem = await postgresProblem();
const THING = "urn:example:pg:meter";

describeWithPostgres("a hub on PostgreSQL", problem, () => {
  const schema = temporarySchema();
  const store = storeUrl(schema);
  // The hub's keys and tokens stay in its data directory, whichever store it runs on.
  const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-pg-hub-"));
  const hubs: TestHub[] = [];
  afterAll(async () => {
    for (const hub of hubs) await hub.stop();
    await dropSchema(schema);
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** Registers THING, a meter with one numeric property `kwh`. */
  async function registerMeter(hub: TestHub): Promise<void> {
    const put = await hub.request(thingPath(THING), {
      method: "PUT",
      headers: { "content-type": "application/td+json" },
      body: JSON.stringify(
        minimalTd({
          id: THING,
          properties: { kwh: { type: "number", forms: [{ href: "http://meter.example/kwh" }] } },
        }),
      ),
    });
    expect(put.status).toBe(201);
  }

  async function report(hub: TestHub, value: number): Promise<number[]> {
    const res = await hub.request(`${thingPath(THING)}/changes`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ kind: "reported", affordance: "kwh", value }),
    });
    const answer = (await res.json()) as { seqs: number[] };
    expect(res.status, JSON.stringify(answer)).toBe(201);
    return answer.seqs;
  }

  it("keeps the directory and the Log across a restart, refuses a second hub meanwhile, and verifies", async () => {
    const first = await startTestHub({ store, dataDir });
    hubs.push(first);
    await registerMeter(first);
    const seqs: number[] = [];
    for (const value of [1.5, 2.5, 4]) seqs.push(...(await report(first, value)));

    // Another hub on the same schema while this one runs: refused, saying why.
    await expect(startTestHub({ store, dataDir })).rejects.toThrow(
      new RegExp(`^The PostgreSQL schema ${schema} \\(.*\\) is in use by another hub: stop that hub first`),
    );

    await first.stop();
    hubs.splice(0);
    const again = await startTestHub({ store, dataDir });
    hubs.push(again);
    expect((await again.request(thingPath(THING))).status).toBe(200);
    const history = (await (
      await again.request(`${thingPath(THING)}/history?affordance=kwh&limit=10`)
    ).json()) as { changes: Change[] };
    expect(history.changes.map((c) => c.value)).toEqual([4, 2.5, 1.5]);
    expect(history.changes[0]?.previous).toBe(2.5);
    // The Log goes on from where it was.
    expect(await report(again, 5)).toEqual([(seqs.at(-1) ?? 0) + 1]);

    const verify = await runThingsToEnd(["verify", "--url", again.url, "--token", again.token]);
    expect(verify.stderr).toBe("");
    expect(verify.code).toBe(0);
    expect(verify.stdout).toMatch(/^verified \d+ changes/);
  });

  it("says at start that the leaf's CHECK was dropped and is put back, and which Change breaks it when one does", async () => {
    const checkSchema = temporarySchema();
    const checkDir = mkdtempSync(join(tmpdir(), "hyperthings-pg-check-"));
    const db = new pg.Client({ connectionString: postgresUrl, options: `-c search_path=${checkSchema}` });
    await db.connect();
    /** Starts a hub on the schema (registering THING the first time) and stops it: what it warned of. */
    let registered = false;
    const warnings = async (): Promise<string[]> => {
      const lines: string[] = [];
      const destination = new Writable({
        write(chunk: Buffer, _encoding, done) {
          lines.push(chunk.toString());
          done();
        },
      });
      const config = loadConfig(
        { dataDir: checkDir, port: 0, observe: false, mqtt: false, store: storeUrl(checkSchema) },
        {},
      );
      const hub = await startHub(config, { logger: pino({ level: "warn" }, destination) });
      if (!registered) {
        const put = await fetch(`${hub.url}${thingPath(THING)}`, {
          method: "PUT",
          headers: {
            authorization: `Bearer ${hub.hub.adminToken.token}`,
            "content-type": "application/td+json",
          },
          body: JSON.stringify(minimalTd({ id: THING })),
        });
        expect(put.status).toBe(201);
        registered = true;
      }
      await hub.close();
      return lines.map((line) => (JSON.parse(line) as { msg: string }).msg);
    };
    const what = "the database's CHECK changes_leaf_check (a leaf hash is 32 bytes)";
    try {
      expect((await warnings()).filter((w) => w.includes("changes_leaf_check"))).toEqual([]);
      await db.query("ALTER TABLE changes DROP CONSTRAINT changes_leaf_check");
      expect(await warnings()).toContain(`${what} was dropped outside the hub and is put back`);
      await db.query("ALTER TABLE changes DROP CONSTRAINT changes_leaf_check");
      await db.query("ALTER TABLE changes DISABLE TRIGGER changes_no_update");
      await db.query("UPDATE changes SET leaf = '\\x0000'::bytea WHERE seq = 1");
      await db.query("ALTER TABLE changes ENABLE TRIGGER changes_no_update");
      const broken =
        "it holds for new rows only: Change 1's leaf hash is not 32 bytes, so the Log was altered outside the hub: `things verify` checks it; restore the database from a backup";
      expect(await warnings()).toContain(`${what} was dropped outside the hub and is put back; ${broken}`);
      expect(await warnings()).toContain(`${what} is not in force for every row; ${broken}`);
    } finally {
      await db.end();
      await dropSchema(checkSchema);
      rmSync(checkDir, { recursive: true, force: true });
    }
  });

  it("diffs on PostgreSQL: a property's Changes counted over a Thing registered inside the interval, none from a time to itself", async () => {
    const diffSchema = temporarySchema();
    const diffDir = mkdtempSync(join(tmpdir(), "hyperthings-pg-diff-"));
    const hub = await startTestHub({ store: storeUrl(diffSchema), dataDir: diffDir });
    try {
      const before = new Date(Date.now() - 1000).toISOString();
      await registerMeter(hub);
      for (const value of [1, 2, 3, 4, 5]) await report(hub, value);
      const end = new Date().toISOString();
      const diff = async (from: string, to: string) => {
        const res = await hub.request(
          `${thingPath(THING)}/diff?from=${encodeURIComponent(from)}&to=${encodeURIComponent(to)}`,
        );
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
      };
      const whole = await diff(before, end);
      expect(whole.status).toBe(200);
      expect(whole.body.properties).toMatchObject([{ affordance: "kwh", after: 5, changes: 5 }]);
      expect((whole.body.properties as Array<Record<string, unknown>>)[0]).not.toHaveProperty("before");
      expect(whole.body.descriptionChanges).toMatchObject({ counts: { described: 1 } });
      const none = await diff(end, end);
      expect(none.status).toBe(200);
      expect(none.body.properties).toEqual([]);
      expect(none.body.descriptionChanges).toBeUndefined();
      expect((await diff(new Date(Date.parse(before) - 3_600_000).toISOString(), before)).status).toBe(404);

      // The whole fleet's diff reads its page's Things together: each as its own diff says it.
      const other = "urn:example:pg:other-meter";
      const put = await hub.request(thingPath(other), {
        method: "PUT",
        headers: { "content-type": "application/td+json" },
        body: JSON.stringify(
          minimalTd({
            id: other,
            properties: { kwh: { type: "number", forms: [{ href: "http://meter.example/kwh" }] } },
            actions: { reset: { forms: [{ href: "http://meter.example/reset" }] } },
          }),
        ),
      });
      expect(put.status).toBe(201);
      await hub.hub.ingest(other, [{ kind: "reported", affordance: "kwh", value: 7 }], { actor: "admin" });
      await hub.hub.ingest(other, [{ kind: "invoked", affordance: "reset", value: null }], {
        actor: "admin",
      });
      const later = new Date().toISOString();
      const fleet = await hub.request(
        `/diff?from=${encodeURIComponent(before)}&to=${encodeURIComponent(later)}`,
      );
      expect(fleet.status).toBe(200);
      const { things } = (await fleet.json()) as { things: Array<{ thing: string }> };
      expect(things.map((t) => t.thing)).toEqual([THING, other]);
      for (const one of things) {
        const res = await hub.request(
          `${thingPath(one.thing)}/diff?from=${encodeURIComponent(before)}&to=${encodeURIComponent(later)}`,
        );
        expect(one).toEqual(await res.json());
      }
      expect(things[1]).toMatchObject({
        properties: [{ affordance: "kwh", after: 7, changes: 1 }],
        actions: [{ affordance: "reset", counts: { invoked: 1 } }],
      });
    } finally {
      await hub.stop();
      await dropSchema(diffSchema);
      rmSync(diffDir, { recursive: true, force: true });
    }
  });
});
