// A device's side of the gateway's writes (docs/mqtt.md, Writes): the values it receives on a
// `…/set` topic in the order they came, with the MQTT 5 Correlation Data of each when there is one.
import type { MqttClient } from "mqtt";

export interface ReceivedWrite {
  readonly value: unknown;
  readonly correlation: Buffer | undefined;
}

/** The writes `client` receives on `set`; `next()` is the next one not yet taken (bounded in time). */
export function receivedWrites(client: MqttClient, set: string, boundMs = 10_000) {
  const arrived: ReceivedWrite[] = [];
  const waiters: ((write: ReceivedWrite) => void)[] = [];
  client.on("message", (topic, payload, packet) => {
    if (topic !== set) return;
    const write = {
      value: JSON.parse(payload.toString("utf8")) as unknown,
      correlation: packet.properties?.correlationData,
    };
    const waiter = waiters.shift();
    if (waiter === undefined) arrived.push(write);
    else waiter(write);
  });
  return {
    next(): Promise<ReceivedWrite> {
      const write = arrived.shift();
      if (write !== undefined) return Promise.resolve(write);
      return new Promise((resolve, reject) => {
        const waiter = (w: ReceivedWrite) => {
          clearTimeout(timer);
          resolve(w);
        };
        // A waiter that gave up leaves the queue: the next write is for whoever asks next.
        const timer = setTimeout(() => {
          waiters.splice(waiters.indexOf(waiter), 1);
          reject(new Error(`no write came on ${set}`));
        }, boundMs);
        waiters.push(waiter);
      });
    },
  };
}
