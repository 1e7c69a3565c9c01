// A micro-service: a version that deployments change, a health that follows the container it runs
// in, a log level operators tune, and a request rate to chart.
import type { RegisteredThingDescription } from "../core/index.js";
import type { Container } from "./container-host.js";
import { SIM_CONTEXT, SimProblem, SimulatedThing, action, property } from "./simulated-thing.js";

export type Health = "passing" | "warning" | "critical";
const LOG_LEVELS = ["debug", "info", "warn", "error"] as const;

/** Simulated seconds between two samples of the request rate. */
const SAMPLE_SECONDS = 5;

export class MicroService extends SimulatedThing {
  version = "2.3.1";
  logLevel: (typeof LOG_LEVELS)[number] = "info";
  #rate = 120;
  #degraded = false;
  #sinceSample = 0;
  /** The container it runs in, when that runs in the same fleet: its health follows it. */
  container: Container | undefined;

  constructor(
    id: string,
    slug: string,
    readonly options: { title?: string; containerId?: string } = {},
  ) {
    super(id, slug);
  }

  get health(): Health {
    const state = this.container?.state ?? "running";
    if (state !== "running") return "critical";
    return this.#degraded ? "warning" : "passing";
  }

  description(base: string): RegisteredThingDescription {
    const containerId = this.options.containerId;
    return {
      "@context": SIM_CONTEXT,
      "@type": ["ht:Service", "schema:WebAPI"],
      id: this.id,
      title: this.options.title ?? "Order service",
      description: "Takes and tracks orders over a REST API.",
      base,
      securityDefinitions: { nosec_sc: { scheme: "nosec" } },
      security: "nosec_sc",
      properties: {
        version: property(
          "version",
          { title: "Deployed version", type: "string", pattern: "^[0-9]{1,4}\\.[0-9]{1,4}\\.[0-9]{1,4}$" },
          { observable: true },
        ),
        health: property(
          "health",
          { title: "Health", type: "string", enum: ["passing", "warning", "critical"] },
          { observable: true },
        ),
        logLevel: property(
          "logLevel",
          { title: "Log level", type: "string", enum: [...LOG_LEVELS] },
          { writable: true, observable: true },
        ),
        requestRate: property(
          "requestRate",
          { title: "Requests per second", type: "number", minimum: 0, unit: "1/s" },
          { observable: true },
        ),
      },
      actions: {
        deploy: action("deploy", {
          title: "Deploy a version",
          input: {
            type: "object",
            properties: { version: { type: "string", pattern: "^[0-9]{1,4}\\.[0-9]{1,4}\\.[0-9]{1,4}$" } },
            required: ["version"],
            additionalProperties: false,
          },
          output: { type: "object", properties: { version: { type: "string" } } },
        }),
      },
      ...(containerId ? { links: [{ rel: "runsOn", href: containerId }] } : {}),
    };
  }

  readProperty(name: string): unknown {
    switch (name) {
      case "version":
        return this.version;
      case "health":
        return this.health;
      case "logLevel":
        return this.logLevel;
      case "requestRate":
        return this.health === "critical" ? 0 : Math.round(this.#rate);
      default:
        throw new SimProblem(404, `there is no property ${name}`);
    }
  }

  override writeProperty(name: string, value: unknown): void {
    if (name !== "logLevel") super.writeProperty(name, value);
    this.setLogLevel(value as (typeof LOG_LEVELS)[number]);
  }

  setLogLevel(level: (typeof LOG_LEVELS)[number]): void {
    this.logLevel = level;
    this.changed("logLevel");
  }

  override invokeAction(name: string, input: unknown): unknown {
    if (name !== "deploy") return super.invokeAction(name, input);
    if (this.health === "critical")
      throw new SimProblem(409, "the service is down: its container is not running");
    this.version = (input as { version: string }).version;
    this.changed("version");
    return { version: this.version };
  }

  override advance(seconds: number, random: () => number): void {
    this.changed("health");
    // The request rate is sampled every few seconds, as a metrics scraper would.
    this.#sinceSample += seconds;
    if (this.#sinceSample < SAMPLE_SECONDS) return;
    this.#rate = Math.max(0, this.#rate + (random() - 0.5) * 40);
    // Now and then the service is slow for a while (a warning), then recovers.
    if (random() < 0.002 * this.#sinceSample) this.#degraded = !this.#degraded;
    this.#sinceSample = 0;
    this.changed("health");
    this.changed("requestRate");
  }
}
