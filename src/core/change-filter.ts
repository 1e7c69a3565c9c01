// The change feed's filter as one predicate, shared by every live surface that filters Changes
// (the SSE feed /changes/stream, GraphQL's `changes` subscription): the same filter matches the
// same Changes whichever way a client asks.
import type { Change } from "./change.js";

/** The feed's filters; each one given must match. */
export interface ChangeMatch {
  thing?: string | undefined;
  /** A property, action or event name: only that affordance's Changes. */
  affordance?: string | undefined;
  /** Any of these kinds; an empty list matches no Change. */
  kinds?: readonly string[] | undefined;
  actor?: string | undefined;
  release?: string | undefined;
  /** The cause's correlation: the Changes of one command, one rollout step, one request. */
  correlation?: string | undefined;
  /**
   * The Thing's semantic type as of each Change (the hub's TypeFilter): it follows the Log's
   * descriptions, so it must be asked of every Change of a stream, in Log order — first, before
   * the other filters can skip a Change.
   */
  type?: { accepts(change: Change): boolean } | undefined;
}

/** Whether `change` is one of the feed's: `filter.type`, if any, asked of every Change, in Log order. */
export function changeMatches(filter: ChangeMatch, change: Change): boolean {
  if (filter.type && !filter.type.accepts(change)) return false;
  if (filter.thing !== undefined && change.thing !== filter.thing) return false;
  if (filter.affordance !== undefined && change.affordance !== filter.affordance) return false;
  if (filter.kinds !== undefined && !filter.kinds.includes(change.kind)) return false;
  if (filter.actor !== undefined && change.cause.actor !== filter.actor) return false;
  if (filter.correlation !== undefined && change.cause.correlation !== filter.correlation) return false;
  return filter.release === undefined || change.cause.release === filter.release;
}
