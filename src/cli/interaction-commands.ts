// `things read|write|invoke|observe`: a Thing's properties, actions and live values through the
// hub; `things credentials set|rm|ls`: the credentials the hub uses towards a Thing.
import { InvalidArgumentError, type Command } from "commander";
import {
  HubError,
  InteractionClient,
  type ActionResult,
  type CredentialsInput,
  type WatchStatus,
} from "../client/index.js";
import { changeTime, deviceSays, inexactIntegerError, parseJsonStrict, type Change } from "../core/index.js";
import { CliError } from "./cli-error.js";
import { connectionHelpWith, connectionOf, talking } from "./client-commands.js";
import { compactValue, localTime } from "./history-commands.js";

const EXIT_CODES =
  "0 done, 1 failed (the hub refused, the Thing failed or is unreachable, the hub is unreachable), 2 usage";
/** Asking an asynchronous action's status while `invoke` waits: this often, for at most this long. */
const ACTION_POLL_MS = 500;
const ACTION_WAIT_MS = 10 * 60_000;
/** The kinds `observe` shows: values, events, failures, and the Thing going away and back. */
const OBSERVED_KINDS = ["reported", "emitted", "failed", "unreachable", "reachable"];

// ---------------------------------------------------------------------------------------------
// Connecting (the token and hub as client-commands.ts resolves them)

function clientOf(command: Command): InteractionClient {
  const { url, token } = connectionOf(command);
  try {
    return new InteractionClient({ url, token });
  } catch (err) {
    throw new CliError((err as Error).message, 2);
  }
}

/**
 * A Thing's failure as the hub reports it (a 502/504 problem document with the device's answer)
 * reads better with that answer; everything else as `talking` says it.
 */
function interacting<Args extends unknown[]>(action: (...args: Args) => Promise<void>) {
  return talking(async (...args: Args): Promise<void> => {
    try {
      await action(...args);
    } catch (err) {
      if (err instanceof HubError && (err.status === 502 || err.status === 504)) {
        // The device's own words say why (a 409 "not at its setpoint yet"), when it gave any.
        const said = typeof err.device?.body === "string" ? deviceSays(err.device.body) : "";
        throw new CliError(
          `the Thing failed: ${err.message}${said === "" ? "" : ` (the device said: ${said})`}`,
        );
      }
      throw err;
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Values on the command line

/** VALUE as JSON, or as a plain string when it is not JSON (`on`, `21 °C`). */
export function parseValueArgument(text: string): unknown {
  let value: unknown;
  try {
    value = parseJsonStrict(text);
  } catch (err) {
    // Something that looks like JSON but is not is a mistake, not a string: say where it breaks,
    // and how JSON survives the shell (the shell's quotes around it, JSON's inside).
    if (/^\s*[[{"]/.test(text)) {
      const where = (err as Error).message.replace(/^Malformed JSON /, "");
      const how = text.trimStart().startsWith('"')
        ? "a plain string needs no double quotes"
        : `put it in single quotes, its names and strings in double quotes: '{"size":"double"}'`;
      throw new CliError(`${text} is not valid JSON (${where}): ${how}`, 2);
    }
    return text;
  }
  // An integer a 64-bit float would round is said, not sent rounded (nor as a string).
  const inexact = inexactIntegerError(text);
  if (inexact !== undefined) throw new CliError(`${text}: ${inexact.message}`, 2);
  return value;
}

async function readStdinLine(): Promise<string> {
  return (await readStdinLines(1))[0] ?? "";
}

/** The first `count` lines of standard input, trimmed. */
async function readStdinLines(count: number): Promise<string[]> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  const lines = Buffer.concat(chunks).toString("utf8").split(/\r?\n/);
  return lines.slice(0, count).map((line) => line.trim());
}

// ---------------------------------------------------------------------------------------------
// invoke

async function waitForAction(client: InteractionClient, href: string): Promise<unknown> {
  const deadline = Date.now() + ACTION_WAIT_MS;
  for (;;) {
    const status = await client.actionStatus(href);
    if (status.status === "completed") return status.output;
    if (status.status === "failed") {
      throw new CliError(`the action failed: ${JSON.stringify(status.error ?? null)}`);
    }
    if (Date.now() > deadline)
      throw new CliError(`the action still runs after ${ACTION_WAIT_MS / 60_000} min: ${href}`);
    await new Promise((resolve) => setTimeout(resolve, ACTION_POLL_MS));
  }
}

/** `--var name=value`, repeatable: the URI variables an affordance declares, by name. */
function collectVariable(text: string, previous: Record<string, string> = {}): Record<string, string> {
  const at = text.indexOf("=");
  if (at <= 0) throw new InvalidArgumentError(`expected name=value, such as unit=F, not "${text}"`);
  const name = text.slice(0, at);
  if (Object.hasOwn(previous, name)) throw new InvalidArgumentError(`"${name}" is given more than once`);
  return { ...previous, [name]: text.slice(at + 1) };
}

interface VarOptions {
  var?: Record<string, string>;
}

const VAR_FLAGS = "--var <name=value>";
const VAR_HELP = "a URI variable the affordance declares (TD uriVariables), as name=value; repeatable";

async function invoke(
  id: string,
  action: string,
  input: string | undefined,
  options: { wait: boolean; var?: Record<string, string> },
  command: Command,
): Promise<void> {
  const client = clientOf(command);
  const result: ActionResult = await client.invokeAction(
    id,
    action,
    input === undefined ? undefined : parseValueArgument(input),
    options.var,
  );
  let output: unknown;
  if (result.status === "running") {
    if (!options.wait) {
      process.stdout.write(`${result.href}\n`);
      return;
    }
    process.stderr.write(`the action runs on; waiting for it (${result.href})\n`);
    output = await waitForAction(client, result.href);
  } else {
    output = result.output;
  }
  if (output !== undefined) process.stdout.write(`${JSON.stringify(output)}\n`);
}

// ---------------------------------------------------------------------------------------------
// observe

function observedLine(time: string, affordance: string | undefined, kind: string, value: unknown): string {
  return [localTime(time), affordance ?? "-", kind, compactValue(value, 120) || "-"].join("  ");
}

/**
 * `things observe ID AFFORDANCE --var name=value`: the Thing's values for those URI variables,
 * asked of it through the hub for this command (nothing recorded), until Ctrl-C; exits 1 when the
 * Thing ends the subscription.
 */
async function observeWithVariables(
  client: InteractionClient,
  id: string,
  td: { properties?: object; events?: object },
  name: string,
  options: { json?: boolean; var: Record<string, string> },
): Promise<void> {
  const kind = Object.hasOwn(td.events ?? {}, name) ? "event" : "property";
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    for await (const item of client.relay(id, kind, name, options.var, stop.signal)) {
      const time = new Date().toISOString();
      if ("error" in item) {
        process.stderr.write(`the Thing: ${item.error.message}\n`);
        continue;
      }
      const shown = kind === "event" ? "emitted" : "reported";
      process.stdout.write(
        `${options.json ? JSON.stringify({ thing: id, affordance: name, kind: shown, time, value: item.value, uriVariables: options.var }) : observedLine(time, name, shown, item.value)}\n`,
      );
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
  if (!stop.signal.aborted) throw new CliError(`the hub ended the stream of ${name}: the Thing ended it`);
}

async function observe(
  id: string,
  property: string | undefined,
  options: { json?: boolean; var?: Record<string, string> },
  command: Command,
): Promise<void> {
  const client = clientOf(command);
  if (options.var !== undefined && property === undefined) {
    throw new CliError(
      "--var needs the property or event it is for: things observe ID NAME --var name=value",
      2,
    );
  }
  const print = (change: Change) =>
    process.stdout.write(
      `${options.json ? JSON.stringify(change) : observedLine(changeTime(change), change.affordance, change.kind, change.value)}\n`,
    );
  // The values now, then every Change after them: the state's seq is where the stream resumes.
  const state = await client.stateAt(id);
  if (property !== undefined) {
    const td = state.td as { properties?: object; events?: object };
    if (!Object.hasOwn(td.properties ?? {}, property) && !Object.hasOwn(td.events ?? {}, property)) {
      throw new CliError(`${id} has no property or event "${property}"`);
    }
    if (options.var !== undefined) {
      await observeWithVariables(client, id, td, property, { ...options, var: options.var });
      return;
    }
  }

  const now = Object.entries(state.properties).filter(
    ([name]) => property === undefined || name === property,
  );
  if (options.json) {
    // Each value now as the Change that reported it, in the Log's shape: the one shape of every
    // line that follows, of `things watch --json` and of GET /changes/{seq}.
    for (const change of await Promise.all(now.map(([, current]) => client.change(current.seq))))
      print(change);
  } else {
    for (const [name, current] of now) {
      process.stdout.write(`${observedLine(current.time, name, "reported", current.value)}\n`);
    }
  }
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  try {
    const changes = client.watch(
      { thing: id, kind: OBSERVED_KINDS },
      {
        lastEventId: state.seq,
        signal: stop.signal,
        onStatus: (status: WatchStatus) => {
          if (status.state === "retrying") {
            process.stderr.write(`connection lost (${status.reason ?? "?"}); reconnecting\n`);
          }
        },
      },
    );
    for await (const change of changes) {
      if (property !== undefined && change.affordance !== undefined && change.affordance !== property)
        continue;
      print(change);
    }
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
  }
}

// ---------------------------------------------------------------------------------------------
// credentials

interface CredentialsOptions {
  schemeName?: string;
  username?: string;
  password?: string;
  bearer?: string;
  key?: string;
  authPassphrase?: string;
  privPassphrase?: string;
}

async function setCredentials(id: string, options: CredentialsOptions, command: Command): Promise<void> {
  const usm = options.authPassphrase !== undefined || options.privPassphrase !== undefined;
  const fromStdin = [
    options.password,
    options.bearer,
    options.key,
    options.authPassphrase,
    options.privPassphrase,
  ].filter((v) => v === "-").length;
  // Both USM passphrases may come from stdin: the first line, then the second.
  const bothPassphrases = options.authPassphrase === "-" && options.privPassphrase === "-";
  if (fromStdin > 1 && !bothPassphrases) throw new CliError("only one secret can come from stdin (-)", 2);
  // An empty secret is a slip (an unset shell variable, nothing piped in): say so here, in the
  // words of the flag, rather than pass on the hub's schema error about a body the user never saw.
  const secret = async (flag: string, noun: string, value: string | undefined): Promise<string> => {
    const text = value === "-" ? await readStdinLine() : (value ?? "");
    if (text !== "") return text;
    throw new CliError(
      value === "-"
        ? `${flag} -: standard input held no ${noun}; pipe it in (printf '%s\\n' "$SECRET" | things credentials set …)`
        : `${flag} must not be empty`,
      2,
    );
  };
  const schemeName = options.schemeName === undefined ? {} : { schemeName: options.schemeName };
  const others = [options.username, options.password, options.bearer, options.key];
  let input: CredentialsInput;
  if (usm && others.every((v) => v === undefined)) {
    if (options.authPassphrase === undefined) {
      throw new CliError(
        "--priv-passphrase needs --auth-passphrase: SNMPv3 encrypts only authenticated messages",
        2,
      );
    }
    let lines: string[] = [];
    if (bothPassphrases) {
      lines = await readStdinLines(2);
      if (lines.length < 2 || lines[1] === "") {
        throw new CliError(
          "--auth-passphrase - --priv-passphrase -: standard input needs two lines, the auth passphrase then the priv passphrase",
          2,
        );
      }
    }
    const passphrase = async (flag: string, value: string, line: string | undefined) =>
      line ?? (await secret(flag, "passphrase", value));
    input = {
      ...schemeName,
      authPassphrase: await passphrase("--auth-passphrase", options.authPassphrase, lines[0]),
      ...(options.privPassphrase === undefined
        ? {}
        : { privPassphrase: await passphrase("--priv-passphrase", options.privPassphrase, lines[1]) }),
    };
    if (input.authPassphrase === "")
      throw new CliError("--auth-passphrase -: standard input held no passphrase", 2);
  } else if (options.bearer !== undefined && options.key === undefined && options.username === undefined) {
    input = { ...schemeName, token: await secret("--bearer", "token", options.bearer) };
  } else if (options.key !== undefined && options.bearer === undefined && options.username === undefined) {
    input = { ...schemeName, key: await secret("--key", "key", options.key) };
  } else if (
    options.username !== undefined &&
    options.password !== undefined &&
    options.bearer === undefined &&
    options.key === undefined
  ) {
    if (options.username === "") throw new CliError("--username must not be empty", 2);
    input = {
      ...schemeName,
      username: options.username,
      password: await secret("--password", "password", options.password),
    };
  } else {
    // --token is the hub's token (a global option): a Thing's bearer token is --bearer.
    const hubToken = command.optsWithGlobals<{ token?: string }>().token;
    const hint =
      hubToken !== undefined && command.parent?.parent?.getOptionValueSource("token") === "cli"
        ? " (--token is the hub's own token; a Thing's bearer token is --bearer)"
        : "";
    throw new CliError(
      `give one secret: --username and --password, --bearer, --key, or --auth-passphrase [--priv-passphrase]${hint}`,
      2,
    );
  }
  const { schemeName: name, origins } = await clientOf(command).setCredentials(id, input);
  const to =
    origins.length > 0 ? `, sent only to ${origins.join(", ")}` : ", which none of its forms use yet";
  process.stdout.write(`credentials set for security "${name}" of ${id}${to}\n`);
}

// ---------------------------------------------------------------------------------------------
// The commands

export function registerInteractionCommands(program: Command): void {
  const help = () => connectionHelpWith(EXIT_CODES);

  program
    .command("read")
    .description("read a property from a Thing through the hub (recorded as a Change); prints it as JSON")
    .argument("<id>", "the Thing's id")
    .argument("<property>", "the property's name")
    .option(VAR_FLAGS, VAR_HELP, collectVariable)
    .addHelpText("after", help)
    .action(
      interacting(async (id: string, property: string, options: VarOptions, command: Command) => {
        const value = await clientOf(command).readProperty(id, property, options.var);
        if (value !== undefined) process.stdout.write(`${JSON.stringify(value)}\n`);
      }),
    );

  program
    .command("write")
    .description("write a property of a Thing through the hub, checked against its schema first")
    .argument("<id>", "the Thing's id")
    .argument("<property>", "the property's name")
    .argument("<value>", "the value as JSON (42, true, '{\"on\":1}'), or a plain string")
    .option(VAR_FLAGS, VAR_HELP, collectVariable)
    .addHelpText("after", help)
    .action(
      interacting(
        async (id: string, property: string, value: string, options: VarOptions, command: Command) => {
          const parsed = parseValueArgument(value);
          try {
            await clientOf(command).writeProperty(id, property, parsed, options.var);
          } catch (err) {
            // `setpoint abc`: what is not JSON went as a string; say so beside the schema's refusal.
            if (err instanceof HubError && err.status === 400 && typeof parsed === "string")
              throw new CliError(
                `${err.message} (${value} is not JSON, so it was sent as the string "${value}")`,
              );
            throw err;
          }
        },
      ),
    );

  program
    .command("invoke")
    .description("invoke an action of a Thing through the hub; prints its output as JSON")
    .argument("<id>", "the Thing's id")
    .argument("<action>", "the action's name")
    .argument("[input]", "the input as JSON, or a plain string")
    .option("--no-wait", "for an asynchronous action, print its status URL instead of waiting for its end")
    .option(VAR_FLAGS, VAR_HELP, collectVariable)
    .addHelpText("after", help)
    .action(
      interacting(
        async (
          id: string,
          action: string,
          input: string | undefined,
          options: { wait: boolean; var?: Record<string, string> },
          command: Command,
        ) => invoke(id, action, input, options, command),
      ),
    );

  program
    .command("observe")
    .description(
      "a Thing's values as they change, until Ctrl-C: its properties now, then every value, event and outage",
    )
    .argument("<id>", "the Thing's id")
    .argument("[property]", "only this property (or event)")
    .option(
      "--json",
      "one Change per line as JSON (NDJSON), as `things watch --json` prints it: the values now first, as the Changes that reported them",
    )
    .option(
      VAR_FLAGS,
      `${VAR_HELP}: the Thing is asked for this command's values, which are not recorded`,
      collectVariable,
    )
    .addHelpText("after", help)
    .action(
      interacting(
        async (
          id: string,
          property: string | undefined,
          options: { json?: boolean; var?: Record<string, string> },
          command: Command,
        ) => observe(id, property, options, command),
      ),
    );

  const credentials = program
    .command("credentials")
    .description("the credentials the hub uses towards a Thing (kept encrypted by the hub, never shown)");

  credentials
    .command("set")
    .description("set the credentials for one of the Thing's security definitions")
    .argument("<id>", "the Thing's id")
    .option(
      "--scheme-name <name>",
      "the security definition (default: the only one taking this kind of secret)",
    )
    .option("--username <user>", "basic: the user name")
    .option("--password <password>", "basic: the password (- reads it from stdin)")
    .option("--bearer <token>", "bearer: the token (- reads it from stdin); --token is the hub's")
    .option("--key <key>", "apikey: the key; snmp:community: the community (- reads it from stdin)")
    .option(
      "--auth-passphrase <passphrase>",
      "snmp:usm: the user's auth passphrase, 8 or more characters (- reads it from stdin)",
    )
    .option(
      "--priv-passphrase <passphrase>",
      "snmp:usm at authPriv: the priv passphrase (- reads it from stdin; both -: two lines, auth first)",
    )
    .addHelpText("after", help)
    .action(
      talking(async (id: string, options: CredentialsOptions, command: Command) =>
        setCredentials(id, options, command),
      ),
    );

  credentials
    .command("rm")
    .description("forget the credentials of one security definition, or all of the Thing's")
    .argument("<id>", "the Thing's id")
    .option("--scheme-name <name>", "only this security definition")
    .addHelpText("after", help)
    .action(
      talking(async (id: string, options: { schemeName?: string }, command: Command) => {
        await clientOf(command).removeCredentials(id, options.schemeName);
        process.stdout.write(`credentials removed from ${id}\n`);
      }),
    );

  credentials
    .command("ls")
    .description("the security definitions of a Thing the hub holds credentials for")
    .argument("<id>", "the Thing's id")
    .addHelpText("after", help)
    .action(
      talking(async (id: string, _options: unknown, command: Command) => {
        // One line per definition: its name, a tab, the origins its secret is sent to.
        const { names, origins } = await clientOf(command).credentialNames(id);
        for (const name of names) process.stdout.write(`${name}\t${(origins[name] ?? []).join(" ")}\n`);
      }),
    );
}
