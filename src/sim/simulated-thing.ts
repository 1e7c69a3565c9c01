// What every simulated HTTP Thing is: a TD built for the address it is served at, properties to
// read and write, actions to invoke, and notifications for its observers. The HTTP side (routes,
// validation against the TD's own schemas, SSE) is the server's (sim-http-server.ts).
import type {
  ActionAffordance,
  DataSchema,
  EventAffordance,
  Link,
  PropertyAffordance,
  RegisteredThingDescription,
} from "../core/index.js";

/** An honest refusal, answered as an RFC 9457 problem document with this status. */
export class SimProblem extends Error {
  constructor(
    readonly status: number,
    message: string,
    readonly errors: readonly { pointer: string; detail: string }[] = [],
  ) {
    super(message);
  }
}

export type PropertyListener = (name: string, value: unknown) => void;
export type EventListener = (name: string, data: unknown) => void;

/** The TD context every simulated Thing uses: TD 1.1, SAREF, schema.org and the hub's own terms. */
export const SIM_CONTEXT = [
  "https://www.w3.org/2022/wot/td/v1.1",
  {
    saref: "https://saref.etsi.org/core/",
    // As the TD 1.1 context and vocab/types.json write schema.org: `type = schema:Product` finds them.
    schema: "http://schema.org/",
    // The hub's own vocabulary (vocab/types.json): ht:Container is an ht:ComputeResource there.
    ht: "https://hyperthings.dev/vocab#",
  },
];

/** A property's TD entry: forms to read (and write), and an SSE form to observe when observable. */
export function property(
  name: string,
  schema: DataSchema & { "@type"?: string | string[]; unit?: string; title?: string },
  options: { writable?: boolean; observable?: boolean } = {},
): PropertyAffordance {
  const ops = options.writable ? ["readproperty", "writeproperty"] : ["readproperty"];
  const forms: PropertyAffordance["forms"] = [
    { href: `properties/${name}`, op: ops, contentType: "application/json" },
  ];
  if (options.observable) {
    forms.push({
      href: `properties/${name}/observe`,
      op: "observeproperty",
      subprotocol: "sse",
      contentType: "application/json",
    });
  }
  return {
    ...schema,
    readOnly: !options.writable,
    ...(options.observable ? { observable: true } : {}),
    forms,
  };
}

export function action(
  name: string,
  affordance: Omit<ActionAffordance, "forms"> & { "@type"?: string },
): ActionAffordance {
  return {
    ...affordance,
    forms: [{ href: `actions/${name}`, op: "invokeaction", contentType: "application/json" }],
  };
}

export function event(name: string, affordance: Omit<EventAffordance, "forms">): EventAffordance {
  return {
    ...affordance,
    forms: [
      { href: `events/${name}`, op: "subscribeevent", subprotocol: "sse", contentType: "application/json" },
    ],
  };
}

export function link(rel: string, href: string): Link {
  return { rel, href };
}

export abstract class SimulatedThing {
  #onProperty: PropertyListener | undefined;
  #onEvent: EventListener | undefined;

  /** `slug` names the Thing's folder on its server: its TD's base is `http://host:port/{slug}/`. */
  constructor(
    readonly id: string,
    readonly slug: string,
  ) {}

  /** The TD, with `base` where the Thing is served. */
  abstract description(base: string): RegisteredThingDescription;

  abstract readProperty(name: string): unknown;

  /** Called with a value that already fits the property's schema. */
  writeProperty(name: string, _value: unknown): void {
    throw new SimProblem(405, `${name} is read-only`);
  }

  /** Called with input that already fits the action's input schema; returns its output. */
  invokeAction(name: string, _input: unknown): unknown {
    throw new SimProblem(404, `there is no action ${name}`);
  }

  /** Lets simulated time pass. */
  advance(_seconds: number, _random: () => number): void {}

  /** The server listens here (one listener: the Thing's server). */
  attach(onProperty: PropertyListener, onEvent: EventListener): void {
    this.#onProperty = onProperty;
    this.#onEvent = onEvent;
  }

  /** Tells observers a property's value (they get it only when it differs from the last one). */
  protected changed(name: string): void {
    this.#onProperty?.(name, this.readProperty(name));
  }

  protected emit(name: string, data: unknown): void {
    this.#onEvent?.(name, data);
  }
}
