// A Thing's registration: what of its state is its own when it was removed and registered again
// with the same id (a replaced device, most often). The Log keeps everything; this is how it is read.
import type { HistoryStream } from "../store/index.js";

/**
 * The Thing's streams of its registration at the position they were read at: a property's,
 * action's or event's latest Change at or before the Thing's last `removed` is of an earlier
 * registration (often another device given the same id), and is left out, as a Thing registered
 * again starts with no state (a deleted and recreated object is a new object). The Thing's own
 * streams (its TD, its removals, its reachability: latestReachability) are kept. `streams` must
 * hold the Thing's `removed` stream (read it with the values' kinds: `withRemovals`); it is one
 * more stream of the same read, so the cost does not grow with the history.
 */
export function ofRegistration(streams: readonly HistoryStream[]): HistoryStream[] {
  let removed = 0;
  for (const s of streams)
    if (s.kind === "removed" && s.affordance === "") removed = Math.max(removed, s.latest.seq);
  return streams.filter((s) => s.affordance === "" || s.latest.seq > removed);
}

/** The kinds to read for `ofRegistration`: these, and the Thing's removals. */
export function withRemovals(kinds: readonly string[]): string[] {
  return kinds.includes("removed") ? [...kinds] : [...kinds, "removed"];
}
