// One group-commit transaction of the PostgreSQL store, built in memory: the commands of a batch
// run here one after another against what the transaction read (the Log's head, the Things, the
// streams' latest values and the releases they touch), each rolled back alone if it fails, and
// the rows they made are written by one statement (`FLUSH_SQL`) before COMMIT.
import {
  canonicalCauseJson,
  changeLeafInput,
  hashToHex,
  sha256Digest,
  type Cause,
  type Change,
  type Checkpoint,
  type MerkleFrontier,
  type Release,
} from "../../core/index.js";
import type { ChangeDraft } from "../store.js";
import { canonicalOf, type Recorded } from "../recorded-json.js";

/** Subtrees of 2^STORED_LEVEL leaves and more are stored: a proof hashes at most 16 leaves. */
export const STORED_LEVEL = 4;
export const BLOCK = 2 ** STORED_LEVEL;

/** A draft with its JSON recorded (at the call, so that a value JSON cannot hold is refused there). */
export interface RecordedDraft {
  draft: ChangeDraft;
  value: Recorded | undefined;
  previous: Recorded | undefined;
  cause: Recorded;
}

/** A registered Thing as the transaction sees it. */
export interface ThingState {
  td: Recorded;
  version: number;
  created: string;
  modified: string;
  expires: string | null;
  ttl: number | null;
}

export interface ReleaseState {
  release: Release;
  seq: number;
  storedAt: string;
}

/** A stream's key: Thing, affordance ("" for the Thing itself) and kind. */
export function streamKey(thing: string, affordance: string, kind: string): string {
  return `${thing}\u0000${affordance}\u0000${kind}`;
}

/** The latest Change of a stream, as far as its next Change needs it. */
export interface StreamTail {
  /** The value text the next Change gets as `previous` (null: none, and always for a Thing-level stream). */
  value: string | null;
  /** Its ordinal in the stream (migration 3): the next Change's is one more (0: the stream has none). */
  ordinal: number;
}

/** The tail of a stream that has no Change. */
export const EMPTY_STREAM: StreamTail = { value: null, ordinal: 0 };

export interface BatchMark {
  size: number;
  frontier: MerkleFrontier;
  changes: number;
  nodes: number;
  streams: number;
  releases: number;
  checkpoints: number;
  undo: number;
}

/**
 * Writes a batch's rows in one statement (data-modifying CTEs over arrays): one round trip
 * whatever the batch holds. Things are deleted or upserted by their final state in the batch.
 */
export const FLUSH_SQL = `WITH
  c AS (INSERT INTO changes (seq, hlc, at, thing, affordance, kind, value, previous, cause, leaf, ordinal)
    SELECT s, h, a, t, af, k, v, p, ca, decode(l, 'hex'), o
    FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                $8::text[], $9::text[], $10::text[], $35::bigint[]) AS x(s, h, a, t, af, k, v, p, ca, l, o)),
  st AS (INSERT INTO streams (thing, affordance, kind)
    SELECT DISTINCT * FROM unnest($11::text[], $12::text[], $13::text[]) ON CONFLICT DO NOTHING),
  n AS (INSERT INTO merkle_nodes (level, idx, hash)
    SELECT lv, i, decode(hh, 'hex') FROM unnest($14::smallint[], $15::bigint[], $16::text[]) AS y(lv, i, hh)),
  td AS (DELETE FROM things WHERE id = ANY($17::text[])),
  tu AS (INSERT INTO things (id, created, modified, expires, ttl, version)
    SELECT * FROM unnest($18::text[], $19::text[], $20::text[], $21::text[], $22::bigint[], $23::bigint[])
    ON CONFLICT (id) DO UPDATE SET created = excluded.created, modified = excluded.modified,
      expires = excluded.expires, ttl = excluded.ttl, version = excluded.version),
  r AS (INSERT INTO releases (id, name, seq, stored_at)
    SELECT * FROM unnest($24::text[], $25::text[], $26::bigint[], $27::text[])),
  cp AS (INSERT INTO checkpoints (size, origin, root, time, signature)
    SELECT * FROM unnest($28::bigint[], $29::text[], $30::text[], $31::text[], $32::text[])
    ON CONFLICT DO NOTHING)
UPDATE log_head SET size = $33, frontier = $34 WHERE id = 1`;

export class LogBatch {
  size: number;
  frontier: MerkleFrontier;
  /** A mark holds the frontier itself: the next leaf goes to a copy (copy on write). */
  private frontierMarked = false;

  private readonly changes = {
    seq: [] as number[],
    hlc: [] as string[],
    at: [] as Array<string | null>,
    thing: [] as string[],
    affordance: [] as Array<string | null>,
    kind: [] as string[],
    value: [] as Array<string | null>,
    previous: [] as Array<string | null>,
    cause: [] as string[],
    leaf: [] as string[],
    ordinal: [] as number[],
  };
  private readonly nodes = { level: [] as number[], idx: [] as number[], hash: [] as string[] };
  private readonly newStreams = { thing: [] as string[], affordance: [] as string[], kind: [] as string[] };
  private readonly newReleases = {
    id: [] as string[],
    name: [] as string[],
    seq: [] as number[],
    storedAt: [] as string[],
  };
  private readonly newCheckpoints: Checkpoint[] = [];
  /** Undoes the changes to the maps below, newest last (mark/rollback). */
  private readonly undo: Array<() => void> = [];

  /** The tail of each stream the batch appends to, by streamKey: read before any command runs. */
  readonly streams = new Map<string, StreamTail>();
  /** The Things the batch reads or writes: their state (null: not registered). */
  readonly things = new Map<string, ThingState | null>();
  readonly touchedThings = new Set<string>();
  readonly releases = new Map<string, ReleaseState | null>();
  /** Streams new to the `streams` table in this batch (by key). */
  readonly addedStreams = new Set<string>();

  constructor(
    size: number,
    frontier: MerkleFrontier,
    /** Streams known to be in the `streams` table already. */
    private readonly knownStreams: ReadonlySet<string>,
  ) {
    this.size = size;
    this.frontier = frontier;
  }

  get empty(): boolean {
    return (
      this.changes.seq.length === 0 &&
      this.touchedThings.size === 0 &&
      this.newReleases.id.length === 0 &&
      this.newCheckpoints.length === 0
    );
  }

  mark(): BatchMark {
    this.frontierMarked = true;
    return {
      size: this.size,
      frontier: this.frontier,
      changes: this.changes.seq.length,
      nodes: this.nodes.level.length,
      streams: this.newStreams.thing.length,
      releases: this.newReleases.id.length,
      checkpoints: this.newCheckpoints.length,
      undo: this.undo.length,
    };
  }

  rollback(mark: BatchMark): void {
    this.size = mark.size;
    this.frontier = mark.frontier;
    this.frontierMarked = true;
    for (const column of Object.values(this.changes)) column.length = mark.changes;
    for (const column of Object.values(this.nodes)) column.length = mark.nodes;
    for (const column of Object.values(this.newStreams)) column.length = mark.streams;
    for (const column of Object.values(this.newReleases)) column.length = mark.releases;
    this.newCheckpoints.length = mark.checkpoints;
    while (this.undo.length > mark.undo) this.undo.pop()?.();
  }

  private setIn<K, V>(map: Map<K, V>, key: K, value: V): void {
    const had = map.has(key);
    const before = map.get(key);
    this.undo.push(() => {
      if (had) map.set(key, before as V);
      else map.delete(key);
    });
    map.set(key, value);
  }

  setThing(id: string, state: ThingState | null): void {
    this.setIn(this.things, id, state);
    this.touchedThings.add(id);
  }

  addRelease(state: ReleaseState): void {
    this.setIn(this.releases, state.release.id, state);
    this.newReleases.id.push(state.release.id);
    this.newReleases.name.push(state.release.name);
    this.newReleases.seq.push(state.seq);
    this.newReleases.storedAt.push(state.storedAt);
  }

  addCheckpoint(checkpoint: Checkpoint): void {
    this.newCheckpoints.push(checkpoint);
  }

  /** Appends one Change: its seq, leaf, `previous` from its stream, and the Merkle nodes it completes. */
  append(recorded: RecordedDraft): Change {
    const { draft, value, cause } = recorded;
    const affordance = draft.affordance ?? "";
    const key = streamKey(draft.thing, affordance, draft.kind);
    const tail = this.streams.get(key);
    // The store reads every stream a command appends to before the batch: a miss is a bug here,
    // which must not number a Change wrongly.
    if (tail === undefined)
      throw new Error(
        `The stream ${draft.thing} "${affordance}" ${draft.kind} was not read before its append`,
      );
    let previous = recorded.previous;
    if (previous === undefined && draft.affordance !== undefined && tail.value !== null) {
      previous = { text: tail.value, value: JSON.parse(tail.value) as unknown, canonical: undefined };
    }
    const seq = this.size + 1;
    const change: Change = {
      seq,
      hlc: draft.hlc,
      thing: draft.thing,
      kind: draft.kind,
      cause: cause.value as Cause,
    };
    if (draft.at !== undefined) change.at = draft.at;
    if (draft.affordance !== undefined) change.affordance = draft.affordance;
    if (value !== undefined) change.value = value.value;
    if (previous !== undefined) change.previous = previous.value;
    const leaf = sha256Digest(
      changeLeafInput({
        seq,
        hlc: draft.hlc,
        at: draft.at,
        thing: draft.thing,
        affordance: draft.affordance,
        kind: draft.kind,
        value: value && canonicalOf(value),
        previous: previous && canonicalOf(previous),
        cause: (cause.canonical ??= canonicalCauseJson(cause.value)),
      }),
    );
    const leafHex = hashToHex(leaf);
    change.leaf = leafHex;

    const rows = this.changes;
    rows.seq.push(seq);
    rows.hlc.push(draft.hlc);
    rows.at.push(draft.at ?? null);
    rows.thing.push(draft.thing);
    rows.affordance.push(draft.affordance ?? null);
    rows.kind.push(draft.kind);
    rows.value.push(value?.text ?? null);
    rows.previous.push(previous?.text ?? null);
    rows.cause.push(cause.text);
    rows.leaf.push(leafHex);
    rows.ordinal.push(tail.ordinal + 1);

    if (this.frontierMarked) {
      this.frontier = this.frontier.clone();
      this.frontierMarked = false;
    }
    this.frontier.append(leaf, (level, idx, hash) => {
      if (level < STORED_LEVEL) return;
      this.nodes.level.push(level);
      this.nodes.idx.push(idx);
      this.nodes.hash.push(hashToHex(hash));
    });
    this.size = seq;

    // A Thing-level stream gives no `previous` (its Changes' values are TDs and such).
    this.setIn(this.streams, key, {
      value: draft.affordance === undefined ? null : (value?.text ?? null),
      ordinal: tail.ordinal + 1,
    });
    if (!this.knownStreams.has(key) && !this.addedStreams.has(key)) {
      this.addedStreams.add(key);
      this.undo.push(() => this.addedStreams.delete(key));
      this.newStreams.thing.push(draft.thing);
      this.newStreams.affordance.push(affordance);
      this.newStreams.kind.push(draft.kind);
    }
    return change;
  }

  /** The parameters of FLUSH_SQL. */
  flushParameters(): unknown[] {
    const c = this.changes;
    const deleted: string[] = [];
    const upserted = {
      id: [] as string[],
      created: [] as string[],
      modified: [] as string[],
      expires: [] as Array<string | null>,
      ttl: [] as Array<number | null>,
      version: [] as number[],
    };
    for (const id of this.touchedThings) {
      const state = this.things.get(id);
      if (state === undefined || state === null) {
        deleted.push(id);
        continue;
      }
      upserted.id.push(id);
      upserted.created.push(state.created);
      upserted.modified.push(state.modified);
      upserted.expires.push(state.expires);
      upserted.ttl.push(state.ttl);
      upserted.version.push(state.version);
    }
    const s = this.newStreams;
    const r = this.newReleases;
    const cp = this.newCheckpoints;
    return [
      c.seq,
      c.hlc,
      c.at,
      c.thing,
      c.affordance,
      c.kind,
      c.value,
      c.previous,
      c.cause,
      c.leaf,
      s.thing,
      s.affordance,
      s.kind,
      this.nodes.level,
      this.nodes.idx,
      this.nodes.hash,
      deleted,
      upserted.id,
      upserted.created,
      upserted.modified,
      upserted.expires,
      upserted.ttl,
      upserted.version,
      r.id,
      r.name,
      r.seq,
      r.storedAt,
      cp.map((x) => x.size),
      cp.map((x) => x.origin),
      cp.map((x) => x.root),
      cp.map((x) => x.time),
      cp.map((x) => x.signature),
      this.size,
      JSON.stringify(this.frontier.toJSON()),
      c.ordinal,
    ];
  }
}
