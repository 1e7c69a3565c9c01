// A smart plug on CoAP: an on/off relay to switch (a writable property and a toggle action), and
// the power drawn by what is plugged in, which wanders while it is on and is observable.
import type { PropertyAffordance, RegisteredThingDescription } from "../core/index.js";
import { SIM_CONTEXT, SimulatedThing } from "./simulated-thing.js";

/** Simulated seconds between two samples of the power drawn. */
const SAMPLE_SECONDS = 2;

/** A property's CoAP forms: read (and write) by the default methods, and Observe when observable. */
function coapProperty(
  name: string,
  schema: Omit<PropertyAffordance, "forms">,
  options: { writable?: boolean } = {},
): PropertyAffordance {
  const href = `properties/${name}`;
  return {
    ...schema,
    readOnly: options.writable !== true,
    observable: true,
    forms: [
      {
        href,
        op: options.writable === true ? ["readproperty", "writeproperty"] : ["readproperty"],
        contentType: "application/json",
      },
      {
        href,
        op: ["observeproperty", "unobserveproperty"],
        subprotocol: "cov:observe",
        contentType: "application/json",
      },
    ],
  };
}

export class SmartPlug extends SimulatedThing {
  on = true;
  /** What the appliance plugged in draws when on, W. */
  #load = 60;
  #power = 60;
  #sinceSample = 0;

  constructor(
    id: string,
    slug: string,
    readonly options: { title?: string } = {},
  ) {
    super(id, slug);
  }

  get power(): number {
    return this.on ? this.#power : 0;
  }

  description(base: string): RegisteredThingDescription {
    return {
      "@context": [...SIM_CONTEXT, { cov: "https://www.w3.org/2019/wot/coap" }],
      "@type": ["saref:Device", "saref:Switch"],
      id: this.id,
      title: this.options.title ?? "Desk lamp plug",
      description: "A smart plug on CoAP: switch it, and watch what the lamp on it draws.",
      base,
      securityDefinitions: { nosec_sc: { scheme: "nosec" } },
      security: "nosec_sc",
      properties: {
        on: coapProperty(
          "on",
          { title: "Switched on", "@type": "saref:OnOffState", type: "boolean" },
          { writable: true },
        ),
        power: coapProperty("power", {
          title: "Power drawn",
          "@type": "saref:Power",
          type: "number",
          minimum: 0,
          unit: "W",
        }),
      },
      actions: {
        toggle: {
          title: "Toggle",
          "@type": "saref:ToggleCommand",
          output: { type: "boolean", title: "Switched on after" },
          forms: [{ href: "actions/toggle", op: "invokeaction", contentType: "application/json" }],
        },
      },
    };
  }

  readProperty(name: string): unknown {
    if (name === "on") return this.on;
    if (name === "power") return this.power;
    return undefined;
  }

  override writeProperty(name: string, value: unknown): void {
    if (name !== "on") super.writeProperty(name, value);
    this.#switch(value === true);
  }

  override invokeAction(name: string, input: unknown): unknown {
    if (name !== "toggle") return super.invokeAction(name, input);
    this.#switch(!this.on);
    return this.on;
  }

  override advance(seconds: number, random: () => number): void {
    this.#sinceSample += seconds;
    if (this.#sinceSample < SAMPLE_SECONDS) return;
    this.#sinceSample = 0;
    // The lamp's draw wanders by up to ±2 W around its load, in tenths of a watt.
    this.#power = Math.round((this.#load + (random() - 0.5) * 4) * 10) / 10;
    if (this.on) this.changed("power");
  }

  #switch(on: boolean): void {
    if (on === this.on) return;
    this.on = on;
    this.changed("on");
    this.changed("power");
  }
}
