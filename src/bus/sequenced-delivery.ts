// Delivery in seq order when several hub replicas append to one Log: a replica's own Changes come
// as it commits them, the others' as the NATS stream brings them, and any gap between them is read
// from the Store (a committed seq means every lower one is committed: the Log's head row is locked).
import type { Change } from "../core/index.js";

export interface SequencedDeliveryOptions {
  /** The committed Changes after `afterSeq`, oldest first, at most `limit` (the Store's changesAfter). */
  replay(afterSeq: number, limit: number): Promise<Change[]>;
  /** Hands one Change to the local subscribers: called in seq order, each seq once, none skipped. */
  deliver(change: Change): void;
  /** A read of the Store failed; the read is tried again after `retryMs`. */
  onError(error: unknown): void;
  /** Changes ahead of a gap held in memory; beyond it they are read from the Store instead. */
  maxHeld?: number;
  /** Changes per read of the Store. */
  pageSize?: number;
  retryMs?: number;
}

const DEFAULTS = { maxHeld: 10_000, pageSize: 500, retryMs: 1_000 } as const;

export class SequencedDelivery {
  /** The last seq delivered; undefined until `begin` (until then every Change passes straight on). */
  private delivered: number | undefined;
  /** The highest seq known to be committed. */
  private known = 0;
  /** Changes past a gap, by seq (at most maxHeld beyond `delivered`). */
  private readonly held = new Map<number, Change>();
  private filling = false;
  private retryTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private readonly maxHeld: number;
  private readonly pageSize: number;
  private readonly retryMs: number;

  constructor(private readonly options: SequencedDeliveryOptions) {
    this.maxHeld = options.maxHeld ?? DEFAULTS.maxHeld;
    this.pageSize = options.pageSize ?? DEFAULTS.pageSize;
    this.retryMs = options.retryMs ?? DEFAULTS.retryMs;
  }

  /**
   * From here on, every Change after `lastSeq` is delivered in order: what the hub's parts read
   * from the Store when they start ends at `lastSeq` or later (they skip a seq they hold already).
   */
  begin(lastSeq: number): void {
    if (this.delivered !== undefined) return;
    this.delivered = Math.max(lastSeq, this.known);
    this.known = this.delivered;
  }

  /** The last seq delivered (0 before `begin`). */
  get position(): number {
    return this.delivered ?? this.known;
  }

  /** A committed Change, this replica's or another's, in any order, maybe more than once. */
  accept(change: Change): void {
    if (this.closed) return;
    const delivered = this.delivered;
    if (delivered === undefined) {
      // Before `begin` (a hub that is not a replica, or one still starting): as published.
      this.known = Math.max(this.known, change.seq);
      this.options.deliver(change);
      return;
    }
    if (change.seq <= delivered) return;
    if (change.seq > this.known) this.known = change.seq;
    if (change.seq <= delivered + this.maxHeld) this.held.set(change.seq, change);
    this.drain();
  }

  /** The Log holds Changes up to `seq` (read from the Store's head): any not delivered are read. */
  committed(seq: number): void {
    if (this.closed || this.delivered === undefined || seq <= this.known) return;
    this.known = seq;
    this.drain();
  }

  close(): void {
    this.closed = true;
    clearTimeout(this.retryTimer);
    this.held.clear();
  }

  /** Delivers what follows without a gap, and reads a gap from the Store. */
  private drain(): void {
    let delivered = this.delivered;
    if (delivered === undefined) return;
    for (let next = this.held.get(delivered + 1); next !== undefined; next = this.held.get(delivered + 1)) {
      this.held.delete(next.seq);
      this.delivered = delivered = next.seq;
      this.options.deliver(next);
      if (this.closed) return;
    }
    if (this.known > delivered) this.fill();
  }

  private fill(): void {
    if (this.filling || this.retryTimer !== undefined || this.closed) return;
    this.filling = true;
    void this.readGap().then(
      () => {
        this.filling = false;
        this.drain();
      },
      (error: unknown) => {
        this.filling = false;
        if (this.closed) return;
        this.options.onError(error);
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.drain();
        }, this.retryMs);
        this.retryTimer.unref?.();
      },
    );
  }

  /** Reads the Changes between the last delivered and the next held (or the last known), a page at a time. */
  private async readGap(): Promise<void> {
    for (;;) {
      const after = this.delivered ?? 0;
      if (this.closed || this.known <= after) return;
      const page = await this.options.replay(after, Math.min(this.pageSize, this.known - after));
      if (this.closed) return;
      for (const change of page) {
        if (change.seq > (this.delivered ?? 0) && !this.held.has(change.seq))
          this.held.set(change.seq, change);
      }
      // Delivered as it goes: a page ends where the next one begins.
      const before = this.delivered ?? 0;
      for (
        let next = this.held.get(before + 1);
        next !== undefined;
        next = this.held.get((this.delivered ?? 0) + 1)
      ) {
        this.held.delete(next.seq);
        this.delivered = next.seq;
        this.options.deliver(next);
        if (this.closed) return;
      }
      // The Store has nothing past what was delivered (a head read ahead of its rows cannot be):
      // stop rather than spin; the next Change or head read starts again.
      if (page.length === 0 || (this.delivered ?? 0) === before) {
        if (page.length === 0) this.known = this.delivered ?? 0;
        return;
      }
    }
  }
}
