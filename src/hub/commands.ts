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
} from "../core/index.js";
import {
  bindingFailure,
  targetFor,
  type ActionHandle,
  type BindingSet,
  type Operation,
  type Secrets,
  type Target,
} from "../bindings/index.js";
import type { Store } from "../store/index.js";
import type { IngestOptions, Report } from "./ingest.js";
import { recordPolicyOf, type RecordPolicy } from "./observation.js";

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

/** The value of a `failed` Change: what went wrong, with the device's answer. */
export function failureValue(error: unknown): Record<string, unknown> {
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
  private readonly stopping = new AbortController();
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
      return this.read(thing, td, version, property, name, requester, "never", target);
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
  ): Promise<unknown> {
    target ??= await this.target(td, "readproperty", "property", name);
    const value = asJson(await this.context.bindings.bindingFor(target).readProperty(target));
    const cause = causeOf(requester);
    // No value (a 204, an empty body) is an answer too: one a typed property's schema refuses.
    await this.checkAnswer(td, version, "property", name, property, value, cause, target.href);
    if (value === undefined || policy === "never") return value;
    // The answer is the device's value and goes out now; its `reported` Change is recorded after
    // (docs/bindings.md, "Reads through the hub"): a read acknowledges no change, so it does not
    // wait for a disk sync, and later commands on the Thing are recorded after it.
    const recording = this.recordRead(thing, name, value, policy, cause);
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
    const binding = this.context.bindings.bindingFor(target);
    const cause = causeOf(requester, uriVariables);
    // Values read before this write are recorded before it.
    await this.recordings.get(thing);
    await this.context.ingest(thing, [{ kind: "desired", affordance: name, value }], cause);
    try {
      await binding.writeProperty(target, value);
    } catch (error) {
      await this.recordFailure(td, name, error, cause);
      throw error;
    }
    // Sent with this TD: its end is recorded even if the Thing was removed meanwhile.
    await this.context.ingest(thing, [{ kind: "completed", affordance: name }], cause, { sentWith: td });
    return cause.correlation;
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
    if (action === undefined) throw new NotFoundError(`Thing ${thing} has no action "${name}"`);
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
    const binding = this.context.bindings.bindingFor(target);
    if (this.invocations.size >= MAX_INVOCATIONS && !this.evictOne()) {
      throw new UnavailableError("Too many asynchronous actions are running; retry later", 5);
    }
    const cause = causeOf(requester, uriVariables);
    // Values read before this invocation are recorded before it.
    await this.recordings.get(thing);
    await this.context.ingest(
      thing,
      [{ kind: "invoked", affordance: name, ...(input !== undefined && { value: input }) }],
      cause,
    );
    let outcome;
    try {
      outcome = await binding.invokeAction(target, input);
    } catch (error) {
      await this.recordFailure(td, name, error, cause);
      throw error;
    }
    if (outcome.kind === "completed") {
      const output = asJson(outcome.output);
      await this.completed(td, version, name, action, output, cause, target.href);
      return { kind: "completed", output, correlation: cause.correlation };
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

  /** Stops following asynchronous actions; waits for the values read to be recorded. */
  async close(): Promise<void> {
    this.stopping.abort();
    await Promise.allSettled([...this.running, this.recorded()]);
  }

  private property(td: RegisteredThingDescription, name: string): PropertyAffordance {
    const property = own(td.properties, name);
    if (property === undefined) throw new NotFoundError(`Thing ${td.id} has no property "${name}"`);
    return property;
  }

  /** Whether the property's latest committed `reported` Change has this value. */
  private async isLatest(thing: string, name: string, value: unknown): Promise<boolean> {
    const streams = await this.context.store.streamsAt(thing, undefined, ["reported"]);
    const latest = streams.find((s) => s.affordance === name)?.latest;
    return latest !== undefined && canonicalJson(latest.value) === canonicalJson(value);
  }

  private async target(
    td: RegisteredThingDescription,
    op: Operation,
    kind: "property" | "action",
    name: string,
    uriVariables?: UriVariables,
  ): Promise<Target> {
    return targetFor(td, {
      op,
      affordance: { kind, name },
      ...(uriVariables !== undefined && { uriVariables }),
      secrets: await this.context.secrets(td),
      schemes: this.context.bindings.schemes,
    });
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
        status = await handle.query();
        failures = 0;
      } catch (error) {
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
