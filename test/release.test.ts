// Releases end to end: manifests built by the CLI (a child process), stored through the real
// server, listed, planned against simulated Things that speak HTTP; bad input refused with
// file, line and field, and nothing stored from it.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import {
  buildRelease,
  contentHash,
  type Change,
  type Plan,
  type Release,
  type ReleaseSummary,
} from "../src/core/index.js";
import { changeAfter, minimalTd, startTestHub, type TestHub, putTd as register } from "./support/test-hub.js";
import { SimulatedHttpThing } from "./support/simulated-http-thing.js";
import { runThingsToEnd, type ThingsRun } from "./support/things-process.js";

const EXAMPLES = fileURLToPath(new URL("../examples/releases/", import.meta.url));

function things(args: string[], hub: TestHub, cwd?: string): Promise<ThingsRun> {
  return runThingsToEnd([...args, "--url", hub.url, "--token", hub.token], {
    timeoutMs: 20_000,
    ...(cwd !== undefined && { cwd }),
  });
}

function thingPath(id: string): string {
  return `/things/${encodeURIComponent(id)}`;
}

async function report(hub: TestHub, id: string, affordance: string, value: unknown): Promise<void> {
  const res = await hub.request(`${thingPath(id)}/changes`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ kind: "reported", affordance, value }),
  });
  expect(res.status).toBe(201);
}

async function releases(hub: TestHub): Promise<ReleaseSummary[]> {
  const res = await hub.request("/releases");
  expect(res.status).toBe(200);
  return ((await res.json()) as { releases: ReleaseSummary[] }).releases;
}

function dimmerTd(id: string, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return minimalTd({
    id,
    title: "Dimmer",
    base: "http://127.0.0.1:9/",
    properties: {
      brightness: { type: "integer", minimum: 0, maximum: 100, forms: [{ href: "brightness" }] },
    },
    ...overrides,
  });
}

/** Builds in-process (the CLI is tested elsewhere in this file) and posts it: the hub's edge. */
async function post(hub: TestHub, release: unknown): Promise<Response> {
  return hub.request("/releases", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(release),
  });
}

function built(path: string, text: string): Release {
  return buildRelease([{ path, text }], { builder: "test", builtAt: "2026-11-25T00:00:00.000Z" });
}

function manifestDir(files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), "hyperthings-manifests-"));
  for (const [name, text] of Object.entries(files)) {
    mkdirSync(join(dir, name, ".."), { recursive: true });
    writeFileSync(join(dir, name), text);
  }
  return dir;
}

describe("releases through the hub and the CLI", () => {
  const device = new SimulatedHttpThing({ username: "u", password: "p" });
  const sensorId = "urn:test:release:sensor";
  const deadId = "urn:test:release:dead";
  let hub: TestHub;

  beforeAll(async () => {
    await device.start();
    hub = await startTestHub({ observe: true, reconnectMs: 20, maxReconnectMs: 200 });
    await register(hub, dimmerTd("urn:example:dimmer"));
    await register(hub, device.td(sensorId));
    await report(hub, sensorId, "level", 3);
    // A Thing nothing answers for: observation records it unreachable.
    const after = await hub.hub.store.lastSeq();
    await register(
      hub,
      minimalTd({
        id: deadId,
        title: "Dead lamp",
        properties: {
          on: {
            type: "boolean",
            observable: true,
            "hyperthings:pollInterval": 50,
            forms: [{ href: "http://127.0.0.1:9/on", op: ["readproperty", "writeproperty"] }],
          },
        },
      }),
    );
    await changeAfter(hub, after, (c) => c.thing === deadId && c.kind === "unreachable");
  });

  afterAll(async () => {
    await hub.stop();
    await device.stop();
  });

  it("builds the simplest manifest as written, stores it once, and records it as a released Change", async () => {
    const first = await things(["build", join(EXAMPLES, "evening-lights.yaml"), "--json"], hub);
    expect(first.stderr).toBe("");
    expect(first.code).toBe(0);
    const stored = JSON.parse(first.stdout) as { id: string; created: boolean; name: string };
    expect(stored).toMatchObject({ created: true, name: "evening-lights" });
    expect(stored.id).toMatch(/^sha256:[0-9a-f]{64}$/);

    const again = await things(["build", join(EXAMPLES, "evening-lights.yaml")], hub);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain(stored.id);
    expect(again.stdout).toContain("already stored");

    const list = await releases(hub);
    expect(list.filter((r) => r.id === stored.id)).toHaveLength(1);
    const res = await hub.request(`/releases/${stored.id}`);
    const release = (await res.json()) as Release;
    expect(release.steps).toEqual([{ select: { id: "urn:example:dimmer" }, properties: { brightness: 40 } }]);
    expect(release.provenance.sources[0]?.path).toMatch(/evening-lights\.yaml$/);
    expect(release.provenance.builder).toMatch(/^things /);

    const feed = await hub.request(`/changes?release=${encodeURIComponent(stored.id)}&kind=released`);
    const changes = ((await feed.json()) as { changes: Change[] }).changes;
    expect(changes).toHaveLength(1);
    expect(changes[0]).toMatchObject({ thing: hub.hub.id, kind: "released", value: { id: stored.id } });
  });

  it("lists releases as a table", async () => {
    const table = await things(["releases"], hub);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^ID\s+NAME\s+STEPS\s+DRIFT\s+STORED/);
    expect(table.stdout).toContain("evening-lights");
  });

  it("says no release is named so, and how to list them, when a --name matches none of the stored ones", async () => {
    const release = built("evening.yaml", readFileSync(join(EXAMPLES, "evening-lights.yaml"), "utf8"));
    expect((await post(hub, release)).ok).toBe(true);
    const run = await things(["releases", "--name", "nosuch"], hub);
    expect(run).toMatchObject({ code: 0, stdout: "" });
    expect(run.stderr).toBe("no release is named nosuch: `things releases` lists the stored ones\n");
  });

  it("refuses a document whose id is not its hash, and one naming an unknown Thing, storing nothing", async () => {
    const before = (await releases(hub)).length;
    const release = built("evening.yaml", readFileSync(join(EXAMPLES, "evening-lights.yaml"), "utf8"));
    const forged = {
      ...release,
      steps: [{ select: { id: "urn:example:dimmer" }, properties: { brightness: 41 } }],
    };
    const res = await post(hub, forged);
    expect(res.status).toBe(400);
    expect(res.headers.get("content-type")).toMatch(/application\/problem\+json/);
    expect(((await res.json()) as { errors: { pointer: string }[] }).errors[0]?.pointer).toBe("/id");

    const dir = manifestDir({
      "ghost.yaml":
        "release: ghost\nthings:\n  - select: { id: 'urn:example:nobody' }\n    properties: { x: 1 }\n",
    });
    const run = await things(["build", dir], hub);
    expect(run.code).toBe(1);
    // The hub's refusal of what was built is a failed build, in the words of every other one.
    expect(run.stderr).toMatch(
      /^things: build failed: \S*ghost\.yaml:3:5: no Thing urn:example:nobody is registered[^\n]*\n$/,
    );
    expect((await releases(hub)).length).toBe(before);
  });

  it("gives a document the id of its build whether it spells out defaults and empty lists or not", async () => {
    const manifest =
      "release: one-meaning\nthings:\n  - select: { id: 'urn:example:dimmer' }\n    properties: { brightness: 30 }\ndrift: revert\n";
    const release = built("one-meaning.yaml", manifest);
    expect(release.drift).toEqual({ policy: "revert", revert: { maxReverts: 3, withinSeconds: 3600 } });
    const { id: _id, ...document } = release;
    const variants = [
      { ...document, drift: { policy: "revert" } },
      {
        ...document,
        steps: [{ ...document.steps[0], actions: [], links: [] }],
        drift: { policy: "revert", revert: { maxReverts: 3, withinSeconds: 3600 } },
      },
    ];
    const ids: string[] = [];
    for (const variant of variants) {
      const res = await post(hub, variant);
      expect([200, 201]).toContain(res.status);
      ids.push(((await res.json()) as { id: string }).id);
    }
    expect(ids).toEqual([release.id, release.id]);
    // Limits say nothing to a policy that never reverts.
    const recorded = built("one-meaning.yaml", manifest.replace("drift: revert", "drift: record"));
    const res = await post(hub, {
      ...document,
      drift: { policy: "record", revert: { maxReverts: 3, withinSeconds: 3600 } },
    });
    expect(((await res.json()) as { id: string }).id).toBe(recorded.id);
  });

  it("keeps the id of a release stored as it was sent before bodies had one shape, and finds it again", async () => {
    const release = built(
      "legacy.yaml",
      "release: legacy\nthings:\n  - select: { id: 'urn:example:dimmer' }\n    properties: { brightness: 20 }\ndrift: revert\n",
    );
    // What an earlier hub stored from a document that left the revert limits out: its id is the
    // hash of that body as it was sent.
    const sentBody = { ...release, drift: { policy: "revert" as const } };
    const { id: _id, provenance: _p, ...body } = sentBody;
    const legacyId = contentHash(body);
    expect(legacyId).not.toBe(release.id);
    const { hlc } = hub.hub.clock.stamp();
    await hub.hub.store.putRelease({
      release: { ...sentBody, id: legacyId },
      thing: hub.hub.id,
      cause: { actor: "test", release: legacyId },
      hlc,
    });
    const before = (await releases(hub)).length;
    // The same document again, with the id it was given then or without one: already stored.
    for (const document of [
      { ...sentBody, id: legacyId },
      { ...sentBody, id: undefined },
    ]) {
      const res = await post(hub, document);
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ id: legacyId, created: false });
    }
    expect((await releases(hub)).length).toBe(before);
    const stored = await hub.request(`/releases/${legacyId}`);
    expect(((await stored.json()) as Release).drift).toEqual({ policy: "revert" });
  });

  it("refuses a value that does not fit the Thing's schema, pointing at file, line and field", async () => {
    const res = await post(
      hub,
      built(
        "too-bright.yaml",
        "release: too-bright\nthings:\n  - select: { id: 'urn:example:dimmer' }\n    properties: { brightness: 140 }\n",
      ),
    );
    expect(res.status).toBe(400);
    const problem = (await res.json()) as { detail: string; errors: { pointer: string; detail: string }[] };
    expect(problem.errors[0]?.pointer).toBe("/steps/0/properties/brightness");
    expect(problem.detail).toMatch(
      /too-bright\.yaml:3:5: property brightness of urn:example:dimmer: schema-mismatch/,
    );
    expect(problem.detail).toMatch(/must be <= 100/);
  });

  it("refuses a link no TD may hold, and a property or action every object inherits, storing nothing", async () => {
    const before = (await releases(hub)).length;
    const cases: [string, string, RegExp][] = [
      ["links: [{ rel: controls, href: 'not a lamp' }]", "/steps/0/links", /href must be an IRI reference/],
      ["properties: { constructor: 1 }", "/steps/0/properties/constructor", /unknown-affordance/],
      ["actions: [toString]", "/steps/0/actions", /unknown-affordance/],
    ];
    for (const [entry, pointer, detail] of cases) {
      const res = await post(
        hub,
        built("odd.yaml", `release: odd\nthings:\n  - select: { id: 'urn:example:dimmer' }\n    ${entry}\n`),
      );
      expect(res.status, entry).toBe(400);
      const problem = (await res.json()) as { detail: string; errors: { pointer: string }[] };
      expect(problem.errors[0]?.pointer).toBe(pointer);
      expect(problem.detail).toMatch(/odd\.yaml:3:5: /);
      expect(problem.detail).toMatch(detail);
    }
    expect((await releases(hub)).length).toBe(before);
  });

  it("refuses invalid YAML and unknown template parameters before contacting the hub, in one line", async () => {
    const dir = manifestDir({
      "broken.yaml": "release: broken\nthings: [\n  - {a: 1\n",
      "params/main.yaml":
        "release: p\ninclude: [lib.yaml]\nthings:\n  - use: room\n    with: { room: a, colour: red }\n",
      "params/lib.yaml":
        "templates:\n  room:\n    params: { room: {} }\n    things:\n      - select: { id: '${room}' }\n",
    });
    const broken = await things(["build", join(dir, "broken.yaml")], hub);
    expect(broken.code).toBe(1);
    expect(broken.stderr).toMatch(
      /^things: build failed: \S*broken\.yaml:\d+:\d+: [^\n]*\(and \d+ more\)\n$/,
    );
    const params = await things(["build", "params/main.yaml"], hub, dir);
    expect(params.code).toBe(1);
    expect(params.stderr).toMatch(
      /^things: build failed: params\/main\.yaml:5:22: template room has no parameter colour[^\n]*\n$/,
    );
    expect((await releases(hub)).map((r) => r.name)).not.toContain("p");
  });

  it("plans per Thing: change, in place, and what cannot be done (read-only, unreachable, schema mismatch)", async () => {
    const dir = manifestDir({
      "plan.yaml": `release: plan-me
things:
  - select: { id: "${sensorId}" }
    properties: { level: 3, name: "kitchen" }
    actions: [{ name: reset, input: { to: 2 } }]
    links: [{ rel: controls, href: "urn:example:dimmer" }]
  - select: { id: "${deadId}" }
    properties: { "on": true }
  - select: { filter: 'td.title = "Dimmer"' }
    properties: { brightness: 70 }
`,
    });
    const build = await things(["build", dir, "--json"], hub);
    expect(build.stderr).toBe("");
    const { id } = JSON.parse(build.stdout) as { id: string };
    // The dimmer's TD narrows its range after the release was stored: the plan says so.
    await register(
      hub,
      dimmerTd("urn:example:dimmer", {
        properties: {
          brightness: { type: "integer", minimum: 0, maximum: 50, forms: [{ href: "brightness" }] },
        },
      }),
    );
    const res = await hub.request(`/releases/${id}/plan`);
    expect(res.status).toBe(200);
    const plan = (await res.json()) as Plan;
    const item = (thing: string, name: string) =>
      plan.things.find((t) => t.thing === thing)?.items.find((i) => i.name === name);
    expect(item(sensorId, "level")).toMatchObject({ status: "in-place", observed: 3, desired: 3 });
    expect(item(sensorId, "name")).toMatchObject({ status: "cannot", reason: "read-only" });
    expect(item(sensorId, "reset")).toMatchObject({ kind: "action", status: "change", desired: { to: 2 } });
    expect(item(sensorId, "controls urn:example:dimmer")).toMatchObject({ kind: "link", status: "change" });
    expect(item(deadId, "on")).toMatchObject({ status: "cannot", reason: "unreachable" });
    expect(item("urn:example:dimmer", "brightness")).toMatchObject({
      status: "cannot",
      reason: "schema-mismatch",
    });
    expect(plan.summary).toEqual({ things: 3, change: 2, inPlace: 1, cannot: 3 });
    expect(plan.problems).toEqual([]);

    const table = await things(["plan", "plan-me"], hub);
    expect(table.code).toBe(3);
    expect(table.stdout).toMatch(/THING\s+AFFORDANCE\s+OBSERVED\s+DESIRED\s+PLAN/);
    expect(table.stdout).toMatch(/level\s+3\s+3\s+in-place/);
    expect(table.stdout).toContain("cannot: unreachable");
    expect(table.stderr).toMatch(/^things: the plan cannot be applied as it is: 3 items cannot be done\n$/);
    const json = await things(["plan", id.slice(0, 19), "--json", "--select", `id = "${sensorId}"`], hub);
    const narrowed = JSON.parse(json.stdout) as Plan;
    expect(narrowed.things.map((t) => t.thing)).toEqual([sensorId]);
  });

  it("reports a filter selector that matches no Thing as a plan problem pointing at the manifest", async () => {
    const res = await post(
      hub,
      built(
        "nobody.yaml",
        "release: nobody\nthings:\n  - select: { filter: 'td.title = \"Toaster\"' }\n    properties: { x: 1 }\n",
      ),
    );
    expect(res.status).toBe(201);
    const run = await things(["plan", "nobody"], hub);
    expect(run.code).toBe(3);
    expect(run.stdout).toMatch(
      /problem: nobody\.yaml:3:5: the selector \(filter td\.title = "Toaster"\) matches no Thing/,
    );
  });

  it("answers an unknown release with 404 problem JSON, and the CLI with one line", async () => {
    const res = await hub.request(`/releases/sha256:${"0".repeat(64)}/plan`);
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toMatch(/application\/problem\+json/);
    // Not an id at all: 400, saying what an id is rather than showing its regular expression.
    const bad = await hub.request("/releases/sha256:XYZ/plan");
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { errors: unknown }).errors).toEqual([
      { pointer: "/params/id", detail: "must be a release id: sha256: and 64 lowercase hex digits" },
    ]);
    const run = await things(["plan", "no-such-release"], hub);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^things: no release is named no-such-release[^\n]*\n$/);
  });

  it("keeps releases across a restart of the hub", async () => {
    const before = await releases(hub);
    const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-release-restart-"));
    let other = await startTestHub({ dataDir });
    await register(other, dimmerTd("urn:example:dimmer"));
    const res = await post(
      other,
      built("elsewhere.yaml", readFileSync(join(EXAMPLES, "evening-lights.yaml"), "utf8")),
    );
    expect(res.status).toBe(201);
    const { id } = (await res.json()) as { id: string };
    // The same inputs give the same id on another hub.
    expect(before.map((r) => r.id)).toContain(id);
    await other.stop();
    other = await startTestHub({ dataDir });
    try {
      expect((await releases(other)).map((r) => r.id)).toEqual([id]);
      const res = await other.request(`/releases/${id}`);
      expect(res.status).toBe(200);
    } finally {
      await other.stop();
    }
  });
});
