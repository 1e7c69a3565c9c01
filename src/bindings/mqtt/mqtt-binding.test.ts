// The MQTT binding against the machine's broker (HYPERTHINGS_TEST_MQTT_URL, default Mosquitto on
// 127.0.0.1:1883), with a plain mqtt.js client playing the device. Topics are unique per run.
import { randomBytes } from "node:crypto";
import { connect as netConnect, createServer, type Socket } from "node:net";
import { connectAsync } from "mqtt";
import type { MqttClient } from "mqtt";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { BindingError } from "../../core/index.js";
import type { ThingDescription } from "../../core/index.js";
import { AddressPolicy } from "../address-policy.js";
import { bindingFailure } from "../binding.js";
import type { BindingFailure, Subscription, Target } from "../binding.js";
import { targetFor } from "../form-selection.js";
import type { TargetRequest } from "../form-selection.js";
import { MqttBinding } from "./mqtt-binding.js";
import type { MqttBindingOptions } from "./mqtt-binding.js";
import { brokerProblem, brokerUrl, servicesRequired as required } from "../../../test/support/mqtt-broker.js";

const problem = await brokerProblem();

/** Values pushed by a listener, and a promise for the first n of them (bounded in time). */
function collector() {
  const values: unknown[] = [];
  const waiters: { n: number; resolve: (values: unknown[]) => void }[] = [];
  return {
    values,
    push: (value: unknown): void => {
      values.push(value);
      for (const waiter of waiters.filter((w) => values.length >= w.n))
        waiter.resolve(values.slice(0, waiter.n));
    },
    async first(n: number, ms = 5_000): Promise<unknown[]> {
      if (values.length >= n) return values.slice(0, n);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${values.length} of ${n} values came`)), ms);
        waiters.push({
          n,
          resolve: (v) => {
            clearTimeout(timer);
            resolve(v);
          },
        });
      });
    },
  };
}

async function failureOf(promise: Promise<unknown>): Promise<BindingFailure> {
  const error = await promise.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(error).toBeInstanceOf(BindingError);
  const failure = bindingFailure(error);
  if (failure === undefined) throw new Error("no failure detail");
  return failure;
}

/** A TCP proxy to the broker (port 0) whose connections can be cut, and new ones refused meanwhile. */
async function brokerProxy() {
  const broker = new URL(brokerUrl);
  const sockets = new Set<Socket>();
  let open = true;
  const server = createServer((socket) => {
    if (!open) {
      socket.destroy();
      return;
    }
    const upstream = netConnect({ host: broker.hostname, port: Number(broker.port || 1883) });
    for (const s of [socket, upstream]) {
      sockets.add(s);
      s.on("error", () => undefined);
      s.once("close", () => {
        sockets.delete(s);
        socket.destroy();
        upstream.destroy();
      });
    }
    socket.pipe(upstream).pipe(socket);
  });
  await new Promise<void>((resolve) => server.listen({ host: "127.0.0.1", port: 0 }, resolve));
  const address = server.address();
  if (address === null || typeof address === "string") throw new Error("the proxy has no port");
  return {
    url: `mqtt://127.0.0.1:${address.port}`,
    /** The broker goes away: connections are cut and new ones refused, until `resume`. */
    cut(): void {
      open = false;
      for (const socket of sockets) socket.destroy();
    },
    resume(): void {
      open = true;
    },
    close: () => {
      for (const socket of sockets) socket.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

function thermostat(prefix: string): ThingDescription {
  return {
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    id: "urn:test:thermostat",
    title: "Thermostat",
    base: `${brokerUrl}/`,
    securityDefinitions: { nosec_sc: { scheme: "nosec" } },
    security: "nosec_sc",
    properties: {
      temperature: {
        type: "number",
        observable: true,
        forms: [{ href: "", op: ["readproperty", "observeproperty"], "mqv:topic": `${prefix}/temperature` }],
      },
      label: {
        type: "string",
        forms: [{ href: `${prefix}/label`, op: ["readproperty"], contentType: "text/plain" }],
      },
      setpoint: {
        type: "number",
        forms: [{ href: `${prefix}/setpoint`, op: "writeproperty", "mqv:qos": "1", "mqv:retain": true }],
      },
    },
    actions: {
      reboot: { forms: [{ href: `${prefix}/reboot`, "mqv:qos": "1" }] },
      add: {
        input: { type: "array" },
        output: { type: "number" },
        forms: [
          {
            href: `${prefix}/add`,
            "mqv:qos": "1",
            response: { contentType: "application/json", "mqv:topic": `${prefix}/add/reply` },
          },
        ],
      },
    },
    events: {
      alarm: {
        data: { type: "string" },
        forms: [{ href: "", "mqv:filter": `${prefix}/alarms/+`, "mqv:qos": "1" }],
      },
    },
  };
}

if (problem !== undefined && !required) {
  describe("MqttBinding", () => {
    it.skip(`skipped: no MQTT broker at ${brokerUrl} (${problem})`, () => undefined);
  });
} else if (problem !== undefined) {
  describe("MqttBinding", () => {
    it(`needs an MQTT broker at ${brokerUrl} (HYPERTHINGS_REQUIRE_SERVICES=1)`, () => {
      throw new Error(`no MQTT broker at ${brokerUrl}: ${problem}`);
    });
  });
} else {
  describe.each([4, 5] as const)("MqttBinding over MQTT protocol version %i", (protocolVersion) => {
    const prefix = `hyperthings-test/${randomBytes(6).toString("hex")}/v${protocolVersion}`;
    const td = thermostat(prefix);
    const target = (request: TargetRequest): Target => targetFor(td, request);
    const property = (name: string, op: TargetRequest["op"] = "readproperty") =>
      target({ op, affordance: { kind: "property", name } });
    let device: MqttClient;
    let binding: MqttBinding;
    const subscriptions: Subscription[] = [];
    const retained = new Set<string>();

    const use = (options: MqttBindingOptions = {}) => {
      binding = new MqttBinding({
        protocolVersion,
        reconnect: { baseDelayMs: 20, maxDelayMs: 200 },
        ...options,
      });
      return binding;
    };
    const publish = async (topic: string, payload: string, retain = false) => {
      if (retain) retained.add(topic);
      await device.publishAsync(topic, payload, { qos: 1, retain });
    };

    beforeAll(async () => {
      device = await connectAsync(brokerUrl, { protocolVersion, reconnectPeriod: 0 });
    });
    afterEach(async () => {
      await Promise.all(subscriptions.splice(0).map((s) => s.close()));
      await binding.close();
    });
    afterAll(async () => {
      // Retained messages outlive the run in the broker's persistence: clear them.
      for (const topic of retained) await device.publishAsync(topic, "", { qos: 1, retain: true });
      await device.endAsync();
    });

    it("observes a property on its mqv:topic, JSON falling back to text", async () => {
      use();
      const values = collector();
      subscriptions.push(
        await binding.observeProperty(
          property("temperature", "observeproperty"),
          values.push,
          () => undefined,
        ),
      );
      await publish(`${prefix}/temperature`, "21.5");
      await publish(`${prefix}/temperature`, '{"celsius":22}');
      await publish(`${prefix}/temperature`, "warm");
      expect(await values.first(3)).toEqual([21.5, { celsius: 22 }, "warm"]);
    });

    it("reads a property as the retained message on its topic, by the form's content type", async () => {
      use();
      await publish(`${prefix}/temperature`, "19", true);
      await publish(`${prefix}/label`, "42", true);
      expect(await binding.readProperty(property("temperature"))).toBe(19);
      expect(await binding.readProperty(property("label"))).toBe("42");
    });

    it("takes no message larger than maxMessageBytes as a value, observed or read", async () => {
      use({ maxMessageBytes: 64 * 1024, operationTimeoutMs: 500 });
      const on = (op: TargetRequest["op"], topic: string): Target => {
        const t = property("temperature", op);
        return { ...t, terms: { ...t.terms, topic } };
      };
      const values = collector();
      const errors = collector();
      subscriptions.push(
        await binding.observeProperty(on("observeproperty", `${prefix}/big`), values.push, errors.push),
      );
      const huge = JSON.stringify("x".repeat(300 * 1024));
      await publish(`${prefix}/big`, huge);
      await publish(`${prefix}/big`, "21");
      expect(await values.first(1)).toEqual([21]);
      // MQTT 5: the broker drops it for the hub (Maximum Packet Size); MQTT 3.1.1: the binding does.
      if (protocolVersion === 4) {
        expect(bindingFailure(errors.values[0])).toMatchObject({ reason: "too-large" });
      }
      await publish(`${prefix}/big-retained`, huge, true);
      const read = await failureOf(binding.readProperty(on("readproperty", `${prefix}/big-retained`)));
      expect(read.reason).toBe(protocolVersion === 4 ? "too-large" : "timeout");
    });

    it("gives up a read when no message comes in time", async () => {
      use({ operationTimeoutMs: 200 });
      const empty = targetFor(td, {
        op: "readproperty",
        affordance: { kind: "property", name: "temperature" },
      });
      const silent = { ...empty, terms: { ...empty.terms, topic: `${prefix}/silent` } };
      expect(await failureOf(binding.readProperty(silent))).toMatchObject({ reason: "timeout" });
    });

    it("writes a property by publishing to the href's path, with the form's QoS and retain", async () => {
      use();
      const seen = collector();
      const topic = `${prefix}/setpoint`;
      retained.add(topic);
      device.on("message", (t, payload, packet) => {
        if (t === topic) seen.push({ payload: payload.toString(), qos: packet.qos, retain: packet.retain });
      });
      await device.subscribeAsync(topic, { qos: 1 });
      await binding.writeProperty(property("setpoint", "writeproperty"), 21);
      expect(await seen.first(1)).toEqual([{ payload: "21", qos: 1, retain: false }]);
      await device.unsubscribeAsync(topic);
      // Retained: a device that subscribes later still gets the setpoint.
      const late = await connectAsync(brokerUrl, { protocolVersion, reconnectPeriod: 0 });
      try {
        const later = collector();
        late.on("message", (_t, payload, packet) =>
          later.push({ payload: payload.toString(), retain: packet.retain }),
        );
        await late.subscribeAsync(topic, { qos: 1 });
        expect(await later.first(1)).toEqual([{ payload: "21", retain: true }]);
      } finally {
        await late.endAsync();
      }
    });

    it("invokes an action without a response topic by publishing its input", async () => {
      use();
      const seen = collector();
      device.on("message", (t, payload) => {
        if (t === `${prefix}/reboot`) seen.push(payload.toString());
      });
      await device.subscribeAsync(`${prefix}/reboot`, { qos: 1 });
      const reboot = target({ op: "invokeaction", affordance: { kind: "action", name: "reboot" } });
      expect(await binding.invokeAction(reboot, { delay: 5 })).toEqual({
        kind: "completed",
        output: undefined,
      });
      expect(await seen.first(1)).toEqual(['{"delay":5}']);
    });

    it("subscribes to an event through an mqv:filter with a wildcard", async () => {
      use();
      const data = collector();
      const alarm = target({ op: "subscribeevent", affordance: { kind: "event", name: "alarm" } });
      subscriptions.push(await binding.subscribeEvent(alarm, data.push, () => undefined));
      await publish(`${prefix}/alarms/fire`, '"smoke"');
      await publish(`${prefix}/other`, '"not this"');
      await publish(`${prefix}/alarms/water`, '"leak"');
      expect(await data.first(2)).toEqual(["smoke", "leak"]);
    });

    it("takes no retained message as an event: it is sent again on every subscription", async () => {
      use();
      await publish(`${prefix}/alarms/old`, '"rang once, long ago"', true);
      const data = collector();
      const alarm = target({ op: "subscribeevent", affordance: { kind: "event", name: "alarm" } });
      subscriptions.push(await binding.subscribeEvent(alarm, data.push, () => undefined));
      await publish(`${prefix}/alarms/fire`, '"smoke"');
      expect(await data.first(1)).toEqual(["smoke"]);
    });

    it("shares one connection per broker among all targets", async () => {
      const connects = collector();
      use({ onConnection: (event) => event.state === "connected" && connects.push(event.clientId) });
      const ignore = () => undefined;
      subscriptions.push(
        await binding.observeProperty(property("temperature", "observeproperty"), ignore, ignore),
      );
      const alarm = target({ op: "subscribeevent", affordance: { kind: "event", name: "alarm" } });
      subscriptions.push(await binding.subscribeEvent(alarm, ignore, ignore));
      await binding.writeProperty(property("setpoint", "writeproperty"), 20);
      retained.add(`${prefix}/setpoint`);
      expect(connects.values).toHaveLength(1);
    });

    it("keys connections by user name and password: a Thing with another password is another client", async () => {
      const connects = collector();
      use({ onConnection: (event) => event.state === "connected" && connects.push(event.clientId) });
      const setpoint = property("setpoint", "writeproperty");
      const as = (password: string): Target => ({
        ...setpoint,
        credentials: [{ scheme: "basic", username: "hub", password, name: "Authorization" }],
      });
      retained.add(`${prefix}/setpoint`);
      await binding.writeProperty(as("first"), 20);
      await binding.writeProperty(as("second"), 21);
      await binding.writeProperty(as("second"), 22);
      await binding.writeProperty(as("third"), 23);
      expect(connects.values).toHaveLength(3);
      expect(new Set(connects.values).size).toBe(3);
    });

    it("reconnects after the broker drops it, and resubscribes", async () => {
      const connects = collector();
      use({ onConnection: (event) => event.state === "connected" && connects.push(event.clientId) });
      const values = collector();
      const observe = property("temperature", "observeproperty");
      const topic = `${prefix}/reconnect`;
      const fresh = { ...observe, terms: { ...observe.terms, topic } };
      subscriptions.push(await binding.observeProperty(fresh, values.push, () => undefined));
      await publish(topic, "1");
      expect(await values.first(1)).toEqual([1]);
      // Another client with the same client id takes the session over: the broker drops ours.
      const [clientId] = await connects.first(1);
      const intruder = await connectAsync(brokerUrl, {
        clientId: String(clientId),
        protocolVersion,
        reconnectPeriod: 0,
      });
      await connects.first(2);
      intruder.end(true);
      // Retained, so it arrives whether the resubscription is made before or after the publish.
      await publish(topic, "2", true);
      expect(await values.first(2)).toEqual([1, 2]);
    });

    it("observes a topic again that it stopped observing while the broker was away", async () => {
      const proxy = await brokerProxy();
      const waiting: { state: string; resolve: () => void }[] = [];
      const next = (state: "connected" | "offline") =>
        new Promise<void>((resolve) => waiting.push({ state, resolve }));
      use({
        onConnection: (event) => {
          for (const w of waiting.filter((w) => w.state === event.state)) {
            waiting.splice(waiting.indexOf(w), 1);
            w.resolve();
          }
        },
      });
      try {
        const observe = property("temperature", "observeproperty");
        const topic = `${prefix}/away`;
        const via = { ...observe, href: `${proxy.url}/`, terms: { ...observe.terms, topic } };
        const connected = next("connected");
        const first = await binding.observeProperty(
          via,
          () => undefined,
          () => undefined,
        );
        await connected;
        const offline = next("offline");
        proxy.cut();
        await offline;
        // Given up while no UNSUBSCRIBE can go out (the observer does so when a Thing goes away).
        await first.close();
        const back = next("connected");
        proxy.resume();
        await back;
        const values = collector();
        subscriptions.push(await binding.observeProperty(via, values.push, () => undefined));
        await publish(topic, "3");
        expect(await values.first(1)).toEqual([3]);
      } finally {
        await binding.close();
        await proxy.close();
      }
    });

    it("refuses a broker whose address the policy denies, before connecting", async () => {
      use({
        addressPolicy: new AddressPolicy({ deny: ["127.0.0.0/8", "::1/128"] }),
        operationTimeoutMs: 2_000,
      });
      const observing = binding.observeProperty(
        property("temperature", "observeproperty"),
        () => undefined,
        () => undefined,
      );
      expect(await failureOf(observing)).toMatchObject({ reason: "address-denied" });
    });

    if (protocolVersion === 5) {
      it("invokes an action by MQTT 5 request/response: response topic and correlation data", async () => {
        use();
        device.on("message", (t, payload, packet) => {
          const responseTopic = packet.properties?.responseTopic;
          if (t !== `${prefix}/add` || responseTopic === undefined) return;
          const sum = (JSON.parse(payload.toString()) as number[]).reduce((a, b) => a + b, 0);
          // A stray reply with other correlation data first: the binding must not take it.
          void device.publishAsync(responseTopic, "-1", {
            qos: 1,
            properties: { correlationData: Buffer.from("x") },
          });
          void device.publishAsync(responseTopic, String(sum), {
            qos: 1,
            properties: { correlationData: packet.properties?.correlationData ?? Buffer.alloc(0) },
          });
        });
        await device.subscribeAsync(`${prefix}/add`, { qos: 1 });
        const add = target({ op: "invokeaction", affordance: { kind: "action", name: "add" } });
        const [a, b] = await Promise.all([
          binding.invokeAction(add, [1, 2]),
          binding.invokeAction(add, [10, 20]),
        ]);
        expect(a).toEqual({ kind: "completed", output: 3 });
        expect(b).toEqual({ kind: "completed", output: 30 });
      });
    } else {
      it("refuses request/response over MQTT 3.1.1", async () => {
        use();
        const add = target({ op: "invokeaction", affordance: { kind: "action", name: "add" } });
        expect(await failureOf(binding.invokeAction(add, [1]))).toMatchObject({ reason: "unsupported" });
      });
    }
  });
}
