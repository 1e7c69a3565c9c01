// Hub replicas (`--replica`, docs/replicas.md): two hubs on one PostgreSQL schema and one NATS
// JetStream stream. What one registers or records the other serves, its subscribers (/events,
// /changes/stream, the graph) get every Change of both in seq order, both verify the one Log, and
// a replica killed mid-way loses nothing: the other one goes on, publishing what it left. Work one
// replica does at a time (observation, the expiry sweep, the MQTT gateway) runs on one, and
// another takes it over when that one stops.
import { jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { randomBytes, randomUUID } from "node:crypto";
import { copyFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectAsync, type MqttClient } from "mqtt";
import pg from "pg";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { thingPath } from "../src/api/index.js";
import { NatsBus } from "../src/bus/index.js";
import { stepsFromPlan, type Change } from "../src/core/index.js";
import { Rollouts, loadConfig, type ConfigOverrides } from "../src/hub/index.js";
import { brokerProblem, brokerUrl } from "./support/mqtt-broker.js";
import { NatsProxy, natsProblem, natsUrl, servicesRequired as required } from "./support/nats-server.js";
import {
  PostgresProxy,
  blockedBy,
  dropSchema,
  postgresProblem,
  postgresUrl,
  temporarySchema,
} from "./support/postgres.js";
import { EventStream } from "./support/sse.js";
import { SimulatedHttpThing } from "./support/simulated-http-thing.js";
import { minimalTd, putTd, registerThing, startTestHub, type TestHub } from "./support/test-hub.js";
import { cleanEnvironment, runThings, runThingsToEnd, type ThingsProcess } from "./support/things-process.js";

const problem = (await postgresProblem()) ?? (await natsProblem());
const mqttProblem = await brokerProblem();
const IDENTITY = ["hub-id", "log-key.pem", "secrets.key", "admin-token"];

function lampTd(id: string): Record<string, unknown> {
  return minimalTd({
    id,
    "@type": "saref:LightSwitch",
    properties: { level: { type: "integer", forms: [{ href: "http://lamp.example/level" }] } },
  });
}

/** Records reports through the hub's API (201 is the acknowledgement); the seqs it got. */
async function report(hub: { url: string; token: string }, id: string, levels: number[]): Promise<number[]> {
  const res = await fetch(`${hub.url}${thingPath(id)}/changes`, {
    method: "POST",
    headers: { "content-type": "application/json", authorization: `Bearer ${hub.token}` },
    body: JSON.stringify(levels.map((value) => ({ kind: "reported", affordance: "level", value }))),
  });
  const answer = (await res.json()) as { seqs: number[] };
  expect(res.status, JSON.stringify(answer)).toBe(201);
  return answer.seqs;
}

function busOf(hub: TestHub): NatsBus {
  if (!(hub.hub.bus instanceof NatsBus)) throw new Error("the hub does not run the NATS bus");
  return hub.hub.bus;
}

/** Resolves once the hub's subscribers have been handed every Change up to `seq`. */
function delivered(hub: TestHub, seq: number): Promise<void> {
  return new Promise((resolve) => {
    if ((busOf(hub).status().delivered ?? 0) >= seq) return resolve();
    const stop = hub.hub.bus.subscribe((change) => {
      if (change.seq < seq) return;
      stop();
      resolve();
    });
  });
}

/** The seqs of this hub's Changes in the stream, in stream order. */
async function streamSeqs(jsm: JetStreamManager, stream: string, hubId: string): Promise<number[]> {
  const info = await jsm.streams.info(stream);
  const seqs: number[] = [];
  for (let s = info.state.first_seq; s <= info.state.last_seq && info.state.messages > 0; s++) {
    const m = await jsm.streams.getMessage(stream, { seq: s });
    const id = m?.header.get("Nats-Msg-Id") ?? "";
    if (id.startsWith(`${hubId}:`)) seqs.push(Number(id.slice(hubId.length + 1)));
  }
  return seqs;
}

/** A device whose `level` the hub polls over HTTP (every 100 ms): what it answers, and how often it was asked. */
async function httpLevelDevice(): Promise<{
  url: string;
  level: number;
  polls: number;
  close(): Promise<void>;
}> {
  const device = { url: "", level: 1, polls: 0, close: () => Promise.resolve() };
  const server = createServer((request, response) => {
    device.polls++;
    response.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(device.level));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  device.url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  device.close = () =>
    new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    });
  return device;
}

/** The writes of `level` a device was sent. */
const writes = (device: SimulatedHttpThing) =>
  device.requests.filter((r) => r.method === "PUT" && r.path === "/properties/level");

const upTo = (n: number) => Array.from({ length: n }, (_, i) => i + 1);
/** Two hubs, a `things serve` child and `things verify` runs: minutes on a loaded machine, not seconds. */
const SLOW_MS = 180_000;

if (problem !== undefined && !required) {
  describe("hub replicas", () => {
    it.skip(`skipped: PostgreSQL at ${postgresUrl} or NATS at ${natsUrl} is missing (${problem})`, () =>
      undefined);
  });
} else {
  /** One member of a hub's `/health` answer, read without a token. */
  async function healthOf(hub: TestHub, member: string): Promise<unknown> {
    return ((await (await hub.request("/health", { auth: false })).json()) as Record<string, unknown>)[
      member
    ];
  }

  describe("hub replicas", () => {
    let nc: NatsConnection;
    let jsm: JetStreamManager;
    const hubs: TestHub[] = [];
    const children: ThingsProcess[] = [];
    const cleanups: (() => Promise<void> | void)[] = [];

    /** A schema, a stream and two data directories of this test's own, removed after it. */
    function setting() {
      const run = randomBytes(6).toString("hex");
      const schema = temporarySchema();
      const stream = `HT_REPLICA_${run}`;
      const dirs = [0, 1].map(() => mkdtempSync(join(tmpdir(), "hyperthings-replica-")));
      cleanups.push(async () => {
        await jsm.streams.delete(stream).catch(() => false);
        await dropSchema(schema);
        for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
      });
      const store = `${postgresUrl}${postgresUrl.includes("?") ? "&" : "?"}schema=${schema}`;
      return {
        run,
        schema,
        stream,
        dirs: dirs as [string, string],
        store,
        overrides: { store, bus: natsUrl, busPrefix: `htreplica.${run}`, busStream: stream, mqtt: false },
      };
    }

    /** The second replica is the same hub: the first one's identity files, copied. */
    function copyIdentity(from: string, to: string): void {
      for (const name of IDENTITY)
        if (existsSync(join(from, name))) copyFileSync(join(from, name), join(to, name));
    }

    /** `things serve --replica` on `dir`, with a setting's store and stream, on port 0, without MQTT. */
    function serveReplica(
      dir: string,
      store: string,
      { busPrefix, busStream }: { busPrefix: string; busStream: string },
    ): string[] {
      return [
        "serve",
        "--port",
        "0",
        "--no-mqtt",
        "--replica",
        "--data",
        dir,
        "--store",
        store,
        "--bus",
        natsUrl,
        "--bus-prefix",
        busPrefix,
        "--bus-stream",
        busStream,
      ];
    }

    /** Two replicas of one hub: A on `dirs[0]`, then B on `dirs[1]` with A's identity and `forB`. */
    async function startReplicas(
      settings: ConfigOverrides,
      dirs: [string, string],
      { env = {}, forB = {} }: { env?: NodeJS.ProcessEnv; forB?: ConfigOverrides } = {},
    ): Promise<[TestHub, TestHub]> {
      const a = await startTestHub({ ...settings, dataDir: dirs[0] }, env);
      hubs.push(a);
      copyIdentity(dirs[0], dirs[1]);
      const b = await startTestHub({ ...settings, ...forB, dataDir: dirs[1] }, env);
      hubs.push(b);
      return [a, b];
    }

    /** Records a rollout of `level` to the Thing as running, as a stopped hub leaves it: no hub runs it. */
    async function recordRollout(hub: TestHub, thing: string, level: number): Promise<string> {
      const { release } = await hub.hub.releases.build(
        [
          {
            path: "release.yaml",
            text: `release: replica-level-${level}\nthings:\n  - select: { id: "${thing}" }\n    properties: { level: ${level} }\n`,
          },
        ],
        { actor: "test" },
      );
      const plan = await hub.hub.releases.plan(release.id, {});
      const id = `urn:uuid:${randomUUID()}`;
      const created = new Date().toISOString();
      const rollout = { concurrency: 1, maxFailures: 0 };
      await hub.hub.store.createRollout(
        {
          id,
          release: release.id,
          name: release.name,
          status: "running",
          options: rollout,
          actor: "test",
          created,
        },
        stepsFromPlan(id, plan, () => undefined, created),
      );
      return id;
    }

    /** A release of `level` to the Things, built on `hub`: its id. */
    async function levelRelease(hub: TestHub, things: string[], level: number): Promise<string> {
      const manifest = things.map((t) => `  - select: { id: "${t}" }\n    properties: { level: ${level} }\n`);
      const { release } = await hub.hub.releases.build(
        [{ path: "release.yaml", text: `release: replica-level-${level}\nthings:\n${manifest.join("")}` }],
        { actor: "test" },
      );
      return release.id;
    }

    /** Two replicas started, and an HTTP device that takes `credentials` (stopped after the test). */
    async function replicasWithDevice() {
      const { run, dirs, overrides } = setting();
      const credentials = { username: "operator", password: `pw-${run}` };
      const device = new SimulatedHttpThing(credentials);
      await device.start();
      cleanups.push(() => device.stop());
      const [a, b] = await startReplicas({ ...overrides, replica: true }, dirs);
      return { run, a, b, device, credentials };
    }

    /**
     * Two Things of the device registered, a rollout of level 7 to them started through `a`, its
     * first write held by the device (`answer` lets it go), and its events followed on both replicas.
     */
    async function heldRolloutOnBoth(
      a: TestHub,
      b: TestHub,
      device: SimulatedHttpThing,
      credentials: { username: string; password: string },
      name: string,
      run: string,
    ) {
      const things = [1, 2].map((n) => `urn:test:replica:${name}:${run}:${n}`);
      for (const id of things) await registerThing(a, id, device.td(id), credentials);
      const release = await levelRelease(a, things, 7);
      const answer = device.holdAnswers();
      const rollout = await startRollout(a, release);
      const path = `/rollouts/${encodeURIComponent(rollout)}/events`;
      const [onA, onB] = await Promise.all([
        EventStream.open(a, path, {}, SLOW_MS),
        EventStream.open(b, path, {}, SLOW_MS),
      ]);
      return { things, answer, rollout, onA, onB };
    }

    /** Starts a rollout of the release through the replica's API, one Thing at a time: its id. */
    async function startRollout(hub: TestHub, release: string): Promise<string> {
      const res = await hub.request(`/releases/${encodeURIComponent(release)}/rollouts`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ concurrency: 1 }),
      });
      const body = (await res.json()) as { id: string; status: string };
      expect(res.status, JSON.stringify(body)).toBe(202);
      // The answer is the rollout as it is when the answer is made: a quick device's one step may
      // have completed by then.
      expect(["running", "completed"]).toContain(body.status);
      return body.id;
    }

    /**
     * A rollout's events on a replica's `GET /rollouts/{id}/events`, up to the one that ends it; a
     * `running` status said again (by a run that starts after the stream opened) is left out.
     */
    async function rolloutEvents(stream: EventStream): Promise<[string, string, string?][]> {
      const events: [string, string, string?][] = [];
      for (;;) {
        const event = await stream.next();
        if (event === undefined) return events;
        const data = JSON.parse(event.data) as { status: string; thing?: string };
        if (event.event === "status" && data.status === "running" && events.length > 0) continue;
        events.push(
          data.thing === undefined ? [event.event, data.status] : [event.event, data.status, data.thing],
        );
      }
    }

    /** The `applied` Changes of the Things (their release made active), as [thing, release]. */
    async function applied(hub: TestHub, things: string[]): Promise<[string, string][]> {
      return (await hub.hub.store.changesAfter(0, 10_000))
        .filter((c) => things.includes(c.thing) && c.kind === "applied")
        .map((c) => [c.thing, (c.value as { release: string }).release]);
    }

    beforeAll(async () => {
      nc = await connect({ servers: natsUrl });
      jsm = await jetstreamManager(nc);
    });
    afterEach(async () => {
      for (const child of children.splice(0)) {
        if (child.process.exitCode === null) child.process.kill("SIGKILL");
        await child.exited;
      }
      for (const hub of hubs.splice(0)) await hub.stop();
      for (const cleanup of cleanups.splice(0)) await cleanup();
    });
    afterAll(async () => {
      await nc?.close();
    });

    it(
      "serve one directory and one Log, each streaming the other's Changes in seq order, and both verify",
      async () => {
        const { run, dirs, overrides } = setting();
        const [a, b] = await startReplicas({ ...overrides, replica: true }, dirs);
        expect(b.hub.id).toBe(a.hub.id);

        // Every Change each replica's subscribers get, in the order they get them.
        const seen = new Map<TestHub, number[]>([
          [a, []],
          [b, []],
        ]);
        for (const [hub, seqs] of seen) hub.hub.bus.subscribe((change) => seqs.push(change.seq));
        const events = await EventStream.open(a, "/events");
        const feed = await EventStream.open(a, "/changes/stream");

        // Registered on A, readable on B.
        const lampA = `urn:test:replica:${run}:lamp-a`;
        await putTd(a, lampTd(lampA));
        const got = await b.request(thingPath(lampA));
        expect(got.status).toBe(200);
        expect(((await got.json()) as { id: string }).id).toBe(lampA);

        // Registered and reported on B: A's /events and /changes/stream carry them, A's history holds them.
        const lampB = `urn:test:replica:${run}:lamp-b`;
        await putTd(b, lampTd(lampB));
        const [reportedB] = await report(b, lampB, [7]);
        const created = await events.take(2);
        expect(created.map((e) => [e.event, (JSON.parse(e.data) as { id: string }).id])).toEqual([
          ["thing_created", lampA],
          ["thing_created", lampB],
        ]);
        const history = (await (await a.request(`${thingPath(lampB)}/history?affordance=level`)).json()) as {
          changes: Change[];
        };
        expect(history.changes.map((c) => [c.seq, c.value])).toEqual([[reportedB, 7]]);

        // Both write at once: their Changes interleave in the Log.
        const writes = await Promise.all([
          ...[0, 1, 2, 3, 4].map((i) => report(a, lampA, [i, i + 10])),
          ...[0, 1, 2, 3, 4].map((i) => report(b, lampB, [i, i + 10])),
        ]);
        const last = Math.max(...writes.flat());
        await Promise.all([delivered(a, last), delivered(b, last)]);
        // Each replica's subscribers got the whole Log, in seq order, each Change once.
        expect(seen.get(a)).toEqual(upTo(last));
        expect(seen.get(b)).toEqual(upTo(last));
        const streamed = await feed.take(last);
        expect(streamed.map((e) => Number(e.id))).toEqual(upTo(last));

        // The stream holds the Log once, in order, whoever published what.
        await Promise.all([busOf(a).acknowledged(last), busOf(b).acknowledged(last)]);
        expect(await streamSeqs(jsm, overrides.busStream, a.hub.id)).toEqual(upTo(last));

        // Both sign with the hub's one key: `things verify` passes against either.
        for (const hub of [a, b]) {
          const verify = await runThingsToEnd(["verify", "--url", hub.url, "--token", hub.token]);
          expect(verify.stderr).toBe("");
          expect(verify.code).toBe(0);
          expect(verify.stdout).toMatch(new RegExp(`^verified ${last} changes`));
        }
        events.close();
        feed.close();
      },
      SLOW_MS,
    );

    it(
      "lose nothing when a replica is killed: the other serves, delivers and publishes all it acknowledged",
      async () => {
        const { run, dirs, overrides, store } = setting();
        const args = [...serveReplica(dirs[0], store, overrides), "--no-observe"];
        const childA = runThings(args, cleanEnvironment());
        children.push(childA);
        const [, , urlA] = await childA.waitFor(/Hyperthings (\S+) listening on (http:\/\/\S+)/);
        copyIdentity(dirs[0], dirs[1]);
        const b = await startTestHub({ ...overrides, replica: true, dataDir: dirs[1] });
        hubs.push(b);
        const a = { url: urlA as string, token: b.token };

        const lamp = `urn:test:replica:${run}:lamp`;
        await putTd(b, lampTd(lamp));
        const acknowledged: number[] = [];
        // Both write; A is killed while its writes and B's are going on.
        const fromA = (async () => {
          for (let i = 0; ; i++) {
            try {
              acknowledged.push(...(await report(a, lamp, [1000 + i])));
            } catch {
              return;
            }
          }
        })();
        for (let i = 0; i < 20; i++) acknowledged.push(...(await report(b, lamp, [i])));
        childA.process.kill("SIGKILL");
        await childA.exited;
        await fromA;
        for (let i = 20; i < 30; i++) acknowledged.push(...(await report(b, lamp, [i])));

        const last = Math.max(...acknowledged);
        await delivered(b, last);
        const feed = (await (await b.request(`/changes?limit=1000`)).json()) as { changes: Change[] };
        const inLog = new Set(feed.changes.map((c) => c.seq));
        expect(acknowledged.filter((seq) => !inLog.has(seq))).toEqual([]);
        // B's bus publishes what A committed and never published: the stream holds the whole Log.
        await busOf(b).acknowledged(last);
        expect(await streamSeqs(jsm, overrides.busStream, b.hub.id)).toEqual(upTo(last));

        const verify = await runThingsToEnd(["verify", "--url", b.url, "--token", b.token]);
        expect(verify.code, verify.stderr).toBe(0);
      },
      SLOW_MS,
    );

    it(
      "go on delivering each other's Changes from the Store while one is cut off from NATS, and catch up after",
      async () => {
        const { run, dirs, overrides } = setting();
        const proxy = new NatsProxy();
        await proxy.open();
        cleanups.push(() => proxy.cut());
        const [a, b] = await startReplicas({ ...overrides, replica: true }, dirs, {
          forB: { bus: proxy.url },
        });
        const seenOnB: number[] = [];
        b.hub.bus.subscribe((change) => seenOnB.push(change.seq));

        const lamp = `urn:test:replica:${run}:lamp`;
        await putTd(a, lampTd(lamp));
        await proxy.cut();
        // A's Changes reach B's subscribers from the Store: by B's own next Change, or its read of the Log's head.
        const [fromA] = await report(a, lamp, [1]);
        await delivered(b, fromA ?? 0);
        await report(b, lamp, [2]);
        const cutLast = Math.max(...(await report(a, lamp, [3, 4])));
        await delivered(b, cutLast);
        expect(busOf(b).status().connected).toBe(false);

        await proxy.open();
        const last = Math.max(...(await report(a, lamp, [5])), ...(await report(b, lamp, [6])));
        await Promise.all([delivered(a, last), delivered(b, last)]);
        expect(seenOnB).toEqual(upTo(last));
        await Promise.all([busOf(a).acknowledged(last), busOf(b).acknowledged(last)]);
        expect(await streamSeqs(jsm, overrides.busStream, a.hub.id)).toEqual(upTo(last));
      },
      SLOW_MS,
    );

    it(
      "observe the Things one at a time, say which in /health, and take it over when its replica stops",
      async () => {
        const { run, dirs, overrides } = setting();
        const device = await httpLevelDevice();
        cleanups.push(() => device.close());
        const observing = {
          ...overrides,
          replica: true,
          observe: true,
          reconnectMs: 50,
          maxReconnectMs: 500,
        };
        const [a, b] = await startReplicas(observing, dirs);
        const observationHealth = (hub: TestHub) => healthOf(hub, "observation");
        expect(await observationHealth(a)).toEqual({ state: "running" });
        expect(await observationHealth(b)).toEqual({
          state: "standby",
          reason:
            "another replica of this hub observes the Things (it holds the store's observation lock): " +
            "this one takes over when it stops",
        });

        const id = `urn:test:replica:observed:${run}`;
        await putTd(
          b,
          minimalTd({
            id,
            properties: {
              level: {
                type: "integer",
                observable: true,
                "hyperthings:pollInterval": 100,
                forms: [{ href: `${device.url}level` }],
              },
            },
          }),
        );
        const levels = async (hub: TestHub) => {
          const res = await hub.request(`${thingPath(id)}/history?affordance=level&order=asc`);
          return ((await res.json()) as { changes: Change[] }).changes.map((c) => c.value);
        };
        /** Resolves once the device has been polled `n` more times: every replica observing it has read it since. */
        const polled = async (n: number) => {
          const until = device.polls + n;
          await vi.waitFor(() => expect(device.polls).toBeGreaterThanOrEqual(until), {
            timeout: 30_000,
            interval: 50,
          });
        };
        const recorded = (level: number) =>
          vi.waitFor(async () => expect(await levels(b)).toContain(level), {
            timeout: 20_000,
            interval: 100,
          });
        // Each reading is recorded once, by the replica that observes: with both observing, twice.
        await recorded(1);
        device.level = 2;
        await recorded(2);
        await polled(10);
        expect(await levels(b)).toEqual([1, 2]);
        expect(a.hub.observation?.status().map((s) => s.thing)).toEqual([id]);
        expect(b.hub.observation?.status()).toEqual([]);

        // The replica observing stops: the other one takes it over, says so, and records the next reading once.
        await hubs.splice(0, 1)[0]?.stop();
        await vi.waitFor(async () => expect(await observationHealth(b)).toEqual({ state: "running" }), {
          timeout: 20_000,
          interval: 200,
        });
        device.level = 3;
        await recorded(3);
        await polled(10);
        expect(await levels(b)).toEqual([1, 2, 3]);
      },
      SLOW_MS,
    );

    it(
      "say at the start of `things serve` whether the replica observes the Things, runs the rollouts and judges drift",
      async () => {
        const { dirs, overrides, store } = setting();
        const a = await startTestHub({ ...overrides, replica: true, observe: true, dataDir: dirs[0] });
        hubs.push(a);
        copyIdentity(dirs[0], dirs[1]);
        const child = runThings(serveReplica(dirs[1], store, overrides), cleanEnvironment());
        children.push(child);
        await child.waitFor(
          /\n {2}observation: standby: another replica of this hub observes the Things \(it holds the store's observation lock\): this one takes over when it stops\n {2}rollouts: standby: another replica of this hub runs the rollouts \(it holds the store's rollouts lock\): this one records those started through it for that one, and takes over when it stops\n {2}drift: standby: another replica of this hub judges drift \(it holds the store's drift lock\): this one takes over when it stops\n/,
        );
      },
      SLOW_MS,
    );

    it(
      "sweep expired TDs one at a time, say which in /health, and take it over when its replica stops",
      async () => {
        const { run, dirs, overrides } = setting();
        const sweeping = { ...overrides, replica: true, expirySweepMs: 100 };
        const [a, b] = await startReplicas(sweeping, dirs);
        const sweepsOnA = vi.spyOn(a.hub.directory, "sweepExpired");
        const sweepsOnB = vi.spyOn(b.hub.directory, "sweepExpired");
        const sweepHealth = (hub: TestHub) => healthOf(hub, "expirySweep");
        expect(await sweepHealth(a)).toEqual({ state: "running" });
        expect(await sweepHealth(b)).toEqual({
          state: "standby",
          reason:
            "another replica of this hub sweeps expired Thing Descriptions (it holds the store's expiry-sweep lock): " +
            "this one takes over when it stops",
        });
        await vi.waitFor(() => expect(sweepsOnA.mock.calls.length).toBeGreaterThanOrEqual(3), {
          timeout: 20_000,
          interval: 50,
        });
        expect(sweepsOnB).not.toHaveBeenCalled();

        // The replica sweeping stops: the other one takes it over, says so, and removes what expires.
        await hubs.splice(0, 1)[0]?.stop();
        await vi.waitFor(async () => expect(await sweepHealth(b)).toEqual({ state: "running" }), {
          timeout: 20_000,
          interval: 200,
        });
        const id = `urn:test:replica:leased:${run}`;
        const after = await b.hub.store.lastSeq();
        await putTd(b, minimalTd({ id, registration: { ttl: 1 } }));
        await vi.waitFor(
          async () => {
            const changes = (await b.hub.store.changesAfter(after, 100)).filter((c) => c.thing === id);
            expect(changes.map((c) => [c.kind, c.cause.actor])).toEqual([
              ["described", "admin"],
              ["removed", "hub:expiry"],
            ]);
          },
          { timeout: 20_000, interval: 200 },
        );
        expect(sweepsOnB).toHaveBeenCalled();
      },
      SLOW_MS,
    );

    it(
      "hand every role over at once when its holder stops on SIGTERM, not at the other's next try",
      async () => {
        const { dirs, overrides, store } = setting();
        const childA = runThings(
          [...serveReplica(dirs[0], store, overrides), "--no-observe"],
          cleanEnvironment(),
        );
        children.push(childA);
        await childA.waitFor(/listening on/);
        copyIdentity(dirs[0], dirs[1]);
        // B's next try to take a role is ten minutes away: only A's word that it gave them up can
        // make B take them within this test.
        const b = await startTestHub({ ...overrides, replica: true, electionMs: 600_000, dataDir: dirs[1] });
        hubs.push(b);
        const roles = ["expirySweep", "rollouts", "drift"];
        const states = async () => {
          const health = (await (await b.request("/health", { auth: false })).json()) as Record<
            string,
            { state?: string }
          >;
          return roles.map((role) => health[role]?.state);
        };
        expect(await states()).toEqual(["standby", "standby", "standby"]);

        childA.process.kill("SIGTERM");
        expect(await childA.exited).toBe(0);
        await vi.waitFor(async () => expect(await states()).toEqual(["running", "running", "running"]), {
          timeout: 30_000,
          interval: 100,
        });
      },
      SLOW_MS,
    );

    it(
      "take on each embedded broker the MQTT credentials any replica issued, and refuse and disconnect those any revoked",
      async () => {
        const { run, dirs, overrides } = setting();
        const [a, b] = await startReplicas({ ...overrides, replica: true, mqtt: true, mqttPort: 0 }, dirs);
        const clients: MqttClient[] = [];
        cleanups.push(() => Promise.all(clients.map((c) => c.endAsync(true))).then(() => undefined));
        const issue = async (hub: TestHub, homie: string) => {
          const res = await hub.request("/mqtt-credentials", {
            method: "POST",
            headers: { "content-type": "application/json" },
            body: JSON.stringify({ homie }),
          });
          expect(res.status, await res.clone().text()).toBe(200);
          return (await res.json()) as { username: string; password: string };
        };
        const revoke = async (hub: TestHub, username: string) =>
          (await hub.request(`/mqtt-credentials/${encodeURIComponent(username)}`, { method: "DELETE" }))
            .status;
        const connectTo = async (hub: TestHub, credentials: { username: string; password: string }) => {
          const client = await connectAsync(hub.mqtt?.url ?? "", {
            ...credentials,
            reconnectPeriod: 0,
            connectTimeout: 5_000,
          });
          clients.push(client);
          return client;
        };
        const device = `boiler-${run}`;

        // Issued on A, revoked on A and issued again there: the second generation's password.
        const first = await issue(a, device);
        expect(await revoke(a, first.username)).toBe(204);
        const second = await issue(a, device);
        expect(second.password).not.toBe(first.password);
        // B takes it (before, B knew only the first generation, which it took as never revoked),
        // asked for it gives the same, and refuses the revoked one.
        const onB = await connectTo(b, second);
        expect(await issue(b, device)).toEqual(second);
        await expect(connectTo(b, first)).rejects.toThrow(/Not authorized|Bad username or password/);

        // Revoked through A: B closes its connection (within its next reading of the store) and
        // refuses it from then on; B lists it revoked by A's actor.
        const closed = new Promise<void>((resolve) => onB.once("close", () => resolve()));
        expect(await revoke(a, second.username)).toBe(204);
        await closed;
        await expect(connectTo(b, second)).rejects.toThrow(/Not authorized|Bad username or password/);
        const listed = (await (await b.request("/mqtt-credentials")).json()) as {
          credentials: { username: string; revokedBecause?: string }[];
        };
        expect(listed.credentials.find((c) => c.username === second.username)?.revokedBecause).toBe(
          "revoked by an admin",
        );
        // Revoked already, as B now knows.
        expect(await revoke(b, second.username)).toBe(404);
      },
      SLOW_MS,
    );

    it(
      "resume a rollout recorded as running on one replica only, say which in /health, and take it over when its replica stops",
      async () => {
        const { run, dirs, overrides } = setting();
        const settings = { ...overrides, replica: true };
        const credentials = { username: "operator", password: `pw-${run}` };
        const device = new SimulatedHttpThing(credentials);
        await device.start();
        cleanups.push(() => device.stop());
        const id = `urn:test:replica:rolled:${run}`;

        // A rollout recorded as running, that no hub runs (as a stopped hub leaves it).
        const first = await startTestHub({ ...settings, dataDir: dirs[0] });
        hubs.push(first);
        await registerThing(first, id, device.td(id), credentials);
        const rollout = await recordRollout(first, id, 7);
        await hubs.splice(0, 1)[0]?.stop();

        // Both replicas start while it is recorded running; the device holds its answer meanwhile.
        const answer = device.holdAnswers();
        const resumes = vi.spyOn(Rollouts.prototype, "lead");
        const [a, b] = await startReplicas(settings, dirs);
        expect(resumes).toHaveBeenCalledTimes(1);
        expect(await healthOf(a, "rollouts")).toEqual({ state: "running" });
        expect(await healthOf(b, "rollouts")).toEqual({
          state: "standby",
          reason:
            "another replica of this hub runs the rollouts (it holds the store's rollouts lock): " +
            "this one records those started through it for that one, and takes over when it stops",
        });
        await vi.waitFor(() => expect(writes(device)).toHaveLength(1), { timeout: 30_000, interval: 100 });
        answer();
        for (const hub of [a, b])
          expect((await hub.hub.rollouts?.settled(rollout))?.status).toBe("completed");
        expect(writes(device)).toHaveLength(1);
        const steps = (await a.hub.store.changesAfter(0, 1000)).filter(
          (c) => c.thing === id && c.kind === "applied",
        );
        expect(steps).toHaveLength(1);

        // The replica resuming them stops: the other one takes the role over and resumes what is
        // recorded as running then.
        const next = await recordRollout(a, id, 8);
        await hubs.splice(0, 1)[0]?.stop();
        await vi.waitFor(async () => expect(await healthOf(b, "rollouts")).toEqual({ state: "running" }), {
          timeout: 20_000,
          interval: 200,
        });
        await vi.waitFor(async () => expect((await b.hub.store.getRollout(next))?.status).toBe("completed"), {
          timeout: 30_000,
          interval: 200,
        });
        expect(writes(device).map((w) => w.body)).toEqual(["7", "8"]);
      },
      SLOW_MS,
    );

    it(
      "run a rollout started through a standby replica on the role's holder, which finishes it when the standby stops mid-rollout",
      async () => {
        const { run, a, b, device, credentials } = await replicasWithDevice();
        expect(await healthOf(b, "rollouts")).toMatchObject({ state: "standby" });
        const things = [1, 2].map((n) => `urn:test:replica:standby-rollout:${run}:${n}`);
        for (const id of things) await registerThing(a, id, device.td(id), credentials);
        const release = await levelRelease(b, things, 7);

        // Started through the standby: recorded at once, run by the holder.
        const answer = device.holdAnswers();
        const rollout = await startRollout(b, release);
        await vi.waitFor(() => expect(writes(device)).toHaveLength(1), { timeout: 30_000, interval: 100 });
        // The standby stops mid-rollout: nothing of the rollout was in its hands.
        await hubs.splice(1, 1)[0]?.stop();
        const onA = await EventStream.open(a, `/rollouts/${encodeURIComponent(rollout)}/events`, {}, SLOW_MS);
        answer();
        await vi.waitFor(
          async () => expect((await a.hub.store.getRollout(rollout))?.status).toBe("completed"),
          {
            timeout: 60_000,
            interval: 200,
          },
        );
        expect(writes(device).map((w) => w.body)).toEqual(["7", "7"]);
        expect(await applied(a, things)).toEqual(things.map((t) => [t, release]));
        expect(await rolloutEvents(onA)).toEqual([
          ["status", "running"],
          ["step", "completed", things[0]],
          ["step", "completed", things[1]],
          ["status", "completed"],
        ]);
      },
      SLOW_MS,
    );

    it(
      "cancel a rollout through a replica that does not run it: the runner sends nothing more, makes no release active, and every replica's stream ends with it",
      async () => {
        const { run, a, b, device, credentials } = await replicasWithDevice();
        const { things, answer, rollout, onA, onB } = await heldRolloutOnBoth(
          a,
          b,
          device,
          credentials,
          "cancelled-rollout",
          run,
        );
        await vi.waitFor(() => expect(writes(device)).toHaveLength(1), { timeout: 30_000, interval: 100 });
        const cancel = await b.request(`/rollouts/${encodeURIComponent(rollout)}/cancel`, { method: "POST" });
        const cancelled = (await cancel.json()) as { status: string; reason: string };
        expect(cancel.status, JSON.stringify(cancelled)).toBe(200);
        // The answer says the cancel is recorded (docs/api.md): the step in flight is still
        // applying, and the rollout has stopped once none is.
        expect(cancelled).toMatchObject({
          status: "failed",
          reason: "cancelled by admin",
          progress: { applying: 1, skipped: 1 },
        });
        // The step in flight gets the device's answer; the runner makes the release active nowhere.
        answer();
        await vi.waitFor(async () => expect((await a.hub.store.rolloutProgress(rollout)).applying).toBe(0), {
          timeout: 30_000,
          interval: 200,
        });
        const steps = await a.hub.store.rolloutSteps(rollout, { limit: 10 });
        expect(steps.map((s) => [s.thing, s.status])).toEqual([
          [things[0], "failed"],
          [things[1], "skipped"],
        ]);
        expect(steps[0]?.reason).toMatch(
          /^cancelled by admin while this step was being applied: the release was not made active/,
        );
        expect(writes(device)).toHaveLength(1);
        expect(await applied(a, things)).toEqual([]);
        // Each stream says the cancel and the end of the step that was out (in the order each
        // replica learnt them: a replica that does not run it reads both from the store), then ends.
        for (const stream of [onA, onB]) {
          const events = await rolloutEvents(stream);
          expect(events[0]).toEqual(["status", "running"]);
          expect(events.slice(1).sort()).toEqual([
            ["status", "failed"],
            ["step", "failed", things[0]],
          ]);
        }
      },
      SLOW_MS,
    );

    it(
      "stream a rollout's progress from every replica, the one running it or not",
      async () => {
        const { run, a, b, device, credentials } = await replicasWithDevice();
        const { things, answer, onA, onB } = await heldRolloutOnBoth(
          a,
          b,
          device,
          credentials,
          "streamed-rollout",
          run,
        );
        answer();
        const all = [
          ["status", "running"],
          ["step", "completed", things[0]],
          ["step", "completed", things[1]],
          ["status", "completed"],
        ];
        expect(await rolloutEvents(onA)).toEqual(all);
        expect(await rolloutEvents(onB)).toEqual(all);
      },
      SLOW_MS,
    );

    it(
      "take what a rollout step applied on one replica for no drift on the others",
      async () => {
        const { run, a, b, device, credentials } = await replicasWithDevice();
        const id = `urn:test:replica:drift:${run}`;
        await registerThing(a, id, device.td(id), credentials);
        const completed = async (rollout: string) =>
          vi.waitFor(async () => expect((await a.hub.store.getRollout(rollout))?.status).toBe("completed"), {
            timeout: 60_000,
            interval: 200,
          });
        const first = await levelRelease(a, [id], 7);
        await completed(await startRollout(a, first));
        // The next release's step writes 8 and reads it back (a `reported` 8) before it makes the
        // release active: on every replica that is the step's doing, not a drift from the first.
        const second = await levelRelease(a, [id], 8);
        const rollout = await startRollout(a, second);
        await completed(rollout);
        const last = await a.hub.store.lastSeq();
        await Promise.all([delivered(a, last), delivered(b, last)]);
        // What each replica's drift judged up to there is recorded once it stops.
        expect(b.hub.drift.list(id)).toEqual([]);
        await Promise.all([a.hub.drift.close(), b.hub.drift.close()]);
        const log = await a.hub.store.changesAfter(0, 10_000);
        expect(log.filter((c) => c.thing === id && c.kind === "reported" && c.value === 8)).not.toEqual([]);
        expect(log.filter((c) => c.kind === "drift").map((c) => c.value)).toEqual([]);
      },
      SLOW_MS,
    );

    it(
      "judge drift on one replica: each drift recorded once, reverted once, and taken up from the Log by the next",
      async () => {
        const { run, a, b, device, credentials } = await replicasWithDevice();
        expect(await healthOf(a, "drift")).toEqual({ state: "running" });
        expect(await healthOf(b, "drift")).toEqual({
          state: "standby",
          reason:
            "another replica of this hub judges drift (it holds the store's drift lock): " +
            "this one takes over when it stops",
        });
        const id = `urn:test:replica:reverted:${run}`;
        await registerThing(a, id, device.td(id), credentials);
        const { release } = await a.hub.releases.build(
          [
            {
              path: "release.yaml",
              text:
                `release: replica-revert\nthings:\n  - select: { id: "${id}" }\n    properties: { level: 7 }\n` +
                "drift: { policy: revert, maxReverts: 1, withinSeconds: 3600 }\n",
            },
          ],
          { actor: "test" },
        );
        const rollout = await startRollout(a, release.id);
        await vi.waitFor(
          async () => expect((await a.hub.store.getRollout(rollout))?.status).toBe("completed"),
          {
            timeout: 60_000,
            interval: 200,
          },
        );
        const drifts = async () =>
          (await b.hub.store.changesAfter(0, 10_000))
            .filter((c) => c.thing === id && c.kind === "drift")
            .map((c) => {
              const value = c.value as { status: string; observed: unknown; revert?: string };
              return [value.status, value.observed, value.revert];
            });
        const until = (n: number) =>
          vi.waitFor(async () => expect((await drifts()).length).toBeGreaterThanOrEqual(n), {
            timeout: 30_000,
            interval: 100,
          });

        // The device reports 9: one drift, one corrective write (read back as 7: resolved).
        await report(a, id, [9]);
        await until(2);
        // Then 8: the limit holds, the drift stays open.
        await report(b, id, [8]);
        await until(3);
        // The standby keeps what drifts as the Log says.
        await vi.waitFor(() => expect(b.hub.drift.list(id).map((e) => e.observed)).toEqual([8]), {
          timeout: 20_000,
          interval: 100,
        });

        // The replica judging stops: the other takes over from the Log (the open drift is not
        // recorded again) and records the next drift once, within the limit the first one used up
        // (the Log counts its corrective write).
        await hubs.splice(0, 1)[0]?.stop();
        await vi.waitFor(async () => expect(await healthOf(b, "drift")).toEqual({ state: "running" }), {
          timeout: 20_000,
          interval: 200,
        });
        await report(b, id, [3]);
        await until(4);
        await b.hub.drift.close();
        expect(await drifts()).toEqual([
          ["drifting", 9, "sent"],
          ["resolved", 9, undefined],
          ["drifting", 8, "rate-limited"],
          ["drifting", 3, "rate-limited"],
        ]);
        expect(writes(device).map((w) => w.body)).toEqual(["7", "7"]);
      },
      SLOW_MS,
    );

    it(
      "record no drift and send no corrective write from a holder whose drift role's session was cut off from PostgreSQL",
      async () => {
        const { run, schema, dirs, store, overrides } = setting();
        const credentials = { username: "operator", password: `pw-${run}` };
        const device = new SimulatedHttpThing(credentials);
        await device.start();
        cleanups.push(() => device.stop());
        // A reaches PostgreSQL through a proxy that the test controls.
        const proxy = new PostgresProxy();
        await proxy.open();
        cleanups.push(() => proxy.cut());
        const [a, b] = await startReplicas(
          { ...overrides, replica: true, store: proxy.url(`schema=${schema}`) },
          dirs,
          { forB: { store } },
        );
        expect(await healthOf(a, "drift")).toEqual({ state: "running" });
        const id = `urn:test:replica:drift-cut:${run}`;
        await registerThing(a, id, device.td(id), credentials);
        const { release } = await a.hub.releases.build(
          [
            {
              path: "release.yaml",
              text:
                `release: replica-drift-cut\nthings:\n  - select: { id: "${id}" }\n    properties: { level: 7 }\n` +
                "drift: { policy: revert, maxReverts: 5, withinSeconds: 3600 }\n",
            },
          ],
          { actor: "test" },
        );
        const rollout = await startRollout(a, release.id);
        await vi.waitFor(
          async () => expect((await a.hub.store.getRollout(rollout))?.status).toBe("completed"),
          { timeout: 60_000, interval: 200 },
        );
        const writtenBefore = writes(device).length;

        // The network between A and PostgreSQL drops everything on the drift role's session, and
        // PostgreSQL ends that session without A hearing of it: B takes the role. A's other
        // sessions go on (so A records reports and would record a drift, and send its write).
        const db = new pg.Client({ connectionString: postgresUrl });
        await db.connect();
        cleanups.push(() => db.end());
        const [holder] = (
          await db.query<{ pid: number; port: number }>(
            `SELECT l.pid, a.client_port AS port FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE l.locktype = 'advisory' AND l.granted
                AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtext($1)::bigint`,
            [`hyperthings:drift:${schema}`],
          )
        ).rows;
        expect(proxy.stallConnection(holder?.port ?? -1)).toBe(true);
        await db.query("SELECT pg_terminate_backend($1)", [holder?.pid]);
        await vi.waitFor(async () => expect(await healthOf(b, "drift")).toEqual({ state: "running" }), {
          timeout: 20_000,
          interval: 100,
        });
        expect(a.hub.electedStatus()?.drift).toEqual({ state: "running" });

        // A drifting report, taken by A: both judge it; A asks its role's session first, which
        // does not answer (5 s), and gives the role up; B records it once and writes 7 back once.
        const [seq] = await report(a, id, [9]);
        await delivered(a, seq ?? 0);
        const drifts = async () =>
          (await b.hub.store.changesAfter(0, 10_000))
            .filter((c) => c.thing === id && c.kind === "drift")
            .map((c) => {
              const value = c.value as { status: string; observed: unknown; revert?: string };
              return [value.status, value.observed, value.revert];
            });
        await vi.waitFor(async () => expect((await drifts()).length).toBeGreaterThanOrEqual(2), {
          timeout: 30_000,
          interval: 100,
        });
        // What each replica's drift took in is judged, and its writes have ended.
        await a.hub.drift.close();
        await b.hub.drift.close();
        expect(await drifts()).toEqual([
          ["drifting", 9, "sent"],
          ["resolved", 9, undefined],
        ]);
        expect(
          writes(device)
            .slice(writtenBefore)
            .map((w) => w.body),
        ).toEqual(["7"]);
        // A found out, and says so.
        await vi.waitFor(() => expect(a.hub.electedStatus()?.drift?.state).toBe("standby"), {
          timeout: 20_000,
          interval: 100,
        });
      },
      SLOW_MS,
    );

    it(
      "revert drift across a takeover within the limit: the next holder counts the writes sent and checks the one left in flight",
      async () => {
        const { run, a, b, device, credentials } = await replicasWithDevice();
        const id = `urn:test:replica:revert-takeover:${run}`;
        await registerThing(a, id, device.td(id), credentials);
        const { release } = await a.hub.releases.build(
          [
            {
              path: "release.yaml",
              text:
                `release: replica-revert-takeover\nthings:\n  - select: { id: "${id}" }\n    properties: { level: 7 }\n` +
                "drift: { policy: revert, maxReverts: 2, withinSeconds: 3600 }\n",
            },
          ],
          { actor: "test" },
        );
        const rollout = await startRollout(a, release.id);
        await vi.waitFor(
          async () => expect((await a.hub.store.getRollout(rollout))?.status).toBe("completed"),
          { timeout: 60_000, interval: 200 },
        );
        const drifts = async () =>
          (await b.hub.store.changesAfter(0, 10_000))
            .filter((c) => c.thing === id && c.kind === "drift")
            .map((c) => {
              const value = c.value as { status: string; observed: unknown; revert?: string };
              return [value.status, value.observed, value.revert];
            });

        // From now on the device keeps 5 whatever it is written, and holds its answers.
        device.level = 5;
        device.ignoresWrites = true;
        const answer = device.holdAnswers();
        const [reported] = await report(a, id, [5]);
        // The first replica sends one corrective write of the two the limit allows, and stops
        // while it is out: its outcome is not in the Log, and no report comes after it.
        await vi.waitFor(() => expect(writes(device)).toHaveLength(2), { timeout: 30_000, interval: 100 });
        await hubs.splice(0, 1)[0]?.stop();
        answer();

        // The other replica takes over: it reads the device back (5: the write did not hold) and
        // sends the one corrective write left, then the limit holds.
        await vi.waitFor(
          async () => expect((await drifts()).at(-1)).toEqual(["drifting", 5, "rate-limited"]),
          { timeout: 60_000, interval: 200 },
        );
        await b.hub.drift.close();
        expect(await drifts()).toEqual([
          ["drifting", 5, "sent"],
          ["drifting", 5, "sent"],
          ["drifting", 5, "rate-limited"],
        ]);
        expect(writes(device).map((w) => w.body)).toEqual(["7", "7", "7"]);
        // Each read back by the holder: after the takeover, and after its write.
        const after = (await b.hub.store.changesAfter(reported ?? 0, 10_000)).filter(
          (c) => c.thing === id && c.kind === "reported",
        );
        expect(after.map((c) => [c.value, c.cause.actor])).toEqual([
          [5, "hub:drift"],
          [5, "hub:drift"],
        ]);
      },
      SLOW_MS,
    );

    it("refuse a hub that is not a replica while replicas run, and a replica while such a hub runs", async () => {
      const { schema, dirs, overrides } = setting();
      const replica = await startTestHub({ ...overrides, replica: true, dataDir: dirs[0] });
      hubs.push(replica);
      await expect(startTestHub({ ...overrides, dataDir: dirs[1] })).rejects.toThrow(
        new RegExp(`^The PostgreSQL schema ${schema} \\(.*\\) is in use by another hub: .*--replica`),
      );
      await hubs.splice(0)[0]?.stop();
      const alone = await startTestHub({ ...overrides, dataDir: dirs[0] });
      hubs.push(alone);
      await expect(startTestHub({ ...overrides, replica: true, dataDir: dirs[0] })).rejects.toThrow(
        new RegExp(`^The PostgreSQL schema ${schema} \\(.*\\) is in use by a hub that is not a replica`),
      );
    });

    it.skipIf(mqttProblem !== undefined && !required)(
      "run the MQTT gateway on an external broker one at a time, say which in /health, and take it over when its replica stops",
      async () => {
        const { run, dirs, overrides } = setting();
        const prefix = `hyperthings-test/${run}`;
        const mqtt = { ...overrides, mqtt: true, mqttUrl: brokerUrl, mqttPrefix: prefix, replica: true };
        const env = {
          HYPERTHINGS_MQTT_HOMIE_ROOT: `${prefix}/homie`,
          HYPERTHINGS_MQTT_HA_PREFIX: `${prefix}/homeassistant`,
        };
        const [a, b] = await startReplicas(mqtt, dirs, { env });
        const mqttHealth = (hub: TestHub) => healthOf(hub, "mqtt");
        const broker = brokerUrl.replace(/\/$/, "");
        expect(await mqttHealth(a)).toEqual({ gateway: "running", kind: "external", broker });
        const standby = (await mqttHealth(b)) as { reason?: string };
        expect(standby).toMatchObject({ gateway: "standby", kind: "external", broker });
        expect(standby.reason).toMatch(/^another replica of this hub runs the MQTT gateway on this broker/);
        expect(b.mqtt).toBeUndefined();

        // A device's report is recorded once, by the replica that runs the gateway.
        const id = `urn:test:replica:mqtt:${run}`;
        await putTd(a, lampTd(id));
        const device = await connectAsync(brokerUrl, { reconnectPeriod: 0 });
        cleanups.push(() => device.endAsync());
        const levels = async () => {
          const res = await b.request(`${thingPath(id)}/history?affordance=level&order=asc`);
          return ((await res.json()) as { changes: Change[] }).changes.map((c) => c.value);
        };
        await device.publishAsync(`${prefix}/things/${id}/properties/level`, "7", { qos: 1 });
        await vi.waitFor(async () => expect(await levels()).toEqual([7]), { timeout: 20_000 });

        // The replica running it stops: the other one takes it over, and says so.
        await hubs.splice(0, 1)[0]?.stop();
        await vi.waitFor(
          async () => expect(await mqttHealth(b)).toEqual({ gateway: "running", kind: "external", broker }),
          { timeout: 20_000, interval: 200 },
        );
        expect(b.mqtt).toMatchObject({ kind: "external", url: broker });
        await device.publishAsync(`${prefix}/things/${id}/properties/level`, "8", { qos: 1 });
        await vi.waitFor(async () => expect(await levels()).toEqual([7, 8]), { timeout: 20_000 });
      },
      SLOW_MS,
    );

    it.skipIf(mqttProblem !== undefined && !required)(
      "record once each a device's reading being committed when the gateway's replica loses its role, and one published while no replica runs it",
      async () => {
        const { run, schema, dirs, overrides } = setting();
        const prefix = `hyperthings-test/${run}`;
        const mqtt = { ...overrides, mqtt: true, mqttUrl: brokerUrl, mqttPrefix: prefix, replica: true };
        const env = {
          HYPERTHINGS_MQTT_HOMIE_ROOT: `${prefix}/homie`,
          HYPERTHINGS_MQTT_HA_PREFIX: `${prefix}/homeassistant`,
        };
        const a = await startTestHub({ ...mqtt, dataDir: dirs[0] }, env);
        hubs.push(a);
        const id = `urn:test:replica:mqtt-role-lost:${run}`;
        await putTd(a, lampTd(id));
        const device = await connectAsync(brokerUrl, { reconnectPeriod: 0 });
        cleanups.push(() => device.endAsync());
        const topic = `${prefix}/things/${id}/properties/level`;
        const levels = async () => {
          const res = await a.request(`${thingPath(id)}/history?affordance=level&order=asc`);
          return ((await res.json()) as { changes: Change[] }).changes.map((c) => c.value);
        };
        const db = new pg.Client({ connectionString: postgresUrl });
        await db.connect();
        cleanups.push(() => db.end());
        const [holder] = (
          await db.query<{ pid: number }>(
            `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
               AND ((classid::bigint << 32) | objid::bigint) = hashtext($1)::bigint`,
            [`hyperthings:mqtt-gateway:${schema}`],
          )
        ).rows;
        expect(holder?.pid).toBeGreaterThan(0);

        // Another session holds the Log's head row: the reading's commit waits there.
        const blocker = new pg.Client({ connectionString: postgresUrl });
        await blocker.connect();
        cleanups.push(() => blocker.end());
        await blocker.query(`BEGIN; SELECT FROM ${schema}.log_head WHERE id = 1 FOR UPDATE`);
        const blockerPid = (await blocker.query<{ pid: number }>("SELECT pg_backend_pid() AS pid")).rows[0]
          ?.pid;
        await device.publishAsync(topic, "1", { qos: 1 });
        await blockedBy(db, blockerPid);
        // The session holding the replica's gateway role ends: it stops the gateway, its reading
        // still being committed; the reading is then committed, so it must be acknowledged before
        // the gateway leaves the session, or the broker sends it again to the next holder.
        await db.query("SELECT pg_terminate_backend($1)", [holder?.pid]);
        await vi.waitFor(
          async () => expect(await healthOf(a, "mqtt")).toMatchObject({ gateway: "standby" }),
          { timeout: 20_000, interval: 50 },
        );
        await blocker.query("COMMIT");
        // A reading published while no replica runs the gateway waits in the broker for the
        // hub's session, and is recorded when a replica (this one, the role being free) takes it.
        await device.publishAsync(topic, "2", { qos: 1 });
        await vi.waitFor(async () => expect(await levels()).toContain(2), { timeout: 30_000, interval: 100 });
        expect(await levels()).toEqual([1, 2]);
      },
      SLOW_MS,
    );

    it.skipIf(mqttProblem !== undefined && !required)(
      "take the hub's MQTT session back only while holding the gateway's role: a replica that lost it unawares stays away",
      async () => {
        const { run, schema, dirs, store, overrides } = setting();
        const prefix = `hyperthings-test/${run}`;
        const mqtt = { ...overrides, mqtt: true, mqttUrl: brokerUrl, mqttPrefix: prefix, replica: true };
        const env = {
          HYPERTHINGS_MQTT_HOMIE_ROOT: `${prefix}/homie`,
          HYPERTHINGS_MQTT_HA_PREFIX: `${prefix}/homeassistant`,
        };
        // A reaches PostgreSQL through a proxy that the test stalls: a network that drops everything.
        const proxy = new PostgresProxy();
        await proxy.open();
        cleanups.push(() => proxy.cut());
        const [a, b] = await startReplicas({ ...mqtt, store: proxy.url(`schema=${schema}`) }, dirs, {
          env,
          forB: { store },
        });
        expect(await healthOf(a, "mqtt")).toMatchObject({ gateway: "running" });
        const id = `urn:test:replica:mqtt-session:${run}`;
        await putTd(a, lampTd(id));

        // A is cut off from PostgreSQL, and its role's session ended there without A hearing of
        // it: B is elected and connects with the hub's client id, and the broker drops A.
        const db = new pg.Client({ connectionString: postgresUrl });
        await db.connect();
        cleanups.push(() => db.end());
        const [holder] = (
          await db.query<{ pid: number }>(
            `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
               AND ((classid::bigint << 32) | objid::bigint) = hashtext($1)::bigint`,
            [`hyperthings:mqtt-gateway:${schema}`],
          )
        ).rows;
        try {
          proxy.stall();
          await db.query("SELECT pg_terminate_backend($1)", [holder?.pid]);
          await vi.waitFor(
            async () => expect(await healthOf(b, "mqtt")).toMatchObject({ gateway: "running" }),
            {
              timeout: 20_000,
              interval: 100,
            },
          );
          // A does not take the session back: it cannot confirm that it holds the role, so it gives
          // the gateway up (before, it reconnected at once, and the two took the session from each
          // other).
          await vi.waitFor(
            async () => {
              // What its /health says (which also reads the store it cannot reach).
              const status = a.mqttStatus();
              expect(status?.gateway).toBe("standby");
              // Then it tries to take the role again, and cannot reach the store.
              expect(status?.reason).toMatch(
                /^(this replica stopped running the MQTT gateway: the session holding its lock on the PostgreSQL schema \S+ did not answer|the store could not say whether another replica runs the MQTT gateway)/,
              );
            },
            { timeout: 30_000, interval: 100 },
          );
          expect(await healthOf(b, "mqtt")).toMatchObject({ gateway: "running" });
          const device = await connectAsync(brokerUrl, { reconnectPeriod: 0 });
          cleanups.push(() => device.endAsync());
          await device.publishAsync(`${prefix}/things/${id}/properties/level`, "3", { qos: 1 });
          const levels = async () => {
            const res = await b.request(`${thingPath(id)}/history?affordance=level&order=asc`);
            return ((await res.json()) as { changes: Change[] }).changes.map((c) => c.value);
          };
          await vi.waitFor(async () => expect(await levels()).toEqual([3]), {
            timeout: 20_000,
            interval: 100,
          });
        } finally {
          // A stops with PostgreSQL gone, not stalled.
          await proxy.cut();
        }
      },
      SLOW_MS,
    );

    it("refuse a replica joining a Log without the hub's identity files", async () => {
      const { dirs, overrides } = setting();
      const a = await startTestHub({ ...overrides, replica: true, dataDir: dirs[0] });
      hubs.push(a);
      await putTd(a, lampTd("urn:test:replica:identity"));
      await expect(startTestHub({ ...overrides, replica: true, dataDir: dirs[1] })).rejects.toThrow(
        /hub-id, .*log-key\.pem, .*secrets\.key, .*admin-token are missing: a replica joining a hub whose replicas have run on this store is the same hub/,
      );
    });

    it("refuse a replica with identity files of its own, or none, though the Log is still empty", async () => {
      const { dirs, overrides } = setting();
      const a = await startTestHub({ ...overrides, replica: true, dataDir: dirs[0] });
      hubs.push(a);
      expect(await a.hub.store.lastSeq()).toBe(0);
      // No files: refused before any is made.
      await expect(startTestHub({ ...overrides, replica: true, dataDir: dirs[1] })).rejects.toThrow(
        /hub-id, .*log-key\.pem, .*secrets\.key, .*admin-token are missing: a replica joining a hub whose replicas have run on this store is the same hub/,
      );
      expect(existsSync(join(dirs[1], "hub-id"))).toBe(false);
      // A hub's own files (another hub's data directory): refused, naming each that differs.
      const other = mkdtempSync(join(tmpdir(), "hyperthings-replica-"));
      cleanups.push(() => rmSync(other, { recursive: true, force: true }));
      await (await startTestHub({ dataDir: other, mqtt: false })).stop();
      copyIdentity(other, dirs[1]);
      copyFileSync(join(dirs[0], "secrets.key"), join(dirs[1], "secrets.key"));
      const refused = startTestHub({ ...overrides, replica: true, dataDir: dirs[1] });
      await expect(refused).rejects.toThrow(
        `${join(dirs[1], "hub-id")}, ${join(dirs[1], "log-key.pem")} are not the hub's whose replicas run on this store (${a.hub.id}, recorded by its first replica; this data directory's is`,
      );
      // With the first replica's files: the same hub.
      copyIdentity(dirs[0], dirs[1]);
      const b = await startTestHub({ ...overrides, replica: true, dataDir: dirs[1] });
      hubs.push(b);
      expect(b.hub.id).toBe(a.hub.id);
    });
  });
}

describe("the replica setting", () => {
  it("needs a PostgreSQL store and the NATS bus, said in one line", () => {
    expect(() => loadConfig({ replica: true, dataDir: "/tmp/x" }, {})).toThrow(
      /^--replica needs --store postgres:\/\/… and --bus nats:\/\/…: replicas share one PostgreSQL schema/,
    );
    expect(() => loadConfig({ replica: true, dataDir: "/tmp/x", store: "postgres://h/db" }, {})).toThrow(
      /^--replica needs --bus nats:\/\/…:/,
    );
    expect(() =>
      loadConfig({ dataDir: "/tmp/x", bus: "nats://h:4222" }, { HYPERTHINGS_REPLICA: "yes" }),
    ).toThrow(/^HYPERTHINGS_REPLICA needs --store postgres:\/\/…:/);
    expect(
      loadConfig(
        { dataDir: "/tmp/x", bus: "nats://h:4222", store: "postgres://h/db" },
        { HYPERTHINGS_REPLICA: "1" },
      ).replica,
    ).toBe(true);
    expect(loadConfig({ dataDir: "/tmp/x" }, {}).replica).toBe(false);
  });
});
