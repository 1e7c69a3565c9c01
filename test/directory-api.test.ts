// End-to-end tests of the W3C WoT Discovery directory API (§7.3.2) over real HTTP: CRUD,
// anonymous registration, listing, JSONPath search, content negotiation, registration
// information and expiry, the directory's own TD, OpenAPI and health.
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { thingPath } from "../src/api/index.js";
import { DISCOVERY_CONTEXT, changeTime, validateThingDescription } from "../src/core/index.js";
import { minimalTd, startTestHub, type TestHub } from "./support/test-hub.js";

type Json = Record<string, unknown>;

const T0 = Date.parse("2030-01-01T00:00:00.000Z");

/** A clock the tests move by hand: time passes only when a test says so. */
function manualClock(start: number) {
  let now = start;
  return {
    now: () => new Date(now),
    advance(ms: number) {
      now += ms;
    },
    iso: (offsetMs = 0) => new Date(now + offsetMs).toISOString(),
  };
}

async function json<T = Json>(res: Response): Promise<T> {
  return (await res.json()) as T;
}

function put(hub: TestHub, id: string, td: unknown, contentType = "application/td+json"): Promise<Response> {
  return hub.request(thingPath(id), {
    method: "PUT",
    headers: { "content-type": contentType },
    body: JSON.stringify(td),
  });
}

function patch(hub: TestHub, id: string, body: unknown): Promise<Response> {
  return hub.request(thingPath(id), {
    method: "PATCH",
    headers: { "content-type": "application/merge-patch+json" },
    body: JSON.stringify(body),
  });
}

function nextLink(res: Response): string | undefined {
  const header = res.headers.get("link");
  if (header === null) return undefined;
  return /<([^>]+)>\s*;\s*rel="?next"?/.exec(header)?.[1];
}

async function lastSeq(hub: TestHub): Promise<number> {
  const health = await json<{ lastSeq: number }>(await hub.request("/health", { auth: false }));
  return health.lastSeq;
}

/** The TD as the registrant sent it: without what the directory adds on output. */
function withoutRegistration(td: Json): Json {
  const rest = { ...td };
  delete rest.registration;
  const context = rest["@context"];
  if (Array.isArray(context)) {
    const kept = context.filter((c) => c !== DISCOVERY_CONTEXT);
    rest["@context"] = kept.length === 1 ? kept[0] : kept;
  }
  return rest;
}

describe("writing over a TD that expired before the sweep removed it", () => {
  const clock = manualClock(T0);
  let hub: TestHub;
  beforeAll(async () => {
    // No sweep during the test: the expired TDs stay in the store until a write meets them.
    hub = await startTestHub({ expirySweepMs: 3_600_000 }, {}, { clock: clock.now });
  });
  afterAll(async () => {
    await hub.stop();
  });

  it.each([
    ["PUT", {}],
    ["PUT with If-None-Match: *", { "if-none-match": "*" }],
  ])("creates it anew with %s: 201, a new created time, its expiry recorded first", async (_how, headers) => {
    const id = `urn:example:expired:${Object.keys(headers).length}`;
    expect((await put(hub, id, minimalTd({ id, title: "Old", registration: { ttl: 60 } }))).status).toBe(201);
    const seqBefore = await lastSeq(hub);
    clock.advance(61_000);
    expect((await hub.request(thingPath(id))).status).toBe(404);

    const res = await hub.request(thingPath(id), {
      method: "PUT",
      headers: { "content-type": "application/td+json", ...headers },
      body: JSON.stringify(minimalTd({ id, title: "New" })),
    });
    expect(res.status).toBe(201);
    expect(res.headers.get("location")).toBe(thingPath(id));
    const td = await json<{ title: string; registration: Json }>(await hub.request(thingPath(id)));
    expect(td.title).toBe("New");
    expect(td.registration).toEqual({ created: clock.iso(), modified: clock.iso(), retrieved: clock.iso() });
    // The Log says what happened, in order: the TD expired, then was registered anew (thing_created).
    const changes = (await hub.hub.store.changesAfter(seqBefore, 100)).filter((c) => c.thing === id);
    expect(changes.map((c) => [c.kind, c.cause.actor, c.previous === undefined])).toEqual([
      ["removed", "hub:expiry", false],
      ["described", "admin", true],
    ]);
  });
});

describe("directory CRUD", () => {
  const clock = manualClock(T0);
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub({}, {}, { clock: clock.now });
  });
  afterAll(async () => {
    await hub.stop();
  });

  it("creates with PUT (201 + Location), replaces (204), patches (204, merged), deletes (204) and then answers 404", async () => {
    const id = "urn:example:crud:lamp";
    const seqBefore = await lastSeq(hub);
    const created = await put(hub, id, minimalTd({ id, description: "on the desk" }));
    expect(created.status).toBe(201);
    expect(created.headers.get("location")).toBe(thingPath(id));

    const fromLocation = await hub.request(created.headers.get("location") ?? "", { auth: false });
    expect(fromLocation.status).toBe(200);
    expect(fromLocation.headers.get("content-type")).toMatch(/^application\/td\+json\b/);
    const first = await json(fromLocation);
    expect(first.id).toBe(id);
    expect(first.title).toBe("Lamp");
    expect(first["@context"]).toEqual(["https://www.w3.org/2022/wot/td/v1.1", DISCOVERY_CONTEXT]);
    expect(first.registration).toEqual({
      created: clock.iso(),
      modified: clock.iso(),
      retrieved: clock.iso(),
    });

    clock.advance(5_000);
    const replaced = await put(hub, id, minimalTd({ id, title: "Lamp 2", description: "on the desk" }));
    expect(replaced.status).toBe(204);
    expect(replaced.headers.get("location")).toBeNull();

    clock.advance(5_000);
    const patched = await patch(hub, id, {
      title: "Desk lamp",
      description: null,
      properties: { on: { type: "boolean", forms: [{ href: "http://lamp.example/on" }] } },
    });
    expect(patched.status).toBe(204);

    const after = await json(await hub.request(thingPath(id), { auth: false }));
    expect(withoutRegistration(after)).toEqual(
      minimalTd({
        id,
        title: "Desk lamp",
        properties: { on: { type: "boolean", forms: [{ href: "http://lamp.example/on" }] } },
      }),
    );
    expect(after.registration).toEqual({
      created: new Date(T0).toISOString(),
      modified: clock.iso(),
      retrieved: clock.iso(),
    });

    const deleted = await hub.request(thingPath(id), { method: "DELETE" });
    expect(deleted.status).toBe(204);
    const gone = await hub.request(thingPath(id), { auth: false });
    expect(gone.status).toBe(404);
    expect(gone.headers.get("content-type")).toMatch(/^application\/problem\+json\b/);
    expect((await hub.request(thingPath(id), { method: "DELETE" })).status).toBe(404);

    expect(await lastSeq(hub)).toBe(seqBefore + 4);
  });

  it("records every mutation as a Change with the whole TD, the previous one, the actor and the time", async () => {
    const id = "urn:example:crud:changes";
    const seqBefore = await lastSeq(hub);
    const v1 = minimalTd({ id, title: "One" });
    const v2 = minimalTd({ id, title: "Two" });
    expect((await put(hub, id, v1)).status).toBe(201);
    clock.advance(1_000);
    expect((await put(hub, id, v2)).status).toBe(204);
    clock.advance(1_000);
    expect((await patch(hub, id, { title: "Three" })).status).toBe(204);
    clock.advance(1_000);
    expect((await hub.request(thingPath(id), { method: "DELETE" })).status).toBe(204);

    const changes = await hub.hub.store.changesAfter(seqBefore, 100);
    const v3 = { ...v2, title: "Three" };
    expect(changes.map((c) => [c.seq, c.thing, c.kind])).toEqual([
      [seqBefore + 1, id, "described"],
      [seqBefore + 2, id, "described"],
      [seqBefore + 3, id, "described"],
      [seqBefore + 4, id, "removed"],
    ]);
    expect(changes.map((c) => [c.value, c.previous])).toEqual([
      [v1, undefined],
      [v2, v1],
      [v3, v2],
      [undefined, v3],
    ]);
    for (const change of changes) expect(change.cause).toEqual({ actor: "admin", via: "http" });
    expect(changes.map((c) => changeTime(c))).toEqual([
      clock.iso(-3_000),
      clock.iso(-2_000),
      clock.iso(-1_000),
      clock.iso(),
    ]);
  });

  it("gives an anonymous TD registered with POST a urn:uuid id, named in the Location that retrieves it", async () => {
    const res = await hub.request("/things", {
      method: "POST",
      headers: { "content-type": "application/td+json" },
      body: JSON.stringify(minimalTd({ title: "Anonymous" })),
    });
    expect(res.status).toBe(201);
    const location = res.headers.get("location") ?? "";
    expect(location).toMatch(
      /^\/things\/urn:uuid:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/,
    );
    const td = await json(await hub.request(location, { auth: false }));
    expect(td.id).toBe(decodeURIComponent(location.slice("/things/".length)));
    expect(td.title).toBe("Anonymous");
    expect(td.registration).toBeDefined();
  });

  it("refuses a POST of a TD that has an id (400, pointer /id) and stores nothing", async () => {
    const seqBefore = await lastSeq(hub);
    const res = await hub.request("/things", {
      method: "POST",
      headers: { "content-type": "application/td+json" },
      body: JSON.stringify(minimalTd({ id: "urn:example:crud:posted" })),
    });
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json\b/);
    const problem = await json<{ errors: Array<{ pointer: string }> }>(res);
    expect(problem.errors.map((e) => e.pointer)).toContain("/id");
    expect((await hub.request(thingPath("urn:example:crud:posted"))).status).toBe(404);
    expect(await lastSeq(hub)).toBe(seqBefore);
  });

  it("serves application/json to a client that asks for it, and application/td+json otherwise", async () => {
    const id = "urn:example:crud:negotiation";
    expect((await put(hub, id, minimalTd({ id }), "application/json")).status).toBe(201);
    const cases: Array<[string | undefined, string]> = [
      [undefined, "application/td+json"],
      ["application/td+json", "application/td+json"],
      ["*/*", "application/td+json"],
      ["application/json", "application/json"],
      ["application/td+json, application/json;q=0.5", "application/td+json"],
      // q=0 means "not acceptable" (RFC 9110 §12.4.2), and weights choose between the two.
      ["application/td+json;q=0, application/json", "application/json"],
      ["application/json, application/td+json;q=0.5", "application/json"],
      ["application/json;q=0.5, application/*;q=0.9", "application/td+json"],
      ["application/json, */*;q=0.1", "application/json"],
      ["application/ld+json", "application/ld+json"],
    ];
    for (const [accept, expected] of cases) {
      const res = await hub.request(thingPath(id), { auth: false, headers: accept ? { accept } : {} });
      expect(res.status, `Accept: ${accept ?? "(none)"}`).toBe(200);
      expect(res.headers.get("content-type"), `Accept: ${accept ?? "(none)"}`).toMatch(
        new RegExp(`^${expected.replace("+", "\\+")}\\b`),
      );
      // The type follows Accept: a shared cache must key its copy on it.
      expect(res.headers.get("vary"), `Accept: ${accept ?? "(none)"}`).toMatch(/\baccept\b/i);
      expect((await json(res)).id).toBe(id);
    }
    // A type no TD is answered in is a 406 (RFC 9110 §15.5.7), not a TD in a type not asked for.
    const html = await hub.request(thingPath(id), { auth: false, headers: { accept: "text/html" } });
    expect(html.status).toBe(406);
    expect(html.headers.get("vary")).toMatch(/\baccept\b/i);
    expect(((await html.json()) as { answers: string[] }).answers).toEqual([
      "application/td+json",
      "application/json",
      "application/ld+json",
    ]);
    const tag = (await hub.request(thingPath(id), { auth: false })).headers.get("etag") ?? "";
    const notModified = await hub.request(thingPath(id), { auth: false, headers: { "if-none-match": tag } });
    expect(notModified.status).toBe(304);
    expect(notModified.headers.get("vary")).toMatch(/\baccept\b/i);
  });

  it("accepts a TD sent as application/td+json with a charset parameter", async () => {
    const id = "urn:example:crud:charset";
    const res = await put(hub, id, minimalTd({ id }), "application/td+json; charset=utf-8");
    expect(res.status).toBe(201);
  });

  it("accepts a TD sent as application/ld+json (JSON-LD, as older directory clients send it), not as a merge patch", async () => {
    const id = "urn:example:crud:json-ld";
    expect((await put(hub, id, minimalTd({ id }), "application/ld+json")).status).toBe(201);
    const patched = await hub.request(thingPath(id), {
      method: "PATCH",
      headers: { "content-type": "application/ld+json" },
      body: JSON.stringify({ title: "Patched" }),
    });
    expect(patched.status).toBe(415);
  });

  it.each([
    ["a slash and a fragment", "https://example.com/building/1/lamp#main"],
    ["a query", "https://example.com/lamp?room=7"],
    ["a percent escape of its own", "urn:example:a%2Fb"],
    ["a slash", "urn:example:a/b"],
    ["non-ASCII characters", "urn:example:lampe-étagère"],
  ])("round-trips an id with %s, percent-encoded in the path", async (_what, id) => {
    const res = await put(hub, id, minimalTd({ id }));
    expect(res.status).toBe(201);
    expect(res.headers.get("location")).toBe(thingPath(id));
    const td = await json(await hub.request(res.headers.get("location") ?? "", { auth: false }));
    expect(td.id).toBe(id);
    const listed = await json<Json[]>(await hub.request("/things?limit=1000", { auth: false }));
    expect(listed.filter((t) => t.id === id)).toHaveLength(1);
    expect((await hub.request(thingPath(id), { method: "DELETE" })).status).toBe(204);
    expect((await hub.request(thingPath(id), { auth: false })).status).toBe(404);
  });

  it("keeps urn:example:a%2Fb and urn:example:a/b apart", async () => {
    const escaped = "urn:example:apart%2Fb";
    const slashed = "urn:example:apart/b";
    expect((await put(hub, escaped, minimalTd({ id: escaped, title: "escaped" }))).status).toBe(201);
    expect((await put(hub, slashed, minimalTd({ id: slashed, title: "slashed" }))).status).toBe(201);
    expect((await json(await hub.request(thingPath(escaped)))).title).toBe("escaped");
    expect((await json(await hub.request(thingPath(slashed)))).title).toBe("slashed");
  });
});

describe("registration information and expiry", () => {
  const clock = manualClock(T0);
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub({}, {}, { clock: clock.now });
  });
  afterAll(async () => {
    await hub.stop();
  });

  it("accepts registration.ttl, answers with expires = registration time + ttl, and drops the TD once it expired", async () => {
    const id = "urn:example:ttl:sensor";
    const seqBefore = await lastSeq(hub);
    const res = await put(hub, id, minimalTd({ id, title: "Short-lived", registration: { ttl: 60 } }));
    expect(res.status).toBe(201);
    const td = await json(await hub.request(thingPath(id)));
    expect(td.registration).toEqual({
      created: clock.iso(),
      modified: clock.iso(),
      ttl: 60,
      expires: clock.iso(60_000),
      retrieved: clock.iso(),
    });

    clock.advance(59_000);
    expect((await hub.request(thingPath(id))).status).toBe(200);

    clock.advance(2_000);
    expect((await hub.request(thingPath(id))).status).toBe(404);
    const listed = await json<Json[]>(await hub.request("/things?limit=1000"));
    expect(listed.map((t) => t.id)).not.toContain(id);
    const search = await hub.request(`/search/jsonpath?query=${encodeURIComponent("$..title")}`);
    expect(await json<unknown[]>(search)).not.toContain("Short-lived");
    // Gone for DELETE as for GET: no one's removal is recorded for a TD that expired on its own.
    const deleted = await hub.request(thingPath(id), { method: "DELETE" });
    expect(deleted.status).toBe(404);
    expect(deleted.headers.get("content-type")).toMatch(/^application\/problem\+json/);

    // The sweep runs every expirySweepMs on its own; run one now so the test need not wait.
    await hub.hub.directory.sweepExpired();
    const removal = (await hub.hub.store.changesAfter(seqBefore, 100)).filter((c) => c.thing === id);
    expect(removal.map((c) => c.kind)).toEqual(["described", "removed"]);
    expect(removal[1]?.cause).toEqual({ actor: "hub:expiry", via: "hub" });
    expect(removal[1]?.previous).toEqual(minimalTd({ id, title: "Short-lived" }));
    expect(await hub.hub.store.getThing(id)).toBeUndefined();
  });

  it("searches the TDs as the directory serves them, registration information included", async () => {
    const leased = "urn:example:search:leased";
    const kept = "urn:example:search:kept";
    expect((await put(hub, leased, minimalTd({ id: leased, registration: { ttl: 120 } }))).status).toBe(201);
    expect((await put(hub, kept, minimalTd({ id: kept }))).status).toBe(201);
    const search = async (query: string) =>
      json<unknown[]>(await hub.request(`/search/jsonpath?query=${encodeURIComponent(query)}`));
    // An operator's question: which registrations expire, and when?
    expect(await search("$[?@.registration.ttl].id")).toEqual([leased]);
    expect(await search(`$[?@.id=='${leased}'].registration.expires`)).toEqual([clock.iso(120_000)]);
    // What a query selects is what GET serves: the enriched TD (WoT Discovery §7.3.2.1.2).
    const [found] = await search(`$[?@.id=='${kept}']`);
    expect(found).toEqual(await json(await hub.request(thingPath(kept))));
    for (const id of [leased, kept]) await hub.request(thingPath(id), { method: "DELETE" });
  });

  it("accepts an absolute registration.expires and keeps it across a merge patch", async () => {
    const id = "urn:example:ttl:absolute";
    const expires = clock.iso(3_600_000);
    expect((await put(hub, id, minimalTd({ id, registration: { expires } }))).status).toBe(201);
    expect(((await json(await hub.request(thingPath(id)))).registration as Json).expires).toBe(expires);
    clock.advance(1_000);
    expect((await patch(hub, id, { title: "Renamed" })).status).toBe(204);
    const after = await json(await hub.request(thingPath(id)));
    expect(after.title).toBe("Renamed");
    expect((after.registration as Json).expires).toBe(expires);
  });

  it("renews a ttl registration with an empty merge patch, and ends the expiry with registration.ttl = null", async () => {
    const id = "urn:example:ttl:heartbeat";
    expect((await put(hub, id, minimalTd({ id, registration: { ttl: 10 } }))).status).toBe(201);
    clock.advance(8_000);
    expect((await patch(hub, id, {})).status).toBe(204);
    const renewed = await json(await hub.request(thingPath(id)));
    expect(renewed.registration).toMatchObject({ ttl: 10, expires: clock.iso(10_000) });
    clock.advance(8_000);
    expect((await hub.request(thingPath(id))).status).toBe(200);

    expect((await patch(hub, id, { registration: { ttl: null } })).status).toBe(204);
    const kept = await json(await hub.request(thingPath(id)));
    expect(kept.registration).not.toHaveProperty("ttl");
    expect(kept.registration).not.toHaveProperty("expires");
    clock.advance(60_000);
    expect((await hub.request(thingPath(id))).status).toBe(200);
  });

  it("moves the expiry when a registration is renewed with a new ttl", async () => {
    const id = "urn:example:ttl:renewed";
    expect((await put(hub, id, minimalTd({ id, registration: { ttl: 10 } }))).status).toBe(201);
    clock.advance(8_000);
    expect((await put(hub, id, minimalTd({ id, registration: { ttl: 10 } }))).status).toBe(204);
    clock.advance(8_000);
    const td = await json(await hub.request(thingPath(id)));
    expect((td.registration as Json).expires).toBe(clock.iso(2_000));
  });

  it("lists only live TDs: a page of limit=2 holds two unexpired TDs and the total leaves the expired one out, before any sweep", async () => {
    const solo = await startTestHub({}, {}, { clock: clock.now });
    try {
      for (const [id, registration] of [
        ["urn:example:page:a", undefined],
        ["urn:example:page:b", { ttl: 10 }],
        ["urn:example:page:c", undefined],
      ] as const) {
        expect((await put(solo, id, minimalTd({ id, ...(registration && { registration }) }))).status).toBe(
          201,
        );
      }
      clock.advance(11_000);
      const res = await solo.request("/things?limit=2", { auth: false });
      expect((await json<Json[]>(res)).map((td) => td.id)).toEqual([
        "urn:example:page:a",
        "urn:example:page:c",
      ]);
      expect(nextLink(res)).toBeUndefined();
      const collection = await json(await solo.request("/things?format=collection", { auth: false }));
      expect(collection.total).toBe(2);
    } finally {
      await solo.stop();
    }
  });

  it("does not store the registration member inside the TD", async () => {
    const id = "urn:example:ttl:clean";
    expect((await put(hub, id, minimalTd({ id, registration: { ttl: 3600 } }))).status).toBe(201);
    const record = await hub.hub.store.getThing(id);
    expect(record?.td).toEqual(minimalTd({ id }));
  });
});

/** A request to a Thing's TD with the given (conditional) headers, and a TD or merge patch as its body. */
function sendConditional(
  hub: TestHub,
  method: string,
  id: string,
  headers: Record<string, string>,
  body?: unknown,
) {
  return hub.request(thingPath(id), {
    method,
    headers: {
      ...headers,
      ...(body !== undefined && {
        "content-type": method === "PATCH" ? "application/merge-patch+json" : "application/td+json",
      }),
    },
    ...(body !== undefined && { body: JSON.stringify(body) }),
  });
}

describe("conditional requests (ETag, If-Match, If-None-Match)", () => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub();
  });
  afterAll(async () => {
    await hub.stop();
  });

  const send = (method: string, id: string, headers: Record<string, string>, body?: unknown) =>
    sendConditional(hub, method, id, headers, body);

  it("tags a TD with an ETag that every change moves, and answers 304 to If-None-Match with it", async () => {
    const id = "urn:example:etag:lamp";
    const created = await put(hub, id, minimalTd({ id }));
    const tag = created.headers.get("etag");
    expect(tag).toMatch(/^"\d+"$/);
    const read = await hub.request(thingPath(id));
    expect(read.headers.get("etag")).toBe(tag);
    const cached = await send("GET", id, { "if-none-match": `W/${tag ?? ""}` });
    expect(cached.status).toBe(304);
    const patched = await patch(hub, id, { title: "Renamed" });
    expect(patched.headers.get("etag")).not.toBe(tag);
    expect((await send("GET", id, { "if-none-match": tag ?? "" })).status).toBe(200);
  });

  it("records nothing for a PUT or a PATCH that changes nothing: 204, the same ETag, no Change", async () => {
    const id = "urn:example:etag:same";
    const created = await put(hub, id, minimalTd({ id, title: "Same" }));
    const tag = created.headers.get("etag");
    const before = await hub.hub.store.lastSeq();
    const again = await put(hub, id, minimalTd({ id, title: "Same" }));
    expect(again.status).toBe(204);
    expect(again.headers.get("etag")).toBe(tag);
    const empty = await patch(hub, id, {});
    expect(empty.status).toBe(204);
    expect(empty.headers.get("etag")).toBe(tag);
    expect(await hub.hub.store.lastSeq()).toBe(before);
    // The same members in another order are the same TD.
    const { title, ...rest } = minimalTd({ id });
    expect((await put(hub, id, { title: "Same", ...rest, id })).headers.get("etag")).toBe(tag);
    expect(title).toBe("Lamp");
    expect(await hub.hub.store.lastSeq()).toBe(before);
    // A registration with a ttl renews its expiry, which is recorded.
    expect((await put(hub, id, minimalTd({ id, title: "Same", registration: { ttl: 60 } }))).status).toBe(
      204,
    );
    expect(await hub.hub.store.lastSeq()).toBe(before + 1);
  });

  it("refuses a PUT, PATCH or DELETE whose If-Match is not the current tag with 412, and changes nothing", async () => {
    const id = "urn:example:etag:switch";
    const first = (await put(hub, id, minimalTd({ id, title: "One" }))).headers.get("etag") ?? "";
    // Someone else changes it: a client still holding the first tag must not overwrite that.
    const second = (await patch(hub, id, { title: "Two" })).headers.get("etag") ?? "";
    const seq = await lastSeq(hub);
    for (const [method, body] of [
      ["PUT", minimalTd({ id, title: "Stale" })],
      ["PATCH", { title: "Stale" }],
      ["DELETE", undefined],
    ] as const) {
      const res = await send(method, id, { "if-match": first }, body);
      expect(res.status, method).toBe(412);
      expect((await json(res)).type).toBe("urn:hyperthings:problem:precondition-failed");
    }
    expect(await lastSeq(hub)).toBe(seq);
    expect((await json(await hub.request(thingPath(id)))).title).toBe("Two");

    const res = await send("PATCH", id, { "if-match": second }, { title: "Three" });
    expect(res.status).toBe(204);
    expect((await send("DELETE", id, { "if-match": res.headers.get("etag") ?? "" })).status).toBe(204);
    expect((await send("DELETE", id, { "if-match": "*" })).status).toBe(412);
  });

  it("creates only what is absent with If-None-Match: *", async () => {
    const id = "urn:example:etag:new";
    expect((await send("PUT", id, { "if-none-match": "*" }, minimalTd({ id, title: "First" }))).status).toBe(
      201,
    );
    expect((await send("PUT", id, { "if-none-match": "*" }, minimalTd({ id, title: "Second" }))).status).toBe(
      412,
    );
    expect((await json(await hub.request(thingPath(id)))).title).toBe("First");
  });
});

describe("conditional requests by time (Last-Modified, If-Modified-Since, If-Unmodified-Since)", () => {
  const clock = manualClock(T0);
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub({}, {}, { clock: clock.now });
  });
  afterAll(async () => {
    await hub.stop();
  });

  const send = (method: string, id: string, headers: Record<string, string>, body?: unknown) =>
    sendConditional(hub, method, id, headers, body);
  const date = (ms: number) => new Date(ms).toUTCString();

  it("gives a TD the time of its last change as Last-Modified, and answers If-Modified-Since with 304 when it did not change since", async () => {
    const id = "urn:example:since:lamp";
    clock.advance(60_000);
    const registered = clock.now().getTime() + 700; // within the second: HTTP-dates hold whole ones
    clock.advance(700);
    expect((await put(hub, id, minimalTd({ id }))).status).toBe(201);
    clock.advance(5_000);
    const read = await hub.request(thingPath(id));
    expect(read.headers.get("last-modified")).toBe(date(registered));
    const tag = read.headers.get("etag") ?? "";

    const same = await send("GET", id, { "if-modified-since": date(registered) });
    expect(same.status).toBe(304);
    expect(await same.text()).toBe("");
    expect(same.headers.get("etag")).toBe(tag);
    expect(same.headers.get("last-modified")).toBe(date(registered));
    expect((await send("GET", id, { "if-modified-since": date(registered - 1000) })).status).toBe(200);
    // Not an HTTP-date: ignored (RFC 9110 §13.1.3), so the TD is sent.
    for (const bad of ["yesterday", "2099-01-01T00:00:00Z", `${date(registered)}, ${date(registered)}`]) {
      expect((await send("GET", id, { "if-modified-since": bad })).status, bad).toBe(200);
    }
    // If-None-Match decides when both are sent (§13.2.2): a tag that does not match is a 200.
    expect(
      (await send("GET", id, { "if-modified-since": date(registered), "if-none-match": '"0"' })).status,
    ).toBe(200);
    // The TD changes: its Last-Modified moves with it, and the old date no longer holds.
    clock.advance(10_000);
    expect((await patch(hub, id, { title: "Renamed" })).status).toBe(204);
    const after = await send("GET", id, { "if-modified-since": date(registered) });
    expect(after.status).toBe(200);
    expect(after.headers.get("last-modified")).toBe(date(clock.now().getTime()));
  });

  it("refuses a PUT, PATCH or DELETE with 412 when the TD changed after If-Unmodified-Since, and changes nothing", async () => {
    const id = "urn:example:since:switch";
    clock.advance(60_000);
    expect((await put(hub, id, minimalTd({ id, title: "One" }))).status).toBe(201);
    const seen = clock.now().getTime();
    clock.advance(30_000);
    const tag = (await patch(hub, id, { title: "Two" })).headers.get("etag") ?? "";
    const seq = await lastSeq(hub);
    for (const [method, body] of [
      ["PUT", minimalTd({ id, title: "Stale" })],
      ["PATCH", { title: "Stale" }],
      ["DELETE", undefined],
    ] as const) {
      const res = await send(method, id, { "if-unmodified-since": date(seen) }, body);
      expect(res.status, method).toBe(412);
      const problem = await json<{ type: string; detail: string }>(res);
      expect(problem.type).toBe("urn:hyperthings:problem:precondition-failed");
      expect(problem.detail).toBe(
        `If-Unmodified-Since: the TD of ${id} was modified at ${date(seen + 30_000)}, after ${date(seen)}; read it again`,
      );
    }
    expect((await send("GET", id, { "if-unmodified-since": date(seen) })).status).toBe(412);
    expect(await lastSeq(hub)).toBe(seq);
    expect((await json(await hub.request(thingPath(id)))).title).toBe("Two");

    // If-Match decides when both are sent (§13.2.2), and a date that is no HTTP-date is ignored.
    expect(
      (await send("PATCH", id, { "if-unmodified-since": date(seen), "if-match": tag }, { title: "Three" }))
        .status,
    ).toBe(204);
    expect((await send("PATCH", id, { "if-unmodified-since": "last week" }, { title: "Four" })).status).toBe(
      204,
    );
    // Unmodified since a date at or after its last change: the write goes through.
    const now = date(clock.now().getTime());
    expect(
      (await send("PUT", id, { "if-unmodified-since": now }, minimalTd({ id, title: "Five" }))).status,
    ).toBe(204);
    expect((await send("DELETE", id, { "if-unmodified-since": now })).status).toBe(204);
    // A Thing not registered has no modification date: the header is ignored.
    expect((await send("PUT", id, { "if-unmodified-since": date(seen) }, minimalTd({ id }))).status).toBe(
      201,
    );
  });

  it("gives the listing a weak ETag that moves with the listing and the page asked for, and answers If-None-Match with 304", async () => {
    const id = "urn:example:since:listed";
    const first = await hub.request("/things?limit=10");
    const tag = first.headers.get("etag") ?? "";
    expect(tag).toMatch(/^W\/"[^"]+"$/);
    const cached = await hub.request("/things?limit=10", { headers: { "if-none-match": tag } });
    expect(cached.status).toBe(304);
    expect(await cached.text()).toBe("");
    expect(cached.headers.get("etag")).toBe(tag);
    // Compared weakly (RFC 9110 §13.1.2): the same tag without W/ matches too.
    const strong = tag.slice(2);
    expect((await hub.request("/things?limit=10", { headers: { "if-none-match": strong } })).status).toBe(
      304,
    );
    // Another page, or another format, is another answer.
    for (const other of [
      "/things?limit=5",
      "/things?limit=10&offset=1",
      "/things?limit=10&format=collection",
    ]) {
      const res = await hub.request(other, { headers: { "if-none-match": tag } });
      expect(res.status, other).toBe(200);
      expect(res.headers.get("etag"), other).not.toBe(tag);
    }
    // A registration and an update each move it; the removal brings back the listing of the start.
    const tags = [tag];
    const listed = async () => {
      const res = await hub.request("/things?limit=10", { headers: { "if-none-match": tags.join(", ") } });
      expect(res.status).toBe(200);
      tags.push(res.headers.get("etag") ?? "");
    };
    await put(hub, id, minimalTd({ id }));
    await listed();
    await patch(hub, id, { title: "Renamed" });
    await listed();
    expect(new Set(tags).size).toBe(3);
    await hub.request(thingPath(id), { method: "DELETE" });
    const back = await hub.request("/things?limit=10", { headers: { "if-none-match": tag } });
    expect(back.status).toBe(304);
  });
});

describe("listing and search", () => {
  let hub: TestHub;
  const ids = Array.from({ length: 25 }, (_, i) => `urn:example:item-${String(i).padStart(2, "0")}`);

  beforeAll(async () => {
    hub = await startTestHub();
    // Registered out of order: the listing must sort by id, not by time of registration.
    const shuffled = ids.map((_, i) => ids[(i * 7) % ids.length] ?? "");
    for (const id of shuffled) {
      const res = await put(hub, id, minimalTd({ id, title: `Item ${id.slice(-2)}` }));
      expect(res.status).toBe(201);
    }
  });
  afterAll(async () => {
    await hub.stop();
  });

  it("pages with limit and offset, linking each page to the next with Link rel=next until the last", async () => {
    const seen: string[] = [];
    const pageSizes: number[] = [];
    let url: string | undefined = "/things?limit=10";
    for (let pages = 0; url !== undefined; pages++) {
      expect(pages, "the Link chain does not end").toBeLessThan(10);
      const res = await hub.request(url, { auth: false });
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^application\/ld\+json\b/);
      const page = await json<Json[]>(res);
      pageSizes.push(page.length);
      for (const td of page) {
        seen.push(String(td.id));
        expect(td.registration).toBeDefined();
      }
      const next = nextLink(res);
      if (pages === 0) expect(next).toBe("/things?offset=10&limit=10");
      url = next;
    }
    expect(pageSizes).toEqual([10, 10, 5]);
    expect(seen).toEqual(ids);
  });

  it("lists everything in one page without a Link when the page is large enough", async () => {
    const res = await hub.request("/things", { auth: false });
    expect(res.status).toBe(200);
    expect(nextLink(res)).toBeUndefined();
    expect((await json<Json[]>(res)).map((td) => td.id)).toEqual(ids);
  });

  it("answers an offset past the end with an empty page and no Link", async () => {
    const res = await hub.request("/things?offset=25&limit=10", { auth: false });
    expect(res.status).toBe(200);
    expect(nextLink(res)).toBeUndefined();
    expect(await json(res)).toEqual([]);
  });

  it("answers format=collection with a ThingCollection naming the total and the next page", async () => {
    const res = await hub.request("/things?format=collection&limit=10&offset=20", { auth: false });
    expect(res.status).toBe(200);
    const collection = await json(res);
    expect(collection["@type"]).toBe("ThingCollection");
    expect(collection.total).toBe(25);
    expect((collection.members as Json[]).map((td) => td.id)).toEqual(ids.slice(20));
    expect(collection.next).toBeUndefined();

    const firstRes = await hub.request("/things?format=collection&limit=10", { auth: false });
    const first = await json(firstRes);
    expect((first.members as Json[]).map((td) => td.id)).toEqual(ids.slice(0, 10));
    // The next page is a collection too (WoT Discovery §7.3.2.1.5: the next link keeps every argument).
    expect(first["@id"]).toBe("/things?offset=0&limit=10&format=collection");
    expect(first.next).toBe("/things?offset=10&limit=10&format=collection");
    expect(nextLink(firstRes)).toBe(first.next);
    const second = await json(await hub.request(String(first.next), { auth: false }));
    expect(second["@type"]).toBe("ThingCollection");
    expect((second.members as Json[]).map((td) => td.id)).toEqual(ids.slice(10, 20));
  });

  it("names the collection on every page with a canonical link whose etag follows the collection's state", async () => {
    const etagOf = (res: Response) => {
      const match = /<\/things>\s*;\s*rel="canonical"\s*;\s*etag="([^"]+)"/.exec(
        res.headers.get("link") ?? "",
      );
      expect(match, "a canonical link with an etag").not.toBeNull();
      return match?.[1];
    };
    const first = etagOf(await hub.request("/things?limit=10", { auth: false }));
    expect(etagOf(await hub.request("/things?offset=10&limit=10", { auth: false }))).toBe(first);
    expect(etagOf(await hub.request("/things?offset=20&limit=10", { auth: false }))).toBe(first);

    const id = "urn:example:item-99";
    expect((await put(hub, id, minimalTd({ id }))).status).toBe(201);
    const added = etagOf(await hub.request("/things?limit=10", { auth: false }));
    expect(added).not.toBe(first);
    expect((await patch(hub, id, { title: "Renamed" })).status).toBe(204);
    const patched = etagOf(await hub.request("/things?limit=10", { auth: false }));
    expect(patched).not.toBe(added);
    expect((await hub.request(thingPath(id), { method: "DELETE" })).status).toBe(204);
    // The collection is again what it was at first, and so is its etag.
    expect(etagOf(await hub.request("/things?limit=10", { auth: false }))).toBe(first);
  });

  it("finds the TDs a JSONPath filter selects, the query running over the array of all TDs (W3C TDD tests: $[?(@.tag=='x')])", async () => {
    const res = await hub.request(`/search/jsonpath?query=${encodeURIComponent("$[?@.title=='Item 07']")}`, {
      auth: false,
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/json\b/);
    const found = await json<Json[]>(res);
    expect(found.map((td) => withoutRegistration(td))).toEqual([
      minimalTd({ id: "urn:example:item-07", title: "Item 07" }),
    ]);
  });

  it("refuses a match() whose regular expression backtracks catastrophically with 400, and keeps answering", async () => {
    const id = "urn:example:item-redos";
    expect((await put(hub, id, minimalTd({ id, title: `${"a".repeat(40)}!` }))).status).toBe(201);
    try {
      const res = await hub.request(
        `/search/jsonpath?query=${encodeURIComponent("$[?match(@.title, '(a|a)*')].id")}`,
        { auth: false },
      );
      expect(res.status).toBe(400);
      expect((await json(res)).detail).toMatch(/match\(\) ran longer than/);
      const found = await hub.request(
        `/search/jsonpath?query=${encodeURIComponent("$[?match(@.title, 'a+!')].id")}`,
        {
          auth: false,
        },
      );
      expect(await json(found)).toEqual([id]);
    } finally {
      expect((await hub.request(thingPath(id), { method: "DELETE" })).status).toBe(204);
    }
  });

  it("refuses a reported value on which the TD's pattern backtracks catastrophically, as not fitting its schema", async () => {
    const id = "urn:example:redos:pattern";
    const td = minimalTd({
      id,
      properties: {
        serial: { type: "string", pattern: "^(a|a)*$", forms: [{ href: "http://127.0.0.1:9/s" }] },
      },
    });
    expect((await put(hub, id, td)).status).toBe(201);
    try {
      const report = (value: string) =>
        hub.request(`${thingPath(id)}/changes`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify([{ kind: "reported", affordance: "serial", value }]),
        });
      const slow = await report(`${"a".repeat(40)}!`);
      expect(slow.status).toBe(400);
      expect((await json(slow)).errors).toEqual([
        { pointer: "/body/0/value", detail: 'must match pattern "^(a|a)*$"' },
      ]);
      expect((await report("aaaa")).status).toBeLessThan(300);
    } finally {
      expect((await hub.request(thingPath(id), { method: "DELETE" })).status).toBe(204);
    }
  });

  it("projects search results: $[?@.title=='Item 12'].id gives that TD's id", async () => {
    const res = await hub.request(
      `/search/jsonpath?query=${encodeURIComponent("$[?@.title=='Item 12'].id")}`,
      {
        auth: false,
      },
    );
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual(["urn:example:item-12"]);
  });

  it("selects values across every TD in id order: $..title", async () => {
    const res = await hub.request(`/search/jsonpath?query=${encodeURIComponent("$..title")}`, {
      auth: false,
    });
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual(ids.map((id) => `Item ${id.slice(-2)}`));
  });

  it("answers a JSONPath query that matches nothing with []", async () => {
    const res = await hub.request(
      `/search/jsonpath?query=${encodeURIComponent("$[?@.title=='No such thing']")}`,
      {
        auth: false,
      },
    );
    expect(res.status).toBe(200);
    expect(await json(res)).toEqual([]);
  });

  it("refuses an invalid JSONPath with 400 and the pointer /query", async () => {
    const res = await hub.request(`/search/jsonpath?query=${encodeURIComponent("$[?@.title==")}`, {
      auth: false,
    });
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json\b/);
    const problem = await json<{ detail: string; errors: Array<{ pointer: string }> }>(res);
    expect(problem.detail).toMatch(/JSONPath/);
    expect(problem.errors.map((e) => e.pointer)).toEqual(["/query"]);
  });
});

describe("the directory's own description and operations endpoints", () => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub();
  });
  afterAll(async () => {
    await hub.stop();
  });

  it("serves at /.well-known/wot a valid TD 1.1 of @type ThingDirectory whose base is the hub", async () => {
    const res = await hub.request("/.well-known/wot", { auth: false });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^application\/td\+json\b/);
    const td = await json(res);
    expect(() => validateThingDescription(td)).not.toThrow();
    expect(td["@type"]).toBe("ThingDirectory");
    expect(td["@context"]).toContain(DISCOVERY_CONTEXT);
    expect(td.base).toBe(`${hub.url}/`);
    expect(td.id).toBe(hub.hub.id);
    expect(Object.keys(td.properties as Json)).toContain("things");
    expect(Object.keys(td.events as Json).sort()).toEqual(["thingCreated", "thingDeleted", "thingUpdated"]);
    // The listing names every argument GET /things takes (§7.3.2.4's Thing Model), format too:
    // a WoT client expanding the form asks for a ThingCollection the hub serves.
    const things = (td.properties as Record<string, { uriVariables: Json; forms: Array<{ href: string }> }>)
      .things;
    expect(Object.keys(things?.uriVariables ?? {}).sort()).toEqual(["format", "limit", "offset"]);
    expect(things?.forms[0]?.href).toBe("things{?offset,limit,format}");
    const page = await hub.request("/things?offset=0&limit=2&format=collection", { auth: false });
    expect(page.status).toBe(200);
    expect((await json(page))["@type"]).toBe("ThingCollection");
  });

  it("serves an OpenAPI 3.1 document that lists /things and the other directory routes", async () => {
    const res = await hub.request("/openapi.json", { auth: false });
    expect(res.status).toBe(200);
    const doc = await json<{ openapi: string; paths: Record<string, Json> }>(res);
    expect(doc.openapi).toMatch(/^3\.1\./);
    expect(Object.keys(doc.paths)).toEqual(
      expect.arrayContaining(["/things", "/search/jsonpath", "/events", "/.well-known/wot", "/health"]),
    );
    expect(Object.keys(doc.paths["/things"] ?? {})).toEqual(expect.arrayContaining(["get", "post"]));
    expect(Object.keys(doc.paths["/things/{id}"] ?? {})).toEqual(
      expect.arrayContaining(["get", "put", "patch", "delete"]),
    );
    expect(Object.keys(doc.paths["/things/batch"] ?? {})).toStrictEqual(["post"]);
  });

  it("answers /health without a token with the number of Things and the Log's last seq", async () => {
    const before = await json(await hub.request("/health", { auth: false }));
    expect(before).toMatchObject({ status: "ok", hub: hub.hub.id, things: 0, lastSeq: 0 });
    expect(typeof before.version).toBe("string");
    expect((await put(hub, "urn:example:health", minimalTd({ id: "urn:example:health" }))).status).toBe(201);
    const after = await json(await hub.request("/health", { auth: false }));
    expect(after).toMatchObject({ things: 1, lastSeq: 1 });
  });

  it("answers /health with 503 and the reason while the store's writes fail for want of the disk", async () => {
    // The store's own account (sqlite-store.test.ts makes a real SQLITE_FULL set it).
    const failing = { since: "2030-01-01T00:00:00.000Z", reason: "The hub's disk is full (/data): …" };
    const spy = vi.spyOn(hub.hub.store, "writeFailure").mockReturnValue(failing);
    try {
      const response = await hub.request("/health", { auth: false });
      expect(response.status).toBe(503);
      expect(await response.json()).toMatchObject({
        status: "failing",
        writes: { failingSince: failing.since, reason: failing.reason },
      });
    } finally {
      spy.mockRestore();
    }
    const healthy = await hub.request("/health", { auth: false });
    expect(healthy.status).toBe(200);
    expect(await healthy.json()).not.toHaveProperty("writes");
  });
});
