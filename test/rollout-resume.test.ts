// Kill and resume: the hub runs as a child process (`things serve` with a data directory, the
// built CLI — `npm run build` first), rolls a release out to slow simulated HTTP Things, is killed
// with SIGKILL while writes are in flight, and started again on the same data. The rollout must
// complete by itself, and no Thing may have received its write twice: the devices count them.
import { spawn, type ChildProcess } from "node:child_process";
import { once } from "node:events";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { RolloutClient } from "../src/client/index.js";
import { buildRelease, type Change } from "../src/core/index.js";
import { SimulatedHttpThing } from "./support/simulated-http-thing.js";

const BIN = fileURLToPath(new URL("../bin/things.js", import.meta.url));
const USERNAME = "operator";
const PASSWORD = `pw-${randomBytes(12).toString("hex")}`;
const TOKEN = `ht_${randomBytes(24).toString("hex")}`;
const FLEET = 16;
const DESIRED = 6;

interface Hub {
  child: ChildProcess;
  url: string;
  client: RolloutClient;
}

/** `things serve` on a free port; resolves once it says where it listens. */
async function serve(dataDir: string): Promise<Hub> {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env))
    if (!name.startsWith("HYPERTHINGS_")) env[name] = value;
  env.HYPERTHINGS_ADMIN_TOKEN = TOKEN;
  const child = spawn(
    process.execPath,
    [BIN, "serve", "--data", dataDir, "--port", "0", "--no-mqtt", "--no-observe", "--log-level", "warn"],
    { env, stdio: ["ignore", "pipe", "inherit"] },
  );
  const lines = createInterface({ input: child.stdout as NodeJS.ReadableStream });
  const exited = once(child, "exit").then(([code]) => {
    throw new Error(`things serve exited (${String(code)}) before it listened`);
  });
  const listening = (async () => {
    for await (const line of lines) {
      const match = / listening on (http:\/\/\S+)/.exec(line);
      if (match?.[1]) return match[1];
    }
    throw new Error("things serve closed its output before it listened");
  })();
  const url = await Promise.race([listening, exited]);
  return { child, url, client: new RolloutClient({ url, token: TOKEN }) };
}

async function request(hub: Hub, path: string, method: string, body: unknown): Promise<Response> {
  return fetch(`${hub.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

/** Registers the device's TD under `id` and gives the hub its credentials. */
async function register(hub: Hub, id: string, device: SimulatedHttpThing): Promise<void> {
  const path = `/things/${encodeURIComponent(id)}`;
  expect((await request(hub, path, "PUT", device.td(id))).status).toBe(201);
  expect(
    (await request(hub, `${path}/credentials`, "PUT", { username: USERNAME, password: PASSWORD })).status,
  ).toBe(200);
}

/** Stops a hub a test left running (one it killed has exited already). */
async function stop(hub: Hub | undefined): Promise<void> {
  if (hub && hub.child.exitCode === null) {
    hub.child.kill("SIGTERM");
    await once(hub.child, "exit");
  }
}

const writes = (device: SimulatedHttpThing) =>
  device.requests.filter((r) => r.method === "PUT" && r.path === "/properties/level");

describe("a rollout interrupted by a killed hub", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-resume-"));
  const devices: SimulatedHttpThing[] = [];
  const ids: string[] = [];
  let hub: Hub | undefined;

  beforeAll(async () => {
    for (let i = 0; i < FLEET; i++) {
      const device = new SimulatedHttpThing({ username: USERNAME, password: PASSWORD, writeDelayMs: 300 });
      await device.start();
      devices.push(device);
      ids.push(`urn:test:resume:${String(i).padStart(2, "0")}`);
    }
  });

  afterAll(async () => {
    await stop(hub);
    for (const device of devices) await device.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  it("resumes after SIGKILL and completes, no Thing written twice", async () => {
    hub = await serve(dataDir);
    for (const [i, id] of ids.entries()) await register(hub, id, devices[i] as SimulatedHttpThing);
    const release = buildRelease(
      [
        {
          path: "fleet.yaml",
          text: [
            "release: fleet-level",
            "things:",
            ...ids.map((id) => `  - select: { id: "${id}" }\n    properties: { level: ${DESIRED} }`),
          ].join("\n"),
        },
      ],
      { builder: "test", builtAt: "2026-01-01T00:00:00.000Z" },
    );
    expect((await request(hub, "/releases", "POST", release)).status).toBe(201);
    const started = await hub.client.startRollout(release.id, { concurrency: 3 });

    // Kill the hub while writes are in flight: the 8th Thing (in id order) has its write, the
    // hub has not had the answer yet (the device answers after 300 ms).
    await (devices[7] as SimulatedHttpThing).moreRequests(1);
    hub.child.kill("SIGKILL");
    await once(hub.child, "exit");
    const before = devices.map((d) => writes(d).length);
    expect(before.filter((n) => n > 0).length).toBeGreaterThanOrEqual(8);
    expect(before.filter((n) => n === 0).length).toBeGreaterThan(0);

    hub = await serve(dataDir);
    for await (const event of hub.client.rolloutEvents(started.id)) {
      if (event.type === "status" && event.status !== "running") break;
    }
    const ended = await hub.client.rollout(started.id);
    expect(ended).toMatchObject({
      status: "completed",
      progress: { completed: FLEET, failed: 0, total: FLEET },
    });

    for (const device of devices) {
      expect(writes(device).map((r) => r.body)).toEqual([String(DESIRED)]);
      expect(device.level).toBe(DESIRED);
    }
    // Each Thing has the release active, recorded once.
    for (const id of ids) {
      const lineage = await hub.client.lineage(id);
      expect(lineage.active).toBe(release.id);
      expect(lineage.lineage).toHaveLength(1);
    }
    // A write in flight at the kill was checked against the Thing's value, not sent again.
    const checked = await fetch(`${hub.url}/changes?kind=reported&release=${encodeURIComponent(release.id)}`);
    const rechecks = ((await checked.json()) as { changes: Change[] }).changes;
    // (A write recorded as desired but killed before it left the hub reads the old value, and is
    // sent then: still once.)
    expect(rechecks.find((c) => c.thing === ids[7])?.value).toBe(DESIRED);
    // Two starts of a hub process (each a Node.js start, slow on a loaded machine): a longer bound.
  }, 120_000);
});

describe("an action in flight when the hub is killed", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-resume-action-"));
  const device = new SimulatedHttpThing({ username: USERNAME, password: PASSWORD });
  const id = "urn:test:resume:action";
  let hub: Hub | undefined;

  afterAll(async () => {
    await stop(hub);
    await device.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  it("is not invoked again, and its outcome is recorded in the Log as failed (interrupted)", async () => {
    await device.start();
    hub = await serve(dataDir);
    await register(hub, id, device);
    const release = buildRelease(
      [
        {
          path: "reset.yaml",
          text: `release: reset\nthings:\n  - select: { id: "${id}" }\n    actions: [{ name: reset, input: { to: 2 } }]\n`,
        },
      ],
      { builder: "test", builtAt: "2026-01-01T00:00:00.000Z" },
    );
    expect((await request(hub, "/releases", "POST", release)).status).toBe(201);
    const answer = device.holdAnswers();
    const arrived = device.moreRequests(1);
    const started = await hub.client.startRollout(release.id, {});
    await arrived;
    hub.child.kill("SIGKILL");
    await once(hub.child, "exit");
    answer();

    hub = await serve(dataDir);
    for await (const event of hub.client.rolloutEvents(started.id)) {
      if (event.type === "status" && event.status !== "running") break;
    }
    expect(await hub.client.rollout(started.id)).toMatchObject({ status: "failed", progress: { failed: 1 } });
    expect(device.count("/actions/reset")).toBe(1);
    const answered = await fetch(`${hub.url}/changes?release=${encodeURIComponent(release.id)}&limit=100`);
    const changes = ((await answered.json()) as { changes: Change[] }).changes.filter((c) => c.thing === id);
    const invoked = changes.find((c) => c.kind === "invoked");
    const failed = changes.filter((c) => c.kind === "failed");
    expect(failed).toHaveLength(1);
    expect(failed[0]).toMatchObject({
      affordance: "reset",
      value: { reason: "interrupted" },
      cause: { via: "rollout", release: release.id, correlation: invoked?.cause.correlation },
    });
  }, 120_000);
});

describe("a cancelled rollout's step in flight when the hub is killed", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-resume-cancelled-"));
  const device = new SimulatedHttpThing({ username: USERNAME, password: PASSWORD });
  const id = "urn:test:resume:cancelled";
  let hub: Hub | undefined;

  afterAll(async () => {
    await stop(hub);
    await device.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  const level = (name: string, value: number) =>
    buildRelease(
      [
        {
          path: `${name}.yaml`,
          text: `release: ${name}\nthings:\n  - select: { id: "${id}" }\n    properties: { level: ${value} }\n`,
        },
      ],
      { builder: "test", builtAt: "2026-01-01T00:00:00.000Z" },
    );

  it("is finished at the next start without making its release active, not left applying, and then frees its Thing", async () => {
    await device.start();
    hub = await serve(dataDir);
    await register(hub, id, device);
    const first = level("cancelled-first", 3);
    const second = level("cancelled-second", 4);
    for (const release of [first, second]) {
      expect((await request(hub, "/releases", "POST", release)).status).toBe(201);
    }
    const answer = device.holdAnswers();
    const arrived = device.moreRequests(1);
    const started = await hub.client.startRollout(first.id, {});
    await arrived;
    const cancelled = await request(hub, `/rollouts/${encodeURIComponent(started.id)}/cancel`, "POST", {});
    expect(cancelled.status).toBe(200);
    hub.child.kill("SIGKILL");
    await once(hub.child, "exit");
    answer();

    hub = await serve(dataDir);
    // The hub reads the Thing to learn whether the write it had sent took effect; then the step
    // ends. Waited for by asking (the rollout has ended: it streams no more progress).
    const deadline = Date.now() + 60_000;
    let view = await hub.client.rollout(started.id);
    while (view.progress.applying > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 50));
      view = await hub.client.rollout(started.id);
    }
    expect(view).toMatchObject({
      status: "failed",
      reason: "cancelled by admin",
      progress: { applying: 0, completed: 0, failed: 1 },
    });
    expect(writes(device).map((r) => r.body)).toEqual(["3"]);
    // The write had arrived (the Thing holds 3): the item is completed, but the step of a
    // cancelled rollout makes no release active.
    const [step] = await hub.client.steps(started.id);
    expect(step?.items.map((i) => i.status)).toEqual(["completed"]);
    expect(step?.reason).toMatch(/^cancelled by admin while this step was being applied/);
    expect((await hub.client.lineage(id)).active).toBeNull();
    const next = await hub.client.startRollout(second.id, {});
    for await (const event of hub.client.rolloutEvents(next.id)) {
      if (event.type === "status" && event.status !== "running") break;
    }
    expect(await hub.client.rollout(next.id)).toMatchObject({ status: "completed" });
    expect(writes(device).map((r) => r.body)).toEqual(["3", "4"]);
  }, 120_000);
});

describe("a rollout whose commands are in flight when the hub is stopped (SIGTERM)", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-resume-stop-"));
  const writer = new SimulatedHttpThing({ username: USERNAME, password: PASSWORD });
  const invoker = new SimulatedHttpThing({ username: USERNAME, password: PASSWORD });
  const ids = { write: "urn:test:resume:stop-write", action: "urn:test:resume:stop-action" };
  let hub: Hub | undefined;

  afterAll(async () => {
    await stop(hub);
    await writer.stop();
    await invoker.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }, 60_000);

  it("resumes from the interrupted ends the stop recorded: the write is read back, not sent again, and the action is not invoked again", async () => {
    await writer.start();
    await invoker.start();
    hub = await serve(dataDir);
    await register(hub, ids.write, writer);
    await register(hub, ids.action, invoker);
    const release = buildRelease(
      [
        {
          path: "both.yaml",
          text:
            `release: both\nthings:\n` +
            `  - select: { id: "${ids.write}" }\n    properties: { level: ${DESIRED} }\n` +
            `  - select: { id: "${ids.action}" }\n    actions: [{ name: reset, input: { to: 2 } }]\n`,
        },
      ],
      { builder: "test", builtAt: "2026-01-01T00:00:00.000Z" },
    );
    expect((await request(hub, "/releases", "POST", release)).status).toBe(201);
    // Both devices take their request and do not answer until told.
    const answers = [writer.holdAnswers(), invoker.holdAnswers()];
    const arrived = Promise.all([writer.moreRequests(1), invoker.moreRequests(1)]);
    const started = await hub.client.startRollout(release.id, { concurrency: 2, maxFailures: 1 });
    await arrived;
    hub.child.kill("SIGTERM");
    const [code] = (await once(hub.child, "exit")) as [number | null];
    expect(code).toBe(0);
    for (const answer of answers) answer();

    hub = await serve(dataDir);
    for await (const event of hub.client.rolloutEvents(started.id)) {
      if (event.type === "status" && event.status !== "running") break;
    }
    expect(await hub.client.rollout(started.id)).toMatchObject({
      // One failure is allowed: the action's, which the Log closes as interrupted.
      status: "completed",
      progress: { completed: 1, failed: 1, total: 2 },
    });
    expect(writes(writer).map((r) => r.body)).toEqual([String(DESIRED)]);
    expect(writer.level).toBe(DESIRED);
    expect(invoker.count("/actions/reset")).toBe(1);
    const answered = await fetch(`${hub.url}/changes?release=${encodeURIComponent(release.id)}&limit=100`);
    const changes = ((await answered.json()) as { changes: Change[] }).changes;
    const ends = (thing: string) =>
      changes.filter((c) => c.thing === thing && (c.kind === "failed" || c.kind === "completed"));
    // One end each, the stop's: the write, read back at the next start, was not sent again.
    expect(
      ends(ids.write).map((c) => [c.kind, (c.value as { reason?: string } | undefined)?.reason]),
    ).toEqual([["failed", "interrupted"]]);
    expect(ends(ids.action)).toHaveLength(1);
    expect(ends(ids.action)[0]).toMatchObject({
      affordance: "reset",
      value: { reason: "interrupted", outcome: "unknown" },
    });
  }, 120_000);
});
