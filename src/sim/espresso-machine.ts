// The espresso machine: its boiler follows a PID loop towards the setpoint (boiler.ts); it brews
// only at temperature, and says `ready` when it gets there.
import type { Link, RegisteredThingDescription } from "../core/index.js";
import { Boiler, type BoilerParameters } from "./boiler.js";
import { SIM_CONTEXT, SimProblem, SimulatedThing, action, event, property } from "./simulated-thing.js";

export const SETPOINT_RANGE = { minimum: 85, maximum: 98 } as const;

/** How much a shot cools the boiler (fresh water in), °C. */
const DRAW = { single: 2.5, double: 5 } as const;

export class EspressoMachine extends SimulatedThing {
  readonly boiler: Boiler;
  shots = 0;
  #wasReady = false;

  constructor(
    id: string,
    slug: string,
    readonly options: {
      title?: string;
      links?: Link[];
      setpoint?: number;
      boiler?: Partial<BoilerParameters>;
    } = {},
  ) {
    super(id, slug);
    this.boiler = new Boiler(options.setpoint ?? 93, options.boiler);
  }

  /** The boiler's temperature as the machine reports it: to a tenth of a degree. */
  get temperature(): number {
    return Math.round(this.boiler.temperature * 10) / 10;
  }

  description(base: string): RegisteredThingDescription {
    return {
      "@context": SIM_CONTEXT,
      "@type": ["saref:Appliance", "schema:Product"],
      id: this.id,
      title: this.options.title ?? "Espresso machine",
      description: "A single-boiler espresso machine; its PID controller holds the boiler at the setpoint.",
      base,
      securityDefinitions: { nosec_sc: { scheme: "nosec" } },
      security: "nosec_sc",
      properties: {
        temperature: property(
          "temperature",
          { "@type": "saref:Temperature", title: "Boiler temperature", type: "number", unit: "Cel" },
          { observable: true },
        ),
        setpoint: property(
          "setpoint",
          {
            "@type": "saref:Temperature",
            title: "Boiler setpoint",
            type: "number",
            unit: "Cel",
            ...SETPOINT_RANGE,
          },
          { writable: true, observable: true },
        ),
        heating: property(
          "heating",
          { "@type": "saref:OnOffState", title: "Heater on", type: "boolean" },
          { observable: true },
        ),
        shots: property(
          "shots",
          { title: "Shots brewed", type: "integer", minimum: 0 },
          { observable: true },
        ),
      },
      actions: {
        brew: action("brew", {
          "@type": "saref:StartCommand",
          title: "Brew a shot",
          description: "Refused (409) unless the boiler is within half a degree of its setpoint.",
          input: {
            type: "object",
            properties: { size: { type: "string", enum: ["single", "double"] } },
            required: ["size"],
            additionalProperties: false,
          },
          output: {
            type: "object",
            properties: {
              size: { type: "string" },
              shot: { type: "integer" },
              temperature: { type: "number", unit: "Cel" },
            },
          },
        }),
      },
      events: {
        ready: event("ready", {
          title: "At temperature",
          data: { type: "object", properties: { temperature: { type: "number", unit: "Cel" } } },
        }),
      },
      ...(this.options.links ? { links: this.options.links } : {}),
    };
  }

  readProperty(name: string): unknown {
    switch (name) {
      case "temperature":
        return this.temperature;
      case "setpoint":
        return this.boiler.setpoint;
      case "heating":
        return this.boiler.heating;
      case "shots":
        return this.shots;
      default:
        throw new SimProblem(404, `there is no property ${name}`);
    }
  }

  override writeProperty(name: string, value: unknown): void {
    if (name !== "setpoint") super.writeProperty(name, value);
    this.setSetpoint(value as number);
  }

  /** Sets the setpoint (from the API, or from the chaos monkey behind the hub's back). */
  setSetpoint(value: number): void {
    this.boiler.setpoint = value;
    this.changed("setpoint");
  }

  override invokeAction(name: string, input: unknown): unknown {
    if (name !== "brew") return super.invokeAction(name, input);
    const { size } = input as { size: "single" | "double" };
    if (!this.boiler.ready) {
      throw new SimProblem(
        409,
        `the boiler is at ${this.temperature} °C, not at its setpoint ${this.boiler.setpoint} °C: wait for ready`,
      );
    }
    const temperature = this.temperature;
    this.shots++;
    this.boiler.draw(DRAW[size]);
    this.#wasReady = false;
    this.changed("shots");
    this.changed("temperature");
    return { size, shot: this.shots, temperature };
  }

  override advance(seconds: number): void {
    this.boiler.advance(seconds);
    this.changed("temperature");
    this.changed("heating");
    const ready = this.boiler.ready;
    if (ready && !this.#wasReady) this.emit("ready", { temperature: this.temperature });
    this.#wasReady = ready;
  }
}
