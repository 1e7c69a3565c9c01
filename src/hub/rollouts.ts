// Rollouts: a release applied once, Thing by Thing, through the Things' own APIs (commands), with
// bounded concurrency, a durable step ledger (the store), resumption after a restart, and a
// failure threshold. Every step is a Change caused by the release; the Thing's `applied` Change
// makes the release its active one (the lineage). See docs/releases.md.
import { randomUUID } from "node:crypto";
import type { Logger } from "pino";
import {
  APPLIED_KIND,
  ConflictError,
  NotFoundError,
  ValidationError,
  blockingItems,
  deviceSays,
  canonicalJson,
  changeTime,
  emptyProgress,
  stepsFromPlan,
  type AppliedValue,
  type Cause,
  type Change,
  type Plan,
  type Release,
  type Rollout,
  type RolloutItem,
  type RolloutOptions,
  type RolloutProgress,
  type RolloutStatus,
  type RolloutStep,
  type RolloutStepStatus,
} from "../core/index.js";
import type { Store } from "../store/index.js";
import { failureValue, type Commands, type Requester } from "./commands.js";
import type { Directory } from "./directory.js";
import type { HubClock } from "./hub-clock.js";
import type { Report } from "./ingest.js";

/** What rollouts need of the releases: a stored release, and its plan now. */
export interface ReleaseSource {
  get(id: string): Promise<Release>;
  plan(id: string, options: { select?: string; selectPointer?: string }): Promise<Plan>;
}

export interface RolloutContext {
  readonly store: Store;
  readonly commands: Pick<Commands, "writeProperty" | "invokeAction" | "readProperty" | "readBack">;
  readonly directory: Pick<Directory, "edit">;
  readonly releases: ReleaseSource;
  readonly ingest: (thing: string, reports: readonly Report[], cause: Cause) => Promise<Change[]>;
  readonly clock: HubClock;
  readonly logger: Logger;
}

/** Progress as it happens (`GET /rollouts/{id}/events`, GraphQL subscriptions). */
export type RolloutEvent =
  | {
      type: "step";
      rollout: string;
      thing: string;
      status: RolloutStepStatus;
      reason?: string;
      progress: RolloutProgress;
    }
  | { type: "status"; rollout: string; status: RolloutStatus; reason?: string; progress: RolloutProgress };

export interface RolloutView extends Rollout {
  progress: RolloutProgress;
}

/** A Thing's active release, or an earlier one: one entry of its lineage. */
export interface LineageEntry extends AppliedValue {
  /** The `seq` of the `applied` Change. */
  seq: number;
  /** When it became active (RFC 3339). */
  at: string;
  actor: string;
}

export const ROLLOUT_ACTOR_VIA = "rollout";
export const DEFAULT_CONCURRENCY = 16;
export const MAX_CONCURRENCY = 1000;
/** Changes of one affordance searched for a step's own when a rollout resumes. */
const RESUME_LOOKBACK = 200;
/**
 * How often a replica reads the store's rollouts (docs/replicas.md): the runner, for the ones
 * another replica recorded or ended; every replica, for the progress its streams say.
 */
export const ROLLOUT_WATCH_MS = 500;

interface Run {
  rollout: Rollout;
  release: Release;
  progress: RolloutProgress;
  failures: number;
  stopped: boolean;
  /**
   * Set by a cancel (its reason): from then on no command goes out for the rollout and no step
   * makes its release active (docs/releases.md, "Cancelled").
   */
  cancelled: string | undefined;
  /** Steps past the point of no return (their release being made active): a cancel waits for them. */
  activating: Set<Promise<void>>;
  done: Promise<void>;
}

/** The start of the reason of a rollout ended on request (`cancel`). */
const CANCELLED_BY = "cancelled by ";

/** Every step of a rollout in one status, read a page at a time. */
async function allSteps(store: Store, rollout: string, status: RolloutStepStatus): Promise<RolloutStep[]> {
  const out: RolloutStep[] = [];
  let after = -1;
  for (;;) {
    const page = await store.rolloutSteps(rollout, { status, after, limit: 1000 });
    out.push(...page);
    const last = page.at(-1);
    if (!last || page.length < 1000) return out;
    after = last.position;
  }
}

export class Rollouts {
  private readonly runs = new Map<string, Run>();
  private readonly listeners = new Set<(event: RolloutEvent) => void>();
  /** Things a step is being applied to now: drift leaves their reports alone meanwhile. */
  private readonly applying = new Set<string>();
  /** Set while no new step is taken: for good once halted, for a while when suspended. */
  private closing = false;
  private halted = false;
  /**
   * Whether this hub drives rollouts: a hub alone always; of replicas, only the one holding the
   * store's rollouts role (`lead`), the others record the rollouts they are asked for and leave
   * them to it.
   */
  private runner = true;
  /** On a replica: the store is read every `ROLLOUT_WATCH_MS` (`watch`). */
  private watcher: NodeJS.Timeout | undefined;
  private watching: Promise<void> | undefined;
  /**
   * Things a step may be applied to by another replica, as the Log says (in seq order, as drift
   * sees it): the seq of the step's first Change, from its `desired` or `invoked` Change to its
   * `applied` or `failed` one, or until the store says it ended (a cancelled step ends without one).
   */
  private readonly stepping = new Map<string, number>();
  /**
   * On a replica, per rollout a listener follows (`subscribe` with its id): how many follow it,
   * and the steps whose end was said (read when the first one subscribed), for the events of a
   * rollout another replica runs.
   */
  private readonly told = new Map<
    string,
    {
      listeners: number;
      ended: Set<number>;
      total: number;
      since: Promise<void>;
      said: boolean;
      over: boolean;
    }
  >();

  constructor(private readonly context: RolloutContext) {}

  /**
   * Plans the release (with `select`), refuses one that cannot be applied (nothing is sent), records
   * the rollout and its steps durably, and starts applying them; resolves once it is recorded.
   */
  async start(
    releaseId: string,
    options: Partial<RolloutOptions>,
    requester: Pick<Cause, "actor">,
  ): Promise<RolloutView> {
    const concurrency = options.concurrency ?? DEFAULT_CONCURRENCY;
    const maxFailures = options.maxFailures ?? 0;
    if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > MAX_CONCURRENCY) {
      throw new ValidationError(`concurrency must be an integer from 1 to ${MAX_CONCURRENCY}`, [
        { pointer: "/concurrency", message: `must be 1..${MAX_CONCURRENCY}` },
      ]);
    }
    if (!Number.isInteger(maxFailures) || maxFailures < 0) {
      throw new ValidationError("maxFailures must be a non-negative integer", [
        { pointer: "/maxFailures", message: "must be ≥ 0" },
      ]);
    }
    const release = await this.context.releases.get(releaseId);
    const plan = await this.context.releases.plan(
      release.id,
      options.select === undefined ? {} : { select: options.select, selectPointer: "/select" },
    );
    if (plan.problems.length > 0) {
      throw new ValidationError(
        `Release ${release.id} cannot be rolled out: ${plan.problems.map((p) => p.message).join("; ")}`,
        plan.problems.map((p) => ({ pointer: `/steps/${p.step}/select`, message: p.message })),
      );
    }
    const blocking = blockingItems(plan);
    if (blocking.length > 0) {
      throw new ValidationError(
        `Release ${release.id} cannot be rolled out: ${blocking.length} item(s) cannot be applied, ` +
          `first ${blocking[0]?.thing} ${blocking[0]?.item.kind} ${blocking[0]?.item.name}: ` +
          `${blocking[0]?.item.reason ?? ""} ${blocking[0]?.item.detail ?? ""}`.trim(),
        blocking.slice(0, 100).map(({ thing, item }) => ({
          pointer: `/steps/${item.step}`,
          message: `${thing}: ${item.kind} ${item.name} ${item.reason ?? ""} ${item.detail ?? ""}`.trim(),
        })),
      );
    }
    if (plan.things.length === 0) {
      throw new ValidationError(`The selection matches no Thing of release ${release.id}`, [
        { pointer: "/select", message: "matches none of the release's Things" },
      ]);
    }
    const active = new Map<string, string>();
    for (const thing of plan.things) {
      const current = await this.activeRelease(thing.thing);
      if (current) active.set(thing.thing, current.release);
    }
    const now = this.context.clock.now().toISOString();
    const id = `urn:uuid:${randomUUID()}`;
    const rollout: Rollout = {
      id,
      release: release.id,
      name: release.name,
      status: "running",
      options: { concurrency, maxFailures, ...(options.select !== undefined && { select: options.select }) },
      actor: requester.actor,
      created: now,
    };
    const steps = stepsFromPlan(id, plan, (thing) => active.get(thing), now);
    await this.context.store.createRollout(rollout, steps);
    // A replica that does not hold the rollouts role leaves it recorded: the holder takes it up.
    if (this.runner) this.launch(rollout, release);
    return this.get(id);
  }

  /**
   * Resumes every rollout that was running when the hub stopped, and finishes the steps that were
   * being applied for one that had already ended (cancelled, or stopped past its failures, while
   * they ran): until they finish, they hold their Things.
   */
  async resume(): Promise<void> {
    const running = await this.context.store.listRollouts({ status: "running", limit: 1000, offset: 0 });
    const ended = await this.context.store.listRollouts({
      status: "failed",
      inFlight: true,
      limit: 1000,
      offset: 0,
    });
    for (const rollout of [...running, ...ended]) {
      if (this.runs.has(rollout.id)) continue;
      let release: Release;
      try {
        release = await this.context.releases.get(rollout.release);
      } catch (err) {
        this.context.logger.error({ err, rollout: rollout.id }, "a rollout's release is gone; it stops");
        await this.context.store.endRollout(rollout.id, "failed", this.now(), "its release is not stored");
        continue;
      }
      // On a replica, read again: it may have been started here (or ended) while the release was
      // read, and a rollout is driven by one run only.
      const now = this.watcher === undefined ? rollout : await this.context.store.getRollout(rollout.id);
      if (now === undefined || this.runs.has(rollout.id) || now.status !== rollout.status) continue;
      this.context.logger.info(
        { rollout: rollout.id, release: rollout.release, status: rollout.status },
        rollout.status === "running"
          ? "resuming a rollout"
          : "finishing the steps an ended rollout was applying",
      );
      this.launch(rollout, release);
    }
  }

  async get(id: string): Promise<RolloutView> {
    const rollout = await this.context.store.getRollout(id);
    if (!rollout) throw new NotFoundError(`No rollout ${id}`);
    return { ...rollout, progress: await this.context.store.rolloutProgress(id) };
  }

  async list(options: { status?: RolloutStatus; release?: string; limit: number; offset: number }) {
    const rollouts = await this.context.store.listRollouts(options);
    return Promise.all(
      rollouts.map(async (r) => ({ ...r, progress: await this.context.store.rolloutProgress(r.id) })),
    );
  }

  async steps(id: string, query: { status?: RolloutStepStatus; after?: number; limit: number }) {
    await this.get(id);
    return this.context.store.rolloutSteps(id, query);
  }

  /**
   * Stops a running rollout on request: no new step is taken, the pending ones are `skipped`; a
   * step in flight sends nothing more once its command out now has ended, and ends `failed`
   * without making the release active. A step already recording its `applied` Change is waited
   * for, so that the answer says every Thing the release was made active on: none is after it.
   * Ends the rollout `failed`, the reason saying who cancelled it; ConflictError when it had ended.
   */
  async cancel(id: string, requester: Pick<Cause, "actor">): Promise<RolloutView> {
    const rollout = await this.get(id);
    const reason = `${CANCELLED_BY}${requester.actor}`;
    const run = this.runs.get(id);
    if (run && rollout.status === "running") {
      run.stopped = true;
      run.cancelled ??= reason;
      await Promise.allSettled([...run.activating]);
    }
    if (!(await this.endFailed(id, reason, run))) {
      throw new ConflictError(
        `Rollout ${id} has already ended (${rollout.status}); there is nothing to cancel`,
      );
    }
    return this.get(id);
  }

  /** Resolves when the rollout has ended (or the hub closes); for tests and the CLI's local use. */
  async settled(id: string): Promise<RolloutView> {
    await this.runs.get(id)?.done;
    return this.get(id);
  }

  /**
   * Progress events of every rollout; returns the function that ends the subscription. On a
   * replica, a listener that names the rollout it follows also gets those of a rollout that
   * another replica runs, read from the store every `ROLLOUT_WATCH_MS`.
   */
  subscribe(listener: (event: RolloutEvent) => void, rollout?: string): () => void {
    this.listeners.add(listener);
    if (rollout === undefined || this.watcher === undefined) return () => this.listeners.delete(listener);
    let told = this.told.get(rollout);
    if (told === undefined) {
      const fresh = {
        listeners: 0,
        ended: new Set<number>(),
        total: 0,
        since: Promise.resolve(),
        said: false,
        over: false,
      };
      fresh.since = this.endedSteps(rollout).then(
        (ended) => {
          fresh.ended = ended;
          fresh.total = ended.size;
        },
        (err: unknown) => this.context.logger.warn({ err, rollout }, "a rollout's steps could not be read"),
      );
      this.told.set(rollout, (told = fresh));
    }
    told.listeners++;
    const following = told;
    return () => {
      if (!this.listeners.delete(listener)) return;
      if (--following.listeners === 0 && this.told.get(rollout) === following) this.told.delete(rollout);
    };
  }

  /** True while a rollout step is being applied to the Thing. */
  isApplying(thing: string): boolean {
    // Sizes first: with no step running, the Thing's id (out of the CPU's caches when a committed
    // batch is published) is not read at all.
    return (
      (this.applying.size > 0 && this.applying.has(thing)) ||
      (this.stepping.size > 0 && this.stepping.has(thing))
    );
  }

  /**
   * The Things a step is recorded as being applied to in the store, whatever the rollout's status:
   * at a start, before `resume` takes them up again (drift leaves their reports to the step).
   */
  async thingsInFlight(): Promise<Set<string>> {
    const { store } = this.context;
    const things = new Set<string>();
    for (const rollout of await store.listRollouts({ inFlight: true, limit: 1000, offset: 0 })) {
      for (const step of await allSteps(store, rollout.id, "applying")) things.add(step.thing);
    }
    return things;
  }

  /**
   * A Change of the Log, in seq order, before drift judges it: a rollout's Changes say a step is
   * being applied to their Thing, whichever replica applies it.
   */
  seen(change: Change): void {
    if (this.watcher === undefined || change.cause.via !== ROLLOUT_ACTOR_VIA) return;
    if (change.kind === "desired" || change.kind === "invoked") {
      if (!this.stepping.has(change.thing)) this.stepping.set(change.thing, change.seq);
    } else if (
      change.kind === "failed" ||
      (change.kind === APPLIED_KIND && change.affordance === undefined)
    ) {
      this.stepping.delete(change.thing);
    }
  }

  /** The Thing's active release: the value of its latest `applied` Change. */
  async activeRelease(thing: string): Promise<LineageEntry | undefined> {
    const streams = await this.context.store.streamsAt(thing, undefined, [APPLIED_KIND]);
    const latest = streams.find((s) => s.affordance === "")?.latest;
    return latest && lineageEntry(latest);
  }

  /** Which release replaced which on the Thing, newest first. */
  async lineage(thing: string, limit = 100): Promise<LineageEntry[]> {
    const changes = await this.context.store.history({ thing, kinds: [APPLIED_KIND], order: "desc", limit });
    return changes.filter((c) => c.affordance === undefined).map(lineageEntry);
  }

  /**
   * A replica (docs/replicas.md): from now on the store is read every `ROLLOUT_WATCH_MS`, as the
   * other replicas record, cancel and apply rollouts. It drives none until it `lead`s.
   */
  watch(everyMs = ROLLOUT_WATCH_MS): void {
    this.runner = false;
    const tick = () => {
      this.watching = this.look()
        .catch((err: unknown) => this.context.logger.warn({ err }, "the store's rollouts could not be read"))
        .finally(() => {
          this.watching = undefined;
          if (this.watcher !== undefined) this.watcher = setTimeout(tick, everyMs).unref();
        });
    };
    this.watcher = setTimeout(tick, everyMs).unref();
  }

  /**
   * This replica holds the rollouts role: it drives every rollout recorded as running (and takes
   * up each one the other replicas record from now on) until it is `suspend`ed.
   */
  async lead(): Promise<void> {
    this.runner = true;
    await this.resume();
  }

  /** One read of the store's rollouts by a replica: what others recorded, ended or are applying. */
  private async look(): Promise<void> {
    const { store } = this.context;
    if (this.runner && !this.closing) await this.resume();
    const running = await store.listRollouts({ status: "running", limit: 1000, offset: 0 });
    const stillRunning = new Set(running.map((r) => r.id));
    // Ended through another replica's API (cancelled): no step more, nothing more sent.
    for (const run of this.runs.values()) {
      if (!run.stopped && !stillRunning.has(run.rollout.id)) await this.endedElsewhere(run);
    }
    if (this.stepping.size > 0) {
      // A step whose first Change is at or before `upTo` was claimed before this read: when the
      // store has it no longer applying, it has ended, with or without a Change saying so.
      const upTo = await store.lastSeq();
      const things = await this.thingsInFlight();
      for (const [thing, seq] of this.stepping) {
        if (seq <= upTo && !things.has(thing)) this.stepping.delete(thing);
      }
    }
    if (this.told.size > 0) await this.tellProgress();
  }

  /**
   * Whether the rollout was ended by another replica (a cancel through its API) since this run
   * last looked: then it stops as if cancelled here (or stopped) and says so to its listeners.
   */
  private async endedElsewhere(run: Run): Promise<boolean> {
    if (run.stopped) return true;
    const now = await this.context.store.getRollout(run.rollout.id);
    if (now === undefined || now.status === "running" || run.stopped) return false;
    run.stopped = true;
    if (now.reason?.startsWith(CANCELLED_BY) === true) run.cancelled ??= now.reason;
    const progress = await this.context.store.rolloutProgress(run.rollout.id);
    run.progress = progress;
    this.emit({
      type: "status",
      rollout: run.rollout.id,
      status: now.status,
      ...(now.reason !== undefined && { reason: now.reason }),
      progress: { ...progress },
    });
    return true;
  }

  /**
   * The events of the rollouts another replica runs, from the store: each step's end, and the
   * rollout's, as the runner says them to its own listeners (`GET /rollouts/{id}/events`).
   */
  private async tellProgress(): Promise<void> {
    const { store } = this.context;
    for (const [id, told] of this.told) {
      await told.since;
      if (told.over || this.runs.has(id)) continue;
      const rollout = await store.getRollout(id);
      if (rollout === undefined) continue;
      const progress = await store.rolloutProgress(id);
      if (progress.completed + progress.failed !== told.total) {
        for (const status of ["completed", "failed"] as const) {
          for (const step of await allSteps(store, id, status)) {
            if (told.ended.has(step.position)) continue;
            told.ended.add(step.position);
            this.emit({
              type: "step",
              rollout: id,
              thing: step.thing,
              status,
              ...(step.reason !== undefined && { reason: step.reason }),
              progress: { ...progress },
            });
          }
        }
        told.total = told.ended.size;
      }
      // Said once; then the ends of the steps that were in flight, until none is.
      if (rollout.status !== "running" && progress.applying === 0) told.over = true;
      if (rollout.status !== "running" && !told.said) {
        told.said = true;
        this.emit({
          type: "status",
          rollout: id,
          status: rollout.status,
          ...(rollout.reason !== undefined && { reason: rollout.reason }),
          progress: { ...progress },
        });
      }
    }
  }

  /** The steps of a rollout that have ended now: a listener that starts following it knows them. */
  private async endedSteps(id: string): Promise<Set<number>> {
    const ended = new Set<number>();
    for (const status of ["completed", "failed"] as const) {
      for (const step of await allSteps(this.context.store, id, status)) ended.add(step.position);
    }
    return ended;
  }

  /** Stops taking new steps, at once: what the steps in flight do next is left for the next start. */
  halt(): void {
    this.halted = true;
    this.closing = true;
  }

  /**
   * Stops driving every rollout as a stop does (they stay recorded as running, for whichever
   * replica resumes them next), then takes steps again: new rollouts run, and `resume` resumes.
   */
  async suspend(): Promise<void> {
    this.closing = true;
    await Promise.allSettled([...this.runs.values()].map((r) => r.done));
    // A replica that no longer holds the role records the rollouts it is asked for, no more.
    if (this.watcher !== undefined) this.runner = false;
    this.closing = this.halted;
  }

  /**
   * Halts; the steps in flight end their current command (a stopping hub abandons it, recorded as
   * `interrupted`). Running rollouts resume at the next start.
   */
  async close(): Promise<void> {
    this.halt();
    clearTimeout(this.watcher);
    this.watcher = undefined;
    await this.watching;
    await Promise.allSettled([...this.runs.values()].map((r) => r.done));
  }

  // -------------------------------------------------------------------------------------------

  private now(): string {
    return this.context.clock.now().toISOString();
  }

  private emit(event: RolloutEvent): void {
    // Its end said here (a cancel through this replica, or its run): not said again from the store.
    if (event.type === "status" && event.status !== "running") {
      const told = this.told.get(event.rollout);
      if (told !== undefined) told.said = true;
    }
    for (const listener of this.listeners) {
      try {
        listener(event);
      } catch (err) {
        this.context.logger.error({ err }, "a rollout listener failed");
      }
    }
  }

  private launch(rollout: Rollout, release: Release): void {
    const run: Run = {
      rollout,
      release,
      progress: emptyProgress(),
      failures: 0,
      // An ended rollout only finishes the steps it was applying.
      stopped: rollout.status !== "running",
      // Cancelled before the hub stopped: what its steps in flight had sent is taken from the Log.
      cancelled:
        rollout.status === "failed" && rollout.reason?.startsWith(CANCELLED_BY) === true
          ? rollout.reason
          : undefined,
      activating: new Set(),
      done: Promise.resolve(),
    };
    this.runs.set(rollout.id, run);
    run.done = this.execute(run)
      .catch(async (err: unknown) => {
        this.context.logger.error({ err, rollout: rollout.id }, "a rollout stopped on an error");
        // Left `running`, it would say so until the hub restarts (and then resume): it has ended.
        if (this.closing || run.stopped) return;
        run.stopped = true;
        const reason = `stopped on an error: ${err instanceof Error ? err.message : String(err)}`;
        try {
          await this.endFailed(rollout.id, reason, run);
          await this.endStranded(run, reason);
        } catch (error) {
          this.context.logger.error(
            { err: error, rollout: rollout.id },
            "a stopped rollout could not be ended",
          );
        }
      })
      .finally(() => this.runs.delete(rollout.id));
  }

  private async execute(run: Run): Promise<void> {
    const { store } = this.context;
    const id = run.rollout.id;
    run.progress = await store.rolloutProgress(id);
    run.failures = run.progress.failed;
    // Steps in flight when the hub stopped first: they resume with a look at the Log.
    const queue = [
      ...(await allSteps(store, id, "applying")),
      ...(run.stopped ? [] : await allSteps(store, id, "pending")),
    ];
    if (!run.stopped) {
      this.emit({ type: "status", rollout: id, status: "running", progress: { ...run.progress } });
      if (run.failures > run.rollout.options.maxFailures) await this.stop(run);
    }
    let next = 0;
    const worker = async (): Promise<void> => {
      while (!this.closing && next < queue.length) {
        const step = queue[next];
        // Once stopped, no step starts; one that was in flight when the hub stopped finishes.
        if (!step || (run.stopped && step.status !== "applying")) return;
        next++;
        await this.applyStep(run, step);
      }
    };
    const workers = Math.min(run.rollout.options.concurrency, Math.max(queue.length, 1));
    await Promise.all(Array.from({ length: workers }, worker));
    if (this.closing) return;
    if (!run.stopped) {
      if (await store.endRollout(id, "completed", this.now())) {
        this.emit({ type: "status", rollout: id, status: "completed", progress: { ...run.progress } });
      }
    }
  }

  private async stop(run: Run): Promise<void> {
    if (run.stopped) return;
    run.stopped = true;
    const reason = `${run.failures} Thing(s) failed, more than --max-failures ${run.rollout.options.maxFailures}`;
    await this.endFailed(run.rollout.id, reason, run);
  }

  /**
   * Ends a rollout `failed` with `reason` and says so to the listeners; false (and nothing said)
   * when it had already ended — cancelled, say, while its last steps ran.
   */
  private async endFailed(id: string, reason: string, run: Run | undefined): Promise<boolean> {
    if (!(await this.context.store.endRollout(id, "failed", this.now(), reason))) return false;
    const progress = await this.context.store.rolloutProgress(id);
    if (run) run.progress = progress;
    this.emit({ type: "status", rollout: id, status: "failed", reason, progress: { ...progress } });
    return true;
  }

  /**
   * Ends the steps a run that stopped on an error left `applying` with no worker on them (the
   * store failed to record their end, say): as `failed`, with the reason, as their outcome is not
   * in the ledger (the Log has what was done). Left `applying`, each would hold its Thing, and no
   * other rollout could apply to it, until the hub starts again.
   */
  private async endStranded(run: Run, reason: string): Promise<void> {
    for (const step of await allSteps(this.context.store, run.rollout.id, "applying")) {
      if (this.applying.has(step.thing)) continue;
      await this.context.store.updateRolloutStep(step.rollout, step.thing, {
        status: "failed",
        reason: `the rollout ${reason} before this step's end was recorded`,
        updated: this.now(),
        expect: "applying",
      });
    }
  }

  private move(run: Run, from: RolloutStepStatus, to: RolloutStepStatus): void {
    run.progress[from]--;
    run.progress[to]++;
  }

  private async applyStep(run: Run, step: RolloutStep): Promise<void> {
    const { store } = this.context;
    const resumed = step.status === "applying";
    // Held from before the claim: a run that stops on an error frees only the steps nobody holds.
    this.applying.add(step.thing);
    try {
      if (!resumed) {
        const claimed = await store.updateRolloutStep(step.rollout, step.thing, {
          status: "applying",
          updated: this.now(),
          expect: "pending",
        });
        if (!claimed) return;
        this.move(run, "pending", "applying");
      }
      const items: RolloutItem[] = step.items.map((item) => ({ ...item }));
      let failure: string | undefined;
      for (const [index, item] of items.entries()) {
        if (item.status !== "pending") continue;
        if (failure !== undefined) {
          item.status = "skipped";
          continue;
        }
        const correlation = `${step.rollout}#${step.position}.${index}`;
        // Replicas: a cancel through another one's API is in the store only; nothing goes out after it.
        if (this.watcher !== undefined) await this.endedElsewhere(run);
        if (run.cancelled !== undefined) {
          // Nothing more goes out; an item sent before the hub stopped gets the end it had.
          Object.assign(item, await this.cancelledItem(step, item, correlation, resumed, run));
          continue;
        }
        try {
          const outcome = await this.applyItem(run, step, item, correlation, resumed);
          item.status = outcome.status;
          if (outcome.error !== undefined) {
            item.error = outcome.error;
            failure = `${item.kind} ${item.name}: ${errorText(outcome.error, step.thing)}`;
          }
        } catch (err) {
          // The hub is stopping: the step stays `applying` and resumes from the Log next time.
          if (this.closing) return;
          item.status = "failed";
          item.error = failureValue(err);
          failure = `${item.kind} ${item.name}: ${errorText(item.error, step.thing)}`;
        }
      }
      if (failure === undefined && this.watcher !== undefined) await this.endedElsewhere(run);
      if (failure === undefined && run.cancelled !== undefined) {
        const sent = items.filter((i) => i.status === "completed" || i.status === "failed").length;
        failure =
          `${run.cancelled} while this step was being applied: the release was not made active ` +
          `on this Thing (${sent} of ${items.length} item(s) had been sent; nothing more was)`;
      }
      // From here on, a cancel waits for this step's end: it either made the release active
      // before the cancel's answer, or it does not at all.
      const end = this.endStep(run, step, items, failure, resumed);
      if (failure === undefined) {
        run.activating.add(end);
        void end.then(
          () => run.activating.delete(end),
          () => run.activating.delete(end),
        );
      }
      await end;
    } finally {
      this.applying.delete(step.thing);
    }
  }

  /** Makes the release active (when nothing failed), and records the step's end. */
  private async endStep(
    run: Run,
    step: RolloutStep,
    items: RolloutItem[],
    failed: string | undefined,
    resumed: boolean,
  ): Promise<void> {
    let failure = failed;
    if (failure === undefined) {
      try {
        await this.recordApplied(run, step, resumed);
      } catch (err) {
        if (this.closing) return;
        failure = `recording the release as applied: ${err instanceof Error ? err.message : String(err)}`;
      }
    }
    const status = failure === undefined ? "completed" : "failed";
    await this.context.store.updateRolloutStep(step.rollout, step.thing, {
      status,
      items,
      ...(failure !== undefined && { reason: failure }),
      updated: this.now(),
    });
    this.move(run, "applying", status);
    this.emit({
      type: "step",
      rollout: step.rollout,
      thing: step.thing,
      status,
      ...(failure !== undefined && { reason: failure }),
      progress: { ...run.progress },
    });
    if (status === "failed" && ++run.failures > run.rollout.options.maxFailures) await this.stop(run);
  }

  private async applyItem(
    run: Run,
    step: RolloutStep,
    item: RolloutItem,
    correlation: string,
    resumed: boolean,
  ): Promise<{ status: RolloutItem["status"]; error?: unknown }> {
    const { commands } = this.context;
    const requester: Requester = {
      actor: run.rollout.actor,
      via: ROLLOUT_ACTOR_VIA,
      release: step.release,
      correlation,
    };
    if (item.kind === "link") return this.applyLink(step, item, requester);
    if (resumed) {
      const known = await this.fromLog(step.thing, item.name, correlation);
      if (known.state === "completed") return { status: "completed" };
      if (known.state === "failed") return { status: "failed", error: known.error };
      if (known.state === "sent") {
        if (item.kind === "action") {
          // Already closed in the Log by the hub that stopped while it waited for the Thing.
          if (known.interrupted !== undefined) return { status: "failed", error: known.interrupted };
          // An action is never invoked twice: whether the device got it is unknown. The Log says so
          // too, so its `invoked` Change does not stay without an outcome.
          const error = {
            reason: "interrupted",
            message: "the hub stopped while the action was being invoked; its outcome is unknown",
          };
          await this.context.ingest(step.thing, [{ kind: "failed", affordance: item.name, value: error }], {
            actor: run.rollout.actor,
            via: ROLLOUT_ACTOR_VIA,
            release: step.release,
            correlation,
          });
          return { status: "failed", error };
        }
        // A write may or may not have arrived: the Thing's value now says which.
        const value = await commands.readProperty(step.thing, item.name, requester);
        if (canonicalJson(value) === canonicalJson(item.desired)) return { status: "completed" };
      }
    }
    if (item.kind === "property") {
      await commands.writeProperty(step.thing, item.name, item.desired, requester);
      await this.readBack(step, item, requester);
      return { status: "completed" };
    }
    if (await this.actionApplied(step, item.name)) return { status: "in-place" };
    await commands.invokeAction(step.thing, item.name, item.desired, requester);
    return { status: "completed" };
  }

  /**
   * The end of an item of a cancelled rollout's step, sending nothing: `skipped` when it was not
   * sent; when the hub stopped after sending it, the end the Log has, else (a write) what reading
   * the Thing says: `completed` when it holds the value, `failed` (interrupted) otherwise.
   */
  private async cancelledItem(
    step: RolloutStep,
    item: RolloutItem,
    correlation: string,
    resumed: boolean,
    run: Run,
  ): Promise<Pick<RolloutItem, "status" | "error">> {
    if (!resumed || item.kind === "link") return { status: "skipped" };
    const known = await this.fromLog(step.thing, item.name, correlation);
    if (known.state === "none") return { status: "skipped" };
    if (known.state === "completed") return { status: "completed" };
    if (known.state === "failed") return { status: "failed", error: known.error };
    if (item.kind === "property") {
      try {
        const value = await this.context.commands.readProperty(step.thing, item.name, {
          actor: run.rollout.actor,
          via: ROLLOUT_ACTOR_VIA,
          release: step.release,
          correlation,
        });
        if (canonicalJson(value) === canonicalJson(item.desired)) return { status: "completed" };
      } catch (err) {
        if (this.closing) throw err;
      }
    }
    return {
      status: "failed",
      error: known.interrupted ?? {
        reason: "interrupted",
        message:
          "the hub stopped while this was being sent, and the rollout was cancelled; its outcome is unknown",
      },
    };
  }

  /**
   * Reads a written property back, as Terraform refreshes after an apply: a Thing that answered
   * the write and kept another value then drifts from the release instead of passing for applied.
   * The write went through either way, so a read that fails is said in the item, not a failure.
   */
  private async readBack(step: RolloutStep, item: RolloutItem, requester: Requester): Promise<void> {
    try {
      const read = await this.context.commands.readBack(step.thing, item.name, requester);
      if (read !== undefined) item.readBack = { value: read.value };
    } catch (err) {
      if (this.closing) throw err;
      item.readBack = { error: errorText(failureValue(err), step.thing) };
      this.context.logger.warn(
        { err, thing: step.thing, affordance: item.name },
        "a property written by a rollout could not be read back",
      );
    }
  }

  /** Affordance keys (`actions/<name>`) a release has applied on a Thing, for the plan. */
  async appliedOf(release: string, thing: string): Promise<string[]> {
    const steps = await this.context.store.rolloutStepsOfThing(thing);
    const keys = new Set<string>();
    for (const step of steps) {
      if (step.release !== release) continue;
      for (const item of step.items) {
        if (item.kind === "action" && item.status === "completed") keys.add(`actions/${item.name}`);
      }
    }
    return [...keys];
  }

  /** Whether an earlier rollout of the same release invoked this action on the Thing (once per release). */
  private async actionApplied(step: RolloutStep, action: string): Promise<boolean> {
    const steps = await this.context.store.rolloutStepsOfThing(step.thing);
    return steps.some(
      (s) =>
        s.release === step.release &&
        s.rollout !== step.rollout &&
        s.items.some((i) => i.kind === "action" && i.name === action && i.status === "completed"),
    );
  }

  /** What the Log says of an item this rollout may have sent before the hub stopped. */
  private async fromLog(
    thing: string,
    affordance: string,
    correlation: string,
  ): Promise<{ state: "none" | "sent" | "completed" | "failed"; error?: unknown; interrupted?: unknown }> {
    const changes = await this.context.store.history({
      thing,
      affordance,
      kinds: ["desired", "invoked", "completed", "failed"],
      order: "desc",
      limit: RESUME_LOOKBACK,
    });
    const mine = changes.filter((c) => c.cause.correlation === correlation);
    const end = mine.find((c) => c.kind === "completed" || c.kind === "failed");
    if (end?.kind === "completed") return { state: "completed" };
    if (end?.kind === "failed") {
      const value = end.value as { reason?: unknown; outcome?: unknown } | undefined;
      // Given up by a hub that stopped (Commands.abandon): as if it had no end, sent or not.
      if (value?.reason !== "interrupted") return { state: "failed", error: end.value };
      return value.outcome === "unknown" ? { state: "sent", interrupted: end.value } : { state: "none" };
    }
    return { state: mine.length > 0 ? "sent" : "none" };
  }

  private async applyLink(
    step: RolloutStep,
    item: RolloutItem,
    requester: Requester,
  ): Promise<{ status: RolloutItem["status"] }> {
    const link = item.desired as { rel: string; href: string };
    // Drafted on the TD as it is when applied, so a link added meanwhile by someone else stays.
    const result = await this.context.directory.edit(
      step.thing,
      {
        actor: requester.actor,
        via: ROLLOUT_ACTOR_VIA,
        ...(requester.release !== undefined && { release: requester.release }),
        ...(requester.correlation !== undefined && { correlation: requester.correlation }),
      },
      (td) => {
        const links = td.links ?? [];
        if (links.some((l) => l.href === link.href && (l.rel ?? "") === link.rel)) return undefined;
        return { links: [...links, { rel: link.rel, href: link.href }] };
      },
    );
    return { status: result === undefined ? "in-place" : "completed" };
  }

  /** The `applied` Change: the release becomes the Thing's active one (once, even when resumed). */
  private async recordApplied(run: Run, step: RolloutStep, resumed: boolean): Promise<void> {
    const current = await this.activeRelease(step.thing);
    if (resumed && current?.rollout === step.rollout) return;
    const value: AppliedValue = {
      release: step.release,
      name: run.release.name,
      rollout: step.rollout,
      ...(current && { replaced: current.release }),
      desired: step.desired,
      drift: run.release.drift,
    };
    await this.context.ingest(step.thing, [{ kind: APPLIED_KIND, value }], {
      actor: run.rollout.actor,
      via: ROLLOUT_ACTOR_VIA,
      release: step.release,
      correlation: `${step.rollout}#${step.position}`,
    });
  }
}

function lineageEntry(change: Change): LineageEntry {
  return {
    ...(change.value as AppliedValue),
    seq: change.seq,
    at: changeTime(change),
    actor: change.cause.actor,
  };
}

/** A failure in one line: its message, and what the device answered when it answered (the why). */
/** An item's failure for its step's reason: the step names the Thing, so the message need not. */
function errorText(error: unknown, thing: string): string {
  if (typeof error !== "object" || error === null || !("message" in error)) return JSON.stringify(error);
  const body = "body" in error && typeof error.body === "string" ? deviceSays(error.body) : "";
  const said = String(error.message);
  const message = said.startsWith(`${thing}: `) ? said.slice(thing.length + 2) : said;
  return body === "" ? message : `${message} (the device said: ${body})`;
}
