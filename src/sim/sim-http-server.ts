// One node:http server for many simulated Things, each under its own folder (`/{slug}/`): its TD
// at the folder, properties, actions and events below it (W3C WoT HTTP Binding Templates' default
// methods), observation over Server-Sent Events. Every input is checked against the Thing's own TD
// before the Thing sees it; refusals are RFC 9457 problem documents.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import {
  compileDataSchema,
  type DataSchema,
  type DataSchemaCheck,
  type RegisteredThingDescription,
} from "../core/index.js";
import { SimProblem, type SimulatedThing } from "./simulated-thing.js";

/** The largest request body a simulated Thing reads. */
const MAX_BODY_BYTES = 64 * 1024;

interface Served {
  readonly thing: SimulatedThing;
  td: RegisteredThingDescription | undefined;
  readonly checks: Map<string, DataSchemaCheck>;
}

export class SimHttpServer {
  readonly #things = new Map<string, Served>();
  /** Open SSE streams by `{slug}/{path}`. */
  readonly #streams = new Map<string, Set<ServerResponse>>();
  /** The last value sent on each property stream, so that a value is pushed only when it changes. */
  readonly #last = new Map<string, string>();
  #server: Server | undefined;
  #url = "";

  add(thing: SimulatedThing): void {
    this.#things.set(thing.slug, { thing, td: undefined, checks: new Map() });
    thing.attach(
      (name, value) => this.#pushProperty(thing.slug, name, value),
      (name, data) => this.#push(`${thing.slug}/events/${name}`, JSON.stringify(data)),
    );
  }

  /** `http://host:port/` once listening. */
  get url(): string {
    return this.#url;
  }

  /** The base URL of one Thing. */
  baseOf(thing: SimulatedThing): string {
    return `${this.#url}${thing.slug}/`;
  }

  description(thing: SimulatedThing): RegisteredThingDescription {
    const served = this.#things.get(thing.slug);
    if (served === undefined) throw new Error(`${thing.id} is not served here`);
    served.td ??= thing.description(this.baseOf(thing));
    return served.td;
  }

  async listen(host: string, port = 0): Promise<void> {
    const server = createServer((request, response) => {
      this.#handle(request, response).catch((err: unknown) => {
        if (!response.headersSent) problem(response, new SimProblem(500, String(err)));
        else response.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen(port, host, () => {
        server.off("error", reject);
        resolve();
      });
    });
    const address = server.address() as AddressInfo;
    const literal = address.family === "IPv6" ? `[${address.address}]` : address.address;
    this.#url = `http://${literal}:${address.port}/`;
    this.#server = server;
  }

  async close(): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    this.#server = undefined;
    for (const streams of this.#streams.values()) for (const s of streams) s.end();
    this.#streams.clear();
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections();
    await closed;
  }

  #pushProperty(slug: string, name: string, value: unknown): void {
    const key = `${slug}/properties/${name}/observe`;
    const text = JSON.stringify(value);
    if (this.#last.get(key) === text) return;
    this.#last.set(key, text);
    this.#push(key, text);
  }

  #push(key: string, data: string): void {
    const streams = this.#streams.get(key);
    if (streams === undefined) return;
    for (const stream of streams) stream.write(`data: ${data}\n\n`);
  }

  async #handle(request: IncomingMessage, response: ServerResponse): Promise<void> {
    const url = new URL(request.url ?? "/", "http://sim");
    const [slug = "", ...rest] = url.pathname.slice(1).split("/");
    const served = this.#things.get(slug);
    const method = request.method ?? "GET";
    try {
      if (served === undefined) throw new SimProblem(404, `nothing is served at ${url.pathname}`);
      const { thing } = served;
      const td = this.description(thing);
      const path = rest.join("/");
      const [area, name = "", extra] = rest;
      if (path === "" || path === "td") {
        allow(method, ["GET"]);
        return send(response, 200, td, "application/td+json");
      }
      if (area === "properties" && name !== "" && extra === undefined) {
        const affordance = td.properties?.[name];
        if (affordance === undefined) throw new SimProblem(404, `${thing.id} has no property ${name}`);
        allow(method, ["GET", "PUT"]);
        if (method === "GET") return send(response, 200, thing.readProperty(name));
        if (affordance.readOnly === true) throw new SimProblem(405, `${name} is read-only`);
        const value = await readJson(request);
        if (value === undefined) throw new SimProblem(400, `a value for ${name} is required`);
        checked(served, `p:${name}`, affordance, value, name);
        thing.writeProperty(name, value);
        response.writeHead(204).end();
        return;
      }
      if (area === "properties" && extra === "observe" && rest.length === 3) {
        if (td.properties?.[name]?.observable !== true) {
          throw new SimProblem(404, `${thing.id} has no observable property ${name}`);
        }
        allow(method, ["GET"]);
        return this.#open(response, `${slug}/${path}`, JSON.stringify(thing.readProperty(name)));
      }
      if (area === "actions" && name !== "" && extra === undefined) {
        const affordance = td.actions?.[name];
        if (affordance === undefined) throw new SimProblem(404, `${thing.id} has no action ${name}`);
        allow(method, ["POST"]);
        const input = await readJson(request);
        if (affordance.input !== undefined) {
          if (input === undefined) throw new SimProblem(400, `${name} needs an input`);
          checked(served, `a:${name}`, affordance.input, input, name);
        }
        const output = thing.invokeAction(name, input);
        if (output === undefined) response.writeHead(204).end();
        else send(response, 200, output);
        return;
      }
      if (area === "events" && name !== "" && extra === undefined) {
        if (td.events?.[name] === undefined) throw new SimProblem(404, `${thing.id} has no event ${name}`);
        allow(method, ["GET"]);
        return this.#open(response, `${slug}/${path}`, undefined);
      }
      throw new SimProblem(404, `${thing.id} has nothing at ${path}`);
    } catch (err) {
      // Drain what the client sent, so that keep-alive connections stay usable.
      request.resume();
      if (err instanceof SimProblem) return problem(response, err);
      throw err;
    }
  }

  #open(response: ServerResponse, key: string, first: string | undefined): void {
    response.writeHead(200, { "content-type": "text/event-stream", "cache-control": "no-cache" });
    response.write(first === undefined ? ": subscribed\n\n" : `data: ${first}\n\n`);
    let streams = this.#streams.get(key);
    if (streams === undefined) this.#streams.set(key, (streams = new Set()));
    const set = streams;
    set.add(response);
    response.on("close", () => {
      set.delete(response);
      if (set.size === 0) this.#streams.delete(key);
    });
  }
}

function allow(method: string, methods: readonly string[]): void {
  if (!methods.includes(method)) throw new SimProblem(405, `use ${methods.join(" or ")} here, not ${method}`);
}

function checked(served: Served, key: string, schema: DataSchema, value: unknown, name: string): void {
  let check = served.checks.get(key);
  if (check === undefined) served.checks.set(key, (check = compileDataSchema(schema)));
  const problems = check(value);
  if (problems.length > 0) {
    throw new SimProblem(
      400,
      `${JSON.stringify(value)} does not fit ${name}: ${problems.map((p) => `${p.pointer || "value"} ${p.message}`).join("; ")}`,
      problems.map((p) => ({ pointer: p.pointer, detail: p.message })),
    );
  }
}

/** The request's JSON body; undefined when it has none. */
async function readJson(request: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new SimProblem(413, `the body is larger than ${MAX_BODY_BYTES} bytes`);
    chunks.push(chunk);
  }
  if (size === 0) return undefined;
  const type = (request.headers["content-type"] ?? "").split(";")[0]?.trim().toLowerCase();
  if (type !== "application/json" && !type?.endsWith("+json")) {
    throw new SimProblem(415, `send application/json, not ${type || "no content type"}`);
  }
  try {
    return JSON.parse(Buffer.concat(chunks).toString("utf8")) as unknown;
  } catch {
    throw new SimProblem(400, "the body is not valid JSON");
  }
}

function send(response: ServerResponse, status: number, value: unknown, type = "application/json"): void {
  response.writeHead(status, { "content-type": type });
  response.end(JSON.stringify(value));
}

const TITLES: Record<number, string> = {
  400: "Bad Request",
  404: "Not Found",
  405: "Method Not Allowed",
  409: "Conflict",
  413: "Content Too Large",
  415: "Unsupported Media Type",
  500: "Internal Server Error",
};

function problem(response: ServerResponse, err: SimProblem): void {
  send(
    response,
    err.status,
    {
      type: "about:blank",
      title: TITLES[err.status] ?? "Error",
      status: err.status,
      detail: err.message,
      ...(err.errors.length > 0 ? { errors: err.errors } : {}),
    },
    "application/problem+json",
  );
}
