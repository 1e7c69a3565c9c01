// The graph through a real hub over HTTP: links as edges (dangling until their Thing arrives),
// linked/unlinked Changes, typed queries with subtypes and full IRIs, relations k-hop and
// transitive, paging, problem documents for bad filters, and the index rebuilt after a restart.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Change } from "../src/core/index.js";
import { minimalTd, startTestHub, type TestHub } from "./support/test-hub.js";

const SAREF = ["https://www.w3.org/2022/wot/td/v1.1", { saref: "https://saref.etsi.org/core/" }];

function sensor(id: string, room: string) {
  return minimalTd({
    "@context": SAREF,
    "@type": "saref:TemperatureSensor",
    id,
    title: `Sensor ${id}`,
    properties: { temperature: { type: "number", forms: [{ href: "http://127.0.0.1:9/t" }] } },
    links: [{ rel: "partOf", href: room }],
  });
}

function thing(id: string, type: string, links: Array<{ rel: string; href: string }> = []) {
  return minimalTd({ "@type": type, id, title: id.split(":").pop(), links });
}

describe("graph API", () => {
  let hub: TestHub;
  beforeEach(async () => {
    hub = await startTestHub();
  });
  afterEach(async () => {
    await hub.stop();
  });

  async function put(td: Record<string, unknown>): Promise<void> {
    const response = await hub.request(`/things/${encodeURIComponent(String(td.id))}`, {
      method: "PUT",
      headers: { "content-type": "application/td+json" },
      body: JSON.stringify(td),
    });
    expect(response.status, await response.clone().text()).toBeLessThan(300);
  }

  async function report(id: string, affordance: string, value: unknown): Promise<void> {
    const response = await hub.request(`/things/${encodeURIComponent(id)}/changes`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify([{ kind: "reported", affordance, value }]),
    });
    expect(response.status, await response.clone().text()).toBeLessThan(300);
  }

  async function find(
    filter: string,
    extra = "",
  ): Promise<{ status: number; body: Record<string, unknown> }> {
    const response = await hub.request(`/graph?filter=${encodeURIComponent(filter)}${extra}`);
    return { status: response.status, body: (await response.json()) as Record<string, unknown> };
  }

  async function ids(filter: string): Promise<string[]> {
    const { status, body } = await find(filter);
    expect(status, JSON.stringify(body)).toBe(200);
    return (body.items as Array<{ id: string }>).map((i) => i.id);
  }

  async function fleet(): Promise<void> {
    await put(thing("urn:t:building-3", "brick:Building"));
    await put(thing("urn:t:floor-1", "brick:Floor", [{ rel: "partOf", href: "urn:t:building-3" }]));
    await put(thing("urn:t:room-a", "brick:Room", [{ rel: "partOf", href: "urn:t:floor-1" }]));
    await put(thing("urn:t:room-b", "brick:Room", [{ rel: "partOf", href: "urn:t:building-9" }]));
    await put(sensor("urn:t:sensor-hot", "urn:t:room-a"));
    await put(sensor("urn:t:sensor-cool", "urn:t:room-a"));
    await put(sensor("urn:t:sensor-elsewhere", "urn:t:room-b"));
    await report("urn:t:sensor-hot", "temperature", 34.5);
    await report("urn:t:sensor-cool", "temperature", 21);
    await report("urn:t:sensor-elsewhere", "temperature", 40);
  }

  it("answers 'every temperature sensor in building 3 above 30' with the Things' current state", async () => {
    await fleet();
    const { status, body } = await find(
      'type = saref:TemperatureSensor AND state.temperature > 30 AND out(partOf, *) { id = "urn:t:building-3" }',
    );
    expect(status).toBe(200);
    const items = body.items as Array<{ id: string; td: { title: string }; state: Record<string, unknown> }>;
    expect(items.map((i) => i.id)).toEqual(["urn:t:sensor-hot"]);
    expect(items[0]?.state).toEqual({ temperature: 34.5 });
    expect(items[0]?.td.title).toBe("Sensor urn:t:sensor-hot");
    expect(body.next).toBeUndefined();
  });

  it("matches state filters on a reading once it is acknowledged, never on a removed Thing's, and on a Thing registered again only on what it reported since", async () => {
    await fleet();
    // The first query on a property reads its values from the store; later readings update them.
    expect(await ids("state.temperature > 30")).toEqual(["urn:t:sensor-elsewhere", "urn:t:sensor-hot"]);
    await report("urn:t:sensor-cool", "temperature", 31);
    expect(await ids("state.temperature > 30")).toEqual([
      "urn:t:sensor-cool",
      "urn:t:sensor-elsewhere",
      "urn:t:sensor-hot",
    ]);
    const removed = await hub.request(`/things/${encodeURIComponent("urn:t:sensor-hot")}`, {
      method: "DELETE",
    });
    expect(removed.status).toBeLessThan(300);
    expect(await ids("state.temperature > 30")).toEqual(["urn:t:sensor-cool", "urn:t:sensor-elsewhere"]);
    expect(await ids("state.temperature >= 34.5")).toEqual(["urn:t:sensor-elsewhere"]);
    // Registered again, it starts with no state (its history is still there): its old
    // registration's reading neither is its state nor matches, until it reports one of its own.
    await put(sensor("urn:t:sensor-hot", "urn:t:room-a"));
    const stateOf = async () =>
      (
        (await (await hub.request(`/things/${encodeURIComponent("urn:t:sensor-hot")}/state`)).json()) as {
          properties: Record<string, { value: unknown }>;
        }
      ).properties;
    expect(await stateOf()).toEqual({});
    expect(await ids("state.temperature >= 34.5")).toEqual(["urn:t:sensor-elsewhere"]);
    await report("urn:t:sensor-hot", "temperature", 35);
    expect((await stateOf()).temperature?.value).toBe(35);
    const { body } = await find("state.temperature >= 34.5");
    expect(body.items).toEqual([
      expect.objectContaining({ id: "urn:t:sensor-elsewhere", state: { temperature: 40 } }),
      expect.objectContaining({ id: "urn:t:sensor-hot", state: { temperature: 35 } }),
    ]);
  });

  it("compares types as full IRIs and finds subtypes through the vocabulary", async () => {
    await fleet();
    const sensors = ["urn:t:sensor-cool", "urn:t:sensor-elsewhere", "urn:t:sensor-hot"];
    expect(await ids("type = https://saref.etsi.org/core/TemperatureSensor")).toEqual(sensors);
    expect(await ids("type = TemperatureSensor")).toEqual(sensors);
    // saref:Sensor is a supertype of saref:TemperatureSensor in vocab/types.json.
    expect(await ids("type = saref:Sensor")).toEqual(sensors);
    expect(await ids("type = saref:Actuator")).toEqual([]);
    expect(await ids("type = brick:Location AND NOT type = brick:Room")).toEqual([
      "urn:t:building-3",
      "urn:t:floor-1",
    ]);
  });

  it("reads a prefix the vocabulary lacks as the registered TDs declare it, in the graph and in the feed", async () => {
    const homie = "https://homieiot.github.io/specification/#";
    const device = (id: string, namespace: string) =>
      minimalTd({
        "@context": ["https://www.w3.org/2022/wot/td/v1.1", { homie: namespace }],
        "@type": "homie:Device",
        id,
        title: id,
        properties: { temperature: { type: "number", forms: [{ href: "http://127.0.0.1:9/t" }] } },
      });
    await put(device("urn:t:homie-1", homie));
    await report("urn:t:homie-1", "temperature", 20);
    expect(await ids("type = homie:Device")).toEqual(["urn:t:homie-1"]);
    expect(await ids(`type = ${homie}Device`)).toEqual(["urn:t:homie-1"]);
    const feed = await hub.request(`/changes?type=${encodeURIComponent("homie:Device")}&kind=reported`);
    expect(((await feed.json()) as { changes: Change[] }).changes.map((c) => [c.thing, c.value])).toEqual([
      ["urn:t:homie-1", 20],
    ]);
    // A TD that gives the prefix another namespace: the short form no longer says which.
    await put(device("urn:t:other-homie", "https://example.com/not-homie#"));
    const ambiguous = await hub.request(`/changes?type=${encodeURIComponent("homie:Device")}`);
    expect(ambiguous.status).toBe(400);
    expect(((await ambiguous.json()) as { detail: string }).detail).toBe(
      `The prefix homie: means ${homie} or https://example.com/not-homie# in different TDs: write the type as a full IRI`,
    );
    expect((await find("type = homie:Device")).status).toBe(400);
    expect(await ids(`type = ${homie}Device`)).toEqual(["urn:t:homie-1"]);
  });

  it("reads a relation's prefix the vocabulary lacks as the registered TDs declare it", async () => {
    const rels = "https://example.com/rels#";
    const pump = (id: string, namespace: string) =>
      minimalTd({
        "@context": ["https://www.w3.org/2022/wot/td/v1.1", { ex: namespace }],
        id,
        title: id,
        links: [{ rel: "ex:feeds", href: "urn:t:tank" }],
      });
    await put(pump("urn:t:pump", rels));
    await put(thing("urn:t:tank", "Tank"));
    expect(await ids('out(ex:feeds) { id = "urn:t:tank" }')).toEqual(["urn:t:pump"]);
    expect(await ids(`out(${rels}feeds) { id = "urn:t:tank" }`)).toEqual(["urn:t:pump"]);
    expect(await ids("in(ex:feeds)")).toEqual(["urn:t:tank"]);
    const links = await hub.request(`/things/${encodeURIComponent("urn:t:pump")}/links?rel=ex:feeds`);
    expect(await links.json()).toEqual([
      { from: "urn:t:pump", rel: "ex:feeds", to: "urn:t:tank", resolved: true },
    ]);
    // Another TD gives ex another namespace: the short form no longer says which relation.
    await put(pump("urn:t:other-pump", "https://example.org/other#"));
    const ambiguous = await find("out(ex:feeds)");
    expect(ambiguous.status).toBe(400);
    expect(ambiguous.body.detail).toBe(
      `The prefix ex: means ${rels} or https://example.org/other# in different TDs: write the relation as a full IRI`,
    );
    expect(await ids(`out(${rels}feeds)`)).toEqual(["urn:t:pump"]);
  });

  it("keeps bare link relations bare in a TD whose context sets @vocab (rel is not vocabulary-relative)", async () => {
    await put(thing("urn:t:host", "Host"));
    await put(
      minimalTd({
        "@context": ["https://www.w3.org/2022/wot/td/v1.1", { "@vocab": "https://schema.org/" }],
        "@type": "SoftwareApplication",
        id: "urn:t:app",
        title: "app",
        links: [
          { rel: "runsOn", href: "urn:t:host" },
          { rel: "alternate", href: "urn:t:host" },
        ],
      }),
    );
    expect(await ids('out(runsOn) { id = "urn:t:host" }')).toEqual(["urn:t:app"]);
    expect(await ids('out(alternate) { id = "urn:t:host" }')).toEqual(["urn:t:app"]);
    // @type is vocabulary-relative: the app is a schema.org SoftwareApplication.
    expect(await ids("type = https://schema.org/SoftwareApplication")).toEqual(["urn:t:app"]);
    const links = await hub.request(`/things/${encodeURIComponent("urn:t:app")}/links?rel=runsOn`);
    expect(await links.json()).toEqual([
      { from: "urn:t:app", rel: "runsOn", to: "urn:t:host", resolved: true },
    ]);
  });

  it("names the member or parameter that holds a malformed link target or relation", async () => {
    await put(thing("urn:t:host", "Host"));
    const path = `/things/${encodeURIComponent("urn:t:host")}/links`;
    const pointers = async (response: Response) => {
      expect(response.status).toBe(400);
      return ((await response.json()) as { errors: Array<{ pointer: string }> }).errors.map((e) => e.pointer);
    };
    const post = (body: unknown) =>
      hub.request(path, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    expect(await pointers(await post({ rel: "hosts", href: "web 1" }))).toEqual(["/body/href"]);
    expect(await pointers(await post({ rel: "ht:", href: "urn:t:web" }))).toEqual(["/body/rel"]);
    expect(await pointers(await hub.request(`${path}?rel=hosts&href=web`, { method: "DELETE" }))).toEqual([
      "/query/href",
    ]);
  });

  it("refuses a change feed filtered by a malformed Thing id or type with a 400 naming the parameter", async () => {
    for (const [query, pointer] of [
      ["thing=lamp%201", "/query/thing"],
      ["type=bad%20type", "/query/type"],
      ["type=saref%3A", "/query/type"],
    ] as const) {
      for (const path of ["/changes", "/changes/stream"]) {
        const response = await hub.request(`${path}?${query}`);
        expect(response.status, `${path}?${query}`).toBe(400);
        const problem = (await response.json()) as { errors: Array<{ pointer: string }> };
        expect(problem.errors.map((e) => e.pointer)).toEqual([pointer]);
      }
    }
  });

  it("follows relations one hop, k hops and transitively, both ways", async () => {
    await fleet();
    expect(await ids('out(partOf) { id = "urn:t:room-a" }')).toEqual([
      "urn:t:sensor-cool",
      "urn:t:sensor-hot",
    ]);
    expect(await ids('out(partOf, 2) { id = "urn:t:floor-1" }')).toEqual([
      "urn:t:sensor-cool",
      "urn:t:sensor-hot",
    ]);
    expect(await ids('out(partOf, 1..*) { id = "urn:t:building-3" }')).toEqual([
      "urn:t:floor-1",
      "urn:t:room-a",
      "urn:t:sensor-cool",
      "urn:t:sensor-hot",
    ]);
    expect(await ids('in(partOf, *) { id = "urn:t:sensor-hot" }')).toEqual([
      "urn:t:building-3",
      "urn:t:floor-1",
      "urn:t:room-a",
    ]);
    expect(await ids("td.title = room-b OR state.temperature <= 21")).toEqual([
      "urn:t:room-b",
      "urn:t:sensor-cool",
    ]);
  });

  it("keeps an edge to an unknown Thing and resolves it when that Thing arrives", async () => {
    await fleet();
    let links = await (await hub.request(`/things/${encodeURIComponent("urn:t:room-b")}/links`)).json();
    expect(links).toEqual([{ from: "urn:t:room-b", rel: "partOf", to: "urn:t:building-9", resolved: false }]);
    expect(await ids('out(partOf, *) { id = "urn:t:building-9" }')).toEqual([]);
    await put(thing("urn:t:building-9", "brick:Building"));
    links = await (await hub.request(`/things/${encodeURIComponent("urn:t:room-b")}/links`)).json();
    expect(links).toEqual([{ from: "urn:t:room-b", rel: "partOf", to: "urn:t:building-9", resolved: true }]);
    expect(await ids('out(partOf, *) { id = "urn:t:building-9" }')).toEqual([
      "urn:t:room-b",
      "urn:t:sensor-elsewhere",
    ]);
    const incoming = await (
      await hub.request(`/things/${encodeURIComponent("urn:t:building-9")}/links?direction=in`)
    ).json();
    expect(incoming).toEqual([
      { from: "urn:t:room-b", rel: "partOf", to: "urn:t:building-9", resolved: true },
    ]);
  });

  /** The Log from `seq` on, as committed when the request was answered (no waiting). */
  async function logFrom(
    seq: number,
  ): Promise<Array<Pick<Change, "seq" | "thing" | "kind" | "value" | "cause">>> {
    const changes = await hub.hub.store.changesAfter(seq - 1, 100);
    return changes.map(({ seq, thing, kind, value, cause }) => ({ seq, thing, kind, value, cause }));
  }

  it("records each edge a registration, a link, an unlink and a removal add or remove as a linked/unlinked Change right after it, with its cause", async () => {
    await put(thing("urn:t:host", "Host"));
    const registered = (await hub.hub.store.lastSeq()) + 1;
    await put(thing("urn:t:web", "Container", [{ rel: "runsOn", href: "urn:t:host" }]));
    const http = { actor: "admin", via: "http" };
    const [web, linked, ...rest] = await logFrom(registered);
    expect(rest).toEqual([]);
    expect(web).toMatchObject({ seq: registered, thing: "urn:t:web", kind: "described" });
    expect(linked).toStrictEqual({
      seq: registered + 1,
      thing: "urn:t:web",
      kind: "linked",
      value: { rel: "runsOn", href: "urn:t:host" },
      cause: web?.cause,
    });
    expect(web?.cause).toMatchObject(http);

    const post = await hub.request(`/things/${encodeURIComponent("urn:t:host")}/links`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ rel: "hosts", href: "urn:t:web" }),
    });
    expect(post.status).toBe(201);
    const described = ((await post.json()) as { seq: number }).seq;
    const [linkDescribed, hosts, ...more] = await logFrom(described);
    expect(more).toEqual([]);
    expect(linkDescribed).toMatchObject({ thing: "urn:t:host", kind: "described", cause: http });
    expect(hosts).toStrictEqual({
      seq: described + 1,
      thing: "urn:t:host",
      kind: "linked",
      value: { rel: "hosts", href: "urn:t:web" },
      cause: linkDescribed?.cause,
    });
    if (!hosts) throw new Error("no linked Change");
    // Linking again changes nothing.
    const again = await hub.request(`/things/${encodeURIComponent("urn:t:host")}/links`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ rel: "hosts", href: "urn:t:web" }),
    });
    expect(again.status).toBe(200);
    expect(await ids('in(hosts) { id = "urn:t:host" }')).toEqual(["urn:t:web"]);

    const del = await hub.request(
      `/things/${encodeURIComponent("urn:t:host")}/links?rel=hosts&href=${encodeURIComponent("urn:t:web")}`,
      { method: "DELETE" },
    );
    expect(del.status).toBe(204);
    const [unlinkDescribed, unlinked, ...after] = await logFrom(hosts.seq + 1);
    expect(after).toEqual([]);
    expect(unlinkDescribed).toMatchObject({ thing: "urn:t:host", kind: "described" });
    expect(unlinked).toStrictEqual({
      seq: hosts.seq + 2,
      thing: "urn:t:host",
      kind: "unlinked",
      value: { rel: "hosts", href: "urn:t:web" },
      cause: unlinkDescribed?.cause,
    });
    expect(await ids('in(hosts) { id = "urn:t:host" }')).toEqual([]);
    const td = (await (await hub.request(`/things/${encodeURIComponent("urn:t:host")}`)).json()) as {
      links?: unknown;
    };
    expect(td.links).toBeUndefined();

    const missing = await hub.request(
      `/things/${encodeURIComponent("urn:t:host")}/links?rel=hosts&href=${encodeURIComponent("urn:t:web")}`,
      { method: "DELETE" },
    );
    expect(missing.status).toBe(404);
    const anonymous = await hub.request(`/things/${encodeURIComponent("urn:t:host")}/links`, {
      method: "POST",
      auth: false,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ rel: "hosts", href: "urn:t:web" }),
    });
    expect(anonymous.status).toBe(401);

    // A removal unlinks the removed Thing's edges in the same transaction.
    const beforeRemoval = (await hub.hub.store.lastSeq()) + 1;
    const removal = await hub.request(`/things/${encodeURIComponent("urn:t:web")}`, { method: "DELETE" });
    expect(removal.status).toBe(204);
    const [removed, unlinkedWeb, ...last] = await logFrom(beforeRemoval);
    expect(last).toEqual([]);
    expect(removed).toMatchObject({ thing: "urn:t:web", kind: "removed" });
    expect(unlinkedWeb).toStrictEqual({
      seq: beforeRemoval + 1,
      thing: "urn:t:web",
      kind: "unlinked",
      value: { rel: "runsOn", href: "urn:t:host" },
      cause: removed?.cause,
    });
  });

  it("concurrent replacements of one Thing each record the edge Changes between the TD they replaced and theirs", async () => {
    await put(thing("urn:t:web", "Container", [{ rel: "runsOn", href: "urn:t:host-0" }]));
    const from = await hub.hub.store.lastSeq();
    // Each replacement drafts its edge Changes against the TD it read; racing writers (all read
    // before any writes, here: one tick, one store batch) must not record them against a TD that
    // another one replaced meanwhile.
    await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        hub.hub.directory.put(
          "urn:t:web",
          thing("urn:t:web", "Container", [
            { rel: "runsOn", href: `urn:t:host-${i % 3}` },
            { rel: "dependsOn", href: `urn:t:db-${i}` },
          ]),
          { actor: `writer-${i}`, via: "test" },
        ),
      ),
    );
    const log = (await hub.hub.store.changesAfter(0, 1000)).filter((c) => c.thing === "urn:t:web");
    const edgesOf = (td: unknown): string[] => {
      const links = (td as { links?: Array<{ rel: string; href: string }> } | undefined)?.links ?? [];
      return links.map((l) => `${l.rel} ${l.href}`).sort();
    };
    const edges = new Set<string>();
    for (const [i, change] of log.entries()) {
      if (change.kind !== "described") continue;
      // The edge Changes right after a description take its previous TD's edges to its own.
      const following: Change[] = [];
      for (const next of log.slice(i + 1)) {
        if (next.kind !== "linked" && next.kind !== "unlinked") break;
        following.push(next);
      }
      const before = new Set(edgesOf(change.previous));
      for (const edge of following) {
        const { rel, href } = edge.value as { rel: string; href: string };
        expect(edge.seq).toBe(change.seq + 1 + following.indexOf(edge));
        expect(edge.cause).toStrictEqual(change.cause);
        if (edge.kind === "linked") before.add(`${rel} ${href}`);
        else before.delete(`${rel} ${href}`);
      }
      expect([...before].sort()).toStrictEqual(edgesOf(change.value));
      for (const edge of following) {
        const { rel, href } = edge.value as { rel: string; href: string };
        if (edge.kind === "linked") edges.add(`${rel} ${href}`);
        else edges.delete(`${rel} ${href}`);
      }
    }
    expect(log.filter((c) => c.kind === "described" && c.seq > from)).toHaveLength(8);
    // Replaying every linked/unlinked Change gives the stored TD's edges.
    const stored = await hub.hub.store.getThing("urn:t:web");
    expect([...edges].sort()).toStrictEqual(edgesOf(stored?.td));
  });

  it("keeps every link it acknowledged when many are added to one Thing at once", async () => {
    await put(thing("urn:t:rack", "Host"));
    // All read the TD before any writes (one tick, one store batch): each link must be drafted
    // on the TD as it is when written, so that one writer's links array cannot replace another's.
    const answers = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) =>
        hub.hub.graph.link("urn:t:rack", "hosts", `urn:t:vm-${i}`, { actor: `writer-${i}`, via: "test" }),
      ),
    );
    expect(answers.map((a) => a.status)).toEqual(Array.from({ length: 8 }, () => "fulfilled"));
    const response = await hub.request(`/things/${encodeURIComponent("urn:t:rack")}/links`);
    const links = (await response.json()) as Array<{ to: string }>;
    expect(links.map((l) => l.to).sort()).toEqual(Array.from({ length: 8 }, (_, i) => `urn:t:vm-${i}`));
  });

  it("pages by an opaque cursor, every match once, in id order", async () => {
    for (let i = 0; i < 7; i++) await put(thing(`urn:t:c-${i}`, "Container"));
    const seen: string[] = [];
    let cursor: string | undefined;
    do {
      const { body } = await find("type = Container", `&limit=3${cursor ? `&cursor=${cursor}` : ""}`);
      const page = (body.items as Array<{ id: string }>).map((i) => i.id);
      expect(page.length).toBeLessThanOrEqual(3);
      seen.push(...page);
      cursor = body.next as string | undefined;
    } while (cursor !== undefined);
    expect(seen).toEqual([0, 1, 2, 3, 4, 5, 6].map((i) => `urn:t:c-${i}`));
    const bad = await find("type = Container", "&cursor=bm9wZQ");
    expect(bad.status).toBe(400);
  });

  it("answers a bad filter with a problem document naming the position", async () => {
    const response = await hub.request(
      `/graph?filter=${encodeURIComponent("type = Host AND state.load >> 3")}`,
    );
    expect(response.status).toBe(400);
    expect(response.headers.get("content-type")).toContain("application/problem+json");
    const problem = (await response.json()) as { detail: string; errors?: Array<{ pointer: string }> };
    expect(problem.detail).toContain("position 29");
    expect(problem.errors?.[0]?.pointer).toBe("/query/filter");
    const missing = await hub.request("/graph");
    expect(missing.status).toBe(400);
    const hops = await find("out(runsOn, 40)");
    expect(hops.status).toBe(400);
  });

  it("prints a neighbourhood both ways without repeating a Thing", async () => {
    await fleet();
    const response = await hub.request(`/things/${encodeURIComponent("urn:t:room-a")}/neighbourhood?depth=2`);
    expect(response.status).toBe(200);
    const tree = (await response.json()) as {
      id: string;
      links: Array<{
        rel: string;
        direction: string;
        node: { id: string; links: Array<{ node: { id: string } }> };
      }>;
    };
    expect(tree.id).toBe("urn:t:room-a");
    expect(tree.links.map((l) => [l.direction, l.node.id])).toEqual([
      ["out", "urn:t:floor-1"],
      ["in", "urn:t:sensor-cool"],
      ["in", "urn:t:sensor-hot"],
    ]);
    expect(tree.links[0]?.node.links.map((l) => l.node.id)).toEqual(["urn:t:building-3"]);
  });

  it("rebuilds its indexes from the store after a restart", async () => {
    await fleet();
    const dataDir = hub.dataDir;
    await hub.close();
    const again = await startTestHub({ dataDir });
    try {
      const response = await again.request(
        `/graph?filter=${encodeURIComponent('state.temperature > 30 AND out(partOf, *) { id = "urn:t:building-3" }')}`,
      );
      const body = (await response.json()) as { items: Array<{ id: string; state: unknown }> };
      expect(body.items).toEqual([
        expect.objectContaining({ id: "urn:t:sensor-hot", state: { temperature: 34.5 } }),
      ]);
    } finally {
      await again.stop();
    }
  });
});

describe("a vocabulary of one's own", () => {
  it("finds subtypes it declares, and a malformed one stops the hub at start with the place of the problem", async () => {
    const dir = mkdtempSync(join(tmpdir(), "hyperthings-vocab-"));
    try {
      const file = join(dir, "types.json");
      writeFileSync(
        file,
        JSON.stringify({
          prefixes: { k: "https://kitchen.example/" },
          classes: { "k:Espresso": ["k:Coffee"] },
        }),
      );
      const hub = await startTestHub({ vocabulary: file });
      try {
        const td = minimalTd({
          "@context": ["https://www.w3.org/2022/wot/td/v1.1", { k: "https://kitchen.example/" }],
          "@type": "k:Espresso",
          id: "urn:v:1",
        });
        const put = await hub.request("/things/urn:v:1", {
          method: "PUT",
          headers: { "content-type": "application/td+json" },
          body: JSON.stringify(td),
        });
        expect(put.status).toBe(201);
        const body = (await (
          await hub.request(`/graph?filter=${encodeURIComponent("type = k:Coffee")}`)
        ).json()) as { items: Array<{ id: string }> };
        expect(body.items.map((i) => i.id)).toEqual(["urn:v:1"]);
      } finally {
        await hub.stop();
      }
      writeFileSync(file, JSON.stringify({ classes: { "k:Espresso": "k:Coffee" } }));
      // Refused before the data directory is touched: no admin token made and never shown.
      const dataDir = join(dir, "data");
      await expect(startTestHub({ vocabulary: file, dataDir })).rejects.toThrow(
        /is invalid at \/classes\/k:Espresso/,
      );
      expect(existsSync(dataDir)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
