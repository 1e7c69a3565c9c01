// A Thing whose forms are URI templates (RFC 6570) with TD `uriVariables`: the hub's observation
// expands them with the variables' declared defaults (Thing-level and affordance-level), and the
// API's event and observe streams take `?name=value` as the affordance's URI variables, as reads
// and actions do, relaying what the Thing sends for them without recording it.
import { createServer, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import { validateThingDescription, type Change } from "../src/core/index.js";
import { EventStream } from "./support/sse.js";
import { changeAfter, putTd, startTestHub, type TestHub } from "./support/test-hub.js";
import { runThings, runThingsToEnd } from "./support/things-process.js";

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

  it("streams an event subscribed with ?name=value from the Thing, and records none of it", async () => {
    const garage = streamOpen("garage");
    const stream = await EventStream.open(hub, `${thingPath(ID)}/events/alarm?room=garage&severity=2`);
    try {
      expect(stream.response.status).toBe(200);
      await garage;
      expect(requests).toContain("GET /rooms/garage/alarm?severity=2");
      streams.get("garage")?.write(`data: "flood"\n\n`);
      streams.get("garage")?.write(`data: 42\n\n`);
      const [flood, wrong] = await stream.take(2);
      expect(flood).toMatchObject({ event: "message", data: '"flood"' });
      expect(wrong?.event).toBe("error");
      expect(JSON.parse(wrong?.data ?? "{}")).toMatchObject({ reason: "content" });
      expect((await history("emitted,failed")).map((c) => c.value)).not.toContain("flood");
    } finally {
      stream.close();
    }
  });

  it("streams a property observed with ?name=value from the Thing, and records none of it", async () => {
    const stream = await EventStream.open(hub, `${thingPath(ID)}/properties/temperature/observe?unit=F`);
    try {
      expect(stream.response.status).toBe(200);
      const [first] = await stream.take(1);
      expect(first).toMatchObject({ event: "message", data: "70" });
      expect(first?.id).toBeUndefined();
      expect(requests).toContain("GET /temperature?unit=F");
      expect((await history("reported")).map((c) => c.value)).not.toContain(70);
    } finally {
      stream.close();
    }
  });

  it("says in the proxy TD which query parameters the hub's event and observe forms take", async () => {
    const res = await hub.request(`${thingPath(ID)}/proxy`);
    const proxy = (await res.json()) as {
      properties: Record<string, { forms: { href: string }[] }>;
      events: Record<string, { uriVariables?: Record<string, unknown>; forms: { href: string }[] }>;
    };
    expect(proxy.events.alarm?.forms.map((f) => f.href.replace(/^.*\/things\/[^/]+/, ""))).toEqual([
      "/events/alarm{?room,severity}",
    ]);
    expect(Object.keys(proxy.events.alarm?.uriVariables ?? {})).toEqual(["room", "severity"]);
    expect(() => validateThingDescription(proxy)).not.toThrow();
    expect(proxy.properties.temperature?.forms.map((f) => f.href.replace(/^.*\/things\/[^/]+/, ""))).toEqual([
      "/properties/temperature{?room,unit}",
      "/properties/temperature/observe{?room,unit}",
    ]);
  });

  it("things observe NAME --var prints the Thing's values for the variables until Ctrl-C, and refuses a bad one in one line", async () => {
    const attic = streamOpen("attic");
    const child = runThings([
      "observe",
      ID,
      "alarm",
      "--var",
      "room=attic",
      "--json",
      "--url",
      hub.url,
      "--token",
      hub.token,
    ]);
    try {
      await attic;
      streams.get("attic")?.write(`data: "bats"\n\n`);
      await child.waitFor(/"bats"/);
      const line = JSON.parse(child.stdout().trim().split("\n")[0] ?? "{}") as Record<string, unknown>;
      expect(line).toMatchObject({
        thing: ID,
        affordance: "alarm",
        kind: "emitted",
        value: "bats",
        uriVariables: { room: "attic" },
      });
      child.process.kill("SIGINT");
      expect(await child.exited).toBe(0);
    } finally {
      child.process.kill("SIGKILL");
    }
    expect((await history("emitted")).map((c) => c.value)).not.toContain("bats");
    const refused = await runThingsToEnd([
      "observe",
      ID,
      "alarm",
      "--var",
      "floor=2",
      "--url",
      hub.url,
      "--token",
      hub.token,
    ]);
    expect(refused.code).toBe(1);
    expect(refused.stderr.trim().split("\n")).toHaveLength(1);
    expect(refused.stderr).toMatch(/^things: .*no URI variable "floor"/);
    const without = await runThingsToEnd([
      "observe",
      ID,
      "--var",
      "room=attic",
      "--url",
      hub.url,
      "--token",
      hub.token,
    ]);
    expect(without.code).toBe(2);
  });

  it("answers 502 with the device's failure, not a stream, when the Thing cannot be reached", async () => {
    const closed = createServer();
    await new Promise<void>((resolve) => closed.listen(0, "127.0.0.1", resolve));
    const { port } = closed.address() as AddressInfo;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    const away = "urn:test:event-uri-variables:away";
    await putTd(hub, {
      "@context": "https://www.w3.org/2022/wot/td/v1.1",
      id: away,
      title: "Away",
      securityDefinitions: { nosec_sc: { scheme: "nosec" } },
      security: "nosec_sc",
      events: {
        alarm: {
          uriVariables: { room: { type: "string" } },
          forms: [{ href: `http://127.0.0.1:${port}/rooms/{room}/alarm`, subprotocol: "sse" }],
        },
      },
    });
    try {
      const res = await hub.request(`${thingPath(away)}/events/alarm?room=garage`);
      expect(res.status).toBe(502);
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(((await res.json()) as { detail: string }).detail).toContain("ECONNREFUSED");
    } finally {
      await hub.request(thingPath(away), { method: "DELETE" });
    }
  });

  it("asks the Thing for a stream with URI variables only for a token, as a live read (401 to nobody)", async () => {
    const before = requests.length;
    for (const path of ["events/alarm?room=attic", "properties/temperature/observe?unit=F"]) {
      const res = await hub.request(`${thingPath(ID)}/${path}`, { auth: false });
      expect(res.status, path).toBe(401);
      expect(((await res.json()) as { detail: string }).detail, path).toMatch(
        /Asking a Thing for a stream of its own .* requires a bearer token/,
      );
    }
    // The hub's own polling (unit=C) goes on; nobody's stream was asked of the Thing.
    expect(requests.slice(before).filter((r) => r.includes("unit=F") || r.includes("attic"))).toEqual([]);
    // Without URI variables the stream is the Log's: open to anyone while reads are.
    const open = await hub.request(`${thingPath(ID)}/events/alarm`, { auth: false });
    expect(open.status).toBe(200);
    await open.body?.cancel();
  });

  it("refuses a query parameter the event does not declare, or one that does not fit, asking nothing", async () => {
    const before = requests.length;
    for (const [query, pointer] of [
      ["floor=2", "/uriVariables/floor"],
      ["severity=high", "/uriVariables/severity"],
      ["room=Garage", "/uriVariables/room"],
    ] as const) {
      const res = await hub.request(`${thingPath(ID)}/events/alarm?${query}`);
      expect(res.status, query).toBe(400);
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      const problem = (await res.json()) as { errors?: { pointer: string }[] };
      expect(problem.errors?.[0]?.pointer).toBe(pointer);
    }
    // Only the hub's own polling of temperature went on meanwhile.
    expect(requests.slice(before).filter((r) => !r.startsWith("GET /temperature"))).toEqual([]);
  });
});
