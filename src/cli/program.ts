// The `things` command's parts put together: every command, the global --url and --token, the
// examples at the end of each --help, and usage errors as one line. main.ts runs it.
import { Command, Option } from "commander";
import { HUB_VERSION } from "../hub/version.js";
import { registerBackupCommand } from "./backup-command.js";
import { registerServeCommands } from "./serve-commands.js";
import { registerSimCommands } from "./sim-commands.js";
import { DEFAULT_HUB_URL, registerClientCommands } from "./client-commands.js";
import { registerDiscoverCommand } from "./discover-command.js";
import { registerMqttCredentialsCommand } from "./mqtt-credentials-command.js";
import { registerHistoryCommands } from "./history-commands.js";
import { registerLogCommands } from "./log-commands.js";
import { registerWhyCommand } from "./why-command.js";
import { registerReleaseCommands } from "./release-commands.js";
import { registerGraphCommands } from "./graph-commands.js";
import { registerInteractionCommands } from "./interaction-commands.js";
import { registerQueryCommands } from "./query-commands.js";
import { registerRolloutCommands } from "./rollout-commands.js";
import { addCommandExamples } from "./command-examples.js";

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
  registerMqttCredentialsCommand(program);
  registerInteractionCommands(program);
  registerHistoryCommands(program);
  registerLogCommands(program);
  registerWhyCommand(program);
  registerQueryCommands(program);
  registerRolloutCommands(program);
  registerReleaseCommands(program);
  registerGraphCommands(program);
  addCommandExamples(program);
  return program;
}
