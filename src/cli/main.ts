// The `things` command: serve a hub, or talk to one over HTTP.
import { Command, CommanderError, Option } from "commander";
import { HyperthingsError } from "../core/index.js";
import { HUB_VERSION } from "../hub/version.js";
import { registerBackupCommand } from "./backup-command.js";
import { registerServeCommands } from "./serve-commands.js";
import { registerSimCommands } from "./sim-commands.js";
import { DEFAULT_HUB_URL, registerClientCommands } from "./client-commands.js";
import { registerDiscoverCommand } from "./discover-command.js";
import { registerHistoryCommands } from "./history-commands.js";
import { registerLogCommands } from "./log-commands.js";
import { registerReleaseCommands } from "./release-commands.js";
import { registerGraphCommands } from "./graph-commands.js";
import { registerInteractionCommands } from "./interaction-commands.js";
import { registerQueryCommands } from "./query-commands.js";
import { registerRolloutCommands } from "./rollout-commands.js";
import { CliError } from "./cli-error.js";

/** Commander's usage errors, like every other failure, as one line. */
function writeUsageError(text: string, write: (text: string) => void): void {
  const line = text
    .replace(/^error: /, "")
    .replace(/\s*\n\s*/g, " ")
    .trim();
  write(`things: ${line}\n`);
}

export function buildProgram(): Command {
  const program = new Command("things")
    .description("Hyperthings: every Thing in one graph, every change recorded")
    .version(HUB_VERSION)
    .showSuggestionAfterError()
    .configureOutput({ outputError: writeUsageError })
    .exitOverride();
  program.addOption(
    new Option("--url <url>", "the hub to talk to").env("HYPERTHINGS_URL").default(DEFAULT_HUB_URL),
  );
  program.addOption(new Option("--token <token>", "bearer token for the hub").env("HYPERTHINGS_TOKEN"));
  registerServeCommands(program);
  registerBackupCommand(program);
  registerSimCommands(program);
  registerClientCommands(program);
  registerDiscoverCommand(program);
  registerInteractionCommands(program);
  registerHistoryCommands(program);
  registerLogCommands(program);
  registerQueryCommands(program);
  registerRolloutCommands(program);
  registerReleaseCommands(program);
  registerGraphCommands(program);
  return program;
}

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
  process.stderr.write(`things: ${message.replace(/\s*\n\s*/g, " ")}\n`);
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
