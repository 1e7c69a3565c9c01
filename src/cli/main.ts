// The `things` command: serve a hub, or talk to one over HTTP.
import { CommanderError } from "commander";
import { HyperthingsError } from "../core/index.js";
import { CliError } from "./cli-error.js";
import { buildProgram } from "./program.js";
import { visibleControls } from "./terminal-text.js";

/** One line on stderr and a non-zero exit code for every failure. */
function reportAndExit(err: unknown): never {
  if (err instanceof CommanderError) {
    process.exit(err.exitCode === 0 ? 0 : 2);
  }
  const message =
    err instanceof HyperthingsError || err instanceof CliError
      ? err.message
      : err instanceof Error
        ? `${err.message}`
        : String(err);
  // A device's answer in the message is shown, never obeyed by the terminal (terminal-text.ts).
  process.stderr.write(`things: ${visibleControls(message.replace(/\s*\n\s*/g, " "))}\n`);
  process.exit(err instanceof CliError ? err.exitCode : 1);
}

// A reader that stops early (`things watch | head -3`) closes the pipe: stop quietly, as other
// command-line tools do, instead of dying on an unhandled EPIPE with a stack trace.
process.stdout.on("error", (err: NodeJS.ErrnoException) => {
  if (err.code === "EPIPE") process.exit(0);
  reportAndExit(err);
});

try {
  await buildProgram().parseAsync(process.argv);
} catch (err) {
  reportAndExit(err);
}
