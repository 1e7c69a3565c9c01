// The gateway on a broker of the operator's (`--mqtt-url`): two mqtt.js clients (MQTT 5,
// TCP_NODELAY), one for subscriptions, whose QoS 1 deliveries are acknowledged after their handler
// settled, many at a time (Receive Maximum), and one for what the hub publishes; both reconnect by
// themselves (or, for replicas, once the store confirms this one still holds the gateway's role). Outgoing QoS 0 messages are not queued while offline, and dropped when the socket's
// buffer is full.
import { MqttClient, type IPublishPacket } from "mqtt";
import { generate } from "mqtt-packet";
import { connect as netConnect, isIP, type Socket } from "node:net";
import { connect as tlsConnect } from "node:tls";
import type { Logger } from "pino";
import { redactedUrl, ValidationError } from "../../core/index.js";
import {
  MAX_REMEMBERED_TOPIC_LENGTH,
  topicMatches,
  type BrokerLink,
  type HandleOptions,
  type InboundHandler,
  type PublishOptions,
} from "./broker-link.js";

export interface ExternalBrokerOptions {
  /** `mqtt://[user:password@]host[:port]` or `mqtts://…`. */
  readonly url: string;
  readonly clientId: string;
  readonly logger: Logger;
  /** How long `start` waits for the first connection before going on without it. */
  readonly connectWaitMs?: number;
  /**
   * Unacknowledged QoS 1 deliveries the broker may send (default DEFAULT_RECEIVE_MAXIMUM); as
   * many QoS 0 messages may wait for their handlers before the link stops reading.
   */
  readonly receiveMaximum?: number;
  /** How long the broker keeps the hub's session while it is away (default DEFAULT_SESSION_EXPIRY_SECONDS). */
  readonly sessionExpirySeconds?: number;
  /**
   * Asked before each reconnection: the link reconnects only once it resolves true, and otherwise
   * takes no more messages and stays away. For replicas, where only the elected holder of the
   * gateway may hold the hub's session: a replica that lost its role without knowing it yet,
   * dropped by the broker because the next holder connected with the same client id, would
   * otherwise take the session back, and the two would take it from each other. Without it, the
   * link reconnects by itself.
   */
  readonly mayReconnect?: () => Promise<boolean>;
}

/** Bytes that may wait in the socket's buffer before outgoing messages are dropped. */
const MAX_BUFFERED_BYTES = 8 * 1024 * 1024;
/**
 * Below this, a write reports no backpressure. mqtt.js adds a `drain` listener for every write
 * with a callback past the high-water mark, and removing thousands of them after a burst (one
 * republished Change per report) costs O(n²); past MAX_BUFFERED_BYTES, publishes are dropped.
 */
const SOCKET_HIGH_WATER_MARK = 2 * MAX_BUFFERED_BYTES;
/** A stream option that Node's sockets take (stream.Duplex) and @types/node does not list. */
const BUFFERING = { writableHighWaterMark: SOCKET_HIGH_WATER_MARK };

/**
 * QoS 1 messages the broker may have delivered and not yet had acknowledged (MQTT 5 Receive
 * Maximum, §3.1.2.11.3): how many reports can share one group commit. MQTT 3.1.1 has no such
 * setting, and Mosquitto then allows 20.
 */
export const DEFAULT_RECEIVE_MAXIMUM = 4_096;

/**
 * How long the broker keeps the hub's session, and queues reports for it, while the hub is away
 * (MQTT 5 Session Expiry Interval): a day of restarts, upgrades and network trouble.
 */
export const DEFAULT_SESSION_EXPIRY_SECONDS = 86_400;

/** Topics whose matching handlers are remembered. */
const MAX_REMEMBERED_TOPICS = 10_000;

/** A QoS 1 message the hub could not take is taken again after this, doubling up to RETRY_MAX_MS. */
const RETRY_FIRST_MS = 100;
const RETRY_MAX_MS = 5_000;

/** Handed to mqtt.js's `handleMessage` callback: it then sends no PUBACK and reads on. */
const DEFERRED_ACK = new Error("acknowledged after its Change is committed");

/** How long after a connection drops the link connects again. */
const RECONNECT_MS = 1_000;

/** A connection's socket as mqtt.js holds it. */
interface Writable {
  write(chunk: Buffer): boolean;
  readonly writableLength?: number;
}

/**
 * Bytes written to a connection in the same turn, sent together in one write: the PUBACKs of one
 * commit and the Changes it republishes. Written straight to the socket (MQTT 5 §3.4 PUBACK,
 * §3.3 PUBLISH at QoS 0, encoded by mqtt-packet), not packet by packet through mqtt.js's
 * writable stream, which cost a stream write, a cork and a `nextTick` per packet — a fifth of the
 * gateway's CPU per reading.
 */
class Outbox {
  #chunks: Buffer[] = [];
  #bytes = 0;
  #stream: Writable | undefined;

  /** Queues `chunk` for `stream`; what was queued for a previous stream (a dropped connection) is dropped. */
  add(stream: Writable, chunk: Buffer): void {
    if (this.#stream !== stream) {
      this.#chunks = [];
      this.#bytes = 0;
      this.#stream = stream;
    }
    if (this.#chunks.length === 0) process.nextTick(() => this.#flush());
    this.#chunks.push(chunk);
    this.#bytes += chunk.length;
  }

  /** Bytes queued and not yet handed to the socket. */
  get pending(): number {
    return this.#bytes;
  }

  /** Hands what is queued to the socket now (before a DISCONNECT, which must follow it). */
  flush(): void {
    this.#flush();
  }

  #flush(): void {
    const stream = this.#stream;
    const chunks = this.#chunks;
    this.#chunks = [];
    this.#bytes = 0;
    if (stream === undefined || chunks.length === 0) return;
    stream.write(chunks.length === 1 ? (chunks[0] as Buffer) : Buffer.concat(chunks));
  }
}

// The packets written straight to the socket are encoded by mqtt.js's own encoder (MQTT 5).
const MQTT_5 = { protocolVersion: 5 };

/** MQTT 5 §3.4: a PUBACK, reason Success. */
function pubackPacket(messageId: number): Buffer {
  return generate({ cmd: "puback", messageId }, MQTT_5);
}

/** MQTT 5 §3.3: a QoS 0 PUBLISH (no packet id), no properties. */
function publishPacket(topic: string, payload: Buffer, retain: boolean): Buffer {
  return generate({ cmd: "publish", topic, payload, qos: 0, retain, dup: false }, MQTT_5);
}

export function parseBrokerUrl(text: string): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new ValidationError(`The MQTT broker URL "${redactedUrl(text)}" is not a URL`, [
      { pointer: "/mqttUrl", message: "expected mqtt://host:port or mqtts://host:port" },
    ]);
  }
  if ((url.protocol !== "mqtt:" && url.protocol !== "mqtts:") || url.hostname === "") {
    throw new ValidationError(
      `The MQTT broker URL "${redactedUrl(text)}" must be mqtt://host[:port] or mqtts://host[:port]`,
      [{ pointer: "/mqttUrl", message: "expected mqtt: or mqtts: with a host" }],
    );
  }
  return url;
}

export class ExternalBroker implements BrokerLink {
  readonly kind = "external" as const;
  readonly url: string;
  /** Subscriptions and their PUBACKs. */
  readonly #client: MqttClient;
  /**
   * Everything the hub publishes (republished Changes, writes, errors), on a connection of its
   * own: Mosquitto reads one packet per connection per turn of its loop, so on one connection
   * each republished Change would halve the rate at which the broker takes the hub's PUBACKs,
   * the hub's queue in the broker would grow past `max_queued_messages`, and readings be dropped.
   */
  readonly #publisher: MqttClient;
  readonly #acks = new Outbox();
  readonly #outgoing = new Outbox();
  /** The broker's Maximum Packet Size (MQTT 5 §3.2.2.3.6, CONNACK), for the packets written by hand. */
  #maxOutgoingPacket = Number.POSITIVE_INFINITY;
  readonly #options: ExternalBrokerOptions;
  readonly #handlers: { filters: readonly string[]; handler: InboundHandler }[] = [];
  readonly #matches = new Map<string, readonly InboundHandler[]>();
  /**
   * Set by close, or when this process no longer holds the hub's session: no message is taken (what
   * comes is left unacknowledged, for the broker to send to the session's next holder), and those
   * the hub could not take are not taken again.
   */
  #closing = false;
  /** Deliveries whose handlers have not settled: close waits for them, and sends their PUBACKs. */
  readonly #inFlight = new Set<Promise<void>>();
  /** QoS 1 messages that came before `open`, unacknowledged; undefined once open. */
  #early: { packet: IPublishPacket; stream: unknown }[] | undefined = [];
  #dropped = 0;
  /** QoS 0 messages handed on whose handlers have not settled. */
  #qos0Waiting = 0;
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
          ? tlsConnect({
              host,
              port,
              ...BUFFERING,
              ...(isIP(host) === 0 ? { servername: host } : {}),
            })
          : netConnect({ host, port, ...BUFFERING });
      // PITFALLS: mqtt.js leaves Nagle on; with it, p99 latency at 5k msg/s was 6–44 ms.
      socket.setNoDelay(true);
      return socket;
    };
    // Both connections: MQTT 5, clean sessions, the same keep-alive and reconnection.
    const common = {
      protocolId: "MQTT",
      protocolVersion: 5,
      clean: true,
      keepalive: 30,
      // With `mayReconnect`, the link reconnects itself once confirmed (#reconnectWhenConfirmed).
      reconnectPeriod: options.mayReconnect === undefined ? RECONNECT_MS : 0,
      connectTimeout: 10_000,
      queueQoSZero: false,
      // mqtt.js calls its logger several times per packet; `debug`'s check alone was 3 % of the
      // gateway's CPU at 5k messages/s.
      log: () => undefined,
      ...(username === "" ? {} : { username }),
      ...(password === "" ? {} : { password }),
    } as const;
    // A session the broker keeps (MQTT 5 §3.1.2.11.2): while the hub is away (a restart, a
    // dropped connection), the broker queues the QoS 1 reports for it, and sends again those it
    // delivered and the hub had not acknowledged. With a clean session, both were discarded,
    // and the hub's PUBACK after commit protected nothing.
    this.#client = new MqttClient(openSocket, {
      ...common,
      clean: false,
      properties: {
        receiveMaximum: options.receiveMaximum ?? DEFAULT_RECEIVE_MAXIMUM,
        sessionExpiryInterval: options.sessionExpirySeconds ?? DEFAULT_SESSION_EXPIRY_SECONDS,
      },
      clientId: options.clientId,
      resubscribe: true,
    });
    this.#publisher = new MqttClient(openSocket, { ...common, clientId: `${options.clientId}-out` });
    this.#publisher.on("connect", (connack) => {
      this.#maxOutgoingPacket = connack.properties?.maximumPacketSize ?? Number.POSITIVE_INFINITY;
    });
    for (const [client, role] of [
      [this.#client, "subscriptions"],
      [this.#publisher, "publishes"],
    ] as const) {
      client.on("error", (error) =>
        options.logger.warn({ err: error, broker: this.url, connection: role }, "MQTT broker error"),
      );
      client.on("offline", () =>
        options.logger.warn({ broker: this.url, connection: role }, "MQTT broker offline; reconnecting"),
      );
      if (options.mayReconnect !== undefined) {
        const mayReconnect = options.mayReconnect;
        client.on("close", () => this.#reconnectWhenConfirmed(client, role, mayReconnect));
      }
    }
    // mqtt.js sends the PUBACK when this calls back, and reads the next packet only then
    // (PITFALLS). To let many messages share one group commit, a QoS 1 message is handed on and
    // mqtt.js is told not to acknowledge it (a callback with an error skips its PUBACK and goes
    // on); its PUBACK is sent once its handlers settled, i.e. after its Change committed. The
    // broker keeps at most `receiveMaximum` of them unacknowledged.
    this.#client.handleMessage = (packet, callback) => {
      if (packet.cmd !== "publish") {
        callback();
        return;
      }
      if (this.#closing) {
        // Stopping: left unacknowledged, the broker sends it again to the session's next holder.
        callback(packet.qos === 0 ? undefined : DEFERRED_ACK);
        return;
      }
      if (
        this.#early !== undefined &&
        packet.qos === 1 &&
        packet.messageId !== undefined &&
        this.#handlersOf(packet.topic).length === 0
      ) {
        // A resumed session's messages arrive with the CONNACK, before the gateway said what it
        // takes: kept unacknowledged (at most Receive Maximum of them) until a handler for them
        // is in place, or `open` says none will come.
        this.#early.push({ packet, stream: this.#client.stream });
        callback(DEFERRED_ACK);
        return;
      }
      this.#deliver(packet, this.#client.stream, callback);
    };
  }

  /**
   * A connection dropped (the broker gone, or the session given to another client with the hub's
   * client id): it connects again once `mayReconnect` confirms, with what it had in flight.
   */
  #reconnectWhenConfirmed(client: MqttClient, role: string, mayReconnect: () => Promise<boolean>): void {
    if (this.#closing || client.disconnecting) return;
    this.#options.logger.warn({ broker: this.url, connection: role }, "MQTT broker offline; reconnecting");
    const timer = setTimeout(() => {
      void mayReconnect()
        .catch(() => false)
        .then((confirmed) => {
          if (this.#closing || client.disconnecting || client.connected) return;
          if (confirmed) {
            client.reconnect({ incomingStore: client.incomingStore, outgoingStore: client.outgoingStore });
            return;
          }
          // No longer this process's session: what comes is left for the one that holds it.
          this.#closing = true;
          this.#options.logger.warn(
            { broker: this.url, connection: role },
            "MQTT: not reconnecting, this process no longer holds the hub's session",
          );
        });
    }, RECONNECT_MS);
    timer.unref();
  }

  /** Hands a message to its handlers; a QoS 1 message is acknowledged once they settled. */
  #deliver(packet: IPublishPacket, stream: unknown, callback: (error?: Error) => void): void {
    const options = this.#options;
    const handlers = this.#handlersOf(packet.topic);
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    // A message larger than the hub's limit is handed on all the same: its handler refuses it
    // and tells the device why (the broker has already sent all of it).
    if (handlers.length === 0) {
      callback();
      return;
    }
    const correlationData = packet.properties?.correlationData;
    const message = {
      topic: packet.topic,
      payload,
      retain: packet.retain,
      ...(correlationData === undefined ? {} : { correlationData }),
    };
    const handle = () =>
      handlers.length === 1 ? handlers[0]?.(message) : Promise.all(handlers.map((h) => h(message)));
    // A handler rejects only when the hub could not take the message (a full queue, a failing
    // disk): a device's own mistake is answered on its errors topic and resolves. A QoS 1 message
    // is then taken again, later, and acknowledged only once it is recorded: the broker holds it
    // meanwhile (and sends no more than Receive Maximum of them), and it is never lost. If the
    // connection drops first, the broker sends it again on the resumed session: this try stops.
    const retrying = packet.qos === 1 && packet.messageId !== undefined;
    // Whether it was taken: one given up on (the link stopping) is not acknowledged.
    const settled = (async () => {
      for (let delayMs = RETRY_FIRST_MS; ; delayMs = Math.min(delayMs * 2, RETRY_MAX_MS)) {
        try {
          await handle();
          return true;
        } catch (error) {
          const again = retrying && !this.#closing && this.#client.stream === stream;
          options.logger.error(
            { err: error, topic: packet.topic, ...(again && { retryInMs: delayMs }) },
            again
              ? "MQTT: a message could not be taken; it is held unacknowledged and taken again"
              : "MQTT: a message could not be taken",
          );
          if (!again) return false;
          await new Promise((resolve) => setTimeout(resolve, delayMs).unref());
          if (this.#closing || this.#client.stream !== stream) return false;
        }
      }
    })();
    if (packet.qos !== 1 || packet.messageId === undefined) {
      if (packet.qos !== 0) {
        // QoS 2 (never granted: subscriptions are QoS 1) keeps mqtt.js's order.
        void settled.then(() => callback());
        return;
      }
      // QoS 0 needs no PUBACK, and mqtt.js reads on once called back: at once, unless as many
      // wait for their commits as QoS 1 may; then once this one is taken, so that a flood waits
      // in the broker, not in the hub's memory (400,000 readings at 10k/s held 1 GB).
      const waiting = ++this.#qos0Waiting > (options.receiveMaximum ?? DEFAULT_RECEIVE_MAXIMUM);
      void settled.then(() => {
        this.#qos0Waiting--;
        if (waiting) callback();
      });
      if (!waiting) callback();
      return;
    }
    const messageId = packet.messageId;
    callback(DEFERRED_ACK);
    const acknowledged = settled.then((taken) => {
      this.#inFlight.delete(acknowledged);
      if (taken) this.#acknowledge(stream, messageId);
    });
    this.#inFlight.add(acknowledged);
  }

  /**
   * Every handler is in place: the messages held for want of one (a resumed session's queue, on
   * topics no longer handled) are acknowledged, and from now on every message is taken as it comes.
   */
  open(): void {
    const early = this.#early ?? [];
    this.#early = undefined;
    for (const held of early) this.#deliverHeld(held);
  }

  /** A held message, delivered; its PUBACK, which mqtt.js was told not to send, is sent here. */
  #deliverHeld({ packet, stream }: { packet: IPublishPacket; stream: unknown }): void {
    const messageId = packet.messageId;
    // Called without an error when nothing takes the message: acknowledged at once.
    this.#deliver(packet, stream, (error) => {
      if (error === undefined && messageId !== undefined) this.#acknowledge(stream, messageId);
    });
  }

  /** The handlers whose filters match a topic; remembered per topic, since devices repeat theirs. */
  #handlersOf(topic: string): readonly InboundHandler[] {
    let handlers = this.#matches.get(topic);
    if (handlers === undefined) {
      handlers = this.#handlers
        .filter((h) => h.filters.some((f) => topicMatches(f, topic)))
        .map((h) => h.handler);
      if (topic.length <= MAX_REMEMBERED_TOPIC_LENGTH) {
        if (this.#matches.size >= MAX_REMEMBERED_TOPICS) this.#matches.clear();
        this.#matches.set(topic, handlers);
      }
    }
    return handlers;
  }

  /** PUBACK on the connection the message came on; after a reconnect the broker has forgotten it. */
  #acknowledge(stream: unknown, messageId: number): void {
    if (!this.#client.connected || this.#client.stream !== stream) return;
    // The PUBACKs of one commit leave together, in one write.
    this.#acks.add(stream as Writable, pubackPacket(messageId));
  }

  static async start(options: ExternalBrokerOptions): Promise<ExternalBroker> {
    const link = new ExternalBroker(options);
    const waitMs = options.connectWaitMs ?? 5_000;
    const connectedWithin = (client: MqttClient) =>
      new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), waitMs);
        client.once("connect", () => {
          clearTimeout(timer);
          resolve(true);
        });
      });
    const both = await Promise.all([connectedWithin(link.#client), connectedWithin(link.#publisher)]);
    const connected = both.every(Boolean);
    if (!connected) {
      link.notice = `MQTT: no connection to ${link.url} yet; the hub keeps trying in the background`;
    }
    return link;
  }

  async handle(filters: readonly string[], handler: InboundHandler, options?: HandleOptions): Promise<void> {
    this.#handlers.push({ filters, handler });
    this.#matches.clear();
    if (this.#early !== undefined && this.#early.length > 0) {
      // The messages held for this handler go first, in the order they came.
      const early = this.#early;
      this.#early = [];
      for (const held of early) {
        if (this.#handlersOf(held.packet.topic).length === 0) this.#early.push(held);
        else this.#deliverHeld(held);
      }
    }
    // MQTT 5 §3.8.3.1 Retain Handling 2: the broker sends no retained message on subscribing, so
    // that a retained report is not recorded again each time the hub connects.
    const retainHandling = options?.retained === false ? { rh: 2 } : {};
    const subscriptions = Object.fromEntries(filters.map((f) => [f, { qos: 1 as const, ...retainHandling }]));
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

  publish(topic: string, payload: Buffer, options: PublishOptions): boolean {
    const stream = this.#publisher.stream as Writable | undefined;
    if (
      stream === undefined ||
      !this.#publisher.connected ||
      (stream.writableLength ?? 0) + this.#outgoing.pending > MAX_BUFFERED_BYTES
    ) {
      if (this.#dropped++ % 10_000 === 0) {
        this.#options.logger.warn(
          { dropped: this.#dropped, broker: this.url },
          "MQTT: offline or slow, messages dropped",
        );
      }
      return false;
    }
    const publishOptions = { qos: options.qos, retain: options.retain ?? false };
    if (options.qos === 0) {
      // Fire and forget, batched with the others of this turn (no packet id, no `drain` listener).
      const packet = publishPacket(topic, payload, publishOptions.retain);
      if (packet.length > this.#maxOutgoingPacket) {
        // The broker would close the connection over it (MQTT 5 §3.2.2.3.6): not sent.
        this.#options.logger.warn(
          { topic, bytes: packet.length, maximum: this.#maxOutgoingPacket, broker: this.url },
          "MQTT: a message larger than the broker's Maximum Packet Size was not published",
        );
        return false;
      }
      this.#outgoing.add(stream, packet);
      return true;
    }
    const { correlation } = options;
    const withProperties =
      correlation === undefined
        ? publishOptions
        : {
            ...publishOptions,
            properties: { correlationData: correlation.data, responseTopic: correlation.responseTopic },
          };
    this.#publisher.publish(topic, payload, withProperties, (error) => {
      if (error) this.#options.logger.warn({ err: error, topic }, "MQTT: publish failed");
    });
    return true;
  }

  /**
   * Takes no more messages, waits for those taken to be recorded (or refused) and sends their
   * PUBACKs, then disconnects, leaving the session to the broker: what was not acknowledged is sent
   * again to its next holder (this hub restarted, or the replica taking the gateway over), and what
   * was recorded is not, since its PUBACK left before the DISCONNECT.
   */
  async close(): Promise<void> {
    this.#closing = true;
    while (this.#inFlight.size > 0) await Promise.all(this.#inFlight);
    this.#acks.flush();
    await Promise.all(
      [this.#client, this.#publisher].map((client) =>
        client.endAsync(!client.connected).catch(() => client.end(true)),
      ),
    );
  }
}
