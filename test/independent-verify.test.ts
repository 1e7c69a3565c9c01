// End-to-end: a third party's verifier (test/support/independent-verifier.ts, written from
// docs/changes.md alone) checks a real hub's Log over HTTP and a `things export` file: every leaf,
// the signed roots, inclusion and consistency proofs; and refuses a tampered, reordered or forged one.
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  canonicalJson,
  leafHash,
  merkleTreeHash,
  verifyCheckpointSignature,
  verifyConsistency,
  verifyExport,
  verifyInclusion,
  type SignedCheckpoint,
} from "./support/independent-verifier.js";
import { putTd, startTestHub, type TestHub } from "./support/test-hub.js";
import { runThingsToEnd } from "./support/things-process.js";

const SENSOR = "urn:test:verify:sensor";
const COUNTER = "urn:test:verify:counter";
const hex = (h: string): Buffer => Buffer.from(h, "hex");

describe("an independent verifier, from the docs alone", () => {
  let hub: TestHub;
  let device: Server;
  let key: string;
  let work: string;
  /** Checkpoints signed after the first and the second round of Changes. */
  let first: SignedCheckpoint;
  let second: SignedCheckpoint;

  async function get<T>(path: string): Promise<T> {
    const res = await hub.request(path, { auth: false });
    expect(res.status, path).toBe(200);
    return (await res.json()) as T;
  }

  /** `things export --since` the time of Change `seq`, into `name` in the work folder: its text. */
  async function exportFrom(seq: number, name: string): Promise<string> {
    const since = (await get<{ hlc: string }>(`/changes/${seq}`)).hlc;
    const wall = new Date(parseInt(since.slice(0, 12), 16)).toISOString();
    const out = join(work, name);
    const run = await runThingsToEnd([
      "export",
      "--since",
      wall,
      "--out",
      out,
      "--url",
      hub.url,
      "--token",
      hub.token,
    ]);
    expect(run.code, run.stderr).toBe(0);
    return readFileSync(out, "utf8");
  }

  /** Posts a raw JSON body of reports (so that -0, 1e21 and escapes reach the hub as written). */
  async function report(id: string, body: string): Promise<number[]> {
    const res = await hub.request(`/things/${encodeURIComponent(id)}/changes`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body,
    });
    expect(res.status, await res.clone().text()).toBe(201);
    return ((await res.json()) as { seqs: number[] }).seqs;
  }

  async function entries(): Promise<Array<Record<string, unknown>>> {
    const res = await hub.request("/log/entries?limit=100000", { auth: false });
    expect(res.status).toBe(200);
    return (await res.text())
      .split("\n")
      .filter((l) => l !== "")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
  }

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "hyperthings-independent-"));
    device = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://device");
      res.setHeader("content-type", "application/json");
      const step = Number(url.searchParams.get("step"));
      // Step 13 answers a string JSON can write (as an escape) and Unicode cannot: a lone surrogate.
      res.end(step === 13 ? '{"step":13,"note":"\\ud800"}' : JSON.stringify({ step, note: "ok \u2713" }));
    });
    device.listen(0, "127.0.0.1");
    await once(device, "listening");
    hub = await startTestHub();
    key = (await get<{ publicKey: string }>("/log/key")).publicKey;

    // Described TDs: one with a unicode title and nested members out of order.
    await putTd(hub, {
      "@context": "https://www.w3.org/2022/wot/td/v1.1",
      id: SENSOR,
      title: 'Capteur \u00e9t\u00e9 \u{1F321}\uFE0F "quoted" \\ back',
      description: "tab\there, newline\nthere, bell \u0007",
      securityDefinitions: { nosec_sc: { scheme: "nosec" } },
      security: "nosec_sc",
      properties: {
        reading: { forms: [{ href: "http://127.0.0.1:9/reading" }] },
        config: { type: "object", forms: [{ href: "http://127.0.0.1:9/config" }] },
      },
      events: { alarm: { forms: [{ href: "http://127.0.0.1:9/alarm" }] } },
    });
    await putTd(hub, {
      "@context": "https://www.w3.org/2022/wot/td/v1.1",
      id: COUNTER,
      title: "Counter",
      base: `http://127.0.0.1:${(device.address() as AddressInfo).port}/`,
      securityDefinitions: { nosec_sc: { scheme: "nosec" } },
      security: "nosec_sc",
      actions: {
        increment: {
          output: { type: "object" },
          uriVariables: { step: { type: "integer", minimum: 1 } },
          forms: [{ href: "increment{?step}" }],
        },
      },
    });
    // Values of many shapes, in the JSON text a device would send. Floats past 2^53 whose canonical
    // form is all digits (12345678901234567000, 9007199254740992) are written with an exponent: as
    // integers, the HTTP API refuses them rather than record a rounded value (docs/api.md).
    await report(
      SENSOR,
      `[{"kind":"reported","affordance":"reading","value":1e21},
        {"kind":"reported","affordance":"reading","value":-0,"at":"2026-12-06T10:00:00.5+01:00"},
        {"kind":"reported","affordance":"reading","value":0.1},
        {"kind":"reported","affordance":"reading","value":1.2345678901234567890e19},
        {"kind":"reported","affordance":"reading","value":9.007199254740993e15},
        {"kind":"reported","affordance":"reading","value":1e-7},
        {"kind":"reported","affordance":"reading","value":-1.5e-300},
        {"kind":"reported","affordance":"reading","value":"caf\\u00e9 \\ud83d\\ude00 \\u001f \\"q\\" \\\\ \\/ \\u2028"},
        {"kind":"reported","affordance":"reading","value":null,"at":"2026-12-06t09:00:00z"}]`,
    );
    await report(
      SENSOR,
      `[{"kind":"reported","affordance":"config","value":{"b":1,"a":{"z":"\\u00e9","\\uff61":1,"\\ud83d\\ude00":2,"\\u00e9":3,"Z":4,"":5,"aa":6,"a":7},"10":true,"9":false,"arr":[{"y":1,"x":[]},{}]}},
        {"kind":"emitted","affordance":"alarm","value":{"level":"high","code":3}},
        {"kind":"emitted","affordance":"alarm"}]`,
    );
    // A command: its Changes carry a cause with uriVariables (and a correlation id).
    const invoked = await hub.request(`/things/${encodeURIComponent(COUNTER)}/actions/increment?step=3`, {
      method: "POST",
    });
    expect(invoked.status).toBe(200);
    await hub.hub.commands?.recorded(COUNTER);
    first = await get<SignedCheckpoint>("/log/checkpoint");

    await report(SENSOR, `{"kind":"reported","affordance":"reading","value":[1,"two",{"three":3}]}`);
    for (let i = 0; i < 20; i++)
      await report(SENSOR, `{"kind":"reported","affordance":"reading","value":${i}}`);
    second = await get<SignedCheckpoint>("/log/checkpoint");
  });

  afterAll(async () => {
    await hub?.stop();
    device?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it("recomputes every Change's leaf hash from its canonical JSON", async () => {
    const lines = await entries();
    expect(lines.length).toBe(second.size);
    const kinds = new Set(lines.map((c) => c.kind));
    for (const kind of ["described", "reported", "emitted", "invoked", "completed"])
      expect(kinds).toContain(kind);
    expect(lines.some((c) => (c.cause as { uriVariables?: unknown }).uriVariables !== undefined)).toBe(true);
    for (const change of lines) {
      expect(leafHash(change).toString("hex"), `seq ${String(change.seq)}`).toBe(change.leaf);
      // The same Change as /changes/{seq} gives it hashes the same.
      const one = await get<Record<string, unknown>>(`/changes/${String(change.seq)}`);
      expect(leafHash(one).toString("hex"), `/changes/${String(change.seq)}`).toBe(change.leaf);
    }
  });

  it("writes RFC 8785's forms for the tricky values", () => {
    expect(canonicalJson({ b: [1e21, -0, 0.1, 1e-7], a: "\u2028\u001f" })).toBe(
      '{"a":"\u2028\\u001f","b":[1e+21,0,0.1,1e-7]}',
    );
    expect(canonicalJson({ "\uff61": 1, "\u{1F600}": 2, "\u00e9": 3 })).toBe('{"é":3,"😀":2,"｡":1}');
    expect(() => canonicalJson("\ud800")).toThrow(/lone surrogate/);
  });

  it("finds the signed roots in the leaves, under the hub's key", async () => {
    const leaves = (await entries()).map((c) => hex(c.leaf as string));
    const checkpoints = await get<SignedCheckpoint[]>("/log/checkpoints");
    expect(checkpoints.map((c) => c.size)).toEqual(expect.arrayContaining([first.size, second.size]));
    for (const cp of checkpoints) {
      expect(verifyCheckpointSignature(cp, key), `checkpoint ${cp.size}`).toBe(true);
      expect(merkleTreeHash(leaves.slice(0, cp.size)).toString("hex"), `root ${cp.size}`).toBe(cp.root);
    }
  });

  it("checks inclusion proofs of several seqs, against the latest and an earlier checkpoint", async () => {
    for (const seq of [1, 2, 7, first.size, first.size + 1, second.size]) {
      const p = await get<{ seq: number; size: number; leaf: string; root: string; proof: string[] }>(
        `/log/proof/inclusion?seq=${seq}`,
      );
      expect(p.size).toBe(second.size);
      expect(p.root).toBe(second.root);
      const change = await get<Record<string, unknown>>(`/changes/${seq}`);
      expect(
        verifyInclusion(seq - 1, p.size, leafHash(change), p.proof.map(hex), hex(second.root)),
        `seq ${seq}`,
      ).toBe(true);
    }
    for (const seq of [1, 3, first.size]) {
      const p = await get<{ proof: string[]; leaf: string }>(
        `/log/proof/inclusion?seq=${seq}&size=${first.size}`,
      );
      expect(
        verifyInclusion(seq - 1, first.size, hex(p.leaf), p.proof.map(hex), hex(first.root)),
        `seq ${seq}`,
      ).toBe(true);
    }
  });

  it("checks the consistency proof between two signed checkpoints", async () => {
    const p = await get<{ fromRoot: string; toRoot: string; proof: string[] }>(
      `/log/proof/consistency?from=${first.size}&to=${second.size}`,
    );
    expect(p.fromRoot).toBe(first.root);
    expect(p.toRoot).toBe(second.root);
    const proof = p.proof.map(hex);
    expect(verifyConsistency(first.size, second.size, proof, hex(first.root), hex(second.root))).toBe(true);
    // Every pair of sizes, not only the signed ones.
    const leaves = (await entries()).map((c) => hex(c.leaf as string));
    for (let m = 1; m <= second.size; m += 3) {
      const q = await get<{ proof: string[] }>(`/log/proof/consistency?from=${m}&to=${second.size}`);
      const root1 = merkleTreeHash(leaves.slice(0, m));
      expect(verifyConsistency(m, second.size, q.proof.map(hex), root1, hex(second.root)), `from ${m}`).toBe(
        true,
      );
    }
  });

  it("verifies a `things export` run that starts before an earlier checkpoint's end", async () => {
    const text = await exportFrom(3, "run.ndjson");
    const verdict = verifyExport(text, key);
    expect(verdict).toMatchObject({ ok: true, from: 3 });
  });

  it("refuses a lone surrogate, which RFC 8785 and UTF-8 have no form for, recording nothing", async () => {
    const before = (await entries()).length;
    const post = (body: string) =>
      hub.request(`/things/${encodeURIComponent(SENSOR)}/changes`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
    const value = await post('{"kind":"reported","affordance":"reading","value":"x\\ud800"}');
    expect(value.status).toBe(400);
    expect(((await value.json()) as { detail: string }).detail).toBe(
      "The JSON is a string with a lone surrogate at /value",
    );
    const name = await post('{"kind":"reported","affordance":"config","value":{"a":{"\\udc00":1}}}');
    expect(name.status).toBe(400);
    expect(((await name.json()) as { detail: string }).detail).toMatch(
      /member name with a lone surrogate at \/value\/a\//,
    );
    const td = await hub.request(`/things/${encodeURIComponent("urn:test:verify:lone")}`, {
      method: "PUT",
      headers: { "content-type": "application/td+json" },
      body: '{"@context":"https://www.w3.org/2022/wot/td/v1.1","title":"\\udc00","securityDefinitions":{"n":{"scheme":"nosec"}},"security":"n"}',
    });
    expect(td.status).toBe(400);
    expect((await entries()).length).toBe(before);
  });

  it("records a Thing's answer with a lone surrogate as a failure of the Thing (502), not the client's", async () => {
    const before = (await entries()).length;
    const invoked = await hub.request(`/things/${encodeURIComponent(COUNTER)}/actions/increment?step=13`, {
      method: "POST",
    });
    expect(invoked.status).toBe(502);
    expect(((await invoked.json()) as { detail: string }).detail).toMatch(
      /the Thing answered a value the Log cannot hold: \/note is a string with a lone surrogate/,
    );
    await hub.hub.commands?.recorded(COUNTER);
    const recorded = (await entries()).slice(before);
    expect(recorded.map((c) => c.kind)).toEqual(["invoked", "failed"]);
    expect(recorded[1]?.value).toMatchObject({ reason: "invalid" });
    for (const change of recorded) expect(leafHash(change).toString("hex")).toBe(change.leaf);
  });

  describe("refuses what was altered", () => {
    let text: string;

    beforeAll(async () => {
      text = await exportFrom(first.size + 1, "later.ndjson");
    });

    function lines(): Array<Record<string, unknown>> {
      return text
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l) as Record<string, unknown>);
    }
    const write = (records: Array<Record<string, unknown>>): string =>
      `${records.map((r) => JSON.stringify(r)).join("\n")}\n`;

    it("accepts the file as exported, with a consistency proof from the earlier checkpoint", () => {
      const verdict = verifyExport(text, key);
      expect(verdict).toMatchObject({ ok: true });
      expect((verdict as { to: number }).to).toBeGreaterThanOrEqual(second.size);
      const trailer = lines().at(-1) as { proofs: { consistency?: { checkpoint: SignedCheckpoint } } };
      expect(trailer.proofs.consistency?.checkpoint.size).toBeLessThan(lines()[0]?.from as number);
    });

    it("a tampered value", () => {
      const records = lines();
      const change = (records[2] as { change: Record<string, unknown> }).change;
      change.value = 42;
      expect(verifyExport(write(records), key)).toMatchObject({
        ok: false,
        reason: /does not hash to its leaf/,
      });
      // Its leaf recomputed too: only the signed root catches it.
      change.leaf = leafHash(change).toString("hex");
      expect(verifyExport(write(records), key)).toMatchObject({ ok: false, reason: /signed root/ });
    });

    it("a reordered pair", () => {
      const records = lines();
      const [a, b] = [records[2] as Record<string, unknown>, records[3] as Record<string, unknown>];
      records[2] = b;
      records[3] = a;
      expect(verifyExport(write(records), key)).toMatchObject({ ok: false, reason: /holds seq/ });
      // Renumbered to look in order (and leaves recomputed): the root still tells.
      const [ca, cb] = [
        (a as { change: Record<string, unknown> }).change,
        (b as { change: Record<string, unknown> }).change,
      ];
      [ca.seq, cb.seq] = [cb.seq, ca.seq];
      ca.leaf = leafHash(ca).toString("hex");
      cb.leaf = leafHash(cb).toString("hex");
      expect(verifyExport(write(records), key)).toMatchObject({ ok: false, reason: /signed root/ });
    });

    it("a forged signature", () => {
      const records = lines();
      const cp = (records.at(-1) as { checkpoint: SignedCheckpoint }).checkpoint;
      const sig = Buffer.from(cp.signature, "base64");
      sig[5] = (sig[5] as number) ^ 1;
      cp.signature = sig.toString("base64");
      expect(verifyExport(write(records), key)).toMatchObject({ ok: false, reason: /signature/ });
      expect(verifyCheckpointSignature({ ...second, size: second.size + 1 }, key)).toBe(false);
      expect(verifyCheckpointSignature({ ...second, time: new Date().toISOString() }, key)).toBe(false);
    });
  });
});
