// Ctrl-C and SIGTERM for a command that runs for a while: one line, and the exit code a shell
// gives a process the signal ended (verify, export, checkpoint, prove, add, rollout, backup).

/**
 * Until the function it returns is called, Ctrl-C (SIGINT) or a service manager's SIGTERM ends
 * the command as a shell reports a process the signal ended (exit 130 or 143), with one line
 * instead of none: after `cleanUp`, which removes what the command made, or tells what it leaves
 * behind (a batch sent, a rollout going on at the hub), and says so (`; …`).
 */
export function exitOnSignal(what: string, cleanUp: () => string = () => ""): () => void {
  const interrupted = (signal: NodeJS.Signals) => {
    const removed = cleanUp();
    // A progress bar may be on the line: the message starts a clean one.
    if (process.stderr.isTTY) process.stderr.write("\r\x1b[K");
    process.stderr.write(`things: ${what} interrupted (${signal})${removed}\n`);
    process.exit(signal === "SIGINT" ? 130 : 143);
  };
  process.once("SIGINT", interrupted);
  process.once("SIGTERM", interrupted);
  return () => {
    process.off("SIGINT", interrupted);
    process.off("SIGTERM", interrupted);
  };
}
