// Real peers: Eclipse Thingweb node-wot. A node-wot servient exposes a Thing over HTTP; the hub
// discovers it, reads, writes, invokes and observes it; and a node-wot client consumes the hub's
// proxy TD for it and reads and writes through the hub. Port 0 everywhere, loopback only; every
// wait is for an event or a promise, bounded, never for time to pass.
import { Servient } from "@node-wot/core";
// A CommonJS package whose named exports Node's loader cannot see: taken from its module.exports.
import wotHttp from "@node-wot/binding-http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import type { Change } from "../src/core/index.js";
import { changeAfter, startTestHub, type TestHub } from "./support/test-hub.js";

const { HttpClientFactory, HttpServer } = wotHttp;

const WAIT_MS = 15_000;
const ID = "urn:test:node-wot:boiler";

/** `promise`, or a failure naming `what` after WAIT_MS. */
async function within<T>(what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: nothing within ${WAIT_MS} ms`)), WAIT_MS);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

/** A promise and its resolver, for "node-wot saw this happen". */
function signal<T = void>(): { promise: Promise<T>; resolve: (value: T) => void } {
  let resolve: (value: T) => void = () => undefined;
  const promise = new Promise<T>((r) => {
    resolve = r;
  });
  return { promise, resolve };
}

/** The node-wot side: a boiler with an observable reading, a writable setpoint, an action, an event. */
class NodeWotBoiler {
  readonly servient = new Servient();
  readonly server = new HttpServer({ port: 0 });
  temperature = 20;
  setpoint = 55;
  readonly writes: unknown[] = [];
  readonly observed = signal();
  readonly subscribed = signal();
  #thing: WoT.ExposedThing | undefined;

  get thing(): WoT.ExposedThing {
    if (this.#thing === undefined) throw new Error("the boiler is not exposed yet");
    return this.#thing;
  }

  get origin(): string {
    return `http://127.0.0.1:${this.server.getPort()}`;
  }

  async start(): Promise<void> {
    this.servient.addServer(this.server);
    const wot = await this.servient.start();
    // The port is known once the server listens; PITFALLS: without baseUri, node-wot writes a
    // form for every network interface of the machine.
    Object.assign(this.server, { baseUri: this.origin });
    const thing = await wot.produce({
      id: ID,
      title: "Boiler",
      properties: {
        temperature: { type: "number", observable: true, readOnly: true },
        setpoint: { type: "integer", minimum: 30, maximum: 80 },
      },
      actions: {
        boost: {
          input: { type: "integer", minimum: 1, maximum: 10 },
          output: { type: "number" },
        },
      },
      events: {
        overheated: {
          data: { type: "object", properties: { temperature: { type: "number" } } },
        },
      },
    });
    thing.setPropertyReadHandler("temperature", () => Promise.resolve(this.temperature));
    thing.setPropertyObserveHandler("temperature", () => {
      this.observed.resolve();
      return Promise.resolve(this.temperature);
    });
    thing.setPropertyReadHandler("setpoint", () => Promise.resolve(this.setpoint));
    thing.setPropertyWriteHandler("setpoint", async (value) => {
      const written = await value.value();
      this.writes.push(written);
      this.setpoint = written as number;
    });
    thing.setActionHandler("boost", async (input) => {
      const by = (await input.value()) as number;
      this.temperature += by;
      return this.temperature;
    });
    thing.setEventSubscribeHandler("overheated", () => {
      this.subscribed.resolve();
      return Promise.resolve();
    });
    await thing.expose();
    this.#thing = thing;
  }

  async stop(): Promise<void> {
    await this.servient.shutdown();
  }
}

describe("node-wot: a servient's Thing managed through the hub", () => {
  const boiler = new NodeWotBoiler();
  let hub: TestHub;

  beforeAll(async () => {
    await boiler.start();
    hub = await startTestHub({ mqtt: false, observe: true });
  });

  afterAll(async () => {
    await hub?.stop();
    await boiler.stop();
  });

  it("discovers the Thing from its TD URL (POST /discover)", async () => {
    const res = await hub.request("/discover", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ url: `${boiler.origin}/boiler` }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ registered: [ID] });
    const td = (await (await hub.request(thingPath(ID))).json()) as {
      properties: Record<string, { forms: { href: string }[] }>;
    };
    // Only loopback forms: node-wot was given its baseUri.
    expect(td.properties.temperature?.forms[0]?.href).toBe(`${boiler.origin}/boiler/properties/temperature`);
  });

  it("observes the reading: each value node-wot pushes is a reported Change", async () => {
    await within("the hub observing temperature", boiler.observed.promise);
    const after = await hub.hub.store.lastSeq();
    boiler.temperature = 61.5;
    boiler.thing.emitPropertyChange("temperature");
    const reported = await changeAfter(
      hub,
      after,
      (c) => c.thing === ID && c.kind === "reported" && c.affordance === "temperature",
    );
    expect(reported.value).toBe(61.5);
    expect(reported.cause).toEqual({ actor: "hub:observer", via: "http" });
  });

  it("records the Thing's events as emitted Changes", async () => {
    await within("the hub subscribing to overheated", boiler.subscribed.promise);
    const after = await hub.hub.store.lastSeq();
    boiler.thing.emitEvent("overheated", { temperature: 91 });
    const emitted = await changeAfter(
      hub,
      after,
      (c) => c.thing === ID && c.kind === "emitted" && c.affordance === "overheated",
    );
    expect(emitted.value).toEqual({ temperature: 91 });
  });

  it("reads, writes and invokes through the hub; the history shows reported, desired, completed", async () => {
    const after = await hub.hub.store.lastSeq();
    boiler.temperature = 22.25;
    const read = await hub.request(`${thingPath(ID)}/properties/temperature`);
    expect(read.status).toBe(200);
    expect(await read.json()).toBe(22.25);

    const write = await hub.request(`${thingPath(ID)}/properties/setpoint`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: "65",
    });
    expect(write.status).toBe(204);
    expect(boiler.writes).toEqual([65]);

    const invoke = await hub.request(`${thingPath(ID)}/actions/boost`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "3",
    });
    expect(invoke.status).toBe(200);
    expect(await invoke.json()).toBe(25.25);

    const res = await hub.request(`${thingPath(ID)}/history?order=asc&limit=1000`);
    const changes = ((await res.json()) as { changes: Change[] }).changes.filter((c) => c.seq > after);
    const mine = changes
      // A read's via says how the hub got the value (read:http); its surface, what it was asked through.
      .filter((c) => (c.cause.surface ?? c.cause.via) === "http" && c.cause.actor !== "hub:observer")
      .map((c) => [c.kind, c.affordance, c.value]);
    expect(mine).toEqual([
      ["reported", "temperature", 22.25],
      ["desired", "setpoint", 65],
      ["completed", "setpoint", undefined],
      ["invoked", "boost", 3],
      ["completed", "boost", 25.25],
    ]);
  });

  it("a node-wot client consumes the hub's proxy TD and reads and writes through the hub", async () => {
    const proxyRes = await hub.request(`${thingPath(ID)}/proxy`);
    expect(proxyRes.status).toBe(200);
    const proxyTd = (await proxyRes.json()) as WoT.ThingDescription;

    const client = new Servient();
    client.addClientFactory(new HttpClientFactory());
    client.addCredentials({ [ID]: { token: hub.token } });
    try {
      const wot = await client.start();
      const consumed = await wot.consume(proxyTd);
      const after = await hub.hub.store.lastSeq();

      boiler.setpoint = 48;
      expect(await (await consumed.readProperty("setpoint")).value()).toBe(48);
      await consumed.writeProperty("setpoint", 72);
      expect(boiler.setpoint).toBe(72);

      const desired = await changeAfter(
        hub,
        after,
        (c) => c.thing === ID && c.kind === "desired" && c.affordance === "setpoint",
      );
      expect(desired.value).toBe(72);
      expect(desired.cause.via).toBe("http");
      const read = await changeAfter(
        hub,
        after,
        (c) => c.thing === ID && c.kind === "reported" && c.affordance === "setpoint",
      );
      expect(read.value).toBe(48);
    } finally {
      await client.shutdown();
    }
  });
});
