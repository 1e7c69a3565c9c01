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
}

export interface Follower {
  stop(): void;
  /** Resolves when the replay is done and the follower is live. */
  ready: Promise<void>;
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
  const unsubscribe = bus.subscribe((change) => {
    if (stopped) return;
    if (buffer) buffer.push(change);
    else if (options.after === undefined || change.seq > last) {
      last = change.seq;
      handler(change);
    }
  });

  async function replay(): Promise<void> {
    if (options.after === undefined) return;
    const pageSize = options.pageSize ?? 500;
    for (;;) {
      const page = await store.changesAfter(last, pageSize);
      for (const change of page) {
        if (stopped) return;
        last = change.seq;
        handler(change);
      }
      if (page.length < pageSize) break;
      await options.pace?.();
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
  return { stop, ready };
}
