// `things sim` runs the simulated fleet alone; `things demo` (serve-commands.ts) runs it beside a
// hub, with everything registered. The fleet itself lives in src/sim.
import { Option, type Command } from "commander";
import { canonicalJson, redactedUrl } from "../core/index.js";
import { HubError, InteractionClient } from "../client/index.js";
// Types only: the fleet's modules (and mqtt.js) load when a fleet starts, not for every command.
import type { Fleet, FleetKind, FleetOptions } from "../sim/index.js";
import { CliError } from "./cli-error.js";
import type { RunningHub } from "./start-hub.js";
import { wholeNumber } from "./whole-number.js";

/** The kinds of Things in the fleet (src/sim/fleet.ts: KINDS), for --only. */
const KINDS: readonly FleetKind[] = ["espresso", "switch", "containers", "service", "plug", "sensors", "ups"];

/** The fleet beside a running hub: on loopback, its sensors on the hub's broker, every TD registered. */
export async function startDemoFleet(
  running: RunningHub,
  options: { chaosMs: number },
): Promise<{ fleet: Fleet; added: number; updated: number }> {
  const { Fleet } = await import("../sim/index.js");
  const fleet = await Fleet.start({
    host: "127.0.0.1",
    ...(options.chaosMs > 0 && { chaos: { intervalMs: options.chaosMs } }),
    // The operator sees what the monkey did, to tell its drift from the Things' own changes.
    onMischief: (m) =>
      running.hub.logger.info({ thing: m.thing, affordance: m.affordance }, `chaos monkey: ${m.what}`),
    ...mqttOfHub(running),
    ...trapsOfHub(running),
  });
  try {
    let added = 0;
    let updated = 0;
    const snmp = fleet.snmpThings;
    for (const td of [...fleet.descriptions(), ...snmp.map((s) => s.td)]) {
      const existing = await running.hub.store.getThing(td.id);
      if (existing && canonicalJson(existing.td) === canonicalJson(td)) continue;
      await running.hub.directory.put(td.id, td, { actor: "demo", via: "cli" });
      // A Thing of an earlier run listens on another port now: its TD is replaced, not new.
      if (existing) updated++;
      else added++;
    }
    // Each run's UPS has a community of its own: the hub is given it as a secret, every time.
    for (const { td, community } of snmp) {
      if (running.hub.secrets === undefined) {
        running.hub.logger.warn(
          { thing: td.id },
          "this hub keeps no credentials: the demo's UPS is not observed",
        );
        break;
      }
      await running.hub.secrets.set(td, { key: community });
    }
    return { fleet, added, updated };
  } catch (err) {
    await fleet.close();
    throw err;
  }
}

/** Where the fleet's UPSes send their traps: the hub's trap receiver, through loopback. */
function trapsOfHub(running: RunningHub): Pick<FleetOptions, "snmpTraps"> {
  const port = running.snmpTrapPort;
  if (port === undefined) return {};
  const host = running.hub.config.host;
  return { snmpTraps: { host: host === "0.0.0.0" ? "127.0.0.1" : host === "::" ? "::1" : host, port } };
}

/** Where the fleet's MQTT devices publish: the broker the hub listens on or uses, as the hub's admin. */
function mqttOfHub(running: RunningHub): Pick<FleetOptions, "mqtt" | "homieRoot"> {
  const { mqtt, hub } = running;
  if (mqtt === undefined) return {};
  const homieRoot = hub.config.mqttHomieRoot;
  if (mqtt.kind === "external") {
    const url = hub.config.mqttUrl;
    return url === undefined ? {} : { mqtt: { url }, homieRoot };
  }
  // MQTT 3.1.1 sends a password only with a user name: any user name, the admin token as password.
  return {
    homieRoot,
    mqtt: {
      url: mqtt.url,
      protocolVersion: 4,
      ...(mqtt.anonymous ? {} : { username: "demo-fleet", password: hub.adminToken.token }),
    },
  };
}

interface SimOptions {
  scale: string;
  host: string;
  only?: string;
  mqttUrl?: string;
  homieRoot: string;
  register?: string;
  chaos?: string;
  tickMs: string;
  speed: string;
  list?: boolean;
}

/** A broker URL fit to print: its user name and password left out. */
function withoutCredentials(url: string): string {
  try {
    const parsed = new URL(url);
    parsed.username = "";
    parsed.password = "";
    return parsed.href;
  } catch {
    return url;
  }
}

/**
 * The longest delay Node's timers take (2^31 − 1 ms, about 24.8 days): a longer one is run after
 * 1 ms instead, so `--chaos 3000000000` made the chaos monkey strike every millisecond.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;
/** The most copies of the fleet `--scale` makes (700,000 Things); far more only ran out of memory. */
const MAX_SCALE = 100_000;
/** Each copy's UPS is an SNMP agent with a UDP socket of its own: past this many, leave it out. */
const MAX_UPS_SCALE = 1_000;

/** A whole-number option from `min` to `max`, or a usage error in one line. */
export function wholeNumberOption(text: string, flag: string, min: number, max: number): number {
  return wholeNumber(flag, min, max)(text);
}

function fleetOptionsOf(options: SimOptions): FleetOptions {
  const kinds =
    options.only === undefined
      ? undefined
      : options.only.split(",").map((k) => {
          const kind = k.trim() as FleetKind;
          if (!KINDS.includes(kind)) {
            throw new CliError(`--only: "${k}" is not a kind of the fleet (${KINDS.join(", ")})`, 2);
          }
          return kind;
        });
  let mqtt: FleetOptions["mqtt"];
  if (options.mqttUrl !== undefined) {
    let url: URL;
    try {
      url = new URL(options.mqttUrl);
    } catch {
      throw new CliError(
        `--mqtt-url: "${redactedUrl(options.mqttUrl)}" is not a URL; give one like mqtt://127.0.0.1:1883`,
        2,
      );
    }
    if (url.protocol !== "mqtt:" && url.protocol !== "mqtts:") {
      throw new CliError(`--mqtt-url: "${redactedUrl(options.mqttUrl)}" is not an mqtt: or mqtts: URL`, 2);
    }
    mqtt = { url: options.mqttUrl };
  }
  const speed = Number(options.speed);
  if (!Number.isFinite(speed) || speed <= 0)
    throw new CliError(`--speed must be a number above 0, not "${options.speed}"`, 2);
  const chaosMs =
    options.chaos === undefined ? 0 : wholeNumberOption(options.chaos, "--chaos", 0, MAX_TIMER_MS);
  const scale = wholeNumberOption(options.scale, "--scale", 1, MAX_SCALE);
  if (scale > MAX_UPS_SCALE && kinds?.includes("ups") === true) {
    throw new CliError(
      `--scale ${scale} with ups would open ${scale} SNMP agents (at most ${MAX_UPS_SCALE}): leave ups out of --only`,
      2,
    );
  }
  // A large fleet of every kind leaves the UPSes out (the listing says so), rather than fail.
  const every = scale > MAX_UPS_SCALE ? KINDS.filter((kind) => kind !== "ups") : undefined;
  return {
    host: options.host,
    scale,
    tickMs: wholeNumberOption(options.tickMs, "--tick-ms", 0, MAX_TIMER_MS),
    speed,
    ...((kinds ?? every) && { kinds: kinds ?? every }),
    ...(mqtt && { mqtt, homieRoot: options.homieRoot }),
    ...(chaosMs > 0 && { chaos: { intervalMs: chaosMs } }),
  };
}

/** The client of the hub --register names, with --token: a URL it cannot take is a usage error. */
function hubClientOf(url: string, command: Command): InteractionClient {
  const { token } = command.optsWithGlobals<{ token?: string }>();
  try {
    return new InteractionClient({ url, token: token || undefined });
  } catch (err) {
    throw new CliError(`--register: ${(err as Error).message}`, 2);
  }
}

/**
 * Registers every TD with a hub, a few at a time, and gives the hub the community of each SNMP
 * Thing; the first refusal stops it, in one line.
 */
async function registerWith(hubUrl: string, client: InteractionClient, fleet: Fleet): Promise<number> {
  const communities = new Map(fleet.snmpThings.map(({ td, community }) => [td.id, community]));
  const queue = [...fleet.descriptions(), ...fleet.snmpThings.map((s) => s.td)];
  let done = 0;
  const worker = async () => {
    for (let td = queue.pop(); td !== undefined; td = queue.pop()) {
      try {
        await client.put(td);
        const community = communities.get(td.id);
        if (community !== undefined) await client.setCredentials(td.id, { key: community });
      } catch (err) {
        const hint = err instanceof HubError && err.status === 401 ? "; give a token with --token" : "";
        throw new CliError(`registering ${td.id} with ${hubUrl}: ${(err as Error).message}${hint}`);
      }
      done++;
    }
  };
  await Promise.all(Array.from({ length: 16 }, worker));
  return done;
}

export function registerSimCommands(program: Command): void {
  program
    .command("sim")
    .description(
      "run the simulated fleet alone (real HTTP and CoAP servers on loopback, Homie sensors on MQTT, UPSes on SNMP), until Ctrl-C",
    )
    .option("--scale <n>", "copies of the fleet, each with unique ids", "1")
    .option("--host <host>", "address the simulated Things listen on", "127.0.0.1")
    .addOption(new Option("--only <kinds>", `run only these kinds (comma-separated: ${KINDS.join(", ")})`))
    .option(
      "--mqtt-url <url>",
      "the broker the Homie sensors publish to (mqtt://[user:pass@]host:port); none without it",
    )
    .option("--homie-root <topic>", "the Homie root topic the sensors publish under", "homie")
    .option("--register <hub-url>", "register every TD with this hub (with --token, or HYPERTHINGS_TOKEN)")
    .option("--chaos <ms>", "let the chaos monkey change something every <ms> (default: off)")
    .option("--tick-ms <ms>", "real ms between two steps of simulated time", "250")
    .option("--speed <factor>", "simulated seconds per real second", "1")
    .option("--list", "print every Thing and where its TD is, however many")
    .action(async (options: SimOptions, command: Command) => {
      const fleetOptions = fleetOptionsOf(options);
      // Its URL checked before the fleet starts: a usage error after the listing went unseen.
      const hub = options.register === undefined ? undefined : hubClientOf(options.register, command);
      const { Fleet } = await import("../sim/index.js");
      const fleet = await Fleet.start({
        ...fleetOptions,
        onMischief: (m) => process.stderr.write(`chaos monkey: ${m.what} (${m.thing})\n`),
      });
      const out = process.stdout;
      const descriptions = fleet.descriptions();
      const snmp = fleet.snmpThings;
      out.write(
        `Simulated fleet: ${descriptions.length} Things over HTTP and CoAP` +
          (snmp.length > 0 ? `, ${snmp.length} over SNMP` : "") +
          (fleet.homieDevices.length > 0
            ? `, ${fleet.homieDevices.length} Homie devices on ${withoutCredentials(fleetOptions.mqtt?.url ?? "?")}`
            : "") +
          (fleetOptions.chaos ? `; chaos monkey every ${fleetOptions.chaos.intervalMs} ms` : "") +
          (options.only === undefined && fleetOptions.kinds !== undefined
            ? `; no UPS above --scale ${MAX_UPS_SCALE} (one SNMP agent each)`
            : "") +
          // Asked for (by default, or by --only), the sensors need a broker: say why there are none.
          (fleetOptions.mqtt === undefined && (fleetOptions.kinds?.includes("sensors") ?? true)
            ? "; no Homie sensors: they publish to a broker, give --mqtt-url (the hub's, as its start prints it)"
            : "") +
          "\n",
      );
      for (const server of fleet.servers) out.write(`  ${server.kind.padEnd(10)} ${server.url}{slug}/\n`);
      if (options.list === true || descriptions.length <= 100) {
        for (const td of descriptions) out.write(`  ${td.id}  ${fleet.descriptionUrl(td.id)}\n`);
        for (const id of fleet.homieDevices) out.write(`  ${id}  (Homie 5, announced on the broker)\n`);
        // The community is printed: the simulator's own, for registering the UPS by hand.
        for (const { td, community, origin } of snmp) {
          out.write(`  ${td.id}  ${origin} (SNMPv2c, community ${community})\n`);
        }
      } else {
        out.write(`  (${descriptions.length} TDs; --list prints each)\n`);
      }
      const stop = () => {
        fleet.close().then(
          () => process.exit(0),
          () => process.exit(1),
        );
      };
      process.on("SIGINT", stop);
      process.on("SIGTERM", stop);
      if (options.register === undefined) out.write("  Ctrl-C stops it\n");
      if (options.register !== undefined && hub !== undefined) {
        try {
          const count = await registerWith(options.register, hub, fleet);
          out.write(`  registered ${count} Things with ${options.register}; Ctrl-C stops it\n`);
        } catch (err) {
          await fleet.close();
          throw err;
        }
      }
    });
}
