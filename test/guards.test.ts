// The append-only triggers of a hub's database, dropped or replaced by someone who could write the
// file while the hub was stopped: the next `things serve` puts them back and says so.
import Database from "better-sqlite3";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import { minimalTd } from "./support/test-hub.js";
import { cleanEnvironment, runThings, runThingsToEnd, type ThingsProcess } from "./support/things-process.js";

const THING = "urn:test:guards:meter";
const dirs: string[] = [];
const hubs: ThingsProcess[] = [];

async function serve(data: string): Promise<{ hub: ThingsProcess; url: string; token: string }> {
  const hub = runThings(
    ["serve", "--port", "0", "--host", "127.0.0.1", "--no-mqtt", "--no-observe", "--data", data],
    cleanEnvironment({ HYPERTHINGS_LOG_LEVEL: "warn" }),
  );
  hubs.push(hub);
  const [, url] = await hub.waitFor(/listening on (http:\/\/\S+)/);
  const token = readFileSync(join(data, "admin-token"), "utf8").trim();
  return { hub, url: url as string, token };
}

async function stop(hub: ThingsProcess): Promise<void> {
  hub.process.kill("SIGTERM");
  expect(await hub.exited).toBe(0);
}

afterAll(async () => {
  for (const hub of hubs) {
    if (hub.process.exitCode === null) hub.process.kill("SIGKILL");
  }
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

describe("the append-only triggers", () => {
  it("are put back by the next start, which names them; verify then tells whether the Log was altered", async () => {
    const data = mkdtempSync(join(tmpdir(), "hyperthings-guards-"));
    dirs.push(data);
    const first = await serve(data);
    const put = await fetch(`${first.url}${thingPath(THING)}`, {
      method: "PUT",
      headers: { authorization: `Bearer ${first.token}`, "content-type": "application/td+json" },
      body: JSON.stringify(
        minimalTd({
          id: THING,
          properties: { kwh: { type: "number", forms: [{ href: "http://127.0.0.1:1/kwh" }] } },
        }),
      ),
    });
    expect(put.status).toBe(201);
    await stop(first.hub);
    expect(first.hub.stdout() + first.hub.stderr()).not.toContain("append-only triggers");

    // Dropped while the hub was stopped, and a value rewritten behind the Log's back.
    const file = new Database(join(data, "hyperthings.db"));
    try {
      file.exec("DROP TRIGGER changes_no_update");
      file.exec("DROP TRIGGER changes_no_delete");
      file.exec("CREATE TRIGGER changes_no_delete BEFORE DELETE ON changes WHEN 0 BEGIN SELECT 1; END");
      expect(
        file.prepare('UPDATE changes SET cause = \'{"actor":"mallory"}\' WHERE seq = 1').run().changes,
      ).toBe(1);
    } finally {
      file.close();
    }

    const second = await serve(data);
    const said = second.hub.stdout() + second.hub.stderr();
    expect(said).toContain(
      "the database's append-only triggers were changed outside the hub and are put back: changes_no_update (missing), changes_no_delete (altered)",
    );
    // Back in force, from any connection, while the hub runs.
    const again = new Database(join(data, "hyperthings.db"));
    try {
      expect(() => again.prepare("UPDATE changes SET value = '1' WHERE seq = 1").run()).toThrow(
        "the log is append-only",
      );
      expect(() => again.prepare("DELETE FROM changes").run()).toThrow("the log is append-only");
    } finally {
      again.close();
    }
    await stop(second.hub);
    // Putting the triggers back does not hide what was done meanwhile.
    const verify = await runThingsToEnd(["verify", "--db", join(data, "hyperthings.db"), "--json"]);
    expect(verify.code).toBe(3);
    expect(JSON.parse(verify.stdout)).toMatchObject({ ok: false, seq: 1, problem: "altered-change" });
    // And the start after that has nothing to say.
    const third = await serve(data);
    await stop(third.hub);
    expect(third.hub.stdout() + third.hub.stderr()).not.toContain("append-only triggers");
  });
});
