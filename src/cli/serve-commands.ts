// `things serve` and `things demo`: run a hub in this process until Ctrl-C.
import { resolve } from "node:path";
import type { Command } from "commander";
import { ValidationError } from "../core/index.js";
import { isBadPort } from "../client/index.js";
// config.js, not the hub's index: the hub itself loads only when `serve` runs (start-hub.js).
import {
  CONFIG_FILE_VARIABLE,
  configEnvironment,
  loadConfig,
  unknownEnvironment,
  type ConfigFile,
  type ConfigOverrides,
  type HubConfig,
} from "../hub/config.js";
import { CliError } from "./cli-error.js";
import { isDefaultLocalHub, localDataDir } from "./client-commands.js";
import { MAX_TIMER_MS, wholeNumberOption } from "./sim-commands.js";
import type { RunningHub } from "./start-hub.js";

interface ServeOptions {
  config?: string;
  port?: string;
  host?: string;
  data?: string;
  auth?: string;
  bodyLimit?: string;
  logLevel?: string;
  /** False with --no-observe. */
  observe?: boolean;
  /** False with --no-mqtt. */
  mqtt?: boolean;
  mqttPort?: string;
  snmpTrapPort?: string;
  mqttUrl?: string;
  mqttPrefix?: string;
  mqttAnonymous?: boolean;
  allow?: string;
  deny?: string;
  allowedHosts?: string;
  vocabulary?: string;
  store?: string;
  replica?: boolean;
  bus?: string;
  busPrefix?: string;
  busStream?: string;
}

const SERVE_EXIT_CODES =
  "\nExit codes: 0 stopped (Ctrl-C, SIGTERM), 1 failed (a port taken, a data directory in use, a bad\n" +
  "HYPERTHINGS_ variable or --config file, a failed stop), 2 usage (an unknown flag, or a flag's bad value).";

function addServeOptions(command: Command): Command {
  return command
    .addHelpText("after", SERVE_EXIT_CODES)
    .option(
      "-c, --config <file>",
      "read settings from this YAML or JSON file; flags and HYPERTHINGS_ variables win over it (env HYPERTHINGS_CONFIG)",
    )
    .option("-p, --port <port>", "port to listen on, 0 for any free one (env HYPERTHINGS_PORT, default 8080)")
    .option("--host <host>", "address to listen on (env HYPERTHINGS_HOST, default 127.0.0.1)")
    .option("-d, --data <dir>", "data directory (env HYPERTHINGS_DATA, default a per-user data folder)")
    .option(
      "--store <url>",
      "keep the directory and the Log in PostgreSQL: postgres://user@host/db[?schema=name] (env HYPERTHINGS_STORE, default the SQLite file in the data directory)",
    )
    .option(
      "--allowed-hosts <names>",
      "names the hub answers to besides localhost, this machine's name and IP addresses: hub.example.com, .example.com (every name under it), * (any) (env HYPERTHINGS_ALLOWED_HOSTS)",
    )
    .option(
      "--auth <what>",
      '"write": mutations need a token (default); "read": every request does (env HYPERTHINGS_AUTH)',
    )
    .option("--body-limit <bytes>", "largest request body (env HYPERTHINGS_BODY_LIMIT, default 1048576)")
    .option(
      "--log-level <level>",
      "fatal, error, warn, info, debug, trace or silent (env HYPERTHINGS_LOG_LEVEL, default info)",
    )
    .option(
      "--no-observe",
      "do not observe the Things' properties and events (env HYPERTHINGS_OBSERVE=false)",
    )
    .option("--mqtt-port <port>", "the embedded MQTT broker's port (env HYPERTHINGS_MQTT_PORT, default 1883)")
    .option("--mqtt-url <url>", "use this MQTT broker instead of the embedded one (env HYPERTHINGS_MQTT_URL)")
    .option(
      "--mqtt-prefix <topic>",
      "root of the gateway's MQTT topics (env HYPERTHINGS_MQTT_PREFIX, default hyperthings)",
    )
    .option(
      "--mqtt-anonymous",
      "let MQTT clients connect without a password (env HYPERTHINGS_MQTT_ANONYMOUS)",
    )
    .option("--no-mqtt", "no MQTT broker and no gateway (env HYPERTHINGS_MQTT=off)")
    .option(
      "--snmp-trap-port <port>",
      "receive SNMPv2c traps and informs for Things' events on this UDP port, 0 for any free one (env HYPERTHINGS_SNMP_TRAP_PORT; default none)",
    )
    .option(
      "--allow <cidrs>",
      "the only addresses Things and discovery may be reached at, e.g. 10.0.0.0/8,fd00::/8; ADDRESS:PORT reaches a port the hub keeps from Things, e.g. 127.0.0.1:6379 (env HYPERTHINGS_ALLOW, default all)",
    )
    .option(
      "--deny <cidrs>",
      "addresses (or ADDRESS:PORT) never reached, besides the cloud metadata and link-local ones, the hub's own ports and loopback databases (env HYPERTHINGS_DENY)",
    )
    .option(
      "--vocabulary <file>",
      "the type vocabulary for graph queries, JSON (env HYPERTHINGS_VOCABULARY, default vocab/types.json)",
    )
    .option(
      "--bus <url>",
      'where committed Changes also go: "in-process" (default) or NATS JetStream, nats://host:port (env HYPERTHINGS_BUS)',
    )
    .option(
      "--bus-prefix <subject>",
      "root of the NATS subjects of Changes (env HYPERTHINGS_BUS_PREFIX, default hyperthings)",
    )
    .option(
      "--bus-stream <name>",
      "the JetStream stream that holds them (env HYPERTHINGS_BUS_STREAM, default HYPERTHINGS)",
    )
    .option(
      "--replica",
      "one of several hubs on one --store postgres:// schema and one --bus nats:// stream (env HYPERTHINGS_REPLICA)",
    );
}

function overridesOf(options: ServeOptions): ConfigOverrides {
  return {
    ...(options.port !== undefined && { port: options.port }),
    ...(options.host !== undefined && { host: options.host }),
    ...(options.data !== undefined && { dataDir: options.data }),
    ...(options.auth !== undefined && { auth: options.auth }),
    ...(options.bodyLimit !== undefined && { bodyLimit: options.bodyLimit }),
    ...(options.logLevel !== undefined && { logLevel: options.logLevel }),
    ...(options.observe === false && { observe: false }),
    ...(options.mqtt === false && { mqtt: false }),
    ...(options.mqttPort !== undefined && { mqttPort: options.mqttPort }),
    ...(options.snmpTrapPort !== undefined && { snmpTrapPort: options.snmpTrapPort }),
    ...(options.mqttUrl !== undefined && { mqttUrl: options.mqttUrl }),
    ...(options.mqttPrefix !== undefined && { mqttPrefix: options.mqttPrefix }),
    ...(options.mqttAnonymous === true && { mqttAnonymous: true }),
    ...(options.allow !== undefined && { allow: options.allow }),
    ...(options.deny !== undefined && { deny: options.deny }),
    ...(options.allowedHosts !== undefined && { allowedHosts: options.allowedHosts }),
    ...(options.vocabulary !== undefined && { vocabulary: options.vocabulary }),
    ...(options.store !== undefined && { store: options.store }),
    ...(options.bus !== undefined && { bus: options.bus }),
    ...(options.busPrefix !== undefined && { busPrefix: options.busPrefix }),
    ...(options.busStream !== undefined && { busStream: options.busStream }),
    ...(options.replica === true && { replica: true }),
  };
}

/** The configuration file `--config` or HYPERTHINGS_CONFIG names, read and type-checked; none without either. */
async function configFileOf(options: ServeOptions): Promise<ConfigFile | undefined> {
  if (options.config !== undefined && options.config.trim() === "")
    throw new CliError("--config must not be empty", 2);
  const path = options.config ?? (process.env[CONFIG_FILE_VARIABLE] || undefined);
  if (path === undefined) return undefined;
  // Loaded only here: it loads the YAML parser, which a hub without a file does without.
  const { readConfigFile } = await import("../hub/config-file.js");
  return readConfigFile(path);
}

/**
 * The hub's settings from the flags over the environment over the configuration file. A flag's
 * bad value is a usage error (exit 2), as for every other command; a bad environment variable or
 * file is not (exit 1).
 */
function configOf(options: ServeOptions, file: ConfigFile | undefined): HubConfig {
  try {
    return loadConfig(overridesOf(options), process.env, file);
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    try {
      loadConfig(overridesOf(options), {});
    } catch {
      throw new CliError(err.message, 2);
    }
    throw err;
  }
}

/** What else to stop on Ctrl-C, before and after the hub (the demo's fleet); filled in later. */
interface Companions {
  readonly before: (() => Promise<void>)[];
  readonly after: (() => Promise<void>)[];
}

async function serve(
  options: ServeOptions,
  file: ConfigFile | undefined,
  companions: Companions = { before: [], after: [] },
  start: { observeLater?: boolean } = {},
): Promise<RunningHub> {
  const config = configOf(options, file);
  // Loaded only here: the client commands start faster without the server's modules.
  const { startHub } = await import("./start-hub.js");
  let running: RunningHub;
  try {
    running = await startHub(config, {
      ...start,
      vocabularySetting: settingSource(options.vocabulary, "--vocabulary", "vocabulary", file),
    });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EADDRINUSE") {
      throw new CliError(
        `port ${config.port} on ${config.host} is already in use; choose another with --port (env HYPERTHINGS_PORT; 0 takes any free one)`,
      );
    }
    if (code === "EACCES") {
      throw new CliError(
        `port ${config.port} on ${config.host} needs privileges this process does not have; choose a port above 1023 with --port`,
      );
    }
    if (code === "ENOTFOUND" || code === "EADDRNOTAVAIL" || code === "EAI_AGAIN") {
      throw new CliError(
        `--host ${config.host} (env HYPERTHINGS_HOST) is not an address of this machine; give one of its addresses, such as 127.0.0.1 or 0.0.0.0`,
      );
    }
    throw err;
  }
  // Before the URL is printed: whoever reads it may stop the hub at once (a supervisor, a test),
  // and a signal before the handler would kill the process without its orderly stop.
  let signals = 0;
  const stop = (signal: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      running.hub.logger.warn({ signal }, "second signal: exiting without waiting");
      process.exit(130);
    }
    running.hub.logger.info({ signal }, "shutting down: finishing requests and committing queued writes");
    (async () => {
      for (const close of companions.before) await close();
      await running.close();
      for (const close of companions.after) await close();
    })().then(
      // Said on stdout, as the start was: whoever stopped it sees that the stop went through.
      () =>
        process.stdout.write(
          `Hyperthings ${running.hub.id} stopped: requests finished, queued writes committed, the database closed\n`,
          () => process.exit(0),
        ),
      (err: unknown) => {
        running.hub.logger.error({ err }, "shutdown failed");
        process.exit(1);
      },
    );
  };
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
  const out = process.stdout;
  // The URL names one address to reach the hub at; a wildcard host takes every address.
  const every =
    config.host === "0.0.0.0" || config.host === "::" ? ` (and on every address of this machine)` : "";
  out.write(`Hyperthings ${running.hub.id} listening on ${running.url}${every}\n`);
  const port = Number(new URL(running.url).port);
  if (isBadPort(port)) {
    out.write(
      `  warning: browsers and fetch refuse port ${port} (a "bad port" of the Fetch standard): neither the UI nor \`things\` can reach this hub; run it on another --port\n`,
    );
  }
  out.write(`  data: ${config.dataDir}\n`);
  if (file !== undefined) {
    const from = options.config === undefined ? ` (${CONFIG_FILE_VARIABLE})` : "";
    out.write(
      `  config: ${file.path}${from}: ${file.settings.size} settings; flags and HYPERTHINGS_ variables win over it\n`,
    );
  }
  for (const { name, meant } of unknownEnvironment(process.env)) {
    out.write(`  ignored: ${name} is no setting${meant === undefined ? "" : ` (did you mean ${meant}?)`}\n`);
  }
  out.write(`${mqttLine(running)}\n`);
  const bus = running.hub.bus.status?.();
  if (bus !== undefined) {
    const state = bus.connected
      ? "connected"
      : `not connected: ${bus.problem?.reason ?? "connecting"}; publishing once it connects`;
    const replica = config.replica ? ", as a replica (docs/replicas.md)" : "";
    out.write(
      `  bus: NATS ${bus.server} (${state}), stream ${bus.stream}, subjects ${bus.subjects}${replica}\n`,
    );
  }
  // Replicas observe, resume the recorded rollouts and judge drift one at a time: say whether this one does.
  const elected = running.hub.electedStatus();
  const { observation, rollouts, drift } = elected ?? {};
  if (observation !== undefined) {
    out.write(
      observation.state === "running"
        ? "  observation: this replica observes the Things\n"
        : `  observation: standby: ${observation.reason ?? ""}\n`,
    );
  }
  if (rollouts !== undefined) {
    out.write(
      rollouts.state === "running"
        ? "  rollouts: this replica runs the rollouts\n"
        : `  rollouts: standby: ${rollouts.reason ?? ""}\n`,
    );
  }
  if (drift !== undefined) {
    out.write(
      drift.state === "running"
        ? "  drift: this replica judges drift\n"
        : `  drift: standby: ${drift.reason ?? ""}\n`,
    );
  }
  if (running.snmpTrapPort !== undefined) {
    out.write(`  SNMP traps: UDP ${running.hub.config.host} port ${running.snmpTrapPort} (SNMPv2c)\n`);
  }
  const { adminToken } = running.hub;
  if (adminToken.created && out.isTTY !== true) {
    // A service's output goes to a log (journald, a container's), kept and shipped elsewhere and
    // read by more people than the data directory: a token there would outlive its rotation.
    out.write(
      `  admin token: made, in ${adminToken.path ?? "?"} (mode 0600); not printed, since this output is no terminal\n`,
    );
  } else if (adminToken.created) {
    out.write(
      `  admin token (shown once; kept in ${adminToken.path ?? "?"}, mode 0600):\n    ${adminToken.token}\n`,
    );
  } else if (adminToken.path) {
    out.write(`  admin token: in ${adminToken.path}\n`);
  } else {
    out.write(`  admin token: from ${settingSource(undefined, "", "adminToken", file)}\n`);
  }
  out.write(
    config.authRead
      ? "  access: every request needs a token (--auth read)\n"
      : "  access: reads are open to anyone who reaches the hub; changes need the admin token (--auth read to close reads)\n",
  );
  return running;
}

/**
 * Where a setting's value came from, for the lines that name it: the flag when given, else its
 * variable when set, else the configuration file's key and place.
 */
function settingSource(
  given: string | undefined,
  flag: string,
  key: keyof typeof configEnvironment,
  file: ConfigFile | undefined,
): string {
  if (given !== undefined) return flag;
  const variable = configEnvironment[key];
  const inFile = file?.settings.get(key);
  return process.env[variable] || inFile === undefined ? variable : `${key} in ${inFile.at}`;
}

/** What the operator needs to know about MQTT: where devices connect, and with what. */
function mqttLine(running: RunningHub): string {
  const { mqtt } = running;
  const status = running.mqttStatus();
  if (status?.gateway === "standby")
    return `  MQTT: ${status.broker} (external broker): ${status.reason ?? ""}`;
  if (mqtt === undefined) return "  MQTT: off";
  const how =
    mqtt.kind === "external"
      ? "external broker"
      : mqtt.anonymous
        ? "embedded broker, anonymous clients allowed"
        : "embedded broker; password: the admin token, or a device's from things mqtt-credentials";
  const notice = mqtt.notice === undefined ? "" : `\n  ${mqtt.notice}`;
  return `  MQTT: ${mqtt.url} (${how}), topics under ${running.hub.config.mqttPrefix}/${notice}`;
}

export function registerServeCommands(program: Command): void {
  addServeOptions(
    program.command("serve").description("run a hub: the directory API over HTTP, until Ctrl-C"),
  ).action(async (options: ServeOptions) => {
    await serve(options, await configFileOf(options));
  });

  addServeOptions(
    program
      .command("demo")
      .description("run a hub with the simulated fleet registered and observed, until Ctrl-C"),
  )
    .option(
      "--chaos <ms>",
      "the chaos monkey changes something behind the hub's back every <ms>; 0 = never",
      "20000",
    )
    .action(async (options: ServeOptions & { chaos: string }) => {
      const chaosMs = wholeNumberOption(options.chaos, "--chaos", 0, MAX_TIMER_MS);
      // The demo's UPS sends traps: unless told a port, the hub takes them on a free one.
      const file = await configFileOf(options);
      if (
        options.snmpTrapPort === undefined &&
        !process.env.HYPERTHINGS_SNMP_TRAP_PORT &&
        file?.settings.has("snmpTrapPort") !== true
      )
        options.snmpTrapPort = "0";
      const companions: Companions = { before: [], after: [] };
      // The fleet of an earlier run is registered at the ports it had then: the hub observes it
      // once its TDs point at this run's simulators, or every start would record a false outage.
      const running = await serve(options, file, companions, { observeLater: true });
      const { startDemoFleet } = await import("./sim-commands.js");
      let started;
      try {
        started = await startDemoFleet(running, { chaosMs });
      } catch (err) {
        await running.close();
        throw err;
      }
      const { fleet, added, updated } = started;
      await running.hub.startObservation();
      // The sensors leave the hub's broker before it closes (it waits for its clients); the HTTP
      // Things stay until the hub has stopped observing them, so that no outage is recorded.
      companions.before.push(() => fleet.disconnectSensors());
      companions.after.push(() => fleet.close());
      const total = await running.hub.store.countThings();
      const sensors = fleet.homieDevices.length;
      const descriptions = fleet.descriptions();
      const coap = descriptions.filter((td) => td.base?.startsWith("coap:")).length;
      const http = descriptions.length - coap;
      const snmp = fleet.snmpThings.length;
      process.stdout.write(
        `  demo: ${http + coap + snmp} simulated Things (${registrations(added, updated)}): ` +
          `${http} over HTTP, ${coap} over CoAP, ${snmp} over SNMP` +
          (sensors > 0 ? `, ${sensors} Homie sensors on MQTT` : "") +
          `; ${total} in the directory` +
          (chaosMs > 0 ? `; a chaos monkey changes something every ${chaosMs / 1000} s` : "") +
          "\n" +
          `  open ${running.url}/ and sign in with ${signInToken(running, file)}\n` +
          `  try:  ${firstCommand(running, file)}   ·   Ctrl-C stops it all\n`,
      );
    });
}

/**
 * The admin token the demo's user signs in with: itself on a terminal, for a person at it; else
 * where it is, as `serve` says, since output that is no terminal goes to a log that outlives the
 * token (`npm start > demo.log`).
 */
function signInToken(running: RunningHub, file: ConfigFile | undefined): string {
  const { adminToken } = running.hub;
  if (process.stdout.isTTY === true) return adminToken.token;
  if (adminToken.path !== undefined) return `the admin token in ${adminToken.path}`;
  return `the admin token from ${settingSource(undefined, "", "adminToken", file)}`;
}

/**
 * A first CLI command that works from this shell: as it is where the CLI finds the hub and its
 * admin token by itself (port 8080, the data directory it reads), else with both exported (the
 * token read from its file when the output is no terminal, as signInToken says).
 */
function firstCommand(running: RunningHub, file: ConfigFile | undefined): string {
  if (isDefaultLocalHub(running.url) && resolve(localDataDir()) === resolve(running.hub.config.dataDir))
    return "npx things ls";
  const { adminToken } = running.hub;
  const token =
    process.stdout.isTTY === true
      ? adminToken.token
      : adminToken.path !== undefined
        ? `"$(cat ${shellQuoted(adminToken.path)})"`
        : `"<${signInToken(running, file)}>"`;
  return `export HYPERTHINGS_URL=${running.url} HYPERTHINGS_TOKEN=${token}; npx things ls`;
}

/** A path as one word of a POSIX shell: as it is when it has nothing the shell reads, else in single quotes. */
function shellQuoted(path: string): string {
  return /^[\w./+-]+$/.test(path) ? path : `'${path.replaceAll("'", "'\\''")}'`;
}

/** "7 registered", "2 registered, 5 re-registered at their new addresses", "all registered already". */
function registrations(added: number, updated: number): string {
  const parts = [
    ...(added > 0 ? [`${added} registered`] : []),
    ...(updated > 0 ? [`${updated} re-registered at their new addresses`] : []),
  ];
  return parts.length > 0 ? parts.join(", ") : "all registered already";
}
