// The change feed's `type` filter tells the truth about the past: a Change matches by the type its
// Thing had then (the TD in force at its seq), not by the Thing's TD now — over the paged feed,
// the SSE stream (resumed across a re-description), GraphQL and the CLI, against a real hub.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { thingPath } from "../src/api/index.js";
import { GraphqlClient, type GraphqlChange } from "../src/client/index.js";
import type { Change } from "../src/core/index.js";
import { EventStream } from "./support/sse.js";
import { minimalTd, putTd, startTestHub, type TestHub } from "./support/test-hub.js";
import { runThings, runThingsToEnd } from "./support/things-process.js";

interface Page {
  changes: Change[];
  next?: number;
}

const FORMS = [{ href: "http://thing.example/p" }];
const REBORN = "urn:example:types:reborn";
const GONE = "urn:example:types:gone";
const STEADY = "urn:example:types:steady";
const HOST = "urn:example:types:host";

function td(id: string, type: string): Record<string, unknown> {
  return minimalTd({
    id,
    "@type": type,
    title: id,
    properties: { load: { type: "number", forms: FORMS } },
  });
}

async function getJson<T>(hub: TestHub, path: string): Promise<T> {
  const res = await hub.request(path);
  if (res.status !== 200) throw new Error(`GET ${path} answered ${res.status}: ${await res.text()}`);
  return (await res.json()) as T;
}

/** Every page of a feed query, following `next`. */
async function feed(hub: TestHub, query: string): Promise<Change[]> {
  const out: Change[] = [];
  let cursor: number | undefined;
  for (let pages = 0; pages < 100; pages++) {
    const page = await getJson<Page>(
      hub,
      `/changes?${query}${cursor === undefined ? "" : `&cursor=${cursor}`}`,
    );
    out.push(...page.changes);
    if (page.next === undefined) return out;
    cursor = page.next;
  }
  throw new Error("more than 100 pages");
}

async function report(hub: TestHub, id: string, value: number): Promise<void> {
  const res = await hub.request(`${thingPath(id)}/changes`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ kind: "reported", affordance: "load", value }),
  });
  if (res.status !== 201) throw new Error(`report answered ${res.status}: ${await res.text()}`);
}

describe("the change feed filtered by type, as each Thing was at each Change", () => {
  let hub: TestHub;
  let everything: Change[] = [];
  /** The type each Change's Thing had then, as the test made them. */
  const typeThen = new Map<number, string>();
  /** The seq of the re-description of REBORN as a host. */
  let rehosted = 0;
  const start = new Date(Date.now() - 60_000).toISOString();

  const of = (type: string) => everything.filter((c) => typeThen.get(c.seq) === type);

  const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-types-"));

  beforeAll(async () => {
    hub = await startTestHub({ dataDir });
    // A sensor re-described as a host, and back; a sensor removed; a sensor and a host that stay.
    await putTd(hub, td(REBORN, "saref:Sensor"));
    await putTd(hub, td(GONE, "saref:Sensor"));
    await putTd(hub, td(STEADY, "saref:Sensor"));
    await putTd(hub, td(HOST, "ht:Host"));
    await report(hub, REBORN, 1);
    await report(hub, GONE, 2);
    await report(hub, HOST, 3);
    // The type filter is asked once before the re-descriptions, so that the hub's view of the
    // types is built first and then kept in step with the Log.
    await getJson<Page>(hub, "/changes?type=saref:Sensor");
    await putTd(hub, td(REBORN, "ht:Host"));
    await report(hub, REBORN, 4);
    await report(hub, STEADY, 5);
    expect((await hub.request(thingPath(GONE), { method: "DELETE" })).status).toBe(204);
    await report(hub, REBORN, 6);
    await putTd(hub, td(REBORN, "saref:Sensor"));
    await report(hub, REBORN, 7);
    await report(hub, STEADY, 8);
    everything = (await getJson<Page>(hub, "/changes?limit=1000")).changes;
    const now = new Map<string, string>();
    for (const c of everything) {
      if (c.kind === "described") now.set(c.thing, (c.value as { "@type": string })["@type"]);
      typeThen.set(c.seq, now.get(c.thing) ?? "");
    }
    rehosted =
      everything.find(
        (c) => c.thing === REBORN && c.kind === "described" && typeThen.get(c.seq) === "ht:Host",
      )?.seq ?? 0;
    expect(rehosted).toBeGreaterThan(0);
  });
  afterAll(async () => {
    await hub?.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("pages a type's Changes as of each Change: a re-described Thing's old ones stay under its old type, a removed Thing's stay", async () => {
    const sensors = of("saref:Sensor");
    const hosts = of("ht:Host");
    // The removal, and the sensor's Changes before and after its time as a host.
    expect(sensors.filter((c) => c.thing === GONE).map((c) => c.kind)).toEqual([
      "described",
      "reported",
      "removed",
    ]);
    expect(sensors.filter((c) => c.thing === REBORN).map((c) => c.value)).toContain(1);
    expect(hosts.filter((c) => c.thing === REBORN).map((c) => c.value)).toEqual([
      expect.objectContaining({ "@type": "ht:Host" }),
      4,
      6,
    ]);
    for (const limit of [1, 2, 100]) {
      expect(await feed(hub, `type=saref:Sensor&limit=${limit}`), `limit ${limit}`).toEqual(sensors);
      expect(await feed(hub, `type=ht:Host&limit=${limit}`), `limit ${limit}`).toEqual(hosts);
      expect(await feed(hub, `type=saref:Sensor&limit=${limit}&order=desc`)).toEqual([...sensors].reverse());
      // A supertype: the hosts are compute resources, the sensors devices.
      expect(await feed(hub, `type=ht:ComputeResource&limit=${limit}`)).toEqual(hosts);
    }
    expect(await feed(hub, "type=saref:Device")).toEqual(sensors);
  });

  it("reads the types of the past from the Log after a restart", async () => {
    await hub.stop();
    hub = await startTestHub({ dataDir });
    expect(await feed(hub, "type=saref:Sensor&limit=2")).toEqual(of("saref:Sensor"));
    expect(await feed(hub, "type=ht:Host&limit=2&order=desc")).toEqual(of("ht:Host").reverse());
  });

  it("with a Thing, pages its Changes of the times it had the type, before and after it had another", async () => {
    const thing = `thing=${encodeURIComponent(REBORN)}`;
    const sensorTimes = of("saref:Sensor").filter((c) => c.thing === REBORN);
    expect(sensorTimes.map((c) => c.kind)).toEqual(["described", "reported", "described", "reported"]);
    for (const limit of [1, 3, 100]) {
      expect(await feed(hub, `${thing}&type=saref:Sensor&limit=${limit}`)).toEqual(sensorTimes);
      expect(await feed(hub, `${thing}&type=saref:Sensor&limit=${limit}&order=desc`)).toEqual(
        [...sensorTimes].reverse(),
      );
      expect(await feed(hub, `${thing}&type=saref:Sensor&kind=reported&limit=${limit}`)).toEqual(
        sensorTimes.filter((c) => c.kind === "reported"),
      );
    }
    expect(await feed(hub, `thing=${encodeURIComponent(GONE)}&type=saref:Sensor`)).toEqual(
      everything.filter((c) => c.thing === GONE),
    );
    expect(await feed(hub, `thing=${encodeURIComponent(GONE)}&type=ht:Host`)).toEqual([]);
  });

  it("streams (SSE) a type's Changes as of each Change, replayed from Last-Event-ID across a re-description, then live", async () => {
    const sensors = of("saref:Sensor");
    const all = await EventStream.open(hub, "/changes/stream?type=saref:Sensor", { "last-event-id": "0" });
    const resumed = await EventStream.open(hub, "/changes/stream?type=saref:Sensor", {
      "last-event-id": String(rehosted - 1),
    });
    const hosts = await EventStream.open(hub, "/changes/stream?type=ht:Host", {
      "last-event-id": String(rehosted - 1),
    });
    try {
      const data = (events: Array<{ data: string }>) => events.map((e) => JSON.parse(e.data) as Change);
      expect(data(await all.take(sensors.length))).toEqual(sensors);
      const after = sensors.filter((c) => c.seq > rehosted - 1);
      expect(data(await resumed.take(after.length))).toEqual(after);
      const hostsAfter = of("ht:Host").filter((c) => c.seq > rehosted - 1);
      expect(data(await hosts.take(hostsAfter.length))).toEqual(hostsAfter);
      // Live: the steady sensor becomes a host; its reading then is a host's, not a sensor's.
      await putTd(hub, td(STEADY, "ht:Host"));
      await report(hub, STEADY, 9);
      await report(hub, REBORN, 10);
      const [redescribed, asHost] = data(await hosts.take(2));
      expect([redescribed?.kind, asHost?.value]).toEqual(["described", 9]);
      // The next sensor Change on the sensor streams is the reborn sensor's reading.
      for (const stream of [all, resumed]) expect(data(await stream.take(1))).toMatchObject([{ value: 10 }]);
    } finally {
      for (const stream of [all, resumed, hosts]) stream.close();
    }
    // Put back as it was for the other tests.
    everything = (await getJson<Page>(hub, "/changes?limit=1000")).changes;
    for (const c of everything.filter((x) => !typeThen.has(x.seq)))
      typeThen.set(c.seq, c.thing === STEADY ? "ht:Host" : "saref:Sensor");
  });

  it("answers GraphQL's changes query and subscription by the type as of each Change", async () => {
    const client = new GraphqlClient({ url: hub.url, token: hub.token, webSocketImpl: WebSocket });
    try {
      const sensors = of("saref:Sensor");
      const seqs: number[] = [];
      let after: number | null = null;
      for (let pages = 0; pages < 50; pages++) {
        const answer: { changes: { changes: Array<{ seq: number }>; next: number | null } } =
          await client.request(
            'query($after: SafeInt) { changes(filter: { type: "saref:Sensor" }, first: 2, after: $after) { changes { seq } next } }',
            { after },
          );
        seqs.push(...answer.changes.changes.map((c) => c.seq));
        after = answer.changes.next;
        if (after === null) break;
      }
      expect(seqs).toEqual(sensors.map((c) => c.seq));
      const stop = new AbortController();
      const got: GraphqlChange[] = [];
      for await (const change of client.changes(
        { type: "ht:Host" },
        { after: rehosted - 1, signal: stop.signal },
      )) {
        got.push(change);
        if (got.length === of("ht:Host").filter((c) => c.seq >= rehosted).length) stop.abort();
      }
      expect(got.map((c) => c.seq)).toEqual(
        of("ht:Host")
          .filter((c) => c.seq >= rehosted)
          .map((c) => c.seq),
      );
    } finally {
      await client.close();
    }
  });

  it("combines a Thing, its type, a list of kinds and --since in things changes, things watch and GraphQL", async () => {
    const auth = ["--url", hub.url, "--token", hub.token];
    const expected = of("saref:Sensor").filter(
      (c) => c.thing === REBORN && (c.kind === "reported" || c.kind === "removed"),
    );
    // Its readings before and after its time as a host (and 10, when the SSE test made it).
    expect(expected.map((c) => c.value)).toEqual(expect.arrayContaining([1, 7]));
    const filters = [
      "--thing",
      REBORN,
      "--type",
      "saref:Sensor",
      "--kind",
      "reported,removed",
      "--since",
      start,
    ];
    const listed = await runThingsToEnd(["changes", ...filters, "--oldest-first", "--json", ...auth]);
    expect(listed.code, listed.stderr).toBe(0);
    expect(JSON.parse(listed.stdout)).toEqual(expected);
    const later = await runThingsToEnd(["changes", ...filters.slice(0, -1), "+1h", ...auth]);
    expect(later.code, later.stderr).toBe(0);
    expect(later.stdout).toBe("");
    expect(later.stderr).toContain("no Change matches");
    const watcher = runThings(["watch", ...filters, "--json", ...auth]);
    try {
      await watcher.waitFor(new RegExp(`"seq":${expected.at(-1)?.seq ?? 0}\\b`));
      expect(
        watcher
          .stdout()
          .trim()
          .split("\n")
          .map((l) => JSON.parse(l) as Change),
      ).toEqual(expected);
    } finally {
      watcher.process.kill("SIGINT");
      await watcher.exited;
    }
    const client = new GraphqlClient({ url: hub.url, token: hub.token, webSocketImpl: WebSocket });
    try {
      const answer = await client.request<{ changes: { changes: Array<{ seq: number }> } }>(
        'query($thing: ID) { changes(filter: { thing: $thing, type: "saref:Sensor", kinds: ["reported", "removed"] }) { changes { seq } } }',
        { thing: REBORN },
      );
      expect(answer.changes.changes.map((c) => c.seq)).toEqual(expected.map((c) => c.seq));
    } finally {
      await client.close();
    }
  });

  it("things changes --type and things watch --type show a type's Changes as of each Change", async () => {
    const sensors = of("saref:Sensor");
    const auth = ["--url", hub.url, "--token", hub.token];
    const listed = await runThingsToEnd([
      "changes",
      "--type",
      "saref:Sensor",
      "--oldest-first",
      "--json",
      ...auth,
    ]);
    expect(listed.code, listed.stderr).toBe(0);
    expect((JSON.parse(listed.stdout) as Change[]).map((c) => c.seq)).toEqual(sensors.map((c) => c.seq));
    const watcher = runThings(["watch", "--type", "saref:Sensor", "--since", start, "--json", ...auth]);
    try {
      const last = sensors.at(-1)?.seq ?? 0;
      await watcher.waitFor(new RegExp(`"seq":${last}\\b`));
      const lines = watcher
        .stdout()
        .trim()
        .split("\n")
        .map((l) => JSON.parse(l) as Change);
      expect(lines.map((c) => c.seq)).toEqual(sensors.map((c) => c.seq));
    } finally {
      watcher.process.kill("SIGINT");
      await watcher.exited;
    }
  });
});
