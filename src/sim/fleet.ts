// The simulated fleet: every kind of Thing, N copies of each with unique ids, one HTTP (or CoAP)
// server per kind serving all of its copies by path, one ticker that lets simulated time pass for
// all, the Homie room sensors on MQTT, the UPSes on SNMP and, when asked, the chaos monkey.
import type { Link, RegisteredThingDescription } from "../core/index.js";
import { ChaosMonkey, type Mischief } from "./chaos-monkey.js";
import { Container, ContainerHost } from "./container-host.js";
import { EspressoMachine } from "./espresso-machine.js";
import { MicroService } from "./micro-service.js";
import { NetworkSwitch } from "./network-switch.js";
import { RoomSensor, type MqttTarget } from "./room-sensors.js";
import { SimCoapServer } from "./sim-coap-server.js";
import { SimHttpServer } from "./sim-http-server.js";
import type { SimulatedThing } from "./simulated-thing.js";
import { SmartPlug } from "./smart-plug.js";
import { Ups, type TrapDestination } from "./ups.js";

export const FLEET_KINDS = ["espresso", "switch", "containers", "service", "plug", "sensors", "ups"] as const;
export type FleetKind = (typeof FLEET_KINDS)[number];

/** The id prefix of the fleet's HTTP Things. */
export const SIM_ID_PREFIX = "urn:hyperthings:demo";

/** The slug of a Thing in copy `copy` (copy 0 has none of the suffix): `espresso-machine`, `espresso-machine-7`. */
export function simSlug(name: string, copy: number): string {
  return copy === 0 ? name : `${name}-${copy}`;
}

/** The id of a fleet Thing: `urn:hyperthings:demo:espresso-machine` (copy 0), `…:espresso-machine-7`. */
export function simThingId(name: string, copy = 0): string {
  return `${SIM_ID_PREFIX}:${simSlug(name, copy)}`;
}

export interface FleetOptions {
  /** Address the servers listen on; default 127.0.0.1. */
  readonly host?: string;
  /** Copies of the fleet; default 1. */
  readonly scale?: number;
  /** The kinds to run; default all. */
  readonly kinds?: readonly FleetKind[];
  /** Real ms between two steps of simulated time; 0 = none (call `advance`). Default 250. */
  readonly tickMs?: number;
  /** Simulated seconds per real second; default 1. */
  readonly speed?: number;
  /** Source of randomness (ports flapping, containers crashing, the chaos monkey); default Math.random. */
  readonly random?: () => number;
  /** The broker the Homie room sensors publish to; without it, no sensors. */
  readonly mqtt?: MqttTarget;
  /** The Homie root topic; default `homie`. */
  readonly homieRoot?: string;
  /** The chaos monkey strikes every `intervalMs`; default: it sleeps (call `fleet.chaos.strike()`). */
  readonly chaos?: { readonly intervalMs: number };
  /** Where the UPSes send their SNMP traps (the hub's `--snmp-trap-port`); none without it. */
  readonly snmpTraps?: TrapDestination;
  /** Told of every piece of the monkey's mischief. */
  readonly onMischief?: (mischief: Mischief) => void;
}

export interface FleetServer {
  readonly kind: FleetKind;
  /** `http://127.0.0.1:PORT/` (`coap://…` for the plugs); each Thing's TD is at `{url}{slug}/`. */
  readonly url: string;
}

/** The kinds whose Things speak CoAP; the others' speak HTTP (the sensors, MQTT). */
const COAP_KINDS: ReadonlySet<FleetKind> = new Set(["plug"]);

type SimServer = SimHttpServer | SimCoapServer;

export class Fleet {
  readonly #servers = new Map<FleetKind, SimServer>();
  readonly #things = new Map<string, { thing: SimulatedThing; server: SimServer }>();
  readonly #sensors: RoomSensor[] = [];
  readonly #upses: Ups[] = [];
  readonly #random: () => number;
  #ticker: NodeJS.Timeout | undefined;
  /** Changes something behind the hub's back: on a timer with the `chaos` option, or by `strike()`. */
  readonly chaos: ChaosMonkey;

  private constructor(readonly options: FleetOptions) {
    this.#random = options.random ?? Math.random;
    this.chaos = new ChaosMonkey(() => this.things, this.#random, options.onMischief);
  }

  static async start(options: FleetOptions = {}): Promise<Fleet> {
    const fleet = new Fleet(options);
    try {
      await fleet.#start();
    } catch (err) {
      await fleet.close();
      throw err;
    }
    return fleet;
  }

  async #start(): Promise<void> {
    const { scale = 1, kinds = FLEET_KINDS, host = "127.0.0.1" } = this.options;
    if (!Number.isInteger(scale) || scale < 1)
      throw new RangeError(`scale must be a whole number ≥ 1, not ${scale}`);
    for (const kind of kinds) {
      if (kind === "sensors" || kind === "ups") continue;
      const server = COAP_KINDS.has(kind) ? new SimCoapServer() : new SimHttpServer();
      this.#servers.set(kind, server);
      for (let copy = 0; copy < scale; copy++) {
        for (const thing of thingsOf(kind, copy, new Set(kinds))) {
          server.add(thing);
          this.#things.set(thing.id, { thing, server });
        }
      }
      await server.listen(host, 0);
    }
    for (const { thing } of this.#things.values()) {
      if (!(thing instanceof MicroService) || thing.options.containerId === undefined) continue;
      const container = this.#things.get(thing.options.containerId)?.thing;
      if (container instanceof Container) thing.container = container;
    }
    if (kinds.includes("sensors") && this.options.mqtt !== undefined) {
      const root = this.options.homieRoot ?? "homie";
      for (let copy = 0; copy < scale; copy++) {
        ROOMS.forEach(([name, title], i) => {
          const seed = ((copy * ROOMS.length + i) * 0.618) % 1;
          this.#sensors.push(
            new RoomSensor(simSlug(name, copy), `${title}${copy === 0 ? "" : ` ${copy}`}`, root, seed),
          );
        });
      }
      const target = this.options.mqtt;
      await Promise.all(this.#sensors.map((s) => s.connect(target)));
    }
    if (kinds.includes("ups")) {
      const onSwitch = kinds.includes("switch");
      for (let copy = 0; copy < scale; copy++) {
        const ups = new Ups(simThingId("ups-1", copy), simSlug("ups-1", copy), {
          title: `UPS${copy === 0 ? "" : ` ${copy}`}`,
          ...(onSwitch && { links: [{ rel: "dependsOn", href: simThingId("switch-1", copy) }] }),
        });
        ups.trapsTo = this.options.snmpTraps;
        this.#upses.push(ups);
        await ups.start(host);
      }
    }
    if (this.options.chaos !== undefined) this.chaos.start(this.options.chaos.intervalMs);
    const tickMs = this.options.tickMs ?? 250;
    if (tickMs > 0) {
      const seconds = (tickMs / 1000) * (this.options.speed ?? 1);
      this.#ticker = setInterval(() => this.advance(seconds), tickMs);
      this.#ticker.unref();
    }
  }

  get servers(): FleetServer[] {
    return [...this.#servers].map(([kind, server]) => ({ kind, url: server.url }));
  }

  /**
   * The SNMP Things (UPSes): each one's TD, its forms at its agent, and the community the hub must
   * hold for it (`PUT /things/{id}/credentials {"key"}`), which the TD does not show.
   */
  get snmpThings(): {
    readonly td: RegisteredThingDescription;
    readonly community: string;
    /** `snmp://host:port` of its agent. */
    readonly origin: string;
  }[] {
    return this.#upses.map((ups) => ({
      td: ups.description(),
      community: ups.community,
      origin: ups.agent.origin,
    }));
  }

  /** One UPS, by id. */
  ups(id: string): Ups {
    const ups = this.#upses.find((u) => u.id === id);
    if (ups === undefined) throw new RangeError(`${id} is not a UPS of the fleet`);
    return ups;
  }

  /** The HTTP and CoAP Things' TDs, each with its base at its server. */
  descriptions(): RegisteredThingDescription[] {
    return [...this.#things.values()].map(({ thing, server }) => server.description(thing));
  }

  /** Where a Thing's TD is served. */
  descriptionUrl(id: string): string {
    const entry = this.#things.get(id);
    if (entry === undefined) throw new RangeError(`${id} is not in the fleet`);
    return entry.server.baseOf(entry.thing);
  }

  /** One Thing, by id and class: `fleet.thing(simThingId("espresso-machine"), EspressoMachine)`. */
  thing<T extends SimulatedThing>(id: string, type: abstract new (...args: never[]) => T): T {
    const thing = this.#things.get(id)?.thing;
    if (!(thing instanceof type)) throw new RangeError(`${id} is not a ${type.name} of the fleet`);
    return thing;
  }

  /** The Homie sensors' Thing ids (`urn:homie:{device}`), as the hub registers them. */
  get homieDevices(): string[] {
    return this.#sensors.map((s) => `urn:homie:${s.device}`);
  }

  get sensors(): readonly RoomSensor[] {
    return this.#sensors;
  }

  get things(): SimulatedThing[] {
    return [...this.#things.values()].map((e) => e.thing);
  }

  /** Lets `seconds` of simulated time pass for every Thing. */
  advance(seconds: number): void {
    for (const { thing } of this.#things.values()) thing.advance(seconds, this.#random);
    for (const sensor of this.#sensors) sensor.advance(seconds, this.#random);
    for (const ups of this.#upses) ups.advance(seconds, this.#random);
  }

  /** The MQTT sensors say `disconnected` and leave the broker; the HTTP Things stay. */
  async disconnectSensors(): Promise<void> {
    await Promise.all(this.#sensors.map((s) => s.close()));
  }

  async close(): Promise<void> {
    clearInterval(this.#ticker);
    this.chaos.stop();
    await Promise.all([
      ...this.#sensors.map((s) => s.close()),
      ...[...this.#servers.values()].map((s) => s.close()),
      ...this.#upses.map((u) => u.close()),
    ]);
  }
}

/** The Homie room sensors of one copy: device id and name. */
const ROOMS = [
  ["room-kitchen", "Kitchen sensor"],
  ["room-office", "Office sensor"],
  ["room-lobby", "Lobby sensor"],
  ["room-lab", "Lab sensor"],
] as const;

const CONTAINERS = [
  ["web", "nginx:1.27"],
  ["orders", "registry.example/orders:2.3.1"],
  ["cache", "redis:7.4"],
] as const;

/** The Things of one kind in one copy, linked to the others of that copy that run. */
function thingsOf(kind: FleetKind, copy: number, kinds: ReadonlySet<FleetKind>): SimulatedThing[] {
  const slug = (name: string) => simSlug(name, copy);
  const id = (name: string) => simThingId(name, copy);
  const suffix = copy === 0 ? "" : ` ${copy}`;
  const onSwitch: Link[] = kinds.has("switch") ? [{ rel: "dependsOn", href: id("switch-1") }] : [];
  switch (kind) {
    case "espresso":
      return [
        new EspressoMachine(id("espresso-machine"), slug("espresso-machine"), {
          title: `Espresso machine${suffix}`,
          links: onSwitch,
        }),
      ];
    case "switch":
      return [new NetworkSwitch(id("switch-1"), slug("switch-1"), { title: `Core switch${suffix}` })];
    case "containers": {
      const containers = CONTAINERS.map(
        ([name, image]) =>
          new Container(id(`container-${name}`), slug(`container-${name}`), name, image, id("host-1")),
      );
      const host = new ContainerHost(id("host-1"), slug("host-1"), containers, {
        title: `Container host${suffix}`,
        links: onSwitch,
      });
      return [host, ...containers];
    }
    case "service":
      return [
        new MicroService(id("order-service"), slug("order-service"), {
          title: `Order service${suffix}`,
          ...(kinds.has("containers") && { containerId: id("container-orders") }),
        }),
      ];
    case "plug":
      return [new SmartPlug(id("smart-plug"), slug("smart-plug"), { title: `Desk lamp plug${suffix}` })];
    case "sensors":
    case "ups":
      return [];
  }
}
