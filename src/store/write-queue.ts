// The bounds of a store's write queue, the same for every backend: a write past them is refused at
// once (UnavailableError, with a Retry-After of 1 s) instead of waiting in memory.
import { UnavailableError } from "../core/index.js";

export interface QueueState {
  closed: boolean;
  /** The store's own writes (checkpoints, merges) are never refused for the bounds. */
  internal: boolean;
  /** Writes waiting now, and how many may. */
  waiting: number;
  maxWaiting: number;
  /** Changes waiting now, how many the new write brings, and how many may wait. */
  queuedChanges: number;
  changes: number;
  maxQueuedChanges: number;
}

/** Why the queue refuses a new write, or undefined when it takes it. */
export function queueRefusal(state: QueueState): UnavailableError | undefined {
  if (state.closed) return new UnavailableError("The store is closing");
  if (state.internal) return undefined;
  if (state.waiting >= state.maxWaiting) {
    return new UnavailableError("Too many writes are waiting; retry shortly", 1);
  }
  // One write larger than the bound is taken when nothing else waits: it could never be otherwise.
  if (
    state.changes > 0 &&
    state.queuedChanges > 0 &&
    state.queuedChanges + state.changes > state.maxQueuedChanges
  ) {
    return new UnavailableError(
      `${state.queuedChanges} Changes are waiting to be written (at most ${state.maxQueuedChanges}); retry shortly`,
      1,
    );
  }
  return undefined;
}
