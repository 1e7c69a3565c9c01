// For the tests of decisions taken from a timer (idle, quiet, timeout): hold this thread up as a
// busy hub or a process descheduled on a busy machine is, so that a timer fires late, after
// something arrived that the loop has not read yet; and what a raw socket was answered.
import type { Socket } from "node:net";

/** Blocks this thread for `ms`. */
export function holdThread(ms: number): void {
  const until = performance.now() + ms;
  while (performance.now() < until);
}

/** Everything the server sends on `socket` until it closes, and whether it was reset. */
export function answersOn(socket: Socket): Promise<{ text: string; reset: boolean }> {
  let text = "";
  let reset = false;
  socket.on("data", (chunk: Buffer) => (text += chunk.toString("latin1")));
  socket.on("error", () => (reset = true));
  return new Promise((resolve) => socket.once("close", () => resolve({ text, reset })));
}

/**
 * Blocks this thread for at least `ms`, then on until `count()` (a figure another thread moves,
 * such as the bytes an OffThreadSocket read) is at least `atLeast` and has not moved for
 * `stillMs` (the other side has caught up with all there was), or `maxMs` passed.
 */
export function holdThreadUntilCaughtUp(
  ms: number,
  count: () => number,
  atLeast: number,
  stillMs = 100,
  maxMs = 20_000,
): void {
  const start = performance.now();
  let last = count();
  let movedAt = start;
  for (;;) {
    const now = performance.now();
    const current = count();
    if (current !== last) {
      last = current;
      movedAt = now;
    }
    if (now - start >= maxMs) return;
    if (now - start >= ms && current >= atLeast && now - movedAt >= stillMs) return;
  }
}

/**
 * Lets `reader` (an OffThreadSocket, which reads on its own thread) read on, from a callback of
 * the check phase, and holds this thread there past `stallMs` until the reader has read at least
 * `taken` bytes and stopped: a stall timer of `stallMs` is then due before the loop polls the
 * socket again, as on a hub held up while a client that keeps up reads.
 */
export function readWhileHeld(
  reader: { resume(): void; readonly bytesRead: number },
  stallMs: number,
  taken: number,
): Promise<void> {
  return new Promise<void>((resolve) =>
    setImmediate(() => {
      reader.resume();
      holdThreadUntilCaughtUp(stallMs + 200, () => reader.bytesRead, taken);
      resolve();
    }),
  );
}
