// A container host and the containers it runs, each a Thing of its own: the host `hosts` each
// container, each container `runsOn` the host (TD `links`). Containers start, stop and restart —
// when asked, and when they crash (restart policy "always").
import type { Link, RegisteredThingDescription } from "../core/index.js";
import { SIM_CONTEXT, SimProblem, SimulatedThing, action, property } from "./simulated-thing.js";

export type ContainerState = "running" | "exited" | "restarting";

/** Chance per simulated second that a running container crashes. */
const CRASH_PER_SECOND = 0.001;
/** Simulated seconds a restart takes. */
const RESTART_SECONDS = 3;

export class Container extends SimulatedThing {
  state: ContainerState = "running";
  restarts = 0;
  memoryLimit = 512;
  #restartingFor = 0;
  /** Told when the state changes (the host lists its containers' states). */
  onState: (() => void) | undefined;

  constructor(
    id: string,
    slug: string,
    readonly name: string,
    readonly image: string,
    readonly hostId: string,
  ) {
    super(id, slug);
  }

  description(base: string): RegisteredThingDescription {
    return {
      "@context": SIM_CONTEXT,
      "@type": ["ht:Container", "schema:SoftwareApplication"],
      id: this.id,
      title: `Container ${this.name}`,
      description: `The ${this.name} container (${this.image}).`,
      base,
      securityDefinitions: { nosec_sc: { scheme: "nosec" } },
      security: "nosec_sc",
      properties: {
        state: property(
          "state",
          { title: "State", type: "string", enum: ["running", "exited", "restarting"] },
          { observable: true },
        ),
        image: property("image", { title: "Image", type: "string" }),
        restarts: property(
          "restarts",
          { title: "Restarts", type: "integer", minimum: 0 },
          { observable: true },
        ),
        memoryLimit: property(
          "memoryLimit",
          { title: "Memory limit", type: "integer", minimum: 64, maximum: 8192, unit: "MiBy" },
          { writable: true, observable: true },
        ),
      },
      actions: {
        start: action("start", { title: "Start", description: "Refused (409) when it is running." }),
        stop: action("stop", { title: "Stop", description: "Refused (409) when it has exited." }),
        restart: action("restart", { title: "Restart" }),
      },
      links: [{ rel: "runsOn", href: this.hostId }],
    };
  }

  readProperty(name: string): unknown {
    switch (name) {
      case "state":
        return this.state;
      case "image":
        return this.image;
      case "restarts":
        return this.restarts;
      case "memoryLimit":
        return this.memoryLimit;
      default:
        throw new SimProblem(404, `there is no property ${name}`);
    }
  }

  override writeProperty(name: string, value: unknown): void {
    if (name !== "memoryLimit") super.writeProperty(name, value);
    this.memoryLimit = value as number;
    this.changed("memoryLimit");
  }

  override invokeAction(name: string, input: unknown): unknown {
    switch (name) {
      case "start":
        if (this.state !== "exited") throw new SimProblem(409, `${this.name} is ${this.state}, not exited`);
        this.#set("running");
        return { state: this.state };
      case "stop":
        if (this.state === "exited") throw new SimProblem(409, `${this.name} has already exited`);
        this.stop();
        return { state: this.state };
      case "restart":
        this.restart();
        return { state: this.state };
      default:
        return super.invokeAction(name, input);
    }
  }

  stop(): void {
    this.#set("exited");
  }

  restart(): void {
    this.#restartingFor = 0;
    this.#set("restarting");
  }

  override advance(seconds: number, random: () => number): void {
    if (this.state === "restarting") {
      this.#restartingFor += seconds;
      if (this.#restartingFor >= RESTART_SECONDS) {
        this.restarts++;
        this.changed("restarts");
        this.#set("running");
      }
    } else if (this.state === "running" && random() < CRASH_PER_SECOND * seconds) {
      this.restart();
    }
  }

  #set(state: ContainerState): void {
    this.state = state;
    this.changed("state");
    this.onState?.();
  }
}

/** Simulated seconds between two samples of a host's load. */
const SAMPLE_SECONDS = 5;

export class ContainerHost extends SimulatedThing {
  #load = 0.4;
  #sinceSample = 0;
  /** Drained for maintenance: an operator's flag, nothing more. */
  maintenance = false;

  constructor(
    id: string,
    slug: string,
    readonly containers: readonly Container[],
    readonly options: { title?: string; links?: Link[] } = {},
  ) {
    super(id, slug);
    for (const container of containers) container.onState = () => this.changed("containers");
  }

  description(base: string): RegisteredThingDescription {
    return {
      "@context": SIM_CONTEXT,
      "@type": ["ht:Host", "saref:Device"],
      id: this.id,
      title: this.options.title ?? "Container host",
      description: `A Linux host running ${this.containers.length} containers.`,
      base,
      securityDefinitions: { nosec_sc: { scheme: "nosec" } },
      security: "nosec_sc",
      properties: {
        containers: property(
          "containers",
          {
            title: "Containers and their states",
            type: "object",
            additionalProperties: { type: "string", enum: ["running", "exited", "restarting"] },
          } as never,
          { observable: true },
        ),
        load: property(
          "load",
          { title: "Load average (1 min)", type: "number", minimum: 0 },
          { observable: true },
        ),
      },
      links: [...this.containers.map((c) => ({ rel: "hosts", href: c.id })), ...(this.options.links ?? [])],
    };
  }

  readProperty(name: string): unknown {
    switch (name) {
      case "containers":
        return Object.fromEntries(this.containers.map((c) => [c.name, c.state]));
      case "maintenance":
        return this.maintenance;
      case "load":
        return Math.round(this.#load * 100) / 100;
      default:
        throw new SimProblem(404, `there is no property ${name}`);
    }
  }

  override writeProperty(name: string, value: unknown): void {
    if (name !== "maintenance") super.writeProperty(name, value);
    this.maintenance = value as boolean;
    this.changed("maintenance");
  }

  override advance(seconds: number, random: () => number): void {
    // Sampled every few seconds, as a monitoring agent would: not a Change on every tick.
    this.#sinceSample += seconds;
    if (this.#sinceSample < SAMPLE_SECONDS) return;
    const running = this.containers.filter((c) => c.state === "running").length;
    // The load relaxes towards what the running containers ask for, with some noise.
    const target = 0.2 + running * 0.35 + (random() - 0.5) * 0.4;
    this.#load += (target - this.#load) * Math.min(1, this.#sinceSample / 10);
    this.#sinceSample = 0;
    this.changed("load");
  }
}
