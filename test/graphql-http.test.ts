// GraphQL over HTTP at /graphql against a real hub: queries, mutations that become Changes,
// authorisation like the HTTP API's, and the limits on what one operation may ask.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { getIntrospectionQuery } from "graphql";
import { GraphqlClient } from "../src/client/index.js";
import { thingPath } from "../src/api/index.js";
import { changeAfter, minimalTd, putTd, startTestHub, type TestHub } from "./support/test-hub.js";

const READ_TOKEN = "reader-token-0123456789";

interface Answer {
  data?: Record<string, unknown> | null;
  errors?: Array<{ message: string; extensions?: Record<string, unknown> }>;
}

async function post(
  hub: TestHub,
  query: string,
  variables?: Record<string, unknown>,
  options: { auth?: boolean | string; accept?: string } = {},
): Promise<{ status: number; type: string | null; body: Answer }> {
  const response = await hub.request("/graphql", {
    method: "POST",
    auth: options.auth ?? true,
    headers: { "content-type": "application/json", ...(options.accept && { accept: options.accept }) },
    body: JSON.stringify({ query, ...(variables && { variables }) }),
  });
  return {
    status: response.status,
    type: response.headers.get("content-type"),
    body: (await response.json()) as Answer,
  };
}

function codes(answer: Answer): unknown[] {
  return (answer.errors ?? []).map((e) => e.extensions?.code);
}

describe("GraphQL diff: reachability, drift and links", () => {
  let hub: TestHub;
  const sensor = "urn:example:gql-sensor";
  const gateway = "urn:example:gql-gateway";

  beforeAll(async () => {
    hub = await startTestHub();
    await putTd(
      hub,
      minimalTd({
        id: sensor,
        properties: { level: { type: "number", forms: [{ href: "http://127.0.0.1:9/l" }] } },
        links: [{ rel: "partOf", href: gateway }],
      }),
    );
    await hub.hub.ingest(sensor, [{ kind: "unreachable", value: "connect ECONNREFUSED" }], {
      actor: "hub:observer",
      via: "http",
    });
    const unlink = await hub.request(
      `/things/${encodeURIComponent(sensor)}/links?rel=partOf&href=${encodeURIComponent(gateway)}`,
      { method: "DELETE" },
    );
    expect(unlink.status).toBe(204);
    const applied = { release: "sha256:r1", name: "evening", rollout: "urn:uuid:r", desired: { level: 3 } };
    await hub.hub.ingest(sensor, [{ kind: "applied", value: { ...applied, drift: { policy: "record" } } }], {
      actor: "admin",
      via: "rollout",
    });
    const value = { status: "drifting", release: "sha256:r1", desired: 3, observed: 7, policy: "record" };
    await hub.hub.ingest(sensor, [{ kind: "drift", affordance: "level", value }], {
      actor: "hub:drift",
      via: "drift",
      release: "sha256:r1",
    });
  });

  afterAll(async () => hub.stop());

  it("answers the reachability, drift, links and releases sections of a diff, within the cost limit", async () => {
    const { body } = await post(
      hub,
      `query ($id: ID!) { diff(thing: $id, from: "-1h") {
         reachability { reachableAtFrom reachableAtTo counts last { kind value cause { actor } } }
         drift { changes last { affordance kind value cause { actor release } } properties { affordance changes last { value } } }
         links { added { rel href } removed { rel href type anchor } counts last { kind value cause { actor } } }
         releases { counts last { kind value cause { actor } } } } }`,
      { id: sensor },
    );
    expect(body.errors).toBeUndefined();
    const value = { status: "drifting", release: "sha256:r1", desired: 3, observed: 7, policy: "record" };
    expect(body.data).toEqual({
      diff: {
        // Registered within the hour: not in the directory then, so neither reachable nor not.
        reachability: {
          reachableAtFrom: null,
          reachableAtTo: false,
          counts: { unreachable: 1 },
          last: { kind: "unreachable", value: "connect ECONNREFUSED", cause: { actor: "hub:observer" } },
        },
        drift: {
          changes: 1,
          last: {
            affordance: "level",
            kind: "drift",
            value,
            cause: { actor: "hub:drift", release: "sha256:r1" },
          },
          properties: [{ affordance: "level", changes: 1, last: { value } }],
        },
        // Registered with the link and unlinked in between: the same (no link) at both ends.
        links: {
          added: [],
          removed: [],
          counts: { linked: 1, unlinked: 1 },
          last: { kind: "unlinked", value: { rel: "partOf", href: gateway }, cause: { actor: "admin" } },
        },
        releases: {
          counts: { applied: 1 },
          last: {
            kind: "applied",
            value: {
              release: "sha256:r1",
              name: "evening",
              rollout: "urn:uuid:r",
              desired: { level: 3 },
              drift: { policy: "record" },
            },
            cause: { actor: "admin" },
          },
        },
      },
    });
  });

  it("answers null for the sections when nothing of the kind happened in between", async () => {
    const { body } = await post(
      hub,
      `query ($id: ID!) { diff(thing: $id, from: "+1m", to: "+2m") { reachability { counts } drift { changes } links { counts } releases { counts } } }`,
      { id: sensor },
    );
    expect(body.errors).toBeUndefined();
    // Unreachable at both ends (now): the section is there, with nothing in between.
    expect(body.data).toEqual({
      diff: { reachability: { counts: {} }, drift: null, links: null, releases: null },
    });
  });
});

describe("GraphQL over HTTP", () => {
  let hub: TestHub;
  const lamp = "urn:example:gql-lamp";

  beforeAll(async () => {
    hub = await startTestHub(
      { graphql: { maxDepth: 6, maxCost: 2000, maxFirst: 50 } },
      { HYPERTHINGS_READ_TOKEN: READ_TOKEN },
    );
    const put = await hub.request(`/things/${encodeURIComponent(lamp)}`, {
      method: "PUT",
      headers: { "content-type": "application/td+json" },
      body: JSON.stringify(
        minimalTd({
          id: lamp,
          "@type": "saref:LightSwitch",
          properties: {
            brightness: {
              type: "integer",
              minimum: 0,
              maximum: 100,
              forms: [{ href: "http://127.0.0.1:9/b" }],
            },
          },
        }),
      ),
    });
    expect(put.status).toBe(201);
    const report = await hub.request(`/things/${encodeURIComponent(lamp)}/changes`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ kind: "reported", affordance: "brightness", value: 42 }),
    });
    expect(report.status).toBe(201);
  });

  afterAll(async () => hub.stop());

  it("answers a query for a Thing with its TD, types and current property values", async () => {
    const { status, body } = await post(
      hub,
      `query ($id: ID!) { thing(id: $id) { id title types version properties { name value cause { actor via } } } }`,
      { id: lamp },
      { auth: false },
    );
    expect(status).toBe(200);
    expect(body.errors).toBeUndefined();
    const thing = body.data?.thing as Record<string, unknown>;
    expect(thing).toMatchObject({ id: lamp, title: "Lamp", types: ["saref:LightSwitch"] });
    expect(thing.version).toBeGreaterThan(0);
    expect(thing.properties).toEqual([
      { name: "brightness", value: 42, cause: { actor: "admin", via: "http" } },
    ]);
  });

  it("answers GET /graphql?query= for a query, and null for an unknown Thing", async () => {
    const query = encodeURIComponent(`{ thing(id: "urn:example:nobody") { id } }`);
    const response = await hub.request(`/graphql?query=${query}`, { auth: false });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual({ data: { thing: null } });
  });

  it("pages every Thing once while Things are removed and registered between pages", async () => {
    const ids = [0, 1, 2, 3, 4, 5].map((i) => `urn:example:gql-page-${i}`);
    for (const id of ids) await putTd(hub, minimalTd({ id, title: "Page" }));
    const page = async (after: string | null) => {
      const { body } = await post(
        hub,
        `query ($after: String) { things(first: 2, after: $after) { items { id } next } }`,
        { after },
      );
      expect(body.errors).toBeUndefined();
      return (body.data as { things: { items: Array<{ id: string }>; next: string | null } }).things;
    };
    const seen: string[] = [];
    let next: string | null = null;
    let pages = 0;
    do {
      const answer: { items: Array<{ id: string }>; next: string | null } = await page(next);
      seen.push(...answer.items.map((t) => t.id));
      next = answer.next;
      // Between the first two pages of these Things: one already listed goes, one not yet listed comes.
      if (seen.includes(ids[1] ?? "") && pages++ === 0) {
        const removed = await hub.request(`/things/${encodeURIComponent(ids[0] ?? "")}`, {
          method: "DELETE",
        });
        expect(removed.status).toBe(204);
        await putTd(hub, minimalTd({ id: "urn:example:gql-page-9", title: "Page" }));
      }
    } while (next !== null);
    const listed = seen.filter((id) => id.startsWith("urn:example:gql-page-"));
    expect(listed).toEqual([...ids, "urn:example:gql-page-9"]);
    expect(new Set(seen).size).toBe(seen.length);
  });

  it("prices a search at every TD it reads: many searches in one operation are refused, saying why", async () => {
    for (let i = 0; i < 100; i++)
      await putTd(hub, minimalTd({ id: `urn:example:gql-search-${i}`, title: "S" }));
    const one = await post(hub, `{ search(jsonpath: "$[?@.title=='S'].id") }`);
    expect(one.body.errors).toBeUndefined();
    expect(one.body.data?.search).toHaveLength(100);
    // Priced at some 210 each before it runs (under the limit of 2,000 together), as a
    // field that reads the store; as they run, each reads 100 TDs and more.
    const many = `{ ${Array.from({ length: 8 }, (_, i) => `s${i}: search(jsonpath: "$")`).join(" ")} }`;
    const { body } = await post(hub, many);
    expect(body.data).toBeNull();
    expect(codes(body)).toContain("COST_LIMIT_EXCEEDED");
    expect(body.errors?.[0]?.message).toMatch(
      /reads \d+ TDs where 10 were assumed; .*GET \/search\/jsonpath/,
    );
  });

  it("gives a Thing's TD as registered whether it is found by id or by a graph filter", async () => {
    const { body } = await post(
      hub,
      `query ($id: ID!) { thing(id: $id) { td }
         things(filter: "id = ${lamp}", first: 5) { items { td version } } }`,
      { id: lamp },
    );
    expect(body.errors).toBeUndefined();
    const data = body.data as {
      thing: { td: unknown };
      things: { items: Array<{ td: unknown; version: number }> };
    };
    expect(data.things.items.map((t) => t.td)).toEqual([data.thing.td]);
    expect(data.things.items[0]?.version).toBeGreaterThan(0);
    expect(data.thing.td).not.toHaveProperty("registration");
  });

  it("points a bad or empty JSONPath search at its argument, jsonpath", async () => {
    for (const jsonpath of ["$[", ""]) {
      const { body } = await post(hub, `query ($p: String!) { search(jsonpath: $p) }`, { p: jsonpath });
      expect(codes(body)).toEqual(["BAD_USER_INPUT"]);
      expect(body.errors?.[0]?.extensions?.errors).toEqual([
        { pointer: "/jsonpath", detail: expect.any(String) as unknown },
      ]);
    }
  });

  it("refuses a Change's seq below 1 as changes(after:) refuses one, and answers null past the end", async () => {
    for (const seq of [-5, 0]) {
      const { body } = await post(hub, `{ change(seq: ${seq}) { seq } }`);
      expect(body.errors?.map((e) => [e.extensions?.code, e.message])).toEqual([
        ["BAD_USER_INPUT", `seq ${seq} is not a whole number from 1`],
      ]);
    }
    const { body } = await post(hub, "{ change(seq: 999999) { seq } }");
    expect(body).toEqual({ data: { change: null } });
  });

  it("pages the Things, searches them with JSONPath, and reads history, state and diff", async () => {
    const { body } = await post(
      hub,
      `{ things(first: 10) { items { id } next }
         search(jsonpath: "$[?@.title=='Lamp'].id")
         history(thing: "${lamp}", first: 5) { changes { kind affordance value } next }
         stateAt(thing: "${lamp}") { thing properties { name value } }
         diff(thing: "${lamp}", from: "-1h") { thing properties { affordance after changes } actions { affordance } events { affordance counts last { kind } } }
         changes(filter: { thing: "${lamp}", kinds: ["reported"] }, first: 10) { changes { seq value } }
         log { size root } }`,
    );
    expect(body.errors).toBeUndefined();
    const data = body.data as {
      things: { items: Array<{ id: string }> };
      search: unknown[];
      history: { changes: unknown[] };
      stateAt: { properties: unknown[] };
      diff: { properties: unknown[]; actions: unknown[]; events: unknown[] };
      changes: { changes: Array<{ value: number }> };
      log: { size: number; root: string };
    };
    expect(data.things.items.map((t) => t.id)).toContain(lamp);
    expect(data.search).toEqual([lamp]);
    expect(data.history.changes[0]).toEqual({ kind: "reported", affordance: "brightness", value: 42 });
    expect(data.stateAt.properties).toEqual([{ name: "brightness", value: 42 }]);
    expect(data.diff.properties).toEqual([{ affordance: "brightness", after: 42, changes: 1 }]);
    expect([data.diff.actions, data.diff.events]).toEqual([[], []]);
    expect(data.changes.changes.map((c) => c.value)).toEqual([42]);
    expect(data.log.size).toBeGreaterThanOrEqual(2);
    expect(data.log.root).toMatch(/^[0-9a-f]{64}$/);
  });

  it("refuses a kind the hub never records in a history and in the feed", async () => {
    for (const query of [
      `{ history(thing: "${lamp}", kinds: ["reprted"], first: 5) { changes { seq } } }`,
      `{ thing(id: "${lamp}") { history(kinds: ["reprted"], first: 5) { changes { seq } } } }`,
      `{ changes(filter: { kinds: ["reported", "reprted"] }, first: 5) { changes { seq } } }`,
    ]) {
      const { body } = await post(hub, query);
      expect(body.errors?.map((e) => e.extensions?.code)).toEqual(["BAD_USER_INPUT"]);
      expect(body.errors?.[0]?.message).toContain('"reprted"');
      expect(body.errors?.[0]?.message).toContain("reported, desired");
    }
  });

  it("reads a diff from a time ahead with `to` left out as the empty diff now, as HTTP does", async () => {
    for (const from of ["+1m", "+2h"]) {
      const { body } = await post(
        hub,
        `{ diff(thing: "${lamp}", from: "${from}") { from to properties { affordance } } }`,
      );
      expect(body.errors).toBeUndefined();
      const diff = (body.data as { diff: { from: string; to: string; properties: unknown[] } }).diff;
      expect(diff.from).toBe(diff.to);
      expect(diff.properties).toEqual([]);
    }
    const http = await hub.request(`${thingPath(lamp)}/diff?from=%2B1m`);
    expect(http.status).toBe(200);
  });

  it("answers the introspection query with the whole schema", async () => {
    const { body } = await post(hub, getIntrospectionQuery(), undefined, { auth: false });
    expect(body.errors).toBeUndefined();
    const types = ((body.data?.__schema as { types: Array<{ name: string }> }).types ?? []).map(
      (t) => t.name,
    );
    expect(types).toEqual(
      expect.arrayContaining(["Thing", "Change", "Link", "Subscription", "ChangeFilter"]),
    );
  });

  it("registers, updates and removes a Thing with mutations, each a Change caused by the token's actor", async () => {
    const id = "urn:example:gql-registered";
    const before = Number(
      (await post(hub, "{ log { size } }")).body.data?.log &&
        ((await post(hub, "{ log { size } }")).body.data?.log as { size: number }).size,
    );
    const registered = await post(
      hub,
      `mutation ($td: JSON!) { register(td: $td) { id created change { seq kind cause { actor via } } } }`,
      { td: minimalTd({ id, title: "Registered" }) },
    );
    expect(registered.body.errors).toBeUndefined();
    expect(registered.body.data?.register).toMatchObject({
      id,
      created: true,
      change: { kind: "described", cause: { actor: "admin", via: "graphql" } },
    });
    const described = await changeAfter(hub, before, (c) => c.thing === id && c.kind === "described");
    expect(described.cause).toEqual({ actor: "admin", via: "graphql" });

    const updated = await post(
      hub,
      `mutation { update(id: "${id}", patch: { title: "Renamed" }) { created } }`,
    );
    expect(updated.body.data?.update).toEqual({ created: false });
    const thing = await post(hub, `{ thing(id: "${id}") { title } }`);
    expect(thing.body.data?.thing).toEqual({ title: "Renamed" });

    const removed = await post(hub, `mutation { remove(id: "${id}") { kind thing } }`);
    expect(removed.body.data?.remove).toEqual({ kind: "removed", thing: id });
    expect((await post(hub, `{ thing(id: "${id}") { id } }`)).body.data?.thing).toBeNull();
  });

  it("registerAll registers every TD or none: a refused one is BAD_USER_INPUT listing it, and nothing is recorded", async () => {
    const size = async () => ((await post(hub, "{ log { size } }")).body.data?.log as { size: number }).size;
    const before = await size();
    const mutation = `mutation ($tds: [JSON!]!) { registerAll(tds: $tds) { id created change { kind } } }`;
    const refused = await post(hub, mutation, {
      tds: [
        minimalTd({ id: "urn:example:gql-batch-1" }),
        minimalTd({ id: "urn:example:gql-batch-2", title: undefined }),
      ],
    });
    expect(codes(refused.body)).toEqual(["BAD_USER_INPUT"]);
    expect(refused.body.errors?.[0]?.extensions?.refused).toEqual([
      expect.objectContaining({ index: 1, id: "urn:example:gql-batch-2", status: 400 }),
    ]);
    expect(await size()).toBe(before);
    const taken = await post(hub, mutation, {
      tds: [minimalTd({ id: "urn:example:gql-batch-1" }), minimalTd({ id: "urn:example:gql-batch-2" })],
    });
    expect(taken.body.errors).toBeUndefined();
    expect(taken.body.data?.registerAll).toEqual([
      { id: "urn:example:gql-batch-1", created: true, change: { kind: "described" } },
      { id: "urn:example:gql-batch-2", created: true, change: { kind: "described" } },
    ]);
    expect(await size()).toBe(before + 2);
  });

  it("refuses a mutation without a token (UNAUTHENTICATED) and with a read token (FORBIDDEN), changing nothing", async () => {
    const mutation = `mutation { register(td: { title: "x", securityDefinitions: { n: { scheme: "nosec" } }, security: "n" }) { id } }`;
    const size = async () => ((await post(hub, "{ log { size } }")).body.data?.log as { size: number }).size;
    const before = await size();
    const anonymous = await post(hub, mutation, undefined, { auth: false });
    expect(codes(anonymous.body)).toEqual(["UNAUTHENTICATED"]);
    expect(anonymous.body.data).toBeUndefined();
    const reader = await post(hub, mutation, undefined, { auth: READ_TOKEN });
    expect(codes(reader.body)).toEqual(["FORBIDDEN"]);
    const modern = await post(hub, mutation, undefined, {
      auth: READ_TOKEN,
      accept: "application/graphql-response+json",
    });
    expect(modern.status).toBe(403);
    expect(modern.type).toMatch(/^application\/graphql-response\+json/);
    expect(await size()).toBe(before);
  });

  it("refuses a bad bearer token with a 401 problem document", async () => {
    const response = await hub.request("/graphql", {
      method: "POST",
      auth: "not-a-token-of-this-hub",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: "{ log { size } }" }),
    });
    expect(response.status).toBe(401);
    expect(response.headers.get("content-type")).toMatch(/^application\/problem\+json/);
  });

  it("reads GET variables as a body's JSON is read: duplicate names, an inexact integer and deep nesting are a 400 at /query/variables", async () => {
    const query = encodeURIComponent("query ($id: ID!) { thing(id: $id) { id } }");
    for (const [variables, detail, pointer] of [
      [
        `{"id":"${lamp}","id":"urn:x"}`,
        'variables: The JSON has duplicate member names: the top-level object repeats the member name "id"',
        "/query/variables",
      ],
      [
        `{"id":"${lamp}","n":9007199254740993}`,
        "variables: The JSON at /n is 9007199254740993, which a JSON number here (a 64-bit float) holds only as 9007199254740992: send it as a string, or with an exponent to take the nearest float",
        "/query/variables/n",
      ],
      [
        `{"id":"${lamp}","deep":${"[".repeat(70)}${"]".repeat(70)}}`,
        "variables: The JSON nests deeper than 64 levels of arrays and objects at /deep/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0",
        "/query/variables/deep/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0/0",
      ],
      ["{bad", undefined, "/query/variables"],
    ] as const) {
      const res = await hub.request(`/graphql?query=${query}&variables=${encodeURIComponent(variables)}`);
      expect(res.status, variables).toBe(400);
      const problem = (await res.json()) as { detail: string; errors: Array<{ pointer: string }> };
      if (detail !== undefined) expect(problem.detail, variables).toBe(detail);
      else expect(problem.detail).toMatch(/^variables: Malformed JSON at line 1, column 2: /);
      expect(problem.errors[0]?.pointer, variables).toBe(pointer);
    }
  });

  it("refuses a mutation over GET with 405, with a token or without one", async () => {
    const query = encodeURIComponent(`mutation { remove(id: "${lamp}") { seq } }`);
    for (const auth of [true, false]) {
      const response = await hub.request(`/graphql?query=${query}`, { auth });
      expect(response.status).toBe(405);
      expect(response.headers.get("allow")).toBe("POST");
    }
    expect((await post(hub, `{ thing(id: "${lamp}") { id } }`)).body.data?.thing).toEqual({ id: lamp });
  });

  it("names an unknown field, and a syntax error, with their codes (400 under graphql-response+json)", async () => {
    const unknown = await post(hub, `{ thing(id: "${lamp}") { colour } }`);
    expect(unknown.status).toBe(200);
    expect(codes(unknown.body)).toEqual(["GRAPHQL_VALIDATION_FAILED"]);
    expect(unknown.body.errors?.[0]?.message).toMatch(/colour/);
    const broken = await post(hub, `{ thing(id: `, undefined, {
      accept: "application/graphql-response+json",
    });
    expect(broken.status).toBe(400);
    expect(codes(broken.body)).toEqual(["GRAPHQL_PARSE_FAILED"]);
  });

  it("refuses a malformed IRI with BAD_USER_INPUT and its JSON pointer", async () => {
    const { body } = await post(hub, `{ thing(id: "not an iri") { id } }`);
    expect(codes(body)).toEqual(["BAD_USER_INPUT"]);
    expect(body.errors?.[0]?.extensions?.errors).toEqual([expect.objectContaining({ pointer: "/id" })]);
  });

  it("refuses an operation deeper than the limit before running it", async () => {
    const { body } = await post(
      hub,
      `{ thing(id: "${lamp}") { links { target { links { target { links { target { id } } } } } } } }`,
    );
    const error = body.errors?.find((e) => e.extensions?.code === "DEPTH_LIMIT_EXCEEDED");
    expect(error?.extensions).toMatchObject({ maxDepth: 6 });
    expect(error?.extensions?.depth).toBeGreaterThan(6);
    expect(body.data).toBeUndefined();
  });

  it("refuses a JSON literal with a number no JSON holds, saying where, and registers nothing", async () => {
    const { body } = await post(
      hub,
      'mutation { register(td: {id: "urn:example:gql:huge", reading: 1e400}) { id } }',
    );
    expect(body.errors?.[0]?.message).toMatch(/; The JSON value is a number out of range at \/reading$/);
    expect(body.data).toBeUndefined();
    expect((await hub.request(`/things/${encodeURIComponent("urn:example:gql:huge")}`)).status).toBe(404);
  });

  it("refuses a document nested past what it parses, before parsing it, with the depth code", async () => {
    // 1,500 selections, or a literal 5,000 deep: graphql-js's recursive parser overflowed its stack.
    const selections = `{ ${'thing(id: "x") { links { target { '.repeat(500)}id${" } } }".repeat(500)} }`;
    const literal = `{ thing(id: "x") { id } search(jsonpath: "$", first: ${"[".repeat(5000)}1${"]".repeat(5000)}) }`;
    for (const query of [selections, literal]) {
      const { body } = await post(hub, query);
      expect(body.errors?.map((e) => [e.extensions?.code, e.message])).toEqual([
        [
          "DEPTH_LIMIT_EXCEEDED",
          "The document nests more than 160 levels of braces, brackets and parentheses; this hub parses no deeper",
        ],
      ]);
    }
    // Brackets in strings and comments are text, not nesting.
    const { body } = await post(hub, `# ${"{".repeat(500)}\n{ thing(id: "${"[".repeat(500)}") { id } }`);
    expect(body.errors?.[0]?.extensions?.code).not.toBe("DEPTH_LIMIT_EXCEEDED");
  });

  it("refuses an operation over the cost limit, counting lists by the page size asked", async () => {
    const { body } = await post(
      hub,
      `{ things(first: 50) { items { history(first: 50) { changes { seq } } } } }`,
    );
    expect(codes(body)).toEqual(["COST_LIMIT_EXCEEDED"]);
    expect(body.errors?.[0]?.extensions?.cost).toBeGreaterThan(2000);
    const cheap = await post(hub, `{ things(first: 5) { items { history(first: 5) { changes { seq } } } } }`);
    expect(cheap.body.errors).toBeUndefined();
  });

  it("refuses a page larger than the hub's maximum, also through a variable", async () => {
    const { body } = await post(hub, `query ($n: Int) { changes(first: $n) { next } }`, { n: 51 });
    expect(codes(body)).toEqual(["PAGE_LIMIT_EXCEEDED"]);
    expect(body.errors?.[0]?.extensions?.maxFirst).toBe(50);
  });

  it("answers drift: nothing drifts on a hub without releases", async () => {
    const { body } = await post(
      hub,
      `{ all: drift { thing affordance } one: drift(thing: "${lamp}") { thing } }`,
    );
    expect(body.errors).toBeUndefined();
    expect(body.data).toEqual({ all: [], one: [] });
  });

  it("refuses a subscription over HTTP, pointing at the WebSocket", async () => {
    const { body } = await post(hub, `subscription { changes { seq } }`);
    expect(codes(body)).toEqual(["BAD_REQUEST"]);
    expect(body.errors?.[0]?.message).toMatch(/WebSocket/);
  });
});

describe("GraphQL over HTTP: the graph", () => {
  let hub: TestHub;
  const host = "urn:example:gql-host";
  const vm = "urn:example:gql-vm";

  beforeAll(async () => {
    hub = await startTestHub();
    for (const [id, type] of [
      [host, "Host"],
      [vm, "VirtualMachine"],
    ] as const) {
      const { body } = await post(hub, `mutation ($td: JSON!) { register(td: $td) { id } }`, {
        td: minimalTd({ id, title: id, "@type": type }),
      });
      expect(body.errors).toBeUndefined();
    }
  });
  afterAll(async () => hub.stop());

  it("links two Things with a mutation, and traverses links and linkedFrom both ways", async () => {
    const linked = await post(
      hub,
      `mutation { link(from: "${vm}", rel: "runsOn", to: "${host}") { kind thing } }`,
    );
    expect(linked.body.errors).toBeUndefined();
    expect(linked.body.data?.link).toEqual({ kind: "described", thing: vm });
    const again = await post(hub, `mutation { link(from: "${vm}", rel: "runsOn", to: "${host}") { kind } }`);
    expect(again.body.data?.link).toBeNull();

    const { body } = await post(
      hub,
      `{ vm: thing(id: "${vm}") { links(rel: "runsOn") { rel to resolved target { id title } } }
         host: thing(id: "${host}") { linkedFrom { from source { id } } } }`,
    );
    expect(body.errors).toBeUndefined();
    expect(body.data).toEqual({
      vm: { links: [{ rel: "runsOn", to: host, resolved: true, target: { id: host, title: host } }] },
      host: { linkedFrom: [{ from: vm, source: { id: vm } }] },
    });
  });

  it("filters Things with the graph query language, and names a bad filter and cursor precisely", async () => {
    const { body } = await post(
      hub,
      `{ things(filter: "out(runsOn) { type = Host }") { items { id } next } }`,
    );
    expect(body.errors).toBeUndefined();
    expect(body.data?.things).toEqual({ items: [{ id: vm }], next: null });
    const bad = await post(hub, `{ things(filter: "type = ") { items { id } } }`);
    expect(codes(bad.body)).toEqual(["BAD_USER_INPUT"]);
    // The places are the arguments, as for every other GraphQL error (not the HTTP query's).
    expect(bad.body.errors?.[0]?.extensions?.errors).toEqual([
      { pointer: "/filter", detail: "position 8: expected a value but found the end of the filter" },
    ]);
    const cursor = await post(hub, `{ things(filter: "type = Host", after: "zz") { next } }`);
    expect(cursor.body.errors?.[0]?.extensions?.errors).toEqual([
      { pointer: "/after", detail: "is not a cursor from a previous page" },
    ]);
  });

  it("names the argument that holds a malformed link target", async () => {
    const { body } = await post(
      hub,
      `mutation { link(from: "${vm}", rel: "runsOn", to: "host 1") { kind } }`,
    );
    expect(codes(body)).toEqual(["BAD_USER_INPUT"]);
    expect(
      (body.errors?.[0]?.extensions?.errors as Array<{ pointer: string }>).map((e) => e.pointer),
    ).toEqual(["/to"]);
  });

  it("unlinks, and refuses to unlink what is not linked", async () => {
    const unlinked = await post(
      hub,
      `mutation { unlink(from: "${vm}", rel: "runsOn", to: "${host}") { kind } }`,
    );
    expect(unlinked.body.data?.unlink).toEqual({ kind: "described" });
    const links = await post(hub, `{ thing(id: "${vm}") { links { to } } }`);
    expect(links.body.data?.thing).toEqual({ links: [] });
    const again = await post(
      hub,
      `mutation { unlink(from: "${vm}", rel: "runsOn", to: "${host}") { kind } }`,
    );
    expect(codes(again.body)).toEqual(["NOT_FOUND"]);
  });
});

describe("GraphQL over HTTP: a Thing with many links", () => {
  let hub: TestHub;
  const building = "urn:example:gql-building";

  beforeAll(async () => {
    hub = await startTestHub({ graphql: { maxCost: 300 } });
    await putTd(hub, minimalTd({ id: building, title: "Building" }));
    for (let i = 0; i < 30; i++)
      await putTd(
        hub,
        minimalTd({ id: `${building}-sensor-${i}`, links: [{ rel: "partOf", href: building }] }),
      );
  });
  afterAll(async () => hub.stop());

  it("lets the typed client page history and Things on a hub with a small maxCost: it prices its own page", async () => {
    // A `first` sent as a variable is priced at the largest page (1,000): far past 300.
    const client = new GraphqlClient({ url: hub.url, token: hub.token });
    const history = await client.history(building, { first: 5 });
    expect(history.changes.length).toBeGreaterThan(0);
    expect(history.changes.length).toBeLessThanOrEqual(5);
    const things = await client.things({ first: 1 });
    expect(things.items).toHaveLength(1);
  });

  it("prices links and linkedFrom at their real length as they run: past the cost limit they fail", async () => {
    // Priced at 10 links by validation (161: thing and linkedFrom 10 each, source 10 per link), but
    // 30 cost 441: more than the hub's 300.
    const { body } = await post(hub, `{ thing(id: "${building}") { linkedFrom { from source { id } } } }`);
    expect(codes(body)).toEqual(["COST_LIMIT_EXCEEDED"]);
    expect(body.errors?.[0]?.message).toContain("linkedFrom holds 30 elements where 10 were assumed");
    expect(body.errors?.[0]?.message).toContain('things(filter: "out(rel) { id = … }"');
    expect(body.errors?.[0]?.extensions).toMatchObject({ cost: 441, maxCost: 300 });
    expect(body.data).toEqual({ thing: null });
    // What the limit allows still answers in full.
    const cheap = await post(hub, `{ thing(id: "${building}") { linkedFrom { from } } }`);
    expect(cheap.body.errors).toBeUndefined();
    expect((cheap.body.data?.thing as { linkedFrom: unknown[] }).linkedFrom).toHaveLength(30);
    const few = await post(hub, `{ thing(id: "${building}-sensor-1") { links { to target { id title } } } }`);
    expect(few.body.errors).toBeUndefined();
  });
});

describe("GraphQL over HTTP: the price of fields that read the store", () => {
  let hub: TestHub;
  const lamp = "urn:example:gql-price:lamp";

  beforeAll(async () => {
    hub = await startTestHub();
    await putTd(hub, minimalTd({ id: lamp, title: "Lamp" }));
  });
  afterAll(async () => hub.stop());

  it("refuses 500 aliased stateAt in one request, saying what it costs, before running any", async () => {
    const fields = Array.from({ length: 500 }, (_, i) => `s${i}: stateAt(thing: "${lamp}") { seq }`);
    const { body } = await post(hub, `{ ${fields.join(" ")} }`);
    expect(codes(body)).toEqual(["COST_LIMIT_EXCEEDED"]);
    expect(body.data).toBeUndefined();
    expect(body.errors?.[0]?.message).toMatch(/^The operation costs \d+ .*stateAt 200.*at most 20000/);
    expect(body.errors?.[0]?.extensions).toMatchObject({ maxCost: 20_000 });
    expect(body.errors?.[0]?.extensions?.cost).toBeGreaterThan(100_000);
  });

  it("still answers a dashboard's query: a page of Things with their values and recent history, the feed, a state and a diff", async () => {
    const { body } = await post(
      hub,
      `{
        log { size root }
        things(first: 100) {
          items { id title types properties { name value time } history(first: 5) { changes { seq kind value time } } }
          next
        }
        changes(first: 100, order: DESC) { changes { seq thing affordance kind value time cause { actor } } next }
        stateAt(thing: "${lamp}") { seq properties { name value } }
        diff(thing: "${lamp}", from: "-1h") { fromSeq toSeq properties { affordance before after } }
        drift { thing affordance }
      }`,
    );
    expect(body.errors).toBeUndefined();
    expect((body.data?.things as { items: { id: string }[] }).items.map((t) => t.id)).toEqual([lamp]);
  });
});

describe("GraphQL's change feed filtered by type", () => {
  let hub: TestHub;
  const lamp = "urn:example:gql-feed:lamp";
  const other = "urn:example:gql-feed:other";

  beforeAll(async () => {
    hub = await startTestHub();
    const property = { type: "integer", forms: [{ href: "http://127.0.0.1:9/b" }] };
    for (const [id, type] of [
      [lamp, "saref:LightSwitch"],
      [other, "saref:Sensor"],
    ] as const) {
      const put = await hub.request(`/things/${encodeURIComponent(id)}`, {
        method: "PUT",
        headers: { "content-type": "application/td+json" },
        body: JSON.stringify(minimalTd({ id, "@type": type, properties: { level: property } })),
      });
      expect(put.status).toBe(201);
    }
    // Many Changes of the other Thing, then the lamp's: a page of the whole Log holds none of it.
    for (const [id, values] of [
      [other, [1, 2, 3, 4, 5]],
      [lamp, [6, 7]],
    ] as const) {
      const report = await hub.request(`/things/${encodeURIComponent(id)}/changes`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(values.map((value) => ({ kind: "reported", affordance: "level", value }))),
      });
      expect(report.status).toBe(201);
    }
  });

  afterAll(async () => hub.stop());

  it("fills each page with Changes of Things of the type", async () => {
    const query = `query ($after: SafeInt) {
      changes(filter: { type: "LightSwitch", kinds: ["reported"] }, after: $after, first: 1) { changes { thing value } next }
    }`;
    const first = await post(hub, query);
    expect(first.body.errors).toBeUndefined();
    const page = first.body.data?.changes as { changes: unknown[]; next: number | null };
    expect(page.changes).toEqual([{ thing: lamp, value: 6 }]);
    expect(page.next).not.toBeNull();
    const second = await post(hub, query, { after: page.next });
    expect(second.body.data?.changes).toEqual({ changes: [{ thing: lamp, value: 7 }], next: null });
  });

  it("pages newest first with order: DESC, 'after' then being the cursor of the page before", async () => {
    const query = `query ($after: SafeInt) {
      changes(filter: { type: "LightSwitch", kinds: ["reported"] }, after: $after, first: 1, order: DESC) { changes { thing value } next }
    }`;
    const first = await post(hub, query);
    expect(first.body.errors).toBeUndefined();
    const page = first.body.data?.changes as { changes: unknown[]; next: number | null };
    expect(page.changes).toEqual([{ thing: lamp, value: 7 }]);
    const second = await post(hub, query, { after: page.next });
    expect(second.body.data?.changes).toEqual({ changes: [{ thing: lamp, value: 6 }], next: null });
  });
});

describe("GraphQL over HTTP: the bound on an answer's bytes", () => {
  let hub: TestHub;
  const MAX = 8192;
  const prefix = "urn:example:gql-answer-size";

  beforeAll(async () => {
    hub = await startTestHub({ graphql: { maxAnswerBytes: MAX } });
    for (let i = 0; i < 5; i++) {
      await putTd(hub, minimalTd({ id: `${prefix}:${i}`, title: `T${i}`, description: "é".repeat(2000) }));
    }
  });
  afterAll(async () => hub.stop());

  it("answers ANSWER_TOO_LARGE, with no data, for a query whose answer would pass maxAnswerBytes", async () => {
    // Five TDs of 2,000 characters of description each: at least 10 kB, over the 8 kB bound.
    const { status, body } = await post(hub, `{ things(first: 10) { items { id td } } }`, undefined, {
      accept: "application/graphql-response+json",
    });
    expect(status).toBe(200);
    expect(codes(body)).toEqual(["ANSWER_TOO_LARGE"]);
    expect(body.data).toBeNull();
    expect(body.errors?.[0]?.message).toContain(`at most ${MAX}`);
    expect(body.errors?.[0]?.extensions).toMatchObject({ maxAnswerBytes: MAX });
  });

  it("answers a query under the bound in full", async () => {
    const { body } = await post(hub, `{ things(first: 10) { items { id title } } }`);
    expect(body.errors).toBeUndefined();
    expect((body.data?.things as { items: unknown[] }).items).toHaveLength(5);
    // One TD alone fits too.
    const one = await post(hub, `{ thing(id: "${prefix}:1") { td } }`);
    expect(one.body.errors).toBeUndefined();
    expect((one.body.data?.thing as { td: { description: string } }).td.description).toHaveLength(2000);
  });

  it("counts __typename, which no resolver answers, and the bytes characters take as UTF-8", async () => {
    // 300 aliased __typename on five Things: some 20 kB with no field of data.
    const aliases = Array.from({ length: 300 }, (_, i) => `t${i}: __typename`).join(" ");
    const typenames = await post(hub, `{ things(first: 10) { items { ${aliases} } } }`);
    expect(codes(typenames.body)).toEqual(["ANSWER_TOO_LARGE"]);
    // 3 × 2,000 "é" are 6,000 characters but 12,000 bytes of UTF-8: the exact check catches it.
    const three = Array.from({ length: 3 }, (_, i) => `d${i}: thing(id: "${prefix}:${i}") { td }`).join(" ");
    const utf8 = await post(hub, `{ ${three} }`);
    expect(codes(utf8.body)).toEqual(["ANSWER_TOO_LARGE"]);
    expect(utf8.body.errors?.[0]?.extensions?.bytes).toBeGreaterThan(12_000);
  });

  it("carries out a mutation whose answer is too large, and says so", async () => {
    const id = `${prefix}:new`;
    const td = minimalTd({ id, description: "x".repeat(9000) });
    const { body } = await post(hub, `mutation ($td: JSON!) { register(td: $td) { id change { value } } }`, {
      td,
    });
    expect(codes(body)).toEqual(["ANSWER_TOO_LARGE"]);
    expect(body.errors?.[0]?.message).toContain("the mutation itself was carried out");
    const after = await post(hub, `{ thing(id: "${id}") { id } }`);
    expect(after.body.data?.thing).toEqual({ id });
  });
});

describe("GraphQL on two hubs of one process", () => {
  const hubs: TestHub[] = [];
  afterAll(async () => {
    for (const hub of hubs) await hub.stop();
  });

  it("answers each hub's queries and mutations from that hub: the schema they share holds no hub", async () => {
    for (const id of ["urn:test:two-hubs:a", "urn:test:two-hubs:b"]) {
      const hub = await startTestHub();
      hubs.push(hub);
      await putTd(hub, minimalTd({ id }));
    }
    const [a, b] = hubs as [TestHub, TestHub];
    const ids = async (hub: TestHub) =>
      (
        (await post(hub, "{ things { items { id } } }")).body.data?.things as { items: Array<{ id: string }> }
      ).items.map((thing) => thing.id);
    expect(await ids(a)).toEqual(["urn:test:two-hubs:a"]);
    expect(await ids(b)).toEqual(["urn:test:two-hubs:b"]);
    const removed = await post(b, 'mutation { remove(id: "urn:test:two-hubs:b") { kind } }');
    expect(removed.body.errors).toBeUndefined();
    expect(await ids(b)).toEqual([]);
    expect(await ids(a)).toEqual(["urn:test:two-hubs:a"]);
  });
});
