// A managed network switch: ports whose links go up and down as cables are plugged and pulled,
// and that an operator enables or disables.
import type { Link, RegisteredThingDescription } from "../core/index.js";
import { SIM_CONTEXT, SimProblem, SimulatedThing, action, event, property } from "./simulated-thing.js";

export interface PortState {
  enabled: boolean;
  link: "up" | "down";
  /** Mbit/s while the link is up, else 0. */
  speed: number;
}

/** Chance per simulated second that a port's link flaps (a cable pulled or plugged). */
const FLAP_PER_SECOND = 0.002;

export class NetworkSwitch extends SimulatedThing {
  readonly ports: Record<string, PortState> = {};
  hostname: string;
  /** Ports with a cable plugged in (the physical world, not the switch's configuration). */
  readonly #cables = new Set<number>();

  constructor(
    id: string,
    slug: string,
    readonly options: { title?: string; ports?: number; hostname?: string; links?: Link[] } = {},
  ) {
    super(id, slug);
    this.hostname = options.hostname ?? "core-switch";
    const count = options.ports ?? 8;
    for (let n = 1; n <= count; n++) {
      // Every other upper port has nothing plugged in.
      const cable = n <= count / 2 || n % 2 === 0;
      if (cable) this.#cables.add(n);
      this.ports[String(n)] = { enabled: true, link: cable ? "up" : "down", speed: cable ? 1000 : 0 };
    }
  }

  get portCount(): number {
    return Object.keys(this.ports).length;
  }

  description(base: string): RegisteredThingDescription {
    const portSchema = {
      type: "object",
      properties: {
        enabled: { type: "boolean" },
        link: { type: "string", enum: ["up", "down"] },
        speed: { type: "integer", minimum: 0, unit: "Mbit/s" },
      },
    };
    const portInput = {
      type: "object",
      properties: { port: { type: "integer", minimum: 1, maximum: this.portCount } },
      required: ["port"],
      additionalProperties: false,
    };
    return {
      "@context": SIM_CONTEXT,
      "@type": ["saref:Device", "ht:NetworkSwitch"],
      id: this.id,
      title: this.options.title ?? "Core switch",
      description: `A managed ${this.portCount}-port gigabit switch.`,
      base,
      securityDefinitions: { nosec_sc: { scheme: "nosec" } },
      security: "nosec_sc",
      properties: {
        ports: property(
          "ports",
          { title: "Ports", type: "object", additionalProperties: portSchema } as never,
          { observable: true },
        ),
        portsUp: property(
          "portsUp",
          { title: "Ports with link", type: "integer", minimum: 0, maximum: this.portCount },
          { observable: true },
        ),
        hostname: property(
          "hostname",
          { title: "Host name", type: "string", pattern: "^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$" },
          { writable: true, observable: true },
        ),
      },
      actions: {
        enablePort: action("enablePort", {
          title: "Enable a port",
          input: portInput,
          output: portSchema,
        }),
        disablePort: action("disablePort", {
          title: "Disable a port",
          input: portInput,
          output: portSchema,
        }),
      },
      events: {
        linkChanged: event("linkChanged", {
          title: "A port's link went up or down",
          data: {
            type: "object",
            properties: { port: { type: "integer" }, link: { type: "string", enum: ["up", "down"] } },
          },
        }),
      },
      ...(this.options.links ? { links: this.options.links } : {}),
    };
  }

  readProperty(name: string): unknown {
    switch (name) {
      case "ports":
        return this.ports;
      case "portsUp":
        return Object.values(this.ports).filter((p) => p.link === "up").length;
      case "hostname":
        return this.hostname;
      default:
        throw new SimProblem(404, `there is no property ${name}`);
    }
  }

  override writeProperty(name: string, value: unknown): void {
    if (name !== "hostname") super.writeProperty(name, value);
    this.hostname = value as string;
    this.changed("hostname");
  }

  override invokeAction(name: string, input: unknown): unknown {
    if (name !== "enablePort" && name !== "disablePort") return super.invokeAction(name, input);
    const { port } = input as { port: number };
    return this.setEnabled(port, name === "enablePort");
  }

  /** Enables or disables a port (from the API, or from the chaos monkey behind the hub's back). */
  setEnabled(port: number, enabled: boolean): PortState {
    const state = this.ports[String(port)];
    if (state === undefined) throw new SimProblem(404, `there is no port ${port}`);
    state.enabled = enabled;
    this.#updateLink(port, state);
    return { ...state };
  }

  override advance(seconds: number, random: () => number): void {
    for (const [key, state] of Object.entries(this.ports)) {
      if (random() >= FLAP_PER_SECOND * seconds) continue;
      const port = Number(key);
      if (this.#cables.has(port)) this.#cables.delete(port);
      else this.#cables.add(port);
      this.#updateLink(port, state);
    }
  }

  /** A link is up when the port is enabled and a cable is in. */
  #updateLink(port: number, state: PortState): void {
    const link = state.enabled && this.#cables.has(port) ? "up" : "down";
    const changed = link !== state.link;
    state.link = link;
    state.speed = link === "up" ? 1000 : 0;
    this.changed("ports");
    if (!changed) return;
    this.changed("portsUp");
    this.emit("linkChanged", { port, link });
  }
}
