// The change feed's filters mean the same on every surface: the SSE feed (one filter, or several
// on one connection with `match`), GraphQL's `changes` subscription, the paged feeds (GET /changes,
// GraphQL's `changes` query) and the CLI (`things changes`, `things watch`) answer the same Changes
// for the same filter — thing, affordance, kinds, actor, release, correlation, and the type as of
// each Change.
// `npm test` builds dist/ first; otherwise run `npm run build`.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { GraphqlClient, type GraphqlChangeFilter as ChangeFilter } from "../src/client/index.js";
import type { Change, Cause } from "../src/core/index.js";
import { EventStream } from "./support/sse.js";
import { minimalTd, putTd, startTestHub, type TestHub } from "./support/test-hub.js";
import { runThings, runThingsToEnd } from "./support/things-process.js";

const FORMS = [{ href: "http://thing.example/p" }];
const A = "urn:example:filters:a";
const B = "urn:example:filters:b";
const RELEASE = "sha256:0000000000000000000000000000000000000000000000000000000000000001";
/** One command's correlation, on Changes of both Things (the sentinel's too). */
const CORRELATION = "068d88a7-0000-4000-8000-000000000001";

function td(id: string, type: string): Record<string, unknown> {
  return minimalTd({
    id,
    "@type": type,
    properties: { load: { type: "number", forms: FORMS } },
    events: { alarm: { data: { type: "string" }, forms: FORMS } },
  });
}

/** The filters compared; every one matches the last Change of the Log (the sentinel). */
const FILTERS: ChangeFilter[] = [
  {},
  { thing: A },
  { kinds: ["reported"] },
  { kinds: ["described", "reported"] },
  { actor: "alice" },
  { release: RELEASE },
  { type: "saref:Sensor" },
  { type: "saref:Device" },
  { type: "saref:Sensor", thing: A, kinds: ["reported"] },
  { type: "saref:Sensor", actor: "alice" },
  { thing: A, release: RELEASE, kinds: ["reported", "emitted"] },
  { correlation: CORRELATION },
  { correlation: CORRELATION, thing: A, kinds: ["reported"] },
  { correlation: CORRELATION, type: "saref:Sensor" },
  { correlation: CORRELATION, actor: "alice", release: RELEASE },
  { affordance: "load" },
  { affordance: "load", thing: A },
  { affordance: "load", type: "saref:Sensor", actor: "alice" },
  { affordance: "load", kinds: ["reported"], correlation: CORRELATION },
];

/** The filter as the SSE feed's query. */
function feedQuery(filter: ChangeFilter): string {
  const q = new URLSearchParams();
  if (filter.thing !== undefined) q.set("thing", filter.thing);
  if (filter.type !== undefined) q.set("type", filter.type);
  if (filter.affordance !== undefined) q.set("affordance", filter.affordance);
  if (filter.kinds !== undefined) q.set("kind", filter.kinds.join(","));
  if (filter.actor !== undefined) q.set("actor", filter.actor);
  if (filter.release !== undefined) q.set("release", filter.release);
  if (filter.correlation !== undefined) q.set("correlation", filter.correlation);
  return q.toString();
}

describe("the change filters on the SSE feed, GraphQL, the paged feeds and the CLI", () => {
  let hub: TestHub;
  let sentinel = 0;
  let everything: Change[] = [];
  /** The type each Change's Thing had then, as the test made them. */
  const typeThen = new Map<number, string>();

  const ingest = (thing: string, kind: string, affordance: string, value: unknown, cause: Cause) =>
    hub.hub.ingest(thing, [{ kind, affordance, value }], { via: "http", ...cause });

  beforeAll(async () => {
    hub = await startTestHub();
    await putTd(hub, td(A, "saref:Sensor"));
    await putTd(hub, td(B, "ht:Host"));
    await ingest(A, "reported", "load", 1, { actor: "alice", release: RELEASE });
    await ingest(A, "reported", "load", 2, { actor: "bob", correlation: CORRELATION });
    await ingest(B, "reported", "load", 3, { actor: "alice", release: RELEASE, correlation: CORRELATION });
    await ingest(A, "emitted", "alarm", "hot", { actor: "alice", release: RELEASE });
    // A becomes a host for a while: its Changes then are a host's, not a sensor's.
    await putTd(hub, td(A, "ht:Host"));
    await ingest(A, "reported", "load", 4, { actor: "alice", release: RELEASE, correlation: CORRELATION });
    await ingest(B, "emitted", "alarm", "cold", { actor: "bob", correlation: "another" });
    await putTd(hub, td(A, "saref:Sensor"));
    await ingest(A, "reported", "load", 5, { actor: "bob", release: RELEASE });
    await ingest(B, "reported", "load", 6, { actor: "alice" });
    // The sentinel: every filter matches it, so each stream is read up to it.
    await ingest(A, "reported", "load", 7, { actor: "alice", release: RELEASE, correlation: CORRELATION });
    sentinel = await hub.hub.store.lastSeq();
    const res = await hub.request("/changes?limit=1000");
    everything = ((await res.json()) as { changes: Change[] }).changes;
    const now = new Map<string, string>();
    for (const c of everything) {
      if (c.kind === "described") now.set(c.thing, (c.value as { "@type": string })["@type"]);
      typeThen.set(c.seq, now.get(c.thing) ?? "");
    }
    expect(everything.at(-1)?.seq).toBe(sentinel);
  });
  afterAll(async () => hub?.stop());

  /** The seqs a filter should match, by the test's own reading of the Log. */
  function expected(filter: ChangeFilter): number[] {
    const types: Record<string, string[]> = {
      "saref:Sensor": ["saref:Sensor"],
      "saref:Device": ["saref:Sensor"],
    };
    return everything
      .filter(
        (c) =>
          (filter.thing === undefined || c.thing === filter.thing) &&
          (filter.affordance === undefined || c.affordance === filter.affordance) &&
          (filter.kinds === undefined || filter.kinds.includes(c.kind)) &&
          (filter.actor === undefined || c.cause.actor === filter.actor) &&
          (filter.release === undefined || c.cause.release === filter.release) &&
          (filter.correlation === undefined || c.cause.correlation === filter.correlation) &&
          (filter.type === undefined || (types[filter.type] ?? []).includes(typeThen.get(c.seq) ?? "")),
      )
      .map((c) => c.seq);
  }

  async function viaSse(filter: ChangeFilter): Promise<number[]> {
    const stream = await EventStream.open(hub, `/changes/stream?${feedQuery(filter)}`, {
      "last-event-id": "0",
    });
    const seqs: number[] = [];
    try {
      while (seqs.at(-1) !== sentinel) {
        const [event] = await stream.take(1);
        seqs.push((JSON.parse(event?.data ?? "{}") as Change).seq);
      }
    } finally {
      stream.close();
    }
    return seqs;
  }

  async function viaGraphql(client: GraphqlClient, filter: ChangeFilter): Promise<number[]> {
    const stop = new AbortController();
    const seqs: number[] = [];
    for await (const change of client.changes(filter, { after: 0, signal: stop.signal })) {
      seqs.push(change.seq);
      if (change.seq === sentinel) stop.abort();
    }
    return seqs;
  }

  it("answers the same Changes for each filter on the SSE feed and the GraphQL subscription", async () => {
    const client = new GraphqlClient({ url: hub.url, token: hub.token, webSocketImpl: WebSocket });
    try {
      for (const filter of FILTERS) {
        const want = expected(filter);
        const label = JSON.stringify(filter);
        expect(await viaSse(filter), `SSE ${label}`).toEqual(want);
        expect(await viaGraphql(client, filter), `GraphQL ${label}`).toEqual(want);
      }
    } finally {
      await client.close();
    }
    // The type as of each Change: A's reading while it was a host is no sensor's.
    const asHost = everything.find((c) => c.thing === A && c.value === 4)?.seq;
    expect(expected({ type: "saref:Sensor" })).not.toContain(asHost);
    expect(expected({ thing: A })).toContain(asHost);
  });

  it("answers each filter the same when the SSE feed carries them all on one connection (match)", async () => {
    const match = FILTERS.map((f) => `match=${encodeURIComponent(feedQuery(f))}`).join("&");
    const stream = await EventStream.open(hub, `/changes/stream?${match}`, { "last-event-id": "0" });
    const seqs: number[][] = FILTERS.map(() => []);
    try {
      for (let seq = 0; seq !== sentinel;) {
        const [event] = await stream.take(1);
        const data = JSON.parse(event?.data ?? "{}") as { matches: number[]; change: Change };
        seq = data.change.seq;
        for (const i of data.matches) seqs[i]?.push(seq);
      }
    } finally {
      stream.close();
    }
    FILTERS.forEach((filter, i) => expect(seqs[i], JSON.stringify(filter)).toEqual(expected(filter)));
  });

  /** GET /changes with the filter, page after page of `limit`, in either order. */
  async function viaFeedPages(filter: ChangeFilter, order: "asc" | "desc", limit: number): Promise<number[]> {
    const seqs: number[] = [];
    for (let cursor: number | undefined, pages = 0; pages < 100; pages++) {
      const after = cursor === undefined ? "" : `&cursor=${cursor}`;
      const res = await hub.request(`/changes?${feedQuery(filter)}&order=${order}&limit=${limit}${after}`);
      expect(res.status).toBe(200);
      const page = (await res.json()) as { changes: Change[]; next?: number };
      seqs.push(...page.changes.map((c) => c.seq));
      if (page.next === undefined) break;
      cursor = page.next;
    }
    return seqs;
  }

  /** `things watch` with these arguments, from a day back: the seqs it prints up to the sentinel. */
  async function viaWatch(args: string[]): Promise<number[]> {
    const watcher = runThings([
      "watch",
      ...args,
      "--since",
      "-1d",
      "--json",
      "--url",
      hub.url,
      "--token",
      hub.token,
    ]);
    try {
      await watcher.waitFor(new RegExp(`"seq":${sentinel}\\b`));
      return watcher
        .stdout()
        .trim()
        .split("\n")
        .map((l) => (JSON.parse(l) as Change).seq);
    } finally {
      watcher.process.kill("SIGINT");
      await watcher.exited;
    }
  }

  it("answers the same Changes for each filter on GET /changes (both orders, paged) and GraphQL's changes query", async () => {
    const client = new GraphqlClient({ url: hub.url, token: hub.token, webSocketImpl: WebSocket });
    try {
      for (const filter of FILTERS) {
        const want = expected(filter);
        const label = JSON.stringify(filter);
        expect(await viaFeedPages(filter, "asc", 1000), `GET /changes ${label}`).toEqual(want);
        expect(await viaFeedPages(filter, "desc", 2), `GET /changes desc ${label}`).toEqual(
          [...want].reverse(),
        );
        const answer = await client.request<{ changes: { changes: Array<{ seq: number }> } }>(
          "query($filter: ChangeFilter) { changes(filter: $filter, first: 1000) { changes { seq } } }",
          { filter },
        );
        expect(
          answer.changes.changes.map((c) => c.seq),
          `GraphQL ${label}`,
        ).toEqual(want);
      }
    } finally {
      await client.close();
    }
    // The correlation's Changes are of both Things, and not the other correlation's.
    const correlated = everything.filter((c) => expected({ correlation: CORRELATION }).includes(c.seq));
    expect(new Set(correlated.map((c) => c.thing))).toEqual(new Set([A, B]));
    expect(correlated).toHaveLength(4);
  });

  it("things changes --correlation and things watch --correlation print the correlation's Changes", async () => {
    const auth = ["--url", hub.url, "--token", hub.token];
    const want = expected({ correlation: CORRELATION });
    const listed = await runThingsToEnd([
      "changes",
      "--correlation",
      CORRELATION,
      "--oldest-first",
      "--json",
      ...auth,
    ]);
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as Change[]).map((c) => c.seq)).toEqual(want);
    const combined = await runThingsToEnd([
      "changes",
      "--correlation",
      CORRELATION,
      "--thing",
      A,
      "--json",
      ...auth,
    ]);
    expect(combined.code, combined.stderr).toBe(0);
    const ofA = expected({ correlation: CORRELATION, thing: A });
    expect((JSON.parse(combined.stdout) as Change[]).map((c) => c.seq)).toEqual([...ofA].reverse());
    expect(await viaWatch(["--correlation", CORRELATION])).toEqual(want);
  });

  it("things changes --affordance and things watch --affordance print that affordance's Changes of every Thing", async () => {
    const auth = ["--url", hub.url, "--token", hub.token];
    const want = expected({ affordance: "load" });
    // Both Things' readings, and none of their alarms or descriptions.
    expect(new Set(everything.filter((c) => want.includes(c.seq)).map((c) => c.thing))).toEqual(
      new Set([A, B]),
    );
    expect(want.length).toBeLessThan(everything.filter((c) => c.affordance !== undefined).length);
    const listed = await runThingsToEnd([
      "changes",
      "--affordance",
      "load",
      "--oldest-first",
      "--json",
      ...auth,
    ]);
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as Change[]).map((c) => c.seq)).toEqual(want);
    const alarms = await runThingsToEnd(["changes", "--affordance", "alarm", "--thing", B, ...auth]);
    expect(alarms.code, alarms.stderr).toBe(0);
    expect(
      alarms.stdout
        .trim()
        .split("\n")
        .slice(1)
        .map((row) => row.split(/\s+/)[0]),
    ).toEqual(expected({ affordance: "alarm", thing: B }).map(String).reverse());
    expect(await viaWatch(["--affordance", "load"])).toEqual(want);
    // An empty name is refused, on the paged feed, the SSE feed (alone or in a match) and GraphQL.
    for (const path of [
      "/changes?affordance=",
      "/changes/stream?affordance=",
      `/changes/stream?match=${encodeURIComponent("affordance=")}`,
    ]) {
      const res = await hub.request(path);
      expect(res.status, path).toBe(400);
    }
  });

  it("things changes and things watch say when --affordance names no affordance of any Thing, or of the --thing, with the nearest name", async () => {
    const auth = ["--url", hub.url, "--token", hub.token];
    const typo = await runThingsToEnd(["changes", "--affordance", "laod", ...auth]);
    expect(typo).toMatchObject({ code: 0, stdout: "" });
    expect(typo.stderr).toBe(
      'no Change matches: no Thing declares a property, action or event "laod" (did you mean load?)\n',
    );
    // A's alarm is an event it declares: named for A, not for a name no Thing has.
    const ofThing = await runThingsToEnd(["changes", "--affordance", "alarn", "--thing", A, ...auth]);
    expect(ofThing.stderr).toBe(
      `no Change matches: ${A} declares no property, action or event "alarn" (did you mean alarm?)\n`,
    );
    // A name some Thing declares, with no Change in the range, is not called unknown.
    const quiet = await runThingsToEnd(["changes", "--affordance", "load", "--since", "+1h", ...auth]);
    expect(quiet.stderr).not.toMatch(/declares/);
    const watcher = runThings(["watch", "--affordance", "laod", ...auth]);
    try {
      await watcher.waitFor(
        /^note: no Thing declares a property, action or event "laod" \(did you mean load\?\) yet; waiting: its Changes show once one does$/m,
        "stderr",
      );
    } finally {
      watcher.process.kill("SIGINT");
      await watcher.exited;
    }
  });

  it("refuses the same malformed filters on both surfaces", async () => {
    const sse = await hub.request(`/changes/stream?thing=${encodeURIComponent("not an iri")}`);
    expect(sse.status).toBe(400);
    expect(((await sse.json()) as { detail: string }).detail).toMatch(/"not an iri" is not a valid/);
    const client = new GraphqlClient({ url: hub.url, token: hub.token, webSocketImpl: WebSocket });
    try {
      const stream = client.changes({ thing: "not an iri" }, { after: 0 });
      await expect(stream[Symbol.asyncIterator]().next()).rejects.toThrow(/"not an iri" is not a valid/);
    } finally {
      await client.close();
    }
  });
});
