// Every bad input to the directory API gets an RFC 9457 problem document with the right status,
// a precise detail and, where it helps, JSON pointers; and nothing is stored. Also who may do what.
import { request as httpRequest } from "node:http";
import { connect } from "node:net";
import { hostname } from "node:os";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { machineNames } from "../src/api/http/host-check.js";
import { thingPath } from "../src/api/index.js";
import { minimalTd, startTestHub, type TestHub } from "./support/test-hub.js";

interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  errors?: Array<{ pointer: string; detail: string }>;
}

const READ_TOKEN = "reader-token-0123456789";

async function expectProblem(res: Response, status: number): Promise<Problem> {
  expect(res.status).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json\b/);
  const problem = (await res.json()) as Problem;
  expect(typeof problem.type).toBe("string");
  expect(problem.type.length).toBeGreaterThan(0);
  expect(typeof problem.title).toBe("string");
  expect(problem.status).toBe(status);
  expect(typeof problem.detail).toBe("string");
  expect(problem.detail.length).toBeGreaterThan(0);
  return problem;
}

function pointersOf(problem: Problem): string[] {
  return (problem.errors ?? []).map((e) => e.pointer);
}

async function health(hub: TestHub): Promise<{ things: number; lastSeq: number }> {
  const res = await hub.request("/health", { auth: false });
  return (await res.json()) as { things: number; lastSeq: number };
}

/** Every TD in the directory as it stands, without the time of retrieval. */
async function snapshot(hub: TestHub): Promise<unknown[]> {
  const tds = (await (await hub.request("/things?limit=1000")).json()) as Array<{
    registration?: { retrieved?: string };
  }>;
  for (const td of tds) delete td.registration?.retrieved;
  return tds;
}

/** Runs `attempt` and checks that the directory and its Log are exactly as before. */
async function expectNothingStored(
  hub: TestHub,
  attempt: () => Promise<void>,
  ids: string[] = [],
): Promise<void> {
  const before = await health(hub);
  const listBefore = await snapshot(hub);
  await attempt();
  expect(await health(hub)).toEqual(before);
  expect(await snapshot(hub)).toEqual(listBefore);
  for (const id of ids) expect((await hub.request(thingPath(id))).status).toBe(404);
}

function putRaw(
  hub: TestHub,
  path: string,
  body: string,
  contentType = "application/td+json",
  auth?: string | boolean,
) {
  return hub.request(path, {
    method: "PUT",
    headers: { "content-type": contentType },
    body,
    ...(auth !== undefined && { auth }),
  });
}

describe("bad input to the directory", () => {
  let hub: TestHub;
  const existing = "urn:example:errors:existing";

  beforeAll(async () => {
    hub = await startTestHub();
    const res = await putRaw(hub, thingPath(existing), JSON.stringify(minimalTd({ id: existing })));
    expect(res.status).toBe(201);
  });
  afterAll(async () => {
    await hub.stop();
  });

  it.each([
    ["malformed JSON", '{"title": "Lamp",', /Malformed JSON at line 1, column \d+/],
    ["JSON with a duplicate member name", '{"title": "a", "title": "b"}', /duplicate member names.*"title"/],
    ["an empty body", "", /no body/],
    ["a JSON array", "[]", /TD 1\.1|object/],
    ["a JSON string", '"lamp"', /TD 1\.1|object/],
  ])("refuses %s with 400 and stores nothing", async (_what, body, detail) => {
    const id = "urn:example:errors:malformed";
    await expectNothingStored(hub, async () => {
      const problem = await expectProblem(await putRaw(hub, thingPath(id), body), 400);
      expect(problem.detail).toMatch(detail);
    }, [id]);
  });

  it("names the duplicate member by its pointer", async () => {
    const body =
      '{"@context": "https://www.w3.org/2022/wot/td/v1.1", "title": "x", "securityDefinitions": {"a": {"scheme": "nosec"}, "a": {"scheme": "basic"}}, "security": "a"}';
    const problem = await expectProblem(await putRaw(hub, thingPath("urn:example:errors:dup"), body), 400);
    expect(pointersOf(problem)).toContain("/securityDefinitions");
  });

  it.each([
    ["a title that is not a string", "/title", { title: 42 }],
    [
      "an unknown data schema type",
      "/properties/t/type",
      { properties: { t: { type: "float", forms: [{ href: "http://x.example/t" }] } } },
    ],
    ["a property without forms", "/properties/t", { properties: { t: { type: "number" } } }],
    ["security naming no definition", "/security", { security: "nope_sc" }],
    ["a form without href", "/actions/go/forms/0", { actions: { go: { forms: [{ op: "invokeaction" }] } } }],
  ])("refuses a TD with %s (400, pointer %s) and stores nothing", async (_what, pointer, overrides) => {
    const id = "urn:example:errors:invalid-td";
    await expectNothingStored(hub, async () => {
      const body = JSON.stringify(minimalTd({ id, ...overrides }));
      const problem = await expectProblem(await putRaw(hub, thingPath(id), body), 400);
      expect(pointersOf(problem)).toContain(pointer);
      expect(problem.detail).toContain(pointer);
    }, [id]);
  });

  it("refuses a TD without a title (400, pointer to the object missing it)", async () => {
    const id = "urn:example:errors:untitled";
    await expectNothingStored(hub, async () => {
      const td = minimalTd({ id });
      delete td.title;
      const problem = await expectProblem(await putRaw(hub, thingPath(id), JSON.stringify(td)), 400);
      expect(problem.detail).toMatch(/title/);
      expect(pointersOf(problem)).toContain("");
    }, [id]);
  });

  it("refuses a TD whose id differs from the URL (400, pointer /id) and stores neither", async () => {
    const urlId = "urn:example:errors:url-id";
    const bodyId = "urn:example:errors:body-id";
    await expectNothingStored(hub, async () => {
      const problem = await expectProblem(
        await putRaw(hub, thingPath(urlId), JSON.stringify(minimalTd({ id: bodyId }))),
        400,
      );
      expect(problem.detail).toContain(urlId);
      expect(problem.detail).toContain(bodyId);
      expect(pointersOf(problem)).toEqual(["/id"]);
    }, [urlId, bodyId]);
  });

  it("refuses a merge patch that changes the id, and leaves the TD as it was", async () => {
    const before = await (await hub.request(thingPath(existing))).json();
    await expectNothingStored(hub, async () => {
      const res = await hub.request(thingPath(existing), {
        method: "PATCH",
        headers: { "content-type": "application/merge-patch+json" },
        body: JSON.stringify({ id: "urn:example:errors:other" }),
      });
      expect(pointersOf(await expectProblem(res, 400))).toContain("/id");
    });
    const after = (await (await hub.request(thingPath(existing))).json()) as Record<string, unknown>;
    delete (before as Record<string, unknown>).registration;
    delete after.registration;
    expect(after).toEqual(before);
  });

  it("refuses a merge patch whose result is not a valid TD (removing the title), and leaves the TD as it was", async () => {
    await expectNothingStored(hub, async () => {
      const res = await hub.request(thingPath(existing), {
        method: "PATCH",
        headers: { "content-type": "application/merge-patch+json" },
        body: JSON.stringify({ title: null }),
      });
      expect((await expectProblem(res, 400)).detail).toMatch(/title/);
    });
    expect(((await (await hub.request(thingPath(existing))).json()) as { title: string }).title).toBe("Lamp");
  });

  it("refuses a merge patch that is not a JSON object (400)", async () => {
    await expectNothingStored(hub, async () => {
      const res = await hub.request(thingPath(existing), {
        method: "PATCH",
        headers: { "content-type": "application/merge-patch+json" },
        body: "[1, 2]",
      });
      await expectProblem(res, 400);
    });
  });

  it("answers a merge patch of an unknown Thing with 404 and creates nothing", async () => {
    const id = "urn:example:errors:unknown";
    await expectNothingStored(hub, async () => {
      const res = await hub.request(thingPath(id), {
        method: "PATCH",
        headers: { "content-type": "application/merge-patch+json" },
        body: JSON.stringify({ title: "x" }),
      });
      expect((await expectProblem(res, 404)).detail).toContain(id);
    }, [id]);
  });

  it("answers DELETE of an unknown Thing with 404", async () => {
    await expectNothingStored(hub, async () => {
      const res = await hub.request(thingPath("urn:example:errors:never"), { method: "DELETE" });
      expect((await expectProblem(res, 404)).detail).toContain("urn:example:errors:never");
    });
  });

  it.each([
    ["text/plain", "PUT"],
    ["application/xml", "PUT"],
    ["application/x-www-form-urlencoded", "POST"],
    ["text/plain", "PATCH"],
    // WoT Discovery §7.3.2.1.3: a merge patch is application/merge-patch+json; plain JSON names no patch format.
    ["application/json", "PATCH"],
    ["application/td+json", "PATCH"],
  ])("refuses a body of type %s on %s with 415", async (contentType, method) => {
    const id = "urn:example:errors:media";
    await expectNothingStored(hub, async () => {
      const path = method === "POST" ? "/things" : thingPath(method === "PATCH" ? existing : id);
      const res = await hub.request(path, {
        method,
        headers: { "content-type": contentType },
        body: JSON.stringify(minimalTd()),
      });
      const problem = await expectProblem(res, 415);
      expect(problem.detail).toMatch(
        method === "PATCH" ? /send application\/merge-patch\+json$/ : /application\/td\+json$/,
      );
      // It names the type it refused, not only those it takes.
      expect(problem.detail).toMatch(
        new RegExp(`^The body's Content-Type, ${contentType.replace(/[+/]/g, "\\$&")}\\b`),
      );
      // RFC 5789 §2.2: the refusal of a patch document names the types the resource takes.
      expect(res.headers.get("accept-patch")).toBe(
        method === "PATCH" ? "application/merge-patch+json" : null,
      );
    }, [id]);
  });

  it("says what was wrong with the Content-Type: none at all, or curl -d's form type", async () => {
    const id = "urn:example:errors:media-named";
    await expectNothingStored(hub, async () => {
      // A byte array gets no Content-Type from fetch.
      const none = await hub.request(thingPath(id), {
        method: "PUT",
        body: new TextEncoder().encode(JSON.stringify(minimalTd({ id }))),
      });
      expect((await expectProblem(none, 415)).detail).toBe(
        "The request has a body but no Content-Type; send application/json or application/ld+json or application/td+json",
      );
      const form = await hub.request(thingPath(id), {
        method: "PUT",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: JSON.stringify(minimalTd({ id })),
      });
      expect((await expectProblem(form, 415)).detail).toBe(
        "The body's Content-Type, application/x-www-form-urlencoded (what curl -d sends unless given -H 'Content-Type: application/json'), is not taken here; send application/json or application/ld+json or application/td+json",
      );
    }, [id]);
  });

  it("names an unknown query parameter of an endpoint that takes none, and says it takes none", async () => {
    const problem = await expectProblem(await hub.request("/graph/summary?fields=id"), 400);
    expect(problem.detail).toBe('Invalid query: query has no parameter "fields" (it takes none)');
  });

  it("refuses a query parameter on every endpoint that reads none, instead of ignoring it, and changes nothing", async () => {
    const none = 'Invalid query: query has no parameter "dryRun" (it takes none)';
    const seq = (await health(hub)).lastSeq;
    await expectNothingStored(hub, async () => {
      for (const [method, path] of [
        ["GET", thingPath(existing)],
        ["DELETE", thingPath(existing)],
        ["GET", `/changes/${seq}`],
        ["GET", `/changes/${seq}/why`],
        ["GET", "/log/key"],
        ["GET", "/log/checkpoint"],
        ["GET", `${thingPath(existing)}/proxy`],
        ["GET", `${thingPath(existing)}/credentials`],
        ["POST", `${thingPath(existing)}/mqtt-credentials`],
        ["GET", "/mqtt-credentials"],
        ["GET", "/.well-known/wot"],
        ["GET", "/health"],
      ] as const) {
        const problem = await expectProblem(await hub.request(`${path}?dryRun=true`, { method }), 400);
        expect(problem.detail, `${method} ${path}`).toBe(none);
        expect(pointersOf(problem)).toEqual(["/query"]);
      }
    });
    // The web UI's page takes any query (links to it may carry one), and a property's query is its
    // URI variables, checked against its TD.
    expect((await hub.request("/?tab=graph", { auth: false })).status).not.toBe(400);
  });

  it("names a query parameter given twice, instead of saying it must be an integer or a string", async () => {
    for (const [path, name, times] of [
      ["/things?limit=1&limit=2", "limit", 2],
      ["/changes?thing=urn:a&thing=urn:b", "thing", 2],
      ["/changes?kind=reported&kind=desired&kind=invoked", "kind", 3],
      ["/log/proof/inclusions?seqs=1&seqs=2", "seqs", 2],
    ] as const) {
      const problem = await expectProblem(await hub.request(path), 400);
      const list = name === "kind" || name === "seqs" ? " (a list is separated by commas)" : "";
      expect(problem.detail, path).toBe(
        `Invalid query: query/${name} is given ${times} times: give it once${list}`,
      );
      expect(pointersOf(problem)).toEqual([`/query/${name}`]);
    }
    // A parameter that takes several, takes them.
    const res = await hub.request("/changes/stream?match=kind%3Dreported&match=kind%3Ddesired", {
      signal: AbortSignal.timeout(5_000),
    });
    expect(res.status).toBe(200);
    await res.body?.cancel();
  });

  it("names the members a body must have one of, not 'must NOT have fewer than 1 properties'", async () => {
    for (const [body, detail] of [
      ["{}", 'Invalid body: body must have one of "homie", "homeassistant"'],
      [
        '{"homie": "a", "homeassistant": "b"}',
        'Invalid body: body must have only one of "homie", "homeassistant", not 2',
      ],
    ] as const) {
      const res = await hub.request("/mqtt-credentials", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      const problem = await expectProblem(res, 400);
      expect(problem.detail, body).toBe(detail);
      expect(pointersOf(problem)).toEqual(["/body"]);
    }
  });

  it("says a body of neither type a route takes must be one of them, once, without 'oneOf'", async () => {
    await expectNothingStored(hub, async () => {
      for (const body of ["123", '"on"', "null"]) {
        const res = await hub.request(`${thingPath(existing)}/changes`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
        });
        const problem = await expectProblem(res, 400);
        expect(problem.detail, body).toBe("Invalid body: body must be object or array");
        expect(pointersOf(problem)).toEqual(["/body"]);
      }
    });
  });

  it("refuses a body on an endpoint that reads none, instead of ignoring it and going ahead", async () => {
    await expectNothingStored(hub, async () => {
      for (const [method, path, route] of [
        ["POST", `${thingPath(existing)}/mqtt-credentials`, "POST /things/{id}/mqtt-credentials"],
        ["DELETE", thingPath(existing), "DELETE /things/{id}"],
        ["DELETE", `${thingPath(existing)}/credentials`, "DELETE /things/{id}/credentials"],
        ["DELETE", `${thingPath(existing)}/links?rel=controls`, "DELETE /things/{id}/links"],
        ["DELETE", "/mqtt-credentials/homie:boiler", "DELETE /mqtt-credentials/{username}"],
        ["POST", "/rollouts/r1/cancel", "POST /rollouts/{id}/cancel"],
      ] as const) {
        // {"homie": …} is what POST /mqtt-credentials takes: here it issued the Thing's instead.
        const res = await hub.request(path, {
          method,
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ homie: "boiler" }),
        });
        const problem = await expectProblem(res, 400);
        expect(problem.detail, `${method} ${path}`).toBe(`${route} takes no body: send it without one`);
        expect(pointersOf(problem)).toEqual(["/body"]);
      }
    });
    expect((await hub.request(thingPath(existing))).status).toBe(200);
    // An empty object says nothing that could be ignored: taken as no body.
    const empty = await hub.request("/rollouts/r1/cancel", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect((await expectProblem(empty, 404)).detail).toBe("No rollout r1");
  });

  it("answers a PUT or PATCH without a body with 400 saying so, not with a schema's words", async () => {
    const id = "urn:example:errors:no-body";
    await expectNothingStored(hub, async () => {
      const put = await expectProblem(await hub.request(thingPath(id), { method: "PUT" }), 400);
      expect(put.detail).toBe(
        "The request has no body; send application/json or application/ld+json or application/td+json",
      );
      const patch = await expectProblem(await hub.request(thingPath(existing), { method: "PATCH" }), 400);
      expect(patch.detail).toBe("The request has no body; send application/merge-patch+json");
    }, [id]);
  });

  it("answers a method a resource does not take with 405 and Allow, and an unknown path with 404", async () => {
    for (const [method, path, allow] of [
      ["DELETE", "/changes/1", "GET, HEAD, OPTIONS"],
      ["PUT", "/log/checkpoint", "GET, HEAD, OPTIONS"],
      ["POST", thingPath(existing), "DELETE, GET, HEAD, OPTIONS, PATCH, PUT"],
    ] as const) {
      const res = await hub.request(path, { method });
      expect(res.headers.get("allow"), `${method} ${path}`).toBe(allow);
      const problem = await expectProblem(res, 405);
      expect(problem.detail).toBe(`${path} takes ${allow}, not ${method}`);
    }
    const unknown = await expectProblem(await hub.request("/no/such/path", { method: "DELETE" }), 404);
    expect(unknown.detail).toBe("No such resource: DELETE /no/such/path");
    // Without a token too: no token would make such a request anything but a 405 or a 404.
    const anonymous = await hub.request("/changes/1", { method: "DELETE", auth: false });
    expect(anonymous.headers.get("allow")).toBe("GET, HEAD, OPTIONS");
    await expectProblem(anonymous, 405);
    await expectProblem(await hub.request("/no/such/path", { method: "DELETE", auth: false }), 404);
    // A method the path takes still needs its token.
    await expectProblem(await hub.request(thingPath(existing), { method: "DELETE", auth: false }), 401);
  });

  it("answers a request Node's HTTP parser refuses (headers past 16 KiB, bytes that are not HTTP) with a problem document", async () => {
    const id = `urn:example:errors:${"x".repeat(20_000)}`;
    const tooLong = await expectProblem(await hub.request(thingPath(id)), 431);
    expect(tooLong).toMatchObject({
      type: "urn:hyperthings:problem:request",
      detail: "The request's line and headers together are larger than the hub takes (16 KiB)",
    });

    const { port } = new URL(hub.url);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), "127.0.0.1", () => socket.write("NOT HTTP AT ALL\r\n\r\n"));
      let text = "";
      socket.on("data", (chunk: Buffer) => (text += chunk.toString()));
      socket.on("close", () => resolve(text));
      socket.on("error", reject);
    });
    const [head = "", body = ""] = answer.split("\r\n\r\n");
    expect(head).toMatch(/^HTTP\/1\.1 400 Bad Request\r\n/);
    expect(head).toMatch(/\r\nContent-Type: application\/problem\+json\r\n/);
    expect(JSON.parse(body)).toMatchObject({ type: "urn:hyperthings:problem:request", status: 400 });
  });

  it("refuses a body over the default 1 MiB limit with 413", async () => {
    const id = "urn:example:errors:huge";
    await expectNothingStored(hub, async () => {
      const body = JSON.stringify(minimalTd({ id, description: "x".repeat(1024 * 1024) }));
      await expectProblem(await putRaw(hub, thingPath(id), body), 413);
    }, [id]);
  });

  it.each([
    ["limit=0", "/query/limit"],
    ["limit=-1", "/query/limit"],
    ["limit=abc", "/query/limit"],
    ["limit=1.5", "/query/limit"],
    ["limit=1001", "/query/limit"],
    ["offset=-1", "/query/offset"],
    ["offset=ten", "/query/offset"],
    ["format=xml", "/query/format"],
    ["sort=id", "/query"],
  ])("refuses the listing parameter %s with 400 and pointer %s", async (query, pointer) => {
    const problem = await expectProblem(await hub.request(`/things?${query}`), 400);
    expect(pointersOf(problem)).toContain(pointer);
  });

  it.each([
    ["an unclosed bracket", "$[", "/query"],
    ["a filter without an operand", "$[?@.title==]", "/query"],
    ["a path that does not start with $", "title", "/query"],
    ["a function that does not exist", "$[?nope(@.title)]", "/query"],
  ])("refuses a JSONPath with %s: %s (400, pointer %s)", async (_what, query, pointer) => {
    const res = await hub.request(`/search/jsonpath?query=${encodeURIComponent(query)}`);
    const problem = await expectProblem(res, 400);
    expect(pointersOf(problem)).toContain(pointer);
  });

  it("refuses a search without a query, and with an empty one, with 400", async () => {
    const missing = await expectProblem(await hub.request("/search/jsonpath"), 400);
    expect(missing.detail).toMatch(/query/);
    const empty = await expectProblem(await hub.request("/search/jsonpath?query="), 400);
    expect(empty.detail).toMatch(/empty/);
  });

  it.each([
    ["no scheme", "lamp", /scheme/],
    ["a space", "urn:example:a lamp", /space/],
    ["a broken percent escape", "urn:example:100%", /%/],
    ["a character IRIs forbid", "urn:example:<lamp>", /<>/],
  ])(
    "refuses a path id with %s (400, pointer /id) on PUT, GET, PATCH and DELETE",
    async (_what, id, detail) => {
      await expectNothingStored(hub, async () => {
        const body = JSON.stringify(minimalTd());
        for (const init of [
          { method: "PUT", headers: { "content-type": "application/td+json" }, body },
          { method: "GET" },
          {
            method: "PATCH",
            headers: { "content-type": "application/merge-patch+json" },
            body: '{"title":"x"}',
          },
          { method: "DELETE" },
        ]) {
          const res = await hub.request(thingPath(id), init);
          const problem = await expectProblem(res, 400);
          expect(problem.detail, init.method).toMatch(detail);
          expect(pointersOf(problem), init.method).toEqual(["/id"]);
        }
      });
    },
  );

  it.each([
    ["a % not followed by two hex digits", "/things/urn:example:100%"],
    ["an invalid escape", "/things/urn:example:%zz"],
    ["a truncated UTF-8 escape", "/things/urn:example:%E0%A4%A"],
  ])("answers a URL whose path has %s with a 400 problem", async (_what, path) => {
    await expectNothingStored(hub, async () => {
      await expectProblem(await hub.request(path), 400);
      await expectProblem(await putRaw(hub, path, JSON.stringify(minimalTd())), 400);
    });
  });

  it("refuses /things/ without an id with 400", async () => {
    await expectNothingStored(hub, async () => {
      await expectProblem(await hub.request("/things/"), 400);
      await expectProblem(await putRaw(hub, "/things/", JSON.stringify(minimalTd())), 400);
    });
  });

  it.each([
    ["ttl 0", "/registration/ttl", { ttl: 0 }],
    ["a negative ttl", "/registration/ttl", { ttl: -5 }],
    ["a fractional ttl", "/registration/ttl", { ttl: 1.5 }],
    ["a ttl given as text", "/registration/ttl", { ttl: "60" }],
    ["an expiry that is not a date", "/registration/expires", { expires: "tomorrow" }],
    ["an expiry in the past", "/registration/expires", { expires: "2001-01-01T00:00:00Z" }],
    // Date.parse takes each of these, as some other time than the registrant may have meant.
    ["an expiry in words", "/registration/expires", { expires: "Jan 1 2031" }],
    ["an expiry that is a year alone", "/registration/expires", { expires: "5000" }],
    ["an expiry that is a date alone", "/registration/expires", { expires: "2031-01-01" }],
    ["an expiry without a time zone", "/registration/expires", { expires: "2031-01-01T00:00:00" }],
    ["an expiry on a day the calendar has not", "/registration/expires", { expires: "2031-02-30T00:00:00Z" }],
  ])("refuses registration information with %s (400, pointer %s)", async (_what, pointer, registration) => {
    const id = "urn:example:errors:registration";
    await expectNothingStored(hub, async () => {
      const body = JSON.stringify(minimalTd({ id, registration }));
      const problem = await expectProblem(await putRaw(hub, thingPath(id), body), 400);
      expect(pointersOf(problem)).toContain(pointer);
    }, [id]);
  });

  it("answers an unknown route with a 404 problem", async () => {
    const problem = await expectProblem(await hub.request("/nothing-here"), 404);
    expect(problem.detail).toContain("/nothing-here");
  });
});

describe("body size limit", () => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub({ bodyLimit: 4096 });
  });
  afterAll(async () => {
    await hub.stop();
  });

  it("follows the bodyLimit setting: accepts a body under it and refuses one over it with 413", async () => {
    const small = "urn:example:limit:small";
    const big = "urn:example:limit:big";
    const smallBody = JSON.stringify(minimalTd({ id: small, description: "x".repeat(3000) }));
    const bigBody = JSON.stringify(minimalTd({ id: big, description: "x".repeat(5000) }));
    expect(Buffer.byteLength(smallBody)).toBeLessThan(4096);
    expect((await putRaw(hub, thingPath(small), smallBody)).status).toBe(201);
    await expectNothingStored(hub, async () => {
      const problem = await expectProblem(await putRaw(hub, thingPath(big), bigBody), 413);
      expect(problem.detail.length).toBeGreaterThan(0);
    }, [big]);
  });
});

/** A GET with this Host header (fetch does not let one set it): its status and body. */
const getWithHost = (hub: TestHub, path: string, host: string) =>
  new Promise<{ status: number; body: string }>((resolve, reject) => {
    const request = httpRequest(`${hub.url}${path}`, { headers: { host } }, (response) => {
      let body = "";
      response.on("data", (chunk: Buffer) => (body += chunk.toString()));
      response.on("end", () => resolve({ status: response.statusCode ?? 0, body }));
    });
    request.on("error", reject);
    request.end();
  });

describe("a request that names another host (DNS rebinding)", () => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub({ allowedHosts: "hub.example.com" });
  });
  afterAll(async () => hub.stop());

  it("refuses, on a hub listening on 127.0.0.1, a Host that is not this machine's nor allowed", async () => {
    const { port } = new URL(hub.url);
    // A page of rebind.evil.example whose name now resolves to 127.0.0.1 would read all of it.
    for (const path of ["/things", "/changes", "/", "/health"]) {
      const refused = await getWithHost(hub, path, `rebind.evil.example:${port}`);
      expect(refused.status).toBe(421);
      expect((JSON.parse(refused.body) as Problem).detail).toContain(
        '"rebind.evil.example" (a web page may have made that name resolve to the hub\'s address)',
      );
    }
    for (const host of [
      `127.0.0.1:${port}`,
      `localhost:${port}`,
      `[::1]:${port}`,
      "hub.example.com",
      "HUB.example.com:443",
      "ui.localhost",
    ]) {
      expect((await getWithHost(hub, "/things", host)).status).toBe(200);
    }
  });
});

describe("a hub listening on every address (0.0.0.0), reached by a rebound name", () => {
  let hub: TestHub;
  afterEach(async () => hub?.stop());

  it("answers 421 to a Host that is none of its names, whatever address it listens on", async () => {
    hub = await startTestHub({ host: "0.0.0.0", allowedHosts: "hub.example.com,.fleet.example" });
    const { port } = new URL(hub.url);
    // A LAN hub on 192.168.1.10: a page of rebind.evil.example made to resolve there reads it.
    for (const path of ["/things", "/health", "/"]) {
      const refused = await getWithHost(hub, path, `rebind.evil.example:${port}`);
      expect(refused.status, path).toBe(421);
      const problem = JSON.parse(refused.body) as Problem;
      expect(problem.type).toMatch(/misdirected-request$/);
      expect(problem.title).toBe("Misdirected request");
      expect(problem.detail).toContain(
        `This hub answers to its names (localhost, hub.example.com, .fleet.example, ${machineNames().join(", ")}) ` +
          'and IP addresses, not to "rebind.evil.example"',
      );
    }
    for (const host of [
      `127.0.0.1:${port}`,
      `192.168.1.10:${port}`,
      `[fe80::1]:${port}`,
      "hub.example.com",
      "fleet.example",
      "hub-2.fleet.example:8080",
      hostname(),
      `${hostname().split(".")[0] ?? ""}.local`,
    ]) {
      expect((await getWithHost(hub, "/things", host)).status, host).toBe(200);
    }
    expect((await getWithHost(hub, "/things", "evilfleet.example")).status).toBe(421);
  });

  it("answers any name with --allowed-hosts '*' (a proxy in front checks Host)", async () => {
    hub = await startTestHub({ host: "0.0.0.0", allowedHosts: "*" });
    expect((await getWithHost(hub, "/things", "anything.example")).status).toBe(200);
  });
});

describe("a client that sends its request slowly", () => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub({ requestTimeoutMs: 500 });
  });
  afterAll(async () => hub.stop());

  it("gets 408 and its connection closed when its body does not arrive in requestTimeoutMs, however it trickles", async () => {
    const id = "urn:example:errors:slow";
    const { port } = new URL(hub.url);
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = connect(Number(port), "127.0.0.1", () =>
        socket.write(
          `PUT ${thingPath(id)} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/td+json\r\n` +
            `Authorization: Bearer ${hub.token}\r\nContent-Length: 100000\r\n\r\n{`,
        ),
      );
      // One byte every 50 ms, so that the connection is never idle; bounded, never hangs.
      let sent = 0;
      const trickle = setInterval(() => {
        if (++sent > 600) socket.destroy(new Error("the hub held the slow request for 30 s"));
        else if (socket.writable) socket.write(" ");
      }, 50);
      let text = "";
      socket.on("data", (chunk: Buffer) => (text += chunk.toString()));
      socket.on("close", () => {
        clearInterval(trickle);
        resolve(text);
      });
      socket.on("error", (error) => {
        clearInterval(trickle);
        if (text === "") reject(error);
      });
    });
    const [head = "", body = ""] = answer.split("\r\n\r\n");
    expect(head).toMatch(/^HTTP\/1\.1 408 Request Timeout\r\n/);
    expect(JSON.parse(body)).toMatchObject({ type: "urn:hyperthings:problem:request", status: 408 });
    expect((await hub.request(thingPath(id))).status).toBe(404);
  });
});

describe("authorization", () => {
  let hub: TestHub;
  const id = "urn:example:auth:lamp";
  beforeAll(async () => {
    hub = await startTestHub({}, { HYPERTHINGS_READ_TOKEN: READ_TOKEN });
    expect((await putRaw(hub, thingPath(id), JSON.stringify(minimalTd({ id })))).status).toBe(201);
  });
  afterAll(async () => {
    await hub.stop();
  });

  const mutations = (target: string): Array<[string, RequestInit]> => [
    [
      "PUT",
      {
        method: "PUT",
        headers: { "content-type": "application/td+json" },
        body: JSON.stringify(minimalTd({ id: target })),
      },
    ],
    [
      "POST",
      {
        method: "POST",
        headers: { "content-type": "application/td+json" },
        body: JSON.stringify(minimalTd()),
      },
    ],
    [
      "PATCH",
      { method: "PATCH", headers: { "content-type": "application/merge-patch+json" }, body: '{"title":"x"}' },
    ],
    ["DELETE", { method: "DELETE" }],
  ];

  function pathFor(method: string): string {
    return method === "POST" ? "/things" : thingPath(id);
  }

  it("answers every mutation without a token with 401 and WWW-Authenticate: Bearer, and changes nothing", async () => {
    await expectNothingStored(hub, async () => {
      for (const [method, init] of mutations(id)) {
        const res = await hub.request(pathFor(method), { ...init, auth: false });
        expect(res.headers.get("www-authenticate"), method).toMatch(/^Bearer\b/);
        await expectProblem(res, 401);
      }
    });
  });

  it("answers a wrong token with 401, on mutations and on reads", async () => {
    await expectNothingStored(hub, async () => {
      for (const [method, init] of mutations(id)) {
        const res = await hub.request(pathFor(method), { ...init, auth: "not-a-token-of-this-hub" });
        expect(res.headers.get("www-authenticate"), method).toMatch(/^Bearer\b/);
        await expectProblem(res, 401);
      }
      await expectProblem(await hub.request(thingPath(id), { auth: "not-a-token-of-this-hub" }), 401);
    });
  });

  it("answers an Authorization header that is not Bearer with 401", async () => {
    const res = await hub.request(thingPath(id), {
      method: "DELETE",
      auth: false,
      headers: { authorization: "Basic YWRtaW46YWRtaW4=" },
    });
    await expectProblem(res, 401);
    expect((await hub.request(thingPath(id))).status).toBe(200);
  });

  it("lets the read token read but answers its mutations with 403", async () => {
    expect((await hub.request(thingPath(id), { auth: READ_TOKEN })).status).toBe(200);
    expect((await hub.request("/things", { auth: READ_TOKEN })).status).toBe(200);
    await expectNothingStored(hub, async () => {
      for (const [method, init] of mutations("urn:example:auth:by-reader")) {
        const path = method === "PUT" ? thingPath("urn:example:auth:by-reader") : pathFor(method);
        const problem = await expectProblem(await hub.request(path, { ...init, auth: READ_TOKEN }), 403);
        expect(problem.detail, method).toMatch(/read/);
      }
    });
  });

  it("keeps reads open without a token by default", async () => {
    for (const path of [
      thingPath(id),
      "/things",
      "/search/jsonpath?query=%24..title",
      "/.well-known/wot",
      "/health",
    ]) {
      expect((await hub.request(path, { auth: false })).status, path).toBe(200);
    }
  });
});

describe('authorization with auth: "read"', () => {
  let hub: TestHub;
  const id = "urn:example:auth-read:lamp";
  beforeAll(async () => {
    hub = await startTestHub({ auth: "read" }, { HYPERTHINGS_READ_TOKEN: READ_TOKEN });
    expect((await putRaw(hub, thingPath(id), JSON.stringify(minimalTd({ id })))).status).toBe(201);
  });
  afterAll(async () => {
    await hub.stop();
  });

  it("answers reads without a token with 401 and WWW-Authenticate: Bearer", async () => {
    for (const path of [thingPath(id), "/things", "/search/jsonpath?query=%24..title", "/events"]) {
      const res = await hub.request(path, { auth: false });
      expect(res.headers.get("www-authenticate"), path).toMatch(/^Bearer\b/);
      expect((await expectProblem(res, 401)).detail, path).toMatch(/token/);
    }
  });

  it("lets the read token and the admin token read", async () => {
    expect((await hub.request(thingPath(id), { auth: READ_TOKEN })).status).toBe(200);
    expect((await hub.request(thingPath(id))).status).toBe(200);
  });

  it("keeps /health open", async () => {
    const res = await hub.request("/health", { auth: false });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { status: string }).status).toBe("ok");
  });

  it("describes reads as needing the bearer token in its own TD", async () => {
    const td = (await (await hub.request("/.well-known/wot")).json()) as { security: unknown };
    expect(td.security).toBe("bearer_sc");
  });
});
