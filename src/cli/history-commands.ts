// `things history|changes|state|diff|watch`: a Thing's Changes, every Thing's, its state at a time,
// what changed between two times, and the live feed — read from a hub's Log over HTTP, the live
// feed over GraphQL (WebSocket).
import type { Command } from "commander";
import { styleText } from "node:util";
import {
  HubError,
  type DiffChange,
  type GraphqlChange,
  type GraphqlChangeFilter,
  type ThingDiff,
  type ThingState,
} from "../client/index.js";
import { appliedLabel, changeTime, type Change } from "../core/index.js";
import {
  clientOf,
  connectionOf,
  connectionHelpWith,
  checkTimeOrder,
  sinceAndUntil,
  parseTimeArgument,
  stillToComeNote,
  talking,
  unknownIdHint,
} from "./client-commands.js";
import { closestName } from "../hub/config.js";
import { CliError } from "./cli-error.js";
import { graphqlClientOf, graphqlFailure } from "./query-commands.js";
import { formatTable } from "./table.js";
import { wholeNumber } from "./whole-number.js";

/** How many Changes `history` shows unless told. */
const DEFAULT_HISTORY_LIMIT = 50;
/** The most Changes asked of the hub in one page. */
const MAX_PAGE = 1000;
/** How much of a value a table cell or a line shows. */
const VALUE_WIDTH = 60;

const EXIT_CODES = "0 done, 1 failed (the hub refused or is unreachable), 2 usage (a bad option or time)";

// ---------------------------------------------------------------------------------------------
// Showing Changes

function pad(n: number, width = 2): string {
  return String(n).padStart(width, "0");
}

/** An RFC 3339 time in this machine's zone, to the millisecond: `2026-05-01 14:02:03.120`. */
export function localTime(iso: string): string {
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return (
    `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`
  );
}

/** A value as compact JSON, cut to `width` characters with "…"; "" when there is none. */
export function compactValue(value: unknown, width = VALUE_WIDTH): string {
  if (value === undefined) return "";
  const text = JSON.stringify(value);
  const chars = Array.from(text);
  return chars.length <= width ? text : `${chars.slice(0, width - 1).join("")}…`;
}

/** `urn:x brightness reported 42 (2026-05-01 14:02:03.120, by admin)`: a Change in one line. */
export function describeChange(change: Change): string {
  const what = [change.thing, change.affordance, change.kind, compactValue(change.value)]
    .filter((part) => part !== undefined && part !== "")
    .join(" ");
  return `${what} (${localTime(changeTime(change))}, by ${change.cause.actor})`;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** `--kind reported,desired` as the hub takes it; each kind a word. */
function kindsOf(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  const kinds = text.split(",").map((k) => k.trim());
  const bad = kinds.find((k) => !/^[A-Za-z][A-Za-z0-9_-]*$/.test(k));
  if (bad !== undefined) throw new CliError(`"${bad}" is not a kind of Change (e.g. reported, desired)`, 2);
  return kinds;
}

// ---------------------------------------------------------------------------------------------
// history

interface HistoryCommandOptions {
  affordance?: string;
  kind?: string;
  since?: string;
  until?: string;
  limit?: number;
  cursor?: number;
  oldestFirst?: boolean;
  json?: boolean;
}

async function history(id: string, options: HistoryCommandOptions, command: Command): Promise<void> {
  const now = new Date();
  const { since, until } = sinceAndUntil(options, now);
  const kinds = kindsOf(options.kind);
  const limit = options.limit ?? DEFAULT_HISTORY_LIMIT;
  const times = timesToGoOn(now, { since: [options.since, since], until: [options.until, until] });
  // One more than shown, to tell whether there are more.
  const all = clientOf(command).historyAll(id, {
    order: options.oldestFirst ? "asc" : "desc",
    limit: Math.min(limit + 1, MAX_PAGE),
    ...(options.affordance !== undefined && { affordance: options.affordance }),
    ...(kinds !== undefined && { kind: kinds }),
    ...(since !== undefined && { since }),
    ...(until !== undefined && { until }),
    ...(options.cursor !== undefined && { cursor: options.cursor }),
  });
  await printChanges(all, limit, options, false, times, () =>
    Promise.resolve(stillToComeNote("--since", options.since, since, now)),
  );
}

/**
 * The times a hint to go on must repeat as this command read them (RFC 3339): a relative or local
 * one (`-15m`, `14:02`) read again by the next command would move, and a page newest first would
 * leave out the Changes between where it began and where it begins then.
 */
function timesToGoOn(
  now: Date,
  given: Record<string, [text: string | undefined, time: Date | undefined]>,
): string {
  const later = new Date(now.getTime() + 86_400_000);
  let options = "";
  for (const [name, [text, time]] of Object.entries(given)) {
    if (text === undefined || time === undefined) continue;
    if (parseTimeArgument(text, later).getTime() !== time.getTime())
      options += ` --${name} ${time.toISOString()}`;
  }
  return options;
}

/**
 * Up to `limit` Changes as a table (with a THING column for the feed) or a JSON array; when there
 * are more, a hint on stderr after them says how to go on (stdout stays the table alone).
 */
async function printChanges(
  all: AsyncIterable<Change>,
  limit: number,
  options: { oldestFirst?: boolean; json?: boolean },
  withThing: boolean,
  times: string,
  whyNone?: () => Promise<string | undefined>,
): Promise<void> {
  const changes: Change[] = [];
  for await (const change of all) {
    changes.push(change);
    if (changes.length > limit) break;
  }
  const more = changes.length > limit;
  if (more) changes.length = limit;
  const hint = (): void => {
    if (!more) return;
    const last = (changes[limit - 1] as Change).seq;
    const where = options.oldestFirst ? "after" : "before";
    process.stderr.write(
      `more Changes ${where} seq ${last}: the same command with --cursor ${last}${times}\n`,
    );
  };
  if (options.json) {
    process.stdout.write(`${JSON.stringify(changes)}\n`);
    hint();
    return;
  }
  if (changes.length === 0) {
    const why = await whyNone?.();
    process.stderr.write(`no Change matches${why === undefined ? "" : `: ${why}`}\n`);
    return;
  }
  const rows = changes.map((c) => [
    String(c.seq),
    localTime(changeTime(c)),
    ...(withThing ? [c.thing] : []),
    c.affordance ?? "",
    c.kind,
    compactValue(c.value),
    c.cause.actor,
  ]);
  const head = ["SEQ", "TIME", ...(withThing ? ["THING"] : []), "AFFORDANCE", "KIND", "VALUE", "ACTOR"];
  const maxWidth = process.stdout.isTTY ? process.stdout.columns : undefined;
  process.stdout.write(formatTable(head, rows, { maxWidth, uncut: withThing ? [0, 1, 2, 4] : [0, 1, 3] }));
  hint();
}

/** Whether the hub has ever had a Thing of this id; undefined when that cannot be told. */
async function everRegistered(command: Command, id: string): Promise<boolean | undefined> {
  try {
    await clientOf(command).history(id, { limit: 1 });
    return true;
  } catch (err) {
    return err instanceof HubError && err.status === 404 ? false : undefined;
  }
}

/**
 * Why a `--thing` filter may match nothing: the hub has never had a Thing of that id (a typo, an
 * id of another hub), as a line for stderr; undefined when it has, or when that cannot be told.
 */
async function unknownThingNote(command: Command, id: string | undefined): Promise<string | undefined> {
  if (id === undefined || (await everRegistered(command, id)) !== false) return undefined;
  return `no Thing ${id} has ever been registered with this hub${await unknownIdHint(id, command)}`;
}

/**
 * Why an `--affordance` filter may match nothing: no Thing in the directory (or the `--thing`)
 * declares a property, action or event of that name — a typo, most often — as a line for stderr,
 * with the nearest name declared; undefined when one does, or when that cannot be told. One
 * JSONPath search of the directory's TDs, made only when nothing matched.
 */
async function unknownAffordanceNote(
  command: Command,
  affordance: string | undefined,
  thing?: string,
): Promise<string | undefined> {
  if (affordance === undefined) return undefined;
  const which = thing === undefined ? "$[*]" : `$[?@.id==${JSON.stringify(thing)}]`;
  let sections: unknown[];
  try {
    sections = await clientOf(command).searchJsonPath(`${which}['properties','actions','events']`);
  } catch {
    return undefined;
  }
  const names = new Set<string>();
  for (const section of sections)
    if (isObject(section)) for (const name of Object.keys(section)) names.add(name);
  if (names.has(affordance)) return undefined;
  const meant = closestName(affordance, [...names].sort());
  const who = thing === undefined ? "no Thing" : thing;
  const has = thing === undefined ? "declares" : "declares no";
  const what = `property, action or event "${affordance}"`;
  return `${who} ${has} ${thing === undefined ? `a ${what}` : what}${meant === undefined ? "" : ` (did you mean ${meant}?)`}`;
}

// ---------------------------------------------------------------------------------------------
// changes: the global feed

/** The global feed's filters as the CLI takes them (changes, watch). */
interface FeedOptions {
  thing?: string;
  type?: string;
  affordance?: string;
  kind?: string;
  actor?: string;
  release?: string;
  correlation?: string;
  since?: string;
}

/**
 * The feed's filters other than the kinds, which the HTTP feed takes as `kind` and GraphQL as
 * `kinds`: named alike on both.
 */
function feedFilter(options: FeedOptions): Omit<GraphqlChangeFilter, "kinds"> {
  return {
    ...(options.thing !== undefined && { thing: options.thing }),
    ...(options.type !== undefined && { type: options.type }),
    ...(options.affordance !== undefined && { affordance: options.affordance }),
    ...(options.actor !== undefined && { actor: options.actor }),
    ...(options.release !== undefined && { release: options.release }),
    ...(options.correlation !== undefined && { correlation: options.correlation }),
  };
}

/** The feed options of `changes` and `watch`. */
function feedOptions(command: Command): Command {
  return command
    .option("--thing <id>", "only this Thing's Changes")
    .option("--type <type>", TYPE_HELP)
    .option("--affordance <name>", "only Changes of this property, action or event, of any Thing")
    .option("--kind <kinds>", "only these kinds, comma-separated (reported, desired, described, …)")
    .option("--actor <actor>", "only Changes caused by this actor")
    .option("--release <release>", "only Changes caused by this release")
    .option(
      "--correlation <id>",
      "only Changes of this correlation: one command's (its desired or invoked and the outcome), one rollout step's",
    );
}

interface ChangesCommandOptions extends FeedOptions {
  until?: string;
  limit?: number;
  cursor?: number;
  oldestFirst?: boolean;
  json?: boolean;
}

async function feed(options: ChangesCommandOptions, command: Command): Promise<void> {
  const now = new Date();
  const { since, until } = sinceAndUntil(options, now);
  const kinds = kindsOf(options.kind);
  const limit = options.limit ?? DEFAULT_HISTORY_LIMIT;
  const times = timesToGoOn(now, { since: [options.since, since], until: [options.until, until] });
  const all = clientOf(command).changesAll({
    order: options.oldestFirst ? "asc" : "desc",
    limit: Math.min(limit + 1, MAX_PAGE),
    ...feedFilter(options),
    ...(kinds !== undefined && { kind: kinds }),
    ...(since !== undefined && { since }),
    ...(until !== undefined && { until }),
    ...(options.cursor !== undefined && { cursor: options.cursor }),
  });
  await printChanges(
    all,
    limit,
    options,
    true,
    times,
    async () =>
      (await unknownThingNote(command, options.thing)) ??
      (await unknownAffordanceNote(command, options.affordance, options.thing)) ??
      stillToComeNote("--since", options.since, since, now),
  );
}

// ---------------------------------------------------------------------------------------------
// state

/** The lines of a Thing's state: a heading, then one aligned line per property. */
export function formatState(state: ThingState): string {
  const td = isObject(state.td) ? state.td : {};
  const title = typeof td.title === "string" ? td.title : state.thing;
  const version =
    isObject(td.version) && typeof td.version.instance === "string" ? td.version.instance : undefined;
  const lines = [
    `${title}  ${state.thing}${version === undefined ? "" : `  version ${version}`}`,
    `as of ${localTime(state.at)} (seq ${state.seq})`,
  ];
  const declared = isObject(td.properties) ? Object.keys(td.properties) : [];
  const names = [...new Set([...declared, ...Object.keys(state.properties), ...Object.keys(state.desired)])];
  const rows: string[][] = [];
  for (const name of names.sort()) {
    const reported = state.properties[name];
    const desired = state.desired[name];
    if (reported !== undefined || desired === undefined) {
      rows.push(
        reported === undefined
          ? [name, "-", "(no value reported)"]
          : [name, compactValue(reported.value), `(${localTime(reported.time)}, by ${reported.cause.actor})`],
      );
    }
    if (desired !== undefined) {
      rows.push([
        name,
        compactValue(desired.value),
        `(${localTime(desired.time)}, by ${desired.cause.actor})  [desired]`,
      ]);
    }
  }
  if (rows.length === 0) return `${lines.join("\n")}\n  no properties\n`;
  const widths = [0, 1].map((i) => Math.max(...rows.map((row) => Array.from(row[i] ?? "").length)));
  for (const row of rows) {
    const [name = "", value = "", when = ""] = row;
    lines.push(`  ${name.padEnd(widths[0] ?? 0)}  ${value.padEnd(widths[1] ?? 0)}  ${when}`);
  }
  return `${lines.join("\n")}\n`;
}

// ---------------------------------------------------------------------------------------------
// diff

/**
 * Per property `before → after (N changes, last by actor at time; asked for V by actor at time)`
 * (the last write in between, when it was written), and whether the TD changed.
 */
export function formatDiff(diff: ThingDiff): string {
  const lines = [
    `${diff.thing}  from ${localTime(diff.from)} (seq ${diff.fromSeq}) to ${localTime(diff.to)} (seq ${diff.toSeq})`,
  ];
  // First: a Thing that did not answer explains properties that did not change.
  if (diff.reachability !== undefined) lines.push(`reachability: ${reachabilityLine(diff.reachability)}`);
  const widths = [
    Math.max(0, ...diff.properties.map((p) => Array.from(p.affordance).length)),
    Math.max(0, ...diff.properties.map((p) => Array.from(beforeOf(p.before)).length)),
  ];
  for (const p of diff.properties) {
    const changes = `${p.changes} change${p.changes === 1 ? "" : "s"}`;
    const last =
      p.cause === undefined
        ? ""
        : `, last by ${p.cause.actor}${p.time === undefined ? "" : ` at ${localTime(p.time)}`}`;
    const asked = p.desired === undefined ? "" : `; ${askedFor(p.desired)}`;
    lines.push(
      `  ${p.affordance.padEnd(widths[0] ?? 0)}  ${beforeOf(p.before).padEnd(widths[1] ?? 0)} → ${compactValue(p.after)}  (${changes}${last}${asked})`,
    );
  }
  if (diff.properties.length === 0) lines.push("  no property changed");
  for (const [title, list] of [
    ["writes", diff.writes],
    ["actions", diff.actions],
    ["events", diff.events],
  ] as const) {
    if (list.length === 0) continue;
    lines.push(`${title}:`);
    const width = Math.max(...list.map((a) => Array.from(a.affordance).length));
    for (const a of list) {
      const counts = Object.entries(a.counts)
        .map(([kind, n]) => `${n} ${kind}`)
        .join(", ");
      const value = a.last.value === undefined ? "" : ` ${compactValue(a.last.value)}`;
      // A write's outcome has no value: what was asked for goes before it.
      const asked = a.desired === undefined || a.desired.seq === a.last.seq ? "" : `; ${askedFor(a.desired)}`;
      lines.push(
        `  ${a.affordance.padEnd(width)}  ${counts}${asked}; last ${a.last.kind}${value} by ${a.last.cause.actor} at ${localTime(a.last.time)}`,
      );
    }
  }
  if (diff.drift !== undefined) {
    const { drift } = diff;
    const alerts = drift.alerts > 0 ? `, ${drift.alerts} alert${drift.alerts === 1 ? "" : "s"}` : "";
    lines.push(`drift: ${drift.changes} Change${drift.changes === 1 ? "" : "s"}${alerts}`);
    const width = Math.max(...drift.properties.map((p) => Array.from(p.affordance).length));
    for (const p of drift.properties) {
      const alerted = p.alerts > 0 ? `, ${p.alerts} alert${p.alerts === 1 ? "" : "s"}` : "";
      lines.push(
        `  ${p.affordance.padEnd(width)}  ${p.changes} drift${alerted}; last ${p.last.kind === "alert" ? "alert " : ""}${driftValue(p.last.value)} by ${p.last.cause.actor} at ${localTime(p.last.time)}`,
      );
    }
  }
  if (diff.links !== undefined) {
    const { links } = diff;
    const counts = Object.entries(links.counts)
      .map(([kind, n]) => `${n} ${kind}`)
      .join(", ");
    lines.push(
      `links: ${counts}; last ${links.last.kind} ${linkText(links.last.value)} by ${links.last.cause.actor} at ${localTime(links.last.time)}`,
    );
    for (const link of links.added) lines.push(`  + ${linkText(link)}`);
    for (const link of links.removed) lines.push(`  - ${linkText(link)}`);
    if (links.added.length === 0 && links.removed.length === 0) lines.push("  the same links at both ends");
  }
  if (diff.releases !== undefined) lines.push(`releases: ${releasesLine(diff.releases)}`);
  lines.push(`description: ${descriptionLine(diff)}`);
  return `${lines.join("\n")}\n`;
}

/** `1 applied; now evening-lights (sha256:4f1c…) by admin at time`: the releases rolled out in between. */
function releasesLine(r: NonNullable<ThingDiff["releases"]>): string {
  const counts = Object.entries(r.counts)
    .map(([kind, n]) => `${n} ${kind}`)
    .join(", ");
  const now = appliedLabel(r.last.value) ?? JSON.stringify(r.last.value);
  return `${counts}; now ${now} by ${r.last.cause.actor} at ${localTime(r.last.time)}`;
}

/** `reachable → unreachable; 2 unreachable, 1 reachable; last unreachable "why" by actor at time`. */
function reachabilityLine(r: NonNullable<ThingDiff["reachability"]>): string {
  // Absent at an end where the Thing was not in the directory (not registered yet, or removed).
  const state = (reachable: boolean | undefined) =>
    reachable === undefined ? "not in the directory" : reachable ? "reachable" : "unreachable";
  const counts = Object.entries(r.counts).map(([kind, n]) => `${n} ${kind}`);
  const ends =
    counts.length === 0
      ? `${state(r.reachableAtTo)} all along`
      : `${state(r.reachableAtFrom)} → ${state(r.reachableAtTo)}; ${counts.join(", ")}`;
  const value = r.last.value === undefined ? "" : ` ${compactValue(r.last.value)}`;
  return `${ends}; last ${r.last.kind}${value} by ${r.last.cause.actor} at ${localTime(r.last.time)}`;
}

/** A drift Change's value as `drifting: desired 20, observed 26` (any other value as JSON). */
function driftValue(value: unknown): string {
  if (!isObject(value) || typeof value.status !== "string") return compactValue(value);
  const width = VALUE_WIDTH / 2;
  return `${value.status}: desired ${compactValue(value.desired, width)}, observed ${compactValue(value.observed, width)}`;
}

/** A link as a linked/unlinked Change records it: `rel href`. */
function linkText(value: unknown): string {
  if (!isObject(value) || typeof value.rel !== "string" || typeof value.href !== "string")
    return compactValue(value);
  return `${value.rel} ${value.href}`;
}

/**
 * The TD's lines then and now as unified-diff hunks (`@@ -a,b +c,d @@`, 3 lines of context), red
 * and green on a terminal; empty when they are the same.
 */
export async function formatTdPatch(before: unknown, after: unknown, color = false): Promise<string> {
  // Loaded when a diff has a TD to show, not by every `things` command.
  const { structuredPatch } = await import("diff");
  const text = (td: unknown) => `${JSON.stringify(td, null, 2)}\n`;
  const { hunks } = structuredPatch("then", "now", text(before), text(after), "", "", { context: 3 });
  const paint = (line: string) =>
    !color
      ? line
      : line.startsWith("+")
        ? styleText("green", line)
        : line.startsWith("-")
          ? styleText("red", line)
          : line;
  const lines: string[] = [];
  for (const hunk of hunks) {
    lines.push(`  @@ -${hunk.oldStart},${hunk.oldLines} +${hunk.newStart},${hunk.newLines} @@`);
    for (const line of hunk.lines) lines.push(`  ${paint(line)}`);
  }
  return lines.length === 0 ? "" : `${lines.join("\n")}\n`;
}

/** `asked for 1200 by operator at time`: a write, by the value it asked for. */
function askedFor(desired: DiffChange): string {
  return `asked for ${compactValue(desired.value)} by ${desired.cause.actor} at ${localTime(desired.time)}`;
}

/** Whether a diff's description patch is a change of a TD that was there at both ends. */
function changedInPlace(patch: unknown): boolean {
  return isObject(patch) && !("id" in patch);
}

function beforeOf(value: unknown): string {
  return value === undefined ? "(none)" : compactValue(value);
}

/** What became of the TD between the diff's two times, and who did the last of it. */
function descriptionLine(diff: ThingDiff): string {
  const changes = diff.descriptionChanges;
  const what = descriptionChange(diff.description, changes);
  if (changes === undefined) return what;
  const counts = Object.entries(changes.counts);
  const by = `by ${changes.last.cause.actor} at ${localTime(changes.last.time)}`;
  if (counts.length === 1 && counts[0]?.[1] === 1) return `${what}, ${by}`;
  const list = counts.map(([kind, n]) => `${n} ${kind}`).join(", ");
  return `${what} (${list}; the last ${changes.last.kind} ${by})`;
}

function descriptionChange(patch: unknown, changes: ThingDiff["descriptionChanges"]): string {
  if (patch === undefined) {
    if (changes === undefined) return "unchanged";
    // The same at both ends, yet described or removed in between: absent at both (the last
    // was a removal), or the same TD again.
    if (changes.last.kind === "removed") return "registered and removed in between";
    return changes.counts.removed === undefined
      ? "described again in between, as it was"
      : "removed and registered again in between, as it was";
  }
  if (patch === null) return "removed";
  // A Thing's id never changes, so a patch that sets it is a patch from nothing: a registration.
  if (isObject(patch) && "id" in patch) return "registered in between";
  if (isObject(patch)) return `changed (${Object.keys(patch).sort().join(", ")})`;
  return "changed";
}

// ---------------------------------------------------------------------------------------------
// diff without an id: every Thing

/** How many Things `diff` without an id shows unless told. */
const DEFAULT_DIFF_THINGS = 20;
/** The most Things asked of the hub in one page (GET /diff takes up to 100). */
const MAX_DIFF_PAGE = 100;

interface DiffCommandOptions extends FeedOptions {
  from: string;
  to?: string;
  limit?: number;
  cursor?: number;
  json?: boolean;
}

/**
 * A --from or --to still to come is read as now (an empty diff from now to now, or one that runs
 * to now): each said as such on stderr, with yesterday's to give instead.
 */
function writeDiffNotes(options: DiffCommandOptions, from: Date, to: Date | undefined, now: Date): void {
  for (const note of [
    stillToComeNote("--from", options.from, from, now, true),
    stillToComeNote("--to", options.to, to, now, true),
  ]) {
    if (note !== undefined) process.stderr.write(`note: ${note}\n`);
  }
}

/** The options of `diff` that only the diff of every Thing reads. */
const FLEET_ONLY = [
  "thing",
  "type",
  "affordance",
  "kind",
  "actor",
  "release",
  "correlation",
  "limit",
  "cursor",
] as const;

/**
 * `things diff --from T1 [--to T2]`: each Thing's diff, in the order of its first matching Change
 * in between, up to `--limit` Things, the hub's pages followed (a page may be short: the hub
 * scans a bounded stretch of the Log per page). When there are more, a hint on stderr says how to
 * go on, with the two times as the hub read them (a relative time read again would move).
 */
async function fleetDiff(
  options: DiffCommandOptions,
  from: Date,
  to: Date | undefined,
  now: Date,
  command: Command,
): Promise<void> {
  const client = clientOf(command);
  const kinds = kindsOf(options.kind);
  const limit = options.limit ?? DEFAULT_DIFF_THINGS;
  const query = {
    ...feedFilter(options),
    ...(kinds !== undefined && { kind: kinds }),
    from,
    ...(to !== undefined && { to }),
  };
  let page = await client.fleetDiff({
    ...query,
    limit: Math.min(limit, MAX_DIFF_PAGE),
    ...(options.cursor !== undefined && { cursor: options.cursor }),
  });
  const first = page;
  const things = [...page.things];
  while (page.next !== undefined && things.length < limit) {
    page = await client.fleetDiff({
      ...query,
      // The times as the first page read them: `to` left out is that page's now.
      from: first.from,
      to: first.to,
      limit: Math.min(limit - things.length, MAX_DIFF_PAGE),
      cursor: page.next,
    });
    things.push(...page.things);
  }
  const next = page.next;
  writeDiffNotes(options, from, to, now);
  const hint = (): void => {
    if (next === undefined) return;
    process.stderr.write(
      `more Things may have changed after seq ${next}: the same command with --cursor ${next} --from ${first.from} --to ${first.to}\n`,
    );
  };
  if (options.json) {
    const { next: _next, ...ends } = first;
    process.stdout.write(`${JSON.stringify({ ...ends, things, ...(next !== undefined && { next }) })}\n`);
    return hint();
  }
  if (things.length === 0) {
    const why =
      next !== undefined
        ? undefined
        : ((await unknownThingNote(command, options.thing)) ??
          (await unknownAffordanceNote(command, options.affordance, options.thing)));
    process.stderr.write(
      `no Thing changed between ${localTime(first.from)} (seq ${first.fromSeq}) and ${localTime(first.to)} (seq ${first.toSeq})${why === undefined ? "" : `: ${why}`}\n`,
    );
    return hint();
  }
  const heading = `${things.length} Thing${things.length === 1 ? "" : "s"} changed from ${localTime(first.from)} (seq ${first.fromSeq}) to ${localTime(first.to)} (seq ${first.toSeq})`;
  process.stdout.write(`${heading}\n\n${things.map((diff) => formatDiff(diff)).join("\n")}`);
  hint();
}

// ---------------------------------------------------------------------------------------------
// watch

/** What `--type` of changes and watch means (the graph's types: docs/queries.md). */
const TYPE_HELP =
  "only Changes of Things of this type or a subtype when each was made (saref:Sensor, a full IRI, or a class name)";

interface WatchCommandOptions extends FeedOptions {
  json?: boolean;
}

/** One Change as a line of the live tail: `time  seq  thing  affordance  kind  value  by actor`. */
export function watchLine(change: Change): string {
  return [
    localTime(changeTime(change)),
    `#${change.seq}`,
    change.thing,
    change.affordance ?? "-",
    change.kind,
    compactValue(change.value) || "-",
    `by ${change.cause.actor}`,
  ].join("  ");
}

/**
 * A Change as the GraphQL stream gives it, in the Log's own shape: no derived time, and no null
 * standing for a member it does not have (a value or previous value of null is its own).
 */
function asChange(change: GraphqlChange): Change {
  const { time: _time, hasValue: _hasValue, hasPrevious: _hasPrevious, cause, ...rest } = change;
  const has = (name: string, v: unknown) =>
    name === "value" ? change.hasValue : name === "previous" ? change.hasPrevious : v !== null;
  const drop = <T extends object>(members: T): T =>
    Object.fromEntries(Object.entries(members).filter(([name, v]) => has(name, v))) as T;
  return { ...drop(rest), cause: drop(cause) } as Change;
}

async function watch(options: WatchCommandOptions, command: Command): Promise<void> {
  const now = new Date();
  const since = options.since === undefined ? undefined : parseTimeArgument(options.since, now);
  // Nothing has happened since a time still to come: the replay is empty, and watch goes live.
  const sinceNote = stillToComeNote("--since", options.since, since, now, true);
  const kinds = kindsOf(options.kind);
  const filter: GraphqlChangeFilter = { ...feedFilter(options), ...(kinds !== undefined && { kinds }) };
  const stop = new AbortController();
  const onSignal = () => stop.abort();
  process.once("SIGINT", onSignal);
  process.once("SIGTERM", onSignal);
  let opened = false;
  let last = 0;
  const url = connectionOf(command).url.replace(/\/$/, "");
  // Status goes to stderr, so that stdout holds only Changes.
  const client = await graphqlClientOf(command, (status) => {
    if (status.state === "open") {
      process.stderr.write(
        opened
          ? `reconnected; resuming after seq ${last}\n`
          : `watching ${url} after seq ${last}${since ? ` (the last before ${localTime(since.toISOString())})` : ""} (Ctrl-C to stop)\n` +
              (sinceNote === undefined ? "" : `note: ${sinceNote}\n`),
      );
      opened = true;
    } else if (status.state === "closed" && opened && !stop.signal.aborted) {
      // 1006: the socket ended without a close frame — nothing answers at the hub's address.
      const why =
        status.code === undefined
          ? "no reason given"
          : status.code === 1006 && !status.reason
            ? "1006: the hub does not answer"
            : `${status.code}${status.reason ? ` ${status.reason}` : ""}`;
      process.stderr.write(`connection lost (${why}); reconnecting\n`);
    }
  });
  try {
    // A filter the hub refuses (a kind it never records, a type that is no IRI) is said as
    // `things changes` says it, before the stream opens: not as a GraphQL error after "watching".
    // A hub that cannot be reached is said below, by the stream.
    await clientOf(command)
      .changes({ ...feedFilter(options), ...(kinds !== undefined && { kind: kinds }), limit: 1 })
      .catch((err: unknown) => {
        if (err instanceof HubError && err.status === 400) throw err;
      });
    // The Log's end now, or with --since its last Change before that time: the stream starts
    // there (replaying what matches since), and resumes from the last Change it printed.
    last = (await client.request<{ log: { size: number } }>("query LogEnd { log { size } }")).log.size;
    if (since !== undefined) {
      const [first] = (await clientOf(command).changes({ since, limit: 1 })).changes;
      if (first !== undefined) last = Math.min(last, first.seq - 1);
    }
    // Watching for a Thing before it is registered is what watch is for (its registration is its
    // first Change): said as such, with a registered id only for what looks like a typo of it
    // (not for a new Thing named after another); but a mistyped id would wait in silence.
    if (options.thing !== undefined && (await everRegistered(command, options.thing)) === false) {
      const hint = await unknownIdHint(options.thing, command, { typosOnly: true, fallback: "" });
      process.stderr.write(
        `note: no Thing ${options.thing} is registered with this hub yet${hint}; waiting for it: its Changes show once it is\n`,
      );
    }
    // A mistyped affordance would wait in silence too: said (with the nearest name declared),
    // and waited for, since a Thing registered later may declare it.
    const affordanceNote = await unknownAffordanceNote(command, options.affordance, options.thing);
    if (affordanceNote !== undefined)
      process.stderr.write(`note: ${affordanceNote} yet; waiting: its Changes show once one does\n`);
    for await (const change of client.changes(filter, { after: last, signal: stop.signal })) {
      last = change.seq;
      const logged = asChange(change);
      process.stdout.write(`${options.json ? JSON.stringify(logged) : watchLine(logged)}\n`);
    }
  } catch (err) {
    // Stopped (Ctrl-C) while a reconnection was under way: stopped as asked, not failed.
    if (!stop.signal.aborted) throw graphqlFailure(err);
  } finally {
    process.off("SIGINT", onSignal);
    process.off("SIGTERM", onSignal);
    await client.close();
  }
}

// ---------------------------------------------------------------------------------------------
// The commands

export function registerHistoryCommands(program: Command): void {
  const help = () => connectionHelpWith(EXIT_CODES);
  const timeHelp =
    "Times: RFC 3339 (2026-11-25T14:02:00Z), relative (-15m, -1h30m, '2 hours ago') or local (yesterday 14:02, 'last tuesday 14:02', 09:30).";

  /** The options of a paged listing of Changes (history, changes), and its help. */
  const paged = (listing: Command): Command =>
    listing
      .option(
        "--limit <n>",
        `at most this many Changes (default ${DEFAULT_HISTORY_LIMIT})`,
        wholeNumber("--limit", 1),
      )
      .option(
        "--cursor <seq>",
        "go on after this Change: the seq of the last one shown (older ones, or newer with --oldest-first)",
        wholeNumber("--cursor", 1),
      )
      .option("--oldest-first", "oldest first instead of newest first")
      .option("--json", "the Changes as one JSON array, for scripts")
      .addHelpText("after", () => `\n${timeHelp}\n${help()}`);

  paged(
    program
      .command("history")
      .description("a Thing's Changes, newest first: seq, time, affordance, kind, value, actor")
      .argument("<id>", "the Thing's id")
      .option("--affordance <name>", "only Changes of this property, action or event")
      .option("--kind <kinds>", "only these kinds, comma-separated (reported, desired, described, …)")
      .option("--since <time>", "only Changes at or after this time")
      .option("--until <time>", "only Changes at or before this time"),
  ).action(
    talking(async (id: string, options: HistoryCommandOptions, command: Command) =>
      history(id, options, command),
    ),
  );

  paged(
    feedOptions(
      program
        .command("changes")
        .description(
          "the Changes of every Thing, newest first: seq, time, thing, affordance, kind, value, actor",
        ),
    )
      .option("--since <time>", "only Changes at or after this time")
      .option("--until <time>", "only Changes at or before this time"),
  ).action(talking(async (options: ChangesCommandOptions, command: Command) => feed(options, command)));

  program
    .command("state")
    .description("a Thing's state: its TD's title and version, and each property's value, now or at a time")
    .argument("<id>", "the Thing's id")
    .option("--at <time>", "the state as it was at this time (default now)")
    .option("--json", "the state as the hub gives it, on one line")
    .addHelpText("after", () => `\n${timeHelp}\n${help()}`)
    .action(
      talking(async (id: string, options: { at?: string; json?: boolean }, command: Command) => {
        const now = new Date();
        const at = options.at === undefined ? undefined : parseTimeArgument(options.at, now);
        const state = await clientOf(command).stateAt(id, at);
        process.stdout.write(options.json ? `${JSON.stringify(state)}\n` : formatState(state));
        // The hub reads a time still to come as now: the state shown is now's, said as such.
        const note = stillToComeNote("--at", options.at, at, now, true);
        if (note !== undefined) process.stderr.write(`note: ${note}\n`);
      }),
    );

  program
    .command("diff")
    .description(
      "what changed on a Thing between two times: each property before → after, writes, actions, events, reachability, drift, links, and its TD; without an id, on every Thing that changed",
    )
    .argument("[id]", "the Thing's id; without it, every Thing that changed (the filters narrow which)")
    .option("--thing <id>", "without an id: only this Thing")
    .option("--type <type>", "without an id: only Things of this type or a subtype when they changed")
    .option(
      "--affordance <name>",
      "without an id: only Things whose property, action or event of this name changed, each diff narrowed to it",
    )
    .option("--kind <kinds>", "without an id: only Things with Changes of these kinds, comma-separated")
    .option("--actor <actor>", "without an id: only Things with Changes caused by this actor")
    .option("--release <release>", "without an id: only Things with Changes caused by this release")
    .option("--correlation <id>", "without an id: only Things with Changes of this correlation")
    .requiredOption("--from <time>", "the earlier time")
    .option("--to <time>", "the later time (default now)")
    .option(
      "--limit <n>",
      `without an id: at most this many Things (default ${DEFAULT_DIFF_THINGS})`,
      wholeNumber("--limit", 1),
    )
    .option(
      "--cursor <seq>",
      "without an id: go on after the Things shown, from the seq the hint names",
      wholeNumber("--cursor", 0),
    )
    .option(
      "--json",
      "the diff as the hub gives it, on one line (without an id: the page, the pages read merged)",
    )
    .addHelpText("after", () => `\n${timeHelp}\n${help()}`)
    .action(
      talking(async (id: string | undefined, options: DiffCommandOptions, command: Command) => {
        const now = new Date();
        const from = parseTimeArgument(options.from, now);
        const to = options.to === undefined ? undefined : parseTimeArgument(options.to, now);
        checkTimeOrder(
          { option: "--from", text: options.from, time: from },
          { option: "--to", time: to ?? now },
          { now, capAtNow: true },
        );
        if (id === undefined) return fleetDiff(options, from, to, now, command);
        const given = FLEET_ONLY.filter((name) => options[name] !== undefined);
        if (given.length > 0) {
          const flags = given.map((name) => `--${name}`).join(", ");
          throw new CliError(
            `${flags} ${given.length === 1 ? "is" : "are"} for the diff of every Thing: leave out the id ${id}, or ${given.length === 1 ? "that option" : "those options"}`,
            2,
          );
        }
        const client = clientOf(command);
        const diff = await client.diff(id, from, to);
        writeDiffNotes(options, from, to, now);
        if (options.json) return void process.stdout.write(`${JSON.stringify(diff)}\n`);
        let text = formatDiff(diff);
        if (changedInPlace(diff.description)) {
          // The TD at the diff's own two times, as the hub read them: its lines, as a patch.
          const [before, after] = await Promise.all([
            client.stateAt(id, diff.from),
            client.stateAt(id, diff.to),
          ]);
          text += await formatTdPatch(before.td, after.td, process.stdout.isTTY === true);
        }
        process.stdout.write(text);
      }),
    );

  feedOptions(
    program
      .command("watch")
      .description("print Changes as they happen, one per line, until Ctrl-C; resumes if the hub restarts"),
  )
    .option("--since <time>", "first the Changes since this time, then the live ones")
    .option("--json", "each Change as JSON on its own line (NDJSON)")
    .addHelpText("after", () => `\n${timeHelp}\n${help()}`)
    .action(talking(async (options: WatchCommandOptions, command: Command) => watch(options, command)));
}
