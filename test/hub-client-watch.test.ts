// HubClient.watch (GET /changes/stream through the typed client, which the web UI's live feed
// uses) against a real hub behind a gate that can make it look down: a hub that does not answer
// when the watch starts is waited for, and the Changes committed once it answers all arrive.
import { createServer, request as httpRequest, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { HubClient, type Change, type WatchStatus } from "../src/client/index.js";
import { minimalTd, registerThing, startTestHub, type TestHub } from "./support/test-hub.js";

const LAMP = "urn:test:watch:lamp";

/** A forwarding proxy to the hub that answers 503 (as a hub that is starting) while closed. */
async function gate(
  target: URL,
): Promise<{ url: string; open: () => void; seen: () => number; server: Server }> {
  let opened = false;
  let refused = 0;
  const server = createServer((req, res) => {
    if (!opened) {
      refused++;
      res.writeHead(503, { "content-type": "application/problem+json", "retry-after": "1" });
      res.end(
        JSON.stringify({
          type: "about:blank",
          title: "Service Unavailable",
          status: 503,
          detail: "starting",
        }),
      );
      return;
    }
    const upstream = httpRequest(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: req.headers },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on("error", () => res.destroy());
    req.pipe(upstream);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}`, open: () => (opened = true), seen: () => refused, server };
}

describe("HubClient.watch", () => {
  let hub: TestHub | undefined;
  let server: Server | undefined;
  afterEach(async () => {
    server?.closeAllConnections();
    server?.close();
    await hub?.stop();
    hub = server = undefined;
  });

  it("waits for a hub that does not answer yet, then gives every Change committed since it answered", async () => {
    hub = await startTestHub();
    await registerThing(
      hub,
      LAMP,
      minimalTd({
        id: LAMP,
        properties: { level: { type: "integer", forms: [{ href: "http://127.0.0.1:9/" }] } },
      }),
    );
    const door = await gate(new URL(hub.url));
    server = door.server;
    const statuses: WatchStatus[] = [];
    const abort = new AbortController();
    const client = new HubClient({ url: door.url, token: hub.token });
    const got: Change[] = [];
    const watching = (async () => {
      for await (const change of client.watch(
        { thing: LAMP },
        { signal: abort.signal, retryMs: 20, maxRetryMs: 100, onStatus: (s) => statuses.push(s) },
      )) {
        got.push(change);
        if (got.length === 2) abort.abort();
      }
    })();
    // Refused at least twice (the start and a retry), and said so, before it is let through.
    while (door.seen() < 2) await new Promise((resolve) => setTimeout(resolve, 20));
    expect(statuses[0]).toMatchObject({ state: "retrying" });
    door.open();
    while (!statuses.some((s) => s.state === "open")) await new Promise((resolve) => setTimeout(resolve, 20));
    const direct = new HubClient({ url: hub.url, token: hub.token });
    const { seqs } = await direct.report(LAMP, [
      { kind: "reported", affordance: "level", value: 1 },
      { kind: "reported", affordance: "level", value: 2 },
    ]);
    await watching;
    expect(got.map((c) => c.seq)).toEqual(seqs);
    expect(got.map((c) => c.value)).toEqual([1, 2]);
  });
});

describe("GET /changes/stream?match= (several feeds on one connection)", () => {
  let hub: TestHub | undefined;
  afterEach(async () => {
    await hub?.stop();
    hub = undefined;
  });

  it("sends each Change once with the feeds it matches, resumes with Last-Event-ID, and refuses a bad match", async () => {
    hub = await startTestHub();
    const other = "urn:test:watch:other";
    for (const id of [LAMP, other]) {
      await registerThing(
        hub,
        id,
        minimalTd({
          id,
          properties: { on: { type: "boolean", forms: [{ href: "http://127.0.0.1:9/on" }] } },
        }),
      );
    }
    const client = new HubClient({ url: hub.url, token: hub.token });
    const start = ((await (await hub.request("/health")).json()) as { lastSeq: number }).lastSeq;
    const cause = { actor: "tester", via: "test" };
    const [lamp] = await hub.hub.ingest(LAMP, [{ kind: "reported", affordance: "on", value: true }], cause);
    const [elsewhere] = await hub.hub.ingest(other, [{ kind: "reported", affordance: "on", value: true }], {
      actor: "someone",
      via: "test",
    });
    const abort = new AbortController();
    const seen: Array<{ seq: number; matches: number[] }> = [];
    for await (const { change, matches } of client.watchMatching(
      [{ thing: LAMP }, { actor: "someone" }, {}],
      { lastEventId: start, signal: abort.signal },
    )) {
      seen.push({ seq: change.seq, matches });
      if (change.seq === elsewhere?.seq) abort.abort();
    }
    expect(seen).toEqual([
      { seq: lamp?.seq, matches: [0, 2] },
      { seq: elsewhere?.seq, matches: [1, 2] },
    ]);
    // Resumed after the lamp's Change: only the other one, once.
    const resumed = await fetch(`${hub.url}/changes/stream?match=${encodeURIComponent(`thing=${other}`)}`, {
      headers: { authorization: `Bearer ${hub.token}`, "last-event-id": String(lamp?.seq) },
      signal: AbortSignal.timeout(10_000),
    });
    expect(resumed.status).toBe(200);
    const reader = resumed.body?.getReader();
    let text = "";
    while (!text.includes("event: matched")) {
      const chunk = await reader?.read();
      if (chunk === undefined || chunk.done) break;
      text += new TextDecoder().decode(chunk.value as Uint8Array);
    }
    await reader?.cancel();
    expect(text).toContain(`id: ${elsewhere?.seq}\nevent: matched\ndata: {"matches":[0],"change":{`);
    // A match with a field the feed has not, or combined with the feed's own filters: a 400.
    for (const [query, pointer] of [
      ["match=colour%3Dred", "/query/match/0"],
      ["match=kind%3Dreported&match=kind%3D1x", "/query/match/1"],
      ["match=&thing=urn:x", "/query/thing"],
      ["match=kind%3Dreported&match=thing%3Dno%2520iri", "/query/match/1"],
      ["match=kind%3Dreprted", "/query/match/0"],
    ]) {
      const refused = await hub.request(`/changes/stream?${query}`);
      expect(refused.status, query).toBe(400);
      expect(((await refused.json()) as { errors: Array<{ pointer: string }> }).errors[0]?.pointer).toBe(
        pointer,
      );
    }
  });
});
