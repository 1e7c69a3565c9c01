// The bound on how long a replay (an SSE stream from Last-Event-ID, a GraphQL subscription with
// `after`) waits for its client to take what was sent: one that takes nothing for streamStallMs is cut.

/**
 * `wait`, or `onStall` if it has not settled `ms` after the call (and then resolves). A timer runs
 * before the loop polls the sockets: when the thread was held up past `ms` (a long callback, the
 * process descheduled on a busy machine), a client that read everything meanwhile is only seen to
 * have done so (a drain, a write completed) once the loop polls. It polls once more before judging.
 */
export function withinMs(wait: Promise<void>, ms: number, onStall: () => void): Promise<void> {
  let settled = false;
  let timer: NodeJS.Timeout | undefined;
  const stall = new Promise<void>((resolve) => {
    timer = setTimeout(
      () =>
        setImmediate(() => {
          if (!settled) onStall();
          resolve();
        }),
      ms,
    );
  });
  const waited = wait.finally(() => {
    settled = true;
  });
  return Promise.race([waited, stall]).finally(() => clearTimeout(timer));
}

/**
 * Calls `cut` once `moved()` has stayed the same for `ms`, unless `done()` first: a close that its
 * client has `ms` to complete, for as long as it goes on taking what was sent before the close
 * frame. Judged as `withinMs` judges, after the loop polled once more: a timer that fires late
 * because the thread was held must not cut a client that read everything meanwhile, and whose
 * close frame only waited for this thread to write it.
 */
export function cutWhenStill(ms: number, moved: () => string, done: () => boolean, cut: () => void): void {
  let seen = moved();
  const look = (): void => {
    setTimeout(
      () =>
        setImmediate(() => {
          if (done()) return;
          const now = moved();
          if (now === seen) return cut();
          seen = now;
          look();
        }),
      ms,
    ).unref();
  };
  look();
}
