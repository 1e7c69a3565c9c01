// The MQTT gateway on the hub's embedded broker (port 0), with mqtt.js clients playing devices:
// reports become Changes acknowledged after commit, bad payloads change nothing and are answered
// on the errors topic, every Change is republished, passwords are required, a taken default port
// is replaced and a taken chosen port is a one-line error; Homie and Home Assistant devices are
// registered and removed.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";
import { connectAsync, type IClientOptions, type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { thingPath } from "../src/api/index.js";
import { EmbeddedBroker } from "../src/api/mqtt/embedded-broker.js";
import { TopicLayout } from "../src/api/mqtt/topic-layout.js";
import { startHub, createLogger } from "../src/cli/index.js";
import { UnavailableError, type Change } from "../src/core/index.js";
import { MemoryMqttCredentialStore, MqttCredentials, loadConfig } from "../src/hub/index.js";
import { receivedWrites } from "./support/mqtt-device-writes.js";
import { changeAfter, minimalTd, registerThing, startTestHub, type TestHub } from "./support/test-hub.js";

const BIN = fileURLToPath(new URL("../bin/things.js", import.meta.url));
const LAMP = "urn:test:mqtt:lamp-1";
/** The longest a test waits for a message it expects. */
const MESSAGE_BOUND_MS = 10_000;

function lampTd(id = LAMP): Record<string, unknown> {
  return minimalTd({
    id,
    title: "Lamp",
    properties: {
      on: { type: "boolean", forms: [{ href: "http://127.0.0.1:1/on" }] },
      brightness: { type: "integer", minimum: 0, maximum: 100, forms: [{ href: "http://127.0.0.1:1/b" }] },
    },
    events: { overheated: { data: { type: "number" }, forms: [{ href: "http://127.0.0.1:1/e" }] } },
  });
}

/** Messages arriving on a client, and a promise for the next one matching a topic (bounded in time). */
function inbox(client: MqttClient) {
  const seen: { topic: string; payload: string }[] = [];
  const waiters: {
    match: (t: string) => boolean;
    resolve: (m: { topic: string; payload: string }) => void;
  }[] = [];
  client.on("message", (topic, payload) => {
    const message = { topic, payload: payload.toString("utf8") };
    const waiter = waiters.find((w) => w.match(topic));
    if (waiter) {
      waiters.splice(waiters.indexOf(waiter), 1);
      waiter.resolve(message);
    } else seen.push(message);
  });
  return {
    next(match: (topic: string) => boolean): Promise<{ topic: string; payload: string }> {
      const index = seen.findIndex((m) => match(m.topic));
      if (index >= 0) return Promise.resolve(seen.splice(index, 1)[0] as { topic: string; payload: string });
      return new Promise((resolve, reject) => {
        const waiter = {
          match,
          resolve: (m: { topic: string; payload: string }) => {
            clearTimeout(timer);
            resolve(m);
          },
        };
        // A waiter that gave up leaves the queue: a later message is for whoever asks next.
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error("no message came"));
        }, MESSAGE_BOUND_MS);
        waiters.push(waiter);
      });
    },
  };
}

async function history(hub: TestHub, id: string): Promise<Array<Record<string, unknown>>> {
  const response = await hub.request(`${thingPath(id)}/history?limit=100`);
  expect(response.status).toBe(200);
  const body = (await response.json()) as { changes?: unknown[] } | unknown[];
  return (Array.isArray(body) ? body : (body.changes ?? [])) as Array<Record<string, unknown>>;
}

function brokerUrl(hub: TestHub): string {
  if (hub.mqtt === undefined) throw new Error("the hub runs without MQTT");
  return hub.mqtt.url;
}

describe("the MQTT gateway on the embedded broker", () => {
  let hub: TestHub;
  let device: MqttClient;
  const clients: MqttClient[] = [];
  const connect = async (options: IClientOptions = {}) => {
    const client = await connectAsync(brokerUrl(hub), {
      reconnectPeriod: 0,
      connectTimeout: 5_000,
      username: "device",
      password: hub.token,
      ...options,
    });
    clients.push(client);
    return client;
  };

  beforeAll(async () => {
    hub = await startTestHub({ mqttPort: 0 });
    const put = await hub.request(thingPath(LAMP), {
      method: "PUT",
      headers: { "content-type": "application/td+json" },
      body: JSON.stringify(lampTd()),
    });
    expect(put.status).toBe(201);
    device = await connect();
  });

  afterAll(async () => {
    // Forced: the broker already closed the connection of the device that overstepped.
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await hub.stop();
  });

  it("records a state report as a reported Change before it acknowledges the QoS 1 publish", async () => {
    await device.publishAsync(`hyperthings/things/${LAMP}/properties/on`, "true", { qos: 1 });
    // The PUBACK came: the Change is committed, so the history API has it without waiting.
    const [latest] = await history(hub, LAMP);
    expect(latest).toMatchObject({
      kind: "reported",
      affordance: "on",
      value: true,
      cause: { actor: "admin", via: "mqtt" },
    });
    await device.publishAsync(
      `hyperthings/things/${LAMP}/properties/brightness`,
      JSON.stringify({ value: 40, at: "2024-05-01T12:00:00.000Z" }),
      { qos: 1 },
    );
    await device.publishAsync(`hyperthings/things/${LAMP}/events/overheated`, "81.5", { qos: 1 });
    const [event, brightness] = await history(hub, LAMP);
    expect(brightness).toMatchObject({ kind: "reported", value: 40, at: "2024-05-01T12:00:00.000Z" });
    expect(event).toMatchObject({ kind: "emitted", affordance: "overheated", value: 81.5 });
  });

  it("changes nothing for a bad payload, and tells the device why on its errors topic", async () => {
    const messages = inbox(device);
    await device.subscribeAsync(`hyperthings/things/${LAMP}/errors`, { qos: 1 });
    const before = await history(hub, LAMP);
    const errors = `hyperthings/things/${LAMP}/errors`;
    const cases: Array<[string, string | Buffer, RegExp]> = [
      ["brightness", "{not json", /JSON/i],
      ["brightness", "150", /brightness does not fit its schema/],
      ["colour", '"red"', /has no property "colour"/],
      ["on", '{"value": true, "at": "yesterday"}', /RFC 3339/],
      // A day February does not have (Date.parse would read it as March 1st).
      ["on", '{"value": true, "at": "2024-02-30T00:00:00Z"}', /RFC 3339/],
      ["brightness", "1e400", /^The JSON is a number out of range at the top level$/],
      // Bytes that are no UTF-8: decoded leniently, they became U+FFFD in the Log.
      ["brightness", Buffer.from([0x22, 0xff, 0xfe, 0x41, 0x22]), /^The payload is not valid UTF-8$/],
    ];
    for (const [property, payload, detail] of cases) {
      await device.publishAsync(`hyperthings/things/${LAMP}/properties/${property}`, payload, { qos: 1 });
      const answer = JSON.parse((await messages.next((t) => t === errors)).payload) as Record<
        string,
        unknown
      >;
      expect(answer).toMatchObject({
        status: 400,
        instance: `hyperthings/things/${LAMP}/properties/${property}`,
      });
      expect(String(answer.detail)).toMatch(detail);
    }
    await device.publishAsync("hyperthings/things/urn:test:nobody/properties/on", "true", { qos: 1 });
    const unknown = inbox(device);
    await device.subscribeAsync("hyperthings/things/urn:test:nobody/errors");
    await device.publishAsync("hyperthings/things/urn:test:nobody/properties/on", "true", { qos: 1 });
    expect(JSON.parse((await unknown.next((t) => t.includes("nobody"))).payload)).toMatchObject({
      status: 404,
    });
    expect(await history(hub, LAMP)).toEqual(before);
    expect(device.connected).toBe(true);
  });

  it("republishes to a client that subscribed after Changes nobody wanted, and follows its unsubscribe", async () => {
    // Before any client subscribed to Changes: the broker remembers this topic as unwanted.
    const topic = `hyperthings/changes/reported/${LAMP}`;
    const report = async (value: number) => {
      const response = await hub.request(`${thingPath(LAMP)}/changes`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ kind: "reported", affordance: "brightness", value }),
      });
      expect(response.status).toBe(201);
    };
    await report(1);
    const watcher = await connect();
    const messages = inbox(watcher);
    await watcher.subscribeAsync(topic, { qos: 0 });
    await report(2);
    expect(JSON.parse((await messages.next((t) => t === topic)).payload)).toMatchObject({ value: 2 });
    // Unsubscribed, then subscribed again by a wildcard filter: still delivered.
    await watcher.unsubscribeAsync(topic);
    await watcher.subscribeAsync(`hyperthings/changes/+/${LAMP}`, { qos: 0 });
    await report(3);
    expect(JSON.parse((await messages.next((t) => t === topic)).payload)).toMatchObject({ value: 3 });
    await watcher.endAsync();
  });

  it("republishes every committed Change on hyperthings/changes/{kind}/{thing}", async () => {
    const watcher = await connect();
    const messages = inbox(watcher);
    await watcher.subscribeAsync("hyperthings/changes/#", { qos: 1 });
    const id = "https://example.com/things/lamp/2";
    const encoded = "https:%2F%2Fexample.com%2Fthings%2Flamp%2F2";
    await hub.request(thingPath(id), {
      method: "PUT",
      headers: { "content-type": "application/td+json" },
      body: JSON.stringify(lampTd(id)),
    });
    const described = await messages.next((t) => t === `hyperthings/changes/described/${encoded}`);
    expect(JSON.parse(described.payload)).toMatchObject({ kind: "described", thing: id });
    const report = await hub.request(`${thingPath(id)}/changes`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ kind: "reported", affordance: "brightness", value: 7 }),
    });
    expect(report.status).toBe(201);
    const { seqs } = (await report.json()) as { seqs: number[] };
    const reported = await messages.next((t) => t === `hyperthings/changes/reported/${encoded}`);
    expect(JSON.parse(reported.payload)).toMatchObject({ seq: seqs[0], value: 7, affordance: "brightness" });
  });

  it("writes to a device on …/set, confirmed by its result or by the value it reports", async () => {
    const gateway = hub.mqtt?.gateway;
    if (gateway === undefined) throw new Error("no gateway");
    const lamp = await connect();
    const set = `hyperthings/things/${LAMP}/properties/brightness/set`;
    lamp.on("message", (topic, payload) => {
      if (topic !== set) return;
      const value = JSON.parse(payload.toString("utf8")) as number;
      // A device that confirms some writes by reports names the write a result answers by its value.
      if (value === 99)
        void lamp.publishAsync(`${set}/result`, '{"ok": false, "error": "too bright", "value": 99}', {
          qos: 1,
        });
      else if (value % 2 === 0) void lamp.publishAsync(`${set}/result`, '{"ok": true}', { qos: 1 });
      else
        void lamp.publishAsync(`hyperthings/things/${LAMP}/properties/brightness`, String(value), { qos: 1 });
    });
    await lamp.subscribeAsync(set, { qos: 1 });
    expect(await gateway.writeProperty(LAMP, "brightness", 30)).toEqual({ confirmedBy: "result" });
    expect(await gateway.writeProperty(LAMP, "brightness", 31)).toEqual({ confirmedBy: "reported" });
    await expect(gateway.writeProperty(LAMP, "brightness", 99)).rejects.toThrow(/too bright/);
  });

  it("writes through the gateway from PUT /things/{id}/properties/{name}, with the form docs/mqtt.md shows, and waits for the device's answer", async () => {
    const id = "urn:test:mqtt:gateway-lamp";
    const set = `hyperthings/things/${id}/properties/on/set`;
    // A TD with no security of its own: the hub's own broker is the hub's to use.
    await registerThing(
      hub,
      id,
      minimalTd({
        id,
        properties: {
          on: { type: "boolean", forms: [{ href: `${brokerUrl(hub)}/${set}`, op: "writeproperty" }] },
        },
      }),
    );
    const lamp = await connect();
    const written: unknown[] = [];
    lamp.on("message", (topic, payload) => {
      if (topic !== set) return;
      const value = JSON.parse(payload.toString("utf8")) as boolean;
      written.push(value);
      const answer = value ? '{"ok": true}' : '{"ok": false, "error": "the relay is jammed"}';
      void lamp.publishAsync(`${set}/result`, answer, { qos: 1 });
    });
    await lamp.subscribeAsync(set, { qos: 1 });
    const write = (body: string) =>
      hub.request(`${thingPath(id)}/properties/on`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body,
      });
    const accepted = await write("true");
    expect(accepted.status, await accepted.clone().text()).toBeLessThan(300);
    // The device's refusal is the write's outcome, not the broker's PUBACK.
    const refused = await write("false");
    expect(refused.status).toBe(502);
    expect(((await refused.json()) as { detail: string }).detail).toMatch(/the relay is jammed/);
    expect(written).toEqual([true, false]);
    const kinds = (await history(hub, id)).map((c) => c.kind);
    expect(kinds.slice(0, 2)).toEqual(["failed", "desired"]);
  });

  it("takes a late answer to a write that timed out as that write's, not as the next write's", async () => {
    const gateway = hub.mqtt?.gateway;
    if (gateway === undefined) throw new Error("no gateway");
    const id = "urn:test:mqtt:late-lamp";
    const set = `hyperthings/things/${id}/properties/level/set`;
    await registerThing(
      hub,
      id,
      minimalTd({
        id,
        properties: {
          level: { type: "integer", forms: [{ href: `${brokerUrl(hub)}/${set}`, op: "writeproperty" }] },
        },
      }),
    );
    const lamp = await connect();
    const writes = receivedWrites(lamp, set);
    await lamp.subscribeAsync([set, `hyperthings/things/${id}/errors`], { qos: 1 });
    const messages = inbox(lamp);
    // Write A (1) gets no answer in time.
    const a = gateway.writeProperty(id, "level", 1, 200);
    expect((await writes.next()).value).toBe(1);
    await expect(a).rejects.toThrow(/no answer to the write of level/);
    // Write B (2) waits while the device's late answer to A comes.
    const before = await hub.hub.store.lastSeq();
    let bAnswered = false;
    const b = hub
      .request(`${thingPath(id)}/properties/level`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: "2",
      })
      .finally(() => (bAnswered = true));
    expect((await writes.next()).value).toBe(2);
    await lamp.publishAsync(`${set}/result`, '{"ok": true}', { qos: 1 });
    // A report after the late answer: once recorded, the hub has taken the answer before it.
    await lamp.publishAsync(`hyperthings/things/${id}/properties/level`, "1", { qos: 1 });
    await changeAfter(hub, before, (c) => c.thing === id && c.kind === "reported" && c.value === 1);
    expect(bAnswered).toBe(false);
    const kinds = async () =>
      (await hub.hub.store.changesAfter(before, 100)).filter((c) => c.thing === id).map((c) => c.kind);
    expect(await kinds()).toEqual(["desired", "reported"]);
    // The device's own answer to B completes it.
    await lamp.publishAsync(`${set}/result`, '{"ok": true}', { qos: 1 });
    expect((await b).status).toBe(204);
    expect(await kinds()).toEqual(["desired", "reported", "completed"]);
    // An answer when no write waits changes nothing, and the device is told why.
    await lamp.publishAsync(`${set}/result`, '{"ok": true}', { qos: 1 });
    const problem = JSON.parse((await messages.next((t) => t.endsWith("/errors"))).payload) as {
      status: number;
      detail: string;
    };
    expect(problem.status).toBe(409);
    expect(problem.detail).toMatch(/answers no write/);
  });

  it("takes a result with a value as the answer to the write of that value", async () => {
    const gateway = hub.mqtt?.gateway;
    if (gateway === undefined) throw new Error("no gateway");
    const id = "urn:test:mqtt:value-lamp";
    await registerThing(hub, id, lampTd(id));
    const set = `hyperthings/things/${id}/properties/brightness/set`;
    const lamp = await connect();
    const writes = receivedWrites(lamp, set);
    await lamp.subscribeAsync(set, { qos: 1 });
    const a = gateway.writeProperty(id, "brightness", 11, 200);
    await writes.next();
    await expect(a).rejects.toThrow(/no answer/);
    // Refused later, while C is awaited first.
    const b = gateway.writeProperty(id, "brightness", 12).catch((error: unknown) => error);
    const c = gateway.writeProperty(id, "brightness", 13);
    await writes.next();
    await writes.next();
    // The device never answers A; its answer to C, by value, passes B, which still waits.
    await lamp.publishAsync(`${set}/result`, '{"ok": true, "value": 13}', { qos: 1 });
    expect(await c).toEqual({ confirmedBy: "result" });
    await lamp.publishAsync(`${set}/result`, '{"ok": false, "error": "no", "value": 12}', { qos: 1 });
    expect(String(await b)).toMatch(/value-lamp: no$/);
  });

  it("refuses clients without a password, and with a wrong one", async () => {
    const anonymous = connectAsync(brokerUrl(hub), { reconnectPeriod: 0, connectTimeout: 5_000 });
    await expect(anonymous).rejects.toMatchObject({ code: 5 });
    const wrong = connectAsync(brokerUrl(hub), {
      reconnectPeriod: 0,
      username: "x",
      password: "not-the-token",
    });
    await expect(wrong).rejects.toMatchObject({ code: 4 });
  });

  it("lets a device in with its own password, to its own topics only", async () => {
    const response = await hub.request(`${thingPath(LAMP)}/mqtt-credentials`, { method: "POST" });
    expect(response.status).toBe(200);
    const credentials = (await response.json()) as { username: string; password: string };
    expect(credentials.username).toBe(LAMP);
    const own = await connect(credentials);
    await own.publishAsync(`hyperthings/things/${LAMP}/properties/brightness`, "12", { qos: 1 });
    const [latest] = await history(hub, LAMP);
    expect(latest).toMatchObject({ value: 12, cause: { actor: `device:${LAMP}`, via: "mqtt" } });
    await expect(own.subscribeAsync("hyperthings/changes/#")).rejects.toThrow(/Subscribe error/);
    const closed = new Promise<void>((resolve) => own.once("close", () => resolve()));
    own.publish("hyperthings/things/urn:test:other/properties/on", "true", { qos: 1 });
    await closed;
    expect((await history(hub, LAMP))[0]).toMatchObject({ value: 12 });
  });

  it("refuses a client id another user's connection holds, and lets a user take over its own", async () => {
    const response = await hub.request(`${thingPath(LAMP)}/mqtt-credentials`, { method: "POST" });
    const credentials = (await response.json()) as { username: string; password: string };
    const holder = await connect({ clientId: "held-client-id" });
    // MQTT would close the holder for the newcomer: a device may not close the hub's clients so.
    await expect(connect({ ...credentials, clientId: "held-client-id" })).rejects.toMatchObject({ code: 2 });
    await holder.subscribeAsync(`hyperthings/changes/+/${LAMP}`, { qos: 0 });
    expect(holder.connected).toBe(true);
    // The same user connecting again with its client id replaces its connection, as MQTT says.
    const closed = new Promise<void>((resolve) => holder.once("close", () => resolve()));
    const again = await connect({ clientId: "held-client-id" });
    await closed;
    expect(again.connected).toBe(true);
  });

  it("disconnects a device when its Thing is removed, and lets it in no more", async () => {
    const id = "urn:test:mqtt:removed-lamp";
    await registerThing(hub, id, lampTd(id));
    const response = await hub.request(`${thingPath(id)}/mqtt-credentials`, { method: "POST" });
    const credentials = (await response.json()) as { username: string; password: string };
    const own = await connect(credentials);
    const closed = new Promise<void>((resolve) => own.once("close", () => resolve()));
    const removed = await hub.request(thingPath(id), { method: "DELETE" });
    expect(removed.status).toBe(204);
    await closed;
    await expect(connect(credentials)).rejects.toMatchObject({ code: 5 });
    // Registered again, the Thing's old device password stays revoked: it is given new ones.
    await registerThing(hub, id, lampTd(id));
    await expect(connect(credentials)).rejects.toMatchObject({ code: 5 });
    const again = await hub.request(`${thingPath(id)}/mqtt-credentials`, { method: "POST" });
    const renewed = (await again.json()) as { username: string; password: string };
    expect(renewed.password).not.toBe(credentials.password);
    const back = await connect(renewed);
    expect(back.connected).toBe(true);
  });

  it("registers a Homie 5 device from its description, records it unreachable while lost, and removes it when cleared", async () => {
    const homie = await connect();
    const description = {
      homie: "5.0",
      name: "Boiler",
      nodes: {
        heater: {
          properties: {
            temperature: { datatype: "float", format: "0:100", unit: "°C" },
            target: { datatype: "integer", settable: true },
          },
        },
      },
    };
    await homie.publishAsync("homie/5/boiler-1/$state", "init", { qos: 1, retain: true });
    // Auto-inventory runs before the broker acknowledges the announcement.
    await homie.publishAsync("homie/5/boiler-1/$description", JSON.stringify(description), {
      qos: 1,
      retain: true,
    });
    const td = (await (await hub.request(thingPath("urn:homie:boiler-1"))).json()) as Record<string, unknown>;
    expect(td).toMatchObject({ title: "Boiler", "@type": ["homie:Device"] });
    const properties = td.properties as Record<string, { forms: Array<Record<string, unknown>> }>;
    expect(properties.heater_temperature?.forms[0]?.["mqv:topic"]).toBe(
      "homie/5/boiler-1/heater/temperature",
    );
    expect(properties.heater_target?.forms[1]).toMatchObject({
      op: "writeproperty",
      "mqv:topic": "homie/5/boiler-1/heater/target/set",
    });

    // Lost (its last will) or disconnected: still registered, recorded unreachable once; back at ready.
    const reachability = async () =>
      (
        (await (
          await hub.request(`/changes?thing=urn%3Ahomie%3Aboiler-1&kind=unreachable,reachable&order=asc`)
        ).json()) as { changes: Change[] }
      ).changes.map((c) => [c.kind, c.value, c.cause.actor]);
    await homie.publishAsync("homie/5/boiler-1/$state", "lost", { qos: 1, retain: true });
    await homie.publishAsync("homie/5/boiler-1/$state", "lost", { qos: 1, retain: true });
    expect((await hub.request(thingPath("urn:homie:boiler-1"))).status).toBe(200);
    await homie.publishAsync("homie/5/boiler-1/$state", "ready", { qos: 1, retain: true });
    await homie.publishAsync("homie/5/boiler-1/$state", "disconnected", { qos: 1, retain: true });
    await homie.publishAsync("homie/5/boiler-1/$state", "sleeping", { qos: 1, retain: true });
    expect(await reachability()).toEqual([
      ["unreachable", "the device dropped off the broker (Homie $state lost)", "mqtt:homie"],
      ["reachable", "the device is back (Homie $state ready)", "mqtt:homie"],
      ["unreachable", "the device disconnected from the broker (Homie $state disconnected)", "mqtt:homie"],
    ]);
    const summary = (await (await hub.request("/graph/summary")).json()) as {
      things: Array<{ id: string; reachable: boolean }>;
    };
    expect(summary.things.find((t) => t.id === "urn:homie:boiler-1")?.reachable).toBe(false);
    await homie.publishAsync("homie/5/boiler-1/$description", "", { qos: 1, retain: true });
    expect((await hub.request(thingPath("urn:homie:boiler-1"))).status).toBe(404);
  });

  it("records a Homie device lost before its description arrives as unreachable once registered", async () => {
    const homie = await connect();
    await homie.publishAsync("homie/5/boiler-2/$state", "lost", { qos: 1, retain: true });
    await homie.publishAsync(
      "homie/5/boiler-2/$description",
      JSON.stringify({ homie: "5.0", name: "Boiler 2", nodes: {} }),
      { qos: 1, retain: true },
    );
    expect((await hub.request(thingPath("urn:homie:boiler-2"))).status).toBe(200);
    const changes = (
      (await (await hub.request(`/changes?thing=urn%3Ahomie%3Aboiler-2&order=asc`)).json()) as {
        changes: Change[];
      }
    ).changes;
    expect(changes.map((c) => c.kind)).toEqual(["described", "unreachable"]);
    await homie.publishAsync("homie/5/boiler-2/$state", "", { qos: 1, retain: true });
    await homie.publishAsync("homie/5/boiler-2/$description", "", { qos: 1, retain: true });
  });

  it("answers a Homie device announcing nonsense on its errors topic, and registers nothing", async () => {
    const homie = await connect();
    const messages = inbox(homie);
    await homie.subscribeAsync("hyperthings/things/urn:homie:junk/errors");
    await homie.publishAsync(
      "homie/5/junk/$description",
      '{"homie":"5.0","nodes":{"n":{"properties":{"p":{}}}}}',
      {
        qos: 1,
      },
    );
    const answer = JSON.parse((await messages.next(() => true)).payload) as {
      detail: string;
      errors: unknown[];
    };
    expect(answer.detail).toMatch(/\/nodes\/n\/properties\/p\/datatype/);
    expect((await hub.request(thingPath("urn:homie:junk"))).status).toBe(404);
  });

  it("registers a Home Assistant discovery entity, and removes it on an empty config", async () => {
    const ha = await connect();
    const config = {
      name: "Kitchen plug",
      stat_t: "kitchen/plug/state",
      cmd_t: "kitchen/plug/set",
      uniq_id: "kp1",
    };
    await ha.publishAsync("homeassistant/switch/kitchen/plug/config", JSON.stringify(config), {
      qos: 1,
      retain: true,
    });
    const response = await hub.request(thingPath("urn:homeassistant:switch:kitchen:plug"));
    expect(response.status).toBe(200);
    const td = (await response.json()) as Record<string, unknown>;
    expect(td).toMatchObject({ title: "Kitchen plug", "@type": ["ha:Entity", "ha:switch"] });
    await ha.publishAsync("homeassistant/switch/kitchen/plug/config", "", { qos: 1, retain: true });
    expect((await hub.request(thingPath("urn:homeassistant:switch:kitchen:plug"))).status).toBe(404);
  });
});

describe("a device flooding the embedded broker with long topics", () => {
  // A hub of its own: the other tests' clients keep what they receive, and would hold the flood.
  it("is not remembered in memory topic by topic", async () => {
    setFlagsFromString("--expose-gc");
    const gc = runInNewContext("gc") as () => void;
    const hub = await startTestHub({ mqttPort: 0 });
    let own: MqttClient | undefined;
    try {
      await registerThing(hub, LAMP, lampTd());
      const response = await hub.request(`${thingPath(LAMP)}/mqtt-credentials`, { method: "POST" });
      const credentials = (await response.json()) as { username: string; password: string };
      const device = await connectAsync(brokerUrl(hub), { reconnectPeriod: 0, ...credentials });
      own = device;
      const flood = async (from: number, count: number) => {
        for (let i = from; i < from + count; i++) {
          const name = `${i}-${"n".repeat(50_000)}`;
          await device.publishAsync(`hyperthings/things/${LAMP}/properties/${name}`, "1", { qos: 1 });
        }
      };
      await flood(0, 10);
      gc();
      const before = process.memoryUsage().heapUsed;
      // 600 topics of 50 KB: 30 MB, had the broker and the gateway remembered them.
      await flood(10, 600);
      gc();
      expect(process.memoryUsage().heapUsed - before).toBeLessThan(10 * 1024 * 1024);
    } finally {
      await own?.endAsync(true);
      await hub.stop();
    }
  });
});

describe("the embedded broker's access and port", () => {
  let blocker: Server;
  let taken: number;

  beforeAll(async () => {
    blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, "127.0.0.1", resolve));
    const address = blocker.address();
    taken = typeof address === "object" && address ? address.port : 0;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => blocker.close(() => resolve()));
  });

  it("lets anonymous clients in when allowed", async () => {
    const hub = await startTestHub({ mqttPort: 0, mqttAnonymous: true });
    try {
      const client = await connectAsync(brokerUrl(hub), { reconnectPeriod: 0 });
      await client.endAsync();
      expect(hub.mqtt?.anonymous).toBe(true);
    } finally {
      await hub.stop();
    }
  });

  it("listens on a free port when the default port is taken, and says so", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-mqtt-"));
    const config = { ...loadConfig({ port: 0, logLevel: "silent", dataDir }, {}), mqttPort: taken };
    expect(config.mqttPortFallback).toBe(true);
    const running = await startHub(config, { logger: createLogger("silent") });
    try {
      const url = new URL(running.mqtt?.url ?? "");
      expect(Number(url.port)).not.toBe(taken);
      expect(running.mqtt?.notice).toBe(
        `MQTT: port ${taken} is taken; the embedded broker listens on 127.0.0.1:${url.port} instead, and will again at the next start (choose a port with --mqtt-port)`,
      );
      const client = await connectAsync(url.href, {
        reconnectPeriod: 0,
        username: "operator",
        password: running.hub.adminToken.token,
      });
      await client.endAsync();
    } finally {
      await running.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("listens on the port it fell back to at its last start, and says so when that one is taken too", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-mqtt-"));
    const config = { ...loadConfig({ port: 0, logLevel: "silent", dataDir }, {}), mqttPort: taken };
    const start = async () => {
      const running = await startHub(config, { logger: createLogger("silent") });
      const port = Number(new URL(running.mqtt?.url ?? "").port);
      const notice = running.mqtt?.notice;
      await running.close();
      return { port, notice };
    };
    const blocker = createServer();
    try {
      const first = await start();
      const second = await start();
      expect(second).toEqual({
        port: first.port,
        notice: `MQTT: port ${taken} is taken; the embedded broker listens on 127.0.0.1:${first.port} instead, as at its last start`,
      });
      await new Promise<void>((resolve) => blocker.listen(first.port, "127.0.0.1", resolve));
      const third = await start();
      expect(third.port).not.toBe(first.port);
      expect(third.notice).toBe(
        `MQTT: port ${taken} is taken, and so is ${first.port}, its port at its last start; the embedded broker listens on 127.0.0.1:${third.port} instead (devices and TDs that name ${first.port} need the new port)`,
      );
      await new Promise((resolve) => blocker.close(resolve));
      expect((await start()).port).toBe(third.port);
    } finally {
      if (blocker.listening) blocker.close();
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("refuses to start on a port that was chosen and is taken", async () => {
    await expect(startTestHub({ mqttPort: taken })).rejects.toThrow(UnavailableError);
    await expect(startTestHub({ mqttPort: taken })).rejects.toThrow(
      `MQTT port ${taken} on 127.0.0.1 is already in use`,
    );
  });

  it("says so in one line from `things serve --mqtt-port` and exits 1", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-mqtt-"));
    try {
      const child = spawn(
        process.execPath,
        [BIN, "serve", "--port", "0", "--data", dataDir, "--mqtt-port", String(taken)],
        {
          env: { ...process.env, HYPERTHINGS_LOG_LEVEL: "silent", HYPERTHINGS_MQTT_URL: "" },
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let stderr = "";
      child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
      const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
      expect(code).toBe(1);
      expect(stderr.trim().split("\n")).toEqual([
        `things: MQTT port ${taken} on 127.0.0.1 is already in use; choose another with --mqtt-port, use a broker of your own with --mqtt-url, or turn MQTT off with --no-mqtt`,
      ]);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("runs without MQTT with --no-mqtt, and then gives no device password", async () => {
    const hub = await startTestHub({ mqtt: false });
    try {
      expect(hub.mqtt).toBeUndefined();
      await registerThing(hub, LAMP, lampTd());
      const response = await hub.request(`${thingPath(LAMP)}/mqtt-credentials`, { method: "POST" });
      expect(response.status).toBe(409);
      expect(((await response.json()) as { detail: string }).detail).toMatch(/--no-mqtt/);
    } finally {
      await hub.stop();
    }
  });
});

describe("a Homie device on the embedded broker, end to end", () => {
  it("is discovered, its readings arrive as Changes, and a write from the hub reaches it", async () => {
    const hub = await startTestHub({ mqttPort: 0, observe: true });
    const device = await connectAsync(brokerUrl(hub), {
      reconnectPeriod: 0,
      username: "boiler",
      password: hub.token,
    });
    try {
      const messages = inbox(device);
      await device.subscribeAsync("hyperthings/changes/reported/urn:homie:boiler-3", { qos: 1 });
      await device.subscribeAsync("homie/5/boiler-3/heater/target/set", { qos: 1 });
      await device.publishAsync("homie/5/boiler-3/heater/temperature", "21.5", { qos: 1, retain: true });
      const description = {
        homie: "5.0",
        nodes: {
          heater: {
            properties: {
              temperature: { datatype: "float" },
              target: { datatype: "integer", settable: true },
            },
          },
        },
      };
      await device.publishAsync("homie/5/boiler-3/$description", JSON.stringify(description), {
        qos: 1,
        retain: true,
      });
      // The hub observes the device through its MQTT binding, with the broker password it was given.
      const reported = await messages.next((t) => t.startsWith("hyperthings/changes/reported/"));
      expect(JSON.parse(reported.payload)).toMatchObject({
        kind: "reported",
        affordance: "heater_temperature",
        value: 21.5,
        // Retained: the broker sent it because the hub subscribed, a read (docs/changes.md).
        cause: { actor: "hub:observer", via: "read:mqtt" },
      });
      const write = await hub.request(`${thingPath("urn:homie:boiler-3")}/properties/heater_target`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: "5",
      });
      expect(write.status).toBe(204);
      expect((await messages.next((t) => t === "homie/5/boiler-3/heater/target/set")).payload).toBe("5");
    } finally {
      await device.endAsync(true);
      await hub.stop();
    }
  });
});

describe("Homie and Home Assistant devices with credentials of their own", () => {
  let hub: TestHub;
  const clients: MqttClient[] = [];
  const connectWith = async (credentials: { username: string; password: string }) => {
    const client = await connectAsync(brokerUrl(hub), { reconnectPeriod: 0, ...credentials });
    clients.push(client);
    return client;
  };
  const issue = async (body: Record<string, unknown>, auth?: string) =>
    hub.request("/mqtt-credentials", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
      ...(auth === undefined ? {} : { auth }),
    });
  const credentialsFor = async (body: Record<string, unknown>) => {
    const response = await issue(body);
    expect(response.status, await response.clone().text()).toBe(200);
    return (await response.json()) as {
      username: string;
      password: string;
      publish: string[];
      subscribe: string[];
    };
  };
  /** Publishing outside its topics closes the client's connection, and the message goes nowhere. */
  const refusedPublish = async (client: MqttClient, topic: string, payload: string) => {
    const closed = new Promise<void>((resolve) => client.once("close", () => resolve()));
    client.publish(topic, payload, { qos: 1 });
    await closed;
  };
  const registered = async (id: string) => (await hub.request(thingPath(id))).status;

  beforeAll(async () => {
    hub = await startTestHub({ mqttPort: 0 });
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await hub.stop();
  });

  it("lets a Homie device announce itself with them, on its own topics only", async () => {
    const credentials = await credentialsFor({ homie: "boiler-7" });
    expect(credentials).toMatchObject({
      username: "homie:boiler-7",
      publish: ["homie/5/boiler-7/#"],
    });
    expect(credentials.password).not.toBe(hub.token);
    const device = await connectWith(credentials);
    const description = JSON.stringify({
      homie: "5.0",
      nodes: { heater: { properties: { target: { datatype: "integer", settable: true } } } },
    });
    const before = await hub.hub.store.lastSeq();
    await device.publishAsync("homie/5/boiler-7/$description", description, { qos: 1, retain: true });
    await changeAfter(hub, before, (c) => c.thing === "urn:homie:boiler-7" && c.kind === "described");
    await device.subscribeAsync("homie/5/boiler-7/heater/target/set", { qos: 1 });
    await device.subscribeAsync(`hyperthings/things/urn:homie:boiler-7/errors`, { qos: 0 });
    for (const filter of [
      "homie/5/#",
      "homie/5/+/heater/target/set",
      "homie/5/boiler-8/#",
      "hyperthings/changes/#",
      "#",
    ])
      await expect(device.subscribeAsync(filter), filter).rejects.toThrow(/Subscribe error/);
    // Another device's topics, and the hub's, are not its to publish on.
    await refusedPublish(device, "homie/5/boiler-8/$description", description);
    expect(await registered("urn:homie:boiler-8")).toBe(404);
    const again = await connectWith(credentials);
    await refusedPublish(again, "hyperthings/things/urn:homie:boiler-7/properties/heater_target", "5");
    const third = await connectWith(credentials);
    await refusedPublish(third, "homeassistant/sensor/x/y/config", '{"state_topic": "x/y"}');
    expect(await registered("urn:homeassistant:sensor:x:y")).toBe(404);
  });

  it("lets a Home Assistant device announce the entities of its node, and publish under its node id only", async () => {
    const credentials = await credentialsFor({ homeassistant: "kitchen" });
    expect(credentials).toMatchObject({
      username: "homeassistant:kitchen",
      publish: ["homeassistant/+/kitchen/+/config", "kitchen/#"],
    });
    const device = await connectWith(credentials);
    const before = await hub.hub.store.lastSeq();
    await device.publishAsync(
      "homeassistant/sensor/kitchen/temperature/config",
      JSON.stringify({ name: "Temperature", state_topic: "kitchen/temperature" }),
      { qos: 1, retain: true },
    );
    await changeAfter(
      hub,
      before,
      (c) => c.thing === "urn:homeassistant:sensor:kitchen:temperature" && c.kind === "described",
    );
    await device.publishAsync("kitchen/temperature", "21.5", { qos: 1 });
    await device.subscribeAsync(["kitchen/+/set", "homeassistant/status"], { qos: 1 });
    await device.subscribeAsync("hyperthings/things/urn:homeassistant:sensor:kitchen:temperature/errors");
    for (const filter of [
      "homeassistant/#",
      "homeassistant/sensor/+/+/config",
      "hall/#",
      "hyperthings/things/urn:homeassistant:sensor:hall:temperature/errors",
      "hyperthings/things/+/errors",
    ])
      await expect(device.subscribeAsync(filter), filter).rejects.toThrow(/Subscribe error/);
    await refusedPublish(
      device,
      "homeassistant/sensor/hall/temperature/config",
      JSON.stringify({ state_topic: "hall/temperature" }),
    );
    expect(await registered("urn:homeassistant:sensor:hall:temperature")).toBe(404);
    const again = await connectWith(credentials);
    await refusedPublish(again, "homie/5/boiler-7/$state", "lost");
  });

  it("refuses ids that are none, node ids over the hub's topics, and anyone but the admin", async () => {
    for (const body of [
      { homie: "Boiler_7" },
      { homeassistant: "a/b" },
      { homeassistant: "hyperthings" },
      { homeassistant: "homie" },
      { homie: "x", homeassistant: "y" },
      {},
    ]) {
      const response = await issue(body);
      expect(response.status, JSON.stringify(body)).toBe(400);
      expect(response.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    }
    const read = await hub.request("/mqtt-credentials", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ homie: "boiler-9" }),
      auth: false,
    });
    expect(read.status).toBe(401);
    // A user name of the form with a password of another device opens nothing.
    const other = await credentialsFor({ homie: "boiler-9" });
    await expect(
      connectAsync(brokerUrl(hub), {
        reconnectPeriod: 0,
        username: "homie:boiler-10",
        password: other.password,
      }),
    ).rejects.toMatchObject({ code: 4 });
  });
});

describe("a Homie device after the admin token changed", () => {
  it("is observed again once it announces itself: the hub's password for its own broker follows the token", async () => {
    const hub = await startTestHub({ mqttPort: 0, observe: true });
    const device = await connectAsync(brokerUrl(hub), {
      reconnectPeriod: 0,
      username: "boiler",
      password: hub.token,
    });
    const id = "urn:homie:boiler-5";
    const description = JSON.stringify({
      homie: "5.0",
      nodes: { heater: { properties: { temperature: { datatype: "float" } } } },
    });
    const reading = (after: number, value: number) =>
      changeAfter(hub, after, (c) => c.thing === id && c.kind === "reported" && c.value === value);
    try {
      await device.publishAsync("homie/5/boiler-5/heater/temperature", "20", { qos: 1, retain: true });
      await device.publishAsync("homie/5/boiler-5/$description", description, { qos: 1, retain: true });
      await reading(0, 20);
      // What a hub restarted with another admin token holds: the password of the token before.
      const before = await hub.hub.store.lastSeq();
      const stale = await hub.request(`${thingPath(id)}/credentials`, {
        method: "PUT",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ username: "hub-before", password: "the-admin-token-before" }),
      });
      expect(stale.status).toBe(200);
      await changeAfter(hub, before, (c) => c.thing === id && c.kind === "failed");
      // The device comes back and announces itself as it did (the same TD); its readings are observed.
      const announced = await hub.hub.store.lastSeq();
      await device.publishAsync("homie/5/boiler-5/$description", description, { qos: 1, retain: true });
      await device.publishAsync("homie/5/boiler-5/heater/temperature", "21", { qos: 1, retain: true });
      expect((await reading(announced, 21)).cause.actor).toBe("hub:observer");
    } finally {
      await device.endAsync(true);
      await hub.stop();
    }
  });
});

describe("a lost Homie device, observed", () => {
  it("stays unreachable when the hub observes it anew: its broker taking a subscription is not the device back", async () => {
    const hub = await startTestHub({ mqttPort: 0, observe: true });
    const device = await connectAsync(brokerUrl(hub), {
      reconnectPeriod: 0,
      username: "boiler",
      password: hub.token,
    });
    const id = "urn:homie:boiler-4";
    const description = (properties: Record<string, unknown>) =>
      JSON.stringify({ homie: "5.0", name: "Boiler", nodes: { heater: { properties } } });
    const reading = async (after: number, value: number) =>
      changeAfter(hub, after, (c) => c.thing === id && c.kind === "reported" && c.value === value);
    try {
      await device.publishAsync("homie/5/boiler-4/heater/temperature", "20", { qos: 1, retain: true });
      await device.publishAsync(
        "homie/5/boiler-4/$description",
        description({ temperature: { datatype: "float" } }),
        { qos: 1, retain: true },
      );
      await reading(0, 20);
      await device.publishAsync("homie/5/boiler-4/$state", "lost", { qos: 1, retain: true });
      // A new property: the observer starts over on the new TD, from the Log, as at a hub restart.
      await device.publishAsync(
        "homie/5/boiler-4/$description",
        description({ temperature: { datatype: "float" }, pressure: { datatype: "float" } }),
        { qos: 1, retain: true },
      );
      await vi.waitFor(
        () => expect(hub.hub.observation?.status().find((s) => s.thing === id)?.observing).toHaveLength(2),
        { timeout: 15_000, interval: 20 },
      );
      // Whatever the observer recorded on connecting is before a reading it takes after.
      const last = await reading(
        await hub.hub.store.lastSeq(),
        await device
          .publishAsync("homie/5/boiler-4/heater/temperature", "22", { qos: 1, retain: true })
          .then(() => 22),
      );
      const changes = (
        (await (await hub.request(`/changes?thing=${encodeURIComponent(id)}&order=asc`)).json()) as {
          changes: Change[];
        }
      ).changes.filter((c) => c.seq <= last.seq && (c.kind === "reachable" || c.kind === "unreachable"));
      expect(changes.map((c) => [c.kind, c.cause.actor])).toEqual([["unreachable", "mqtt:homie"]]);
    } finally {
      await device.endAsync(true);
      await hub.stop();
    }
  });
});

describe("a TD observing everything on the hub's own broker", () => {
  it("records the devices' messages, not the Changes the hub publishes there (no Change inside a Change)", async () => {
    const hub = await startTestHub({ mqttPort: 0, observe: true });
    const device = await connectAsync(brokerUrl(hub), {
      reconnectPeriod: 0,
      username: "d",
      password: hub.token,
    });
    try {
      const id = "urn:test:eavesdropper";
      const after = await hub.hub.store.lastSeq();
      await registerThing(
        hub,
        id,
        minimalTd({
          id,
          securityDefinitions: { basic_sc: { scheme: "basic" } },
          security: "basic_sc",
          events: {
            anything: { forms: [{ href: brokerUrl(hub), "mqv:filter": "#", op: "subscribeevent" }] },
          },
        }),
        { username: "eavesdropper", password: hub.token },
      );
      const emitted = (n: number) => (c: { thing: string; kind: string; value?: unknown }) =>
        c.thing === id && c.kind === "emitted" && (c.value as { n?: number } | undefined)?.n === n;
      // Published until the subscription is up (it is made once the TD is registered).
      const timer = setInterval(() => void device.publishAsync("dev/x", '{"n":1}', { qos: 1 }), 100);
      const first = await changeAfter(hub, after, emitted(1)).finally(() => clearInterval(timer));
      // Each emitted Change is published on hyperthings/changes/emitted/…, which "#" matches too.
      await device.publishAsync("dev/x", '{"n":2}', { qos: 1 });
      const second = await changeAfter(hub, first.seq, emitted(2));
      const recorded = (await hub.hub.store.changesAfter(after, 1_000)).filter(
        (c) => c.thing === id && c.kind === "emitted" && c.seq <= second.seq,
      );
      expect(recorded.map((c) => (c.value as { n?: unknown }).n).every((n) => n === 1 || n === 2)).toBe(true);
      expect(recorded.some((c) => JSON.stringify(c.value).includes('"hlc"'))).toBe(false);
    } finally {
      await device.endAsync();
      await hub.stop();
    }
  });
});

describe("a TD naming the hub's own broker, with no credentials of its own there", () => {
  let hub: TestHub;
  let device: MqttClient;
  beforeAll(async () => {
    hub = await startTestHub({ mqttPort: 0, observe: true });
    device = await connectAsync(brokerUrl(hub), { reconnectPeriod: 0, username: "d", password: hub.token });
  });
  afterAll(async () => {
    await device?.endAsync();
    await hub?.stop();
  });

  it("is not observed on topics outside its own: the hub's admin token does not subscribe to # for it", async () => {
    const id = "urn:test:uninvited-eavesdropper";
    const after = await hub.hub.store.lastSeq();
    await registerThing(
      hub,
      id,
      minimalTd({
        id,
        events: { anything: { forms: [{ href: brokerUrl(hub), "mqv:filter": "#", op: "subscribeevent" }] } },
      }),
    );
    const refused = await changeAfter(hub, after, (c) => c.thing === id && c.kind === "unreachable");
    expect(refused.value).toMatch(
      `the hub's own broker opens only hyperthings/things/${id}/# to a Thing without credentials of its own there, not #`,
    );
    await device.publishAsync("dev/secret", '{"n":1}', { qos: 1 });
    await hub.hub.commands?.recorded(id);
    const recorded = (await hub.hub.store.changesAfter(after, 1_000)).filter((c) => c.thing === id);
    expect(recorded.map((c) => c.kind)).not.toContain("emitted");
  });

  it("cannot write another Thing's command topic, nor publish elsewhere, through the hub", async () => {
    const victim = "urn:test:victim-lamp";
    const id = "urn:test:meddler";
    const set = `hyperthings/things/${victim}/properties/on/set`;
    await registerThing(
      hub,
      victim,
      minimalTd({
        id: victim,
        properties: { on: { type: "boolean", forms: [{ href: "http://127.0.0.1:1/on" }] } },
      }),
    );
    await registerThing(
      hub,
      id,
      minimalTd({
        id,
        properties: {
          on: { type: "boolean", forms: [{ href: `${brokerUrl(hub)}/${set}`, op: "writeproperty" }] },
        },
        actions: { power: { forms: [{ href: `${brokerUrl(hub)}/cmnd/lamp/POWER` }] } },
      }),
    );
    const received: string[] = [];
    device.on("message", (topic) => received.push(topic));
    await device.subscribeAsync([set, "cmnd/#"], { qos: 1 });
    const write = await hub.request(`${thingPath(id)}/properties/on`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: "true",
    });
    expect(write.status).toBe(502);
    const problem = (await write.json()) as { detail: string; device: { reason: string } };
    expect(problem.device.reason).toBe("address-denied");
    expect(problem.detail).toContain(`not ${set}`);
    const invoke = await hub.request(`${thingPath(id)}/actions/power`, { method: "POST" });
    expect(invoke.status).toBe(502);
    expect(((await invoke.json()) as { detail: string }).detail).toContain("not cmnd/lamp/POWER");
    // A message of the hub's own, after them: had either gone out, it would have come first.
    await device.subscribeAsync("cmnd/marker", { qos: 1 });
    await device.publishAsync("cmnd/marker", "x", { qos: 1 });
    await vi.waitFor(() => expect(received).toContain("cmnd/marker"), { timeout: 5_000 });
    expect(received).toEqual(["cmnd/marker"]);
  });
});

describe("the embedded broker's retained messages", () => {
  const silent = createLogger("silent");
  const retainingBroker = (
    maxRetained: { topics: number; bytes: number },
    maxRetainedPerClient?: { topics: number; bytes: number },
  ) =>
    EmbeddedBroker.start({
      host: "127.0.0.1",
      port: 0,
      portFallback: false,
      anonymous: true,
      authenticate: () => undefined,
      adminToken: "not-used",
      credentials: new MqttCredentials(new MemoryMqttCredentialStore(), () => new Date(), silent),
      thingExists: () => Promise.resolve(true),
      layout: new TopicLayout("hyperthings"),
      roots: { prefix: "hyperthings", homieRoot: "homie", homeAssistantPrefix: "homeassistant" },
      maxPacketBytes: 4096,
      maxRetained,
      ...(maxRetainedPerClient === undefined ? {} : { maxRetainedPerClient }),
      logger: createLogger("silent"),
    });

  /**
   * The topics of the retained messages a new subscriber to `x/#` gets, once `done` says enough came:
   * retained messages come in the order they were stored, so any kept before it have come too.
   */
  async function retainedTopics(
    client: MqttClient,
    done: (got: string[]) => boolean,
    filter = "x/#",
  ): Promise<string[]> {
    const got: string[] = [];
    const arrived = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`only ${got.join(", ")} came`)), MESSAGE_BOUND_MS);
      client.on("message", (topic) => {
        got.push(topic);
        if (done(got)) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    await client.subscribeAsync(filter, { qos: 1 });
    await arrived;
    return got;
  }

  it("keeps at most its bound of retained messages, and delivers the others without retaining them", async () => {
    const broker = await retainingBroker({ topics: 3, bytes: 1_000 });
    const clients: MqttClient[] = [];
    try {
      const device = await connectAsync(broker.url, { reconnectPeriod: 0 });
      clients.push(device);
      for (let i = 0; i < 5; i++) await device.publishAsync(`x/${i}`, `v${i}`, { qos: 1, retain: true });
      // Clearing one makes room for another; a large one does not fit the byte bound.
      await device.publishAsync("x/0", "", { qos: 1, retain: true });
      await device.publishAsync("x/5", "v5", { qos: 1, retain: true });
      await device.publishAsync("x/6", "y".repeat(1_500), { qos: 1, retain: true });
      const later = await connectAsync(broker.url, { reconnectPeriod: 0 });
      clients.push(later);
      const expected = ["x/1", "x/2", "x/5"];
      const got = await retainedTopics(later, (topics) => expected.every((t) => topics.includes(t)));
      expect(got.sort()).toEqual(["x/1", "x/2", "x/5"]);
    } finally {
      await Promise.all(clients.map((c) => c.endAsync(true)));
      await broker.close();
    }
  });

  it("counts a retained message's topic in its byte bound, not only its payload", async () => {
    const broker = await retainingBroker({ topics: 100, bytes: 1_000 });
    const clients: MqttClient[] = [];
    try {
      const device = await connectAsync(broker.url, { reconnectPeriod: 0 });
      clients.push(device);
      // A 1-byte payload on a 1,500-byte topic: aedes would keep the topic, 1,500 bytes of memory.
      const long = `x/${"t".repeat(1_500)}`;
      await device.publishAsync(long, "1", { qos: 1, retain: true });
      await device.publishAsync("x/short", "1", { qos: 1, retain: true });
      const later = await connectAsync(broker.url, { reconnectPeriod: 0 });
      clients.push(later);
      // Once the short one is here, the long one would have come first.
      expect(await retainedTopics(later, (topics) => topics.includes("x/short"))).toEqual(["x/short"]);
    } finally {
      await Promise.all(clients.map((c) => c.endAsync(true)));
      await broker.close();
    }
  });
  it("keeps a share of its retained messages for each client, so that one cannot fill the others'", async () => {
    const broker = await retainingBroker({ topics: 4, bytes: 10_000 }, { topics: 3, bytes: 10_000 });
    const clients: MqttClient[] = [];
    try {
      const greedy = await connectAsync(broker.url, { reconnectPeriod: 0, username: "greedy" });
      const other = await connectAsync(broker.url, { reconnectPeriod: 0, username: "other" });
      clients.push(greedy, other);
      const messages = inbox(greedy);
      await greedy.subscribeAsync("hyperthings/things/greedy/errors", { qos: 0 });
      for (let i = 0; i < 5; i++)
        await greedy.publishAsync(`hyperthings/things/greedy/state/${i}`, `v${i}`, { qos: 1, retain: true });
      // The other device's retained message is kept: the greedy one had only its own share.
      await other.publishAsync("hyperthings/things/other/state/0", "w", { qos: 1, retain: true });
      const later = await connectAsync(broker.url, { reconnectPeriod: 0 });
      clients.push(later);
      const got = await retainedTopics(
        later,
        (topics) => topics.includes("hyperthings/things/other/state/0"),
        "hyperthings/things/+/state/#",
      );
      expect(got.sort()).toEqual([
        "hyperthings/things/greedy/state/0",
        "hyperthings/things/greedy/state/1",
        "hyperthings/things/greedy/state/2",
        "hyperthings/things/other/state/0",
      ]);
      // The greedy device was told, for each message not kept.
      for (const i of [3, 4]) {
        const problem = JSON.parse((await messages.next((t) => t.endsWith("/errors"))).payload) as {
          status: number;
          detail: string;
          instance: string;
        };
        expect(problem).toMatchObject({ status: 409, instance: `hyperthings/things/greedy/state/${i}` });
        expect(problem.detail).toMatch(/at most 3 retained messages .*; the anonymous user greedy holds 3 /);
      }
      // Clearing one of its own makes room in its share again.
      await greedy.publishAsync("hyperthings/things/greedy/state/0", "", { qos: 1, retain: true });
      await greedy.publishAsync("hyperthings/things/greedy/state/4", "v4", { qos: 1, retain: true });
      const again = await connectAsync(broker.url, { reconnectPeriod: 0 });
      clients.push(again);
      const kept = await retainedTopics(
        again,
        (topics) => topics.includes("hyperthings/things/greedy/state/4"),
        "hyperthings/things/greedy/#",
      );
      expect(kept.sort()).toEqual([
        "hyperthings/things/greedy/state/1",
        "hyperthings/things/greedy/state/2",
        "hyperthings/things/greedy/state/4",
      ]);
    } finally {
      await Promise.all(clients.map((c) => c.endAsync(true)));
      await broker.close();
    }
  });
  it("takes a device's share from HYPERTHINGS_MQTT_RETAINED_PER_CLIENT, and tells the device on its errors topic", async () => {
    const hub = await startTestHub({ mqttPort: 0 }, { HYPERTHINGS_MQTT_RETAINED_PER_CLIENT: "2" });
    const clients: MqttClient[] = [];
    try {
      const id = "urn:test:mqtt:retaining-lamp";
      await registerThing(hub, id, lampTd(id));
      const response = await hub.request(`${thingPath(id)}/mqtt-credentials`, { method: "POST" });
      const credentials = (await response.json()) as { username: string; password: string };
      const device = await connectAsync(brokerUrl(hub), { reconnectPeriod: 0, ...credentials });
      clients.push(device);
      const messages = inbox(device);
      await device.subscribeAsync(`hyperthings/things/${id}/errors`, { qos: 0 });
      for (const name of ["a", "b", "c"])
        await device.publishAsync(`hyperthings/things/${id}/state/${name}`, "1", { qos: 1, retain: true });
      const problem = JSON.parse((await messages.next((t) => t.endsWith("/errors"))).payload) as {
        status: number;
        detail: string;
        instance: string;
      };
      expect(problem).toMatchObject({ status: 409, instance: `hyperthings/things/${id}/state/c` });
      expect(problem.detail).toContain(`at most 2 retained messages`);
      expect(problem.detail).toContain(`the device ${id} holds 2`);
    } finally {
      await Promise.all(clients.map((c) => c.endAsync(true)));
      await hub.stop();
    }
  });
});
