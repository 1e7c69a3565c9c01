// The NATS JetStream bus against the machine's NATS (HYPERTHINGS_TEST_NATS_URL, default
// nats://127.0.0.1:4222): each test has its own stream and subject prefix (random suffix) and
// deletes them after. Changes reach an independent reader in seq order; a replay is stored once;
// a cut connection loses nothing and holds no queue; bad settings stop the start.
import { jetstream, jetstreamManager, type JetStreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, afterEach, beforeAll, describe, expect, it, vi } from "vitest";
import { NatsBus, changeSubject } from "../src/bus/index.js";
import { loadConfig } from "../src/hub/index.js";
import type { Change } from "../src/core/index.js";
import { NatsProxy, natsProblem, natsUrl, servicesRequired as required } from "./support/nats-server.js";
import { minimalTd, putTd, startTestHub, type TestHub } from "./support/test-hub.js";
import { runThingsToEnd } from "./support/things-process.js";

const problem = await natsProblem();

/** What the stream holds, oldest first: read message by message, as an independent program would. */
async function streamMessages(
  jsm: JetStreamManager,
  stream: string,
): Promise<{ subject: string; msgId: string; change: Change }[]> {
  const info = await jsm.streams.info(stream);
  const messages = [];
  for (let seq = info.state.first_seq; seq <= info.state.last_seq && info.state.messages > 0; seq++) {
    const m = await jsm.streams.getMessage(stream, { seq });
    if (m === null) continue;
    messages.push({
      subject: m.subject,
      msgId: m.header.get("Nats-Msg-Id"),
      change: JSON.parse(new TextDecoder().decode(m.data)) as Change,
    });
  }
  return messages;
}

function natsBusOf(hub: TestHub): NatsBus {
  const bus = hub.hub.bus;
  if (!(bus instanceof NatsBus)) throw new Error("the hub does not run the NATS bus");
  return bus;
}

function lampTd(id: string): Record<string, unknown> {
  return minimalTd({
    id,
    properties: { level: { type: "integer", forms: [{ href: "http://lamp.example/level" }] } },
  });
}

async function report(hub: TestHub, id: string, levels: number[]): Promise<number> {
  const changes = await hub.hub.ingest(
    id,
    levels.map((value) => ({ kind: "reported", affordance: "level", value })),
    { actor: "test", via: "test" },
  );
  return changes.at(-1)?.seq ?? 0;
}

if (problem !== undefined && !required) {
  describe("the NATS JetStream bus", () => {
    it.skip(`skipped: no NATS JetStream at ${natsUrl} (${problem})`, () => undefined);
  });
} else if (problem !== undefined) {
  describe("the NATS JetStream bus", () => {
    it(`needs NATS JetStream at ${natsUrl} (HYPERTHINGS_REQUIRE_SERVICES=1)`, () => {
      throw new Error(`no NATS JetStream at ${natsUrl}: ${problem}`);
    });
  });
} else {
  describe("the NATS JetStream bus", () => {
    let nc: NatsConnection;
    let jsm: JetStreamManager;
    const streams: string[] = [];
    const hubs: TestHub[] = [];
    const proxies: NatsProxy[] = [];
    const dataDirs: string[] = [];

    /** A stream name and a prefix of this test's own, deleted after it. */
    function names(): { stream: string; prefix: string; run: string } {
      const run = randomBytes(6).toString("hex");
      const stream = `HT_TEST_${run}`;
      streams.push(stream);
      return { stream, prefix: `httest.${run}`, run };
    }

    beforeAll(async () => {
      nc = await connect({ servers: natsUrl });
      jsm = await jetstreamManager(nc);
    });

    afterEach(async () => {
      for (const hub of hubs.splice(0)) await hub.stop();
      for (const proxy of proxies.splice(0)) await proxy.cut();
      for (const stream of streams.splice(0)) await jsm.streams.delete(stream).catch(() => false);
      for (const dir of dataDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
    });

    afterAll(async () => {
      await nc?.close();
    });

    it("publishes every committed Change in seq order, on its Thing's and kind's subject, as GET /changes gives it", async () => {
      const { stream, prefix, run } = names();
      const hub = await startTestHub({ bus: natsUrl, busPrefix: prefix, busStream: stream });
      hubs.push(hub);
      // An id with the characters a subject cannot hold as they are.
      const id = `urn:test:nats:${run}:lamp.1*x`;
      await putTd(hub, lampTd(id));
      await report(hub, id, [1, 2]);
      const last = await report(hub, id, [3]);
      await natsBusOf(hub).acknowledged(last);

      const feed = (await (await hub.request(`/changes?limit=100`)).json()) as { changes: Change[] };
      const messages = await streamMessages(jsm, stream);
      expect(messages.map((m) => m.change.seq)).toEqual(feed.changes.map((c) => c.seq));
      expect(messages.map((m) => m.change.seq)).toEqual(Array.from({ length: last }, (_, i) => i + 1));
      expect(messages.map((m) => m.change)).toEqual(feed.changes);
      for (const m of messages) {
        expect(m.subject).toBe(changeSubject(prefix, m.change));
        expect(m.msgId).toBe(`${hub.hub.id}:${m.change.seq}`);
      }
      const reported = messages.filter((m) => m.change.kind === "reported");
      expect(reported.map((m) => m.change.value)).toEqual([1, 2, 3]);
      expect(reported[0]?.subject).toBe(
        `${prefix}.changes.urn%3Atest%3Anats%3A${run}%3Alamp%2E1%2Ax.reported`,
      );

      // An ordinary JetStream consumer filtered on the Thing's subjects reads the same, in order.
      const consumer = await jetstream(nc).consumers.get(stream, {
        filter_subjects: `${prefix}.changes.*.reported`,
      });
      const batch = await consumer.fetch({ max_messages: 3, expires: 5_000 });
      const values: unknown[] = [];
      for await (const m of batch) {
        values.push(m.json<Change>().value);
        if (values.length === 3) break;
      }
      expect(values).toEqual([1, 2, 3]);

      const health = (await (await hub.request("/health")).json()) as Record<string, unknown>;
      expect(health.status).toBe("ok");
      expect(health.bus).toMatchObject({ connected: true, lastAcknowledged: last, lag: 0, stream });
    });

    it("stores a replayed Change once (Nats-Msg-Id), and a restarted hub goes on after the stream's last", async () => {
      const { stream, prefix, run } = names();
      const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-test-"));
      dataDirs.push(dataDir);
      const hub = await startTestHub({ dataDir, bus: natsUrl, busPrefix: prefix, busStream: stream });
      const id = `urn:test:nats:${run}:lamp`;
      await putTd(hub, lampTd(id));
      const first = await report(hub, id, [1, 2, 3]);
      await natsBusOf(hub).acknowledged(first);
      const changes = await hub.hub.store.changesAfter(0, 100);
      const hubId = hub.hub.id;
      await hub.stop();

      // The same Changes again, as a bus that lost its PubAcks would send them: each one a duplicate.
      const replayer = new NatsBus({
        servers: [natsUrl],
        stream,
        prefix,
        maxAgeMs: 0,
        maxBytes: 0,
        replay: (after, limit) => Promise.resolve(changes.filter((c) => c.seq > after).slice(0, limit)),
        lastSeq: () => Promise.resolve(first),
        logger: { info: () => undefined, warn: () => undefined, error: () => undefined },
      });
      const js = jetstream(nc);
      for (const change of changes) {
        const ack = await js.publish(changeSubject(prefix, change), JSON.stringify(change), {
          msgID: `${hubId}:${change.seq}`,
        });
        expect(ack.duplicate).toBe(true);
      }
      await replayer.start(hubId);
      await replayer.acknowledged(first);
      expect(replayer.status()).toMatchObject({ lastAcknowledged: first, inFlight: 0 });
      await replayer.close();
      expect((await streamMessages(jsm, stream)).map((m) => m.change.seq)).toEqual(changes.map((c) => c.seq));

      // The hub again, on its data: it reads where the stream ends and sends only what is new.
      const again = await startTestHub({ dataDir, bus: natsUrl, busPrefix: prefix, busStream: stream });
      hubs.push(again);
      const next = await report(again, id, [4]);
      await natsBusOf(again).acknowledged(next);
      const seqs = (await streamMessages(jsm, stream)).map((m) => m.change.seq);
      expect(seqs).toEqual(Array.from({ length: next }, (_, i) => i + 1));
    });

    it("publishes only the Changes of the stream's max age when the stream holds none of the hub's, and looks past other publishers' messages", async () => {
      const { stream, prefix } = names();
      const hubId = `urn:test:nats:${randomBytes(4).toString("hex")}`;
      const day = 24 * 3_600_000;
      const now = Date.now();
      // Ten Changes made ten days ago, then five made in the last hour.
      const log: Change[] = Array.from({ length: 15 }, (_, i) => ({
        seq: i + 1,
        hlc: `${(i < 10 ? now - 10 * day + i : now - 3_600_000 + i).toString(16).padStart(12, "0")}-00000000-${hubId}`,
        thing: "urn:test:lamp",
        kind: "reported",
        affordance: "level",
        value: i,
        cause: { actor: "test" },
      }));
      const lines: string[] = [];
      const busOver = (changes: Change[]) =>
        new NatsBus({
          servers: [natsUrl],
          stream,
          prefix,
          maxAgeMs: day,
          maxBytes: 0,
          replay: (after, limit) => Promise.resolve(changes.filter((c) => c.seq > after).slice(0, limit)),
          lastSeq: () => Promise.resolve(changes.length),
          logger: {
            info: (_d, line) => lines.push(line),
            warn: (_d, line) => lines.push(line),
            error: () => undefined,
          },
        });
      const first = busOver(log);
      await first.start(hubId);
      await first.acknowledged(15);
      await first.close();
      expect((await streamMessages(jsm, stream)).map((m) => m.change.seq)).toEqual([11, 12, 13, 14, 15]);
      expect(lines).toContain(
        `JetStream stream ${stream} holds none of this hub's Changes: publishing those of the stream's max age (24 h), from seq 11; the older ones are in the hub's Log (GET /changes)`,
      );

      // Another publisher wrote last: the hub's last Change is found behind it, nothing is sent again.
      await jetstream(nc).publish(`${prefix}.changes.other.reported`, "{}", { msgID: "someone-else:1" });
      log.push({ ...log[14], seq: 16, value: 16 } as Change);
      const second = busOver(log);
      await second.start(hubId);
      await second.acknowledged(16);
      await second.close();
      expect((await streamMessages(jsm, stream)).map((m) => m.msgId)).toEqual([
        ...[11, 12, 13, 14, 15].map((seq) => `${hubId}:${seq}`),
        "someone-else:1",
        `${hubId}:16`,
      ]);
    });

    it("loses nothing across a cut connection, and holds no queue of Changes while cut", async () => {
      const { stream, prefix, run } = names();
      const proxy = new NatsProxy();
      proxies.push(proxy);
      await proxy.open();
      const hub = await startTestHub({ bus: proxy.url, busPrefix: prefix, busStream: stream });
      hubs.push(hub);
      const bus = natsBusOf(hub);
      const id = `urn:test:nats:${run}:lamp`;
      await putTd(hub, lampTd(id));
      await bus.acknowledged(await report(hub, id, [0]));

      await proxy.cut();
      await vi.waitFor(() => expect(bus.status().connected).toBe(false), { timeout: 10_000 });
      // Three windows' worth committed while NATS is away: none of it waits in the bus.
      const { window } = bus.status();
      let last = 0;
      for (let i = 0; i < 3; i++) {
        last = await report(
          hub,
          id,
          Array.from({ length: window }, (_, k) => i * window + k + 1),
        );
      }
      const cut = bus.status();
      expect(cut.connected).toBe(false);
      expect(cut.inFlight).toBeLessThanOrEqual(window);
      expect(cut.lastCommitted).toBe(last);
      expect(cut.lag).toBeGreaterThanOrEqual(3 * window);
      const health = (await (await hub.request("/health")).json()) as Record<string, unknown>;
      expect(health.status).toBe("degraded");
      expect(health.bus).toMatchObject({ connected: false, lastCommitted: last });

      await proxy.open(proxy.port);
      await bus.acknowledged(last);
      const seqs = (await streamMessages(jsm, stream)).map((m) => m.change.seq);
      expect(seqs).toEqual(Array.from({ length: last }, (_, i) => i + 1));
      expect(bus.status()).toMatchObject({ connected: true, lag: 0, inFlight: 0, catchingUp: false });
    });

    it("stops while NATS is away, and the next start sends what it missed", async () => {
      const { stream, prefix, run } = names();
      const proxy = new NatsProxy();
      proxies.push(proxy);
      await proxy.open();
      const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-test-"));
      dataDirs.push(dataDir);
      const options = { dataDir, bus: proxy.url, busPrefix: prefix, busStream: stream };
      const hub = await startTestHub(options);
      const id = `urn:test:nats:${run}:lamp`;
      await putTd(hub, lampTd(id));
      await natsBusOf(hub).acknowledged(await report(hub, id, [1]));
      await proxy.cut();
      await vi.waitFor(() => expect(natsBusOf(hub).status().connected).toBe(false), { timeout: 10_000 });
      const last = await report(hub, id, [2, 3]);
      await hub.stop();

      await proxy.open(proxy.port);
      const again = await startTestHub(options);
      hubs.push(again);
      await natsBusOf(again).acknowledged(last);
      const seqs = (await streamMessages(jsm, stream)).map((m) => m.change.seq);
      expect(seqs).toEqual(Array.from({ length: last }, (_, i) => i + 1));
    });

    it("publishes cut off in flight are sent again from the Log, in order, none twice", async () => {
      const { stream, prefix } = names();
      const proxy = new NatsProxy();
      proxies.push(proxy);
      await proxy.open();
      const hubId = `urn:test:hub:${stream}`;
      const log: Change[] = Array.from({ length: 20 }, (_, i) => ({
        seq: i + 1,
        hlc: `${i}`,
        thing: `urn:test:thing:${i % 3}`,
        kind: "reported",
        affordance: "level",
        value: i,
        cause: { actor: "test" },
      }));
      let committed = 0;
      const bus = new NatsBus({
        servers: [proxy.url],
        stream,
        prefix,
        maxAgeMs: 0,
        maxBytes: 0,
        window: 4,
        ackTimeoutMs: 500,
        retryMs: 50,
        replay: (after, limit) =>
          Promise.resolve(log.filter((c) => c.seq > after && c.seq <= committed).slice(0, limit)),
        lastSeq: () => Promise.resolve(committed),
        logger: { info: () => undefined, warn: () => undefined, error: () => undefined },
      });
      try {
        await bus.start(hubId);
        committed = 1;
        bus.publish(log.slice(0, 1));
        await bus.acknowledged(1);
        // Nine committed at once, then the way to NATS cut before their PubAcks come back.
        committed = 10;
        bus.publish(log.slice(1, 10));
        expect(bus.status().inFlight).toBe(4);
        await proxy.cut();
        committed = 20;
        bus.publish(log.slice(10));
        expect(bus.status()).toMatchObject({ lastCommitted: 20, window: 4 });
        expect(bus.status().inFlight).toBeLessThanOrEqual(4);
        await proxy.open(proxy.port);
        await bus.acknowledged(20);
      } finally {
        await bus.close();
      }
      const messages = await streamMessages(jsm, stream);
      expect(messages.map((m) => m.change.seq)).toEqual(log.map((c) => c.seq));
      expect(messages.map((m) => m.msgId)).toEqual(log.map((c) => `${hubId}:${c.seq}`));
    });

    it("starts without NATS, says so, and catches up when NATS comes", async () => {
      const { stream, prefix, run } = names();
      const proxy = new NatsProxy();
      proxies.push(proxy);
      await proxy.open();
      await proxy.cut();
      const hub = await startTestHub({ bus: proxy.url, busPrefix: prefix, busStream: stream });
      hubs.push(hub);
      const bus = natsBusOf(hub);
      expect(bus.status()).toMatchObject({ connected: false });
      await vi.waitFor(() => expect(bus.status().problem?.reason).toMatch(/unreachable/), {
        timeout: 10_000,
      });
      const id = `urn:test:nats:${run}:lamp`;
      await putTd(hub, lampTd(id));
      const last = await report(hub, id, [1, 2, 3]);

      await proxy.open(proxy.port);
      await bus.acknowledged(last);
      const seqs = (await streamMessages(jsm, stream)).map((m) => m.change.seq);
      expect(seqs).toEqual(Array.from({ length: last }, (_, i) => i + 1));
    });

    it.each([
      [
        ["--bus", "http://127.0.0.1:4222"],
        /^bus \(--bus\) must be .*nats:\/\/host\[:port\].*"http:\/\/127\.0\.0\.1:4222"/,
      ],
      [
        ["--bus", natsUrl, "--bus-prefix", "a b.>"],
        /^bus subject prefix \(--bus-prefix\) must be NATS subject tokens/,
      ],
    ])("refuses %j in one line, exit 2", async (args, message) => {
      const run = await runThingsToEnd(["serve", "--port", "0", ...args]);
      expect(run.code).toBe(2);
      const lines = run.stderr.trim().split("\n");
      expect(lines).toHaveLength(1);
      expect(lines[0]?.replace(/^things: /, "")).toMatch(message);
    });
  });
}

describe("the bus settings", () => {
  it.each([
    [{ bus: "nats://" }, {}, /^bus \(--bus\) must be .*"nats:\/\/"/],
    [{ bus: "nats://h:4222/x" }, {}, /nothing after the port/],
    [{}, { HYPERTHINGS_BUS: "redis://h" }, /^bus \(HYPERTHINGS_BUS\) .*the scheme redis: is not NATS/],
    [{ busPrefix: "a..b" }, {}, /^bus subject prefix \(--bus-prefix\)/],
    [{ busPrefix: "a.*" }, {}, /^bus subject prefix \(--bus-prefix\)/],
    [{ busStream: "a.b" }, {}, /^bus stream \(--bus-stream\) must be 1–64 letters/],
    [
      {},
      { HYPERTHINGS_BUS_MAX_AGE_HOURS: "-1" },
      /^bus stream max age \(hours\) \(HYPERTHINGS_BUS_MAX_AGE_HOURS\)/,
    ],
  ])("refuses %j %j", (overrides, env, message) => {
    expect(() => loadConfig(overrides, env)).toThrow(message);
  });

  it("takes in-process (the default) and NATS servers", () => {
    expect(loadConfig({}, {}).bus.servers).toBeUndefined();
    expect(loadConfig({ bus: "in-process" }, {}).bus.servers).toBeUndefined();
    const bus = loadConfig(
      {},
      { HYPERTHINGS_BUS: "nats://a:4222, tls://b", HYPERTHINGS_BUS_MAX_MIB: "0" },
    ).bus;
    expect(bus).toMatchObject({ servers: ["nats://a:4222", "tls://b"], maxBytes: 0, stream: "HYPERTHINGS" });
  });
});
