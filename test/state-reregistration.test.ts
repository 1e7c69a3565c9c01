// A Thing removed and registered again (same id, often a replaced device) starts with no state:
// GET /things/{id}/state, GraphQL, the graph's filters and a release's plan hold only what it
// reported or was asked since; a time before the removal still shows the old values, and a diff
// across it tells what happened. A real hub on port 0; the old values are in the Log all along.
import { randomBytes } from "node:crypto";
import { afterEach, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import { buildRelease, type Plan } from "../src/core/index.js";
import type { ThingDiff, ThingState } from "../src/hub/index.js";
import { SimulatedHttpThing } from "./support/simulated-http-thing.js";
import {
  changeAfter,
  minimalTd,
  putTd,
  registerThing,
  startTestHub,
  type TestHub,
} from "./support/test-hub.js";

const ID = "urn:test:reregistered:dimmer";
const DEVICE = { actor: "device:dimmer", via: "http" };

const dimmerTd = () =>
  minimalTd({
    id: ID,
    properties: {
      on: { type: "boolean", forms: [{ href: "http://127.0.0.1:9/on" }] },
      level: { type: "integer", forms: [{ href: "http://127.0.0.1:9/level" }] },
    },
  });

async function json<T>(hub: TestHub, path: string): Promise<T> {
  const res = await hub.request(path);
  expect(res.status, await res.clone().text()).toBe(200);
  return (await res.json()) as T;
}

const stateOf = (hub: TestHub, at?: string) =>
  json<ThingState>(hub, `${thingPath(ID)}/state${at === undefined ? "" : `?at=${encodeURIComponent(at)}`}`);

async function remove(hub: TestHub): Promise<void> {
  expect((await hub.request(thingPath(ID), { method: "DELETE" })).status).toBe(204);
}

async function gqlProperties(hub: TestHub): Promise<Array<{ name: string; value: unknown }>> {
  const res = await hub.request("/graphql", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({
      query: `query($id: ID!) { thing(id: $id) { properties { name value } on: property(name: "on") { value } } }`,
      variables: { id: ID },
    }),
  });
  const answer = (await res.json()) as {
    data: { thing: { properties: Array<{ name: string; value: unknown }>; on: { value: unknown } | null } };
  };
  expect(answer.data.thing.on === null).toBe(answer.data.thing.properties.every((p) => p.name !== "on"));
  return answer.data.thing.properties;
}

async function matches(hub: TestHub, filter: string): Promise<string[]> {
  const page = await json<{ items: Array<{ id: string }> }>(
    hub,
    `/graph?filter=${encodeURIComponent(filter)}`,
  );
  return page.items.map((t) => t.id);
}

/** The dimmer's plan item for `level` under a release that wants it at 7. */
async function levelPlan(hub: TestHub): Promise<Record<string, unknown> | undefined> {
  const release = buildRelease(
    [
      {
        path: "dimmer.yaml",
        text: `release: dimmer-7\nthings:\n  - select: { id: "${ID}" }\n    properties: { level: 7 }\n`,
      },
    ],
    { builder: "test", builtAt: "2026-12-08T00:00:00.000Z" },
  );
  const stored = await hub.request("/releases", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(release),
  });
  expect([200, 201]).toContain(stored.status);
  const plan = await json<Plan>(hub, `/releases/${release.id}/plan`);
  return plan.things.find((t) => t.thing === ID)?.items.find((i) => i.name === "level") as
    Record<string, unknown> | undefined;
}

describe("a Thing registered again starts with no state", () => {
  let hub: TestHub | undefined;

  afterEach(async () => {
    await hub?.stop();
    hub = undefined;
  });

  it("state, GraphQL, graph filters and the plan hold none of the old registration's values; the past keeps them", async () => {
    hub = await startTestHub();
    await putTd(hub, dimmerTd());
    const registered = new Date().toISOString();
    await hub.hub.ingest(
      ID,
      [
        { kind: "reported", affordance: "on", value: true },
        { kind: "reported", affordance: "level", value: 7 },
        { kind: "desired", affordance: "level", value: 7 },
      ],
      DEVICE,
    );
    expect((await stateOf(hub)).properties.level?.value).toBe(7);
    expect(await matches(hub, "state.level = 7")).toEqual([ID]);
    // Reported as wanted: nothing to change.
    expect((await levelPlan(hub))?.status).not.toBe("change");
    const beforeRemoval = new Date().toISOString();

    await remove(hub);
    await putTd(hub, dimmerTd());

    const now = await stateOf(hub);
    expect(now.properties).toEqual({});
    expect(now.desired).toEqual({});
    expect(await gqlProperties(hub)).toEqual([]);
    expect(await matches(hub, "state.level = 7")).toEqual([]);
    // The value is unknown, not the old one: the release changes it.
    const item = await levelPlan(hub);
    expect(item).toMatchObject({ status: "change", desired: 7 });
    expect(item).not.toHaveProperty("observed");

    // The past is as it was: the old registration's values at a time before the removal.
    const then = await stateOf(hub, beforeRemoval);
    expect(then.properties.on?.value).toBe(true);
    expect(then.desired.level?.value).toBe(7);

    // Across the removal, the diff tells what happened: the old readings (counted, no value at
    // `to`), the removal and the new registration.
    const across = await json<ThingDiff>(hub, `${thingPath(ID)}/diff?from=${encodeURIComponent(registered)}`);
    expect(across.properties.find((p) => p.affordance === "level")).toMatchObject({ changes: 1 });
    expect(across.properties.find((p) => p.affordance === "level")).not.toHaveProperty("after");
    expect(across.descriptionChanges?.counts).toMatchObject({ removed: 1, described: 1 });

    // What the new Thing reports is its state.
    await hub.hub.ingest(ID, [{ kind: "reported", affordance: "level", value: 3 }], DEVICE);
    const later = await stateOf(hub);
    expect(Object.keys(later.properties)).toEqual(["level"]);
    expect(later.properties.level?.value).toBe(3);
    expect(await gqlProperties(hub)).toEqual([{ name: "level", value: 3 }]);
    expect(await matches(hub, "state.level = 3")).toEqual([ID]);
    expect(await levelPlan(hub)).toMatchObject({ status: "change", observed: 3, desired: 7 });
    const sinceRemoval = await json<ThingDiff>(
      hub,
      `${thingPath(ID)}/diff?from=${encodeURIComponent(beforeRemoval)}`,
    );
    expect(sinceRemoval.properties.find((p) => p.affordance === "level")).toMatchObject({
      before: 7,
      after: 3,
      changes: 1,
    });

    // A restarted hub builds its graph from the Log: the same answer.
    const dataDir = hub.dataDir;
    await hub.close();
    hub = await startTestHub({ dataDir });
    expect(await matches(hub, "state.on = true")).toEqual([]);
    expect(await matches(hub, "state.level = 3")).toEqual([ID]);
  });
});

describe("a read through the hub of a Thing registered again", () => {
  const password = `pw-${randomBytes(8).toString("hex")}`;
  const device = new SimulatedHttpThing({ username: "u", password });
  let hub: TestHub | undefined;

  afterEach(async () => {
    await hub?.stop();
    await device.stop();
  });

  it("records its first reading even when the old registration had the same value", async () => {
    await device.start();
    const started = (hub = await startTestHub());
    const credentials = { username: "u", password };
    await registerThing(hub, ID, device.td(ID), credentials);
    // A read answers before its value is recorded: wait for the `reported` it makes.
    const read = async () => {
      const after = await started.hub.store.lastSeq();
      const res = await started.request(`${thingPath(ID)}/properties/level`);
      expect(res.status, await res.clone().text()).toBe(200);
      await changeAfter(started, after, (c) => c.thing === ID && c.kind === "reported");
    };
    await read();
    expect((await stateOf(hub)).properties.level?.value).toBe(device.level);

    await remove(hub);
    await registerThing(hub, ID, device.td(ID), credentials);
    expect((await stateOf(hub)).properties).toEqual({});
    // The same value as before the removal, recorded anew: the new Thing's state has it.
    await read();
    expect((await stateOf(hub)).properties.level?.value).toBe(device.level);
  });
});
