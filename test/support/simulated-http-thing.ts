// A small simulated Thing that speaks HTTP (node:http on port 0), for end-to-end tests of the
// hub's observation and command and control: properties (one pushed over SSE, one polled, one
// read-only), a synchronous and an asynchronous action, an SSE event, and basic auth required.
// It counts every request, so tests can tell what reached it.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

export interface SimulatedRequest {
  method: string;
  path: string;
  authorization: string | undefined;
  body: string;
}

export interface SimulatedThingOptions {
  username: string;
  password: string;
  /** Polling interval the TD asks for (`hyperthings:pollInterval`) for `level`, ms. */
  pollIntervalMs?: number;
  /** A slow device: it takes a write of `level` at once but answers only after this many ms. */
  writeDelayMs?: number;
}

/** A level the device refuses to take (answered 409 with a JSON error). */
export const CURSED_LEVEL = 9;

export class SimulatedHttpThing {
  readonly requests: SimulatedRequest[] = [];
  temperature = 21.5;
  level = 1;
  /** Answers a write of `level` as taken (204) and keeps its level: a device that ignores it. */
  ignoresWrites = false;
  readonly name = "sim-1";
  private server: Server | undefined;
  private readonly streams = new Set<ServerResponse>();
  private port = 0;
  private held: Promise<void> = Promise.resolve();
  private readonly waiters: { count: number; resolve: () => void }[] = [];
  private readonly streamWaiters: { path: string; resolve: () => void }[] = [];

  constructor(private readonly options: SimulatedThingOptions) {}

  get url(): string {
    return `http://127.0.0.1:${this.port}/`;
  }

  /** Starts listening: on a free port the first time, on the same one after a stop. */
  async start(): Promise<void> {
    const server = createServer((request, response) => {
      void this.handle(request, response);
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(this.port, "127.0.0.1", () => resolve());
    });
    this.port = (server.address() as AddressInfo).port;
    this.server = server;
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

  /**
   * Writes of `level` and invocations of `reset` are taken at once but answered only when the
   * returned function is called: a command the hub has sent and not yet seen the end of, for as
   * long as a test needs.
   */
  holdAnswers(): () => void {
    let release = () => {};
    this.held = new Promise<void>((resolve) => (release = resolve));
    return release;
  }

  /** Requests to one path (all methods). */
  count(path: string): number {
    return this.requests.filter((r) => r.path === path).length;
  }

  /** Resolves once `n` more requests than now have arrived (to any path), or fails after `ms`. */
  async moreRequests(n: number, ms = 10_000): Promise<void> {
    const count = this.requests.length + n;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`only ${this.requests.length} of ${count} requests came`)),
        ms,
      );
      this.waiters.push({
        count,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  /** Resolves once an authenticated SSE stream is open on `path` (now or later), or fails after `ms`. */
  async streamOpen(path: string, ms = 10_000): Promise<void> {
    if ([...this.streams].some((s) => (s as ServerResponse & { path?: string }).path === path)) return;
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no stream opened on ${path}`)), ms);
      this.streamWaiters.push({
        path,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  /** Pushes a temperature to the observers of its SSE stream. */
  setTemperature(value: number): void {
    this.temperature = value;
    this.push("/properties/temperature/observe", JSON.stringify(value));
  }

  /** Emits the `alarm` event. */
  alarm(code: number): void {
    this.push("/events/alarm", JSON.stringify({ code }));
  }

  /** The TD of this Thing, with its base at the server. */
  td(id: string): Record<string, unknown> {
    return {
      "@context": "https://www.w3.org/2022/wot/td/v1.1",
      id,
      title: "Simulated sensor",
      base: this.url,
      securityDefinitions: { basic_sc: { scheme: "basic", in: "header" } },
      security: "basic_sc",
      properties: {
        temperature: {
          type: "number",
          readOnly: true,
          observable: true,
          forms: [
            { href: "properties/temperature", op: "readproperty" },
            { href: "properties/temperature/observe", op: "observeproperty", subprotocol: "sse" },
          ],
        },
        level: {
          type: "integer",
          minimum: 0,
          maximum: 10,
          observable: true,
          "hyperthings:pollInterval": this.options.pollIntervalMs ?? 5000,
          forms: [{ href: "properties/level", op: ["readproperty", "writeproperty", "observeproperty"] }],
        },
        name: { type: "string", readOnly: true, forms: [{ href: "properties/name", op: "readproperty" }] },
      },
      actions: {
        reset: {
          input: {
            type: "object",
            properties: { to: { type: "integer", minimum: 0, maximum: 10 } },
            required: ["to"],
          },
          output: { type: "object", properties: { level: { type: "integer" } } },
          forms: [{ href: "actions/reset" }],
        },
        calibrate: {
          synchronous: false,
          output: { type: "object", properties: { offset: { type: "number" } } },
          forms: [{ href: "actions/calibrate" }],
        },
      },
      events: {
        alarm: {
          data: { type: "object", properties: { code: { type: "integer" } }, required: ["code"] },
          forms: [{ href: "events/alarm", subprotocol: "sse" }],
        },
      },
    };
  }

  private push(path: string, data: string): void {
    for (const stream of this.streams) {
      if ((stream as ServerResponse & { path?: string }).path === path) stream.write(`data: ${data}\n\n`);
    }
  }

  private async handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of request) chunks.push(chunk as Buffer);
    const path = new URL(request.url ?? "/", "http://thing").pathname;
    const method = request.method ?? "GET";
    const body = Buffer.concat(chunks).toString("utf8");
    this.requests.push({ method, path, authorization: request.headers.authorization, body });
    for (const waiter of this.waiters.filter((w) => this.requests.length >= w.count)) {
      this.waiters.splice(this.waiters.indexOf(waiter), 1);
      waiter.resolve();
    }
    const expected = `Basic ${Buffer.from(`${this.options.username}:${this.options.password}`).toString("base64")}`;
    if (request.headers.authorization !== expected) {
      response.writeHead(401, { "www-authenticate": 'Basic realm="sim"', "content-type": "text/plain" });
      response.end("who are you?");
      return;
    }
    const json = (status: number, value: unknown, headers: Record<string, string> = {}) => {
      response.writeHead(status, { "content-type": "application/json", ...headers });
      response.end(JSON.stringify(value));
    };
    const route = `${method} ${path}`;
    switch (route) {
      case "GET /properties/temperature":
        return json(200, this.temperature);
      case "GET /properties/level":
        return json(200, this.level);
      case "GET /properties/name":
        return json(200, this.name);
      case "PUT /properties/level": {
        const value = JSON.parse(body) as number;
        if (value === CURSED_LEVEL)
          return json(409, { error: `level ${CURSED_LEVEL} is not allowed while the door is open` });
        if (!this.ignoresWrites) this.level = value;
        const delay = this.options.writeDelayMs ?? 0;
        if (delay > 0) await new Promise((resolve) => setTimeout(resolve, delay));
        await this.held;
        if (!response.destroyed) response.writeHead(204).end();
        return;
      }
      case "POST /actions/reset": {
        const { to } = JSON.parse(body) as { to: number };
        this.level = to;
        await this.held;
        if (response.destroyed) return;
        return json(200, { level: to });
      }
      case "POST /actions/calibrate":
        return json(201, { status: "running" }, { location: "/actions/calibrate/status/1" });
      case "GET /actions/calibrate/status/1":
        return json(200, { status: "completed", output: { offset: 0.5 } });
      case "GET /properties/temperature/observe":
      case "GET /events/alarm": {
        response.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
        if (path === "/properties/temperature/observe")
          response.write(`data: ${JSON.stringify(this.temperature)}\n\n`);
        else response.write(": subscribed\n\n");
        Object.assign(response, { path });
        this.streams.add(response);
        response.on("close", () => this.streams.delete(response));
        for (const waiter of this.streamWaiters.filter((w) => w.path === path)) {
          this.streamWaiters.splice(this.streamWaiters.indexOf(waiter), 1);
          waiter.resolve();
        }
        return;
      }
      default:
        json(404, { error: `no ${route}` });
    }
  }
}
