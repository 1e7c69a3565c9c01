// `things backup DIR` against a real hub's data directory while the hub takes Changes: the copy
// ends (SQLite's backup API alone starts over at every commit of another connection, so under
// load it would never end), holds every Change acknowledged before it began, verifies as a whole
// Log under the same hub id and key, and a hub starts on it. Refusals say one line and leave
// nothing behind.
import Database from "better-sqlite3";
import {
  existsSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  renameSync,
  rmSync,
  watch,
  writeFileSync,
} from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import { minimalTd, startTestHub } from "./support/test-hub.js";
import { cleanEnvironment, runThings, runThingsToEnd, type ThingsProcess } from "./support/things-process.js";

const THING = "urn:test:backup:meter";
const dirs: string[] = [];
const hubs: ThingsProcess[] = [];

function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "hyperthings-backup-"));
  dirs.push(dir);
  return dir;
}

async function serve(data: string): Promise<{ url: string; token: string; id: string }> {
  const hub = runThings(["serve", "--port", "0", "--no-mqtt", "--data", data], cleanEnvironment());
  hubs.push(hub);
  const [, id, url] = await hub.waitFor(/Hyperthings (\S+) listening on (http:\/\/\S+)/);
  const token = readFileSync(join(data, "admin-token"), "utf8").trim();
  return { url: url as string, token, id: id as string };
}

afterAll(async () => {
  for (const hub of hubs) {
    hub.process.kill("SIGTERM");
    await hub.exited;
  }
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe("things backup", () => {
  it("copies a hub's data directory while it ingests: every acknowledged Change, verified, and a hub runs on it", async () => {
    const data = freshDir();
    const { url, token, id } = await serve(data);
    const auth = { authorization: `Bearer ${token}` };
    const put = await fetch(`${url}${thingPath(THING)}`, {
      method: "PUT",
      headers: { ...auth, "content-type": "application/td+json" },
      body: JSON.stringify(
        minimalTd({
          id: THING,
          properties: { kwh: { type: "number", forms: [{ href: "http://127.0.0.1:1/kwh" }] } },
        }),
      ),
    });
    expect(put.status).toBe(201);

    // A Log of some MiB, so that the copy takes many steps…
    for (let call = 0; call < 3; call++) {
      const reports = Array.from({ length: 10_000 }, (_, i) => ({
        kind: "reported",
        affordance: "kwh",
        value: call * 10_000 + i + 0.5,
      }));
      const response = await fetch(`${url}${thingPath(THING)}/changes`, {
        method: "POST",
        headers: { ...auth, "content-type": "application/json" },
        body: JSON.stringify(reports),
      });
      expect(response.status).toBe(201);
    }
    // …and Changes go on arriving, one commit after another, for as long as the backup runs.
    let acknowledged = 0;
    let stop = false;
    const load = (async () => {
      for (let n = 0; !stop; n++) {
        const reports = Array.from({ length: 50 }, (_, i) => ({
          kind: "reported",
          affordance: "kwh",
          value: n * 50 + i,
        }));
        const response = await fetch(`${url}${thingPath(THING)}/changes`, {
          method: "POST",
          headers: { ...auth, "content-type": "application/json" },
          body: JSON.stringify(reports),
        });
        expect(response.status).toBe(201);
        const { seqs } = (await response.json()) as { seqs: number[] };
        acknowledged = Math.max(acknowledged, ...seqs);
      }
    })();
    while (acknowledged < 32_000) await new Promise((resolve) => setTimeout(resolve, 20));
    const before = acknowledged;

    // The port the embedded broker fell back to, as a hub on a machine where 1883 is taken keeps it.
    writeFileSync(join(data, "mqtt-port"), "41883\n");
    const copy = join(freshDir(), "copy");
    const run = await runThingsToEnd(["backup", copy, "--data", data], { timeoutMs: 60_000 });
    stop = true;
    await load;
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    const [, changes] =
      /^backed up .+ to .+: ([\d,]+) Changes, 1 Thing, [\d.]+ MiB \(hyperthings\.db, hub-id, log-key\.pem, secrets\.key, admin-token, mqtt-port\)\n/.exec(
        run.stdout,
      ) ?? [];
    const copied = Number((changes ?? "0").replaceAll(",", ""));
    expect(copied).toBeGreaterThanOrEqual(before);
    expect(run.stdout).toContain(`things serve --data ${copy}`);
    expect(readdirSync(copy).sort()).toEqual([
      "admin-token",
      "hub-id",
      "hyperthings.db",
      "log-key.pem",
      "mqtt-port",
      "secrets.key",
    ]);

    // A hub on the copy: the same hub, its Log whole up to the moment of the copy.
    const restored = await serve(copy);
    expect(restored.id).toBe(id);
    expect(restored.token).toBe(token);
    const history = (await (
      await fetch(`${restored.url}${thingPath(THING)}/history?affordance=kwh&limit=1`, { headers: auth })
    ).json()) as { changes: { seq: number }[] };
    expect(history.changes[0]?.seq).toBe(copied);
    const verify = await runThingsToEnd(["verify", "--url", restored.url, "--token", token]);
    expect(verify.code).toBe(0);
    const [, verified] = /^verified (\d+) changes/.exec(verify.stdout) ?? [];
    expect(Number(verified)).toBeGreaterThanOrEqual(copied);
  });

  it("refuses a destination that is not empty or cannot be made, and a data directory with no hub, in one line, leaving nothing", async () => {
    const data = freshDir();
    await serve(data);
    const taken = freshDir();
    writeFileSync(join(taken, "notes.txt"), "mine");
    const refused = await runThingsToEnd(["backup", taken, "--data", data]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toBe(`things: ${taken} is not empty; give a new or empty directory\n`);
    expect(readdirSync(taken)).toEqual(["notes.txt"]);

    const empty = freshDir();
    const target = join(freshDir(), "never");
    const none = await runThingsToEnd(["backup", target, "--data", empty]);
    expect(none.code).toBe(1);
    expect(none.stderr).toBe(`things: no hub data in ${empty} (no hyperthings.db there)\n`);
    expect(existsSync(target)).toBe(false);

    // A data directory of a hub on PostgreSQL (a replica's): its id and keys, no database file.
    const postgresData = freshDir();
    writeFileSync(join(postgresData, "hub-id"), "urn:uuid:0b5e6f7a-0000-4000-8000-000000000001\n");
    const elsewhere = await runThingsToEnd(["backup", target, "--data", postgresData]);
    expect(elsewhere.code).toBe(1);
    expect(elsewhere.stderr).toBe(
      `things: ${postgresData} holds a hub's id and keys but no hyperthings.db: its store is PostgreSQL, then; give it with --store (or HYPERTHINGS_STORE), and this says how to back it up\n`,
    );
    expect(existsSync(target)).toBe(false);

    const same = await runThingsToEnd(["backup", data, "--data", data]);
    expect(same.code).toBe(1);
    expect(same.stderr).toBe(`things: ${data} is the data directory itself; give another\n`);
    const file = join(freshDir(), "a-file");
    writeFileSync(file, "");
    const under = await runThingsToEnd(["backup", join(file, "copy"), "--data", data]);
    expect(under.code).toBe(1);
    expect(under.stderr).toBe(
      `things: ${join(file, "copy")} cannot be made: ${file} is a file, not a directory\n`,
    );
  });

  it("keeps the MQTT credentials of a hub from before the store kept them, when that hub takes them in during the copy", async () => {
    const data = freshDir();
    const hub = await startTestHub({ dataDir: data, mqtt: false });
    await hub.stop();
    // 64 MiB more, so that the copy takes many steps and is under way when the file is taken in.
    const db = new Database(join(data, "hyperthings.db"));
    db.exec("CREATE TABLE filler (b BLOB); INSERT INTO filler VALUES (zeroblob(64 * 1024 * 1024))");
    db.close();
    const revoked = {
      username: "homie:boiler",
      kind: "homie",
      generation: 0,
      issuedAt: "2026-11-01T00:00:00.000Z",
      issuedBy: "admin",
      revokedAt: "2026-11-02T00:00:00.000Z",
      revokedBy: "admin",
      revokedBecause: "revoked by an admin",
    };
    const legacy = JSON.stringify({ format: 1, credentials: [revoked] });
    writeFileSync(join(data, "mqtt-credentials.json"), legacy);
    const destination = freshDir();
    const watcher = watch(destination);
    // A hub of this version starting meanwhile takes the file into its database (after the
    // copy's moment) and renames it.
    const takenIn = new Promise<void>((resolve) =>
      watcher.on("change", (_, name) => {
        if (!String(name).endsWith(".tmp") || !existsSync(join(data, "mqtt-credentials.json"))) return;
        renameSync(join(data, "mqtt-credentials.json"), join(data, "mqtt-credentials.json.imported"));
        resolve();
      }),
    );
    const run = await runThingsToEnd(["backup", destination, "--data", data], { timeoutMs: 60_000 });
    await takenIn;
    watcher.close();
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout).toMatch(
      /\(hyperthings\.db, hub-id, log-key\.pem, secrets\.key, admin-token, mqtt-credentials\.json\)\n/,
    );
    expect(readFileSync(join(destination, "mqtt-credentials.json"), "utf8")).toBe(legacy);
    // A hub on the copy refuses the revoked credential as the original did.
    const restored = await startTestHub({ dataDir: destination, mqtt: false });
    try {
      expect(await restored.hub.mqttCredentials.list()).toEqual([revoked]);
    } finally {
      await restored.stop();
    }
  });

  it.each([
    ["SIGINT", 130],
    ["SIGTERM", 143],
  ] as const)(
    "leaves nothing when stopped by %s during the copy, so that the next backup to the directory goes ahead",
    async (signal, code) => {
      const data = freshDir();
      const hub = await startTestHub({ dataDir: data, mqtt: false });
      await hub.stop();
      // 64 MiB more, so that the copy takes many steps (1 MiB each) and is under way when signalled.
      const db = new Database(join(data, "hyperthings.db"));
      db.exec("CREATE TABLE filler (b BLOB); INSERT INTO filler VALUES (zeroblob(64 * 1024 * 1024))");
      db.close();
      const destination = freshDir();
      const watcher = watch(destination);
      const started = new Promise<void>((resolve) =>
        watcher.on("change", (_, name) => {
          if (String(name).endsWith(".tmp")) resolve();
        }),
      );
      const copying = runThings(["backup", destination, "--data", data], cleanEnvironment());
      await started;
      watcher.close();
      copying.process.kill(signal);
      expect(await copying.exited).toBe(code);
      expect(copying.stderr()).toBe(
        `things: backup interrupted (${signal}); nothing is left in ${destination}\n`,
      );
      expect(readdirSync(destination)).toEqual([]);
      const again = await runThingsToEnd(["backup", destination, "--data", data]);
      expect(again.code).toBe(0);
    },
  );
});
