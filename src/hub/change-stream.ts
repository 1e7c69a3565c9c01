// Following the Log: replay the committed Changes after a position, then continue live, with
// no gap and no duplicate between the two (used by SSE `Last-Event-ID`, later by WebSocket).
import type { Change } from "../core/index.js";
import type { Bus } from "../bus/index.js";
import type { Store } from "../store/index.js";

export interface FollowOptions {
  /** Replay Changes with `seq` greater than this; undefined means live only. */
  after?: number;
  /** Called between replayed pages, so a slow consumer paces the replay (e.g. socket drain). */
  pace?: () => Promise<void>;
  pageSize?: number;
  /**
   * The most live Changes held while the replay catches up (default 10,000). Past it they are
   * dropped and the replay reads them from the Log instead: a consumer that stalls mid-replay
   * holds no more than this, however long it stalls.
   */
  maxBuffered?: number;
}

const MAX_BUFFERED = 10_000;

export interface Follower {
  stop(): void;
  /** Resolves when the replay is done and the follower is live. */
  ready: Promise<void>;
  /** Live Changes held until the replay has caught up (at most `maxBuffered`). */
  readonly buffered: number;
}

export function followChanges(
  store: Store,
  bus: Bus,
  handler: (change: Change) => void,
  options: FollowOptions = {},
): Follower {
  let stopped = false;
  let last = options.after ?? Number.POSITIVE_INFINITY;
  let buffer: Change[] | undefined = options.after === undefined ? undefined : [];
  const maxBuffered = options.maxBuffered ?? MAX_BUFFERED;
  /** How many times the buffer was dropped: every Change dropped is committed, in the Log. */
  let drops = 0;
  const unsubscribe = bus.subscribe((change) => {
    if (stopped) return;
    if (buffer) {
      if (buffer.length >= maxBuffered) {
        buffer = [];
        drops++;
      }
      buffer.push(change);
    } else if (options.after === undefined || change.seq > last) {
      last = change.seq;
      handler(change);
    }
  });

  async function replay(): Promise<void> {
    if (options.after === undefined) return;
    const pageSize = options.pageSize ?? 500;
    for (;;) {
      // A Change dropped from the buffer while this page was read may have been committed after
      // the read: the replay then reads on until a short page began after the last drop.
      const dropsBefore = drops;
      const page = await store.changesAfter(last, pageSize);
      for (const change of page) {
        if (stopped) return;
        last = change.seq;
        handler(change);
      }
      if (page.length < pageSize && drops === dropsBefore) break;
      await options.pace?.();
      if (stopped) return;
    }
    const pending = buffer ?? [];
    buffer = undefined;
    for (const change of pending) {
      if (stopped) return;
      if (change.seq > last) {
        last = change.seq;
        handler(change);
      }
    }
  }

  const stop = () => {
    stopped = true;
    unsubscribe();
  };
  const ready = replay().catch((err: unknown) => {
    stop();
    throw err;
  });
  return {
    stop,
    ready,
    get buffered() {
      return buffer?.length ?? 0;
    },
  };
}
