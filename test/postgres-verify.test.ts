// `things verify --db postgres://…?schema=…`: a hub's Log in PostgreSQL verified without a hub,
// while the hub runs (one snapshot) and after rows were altered behind its back, which `things
// verify` and `things prove` through the running hub name too; and `things backup` says in one
// line what backs up a PostgreSQL store.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pg from "pg";
import { afterAll, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import {
  describeWithPostgres,
  storeUrl,
  dropSchema,
  postgresProblem,
  postgresUrl,
  temporarySchema,
} from "./support/postgres.js";
import { minimalTd, putTd, startTestHub, type TestHub } from "./support/test-hub.js";
import { runThingsToEnd } from "./support/things-process.js";

const problem = await postgresProblem();
const THING = "urn:example:pg:verify:meter";

describeWithPostgres("things verify --db on PostgreSQL", problem, () => {
  const schema = temporarySchema();
  const store = storeUrl(schema);
  const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-pg-verify-"));
  let hub: TestHub | undefined;
  afterAll(async () => {
    await hub?.stop();
    await dropSchema(schema);
    rmSync(dataDir, { recursive: true, force: true });
  });

  async function sql(text: string): Promise<void> {
    const client = new pg.Client({ connectionString: postgresUrl });
    await client.connect();
    try {
      await client.query(`SET search_path TO ${schema}`);
      await client.query(text);
    } finally {
      await client.end();
    }
  }

  it("verifies the Log with and without a hub, and names a row altered behind the hub's back", async () => {
    hub = await startTestHub({ store, dataDir });
    await putTd(
      hub,
      minimalTd({
        id: THING,
        properties: { kwh: { type: "number", forms: [{ href: "http://meter.example/kwh" }] } },
      }),
    );
    for (let value = 0; value < 20; value++) {
      const res = await hub.request(`${thingPath(THING)}/changes`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ kind: "reported", affordance: "kwh", value }),
      });
      expect(res.status).toBe(201);
    }
    // A checkpoint signed over all of it, as auditors ask for.
    expect((await hub.request("/log/checkpoint")).status).toBe(200);

    // While the hub runs: one read-only snapshot.
    const running = await runThingsToEnd(["verify", "--db", store, "--data", dataDir]);
    expect(running).toMatchObject({ code: 0, stderr: "" });
    expect(running.stdout).toMatch(
      /^verified 21 changes, \d+ checkpoints?, log root [0-9a-f]{64} signed at .* \(key SHA256:\S+\)\n$/,
    );

    // Seq 5's value changed by someone who could disable the guard, while the hub runs: `things
    // verify` through the hub names it, as on SQLite, and `things prove` refuses it.
    await sql(
      "ALTER TABLE changes DISABLE TRIGGER changes_no_update; UPDATE changes SET value = '999' WHERE seq = 5; " +
        "ALTER TABLE changes ENABLE TRIGGER changes_no_update",
    );
    const at = ["--url", hub.url, "--token", hub.token];
    const viaHub = await runThingsToEnd(["verify", ...at]);
    expect(viaHub.code).toBe(3);
    expect(viaHub.stdout).toMatch(/^log verification FAILED at seq 5: [^\n]*it was altered\n$/);
    const viaHubJson = await runThingsToEnd(["verify", "--json", ...at]);
    expect(JSON.parse(viaHubJson.stdout)).toMatchObject({ ok: false, seq: 5, problem: "altered-change" });
    const proved = await runThingsToEnd(["prove", "5", ...at]);
    expect(proved.code).toBe(3);
    expect(proved.stdout).toMatch(/^proof FAILED at seq 5: .*altered after it was logged\n$/);
    expect((await runThingsToEnd(["prove", "4", ...at])).code).toBe(0);

    // Seq 8's row deleted past the guard: its proof says what is missing, where, and what to run,
    // as a problem document (not the hub's "failed to answer"), and `things prove` fails on it.
    await sql(
      "CREATE TABLE kept_8 AS SELECT * FROM changes WHERE seq = 8; " +
        "ALTER TABLE changes DISABLE TRIGGER changes_no_update; DELETE FROM changes WHERE seq = 8; " +
        "ALTER TABLE changes ENABLE TRIGGER changes_no_update",
    );
    const detail = new RegExp(
      `^The inclusion proof of Change 8 in the tree of 21 Changes cannot be worked out: Change 8 is missing from the database \\(.*, schema ${schema}\\), ` +
        "though the Log holds 21 Changes: its row was deleted outside the hub. `things verify` checks the Log; restore the database from a backup$",
    );
    const res = await hub.request("/log/proof/inclusion?seq=8&size=21");
    expect(res.status).toBe(500);
    expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    const damaged = (await res.json()) as { type: string; detail: string };
    expect(damaged.type).toBe("urn:hyperthings:problem:log-damaged");
    expect(damaged.detail).toMatch(detail);
    const unproved = await runThingsToEnd(["prove", "8", ...at]);
    expect(unproved).toMatchObject({ code: 3, stderr: "" });
    expect(unproved.stdout).toMatch(
      /^proof FAILED at seq 8: The inclusion proof of Change 8 .*`things verify` checks the Log/,
    );
    // Put back, so that what follows finds seq 5 altered.
    await sql("INSERT INTO changes SELECT * FROM kept_8; DROP TABLE kept_8");
    await hub.stop();
    hub = undefined;

    // And without the hub.
    const altered = await runThingsToEnd(["verify", "--db", store, "--data", dataDir, "--json"]);
    expect(altered.code).toBe(3);
    expect(JSON.parse(altered.stdout)).toMatchObject({ ok: false, seq: 5, problem: "altered-change" });
    // On a hashing thread, the same verdict: this page of 21 Changes is a short Buffer, a slice of
    // Node's shared pool, which Node 22 and 24 refuse to hand to a thread as it is.
    const alteredThreaded = await runThingsToEnd([
      "verify",
      "--db",
      store,
      "--data",
      dataDir,
      "--json",
      "--threads",
      "1",
    ]);
    expect(alteredThreaded.code).toBe(3);
    expect(JSON.parse(alteredThreaded.stdout)).toEqual(JSON.parse(altered.stdout));

    // Without a key, the command says where it looked and what to give.
    const keyless = await runThingsToEnd(["verify", "--db", store, "--data", join(dataDir, "none")]);
    expect(keyless.code).toBe(2);
    expect(keyless.stderr).toMatch(
      /^things: there is no log-key\.pem in .*none: give the hub's data directory with --data, or its public key with --key/,
    );
    // A schema with no Log in it, in one line.
    const empty = await runThingsToEnd(["verify", "--db", `${storeUrl(schema)}_none`, "--data", dataDir]);
    expect(empty.code).toBe(1);
    expect(empty.stderr).toMatch(/^things: there is no hub's Log in .*, schema \w+_none \(no changes/);
    // Nine runs of the CLI, each a process start: past the default bound on a loaded machine.
  }, 180_000);

  it("things backup of a PostgreSQL store says in one line to use pg_dump, for the store's schema", async () => {
    const target = join(dataDir, "backup");
    for (const run of [
      await runThingsToEnd(["backup", target, "--data", dataDir, "--store", store]),
      await runThingsToEnd(["backup", target, "--data", dataDir], { env: { HYPERTHINGS_STORE: store } }),
    ]) {
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(
        new RegExp(
          `^things: things backup copies the embedded SQLite store; this hub's store is PostgreSQL: back up its schema with \`pg_dump --schema=${schema} --format=custom\`.*\n$`,
        ),
      );
      expect(run.stderr.split("\n")).toHaveLength(2);
    }
  });
});
