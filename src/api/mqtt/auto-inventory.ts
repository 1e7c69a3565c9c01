// Auto-inventory on the broker: Homie 5 devices (`{root}/5/{device}/$description`, `$state`) and
// Home Assistant MQTT discovery (`{prefix}/{component}/[{node}/]{object}/config`) are registered
// in the directory with generated TDs, and removed when they say so (Homie: `$state` lost or
// cleared, or an empty description; HA: an empty config). Through hub methods only (directory).
import type { Logger } from "pino";
import {
  NotFoundError,
  ValidationError,
  canonicalJson,
  homeAssistantThingDescription,
  homeAssistantThingId,
  homieThingDescription,
  homieThingId,
  parseHomeAssistantTopic,
  parseHomieTopic,
  parseJsonStrict,
  utf8Text,
  type Cause,
  type MqttDeviceContext,
  type RegisteredThingDescription,
} from "../../core/index.js";
import type { Hub } from "../../hub/index.js";
import { toProblem } from "../http/problem.js";
import type { BrokerLink, InboundMessage } from "./broker-link.js";
import type { TopicLayout } from "./topic-layout.js";

export interface AutoInventoryOptions {
  /** Homie's root topic, `homie` by default. */
  readonly homieRoot: string;
  /** Home Assistant's discovery prefix, `homeassistant` by default. */
  readonly homeAssistantPrefix: string;
  /** The broker as the generated TDs' forms name it. */
  readonly device: MqttDeviceContext;
  /** Announcements larger than this are refused (and never parsed). */
  readonly maxPayloadBytes: number;
  /** Where announcement errors are published (the Thing's errors topic). */
  readonly layout: TopicLayout;
  readonly logger: Logger;
  /** Called after a device's TD is registered, e.g. to give the hub its credentials for the broker. */
  readonly onRegistered?: (td: RegisteredThingDescription) => Promise<void>;
}

/** Devices whose last description is remembered (to re-register one that comes back after `lost`). */
const MAX_REMEMBERED_DEVICES = 10_000;

export class AutoInventory {
  readonly #hub: Hub;
  readonly #link: BrokerLink;
  readonly #options: AutoInventoryOptions;
  /** Homie devices: the last valid TD, and whether the device is lost. */
  readonly #homie = new Map<string, { td?: RegisteredThingDescription; lost: boolean }>();
  /** One announcement at a time per device, in arrival order. */
  readonly #queues = new Map<string, Promise<void>>();

  constructor(hub: Hub, link: BrokerLink, options: AutoInventoryOptions) {
    this.#hub = hub;
    this.#link = link;
    this.#options = options;
  }

  async start(): Promise<void> {
    const { homieRoot, homeAssistantPrefix: ha } = this.#options;
    await this.#link.handle(
      [`${homieRoot}/5/+/$description`, `${homieRoot}/5/+/$state`, `${ha}/+/+/config`, `${ha}/+/+/+/config`],
      (message) => this.#inbound(message),
    );
  }

  #inbound(message: InboundMessage): Promise<void> {
    const homie = parseHomieTopic(this.#options.homieRoot, message.topic);
    if (homie !== undefined && homie.rest.length === 1) {
      const [what] = homie.rest;
      if (what === "$description")
        return this.#serially(homieThingId(homie.device), () =>
          this.#homieDescription(homie.device, message),
        );
      if (what === "$state")
        return this.#serially(homieThingId(homie.device), () => this.#homieState(homie.device, message));
      return Promise.resolve();
    }
    const ha = parseHomeAssistantTopic(this.#options.homeAssistantPrefix, message.topic);
    if (ha !== undefined) {
      const id = homeAssistantThingId(ha);
      return this.#serially(id, async () => {
        if (message.payload.length === 0) {
          await this.#remove(id, "homeassistant");
          return;
        }
        const td = this.#generate(id, message, (payload) =>
          homeAssistantThingDescription(ha, payload, this.#options.device),
        );
        if (td !== undefined) await this.#register(td, "homeassistant");
      });
    }
    return Promise.resolve();
  }

  async #homieDescription(device: string, message: InboundMessage): Promise<void> {
    const id = homieThingId(device);
    const known = this.#homie.get(device);
    if (message.payload.length === 0) {
      this.#homie.delete(device);
      await this.#remove(id, "homie");
      return;
    }
    const td = this.#generate(id, message, (payload) =>
      homieThingDescription(this.#options.homieRoot, device, payload, this.#options.device),
    );
    if (td === undefined) return;
    this.#remember(device, { td, lost: known?.lost ?? false });
    if (known?.lost !== true) await this.#register(td, "homie");
  }

  async #homieState(device: string, message: InboundMessage): Promise<void> {
    const id = homieThingId(device);
    const state = message.payload.toString("utf8").trim();
    const known = this.#homie.get(device);
    if (state === "") {
      // Homie 5: a device is removed by clearing its retained topics, `$state` among them.
      this.#homie.delete(device);
      await this.#remove(id, "homie");
      return;
    }
    if (state === "lost") {
      this.#remember(device, { ...(known?.td === undefined ? {} : { td: known.td }), lost: true });
      await this.#remove(id, "homie");
      return;
    }
    this.#remember(device, { ...(known?.td === undefined ? {} : { td: known.td }), lost: false });
    if (known?.lost === true && known.td !== undefined) await this.#register(known.td, "homie");
  }

  #remember(device: string, entry: { td?: RegisteredThingDescription; lost: boolean }): void {
    if (!this.#homie.has(device) && this.#homie.size >= MAX_REMEMBERED_DEVICES) {
      const oldest = this.#homie.keys().next().value;
      if (oldest !== undefined) this.#homie.delete(oldest);
    }
    this.#homie.set(device, entry);
  }

  /** The TD from an announcement, or undefined after telling the device what is wrong. */
  #generate(
    id: string,
    message: InboundMessage,
    make: (payload: unknown) => RegisteredThingDescription,
  ): RegisteredThingDescription | undefined {
    try {
      const { maxPayloadBytes } = this.#options;
      if (message.payload.length > maxPayloadBytes) {
        throw new ValidationError(
          `A payload of ${message.payload.length} bytes is larger than the limit of ${maxPayloadBytes}`,
          [{ pointer: "/payload", message: "too large" }],
        );
      }
      return make(parseJsonStrict(utf8Text(message.payload)));
    } catch (error) {
      const problem = { ...toProblem(error), instance: message.topic };
      delete problem.validationErrors;
      this.#options.logger.warn(
        { topic: message.topic, detail: problem.detail },
        "MQTT: a device announcement was refused",
      );
      this.#link.publish(this.#options.layout.errors(id), Buffer.from(JSON.stringify(problem), "utf8"), {
        qos: 0,
      });
      return undefined;
    }
  }

  async #register(td: RegisteredThingDescription, convention: string): Promise<void> {
    try {
      const current = await this.#hub.directory.getLive(td.id);
      if (canonicalJson(current.td) === canonicalJson(td)) return;
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
    }
    await this.#hub.directory.put(td.id, td, this.#cause(convention));
    await this.#options.onRegistered?.(td);
    this.#options.logger.info({ thing: td.id, convention }, "MQTT: device registered");
  }

  async #remove(id: string, convention: string): Promise<void> {
    try {
      await this.#hub.directory.remove(id, this.#cause(convention));
      this.#options.logger.info({ thing: id, convention }, "MQTT: device removed");
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
    }
  }

  #cause(convention: string): Cause {
    return { actor: `mqtt:${convention}`, via: "mqtt" };
  }

  #serially(key: string, work: () => Promise<void>): Promise<void> {
    const previous = this.#queues.get(key) ?? Promise.resolve();
    const next = previous.then(work, work);
    const settled = next.catch(() => undefined);
    this.#queues.set(key, settled);
    void settled.then(() => {
      if (this.#queues.get(key) === settled) this.#queues.delete(key);
    });
    return next;
  }
}
