// The MQTT gateway on an external broker: the machine's Mosquitto (HYPERTHINGS_TEST_MQTT_URL, default
// mqtt://127.0.0.1:1883), with a random topic prefix per run so that parallel runs never meet.
// Device reports become Changes, bad ones are answered on the errors topic, Changes are
// republished, and a Homie device announced through the broker is registered.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectAsync, type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { thingPath } from "../src/api/index.js";
import { UnavailableError } from "../src/core/index.js";
import { receivedWrites } from "./support/mqtt-device-writes.js";
import { changeAfter, minimalTd, putTd, startTestHub, type TestHub } from "./support/test-hub.js";
import { brokerProblem, brokerUrl, servicesRequired as required } from "./support/mqtt-broker.js";

const MESSAGE_BOUND_MS = 10_000;

const problem = await brokerProblem();

/** The next message on a topic, bounded in time. */
function nextMessage(client: MqttClient, topic: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`nothing came on ${topic}`)), MESSAGE_BOUND_MS);
    const onMessage = (t: string, payload: Buffer) => {
      if (t !== topic) return;
      clearTimeout(timer);
      client.off("message", onMessage);
      resolve(payload.toString("utf8"));
    };
    client.on("message", onMessage);
  });
}

if (problem !== undefined && !required) {
  describe("the MQTT gateway on an external broker", () => {
    it.skip(`skipped: no MQTT broker at ${brokerUrl} (${problem})`, () => undefined);
  });
} else if (problem !== undefined) {
  describe("the MQTT gateway on an external broker", () => {
    it(`needs an MQTT broker at ${brokerUrl} (HYPERTHINGS_REQUIRE_SERVICES=1)`, () => {
      throw new Error(`no MQTT broker at ${brokerUrl}: ${problem}`);
    });
  });
} else {
  describe("the MQTT gateway on an external broker", () => {
    const run = randomBytes(6).toString("hex");
    const prefix = `hyperthings-test/${run}`;
    const id = `urn:test:mqtt-external:${run}`;
    let hub: TestHub;
    let device: MqttClient;
    const retained: string[] = [];

    beforeAll(async () => {
      hub = await startTestHub(
        { mqttUrl: brokerUrl, mqttPrefix: prefix },
        {
          HYPERTHINGS_MQTT_HOMIE_ROOT: `${prefix}/homie`,
          HYPERTHINGS_MQTT_HA_PREFIX: `${prefix}/homeassistant`,
        },
      );
      const td = minimalTd({
        id,
        properties: {
          level: { type: "integer", minimum: 0, maximum: 10, forms: [{ href: "http://127.0.0.1:1/l" }] },
        },
      });
      const put = await hub.request(thingPath(id), {
        method: "PUT",
        headers: { "content-type": "application/td+json" },
        body: JSON.stringify(td),
      });
      expect(put.status).toBe(201);
      device = await connectAsync(brokerUrl, { reconnectPeriod: 0 });
    });

    afterAll(async () => {
      // Retained messages outlive the run in the broker: clear them.
      for (const topic of retained) await device.publishAsync(topic, "", { qos: 1, retain: true });
      await device.endAsync();
      await hub.stop();
    });

    it("runs on the external broker and names it", () => {
      expect(hub.mqtt).toMatchObject({ kind: "external", url: brokerUrl.replace(/\/$/, "") });
    });

    it("gives no device password, which only the embedded broker would know", async () => {
      const response = await hub.request(`${thingPath(id)}/mqtt-credentials`, { method: "POST" });
      expect(response.status).toBe(409);
      expect(response.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      expect(((await response.json()) as { detail: string }).detail).toMatch(/--mqtt-url/);
    });

    it("records a device's report and republishes the Change", async () => {
      const changeTopic = `${prefix}/changes/reported/${id}`;
      await device.subscribeAsync(changeTopic, { qos: 1 });
      const republished = nextMessage(device, changeTopic);
      await device.publishAsync(`${prefix}/things/${id}/properties/level`, "7", { qos: 1 });
      const change = JSON.parse(await republished) as Record<string, unknown>;
      expect(change).toMatchObject({ kind: "reported", thing: id, affordance: "level", value: 7 });
      expect(change.cause).toEqual({ actor: "mqtt", via: "mqtt" });
      const history = await hub.request(`${thingPath(id)}/history?limit=10`);
      const body = (await history.json()) as { changes?: Array<{ seq: number }> } | Array<{ seq: number }>;
      const changes = Array.isArray(body) ? body : (body.changes ?? []);
      expect(changes.map((c) => c.seq)).toContain(change.seq);
    });

    it("holds a report the hub could not take (a full queue) unacknowledged, and records it once it can", async () => {
      const ingest = hub.hub.ingest.bind(hub.hub);
      let refusals = 0;
      const spy = vi.spyOn(hub.hub, "ingest").mockImplementation(async (thing, reports, cause) => {
        if (thing === id && refusals < 2) {
          refusals++;
          throw new UnavailableError("Too many writes are waiting; retry shortly", 1);
        }
        return ingest(thing, reports, cause);
      });
      try {
        const changeTopic = `${prefix}/changes/reported/${id}`;
        await device.subscribeAsync(changeTopic, { qos: 1 });
        const republished = nextMessage(device, changeTopic);
        // The broker's PUBACK to the device comes at once; the hub's to the broker only once recorded.
        await device.publishAsync(`${prefix}/things/${id}/properties/level`, "3", { qos: 1 });
        const change = JSON.parse(await republished) as Record<string, unknown>;
        expect(change).toMatchObject({ kind: "reported", thing: id, affordance: "level", value: 3 });
        expect(refusals).toBe(2);
        const history = await hub.request(`${thingPath(id)}/history?limit=5&affordance=level`);
        const { changes } = (await history.json()) as { changes: Array<{ seq: number; value: unknown }> };
        expect(changes.filter((c) => c.seq >= (change.seq as number)).map((c) => c.value)).toEqual([3]);
      } finally {
        spy.mockRestore();
      }
    });

    it("answers a bad report on the errors topic and records nothing", async () => {
      const errors = `${prefix}/things/${id}/errors`;
      await device.subscribeAsync(errors, { qos: 1 });
      const answer = nextMessage(device, errors);
      await device.publishAsync(`${prefix}/things/${id}/properties/level`, "11", { qos: 1 });
      const problem = JSON.parse(await answer) as { status: number; detail: string };
      expect(problem.status).toBe(400);
      expect(problem.detail).toMatch(/level/);
    });

    it("answers a report larger than the payload limit on the errors topic", async () => {
      const errors = `${prefix}/things/${id}/errors`;
      await device.subscribeAsync(errors, { qos: 1 });
      const answer = nextMessage(device, errors);
      // 300 kB: past the default limit of 256 KiB, well within Mosquitto's.
      const huge = Buffer.alloc(300_000, "1");
      await device.publishAsync(`${prefix}/things/${id}/properties/level`, huge, { qos: 1 });
      const problem = JSON.parse(await answer) as { status: number; detail: string };
      expect(problem.status).toBe(400);
      expect(problem.detail).toMatch(/300000 bytes is larger than the limit/);
    });

    it("records a burst of readings in the order sent, refusing the one bad reading among them alone", async () => {
      const burstId = `${id}:burst`;
      const td = minimalTd({
        id: burstId,
        properties: {
          level: { type: "integer", minimum: 0, maximum: 10, forms: [{ href: "http://127.0.0.1:1/l" }] },
        },
      });
      const put = await hub.request(thingPath(burstId), {
        method: "PUT",
        headers: { "content-type": "application/td+json" },
        body: JSON.stringify(td),
      });
      expect(put.status).toBe(201);
      // 600 readings in flight at once: more than one batch, and more than MQTT 3.1.1's 20 in flight.
      const sent = Array.from({ length: 600 }, (_, i) => (i === 250 ? 11 : (i * 7) % 11));
      const good = sent.filter((v) => v !== 11);
      const changeTopic = `${prefix}/changes/reported/${burstId}`;
      const errors = `${prefix}/things/${burstId}/errors`;
      await device.subscribeAsync([changeTopic, errors], { qos: 1 });
      const problems: string[] = [];
      let recorded = 0;
      const allRecorded = new Promise<void>((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`only ${recorded} readings recorded`)),
          MESSAGE_BOUND_MS,
        );
        device.on("message", (topic, payload) => {
          if (topic === errors) problems.push(payload.toString("utf8"));
          if (topic === changeTopic && ++recorded === good.length) {
            clearTimeout(timer);
            resolve();
          }
        });
      });
      await Promise.all(
        sent.map((v) =>
          device.publishAsync(`${prefix}/things/${burstId}/properties/level`, String(v), { qos: 1 }),
        ),
      );
      await allRecorded;
      const history = await hub.request(`${thingPath(burstId)}/history?limit=1000`);
      type Recorded = { seq: number; kind: string; value: unknown };
      const body = (await history.json()) as { changes?: Recorded[] } | Recorded[];
      const changes = (Array.isArray(body) ? body : (body.changes ?? []))
        .filter((c) => c.kind === "reported")
        .sort((a, b) => a.seq - b.seq);
      expect(changes.map((c) => c.value)).toEqual(good);
      expect(problems).toHaveLength(1);
      expect(JSON.parse(problems[0] ?? "{}")).toMatchObject({
        status: 400,
        errors: [{ pointer: "/0/value" }],
      });
    });

    it("records a retained report once, not again each time a hub (re)subscribes", async () => {
      const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-test-"));
      const retainedId = `${id}:retained`;
      const options = { mqttUrl: brokerUrl, mqttPrefix: `${prefix}/retained`, dataDir };
      const base = `${prefix}/retained/things/${retainedId}`;
      const changes = `${prefix}/retained/changes/+/${retainedId}`;
      const recorded = async (on: TestHub) => {
        const response = await on.request(`${thingPath(retainedId)}/history?limit=100`);
        const body = (await response.json()) as { changes: Array<{ kind: string; affordance?: string }> };
        return body.changes.filter((c) => c.kind === "reported" || c.kind === "emitted");
      };
      await device.subscribeAsync(changes, { qos: 1 });
      let first: TestHub | undefined = await startTestHub(options);
      let second: TestHub | undefined;
      try {
        await putTd(
          first,
          minimalTd({
            id: retainedId,
            properties: {
              level: { type: "integer", forms: [{ href: "http://127.0.0.1:1/l" }] },
              marker: { type: "integer", forms: [{ href: "http://127.0.0.1:1/m" }] },
            },
            events: { alarm: { data: { type: "integer" }, forms: [{ href: "http://127.0.0.1:1/a" }] } },
          }),
        );
        retained.push(`${base}/properties/level`, `${base}/events/alarm`);
        const emitted = nextMessage(device, `${prefix}/retained/changes/emitted/${retainedId}`);
        await device.publishAsync(`${base}/properties/level`, "3", { qos: 1, retain: true });
        await device.publishAsync(`${base}/events/alarm`, "1", { qos: 1, retain: true });
        await emitted;
        expect(await recorded(first)).toHaveLength(2);
        await first.stop();
        first = undefined;

        second = await startTestHub(options);
        // Published after the hub subscribed: once it is recorded, so is anything sent before it.
        const marked = nextMessage(device, `${prefix}/retained/changes/reported/${retainedId}`);
        await device.publishAsync(`${base}/properties/marker`, "1", { qos: 1 });
        expect(JSON.parse(await marked)).toMatchObject({ affordance: "marker" });
        expect((await recorded(second)).map((c) => c.affordance).sort()).toEqual([
          "alarm",
          "level",
          "marker",
        ]);
      } finally {
        await first?.stop();
        await second?.stop();
        rmSync(dataDir, { recursive: true, force: true });
      }
    });

    it("records the reports devices sent while the hub was away, once it is back", async () => {
      const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-test-"));
      const awayId = `${id}:away`;
      const options = { mqttUrl: brokerUrl, mqttPrefix: `${prefix}/away`, dataDir };
      const topic = `${prefix}/away/things/${awayId}/properties/level`;
      let away: TestHub | undefined = await startTestHub(options);
      try {
        await putTd(
          away,
          minimalTd({
            id: awayId,
            properties: { level: { type: "integer", forms: [{ href: "http://127.0.0.1:1/l" }] } },
          }),
        );
        await away.stop();
        away = undefined;
        // Taken by the broker (PUBACK to the device) while no hub listens.
        for (const value of [1, 2, 3]) await device.publishAsync(topic, String(value), { qos: 1 });

        away = await startTestHub(options);
        const changeTopic = `${prefix}/away/changes/reported/${awayId}`;
        await device.subscribeAsync(changeTopic, { qos: 1 });
        // The last one, sent now: once it is recorded, so are those queued before it.
        const marked = new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error("4 was not recorded")), MESSAGE_BOUND_MS);
          const onMessage = (t: string, payload: Buffer) => {
            if (t !== changeTopic || (JSON.parse(payload.toString("utf8")) as { value: unknown }).value !== 4)
              return;
            clearTimeout(timer);
            device.off("message", onMessage);
            resolve();
          };
          device.on("message", onMessage);
        });
        await device.publishAsync(topic, "4", { qos: 1 });
        await marked;
        const response = await away.request(`${thingPath(awayId)}/history?limit=100`);
        const body = (await response.json()) as {
          changes: Array<{ seq: number; kind: string; value: unknown }>;
        };
        const values = body.changes
          .filter((c) => c.kind === "reported")
          .sort((a, b) => a.seq - b.seq)
          .map((c) => c.value);
        expect(values).toEqual([1, 2, 3, 4]);
      } finally {
        await away?.stop();
        rmSync(dataDir, { recursive: true, force: true });
      }
    });

    it("takes a late answer to a write that timed out as that write's, and an echoed correlation as naming its write", async () => {
      const gateway = hub.mqtt?.gateway;
      if (gateway === undefined) throw new Error("no gateway");
      const writeId = `${id}:writes`;
      const set = `${prefix}/things/${writeId}/properties/level/set`;
      await putTd(
        hub,
        minimalTd({
          id: writeId,
          properties: {
            level: {
              type: "integer",
              forms: [{ href: `${hub.mqtt?.url ?? "?"}/${set}`, op: "writeproperty" }],
            },
          },
        }),
      );
      const lamp = await connectAsync(brokerUrl, { reconnectPeriod: 0, protocolVersion: 5 });
      try {
        const writes = receivedWrites(lamp, set);
        await lamp.subscribeAsync(set, { qos: 1 });
        const reported = (after: number, value: number) =>
          changeAfter(hub, after, (c) => c.thing === writeId && c.kind === "reported" && c.value === value);
        const kinds = async (after: number) =>
          (await hub.hub.store.changesAfter(after, 100))
            .filter((c) => c.thing === writeId)
            .map((c) => c.kind);

        // A device that does not echo correlation data: its answers come in the order of the writes.
        const a = gateway.writeProperty(writeId, "level", 1, 200);
        expect((await writes.next()).value).toBe(1);
        await expect(a).rejects.toThrow(/no answer to the write of level/);
        const before = await hub.hub.store.lastSeq();
        let bAnswered = false;
        const b = hub
          .request(`${thingPath(writeId)}/properties/level`, {
            method: "PUT",
            headers: { "content-type": "application/json" },
            body: "2",
          })
          .finally(() => (bAnswered = true));
        expect((await writes.next()).value).toBe(2);
        await lamp.publishAsync(`${set}/result`, '{"ok": true}', { qos: 1 });
        // Sent after the late answer: once it is recorded, the hub has taken that answer.
        await lamp.publishAsync(`${prefix}/things/${writeId}/properties/level`, "1", { qos: 1 });
        await reported(before, 1);
        expect(bAnswered).toBe(false);
        expect(await kinds(before)).toEqual(["desired", "reported"]);
        await lamp.publishAsync(`${set}/result`, '{"ok": true}', { qos: 1 });
        expect((await b).status).toBe(204);
        expect(await kinds(before)).toEqual(["desired", "reported", "completed"]);

        // An MQTT 5 device echoes each write's correlation data, and may answer in any order.
        const c = gateway.writeProperty(writeId, "level", 3).catch((error: unknown) => error);
        const d = gateway.writeProperty(writeId, "level", 4);
        const third = await writes.next();
        const fourth = await writes.next();
        expect(third.correlation).toBeInstanceOf(Buffer);
        await lamp.publishAsync(`${set}/result`, '{"ok": true}', {
          qos: 1,
          properties: { correlationData: fourth.correlation },
        });
        expect(await d).toEqual({ confirmedBy: "result" });
        let cAnswered = false;
        void c.then(() => (cAnswered = true));
        const marked = await hub.hub.store.lastSeq();
        await lamp.publishAsync(`${prefix}/things/${writeId}/properties/level`, "5", { qos: 1 });
        await reported(marked, 5);
        expect(cAnswered).toBe(false);
        await lamp.publishAsync(`${set}/result`, '{"ok": false, "error": "jammed"}', {
          qos: 1,
          properties: { correlationData: third.correlation },
        });
        expect(String(await c)).toMatch(/jammed$/);
      } finally {
        await lamp.endAsync();
      }
    });

    it("registers a Homie device announced through the broker", async () => {
      const described = `${prefix}/changes/described/urn:homie:sensor-${run}`;
      await device.subscribeAsync(described, { qos: 1 });
      const registered = nextMessage(device, described);
      const topic = `${prefix}/homie/5/sensor-${run}/$description`;
      retained.push(topic);
      const description = {
        homie: "5.0",
        name: "Sensor",
        nodes: { air: { properties: { co2: { datatype: "integer" } } } },
      };
      await device.publishAsync(topic, JSON.stringify(description), { qos: 1, retain: true });
      const change = JSON.parse(await registered) as { thing: string };
      expect(change.thing).toBe(`urn:homie:sensor-${run}`);
      const td = (await (await hub.request(thingPath(change.thing))).json()) as Record<string, unknown>;
      const properties = td.properties as Record<string, { forms: Array<Record<string, unknown>> }>;
      const form = properties.air_co2?.forms[0];
      expect(form?.["mqv:topic"]).toBe(`${prefix}/homie/5/sensor-${run}/air/co2`);
      expect(String(form?.href)).toMatch(new RegExp(`^${hub.mqtt?.url ?? "?"}/`));
    });
  });
}
