// Observation of a Thing whose TD offers its affordances through more than one form: when the
// hub cannot observe it through the first (nothing answers there), it observes through the next,
// in the TD's order, with no `unreachable` Change while a form works; every reconnection starts
// again from the first form, so the Thing's preferred way is taken back once it answers.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { type AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import type { Change } from "../src/core/index.js";
import { closedPort } from "./support/closed-port.js";
import { changeAfter, putTd, startTestHub, type TestHub } from "./support/test-hub.js";

const ID = "urn:test:observation-fallback:dimmer";

/** A device on 127.0.0.1: a polled `level`, and an `alarm` event as Server-Sent Events. */
class Device {
  level = 0;
  readonly requests: string[] = [];
  private server: Server | undefined;
  private readonly streams = new Set<ServerResponse>();
  private readonly streamWaiters: (() => void)[] = [];
  port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Listens on `port` (0: a free one). */
  async start(port = 0): Promise<void> {
    const server = createServer((req, res) => this.answer(req, res));
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, "127.0.0.1", () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
  }

  private answer(req: IncomingMessage, res: ServerResponse): void {
    this.requests.push(`${req.method} ${req.url}`);
    if (req.url === "/alarm") {
      res.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-store" });
      res.write(": open\n\n");
      this.streams.add(res);
      res.on("close", () => this.streams.delete(res));
      for (const wake of this.streamWaiters.splice(0)) wake();
      return;
    }
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(this.level));
  }

  /** Resolves once an alarm stream is open here. */
  async streamOpen(): Promise<void> {
    if (this.streams.size > 0) return;
    await new Promise<void>((resolve) => this.streamWaiters.push(resolve));
  }

  emit(data: string): void {
    for (const stream of this.streams) stream.write(`data: ${JSON.stringify(data)}\n\n`);
  }

  /** Goes away: the port closes and every open connection breaks. */
  async stop(): Promise<void> {
    const server = this.server;
    if (server === undefined) return;
    this.server = undefined;
    for (const stream of this.streams) stream.destroy();
    this.streams.clear();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }
}

describe("observing a Thing through its next form", () => {
  let hub: TestHub;
  const primary = new Device();
  const secondary = new Device();
  let primaryPort = 0;

  const td = () => {
    const first = `http://127.0.0.1:${primaryPort}`;
    return {
      "@context": "https://www.w3.org/2022/wot/td/v1.1",
      id: ID,
      title: "Dimmer",
      securityDefinitions: { nosec_sc: { scheme: "nosec" } },
      security: "nosec_sc",
      properties: {
        level: {
          type: "integer",
          observable: true,
          "hyperthings:pollInterval": 100,
          forms: [
            { href: `${first}/level`, op: ["readproperty", "observeproperty"] },
            { href: `${secondary.url}/level`, op: ["readproperty", "observeproperty"] },
          ],
        },
      },
      events: {
        alarm: {
          data: { type: "string" },
          forms: [
            { href: `${first}/alarm`, subprotocol: "sse" },
            { href: `${secondary.url}/alarm`, subprotocol: "sse" },
          ],
        },
      },
    };
  };

  async function history(kinds: string): Promise<Change[]> {
    const res = await hub.request(`${thingPath(ID)}/history?order=asc&limit=1000&kind=${kinds}`);
    return ((await res.json()) as { changes: Change[] }).changes;
  }

  beforeAll(async () => {
    await secondary.start();
    primaryPort = await closedPort();
    hub = await startTestHub({ observe: true, reconnectMs: 20, maxReconnectMs: 200 });
  });
  afterAll(async () => {
    await hub.stop();
    await primary.stop();
    await secondary.stop();
  });

  it("observes properties and events through the next form when the first is refused, and records no unreachable", async () => {
    secondary.level = 33;
    const opened = secondary.streamOpen();
    await putTd(hub, td());
    const reported = await changeAfter(hub, 0, (c) => c.thing === ID && c.kind === "reported");
    expect(reported).toMatchObject({
      affordance: "level",
      value: 33,
      // Polled through the next form: the hub read it.
      cause: { actor: "hub:observer", via: "read:http" },
    });
    await opened;
    secondary.emit("overheat");
    const emitted = await changeAfter(hub, 0, (c) => c.thing === ID && c.kind === "emitted");
    expect(emitted).toMatchObject({ affordance: "alarm", value: "overheat" });
    expect(await history("unreachable,reachable,failed")).toEqual([]);
    expect(secondary.requests).toContain("GET /alarm");
  });

  it("takes the first form back at the next reconnection once it answers, and records no unreachable meanwhile", async () => {
    await primary.start(primaryPort);
    primary.level = 77;
    const after = (await history("reported")).at(-1)?.seq ?? 0;
    const opened = primary.streamOpen();
    // The way it took goes away: the hub reconnects from the first form, which now answers.
    await secondary.stop();
    const reported = await changeAfter(
      hub,
      after,
      (c) => c.thing === ID && c.kind === "reported" && c.value === 77,
    );
    expect(reported.affordance).toBe("level");
    await opened;
    primary.emit("smoke");
    await changeAfter(hub, after, (c) => c.thing === ID && c.kind === "emitted" && c.value === "smoke");
    expect(await history("unreachable,reachable")).toEqual([]);
  });

  it("records one unreachable Change when no form answers, and one reachable, before the values, when one does again", async () => {
    const after = (await history("reported,emitted")).at(-1)?.seq ?? 0;
    await primary.stop();
    const away = await changeAfter(hub, after, (c) => c.thing === ID && c.kind === "unreachable");
    expect(away.affordance).toBeUndefined();
    await secondary.start(secondary.port);
    secondary.level = 5;
    await changeAfter(hub, away.seq, (c) => c.thing === ID && c.kind === "reported" && c.value === 5);
    // The Log says the Thing is back before it records what the Thing sent.
    const since = (await history("reachable,reported,emitted")).filter((c) => c.seq > away.seq);
    expect(since.map((c) => c.kind).slice(0, 2)).toEqual(["reachable", "reported"]);
    expect((await history("unreachable,reachable")).map((c) => c.kind)).toEqual(["unreachable", "reachable"]);
  });
});

describe("observing a property whose read form comes before its observe form", () => {
  const THERMOSTAT = "urn:test:observation-fallback:thermostat";
  let hub: TestHub;
  const device = new Device();

  beforeAll(async () => {
    await device.start();
    hub = await startTestHub({ observe: true, reconnectMs: 20, maxReconnectMs: 200 });
  });
  afterAll(async () => {
    await hub.stop();
    await device.stop();
  });

  it("polls the read form listed first once the observe form is refused, and records no unreachable", async () => {
    device.level = 19;
    const refused = `http://127.0.0.1:${await closedPort()}`;
    await putTd(hub, {
      "@context": "https://www.w3.org/2022/wot/td/v1.1",
      id: THERMOSTAT,
      title: "Thermostat",
      securityDefinitions: { nosec_sc: { scheme: "nosec" } },
      security: "nosec_sc",
      properties: {
        level: {
          type: "integer",
          readOnly: true,
          observable: true,
          "hyperthings:pollInterval": 100,
          forms: [
            { href: `${device.url}/level`, op: "readproperty" },
            { href: `${refused}/level`, op: "observeproperty", subprotocol: "sse" },
          ],
        },
      },
    });
    // Before, the observe form was tried, then none after it: the Thing was recorded unreachable.
    const first = await changeAfter(
      hub,
      0,
      (c) => c.thing === THERMOSTAT && (c.kind === "reported" || c.kind === "unreachable"),
    );
    expect(first).toMatchObject({ kind: "reported", affordance: "level", value: 19 });
    expect(device.requests).toContain("GET /level");
    const res = await hub.request(
      `${thingPath(THERMOSTAT)}/history?order=asc&limit=1000&kind=unreachable,failed`,
    );
    expect(((await res.json()) as { changes: Change[] }).changes).toEqual([]);
  });
});
