// The hub's own MQTT broker (aedes, MQTT 3.1.1): clients authenticate with the admin token, the
// read token or a device password (unless anonymous clients are allowed); sessions are not kept
// (the hub, not the broker, is the durable record); queues and packets are bounded; sockets have
// TCP_NODELAY. The gateway's handlers run inside `authorizePublish`, before the PUBACK.
import { Aedes, type AuthenticateError, type Client, type PublishPacket, type Subscription } from "aedes";
import { createServer, type Server, type Socket } from "node:net";
import type { Logger } from "pino";
import {
  ConflictError,
  UnavailableError,
  homeAssistantThingId,
  homieThingId,
  parseHomeAssistantTopic,
} from "../../core/index.js";
import type { MqttCredential, MqttCredentialKind, MqttCredentials, Principal } from "../../hub/index.js";
import { toProblem } from "../http/problem.js";
import {
  MAX_REMEMBERED_TOPIC_LENGTH,
  topicMatches,
  type BrokerLink,
  type InboundHandler,
  type InboundMessage,
  type MqttPrincipal,
  type PublishOptions,
} from "./broker-link.js";
import {
  announcerOf,
  announcerProblem,
  announcerTopics,
  filterWithin,
  isDevicePassword,
  type AnnouncerRoots,
} from "./device-credentials.js";
import { FrameLimit } from "./frame-limit.js";
import { decodeTopicLevel, encodeTopicLevel, type TopicLayout } from "./topic-layout.js";

export interface EmbeddedBrokerOptions {
  readonly host: string;
  readonly port: number;
  /** When the port is taken: true to listen on a free port instead, false to fail. */
  readonly portFallback: boolean;
  /** The port it fell back to at its last start: tried first when `port` is taken again. */
  readonly lastFallbackPort?: number;
  /** Accept clients that give no password. */
  readonly anonymous: boolean;
  /** The hub's token check (admin and read tokens). */
  readonly authenticate: (token: string) => Principal | undefined;
  readonly adminToken: string;
  /** The credentials the hub issued for devices: what each opens, and which are revoked. */
  readonly credentials: MqttCredentials;
  /** Whether a Thing is registered: a device password is good only while its Thing is. */
  readonly thingExists: (id: string) => Promise<boolean>;
  readonly layout: TopicLayout;
  /** Where Homie and Home Assistant devices publish: what announcer credentials open. */
  readonly roots: AnnouncerRoots;
  readonly maxPacketBytes: number;
  /** Bounds on the retained messages kept (default EMBEDDED_BROKER_LIMITS.retained). */
  readonly maxRetained?: RetainedBounds;
  /**
   * Bounds on the retained messages kept for one publisher (a device password's Thing, else the
   * user name, else the client id), so that one device cannot take `maxRetained` from the others
   * (the hub's settings `mqttRetainedPerClient`, `mqttRetainedBytesPerClient`); default: none but
   * `maxRetained`.
   */
  readonly maxRetainedPerClient?: RetainedBounds;
  /** Bounds on the topic filters one connection may hold (default EMBEDDED_BROKER_LIMITS.subscriptions). */
  readonly maxSubscriptionsPerClient?: SubscriptionBounds;
  /** Connections one device or announcer password may hold (default EMBEDDED_BROKER_LIMITS). */
  readonly maxConnectionsPerDevice?: number;
  readonly logger: Logger;
}

/** How many retained messages, and how many bytes of them (topics and payloads), may be kept. */
export interface RetainedBounds {
  readonly topics: number;
  readonly bytes: number;
}

/** How many topic filters one connection may hold, and how many bytes of them. */
export interface SubscriptionBounds {
  readonly filters: number;
  readonly bytes: number;
}

/** Bounds on the broker's queues (PITFALLS: aedes keeps everything in memory by default). */
export const EMBEDDED_BROKER_LIMITS = {
  /** Messages the hub may have in the broker's delivery queue before it drops its own publishes. */
  outgoing: 10_000,
  /** aedes: packets queued per client before its CONNECT is handled. */
  queueLimit: 42,
  /** aedes: messages delivered at once by the broker's emitter. */
  concurrency: 1_000,
  /** aedes: a client whose socket does not drain in this time is dropped. */
  drainTimeoutMs: 10_000,
  /** aedes: inbound QoS 2 messages a client may hold awaiting PUBREL. */
  maxInflightInbound: 100,
  connectTimeoutMs: 10_000,
  maxClientIdLength: 128,
  /**
   * Retained messages kept in memory, all clients together: past either bound, a new retained
   * message is delivered but not retained (a device could otherwise fill the hub's memory).
   */
  retained: { topics: 100_000, bytes: 256 * 1024 * 1024 },
  /**
   * Topic filters one connection may hold (the hub's setting `mqttSubscriptionsPerClient`), and their
   * bytes: aedes keeps each in memory (~1.2 KB for a filter of 200 bytes), and one device that
   * subscribed 200,000 filters within its own topics took 235 MB of the hub's memory.
   */
  subscriptions: { filters: 1_000, bytes: 256 * 1024 },
  /**
   * Connections one device or announcer password may hold at once: each costs the hub a socket, a
   * file descriptor and its filters, and nothing else stopped one device from taking them all.
   */
  connectionsPerDevice: 8,
} as const;

/** Topics whose matching handlers are remembered. */
const MAX_REMEMBERED_TOPICS = 10_000;

/** A port the embedded broker was told to take and cannot: what to do instead, in one sentence. */
export function mqttPortError(host: string, port: number, error: unknown): unknown {
  const code = (error as NodeJS.ErrnoException).code;
  if (code !== "EADDRINUSE" && code !== "EACCES") return error;
  return new UnavailableError(
    `MQTT port ${port} on ${host} is ${code === "EACCES" ? "not allowed" : "already in use"}; choose another with --mqtt-port, use a broker of your own with --mqtt-url, or turn MQTT off with --no-mqtt`,
  );
}

export class EmbeddedBroker implements BrokerLink {
  readonly kind = "embedded" as const;
  readonly #aedes: Aedes;
  readonly #server: Server;
  readonly #options: EmbeddedBrokerOptions;
  readonly #principals = new WeakMap<Client, MqttPrincipal>();
  readonly #handlers: { filters: readonly string[]; handler: InboundHandler }[] = [];
  readonly #matches = new Map<string, readonly InboundHandler[]>();
  /** The topic filters each connected client subscribed to (sessions are never kept). */
  readonly #subscriptions = new Map<Client, Set<string>>();
  /** The bytes of each connected client's topic filters (see `maxSubscriptionsPerClient`). */
  readonly #filterBytes = new Map<Client, number>();
  #subscriptionsRefused = 0;
  /** Whether any client's filter matches a topic; remembered per topic until subscriptions change. */
  readonly #wanted = new Map<string, boolean>();
  readonly #sockets = new Set<Socket>();
  /**
   * The bytes of each retained message, its topic and payload (a topic may be 64 KiB), and who
   * published it; their sum (aedes keeps them in memory, unbounded); what each publisher holds.
   */
  readonly #retained = new Map<string, { readonly size: number; readonly owner: string }>();
  #retainedBytes = 0;
  readonly #shares = new Map<string, { topics: number; bytes: number }>();
  /** Whose share a client's retained messages count in (see `maxRetainedPerClient`). */
  readonly #owners = new WeakMap<Client, string>();
  #retainRefused = 0;
  /** The connections each device or announcer password holds, counted from its admission on. */
  readonly #deviceConnections = new Map<string, number>();
  /** Connected clients that signed in with a device password. */
  readonly #devices = new Set<Client>();
  /** The connected client holding each client id. */
  readonly #holders = new Map<string, Client>();
  #outgoing = 0;
  #dropped = 0;
  #closing: Promise<void> | undefined;
  #unsubscribeRevoked: () => void = () => undefined;
  url = "";
  /** Said to the operator when the broker did something else than asked (another port). */
  notice: string | undefined;
  /** The port it listens on instead of the one asked for; undefined when it has that one. */
  fallbackPort: number | undefined;

  private constructor(options: EmbeddedBrokerOptions, aedes: Aedes) {
    this.#options = options;
    this.#aedes = aedes;
    this.#server = createServer((socket) => this.#accept(socket));
  }

  static async start(options: EmbeddedBrokerOptions): Promise<EmbeddedBroker> {
    const limits = EMBEDDED_BROKER_LIMITS;
    const holder: { broker?: EmbeddedBroker } = {};
    const aedes = await Aedes.createBroker({
      queueLimit: limits.queueLimit,
      concurrency: limits.concurrency,
      drainTimeout: limits.drainTimeoutMs,
      maxInflightInbound: limits.maxInflightInbound,
      connectTimeout: limits.connectTimeoutMs,
      maxClientsIdLength: limits.maxClientIdLength,
      heartbeatInterval: 60_000,
      preConnect: (_client, packet, done) => {
        // Sessions are not kept: a device that asks for one gets a clean session, so nothing
        // queues in memory for clients that are away.
        packet.clean = true;
        done(null, true);
      },
      authenticate: (client, username, password, done) =>
        holder.broker?.authenticateClient(client, username, password, done),
      authorizePublish: (client, packet, done) => holder.broker?.authorizePublish(client, packet, done),
      authorizeSubscribe: (client, sub, done) => holder.broker?.authorizeSubscribe(client, sub, done),
    });
    const broker = new EmbeddedBroker(options, aedes);
    holder.broker = broker;
    aedes.on("clientError", (client, error) =>
      options.logger.debug({ client: client.id, err: error }, "MQTT client error"),
    );
    aedes.on("connectionError", (_client, error) =>
      options.logger.debug({ err: error }, "MQTT connection refused"),
    );
    aedes.on("subscribe", (subscriptions, client) => broker.#subscribed(client, subscriptions));
    aedes.on("unsubscribe", (filters, client) => broker.#unsubscribed(client, filters));
    aedes.on("client", (client) => {
      broker.#holders.set(client.id, client);
      const principal = broker.#principals.get(client);
      if (principal?.kind === "device") broker.#devices.add(client);
      // Revoked between its CONNECT and now: closed as those signed in before were.
      const username = principal?.kind === "device" ? principal.thing : principal?.name;
      const credential = username === undefined ? undefined : options.credentials.get(username);
      if (credential?.revokedAt !== undefined && broker.#signedInWith(principal, credential)) client.close();
    });
    broker.#unsubscribeRevoked = options.credentials.onRevoked((credential) =>
      broker.#disconnect(credential),
    );
    aedes.on("clientDisconnect", (client) => {
      broker.#unsubscribed(client);
      broker.#devices.delete(client);
      if (broker.#holders.get(client.id) === client) broker.#holders.delete(client.id);
    });
    try {
      await broker.#listen();
    } catch (error) {
      broker.#unsubscribeRevoked();
      await new Promise<void>((resolve) => aedes.close(() => resolve()));
      throw error;
    }
    return broker;
  }

  async #listen(): Promise<void> {
    const { host, port, portFallback, lastFallbackPort: last } = this.#options;
    try {
      await listen(this.#server, host, port);
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (!isPortRefused(error) || !portFallback) throw mqttPortError(host, port, error);
      const refused = `MQTT: port ${port} is ${code === "EACCES" ? "not allowed" : "taken"}`;
      // The port of the last start first: devices and TDs (gateway `…/set` forms) name it.
      const again = last !== undefined && last !== 0 && last !== port;
      const tookLast = again && (await listen(this.#server, host, last).then(() => true, falseIfRefused));
      if (!tookLast) await listen(this.#server, host, 0);
      const address = this.#server.address();
      const actual = typeof address === "object" && address ? address.port : 0;
      this.fallbackPort = actual;
      this.notice = tookLast
        ? `${refused}; the embedded broker listens on ${hostOf(host)}:${actual} instead, as at its last start`
        : again
          ? `${refused}, and so is ${last}, its port at its last start; the embedded broker listens on ${hostOf(host)}:${actual} instead (devices and TDs that name ${last} need the new port)`
          : `${refused}; the embedded broker listens on ${hostOf(host)}:${actual} instead, and will again at the next start (choose a port with --mqtt-port)`;
    }
    const address = this.#server.address();
    const actual = typeof address === "object" && address ? address.port : port;
    this.url = `mqtt://${hostOf(host)}:${actual}`;
  }

  #accept(socket: Socket): void {
    // PITFALLS: mqtt.js leaves Nagle on; on the sockets we own, we turn it off.
    socket.setNoDelay(true);
    this.#sockets.add(socket);
    socket.once("close", () => this.#sockets.delete(socket));
    // aedes reads with `read()`, which also emits `data`: this sees every byte it parses.
    const limit = new FrameLimit(this.#options.maxPacketBytes);
    socket.on("data", (chunk: Buffer) => {
      if (!limit.push(chunk)) {
        this.#options.logger.warn(
          { remote: socket.remoteAddress, problem: limit.problem },
          "MQTT connection closed: packet too large",
        );
        socket.destroy();
      }
    });
    this.#aedes.handle(socket);
  }

  private authenticateClient(
    client: Client,
    username: string | undefined,
    password: Buffer | undefined,
    done: (error: AuthenticateError | null, success: boolean | null) => void,
  ): void {
    const refuse = (code: number, message: string) => {
      const error = Object.assign(new Error(message), { returnCode: code });
      done(error, false);
    };
    const admit = (principal: MqttPrincipal) => {
      // MQTT 3.1.1 §3.1.4: the broker closes the connection that holds the client id for this one;
      // one user (a device, a token) may not close another's that way.
      const holder = this.#holders.get(client.id);
      const held = holder === undefined ? undefined : this.#principals.get(holder);
      if (held !== undefined && held.name !== principal.name) {
        refuse(2, `the client id ${client.id} is in use by another user`);
        return;
      }
      if (principal.kind === "device" || principal.kind === "announcer") {
        // A connection taking over its own client id replaces one: it is not counted twice.
        const count = this.#deviceConnections.get(principal.name) ?? 0;
        const most = this.#options.maxConnectionsPerDevice ?? EMBEDDED_BROKER_LIMITS.connectionsPerDevice;
        if (count - (held === undefined ? 0 : 1) >= most) {
          this.#options.logger.warn(
            { user: principal.name, connections: count },
            "MQTT: a connection was refused (past the connections one device password may hold)",
          );
          refuse(3, `${principal.name} holds ${count} connections, the most one device password may`);
          return;
        }
        this.#deviceConnections.set(principal.name, count + 1);
        client.conn.once("close", () => {
          const now = (this.#deviceConnections.get(principal.name) ?? 1) - 1;
          if (now <= 0) this.#deviceConnections.delete(principal.name);
          else this.#deviceConnections.set(principal.name, now);
        });
      }
      this.#principals.set(client, principal);
      this.#owners.set(
        client,
        principal.kind === "device"
          ? `the device ${principal.thing}`
          : username !== undefined && username !== ""
            ? `the ${principal.kind} user ${username}`
            : `the client ${client.id}`,
      );
      done(null, true);
    };
    const secret = password?.toString("utf8") ?? "";
    let principal: MqttPrincipal | undefined;
    if (secret === "") {
      if (!this.#options.anonymous) {
        refuse(5, "this broker needs a password: the hub's admin token or a device password");
        return;
      }
      principal = { kind: "anonymous", name: "anonymous" };
    } else {
      const hubPrincipal = this.#options.authenticate(secret);
      if (hubPrincipal !== undefined) {
        principal = hubPrincipal.admin
          ? { kind: "admin", name: hubPrincipal.name }
          : { kind: "reader", name: hubPrincipal.name };
      } else if (username !== undefined && username !== "") {
        this.#authenticateDevice(username, secret, refuse, admit);
        return;
      } else {
        refuse(4, "bad user name or password");
        return;
      }
    }
    admit(principal);
  }

  /**
   * A device's own credentials: those the hub issued for the user name (hub/mqtt-credentials.ts), of
   * the generation in force, or, where it issued none since it keeps records, of the first
   * generation (what it derived before), recorded at this first use. A revoked one opens nothing.
   */
  #authenticateDevice(
    username: string,
    secret: string,
    refuse: (code: number, message: string) => void,
    admit: (principal: MqttPrincipal) => void,
  ): void {
    // Read from the store, not from what this process last read: another replica of the hub may
    // have issued or revoked it a moment ago.
    this.#options.credentials.current(username).then(
      (held) => this.#authenticateAgainst(held, username, secret, refuse, admit),
      (error: unknown) => {
        this.#options.logger.error(
          { err: error, username },
          "MQTT: a device's credentials could not be read",
        );
        refuse(3, "the hub cannot check this device now");
      },
    );
  }

  #authenticateAgainst(
    held: MqttCredential | undefined,
    username: string,
    secret: string,
    refuse: (code: number, message: string) => void,
    admit: (principal: MqttPrincipal) => void,
  ): void {
    const { adminToken, credentials } = this.#options;
    const generation = held?.generation ?? 0;
    const revoked = () =>
      refuse(5, `the MQTT credentials of ${username} were revoked: ${held?.revokedBecause ?? "by an admin"}`);
    if (
      (held === undefined || held.kind === "thing") &&
      isDevicePassword(adminToken, username, secret, generation)
    ) {
      if (held?.revokedAt !== undefined) {
        revoked();
        return;
      }
      // A removed Thing's device is let in no more.
      const device: MqttPrincipal = { kind: "device", name: `device:${username}`, thing: username };
      this.#options.thingExists(username).then(
        (exists) => {
          if (!exists) {
            refuse(5, `no Thing ${username} is registered: its device password is void`);
            return;
          }
          // Revoked while the Thing was looked up: refused as it would have been a moment later.
          const now = credentials.get(username);
          if (now !== undefined && (now.revokedAt !== undefined || now.generation !== generation)) {
            refuse(5, `the MQTT credentials of ${username} were revoked`);
            return;
          }
          this.#signedIn(username, "thing");
          admit(device);
        },
        (error: unknown) => {
          this.#options.logger.error({ err: error, thing: username }, "MQTT: a device could not be checked");
          refuse(3, "the hub cannot check this device now");
        },
      );
      return;
    }
    const announcer = announcerOf(adminToken, username, secret, generation);
    if (announcer === undefined || (held !== undefined && held.kind !== announcer.convention)) {
      refuse(4, "bad user name or password");
      return;
    }
    if (held?.revokedAt !== undefined) {
      revoked();
      return;
    }
    // Credentials issued under other roots (the hub's settings changed) open nothing.
    if (announcerProblem(announcer, this.#options.roots) !== undefined) {
      refuse(4, "bad user name or password");
      return;
    }
    this.#signedIn(username, announcer.convention);
    admit({
      kind: "announcer",
      name: username,
      announcer,
      topics: announcerTopics(announcer, this.#options.roots, encodeTopicLevel),
    });
  }

  /** Records the use of a credential: the first use of one issued before the hub kept records. */
  #signedIn(username: string, kind: MqttCredentialKind): void {
    const { credentials } = this.#options;
    if (credentials.get(username) !== undefined) {
      credentials.used(username);
      return;
    }
    credentials.adopt(username, kind).then(
      () => credentials.used(username),
      (err: unknown) => this.#options.logger.warn({ err, username }, "MQTT: a sign-in was not recorded"),
    );
  }

  /** Whether a connected client signed in with the credential of a user name. */
  #signedInWith(principal: MqttPrincipal | undefined, credential: MqttCredential): boolean {
    if (principal?.kind === "device")
      return credential.kind === "thing" && principal.thing === credential.username;
    if (principal?.kind === "announcer")
      return credential.kind !== "thing" && principal.name === credential.username;
    return false;
  }

  /**
   * Closes the connections that signed in with a credential: it was revoked (by an admin, or
   * with its Thing). Each connection is closed once, whatever else it was doing.
   */
  #disconnect(credential: MqttCredential): void {
    for (const client of [...this.#holders.values()]) {
      if (this.#signedInWith(this.#principals.get(client), credential)) {
        this.#devices.delete(client);
        client.close();
      }
    }
  }

  #mayPublish(principal: MqttPrincipal | undefined, topic: string): boolean {
    switch (principal?.kind) {
      case "admin":
      case "anonymous":
        return true;
      case "device":
        return this.#options.layout.isThingTopic(topic, principal.thing);
      case "announcer":
        return principal.topics.publish.some((allowed) => topicMatches(allowed, topic));
      default:
        return false;
    }
  }

  private authorizePublish(
    client: Client | null,
    packet: PublishPacket,
    done: (error?: Error | null) => void,
  ): void {
    const { topic } = packet;
    if (topic.startsWith("$")) {
      done(new Error(`${topic}: $ topics are reserved`));
      return;
    }
    const principal = client === null ? undefined : this.#principals.get(client);
    if (client !== null && !this.#mayPublish(principal, topic)) {
      done(new Error(`${principal?.name ?? "this client"} may not publish to ${topic}`));
      return;
    }
    if (packet.retain) this.#retain(packet, client, principal);
    const handlers = this.#handlersOf(topic);
    if (handlers.length === 0) {
      done(null);
      return;
    }
    const payload = Buffer.isBuffer(packet.payload) ? packet.payload : Buffer.from(packet.payload);
    const message: InboundMessage = {
      topic,
      payload,
      retain: packet.retain,
      ...(principal === undefined ? {} : { publisher: principal }),
    };
    Promise.all(handlers.map((handler) => handler(message))).then(
      () => done(null),
      (error: unknown) => done(error instanceof Error ? error : new Error(String(error))),
    );
  }

  /**
   * Counts a retained message in the broker's bounds and in its publisher's share, or, past
   * either, has it delivered without being retained and tells the publisher on its errors topic.
   */
  #retain(packet: PublishPacket, client: Client | null, principal: MqttPrincipal | undefined): void {
    const bounds = this.#options.maxRetained ?? EMBEDDED_BROKER_LIMITS.retained;
    const share = this.#options.maxRetainedPerClient ?? bounds;
    const owner = (client === null ? undefined : this.#owners.get(client)) ?? "the hub";
    const before = this.#retained.get(packet.topic);
    if (packet.payload.length === 0) {
      // An empty retained message clears the topic (MQTT 3.1.1 §3.3.1.3).
      if (before !== undefined) this.#unretain(packet.topic, before);
      return;
    }
    const size = Buffer.byteLength(packet.topic, "utf8") + packet.payload.length;
    const bytes = this.#retainedBytes - (before?.size ?? 0) + size;
    const held = this.#shares.get(owner) ?? { topics: 0, bytes: 0 };
    const replaced = before?.owner === owner ? before : undefined;
    const ownTopics = held.topics - (replaced === undefined ? 0 : 1) + 1;
    const ownBytes = held.bytes - (replaced?.size ?? 0) + size;
    let refusal: Error | undefined;
    if (ownTopics > share.topics || ownBytes > share.bytes) {
      refusal = new ConflictError(
        `The broker keeps at most ${share.topics} retained messages of at most ${share.bytes} bytes together for one publisher; ${owner} holds ${held.topics} (${held.bytes} bytes), so this one was delivered but not retained: clear some first (an empty retained message clears its topic)`,
      );
    } else if ((before === undefined && this.#retained.size >= bounds.topics) || bytes > bounds.bytes) {
      refusal = new UnavailableError(
        `The broker keeps no more retained messages (at most ${bounds.topics} of at most ${bounds.bytes} bytes together, for all devices): this one was delivered but not retained`,
      );
    }
    if (refusal !== undefined) {
      packet.retain = false;
      if (this.#retainRefused++ % 1_000 === 0) {
        this.#options.logger.warn(
          { topic: packet.topic, publisher: owner, refused: this.#retainRefused },
          "MQTT: a retained message was delivered without being retained (past the broker's or its publisher's bound)",
        );
      }
      this.#tell(principal, packet.topic, refusal);
      return;
    }
    if (before !== undefined) this.#unretain(packet.topic, before);
    this.#retained.set(packet.topic, { size, owner });
    this.#retainedBytes += size;
    const now = this.#shares.get(owner) ?? { topics: 0, bytes: 0 };
    now.topics++;
    now.bytes += size;
    this.#shares.set(owner, now);
  }

  /** Takes a retained message out of the counts: the broker's and its publisher's. */
  #unretain(topic: string, retained: { readonly size: number; readonly owner: string }): void {
    this.#retained.delete(topic);
    this.#retainedBytes -= retained.size;
    const share = this.#shares.get(retained.owner);
    if (share === undefined) return;
    share.topics--;
    share.bytes -= retained.size;
    if (share.topics === 0) this.#shares.delete(retained.owner);
  }

  /**
   * Tells a publisher why its message was not taken as sent, on the errors topic of its Thing (its
   * device password's, or the one the topic names): an RFC 9457 problem, as the gateway does.
   */
  #tell(principal: MqttPrincipal | undefined, topic: string, error: Error): void {
    const { layout } = this.#options;
    let errors: string | undefined;
    if (principal?.kind === "device") errors = layout.errors(principal.thing);
    else if (principal?.kind === "announcer") {
      const { convention, name } = principal.announcer;
      const config = parseHomeAssistantTopic(this.#options.roots.homeAssistantPrefix, topic);
      if (convention === "homie") errors = layout.errors(homieThingId(name));
      else if (config !== undefined) errors = layout.errors(homeAssistantThingId(config));
    } else if (topic.startsWith(layout.things)) {
      const thing = decodeTopicLevel(topic.slice(layout.things.length).split("/")[0] ?? "");
      if (thing !== undefined && thing !== "") errors = layout.errors(thing);
    }
    if (errors === undefined) return;
    const problem = { ...toProblem(error), instance: topic };
    delete problem.validationErrors;
    this.publish(errors, Buffer.from(JSON.stringify(problem), "utf8"), { qos: 0 });
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

  private authorizeSubscribe(
    client: Client,
    subscription: Subscription,
    done: (error: Error | null, subscription?: Subscription | null) => void,
  ): void {
    const principal = this.#principals.get(client);
    const allowed =
      this.#maySubscribe(principal, subscription.topic) &&
      this.#holdFilter(client, principal, subscription.topic);
    done(null, allowed ? subscription : null);
  }

  #maySubscribe(principal: MqttPrincipal | undefined, filter: string): boolean {
    if (principal?.kind === "announcer") return this.#announcerMaySubscribe(principal, filter);
    if (principal?.kind !== "device") return true;
    // A device sees its own topics and the Changes about itself, nothing else.
    const { layout } = this.#options;
    const own = `${layout.things}${encodeTopicLevel(principal.thing)}/`;
    return filter.startsWith(own) || filter === `${layout.changes}+/${encodeTopicLevel(principal.thing)}`;
  }

  /**
   * Counts a filter among the client's, or refuses it past the bounds of one connection (and tells
   * the client why on its errors topic: a SUBACK of MQTT 3.1.1 says only "failure").
   */
  #holdFilter(client: Client, principal: MqttPrincipal | undefined, topic: string): boolean {
    // The admin token is the hub's own: its bindings observe every Thing on this broker through
    // one connection, a filter per observed affordance, so a bound made for devices would stop the
    // hub observing any Thing past the 1,000th affordance (and an announcer registering entities
    // could fill it on purpose). An admin may do anything here anyway.
    if (principal?.kind === "admin") return true;
    const filter = topic.replace(/^\$share\/[^/]*\//, "");
    let held = this.#subscriptions.get(client);
    // Subscribing again to a filter replaces that subscription (MQTT 3.1.1 §3.8.4).
    if (held?.has(filter)) return true;
    const bounds = this.#options.maxSubscriptionsPerClient ?? EMBEDDED_BROKER_LIMITS.subscriptions;
    const bytes = (this.#filterBytes.get(client) ?? 0) + Buffer.byteLength(filter, "utf8");
    if ((held?.size ?? 0) >= bounds.filters || bytes > bounds.bytes) {
      if (this.#subscriptionsRefused++ % 1_000 === 0) {
        this.#options.logger.warn(
          { client: client.id, publisher: this.#owners.get(client), refused: this.#subscriptionsRefused },
          "MQTT: a subscription was refused (past the filters one connection may hold)",
        );
      }
      // A device's or announcer's errors topic; another client's filter names no Thing of its own.
      if (principal?.kind === "device" || principal?.kind === "announcer")
        this.#tell(
          principal,
          topic,
          new ConflictError(
            `One connection may hold at most ${bounds.filters} topic filters of at most ${bounds.bytes} bytes together; this one holds ${held?.size ?? 0}, so the subscription to ${topic.slice(0, 256)} was refused: unsubscribe from some first, or use a wildcard`,
          ),
        );
      return false;
    }
    if (held === undefined) this.#subscriptions.set(client, (held = new Set()));
    held.add(filter);
    this.#filterBytes.set(client, bytes);
    return true;
  }

  /**
   * An announcing device subscribes within its own topics; a Home Assistant one also to the errors
   * topic of each Thing of its node, where its announcements are answered.
   */
  #announcerMaySubscribe(principal: MqttPrincipal & { kind: "announcer" }, filter: string): boolean {
    if (principal.topics.subscribe.some((allowed) => filterWithin(filter, allowed))) return true;
    const { layout } = this.#options;
    if (principal.announcer.convention !== "homeassistant" || !filter.startsWith(layout.things)) return false;
    const [level = "", errors, ...rest] = filter.slice(layout.things.length).split("/");
    const parts = decodeTopicLevel(level)?.split(":") ?? [];
    // urn:homeassistant:{component}:{node}:{object}
    return (
      errors === "errors" &&
      rest.length === 0 &&
      parts.length === 5 &&
      parts[0] === "urn" &&
      parts[1] === "homeassistant" &&
      parts[3] === principal.announcer.name &&
      !parts.some((p) => p === "" || p.includes("+") || p.includes("#"))
    );
  }

  #subscribed(client: Client, subscriptions: readonly Subscription[]): void {
    let filters = this.#subscriptions.get(client);
    if (filters === undefined) this.#subscriptions.set(client, (filters = new Set()));
    // QoS 128: refused (authorizeSubscribe). A shared subscription matches as its filter does.
    for (const { topic, qos } of subscriptions) {
      if ((qos as number) !== 128) filters.add(topic.replace(/^\$share\/[^/]*\//, ""));
    }
    this.#wanted.clear();
  }

  #unsubscribed(client: Client, filters?: readonly string[]): void {
    const subscribed = this.#subscriptions.get(client);
    if (subscribed === undefined) return;
    if (filters === undefined) {
      this.#subscriptions.delete(client);
      this.#filterBytes.delete(client);
    } else {
      let bytes = this.#filterBytes.get(client) ?? 0;
      for (const topic of filters) {
        const filter = topic.replace(/^\$share\/[^/]*\//, "");
        if (subscribed.delete(filter)) bytes -= Buffer.byteLength(filter, "utf8");
      }
      this.#filterBytes.set(client, bytes);
    }
    this.#wanted.clear();
  }

  /** Closes the connections of a Thing's device: the Thing was removed, and its password with it. */
  disconnectDevice(thing: string): void {
    for (const client of this.#devices) {
      const principal = this.#principals.get(client);
      if (principal?.kind === "device" && principal.thing === thing) {
        this.#devices.delete(client);
        client.close();
      }
    }
  }

  /** Whether any client subscribed to anything: while none did, the hub republishes nothing. */
  wantsAny(): boolean {
    for (const filters of this.#subscriptions.values()) if (filters.size > 0) return true;
    return false;
  }

  /**
   * Whether a message on `topic` would reach any client: the hub skips building the Changes it
   * republishes that nobody subscribed to (most of its messages, often).
   */
  wants(topic: string): boolean {
    let wanted = this.#wanted.get(topic);
    if (wanted === undefined) {
      wanted = false;
      for (const filters of this.#subscriptions.values()) {
        for (const filter of filters) if (topicMatches(filter, topic)) wanted = true;
      }
      if (topic.length <= MAX_REMEMBERED_TOPIC_LENGTH) {
        if (this.#wanted.size >= MAX_REMEMBERED_TOPICS) this.#wanted.clear();
        this.#wanted.set(topic, wanted);
      }
    }
    return wanted;
  }

  async handle(filters: readonly string[], handler: InboundHandler): Promise<void> {
    this.#handlers.push({ filters, handler });
    this.#matches.clear();
    return Promise.resolve();
  }

  /** MQTT 3.1.1: a message carries no correlation data. */
  publish(topic: string, payload: Buffer, options: PublishOptions): boolean {
    if (this.#closing !== undefined) return false;
    if (this.#outgoing >= EMBEDDED_BROKER_LIMITS.outgoing) {
      if (this.#dropped++ % 10_000 === 0) {
        this.#options.logger.warn({ dropped: this.#dropped }, "MQTT: outgoing queue full, messages dropped");
      }
      return false;
    }
    // Nobody would get it: nothing to do (a retained message is kept for later subscribers).
    if (options.retain !== true && !this.wants(topic)) return true;
    this.#outgoing++;
    this.#aedes.publish(
      { cmd: "publish", topic, payload, qos: options.qos, retain: options.retain ?? false, dup: false },
      (error) => {
        this.#outgoing--;
        if (error) this.#options.logger.warn({ err: error, topic }, "MQTT: publish failed");
      },
    );
    return true;
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#unsubscribeRevoked();
      const serverClosed = new Promise<void>((resolve) => this.#server.close(() => resolve()));
      await new Promise<void>((resolve) => this.#aedes.close(() => resolve()));
      for (const socket of this.#sockets) socket.destroy();
      await serverClosed;
    })();
    return this.#closing;
  }
}

function hostOf(host: string): string {
  if (host === "0.0.0.0" || host === "::") return "127.0.0.1";
  return host.includes(":") ? `[${host}]` : host;
}

/** The port is another process's, or not this user's to take. */
function isPortRefused(error: unknown): boolean {
  const code = (error as NodeJS.ErrnoException).code;
  return code === "EADDRINUSE" || code === "EACCES";
}

function falseIfRefused(error: unknown): false {
  if (isPortRefused(error)) return false;
  throw error;
}

function listen(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error) => {
      server.off("listening", onListening);
      reject(error);
    };
    const onListening = () => {
      server.off("error", onError);
      resolve();
    };
    server.once("error", onError);
    server.once("listening", onListening);
    server.listen({ host, port });
  });
}
