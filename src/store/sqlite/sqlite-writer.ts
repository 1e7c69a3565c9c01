// The Log's writer thread. Appends and history merge chunks are worked out on the main thread
// (seq, leaf hash, Merkle tree, projection: all in memory) and produce plain rows; a worker thread
// with its own connection to the same file writes them in one transaction and COMMITs (the fsync
// included). The event loop thus never waits for SQLite's inserts or for the disk, and the two
// cores share the work: while the thread commits one set, the store builds the next on it. A big
// set comes without leaves: the thread builds each Change's leaf input from its row, hashes it
// and moves the Merkle tree on (`canonical`, WrittenSet). Sets are written in the order sent;
// when one fails, the sets of the same epoch sent after it were built on it and are refused,
// until the store, having rolled its memory back, sends a new epoch (docs/changes.md, "Ingest").
import { createRequire } from "node:module";
import { Worker } from "node:worker_threads";

/** Columns of a Change row as the writer inserts them (`changes` in sqlite-migrations.ts). */
export const CHANGE_COLUMNS = 9;

/** What one batch writes, in flat arrays (cheap to copy to the worker). */
export interface WriteSet {
  /** CHANGE_COLUMNS values per Change: seq, hlc, at, thing, affordance, kind, value, previous, cause. */
  changes: Array<string | number | null>;
  /** The Changes' leaf hashes, 32 bytes each, in the same order (none when `canonical` is given). */
  leaves?: Uint8Array;
  /**
   * Instead of `leaves`, `nodes` and `head`: the thread hashes the set. It builds each Change's
   * leaf input (0x00 then its canonical JSON, as core's changeLeafInput) from the row's columns,
   * taking the recorded texts of value, previous value and cause as canonical, except those
   * given here as (index of the Change in the set, column 6, 7 or 8, canonical text) triples
   * (an object's members in another order; mostly none). Building the inputs on the event loop,
   * and one string of them to copy here, cost it ~10 % of a one-Change call. The thread then
   * also appends the leaves to the Merkle frontier, keeps the subtrees of 2^STORED_LEVEL leaves
   * and more, writes the head, and answers with the leaves and the frontier (WrittenSet).
   */
  canonical?: Array<number | string>;
  /** Merkle subtrees: level and idx per node. */
  nodes: number[];
  /** Their hashes, 32 bytes each. */
  nodeHashes: Uint8Array;
  /** Streams numbered for the first time: id, thing, affordance, kind. */
  streamIds: Array<string | number>;
  /** History index entries: stream id, seq. */
  history: number[];
  /** Projection rows: stream id, seq, value. */
  streams: Array<string | number | null>;
  /** Signed checkpoints: size, origin, root, time, signature. */
  checkpoints: Array<string | number>;
  /** The Log's new size and frontier (JSON), when Changes were appended. */
  head?: [size: number, frontier: string];
  /** How far the history index is complete, when a merge cycle ended. */
  merged?: number;
}

/** What the thread hashed for a set with `canonical`: the leaves, and the frontier after them (JSON). */
export interface WrittenSet {
  leaves: Uint8Array;
  frontier: string;
}

type Answer =
  { id: number; ok: true; hashed?: WrittenSet } | { id: number; ok: false; message: string; code?: string };

/**
 * Subtrees of 2^STORED_LEVEL leaves and larger are kept in `merkle_nodes`, by the Log (sqlite-log.ts)
 * and by the writer thread for the batches it hashes.
 */
export const STORED_LEVEL = 4;

/**
 * A stored subtree's key in `merkle_nodes` (migration 7): where it ends, in leaves, then its
 * level. The subtrees one leaf completes all end at it, so the nodes of a batch are appended
 * together at the table's end. Exact up to 2^47 leaves. The writer thread computes the same.
 */
export function merkleNodeId(level: number, idx: number): number {
  return (idx + 1) * 2 ** level * 64 + level;
}

/** The writer thread's code: CommonJS, run with `eval`, so that it needs no file of its own. */
const WORKER_SOURCE = String.raw`
"use strict";
const { parentPort, workerData } = require("node:worker_threads");
const Database = require(workerData.sqlite);
const db = new Database(workerData.path);
db.pragma("synchronous = FULL");
db.pragma("busy_timeout = 5000");
db.pragma("cache_size = -65536");
const insertChange = db.prepare(
  "INSERT INTO changes (seq, hlc, at, thing, affordance, kind, value, previous, cause, leaf) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
// Big sets insert their Changes CHANGE_ROWS to a statement (~13 % less time a row than one each).
const CHANGE_ROWS = 16;
const insertChangeRows = db.prepare(
  "INSERT INTO changes (seq, hlc, at, thing, affordance, kind, value, previous, cause, leaf) VALUES " +
  new Array(CHANGE_ROWS).fill("(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)").join(", "));
const changeArgs = new Array(10 * CHANGE_ROWS);
const insertNode = db.prepare("INSERT INTO merkle_nodes (id, level, idx, hash) VALUES (?, ?, ?, ?)");
// merkleNodeId: where the subtree ends, then its level.
const nodeId = (level, idx) => (idx + 1) * 2 ** level * 64 + level;
const insertStreamId = db.prepare("INSERT OR IGNORE INTO stream_ids (id, thing, affordance, kind) VALUES (?, ?, ?, ?)");
const insertHistory = db.prepare("INSERT OR IGNORE INTO history_entries (stream, seq) VALUES (?, ?)");
// A merge chunk's entries go HISTORY_ROWS to a statement: the binding's cost per call is most of
// an entry's, as the entries of a chunk are in index order.
const HISTORY_ROWS = 64;
const insertHistoryRows = db.prepare(
  "INSERT OR IGNORE INTO history_entries (stream, seq) VALUES " + new Array(HISTORY_ROWS).fill("(?, ?)").join(", "));
const historyArgs = new Array(2 * HISTORY_ROWS);
const upsertStream = db.prepare(
  "INSERT INTO stream_state (stream, seq, value) VALUES (?, ?, ?) " +
  "ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq, value = excluded.value");
// A merge chunk's stream rows go STREAM_ROWS to a statement, as its history entries do (each
// stream once in a chunk: a row is never upserted twice by one statement).
const STREAM_ROWS = 32;
const upsertStreamRows = db.prepare(
  "INSERT INTO stream_state (stream, seq, value) VALUES " + new Array(STREAM_ROWS).fill("(?, ?, ?)").join(", ") +
  " ON CONFLICT (stream) DO UPDATE SET seq = excluded.seq, value = excluded.value");
const streamArgs = new Array(3 * STREAM_ROWS);
const insertCheckpoint = db.prepare(
  "INSERT OR IGNORE INTO checkpoints (size, origin, root, time, signature) VALUES (?, ?, ?, ?, ?)");
const saveHead = db.prepare("UPDATE log_head SET size = ?, frontier = ? WHERE id = 1");
const saveMerged = db.prepare("UPDATE log_head SET history_merged = ? WHERE id = 1");
const logSize = db.prepare("SELECT size FROM log_head WHERE id = 1").pluck();
const logFrontier = db.prepare("SELECT frontier FROM log_head WHERE id = 1").pluck();
// RFC 9162 hashing for sets the thread hashes: the compact range (frontier) of the Log's
// Merkle tree, as core's MerkleFrontier keeps it ({ size, hashes }: the perfect subtree roots,
// largest first). This thread cannot import core (an eval'd script, run from TypeScript sources
// under test); the store's tests check every root, stored node and head it writes against core.
const { hash } = require("node:crypto");
const STORED_LEVEL = workerData.storedLevel;
const nodeInput = Buffer.alloc(65);
nodeInput[0] = 1;
const sha256 = (data) => Buffer.from(hash("sha256", data, "binary"), "latin1");
// A Change's leaf input from its row (c[i] to c[i + 8]: seq, hlc, at, thing, affordance, kind,
// then value, previous and cause, given as canonical texts): core's changeLeafInput and
// canonicalChangeText, member for member. A plain string is quoted as it is, anything else (a
// column holds no object) as JSON.stringify writes it, as canonicalJson does; the store's tests
// hold every leaf to core's.
const PLAIN = /^[^"\\\u0000-\u001f\ud800-\udfff]*$/;
const text = (s) => (typeof s === "string" && PLAIN.test(s) ? '"' + s + '"' : JSON.stringify(s));
const leafInput = (c, i, value, previous, cause) => {
  let out = "\u0000{";
  if (c[i + 4] !== null) out += '"affordance":' + text(c[i + 4]) + ",";
  if (c[i + 2] !== null) out += '"at":' + text(c[i + 2]) + ",";
  out += '"cause":' + cause + ',"hlc":' + text(c[i + 1]) + ',"kind":' + text(c[i + 5]) + ",";
  if (previous !== null) out += '"previous":' + previous + ",";
  out += '"seq":' + c[i] + ',"thing":' + text(c[i + 3]);
  if (value !== null) out += ',"value":' + value;
  return out + "}";
};
// The frontier as committed, or undefined until a set to hash needs it (read from the head
// then, and again whenever the Log on disk has moved on without this thread hashing it).
let frontier;
const hashSet = (set, size) => {
  if (frontier === undefined || frontier.size !== size) {
    const json = JSON.parse(logFrontier.get());
    frontier = { size: json.size, hashes: json.hashes.map((h) => Buffer.from(h, "hex")) };
    if (frontier.size !== size) throw new Error("the head's frontier is for " + frontier.size + " Changes, not " + size);
  }
  const next = { size: frontier.size, hashes: frontier.hashes.slice() };
  const c = set.changes;
  const canonical = set.canonical;
  const count = c.length / 9;
  const leaves = Buffer.allocUnsafe(32 * count);
  let o = 0;
  for (let i = 0; i < count; i++) {
    let value = c[9 * i + 6];
    let previous = c[9 * i + 7];
    let cause = c[9 * i + 8];
    for (; o < canonical.length && canonical[o] === i; o += 3) {
      if (canonical[o + 1] === 6) value = canonical[o + 2];
      else if (canonical[o + 1] === 7) previous = canonical[o + 2];
      else cause = canonical[o + 2];
    }
    const leaf = sha256(leafInput(c, 9 * i, value, previous, cause));
    leaf.copy(leaves, 32 * i);
    let carry = leaf;
    let level = 0;
    for (let n = next.size; n % 2 === 1; n = (n - 1) / 2) {
      nodeInput.set(next.hashes.pop(), 1);
      nodeInput.set(carry, 33);
      carry = sha256(nodeInput);
      level++;
      if (level >= STORED_LEVEL) insertNode.run((next.size + 1) * 64 + level, level, (next.size + 1) / 2 ** level - 1, carry);
    }
    next.hashes.push(carry);
    next.size++;
  }
  if (o !== canonical.length) throw new Error("the set has canonical texts for Changes it does not hold");
  const json = JSON.stringify({ size: next.size, hashes: next.hashes.map((h) => h.toString("hex")) });
  return { leaves, frontier: json, next };
};
// Flat rows of width values each: as many at a time as args holds (one statement for the lot,
// many), then the rest one by one (one).
const insertRows = (values, width, many, args, one) => {
  let i = 0;
  for (; i + args.length <= values.length; i += args.length) {
    for (let j = 0; j < args.length; j++) args[j] = values[i + j];
    many.run(args);
  }
  for (; i < values.length; i += width) one.run(values.slice(i, i + width));
};
// The epoch of the last set that failed: later sets of that epoch were built on it.
let refusedEpoch = -1;
const view = (bytes, i) => Buffer.from(bytes.buffer, bytes.byteOffset + 32 * i, 32);
const write = db.transaction((set) => {
  const c = set.changes;
  const size = c.length > 0 || set.canonical ? logSize.get() : 0;
  // Belt and braces: the set continues the Log exactly where the file ends.
  if (c.length > 0 && c[0] !== size + 1)
    throw new Error("the set starts at seq " + c[0] + " but the Log on disk ends at " + size);
  const hashed = set.canonical ? hashSet(set, size) : undefined;
  const leaves = hashed ? hashed.leaves : set.leaves;
  let i = 0;
  let r = 0;
  for (; i + 9 * CHANGE_ROWS <= c.length; ) {
    for (let k = 0; k < changeArgs.length; k += 10, i += 9, r++) {
      for (let j = 0; j < 9; j++) changeArgs[k + j] = c[i + j];
      changeArgs[k + 9] = view(leaves, r);
    }
    insertChangeRows.run(changeArgs);
  }
  for (; i < c.length; i += 9, r++) {
    insertChange.run(c[i], c[i + 1], c[i + 2], c[i + 3], c[i + 4], c[i + 5], c[i + 6], c[i + 7], c[i + 8], view(leaves, r));
  }
  for (let i = 0, r = 0; i < set.nodes.length; i += 2, r++)
    insertNode.run(nodeId(set.nodes[i], set.nodes[i + 1]), set.nodes[i], set.nodes[i + 1], view(set.nodeHashes, r));
  const d = set.streamIds;
  for (let i = 0; i < d.length; i += 4) insertStreamId.run(d[i], d[i + 1], d[i + 2], d[i + 3]);
  insertRows(set.history, 2, insertHistoryRows, historyArgs, insertHistory);
  insertRows(set.streams, 3, upsertStreamRows, streamArgs, upsertStream);
  const k = set.checkpoints;
  for (let i = 0; i < k.length; i += 5) insertCheckpoint.run(k[i], k[i + 1], k[i + 2], k[i + 3], k[i + 4]);
  // Last: a Change may only be inserted beyond the head's size (changes_no_replace).
  if (hashed) saveHead.run(hashed.next.size, hashed.frontier);
  else if (set.head) saveHead.run(set.head[0], set.head[1]);
  if (set.merged !== undefined) saveMerged.run(set.merged);
  return hashed;
});
parentPort.on("message", (message) => {
  if (message.close) {
    db.close();
    parentPort.close();
    return;
  }
  if (message.epoch === refusedEpoch) {
    parentPort.postMessage({ id: message.id, ok: false, message: "an earlier batch it was built on was not written" });
    return;
  }
  try {
    // IMMEDIATE: the write lock first, as the main connection's batches take it.
    const hashed = write.immediate(message.set);
    if (hashed === undefined) parentPort.postMessage({ id: message.id, ok: true });
    else {
      // Committed: the frontier moves on (a set that failed leaves it as it was).
      frontier = hashed.next;
      parentPort.postMessage({ id: message.id, ok: true, hashed: { leaves: hashed.leaves, frontier: hashed.frontier } });
    }
  } catch (error) {
    refusedEpoch = message.epoch;
    parentPort.postMessage({ id: message.id, ok: false, message: String(error && error.message || error), code: error && error.code });
  }
});
`;

/** An error the writer thread reported (SQLITE_FULL, SQLITE_IOERR, …); nothing of its set was written. */
export class WriterError extends Error {
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
    this.name = "WriterError";
  }
}

export class SqliteWriter {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly waiting = new Map<
    number,
    { resolve: (hashed: WrittenSet | undefined) => void; reject: (error: Error) => void }
  >();
  private readonly sqlite = createRequire(import.meta.url).resolve("better-sqlite3");

  /** `path` is a database file the main connection has already opened and migrated. */
  constructor(private readonly path: string) {}

  private start(): Worker {
    const options = (execArgv: string[]) => ({
      eval: true,
      execArgv,
      workerData: { path: this.path, sqlite: this.sqlite, storedLevel: STORED_LEVEL },
    });
    let worker: Worker;
    try {
      // The code is a CommonJS script, whatever the parent was started as (`node
      // --input-type=module -e …` would make an eval'd worker a module, without require). The
      // other flags (--cpu-prof, --inspect…) apply to the thread too.
      worker = new Worker(
        WORKER_SOURCE,
        options(process.execArgv.filter((a) => !a.startsWith("--input-type"))),
      );
    } catch (error) {
      // A flag that a thread cannot take (--trace-gc, --max-old-space-size…): it needs none.
      if ((error as { code?: string }).code !== "ERR_WORKER_INVALID_EXEC_ARGV") throw error;
      worker = new Worker(WORKER_SOURCE, options([]));
    }
    worker.on("message", (answer: Answer) => {
      const waiter = this.waiting.get(answer.id);
      if (!waiter) return;
      this.waiting.delete(answer.id);
      if (this.waiting.size === 0) worker.unref();
      if (answer.ok) waiter.resolve(answer.hashed);
      else waiter.reject(new WriterError(`The store could not write: ${answer.message}`, answer.code));
    });
    const fail = (error: Error) => {
      // The thread is gone: what it had not answered was not written (its transaction rolled
      // back with it). The next write starts a new one.
      if (this.worker === worker) this.worker = undefined;
      for (const waiter of this.waiting.values()) waiter.reject(error);
      this.waiting.clear();
    };
    worker.on("error", (error) =>
      fail(new WriterError(`The store's writer thread failed: ${error.message}`)),
    );
    worker.on("exit", (code) => fail(new WriterError(`The store's writer thread exited (code ${code})`)));
    // Idle, it must not keep the process alive; writing, it must (refed in write()).
    worker.unref();
    return worker;
  }

  /**
   * Resolves once the set is committed (durable), with what the thread hashed for a set with
   * `canonical`; rejects with WriterError when nothing was. Sets are written in the order given;
   * after one fails, the later ones of its `epoch` are refused.
   */
  write(set: WriteSet, epoch: number): Promise<WrittenSet | undefined> {
    const worker = (this.worker ??= this.start());
    const id = this.nextId++;
    return new Promise<WrittenSet | undefined>((resolve, reject) => {
      this.waiting.set(id, { resolve, reject });
      worker.ref();
      worker.postMessage({ id, set, epoch });
    });
  }

  /** Closes the writer's connection and ends the thread (after the sets already sent). */
  async close(): Promise<void> {
    const worker = this.worker;
    this.worker = undefined;
    if (!worker) return;
    worker.ref();
    const exited = new Promise<void>((resolve) => worker.once("exit", () => resolve()));
    worker.postMessage({ close: true });
    await exited;
  }
}
