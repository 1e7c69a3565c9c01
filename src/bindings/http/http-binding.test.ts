// The HTTP binding against a real node:http server on port 0 that plays a Thing.
import { createServer } from "node:http";
import type { IncomingHttpHeaders, IncomingMessage, Server, ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BindingError } from "../../core/index.js";
import type { ThingDescription } from "../../core/index.js";
import { AddressPolicy } from "../address-policy.js";
import { bindingFailure } from "../binding.js";
import type { BindingFailure, Subscription, Target } from "../binding.js";
import type { Secrets } from "../credentials.js";
import { targetFor } from "../form-selection.js";
import type { TargetRequest } from "../form-selection.js";
import { closedPort } from "../../../test/support/closed-port.js";
import { HttpBinding } from "./http-binding.js";
import type { HttpBindingOptions } from "./http-binding.js";

interface SeenRequest {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

type Handler = (req: IncomingMessage, res: ServerResponse, body: string) => void;

/** A Thing over HTTP: routes by "METHOD /path", and a record of requests and connections. */
class ThingServer {
  readonly requests: SeenRequest[] = [];
  readonly routes = new Map<string, Handler>();
  connections = 0;
  readonly #server: Server;

  constructor() {
    this.#server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on("data", (chunk: Buffer) => chunks.push(chunk));
      req.on("end", () => {
        const body = Buffer.concat(chunks).toString("utf8");
        this.requests.push({ method: req.method ?? "", url: req.url ?? "", headers: req.headers, body });
        const path = new URL(req.url ?? "/", "http://x").pathname;
        const handler = this.routes.get(`${req.method} ${path}`);
        if (handler === undefined) {
          res.writeHead(404, { "content-type": "text/plain" }).end(`no route ${req.method} ${path}`);
        } else {
          handler(req, res, body);
        }
      });
    });
    this.#server.on("connection", () => this.connections++);
  }

  get url(): string {
    const { port } = this.#server.address() as AddressInfo;
    return `http://127.0.0.1:${port}/`;
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.#server.listen(0, "127.0.0.1", resolve));
  }

  reset(): void {
    this.requests.length = 0;
    this.routes.clear();
    this.connections = 0;
    this.#server.closeAllConnections();
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }
}

function json(
  res: ServerResponse,
  status: number,
  value: unknown,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, { "content-type": "application/json", ...headers }).end(JSON.stringify(value));
}

/** Values pushed by a listener, and a promise for the first n of them (bounded in time). */
function collector() {
  const values: unknown[] = [];
  const waiters: { n: number; resolve: (values: unknown[]) => void }[] = [];
  return {
    values,
    push: (value: unknown): void => {
      values.push(value);
      for (const waiter of waiters.filter((w) => values.length >= w.n))
        waiter.resolve(values.slice(0, waiter.n));
    },
    async first(n: number, ms = 5_000): Promise<unknown[]> {
      if (values.length >= n) return values.slice(0, n);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${values.length} of ${n} values came`)), ms);
        waiters.push({
          n,
          resolve: (v) => {
            clearTimeout(timer);
            resolve(v);
          },
        });
      });
    },
  };
}

async function failureOf(promise: Promise<unknown>): Promise<BindingFailure> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(BindingError);
  const failure = bindingFailure(error);
  if (failure === undefined) throw new Error("no failure detail");
  return failure;
}

function lampAt(base: string): ThingDescription {
  return {
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    id: "urn:test:lamp",
    title: "Lamp",
    base,
    securityDefinitions: {
      nosec_sc: { scheme: "nosec" },
      basic_sc: { scheme: "basic" },
      bearer_sc: { scheme: "bearer" },
      header_key: { scheme: "apikey", in: "header", name: "X-Api-Key" },
      query_key: { scheme: "apikey", in: "query", name: "key" },
      cookie_key: { scheme: "apikey", in: "cookie", name: "session" },
    },
    security: "nosec_sc",
    properties: {
      brightness: { type: "integer", forms: [{ href: "properties/brightness" }] },
      label: { type: "string", forms: [{ href: "properties/label", contentType: "text/plain" }] },
      level: { type: "integer", observable: true, forms: [{ href: "properties/level" }] },
      temperature: {
        type: "number",
        observable: true,
        forms: [
          { href: "properties/temperature" },
          { href: "properties/temperature/sse", op: "observeproperty", subprotocol: "sse" },
        ],
      },
      humidity: {
        type: "number",
        observable: true,
        forms: [{ href: "properties/humidity/poll", op: "observeproperty", subprotocol: "longpoll" }],
      },
      guarded: {
        type: "string",
        forms: [
          { href: "properties/guarded", security: ["basic_sc"] },
          { href: "properties/guarded", op: "observeproperty", security: ["bearer_sc"] },
        ],
      },
      keyed: {
        type: "string",
        forms: [{ href: "properties/keyed", security: ["header_key", "query_key", "cookie_key"] }],
      },
      moved: { type: "string", forms: [{ href: "properties/moved", security: ["bearer_sc"] }] },
      big: { type: "string", forms: [{ href: "properties/big" }] },
      slow: { type: "string", forms: [{ href: "properties/slow" }] },
    },
    actions: {
      toggle: { output: { type: "boolean" }, forms: [{ href: "actions/toggle" }] },
      fade: {
        input: { type: "object" },
        output: { type: "string" },
        synchronous: false,
        forms: [{ href: "actions/fade" }],
      },
      dim: { forms: [{ href: "actions/dim", "htv:methodName": "PATCH" }] },
    },
    events: {
      alarm: { data: { type: "string" }, forms: [{ href: "events/alarm" }] },
    },
    forms: [{ href: "properties", op: "readallproperties" }],
  };
}

const secrets: Secrets = {
  basic_sc: { username: "ada", password: "lovelace" },
  bearer_sc: { token: "tok-123" },
  header_key: { key: "hk" },
  query_key: { key: "qk" },
  cookie_key: { key: "ck" },
};

const fast: HttpBindingOptions = {
  retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 5 },
  reconnectMs: 5,
  maxReconnectMs: 20,
  pollIntervalMs: 10,
  actionPollIntervalMs: 5,
};

describe("HttpBinding", () => {
  const thing = new ThingServer();
  let binding: HttpBinding;
  const subscriptions: Subscription[] = [];

  const target = (request: TargetRequest): Target => targetFor(lampAt(thing.url), { secrets, ...request });
  const property = (name: string, op: TargetRequest["op"] = "readproperty") =>
    target({ op, affordance: { kind: "property", name } });
  const action = (name: string) => target({ op: "invokeaction", affordance: { kind: "action", name } });

  beforeAll(async () => {
    await thing.listen();
  });
  afterAll(async () => {
    await thing.close();
  });
  afterEach(async () => {
    await Promise.all(subscriptions.splice(0).map((s) => s.close()));
    await binding.close();
    thing.reset();
  });
  const use = (options: HttpBindingOptions = {}) => {
    binding = new HttpBinding({ ...fast, ...options });
    return binding;
  };

  it("reads, writes and invokes with GET, PUT and POST, in JSON and text/plain", async () => {
    use();
    let brightness = 40;
    thing.routes.set("GET /properties/brightness", (_req, res) => json(res, 200, brightness));
    thing.routes.set("PUT /properties/brightness", (_req, res, body) => {
      brightness = JSON.parse(body) as number;
      res.writeHead(204).end();
    });
    thing.routes.set("GET /properties/label", (_req, res) =>
      res.writeHead(200, { "content-type": "text/plain" }).end("hall"),
    );
    thing.routes.set("POST /actions/toggle", (_req, res) => json(res, 200, true));

    expect(await binding.readProperty(property("brightness"))).toBe(40);
    await binding.writeProperty(property("brightness", "writeproperty"), 75);
    expect(await binding.readProperty(property("brightness"))).toBe(75);
    expect(await binding.readProperty(property("label"))).toBe("hall");
    expect(await binding.invokeAction(action("toggle"))).toEqual({ kind: "completed", output: true });

    const put = thing.requests.find((r) => r.method === "PUT");
    expect(put).toMatchObject({ body: "75", headers: { "content-type": "application/json" } });
  });

  it("honours htv:methodName and reads all properties through the Thing-level form", async () => {
    use();
    thing.routes.set("PATCH /actions/dim", (_req, res) => res.writeHead(204).end());
    thing.routes.set("GET /properties", (_req, res) => json(res, 200, { brightness: 1, label: "x" }));
    expect(await binding.invokeAction(action("dim"), { by: 10 })).toEqual({
      kind: "completed",
      output: undefined,
    });
    expect(await binding.readProperty(target({ op: "readallproperties" }))).toEqual({
      brightness: 1,
      label: "x",
    });
    expect(thing.requests[0]).toMatchObject({ method: "PATCH", body: '{"by":10}' });
  });

  it("reports an error answer with the Thing, the href, the status and the start of the body", async () => {
    use();
    const failure = await failureOf(binding.readProperty(property("brightness")));
    expect(failure).toMatchObject({ reason: "status", status: 404, op: "readproperty" });
    expect(failure.href).toBe(`${thing.url}properties/brightness`);
    expect(failure.body).toContain("no route GET /properties/brightness");
  });

  it("follows a TD 1.1 asynchronous action through its status resource to its output", async () => {
    use();
    let queries = 0;
    thing.routes.set("POST /actions/fade", (_req, res) =>
      json(res, 201, { status: "pending" }, { location: "/actions/fade/7" }),
    );
    thing.routes.set("GET /actions/fade/7", (_req, res) => {
      queries++;
      json(res, 200, queries < 3 ? { status: "running" } : { status: "completed", output: "faded" });
    });
    thing.routes.set("DELETE /actions/fade/7", (_req, res) => res.writeHead(204).end());

    const outcome = await binding.invokeAction(action("fade"), { to: 0 });
    if (outcome.kind !== "running") throw new Error("expected a running action");
    expect(outcome.handle.href).toBe(`${thing.url}actions/fade/7`);
    expect(await outcome.handle.query()).toEqual({ status: "running" });
    expect(await outcome.handle.result()).toBe("faded");
    await outcome.handle.cancel();
    expect(thing.requests.map((r) => r.method)).toEqual(["POST", "GET", "GET", "GET", "DELETE"]);
  });

  it("reports a failed asynchronous action, and gives up on one that never ends", async () => {
    use({ actionTimeoutMs: 50 });
    thing.routes.set("POST /actions/fade", (_req, res) =>
      res.writeHead(202, { location: "/actions/fade/8" }).end(),
    );
    thing.routes.set("GET /actions/fade/8", (_req, res) =>
      json(res, 200, { status: "failed", error: { title: "stuck" } }),
    );
    const failed = await binding.invokeAction(action("fade"));
    if (failed.kind !== "running") throw new Error("expected a running action");
    expect(await failureOf(failed.handle.result())).toMatchObject({
      reason: "action-failed",
      body: '{"title":"stuck"}',
    });

    let now = 0;
    use({ actionTimeoutMs: 50, now: () => (now += 20) });
    thing.routes.set("GET /actions/fade/8", (_req, res) => json(res, 200, { status: "running" }));
    const endless = await binding.invokeAction(action("fade"));
    if (endless.kind !== "running") throw new Error("expected a running action");
    expect(await failureOf(endless.handle.result())).toMatchObject({ reason: "timeout" });
  });

  it("observes over SSE and, after the stream breaks, reconnects with Last-Event-ID", async () => {
    use();
    const streams: ServerResponse[] = [];
    const lastEventIds: (string | undefined)[] = [];
    thing.routes.set("GET /properties/temperature/sse", (req, res) => {
      lastEventIds.push(req.headers["last-event-id"] as string | undefined);
      streams.push(res);
      res.writeHead(200, { "content-type": "text/event-stream" });
      if (streams.length === 1) res.write("retry: 5\n\n: hello\n\nid: 1\ndata: 21.5\n\nid: 2\ndata: 22\n\n");
      else res.write(`id: 3\ndata: 23\n\n`);
    });
    const values = collector();
    const errors: BindingError[] = [];
    subscriptions.push(
      await binding.observeProperty(property("temperature", "observeproperty"), values.push, (e) =>
        errors.push(e),
      ),
    );
    expect(await values.first(2)).toEqual([21.5, 22]);
    streams[0]?.destroy();
    expect(await values.first(3)).toEqual([21.5, 22, 23]);
    expect(lastEventIds).toEqual([undefined, "2"]);
    expect(thing.requests[0]?.headers.accept).toBe("text/event-stream");
    expect(errors).toEqual([]);
  });

  it("refuses a first stream that is no event stream, and ends an SSE observation the Thing then refuses", async () => {
    use();
    thing.routes.set("GET /properties/temperature/sse", (_req, res) => json(res, 200, 1));
    const ignore = () => undefined;
    const observe = property("temperature", "observeproperty");
    expect(await failureOf(binding.observeProperty(observe, ignore, ignore))).toMatchObject({
      reason: "content",
    });

    let stream: ServerResponse | undefined;
    thing.routes.set("GET /properties/temperature/sse", (_req, res) => {
      stream = res;
      res.writeHead(200, { "content-type": "text/event-stream" }).write("data: 1\n\n");
      thing.routes.set("GET /properties/temperature/sse", (_req2, res2) => res2.writeHead(410).end("gone"));
    });
    const values = collector();
    const errors = collector();
    subscriptions.push(await binding.observeProperty(observe, values.push, errors.push));
    await values.first(1);
    stream?.destroy();
    const [error] = await errors.first(1);
    expect(bindingFailure(error)).toMatchObject({ reason: "status", status: 410, ended: true, body: "gone" });
  });

  it("keeps an event stream's retry: between 250 ms and maxReconnectMs", async () => {
    use({ reconnectMs: 5, maxReconnectMs: 300 });
    // A day first (which would stop the observation), then 0 (which would loop as fast as the
    // Thing answers), each on a stream that ends after one event.
    const retries = ["86400000", "0", "0"];
    const opened: number[] = [];
    thing.routes.set("GET /properties/temperature/sse", (_req, res) => {
      opened.push(performance.now());
      res
        .writeHead(200, { "content-type": "text/event-stream" })
        .end(`retry: ${retries[opened.length - 1] ?? "0"}\ndata: ${opened.length}\n\n`);
    });
    const values = collector();
    const ignore = () => undefined;
    subscriptions.push(
      await binding.observeProperty(property("temperature", "observeproperty"), values.push, ignore),
    );
    expect(await values.first(3)).toEqual([1, 2, 3]);
    const [first = 0, second = 0, third = 0] = opened;
    expect(second - first).toBeGreaterThanOrEqual(290);
    expect(third - second).toBeGreaterThanOrEqual(240);
  });

  it("observes by long-poll, one value per answer", async () => {
    use();
    const queued: number[] = [];
    const waiting: ServerResponse[] = [];
    const emit = (value: number) => {
      const res = waiting.shift();
      if (res === undefined) queued.push(value);
      else json(res, 200, value);
    };
    thing.routes.set("GET /properties/humidity/poll", (_req, res) => {
      const value = queued.shift();
      if (value === undefined) waiting.push(res);
      else json(res, 200, value);
    });
    const values = collector();
    subscriptions.push(
      await binding.observeProperty(property("humidity", "observeproperty"), values.push, () => undefined),
    );
    emit(40);
    expect(await values.first(1)).toEqual([40]);
    emit(41);
    emit(42);
    expect(await values.first(3)).toEqual([40, 41, 42]);
  });

  it("subscribes to an event without a subprotocol by long-poll", async () => {
    use();
    let sent = 0;
    thing.routes.set("GET /events/alarm", (_req, res) => {
      if (sent++ < 2) json(res, 200, `alarm ${sent}`);
    });
    const data = collector();
    subscriptions.push(
      await binding.subscribeEvent(
        target({ op: "subscribeevent", affordance: { kind: "event", name: "alarm" } }),
        data.push,
        () => undefined,
      ),
    );
    expect(await data.first(2)).toEqual(["alarm 1", "alarm 2"]);
  });

  it("does not ask again at once a Thing that answers every long-poll request at once", async () => {
    // A plain GET endpoint behind an event form: asked again at once, it would be a busy loop.
    use({ reconnectMs: 60_000, maxReconnectMs: 60_000 });
    let answered = 0;
    thing.routes.set("GET /events/alarm", (_req, res) => {
      answered++;
      if (answered % 2 === 0) res.writeHead(204).end();
      else json(res, 200, "alarm");
    });
    const data = collector();
    const errors = collector();
    subscriptions.push(
      await binding.subscribeEvent(
        target({ op: "subscribeevent", affordance: { kind: "event", name: "alarm" } }),
        data.push,
        errors.push,
      ),
    );
    const [error] = await errors.first(1);
    expect(bindingFailure(error)).toMatchObject({ reason: "content" });
    expect((error as Error).message).toContain("long-poll requests in a row at once");
    expect(answered).toBe(10);
    expect(data.values).toHaveLength(5);
  });

  it("subscribes by long-poll only to a Thing that takes the request: refused or 4xx fails the subscription", async () => {
    use();
    const port = await closedPort();
    const alarm = (base: string) =>
      targetFor(lampAt(base), {
        secrets,
        op: "subscribeevent",
        affordance: { kind: "event", name: "alarm" },
      });
    const errors = collector();
    const ignore = () => undefined;
    expect(
      await failureOf(binding.subscribeEvent(alarm(`http://127.0.0.1:${port}`), ignore, errors.push)),
    ).toMatchObject({ reason: "unreachable" });
    thing.routes.set("GET /events/alarm", (_req, res) => json(res, 404, { title: "no such event" }));
    expect(await failureOf(binding.subscribeEvent(alarm(thing.url), ignore, errors.push))).toMatchObject({
      reason: "status",
      status: 404,
    });
    expect(errors.values).toEqual([]);
    // A Thing that holds the request is subscribed to; its answer, later, is the first value.
    const held: ServerResponse[] = [];
    thing.routes.set("GET /events/alarm", (_req, res) => {
      held.push(res);
      if (held.length === 2) json(res, 200, "again");
    });
    const data = collector();
    subscriptions.push(await binding.subscribeEvent(alarm(thing.url), data.push, errors.push));
    expect(held).toHaveLength(1);
    json(held[0] as ServerResponse, 200, "alarm");
    expect(await data.first(2)).toEqual(["alarm", "again"]);
  });

  it("observes a property without a push subprotocol by polling, reporting changes only", async () => {
    use();
    let level = 1;
    let reads = 0;
    const read = collector();
    thing.routes.set("GET /properties/level", (_req, res) => {
      read.push(++reads);
      json(res, 200, level);
    });
    const values = collector();
    subscriptions.push(
      await binding.observeProperty(property("level", "observeproperty"), values.push, () => undefined),
    );
    expect(await values.first(1)).toEqual([1]);
    await read.first(3);
    level = 2;
    expect(await values.first(2)).toEqual([1, 2]);
    await read.first(reads + 2);
    expect(values.values).toEqual([1, 2]);
  });

  it("polls again only after the Retry-After of a 429, not at the next interval", async () => {
    use();
    const times: number[] = [];
    const read = collector();
    thing.routes.set("GET /properties/level", (_req, res) => {
      times.push(performance.now());
      read.push(times.length);
      // The second read is refused: "ask again in a second" (more than the retries' 5 ms cap).
      if (times.length === 2) json(res, 429, { error: "slow down" }, { "retry-after": "1" });
      else json(res, 200, times.length);
    });
    const errors = collector();
    subscriptions.push(
      await binding.observeProperty(property("level", "observeproperty"), () => undefined, errors.push),
    );
    await read.first(3, 10_000);
    expect(bindingFailure(errors.values[0])).toMatchObject({ reason: "status", status: 429 });
    // A timer does not fire before its time; the interval alone is 10 ms.
    expect((times[2] ?? 0) - (times[1] ?? 0)).toBeGreaterThanOrEqual(990);
  });

  it("sends basic, bearer and apikey credentials where the security definitions say", async () => {
    use();
    thing.routes.set("GET /properties/guarded", (_req, res) => json(res, 200, "ok"));
    thing.routes.set("GET /properties/keyed", (_req, res) => json(res, 200, "ok"));
    await binding.readProperty(property("guarded"));
    const observed = collector();
    subscriptions.push(
      await binding.observeProperty(property("guarded", "observeproperty"), observed.push, () => undefined),
    );
    await binding.readProperty(property("keyed"));
    const [basic, bearer, keyed] = thing.requests;
    expect(basic?.headers.authorization).toBe(`Basic ${Buffer.from("ada:lovelace").toString("base64")}`);
    expect(bearer?.headers.authorization).toBe("Bearer tok-123");
    expect(keyed?.headers["x-api-key"]).toBe("hk");
    expect(keyed?.headers.cookie).toBe("session=ck");
    expect(new URL(keyed?.url ?? "", "http://x").searchParams.get("key")).toBe("qk");
  });

  it("redacts the Thing's secrets from a device's answer that echoes the request", async () => {
    use();
    // As an Express 404 page repeats the URL (with its ?key=), and a debug page the headers.
    const echo = (req: IncomingMessage, res: ServerResponse) =>
      res
        .writeHead(404, { "content-type": "text/plain" })
        .end(`Cannot GET ${req.url ?? ""} ${JSON.stringify(req.headers)}`);
    thing.routes.set("GET /properties/keyed", echo);
    thing.routes.set("GET /properties/guarded", echo);
    const keyed = await binding.readProperty(property("keyed")).catch((e: unknown) => e);
    const guarded = await binding.readProperty(property("guarded")).catch((e: unknown) => e);
    for (const error of [keyed, guarded]) {
      const text = JSON.stringify({ message: (error as Error).message, detail: bindingFailure(error) });
      expect(text).toContain("[redacted]");
      for (const secret of ["qk", "hk", "ck", "lovelace", Buffer.from("ada:lovelace").toString("base64")]) {
        expect(text).not.toContain(secret);
      }
    }
    expect(bindingFailure(keyed)?.body).toContain("key=[redacted]");
  });

  it("retries a GET answered 503, and never a POST", async () => {
    use();
    let reads = 0;
    thing.routes.set("GET /properties/brightness", (_req, res) => {
      if (++reads === 1) res.writeHead(503, { "retry-after": "0" }).end("busy");
      else json(res, 200, 5);
    });
    thing.routes.set("POST /actions/toggle", (_req, res) => res.writeHead(503).end("busy"));
    expect(await binding.readProperty(property("brightness"))).toBe(5);
    expect(await failureOf(binding.invokeAction(action("toggle")))).toMatchObject({
      reason: "status",
      status: 503,
      body: "busy",
    });
    expect(thing.requests.map((r) => r.method)).toEqual(["GET", "GET", "POST"]);
  });

  it("waits the Retry-After of a 429 before asking again, and does not ask again when it is longer than the backoff's cap", async () => {
    use({ retry: { attempts: 3, baseDelayMs: 1, maxDelayMs: 2_000 } });
    const times: number[] = [];
    thing.routes.set("GET /properties/brightness", (_req, res) => {
      times.push(performance.now());
      if (times.length === 1) res.writeHead(429, { "retry-after": "1" }).end("slow down");
      else json(res, 200, 5);
    });
    expect(await binding.readProperty(property("brightness"))).toBe(5);
    expect(times).toHaveLength(2);
    expect((times[1] ?? 0) - (times[0] ?? 0)).toBeGreaterThanOrEqual(990);

    thing.routes.set("PUT /properties/brightness", (_req, res) =>
      res.writeHead(429, { "retry-after": "60" }).end("slow down"),
    );
    expect(await failureOf(binding.writeProperty(property("brightness", "writeproperty"), 1))).toMatchObject({
      reason: "status",
      status: 429,
      body: "slow down",
    });
    expect(thing.requests.filter((r) => r.method === "PUT")).toHaveLength(1);
  });

  it("stops retrying after the bounded number of attempts", async () => {
    use();
    thing.routes.set("GET /properties/brightness", (_req, res) => res.writeHead(503).end());
    expect(await failureOf(binding.readProperty(property("brightness")))).toMatchObject({ status: 503 });
    expect(thing.requests).toHaveLength(3);
  });

  it("gives up on a Thing that does not answer in time", async () => {
    use({ headersTimeoutMs: 100, retry: { attempts: 1 } });
    thing.routes.set("GET /properties/slow", () => undefined);
    expect(await failureOf(binding.readProperty(property("slow")))).toMatchObject({ reason: "timeout" });
  });

  it("says a write's or an action's outcome is unknown when the request went out and no answer came", async () => {
    use({ headersTimeoutMs: 100, retry: { attempts: 2 } });
    thing.routes.set("POST /actions/toggle", () => undefined);
    thing.routes.set("GET /properties/slow", () => undefined);
    let puts = 0;
    // The first PUT may have been applied; the retry's 503 says nothing about it.
    thing.routes.set("PUT /properties/brightness", (_req, res) => {
      if (++puts > 1) res.writeHead(503).end("busy");
    });
    expect(await failureOf(binding.writeProperty(property("brightness", "writeproperty"), 5))).toMatchObject({
      reason: "status",
      status: 503,
      outcome: "unknown",
    });
    expect(puts).toBe(2);
    expect(await failureOf(binding.invokeAction(action("toggle")))).toMatchObject({
      reason: "timeout",
      outcome: "unknown",
    });
    // A read changes nothing, and a refusal is an answer: neither leaves anything unknown.
    expect(await failureOf(binding.readProperty(property("slow")))).not.toHaveProperty("outcome");
    thing.routes.set("PUT /properties/brightness", (_req, res) => res.writeHead(409).end("door open"));
    expect(
      await failureOf(binding.writeProperty(property("brightness", "writeproperty"), 5)),
    ).not.toHaveProperty("outcome");
    const port = await closedPort();
    const refused = targetFor(lampAt(`http://127.0.0.1:${port}/`), {
      secrets,
      op: "writeproperty",
      affordance: { kind: "property", name: "brightness" },
    });
    expect(await failureOf(binding.writeProperty(refused, 5))).toMatchObject({ reason: "unreachable" });
    expect(await failureOf(binding.writeProperty(refused, 5))).not.toHaveProperty("outcome");
  });

  it("names a refused connection in words: nothing listens at that address and port", async () => {
    use();
    const port = await closedPort();
    const refused = targetFor(lampAt(`http://127.0.0.1:${port}/`), {
      secrets,
      op: "readproperty",
      affordance: { kind: "property", name: "brightness" },
    });
    const error = await binding.readProperty(refused).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(bindingFailure(error)).toMatchObject({ reason: "unreachable" });
    expect((error as Error).message).toContain(
      `GET failed: nothing listens at 127.0.0.1 port ${port} (connection refused, ECONNREFUSED)`,
    );
  });

  it("gives up on a body that trickles for longer than bodyDeadlineMs, and on an error body too", async () => {
    use({ bodyDeadlineMs: 200, retry: { attempts: 1 } });
    const trickle = (status: number) => (_req: IncomingMessage, res: ServerResponse) => {
      res.writeHead(status, { "content-type": "application/json" });
      res.write("[");
      const timer = setInterval(() => res.write("1,"), 20);
      res.on("close", () => clearInterval(timer));
    };
    thing.routes.set("GET /properties/brightness", trickle(200));
    expect(await failureOf(binding.readProperty(property("brightness")))).toMatchObject({
      reason: "timeout",
      status: 200,
    });
    thing.routes.set("GET /properties/brightness", trickle(500));
    const failure = await failureOf(binding.readProperty(property("brightness")));
    expect(failure).toMatchObject({ reason: "status", status: 500 });
    expect(failure.body?.startsWith("[1,")).toBe(true);
  });

  it("follows a redirect on the same Thing, and refuses one to a denied address before connecting", async () => {
    use({ addressPolicy: new AddressPolicy({ deny: ["10.0.0.0/8"] }) });
    thing.routes.set("GET /properties/brightness", (_req, res) =>
      res.writeHead(307, { location: "/properties/label" }).end(),
    );
    thing.routes.set("GET /properties/label", (_req, res) => json(res, 200, "here"));
    expect(await binding.readProperty(property("brightness"))).toBe("here");
    const denied = lampAt("http://10.255.255.1:9/");
    const read = targetFor(denied, {
      op: "readproperty",
      affordance: { kind: "property", name: "brightness" },
    });
    const attempt = binding.readProperty(read);
    expect(await failureOf(attempt)).toMatchObject({
      reason: "address-denied",
      href: "http://10.255.255.1:9/properties/brightness",
    });
    await expect(attempt).rejects.toThrow(
      "10.255.255.1 is not allowed by the address policy (deny 10.0.0.0/8)",
    );
  });

  it("refuses a name that resolves only to denied addresses", async () => {
    use({ addressPolicy: new AddressPolicy({ deny: ["127.0.0.0/8", "::1/128"] }) });
    const port = new URL(thing.url).port;
    const td = { ...lampAt(`http://localhost:${port}/`) };
    const read = targetFor(td, { op: "readproperty", affordance: { kind: "property", name: "brightness" } });
    expect(await failureOf(binding.readProperty(read))).toMatchObject({ reason: "address-denied" });
    expect(thing.connections).toBe(0);
  });

  it("refuses 0.0.0.0 and [::] when loopback is denied: they connect to this host", async () => {
    use({ addressPolicy: new AddressPolicy({ deny: ["127.0.0.0/8", "::1/128"] }) });
    const port = new URL(thing.url).port;
    thing.routes.set("GET /properties/brightness", (_req, res) => json(res, 200, 40));
    for (const host of ["0.0.0.0", "[::]", "[::ffff:0.0.0.0]"]) {
      const read = targetFor(lampAt(`http://${host}:${port}/`), {
        op: "readproperty",
        affordance: { kind: "property", name: "brightness" },
      });
      expect(await failureOf(binding.readProperty(read)), host).toMatchObject({ reason: "address-denied" });
    }
    expect(thing.connections).toBe(0);
  });

  it("stops after five redirects", async () => {
    use();
    thing.routes.set("GET /properties/brightness", (_req, res) =>
      res.writeHead(302, { location: "/properties/brightness" }).end(),
    );
    expect(await failureOf(binding.readProperty(property("brightness")))).toMatchObject({
      reason: "content",
      status: 302,
    });
    expect(thing.requests).toHaveLength(6);
  });

  it("refuses a redirect to another origin, sending it nothing", async () => {
    use();
    const other = new ThingServer();
    await other.listen();
    try {
      other.routes.set("GET /elsewhere", (_req, res) => json(res, 200, "there"));
      thing.routes.set("GET /properties/moved", (_req, res) =>
        res.writeHead(302, { location: `${other.url}elsewhere` }).end(),
      );
      const attempt = binding.readProperty(property("moved"));
      expect(await failureOf(attempt)).toMatchObject({ reason: "unsupported", status: 302 });
      await expect(attempt).rejects.toThrow(
        `redirects to another origin than ${new URL(thing.url).origin} are not followed`,
      );
      expect(thing.requests).toHaveLength(1);
      expect(other.requests).toHaveLength(0);
    } finally {
      await other.close();
    }
  });

  it("does not follow an asynchronous action whose status resource is on another origin", async () => {
    use();
    const other = new ThingServer();
    await other.listen();
    try {
      other.routes.set("GET /status", (_req, res) => json(res, 200, { status: "completed", output: "x" }));
      thing.routes.set("POST /actions/fade", (_req, res) =>
        json(res, 202, { status: "pending" }, { location: `${other.url}status` }),
      );
      const outcome = await binding.invokeAction(action("fade"), { to: 0 });
      if (outcome.kind !== "running") throw new Error("expected a running action");
      const failure = await failureOf(outcome.handle.query());
      expect(failure).toMatchObject({ reason: "unsupported", op: "queryaction", href: `${other.url}status` });
      expect((await failureOf(outcome.handle.cancel())).reason).toBe("unsupported");
      expect(other.requests).toHaveLength(0);
    } finally {
      await other.close();
    }
  });

  it("reports as running, not followed, an asynchronous action whose status resource is no URL", async () => {
    use();
    for (const answer of [
      (res: ServerResponse) => res.writeHead(201, { location: "http://[zz/" }).end(),
      (res: ServerResponse) => json(res, 202, { status: "pending", href: "http://[zz/" }),
    ]) {
      thing.routes.set("POST /actions/fade", (_req, res) => answer(res));
      const outcome = await binding.invokeAction(action("fade"), { to: 0 });
      if (outcome.kind !== "running") throw new Error("expected a running action");
      const failure = await failureOf(outcome.handle.query());
      expect(failure).toMatchObject({ reason: "content", op: "queryaction", href: "http://[zz/" });
      expect((await failureOf(outcome.handle.result())).reason).toBe("content");
      expect((await failureOf(outcome.handle.cancel())).reason).toBe("content");
    }
    expect(thing.requests.map((r) => r.method)).toEqual(["POST", "POST"]);
  });

  it("refuses an answer larger than 1 MiB, declared or streamed", async () => {
    use();
    const big = Buffer.alloc(1024 * 1024 + 1, "a");
    thing.routes.set("GET /properties/big", (_req, res) =>
      res.writeHead(200, { "content-type": "text/plain", "content-length": String(big.length) }).end(big),
    );
    expect(await failureOf(binding.readProperty(property("big")))).toMatchObject({ reason: "too-large" });
    thing.routes.set("GET /properties/big", (_req, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      res.write(big.subarray(0, 600 * 1024));
      res.end(big.subarray(600 * 1024));
    });
    expect(await failureOf(binding.readProperty(property("big")))).toMatchObject({ reason: "too-large" });
  });

  it("reuses one connection for several requests to the same Thing", async () => {
    use();
    thing.routes.set("GET /properties/brightness", (_req, res) => json(res, 200, 1));
    thing.routes.set("PUT /properties/brightness", (_req, res) => res.writeHead(204).end());
    for (let i = 0; i < 3; i++) await binding.readProperty(property("brightness"));
    await binding.writeProperty(property("brightness", "writeproperty"), 2);
    expect(thing.requests).toHaveLength(4);
    expect(thing.connections).toBe(1);
  });

  it("fetches a Thing Description for discovery", async () => {
    use();
    thing.routes.set("GET /td", (_req, res) =>
      json(res, 200, { title: "Lamp" }, { "content-type": "application/td+json" }),
    );
    expect(await binding.discover(`${thing.url}td`)).toEqual({
      document: { title: "Lamp" },
      url: `${thing.url}td`,
    });
  });
});
