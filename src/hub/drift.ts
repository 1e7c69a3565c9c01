// Drift: a Thing's reported state that differs from its active release (its latest `applied`
// Change). Each start and end of a drift is a `drift` Change (desired, observed, since when); the
// release's policy decides what follows: `record` (nothing more), `alert` (an `alert` Change, which
// the change stream and the MQTT gateway carry), or `revert` (one corrective write through the
// commands, cause rule `revert`, at most `maxReverts` per Thing and affordance within a window,
// counted from the Log's `drift` Changes so that a restart or a replica taking over counts them too).
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
import { ofRegistration } from "./registration.js";

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
  /**
   * At a start, the Things a rollout step is recorded as being applied to (resumed after drift
   * starts): what they reported is left to the release the step ends with.
   */
  readonly inFlight?: () => Promise<ReadonlySet<string>>;
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
  /**
   * Times (ms) of the reverts sent, by Thing and affordance, within the current window: read from
   * the Log's `drift` Changes the first time a Thing and affordance needs it (after a start or a
   * takeover), then kept as this process sends them.
   */
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
  /**
   * On a replica holding the `drift` role: asks the store whether it still holds it (and gives it
   * up when not), before each drift Change and each corrective write.
   */
  private confirm: (() => Promise<boolean>) | undefined;

  constructor(private readonly context: DriftContext) {}

  /**
   * Loads each Thing's active release and open drifts, then follows the Log from there (no gap).
   * `judging: false` (a replica that does not hold the `drift` role, docs/replicas.md): it only
   * keeps what drifts as the Log says (the holder's `drift` Changes), until `lead`. Judging (a hub
   * alone), it takes up from the Log what the process before it left, as a replica taking the
   * role over does: each latest report is judged (one committed and not judged before the stop is
   * judged now), and each open drift whose corrective write was sent is checked again (`recheck`),
   * before any later Change.
   */
  async start({ judging = true }: { judging?: boolean } = {}): Promise<void> {
    this.judging = judging;
    const at = await this.context.store.lastSeq();
    const { reports, sent } = await this.load(at, judging);
    this.position = at;
    if (judging) {
      const held = (await this.context.inFlight?.()) ?? new Set<string>();
      for (const report of reports) {
        if (held.has(report.thing)) this.defer(report);
        else this.judge(report);
      }
      for (const entry of sent) if (!held.has(entry.thing)) this.recheck(entry);
    }
    this.follower = this.context.follow((change) => this.observe(change), { after: at });
    await this.follower.ready;
  }

  /**
   * A replica takes the `drift` role over: it judges from the Log as it is now, not from what it
   * kept while another replica judged. Each Thing's active release and open drifts are read again,
   * and each latest report is judged once the Changes up to there have been seen in order (a step
   * being applied then still marks its Thing): a drift the previous holder recorded is not
   * recorded again, one it did not judge before it stopped is. `confirm` (the role's): a replica
   * whose role session ended without it hearing of it (the network cut) records no drift Change
   * and sends no corrective write once the store says so, since another replica may judge by now.
   */
  async lead(confirm?: () => Promise<boolean>): Promise<void> {
    this.confirm = confirm;
    const at = await this.context.store.lastSeq();
    const { reports, sent } = await this.load(at, true);
    // Another replica may have sent corrective writes meanwhile: the Log counts them.
    this.reverts.clear();
    this.from = at;
    this.catchUp = () => {
      this.catchUp = undefined;
      for (const report of reports) {
        if (this.context.isApplying(report.thing)) this.defer(report);
        else this.judge(report);
      }
      for (const entry of sent) this.recheck(entry);
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
   * `sent`: the open drifts whose latest `drift` Change sent a corrective write.
   */
  private async load(at: number, reports = false): Promise<{ reports: Change[]; sent: DriftEntry[] }> {
    const { store } = this.context;
    this.active.clear();
    this.drifting.clear();
    this.deferred.clear();
    const latest: Change[] = [];
    const sent: DriftEntry[] = [];
    const kinds = reports ? [APPLIED_KIND, DRIFT_KIND, "reported", "removed"] : [APPLIED_KIND, DRIFT_KIND];
    for await (const record of store.scanThings()) {
      const reported: Change[] = [];
      const streams = await store.streamsAt(record.id, at, kinds);
      // A Thing registered again is judged on what it reported since, not on its old registration's.
      for (const stream of reports ? ofRegistration(streams) : streams) {
        const change = stream.latest;
        if (change.kind === APPLIED_KIND && stream.affordance === "") this.activate(change);
        else if (change.kind === DRIFT_KIND && stream.affordance !== "") {
          const entry = this.keep(change);
          if (entry && (change.value as DriftValue).revert === "sent") sent.push(entry);
        } else if (change.kind === "reported" && stream.affordance !== "") reported.push(change);
      }
      const wanted = this.active.get(record.id)?.desired;
      if (wanted) latest.push(...reported.filter((c) => Object.hasOwn(wanted, c.affordance ?? "")));
    }
    return { reports: latest, sent };
  }

  /** A `drift` Change read from the Log: what drifts now, as it says (the entry, while it drifts). */
  private keep(change: Change): DriftEntry | undefined {
    if (change.affordance === undefined) return undefined;
    const value = change.value as DriftValue;
    const k = key(change.thing, change.affordance);
    if (value.status !== "drifting") {
      this.drifting.delete(k);
      return undefined;
    }
    const entry: DriftEntry = {
      thing: change.thing,
      affordance: change.affordance,
      release: value.release,
      desired: value.desired,
      observed: value.observed,
      since: value.since,
      policy: value.policy,
      seq: change.seq,
    };
    this.drifting.set(k, entry);
    return entry;
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
    if (this.deferred.size > 0) this.deferred.get(change.thing)?.delete(change.affordance);
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
    // With no release active, a report is not even looked up: the Thing's id is read by nothing
    // else when a committed batch is published, and it is out of the CPU's caches by then.
    if (change.affordance === undefined || this.active.size === 0) return;
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
    const settings = active.drift;
    const value: DriftValue = {
      status: "drifting",
      release: next.release,
      desired,
      observed: change.value,
      since: next.since,
      policy: next.policy,
    };
    // Whether the limit allows a corrective write is decided in turn with the drift Changes
    // recorded before it (the Log counts them).
    const decide =
      settings.policy === "revert"
        ? async (): Promise<Partial<DriftValue>> => ({
            revert: (await this.mayRevert(next, settings)) ? "sent" : "rate-limited",
          })
        : undefined;
    this.record(
      next,
      value,
      async (recorded) => {
        if (settings.policy === "alert") {
          await this.context.ingest(
            next.thing,
            [{ kind: ALERT_KIND, affordance, value: { about: DRIFT_KIND, ...recorded } }],
            this.cause(next.release, "alert"),
          );
        }
        if (recorded.revert === "sent") this.revert(next);
      },
      next,
      decide,
    );
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

  /**
   * Appends the drift Change in order with the others (what `decide` adds to it decided in that
   * order too), then what the policy says.
   */
  private record(
    entry: DriftEntry | undefined,
    drafted: DriftValue,
    then: ((value: DriftValue) => Promise<void>) | undefined,
    about: DriftEntry | undefined = entry,
    decide?: () => Promise<Partial<DriftValue>>,
  ): void {
    const target = entry ?? about;
    if (!target) return;
    this.chain = this.chain.then(async () => {
      try {
        if (!(await this.holds())) {
          // Another replica judges from the Log now: what this one kept in memory goes back to it.
          const k = key(target.thing, target.affordance);
          if (entry && this.drifting.get(k) === entry) this.drifting.delete(k);
          else if (!entry && about && !this.drifting.has(k)) this.drifting.set(k, about);
          return;
        }
        const value: DriftValue = decide ? { ...drafted, ...(await decide()) } : drafted;
        const [change] = await this.context.ingest(
          target.thing,
          [{ kind: DRIFT_KIND, affordance: target.affordance, value }],
          this.cause(value.release),
        );
        if (entry && change && this.drifting.get(key(entry.thing, entry.affordance)) === entry) {
          entry.seq = change.seq;
        }
        await then?.(value);
      } catch (err) {
        this.context.logger.error(
          { err, thing: target.thing, affordance: target.affordance },
          "drift not recorded",
        );
      }
    });
  }

  /** Whether this process may still act on drift: a hub alone always; a replica while the store says it holds the role. */
  private async holds(): Promise<boolean> {
    if (this.confirm === undefined || (await this.confirm())) return true;
    this.context.logger.warn(
      "this replica no longer holds the drift role: it records and sends nothing more",
    );
    return false;
  }

  /**
   * Whether the revert limit allows one more corrective write now (and counts it if so). The
   * writes sent before this process judged (before a restart, or by the replica that held the
   * role) are read from the Log the first time: its `drift` Changes that say `revert: sent`.
   */
  private async mayRevert(entry: DriftEntry, settings: DriftSettings): Promise<boolean> {
    const limits = settings.revert ?? DEFAULT_REVERT_LIMITS;
    const now = this.context.clock.now().getTime();
    const since = now - limits.withinSeconds * 1000;
    const k = key(entry.thing, entry.affordance);
    const sent =
      this.reverts.get(k) ?? (await this.sentSince(entry.thing, entry.affordance, since, limits.maxReverts));
    const recent = sent.filter((t) => t > since);
    if (recent.length >= limits.maxReverts) {
      this.reverts.set(k, recent);
      return false;
    }
    recent.push(now);
    this.reverts.set(k, recent);
    return true;
  }

  /**
   * The times (ms) of the latest corrective writes the Log says were sent for the affordance after
   * `since`, oldest first (at most `max`): its `drift` Changes that say `revert: sent`, read back
   * from the newest.
   */
  private async sentSince(thing: string, affordance: string, since: number, max: number): Promise<number[]> {
    const times: number[] = [];
    const limit = 100;
    let before: number | undefined;
    for (;;) {
      const page = await this.context.store.history({
        thing,
        affordance,
        kinds: [DRIFT_KIND],
        order: "desc",
        limit,
        ...(before !== undefined && { before }),
      });
      for (const change of page) {
        const time = Date.parse(changeTime(change));
        if (time <= since || times.length >= max) return times;
        if ((change.value as DriftValue).revert === "sent") times.unshift(time);
      }
      const last = page.at(-1);
      if (last === undefined || page.length < limit) return times;
      before = last.seq;
    }
  }

  /**
   * An open drift whose corrective write the previous holder of the role (or this hub, before it
   * restarted) sent or was sending when it stopped: whether the Thing kept the value is not in the
   * Log yet, or was not judged.
   * The property is read back, as after a write of this process: the value it reports is judged
   * as the answer to that write (resolved, or drifting still: the policy goes on, within its
   * limit). A Thing whose property cannot be read back (written over MQTT) is judged at its next
   * report, the same way.
   */
  private recheck(entry: DriftEntry): void {
    const active = this.active.get(entry.thing);
    if (this.drifting.get(key(entry.thing, entry.affordance)) !== entry) return;
    if (active?.release !== entry.release || active.drift.policy !== "revert") return;
    const commands = this.context.commands;
    // A step applied to the Thing now reads it back itself; the release it ends with decides.
    if (!commands || this.context.isApplying(entry.thing)) return;
    this.reverted.add(entry);
    const requester = { actor: DRIFT_ACTOR, via: DRIFT_KIND, release: entry.release, rule: "revert" };
    const read = commands
      .readBack(entry.thing, entry.affordance, requester)
      .then(() => undefined)
      .catch((err: unknown) =>
        this.context.logger.warn(
          { err, thing: entry.thing, affordance: entry.affordance },
          "a drift's corrective write could not be checked",
        ),
      );
    this.pending.add(read);
    void read.finally(() => this.pending.delete(read));
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
      if (!(await this.holds())) return;
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
