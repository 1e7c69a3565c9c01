// The composition root: picks the backends from configuration, opens the hub and serves it.
import type { FastifyInstance } from "fastify";
import { lookup } from "node:dns/promises";
import { createHash, createPublicKey } from "node:crypto";
import { existsSync } from "node:fs";
import { createServer, isIP } from "node:net";
import { networkInterfaces } from "node:os";
import { join } from "node:path";
import { pino, type Logger } from "pino";
import pretty from "pino-pretty";
import {
  buildServer,
  encodeTopicLevel,
  mqttPortError,
  parseBrokerUrl,
  startMqttFace,
  type MqttFace,
  type MqttStatus,
  type RunningMqtt,
} from "../api/index.js";
import {
  AddressPolicy,
  SnmpBinding,
  createBindings,
  loopbackServiceEndpoints,
  type BindingSet,
  type ProtectedEndpoint,
} from "../bindings/index.js";
import { UnavailableError } from "../core/index.js";
import { InProcessBus, NatsBus, type Bus } from "../bus/index.js";
import {
  ADMIN_TOKEN_FILE,
  Discovery,
  HUB_ID_FILE,
  Hub,
  LOG_KEY_FILE,
  SECRET_KEY_FILE,
  exposedMode,
  loadOrCreateHubId,
  loadOrCreateLogKey,
  loadOrCreateSecretKey,
  loadVocabulary,
  type HubConfig,
  type SecretStore,
  type MqttCredentialStore,
} from "../hub/index.js";
import {
  PostgresSecretStore,
  PostgresMqttCredentialStore,
  PostgresStore,
  SqliteSecretStore,
  SqliteMqttCredentialStore,
  SqliteStore,
  makeDataDirectory,
  type ReplicaIdentity,
  type Store,
} from "../store/index.js";
import { createDiscoveryFetcher } from "./discovery-fetcher.js";

export interface RunningHub {
  hub: Hub;
  app: FastifyInstance;
  /** The base URL the hub listens on, e.g. http://127.0.0.1:8080 */
  url: string;
  /**
   * The MQTT gateway and its broker; undefined with `--no-mqtt`, and on a replica while another
   * runs the gateway on an external broker.
   */
  readonly mqtt: RunningMqtt | undefined;
  /** Whether this process runs the MQTT gateway, as `GET /health` says it; undefined with `--no-mqtt`. */
  mqttStatus(): MqttStatus | undefined;
  /** The UDP port SNMP traps are received on; undefined without `--snmp-trap-port`. */
  snmpTrapPort: number | undefined;
  /** Stops accepting requests, finishes in-flight ones, commits queued writes, closes the store. */
  close(): Promise<void>;
}

/** Starts the SNMP binding's trap receiver when a port is configured; a port it cannot bind stops the start. */
async function listenForTraps(
  bindings: BindingSet,
  port: number | undefined,
  host: string,
): Promise<number | undefined> {
  if (port === undefined) return undefined;
  const snmp = bindings.byScheme.get("snmp");
  if (!(snmp instanceof SnmpBinding)) return undefined;
  try {
    return await snmp.listenForTraps();
  } catch (cause) {
    const code = (cause as NodeJS.ErrnoException).code;
    const why =
      code === "EADDRINUSE" ? "already in use" : code === "EACCES" ? "not allowed" : (cause as Error).message;
    const error = new UnavailableError(
      `SNMP trap port ${port} on ${host} is ${why}; choose another with --snmp-trap-port (ports below 1024 need privileges)`,
    );
    error.cause = cause;
    throw error;
  }
}

/** Structured JSON logs, or a readable form when the output is a terminal. */
export function createLogger(level: string, destination: NodeJS.WritableStream = process.stderr): Logger {
  const isTty = (destination as NodeJS.WriteStream).isTTY === true;
  return isTty
    ? pino(
        { level },
        pretty({ destination, colorize: true, translateTime: "SYS:HH:MM:ss.l", ignore: "pid,hostname" }),
      )
    : pino({ level }, destination);
}

/**
 * Binds the HTTP address once and lets it go again, so that a port in use, a host that is no
 * address of this machine or a port that needs privileges stops the start before the data
 * directory is touched: a first start that fails there must not leave an admin token behind that
 * was never shown. (The real listen, later, still reports what changed in between.)
 */
/**
 * Whether two broker URLs name one broker: the same scheme and port, and the same host or two
 * names of this machine's loopback (a TD may say localhost where the hub says 127.0.0.1).
 */
export function sameBroker(a: string, b: string): boolean {
  let x: URL;
  let y: URL;
  try {
    x = new URL(a);
    y = new URL(b);
  } catch {
    return false;
  }
  const port = (url: URL) => url.port || (url.protocol === "mqtts:" ? "8883" : "1883");
  const loopback = (host: string) => host === "localhost" || host === "[::1]" || /^127\./.test(host);
  return (
    x.protocol === y.protocol &&
    port(x) === port(y) &&
    (x.hostname === y.hostname || (loopback(x.hostname) && loopback(y.hostname)))
  );
}

/** The addresses a listener on `host` is reached at: every one of this machine's for a wildcard. */
function listenerRanges(host: string): string[] {
  if (host !== "0.0.0.0" && host !== "::") return [host, ...(isLoopbackHost(host) ? ["0.0.0.0", "::"] : [])];
  const own = Object.values(networkInterfaces()).flatMap((list) => (list ?? []).map((i) => i.address));
  return ["127.0.0.0/8", "::1", "0.0.0.0", "::", ...own.map((a) => a.replace(/%.*$/, ""))];
}

function isLoopbackHost(host: string): boolean {
  return host === "::1" || host.startsWith("127.");
}

/**
 * The endpoints of the hub's own backends (its PostgreSQL store, its NATS servers): a Thing's
 * form that names one is no device. Names are resolved once, at start.
 */
async function backendEndpoints(config: HubConfig): Promise<ProtectedEndpoint[]> {
  const named: { url: string; defaultPort: number; what: string }[] = [];
  if (config.store !== undefined)
    named.push({ url: config.store, defaultPort: 5432, what: "the hub's own store (PostgreSQL)" });
  for (const server of config.bus.servers ?? []) {
    named.push({
      url: server.includes("://") ? server : `nats://${server}`,
      defaultPort: 4222,
      what: "the hub's own bus (NATS)",
    });
  }
  const endpoints: ProtectedEndpoint[] = [];
  for (const { url, defaultPort, what } of named) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      continue;
    }
    const host = parsed.hostname.replace(/^\[(.*)\]$/, "$1");
    // A Unix socket (postgres:///db?host=/run/postgresql) has no address a Thing could name.
    if (host === "") continue;
    const port = parsed.port === "" ? defaultPort : Number(parsed.port);
    const addresses =
      isIP(host) !== 0
        ? [host]
        : await lookup(host, { all: true }).then(
            (found) => found.map((a) => a.address),
            () => [],
          );
    for (const address of addresses) endpoints.push({ cidr: address, port, what });
  }
  return endpoints;
}

async function checkAddress(host: string, port: number): Promise<void> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once("error", reject);
    probe.listen({ host, port, exclusive: true }, () => probe.close(() => resolve()));
  });
}

/**
 * The store `--store` names: PostgreSQL (held by this hub alone while it runs: several hubs on one
 * schema need the NATS bus), or the embedded SQLite file in the data directory. Says at start
 * which append-only triggers it found changed outside the hub and put back.
 */
async function openStore(
  config: HubConfig,
  logger: Logger,
): Promise<{
  store: Store;
  openSecrets: () => Promise<SecretStore>;
  openMqttCredentials: () => Promise<MqttCredentialStore>;
}> {
  let store: Store;
  let restored: ReadonlyArray<
    { trigger: string; found: string } | { constraint: string; found: string; brokenBy?: number }
  >;
  let openSecrets: () => Promise<SecretStore>;
  let openMqttCredentials: () => Promise<MqttCredentialStore>;
  if (config.store !== undefined) {
    const url = config.store;
    // The data directory still holds the hub's id and keys: made here, or refused in one line,
    // rather than by Node's recursive mkdir in data-files.ts (which loops for ever under /proc).
    makeDataDirectory(config.dataDir);
    // Replicas share the schema (a shared lock); a hub alone holds it alone.
    const postgres = await PostgresStore.open({ url, exclusive: !config.replica, replica: config.replica });
    store = postgres;
    restored = postgres.restoredGuards;
    openSecrets = () =>
      PostgresSecretStore.open({ url, schema: postgres.schema, writeRefusal: () => postgres.writeRefusal() });
    openMqttCredentials = () =>
      PostgresMqttCredentialStore.open({
        url,
        schema: postgres.schema,
        writeRefusal: () => postgres.writeRefusal(),
      });
  } else {
    const path = join(config.dataDir, "hyperthings.db");
    const sqlite = new SqliteStore({
      path,
      mmapBytes: config.sqliteMmapMiB * 2 ** 20,
      // Said once, when found; GET /health goes on saying it.
      onWalProblem: (problem) => logger.error({ since: problem.since }, problem.reason),
    });
    // A file made by a hub before it made it 0600 keeps its mode (SQLite's -wal and -shm take it).
    const mode = exposedMode(path);
    if (mode !== undefined) {
      const octal = mode.toString(8).padStart(4, "0");
      logger.warn(
        { file: path, mode: octal },
        `${path} may be read by other users of this machine (mode ${octal}), and with it every value the Log holds: chmod 600 ${path} ${path}-wal ${path}-shm`,
      );
    }
    store = sqlite;
    restored = sqlite.restoredGuards;
    openSecrets = () => Promise.resolve(new SqliteSecretStore({ path }));
    openMqttCredentials = () => Promise.resolve(new SqliteMqttCredentialStore(path));
  }
  const triggers = restored.filter((g) => "trigger" in g);
  if (triggers.length > 0) {
    const names = triggers.map((g) => `${g.trigger} (${g.found})`).join(", ");
    logger.warn(
      { restored: triggers },
      `the database's append-only triggers were changed outside the hub and are put back: ${names}; \`things verify\` tells whether the Log itself was altered meanwhile`,
    );
  }
  for (const check of restored) {
    if (!("constraint" in check)) continue;
    const what = `the database's CHECK ${check.constraint} (a leaf hash is 32 bytes)`;
    const broken =
      check.brokenBy === undefined
        ? ""
        : `; it holds for new rows only: Change ${check.brokenBy}'s leaf hash is not 32 bytes, so the Log was altered outside the hub: \`things verify\` checks it; restore the database from a backup`;
    logger.warn(
      { restored: check },
      check.found === "not valid"
        ? `${what} is not in force for every row${broken}`
        : `${what} was ${check.found === "missing" ? "dropped" : "altered"} outside the hub and is put back${broken}`,
    );
  }
  return { store, openSecrets, openMqttCredentials };
}

/**
 * Replicas are one hub: they sign the Log's checkpoints with one key under one id, and open each
 * other's sealed credentials. One that joins a hub whose replicas have run on the store (or whose
 * Log holds Changes) brings the first replica's identity files, instead of making its own; the
 * first replica records the identity in the store (docs/replicas.md).
 */
async function requireReplicaIdentity(config: HubConfig, store: Store): Promise<void> {
  const files = [HUB_ID_FILE, LOG_KEY_FILE, SECRET_KEY_FILE];
  if (config.adminToken === undefined) files.push(ADMIN_TOKEN_FILE);
  const copy = `copy ${files.join(", ")} from another replica's data directory (docs/replicas.md)`;
  const missing = files.filter((name) => !existsSync(join(config.dataDir, name)));
  if (missing.length > 0 && ((await store.lastSeq()) > 0 || (await store.replicaIdentity()) !== undefined)) {
    throw new Error(
      `${missing.map((name) => join(config.dataDir, name)).join(", ")} ${missing.length > 1 ? "are" : "is"} missing: ` +
        `a replica joining a hub whose replicas have run on this store is the same hub as the others; ${copy}`,
    );
  }
  // The first replica's are made here, and recorded.
  const own: ReplicaIdentity = {
    hub: loadOrCreateHubId(config.dataDir),
    logKey: fingerprint(
      createPublicKey(loadOrCreateLogKey(config.dataDir)).export({ type: "spki", format: "der" }),
    ),
    secretsKey: fingerprint(loadOrCreateSecretKey(config.dataDir)),
  };
  const recorded = (await store.replicaIdentity(own)) ?? own;
  const differ = [
    ...(recorded.hub !== own.hub ? [HUB_ID_FILE] : []),
    ...(recorded.logKey !== own.logKey ? [LOG_KEY_FILE] : []),
    ...(recorded.secretsKey !== own.secretsKey ? [SECRET_KEY_FILE] : []),
  ];
  if (differ.length === 0) return;
  throw new Error(
    `${differ.map((name) => join(config.dataDir, name)).join(", ")} ${differ.length > 1 ? "are" : "is"} not the ` +
      `hub's whose replicas run on this store (${recorded.hub}, recorded by its first replica; this data directory's ` +
      `is ${own.hub}): a replica is the same hub as the others; ${copy}, over this one's`,
  );
}

function fingerprint(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

export async function startHub(
  config: HubConfig,
  options: {
    logger?: Logger;
    clock?: () => Date;
    observeLater?: boolean;
    /** Where config.vocabulary came from (`--vocabulary`), for the line that says it is bad. */
    vocabularySetting?: string;
  } = {},
): Promise<RunningHub> {
  // What can be checked without the data directory is checked first (nothing is created when it fails).
  if (config.mqtt === "external" && config.mqttUrl !== undefined) parseBrokerUrl(config.mqttUrl);
  await checkAddress(config.host, config.port);
  // A broker port given explicitly is not moved when it is taken: that, too, is known before.
  if (config.mqtt === "embedded" && !config.mqttPortFallback && config.mqttPort !== 0) {
    await checkAddress(config.host, config.mqttPort).catch((error: unknown) => {
      throw mqttPortError(config.host, config.mqttPort, error);
    });
  }
  // The vocabulary file, too, before the data directory and its database are made.
  const vocabulary = loadVocabulary(
    config.vocabulary,
    config.vocabulary === undefined ? undefined : (options.vocabularySetting ?? "HYPERTHINGS_VOCABULARY"),
  );
  const logger = options.logger ?? createLogger(config.logLevel);
  const { store, openSecrets, openMqttCredentials } = await openStore(config, logger);
  if (config.replica) {
    try {
      await requireReplicaIdentity(config, store);
    } catch (err) {
      await store.close();
      throw err;
    }
  }
  const onSubscriberError = (err: unknown) => logger.error({ err }, "a change subscriber failed");
  // NATS JetStream gets every committed Change too; what it has not acknowledged it is given again
  // from the Store (docs/nats.md). It connects in the background: an unreachable server stops nothing.
  const natsBus =
    config.bus.servers === undefined
      ? undefined
      : new NatsBus(
          {
            servers: config.bus.servers,
            stream: config.bus.stream,
            prefix: config.bus.prefix,
            maxAgeMs: config.bus.maxAgeMs,
            maxBytes: config.bus.maxBytes,
            replay: (after, limit) => store.changesAfter(after, limit),
            lastSeq: () => store.lastSeq(),
            logger: logger.child({ part: "bus" }),
            replica: config.replica,
          },
          onSubscriberError,
        );
  const bus: Bus = natsBus ?? new InProcessBus(onSubscriberError);
  // The bindings the hub talks to Things with; it knows them only by the Binding interface.
  // The embedded broker (aedes) speaks MQTT 3.1.1 only; its URL is known once it listens.
  let embeddedBroker: string | undefined;
  // The broker the hub publishes its Changes on (embedded or external), once it is up.
  let hubBroker: string | undefined;
  /** Whether each broker a TD names is the hub's (ownTopics), and the topics the hub publishes on it. */
  const hubBrokers = new Map<string, boolean>();
  const hubTopics = [`${config.mqttPrefix}/changes/`];
  // One address policy for everything the hub connects to on a TD's or a user's say-so. It keeps
  // from Things the databases on loopback and the hub's own backends, and its HTTP port once known.
  const addressPolicy = new AddressPolicy({
    allow: config.allow,
    deny: config.deny,
    protect: [...loopbackServiceEndpoints(), ...(await backendEndpoints(config))],
  });
  const protectListener = (port: number) =>
    addressPolicy.protect(
      listenerRanges(config.host).map((cidr) => ({ cidr, port, what: "the hub's own HTTP listener" })),
    );
  if (config.port !== 0) protectListener(config.port);
  const bindings = createBindings({
    addressPolicy,
    http: { pollIntervalMs: config.pollIntervalMs },
    coap: { pollIntervalMs: config.pollIntervalMs },
    snmp: {
      pollIntervalMs: config.pollIntervalMs,
      ...(config.snmpTrapPort !== undefined && { traps: { port: config.snmpTrapPort, host: config.host } }),
    },
    mqtt: {
      protocolVersionFor: (broker) => (broker === embeddedBroker ? 4 : undefined),
      // A Thing that the hub reaches through its own broker (a gateway device's `…/set`, say)
      // needs no credentials of its own there: the broker requires a password, the hub has one.
      // It lends it for that Thing's own topics only, those its device password opens: a TD is
      // no admin, and `#` or another device's `…/set` would have the hub read or command for it.
      credentialsFor: (broker, thing) =>
        embeddedBroker !== undefined && !config.mqttAnonymous && sameBroker(broker, embeddedBroker)
          ? {
              username: "hyperthings",
              password: hub.adminToken.token,
              topics: [`${config.mqttPrefix}/things/${encodeTopicLevel(thing)}/#`],
            }
          : undefined,
      // A write to a gateway device's `…/set` on the hub's own broker waits, through the gateway,
      // for the device to confirm it (docs/mqtt.md): a publish alone says nothing of the device.
      writeThrough: (broker, topic, value, thing) => {
        // On a replica that does not run the gateway (another does), the write is published as is.
        const gateway = face?.running?.gateway;
        if (gateway === undefined || hubBroker === undefined || !sameBroker(broker, hubBroker))
          return undefined;
        const set = gateway.layout.parseSet(topic);
        // The gateway writes with the hub's own rights on its broker: for the Thing's own `…/set`
        // only; another Thing's is published by the binding, with the credentials this one has.
        if (set === undefined || set.thing !== thing) return undefined;
        return gateway.writeProperty(set.thing, set.name, value).then(() => undefined);
      },
      // Asked for every message observed: whether a broker is the hub's is worked out once.
      ownTopics: (broker) => {
        if (hubBroker === undefined) return undefined;
        let own = hubBrokers.get(broker);
        if (own === undefined) hubBrokers.set(broker, (own = sameBroker(broker, hubBroker)));
        return own ? hubTopics : undefined;
      },
    },
  });
  let hub: Hub;
  let secrets: SecretStore | undefined;
  let mqttCredentials: MqttCredentialStore | undefined;
  try {
    // A replica's subscribers get every Change after the Log as its parts read it at start.
    await natsBus?.begin();
    secrets = await openSecrets();
    mqttCredentials = await openMqttCredentials();
    hub = await Hub.open(config, {
      mqttCredentials,
      logger,
      store,
      bus,
      bindings,
      secrets,
      vocabulary,
      ...(options.clock && { clock: options.clock }),
      ...(options.observeLater === true && { observeLater: true }),
    });
  } catch (err) {
    await bindings.close();
    await secrets?.close();
    await mqttCredentials?.close();
    // A replica's bus reads the Log's head on a timer since `begin`.
    await natsBus?.close();
    await store.close();
    throw err;
  }
  try {
    await natsBus?.start(hub.id);
  } catch (err) {
    await hub.close();
    throw err;
  }
  const fetcher = createDiscoveryFetcher(addressPolicy);
  let app: FastifyInstance;
  let face: MqttFace | undefined;
  let snmpTrapPort: number | undefined;
  try {
    app = await buildServer(hub, {
      discovery: new Discovery(hub.directory, fetcher),
      mqtt: () => face?.status(),
    });
    await app.listen({ host: config.host, port: config.port });
    try {
      snmpTrapPort = await listenForTraps(bindings, config.snmpTrapPort, config.host);
      face = await startMqttFace(hub);
      if (face?.running?.kind === "embedded") embeddedBroker = face.running.url;
      hubBroker = face?.status().broker;
    } catch (err) {
      await app.close();
      throw err;
    }
  } catch (err) {
    await fetcher.close();
    await hub.close();
    throw err;
  }
  const address = app.server.address();
  const port = typeof address === "object" && address ? address.port : config.port;
  if (config.port === 0) protectListener(port);
  const host = config.host.includes(":") ? `[${config.host}]` : config.host;
  let closing: Promise<void> | undefined;
  return {
    hub,
    app,
    // A wildcard host is reached through loopback here.
    url: `http://${host === "0.0.0.0" ? "127.0.0.1" : host === "[::]" ? "[::1]" : host}:${port}`,
    get mqtt() {
      return face?.running;
    },
    mqttStatus: () => face?.status(),
    snmpTrapPort,
    close: () => {
      closing ??= (async () => {
        // Commands waiting on a Thing end first: answered (503) and recorded before the server closes.
        hub.abandonCommands();
        await app.close();
        await fetcher.close();
        // On an external broker, the gateway goes first: what it took in is recorded and
        // acknowledged while the store is open, and only then is its role given up (closing the
        // store gives up a replica's roles). The hub's own bindings may be connected to the
        // embedded broker: they go before it.
        if (config.mqtt === "external") await face?.close();
        await hub.close();
        await face?.close();
      })();
      return closing;
    },
  };
}
