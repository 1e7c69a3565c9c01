// The chaos monkey: now and then it changes something behind the hub's back — an espresso
// machine's setpoint, a switch port, a container, a service's log level — so that there is drift
// and history to see.
import { Container } from "./container-host.js";
import { EspressoMachine, SETPOINT_RANGE } from "./espresso-machine.js";
import { MicroService } from "./micro-service.js";
import { NetworkSwitch } from "./network-switch.js";
import type { SimulatedThing } from "./simulated-thing.js";

/** What the monkey did: to which Thing, and what, in words. */
export interface Mischief {
  readonly thing: string;
  readonly affordance: string;
  readonly what: string;
}

export class ChaosMonkey {
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly things: () => readonly SimulatedThing[],
    private readonly random: () => number,
    private readonly onMischief: (mischief: Mischief) => void = () => undefined,
  ) {}

  /** Strikes every `intervalMs` until stopped. */
  start(intervalMs: number): void {
    this.stop();
    this.#timer = setInterval(() => this.strike(), intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One piece of mischief, on a Thing picked at random; undefined when there is nothing to pick. */
  strike(): Mischief | undefined {
    const victims = this.things().filter(
      (t) =>
        t instanceof EspressoMachine ||
        t instanceof NetworkSwitch ||
        t instanceof Container ||
        t instanceof MicroService,
    );
    const thing = victims[Math.floor(this.random() * victims.length)];
    if (thing === undefined) return undefined;
    const mischief = this.#strike(thing);
    this.onMischief(mischief);
    return mischief;
  }

  #strike(thing: SimulatedThing): Mischief {
    if (thing instanceof EspressoMachine) {
      const { minimum, maximum } = SETPOINT_RANGE;
      // Half-degree steps, never the value it has now.
      let setpoint = thing.boiler.setpoint;
      while (setpoint === thing.boiler.setpoint) {
        setpoint = minimum + Math.round(this.random() * (maximum - minimum) * 2) / 2;
      }
      thing.setSetpoint(setpoint);
      return { thing: thing.id, affordance: "setpoint", what: `set the setpoint to ${setpoint} °C` };
    }
    if (thing instanceof NetworkSwitch) {
      const port = 1 + Math.floor(this.random() * thing.portCount);
      const enabled = !(thing.ports[String(port)]?.enabled ?? true);
      thing.setEnabled(port, enabled);
      return {
        thing: thing.id,
        affordance: "ports",
        what: `${enabled ? "enabled" : "disabled"} port ${port}`,
      };
    }
    if (thing instanceof Container) {
      if (thing.state === "exited") {
        thing.restart();
        return { thing: thing.id, affordance: "state", what: `started ${thing.name} again` };
      }
      thing.stop();
      return { thing: thing.id, affordance: "state", what: `stopped ${thing.name}` };
    }
    const service = thing as MicroService;
    const level = service.logLevel === "debug" ? "info" : "debug";
    service.setLogLevel(level);
    return { thing: service.id, affordance: "logLevel", what: `set the log level to ${level}` };
  }
}
