// The lifecycle of the MQTT credentials the hub issues for its embedded broker, with real MQTT
// clients: listed, revoked by an admin or with their Thing (removed, expired), connected clients
// closed at once and refused from then on, other devices untouched, and all of it kept across a
// restart. Nothing of it reaches the Log, and no password is ever listed.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectAsync, type IClientOptions, type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import { deviceCredentials } from "../src/api/mqtt/device-credentials.js";
import { changeAfter, minimalTd, registerThing, startTestHub, type TestHub } from "./support/test-hub.js";

interface Credentials {
  username: string;
  password: string;
  publish: string[];
  subscribe: string[];
  issuedAt?: string;
  issuedBy?: string;
}

interface Listed {
  username: string;
  kind: string;
  publish: string[];
  subscribe: string[];
  issuedAt?: string;
  issuedBy?: string;
  lastUsedAt?: string;
  revokedAt?: string;
  revokedBy?: string;
  revokedBecause?: string;
  password?: unknown;
  generation?: unknown;
}

const READ_TOKEN = "read-only-token-for-tests";
const HOMIE_DESCRIPTION = JSON.stringify({
  homie: "5.0",
  nodes: { heater: { properties: { target: { datatype: "integer", settable: true } } } },
});

function lampTd(id: string): Record<string, unknown> {
  return minimalTd({
    id,
    properties: { on: { type: "boolean", forms: [{ href: "http://192.0.2.1/on" }] } },
  });
}

/** Issuing, listing, revoking, and connecting with what was issued, on one hub. */
function credentialsOn(hub: () => TestHub, clients: MqttClient[]) {
  const connect = async (
    credentials: { username: string; password: string },
    options: IClientOptions = {},
  ) => {
    const client = await connectAsync(hub().mqtt?.url ?? "", {
      reconnectPeriod: 0,
      connectTimeout: 5_000,
      ...credentials,
      ...options,
    });
    clients.push(client);
    return client;
  };
  const closed = (client: MqttClient) =>
    new Promise<void>((resolve) => client.once("close", () => resolve()));
  const issue = async (body: Record<string, string>): Promise<Credentials> => {
    const response = await hub().request("/mqtt-credentials", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(body),
    });
    expect(response.status, await response.clone().text()).toBe(200);
    return (await response.json()) as Credentials;
  };
  const issueFor = async (thing: string): Promise<Credentials> => {
    const response = await hub().request(`${thingPath(thing)}/mqtt-credentials`, { method: "POST" });
    expect(response.status, await response.clone().text()).toBe(200);
    return (await response.json()) as Credentials;
  };
  const revoke = (username: string, auth?: string) =>
    hub().request(`/mqtt-credentials/${encodeURIComponent(username)}`, {
      method: "DELETE",
      ...(auth === undefined ? {} : { auth }),
    });
  const list = async (): Promise<Listed[]> => {
    const response = await hub().request("/mqtt-credentials");
    expect(response.status, await response.clone().text()).toBe(200);
    return ((await response.json()) as { credentials: Listed[] }).credentials;
  };
  const listed = async (username: string) => (await list()).find((c) => c.username === username);
  return { connect, closed, issue, issueFor, revoke, list, listed };
}

describe("MQTT credentials on the embedded broker", () => {
  let hub: TestHub;
  const clients: MqttClient[] = [];
  const { connect, closed, issue, issueFor, revoke, list, listed } = credentialsOn(() => hub, clients);
  let now = Date.now();

  beforeAll(async () => {
    // The hub's clock is the test's: a registration expires when the test moves time on.
    hub = await startTestHub(
      { mqttPort: 0, expirySweepMs: 20 },
      { HYPERTHINGS_READ_TOKEN: READ_TOKEN },
      { clock: () => new Date(now) },
    );
  });

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await hub.stop();
  });

  it("revokes one credential: its connected client is closed, it is refused again, other devices go on", async () => {
    const boiler = await issue({ homie: "boiler-1" });
    const kitchen = await issue({ homeassistant: "kitchen" });
    await registerThing(hub, "urn:test:cred:lamp", lampTd("urn:test:cred:lamp"));
    const lamp = await issueFor("urn:test:cred:lamp");
    const boilerClient = await connect(boiler);
    const kitchenClient = await connect(kitchen);
    const lampClient = await connect(lamp);
    await boilerClient.subscribeAsync("homie/5/boiler-1/#", { qos: 1 });

    const gone = closed(boilerClient);
    const response = await revoke("homie:boiler-1");
    expect(response.status).toBe(204);
    // Closed before the answer came: the revocation took effect at once.
    await gone;
    await expect(connect(boiler)).rejects.toMatchObject({ code: 5 });

    // The others are still connected, and may still publish (a QoS 1 publish is acknowledged).
    expect(kitchenClient.connected).toBe(true);
    expect(lampClient.connected).toBe(true);
    await kitchenClient.publishAsync("kitchen/temperature", "21", { qos: 1 });
    await lampClient.publishAsync("hyperthings/things/urn:test:cred:lamp/properties/on", "true", { qos: 1 });

    const entry = await listed("homie:boiler-1");
    expect(entry).toMatchObject({
      kind: "homie",
      publish: ["homie/5/boiler-1/#"],
      issuedBy: "admin",
      revokedBy: "admin",
      revokedBecause: "revoked by an admin",
    });
    expect(entry?.revokedAt).toBeDefined();
    expect(entry?.lastUsedAt).toBeDefined();
    expect(await listed("homeassistant:kitchen")).toMatchObject({
      kind: "homeassistant",
      publish: ["homeassistant/+/kitchen/+/config", "kitchen/#"],
      issuedBy: "admin",
    });
    expect(await listed("urn:test:cred:lamp")).toMatchObject({
      kind: "thing",
      publish: ["hyperthings/things/urn:test:cred:lamp/#"],
      subscribe: ["hyperthings/things/urn:test:cred:lamp/#", "hyperthings/changes/+/urn:test:cred:lamp"],
    });
    for (const username of ["homeassistant:kitchen", "urn:test:cred:lamp"])
      expect((await listed(username))?.revokedAt, username).toBeUndefined();
    // Never a password, nor what one is derived from.
    for (const credential of await list()) {
      expect(credential.password).toBeUndefined();
      expect(credential.generation).toBeUndefined();
    }
  });

  it("gives the same credentials when asked again, and new ones after a revocation", async () => {
    const first = await issue({ homie: "boiler-2" });
    const again = await issue({ homie: "boiler-2" });
    expect(again).toEqual(first);
    expect((await revoke("homie:boiler-2")).status).toBe(204);
    const renewed = await issue({ homie: "boiler-2" });
    expect(renewed.password).not.toBe(first.password);
    // The revoked password is no password of this user name any more.
    await expect(connect(first)).rejects.toMatchObject({ code: 4 });
    expect((await connect(renewed)).connected).toBe(true);
    expect((await listed("homie:boiler-2"))?.revokedAt).toBeUndefined();
  });

  it("answers 404 problems for a credential never issued and one revoked already, 401 and 403 to others", async () => {
    const never = await revoke("homie:never-issued");
    expect(never.status).toBe(404);
    expect(never.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(((await never.json()) as { detail: string }).detail).toMatch(/issued no MQTT credentials/);
    await issue({ homie: "boiler-3" });
    expect((await revoke("homie:boiler-3")).status).toBe(204);
    const twice = await revoke("homie:boiler-3");
    expect(twice.status).toBe(404);
    expect(((await twice.json()) as { detail: string }).detail).toMatch(/revoked already/);
    expect((await hub.request("/mqtt-credentials", { auth: false })).status).toBe(401);
    expect((await revoke("homeassistant:kitchen", "not-a-token")).status).toBe(401);
    expect((await hub.request("/mqtt-credentials", { auth: READ_TOKEN })).status).toBe(403);
    expect((await revoke("homeassistant:kitchen", READ_TOKEN)).status).toBe(403);
    expect((await listed("homeassistant:kitchen"))?.revokedAt).toBeUndefined();
  });

  it("revokes a Thing's device credentials when the Thing is removed, for good: registered again, it needs new ones", async () => {
    const id = "urn:test:cred:removed";
    await registerThing(hub, id, lampTd(id));
    const credentials = await issueFor(id);
    const client = await connect(credentials);
    const gone = closed(client);
    expect((await hub.request(thingPath(id), { method: "DELETE" })).status).toBe(204);
    await gone;
    await registerThing(hub, id, lampTd(id));
    await expect(connect(credentials)).rejects.toMatchObject({ code: 5 });
    expect(await listed(id)).toMatchObject({
      revokedBy: "admin",
      revokedBecause: `its Thing ${id} was removed`,
    });
  });

  it("revokes a Homie device's credentials when an admin removes its Thing, not when the device removes it itself", async () => {
    const credentials = await issue({ homie: "boiler-4" });
    const device = await connect(credentials);
    const id = "urn:homie:boiler-4";
    let before = await hub.hub.store.lastSeq();
    await device.publishAsync("homie/5/boiler-4/$description", HOMIE_DESCRIPTION, { qos: 1, retain: true });
    await device.publishAsync("homie/5/boiler-4/$state", "ready", { qos: 1, retain: true });
    await changeAfter(hub, before, (c) => c.thing === id && c.kind === "described");
    // The device clears its topics: it removes its Thing itself (Homie 5), and keeps its credentials.
    before = await hub.hub.store.lastSeq();
    await device.publishAsync("homie/5/boiler-4/$state", "", { qos: 1, retain: true });
    await changeAfter(hub, before, (c) => c.thing === id && c.kind === "removed");
    expect(device.connected).toBe(true);
    expect((await listed("homie:boiler-4"))?.revokedAt).toBeUndefined();
    // It announces itself again; an admin removes it: the device is closed and let in no more.
    before = await hub.hub.store.lastSeq();
    await device.publishAsync("homie/5/boiler-4/$description", HOMIE_DESCRIPTION, { qos: 1, retain: true });
    await changeAfter(hub, before, (c) => c.thing === id && c.kind === "described");
    const gone = closed(device);
    expect((await hub.request(thingPath(id), { method: "DELETE" })).status).toBe(204);
    await gone;
    await expect(connect(credentials)).rejects.toMatchObject({ code: 5 });
  });

  it("revokes a Home Assistant node's credentials when one of its entities' Things is removed", async () => {
    const credentials = await issue({ homeassistant: "hall" });
    const device = await connect(credentials);
    const id = "urn:homeassistant:sensor:hall:temperature";
    const before = await hub.hub.store.lastSeq();
    await device.publishAsync(
      "homeassistant/sensor/hall/temperature/config",
      JSON.stringify({ name: "Temperature", state_topic: "hall/temperature" }),
      { qos: 1, retain: true },
    );
    await changeAfter(hub, before, (c) => c.thing === id && c.kind === "described");
    const gone = closed(device);
    expect((await hub.request(thingPath(id), { method: "DELETE" })).status).toBe(204);
    await gone;
    await expect(connect(credentials)).rejects.toMatchObject({ code: 5 });
    expect(await listed("homeassistant:hall")).toMatchObject({
      revokedBecause: `its Thing ${id} was removed`,
    });
  });

  it("refuses a Home Assistant announcement naming topics outside its node's, which the hub would read and write for it", async () => {
    // The hub observes and writes an entity's topics with its admin token: a node confined to
    // `porch/#` must not make it subscribe to another device's commands (and record them in the
    // Log for every reader) or publish on another device's topics.
    const credentials = await issue({ homeassistant: "porch" });
    const device = await connect(credentials);
    const id = "urn:homeassistant:switch:porch:spy";
    const problems: { detail: string; errors: { pointer: string; detail: string }[] }[] = [];
    device.on("message", (_topic, payload) =>
      problems.push(JSON.parse(payload.toString("utf8")) as (typeof problems)[number]),
    );
    await device.subscribeAsync(`hyperthings/things/${id}/errors`, { qos: 0 });
    const told = new Promise<void>((resolve) => device.once("message", () => resolve()));
    await device.publishAsync(
      "homeassistant/switch/porch/spy/config",
      JSON.stringify({
        name: "Spy",
        state_topic: "hyperthings/things/urn:test:cred:victim/properties/on/set",
        command_topic: "homie/5/boiler-9/heater/target/set",
      }),
      { qos: 1 },
    );
    await told;
    expect(problems[0]?.errors).toEqual([
      {
        pointer: "/state_topic",
        detail:
          "must be a topic this device may publish to (homeassistant/+/porch/+/config, porch/#), not hyperthings/things/urn:test:cred:victim/properties/on/set: the hub reads and writes it for the device",
      },
      {
        pointer: "/command_topic",
        detail:
          "must be a topic this device may publish to (homeassistant/+/porch/+/config, porch/#), not homie/5/boiler-9/heater/target/set: the hub reads and writes it for the device",
      },
    ]);
    expect((await hub.request(thingPath(id))).status).toBe(404);
    // Its own topics are taken; and an admin's client may announce any topics.
    const before = await hub.hub.store.lastSeq();
    await device.publishAsync(
      "homeassistant/switch/porch/spy/config",
      JSON.stringify({ name: "Spy", state_topic: "porch/spy", command_topic: "porch/spy/set" }),
      { qos: 1 },
    );
    await changeAfter(hub, before, (c) => c.thing === id && c.kind === "described");
    const admin = await connect({ username: "admin", password: hub.token });
    const after = await hub.hub.store.lastSeq();
    await admin.publishAsync(
      "homeassistant/sensor/tasmota/power/config",
      JSON.stringify({ name: "Power", state_topic: "tele/tasmota_1A2B3C/SENSOR" }),
      { qos: 1 },
    );
    await changeAfter(
      hub,
      after,
      (c) => c.thing === "urn:homeassistant:sensor:tasmota:power" && c.kind === "described",
    );
  });

  it("registers at most 500 entities of one Home Assistant node from its own credentials; those it has may be announced again", async () => {
    // Before, a node's password registered as many Things as it announced (3,000 on the demo),
    // each a TD in the directory and a topic the hub observes.
    const node = "attic";
    const entity = (object: string) => `urn:homeassistant:sensor:${node}:${object}`;
    const batch = Array.from({ length: 499 }, (_, i) => minimalTd({ id: entity(`e${i}`), title: `e${i}` }));
    const registered = await hub.request("/things/batch", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify(batch),
    });
    expect(registered.status, await registered.clone().text()).toBe(200);
    const device = await connect(await issue({ homeassistant: node }));
    const announce = (object: string) =>
      device.publishAsync(
        `homeassistant/sensor/${node}/${object}/config`,
        JSON.stringify({ name: object, state_topic: `${node}/${object}` }),
        { qos: 1 },
      );
    let before = await hub.hub.store.lastSeq();
    await announce("e500");
    await changeAfter(hub, before, (c) => c.thing === entity("e500") && c.kind === "described");
    // The 501st is refused, on its errors topic, and not registered.
    const told = new Promise<{ status: number; detail: string }>((resolve) =>
      device.on("message", (_topic, payload) =>
        resolve(JSON.parse(payload.toString("utf8")) as { status: number; detail: string }),
      ),
    );
    await device.subscribeAsync(`hyperthings/things/${entity("e501")}/errors`, { qos: 0 });
    await announce("e501");
    expect(await told).toMatchObject({
      status: 409,
      detail: `The Home Assistant node ${node} has 500 entities registered, as many as one node may with its own credentials (500): remove some (an empty config) before announcing more`,
    });
    expect((await hub.request(thingPath(entity("e501")))).status).toBe(404);
    // One it has is announced again (here with a new name), and one removed makes room.
    before = await hub.hub.store.lastSeq();
    await device.publishAsync(
      `homeassistant/sensor/${node}/e0/config`,
      JSON.stringify({ name: "renamed", state_topic: `${node}/e0` }),
      { qos: 1 },
    );
    await changeAfter(hub, before, (c) => c.thing === entity("e0") && c.kind === "described");
    await device.publishAsync(`homeassistant/sensor/${node}/e1/config`, "", { qos: 1 });
    await changeAfter(hub, before, (c) => c.thing === entity("e1") && c.kind === "removed");
    await announce("e501");
    await changeAfter(hub, before, (c) => c.thing === entity("e501") && c.kind === "described");
  });

  it("revokes a Thing's device credentials when its registration expires", async () => {
    const id = "urn:test:cred:expiring";
    await registerThing(hub, id, { ...lampTd(id), registration: { ttl: 60 } });
    const credentials = await issueFor(id);
    const client = await connect(credentials);
    const gone = closed(client);
    const before = await hub.hub.store.lastSeq();
    now += 120_000;
    await changeAfter(hub, before, (c) => c.thing === id && c.kind === "removed");
    await gone;
    await expect(connect(credentials)).rejects.toMatchObject({ code: 5 });
    expect(await listed(id)).toMatchObject({
      revokedBy: "hub:expiry",
      revokedBecause: `its Thing ${id} expired from the directory`,
    });
  });

  it("lets in a device password issued before the hub kept records, and lists it from then on", async () => {
    const id = "urn:test:cred:older";
    await registerThing(hub, id, lampTd(id));
    // What a hub gave before it kept records: derived from the admin token and the Thing's id alone.
    const older = deviceCredentials(hub.token, id);
    expect(await listed(id)).toBeUndefined();
    expect((await connect(older)).connected).toBe(true);
    const entry = await listed(id);
    expect(entry).toMatchObject({ kind: "thing" });
    expect(entry?.issuedAt).toBeUndefined();
    expect(entry?.lastUsedAt).toBeDefined();
    // Issued now, the same password: devices keep theirs across the upgrade.
    expect((await issueFor(id)).password).toBe(older.password);
  });

  it("is described in the OpenAPI document", async () => {
    const doc = (await (await hub.request("/openapi.json", { auth: false })).json()) as {
      paths: Record<string, Record<string, unknown>>;
    };
    expect(Object.keys(doc.paths["/mqtt-credentials"] ?? {}).sort()).toEqual(["get", "post"]);
    expect(Object.keys(doc.paths["/mqtt-credentials/{username}"] ?? {})).toEqual(["delete"]);
  });

  it("records neither an issue nor a revocation in the Log, and never a password", async () => {
    const before = await hub.hub.store.lastSeq();
    const credentials = await issue({ homie: "boiler-5" });
    expect((await revoke("homie:boiler-5")).status).toBe(204);
    expect(await hub.hub.store.lastSeq()).toBe(before);
    const log = await (await hub.request("/log/entries?limit=100000")).text();
    expect(log).not.toContain(credentials.password);
  });
});

describe("MQTT credentials across a restart", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-mqtt-credentials-"));
  let hub: TestHub;
  const clients: MqttClient[] = [];
  const { connect, issue, revoke, listed } = credentialsOn(() => hub, clients);

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await hub.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("keeps the credentials issued, and the revoked ones revoked", async () => {
    hub = await startTestHub({ mqttPort: 0, dataDir });
    const kept = await issue({ homie: "kept" });
    const revoked = await issue({ homie: "revoked" });
    expect((await connect(kept)).connected).toBe(true);
    expect((await revoke("homie:revoked")).status).toBe(204);
    await Promise.all(clients.splice(0).map((c) => c.endAsync(true)));
    await hub.stop();

    hub = await startTestHub({ mqttPort: 0, dataDir });
    expect((await connect(kept)).connected).toBe(true);
    await expect(connect(revoked)).rejects.toMatchObject({ code: 5 });
    expect(await listed("homie:kept")).toMatchObject({ issuedBy: "admin" });
    expect((await listed("homie:kept"))?.lastUsedAt).toBeDefined();
    expect(await listed("homie:revoked")).toMatchObject({ revokedBy: "admin" });
    // Issued again, a revoked one is another password, also after a restart.
    expect((await issue({ homie: "revoked" })).password).not.toBe(revoked.password);
  });
});
