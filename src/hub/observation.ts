// Observation: the hub keeps the observable properties and the events of every registered Thing
// observed through the bindings (pushed where a form offers it, polled otherwise) and records
// what it sees as `reported` / `emitted` Changes; a Thing that goes away and comes back is
// reconnected with exponential backoff and gets one `unreachable` / `reachable` Change per turn.
import type { Logger } from "pino";
import {
  ConflictError,
  NotFoundError,
  UnavailableError,
  ValidationError,
  canonicalJson,
  compileDataSchema,
  contentHash,
  sha256Hex,
  type BindingError,
  type Cause,
  type Change,
  type DataSchema,
  type DataSchemaCheck,
  type RegisteredThingDescription,
} from "../core/index.js";
import {
  MAX_RETRY_AFTER_MS,
  backoffDelay,
  retryAfterOf,
  bindingFailure,
  targetFor,
  uriScheme,
  type Binding,
  type BindingSet,
  type Delivery,
  type Secrets,
  type Subscription,
  type Target,
} from "../bindings/index.js";
import type { Bus } from "../bus/index.js";
import type { Store } from "../store/index.js";
import { REACHABILITY_STREAM_KINDS, latestReachability } from "./history.js";
import { ofRegistration } from "./registration.js";
import type { Report } from "./ingest.js";

/** The actor of every Change the observer records. */
export const OBSERVER_ACTOR = "hub:observer";

/** TD extension terms (on an affordance, or on the Thing for all of its affordances). */
export const POLL_INTERVAL_TERM = "hyperthings:pollInterval";
export const RECORD_TERM = "hyperthings:record";

export interface ObservationOptions {
  /** Polling interval of an affordance whose TD names none, in ms. */
  readonly pollIntervalMs: number;
  /** Reconnecting to a Thing that went away: first delay and cap, in ms (doubling, with jitter). */
  readonly reconnectMs: number;
  readonly maxReconnectMs: number;
  /** Jitter source, for tests. */
  readonly random?: () => number;
}

export interface ObservationContext {
  readonly store: Store;
  readonly bus: Bus;
  readonly bindings: Pick<BindingSet, "schemes" | "bindingFor">;
  /** The Thing's secrets, opened, by security definition name. */
  readonly secrets: (td: RegisteredThingDescription) => Promise<Secrets>;
  readonly ingest: (thing: string, reports: readonly Report[], cause: Cause) => Promise<Change[]>;
  readonly logger: Logger;
}

/** Values waiting for their commit, per Thing; beyond this the oldest are dropped (memory bound). */
const MAX_PENDING = 1000;
/** Changes of one Thing committed in one ingest call, at most. */
const MAX_BATCH = 500;
/** Things connecting at once, at most: a fleet coming up does not open every socket together. */
const MAX_CONNECTING = 64;
/**
 * How long a connecting Thing keeps its place among those: one that has not answered by then is
 * waiting on the Thing (a device that accepts and never answers holds its first read for the
 * headers timeout, three times), not using the hub, and the Things queued behind it go ahead.
 */
const CONNECTING_HOLD_MS = 2000;
/** A full write queue (UnavailableError) is retried this many times before values are dropped. */
const BUSY_ATTEMPTS = 5;
const MIN_POLL_MS = 100;
const MAX_POLL_MS = 86_400_000;

export type RecordPolicy = "every" | "change";

/** What to observe of one affordance, read from the TD once per version. */
interface Plan {
  readonly kind: "property" | "event";
  readonly name: string;
  readonly record: RecordPolicy;
  readonly pollIntervalMs: number;
  readonly check: DataSchemaCheck | undefined;
}

interface Pending {
  readonly report: Report;
  readonly via: string;
  readonly resolve: () => void;
}

/** A counting semaphore whose places are given up when their task ends or `holdMs` passes. */
export class Limiter {
  private active = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly max: number,
    private readonly holdMs: number,
  ) {}

  async run<T>(task: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((resolve) => this.waiting.push(resolve));
    this.active++;
    let held = true;
    const release = (): void => {
      if (!held) return;
      held = false;
      this.active--;
      this.waiting.shift()?.();
    };
    const timer = setTimeout(release, this.holdMs);
    timer.unref();
    try {
      return await task();
    } finally {
      clearTimeout(timer);
      release();
    }
  }
}

/** A failure that says the Thing (or the way to it) is away, rather than that a form is wrong. */
function isOutage(error: unknown): boolean {
  const failure = bindingFailure(error);
  if (failure === undefined) return false;
  if (failure.reason === "unreachable" || failure.reason === "timeout") return true;
  return failure.reason === "status" && failure.status !== undefined && failure.status >= 500;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

function validPoll(value: unknown): value is number {
  return typeof value === "number" && Number.isInteger(value) && value >= MIN_POLL_MS && value <= MAX_POLL_MS;
}

/**
 * A property's polling interval as its TD asks for it: its `hyperthings:pollInterval`, else the
 * Thing's; undefined when neither gives a valid one (the binding's default then applies).
 */
export function pollIntervalOf(
  td: RegisteredThingDescription,
  property: Record<string, unknown>,
): number | undefined {
  for (const where of [property, td as Record<string, unknown>]) {
    const value = where[POLL_INTERVAL_TERM];
    if (validPoll(value)) return value;
  }
  return undefined;
}

/** The observer's plans for a TD: its observable properties and its events. */
export function observationPlans(
  td: RegisteredThingDescription,
  options: Pick<ObservationOptions, "pollIntervalMs">,
  warn: (message: string) => void = () => undefined,
): Plan[] {
  const pollOf = (where: Record<string, unknown>, path: string, fallback: number): number => {
    const value = where[POLL_INTERVAL_TERM];
    if (value === undefined) return fallback;
    if (validPoll(value)) return value;
    warn(`${path}/${POLL_INTERVAL_TERM} must be whole milliseconds from ${MIN_POLL_MS} to ${MAX_POLL_MS}`);
    return fallback;
  };
  const recordOf = (where: Record<string, unknown>, path: string, fallback: RecordPolicy): RecordPolicy => {
    const value = where[RECORD_TERM];
    if (value === undefined) return fallback;
    if (value === "every" || value === "change") return value;
    warn(`${path}/${RECORD_TERM} must be "every" or "change"`);
    return fallback;
  };
  const thingPoll = pollOf(td, "", options.pollIntervalMs);
  const thingRecord = recordOf(td, "", "change");
  const plans: Plan[] = [];
  for (const [name, property] of Object.entries(td.properties ?? {})) {
    if (property.observable !== true || property.writeOnly === true) continue;
    const path = `/properties/${name}`;
    plans.push({
      kind: "property",
      name,
      record: recordOf(property, path, thingRecord),
      pollIntervalMs: pollOf(property, path, thingPoll),
      check: compiled(property, warn, path),
    });
  }
  for (const [name, event] of Object.entries(td.events ?? {})) {
    // An event is an occurrence, not a state: every one is recorded.
    plans.push({
      kind: "event",
      name,
      record: "every",
      pollIntervalMs: thingPoll,
      check: event.data === undefined ? undefined : compiled(event.data, warn, `/events/${name}/data`),
    });
  }
  return plans;
}

function compiled(
  schema: DataSchema,
  warn: (message: string) => void,
  path: string,
): DataSchemaCheck | undefined {
  try {
    return compileDataSchema(schema);
  } catch (error) {
    warn(`${path}: the schema cannot be compiled (${messageOf(error)}); values are not checked`);
    return undefined;
  }
}

/** Every registered Thing's observation, started and stopped as the directory changes. */
export class Observation {
  private readonly observers = new Map<string, ThingObserver>();
  /** Per Thing, the tail of its serialised lifecycle steps (start, restart, stop). */
  private readonly steps = new Map<string, Promise<void>>();
  private readonly limiter = new Limiter(MAX_CONNECTING, CONNECTING_HOLD_MS);
  private unsubscribe: (() => void) | undefined;
  private scan: Promise<void> = Promise.resolve();
  private closed = false;
  /** Between start and stop. */
  private running = false;

  constructor(
    private readonly context: ObservationContext,
    private readonly options: ObservationOptions,
  ) {}

  /**
   * Follows the directory from now on, and starts observing every Thing it already holds. Until
   * then, and after `stop`, nothing is observed.
   */
  start(): void {
    if (this.closed || this.running) return;
    this.running = true;
    this.unsubscribe = this.context.bus.subscribe((change) => {
      if (change.kind === "described" || change.kind === "removed") this.sync(change.thing);
    });
    this.scan = (async () => {
      for await (const record of this.context.store.scanThings()) {
        if (!this.running) return;
        this.sync(record.id);
      }
    })().catch((err: unknown) => this.context.logger.error({ err }, "observation could not list the Things"));
  }

  /**
   * Stops observing every Thing, once what they received is recorded; `start` begins again (each
   * Thing resuming from the Log). A replica that no longer holds the observation role does this.
   */
  async stop(): Promise<void> {
    this.running = false;
    this.unsubscribe?.();
    this.unsubscribe = undefined;
    await this.settled();
    await Promise.all([...this.observers.values()].map((o) => o.stop()));
    this.observers.clear();
  }

  /** Brings one Thing's observation in line with the directory; `restart` even if its TD is unchanged. */
  sync(thing: string, restart = false): void {
    const previous = this.steps.get(thing) ?? Promise.resolve();
    const step = previous
      .then(() => this.apply(thing, restart))
      .catch((err: unknown) => this.context.logger.error({ err, thing }, "observation failed"));
    this.steps.set(thing, step);
    void step.then(() => {
      if (this.steps.get(thing) === step) this.steps.delete(thing);
    });
  }

  /** Resolves once every start, restart and stop asked for so far is done. */
  async settled(): Promise<void> {
    await this.scan;
    while (this.steps.size > 0) await Promise.all([...this.steps.values()]);
  }

  /** The Things observed now, with the affordances observed and whether each Thing is reachable. */
  status(): { thing: string; reachable: boolean; observing: string[] }[] {
    return [...this.observers.values()].map((o) => o.status());
  }

  async close(): Promise<void> {
    this.closed = true;
    await this.stop();
  }

  private async apply(thing: string, restart: boolean): Promise<void> {
    if (!this.running) return;
    const record = await this.context.store.getThing(thing);
    const current = this.observers.get(thing);
    const hash = record === undefined ? undefined : contentHash(record.td);
    if (current !== undefined && !restart && current.hash === hash) return;
    if (current !== undefined) {
      this.observers.delete(thing);
      await current.stop();
    }
    if (record === undefined || hash === undefined || !this.running) return;
    const log = this.context.logger.child({ thing });
    const plans = observationPlans(record.td, this.options, (message) => log.warn(message));
    if (plans.length === 0) return;
    const observer = new ThingObserver(record.td, hash, plans, this.context, this.options, this.limiter, log);
    this.observers.set(thing, observer);
    await observer.start();
  }
}

interface Opened {
  readonly plan: Plan;
  readonly target: Target;
  readonly binding: Binding;
}

/** One Thing's observation: its subscriptions, its reachability, and its queue of values to record. */
class ThingObserver {
  private readonly id: string;
  private stopped = false;
  /** Bumped on every (re)connection and stop: callbacks of an older one are ignored. */
  private generation = 0;
  private subscriptions: { plan: Plan; subscription: Subscription }[] = [];
  private timer: NodeJS.Timeout | undefined;
  /**
   * Reconnections since the Thing last proved itself: a value received, or subscriptions that
   * stayed up for the longest backoff. A subscription that opens and fails again at once does
   * not start the backoff over (it would swing between unreachable and reachable every second).
   */
  private attempt = 0;
  /** When the subscriptions now running opened (performance.now()). */
  private openedAt: number | undefined;
  /** As last recorded in the Log. */
  private reachable = true;
  /** Affordances given up on (no usable form, no secret, a refusal) until the TD or secrets change. */
  private readonly broken = new Set<string>();
  /** The hash of the last value recorded per property, for "only on change". */
  private readonly last = new Map<string, string>();
  /** Per affordance, problems already logged (one line per problem, not per value). */
  private readonly logged = new Set<string>();
  private queue: Pending[] = [];
  private flushing = false;
  private drained: (() => void)[] = [];
  private dropped = 0;

  constructor(
    private readonly td: RegisteredThingDescription,
    readonly hash: string,
    private readonly plans: readonly Plan[],
    private readonly context: ObservationContext,
    private readonly options: ObservationOptions,
    private readonly limiter: Limiter,
    private readonly log: Logger,
  ) {
    this.id = td.id;
  }

  status(): { thing: string; reachable: boolean; observing: string[] } {
    return {
      thing: this.id,
      reachable: this.reachable,
      observing: this.subscriptions.map(({ plan }) => `${plan.kind}:${plan.name}`),
    };
  }

  async start(): Promise<void> {
    // Resume from the Log: the last recorded values and reachability, so a restarted hub does
    // not record again what it already has.
    const streams = await this.context.store.streamsAt(this.id, undefined, [
      "reported",
      ...REACHABILITY_STREAM_KINDS,
    ]);
    // Of its registration only: one registered again records its first readings, even those its
    // old registration had.
    for (const stream of ofRegistration(streams))
      if (stream.kind === "reported")
        this.last.set(stream.affordance, valueHash("reported", stream.latest.value));
    // Only an outage the observer recorded is its own to end: a Homie device the gateway recorded
    // lost (cause mqtt:homie) is not back because its broker accepts a subscription. An outage of
    // the Thing's earlier registration (before it was removed) is not its own either.
    const latest = latestReachability(streams);
    if (latest !== undefined)
      this.reachable = latest.kind === "reachable" || latest.cause.actor !== OBSERVER_ACTOR;
    this.connectLater(0);
  }

  /** Ends every subscription and timer, and waits for the values already received to be recorded. */
  async stop(): Promise<void> {
    this.stopped = true;
    this.generation++;
    clearTimeout(this.timer);
    const subscriptions = this.subscriptions;
    this.subscriptions = [];
    await closeAll(subscriptions.map((s) => s.subscription));
    if (this.flushing) await new Promise<void>((resolve) => this.drained.push(resolve));
  }

  private connectLater(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.limiter
        .run(() => this.connect())
        .catch((err: unknown) => this.log.error({ err }, "observation could not connect"));
    }, delayMs);
    this.timer.unref();
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    const generation = ++this.generation;
    const secrets = await this.context.secrets(this.td);
    const { bindings } = this.context;
    const wanted: Opened[] = [];
    for (const plan of this.plans) {
      if (this.broken.has(keyOf(plan))) continue;
      try {
        const target = targetFor(this.td, {
          op: plan.kind === "property" ? "observeproperty" : "subscribeevent",
          affordance: { kind: plan.kind, name: plan.name },
          secrets,
          schemes: bindings.schemes,
          pollIntervalMs: plan.pollIntervalMs,
        });
        wanted.push({ plan, target, binding: bindings.bindingFor(target) });
      } catch (error) {
        this.giveUp(plan, error);
      }
    }
    if (wanted.length === 0) return;
    const results = await Promise.allSettled(
      wanted.map((w) => this.openThroughForms(w, generation, secrets)),
    );
    const opened: { plan: Plan; subscription: Subscription }[] = [];
    let outage: unknown;
    let denied: unknown;
    let via: string | undefined;
    results.forEach((result, i) => {
      const plan = wanted[i]?.plan;
      if (plan === undefined) return;
      if (result.status === "fulfilled") {
        opened.push({ plan, subscription: result.value.subscription });
        via ??= viaOf(result.value.target.href);
      } else if (isOutage(result.reason)) outage ??= result.reason;
      else {
        if (bindingFailure(result.reason)?.reason === "address-denied") denied ??= result.reason;
        this.giveUp(plan, result.reason);
      }
    });
    if (this.stopped || generation !== this.generation) {
      await closeAll(opened.map((o) => o.subscription));
      return;
    }
    if (outage !== undefined) {
      await closeAll(opened.map((o) => o.subscription));
      this.wentAway(outage, generation);
      return;
    }
    // The address policy does not change while the hub runs: say once why, and do not retry.
    if (opened.length === 0 && denied !== undefined) {
      if (this.reachable) {
        this.reachable = false;
        void this.enqueue(
          { kind: "unreachable", value: messageOf(denied) },
          viaOf(bindingFailure(denied)?.href),
        );
      }
      return;
    }
    this.subscriptions = opened;
    this.openedAt = performance.now();
    if (!this.reachable) {
      this.reachable = true;
      void this.enqueue(
        { kind: "reachable", value: "the Thing answers again" },
        via ?? viaOf(wanted[0]?.target.href),
      );
    }
    if (opened.length > 0) {
      this.log.debug({ observing: opened.map((o) => keyOf(o.plan)) }, "observing");
    }
  }

  /**
   * Opens the plan's subscription through its first form and, when the Thing cannot be observed
   * through it because it is away (an outage: refused, unknown host, no answer in time, a 5xx) or
   * its address is denied, through the affordance's next form for the operation, in TD order, as
   * commands do (docs/bindings.md, "The next form"). Observing changes nothing on the Thing, so a
   * form tried in vain costs nothing but the attempt. Every reconnection starts again from the
   * first form: the Thing's preferred way is taken back once it works at a reconnection. A refusal
   * by the Thing itself (a 4xx, an answer that is no event stream) is not taken elsewhere. When no
   * form is left, the failure thrown is an outage if any form had one (so it is retried later),
   * else the last one.
   */
  private async openThroughForms(
    first: Opened,
    generation: number,
    secrets: Secrets,
  ): Promise<{ subscription: Subscription; target: Target }> {
    let opened = first;
    let outage: unknown;
    for (;;) {
      let failure: unknown;
      try {
        return { subscription: await this.open(opened, generation), target: opened.target };
      } catch (error) {
        failure = error;
      }
      const reason = bindingFailure(failure)?.reason;
      if (isOutage(failure)) outage ??= failure;
      else if (reason !== "address-denied") throw failure;
      const { plan, target } = opened;
      if (this.stopped || generation !== this.generation || target.formIndex === undefined)
        throw outage ?? failure;
      let next: Target;
      try {
        next = targetFor(this.td, {
          op: target.op,
          affordance: { kind: plan.kind, name: plan.name },
          secrets,
          schemes: this.context.bindings.schemes,
          pollIntervalMs: plan.pollIntervalMs,
          after: target.formIndex,
        });
        opened = { plan, target: next, binding: this.context.bindings.bindingFor(next) };
      } catch {
        // No other form serves it (or its credentials are not for that address).
        throw outage ?? failure;
      }
      this.log.info(
        { affordance: plan.name, from: target.href, to: next.href, reason: messageOf(failure) },
        `cannot observe ${plan.kind} ${plan.name} through its form: trying its next one`,
      );
    }
  }

  private open({ plan, target, binding }: Opened, generation: number): Promise<Subscription> {
    const via = viaOf(target.href);
    const onValue = (value: unknown, delivery?: Delivery) =>
      generation === this.generation ? this.received(plan, via, value, delivery) : undefined;
    const onError = (error: BindingError) => {
      if (generation === this.generation) this.failed(plan, error, generation);
    };
    return plan.kind === "property"
      ? binding.observeProperty(target, onValue, onError)
      : binding.subscribeEvent(target, onValue, onError);
  }

  /**
   * A value from the Thing: checked, filtered by the record policy, queued for the Log. A property
   * value the binding read (a poll) is recorded `via` `read:<scheme>`, one the Thing pushed `via`
   * the scheme (docs/changes.md).
   */
  private received(plan: Plan, via: string, raw: unknown, delivery?: Delivery): Promise<void> | undefined {
    if (this.stopped) return undefined;
    this.attempt = 0;
    // Payloads of non-JSON types arrive as bytes; the Log keeps JSON, so they are kept as base64.
    const value = raw instanceof Uint8Array ? Buffer.from(raw).toString("base64") : raw;
    if (plan.kind === "property" && value === undefined) return undefined;
    const problems = value === undefined ? [] : (plan.check?.(value) ?? []);
    let report: Report;
    if (problems.length > 0) {
      const first = problems[0];
      report = {
        kind: "failed",
        affordance: plan.name,
        value: {
          reason: "invalid",
          message:
            `the Thing sent a value that does not fit the schema: ${first?.pointer || "the value"} ${first?.message ?? ""}`.trim(),
          errors: problems.slice(0, 10),
        },
      };
    } else {
      report = {
        kind: plan.kind === "property" ? "reported" : "emitted",
        affordance: plan.name,
        ...(value !== undefined && { value }),
      };
    }
    if (!this.reachable) {
      // A value proves the Thing is back: the Log says so before the value (a polled property's
      // first value arrives while its observation is still being opened, before `connect` ends).
      this.reachable = true;
      void this.enqueue({ kind: "reachable", value: "the Thing answers again" }, via);
    }
    if (plan.record === "change") {
      let hash: string;
      try {
        hash = valueHash(report.kind, value);
      } catch {
        hash = "";
      }
      if (hash !== "" && this.last.get(plan.name) === hash) return undefined;
      this.last.set(plan.name, hash);
    }
    return this.enqueue(report, report.kind === "reported" && delivery === "read" ? readVia(via) : via);
  }

  private failed(plan: Plan, error: BindingError, generation: number): void {
    if (this.stopped) return;
    if (isOutage(error)) {
      this.lost(error, generation);
      return;
    }
    if (bindingFailure(error)?.ended === true) {
      this.giveUp(plan, error);
      return;
    }
    this.logOnce(plan, error, "warn");
  }

  /**
   * The Thing went away while observed: stop everything and try again later — at once when one of
   * its affordances has another form, which may serve where this one broke (the Thing is
   * unreachable only when none does), unless the subscriptions had just opened (a Thing that
   * breaks them at once is retried with backoff, not in a loop).
   */
  private lost(error: unknown, generation: number): void {
    if (this.stopped || generation !== this.generation) return;
    this.generation++;
    const subscriptions = this.subscriptions;
    this.subscriptions = [];
    const upMs = this.openedAt === undefined ? 0 : performance.now() - this.openedAt;
    void closeAll(subscriptions.map((s) => s.subscription)).then(() => {
      if (this.severalForms() && upMs >= this.options.reconnectMs) this.connectLater(0);
      else this.wentAway(error, this.generation);
    });
  }

  /** Whether an affordance observed has more than one form (another way to the Thing). */
  private severalForms(): boolean {
    return this.plans.some((plan) => {
      const group = plan.kind === "property" ? this.td.properties : this.td.events;
      const affordance =
        group !== undefined && Object.hasOwn(group, plan.name) ? group[plan.name] : undefined;
      return (affordance?.forms.length ?? 0) > 1;
    });
  }

  private wentAway(error: unknown, generation: number): void {
    if (this.stopped || generation !== this.generation) return;
    const upMs = this.openedAt === undefined ? 0 : performance.now() - this.openedAt;
    this.openedAt = undefined;
    if (upMs >= this.options.maxReconnectMs) this.attempt = 0;
    if (this.reachable) {
      this.reachable = false;
      this.log.info({ reason: messageOf(error) }, "the Thing is unreachable");
      void this.enqueue({ kind: "unreachable", value: messageOf(error) }, viaOf(bindingFailure(error)?.href));
    }
    const backoff = backoffDelay(
      this.attempt++,
      { baseDelayMs: this.options.reconnectMs, maxDelayMs: this.options.maxReconnectMs },
      this.options.random,
    );
    // A 503 with Retry-After (a Thing in maintenance): not asked again before it said.
    this.connectLater(Math.max(backoff, Math.min(retryAfterOf(error), MAX_RETRY_AFTER_MS)));
  }

  private giveUp(plan: Plan, error: unknown): void {
    this.broken.add(keyOf(plan));
    const level =
      // No credentials set for the Thing (a 409, nothing sent) is a state an admin chose, not a fault.
      error instanceof NotFoundError ? "debug" : error instanceof ConflictError ? "info" : "warn";
    this.logOnce(plan, error, level);
    // The Thing itself refused (a 401 after its password changed, a 404, an answer that is no
    // event stream): the Log says the affordance is no longer observed, and why, rather than
    // its history simply stopping. A denied address is recorded as `unreachable` instead.
    const failure = bindingFailure(error);
    if (failure === undefined || failure.reason === "address-denied" || this.stopped) return;
    void this.enqueue(
      {
        kind: "failed",
        affordance: plan.name,
        value: {
          reason: failure.reason,
          message: `not observed any more: ${messageOf(error)}`,
          ...(failure.status !== undefined && { status: failure.status }),
          ...(failure.body !== undefined && { body: failure.body }),
        },
      },
      viaOf(failure.href),
    );
  }

  private logOnce(plan: Plan, error: unknown, level: "debug" | "info" | "warn"): void {
    const message = messageOf(error);
    const key = `${keyOf(plan)}\u0000${message}`;
    if (this.logged.has(key)) return;
    if (this.logged.size >= 100) this.logged.clear();
    this.logged.add(key);
    this.log[level]({ affordance: plan.name, reason: message }, `not observing ${plan.kind} ${plan.name}`);
  }

  // -------------------------------------------------------------------------------------------
  // Recording: one queue per Thing, in order, batched; resolves once committed (or dropped), so a
  // binding that acknowledges deliveries (MQTT QoS 1) acknowledges only what the Log holds.

  private enqueue(report: Report, via: string): Promise<void> {
    return new Promise<void>((resolve) => {
      if (this.queue.length >= MAX_PENDING) {
        this.queue.shift()?.resolve();
        if (this.dropped++ % MAX_PENDING === 0) {
          this.log.warn(
            { dropped: this.dropped },
            "values arrive faster than they are recorded; dropping the oldest",
          );
        }
      }
      this.queue.push({ report, via, resolve });
      if (!this.flushing) {
        this.flushing = true;
        void this.flush();
      }
    });
  }

  private async flush(): Promise<void> {
    while (this.queue.length > 0) {
      const via = this.queue[0]?.via;
      let n = 0;
      while (n < this.queue.length && n < MAX_BATCH && this.queue[n]?.via === via) n++;
      const batch = this.queue.splice(0, n);
      await this.commit(batch, via ?? "hub");
      for (const pending of batch) pending.resolve();
    }
    this.flushing = false;
    for (const resolve of this.drained.splice(0)) resolve();
  }

  private async commit(batch: Pending[], via: string): Promise<void> {
    const cause: Cause = { actor: OBSERVER_ACTOR, via };
    const reports = batch.map((p) => p.report);
    for (let attempt = 0; ; attempt++) {
      try {
        await this.context.ingest(this.id, reports, cause);
        return;
      } catch (error) {
        if (error instanceof UnavailableError && attempt + 1 < BUSY_ATTEMPTS) {
          await new Promise((resolve) =>
            setTimeout(resolve, (error.retryAfter ?? 0.1) * 1000 * (attempt + 1)),
          );
          continue;
        }
        // Not recorded: the next equal value must be recorded, not filtered out.
        for (const report of reports)
          if (report.affordance !== undefined) this.last.delete(report.affordance);
        if (error instanceof NotFoundError) return; // removed meanwhile: its stop is on the way
        if (error instanceof ValidationError && reports.length > 1) {
          // One report no longer fits (the TD changed meanwhile): record the others.
          for (const report of reports) {
            await this.context.ingest(this.id, [report], cause).catch((err: unknown) => {
              this.log.warn({ err, affordance: report.affordance }, "a value was not recorded");
            });
          }
          return;
        }
        this.log.warn({ err: error, count: reports.length }, "values were not recorded");
        return;
      }
    }
  }
}

function keyOf(plan: Plan): string {
  return `${plan.kind}:${plan.name}`;
}

function viaOf(href: string | undefined): string {
  return (href === undefined ? undefined : uriScheme(href)) ?? "hub";
}

/** The `via` of a value the hub read from the Thing over `scheme` (docs/changes.md, "How a value was got"). */
export function readVia(scheme: string): string {
  return `read:${scheme}`;
}

/**
 * Whether a property's values are recorded every time or only when they differ from the last one
 * recorded: its `hyperthings:record`, else the Thing's, else "change" (a wrong value counts as absent).
 */
export function recordPolicyOf(
  td: RegisteredThingDescription,
  property: Record<string, unknown>,
): RecordPolicy {
  for (const where of [property, td as Record<string, unknown>]) {
    const value = where[RECORD_TERM];
    if (value === "every" || value === "change") return value;
  }
  return "change";
}

function valueHash(kind: string, value: unknown): string {
  return sha256Hex(`${kind}\u0000${value === undefined ? "" : canonicalJson(value)}`);
}

async function closeAll(subscriptions: readonly Subscription[]): Promise<void> {
  await Promise.all(subscriptions.map((s) => s.close().catch(() => undefined)));
}
