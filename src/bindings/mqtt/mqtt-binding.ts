// The MQTT binding (W3C WoT Binding Templates, MQTT; mqtt.js): MQTT 3.1.1 and 5, observe and
// subscribe on topics from forms, write and invoke by publish, MQTT 5 request/response for invoke.
import { createHash, randomBytes } from "node:crypto";
import type { IClientPublishOptions, IPublishPacket } from "mqtt";
import { AddressPolicy } from "../address-policy.js";
import type { BackoffOptions } from "../backoff.js";
import { bindingError } from "../binding.js";
import type { BindingError } from "../../core/index.js";
import type {
  ActionOutcome,
  Binding,
  ErrorListener,
  Subscription,
  Target,
  ValueListener,
} from "../binding.js";
import { decodeJsonOrText, encodeFor, isJson, isText, mediaType } from "../content.js";
import { BrokerConnection, BrokerError, withTimeout } from "./broker-connection.js";
import type { QoS } from "./broker-connection.js";
import { filterWithin, hrefTopic, isTopicFilter, isTopicName } from "./mqtt-topic.js";

export interface MqttConnectionEvent {
  /** `mqtt://host:port`. */
  readonly broker: string;
  readonly clientId: string;
  readonly state: "connected" | "offline";
  readonly error?: Error;
}

export interface MqttBindingOptions {
  /** Which addresses may be reached; default: all. */
  readonly addressPolicy?: AddressPolicy;
  /** 5 (default) or 4 (MQTT 3.1.1). */
  readonly protocolVersion?: 4 | 5;
  /** The protocol version for one broker (`mqtt://host:port`), e.g. 4 for an MQTT 3.1.1-only broker. */
  readonly protocolVersionFor?: (broker: string) => 4 | 5 | undefined;
  /** Client ids are this prefix, a dash and random hex; default "hyperthings". */
  readonly clientIdPrefix?: string;
  /** Default 30 s. */
  readonly keepaliveSeconds?: number;
  /** Default 10 s. */
  readonly connectTimeoutMs?: number;
  /** Waiting for the connection, a SUBACK or PUBACK, the first message of a read, a reply; default 10 s. */
  readonly operationTimeoutMs?: number;
  /**
   * The largest payload taken from the broker; default 1 MiB, as an HTTP answer. A larger message
   * is no value: a subscription reports it (`too-large`) and a read or a reply fails with it. On
   * MQTT 5 the broker is also told (Maximum Packet Size) not to send larger packets at all.
   */
  readonly maxMessageBytes?: number;
  /**
   * Topic prefixes this process publishes on itself, by broker (`mqtt://host:port`): the hub's
   * `{prefix}/changes/` on its own broker. A message there is no Thing's value, and is not taken
   * as one: a TD observing `#` (or that topic) on the hub's broker would otherwise record every
   * Change again, inside a new Change that is published again, and so on.
   */
  readonly ownTopics?: (broker: string) => readonly string[] | undefined;
  /**
   * The user name and password for a broker (`mqtt://host:port`) when a Thing has no `basic`
   * credentials of its own: the hub's admin token on its own embedded broker, lent to that Thing's
   * forms only within the topics it returns.
   */
  readonly credentialsFor?: (broker: string, thing: string) => BrokerCredentials | undefined;
  /**
   * A write this process carries itself, by broker (`mqtt://host:port`) and topic: the hub's MQTT
   * gateway for `{prefix}/things/{id}/properties/{name}/set` on its own broker, which waits for the
   * device's answer. Undefined: the binding publishes the value itself.
   */
  readonly writeThrough?: (
    broker: string,
    topic: string,
    value: unknown,
    thing: string,
  ) => Promise<void> | undefined;
  /** Reconnection backoff; default 1 s doubling to 30 s. */
  readonly reconnect?: Partial<BackoffOptions>;
  /** Told when a broker connection comes up or goes down. */
  readonly onConnection?: (event: MqttConnectionEvent) => void;
  /** Jitter source, for tests; default Math.random. */
  readonly random?: () => number;
}

/** Credentials the binding lends a Thing that has none of its own for a broker. */
export interface BrokerCredentials {
  readonly username: string;
  readonly password: string;
  /**
   * The topic filters these credentials are lent for: a form whose topic or filter is not within
   * one of them is refused (`address-denied`) before anything is sent. Undefined: any topic.
   */
  readonly topics?: readonly string[];
}

/** The defaults of MqttBindingOptions, in one place. */
export const MQTT_BINDING_DEFAULTS = {
  protocolVersion: 5,
  clientIdPrefix: "hyperthings",
  keepaliveSeconds: 30,
  connectTimeoutMs: 10_000,
  operationTimeoutMs: 10_000,
  maxMessageBytes: 1024 * 1024,
  reconnect: { baseDelayMs: 1_000, maxDelayMs: 30_000 },
} as const;

type Packet = "publish" | "subscribe";

export class MqttBinding implements Binding {
  readonly schemes = ["mqtt", "mqtts"] as const;
  readonly #options: MqttBindingOptions;
  readonly #policy: AddressPolicy;
  readonly #timeoutMs: number;
  readonly #maxMessageBytes: number;
  readonly #connections = new Map<string, BrokerConnection>();
  readonly #subscriptions = new Set<Subscription>();
  #closed = false;

  constructor(options: MqttBindingOptions = {}) {
    this.#options = options;
    this.#policy = options.addressPolicy ?? new AddressPolicy();
    this.#timeoutMs = options.operationTimeoutMs ?? MQTT_BINDING_DEFAULTS.operationTimeoutMs;
    this.#maxMessageBytes = options.maxMessageBytes ?? MQTT_BINDING_DEFAULTS.maxMessageBytes;
  }

  /** Subscribes to the form's topic and takes the first message: the retained value, or the next one. */
  async readProperty(target: Target): Promise<unknown> {
    const filter = this.#topic(target, "subscribe");
    const connection = this.#connection(target, [filter]);
    let settle: (packet: IPublishPacket) => void = () => undefined;
    const first = new Promise<IPublishPacket>((resolve) => (settle = resolve));
    const own = this.#ownTopics(target);
    const unsubscribe = await this.#call(target, () =>
      connection.subscribe(
        filter,
        qosOf(target),
        (packet) => {
          if (!isOwn(own, packet.topic)) settle(packet);
        },
        this.#timeoutMs,
      ),
    );
    try {
      const packet = await this.#call(target, () => withTimeout(first, this.#timeoutMs));
      return this.#decode(target, packet);
    } finally {
      await unsubscribe();
    }
  }

  async writeProperty(target: Target, value: unknown): Promise<void> {
    const topic = this.#topic(target, "publish");
    const url = new URL(target.href);
    // The gateway writes with the hub's own rights: only where the Thing could write itself.
    this.#credentialsOf(target, [topic]);
    const through = this.#options.writeThrough?.(`${url.protocol}//${url.host}`, topic, value, target.thing);
    if (through !== undefined) return through;
    const connection = this.#connection(target, [topic]);
    const payload = encode(target, value);
    await this.#call(target, () =>
      connection.publish(topic, payload, publishOptions(target, connection), this.#timeoutMs),
    );
  }

  /**
   * Publishes the input. When the form's `response` names an `mqv:topic` (MQTT 5), waits for the
   * reply there that carries this request's correlation data, and returns it as the output.
   */
  async invokeAction(target: Target, input?: unknown): Promise<ActionOutcome> {
    const topic = this.#topic(target, "publish");
    const responseTopic = target.terms.responseTopic;
    const connection = this.#connection(
      target,
      responseTopic === undefined ? [topic] : [topic, responseTopic],
    );
    const payload = encode(target, input);
    if (responseTopic === undefined) {
      await this.#call(target, () =>
        connection.publish(topic, payload, publishOptions(target, connection), this.#timeoutMs),
      );
      return { kind: "completed", output: undefined };
    }
    if (connection.protocolVersion !== 5) {
      throw bindingError(target, "unsupported", "request/response (a response mqv:topic) needs MQTT 5");
    }
    const correlation = randomBytes(16);
    let settle: (packet: IPublishPacket) => void = () => undefined;
    const reply = new Promise<IPublishPacket>((resolve) => (settle = resolve));
    const unsubscribe = await this.#call(target, () =>
      connection.subscribe(
        responseTopic,
        qosOf(target),
        (packet) => {
          const data = packet.properties?.correlationData;
          if (data !== undefined && correlation.equals(data)) settle(packet);
        },
        this.#timeoutMs,
      ),
    );
    try {
      const options = publishOptions(target, connection);
      options.properties = { ...options.properties, responseTopic, correlationData: correlation };
      await this.#call(target, () => connection.publish(topic, payload, options, this.#timeoutMs));
      const packet = await this.#call(target, () => withTimeout(reply, this.#timeoutMs));
      return { kind: "completed", output: this.#decode(target, packet) };
    } finally {
      await unsubscribe();
    }
  }

  /** A retained message, sent on subscribing, is the property's current value. */
  async observeProperty(
    target: Target,
    onValue: ValueListener,
    onError: ErrorListener,
  ): Promise<Subscription> {
    return this.#subscribe(target, onValue, onError, false);
  }

  /**
   * A retained message is no event: the broker sends it again on every subscription (each
   * reconnect, each restart of the hub), and the occurrence it stands for happened once, before.
   */
  async subscribeEvent(target: Target, onData: ValueListener, onError: ErrorListener): Promise<Subscription> {
    return this.#subscribe(target, onData, onError, true);
  }

  async close(): Promise<void> {
    this.#closed = true;
    await Promise.all([...this.#subscriptions].map((s) => s.close()));
    await Promise.all([...this.#connections.values()].map((c) => c.close()));
    this.#connections.clear();
  }

  async #subscribe(
    target: Target,
    onValue: ValueListener,
    onError: ErrorListener,
    skipRetained: boolean,
  ): Promise<Subscription> {
    const filter = this.#topic(target, "subscribe");
    const connection = this.#connection(target, [filter]);
    const own = this.#ownTopics(target);
    let open = true;
    const unsubscribe = await this.#call(target, () =>
      connection.subscribe(
        filter,
        qosOf(target),
        async (packet) => {
          // MQTT §3.3.1.3: the retain flag is set only on a stored message sent for a new subscription.
          if (!open || (skipRetained && packet.retain) || isOwn(own, packet.topic)) return;
          const tooLarge = this.#tooLarge(target, packet);
          if (tooLarge !== undefined) onError(tooLarge);
          // A retained message is the broker's stored value, sent because the hub subscribed (as
          // after each reconnect): a read, not the Thing's publish.
          else await onValue(decodePayload(target, packet), packet.retain ? "read" : "pushed");
        },
        this.#timeoutMs,
      ),
    );
    const stopErrors = connection.onError((error) => {
      if (open)
        onError(bindingError(target, error.reason, error.message, { status: error.status, cause: error }));
    });
    const subscriptions = this.#subscriptions;
    const subscription: Subscription = {
      async close() {
        if (!open) return;
        open = false;
        subscriptions.delete(subscription);
        stopErrors();
        await unsubscribe();
      },
    };
    subscriptions.add(subscription);
    return subscription;
  }

  /** The message's payload as a value, or the `too-large` BindingError past `maxMessageBytes`. */
  #decode(target: Target, packet: IPublishPacket): unknown {
    const tooLarge = this.#tooLarge(target, packet);
    if (tooLarge !== undefined) throw tooLarge;
    return decodePayload(target, packet);
  }

  #tooLarge(target: Target, packet: IPublishPacket): BindingError | undefined {
    const size = packet.payload.length;
    if (size <= this.#maxMessageBytes) return undefined;
    return bindingError(
      target,
      "too-large",
      `a message of ${size} bytes on ${packet.topic} is larger than ${this.#maxMessageBytes} bytes`,
    );
  }

  /** What this process publishes on the target's broker itself, asked at each message (see ownTopics). */
  #ownTopics(target: Target): () => readonly string[] | undefined {
    const ask = this.#options.ownTopics;
    if (ask === undefined) return () => undefined;
    const url = new URL(target.href);
    const broker = `${url.protocol}//${url.host}`;
    return () => ask(broker);
  }

  /**
   * The user name and password for the target: its own `basic` credentials, else those lent for
   * its broker (credentialsFor), which must open every topic the operation uses.
   */
  #credentialsOf(
    target: Target,
    topics: readonly string[],
  ): { username: string | undefined; password: string | undefined } {
    let username: string | undefined;
    let password: string | undefined;
    for (const credentials of target.credentials) {
      if (credentials.scheme === "basic") ({ username, password } = credentials);
      else if (credentials.scheme !== "nosec") {
        throw bindingError(
          target,
          "unsupported",
          `MQTT carries basic credentials only, not ${credentials.scheme}`,
        );
      }
    }
    if (username !== undefined || password !== undefined) return { username, password };
    const url = new URL(target.href);
    const lent = this.#options.credentialsFor?.(`${url.protocol}//${url.host}`, target.thing);
    if (lent === undefined) return { username, password };
    const allowed = lent.topics;
    const outside =
      allowed === undefined ? undefined : topics.find((t) => !allowed.some((a) => filterWithin(t, a)));
    if (outside !== undefined) {
      throw bindingError(
        target,
        "address-denied",
        `the hub's own broker opens only ${allowed?.join(", ") ?? ""} to a Thing without credentials of its own there, not ${outside}`,
      );
    }
    return { username: lent.username, password: lent.password };
  }

  /** The shared connection for the target's broker, user name and password, made on first use. */
  #connection(target: Target, topics: readonly string[]): BrokerConnection {
    if (this.#closed) throw bindingError(target, "closed", "the MQTT binding is closed");
    const url = new URL(target.href);
    const broker = `${url.protocol}//${url.host}`;
    const { username, password } = this.#credentialsOf(target, topics);
    // Keyed by all that authenticates it: two Things with one user name and different passwords
    // are two clients, and a changed password is a new connection, not the old one kept up.
    const user = `${broker}\n${username ?? ""}\n`;
    const key = `${user}${password === undefined ? "" : createHash("sha256").update(password).digest("hex")}`;
    const existing = this.#connections.get(key);
    if (existing !== undefined && existing.failed === undefined) return existing;
    if (existing !== undefined) void existing.close();
    // A connection of the same user with another password is an old secret's: ended once unused.
    for (const [other, connection] of this.#connections) {
      if (other.startsWith(user) && other !== key && connection.idle) {
        this.#connections.delete(other);
        void connection.close();
      }
    }
    const options = this.#options;
    const clientId = `${options.clientIdPrefix ?? MQTT_BINDING_DEFAULTS.clientIdPrefix}-${randomBytes(6).toString("hex")}`;
    const connection = new BrokerConnection({
      broker: url,
      ...(username === undefined ? {} : { username }),
      ...(password === undefined ? {} : { password }),
      protocolVersion:
        options.protocolVersionFor?.(broker) ??
        options.protocolVersion ??
        MQTT_BINDING_DEFAULTS.protocolVersion,
      clientId,
      keepaliveSeconds: options.keepaliveSeconds ?? MQTT_BINDING_DEFAULTS.keepaliveSeconds,
      maxMessageBytes: this.#maxMessageBytes,
      connectTimeoutMs: options.connectTimeoutMs ?? MQTT_BINDING_DEFAULTS.connectTimeoutMs,
      reconnect: { ...MQTT_BINDING_DEFAULTS.reconnect, ...options.reconnect },
      addressPolicy: this.#policy,
      random: options.random ?? Math.random,
      onState: (state, error) =>
        options.onConnection?.({ broker, clientId, state, ...(error === undefined ? {} : { error }) }),
    });
    this.#connections.set(key, connection);
    return connection;
  }

  /** The topic to publish to, or the filter to subscribe to, checked against `mqv:controlPacket`. */
  #topic(target: Target, packet: Packet): string {
    const { terms } = target;
    const wanted = terms.controlPacket;
    if (wanted !== undefined && wanted !== packet) {
      throw bindingError(
        target,
        "unsupported",
        `${target.op} needs mqv:controlPacket ${packet}, the form says ${wanted}`,
      );
    }
    const topic =
      packet === "subscribe"
        ? (terms.filter ?? terms.topic ?? hrefTopic(target.href))
        : (terms.topic ?? hrefTopic(target.href));
    const valid = topic !== undefined && (packet === "subscribe" ? isTopicFilter(topic) : isTopicName(topic));
    if (!valid) {
      throw bindingError(
        target,
        "unsupported",
        `the form names no MQTT topic to ${packet}${topic === undefined ? "" : ` (${topic})`}`,
      );
    }
    return topic;
  }

  /** Runs a connection step, turning its BrokerErrors into BindingErrors for the target. */
  async #call<T>(target: Target, step: () => Promise<T>): Promise<T> {
    try {
      return await step();
    } catch (error) {
      if (!(error instanceof BrokerError)) throw error;
      throw bindingError(target, error.reason, error.message, {
        status: error.status,
        cause: error.cause ?? error,
      });
    }
  }
}

function qosOf(target: Target): QoS {
  return target.terms.qos ?? 0;
}

function publishOptions(target: Target, connection: BrokerConnection): IClientPublishOptions {
  const options: IClientPublishOptions = { qos: qosOf(target), retain: target.terms.retain ?? false };
  if (connection.protocolVersion === 5) options.properties = { contentType: target.terms.contentType };
  return options;
}

function encode(target: Target, value: unknown): Buffer {
  return encodeFor(target, value) ?? Buffer.alloc(0);
}

/** By the message's MQTT 5 content type, else the form's: JSON falling back to text, text, or bytes. */
function decodePayload(target: Target, packet: IPublishPacket): unknown {
  const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
  const type = packet.properties?.contentType ?? target.terms.contentType;
  if (isJson(type)) return decodeJsonOrText(payload);
  if (isText(type)) return payload.toString("utf8");
  if (mediaType(type) === "") return decodeJsonOrText(payload);
  return payload;
}

function isOwn(own: () => readonly string[] | undefined, topic: string): boolean {
  return own()?.some((prefix) => topic.startsWith(prefix)) ?? false;
}
