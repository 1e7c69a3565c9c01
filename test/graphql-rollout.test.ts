// Rollouts through GraphQL against a real hub and simulated Things that speak real HTTP: the
// `rollout` mutation starts one (refused like POST /releases/{id}/rollouts), the rolloutProgress
// subscription (graphql-ws's own client, through GraphqlClient) follows it to its end, and the
// rollouts / rollout / lineage queries answer what the Log and the step ledger hold.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import WebSocket from "ws";
import { GraphqlClient, GraphqlRequestError, type GraphqlRolloutEvent } from "../src/client/index.js";
import { CURSED_LEVEL, SimulatedHttpThing } from "./support/simulated-http-thing.js";
import { registerThing, startTestHub, type TestHub } from "./support/test-hub.js";

const USERNAME = "operator";
const PASSWORD = `pw-${randomBytes(12).toString("hex")}`;
const READ_TOKEN = "reader-token-rollout-0123456789";
const FLEET = 4;

let hub: TestHub;
let admin: GraphqlClient;
let reader: GraphqlClient;
const devices: SimulatedHttpThing[] = [];
const ids: string[] = [];

async function build(name: string, level: number): Promise<string> {
  const text = [
    `release: ${name}`,
    "things:",
    ...ids.map((id) => `  - select: { id: "${id}" }\n    properties: { level: ${level} }`),
  ].join("\n");
  const result = await hub.hub.releases.build([{ path: "release.yaml", text }], { actor: "test" });
  return result.release.id;
}

/** The error codes of a refused request. */
async function refusal(promise: Promise<unknown>): Promise<{ codes: unknown[]; messages: string[] }> {
  const error = await promise.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(error).toBeInstanceOf(GraphqlRequestError);
  const errors = (error as GraphqlRequestError).errors;
  return { codes: errors.map((e) => e.extensions?.code), messages: errors.map((e) => e.message) };
}

async function collect(stream: AsyncIterable<GraphqlRolloutEvent>): Promise<GraphqlRolloutEvent[]> {
  const events: GraphqlRolloutEvent[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

beforeAll(async () => {
  hub = await startTestHub({ mqtt: false }, { HYPERTHINGS_READ_TOKEN: READ_TOKEN });
  admin = new GraphqlClient({ url: hub.url, token: hub.token, webSocketImpl: WebSocket, retryAttempts: 0 });
  reader = new GraphqlClient({ url: hub.url, token: READ_TOKEN, webSocketImpl: WebSocket, retryAttempts: 0 });
  for (let i = 0; i < FLEET; i++) {
    // A device that answers writes late keeps the rollout running while the subscription starts;
    // the assertions hold whether it does or not.
    const device = new SimulatedHttpThing({ username: USERNAME, password: PASSWORD, writeDelayMs: 50 });
    await device.start();
    devices.push(device);
    const id = `urn:test:gql-rollout:${i}`;
    ids.push(id);
    await registerThing(hub, id, device.td(id), { username: USERNAME, password: PASSWORD });
  }
});

afterAll(async () => {
  await admin?.close();
  await reader?.close();
  await hub?.stop();
  for (const device of devices) await device.stop();
});

describe("rollouts over GraphQL", () => {
  it("starts a rollout by mutation, follows it by subscription to its end, then queries it and the lineage", async () => {
    const first = await build("gql-levels-4", 4);
    const started = await admin.startRollout(first, { concurrency: 1 });
    expect(started).toMatchObject({
      release: first,
      name: "gql-levels-4",
      concurrency: 1,
      maxFailures: 0,
      select: null,
      actor: "admin",
      progress: { total: FLEET },
    });
    expect(started.id).toMatch(/^urn:uuid:/);

    // The reader may follow it: a subscription is a read.
    const events = await collect(reader.rolloutProgress(started.id));
    const [initial, ...rest] = events;
    expect(initial).toMatchObject({ type: "status", rollout: started.id });
    const last = events.at(-1);
    expect(last).toMatchObject({
      type: "status",
      status: "completed",
      progress: { completed: FLEET, pending: 0, applying: 0, failed: 0, total: FLEET },
    });
    // Every step not finished when the subscription started arrives once, then the stream ends.
    const steps = rest.filter((e) => e.type === "step");
    const finishedBefore = (initial?.progress.completed ?? 0) + (initial?.progress.skipped ?? 0);
    expect(steps).toHaveLength(FLEET - finishedBefore);
    expect(new Set(steps.map((s) => s.thing)).size).toBe(steps.length);
    for (const step of steps) {
      expect(ids).toContain(step.thing);
      expect(step.status).toBe("completed");
    }
    const done = steps.map((s) => s.progress.completed);
    expect(done).toEqual([...done].sort((a, b) => a - b));
    for (const device of devices) expect(device.level).toBe(4);

    // A subscription to a rollout that has ended: its status, and the end.
    const after = await collect(admin.rolloutProgress(started.id));
    expect(after).toEqual([
      {
        type: "status",
        rollout: started.id,
        thing: null,
        status: "completed",
        reason: null,
        progress: last?.progress,
      },
    ]);

    // The rollout and its steps, a page at a time.
    const page1 = await reader.rollout(started.id, { first: 3 });
    expect(page1).toMatchObject({ id: started.id, status: "completed", progress: { completed: FLEET } });
    expect(page1?.ended).toEqual(expect.any(String));
    expect(page1?.steps.steps.map((s) => s.position)).toEqual([0, 1, 2]);
    expect(page1?.steps.next).toBe(2);
    const page2 = await reader.rollout(started.id, { first: 3, after: page1?.steps.next ?? 0 });
    expect(page2?.steps.steps.map((s) => s.position)).toEqual([3]);
    expect(page2?.steps.next).toBeNull();
    const allSteps = [...(page1?.steps.steps ?? []), ...(page2?.steps.steps ?? [])];
    expect(allSteps.map((s) => s.thing).sort()).toEqual([...ids].sort());
    expect(allSteps[0]).toMatchObject({
      status: "completed",
      desired: { level: 4 },
      items: [{ kind: "property", name: "level", desired: 4, status: "completed", error: null }],
    });
    expect(await reader.rollout("urn:uuid:00000000-0000-4000-8000-000000000000")).toBeNull();

    // A second release replaces the first: the lineage says which replaced which.
    const second = await build("gql-levels-5", 5);
    const next = await admin.startRollout(second, { concurrency: 2, maxFailures: 1 });
    const ends = await collect(admin.rolloutProgress(next.id));
    expect(ends.at(-1)).toMatchObject({ status: "completed", progress: { completed: FLEET } });
    const lineage = await reader.lineage(ids[0] ?? "");
    expect(lineage.thing).toBe(ids[0]);
    expect(lineage.active).toBe(second);
    expect(lineage.entries.map((e) => [e.release, e.replaced, e.rollout])).toEqual([
      [second, first, next.id],
      [first, null, started.id],
    ]);
    expect(lineage.entries[0]).toMatchObject({ name: "gql-levels-5", actor: "admin", desired: { level: 5 } });
    expect(lineage.entries[0]?.seq).toBeGreaterThan(lineage.entries[1]?.seq ?? Infinity);

    // The list, newest first, of one release or all, a page at a time.
    const all = await reader.rollouts({ first: 1 });
    expect(all.rollouts.map((r) => r.id)).toEqual([next.id]);
    expect(all.next).toBe(1);
    const older = await reader.rollouts({ first: 1, after: all.next ?? 0 });
    expect(older.rollouts.map((r) => r.id)).toEqual([started.id]);
    const ofFirst = await reader.rollouts({ release: first });
    expect(ofFirst.rollouts.map((r) => r.id)).toEqual([started.id]);
    expect(ofFirst.next).toBeNull();
  });

  it("narrows a rollout with select, and a failing one ends its subscription with the reason", async () => {
    const puts = (d: SimulatedHttpThing) => d.requests.filter((r) => r.method === "PUT").length;
    const target = ids[1] ?? "";
    const seven = await build("gql-levels-7", 7);
    const narrowed = await admin.startRollout(seven, { select: `id = "${target}"` });
    expect(narrowed).toMatchObject({ select: `id = "${target}"`, progress: { total: 1 } });
    const narrowedEvents = await collect(admin.rolloutProgress(narrowed.id));
    expect(narrowedEvents.at(-1)).toMatchObject({
      status: "completed",
      progress: { completed: 1, total: 1 },
    });
    expect(devices.map((d) => d.level)).toEqual([5, 7, 5, 5]);
    expect((await admin.lineage(target)).active).toBe(seven);

    const before = devices.map(puts);
    const cursed = await build("gql-cursed", CURSED_LEVEL);
    const failing = await admin.startRollout(cursed, { concurrency: 1, maxFailures: 0 });
    const events = await collect(admin.rolloutProgress(failing.id));
    const last = events.at(-1);
    expect(last).toMatchObject({ type: "status", status: "failed" });
    expect(last?.reason).toMatch(/1 Thing\(s\) failed, more than --max-failures 0/);
    expect(last?.progress).toMatchObject({ failed: 1, completed: 0, pending: 0, applying: 0, total: FLEET });
    for (const step of events.filter((e) => e.type === "step")) {
      expect(step).toMatchObject({ status: "failed" });
      expect(step.reason).toContain("door is open");
    }
    // One device got the refused write; the others none. Each keeps its active release.
    expect(devices.map((d, i) => puts(d) - (before[i] ?? 0))).toEqual([1, 0, 0, 0]);
    const failed = await admin.rollout(failing.id, { status: "failed" });
    expect(failed).toMatchObject({ status: "failed", reason: last?.reason });
    expect(failed?.steps.steps.map((s) => s.thing)).toEqual([ids[0]]);
    expect(failed?.steps.steps[0]?.items[0]).toMatchObject({ status: "failed", error: { status: 409 } });
    expect((await admin.lineage(ids[0] ?? "")).active).not.toBe(cursed);
    expect((await admin.rollouts({ status: "failed" })).rollouts.map((r) => r.id)).toEqual([failing.id]);
  });

  it("refuses a reader's mutation, an unknown release, a bad concurrency, a bad status, and sends nothing", async () => {
    const release = await build("gql-levels-6", 6);
    const writesBefore = devices.map((d) => d.requests.filter((r) => r.method === "PUT").length);
    const before = (await admin.rollouts()).rollouts.length;

    expect((await refusal(reader.startRollout(release))).codes).toEqual(["FORBIDDEN"]);
    const anonymous = new GraphqlClient({ url: hub.url });
    expect((await refusal(anonymous.startRollout(release))).codes).toEqual(["UNAUTHENTICATED"]);

    const unknown = await refusal(admin.startRollout("urn:example:no-such-release"));
    expect(unknown.codes).toEqual(["NOT_FOUND"]);
    expect(unknown.messages[0]).toContain("urn:example:no-such-release");

    for (const concurrency of [0, 1001]) {
      const bad = await refusal(admin.startRollout(release, { concurrency }));
      expect(bad.codes).toEqual(["BAD_USER_INPUT"]);
      expect(bad.messages[0]).toMatch(/concurrency must be an integer from 1 to 1000/);
    }
    const negative = await refusal(admin.startRollout(release, { maxFailures: -1 }));
    expect(negative.codes).toEqual(["BAD_USER_INPUT"]);
    const empty = await refusal(admin.startRollout(release, { select: "" }));
    expect(empty.codes).toEqual(["BAD_USER_INPUT"]);

    const status = await refusal(admin.rollouts({ status: "paused" as "running" }));
    expect(status.codes).toEqual(["BAD_USER_INPUT"]);
    const subscription = await refusal(admin.rolloutProgress("urn:uuid:not-a-rollout").next());
    expect(subscription.codes).toEqual(["NOT_FOUND"]);
    const lineage = await refusal(admin.lineage("urn:test:gql-rollout:unknown"));
    expect(lineage.codes).toEqual(["NOT_FOUND"]);

    // Nothing was recorded and nothing reached a device.
    expect((await admin.rollouts()).rollouts).toHaveLength(before);
    expect(devices.map((d) => d.requests.filter((r) => r.method === "PUT").length)).toEqual(writesBefore);
  });
  it("cancels a running rollout by mutation, once; a read token may not", async () => {
    const device = new SimulatedHttpThing({ username: USERNAME, password: PASSWORD });
    await device.start();
    try {
      const id = "urn:test:gql-rollout:cancel";
      await registerThing(hub, id, device.td(id), { username: USERNAME, password: PASSWORD });
      const { release } = await hub.hub.releases.build(
        [
          {
            path: "cancel.yaml",
            text: `release: gql-cancel\nthings:\n  - select: { id: "${id}" }\n    properties: { level: 3 }\n`,
          },
        ],
        { actor: "test" },
      );
      const answer = device.holdAnswers();
      const arrived = device.moreRequests(1);
      const started = await admin.startRollout(release.id);
      await arrived;
      expect((await refusal(reader.cancelRollout(started.id))).codes).toEqual(["FORBIDDEN"]);
      expect(await admin.cancelRollout(started.id)).toMatchObject({
        status: "failed",
        reason: "cancelled by admin",
      });
      answer();
      await hub.hub.rollouts?.settled(started.id);
      expect((await refusal(admin.cancelRollout(started.id))).messages[0]).toMatch(/has already ended/);
    } finally {
      await device.stop();
    }
  });

  it("rolloutProgress of a rollout cancelled with a step out goes on to that step's end, then completes", async () => {
    const release = await build("gql-cancelled", 6);
    const device = devices[0] as SimulatedHttpThing;
    const answer = device.holdAnswers();
    const arrived = device.moreRequests(1);
    const started = await admin.startRollout(release, { concurrency: 1 });
    await arrived;
    const events = admin.rolloutProgress(started.id)[Symbol.asyncIterator]();
    const first = await events.next();
    expect(first.value).toMatchObject({ type: "status", status: "running" });
    const cancel = await hub.request(`/rollouts/${encodeURIComponent(started.id)}/cancel`, {
      method: "POST",
    });
    expect(cancel.status).toBe(200);
    answer();
    const rest: GraphqlRolloutEvent[] = [];
    for (let next = await events.next(); next.done !== true; next = await events.next())
      rest.push(next.value);
    expect(rest.map((e) => [e.type, e.status, e.thing])).toEqual([
      ["status", "failed", null],
      ["step", "failed", ids[0]],
    ]);
  });
});
