// The device-side helper of the MQTT write tests: a `next()` that timed out gives up its place, so
// the write that arrives afterwards goes to the next `next()` instead of to nobody.
import { randomBytes } from "node:crypto";
import { connectAsync, type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { brokerProblem, brokerUrl, servicesRequired as required } from "./mqtt-broker.js";
import { receivedWrites } from "./mqtt-device-writes.js";

const problem = await brokerProblem();

/** Resolves once `client` has handled a message on `topic` (after the listeners added before it). */
function handled(client: MqttClient, topic: string): Promise<void> {
  return new Promise((resolve) => {
    const onMessage = (t: string) => {
      if (t !== topic) return;
      client.off("message", onMessage);
      resolve();
    };
    client.on("message", onMessage);
  });
}

if (problem !== undefined && !required) {
  describe("receivedWrites", () => {
    it.skip(`skipped: no MQTT broker at ${brokerUrl} (${problem})`, () => undefined);
  });
} else {
  describe("receivedWrites", () => {
    const set = `hyperthings-test/${randomBytes(6).toString("hex")}/lamp/on/set`;
    let device: MqttClient;
    let gateway: MqttClient;

    beforeAll(async () => {
      device = await connectAsync(brokerUrl, { reconnectPeriod: 0 });
      gateway = await connectAsync(brokerUrl, { reconnectPeriod: 0 });
      await device.subscribeAsync(set, { qos: 1 });
    });

    afterAll(async () => {
      await device?.endAsync();
      await gateway?.endAsync();
    });

    it("gives a write that arrives after a timed-out next() to the next next()", async () => {
      // Short bound: the first next() must time out, nothing is published before it does.
      const writes = receivedWrites(device, set, 200);
      await expect(writes.next()).rejects.toThrow(/no write came/);

      const arrived = handled(device, set);
      await gateway.publishAsync(set, "true", { qos: 1 });
      await arrived;
      // The write is already in: next() takes it at once, whatever the bound.
      expect((await writes.next()).value).toBe(true);
    });
  });
}
