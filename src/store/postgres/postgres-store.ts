// The Store on PostgreSQL (`pg`), for scale: the same contract as the embedded SQLite store, in a
// schema of its own. Writes are group-committed: concurrent calls queue, and one transaction takes
// what is waiting, locks the Log's head row (so that any number of processes append one
// transaction at a time, without gaps), writes its rows in one statement and commits; each
// call's promise settles only after COMMIT.
import type pg from "pg";
import {
  ConflictError,
  DamagedLogError,
  HASH_LENGTH,
  MerkleFrontier,
  NotFoundError,
  UnavailableError,
  changeTime,
  isPowerOfTwo,
  largestPowerOfTwoBelow,
  nodeHash,
  rootHash,
  type Change,
  type Checkpoint,
  type RegisteredThingDescription,
  type Release,
  type Rollout,
  type RolloutProgress,
  type RolloutStep,
} from "../../core/index.js";
import { asRecorded, recordedCause, toChange, type ChangeRow, type Recorded } from "../recorded-json.js";
import { queueRefusal } from "../write-queue.js";
import type {
  ChangeDraft,
  ChangeFilter,
  DescribeCommand,
  DescribeResult,
  ChangedThing,
  ChangedThingsQuery,
  FeedQuery,
  HeldRole,
  HistoryQuery,
  HistoryStream,
  ListOptions,
  ListReleasesOptions,
  ListRolloutsOptions,
  LogEntries,
  LogHead,
  PutReleaseCommand,
  PutReleaseResult,
  ReleaseRecord,
  RemoveCommand,
  RemoveResult,
  RolloutStepQuery,
  RolloutStepUpdate,
  StreamName,
  ThingStreamName,
  ReplicaIdentity,
  Store,
  ThingRecord,
} from "../store.js";
import { checkDescribeExpectation, describedRecord } from "../thing-rows.js";
import {
  BLOCK,
  EMPTY_STREAM,
  FLUSH_SQL,
  LogBatch,
  streamKey,
  type RecordedDraft,
  type StreamTail,
  type ThingState,
} from "./postgres-batch.js";
import {
  createPool,
  isLostConnection,
  isUnavailability,
  migrate,
  redactedUrl,
  schemaOf,
  timeoutsOf,
  unreachable,
  UNWRITABLE_RETRY_AFTER_S,
  unwritten,
  type PostgresConnectionOptions,
  type RestoredGuard,
} from "./postgres-connection.js";
import { logEntriesOf } from "./postgres-log-reader.js";
import * as rollouts from "./postgres-rollouts.js";

/**
 * Sessions for roles at once, at most: one per role a hub elects (observation, expiry sweep, MQTT
 * gateway, rollouts, drift), one listening for roles given up (onRoleGivenUp), and one spare.
 */
const ROLE_SESSIONS = 7;
/** How long a role given up may take to be unlocked and said on its session before the session is just closed. */
const ROLE_RELEASE_TIMEOUT_MS = 1_000;
/** The channel on which a process that gives a role up says so (NOTIFY): the payload is the role's lock name. */
const ROLE_CHANNEL = "hyperthings_roles";
/** How long after its session ended the listening for roles given up starts again. */
const ROLE_LISTEN_RETRY_MS = 2_000;
/** How long a role's session may take to say it is alive (HeldRole.confirm) before the role is taken as lost. */
const ROLE_CONFIRM_TIMEOUT_MS = 5_000;

export interface PostgresStoreOptions extends PostgresConnectionOptions {
  /** Commands waiting beyond this many are refused with UnavailableError (backpressure). */
  maxQueue?: number;
  /** Changes waiting in appends beyond this many are refused too (default 100,000); a call alone is always taken. */
  maxQueuedChanges?: number;
  /** At most this many commands share one transaction (default 1,000). */
  maxBatch?: number;
  /**
   * Hold a session advisory lock on the schema for as long as the store is open, and refuse to
   * open while another holder has it: one hub per schema (several replicas need the NATS bus).
   */
  exclusive?: boolean;
  /**
   * Hold the schema's lock shared with other replicas instead (docs/replicas.md): any number of
   * replicas, but no hub that holds it alone, and none of them while such a hub runs.
   */
  replica?: boolean;
}

interface ThingRow {
  id: string;
  td: string;
  created: string;
  modified: string;
  expires: string | null;
  ttl: number | null;
  version: number;
}

interface Pending {
  /** A command over the batch's state (the Log, the directory, releases, checkpoints). */
  log?: (batch: LogBatch) => unknown;
  /** A command of its own statements (the rollout ledger), run in a savepoint after the Log's rows. */
  sql?: (client: pg.PoolClient) => Promise<unknown>;
  /** What `log` reads: Things, releases, the streams of drafts. */
  things?: readonly string[];
  releases?: readonly string[];
  drafts?: readonly RecordedDraft[];
  /** The Thing-level streams (Thing, kind) `log` appends to besides its drafts'. */
  appends?: ReadonlyArray<readonly [thing: string, kind: string]>;
  /** How many Changes it appends (for maxQueuedChanges). */
  changes: number;
  /** When (performance.now()) it is answered at the latest: queued at + query_timeout. */
  deadline: number;
  resolve: (value: unknown) => void;
  reject: (error: unknown) => void;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/** The store's streams and their latest values, kept in memory, beyond which they start again. */
const MAX_CACHED_STREAMS = 1_000_000;
/** Another process appended at most this many Changes since this one's last batch: read them. */
const MAX_CATCH_UP = 10_000;
/** Stored subtrees this large and up are kept in memory once read (a proof's upper levels). */
const CACHED_LEVEL = 10;
const MAX_CACHED_NODES = 65_536;
/** The first wait before PostgreSQL is tried again after losing it, doubled up to the second. */
const RECOVERY_FIRST_MS = 250;
const RECOVERY_MAX_MS = 5_000;
/** The highest seq a bound can name. */
const NO_BOUND = Number.MAX_SAFE_INTEGER;
/** The ordinal of stream ($1, `affordance`, `kind`)'s latest Change at or before seq `bound` (0: none). */
const ordinalAt = (
  bound: string,
  affordance = "$2",
  kind = "$3",
  thing = "$1",
) => `coalesce((SELECT ordinal FROM changes
  WHERE thing = ${thing} AND coalesce(affordance, '') = ${affordance} AND kind = ${kind} AND seq <= ${bound}
  ORDER BY seq DESC LIMIT 1), 0)`;

function toRecord(row: ThingRow, td: RegisteredThingDescription): ThingRecord {
  const record: ThingRecord = {
    id: row.id,
    td,
    created: row.created,
    modified: row.modified,
    version: row.version,
  };
  if (row.expires !== null) record.expires = row.expires;
  if (row.ttl !== null) record.ttl = row.ttl;
  return record;
}

/** Drafts recorded, a cause shared by several serialised once. */
function recordDrafts(drafts: readonly ChangeDraft[]): RecordedDraft[] {
  let source: unknown;
  let cause: Recorded | undefined;
  return drafts.map((draft) => {
    if (cause === undefined || draft.cause !== source) {
      source = draft.cause;
      cause = recordedCause(draft.cause);
    }
    return {
      draft,
      value: draft.value === undefined ? undefined : asRecorded(draft.value),
      previous: draft.previous === undefined ? undefined : asRecorded(draft.previous),
      cause,
    };
  });
}

/** How a store holds the schema's advisory lock: alone (`exclusive`), or with other replicas. */
type LockMode = "exclusive" | "shared";

/**
 * A backend of the server, as the lock check names it: a pid alone may name another backend once
 * this one has ended (the OS reuses pids), its start time with it does not.
 */
export interface Backend {
  pid: number;
  /** pg_stat_activity.backend_start, in microseconds since 1970 (BACKEND_START). */
  started: string;
}

/** A backend's start time as `Backend.started` holds it, from pg_stat_activity row `a`. */
const BACKEND_START = "(extract(epoch FROM a.backend_start) * 1000000)::bigint";

/**
 * Takes the schema's session advisory lock on `client` if nobody holds it the other way; the
 * client's backend when it does.
 */
async function takeLock(client: pg.PoolClient, mode: LockMode, schema: string): Promise<Backend | undefined> {
  const { rows } = await client.query<{ locked: boolean; pid: number; started: string }>(
    `SELECT ${mode === "shared" ? "pg_try_advisory_lock_shared" : "pg_try_advisory_lock"}(hashtext($1)) AS locked,
       a.pid, ${BACKEND_START}::text AS started FROM pg_stat_activity a WHERE a.pid = pg_backend_pid()`,
    [`hyperthings:hub:${schema}`],
  );
  const row = rows[0];
  return row?.locked === true ? { pid: row.pid, started: row.started } : undefined;
}

/**
 * The statement each batch runs after locking the Log's head row (see `transaction`): whether
 * `holder` — that backend, not whichever has its pid now — still holds the schema's lock.
 */
export function lockHeldCheck(schema: string, holder: Backend): string {
  if (!Number.isSafeInteger(holder.pid) || !/^-?\d+$/.test(holder.started)) {
    throw new Error(`not a backend: ${JSON.stringify(holder)}`);
  }
  // The lock as pg_locks lists it: a bigint key in classid (high half) and objid (low half).
  return `SELECT EXISTS (SELECT FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
        WHERE l.locktype = 'advisory' AND l.pid = ${holder.pid} AND ${BACKEND_START} = ${holder.started}
        AND l.granted AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
        AND l.objsubid = 1 AND ((l.classid::bigint << 32) | l.objid::bigint) = hashtext('hyperthings:hub:${schema}')::bigint) AS held`;
}

/** A call refused before it was queued (its values cannot be recorded), as a rejected promise. */
function refuse(error: unknown): Promise<never> {
  return Promise.reject(error instanceof Error ? error : new Error(String(error)));
}

export class PostgresStore implements Store {
  /**
   * The guard triggers this opening found missing, disabled or altered and put back: the hub says
   * so at start; `things verify` tells whether the Log itself was altered meanwhile.
   */
  readonly restoredGuards: readonly RestoredGuard[];
  readonly schema: string;

  private readonly pool: pg.Pool;
  private readonly where: string;
  private readonly maxQueue: number;
  private readonly maxQueuedChanges: number;
  private readonly maxBatch: number;
  /** How this store holds the schema's advisory lock, if it does (`exclusive`, `replica`). */
  private readonly lockMode: LockMode | undefined;
  /** The session holding the schema's advisory lock, while it holds it. */
  private lockClient: pg.PoolClient | undefined;
  /**
   * The statement each batch runs after locking the Log's head row: whether `lockClient`'s
   * backend still holds the schema's lock (see `transaction`); undefined while it is not held.
   */
  private lockCheck: string | undefined;

  private queue: Pending[] = [];
  private queuedChanges = 0;
  private running = false;
  private scheduled = false;
  private closed = false;
  private closing: Promise<void> | undefined;
  private drained: (() => void) | undefined;
  private failing: { since: string; reason: string; lostConnection: boolean } | undefined;
  /** Why writes are refused for want of the schema's lock; `final` when only a restart ends it. */
  private lockLost: { since: string; reason: string; final: boolean } | undefined;
  /** The next attempt to take the schema's lock back. */
  private retaking: NodeJS.Timeout | undefined;
  /** Milliseconds a write is waited for, queued and sent (query_timeout). */
  private readonly queryMs: number;
  /** Refuses the calls waiting past their deadline (armExpiry). */
  private expiry: NodeJS.Timeout | undefined;
  /** The roles held (holdRole), given up at close. */
  private readonly roles = new Set<() => Promise<void>>();
  /** Who is told when a role is given up (onRoleGivenUp), by the role's lock name. */
  private readonly roleWaiters = new Map<string, Set<() => void>>();
  /** The session listening on ROLE_CHANNEL, once it listens. */
  private roleListening: Promise<pg.PoolClient> | undefined;
  private roleListenRetry: NodeJS.Timeout | undefined;
  /**
   * The sessions holding roles, a pool of their own: each role held keeps its session, which the
   * pool that the store's reads and writes share would otherwise lose for as long.
   */
  private rolePool: pg.Pool | undefined;
  private readonly connection: PostgresStoreOptions;
  /** When (performance.now()) PostgreSQL last committed a batch or answered the recovery's round trip. */
  private answeredAt = 0;
  /** The round trip that will tell when PostgreSQL answers again (unavailable). */
  private recovery: NodeJS.Timeout | undefined;

  /** The Log's head as this process last committed or read it. */
  private head: { size: number; frontier: MerkleFrontier; root?: Uint8Array };
  /** Each stream's tail (its next Change's `previous` and ordinal), as of `head.size` (a cache). */
  private readonly streamTails = new Map<string, StreamTail>();
  /** Streams known to be in the `streams` table. */
  private readonly knownStreams = new Set<string>();
  private readonly cachedNodes = new Map<string, Uint8Array>();
  /** Parsed TDs by the seq of the Change that described them (never stale: that Change never changes). */
  private readonly parsedTds = new Map<number, RegisteredThingDescription>();
  private static readonly MAX_PARSED_TDS = 20_000;

  private constructor(
    pool: pg.Pool,
    schema: string,
    where: string,
    options: PostgresStoreOptions,
    restored: RestoredGuard[],
    head: { size: number; frontier: MerkleFrontier },
    lock: { mode: LockMode; client: pg.PoolClient; holder: Backend } | undefined,
  ) {
    this.pool = pool;
    this.connection = options;
    this.schema = schema;
    this.where = where;
    this.restoredGuards = restored;
    this.head = head;
    this.lockMode = lock?.mode;
    if (lock) this.holdLock(lock.client, lock.holder);
    this.queryMs = timeoutsOf(options).queryMs;
    this.maxQueue = options.maxQueue ?? 10_000;
    this.maxQueuedChanges = options.maxQueuedChanges ?? 100_000;
    this.maxBatch = options.maxBatch ?? 1_000;
  }

  /**
   * Connects, makes or migrates the schema (refusing one newer than this code), puts back the
   * Log's guard triggers, and checks that the Log's head agrees with its rows.
   */
  static async open(options: PostgresStoreOptions): Promise<PostgresStore> {
    const schema = schemaOf(options);
    const where = `${redactedUrl(options.url)}, schema ${schema}`;
    const pool = createPool(options, schema);
    const lockMode: LockMode | undefined = options.replica
      ? "shared"
      : options.exclusive
        ? "exclusive"
        : undefined;
    let lockClient: pg.PoolClient | undefined;
    try {
      try {
        lockClient = lockMode ? await pool.connect() : undefined;
      } catch (error) {
        throw unreachable(options.url, error);
      }
      const holder = lockClient && lockMode ? await takeLock(lockClient, lockMode, schema) : undefined;
      if (lockMode && holder === undefined) {
        throw new ConflictError(
          lockMode === "shared"
            ? `The PostgreSQL schema ${schema} (${redactedUrl(options.url)}) is in use by a hub that is not a replica: ` +
                "stop it first, and start every hub on this schema with --replica"
            : `The PostgreSQL schema ${schema} (${redactedUrl(options.url)}) is in use by another hub: ` +
                "stop that hub first, or give this one another schema; several hubs on one schema run as replicas (--replica, with --bus nats://…)",
        );
      }
      let restored: RestoredGuard[];
      try {
        restored = await migrate(pool, schema);
      } catch (error) {
        throw isUnavailability(error) ? unreachable(options.url, error) : error;
      }
      // A batch of a hub whose lock session just ended may still hold the head row, having found
      // the lock held (transaction): this store reads the Log once it committed or rolled back.
      if (lockMode) await pool.query("SELECT FROM log_head WHERE id = 1 FOR SHARE");
      const { rows } = await pool.query<{
        size: number;
        frontier: string;
        last: number | null;
        schema: string;
      }>(
        "SELECT size, frontier, (SELECT max(seq) FROM changes) AS last, current_schema() AS schema FROM log_head WHERE id = 1",
      );
      const row = rows[0];
      if (row && row.schema !== schema) {
        throw new Error(
          `The sessions to ${where} work in schema ${row.schema}, not ${schema}: the URL's options must not set search_path`,
        );
      }
      if (!row) throw new Error(`The log_head row of schema ${schema} is missing: the schema is damaged`);
      const frontier = MerkleFrontier.fromJSON(JSON.parse(row.frontier));
      if ((row.last ?? 0) !== row.size || frontier.size !== row.size) {
        throw new Error(
          `The Log in ${where} is damaged: its head says ${row.size} Changes, the changes table ends at seq ${row.last ?? 0} ` +
            `and the Merkle tree covers ${frontier.size}. The hub does not write to it: restore it from a backup, ` +
            "and see what was altered with `things verify`.",
        );
      }
      return new PostgresStore(
        pool,
        schema,
        where,
        options,
        restored,
        { size: row.size, frontier },
        lockClient && lockMode && holder && { mode: lockMode, client: lockClient, holder },
      );
    } catch (error) {
      lockClient?.release();
      await pool.end().catch(() => {});
      throw error;
    }
  }

  // --- the write queue ---

  private enqueue<T>(
    work: Omit<Pending, "resolve" | "reject" | "changes" | "deadline">,
    { internal = false } = {},
  ): Promise<T> {
    const changes = work.drafts?.length ?? 0;
    const refusal = queueRefusal({
      closed: this.closed,
      internal,
      waiting: this.queue.length,
      maxWaiting: this.maxQueue,
      queuedChanges: this.queuedChanges,
      changes,
      maxQueuedChanges: this.maxQueuedChanges,
    });
    if (refusal) return Promise.reject(refusal);
    if (this.lockLost) return Promise.reject(this.lockRefusal(this.lockLost.reason));
    this.queuedChanges += changes;
    const deadline = performance.now() + this.queryMs;
    return new Promise<T>((resolve, reject) => {
      this.queue.push({ ...work, changes, deadline, resolve: resolve as (value: unknown) => void, reject });
      this.schedule();
      this.armExpiry();
    });
  }

  /**
   * A write is answered within query_timeout of its call, however long the ones before it wait
   * (a network that drops everything makes each batch wait its whole bound): one timer, for the
   * oldest waiting call, refuses the calls whose time is up without sending them.
   */
  private armExpiry(): void {
    const first = this.queue[0];
    if (this.expiry !== undefined || first === undefined) return;
    this.expiry = setTimeout(
      () => {
        this.expiry = undefined;
        const now = performance.now();
        // Deadlines grow along the queue: the expired calls are its first ones.
        let n = 0;
        while (n < this.queue.length && (this.queue[n]?.deadline ?? Infinity) <= now) n++;
        for (const pending of this.queue.splice(0, n)) {
          this.queuedChanges -= pending.changes;
          pending.reject(this.unsent());
        }
        this.armExpiry();
      },
      Math.max(0, first.deadline - performance.now()),
    );
    this.expiry.unref();
  }

  /** A call whose time was up before its batch could be sent. */
  private unsent(): UnavailableError {
    return new UnavailableError(
      `PostgreSQL (${this.where}) took no write for ${this.queryMs / 1000} s (query_timeout), the writes before this one still unanswered: ` +
        "nothing of this write was recorded. Retry shortly",
      UNWRITABLE_RETRY_AFTER_S,
    );
  }

  saturated(): boolean {
    return this.queue.length >= this.maxQueue || this.queuedChanges >= this.maxQueuedChanges;
  }

  private schedule(): void {
    if (this.running || this.scheduled) return;
    this.scheduled = true;
    setImmediate(() => void this.drain());
  }

  /** Commits batches, one at a time, each of what is waiting when it begins. */
  private async drain(): Promise<void> {
    this.scheduled = false;
    if (this.running) return;
    this.running = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.maxBatch);
        for (const p of batch) this.queuedChanges -= p.changes;
        await this.commit(batch);
      }
    } finally {
      this.running = false;
      if (this.queue.length > 0) this.schedule();
      else this.drained?.();
    }
  }

  /** One batch: committed together; if the transaction fails, each command again on its own. */
  private async commit(waiting: Pending[]): Promise<void> {
    if (this.lockLost) {
      for (const pending of waiting) pending.reject(this.lockRefusal(this.lockLost.reason));
      return;
    }
    const startedAt = performance.now();
    const batch: Pending[] = [];
    for (const pending of waiting) {
      if (pending.deadline > startedAt) batch.push(pending);
      else pending.reject(this.unsent());
    }
    if (batch.length === 0) return;
    let outcomes: Outcome[];
    try {
      // The batch is answered by its first call's deadline: committed, or refused.
      outcomes = await this.transaction(batch, Math.min(...batch.map((p) => p.deadline)));
    } catch (error) {
      if (error instanceof LockNotHeld) {
        // This store's lock session lost the lock before its error event said so (or with none).
        const lockClient = this.lockClient;
        if (lockClient)
          this.loseLock(lockClient, new Error("PostgreSQL no longer lists the lock as held by it"));
        const refusal =
          this.writeRefusal() ??
          this.lockRefusal(`The session holding the lock on the PostgreSQL schema ${this.schema} ended`);
        for (const pending of batch) pending.reject(refusal);
        return;
      }
      if (batch.length > 1 && !(error instanceof CommitUnknown) && !isUnavailability(error)) {
        // A row PostgreSQL refused (a text it cannot hold) fails the whole statement: find whose.
        for (const pending of batch) await this.commit([pending]);
        return;
      }
      const cause = error instanceof CommitUnknown ? error.cause : error;
      const refused = unwritten(cause, this.where);
      if (refused instanceof UnavailableError) this.unavailable(cause, refused.message, startedAt);
      for (const pending of batch) pending.reject(error instanceof CommitUnknown ? error.refusal() : refused);
      return;
    }
    this.failing = undefined;
    this.answeredAt = performance.now();
    batch.forEach((pending, i) => {
      const outcome = outcomes[i];
      if (outcome?.ok) pending.resolve(outcome.value);
      else pending.reject(outcome ? outcome.error : new Error("lost outcome"));
    });
  }

  /**
   * A free connection from the pool, waited for until `deadline` at most (a pool whose
   * connections all wait for a silent network hands none out before they give up).
   */
  private async connectBy(deadline: number): Promise<pg.PoolClient> {
    let timer: NodeJS.Timeout | undefined;
    const connecting = this.pool.connect();
    const late = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(this.unanswered()), deadline - performance.now());
    });
    try {
      return await Promise.race([connecting, late]);
    } catch (error) {
      // One that comes after the deadline goes back to the pool unused.
      connecting.then((client) => client.release()).catch(() => {});
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Why a write's connection or statement was given up at its deadline (query_timeout). */
  private unanswered(): Error {
    return Object.assign(
      new Error(
        `PostgreSQL answered nothing within the write's bound of ${this.queryMs / 1000} s (query_timeout)`,
      ),
      { code: "ETIMEDOUT" },
    );
  }

  private async transaction(batch: Pending[], deadline: number): Promise<Outcome[]> {
    const client = await this.connectBy(deadline);
    let broken: Error | undefined;
    // At the deadline the connection is closed under the transaction: before COMMIT was sent,
    // nothing of it can commit; after, its outcome is unknown, and said so (CommitUnknown).
    let timedOut = false;
    const bound = setTimeout(() => {
      timedOut = true;
      (client as unknown as pg.Client).connection.stream.destroy();
    }, deadline - performance.now());
    try {
      // One round trip: BEGIN, and the head row locked (waiting for any other writer to commit).
      // With the schema's lock, the same round trip asks whether this store's lock session still
      // holds it, once the head row is locked: the loss of the session is otherwise learnt from an
      // error event, which may come after a batch already sent commits. Checked while holding the
      // head row, the answer stands until COMMIT: another hub taking the lock waits for the head
      // row before it reads the Log (open), and writes only after this batch's COMMIT.
      const check = this.lockMode === undefined ? "" : this.lockCheck;
      if (check === undefined) throw new LockNotHeld();
      const results = (await client.query(
        `BEGIN; SELECT size, frontier FROM log_head WHERE id = 1 FOR UPDATE${check}`,
      )) as unknown as Array<pg.QueryResult<{ size: number; frontier: string; held: boolean }>>;
      const row = results[1]?.rows[0];
      if (!row) throw new Error(`The log_head row of ${this.where} is missing`);
      try {
        if (check !== "" && results[2]?.rows[0]?.held !== true) throw new LockNotHeld();
        if (row.size !== this.head.size) await this.catchUp(client, row);
        const log = new LogBatch(row.size, this.head.frontier.clone(), this.knownStreams);
        await this.prefetch(client, log, batch);
        const outcomes: Outcome[] = new Array<Outcome>(batch.length);
        batch.forEach((pending, i) => {
          if (!pending.log) return;
          const mark = log.mark();
          try {
            outcomes[i] = { ok: true, value: pending.log(log) };
          } catch (error) {
            log.rollback(mark);
            outcomes[i] = { ok: false, error };
          }
        });
        if (!log.empty)
          await client.query({ name: "hyperthings-flush", text: FLUSH_SQL, values: log.flushParameters() });
        for (const [i, pending] of batch.entries()) {
          if (!pending.sql) continue;
          await client.query("SAVEPOINT command");
          try {
            outcomes[i] = { ok: true, value: await pending.sql(client) };
            await client.query("RELEASE SAVEPOINT command");
          } catch (error) {
            if (isUnavailability(error)) throw error;
            await client.query("ROLLBACK TO SAVEPOINT command");
            outcomes[i] = { ok: false, error };
          }
        }
        try {
          await client.query("COMMIT");
        } catch (error) {
          broken = error as Error;
          // Whether a COMMIT whose answer was lost took effect, nobody here knows.
          this.forget();
          throw new CommitUnknown(timedOut ? this.unanswered() : error, this.where);
        }
        this.committed(log);
        return outcomes;
      } catch (error) {
        // A connection lost or unanswered is given up, not rolled back (that would wait as long
        // again): the server rolls back a transaction whose session ends.
        if (!(error instanceof CommitUnknown) && !isUnavailability(error))
          await client.query("ROLLBACK").catch(() => {});
        throw error;
      }
    } catch (error) {
      if (timedOut && !(error instanceof CommitUnknown)) {
        broken = this.unanswered();
        throw broken;
      }
      if (isUnavailability(error)) broken = error as Error;
      throw error;
    } finally {
      clearTimeout(bound);
      client.release(broken);
    }
  }

  /** After COMMIT: the head, the streams' tails and the known streams move on with the batch. */
  private committed(log: LogBatch): void {
    this.head = { size: log.size, frontier: log.frontier };
    if (this.streamTails.size + log.streams.size > MAX_CACHED_STREAMS) this.streamTails.clear();
    for (const [key, tail] of log.streams) this.streamTails.set(key, tail);
    if (this.knownStreams.size + log.addedStreams.size > MAX_CACHED_STREAMS) this.knownStreams.clear();
    for (const key of log.addedStreams) this.knownStreams.add(key);
  }

  /** What is kept in memory may no longer be the database's: read it again next time. */
  private forget(): void {
    this.head = { size: -1, frontier: new MerkleFrontier() };
    this.streamTails.clear();
  }

  /**
   * Another process appended since this one's last batch (or the head is unknown): its Changes
   * update the streams' tails (a few), or the tails are read again as needed (many).
   */
  private async catchUp(client: pg.PoolClient, row: { size: number; frontier: string }): Promise<void> {
    const gap = row.size - this.head.size;
    if (this.head.size >= 0 && gap > 0 && gap <= MAX_CATCH_UP) {
      const { rows } = await client.query<
        Pick<ChangeRow, "thing" | "affordance" | "kind" | "value"> & { ordinal: number }
      >("SELECT thing, affordance, kind, value, ordinal FROM changes WHERE seq > $1 ORDER BY seq", [
        this.head.size,
      ]);
      for (const c of rows) {
        const key = streamKey(c.thing, c.affordance ?? "", c.kind);
        this.streamTails.set(key, { value: c.affordance === null ? null : c.value, ordinal: c.ordinal });
        this.knownStreams.add(key);
      }
    } else {
      this.streamTails.clear();
    }
    this.head = { size: row.size, frontier: MerkleFrontier.fromJSON(JSON.parse(row.frontier)) };
  }

  /**
   * Reads what the batch's commands look at: their Things, releases and the tails of the streams
   * they append to (from memory where known).
   */
  private async prefetch(client: pg.PoolClient, log: LogBatch, batch: readonly Pending[]): Promise<void> {
    const things = new Set<string>();
    const releases = new Set<string>();
    const streams = new Map<string, [string, string, string]>();
    const stream = (thing: string, affordance: string, kind: string): void => {
      const key = streamKey(thing, affordance, kind);
      if (log.streams.has(key) || streams.has(key)) return;
      const cached = this.streamTails.get(key);
      if (cached !== undefined) log.streams.set(key, cached);
      else streams.set(key, [thing, affordance, kind]);
    };
    for (const pending of batch) {
      for (const id of pending.things ?? []) things.add(id);
      for (const id of pending.releases ?? []) releases.add(id);
      for (const { draft } of pending.drafts ?? []) stream(draft.thing, draft.affordance ?? "", draft.kind);
      for (const [thing, kind] of pending.appends ?? []) stream(thing, "", kind);
    }
    if (things.size > 0) {
      const { rows } = await client.query<ThingRow>(
        `SELECT t.*, c.value AS td FROM things t JOIN changes c ON c.seq = t.version WHERE t.id = ANY($1::text[])`,
        [[...things]],
      );
      for (const id of things) log.things.set(id, null);
      for (const row of rows) {
        const state: ThingState = {
          td: { text: row.td, value: JSON.parse(row.td) as unknown, canonical: undefined },
          version: row.version,
          created: row.created,
          modified: row.modified,
          expires: row.expires,
          ttl: row.ttl,
        };
        log.things.set(row.id, state);
      }
    }
    if (releases.size > 0) {
      const { rows } = await client.query<{ id: string; seq: number; stored_at: string; value: string }>(
        `SELECT r.id, r.seq, r.stored_at, c.value FROM releases r JOIN changes c ON c.seq = r.seq
          WHERE r.id = ANY($1::text[])`,
        [[...releases]],
      );
      for (const id of releases) log.releases.set(id, null);
      for (const row of rows) {
        log.releases.set(row.id, {
          release: JSON.parse(row.value) as Release,
          seq: row.seq,
          storedAt: row.stored_at,
        });
      }
    }
    if (streams.size > 0) {
      const keys = [...streams.values()];
      const { rows } = await client.query<{ i: number; v: string | null; o: number }>(
        `SELECT k.i, c.v, c.o FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS k(thing, affordance, kind, i)
         CROSS JOIN LATERAL (
           SELECT CASE WHEN c.affordance IS NULL THEN NULL ELSE c.value END AS v, c.ordinal AS o FROM changes c
            WHERE c.thing = k.thing AND coalesce(c.affordance, '') = k.affordance AND c.kind = k.kind
            ORDER BY c.seq DESC LIMIT 1) c`,
        [keys.map((k) => k[0]), keys.map((k) => k[1]), keys.map((k) => k[2])],
      );
      for (const key of streams.keys()) log.streams.set(key, EMPTY_STREAM);
      const names = [...streams.keys()];
      for (const row of rows) log.streams.set(names[row.i - 1] ?? "", { value: row.v, ordinal: row.o });
    }
  }

  // --- writes ---

  describe(command: DescribeCommand): Promise<DescribeResult> {
    return this.describeAll([command]).then(([result]) => {
      if (result === undefined) throw new Error("a description was not answered");
      return result;
    });
  }

  describeAll(commands: readonly DescribeCommand[]): Promise<DescribeResult[]> {
    let recorded: Array<{
      command: DescribeCommand;
      value: Recorded;
      cause: Recorded;
      related: RecordedDraft[];
    }>;
    try {
      recorded = commands.map((command) => ({
        command,
        value: asRecorded(command.td),
        cause: recordedCause(command.cause),
        related: recordDrafts(command.related ?? []),
      }));
    } catch (error) {
      return refuse(error);
    }
    // One queued command: its batch rolls it back whole (mark/rollback) when one is refused.
    return this.enqueue<DescribeResult[]>({
      things: commands.map((c) => c.td.id),
      drafts: recorded.flatMap((r) => r.related),
      appends: commands.map((c) => [c.td.id, "described"] as const),
      log: (log) => recorded.map((r) => this.describeOne(log, r.command, r.value, r.cause, r.related)),
    });
  }

  /** One description over the batch's state: throws (and the batch rolls back) when refused. */
  private describeOne(
    log: LogBatch,
    command: DescribeCommand,
    value: Recorded,
    cause: Recorded,
    related: RecordedDraft[],
  ): DescribeResult {
    const { td } = command;
    const existing = log.things.get(td.id) ?? undefined;
    checkDescribeExpectation(command, existing);
    const change = log.append({
      draft: { thing: td.id, kind: "described", value: td, cause: command.cause, hlc: command.hlc },
      value,
      previous: existing?.td,
      cause,
    });
    const record = describedRecord(command, existing, change);
    const time = record.modified;
    log.setThing(td.id, {
      td: value,
      version: change.seq,
      created: record.created,
      modified: time,
      expires: command.expires ?? null,
      ttl: command.ttl ?? null,
    });
    return {
      created: existing === undefined,
      record,
      change,
      related: related.map((d) => log.append(d)),
    };
  }

  remove(command: RemoveCommand): Promise<RemoveResult> {
    let cause: Recorded;
    let related: RecordedDraft[];
    try {
      cause = recordedCause(command.cause);
      related = recordDrafts(command.related ?? []);
    } catch (error) {
      return refuse(error);
    }
    return this.enqueue<RemoveResult>({
      things: [command.id],
      drafts: related,
      appends: [[command.id, "removed"]],
      log: (log) => {
        const existing = log.things.get(command.id);
        if (!existing) throw new NotFoundError(`No Thing with id ${command.id}`);
        if (command.expect !== undefined && existing.version !== command.expect) {
          throw new ConflictError(`The Thing ${command.id} was changed concurrently; retry`);
        }
        log.setThing(command.id, null);
        const change = log.append({
          draft: { thing: command.id, kind: "removed", cause: command.cause, hlc: command.hlc },
          value: undefined,
          previous: existing.td,
          cause,
        });
        return { change, related: related.map((d) => log.append(d)) };
      },
    });
  }

  append(drafts: readonly ChangeDraft[]): Promise<Change[]> {
    let recorded: RecordedDraft[];
    try {
      recorded = recordDrafts(drafts);
    } catch (error) {
      return refuse(error);
    }
    if (recorded.length === 0) {
      return this.closed ? Promise.reject(new UnavailableError("The store is closing")) : Promise.resolve([]);
    }
    return this.enqueue<Change[]>({ drafts: recorded, log: (log) => recorded.map((d) => log.append(d)) });
  }

  putRelease(command: PutReleaseCommand): Promise<PutReleaseResult> {
    const { release } = command;
    let value: Recorded;
    let cause: Recorded;
    try {
      value = asRecorded(release);
      cause = recordedCause(command.cause);
    } catch (error) {
      return refuse(error);
    }
    return this.enqueue<PutReleaseResult>({
      releases: [release.id],
      appends: [[command.thing, "released"]],
      log: (log) => {
        const existing = log.releases.get(release.id);
        if (existing) {
          return {
            created: false,
            record: { release: existing.release, seq: existing.seq, storedAt: existing.storedAt },
          };
        }
        const change = log.append({
          draft: {
            thing: command.thing,
            kind: "released",
            value: release,
            cause: command.cause,
            hlc: command.hlc,
          },
          value,
          previous: undefined,
          cause,
        });
        const storedAt = changeTime(change);
        log.addRelease({ release, seq: change.seq, storedAt });
        return { created: true, record: { release, seq: change.seq, storedAt }, change };
      },
    });
  }

  addCheckpoint(checkpoint: Checkpoint): Promise<void> {
    return this.enqueue<void>({ log: (log) => log.addCheckpoint(checkpoint) }, { internal: true });
  }

  createRollout(rollout: Rollout, steps: readonly RolloutStep[]): Promise<void> {
    return this.enqueue<void>({ sql: (client) => rollouts.createRollout(client, rollout, steps) });
  }

  updateRolloutStep(rollout: string, thing: string, update: RolloutStepUpdate): Promise<boolean> {
    return this.enqueue<boolean>({
      sql: (client) => rollouts.updateRolloutStep(client, rollout, thing, update),
    });
  }

  endRollout(id: string, status: "completed" | "failed", ended: string, reason?: string): Promise<boolean> {
    return this.enqueue<boolean>({ sql: (client) => rollouts.endRollout(client, id, status, ended, reason) });
  }

  // --- reads ---

  private async rows<R extends pg.QueryResultRow>(
    text: string,
    values: unknown[] = [],
    name?: string,
  ): Promise<R[]> {
    const startedAt = performance.now();
    try {
      const result = await this.pool.query<R>(name === undefined ? { text, values } : { name, text, values });
      return result.rows;
    } catch (error) {
      throw this.unread(error, startedAt);
    }
  }

  /**
   * A read that failed because PostgreSQL could not be reached or answered nothing is the hub's
   * trouble, not the request's: refused as unavailable (503, Retry-After), and writes are said to
   * fail until it answers again. Any other error is left as it is.
   */
  private unread(error: unknown, startedAt: number): unknown {
    if (!isLostConnection(error)) return error;
    const refused = new UnavailableError(
      `The hub could not read from PostgreSQL (${this.where}: ${(error as Error).message}). Retry shortly`,
      UNWRITABLE_RETRY_AFTER_S,
    );
    refused.cause = error;
    this.unavailable(error, refused.message, startedAt);
    return refused;
  }

  private toRecord(row: ThingRow): ThingRecord {
    let td = this.parsedTds.get(row.version);
    if (td === undefined) {
      td = JSON.parse(row.td) as RegisteredThingDescription;
      this.parsedTds.set(row.version, td);
      if (this.parsedTds.size > PostgresStore.MAX_PARSED_TDS) {
        const oldest = this.parsedTds.keys().next().value;
        if (oldest !== undefined) this.parsedTds.delete(oldest);
      }
    }
    return toRecord(row, td);
  }

  async getThing(id: string): Promise<ThingRecord | undefined> {
    const [row] = await this.rows<ThingRow>(
      "SELECT t.*, c.value AS td FROM things t JOIN changes c ON c.seq = t.version WHERE t.id = $1",
      [id],
      "hyperthings-get-thing",
    );
    return row ? this.toRecord(row) : undefined;
  }

  async listThings(options: ListOptions): Promise<ThingRecord[]> {
    const rows = await this.rows<ThingRow>(
      `SELECT t.*, c.value AS td FROM (
         SELECT * FROM things WHERE ($1::text IS NULL OR id > $1)
           AND ($2::text IS NULL OR expires IS NULL OR expires > $2)
         ORDER BY id LIMIT $3 OFFSET $4
       ) t JOIN changes c ON c.seq = t.version ORDER BY t.id`,
      [options.after ?? null, options.liveAt ?? null, options.limit, options.offset],
      "hyperthings-list-things",
    );
    return rows.map((row) => this.toRecord(row));
  }

  async countThings(liveAt?: string): Promise<number> {
    const [row] = await this.rows<{ n: number }>(
      `SELECT (SELECT count(*) FROM things) - CASE WHEN $1::text IS NULL THEN 0 ELSE
         (SELECT count(*) FROM things WHERE expires IS NOT NULL AND expires <= $1) END AS n`,
      [liveAt ?? null],
    );
    return row?.n ?? 0;
  }

  async thingsVersion(): Promise<number> {
    const [row] = await this.rows<{ v: number }>("SELECT coalesce(max(version), 0) AS v FROM things");
    return row?.v ?? 0;
  }

  async *scanThings(batchSize = 500): AsyncIterable<ThingRecord> {
    let after = "";
    for (;;) {
      const rows = await this.rows<ThingRow>(
        `SELECT t.*, c.value AS td FROM (SELECT * FROM things WHERE id > $1 ORDER BY id LIMIT $2) t
         JOIN changes c ON c.seq = t.version ORDER BY t.id`,
        [after, batchSize],
      );
      for (const row of rows) yield this.toRecord(row);
      const last = rows.at(-1);
      if (!last || rows.length < batchSize) return;
      after = last.id;
    }
  }

  async expiredThings(time: string, limit: number): Promise<string[]> {
    const rows = await this.rows<{ id: string }>(
      "SELECT id FROM things WHERE expires IS NOT NULL AND expires <= $1 ORDER BY expires LIMIT $2",
      [time, limit],
    );
    return rows.map((r) => r.id);
  }

  changesAfter(after: number, limit: number, filter: ChangeFilter = {}): Promise<Change[]> {
    return this.feed({ ...filter, after, order: "asc", limit });
  }

  /**
   * Changes in `(after, before)`, filtered, in either order. With Things named, each of their
   * streams is read through changes_stream, at most `limit` from each, and the pages merged.
   */
  async feed(query: FeedQuery): Promise<Change[]> {
    const { after, before, order, limit } = query;
    let things = query.things;
    if (query.thing !== undefined) things = things && !things.includes(query.thing) ? [] : [query.thing];
    if (limit <= 0 || query.kinds?.length === 0 || things?.length === 0) return [];
    const values: unknown[] = [after, before ?? NO_BOUND, limit];
    const where = ["c.seq > $1", "c.seq < $2"];
    if (query.kinds) where.push(`c.kind = ANY($${values.push(query.kinds)}::text[])`);
    if (query.actor !== undefined) where.push(`(c.cause::json ->> 'actor') = $${values.push(query.actor)}`);
    if (query.release !== undefined)
      where.push(`(c.cause::json ->> 'release') = $${values.push(query.release)}`);
    if (query.correlation !== undefined)
      where.push(`(c.cause::json ->> 'correlation') = $${values.push(query.correlation)}`);
    const direction = order === "asc" ? "ASC" : "DESC";
    let text: string;
    if (things) {
      const streams = [`s.thing = ANY($${values.push(things)}::text[])`];
      if (query.affordance !== undefined) streams.push(`s.affordance = $${values.push(query.affordance)}`);
      if (query.kinds) streams.push(`s.kind = ANY($4::text[])`);
      text = `SELECT c.* FROM streams s CROSS JOIN LATERAL (
          SELECT * FROM changes c WHERE c.thing = s.thing AND coalesce(c.affordance, '') = s.affordance
            AND c.kind = s.kind AND ${where.join(" AND ")} ORDER BY c.seq ${direction} LIMIT $3) c
        WHERE ${streams.join(" AND ")} ORDER BY c.seq ${direction} LIMIT $3`;
    } else {
      if (query.affordance !== undefined) where.push(`c.affordance = $${values.push(query.affordance)}`);
      text = `SELECT * FROM changes c WHERE ${where.join(" AND ")} ORDER BY c.seq ${direction} LIMIT $3`;
    }
    return (await this.rows<ChangeRow>(text, values)).map(toChange);
  }

  /** The Things with a matching Change in `(after, before)`: a range of the primary key, grouped. */
  async changedThings(query: ChangedThingsQuery): Promise<ChangedThing[]> {
    const { after, before, limit } = query;
    if (limit <= 0 || query.kinds?.length === 0 || query.things?.length === 0) return [];
    const values: unknown[] = [after, before ?? NO_BOUND, limit];
    const where = ["seq > $1", "seq < $2"];
    if (query.kinds) where.push(`kind = ANY($${values.push(query.kinds)}::text[])`);
    if (query.thing !== undefined) where.push(`thing = $${values.push(query.thing)}`);
    if (query.things) where.push(`thing = ANY($${values.push(query.things)}::text[])`);
    if (query.affordance !== undefined) where.push(`affordance = $${values.push(query.affordance)}`);
    if (query.actor !== undefined) where.push(`(cause::json ->> 'actor') = $${values.push(query.actor)}`);
    if (query.release !== undefined)
      where.push(`(cause::json ->> 'release') = $${values.push(query.release)}`);
    if (query.correlation !== undefined)
      where.push(`(cause::json ->> 'correlation') = $${values.push(query.correlation)}`);
    const rows = await this.rows<{ thing: string; first: string | number }>(
      `SELECT thing, MIN(seq) AS first FROM changes WHERE ${where.join(" AND ")} GROUP BY thing ORDER BY first LIMIT $3`,
      values,
    );
    return rows.map((row) => ({ thing: row.thing, first: Number(row.first) }));
  }

  async getChange(seq: number): Promise<Change | undefined> {
    if (!Number.isSafeInteger(seq)) return undefined;
    const [row] = await this.rows<ChangeRow>(
      "SELECT * FROM changes WHERE seq = $1",
      [seq],
      "hyperthings-get-change",
    );
    return row ? toChange(row) : undefined;
  }

  history(query: HistoryQuery): Promise<Change[]> {
    return this.feed({
      thing: query.thing,
      ...(query.affordance !== undefined && { affordance: query.affordance }),
      ...(query.kinds !== undefined && { kinds: query.kinds }),
      after: query.after ?? 0,
      before: query.before ?? NO_BOUND,
      order: query.order,
      limit: query.limit,
    });
  }

  async streamsAt(thing: string, atSeq?: number, kinds?: readonly string[]): Promise<HistoryStream[]> {
    if (kinds?.length === 0) return [];
    const values: unknown[] = [thing, atSeq ?? NO_BOUND];
    const kindFilter = kinds ? ` AND s.kind = ANY($${values.push(kinds)}::text[])` : "";
    const rows = await this.rows<ChangeRow & { stream_affordance: string; stream_kind: string }>(
      `SELECT s.affordance AS stream_affordance, s.kind AS stream_kind, c.* FROM streams s
       CROSS JOIN LATERAL (
         SELECT * FROM changes c WHERE c.thing = s.thing AND coalesce(c.affordance, '') = s.affordance
           AND c.kind = s.kind AND c.seq <= $2 ORDER BY c.seq DESC LIMIT 1) c
       WHERE s.thing = $1${kindFilter}`,
      values,
    );
    return rows.map((row) => ({
      affordance: row.stream_affordance,
      kind: row.stream_kind,
      latest: toChange(row),
    }));
  }

  async countStream(
    thing: string,
    affordance: string,
    kind: string,
    after: number,
    upTo: number,
  ): Promise<number> {
    if (upTo <= after) return 0;
    // The ordinals of the stream's latest Changes at or before each end (migration 3): two steps
    // back in changes_stream, whatever the length of the interval.
    const [row] = await this.rows<{ n: number }>(
      `SELECT ${ordinalAt("$5")} - ${ordinalAt("$4")} AS n`,
      [thing, affordance, kind, after, upTo],
      "hyperthings-count-stream",
    );
    return row?.n ?? 0;
  }

  /** countStream of each stream, in one round trip: the same two steps back, stream by stream. */
  async countStreams(
    thing: string,
    streams: readonly StreamName[],
    after: number,
    upTo: number,
  ): Promise<number[]> {
    if (upTo <= after || streams.length === 0) return streams.map(() => 0);
    const rows = await this.rows<{ i: number; n: number }>(
      `SELECT k.i, ${ordinalAt("$5", "k.affordance", "k.kind")} - ${ordinalAt("$4", "k.affordance", "k.kind")} AS n
         FROM unnest($2::text[], $3::text[]) WITH ORDINALITY AS k(affordance, kind, i)`,
      [thing, streams.map((s) => s.affordance), streams.map((s) => s.kind), after, upTo],
      "hyperthings-count-streams",
    );
    const counts = streams.map(() => 0);
    for (const row of rows) counts[row.i - 1] = row.n;
    return counts;
  }

  async streamsAtEach(
    things: readonly string[],
    atSeq: number,
    kinds?: readonly string[],
  ): Promise<HistoryStream[][]> {
    if (things.length === 0 || kinds?.length === 0) return things.map(() => []);
    const values: unknown[] = [things, atSeq];
    const kindFilter = kinds ? ` AND s.kind = ANY($${values.push(kinds)}::text[])` : "";
    const rows = await this.rows<
      ChangeRow & { stream_thing: string; stream_affordance: string; stream_kind: string }
    >(
      `SELECT s.thing AS stream_thing, s.affordance AS stream_affordance, s.kind AS stream_kind, c.* FROM streams s
       CROSS JOIN LATERAL (
         SELECT * FROM changes c WHERE c.thing = s.thing AND coalesce(c.affordance, '') = s.affordance
           AND c.kind = s.kind AND c.seq <= $2 ORDER BY c.seq DESC LIMIT 1) c
       WHERE s.thing = ANY($1::text[])${kindFilter}`,
      values,
    );
    const byThing = new Map<string, HistoryStream[]>(things.map((thing) => [thing, []]));
    for (const row of rows) {
      byThing.get(row.stream_thing)?.push({
        affordance: row.stream_affordance,
        kind: row.stream_kind,
        latest: toChange(row),
      });
    }
    return things.map((thing) => byThing.get(thing) ?? []);
  }

  /** countStream of each stream, whichever its Thing, in one round trip. */
  async countStreamsEach(
    streams: readonly ThingStreamName[],
    after: number,
    upTo: number,
  ): Promise<number[]> {
    if (upTo <= after || streams.length === 0) return streams.map(() => 0);
    const rows = await this.rows<{ i: number; n: number }>(
      `SELECT k.i, ${ordinalAt("$5", "k.affordance", "k.kind", "k.thing")} - ${ordinalAt("$4", "k.affordance", "k.kind", "k.thing")} AS n
         FROM unnest($1::text[], $2::text[], $3::text[]) WITH ORDINALITY AS k(thing, affordance, kind, i)`,
      [
        streams.map((s) => s.thing),
        streams.map((s) => s.affordance),
        streams.map((s) => s.kind),
        after,
        upTo,
      ],
      "hyperthings-count-streams-each",
    );
    const counts = streams.map(() => 0);
    for (const row of rows) counts[row.i - 1] = row.n;
    return counts;
  }

  async seqBefore(hlc: string): Promise<number> {
    // PostgreSQL's text holds no U+0000, and no stored stamp does: a stamp sorts before
    // `p\u0000…` exactly when it sorts at or before `p`.
    const nul = hlc.indexOf("\u0000");
    const [row] = await this.rows<{ seq: number }>(
      nul < 0
        ? "SELECT seq FROM changes WHERE hlc < $1 ORDER BY hlc DESC LIMIT 1"
        : "SELECT seq FROM changes WHERE hlc <= $1 ORDER BY hlc DESC LIMIT 1",
      [nul < 0 ? hlc : hlc.slice(0, nul)],
    );
    return row?.seq ?? 0;
  }

  async lastSeq(): Promise<number> {
    const [row] = await this.rows<{ size: number }>("SELECT size FROM log_head WHERE id = 1");
    return row?.size ?? 0;
  }

  writeFailure(): { since: string; reason: string } | undefined {
    const failing = this.failing ?? this.lockLost;
    return failing && { since: failing.since, reason: failing.reason };
  }

  /**
   * PostgreSQL could not take a write or answer a read: writes are said to fail (writeFailure)
   * from now on. When the way to it is what failed (down, restarting, the network cut or silent),
   * a round trip is tried every while, and the first that succeeds says the failure is over,
   * whether or not a write came meanwhile: the pool makes new connections as it needs them. A
   * write the server refused (out of disk, read-only) is over only when a write commits.
   */
  private unavailable(error: unknown, reason: string, startedAt: number): void {
    const lostConnection = isLostConnection(error);
    // A connection lost by an operation that began before PostgreSQL last answered is old news.
    if (lostConnection && startedAt < this.answeredAt) return;
    this.failing = { since: this.failing?.since ?? new Date().toISOString(), reason, lostConnection };
    if (!lostConnection || this.recovery !== undefined || this.closed) return;
    let delay = RECOVERY_FIRST_MS;
    const attempt = (): void => {
      this.recovery = setTimeout(() => {
        this.pool.query("SELECT 1").then(
          () => {
            this.recovery = undefined;
            this.answeredAt = performance.now();
            if (this.failing?.lostConnection) this.failing = undefined;
          },
          () => {
            this.recovery = undefined;
            delay = Math.min(delay * 2, RECOVERY_MAX_MS);
            if (!this.closed) attempt();
          },
        );
      }, delay);
      this.recovery.unref();
    };
    attempt();
  }

  /** Nothing is worked around here: a lock lost is a write failure (writeFailure). */
  storageProblem(): undefined {
    return undefined;
  }

  // --- the schema's lock ---

  /** Keeps `client` (on backend `holder`) as the session holding the schema's lock, watching for its end. */
  private holdLock(client: pg.PoolClient, holder: Backend): void {
    this.lockClient = client;
    this.lockCheck = `; ${lockHeldCheck(this.schema, holder)}`;
    this.lockLost = undefined;
    // An error on the lock's session, checked out for good, would otherwise end the process.
    client.on("error", (error) => this.loseLock(client, error));
  }

  /**
   * The session holding the schema's lock ended (PostgreSQL restarted, the network to it cut):
   * nothing keeps another hub off the schema now, so writes are refused until the lock is taken
   * back, which is tried from now on.
   */
  private loseLock(client: pg.PoolClient, error: Error): void {
    if (this.lockClient !== client) return;
    this.lockClient = undefined;
    this.lockCheck = undefined;
    client.release(error);
    this.lockLost = {
      since: new Date().toISOString(),
      reason:
        `The session holding the lock on the PostgreSQL schema ${this.schema} ended (${error.message}): ` +
        "this hub takes no write until it holds the lock again, which it tries every few seconds",
      final: false,
    };
    this.retakeLock(RECOVERY_FIRST_MS);
  }

  private retakeLock(delay: number): void {
    if (this.closed) return;
    this.retaking = setTimeout(() => {
      this.retaking = undefined;
      void this.tryLock().then((retry) => {
        if (retry) this.retakeLock(Math.min(delay * 2, RECOVERY_MAX_MS));
      });
    }, delay);
    this.retaking.unref();
  }

  /** One attempt at taking the schema's lock back; whether to try again. */
  private async tryLock(): Promise<boolean> {
    const mode = this.lockMode;
    const lost = this.lockLost;
    if (this.closed || mode === undefined || lost === undefined || lost.final) return false;
    // A batch committing (it began before the lock was lost) would move the head under the check.
    if (this.running) return true;
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch {
      return true; // PostgreSQL is still away.
    }
    try {
      if (this.closed) {
        client.release();
        return false;
      }
      const holder = await takeLock(client, mode, this.schema);
      if (holder === undefined) {
        client.release();
        lost.reason =
          mode === "shared"
            ? `The PostgreSQL schema ${this.schema} was taken by a hub that is not a replica while this replica's session holding its lock was lost: ` +
              "this replica takes no write until that hub stops (it tries to take the lock back every few seconds)"
            : `The PostgreSQL schema ${this.schema} was taken by another hub while this hub's session holding its lock was lost: ` +
              "this hub takes no write until that hub stops (it tries to take the lock back every few seconds)";
        return true;
      }
      // Replicas write the Log together; a hub alone on it knows every Change it holds, unless
      // another hub wrote while it did not hold the lock: what it keeps in memory (the graph, the
      // TDs reports are checked against) would be stale.
      if (mode === "exclusive" && this.head.size >= 0) {
        const { rows } = await client.query<{ size: number }>("SELECT size FROM log_head WHERE id = 1");
        const written = (rows[0]?.size ?? 0) - this.head.size;
        if (written > 0) {
          client.release(new Error("the schema's lock is given up"));
          this.lockLost = {
            since: lost.since,
            reason:
              `Another hub wrote ${written} Changes to the PostgreSQL schema ${this.schema} while this hub did not hold its lock: ` +
              "this hub takes no more writes, what it keeps in memory being behind the Log. Restart it",
            final: true,
          };
          return false;
        }
      }
      if (this.closed) client.release();
      else this.holdLock(client, holder);
      return false;
    } catch (error) {
      client.release(error as Error);
      return true;
    }
  }

  /**
   * A session advisory lock named after the role and the schema, on a session of its own: held
   * until given up, the store closes, or the session ends (PostgreSQL restarted, the network cut).
   */
  async holdRole(role: string): Promise<HeldRole | undefined> {
    if (this.closed) throw new UnavailableError("The store is closing");
    const lockName = this.roleLockName(role);
    const client = await this.rolesPool().connect();
    try {
      const { rows } = await client.query<{ locked: boolean }>(
        "SELECT pg_try_advisory_lock(hashtext($1)) AS locked",
        [lockName],
      );
      if (rows[0]?.locked !== true || this.closed) {
        client.release();
        return undefined;
      }
    } catch (error) {
      client.release(error as Error);
      throw error;
    }
    let settle: (why: string) => void = () => {};
    const lost = new Promise<string>((resolve) => (settle = resolve));
    const end = (why: string, error: Error) => {
      if (!this.roles.delete(release)) return;
      // The session goes with the lock: nothing else of it is worth keeping.
      client.release(error);
      settle(why);
    };
    let givingUp = false;
    const release = async (): Promise<void> => {
      if (!this.roles.has(release) || givingUp) return;
      givingUp = true;
      // Unlocked, and said, on the role's own session before it goes: a process told of it finds
      // the lock free (a closed session's locks go only once the server has ended it, a moment
      // later). A session that does not answer soon (the network cut) is not waited for: closed,
      // its lock goes when the server notices, and those waiting find the role free at their next try.
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        client
          .query("SELECT pg_advisory_unlock(hashtext($1)), pg_notify($2, $1)", [lockName, ROLE_CHANNEL])
          .catch(() => undefined),
        new Promise<void>((resolve) => (timer = setTimeout(resolve, ROLE_RELEASE_TIMEOUT_MS))),
      ]).finally(() => clearTimeout(timer));
      end("given up", new Error(`the ${role} role is given up`));
    };
    client.on("error", (error) =>
      end(
        `the session holding its lock on the PostgreSQL schema ${this.schema} ended (${error.message})`,
        error,
      ),
    );
    this.roles.add(release);
    // A session that answers holds its locks: a lock ends only with its session.
    const confirm = async (): Promise<boolean> => {
      if (!this.roles.has(release) || givingUp) return false;
      try {
        let timer: NodeJS.Timeout | undefined;
        await Promise.race([
          client.query("SELECT 1"),
          new Promise((_resolve, reject) => {
            timer = setTimeout(
              () => reject(new Error(`no answer in ${ROLE_CONFIRM_TIMEOUT_MS} ms`)),
              ROLE_CONFIRM_TIMEOUT_MS,
            );
          }),
        ]).finally(() => clearTimeout(timer));
        return this.roles.has(release) && !givingUp;
      } catch (error) {
        end(
          `the session holding its lock on the PostgreSQL schema ${this.schema} did not answer (${(error as Error).message})`,
          error as Error,
        );
        return false;
      }
    };
    return { lost, confirm, release };
  }

  async onRoleGivenUp(role: string, listener: () => void): Promise<() => void> {
    if (this.closed) throw new UnavailableError("The store is closing");
    const name = this.roleLockName(role);
    let waiters = this.roleWaiters.get(name);
    if (waiters === undefined) this.roleWaiters.set(name, (waiters = new Set()));
    const told = () => listener();
    waiters.add(told);
    try {
      await this.listenForRoles();
    } catch (error) {
      waiters.delete(told);
      throw error;
    }
    return () => void waiters.delete(told);
  }

  /** The name of a role's lock on this schema, hashed to the advisory lock's key. */
  private roleLockName(role: string): string {
    return `hyperthings:${role}:${this.schema}`;
  }

  private rolesPool(): pg.Pool {
    this.rolePool ??= createPool({ ...this.connection, maxConnections: ROLE_SESSIONS }, this.schema);
    return this.rolePool;
  }

  /** Listens on ROLE_CHANNEL on a session of the roles' pool; again a moment after it ends. */
  private listenForRoles(): Promise<pg.PoolClient> {
    this.roleListening ??= (async () => {
      const client = await this.rolesPool().connect();
      client.on("notification", ({ channel, payload }) => {
        if (channel !== ROLE_CHANNEL || payload === undefined) return;
        for (const told of this.roleWaiters.get(payload) ?? []) told();
      });
      let ended = false;
      client.on("error", (error) => {
        if (ended) return;
        ended = true;
        client.release(error);
        this.roleListening = undefined;
        if (this.closed) return;
        this.roleListenRetry = setTimeout(
          () => void this.listenForRoles().catch(() => undefined),
          ROLE_LISTEN_RETRY_MS,
        );
        this.roleListenRetry.unref();
      });
      try {
        await client.query(`LISTEN ${ROLE_CHANNEL}`);
      } catch (error) {
        client.release(error as Error);
        throw error;
      }
      return client;
    })();
    const listening = this.roleListening;
    listening.catch(() => {
      if (this.roleListening === listening) this.roleListening = undefined;
    });
    return listening;
  }

  /** Why a write would be refused now for want of the schema's lock (see PostgresSecretStore). */
  writeRefusal(): UnavailableError | undefined {
    return this.lockLost && this.lockRefusal(this.lockLost.reason);
  }

  /** A write refused for want of the schema's lock: nothing of it was recorded. */
  private lockRefusal(reason: string): UnavailableError {
    return new UnavailableError(`${reason}. Nothing of this write was recorded`, UNWRITABLE_RETRY_AFTER_S);
  }

  async logHead(): Promise<LogHead> {
    const [row] = await this.rows<{ size: number; frontier: string }>(
      "SELECT size, frontier FROM log_head WHERE id = 1",
      [],
      "hyperthings-log-head",
    );
    if (!row) throw new Error(`The log_head row of ${this.where} is missing`);
    // Another process's head is parsed; this one's keeps its root once worked out.
    let head = this.head;
    if (row.size !== head.size)
      head = { size: row.size, frontier: MerkleFrontier.fromJSON(JSON.parse(row.frontier)) };
    head.root ??= head.frontier.root();
    return { size: row.size, root: Uint8Array.from(head.root) };
  }

  /**
   * RFC 9162 §2.1.1 subtree hashes in one round trip: the stored subtrees and the leaves each range
   * needs are found first, then read together with the Log's size, then hashed here.
   */
  async subtreeHashes(
    ranges: ReadonlyArray<readonly [number, number]>,
    options: { fromLeaves?: boolean } = {},
  ): Promise<Uint8Array[]> {
    const stored = options.fromLeaves !== true;
    for (const [start, end] of ranges) {
      if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end <= start)
        throw new RangeError(`no subtree [${start}, ${end})`);
    }
    const nodes = new Map<string, [number, number]>();
    const leafRanges: Array<[number, number]> = [];
    const plan = (start: number, end: number): void => {
      const n = end - start;
      if (stored && n >= BLOCK && isPowerOfTwo(n) && start % n === 0) {
        const key = `${Math.log2(n)}:${start / n}`;
        if (!this.cachedNodes.has(key)) nodes.set(key, [Math.log2(n), start / n]);
        return;
      }
      if (!stored || Math.floor(start / BLOCK) === Math.floor((end - 1) / BLOCK)) {
        leafRanges.push([start + 1, end]);
        return;
      }
      const k = largestPowerOfTwoBelow(n);
      plan(start, start + k);
      plan(start + k, end);
    };
    for (const [start, end] of ranges) plan(start, end);
    const merged = mergeRanges(leafRanges);
    const nodeList = [...nodes.values()];
    const rows = await this.rows<{ kind: number; a: number; b: number; hash: Buffer | null }>(
      `SELECT 0 AS kind, level::bigint AS a, idx AS b, hash FROM merkle_nodes
         WHERE (level, idx) IN (SELECT * FROM unnest($1::smallint[], $2::bigint[]))
       UNION ALL SELECT 1, seq, 0, leaf FROM changes c
         JOIN unnest($3::bigint[], $4::bigint[]) AS r(lo, hi) ON c.seq BETWEEN r.lo AND r.hi
       UNION ALL SELECT 2, size, 0, NULL FROM log_head WHERE id = 1`,
      [
        nodeList.map((n) => n[0]),
        nodeList.map((n) => n[1]),
        merged.map((r) => r[0]),
        merged.map((r) => r[1]),
      ],
      "hyperthings-subtrees",
    );
    const leaves = new Map<number, Uint8Array>();
    const found = new Map<string, Uint8Array>();
    let size = 0;
    for (const row of rows) {
      if (row.kind === 2) size = row.a;
      else if (row.kind === 1 && row.hash) leaves.set(row.a, row.hash);
      else if (row.hash) {
        const key = `${row.a}:${row.b}`;
        found.set(key, row.hash);
        if (row.a >= CACHED_LEVEL) {
          if (this.cachedNodes.size >= MAX_CACHED_NODES) this.cachedNodes.clear();
          this.cachedNodes.set(key, row.hash);
        }
      }
    }
    const advice = "`things verify` checks the Log; restore the database from a backup";
    const leafAt = (index: number): Uint8Array => {
      const seq = index + 1;
      const leaf = leaves.get(seq);
      if (!leaf) {
        // Past the head's size is refused below, before any leaf is asked for: a leaf within it
        // that is not there is a row deleted outside the hub, past its triggers.
        throw new DamagedLogError(
          `Change ${seq} is missing from the database (${this.where}), though the Log holds ${size} Changes: its row was deleted outside the hub. ${advice}`,
          seq,
        );
      }
      // The column's CHECK keeps it 32 bytes, unless someone dropped it: hashed as it is, such a
      // leaf made a proof that verifies against nothing, with no word of why (as SQLite says it).
      if (leaf.length !== HASH_LENGTH) {
        throw new DamagedLogError(
          `the leaf hash of Change ${seq} is ${leaf.length} byte${leaf.length === 1 ? "" : "s"}, not ${HASH_LENGTH}: the database (${this.where}) was altered outside the hub. ${advice}`,
          seq,
        );
      }
      return leaf;
    };
    const memo = new Map<string, Uint8Array>();
    const hash = (start: number, end: number): Uint8Array => {
      const n = end - start;
      if (n === 1) return leafAt(start);
      const memoKey = `${start}:${end}`;
      const known = memo.get(memoKey);
      if (known) return known;
      let result: Uint8Array | undefined;
      if (stored && n >= BLOCK && isPowerOfTwo(n) && start % n === 0) {
        const key = `${Math.log2(n)}:${start / n}`;
        result = found.get(key) ?? this.cachedNodes.get(key);
        if (!result) throw new Error(`the stored subtree [${start}, ${end}) is missing from ${this.where}`);
      } else {
        const k = largestPowerOfTwoBelow(n);
        result = nodeHash(hash(start, start + k), hash(start + k, end));
      }
      memo.set(memoKey, result);
      return result;
    };
    return ranges.map(([start, end]) => {
      if (end > size) throw new RangeError(`no subtree [${start}, ${end}) in a log of ${size}`);
      if (!stored) {
        const slice: Uint8Array[] = [];
        for (let i = start; i < end; i++) slice.push(leafAt(i));
        return rootHash(slice);
      }
      return hash(start, end);
    });
  }

  async checkpoints(options: { after?: number; limit?: number } = {}): Promise<Checkpoint[]> {
    return this.rows<Checkpoint>(
      "SELECT origin, size, root, time, signature FROM checkpoints WHERE size > $1 ORDER BY size LIMIT $2",
      [options.after ?? 0, options.limit ?? 1000],
    );
  }

  async latestCheckpoint(): Promise<Checkpoint | undefined> {
    const [row] = await this.rows<Checkpoint>(
      "SELECT origin, size, root, time, signature FROM checkpoints ORDER BY size DESC LIMIT 1",
    );
    return row;
  }

  async replicaIdentity(claim?: ReplicaIdentity): Promise<ReplicaIdentity | undefined> {
    const read = async () => {
      const [row] = await this.rows<{ hub: string; log_key: string; secrets_key: string }>(
        "SELECT hub, log_key, secrets_key FROM replica_identity WHERE id = 1",
      );
      return row && { hub: row.hub, logKey: row.log_key, secretsKey: row.secrets_key };
    };
    if (claim === undefined) return read();
    // The first to claim records it; any other, at the same moment or later, reads it.
    await this.rows(
      `INSERT INTO replica_identity (id, hub, log_key, secrets_key) VALUES (1, $1, $2, $3)
       ON CONFLICT (id) DO NOTHING`,
      [claim.hub, claim.logKey, claim.secretsKey],
    );
    return read();
  }

  async getRelease(id: string): Promise<ReleaseRecord | undefined> {
    const [row] = await this.rows<{ seq: number; stored_at: string; value: string }>(
      "SELECT r.seq, r.stored_at, c.value FROM releases r JOIN changes c ON c.seq = r.seq WHERE r.id = $1",
      [id],
    );
    return row && { release: JSON.parse(row.value) as Release, seq: row.seq, storedAt: row.stored_at };
  }

  async listReleases(options: ListReleasesOptions): Promise<ReleaseRecord[]> {
    const rows = await this.rows<{ seq: number; stored_at: string; value: string }>(
      `SELECT r.seq, r.stored_at, c.value FROM releases r JOIN changes c ON c.seq = r.seq
        WHERE r.seq < $1 AND ($2::text IS NULL OR r.name = $2) ORDER BY r.seq DESC LIMIT $3`,
      [options.before ?? NO_BOUND, options.name ?? null, options.limit],
    );
    return rows.map((row) => ({
      release: JSON.parse(row.value) as Release,
      seq: row.seq,
      storedAt: row.stored_at,
    }));
  }

  getRollout(id: string): Promise<Rollout | undefined> {
    const startedAt = performance.now();
    return rollouts.getRollout(this.pool, id).catch((error: unknown) => {
      throw this.unread(error, startedAt);
    });
  }

  listRollouts(options: ListRolloutsOptions): Promise<Rollout[]> {
    const startedAt = performance.now();
    return rollouts.listRollouts(this.pool, options).catch((error: unknown) => {
      throw this.unread(error, startedAt);
    });
  }

  rolloutSteps(rollout: string, query: RolloutStepQuery): Promise<RolloutStep[]> {
    const startedAt = performance.now();
    return rollouts.rolloutSteps(this.pool, rollout, query).catch((error: unknown) => {
      throw this.unread(error, startedAt);
    });
  }

  rolloutStepsOfThing(thing: string): Promise<RolloutStep[]> {
    const startedAt = performance.now();
    return rollouts.rolloutStepsOfThing(this.pool, thing).catch((error: unknown) => {
      throw this.unread(error, startedAt);
    });
  }

  rolloutProgress(rollout: string): Promise<RolloutProgress> {
    const startedAt = performance.now();
    return rollouts.rolloutProgress(this.pool, rollout).catch((error: unknown) => {
      throw this.unread(error, startedAt);
    });
  }

  /**
   * The Changes after `after` as NDJSON (Store.logEntries): members in RFC 8785 order, the JSON
   * texts as stored, the recorded leaf last. A row altered in the database is written as it is.
   */
  async logEntries(after: number, limit: number): Promise<LogEntries> {
    const rows = await this.rows<ChangeRow>(
      "SELECT * FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2",
      [after, limit],
      "hyperthings-log-entries",
    );
    return logEntriesOf(rows, after);
  }

  /**
   * Gives the schema's lock up on its own session before the session goes: a closed session's
   * locks go only once the server has ended its backend, a moment after the client hung up, and a
   * hub started right after this one stopped would be refused meanwhile. A session that does not
   * answer soon (the network cut) is not waited for: its lock goes when the server notices.
   */
  private async unlockSchema(): Promise<void> {
    const client = this.lockClient;
    if (client === undefined) return;
    this.lockClient = undefined;
    let timer: NodeJS.Timeout | undefined;
    const unlocked = await Promise.race([
      client.query("SELECT pg_advisory_unlock_all()").then(
        () => true,
        () => false,
      ),
      new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ROLE_RELEASE_TIMEOUT_MS))),
    ]).finally(() => clearTimeout(timer));
    // Not back to the pool with a lock possibly still held: the session ends with the pool.
    client.release(unlocked ? undefined : new Error("the schema's lock was not given up in time"));
  }

  close(): Promise<void> {
    // Every caller, not only the first, waits until the queue has committed and the pool is shut.
    this.closing ??= (async () => {
      this.closed = true;
      if (this.queue.length > 0 || this.running || this.scheduled) {
        await new Promise<void>((resolve) => (this.drained = resolve));
      }
      clearTimeout(this.recovery);
      clearTimeout(this.retaking);
      clearTimeout(this.expiry);
      clearTimeout(this.roleListenRetry);
      await Promise.all([...this.roles].map((release) => release()));
      const listening = this.roleListening;
      this.roleListening = undefined;
      (await listening?.catch(() => undefined))?.release(new Error("the store is closed"));
      await this.unlockSchema();
      await this.rolePool?.end();
      await this.pool.end();
    })();
    return this.closing;
  }
}

/** Leaf ranges [lo, hi] (1-based seqs) sorted and joined where they touch. */
function mergeRanges(ranges: Array<[number, number]>): Array<[number, number]> {
  ranges.sort((a, b) => a[0] - b[0]);
  const out: Array<[number, number]> = [];
  for (const [lo, hi] of ranges) {
    const last = out.at(-1);
    if (last && lo <= last[1] + 1) last[1] = Math.max(last[1], hi);
    else out.push([lo, hi]);
  }
  return out;
}

/** A batch found that this store's session no longer holds the schema's lock: nothing was written. */
class LockNotHeld extends Error {
  constructor() {
    super("the schema's lock is not held by this store's session");
  }
}

/** A COMMIT whose answer was lost: the batch may or may not have been recorded. */
class CommitUnknown extends Error {
  constructor(
    override readonly cause: unknown,
    private readonly where: string,
  ) {
    super("the COMMIT's outcome is unknown", { cause });
  }

  refusal(): UnavailableError {
    const refused = new UnavailableError(
      `The connection to PostgreSQL (${this.where}) failed while this write committed: it may or may not have been recorded. ` +
        "Read it back before retrying",
      10,
    );
    refused.cause = this.cause;
    return refused;
  }
}
