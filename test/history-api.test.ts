// The Log over HTTP, end to end: reporting state (validated against the TD, all or nothing),
// a Thing's history a page at a time, its state at past times, diffs, the global change feed and
// its SSE stream — with an injected manual clock, so every time in these tests is exact.
import fc from "fast-check";
import { gzipSync } from "node:zlib";
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import { openStreams } from "../src/api/http/event-stream.js";
import { changeLeafHash, changeTime, createMergePatch, hashToHex, type Change } from "../src/core/index.js";
import { readWhileHeld } from "./support/held-thread.js";
import { OffThreadSocket } from "./support/off-thread-socket.js";
import { SimulatedHttpThing } from "./support/simulated-http-thing.js";
import { EventStream, type SseEvent } from "./support/sse.js";
import {
  changeAfter,
  minimalTd,
  registerThing,
  reportBulk,
  startTestHub,
  type TestHub,
} from "./support/test-hub.js";

interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  errors?: Array<{ pointer: string; detail: string }>;
}

interface Page {
  changes: Change[];
  next?: number;
}

interface AffordanceState {
  value: unknown;
  seq: number;
  time: string;
  at?: string;
  cause: { actor: string; via?: string };
}

interface ThingState {
  thing: string;
  at: string;
  seq: number;
  td: Record<string, unknown>;
  properties: Record<string, AffordanceState>;
  desired: Record<string, AffordanceState>;
}

interface ThingDiff {
  thing: string;
  from: string;
  to: string;
  fromSeq: number;
  toSeq: number;
  description?: unknown;
  descriptionChanges?: {
    counts: Record<string, number>;
    last: { seq: number; kind: string; cause: { actor: string }; time: string };
  };
  properties: Array<{
    affordance: string;
    before?: unknown;
    after?: unknown;
    changes: number;
    cause?: { actor: string };
    time?: string;
  }>;
  actions: InteractionDiff[];
  writes: InteractionDiff[];
  events: InteractionDiff[];
  reachability?: {
    reachableAtFrom: boolean;
    reachableAtTo: boolean;
    counts: Record<string, number>;
    last: DiffChange;
  };
  drift?: {
    changes: number;
    alerts: number;
    last: DiffChange & { affordance: string };
    properties: Array<{ affordance: string; changes: number; alerts: number; last: DiffChange }>;
  };
  links?: {
    added: Array<{ rel: string; href: string }>;
    removed: Array<{ rel: string; href: string }>;
    counts: Record<string, number>;
    last: DiffChange;
  };
}

interface DiffChange {
  seq: number;
  kind: string;
  value?: unknown;
  cause: { actor: string };
  time: string;
}

interface InteractionDiff {
  affordance: string;
  counts: Record<string, number>;
  last: { seq: number; kind: string; value?: unknown; cause: { actor: string }; time: string };
}

const READ_TOKEN = "reader-token-0123456789";
const MINUTE = 60_000;

/** Wall time that moves only when a test moves it; the hub reads it through `startTestHub`. */
class ManualClock {
  constructor(public now: number) {}
  readonly read = (): Date => new Date(this.now);
  /** Moves the clock forward and returns the new time. */
  advance(ms: number): number {
    this.now += ms;
    return this.now;
  }
}

const iso = (ms: number): string => new Date(ms).toISOString();
const FORMS = [{ href: "http://sensor.example/p" }];

/** A TD with three properties of different shapes and one event with a data schema. */
function sensorTd(id: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return minimalTd({
    id,
    "@type": "Sensor",
    title: "Sensor",
    properties: {
      temperature: { type: "number", minimum: -50, maximum: 150, forms: FORMS },
      mode: { type: "string", enum: ["eco", "boost"], forms: FORMS },
      config: {
        type: "object",
        properties: { level: { type: "integer", minimum: 0 } },
        required: ["level"],
        forms: FORMS,
      },
    },
    events: {
      alarm: {
        data: { type: "object", properties: { code: { type: "integer" } }, required: ["code"] },
        forms: FORMS,
      },
      ping: { forms: FORMS },
    },
    ...overrides,
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

async function remove(hub: TestHub, id: string): Promise<void> {
  expect((await hub.request(thingPath(id), { method: "DELETE" })).status).toBe(204);
}

function postRaw(
  hub: TestHub,
  id: string,
  body: string,
  auth?: boolean | string,
  contentType = "application/json",
): Promise<Response> {
  return hub.request(`${thingPath(id)}/changes`, {
    method: "POST",
    headers: { "content-type": contentType },
    body,
    ...(auth !== undefined && { auth }),
  });
}

/** Reports and expects 201; returns the recorded seqs. */
async function report(hub: TestHub, id: string, body: unknown): Promise<number[]> {
  const res = await postRaw(hub, id, JSON.stringify(body));
  const answer = (await res.json()) as { seqs: number[] };
  expect(res.status, JSON.stringify(answer)).toBe(201);
  return answer.seqs;
}

async function getJson<T>(hub: TestHub, path: string, status = 200): Promise<T> {
  const res = await hub.request(path);
  const body = (await res.json()) as T;
  expect(res.status, `${path}: ${JSON.stringify(body)}`).toBe(status);
  return body;
}

async function getChange(hub: TestHub, seq: number): Promise<Change> {
  return getJson<Change>(hub, `/changes/${seq}`);
}

async function expectProblem(res: Response, status: number): Promise<Problem> {
  const problem = (await res.json()) as Problem;
  expect(res.status, JSON.stringify(problem)).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json\b/);
  expect(problem.status).toBe(status);
  expect(problem.type).toMatch(/^urn:hyperthings:problem:/);
  expect(problem.title.length).toBeGreaterThan(0);
  expect(problem.detail.length).toBeGreaterThan(0);
  return problem;
}

function pointersOf(problem: Problem): string[] {
  return (problem.errors ?? []).map((e) => e.pointer);
}

async function lastSeq(hub: TestHub): Promise<number> {
  return (await getJson<{ lastSeq: number }>(hub, "/health")).lastSeq;
}

/** Every page of a paged listing, following the Link rel="next" headers; checks body `next` agrees. */
async function allPages(hub: TestHub, path: string): Promise<Change[][]> {
  const pages: Change[][] = [];
  let next: string | undefined = path;
  while (next !== undefined) {
    const res = await hub.request(next);
    const page = (await res.json()) as Page;
    expect(res.status, JSON.stringify(page)).toBe(200);
    pages.push(page.changes);
    const link = res.headers.get("link");
    if (page.next === undefined) {
      expect(link).toBeNull();
      next = undefined;
    } else {
      const match = /^<([^>]+)>; rel="next"$/.exec(link ?? "");
      expect(match, `Link header ${link}`).not.toBeNull();
      next = match?.[1];
      expect(new URL(next ?? "", "http://hub").searchParams.get("cursor")).toBe(String(page.next));
    }
    expect(pages.length).toBeLessThan(1000);
  }
  return pages;
}

function seqsOf(changes: readonly Change[]): number[] {
  return changes.map((c) => c.seq);
}

/** Event type, Log position and Change, in a form that compares well. */
function changeEvent(event: SseEvent): [string, number, Change] {
  return [event.event, Number(event.id), JSON.parse(event.data) as Change];
}

describe("reporting state: POST /things/{id}/changes", () => {
  const clock = new ManualClock(Date.parse("2030-03-01T08:00:00.000Z"));
  let hub: TestHub;
  const id = "urn:example:history:reporting";

  beforeAll(async () => {
    hub = await startTestHub({}, { HYPERTHINGS_READ_TOKEN: READ_TOKEN }, { clock: clock.read });
    await put(hub, id, sensorTd(id));
  });
  afterAll(async () => {
    await hub.stop();
  });

  it("records one report and answers 201 with its seq, once it can be read back", async () => {
    const start = await lastSeq(hub);
    const time = clock.advance(MINUTE);
    const seqs = await report(hub, id, { kind: "reported", affordance: "temperature", value: 21.5 });
    expect(seqs).toEqual([start + 1]);
    expect(await lastSeq(hub)).toBe(start + 1);
    const change = await getChange(hub, start + 1);
    expect(change).toEqual({
      seq: start + 1,
      hlc: expect.stringMatching(/^[0-9a-f]{12}-[0-9a-f]{8}-urn:/) as unknown,
      thing: id,
      affordance: "temperature",
      kind: "reported",
      value: 21.5,
      cause: { actor: "admin", via: "http" },
      leaf: expect.stringMatching(/^[0-9a-f]{64}$/) as unknown,
    });
    expect(changeTime(change)).toBe(iso(time));
    expect(change.leaf).toBe(hashToHex(changeLeafHash(change)));
  });

  it("keeps the device's own time `at` as sent, beside the hub's clock", async () => {
    const time = clock.advance(MINUTE);
    const at = "2030-02-28T23:59:59.123+01:00";
    const [seq] = await report(hub, id, { kind: "reported", affordance: "mode", value: "eco", at });
    const change = await getChange(hub, seq ?? 0);
    expect(change).toMatchObject({ affordance: "mode", value: "eco", at });
    expect(changeTime(change)).toBe(iso(time));
  });

  it("records an array of reports in one go: consecutive seqs, growing hlc, each `previous` the value before it", async () => {
    const start = await lastSeq(hub);
    clock.advance(MINUTE);
    const seqs = await report(hub, id, [
      { kind: "reported", affordance: "temperature", value: 22 },
      { kind: "reported", affordance: "config", value: { level: 1 } },
      { kind: "reported", affordance: "temperature", value: 23 },
      { kind: "reported", affordance: "config", value: { level: 2 } },
    ]);
    expect(seqs).toEqual([start + 1, start + 2, start + 3, start + 4]);
    const changes = await Promise.all(seqs.map((s) => getChange(hub, s)));
    expect(changes.map((c) => [c.affordance, c.value, c.previous])).toEqual([
      ["temperature", 22, 21.5],
      ["config", { level: 1 }, undefined],
      ["temperature", 23, 22],
      ["config", { level: 2 }, { level: 1 }],
    ]);
    const hlcs = changes.map((c) => c.hlc);
    expect([...hlcs].sort()).toEqual(hlcs);
    expect(new Set(hlcs).size).toBe(hlcs.length);

    // The chain goes on across requests.
    clock.advance(MINUTE);
    const [next] = await report(hub, id, { kind: "reported", affordance: "temperature", value: 24 });
    expect(await getChange(hub, next ?? 0)).toMatchObject({ value: 24, previous: 23 });
  });

  it("records emitted events whose value fits the event's data schema, chained like properties", async () => {
    clock.advance(MINUTE);
    const [first, second] = await report(hub, id, [
      { kind: "emitted", affordance: "alarm", value: { code: 7 } },
      { kind: "emitted", affordance: "alarm", value: { code: 8 } },
    ]);
    expect(await getChange(hub, first ?? 0)).toMatchObject({
      kind: "emitted",
      affordance: "alarm",
      value: { code: 7 },
      cause: { actor: "admin", via: "http" },
    });
    expect(await getChange(hub, second ?? 0)).toMatchObject({ value: { code: 8 }, previous: { code: 7 } });
  });

  it("checks each property against its own pattern, not the pattern of the first schema compiled", async () => {
    const patterned = "urn:example:history:patterns";
    const form = (name: string) => [{ href: `http://127.0.0.1:1/${name}` }];
    await registerThing(hub, patterned, {
      ...minimalTd({ id: patterned }),
      properties: {
        word: { type: "string", pattern: "^[a-z]+$", forms: form("word") },
        digits: { type: "string", pattern: "^[0-9]+$", forms: form("digits") },
        hostname: {
          type: "string",
          pattern: "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$",
          forms: form("hostname"),
        },
      },
    });
    // Each fits its own pattern and no other: with one regular expression for all, two fail.
    await report(hub, patterned, [
      { kind: "reported", affordance: "word", value: "lamp" },
      { kind: "reported", affordance: "digits", value: "42" },
      { kind: "reported", affordance: "hostname", value: "core-sw-1" },
    ]);
    const refused = await postRaw(
      hub,
      patterned,
      JSON.stringify({ kind: "reported", affordance: "digits", value: "x" }),
    );
    expect(refused.status).toBe(400);
  });

  it("records an event without a data schema with no value", async () => {
    const [seq] = await report(hub, id, { kind: "emitted", affordance: "ping" });
    const change = await getChange(hub, seq ?? 0);
    expect(change).toMatchObject({ kind: "emitted", affordance: "ping" });
    expect("value" in change).toBe(false);
  });

  it("validates against the TD as it is now: after a PUT replaced it, a dropped property is unknown and a new one fits", async () => {
    const other = "urn:example:history:replaced";
    await put(hub, other, sensorTd(other));
    await report(hub, other, { kind: "reported", affordance: "mode", value: "eco" });
    const v2 = sensorTd(other, { properties: { humidity: { type: "integer", forms: FORMS } } });
    await put(hub, other, v2);
    const start = await lastSeq(hub);
    const refused = await postRaw(
      hub,
      other,
      JSON.stringify({ kind: "reported", affordance: "mode", value: "eco" }),
    );
    expect(pointersOf(await expectProblem(refused, 400))).toEqual(["/body/affordance"]);
    expect(await lastSeq(hub)).toBe(start);
    expect(await report(hub, other, { kind: "reported", affordance: "humidity", value: 40 })).toEqual([
      start + 1,
    ]);
  });

  it("records the actor whose token made the request, and refuses those who may not write", async () => {
    const start = await lastSeq(hub);
    const body = JSON.stringify({ kind: "reported", affordance: "temperature", value: 1 });
    await expectProblem(await postRaw(hub, id, body, false), 401);
    await expectProblem(await postRaw(hub, id, body, READ_TOKEN), 403);
    expect(await lastSeq(hub)).toBe(start);
    const [seq] = await report(hub, id, JSON.parse(body));
    expect((await getChange(hub, seq ?? 0)).cause).toEqual({ actor: "admin", via: "http" });
  });

  it("answers GET /changes/{seq} past the end of the Log with 400 (pointer /params/seq)", async () => {
    const end = await lastSeq(hub);
    expect((await getChange(hub, end)).seq).toBe(end);
    const problem = await expectProblem(await hub.request(`/changes/${end + 1}`), 400);
    expect(pointersOf(problem)).toEqual(["/params/seq"]);
    expect(problem.detail).toContain(String(end + 1));
    for (const bad of ["0", "-1", "abc"]) await expectProblem(await hub.request(`/changes/${bad}`), 400);
  });
});

describe("bad reports are refused with a precise problem and append nothing", () => {
  const clock = new ManualClock(Date.parse("2030-03-02T08:00:00.000Z"));
  let hub: TestHub;
  const id = "urn:example:history:bad";
  const gone = "urn:example:history:gone";
  const good = { kind: "reported", affordance: "temperature", value: 20 };

  beforeAll(async () => {
    hub = await startTestHub({}, {}, { clock: clock.read });
    await put(hub, id, sensorTd(id));
    await put(hub, gone, sensorTd(gone));
    await remove(hub, gone);
    await report(hub, id, good);
  });
  afterAll(async () => {
    await hub.stop();
  });

  /** Posts `body` and checks status, pointers and that neither the Log nor the Thing's history moved. */
  async function expectRefused(
    thing: string,
    body: unknown,
    status: number,
    pointers: string[] | ((actual: string[]) => void),
  ): Promise<Problem> {
    const before = await lastSeq(hub);
    const historyBefore = await getJson<Page>(hub, `${thingPath(id)}/history?limit=10000`);
    clock.advance(1000);
    const text = typeof body === "string" ? body : JSON.stringify(body);
    const problem = await expectProblem(await postRaw(hub, thing, text), status);
    if (typeof pointers === "function") pointers(pointersOf(problem));
    else expect(pointersOf(problem)).toEqual(pointers);
    expect(await lastSeq(hub)).toBe(before);
    expect(await getJson<Page>(hub, `${thingPath(id)}/history?limit=10000`)).toEqual(historyBefore);
    return problem;
  }

  it("reads a body only as UTF-8 JSON: another charset, a content coding or invalid bytes are refused", async () => {
    const before = await lastSeq(hub);
    const post = (body: string | Uint8Array, headers: Record<string, string>) =>
      hub.request(`${thingPath(id)}/changes`, { method: "POST", headers, body });
    const text = JSON.stringify(good);
    const utf16 = await expectProblem(
      await post(text, { "content-type": "application/json; charset=utf-16" }),
      415,
    );
    expect(utf16.detail).toBe("A JSON body is UTF-8: charset=utf-16 is not taken");
    for (const [coding, body] of [
      ["br", text],
      ["gzip", gzipSync(text)],
    ] as const) {
      const problem = await expectProblem(
        await post(body, { "content-type": "application/json", "content-encoding": coding }),
        415,
      );
      expect(problem.detail).toBe(
        `The hub takes request bodies as they are: Content-Encoding ${coding} is not taken`,
      );
    }
    // A string with bytes that are no UTF-8 (decoded leniently, they became U+FFFD in the Log).
    const invalid = Buffer.concat([
      Buffer.from('{"kind":"reported","affordance":"mode","value":"eco'),
      Buffer.from([0xff, 0xfe, 0xc0, 0xaf]),
      Buffer.from('"}'),
    ]);
    const bytes = await expectProblem(await post(invalid, { "content-type": "application/json" }), 400);
    expect(bytes.detail).toBe("The request body is not valid UTF-8");
    expect(await lastSeq(hub)).toBe(before);
    expect((await post(text, { "content-type": "application/json; charset=UTF-8" })).status).toBe(201);
  });

  it("refuses a number JSON cannot hold and a value nested too deep, precisely, with 400", async () => {
    // JSON.parse reads 1e400 as Infinity, which no JSON text holds again.
    const huge = await expectRefused(
      id,
      '{"kind":"reported","affordance":"temperature","value":1e400}',
      400,
      ["/body/value"],
    );
    expect(huge.detail).toMatch(/^The JSON is a number out of range at \/value$/);
    await expectRefused(
      id,
      `[${JSON.stringify(good)},{"kind":"reported","affordance":"config","value":{"level":-1e999}}]`,
      400,
      ["/body/1/value/level"],
    );
    // Nesting past what every walk of it (canonical JSON, hashing, verifying) can take.
    const deep = (depth: number) => "[".repeat(depth) + "1" + "]".repeat(depth);
    const nested = await expectRefused(
      id,
      `{"kind":"reported","affordance":"config","value":{"level":1,"more":${deep(100_000)}}}`,
      400,
      (pointers) => expect(pointers[0]).toMatch(/^\/body\/value\/more(\/0){62}$/),
    );
    expect(nested.detail).toMatch(
      /^The JSON nests deeper than 64 levels of arrays and objects at \/value\/more\//,
    );
    // As deep as the hub takes it: recorded, as it was sent.
    const [seq] = await report(hub, id, {
      kind: "reported",
      affordance: "config",
      value: { level: 1, more: JSON.parse(deep(61)) as unknown },
    });
    expect((await getChange(hub, seq ?? 0)).value).toEqual({
      level: 1,
      more: JSON.parse(deep(61)) as unknown,
    });
  });

  it("refuses an event whose data schema asks for a value when none is sent, in plain words", async () => {
    const problem = await expectRefused(id, { kind: "emitted", affordance: "alarm" }, 400, ["/body/value"]);
    expect(problem.detail).toBe("An emitted Change of alarm needs a value: its schema says what it must be");
    const reported = await expectRefused(id, { kind: "reported", affordance: "temperature" }, 400, [
      "/body/value",
    ]);
    expect(reported.detail).toBe(
      "A reported Change of temperature needs a value: its schema says what it must be",
    );
  });

  it("answers a report for an unknown Thing with 404, single or array", async () => {
    const unknown = "urn:example:history:unknown";
    const problem = await expectRefused(unknown, good, 404, []);
    expect(problem.detail).toContain(unknown);
    await expectRefused(unknown, [good, good], 404, []);
  });

  it("answers a report for a Thing that was removed with 404", async () => {
    await expectRefused(gone, good, 404, []);
  });

  it.each<[string, unknown, string[]]>([
    ["an unknown property", { kind: "reported", affordance: "humidity", value: 1 }, ["/body/affordance"]],
    ["an unknown event", { kind: "emitted", affordance: "fire", value: { code: 1 } }, ["/body/affordance"]],
    [
      "an event reported as a property",
      { kind: "reported", affordance: "alarm", value: 1 },
      ["/body/affordance"],
    ],
    [
      "a property emitted as an event",
      { kind: "emitted", affordance: "mode", value: "eco" },
      ["/body/affordance"],
    ],
    [
      "a value of the wrong type",
      { kind: "reported", affordance: "temperature", value: "hot" },
      ["/body/value"],
    ],
    [
      "a value above the maximum",
      { kind: "reported", affordance: "temperature", value: 151 },
      ["/body/value"],
    ],
    ["a value outside the enum", { kind: "reported", affordance: "mode", value: "turbo" }, ["/body/value"]],
    [
      "an object missing a required member",
      { kind: "reported", affordance: "config", value: {} },
      ["/body/value"],
    ],
    [
      "an object member of the wrong type",
      { kind: "reported", affordance: "config", value: { level: "high" } },
      ["/body/value/level"],
    ],
    ["a reported property without a value", { kind: "reported", affordance: "temperature" }, ["/body/value"]],
    [
      "an event with a data schema emitted without a value",
      { kind: "emitted", affordance: "alarm" },
      ["/body/value"],
    ],
    ["event data missing a member", { kind: "emitted", affordance: "alarm", value: {} }, ["/body/value"]],
    [
      "event data of the wrong type",
      { kind: "emitted", affordance: "alarm", value: { code: "x" } },
      ["/body/value/code"],
    ],
  ])("refuses %s with 400 and its pointer", async (_what, body, pointers) => {
    await expectRefused(id, body, 400, pointers);
  });

  it("refuses a whole array when one item names an unknown affordance (pointer /body/i/affordance)", async () => {
    const problem = await expectRefused(
      id,
      [good, { kind: "emitted", affordance: "alarm", value: { code: 1 } }, { ...good, affordance: "nope" }],
      400,
      ["/body/2/affordance"],
    );
    expect(problem.detail).toContain("nope");
  });

  it("refuses a whole array when one item's value does not fit (pointer /body/i/value…)", async () => {
    await expectRefused(
      id,
      [good, { kind: "reported", affordance: "config", value: { level: -1 } }, good],
      400,
      ["/body/1/value/level"],
    );
  });

  it("refuses an array of 10,000 reports whose last one is wrong, and records none of the others", async () => {
    const body = Array.from({ length: 10_000 }, (_, i) => ({ ...good, value: i % 100 }));
    body[9_999] = { ...good, value: 1000 };
    await expectRefused(id, body, 400, ["/body/9999/value"]);
  });

  it("accepts an array of exactly 10,000 reports and refuses 10,001", async () => {
    await expectRefused(
      id,
      Array.from({ length: 10_001 }, () => good),
      400,
      (pointers) => expect(pointers).toContain("/body"),
    );
    const start = await lastSeq(hub);
    const seqs = await report(
      hub,
      id,
      Array.from({ length: 10_000 }, (_, i) => ({ ...good, value: i % 100 })),
    );
    expect(seqs).toEqual(Array.from({ length: 10_000 }, (_, i) => start + 1 + i));
  });

  it.each<[string, unknown, string]>([
    ["a kind the hub keeps for itself (desired)", { ...good, kind: "desired" }, "/body/kind"],
    ["an unknown kind", { ...good, kind: "guessed" }, "/body/kind"],
    ["no affordance", { kind: "reported", value: 1 }, "/body/affordance"],
    ["an `at` that is not an RFC 3339 date-time", { ...good, at: "yesterday" }, "/body/at"],
    // The same rule as over MQTT: a leap second no Date can hold, a space for the T, a day past
    // the month's end.
    ["an `at` of a leap second", { ...good, at: "2030-12-31T23:59:60Z" }, "/body/at"],
    ["an `at` with a space for the T", { ...good, at: "2030-03-01 08:00:00Z" }, "/body/at"],
    ["an `at` of February 30th", { ...good, at: "2030-02-30T08:00:00Z" }, "/body/at"],
    ["a bad `at` in an array", [good, { ...good, at: "2030-03-01 08:00:00Z" }], "/body/1/at"],
    ["an unknown member", { ...good, unit: "°C" }, "/body"],
    ["an empty array", [], "/body"],
    ["an array holding a bad item", [good, { ...good, kind: "desired" }], "/body/1/kind"],
  ])("refuses %s with 400, at that place alone", async (_what, body, pointer) => {
    // Only the errors of the body's own shape: an object is not also told it "must be array".
    const problem = await expectRefused(id, body, 400, [pointer]);
    expect(problem.detail).not.toMatch(/must be (array|object)|oneOf/);
  });

  it("answers 503 with Retry-After before reading the body while the store's queue is full", async () => {
    const store = hub.hub.store as { saturated?: () => boolean };
    const saturated = store.saturated;
    store.saturated = () => true;
    try {
      const before = await lastSeq(hub);
      const res = await postRaw(hub, id, JSON.stringify(good));
      const problem = await expectProblem(res, 503);
      expect(res.headers.get("retry-after")).toBe("1");
      expect(problem.detail).toBe("Too many Changes are waiting to be written; retry shortly");
      expect(await lastSeq(hub)).toBe(before);
    } finally {
      store.saturated = saturated;
    }
    expect(await report(hub, id, good)).toHaveLength(1);
  });

  it("says what it takes: the kinds, the members, the media type, the size", async () => {
    const kind = await expectRefused(id, { ...good, kind: "guessed" }, 400, ["/body/kind"]);
    expect(kind.errors?.[0]?.detail).toMatch(/^must be one of "reported", /);
    const member = await expectRefused(id, { ...good, unit: "°C" }, 400, ["/body"]);
    expect(member.errors?.[0]?.detail).toMatch(/^has no member "unit" \(it takes "kind", /);
    const parameter = await expectProblem(await hub.request(`${thingPath(id)}/history?colour=red`), 400);
    expect(parameter.detail).toMatch(/has no parameter "colour" \(it takes "affordance", /);
    const media = await expectProblem(
      await hub.request(`${thingPath(id)}/changes`, {
        method: "POST",
        headers: { "content-type": "text/plain" },
        body: JSON.stringify(good),
      }),
      415,
    );
    expect(media.detail).toMatch(/send application\/json$/);
    // The JSON media types of other routes are no report either: a TD, a merge patch.
    const before = await lastSeq(hub);
    for (const type of ["application/td+json", "application/merge-patch+json; charset=utf-8"]) {
      const other = await expectProblem(
        await hub.request(`${thingPath(id)}/changes`, {
          method: "POST",
          headers: { "content-type": type },
          body: JSON.stringify(good),
        }),
        415,
      );
      expect(other.detail).toMatch(/send application\/json$/);
    }
    expect(await lastSeq(hub)).toBe(before);
    const huge = await expectProblem(
      await hub.request(`${thingPath(id)}/changes`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ ...good, value: 1, note: "x".repeat(2 * 1024 * 1024) }),
      }),
      413,
    );
    expect(huge.detail).toMatch(/^The request body is larger than this endpoint takes \(\d+ MiB\)$/);
    expect(typeof (huge as { limit?: unknown }).limit).toBe("number");
  });

  it.each([
    ["malformed JSON", '{"kind": "reported",'],
    ["a JSON string", '"reported"'],
    ["an empty body", ""],
  ])("refuses %s with 400", async (_what, body) => {
    await expectRefused(id, body, 400, () => undefined);
  });
});

describe("a Thing's history: GET /things/{id}/history", () => {
  const start = Date.parse("2030-03-03T08:00:00.000Z");
  const clock = new ManualClock(start);
  let hub: TestHub;
  const id = "urn:example:history:paged";
  const other = "urn:example:history:other";
  /** The time at which each of the Thing's Changes was recorded, by seq. */
  const times = new Map<number, number>();
  let all: Change[] = [];

  beforeAll(async () => {
    hub = await startTestHub({}, {}, { clock: clock.read });
    await put(hub, id, sensorTd(id));
    await put(hub, other, sensorTd(other));
    for (let i = 0; i < 30; i++) {
      const time = clock.advance(MINUTE);
      const body =
        i % 5 === 4
          ? { kind: "emitted", affordance: "alarm", value: { code: i } }
          : i % 3 === 0
            ? { kind: "reported", affordance: "mode", value: i % 2 === 0 ? "eco" : "boost" }
            : { kind: "reported", affordance: "temperature", value: i };
      for (const seq of await report(hub, id, body)) times.set(seq, time);
      // Another Thing's Changes in between, which no history of this one shows.
      await report(hub, other, { kind: "reported", affordance: "temperature", value: i });
    }
    all = (await getJson<Page>(hub, `/changes?thing=${encodeURIComponent(id)}&limit=10000`)).changes;
    expect(all).toHaveLength(31);
  });
  afterAll(async () => {
    await hub.stop();
  });

  const path = (query: string) => `${thingPath(id)}/history?${query}`;

  it("pages oldest first with order=asc, visiting every Change of the Thing once", async () => {
    const pages = await allPages(hub, path("order=asc&limit=7"));
    expect(pages.map((p) => p.length)).toEqual([7, 7, 7, 7, 3]);
    expect(pages.flat()).toEqual(all);
  });

  it("pages newest first by default, visiting every Change of the Thing once", async () => {
    const pages = await allPages(hub, path("limit=4"));
    expect(pages.flat()).toEqual([...all].reverse());
    expect(await allPages(hub, path("order=desc&limit=31"))).toEqual([[...all].reverse()]);
  });

  it("filters by affordance, and by a list of kinds, while paging", async () => {
    const temperature = all.filter((c) => c.affordance === "temperature");
    expect(temperature.length).toBeGreaterThan(5);
    expect((await allPages(hub, path("affordance=temperature&order=asc&limit=3"))).flat()).toEqual(
      temperature,
    );

    const emitted = all.filter((c) => c.kind === "emitted");
    expect(emitted).toHaveLength(6);
    expect((await allPages(hub, path("kind=emitted&limit=4"))).flat()).toEqual([...emitted].reverse());

    const both = all.filter((c) => c.kind === "emitted" || c.kind === "described");
    expect((await allPages(hub, path("kind=described,emitted&order=asc&limit=2"))).flat()).toEqual(both);
    expect((await getJson<Page>(hub, path("kind=desired"))).changes).toEqual([]);
  });

  it("keeps Changes from `since` to `until` inclusive, both as RFC 3339", async () => {
    const reports = all.filter((c) => c.kind !== "described");
    const from = times.get(reports[5]?.seq ?? 0) ?? 0;
    const to = times.get(reports[9]?.seq ?? 0) ?? 0;
    const query = `since=${iso(from)}&until=${iso(to)}&order=asc&limit=2`;
    expect(seqsOf((await allPages(hub, path(query))).flat())).toEqual(seqsOf(reports.slice(5, 10)));
    const newestFirst = `since=${iso(from)}&until=${iso(to)}&limit=2`;
    expect(seqsOf((await allPages(hub, path(newestFirst))).flat())).toEqual(
      seqsOf(reports.slice(5, 10)).reverse(),
    );
    // One millisecond inside either end drops that end.
    const narrower = `since=${iso(from + 1)}&until=${iso(to - 1)}&order=asc`;
    expect(seqsOf((await getJson<Page>(hub, path(narrower))).changes)).toEqual(seqsOf(reports.slice(6, 9)));
    expect(seqsOf((await getJson<Page>(hub, path(`until=${iso(from)}&order=asc`))).changes)).toEqual(
      seqsOf(all.slice(0, 7)),
    );
    expect(seqsOf((await getJson<Page>(hub, path(`since=${iso(to)}&order=asc`))).changes)).toEqual(
      seqsOf(reports.slice(9)),
    );
  });

  it("understands relative times: since=-15m is the last 15 minutes of the hub's clock", async () => {
    const now = clock.now;
    const expected = all.filter((c) => (times.get(c.seq) ?? start) >= now - 15 * MINUTE);
    expect(expected).toHaveLength(16);
    expect((await getJson<Page>(hub, path("since=-15m&order=asc"))).changes).toEqual(expected);
  });

  it.each(["since", "until"])(
    "refuses a %s that is not a time with 400 (pointer /query/<name>)",
    async (name) => {
      const problem = await expectProblem(await hub.request(path(`${name}=half%20past%20nine`)), 400);
      expect(pointersOf(problem)).toEqual([`/query/${name}`]);
      expect(problem.detail).toContain("half past nine");
    },
  );

  it("refuses since after until with 400", async () => {
    const problem = await expectProblem(
      await hub.request(path(`since=${iso(start + 2 * MINUTE)}&until=${iso(start + MINUTE)}`)),
      400,
    );
    expect(pointersOf(problem)).toEqual(["/query/since"]);
  });

  // Route schema errors point into the query as the hub's own checks do (/query/…), as in the directory API.
  it.each([
    ["an unknown order", "order=sideways", "/query/order"],
    ["a limit of 0", "limit=0", "/query/limit"],
    ["a limit above 10,000", "limit=10001", "/query/limit"],
    ["a negative cursor", "cursor=-1", "/query/cursor"],
    ["a malformed kind list", "kind=reported,,emitted", "/query/kind"],
    ["an unknown parameter", "colour=red", "/query"],
  ])("refuses %s with 400 (pointer %s)", async (_what, query, pointer) => {
    const problem = await expectProblem(await hub.request(path(query)), 400);
    expect(pointersOf(problem)).toContain(pointer);
  });

  it("says in words what a malformed kind list must be, not with its regular expression", async () => {
    const problem = await expectProblem(await hub.request(path("kind=Bad-kind!")), 400);
    expect(problem.errors).toEqual([
      {
        pointer: "/query/kind",
        detail:
          "must be kinds separated by commas, each a letter then letters, digits, _ or - (reported,desired)",
      },
    ]);
    expect(problem.detail).not.toContain("^[A-Za-z]");
  });

  it("refuses a kind the hub never records, in a history and in the feed, naming the kinds it does record", async () => {
    // A misspelt kind would answer an empty page: "nothing happened", while the Thing reported.
    for (const url of [path("kind=reprted"), path("kind=reported,reprted"), "/changes?kind=reprted"]) {
      const problem = await expectProblem(await hub.request(url), 400);
      expect(pointersOf(problem)).toEqual(["/query/kind"]);
      expect(problem.detail).toContain('"reprted"');
      expect(problem.detail).toContain("reported, desired");
    }
    // The live stream refuses it before it opens: no stream that stays silent for ever.
    const stream = await hub.request("/changes/stream?kind=emited", {
      headers: { accept: "text/event-stream" },
    });
    expect(pointersOf(await expectProblem(stream, 400))).toEqual(["/query/kind"]);
    // Every kind the hub records is a filter, even one this Thing has no Change of.
    for (const kind of ["released", "applied", "drift", "alert", "unreachable", "linked"]) {
      expect((await getJson<Page>(hub, path(`kind=${kind}`))).changes).toEqual([]);
    }
    expect((await getJson<Page>(hub, path("kind=emitted&limit=100"))).changes).toHaveLength(6);
  });

  it("answers the history of a Thing never registered with 404", async () => {
    await expectProblem(await hub.request(`${thingPath("urn:example:history:never")}/history`), 404);
  });

  it("refuses an affordance the Thing neither has nor ever had a Change of (400, pointer /query/affordance)", async () => {
    const problem = await expectProblem(await hub.request(path("affordance=temprature")), 400);
    expect(pointersOf(problem)).toEqual(["/query/affordance"]);
    expect(problem.detail).toContain('"temprature"');
    expect(problem.detail).toContain("(it has temperature, mode, config, alarm, ping)");
    // Declared but never reported, or nothing of the kinds asked: an empty page, not an error.
    expect((await getJson<Page>(hub, path("affordance=config"))).changes).toEqual([]);
    expect((await getJson<Page>(hub, path("affordance=temperature&kind=desired"))).changes).toEqual([]);
    // A property the TD no longer has keeps its history, and a filter on it is no mistake.
    const replaced = "urn:example:history:dropped";
    await put(hub, replaced, sensorTd(replaced));
    const [seq] = await report(hub, replaced, { kind: "reported", affordance: "mode", value: "eco" });
    await put(
      hub,
      replaced,
      sensorTd(replaced, { properties: { humidity: { type: "integer", forms: FORMS } } }),
    );
    const dropped = `${thingPath(replaced)}/history?affordance=mode`;
    expect(seqsOf((await getJson<Page>(hub, dropped)).changes)).toEqual([seq]);
    expect((await getJson<Page>(hub, `${thingPath(replaced)}/history?affordance=humidity`)).changes).toEqual(
      [],
    );
    const gone = await expectProblem(
      await hub.request(`${thingPath(replaced)}/history?affordance=temperature`),
      400,
    );
    expect(gone.detail).toContain("(it has humidity, alarm, ping)");
  });

  it("reads a relative since and until once: the next page's link carries them as read", async () => {
    const now = clock.now;
    const expected = all.filter((c) => {
      const at = times.get(c.seq) ?? 0;
      return at >= now - 10 * MINUTE && at <= now - MINUTE;
    });
    expect(expected.length).toBeGreaterThan(3);
    const first = await hub.request(path("since=-10m&until=-1m&order=asc&limit=3"));
    const next = /^<([^>]+)>; rel="next"$/.exec(first.headers.get("link") ?? "")?.[1] ?? "";
    const query = new URL(next, "http://hub").searchParams;
    expect(query.get("since")).toBe(new Date(now - 10 * MINUTE).toISOString());
    expect(query.get("until")).toBe(new Date(now - MINUTE).toISOString());
    // Followed an hour later, it goes on where the first page stopped, not from a later "now".
    clock.advance(60 * MINUTE);
    const rest = (await allPages(hub, next)).flat();
    expect([...((await first.json()) as Page).changes, ...rest]).toEqual(expected);
    // The feed's link too.
    const feed = await hub.request(`/changes?thing=${encodeURIComponent(id)}&since=-70m&limit=2`);
    const feedNext = /^<([^>]+)>; rel="next"$/.exec(feed.headers.get("link") ?? "")?.[1] ?? "";
    expect(new URL(feedNext, "http://hub").searchParams.get("since")).toBe(
      new Date(clock.now - 70 * MINUTE).toISOString(),
    );
  });
});

describe("a wall clock that stepped back", () => {
  // The HLC goes on from the Log's last stamp when the system clock steps back (NTP correcting a
  // clock that ran ahead): the Changes made since are stamped ahead of the wall clock, and "now"
  // must still include them.
  const clock = new ManualClock(Date.parse("2030-03-07T08:00:00.000Z"));
  let hub: TestHub;
  const id = "urn:example:history:clock";

  beforeAll(async () => {
    hub = await startTestHub({}, {}, { clock: clock.read });
    await put(hub, id, sensorTd(id));
    clock.advance(MINUTE);
    await report(hub, id, { kind: "reported", affordance: "temperature", value: 20 });
    clock.advance(-10 * MINUTE);
    await report(hub, id, { kind: "reported", affordance: "temperature", value: 21 });
  });
  afterAll(async () => {
    await hub.stop();
  });

  it("gives the state now with every Change made, also those stamped ahead of the wall clock", async () => {
    const now = await getJson<ThingState>(hub, `${thingPath(id)}/state`);
    expect(now.properties.temperature?.value).toBe(21);
    // A time after the wall clock's now is read as the Log's now, not as a time before its end.
    const later = await getJson<ThingState>(hub, `${thingPath(id)}/state?at=%2B1h`);
    expect(later.properties.temperature?.value).toBe(21);
  });

  it("diffs up to now with every Change made", async () => {
    const diff = await getJson<ThingDiff>(hub, `${thingPath(id)}/diff?from=-1h`);
    expect(diff.properties).toMatchObject([{ affordance: "temperature", after: 21, changes: 2 }]);
  });
});

describe("local times in queries", () => {
  // Built from local calendar fields, so "yesterday 14:02" means the same in every time zone.
  const day1 = (h: number, m: number, s = 0) => new Date(2030, 2, 10, h, m, s).getTime();
  const clock = new ManualClock(day1(13, 0));
  let hub: TestHub;
  const id = "urn:example:history:local";

  beforeAll(async () => {
    hub = await startTestHub({}, {}, { clock: clock.read });
    await put(hub, id, sensorTd(id));
  });
  afterAll(async () => {
    await hub.stop();
  });

  it("refuses a local time the hub's clocks skipped or went through twice, naming the offsets to give", async () => {
    const before = process.env.TZ;
    process.env.TZ = "Europe/Berlin";
    try {
      const skipped = await expectProblem(
        await hub.request(`${thingPath(id)}/state?at=2030-03-31T02:30`),
        400,
      );
      expect(skipped.errors).toEqual([
        { pointer: "/query/at", detail: "is a local time that did not happen in Europe/Berlin" },
      ]);
      expect(skipped.detail).toContain("2030-03-31T02:30:00+01:00");
      const twice = await expectProblem(
        await hub.request(`${thingPath(id)}/diff?from=2029-10-28%2002:30`),
        400,
      );
      expect(twice.errors).toEqual([
        { pointer: "/query/from", detail: "is a local time that happened twice in Europe/Berlin" },
      ]);
      expect(twice.detail).toContain("2029-10-28T02:30:00+02:00 or 2029-10-28T02:30:00+01:00");
    } finally {
      if (before === undefined) delete process.env.TZ;
      else process.env.TZ = before;
    }
  });

  it("reads until=yesterday 14:02 as 14:02:00 of the day before the hub's today, inclusive", async () => {
    const seqs: number[] = [];
    for (const [h, m, s] of [
      [14, 1, 59],
      [14, 2, 0],
      [14, 2, 1],
      [15, 0, 0],
    ] as const) {
      clock.now = day1(h, m, s);
      seqs.push(...(await report(hub, id, { kind: "reported", affordance: "temperature", value: m })));
    }
    clock.now = new Date(2030, 2, 11, 9, 0).getTime();
    const page = await getJson<Page>(
      hub,
      `${thingPath(id)}/history?kind=reported&order=asc&until=${encodeURIComponent("yesterday 14:02")}`,
    );
    expect(seqsOf(page.changes)).toEqual(seqs.slice(0, 2));
    const since = await getJson<Page>(
      hub,
      `${thingPath(id)}/history?order=asc&since=${encodeURIComponent("yesterday 14:02")}`,
    );
    expect(seqsOf(since.changes)).toEqual(seqs.slice(1));
  });
});

describe("time travel: GET /things/{id}/state?at= and /diff", () => {
  const clock = new ManualClock(Date.parse("2030-03-04T08:00:00.000Z"));
  let hub: TestHub;
  const id = "urn:example:history:travel";
  const v1 = sensorTd(id);
  const humidity = { type: "integer", minimum: 0, maximum: 100, forms: FORMS };
  const v2 = sensorTd(id, {
    title: "Sensor v2",
    properties: { ...(v1.properties as Record<string, unknown>), humidity },
  });
  /** t[0] registered, t[1..2] reports, t[3] TD replaced, t[4] reports, t[5] removed. */
  const t: number[] = [];
  const seq: Record<string, number> = {};

  beforeAll(async () => {
    hub = await startTestHub({}, {}, { clock: clock.read });
    t.push(clock.advance(MINUTE));
    await put(hub, id, v1);
    t.push(clock.advance(MINUTE));
    [seq.t20 = 0] = await report(hub, id, { kind: "reported", affordance: "temperature", value: 20 });
    t.push(clock.advance(MINUTE));
    [seq.t21 = 0, seq.eco = 0] = await report(hub, id, [
      { kind: "reported", affordance: "temperature", value: 21 },
      { kind: "reported", affordance: "mode", value: "eco", at: "2030-03-04T08:02:59.500Z" },
    ]);
    t.push(clock.advance(MINUTE));
    await put(hub, id, v2);
    seq.v2 = await lastSeq(hub);
    t.push(clock.advance(MINUTE));
    [seq.t22 = 0, seq.h40 = 0] = await report(hub, id, [
      { kind: "reported", affordance: "temperature", value: 22 },
      { kind: "reported", affordance: "humidity", value: 40 },
    ]);
    t.push(clock.advance(MINUTE));
    await remove(hub, id);
    clock.advance(MINUTE);
  });
  afterAll(async () => {
    await hub.stop();
  });

  const tAt = (i: number): number => t[i] ?? 0;
  const state = (at: string) =>
    getJson<ThingState>(hub, `${thingPath(id)}/state?at=${encodeURIComponent(at)}`);
  const admin = { actor: "admin", via: "http" };

  it("answers 404 before the Thing was registered, saying when it was", async () => {
    const problem = await expectProblem(
      await hub.request(`${thingPath(id)}/state?at=${iso(tAt(0) - 1)}`),
      404,
    );
    expect(problem.detail).toBe(
      `${id} was not in the directory at ${iso(tAt(0) - 1)}: it was registered after that, ` +
        `at ${iso(tAt(0))} (seq 1); ask for a time from then on`,
    );
  });

  it("gives the TD and no values at the moment of registration", async () => {
    const s = await state(iso(tAt(0)));
    expect(s).toEqual({ thing: id, at: iso(tAt(0)), seq: 1, td: v1, properties: {}, desired: {} });
  });

  it("gives each property's value, seq, time and cause as they were at past times", async () => {
    const s1 = await state(iso(tAt(1) + 30_000));
    expect(s1).toMatchObject({ thing: id, at: iso(tAt(1) + 30_000), seq: seq.t20, td: v1 });
    expect(s1.properties).toEqual({
      temperature: { value: 20, seq: seq.t20, time: iso(tAt(1)), cause: admin },
    });

    const s2 = await state(iso(tAt(2)));
    expect(s2.seq).toBe(seq.eco);
    expect(s2.properties).toEqual({
      temperature: { value: 21, seq: seq.t21, time: iso(tAt(2)), cause: admin },
      mode: { value: "eco", seq: seq.eco, time: iso(tAt(2)), at: "2030-03-04T08:02:59.500Z", cause: admin },
    });
    // A millisecond before the second report, the first still stands.
    expect((await state(iso(tAt(2) - 1))).properties.temperature?.value).toBe(20);
  });

  it("gives the TD as it was: the first one before a PUT replaced it, the new one after", async () => {
    expect((await state(iso(tAt(3) - 1))).td).toEqual(v1);
    const s3 = await state(iso(tAt(3)));
    expect(s3.td).toEqual(v2);
    expect(s3.seq).toBe(seq.v2);
    expect(Object.keys(s3.properties).sort()).toEqual(["mode", "temperature"]);

    const s4 = await state(iso(tAt(4)));
    expect(s4.td).toEqual(v2);
    expect(s4.properties).toMatchObject({
      temperature: { value: 22, seq: seq.t22 },
      mode: { value: "eco", seq: seq.eco },
      humidity: { value: 40, seq: seq.h40, time: iso(tAt(4)) },
    });
  });

  it("answers 404 from the removal on, and now", async () => {
    expect((await state(iso(tAt(5) - 1))).properties.humidity?.value).toBe(40);
    const removed = await expectProblem(await hub.request(`${thingPath(id)}/state?at=${iso(tAt(5))}`), 404);
    // When it went, so that a person can ask again just before.
    expect(removed.detail).toBe(
      `${id} was not in the directory at ${iso(tAt(5))}: it was removed at ${iso(tAt(5))}`,
    );
    await expectProblem(await hub.request(`${thingPath(id)}/state?at=${iso(tAt(5) + 3_600_000)}`), 404);
    await expectProblem(await hub.request(`${thingPath(id)}/state`), 404);
  });

  it("reads a time after now as now: the answer says so, and stays the same when asked later", async () => {
    const other = "urn:example:history:future";
    await put(hub, other, sensorTd(other));
    const [reading = 0] = await report(hub, other, {
      kind: "reported",
      affordance: "temperature",
      value: 30,
    });
    const now = clock.now;
    const later = iso(now + 3_600_000);
    const s = await getJson<ThingState>(hub, `${thingPath(other)}/state?at=${encodeURIComponent(later)}`);
    expect(s).toMatchObject({ at: iso(now), seq: reading, properties: { temperature: { value: 30 } } });
    const d = await getJson<ThingDiff>(
      hub,
      `${thingPath(other)}/diff?from=${encodeURIComponent(iso(now - MINUTE))}&to=${encodeURIComponent(later)}`,
    );
    expect(d).toMatchObject({ from: iso(now - MINUTE), to: iso(now), toSeq: reading });
    // Both ends after now: an empty diff at now, not a refusal.
    const ahead = await getJson<ThingDiff>(
      hub,
      `${thingPath(other)}/diff?from=${encodeURIComponent(later)}&to=${encodeURIComponent(iso(now + 7_200_000))}`,
    );
    expect(ahead).toMatchObject({ from: iso(now), to: iso(now), properties: [], actions: [], events: [] });
    await remove(hub, other);
  });

  it("understands a relative `at`, against the hub's clock", async () => {
    // The clock stands one minute after the removal: -150s is half a minute after t[3].
    expect((await state("-150s")).td).toEqual(v2);
    expect((await state("-150s")).properties.humidity).toBeUndefined();
  });

  it("refuses an `at` that is not a time (400, pointer /query/at), and answers an unknown Thing with 404", async () => {
    const problem = await expectProblem(await hub.request(`${thingPath(id)}/state?at=soon`), 400);
    expect(pointersOf(problem)).toEqual(["/query/at"]);
    const nobody = await expectProblem(
      await hub.request(`${thingPath("urn:example:history:nobody")}/state?at=${iso(tAt(2))}`),
      404,
    );
    expect(nobody.detail).toBe("No Thing with id urn:example:history:nobody has ever been registered here");
  });

  it("refuses a relative time beyond the range of a Date with 400 (pointer /query/<name>), not a 500", async () => {
    const cases = [
      [`${thingPath(id)}/state?at=-999999999d`, "at"],
      [`${thingPath(id)}/state?at=%2B99999999999w`, "at"],
      [`${thingPath(id)}/history?since=-999999999d`, "since"],
      [`${thingPath(id)}/diff?from=-999999999d`, "from"],
      ["/changes?since=-999999999d", "since"],
    ] as const;
    const answers = [];
    for (const [path] of cases) {
      const res = await hub.request(path);
      const problem = (await res.json()) as Problem;
      answers.push([path, res.status, pointersOf(problem)]);
    }
    expect(answers).toEqual(cases.map(([path, name]) => [path, 400, [`/query/${name}`]]));
  });

  it("diffs two times: per property before, after, how many Changes, and the last cause", async () => {
    const diff = await getJson<ThingDiff>(hub, `${thingPath(id)}/diff?from=${iso(tAt(1))}&to=${iso(tAt(4))}`);
    expect(diff).toMatchObject({
      thing: id,
      from: iso(tAt(1)),
      to: iso(tAt(4)),
      fromSeq: seq.t20,
      toSeq: seq.h40,
    });
    const byName = Object.fromEntries(diff.properties.map((p) => [p.affordance, p]));
    expect(byName).toEqual({
      temperature: {
        affordance: "temperature",
        before: 20,
        after: 22,
        changes: 2,
        cause: admin,
        time: iso(tAt(4)),
      },
      mode: { affordance: "mode", after: "eco", changes: 1, cause: admin, time: iso(tAt(2)) },
      humidity: { affordance: "humidity", after: 40, changes: 1, cause: admin, time: iso(tAt(4)) },
    });
  });

  it("describes a TD replaced in between as a merge patch from the old TD to the new", async () => {
    const diff = await getJson<ThingDiff>(hub, `${thingPath(id)}/diff?from=${iso(tAt(2))}&to=${iso(tAt(3))}`);
    expect(diff.description).toEqual({ title: "Sensor v2", properties: { humidity } });
    expect(diff.description).toEqual(createMergePatch(v1, v2));
    expect(diff.properties).toEqual([]);
  });

  it("says who described the Thing in between, and counts its description Changes", async () => {
    const diff = await getJson<ThingDiff>(hub, `${thingPath(id)}/diff?from=${iso(tAt(2))}&to=${iso(tAt(3))}`);
    expect(diff.descriptionChanges).toEqual({
      counts: { described: 1 },
      last: { seq: seq.v2, kind: "described", cause: admin, time: iso(tAt(3)) },
    });
  });

  it("tells a Thing registered and removed in between from one that did not change", async () => {
    // Absent at both ends: no patch (null to null), but the Changes in between say what happened.
    const diff = await getJson<ThingDiff>(
      hub,
      `${thingPath(id)}/diff?from=${iso(tAt(0) - 1)}&to=${iso(tAt(5) + 1)}`,
    );
    expect(diff.description).toBeUndefined();
    expect(diff.descriptionChanges).toMatchObject({
      counts: { described: 2, removed: 1 },
      last: { kind: "removed", cause: admin, time: iso(tAt(5)) },
    });
  });

  it("has no description and no properties when nothing changed in between", async () => {
    const diff = await getJson<ThingDiff>(
      hub,
      `${thingPath(id)}/diff?from=${iso(tAt(2))}&to=${iso(tAt(3) - 1)}`,
    );
    expect(diff).toEqual({
      thing: id,
      from: iso(tAt(2)),
      to: iso(tAt(3) - 1),
      fromSeq: seq.eco,
      toSeq: seq.eco,
      properties: [],
      actions: [],
      writes: [],
      events: [],
    });
  });

  it("refuses from after to (400), a bad time (400, pointer), and no from (400)", async () => {
    const after = await expectProblem(
      await hub.request(`${thingPath(id)}/diff?from=${iso(tAt(3))}&to=${iso(tAt(2))}`),
      400,
    );
    expect(pointersOf(after)).toEqual(["/query/from"]);
    const bad = await expectProblem(
      await hub.request(`${thingPath(id)}/diff?from=${iso(tAt(2))}&to=later`),
      400,
    );
    expect(pointersOf(bad)).toEqual(["/query/to"]);
    await expectProblem(await hub.request(`${thingPath(id)}/diff?to=${iso(tAt(2))}`), 400);
    // A from after the hub's now is read as now first: with `to` left at now, nothing in between.
    const ahead = await getJson<ThingDiff>(hub, `${thingPath(id)}/diff?from=%2B1m`);
    expect(ahead.from).toBe(ahead.to);
    expect(ahead.properties).toEqual([]);
  });

  it("answers a diff of a Thing that was never registered with 404", async () => {
    await expectProblem(
      await hub.request(`${thingPath("urn:example:history:nobody")}/diff?from=${iso(tAt(0))}`),
      404,
    );
  });

  it("answers a diff of a known Thing over times before it was registered with 404, naming them and when it was", async () => {
    const [from, to] = [iso(tAt(0) - 2 * MINUTE), iso(tAt(0) - 1)];
    const problem = await expectProblem(
      await hub.request(`${thingPath(id)}/diff?from=${from}&to=${to}`),
      404,
    );
    expect(problem.detail).toBe(
      `${id} was not in the directory between ${from} and ${to}: it was registered after that, ` +
        `at ${iso(tAt(0))} (seq 1); ask for times from then on`,
    );
  });
});

describe("diff: the actions, writes and events in between", () => {
  const clock = new ManualClock(Date.parse("2030-03-06T08:00:00.000Z"));
  let hub: TestHub;
  const id = "urn:example:history:actions";
  const operator = { actor: "operator", via: "test" };
  /** t[0] registered; t[1] alarm 1; t[2] reboot invoked, completed; t[3] alarm 2, ping; t[4] reboot invoked, failed. */
  const t: number[] = [];
  const seqs: number[][] = [];

  beforeAll(async () => {
    hub = await startTestHub({}, {}, { clock: clock.read });
    const reboot = {
      input: { type: "object", properties: { delay: { type: "integer" } } },
      forms: FORMS,
    };
    t.push(clock.advance(MINUTE));
    await put(hub, id, sensorTd(id, { actions: { reboot } }));
    const steps = [
      [{ kind: "emitted", affordance: "alarm", value: { code: 1 } }],
      [
        { kind: "invoked", affordance: "reboot", value: { delay: 5 } },
        { kind: "completed", affordance: "reboot" },
        // A property's write ends with `completed` too: that is no action.
        { kind: "desired", affordance: "temperature", value: 21 },
        { kind: "completed", affordance: "temperature" },
      ],
      [
        { kind: "emitted", affordance: "alarm", value: { code: 2 } },
        { kind: "emitted", affordance: "ping" },
      ],
      [
        { kind: "invoked", affordance: "reboot", value: { delay: 0 } },
        { kind: "failed", affordance: "reboot", value: { message: "busy" } },
      ],
    ];
    for (const reports of steps) {
      t.push(clock.advance(MINUTE));
      seqs.push((await hub.hub.ingest(id, reports, operator)).map((c) => c.seq));
    }
    clock.advance(MINUTE);
  });
  afterAll(async () => {
    await hub.stop();
  });
  const at = (i: number): string => iso(t[i] ?? 0);
  const diff = (from: string, to: string) =>
    getJson<ThingDiff>(hub, `${thingPath(id)}/diff?from=${from}&to=${to}`);

  it("counts each action's Changes by kind and each event's emissions, with the last of each", async () => {
    const d = await diff(at(0), at(4));
    expect(d.properties).toEqual([]);
    expect(d.actions).toEqual([
      {
        affordance: "reboot",
        counts: { invoked: 2, completed: 1, failed: 1 },
        last: { seq: seqs[3]?.[1], kind: "failed", value: { message: "busy" }, cause: operator, time: at(4) },
      },
    ]);
    // The operator's write of the temperature, which the Thing never reported: not a property
    // that changed, nor an action, but who asked for what.
    expect(d.writes).toEqual([
      {
        affordance: "temperature",
        counts: { desired: 1, completed: 1 },
        last: { seq: seqs[1]?.[3], kind: "completed", cause: operator, time: at(2) },
        // The outcome has no value: what the write asked for is its desired.
        desired: { seq: seqs[1]?.[2], kind: "desired", value: 21, cause: operator, time: at(2) },
      },
    ]);
    expect(d.events).toEqual([
      {
        affordance: "alarm",
        counts: { emitted: 2 },
        last: { seq: seqs[2]?.[0], kind: "emitted", value: { code: 2 }, cause: operator, time: at(3) },
      },
      {
        affordance: "ping",
        counts: { emitted: 1 },
        last: { seq: seqs[2]?.[1], kind: "emitted", cause: operator, time: at(3) },
      },
    ]);
  });

  it("leaves out what happened at or before `from` and after `to`", async () => {
    const d = await diff(at(1), at(2));
    expect(d.actions).toMatchObject([{ affordance: "reboot", counts: { invoked: 1, completed: 1 } }]);
    expect(d.writes).toMatchObject([{ affordance: "temperature", counts: { desired: 1, completed: 1 } }]);
    expect(d.events).toEqual([]);
    const none = await diff(at(4), iso((t[4] ?? 0) + 30_000));
    expect([none.actions, none.writes, none.events]).toEqual([[], [], []]);
  });
});

describe("diff: reachability, drift and links in between", () => {
  const clock = new ManualClock(Date.parse("2030-03-08T08:00:00.000Z"));
  let hub: TestHub;
  const id = "urn:example:history:field-sensor";
  const gateway = "urn:example:history:gateway";
  const lamp = "urn:example:history:lamp";
  const other = "urn:example:history:other";
  const observer = { actor: "hub:observer", via: "http" };
  const driftCause = { actor: "hub:drift", via: "drift", release: "sha256:r1" };
  const alertCause = { ...driftCause, rule: "alert" };
  const drifting = (observed: number, since: string) => ({
    status: "drifting",
    release: "sha256:r1",
    desired: 20,
    observed,
    since,
    policy: "record",
  });
  /**
   * t[0] registered, partOf the gateway; t[1] unreachable; t[2] reachable; t[3] unreachable;
   * t[4] linked to the lamp, unlinked from the gateway; t[5] temperature drifts (twice), mode once;
   * t[6] linked to another Thing and unlinked again.
   */
  const t: number[] = [];
  const seqs: Record<string, number> = {};

  const linkEdit = async (method: "POST" | "DELETE", rel: string, href: string) => {
    const path = `${thingPath(id)}/links`;
    const res =
      method === "POST"
        ? await hub.request(path, {
            method,
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ rel, href }),
          })
        : await hub.request(`${path}?rel=${rel}&href=${encodeURIComponent(href)}`, { method });
    expect(res.status).toBe(method === "POST" ? 201 : 204);
  };

  beforeAll(async () => {
    hub = await startTestHub({}, {}, { clock: clock.read });
    t.push(clock.advance(MINUTE));
    await put(hub, id, sensorTd(id, { links: [{ rel: "partOf", href: gateway }] }));
    t.push(clock.advance(MINUTE));
    await hub.hub.ingest(id, [{ kind: "unreachable", value: "connect ECONNREFUSED" }], observer);
    t.push(clock.advance(MINUTE));
    await hub.hub.ingest(id, [{ kind: "reachable", value: "the Thing answers again" }], observer);
    t.push(clock.advance(MINUTE));
    const [away] = await hub.hub.ingest(
      id,
      [{ kind: "unreachable", value: "timeout after 10000 ms" }],
      observer,
    );
    seqs.away2 = away?.seq ?? 0;
    t.push(clock.advance(MINUTE));
    await linkEdit("POST", "controls", lamp);
    await linkEdit("DELETE", "partOf", gateway);
    seqs.unlinked = await hub.hub.store.lastSeq();
    t.push(clock.advance(MINUTE));
    const since = iso(clock.now);
    const drifts = await hub.hub.ingest(
      id,
      [
        { kind: "drift", affordance: "temperature", value: drifting(25, since) },
        {
          kind: "drift",
          affordance: "mode",
          value: { ...drifting(0, since), desired: "eco", observed: "boost" },
        },
        { kind: "drift", affordance: "temperature", value: drifting(26, since) },
      ],
      driftCause,
    );
    seqs.modeDrift = drifts[1]?.seq ?? 0;
    seqs.lastDrift = drifts[2]?.seq ?? 0;
    // What the drift judge records next under a release's `alert` policy.
    const [alert] = await hub.hub.ingest(
      id,
      [{ kind: "alert", affordance: "temperature", value: { about: "drift", ...drifting(26, since) } }],
      alertCause,
    );
    seqs.alert = alert?.seq ?? 0;
    t.push(clock.advance(MINUTE));
    await linkEdit("POST", "dependsOn", other);
    await linkEdit("DELETE", "dependsOn", other);
    seqs.flap = await hub.hub.store.lastSeq();
    clock.advance(MINUTE);
  });
  afterAll(async () => {
    await hub.stop();
  });
  const at = (i: number): string => iso(t[i] ?? 0);
  const diff = (from: string, to: string) =>
    getJson<ThingDiff>(hub, `${thingPath(id)}/diff?from=${from}&to=${to}`);

  it("says whether the Thing answered at both ends, how often it went away and came back, and why last", async () => {
    const d = await diff(at(0), at(4));
    expect(d.reachability).toEqual({
      reachableAtFrom: true,
      reachableAtTo: false,
      counts: { unreachable: 2, reachable: 1 },
      last: {
        seq: seqs.away2,
        kind: "unreachable",
        value: "timeout after 10000 ms",
        cause: observer,
        time: at(3),
      },
    });
    // Back at t[2]: reachable at the end, and the outage it came back from.
    expect((await diff(at(0), at(2))).reachability).toMatchObject({
      reachableAtFrom: true,
      reachableAtTo: true,
      counts: { unreachable: 1, reachable: 1 },
      last: { kind: "reachable", value: "the Thing answers again", time: at(2) },
    });
  });

  it("says nothing of the Thing's reachability at an end where it was not registered yet", async () => {
    // From a minute before its registration: it went away and came back after it, not "from reachable".
    const d = await diff(iso((t[0] ?? 0) - MINUTE), at(4));
    expect(d.reachability).not.toHaveProperty("reachableAtFrom");
    expect(d.reachability).toMatchObject({
      reachableAtTo: false,
      counts: { unreachable: 2, reachable: 1 },
      last: { seq: seqs.away2, kind: "unreachable" },
    });
  });

  it("tells a Thing unreachable all along, with the Change that began the outage, though nothing turned in between", async () => {
    const d = await diff(at(3), at(6));
    expect(d.reachability).toEqual({
      reachableAtFrom: false,
      reachableAtTo: false,
      counts: {},
      last: {
        seq: seqs.away2,
        kind: "unreachable",
        value: "timeout after 10000 ms",
        cause: observer,
        time: at(3),
      },
    });
  });

  it("counts the drift and alert Changes in between, with the latest and each property's last as recorded", async () => {
    const d = await diff(at(4), at(5));
    const alert = {
      seq: seqs.alert,
      kind: "alert",
      value: { about: "drift", ...drifting(26, at(5)) },
      cause: alertCause,
      time: at(5),
    };
    const temperature = { affordance: "temperature", changes: 2, alerts: 1, last: alert };
    expect(d.drift).toEqual({
      changes: 3,
      alerts: 1,
      last: { ...alert, affordance: "temperature" },
      properties: [
        {
          affordance: "mode",
          changes: 1,
          alerts: 0,
          last: {
            seq: seqs.modeDrift,
            kind: "drift",
            value: { ...drifting(0, at(5)), desired: "eco", observed: "boost" },
            cause: driftCause,
            time: at(5),
          },
        },
        temperature,
      ],
    });
    // The whole fleet's diff, of the one property: the same.
    const fleet = await getJson<{ things: ThingDiff[] }>(
      hub,
      `/diff?from=${at(4)}&to=${at(5)}&affordance=temperature`,
    );
    expect(fleet.things.find((x) => x.thing === id)?.drift).toEqual({
      changes: 2,
      alerts: 1,
      last: { ...alert, affordance: "temperature" },
      properties: [temperature],
    });
    expect((await diff(at(5), at(6))).drift).toBeUndefined();
  });

  it("gives the links added and removed in between, with their relation and target, and counts the link Changes", async () => {
    const d = await diff(at(3), at(4));
    expect(d.links).toEqual({
      added: [{ rel: "controls", href: lamp }],
      removed: [{ rel: "partOf", href: gateway }],
      counts: { linked: 1, unlinked: 1 },
      last: {
        seq: seqs.unlinked,
        kind: "unlinked",
        value: { rel: "partOf", href: gateway },
        cause: { actor: "admin", via: "http" },
        time: at(4),
      },
    });
    // Linked and unlinked again in between: the same links at both ends, and the Changes that say so.
    expect((await diff(at(5), at(6))).links).toMatchObject({
      added: [],
      removed: [],
      counts: { linked: 1, unlinked: 1 },
      last: { seq: seqs.flap, kind: "unlinked", value: { rel: "dependsOn", href: other } },
    });
  });

  it("leaves the three sections out when the Thing answered throughout and no drift or link Change happened", async () => {
    const d = await diff(at(0), iso((t[1] ?? 0) - 1));
    expect(Object.keys(d).sort()).toEqual(
      ["thing", "from", "to", "fromSeq", "toSeq", "properties", "actions", "writes", "events"].sort(),
    );
  });
});

describe("diff: reachability recorded by observation of a real HTTP Thing", () => {
  it("says the Thing went away when its server stopped, and came back when it started again", async () => {
    const device = new SimulatedHttpThing({
      username: "operator",
      password: "secret-pw-1",
      pollIntervalMs: 100,
    });
    await device.start();
    const hub = await startTestHub({ observe: true, reconnectMs: 20, maxReconnectMs: 200 });
    const id = "urn:example:history:observed";
    try {
      const from = iso(Date.now() - MINUTE);
      const registered = await hub.hub.store.lastSeq();
      await registerThing(hub, id, device.td(id), { username: "operator", password: "secret-pw-1" });
      await changeAfter(hub, registered, (c) => c.thing === id && c.kind === "reported");
      const diffNow = () => getJson<ThingDiff>(hub, `${thingPath(id)}/diff?from=${encodeURIComponent(from)}`);
      expect((await diffNow()).reachability).toBeUndefined();

      const before = await hub.hub.store.lastSeq();
      await device.stop();
      const away = await changeAfter(hub, before, (c) => c.thing === id && c.kind === "unreachable");
      const down = await diffNow();
      // Registered after `from`: no reachability then, it was not in the directory.
      expect(down.reachability).toEqual({
        reachableAtTo: false,
        counts: { unreachable: 1 },
        last: {
          seq: away.seq,
          kind: "unreachable",
          value: away.value,
          cause: { actor: "hub:observer", via: "http" },
          time: changeTime(away),
        },
      });
      expect(typeof away.value).toBe("string");

      await device.start();
      const back = await changeAfter(hub, away.seq, (c) => c.thing === id && c.kind === "reachable");
      const up = (await diffNow()).reachability;
      expect(up).not.toHaveProperty("reachableAtFrom");
      expect(up).toMatchObject({
        reachableAtTo: true,
        counts: { unreachable: 1, reachable: 1 },
        last: { seq: back.seq, kind: "reachable", value: "the Thing answers again" },
      });
    } finally {
      await hub.stop();
      await device.stop();
    }
  });
});

describe("the change feed filtered by type, over a long Log", () => {
  it("reads at most 100,000 Changes for one page, and says with next where it stopped", async () => {
    const hub = await startTestHub();
    const lamp = "urn:example:feed-long:lamp";
    const other = "urn:example:feed-long:other";
    try {
      await put(hub, lamp, sensorTd(lamp, { "@type": "Lamp" }));
      await put(hub, other, sensorTd(other));
      const readings = Array.from({ length: 10_000 }, (_, k) => ({
        kind: "reported" as const,
        affordance: "temperature",
        value: k % 100,
      }));
      for (let i = 0; i < 11; i++) await hub.hub.ingest(other, readings, { actor: "test", via: "test" });
      await report(hub, lamp, { kind: "reported", affordance: "temperature", value: 1 });
      // After the lamp's description (seq 1): seqs 2 to 100,001 are read, none of them the lamp's.
      const first = await getJson<Page>(hub, "/changes?type=Lamp&limit=10&cursor=1");
      expect(first).toEqual({ changes: [], next: 100_001 });
      const second = await getJson<Page>(hub, `/changes?type=Lamp&limit=10&cursor=${first.next}`);
      expect(second.changes).toMatchObject([{ seq: 110_003, thing: lamp, kind: "reported", value: 1 }]);
      expect(second.next).toBeUndefined();
      // Any filter no index serves is scanned so: a rare actor, a kind none of them has; and a
      // rare actor or release of one Thing (110,000 Changes of its own, read in one go before).
      const otherThing = `thing=${encodeURIComponent(other)}`;
      for (const filter of [
        "actor=nobody",
        "kind=emitted",
        "release=sha256:none",
        `${otherThing}&actor=nobody`,
        `${otherThing}&release=sha256:none`,
      ]) {
        expect(await getJson<Page>(hub, `/changes?${filter}&limit=10&cursor=1`), filter).toEqual({
          changes: [],
          next: 100_001,
        });
      }
      // One Thing's kinds are served by its history index: its description, found at once.
      expect(
        await getJson<Page>(hub, `/changes?${otherThing}&kind=described,removed&limit=10`),
      ).toMatchObject({
        changes: [{ seq: 2, thing: other, kind: "described" }],
      });
      // Newest first: the lamp's report, then 100,000 seqs scanned; the rest, down to its description.
      const newest = await getJson<Page>(hub, "/changes?type=Lamp&limit=10&order=desc");
      expect(newest.changes.map((c) => c.seq)).toEqual([110_003]);
      expect(newest.next).toBe(10_004);
      const oldest = await getJson<Page>(hub, `/changes?type=Lamp&limit=10&order=desc&cursor=${newest.next}`);
      expect(oldest.changes).toMatchObject([{ seq: 1, thing: lamp, kind: "described" }]);
      expect(oldest.next).toBeUndefined();
      // A type no Thing has: no Change can match, so no stretch is read and no `next` sends a
      // client through the whole Log a page at a time.
      for (const order of ["asc", "desc"]) {
        expect(await getJson<Page>(hub, `/changes?type=Toaster&limit=10&order=${order}`), order).toEqual({
          changes: [],
        });
      }
    } finally {
      await hub.stop();
    }
  });
});

describe("the change feed: GET /changes and /changes/stream", () => {
  const clock = new ManualClock(Date.parse("2030-03-05T08:00:00.000Z"));
  let hub: TestHub;
  const lamp = "urn:example:feed:lamp";
  const sensor = "urn:example:feed:sensor";
  const expiring = "urn:example:feed:expiring";
  const streams: EventStream[] = [];
  let everything: Change[] = [];
  let midpoint = 0;

  async function open(path: string, headers: Record<string, string> = {}): Promise<EventStream> {
    const stream = await EventStream.open(hub, path, headers);
    streams.push(stream);
    return stream;
  }

  async function feed(query: string): Promise<Change[]> {
    return (await allPages(hub, `/changes?${query}`)).flat();
  }

  beforeAll(async () => {
    // No sweep of its own during the test: the test runs it once, at a known time.
    hub = await startTestHub({ expirySweepMs: 3_600_000 }, {}, { clock: clock.read });
    clock.advance(MINUTE);
    await put(hub, lamp, sensorTd(lamp, { "@type": ["Lamp", "saref:Actuator"], title: "Lamp" }));
    await put(hub, sensor, sensorTd(sensor));
    await put(hub, expiring, sensorTd(expiring, { registration: { ttl: 60 } }));
    for (let i = 0; i < 6; i++) {
      if (i === 3) midpoint = clock.advance(MINUTE);
      else clock.advance(MINUTE);
      await report(hub, lamp, { kind: "reported", affordance: "temperature", value: i });
      await report(hub, sensor, [
        { kind: "reported", affordance: "temperature", value: i },
        { kind: "emitted", affordance: "alarm", value: { code: i } },
      ]);
    }
    // The hub's expiry sweep removes the Thing whose ttl ran out, as actor hub:expiry.
    expect(await hub.hub.directory.sweepExpired()).toBe(1);
    everything = (await getJson<Page>(hub, "/changes?limit=10000")).changes;
  });
  afterEach(() => {
    for (const stream of streams.splice(0)) stream.close();
  });
  afterAll(async () => {
    await hub.stop();
  });

  it("lists every Change, oldest first, a page at a time, each once", async () => {
    expect(seqsOf(everything)).toEqual(Array.from({ length: 3 + 6 * 3 + 1 }, (_, i) => i + 1));
    expect(await feed("limit=5")).toEqual(everything);
    const single = await Promise.all(everything.map((c) => getChange(hub, c.seq)));
    expect(single).toEqual(everything);
  });

  it("filters by thing", async () => {
    expect(await feed(`thing=${encodeURIComponent(sensor)}&limit=4`)).toEqual(
      everything.filter((c) => c.thing === sensor),
    );
  });

  it("filters by kind, one or several", async () => {
    expect(await feed("kind=emitted&limit=4")).toEqual(everything.filter((c) => c.kind === "emitted"));
    expect(await feed("kind=described,removed")).toEqual(
      everything.filter((c) => c.kind === "described" || c.kind === "removed"),
    );
  });

  it("filters by type: the Things whose @type holds it, with or without a prefix", async () => {
    const lamps = everything.filter((c) => c.thing === lamp);
    expect(await feed("type=Lamp&limit=3")).toEqual(lamps);
    expect(await feed("type=saref:Actuator")).toEqual(lamps);
    expect(await feed("type=Actuator")).toEqual(lamps);
    // The expired Thing was a sensor until it was removed: its Changes, its removal too, stay sensors'.
    expect(await feed("type=Sensor")).toEqual(
      everything.filter((c) => c.thing === sensor || c.thing === expiring),
    );
    expect(await feed("type=Toaster")).toEqual([]);
    // A Thing and a type: its Changes when it is of that type, none when it is not.
    expect(await feed(`thing=${encodeURIComponent(lamp)}&type=Lamp`)).toEqual(lamps);
    expect(await feed(`thing=${encodeURIComponent(sensor)}&type=Lamp`)).toEqual([]);
  });

  it("filters by type as the graph does: a full IRI, and a supertype with its subtypes", async () => {
    const lamps = everything.filter((c) => c.thing === lamp);
    expect(await feed(`type=${encodeURIComponent("https://saref.etsi.org/core/Actuator")}`)).toEqual(lamps);
    // saref:Actuator and saref:Sensor (the sensors' bare "Sensor") are saref:Devices in the
    // vocabulary; the expired Thing was one while it was registered.
    expect(await feed("type=saref:Device")).toEqual(everything);
  });

  it("fills a page filtered by type with that type's Changes, not a page of the whole Log thinned out", async () => {
    const lamps = everything.filter((c) => c.thing === lamp);
    expect(lamps.length).toBeGreaterThan(6);
    // The Log starts with the three descriptions: the lamp's, then two others.
    const first = await getJson<Page>(hub, "/changes?type=Lamp&limit=3");
    expect(first).toEqual({ changes: lamps.slice(0, 3), next: lamps[2]?.seq });
    const second = await getJson<Page>(hub, `/changes?type=Lamp&limit=3&cursor=${first.next}`);
    expect(second).toEqual({ changes: lamps.slice(3, 6), next: lamps[5]?.seq });
    // The last page, exactly full, has no next.
    const rest = lamps.length - 6;
    expect(await getJson<Page>(hub, `/changes?type=Lamp&limit=${rest}&cursor=${second.next}`)).toEqual({
      changes: lamps.slice(6),
    });
  });

  it("filters by actor: people's Changes apart from the hub's own", async () => {
    const removal = everything.filter((c) => c.cause.actor === "hub:expiry");
    expect(removal).toMatchObject([{ kind: "removed", thing: expiring }]);
    expect(await feed("actor=hub:expiry")).toEqual(removal);
    expect(await feed("actor=admin&limit=6")).toEqual(everything.filter((c) => c.cause.actor === "admin"));
    expect(await feed("actor=nobody")).toEqual([]);
    expect(await feed("release=sha256:0000")).toEqual([]);
  });

  it("combines filters, and starts at `since`", async () => {
    expect(await feed(`thing=${encodeURIComponent(sensor)}&kind=reported&since=${iso(midpoint)}`)).toEqual(
      everything.filter((c) => c.thing === sensor && c.kind === "reported" && changeTime(c) >= iso(midpoint)),
    );
    const problem = await expectProblem(await hub.request("/changes?since=whenever"), 400);
    expect(pointersOf(problem)).toEqual(["/query/since"]);
  });

  it("refuses a cursor past the end of the Log (400, pointer /query/cursor): no page of this hub ended there", async () => {
    const last = everything.at(-1)?.seq ?? 0;
    for (const path of [
      `/changes?cursor=${last + 1}`,
      `/changes?cursor=${last + 1}&order=desc`,
      `/changes?cursor=${last + 1}&kind=emitted`,
      `${thingPath(sensor)}/history?cursor=${last + 1}`,
      `${thingPath(sensor)}/history?cursor=${last + 1}&order=asc`,
    ]) {
      const problem = await expectProblem(await hub.request(path), 400);
      expect(pointersOf(problem), path).toEqual(["/query/cursor"]);
      expect(problem.detail).toContain(`past the end of the Log (${last} Changes)`);
    }
    // The last seq itself is a cursor a page gave: nothing after it yet.
    expect(await getJson<Page>(hub, `/changes?cursor=${last}`)).toEqual({ changes: [] });
  });

  it("ends at `until`, inclusive, oldest or newest first and with a filter no index serves", async () => {
    // The three minutes from the midpoint on: what an incident responder asks of the whole fleet.
    const until = midpoint + 2 * MINUTE;
    const between = (c: Change) => changeTime(c) >= iso(midpoint) && changeTime(c) <= iso(until);
    const window = everything.filter(between);
    expect(window.length).toBeGreaterThan(0);
    expect(window.length).toBeLessThan(everything.length - 3);
    const range = `since=${iso(midpoint)}&until=${iso(until)}`;
    expect(await feed(`${range}&limit=2`)).toEqual(window);
    expect(await feed(`${range}&order=desc&limit=2`)).toEqual([...window].reverse());
    expect(await feed(`${range}&kind=emitted&limit=1`)).toEqual(window.filter((c) => c.kind === "emitted"));
    expect(await feed(`until=${iso(until)}&order=desc&limit=3`)).toEqual(
      everything.filter((c) => changeTime(c) <= iso(until)).reverse(),
    );
    const problem = await expectProblem(
      await hub.request(`/changes?since=${iso(until)}&until=${iso(midpoint)}`),
      400,
    );
    expect(pointersOf(problem)).toEqual(["/query/since"]);
  });

  it("lists newest first with order=desc, each page before the last seq of the one before, filters and since alike", async () => {
    const newestFirst = [...everything].reverse();
    const first = await getJson<Page>(hub, "/changes?order=desc&limit=4");
    expect(first).toEqual({ changes: newestFirst.slice(0, 4), next: newestFirst[3]?.seq });
    expect(await feed("order=desc&limit=4")).toEqual(newestFirst);
    expect(await feed("order=desc&kind=emitted&limit=2")).toEqual(
      newestFirst.filter((c) => c.kind === "emitted"),
    );
    expect(await feed(`order=desc&thing=${encodeURIComponent(sensor)}&limit=3`)).toEqual(
      newestFirst.filter((c) => c.thing === sensor),
    );
    expect(await feed("order=desc&type=Lamp&limit=2")).toEqual(newestFirst.filter((c) => c.thing === lamp));
    expect(await feed(`order=desc&since=${iso(midpoint)}&limit=5`)).toEqual(
      newestFirst.filter((c) => changeTime(c) >= iso(midpoint)),
    );
    const problem = await expectProblem(await hub.request("/changes?order=sideways"), 400);
    expect(pointersOf(problem)).toEqual(["/query/order"]);
  });

  it("streams new Changes live as `change` events whose id is the seq and data the Change", async () => {
    const stream = await open("/changes/stream");
    expect(stream.response.status).toBe(200);
    expect(stream.response.headers.get("content-type")).toMatch(/^text\/event-stream\b/);
    clock.advance(MINUTE);
    const seqs = [
      ...(await report(hub, lamp, { kind: "reported", affordance: "mode", value: "eco" })),
      ...(await report(hub, sensor, [
        { kind: "reported", affordance: "mode", value: "boost" },
        { kind: "emitted", affordance: "alarm", value: { code: 99 } },
      ])),
    ];
    const events = (await stream.take(3)).map(changeEvent);
    const recorded = await Promise.all(seqs.map((s) => getChange(hub, s)));
    expect(events).toEqual(recorded.map((c) => ["change", c.seq, c]));
  });

  it("resumes with Last-Event-ID: exactly the missed Changes, in order, no duplicates, then live ones", async () => {
    const first = await open("/changes/stream");
    clock.advance(MINUTE);
    await report(hub, lamp, { kind: "reported", affordance: "temperature", value: 50 });
    const [seen] = (await first.take(1)).map(changeEvent);
    first.close();
    const resumeFrom = seen?.[1] ?? 0;

    // Missed while disconnected.
    const missed = [
      ...(await report(hub, sensor, { kind: "reported", affordance: "temperature", value: 51 })),
      ...(await report(hub, lamp, [
        { kind: "reported", affordance: "temperature", value: 52 },
        { kind: "reported", affordance: "mode", value: "boost" },
      ])),
    ];
    expect(missed).toEqual([resumeFrom + 1, resumeFrom + 2, resumeFrom + 3]);

    const resumed = await open("/changes/stream", { "last-event-id": String(resumeFrom) });
    expect(resumed.response.status).toBe(200);
    const replayed = (await resumed.take(3)).map(changeEvent);
    expect(replayed.map(([, seq]) => seq)).toEqual(missed);
    expect(replayed.map(([, , c]) => c.value)).toEqual([51, 52, "boost"]);
    // The next event is the next live one: nothing replayed twice, nothing skipped.
    const [live] = await report(hub, sensor, { kind: "reported", affordance: "temperature", value: 53 });
    expect((await resumed.take(1)).map(changeEvent)).toEqual([
      ["change", live, await getChange(hub, live ?? 0)],
    ]);
  });

  it("replays the whole Log with Last-Event-ID: 0, filtered", async () => {
    const expected = (await feed(`thing=${encodeURIComponent(lamp)}&kind=reported`)).map((c) => c.seq);
    const stream = await open(`/changes/stream?thing=${encodeURIComponent(lamp)}&kind=reported`, {
      "last-event-id": "0",
    });
    expect((await stream.take(expected.length)).map((e) => Number(e.id))).toEqual(expected);
  });

  it.each([
    ["thing", () => `thing=${encodeURIComponent(sensor)}`, (c: Change) => c.thing === sensor],
    ["kind", () => "kind=emitted", (c: Change) => c.kind === "emitted"],
    ["type", () => "type=Lamp", (c: Change) => c.thing === lamp],
    ["actor", () => "actor=admin", (c: Change) => c.cause.actor === "admin"],
  ])("streams only the Changes that match a %s filter, live and replayed", async (_name, query, match) => {
    const from = await lastSeq(hub);
    const stream = await open(`/changes/stream?${query()}`, { "last-event-id": String(from) });
    clock.advance(MINUTE);
    const made: number[] = [];
    made.push(...(await report(hub, lamp, { kind: "reported", affordance: "temperature", value: 60 })));
    made.push(...(await report(hub, sensor, { kind: "reported", affordance: "temperature", value: 61 })));
    made.push(...(await report(hub, sensor, { kind: "emitted", affordance: "alarm", value: { code: 62 } })));
    made.push(...(await report(hub, lamp, { kind: "emitted", affordance: "alarm", value: { code: 63 } })));
    const changes = await Promise.all(made.map((s) => getChange(hub, s)));
    const expected = changes.filter(match);
    expect(expected.length).toBeGreaterThan(0);
    expect((await stream.take(expected.length)).map(changeEvent)).toEqual(
      expected.map((c) => ["change", c.seq, c]),
    );
    // Nothing else is pending: the next event is the next matching Change.
    const [marker] = await report(hub, lamp, { kind: "emitted", affordance: "alarm", value: { code: 64 } });
    const markerChange = await getChange(hub, marker ?? 0);
    if (match(markerChange))
      expect((await stream.take(1)).map(changeEvent)).toEqual([["change", marker, markerChange]]);
  });

  /**
   * Opens a stream filtered by `type`, then registers a Thing of `declared` type and has it report:
   * the stream passes its description and its reading.
   */
  async function expectFollowed(type: string, id: string, declared: string): Promise<void> {
    const stream = await open(`/changes/stream?type=${encodeURIComponent(type)}`);
    clock.advance(MINUTE);
    await put(hub, id, sensorTd(id, { "@type": declared }));
    const [seq] = await report(hub, id, { kind: "reported", affordance: "temperature", value: 1 });
    const [, described] = (await stream.take(1)).map(changeEvent)[0] ?? [];
    expect(described).toBe((seq ?? 0) - 1);
    expect((await stream.take(1)).map(changeEvent)).toEqual([
      ["change", seq, await getChange(hub, seq ?? 0)],
    ]);
  }

  it("streams with a type filter the Changes of a Thing of that type registered after the stream opened", async () => {
    await expectFollowed("Lamp", "urn:example:feed:new-lamp", "Lamp");
  });

  it("streams with a supertype filter the Changes of a Thing of a subtype registered after the stream opened", async () => {
    await expectFollowed("saref:Actuator", "urn:example:feed:light-switch", "saref:LightSwitch");
  });

  it("refuses a Last-Event-ID past the end of the Log, or not a number, with 400", async () => {
    const end = await lastSeq(hub);
    const past = await expectProblem(
      await hub.request("/changes/stream", { headers: { "last-event-id": String(end + 1) } }),
      400,
    );
    expect(pointersOf(past)).toEqual(["/headers/last-event-id"]);
    expect(past.detail).toContain(String(end + 1));
    const bad = await expectProblem(
      await hub.request("/changes/stream", { headers: { "last-event-id": "x1" } }),
      400,
    );
    expect(pointersOf(bad)).toEqual(["/headers/last-event-id"]);
  });

  it("replays the Changes since a time first with `since`, then live ones; a Last-Event-ID wins over it", async () => {
    const expected = (await feed(`since=${iso(midpoint)}&kind=reported`)).map((c) => c.seq);
    expect(expected.length).toBeGreaterThan(2);
    const stream = await open(`/changes/stream?since=${iso(midpoint)}&kind=reported`);
    expect((await stream.take(expected.length)).map((e) => Number(e.id))).toEqual(expected);
    clock.advance(MINUTE);
    const [live] = await report(hub, lamp, { kind: "reported", affordance: "temperature", value: 70 });
    expect((await stream.take(1)).map((e) => Number(e.id))).toEqual([live]);
    // As a reconnection: the same URL with the last id seen resumes after the id, not at `since`.
    const resumed = await open(`/changes/stream?since=${iso(midpoint)}&kind=reported`, {
      "last-event-id": String((live ?? 0) - 1),
    });
    expect((await resumed.take(1)).map((e) => Number(e.id))).toEqual([live]);
    const bad = await expectProblem(await hub.request("/changes/stream?since=later"), 400);
    expect(pointersOf(bad)).toEqual(["/query/since"]);
  });

  it("refuses unknown stream parameters and malformed kind lists with 400", async () => {
    await expectProblem(await hub.request("/changes/stream?colour=red"), 400);
    await expectProblem(await hub.request("/changes/stream?kind=,"), 400);
    await expectProblem(await hub.request("/changes?limit=0"), 400);
  });

  it("answers HEAD on a stream with its headers alone, at once, instead of holding a stream for nobody", async () => {
    for (const path of ["/changes/stream", "/events"]) {
      // Bounded: before, Node sent not even the headers, and the stream followed the Log forever.
      const res = await hub.request(path, { method: "HEAD", signal: AbortSignal.timeout(10_000) });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toBe("text/event-stream; charset=utf-8");
      expect(await res.text()).toBe("");
    }
  });

  it("combines a Thing, its type, a list of kinds and `since`, each as the docs say, oldest or newest first", async () => {
    const lampId = encodeURIComponent(lamp);
    // The Log as the tests before left it, and each Thing's declared types (none was re-described).
    const log = (await getJson<Page>(hub, "/changes?limit=10000")).changes;
    const declared = new Map<string, unknown[]>();
    for (const c of log)
      if (c.kind === "described")
        declared.set(c.thing, [(c.value as Record<string, unknown>)["@type"]].flat());
    const of = (c: Change, type: string) => declared.get(c.thing)?.includes(type) === true;
    const since = (c: Change) => changeTime(c) >= iso(midpoint);
    const kinds = (c: Change) => c.kind === "reported" || c.kind === "emitted";
    const cases: Array<[string, (c: Change) => boolean]> = [
      // A type and a list of kinds, with and without `since`: the scan, by type and kinds in SQL.
      ["type=Lamp&kind=reported,emitted", (c) => of(c, "Lamp") && kinds(c)],
      [
        `type=Sensor&kind=reported,removed&since=${iso(midpoint)}`,
        (c) => of(c, "Sensor") && (c.kind === "reported" || c.kind === "removed") && since(c),
      ],
      // A Thing and its type, with kinds and `since`: its history index.
      [
        `thing=${lampId}&type=Lamp&kind=reported,emitted&since=${iso(midpoint)}`,
        (c) => c.thing === lamp && kinds(c) && since(c),
      ],
      [`thing=${lampId}&type=saref:Device&kind=described`, (c) => c.thing === lamp && c.kind === "described"],
      // A Thing with a type it never had: nothing, whatever else is asked.
      [`thing=${lampId}&type=Sensor&kind=reported,emitted&since=${iso(midpoint)}`, () => false],
      // A Thing and a list of kinds, with `since`.
      [
        `thing=${encodeURIComponent(sensor)}&kind=emitted,described&since=${iso(midpoint)}`,
        (c) => c.thing === sensor && (c.kind === "emitted" || c.kind === "described") && since(c),
      ],
      // A list of kinds and `since`, no Thing and no type.
      [
        `kind=removed,emitted&since=${iso(midpoint)}`,
        (c) => (c.kind === "removed" || c.kind === "emitted") && since(c),
      ],
    ];
    for (const [query, match] of cases) {
      const expected = log.filter(match);
      expect(await feed(`${query}&limit=2`), query).toEqual(expected);
      expect(await feed(`${query}&limit=2&order=desc`), `${query}, newest first`).toEqual(
        [...expected].reverse(),
      );
    }
  });

  it("streams a Thing, its type, a list of kinds and `since` combined: the matching Changes since then, then live ones", async () => {
    clock.advance(MINUTE);
    await report(hub, lamp, { kind: "emitted", affordance: "alarm", value: { code: 79 } });
    const query = `thing=${encodeURIComponent(lamp)}&type=saref:Actuator&kind=reported,emitted&since=${iso(midpoint)}`;
    const expected = await feed(query);
    expect(expected.length).toBeGreaterThan(2);
    expect(new Set(expected.map((c) => c.kind))).toEqual(new Set(["reported", "emitted"]));
    const stream = await open(`/changes/stream?${query}`);
    expect((await stream.take(expected.length)).map(changeEvent)).toEqual(
      expected.map((c) => ["change", c.seq, c]),
    );
    const typed = await open(`/changes/stream?type=Sensor&kind=emitted,removed&since=${iso(midpoint)}`);
    const sensors = await feed(`type=Sensor&kind=emitted,removed&since=${iso(midpoint)}`);
    expect(sensors.map((c) => c.kind)).toContain("removed");
    expect((await typed.take(sensors.length)).map(changeEvent)).toEqual(
      sensors.map((c) => ["change", c.seq, c]),
    );
    clock.advance(MINUTE);
    // Live: a sensor's alarm (the first stream leaves it out), the lamp's reading and event, another alarm.
    await report(hub, sensor, { kind: "emitted", affordance: "alarm", value: { code: 80 } });
    await report(hub, lamp, { kind: "reported", affordance: "mode", value: "eco" });
    const [emitted] = await report(hub, lamp, { kind: "emitted", affordance: "ping" });
    const [sensorAlarm] = await report(hub, sensor, {
      kind: "emitted",
      affordance: "alarm",
      value: { code: 81 },
    });
    const live = (await stream.take(2)).map(changeEvent);
    expect(live.map(([, seq, c]) => [seq, c.kind, c.affordance])).toEqual([
      [(emitted ?? 0) - 1, "reported", "mode"],
      [emitted, "emitted", "ping"],
    ]);
    expect((await typed.take(2)).map(changeEvent).map(([, seq]) => seq)).toEqual([
      (emitted ?? 0) - 2,
      sensorAlarm,
    ]);
  });
});

describe("state at a time, against a model of the reports (property-based)", () => {
  const clock = new ManualClock(Date.parse("2030-04-01T00:00:00.000Z"));
  let hub: TestHub;
  let run = 0;

  beforeAll(async () => {
    hub = await startTestHub({}, {}, { clock: clock.read });
  });
  afterAll(async () => {
    await hub.stop();
  });

  type Property = "level" | "label" | "on";
  const modelTd = (id: string) =>
    minimalTd({
      id,
      properties: {
        level: { type: "integer", forms: FORMS },
        label: { type: "string", forms: FORMS },
        on: { type: "boolean", forms: FORMS },
      },
    });

  const reportArb = fc.oneof(
    fc.record({ property: fc.constant<Property>("level"), value: fc.integer({ min: -1000, max: 1000 }) }),
    fc.record({ property: fc.constant<Property>("label"), value: fc.string({ maxLength: 8 }) }),
    fc.record({ property: fc.constant<Property>("on"), value: fc.boolean() }),
  );
  const stepArb = fc.record({
    thing: fc.integer({ min: 0, max: 2 }),
    // Several steps in the same millisecond, and long gaps.
    advance: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 5 }), fc.integer({ min: 1, max: 600_000 })),
    reports: fc.array(reportArb, { minLength: 1, maxLength: 3 }),
  });

  interface Recorded {
    time: number;
    thing: number;
    property: Property;
    value: unknown;
    seq: number;
  }

  it("state?at=T equals the latest report of each property at or before T, for random reports and times", async () => {
    await fc.assert(
      fc.asyncProperty(
        fc.array(stepArb, { minLength: 1, maxLength: 12 }),
        fc.array(fc.integer({ min: 0, max: 1000 }), { minLength: 1, maxLength: 6 }),
        async (steps, fractions) => {
          run++;
          const ids = [0, 1, 2].map((k) => `urn:example:model:${run}:${k}`);
          const registered = clock.advance(MINUTE);
          for (const id of ids) await put(hub, id, modelTd(id));
          const model: Recorded[] = [];
          for (const step of steps) {
            const time = clock.advance(step.advance);
            const thing = ids[step.thing] ?? "";
            const seqs = await report(
              hub,
              thing,
              step.reports.map((r) => ({ kind: "reported", affordance: r.property, value: r.value })),
            );
            step.reports.forEach((r, i) =>
              model.push({
                time,
                thing: step.thing,
                property: r.property,
                value: r.value,
                seq: seqs[i] ?? 0,
              }),
            );
          }
          const end = clock.now;
          // Every step's exact time and the millisecond before it, and random times around them all.
          const span = end - registered + 2000;
          const times = new Set([
            ...model.flatMap((m) => [m.time, m.time - 1]),
            ...fractions.map((f) => registered - 1000 + Math.round((f / 1000) * span)),
          ]);
          for (const time of times) {
            for (const [k, id] of ids.entries()) {
              const res = await hub.request(`${thingPath(id)}/state?at=${iso(time)}`);
              if (time < registered) {
                expect(res.status).toBe(404);
                await res.body?.cancel();
                continue;
              }
              const state = (await res.json()) as ThingState;
              expect(res.status).toBe(200);
              const expected: Record<string, AffordanceState> = {};
              for (const m of model) {
                if (m.thing !== k || m.time > time) continue;
                expected[m.property] = {
                  value: m.value,
                  seq: m.seq,
                  time: iso(m.time),
                  cause: { actor: "admin", via: "http" },
                };
              }
              expect(state.properties, `${id} at ${iso(time)}`).toEqual(expected);
              expect(state.td).toEqual(modelTd(id));
              // Times up to 1 s after the last step are after the hub's now: read as now.
              expect(state.at).toBe(iso(Math.min(time, end)));
            }
          }
        },
      ),
      { numRuns: 12 },
    );
  });
});

describe("a change stream whose client does not read", () => {
  let hub: TestHub;
  const id = "urn:example:stream:stalled";
  const cause = { actor: "test", via: "test" };

  beforeAll(async () => {
    // A replay that waits this long for its client to read is cut.
    hub = await startTestHub({ streamStallMs: 300 });
    await put(hub, id, sensorTd(id));
  });
  afterAll(async () => {
    await hub.stop();
  });

  /** A request for the stream on a socket that then reads nothing. */
  async function stalled(headers = ""): Promise<Socket> {
    const { hostname, port } = new URL(hub.url);
    const socket = connect(Number(port), hostname);
    socket.on("error", () => undefined);
    await once(socket, "connect");
    socket.write(`GET /changes/stream HTTP/1.1\r\nHost: ${hostname}:${port}\r\n${headers}\r\n`);
    socket.pause();
    while (openStreams.size === 0) await new Promise((resolve) => setImmediate(resolve));
    return socket;
  }

  it("is cut, replaying from an old id, once it has read nothing for streamStallMs, and the hub goes on", async () => {
    // ~10 MB of Changes in the Log: pages of 500 (~1 MB each, under the 4 MiB bound) until the
    // kernel's buffers are full, then the replay waits for a drain that never comes.
    await reportBulk(hub, id, 50, 100, 2_000);
    const socket = await stalled("Last-Event-ID: 0\r\n");
    const bound = Date.now() + 20_000;
    while (openStreams.size > 0 && Date.now() < bound)
      await new Promise((resolve) => setTimeout(resolve, 20));
    expect(openStreams.size).toBe(0);
    const [seq] = await report(hub, id, { kind: "reported", affordance: "temperature", value: 22 });
    expect((await getChange(hub, seq ?? 0)).value).toBe(22);
    socket.destroy();
  });

  it("does not hold the hub's stop, with Changes waiting for it", async () => {
    const own = await startTestHub({ streamStallMs: 300 });
    try {
      await put(own, id, sensorTd(id));
      const { hostname, port } = new URL(own.url);
      const socket = connect(Number(port), hostname);
      socket.on("error", () => undefined);
      await once(socket, "connect");
      socket.write(`GET /changes/stream HTTP/1.1\r\nHost: ${hostname}:${port}\r\n\r\n`);
      socket.pause();
      while (openStreams.size === 0) await new Promise((resolve) => setImmediate(resolve));
      // ~2 MB for it, under the 4 MiB that cut a stream: the kernel's buffers fill, the rest waits.
      await reportBulk(own, id, 10, 100, 2_000);
      const started = Date.now();
      await own.stop();
      expect(Date.now() - started).toBeLessThan(10_000);
      socket.destroy();
    } finally {
      if (openStreams.size > 0) await own.stop().catch(() => undefined);
    }
  });

  it("is cut once 4 MiB wait for it, and the hub goes on", async () => {
    // It never reads: what the hub sends piles up in the kernel's buffers, then in the hub's.
    const socket = await stalled();
    const note = "x".repeat(2_000);
    // ~2 KB an event: the kernel's buffers and the hub's 4 MiB fill within a few thousand.
    for (let i = 0; i < 200 && openStreams.size > 0; i++) {
      const reports = Array.from({ length: 100 }, (_, k) => ({
        kind: "reported",
        affordance: "config",
        value: { level: i * 100 + k, note },
      }));
      await hub.hub.ingest(id, reports, cause);
      await new Promise((resolve) => setImmediate(resolve));
    }
    expect(openStreams.size).toBe(0);
    // Ingest goes on, and so do other readers.
    const [seq] = await report(hub, id, { kind: "reported", affordance: "temperature", value: 21 });
    expect((await getChange(hub, seq ?? 0)).value).toBe(21);
    socket.destroy();
  });
});

describe("a change stream whose client keeps up while the hub's thread is held up", () => {
  it("is not cut for a stall when its client read everything while the hub's loop was late", async () => {
    // A replay that waits this long for its client to read is cut.
    const stallMs = 1_000;
    const own = await startTestHub({ streamStallMs: stallMs });
    const id = "urn:example:stream:held";
    let client: OffThreadSocket | undefined;
    try {
      await put(own, id, sensorTd(id));
      // ~6 MB of Changes, more than the kernel's buffers on loopback hold (~3 MB here), in pages
      // of 500 of ~400 kB each.
      await reportBulk(own, id, 16, 500, 200);
      const last = await own.hub.store.lastSeq();
      const { hostname, port } = new URL(own.url);
      // The client reads on its own thread: it goes on reading while this one is held up.
      client = await OffThreadSocket.connect(Number(port), hostname);
      client.pause();
      client.write(`GET /changes/stream HTTP/1.1\r\nHost: ${hostname}:${port}\r\nLast-Event-ID: 0\r\n\r\n`);
      // The replay filled the kernel's buffers and waits for a drain, its stall timer running.
      const bound = Date.now() + 20_000;
      const waiting = () => [...openStreams].find((res) => res.writableNeedDrain);
      while (waiting() === undefined && Date.now() < bound)
        await new Promise((resolve) => setImmediate(resolve));
      const socket = waiting()?.socket;
      expect(socket).toBeDefined();
      // What the kernel took from the hub so far: the writes it completed.
      const taken = (socket?.bytesWritten ?? 0) - (socket?.writableLength ?? 0);
      // Once the client has read it, the kernel can take the rest of the page in one go.
      expect(taken).toBeGreaterThan(socket?.writableLength ?? 0);
      // The client now reads all the kernel took (and then what it holds of the rest), while the
      // hub's thread is held up past the stall timeout in a callback of the check phase: the timer
      // is due before the loop polls the socket and finds it writable again.
      await readWhileHeld(client, stallMs, taken);
      // It was keeping up: the replay goes on to the end of the Log, the stream stays open.
      await client.until(`id: ${last}\n`);
      expect(openStreams.size).toBe(1);
    } finally {
      await client?.end();
      await own.stop();
    }
  });
});

describe("change streams whose clients do not read, together", () => {
  it("are each cut at their share of streamBufferBytes, not at 4 MiB each, and the hub goes on", async () => {
    const own = await startTestHub({ streamBufferBytes: 2 * 1024 * 1024 });
    const sockets: Socket[] = [];
    try {
      const id = "urn:example:stream:many-stalled";
      await put(own, id, sensorTd(id));
      const { hostname, port } = new URL(own.url);
      for (let i = 0; i < 4; i++) {
        const socket = connect(Number(port), hostname);
        socket.on("error", () => undefined);
        await once(socket, "connect");
        socket.write(`GET /changes/stream HTTP/1.1\r\nHost: ${hostname}:${port}\r\n\r\n`);
        socket.pause();
        sockets.push(socket);
      }
      while (openStreams.size < 4) await new Promise((resolve) => setImmediate(resolve));
      const streams = [...openStreams];
      // Each may hold a quarter of 2 MiB (512 KiB); ~200 KB of events go out per round.
      let most = 0;
      const note = "x".repeat(2_000);
      for (let i = 0; i < 400 && openStreams.size > 0; i++) {
        const reports = Array.from({ length: 100 }, (_, k) => ({
          kind: "reported",
          affordance: "config",
          value: { level: i * 100 + k, note },
        }));
        await own.hub.ingest(id, reports, { actor: "test", via: "test" });
        for (const res of streams) most = Math.max(most, res.writableLength);
        await new Promise((resolve) => setImmediate(resolve));
      }
      expect(openStreams.size).toBe(0);
      expect(most).toBeLessThan(1024 * 1024);
      const [seq] = await report(own, id, { kind: "reported", affordance: "temperature", value: 21 });
      expect((await getChange(own, seq ?? 0)).value).toBe(21);
    } finally {
      for (const socket of sockets) socket.destroy();
      await own.stop();
    }
  });
});

describe("reports held in memory at once", () => {
  it("refuses a report with 503 and Retry-After while other reports' bodies fill maxIngestBytes, and takes it once they are answered", async () => {
    const hub = await startTestHub({ maxIngestBytes: 1024 * 1024 });
    try {
      const id = "urn:example:ingest-bytes";
      await registerThing(
        hub,
        id,
        minimalTd({
          id,
          properties: { blob: { type: "string", forms: [{ href: "http://127.0.0.1:9/b" }] } },
        }),
      );
      const report = (bytes: number): string => {
        const empty = JSON.stringify({ kind: "reported", affordance: "blob", value: "" });
        return JSON.stringify({
          kind: "reported",
          affordance: "blob",
          value: "x".repeat(bytes - empty.length),
        });
      };
      const post = (body: string) =>
        hub.request(`${thingPath(id)}/changes`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
        });

      // A producer that has sent its headers (800,000 bytes to come) and a first part of its body.
      const slow = report(800_000);
      const { port } = new URL(hub.url);
      const socket = connect(Number(port), "127.0.0.1");
      await once(socket, "connect");
      let answer = "";
      socket.on("data", (chunk: Buffer) => (answer += chunk.toString()));
      socket.write(
        `POST ${thingPath(id)}/changes HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${hub.token}\r\n` +
          `Content-Type: application/json\r\nContent-Length: ${slow.length}\r\nExpect: 100-continue\r\n\r\n`,
      );
      // "100 Continue" comes once the hub has taken the request in (its hooks have run).
      while (!answer.includes("100 Continue")) await once(socket, "data");
      socket.write(slow.slice(0, 1000));

      const refused = await post(report(300_000));
      expect(refused.status).toBe(503);
      expect(refused.headers.get("retry-after")).toBe("1");
      expect(refused.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(((await refused.json()) as Problem).detail).toBe(
        "Too many bytes of reports are being written; retry shortly",
      );

      // The slow producer finishes and is answered: its bytes are free again.
      socket.write(slow.slice(1000));
      while (!/HTTP\/1\.1 201/.test(answer) || !answer.endsWith("}")) await once(socket, "data");
      socket.destroy();
      const taken = await post(report(300_000));
      expect(taken.status).toBe(201);
      // The refused report left nothing behind; the two taken are recorded.
      const history = (await (
        await hub.request(`${thingPath(id)}/history?kind=reported&limit=10`)
      ).json()) as Page;
      expect(history.changes.map((c) => (c.value as string).length)).toEqual([300_000 - 50, 800_000 - 50]);
    } finally {
      await hub.stop();
    }
  });
});
