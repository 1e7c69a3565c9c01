// GraphQL over WebSocket (graphql-ws) against a real hub, with graphql-ws's own client on `ws`:
// authentication in connection_init, subscriptions fed by live Changes, resumption after the hub
// drops a socket, and the per-socket limits.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import type { FormattedExecutionResult } from "graphql";
import { createClient, type Client } from "graphql-ws";
import { once } from "node:events";
import type { Duplex } from "node:stream";
import { connect as connectTcp, type Socket } from "node:net";
import WebSocket from "ws";
import { GraphqlClient, type GraphqlChange, type SocketStatus } from "../src/client/index.js";
import { readWhileHeld } from "./support/held-thread.js";
import { OffThreadSocket } from "./support/off-thread-socket.js";
import { minimalTd, reportBulk, startTestHub, type TestHub } from "./support/test-hub.js";
import { clientFrame, graphqlUpgrade } from "./support/websocket-frames.js";

type ExecutionResult = FormattedExecutionResult<Record<string, unknown>, unknown>;

const READ_TOKEN = "reader-token-0123456789";
const BOUND_MS = 10_000;

function socketUrl(hub: TestHub): string {
  return `${hub.url.replace(/^http/, "ws")}/graphql`;
}

function connect(hub: TestHub, token: string | undefined = hub.token): Client {
  return createClient({
    url: socketUrl(hub),
    webSocketImpl: WebSocket,
    retryAttempts: 0,
    connectionParams: token === undefined ? {} : { token },
  });
}

/** The typed client on the hub's socket, with every status it went through. */
function watchedClient(hub: TestHub): { client: GraphqlClient; statuses: SocketStatus[] } {
  const statuses: SocketStatus[] = [];
  const client = new GraphqlClient({
    url: hub.url,
    token: hub.token,
    webSocketImpl: WebSocket,
    onStatus: (status) => statuses.push(status),
  });
  return { client, statuses };
}

type Outcome = { results: ExecutionResult[]; error?: unknown };

/** The first `count` results of an operation, or how it failed; bounded, never hangs. */
function take(
  client: Client,
  query: string,
  variables: Record<string, unknown> = {},
  count = 1,
): Promise<Outcome> {
  return new Promise((resolve) => {
    const results: ExecutionResult[] = [];
    const timer = setTimeout(() => {
      dispose();
      resolve({ results, error: new Error(`only ${results.length} of ${count} results in ${BOUND_MS} ms`) });
    }, BOUND_MS);
    const finish = (outcome: Outcome) => {
      clearTimeout(timer);
      dispose();
      resolve(outcome);
    };
    const dispose = client.subscribe(
      { query, variables },
      {
        next: (result) => {
          results.push(result);
          if (results.length >= count || result.errors) finish({ results });
        },
        error: (error) => finish({ results, error }),
        complete: () => finish({ results }),
      },
    );
  });
}

function errorCodes(outcome: Outcome): unknown[] {
  const errors = Array.isArray(outcome.error)
    ? (outcome.error as Array<{ extensions?: { code?: string } }>)
    : (outcome.results[0]?.errors ?? []);
  return errors.map((e) => e.extensions?.code);
}

async function logSize(hub: TestHub): Promise<number> {
  return hub.hub.store.lastSeq();
}

async function register(hub: TestHub, id: string, extra: Record<string, unknown> = {}): Promise<void> {
  const response = await hub.request(`/things/${encodeURIComponent(id)}`, {
    method: "PUT",
    headers: { "content-type": "application/td+json" },
    body: JSON.stringify(minimalTd({ id, ...extra })),
  });
  expect(response.status).toBe(201);
}

async function report(hub: TestHub, id: string, body: unknown): Promise<number[]> {
  const response = await hub.request(`/things/${encodeURIComponent(id)}/changes`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
  expect(response.status).toBe(201);
  return ((await response.json()) as { seqs: number[] }).seqs;
}

const FORMS = [{ href: "http://127.0.0.1:9/x" }];
const SENSOR = {
  properties: { temperature: { type: "number", forms: FORMS } },
  events: { alarm: { data: { type: "string" }, forms: FORMS } },
};

describe("GraphQL over WebSocket", () => {
  let hub: TestHub;

  beforeAll(async () => {
    hub = await startTestHub({}, { HYPERTHINGS_READ_TOKEN: READ_TOKEN });
  });
  afterAll(async () => hub.stop());

  it("closes the socket with 4403 when connection_init carries a token the hub does not know", async () => {
    const client = connect(hub, "not-a-token-of-this-hub");
    const outcome = await take(client, "{ log { size } }");
    expect(outcome.error).toMatchObject({ code: 4403 });
    await client.dispose();
  });

  it("answers a WebSocket handshake on another path with a 404 problem naming /graphql", async () => {
    const url = socketUrl(hub).replace(/\/graphql$/, "/changes/stream");
    const answer = await new Promise<{ status: number; body: string }>((resolve, reject) => {
      const socket = new WebSocket(url, "graphql-transport-ws");
      socket.once("open", () => reject(new Error("a socket opened on /changes/stream")));
      socket.once("unexpected-response", (_request, response) => {
        let body = "";
        response.on("data", (chunk: Buffer) => (body += chunk.toString()));
        response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
      });
      socket.once("error", reject);
    });
    expect(answer.status).toBe(404);
    expect((JSON.parse(answer.body) as { detail: string }).detail).toBe(
      "No WebSocket is served at /changes/stream: the hub's one socket is /graphql (GraphQL over graphql-transport-ws)",
    );
  });

  it("refuses the handshake of a page of another origin with 403, and takes the hub's own page's", async () => {
    const { host } = new URL(hub.url);
    /** The handshake's answer: 101 when the socket opened, else the status and body of the refusal. */
    const handshake = (headers: Record<string, string>) =>
      new Promise<{ status: number; body: string }>((resolve, reject) => {
        const socket = new WebSocket(socketUrl(hub), "graphql-transport-ws", { headers });
        socket.once("open", () => {
          socket.close();
          resolve({ status: 101, body: "" });
        });
        socket.once("unexpected-response", (_request, response) => {
          let body = "";
          response.on("data", (chunk: Buffer) => (body += chunk.toString()));
          response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
        });
        socket.once("error", reject);
      });
    // Any site a user of the hub visits could otherwise read it through their browser.
    for (const origin of [
      "https://evil.example",
      "null",
      `http://localhost.evil.example:${new URL(hub.url).port}`,
    ]) {
      const refused = await handshake({ origin });
      expect(refused.status).toBe(403);
      const problem = JSON.parse(refused.body) as { status: number; detail: string };
      expect(problem.status).toBe(403);
      expect(problem.detail).toContain(`A page of ${origin} may not open a socket`);
    }
    // DNS rebinding: the page's name made to resolve to 127.0.0.1, so that its Origin is the Host.
    const rebound = `rebind.evil.example:${new URL(hub.url).port}`;
    expect((await handshake({ origin: `http://${rebound}`, host: rebound })).status).toBe(421);
    expect((await handshake({ origin: `http://${host}` })).status).toBe(101);
    expect(
      (await handshake({ origin: "https://hub.example", "x-forwarded-host": "hub.example" })).status,
    ).toBe(101);
    expect((await handshake({})).status).toBe(101);
  });

  it("answers queries on the socket without a token, and refuses a reader's mutation with FORBIDDEN", async () => {
    const anonymous = connect(hub, undefined);
    const query = await take(anonymous, "{ log { size } }");
    expect(query.results[0]?.data).toEqual({ log: { size: await logSize(hub) } });
    await anonymous.dispose();

    const reader = connect(hub, READ_TOKEN);
    const before = await logSize(hub);
    const mutation = await take(reader, `mutation { remove(id: "urn:example:any") { seq } }`);
    expect(errorCodes(mutation)).toEqual(["FORBIDDEN"]);
    expect(await logSize(hub)).toBe(before);
    await reader.dispose();
  });

  it("delivers the Change a mutation on the same socket causes to a changes subscription", async () => {
    const client = connect(hub);
    const id = "urn:example:ws-registered";
    const after = await logSize(hub);
    const changes = take(
      client,
      `subscription ($after: SafeInt, $thing: ID) { changes(after: $after, filter: { thing: $thing }) { seq thing kind cause { actor via } } }`,
      { after, thing: id },
    );
    const registered = await take(client, `mutation ($td: JSON!) { register(td: $td) { id created } }`, {
      td: minimalTd({ id }),
    });
    expect(registered.results[0]?.data).toEqual({ register: { id, created: true } });
    const outcome = await changes;
    expect(outcome.error).toBeUndefined();
    expect(outcome.results[0]?.data).toEqual({
      changes: { seq: after + 1, thing: id, kind: "described", cause: { actor: "admin", via: "graphql-ws" } },
    });
    await client.dispose();
  });

  it("streams a Thing's events, and its state: current values first, then each new one", async () => {
    const id = "urn:example:ws-sensor";
    await register(hub, id, SENSOR);
    await report(hub, id, { kind: "reported", affordance: "temperature", value: 20.5 });
    const client = connect(hub);

    const after = await logSize(hub);
    const events = take(
      client,
      `subscription ($id: ID!, $after: SafeInt) { events(thing: $id, name: "alarm", after: $after) { kind affordance value } }`,
      { id, after },
    );
    await report(hub, id, { kind: "emitted", affordance: "alarm", value: "smoke" });
    expect((await events).results.map((r) => r.data)).toEqual([
      { events: { kind: "emitted", affordance: "alarm", value: "smoke" } },
    ]);

    const values: unknown[] = [];
    const state = new Promise<void>((resolve, reject) => {
      const dispose = client.subscribe(
        { query: `subscription ($id: ID!) { state(thing: $id) { name value } }`, variables: { id } },
        {
          next: (result) => {
            values.push(result.data);
            // The current value arrived: the stream is live; the next value is reported now.
            if (values.length === 1)
              report(hub, id, { kind: "reported", affordance: "temperature", value: 21 }).catch(reject);
            if (values.length === 2) {
              dispose();
              resolve();
            }
          },
          error: reject,
          complete: () => {},
        },
      );
    });
    await state;
    expect(values).toEqual([
      { state: { name: "temperature", value: 20.5 } },
      { state: { name: "temperature", value: 21 } },
    ]);
    await client.dispose();
  });

  it("completes a Thing's state and events subscriptions when the Thing is removed", async () => {
    const id = "urn:example:ws-removed";
    await register(hub, id, SENSOR);
    await report(hub, id, { kind: "reported", affordance: "temperature", value: 19 });
    const client = connect(hub);
    const after = await logSize(hub);
    await report(hub, id, { kind: "emitted", affordance: "alarm", value: "smoke" });
    /** A subscription's results; `first` once one came (it is live), `ended` when the hub completes it. */
    const follow = (query: string, variables: Record<string, unknown>) => {
      const results: unknown[] = [];
      let first: () => void = () => {};
      let ended: (error?: unknown) => void = () => {};
      const started = new Promise<void>((resolve) => (first = resolve));
      const completed = new Promise<unknown>((resolve) => (ended = resolve));
      const timer = setTimeout(() => ended(new Error(`not completed within ${BOUND_MS} ms`)), BOUND_MS);
      client.subscribe(
        { query, variables },
        {
          next: (result) => {
            results.push(result.errors ?? result.data);
            first();
          },
          error: (error) => ended(error),
          complete: () => ended(),
        },
      );
      return { results, started, completed: completed.finally(() => clearTimeout(timer)) };
    };
    const state = follow(`subscription ($id: ID!) { state(thing: $id) { name value } }`, { id });
    const events = follow(
      `subscription ($id: ID!, $after: SafeInt) { events(thing: $id, after: $after) { value } }`,
      {
        id,
        after,
      },
    );
    // Both are live (each gave what it had), so neither can miss the removal.
    await Promise.all([state.started, events.started]);
    const removed = await hub.request(`/things/${encodeURIComponent(id)}`, { method: "DELETE" });
    expect(removed.status).toBe(204);
    expect(await state.completed).toBeUndefined();
    expect(await events.completed).toBeUndefined();
    expect(state.results).toEqual([{ state: { name: "temperature", value: 19 } }]);
    expect(events.results).toEqual([{ events: { value: "smoke" } }]);
    await client.dispose();
  });

  it("resumes a removed Thing's events after a seq before its removal: the events up to it, then completes", async () => {
    const id = "urn:example:ws-removed-resumed";
    await register(hub, id, SENSOR);
    const after = await logSize(hub);
    await report(hub, id, { kind: "emitted", affordance: "alarm", value: "smoke" });
    const removed = await hub.request(`/things/${encodeURIComponent(id)}`, { method: "DELETE" });
    expect(removed.status).toBe(204);
    const client = connect(hub);
    const query = `subscription ($id: ID!, $after: SafeInt) { events(thing: $id, name: "alarm", after: $after) { value } }`;
    const resumed = await take(client, query, { id, after }, 2);
    // One event of the two asked for, and no error: the stream completed (a timeout is an error).
    expect(resumed.error).toBeUndefined();
    expect(resumed.results.map((r) => r.errors ?? r.data)).toEqual([{ events: { value: "smoke" } }]);
    // After the removal there is nothing to resume: the Thing is not found.
    const late = await take(client, query, { id, after: await logSize(hub) }, 1);
    expect(errorCodes(late)).toEqual(["NOT_FOUND"]);
    await client.dispose();
  });

  it("holds at most maxPending results for a consumer that lags, and resumes after them with no gap and no duplicate", async () => {
    const id = "urn:example:ws-lagging";
    await register(hub, id, SENSOR);
    let subscribes = 0;
    let stopped: () => void = () => {};
    const stoppedOnce = new Promise<void>((resolve) => (stopped = resolve));
    // The client's socket, counting the subscriptions it starts, and telling when it stops one.
    class CountingWebSocket extends WebSocket {
      override send(data: unknown, ...rest: unknown[]): void {
        const type = typeof data === "string" ? (JSON.parse(data) as { type?: string }).type : undefined;
        if (type === "subscribe") subscribes++;
        if (type === "complete") stopped();
        (super.send as (...args: unknown[]) => void)(data, ...rest);
      }
    }
    const client = new GraphqlClient({
      url: hub.url,
      token: hub.token,
      webSocketImpl: CountingWebSocket,
      maxPending: 5,
    });
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), BOUND_MS);
    const start = await logSize(hub);
    await report(hub, id, { kind: "reported", affordance: "temperature", value: -1 });
    const received: GraphqlChange[] = [];
    let seqs: number[] = [];
    for await (const change of client.changes({ thing: id }, { after: start, signal: stop.signal })) {
      received.push(change);
      if (received.length === 1) {
        // 20 Changes arrive while the consumer takes none: only 5 may wait in the client.
        seqs = await report(
          hub,
          id,
          Array.from({ length: 20 }, (_, i) => ({ kind: "reported", affordance: "temperature", value: i })),
        );
        // The client stops the subscription once 5 wait (or the test's bound passes).
        await Promise.race([
          stoppedOnce,
          new Promise((resolve) => stop.signal.addEventListener("abort", resolve)),
        ]);
      }
      if (received.length === 21) break;
    }
    clearTimeout(timer);
    await client.close();
    expect(received.map((c) => c.seq)).toEqual([start + 1, ...seqs]);
    // Stopped at 5 waiting, and started again each time the consumer had taken them.
    expect(subscribes).toBeGreaterThan(1);
  });

  it("refuses a subscription to an unknown event with NOT_FOUND, and a resume point past the Log's end", async () => {
    const id = "urn:example:ws-sensor";
    const client = connect(hub);
    const unknown = await take(client, `subscription { events(thing: "${id}", name: "nope") { seq } }`);
    expect(errorCodes(unknown)).toEqual(["NOT_FOUND"]);
    const future = await take(client, `subscription { changes(after: 99999999) { seq } }`);
    expect(errorCodes(future)).toEqual(["BAD_USER_INPUT"]);
    await client.dispose();
  });

  it("refuses a changes subscription whose filter names a malformed Thing id, type or kind, saying where", async () => {
    const client = connect(hub);
    const thing = await take(client, `subscription { changes(filter: { thing: "lamp 1" }) { seq } }`);
    expect(errorCodes(thing)).toEqual(["BAD_USER_INPUT"]);
    const [problem] = (thing.results[0]?.errors?.[0]?.extensions?.errors ?? []) as Array<{
      pointer: string;
      detail: string;
    }>;
    expect(problem?.pointer).toBe("/filter/thing");
    expect(problem?.detail).toMatch(/no scheme/);
    const type = await take(client, `subscription { changes(filter: { type: "saref:" }) { seq } }`);
    expect(errorCodes(type)).toEqual(["BAD_USER_INPUT"]);
    expect(type.results[0]?.errors?.[0]?.extensions?.errors).toEqual([
      { pointer: "/filter/type", detail: "has an empty prefix or local name" },
    ]);
    // A misspelt kind: refused, rather than a subscription that stays silent for ever.
    const kind = await take(client, `subscription { changes(filter: { kinds: ["reprted"] }) { seq } }`);
    expect(errorCodes(kind)).toEqual(["BAD_USER_INPUT"]);
    expect(kind.results[0]?.errors?.[0]?.extensions?.errors).toEqual([
      { pointer: "/filter/kinds", detail: expect.stringContaining("reported, desired") as unknown },
    ]);
    await client.dispose();
  });

  it("refuses a subscribe whose variables hold an integer a 64-bit float would round, naming the variable, and records nothing", async () => {
    const socket = new WebSocket(socketUrl(hub), "graphql-transport-ws");
    const messages: Array<Record<string, unknown>> = [];
    const waiting: Array<() => void> = [];
    socket.on("message", (data: Buffer) => {
      messages.push(JSON.parse(data.toString()) as Record<string, unknown>);
      for (const wake of waiting.splice(0)) wake();
    });
    /** The message for `id` (or of `type`), once it came. */
    const answer = async (match: (m: Record<string, unknown>) => boolean) => {
      for (;;) {
        const found = messages.find(match);
        if (found) return found;
        await new Promise<void>((resolve) => waiting.push(resolve));
      }
    };
    await once(socket, "open");
    socket.send(JSON.stringify({ type: "connection_init", payload: { token: hub.token } }));
    await answer((m) => m.type === "connection_ack");
    const before = await logSize(hub);
    const id = "urn:example:ws-inexact";
    const td = JSON.stringify(minimalTd({ id })).replace(/}$/, ',"serial":9007199254740993}');
    const register = "mutation ($td: JSON!) { register(td: $td) { id } }";
    // Sent as text: JSON.stringify would have rounded it already.
    socket.send(`{"id":"1","type":"subscribe","payload":{"query":"${register}","variables":{"td":${td}}}}`);
    expect(await answer((m) => m.id === "1")).toEqual({
      id: "1",
      type: "error",
      payload: [
        {
          message:
            'Variable "$td" at /serial is 9007199254740993, which a JSON number here (a 64-bit float) holds only as 9007199254740992: send it as a string, or with an exponent to take the nearest float',
          extensions: {
            code: "BAD_USER_INPUT",
            errors: [
              {
                pointer: "/variables/td/serial",
                detail:
                  "is 9007199254740993, which a JSON number here (a 64-bit float) holds only as 9007199254740992",
              },
            ],
          },
        },
      ],
    });
    expect(await logSize(hub)).toBe(before);
    // A number the float holds exactly is taken; one outside the variables is not the hub's to refuse.
    const exact = td.replace("9007199254740993", "9007199254740992");
    socket.send(
      `{"id":"2","type":"subscribe","payload":{"query":"${register}","variables":{"td":${exact}},"extensions":{"n":9007199254740993}}}`,
    );
    expect(await answer((m) => m.id === "2" && m.type !== "complete")).toMatchObject({
      type: "next",
      payload: { data: { register: { id } } },
    });
    // A message that is not JSON is no graphql-ws message at all: the protocol closes the socket.
    const closed = once(socket, "close");
    socket.send('{"id":"3","type":"subscribe"');
    const [code] = (await closed) as [number, Buffer];
    expect(code).toBe(4400);
  });

  it("refuses an operation over the depth limit with its code", async () => {
    const client = connect(hub);
    let nested = "id";
    for (let i = 0; i < 8; i++) nested = `links { target { ${nested} } }`;
    const outcome = await take(client, `{ thing(id: "urn:example:ws-sensor") { ${nested} } }`);
    expect(errorCodes(outcome)).toContain("DEPTH_LIMIT_EXCEEDED");
    await client.dispose();
  });
});

describe("GraphQL over WebSocket: limits per socket", () => {
  let hub: TestHub;
  const id = "urn:example:ws-limits";

  beforeAll(async () => {
    hub = await startTestHub({
      graphql: {
        maxSubscriptions: 2,
        operationsBurst: 5,
        operationsPerSecond: 0.001,
        maxQueued: 3,
        maxPayload: 4096,
      },
    });
    await register(hub, id, SENSOR);
  });
  afterAll(async () => hub.stop());

  it("refuses operations past the socket's rate with RATE_LIMITED, and serves another socket", async () => {
    const client = connect(hub);
    const outcomes: Outcome[] = [];
    for (let i = 0; i < 6; i++) outcomes.push(await take(client, "{ log { size } }"));
    expect(outcomes.slice(0, 5).every((o) => o.results[0]?.data !== undefined)).toBe(true);
    expect(errorCodes(outcomes[5] as Outcome)).toEqual(["RATE_LIMITED"]);
    const other = connect(hub);
    expect((await take(other, "{ log { size } }")).results[0]?.data).toBeDefined();
    await client.dispose();
    await other.dispose();
  });

  it("refuses HTTP operations past the client's rate with 429 and RATE_LIMITED", async () => {
    const answers: Array<{ status: number; codes: unknown[] }> = [];
    for (let i = 0; i < 6; i++) {
      const response = await hub.request("/graphql", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ query: "{ log { size } }" }),
      });
      const body = (await response.json()) as { errors?: Array<{ extensions?: { code?: string } }> };
      answers.push({ status: response.status, codes: (body.errors ?? []).map((e) => e.extensions?.code) });
    }
    expect(answers.slice(0, 5).every((a) => a.status === 200 && a.codes.length === 0)).toBe(true);
    expect(answers[5]).toEqual({ status: 429, codes: ["RATE_LIMITED"] });
  });

  it("refuses a subscription past the socket's maximum with TOO_MANY_SUBSCRIPTIONS", async () => {
    const client = connect(hub);
    const open = [0, 1].map(() =>
      take(client, `subscription { changes(filter: { thing: "urn:example:none" }) { seq } }`),
    );
    const third = await take(client, `subscription { changes { seq } }`);
    expect(errorCodes(third)).toEqual(["TOO_MANY_SUBSCRIPTIONS"]);
    // On another socket, completing one frees its place: a new subscription is accepted.
    const after = await logSize(hub);
    const single = connect(hub);
    const first = take(single, `subscription { changes(filter: { thing: "urn:example:none" }) { seq } }`);
    const dispose = single.subscribe(
      { query: `subscription { changes(filter: { thing: "urn:example:none" }) { seq } }` },
      { next: () => {}, error: () => {}, complete: () => {} },
    );
    dispose();
    const replaced = await take(single, `subscription ($after: SafeInt) { changes(after: $after) { seq } }`, {
      after: after - 1,
    });
    expect(replaced.results[0]?.data).toEqual({ changes: { seq: after } });
    await single.dispose();
    await first;
    await client.dispose();
    await Promise.all(open);
  });

  it("closes the socket (1009) when a message exceeds the payload limit, and prints nothing to stderr", async () => {
    // graphql-ws's own handler printed each socket error with its stack: a client could fill stderr.
    const printed = vi.spyOn(console, "error");
    try {
      const client = connect(hub);
      const outcome = await take(client, `{ search(jsonpath: "${"$".padEnd(8000, " ")}") }`);
      expect(outcome.error).toMatchObject({ code: 1009 });
      await client.dispose();
      expect(printed).not.toHaveBeenCalled();
    } finally {
      printed.mockRestore();
    }
  });

  it("closes a socket that falls behind (1013); the client resumes after its last seq, with no gap and no duplicate", async () => {
    const { client, statuses } = watchedClient(hub);
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), BOUND_MS);
    const received: GraphqlChange[] = [];
    const start = await logSize(hub);
    const burst = Array.from({ length: 20 }, (_, i) => ({
      kind: "reported",
      affordance: "temperature",
      value: i,
    }));
    let seqs: number[] = [];
    await report(hub, id, { kind: "reported", affordance: "temperature", value: -1 });
    const changes = client.changes({ thing: id, kinds: ["reported"] }, { after: start, signal: stop.signal });
    for await (const change of changes) {
      received.push(change);
      // One commit of 20 Changes, published at once: more than the socket's queue of 3 holds.
      if (received.length === 1) seqs = await report(hub, id, burst);
      if (received.length === 21) break;
    }
    clearTimeout(timer);
    await client.close();
    expect(statuses.some((s) => s.state === "closed" && s.code === 1013)).toBe(true);
    const values = received.map((c) => c.value);
    expect(received.map((c) => c.seq)).toEqual([start + 1, ...seqs]);
    expect(values).toEqual([-1, ...burst.map((b) => b.value)]);
  });

  it("resumes a Thing's events after the last seq it delivered when the hub closes the socket (1013)", async () => {
    const { client, statuses } = watchedClient(hub);
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), BOUND_MS);
    const received: GraphqlChange[] = [];
    const start = await logSize(hub);
    const burst = Array.from({ length: 20 }, (_, i) => ({
      kind: "emitted",
      affordance: "alarm",
      value: `a${i}`,
    }));
    let seqs: number[] = [];
    await report(hub, id, { kind: "emitted", affordance: "alarm", value: "first" });
    for await (const event of client.events(id, "alarm", { after: start, signal: stop.signal })) {
      received.push(event);
      // One commit of 20 events, published at once: more than the socket's queue of 3 holds.
      if (received.length === 1) seqs = await report(hub, id, burst);
      if (received.length === 21) break;
    }
    clearTimeout(timer);
    await client.close();
    expect(statuses.some((s) => s.state === "closed" && s.code === 1013)).toBe(true);
    expect(received.map((c) => c.seq)).toEqual([start + 1, ...seqs]);
    expect(received.map((c) => c.value)).toEqual(["first", ...burst.map((b) => b.value)]);
  });

  it("does not yield a property's value twice when the socket reconnects under a state subscription", async () => {
    const sensor = "urn:example:ws-state";
    await register(hub, sensor, SENSOR);
    const [first] = await report(hub, sensor, { kind: "reported", affordance: "temperature", value: 20 });
    let reopened: () => void = () => {};
    const reconnected = new Promise<void>((resolve) => (reopened = resolve));
    let closed = false;
    const client = new GraphqlClient({
      url: hub.url,
      token: hub.token,
      webSocketImpl: WebSocket,
      onStatus: (status) => {
        if (status.state === "closed" && status.code === 1013) closed = true;
        if (status.state === "open" && closed) reopened();
      },
    });
    const stop = new AbortController();
    const timer = setTimeout(() => stop.abort(), BOUND_MS);
    const values: Array<[unknown, number]> = [];
    for await (const value of client.state(sensor, { signal: stop.signal })) {
      values.push([value.value, value.seq]);
      if (values.length === 1) {
        // Another subscription on the same socket falls behind: the hub closes the socket (1013),
        // and every subscription on it is sent again once the client has reconnected.
        void (async () => {
          for await (const change of client.changes({}, { after: await logSize(hub), signal: stop.signal }))
            void change;
        })().catch(() => undefined);
        await report(
          hub,
          id,
          Array.from({ length: 20 }, (_, i) => ({ kind: "reported", affordance: "temperature", value: i })),
        );
        await reconnected;
        await report(hub, sensor, { kind: "reported", affordance: "temperature", value: 21 });
      }
      if (value.value === 21) break;
    }
    clearTimeout(timer);
    stop.abort();
    await client.close();
    expect(closed).toBe(true);
    expect(values.map(([value]) => value)).toEqual([20, 21]);
    expect(values[0]?.[1]).toBe(first);
  });
});

/**
 * A graphql-ws connection on a raw socket, acknowledged: `ws` resumes its own socket whenever its
 * parser drains, so it cannot be made to stop reading. `until` waits for a text from the hub.
 */
async function rawConnection(
  hub: TestHub,
): Promise<{ socket: Socket; until: (text: string) => Promise<void> }> {
  const { hostname, port } = new URL(hub.url);
  const socket = connectTcp(Number(port), hostname);
  socket.on("error", () => undefined);
  await once(socket, "connect");
  let seen = "";
  socket.on("data", (chunk: Buffer) => (seen += chunk.toString("latin1")));
  socket.write(graphqlUpgrade(hostname, port));
  const bound = Date.now() + BOUND_MS;
  const until = async (text: string) => {
    while (!seen.includes(text) && Date.now() < bound)
      await new Promise((resolve) => setTimeout(resolve, 10));
    expect(seen).toContain(text);
  };
  await until("101 Switching Protocols");
  socket.write(clientFrame({ type: "connection_init", payload: { token: hub.token } }));
  await until("connection_ack");
  return { socket, until };
}

describe("GraphQL over WebSocket: a socket that reads nothing", () => {
  let hub: TestHub;
  const id = "urn:example:ws-stalled";

  beforeAll(async () => {
    // A replay that waits this long for its socket to take anything is closed (1013), and a
    // socket that does not complete the close within as long is cut. The replay waits once the
    // subscription's queue holds half of maxQueued.
    hub = await startTestHub({ streamStallMs: 300, graphql: { maxQueued: 100 } });
    await register(hub, id, { properties: { config: { type: "object", forms: FORMS } } });
  });
  afterAll(async () => hub.stop());

  function connections(): Promise<number> {
    return new Promise((resolve, reject) =>
      hub.app.server.getConnections((err, count) => (err ? reject(err) : resolve(count))),
    );
  }

  it("is cut while replaying once it has taken nothing for streamStallMs, and the hub goes on", async () => {
    // ~30 MB of Changes: more than the kernel's buffers on loopback and the socket's queue hold,
    // so the replay waits for the socket to take some.
    await reportBulk(hub, id, 60, 50, 10_000);
    const before = await connections();
    const { socket, until } = await rawConnection(hub);
    socket.write(
      clientFrame({
        id: "1",
        type: "subscribe",
        payload: { query: "subscription { changes(after: 0) { seq value } }" },
      }),
    );
    await until('"type":"next"');
    // From here on the client reads nothing: it neither takes the replay nor answers a close.
    socket.pause();
    expect(await connections()).toBe(before + 1);
    // Well within ws's own 30 s close timeout, which held such a socket before.
    const bound = Date.now() + BOUND_MS;
    while ((await connections()) > before && Date.now() < bound)
      await new Promise((resolve) => setTimeout(resolve, 20));
    expect(await connections()).toBe(before);
    const [seq] = await report(hub, id, { kind: "reported", affordance: "config", value: { level: -1 } });
    expect(seq).toBe(await logSize(hub));
    socket.destroy();
  });

  it("closes an open socket with 1001 (going away) when the hub stops, rather than cutting it", async () => {
    const own = await startTestHub({});
    const socket = new WebSocket(`${own.url.replace(/^http/, "ws")}/graphql`, "graphql-transport-ws");
    await once(socket, "open");
    const closed = new Promise<number>((resolve) => socket.once("close", (code: number) => resolve(code)));
    await own.stop();
    expect(await closed).toBe(1001);
  });

  it("does not hold the hub's stop", async () => {
    const own = await startTestHub({ streamStallMs: 300 });
    const { socket } = await rawConnection(own);
    socket.pause();
    const started = Date.now();
    await own.stop();
    // ws's own close timeout held the stop for 30 s.
    expect(Date.now() - started).toBeLessThan(BOUND_MS);
    socket.destroy();
  });
});

describe("GraphQL over WebSocket: a socket that keeps up while the hub's thread is held up", () => {
  it("is not closed for a stall when its client read everything while the hub's loop was late", async () => {
    // A replay that waits this long for its socket to take anything is closed (1013). The replay
    // waits once the subscription's queue holds half of maxQueued.
    const stallMs = 1_500;
    const maxQueued = 20;
    const own = await startTestHub({ streamStallMs: stallMs, graphql: { maxQueued } });
    const id = "urn:example:ws-held";
    let client: OffThreadSocket | undefined;
    const timers = vi.spyOn(globalThis, "setTimeout");
    try {
      await register(own, id, { properties: { config: { type: "object", forms: FORMS } } });
      // ~8 MB of Changes of ~10 kB: more than the kernel's buffers on loopback hold (~3 MB here).
      const changeBytes = 10_000;
      await reportBulk(own, id, 16, 50, changeBytes);
      const last = await logSize(own);
      // The client reads on its own thread: it goes on reading while this one is held up.
      const replay = await pausedReplay(own);
      client = replay.client;
      const { socket } = replay;
      // The replay filled the kernel's buffers and the queue, and waits, its stall timer running.
      const bound = Date.now() + 20_000;
      const stalling = () => timers.mock.calls.some(([, ms]) => ms === stallMs);
      while (!stalling() && Date.now() < bound) await new Promise((resolve) => setImmediate(resolve));
      expect(stalling()).toBe(true);
      // What the kernel took from the hub so far: the writes it completed.
      const taken = socket.bytesWritten - socket.writableLength;
      // Once the client has read it, the kernel can take what the queue holds in one go.
      expect(taken).toBeGreaterThan(2 * maxQueued * changeBytes);
      // The client now reads all the kernel took (and then what it holds of the rest), while the
      // hub's thread is held up past the stall timeout in a callback of the check phase: the timer
      // is due before the loop polls the socket and completes the write that was waiting.
      await readWhileHeld(client, stallMs, taken);
      // It was keeping up: the replay goes on to the end of the Log, the socket stays open.
      await client.until(`"seq":${last},`);
      expect(client.text).not.toContain("too slow");
    } finally {
      timers.mockRestore();
      await client?.end();
      await own.stop();
    }
  });

  it("is not cut before its close frame when its client read everything while the hub's loop was late", async () => {
    // A replay that waits this long for its socket to take anything is closed (1013), and the
    // socket has as long to complete the close.
    const stallMs = 1_500;
    const own = await startTestHub({ streamStallMs: stallMs, graphql: { maxQueued: 20 } });
    const id = "urn:example:ws-held-close";
    let client: OffThreadSocket | undefined;
    const closes = vi.spyOn(WebSocket.prototype, "close");
    try {
      await register(own, id, { properties: { config: { type: "object", forms: FORMS } } });
      // ~8 MB of Changes of ~10 kB: more than the kernel's buffers on loopback hold (~3 MB here).
      await reportBulk(own, id, 16, 50, 10_000);
      // The client takes nothing for streamStallMs: the hub closes the socket (1013), its close
      // frame queued behind what the kernel could not take, and its grace timer running.
      const replay = await pausedReplay(own);
      client = replay.client;
      const { socket } = replay;
      const bound = Date.now() + 20_000;
      while (closes.mock.calls.length === 0 && Date.now() < bound)
        await new Promise((resolve) => setImmediate(resolve));
      expect(closes.mock.calls[0]?.[0]).toBe(1013);
      expect(socket.writableLength).toBeGreaterThan(0);
      const taken = socket.bytesWritten - socket.writableLength;
      // Now the client reads all the kernel took, while the hub's thread is held up past the
      // grace in a callback of the check phase: the grace timer is due before the loop polls the
      // socket and writes the rest, close frame last.
      await readWhileHeld(client, stallMs, taken);
      // The close frame reaches it, with its reason: the client can tell "try again later".
      await client.until("too slow");
      await client.closed;
    } finally {
      closes.mockRestore();
      await client?.end();
      await own.stop();
    }
  });
});

describe("GraphQL over WebSocket: the bound on an answer's bytes", () => {
  let hub: TestHub;
  const MAX = 4096;
  const id = "urn:example:ws-answer-size";

  beforeAll(async () => {
    hub = await startTestHub({ graphql: { maxAnswerBytes: MAX } });
    await register(hub, id, { properties: { config: { type: "object", forms: FORMS } } });
  });
  afterAll(async () => hub.stop());

  it("answers a query past maxAnswerBytes with ANSWER_TOO_LARGE, and one within it in full", async () => {
    const client = connect(hub);
    const aliases = Array.from({ length: 200 }, (_, i) => `t${i}: thing(id: "${id}") { td }`).join(" ");
    const big = await take(client, `{ ${aliases} }`);
    expect(errorCodes(big)).toEqual(["ANSWER_TOO_LARGE"]);
    expect(big.results[0]?.data).toBeNull();
    // The operation's own __typename, which no field answers: 400 of them are some 6 kB.
    const typenames = Array.from({ length: 400 }, (_, i) => `t${i}: __typename`).join(" ");
    expect(errorCodes(await take(client, `{ ${typenames} }`))).toEqual(["ANSWER_TOO_LARGE"]);
    const small = await take(client, `{ thing(id: "${id}") { id } }`);
    expect(small.results[0]).toEqual({ data: { thing: { id } } });
    await client.dispose();
  });

  it("bounds each subscription message: a Change too large to send is an error, the ones before it arrive", async () => {
    const client = connect(hub);
    const after = await logSize(hub);
    const [small] = await report(hub, id, { kind: "reported", affordance: "config", value: { note: "ok" } });
    await report(hub, id, { kind: "reported", affordance: "config", value: { note: "x".repeat(MAX) } });
    const outcome = await take(
      client,
      `subscription ($after: SafeInt, $thing: ID) { changes(after: $after, filter: { thing: $thing }) { seq value } }`,
      { after, thing: id },
      2,
    );
    expect(outcome.results[0]).toEqual({ data: { changes: { seq: small, value: { note: "ok" } } } });
    expect(outcome.results[1]?.errors?.[0]?.extensions).toMatchObject({
      code: "ANSWER_TOO_LARGE",
      maxAnswerBytes: MAX,
    });
    await client.dispose();
  });
});

/**
 * A client on a thread of its own (it goes on reading while this one is held up) subscribes to the
 * whole Log over the hub's GraphQL socket, then takes nothing; with the hub's side of that socket.
 */
async function pausedReplay(own: TestHub): Promise<{ client: OffThreadSocket; socket: Socket }> {
  const { hostname, port } = new URL(own.url);
  const upgraded = new Promise<Duplex>((resolve) =>
    own.app.server.once("upgrade", (_request, socket: Duplex) => resolve(socket)),
  );
  const client = await OffThreadSocket.connect(Number(port), hostname);
  try {
    client.write(graphqlUpgrade(hostname, port));
    const socket = (await upgraded) as Socket;
    await client.until("101 Switching Protocols");
    client.write(clientFrame({ type: "connection_init", payload: { token: own.token } }));
    await client.until("connection_ack");
    client.pause();
    const query = "subscription { changes(after: 0) { seq value } }";
    client.write(clientFrame({ id: "1", type: "subscribe", payload: { query } }));
    return { client, socket };
  } catch (error) {
    await client.end();
    throw error;
  }
}
