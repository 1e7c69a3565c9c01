// Command and control through the hub: property reads and writes and action invocations on a
// Thing through its bindings, each validated first and recorded as Changes — desired / invoked,
// then completed or failed — linked by a correlation id in their cause.
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import {
  BindingError,
  NotFoundError,
  UnavailableError,
  ValidationError,
  canonicalJson,
  compileDataSchema,
  jsonLimitProblem,
  type ActionAffordance,
  type Cause,
  type Change,
  type DataSchema,
  type DataSchemaCheck,
  type PropertyAffordance,
  type RegisteredThingDescription,
  echoed,
  quoted,
} from "../core/index.js";
import {
  bindingFailure,
  targetFor,
  uriScheme,
  type ActionHandle,
  type BindingSet,
  type Operation,
  type Secrets,
  type Subscription,
  type Target,
} from "../bindings/index.js";
import type { Store } from "../store/index.js";
import type { IngestOptions, Report } from "./ingest.js";
import { pollIntervalOf, readVia, recordPolicyOf, type RecordPolicy } from "./observation.js";
import { ofRegistration } from "./registration.js";

export interface CommandOptions {
  /** Asking an asynchronous action's status resource: every this many ms… */
  readonly actionPollMs: number;
  /** …for at most this long, then the action is recorded as failed (timeout). */
  readonly actionTimeoutMs: number;
}

export interface CommandContext {
  readonly store: Store;
  readonly bindings: Pick<BindingSet, "schemes" | "bindingFor">;
  /** The registered, unexpired Thing, or NotFoundError. */
  readonly thing: (id: string) => Promise<{ td: RegisteredThingDescription; version: number }>;
  readonly secrets: (td: RegisteredThingDescription) => Promise<Secrets>;
  readonly ingest: (
    thing: string,
    reports: readonly Report[],
    cause: Cause,
    options?: IngestOptions,
  ) => Promise<Change[]>;
  readonly logger: Logger;
}

/**
 * Who asks, and through what: the cause of the Changes a command makes. A rollout or a rule also
 * names its release or rule, and may bring its own correlation (otherwise a fresh one is added).
 */
export type Requester = Pick<Cause, "actor" | "via" | "release" | "rule" | "correlation">;

/** Values for the URI variables the affordance or its TD declares (`uriVariablesFromQuery`). */
export type UriVariables = Readonly<Record<string, string | number | boolean>>;

/** A command's cause: who asked, one correlation for all its Changes, and its URI variables if any. */
function causeOf(requester: Requester, uriVariables: UriVariables = {}): Cause & { correlation: string } {
  const cause: Cause & { correlation: string } = {
    ...requester,
    correlation: requester.correlation ?? randomUUID(),
  };
  if (Object.keys(uriVariables).length > 0) cause.uriVariables = { ...uriVariables };
  return cause;
}

/**
 * The cause of a value read through the hub: `via` how the hub got it (`read:<scheme>` of the form
 * that answered), `surface` what the requester asked through (`http`, `graphql`, `rollout`).
 */
function readCause(cause: Cause, href: string): Cause {
  const { via, ...rest } = cause;
  return { ...rest, via: readVia(uriScheme(href) ?? "hub"), ...(via !== undefined && { surface: via }) };
}

/** An action's status as the hub keeps it (TD 1.1 ActionStatus). */
export interface InvocationStatus {
  readonly status: "running" | "completed" | "failed";
  readonly output?: unknown;
  readonly error?: unknown;
}

export type InvokeOutcome =
  | { readonly kind: "completed"; readonly output: unknown; readonly correlation: string }
  | { readonly kind: "running"; readonly correlation: string };

interface Invocation {
  readonly thing: string;
  readonly action: string;
  status: InvocationStatus;
}

/** Compiled schemas kept, at most (per Thing version and affordance). */
const MAX_CHECKS = 10_000;
/** Invocations of asynchronous actions whose status is kept in memory, at most. */
const MAX_INVOCATIONS = 10_000;
/** Changes searched for an invocation's outcome when it is no longer in memory. */
const INVOCATION_LOOKBACK = 1000;
/** Failed status queries in a row after which an asynchronous action is given up. */
const MAX_QUERY_FAILURES = 5;
/**
 * Values read through the hub whose recording has not committed yet, at most; past this, a read
 * answers only once its own value is recorded (backpressure instead of an unbounded queue).
 */
const MAX_PENDING_RECORDINGS = 1_000;

/** Seconds a client is told to wait before it retries a command the stopping hub gave up (a restart takes a few). */
const RESTART_RETRY_AFTER_S = 5;

/**
 * A command the hub stopped waiting for because it is stopping: a Thing that does not answer must
 * not hold the stop for its timeout. `sent` says whether the request had gone out (then the Thing
 * may have acted on it all the same).
 */
class Interrupted extends Error {
  constructor(readonly sent: boolean) {
    super(
      sent
        ? "the hub stopped before the Thing answered; whether it acted on the request is unknown"
        : "the hub stopped before the request was sent",
    );
    this.name = "Interrupted";
  }
}

/** The value of a `failed` Change: what went wrong, with the device's answer. */
export function failureValue(error: unknown): Record<string, unknown> {
  if (error instanceof Interrupted) {
    return { reason: "interrupted", message: error.message, ...(error.sent && { outcome: "unknown" }) };
  }
  const failure = bindingFailure(error);
  const message = error instanceof Error ? error.message : String(error);
  if (failure === undefined) return { reason: "error", message };
  return {
    reason: failure.reason,
    message,
    ...(failure.status !== undefined && { status: failure.status }),
    ...(failure.body !== undefined && { body: failure.body }),
    // Recorded as failed, but the Thing may have done it: its next values tell.
    ...(failure.outcome !== undefined && { outcome: failure.outcome }),
  };
}

/** Payloads of non-JSON types come as bytes; the Log and the API speak JSON, so bytes become base64. */
function asJson(value: unknown): unknown {
  return value instanceof Uint8Array ? Buffer.from(value).toString("base64") : value;
}

function own<T>(group: Record<string, T> | undefined, name: string): T | undefined {
  return group !== undefined && Object.hasOwn(group, name) ? group[name] : undefined;
}

/**
 * Whether an action's input schema asks for a value: anything but an object with no required
 * members, `null`, or a schema with no type (a TD cannot say "optional input" otherwise).
 */
function inputRequired(schema: DataSchema): boolean {
  const type = schema.type;
  if (type === undefined || type === "null") return false;
  if (type === "object") return Array.isArray(schema.required) && schema.required.length > 0;
  return true;
}

/** "an object with to, from", "a number", for the refusal of a missing input. */
function inputShape(schema: DataSchema): string {
  if (schema.type === "object") return `an object with ${(schema.required ?? []).join(", ")}`;
  const type = String(schema.type);
  return `${/^[aeiou]/.test(type) ? "an" : "a"} ${type}`;
}

export class Commands {
  private readonly checks = new Map<string, DataSchemaCheck>();
  private readonly invocations = new Map<string, Invocation>();
  private readonly running = new Set<Promise<void>>();
  /** Aborted when the hub stops: commands waiting on a Thing end at once (`abandon`). */
  private readonly stopping = new AbortController();
  /** Writes and invocations in flight, whose end the store must take before it closes. */
  private readonly inFlight = new Set<Promise<unknown>>();
  /** Per Thing, the last recording of a value read through the hub (they run one after another). */
  private readonly recordings = new Map<string, Promise<void>>();
  private pendingRecordings = 0;

  constructor(
    private readonly context: CommandContext,
    private readonly options: CommandOptions,
  ) {}

  /**
   * Reads a property from the Thing and records the value (`reported`). A read with URI variables
   * is answered but not recorded: what it answers depends on them, and is not the property's state.
   */
  async readProperty(
    thing: string,
    name: string,
    requester: Requester,
    uriVariables: UriVariables = {},
  ): Promise<unknown> {
    const { td, version } = await this.context.thing(thing);
    const property = this.property(td, name);
    if (property.writeOnly === true) {
      throw new ValidationError(`Property "${name}" of ${thing} is write-only`, [
        { pointer: "", message: "a write-only property cannot be read" },
      ]);
    }
    if (Object.keys(uriVariables).length > 0) {
      const target = await this.target(td, "readproperty", "property", name, uriVariables);
      return this.read(thing, td, version, property, name, requester, "never", target, uriVariables);
    }
    return this.read(thing, td, version, property, name, requester, recordPolicyOf(td, property));
  }

  /**
   * After a write: reads the property back and records what the Thing says as `reported` even
   * when the Log holds that value already, so that a Thing that took the write and kept another
   * value shows as such (and drifts from a release). Resolves once that is recorded, with the
   * value; with undefined, sending nothing, when the property cannot be read (write-only, or no
   * form to read it with), or was not written over HTTP: a write over MQTT is a message sent, which
   * the Thing takes when it gets to it, and a read right after it would say what it held before.
   */
  async readBack(thing: string, name: string, requester: Requester): Promise<{ value: unknown } | undefined> {
    const { td, version } = await this.context.thing(thing);
    const property = this.property(td, name);
    if (property.writeOnly === true) return undefined;
    let target: Target;
    try {
      const written = await this.target(td, "writeproperty", "property", name);
      if (!/^https?:$/.test(new URL(written.href).protocol)) return undefined;
      target = await this.target(td, "readproperty", "property", name);
    } catch (err) {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    }
    const value = await this.read(thing, td, version, property, name, requester, "every", target);
    await this.recorded(thing);
    return { value };
  }

  private async read(
    thing: string,
    td: RegisteredThingDescription,
    version: number,
    property: PropertyAffordance,
    name: string,
    requester: Requester,
    policy: RecordPolicy | "never",
    target?: Target,
    uriVariables?: UriVariables,
  ): Promise<unknown> {
    target ??= await this.target(td, "readproperty", "property", name);
    const first = target;
    let answer;
    try {
      ({ value: answer, target } = await this.exchange(() =>
        this.throughForms(td, first, uriVariables, (t) =>
          this.context.bindings.bindingFor(t).readProperty(t),
        ),
      ));
    } catch (error) {
      // A read changes nothing: one the hub gave up is not recorded.
      throw this.answerOf(error, `the read of ${name}`, thing);
    }
    const value = asJson(answer);
    const cause = causeOf(requester);
    // No value (a 204, an empty body) is an answer too: one a typed property's schema refuses.
    await this.checkAnswer(td, version, "property", name, property, value, cause, target.href);
    if (value === undefined || policy === "never") return value;
    // The answer is the device's value and goes out now; its `reported` Change is recorded after
    // (docs/bindings.md, "Reads through the hub"): a read acknowledges no change, so it does not
    // wait for a disk sync, and later commands on the Thing are recorded after it.
    const recording = this.recordRead(thing, name, value, policy, readCause(cause, target.href));
    if (this.pendingRecordings > MAX_PENDING_RECORDINGS) await recording;
    return value;
  }

  /**
   * Resolves once every value read through the hub so far (of `thing`, or of all Things) is
   * recorded, or its recording failed (and was logged).
   */
  async recorded(thing?: string): Promise<void> {
    if (thing !== undefined) {
      await this.recordings.get(thing);
      return;
    }
    await Promise.all([...this.recordings.values()]);
  }

  /**
   * Records a value read from a Thing as `reported`, after the recordings of earlier reads of the
   * same Thing. With `hyperthings:record` "change" (the default), as for observation, a value the
   * Log already holds as the property's latest is not recorded again. Never rejects: a recording
   * that fails is logged (the reader already has the value; no one was told it was recorded).
   */
  private recordRead(
    thing: string,
    name: string,
    value: unknown,
    policy: RecordPolicy,
    cause: Cause,
  ): Promise<void> {
    const previous = this.recordings.get(thing);
    this.pendingRecordings++;
    const record = async (): Promise<void> => {
      await previous;
      if (policy === "change" && (await this.isLatest(thing, name, value))) return;
      await this.context.ingest(thing, [{ kind: "reported", affordance: name, value }], cause);
    };
    const done: Promise<void> = record()
      .catch((err: unknown) =>
        this.context.logger.error(
          { err, thing, affordance: name },
          "a value read through the hub was not recorded",
        ),
      )
      .finally(() => {
        this.pendingRecordings--;
        if (this.recordings.get(thing) === done) this.recordings.delete(thing);
      });
    this.recordings.set(thing, done);
    return done;
  }

  /**
   * Checks the value against the property's schema (nothing is sent or recorded when it does not
   * fit), records it as `desired`, writes it, and records `completed` or `failed`.
   */
  async writeProperty(
    thing: string,
    name: string,
    value: unknown,
    requester: Requester,
    uriVariables: UriVariables = {},
  ): Promise<string> {
    const { td, version } = await this.context.thing(thing);
    const property = this.property(td, name);
    if (property.readOnly === true) {
      throw new ValidationError(`Property "${name}" of ${thing} is read-only`, [
        { pointer: "", message: "a read-only property cannot be written" },
      ]);
    }
    this.validate(td, version, "property", name, property, value, "value");
    const target = await this.target(td, "writeproperty", "property", name, uriVariables);
    // A form no binding serves is refused before anything is recorded.
    this.context.bindings.bindingFor(target);
    const cause = causeOf(requester, uriVariables);
    return this.tracked(async () => {
      this.refuseWhenStopping();
      // Values read before this write are recorded before it.
      await this.recordings.get(thing);
      await this.context.ingest(thing, [{ kind: "desired", affordance: name, value }], cause);
      try {
        await this.exchange(() =>
          this.throughForms(td, target, uriVariables, (t) =>
            this.context.bindings.bindingFor(t).writeProperty(t, value),
          ),
        );
      } catch (error) {
        await this.recordFailure(td, name, error, cause);
        throw this.answerOf(error, `the write of ${name}`, thing, cause.correlation);
      }
      // Sent with this TD: its end is recorded even if the Thing was removed meanwhile.
      await this.context.ingest(thing, [{ kind: "completed", affordance: name }], cause, { sentWith: td });
      return cause.correlation;
    });
  }

  /**
   * Checks the input against the action's schema, records `invoked`, invokes, and records
   * `completed` with the output or `failed`. An asynchronous action (TD 1.1) is followed by the
   * hub until it ends; its status is `invocationStatus(…, correlation)`.
   */
  async invokeAction(
    thing: string,
    name: string,
    input: unknown,
    requester: Requester,
    uriVariables: UriVariables = {},
  ): Promise<InvokeOutcome> {
    const { td, version } = await this.context.thing(thing);
    const action = own(td.actions, name);
    if (action === undefined) throw new NotFoundError(`Thing ${echoed(thing)} has no action ${quoted(name)}`);
    if (input === undefined && action.input !== undefined && inputRequired(action.input)) {
      // Sent without one, the Thing would refuse it, or worse, guess.
      throw new ValidationError(`The action ${name} takes an input: ${inputShape(action.input)}`, [
        { pointer: "", message: "an input is required" },
      ]);
    }
    if (input !== undefined && action.input !== undefined) {
      this.validate(td, version, "input", name, action.input, input, "input");
    }
    const target = await this.target(td, "invokeaction", "action", name, uriVariables);
    // A form no binding serves is refused before anything is recorded.
    this.context.bindings.bindingFor(target);
    if (this.invocations.size >= MAX_INVOCATIONS && !this.evictOne()) {
      throw new UnavailableError("Too many asynchronous actions are running; retry later", 5);
    }
    const cause = causeOf(requester, uriVariables);
    const outcome = await this.tracked(async () => {
      this.refuseWhenStopping();
      // Values read before this invocation are recorded before it.
      await this.recordings.get(thing);
      await this.context.ingest(
        thing,
        [{ kind: "invoked", affordance: name, ...(input !== undefined && { value: input }) }],
        cause,
      );
      let outcome;
      let used: Target;
      try {
        ({ value: outcome, target: used } = await this.exchange(() =>
          this.throughForms(td, target, uriVariables, (t) =>
            this.context.bindings.bindingFor(t).invokeAction(t, input),
          ),
        ));
      } catch (error) {
        await this.recordFailure(td, name, error, cause);
        throw this.answerOf(error, `the action ${name}`, thing, cause.correlation);
      }
      if (outcome.kind === "completed") {
        const output = asJson(outcome.output);
        await this.completed(td, version, name, action, output, cause, used.href);
        return { kind: "completed" as const, output };
      }
      return outcome;
    });
    if (outcome.kind === "completed") {
      return { kind: "completed", output: outcome.output, correlation: cause.correlation };
    }
    const invocation: Invocation = { thing, action: name, status: { status: "running" } };
    this.invocations.set(cause.correlation, invocation);
    const follow = this.follow(td, version, name, action, outcome.handle, invocation, cause).catch(
      (err: unknown) => this.context.logger.error({ err, thing, action: name }, "following an action failed"),
    );
    this.running.add(follow);
    void follow.finally(() => this.running.delete(follow));
    return { kind: "running", correlation: cause.correlation };
  }

  /**
   * Subscribes to the Thing's event, or observes its property, with URI variables, for a client
   * of the hub (the API's streams with `?name=value`): each value goes to `onValue` as JSON, or,
   * when it does not fit the affordance's schema, to `onError` (a `content` BindingError) instead.
   * Nothing is recorded: what the Thing sends depends on the variables, as a read's answer does;
   * the hub's own observation records the affordance's values, with the variables' defaults.
   * Opened through the affordance's next form when the Thing cannot be reached through its first,
   * as reads are; a BindingError when none opens. The caller closes the subscription.
   */
  async subscribe(
    thing: string,
    kind: "event" | "property",
    name: string,
    uriVariables: UriVariables,
    onValue: (value: unknown) => void,
    onError: (error: BindingError) => void,
  ): Promise<Subscription> {
    const { td, version } = await this.context.thing(thing);
    let schema: DataSchema | undefined;
    let pollIntervalMs: number | undefined;
    if (kind === "event") {
      const event = own(td.events, name);
      if (event === undefined) throw new NotFoundError(`Thing ${echoed(thing)} has no event ${quoted(name)}`);
      schema = event.data;
    } else {
      const property = this.property(td, name);
      if (property.writeOnly === true) {
        throw new ValidationError(`Property "${name}" of ${thing} is write-only`, [
          { pointer: "", message: "a write-only property cannot be observed" },
        ]);
      }
      schema = property;
      // Polled (no push form) as often as the TD asks, as the hub's own observation is.
      pollIntervalMs = pollIntervalOf(td, property);
    }
    this.refuseWhenStopping();
    const op = kind === "event" ? "subscribeevent" : "observeproperty";
    const first = await this.target(td, op, kind, name, uriVariables, undefined, pollIntervalMs);
    const deliver = (target: Target) => (raw: unknown) => {
      const value = asJson(raw);
      const problems =
        schema === undefined || value === undefined ? [] : this.check(td, version, kind, name, schema)(value);
      const problem = problems[0];
      if (problem === undefined) {
        onValue(value);
        return;
      }
      const message = `the Thing sent a value that does not fit the schema of ${name}: ${problem.pointer || "the value"} ${problem.message}`;
      onError(
        new BindingError(`${thing}: ${message}`, thing, {
          reason: "content",
          href: target.href,
          body: JSON.stringify(value).slice(0, 512),
        }),
      );
    };
    const { value: subscription } = await this.exchange(() =>
      this.throughForms(td, first, uriVariables, (t) => {
        const binding = this.context.bindings.bindingFor(t);
        return kind === "event"
          ? binding.subscribeEvent(t, deliver(t), onError)
          : binding.observeProperty(t, deliver(t), onError);
      }),
    ).catch((error: unknown) => {
      throw this.answerOf(error, `the observation of ${name}`, thing);
    });
    return subscription;
  }

  /** The status of an asynchronous action invoked through this hub, from memory or from the Log. */
  async invocationStatus(thing: string, action: string, correlation: string): Promise<InvocationStatus> {
    const invocation = this.invocations.get(correlation);
    if (invocation !== undefined && invocation.thing === thing && invocation.action === action) {
      return invocation.status;
    }
    const changes = await this.context.store.history({
      thing,
      affordance: action,
      kinds: ["invoked", "completed", "failed"],
      order: "desc",
      limit: INVOCATION_LOOKBACK,
    });
    const mine = changes.filter((c) => c.cause.correlation === correlation);
    const end = mine.find((c) => c.kind === "completed" || c.kind === "failed");
    if (end?.kind === "completed")
      return { status: "completed", ...(end.value !== undefined && { output: end.value }) };
    if (end?.kind === "failed") return { status: "failed", error: end.value };
    if (mine.length > 0) {
      // Invoked, never ended: the hub stopped while it ran, so nobody followed it to its end.
      return {
        status: "failed",
        error: {
          reason: "unknown",
          message: "the hub restarted before the action ended; its outcome is unknown",
        },
      };
    }
    throw new NotFoundError(`No invocation ${correlation} of action "${action}" on ${thing}`);
  }

  /**
   * Stops waiting on Things, for a hub that stops: a read, write or invocation waiting for its
   * Thing's answer ends at once, a write or an invocation recorded as `failed` with reason
   * `interrupted` (and `outcome: "unknown"`, as the request had gone out), and its caller gets an
   * UnavailableError; a new one is refused; asynchronous actions are no longer followed. Without
   * this, a Thing that does not answer held the stop until its binding's timeout.
   */
  abandon(): void {
    this.stopping.abort();
  }

  /** Abandons what is in flight (`abandon`); waits for its end and the values read to be recorded. */
  async close(): Promise<void> {
    this.abandon();
    await Promise.allSettled([...this.running, ...this.inFlight, this.recorded()]);
  }

  private refuseWhenStopping(): void {
    if (this.stopping.signal.aborted) {
      throw new UnavailableError(
        "The hub is stopping; retry once it has started again",
        RESTART_RETRY_AFTER_S,
      );
    }
  }

  /** Runs a write or an invocation, kept in `inFlight` until it ends (`close` waits for it). */
  private tracked<T>(command: () => Promise<T>): Promise<T> {
    const running = command();
    const settled = running.then(
      () => undefined,
      () => undefined,
    );
    this.inFlight.add(settled);
    void settled.finally(() => this.inFlight.delete(settled));
    return running;
  }

  /**
   * One exchange with a Thing, given up when the hub stops: it rejects with Interrupted then,
   * without waiting for the Thing (the request itself ends when the bindings close).
   */
  private exchange<T>(send: () => Promise<T>): Promise<T> {
    const signal = this.stopping.signal;
    if (signal.aborted) return Promise.reject(new Interrupted(false));
    const sending = send();
    return new Promise<T>((resolve, reject) => {
      const onAbort = () => reject(new Interrupted(true));
      signal.addEventListener("abort", onAbort, { once: true });
      void sending.then(resolve, reject).finally(() => signal.removeEventListener("abort", onAbort));
    });
  }

  /** What the caller of a command gets for its error: a 503 when the hub gave it up as it stopped. */
  private answerOf(error: unknown, what: string, thing: string, correlation?: string): unknown {
    if (!(error instanceof Interrupted)) return error;
    const recorded = correlation === undefined ? "" : ` (recorded as failed, correlation ${correlation})`;
    const message = error.sent
      ? `The hub is stopping: ${thing} had not answered ${what}, and the hub no longer waits for it; whether the Thing acted on it is unknown${recorded}`
      : `The hub is stopping: ${what} was not sent to ${thing}${recorded}`;
    return new UnavailableError(`${message}; retry once it has started again`, RESTART_RETRY_AFTER_S);
  }

  private property(td: RegisteredThingDescription, name: string): PropertyAffordance {
    const property = own(td.properties, name);
    if (property === undefined)
      throw new NotFoundError(`Thing ${echoed(td.id)} has no property ${quoted(name)}`);
    return property;
  }

  /**
   * Whether the property's latest committed `reported` Change of the Thing's registration has this
   * value: one registered again records its first reading even when its old registration had it.
   */
  private async isLatest(thing: string, name: string, value: unknown): Promise<boolean> {
    const streams = ofRegistration(
      await this.context.store.streamsAt(thing, undefined, ["reported", "removed"]),
    );
    const latest = streams.find((s) => s.kind === "reported" && s.affordance === name)?.latest;
    return latest !== undefined && canonicalJson(latest.value) === canonicalJson(value);
  }

  private async target(
    td: RegisteredThingDescription,
    op: Operation,
    kind: "property" | "action" | "event",
    name: string,
    uriVariables?: UriVariables,
    after?: number,
    pollIntervalMs?: number,
  ): Promise<Target> {
    return targetFor(td, {
      op,
      affordance: { kind, name },
      ...(uriVariables !== undefined && { uriVariables }),
      ...(after !== undefined && { after }),
      ...(pollIntervalMs !== undefined && { pollIntervalMs }),
      secrets: await this.context.secrets(td),
      schemes: this.context.bindings.schemes,
    });
  }

  /**
   * Sends through `first`, and when the Thing could not be reached through it at all (nothing
   * went out: a refused connection, an unknown host, an address the policy denies), through the
   * affordance's next form that serves the operation, in the TD's order (TD 1.1 lists a Thing's
   * forms in its order of preference; a second one is often the same service at another address
   * or over another protocol). A failure after the request may have gone out (`outcome:
   * "unknown"`), or the Thing's own answer, is never sent again elsewhere. The last failure is
   * thrown when no form is left. Resolves with the answer and the target that gave it.
   */
  private async throughForms<T>(
    td: RegisteredThingDescription,
    first: Target,
    uriVariables: UriVariables | undefined,
    send: (target: Target) => Promise<T>,
  ): Promise<{ value: T; target: Target }> {
    let target = first;
    for (;;) {
      try {
        return { value: await send(target), target };
      } catch (error) {
        const failure = bindingFailure(error);
        const unreached =
          failure !== undefined &&
          failure.outcome === undefined &&
          (failure.reason === "unreachable" || failure.reason === "address-denied");
        // Nothing more goes out once the hub is stopping (exchange has answered for it).
        if (!unreached || target.affordance === undefined || target.formIndex === undefined) throw error;
        if (this.stopping.signal.aborted) throw error;
        let next: Target;
        try {
          next = await this.target(
            td,
            target.op,
            target.affordance.kind,
            target.affordance.name,
            uriVariables,
            target.formIndex,
            target.pollIntervalMs,
          );
        } catch {
          // No other form serves it (or its credentials are not for that address): this failure stands.
          throw error;
        }
        this.context.logger.info(
          {
            thing: td.id,
            affordance: target.affordance.name,
            op: target.op,
            from: target.href,
            to: next.href,
          },
          "the Thing could not be reached through its form: trying its next one",
        );
        target = next;
      }
    }
  }

  private check(
    td: RegisteredThingDescription,
    version: number,
    role: string,
    name: string,
    schema: DataSchema,
  ): DataSchemaCheck {
    const key = `${td.id}\u0000${version}\u0000${role}\u0000${name}`;
    let check = this.checks.get(key);
    if (check === undefined) {
      if (this.checks.size >= MAX_CHECKS) this.checks.clear();
      check = compileDataSchema(schema);
      this.checks.set(key, check);
    }
    return check;
  }

  /** A value from a client: a ValidationError pointing into the request body when it does not fit. */
  private validate(
    td: RegisteredThingDescription,
    version: number,
    role: string,
    name: string,
    schema: DataSchema,
    value: unknown,
    what: string,
  ): void {
    const problems = this.check(td, version, role, name, schema)(value);
    if (problems.length === 0) return;
    const first = problems[0];
    throw new ValidationError(
      `The ${what} for ${name} does not fit its schema: ${first?.pointer || `the ${what}`} ${first?.message ?? ""}`.trim(),
      problems.map((p) => ({ pointer: p.pointer, message: p.message })),
    );
  }

  /**
   * A value from the Thing that the Log cannot hold (a number JSON has no text for, a lone
   * surrogate, nesting past the limit): a `failed` Change and a BindingError, as for one that does
   * not fit its schema. Left to ingest, it was refused as if the client had sent it (400), and the
   * invocation was never recorded as ended.
   */
  private async checkRecordable(
    td: RegisteredThingDescription,
    name: string,
    value: unknown,
    cause: Cause,
    href: string,
  ): Promise<void> {
    const problem = jsonLimitProblem(value);
    if (problem === undefined) return;
    const message = `the Thing answered a value the Log cannot hold: ${problem.pointer || "the value"} ${problem.message}`;
    await this.context.ingest(
      td.id,
      [{ kind: "failed", affordance: name, value: { reason: "invalid", message, errors: [problem] } }],
      cause,
      { sentWith: td },
    );
    throw new BindingError(`${td.id}: ${message}`, td.id, { reason: "content", href });
  }

  /** A value from the Thing: when it does not fit, a `failed` Change and a BindingError (never state). */
  private async checkAnswer(
    td: RegisteredThingDescription,
    version: number,
    role: string,
    name: string,
    schema: DataSchema,
    value: unknown,
    cause: Cause,
    href: string,
  ): Promise<void> {
    const problems = this.check(td, version, role, name, schema)(value);
    if (problems.length === 0) return;
    const first = problems[0];
    const message =
      value === undefined
        ? `the Thing answered no value for ${name}, where its schema says the value ${first?.message ?? "is required"}`
        : `the Thing answered a value that does not fit the schema of ${name}: ${first?.pointer || "the value"} ${first?.message ?? ""}`.trim();
    const error = new BindingError(`${td.id}: ${message}`, td.id, {
      reason: "content",
      href,
      ...(value !== undefined && { body: JSON.stringify(value).slice(0, 512) }),
    });
    await this.context.ingest(
      td.id,
      [
        {
          kind: "failed",
          affordance: name,
          value: { reason: "invalid", message, errors: problems.slice(0, 10) },
        },
      ],
      cause,
      { sentWith: td },
    );
    throw error;
  }

  private async completed(
    td: RegisteredThingDescription,
    version: number,
    name: string,
    action: ActionAffordance,
    output: unknown,
    cause: Cause,
    href: string,
  ): Promise<void> {
    if (output !== undefined) await this.checkRecordable(td, name, output, cause, href);
    if (output !== undefined && action.output !== undefined) {
      await this.checkAnswer(td, version, "output", name, action.output, output, cause, href);
    }
    await this.context.ingest(
      td.id,
      [{ kind: "completed", affordance: name, ...(output !== undefined && { value: output }) }],
      cause,
      { sentWith: td },
    );
  }

  private async recordFailure(
    td: RegisteredThingDescription,
    name: string,
    error: unknown,
    cause: Cause,
  ): Promise<void> {
    const thing = td.id;
    try {
      await this.context.ingest(
        thing,
        [{ kind: "failed", affordance: name, value: failureValue(error) }],
        cause,
        { sentWith: td },
      );
    } catch (err) {
      // The command's own error is what the client must see; this one goes to the log.
      this.context.logger.error({ err, thing, affordance: name }, "a failed command could not be recorded");
    }
  }

  /** Asks the action's status resource until it ends, the hub closes, or the time is up. */
  private async follow(
    td: RegisteredThingDescription,
    version: number,
    name: string,
    action: ActionAffordance,
    handle: ActionHandle,
    invocation: Invocation,
    cause: Cause,
  ): Promise<void> {
    const signal = this.stopping.signal;
    const deadline = Date.now() + this.options.actionTimeoutMs;
    let failures = 0;
    for (;;) {
      let status;
      try {
        status = await this.exchange(() => handle.query());
        failures = 0;
      } catch (error) {
        // The hub stops: the action runs on, unfollowed; its status after a restart says its outcome is unknown.
        if (error instanceof Interrupted) return;
        if (++failures >= MAX_QUERY_FAILURES) {
          invocation.status = { status: "failed", error: failureValue(error) };
          await this.recordFailure(td, name, error, cause);
          return;
        }
      }
      if (status?.status === "completed") {
        const output = asJson(status.output);
        try {
          await this.completed(td, version, name, action, output, cause, handle.href);
          invocation.status = { status: "completed", ...(output !== undefined && { output }) };
        } catch (error) {
          invocation.status = { status: "failed", error: failureValue(error) };
        }
        return;
      }
      if (status?.status === "failed") {
        const error = { reason: "action-failed", message: "the action failed", error: status.error ?? null };
        invocation.status = { status: "failed", error };
        await this.context.ingest(td.id, [{ kind: "failed", affordance: name, value: error }], cause, {
          sentWith: td,
        });
        return;
      }
      if (Date.now() + this.options.actionPollMs > deadline) {
        const error = {
          reason: "timeout",
          message: `the action did not end within ${this.options.actionTimeoutMs} ms`,
        };
        invocation.status = { status: "failed", error };
        await this.context.ingest(td.id, [{ kind: "failed", affordance: name, value: error }], cause, {
          sentWith: td,
        });
        return;
      }
      const waited = await new Promise<boolean>((resolve) => {
        if (signal.aborted) return resolve(false);
        const timer = setTimeout(() => {
          signal.removeEventListener("abort", onAbort);
          resolve(true);
        }, this.options.actionPollMs);
        const onAbort = () => {
          clearTimeout(timer);
          resolve(false);
        };
        signal.addEventListener("abort", onAbort, { once: true });
      });
      if (!waited) return;
    }
  }

  /** Makes room by forgetting the oldest ended invocation (its outcome stays in the Log). */
  private evictOne(): boolean {
    for (const [id, invocation] of this.invocations) {
      if (invocation.status.status !== "running") {
        this.invocations.delete(id);
        return true;
      }
    }
    return false;
  }
}
