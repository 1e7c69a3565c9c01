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
      maxPacketBytes: 1024,
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
