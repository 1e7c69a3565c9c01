// `things add|get|ls|rm|search`: the directory commands, which talk to a hub over HTTP.
import type { Command } from "commander";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { join } from "node:path";
import { setFlagsFromString } from "node:v8";
import { HubClient, HubError, type BatchResult, type ProblemLocation } from "../client/index.js";
import {
  ValidationError,
  canonicalJson,
  expiryOf,
  iriProblem,
  splitRegistration,
  validateThingDescription,
  parseExactJson,
  parseTimeExpression,
  type RegisteredThingDescription,
  type ThingDescription,
} from "../core/index.js";
// Straight to the two modules it needs: the hub part as a whole is for the server.
import { ADMIN_TOKEN_FILE } from "../hub/admin-token.js";
import { MAX_BATCH_THINGS } from "../hub/directory.js";
import { closestName, configDefaults, configEnvironment, defaultDataDir } from "../hub/config.js";
import { fileProblem } from "../hub/file-problem.js";
import { CliError } from "./cli-error.js";
import { exitOnSignal } from "./exit-on-signal.js";
import { formatTable } from "./table.js";
import { wholeNumber } from "./whole-number.js";

/** Listing pages asked of the hub: its default page size. */
const PAGE_SIZE = 100;
/** From this many TDs on, `add` shows its progress on a terminal. */
const PROGRESS_FROM = 10;

/** The hub the CLI talks to unless told: a local `things serve` on its defaults. */
export const DEFAULT_HUB_URL = `http://${configDefaults.host}:${configDefaults.port}`;

interface ConnectionOptions {
  url: string;
  token?: string;
}

// ---------------------------------------------------------------------------------------------
// Connecting

/** The data directory `things serve` uses when started without options. */
export function localDataDir(): string {
  // An empty HYPERTHINGS_DATA= is unset, as for the hub itself (not the working directory).
  return process.env[configEnvironment.dataDir] || defaultDataDir();
}

export function isDefaultLocalHub(url: string): boolean {
  try {
    const { protocol, hostname, port } = new URL(url);
    return (
      protocol === "http:" &&
      ["127.0.0.1", "localhost", "[::1]"].includes(hostname) &&
      port === String(configDefaults.port)
    );
  } catch {
    return false;
  }
}

/** The admin token a local `things serve` keeps in its data directory (at `path`), if there is one. */
function localAdminToken(path: string): string | undefined {
  try {
    const token = readFileSync(path, "utf8").trim();
    return token.length > 0 ? token : undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw new CliError(`cannot read the admin token in ${path}: ${(err as Error).message}`);
  }
}

/**
 * Node's fetch parses HTTP with llhttp compiled to WebAssembly, which V8 compiles twice: at once
 * (Liftoff), then optimised on other threads. A command's few requests never gain from the
 * second compile: it was ~0.2 s of CPU of each `things ls` (0.5 s of fetch's first request),
 * and an export of 18 MB took no more CPU without it. Set before the command's first request;
 * the long-running commands (serve, demo, sim) never come here.
 */
function compileFetchOnce(): void {
  setFlagsFromString("--liftoff-only");
}

/** The hub to talk to and the token to use: --token, else the local hub's admin token file. */
export function connectionOf(command: Command): { url: string; token: string | undefined } {
  compileFetchOnce();
  const options = command.optsWithGlobals<ConnectionOptions>();
  // An empty HYPERTHINGS_URL= or HYPERTHINGS_TOKEN= is unset, as with the hub's own settings; an
  // empty --url is still refused as no URL.
  const url =
    options.url === "" && command.getOptionValueSourceWithGlobals("url") === "env"
      ? DEFAULT_HUB_URL
      : options.url;
  // An empty --token (`--token "$TOKEN"` with TOKEN unset) is refused, not read as no token: for
  // the default local hub that would act with the admin token of its data directory instead.
  if (options.token === "" && command.getOptionValueSourceWithGlobals("token") !== "env") {
    throw new CliError("--token is empty: give the hub's token, or leave --token out", 2);
  }
  let token = options.token || undefined;
  if (token !== undefined) tokenSource = { kind: "given" };
  else if (isDefaultLocalHub(url)) {
    const path = join(localDataDir(), ADMIN_TOKEN_FILE);
    token = localAdminToken(path);
    tokenSource = { kind: token === undefined ? "no-file" : "file", path };
  } else tokenSource = { kind: "none" };
  return { url, token };
}

/**
 * Where the token of this run's connection came from: given (--token, HYPERTHINGS_TOKEN), read
 * from the default local hub's admin-token file, looked for there and not found, or none at all.
 */
export type TokenSource = { kind: "given" } | { kind: "file" | "no-file"; path: string } | { kind: "none" };
let tokenSource: TokenSource = { kind: "given" };

/** What a hub's 401 asks of the person, by where the token came from (or why there was none). */
export function unauthorizedHint(source: TokenSource = tokenSource): string {
  const give = "; give a token with --token or HYPERTHINGS_TOKEN";
  switch (source.kind) {
    case "given":
      return give;
    case "file":
      return `; the admin token in ${source.path} is another hub's: give this one's with --token or HYPERTHINGS_TOKEN`;
    case "no-file":
      return (
        `${give}: none was given, and there is no ${source.path} (a hub started with --data DIR keeps ` +
        "its token in DIR/admin-token: set HYPERTHINGS_DATA=DIR)"
      );
    case "none":
      return (
        `${give}: none was given (the CLI reads an admin-token file only for the hub at ${DEFAULT_HUB_URL}; ` +
        "this one printed its token at its first start, and keeps it in its data directory's admin-token)"
      );
  }
}

export function clientOf(command: Command): HubClient {
  const { url, token } = connectionOf(command);
  try {
    return new HubClient({ url, token });
  } catch (err) {
    throw new CliError((err as Error).message, 2);
  }
}

/** Past this many, the problems of a TD beyond the first are counted, not each said. */
const PROBLEMS_SAID = 5;
/** Past this many, the TDs and files with problems beyond them are counted, not each said. */
const SUBMISSIONS_SAID = 20;

/**
 * What is wrong with a TD, as the one line the CLI prints: the first problem at `file#pointer`
 * (the TD's place in the file, then the place in the TD), then its other problems after it
 * ("(and 2 more problems)" in the validator's words), each at its place in the file: fixing a
 * file one problem a run is slow. `message` is the hub's or the validator's sentence.
 */
function problemsOfTd(submission: Submission, message: string, errors: readonly ProblemLocation[]): string {
  const [first, ...rest] = errors;
  const pointer = submission.pointer + (first?.pointer ?? "");
  const where = `${submission.source}${pointer === "" ? "" : `#${pointer}`}`;
  const summary = /\s*\(and \d+ more problems?\)$/;
  if (rest.length === 0 || !summary.test(message)) return `${where}: ${message}`;
  const said = rest
    .slice(0, PROBLEMS_SAID)
    .map((e) => {
      const at = submission.pointer + e.pointer;
      return `; ${at === "" ? "the top level" : `#${at}`} ${e.detail}`;
    })
    .join("");
  const more = rest.length - PROBLEMS_SAID;
  return `${where}: ${message.replace(summary, "")}${said}${more > 0 ? ` (and ${more} more problem${more === 1 ? "" : "s"})` : ""}`;
}

function refusal(err: HubError, submission?: Submission): CliError {
  const [first] = err.errors;
  let hint = "";
  if (err.status === 401) hint = unauthorizedHint();
  if (err.status === 403) hint = "; use an admin token";
  if (submission !== undefined)
    return new CliError(`${problemsOfTd(submission, err.message, err.errors)}${hint}`);
  // The CLI wrote the query and the headers, not its user: a place in them says nothing to them.
  const where =
    first === undefined ||
    err.message.includes(first.pointer) ||
    /^\/(query|headers|params)(\/|$)/.test(first.pointer)
      ? ""
      : ` at ${first.pointer}`;
  return new CliError(`${err.message}${where}${hint}`);
}

/** Past this many Things, an unknown id is not compared with each of theirs. */
const IDS_COMPARED = 50_000;

/**
 * What to do about an id the hub has no Thing of (a typo, most often): the registered id nearest
 * to it, else where the ids are listed. Only a hint: when the ids cannot be read, the plain one.
 */
async function unknownThingHint(err: HubError, command: Command): Promise<string | undefined> {
  const id = /^No Thing with id ([^\s,]+)/.exec(err.message)?.[1];
  if (err.status !== 404 || id === undefined) return undefined;
  return unknownIdHint(id, command);
}

/**
 * The end of a line about an id the hub has never had: ` (did you mean …?)`, else where ids are
 * listed. With `typosOnly`, an id that only lengthens or shortens a registered one (`…:lamp-2`
 * beside `…:lamp`) is taken for a new Thing's, not a typo: no registered id is offered for it.
 */
export async function unknownIdHint(
  id: string,
  command: Command,
  options: { typosOnly?: boolean; fallback?: string } = {},
): Promise<string> {
  const fallback = options.fallback ?? ": `things ls` lists their ids";
  let ids: unknown[];
  try {
    ids = await clientOf(command).searchJsonPath("$[*].id");
  } catch {
    return fallback;
  }
  const names = ids.filter((value): value is string => typeof value === "string");
  const meant = names.length <= IDS_COMPARED ? closestName(id, names) : undefined;
  if (meant === undefined || meant === id) return fallback;
  if (options.typosOnly === true && (id.startsWith(meant) || meant.startsWith(id))) return fallback;
  return ` (did you mean ${meant}?)`;
}

/** Runs a command's action, turning the hub's refusals into one line each. */
export function talking<Args extends unknown[]>(action: (...args: Args) => Promise<void>) {
  return async (...args: Args): Promise<void> => {
    try {
      await action(...args);
    } catch (err) {
      if (!(err instanceof HubError)) throw err;
      const command = args.at(-1);
      const hint = isCommand(command) ? await unknownThingHint(err, command) : undefined;
      throw hint === undefined ? refusal(err) : new CliError(`${err.message}${hint}`);
    }
  };
}

/** Commander passes the command itself as an action's last argument. */
function isCommand(value: unknown): value is Command {
  return typeof value === "object" && value !== null && "optsWithGlobals" in value;
}

function connectionHelp(): string {
  return connectionHelpWith(
    "0 done, 1 failed (the hub refused, a file is invalid, the hub is unreachable), 2 usage",
  );
}

/** The connection help, ending with the command's exit codes. */
export function connectionHelpWith(exitCodes: string): string {
  return `
Connection:
  --url (env HYPERTHINGS_URL) names the hub, ${DEFAULT_HUB_URL} by default.
  --token (env HYPERTHINGS_TOKEN) is its bearer token: whatever changes something (add, rm,
  write, invoke, credentials, releases…) needs an admin token, reads one only on a hub started
  with --auth read.
  Without a token, for the default local hub the admin token is read from
  ${join(localDataDir(), ADMIN_TOKEN_FILE)}, where \`things serve\` keeps it.

Exit codes: ${exitCodes}.`;
}

// ---------------------------------------------------------------------------------------------
// Reading TD files

/** One TD to register, and where it came from: the file and its JSON pointer in that file. */
interface Submission {
  source: string;
  pointer: string;
  td: Record<string, unknown>;
}

function kindOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "an array";
  return typeof value === "object" ? "an object" : `a ${typeof value}`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString("utf8");
}

/** The files an argument names: itself, or every *.json in a folder, sorted by name. */
function filesOf(argument: string): string[] {
  let isFolder: boolean;
  try {
    isFolder = statSync(argument).isDirectory();
  } catch (err) {
    throw new CliError(`cannot read ${argument}: ${fileProblem(err)}`);
  }
  if (!isFolder) return [argument];
  const names = readdirSync(argument)
    .filter((name) => name.endsWith(".json"))
    .sort()
    .map((name) => join(argument, name))
    .filter((path) => statSync(path).isFile());
  if (names.length === 0) throw new CliError(`${argument}: the folder holds no *.json file`);
  return names;
}

/**
 * The TDs a file's text holds (one TD, an object, or an array of TDs), each checked as the hub
 * checks it; what is wrong with the file or with each TD goes to `problems`, one entry each.
 */
function submissionsOf(source: string, text: string, problems: string[]): Submission[] {
  // Nothing at all (nothing piped in, a file not yet written) is no malformed TD: said as such.
  if (text.replace(/^\uFEFF/, "").trim() === "") {
    problems.push(
      source === "<stdin>"
        ? "standard input held nothing: pipe TDs into it (things add - < lamp.json)"
        : `${source} is empty: a TD file holds a TD (a JSON object) or an array of TDs`,
    );
    return [];
  }
  let value: unknown;
  try {
    // RFC 8259 §8.1: a parser may ignore a byte order mark; editors on some systems write one.
    value = parseExactJson(text.replace(/^\uFEFF/, ""));
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    problems.push(`${source}: ${err.message}`);
    return [];
  }
  const items = Array.isArray(value) ? value : [value];
  const submissions: Submission[] = [];
  items.forEach((td: unknown, i) => {
    const pointer = Array.isArray(value) ? `/${i}` : "";
    if (!isObject(td)) {
      const expected = Array.isArray(value)
        ? "each TD of an array is a JSON object"
        : "a TD file holds a TD (a JSON object) or an array of TDs";
      problems.push(`${source}${pointer === "" ? "" : `#${pointer}`}: ${expected}, not ${kindOf(td)}`);
      return;
    }
    if (td.id !== undefined && typeof td.id !== "string") {
      problems.push(`${source}#${pointer}/id: the id of a TD is a string (an IRI), not ${kindOf(td.id)}`);
      return;
    }
    const submission = { source, pointer, td };
    const problem = registrationProblem(submission);
    if (problem === undefined) submissions.push(submission);
    else problems.push(problem);
  });
  return submissions;
}

/**
 * What the hub would refuse in a TD (docs/api.md, PUT /things/{id}), checked here so that a bad
 * TD stops the run before any is sent: the TD 1.1 rules, the id, the registration's ttl/expires.
 */
function registrationProblem(submission: Submission): string | undefined {
  const { td } = submission;
  try {
    validateThingDescription(td);
    const id = td.id;
    const problem = typeof id === "string" ? iriProblem(id) : undefined;
    if (id !== undefined && problem !== undefined) {
      throw new ValidationError(`The Thing id "${id}" is not a valid IRI: it ${problem}`, [
        { pointer: "/id", message: problem },
      ]);
    }
    expiryOf(splitRegistration(td).request, new Date());
    return undefined;
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    const errors = err.errors.map((e) => ({ pointer: e.pointer, detail: e.message }));
    return problemsOfTd(submission, err.message, errors);
  }
}

/**
 * Every TD the arguments name, read, parsed and checked before any is sent: a file or a TD with a
 * problem stops the run, and every problem of every file is said at once (one line).
 */
async function readSubmissions(args: string[]): Promise<Submission[]> {
  if (args.filter((a) => a === "-").length > 1) throw new CliError("- (stdin) may be given only once");
  const submissions: Submission[] = [];
  const problems: string[] = [];
  for (const argument of args) {
    if (argument === "-") {
      submissions.push(...submissionsOf("<stdin>", await readStdin(), problems));
      continue;
    }
    let files: string[];
    try {
      files = filesOf(argument);
    } catch (err) {
      if (!(err instanceof CliError)) throw err;
      problems.push(err.message);
      continue;
    }
    for (const file of files) {
      let text: string;
      try {
        text = readFileSync(file, "utf8");
      } catch (err) {
        problems.push(`cannot read ${file}: ${fileProblem(err)}`);
        continue;
      }
      submissions.push(...submissionsOf(file, text, problems));
    }
  }
  const [only] = problems;
  if (problems.length === 1 && only !== undefined) throw new CliError(`${only} (nothing added)`);
  if (problems.length > 1) {
    const more = problems.length - SUBMISSIONS_SAID;
    throw new CliError(
      `${problems.length} TDs or files have problems, nothing added: ${problems.slice(0, SUBMISSIONS_SAID).join("; ")}${more > 0 ? ` (and ${more} more)` : ""}`,
    );
  }
  return submissions;
}

/**
 * On a terminal, for a batch of PROGRESS_FROM TDs or more, a bar of its body sent (KiB), then
 * that the hub registers them; cleared when done. Nothing otherwise.
 */
async function batchProgress(
  things: number,
): Promise<{ sent?: (bytes: number, total: number) => void; stop: () => void }> {
  // Without a bar the body goes whole, not streamed.
  if (!process.stderr.isTTY || things < PROGRESS_FROM) return { stop: () => undefined };
  // Loaded for a terminal only, not by every `things` command.
  const { default: cliProgress } = await import("cli-progress");
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: `sending ${things} TDs {bar} {percentage}% | {value}/{total} KiB{then}`,
      hideCursor: true,
      clearOnComplete: true,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  const kib = (bytes: number) => Math.ceil(bytes / 1024);
  return {
    sent: (bytes, total) => {
      if (!started) bar.start(kib(total), 0, { then: "" });
      started = true;
      bar.update(kib(bytes), { then: bytes < total ? "" : " | the hub checks and registers them" });
    },
    stop: () => {
      if (started) bar.stop();
    },
  };
}

const ADDED: Record<BatchResult["status"], string> = {
  created: "registered",
  updated: "updated",
  unchanged: "unchanged",
};

/** The hub's refusal of the batch, each TD refused at its file#pointer, as one line. */
function batchRefusal(err: HubError, sent: readonly Submission[]): CliError {
  const said = err.refused.map((r) => {
    const submission = sent[r.index];
    if (submission === undefined) return `TD ${r.index + 1} of the batch: ${r.detail}`;
    // The hub points into the batch (`/3/title`); the file's place of the TD goes in front instead.
    const prefix = `/${r.index}`;
    const errors = r.errors.map((e) => ({
      pointer: e.pointer.startsWith(prefix) ? e.pointer.slice(prefix.length) : e.pointer,
      detail: e.detail,
    }));
    return problemsOfTd(submission, r.detail, errors);
  });
  const [only] = said;
  if (said.length === 1 && only !== undefined) return new CliError(`${only} (nothing added)`);
  const more = said.length - SUBMISSIONS_SAID;
  return new CliError(
    `the hub refused ${said.length} TDs, nothing added: ${said.slice(0, SUBMISSIONS_SAID).join("; ")}${more > 0 ? ` (and ${more} more)` : ""}`,
  );
}

/**
 * Sends every TD in one batch (POST /things/batch), which the hub registers whole or not at all,
 * then says what became of each TD, in the order given.
 */
async function add(files: string[], command: Command): Promise<void> {
  const client = clientOf(command);
  // Sent as one batch, registered all or none: once it is out, the hub may still commit it.
  let sentCount: number | undefined;
  const release = exitOnSignal("add", () =>
    sentCount !== undefined
      ? `; the ${sentCount} TD(s) were sent as one batch, which the hub registers whole or not at all: \`things get ID\` tells which`
      : "; nothing added",
  );
  try {
    await addSubmissions(client, await readSubmissions(files), (n) => (sentCount = n));
  } finally {
    release();
  }
}

/** Registers the TDs read as one batch, each once, and says for each what became of it. */
async function addSubmissions(
  client: HubClient,
  submissions: Submission[],
  sending: (count: number) => void,
): Promise<void> {
  // A TD given twice as it is (a file, and a folder holding it) is sent once, and is unchanged the
  // second time; two different TDs of one id are the hub's to refuse.
  const sent: Submission[] = [];
  const placeOf: number[] = [];
  const sentAt = new Map<string, number>();
  for (const submission of submissions) {
    const key = typeof submission.td.id === "string" ? canonicalJson(submission.td) : undefined;
    const at = key === undefined ? undefined : sentAt.get(key);
    if (at !== undefined) {
      placeOf.push(-1 - at);
      continue;
    }
    if (key !== undefined) sentAt.set(key, sent.length);
    placeOf.push(sent.length);
    sent.push(submission);
  }
  if (sent.length > MAX_BATCH_THINGS) {
    throw new CliError(
      `${sent.length} TDs, more than the ${MAX_BATCH_THINGS} one add registers at once: add them in parts (nothing added)`,
    );
  }
  const progress = await batchProgress(sent.length);
  let results: BatchResult[];
  try {
    sending(sent.length);
    results = await client.putAll(
      sent.map((s) => s.td as ThingDescription),
      progress.sent && { onSent: progress.sent },
    );
  } catch (err) {
    if (!(err instanceof HubError)) throw err;
    if (err.refused.length > 0) throw batchRefusal(err, sent);
    if (err.status === 404 || err.status === 405)
      throw new CliError(`the hub takes no batch of TDs (POST /things/batch): upgrade it (nothing added)`);
    // A batch refused whole (too large, the hub unavailable): nothing of it was registered.
    const refused = refusal(err);
    throw new CliError(`${refused.message} (nothing added)`, refused.exitCode);
  } finally {
    progress.stop();
  }
  for (const place of placeOf) {
    const result = results[place < 0 ? -1 - place : place];
    if (result === undefined) continue;
    process.stdout.write(`${place < 0 ? "unchanged" : ADDED[result.status]} ${result.id}\n`);
  }
}

// ---------------------------------------------------------------------------------------------
// Listing

function typesOf(td: ThingDescription): string[] {
  const type = td["@type"];
  return type === undefined ? [] : Array.isArray(type) ? type : [type];
}

function modifiedOf(td: RegisteredThingDescription): string {
  const registration = td.registration;
  const modified = isObject(registration) ? registration.modified : undefined;
  if (typeof modified !== "string" || Number.isNaN(Date.parse(modified))) return "";
  return `${new Date(modified).toISOString().slice(0, 19)}Z`;
}

/**
 * A time argument (RFC 3339, `-15m`, `yesterday 14:02` in this machine's zone), read here rather
 * than by the hub so that local times are this user's; a bad one is a usage error (exit 2).
 */
export function parseTimeArgument(text: string, now: Date = new Date()): Date {
  try {
    return parseTimeExpression(text, now);
  } catch (err) {
    if (err instanceof ValidationError) throw new CliError(err.message, 2);
    throw err;
  }
}

/** A time of day alone (`23:50`, `23:50:30`, `today 23:50`): a time argument read as today's. */
const TODAY_CLOCK = /^(?:today\s+)?(\d{1,2}:\d{2}(?::\d{2})?)$/i;

/**
 * A time of day that was read as today's though it is still to come — `--since 23:50`, typed at
 * 08:00 about last night, asks about tonight and finds nothing — as a note that says so and gives
 * yesterday's (`readAsNow`: the hub answered for now instead); undefined for any other time, or
 * one that has come.
 */
export function stillToComeNote(
  option: string,
  text: string | undefined,
  time: Date | undefined,
  now: Date,
  readAsNow = false,
): string | undefined {
  if (text === undefined || time === undefined || time <= now) return undefined;
  const clock = TODAY_CLOCK.exec(text.trim())?.[1];
  if (clock === undefined) return undefined;
  const read = readAsNow ? ", so it was read as now" : "";
  return `${option} ${text.trim()} is today's ${clock}, still to come${read}; for yesterday's, give ${option} 'yesterday ${clock}'`;
}

/** A time argument as given (`text`) and as read (`time`), for `checkTimeOrder`. */
interface TimeOption {
  option: string;
  text?: string | undefined;
  time: Date | undefined;
}

/**
 * Two times of one command in order (a usage error, exit 2, before anything is asked); `capAtNow`
 * reads a time after `now` as now (the hub reads `from` and `to` after its now as now). A time of
 * day still to come that puts them out of order (`--since 23:50 --until 00:30` about last night)
 * is said to be today's, with yesterday's to give instead.
 */
export function checkTimeOrder(
  earlier: TimeOption,
  later: TimeOption,
  { now, capAtNow = false }: { now: Date; capAtNow?: boolean },
): void {
  if (earlier.time === undefined || later.time === undefined) return;
  const cap = (t: Date) => (capAtNow && t > now ? now : t);
  const [a, b] = [cap(earlier.time), cap(later.time)];
  if (a > b) {
    const note = stillToComeNote(earlier.option, earlier.text, earlier.time, now);
    throw new CliError(
      `${earlier.option} (${a.toISOString()}) is after ${later.option} (${b.toISOString()})${note === undefined ? "" : `: ${note}`}`,
      2,
    );
  }
}

/** `--since` and `--until` as given, read at `now` and checked to be in order. */
export function sinceAndUntil(
  options: { since?: string; until?: string },
  now: Date,
): { since: Date | undefined; until: Date | undefined } {
  const since = options.since === undefined ? undefined : parseTimeArgument(options.since, now);
  const until = options.until === undefined ? undefined : parseTimeArgument(options.until, now);
  checkTimeOrder(
    { option: "--since", text: options.since, time: since },
    { option: "--until", text: options.until, time: until },
    { now },
  );
  return { since, until };
}

interface ListCommandOptions {
  type?: string;
  json?: boolean;
  limit?: number;
}

async function list(options: ListCommandOptions, command: Command): Promise<void> {
  const client = clientOf(command);
  const pageSize = Math.min(PAGE_SIZE, options.limit ?? PAGE_SIZE);
  // With a type, the hub's graph knows the types: prefixes, full IRIs, subtypes (docs/queries.md).
  const type = options.type;
  const all =
    type === undefined
      ? client.listAll({ pageSize })
      : (async function* () {
          for await (const item of client.graphAll(`type = ${JSON.stringify(type)}`, { pageSize }))
            yield item.td;
        })();
  const things: RegisteredThingDescription[] = [];
  for await (const td of all) {
    things.push(td);
    if (things.length === options.limit) break;
  }
  if (options.json) {
    process.stdout.write(`${JSON.stringify(things)}\n`);
    return;
  }
  if (things.length === 0) {
    process.stderr.write(options.type === undefined ? "no Things\n" : `no Things of type ${options.type}\n`);
    return;
  }
  const rows = things.map((td) => [td.id, td.title, typesOf(td).join(", "), modifiedOf(td)]);
  const maxWidth = process.stdout.isTTY ? process.stdout.columns : undefined;
  process.stdout.write(formatTable(["ID", "TITLE", "TYPE", "MODIFIED"], rows, { maxWidth, uncut: [3] }));
}

// ---------------------------------------------------------------------------------------------
// The commands

export function registerClientCommands(program: Command): void {
  program.addHelpText("after", connectionHelp);

  program
    .command("add")
    .description(
      "register or update Thing Descriptions: files of one TD or an array of TDs, folders, or - (stdin)",
    )
    .argument("<file...>", "a TD file, a folder (every *.json in it, by name), or - for stdin")
    .addHelpText(
      "after",
      `\nEvery TD is read and checked before any is sent: when a file or a TD has a problem, every\nproblem of every file is said (file#pointer: what is wrong) and nothing is added. Then all\nthe TDs go to the hub as one batch (at most ${MAX_BATCH_THINGS}), which registers every one or none:\nwhat it refuses (a TD over its body limit, one id given two different TDs) is said the same\nway, and nothing is added. A TD given twice as it is is sent once.`,
    )
    .addHelpText("after", connectionHelp)
    .action(talking(async (files: string[], _options: unknown, command: Command) => add(files, command)));

  program
    .command("get")
    .description("print one Thing Description, with its registration information")
    .argument("<id>", "the Thing's id")
    .option("--json", "compact JSON on one line, for scripts")
    .addHelpText("after", connectionHelp)
    .action(
      talking(async (id: string, options: { json?: boolean }, command: Command) => {
        const td = await clientOf(command).get(id);
        process.stdout.write(`${options.json ? JSON.stringify(td) : JSON.stringify(td, null, 2)}\n`);
      }),
    );

  program
    .command("ls")
    .description("list the Things in the directory: id, title, type, last modified")
    .option(
      "--type <type>",
      "only Things of this type or one of its subtypes (saref:Sensor, a full IRI, or a class name: Sensor)",
    )
    .option("--limit <n>", "at most this many Things", wholeNumber("--limit", 1))
    .option("--json", "the TDs as one JSON array, for scripts")
    .addHelpText("after", connectionHelp)
    .action(talking(async (options: ListCommandOptions, command: Command) => list(options, command)));

  program
    .command("rm")
    .description("remove Things from the directory")
    .argument("<id...>", "the ids of the Things to remove")
    .addHelpText("after", connectionHelp)
    .action(
      talking(async (ids: string[], _options: unknown, command: Command) => {
        const client = clientOf(command);
        // As rm(1): an id that names no Thing does not keep the others from being removed.
        const missing: { id: string; error: HubError }[] = [];
        for (const id of ids) {
          try {
            await client.remove(id);
          } catch (err) {
            if (!(err instanceof HubError) || err.status !== 404) throw err;
            missing.push({ id, error: err });
            continue;
          }
          process.stdout.write(`removed ${id}\n`);
        }
        const [first] = missing;
        if (missing.length === 1 && first !== undefined) throw first.error;
        if (missing.length > 1) {
          throw new CliError(
            `${missing.length} ids name no Thing, nothing removed for them: ${missing.map((m) => m.id).join(", ")}`,
          );
        }
      }),
    );

  program
    .command("search")
    .description(
      "select values from the TDs with an RFC 9535 JSONPath query whose root $ is the array of every TD: e.g. '$[*].title', '$[?@.title==\"Lamp\"].id'",
    )
    .argument("<jsonpath>", "the query")
    .option("--json", "the values as one JSON array instead of one per line")
    .addHelpText("after", connectionHelp)
    .action(
      talking(async (query: string, options: { json?: boolean }, command: Command) => {
        const values = await clientOf(command).searchJsonPath(query);
        const text = options.json ? JSON.stringify(values) : values.map((v) => JSON.stringify(v)).join("\n");
        if (text.length > 0) process.stdout.write(`${text}\n`);
      }),
    );
}
