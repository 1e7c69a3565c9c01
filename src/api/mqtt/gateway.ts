// The MQTT gateway (docs/mqtt.md): devices publish state and events on the documented topics and
// each message becomes a Change through `hub.ingest`, acknowledged after commit; a refused
// message changes nothing and its reason goes to the device's errors topic; every committed
// Change is republished; writes go to devices on `…/set`. It talks to the hub only through hub
// methods (ingest, follow).
import { randomBytes } from "node:crypto";
import type { Logger } from "pino";
import {
  BindingError,
  ConflictError,
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
  /**
   * How long a write that timed out (or that a report confirmed) keeps its place in its
   * property's queue, so that its late answer on `…/set/result` is taken by it and not by the
   * next write (default LATE_ANSWER_MS).
   */
  readonly lateAnswerMs?: number;
}

/** How a write to a device ended. */
export interface WriteOutcome {
  /** `result`: the device answered on `…/set/result`; `reported`: it reported the value written. */
  readonly confirmedBy: "result" | "reported";
}

/**
 * A write sent to a device, in its property's queue in the order sent (docs/mqtt.md, Writes):
 * `waiting` for its answer; `late` (timed out) or `reported` (a report confirmed it), it keeps its
 * place for a while, so that the answer on `…/set/result` that may still come is taken by it.
 */
interface PendingWrite {
  /** The value written, as canonical JSON. */
  readonly value: string;
  /** MQTT 5 Correlation Data sent with it (external broker); undefined on the embedded broker. */
  readonly correlation: Buffer | undefined;
  state: "waiting" | "late" | "reported";
  /** Takes it out of its queue once it has waited long enough for a late answer. */
  expiry?: NodeJS.Timeout;
  resolve(outcome: WriteOutcome): void;
  reject(error: Error): void;
}

const MAX_PENDING_WRITES = 10_000;
/** How long a write no longer waited for keeps its place for its late answer, by default. */
export const LATE_ANSWER_MS = 60_000;
/** Writes no longer waited for kept per property: past this, the oldest is forgotten. */
const MAX_LATE_WRITES = 100;
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
  /** By Thing and property: the writes sent, oldest first (MQTT keeps their order on one topic). */
  readonly #writes = new Map<string, PendingWrite[]>();
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
    for (const queue of this.#writes.values()) {
      for (const write of queue) {
        clearTimeout(write.expiry);
        if (write.state === "waiting")
          write.reject(new BindingError("The MQTT gateway stopped before the device answered"));
      }
    }
    this.#writes.clear();
  }

  /**
   * Sends a write to a device on `…/properties/{name}/set` (QoS 1, the value as JSON; on an
   * external broker with MQTT 5 Correlation Data and Response Topic `…/set/result`) and waits
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
    // The embedded broker speaks MQTT 3.1.1, which has no correlation data: order alone tells.
    const correlation = this.#link.kind === "external" ? randomBytes(16) : undefined;
    let write: PendingWrite | undefined;
    const answered = new Promise<WriteOutcome>((resolve, reject) => {
      write = { value: canonicalJson(value), correlation, state: "waiting", resolve, reject };
    });
    if (write === undefined) throw new Error("unreachable");
    const pending = write;
    let queue = this.#writes.get(key);
    if (queue === undefined) this.#writes.set(key, (queue = []));
    queue.push(pending);
    this.#pendingWrites++;
    const timer = setTimeout(() => {
      // It keeps its place: the answer the device may still send is its own, not the next write's.
      this.#retire(key, pending, "late");
      pending.reject(
        new BindingError(`${thing}: no answer to the write of ${name} in ${timeoutMs} ms`, thing, {
          reason: "timeout",
          href: topic,
        }),
      );
    }, timeoutMs);
    try {
      const sent = this.#link.publish(topic, Buffer.from(text, "utf8"), {
        qos: 1,
        ...(correlation === undefined
          ? {}
          : { correlation: { data: correlation, responseTopic: `${topic}/result` } }),
      });
      if (!sent) {
        this.#forget(key, pending);
        throw new BindingError(`${thing}: the broker did not take the write of ${name}`, thing, {
          reason: "unreachable",
          href: topic,
        });
      }
      return await answered;
    } finally {
      clearTimeout(timer);
      this.#pendingWrites--;
    }
  }

  /** A write no longer waited for keeps its place in its queue for a while, for its late answer. */
  #retire(key: string, write: PendingWrite, state: "late" | "reported"): void {
    write.state = state;
    const queue = this.#writes.get(key);
    if (queue === undefined) return;
    const retired = queue.filter((w) => w.state !== "waiting");
    if (retired.length > MAX_LATE_WRITES && retired[0] !== undefined) this.#forget(key, retired[0]);
    write.expiry = setTimeout(() => this.#forget(key, write), this.#options.lateAnswerMs ?? LATE_ANSWER_MS);
    write.expiry.unref();
  }

  /** Takes a write out of its queue. */
  #forget(key: string, write: PendingWrite): void {
    clearTimeout(write.expiry);
    const queue = this.#writes.get(key);
    if (queue === undefined) return;
    const index = queue.indexOf(write);
    if (index >= 0) queue.splice(index, 1);
    if (queue.length === 0) this.#writes.delete(key);
  }

  #republish(change: Change): void {
    // On the embedded broker with no subscriber at all, not even the topic is looked up.
    if (this.#link.wantsAny?.() !== false) this.#publishChange(change);
    if (change.kind === "removed") this.#link.disconnectDevice?.(change.thing);
    if (change.kind === "reported" && change.affordance !== undefined && this.#writes.size > 0) {
      // A report confirms the oldest write of its value still waited for; that write keeps its
      // place, since the device may answer it on `…/set/result` as well.
      const key = writeKey(change.thing, change.affordance);
      const value = canonicalJson(change.value);
      const write = this.#writes.get(key)?.find((w) => w.state === "waiting" && w.value === value);
      if (write !== undefined) {
        this.#retire(key, write, "reported");
        write.resolve({ confirmedBy: "reported" });
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

  /**
   * A device's answer on `…/set/result` (docs/mqtt.md, Writes): the write whose Correlation Data
   * it echoes (MQTT 5); else the oldest write of its `value`, when it gives one; else the oldest
   * write sent. Writes before it that are no longer waited for are done with (the device answers
   * in the order it received them); one that timed out takes its late answer, and nothing else.
   */
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
    if (!isObject(answer) || (!ok && !failure)) {
      this.#refuse(
        errors,
        message,
        new ValidationError('A write result is {"ok": true} or {"ok": false, "error": "why"}', [
          { pointer: "", message: "must be an object" },
        ]),
      );
      return;
    }
    const key = writeKey(topic.thing, topic.name);
    const queue = this.#writes.get(key) ?? [];
    const value = "value" in answer ? canonicalJson(answer.value) : undefined;
    const correlation = message.correlationData;
    const index =
      correlation !== undefined
        ? queue.findIndex((w) => w.correlation?.equals(correlation) === true)
        : value !== undefined
          ? queue.findIndex((w) => w.value === value)
          : queue.length > 0
            ? 0
            : -1;
    const write = queue[index];
    if (write === undefined) {
      const which =
        correlation !== undefined
          ? "with its correlation data"
          : value !== undefined
            ? `of the value ${value}`
            : "at all";
      this.#refuse(
        errors,
        message,
        new ConflictError(
          `This result answers no write: the hub waits for no write of ${topic.name} ${which} (it may have waited too long for it)`,
        ),
      );
      return;
    }
    for (const before of queue.slice(0, index)) if (before.state !== "waiting") this.#forget(key, before);
    this.#forget(key, write);
    if (write.state === "late") {
      this.#options.logger.warn(
        { thing: topic.thing, affordance: topic.name, ok, value: write.value },
        "MQTT: a device answered a write after it timed out; the Log keeps it failed",
      );
      return;
    }
    if (write.state !== "waiting") return;
    const why =
      failure && typeof answer.error === "string"
        ? answer.error
        : failure
          ? "the device refused the write"
          : value !== undefined && value !== write.value
            ? `the device answered the write of ${write.value} with the value ${value}`
            : undefined;
    if (why === undefined) {
      write.resolve({ confirmedBy: "result" });
      return;
    }
    write.reject(
      new BindingError(`${topic.thing}: ${why}`, topic.thing, {
        reason: "status",
        href: message.topic,
        body: why,
      }),
    );
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
