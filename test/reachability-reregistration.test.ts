// A Thing removed and registered again (same id) starts over: the `unreachable` of its old
// registration does not make the new one unreachable — in GET /graph/summary (live, and rebuilt by a
// restarted hub), a diff's ends, a release's plan, and the observer (which records no `reachable`
// for an outage that was not its own). A real hub on port 0; a simulated HTTP Thing for the observer.
import { randomBytes } from "node:crypto";
import { afterAll, afterEach, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import { buildRelease, type Change, type Plan } from "../src/core/index.js";
import { SimulatedHttpThing } from "./support/simulated-http-thing.js";
import {
  changeAfter,
  minimalTd,
  putTd,
  registerThing,
  startTestHub,
  type TestHub,
} from "./support/test-hub.js";

const ID = "urn:test:reregistered:lamp";
const OBSERVER = { actor: "hub:observer", via: "http" };

/** A lamp whose one property the hub could write (its form is never reached: observation is off). */
const lampTd = () =>
  minimalTd({
    id: ID,
    properties: { on: { type: "boolean", forms: [{ href: "http://127.0.0.1:9/on" }] } },
  });

async function graphReachable(hub: TestHub): Promise<boolean | undefined> {
  const res = await hub.request("/graph/summary");
  expect(res.status, await res.clone().text()).toBe(200);
  const graph = (await res.json()) as { things: Array<{ id: string; reachable: boolean }> };
  return graph.things.find((t) => t.id === ID)?.reachable;
}

async function diff(hub: TestHub, from: string): Promise<Record<string, unknown>> {
  const res = await hub.request(`${thingPath(ID)}/diff?from=${encodeURIComponent(from)}`);
  expect(res.status, await res.clone().text()).toBe(200);
  return (await res.json()) as Record<string, unknown>;
}

async function remove(hub: TestHub): Promise<void> {
  expect((await hub.request(thingPath(ID), { method: "DELETE" })).status).toBe(204);
}

/** The lamp's plan under a release that wants it on: its item, and whether the Thing is marked unreachable. */
async function planOf(hub: TestHub): Promise<Plan["things"][number] | undefined> {
  const release = buildRelease(
    [
      {
        path: "lamp.yaml",
        text: `release: lamp-on\nthings:\n  - select: { id: "${ID}" }\n    properties: { "on": true }\n`,
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
  const res = await hub.request(`/releases/${release.id}/plan`);
  expect(res.status, await res.clone().text()).toBe(200);
  return ((await res.json()) as Plan).things.find((t) => t.thing === ID);
}

describe("reachability starts over when a Thing is registered again", () => {
  let hub: TestHub | undefined;

  afterEach(async () => {
    await hub?.stop();
    hub = undefined;
  });

  it("an old registration's unreachable is not the new one's: graph, diff ends, plan, and after a restart", async () => {
    hub = await startTestHub();
    await putTd(hub, lampTd());
    await hub.hub.ingest(ID, [{ kind: "unreachable", value: "connect ECONNREFUSED" }], OBSERVER);
    expect(await graphReachable(hub)).toBe(false);
    expect((await planOf(hub))?.items[0]).toMatchObject({ status: "cannot", reason: "unreachable" });
    const whileAway = new Date().toISOString();

    await remove(hub);
    await putTd(hub, lampTd());
    const registered = new Date().toISOString();

    expect(await graphReachable(hub)).toBe(true);
    // Reachable throughout since the new registration: no reachability section.
    expect(await diff(hub, registered)).not.toHaveProperty("reachability");
    // Across the removal: unreachable then (the old registration), reachable now; the last turn
    // is still told as what happened.
    expect((await diff(hub, whileAway)).reachability).toMatchObject({
      reachableAtFrom: false,
      reachableAtTo: true,
      last: { kind: "unreachable", value: "connect ECONNREFUSED" },
    });
    expect((await planOf(hub))?.items[0]).toMatchObject({ status: "change", desired: true });

    // A restarted hub builds its graph from the Log: the same answer.
    const dataDir = hub.dataDir;
    await hub.close();
    hub = await startTestHub({ dataDir });
    expect(await graphReachable(hub)).toBe(true);
  });

  it("an unreachable of the new registration still counts", async () => {
    hub = await startTestHub();
    await putTd(hub, lampTd());
    await remove(hub);
    await putTd(hub, lampTd());
    await hub.hub.ingest(ID, [{ kind: "unreachable", value: "timeout" }], OBSERVER);
    expect(await graphReachable(hub)).toBe(false);
    expect((await planOf(hub))?.items[0]).toMatchObject({ status: "cannot", reason: "unreachable" });
  });
});

describe("the observer of a Thing registered again", () => {
  const password = `pw-${randomBytes(8).toString("hex")}`;
  const device = new SimulatedHttpThing({ username: "u", password, pollIntervalMs: 50 });
  let hub: TestHub;

  afterAll(async () => {
    await hub?.stop();
    await device.stop();
  });

  it("does not take the old registration's outage for its own: no reachable Change, reachable in its status", async () => {
    await device.start();
    hub = await startTestHub({ observe: true, reconnectMs: 20, maxReconnectMs: 200 });
    const credentials = { username: "u", password };
    let after = await hub.hub.store.lastSeq();
    await registerThing(hub, ID, device.td(ID), credentials);
    await changeAfter(hub, after, (c) => c.thing === ID && c.kind === "reported");
    await device.stop();
    await changeAfter(hub, after, (c) => c.thing === ID && c.kind === "unreachable");

    await remove(hub);
    await device.start();
    after = await hub.hub.store.lastSeq();
    await registerThing(hub, ID, device.td(ID), credentials);
    device.level = 6;
    const reading = await changeAfter(
      hub,
      after,
      (c) => c.thing === ID && c.kind === "reported" && c.affordance === "level" && c.value === 6,
    );
    const res = await hub.request(
      `${thingPath(ID)}/history?order=asc&kind=unreachable,reachable&limit=100&cursor=${after}`,
    );
    expect(res.status).toBe(200);
    const turns = ((await res.json()) as { changes: Change[] }).changes.filter((c) => c.seq > after);
    expect(turns).toEqual([]);
    expect(reading.seq).toBeGreaterThan(after);
    expect(hub.hub.observation?.status().find((s) => s.thing === ID)?.reachable).toBe(true);
  });
});
