// Auto-inventory on the broker: Homie 5 devices (`{root}/5/{device}/$description`, `$state`) and
// Home Assistant MQTT discovery (`{prefix}/{component}/[{node}/]{object}/config`) are registered
// in the directory with generated TDs, and removed when they say so (Homie: `$state` or the
// description cleared; HA: an empty config). A Homie device that is `lost` or `disconnected` stays
// registered and is recorded `unreachable`, then `reachable` at `init`/`ready`, as an observed
// Thing that stops answering is. Through hub methods only (directory, ingest, the store's reads).
import type { Logger } from "pino";
import {
  ConflictError,
  HOME_ASSISTANT_LIMITS,
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
import { REACHABILITY_STREAM_KINDS, latestReachability, type Hub } from "../../hub/index.js";
import { toProblem } from "../http/problem.js";
import { topicMatches, type BrokerLink, type InboundMessage } from "./broker-link.js";
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
  /**
   * Called after a device's TD is registered, and when the device announces it again unchanged,
   * e.g. to give the hub its credentials for the broker (which follow the admin token).
   */
  readonly onRegistered?: (td: RegisteredThingDescription) => Promise<void>;
}

/** Homie devices whose last `$state` is remembered (to record a lost one registered after it). */
const MAX_REMEMBERED_DEVICES = 10_000;

/** The Homie 5 states in which a device does not answer, and what its `unreachable` Change says. */
const AWAY_STATES: ReadonlyMap<string, string> = new Map([
  ["lost", "the device dropped off the broker (Homie $state lost)"],
  ["disconnected", "the device disconnected from the broker (Homie $state disconnected)"],
]);
const BACK_STATES: ReadonlySet<string> = new Set(["init", "ready"]);

export class AutoInventory {
  readonly #hub: Hub;
  readonly #link: BrokerLink;
  readonly #options: AutoInventoryOptions;
  /** Homie devices: their last `$state`, once said. */
  readonly #homieStates = new Map<string, string>();
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
          homeAssistantThingDescription(ha, payload, this.#deviceContext(message)),
        );
        if (td === undefined) return;
        if (message.publisher?.kind === "announcer" && ha.node !== undefined) {
          const full = await this.#nodeIsFull(id, ha.node);
          if (full !== undefined) {
            this.#refuse(id, message.topic, full);
            return;
          }
        }
        await this.#register(td, "homeassistant");
      });
    }
    return Promise.resolve();
  }

  /**
   * Where the generated TD's forms point. An announcer password confines its device to its own
   * topics, and the hub observes and writes the announced ones with its admin token: so the
   * announcement may name only topics its announcer may publish to, or a device could have the hub
   * record (and publish to) any other device's topics for it.
   */
  #deviceContext(message: InboundMessage): MqttDeviceContext {
    const publisher = message.publisher;
    if (publisher?.kind !== "announcer") return this.#options.device;
    const filters = publisher.topics.publish;
    return {
      ...this.#options.device,
      confinedTo: { filters, includes: (topic) => filters.some((filter) => topicMatches(filter, topic)) },
    };
  }

  async #homieDescription(device: string, message: InboundMessage): Promise<void> {
    const id = homieThingId(device);
    if (message.payload.length === 0) {
      this.#homieStates.delete(device);
      await this.#remove(id, "homie");
      return;
    }
    const td = this.#generate(id, message, (payload) =>
      homieThingDescription(this.#options.homieRoot, device, payload, this.#options.device),
    );
    if (td === undefined) return;
    await this.#register(td, "homie");
    // A retained `lost` may arrive before the description: the Thing is recorded as away now.
    const state = this.#homieStates.get(device);
    if (state !== undefined) await this.#reachability(id, state);
  }

  async #homieState(device: string, message: InboundMessage): Promise<void> {
    const id = homieThingId(device);
    const state = message.payload.toString("utf8").trim();
    if (state === "") {
      // Homie 5: a device is removed by clearing its retained topics, `$state` among them.
      this.#homieStates.delete(device);
      await this.#remove(id, "homie");
      return;
    }
    if (!this.#homieStates.has(device) && this.#homieStates.size >= MAX_REMEMBERED_DEVICES) {
      const oldest = this.#homieStates.keys().next().value;
      if (oldest !== undefined) this.#homieStates.delete(oldest);
    }
    this.#homieStates.set(device, state);
    await this.#reachability(id, state);
  }

  /**
   * Records a registered Homie device going away (`lost`, `disconnected`) or coming back (`init`,
   * `ready`), once: the Log's latest reachability of the Thing decides, so a retained state the
   * broker delivers again (at every hub start) records nothing new. Other states change nothing.
   */
  async #reachability(id: string, state: string): Promise<void> {
    const away = AWAY_STATES.get(state);
    if (away === undefined && !BACK_STATES.has(state)) return;
    const streams = await this.#hub.store.streamsAt(id, undefined, REACHABILITY_STREAM_KINDS);
    const reachable = latestReachability(streams)?.kind !== "unreachable";
    if (away !== undefined ? !reachable : reachable) return;
    const report =
      away !== undefined
        ? { kind: "unreachable" as const, value: away }
        : { kind: "reachable" as const, value: `the device is back (Homie $state ${state})` };
    try {
      await this.#hub.ingest(id, [report], this.#cause("homie"));
      this.#options.logger.info({ thing: id, state }, "MQTT: Homie device state recorded");
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error; // not registered (yet), or removed meanwhile
    }
  }

  /**
   * Why a node signed in with its announcer password may not register one more entity, or
   * undefined: a new one past HOME_ASSISTANT_LIMITS.entitiesPerNode is refused, while those it has
   * may be announced again and removed.
   */
  async #nodeIsFull(id: string, node: string): Promise<ConflictError | undefined> {
    try {
      await this.#hub.directory.getLive(id);
      return undefined;
    } catch (error) {
      if (!(error instanceof NotFoundError)) throw error;
    }
    const limit = HOME_ASSISTANT_LIMITS.entitiesPerNode;
    // urn:homeassistant:{component}:{node}:{object}
    const held = await this.#hub.graph.countThings((thing) => {
      if (!thing.startsWith("urn:homeassistant:")) return false;
      const parts = thing.split(":");
      return parts.length === 5 && parts[3] === node;
    });
    if (held < limit) return undefined;
    return new ConflictError(
      `The Home Assistant node ${node} has ${held} entities registered, as many as one node may with its own credentials (${limit}): remove some (an empty config) before announcing more`,
    );
  }

  /** Tells the device on the Thing's errors topic why its announcement changed nothing. */
  #refuse(id: string, topic: string, error: unknown): void {
    const problem = { ...toProblem(error), instance: topic };
    delete problem.validationErrors;
    this.#options.logger.warn({ topic, detail: problem.detail }, "MQTT: a device announcement was refused");
    this.#link.publish(this.#options.layout.errors(id), Buffer.from(JSON.stringify(problem), "utf8"), {
      qos: 0,
    });
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
      this.#refuse(id, message.topic, error);
      return undefined;
    }
  }

  async #register(td: RegisteredThingDescription, convention: string): Promise<void> {
    try {
      const current = await this.#hub.directory.getLive(td.id);
      if (canonicalJson(current.td) === canonicalJson(td)) {
        // Nothing to record; the credentials may be stale all the same (the admin token rotated).
        await this.#options.onRegistered?.(td);
        return;
      }
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
