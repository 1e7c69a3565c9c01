// A Thing whose TD offers an affordance through more than one form: when the hub cannot reach
// the Thing through the first (nothing went out), it tries the next, in the TD's order; when the
// Thing answered, or may have got the request, it never sends it again elsewhere.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import { type AddressInfo } from "node:net";
import { afterAll, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import type { Change } from "../src/core/index.js";
import { closedPort } from "./support/closed-port.js";
import { putTd, startTestHub, type TestHub } from "./support/test-hub.js";

const ID = "urn:test:fallback:dimmer";

/** A device on port 0 that keeps a level and counts what it was asked. */
class Device {
  level = 10;
  readonly requests: string[] = [];
  status = 200;
  private server: Server | undefined;
  url = "";

  async start(): Promise<void> {
    this.server = createServer((req, res) => void this.answer(req, res));
    this.server.listen(0, "127.0.0.1");
    await new Promise<void>((resolve) => this.server?.once("listening", resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  private async answer(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let body = "";
    for await (const chunk of req) body += String(chunk);
    this.requests.push(`${req.method} ${req.url}`);
    if (this.status !== 200) {
      res.writeHead(this.status, { "content-type": "text/plain" }).end("device error");
      return;
    }
    if (req.url === "/level" && req.method === "PUT") this.level = JSON.parse(body) as number;
    if (req.url === "/blink") {
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify({ blinked: true }));
      return;
    }
    res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(this.level));
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }
}

/** An address on which nothing listens: a connection to it is refused, nothing goes out. */
async function closedAddress(): Promise<string> {
  return `http://127.0.0.1:${await closedPort()}`;
}

describe("an affordance offered through several forms", () => {
  let hub: TestHub;
  const primary = new Device();
  const secondary = new Device();
  let closed = "";

  /** The TD: each affordance through `first`, then through the secondary device. */
  const td = (first: string) => ({
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    id: ID,
    title: "Dimmer",
    securityDefinitions: { nosec_sc: { scheme: "nosec" } },
    security: "nosec_sc",
    properties: {
      level: {
        type: "integer",
        observable: false,
        forms: [
          { href: `${first}/level`, contentType: "application/json" },
          { href: `${secondary.url}/level`, contentType: "application/json" },
        ],
      },
    },
    actions: {
      blink: {
        output: { type: "object" },
        forms: [
          { href: `${first}/blink`, contentType: "application/json" },
          { href: `${secondary.url}/blink`, contentType: "application/json" },
        ],
      },
    },
  });

  async function history(): Promise<Change[]> {
    const res = await hub.request(`${thingPath(ID)}/history?order=asc&limit=1000`);
    return ((await res.json()) as { changes: Change[] }).changes;
  }

  beforeAll(async () => {
    await primary.start();
    await secondary.start();
    closed = await closedAddress();
    hub = await startTestHub();
  });
  afterAll(async () => {
    await hub.stop();
    await primary.stop();
    await secondary.stop();
  });
  beforeEach(() => {
    primary.requests.length = 0;
    secondary.requests.length = 0;
    primary.status = 200;
  });

  it("reads, writes and invokes through the next form when the first cannot be reached", async () => {
    await putTd(hub, td(closed));
    secondary.level = 33;
    const read = await hub.request(`${thingPath(ID)}/properties/level`);
    expect(read.status).toBe(200);
    expect(await read.json()).toBe(33);

    const write = await hub.request(`${thingPath(ID)}/properties/level`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: "55",
    });
    expect(write.status).toBe(204);
    expect(secondary.level).toBe(55);

    const invoke = await hub.request(`${thingPath(ID)}/actions/blink`, { method: "POST" });
    expect(invoke.status).toBe(200);
    expect(await invoke.json()).toEqual({ blinked: true });
    expect(secondary.requests).toContain("PUT /level");
    expect(secondary.requests).toContain("POST /blink");
    // The write and the invocation end as they did at the device that took them: no failure.
    const kinds = (await history())
      .filter((c) => c.affordance !== undefined)
      .map((c) => `${c.kind} ${c.affordance}`);
    expect(kinds).toContain("completed level");
    expect(kinds).toContain("completed blink");
    expect(kinds).not.toContain("failed level");
    expect(kinds).not.toContain("failed blink");
  });

  it("sends nothing elsewhere when the first form's Thing answered with an error", async () => {
    await putTd(hub, td(primary.url));
    primary.status = 500;
    const write = await hub.request(`${thingPath(ID)}/properties/level`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: "77",
    });
    expect(write.status).toBe(502);
    const invoke = await hub.request(`${thingPath(ID)}/actions/blink`, { method: "POST" });
    expect(invoke.status).toBe(502);
    expect(primary.requests).toEqual(["PUT /level", "POST /blink"]);
    expect(secondary.requests).toEqual([]);
    expect(secondary.level).not.toBe(77);
  });

  it("fails with the last form's failure when no form can be reached", async () => {
    const other = await closedAddress();
    const both = td(closed);
    both.properties.level.forms[1] = { href: `${other}/level`, contentType: "application/json" };
    await putTd(hub, both);
    const read = await hub.request(`${thingPath(ID)}/properties/level`);
    expect(read.status).toBe(502);
    const problem = (await read.json()) as { detail: string };
    const [host, port] = other.replace("http://", "").split(":");
    expect(problem.detail).toContain(`nothing listens at ${host} port ${port}`);
  });
});
