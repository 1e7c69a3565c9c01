// One MQTT client connection to one broker, shared by every target on it: sockets opened through
// the address policy with TCP_NODELAY, reconnects with backoff, subscriptions counted per filter
// (mqtt.js resubscribes them after a reconnect), deliveries acknowledged after their listeners.
import { Socket, connect as netConnect, isIP } from "node:net";
import { connect as tlsConnect } from "node:tls";
import { MqttClient } from "mqtt";
import type { IClientPublishOptions, IPublishPacket, ISubscriptionMap } from "mqtt";
import type { AddressPolicy } from "../address-policy.js";
import { backoffDelay } from "../backoff.js";
import type { BackoffOptions } from "../backoff.js";
import type { BindingFailureReason } from "../binding.js";
import { topicMatches } from "./mqtt-topic.js";

/** QoS 1 deliveries in flight, unacknowledged, on an MQTT 5 connection (§3.1.2.11.3). */
const RECEIVE_MAXIMUM = 1_024;

/** Room in a packet besides its payload: the fixed header, a topic (at most 65,535 bytes), properties. */
const PACKET_OVERHEAD_BYTES = 128 * 1024;

/** Handed to mqtt.js's `handleMessage` callback: it then sends no PUBACK and reads on. */
const DEFERRED_ACK = new Error("acknowledged once its listeners settled");

/** mqtt.js's own way to send a packet on its connection (not in its typings). */
interface PacketSender {
  _sendPacket(packet: { cmd: "puback"; messageId: number; reasonCode: number }): void;
}

export interface BrokerConnectionOptions {
  /** `mqtt:` or `mqtts:`; only the host and port are used. */
  readonly broker: URL;
  readonly username?: string;
  readonly password?: string;
  readonly protocolVersion: 4 | 5;
  readonly clientId: string;
  readonly keepaliveSeconds: number;
  /** The largest payload wanted; on MQTT 5, the broker is asked not to send packets much larger. */
  readonly maxMessageBytes?: number;
  readonly connectTimeoutMs: number;
  readonly reconnect: BackoffOptions;
  readonly addressPolicy: AddressPolicy;
  readonly random: () => number;
  readonly onState?: (state: "connected" | "offline", error?: Error) => void;
}

/** A failure of the connection, turned into a BindingError (with the target) by the binding. */
export class BrokerError extends Error {
  constructor(
    readonly reason: BindingFailureReason,
    message: string,
    readonly status?: number,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = "BrokerError";
  }
}

export type QoS = 0 | 1 | 2;

export type PacketListener = (packet: IPublishPacket) => void | Promise<void>;

interface FilterEntry {
  qos: QoS;
  readonly listeners: Set<PacketListener>;
  subscribed: Promise<void>;
}

export class BrokerConnection {
  readonly #options: BrokerConnectionOptions;
  readonly #client: MqttClient;
  readonly #filters = new Map<string, FilterEntry>();
  readonly #waiters = new Set<{ resolve: () => void; reject: (error: BrokerError) => void }>();
  readonly #errorListeners = new Set<(error: BrokerError) => void>();
  /** Publishes and subscriptions under way: a connection is idle with none and no filter. */
  #busy = 0;
  #failures = 0;
  #lastError: Error | undefined;
  #failed: BrokerError | undefined;
  #closed = false;

  constructor(options: BrokerConnectionOptions) {
    this.#options = options;
    this.#client = new MqttClient(() => this.#openSocket(), {
      protocolId: "MQTT",
      protocolVersion: options.protocolVersion,
      // MQTT 5: the broker sends at most this many QoS 1 messages before their PUBACKs, and no
      // packet larger than the Maximum Packet Size (§3.1.2.11.4: it discards them for this client).
      ...(options.protocolVersion === 5
        ? {
            properties: {
              receiveMaximum: RECEIVE_MAXIMUM,
              ...(options.maxMessageBytes === undefined
                ? {}
                : { maximumPacketSize: options.maxMessageBytes + PACKET_OVERHEAD_BYTES }),
            },
          }
        : {}),
      clientId: options.clientId,
      clean: true,
      resubscribe: true,
      keepalive: options.keepaliveSeconds,
      connectTimeout: options.connectTimeoutMs,
      reconnectPeriod: options.reconnect.baseDelayMs,
      ...(options.username === undefined ? {} : { username: options.username }),
      ...(options.password === undefined ? {} : { password: options.password }),
    });
    const client = this.#client;
    // mqtt.js retries at a fixed period; it reads the period each time the link drops, so
    // setting it just before its own "close" handler runs gives exponential backoff.
    client.prependListener("close", () => {
      client.options.reconnectPeriod = backoffDelay(this.#failures++, options.reconnect, options.random);
    });
    client.on("connect", () => {
      this.#failures = 0;
      this.#lastError = undefined;
      for (const waiter of this.#waiters) waiter.resolve();
      this.#waiters.clear();
      options.onState?.("connected");
    });
    client.on("offline", () => options.onState?.("offline", this.#lastError));
    client.on("error", (error) => this.#onError(error));
    // Deliveries go through handleMessage, which mqtt.js acknowledges (QoS 1 and 2) only when it
    // calls back, and it reads the next packet only then (PITFALLS.md). A QoS 1 delivery is
    // handed to the listeners at once and mqtt.js told not to acknowledge it (a callback with an
    // error skips its PUBACK and reads on): its PUBACK goes once the listeners settled, so that
    // the deliveries that arrive while earlier ones commit are recorded together.
    client.handleMessage = (packet, callback) => {
      if (packet.cmd !== "publish") {
        callback();
        return;
      }
      const delivered = this.#deliver(packet);
      if (packet.qos !== 1 || packet.messageId === undefined) {
        void delivered.then(() => callback());
        return;
      }
      const stream = client.stream;
      const messageId = packet.messageId;
      callback(DEFERRED_ACK);
      void delivered.then(() => {
        // After a reconnect, the broker has forgotten the message (clean session).
        if (!client.connected || client.stream !== stream) return;
        (client as unknown as PacketSender)._sendPacket({ cmd: "puback", messageId, reasonCode: 0 });
      });
    };
  }

  /** The connection failed for good (address denied, CONNACK refused): make a new one. */
  get failed(): BrokerError | undefined {
    return this.#failed;
  }

  /** No subscription held and no operation under way: closing it now loses nothing. */
  get idle(): boolean {
    return this.#busy === 0 && this.#filters.size === 0;
  }

  get protocolVersion(): 4 | 5 {
    return this.#options.protocolVersion;
  }

  /** Connection errors after connect (the link keeps retrying unless the error is final). */
  onError(listener: (error: BrokerError) => void): () => void {
    this.#errorListeners.add(listener);
    return () => this.#errorListeners.delete(listener);
  }

  /** Resolves once connected; rejects after `timeoutMs`, or at once if the connection failed. */
  async ready(timeoutMs: number): Promise<void> {
    if (this.#failed !== undefined) throw this.#failed;
    if (this.#closed) throw new BrokerError("closed", "the connection is closed");
    if (this.#client.connected) return;
    await new Promise<void>((resolve, reject) => {
      const waiter = {
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (error: BrokerError) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        const last = this.#lastError;
        reject(
          last === undefined
            ? new BrokerError("timeout", `no connection to the broker in ${timeoutMs} ms`)
            : new BrokerError("unreachable", `no connection to the broker: ${last.message}`, undefined, {
                cause: last,
              }),
        );
      }, timeoutMs);
      this.#waiters.add(waiter);
    });
  }

  /**
   * Subscribes `listener` to `filter`; resolves with the function that ends it once the broker
   * granted the subscription. The listener is in place before the SUBSCRIBE goes out, so retained
   * messages that follow the SUBACK reach it.
   */
  async subscribe(
    filter: string,
    qos: QoS,
    listener: PacketListener,
    timeoutMs: number,
  ): Promise<() => Promise<void>> {
    this.#busy++;
    try {
      return await this.#subscribeListener(filter, qos, listener, timeoutMs);
    } finally {
      this.#busy--;
    }
  }

  /** Publishes; resolves when written (QoS 0) or acknowledged (QoS 1, 2). */
  async publish(
    topic: string,
    payload: Buffer,
    options: IClientPublishOptions,
    timeoutMs: number,
  ): Promise<void> {
    this.#busy++;
    try {
      await this.ready(timeoutMs);
      await withTimeout(this.#client.publishAsync(topic, payload, options), timeoutMs);
    } catch (error) {
      throw asBrokerError(error, "the broker did not take the message");
    } finally {
      this.#busy--;
    }
  }

  async #subscribeListener(
    filter: string,
    qos: QoS,
    listener: PacketListener,
    timeoutMs: number,
  ): Promise<() => Promise<void>> {
    await this.ready(timeoutMs);
    let entry = this.#filters.get(filter);
    if (entry === undefined) {
      entry = { qos, listeners: new Set(), subscribed: this.#subscribe(filter, qos, timeoutMs) };
      this.#filters.set(filter, entry);
    } else if (qos > entry.qos) {
      entry.qos = qos;
      entry.subscribed = this.#subscribe(filter, qos, timeoutMs);
    }
    const current = entry;
    current.listeners.add(listener);
    const unsubscribe = async () => {
      current.listeners.delete(listener);
      if (current.listeners.size > 0 || this.#filters.get(filter) !== current) return;
      this.#filters.delete(filter);
      if (this.#closed || !this.#client.connected) return;
      await withTimeout(this.#client.unsubscribeAsync(filter), timeoutMs).catch(() => {
        // The broker forgets a clean session's subscriptions when the link drops anyway.
      });
    };
    try {
      await current.subscribed;
    } catch (error) {
      await unsubscribe();
      throw error;
    }
    return unsubscribe;
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const waiter of this.#waiters) waiter.reject(new BrokerError("closed", "the connection was closed"));
    this.#waiters.clear();
    this.#filters.clear();
    await withTimeout(this.#client.endAsync(!this.#client.connected), this.#options.connectTimeoutMs).catch(
      () => this.#client.end(true),
    );
  }

  async #subscribe(filter: string, qos: QoS, timeoutMs: number): Promise<void> {
    let granted;
    try {
      // `resubscribe`: sent even when mqtt.js still remembers the filter (it was given up while the
      // connection was down, so no UNSUBSCRIBE went out); mqtt.js would otherwise send nothing and
      // grant nothing, and the filter be taken as refused for good.
      const subscription: ISubscriptionMap = Object.assign({ [filter]: { qos } }, { resubscribe: true });
      granted = await withTimeout(this.#client.subscribeAsync(subscription), timeoutMs);
    } catch (error) {
      throw asBrokerError(error, `the broker did not grant a subscription to ${filter}`);
    }
    const code = granted[0]?.qos;
    if (code === undefined || code >= 0x80) {
      throw new BrokerError("status", `the broker refused a subscription to ${filter}`, code);
    }
  }

  async #deliver(packet: IPublishPacket): Promise<void> {
    const pending: Promise<void>[] = [];
    for (const [filter, entry] of this.#filters) {
      if (!topicMatches(filter, packet.topic)) continue;
      for (const listener of entry.listeners) {
        try {
          const result = listener(packet);
          if (result !== undefined) pending.push(result.catch(rethrow));
        } catch (error) {
          rethrow(error);
        }
      }
    }
    await Promise.all(pending);
  }

  #openSocket(): Socket {
    const { broker, addressPolicy } = this.#options;
    const host = broker.hostname.replace(/^\[(.*)\]$/, "$1");
    const port = Number(broker.port || (broker.protocol === "mqtts:" ? 8883 : 1883));
    const denied = addressPolicy.checkHost(host, port);
    if (denied !== undefined) {
      const socket = new Socket();
      process.nextTick(() => socket.destroy(denied));
      return socket;
    }
    const socket =
      broker.protocol === "mqtts:"
        ? tlsConnect({
            host,
            port,
            lookup: addressPolicy.lookupFor(port),
            ...(isIP(host) === 0 ? { servername: host } : {}),
          })
        : netConnect({ host, port, lookup: addressPolicy.lookupFor(port) });
    // mqtt.js leaves Nagle on: with it, p99 latency at 5k msg/s was 6–44 ms instead of 2–5 ms.
    socket.setNoDelay(true);
    return socket;
  }

  #onError(error: Error): void {
    this.#lastError = error;
    const code = (error as { code?: unknown }).code;
    let final: BrokerError | undefined;
    if (code === "ERR_ADDRESS_DENIED")
      final = new BrokerError("address-denied", error.message, undefined, { cause: error });
    else if (typeof code === "number") {
      // A CONNACK refusal (bad credentials, not authorised): mqtt.js stops reconnecting.
      final = new BrokerError("status", error.message, code, { cause: error });
    }
    if (final !== undefined) {
      this.#failed = final;
      for (const waiter of this.#waiters) waiter.reject(final);
      this.#waiters.clear();
      this.#client.end(true);
    }
    const reported = final ?? new BrokerError("unreachable", error.message, undefined, { cause: error });
    for (const listener of this.#errorListeners) listener(reported);
  }
}

function asBrokerError(error: unknown, message: string): BrokerError {
  if (error instanceof BrokerError) return error;
  const why = error instanceof Error ? error.message : String(error);
  return new BrokerError("unreachable", `${message}: ${why}`, undefined, { cause: error });
}

class TimeoutError extends BrokerError {
  constructor(ms: number) {
    super("timeout", `no answer from the broker in ${ms} ms`);
  }
}

/**
 * Races a promise against a timer; the timer never outlives the race. A timer runs before the
 * loop polls the sockets: when the thread was held up past `ms` (a long callback, the process
 * descheduled on a busy machine), an answer that arrived meanwhile is still unread when it fires.
 * So the timeout counts only after the loop has polled once more.
 */
export async function withTimeout<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  let poll: NodeJS.Immediate | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_resolve, reject) => {
        timer = setTimeout(() => {
          poll = setImmediate(() => reject(new TimeoutError(ms)));
        }, ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
    clearImmediate(poll);
  }
}

// A listener that throws is a bug in the caller: surfaced as an uncaught exception, not swallowed.
function rethrow(error: unknown): void {
  queueMicrotask(() => {
    throw error;
  });
}
