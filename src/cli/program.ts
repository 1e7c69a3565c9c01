// The `things` command's parts put together: every command, the global --url and --token, the
// examples at the end of each --help, and usage errors as one line. main.ts runs it.
import { Command, Option } from "commander";
import { closestName } from "../hub/config.js";
import { HUB_VERSION } from "../hub/version.js";
import { CliError } from "./cli-error.js";
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
import { guardTerminal } from "./terminal-text.js";

/**
 * Words of other tools (Terraform, kubectl, Home Assistant, docker) that a newcomer types, and the
 * commands that do it here: commander's own guess goes by spelling (`logs`: "Did you mean ls?").
 */
export const OTHER_TOOLS_WORDS: Readonly<Record<string, string>> = {
  apply:
    "to apply desired state, build a release and roll it out: things build PATH, things plan RELEASE, things rollout RELEASE",
  rollback: "rolling back is rolling out an earlier release: things rollout RELEASE",
  undo: "rolling back is rolling out an earlier release: things rollout RELEASE",
  validate: "things build PATH --dry-run checks manifests; things add checks each TD as it registers it",
  create: "things add FILE registers a Thing Description",
  register: "things add FILE registers a Thing Description",
  import: "things add FILE registers a Thing Description",
  delete: "things rm ID",
  remove: "things rm ID",
  destroy: "things rm ID",
  describe: "things get ID prints a Thing Description; things state ID its values",
  show: "things get ID prints a Thing Description; things state ID its values",
  inspect: "things get ID prints a Thing Description; things state ID its values",
  list: "things ls",
  ps: "things ls",
  logs: "things history ID (one Thing's Changes), things changes (every Thing's), things watch (live)",
  log: "things history ID (one Thing's Changes), things changes (every Thing's), things watch (live)",
  events: "things history ID (one Thing's Changes), things changes (every Thing's), things watch (live)",
  status: "things state ID (a Thing's values), things rollouts (rollouts), things drift (what differs)",
  set: "things write ID PROPERTY VALUE",
  call: "things invoke ID ACTION [INPUT]",
  exec: "things invoke ID ACTION [INPUT]",
};

/** Commander's usage errors, like every other failure, as one line. */
function writeUsageError(text: string, write: (text: string) => void): void {
  let line = text
    .replace(/^error: /, "")
    .replace(/\s*\n\s*/g, " ")
    .trim();
  const unknown = /^unknown command '([^']*)'/.exec(line);
  const hint = unknown === null ? undefined : OTHER_TOOLS_WORDS[unknown[1]?.toLowerCase() ?? ""];
  if (unknown !== null && hint !== undefined) line = `${unknown[0]}: ${hint}`;
  write(`things: ${line}\n`);
}

/** Commands whose output is the hub's (or the simulators') own log lines, coloured on a terminal. */
const RUNS_A_HUB: ReadonlySet<string> = new Set(["serve", "demo", "sim"]);

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
  // The commands that talk to a hub print what Things and devices said; those that run one print
  // its own log, in colour.
  program.hook("preAction", (_program, action) => {
    let command = action;
    while (command.parent !== null && command.parent !== program) command = command.parent;
    if (!RUNS_A_HUB.has(command.name())) guardTerminal(process.stdout);
  });
  addHelpCommand(program);
  return program;
}

/**
 * `things help [command…]`: the command's help on stdout, as `things COMMAND --help` prints it.
 * Commander's own printed the whole help with exit 2 for a command it does not have, without
 * saying so; a name it does not have is said in one line, with the nearest command.
 */
function addHelpCommand(program: Command): void {
  program.helpCommand(false);
  program
    .command("help")
    .description("display help for command")
    .argument("[command...]", "the command (a group's subcommand after it: credentials set)")
    .action((words: string[]) => {
      let command = program;
      const path: string[] = [];
      for (const word of words) {
        path.push(word);
        const sub = command.commands.find((c) => c.name() === word || c.aliases().includes(word));
        if (sub === undefined) {
          const names = command.commands.map((c) => c.name()).filter((name) => name !== "help");
          const hint = command === program ? OTHER_TOOLS_WORDS[word.toLowerCase()] : undefined;
          const meant = closestName(word, names);
          const said =
            hint !== undefined
              ? `: ${hint}`
              : meant === undefined
                ? ""
                : ` (did you mean ${[...path.slice(0, -1), meant].join(" ")}?)`;
          throw new CliError(`unknown command "${path.join(" ")}"${said}`, 2);
        }
        command = sub;
      }
      command.outputHelp();
    });
}
