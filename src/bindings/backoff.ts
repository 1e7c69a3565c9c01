// Exponential backoff with "equal jitter" (AWS Architecture Blog, "Exponential Backoff And
// Jitter"): spread out, never zero. Shared by HTTP retries, SSE, long-poll and MQTT reconnects.

export interface BackoffOptions {
  /** The cap of the first delay, in ms. */
  readonly baseDelayMs: number;
  /** No delay exceeds this, in ms. */
  readonly maxDelayMs: number;
}

/** The delay after failed attempt `attempt` (from 0): uniform in [cap/2, cap], cap = min(max, base·2^attempt). */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  const cap = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** Math.min(attempt, 30));
  return Math.max(1, Math.round(cap / 2 + (cap / 2) * random()));
}
