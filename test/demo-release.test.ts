// examples/releases/demo-baseline.yaml, as the README has a newcomer use it on the demo fleet:
// it builds against the fleet's own TDs, plans without a "cannot", rolls out, and a change the
// chaos monkey could make shows as drift.
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import { Fleet, MicroService, simThingId } from "../src/sim/index.js";
import { firstData } from "./support/sse.js";
import { putTd, startTestHub, type TestHub } from "./support/test-hub.js";
import { runThingsToEnd, type ThingsRun } from "./support/things-process.js";

/** The first Change of a Thing of one kind, from the Log's start on (the stream resumes after id 0). */
async function firstChange(hub: TestHub, thing: string, kind: string): Promise<unknown> {
  const response = await hub.request(`/changes/stream?${new URLSearchParams({ thing, kind }).toString()}`, {
    headers: { "last-event-id": "0" },
    signal: AbortSignal.timeout(20_000),
  });
  return firstData(response);
}

const MANIFEST = fileURLToPath(new URL("../examples/releases/demo-baseline.yaml", import.meta.url));

describe("the demo fleet's example release", () => {
  let hub: TestHub;
  let fleet: Fleet;
  const things = (args: string[]): Promise<ThingsRun> =>
    runThingsToEnd([...args, "--url", hub.url, "--token", hub.token], { timeoutMs: 20_000 });

  beforeAll(async () => {
    hub = await startTestHub();
    fleet = await Fleet.start({ tickMs: 0, kinds: ["espresso", "switch", "service"] });
    for (const td of fleet.descriptions()) await putTd(hub, td);
  });
  afterAll(async () => {
    await hub?.stop();
    await fleet?.close();
  });

  it("builds, plans with nothing that cannot be done, and rolls out to every Thing it names", async () => {
    const build = await things(["build", MANIFEST]);
    expect(build.stderr).toBe("");
    expect(build.stdout).toMatch(/demo-baseline {2}3 steps from 1 file {2}stored/);
    const plan = await things(["plan", "demo-baseline"]);
    expect(plan.code).toBe(0);
    expect(plan.stdout).toMatch(/3 Things: \d to change, \d in place, 0 cannot be done/);
    const rollout = await things(["rollout", "demo-baseline"]);
    expect(rollout.code).toBe(0);
    expect(rollout.stdout).toMatch(/completed: 3 completed, 0 failed, 0 skipped of 3/);
    const service = fleet.thing(simThingId("order-service"), MicroService);
    expect(service.logLevel).toBe("info");
  });

  it("shows the chaos monkey's change of the log level as drift", async () => {
    // What observation would report after the monkey struck: the service's log level moved.
    const res = await hub.request(`${thingPath(simThingId("order-service"))}/changes`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify([{ kind: "reported", affordance: "logLevel", value: "debug" }]),
    });
    expect(res.status).toBe(201);
    // The drift is judged after the report commits: its Change, from the Log's start, says when.
    await firstChange(hub, simThingId("order-service"), "drift");
    const drift = await things(["drift", "--json"]);
    expect(drift.code).toBe(0);
    expect(JSON.parse(drift.stdout)).toMatchObject([
      { thing: simThingId("order-service"), affordance: "logLevel", desired: "info", observed: "debug" },
    ]);
  });
});
