// The external-broker link on the machine's Mosquitto (HYPERTHINGS_TEST_MQTT_URL): QoS 1 messages
// are handed on while earlier ones are still being handled, and each is acknowledged once its
// handler settled — so the broker, which holds back deliveries past the Receive Maximum until
// PUBACKs come, delivers every message.
import { randomBytes } from "node:crypto";
import { connectAsync } from "mqtt";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { ExternalBroker } from "../src/api/mqtt/external-broker.js";
import { AddressPolicy } from "../src/bindings/address-policy.js";
import { BrokerConnection } from "../src/bindings/mqtt/broker-connection.js";
import { brokerProblem, brokerUrl, servicesRequired as required } from "./support/mqtt-broker.js";

const BOUND_MS = 10_000;

const problem = await brokerProblem();

/** `all` resolves once `done` is called, and fails with how many were received after BOUND_MS. */
function allDelivered(received: string[]): { all: Promise<void>; done: () => void } {
  let done: () => void = () => undefined;
  const all = new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`only ${received.length} delivered`)), BOUND_MS);
    done = () => {
      clearTimeout(timer);
      resolve();
    };
  });
  return { all, done };
}

describe("the external-broker link", () => {
  if (problem !== undefined) {
    (required ? it : it.skip)(`needs an MQTT broker at ${brokerUrl} (${problem})`, () => {
      throw new Error(`no MQTT broker at ${brokerUrl}: ${problem}`);
    });
    return;
  }

  it("takes QoS 1 messages while earlier ones are handled, and acknowledges each after its handler: 200 arrive with a Receive Maximum of 4", async () => {
    const topic = `hyperthings-test/${randomBytes(6).toString("hex")}/link`;
    const link = await ExternalBroker.start({
      url: brokerUrl,
      clientId: `hyperthings-test-${randomBytes(6).toString("hex")}`,
      logger: pino({ level: "silent" }),
      receiveMaximum: 4,
    });
    const publisher = await connectAsync(brokerUrl, { reconnectPeriod: 0 });
    try {
      const count = 200;
      const received: string[] = [];
      let pending = 0;
      let mostPending = 0;
      let settle: (() => void)[] = [];
      const { all, done } = allDelivered(received);
      await link.handle([topic], (message) => {
        received.push(message.payload.toString("utf8"));
        pending++;
        mostPending = Math.max(mostPending, pending);
        if (received.length === count) done();
        // Handlers settle together, a turn later: like reports that share one commit.
        return new Promise<void>((resolve) => {
          settle.push(() => {
            pending--;
            resolve();
          });
          if (settle.length === 1) {
            setImmediate(() => {
              const now = settle;
              settle = [];
              for (const s of now) s();
            });
          }
        });
      });
      const sent = Array.from({ length: count }, (_, i) => String(i));
      await Promise.all(sent.map((payload) => publisher.publishAsync(topic, payload, { qos: 1 })));
      await all;
      expect(received).toEqual(sent);
      // Several were handled at once: the link did not wait for one handler before the next message.
      expect(mostPending).toBeGreaterThan(1);
    } finally {
      await publisher.endAsync();
      await link.close();
    }
  });

  it("reads no further while as many QoS 0 messages as its Receive Maximum wait for their handlers", async () => {
    const run = `hyperthings-test/${randomBytes(6).toString("hex")}`;
    const link = await ExternalBroker.start({
      url: brokerUrl,
      clientId: `hyperthings-test-${randomBytes(6).toString("hex")}`,
      logger: pino({ level: "silent" }),
      receiveMaximum: 4,
    });
    const publisher = await connectAsync(brokerUrl, { reconnectPeriod: 0 });
    try {
      const waiting: (() => void)[] = [];
      let fifth: () => void = () => undefined;
      const fiveWait = new Promise<void>((resolve) => (fifth = resolve));
      let sentinel: () => void = () => undefined;
      const sentinelCame = new Promise<void>((resolve) => (sentinel = resolve));
      let released = false;
      let sentinelBeforeRelease = false;
      await link.handle([`${run}/slow`], () => {
        const handled = new Promise<void>((resolve) => waiting.push(resolve));
        if (waiting.length === 5) fifth();
        return handled;
      });
      await link.handle([`${run}/sentinel`], () => {
        sentinelBeforeRelease = !released;
        sentinel();
        return Promise.resolve();
      });
      for (let i = 0; i < 20; i++) await publisher.publishAsync(`${run}/slow`, String(i), { qos: 0 });
      await publisher.publishAsync(`${run}/sentinel`, "last", { qos: 0 });
      // Four wait, the fifth is taken and holds the reading: nothing after it comes in meanwhile.
      await fiveWait;
      const handedOn = waiting.length;
      released = true;
      // Each release lets the link read one more; release until the sentinel has come.
      const releaseAll = async () => {
        while (!sentinelCameYet) {
          for (const release of waiting.splice(0)) release();
          await new Promise((resolve) => setImmediate(resolve));
        }
      };
      let sentinelCameYet = false;
      void sentinelCame.then(() => (sentinelCameYet = true));
      await Promise.all([sentinelCame, releaseAll()]);
      expect(handedOn).toBe(5);
      expect(sentinelBeforeRelease).toBe(false);
    } finally {
      await publisher.endAsync();
      await link.close();
    }
  });

  it("publishes QoS 0 messages of any size and topic intact, in order, several in one turn, with their retain flag", async () => {
    const root = `hyperthings-test/${randomBytes(6).toString("hex")}/out`;
    const link = await ExternalBroker.start({
      url: brokerUrl,
      clientId: `hyperthings-test-${randomBytes(6).toString("hex")}`,
      logger: pino({ level: "silent" }),
    });
    const subscriber = await connectAsync(brokerUrl, { reconnectPeriod: 0, protocolVersion: 5 });
    try {
      // Payload sizes around the 1-, 2- and 3-byte remaining lengths; a topic with non-ASCII text.
      const sizes = [0, 1, 120, 127, 128, 16_000, 16_383, 16_384, 70_000];
      const sent = sizes.map((size, i) => ({
        topic: `${root}/ünïcode-${i}`,
        payload: Buffer.alloc(size, i + 1),
      }));
      const received: { topic: string; payload: Buffer }[] = [];
      const { all, done } = allDelivered(received as unknown as string[]);
      subscriber.on("message", (topic, payload) => {
        received.push({ topic, payload });
        if (received.length === sent.length) done();
      });
      await subscriber.subscribeAsync(`${root}/#`, { qos: 0 });
      for (const { topic, payload } of sent) expect(link.publish(topic, payload, { qos: 0 })).toBe(true);
      await all;
      expect(received.map((m) => m.topic)).toEqual(sent.map((m) => m.topic));
      expect(received.map((m, i) => m.payload.equals(sent[i]?.payload ?? Buffer.alloc(0)))).toEqual(
        sent.map(() => true),
      );

      // Retained: once the broker has it (the first subscriber saw it), a later subscriber gets it
      // with the retain flag.
      const retainedTopic = `${root}/retained`;
      const seen = new Promise<void>((resolve) =>
        subscriber.on("message", (topic) => {
          if (topic === retainedTopic) resolve();
        }),
      );
      expect(link.publish(retainedTopic, Buffer.from("kept"), { qos: 0, retain: true })).toBe(true);
      await seen;
      const late = await connectAsync(brokerUrl, { reconnectPeriod: 0 });
      try {
        const retained = new Promise<{ payload: string; retain: boolean }>((resolve) =>
          late.on("message", (_topic, payload, packet) =>
            resolve({ payload: payload.toString(), retain: packet.retain }),
          ),
        );
        await late.subscribeAsync(retainedTopic, { qos: 0 });
        expect(await retained).toEqual({ payload: "kept", retain: true });
        await late.publishAsync(retainedTopic, Buffer.alloc(0), { qos: 1, retain: true });
      } finally {
        await late.endAsync();
      }
    } finally {
      await subscriber.endAsync();
      await link.close();
    }
  });

  it("the MQTT binding's connection also hands on QoS 1 deliveries before earlier ones settle, and acknowledges each after", async () => {
    const topic = `hyperthings-test/${randomBytes(6).toString("hex")}/binding`;
    const connection = new BrokerConnection({
      broker: new URL(brokerUrl),
      protocolVersion: 5,
      clientId: `hyperthings-test-${randomBytes(6).toString("hex")}`,
      keepaliveSeconds: 30,
      connectTimeoutMs: 5_000,
      reconnect: { baseDelayMs: 100, maxDelayMs: 1_000 },
      addressPolicy: new AddressPolicy(),
      random: Math.random,
    });
    const publisher = await connectAsync(brokerUrl, { reconnectPeriod: 0 });
    try {
      const held = 10;
      const received: string[] = [];
      const waiting: (() => void)[] = [];
      const { all, done } = allDelivered(received);
      await connection.subscribe(
        topic,
        1,
        (packet) => {
          received.push(packet.payload.toString());
          if (received.length === held * 2) done();
          // The first deliveries settle only once `held` of them wait at the same time: a
          // connection that waited for each before reading the next would never get there.
          return new Promise<void>((resolve) => {
            waiting.push(resolve);
            if (waiting.length >= held || received.length > held) for (const w of waiting.splice(0)) w();
          });
        },
        5_000,
      );
      const sent = Array.from({ length: held * 2 }, (_, i) => String(i));
      await Promise.all(sent.map((payload) => publisher.publishAsync(topic, payload, { qos: 1 })));
      await all;
      expect(received).toEqual(sent);
    } finally {
      await publisher.endAsync();
      await connection.close();
    }
  });
});
