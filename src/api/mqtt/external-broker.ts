// The gateway on a broker of the operator's (`--mqtt-url`): one mqtt.js client (MQTT 3.1.1,
// TCP_NODELAY), deliveries acknowledged after their handler (mqtt.js sends the PUBACK when
// `handleMessage` calls back), reconnecting by itself. Outgoing QoS 0 messages are not queued
// while offline, and dropped when the socket's buffer is full.
import { MqttClient } from "mqtt";
import { connect as netConnect, isIP, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { Logger } from "pino";
import { ValidationError } from "../../core/index.js";
import { topicMatches, type BrokerLink, type InboundHandler } from "./broker-link.js";

export interface ExternalBrokerOptions {
  /** `mqtt://[user:password@]host[:port]` or `mqtts://…`. */
  readonly url: string;
  readonly clientId: string;
  readonly logger: Logger;
  /** How long `start` waits for the first connection before going on without it. */
  readonly connectWaitMs?: number;
  /** Messages larger than this are not handed to handlers. */
  readonly maxPacketBytes: number;
}

/** Bytes that may wait in the socket's buffer before outgoing messages are dropped. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;

export function parseBrokerUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ValidationError(`The MQTT broker URL "${text}" is not a URL`, [
      { pointer: "/mqttUrl", message: "expected mqtt://host:port or mqtts://host:port" },
    ]);
  }
  if ((url.protocol !== "mqtt:" && url.protocol !== "mqtts:") || url.hostname === "") {
    throw new ValidationError(
      `The MQTT broker URL "${text}" must be mqtt://host[:port] or mqtts://host[:port]`,
      [{ pointer: "/mqttUrl", message: "expected mqtt: or mqtts: with a host" }],
    );
  }
  return url;
}

export class ExternalBroker implements BrokerLink {
  readonly kind = "external" as const;
  readonly url: string;
  readonly #client: MqttClient;
  readonly #options: ExternalBrokerOptions;
  readonly #handlers: { filters: readonly string[]; handler: InboundHandler }[] = [];
  #dropped = 0;
  /** Said to the operator when the broker could not be reached at start. */
  notice: string | undefined;

  private constructor(options: ExternalBrokerOptions) {
    this.#options = options;
    const broker = parseBrokerUrl(options.url);
    const port = broker.port === "" ? (broker.protocol === "mqtts:" ? 8883 : 1883) : Number(broker.port);
    // The URL people see never carries the password.
    this.url = `${broker.protocol}//${broker.host}`;
    const host = broker.hostname.replace(/^\[(.*)\]$/, "$1");
    const username = decodeURIComponent(broker.username);
    const password = decodeURIComponent(broker.password);
    const openSocket = (): Socket => {
      const socket =
        broker.protocol === "mqtts:"
          ? tlsConnect({ host, port, ...(isIP(host) === 0 ? { servername: host } : {}) })
          : netConnect({ host, port });
      // PITFALLS: mqtt.js leaves Nagle on; with it, p99 latency at 5k msg/s was 6–44 ms.
      socket.setNoDelay(true);
      return socket;
    };
    this.#client = new MqttClient(openSocket, {
      protocolId: "MQTT",
      protocolVersion: 4,
      clientId: options.clientId,
      clean: true,
      resubscribe: true,
      keepalive: 30,
      reconnectPeriod: 1_000,
      connectTimeout: 10_000,
      queueQoSZero: false,
      ...(username === "" ? {} : { username }),
      ...(password === "" ? {} : { password }),
    });
    this.#client.on("error", (error) =>
      options.logger.warn({ err: error, broker: this.url }, "MQTT broker error"),
    );
    this.#client.on("offline", () =>
      options.logger.warn({ broker: this.url }, "MQTT broker offline; reconnecting"),
    );
    // mqtt.js sends the PUBACK only when this calls back (PITFALLS): after the handlers.
    this.#client.handleMessage = (packet, callback) => {
      if (packet.cmd !== "publish") {
        callback();
        return;
      }
      const handlers = this.#handlers.filter((h) => h.filters.some((f) => topicMatches(f, packet.topic)));
      const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
      if (handlers.length === 0 || payload.length > options.maxPacketBytes) {
        callback();
        return;
      }
      const message = { topic: packet.topic, payload, retain: packet.retain };
      Promise.all(handlers.map((h) => h.handler(message))).then(
        () => callback(),
        (error: unknown) => {
          options.logger.error({ err: error, topic: packet.topic }, "MQTT: a message could not be taken");
          callback();
        },
      );
    };
  }

  static async start(options: ExternalBrokerOptions): Promise<ExternalBroker> {
    const link = new ExternalBroker(options);
    const waitMs = options.connectWaitMs ?? 5_000;
    const connected = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), waitMs);
      link.#client.once("connect", () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    if (!connected) {
      link.notice = `MQTT: no connection to ${link.url} yet; the hub keeps trying in the background`;
    }
    return link;
  }

  async handle(filters: readonly string[], handler: InboundHandler): Promise<void> {
    this.#handlers.push({ filters, handler });
    const subscriptions = Object.fromEntries(filters.map((f) => [f, { qos: 1 as const }]));
    if (!this.#client.connected) {
      // Sent once connected; mqtt.js resubscribes after every reconnect.
      this.#client.subscribe(subscriptions, (error) => {
        if (error) this.#options.logger.error({ err: error, filters }, "MQTT: subscription refused");
      });
      return;
    }
    const granted = await this.#client.subscribeAsync(subscriptions);
    const refused = granted.filter((g) => g.qos === 128).map((g) => g.topic);
    if (refused.length > 0) {
      this.#options.logger.error({ broker: this.url, refused }, "MQTT: the broker refused subscriptions");
    }
  }

  publish(topic: string, payload: Buffer, options: { qos: 0 | 1; retain?: boolean }): boolean {
    const stream = this.#client.stream as { writableLength?: number } | undefined;
    if (!this.#client.connected || (stream?.writableLength ?? 0) > MAX_BUFFERED_BYTES) {
      if (this.#dropped++ % 10_000 === 0) {
        this.#options.logger.warn(
          { dropped: this.#dropped, broker: this.url },
          "MQTT: offline or slow, messages dropped",
        );
      }
      return false;
    }
    this.#client.publish(topic, payload, { qos: options.qos, retain: options.retain ?? false }, (error) => {
      if (error) this.#options.logger.warn({ err: error, topic }, "MQTT: publish failed");
    });
    return true;
  }

  async close(): Promise<void> {
    await this.#client.endAsync(!this.#client.connected).catch(() => this.#client.end(true));
  }
}
