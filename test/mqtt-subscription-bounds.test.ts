// The topic filters one connection to the embedded broker may hold, and the connections one device
// password may hold: aedes keeps every filter in memory, and every connection is a descriptor, so a
// client (a device with its own password, within its own topics) could otherwise fill the hub's
// memory or take its descriptors. Past the bounds a subscription or connection is refused.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { connectAsync, type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EmbeddedBroker } from "../src/api/mqtt/embedded-broker.js";
import { deviceCredentials, TopicLayout } from "../src/api/mqtt/index.js";
import { createLogger } from "../src/cli/index.js";
import { MemoryMqttCredentialStore, MqttCredentials } from "../src/hub/index.js";
import { changeAfter, minimalTd, registerThing, startTestHub } from "./support/test-hub.js";

const ADMIN_TOKEN = "subscription-bounds-admin-token";
const THING = "urn:test:subscriptions:lamp";
const layout = new TopicLayout("hyperthings");
const own = `hyperthings/things/${THING}`;

describe("the embedded broker's subscriptions per connection", () => {
  let broker: EmbeddedBroker;
  const clients: MqttClient[] = [];
  const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-subscription-bounds-"));

  beforeAll(async () => {
    broker = await EmbeddedBroker.start({
      host: "127.0.0.1",
      port: 0,
      portFallback: false,
      anonymous: true,
      authenticate: () => undefined,
      adminToken: ADMIN_TOKEN,
      credentials: new MqttCredentials(
        new MemoryMqttCredentialStore(),
        () => new Date(),
        createLogger("silent"),
      ),
      thingExists: (id) => Promise.resolve(id.startsWith("urn:test:subscriptions:")),
      layout,
      roots: { prefix: "hyperthings", homieRoot: "homie", homeAssistantPrefix: "homeassistant" },
      maxPacketBytes: 64 * 1024,
      maxSubscriptionsPerClient: { filters: 3, bytes: 10_000 },
      maxConnectionsPerDevice: 2,
      logger: createLogger("silent"),
    });
  });
  afterAll(async () => {
    await Promise.all(clients.map((c) => c.endAsync(true)));
    await broker.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  const connect = async (options: { username?: string; password?: string; clientId?: string } = {}) => {
    const client = await connectAsync(broker.url, { reconnectPeriod: 0, ...options });
    clients.push(client);
    return client;
  };

  it("refuses a filter past the bound; subscribing again to one it holds, or after an unsubscribe, is taken", async () => {
    const client = await connect();
    for (const filter of ["a/#", "b/+", "c"]) await client.subscribeAsync(filter);
    await expect(client.subscribeAsync("d")).rejects.toThrow(/Subscribe error/);
    // The refusal does not close the connection: a filter it holds is subscribed again…
    await client.subscribeAsync("a/#", { qos: 1 });
    // …and one it gives up makes room.
    await client.unsubscribeAsync("c");
    await client.subscribeAsync("d");
    await expect(client.subscribeAsync("e")).rejects.toThrow(/Subscribe error/);
  });

  it("counts the bytes of the filters, whatever their number", async () => {
    const client = await connect();
    await client.subscribeAsync(`x/${"y".repeat(9_000)}`);
    await expect(client.subscribeAsync(`z/${"y".repeat(2_000)}`)).rejects.toThrow(/Subscribe error/);
    await client.subscribeAsync("small");
  });

  it("tells a device on its errors topic why a subscription within its own topics was refused", async () => {
    const credentials = deviceCredentials(ADMIN_TOKEN, THING);
    const device = await connect(credentials);
    const told = new Promise<Record<string, unknown>>((resolve) =>
      device.on("message", (topic, payload) => {
        if (topic === layout.errors(THING))
          resolve(JSON.parse(payload.toString("utf8")) as Record<string, unknown>);
      }),
    );
    await device.subscribeAsync(layout.errors(THING));
    await device.subscribeAsync(`${own}/properties/+`);
    await device.subscribeAsync(`${own}/events/+`);
    await expect(device.subscribeAsync(`${own}/properties/one`)).rejects.toThrow(/Subscribe error/);
    const problem = await told;
    expect(problem).toMatchObject({ status: 409, instance: `${own}/properties/one` });
    expect(problem.detail).toMatch(/at most 3 topic filters/);
    // Another connection has a bound of its own.
    const other = await connect({ ...credentials });
    await other.subscribeAsync(`${own}/properties/one`);
  });

  it("lets one device password hold a bounded number of connections; taking over its own client id is not one more", async () => {
    const credentials = deviceCredentials(ADMIN_TOKEN, "urn:test:subscriptions:many");
    await connect({ ...credentials, clientId: "many-1" });
    await connect({ ...credentials, clientId: "many-2" });
    await expect(
      connectAsync(broker.url, { reconnectPeriod: 0, ...credentials, clientId: "many-3" }),
    ).rejects.toThrow(/Server unavailable/);
    // A connection that takes over its own client id replaces the one holding it.
    const again = await connect({ ...credentials, clientId: "many-2" });
    expect(again.connected).toBe(true);
  });
});

describe("the hub's own observation on its embedded broker, past the filters a connection may hold", () => {
  it("observes every Thing, however many topics its bindings subscribe to on one admin connection", async () => {
    // Two filters a connection: the hub's MQTT binding holds one per observed affordance, so the
    // third Thing was refused (SUBACK 0x80) and recorded unreachable, and never observed.
    const hub = await startTestHub(
      { mqttPort: 0, observe: true },
      { HYPERTHINGS_MQTT_SUBSCRIPTIONS_PER_CLIENT: "2" },
    );
    const admin = await connectAsync(hub.mqtt?.url ?? "", {
      reconnectPeriod: 0,
      username: "admin",
      password: hub.token,
    });
    try {
      const broker = hub.mqtt?.url ?? "";
      const ids = ["urn:test:observed:1", "urn:test:observed:2", "urn:test:observed:3"];
      // Retained, so that each Thing's value reaches the hub once it subscribes, whenever that is.
      for (const i of ids.keys())
        await admin.publishAsync(`sensors/${i}/level`, String(10 + i), { qos: 1, retain: true });
      const before = await hub.hub.store.lastSeq();
      for (const [i, id] of ids.entries()) {
        await registerThing(
          hub,
          id,
          minimalTd({
            id,
            // Topics outside its own: the admin token, given as the Thing's credentials (the hub
            // lends its own only for `hyperthings/things/{id}/#`).
            securityDefinitions: { basic_sc: { scheme: "basic" } },
            security: "basic_sc",
            properties: {
              level: {
                type: "number",
                observable: true,
                forms: [{ href: `${broker}/sensors/${i}/level`, op: ["readproperty", "observeproperty"] }],
              },
            },
          }),
          { username: "hyperthings", password: hub.token },
        );
      }
      for (const [i, id] of ids.entries()) {
        const recorded = changeAfter(hub, before, (c) => c.thing === id && c.kind === "reported");
        expect(await recorded).toMatchObject({ affordance: "level", value: 10 + i });
      }
      const history = await (await hub.request(`/things/${encodeURIComponent(ids[2] ?? "")}/history`)).json();
      expect(JSON.stringify(history)).not.toContain("did not grant a subscription");
    } finally {
      await admin.endAsync(true);
      await hub.stop();
    }
  });
});
