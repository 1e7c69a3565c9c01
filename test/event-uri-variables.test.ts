// A Thing whose forms are URI templates (RFC 6570) with TD `uriVariables`: the hub's observation
// expands them with the variables' declared defaults (Thing-level and affordance-level).
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import type { Change } from "../src/core/index.js";
import { changeAfter, putTd, startTestHub, type TestHub } from "./support/test-hub.js";

const ID = "urn:test:event-uri-variables:building";

describe("URI variables of observed properties and events", () => {
  let hub: TestHub;
  let device: Server;
  /** Method, path and query of every request the Thing got. */
  const requests: string[] = [];
  /** Open alarm streams, by room. */
  const streams = new Map<string, ServerResponse>();
  const streamWaiters: { room: string; resolve: () => void }[] = [];

  /** Resolves once an alarm stream of `room` is open (now or later); fails after 10 s. */
  const streamOpen = (room: string) =>
    new Promise<void>((resolve, reject) => {
      if (streams.has(room)) return resolve();
      const timer = setTimeout(() => reject(new Error(`no alarm stream of ${room} opened`)), 10_000);
      streamWaiters.push({
        room,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  let kitchen: Promise<void>;

  beforeAll(async () => {
    device = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://device");
      requests.push(`${req.method} ${url.pathname}${url.search}`);
      const alarm = /^\/rooms\/([a-z]+)\/alarm$/.exec(url.pathname);
      if (alarm?.[1] !== undefined) {
        const room = alarm[1];
        res.writeHead(200, { "content-type": "text/event-stream" });
        res.write(": open\n\n");
        streams.set(room, res);
        res.on("close", () => streams.delete(room));
        for (const waiter of streamWaiters.filter((w) => w.room === room)) waiter.resolve();
        return;
      }
      const unit = url.searchParams.get("unit");
      if (url.pathname === "/temperature" && (unit === "C" || unit === "F")) {
        res.writeHead(200, { "content-type": "application/json" }).end(unit === "F" ? "70" : "21");
        return;
      }
      res.writeHead(404, { "content-type": "text/plain" }).end("no such resource");
    });
    device.listen(0, "127.0.0.1");
    await new Promise<void>((resolve) => device.once("listening", resolve));
    const base = `http://127.0.0.1:${(device.address() as AddressInfo).port}/`;
    hub = await startTestHub({ observe: true, reconnectMs: 20, maxReconnectMs: 200 });
    kitchen = streamOpen("kitchen");
    kitchen.catch(() => undefined);
    await putTd(hub, {
      "@context": "https://www.w3.org/2022/wot/td/v1.1",
      id: ID,
      title: "Building",
      base,
      securityDefinitions: { nosec_sc: { scheme: "nosec" } },
      security: "nosec_sc",
      uriVariables: { room: { type: "string", pattern: "^[a-z]+$", default: "kitchen" } },
      properties: {
        temperature: {
          type: "number",
          readOnly: true,
          observable: true,
          "hyperthings:pollInterval": 100,
          uriVariables: { unit: { type: "string", enum: ["C", "F"], default: "C" } },
          forms: [{ href: "temperature{?unit}", op: ["readproperty", "observeproperty"] }],
        },
      },
      events: {
        alarm: {
          data: { type: "string" },
          uriVariables: { severity: { type: "integer", minimum: 1 } },
          forms: [{ href: "rooms/{room}/alarm{?severity}", subprotocol: "sse" }],
        },
      },
    });
  });

  afterAll(async () => {
    await hub?.stop();
    device?.closeAllConnections();
    device?.close();
  });

  async function history(kinds: string): Promise<Change[]> {
    const res = await hub.request(`${thingPath(ID)}/history?order=asc&limit=1000&kind=${kinds}`);
    return ((await res.json()) as { changes: Change[] }).changes;
  }

  it("observes with the declared defaults of the Thing's and the affordance's URI variables", async () => {
    const reported = await changeAfter(hub, 0, (c) => c.thing === ID && c.kind === "reported");
    expect(reported).toMatchObject({ affordance: "temperature", value: 21 });
    expect(requests).toContain("GET /temperature?unit=C");
    await kitchen;
    expect(requests).toContain("GET /rooms/kitchen/alarm");
    streams.get("kitchen")?.write(`data: "smoke"\n\n`);
    const emitted = await changeAfter(hub, 0, (c) => c.thing === ID && c.kind === "emitted");
    expect(emitted).toMatchObject({ affordance: "alarm", value: "smoke" });
    expect(await history("failed")).toEqual([]);
  });
});
