// The Log inside the embedded store: appending Changes with their leaf hashes, the incremental
// Merkle tree (frontier in memory, subtrees of ≥ 16 leaves on disk), the state projection, the
// history index (an in-memory tail merged into the table in sorted batches) and the queries over
// them. Every method that writes runs inside the store's batch transaction; in-memory state moves
// with it through mark/rollback/committed, so it never gets ahead of the database (PITFALLS.md).
import type Database from "better-sqlite3";
import {
  DamagedLogError,
  HASH_LENGTH,
  MerkleFrontier,
  canonicalCauseJson,
  changeLeafInput,
  hashToHex,
  isPowerOfTwo,
  largestPowerOfTwoBelow,
  nodeHash,
  rootHash,
  sha256Digest,
  type Change,
  type Checkpoint,
} from "../../core/index.js";
import type {
  ChangeDraft,
  ChangeFilter,
  ChangedThing,
  ChangedThingsQuery,
  FeedQuery,
  HistoryQuery,
  HistoryStream,
  LogEntries,
  LogHead,
  StateView,
} from "../store.js";
import {
  asRecorded,
  canonicalOf,
  recordedCause,
  toChange,
  type ChangeRow,
  type Recorded,
} from "../recorded-json.js";
import {
  HistoryTail,
  StreamOrder,
  splitStreamKey,
  streamKey,
  type ChunkEnd,
  type MergeCycle,
  type TailEntry,
} from "./history-tail.js";
import { STORED_LEVEL, merkleNodeId, type WriteSet, type WrittenSet } from "./sqlite-writer.js";

/**
 * The rows of a batch being built for the writer thread (sqlite-writer.ts), instead of being
 * written through this connection, and the streams it changed.
 */
interface Capture {
  changes: Array<string | number | null>;
  leaves: Uint8Array[];
  /**
   * Set when the writer thread hashes this batch: it builds each Change's leaf input from the
   * row (`leaves`, `nodes` and `head` stay empty; the Merkle tree here moves on at COMMIT).
   */
  writerHashes: boolean;
  /** For the writer thread: the canonical texts that are not the recorded ones (WriteSet.canonical). */
  canonical: Array<number | string>;
  /** The Changes, in order: their `leaf` is written once for the batch (endCapture). */
  records: Change[];
  nodes: number[];
  nodeHashes: Uint8Array[];
  streamIds: Array<string | number>;
  history: number[];
  streams: Array<string | number | null>;
  head?: [number, string];
  merged?: number;
  /** Signed checkpoints: size, origin, root, time, signature each. */
  checkpoints: Array<string | number>;
}

/**
 * A batch handed to the writer thread, kept until it has committed. Several may be in flight,
 * each built on the one before; they commit in order (sqlite-store.ts).
 */
export interface LogBatch {
  readonly set: WriteSet;
  /** The writer thread hashes it: until it has committed, no batch is hashed here. */
  readonly writerHashes: boolean;
  /**
   * The Log as readers see it once the batch has committed; undefined when the writer thread
   * hashes it (the view then comes from its answer).
   */
  readonly view: CommittedView | undefined;
  /** Its Changes, whose `leaf` the writer thread's answer gives when it hashes them. */
  readonly records: readonly Change[];
  /** The stream states it made, one per Change: their entries go to the tail once committed. */
  readonly pending: PendingState[];
  /** The undo entries up to its end, counted from the first ever (see `undoBase`). */
  readonly undoEnd: number;
}

/** What readers see: the Log as committed (a batch in flight to the writer is not). */
interface CommittedView {
  size: number;
  frontier: MerkleFrontier;
  block: Uint8Array[];
}

export interface MergeChunk {
  entries: TailEntry[];
  /** Where its entries end in the cycle (the next chunk, built while this one is written, starts after). */
  end?: ChunkEnd;
  /** How far into the cycle's stream order this chunk looked for streams to write. */
  streamsTo?: number;
  /** The streams it wrote (or found gone), whose rows are no longer behind once it commits. */
  streams?: ChunkStream[];
  done: boolean;
  /** Its entries have left the tail (and counted in the ranks): a reader saw them committed. */
  applied?: boolean;
  /** Streams whose number it writes to `stream_ids` for the first time. */
  numbered?: Set<StreamId>;
}

/**
 * A stream's number, the key of its rows in `history_entries` and `stream_state`: given when the
 * stream first appears, so numbers follow the order streams appear in; `persisted` once the
 * `stream_ids` row that names it has committed.
 */
interface StreamId {
  id: number;
  persisted: boolean;
}

/** One merge cycle: the history tail up to a position, then the streams changed up to it. */
export interface LogMergeCycle {
  history: MergeCycle;
  /** How far the streams part of the cycle has walked `history.keys`. */
  position: number;
}

/** A stream a merge chunk looked at: its key, and where it is in the projection (if anywhere). */
/**
 * A stream whose row in `stream_state` may be behind (SqliteLog's `dirty`), with where its state
 * is: the Thing's map in the projection (never replaced) and the stream's key in it. A merge
 * cycle reads the state through it, without splitting the key and looking the Thing up again.
 */
interface ChunkStream {
  key: string;
  sub: string;
  subs: Map<string, StreamState>;
}

/** A merge chunk writing streams looks at up to this many stream keys per stream it may write. */
const STREAM_KEYS_PER_CHUNK = 8;

/** A stream's rank marks (countStream) keep the seq of every RANK_STEP-th entry of its index. */
const RANK_STEP = 1024;

/**
 * Where a stream's entries in the `history` table are, by rank: `marks[i]` is the seq of its
 * entry number (i + 1) × RANK_STEP, and `count` how many it has. The table only grows at each
 * stream's high end (a merge writes seqs newer than any there), so the marks only get appended.
 */
interface StreamRanks {
  marks: number[];
  count: number;
}

// Subtrees of 2^STORED_LEVEL leaves and larger are kept in `merkle_nodes` (sqlite-writer.ts, which
// writes them too): a proof then hashes at most one block of 16 leaves (a Log written before this
// kept only 256 and larger; the missing smaller subtrees of its old part are computed from its
// leaves when asked for).
const BLOCK = 2 ** STORED_LEVEL;

// Stored subtrees of 2^CACHED_LEVEL leaves and more are kept in memory once read: every proof
// needs the upper levels of the tree, and a subtree once complete never changes. A Log of 1M
// Changes has ~2,000 such nodes; the cache starts again when it holds MAX_CACHED_NODES.
const CACHED_LEVEL = 10;
const MAX_CACHED_NODES = 65_536;

export interface LogMark {
  size: number;
  /** The block being filled at the mark, and how many leaves it had (it only grows until full). */
  block: Uint8Array[];
  blockLeaves: number;
  frontier: MerkleFrontier;
  /**
   * For a command's mark (`markCommand`) in a batch for the writer thread: the frontier's size,
   * which a rollback takes it back to in place (`frontierMerged`); -1 for a mark that holds
   * `frontier` itself.
   */
  frontierSize: number;
  pending: number;
  undo: number;
  /** What the batch being built for the writer thread held (none when no batch was being built). */
  capture:
    | {
        changes: number;
        leaves: number;
        canonical: number;
        records: number;
        nodes: number;
        streamIds: number;
        history: number;
        streams: number;
        checkpoints: number;
        head: Capture["head"];
        merged: number | undefined;
      }
    | undefined;
}

interface StreamState {
  seq: number;
  /** The value's JSON text; null for Thing-level streams, whose values live in the Log. */
  value: string | null;
  /**
   * The stream's key (streamKey), handed from state to state so that the next append neither
   * builds it again nor hashes it again in the maps and sets it is used in.
   */
  key?: string;
  /**
   * The value itself when it is a JSON primitive (number, string, boolean, null), so that the next
   * Change's `previous` needs no JSON.parse; undefined for objects (each Change gets its own copy).
   */
  parsed?: unknown;
  /**
   * The stream's state before this one, while this one is not committed: a reader goes back
   * along it to the committed state (undefined at its end: the stream is new). Dropped at COMMIT,
   * so that no chain outlives the batches in flight.
   */
  prev?: StreamState;
}

/** A state an append made, not committed yet (its key and seq are its tail entry). */
type PendingState = StreamState & { key: string };

/**
 * `seqBefore` keeps the hlc of the seqs it looks at with a step of this many or more: at most one
 * per 256 Changes of the Log, and the steps below end within 256 neighbouring rows (a page or two).
 */
const KEPT_HLC_STEP = 256;
/** Beyond this many kept hlcs (a Log of 16M Changes), they are read again from the start. */
const MAX_KEPT_HLCS = 65_536;

/** Distinct affordance names whose sub keys are kept (beyond that, the table starts again). */
const MAX_SUB_KEYS = 10_000;

function subKey(affordance: string, kind: string): string {
  return `${affordance}\u0000${kind}`;
}

function splitSubKey(sub: string): [affordance: string, kind: string] {
  const i = sub.indexOf("\u0000");
  return [sub.slice(0, i), sub.slice(i + 1)];
}

/**
 * Each Change's leaf in hex from the batch's one buffer: half the cost of a conversion per leaf
 * array. Not slices of one hex string for the batch (cheaper still): a slice keeps its whole
 * batch's string alive for as long as anyone holds the Change.
 */
function setLeaves(records: readonly Change[], leaves: Uint8Array): void {
  const buffer = Buffer.from(leaves.buffer, leaves.byteOffset, leaves.byteLength);
  for (let i = 0; i < records.length; i++) {
    (records[i] as Change).leaf = buffer.toString("hex", HASH_LENGTH * i, HASH_LENGTH * (i + 1));
  }
}

/**
 * The leaves, then the subtree hashes, one after the other in one array of their own, as two
 * views of it. Not `Buffer.concat`: below 4 KiB it returns a slice of Node's shared 8 KiB pool,
 * and `postMessage` copies a view's whole ArrayBuffer, so a set of ~32 one-Change calls sent the
 * writer thread 8–16 KiB (which it allocated again) for its ~1 KiB of hashes. Posting both, a
 * script's best of 11: 4.0 µs a set against 7.0–7.9 µs.
 */
function concatHashes(
  leaves: readonly Uint8Array[],
  nodes: readonly Uint8Array[],
): { leaves: Uint8Array; nodes: Uint8Array } {
  const bytes = new Uint8Array(HASH_LENGTH * (leaves.length + nodes.length));
  for (let i = 0; i < leaves.length; i++) bytes.set(leaves[i] as Uint8Array, HASH_LENGTH * i);
  const end = HASH_LENGTH * leaves.length;
  for (let i = 0; i < nodes.length; i++) bytes.set(nodes[i] as Uint8Array, end + HASH_LENGTH * i);
  return { leaves: bytes.subarray(0, end), nodes: bytes.subarray(end) };
}

/** An object or an array: a value a Change gets a copy of, never shared with another. */
function isObject(value: unknown): boolean {
  return typeof value === "object" && value !== null;
}

/** No drafts warmed (SqliteLog.warm). */
const NONE_WARMED: readonly ChangeDraft[] = Object.freeze([]);

/** Changes of one Thing read at a time for a feed page filtered by more than the Thing. */
const FEED_PAGE = 500;

export class SqliteLog {
  private size: number;
  private frontier: MerkleFrontier;
  /**
   * A mark holds `frontier` itself: the next leaf appended here goes to a copy (copy on write).
   * A batch the writer thread hashes appends none here, so its commands' marks copy nothing.
   */
  private frontierMarked = false;
  /**
   * While a batch for the writer thread is built with its leaves hashed here: the subtree roots
   * each leaf was merged with (MerkleFrontier.append), so that a command's mark needs no copy of
   * the frontier. Copied before each command of a one-Change producer's set, it was a frontier
   * (two arrays of ~20) per Change.
   */
  private frontierMerged: Uint8Array[] | undefined;
  /** Every stream's number, by stream key (see StreamId). */
  private readonly streamIds = new Map<string, StreamId>();
  private nextStreamId = 1;
  /** The tail walks its streams in the index's order: by number. */
  private readonly tail = new HistoryTail(new StreamOrder((key) => this.idOf(key).id));
  /**
   * The leaf hashes of the block being filled (from the last multiple of BLOCK up to size): when
   * it completes, its subtree is hashed from memory instead of reading them back.
   */
  private blockLeaves: Uint8Array[] = [];
  /** Stream entries of the running batch, added to the tail after COMMIT. */
  private pending: PendingState[] = [];
  /**
   * The state projection: the latest Change (seq, value text) of every stream, by Thing. Kept in
   * memory so that an append writes no random page (the log benchmark measured 75k rows/s for
   * the append alone, 28k with a per-Change upsert of this projection, 12k with its lookup);
   * written to `stream_state` in stream order by the merge cycle, and rebuilt at start from it
   * and the Log after `history_merged`.
   */
  private readonly projection = new Map<string, Map<string, StreamState>>();
  /**
   * The Things with a stream of each sub key (subKey(affordance, kind)), each with its map in the
   * projection: the state view visits a property's Things without walking all of them or looking
   * each up. It changes only when a stream is new (or its first append rolls back), not at every
   * append. `sub` is the key as the Things' maps hold it (subOf's): found by identity there.
   */
  private readonly thingsBySub = new Map<
    string,
    { sub: string; things: Map<string, Map<string, StreamState>> }
  >();
  /** Object values read through the state view, parsed once per state (states are never changed). */
  private readonly parsedObjects = new WeakMap<StreamState, unknown>();
  /**
   * The streams whose row in `stream_state` may be older than their state here (appended to since the
   * merge cycle that last wrote them), by key: the next cycle writes them, in the tail's stream order.
   */
  private readonly dirty = new Map<string, ChunkStream>();
  /**
   * Every stream whose latest Change has a greater seq is in `dirty`: a key leaves it only when a
   * merge cycle wrote the stream at a state at or before its `upTo`, and this is the greatest
   * `upTo` of any cycle begun (or `history_merged` at start, after which the replay marked every
   * stream). So an append to such a stream needs no lookup in the set.
   */
  private dirtyAbove = 0;
  private readonly subKeys = new Map<string, Map<string, string>>();
  /** The drafts `warm` looked up, the Things' maps it found for them, and the next to append. */
  private warmedDrafts: readonly ChangeDraft[] = NONE_WARMED;
  private warmedMaps: Array<Map<string, StreamState> | undefined> = [];
  private warmedNext = 0;
  /** The hlc of the seqs `seqBefore` looks at in its upper steps (see KEPT_HLC_STEP). */
  private readonly keptHlcs = new Map<number, string>();
  /**
   * How to undo the projection updates of the batches not committed yet, newest last
   * (mark/rollback): the states they made, each with its key and the state it replaced (`prev`),
   * so that an append allocates nothing more for it. Entry i is the (undoBase + i)-th ever, so that
   * marks stay valid while the front of the array is dropped as batches commit.
   */
  private undo: PendingState[] = [];
  private undoBase = 0;
  private readonly stmt;
  /** Rank marks of the streams whose Changes have been counted, built on the first count. */
  private readonly ranks = new Map<string, StreamRanks>();
  private readonly filterStatements = new Map<string, Database.Statement<unknown[], ChangeRow>>();
  private readonly changedThingsStatements = new Map<string, Database.Statement<unknown[], ChangedThing>>();
  /** Set while a batch for the writer thread is built: its rows go here, not to the database. */
  private capture: Capture | undefined;
  /** The Log as committed, for readers. */
  private view: CommittedView;
  /**
   * Merge chunks with entries handed to the writer thread and not yet `merged`, oldest first. The
   * writer's COMMIT is visible to this connection before its answer arrives: a reader that
   * counts the table and the tail must first take out of the tail what the table already holds.
   */
  private unmerged: MergeChunk[] = [];
  /** Stored subtrees of CACHED_LEVEL and up, read before (by level × 2^32 + idx). */
  private readonly cachedNodes = new Map<number, Uint8Array>();
  /** Runs a function in one transaction (a savepoint inside one): one snapshot of the database. */
  private readonly transaction: <T>(read: () => T) => T;

  constructor(
    private readonly db: Database.Database,
    private readonly rankStep: number = RANK_STEP,
  ) {
    this.stmt = {
      head: db.prepare<[], { size: number; frontier: string; history_merged: number }>(
        "SELECT size, frontier, history_merged FROM log_head WHERE id = 1",
      ),
      saveHead: db.prepare<[number, string]>("UPDATE log_head SET size = ?, frontier = ? WHERE id = 1"),
      saveMerged: db.prepare<[number]>("UPDATE log_head SET history_merged = ? WHERE id = 1"),
      insert: db.prepare(
        `INSERT INTO changes (seq, hlc, at, thing, affordance, kind, value, previous, cause, leaf)
         VALUES (@seq, @hlc, @at, @thing, @affordance, @kind, @value, @previous, @cause, @leaf)`,
      ),
      get: db.prepare<[number], ChangeRow>("SELECT * FROM changes WHERE seq = ?"),
      after: db.prepare<[number, number], ChangeRow>(
        "SELECT * FROM changes WHERE seq > ? ORDER BY seq LIMIT ?",
      ),
      hlcOf: db.prepare<[number], { hlc: string }>("SELECT hlc FROM changes WHERE seq = ?"),
      leaves: db.prepare<[number, number], { leaf: Buffer }>(
        "SELECT leaf FROM changes WHERE seq BETWEEN ? AND ? ORDER BY seq",
      ),
      // A block's leaves as one value, in seq order: SQLite hands over one row instead of 16,
      // and JavaScript gets one string instead of a Buffer per leaf (~2 µs each; an inclusion
      // proof reads one block).
      leafBlock: db
        .prepare<[number, number], string | null>(
          "SELECT group_concat(hex(leaf), '' ORDER BY seq) FROM changes WHERE seq BETWEEN ? AND ?",
        )
        .pluck(),
      node: db.prepare<[number], { hash: Buffer }>("SELECT hash FROM merkle_nodes WHERE id = ?"),
      insertNode: db.prepare<[number, number, number, Buffer]>(
        "INSERT INTO merkle_nodes (id, level, idx, hash) VALUES (?, ?, ?, ?)",
      ),
      allStreams: db.prepare<
        [],
        { thing: string; affordance: string; kind: string; seq: number; value: string | null }
      >("SELECT thing, affordance, kind, seq, value FROM streams"),
      upsertStream: db.prepare<[number, number, string | null]>(
        `INSERT INTO stream_state (stream, seq, value) VALUES (?, ?, ?)
         ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq, value = excluded.value`,
      ),
      allStreamIds: db.prepare<[], { id: number; thing: string; affordance: string; kind: string }>(
        "SELECT id, thing, affordance, kind FROM stream_ids",
      ),
      insertStreamId: db.prepare<[number, string, string, string]>(
        "INSERT OR IGNORE INTO stream_ids (id, thing, affordance, kind) VALUES (?, ?, ?, ?)",
      ),

      historyAsc: db.prepare<[number, number, number, number], { seq: number }>(
        "SELECT seq FROM history_entries WHERE stream = ? AND seq > ? AND seq < ? ORDER BY seq ASC LIMIT ?",
      ),
      historyDesc: db.prepare<[number, number, number, number], { seq: number }>(
        "SELECT seq FROM history_entries WHERE stream = ? AND seq > ? AND seq < ? ORDER BY seq DESC LIMIT ?",
      ),
      historyLatest: db.prepare<[number, number], { seq: number | null }>(
        "SELECT max(seq) AS seq FROM history_entries WHERE stream = ? AND seq <= ?",
      ),
      historyHas: db.prepare<[number, number], { one: number }>(
        "SELECT 1 AS one FROM history_entries WHERE stream = ? AND seq = ?",
      ),
      historyCount: db.prepare<[number, number, number], { n: number }>(
        "SELECT count(*) AS n FROM history_entries WHERE stream = ? AND seq > ? AND seq <= ?",
      ),
      // The seq `offset + 1` entries after `after` in one stream: SQLite steps the index in C.
      historyNth: db.prepare<[number, number, number], { seq: number }>(
        "SELECT seq FROM history_entries WHERE stream = ? AND seq > ? ORDER BY seq LIMIT 1 OFFSET ?",
      ),
      insertHistory: db.prepare<[number, number]>(
        "INSERT OR IGNORE INTO history_entries (stream, seq) VALUES (?, ?)",
      ),
      tailRows: db.prepare<
        [number],
        { seq: number; thing: string; affordance: string | null; kind: string; value: string | null }
      >("SELECT seq, thing, affordance, kind, value FROM changes WHERE seq > ? ORDER BY seq"),
      insertCheckpoint: db.prepare(
        "INSERT OR IGNORE INTO checkpoints (size, origin, root, time, signature) VALUES (@size, @origin, @root, @time, @signature)",
      ),
      checkpoints: db.prepare<[number, number], Checkpoint>(
        "SELECT origin, size, root, time, signature FROM checkpoints WHERE size > ? ORDER BY size LIMIT ?",
      ),
      lastCheckpoints: db.prepare<[], Checkpoint>(
        "SELECT origin, size, root, time, signature FROM checkpoints ORDER BY size DESC LIMIT 2",
      ),
    };
    this.transaction = db.transaction((read: () => unknown) => read()) as <T>(read: () => T) => T;
    const head = this.stmt.head.get();
    if (!head) throw new Error("the log_head row is missing: the database is damaged");
    this.size = head.size;
    this.frontier = MerkleFrontier.fromJSON(JSON.parse(head.frontier));
    // The head, the last row and the Merkle tree are written in one transaction each time: if
    // they disagree, the file was altered or damaged, and appending would sign a tree that is
    // not the Log's (a head raised by 5 had the hub sign a checkpoint of 5 Changes that do not
    // exist) or fail every write (a row past the head).
    const last = (db.prepare("SELECT max(seq) FROM changes").pluck().get() as number | null) ?? 0;
    if (last !== head.size || this.frontier.size !== head.size) {
      throw new Error(
        `${db.name} is damaged: its Log's head says ${head.size} Changes, the changes table ends at seq ${last} ` +
          `and the Merkle tree covers ${this.frontier.size}. The hub does not write to it: restore it from a ` +
          "backup (docs/operations.md), and run `things verify --db` on a copy of it to see what was altered.",
      );
    }
    const blockStart = this.size - (this.size % BLOCK);
    if (blockStart < this.size) {
      this.blockLeaves = this.stmt.leaves.all(blockStart + 1, this.size).map((r) => r.leaf);
    }
    for (const row of this.stmt.allStreamIds.iterate()) {
      this.streamIds.set(streamKey(row.thing, row.affordance, row.kind), { id: row.id, persisted: true });
      if (row.id >= this.nextStreamId) this.nextStreamId = row.id + 1;
    }
    // The tail is memory only: rebuild it from the Log after the last completed merge, leaving
    // out what a merge cycle cut short by a stop had already written.
    for (const row of this.stmt.allStreams.iterate()) {
      this.setStream(row.thing, this.subOf(row.affordance, row.kind), { seq: row.seq, value: row.value });
    }
    this.view = this.currentView();
    this.dirtyAbove = head.history_merged;
    for (const row of this.stmt.tailRows.iterate(head.history_merged)) {
      const affordance = row.affordance ?? "";
      const sub = this.subOf(affordance, row.kind);
      if ((this.projection.get(row.thing)?.get(sub)?.seq ?? 0) < row.seq) {
        this.setStream(row.thing, sub, { seq: row.seq, value: row.affordance === null ? null : row.value });
      }
      const key = streamKey(row.thing, affordance, row.kind);
      // Streams new since the last merge are numbered again, in the order they appear.
      const sid = this.idOf(key);
      // A cycle cut short may have written its history entries, never its streams.
      this.markDirty(key, sub, this.projection.get(row.thing));
      this.tail.order.add(key);
      if (sid.persisted && this.stmt.historyHas.get(sid.id, row.seq) !== undefined) continue;
      this.tail.add(key, row.seq);
    }
  }

  // --- the write path (inside the store's transaction) ---

  private markFrontier(): MerkleFrontier {
    this.frontierMarked = true;
    return this.frontier;
  }

  /**
   * Where the Log is now, to roll back to. `into`: a mark to overwrite instead of a new one (the
   * store marks before every command of a batch, and needs only the latest: no allocation then).
   */
  mark(into?: LogMark): LogMark {
    const mark: LogMark = into ?? {
      size: 0,
      block: this.blockLeaves,
      blockLeaves: 0,
      frontier: this.frontier,
      frontierSize: -1,
      pending: 0,
      undo: 0,
      capture: undefined,
    };
    mark.size = this.size;
    mark.block = this.blockLeaves;
    mark.blockLeaves = this.blockLeaves.length;
    mark.frontier = this.markFrontier();
    mark.frontierSize = -1;
    mark.pending = this.pending.length;
    mark.undo = this.undoBase + this.undo.length;
    const capture = this.capture;
    if (capture === undefined) mark.capture = undefined;
    else {
      const at = (mark.capture ??= {
        changes: 0,
        leaves: 0,
        canonical: 0,
        records: 0,
        nodes: 0,
        streamIds: 0,
        history: 0,
        streams: 0,
        checkpoints: 0,
        head: undefined,
        merged: undefined,
      });
      at.changes = capture.changes.length;
      at.leaves = capture.leaves.length;
      at.canonical = capture.canonical.length;
      at.records = capture.records.length;
      at.nodes = capture.nodes.length;
      at.streamIds = capture.streamIds.length;
      at.history = capture.history.length;
      at.streams = capture.streams.length;
      at.checkpoints = capture.checkpoints.length;
      at.head = capture.head;
      at.merged = capture.merged;
    }
    return mark;
  }

  /**
   * A mark before one command of the batch being built for the writer thread, as `mark` (`into`
   * overwritten), except that it leaves the frontier unmarked: a rollback to it takes the leaves
   * appended since back out of the frontier. Outside such a batch, it is `mark`.
   */
  markCommand(into: LogMark | undefined): LogMark {
    if (this.capture === undefined || (!this.capture.writerHashes && this.frontierMerged === undefined))
      return this.mark(into);
    const frontier = this.frontier;
    const marked = this.frontierMarked;
    const mark = this.mark(into);
    // `mark` marked it; a leaf appended after this mark need not go to a copy.
    this.frontierMarked = marked;
    mark.frontier = frontier;
    mark.frontierSize = frontier.size;
    return mark;
  }

  rollback(mark: LogMark): void {
    this.size = mark.size;
    // A completed block's array is replaced, never emptied: the mark's array is still intact.
    this.blockLeaves = mark.block;
    this.blockLeaves.length = mark.blockLeaves;
    if (mark.frontierSize >= 0) {
      // A command's mark: the leaves since go back out (a batch the writer hashes appends none).
      if (this.frontier.size > mark.frontierSize) {
        if (this.frontierMarked) {
          // Another mark (or the view) holds it since: that one stays as it is.
          this.frontier = this.frontier.clone();
          this.frontierMarked = false;
        }
        const merged = this.frontierMerged;
        if (merged === undefined) throw new Error("the Log's frontier cannot go back to the command's mark");
        while (this.frontier.size > mark.frontierSize) this.frontier.unappend(merged);
      }
    } else {
      this.frontier = mark.frontier;
      // Still the mark's (it may be rolled back to again): the next leaf goes to a copy.
      this.frontierMarked = true;
    }
    this.pending.length = mark.pending;
    const capture = this.capture;
    if (capture && mark.capture) {
      const at = mark.capture;
      capture.changes.length = at.changes;
      capture.leaves.length = at.leaves;
      capture.canonical.length = at.canonical;
      capture.records.length = at.records;
      capture.nodes.length = at.nodes;
      capture.nodeHashes.length = at.nodes / 2;
      capture.streamIds.length = at.streamIds;
      capture.history.length = at.history;
      capture.streams.length = at.streams;
      capture.checkpoints.length = at.checkpoints;
      capture.head = at.head;
      capture.merged = at.merged;
    } else if (!mark.capture) {
      // The whole batch rolled back: what it built is dropped.
      this.capture = undefined;
      this.frontierMerged = undefined;
    }
    while (this.undoBase + this.undo.length > mark.undo) {
      const step = this.undo.pop();
      if (!step) break;
      // The key is `${thing}\u0000${sub}` (append), and a Thing's id holds no NUL.
      const cut = step.key.indexOf("\u0000");
      const thing = step.key.slice(0, cut);
      const sub = step.key.slice(cut + 1);
      if (step.prev) this.setStream(thing, sub, step.prev, undefined, false);
      else {
        this.projection.get(thing)?.delete(sub);
        this.thingsBySub.get(sub)?.things.delete(thing);
      }
    }
  }

  /** `key`'s stream joins `dirty` (if not there yet); `subs` is its Thing's map in the projection. */
  private markDirty(key: string, sub: string, subs: Map<string, StreamState> | undefined): void {
    if (subs === undefined || this.dirty.has(key)) return;
    this.dirty.set(key, { key, sub, subs });
  }

  /**
   * `streams` is the Thing's map in the projection, when the caller has it; `isNew`, when the
   * caller knows whether the stream is new (an append does), spares a look at its size. Returns
   * the Thing's map.
   */
  private setStream(
    thing: string,
    sub: string,
    state: StreamState,
    streams = this.projection.get(thing),
    isNew?: boolean,
  ): Map<string, StreamState> {
    if (!streams) this.projection.set(thing, (streams = new Map<string, StreamState>()));
    const size = isNew === undefined ? streams.size : 0;
    streams.set(sub, state);
    if (isNew ?? streams.size !== size) {
      let bySub = this.thingsBySub.get(sub);
      if (bySub === undefined) this.thingsBySub.set(sub, (bySub = { sub, things: new Map() }));
      bySub.things.set(thing, streams);
    }
    return streams;
  }

  /**
   * The committed state projection, read synchronously (Store.stateView): the latest committed
   * value of each stream, as readers of the Log see it. Thing-level streams hold no value here.
   */
  readonly stateView: StateView = {
    latest: (thing, affordance, kind) => {
      const latest = this.projection.get(thing)?.get(subKey(affordance, kind));
      const state = latest && this.committedState(latest);
      if (state === undefined || state.value === null) return undefined;
      return { seq: state.seq, value: this.parsedValue(state, state.value) };
    },
    forEach: (affordance, kind, visit) => {
      const bySub = this.thingsBySub.get(subKey(affordance, kind));
      if (bySub === undefined) return;
      const sub = bySub.sub;
      for (const [thing, streams] of bySub.things) {
        const latest = streams.get(sub);
        const state = latest && this.committedState(latest);
        if (state !== undefined && state.value !== null)
          visit(thing, this.parsedValue(state, state.value), state.seq);
      }
    },
    count: (affordance, kind) => this.thingsBySub.get(subKey(affordance, kind))?.things.size ?? 0,
  };

  private parsedValue(state: StreamState, text: string): unknown {
    if (state.parsed !== undefined) return state.parsed;
    let value = this.parsedObjects.get(state);
    if (value === undefined) {
      value = JSON.parse(text) as unknown;
      // A primitive read from the database becomes the state's own, as an append's is.
      if (value === null || typeof value !== "object") state.parsed = value;
      else this.parsedObjects.set(state, value);
    }
    return value;
  }

  /**
   * Appends Changes; the caller's transaction makes them durable. Drafts that share one cause
   * object (a producer's batch) have it serialised once: nothing can change it within this call.
   */
  appendAll(drafts: readonly ChangeDraft[]): Change[] {
    const changes = new Array<Change>(drafts.length);
    let source: unknown;
    let cause: Recorded | undefined;
    for (let i = 0; i < drafts.length; i++) {
      const draft = drafts[i] as ChangeDraft;
      if (cause === undefined || draft.cause !== source) {
        source = draft.cause;
        cause = recordedCause(draft.cause);
      }
      changes[i] = this.append(draft, cause);
    }
    return changes;
  }

  /** subKey(affordance, kind), one string per pair: its hash is computed once. */
  private subOf(affordance: string, kind: string): string {
    let byKind = this.subKeys.get(affordance);
    if (byKind === undefined) {
      if (this.subKeys.size >= MAX_SUB_KEYS) this.subKeys.clear();
      this.subKeys.set(affordance, (byKind = new Map<string, string>()));
    }
    let sub = byKind.get(kind);
    if (sub === undefined) byKind.set(kind, (sub = subKey(affordance, kind)));
    return sub;
  }

  /**
   * Looks up the streams the drafts will append to, and reads their latest states, before the
   * appends do. A Change's lookups wait on one another (the Thing's entry, then its map, then the
   * stream's state), and for a random Thing of 10,000 each is a cache miss; the lookups of
   * different Changes do not, so in one short loop the CPU overlaps their misses, and `append`
   * then finds them in its caches. With the tail's `addAll`, which does the same when a batch
   * commits, the event loop's CPU fell 5–9 % with 64 one-Change producers over 10,000 Things
   * (rounds alternating in one process, bench/README.md, session 15). Returns what it read, so
   * that no read is left out as unused.
   *
   * `drafts[from, to)` are looked up; the Things' maps found are kept for `append`, which takes
   * its draft's from here (`warmedAt`) instead of looking it up again: a Thing's map in the
   * projection is never replaced nor removed once made, so one found stays its map.
   */
  warm(drafts: readonly ChangeDraft[], from = 0, to = drafts.length): number {
    const projection = this.projection;
    if (this.warmedDrafts !== drafts) {
      this.warmedDrafts = drafts;
      this.warmedMaps = new Array<Map<string, StreamState> | undefined>(drafts.length);
    }
    const found = this.warmedMaps;
    for (let i = from; i < to; i++) found[i] = projection.get((drafts[i] as ChangeDraft).thing);
    let read = 0;
    for (let i = from; i < to; i++) {
      const draft = drafts[i] as ChangeDraft;
      const state = found[i]?.get(this.subOf(draft.affordance ?? "", draft.kind));
      if (state !== undefined) read += state.seq + (state.key?.length ?? 0);
    }
    return read;
  }

  /** The next draft appended is `warm`'s drafts[index] (if it is that draft: append checks). */
  warmedAt(index: number): void {
    this.warmedNext = index;
  }

  /** The drafts `warm` was given are done with: nothing of them is kept. */
  warmed(): void {
    this.warmedDrafts = NONE_WARMED;
    this.warmedMaps = [];
    this.warmedNext = 0;
  }

  /** The Thing's map in the projection: as `warm` found it when the draft is the one it expects. */
  private warmedStreams(draft: ChangeDraft): Map<string, StreamState> | undefined {
    const at = this.warmedNext;
    if (this.warmedDrafts[at] === draft) {
      this.warmedNext = at + 1;
      const found = this.warmedMaps[at];
      if (found !== undefined) return found;
    }
    return this.projection.get(draft.thing);
  }

  /** Appends one Change; the caller's transaction makes it durable. */
  append(draft: ChangeDraft, recorded?: Recorded): Change {
    const affordance = draft.affordance ?? "";
    const value = draft.value === undefined ? undefined : asRecorded(draft.value);
    let previous = draft.previous === undefined ? undefined : asRecorded(draft.previous);
    const sub = this.subOf(affordance, draft.kind);
    const streams = this.warmedStreams(draft);
    const latest = streams?.get(sub);
    let key = latest?.key;
    if (key === undefined) {
      key = `${draft.thing}\u0000${sub}`; // streamKey(thing, affordance, kind)
      // A stream new to the projection is numbered now: numbers follow the order streams appear.
      this.idOf(key);
    }
    if (previous === undefined && draft.affordance !== undefined && latest?.value != null) {
      const parsed = latest.parsed !== undefined ? latest.parsed : (JSON.parse(latest.value) as unknown);
      previous = {
        text: latest.value,
        value: parsed,
        canonical: parsed === null || typeof parsed !== "object" ? latest.value : undefined,
      };
    }
    const cause = recorded ?? recordedCause(draft.cause);
    const seq = this.size + 1;
    const change: Change = {
      seq,
      hlc: draft.hlc,
      thing: draft.thing,
      kind: draft.kind,
      cause: cause.value as Change["cause"],
    };
    if (draft.at !== undefined) change.at = draft.at;
    if (draft.affordance !== undefined) change.affordance = draft.affordance;
    if (value !== undefined) change.value = value.value;
    if (previous !== undefined) change.previous = previous.value;
    // The leaf hashes canonicalChangeJson(change), built from the texts at hand: here, or by the
    // writer thread from the row (which also moves the Merkle tree on, at COMMIT). The thread
    // is told the canonical texts that are not the recorded ones (an object's members in another
    // order, a cause's), and otherwise takes the recorded texts as they are.
    const capture = this.capture;
    const valueText = value?.text ?? null;
    const causeCanonical = (cause.canonical ??= canonicalCauseJson(cause.value));
    let leaf: Uint8Array | undefined;
    if (capture?.writerHashes) {
      const index = capture.records.length;
      if (value && canonicalOf(value) !== value.text) capture.canonical.push(index, 6, canonicalOf(value));
      if (previous && canonicalOf(previous) !== previous.text)
        capture.canonical.push(index, 7, canonicalOf(previous));
      if (causeCanonical !== cause.text) capture.canonical.push(index, 8, causeCanonical);
    } else {
      leaf = sha256Digest(
        changeLeafInput({
          seq,
          hlc: draft.hlc,
          at: draft.at,
          thing: draft.thing,
          affordance: draft.affordance,
          kind: draft.kind,
          value: value && canonicalOf(value),
          previous: previous && canonicalOf(previous),
          cause: causeCanonical,
        }),
      );
    }
    if (capture) {
      capture.changes.push(
        seq,
        draft.hlc,
        draft.at ?? null,
        draft.thing,
        draft.affordance ?? null,
        draft.kind,
        valueText,
        previous?.text ?? null,
        cause.text,
      );
      if (leaf) capture.leaves.push(leaf);
      capture.records.push(change);
    } else {
      this.stmt.insert.run({
        seq,
        hlc: draft.hlc,
        at: draft.at ?? null,
        thing: draft.thing,
        affordance: draft.affordance ?? null,
        kind: draft.kind,
        value: valueText,
        previous: previous?.text ?? null,
        cause: cause.text,
        // Without a batch for the writer thread, the leaf is always hashed here.
        leaf: leaf as Uint8Array,
      });
      change.leaf = hashToHex(leaf as Uint8Array);
    }
    // A stream's value is kept only where it serves as the next Change's `previous`: not for the
    // Thing-level streams (a TD is in the Log already, and its previous comes from the directory).
    const streamValue = draft.affordance === undefined ? null : valueText;
    const parsed =
      streamValue !== null && value !== undefined && !isObject(value.value) ? value.value : undefined;
    const state: PendingState = { seq, value: streamValue, key, parsed, prev: latest };
    this.undo.push(state);
    const subs = this.setStream(draft.thing, sub, state, streams, latest === undefined);
    this.size = seq;
    if (leaf) this.appendLeaf(leaf);
    this.pending.push(state);
    if (latest === undefined || latest.seq <= this.dirtyAbove) this.markDirty(key, sub, subs);
    return change;
  }

  /** The frontier hashes each subtree the leaf completes; those of BLOCK leaves and up are kept. */
  private appendLeaf(leaf: Uint8Array): void {
    if (this.frontierMarked) {
      this.frontier = this.frontier.clone();
      this.frontierMarked = false;
    }
    this.frontier.append(leaf, this.completedSubtree, this.frontierMerged);
    this.pushBlockLeaf(leaf, this.frontier.size);
  }

  /** The leaf of `seq` joins the block being filled, which starts again when it is full. */
  private pushBlockLeaf(leaf: Uint8Array, seq: number): void {
    this.blockLeaves.push(leaf);
    if (seq % BLOCK === 0) this.blockLeaves = [];
  }

  /** A perfect subtree the frontier completed; those of BLOCK leaves and more are stored. */
  private readonly completedSubtree = (level: number, idx: number, hash: Uint8Array): void => {
    if (level >= STORED_LEVEL) this.storeNode(level, idx, hash);
  };

  private storeNode(level: number, idx: number, hash: Uint8Array): void {
    const capture = this.capture;
    if (capture) {
      capture.nodes.push(level, idx);
      capture.nodeHashes.push(hash);
    } else {
      this.stmt.insertNode.run(merkleNodeId(level, idx), level, idx, Buffer.from(hash));
    }
  }

  /** Writes the head; the last step of every batch transaction. */
  saveHead(): void {
    // The writer thread writes the head of a batch it hashes.
    if (this.capture?.writerHashes) return;
    if (this.capture) {
      // Only a batch that appended moves the head (a merge chunk alone does not).
      if (this.size !== this.view.size) this.capture.head = [this.size, this.frontier.toJSONText()];
      return;
    }
    this.stmt.saveHead.run(this.size, this.frontier.toJSONText());
  }

  /**
   * From now until `endCapture`, the write path collects rows for the writer thread, which also
   * hashes them with `writerHashes` (the batch then leaves the Merkle tree here as it is until
   * it has committed: no batch hashed here may be built before).
   */
  beginCapture(writerHashes = false): void {
    this.frontierMerged = writerHashes ? undefined : [];
    this.capture = {
      changes: [],
      leaves: [],
      writerHashes,
      canonical: [],
      records: [],
      nodes: [],
      nodeHashes: [],
      streamIds: [],
      history: [],
      streams: [],
      checkpoints: [],
    };
  }

  /**
   * Ends the batch begun by `beginCapture` (after `saveHead`): its rows, and what readers see once
   * it has committed. Undefined when it wrote nothing.
   */
  endCapture(): LogBatch | undefined {
    const capture = this.capture;
    this.capture = undefined;
    this.frontierMerged = undefined;
    if (!capture) return undefined;
    const records = capture.records;
    const hashes = capture.writerHashes && capture.records.length > 0;
    const bytes = concatHashes(hashes ? [] : capture.leaves, capture.nodeHashes);
    const leaves = hashes ? undefined : bytes.leaves;
    if (leaves) setLeaves(records, leaves);
    const set: WriteSet = {
      changes: capture.changes,
      nodes: capture.nodes,
      nodeHashes: bytes.nodes,
      streamIds: capture.streamIds,
      history: capture.history,
      streams: capture.streams,
      checkpoints: capture.checkpoints,
    };
    if (leaves) set.leaves = leaves;
    if (hashes) set.canonical = capture.canonical;
    if (capture.head) set.head = capture.head;
    if (capture.merged !== undefined) set.merged = capture.merged;
    const empty =
      set.changes.length === 0 &&
      set.streamIds.length === 0 &&
      set.nodes.length === 0 &&
      set.history.length === 0 &&
      set.streams.length === 0 &&
      set.checkpoints.length === 0 &&
      set.head === undefined &&
      set.merged === undefined;
    if (empty) return undefined;
    const pending = this.pending;
    this.pending = [];
    return {
      set,
      // A batch the writer hashes shows readers what its answer says (committed); one that
      // appended nothing, with the writer hashing what came before it, leaves the view as it is.
      writerHashes: capture.writerHashes,
      view: capture.writerHashes ? undefined : this.currentView(),
      records,
      pending,
      undoEnd: this.undoBase + this.undo.length,
    };
  }

  /**
   * A stream as committed: changed by a batch not committed yet, it reads as it was before it
   * (undefined: it did not exist).
   */
  private committedState(latest: StreamState): StreamState | undefined {
    let state: StreamState | undefined = latest;
    while (state !== undefined && state.seq > this.view.size) state = state.prev;
    return state;
  }

  /** The Log as it is in memory now, as readers will see it once it has committed. */
  private currentView(): CommittedView {
    return { size: this.size, frontier: this.frontier.clone(), block: this.blockLeaves.slice() };
  }

  /**
   * After COMMIT: the batch's stream entries join the tail, and readers see it. Without a batch
   * (a transaction on this thread, when no batch is in flight): everything appended so far.
   */
  committed(batch?: LogBatch, hashed?: WrittenSet): void {
    if (batch === undefined) {
      if (this.checkpointInserted) this.checkpointsChanged();
      this.settle(this.pending);
      this.pending = [];
      this.undoBase += this.undo.length;
      this.undo = [];
      this.view = this.currentView();
      return;
    }
    if (batch.set.checkpoints.length > 0) this.checkpointsChanged();
    this.settle(batch.pending);
    if (hashed) {
      // The leaves the writer thread hashed, and its frontier: no batch hashed here was built
      // while it was in flight, so the tree here moves on to exactly what it committed.
      setLeaves(batch.records, hashed.leaves);
      this.frontier = MerkleFrontier.fromJSON(JSON.parse(hashed.frontier));
      this.frontierMarked = false;
      // Only the leaves after the set's last full block are kept (pushBlockLeaf): one view each.
      const count = batch.records.length;
      const first = this.frontier.size - count + 1;
      const last = this.frontier.size;
      let from = 0;
      if (last - (last % BLOCK) >= first) {
        this.blockLeaves = [];
        from = last - (last % BLOCK) - first + 1;
      }
      for (let i = from; i < count; i++) {
        this.pushBlockLeaf(hashed.leaves.subarray(HASH_LENGTH * i, HASH_LENGTH * (i + 1)), first + i);
      }
      // Its size is the frontier's: this.size runs ahead with the batches in flight.
      this.view = {
        size: this.frontier.size,
        frontier: this.frontier.clone(),
        block: this.blockLeaves.slice(),
      };
    } else if (batch.view) this.view = batch.view;
    this.undo.splice(0, batch.undoEnd - this.undoBase);
    this.undoBase = batch.undoEnd;
  }

  /** Committed states: their entries join the tail, and nobody reads past them any more. */
  private settle(states: readonly PendingState[]): void {
    this.tail.addAll(states);
    for (const state of states) state.prev = undefined;
  }

  /**
   * After a batch failed as a whole: the Log's memory goes back to `mark`, taken before it (the
   * batches built on it are undone too: they fail with it).
   */
  abandoned(mark: LogMark): void {
    this.rollback(mark);
    this.checkpointsChanged();
    // Batches hashed by the writer thread moved the tree on as they committed, after the mark.
    this.frontier = this.view.frontier.clone();
    this.frontierMarked = false;
    this.blockLeaves = this.view.block.slice();
    this.capture = undefined;
    this.frontierMerged = undefined;
    this.pending = [];
    // Those in flight failed with it; their entries are still in the tail (none was committed,
    // so no reader applied one).
    this.unmerged = [];
  }

  get tailSize(): number {
    return this.tail.size;
  }

  /** Starts merging the tail up to the current size into the history table. */
  beginMerge(): LogMergeCycle {
    const order = this.tail.order;
    // Streams of removed Things leave the order when it has grown to twice what is live.
    let live = 0;
    for (const subs of this.projection.values()) live += subs.size;
    if (order.size > 2 * live + 1024) {
      const keys = new Set(this.tail.keys());
      for (const [thing, subs] of this.projection)
        for (const sub of subs.keys()) keys.add(`${thing}\u0000${sub}`);
      for (const key of this.dirty.keys()) keys.add(key);
      order.reset(keys);
    }
    // Only what has committed: batches in flight may still fail. The streams whose row may be
    // behind are written after the history entries, walking the same stream order.
    this.dirtyAbove = Math.max(this.dirtyAbove, this.view.size);
    return { history: this.tail.beginMerge(this.view.size), position: 0 };
  }

  /**
   * Writes one chunk of a merge (inside a transaction): history entries first, then the changed
   * streams; `done` when the cycle has no more, which records how far both are complete.
   */
  mergeChunk(cycle: LogMergeCycle, limit: number): MergeChunk {
    // After the chunks with the writer thread (none has failed: a failure empties `unmerged`);
    // the Log's own transactions commit each chunk before the next is built.
    const inFlight = this.capture ? this.unmerged.at(-1) : undefined;
    const { entries, end } = cycle.history.chunkAfter(limit, inFlight?.end);
    const numbered = new Set<StreamId>();
    // A chunk holds long runs of one stream: its number is looked up once per run.
    let key: string | undefined;
    let id = 0;
    for (const entry of entries) {
      if (entry.key !== key) {
        key = entry.key;
        id = this.numbered(key, numbered).id;
      }
      if (this.capture) this.capture.history.push(id, entry.seq);
      else this.stmt.insertHistory.run(id, entry.seq);
    }
    if (entries.length > 0) {
      const chunk: MergeChunk = { entries, done: false, numbered };
      if (end) chunk.end = end;
      if (this.capture) this.unmerged.push(chunk);
      return chunk;
    }
    const keys = cycle.history.keys;
    if (cycle.position < keys.length) {
      // The streams whose row may be behind, in stream order: those whose committed state is at or
      // before `upTo` are written. A stream changed again after `upTo` is written by a later
      // cycle; until then the start-up replay of the Log after `history_merged` restores it. A
      // chunk looks at a bounded number of keys, so that none holds the event loop long.
      const streams: ChunkStream[] = [];
      let position = cycle.position;
      const end = Math.min(keys.length, position + STREAM_KEYS_PER_CHUNK * Math.max(1, limit));
      for (; position < end && streams.length < limit; position++) {
        const dirty = this.dirty.get(keys[position] ?? "");
        if (dirty === undefined) continue;
        const key = dirty.key;
        streams.push(dirty);
        const latest = dirty.subs.get(dirty.sub);
        const state = latest && this.committedState(latest);
        if (state === undefined || state.seq > cycle.history.upTo) continue;
        const { id } = this.numbered(key, numbered);
        if (this.capture) this.capture.streams.push(id, state.seq, state.value);
        else this.stmt.upsertStream.run(id, state.seq, state.value);
      }
      // The cycle moves on only after COMMIT (merged): a chunk run again is the same chunk.
      return { entries, streams, streamsTo: position, done: false, numbered };
    }
    if (this.capture) this.capture.merged = cycle.history.upTo;
    else this.stmt.saveMerged.run(cycle.history.upTo);
    return { entries, done: true };
  }

  /** After a merge chunk committed: its entries are in the table, no longer in the tail. */
  merged(cycle: LogMergeCycle, chunk: MergeChunk): void {
    if (this.unmerged[0] === chunk) this.unmerged.shift();
    this.applyMerged(chunk);
    if (chunk.streamsTo !== undefined) {
      // A stream appended to since the cycle began stays behind (its newer state is unwritten).
      for (const { key, sub, subs } of chunk.streams ?? []) {
        const latest = subs.get(sub);
        if (latest === undefined || latest.seq <= cycle.history.upTo) this.dirty.delete(key);
      }
      cycle.position = chunk.streamsTo;
    }
  }

  /**
   * A stream's number (given now if it has none), with its `stream_ids` row written in the running
   * transaction if no committed one has it yet (`numbered` collects those, for `applyMerged`).
   */
  private numbered(key: string, numbered: Set<StreamId>): StreamId {
    const sid = this.idOf(key);
    if (!sid.persisted && !numbered.has(sid)) {
      numbered.add(sid);
      const [thing, affordance, kind] = splitStreamKey(key);
      if (this.capture) this.capture.streamIds.push(sid.id, thing, affordance, kind);
      else this.stmt.insertStreamId.run(sid.id, thing, affordance, kind);
    }
    return sid;
  }

  /** A stream's number, given in the order streams first appear. */
  private idOf(key: string): StreamId {
    let sid = this.streamIds.get(key);
    if (sid === undefined) this.streamIds.set(key, (sid = { id: this.nextStreamId++, persisted: false }));
    return sid;
  }

  /** A committed chunk's entries leave the tail and join the ranks, once. */
  private applyMerged(chunk: MergeChunk): void {
    if (chunk.applied) return;
    chunk.applied = true;
    for (const sid of chunk.numbered ?? []) sid.persisted = true;
    this.tail.remove(chunk.entries);
    // Entries come in index order, so a stream's new entries come in seq order after its others.
    for (const entry of chunk.entries) {
      const ranks = this.ranks.get(entry.key);
      if (ranks === undefined) continue;
      ranks.count++;
      if (ranks.count % this.rankStep === 0) ranks.marks.push(entry.seq);
    }
  }

  /**
   * Inside a read snapshot: the chunks in flight that it already holds are applied now (a chunk
   * commits whole, and no entry of the tail was in the table before, so one entry tells).
   */
  private applyVisibleChunks(): void {
    for (const chunk of this.unmerged) {
      if (chunk.applied) continue;
      const first = chunk.entries[0];
      if (first === undefined) continue;
      if (this.stmt.historyHas.get(this.idOf(first.key).id, first.seq) === undefined) return;
      this.applyMerged(chunk);
    }
  }

  addCheckpoint(checkpoint: Checkpoint): void {
    if (this.capture) {
      const { size, origin, root, time, signature } = checkpoint;
      this.capture.checkpoints.push(size, origin, root, time, signature);
      return;
    }
    this.stmt.insertCheckpoint.run(checkpoint);
    this.checkpointInserted = true;
  }

  // --- reads ---

  get lastSeq(): number {
    return this.view.size;
  }

  head(): LogHead {
    return { size: this.view.size, root: this.view.frontier.root() };
  }

  get(seq: number): Change | undefined {
    const row = this.stmt.get.get(seq);
    return row ? toChange(row) : undefined;
  }

  after(after: number, limit: number, filter: ChangeFilter = {}): Change[] {
    return this.feed({ ...filter, after, order: "asc", limit });
  }

  /** The feed's Changes with `after < seq < before`, in either order, filtered. */
  feed(query: FeedQuery): Change[] {
    const { after, before, order, limit, ...filter } = query;
    if (filter.thing !== undefined) {
      // The history index serves one Thing and its kinds (only their streams are read); the other
      // filters apply to its Changes.
      const out: Change[] = [];
      let bounds = { after, before: before ?? Number.MAX_SAFE_INTEGER };
      // With no other filter every Change of the page is taken: no more are read than asked for.
      const only =
        filter.actor === undefined &&
        filter.release === undefined &&
        filter.correlation === undefined &&
        !filter.things;
      const pageSize = only ? Math.min(limit, FEED_PAGE) : FEED_PAGE;
      const kinds = filter.kinds && { kinds: filter.kinds };
      const affordance = filter.affordance !== undefined && { affordance: filter.affordance };
      while (out.length < limit) {
        const page = this.history({
          thing: filter.thing,
          ...affordance,
          ...kinds,
          ...bounds,
          order,
          limit: pageSize,
        });
        for (const change of page) if (matches(change, filter) && out.length < limit) out.push(change);
        const last = page.at(-1);
        if (!last || page.length < pageSize) break;
        bounds = order === "asc" ? { ...bounds, after: last.seq } : { ...bounds, before: last.seq };
      }
      return out;
    }
    const plain =
      !filter.kinds &&
      filter.affordance === undefined &&
      filter.actor === undefined &&
      filter.release === undefined &&
      filter.correlation === undefined;
    if (plain && filter.things === undefined && before === undefined && order === "asc") {
      return this.stmt.after.all(after, limit).map(toChange);
    }
    return this.filtered(filter, order)
      .all(after, before ?? Number.MAX_SAFE_INTEGER, ...(filter.kinds ?? []), ...extra(filter), limit)
      .map(toChange);
  }

  /**
   * The Things with a matching Change in `after < seq < before`, each with its first such seq: a
   * range of the Log's primary key, grouped in SQL, so no Change is read into JavaScript.
   */
  changedThings(query: ChangedThingsQuery): ChangedThing[] {
    const { after, before, limit, ...filter } = query;
    if (limit <= 0 || filter.kinds?.length === 0) return [];
    const shape = [
      filter.kinds?.length ?? "any",
      filter.thing !== undefined,
      filter.affordance !== undefined,
      filter.actor !== undefined,
      filter.release !== undefined,
      filter.correlation !== undefined,
      filter.things !== undefined,
    ].join(":");
    let statement = this.changedThingsStatements.get(shape);
    if (!statement) {
      const where = ["seq > ?", "seq < ?"];
      if (filter.kinds) where.push(`kind IN (${filter.kinds.map(() => "?").join(", ")})`);
      if (filter.thing !== undefined) where.push("thing = ?");
      if (filter.affordance !== undefined) where.push("affordance = ?");
      if (filter.actor !== undefined) where.push("json_extract(cause, '$.actor') = ?");
      if (filter.release !== undefined) where.push("json_extract(cause, '$.release') = ?");
      if (filter.correlation !== undefined) where.push("json_extract(cause, '$.correlation') = ?");
      if (filter.things !== undefined) where.push("thing IN (SELECT value FROM json_each(?))");
      statement = this.db.prepare<unknown[], ChangedThing>(
        `SELECT thing, MIN(seq) AS first FROM changes WHERE ${where.join(" AND ")} GROUP BY thing ORDER BY first LIMIT ?`,
      );
      this.changedThingsStatements.set(shape, statement);
    }
    return statement.all(
      after,
      before ?? Number.MAX_SAFE_INTEGER,
      ...(filter.kinds ?? []),
      ...(filter.thing !== undefined ? [filter.thing] : []),
      ...extra(filter),
      limit,
    );
  }

  private filtered(filter: ChangeFilter, order: "asc" | "desc"): Database.Statement<unknown[], ChangeRow> {
    // `kinds: []` (no kind matches) and no kinds at all (any kind) need different statements.
    const shape = [
      filter.kinds?.length ?? "any",
      filter.affordance !== undefined,
      filter.actor !== undefined,
      filter.release !== undefined,
      filter.correlation !== undefined,
      filter.things !== undefined,
      order,
    ].join(":");
    let statement = this.filterStatements.get(shape);
    if (!statement) {
      const where = ["seq > ?", "seq < ?"];
      if (filter.kinds) where.push(`kind IN (${filter.kinds.map(() => "?").join(", ")})`);
      if (filter.affordance !== undefined) where.push("affordance = ?");
      if (filter.actor !== undefined) where.push("json_extract(cause, '$.actor') = ?");
      if (filter.release !== undefined) where.push("json_extract(cause, '$.release') = ?");
      if (filter.correlation !== undefined) where.push("json_extract(cause, '$.correlation') = ?");
      // The Things as one JSON array: any number of them, one statement.
      if (filter.things !== undefined) where.push("thing IN (SELECT value FROM json_each(?))");
      statement = this.db.prepare<unknown[], ChangeRow>(
        `SELECT * FROM changes WHERE ${where.join(" AND ")} ORDER BY seq ${order === "asc" ? "ASC" : "DESC"} LIMIT ?`,
      );
      this.filterStatements.set(shape, statement);
    }
    return statement;
  }

  private streamsOf(thing: string, affordance?: string, kinds?: readonly string[]) {
    const out: Array<{ affordance: string; kind: string; seq: number }> = [];
    for (const [sub, latest] of this.projection.get(thing) ?? []) {
      const state = this.committedState(latest);
      if (state === undefined) continue;
      const [a, kind] = splitSubKey(sub);
      if ((affordance === undefined || a === affordance) && (!kinds || kinds.includes(kind))) {
        out.push({ affordance: a, kind, seq: state.seq });
      }
    }
    return out;
  }

  /**
   * A page of one Thing's history, in one read transaction (as `streamsAt` and `countStream`):
   * in WAL mode a statement run alone begins and ends a read transaction of its own, taking and
   * releasing the WAL's read lock, ~12 µs a lookup against ~2 µs inside one, and a page makes a
   * lookup per Change (500 Changes: p50 6.1–7.0 → 2.4–2.7 ms).
   */
  history(query: HistoryQuery): Change[] {
    return this.transaction(() => this.historyPage(query));
  }

  private historyPage(query: HistoryQuery): Change[] {
    const after = query.after ?? 0;
    const before = query.before ?? Number.MAX_SAFE_INTEGER;
    const seqs = new Set<number>();
    for (const s of this.streamsOf(query.thing, query.affordance, query.kinds)) {
      const key = streamKey(query.thing, s.affordance, s.kind);
      const statement = query.order === "asc" ? this.stmt.historyAsc : this.stmt.historyDesc;
      for (const row of statement.all(this.storedId(key), after, before, query.limit)) seqs.add(row.seq);
      const tail = this.tail.range(key, after, before);
      for (const seq of query.order === "asc" ? tail.slice(0, query.limit) : tail.slice(-query.limit))
        seqs.add(seq);
    }
    const sorted = [...seqs].sort((a, b) => (query.order === "asc" ? a - b : b - a)).slice(0, query.limit);
    return sorted.map((seq) => this.mustGet(seq));
  }

  streamsAt(thing: string, atSeq: number | undefined, kinds?: readonly string[]): HistoryStream[] {
    return this.transaction(() => this.streamsAtNow(thing, atSeq, kinds));
  }

  private streamsAtNow(thing: string, atSeq: number | undefined, kinds?: readonly string[]): HistoryStream[] {
    const out: HistoryStream[] = [];
    for (const s of this.streamsOf(thing, undefined, kinds)) {
      let seq: number | undefined = s.seq;
      if (atSeq !== undefined && s.seq > atSeq) {
        const key = streamKey(thing, s.affordance, s.kind);
        seq =
          this.tail.latest(key, atSeq) ??
          this.stmt.historyLatest.get(this.storedId(key), atSeq)?.seq ??
          undefined;
      }
      if (seq !== undefined) out.push({ affordance: s.affordance, kind: s.kind, latest: this.mustGet(seq) });
    }
    return out;
  }

  /**
   * Every entry is either in the table or in the tail, never both (see the constructor; a chunk
   * the writer thread committed before its answer came is applied first, in one snapshot). The
   * table's part is a difference of two ranks, each a binary search in the stream's marks and a
   * count of fewer than RANK_STEP index entries: the cost does not grow with the range.
   */
  countStream(thing: string, affordance: string, kind: string, after: number, upTo: number): number {
    if (upTo <= after) return 0;
    return this.consistent(() => {
      const key = streamKey(thing, affordance, kind);
      const id = this.storedId(key);
      const ranks = this.ranksOf(key, id);
      const fromTable = this.tableRank(ranks, id, upTo) - this.tableRank(ranks, id, after);
      return fromTable + this.tail.countRange(key, after, upTo);
    });
  }

  /**
   * Runs `read` over the history table and the tail as one: in one snapshot of the database, with
   * the chunks that snapshot holds out of the tail. With no chunk in flight the table changes
   * only on this thread, and there is nothing to apply; the statements still share one
   * transaction (see `history`).
   */
  consistent<T>(read: () => T): T {
    if (this.unmerged.length === 0) return this.transaction(read);
    return this.transaction(() => {
      this.applyVisibleChunks();
      return read();
    });
  }

  /** A stream's number, for reading its rows: 0 (no rows) when it has none. */
  private storedId(key: string): number {
    return this.streamIds.get(key)?.id ?? 0;
  }

  /** How many of a stream's entries in the table have seq <= `seq`. */
  private tableRank(ranks: StreamRanks, id: number, seq: number): number {
    if (seq <= 0) return 0;
    const { marks } = ranks;
    let lo = 0;
    let hi = marks.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((marks[mid] ?? 0) <= seq) lo = mid + 1;
      else hi = mid;
    }
    const base = lo * this.rankStep;
    if (base === ranks.count) return base;
    const from = lo > 0 ? (marks[lo - 1] ?? 0) : 0;
    return base + (this.stmt.historyCount.get(id, from, seq)?.n ?? 0);
  }

  /**
   * A stream's rank marks, found on its first count by stepping its index RANK_STEP entries at a
   * time (in SQLite, one pass over the stream's entries), then kept up by each merge.
   */
  private ranksOf(key: string, id: number): StreamRanks {
    let ranks = this.ranks.get(key);
    if (ranks !== undefined) return ranks;
    const marks: number[] = [];
    let after = 0;
    for (;;) {
      const row = this.stmt.historyNth.get(id, after, this.rankStep - 1);
      if (row === undefined) break;
      marks.push(row.seq);
      after = row.seq;
    }
    const rest = this.stmt.historyCount.get(id, after, Number.MAX_SAFE_INTEGER)?.n ?? 0;
    ranks = { marks, count: marks.length * this.rankStep + rest };
    this.ranks.set(key, ranks);
    return ranks;
  }

  /**
   * Binary search over seq (the Log's hlc increases with seq), in one read transaction, by
   * powers of two: the seqs it looks at in its upper steps are the same for every search, however
   * far the Log has grown, and their hlc (which never changes) is kept. On a Log of 2M Changes,
   * this search was half of a `stateAt` or `diff` query's time, at ~21 lookups a statement each.
   */
  seqBefore(hlc: string): number {
    const size = this.view.size;
    if (size === 0) return 0;
    return this.transaction(() => {
      let pos = 0; // seq pos sorts before hlc (0 stands for "none")
      for (let step = largestPowerOfTwoBelow(size + 1); step >= 1; step /= 2) {
        const probe = pos + step;
        if (probe <= size && (this.hlcAt(probe, step) ?? hlc) < hlc) pos = probe;
      }
      return pos;
    });
  }

  /** The hlc of seq `seq` (committed); kept when `step` says the search looks at it often. */
  private hlcAt(seq: number, step: number): string | undefined {
    if (step < KEPT_HLC_STEP) return this.stmt.hlcOf.get(seq)?.hlc;
    let hlc = this.keptHlcs.get(seq);
    if (hlc === undefined) {
      hlc = this.stmt.hlcOf.get(seq)?.hlc;
      if (hlc === undefined) return undefined;
      if (this.keptHlcs.size >= MAX_KEPT_HLCS) this.keptHlcs.clear();
      this.keptHlcs.set(seq, hlc);
    }
    return hlc;
  }

  /**
   * The subtree hashes of a proof, in one read transaction: a statement run alone opens and
   * ends one of its own (~4 µs each here, about half of a lookup), and a proof takes ~10 of them.
   * `blocks` is shared by the ranges: a proof's ranges in one block read it once.
   */
  /** `fromLeaves`: from the leaf hashes alone, ignoring the stored subtrees (Store.subtreeHashes). */
  subtreeHashes(ranges: ReadonlyArray<readonly [number, number]>, fromLeaves = false): Uint8Array[] {
    return this.transaction(() => {
      const blocks = new Map<number, Uint8Array[]>();
      // The proofs of neighbouring Changes in one tree share most of their ranges (all those
      // above the smallest subtree holding both, and the tree's right edge): each is read or
      // hashed once per call. A Thing's export asks for 500 proofs a call.
      const memo = ranges.length > 1 ? new Map<string, Uint8Array>() : undefined;
      return ranges.map(([start, end]) => this.subtreeHash(start, end, blocks, memo, !fromLeaves));
    });
  }

  /**
   * RFC 9162 §2.1.1 MTH over leaves [start, end), from stored subtrees where they exist. `blocks`
   * keeps the leaves of each block read, so the ranges of one proof read a block once; `memo`,
   * when given, the hash of each range already worked out.
   */
  subtreeHash(
    start: number,
    end: number,
    blocks = new Map<number, Uint8Array[]>(),
    memo?: Map<string, Uint8Array>,
    stored = true,
  ): Uint8Array {
    if (memo === undefined) return this.rangeHash(start, end, blocks, memo, stored);
    const key = `${start}:${end}`;
    let hash = memo.get(key);
    if (hash === undefined) memo.set(key, (hash = this.rangeHash(start, end, blocks, memo, stored)));
    return hash;
  }

  private rangeHash(
    start: number,
    end: number,
    blocks: Map<number, Uint8Array[]>,
    memo: Map<string, Uint8Array> | undefined,
    stored: boolean,
  ): Uint8Array {
    const n = end - start;
    // A start below 0 would read fewer leaves than asked for, and hash them without a word.
    const size = this.view.size;
    if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || n <= 0 || end > size)
      throw new RangeError(`no subtree [${start}, ${end}) in a log of ${size}`);
    if (stored && n >= BLOCK && isPowerOfTwo(n) && start % n === 0) {
      const node = this.storedNode(Math.log2(n), start / n);
      if (node) return node;
    }
    const block = Math.floor(start / BLOCK);
    if (Math.floor((end - 1) / BLOCK) === block) {
      const leaves = this.blockLeavesOf(block, blocks);
      const offset = block * BLOCK;
      return rootHash(leaves.slice(start - offset, end - offset));
    }
    const k = largestPowerOfTwoBelow(n);
    return nodeHash(
      this.subtreeHash(start, start + k, blocks, memo, stored),
      this.subtreeHash(start + k, end, blocks, memo, stored),
    );
  }

  /** A stored subtree (complete, so committed for good), from the cache for the upper levels. */
  private storedNode(level: number, idx: number): Uint8Array | undefined {
    if (level < CACHED_LEVEL) return this.stmt.node.get(merkleNodeId(level, idx))?.hash;
    const key = level * 2 ** 32 + idx;
    let hash = this.cachedNodes.get(key);
    if (hash === undefined) {
      hash = this.stmt.node.get(merkleNodeId(level, idx))?.hash;
      if (hash === undefined) return undefined;
      if (this.cachedNodes.size >= MAX_CACHED_NODES) this.cachedNodes.clear();
      this.cachedNodes.set(key, hash);
    }
    return hash;
  }

  /**
   * What is wrong with a block whose leaf hashes did not come to 32 bytes each: the first Change of
   * it whose row is gone (deleted outside the hub, past its triggers) or whose leaf is not 32 bytes.
   */
  private damagedBlock(first: number, last: number, size: number): DamagedLogError {
    const rows = this.db
      .prepare<[number, number], { seq: number; bytes: number | null }>(
        "SELECT seq, length(leaf) AS bytes FROM changes WHERE seq BETWEEN ? AND ? ORDER BY seq",
      )
      .all(first, last);
    const advice = "`things verify` checks the Log; restore the database from a backup";
    for (let seq = first, i = 0; seq <= last; seq++, i++) {
      const row = rows[i];
      if (row?.seq !== seq) {
        return new DamagedLogError(
          `Change ${seq} is missing from the database, though the Log holds ${size} Changes: its row was deleted outside the hub. ${advice}`,
          seq,
        );
      }
      if (row.bytes !== HASH_LENGTH) {
        const bytes = row.bytes ?? 0;
        return new DamagedLogError(
          `the leaf hash of Change ${seq} is ${bytes} byte${bytes === 1 ? "" : "s"}, not ${HASH_LENGTH}: the database was altered outside the hub. ${advice}`,
          seq,
        );
      }
    }
    return new DamagedLogError(
      `the leaf hashes of Changes ${first} to ${last} could not be read whole: the database is damaged. ${advice}`,
      first,
    );
  }

  /** The leaf hashes of one block (as far as the Log goes), from memory or read once. */
  private blockLeavesOf(block: number, blocks: Map<number, Uint8Array[]>): Uint8Array[] {
    const start = block * BLOCK;
    const view = this.view;
    if (start === view.size - view.block.length) return view.block;
    let leaves = blocks.get(block);
    if (leaves === undefined) {
      const last = Math.min(start + BLOCK, view.size);
      const bytes = Buffer.from(this.stmt.leafBlock.get(start + 1, last) ?? "", "hex");
      if (bytes.length !== HASH_LENGTH * (last - start)) throw this.damagedBlock(start + 1, last, view.size);
      leaves = [];
      for (let at = 0; at < bytes.length; at += HASH_LENGTH)
        leaves.push(bytes.subarray(at, at + HASH_LENGTH));
      blocks.set(block, leaves);
    }
    return leaves;
  }

  /**
   * The latest checkpoint, and the size of the one before it (0: there is none), read from the
   * table once after each commit that added a checkpoint: an inclusion proof asks for the
   * checkpoint at or after its tree's size, nearly always the latest, and a seek in the table
   * (cold pages on a big Log) was ~20 % of the query's time.
   */
  private checkpointTail: { latest: Checkpoint | undefined; before: number } | undefined;
  /** A checkpoint was inserted on this thread since the last COMMIT (not through the writer). */
  private checkpointInserted = false;

  private lastCheckpoints(): { latest: Checkpoint | undefined; before: number } {
    if (this.checkpointTail !== undefined) return this.checkpointTail;
    const [latest, before] = this.stmt.lastCheckpoints.all();
    const tail = { latest, before: before?.size ?? 0 };
    // Not kept while this connection holds an insert it has not committed.
    if (!this.checkpointInserted) this.checkpointTail = tail;
    return tail;
  }

  /** What a COMMIT (or a rollback) may have changed in the table: read it again when asked. */
  private checkpointsChanged(): void {
    this.checkpointTail = undefined;
    this.checkpointInserted = false;
  }

  checkpoints(after: number, limit: number): Checkpoint[] {
    const { latest, before } = this.lastCheckpoints();
    // Past the one before the latest, only the latest can follow `after`.
    if (limit >= 1 && after >= before)
      return latest !== undefined && latest.size > after ? [{ ...latest }] : [];
    return this.stmt.checkpoints.all(after, limit);
  }

  latestCheckpoint(): Checkpoint | undefined {
    const { latest } = this.lastCheckpoints();
    return latest && { ...latest };
  }

  private mustGet(seq: number): Change {
    const change = this.get(seq);
    if (!change) throw new Error(`Change ${seq} is indexed but missing from the Log`);
    return change;
  }

  // --- Read only: the entries for verifiers, as stored ---

  private entriesStatement: Database.Statement<[number, number], EntriesRow> | undefined;

  /**
   * The Changes after seq `after` (at most `limit`) as NDJSON lines (see `Store.logEntries`),
   * written by SQLite from the stored columns in one statement: no row becomes a JS object. The
   * members are in RFC 8785 order and the texts of `value`, `previous` and `cause` are as stored
   * (JSON.stringify's), so a line is the Change's canonical JSON whenever those are (numbers,
   * strings, arrays, objects whose members were written sorted, as a cause's `actor` and `via`),
   * then `,"leaf":"<hex>"}`. A row altered in the database is written as it now is.
   */
  entries(after: number, limit: number): LogEntries {
    // The subquery runs as a co-routine scanning the primary key in order, and group_concat
    // takes its rows as they come: `group_concat(… ORDER BY seq)` would sort them again, 1 µs a
    // row (half the statement's time). Were the order ever different, verifiers would fail the
    // page as out of sequence, never pass it.
    this.entriesStatement ??= this.db.prepare<[number, number], EntriesRow>(LOG_ENTRIES_SQL);
    const row = this.entriesStatement.get(after, limit);
    const count = row?.count ?? 0;
    return { body: row?.body ?? new Uint8Array(0), count, last: count > 0 ? (row?.last ?? after) : after };
  }
}

/**
 * The Changes after `?1` (at most `?2`) as NDJSON lines, written by SQLite from the stored columns
 * (`SqliteLog.entries`; `SqliteLogFile` reads a file with it too, so a verifier of the file reads
 * the very bytes the hub serves).
 */
export const LOG_ENTRIES_SQL = `SELECT count(*) AS count, max(seq) AS last,
          CAST(group_concat(line, char(10)) || char(10) AS BLOB) AS body
   FROM (SELECT seq, '{' ||
           CASE WHEN affordance IS NULL THEN '' ELSE '"affordance":' || json_quote(affordance) || ',' END ||
           CASE WHEN at IS NULL THEN '' ELSE '"at":' || json_quote(at) || ',' END ||
           '"cause":' || cause ||
           ',"hlc":' || json_quote(hlc) ||
           ',"kind":' || json_quote(kind) ||
           CASE WHEN previous IS NULL THEN '' ELSE ',"previous":' || previous END ||
           ',"seq":' || seq ||
           ',"thing":' || json_quote(thing) ||
           CASE WHEN value IS NULL THEN '' ELSE ',"value":' || value END ||
           ',"leaf":"' || lower(hex(leaf)) || '"}' AS line
         FROM changes WHERE seq > ? ORDER BY seq LIMIT ?)`;

export interface EntriesRow {
  count: number;
  last: number | null;
  body: Buffer | null;
}

function extra(filter: ChangeFilter): Array<string | number> {
  const out: Array<string | number> = [];
  if (filter.affordance !== undefined) out.push(filter.affordance);
  if (filter.actor !== undefined) out.push(filter.actor);
  if (filter.release !== undefined) out.push(filter.release);
  if (filter.correlation !== undefined) out.push(filter.correlation);
  if (filter.things !== undefined) out.push(JSON.stringify(filter.things));
  return out;
}

function matches(change: Change, filter: ChangeFilter): boolean {
  if (filter.things && !filter.things.includes(change.thing)) return false;
  if (filter.kinds && !filter.kinds.includes(change.kind)) return false;
  if (filter.affordance !== undefined && change.affordance !== filter.affordance) return false;
  if (filter.actor !== undefined && change.cause.actor !== filter.actor) return false;
  if (filter.release !== undefined && change.cause.release !== filter.release) return false;
  if (filter.correlation !== undefined && change.cause.correlation !== filter.correlation) return false;
  return true;
}
