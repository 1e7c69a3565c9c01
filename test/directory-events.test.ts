// Directory notifications (W3C WoT Discovery §7.3.2.5) as Server-Sent Events over real HTTP:
// event types and data, filtered streams, diffs, resumption with Last-Event-ID from the Log.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import { EventStream, type SseEvent } from "./support/sse.js";
import { minimalTd, startTestHub, type TestHub } from "./support/test-hub.js";

/** Event type, Log position and data, in a form that compares well. */
function summary(event: SseEvent): [string, number, unknown] {
  return [event.event, Number(event.id), JSON.parse(event.data)];
}

function put(hub: TestHub, id: string, td: unknown): Promise<Response> {
  return hub.request(thingPath(id), {
    method: "PUT",
    headers: { "content-type": "application/td+json" },
    body: JSON.stringify(td),
  });
}

function patch(hub: TestHub, id: string, body: unknown): Promise<Response> {
  return hub.request(thingPath(id), {
    method: "PATCH",
    headers: { "content-type": "application/merge-patch+json" },
    body: JSON.stringify(body),
  });
}

async function remove(hub: TestHub, id: string): Promise<void> {
  expect((await hub.request(thingPath(id), { method: "DELETE" })).status).toBe(204);
}

async function lastSeq(hub: TestHub): Promise<number> {
  const res = await hub.request("/health", { auth: false });
  return ((await res.json()) as { lastSeq: number }).lastSeq;
}

describe("directory events", () => {
  let hub: TestHub;
  const streams: EventStream[] = [];
  async function open(
    path: string,
    headers: Record<string, string> = {},
    boundMs?: number,
  ): Promise<EventStream> {
    const stream = await EventStream.open(hub, path, headers, boundMs);
    streams.push(stream);
    return stream;
  }

  beforeAll(async () => {
    hub = await startTestHub();
  });
  afterEach(() => {
    for (const stream of streams.splice(0)) stream.close();
  });
  afterAll(async () => {
    await hub.stop();
  });

  it("answers /events as text/event-stream", async () => {
    const stream = await open("/events");
    expect(stream.response.status).toBe(200);
    expect(stream.response.headers.get("content-type")).toMatch(/^text\/event-stream\b/);
  });

  it("sends thing_created, thing_updated and thing_deleted with the Thing's id, each event's id its Log seq", async () => {
    const stream = await open("/events");
    const id = "urn:example:events:lamp";
    const start = await lastSeq(hub);
    expect((await put(hub, id, minimalTd({ id }))).status).toBe(201);
    expect((await patch(hub, id, { title: "Desk lamp" })).status).toBe(204);
    await remove(hub, id);
    expect((await stream.take(3)).map(summary)).toEqual([
      ["thing_created", start + 1, { id }],
      ["thing_updated", start + 2, { id }],
      ["thing_deleted", start + 3, { id }],
    ]);
    expect(await lastSeq(hub)).toBe(start + 3);
  });

  it("counts a PUT that replaces a TD as thing_updated", async () => {
    const stream = await open("/events");
    const id = "urn:example:events:replaced";
    expect((await put(hub, id, minimalTd({ id }))).status).toBe(201);
    expect((await put(hub, id, minimalTd({ id, title: "Replaced" }))).status).toBe(204);
    expect((await stream.take(2)).map((e) => e.event)).toEqual(["thing_created", "thing_updated"]);
  });

  it("with diff=true sends the created TD, the update as a merge patch with the id, and the deleted id", async () => {
    const stream = await open("/events?diff=true");
    const id = "urn:example:events:diff";
    const td = minimalTd({
      id,
      description: "by the door",
      properties: { on: { type: "boolean", forms: [{ href: "http://x.example/on" }] } },
    });
    expect((await put(hub, id, td)).status).toBe(201);
    expect((await patch(hub, id, { title: "Door lamp", description: null })).status).toBe(204);
    expect(
      (await put(hub, id, { ...td, title: "Door lamp", description: undefined, properties: {} })).status,
    ).toBe(204);
    await remove(hub, id);
    const events = (await stream.take(4)).map(summary);
    expect(events.map(([type, , data]) => [type, data])).toEqual([
      ["thing_created", td],
      ["thing_updated", { id, title: "Door lamp", description: null }],
      ["thing_updated", { id, properties: { on: null } }],
      ["thing_deleted", { id }],
    ]);
  });

  it("sends on /events/thing_updated only updates", async () => {
    const stream = await open("/events/thing_updated");
    const a = "urn:example:events:only-a";
    const b = "urn:example:events:only-b";
    expect((await put(hub, a, minimalTd({ id: a }))).status).toBe(201);
    expect((await put(hub, a, minimalTd({ id: a, title: "A2" }))).status).toBe(204);
    await remove(hub, a);
    expect((await put(hub, b, minimalTd({ id: b }))).status).toBe(201);
    expect((await patch(hub, b, { title: "B2" })).status).toBe(204);
    const events = await stream.take(2);
    expect(events.map((e) => [e.event, JSON.parse(e.data) as unknown])).toEqual([
      ["thing_updated", { id: a }],
      ["thing_updated", { id: b }],
    ]);
  });

  it("sends on /events/thing_created and /events/thing_deleted only their own type", async () => {
    const created = await open("/events/thing_created");
    const deleted = await open("/events/thing_deleted");
    const id = "urn:example:events:typed";
    expect((await put(hub, id, minimalTd({ id }))).status).toBe(201);
    expect((await patch(hub, id, { title: "T2" })).status).toBe(204);
    await remove(hub, id);
    const later = "urn:example:events:typed-later";
    expect((await put(hub, later, minimalTd({ id: later }))).status).toBe(201);
    await remove(hub, later);
    expect((await created.take(2)).map((e) => [e.event, JSON.parse(e.data) as unknown])).toEqual([
      ["thing_created", { id }],
      ["thing_created", { id: later }],
    ]);
    expect((await deleted.take(2)).map((e) => [e.event, JSON.parse(e.data) as unknown])).toEqual([
      ["thing_deleted", { id }],
      ["thing_deleted", { id: later }],
    ]);
  });

  it("resumes with Last-Event-ID: exactly the missed events, in order, without duplicates, then live ones", async () => {
    const ids = ["urn:example:resume:1", "urn:example:resume:2", "urn:example:resume:3"];
    const first = await open("/events");
    for (const id of ids) expect((await put(hub, id, minimalTd({ id }))).status).toBe(201);
    const [seen] = await first.take(1);
    first.close();
    const resumeFrom = Number(seen?.id);
    expect(JSON.parse(seen?.data ?? "{}")).toEqual({ id: ids[0] });

    // Missed while disconnected.
    expect((await patch(hub, ids[0] ?? "", { title: "Changed" })).status).toBe(204);
    await remove(hub, ids[1] ?? "");

    const resumed = await open("/events", { "last-event-id": String(resumeFrom) });
    expect(resumed.response.status).toBe(200);
    const replayed = (await resumed.take(4)).map(summary);
    expect(replayed).toEqual([
      ["thing_created", resumeFrom + 1, { id: ids[1] }],
      ["thing_created", resumeFrom + 2, { id: ids[2] }],
      ["thing_updated", resumeFrom + 3, { id: ids[0] }],
      ["thing_deleted", resumeFrom + 4, { id: ids[1] }],
    ]);
    // The next event is the next live one: nothing replayed twice, nothing skipped.
    await remove(hub, ids[2] ?? "");
    expect((await resumed.take(1)).map(summary)).toEqual([["thing_deleted", resumeFrom + 5, { id: ids[2] }]]);
  });

  it("replays the whole Log with Last-Event-ID: 0, filtered by the stream's type", async () => {
    const end = await lastSeq(hub);
    const changes = await hub.hub.store.changesAfter(0, 10_000);
    const deletions = changes.filter((c) => c.kind === "removed");
    expect(deletions.length).toBeGreaterThan(0);
    const stream = await open("/events/thing_deleted", { "last-event-id": "0" });
    const events = await stream.take(deletions.length);
    expect(events.map((e) => [Number(e.id), JSON.parse(e.data) as unknown])).toEqual(
      deletions.map((c) => [c.seq, { id: c.thing }]),
    );
    expect(Math.max(...events.map((e) => Number(e.id)))).toBeLessThanOrEqual(end);
  });

  it("replays with diff=true the TDs and merge patches from the Log", async () => {
    const id = "urn:example:events:replay-diff";
    const start = await lastSeq(hub);
    expect((await put(hub, id, minimalTd({ id }))).status).toBe(201);
    expect((await patch(hub, id, { title: "Replayed" })).status).toBe(204);
    const stream = await open("/events?diff=true", { "last-event-id": String(start) });
    expect((await stream.take(2)).map(summary)).toEqual([
      ["thing_created", start + 1, minimalTd({ id })],
      ["thing_updated", start + 2, { id, title: "Replayed" }],
    ]);
  });

  it.each(["abc", "-1", "1.5", "1e3", "12abc"])(
    "refuses Last-Event-ID %j with a 400 problem",
    async (value) => {
      const res = await hub.request("/events", { headers: { "last-event-id": value } });
      expect(res.status).toBe(400);
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json\b/);
      const problem = (await res.json()) as {
        type: string;
        title: string;
        status: number;
        detail: string;
        errors: Array<{ pointer: string }>;
      };
      expect(problem).toMatchObject({ status: 400 });
      expect(problem.detail).toContain(value);
      expect(problem.errors.map((e) => e.pointer)).toEqual(["/headers/last-event-id"]);
    },
  );

  it("refuses diff=maybe with a 400 problem", async () => {
    const res = await hub.request("/events?diff=maybe");
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json\b/);
  });

  it("does not swallow new events for a client whose Last-Event-ID is beyond the end of the Log (refuses it, or streams what comes next)", async () => {
    const beyond = (await lastSeq(hub)) + 1000;
    const stream = await open("/events", { "last-event-id": String(beyond) }, 5_000);
    if (stream.response.status === 400) {
      expect(stream.response.headers.get("content-type")).toMatch(/^application\/problem\+json\b/);
      return;
    }
    const id = "urn:example:events:after-beyond";
    expect((await put(hub, id, minimalTd({ id }))).status).toBe(201);
    expect((await stream.take(1)).map((e) => JSON.parse(e.data) as unknown)).toEqual([{ id }]);
  });
});

describe("directory events and the hub's lifecycle", () => {
  it("ends open streams when the hub stops", async () => {
    const hub = await startTestHub();
    const stream = await EventStream.open(hub, "/events");
    const id = "urn:example:events:before-stop";
    expect((await put(hub, id, minimalTd({ id }))).status).toBe(201);
    expect((await stream.take(1)).map((e) => e.event)).toEqual(["thing_created"]);
    await hub.stop();
    expect(await stream.next()).toBeUndefined();
  });

  it("resumes with Last-Event-ID across a restart of the hub on the same data directory", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-events-"));
    try {
      const ids = ["urn:example:restart:1", "urn:example:restart:2", "urn:example:restart:3"];
      const before = await startTestHub({ dataDir });
      for (const id of ids) expect((await put(before, id, minimalTd({ id }))).status).toBe(201);
      await before.stop();

      const after = await startTestHub({ dataDir });
      try {
        const stream = await EventStream.open(after, "/events", { "last-event-id": "1" });
        expect((await stream.take(2)).map(summary)).toEqual([
          ["thing_created", 2, { id: ids[1] }],
          ["thing_created", 3, { id: ids[2] }],
        ]);
        await remove(after, ids[0] ?? "");
        expect((await stream.take(1)).map(summary)).toEqual([["thing_deleted", 4, { id: ids[0] }]]);
        stream.close();
      } finally {
        await after.stop();
      }
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("sends thing_deleted when the expiry sweep drops a TD whose ttl ran out, caused by hub:expiry", async () => {
    let now = Date.parse("2030-06-01T00:00:00.000Z");
    const hub = await startTestHub({}, {}, { clock: () => new Date(now) });
    try {
      const stream = await EventStream.open(hub, "/events/thing_deleted");
      const id = "urn:example:events:expiring";
      expect((await put(hub, id, minimalTd({ id, registration: { ttl: 30 } }))).status).toBe(201);
      now += 31_000;
      // The hub's own sweep (every expirySweepMs, 1 s by default) drops it: no manual sweep here.
      const [event] = await stream.take(1);
      expect(JSON.parse(event?.data ?? "{}")).toEqual({ id });
      const [change] = await hub.hub.store.changesAfter(Number(event?.id) - 1, 1);
      expect(change).toMatchObject({ kind: "removed", thing: id, cause: { actor: "hub:expiry" } });
      stream.close();
    } finally {
      await hub.stop();
    }
  });

  it("requires a token for /events when the hub runs with auth: read", async () => {
    const hub = await startTestHub({ auth: "read" });
    try {
      const res = await hub.request("/events", { auth: false });
      expect(res.status).toBe(401);
      expect(res.headers.get("www-authenticate")).toMatch(/^Bearer\b/);
      const stream = await EventStream.open(hub, "/events");
      expect(stream.response.status).toBe(200);
      stream.close();
    } finally {
      await hub.stop();
    }
  });
});
