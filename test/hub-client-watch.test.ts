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
