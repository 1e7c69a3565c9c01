// End-to-end tests of drift: a real hub (port 0) observing simulated Things — over HTTP (node:http,
// polled) and over MQTT (the machine's broker) — that change behind the hub's back after a rollout.
// Each policy does what it says: record, alert (on the change stream and the hub's MQTT), revert
// (one corrective write, then the limit). Every wait is for a Change or a message, bounded.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectAsync, type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import { changeTime, type Change, type DriftValue, type Rollout } from "../src/core/index.js";
import { SimulatedHttpThing } from "./support/simulated-http-thing.js";
import { changeAfter, minimalTd, registerThing, startTestHub, type TestHub } from "./support/test-hub.js";
import { brokerProblem, brokerUrl, servicesRequired } from "./support/mqtt-broker.js";

const USERNAME = "operator";
const PASSWORD = `pw-${randomBytes(12).toString("hex")}`;
const MESSAGE_BOUND_MS = 10_000;

let hub: TestHub;
const devices: SimulatedHttpThing[] = [];

async function register(id: string, td: Record<string, unknown>, credentials = true): Promise<void> {
  await registerThing(hub, id, td, credentials ? { username: USERNAME, password: PASSWORD } : undefined);
}

/** A polled HTTP Thing at `level` 1, registered and observed. */
async function httpThing(id: string): Promise<SimulatedHttpThing> {
  const device = new SimulatedHttpThing({ username: USERNAME, password: PASSWORD, pollIntervalMs: 100 });
  await device.start();
  devices.push(device);
  const after = await hub.hub.store.lastSeq();
  await register(id, device.td(id));
  await changeAfter(hub, after, (c) => c.thing === id && c.kind === "reported" && c.affordance === "level");
  return device;
}

/** Builds the release and rolls it out; resolves when the rollout has ended. */
async function rollOut(text: string): Promise<{ release: string; rollout: Rollout }> {
  const { release } = await hub.hub.releases.build([{ path: "release.yaml", text }], { actor: "test" });
  const response = await hub.request(`/releases/${encodeURIComponent(release.id)}/rollouts`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: "{}",
  });
  expect(response.status).toBe(202);
  const started = (await response.json()) as Rollout;
  const rollout = await hub.hub.rollouts?.settled(started.id);
  expect(rollout?.status).toBe("completed");
  return { release: release.id, rollout: rollout as Rollout };
}

const isDrift = (id: string, status: DriftValue["status"]) => (c: Change) =>
  c.thing === id && c.kind === "drift" && (c.value as DriftValue).status === status;

const writes = (device: SimulatedHttpThing) =>
  device.requests.filter((r) => r.method === "PUT" && r.path === "/properties/level").map((r) => r.body);

beforeAll(async () => {
  hub = await startTestHub({ observe: true, mqttPort: 0 });
});

afterAll(async () => {
  await hub?.stop();
  for (const device of devices) await device.stop();
});

describe("drift", () => {
  it("record: a Thing changed behind the hub's back drifts, is listed, and resolves when it comes back", async () => {
    const id = "urn:test:drift:record";
    const device = await httpThing(id);
    const { release } = await rollOut(
      `release: drift-record\nthings:\n  - select: { id: "${id}" }\n    properties: { level: 3 }\n`,
    );
    let after = await hub.hub.store.lastSeq();
    device.level = 7;
    const drift = await changeAfter(hub, after, isDrift(id, "drifting"));
    expect(drift).toMatchObject({
      affordance: "level",
      value: { status: "drifting", release, desired: 3, observed: 7, policy: "record" },
      cause: { actor: "hub:drift", release },
    });
    const since = (drift.value as DriftValue).since;
    const listed = (await (await hub.request(`/drift?thing=${encodeURIComponent(id)}`)).json()) as {
      drift: unknown[];
    };
    expect(listed.drift).toEqual([
      expect.objectContaining({ thing: id, affordance: "level", desired: 3, observed: 7, since, release }),
    ]);

    // Another value, still drifting: the same drift goes on (same since).
    after = drift.seq;
    device.level = 8;
    const more = await changeAfter(hub, after, isDrift(id, "drifting"));
    expect(more.value).toMatchObject({ observed: 8, since });

    after = more.seq;
    device.level = 3;
    const resolved = await changeAfter(hub, after, isDrift(id, "resolved"));
    expect(resolved.value).toMatchObject({ status: "resolved", desired: 3, since });
    expect((resolved.value as DriftValue).until).toBeDefined();
    const now = (await (await hub.request(`/drift?thing=${encodeURIComponent(id)}`)).json()) as {
      drift: unknown[];
    };
    expect(now.drift).toEqual([]);
    // record never fights: the hub wrote nothing but the rollout's one write.
    expect(writes(device)).toEqual(["3"]);
  });

  it("the Thing's diff tells the drift in between: how many drift Changes, the latest and what drifted", async () => {
    const id = "urn:test:drift:diff";
    const device = await httpThing(id);
    const from = new Date(Date.now() - 1000).toISOString();
    const { release } = await rollOut(
      `release: drift-diff\nthings:\n  - select: { id: "${id}" }\n    properties: { level: 4 }\n`,
    );
    const diffNow = async () => {
      const res = await hub.request(`${thingPath(id)}/diff?from=${encodeURIComponent(from)}`);
      expect(res.status).toBe(200);
      return (await res.json()) as { drift?: unknown; releases?: unknown };
    };
    const first = await diffNow();
    expect(first.drift).toBeUndefined();
    // The rollout in between: one release applied, now the active one, and who rolled it out.
    expect(first.releases).toMatchObject({
      counts: { applied: 1 },
      last: { kind: "applied", value: { release, name: "drift-diff" }, cause: { actor: "admin" } },
    });
    const before = await hub.request(
      `${thingPath(id)}/diff?from=${encodeURIComponent(from)}&to=${encodeURIComponent(from)}`,
    );
    expect(((await before.json()) as { releases?: unknown }).releases).toBeUndefined();
    const after = await hub.hub.store.lastSeq();
    device.level = 9;
    const drift = await changeAfter(hub, after, isDrift(id, "drifting"));
    const expected = {
      seq: drift.seq,
      kind: "drift",
      value: drift.value,
      cause: { actor: "hub:drift", via: "drift", release },
      time: changeTime(drift),
    };
    expect((await diffNow()).drift).toEqual({
      changes: 1,
      alerts: 0,
      last: { ...expected, affordance: "level" },
      properties: [{ affordance: "level", changes: 1, alerts: 0, last: expected }],
    });
    expect(drift.value).toMatchObject({ status: "drifting", release, desired: 4, observed: 9 });
    device.level = 4;
    await changeAfter(hub, drift.seq, isDrift(id, "resolved"));
    expect((await diffNow()).drift).toMatchObject({
      changes: 2,
      last: { affordance: "level", value: { status: "resolved", desired: 4, observed: 9 } },
    });
  });

  it("GET /drift answers a page at a time with limit and cursor, by Thing and property, and refuses a cursor it never gave", async () => {
    // Drift without a device: the `applied` Change a rollout ends a step with, then reports.
    const id = "urn:test:drift:pages";
    const names = ["a", "b", "c", "d", "e"];
    const forms = [{ href: "http://127.0.0.1:9/p" }];
    await registerThing(
      hub,
      id,
      minimalTd({ properties: Object.fromEntries(names.map((n) => [n, { type: "integer", forms }])) }),
    );
    const desired = Object.fromEntries(names.map((n) => [n, 1]));
    const applied = {
      release: "sha256:pages",
      name: "pages",
      rollout: "pages",
      desired,
      drift: { policy: "record" },
    };
    await hub.hub.ingest(id, [{ kind: "applied", value: applied }], { actor: "test", via: "test" });
    const after = await hub.hub.store.lastSeq();
    await hub.hub.ingest(
      id,
      names.map((n) => ({ kind: "reported" as const, affordance: n, value: 2 })),
      { actor: "test", via: "test" },
    );
    await changeAfter(hub, after, (c) => c.thing === id && c.kind === "drift" && c.affordance === "e");
    const page = async (query: string) => {
      const response = await hub.request(`/drift?thing=${encodeURIComponent(id)}&${query}`);
      expect(response.status).toBe(200);
      return (await response.json()) as {
        drift: Array<{ affordance: string }>;
        total: number;
        next?: string;
      };
    };
    const first = await page("limit=2");
    expect(first.drift.map((e) => e.affordance)).toEqual(["a", "b"]);
    expect(first.total).toBe(5);
    const second = await page(`limit=2&cursor=${first.next}`);
    expect(second.drift.map((e) => e.affordance)).toEqual(["c", "d"]);
    const third = await page(`limit=2&cursor=${second.next}`);
    expect(third.drift.map((e) => e.affordance)).toEqual(["e"]);
    expect(third.next).toBeUndefined();
    // Without a limit, every entry, as before pages (what `things drift` reads).
    expect((await page("")).drift).toHaveLength(5);
    const bad = await hub.request("/drift?limit=2&cursor=not-a-cursor");
    expect(bad.status).toBe(400);
    expect(bad.headers.get("content-type")).toContain("application/problem+json");
    expect(await bad.json()).toMatchObject({
      errors: [{ pointer: "/query/cursor", detail: "is not a cursor of GET /drift" }],
    });
    await hub.request(thingPath(id), { method: "DELETE" });
  });

  it("a Thing that answers the write and keeps its value drifts at once, read back by the rollout", async () => {
    const id = "urn:test:drift:ignores";
    // Polled once a minute: only the rollout's read back can tell what it holds after the write.
    const device = new SimulatedHttpThing({ username: USERNAME, password: PASSWORD, pollIntervalMs: 60_000 });
    await device.start();
    devices.push(device);
    const before = await hub.hub.store.lastSeq();
    await register(id, device.td(id));
    await changeAfter(
      hub,
      before,
      (c) => c.thing === id && c.kind === "reported" && c.affordance === "level",
    );
    device.ignoresWrites = true;
    const after = await hub.hub.store.lastSeq();
    const { release, rollout } = await rollOut(
      `release: drift-ignored\nthings:\n  - select: { id: "${id}" }\n    properties: { level: 6 }\n`,
    );
    expect(writes(device)).toEqual(["6"]);
    expect(device.level).toBe(1);
    const readBack = await changeAfter(
      hub,
      after,
      (c) => c.thing === id && c.kind === "reported" && c.cause.release === release,
    );
    expect(readBack).toMatchObject({
      affordance: "level",
      value: 1,
      cause: { correlation: `${rollout.id}#0.0` },
    });
    const drift = await changeAfter(hub, after, isDrift(id, "drifting"));
    expect(drift.value).toMatchObject({ release, desired: 6, observed: 1 });
    const steps = (await (await hub.request(`/rollouts/${encodeURIComponent(rollout.id)}/steps`)).json()) as {
      steps: { thing: string; items: { name: string; readBack?: unknown }[] }[];
    };
    expect(steps.steps.find((s) => s.thing === id)?.items).toEqual([
      expect.objectContaining({ name: "level", status: "completed", readBack: { value: 1 } }),
    ]);
  });

  it("alert: a notification on the change stream and on the hub's MQTT", async () => {
    const id = "urn:test:drift:alert";
    const device = await httpThing(id);
    await rollOut(
      `release: drift-alert\nthings:\n  - select: { id: "${id}" }\n    properties: { level: 4 }\ndrift: alert\n`,
    );
    if (hub.mqtt === undefined) throw new Error("the hub runs without MQTT");
    const watcher = await connectAsync(hub.mqtt.url, {
      reconnectPeriod: 0,
      connectTimeout: 5_000,
      username: "device",
      password: hub.token,
    });
    try {
      const alerted = new Promise<{ topic: string; payload: string }>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error("no alert came over MQTT")), MESSAGE_BOUND_MS);
        watcher.on("message", (topic, payload) => {
          const text = payload.toString("utf8");
          if (!text.includes(id)) return;
          clearTimeout(timer);
          resolve({ topic, payload: text });
        });
      });
      await watcher.subscribeAsync("hyperthings/changes/alert/#", { qos: 1 });
      const after = await hub.hub.store.lastSeq();
      device.level = 0;
      const alert = await changeAfter(hub, after, (c) => c.thing === id && c.kind === "alert");
      expect(alert).toMatchObject({
        affordance: "level",
        value: { about: "drift", desired: 4, observed: 0, policy: "alert" },
        cause: { actor: "hub:drift", rule: "alert" },
      });
      const message = await alerted;
      expect(JSON.parse(message.payload)).toMatchObject({ kind: "alert", thing: id, seq: alert.seq });
      expect(writes(device)).toEqual(["4"]);
      // The Thing's diff since tells the alert beside the drift it is about.
      const since = encodeURIComponent(new Date(Date.parse(changeTime(alert)) - 60_000).toISOString());
      const diff = (await (await hub.request(`${thingPath(id)}/diff?from=${since}`)).json()) as {
        drift?: unknown;
      };
      expect(diff.drift).toMatchObject({
        changes: 1,
        alerts: 1,
        last: { seq: alert.seq, kind: "alert", affordance: "level" },
        properties: [{ affordance: "level", changes: 1, alerts: 1 }],
      });
    } finally {
      await watcher.endAsync();
    }
  });

  it("revert: a Thing that answers the corrective write and keeps its value is reverted again, up to the limit", async () => {
    const id = "urn:test:drift:revert-ignored";
    const device = await httpThing(id);
    const { release } = await rollOut(
      `release: drift-revert-ignored\nthings:\n  - select: { id: "${id}" }\n    properties: { level: 5 }\n` +
        "drift: { policy: revert, maxReverts: 2, withinSeconds: 3600 }\n",
    );
    const after = await hub.hub.store.lastSeq();
    device.ignoresWrites = true;
    device.level = 9;
    const limited = await changeAfter(
      hub,
      after,
      (c) => isDrift(id, "drifting")(c) && (c.value as DriftValue).revert === "rate-limited",
    );
    const res = await hub.request(
      `${thingPath(id)}/history?order=asc&limit=100&kind=drift,completed,reported`,
    );
    const changes = ((await res.json()) as { changes: Change[] }).changes.filter(
      (c) => c.seq > after && c.seq <= limited.seq,
    );
    // Each corrective write is read back: the Thing still says 9, so it still drifts.
    expect(
      changes.map((c) => [c.kind, c.kind === "drift" ? (c.value as DriftValue).revert : c.value]),
    ).toEqual([
      ["reported", 9],
      ["drift", "sent"],
      ["completed", undefined],
      ["reported", 9],
      ["drift", "sent"],
      ["completed", undefined],
      ["reported", 9],
      ["drift", "rate-limited"],
    ]);
    expect(changes.filter((c) => c.kind !== "reported").every((c) => c.cause.release === release)).toBe(true);
    expect(writes(device)).toEqual(["5", "5", "5"]);
  });

  it("revert: one corrective write recorded as such, then the limit holds", async () => {
    const id = "urn:test:drift:revert";
    const device = await httpThing(id);
    const { release } = await rollOut(
      `release: drift-revert\nthings:\n  - select: { id: "${id}" }\n    properties: { level: 5 }\n` +
        "drift: { policy: revert, maxReverts: 1, withinSeconds: 3600 }\n",
    );
    let after = await hub.hub.store.lastSeq();
    device.level = 9;
    const drift = await changeAfter(hub, after, isDrift(id, "drifting"));
    expect(drift.value).toMatchObject({ observed: 9, policy: "revert", revert: "sent" });
    const corrected = await changeAfter(
      hub,
      drift.seq,
      (c) => c.thing === id && c.kind === "completed" && c.cause.rule === "revert",
    );
    expect(corrected.cause).toMatchObject({ actor: "hub:drift", release, rule: "revert" });
    expect(device.level).toBe(5);
    const resolved = await changeAfter(hub, drift.seq, isDrift(id, "resolved"));
    expect(resolved.value).toMatchObject({ desired: 5 });
    expect(writes(device)).toEqual(["5", "5"]);

    // Within the window, a second drift is recorded but not fought.
    after = resolved.seq;
    device.level = 8;
    const again = await changeAfter(hub, after, isDrift(id, "drifting"));
    expect(again.value).toMatchObject({ observed: 8, revert: "rate-limited" });
    // Let the drift's own Changes commit, then check no write was sent.
    await hub.hub.drift.close();
    expect(writes(device)).toEqual(["5", "5"]);
    expect(device.level).toBe(8);
  });

  it("revert: the limit counts the corrective writes sent before the hub restarted", async () => {
    const id = "urn:test:drift:revert-restart";
    const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-drift-"));
    const device = new SimulatedHttpThing({ username: USERNAME, password: PASSWORD, pollIntervalMs: 100 });
    await device.start();
    devices.push(device);
    const running: TestHub[] = [];
    try {
      const first = await startTestHub({ dataDir, observe: true, mqtt: false });
      running.push(first);
      let after = await first.hub.store.lastSeq();
      await registerThing(first, id, device.td(id), { username: USERNAME, password: PASSWORD });
      await changeAfter(first, after, (c) => c.thing === id && c.kind === "reported");
      const { release } = await first.hub.releases.build(
        [
          {
            path: "release.yaml",
            text:
              `release: drift-revert-restart\nthings:\n  - select: { id: "${id}" }\n    properties: { level: 5 }\n` +
              "drift: { policy: revert, maxReverts: 2, withinSeconds: 3600 }\n",
          },
        ],
        { actor: "test" },
      );
      const rollouts = first.hub.rollouts;
      if (!rollouts) throw new Error("the hub has no rollouts");
      const started = await rollouts.start(release.id, {}, { actor: "test" });
      expect((await rollouts.settled(started.id)).status).toBe("completed");
      // One corrective write of the two the limit allows, then the hub restarts.
      after = await first.hub.store.lastSeq();
      device.level = 9;
      const reverted = await changeAfter(first, after, isDrift(id, "drifting"));
      expect(reverted.value).toMatchObject({ observed: 9, revert: "sent" });
      await changeAfter(first, reverted.seq, isDrift(id, "resolved"));
      await running.splice(0, 1)[0]?.stop();

      const restarted = await startTestHub({ dataDir, observe: true, mqtt: false });
      running.push(restarted);
      after = await restarted.hub.store.lastSeq();
      device.level = 8;
      const second = await changeAfter(restarted, after, isDrift(id, "drifting"));
      expect(second.value).toMatchObject({ observed: 8, revert: "sent" });
      const resolved = await changeAfter(restarted, second.seq, isDrift(id, "resolved"));
      // The third within the window is recorded, not fought: the Log counts the first hub's write.
      device.level = 7;
      const third = await changeAfter(restarted, resolved.seq, isDrift(id, "drifting"));
      expect(third.value).toMatchObject({ observed: 7, revert: "rate-limited" });
      await restarted.hub.drift.close();
      expect(writes(device)).toEqual(["5", "5", "5"]);
      expect(device.level).toBe(7);
    } finally {
      for (const hub of running) await hub.stop();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

const problem = await brokerProblem();

describe.skipIf(problem !== undefined && !servicesRequired)("an MQTT Thing on the machine's broker", () => {
  let mqttHub: TestHub;
  let device: MqttClient;
  const prefix = `hyperthings-test/${randomBytes(6).toString("hex")}`;
  const id = "urn:test:drift:mqtt-dimmer";
  const received: string[] = [];

  beforeAll(async () => {
    if (problem !== undefined) throw new Error(`no MQTT broker at ${brokerUrl}: ${problem}`);
    mqttHub = await startTestHub({ observe: true, mqtt: false, reconnectMs: 20, maxReconnectMs: 200 });
    device = await connectAsync(brokerUrl, { reconnectPeriod: 0 });
    // The dimmer: takes what comes on …/set, and reports its brightness (retained) on …/brightness.
    await device.subscribeAsync(`${prefix}/brightness/set`, { qos: 1 });
    device.on("message", (topic, payload) => {
      if (topic !== `${prefix}/brightness/set`) return;
      received.push(payload.toString("utf8"));
      void device.publishAsync(`${prefix}/brightness`, payload.toString("utf8"), { retain: true, qos: 1 });
    });
    await device.publishAsync(`${prefix}/brightness`, "10", { retain: true, qos: 1 });
  });

  afterAll(async () => {
    await device?.publishAsync(`${prefix}/brightness`, "", { retain: true, qos: 1 });
    await device?.endAsync();
    await mqttHub?.stop();
  });

  it("is rolled out to once over MQTT, and drifts when it changes itself", async () => {
    const after = await mqttHub.hub.store.lastSeq();
    const put = await mqttHub.request(thingPath(id), {
      method: "PUT",
      headers: { "content-type": "application/td+json" },
      body: JSON.stringify({
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        id,
        title: "MQTT dimmer",
        securityDefinitions: { nosec_sc: { scheme: "nosec" } },
        security: "nosec_sc",
        properties: {
          brightness: {
            type: "integer",
            minimum: 0,
            maximum: 100,
            observable: true,
            forms: [
              {
                href: brokerUrl,
                "mqv:topic": `${prefix}/brightness`,
                op: ["readproperty", "observeproperty"],
                "mqv:qos": "1",
              },
              {
                href: brokerUrl,
                "mqv:topic": `${prefix}/brightness/set`,
                op: "writeproperty",
                "mqv:qos": "1",
              },
            ],
          },
        },
      }),
    });
    expect(put.status).toBe(201);
    await changeAfter(mqttHub, after, (c) => c.thing === id && c.kind === "reported" && c.value === 10);
    const { release } = await mqttHub.hub.releases.build(
      [
        {
          path: "dimmer.yaml",
          text: `release: dimmer\nthings:\n  - select: { id: "${id}" }\n    properties: { brightness: 40 }\n`,
        },
      ],
      { actor: "test" },
    );
    const rollouts = mqttHub.hub.rollouts;
    if (!rollouts) throw new Error("the hub has no rollouts");
    const started = await rollouts.start(release.id, {}, { actor: "test" });
    expect((await rollouts.settled(started.id)).status).toBe("completed");
    const reported = await changeAfter(
      mqttHub,
      after,
      (c) => c.thing === id && c.kind === "reported" && c.value === 40,
    );
    expect(received).toEqual(["40"]);
    // A write over MQTT is a message sent, taken when the dimmer gets to it: the rollout does not
    // read it back (a read right after would say what it held before, a drift that is none).
    const log = await mqttHub.hub.store.changesAfter(after, 100);
    expect(
      log.filter((c) => c.thing === id && c.kind === "reported" && c.cause.release !== undefined),
    ).toEqual([]);
    expect(log.filter((c) => c.thing === id && c.kind === "drift")).toEqual([]);
    const [step] = await rollouts.steps(started.id, { limit: 10 });
    expect(step?.items.map((item) => "readBack" in item)).toEqual([false]);

    // The dimmer changes itself: the hub sees it, and records the drift.
    await device.publishAsync(`${prefix}/brightness`, "75", { retain: true, qos: 1 });
    const drift = await changeAfter(mqttHub, reported.seq, isDrift(id, "drifting"));
    expect(drift.value).toMatchObject({ release: release.id, desired: 40, observed: 75, policy: "record" });
    expect(received).toEqual(["40"]);
  });
});
