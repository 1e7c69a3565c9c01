// The MQTT gateway (docs/mqtt.md): devices publish state and events on the documented topics and
// each message becomes a Change through `hub.ingest`, acknowledged after commit; a refused
// message changes nothing and its reason goes to the device's errors topic; every committed
// Change is republished; writes go to devices on `…/set`. It talks to the hub only through hub
// methods (ingest, follow).
import type { Logger } from "pino";
import {
  BindingError,
  ValidationError,
  canonicalJson,
  isRfc3339Time,
  parseJsonStrict,
  utf8Text,
  type Change,
} from "../../core/index.js";
import type { Follower, Hub, Report } from "../../hub/index.js";
import { toProblem } from "../http/problem.js";
import { MAX_REMEMBERED_TOPIC_LENGTH, type BrokerLink, type InboundMessage } from "./broker-link.js";
import { ReportBatches } from "./report-batches.js";
import type { GatewayTopic, TopicLayout } from "./topic-layout.js";

export interface GatewayOptions {
  readonly layout: TopicLayout;
  /** Payloads larger than this are refused (and never parsed). */
  readonly maxPayloadBytes: number;
  readonly logger: Logger;
}

/** How a write to a device ended. */
export interface WriteOutcome {
  /** `result`: the device answered on `…/set/result`; `reported`: it reported the value written. */
  readonly confirmedBy: "result" | "reported";
}

interface PendingWrite {
  readonly value: string;
  resolve(outcome: WriteOutcome): void;
  reject(error: Error): void;
}

const MAX_PENDING_WRITES = 10_000;
/** Topics remembered, parsed (inbound) or built (republished Changes): devices repeat theirs. */
const MAX_REMEMBERED_TOPICS = 10_000;
/**
 * Things whose republish topics are remembered: a fleet's every Thing reports, so fewer than the
 * fleet means building them again and again (10,000 did, for a fleet of 10,000).
 */
const MAX_CHANGE_TOPIC_THINGS = 100_000;
// RFC 3339 §5.6 date-time.

export class MqttGateway {
  readonly #hub: Hub;
  readonly #link: BrokerLink;
  readonly #options: GatewayOptions;
  readonly #writes = new Map<string, Set<PendingWrite>>();
  #pendingWrites = 0;
  #follower: Follower | undefined;
  readonly #batches: ReportBatches;
  readonly #parsed = new Map<string, ReturnType<TopicLayout["parse"]>>();
  /** By Thing, then kind: no key is built per Change (the Thing's id string is hashed once). */
  readonly #changeTopics = new Map<string, Map<string, string>>();

  constructor(hub: Hub, link: BrokerLink, options: GatewayOptions) {
    this.#hub = hub;
    this.#link = link;
    this.#options = options;
    this.#batches = new ReportBatches((thing, reports, cause) => hub.ingest(thing, reports, cause));
  }

  get layout(): TopicLayout {
    return this.#options.layout;
  }

  async start(): Promise<void> {
    this.#follower = this.#hub.follow((change) => this.#republish(change));
    await this.#follower.ready;
    // A retained report or event was taken when it was published: taking it again each time the
    // hub (re)subscribes would record it twice, and put back a stale value.
    await this.#link.handle(this.#options.layout.inboundFilters(), (message) => this.#inbound(message), {
      retained: false,
    });
  }

  stop(): void {
    this.#follower?.stop();
    for (const waiters of this.#writes.values()) {
      for (const waiter of waiters)
        waiter.reject(new BindingError("The MQTT gateway stopped before the device answered"));
    }
    this.#writes.clear();
  }

  /**
   * Sends a write to a device on `…/properties/{name}/set` (QoS 1, the value as JSON) and waits
   * until the device answers on `…/set/result` or reports the value it was given.
   */
  async writeProperty(
    thing: string,
    name: string,
    value: unknown,
    timeoutMs = 10_000,
  ): Promise<WriteOutcome> {
    if (this.#pendingWrites >= MAX_PENDING_WRITES) {
      throw new BindingError(`${thing}: too many writes wait for devices' answers`, thing);
    }
    const key = writeKey(thing, name);
    const text = JSON.stringify(value);
    const topic = this.#options.layout.set(thing, name);
    let waiter: PendingWrite | undefined;
    const answered = new Promise<WriteOutcome>((resolve, reject) => {
      waiter = { value: canonicalJson(value), resolve, reject };
    });
    if (waiter === undefined) throw new Error("unreachable");
    const pending = waiter;
    const waiters = this.#writes.get(key) ?? new Set();
    waiters.add(pending);
    this.#writes.set(key, waiters);
    this.#pendingWrites++;
    const timer = setTimeout(
      () =>
        pending.reject(
          new BindingError(`${thing}: no answer to the write of ${name} in ${timeoutMs} ms`, thing, {
            reason: "timeout",
            href: topic,
          }),
        ),
      timeoutMs,
    );
    try {
      if (!this.#link.publish(topic, Buffer.from(text, "utf8"), { qos: 1 })) {
        throw new BindingError(`${thing}: the broker did not take the write of ${name}`, thing, {
          reason: "unreachable",
          href: topic,
        });
      }
      return await answered;
    } finally {
      clearTimeout(timer);
      waiters.delete(pending);
      if (waiters.size === 0) this.#writes.delete(key);
      this.#pendingWrites--;
    }
  }

  #republish(change: Change): void {
    // On the embedded broker with no subscriber at all, not even the topic is looked up.
    if (this.#link.wantsAny?.() !== false) this.#publishChange(change);
    if (change.kind === "removed") this.#link.disconnectDevice?.(change.thing);
    if (change.kind === "reported" && change.affordance !== undefined && this.#writes.size > 0) {
      const waiters = this.#writes.get(writeKey(change.thing, change.affordance));
      if (waiters !== undefined) {
        const value = canonicalJson(change.value);
        for (const waiter of waiters) if (waiter.value === value) waiter.resolve({ confirmedBy: "reported" });
      }
    }
  }

  #publishChange(change: Change): void {
    let byKind = this.#changeTopics.get(change.thing);
    if (byKind === undefined) {
      if (this.#changeTopics.size >= MAX_CHANGE_TOPIC_THINGS) this.#changeTopics.clear();
      this.#changeTopics.set(change.thing, (byKind = new Map<string, string>()));
    }
    let topic = byKind.get(change.kind);
    if (topic === undefined) {
      topic = this.#options.layout.change(change.kind, change.thing);
      byKind.set(change.kind, topic);
    }
    // On the embedded broker, a Change no client subscribed to is not even serialised.
    if (this.#link.wants?.(topic) !== false) {
      this.#link.publish(topic, Buffer.from(JSON.stringify(change), "utf8"), { qos: 0 });
    }
  }

  async #inbound(message: InboundMessage): Promise<void> {
    const { layout, maxPayloadBytes } = this.#options;
    let parsed = this.#parsed.get(message.topic);
    if (parsed === undefined && !this.#parsed.has(message.topic)) {
      parsed = layout.parse(message.topic);
      if (message.topic.length <= MAX_REMEMBERED_TOPIC_LENGTH) {
        if (this.#parsed.size >= MAX_REMEMBERED_TOPICS) this.#parsed.clear();
        this.#parsed.set(message.topic, parsed);
      }
    }
    if (parsed === undefined) return;
    if (parsed.kind === "malformed") {
      this.#refuse(
        layout.errorsRaw(parsed.rawThing),
        message,
        new ValidationError(parsed.message, [{ pointer: "/topic", message: "a level does not decode" }]),
      );
      return;
    }
    const thing = parsed.thing;
    if (message.payload.length > maxPayloadBytes) {
      this.#refuse(
        layout.errors(thing),
        message,
        new ValidationError(
          `A payload of ${message.payload.length} bytes is larger than the limit of ${maxPayloadBytes}`,
          [{ pointer: "/payload", message: "too large" }],
        ),
      );
      return;
    }
    if (parsed.kind === "set-result") {
      this.#settleWrite(parsed, message, layout.errors(thing));
      return;
    }
    let report: Report;
    try {
      report = reportOf(parsed, message.payload);
    } catch (error) {
      this.#refuse(layout.errors(thing), message, error);
      return;
    }
    return this.#batches.take(thing, message.publisher?.name ?? "mqtt", report, (error) =>
      this.#refuse(layout.errors(thing), message, error),
    );
  }

  #settleWrite(topic: GatewayTopic, message: InboundMessage, errors: string): void {
    let answer: unknown;
    try {
      answer = parseJsonStrict(utf8Text(message.payload));
    } catch (error) {
      this.#refuse(errors, message, error);
      return;
    }
    const ok =
      isObject(answer) && (answer.ok === true || (answer.ok === undefined && answer.error === undefined));
    const failure = isObject(answer) && (answer.ok === false || answer.error !== undefined);
    if (!ok && !failure) {
      this.#refuse(
        errors,
        message,
        new ValidationError('A write result is {"ok": true} or {"ok": false, "error": "why"}', [
          { pointer: "", message: "must be an object" },
        ]),
      );
      return;
    }
    const waiters = this.#writes.get(writeKey(topic.thing, topic.name));
    if (waiters === undefined) return;
    for (const waiter of waiters) {
      if (ok) waiter.resolve({ confirmedBy: "result" });
      else {
        const why =
          isObject(answer) && typeof answer.error === "string"
            ? answer.error
            : "the device refused the write";
        waiter.reject(
          new BindingError(`${topic.thing}: ${why}`, topic.thing, {
            reason: "status",
            href: message.topic,
            body: why,
          }),
        );
      }
    }
  }

  /** Tells the device why its message changed nothing: an RFC 9457 problem on its errors topic. */
  #refuse(errorsTopic: string, message: InboundMessage, error: unknown): void {
    const problem = toProblem(error);
    if (problem.status >= 500)
      this.#options.logger.error({ err: error, topic: message.topic }, "MQTT: a report failed");
    else
      this.#options.logger.debug(
        { topic: message.topic, detail: problem.detail },
        "MQTT: a report was refused",
      );
    const body = { ...problem, instance: message.topic };
    delete body.validationErrors;
    this.#link.publish(errorsTopic, Buffer.from(JSON.stringify(body), "utf8"), { qos: 0 });
  }
}

function writeKey(thing: string, name: string): string {
  return `${thing}\u0000${name}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * A device's payload as a report: a JSON value, or `{"value": …, "at": "RFC 3339"}` (an object
 * whose members are `value` and optionally `at`, nothing else).
 */
export function reportOf(topic: GatewayTopic, payload: Buffer): Report {
  const text = utf8Text(payload);
  if (text.trim() === "") {
    throw new ValidationError('The payload is empty: send a JSON value, or {"value": …, "at": …}', [
      { pointer: "", message: "must be JSON" },
    ]);
  }
  const parsed = parseJsonStrict(text);
  let value = parsed;
  let at: string | undefined;
  if (
    isObject(parsed) &&
    "value" in parsed &&
    Object.keys(parsed).every((k) => k === "value" || k === "at")
  ) {
    value = parsed.value;
    if (parsed.at !== undefined) {
      if (typeof parsed.at !== "string" || !isRfc3339Time(parsed.at)) {
        throw new ValidationError('"at" must be an RFC 3339 date-time such as 2024-05-01T12:00:00.000Z', [
          { pointer: "/at", message: "must be an RFC 3339 date-time" },
        ]);
      }
      at = parsed.at;
    }
  }
  return {
    kind: topic.kind === "event" ? "emitted" : "reported",
    affordance: topic.name,
    ...(value === undefined ? {} : { value }),
    ...(at === undefined ? {} : { at }),
  };
}
