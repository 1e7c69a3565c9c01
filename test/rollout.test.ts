// End-to-end tests of rollouts: a real hub (port 0) applying releases to simulated Things that
// speak real HTTP (node:http, basic auth). Each test counts what reached the devices: a step is
// applied once, failures past the threshold stop the rollout, rolling back is rolling out an
// earlier release, and progress streams as Server-Sent Events. Every wait is for an event.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import type { Change, Rollout, RolloutProgress, RolloutStep } from "../src/core/index.js";
import { CURSED_LEVEL, SimulatedHttpThing } from "./support/simulated-http-thing.js";
import { EventStream } from "./support/sse.js";
import { minimalTd, registerThing, startTestHub, type TestHub } from "./support/test-hub.js";
import { runThings, runThingsToEnd, type ThingsRun } from "./support/things-process.js";

const USERNAME = "operator";
const PASSWORD = `pw-${randomBytes(12).toString("hex")}`;
const FLEET = 6;

/** `things ARGS` against the hub, as a child process (the built CLI: `npm run build` first). */
function things(args: string[]): Promise<ThingsRun> {
  return runThingsToEnd([...args, "--url", hub.url, "--token", hub.token], { timeoutMs: 20_000 });
}

type RolloutView = Rollout & { progress: RolloutProgress };

let hub: TestHub;
const devices: SimulatedHttpThing[] = [];
const ids: string[] = [];

async function json<T>(response: Response, status: number): Promise<T> {
  const text = await response.text();
  expect(response.status, text).toBe(status);
  return JSON.parse(text) as T;
}

/** `POST /releases/{id}/rollouts` with a JSON body. */
function postRollout(release: string, body: Record<string, unknown> = {}): Promise<Response> {
  return hub.request(`/releases/${encodeURIComponent(release)}/rollouts`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** Builds a release from one YAML manifest through the hub's releases service. */
async function build(text: string): Promise<string> {
  const result = await hub.hub.releases.build([{ path: "release.yaml", text }], { actor: "test" });
  return result.release.id;
}

function manifest(name: string, level: number, things = ids, extra = ""): string {
  return [
    `release: ${name}`,
    "things:",
    ...things.map((id) => `  - select: { id: "${id}" }\n    properties: { level: ${level} }${extra}`),
  ].join("\n");
}

async function rollout(release: string, body: Record<string, unknown> = {}): Promise<RolloutView> {
  const started = await json<RolloutView>(await postRollout(release, body), 202);
  await hub.hub.rollouts?.settled(started.id);
  return json<RolloutView>(await hub.request(`/rollouts/${encodeURIComponent(started.id)}`), 200);
}

async function steps(id: string): Promise<RolloutStep[]> {
  return (
    await json<{ steps: RolloutStep[] }>(
      await hub.request(`/rollouts/${encodeURIComponent(id)}/steps?limit=1000`),
      200,
    )
  ).steps;
}

async function history(id: string, kind: string): Promise<Change[]> {
  const res = await hub.request(`${thingPath(id)}/history?order=asc&limit=1000&kind=${kind}`);
  return (await json<{ changes: Change[] }>(res, 200)).changes;
}

const writes = (device: SimulatedHttpThing) =>
  device.requests.filter((r) => r.method === "PUT" && r.path === "/properties/level");

beforeAll(async () => {
  hub = await startTestHub({ mqtt: false });
  for (let i = 0; i < FLEET; i++) {
    const device = new SimulatedHttpThing({ username: USERNAME, password: PASSWORD });
    await device.start();
    devices.push(device);
    const id = `urn:test:rollout:${i}`;
    ids.push(id);
    await registerThing(hub, id, device.td(id), { username: USERNAME, password: PASSWORD });
  }
});

afterAll(async () => {
  await hub?.stop();
  for (const device of devices) await device.stop();
});

describe("rollouts", () => {
  it("applies each step once through the Thing's API, every step a Change caused by the release", async () => {
    const release = await build(
      manifest(
        "levels-3",
        3,
        ids.slice(0, 4),
        '\n    actions: [{ name: reset, input: { to: 3 } }]\n    links: [{ rel: partOf, href: "urn:test:rack" }]',
      ),
    );
    const done = await rollout(release, { concurrency: 2 });
    expect(done).toMatchObject({
      status: "completed",
      release,
      progress: { completed: 4, total: 4, failed: 0 },
    });
    for (const [i, device] of devices.slice(0, 4).entries()) {
      expect(writes(device).map((r) => r.body)).toEqual(["3"]);
      expect(device.count("/actions/reset")).toBe(1);
      expect(device.level).toBe(3);
      const id = ids[i] ?? "";
      const desired = await history(id, "desired");
      expect(desired).toHaveLength(1);
      expect(desired[0]?.cause).toMatchObject({ release, via: "rollout", actor: "admin" });
      const completed = (await history(id, "completed")).filter((c) => c.cause.release === release);
      expect(completed.map((c) => c.affordance).sort()).toEqual(["level", "reset"]);
      const td = await json<{ links?: { rel: string; href: string }[] }>(
        await hub.request(thingPath(id)),
        200,
      );
      expect(td.links).toContainEqual({ rel: "partOf", href: "urn:test:rack" });
    }
    const lineage = await json<{ active: string; lineage: { release: string; rollout: string }[] }>(
      await hub.request(`${thingPath(ids[0] ?? "")}/releases`),
      200,
    );
    expect(lineage.active).toBe(release);
    expect(lineage.lineage[0]).toMatchObject({ release, rollout: done.id });
    // Devices the release does not name were left alone.
    expect(writes(devices[4] as SimulatedHttpThing)).toEqual([]);

    // The same release again: every Thing already has it, nothing is sent.
    const again = await rollout(release);
    expect(again).toMatchObject({ status: "completed", progress: { skipped: 4, completed: 0 } });
    for (const device of devices.slice(0, 4)) {
      expect(writes(device)).toHaveLength(1);
      expect(device.count("/actions/reset")).toBe(1);
    }
    const listed = await json<{ rollouts: RolloutView[] }>(await hub.request("/rollouts"), 200);
    expect(listed.rollouts.map((r) => r.id)).toEqual([again.id, done.id]);
  });

  it("stops past --max-failures: failed steps keep the device's error, the rest are skipped", async () => {
    const target = ids.slice(0, 4);
    const before = target.map((_, i) => writes(devices[i] as SimulatedHttpThing).length);
    const release = await build(manifest("cursed", CURSED_LEVEL, target));
    const done = await rollout(release, { concurrency: 1, maxFailures: 1 });
    expect(done.status).toBe("failed");
    expect(done.reason).toMatch(/2 Thing\(s\) failed, more than --max-failures 1/);
    expect(done.progress).toMatchObject({ failed: 2, skipped: 2, completed: 0, pending: 0, applying: 0 });
    const all = await steps(done.id);
    const failed = all.filter((s) => s.status === "failed");
    expect(failed.map((s) => s.thing)).toEqual(target.slice(0, 2));
    expect(failed[0]?.items[0]).toMatchObject({
      kind: "property",
      name: "level",
      status: "failed",
      error: { reason: "status", status: 409 },
    });
    expect(JSON.stringify(failed[0]?.items[0]?.error)).toContain("door is open");
    // The skipped Things got no write; the failed ones got exactly one.
    target.forEach((_, i) => {
      expect(writes(devices[i] as SimulatedHttpThing).length - (before[i] ?? 0)).toBe(i < 2 ? 1 : 0);
    });
    const failures = (await history(target[0] ?? "", "failed")).filter((c) => c.cause.release === release);
    expect(failures).toHaveLength(1);
    // A failed Thing keeps its active release.
    const lineage = await json<{ active: string }>(
      await hub.request(`${thingPath(target[0] ?? "")}/releases`),
      200,
    );
    expect(lineage.active).not.toBe(release);
  });

  it("rolls back by rolling out an earlier release; the lineage says which replaced which", async () => {
    const id = ids[5] ?? "";
    const device = devices[5] as SimulatedHttpThing;
    const a = await build(manifest("back-a", 2, [id]));
    const b = await build(manifest("back-b", 6, [id]));
    expect((await rollout(a)).status).toBe("completed");
    expect(device.level).toBe(2);
    expect((await rollout(b)).status).toBe("completed");
    expect(device.level).toBe(6);
    const back = await rollout(a);
    expect(back).toMatchObject({ status: "completed", progress: { completed: 1 } });
    expect(device.level).toBe(2);
    expect(writes(device).map((r) => r.body)).toEqual(["2", "6", "2"]);
    const { lineage, active } = await json<{
      active: string;
      lineage: { release: string; replaced?: string }[];
    }>(await hub.request(`${thingPath(id)}/releases`), 200);
    expect(active).toBe(a);
    expect(lineage.map((l) => [l.release, l.replaced])).toEqual([
      [a, b],
      [b, a],
      [a, undefined],
    ]);
  });

  it("--select narrows a rollout to the release's Things a graph filter matches", async () => {
    const before = devices.map((d) => writes(d).length);
    const release = await build(manifest("selected", 8, ids.slice(0, 4)));
    const done = await rollout(release, { select: `id = "${ids[2] ?? ""}"` });
    expect(done).toMatchObject({ status: "completed", options: { select: `id = "${ids[2] ?? ""}"` } });
    expect((await steps(done.id)).map((s) => s.thing)).toEqual([ids[2]]);
    expect(devices.map((d, i) => writes(d).length - (before[i] ?? 0))).toEqual([0, 0, 1, 0, 0, 0]);
  });

  it("ends a rollout that stops on an error as failed, with the error, instead of leaving it running", async () => {
    const release = await build(manifest("store-trouble", 2, ids.slice(0, 1)));
    const store = hub.hub.store;
    const update = store.updateRolloutStep.bind(store);
    // The store refuses to record the step's end (a full disk, say).
    store.updateRolloutStep = async (rollout, thing, change) => {
      if (change.status === "completed") throw new Error("database or disk is full");
      return update(rollout, thing, change);
    };
    try {
      const done = await rollout(release);
      expect(done.status).toBe("failed");
      expect(done.reason).toBe("stopped on an error: database or disk is full");
      expect(done.ended).toBeDefined();
      // Its step, whose end could not be recorded, is not left `applying` (holding the Thing).
      expect(await steps(done.id)).toMatchObject([
        {
          thing: ids[0],
          status: "failed",
          reason:
            "the rollout stopped on an error: database or disk is full before this step's end was recorded",
        },
      ]);
    } finally {
      store.updateRolloutStep = update;
    }
  });

  it("refuses a --select that is no graph filter, pointing at select, and sends nothing", async () => {
    const before = devices.map((d) => writes(d).length);
    const release = await build(manifest("badly-selected", 9, ids.slice(0, 2)));
    const refused = await json<{ errors: { pointer: string }[] }>(
      await postRollout(release, { select: "id = (" }),
      400,
    );
    expect(refused.errors[0]?.pointer).toBe("/select");
    const planned = await json<{ errors: { pointer: string }[] }>(
      await hub.request(
        `/releases/${encodeURIComponent(release)}/plan?select=${encodeURIComponent("id = (")}`,
      ),
      400,
    );
    expect(planned.errors[0]?.pointer).toBe("/query/select");
    expect(devices.map((d, i) => writes(d).length - (before[i] ?? 0))).toEqual([0, 0, 0, 0, 0, 0]);
  });

  it("refuses (409) a rollout to a Thing another running rollout has still to apply, and sends it nothing", async () => {
    const device = new SimulatedHttpThing({ username: USERNAME, password: PASSWORD });
    await device.start();
    try {
      const id = "urn:test:rollout:contended";
      await registerThing(hub, id, device.td(id), { username: USERNAME, password: PASSWORD });
      const first = await build(manifest("contended-a", 4, [id]));
      const second = await build(manifest("contended-b", 5, [id]));
      const answer = device.holdAnswers();
      const arrived = device.moreRequests(1);
      const started = await json<RolloutView>(await postRollout(first), 202);
      await arrived;
      const refused = await postRollout(second);
      expect(refused.status).toBe(409);
      expect(refused.headers.get("content-type")).toMatch(/application\/problem\+json/);
      expect(((await refused.json()) as { detail: string }).detail).toContain(started.id);
      answer();
      await hub.hub.rollouts?.settled(started.id);
      expect(writes(device).map((r) => r.body)).toEqual(["4"]);
      const listed = await json<{ rollouts: Rollout[] }>(
        await hub.request(`/rollouts?release=${encodeURIComponent(second)}`),
        200,
      );
      expect(listed.rollouts).toEqual([]);
      const { active } = await json<{ active: string }>(await hub.request(`${thingPath(id)}/releases`), 200);
      expect(active).toBe(first);
      // Once the first has ended, the second may go.
      expect((await rollout(second)).status).toBe("completed");
      expect(device.level).toBe(5);
    } finally {
      await device.stop();
    }
  });

  it("cancels a running rollout: the step in flight makes no release active, the pending ones are skipped and get nothing", async () => {
    const fleet = [0, 1, 2].map(() => new SimulatedHttpThing({ username: USERNAME, password: PASSWORD }));
    try {
      const targets: string[] = [];
      for (const [i, device] of fleet.entries()) {
        await device.start();
        const id = `urn:test:rollout:cancel:${i}`;
        targets.push(id);
        await registerThing(hub, id, device.td(id), { username: USERNAME, password: PASSWORD });
      }
      const release = await build(manifest("cancelled", 2, targets));
      const first = fleet[0] as SimulatedHttpThing;
      const answer = first.holdAnswers();
      const arrived = first.moreRequests(1);
      const started = await json<RolloutView>(await postRollout(release, { concurrency: 1 }), 202);
      await arrived;
      const cancel = () =>
        hub.request(`/rollouts/${encodeURIComponent(started.id)}/cancel`, { method: "POST" });
      const cancelled = await json<RolloutView>(await cancel(), 200);
      expect(cancelled).toMatchObject({ status: "failed", reason: "cancelled by admin" });
      answer();
      const ended = await hub.hub.rollouts?.settled(started.id);
      expect(ended).toMatchObject({
        status: "failed",
        reason: "cancelled by admin",
        progress: { completed: 0, failed: 1, skipped: 2, pending: 0, applying: 0 },
      });
      expect(fleet.map((d) => writes(d).length)).toEqual([1, 0, 0]);
      // The write that was out when the cancel came is recorded as it ended; no release is active.
      expect((await history(targets[0] as string, "completed")).length).toBe(1);
      expect(await history(targets[0] as string, "applied")).toEqual([]);
      const again = await cancel();
      expect(again.status).toBe(409);
      expect(again.headers.get("content-type")).toMatch(/application\/problem\+json/);
      expect((await hub.request("/rollouts/urn:uuid:nope/cancel", { method: "POST" })).status).toBe(404);
      const cli = await things(["rollouts", started.id, "--cancel"]);
      expect(cli.code).toBe(1);
      expect(cli.stderr).toMatch(/^things: .*has already ended \(failed\)/);
      expect((await things(["rollouts", "--cancel"])).code).toBe(2);
      for (const args of [
        ["rollouts", "urn:uuid:nope"],
        ["rollouts", "urn:uuid:nope", "--cancel"],
      ]) {
        const unknown = await things(args);
        expect(unknown).toMatchObject({ code: 1, stdout: "" });
        expect(unknown.stderr).toBe("things: no rollout urn:uuid:nope: `things rollouts` lists them\n");
      }
      const anonymous = await hub.request(`/rollouts/${encodeURIComponent(started.id)}/cancel`, {
        method: "POST",
        auth: false,
      });
      expect(anonymous.status).toBe(401);
    } finally {
      for (const device of fleet) await device.stop();
    }
  });

  it("suspends (its replica lost the rollouts role): no new step, still running, and resumed later to the end", async () => {
    const fleet = [0, 1, 2].map(() => new SimulatedHttpThing({ username: USERNAME, password: PASSWORD }));
    const rollouts = hub.hub.rollouts;
    if (rollouts === undefined) throw new Error("the test hub has no rollouts");
    try {
      const targets: string[] = [];
      for (const [i, device] of fleet.entries()) {
        await device.start();
        const id = `urn:test:rollout:suspend:${i}`;
        targets.push(id);
        await registerThing(hub, id, device.td(id), { username: USERNAME, password: PASSWORD });
      }
      const release = await build(manifest("suspended", 4, targets));
      const first = fleet[0] as SimulatedHttpThing;
      const answer = first.holdAnswers();
      const arrived = first.moreRequests(1);
      const started = await json<RolloutView>(await postRollout(release, { concurrency: 1 }), 202);
      await arrived;
      const suspended = rollouts.suspend();
      answer();
      await suspended;
      // The step in flight ended; no other step was taken, and the rollout is still recorded running.
      expect(fleet.map((d) => writes(d).length)).toEqual([1, 0, 0]);
      expect(await rollouts.get(started.id)).toMatchObject({
        status: "running",
        progress: { completed: 1, pending: 2 },
      });
      await rollouts.resume();
      expect(await rollouts.settled(started.id)).toMatchObject({
        status: "completed",
        progress: { completed: 3, pending: 0 },
      });
      expect(fleet.map((d) => writes(d).length)).toEqual([1, 1, 1]);
    } finally {
      for (const device of fleet) await device.stop();
    }
  });

  it("makes no release active after a cancel was answered: the step in flight sends nothing more and ends failed", async () => {
    const device = new SimulatedHttpThing({ username: USERNAME, password: PASSWORD });
    await device.start();
    try {
      const id = "urn:test:rollout:cancel-in-flight";
      await registerThing(hub, id, device.td(id), { username: USERNAME, password: PASSWORD });
      const before = await rollout(await build(manifest("in-flight-before", 1, [id])));
      expect(before.status).toBe("completed");
      const beforeRelease = before.release;
      // Two items: the write of level (held by the Thing), then the action reset.
      const release = await build(
        manifest("in-flight", 4, [id], "\n    actions: [{ name: reset, input: { to: 3 } }]"),
      );
      const answer = device.holdAnswers();
      const arrived = device.moreRequests(1);
      const started = await json<RolloutView>(await postRollout(release), 202);
      await arrived;
      const cancelled = await json<RolloutView>(
        await hub.request(`/rollouts/${encodeURIComponent(started.id)}/cancel`, { method: "POST" }),
        200,
      );
      expect(cancelled).toMatchObject({ status: "failed", progress: { applying: 1 } });
      answer();
      const ended = await hub.hub.rollouts?.settled(started.id);
      expect(ended).toMatchObject({ status: "failed", progress: { failed: 1, completed: 0, applying: 0 } });
      const [step] = await steps(started.id);
      expect(step?.status).toBe("failed");
      expect(step?.reason).toMatch(
        /^cancelled by admin while this step was being applied: the release was not made active/,
      );
      expect(step?.items.map((i) => [i.kind, i.name, i.status])).toEqual([
        ["property", "level", "completed"],
        ["action", "reset", "skipped"],
      ]);
      expect(device.count("/actions/reset")).toBe(0);
      const { active } = await json<{ active: string | null }>(
        await hub.request(`${thingPath(id)}/releases`),
        200,
      );
      expect(active).toBe(beforeRelease);
      const applied = await history(id, "applied");
      expect(applied.map((c) => (c.value as { release: string }).release)).toEqual([beforeRelease]);
    } finally {
      await device.stop();
    }
  });

  it("refuses (409) a rollout to a Thing whose step a cancelled rollout is still applying", async () => {
    const device = new SimulatedHttpThing({ username: USERNAME, password: PASSWORD });
    await device.start();
    try {
      const id = "urn:test:rollout:cancel-contended";
      await registerThing(hub, id, device.td(id), { username: USERNAME, password: PASSWORD });
      const first = await build(manifest("cancel-contended-a", 6, [id]));
      const second = await build(manifest("cancel-contended-b", 7, [id]));
      const answer = device.holdAnswers();
      const arrived = device.moreRequests(1);
      const started = await json<RolloutView>(await postRollout(first), 202);
      await arrived;
      const cancelled = await hub.request(`/rollouts/${encodeURIComponent(started.id)}/cancel`, {
        method: "POST",
      });
      expect(((await cancelled.json()) as RolloutView).status).toBe("failed");
      // The cancelled rollout's write is still in flight: neither release may write the Thing now.
      for (const release of [second, first]) {
        const refused = await postRollout(release);
        expect(refused.status).toBe(409);
        expect(((await refused.json()) as { detail: string }).detail).toMatch(
          new RegExp(`${started.id}.*being applied now`),
        );
      }
      answer();
      await hub.hub.rollouts?.settled(started.id);
      expect(writes(device).map((r) => r.body)).toEqual(["6"]);
      // Cancelled while its step was in flight: the release was not made active on the Thing.
      const { active } = await json<{ active: string | null }>(
        await hub.request(`${thingPath(id)}/releases`),
        200,
      );
      expect(active).toBeNull();
      // Once the step has ended, the Thing is free.
      expect((await rollout(second)).status).toBe("completed");
      expect(writes(device).map((r) => r.body)).toEqual(["6", "7"]);
    } finally {
      await device.stop();
    }
  });

  it("refuses a release that cannot be applied, and an unknown one, before anything is sent", async () => {
    const sent = devices.map((d) => d.requests.length);
    // A filter is resolved at plan time: the build cannot know the value does not fit.
    const bad = await build(
      `release: too-high\nthings:\n  - select: { filter: 'id = "${ids[0] ?? ""}"' }\n    properties: { level: 42 }\n`,
    );
    const refused = await postRollout(bad);
    expect(refused.status).toBe(400);
    expect(refused.headers.get("content-type")).toMatch(/application\/problem\+json/);
    expect(((await refused.json()) as { detail: string }).detail).toMatch(/schema-mismatch/);
    const unknown = await hub.request(
      `/releases/${encodeURIComponent(`sha256:${"0".repeat(64)}`)}/rollouts`,
      {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      },
    );
    expect(unknown.status).toBe(404);
    const badOptions = await postRollout(bad, { concurrency: 0 });
    expect(badOptions.status).toBe(400);
    expect(devices.map((d) => d.requests.length)).toEqual(sent);
    for (const path of [
      "/rollouts/urn:uuid:nope",
      "/rollouts/urn:uuid:nope/events",
      "/things/urn:test:nobody/releases",
    ]) {
      const missing = await hub.request(path);
      expect(missing.status, path).toBe(404);
      expect(missing.headers.get("content-type")).toMatch(/application\/problem\+json/);
    }
  });

  it("streams a cancelled rollout's events until its step in flight has ended, not only to the cancel", async () => {
    const device = new SimulatedHttpThing({ username: USERNAME, password: PASSWORD });
    try {
      await device.start();
      // Before the fleet's ids: its step is the first, held while the others wait.
      const id = "urn:test:rollout-cancel-stream";
      await registerThing(hub, id, device.td(id), { username: USERNAME, password: PASSWORD });
      const release = await build(manifest("cancel-streamed", 3, [id, ...ids.slice(0, 2)]));
      const answer = device.holdAnswers();
      const arrived = device.moreRequests(1);
      const started = await json<RolloutView>(await postRollout(release, { concurrency: 1 }), 202);
      await arrived;
      const stream = await EventStream.open(hub, `/rollouts/${encodeURIComponent(started.id)}/events`);
      const first = await stream.next();
      expect(first?.event).toBe("status");
      const cancelled = await json<RolloutView>(
        await hub.request(`/rollouts/${encodeURIComponent(started.id)}/cancel`, { method: "POST" }),
        200,
      );
      expect(cancelled.progress.applying).toBe(1);
      answer();
      const events: { event: string; data: { status: string; thing?: string; progress: RolloutProgress } }[] =
        [];
      for (;;) {
        const event = await stream.next();
        if (!event) break;
        events.push({ event: event.event, data: JSON.parse(event.data) as (typeof events)[number]["data"] });
      }
      // The cancel's status, then the end of the step that was out: the stream ends with it.
      expect(events.find((e) => e.event === "status")?.data).toMatchObject({ status: "failed" });
      expect(events.at(-1)).toMatchObject({
        event: "step",
        data: { thing: id, status: "failed", progress: { applying: 0, failed: 1, skipped: 2 } },
      });
    } finally {
      await device.stop();
    }
  });

  it("things rollout cancelled meanwhile says it waits for the step in flight, then sums up every step's end", async () => {
    const device = new SimulatedHttpThing({ username: USERNAME, password: PASSWORD });
    try {
      await device.start();
      const id = "urn:test:rollout-cli-cancel";
      await registerThing(hub, id, device.td(id), { username: USERNAME, password: PASSWORD });
      const release = await build(manifest("cli-cancelled", 4, [id, ...ids.slice(0, 2)]));
      const answer = device.holdAnswers();
      const arrived = device.moreRequests(1);
      const cli = runThings([
        "rollout",
        release,
        "--concurrency",
        "1",
        "--url",
        hub.url,
        "--token",
        hub.token,
      ]);
      await arrived;
      const started = await cli.waitFor(/^rollout (urn:uuid:\S+) of /m, "stderr");
      const cancel = await hub.request(`/rollouts/${encodeURIComponent(started[1] ?? "")}/cancel`, {
        method: "POST",
      });
      expect(cancel.status).toBe(200);
      // The device holds its answer until the CLI has said why it waits.
      await cli.waitFor(
        /^rollout failed \(cancelled by admin\): waiting for the 1 step\(s\) in flight to end/m,
        "stderr",
      );
      answer();
      expect(await cli.exited).toBe(1);
      expect(cli.stdout()).toMatch(/failed: 0 completed, 1 failed, 2 skipped of 3\n$/);
      expect(cli.stderr()).toContain(`failed ${id}: cancelled by admin while this step was being applied`);
    } finally {
      await device.stop();
    }
  });

  it("streams a rollout's progress as Server-Sent Events until it ends", async () => {
    const release = await build(manifest("streamed", 7, ids.slice(0, 4)));
    const started = await json<RolloutView>(await postRollout(release, { concurrency: 1 }), 202);
    const stream = await EventStream.open(hub, `/rollouts/${encodeURIComponent(started.id)}/events`);
    const events: { event: string; data: { status: string; progress: RolloutProgress } }[] = [];
    for (;;) {
      const event = await stream.next();
      if (!event) break;
      events.push({ event: event.event, data: JSON.parse(event.data) as (typeof events)[number]["data"] });
    }
    const last = events.at(-1);
    expect(last).toMatchObject({
      event: "status",
      data: { status: "completed", progress: { completed: 4 } },
    });
    expect(events[0]?.event).toBe("status");
    // Each step event that came counts up, never down.
    const counts = events.filter((e) => e.event === "step").map((e) => e.data.progress.completed);
    expect(counts).toEqual([...counts].sort((x, y) => x - y));
  });

  // Several runs of the CLI, each a Node.js start: a longer bound than the others.
  it("things rollout shows progress and a summary, exits 1 when the rollout failed and 3 when Things failed within --max-failures", async () => {
    const good = await build(manifest("cli-good", 1, ids.slice(0, 3)));
    const ok = await things(["rollout", good, "--concurrency", "2"]);
    expect(ok.code, ok.stderr).toBe(0);
    expect(ok.stdout).toMatch(/^rollout urn:uuid:\S+ completed: 3 completed, 0 failed, 0 skipped of 3\n$/);
    // Not a terminal: one plain line per Thing that ended.
    for (const id of ids.slice(0, 3)) expect(ok.stderr).toContain(`completed ${id}`);
    for (const device of devices.slice(0, 3)) expect(device.level).toBe(1);

    const bad = await build(manifest("cli-bad", CURSED_LEVEL, ids.slice(0, 3)));
    const failed = await things(["rollout", bad, "--concurrency", "1", "--max-failures", "0"]);
    expect(failed.code).toBe(1);
    expect(failed.stdout).toMatch(/failed: 0 completed, 1 failed, 2 skipped of 3/);
    expect(failed.stderr).toMatch(
      /things: the rollout failed: 1 Thing\(s\) failed, more than --max-failures 0/,
    );

    // Failures within --max-failures: the rollout completes, but with its own exit code (3, not
    // the 0 of a clean run), and the last line says so.
    const tolerated = await build(manifest("cli-tolerated", CURSED_LEVEL, ids.slice(3, 4)));
    const within = await things(["rollout", tolerated, "--max-failures", "1"]);
    expect(within.code, within.stderr).toBe(3);
    expect(within.stdout).toMatch(/completed: 0 completed, 1 failed, 0 skipped of 1\n$/);
    // Not a terminal: the Thing's line names it, with the device's reason (which does not repeat
    // the id), and nothing after it names it again.
    expect(within.stderr).toContain(`1/1 failed ${ids[3]}: property level: `);
    expect(within.stderr).not.toContain(`property level: ${ids[3]}: `);
    expect(`${within.stdout}${within.stderr}`.split(ids[3] ?? "").length - 1).toBe(1);
    expect(within.stderr.split("\n").at(-2)).toBe(
      "things: 1 Thing(s) failed, within --max-failures 1; they keep their previous release",
    );
    // --json too: the rollout on stdout, and the same exit code.
    const again = await build(manifest("cli-tolerated-json", CURSED_LEVEL, ids.slice(3, 4)));
    const json = await things(["rollout", again, "--max-failures", "1", "--json"]);
    expect(json.code, json.stderr).toBe(3);
    expect(JSON.parse(json.stdout)).toMatchObject({ status: "completed", progress: { failed: 1 } });
    const help = await things(["rollout", "--help"]);
    expect(help.stdout.replace(/\s+/g, " ")).toContain(
      "3 completed, but some Things failed within --max-failures",
    );

    const drift = await things(["drift", "--json"]);
    expect(drift).toMatchObject({ code: 0, stdout: "[]\n" });
  }, 120_000);

  it("things rollout with piped stdout names each failed Thing exactly once, with its reason, however many steps follow", async () => {
    // Every Thing refuses: each one's end is a progress line; the later lines, the summary and
    // the last line do not name the earlier ones again.
    const refused = await build(manifest("cli-named-once", CURSED_LEVEL, ids.slice(0, 3)));
    const run = await things(["rollout", refused, "--concurrency", "1", "--max-failures", "3"]);
    expect(run.code, run.stderr).toBe(3);
    expect(run.stdout).toMatch(/completed: 0 completed, 3 failed, 0 skipped of 3\n$/);
    const output = `${run.stdout}${run.stderr}`;
    for (const id of ids.slice(0, 3)) {
      expect(output.split(id).length - 1, output).toBe(1);
      expect(run.stderr).toMatch(
        new RegExp(`^[1-3]/3 failed ${id.replace(/[.:]/g, "\\$&")}: property level: .+$`, "m"),
      );
    }
    expect(run.stderr.split("\n").at(-2)).toBe(
      "things: 3 Thing(s) failed, within --max-failures 3; they keep their previous release",
    );
  }, 60_000);

  it("drift of an id never registered says so (404); no drift and no lineage say so on stderr", async () => {
    const never = "urn:test:rollout:never-registered";
    const unknown = await hub.request(`/drift?thing=${encodeURIComponent(never)}`);
    expect(unknown.status).toBe(404);
    expect(((await unknown.json()) as { detail: string }).detail).toContain(never);
    expect((await hub.request("/drift?thing=not-an-iri")).status).toBe(400);
    const cli = await things(["drift", "--thing", never]);
    expect(cli).toMatchObject({
      code: 1,
      stdout: "",
      stderr: `things: No Thing with id ${never} has ever been registered here: \`things ls\` lists their ids\n`,
    });

    const plain = "urn:test:rollout:no-release";
    await registerThing(hub, plain, minimalTd({ id: plain }));
    expect(await things(["drift", "--thing", plain])).toMatchObject({
      code: 0,
      stdout: "",
      stderr: `nothing drifts on ${plain}: every property observed holds its release's value\n`,
    });
    expect(await things(["lineage", plain])).toMatchObject({
      code: 0,
      stdout: "",
      stderr: `no release has been rolled out to ${plain}\n`,
    });
  }, 60_000);
});
