// The CoAP binding against a real node-coap server on port 0 that plays a Thing, and against UDP
// sockets that never answer or are closed.
import { once } from "node:events";
import { createSocket } from "node:dgram";
import type { Socket } from "node:dgram";
import { createServer } from "coap";
import { generate as generatePacket, parse as parsePacket } from "coap-packet";
import type { IncomingMessage, OutgoingMessage, Server } from "coap";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import type { ThingDescription } from "../../core/index.js";
import { AddressPolicy } from "../address-policy.js";
import { bindingFailure } from "../binding.js";
import type { BindingFailure, Subscription, Target } from "../binding.js";
import { targetFor } from "../form-selection.js";
import type { TargetRequest } from "../form-selection.js";
import { CoapBinding } from "./coap-binding.js";

interface SeenRequest {
  method: string;
  path: string;
  contentFormat: unknown;
  observe: unknown;
  payload: string;
}

type Handler = (req: IncomingMessage, res: OutgoingMessage) => void;

/** A Thing over CoAP: routes by "METHOD /path", and a record of the requests. */
class CoapThing {
  readonly requests: SeenRequest[] = [];
  readonly routes = new Map<string, Handler>();
  onDeregister: ((path: string) => void) | undefined;
  readonly #server: Server;

  constructor() {
    this.#server = createServer((req: IncomingMessage, res: OutgoingMessage) => {
      const method = (req as unknown as { method: string }).method;
      const path = `/${(req as unknown as { url: string }).url.split("?")[0]?.replace(/^\//, "") ?? ""}`;
      this.requests.push({
        method,
        path,
        contentFormat: req.headers["Content-Format"],
        observe: req.headers.Observe,
        payload: req.payload.toString("utf8"),
      });
      // RFC 7641 §3.6: a deregistration is answered here, not by the route.
      if (req.headers.Observe === 1) {
        this.onDeregister?.(path);
        res.end();
        return;
      }
      const handler = this.routes.get(`${method} ${path}`);
      if (handler === undefined) {
        answerCode(res, "4.04");
        res.end(`no route ${method} ${path}`);
      } else handler(req, res);
    });
  }

  get port(): number {
    return (this.#server._sock as Socket).address().port;
  }

  url(path: string): string {
    return `coap://127.0.0.1:${this.port}${path}`;
  }

  /** Datagrams received, blocks and acknowledgements included. */
  datagrams = 0;

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", () => resolve()));
    (this.#server._sock as Socket).on("message", () => this.datagrams++);
  }

  reset(): void {
    this.requests.length = 0;
    this.routes.clear();
    this.onDeregister = undefined;
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

/** The response code: node-coap's observe answers take it from `statusCode`, the others from `code`. */
function answerCode(res: OutgoingMessage, code: string): void {
  res.code = code;
  res.statusCode = code;
}

function json(res: OutgoingMessage, value: unknown, code = "2.05"): void {
  answerCode(res, code);
  res.setOption("Content-Format", "application/json");
  res.end(JSON.stringify(value));
}

function plugTd(base: string, forms: Record<string, Record<string, unknown>> = {}): ThingDescription {
  return {
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    id: "urn:test:plug",
    title: "Plug",
    base,
    securityDefinitions: { nosec_sc: { scheme: "nosec" } },
    security: "nosec_sc",
    properties: {
      on: { type: "boolean", forms: [{ href: "on", contentType: "application/json", ...forms.on }] },
      power: {
        type: "number",
        observable: true,
        forms: [{ href: "power", op: ["readproperty", "observeproperty"], contentType: "application/json" }],
      },
      label: { type: "string", forms: [{ href: "label", contentType: "text/plain" }] },
    },
    actions: {
      toggle: { output: { type: "boolean" }, forms: [{ href: "toggle", ...forms.toggle }] },
    },
    events: {
      overload: { data: { type: "number" }, forms: [{ href: "overload", subprotocol: "cov:observe" }] },
    },
  };
}

function target(td: ThingDescription, request: TargetRequest): Target {
  return targetFor(td, request);
}

async function failureOf(promise: Promise<unknown>): Promise<BindingFailure> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  const failure = bindingFailure(error);
  if (failure === undefined) throw new Error(`expected a BindingError, got ${String(error)}`);
  return failure;
}

/** Values delivered to a listener, and a way to wait for the n-th. */
class Collector {
  readonly values: unknown[] = [];
  readonly errors: BindingFailure[] = [];
  #waiters: { count: number; resolve: () => void }[] = [];

  readonly onValue = (value: unknown) => {
    this.values.push(value);
    this.#check();
  };

  readonly onError = (error: unknown) => {
    const failure = bindingFailure(error);
    if (failure !== undefined) this.errors.push(failure);
  };

  until(count: number): Promise<void> {
    return new Promise((resolve) => {
      this.#waiters.push({ count, resolve });
      this.#check();
    });
  }

  #check(): void {
    this.#waiters = this.#waiters.filter((w) => {
      if (this.values.length < w.count) return true;
      w.resolve();
      return false;
    });
  }
}

const thing = new CoapThing();
let binding: CoapBinding;
let td: ThingDescription;

beforeAll(async () => {
  await thing.listen();
  td = plugTd(thing.url("/plug/"));
});

afterEach(async () => {
  await binding.close();
  thing.reset();
});

afterAll(async () => {
  await thing.close();
});

describe("CoapBinding: read, write, invoke", () => {
  it("reads a property with GET and decodes it by the answer's Content-Format", async () => {
    binding = new CoapBinding();
    thing.routes.set("GET /plug/on", (_req, res) => json(res, true));
    thing.routes.set("GET /plug/label", (_req, res) => {
      res.setOption("Content-Format", "text/plain");
      res.end("kitchen plug");
    });
    const on = target(td, { op: "readproperty", affordance: { kind: "property", name: "on" } });
    expect(await binding.readProperty(on)).toBe(true);
    const label = target(td, { op: "readproperty", affordance: { kind: "property", name: "label" } });
    expect(await binding.readProperty(label)).toBe("kitchen plug");
    expect(thing.requests.map((r) => `${r.method} ${r.path}`)).toEqual(["GET /plug/on", "GET /plug/label"]);
  });

  it("writes a property with PUT and the Content-Format of the form's contentType", async () => {
    binding = new CoapBinding();
    thing.routes.set("PUT /plug/on", (_req, res) => {
      res.code = "2.04";
      res.end();
    });
    const on = target(td, { op: "writeproperty", affordance: { kind: "property", name: "on" } });
    await binding.writeProperty(on, false);
    expect(thing.requests).toEqual([
      {
        method: "PUT",
        path: "/plug/on",
        contentFormat: "application/json",
        observe: undefined,
        payload: "false",
      },
    ]);
  });

  it("invokes an action with POST and returns its output; cov:method and cov:contentFormat override the defaults", async () => {
    binding = new CoapBinding();
    thing.routes.set("POST /plug/toggle", (_req, res) => json(res, false, "2.04"));
    const toggle = target(td, { op: "invokeaction", affordance: { kind: "action", name: "toggle" } });
    expect(await binding.invokeAction(toggle)).toEqual({ kind: "completed", output: false });

    thing.routes.set("PUT /plug/toggle", (_req, res) => json(res, true, "2.04"));
    const custom = plugTd(thing.url("/plug/"), { toggle: { "cov:method": "PUT", "cov:contentFormat": 60 } });
    const put = target(custom, { op: "invokeaction", affordance: { kind: "action", name: "toggle" } });
    expect(await binding.invokeAction(put, { at: 1 })).toEqual({ kind: "completed", output: true });
    expect(thing.requests[1]).toMatchObject({
      method: "PUT",
      path: "/plug/toggle",
      contentFormat: "application/cbor",
    });
  });

  it("takes a block-wise answer (RFC 7959) larger than one datagram", async () => {
    binding = new CoapBinding();
    const label = "x".repeat(5000);
    thing.routes.set("GET /plug/label", (_req, res) => {
      res.setOption("Content-Format", "text/plain");
      res.end(label);
    });
    const read = target(td, { op: "readproperty", affordance: { kind: "property", name: "label" } });
    // node-coap's server sends a payload of 1024 bytes or more in blocks of 1024.
    expect(await binding.readProperty(read)).toBe(label);
  });
});

describe("CoapBinding: block-wise requests", () => {
  it("sends a payload larger than 1024 bytes in blocks (RFC 7959 Block1), which the Thing gets whole", async () => {
    binding = new CoapBinding();
    thing.routes.set("PUT /plug/label", (_req, res) => {
      answerCode(res, "2.04");
      res.end();
    });
    const label = "ß".repeat(3000);
    const write = target(td, { op: "writeproperty", affordance: { kind: "property", name: "label" } });
    const before = thing.datagrams;
    await binding.writeProperty(write, label);
    // 6000 bytes: five blocks of 1024 and one of 880, each its own request.
    expect(thing.datagrams - before).toBe(6);
    expect(thing.requests).toHaveLength(1);
    expect(thing.requests[0]?.payload).toBe(label);
  });
});

describe("CoapBinding: a device that breaks block-wise transfer", () => {
  it("fails the write with `content` (outcome unknown) instead of crashing on a device that acknowledges the wrong blocks", async () => {
    // Acknowledges every block of a Block1 request as block 99: node-coap sends the block again,
    // five times, and then throws from its datagram handler.
    const device = createSocket("udp4");
    device.on("message", (message, from) => {
      const request = parsePacket(message);
      const answer = generatePacket({
        messageId: request.messageId,
        token: request.token,
        code: "2.31",
        ack: true,
        options: [{ name: "Block1", value: Buffer.from([(99 << 4) >> 8, ((99 << 4) & 0xff) | 0x08 | 6]) }],
      });
      device.send(answer, from.port, from.address);
    });
    device.bind(0, "127.0.0.1");
    await once(device, "listening");
    try {
      binding = new CoapBinding();
      const broken = plugTd(`coap://127.0.0.1:${device.address().port}/plug/`);
      const write = target(broken, { op: "writeproperty", affordance: { kind: "property", name: "label" } });
      const failure = await failureOf(binding.writeProperty(write, "x".repeat(3000)));
      expect(failure).toMatchObject({ reason: "content", outcome: "unknown", op: "writeproperty" });
    } finally {
      device.close();
    }
  });
});

describe("CoapBinding: errors", () => {
  it("turns a 4.04 into a status error with the code and the start of the payload", async () => {
    binding = new CoapBinding();
    const read = target(td, { op: "readproperty", affordance: { kind: "property", name: "on" } });
    const failure = await failureOf(binding.readProperty(read));
    expect(failure).toMatchObject({
      reason: "status",
      status: 404,
      body: "no route GET /plug/on",
      op: "readproperty",
    });
    expect(failure.outcome).toBeUndefined();
  });

  it("keeps 512 characters of an error payload", async () => {
    binding = new CoapBinding();
    thing.routes.set("GET /plug/on", (_req, res) => {
      answerCode(res, "5.03");
      res.end("y".repeat(900));
    });
    const read = target(td, { op: "readproperty", affordance: { kind: "property", name: "on" } });
    const failure = await failureOf(binding.readProperty(read));
    expect(failure.status).toBe(503);
    expect(failure.body).toBe("y".repeat(512));
  });

  it("refuses a block-wise answer larger than maxPayloadBytes", async () => {
    binding = new CoapBinding({ maxPayloadBytes: 2000 });
    thing.routes.set("GET /plug/label", (_req, res) => {
      res.setOption("Content-Format", "text/plain");
      res.end("z".repeat(100_000));
    });
    const read = target(td, { op: "readproperty", affordance: { kind: "property", name: "label" } });
    const failure = await failureOf(binding.readProperty(read));
    expect(failure.reason).toBe("too-large");
  });

  describe("against a device that never answers", () => {
    let silent: Socket;
    let seen = 0;
    beforeAll(async () => {
      silent = createSocket("udp4");
      silent.on("message", () => seen++);
      silent.bind(0, "127.0.0.1");
      await once(silent, "listening");
    });
    afterAll(() => {
      silent.close();
    });

    it("times out a read (nothing unknown) and a write (outcome unknown)", async () => {
      binding = new CoapBinding({ requestTimeoutMs: 300 });
      const quiet = plugTd(`coap://127.0.0.1:${silent.address().port}/plug/`);
      const read = target(quiet, { op: "readproperty", affordance: { kind: "property", name: "on" } });
      const readFailure = await failureOf(binding.readProperty(read));
      expect(readFailure.reason).toBe("timeout");
      expect(readFailure.outcome).toBeUndefined();
      const write = target(quiet, { op: "writeproperty", affordance: { kind: "property", name: "on" } });
      const writeFailure = await failureOf(binding.writeProperty(write, true));
      expect(writeFailure).toMatchObject({ reason: "timeout", outcome: "unknown", op: "writeproperty" });
      expect(seen).toBeGreaterThanOrEqual(2);
    });
  });

  it("says unreachable when nothing listens at the port (ICMP port unreachable), with nothing unknown", async () => {
    const closed = createSocket("udp4");
    closed.bind(0, "127.0.0.1");
    await once(closed, "listening");
    const port = closed.address().port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));
    binding = new CoapBinding({ requestTimeoutMs: 5_000 });
    const gone = plugTd(`coap://127.0.0.1:${port}/plug/`);
    const write = target(gone, { op: "writeproperty", affordance: { kind: "property", name: "on" } });
    const failure = await failureOf(binding.writeProperty(write, true));
    expect(failure.reason).toBe("unreachable");
    expect(failure.outcome).toBeUndefined();
  });

  it("refuses a denied address before any datagram is sent", async () => {
    binding = new CoapBinding({ addressPolicy: new AddressPolicy({ deny: ["127.0.0.0/8"] }) });
    thing.routes.set("GET /plug/on", (_req, res) => json(res, true));
    const read = target(td, { op: "readproperty", affordance: { kind: "property", name: "on" } });
    const failure = await failureOf(binding.readProperty(read));
    expect(failure.reason).toBe("address-denied");
    expect(failure.href).toBe(thing.url("/plug/on"));
    const byName = plugTd(`coap://localhost:${thing.port}/plug/`);
    const named = target(byName, { op: "readproperty", affordance: { kind: "property", name: "on" } });
    expect((await failureOf(binding.readProperty(named))).reason).toBe("address-denied");
    expect(thing.requests).toEqual([]);
  });

  it("refuses coaps and credentials it cannot send, precisely", async () => {
    binding = new CoapBinding();
    const secure = plugTd("coaps://127.0.0.1:5684/plug/");
    const read = target(secure, { op: "readproperty", affordance: { kind: "property", name: "on" } });
    const failure = await failureOf(binding.readProperty(read));
    expect(failure.reason).toBe("unsupported");
    const basic = target(
      {
        ...td,
        securityDefinitions: { basic_sc: { scheme: "basic" } },
        security: "basic_sc",
      },
      {
        op: "readproperty",
        affordance: { kind: "property", name: "on" },
        secrets: { basic_sc: { username: "u", password: "p" } },
      },
    );
    const refused = await failureOf(binding.readProperty(basic));
    expect(refused.reason).toBe("unsupported");
    expect(thing.requests).toEqual([]);
  });
});

describe("CoapBinding: observation", () => {
  let subscription: Subscription | undefined;
  afterEach(async () => {
    await subscription?.close();
    subscription = undefined;
  });

  it("observes a property with RFC 7641 Observe: the current value, then each notification in order", async () => {
    binding = new CoapBinding();
    let notify: ((value: number) => void) | undefined;
    thing.routes.set("GET /plug/power", (req, res) => {
      res.setOption("Content-Format", "application/json");
      if (req.headers.Observe !== 0) {
        res.end("1");
        return;
      }
      res.write("10");
      notify = (value) => res.write(JSON.stringify(value));
    });
    const observe = target(td, { op: "observeproperty", affordance: { kind: "property", name: "power" } });
    const seen = new Collector();
    subscription = await binding.observeProperty(observe, seen.onValue, seen.onError);
    await seen.until(1);
    notify?.(11.5);
    await seen.until(2);
    notify?.(12);
    notify?.(13);
    await seen.until(4);
    expect(seen.values).toEqual([10, 11.5, 12, 13]);
    expect(seen.errors).toEqual([]);
    expect(thing.requests.filter((r) => r.observe === 0)).toHaveLength(1);
  });

  it("registers again when a notification ends the observation with an error code", async () => {
    binding = new CoapBinding({ reconnectMs: 1 });
    let registrations = 0;
    let end: (() => void) | undefined;
    thing.routes.set("GET /plug/power", (_req, res) => {
      registrations++;
      res.setOption("Content-Format", "application/json");
      res.write(String(registrations * 100));
      end = () => {
        answerCode(res, "5.03");
        res.write("restarting");
      };
    });
    const observe = target(td, { op: "observeproperty", affordance: { kind: "property", name: "power" } });
    const seen = new Collector();
    subscription = await binding.observeProperty(observe, seen.onValue, seen.onError);
    await seen.until(1);
    end?.();
    await seen.until(2);
    expect(seen.values).toEqual([100, 200]);
    expect(seen.errors[0]).toMatchObject({ reason: "status", status: 503 });
    expect(seen.errors[0]?.ended).toBeUndefined();
  });

  it("registers again when nothing newer than Max-Age came (a device that restarted forgets its observers)", async () => {
    binding = new CoapBinding({ freshnessMarginMs: 20 });
    let registrations = 0;
    thing.routes.set("GET /plug/power", (_req, res) => {
      registrations++;
      res.setOption("Content-Format", "application/json");
      res.setOption("Max-Age", 0);
      // Answers the registration, then never notifies: as if it had forgotten the observer.
      res.write(String(registrations));
    });
    const observe = target(td, { op: "observeproperty", affordance: { kind: "property", name: "power" } });
    const seen = new Collector();
    subscription = await binding.observeProperty(observe, seen.onValue, seen.onError);
    await seen.until(3);
    expect(seen.values.slice(0, 3)).toEqual([1, 2, 3]);
    expect(seen.errors).toEqual([]);
  });

  it("deregisters when the subscription is closed (RFC 7641 §3.6)", async () => {
    binding = new CoapBinding();
    thing.routes.set("GET /plug/power", (_req, res) => {
      res.setOption("Content-Format", "application/json");
      res.write("7");
    });
    const observe = target(td, { op: "observeproperty", affordance: { kind: "property", name: "power" } });
    const seen = new Collector();
    const opened = await binding.observeProperty(observe, seen.onValue, seen.onError);
    await seen.until(1);
    const deregistered = new Promise<string>((resolve) => (thing.onDeregister = resolve));
    await opened.close();
    // The deregistration is a GET with Observe 1 on the same resource.
    expect(await deregistered).toBe("/plug/power");
    expect(seen.values).toEqual([7]);
  });

  it("polls a property whose forms offer no observation, reporting a value when it changes", async () => {
    binding = new CoapBinding({ pollIntervalMs: 5 });
    const values = [true, true, false, false, true];
    thing.routes.set("GET /plug/on", (_req, res) => json(res, values.shift() ?? true));
    const observe = target(td, { op: "observeproperty", affordance: { kind: "property", name: "on" } });
    const seen = new Collector();
    subscription = await binding.observeProperty(observe, seen.onValue, seen.onError);
    await seen.until(3);
    expect(seen.values).toEqual([true, false, true]);
    expect(thing.requests.every((r) => r.observe === undefined)).toBe(true);
  });

  it("polls an observe form the Thing answers without registering (no Observe option), and says so once", async () => {
    // A device whose CoAP stack knows nothing of Observe: a raw socket answering every request
    // with a piggybacked 2.05 and the next reading, without the Observe option.
    const device = createSocket("udp4");
    let reading = 0;
    device.on("message", (message, from) => {
      const request = parsePacket(message);
      const answer = generatePacket({
        messageId: request.messageId,
        token: request.token,
        code: "2.05",
        ack: true,
        options: [{ name: "Content-Format", value: Buffer.of(50) }],
        payload: Buffer.from(String(++reading)),
      });
      device.send(answer, from.port, from.address);
    });
    device.bind(0, "127.0.0.1");
    await once(device, "listening");
    try {
      binding = new CoapBinding({ pollIntervalMs: 5 });
      const plain = plugTd(`coap://127.0.0.1:${device.address().port}/plug/`);
      const observe = target(plain, {
        op: "observeproperty",
        affordance: { kind: "property", name: "power" },
      });
      const seen = new Collector();
      subscription = await binding.observeProperty(observe, seen.onValue, seen.onError);
      await seen.until(3);
      await subscription.close();
      subscription = undefined;
      expect(seen.values.slice(0, 3)).toEqual([1, 2, 3]);
      expect(seen.errors).toHaveLength(1);
      expect(seen.errors[0]).toMatchObject({ reason: "unsupported" });
      expect(seen.errors[0]?.ended).toBeUndefined();
    } finally {
      device.close();
    }
  });

  it("refuses an observation the Thing answers with 4.04", async () => {
    binding = new CoapBinding();
    const observe = target(td, { op: "observeproperty", affordance: { kind: "property", name: "power" } });
    const seen = new Collector();
    const failure = await failureOf(binding.observeProperty(observe, seen.onValue, seen.onError));
    expect(failure).toMatchObject({ reason: "status", status: 404 });
  });

  it("subscribes to an event: each notification after the registration is one occurrence", async () => {
    binding = new CoapBinding();
    let emit: ((value: number) => void) | undefined;
    thing.routes.set("GET /plug/overload", (_req, res) => {
      res.setOption("Content-Format", "application/json");
      res.write("0");
      emit = (value) => res.write(JSON.stringify(value));
    });
    const subscribe = target(td, { op: "subscribeevent", affordance: { kind: "event", name: "overload" } });
    const seen = new Collector();
    subscription = await binding.subscribeEvent(subscribe, seen.onValue, seen.onError);
    emit?.(3600);
    emit?.(3700);
    await seen.until(2);
    expect(seen.values).toEqual([3600, 3700]);
  });
});

describe("CoapBinding: discovery", () => {
  it("fetches a TD over CoAP, whatever its Content-Format", async () => {
    binding = new CoapBinding();
    thing.routes.set("GET /plug", (_req, res) => {
      res.setOption("Content-Format", "application/td+json");
      res.end(JSON.stringify({ title: "Plug" }));
    });
    const found = await binding.discover(thing.url("/plug"));
    expect(found).toEqual({ document: { title: "Plug" }, url: thing.url("/plug") });
  });
});
