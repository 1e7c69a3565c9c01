// The embedded Store on SQLite (better-sqlite3): WAL, synchronous=FULL, group commit.
// Concurrent writers queue their commands; one transaction commits a whole batch, and each
// command's promise settles only after that commit is durable.
import Database from "better-sqlite3";
import { accessSync, closeSync, constants, existsSync, mkdirSync, openSync, statSync } from "node:fs";
import { dirname, resolve } from "node:path";
import {
  ConflictError,
  NotFoundError,
  UnavailableError,
  changeTime,
  type Change,
  type Checkpoint,
  type RegisteredThingDescription,
  type Release,
  type Rollout,
  type RolloutProgress,
  type RolloutStep,
} from "../../core/index.js";
import type {
  ChangeDraft,
  ChangeFilter,
  ChangedThing,
  ChangedThingsQuery,
  FeedQuery,
  DescribeCommand,
  DescribeResult,
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
  StateView,
  Store,
  ThingRecord,
} from "../store.js";
import { checkDescribeExpectation, describedRecord } from "../thing-rows.js";
import { queueRefusal } from "../write-queue.js";
import { restoreGuards, type RestoredGuard } from "./sqlite-guards.js";
import { migrations } from "./sqlite-migrations.js";
import { SqliteLog, type LogBatch, type LogMark, type LogMergeCycle, type MergeChunk } from "./sqlite-log.js";
import { SqliteRollouts } from "./sqlite-rollouts.js";
import { SqliteWriter, type WrittenSet } from "./sqlite-writer.js";

/** How long one batch transaction may run before it commits and lets the event loop go on. */
const BATCH_BUDGET_MS = 25;
/** A batch for the writer reads the clock after this many Changes (~0.3 ms of one-Change calls). */
const CLOCK_EVERY = 32;
/** SqliteStoreOptions.mmapBytes when not given. */
export const DEFAULT_MMAP_BYTES = 2 ** 30;

export interface SqliteStoreOptions {
  /** Path of the database file, or ":memory:". */
  path: string;
  /** Commands waiting beyond this many are refused with UnavailableError (backpressure). */
  maxQueue?: number;
  /**
   * Changes waiting in appends beyond this many are refused too (default 100,000): 10,000 calls of
   * 10,000 Changes each would otherwise all be held. A call alone in the queue is always taken.
   */
  maxQueuedChanges?: number;
  /** At most this many commands share one transaction. */
  maxBatch?: number;
  /**
   * History entries kept in memory before they are merged into the index (default 250,000;
   * docs/changes.md).
   */
  historyMergeThreshold?: number;
  /**
   * Index entries written per merge chunk at most while Changes arrive (default 1,000); four times
   * as many when none was appended since the chunk before.
   */
  historyMergeChunk?: number;
  /**
   * While Changes arrive, a merge chunk takes this many times as many entries as Changes were
   * appended since the one before (default 2; at least MIN_PACED_CHUNK, at most
   * `historyMergeChunk`), so that merging keeps ahead of ingest and each transaction carries
   * only a little of it; once the tail has fallen behind (twice the threshold) the same share,
   * no longer capped by `historyMergeChunk`. 0 makes every chunk `historyMergeChunk` (tests).
   */
  historyMergePace?: number;
  /** countStream keeps the seq of every this-many-th index entry of a stream (tests make it small). */
  historyRankStep?: number;
  /**
   * Commit the Log's appends and history merges on a writer thread (default, for a file; never
   * for ":memory:"); false commits everything on the calling thread.
   */
  writerThread?: boolean;
  /**
   * A batch of at least this many Changes is hashed by the writer thread (its leaves and the
   * Merkle tree), which frees the event loop; smaller ones are hashed on the event loop, so that
   * their producers do not wait for the thread to hash too (default 128; 0: every batch).
   */
  writerHashesFrom?: number;
  /**
   * How many bytes of the file this connection (the one queries read through) maps into memory
   * (`PRAGMA mmap_size`): a page is then read from the OS's page cache in place instead of copied
   * by a read call each time. 0 reads every page with a call. Default 1 GiB; ignored for
   * ":memory:". See docs/operations.md for the catch.
   */
  mmapBytes?: number;
  /**
   * How often (ms) to check, besides after every commit, that the WAL is still the file at
   * `<path>-wal` (`storageProblem`); default 1,000. 0: only after commits.
   */
  walCheckMs?: number;
  /** Told once when the WAL file was found deleted or replaced behind the store's back (log it). */
  onWalProblem?: (problem: WalProblem) => void;
}

/** What `PRAGMA wal_checkpoint` answers: busy 1 when it could not finish; frames in the WAL, and checkpointed. */
interface WalCheckpoint {
  busy: number;
  log: number;
  checkpointed: number;
}

/** The WAL file deleted or replaced while the store runs (`SqliteStore.storageProblem`). */
export interface WalProblem {
  readonly since: string;
  readonly reason: string;
}

interface ReleaseRow {
  seq: number;
  stored_at: string;
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

/**
 * A queued command. Every member is always set (one shape for all), and an append has no closure
 * of its own (`run` undefined): a one-Change ingest call allocates as little as it can here.
 */
interface Pending {
  /** The command; undefined for an append of `drafts` (SqliteStore.append). */
  run: (() => unknown) | undefined;
  resolve: (value: unknown) => void;
  /** Takes what `SqliteStore.refused` made of the error (what the file refused, as such). */
  reject: (error: unknown) => void;
  /** Runs synchronously right after COMMIT, before any promise settles. */
  afterCommit: ((value: unknown) => void) | undefined;
  /** Writes only through the Log (appends, merge chunks): may be committed by the writer thread. */
  logOnly: boolean;
  /** What it appends (an ingest call's). */
  drafts: readonly ChangeDraft[] | undefined;
}

type Outcome = { ok: true; value: unknown } | { ok: false; error: unknown };

/**
 * How many batches may be with the writer thread at once: while one commits (its fsync), the next
 * is built on this thread, so neither core waits for the other.
 */
const MAX_IN_FLIGHT = 2;
/** The most Changes of a batch whose streams are looked up before it is built (`SqliteLog.warm`). */
const MAX_WARMED = 512;
/** Changes looked up at a time (`SqliteLog.warm`), each window just before it is appended. */
const WARM_WINDOW = 64;

/** The most history entries a merge chunk takes to keep pace with ingest (a few ms of writing). */
const MAX_PACED_CHUNK = 16_000;

/**
 * With nothing appended since the last chunk, a chunk takes this many times `historyMergeChunk`:
 * nobody waits for it, and a Change that arrives meanwhile waits a few ms at most (4,000 entries:
 * ~4 ms), while a merge with nothing else to do goes ~1.4× as fast as in chunks of 1,000.
 */
const IDLE_CHUNKS = 4;

/** What a merge step queued before its cycle ended builds: nothing, and the cycle is over. */
const NO_CHUNK: MergeChunk = Object.freeze({ entries: [], done: true });

/** The fewest a paced chunk takes: smaller ones would cost more per entry than they save. */
const MIN_PACED_CHUNK = 100;

/**
 * After COMMIT: each command's afterCommit runs, then its promise settles, in order; a failed
 * command's error goes through `refused` first.
 */
function settleBatch(
  batch: readonly Pending[],
  outcomes: readonly Outcome[],
  refused: (error: unknown) => unknown,
): void {
  for (let i = 0; i < batch.length; i++) {
    const outcome = outcomes[i];
    if (outcome?.ok) (batch[i] as Pending).afterCommit?.(outcome.value);
  }
  for (let i = 0; i < batch.length; i++) {
    const p = batch[i] as Pending;
    const outcome = outcomes[i];
    if (outcome?.ok) p.resolve(outcome.value);
    else p.reject(refused(outcome ? outcome.error : new Error("lost outcome")));
  }
}

interface InFlight {
  readonly batch: Pending[];
  readonly outcomes: Outcome[];
  readonly log: LogBatch;
  /** The Log's state before it, to go back to if it fails. */
  readonly mark: LogMark;
  /** Failed already, with an earlier batch it was built on. */
  failed?: unknown;
}

/**
 * A command failed in a way that ended the whole transaction, not just its savepoint (SQLite rolls
 * back on SQLITE_FULL, SQLITE_IOERR, RAISE(ROLLBACK), …): nothing of the batch is committed.
 */
class BatchAborted extends Error {
  constructor(
    readonly index: number,
    readonly error: unknown,
  ) {
    super("the batch's transaction was rolled back", { cause: error });
  }
}

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

/**
 * Holds `<path>-lock` locked for as long as the store is open: the store keeps the Log's head in
 * memory and assumes it is the file's only writer, so a second hub on the same data directory
 * must be refused before it reads anything. SQLite's own file lock (POSIX fcntl) is the lock: the
 * operating system releases it when the process ends, however it ends, so it is never stale.
 */
function lockDatabase(path: string): Database.Database {
  const lockPath = `${path}-lock`;
  let lock: Database.Database;
  try {
    lock = new Database(lockPath, { timeout: 0 });
  } catch (error) {
    throw unopenable(lockPath, error);
  }
  try {
    // The journal in memory: the lock file holds nothing, and a journal file would stay beside it.
    lock.pragma("journal_mode = MEMORY");
    lock.pragma("locking_mode = EXCLUSIVE");
    lock.exec("BEGIN EXCLUSIVE");
  } catch (error) {
    lock.close();
    if ((error as { code?: unknown }).code !== "SQLITE_BUSY") throw unopenable(lockPath, error);
    throw new ConflictError(
      `${path} is in use by another hub (it holds ${lockPath}): stop that hub first, or give this one another data directory (--data)`,
    );
  }
  return lock;
}

/**
 * Makes a new database file readable by its owner alone (0600), before SQLite makes it with the
 * process's umask (0644 as a rule): the Log holds every value every Thing reported, and SQLite gives
 * the `-wal` and `-shm` files it makes beside it the database file's mode. A data directory that
 * existed already (made 0755 by a package or a container volume) no longer leaves them to every
 * user of the machine. An existing file is left as it is.
 */
function createPrivately(path: string): void {
  let fd: number;
  try {
    fd = openSync(path, "wx", 0o600);
  } catch {
    // There already (EEXIST), or not to be made here: SQLite's opening says why, naming the file.
    return;
  }
  closeSync(fd);
}

/**
 * SQLite's word for a file it cannot open or write ("unable to open database file", "attempt to
 * write a readonly database") names neither the file nor what to do: this does.
 */
function unopenable(file: string, error: unknown): unknown {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code !== "string" || !/^SQLITE_(CANTOPEN|READONLY|PERM|AUTH)/.test(code)) return error;
  return new Error(
    `${file}: ${(error as Error).message}. The hub reads and writes its data directory ${dirname(file)} ` +
      "(--data, HYPERTHINGS_DATA): it must be a directory this user may write, on a file system that is not read-only",
    { cause: error },
  );
}

/**
 * Makes `dir` and its missing parents, each with `mode`. Not Node's `mkdirSync(dir, { recursive:
 * true })`: where a parent exists but refuses a child with ENOENT (/proc, /sys) it makes the
 * parent again and retries the child for ever, and `things serve --data /proc/x` hung.
 */
export function makeDirectory(dir: string, mode: number): void {
  const missing: string[] = [];
  let path = resolve(dir);
  while (!existsSync(path)) {
    missing.unshift(path);
    const parent = dirname(path);
    if (parent === path) break;
    path = parent;
  }
  // Nothing missing: mkdir says what is in the way when the path is a file, and nothing otherwise.
  if (missing.length === 0) mkdirSync(dir, { recursive: true, mode });
  for (const each of missing) {
    try {
      mkdirSync(each, { mode });
    } catch (err) {
      // Made meanwhile by another process (two hubs starting on one directory).
      if ((err as NodeJS.ErrnoException).code !== "EEXIST" || !statSync(each).isDirectory()) throw err;
    }
  }
}

/**
 * Why `makeDirectory(dir)` failed, said by what is in the way: mkdir's own words ("EEXIST: file
 * already exists, mkdir …", or ENOENT on a read-only or virtual file system) do not say it.
 */
export function unmadeDirectory(dir: string, error: unknown): string {
  // The nearest path that exists tells what is in the way.
  let existing = dir;
  while (!existsSync(existing) && dirname(existing) !== existing) existing = dirname(existing);
  if (!statSync(existing).isDirectory()) return `${existing} is a file, not a directory`;
  try {
    accessSync(existing, constants.W_OK);
  } catch (denied) {
    return `${existing} cannot be written (${(denied as Error).message})`;
  }
  switch ((error as NodeJS.ErrnoException).code) {
    case "EROFS":
      return `${existing} is on a read-only file system`;
    case "ENOENT":
      // A parent that is there, writable, and still says "no such file": a virtual file system.
      return `${existing} takes no new directories (a virtual file system such as /proc or /sys)`;
    case "EACCES":
    case "EPERM":
      return `permission denied in ${existing}`;
    case "ENOSPC":
      return "the disk is full";
    default:
      return (error as Error).message;
  }
}

/** Makes the data directory (the owner's alone), or says in one line why it cannot be one. */
export function makeDataDirectory(dir: string): void {
  try {
    makeDirectory(dir, 0o700);
  } catch (error) {
    throw new Error(
      `The data directory ${dir} (--data, HYPERTHINGS_DATA) cannot be made: ${unmadeDirectory(dir, error)}. ` +
        "It must be a directory this user may write, on a file system that is not read-only",
      { cause: error },
    );
  }
}

/** SQLite's own word for a damaged file names neither the file nor what to do: this does. */
function damaged(path: string, error: unknown): unknown {
  const code = (error as { code?: unknown }).code;
  if (code !== "SQLITE_CORRUPT" && code !== "SQLITE_NOTADB") return error;
  return new Error(
    `${path}: ${(error as Error).message}. The file is damaged: restore it from a backup (docs/operations.md, "Backups")`,
    { cause: error },
  );
}

/** Seconds a writer refused for want of disk (or a disk error) is told to wait before a retry. */
const UNWRITABLE_RETRY_AFTER_S = 10;

/**
 * A write that failed because the file could not be written (a full disk, an I/O error, a file
 * made read-only, another program holding the write lock) is the hub's trouble, not the
 * request's: it is refused as unavailable (503, Retry-After), saying that nothing of it was
 * recorded and what the operator must look at, instead of as an internal error (500). The
 * SQLite error stays its `cause`, for the log.
 */
function unwritten(error: unknown, path: string): unknown {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code !== "string") return error;
  let refused: UnavailableError;
  if (code === "SQLITE_FULL") {
    refused = new UnavailableError(
      `The hub's disk is full (${dirname(path)}): nothing of this write was recorded. Retry once space has been freed there`,
      UNWRITABLE_RETRY_AFTER_S,
    );
  } else if (/^SQLITE_(IOERR|READONLY|BUSY|CANTOPEN)/.test(code)) {
    refused = new UnavailableError(
      `The hub could not write to ${path} (${code}: ${(error as Error).message}): nothing of this write was recorded. Retry shortly`,
      UNWRITABLE_RETRY_AFTER_S,
    );
  } else return error;
  refused.cause = error;
  return refused;
}

export class SqliteStore implements Store {
  private readonly db: Database.Database;
  /** The database file (named in the errors of writes that could not be made). */
  private readonly path: string;
  /** Set when a write fails for want of the file itself; cleared when one commits (writeFailure). */
  private failing: { since: string; reason: string } | undefined;
  /** Held while the store is open, so that no second store opens the same file (lockDatabase). */
  private readonly lock: Database.Database | undefined;
  private readonly maxQueue: number;
  private readonly maxQueuedChanges: number;
  /** The Changes of the appends in `queue` (their drafts). */
  private queuedChanges = 0;
  private readonly maxBatch: number;
  private queue: Pending[] = [];
  private flushScheduled = false;
  private closed = false;
  private closing: Promise<void> | undefined;
  private drained: (() => void) | undefined;

  /**
   * Parsed TDs by the seq of the Change that described them. That Change never changes, so an
   * entry is never stale; the bound keeps memory in check. Parsing was the largest cost of GET,
   * listing and JSONPath search (the directory benchmark's profile). Readers must not modify a
   * record's TD.
   */
  private readonly parsedTds = new Map<number, RegisteredThingDescription>();
  private static readonly MAX_PARSED_TDS = 20_000;

  private toRecord(row: ThingRow): ThingRecord {
    let td = this.parsedTds.get(row.version);
    if (td === undefined) {
      td = JSON.parse(row.td) as RegisteredThingDescription;
      this.parsedTds.set(row.version, td);
      if (this.parsedTds.size > SqliteStore.MAX_PARSED_TDS) {
        const oldest = this.parsedTds.keys().next().value;
        if (oldest !== undefined) this.parsedTds.delete(oldest);
      }
    }
    return toRecord(row, td);
  }

  private readonly stmt;
  private readonly runBatch: (batch: Pending[]) => Outcome[];
  private readonly log: SqliteLog;
  private readonly rollouts: SqliteRollouts;
  private readonly historyMergeThreshold: number;
  private readonly historyMergeChunk: number;
  private readonly historyMergePace: number;
  private readonly writerHashesFrom: number;
  /** The merge cycle running, if any: it settles when the cycle ends (rejects when a chunk failed). */
  private mergeCycle: Promise<void> | undefined;
  /** Changes appended since the last history merge chunk was built (it sizes the next). */
  private appendedSinceChunk = 0;
  /** The Log's writer thread (undefined: every batch commits on this thread). */
  private readonly writer: SqliteWriter | undefined;
  /** Batches with the writer thread, oldest first: they commit (and settle) in this order. */
  private readonly inFlight: InFlight[] = [];
  /** Bumped when a batch fails: the writer refuses the batches built on it (they fail with it). */
  private epoch = 0;
  /** The WAL file the connections opened (device and inode of `<path>-wal`); undefined in memory. */
  private readonly wal: { path: string; dev: bigint; ino: bigint } | undefined;
  private walDetached: WalProblem | undefined;
  private readonly walTimer: NodeJS.Timeout | undefined;
  private readonly onWalProblem: ((problem: WalProblem) => void) | undefined;

  /**
   * The append-only triggers this opening found missing or altered (dropped by someone who could
   * write the file) and put back: the hub says so at start. `things verify` tells whether the Log
   * itself was altered meanwhile.
   */
  readonly restoredGuards: readonly RestoredGuard[];

  constructor(options: SqliteStoreOptions) {
    this.path = options.path;
    if (options.path !== ":memory:") {
      // The owner's alone, as the hub's own files in it are (admin-token, keys: data-files.ts):
      // the Log holds every value every Thing reported, and the directory is made here first.
      makeDataDirectory(dirname(options.path));
      this.lock = lockDatabase(options.path);
      createPrivately(options.path);
    }
    try {
      this.db = new Database(options.path);
    } catch (error) {
      this.lock?.close();
      throw unopenable(options.path, error);
    }
    try {
      this.db.pragma("journal_mode = WAL");
      // Acknowledged means durable, even on power loss (PITFALLS.md); group commit keeps it cheap.
      this.db.pragma("synchronous = FULL");
      this.db.pragma("busy_timeout = 5000");
      // 64 MiB of page cache instead of SQLite's 2 MiB: the index and Merkle pages that history,
      // time travel and proofs touch stay in memory on a Log of millions of Changes.
      this.db.pragma("cache_size = -65536");
      // Inclusion proofs on a Log of 2M Changes, rounds alternating in one process: p99
      // 0.18–0.34 ms mapped against 0.43–0.77 ms read page by page (bench/README, session 17).
      if (options.path !== ":memory:")
        this.db.pragma(`mmap_size = ${options.mmapBytes ?? DEFAULT_MMAP_BYTES}`);
      this.migrate();
      this.log = new SqliteLog(this.db, options.historyRankStep);
      // Only once the Log is accepted: a file refused at opening is left as it was.
      this.restoredGuards = restoreGuards(this.db);
    } catch (error) {
      // A refused database (newer schema, failed migration, a damaged Log) must not stay open
      // behind the error.
      this.db.close();
      this.lock?.close();
      throw unopenable(options.path, damaged(options.path, error));
    }
    this.maxQueue = options.maxQueue ?? 10_000;
    this.maxQueuedChanges = options.maxQueuedChanges ?? 100_000;
    this.maxBatch = options.maxBatch ?? 1_000;
    this.historyMergeThreshold = options.historyMergeThreshold ?? 250_000;
    // Small chunks: the appends that ride with one wait for it on the writer (5–10 ms at 2M Changes).
    this.historyMergeChunk = options.historyMergeChunk ?? 1_000;
    this.historyMergePace = options.historyMergePace ?? 2;
    this.writerHashesFrom = options.writerHashesFrom ?? 128;
    if (options.path !== ":memory:" && options.writerThread !== false)
      this.writer = new SqliteWriter(options.path);
    // The WAL exists from the first read (the migration's) on, and stays the same file until
    // the last connection closes.
    const walPath = `${options.path}-wal`;
    const wal =
      options.path === ":memory:" ? undefined : statSync(walPath, { bigint: true, throwIfNoEntry: false });
    if (wal !== undefined) this.wal = { path: walPath, dev: wal.dev, ino: wal.ino };
    this.onWalProblem = options.onWalProblem;
    const walCheckMs = options.walCheckMs ?? 1_000;
    if (this.wal !== undefined && walCheckMs > 0) {
      this.walTimer = setInterval(() => {
        if (!this.closed) this.guardWal();
      }, walCheckMs).unref();
    }
    this.rollouts = new SqliteRollouts(this.db);

    const db = this.db;
    this.stmt = {
      // A Thing's TD is the value of the Change that last described it (things.version).
      getThing: db.prepare<[string], ThingRow>(
        "SELECT t.*, c.value AS td FROM things t JOIN changes c ON c.seq = t.version WHERE t.id = ?",
      ),
      getVersion: db.prepare<[string], { td: string; version: number; created: string }>(
        "SELECT c.value AS td, t.version, t.created FROM things t JOIN changes c ON c.seq = t.version WHERE t.id = ?",
      ),
      upsertThing: db.prepare(
        `INSERT INTO things (id, created, modified, expires, ttl, version)
         VALUES (@id, @created, @modified, @expires, @ttl, @version)
         ON CONFLICT (id) DO UPDATE SET modified = excluded.modified,
           expires = excluded.expires, ttl = excluded.ttl, version = excluded.version`,
      ),
      deleteThing: db.prepare<[string]>("DELETE FROM things WHERE id = ?"),
      // The page is chosen on the narrow directory rows; only its TDs are read from the Log.
      listThings: db.prepare<
        [{ live: string | null; after: string | null; limit: number; offset: number }],
        ThingRow
      >(
        `SELECT t.*, c.value AS td FROM (
           SELECT * FROM things WHERE (@after IS NULL OR id > @after)
             AND (@live IS NULL OR expires IS NULL OR expires > @live)
           ORDER BY id LIMIT @limit OFFSET @offset
         ) t JOIN changes c ON c.seq = t.version ORDER BY t.id`,
      ),
      scanThings: db.prepare<[string, number], ThingRow>(
        `SELECT t.*, c.value AS td FROM (SELECT * FROM things WHERE id > ? ORDER BY id LIMIT ?) t
         JOIN changes c ON c.seq = t.version ORDER BY t.id`,
      ),
      // Expired rows are counted through the partial index on expires, not by a table scan.
      countThings: db.prepare<[{ live: string | null }], { n: number }>(
        `SELECT (SELECT count(*) FROM things) - CASE WHEN @live IS NULL THEN 0 ELSE
           (SELECT count(*) FROM things WHERE expires IS NOT NULL AND expires <= @live) END AS n`,
      ),
      thingsVersion: db.prepare<[], { v: number }>("SELECT coalesce(max(version), 0) AS v FROM things"),
      getRelease: db.prepare<[string], ReleaseRow>("SELECT seq, stored_at FROM releases WHERE id = ?"),
      insertRelease: db.prepare<[string, string, number, string]>(
        "INSERT INTO releases (id, name, seq, stored_at) VALUES (?, ?, ?, ?)",
      ),
      listReleases: db.prepare<[{ before: number; limit: number; name: string | null }], ReleaseRow>(
        `SELECT seq, stored_at FROM releases WHERE seq < @before AND (@name IS NULL OR name = @name)
         ORDER BY seq DESC LIMIT @limit`,
      ),
      expired: db.prepare<[string, number], { id: string }>(
        "SELECT id FROM things WHERE expires IS NOT NULL AND expires <= ? ORDER BY expires LIMIT ?",
      ),
    };

    // Each command runs in a savepoint (a nested better-sqlite3 transaction), so one failing
    // command (a precondition, a constraint) rolls back alone and the rest of the batch commits.
    const runOne = db.transaction((pending: Pending) => this.runPending(pending));
    const batchTransaction = db.transaction((batch: Pending[]) => {
      const outcomes: Outcome[] = [];
      const started = performance.now();
      for (const [index, pending] of batch.entries()) {
        // A batch also ends when it has run for BATCH_BUDGET_MS: the commands not run yet go
        // back to the head of the queue, so one big batch never holds the event loop for long.
        if (index > 0 && performance.now() - started > BATCH_BUDGET_MS) break;
        const mark = this.log.mark();
        try {
          outcomes.push({ ok: true, value: runOne(pending) });
        } catch (error) {
          this.log.rollback(mark);
          // Without the transaction, the next commands would each autocommit on their own and
          // the final COMMIT fail: writes made durable yet reported as failed. Stop the batch.
          if (!db.inTransaction) throw new BatchAborted(index, error);
          outcomes.push({ ok: false, error });
        }
      }
      this.log.saveHead();
      return outcomes;
    });
    // IMMEDIATE: take the write lock (waiting up to busy_timeout) before the first read, so a
    // batch never fails to upgrade a read snapshot that another connection has since changed.
    this.runBatch = (batch) => batchTransaction.immediate(batch);
  }

  private migrate(): void {
    // IMMEDIATE, and the version read inside: two processes opening a new file at once must not
    // both run migration 1.
    this.db
      .transaction(() => {
        const current = this.db.pragma("user_version", { simple: true }) as number;
        if (current > migrations.length) {
          throw new Error(
            `The database schema is version ${current}, newer than this hub understands (${migrations.length}); upgrade the hub.`,
          );
        }
        for (let v = current; v < migrations.length; v++) {
          this.db.exec(migrations[v] ?? "");
          this.db.pragma(`user_version = ${v + 1}`);
        }
      })
      .immediate();
  }

  /**
   * Queues a command. `internal`: the store's own (merges, checkpoints), never refused for a full
   * queue; `logOnly`: it writes only through the Log, so the writer thread may commit it; `first`:
   * it goes ahead of the queued commands.
   */
  private enqueue<T>(
    run: () => T,
    afterCommit?: (value: T) => void,
    {
      internal = false,
      logOnly = false,
      first = false,
      drafts = undefined as readonly ChangeDraft[] | undefined,
    } = {},
  ): Promise<T> {
    return this.enqueuePending(
      run,
      afterCommit as ((value: unknown) => void) | undefined,
      internal,
      logOnly,
      first,
      drafts,
    ) as Promise<T>;
  }

  private enqueuePending(
    run: (() => unknown) | undefined,
    afterCommit: ((value: unknown) => void) | undefined,
    internal: boolean,
    logOnly: boolean,
    first: boolean,
    drafts: readonly ChangeDraft[] | undefined,
  ): Promise<unknown> {
    const changes = drafts?.length ?? 0;
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
    this.queuedChanges += changes;
    return new Promise<unknown>((resolve, reject) => {
      const pending: Pending = { run, resolve, reject, afterCommit, logOnly, drafts };
      // First, but never ahead of a command for this thread: that one waits until no batch is in
      // flight, and Log-only commands put before it again and again would keep it waiting.
      if (first && (this.queue[0]?.logOnly ?? true)) this.queue.unshift(pending);
      else if (first) this.queue.splice(1, 0, pending);
      else this.queue.push(pending);
      if (!this.flushScheduled) {
        this.flushScheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  /**
   * What a command's promise is rejected with: whatever a command threw (its own error) goes to
   * its writer; what the file refused, as such (and the store says it is failing).
   */
  private readonly refused = (error: unknown): unknown => {
    const refused = unwritten(error, this.path);
    if (refused !== error && refused instanceof UnavailableError) {
      this.failing ??= { since: new Date().toISOString(), reason: refused.message };
    }
    return refused;
  };

  /** Runs a queued command (an append without a closure of its own: `Pending.run`). */
  private runPending(pending: Pending): unknown {
    if (pending.run !== undefined) return pending.run();
    const drafts = pending.drafts ?? [];
    this.appendedSinceChunk += drafts.length;
    return this.log.appendAll(drafts);
  }

  private flush(): void {
    this.flushScheduled = false;
    if (this.queue.length > 0) this.commitNext();
    if (this.queue.length > 0) {
      // The writer's answer flushes again when it is what the next batch waits for.
      if (this.inFlight.length > 0 && !this.canBuild()) return;
      // One batch per turn of the event loop: acknowledgements go out and new requests come in
      // between batches, instead of the loop stalling until the whole queue is drained (the log
      // benchmark saw 500 ms stalls under a paced load).
      this.scheduleFlush();
      return;
    }
    if (this.inFlight.length === 0) this.idle();
  }

  saturated(): boolean {
    return this.queue.length >= this.maxQueue || this.queuedChanges >= this.maxQueuedChanges;
  }

  /** The first `end` commands, out of the queue. */
  private dequeue(end: number): Pending[] {
    const batch = this.queue.splice(0, end);
    for (const p of batch) this.queuedChanges -= p.drafts?.length ?? 0;
    return batch;
  }

  /** Commands that did not run (yet), back at the head of the queue, in their order. */
  private requeue(batch: Pending[]): void {
    for (const p of batch) this.queuedChanges += p.drafts?.length ?? 0;
    this.queue.unshift(...batch);
  }

  /** Whether the command at the head of the queue can be run now. */
  private canBuild(): boolean {
    const first = this.queue[0];
    if (first === undefined) return false;
    // A batch for the writer builds on those in flight; one on this thread needs the write lock
    // and the Log committed up to where it appends, so it waits until none is in flight.
    if (this.writer && first.logOnly) return this.inFlight.length < MAX_IN_FLIGHT;
    return this.inFlight.length === 0;
  }

  /** Nothing is queued or in flight. */
  private idle(): void {
    this.drained?.();
    this.mergeIfDue();
  }

  private mergeIfDue(): void {
    // The cycle's promise carries its failure to mergeTail's callers only (mergeHistory).
    if (!this.mergeCycle && !this.closed && this.log.tailSize >= this.historyMergeThreshold)
      void this.mergeHistory();
  }

  private scheduleFlush(): void {
    if (this.flushScheduled) return;
    this.flushScheduled = true;
    setImmediate(() => this.flush());
  }

  /**
   * The next batch, if it can be built now: the leading Log-only commands go to the writer
   * thread; any other command (with the Log-only ones behind it, up to the next run of them)
   * commits on this thread.
   */
  private commitNext(): void {
    if (!this.canBuild()) return;
    const first = this.queue[0];
    if (this.writer && first?.logOnly) {
      let end = 1;
      while (end < this.queue.length && end < this.maxBatch && this.queue[end]?.logOnly) end++;
      // With nothing in flight the writer is idle: it gets the first half at once and this thread
      // builds the other half while it writes. Otherwise producers that all wait for one batch
      // would keep the two threads taking turns (the log benchmark: each ~50 % busy).
      if (this.inFlight.length === 0 && end > 1) end = Math.ceil(end / 2);
      this.commitToWriter(this.writer, this.dequeue(end));
      return;
    }
    let end = 1;
    while (end < this.queue.length && end < this.maxBatch && !(this.writer && this.queue[end]?.logOnly))
      end++;
    this.commitBatch(this.dequeue(end));
  }

  /**
   * Runs the commands here, collecting their rows, and has the writer thread commit them: the
   * promises settle when it answers, in the order the batches were built. Until then readers see
   * the Log without this batch; the next batch may be built on it meanwhile (MAX_IN_FLIGHT). If
   * it fails, the Log's memory goes back to before it, and the batches built on it fail too.
   */
  private commitToWriter(writer: SqliteWriter, batch: Pending[]): void {
    const log = this.log;
    const mark = log.mark();
    // The writer hashes a big batch, and any batch while one it hashes is in flight: the Merkle
    // tree here moves on only when that one has committed.
    let changes = 0;
    for (const p of batch) changes += p.drafts?.length ?? 0;
    log.beginCapture(changes >= this.writerHashesFrom || this.inFlight.some((e) => e.log.writerHashes));
    // Every stream the batch appends to, looked up first, in one loop: the lookups of one Change
    // wait on one another, those of different Changes do not (sqlite-log.ts, `warm`). Not for a
    // batch of more than MAX_WARMED Changes (calls of many Changes each, mostly of one Thing).
    // WARM_WINDOW Changes at a time, each window just before its appends, and `append` takes each
    // Thing's map as `warm` found it: a set of ~420 one-Change calls looked up at once had left
    // the caches again by the time it was appended (bench/README.md, session 33: the event
    // loop's CPU per Change ×0.91–0.94 against the whole set at once, ×0.96–1.04 for the maps
    // passed on alone).
    const warming = changes <= MAX_WARMED;
    const drafts: ChangeDraft[] = [];
    if (warming) {
      for (const pending of batch) if (pending.drafts) for (const draft of pending.drafts) drafts.push(draft);
    }
    let warmedTo = 0;
    let draftIndex = 0;
    const outcomes: Outcome[] = [];
    const started = performance.now();
    // The budget is checked once CLOCK_EVERY Changes have been built since the last look at the
    // clock (any command without Changes counts as that many), not after each one-Change call.
    let unclocked = 0;
    // One mark, taken again before each command: only the latest is ever rolled back to. It
    // copies nothing of the Merkle frontier (markCommand).
    let commandMark: LogMark | undefined;
    for (let index = 0; index < batch.length; index++) {
      const pending = batch[index] as Pending;
      if (index > 0 && unclocked >= CLOCK_EVERY) {
        unclocked = 0;
        if (performance.now() - started > BATCH_BUDGET_MS) break;
      }
      commandMark = log.markCommand(commandMark);
      if (warming) {
        if (draftIndex >= warmedTo && draftIndex < drafts.length) {
          const window = Math.max(WARM_WINDOW, pending.drafts?.length ?? 0);
          warmedTo = Math.min(drafts.length, draftIndex + window);
          log.warm(drafts, draftIndex, warmedTo);
        }
        log.warmedAt(draftIndex);
        draftIndex += pending.drafts?.length ?? 0;
      }
      try {
        outcomes.push({ ok: true, value: this.runPending(pending) });
      } catch (error) {
        log.rollback(commandMark);
        outcomes.push({ ok: false, error });
      }
      unclocked += pending.drafts?.length ?? CLOCK_EVERY;
    }
    if (warming) log.warmed();
    log.saveHead();
    const built = log.endCapture();
    if (outcomes.length < batch.length) this.requeue(batch.splice(outcomes.length));
    if (built === undefined) {
      // Nothing to write (every command failed, or wrote nothing): it settles now, and the Log
      // is as it was; with nothing in flight, that is the committed Log.
      if (this.inFlight.length === 0) log.committed();
      settleBatch(batch, outcomes, this.refused);
      return;
    }
    const entry: InFlight = { batch, outcomes, log: built, mark };
    this.inFlight.push(entry);
    writer.write(built.set, this.epoch).then(
      (hashed) => this.written(entry, hashed),
      (error: unknown) => this.writeFailed(entry, error),
    );
  }

  /** The writer committed the oldest batch in flight. */
  private written(entry: InFlight, hashed: WrittenSet | undefined): void {
    this.landed(entry);
    this.log.committed(entry.log, hashed);
    this.failing = undefined;
    this.guardWal();
    settleBatch(entry.batch, entry.outcomes, this.refused);
    this.afterWrite();
  }

  /** The writer did not commit the oldest batch in flight: it and those built on it fail. */
  private writeFailed(entry: InFlight, error: unknown): void {
    this.landed(entry);
    if (entry.failed === undefined) {
      // The first to fail: the Log goes back to before it; the writer refuses the batches
      // already sent that were built on it (they carry the old epoch).
      this.log.abandoned(entry.mark);
      this.epoch++;
      for (const later of this.inFlight) later.failed = error;
    }
    for (const p of entry.batch) p.reject(this.refused(entry.failed ?? error));
    this.afterWrite();
  }

  /** The writer answers in the order the sets were sent: `entry` is the oldest in flight. */
  private landed(entry: InFlight): void {
    if (this.inFlight[0] !== entry) throw new Error("the store's writer answered out of order");
    this.inFlight.shift();
  }

  private afterWrite(): void {
    // The queue may have filled while the set was written (a new batch), or stayed empty (the
    // store is idle: a merge may start, a close go on); a long run of batches also merges.
    if (this.queue.length > 0) {
      this.scheduleFlush();
      this.mergeIfDue();
    } else if (this.inFlight.length === 0 && !this.flushScheduled) this.idle();
  }

  private commitBatch(batch: Pending[]): void {
    // Promises settle only after COMMIT returned: until then no success is durable.
    let outcomes: Outcome[];
    const mark = this.log.mark();
    try {
      outcomes = this.runBatch(batch);
    } catch (err) {
      this.log.rollback(mark);
      if (err instanceof BatchAborted) {
        // The failing command answers alone; the others committed nothing and run again.
        batch[err.index]?.reject(this.refused(err.error));
        this.requeue(batch.filter((_, i) => i !== err.index));
        return;
      }
      for (const p of batch) p.reject(this.refused(err));
      return;
    }
    this.log.committed();
    this.failing = undefined;
    this.guardWal();
    // Commands the time budget left out run in the next batch, still ahead of newer ones.
    if (outcomes.length < batch.length) this.requeue(batch.splice(outcomes.length));
    settleBatch(batch, outcomes, this.refused);
  }

  /**
   * Moves the in-memory history tail into the index, one chunk per queued transaction, so ingest
   * goes on between chunks. Each chunk covers one contiguous key range: one write per page.
   */
  private mergeHistory(): Promise<void> {
    let end!: { resolve: () => void; reject: (error: unknown) => void };
    const ended = new Promise<void>((resolve, reject) => (end = { resolve, reject }));
    // Only mergeTail's callers hear of a failed chunk; the store itself just tries again later.
    ended.catch(() => {});
    this.mergeCycle = ended;
    const cycle: LogMergeCycle = this.log.beginMerge();
    // A chunk built after the cycle ended (a chunk before it failed, or the store closed) writes
    // nothing; the cycle's promise settles once.
    const over = (): boolean => this.mergeCycle !== ended;
    const step = (): void => {
      // Each chunk goes into the next batch, ahead of the appends, so the merge's cost is spread
      // over the batches. The appends riding with a chunk wait for it on the writer (~5 µs an
      // entry), so while Changes arrive a chunk takes `historyMergePace` times what was appended
      // since the one before: a little in each transaction, yet ahead of ingest. Only when the
      // tail has fallen behind (twice the threshold) may it grow past `historyMergeChunk`,
      // capped so that none holds the event loop or the writer long: memory stays bounded. With
      // nothing appended since the last chunk nobody waits: a whole chunk goes.
      //
      // With the writer thread and nothing appended since the last chunk (a merge with nothing
      // else to do), the next chunk of history entries is queued as soon as this one is built,
      // and built while this one is written (after its entries): the two threads no longer take
      // turns over the merge. Changes that arrive meanwhile ride with the next chunk built (the
      // batch takes the commands queued behind it), so they wait behind at most the two chunks
      // then with the writer, and from there on chunks go one at a time again, each a pace of
      // what was appended. A chunk of streams waits for the one before to commit.
      let next = false;
      this.enqueue(
        () => {
          if (over() || this.closed) return NO_CHUNK;
          const appended = this.appendedSinceChunk;
          this.appendedSinceChunk = 0;
          const chunk = this.log.mergeChunk(cycle, this.chunkLimit(appended));
          if (this.writer && appended === 0 && chunk.entries.length > 0) {
            next = true;
            step();
          }
          return chunk;
        },
        (result) => {
          if (result !== NO_CHUNK) this.log.merged(cycle, result);
        },
        { internal: true, logOnly: true, first: true },
      ).then(
        (result) => {
          if (over()) return;
          if (!result.done && !this.closed) {
            if (!next) step();
            return;
          }
          this.mergeCycle = undefined;
          end.resolve();
        },
        (error: unknown) => {
          // A failed chunk committed nothing; the entries stay in the tail for the next cycle.
          if (over()) return;
          this.mergeCycle = undefined;
          end.reject(error);
        },
      );
    };
    step();
    return ended;
  }

  /**
   * Merges the whole history tail into the index now, below the threshold too, and resolves once
   * every entry committed before the call is in the index (Changes appended meanwhile may be left
   * in the tail); rejects when a merge chunk could not be written. Ingest goes on meanwhile, as
   * with any merge. The Log benchmark uses it so that each ingest phase pays for indexing its own
   * Changes, no more and no less.
   */
  async mergeTail(): Promise<void> {
    // A cycle merges what had committed when it began: the one running may have begun before.
    await this.mergeCycle?.catch(() => {});
    if (this.closed || this.log.tailSize === 0) return;
    await (this.mergeCycle ?? this.mergeHistory());
  }

  /** How many history entries the next merge chunk takes, `appended` Changes after the last. */
  private chunkLimit(appended: number): number {
    const chunk = this.historyMergeChunk;
    if (this.historyMergePace === 0) return chunk;
    if (appended === 0) return IDLE_CHUNKS * chunk;
    const paced = Math.max(Math.min(chunk, MIN_PACED_CHUNK), this.historyMergePace * appended);
    if (this.log.tailSize >= 2 * this.historyMergeThreshold)
      return Math.max(chunk, Math.min(paced, MAX_PACED_CHUNK));
    return Math.min(paced, chunk);
  }

  describe(command: DescribeCommand): Promise<DescribeResult> {
    return this.enqueue(() => this.describeOne(command));
  }

  describeAll(commands: readonly DescribeCommand[]): Promise<DescribeResult[]> {
    // One command, so one savepoint: a refused description rolls back those before it too.
    return this.enqueue(() => commands.map((command) => this.describeOne(command)));
  }

  /** Runs inside a queued command (its savepoint), which a throw rolls back. */
  private describeOne(command: DescribeCommand): DescribeResult {
    const { td } = command;
    const existing = this.stmt.getVersion.get(td.id);
    checkDescribeExpectation(command, existing);
    const previous = existing ? (JSON.parse(existing.td) as unknown) : undefined;
    const change = this.log.append({
      thing: td.id,
      kind: "described",
      value: td,
      ...(previous !== undefined && { previous }),
      cause: command.cause,
      hlc: command.hlc,
    });
    const record = describedRecord(command, existing, change);
    const time = record.modified;
    this.stmt.upsertThing.run({
      id: td.id,
      created: record.created,
      modified: time,
      expires: command.expires ?? null,
      ttl: command.ttl ?? null,
      version: change.seq,
    });
    // Inside this command's savepoint: a failure rolls back the described Change with them.
    const related = (command.related ?? []).map((draft) => this.log.append(draft));
    return { created: existing === undefined, record, change, related };
  }

  remove(command: RemoveCommand): Promise<RemoveResult> {
    return this.enqueue(() => {
      const existing = this.stmt.getVersion.get(command.id);
      if (!existing) throw new NotFoundError(`No Thing with id ${command.id}`);
      if (command.expect !== undefined && existing.version !== command.expect) {
        throw new ConflictError(`The Thing ${command.id} was changed concurrently; retry`);
      }
      this.stmt.deleteThing.run(command.id);
      const change = this.log.append({
        thing: command.id,
        kind: "removed",
        previous: JSON.parse(existing.td) as unknown,
        cause: command.cause,
        hlc: command.hlc,
      });
      const related = (command.related ?? []).map((draft) => this.log.append(draft));
      return { change, related };
    });
  }

  putRelease(command: PutReleaseCommand): Promise<PutReleaseResult> {
    return this.enqueue(() => {
      const { release } = command;
      const existing = this.stmt.getRelease.get(release.id);
      if (existing) return { created: false, record: this.releaseRecord(existing) };
      const change = this.log.append({
        thing: command.thing,
        kind: "released",
        value: release,
        cause: command.cause,
        hlc: command.hlc,
      });
      const storedAt = changeTime(change);
      this.stmt.insertRelease.run(release.id, release.name, change.seq, storedAt);
      return { created: true, record: { release, seq: change.seq, storedAt }, change };
    });
  }

  private releaseRecord(row: ReleaseRow): ReleaseRecord {
    const change = this.log.get(row.seq);
    if (!change) throw new Error(`the released Change ${row.seq} is missing from the Log`);
    return { release: change.value as Release, seq: row.seq, storedAt: row.stored_at };
  }

  getRelease(id: string): Promise<ReleaseRecord | undefined> {
    return this.read(() => {
      const row = this.stmt.getRelease.get(id);
      return row ? this.releaseRecord(row) : undefined;
    });
  }

  listReleases(options: ListReleasesOptions): Promise<ReleaseRecord[]> {
    return this.read(() =>
      this.stmt.listReleases
        .all({
          before: options.before ?? Number.MAX_SAFE_INTEGER,
          limit: options.limit,
          name: options.name ?? null,
        })
        .map((row) => this.releaseRecord(row)),
    );
  }

  /** Runs a query; its failure (a closed database, …) rejects the promise instead of throwing. */
  private read<T>(query: () => T): Promise<T> {
    return new Promise<T>((resolve) => {
      if (!this.db.open) throw new UnavailableError("The store is closed");
      resolve(query());
    });
  }

  getThing(id: string): Promise<ThingRecord | undefined> {
    return this.read(() => {
      const row = this.stmt.getThing.get(id);
      return row ? this.toRecord(row) : undefined;
    });
  }

  listThings(options: ListOptions): Promise<ThingRecord[]> {
    return this.read(() =>
      this.stmt.listThings
        .all({
          live: options.liveAt ?? null,
          after: options.after ?? null,
          limit: options.limit,
          offset: options.offset,
        })
        .map((row) => this.toRecord(row)),
    );
  }

  countThings(liveAt?: string): Promise<number> {
    return this.read(() => this.stmt.countThings.get({ live: liveAt ?? null })?.n ?? 0);
  }

  thingsVersion(): Promise<number> {
    return this.read(() => this.stmt.thingsVersion.get()?.v ?? 0);
  }

  async *scanThings(batchSize = 500): AsyncIterable<ThingRecord> {
    let after = "";
    for (;;) {
      const rows = this.stmt.scanThings.all(after, batchSize);
      for (const row of rows) yield this.toRecord(row);
      const last = rows.at(-1);
      if (!last || rows.length < batchSize) return;
      after = last.id;
      // Let other work (ingest, requests) run between pages of a long scan.
      await new Promise<void>((resolve) => setImmediate(resolve));
    }
  }

  expiredThings(time: string, limit: number): Promise<string[]> {
    return this.read(() => this.stmt.expired.all(time, limit).map((r) => r.id));
  }

  append(drafts: readonly ChangeDraft[]): Promise<Change[]> {
    // No closure per call: runPending appends the drafts.
    return this.enqueuePending(undefined, undefined, false, true, false, drafts) as Promise<Change[]>;
  }

  changesAfter(after: number, limit: number, filter?: ChangeFilter): Promise<Change[]> {
    return this.read(() => this.log.after(after, limit, filter));
  }

  feed(query: FeedQuery): Promise<Change[]> {
    return this.read(() => this.log.feed(query));
  }

  changedThings(query: ChangedThingsQuery): Promise<ChangedThing[]> {
    return this.read(() => this.log.changedThings(query));
  }

  getChange(seq: number): Promise<Change | undefined> {
    return this.read(() => this.log.get(seq));
  }

  history(query: HistoryQuery): Promise<Change[]> {
    return this.read(() => this.log.history(query));
  }

  /** The committed state projection, kept in memory by the Log (Store.stateView). */
  get stateView(): StateView {
    return this.log.stateView;
  }

  streamsAt(thing: string, atSeq?: number, kinds?: readonly string[]): Promise<HistoryStream[]> {
    return this.read(() => this.log.streamsAt(thing, atSeq, kinds));
  }

  countStream(thing: string, affordance: string, kind: string, after: number, upTo: number): Promise<number> {
    return this.read(() => this.log.countStream(thing, affordance, kind, after, upTo));
  }

  countStreams(
    thing: string,
    streams: readonly StreamName[],
    after: number,
    upTo: number,
  ): Promise<number[]> {
    return this.read(() =>
      streams.map((s) => this.log.countStream(thing, s.affordance, s.kind, after, upTo)),
    );
  }

  streamsAtEach(
    things: readonly string[],
    atSeq: number,
    kinds?: readonly string[],
  ): Promise<HistoryStream[][]> {
    return this.read(() => things.map((thing) => this.log.streamsAt(thing, atSeq, kinds)));
  }

  countStreamsEach(streams: readonly ThingStreamName[], after: number, upTo: number): Promise<number[]> {
    return this.read(() =>
      streams.map((s) => this.log.countStream(s.thing, s.affordance, s.kind, after, upTo)),
    );
  }

  seqBefore(hlc: string): Promise<number> {
    return this.read(() => this.log.seqBefore(hlc));
  }

  writeFailure(): { since: string; reason: string } | undefined {
    return this.failing;
  }

  lastSeq(): Promise<number> {
    return this.read(() => this.log.lastSeq);
  }

  logHead(): Promise<LogHead> {
    return this.read(() => this.log.head());
  }

  subtreeHashes(
    ranges: ReadonlyArray<readonly [number, number]>,
    options: { fromLeaves?: boolean } = {},
  ): Promise<Uint8Array[]> {
    return this.read(() => this.log.subtreeHashes(ranges, options.fromLeaves === true));
  }

  addCheckpoint(checkpoint: Checkpoint): Promise<void> {
    return this.enqueue(() => this.log.addCheckpoint(checkpoint), undefined, {
      internal: true,
      logOnly: true,
    });
  }

  checkpoints(options: { after?: number; limit?: number } = {}): Promise<Checkpoint[]> {
    return this.read(() => this.log.checkpoints(options.after ?? 0, options.limit ?? 1000));
  }

  latestCheckpoint(): Promise<Checkpoint | undefined> {
    return this.read(() => this.log.latestCheckpoint());
  }
  /** A database file is one hub's: there are no replicas to agree with. */
  async replicaIdentity(claim?: ReplicaIdentity): Promise<ReplicaIdentity | undefined> {
    return claim;
  }

  createRollout(rollout: Rollout, steps: readonly RolloutStep[]): Promise<void> {
    return this.enqueue(() => this.rollouts.create(rollout, steps));
  }

  updateRolloutStep(rollout: string, thing: string, update: RolloutStepUpdate): Promise<boolean> {
    return this.enqueue(() => this.rollouts.updateStep(rollout, thing, update));
  }

  endRollout(id: string, status: "completed" | "failed", ended: string, reason?: string): Promise<boolean> {
    return this.enqueue(() => this.rollouts.end(id, status, ended, reason));
  }

  getRollout(id: string): Promise<Rollout | undefined> {
    return this.read(() => this.rollouts.get(id));
  }

  listRollouts(options: ListRolloutsOptions): Promise<Rollout[]> {
    return this.read(() => this.rollouts.list(options));
  }

  rolloutSteps(rollout: string, query: RolloutStepQuery): Promise<RolloutStep[]> {
    return this.read(() => this.rollouts.steps(rollout, query));
  }

  rolloutStepsOfThing(thing: string): Promise<RolloutStep[]> {
    return this.read(() => this.rollouts.stepsOfThing(thing));
  }

  rolloutProgress(rollout: string): Promise<RolloutProgress> {
    return this.read(() => this.rollouts.progress(rollout));
  }

  /**
   * Since when, and why, the WAL the store writes into is no longer the file at `<path>-wal`
   * (deleted or replaced behind its back); undefined while it is. `GET /health` says it.
   */
  storageProblem(): WalProblem | undefined {
    return this.walDetached;
  }

  /**
   * Keeps acknowledged commits durable when the WAL file was deleted (someone cleaning up
   * "temporary files") or replaced while the store runs: the connections go on writing into the
   * file they opened, which no name leads to any more, and whatever they committed there and did
   * not checkpoint into the database was gone at the next start if the process ended without a
   * checkpoint (a crash, a kill). So after every commit, before it is acknowledged, and every
   * `walCheckMs`: when `<path>-wal` is no longer the file opened, everything committed is
   * checkpointed into the database (synchronous=FULL syncs it), then and after each later commit,
   * until the hub restarts with a WAL of its own again.
   */
  private guardWal(): void {
    const wal = this.wal;
    if (wal === undefined) return;
    if (this.walDetached === undefined) {
      const now = statSync(wal.path, { bigint: true, throwIfNoEntry: false });
      if (now !== undefined && now.dev === wal.dev && now.ino === wal.ino) return;
      this.walDetached = {
        since: new Date().toISOString(),
        reason:
          `${wal.path} was ${now === undefined ? "deleted" : "replaced by another file"} while the hub ran: ` +
          `every commit is now checkpointed into ${this.path} before it is acknowledged, so that nothing is lost; ` +
          `restart the hub to write through a WAL again (and never delete its -wal or -shm)`,
      };
      this.onWalProblem?.(this.walDetached);
    }
    // FULL: every frame committed, whichever connection wrote it, once readers are on the latest.
    const result = (this.db.pragma("wal_checkpoint(FULL)") as WalCheckpoint[])[0];
    if (result !== undefined && (result.busy !== 0 || result.checkpointed < result.log)) {
      this.onWalProblem?.({
        since: new Date().toISOString(),
        reason: `a checkpoint of ${this.path} did not complete (${result.checkpointed} of ${result.log} WAL frames): what is left would be lost if the hub crashed before the next one`,
      });
    }
  }

  close(): Promise<void> {
    // Every caller, not only the first, waits until the queue has committed and the file is shut.
    this.closing ??= (async () => {
      this.closed = true;
      clearInterval(this.walTimer);
      if (this.queue.length > 0 || this.flushScheduled || this.inFlight.length > 0) {
        await new Promise<void>((resolve) => (this.drained = resolve));
      }
      await this.writer?.close();
      this.db.close();
      this.lock?.close();
    })();
    return this.closing;
  }

  logEntries(after: number, limit: number): Promise<LogEntries> {
    return this.read(() => this.log.entries(after, limit));
  }
}
