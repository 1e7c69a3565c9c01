// Room sensors on MQTT, following the Homie 5 convention: each device announces `$state` and its
// retained `$description`, publishes its readings retained, takes `…/indicator/led/set`, and leaves
// a will of `$state` = `lost`. The hub's auto-inventory registers them (src/core/homie.ts).
import { connectAsync, type IClientOptions, type MqttClient } from "mqtt";

export interface MqttTarget {
  /** `mqtt://[user:password@]host:port` or `mqtts://…`. */
  readonly url: string;
  readonly username?: string;
  readonly password?: string;
  /** 4 (MQTT 3.1.1, the default: the hub's embedded broker speaks it) or 5. */
  readonly protocolVersion?: 4 | 5;
}

/** A Homie 5 `$description` (Homie 5 §"Device description"). */
function descriptionOf(name: string): Record<string, unknown> {
  return {
    homie: "5.0",
    version: 1,
    name,
    type: "room-sensor",
    nodes: {
      climate: {
        name: "Climate",
        properties: {
          temperature: { name: "Temperature", datatype: "float", format: "-40:85", unit: "°C" },
          humidity: { name: "Relative humidity", datatype: "float", format: "0:100", unit: "%" },
          co2: { name: "CO₂", datatype: "integer", format: "0:10000", unit: "ppm" },
        },
      },
      indicator: {
        name: "Indicator",
        properties: { led: { name: "LED on", datatype: "boolean", settable: true } },
      },
    },
  };
}

/** Simulated seconds between two readings. */
const READING_INTERVAL_S = 5;

export class RoomSensor {
  temperature: number;
  humidity: number;
  co2: number;
  led = false;
  #client: MqttClient | undefined;
  #sinceReading = 0;

  constructor(
    /** The Homie device id, e.g. `room-kitchen`. */
    readonly device: string,
    readonly name: string,
    readonly root: string,
    seed: number,
  ) {
    this.temperature = Math.round((20 + seed * 3) * 10) / 10;
    this.humidity = Math.round(40 + seed * 15);
    this.co2 = Math.round(450 + seed * 300);
  }

  get topic(): string {
    return `${this.root}/5/${this.device}`;
  }

  async connect(target: MqttTarget): Promise<void> {
    const options: IClientOptions = {
      protocolVersion: target.protocolVersion ?? 4,
      clientId: `homie-${this.device}-${Math.random().toString(16).slice(2, 10)}`,
      clean: true,
      reconnectPeriod: 1000,
      connectTimeout: 10_000,
      will: { topic: `${this.topic}/$state`, payload: Buffer.from("lost"), qos: 1, retain: true },
      ...(target.username !== undefined && { username: target.username }),
      ...(target.password !== undefined && { password: target.password }),
    };
    // No retries at start: a broker that is not there, or refuses us, is said at once.
    const client = await connectAsync(target.url, options, false).catch((err: unknown) => {
      const where = new URL(target.url);
      where.username = "";
      where.password = "";
      throw new Error(`${this.device}: cannot connect to ${where.href}: ${(err as Error).message}`, {
        cause: err,
      });
    });
    this.#client = client;
    client.on("message", (topic, payload) => this.#onSet(topic, payload.toString("utf8")));
    await client.subscribeAsync(`${this.topic}/indicator/led/set`, { qos: 1 });
    await this.#publish("$state", "init");
    await this.#publish("$description", JSON.stringify(descriptionOf(this.name)));
    await this.#publishReadings();
    await this.#publish("indicator/led", String(this.led));
    await this.#publish("$state", "ready");
  }

  /** The readings drift like a room's air does. */
  advance(seconds: number, random: () => number): void {
    this.#sinceReading += seconds;
    if (this.#sinceReading < READING_INTERVAL_S) return;
    this.#sinceReading = 0;
    const walk = (value: number, step: number, min: number, max: number) =>
      Math.min(max, Math.max(min, value + (random() - 0.5) * 2 * step));
    this.temperature = Math.round(walk(this.temperature, 0.3, 15, 30) * 10) / 10;
    this.humidity = Math.round(walk(this.humidity, 1, 20, 80) * 10) / 10;
    this.co2 = Math.round(walk(this.co2, 25, 400, 2000));
    this.#publishReadings().catch(() => undefined);
  }

  /** Homie 5: a device that goes away on purpose says `disconnected`. */
  async close(): Promise<void> {
    const client = this.#client;
    if (client === undefined) return;
    this.#client = undefined;
    if (client.connected) {
      await this.#publishOn(client, "$state", "disconnected").catch(() => undefined);
      await client.endAsync();
    } else {
      await client.endAsync(true);
    }
  }

  async #publishReadings(): Promise<void> {
    await this.#publish("climate/temperature", String(this.temperature));
    await this.#publish("climate/humidity", String(this.humidity));
    await this.#publish("climate/co2", String(this.co2));
  }

  // Homie 5: a settable property's `set` is a request; the device validates it, and publishes the
  // value it takes. A payload that is not a valid boolean is ignored.
  #onSet(topic: string, payload: string): void {
    if (topic !== `${this.topic}/indicator/led/set`) return;
    if (payload !== "true" && payload !== "false") return;
    this.led = payload === "true";
    this.#publish("indicator/led", payload).catch(() => undefined);
  }

  #publish(path: string, payload: string): Promise<void> {
    const client = this.#client;
    return client === undefined ? Promise.resolve() : this.#publishOn(client, path, payload);
  }

  async #publishOn(client: MqttClient, path: string, payload: string): Promise<void> {
    await client.publishAsync(`${this.topic}/${path}`, payload, { qos: 1, retain: true });
  }
}
