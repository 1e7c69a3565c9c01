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

export interface MergeCycle {
  readonly upTo: number;
  /**
   * The first entries of the cycle still in the tail, in index order, or [] when the cycle is
   * done. A chunk is handed out again until `remove` takes its entries out of the tail, so a chunk
   * whose transaction did not commit (and is run again) writes the same entries.
   */
  nextChunk(limit: number): TailEntry[];
}

/** Seqs per stream, ascending (appends arrive in seq order). */
export class HistoryTail {
  private readonly streams = new Map<string, number[]>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  add(key: string, seq: number): void {
    let seqs = this.streams.get(key);
    if (!seqs) {
      seqs = [];
      this.streams.set(key, seqs);
    }
    seqs.push(seq);
    this.count++;
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
   * A merge of every entry with `seq <= upTo`, handed out in index order (stream key, then seq)
   * so that each chunk covers one contiguous range of the index and writes each page once.
   */
  beginMerge(upTo: number): MergeCycle {
    const keys = [...this.streams.keys()].sort();
    // Streams before `position` have nothing left at or below `upTo`, for good: the tail only
    // gains newer seqs. No other cursor: what a chunk took stays in the tail until it is removed.
    let position = 0;
    const pendingIn = (key: string): number => upperBound(this.streams.get(key) ?? [], upTo);
    return {
      upTo,
      nextChunk: (limit) => {
        while (position < keys.length && pendingIn(keys[position] ?? "") === 0) position++;
        const out: TailEntry[] = [];
        for (let p = position; p < keys.length && out.length < limit; p++) {
          const key = keys[p] ?? "";
          const seqs = this.streams.get(key) ?? [];
          const end = upperBound(seqs, upTo);
          for (let i = 0; i < end && out.length < limit; i++) out.push({ key, seq: seqs[i] ?? 0 });
        }
        return out;
      },
    };
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
