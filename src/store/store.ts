// The Store: durable home of the directory and of the Log. One interface, one folder per backend
// (sqlite/ embedded, postgres/ at scale); a shared conformance suite runs against each.
import type {
  Change,
  ChangeInput,
  Cause,
  Checkpoint,
  RegisteredThingDescription,
  Release,
  Rollout,
  RolloutItem,
  RolloutProgress,
  RolloutStep,
  RolloutStepStatus,
} from "../core/index.js";

/** A Thing as the directory holds it: the TD as registered plus registration information. */
export interface ThingRecord {
  id: string;
  td: RegisteredThingDescription;
  /** When the directory first registered this Thing (RFC 3339). */
  created: string;
  /** When its TD last changed in the directory (RFC 3339). */
  modified: string;
  /** Absolute expiry (RFC 3339): the directory drops the TD after it. */
  expires?: string;
  /** Time to live in seconds, as the registrant gave it. */
  ttl?: number;
  /** The `seq` of the last Change to this Thing's description: a version for compare-and-set. */
  version: number;
}

export interface DescribeCommand {
  td: RegisteredThingDescription;
  cause: Cause;
  /** The hub's clock for the Change (`formatHlc`); its wall time is `created`/`modified`. */
  hlc: string;
  expires?: string;
  ttl?: number;
  /**
   * Precondition: `"absent"` — fail with ConflictError if the Thing exists; a number — fail
   * with ConflictError unless the Thing's current `version` equals it; undefined — upsert.
   */
  expect?: "absent" | number;
  /**
   * Changes that follow from this one (the `linked`/`unlinked` edge Changes of the new TD),
   * appended in the same transaction right after the `described` Change, in this order: both
   * commit or neither does. Drafted against the stored TD, so give `expect` with them.
   */
  related?: readonly ChangeDraft[];
}

export interface DescribeResult {
  created: boolean;
  record: ThingRecord;
  change: Change;
  /** The appended `related` Changes, in Log order (empty when none were given). */
  related: Change[];
}

export interface RemoveCommand {
  id: string;
  cause: Cause;
  hlc: string;
  /** As in DescribeCommand: fail with ConflictError unless the version matches. */
  expect?: number;
  /** As in DescribeCommand: appended right after the `removed` Change, in the same transaction. */
  related?: readonly ChangeDraft[];
}

export interface RemoveResult {
  /** The `removed` Change. */
  change: Change;
  /** The appended `related` Changes, in Log order (empty when none were given). */
  related: Change[];
}

/** A Change ready for the Log: everything but its position, which the store assigns. */
export interface ChangeDraft extends ChangeInput {
  hlc: string;
}

/** The global feed's filters; each given one must match. */
export interface ChangeFilter {
  thing?: string;
  /** Any of these Things (the Things of a type). */
  things?: readonly string[];
  /** Only Changes of this affordance: a property, action or event name. */
  affordance?: string;
  kinds?: readonly string[];
  actor?: string;
  release?: string;
  /** The cause's correlation (one command's Changes, one rollout step's). */
  correlation?: string;
}

/** A stretch of the global feed: `after < seq < before`, in either order, filtered, at most `limit`. */
export interface FeedQuery extends ChangeFilter {
  after: number;
  /** Bounds a scan for rare Changes to a stretch of the Log, or a newest-first page to a cursor. */
  before?: number;
  order: "asc" | "desc";
  limit: number;
}

/** A stretch of the Log asked for the Things that changed in it (`Store.changedThings`): oldest first. */
export type ChangedThingsQuery = Omit<FeedQuery, "order">;

/** A Thing with a Change in a stretch of the Log, and the seq of its first one there. */
export interface ChangedThing {
  thing: string;
  first: number;
}

export interface HistoryQuery {
  thing: string;
  affordance?: string;
  kinds?: readonly string[];
  /** Only Changes with `seq` greater than this (a cursor, or the position of `since`). */
  after?: number;
  /** Only Changes with `seq` less than this. */
  before?: number;
  order: "asc" | "desc";
  limit: number;
}

/** One stream of a Thing's history: an affordance (or "" for the Thing itself) and a kind. */
/** One of a Thing's streams: its affordance ("" for the Thing's own) and kind. */
export interface StreamName {
  affordance: string;
  kind: string;
}

/**
 * What makes replicas one hub (docs/replicas.md): its id, and fingerprints (SHA-256, hex) of the
 * public half of its Log's signing key and of the key sealing Things' credentials.
 */
export interface ReplicaIdentity {
  hub: string;
  logKey: string;
  secretsKey: string;
}

/** A stream of any Thing. */
export interface ThingStreamName extends StreamName {
  thing: string;
}

export interface HistoryStream {
  affordance: string;
  kind: string;
  /** The latest Change of the stream at the time asked for. */
  latest: Change;
}

/**
 * The latest committed value of every stream, read synchronously: offered by a store that keeps
 * its state projection in memory (the embedded SQLite store), so that the hub's indexes copy only
 * the values they are asked for instead of every reading, Change by Change (graph-index.ts).
 */
export interface StateView {
  /** The latest committed value of the Thing's stream `(affordance, kind)`, with its seq. */
  latest(thing: string, affordance: string, kind: string): { seq: number; value: unknown } | undefined;
  /** Visits every Thing with a committed value in the stream `(affordance, kind)`. */
  forEach(
    affordance: string,
    kind: string,
    visit: (thing: string, value: unknown, seq: number) => void,
  ): void;
  /**
   * How many Things have a stream `(affordance, kind)`: at least as many as `forEach` visits
   * (streams still in flight count too), for planning.
   */
  count(affordance: string, kind: string): number;
}

/** The Log's head: how many Changes it holds and the RFC 9162 root hash over them. */
export interface LogHead {
  size: number;
  root: Uint8Array;
}

/** A stored release: the document, and the `released` Change that holds it in the Log. */
export interface ReleaseRecord {
  release: Release;
  /** The `seq` of its `released` Change. */
  seq: number;
  /** When the hub stored it (RFC 3339). */
  storedAt: string;
}

export interface PutReleaseCommand {
  release: Release;
  /** The Thing its `released` Change is recorded on (the hub's own id). */
  thing: string;
  cause: Cause;
  hlc: string;
}

export interface PutReleaseResult {
  /** False when a release with this id was already stored: nothing was written. */
  created: boolean;
  record: ReleaseRecord;
  /** The `released` Change, when one was appended. */
  change?: Change;
}

export interface ListReleasesOptions {
  /** Only releases stored before this `seq` (newest first; a cursor). */
  before?: number;
  limit: number;
  name?: string;
}

/** A step's new status (hub/rollouts.ts); with `expect`, only if it is in that status now. */
export interface RolloutStepUpdate {
  status: RolloutStepStatus;
  items?: RolloutItem[];
  reason?: string;
  updated: string;
  expect?: RolloutStepStatus;
}

export interface RolloutStepQuery {
  status?: RolloutStepStatus;
  /** Only steps with `position` greater than this (a cursor). */
  after?: number;
  limit: number;
}

export interface ListRolloutsOptions {
  status?: Rollout["status"];
  release?: string;
  /** Only rollouts with a step being applied (`applying`), ended or not. */
  inFlight?: boolean;
  limit: number;
  offset: number;
}

export interface ListOptions {
  offset: number;
  limit: number;
  /** Only Things whose id sorts after this one: a page that stays right while Things come and go. */
  after?: string;
  /** Leave out Things whose `expires` is at or before this time (RFC 3339). */
  liveAt?: string;
}

/** A role this process holds (Store.holdRole) until it gives it up or loses it. */
export interface HeldRole {
  /** Settles, with why, when the role is no longer held (given up, or the store's session ended). */
  readonly lost: Promise<string>;
  /**
   * Asks the store whether the role is still held: false when it is not, or when the store does
   * not answer in time (the role is then given up, and `lost` settles), since another process
   * may hold it by now.
   */
  confirm(): Promise<boolean>;
  /**
   * Gives the role up: another process can take it, and those waiting for it are told
   * (Store.onRoleGivenUp). Settles once it is given up.
   */
  release(): Promise<void>;
}

export interface Store {
  /** The state projection, where the store keeps it in memory (see StateView); undefined otherwise. */
  readonly stateView?: StateView;
  /**
   * Whether writes are waiting up to the store's bounds, so that a new one would be refused
   * (UnavailableError): an API can then refuse a request before reading its body.
   */
  saturated?(): boolean;
  /**
   * Registers or replaces a TD and appends a `described` Change, then the command's `related`
   * Changes, in one durable transaction.
   */
  describe(command: DescribeCommand): Promise<DescribeResult>;
  /**
   * Several `describe` commands in one durable transaction, in order: every one commits or none
   * does (the first whose precondition fails rejects the call with its ConflictError). The ids are
   * distinct. Results in the commands' order.
   */
  describeAll(commands: readonly DescribeCommand[]): Promise<DescribeResult[]>;
  /**
   * Removes a TD and appends a `removed` Change, then the `related` ones, in one durable
   * transaction; NotFoundError when absent.
   */
  remove(command: RemoveCommand): Promise<RemoveResult>;
  getThing(id: string): Promise<ThingRecord | undefined>;
  /** Things ordered by id. */
  listThings(options: ListOptions): Promise<ThingRecord[]>;
  /** How many Things there are; with `liveAt`, only those unexpired at that time. */
  countThings(liveAt?: string): Promise<number>;
  /**
   * The highest `version` of any stored Thing (0 when there is none). Versions are Log positions,
   * so with the count of Things it names the directory's state: it changes with every
   * registration, update and removal (the `etag` of a listing's canonical link).
   */
  thingsVersion(): Promise<number>;
  /** Every Thing, in id order, in pages — for scans such as JSONPath search. */
  scanThings(batchSize?: number): AsyncIterable<ThingRecord>;
  /** Ids of Things whose `expires` is at or before `time`. */
  expiredThings(time: string, limit: number): Promise<string[]>;
  /**
   * Appends Changes to the Log and updates the state projection, all or nothing, in one durable
   * transaction. A Change with an affordance and no `previous` gets the stream's latest value.
   */
  append(drafts: readonly ChangeDraft[]): Promise<Change[]>;
  /** Changes with `seq > after`, oldest first, at most `limit`, matching the filter. */
  changesAfter(after: number, limit: number, filter?: ChangeFilter): Promise<Change[]>;
  /** The feed's Changes between two seqs, in either order, matching the filter. */
  feed(query: FeedQuery): Promise<Change[]>;
  /**
   * The Things with a Change matching the filter in `after < seq < before`, each once with the
   * seq of its first such Change, in the order of those seqs, at most `limit`: which Things
   * changed in a stretch of the Log, without reading their Changes into JavaScript (a fleet diff
   * reads each Thing's from its history index).
   */
  changedThings(query: ChangedThingsQuery): Promise<ChangedThing[]>;
  getChange(seq: number): Promise<Change | undefined>;
  /** One Thing's Changes, filtered, in either order, a page at a time. */
  history(query: HistoryQuery): Promise<Change[]>;
  /**
   * The latest Change of each of a Thing's streams with `seq <= atSeq` (all when undefined),
   * optionally only of some kinds: the Thing's state as it was at that position.
   */
  streamsAt(thing: string, atSeq?: number, kinds?: readonly string[]): Promise<HistoryStream[]>;
  /** How many Changes one stream has with `after < seq <= upTo`. */
  countStream(thing: string, affordance: string, kind: string, after: number, upTo: number): Promise<number>;
  /**
   * `countStream` of several of a Thing's streams at once, in their order (a diff's changed
   * streams): on PostgreSQL one round trip, however many streams.
   */
  countStreams(thing: string, streams: readonly StreamName[], after: number, upTo: number): Promise<number[]>;
  /**
   * `streamsAt` of several Things at one position, in their order (a page of the fleet's diff): on
   * PostgreSQL one round trip, however many Things.
   */
  streamsAtEach(
    things: readonly string[],
    atSeq: number,
    kinds?: readonly string[],
  ): Promise<HistoryStream[][]>;
  /** `countStream` of streams of several Things at once, in their order: on PostgreSQL one round trip. */
  countStreamsEach(streams: readonly ThingStreamName[], after: number, upTo: number): Promise<number[]>;
  /** The highest `seq` whose `hlc` sorts before `hlc` (0 if none): a time turned into a position. */
  seqBefore(hlc: string): Promise<number>;
  /** The highest `seq` in the Log (0 when empty). */
  lastSeq(): Promise<number>;
  /**
   * Since when, and why, writes fail for want of the file itself (a full disk, an I/O error, a
   * read-only file), when the latest write did; undefined once one commits again. `GET /health`
   * says it, so that a probe sees a hub that takes no write.
   */
  writeFailure(): { since: string; reason: string } | undefined;
  /**
   * Since when, and why, the store's files were changed behind its back in a way it works around
   * but an operator must fix (the SQLite WAL file deleted: restart the hub); undefined while
   * nothing was. `GET /health` says it.
   */
  storageProblem(): { since: string; reason: string } | undefined;
  /**
   * Takes the lock named `role` among the processes on this store, if none holds it, for work one
   * of a hub's replicas does at a time (observation, the expiry sweep, the MQTT gateway on an
   * external broker): undefined when another holds it. Only a store that replicas share has it.
   */
  holdRole?(role: string): Promise<HeldRole | undefined>;
  /**
   * Calls `listener` each time a process gives `role` up (HeldRole.release), so that one waiting
   * for it takes it at once rather than at its next try; settles once the store listens. A holder
   * whose session just ends says nothing: those waiting find the role free at their next try.
   * Resolves to what stops the listening.
   */
  onRoleGivenUp?(role: string, listener: () => void): Promise<() => void>;
  logHead(): Promise<LogHead>;
  /**
   * RFC 9162 subtree hashes of the Log over the half-open ranges `[start, end)` of leaf indexes;
   * with `fromLeaves`, worked out from the leaf hashes alone, not from any subtree stored for
   * speed (slower: for proofs that did not verify against a signed root, notary.ts).
   */
  subtreeHashes(
    ranges: ReadonlyArray<readonly [number, number]>,
    options?: { fromLeaves?: boolean },
  ): Promise<Uint8Array[]>;
  addCheckpoint(checkpoint: Checkpoint): Promise<void>;
  /** Signed checkpoints, oldest first; with `atLeast`, the first one covering that size. */
  checkpoints(options?: { after?: number; limit?: number }): Promise<Checkpoint[]>;
  latestCheckpoint(): Promise<Checkpoint | undefined>;
  /**
   * The identity that the replicas of the hub on this store share, as the first of them recorded
   * it; with `claim`, recorded first when none is (on SQLite, whose file is one hub's, `claim`
   * itself, and nothing without).
   */
  replicaIdentity(claim?: ReplicaIdentity): Promise<ReplicaIdentity | undefined>;
  /**
   * Stores a release and appends its `released` Change (the document is its value), in one
   * durable transaction; a release with the same id already stored is left as it is.
   */
  putRelease(command: PutReleaseCommand): Promise<PutReleaseResult>;
  getRelease(id: string): Promise<ReleaseRecord | undefined>;
  /** Releases, newest first. */
  listReleases(options: ListReleasesOptions): Promise<ReleaseRecord[]>;
  /**
   * Records a rollout and all its steps in one durable transaction; ConflictError when another
   * rollout of the same release is running, or when one of its Things has a step pending in a
   * running rollout or being applied (`applying`) by any rollout, ended or not.
   */
  createRollout(rollout: Rollout, steps: readonly RolloutStep[]): Promise<void>;
  /** Moves a step to a new status, durably; false when `expect` did not hold (nothing written). */
  updateRolloutStep(rollout: string, thing: string, update: RolloutStepUpdate): Promise<boolean>;
  /** Ends a running rollout; `failed` also skips its pending steps. False when it was not running. */
  endRollout(id: string, status: "completed" | "failed", ended: string, reason?: string): Promise<boolean>;
  getRollout(id: string): Promise<Rollout | undefined>;
  /** Rollouts, newest first. */
  listRollouts(options: ListRolloutsOptions): Promise<Rollout[]>;
  /** A rollout's steps in their order of application. */
  rolloutSteps(rollout: string, query: RolloutStepQuery): Promise<RolloutStep[]>;
  /** Every rollout step ever planned for one Thing, newest first. */
  rolloutStepsOfThing(thing: string): Promise<RolloutStep[]>;
  rolloutProgress(rollout: string): Promise<RolloutProgress>;
  /** Waits for queued writes to commit, then releases the database. */
  close(): Promise<void>;
  /**
   * The Changes with `seq > after`, oldest first, at most `limit`, as the Log's entries for
   * verifiers (`GET /log/entries`): NDJSON, one line per Change, each a JSON object of the Change
   * as it is stored now, with the leaf hash recorded when it was appended as a last member
   * `"leaf"` (64 lowercase hex digits). When its other members are written in RFC 8785 form — the
   * canonical JSON its leaf hash covers — a verifier hashes the bytes without re-serialising
   * (`LogVerifier.pushEntry`); any other JSON of the Change verifies the same, more slowly.
   */
  logEntries(after: number, limit: number): Promise<LogEntries>;
}

/** A page of the Log's entries (`Store.logEntries`). */
export interface LogEntries {
  /** The NDJSON: one line per Change, each ending with a line feed (empty when there are none). */
  body: Uint8Array;
  /** How many Changes the page holds. */
  count: number;
  /** The seq of its last Change (`after` when it holds none). */
  last: number;
}
