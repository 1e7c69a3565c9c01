// SqliteStore.logEntries: the Log's entries as NDJSON written by SQLite from the stored columns —
// the same Changes as changesAfter, each line its canonical JSON with the recorded leaf last.
import Database from "better-sqlite3";
import fc from "fast-check";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { LogVerifier, canonicalChangeJson, type Change } from "../../core/index.js";
import type { ChangeDraft } from "../store.js";
import { TestHlc } from "../store-conformance.js";
import { SqliteStore } from "./sqlite-store.js";

const clock = new TestHlc();

function linesOf(body: Uint8Array): string[] {
  const text = new TextDecoder().decode(body);
  expect(text === "" || text.endsWith("\n")).toBe(true);
  return text === "" ? [] : text.slice(0, -1).split("\n");
}

/** The line the hub is meant to serve for a Change: its canonical JSON, then its leaf. */
function canonicalLine(change: Change): string {
  const { leaf, ...content } = change;
  return `${canonicalChangeJson(content).slice(0, -1)},"leaf":"${leaf}"}`;
}

describe("SqliteStore.logEntries", () => {
  let dir: string;
  let path: string;
  let store: SqliteStore;

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "hyperthings-entries-"));
    path = join(dir, "hyperthings.db");
    store = new SqliteStore({ path });
  });
  afterEach(async () => {
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  const drafts = (): ChangeDraft[] => [
    {
      thing: "urn:t:1",
      affordance: "temperature",
      kind: "reported",
      value: 21.5,
      cause: { actor: "a", via: "http" },
      hlc: clock.next(),
    },
    {
      thing: "urn:t:1",
      affordance: "temperature",
      kind: "reported",
      value: -0.000001,
      at: "2026-01-01T00:00:00Z",
      cause: { actor: "a" },
      hlc: clock.next(),
    },
    {
      thing: 'urn:t:ü"\\\n',
      affordance: "naïve \u2028 \u007f \u0001",
      kind: "emitted",
      value: ["x", 1e21, null, true, { a: [] }],
      cause: { actor: "ü", via: "mqtt" },
      hlc: clock.next(),
    },
    {
      thing: "urn:t:2",
      kind: "linked",
      value: null,
      cause: { actor: "b", via: "cli", release: "r1" },
      hlc: clock.next(),
    },
    { thing: "urn:t:2", kind: "removed", cause: { actor: "b" }, hlc: clock.next() },
  ];

  it("serves the Changes of changesAfter, each line their canonical JSON with the recorded leaf last", async () => {
    await store.append(drafts());
    const changes = await store.changesAfter(0, 100);
    const page = await store.logEntries(0, 100);
    expect(page).toMatchObject({ count: 5, last: 5 });
    const lines = linesOf(page.body);
    expect(lines.map((l) => JSON.parse(l) as Change)).toStrictEqual(changes);
    // The texts are as stored (JSON.stringify's): canonical, except a cause whose members were
    // not written in sorted order ({actor, via, release}), which verifiers then parse.
    expect(lines.filter((l, i) => l !== canonicalLine(changes[i] as Change))).toStrictEqual([lines[3]]);
    expect(lines[3]).toContain('"cause":{"actor":"b","via":"cli","release":"r1"}');
  });

  it("pages by seq, and gives an empty page past the end", async () => {
    await store.append(drafts());
    expect(await store.logEntries(1, 2)).toMatchObject({ count: 2, last: 3 });
    expect(linesOf((await store.logEntries(1, 2)).body).map((l) => (JSON.parse(l) as Change).seq)).toEqual([
      2, 3,
    ]);
    expect(await store.logEntries(4, 10)).toMatchObject({ count: 1, last: 5 });
    const empty = await store.logEntries(5, 10);
    expect(empty).toMatchObject({ count: 0, last: 5 });
    expect(empty.body.length).toBe(0);
  });

  it("writes any string and value as JSON that reads back as the Change (property)", async () => {
    // No lone surrogates: the database holds UTF-8.
    const text = fc.string({ unit: "grapheme", maxLength: 12 });
    const draft = fc.record(
      {
        thing: text,
        affordance: text,
        value: fc.jsonValue({ maxDepth: 2 }).filter((v) => !JSON.stringify(v).includes("\\ud")),
        at: text,
        actor: text,
      },
      { requiredKeys: ["thing", "actor"] },
    );
    await fc.assert(
      fc.asyncProperty(fc.array(draft, { minLength: 1, maxLength: 5 }), async (batch) => {
        const before = await store.lastSeq();
        await store.append(
          batch.map(({ actor, ...d }) => ({ ...d, kind: "reported", cause: { actor }, hlc: clock.next() })),
        );
        const changes = await store.changesAfter(before, 100);
        const lines = linesOf((await store.logEntries(before, 100)).body);
        expect(lines.map((l) => JSON.parse(l) as Change)).toStrictEqual(changes);
      }),
      { numRuns: 60 },
    );
  });

  it("writes a row altered in the database as it now is, so that its leaf no longer matches", async () => {
    await store.append(drafts());
    await store.close();
    const db = new Database(path);
    db.exec("DROP TRIGGER changes_no_update");
    db.prepare("UPDATE changes SET value = '999' WHERE seq = 1").run();
    db.prepare("UPDATE changes SET cause = 'not json' WHERE seq = 3").run();
    db.close();
    store = new SqliteStore({ path });
    const body = (await store.logEntries(0, 10)).body;
    const lines = linesOf(body);
    expect(JSON.parse(lines[0] ?? "")).toMatchObject({ seq: 1, value: 999 });
    expect(() => JSON.parse(lines[2] ?? "") as unknown).toThrow();
    const verifier = new LogVerifier(
      [],
      (await import("node:crypto")).generateKeyPairSync("ed25519").publicKey,
    );
    let start = 0;
    let failure;
    while (failure === undefined && start < body.length) {
      const end = body.indexOf(0x0a, start);
      failure = verifier.pushEntry(body, start, end);
      start = end + 1;
    }
    expect(verifier.firstLeafMismatch).toMatchObject({ seq: 1 });
    expect(failure).toMatchObject({ ok: false, problem: "malformed-entry", firstBadSeq: 3 });
  });
});
