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
