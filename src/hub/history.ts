// History and time travel over the Log: a Thing's Changes, its state at a time, what changed
// between two times, and the global feed. Times become Log positions by binary search on the
// hybrid logical clock, which grows with seq.
import {
  AFFORDANCE_KINDS,
  APPLIED_KIND,
  NotFoundError,
  ValidationError,
  changeTime,
  createMergePatch,
  linkChanges,
  type Change,
  type Cause,
  type EdgeValue,
  type IriScope,
  type ThingDescription,
  echoed,
  quoted,
} from "../core/index.js";
import type { ChangeFilter, HistoryStream, Store, StreamName, ThingStreamName } from "../store/index.js";
import { ALERT_KIND, DRIFT_KIND } from "./drift.js";
import { hlcFloor } from "./hub-clock.js";
import { ofRegistration } from "./registration.js";
import type { SeqSpan, TypeFilter } from "./type-history.js";

/** Seqs of the Log scanned at a time for a feed filter no index serves, and at most per page. */
const FEED_SCAN_STEP = 10_000;
const FEED_SCAN_LIMIT = 100_000;

export interface HistoryOptions {
  affordance?: string;
  kinds?: readonly string[];
  since?: Date;
  until?: Date;
  /** The `seq` of the last Change of the previous page. */
  cursor?: number;
  order: "asc" | "desc";
  limit: number;
}

/** The fleet diff's filters (the feed's), its two times, and its page. */
export interface FleetDiffOptions extends Omit<ChangeFilter, "things"> {
  from: Date;
  to?: Date;
  /** The `next` of the previous page: the seq the scan goes on after. */
  cursor?: number;
  /** At most this many Things. */
  limit: number;
  type?: TypeFilter;
}

/** What changed anywhere between two times: one Thing's diff per Thing that changed, a page of them. */
export interface FleetDiff {
  from: string;
  to: string;
  fromSeq: number;
  toSeq: number;
  /** The diffs, in the order of each Thing's first matching Change in between. */
  things: ThingDiff[];
  /** Give it back as `cursor` for the next page; absent on the last page. */
  next?: number;
}

export interface HistoryPage {
  changes: Change[];
  /** Give it back as `cursor` for the next page; absent on the last page. */
  next?: number;
}

export interface AffordanceState {
  value: unknown;
  seq: number;
  time: string;
  at?: string;
  cause: Cause;
}

export interface ThingState {
  thing: string;
  /** The time asked for, and the last Log position at or before it. */
  at: string;
  seq: number;
  /** The TD the Thing had then. */
  td: unknown;
  /** Each property's latest reported value then. */
  properties: Record<string, AffordanceState>;
  /** Each property's latest desired value then, where one was set. */
  desired: Record<string, AffordanceState>;
}

export interface AffordanceDiff {
  affordance: string;
  /**
   * The value at `from` and at `to`, as `state` says them then: absent where the Thing had none
   * (not reported yet, or reported only by a registration it was removed from since).
   */
  before?: unknown;
  after?: unknown;
  /** How many Changes of the property happened in between. */
  changes: number;
  /** The cause of the last of them. */
  cause?: Cause;
  time?: string;
  /**
   * The last write of the property in between (its `desired` Change: the value asked for, and
   * who asked), when it was written in between: beside `after`, whether the Thing took it.
   */
  desired?: DiffChange;
}

/** An action invoked, a property written, or an event emitted, in between: how often, and the last time. */
export interface InteractionDiff {
  affordance: string;
  /**
   * Changes of each kind in between: `invoked`, `completed`, `failed` (an action), `desired`,
   * `completed`, `failed` (a property's writes), `emitted` (an event).
   */
  counts: Record<string, number>;
  /** The last of them. */
  last: { seq: number; kind: string; value?: unknown; cause: Cause; time: string };
  /**
   * In `writes` only: the property's last `desired` Change in between, the value asked for and
   * who asked (`last` may be the write's outcome, which has no such value).
   */
  desired?: DiffChange;
}

export interface ThingDiff {
  thing: string;
  from: string;
  to: string;
  fromSeq: number;
  toSeq: number;
  /** The TD's change as a JSON merge patch, when it was described anew in between. */
  description?: unknown;
  /**
   * The Thing's own Changes in between (`described`, `removed`), when there were any: how many of
   * each, and who made the last one. A Thing registered and removed in between, or removed and
   * registered again as it was, has no `description` patch (its ends are the same), but has these.
   */
  descriptionChanges?: DescriptionChanges;
  properties: AffordanceDiff[];
  /** The actions invoked, completed or failed in between, by name. */
  actions: InteractionDiff[];
  /**
   * The properties written in between (`desired`, and the `completed` or `failed` that ended each
   * write), by name: who asked for a value, which `properties` shows only as the Thing reported it.
   */
  writes: InteractionDiff[];
  /** The events emitted in between, by name. */
  events: InteractionDiff[];
  /**
   * Whether the Thing answered, when it went away or came back in between (`unreachable` /
   * `reachable` Changes), or when it was unreachable at either end: absent when it was reachable
   * throughout.
   */
  reachability?: ReachabilityDiff;
  /** The `drift` Changes in between (from its active release), when there were any. */
  drift?: DriftDiff;
  /** The links the Thing gained and lost in between (`linked` / `unlinked`), when any changed. */
  links?: LinksDiff;
  /**
   * The releases rolled out to the Thing in between (`applied` Changes, docs/releases.md): how
   * many, and the last, whose value names the release now active; absent when none was.
   */
  releases?: ReleasesDiff;
}

/** The `applied` Changes in between: {applied: count}, and the last (its value the AppliedValue). */
export interface ReleasesDiff {
  counts: Record<string, number>;
  last: DiffChange;
}

/** One Change of the Thing in between, as the diff's sections tell the last of their kind. */
export interface DiffChange {
  seq: number;
  kind: string;
  value?: unknown;
  cause: Cause;
  time: string;
}

/**
 * The Thing's reachability at both ends and in between. A Thing with no `unreachable` Change at
 * or before a time was reachable then (as far as the hub knows: only an outage is recorded).
 */
export interface ReachabilityDiff {
  /**
   * Whether the Thing answered at `from`; absent when it was not in the directory then (not
   * registered yet, or removed), as a property's `before` is absent when it had no value then.
   */
  reachableAtFrom?: boolean;
  /** Whether it answered at `to`; absent when it was not in the directory then (removed). */
  reachableAtTo?: boolean;
  /**
   * `unreachable` (the times it went away) and `reachable` (the times it came back) Changes in
   * between: {kind: count}; empty when it was unreachable all along.
   */
  counts: Record<string, number>;
  /**
   * The latest reachability Change at or before `to`: in between when `counts` has any, else the
   * one from before `from` that began the outage still going on. Its value is the reason.
   */
  last: DiffChange;
}

/** One affordance's `drift` Changes in between, and the `alert` Changes that followed them. */
export interface AffordanceDrift {
  affordance: string;
  /** Its `drift` Changes in between. */
  changes: number;
  /** Its `alert` Changes in between (recorded after a drift under a release's `alert` policy). */
  alerts: number;
  /**
   * The last of its drift and alert Changes (`kind` says which): its value is the drift as
   * recorded ({status, release, desired, observed, since, until?, policy, revert?}; an alert's
   * with `about: "drift"`).
   */
  last: DiffChange;
}

/** The `drift` and `alert` Changes in between: how many, the latest, and by property. */
export interface DriftDiff {
  /** `drift` Changes in between, over all the Thing's properties. */
  changes: number;
  /** `alert` Changes in between, over all the Thing's properties. */
  alerts: number;
  /** The latest of the two kinds, and the property it is about. */
  last: DiffChange & { affordance: string };
  /** By property, in name order: its drift Changes in between and the last (which says whether it still drifts at `to`). */
  properties: AffordanceDrift[];
}

/**
 * The Thing's links at `from` and at `to` compared, and the `linked`/`unlinked` Changes in
 * between: a link added and removed again in between is in `counts`, not in `added`/`removed`.
 */
export interface LinksDiff {
  /** Links the Thing has at `to` and had not at `from`, as its `linked` Change records them. */
  added: EdgeValue[];
  /** Links it had at `from` and has not at `to`, as its `unlinked` Change records them. */
  removed: EdgeValue[];
  /** `linked` and `unlinked` Changes in between: {kind: count}. */
  counts: Record<string, number>;
  /** The last of them (its value the link, {rel, href, type?, anchor?}). */
  last: DiffChange;
}

/** The Thing's TD registered, replaced or removed in between: how often, and the last time. */
export interface DescriptionChanges {
  /** `described` and `removed` Changes in between: {kind: count}. */
  counts: Record<string, number>;
  /** The last of them (its TD is in `description`, or in the state at `to`). */
  last: { seq: number; kind: string; cause: Cause; time: string };
}

/** A diff's two times and their Log positions (the last seq at or before each). */
interface DiffEnds {
  from: Date;
  to: Date;
  fromSeq: number;
  toSeq: number;
}

const ACTION_KINDS = ["invoked", "completed", "failed"];
const WRITE_KINDS = ["desired", "completed", "failed"];
const DESCRIPTION_KINDS = ["described", "removed"];
const EVENT_KINDS = ["emitted"];
const REACHABILITY_KINDS = ["unreachable", "reachable"];
const LINK_KINDS = ["linked", "unlinked"];
/** A drift, and the alert a release's `alert` policy records after it (its value the drift's, with `about: "drift"`). */
const DRIFT_KINDS = [DRIFT_KIND, ALERT_KIND];
const RELEASE_KINDS = [APPLIED_KIND];
/** The streams a diff reads at both ends: the TD, the values, and whether the Thing answered. */
const DIFF_STREAM_KINDS = ["described", "removed", "reported", "desired", ...REACHABILITY_KINDS];
/**
 * And at `to`, also those of every other section, whose Changes in between it counts without
 * another read of the streams.
 */
const DIFF_END_KINDS = [
  ...new Set([
    ...DIFF_STREAM_KINDS,
    ...ACTION_KINDS,
    ...WRITE_KINDS,
    ...EVENT_KINDS,
    ...DRIFT_KINDS,
    ...LINK_KINDS,
    ...RELEASE_KINDS,
  ]),
];

function stateOf(change: Change): AffordanceState {
  return {
    value: change.value,
    seq: change.seq,
    time: changeTime(change),
    ...(change.at !== undefined && { at: change.at }),
    cause: change.cause,
  };
}

export class History {
  /**
   * `now`: the hub's clock; a time at or after it is read as the Log's now (`logNow`, the future's
   * state is not known yet), which is later than `now` when the system clock stepped back behind
   * the Log's last stamp.
   */
  constructor(
    private readonly store: Store,
    private readonly now: () => Date = () => new Date(),
    private readonly logNow: () => Date = now,
    /** The scope a TD's link relations are read in (the directory's): links are compared as it records them. */
    private readonly linkScope?: IriScope,
  ) {}

  /**
   * A time to travel to, no later than now: the state "at 14:02" asked at 13:31 would otherwise
   * be today's, labelled with a time that has not come, and a different one when asked again.
   * Now itself is the Log's now: after the system clock stepped back, the Changes made since are
   * stamped ahead of it (the HLC never goes back), and the state now must include them.
   */
  private notAfterNow(time: Date): Date {
    if (time.getTime() < this.now().getTime()) return time;
    return this.logNow();
  }

  /** NotFoundError unless the Thing was ever in the directory (its history outlives it). */
  async assertKnown(thing: string): Promise<void> {
    const described = await this.store.streamsAt(thing, undefined, ["described"]);
    if (described.length === 0)
      throw new NotFoundError(`No Thing with id ${echoed(thing)} has ever been registered here`);
  }

  /** That a Thing was registered after a Log position, and when: the times to ask for instead. */
  private async registeredAfter(thing: string, seq: number, what: string): Promise<string> {
    const [first] = await this.store.history({
      thing,
      kinds: ["described"],
      after: seq,
      order: "asc",
      limit: 1,
    });
    return first === undefined
      ? "it was registered after that"
      : `it was registered after that, at ${changeTime(first)} (seq ${first.seq}); ask for ${what} from then on`;
  }

  /** The last Log position whose time is at or before `time`. */
  async seqAt(time: Date): Promise<number> {
    return this.store.seqBefore(hlcFloor(new Date(time.getTime() + 1)));
  }

  /** The last Log position whose time is before `time`: the Changes since it follow it. */
  async seqBefore(time: Date): Promise<number> {
    return this.store.seqBefore(hlcFloor(time));
  }

  private async bounds(
    since: Date | undefined,
    until: Date | undefined,
  ): Promise<{ after: number; before: number }> {
    if (since && until && since.getTime() > until.getTime()) {
      throw new ValidationError(`since (${since.toISOString()}) is after until (${until.toISOString()})`, [
        { pointer: "/query/since", message: "must not be after until" },
      ]);
    }
    const after = since ? await this.seqBefore(since) : 0;
    const before = until ? (await this.seqAt(until)) + 1 : Number.MAX_SAFE_INTEGER;
    return { after, before };
  }

  async thingHistory(thing: string, options: HistoryOptions): Promise<HistoryPage> {
    let { after, before } = await this.bounds(options.since, options.until);
    if (options.cursor !== undefined) {
      if (options.order === "asc") after = Math.max(after, options.cursor);
      else before = Math.min(before, options.cursor);
    }
    const changes = await this.store.history({
      thing,
      ...(options.affordance !== undefined && { affordance: options.affordance }),
      ...(options.kinds !== undefined && { kinds: options.kinds }),
      after,
      before,
      order: options.order,
      limit: options.limit + 1,
    });
    if (changes.length === 0 && options.affordance !== undefined)
      await this.assertAffordance(thing, options.affordance);
    const page = changes.slice(0, options.limit);
    const last = page.at(-1);
    return { changes: page, ...(changes.length > options.limit && last && { next: last.seq }) };
  }

  /**
   * ValidationError unless the Thing's TD declares the affordance or the Log holds a Change of it
   * (a property its TD no longer has keeps its history): a name mistyped in a filter would
   * otherwise read as "nothing happened".
   */
  private async assertAffordance(thing: string, name: string): Promise<void> {
    const streams = await this.store.streamsAt(thing);
    if (streams.some((s) => s.affordance === name)) return;
    const td = streams.find((s) => s.kind === "described" && s.affordance === "")?.latest.value;
    const declared = AFFORDANCE_KINDS.flatMap((section) => namesOf(td, section));
    if (declared.includes(name)) return;
    throw new ValidationError(
      `${thing} has no property, action or event ${quoted(name)}, and none by that name has a Change` +
        (declared.length > 0 ? ` (it has ${declared.join(", ")})` : ""),
      [{ pointer: "/query/affordance", message: "is not one of the Thing's affordances" }],
    );
  }

  private async streamsAt(
    thing: string,
    seq: number,
    kinds: readonly string[] = ["described", "removed", "reported", "desired"],
  ): Promise<HistoryStream[]> {
    return this.store.streamsAt(thing, seq, kinds);
  }

  async stateAt(thing: string, asked: Date): Promise<ThingState> {
    const time = this.notAfterNow(asked);
    const seq = await this.seqAt(time);
    const streams = await this.streamsAt(thing, seq);
    const description = latestDescription(streams);
    if (!description) {
      // Never registered, or registered only later: which of the two is what a person needs to know.
      await this.assertKnown(thing);
      throw new NotFoundError(
        `${thing} was not in the directory at ${time.toISOString()}: ${await this.registeredAfter(thing, seq, "a time")}`,
      );
    }
    if (description.kind === "removed") {
      throw new NotFoundError(
        `${thing} was not in the directory at ${time.toISOString()}: it was removed at ${changeTime(description)}`,
      );
    }
    const properties: Record<string, AffordanceState> = {};
    const desired: Record<string, AffordanceState> = {};
    // Registered again after a removal, it has only what it reported or was asked since.
    for (const s of ofRegistration(streams)) {
      if (s.kind === "reported") properties[s.affordance] = stateOf(s.latest);
      if (s.kind === "desired") desired[s.affordance] = stateOf(s.latest);
    }
    return { thing, at: time.toISOString(), seq, td: description.value, properties, desired };
  }

  async diff(thing: string, askedFrom: Date | undefined, askedTo?: Date): Promise<ThingDiff> {
    return this.diffBetween(thing, await this.diffEnds(askedFrom, askedTo));
  }

  /** A diff's two times, as read (after now is now), and their Log positions. */
  private async diffEnds(askedFrom: Date | undefined, askedTo: Date | undefined): Promise<DiffEnds> {
    // Times after now are read as now first. `to` left out is now, read here once: `from=+1m`
    // with it is the empty diff, however the two were read (the clock moves between readings).
    const to = askedTo === undefined ? this.logNow() : this.notAfterNow(askedTo);
    let from = askedFrom === undefined ? to : this.notAfterNow(askedFrom);
    if (askedTo === undefined && from.getTime() > to.getTime()) from = to;
    if (from.getTime() > to.getTime()) {
      throw new ValidationError(`from (${from.toISOString()}) is after to (${to.toISOString()})`, [
        { pointer: "/query/from", message: "must not be after to" },
      ]);
    }
    const [fromSeq, toSeq] = await Promise.all([this.seqAt(from), this.seqAt(to)]);
    return { from, to, fromSeq, toSeq };
  }

  private async diffBetween(thing: string, ends: DiffEnds): Promise<ThingDiff> {
    const [diff] = await this.diffsBetween([thing], ends);
    if (diff === undefined) {
      // An id never registered (a typo, most often) is said as such, as state and history say it.
      await this.assertKnown(thing);
      // Neither end has a Change of its TD: it was registered after `to` (a removal keeps one).
      throw new NotFoundError(
        `${thing} was not in the directory between ${ends.from.toISOString()} and ${ends.to.toISOString()}: ${await this.registeredAfter(thing, ends.toSeq, "times")}`,
      );
    }
    return diff;
  }

  /**
   * The diffs of several Things between the same two ends (undefined for one with no TD at either:
   * not in the directory then), in three store calls whatever their number (on PostgreSQL, two
   * round trips): their streams at both ends, then the counts of every section of every one.
   */
  private async diffsBetween(
    things: readonly string[],
    ends: DiffEnds,
  ): Promise<Array<ThingDiff | undefined>> {
    const [befores, afters] = await Promise.all([
      this.store.streamsAtEach(things, ends.fromSeq, DIFF_STREAM_KINDS),
      this.store.streamsAtEach(things, ends.toSeq, DIFF_END_KINDS),
    ]);
    const asked: Array<{
      streams: ThingStreamName[];
      resolve: (counts: number[]) => void;
      reject: (err: unknown) => void;
    }> = [];
    const diffs = things.map((thing, i) => {
      const before = befores[i] ?? [];
      const after = afters[i] ?? [];
      if (!latestDescription(before) && !latestDescription(after)) return Promise.resolve(undefined);
      return this.diffFrom(
        thing,
        ends,
        before,
        after,
        (streams) =>
          new Promise<number[]>((resolve, reject) => {
            asked.push({
              streams: streams.map(({ affordance, kind }) => ({ thing, affordance, kind })),
              resolve,
              reject,
            });
          }),
      );
    });
    // Each diff has asked for its counts by now (diffFrom asks before its first await): all in one call.
    try {
      const counted = await this.store.countStreamsEach(
        asked.flatMap((a) => a.streams),
        ends.fromSeq,
        ends.toSeq,
      );
      let offset = 0;
      for (const a of asked) a.resolve(counted.slice(offset, (offset += a.streams.length)));
    } catch (err) {
      for (const a of asked) a.reject(err);
    }
    return Promise.all(diffs);
  }

  /**
   * One Thing's diff from its streams at both ends; `count` gives the Changes in between of the
   * streams it names, and is called once, before any await (diffsBetween counts for every Thing at once).
   */
  private async diffFrom(
    thing: string,
    { from, to, fromSeq, toSeq }: DiffEnds,
    before: readonly HistoryStream[],
    after: readonly HistoryStream[],
    count: (streams: readonly StreamName[]) => Promise<number[]>,
  ): Promise<ThingDiff> {
    const properties: AffordanceDiff[] = [];
    const beforeReported = new Map(
      before.filter((s) => s.kind === "reported").map((s) => [s.affordance, s.latest]),
    );
    const desiredBetween = new Map(
      after
        .filter((s) => s.kind === "desired" && s.latest.seq > fromSeq)
        .map((s) => [s.affordance, s.latest]),
    );
    const changed = after.filter(
      (s) => s.kind === "reported" && beforeReported.get(s.affordance)?.seq !== s.latest.seq,
    );
    // The values at either end are those of the Thing's registration then (as `state` says them):
    // one removed and registered again in between has none of its old values at `to`, though
    // the entry still counts and tells them.
    const own = (streams: readonly HistoryStream[]) => new Set(ofRegistration(streams).map((s) => s.latest));
    const ownBefore = own(before);
    const ownAfter = own(after);
    const oldTd = latestDescription(before);
    const newTd = latestDescription(after);
    const description =
      oldTd?.seq !== newTd?.seq ? createMergePatch(oldTd?.value ?? null, newTd?.value ?? null) : undefined;
    // `completed` and `failed` also end a property's write: those are not actions.
    const actionNames = new Set([...namesOf(oldTd?.value, "actions"), ...namesOf(newTd?.value, "actions")]);
    // Every section's streams with Changes in between, from the streams at `to` already read...
    const thingLevel = (s: HistoryStream) => s.affordance === "";
    const groups = [
      changed,
      streamsBetween(after, DESCRIPTION_KINDS, fromSeq, thingLevel),
      streamsBetween(
        after,
        ACTION_KINDS,
        fromSeq,
        (s) => s.kind === "invoked" || actionNames.has(s.affordance),
      ),
      streamsBetween(
        after,
        WRITE_KINDS,
        fromSeq,
        (s) => s.kind === "desired" || !actionNames.has(s.affordance),
      ),
      streamsBetween(after, EVENT_KINDS, fromSeq, () => true),
      streamsBetween(after, REACHABILITY_KINDS, fromSeq, thingLevel),
      streamsBetween(after, DRIFT_KINDS, fromSeq, () => true),
      streamsBetween(after, LINK_KINDS, fromSeq, thingLevel),
      streamsBetween(after, RELEASE_KINDS, fromSeq, thingLevel),
    ];
    // ...and their counts in one store call (one round trip on PostgreSQL, however many streams).
    const counted = await count(groups.flat());
    let offset = 0;
    const [propertyCounts, ...sections] = groups.map((streams) => ({
      streams,
      counts: counted.slice(offset, (offset += streams.length)),
    }));
    const [lifecycleOf, actionsOf, writesOf, eventsOf, turnsOf, driftsOf, linksOf, appliedOf] = sections;
    for (const [i, s] of changed.entries()) {
      const old = beforeReported.get(s.affordance);
      const desired = desiredBetween.get(s.affordance);
      properties.push({
        affordance: s.affordance,
        ...(old && ownBefore.has(old) && { before: old.value }),
        ...(ownAfter.has(s.latest) && { after: s.latest.value }),
        changes: propertyCounts?.counts[i] ?? 0,
        cause: s.latest.cause,
        time: changeTime(s.latest),
        ...(desired !== undefined && { desired: diffChangeOf(desired) }),
      });
    }
    const none: CountedStreams = { streams: [], counts: [] };
    const lifecycle = interactionsOf(lifecycleOf ?? none);
    const actions = interactionsOf(actionsOf ?? none);
    const writes = interactionsOf(writesOf ?? none);
    const events = interactionsOf(eventsOf ?? none);
    const reachability = reachabilityOf(before, after, turnsOf ?? none);
    const drift = driftOf(interactionsOf(driftsOf ?? none));
    const links = this.linksOf(thing, oldTd, newTd, interactionsOf(linksOf ?? none)[0]);
    const applied = interactionsOf(appliedOf ?? none);
    for (const write of writes) {
      const desired = desiredBetween.get(write.affordance);
      if (desired !== undefined) write.desired = diffChangeOf(desired);
    }
    return {
      thing,
      from: from.toISOString(),
      to: to.toISOString(),
      fromSeq,
      toSeq,
      ...(description !== undefined && { description }),
      ...(lifecycle[0] !== undefined && { descriptionChanges: descriptionChangesOf(lifecycle[0]) }),
      properties,
      actions,
      writes,
      events,
      ...(reachability !== undefined && { reachability }),
      ...(drift !== undefined && { drift }),
      ...(links !== undefined && { links }),
      ...(applied[0] !== undefined && { releases: { counts: applied[0].counts, last: applied[0].last } }),
    };
  }

  /**
   * What changed anywhere between two times: the diff of each Thing with a Change matching the
   * filter in between, in the order of its first such Change, a page of `limit` Things at a time.
   * The Things come from the Log's primary key, a stretch of FEED_SCAN_STEP seqs at a time grouped
   * in SQL (`Store.changedThings`), at most FEED_SCAN_LIMIT seqs a page; each Thing's diff costs
   * what `diff` costs (its streams' ranks), whatever the range. A Thing whose first matching
   * Change in between lies before the page's start was on an earlier page: one lookup in its
   * history index tells. `next` is the seq to go on after; absent on the last page. With an
   * `affordance`, each diff keeps that affordance's entries only.
   */
  async fleetDiff(options: FleetDiffOptions): Promise<FleetDiff> {
    const { from: askedFrom, to: askedTo, cursor, limit, type, ...filter } = options;
    const ends = await this.diffEnds(askedFrom, askedTo);
    const { fromSeq, toSeq } = ends;
    if (cursor !== undefined && (cursor < fromSeq || cursor > toSeq)) {
      throw new ValidationError(
        `cursor ${cursor} is not within the diff's seqs (${fromSeq} to ${toSeq}): it is not a next this diff gave; start again without it`,
        [{ pointer: "/query/cursor", message: `must be from ${fromSeq} to ${toSeq}` }],
      );
    }
    const answer = (things: ThingDiff[], next?: number): FleetDiff => ({
      from: ends.from.toISOString(),
      to: ends.to.toISOString(),
      fromSeq,
      toSeq,
      things,
      ...(next !== undefined && { next }),
    });
    // A type no Thing ever had, or that the Thing asked for never had: nothing matches.
    if (
      type !== undefined &&
      (type.things.size === 0 || (filter.thing !== undefined && !type.things.has(filter.thing)))
    )
      return answer([]);
    const start = Math.max(fromSeq, cursor ?? fromSeq);
    // No Change past the descriptions the type filter knows: as if the page were read then.
    const high = Math.min(toSeq, type === undefined ? toSeq : type.upTo) + 1;
    const diffs: ThingDiff[] = [];
    const seen = new Set<string>();
    let low = start;
    let scanned = 0;
    while (low + 1 < high) {
      if (scanned >= FEED_SCAN_LIMIT) return answer(diffs, low);
      let stretch = { after: low, before: Math.min(low + FEED_SCAN_STEP + 1, high) };
      let things: string[] | undefined;
      if (type !== undefined) {
        const piece = type.piece(stretch.after, stretch.before, "asc");
        stretch = { after: piece.after, before: piece.before };
        things = piece.things;
      }
      const changed =
        things !== undefined && things.length === 0
          ? []
          : await this.store.changedThings({
              ...filter,
              ...(things && { things }),
              ...stretch,
              limit: FEED_SCAN_STEP + 1,
            });
      const fresh = changed.filter(({ thing }) => !seen.has(thing));
      for (const { thing } of fresh) seen.add(thing);
      // As many at once as the page has room for (one more when it is full, to tell whether there
      // are more): their diffs are read together (diffsBetween), in two round trips on PostgreSQL.
      for (let i = 0; i < fresh.length;) {
        const room = limit - diffs.length;
        const batch = fresh.slice(i, i + Math.max(room, 1));
        i += batch.length;
        const earlier =
          start > fromSeq
            ? await Promise.all(
                batch.map(({ thing }) => this.matchedBefore(thing, filter, type, fromSeq, start + 1)),
              )
            : [];
        const kept = batch.filter((_, k) => earlier[k] !== true);
        if (room === 0) {
          if (kept[0] !== undefined) return answer(diffs, kept[0].first - 1);
          continue;
        }
        // A Thing never in the directory (the hub's own id, on which releases are recorded) has
        // no diff: GET /releases tells its Changes.
        const got = await this.diffsBetween(
          kept.map(({ thing }) => thing),
          ends,
        );
        for (const diff of got) {
          if (diff !== undefined)
            diffs.push(filter.affordance === undefined ? diff : narrowed(diff, filter.affordance));
        }
      }
      scanned += stretch.before - stretch.after - 1;
      low = stretch.before - 1;
      await new Promise((resolve) => setImmediate(resolve));
    }
    return answer(diffs);
  }

  /** Whether the Thing has a Change matching the filter in `(after, before)`: from its history index. */
  private async matchedBefore(
    thing: string,
    filter: Omit<ChangeFilter, "things">,
    type: TypeFilter | undefined,
    after: number,
    before: number,
  ): Promise<boolean> {
    const query = { ...filter, thing };
    if (type !== undefined)
      return (await this.thingOfType(query, type.spansOf(thing), after, before, "asc", 1)).length > 0;
    return (await this.store.feed({ ...query, after, before, order: "asc", limit: 1 })).length > 0;
  }

  /**
   * The links at both ends compared: the edges of the TDs then, as the directory compares them
   * when it records `linked`/`unlinked` (no Change is read beyond the two TDs the diff has);
   * undefined when no link Change happened in between.
   */
  private linksOf(
    thing: string,
    oldTd: Change | undefined,
    newTd: Change | undefined,
    changes: InteractionDiff | undefined,
  ): LinksDiff | undefined {
    if (changes === undefined) return undefined;
    const tdOf = (c: Change | undefined) =>
      c?.kind === "described" ? (c.value as Pick<ThingDescription, "links" | "@context">) : undefined;
    const edges = linkChanges(thing, tdOf(oldTd), tdOf(newTd), { actor: "" }, this.linkScope);
    const added = edges.filter((e) => e.kind === "linked").map((e) => e.value as EdgeValue);
    const removed = edges.filter((e) => e.kind === "unlinked").map((e) => e.value as EdgeValue);
    return { added, removed, counts: changes.counts, last: changes.last };
  }

  /**
   * The global feed, oldest first (or newest first with `order: "desc"`, the cursor then being
   * the last seq shown, the page before it). Filters no index serves (a type, kinds, an
   * affordance, without a Thing; an actor, release, correlation) go to the store, which filters in SQL, over stretches of
   * FEED_SCAN_STEP seqs with the event loop let go between them, so that a page holds `limit` of
   * the matching Changes where there are that many, not a page of the whole Log with the others
   * taken out; at most FEED_SCAN_LIMIT seqs are scanned for one page, and a page cut short there
   * says with `next` where to go on. A type is matched as of each Change (type-history.ts): a
   * stretch is cut where a Thing became of the type or stopped being so, and each piece asks the
   * store for the Changes of the Things of the type all through it.
   */
  async changes(
    filter: Omit<ChangeFilter, "things"> & {
      since?: Date;
      until?: Date;
      cursor?: number;
      limit: number;
      order?: "asc" | "desc";
      type?: TypeFilter;
    },
  ): Promise<HistoryPage> {
    const { since, until, cursor, limit, type, order = "asc", ...rest } = filter;
    // A type no Thing ever had, or that the Thing asked for never had: no Change matches.
    if (
      type !== undefined &&
      (type.things.size === 0 || (rest.thing !== undefined && !type.things.has(rest.thing)))
    )
      return { changes: [] };
    const bounds = await this.bounds(since, until);
    let after = bounds.after;
    let before: number | undefined = until === undefined ? undefined : bounds.before;
    if (cursor !== undefined) {
      if (order === "asc") after = Math.max(after, cursor);
      else before = Math.min(before ?? cursor, cursor);
    }
    // No Change past the descriptions the type filter knows: as if the page were read then.
    if (type !== undefined) before = Math.min(before ?? Number.MAX_SAFE_INTEGER, type.upTo + 1);
    const pageOf = (changes: Change[]): HistoryPage => {
      const page = changes.slice(0, limit);
      const last = page.at(-1);
      return { changes: page, ...(changes.length > limit && last && { next: last.seq }) };
    };
    // The history index serves a Thing and its kinds; the other filters the store checks on the
    // rows it reads, so they are scanned a stretch at a time (a rare actor on a Log of 1M Changes
    // is otherwise one read of the whole Log, or of the whole Thing's, with the event loop held).
    const scan =
      rest.actor !== undefined ||
      rest.release !== undefined ||
      rest.correlation !== undefined ||
      (rest.thing === undefined &&
        (type !== undefined || rest.kinds !== undefined || rest.affordance !== undefined));
    if (!scan) {
      if (type !== undefined && rest.thing !== undefined)
        return pageOf(
          await this.thingOfType(rest, type.spansOf(rest.thing), after, before, order, limit + 1),
        );
      return pageOf(
        await this.store.feed({
          ...rest,
          after,
          ...(before !== undefined && { before }),
          order,
          limit: limit + 1,
        }),
      );
    }
    // One stretch of seqs at a time, (low, high) open: from the start (asc) or the end (desc).
    // A Log of 200,000 Changes read into JavaScript instead held the event loop for ~340 ms.
    const found: Change[] = [];
    let low = after;
    let high = Math.min(before ?? Number.MAX_SAFE_INTEGER, (await this.store.lastSeq()) + 1);
    let scanned = 0;
    while (low + 1 < high) {
      if (scanned >= FEED_SCAN_LIMIT) return { changes: found, next: order === "asc" ? low : high };
      let stretch =
        order === "asc"
          ? { after: low, before: Math.min(low + FEED_SCAN_STEP + 1, high) }
          : { after: Math.max(high - FEED_SCAN_STEP - 1, low), before: high };
      let things: string[] | undefined;
      if (type !== undefined) {
        const piece = type.piece(stretch.after, stretch.before, order);
        stretch = { after: piece.after, before: piece.before };
        things = piece.things;
      }
      if (things === undefined || things.length > 0) {
        found.push(
          ...(await this.store.feed({
            ...rest,
            ...(things && { things }),
            ...stretch,
            order,
            limit: limit + 1 - found.length,
          })),
        );
      }
      if (found.length > limit) return pageOf(found);
      scanned += stretch.before - stretch.after - 1;
      if (order === "asc") low = stretch.before - 1;
      else high = stretch.after + 1;
      await new Promise((resolve) => setImmediate(resolve));
    }
    return { changes: found };
  }

  /**
   * One Thing's Changes while it was of a type, from its history index: span by span (a Thing
   * re-described with other types has several), each bounded to the page's seqs.
   */
  private async thingOfType(
    filter: Omit<ChangeFilter, "things">,
    spans: readonly SeqSpan[],
    after: number,
    before: number | undefined,
    order: "asc" | "desc",
    limit: number,
  ): Promise<Change[]> {
    const found: Change[] = [];
    for (const span of order === "asc" ? spans : [...spans].reverse()) {
      const low = Math.max(after, span.from - 1);
      const high = Math.min(before ?? Number.MAX_SAFE_INTEGER, span.to);
      if (low + 1 >= high) continue;
      found.push(
        ...(await this.store.feed({
          ...filter,
          after: low,
          before: high,
          order,
          limit: limit - found.length,
        })),
      );
      if (found.length >= limit) break;
    }
    return found;
  }
}

/**
 * A Thing's diff narrowed to one affordance: its entries in properties, writes, actions, events
 * and drift; the Thing's own sections (its TD, reachability, links, releases) are about none.
 */
function narrowed(diff: ThingDiff, affordance: string): ThingDiff {
  const only = <T extends { affordance: string }>(list: readonly T[]) =>
    list.filter((entry) => entry.affordance === affordance);
  const drift =
    diff.drift &&
    driftOf(
      only(diff.drift.properties).map((p) => ({
        affordance: p.affordance,
        counts: { [DRIFT_KIND]: p.changes, [ALERT_KIND]: p.alerts },
        last: p.last,
      })),
    );
  return {
    thing: diff.thing,
    from: diff.from,
    to: diff.to,
    fromSeq: diff.fromSeq,
    toSeq: diff.toSeq,
    properties: only(diff.properties),
    actions: only(diff.actions),
    writes: only(diff.writes),
    events: only(diff.events),
    ...(drift !== undefined && { drift }),
  };
}

/** The names a TD declares in one of its affordance sections (`properties`, `actions`, `events`). */
function namesOf(td: unknown, section: string): string[] {
  const group = typeof td === "object" && td !== null ? (td as Record<string, unknown>)[section] : undefined;
  return typeof group === "object" && group !== null ? Object.keys(group) : [];
}

/** The TD's Changes in between, without the TD itself (the patch carries what changed). */
function descriptionChangesOf({ counts, last }: InteractionDiff): DescriptionChanges {
  return { counts, last: { seq: last.seq, kind: last.kind, cause: last.cause, time: last.time } };
}

function diffChangeOf(change: Change): DiffChange {
  return {
    seq: change.seq,
    kind: change.kind,
    ...(change.value !== undefined && { value: change.value }),
    cause: change.cause,
    time: changeTime(change),
  };
}

/** The drift section from each property's drift and alert Changes in between; undefined when none. */
function driftOf(properties: readonly InteractionDiff[]): DriftDiff | undefined {
  let changes = 0;
  let alerts = 0;
  let last: DriftDiff["last"] | undefined;
  const byProperty: AffordanceDrift[] = [];
  for (const p of properties) {
    const count = p.counts[DRIFT_KIND] ?? 0;
    const alerted = p.counts[ALERT_KIND] ?? 0;
    changes += count;
    alerts += alerted;
    byProperty.push({ affordance: p.affordance, changes: count, alerts: alerted, last: p.last });
    if (last === undefined || p.last.seq > last.seq) last = { ...p.last, affordance: p.affordance };
  }
  return last === undefined ? undefined : { changes, alerts, last, properties: byProperty };
}

/** The newest Change among a Thing's streams of these kinds that are about no affordance. */
function latestOf(streams: readonly HistoryStream[], kinds: readonly string[]): Change | undefined {
  let latest: Change | undefined;
  for (const s of streams) {
    if (s.affordance !== "" || !kinds.includes(s.kind)) continue;
    if (!latest || s.latest.seq > latest.seq) latest = s.latest;
  }
  return latest;
}

function latestDescription(streams: readonly HistoryStream[]): Change | undefined {
  return latestOf(streams, ["described", "removed"]);
}

/** The streams `latestReachability` reads: a Thing's reachability, and its removals. */
export const REACHABILITY_STREAM_KINDS: readonly string[] = ["reachable", "unreachable", "removed"];

/**
 * The latest `reachable` or `unreachable` Change of the Thing's current registration among its
 * streams (none: never away since it was registered). A Thing removed and registered again starts
 * over: a reachability Change from before its last `removed` is of the old registration, and does
 * not make the new one unreachable. `streams` must hold the Thing's `removed` stream
 * (REACHABILITY_STREAM_KINDS) for that.
 */
export function latestReachability(streams: readonly HistoryStream[]): Change | undefined {
  const latest = latestOf(streams, REACHABILITY_KINDS);
  const removed = latestOf(streams, ["removed"]);
  return latest !== undefined && (removed === undefined || latest.seq > removed.seq) ? latest : undefined;
}

/** A diff section's streams, and how many Changes each has in between (in the same order). */
interface CountedStreams {
  readonly streams: readonly HistoryStream[];
  readonly counts: readonly number[];
}

/**
 * The streams at `to` of `kinds` with a Change in between (after `fromSeq`) that `keep` keeps, in
 * the kinds' own order (invoked, completed, failed), so that each one's counts are too.
 */
function streamsBetween(
  atTo: readonly HistoryStream[],
  kinds: readonly string[],
  fromSeq: number,
  keep: (stream: HistoryStream) => boolean,
): HistoryStream[] {
  return atTo
    .filter((s) => kinds.includes(s.kind) && s.latest.seq > fromSeq && keep(s))
    .sort((a, b) => kinds.indexOf(a.kind) - kinds.indexOf(b.kind));
}

/**
 * A section's entries by affordance name, from its streams (`streamsBetween`) and their counts
 * in between (from the streams' ranks, so the cost does not grow with the range).
 */
function interactionsOf({ streams, counts }: CountedStreams): InteractionDiff[] {
  const byName = new Map<string, InteractionDiff>();
  for (const [i, s] of streams.entries()) {
    const count = counts[i] ?? 0;
    const { latest } = s;
    const last = {
      seq: latest.seq,
      kind: latest.kind,
      ...(latest.value !== undefined && { value: latest.value }),
      cause: latest.cause,
      time: changeTime(latest),
    };
    const known = byName.get(s.affordance);
    if (!known) byName.set(s.affordance, { affordance: s.affordance, counts: { [s.kind]: count }, last });
    else {
      known.counts[s.kind] = count;
      if (last.seq > known.last.seq) known.last = last;
    }
  }
  return [...byName.values()].sort((a, b) => a.affordance.localeCompare(b.affordance));
}

/**
 * Reachability at both ends (from the streams already read) and the turns in between (`turns`:
 * the reachability streams with Changes in between, counted); undefined when the Thing was reachable
 * throughout.
 */
function reachabilityOf(
  before: readonly HistoryStream[],
  after: readonly HistoryStream[],
  turns: CountedStreams,
): ReachabilityDiff | undefined {
  // The last turn may be of an earlier registration (it says what happened); whether the Thing
  // answered at either end is of the registration then (latestReachability).
  const last = latestOf(after, REACHABILITY_KINDS);
  if (last === undefined) return undefined;
  // Reachable or not only where it was in the directory: a Thing not registered yet did not exist.
  const registered = (streams: readonly HistoryStream[]) => latestDescription(streams)?.kind === "described";
  const reachableAtFrom = registered(before) ? latestReachability(before)?.kind !== "unreachable" : undefined;
  const reachableAtTo = registered(after) ? latestReachability(after)?.kind !== "unreachable" : undefined;
  const counts: Record<string, number> = {};
  for (const [i, s] of turns.streams.entries()) counts[s.kind] = turns.counts[i] ?? 0;
  if (Object.keys(counts).length === 0 && reachableAtFrom !== false && reachableAtTo !== false)
    return undefined;
  return {
    ...(reachableAtFrom !== undefined && { reachableAtFrom }),
    ...(reachableAtTo !== undefined && { reachableAtTo }),
    counts,
    last: diffChangeOf(last),
  };
}
