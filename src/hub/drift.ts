// Drift: a Thing's reported state that differs from its active release (its latest `applied`
// Change). Each start and end of a drift is a `drift` Change (desired, observed, since when); the
// release's policy decides what follows: `record` (nothing more), `alert` (an `alert` Change, which
// the change stream and the MQTT gateway carry), or `revert` (one corrective write through the
// commands, cause rule `revert`, at most `maxReverts` per Thing and affordance within a window).
import type { Logger } from "pino";
import {
  APPLIED_KIND,
  DEFAULT_REVERT_LIMITS,
  canonicalJson,
  changeTime,
  type AppliedValue,
  type Cause,
  type Change,
  type DriftSettings,
  type DriftValue,
} from "../core/index.js";
import type { Store } from "../store/index.js";
import type { FollowOptions, Follower } from "./change-stream.js";
import type { Commands } from "./commands.js";
import type { HubClock } from "./hub-clock.js";
import type { Report } from "./ingest.js";

export const DRIFT_KIND = "drift";
export const ALERT_KIND = "alert";
export const DRIFT_ACTOR = "hub:drift";

export interface DriftContext {
  readonly store: Store;
  readonly follow: (handler: (change: Change) => void, options?: FollowOptions) => Follower;
  readonly ingest: (thing: string, reports: readonly Report[], cause: Cause) => Promise<Change[]>;
  /** Without commands (no bindings) `revert` only records. */
  readonly commands: Pick<Commands, "writeProperty" | "readBack"> | undefined;
  /** True while a rollout applies a step to the Thing: its reports then are the rollout's doing. */
  readonly isApplying: (thing: string) => boolean;
  /** Each Change, in seq order, before it is judged: what isApplying says may follow it. */
  readonly seen?: (change: Change) => void;
  readonly clock: HubClock;
  readonly logger: Logger;
}

/** One affordance drifting now (`GET /drift`). */
export interface DriftEntry {
  thing: string;
  affordance: string;
  release: string;
  desired: unknown;
  observed: unknown;
  /** Since when it drifts (RFC 3339). */
  since: string;
  policy: DriftSettings["policy"];
  /** The `seq` of the latest `drift` Change about it. */
  seq?: number;
}

interface Active {
  release: string;
  desired: Record<string, unknown>;
  drift: DriftSettings;
}

const key = (thing: string, affordance: string) => `${thing}\u0000${affordance}`;

export class Drift {
  private readonly active = new Map<string, Active>();
  private readonly drifting = new Map<string, DriftEntry>();
  /** Times (ms) of the reverts sent, by Thing and affordance, within the current window. */
  private readonly reverts = new Map<string, number[]>();
  private readonly pending = new Set<Promise<void>>();
  /** Drifts a corrective write was answered for: a report of the same value says it did not hold. */
  private readonly reverted = new WeakSet<DriftEntry>();
  /**
   * Per Thing and affordance, the latest report that came while a rollout applied a step to the
   * Thing: judged once the step ends with an active release, against that release.
   */
  private readonly deferred = new Map<string, Map<string, Change>>();
  private chain: Promise<void> = Promise.resolve();
  private follower: Follower | undefined;
  private stopped = false;
  /** Whether this process judges reports (a replica holding the `drift` role, or a hub alone). */
  private judging = true;
  /** The seq of the latest Change followed. */
  private position = 0;
  /** Since `lead`: Changes up to this seq were read from the store, not judged as they come. */
  private from = 0;
  /** Since `lead`, until the Changes up to `from` have been seen: judges the reports it read. */
  private catchUp: (() => void) | undefined;

  constructor(private readonly context: DriftContext) {}

  /**
   * Loads each Thing's active release and open drifts, then follows the Log from there (no gap).
   * `judging: false` (a replica that does not hold the `drift` role, docs/replicas.md): it only
   * keeps what drifts as the Log says (the holder's `drift` Changes), until `lead`.
   */
  async start({ judging = true }: { judging?: boolean } = {}): Promise<void> {
    this.judging = judging;
    const at = await this.context.store.lastSeq();
    await this.load(at);
    this.position = at;
    this.follower = this.context.follow((change) => this.observe(change), { after: at });
    await this.follower.ready;
  }

  /**
   * A replica takes the `drift` role over: it judges from the Log as it is now, not from what it
   * kept while another replica judged. Each Thing's active release and open drifts are read again,
   * and each latest report is judged once the Changes up to there have been seen in order (a step
   * being applied then still marks its Thing): a drift the previous holder recorded is not
   * recorded again, one it did not judge before it stopped is.
   */
  async lead(): Promise<void> {
    const at = await this.context.store.lastSeq();
    const reports = await this.load(at, true);
    this.from = at;
    this.catchUp = () => {
      this.catchUp = undefined;
      for (const report of reports) {
        if (this.context.isApplying(report.thing)) this.defer(report);
        else this.judge(report);
      }
    };
    this.judging = true;
    if (this.position >= at) this.catchUp();
  }

  /** The role is lost or given up: what was decided is recorded; it then only keeps what drifts. */
  async suspend(): Promise<void> {
    this.judging = false;
    this.catchUp = undefined;
    await this.chain;
    await Promise.allSettled([...this.pending]);
  }

  /**
   * Reads each Thing's active release and open drifts at `at` into memory (what was kept is
   * dropped); with `reports`, the latest `reported` Change of each affordance a release wants.
   */
  private async load(at: number, reports = false): Promise<Change[]> {
    const { store } = this.context;
    this.active.clear();
    this.drifting.clear();
    this.deferred.clear();
    const latest: Change[] = [];
    const kinds = reports ? [APPLIED_KIND, DRIFT_KIND, "reported"] : [APPLIED_KIND, DRIFT_KIND];
    for await (const record of store.scanThings()) {
      const reported: Change[] = [];
      for (const stream of await store.streamsAt(record.id, at, kinds)) {
        const change = stream.latest;
        if (change.kind === APPLIED_KIND && stream.affordance === "") this.activate(change);
        else if (change.kind === DRIFT_KIND && stream.affordance !== "") this.keep(change);
        else if (change.kind === "reported" && stream.affordance !== "") reported.push(change);
      }
      const wanted = this.active.get(record.id)?.desired;
      if (wanted) latest.push(...reported.filter((c) => Object.hasOwn(wanted, c.affordance ?? "")));
    }
    return latest;
  }

  /** A `drift` Change read from the Log: what drifts now, as it says. */
  private keep(change: Change): void {
    if (change.affordance === undefined) return;
    const value = change.value as DriftValue;
    const k = key(change.thing, change.affordance);
    if (value.status !== "drifting") {
      this.drifting.delete(k);
      return;
    }
    this.drifting.set(k, {
      thing: change.thing,
      affordance: change.affordance,
      release: value.release,
      desired: value.desired,
      observed: value.observed,
      since: value.since,
      policy: value.policy,
      seq: change.seq,
    });
  }

  /** What drifts now, by Thing and affordance. */
  list(thing?: string): DriftEntry[] {
    const entries = [...this.drifting.values()].filter((e) => thing === undefined || e.thing === thing);
    return entries.sort((a, b) =>
      a.thing === b.thing ? (a.affordance < b.affordance ? -1 : 1) : a.thing < b.thing ? -1 : 1,
    );
  }

  /** Stops following; lets the Changes already decided be recorded. */
  async close(): Promise<void> {
    this.stopped = true;
    this.follower?.stop();
    await this.chain;
    await Promise.allSettled([...this.pending]);
  }

  // -------------------------------------------------------------------------------------------

  private activate(change: Change): void {
    const value = change.value as AppliedValue;
    this.active.set(change.thing, { release: value.release, desired: value.desired, drift: value.drift });
  }

  private observe(change: Change): void {
    if (this.stopped) return;
    this.context.seen?.(change);
    this.position = change.seq;
    if (!this.judging) {
      if (change.kind === DRIFT_KIND) this.keep(change);
      else if (change.kind === "removed") this.forget(change.thing);
      return;
    }
    if (change.seq <= this.from) {
      // Read from the store when this replica took the role over: only seen, in order.
      if (change.seq === this.from) this.catchUp?.();
      return;
    }
    this.catchUp?.();
    if (change.kind === APPLIED_KIND && change.affordance === undefined) {
      this.activate(change);
      // What drifted from the previous release may fit this one, or no longer be wanted.
      const active = this.active.get(change.thing);
      for (const entry of this.list(change.thing)) {
        const wanted = active && Object.hasOwn(active.desired, entry.affordance);
        if (!wanted || canonicalJson(active.desired[entry.affordance]) === canonicalJson(entry.observed)) {
          this.resolve(entry, changeTime(change));
        }
      }
      // What the Thing reported while the step was applied, after its writes went through.
      const deferred = this.deferred.get(change.thing);
      this.deferred.delete(change.thing);
      for (const report of deferred?.values() ?? []) this.judge(report);
      return;
    }
    if (change.kind === "removed") {
      this.forget(change.thing);
      return;
    }
    if (change.affordance === undefined) return;
    if (change.kind === "completed") {
      // A report from before a write went through says nothing of the value written.
      this.deferred.get(change.thing)?.delete(change.affordance);
      return;
    }
    if (change.kind !== "reported") return;
    if (this.context.isApplying(change.thing)) {
      // The rollout's doing, or not: the release the step ends with decides.
      this.defer(change);
      return;
    }
    this.deferred.get(change.thing)?.delete(change.affordance);
    this.judge(change);
  }

  /** A report that came while a step was applied to its Thing: judged once the step ends. */
  private defer(change: Change): void {
    if (change.affordance === undefined) return;
    let reports = this.deferred.get(change.thing);
    if (!reports) this.deferred.set(change.thing, (reports = new Map<string, Change>()));
    reports.set(change.affordance, change);
  }

  /** A Thing removed: nothing of it is judged any more. */
  private forget(thing: string): void {
    this.active.delete(thing);
    this.deferred.delete(thing);
    for (const entry of this.list(thing)) this.drifting.delete(key(entry.thing, entry.affordance));
  }

  /** Compares a reported value with the Thing's active release: a drift starts, goes on or ends. */
  private judge(change: Change): void {
    if (change.affordance === undefined) return;
    const active = this.active.get(change.thing);
    if (!active || !Object.hasOwn(active.desired, change.affordance)) return;
    const affordance = change.affordance;
    const desired = active.desired[affordance];
    const observed = canonicalJson(change.value);
    const entry = this.drifting.get(key(change.thing, affordance));
    if (observed === canonicalJson(desired)) {
      if (entry) this.resolve(entry, changeTime(change));
      return;
    }
    // Still drifting, to the same value: nothing new to record — unless a corrective write went
    // out since, which the Thing answered and did not keep: the policy goes on, within its limit.
    if (
      entry &&
      entry.release === active.release &&
      canonicalJson(entry.observed) === observed &&
      !this.reverted.has(entry)
    ) {
      return;
    }
    const next: DriftEntry = {
      thing: change.thing,
      affordance,
      release: active.release,
      desired,
      observed: change.value,
      since: entry?.since ?? changeTime(change),
      policy: active.drift.policy,
    };
    this.drifting.set(key(change.thing, affordance), next);
    const revert = active.drift.policy === "revert" ? this.mayRevert(next, active.drift) : undefined;
    const value: DriftValue = {
      status: "drifting",
      release: next.release,
      desired,
      observed: change.value,
      since: next.since,
      policy: next.policy,
      ...(revert !== undefined && { revert: revert ? "sent" : "rate-limited" }),
    };
    this.record(next, value, async () => {
      if (active.drift.policy === "alert") {
        await this.context.ingest(
          next.thing,
          [{ kind: ALERT_KIND, affordance, value: { about: DRIFT_KIND, ...value } }],
          this.cause(next.release, "alert"),
        );
      }
      if (revert) this.revert(next);
    });
  }

  private resolve(entry: DriftEntry, until: string): void {
    this.drifting.delete(key(entry.thing, entry.affordance));
    const value: DriftValue = {
      status: "resolved",
      release: entry.release,
      desired: entry.desired,
      observed: entry.observed,
      since: entry.since,
      until,
      policy: entry.policy,
    };
    this.record(undefined, value, undefined, entry);
  }

  private cause(release: string, rule?: string): Cause {
    return { actor: DRIFT_ACTOR, via: DRIFT_KIND, release, ...(rule !== undefined && { rule }) };
  }

  /** Appends the drift Change in order with the others, then what the policy says. */
  private record(
    entry: DriftEntry | undefined,
    value: DriftValue,
    then: (() => Promise<void>) | undefined,
    about: DriftEntry | undefined = entry,
  ): void {
    const target = entry ?? about;
    if (!target) return;
    this.chain = this.chain.then(async () => {
      try {
        const [change] = await this.context.ingest(
          target.thing,
          [{ kind: DRIFT_KIND, affordance: target.affordance, value }],
          this.cause(value.release),
        );
        if (entry && change && this.drifting.get(key(entry.thing, entry.affordance)) === entry) {
          entry.seq = change.seq;
        }
        await then?.();
      } catch (err) {
        this.context.logger.error(
          { err, thing: target.thing, affordance: target.affordance },
          "drift not recorded",
        );
      }
    });
  }

  /** Whether the revert limit allows one more corrective write now (and counts it if so). */
  private mayRevert(entry: DriftEntry, settings: DriftSettings): boolean {
    const limits = settings.revert ?? DEFAULT_REVERT_LIMITS;
    const now = this.context.clock.now().getTime();
    const k = key(entry.thing, entry.affordance);
    const recent = (this.reverts.get(k) ?? []).filter((t) => t > now - limits.withinSeconds * 1000);
    if (recent.length >= limits.maxReverts) {
      this.reverts.set(k, recent);
      return false;
    }
    recent.push(now);
    this.reverts.set(k, recent);
    return true;
  }

  /**
   * One corrective write; its own Changes (desired, completed or failed) say how it went. Then,
   * as a rollout does, the property is read back and recorded as `reported`: a Thing that answers
   * the write and keeps its value is judged again (still drifting) instead of passing for reverted.
   */
  private revert(entry: DriftEntry): void {
    const commands = this.context.commands;
    if (!commands) return;
    const requester = { actor: DRIFT_ACTOR, via: DRIFT_KIND, release: entry.release, rule: "revert" };
    const write = (async () => {
      await commands.writeProperty(entry.thing, entry.affordance, entry.desired, requester);
      this.reverted.add(entry);
      await commands.readBack(entry.thing, entry.affordance, requester);
    })().catch((err: unknown) =>
      this.context.logger.warn(
        { err, thing: entry.thing, affordance: entry.affordance },
        "a drift revert failed",
      ),
    );
    this.pending.add(write);
    void write.finally(() => this.pending.delete(write));
  }
}
