// The Log's tamper evidence over HTTP, checked as an outside verifier would: signed checkpoints
// against the hub's key, roots and leaves recomputed from /log/entries, RFC 9162 inclusion and
// consistency proofs, checkpoints every N Changes, a restart, and an altered database row.
import Database from "better-sqlite3";
import fc from "fast-check";
import { generateKeyPairSync } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { thingPath } from "../src/api/index.js";
import {
  LogVerifier,
  changeLeafHash,
  changeTime,
  hashFromHex,
  hashToHex,
  rootHash,
  verifyCheckpoint,
  verifyConsistency,
  verifyInclusion,
  type Change,
  type Checkpoint,
  type LogVerification,
} from "../src/core/index.js";
import { minimalTd, startTestHub, type TestHub } from "./support/test-hub.js";
import { runThingsToEnd } from "./support/things-process.js";

interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: Array<{ pointer: string; detail: string }>;
}

interface LogKey {
  origin: string;
  algorithm: string;
  publicKey: string;
}

interface InclusionProof {
  seq: number;
  size: number;
  leaf: string;
  root: string;
  proof: string[];
  checkpoint?: Checkpoint;
}

interface InclusionProofs {
  size: number;
  root: string;
  proofs: Array<{ seq: number; leaf: string; proof: string[] }>;
  checkpoint?: Checkpoint;
}

interface ConsistencyProof {
  from: number;
  to: number;
  fromRoot: string;
  toRoot: string;
  proof: string[];
}

/** Wall time that moves only when a test moves it. */
class ManualClock {
  constructor(public now: number) {}
  readonly read = (): Date => new Date(this.now);
  advance(ms: number): number {
    this.now += ms;
    return this.now;
  }
}

const iso = (ms: number): string => new Date(ms).toISOString();
const FORMS = [{ href: "http://meter.example/p" }];
const NEVER_MS = 86_400_000;

function meterTd(id: string): Record<string, unknown> {
  return minimalTd({
    id,
    title: "Meter",
    properties: {
      power: { type: "number", forms: FORMS },
      label: { type: "string", forms: FORMS },
    },
  });
}

async function put(hub: TestHub, id: string, td: unknown): Promise<void> {
  const res = await hub.request(thingPath(id), {
    method: "PUT",
    headers: { "content-type": "application/td+json" },
    body: JSON.stringify(td),
  });
  expect([201, 204]).toContain(res.status);
}

async function report(hub: TestHub, id: string, body: unknown): Promise<number[]> {
  const res = await hub.request(`${thingPath(id)}/changes`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  const answer = (await res.json()) as { seqs: number[] };
  expect(res.status, JSON.stringify(answer)).toBe(201);
  return answer.seqs;
}

async function getJson<T>(hub: TestHub, path: string): Promise<T> {
  const res = await hub.request(path);
  const body = (await res.json()) as T;
  expect(res.status, `${path}: ${JSON.stringify(body)}`).toBe(200);
  return body;
}

async function expectProblem(res: Response, status: number): Promise<Problem> {
  const problem = (await res.json()) as Problem;
  expect(res.status, JSON.stringify(problem)).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json\b/);
  expect(problem.status).toBe(status);
  expect(problem.detail.length).toBeGreaterThan(0);
  return problem;
}

function pointersOf(problem: Problem): string[] {
  return (problem.errors ?? []).map((e) => e.pointer);
}

async function lastSeq(hub: TestHub): Promise<number> {
  return (await getJson<{ lastSeq: number }>(hub, "/health")).lastSeq;
}

/** The whole Log from /log/entries (NDJSON), a page at a time, following Link rel="next". */
async function entries(hub: TestHub, pageSize = 7): Promise<Change[]> {
  const all: Change[] = [];
  let next: string | undefined = `/log/entries?limit=${pageSize}`;
  while (next !== undefined) {
    const res = await hub.request(next);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/x-ndjson\b/);
    const text = await res.text();
    const page = text
      .split("\n")
      .filter((line) => line !== "")
      .map((line) => JSON.parse(line) as Change);
    expect(page.length).toBeLessThanOrEqual(pageSize);
    all.push(...page);
    const link = res.headers.get("link");
    next = link === null ? undefined : /^<([^>]+)>; rel="next"$/.exec(link)?.[1];
    if (link !== null) expect(next).toBe(`/log/entries?after=${page.at(-1)?.seq}&limit=${pageSize}`);
  }
  return all;
}

async function allCheckpoints(hub: TestHub): Promise<Checkpoint[]> {
  return getJson<Checkpoint[]>(hub, "/log/checkpoints?limit=100000");
}

/** Verifies the Log as fetched over HTTP against its checkpoints, as a third party would. */
async function verifyOverHttp(hub: TestHub): Promise<LogVerification> {
  const key = await getJson<LogKey>(hub, "/log/key");
  const verifier = new LogVerifier(await allCheckpoints(hub), key.publicKey, { origin: key.origin });
  for (const change of await entries(hub, 50)) {
    const failure = verifier.push(change);
    if (failure) return failure;
  }
  return verifier.end();
}

/** The same hash with one bit changed. */
function flipped(hex: string): string {
  const bytes = Buffer.from(hex, "hex");
  bytes[bytes.length - 1] = (bytes[bytes.length - 1] ?? 0) ^ 0x01;
  return bytes.toString("hex");
}

function inclusionHolds(
  p: { leaf: string; root: string; proof: string[] },
  seq: number,
  size: number,
): boolean {
  return verifyInclusion(
    hashFromHex(p.leaf),
    seq - 1,
    size,
    p.proof.map((h) => hashFromHex(h)),
    hashFromHex(p.root),
  );
}

function consistencyHolds(
  from: number,
  to: number,
  proof: string[],
  fromRoot: string,
  toRoot: string,
): boolean {
  return verifyConsistency(
    from,
    to,
    proof.map((h) => hashFromHex(h)),
    hashFromHex(fromRoot),
    hashFromHex(toRoot),
  );
}

describe("the Log's key, checkpoints, entries and proofs", () => {
  const EVERY = 5;
  const clock = new ManualClock(Date.parse("2030-05-01T00:00:00.000Z"));
  let hub: TestHub;
  let key: LogKey;
  const meter = "urn:example:log:meter";
  /** The time of the clock when each seq was recorded. */
  const times: number[] = [];
  let log: Change[] = [];
  let leaves: Uint8Array[] = [];

  beforeAll(async () => {
    hub = await startTestHub(
      { checkpointEveryChanges: EVERY, checkpointEveryMs: NEVER_MS },
      {},
      { clock: clock.read },
    );
  });
  afterAll(async () => {
    await hub.stop();
  });

  it("serves its Ed25519 public key as PEM, named by the hub's id", async () => {
    key = await getJson<LogKey>(hub, "/log/key");
    const health = await getJson<{ hub: string }>(hub, "/health");
    expect(key).toEqual({
      origin: health.hub,
      algorithm: "Ed25519",
      publicKey: expect.stringMatching(
        /^-----BEGIN PUBLIC KEY-----\n[\s\S]+\n-----END PUBLIC KEY-----\n$/,
      ) as unknown,
    });
  });

  it("has no checkpoint (204), no entries and no proofs while the Log is empty", async () => {
    const res = await hub.request("/log/checkpoint");
    expect(res.status).toBe(204);
    expect(await allCheckpoints(hub)).toEqual([]);
    expect(await entries(hub)).toEqual([]);
    await expectProblem(await hub.request("/log/proof/inclusion?seq=1"), 400);
  });

  it(`signs a checkpoint every ${EVERY} Changes, each at the hub's clock when it was due`, async () => {
    clock.advance(1000);
    times[1] = clock.now;
    await put(hub, meter, meterTd(meter));
    for (let seq = 2; seq <= 4 * EVERY; seq++) {
      times[seq] = clock.advance(1000);
      expect(await report(hub, meter, { kind: "reported", affordance: "power", value: seq })).toEqual([seq]);
    }
    // Asking for the latest waits for a checkpoint being signed; it signs none here, all are covered.
    const latest = await getJson<Checkpoint>(hub, "/log/checkpoint");
    expect(latest.size).toBe(4 * EVERY);
    const checkpoints = await allCheckpoints(hub);
    expect(checkpoints.map((c) => [c.size, c.time])).toEqual(
      [1, 2, 3, 4].map((k) => [k * EVERY, iso(times[k * EVERY] ?? 0)]),
    );
    expect(checkpoints.at(-1)).toEqual(latest);
    for (const checkpoint of checkpoints) {
      expect(verifyCheckpoint(checkpoint, key.publicKey, { origin: key.origin }).size).toBe(checkpoint.size);
    }
  });

  it("lists checkpoints after a size, a page at a time", async () => {
    const sizes = (path: string) => getJson<Checkpoint[]>(hub, path).then((cs) => cs.map((c) => c.size));
    expect(await sizes("/log/checkpoints?after=10")).toEqual([15, 20]);
    expect(await sizes("/log/checkpoints?after=9&limit=1")).toEqual([10]);
    expect(await sizes("/log/checkpoints?after=20")).toEqual([]);
    // A full page links to the next one, as /log/entries does; the last one, not full, to none.
    const full = await hub.request("/log/checkpoints?after=9&limit=2");
    expect(full.headers.get("link")).toBe('</log/checkpoints?after=15&limit=2>; rel="next"');
    const rest = await hub.request("/log/checkpoints?after=15&limit=2");
    expect(((await rest.json()) as Checkpoint[]).map((c) => c.size)).toEqual([20]);
    expect(rest.headers.get("link")).toBeNull();
    await expectProblem(await hub.request("/log/checkpoints?after=-1"), 400);
    await expectProblem(await hub.request("/log/checkpoints?limit=0"), 400);
  });

  it("refuses an `after` past the end of the Log (400, pointer /query/after), for entries and checkpoints", async () => {
    const last = await hub.hub.store.lastSeq();
    for (const path of [`/log/entries?after=${last + 1}`, `/log/checkpoints?after=${last + 1}`]) {
      const problem = await expectProblem(await hub.request(path), 400);
      expect(
        problem.errors?.map((e) => e.pointer),
        path,
      ).toEqual(["/query/after"]);
      expect(problem.detail).toContain(`past the end of the Log (${last} Changes)`);
    }
    // At the end itself: nothing after it yet, as a tail of the Log polls.
    const tail = await hub.request(`/log/entries?after=${last}`);
    expect(tail.status).toBe(200);
    expect(await tail.text()).toBe("");
  });

  it("covers on demand what committed while another checkpoint was being signed", async () => {
    const { notary, store } = hub.hub;
    // A slow disk: the first checkpoint's write waits until released.
    const addCheckpoint = store.addCheckpoint.bind(store);
    let release = (): void => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    store.addCheckpoint = async (checkpoint) => {
      await released;
      return addCheckpoint(checkpoint);
    };
    try {
      clock.advance(1000);
      await report(hub, meter, [{ kind: "reported", affordance: "power", value: 1 }]);
      const first = notary.checkpoint();
      // A Change commits after the first read the Log's head…
      await new Promise((resolve) => setImmediate(resolve));
      await report(hub, meter, [{ kind: "reported", affordance: "power", value: 2 }]);
      const size = await lastSeq(hub);
      // …so the one asked for now must not be that first one.
      const covering = notary.checkpoint();
      release();
      expect((await first)?.size).toBe(size - 1);
      expect((await covering)?.size).toBe(size);
    } finally {
      store.addCheckpoint = addCheckpoint;
      release();
    }
  });

  it("signs the latest checkpoint on demand, and its root is that of the leaves recomputed from /log/entries", async () => {
    // Batches of several sizes: a checkpoint then covers everything appended with the batch.
    for (const n of [3, 1, 9, 2, 17, 4]) {
      clock.advance(1000);
      await report(
        hub,
        meter,
        Array.from({ length: n }, (_, i) => ({
          kind: "reported",
          affordance: i % 2 ? "label" : "power",
          value: i % 2 ? `l${i}` : i,
        })),
      );
    }
    const size = await lastSeq(hub);
    const checkpoint = await getJson<Checkpoint>(hub, "/log/checkpoint");
    expect(checkpoint.size).toBe(size);
    expect(checkpoint.origin).toBe(key.origin);
    const verified = verifyCheckpoint(checkpoint, key.publicKey, { origin: key.origin });
    expect(hashToHex(verified.root)).toBe(checkpoint.root);

    log = await entries(hub);
    expect(log.map((c) => c.seq)).toEqual(Array.from({ length: size }, (_, i) => i + 1));
    leaves = log.map((c) => changeLeafHash(c));
    for (const [i, change] of log.entries())
      expect(change.leaf, `seq ${change.seq}`).toBe(hashToHex(leaves[i] ?? new Uint8Array()));
    expect(hashToHex(rootHash(leaves))).toBe(checkpoint.root);
    // The entries are the Changes the feed serves.
    expect(log.slice(0, 3)).toEqual((await getJson<{ changes: Change[] }>(hub, "/changes?limit=3")).changes);
    // The other checkpoints' roots are those of the prefixes of the same leaves.
    for (const c of await allCheckpoints(hub))
      expect(c.root).toBe(hashToHex(rootHash(leaves.slice(0, c.size))));
  });

  it("verifies with LogVerifier over /log/entries and /log/checkpoints", async () => {
    expect(await verifyOverHttp(hub)).toEqual({ ok: true, size: log.length, provenSize: log.length });
  });

  it("gives inclusion proofs that verify for random seqs at several tree sizes, and fail when tampered", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .integer({ min: 1, max: log.length })
          .chain((size) => fc.tuple(fc.constant(size), fc.integer({ min: 1, max: size }))),
        async ([size, seq]) => {
          const p = await getJson<InclusionProof>(hub, `/log/proof/inclusion?seq=${seq}&size=${size}`);
          expect(p).toMatchObject({ seq, size });
          expect(p.leaf).toBe(log[seq - 1]?.leaf);
          expect(p.root).toBe(hashToHex(rootHash(leaves.slice(0, size))));
          expect(inclusionHolds(p, seq, size)).toBe(true);

          // Another leaf, a changed leaf, a changed root, or a changed proof hash: each fails.
          const other = seq === 1 ? 2 : 1;
          if (other <= size)
            expect(inclusionHolds({ ...p, leaf: log[other - 1]?.leaf ?? "" }, seq, size)).toBe(false);
          expect(inclusionHolds({ ...p, leaf: flipped(p.leaf) }, seq, size)).toBe(false);
          expect(inclusionHolds({ ...p, root: flipped(p.root) }, seq, size)).toBe(false);
          for (let i = 0; i < p.proof.length; i++) {
            const proof = p.proof.map((h, j) => (j === i ? flipped(h) : h));
            expect(inclusionHolds({ ...p, proof }, seq, size)).toBe(false);
          }
          if (p.proof.length > 0)
            expect(inclusionHolds({ ...p, proof: p.proof.slice(1) }, seq, size)).toBe(false);
        },
      ),
      { numRuns: 40 },
    );
  });

  it("proves inclusion against the latest checkpoint by default, and names the checkpoint of the size asked for", async () => {
    const latest = await getJson<Checkpoint>(hub, "/log/checkpoint");
    const p = await getJson<InclusionProof>(hub, "/log/proof/inclusion?seq=7");
    expect(p).toMatchObject({ seq: 7, size: latest.size, root: latest.root, checkpoint: latest });
    expect(inclusionHolds(p, 7, latest.size)).toBe(true);

    const [second] = await getJson<Checkpoint[]>(hub, `/log/checkpoints?after=${EVERY}&limit=1`);
    const atCheckpoint = await getJson<InclusionProof>(hub, `/log/proof/inclusion?seq=3&size=${2 * EVERY}`);
    expect(atCheckpoint.checkpoint).toEqual(second);
    expect(atCheckpoint.root).toBe(second?.root);
    expect(inclusionHolds(atCheckpoint, 3, 2 * EVERY)).toBe(true);
    const between = await getJson<InclusionProof>(hub, `/log/proof/inclusion?seq=3&size=${2 * EVERY + 1}`);
    expect(between.checkpoint).toBeUndefined();
  });

  it("gives several inclusion proofs in one request, each the one GET /log/proof/inclusion gives", async () => {
    const size = log.length - 1;
    const seqs = [size, 1, 7, 2, 7];
    const batch = await getJson<InclusionProofs>(
      hub,
      `/log/proof/inclusions?seqs=${seqs.join(",")}&size=${size}`,
    );
    expect(batch.size).toBe(size);
    expect(batch.root).toBe(hashToHex(rootHash(leaves.slice(0, size))));
    expect(batch.proofs.map((p) => p.seq)).toEqual(seqs);
    for (const [i, seq] of seqs.entries()) {
      const one = await getJson<InclusionProof>(hub, `/log/proof/inclusion?seq=${seq}&size=${size}`);
      const proof = batch.proofs[i];
      expect(proof).toEqual({ seq, leaf: one.leaf, proof: one.proof });
      if (proof) expect(inclusionHolds({ ...proof, root: batch.root }, seq, size)).toBe(true);
    }
    // By default, in the latest checkpoint, which it names.
    const latest = await getJson<Checkpoint>(hub, "/log/checkpoint");
    const byDefault = await getJson<InclusionProofs>(hub, "/log/proof/inclusions?seqs=3,5");
    expect(byDefault).toMatchObject({ size: latest.size, root: latest.root, checkpoint: latest });
    // A list it cannot read is answered in words, naming the item, not with a pattern.
    const bad = await expectProblem(await hub.request("/log/proof/inclusions?seqs=1,,2"), 400);
    expect(bad.detail).toBe(
      `seqs item 2 is empty: seqs are separated by one comma, each a whole number from 1 to ${latest.size}`,
    );
  });

  it("gives consistency proofs between every two checkpoints that verify with their signed roots", async () => {
    const checkpoints = await allCheckpoints(hub);
    expect(checkpoints.length).toBeGreaterThan(5);
    for (const [i, older] of checkpoints.entries()) {
      for (const newer of checkpoints.slice(i)) {
        const p = await getJson<ConsistencyProof>(
          hub,
          `/log/proof/consistency?from=${older.size}&to=${newer.size}`,
        );
        expect(p).toMatchObject({
          from: older.size,
          to: newer.size,
          fromRoot: older.root,
          toRoot: newer.root,
        });
        expect(consistencyHolds(older.size, newer.size, p.proof, older.root, newer.root)).toBe(true);
        if (older.size === newer.size) {
          expect(p.proof).toEqual([]);
          continue;
        }
        expect(consistencyHolds(older.size, newer.size, p.proof, flipped(older.root), newer.root)).toBe(
          false,
        );
        expect(consistencyHolds(older.size, newer.size, p.proof, older.root, flipped(newer.root))).toBe(
          false,
        );
        for (let k = 0; k < p.proof.length; k++) {
          const proof = p.proof.map((h, j) => (j === k ? flipped(h) : h));
          expect(consistencyHolds(older.size, newer.size, proof, older.root, newer.root)).toBe(false);
        }
      }
    }
  });

  it("gives consistency proofs between random tree sizes that verify with recomputed roots", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc
          .integer({ min: 1, max: log.length })
          .chain((to) => fc.tuple(fc.integer({ min: 1, max: to }), fc.constant(to))),
        async ([from, to]) => {
          const p = await getJson<ConsistencyProof>(hub, `/log/proof/consistency?from=${from}&to=${to}`);
          expect(p.fromRoot).toBe(hashToHex(rootHash(leaves.slice(0, from))));
          expect(p.toRoot).toBe(hashToHex(rootHash(leaves.slice(0, to))));
          expect(consistencyHolds(from, to, p.proof, p.fromRoot, p.toRoot)).toBe(true);
        },
      ),
      { numRuns: 30 },
    );
  });

  it.each<[string, (end: number) => string, number, string[]]>([
    [
      "an inclusion proof of a seq past the end",
      (end) => `/log/proof/inclusion?seq=${end + 1}`,
      400,
      ["/query/seq"],
    ],
    [
      "an inclusion proof of a seq past the size",
      () => "/log/proof/inclusion?seq=6&size=5",
      400,
      ["/query/seq"],
    ],
    [
      "an inclusion proof in a tree past the end",
      (end) => `/log/proof/inclusion?seq=1&size=${end + 1}`,
      400,
      ["/query/size"],
    ],
    ["an inclusion proof of seq 0", () => "/log/proof/inclusion?seq=0", 400, ["/query/seq"]],
    ["an inclusion proof without a seq", () => "/log/proof/inclusion", 400, ["/query/seq"]],
    ["an inclusion proof of seq abc", () => "/log/proof/inclusion?seq=abc", 400, ["/query/seq"]],
    [
      "inclusion proofs of a seq past the size",
      () => "/log/proof/inclusions?seqs=1,6&size=5",
      400,
      ["/query/seqs"],
    ],
    [
      "inclusion proofs in a tree past the end",
      (end) => `/log/proof/inclusions?seqs=1&size=${end + 1}`,
      400,
      ["/query/size"],
    ],
    ["inclusion proofs of seq 0", () => "/log/proof/inclusions?seqs=1,0", 400, ["/query/seqs"]],
    ["inclusion proofs of no seq", () => "/log/proof/inclusions?seqs=", 400, ["/query/seqs"]],
    ["inclusion proofs of 1,,2", () => "/log/proof/inclusions?seqs=1,,2", 400, ["/query/seqs"]],
    [
      "inclusion proofs of 501 seqs",
      () => `/log/proof/inclusions?seqs=${Array.from({ length: 501 }, () => 1).join(",")}`,
      400,
      ["/query/seqs"],
    ],
    [
      "a consistency proof from a larger tree to a smaller",
      () => "/log/proof/consistency?from=6&to=5",
      400,
      ["/query/from"],
    ],
    [
      "a consistency proof to a tree past the end",
      (end) => `/log/proof/consistency?from=1&to=${end + 1}`,
      400,
      ["/query/to"],
    ],
    ["a consistency proof from 0", () => "/log/proof/consistency?from=0&to=5", 400, ["/query/from"]],
    ["a consistency proof without to", () => "/log/proof/consistency?from=1", 400, ["/query/to"]],
    ["entries with a limit of 0", () => "/log/entries?limit=0", 400, ["/query/limit"]],
    // Numbers in decimal digits only: coercion by Number() took these as 16, 100, 1 and 1e20.
    ["an inclusion proof of seq 0x10", () => "/log/proof/inclusion?seq=0x10", 400, ["/query/seq"]],
    ["an inclusion proof of seq 1e2", () => "/log/proof/inclusion?seq=1e2", 400, ["/query/seq"]],
    ["an inclusion proof of seq ' 1'", () => "/log/proof/inclusion?seq=%201", 400, ["/query/seq"]],
    [
      "a consistency proof to a size of 21 digits",
      () => "/log/proof/consistency?from=1&to=99999999999999999999",
      400,
      ["/query/to"],
    ],
    ["entries with a limit of 1e3", () => "/log/entries?limit=1e3", 400, ["/query/limit"]],
  ])("refuses %s with 400 and a pointer", async (_what, path, status, pointers) => {
    const end = await lastSeq(hub);
    const problem = await expectProblem(await hub.request(path(end)), status);
    expect(pointersOf(problem)).toEqual(pointers);
  });
  it.each<[string, string, (end: number) => string]>([
    [
      "seq=abc",
      "/log/proof/inclusion?seq=abc",
      () =>
        'Invalid query: query/seq must be a whole number from 1, in decimal digits without a leading zero, not "abc"',
    ],
    [
      "seq=-1",
      "/log/proof/inclusion?seq=-1",
      () => "Invalid query: query/seq must be a whole number from 1, not -1",
    ],
    [
      "seq=1.5",
      "/log/proof/inclusion?seq=1.5",
      () =>
        'Invalid query: query/seq must be a whole number from 1, in decimal digits without a leading zero, not "1.5"',
    ],
    [
      "a seq past the size",
      "/log/proof/inclusion?seq=6&size=5",
      () => "seq 6 is past the tree of 5 Changes: it must be a whole number from 1 to 5",
    ],
    [
      "a size past the end",
      "/log/proof/inclusion?seq=1&size=99999",
      (end) =>
        `size 99999 is past the end of the Log (${end} Changes): it must be a whole number from 1 to ${end}`,
    ],
    [
      "from=x",
      "/log/proof/consistency?from=x&to=2",
      () =>
        'Invalid query: query/from must be a whole number from 1, in decimal digits without a leading zero, not "x"',
    ],
    [
      "from > to",
      "/log/proof/consistency?from=6&to=5",
      () => "from 6 is larger than to (5): it must be a whole number from 1 to 5",
    ],
    [
      "to past the end",
      "/log/proof/consistency?from=1&to=99999",
      (end) =>
        `to 99999 is past the end of the Log (${end} Changes): it must be a whole number from 1 to ${end}`,
    ],
    [
      "entries after=abc",
      "/log/entries?after=abc",
      () =>
        'Invalid query: query/after must be a whole number from 0, in decimal digits without a leading zero, not "abc"',
    ],
    [
      "entries limit=0",
      "/log/entries?limit=0",
      () => "Invalid query: query/limit must be a whole number from 1 to 100000, not 0",
    ],
    ["seqs=", "/log/proof/inclusions?seqs=", () => "seqs is empty: give 1 to 500 seqs separated by commas"],
    [
      "a seqs item that is no number",
      "/log/proof/inclusions?seqs=1,2,x&size=5",
      () => 'seqs item 3 ("x") must be a whole number from 1 to 5',
    ],
    [
      "a seqs item past the size",
      "/log/proof/inclusions?seqs=1,6&size=5",
      () => 'seqs item 2 ("6") is past the tree of 5 Changes: it must be a whole number from 1 to 5',
    ],
    [
      "501 seqs",
      `/log/proof/inclusions?seqs=${Array.from({ length: 501 }, () => 1).join(",")}`,
      () => "seqs lists 501 seqs: at most 500 in one request",
    ],
  ])("words %s: the parameter and what it must be", async (_what, path, detail) => {
    const end = await lastSeq(hub);
    const problem = await expectProblem(await hub.request(path), 400);
    expect(problem.detail).toBe(detail(end));
  });
});

describe("checkpoints by count", () => {
  const EVERY = 5;
  const meter = "urn:example:log:counted";
  let hub: TestHub;

  beforeAll(async () => {
    hub = await startTestHub({ checkpointEveryChanges: EVERY, checkpointEveryMs: NEVER_MS });
  });
  afterAll(async () => {
    await hub.stop();
  });

  it("signs one checkpoint for a batch past the count, and counts on from the head it covered", async () => {
    const { store } = hub.hub;
    const addCheckpoint = store.addCheckpoint.bind(store);
    const logHead = store.logHead.bind(store);
    // A checkpoint reads the Log's head first; its write waits until released (a slow disk).
    let headReads = 0;
    store.logHead = () => {
      headReads++;
      return logHead();
    };
    let release = (): void => undefined;
    const released = new Promise<void>((resolve) => (release = resolve));
    const sizes: number[] = [];
    const written: Array<Promise<void>> = [];
    store.addCheckpoint = (checkpoint) => {
      sizes.push(checkpoint.size);
      const done = released.then(() => addCheckpoint(checkpoint));
      written.push(done);
      return done;
    };
    const turns = async (n: number) => {
      for (let i = 0; i < n; i++) await new Promise((resolve) => setImmediate(resolve));
    };
    try {
      await put(hub, meter, meterTd(meter));
      // Seqs 2–9 in one batch: the count is reached at seq 5, and the checkpoint covers all 9.
      const batch = Array.from({ length: 8 }, (_, i) => ({
        kind: "reported",
        affordance: "power",
        value: i,
      }));
      expect(await report(hub, meter, batch)).toEqual([2, 3, 4, 5, 6, 7, 8, 9]);
      // One more while that checkpoint is being written: it is not covered, and it counts.
      expect(await report(hub, meter, { kind: "reported", affordance: "power", value: 10 })).toEqual([10]);
      await vi.waitFor(() => expect(sizes).toEqual([9]), { timeout: 5000 });
      release();
      await Promise.all(written);
      await turns(3);
      // Counting the batch's Changes past the count again signed a second one of size 10 here.
      expect(headReads).toBe(1);
      for (let value = 11; value <= 13; value++) {
        await report(hub, meter, { kind: "reported", affordance: "power", value });
      }
      await turns(3);
      expect(headReads).toBe(1);
      // 14 is the fifth Change after 9.
      await report(hub, meter, { kind: "reported", affordance: "power", value: 14 });
      await vi.waitFor(() => expect(sizes).toEqual([9, 14]), { timeout: 5000 });
      await Promise.all(written);
      expect(headReads).toBe(2);
      expect((await getJson<Checkpoint>(hub, "/log/checkpoint")).size).toBe(14);
    } finally {
      store.addCheckpoint = addCheckpoint;
      store.logHead = logHead;
      release();
    }
  });
});

describe("the Log across a restart", () => {
  const EVERY = 4;
  const clock = new ManualClock(Date.parse("2030-05-02T12:00:00.000Z"));
  const meter = "urn:example:log:restarted";
  let dataDir: string;

  beforeAll(() => {
    dataDir = mkdtempSync(join(tmpdir(), "hyperthings-log-"));
  });
  afterAll(() => {
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("keeps its key, root and checkpoints, and continues: greater seq and hlc, proofs across the restart", async () => {
    const options = { dataDir, checkpointEveryChanges: EVERY, checkpointEveryMs: NEVER_MS };
    const before = await startTestHub(options, {}, { clock: clock.read });
    let key: LogKey;
    let last: Checkpoint;
    let oldLog: Change[];
    try {
      key = await getJson<LogKey>(before, "/log/key");
      clock.advance(1000);
      await put(before, meter, meterTd(meter));
      for (let i = 0; i < 10; i++) {
        clock.advance(1000);
        const [seq] = await report(before, meter, { kind: "reported", affordance: "power", value: i });
        // The checkpoint due at this size is signed after the Change is acknowledged: let it be
        // written before the next one, or (on a slow machine) it covers that one too.
        if (seq !== undefined && seq % EVERY === 0) {
          await vi.waitFor(
            async () => expect((await getJson<Checkpoint>(before, "/log/checkpoint")).size).toBe(seq),
            { timeout: 5000 },
          );
        }
      }
      oldLog = await entries(before);
      expect(oldLog).toHaveLength(11);
    } finally {
      // Stopping signs a last checkpoint over everything committed.
      await before.stop();
    }

    // The wall clock stepped back an hour while the hub was down: the hlc must still grow.
    clock.now -= 3_600_000;
    const after = await startTestHub(options, {}, { clock: clock.read });
    try {
      expect(await getJson<LogKey>(after, "/log/key")).toEqual(key);
      const checkpoints = await allCheckpoints(after);
      last = checkpoints.at(-1) as Checkpoint;
      expect(checkpoints.map((c) => c.size)).toEqual([4, 8, 11]);
      expect(last.root).toBe(hashToHex(rootHash(oldLog.map((c) => changeLeafHash(c)))));
      expect(await getJson<Checkpoint>(after, "/log/checkpoint")).toEqual(last);
      expect(await entries(after)).toEqual(oldLog);

      const seqs = await report(after, meter, [
        { kind: "reported", affordance: "power", value: 100 },
        { kind: "reported", affordance: "label", value: "after" },
      ]);
      expect(seqs).toEqual([12, 13]);
      const log = await entries(after);
      const [lastBefore, first, second] = log.slice(10).map((c) => c.hlc);
      expect(lastBefore).toBe(oldLog.at(-1)?.hlc);
      expect((first ?? "") > (lastBefore ?? "")).toBe(true);
      expect((second ?? "") > (first ?? "")).toBe(true);
      // The stream's latest value outlives the restart.
      expect(log[11]).toMatchObject({ value: 100, previous: 9 });

      const now = await getJson<Checkpoint>(after, "/log/checkpoint");
      expect(now.size).toBe(13);
      verifyCheckpoint(now, key.publicKey, { origin: key.origin });
      // Signed at the Log's now, not the wall clock's (an hour behind): never before the Changes
      // it covers, nor before the checkpoint it follows.
      expect(now.time >= changeTime(log[12] as Change)).toBe(true);
      expect(now.time >= last.time).toBe(true);
      const consistency = await getJson<ConsistencyProof>(after, `/log/proof/consistency?from=11&to=13`);
      expect(consistencyHolds(11, 13, consistency.proof, last.root, now.root)).toBe(true);
      for (const seq of [1, 6, 11, 13]) {
        const p = await getJson<InclusionProof>(after, `/log/proof/inclusion?seq=${seq}`);
        expect(p.root).toBe(now.root);
        expect(p.leaf).toBe(hashToHex(changeLeafHash(log[seq - 1] as Change)));
        expect(inclusionHolds(p, seq, 13)).toBe(true);
      }
      // An old proof, against the checkpoint signed before the restart, still verifies.
      const old = await getJson<InclusionProof>(after, "/log/proof/inclusion?seq=5&size=11");
      expect(old).toMatchObject({ root: last.root, checkpoint: last });
      expect(inclusionHolds(old, 5, 11)).toBe(true);
      expect(await verifyOverHttp(after)).toEqual({ ok: true, size: 13, provenSize: 13 });
    } finally {
      await after.stop();
    }
  });

  it("signs for the Changes a hub left uncovered when it stopped without its last checkpoint", async () => {
    const crashedDir = mkdtempSync(join(tmpdir(), "hyperthings-log-crashed-"));
    const thing = "urn:example:log:crashed";
    const running = new Set<TestHub>();
    const start = async (checkpointEveryChanges: number, checkpointEveryMs: number) => {
      const hub = await startTestHub(
        { dataDir: crashedDir, checkpointEveryChanges, checkpointEveryMs },
        {},
        { clock: clock.read },
      );
      running.add(hub);
      return hub;
    };
    // A hub that stops without signing its last checkpoint: a crash, as far as the Log knows.
    const crash = async (hub: TestHub) => {
      hub.hub.notary.close = () => Promise.resolve();
      running.delete(hub);
      await hub.stop();
    };
    const sizes = (hub: TestHub) => allCheckpoints(hub).then((cs) => cs.map((c) => c.size));
    try {
      const first = await start(1000, NEVER_MS);
      await put(first, thing, meterTd(thing));
      await report(
        first,
        thing,
        [1, 2, 3].map((value) => ({ kind: "reported", affordance: "power", value })),
      );
      expect(await sizes(first)).toEqual([]);
      await crash(first);

      // Four Changes uncovered, the count at three: a checkpoint at once, with nothing published.
      const second = await start(3, NEVER_MS);
      await vi.waitFor(async () => expect(await sizes(second)).toEqual([4]), { timeout: 5000 });
      await report(second, thing, { kind: "reported", affordance: "power", value: 4 });
      await crash(second);

      // One uncovered, the count far off: the time bound, again with nothing published.
      const third = await start(1000, 100);
      await vi.waitFor(async () => expect(await sizes(third)).toEqual([4, 5]), { timeout: 5000 });
    } finally {
      for (const hub of running) await hub.stop();
      rmSync(crashedDir, { recursive: true, force: true });
    }
  });
});

describe("a data directory restored without its hub id or key", () => {
  const thing = "urn:example:log:restored";
  let dataDir: string;
  const files: Record<string, string> = {};

  beforeAll(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "hyperthings-log-restored-"));
    const hub = await startTestHub({ dataDir, checkpointEveryChanges: 2 });
    try {
      await put(hub, thing, meterTd(thing));
      for (let i = 0; i < 3; i++)
        await report(hub, thing, { kind: "reported", affordance: "power", value: i });
    } finally {
      await hub.stop();
    }
    for (const name of ["hub-id", "log-key.pem"]) files[name] = readFileSync(join(dataDir, name), "utf8");
  });
  afterAll(() => {
    rmSync(dataDir, { recursive: true, force: true });
  });

  /** Starting on the directory as it is fails with `message`; nothing is appended or signed. */
  async function refused(message: RegExp): Promise<void> {
    const db = new Database(join(dataDir, "hyperthings.db"), { readonly: true });
    const count = () =>
      db.prepare("SELECT (SELECT count(*) FROM changes) + (SELECT count(*) FROM checkpoints)").pluck().get();
    const before = count();
    await expect(startTestHub({ dataDir })).rejects.toThrow(message);
    expect(count()).toBe(before);
    db.close();
  }

  function restore(): void {
    for (const [name, text] of Object.entries(files)) writeFileSync(join(dataDir, name), text);
  }

  it("refuses to start under another hub id, naming both ids and the files to restore", async () => {
    const id = files["hub-id"]?.trim() ?? "";
    writeFileSync(join(dataDir, "hub-id"), "urn:uuid:00000000-0000-4000-8000-000000000000\n");
    await refused(
      new RegExp(
        `^The Log's checkpoints name the hub ${id}, but this data directory's hub id is urn:uuid:00000000-0000-4000-8000-000000000000: restore .+hub-id and .+log-key.pem from the backup`,
      ),
    );
    restore();
  });

  it("refuses to start with another key", async () => {
    writeFileSync(
      join(dataDir, "log-key.pem"),
      generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
    );
    await refused(
      /^The Log's checkpoints are not signed with the key in .+log-key\.pem \(the checkpoint of \d+ Changes does not verify with it\): restore/,
    );
    restore();
  });

  it.each([[["hub-id"]], [["log-key.pem"]], [["hub-id", "log-key.pem"]]])(
    "refuses to start without %j, naming what is missing, and makes none anew",
    async (names) => {
      for (const name of names) rmSync(join(dataDir, name));
      await refused(
        new RegExp(
          `^${names.map((name) => `.+/${name.replace(".", "\\.")}`).join(" and ")} (is|are) missing, but the Log's checkpoints name this hub by its id and are signed with its key: restore .+hub-id and .+log-key\\.pem from the backup`,
        ),
      );
      for (const name of names) expect(existsSync(join(dataDir, name))).toBe(false);
      restore();
    },
  );

  it("names an empty or unreadable file instead of a decoder's error", async () => {
    writeFileSync(join(dataDir, "hub-id"), "");
    await refused(/hub-id is empty: restore it from the backup of this data directory/);
    restore();
    writeFileSync(
      join(dataDir, "log-key.pem"),
      "-----BEGIN PRIVATE KEY-----\nnot a key\n-----END PRIVATE KEY-----\n",
    );
    await refused(/log-key\.pem does not hold an Ed25519 private key \(PEM\): restore it/);
    restore();
  });

  it("starts again once they are restored, and verifies", async () => {
    const hub = await startTestHub({ dataDir });
    try {
      await report(hub, thing, { kind: "reported", affordance: "power", value: 9 });
      expect((await verifyOverHttp(hub)).ok).toBe(true);
    } finally {
      await hub.stop();
    }
  });
});

/** A hub on `options.dataDir` that registers `meter` and takes 39 readings (a Log of 40), stopped. */
async function fortyChangesThenStop(
  options: Parameters<typeof startTestHub>[0],
  meter: string,
): Promise<void> {
  const before = await startTestHub(options);
  try {
    await put(before, meter, meterTd(meter));
    for (let i = 2; i <= 40; i++)
      await report(before, meter, { kind: "reported", affordance: "power", value: i });
  } finally {
    await before.stop();
  }
}

describe("a Log whose stored Merkle subtrees were damaged", () => {
  it("still proves every Change against its signed root, working the damaged subtree out from the leaves", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-nodes-"));
    const meter = "urn:example:log:nodes";
    const options = { dataDir, checkpointEveryChanges: 8, checkpointEveryMs: NEVER_MS };
    try {
      await fortyChangesThenStop(options, meter);
      // The stored subtree of leaves 16..31 (level 4): derived data, which every proof of a seq
      // outside it uses as a sibling.
      const db = new Database(join(dataDir, "hyperthings.db"));
      try {
        expect(
          db.prepare("UPDATE merkle_nodes SET hash = zeroblob(32) WHERE level = 4 AND idx = 1").run().changes,
        ).toBe(1);
      } finally {
        db.close();
      }
      const after = await startTestHub(options);
      try {
        const checkpoint = await getJson<Checkpoint>(after, "/log/checkpoint");
        expect(checkpoint.size).toBe(40);
        for (const seq of [1, 9, 20, 33, 40]) {
          const proof = await getJson<InclusionProof>(after, `/log/proof/inclusion?seq=${seq}`);
          expect(proof.root).toBe(checkpoint.root);
          expect(inclusionHolds(proof, seq, 40), `seq ${seq}`).toBe(true);
        }
        const many = await getJson<{
          proofs: Array<{ seq: number; leaf: string; proof: string[] }>;
          root: string;
        }>(after, "/log/proof/inclusions?seqs=2,3,35");
        for (const p of many.proofs) expect(inclusionHolds({ ...p, root: many.root }, p.seq, 40)).toBe(true);
      } finally {
        await after.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe("a Log whose recorded leaf hash was altered", () => {
  it("logs that the leaves no longer lead to the signed root, naming the Change, not that stored subtrees are damaged", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-leaf-"));
    const meter = "urn:example:log:leaf";
    const options = { dataDir, checkpointEveryChanges: 8, checkpointEveryMs: NEVER_MS };
    const ALTERED = 10;
    try {
      await fortyChangesThenStop(options, meter);
      const db = new Database(join(dataDir, "hyperthings.db"));
      try {
        db.exec("DROP TRIGGER changes_no_update");
        expect(db.prepare("UPDATE changes SET leaf = zeroblob(32) WHERE seq = ?").run(ALTERED).changes).toBe(
          1,
        );
      } finally {
        db.close();
      }
      const lines: string[] = [];
      const logger = pino(
        { level: "error" },
        new Writable({
          write(chunk: Buffer, _encoding, done) {
            lines.push(chunk.toString());
            done();
          },
        }),
      );
      const after = await startTestHub(options, {}, { logger });
      try {
        expect((await getJson<Checkpoint>(after, "/log/checkpoint")).size).toBe(40);
        // Its own proof leads from the Change to the signed root; its neighbour's, whose path
        // holds the altered leaf, cannot.
        const own = await getJson<InclusionProof>(after, `/log/proof/inclusion?seq=${ALTERED}`);
        expect(
          inclusionHolds(
            { ...own, leaf: hashToHex(changeLeafHash(await getJson<Change>(after, `/changes/${ALTERED}`))) },
            ALTERED,
            40,
          ),
        ).toBe(true);
        await getJson<InclusionProof>(after, `/log/proof/inclusion?seq=${ALTERED + 1}`);
      } finally {
        await after.stop();
      }
      const logged = lines.map((line) => JSON.parse(line) as { msg: string; seqs?: number[] });
      expect(logged.map((l) => l.msg).join("\n")).not.toContain("stored Merkle subtrees");
      expect(logged).toEqual([
        expect.objectContaining({
          seqs: [ALTERED],
          msg:
            `the inclusion proof of Change ${ALTERED} does not lead to the root signed at size 40, even worked out from the leaves: ` +
            `the recorded leaf hash of Change ${ALTERED} is not the hash of the Change the database holds, so a leaf hash was altered outside the hub ` +
            "(`things verify` names the Change; restore the database from a backup)",
        }),
        expect.objectContaining({
          seqs: [ALTERED + 1],
          msg:
            `the inclusion proof of Change ${ALTERED + 1} does not lead to the root signed at size 40, even worked out from the leaves: ` +
            "a leaf hash or a Change on its path was altered in the database outside the hub " +
            "(`things verify` names the Change; restore the database from a backup)",
        }),
      ]);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe("a Log altered behind the hub's back", () => {
  const EVERY = 4;
  const ALTERED = 10;
  const clock = new ManualClock(Date.parse("2030-05-03T12:00:00.000Z"));
  const meter = "urn:example:log:tampered";
  let dataDir: string;

  beforeAll(() => {
    dataDir = mkdtempSync(join(tmpdir(), "hyperthings-tamper-"));
  });
  afterAll(() => {
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("fails LogVerifier over /log/entries and the checkpoints, at the checkpoint covering the altered Change", async () => {
    const options = { dataDir, checkpointEveryChanges: EVERY, checkpointEveryMs: NEVER_MS };
    const before = await startTestHub(options, {}, { clock: clock.read });
    try {
      clock.advance(1000);
      await put(before, meter, meterTd(meter));
      for (let i = 2; i <= 16; i++) {
        clock.advance(1000);
        await report(before, meter, { kind: "reported", affordance: "power", value: i });
      }
      // The checkpoint of 16 is signed as the 16th Change is published and committed by the
      // store's writer a moment later: asking for the latest waits for it.
      expect(await getJson<Checkpoint>(before, "/log/checkpoint")).toMatchObject({ size: 16 });
      expect(await verifyOverHttp(before)).toEqual({ ok: true, size: 16, provenSize: 16 });
    } finally {
      await before.stop();
    }

    const db = new Database(join(dataDir, "hyperthings.db"));
    try {
      db.exec("DROP TRIGGER changes_no_update");
      const result = db.prepare("UPDATE changes SET value = '999' WHERE seq = ?").run(ALTERED);
      expect(result.changes).toBe(1);
    } finally {
      db.close();
    }

    const after = await startTestHub(options, {}, { clock: clock.read });
    try {
      const log = await entries(after);
      const altered = log[ALTERED - 1] as Change;
      expect(altered).toMatchObject({ seq: ALTERED, value: 999 });
      // The hub still serves the leaf it recorded; the Change no longer hashes to it.
      expect(hashToHex(changeLeafHash(altered))).not.toBe(altered.leaf);
      for (const change of log) {
        if (change.seq !== ALTERED) expect(hashToHex(changeLeafHash(change))).toBe(change.leaf);
      }

      const verdict = await verifyOverHttp(after);
      expect(verdict).toMatchObject({ ok: false, problem: "root-mismatch", firstBadSeq: 9 });
      expect(verdict.ok === false && verdict.reason).toContain("one of seq 9..12");

      // A proof from the hub checks the recorded leaf, so a verifier must hash the Change itself.
      const p = await getJson<InclusionProof>(after, `/log/proof/inclusion?seq=${ALTERED}`);
      expect(inclusionHolds(p, ALTERED, p.size)).toBe(true);
      expect(inclusionHolds({ ...p, leaf: hashToHex(changeLeafHash(altered)) }, ALTERED, p.size)).toBe(false);
    } finally {
      await after.stop();
    }
  });
});

describe("a Change deleted behind the hub's back", () => {
  const meter = "urn:example:log:deleted";
  const DELETED = 5;

  it("fails verification at its seq, and GET /changes/{seq} says it is missing, not past the end", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-deleted-"));
    const options = { dataDir, checkpointEveryChanges: 4, checkpointEveryMs: NEVER_MS };
    try {
      const before = await startTestHub(options);
      try {
        await put(before, meter, meterTd(meter));
        for (let i = 2; i <= 9; i++)
          await report(before, meter, { kind: "reported", affordance: "power", value: i });
        expect(await getJson<Checkpoint>(before, "/log/checkpoint")).toMatchObject({ size: 9 });
      } finally {
        await before.stop();
      }
      const db = new Database(join(dataDir, "hyperthings.db"));
      try {
        db.exec("DROP TRIGGER changes_no_delete");
        expect(db.prepare("DELETE FROM changes WHERE seq = ?").run(DELETED).changes).toBe(1);
      } finally {
        db.close();
      }

      const after = await startTestHub(options);
      try {
        expect(await verifyOverHttp(after)).toMatchObject({
          ok: false,
          firstBadSeq: DELETED,
          problem: "sequence",
        });
        for (const path of [`/changes/${DELETED}`, `/changes/${DELETED}/why`]) {
          const missing = await expectProblem(await after.request(path), 404);
          expect(missing.detail, path).toBe(
            `Change ${DELETED} is missing from the database, though the Log holds 9 Changes: its row was deleted outside the hub. ` +
              "`things verify` checks the Log; restore the database from a backup",
          );
        }
        // Past the end is still the client's seq, and the Changes around it are served.
        const past = await expectProblem(await after.request("/changes/10"), 400);
        expect(past.detail).toBe("seq 10 is past the end of the Log (9 Changes)");
        expect(await getJson<Change>(after, `/changes/${DELETED + 1}`)).toMatchObject({ seq: DELETED + 1 });

        // A proof that needs its leaf hash says the same, naming the proof asked for: not the
        // hub's "failed to answer". Its neighbour's proof needs it too (one block of leaves).
        const missing =
          `Change ${DELETED} is missing from the database, though the Log holds 9 Changes: its row was deleted outside the hub. ` +
          "`things verify` checks the Log; restore the database from a backup";
        for (const [path, what] of [
          [
            `/log/proof/inclusion?seq=${DELETED}&size=9`,
            `The inclusion proof of Change ${DELETED} in the tree of 9 Changes`,
          ],
          [
            `/log/proof/inclusion?seq=${DELETED + 1}`,
            `The inclusion proof of Change ${DELETED + 1} in the tree of 9 Changes`,
          ],
          [
            `/log/proof/inclusions?seqs=2,${DELETED}`,
            `The inclusion proofs of Changes 2, ${DELETED} in the tree of 9 Changes`,
          ],
          [
            "/log/proof/consistency?from=3&to=9",
            "The consistency proof between the trees of 3 and 9 Changes",
          ],
        ] as const) {
          const damaged = await expectProblem(await after.request(path), 500);
          expect(damaged, path).toMatchObject({
            type: "urn:hyperthings:problem:log-damaged",
            title: "The Log's store is damaged",
            detail: `${what} cannot be worked out: ${missing}`,
          });
        }
        const proved = await runThingsToEnd([
          "prove",
          String(DELETED),
          "--url",
          after.url,
          "--token",
          after.token,
        ]);
        expect(proved).toMatchObject({ code: 3, stderr: "" });
        expect(proved.stdout).toBe(
          `proof FAILED at seq ${DELETED}: The inclusion proof of Change ${DELETED} in the tree of 9 Changes cannot be worked out: ${missing}\n`,
        );
      } finally {
        await after.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});
