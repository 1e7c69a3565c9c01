// An uninterruptible power supply that speaks SNMP (v2c) only, as UPSes do: its readings in the
// UPS-MIB (RFC 1628) and its name and location in MIB-II's system group, served by a real agent.
import { randomBytes } from "node:crypto";
import { ObjectType, Version2c, createSession } from "net-snmp";
import type { Link, RegisteredThingDescription } from "../core/index.js";
import { SnmpAgent, SnmpType } from "./snmp-agent.js";
import type { SnmpScalar } from "./snmp-agent.js";
import { SIM_CONTEXT } from "./simulated-thing.js";

/** UPS-MIB upsOutputSource (RFC 1628). */
export const OUTPUT_SOURCE = { normal: 3, battery: 5 } as const;
/** UPS-MIB upsBatteryStatus. */
export const BATTERY_STATUS = { normal: 2, low: 3, depleted: 4 } as const;

/** Chance per simulated second that the mains fail. */
const OUTAGE_PER_SECOND = 0.002;
/** Percent of charge per simulated second: lost on battery, won back on mains. */
const DRAIN_PER_SECOND = 0.4;
const CHARGE_PER_SECOND = 0.1;
/** Minutes of runtime a full battery gives at the simulated load. */
const FULL_RUNTIME_MINUTES = 45;

/** Each property: the TD's name, the scalar's name in the agent, its OID (with instance `.0`). */
const OIDS = {
  name: "1.3.6.1.2.1.1.5.0",
  location: "1.3.6.1.2.1.1.6.0",
  batteryStatus: "1.3.6.1.2.1.33.1.2.1.0",
  secondsOnBattery: "1.3.6.1.2.1.33.1.2.2.0",
  minutesRemaining: "1.3.6.1.2.1.33.1.2.3.0",
  charge: "1.3.6.1.2.1.33.1.2.4.0",
  batteryVoltage: "1.3.6.1.2.1.33.1.2.5.0",
  batteryTemperature: "1.3.6.1.2.1.33.1.2.7.0",
  outputSource: "1.3.6.1.2.1.33.1.4.1.0",
  alarm: "1.3.6.1.2.1.33.1.9.8.0",
} as const;

type Reading = keyof typeof OIDS;

/** UPS-MIB upsTrapOnBattery (upsTraps.0.1): sent when the UPS switches to battery. */
export const ON_BATTERY_TRAP = "1.3.6.1.2.1.33.2.0.1";

/** Where a UPS sends its SNMPv2c traps: the hub's trap receiver. */
export interface TrapDestination {
  readonly host: string;
  readonly port: number;
}

export class Ups {
  /** The SNMPv2c community of this UPS: the hub holds it as a secret, the TD never shows it. */
  readonly community = `ups-${randomBytes(8).toString("hex")}`;
  /** Percent. Starts part-charged, so that the demo shows it charging. */
  charge = 80;
  onBattery = false;
  secondsOnBattery = 0;
  /** Simulated seconds the outage still lasts. */
  #outageLeft = 0;
  temperature = 27;
  #agent: SnmpAgent | undefined;
  readonly #initial: { name: string; location: string };
  /** Where its traps go; none: it sends none. */
  trapsTo: TrapDestination | undefined;

  constructor(
    readonly id: string,
    readonly slug: string,
    readonly options: { title?: string; links?: Link[] } = {},
  ) {
    this.#initial = { name: slug, location: "Server room, rack 2" };
  }

  /** Starts its agent on a port the system picks. */
  async start(host: string): Promise<void> {
    const scalar = (
      name: Reading,
      type: number,
      value: number | string,
      extra: Partial<SnmpScalar> = {},
    ) => ({
      name,
      oid: OIDS[name].slice(0, -2),
      type,
      value,
      ...extra,
    });
    this.#agent = await SnmpAgent.start({
      host,
      communities: [this.community],
      scalars: [
        scalar("name", SnmpType.OctetString, this.#initial.name, { writable: true }),
        scalar("location", SnmpType.OctetString, this.#initial.location, { writable: true }),
        scalar("batteryStatus", SnmpType.Integer32, BATTERY_STATUS.normal),
        scalar("secondsOnBattery", SnmpType.Integer32, 0),
        scalar("minutesRemaining", SnmpType.Integer32, this.minutesRemaining),
        scalar("charge", SnmpType.Integer32, Math.round(this.charge)),
        scalar("batteryVoltage", SnmpType.Integer32, this.batteryDecivolts),
        scalar("batteryTemperature", SnmpType.Integer32, Math.round(this.temperature)),
        scalar("outputSource", SnmpType.Integer32, OUTPUT_SOURCE.normal),
        // disabled(1), enabled(2), muted(3)
        scalar("alarm", SnmpType.Integer32, 2, { writable: true, range: { min: 1, max: 3 } }),
      ],
    });
  }

  get agent(): SnmpAgent {
    if (this.#agent === undefined) throw new Error(`${this.id} is not started`);
    return this.#agent;
  }

  get minutesRemaining(): number {
    return Math.max(0, Math.round((this.charge / 100) * FULL_RUNTIME_MINUTES));
  }

  /** Battery voltage in tenths of a volt (UPS-MIB's unit): 24 V nominal, higher when charged. */
  get batteryDecivolts(): number {
    return Math.round(230 + this.charge * 0.3 + (this.onBattery ? -8 : 0));
  }

  /** The value the agent serves for a property of the TD. */
  read(name: Reading): unknown {
    return this.agent.get(name);
  }

  /** Lets `seconds` of simulated time pass: mains fail now and then, the battery drains and charges. */
  advance(seconds: number, random: () => number): void {
    if (!this.onBattery && random() < OUTAGE_PER_SECOND * seconds) this.cutPower(30 + random() * 90);
    if (this.onBattery) {
      this.secondsOnBattery += seconds;
      this.#outageLeft -= seconds;
      this.charge = Math.max(0, this.charge - DRAIN_PER_SECOND * seconds);
      if (this.#outageLeft <= 0 || this.charge === 0) {
        this.onBattery = false;
        this.secondsOnBattery = 0;
      }
    } else {
      this.charge = Math.min(100, this.charge + CHARGE_PER_SECOND * seconds);
    }
    this.temperature = Math.min(35, Math.max(20, this.temperature + (random() - 0.5) * 0.2 * seconds));
    this.#publish();
  }

  /** The mains fail for `seconds` of simulated time: it goes on battery, and says so with a trap. */
  cutPower(seconds: number): void {
    this.onBattery = true;
    this.#outageLeft = seconds;
    this.#publish();
    this.#trap(ON_BATTERY_TRAP, [
      { oid: OIDS.minutesRemaining, type: ObjectType.Integer32, value: this.minutesRemaining },
      { oid: OIDS.secondsOnBattery, type: ObjectType.Integer32, value: Math.round(this.secondsOnBattery) },
    ]);
  }

  /** Sends an SNMPv2c trap from its agent's address, as a UPS would; a lost one is lost (UDP). */
  #trap(oid: string, varbinds: { oid: string; type: ObjectType; value: number }[]): void {
    const to = this.trapsTo;
    if (to === undefined || this.#agent === undefined) return;
    const session = createSession(to.host, this.community, {
      version: Version2c,
      trapPort: to.port,
      transport: to.host.includes(":") ? "udp6" : "udp4",
      // From the agent's address, so that the hub takes it for this UPS's.
      sourceAddress: this.#agent.host,
    });
    session.on("error", () => session.close());
    session.trap(oid, varbinds, () => session.close());
  }

  #publish(): void {
    const agent = this.#agent;
    if (agent === undefined) return;
    const status =
      this.charge === 0
        ? BATTERY_STATUS.depleted
        : this.charge < 20
          ? BATTERY_STATUS.low
          : BATTERY_STATUS.normal;
    agent.set("batteryStatus", status);
    agent.set("secondsOnBattery", Math.round(this.secondsOnBattery));
    agent.set("minutesRemaining", this.minutesRemaining);
    agent.set("charge", Math.round(this.charge));
    agent.set("batteryVoltage", this.batteryDecivolts);
    agent.set("batteryTemperature", Math.round(this.temperature));
    agent.set("outputSource", this.onBattery ? OUTPUT_SOURCE.battery : OUTPUT_SOURCE.normal);
  }

  /** Its TD: every form at its agent, the community a secret of the `snmp:community` scheme. */
  description(): RegisteredThingDescription {
    const origin = this.agent.origin;
    const form = (name: Reading, snmpType?: string) => ({
      href: `${origin}/${OIDS[name]}`,
      ...(snmpType === undefined ? {} : { "snmp:type": snmpType }),
    });
    const reading = (name: Reading, schema: Record<string, unknown>) => ({
      ...schema,
      readOnly: true,
      observable: true,
      forms: [form(name)],
    });
    return {
      "@context": SIM_CONTEXT,
      "@type": ["saref:Device"],
      id: this.id,
      title: this.options.title ?? "UPS",
      description: "An uninterruptible power supply, managed over SNMPv2c (UPS-MIB, RFC 1628)",
      securityDefinitions: { community_sc: { scheme: "snmp:community" } },
      security: "community_sc",
      properties: {
        name: {
          title: "sysName",
          type: "string",
          maxLength: 255,
          observable: true,
          forms: [form("name", "OctetString")],
        },
        location: {
          title: "sysLocation",
          type: "string",
          maxLength: 255,
          observable: true,
          forms: [form("location", "OctetString")],
        },
        charge: reading("charge", { type: "integer", minimum: 0, maximum: 100, unit: "%" }),
        minutesRemaining: reading("minutesRemaining", { type: "integer", minimum: 0, unit: "min" }),
        batteryVoltage: reading("batteryVoltage", {
          type: "integer",
          minimum: 0,
          unit: "0.1 V",
          description: "Battery voltage in tenths of a volt (UPS-MIB upsBatteryVoltage)",
        }),
        batteryTemperature: reading("batteryTemperature", { type: "integer", unit: "°C" }),
        batteryStatus: reading("batteryStatus", {
          type: "integer",
          enum: [1, 2, 3, 4],
          description: "unknown (1), batteryNormal (2), batteryLow (3), batteryDepleted (4)",
        }),
        secondsOnBattery: reading("secondsOnBattery", { type: "integer", minimum: 0, unit: "s" }),
        outputSource: reading("outputSource", {
          type: "integer",
          minimum: 1,
          maximum: 7,
          description: "normal (3) on mains, battery (5) during an outage (UPS-MIB upsOutputSource)",
        }),
        alarm: {
          title: "upsConfigAudibleStatus",
          type: "integer",
          enum: [1, 2, 3],
          description: "The audible alarm: disabled (1), enabled (2), muted (3)",
          observable: true,
          forms: [form("alarm", "Integer32")],
        },
      },
      events: {
        onBattery: {
          title: "upsTrapOnBattery",
          description: "The mains failed: the UPS runs on battery (an SNMPv2c trap to the hub)",
          data: {
            type: "object",
            properties: {
              [OIDS.minutesRemaining]: { type: "integer", title: "upsEstimatedMinutesRemaining" },
              [OIDS.secondsOnBattery]: { type: "integer", title: "upsSecondsOnBattery" },
            },
          },
          forms: [{ href: `${origin}/${ON_BATTERY_TRAP}`, op: "subscribeevent" }],
        },
      },
      ...(this.options.links !== undefined && this.options.links.length > 0
        ? { links: this.options.links }
        : {}),
    };
  }

  async close(): Promise<void> {
    await this.#agent?.close();
  }
}
