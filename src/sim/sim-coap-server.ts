// One node-coap server for simulated Things that speak CoAP (RFC 7252), each under its own folder
// (`/{slug}/`): its TD at the folder, properties and actions below it (W3C WoT CoAP Binding
// Templates' default methods), observation by RFC 7641 Observe. Every input is checked against the
// Thing's own TD before the Thing sees it; refusals are CoAP error codes with a diagnostic payload.
import type { Socket } from "node:dgram";
import { createServer } from "coap";
import type { IncomingMessage, OutgoingMessage, Server } from "coap";
import {
  compileDataSchema,
  type DataSchema,
  type DataSchemaCheck,
  type RegisteredThingDescription,
} from "../core/index.js";
import { SimProblem, type SimulatedThing } from "./simulated-thing.js";

interface Served {
  readonly thing: SimulatedThing;
  td: RegisteredThingDescription | undefined;
  readonly checks: Map<string, DataSchemaCheck>;
}

/** node-coap's request, with the fields its types leave out. */
type CoapRequest = IncomingMessage & { readonly method: string; readonly url: string };

export class SimCoapServer {
  readonly #things = new Map<string, Served>();
  /** Registered observers (RFC 7641) by `{slug}/properties/{name}`. */
  readonly #observers = new Map<string, Set<OutgoingMessage>>();
  /** The last value notified for each property, so that a notification goes out only on a change. */
  readonly #last = new Map<string, string>();
  #server: Server | undefined;
  #url = "";

  add(thing: SimulatedThing): void {
    this.#things.set(thing.slug, { thing, td: undefined, checks: new Map() });
    thing.attach(
      (name, value) => this.#notify(`${thing.slug}/properties/${name}`, JSON.stringify(value)),
      () => undefined,
    );
  }

  /** `coap://host:port/` once listening. */
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

  /** How many observations are registered now, for tests. */
  get observers(): number {
    let count = 0;
    for (const set of this.#observers.values()) count += set.size;
    return count;
  }

  async listen(host: string, port = 0): Promise<void> {
    const server = createServer({ type: host.includes(":") ? "udp6" : "udp4" }, (request, response) => {
      this.#handle(request, response);
    });
    await new Promise<void>((resolve, reject) => {
      server.listen(port, host, (err) => (err === undefined || err === null ? resolve() : reject(err)));
    });
    const { address, port: bound } = (server._sock as Socket).address();
    this.#url = `coap://${address.includes(":") ? `[${address}]` : address}:${bound}/`;
    this.#server = server;
  }

  async close(): Promise<void> {
    const server = this.#server;
    if (server === undefined) return;
    this.#server = undefined;
    for (const set of this.#observers.values()) for (const observer of set) observer.end();
    this.#observers.clear();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  #handle(request: CoapRequest, response: OutgoingMessage): void {
    try {
      this.#route(request, response);
    } catch (error) {
      const problem = error instanceof SimProblem ? error : new SimProblem(500, String(error));
      answer(response, codeOf(problem.status), problem.message);
    }
  }

  #route(request: CoapRequest, response: OutgoingMessage): void {
    const segments = request.url.split("?")[0]?.split("/").filter(Boolean) ?? [];
    const [slug = "", group, name, ...rest] = segments;
    const served = this.#things.get(slug);
    if (served === undefined || rest.length > 0) throw new SimProblem(404, `nothing at ${request.url}`);
    const td = this.description(served.thing);
    const method = request.method;
    if (group === undefined) {
      if (method !== "GET") throw new SimProblem(405, "a TD is read with GET");
      response.setOption("Content-Format", "application/td+json");
      answer(response, "2.05", JSON.stringify(td));
      return;
    }
    if (group === "properties" && name !== undefined && td.properties?.[name] !== undefined) {
      const affordance = td.properties[name];
      if (method === "GET") {
        const payload = JSON.stringify(served.thing.readProperty(name));
        response.setOption("Content-Format", "application/json");
        if (request.headers.Observe === 0 && affordance.observable === true) {
          this.#observe(`${slug}/properties/${name}`, response, payload);
          return;
        }
        answer(response, "2.05", payload);
        return;
      }
      if (method === "PUT") {
        if (affordance.readOnly === true) throw new SimProblem(405, `${name} is read-only`);
        const value = this.#checked(served, `properties/${name}`, affordance, request);
        served.thing.writeProperty(name, value);
        answer(response, "2.04");
        return;
      }
      throw new SimProblem(405, `${method} is not allowed on a property`);
    }
    if (group === "actions" && name !== undefined && td.actions?.[name] !== undefined) {
      if (method !== "POST") throw new SimProblem(405, "an action is invoked with POST");
      const input = td.actions[name].input;
      const value =
        input === undefined ? undefined : this.#checked(served, `actions/${name}`, input, request);
      const output = served.thing.invokeAction(name, value);
      if (output === undefined) {
        answer(response, "2.04");
        return;
      }
      response.setOption("Content-Format", "application/json");
      answer(response, "2.04", JSON.stringify(output));
      return;
    }
    throw new SimProblem(404, `nothing at ${request.url}`);
  }

  /** A payload as JSON, checked against the affordance's schema. */
  #checked(served: Served, path: string, schema: DataSchema, request: CoapRequest): unknown {
    const format = request.headers["Content-Format"];
    if (format !== undefined && format !== "application/json") {
      throw new SimProblem(415, `expected application/json (Content-Format 50), not ${String(format)}`);
    }
    let value: unknown;
    try {
      value = JSON.parse(request.payload.toString("utf8"));
    } catch {
      throw new SimProblem(400, "the payload is not JSON");
    }
    let check = served.checks.get(path);
    if (check === undefined) {
      check = compileDataSchema(schema);
      served.checks.set(path, check);
    }
    const problem = check(value)[0];
    if (problem !== undefined)
      throw new SimProblem(400, `${problem.pointer || "the value"} ${problem.message}`);
    return value;
  }

  /** RFC 7641 §4.2: the current value now, then a notification on each change, until the client goes. */
  #observe(key: string, response: OutgoingMessage, payload: string): void {
    let set = this.#observers.get(key);
    if (set === undefined) this.#observers.set(key, (set = new Set()));
    set.add(response);
    this.#last.set(key, payload);
    // A Reset or an unacknowledged notification ends the stream (node-coap ends it for us).
    const forget = () => set.delete(response);
    response.on("finish", forget);
    response.on("error", forget);
    response.write(payload);
  }

  #notify(key: string, payload: string): void {
    if (this.#last.get(key) === payload) return;
    this.#last.set(key, payload);
    for (const observer of this.#observers.get(key) ?? []) observer.write(payload);
  }
}

/** An HTTP-like status as a CoAP code: 404 → 4.04, 409 → 4.09 (RFC 8132), 500 → 5.00. */
function codeOf(status: number): string {
  return `${Math.floor(status / 100)}.${String(status % 100).padStart(2, "0")}`;
}

function answer(response: OutgoingMessage, code: string, payload?: string): void {
  response.code = code;
  response.statusCode = code;
  response.end(payload);
}
