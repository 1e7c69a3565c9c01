// Every setting of the hub in one place: its default, and the environment variable that sets it.
import envPaths from "env-paths";
import { join } from "node:path";
// The address policy alone: the bindings index loads every protocol library (CoAP, MQTT, SNMP, undici),
// which each `things` command would pay for at start.
import { AddressPolicy, METADATA_AND_LINK_LOCAL_RANGES, parseEndpoint } from "../bindings/address-policy.js";
// The subject and stream checks alone: the bus index loads the NATS client.
import { checkStreamName, checkSubjectPrefix, parseNatsServers } from "../bus/nats/subject.js";
import { ValidationError } from "../core/index.js";
import { tokenProblem } from "./admin-token.js";

export interface HubConfig {
  /** Where the database, keys and the admin token live. */
  dataDir: string;
  /**
   * Where the directory and the Log are stored (`--store`): a `postgres://` or `postgresql://`
   * URL for PostgreSQL; undefined for the embedded SQLite file in `dataDir`.
   */
  store: string | undefined;
  host: string;
  /** 0 picks a free port. */
  port: number;
  /** Largest request body accepted, in bytes. */
  bodyLimit: number;
  /**
   * How long a client may take to send a whole request, headers and body, in milliseconds; a
   * slower one gets 408 and its connection closed (one that trickles bytes would hold it forever).
   */
  requestTimeoutMs: number;
  /**
   * Names besides this machine's own (`localhost`, its host name, IP addresses) that a request may
   * give in its Host header (`--allowed-hosts`): a name, `.domain` for it and every name under it,
   * or `*` for any. Any other is refused (421), since it is a web page whose name was made to
   * resolve to the hub's address (DNS rebinding).
   */
  allowedHosts: readonly string[];
  /** When true, reads need a token too (`--auth read`). */
  authRead: boolean;
  /** An admin token given at start, for automation; otherwise one is created in dataDir. */
  adminToken: string | undefined;
  /** A token that may read but not change anything (dashboards, monitoring). */
  readToken: string | undefined;
  /** How often expired TDs are dropped, in milliseconds. */
  expirySweepMs: number;
  /**
   * How often a replica tries to take a role that another holds, in milliseconds (docs/replicas.md):
   * one given up by its holder (a stop) is taken over at once, this is for a holder lost unawares.
   */
  electionMs: number;
  /**
   * How long a change stream (SSE, GraphQL) that is replaying may wait for its client to read
   * before it is cut, in milliseconds (the client resumes from its last id).
   */
  streamStallMs: number;
  /**
   * Bytes that all change streams (SSE) together may have waiting for their clients: each may
   * hold its share (and at most 4 MiB); one past it is cut, and resumes from its last id.
   */
  streamBufferBytes: number;
  /**
   * Long-lived streams (SSE, GraphQL WebSockets) one client address may hold open at once: each
   * holds a socket, a file descriptor and a follower of the Log for as long as its client likes.
   */
  maxStreamsPerClient: number;
  /**
   * How long a stop keeps a keep-alive connection answered just before it for its client's next
   * request (answered 503, so the request is not reset unread), in milliseconds; 0 waits for none.
   */
  stopGraceMs: number;
  /**
   * Bytes of report bodies (`POST /things/{id}/changes`) taken in at once: read, checked, queued
   * or being written. Past it a report is refused (503) before its body is read, so that memory
   * stays bounded however many producers send big bodies at once.
   */
  maxIngestBytes: number;
  logLevel: string;
  /** Largest number of TDs one listing page may hold. */
  maxPageLimit: number;
  /** Largest number of values a JSONPath search may return. */
  maxSearchResults: number;
  /** Sign a Log checkpoint once this many Changes are not covered by one… */
  checkpointEveryChanges: number;
  /** …or this many milliseconds after the first Change not covered by one. */
  checkpointEveryMs: number;
  /** MiB of the SQLite file that queries read through a memory map (0: none). */
  sqliteMmapMiB: number;
  /** Keep every registered Thing's observable properties and events observed (`--no-observe`). */
  observe: boolean;
  /** Polling interval of an observed property whose TD names none (`hyperthings:pollInterval`), ms. */
  pollIntervalMs: number;
  /** The UDP port SNMPv2c traps and informs are received on (`--snmp-trap-port`); none without it. */
  snmpTrapPort: number | undefined;
  /** Reconnecting to a Thing that went away: the first delay and the cap, ms (doubling, jittered). */
  reconnectMs: number;
  maxReconnectMs: number;
  /**
   * The MQTT gateway: the hub's own broker (`embedded`), a broker of the operator's (`external`,
   * `--mqtt-url`), or none (`off`, `--no-mqtt`).
   */
  mqtt: "embedded" | "external" | "off";
  /** The embedded broker's port. */
  mqttPort: number;
  /** True when the port was not chosen: if it is taken, the broker listens on a free one instead. */
  mqttPortFallback: boolean;
  /** The external broker, `mqtt://[user:password@]host[:port]` or `mqtts://…`. */
  mqttUrl: string | undefined;
  /** The root of the gateway's topics (`{prefix}/things/…`, `{prefix}/changes/…`). */
  mqttPrefix: string;
  /** Let clients connect to the embedded broker without a password. */
  mqttAnonymous: boolean;
  /** Largest MQTT packet the embedded broker takes, and largest payload the gateway reads, in bytes. */
  mqttMaxPayload: number;
  /**
   * Retained messages the embedded broker keeps for one publisher (a device, a user name), and
   * their bytes (topics and payloads); past either, its retained messages are delivered unkept.
   */
  mqttRetainedPerClient: number;
  mqttRetainedBytesPerClient: number;
  /** Topic filters one connection to the embedded broker may hold; past it a subscription is refused. */
  mqttSubscriptionsPerClient: number;
  /** Where Homie 5 devices announce themselves (`{root}/5/{device}/…`). */
  mqttHomieRoot: string;
  /** Where Home Assistant MQTT discovery messages arrive (`{prefix}/{component}/…/config`). */
  mqttHomeAssistantPrefix: string;
  /**
   * The addresses the bindings and discovery may connect to (`--allow`, CIDR ranges); by default
   * every address. An entry with a port (`127.0.0.1:5432`) reaches that port although the hub
   * keeps it from Things (its own, a database's on loopback), and narrows nothing.
   */
  allow: readonly string[];
  /**
   * The addresses they may not connect to: the cloud metadata endpoints and link-local ranges
   * always, then the ranges (or, with a port, the ports) of `--deny`.
   */
  deny: readonly string[];
  /** The bounds on GraphQL operations at /graphql (docs/graphql.md). */
  graphql: GraphqlLimits;
  /** The type vocabulary file for graph queries (docs/queries.md); undefined: vocab/types.json. */
  vocabulary: string | undefined;
  /** Where committed Changes go besides the hub's own subscribers (docs/nats.md). */
  bus: BusSettings;
  /**
   * One of several hubs on one PostgreSQL schema and one NATS stream (`--replica`,
   * docs/replicas.md); without it the hub holds its schema alone.
   */
  replica: boolean;
}

/** The Bus: in-process only, or NATS JetStream too (`--bus nats://…`, docs/nats.md). */
export interface BusSettings {
  /** The NATS servers; undefined for the in-process bus. */
  servers: readonly string[] | undefined;
  /** Subjects are `<prefix>.changes.<thing>.<kind>`. */
  prefix: string;
  /** The JetStream stream, created or updated at connect. */
  stream: string;
  /** How long the stream keeps a message, ms (0: for ever). */
  maxAgeMs: number;
  /** The stream's size, bytes (0: no limit); past it the oldest messages go. */
  maxBytes: number;
}

/** What one GraphQL operation, and one WebSocket, may ask of the hub. */
export interface GraphqlLimits {
  /** Deepest nesting of selections. */
  maxDepth: number;
  /** Highest cost: each field 1, a list field times its page size (`first`, or 10 assumed). */
  maxCost: number;
  /** Largest `first` a list may ask for. */
  maxFirst: number;
  /** Subscriptions one socket may hold at once. */
  maxSubscriptions: number;
  /** Operations per second one socket may start, on average… */
  operationsPerSecond: number;
  /** …and in a burst. */
  operationsBurst: number;
  /** Changes a subscription may have waiting for its socket; past it the socket is closed (1013). */
  maxQueued: number;
  /** Largest WebSocket message, in bytes. */
  maxPayload: number;
  /**
   * Largest answer of one operation (and message of a subscription), serialized as JSON, in
   * bytes; past it the answer is one ANSWER_TOO_LARGE error, and building it stops.
   */
  maxAnswerBytes: number;
}

/** The environment variable for each setting. */
export const configEnvironment = {
  dataDir: "HYPERTHINGS_DATA",
  store: "HYPERTHINGS_STORE",
  host: "HYPERTHINGS_HOST",
  port: "HYPERTHINGS_PORT",
  bodyLimit: "HYPERTHINGS_BODY_LIMIT",
  authRead: "HYPERTHINGS_AUTH",
  adminToken: "HYPERTHINGS_ADMIN_TOKEN",
  readToken: "HYPERTHINGS_READ_TOKEN",
  logLevel: "HYPERTHINGS_LOG_LEVEL",
  checkpointEveryChanges: "HYPERTHINGS_CHECKPOINT_CHANGES",
  checkpointEveryMs: "HYPERTHINGS_CHECKPOINT_MS",
  sqliteMmapMiB: "HYPERTHINGS_SQLITE_MMAP_MIB",
  observe: "HYPERTHINGS_OBSERVE",
  replica: "HYPERTHINGS_REPLICA",
  pollIntervalMs: "HYPERTHINGS_POLL_MS",
  snmpTrapPort: "HYPERTHINGS_SNMP_TRAP_PORT",
  reconnectMs: "HYPERTHINGS_RECONNECT_MS",
  maxReconnectMs: "HYPERTHINGS_MAX_RECONNECT_MS",
  mqtt: "HYPERTHINGS_MQTT",
  mqttPort: "HYPERTHINGS_MQTT_PORT",
  mqttUrl: "HYPERTHINGS_MQTT_URL",
  mqttPrefix: "HYPERTHINGS_MQTT_PREFIX",
  mqttAnonymous: "HYPERTHINGS_MQTT_ANONYMOUS",
  mqttMaxPayload: "HYPERTHINGS_MQTT_MAX_PAYLOAD",
  mqttRetainedPerClient: "HYPERTHINGS_MQTT_RETAINED_PER_CLIENT",
  mqttRetainedBytesPerClient: "HYPERTHINGS_MQTT_RETAINED_BYTES_PER_CLIENT",
  mqttSubscriptionsPerClient: "HYPERTHINGS_MQTT_SUBSCRIPTIONS_PER_CLIENT",
  mqttHomieRoot: "HYPERTHINGS_MQTT_HOMIE_ROOT",
  mqttHomeAssistantPrefix: "HYPERTHINGS_MQTT_HA_PREFIX",
  allowedHosts: "HYPERTHINGS_ALLOWED_HOSTS",
  allow: "HYPERTHINGS_ALLOW",
  deny: "HYPERTHINGS_DENY",
  vocabulary: "HYPERTHINGS_VOCABULARY",
  graphqlMaxAnswerBytes: "HYPERTHINGS_GRAPHQL_MAX_ANSWER_BYTES",
  maxStreamsPerClient: "HYPERTHINGS_MAX_STREAMS_PER_CLIENT",
  stopGraceMs: "HYPERTHINGS_STOP_GRACE_MS",
  bus: "HYPERTHINGS_BUS",
  busPrefix: "HYPERTHINGS_BUS_PREFIX",
  busStream: "HYPERTHINGS_BUS_STREAM",
  busMaxAgeHours: "HYPERTHINGS_BUS_MAX_AGE_HOURS",
  busMaxMiB: "HYPERTHINGS_BUS_MAX_MIB",
} as const;

/** The variable that names a configuration file, as `--config` does. */
export const CONFIG_FILE_VARIABLE = "HYPERTHINGS_CONFIG";

/** A setting's name in a configuration file: the name configEnvironment gives it. */
export type ConfigFileKey = keyof typeof configEnvironment;

/**
 * What each setting takes in a configuration file: a whole number, text, a path (relative to the
 * file's folder), true or false, or a list (of text, or one comma-separated text).
 */
export const configFileKeys: Record<ConfigFileKey, "integer" | "string" | "path" | "boolean" | "list"> = {
  dataDir: "path",
  store: "string",
  host: "string",
  port: "integer",
  bodyLimit: "integer",
  authRead: "boolean",
  adminToken: "string",
  readToken: "string",
  logLevel: "string",
  checkpointEveryChanges: "integer",
  checkpointEveryMs: "integer",
  sqliteMmapMiB: "integer",
  observe: "boolean",
  replica: "boolean",
  pollIntervalMs: "integer",
  snmpTrapPort: "integer",
  reconnectMs: "integer",
  maxReconnectMs: "integer",
  mqtt: "boolean",
  mqttPort: "integer",
  mqttUrl: "string",
  mqttPrefix: "string",
  mqttAnonymous: "boolean",
  mqttMaxPayload: "integer",
  mqttRetainedPerClient: "integer",
  mqttRetainedBytesPerClient: "integer",
  mqttSubscriptionsPerClient: "integer",
  mqttHomieRoot: "string",
  mqttHomeAssistantPrefix: "string",
  allowedHosts: "list",
  allow: "list",
  deny: "list",
  vocabulary: "path",
  graphqlMaxAnswerBytes: "integer",
  maxStreamsPerClient: "integer",
  stopGraceMs: "integer",
  bus: "list",
  busPrefix: "string",
  busStream: "string",
  busMaxAgeHours: "integer",
  busMaxMiB: "integer",
};

/**
 * A configuration file's settings (config-file.ts reads it): each as the text its environment
 * variable would hold, and where it is (`file:line:column`), for the message that refuses it.
 */
export interface ConfigFile {
  /** The file's absolute path. */
  path: string;
  settings: ReadonlyMap<ConfigFileKey, { text: string; at: string }>;
}

/** The variables a configuration file gave (not the environment), each with its key and place. */
const fileOrigins = new WeakMap<NodeJS.ProcessEnv, ReadonlyMap<string, string>>();

/**
 * How an error names the setting behind `variable`: `file:line:column: key` when a configuration
 * file gave it, else `fallback` (the variable, or a phrase with it).
 */
function sourceOf(env: NodeJS.ProcessEnv, variable: string, fallback: string): string {
  return fileOrigins.get(env)?.get(variable) ?? fallback;
}

/** HYPERTHINGS_ names that are no hub setting but mean something elsewhere: the CLI's, the tests'. */
const OTHER_ENVIRONMENT = [
  "HYPERTHINGS_URL",
  "HYPERTHINGS_TOKEN",
  "HYPERTHINGS_REQUIRE_SERVICES",
  "HYPERTHINGS_CHROMIUM",
  "HYPERTHINGS_UI_SCREENSHOTS",
];
const OTHER_ENVIRONMENT_PREFIXES = ["HYPERTHINGS_TEST_", "HYPERTHINGS_BENCH_"];

/**
 * The HYPERTHINGS_ variables of `env` that nothing reads, each with the setting it most likely
 * meant: `HYPERTHINGS_DATA_DIR` would otherwise leave the hub on its default data folder, silently.
 */
export function unknownEnvironment(env: NodeJS.ProcessEnv): { name: string; meant: string | undefined }[] {
  const settings: string[] = Object.values(configEnvironment);
  const known = new Set([...settings, CONFIG_FILE_VARIABLE, ...OTHER_ENVIRONMENT]);
  return Object.keys(env)
    .filter(
      (name) =>
        name.startsWith("HYPERTHINGS_") &&
        !known.has(name) &&
        !OTHER_ENVIRONMENT_PREFIXES.some((prefix) => name.startsWith(prefix)),
    )
    .sort()
    .map((name) => ({ name, meant: closestName(name, [...known]) }));
}

/** The name nearest to `name`: one that is a prefix of it or it of one, else within 2 edits. */
export function closestName(name: string, names: readonly string[]): string | undefined {
  let best: { name: string; distance: number } | undefined;
  for (const candidate of names) {
    const distance =
      name.startsWith(candidate) || candidate.startsWith(name) ? 0 : editDistance(name, candidate);
    if (distance <= 2 && (best === undefined || distance < best.distance))
      best = { name: candidate, distance };
  }
  return best?.name;
}

function editDistance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++) {
      next[j] = Math.min(
        (row[j] ?? 0) + 1,
        (next[j - 1] ?? 0) + 1,
        (row[j - 1] ?? 0) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    row = next;
  }
  return row[b.length] ?? 0;
}

export function defaultDataDir(): string {
  return join(envPaths("hyperthings", { suffix: "" }).data);
}

export const configDefaults: Omit<HubConfig, "dataDir" | "adminToken" | "readToken"> = {
  store: undefined,
  host: "127.0.0.1",
  port: 8080,
  bodyLimit: 1024 * 1024,
  requestTimeoutMs: 300_000,
  allowedHosts: [],
  authRead: false,
  expirySweepMs: 1000,
  electionMs: 2000,
  streamStallMs: 30_000,
  streamBufferBytes: 128 * 1024 * 1024,
  maxStreamsPerClient: 64,
  stopGraceMs: 1000,
  maxIngestBytes: 64 * 1024 * 1024,
  logLevel: "info",
  maxPageLimit: 1000,
  maxSearchResults: 100_000,
  checkpointEveryChanges: 10_000,
  checkpointEveryMs: 10_000,
  sqliteMmapMiB: 1024,
  observe: true,
  pollIntervalMs: 5_000,
  snmpTrapPort: undefined,
  reconnectMs: 1_000,
  maxReconnectMs: 60_000,
  mqtt: "embedded",
  mqttPort: 1883,
  mqttPortFallback: true,
  mqttUrl: undefined,
  mqttPrefix: "hyperthings",
  mqttAnonymous: false,
  mqttMaxPayload: 256 * 1024,
  mqttRetainedPerClient: 1_000,
  mqttRetainedBytesPerClient: 4 * 1024 * 1024,
  mqttSubscriptionsPerClient: 1_000,
  mqttHomieRoot: "homie",
  mqttHomeAssistantPrefix: "homeassistant",
  allow: ["0.0.0.0/0", "::/0"],
  deny: METADATA_AND_LINK_LOCAL_RANGES,
  vocabulary: undefined,
  replica: false,
  bus: {
    servers: undefined,
    prefix: "hyperthings",
    stream: "HYPERTHINGS",
    maxAgeMs: 7 * 24 * 3_600_000,
    maxBytes: 1024 * 2 ** 20,
  },
  graphql: {
    maxDepth: 12,
    maxCost: 20_000,
    maxFirst: 1000,
    maxSubscriptions: 100,
    operationsPerSecond: 50,
    operationsBurst: 200,
    maxQueued: 10_000,
    maxPayload: 1024 * 1024,
    maxAnswerBytes: 16 * 1024 * 1024,
  },
};

const LOG_LEVELS = ["fatal", "error", "warn", "info", "debug", "trace", "silent"];

function integer(name: string, text: string, min: number, max: number): number {
  const value = Number(text);
  if (!/^\d+$/.test(text.trim()) || !Number.isSafeInteger(value) || value < min || value > max) {
    throw new ValidationError(`${name} must be a whole number from ${min} to ${max}, not "${text}"`);
  }
  return value;
}

/**
 * A setting's name in its errors, with where its value came from: the flag, the environment
 * variable, or the configuration file's key and line (a hub started by a service manager gets its
 * settings from a file the operator must find the line in). A value given in code names none.
 */
function named(
  name: string,
  given: unknown,
  flag: string | undefined,
  variable: string,
  env: NodeJS.ProcessEnv,
): string {
  if (given !== undefined) return flag === undefined ? name : `${name} (${flag})`;
  return env[variable] === undefined ? name : sourceOf(env, variable, `${name} (${variable})`);
}

/**
 * The store's URL: PostgreSQL's, or undefined for the embedded SQLite file. Anything else is
 * refused without being echoed (a URL may hold a password).
 */
function storeOf(overrides: ConfigOverrides, env: NodeJS.ProcessEnv): string | undefined {
  const value = overrides.store ?? env[configEnvironment.store];
  if (value === undefined) return undefined;
  let scheme: string | undefined;
  try {
    scheme = new URL(value).protocol;
  } catch {
    scheme = undefined;
  }
  if (scheme === "postgres:" || scheme === "postgresql:") return value;
  const name = named("store", overrides.store, "--store", configEnvironment.store, env);
  throw new ValidationError(
    `${name} must be a postgres:// or postgresql:// URL (PostgreSQL), or unset for the embedded SQLite file in the data directory; ` +
      (scheme === undefined ? "it is no URL" : `it is a ${scheme}// URL`),
  );
}

/** Settings given on the command line; each is optional and wins over the environment. */
export interface ConfigOverrides {
  dataDir?: string;
  /** `--store`: a PostgreSQL URL. */
  store?: string;
  host?: string;
  port?: string | number;
  bodyLimit?: string | number;
  requestTimeoutMs?: number;
  /** `--allowed-hosts`: comma-separated host names. */
  allowedHosts?: string;
  auth?: string;
  logLevel?: string;
  expirySweepMs?: number;
  electionMs?: number;
  streamStallMs?: number;
  streamBufferBytes?: number;
  maxStreamsPerClient?: number;
  stopGraceMs?: number;
  maxIngestBytes?: number;
  checkpointEveryChanges?: string | number;
  checkpointEveryMs?: string | number;
  sqliteMmapMiB?: string | number;
  observe?: boolean;
  pollIntervalMs?: string | number;
  /** `--snmp-trap-port`. */
  snmpTrapPort?: string | number;
  reconnectMs?: string | number;
  maxReconnectMs?: string | number;
  /** false for `--no-mqtt`. */
  mqtt?: boolean;
  mqttPort?: string | number;
  mqttUrl?: string;
  mqttPrefix?: string;
  mqttAnonymous?: boolean;
  /** `--allow`: comma-separated CIDR ranges. */
  allow?: string;
  /** `--deny`: comma-separated CIDR ranges, denied on top of the defaults. */
  deny?: string;
  /** Bounds on GraphQL operations, each replacing its default. */
  graphql?: Partial<GraphqlLimits>;
  /** `--vocabulary`: the type vocabulary file. */
  vocabulary?: string;
  /** `--bus`: `in-process`, or NATS servers `nats://host:port[,…]`. */
  bus?: string;
  /** `--bus-prefix`, `--bus-stream`. */
  busPrefix?: string;
  busStream?: string;
  /** `--replica`. */
  replica?: boolean;
}

/**
 * The variables that are set to something: `HYPERTHINGS_PORT=` (what `HYPERTHINGS_PORT=${PORT}`
 * gives in a shell or a compose file when PORT is unset) leaves the default in force, as an unset
 * variable does, instead of stopping the start on "".
 */
function setVariables(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(
    Object.entries(env).filter(([, value]) => value !== undefined && value.trim() !== ""),
  );
}

/** The environment over the file: each setting the environment leaves unset, the file may give. */
function withFile(env: NodeJS.ProcessEnv, file: ConfigFile | undefined): NodeJS.ProcessEnv {
  if (file === undefined) return env;
  const merged: NodeJS.ProcessEnv = { ...env };
  const origins = new Map<string, string>();
  for (const [key, { text, at }] of file.settings) {
    const variable = configEnvironment[key];
    if (merged[variable] !== undefined) continue;
    merged[variable] = text;
    origins.set(variable, `${at}: ${key}`);
  }
  fileOrigins.set(merged, origins);
  return merged;
}

/**
 * Resolves the configuration: command line, then environment, then the configuration file, then
 * defaults; validated.
 */
export function loadConfig(
  overrides: ConfigOverrides = {},
  environment: NodeJS.ProcessEnv = process.env,
  file?: ConfigFile,
): HubConfig {
  const e = configEnvironment;
  const env = withFile(setVariables(environment), file);
  const port = String(overrides.port ?? env[e.port] ?? configDefaults.port);
  const bodyLimit = String(overrides.bodyLimit ?? env[e.bodyLimit] ?? configDefaults.bodyLimit);
  const auth = overrides.auth ?? env[e.authRead] ?? "write";
  if (auth !== "read" && auth !== "write") {
    throw new ValidationError(
      `${named("auth", overrides.auth, "--auth", e.authRead, env)} must be "write" (mutations need a token) or "read" (everything does), not "${auth}"`,
    );
  }
  const logLevel = overrides.logLevel ?? env[e.logLevel] ?? configDefaults.logLevel;
  if (!LOG_LEVELS.includes(logLevel)) {
    throw new ValidationError(
      `${named("log level", overrides.logLevel, "--log-level", e.logLevel, env)} must be one of ${LOG_LEVELS.join(", ")}, not "${logLevel}"`,
    );
  }
  const adminToken = env[e.adminToken] || undefined;
  const readToken = env[e.readToken] || undefined;
  for (const [name, token] of [
    [e.adminToken, adminToken],
    [e.readToken, readToken],
  ] as const) {
    const problem = token === undefined ? undefined : tokenProblem(token);
    if (problem !== undefined) throw new ValidationError(`${sourceOf(env, name, name)} ${problem}`);
  }
  // An empty variable is an unset one (as for every other setting): `HYPERTHINGS_DATA=` put the
  // database in the working directory, and `HYPERTHINGS_HOST=` had the hub listen on every
  // address. Empty on the command line is a mistake said as such.
  for (const [flag, value] of [
    ["--data", overrides.dataDir],
    ["--store", overrides.store],
    ["--host", overrides.host],
  ] as const) {
    if (value !== undefined && value.trim() === "") throw new ValidationError(`${flag} must not be empty`);
  }
  const store = storeOf(overrides, env);
  const bus = busSettings(overrides, env);
  return {
    ...configDefaults,
    dataDir: overrides.dataDir ?? (env[e.dataDir] || defaultDataDir()),
    store,
    replica: replicaOf(overrides, env, store, bus),
    host: overrides.host ?? (env[e.host] || configDefaults.host),
    port: integer(named("port", overrides.port, "--port", e.port, env), port, 0, 65535),
    bodyLimit: integer(
      named("body limit", overrides.bodyLimit, "--body-limit", e.bodyLimit, env),
      bodyLimit,
      1024,
      1024 * 1024 * 1024,
    ),
    requestTimeoutMs: overrides.requestTimeoutMs ?? configDefaults.requestTimeoutMs,
    allowedHosts: hostNames(
      overrides.allowedHosts ?? env[e.allowedHosts],
      overrides.allowedHosts === undefined
        ? sourceOf(env, e.allowedHosts, `--allowed-hosts (${e.allowedHosts})`)
        : `--allowed-hosts (${e.allowedHosts})`,
    ),
    authRead: auth === "read",
    expirySweepMs: overrides.expirySweepMs ?? configDefaults.expirySweepMs,
    electionMs: overrides.electionMs ?? configDefaults.electionMs,
    streamStallMs: overrides.streamStallMs ?? configDefaults.streamStallMs,
    streamBufferBytes: overrides.streamBufferBytes ?? configDefaults.streamBufferBytes,
    maxStreamsPerClient: integer(
      named("streams per client", overrides.maxStreamsPerClient, undefined, e.maxStreamsPerClient, env),
      String(
        overrides.maxStreamsPerClient ?? (env[e.maxStreamsPerClient] || configDefaults.maxStreamsPerClient),
      ),
      1,
      1_000_000,
    ),
    stopGraceMs: integer(
      named("stop grace", overrides.stopGraceMs, undefined, e.stopGraceMs, env),
      String(overrides.stopGraceMs ?? (env[e.stopGraceMs] || configDefaults.stopGraceMs)),
      0,
      60_000,
    ),
    maxIngestBytes: overrides.maxIngestBytes ?? configDefaults.maxIngestBytes,
    checkpointEveryChanges: integer(
      named(
        "checkpoint interval (changes)",
        overrides.checkpointEveryChanges,
        undefined,
        e.checkpointEveryChanges,
        env,
      ),
      String(
        overrides.checkpointEveryChanges ??
          env[e.checkpointEveryChanges] ??
          configDefaults.checkpointEveryChanges,
      ),
      1,
      10_000_000,
    ),
    checkpointEveryMs: integer(
      named("checkpoint interval (ms)", overrides.checkpointEveryMs, undefined, e.checkpointEveryMs, env),
      String(overrides.checkpointEveryMs ?? env[e.checkpointEveryMs] ?? configDefaults.checkpointEveryMs),
      10,
      86_400_000,
    ),
    sqliteMmapMiB: integer(
      named("SQLite memory map (MiB)", overrides.sqliteMmapMiB, undefined, e.sqliteMmapMiB, env),
      String(overrides.sqliteMmapMiB ?? env[e.sqliteMmapMiB] ?? configDefaults.sqliteMmapMiB),
      0,
      2047,
    ),
    observe: overrides.observe ?? flag(e.observe, env[e.observe], configDefaults.observe),
    pollIntervalMs: integer(
      named("poll interval (ms)", overrides.pollIntervalMs, undefined, e.pollIntervalMs, env),
      String(overrides.pollIntervalMs ?? env[e.pollIntervalMs] ?? configDefaults.pollIntervalMs),
      100,
      86_400_000,
    ),
    snmpTrapPort: snmpTrapPortOf(overrides, env),
    reconnectMs: integer(
      named("reconnect delay (ms)", overrides.reconnectMs, undefined, e.reconnectMs, env),
      String(overrides.reconnectMs ?? env[e.reconnectMs] ?? configDefaults.reconnectMs),
      1,
      3_600_000,
    ),
    maxReconnectMs: integer(
      named("reconnect delay cap (ms)", overrides.maxReconnectMs, undefined, e.maxReconnectMs, env),
      String(overrides.maxReconnectMs ?? env[e.maxReconnectMs] ?? configDefaults.maxReconnectMs),
      1,
      86_400_000,
    ),
    ...mqttSettings(overrides, env),
    ...addressSettings(overrides, env),
    graphql: {
      ...configDefaults.graphql,
      ...overrides.graphql,
      maxAnswerBytes: integer(
        named(
          "GraphQL answer limit (bytes)",
          overrides.graphql?.maxAnswerBytes,
          undefined,
          e.graphqlMaxAnswerBytes,
          env,
        ),
        String(
          overrides.graphql?.maxAnswerBytes ??
            env[e.graphqlMaxAnswerBytes] ??
            configDefaults.graphql.maxAnswerBytes,
        ),
        1024,
        1024 * 1024 * 1024,
      ),
    },
    vocabulary: overrides.vocabulary ?? (env[e.vocabulary] || undefined),
    bus,
    adminToken,
    readToken,
    logLevel,
  };
}

/** The SNMP trap port, when one is given (0: any free one); none otherwise. */
function snmpTrapPortOf(overrides: ConfigOverrides, env: NodeJS.ProcessEnv): number | undefined {
  const e = configEnvironment;
  const given = overrides.snmpTrapPort ?? (env[e.snmpTrapPort] || undefined);
  if (given === undefined) return undefined;
  return integer(
    named("SNMP trap port", overrides.snmpTrapPort, "--snmp-trap-port", e.snmpTrapPort, env),
    String(given),
    0,
    65535,
  );
}

type MqttSettings = Pick<
  HubConfig,
  | "mqtt"
  | "mqttPort"
  | "mqttPortFallback"
  | "mqttUrl"
  | "mqttPrefix"
  | "mqttAnonymous"
  | "mqttMaxPayload"
  | "mqttRetainedPerClient"
  | "mqttRetainedBytesPerClient"
  | "mqttSubscriptionsPerClient"
  | "mqttHomieRoot"
  | "mqttHomeAssistantPrefix"
>;

/** The MQTT gateway's settings; a port given on the command line or in the environment is not replaced. */
function mqttSettings(overrides: ConfigOverrides, env: NodeJS.ProcessEnv): MqttSettings {
  const e = configEnvironment;
  const d = configDefaults;
  const onOff = (name: string, text: string | undefined): boolean | undefined => {
    const value = text?.trim().toLowerCase();
    if (value === undefined || value === "") return undefined;
    if (["1", "true", "on", "yes"].includes(value)) return true;
    if (["0", "false", "off", "no"].includes(value)) return false;
    throw new ValidationError(`${name} must be on or off, not "${text}"`);
  };
  const topicRoot = (name: string, text: string): string => {
    const levels = text.split("/");
    // eslint-disable-next-line no-control-regex
    if (text.startsWith("$") || text.length > 256 || levels.some((l) => l === "" || /[+#\u0000]/.test(l))) {
      throw new ValidationError(
        `${name} must be MQTT topic levels without wildcards or empty levels, not "${text}"`,
      );
    }
    return text;
  };
  const enabled = overrides.mqtt ?? onOff(e.mqtt, env[e.mqtt]) ?? true;
  const url = overrides.mqttUrl ?? (env[e.mqttUrl] || undefined);
  const chosenPort = overrides.mqttPort ?? (env[e.mqttPort] || undefined);
  return {
    mqtt: !enabled ? "off" : url !== undefined ? "external" : "embedded",
    mqttPort: integer(
      named("MQTT port", overrides.mqttPort, "--mqtt-port", e.mqttPort, env),
      String(chosenPort ?? d.mqttPort),
      0,
      65535,
    ),
    mqttPortFallback: chosenPort === undefined,
    mqttUrl: url,
    mqttPrefix: topicRoot(
      named("MQTT topic prefix", overrides.mqttPrefix, "--mqtt-prefix", e.mqttPrefix, env),
      overrides.mqttPrefix ?? (env[e.mqttPrefix] || d.mqttPrefix),
    ),
    mqttAnonymous: overrides.mqttAnonymous ?? onOff(e.mqttAnonymous, env[e.mqttAnonymous]) ?? d.mqttAnonymous,
    mqttMaxPayload: integer(
      named("MQTT payload limit", undefined, undefined, e.mqttMaxPayload, env),
      String(env[e.mqttMaxPayload] || d.mqttMaxPayload),
      1024,
      256 * 1024 * 1024,
    ),
    // Shares of the embedded broker's 100,000 retained messages of 256 MiB (EMBEDDED_BROKER_LIMITS).
    mqttRetainedPerClient: integer(
      named("MQTT retained messages per client", undefined, undefined, e.mqttRetainedPerClient, env),
      String(env[e.mqttRetainedPerClient] || d.mqttRetainedPerClient),
      0,
      100_000,
    ),
    mqttRetainedBytesPerClient: integer(
      named("MQTT retained bytes per client", undefined, undefined, e.mqttRetainedBytesPerClient, env),
      String(env[e.mqttRetainedBytesPerClient] || d.mqttRetainedBytesPerClient),
      0,
      256 * 1024 * 1024,
    ),
    mqttSubscriptionsPerClient: integer(
      named("MQTT subscriptions per client", undefined, undefined, e.mqttSubscriptionsPerClient, env),
      String(env[e.mqttSubscriptionsPerClient] || d.mqttSubscriptionsPerClient),
      1,
      1_000_000,
    ),
    mqttHomieRoot: topicRoot(
      named("Homie root topic", undefined, undefined, e.mqttHomieRoot, env),
      env[e.mqttHomieRoot] || d.mqttHomieRoot,
    ),
    mqttHomeAssistantPrefix: topicRoot(
      named("Home Assistant discovery prefix", undefined, undefined, e.mqttHomeAssistantPrefix, env),
      env[e.mqttHomeAssistantPrefix] || d.mqttHomeAssistantPrefix,
    ),
  };
}

/** `--allowed-hosts`: comma-separated DNS names, lower-cased; a typo that is no name stops the start. */
function hostNames(text: string | undefined, setting: string): string[] {
  if (text === undefined) return [];
  const names = text
    .split(",")
    .map((name) => name.trim().toLowerCase())
    .filter((name) => name !== "");
  for (const name of names) {
    // A name, `.domain` (it and every name under it), or `*` (any: a proxy in front checks Host).
    if (name !== "*" && !/^\.?[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$/.test(name)) {
      throw new ValidationError(
        `${setting} takes host names such as hub.example.com, .example.com (every name under it) or *, separated by commas; "${name}" is not one`,
      );
    }
  }
  return names;
}

/** `--allow` / `--deny`: comma-separated CIDR ranges, each checked here so a typo stops the start. */
function addressSettings(
  overrides: ConfigOverrides,
  env: NodeJS.ProcessEnv,
): Pick<HubConfig, "allow" | "deny"> {
  const e = configEnvironment;
  const ranges = (option: string, variable: string, text: string | undefined): string[] | undefined => {
    if (text === undefined || text.trim() === "") return undefined;
    const list = text
      .split(",")
      .map((range) => range.trim())
      .filter((range) => range !== "");
    for (const range of list) {
      try {
        new AddressPolicy({ deny: [range] });
      } catch {
        throw new ValidationError(
          `${label(option, variable)} takes CIDR ranges such as 10.0.0.0/8 or fd00::/8, or ports such as 127.0.0.1:5432 or [::1]:6379, separated by commas; "${range}" is not one`,
        );
      }
    }
    return list;
  };
  // A flag's value is named by the flag; the environment's or the file's by where it is.
  const label = (option: string, variable: string): string =>
    overrides[option === "--allow" ? "allow" : "deny"] !== undefined
      ? `${option} (${variable})`
      : sourceOf(env, variable, `${option} (${variable})`);
  const allow = ranges("--allow", e.allow, overrides.allow ?? env[e.allow]);
  const deny = ranges("--deny", e.deny, overrides.deny ?? env[e.deny]);
  return {
    // Ports alone (`127.0.0.1:5432`) lift a protection and narrow nothing: every range stays allowed.
    allow:
      allow === undefined
        ? configDefaults.allow
        : allow.every((entry) => parseEndpoint(entry) !== undefined)
          ? [...configDefaults.allow, ...allow]
          : allow,
    deny: [...configDefaults.deny, ...(deny ?? [])],
  };
}

/** An on/off environment setting: true/false, 1/0, on/off, yes/no. */
function flag(name: string, text: string | undefined, fallback: boolean): boolean {
  if (text === undefined || text === "") return fallback;
  const value = text.trim().toLowerCase();
  if (["1", "true", "on", "yes"].includes(value)) return true;
  if (["0", "false", "off", "no"].includes(value)) return false;
  throw new ValidationError(`${name} must be true or false, not "${text}"`);
}

/**
 * `--replica`: only with a PostgreSQL store and the NATS bus, where replicas share the Log and
 * learn each other's Changes (docs/replicas.md).
 */
function replicaOf(
  overrides: ConfigOverrides,
  env: NodeJS.ProcessEnv,
  store: string | undefined,
  bus: BusSettings,
): boolean {
  const e = configEnvironment;
  const replica = overrides.replica ?? flag(e.replica, env[e.replica], configDefaults.replica);
  if (!replica || (store !== undefined && bus.servers !== undefined)) return replica;
  const name = overrides.replica === undefined ? sourceOf(env, e.replica, e.replica) : "--replica";
  const missing = [
    store === undefined && "--store postgres://…",
    bus.servers === undefined && "--bus nats://…",
  ]
    .filter((m) => m !== false)
    .join(" and ");
  throw new ValidationError(
    `${name} needs ${missing}: replicas share one PostgreSQL schema and learn each other's Changes over NATS JetStream (docs/replicas.md)`,
  );
}

/** The Bus's settings: `--bus` (in-process, or NATS servers), the subject prefix, the stream and its limits. */
function busSettings(overrides: ConfigOverrides, env: NodeJS.ProcessEnv): BusSettings {
  const e = configEnvironment;
  const d = configDefaults.bus;
  const bus = overrides.bus ?? env[e.bus];
  const servers =
    bus === undefined || bus.trim() === "in-process"
      ? undefined
      : parseNatsServers(named("bus", overrides.bus, "--bus", e.bus, env), bus);
  return {
    servers,
    prefix: checkSubjectPrefix(
      named("bus subject prefix", overrides.busPrefix, "--bus-prefix", e.busPrefix, env),
      overrides.busPrefix ?? env[e.busPrefix] ?? d.prefix,
    ),
    stream: checkStreamName(
      named("bus stream", overrides.busStream, "--bus-stream", e.busStream, env),
      overrides.busStream ?? env[e.busStream] ?? d.stream,
    ),
    maxAgeMs:
      integer(
        named("bus stream max age (hours)", undefined, undefined, e.busMaxAgeHours, env),
        String(env[e.busMaxAgeHours] ?? d.maxAgeMs / 3_600_000),
        0,
        100 * 365 * 24,
      ) * 3_600_000,
    maxBytes:
      integer(
        named("bus stream size (MiB)", undefined, undefined, e.busMaxMiB, env),
        String(env[e.busMaxMiB] ?? d.maxBytes / 2 ** 20),
        0,
        1024 * 1024 * 1024,
      ) *
      2 ** 20,
  };
}
