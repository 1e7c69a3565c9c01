// `things build`, `things releases`, `things plan`: manifests built into an immutable release
// and stored in the hub, releases listed, and a release planned against the Things now.
import type { Command } from "commander";
import { readFileSync, readdirSync, statSync } from "node:fs";
import { hostname, userInfo } from "node:os";
import { dirname, extname, join, relative, resolve } from "node:path";
import { HubError, ReleaseClient } from "../client/index.js";
import {
  buildRelease,
  ValidationError,
  type ManifestSource,
  type Plan,
  type PlanItem,
  type Release,
  type ReleaseSummary,
} from "../core/index.js";
import { HUB_VERSION } from "../hub/version.js";
import { fileProblem } from "../hub/file-problem.js";
import { CliError } from "./cli-error.js";
import { connectionHelpWith, connectionOf, talking } from "./client-commands.js";
import { compactValue, localTime } from "./history-commands.js";
import { formatTable } from "./table.js";

const MANIFEST_EXTENSIONS = new Set([".yaml", ".yml", ".json"]);
const BUILD_EXIT_CODES =
  "0 built (and stored), 1 failed (a manifest is invalid, the hub refused or is unreachable), 2 usage";
const PLAN_EXIT_CODES =
  "0 the plan can be applied, 1 failed (no such release, the hub refused or is unreachable), 2 usage, " +
  "3 the plan has things that cannot be done or selectors that match no Thing";

function releaseClientOf(command: Command): ReleaseClient {
  const { url, token } = connectionOf(command);
  try {
    return new ReleaseClient({ url, token });
  } catch (err) {
    throw new CliError((err as Error).message, 2);
  }
}

/** Every manifest file under a folder, in name order (hidden folders and node_modules skipped). */
function manifestFiles(folder: string): string[] {
  const found: string[] = [];
  for (const entry of readdirSync(folder, { withFileTypes: true }).sort((a, b) =>
    a.name < b.name ? -1 : 1,
  )) {
    if (entry.name.startsWith(".") || entry.name === "node_modules") continue;
    const path = join(folder, entry.name);
    if (entry.isDirectory()) found.push(...manifestFiles(path));
    else if (entry.isFile() && MANIFEST_EXTENSIONS.has(extname(entry.name))) found.push(path);
  }
  return found;
}

/** The path a person sees: relative to where they run the command. */
function shown(path: string): string {
  const rel = relative(process.cwd(), path);
  return rel === "" || rel.startsWith("..") ? path : rel;
}

/**
 * Reads the manifests of a build: every manifest in a folder, or one file, and then every file
 * they include (relative to the including file), each once.
 */
export async function readManifests(target: string): Promise<{
  sources: ManifestSource[];
  resolveInclude: (from: string, include: string) => string;
}> {
  // Loaded here, not by every `things` command: only a build reads YAML.
  const { parse: parseYaml } = await import("yaml");
  let start: string[];
  try {
    start = statSync(target).isDirectory() ? manifestFiles(target) : [target];
  } catch (err) {
    throw new CliError(`cannot read ${target}: ${fileProblem(err)}`);
  }
  if (start.length === 0) throw new CliError(`${target} holds no manifest (*.yaml, *.yml, *.json)`);
  const byShown = new Map<string, string>();
  const sources: ManifestSource[] = [];
  const resolveInclude = (from: string, include: string) =>
    shown(resolve(dirname(byShown.get(from) ?? from), include));
  const pending = start.map((p) => resolve(p));
  const seen = new Set<string>();
  while (pending.length > 0) {
    const path = pending.shift() as string;
    if (seen.has(path)) continue;
    seen.add(path);
    let text: string;
    try {
      text = readFileSync(path, "utf8");
    } catch (err) {
      // An include that cannot be read is reported by the build, where it is written.
      if (sources.length > 0) continue;
      throw new CliError(`cannot read ${shown(path)}: ${fileProblem(err)}`);
    }
    const name = shown(path);
    byShown.set(name, path);
    sources.push({ path: name, text });
    for (const include of includesOf(text, parseYaml)) pending.push(resolve(dirname(path), include));
  }
  return { sources, resolveInclude };
}

/** The `include` list of a manifest, best effort: the build validates it properly. */
function includesOf(text: string, parseYaml: (text: string) => unknown): string[] {
  try {
    // YAML is a superset of JSON: one parser (the build's) reads both.
    const include = (parseYaml(text) as { include?: unknown } | null)?.include;
    return Array.isArray(include) ? include.filter((i): i is string => typeof i === "string") : [];
  } catch {
    return [];
  }
}

function builderName(): string {
  let user = "unknown";
  try {
    user = userInfo().username;
  } catch {
    // No user entry (a container): the host alone.
  }
  return `things ${HUB_VERSION} (${user}@${hostname()})`;
}

/**
 * One line: the first error as `file:line:column: message`, and how many more there are. The same
 * words whether the manifests are wrong (`buildRelease`) or the hub refuses the release they make
 * (a Thing it does not have, a value its TD refuses): to the user, both are a failed build.
 */
function buildFailure(summary: string, errors: readonly string[]): CliError {
  const [first, ...rest] = errors;
  return new CliError(
    `build failed: ${first ?? summary}${rest.length > 0 ? ` (and ${rest.length} more)` : ""}`,
  );
}

async function build(
  target: string,
  options: { json?: boolean; dryRun?: boolean },
  command: Command,
): Promise<void> {
  const { sources, resolveInclude } = await readManifests(target);
  let release: Release;
  try {
    release = buildRelease(sources, {
      builder: builderName(),
      builtAt: new Date().toISOString(),
      resolveInclude,
    });
  } catch (err) {
    if (err instanceof ValidationError)
      throw buildFailure(
        err.message,
        err.errors.map((e) => e.message),
      );
    throw err;
  }
  if (options.dryRun) {
    process.stdout.write(
      options.json ? `${JSON.stringify(release)}\n` : `${release.id}  ${release.name}  (built, not stored)\n`,
    );
    return;
  }
  let stored: Awaited<ReturnType<ReleaseClient["storeRelease"]>>;
  try {
    stored = await releaseClientOf(command).storeRelease(release);
  } catch (err) {
    // The hub checked the release against its Things (400): its problems are the manifests' places.
    if (err instanceof HubError && err.status === 400)
      throw buildFailure(
        err.message,
        err.errors.map((e) => e.detail),
      );
    throw err;
  }
  if (options.json) {
    process.stdout.write(
      `${JSON.stringify({ ...stored, name: release.name, steps: release.steps.length })}\n`,
    );
    return;
  }
  const files = release.provenance.sources.length;
  process.stdout.write(
    `${stored.id}  ${release.name}  ${release.steps.length} step${release.steps.length === 1 ? "" : "s"} from ` +
      `${files} file${files === 1 ? "" : "s"}  ${stored.created ? "stored" : "already stored"}\n`,
  );
}

function releaseRows(releases: ReleaseSummary[]): string[][] {
  return releases.map((r) => [
    r.id.slice(0, 19),
    r.name,
    String(r.steps),
    r.drift,
    localTime(r.storedAt),
    r.supersedes === undefined ? "" : r.supersedes.slice(0, 19),
  ]);
}

/**
 * A release argument: a full id, an id prefix (as `things releases` shows it, or its hex alone, at
 * least 4 digits, as copied from a hash), or a name (its newest).
 */
export async function resolveRelease(client: ReleaseClient, argument: string): Promise<string> {
  if (/^sha256:[0-9a-f]{64}$/.test(argument)) return argument;
  const prefix = argument.startsWith("sha256:")
    ? argument
    : /^[0-9a-f]{4,64}$/i.test(argument)
      ? `sha256:${argument.toLowerCase()}`
      : undefined;
  const matches = new Set<string>();
  let cursor: number | undefined;
  do {
    const page = await client.releases({ limit: 1000, ...(cursor !== undefined && { cursor }) });
    for (const r of page.releases) {
      if (r.name === argument && matches.size === 0) return r.id;
      if (prefix !== undefined && r.id.startsWith(prefix)) matches.add(r.id);
    }
    cursor = page.next;
  } while (cursor !== undefined);
  if (matches.size === 1) return [...matches][0] as string;
  if (matches.size > 1) throw new CliError(`${argument} names ${matches.size} releases; give more of the id`);
  throw new CliError(`no release is named ${argument} or has an id starting with it (see things releases)`);
}

function statusText(item: PlanItem): string {
  if (item.status !== "cannot") return item.status;
  return `cannot: ${item.reason ?? ""}${item.detail ? ` (${item.detail})` : ""}`;
}

function observedText(item: PlanItem): string {
  if (item.kind === "link") return item.observed === true ? "present" : "absent";
  if (item.kind === "action") return "";
  return "observed" in item ? compactValue(item.observed) : "(unknown)";
}

function desiredText(item: PlanItem): string {
  if (item.kind === "link") return "present";
  if (item.kind === "action")
    return item.desired === undefined ? "invoke" : `invoke ${compactValue(item.desired)}`;
  return compactValue(item.desired);
}

export function formatPlan(plan: Plan): string {
  const rows: string[][] = [];
  for (const thing of plan.things) {
    for (const item of thing.items) {
      rows.push([
        thing.thing,
        `${item.kind === "property" ? "" : `${item.kind} `}${item.name}`,
        observedText(item),
        desiredText(item),
        statusText(item),
      ]);
    }
  }
  const maxWidth = process.stdout.isTTY ? process.stdout.columns : undefined;
  let out = `${plan.name}  ${plan.release}\n`;
  if (rows.length > 0) {
    out += formatTable(["THING", "AFFORDANCE", "OBSERVED", "DESIRED", "PLAN"], rows, {
      maxWidth,
      uncut: [4],
    });
  }
  for (const problem of plan.problems) {
    const where = problem.source
      ? `${problem.source.file}:${problem.source.line}:${problem.source.column}: `
      : "";
    out += `problem: ${where}${problem.message}\n`;
  }
  const s = plan.summary;
  out += `${s.things} Thing${s.things === 1 ? "" : "s"}: ${s.change} to change, ${s.inPlace} in place, ${s.cannot} cannot be done\n`;
  return out;
}

export function registerReleaseCommands(program: Command): void {
  program
    .command("build")
    .description("build manifests (a folder or a file) into one release, hash it and store it in the hub")
    .argument(
      "<path>",
      "a manifest file, or a folder whose *.yaml, *.yml and *.json files are built together",
    )
    .option("--json", "print {id, created, storedAt, name, steps} (with --dry-run: the release document)")
    .option("--dry-run", "build and print the id, but do not store")
    .addHelpText(
      "after",
      () => `\nSee docs/releases.md for the manifest format.\n${connectionHelpWith(BUILD_EXIT_CODES)}`,
    )
    .action(
      talking(async (path: string, options: { json?: boolean; dryRun?: boolean }, command: Command) =>
        build(path, options, command),
      ),
    );

  program
    .command("releases")
    .description(
      "stored releases, newest first: id, name, steps, drift policy, when stored, what it supersedes",
    )
    .option("--name <name>", "only releases with this name")
    .option("--json", "the releases as one JSON array")
    .addHelpText("after", () =>
      connectionHelpWith("0 done, 1 failed (the hub refused or is unreachable), 2 usage"),
    )
    .action(
      talking(async (options: { name?: string; json?: boolean }, command: Command) => {
        const client = releaseClientOf(command);
        const all: ReleaseSummary[] = [];
        let cursor: number | undefined;
        do {
          const page = await client.releases({
            limit: 1000,
            ...(options.name !== undefined && { name: options.name }),
            ...(cursor !== undefined && { cursor }),
          });
          all.push(...page.releases);
          cursor = page.next;
        } while (cursor !== undefined);
        if (options.json) {
          process.stdout.write(`${JSON.stringify(all)}\n`);
          return;
        }
        if (all.length === 0) {
          // A --name that matches nothing is a typo more often than an empty store: say which.
          const stored =
            options.name !== undefined && (await client.releases({ limit: 1 })).releases.length > 0;
          process.stderr.write(
            stored
              ? `no release is named ${options.name}: \`things releases\` lists the stored ones\n`
              : "no releases yet (things build PATH stores one)\n",
          );
          return;
        }
        const maxWidth = process.stdout.isTTY ? process.stdout.columns : undefined;
        process.stdout.write(
          formatTable(["ID", "NAME", "STEPS", "DRIFT", "STORED", "SUPERSEDES"], releaseRows(all), {
            maxWidth,
            uncut: [0, 4],
          }),
        );
      }),
    );

  program
    .command("plan")
    .description(
      "what rolling a release out would do now, per Thing: observed → desired, in place, or cannot (and why)",
    )
    .argument(
      "<release>",
      "a release id, an id prefix as `things releases` shows it (sha256: may be left out), or a name (its newest release)",
    )
    .option("--select <filter>", "only the Things this graph filter matches")
    .option("--json", "the plan as the hub gives it, on one line")
    .addHelpText("after", () => connectionHelpWith(PLAN_EXIT_CODES))
    .action(
      talking(async (argument: string, options: { select?: string; json?: boolean }, command: Command) => {
        const client = releaseClientOf(command);
        const id = await resolveRelease(client, argument);
        const plan = await client.plan(id, options.select);
        process.stdout.write(options.json ? `${JSON.stringify(plan)}\n` : formatPlan(plan));
        if (plan.problems.length > 0 || plan.summary.cannot > 0) {
          const first = plan.problems[0];
          const reason = first
            ? `${first.source ? `${first.source.file}:${first.source.line}:${first.source.column}: ` : ""}${first.message}`
            : `${plan.summary.cannot} item${plan.summary.cannot === 1 ? "" : "s"} cannot be done`;
          throw new CliError(`the plan cannot be applied as it is: ${reason}`, 3);
        }
      }),
    );
}
