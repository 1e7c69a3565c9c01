// The HTTP API's edges, over a real socket: what each resource says it allows, which media types
// it answers, and what a careless or hostile client gets.
import { readdirSync } from "node:fs";
import { once } from "node:events";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import { minimalTd, putTd, startTestHub, type TestHub } from "./support/test-hub.js";

interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
}

async function expectProblem(res: Response, status: number): Promise<Problem> {
  expect(res.status, `${res.url}: ${res.status}`).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json\b/);
  const problem = (await res.json()) as Problem;
  expect(problem.status).toBe(status);
  return problem;
}

/** A path that only `url`'s pattern names: each parameter given a value no static route has. */
function samplePath(url: string): string {
  return url
    .replace(/:id\b/g, "urn:example:allow")
    .replace(/:seq\b/g, "1")
    .replace(/:name\b/g, "p")
    .replace(/:invocation\b/g, "i")
    .replace(/:username\b/g, "u")
    .replace(/\*$/, "assets/x.js");
}

/** What browsers send: Chrome's and Firefox's for a page, and for a script, a style sheet, an image. */
const BROWSER_ACCEPTS = [
  "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7",
  "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
  "*/*",
  "text/css,*/*;q=0.1",
  "image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8",
];

/** Accept headers a JSON client sends, all of which a JSON route answers. */
const JSON_ACCEPTS = [
  undefined,
  "",
  "*/*",
  "application/*",
  "application/json",
  "Application/JSON",
  "application/problem+json",
  "application/xml, application/json;q=0.5",
  "application/json; charset=utf-8",
  "text/plain;q=0.5, */*;q=0.1",
  ...BROWSER_ACCEPTS,
];

/**
 * Writes `text` on a socket of its own to the server at `url`, and what `then` returns once it
 * has heard something (once); resolves with all it answers when it closes the connection, or
 * when an answer it sent without `Connection: close` is complete.
 */
function rawRequest(
  url: string,
  text: string,
  then: (answered: string) => string | undefined = () => undefined,
): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let sent = false;
    const socket = connect(Number(port), hostname, () => socket.write(text));
    socket.on("data", (chunk: Buffer) => {
      chunks.push(chunk);
      const answered = Buffer.concat(chunks).toString("latin1");
      const more = sent ? undefined : then(answered);
      if (more !== undefined) {
        sent = true;
        socket.write(more);
      }
      // A kept-alive answer: complete once its Content-Length is in.
      const final = /(?:^|\r\n\r\n)(HTTP\/1\.1 [2-5]\d\d [^]*?\r\n\r\n)([^]*)$/.exec(answered);
      const length = final && /\r\ncontent-length: (\d+)\r\n/i.exec(final[1] ?? "");
      if (final && length && Buffer.byteLength(final[2] ?? "", "latin1") >= Number(length[1])) socket.end();
    });
    socket.on("error", reject);
    socket.on("close", () => resolve(Buffer.concat(chunks).toString("latin1")));
  });
}

/** The JSON body of an answer `rawRequest` resolved with. */
function bodyOf(answer: string): unknown {
  return JSON.parse(Buffer.from(answer.slice(answer.indexOf("\r\n\r\n") + 4), "latin1").toString("utf8"));
}

const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

describe("the HTTP API's edges", () => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub();
  });
  afterAll(async () => {
    await hub.stop();
  });

  it("answers every method a route does not take with 405 and an Allow of exactly that route's methods and OPTIONS", async () => {
    const routes = hub.app.routeTable.list();
    expect(routes.map((r) => r.url)).toContain("/things/batch");
    for (const { url, methods } of routes) {
      const path = samplePath(url);
      expect(path, url).not.toMatch(/\/:|\*/);
      const allow = [...methods, "OPTIONS"].sort().join(", ");
      const options = await hub.request(path, { method: "OPTIONS", auth: false });
      expect(options.status, `OPTIONS ${path}`).toBe(204);
      expect(options.headers.get("allow"), `OPTIONS ${path}`).toBe(allow);
      for (const method of METHODS.filter((m) => m !== "OPTIONS" && !methods.includes(m))) {
        const res = await hub.request(path, { method, auth: false });
        expect(res.status, `${method} ${path}`).toBe(405);
        expect(res.headers.get("allow"), `${method} ${path}`).toBe(allow);
        if (method !== "HEAD") {
          const problem = await expectProblem(res, 405);
          expect(problem.detail).toBe(`${path} takes ${allow}, not ${method}`);
        } else await res.body?.cancel();
      }
    }
  });

  it("answers a static route next to a parametric one as its own resource: /things/batch is POST only", async () => {
    for (const method of ["GET", "HEAD", "PUT", "DELETE", "PATCH"]) {
      const res = await hub.request("/things/batch", { method });
      expect(res.status, method).toBe(405);
      expect(res.headers.get("allow"), method).toBe("OPTIONS, POST");
    }
    const batch = await hub.request("/things/batch", { method: "OPTIONS" });
    expect(batch.status).toBe(204);
    expect(batch.headers.get("allow")).toBe("OPTIONS, POST");
    // The parametric route still answers its own paths.
    const thing = await hub.request("/things/urn:example:none");
    await expectProblem(thing, 404);
    const options = await hub.request("/things/urn:example:none", { method: "OPTIONS" });
    expect(options.status).toBe(204);
    expect(options.headers.get("allow")).toBe("DELETE, GET, HEAD, OPTIONS, PATCH, PUT");
  });

  it("answers OPTIONS with 204 and the resource's Allow (RFC 9110 §9.3.7), a CORS preflight too but with no Access-Control headers", async () => {
    for (const [path, allow] of [
      ["/things", "GET, HEAD, OPTIONS, POST"],
      ["/changes/1", "GET, HEAD, OPTIONS"],
      ["/health?x=1", "GET, HEAD, OPTIONS"],
    ] as const) {
      const res = await hub.request(path, { method: "OPTIONS", auth: false });
      expect(res.status, path).toBe(204);
      expect(res.headers.get("allow"), path).toBe(allow);
      expect(await res.text(), path).toBe("");
    }
    // A browser's preflight from another origin: answered as any OPTIONS, and without the
    // Access-Control-Allow-* headers that would let that origin's page send the request.
    const preflight = await hub.request("/things", {
      method: "OPTIONS",
      auth: false,
      headers: {
        origin: "http://other.example",
        "access-control-request-method": "POST",
        "access-control-request-headers": "authorization, content-type",
      },
    });
    expect(preflight.status).toBe(204);
    expect([...preflight.headers.keys()].filter((name) => name.startsWith("access-control-"))).toEqual([]);
    // No such resource: still a 404.
    await expectProblem(await hub.request("/no/such/path", { method: "OPTIONS" }), 404);
    // OPTIONS * asks about the server in general: every method some resource takes.
    const server = await rawRequest(
      hub.url,
      "OPTIONS * HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n",
    );
    expect(server).toMatch(/^HTTP\/1\.1 204 /);
    expect(server).toMatch(/\r\nallow: DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT\r\n/i);
  });

  /** GET `path` with `accept` (none when undefined), without a token. */
  function get(path: string, accept: string | undefined): Promise<Response> {
    return hub.request(path, {
      auth: false,
      ...(accept !== undefined && { headers: { accept } }),
      signal: AbortSignal.timeout(10_000),
    });
  }

  it("answers 406 with a problem document when Accept takes nothing a route answers with", async () => {
    for (const [path, accept, answers] of [
      ["/health", "application/xml", ["application/json"]],
      ["/health", "text/html", ["application/json"]],
      ["/health", "application/json;q=0", ["application/json"]],
      ["/health", "application/xml, */*;q=0", ["application/json"]],
      ["/changes", "text/event-stream", ["application/json"]],
      ["/things", "application/xml", ["application/ld+json", "application/json"]],
      ["/.well-known/wot", "text/html", ["application/td+json", "application/json", "application/ld+json"]],
      ["/events", "application/json", ["text/event-stream"]],
      ["/changes/stream", "application/json", ["text/event-stream"]],
      ["/log/entries", "application/json", ["application/x-ndjson"]],
      ["/", "application/json", ["text/html"]],
    ] as const) {
      const res = await get(path, accept);
      const problem = await expectProblem(res, 406);
      expect(problem, `${path} ${accept}`).toMatchObject({
        type: "urn:hyperthings:problem:not-acceptable",
        title: "Not acceptable",
        detail: `GET ${path} answers ${answers.join(" or ")}, which the request's Accept (${accept}) does not take`,
        answers,
      });
    }
  });

  it("answers JSON clients whatever JSON-taking Accept they send, q-values counted", async () => {
    for (const accept of JSON_ACCEPTS) {
      for (const path of ["/health", "/things", "/changes?limit=1", "/openapi.json", "/graph/summary"]) {
        const res = await get(path, accept);
        expect(res.status, `${path} ${accept}`).toBe(200);
        expect(res.headers.get("content-type"), `${path} ${accept}`).toMatch(/^application\/(ld\+)?json\b/);
        await res.body?.cancel();
      }
    }
    // GraphQL's own media type.
    const graphql = await hub.request("/graphql", {
      method: "POST",
      headers: { "content-type": "application/json", accept: "application/graphql-response+json" },
      body: JSON.stringify({ query: "{ __typename }" }),
    });
    expect(graphql.status).toBe(200);
    expect(graphql.headers.get("content-type")).toMatch(/^application\/graphql-response\+json/);
  });

  it("answers a TD in application/td+json, application/json or application/ld+json, as Accept weighs them", async () => {
    const id = "urn:example:edges:accept";
    await putTd(hub, minimalTd({ id }));
    for (const [accept, type] of [
      ["application/td+json", "application/td+json"],
      ["application/json", "application/json"],
      ["application/ld+json", "application/ld+json"],
      ["application/ld+json, application/td+json", "application/td+json"],
      ["application/td+json;q=0.5, application/ld+json", "application/ld+json"],
      ["*/*", "application/td+json"],
      [undefined, "application/td+json"],
    ] as const) {
      const res = await get(thingPath(id), accept);
      expect(res.status, accept).toBe(200);
      expect(res.headers.get("content-type"), accept).toMatch(new RegExp(`^${type.replace("+", "\\+")}\\b`));
      expect(((await res.json()) as { id: string }).id).toBe(id);
    }
    await expectProblem(await get(thingPath(id), "text/html"), 406);
    await expectProblem(await get(`${thingPath(id)}/proxy`, "application/xml"), 406);
  });

  it("answers event streams to text/event-stream, and NDJSON to application/x-ndjson", async () => {
    for (const accept of ["text/event-stream", "text/*", "*/*", undefined]) {
      const res = await get("/events", accept);
      expect(res.status, accept).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
      await res.body?.cancel();
    }
    const entries = await get("/log/entries", "application/x-ndjson");
    expect(entries.status).toBe(200);
    expect(entries.headers.get("content-type")).toMatch(/^application\/x-ndjson/);
    await entries.body?.cancel();
  });

  it("answers the web UI's page and files to browsers' Accept, and each file only to an Accept that takes its type", async () => {
    const assets = readdirSync(new URL("../dist/ui/assets/", import.meta.url));
    const script = assets.find((name) => name.endsWith(".js"));
    const style = assets.find((name) => name.endsWith(".css"));
    expect(script).toBeDefined();
    expect(style).toBeDefined();
    for (const accept of [...BROWSER_ACCEPTS, undefined]) {
      for (const path of ["/", "/ui/", `/ui/assets/${script}`, `/ui/assets/${style}`]) {
        const res = await get(path, accept);
        expect(res.status, `${path} ${accept}`).toBe(200);
        await res.body?.cancel();
      }
    }
    expect((await get(`/ui/assets/${style}`, "text/css")).status).toBe(200);
    await expectProblem(await get(`/ui/assets/${script}`, "text/css"), 406);
  });

  it("refuses a path the router cannot read with a problem that says why, without echoing the path", async () => {
    const bad = await expectProblem(await hub.request("/things/urn:example:%E9t%E9"), 400);
    expect(bad).toMatchObject({
      type: "urn:hyperthings:problem:request",
      title: "Bad request",
      detail:
        "The URL's path has a %-escape that is not UTF-8 text: write each byte of a character's UTF-8 as %XX (é is %C3%A9) and a % itself as %25",
    });
    // A Thing id is at most 2048 characters, counted decoded: 2,000 é (12,000 characters
    // encoded) is an id, one of 2,049 characters is not.
    const long = `urn:ex:${"é".repeat(2000)}`;
    await expectProblem(await hub.request(thingPath(long)), 404);
    const tooLong = await hub.request(thingPath(`urn:ex:${"x".repeat(2042)}`));
    const problem = await expectProblem(tooLong, 414);
    expect(problem).toMatchObject({
      type: "urn:hyperthings:problem:request",
      title: "URI too long",
      detail:
        "A segment of the URL's path is longer than 2048 characters once decoded; a Thing id is at most 2048",
    });
  });

  it("takes a request with Content-Type: application/json and no body (Content-Length: 0) as one without a body", async () => {
    const id = "urn:example:edges:empty-body";
    await putTd(hub, minimalTd({ id }));
    const empty = { headers: { "content-type": "application/json" }, body: "" };
    // Routes that read no body do what they are asked.
    const issued = await hub.request(`${thingPath(id)}/mqtt-credentials`, { method: "POST", ...empty });
    expect(issued.status).toBe(200);
    await issued.body?.cancel();
    const removed = await hub.request(thingPath(id), { method: "DELETE", ...empty });
    expect(removed.status).toBe(204);
    expect((await hub.request(thingPath(id))).status).toBe(404);
    // Routes that need one say so, and what to send.
    const put = await expectProblem(await hub.request(thingPath(id), { method: "PUT", ...empty }), 400);
    expect(put.detail).toBe(
      "The request has no body; send application/json or application/ld+json or application/td+json",
    );
  });

  it("refuses a body of only whitespace as no JSON value, with a 400 saying so and what to send instead", async () => {
    const id = "urn:example:edges:blank-body";
    await putTd(hub, minimalTd({ id }));
    // JSON-text is a value between optional whitespace (RFC 8259 §2): whitespace alone is a body,
    // and not JSON, where a body is due and where none is.
    for (const [method, body, type] of [
      ["PUT", " ", "application/td+json"],
      ["PUT", "\r\n\t ", "application/json"],
      ["PATCH", "\n", "application/merge-patch+json"],
      ["DELETE", " \n", "application/json"],
      ["POST", "  ", "application/json"],
    ] as const) {
      const path = method === "POST" ? `${thingPath(id)}/mqtt-credentials` : thingPath(id);
      const res = await hub.request(path, { method, headers: { "content-type": type }, body });
      const problem = await expectProblem(res, 400);
      expect(problem, `${method} ${JSON.stringify(body)}`).toMatchObject({
        type: "urn:hyperthings:problem:validation",
        detail: `The request body is only whitespace (${body.length} byte${body.length === 1 ? "" : "s"}), which is no JSON value: send one, or no body at all (Content-Length: 0)`,
        errors: [{ pointer: "", detail: "is only whitespace, not a JSON value" }],
      });
    }
    // A byte order mark alone is no whitespace, and no JSON either.
    const bom = await hub.request(thingPath(id), {
      method: "DELETE",
      headers: { "content-type": "application/json" },
      body: "\ufeff",
    });
    expect(await expectProblem(bom, 400)).toMatchObject({
      detail:
        "The request body is only a byte order mark (3 bytes), which is no JSON value: send one, or no body at all (Content-Length: 0)",
      errors: [{ pointer: "", detail: "is only a byte order mark, not a JSON value" }],
    });
    // Nothing was changed.
    const td = (await (await hub.request(thingPath(id))).json()) as { title: string };
    expect(td.title).toBe("Lamp");
  });

  it("answers Expect: 100-continue with 413 at once when Content-Length is past the limit, and 401 at once without a token", async () => {
    const id = "urn:example:edges:expect";
    const head = (length: number, token: string | undefined): string =>
      `PUT ${thingPath(id)} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n` +
      `${token === undefined ? "" : `Authorization: Bearer ${token}\r\n`}` +
      `Content-Length: ${length}\r\nExpect: 100-continue\r\n\r\n`;
    // Only the head is sent: the hub answers without waiting for a body it would refuse.
    const tooLarge = await rawRequest(hub.url, head(5_000_000, hub.token));
    expect(tooLarge).toMatch(/^HTTP\/1\.1 413 /);
    expect(tooLarge).not.toContain("100 Continue");
    expect(tooLarge).toContain('"type":"urn:hyperthings:problem:body-too-large"');
    expect(tooLarge).toMatch(/\r\nconnection: close\r\n/i);
    const anonymous = await rawRequest(hub.url, head(100, undefined));
    expect(anonymous).toMatch(/^HTTP\/1\.1 401 /);
    expect(anonymous).not.toContain("100 Continue");
    expect(anonymous).toMatch(/\r\nconnection: close\r\n/i);
    // Within the limit, with a token: 100 Continue, then the body, then its answer.
    const body = JSON.stringify(minimalTd({ id }));
    const answer = await rawRequest(hub.url, head(Buffer.byteLength(body), hub.token), (sofar) =>
      sofar.startsWith("HTTP/1.1 100 Continue\r\n\r\n") ? body : undefined,
    );
    expect(answer).toMatch(/^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 201 /);
    expect((await hub.request(thingPath(id))).status).toBe(200);
  });

  it("refuses an integer in any JSON body that a 64-bit float cannot hold as written with a 400 naming its pointer, not a rounded value recorded", async () => {
    const id = "urn:example:edges:big-integer";
    await putTd(
      hub,
      minimalTd({
        id,
        properties: { level: { forms: [{ href: "http://127.0.0.1:9/l" }] } },
      }),
    );
    const lastSeq = async (): Promise<number> =>
      ((await (await hub.request("/health")).json()) as { lastSeq: number }).lastSeq;
    const before = await lastSeq();
    const refusals: Array<[string, string, string, string, string, string]> = [
      [
        "POST",
        `${thingPath(id)}/changes`,
        "application/json",
        '[{"kind":"reported","affordance":"level","value":1},{"kind":"reported","affordance":"level","value":9007199254740993}]',
        // This route points into the body as sent, as its schema's errors do.
        "/1/value",
        "/body/1/value",
      ],
      [
        "PATCH",
        thingPath(id),
        "application/merge-patch+json",
        '{"properties":{"level":{"maximum":-12345678901234567890}}}',
        "/properties/level/maximum",
        "/properties/level/maximum",
      ],
      [
        "POST",
        "/graphql",
        "application/json",
        '{"query":"{ __typename }","variables":{"v":[9007199254740995]}}',
        "/variables/v/0",
        "/variables/v/0",
      ],
    ];
    for (const [method, path, type, body, pointer, errorPointer] of refusals) {
      const res = await hub.request(path, { method, headers: { "content-type": type }, body });
      const problem = await expectProblem(res, 400);
      const written = /-?\d{16,}/.exec(body)?.[0] ?? "";
      const message = `is ${written}, which a JSON number here (a 64-bit float) holds only as ${String(Number(written))}`;
      expect(problem, `${method} ${path}`).toMatchObject({
        type: "urn:hyperthings:problem:validation",
        detail: `The JSON at ${pointer} ${message}: send it as a string, or with an exponent to take the nearest float`,
        errors: [{ pointer: errorPointer, detail: message }],
      });
    }
    expect(await lastSeq()).toBe(before);
    // Held exactly (2^53), written as the hub writes its float back (12345678901234567000), or
    // written as a float: taken, as JSON.parse reads it.
    const taken = await hub.request(`${thingPath(id)}/changes`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body:
        '[{"kind":"reported","affordance":"level","value":-9007199254740991},{"kind":"reported","affordance":"level","value":9.007199254740993e15},{"kind":"reported","affordance":"level","value":"9007199254740993"},' +
        '{"kind":"reported","affordance":"level","value":9007199254740992},{"kind":"reported","affordance":"level","value":12345678901234567000}]',
    });
    expect(taken.status, await taken.clone().text()).toBe(201);
    const { seqs } = (await taken.json()) as { seqs: number[] };
    const values = await Promise.all(
      seqs.map(
        async (seq) => ((await (await hub.request(`/changes/${seq}`)).json()) as { value: unknown }).value,
      ),
    );
    expect(values).toEqual([
      -9007199254740991,
      9007199254740992,
      "9007199254740993",
      9007199254740992,
      12345678901234567000,
    ]);
  });

  it("refuses a request with no Host, several, or an empty one, and a * target but for OPTIONS, with a 400 problem naming it", async () => {
    const ask = (head: string) => rawRequest(hub.url, `${head}\r\nConnection: close\r\n\r\n`);
    const cases: Array<[string, string, string]> = [
      // RFC 9112 §3.2: a server MUST answer 400 to an HTTP/1.1 request without a Host, with
      // several, or with an invalid one. Node answered the first with an empty 400 and took the
      // first of several (a proxy may route by the last).
      [
        "GET /health HTTP/1.1",
        "/headers/host",
        "An HTTP/1.1 request names the hub in a Host header (RFC 9112 §3.2): this one has none",
      ],
      [
        "GET /health HTTP/1.1\r\nHost: localhost\r\nHost: other.example",
        "/headers/host",
        "The request has 2 Host headers; send one (RFC 9112 §3.2)",
      ],
      [
        "GET /things HTTP/1.1\r\nHost: ",
        "/headers/host",
        "The request's Host header is empty; name the hub in it (RFC 9112 §3.2)",
      ],
      // RFC 9112 §3.2.4: the asterisk-form is only for OPTIONS (GET * answered the web UI's page).
      [
        "GET * HTTP/1.1\r\nHost: localhost",
        "/target",
        "The request target * is only for OPTIONS (RFC 9112 §3.2.4), not GET: name a resource such as /things",
      ],
    ];
    for (const [head, pointer, detail] of cases) {
      const answer = await ask(head);
      expect(answer, head).toMatch(/^HTTP\/1\.1 400 /);
      expect(answer, head).toMatch(/\r\ncontent-type: application\/problem\+json/i);
      const problem = bodyOf(answer) as Problem & { errors: Array<{ pointer: string }> };
      expect(problem, head).toMatchObject({
        type: "urn:hyperthings:problem:validation",
        status: 400,
        detail,
      });
      expect(problem.errors, head).toEqual([{ pointer, detail: expect.any(String) as string }]);
    }
    // HTTP/1.0 needs no Host.
    expect(await rawRequest(hub.url, "GET /health HTTP/1.0\r\n\r\n")).toMatch(/^HTTP\/1\.1 200 /);
  });

  it("refuses a malformed WebSocket handshake with a problem document naming the header, not ws's text/html", async () => {
    const handshake = (method: string, headers: string) =>
      rawRequest(
        hub.url,
        `${method} /graphql HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n${headers}\r\n`,
      );
    const key = "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n";
    for (const [method, headers, status, pointer] of [
      ["GET", "", 400, "/headers/sec-websocket-key"],
      ["GET", "Sec-WebSocket-Key: short\r\nSec-WebSocket-Version: 13\r\n", 400, "/headers/sec-websocket-key"],
      ["GET", key, 400, "/headers/sec-websocket-version"],
      ["GET", `${key}Sec-WebSocket-Version: 12\r\n`, 400, "/headers/sec-websocket-version"],
      [
        "GET",
        `${key}Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: a b\r\n`,
        400,
        "/headers/sec-websocket-protocol",
      ],
      ["POST", `${key}Sec-WebSocket-Version: 13\r\n`, 405, undefined],
    ] as const) {
      const answer = await handshake(method, headers);
      expect(answer, headers).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
      expect(answer, headers).toMatch(/\r\ncontent-type: application\/problem\+json\r\n/i);
      const problem = bodyOf(answer) as Problem & { errors?: Array<{ pointer: string }> };
      expect(problem.status, headers).toBe(status);
      if (pointer !== undefined) expect(problem.errors?.[0]?.pointer, headers).toBe(pointer);
      else expect(answer).toMatch(/\r\nallow: GET\r\n/i);
      // RFC 6455 §4.4: a version the hub does not speak is answered with those it does.
      if (pointer === "/headers/sec-websocket-version")
        expect(answer).toMatch(/\r\nsec-websocket-version: 13, 8\r\n/i);
    }
  });

  it("checks the authority of an absolute-form target, not the Host it overrides, against DNS rebinding", async () => {
    // RFC 9112 §3.2.2: with an absolute-form target the server ignores Host and uses the target's.
    const ask = (target: string, host: string) =>
      rawRequest(hub.url, `GET ${target} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    const refused = await ask("http://evil.example/health", "localhost");
    expect(refused).toMatch(/^HTTP\/1\.1 421 /);
    expect((bodyOf(refused) as Problem).detail).toMatch(/not to "evil\.example"/);
    expect(await ask("http://localhost:1/health", "evil.example")).toMatch(/^HTTP\/1\.1 200 /);
  });

  it("answers HEAD on an event stream with its headers and closes the connection a client asked to close", async () => {
    for (const path of ["/events", "/changes/stream"]) {
      const { hostname, port } = new URL(hub.url);
      const socket = connect(Number(port), hostname, () =>
        socket.write(`HEAD ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`),
      );
      const closed = once(socket, "close");
      const head = await new Promise<string>((resolve) => {
        let text = "";
        socket.on("data", (chunk: Buffer) => {
          text += chunk.toString("latin1");
          if (text.includes("\r\n\r\n")) resolve(text);
        });
      });
      expect(head, path).toMatch(/^HTTP\/1\.1 200 /);
      expect(head, path).toMatch(/\r\ncontent-type: text\/event-stream/i);
      // Not the keep-alive the streams named whatever the client said: the socket was held open.
      expect(head, path).toMatch(/\r\nconnection: close\r\n/i);
      await closed;
    }
  });

  it("answers an Expect it does not meet with a 417 problem document", async () => {
    const answer = await rawRequest(
      hub.url,
      "POST /things HTTP/1.1\r\nHost: localhost\r\nExpect: 200-ok\r\nContent-Length: 2\r\nConnection: close\r\n\r\n",
    );
    expect(answer).toMatch(/^HTTP\/1\.1 417 /);
    expect(answer).toMatch(/\r\ncontent-type: application\/problem\+json/i);
    expect(bodyOf(answer)).toEqual({
      type: "urn:hyperthings:problem:request",
      title: "Expectation Failed",
      status: 417,
      detail: 'The hub meets no expectation but 100-continue, not "200-ok"',
      instance: "/things",
    });
  });

  it("says how many items a list must hold, and how many it held, not Ajv's 'must NOT have fewer than 1 items'", async () => {
    const id = "urn:example:edges:items";
    await putTd(hub, minimalTd({ id, properties: { p: { forms: [{ href: "http://127.0.0.1:9/p" }] } } }));
    const post = (body: string) =>
      hub.request(`${thingPath(id)}/changes`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
    const none = await expectProblem(await post("[]"), 400);
    expect(none).toMatchObject({
      detail: "Invalid body: body must hold at least 1 item, not 0",
      errors: [{ pointer: "/body", detail: "must hold at least 1 item, not 0" }],
    });
    const report = { kind: "reported", affordance: "p", value: 1 };
    const many = await expectProblem(await post(JSON.stringify(Array(10_001).fill(report))), 400);
    expect(many).toMatchObject({
      errors: [{ pointer: "/body", detail: "must hold at most 10000 items, not 10001" }],
    });
  });

  it("rolls out a release with every option at its default when the request has no body", async () => {
    // No such release: the answer says so, not that the request has no body.
    for (const init of [{}, { headers: { "content-type": "application/json" }, body: "" }]) {
      const res = await hub.request("/releases/sha256:none/rollouts", { method: "POST", ...init });
      const problem = await expectProblem(res, 404);
      expect(problem.type).toBe("urn:hyperthings:problem:not-found");
    }
  });

  it("patches a TD member named __proto__ as a member, as a PUT of the same TD stores it", async () => {
    const id = "urn:example:edges:proto";
    await putTd(hub, minimalTd({ id }));
    const patch = await hub.request(thingPath(id), {
      method: "PATCH",
      headers: { "content-type": "application/merge-patch+json" },
      body: '{"__proto__": {"title": "Not the title"}, "description": "patched"}',
    });
    expect(patch.status).toBe(204);
    const text = await (await hub.request(thingPath(id))).text();
    const td = JSON.parse(text) as Record<string, unknown>;
    expect(td.title).toBe("Lamp");
    expect(td.description).toBe("patched");
    expect(Object.hasOwn(td, "__proto__")).toBe(true);
    expect(text).toContain('"__proto__":{"title":"Not the title"}');
  });

  it("refuses an If-Match that holds no entity tag with a 400 naming it, not a 412 saying the TD changed", async () => {
    const id = "urn:example:edges:if-match";
    await putTd(hub, minimalTd({ id }));
    const tag = (await hub.request(thingPath(id))).headers.get("etag") ?? "";
    const bare = tag.replaceAll('"', "");
    for (const method of ["DELETE", "PATCH"]) {
      const res = await hub.request(thingPath(id), {
        method,
        headers: {
          "if-match": bare,
          ...(method === "PATCH" && { "content-type": "application/merge-patch+json" }),
        },
        ...(method === "PATCH" && { body: "{}" }),
      });
      const problem = await expectProblem(res, 400);
      expect(problem.detail).toBe(
        `If-Match takes * or the TD's ETag as the hub gave it, quotes included ("42"), not "${bare}"`,
      );
    }
    // Nothing was removed; the tag as given applies.
    const removed = await hub.request(thingPath(id), { method: "DELETE", headers: { "if-match": tag } });
    expect(removed.status).toBe(204);
  });

  it("answers a GET of a TD whose If-Match names another version with 412, as a write is answered", async () => {
    const id = "urn:example:edges:get-if-match";
    await putTd(hub, minimalTd({ id }));
    const tag = (await hub.request(thingPath(id))).headers.get("etag") ?? "";
    const stale = await hub.request(thingPath(id), { headers: { "if-match": '"999999"' } });
    expect((await expectProblem(stale, 412)).detail).toBe(
      `If-Match: the TD of ${id} is at ${tag}, not "999999"`,
    );
    // Weak tags never match strongly (RFC 9110 §8.8.3.2).
    await expectProblem(await hub.request(thingPath(id), { headers: { "if-match": `W/${tag}` } }), 412);
    for (const ifMatch of [tag, "*", `"1", ${tag}`]) {
      const res = await hub.request(thingPath(id), { headers: { "if-match": ifMatch } });
      expect(res.status, ifMatch).toBe(200);
      await res.body?.cancel();
    }
    await expectProblem(await hub.request(thingPath(id), { headers: { "if-match": "1" } }), 400);
  });
});

describe("values a client sent, quoted in an error", () => {
  let hub: TestHub;
  const id = "urn:example:echo";
  beforeAll(async () => {
    hub = await startTestHub();
    await putTd(hub, minimalTd({ id }));
  });
  afterAll(async () => {
    await hub.stop();
  });

  /** The problem for `res`, and the length of its whole body. */
  async function answer(
    res: Response,
    status: number,
  ): Promise<{ detail: string; instance: string; bytes: number }> {
    const text = await res.text();
    expect(res.status, text.slice(0, 300)).toBe(status);
    const problem = JSON.parse(text) as Problem & { instance: string };
    return { detail: problem.detail, instance: problem.instance, bytes: text.length };
  }

  it("are cut to their first 80 characters with their length, however long they were", async () => {
    const long = "b".repeat(2000);
    const head = "b".repeat(80);
    // An unknown affordance's name (the path takes up to 2,048 characters).
    const property = await answer(await hub.request(`${thingPath(id)}/properties/${long}`), 404);
    expect(property.detail).toBe(`Thing ${id} has no property "${head}…" (2,000 characters)`);
    // A bad item of a query parameter's list.
    const bad = "x".repeat(10_000);
    const seqs = await answer(await hub.request(`/log/proof/inclusions?seqs=1,${bad}`), 400);
    expect(seqs.detail).toMatch(
      new RegExp(`^seqs item 2 \\("${"x".repeat(80)}…" \\(10,000 characters\\)\\) must be `),
    );
    // A TD's id that is not the URL's (a TD's id is at most 2,048 characters).
    const huge = `urn:example:${"c".repeat(2000)}`;
    const td = await answer(
      await hub.request(thingPath(id), {
        method: "PUT",
        headers: { "content-type": "application/td+json" },
        body: JSON.stringify(minimalTd({ id: huge })),
      }),
      400,
    );
    expect(td.detail).toBe(
      `The TD's id (urn:example:${"c".repeat(68)}… (2,012 characters)) differs from the id in the URL (${id})`,
    );
    for (const { detail } of [property, seqs, td]) expect(detail.length).toBeLessThan(300);
    expect(td.bytes).toBeLessThan(1024);
  });

  it("and so is the problem's instance: a short target whole, a long query dropped, a long path cut", async () => {
    // A target of up to 1 KiB is the instance as sent, its query with it.
    const short = `/log/proof/inclusions?seqs=1,${"x".repeat(900)}`;
    expect((await answer(await hub.request(short), 400)).instance).toBe(short);
    // Past it, the path alone: the detail says what in the query was wrong.
    const query = await answer(await hub.request(`/log/proof/inclusions?seqs=1,${"x".repeat(10_000)}`), 400);
    expect(query.instance).toBe("/log/proof/inclusions");
    expect(query.detail).toMatch(/^seqs item 2 \("x{80}…" \(10,000 characters\)\) must be /);
    expect(query.bytes).toBeLessThan(1024);
    // A path that long is cut to its first 1,024 characters, never inside a %-escape nor a
    // character's UTF-8 bytes.
    const path = `${thingPath(id)}/properties/${"%C3%A9".repeat(340)}`;
    const cut = await answer(await hub.request(path), 404);
    expect(cut.instance.length).toBeLessThanOrEqual(1024);
    expect(cut.instance.length).toBeGreaterThan(1000);
    expect(path.startsWith(cut.instance)).toBe(true);
    expect(cut.instance).toMatch(/%C3%A9$/);
    expect(cut.detail).toBe(`Thing ${id} has no property "${"é".repeat(80)}…" (340 characters)`);
    expect(cut.bytes).toBeLessThan(2048);
  });

  it("and so are security definitions' names, the TD's and the one a client names", async () => {
    const secured = "urn:example:echo:secured";
    const long = "s".repeat(10_000);
    const definitions = Object.fromEntries(
      [long, "b1", "b2", "b3", "b4", "b5", "b6"].map((name) => [name, { scheme: "bearer" }]),
    );
    await putTd(hub, minimalTd({ id: secured, securityDefinitions: definitions, security: "b1" }));
    const put = (body: object) =>
      hub.request(`${thingPath(secured)}/credentials`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    const listed = `"${"s".repeat(80)}…" (10,000 characters), "b1", "b2", "b3", "b4" and 2 more`;
    // A name the TD does not have (up to 256 characters), among the TD's many, one of them long.
    const unknown = await answer(await put({ schemeName: "u".repeat(256), token: "t" }), 400);
    expect(unknown.detail).toBe(
      `${secured} has no security definition "${"u".repeat(80)}…" (256 characters) (it has ${listed})`,
    );
    // No name, and several definitions that take a token.
    const several = await answer(await put({ token: "t" }), 400);
    expect(several.detail).toBe(
      `${secured} has several security definitions that take a token (${listed}): name one`,
    );
    for (const { detail, bytes } of [unknown, several]) {
      expect(detail.length).toBeLessThan(400);
      expect(bytes).toBeLessThan(2048);
    }
  });

  it("and so are paths, media types and URI variables, wherever an error names them", async () => {
    const long = "z".repeat(10_000);
    const head = "z".repeat(80);
    const cases: Array<[string, Promise<Response>, number, string]> = [
      // A query parameter that is no URI variable of the affordance.
      [
        "uri variable",
        hub.request(`${thingPath(id)}/properties/p?${long}=1`),
        400,
        `The property "p" has no URI variable "${head}…" (10,000 characters) (it takes no URI variables): a query parameter here is one`,
      ],
      // A method a long Thing's URL does not take.
      [
        "405",
        hub.request(thingPath(`urn:${long.slice(0, 2000)}`), { method: "POST" }),
        405,
        `/things/urn:${"z".repeat(68)}… (2,012 characters) takes`,
      ],
      // A Content-Type the endpoint does not take, and a charset JSON is not in.
      [
        "415",
        hub.request(thingPath(id), {
          method: "PUT",
          headers: { "content-type": `text/${long}` },
          body: "{}",
        }),
        415,
        `The body's Content-Type, text/${"z".repeat(75)}… (10,005 characters), is not taken here`,
      ],
      [
        "charset",
        hub.request(thingPath(id), {
          method: "PUT",
          headers: { "content-type": `application/td+json; charset=${long}` },
          body: "{}",
        }),
        415,
        `A JSON body is UTF-8: charset=${head}… (10,000 characters) is not taken`,
      ],
      // A file of the web UI that is not there.
      [
        "ui",
        hub.request(`/ui/${long}`),
        404,
        `No such file of the web UI: /ui/${"z".repeat(76)}… (10,004 characters)`,
      ],
    ];
    for (const [what, request, status, start] of cases) {
      const { detail, bytes } = await answer(await request, status);
      expect(detail.startsWith(start), `${what}: ${detail.slice(0, 300)}`).toBe(true);
      expect(bytes, what).toBeLessThan(2048);
    }
    // A link the Thing does not have, to a long href.
    const link = await answer(
      await hub.request(`${thingPath(id)}/links?rel=${head}z&href=urn:${"z".repeat(2000)}`, {
        method: "DELETE",
      }),
      404,
    );
    expect(link.detail).toBe(
      `${id} has no ${head}… (81 characters) link to urn:${"z".repeat(76)}… (2,004 characters)`,
    );
    // A WebSocket asked for at a long path (the hub serves one only at /graphql).
    const refused = await rawRequest(
      hub.url,
      `GET /${long} HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n` +
        "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
    );
    expect(refused).toMatch(/^HTTP\/1\.1 404 /);
    expect((bodyOf(refused) as Problem).detail).toBe(
      `No WebSocket is served at /${"z".repeat(79)}… (10,001 characters): the hub's one socket is /graphql (GraphQL over graphql-transport-ws)`,
    );
    expect(refused.length).toBeLessThan(2048);
  });

  it("and so is a GraphQL operation's name", async () => {
    const name = "Op".repeat(5000);
    const head = `"${name.slice(0, 80)}…" (10,000 characters)`;
    /** The errors' messages for `body`, posted as GraphQL over HTTP. */
    async function messages(body: object): Promise<string[]> {
      const res = await hub.request("/graphql", {
        method: "POST",
        headers: { "content-type": "application/json", accept: "application/graphql-response+json" },
        body: JSON.stringify(body),
      });
      const text = await res.text();
      const { errors } = JSON.parse(text) as { errors?: Array<{ message: string }> };
      expect(errors, text.slice(0, 300)).toBeDefined();
      expect(text.length).toBeLessThan(2048);
      return (errors ?? []).map((e) => e.message);
    }
    // An operationName the document does not have.
    expect(await messages({ query: "query A { __typename }", operationName: name })).toEqual([
      `The document has no operation named ${head}`,
    ]);
    // graphql-js's own messages: a field, an argument and a value the schema does not have.
    const [field] = await messages({ query: `{ ${name} }` });
    expect(field).toBe(`Cannot query field ${head} on type "Query".`);
    const [argument] = await messages({ query: `{ thing(id: "x", ${name}: 1) { id } }` });
    expect(argument).toBe(`Unknown argument ${head} on field "Query.thing".`);
    // An operation too deep, named at length.
    const deep = `query ${name} { thing(id: "${id}") { ${"links { target { ".repeat(7)}id${" } }".repeat(7)} } }`;
    const [depth] = await messages({ query: deep, operationName: name });
    expect(depth).toMatch(new RegExp(`^Operation ${head.replace(/[()]/g, "\\$&")} is \\d+ levels deep`));
  });
});
