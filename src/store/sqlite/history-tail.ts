// The newest part of the history index, kept in memory until it is merged into the `history`
// table in sorted batches: appending stays sequential, and a merge writes each index page once.

export interface TailEntry {
  key: string;
  seq: number;
}

export function streamKey(thing: string, affordance: string, kind: string): string {
  return `${thing}\u0000${affordance}\u0000${kind}`;
}

export function splitStreamKey(key: string): [thing: string, affordance: string, kind: string] {
  const [thing = "", affordance = "", kind = ""] = key.split("\u0000");
  return [thing, affordance, kind];
}

/**
 * Every stream key seen so far, kept in index order: a merge cycle walks it instead of sorting
 * the tail's keys again (tens of milliseconds for 30,000 streams, on the event loop). Keys new
 * since the last walk are sorted on their own and merged in, so a cycle costs one pass. The
 * order is the keys' own, or that of a number `rank` gives each key (the index's: a stream id).
 */
export class StreamOrder {
  private readonly known = new Set<string>();
  private order: string[] = [];
  /** With `rank`: the rank of each key of `order` (a key's rank never changes). */
  private ranks: number[] = [];
  private fresh: string[] = [];

  constructor(private readonly rank?: (key: string) => number) {}

  get size(): number {
    return this.known.size;
  }

  add(key: string): void {
    if (this.known.has(key)) return;
    this.known.add(key);
    this.fresh.push(key);
  }

  /** All keys, ascending (the array is replaced, never changed, when keys arrive). */
  sorted(): readonly string[] {
    if (this.fresh.length === 0) return this.order;
    const rank = this.rank;
    // Each key is ranked once: the fresh ones here, the others when they were fresh.
    const fresh = rank
      ? this.fresh.map((key) => ({ key, rank: rank(key) })).sort((a, b) => a.rank - b.rank)
      : this.fresh.sort().map((key) => ({ key, rank: 0 }));
    this.fresh = [];
    const old = this.order;
    const oldRanks = this.ranks;
    const before = rank
      ? (i: number, j: number) => (oldRanks[i] as number) < (fresh[j]?.rank as number)
      : (i: number, j: number) => (old[i] as string) < (fresh[j]?.key as string);
    const merged = new Array<string>(old.length + fresh.length);
    const mergedRanks = rank ? new Array<number>(merged.length) : [];
    let i = 0;
    let j = 0;
    let k = 0;
    while (i < old.length || j < fresh.length) {
      if (j >= fresh.length || (i < old.length && before(i, j))) {
        if (rank) mergedRanks[k] = oldRanks[i] as number;
        merged[k++] = old[i++] as string;
      } else {
        const next = fresh[j++] as { key: string; rank: number };
        if (rank) mergedRanks[k] = next.rank;
        merged[k++] = next.key;
      }
    }
    this.order = merged;
    this.ranks = mergedRanks;
    return merged;
  }

  /** Starts again from `keys` (streams gone for good are forgotten). */
  reset(keys: Iterable<string>): void {
    this.known.clear();
    this.order = [];
    this.ranks = [];
    this.fresh = [];
    for (const key of keys) this.add(key);
  }
}

/** Where a chunk ends: the stream (its place in the cycle's keys) and the seq of its last entry. */
export interface ChunkEnd {
  position: number;
  seq: number;
}

export interface MergeCycle {
  readonly upTo: number;
  /**
   * Every stream key known when the cycle began, in index order: the cycle walks it, chunk by
   * chunk, skipping streams with nothing to merge.
   */
  readonly keys: readonly string[];
  /**
   * The first entries of the cycle still in the tail, in index order, or [] when the cycle is
   * done. A chunk is handed out again until `remove` takes its entries out of the tail, so a chunk
   * whose transaction did not commit (and is run again) writes the same entries.
   */
  nextChunk(limit: number): TailEntry[];
  /**
   * The entries of the cycle after `after` (the end of a chunk handed out and not yet removed,
   * which is being written meanwhile), up to `limit`, and where they end; from the first entry
   * still in the tail when `after` is undefined (as `nextChunk`).
   */
  chunkAfter(limit: number, after: ChunkEnd | undefined): { entries: TailEntry[]; end: ChunkEnd | undefined };
}

/** Seqs per stream, ascending (appends arrive in seq order). */
export class HistoryTail {
  private readonly streams = new Map<string, number[]>();
  private count = 0;

  /** `order` learns every key the tail is given. */
  constructor(readonly order: StreamOrder = new StreamOrder()) {}

  get size(): number {
    return this.count;
  }

  add(key: string, seq: number): void {
    let seqs = this.streams.get(key);
    if (!seqs) {
      seqs = [];
      this.streams.set(key, seqs);
      this.order.add(key);
    }
    seqs.push(seq);
    this.count++;
  }

  /**
   * `add` of each entry, in order, with every stream's lookup done first: for streams of random
   * Things the lookups miss the CPU's caches, and in a loop of their own the misses overlap
   * (SqliteLog's `warm` does the same for the appends).
   */
  addAll(entries: readonly TailEntry[]): void {
    const streams = this.streams;
    const found: Array<number[] | undefined> = new Array<number[] | undefined>(entries.length);
    for (let i = 0; i < entries.length; i++) found[i] = streams.get((entries[i] as TailEntry).key);
    for (let i = 0; i < entries.length; i++) {
      const entry = entries[i] as TailEntry;
      const seqs = found[i];
      if (seqs === undefined) this.add(entry.key, entry.seq);
      else {
        seqs.push(entry.seq);
        this.count++;
      }
    }
  }

  /** Seqs of one stream with `after < seq < before`, ascending. */
  range(key: string, after: number, before: number): number[] {
    const seqs = this.streams.get(key);
    if (!seqs) return [];
    return seqs.slice(upperBound(seqs, after), lowerBound(seqs, before));
  }

  /** How many seqs of one stream have `after < seq <= upTo`. */
  countRange(key: string, after: number, upTo: number): number {
    const seqs = this.streams.get(key);
    if (!seqs) return 0;
    return Math.max(0, upperBound(seqs, upTo) - upperBound(seqs, after));
  }

  /** The greatest seq of one stream that is `<= atMost`, or undefined. */
  latest(key: string, atMost: number): number | undefined {
    const seqs = this.streams.get(key);
    if (!seqs) return undefined;
    const i = upperBound(seqs, atMost);
    return i > 0 ? seqs[i - 1] : undefined;
  }

  /**
   * A merge of every entry with `seq <= upTo`, handed out in index order (stream, then seq)
   * so that each chunk covers one contiguous range of the index and writes each page once.
   */
  beginMerge(upTo: number): MergeCycle {
    const keys = this.order.sorted();
    // Streams before `position` have nothing left at or below `upTo`, for good: the tail only
    // gains newer seqs. What a chunk took stays in the tail until it is removed: the next chunk
    // starts after it only when told where it ended (chunkAfter, while it is being written).
    let position = 0;
    const pendingIn = (key: string): number => upperBound(this.streams.get(key) ?? [], upTo);
    const chunkAfter = (limit: number, after: ChunkEnd | undefined) => {
      while (position < keys.length && pendingIn(keys[position] ?? "") === 0) position++;
      const out: TailEntry[] = [];
      // Where the last entry taken is: the chunk's end, made once.
      let endPosition = -1;
      let endSeq = 0;
      for (let p = Math.max(position, after?.position ?? 0); p < keys.length && out.length < limit; p++) {
        const key = keys[p] ?? "";
        const seqs = this.streams.get(key) ?? [];
        const last = upperBound(seqs, upTo);
        // Within the stream the chunk before ended in, after its last entry.
        let i = after !== undefined && p === after.position ? upperBound(seqs, after.seq) : 0;
        for (; i < last && out.length < limit; i++) {
          const seq = seqs[i] ?? 0;
          out.push({ key, seq });
          endPosition = p;
          endSeq = seq;
        }
      }
      const end: ChunkEnd | undefined = endPosition < 0 ? undefined : { position: endPosition, seq: endSeq };
      return { entries: out, end };
    };
    return {
      upTo,
      keys,
      nextChunk: (limit) => chunkAfter(limit, undefined).entries,
      chunkAfter,
    };
  }

  /** The streams that have entries. */
  keys(): IterableIterator<string> {
    return this.streams.keys();
  }

  has(key: string, seq: number): boolean {
    const seqs = this.streams.get(key);
    if (!seqs) return false;
    const i = lowerBound(seqs, seq);
    return seqs[i] === seq;
  }

  /**
   * Forgets entries that are now in the table. A merge chunk takes the oldest entries of each of
   * its streams, so each run of one stream's entries is checked against the start of that
   * stream and cut off as a prefix; anything else is removed entry by entry.
   */
  remove(entries: readonly TailEntry[]): void {
    let general: TailEntry[] | undefined;
    for (let i = 0; i < entries.length;) {
      const key = (entries[i] as TailEntry).key;
      let j = i + 1;
      while (j < entries.length && (entries[j] as TailEntry).key === key) j++;
      const seqs = this.streams.get(key);
      const n = j - i;
      let prefix = seqs !== undefined && n <= seqs.length;
      for (let k = 0; prefix && k < n; k++)
        if (seqs?.[k] !== (entries[i + k] as TailEntry).seq) prefix = false;
      if (prefix && seqs) {
        seqs.splice(0, n);
        this.count -= n;
        if (seqs.length === 0) this.streams.delete(key);
      } else (general ??= []).push(...entries.slice(i, j));
      i = j;
    }
    if (general) this.removeEach(general);
  }

  private removeEach(entries: readonly TailEntry[]): void {
    const byKey = new Map<string, Set<number>>();
    for (const e of entries) {
      let set = byKey.get(e.key);
      if (!set) byKey.set(e.key, (set = new Set()));
      set.add(e.seq);
    }
    for (const [key, set] of byKey) {
      const seqs = this.streams.get(key);
      if (!seqs) continue;
      const kept = seqs.filter((s) => !set.has(s));
      this.count -= seqs.length - kept.length;
      if (kept.length === 0) this.streams.delete(key);
      else this.streams.set(key, kept);
    }
  }
}

/** First index whose value is > x. */
function upperBound(values: readonly number[], x: number): number {
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((values[mid] ?? 0) <= x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** First index whose value is >= x. */
function lowerBound(values: readonly number[], x: number): number {
  let lo = 0;
  let hi = values.length;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if ((values[mid] ?? 0) < x) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}
