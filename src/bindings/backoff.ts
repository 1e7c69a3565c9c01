// Exponential backoff with "equal jitter" (AWS Architecture Blog, "Exponential Backoff And
// Jitter"): spread out, never zero. Shared by HTTP retries, SSE, long-poll and MQTT reconnects.

export interface BackoffOptions {
  /** The cap of the first delay, in ms. */
  readonly baseDelayMs: number;
  /** No delay exceeds this, in ms. */
  readonly maxDelayMs: number;
}

/**
 * The longest wait a Thing's `Retry-After` gets from observation (RFC 9110 §10.2.3): a Thing in
 * maintenance is not asked again before it said, but one hour later at most.
 */
export const MAX_RETRY_AFTER_MS = 3_600_000;

/** The delay after failed attempt `attempt` (from 0): uniform in [cap/2, cap], cap = min(max, base·2^attempt). */
export function backoffDelay(
  attempt: number,
  options: BackoffOptions,
  random: () => number = Math.random,
): number {
  const cap = Math.min(options.maxDelayMs, options.baseDelayMs * 2 ** Math.min(attempt, 30));
  return Math.max(1, Math.round(cap / 2 + (cap / 2) * random()));
}
