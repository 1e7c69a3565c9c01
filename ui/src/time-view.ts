// Time travel for one Thing: its state at a time T, and what changed between two times
// (GET /things/{id}/state?at=, GET /things/{id}/diff?from=&to=).
import {
  HubError,
  type Change,
  type ChangesQuery,
  type DiffChange,
  type DriftDiff,
  type InteractionClient,
  type InteractionDiff,
  type LinksDiff,
  type ReachabilityDiff,
  type ReleasesDiff,
  type ThingDiff,
  type ThingState,
} from "../../src/client/index.js";
import type { EdgeValue } from "../../src/core/graph-links.js";
import { appliedLabel } from "../../src/core/rollout.js";
import { parseTimeExpression } from "../../src/core/time-expression.js";
import type { View } from "./app-context.js";
import { asCards, h, idFromHash, replace, show, showTime } from "./dom.js";
import { timeOfChange, valueOf } from "./change-row.js";
import { problemBox } from "./errors.js";
import { redrawWhenBack } from "./live.js";
import { jsonDiff } from "./json-diff.js";
import { isThingId, nameThingLinksFrom, thingLink } from "./thing-titles.js";
import { affordanceHeading, affordanceIn, withUnit } from "./affordance-names.js";

/** A diff, and the TDs at its two ends (undefined: not registered then). */
interface LoadedDiff {
  diff: ThingDiff;
  tds: [before: unknown, after: unknown];
  /** Said above the diff when its start is a time the Thing was not in the directory: nothing then. */
  note?: Absence;
}

/** A time the Thing was not in the directory, said in a sentence (and its test id). */
interface Absence {
  text: string;
  testid: "before-registration" | "not-in-directory";
}

/**
 * When the Thing was in the directory, as the Log says: its first registration and each removal,
 * with its registration again if it came back (ms). Before the first, and from a removal to its
 * return, it had no TD: the hub answers a state asked for then with a 404, so the page says so
 * instead of asking.
 */
interface Lifetime {
  /** Its title in its last TD, its id without one. */
  title: string;
  registered?: number;
  away: ReadonlyArray<{ removed: number; back?: number }>;
}

/** The sentence for a time the Thing was not in the directory; undefined when it was. */
function absentAt(lifetime: Lifetime, time: string | undefined): Absence | undefined {
  if (time === undefined) return undefined;
  const at = Date.parse(time);
  const { title, registered } = lifetime;
  if (registered === undefined)
    return { text: `${title} has no registration in the Log.`, testid: "before-registration" };
  if (at < registered)
    return {
      text: `${title} was registered at ${showTime(registered)}; nothing before.`,
      testid: "before-registration",
    };
  const gap = lifetime.away.find(({ removed, back }) => removed <= at && (back === undefined || at < back));
  if (gap === undefined) return undefined;
  const removed = `${title} was removed from the directory at ${showTime(gap.removed)}`;
  return {
    text:
      gap.back === undefined
        ? `${removed}; nothing since.`
        : `${removed} and registered again at ${showTime(gap.back)}; nothing in between.`,
    testid: "not-in-directory",
  };
}

async function loadDiff(
  client: InteractionClient,
  id: string,
  from: string | Date,
  to: string | undefined,
  lifetime: Lifetime,
): Promise<LoadedDiff> {
  const diff = await client.diff(id, from, to);
  // The TDs at the diff's own two times (as the hub read them): they name the affordances and
  // give their units, and when the TD changed, the page draws their lines. Not asked where the
  // Log says there was none (before its registration, after a removal).
  const tdAt = (time: string) =>
    absentAt(lifetime, time) !== undefined
      ? Promise.resolve(undefined)
      : client.stateAt(id, time).then(
          (state): unknown => state.td,
          (err: unknown) => {
            if (err instanceof HubError && err.status === 404) return undefined;
            throw err;
          },
        );
  const [before, after] = await Promise.all([tdAt(diff.from), tdAt(diff.to)]);
  const note = absentAt(lifetime, diff.from);
  return { diff, tds: [before, after], ...(note && { note }) };
}

/** What the time fields take: the hub's time expressions (docs/changes.md), read in this browser. */
export const TIME_HINT = "now, -15m, -2h, 2 hours ago, yesterday 14:02, last tue 9:00, 2026-12-06T14:02";

/** A field for a time expression; empty is now. */
export function timeInput(label: string, value = ""): HTMLInputElement {
  return h("input", {
    type: "text",
    value,
    "aria-label": label,
    placeholder: "now",
    title: TIME_HINT,
    spellcheck: "false",
    autocomplete: "off",
    class: "time",
  });
}

/**
 * A field's time as RFC 3339 for the hub (undefined: empty, which is now), read here as the CLI
 * reads its flags: relative to this browser's clock, a local time in its time zone (the hub would
 * read `14:02` in its own). An unreadable one is an Error naming the field, and nothing is sent.
 */
export function hubTime(input: HTMLInputElement, label: string): string | undefined {
  const text = input.value.trim();
  if (text === "") return undefined;
  try {
    return parseTimeExpression(text, new Date()).toISOString();
  } catch (err) {
    throw new Error(`Not sent: ${label} ${err instanceof Error ? err.message : String(err)}`);
  }
}

function stateTable(state: ThingState): HTMLElement {
  const rows = Object.entries(state.properties).map(([name, value]) => {
    const property = affordanceIn(state.td, "properties", name);
    return h(
      "tr",
      { "data-affordance": name },
      affordanceHeading(name, property),
      h("td", { class: "value" }, withUnit(value.value, property?.unit)),
      h("td", { class: "muted" }, showTime(value.time)),
      h("td", { class: "muted" }, value.cause.actor),
    );
  });
  return h(
    "div",
    { "data-testid": "state" },
    h("p", {}, `At ${showTime(state.at)} (Log position ${state.seq}):`),
    rows.length === 0
      ? h("p", { class: "muted" }, "no property had a value then")
      : h("table", { class: "properties" }, h("tbody", {}, rows)),
  );
}

/** The actions invoked, the properties written or the events emitted in between: how often, and the last one. */
function interactionTable(
  what: "action" | "write" | "event",
  list: readonly InteractionDiff[],
  td: unknown,
): HTMLElement | false {
  if (list.length === 0) return false;
  const group = what === "action" ? "actions" : what === "write" ? "properties" : "events";
  const table = h(
    "table",
    { class: "diff", "data-testid": `diff-${what}s` },
    h("caption", {}, what === "action" ? "Actions" : what === "write" ? "Writes" : "Events"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", {}, what === "write" ? "property" : what),
        h("th", {}, "in between"),
        what === "write" && h("th", {}, "asked for"),
        h("th", {}, "last"),
        h("th", {}, "cause"),
      ),
    ),
    h(
      "tbody",
      {},
      list.map((item) => {
        const affordance = affordanceIn(td, group, item.affordance);
        return h(
          "tr",
          { "data-affordance": item.affordance },
          affordanceHeading(item.affordance, affordance),
          h(
            "td",
            { class: "counts" },
            Object.entries(item.counts)
              .map(([kind, n]) => `${n} ${kind}`)
              .join(", "),
          ),
          // A write's last Change is often its outcome, which has no value: what was asked for.
          what === "write" && askedCell(item.desired, affordance?.unit),
          h(
            "td",
            { class: "last" },
            item.last.kind,
            item.last.value !== undefined && [
              " ",
              // A failure in words (the hub's message, what the device said), not its record as JSON.
              ...(item.last.kind === "failed"
                ? [valueOf(item.last)]
                : withUnit(item.last.value, what === "write" ? affordance?.unit : undefined)),
            ],
          ),
          h("td", { class: "muted" }, `by ${item.last.cause.actor} at ${showTime(item.last.time)}`),
        );
      }),
    ),
  );
  return asCards(table);
}

/** `2 unreachable, 1 reachable` from a section's {kind: count}. */
function countsText(counts: Readonly<Record<string, number>>): string {
  return Object.entries(counts)
    .map(([kind, n]) => `${n} ${kind}`)
    .join(", ");
}

/** Who made a section's last Change, and when. */
function byWhom(last: DiffChange): string {
  const release = last.cause.release === undefined ? "" : `, release ${last.cause.release.slice(0, 19)}`;
  return `by ${last.cause.actor}${release} at ${showTime(last.time)}`;
}

/**
 * Whether the Thing answered at both ends, how often it went away and came back in between, and
 * why last: first, since a Thing that did not answer explains properties that did not change.
 */
function reachabilityTable(reachability: ReachabilityDiff | undefined): HTMLElement | false {
  if (reachability === undefined) return false;
  // Absent at an end where the Thing was not in the directory (not registered yet, or removed).
  const state = (reachable: boolean | undefined) =>
    reachable === undefined
      ? h("td", { class: "muted" }, "not in the directory")
      : h("td", { class: reachable ? "up" : "down" }, reachable ? "reachable" : "unreachable");
  const { last } = reachability;
  const table = h(
    "table",
    { class: "diff", "data-testid": "diff-reachability" },
    h("caption", {}, "Reachability"),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", {}, "at from"),
        h("th", {}, "at to"),
        h("th", {}, "in between"),
        h("th", {}, "last"),
        h("th", {}, "cause"),
      ),
    ),
    h(
      "tbody",
      {},
      h(
        "tr",
        {},
        state(reachability.reachableAtFrom),
        state(reachability.reachableAtTo),
        h(
          "td",
          { class: "counts" },
          Object.keys(reachability.counts).length === 0
            ? `${reachability.reachableAtTo === false ? "unreachable" : "reachable"} all along`
            : countsText(reachability.counts),
        ),
        h("td", { class: "last" }, `${last.kind}${last.value === undefined ? "" : `: ${show(last.value)}`}`),
        h("td", { class: "muted" }, byWhom(last)),
      ),
    ),
  );
  return asCards(table);
}

/** A drift Change's value as `drifting: desired 20, observed 26` (any other value as it is). */
function driftText(value: unknown): string {
  if (typeof value !== "object" || value === null) return show(value);
  const drift = value as { status?: unknown; desired?: unknown; observed?: unknown };
  if (typeof drift.status !== "string") return show(value);
  return `${drift.status}: desired ${show(drift.desired)}, observed ${show(drift.observed)}`;
}

/** The drift Changes in between, by property: how many, and the last as recorded. */
function driftTable(drift: DriftDiff | undefined, td: unknown): HTMLElement | false {
  if (drift === undefined) return false;
  const table = h(
    "table",
    { class: "diff", "data-testid": "diff-drift" },
    h(
      "caption",
      {},
      `Drift: ${drift.changes} Change${drift.changes === 1 ? "" : "s"}` +
        (drift.alerts > 0 ? `, ${drift.alerts} alert${drift.alerts === 1 ? "" : "s"}` : ""),
    ),
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", {}, "property"),
        h("th", {}, "in between"),
        h("th", {}, "last"),
        h("th", {}, "cause"),
      ),
    ),
    h(
      "tbody",
      {},
      drift.properties.map((p) =>
        h(
          "tr",
          { "data-affordance": p.affordance },
          affordanceHeading(p.affordance, affordanceIn(td, "properties", p.affordance)),
          h(
            "td",
            { class: "counts" },
            `${p.changes} drift${p.alerts > 0 ? `, ${p.alerts} alert${p.alerts === 1 ? "" : "s"}` : ""}`,
          ),
          h("td", { class: "last" }, driftText(p.last.value)),
          h("td", { class: "muted" }, byWhom(p.last)),
        ),
      ),
    ),
  );
  return asCards(table);
}

/** A link as its linked/unlinked Change records it: `rel` then its target, a Thing named by title. */
function linkText(link: unknown): Array<string | HTMLElement> {
  if (typeof link !== "object" || link === null) return [show(link)];
  const { rel, href } = link as { rel?: unknown; href?: unknown };
  if (typeof rel !== "string" || typeof href !== "string") return [show(link)];
  return [`${rel} `, isThingId(href) ? thingLink(href) : href];
}

/** The releases rolled out to the Thing in between (`applied` Changes), and the one now active. */
function releasesLine(releases: ReleasesDiff | undefined): HTMLElement | false {
  if (releases === undefined) return false;
  const now = appliedLabel(releases.last.value) ?? show(releases.last.value);
  return h(
    "p",
    { class: "diff-releases", "data-testid": "diff-releases" },
    `Releases: ${countsText(releases.counts)}; now ${now} ${byWhom(releases.last)}`,
  );
}

/** The links added and removed between the two ends, and the link Changes in between. */
function linksTable(links: LinksDiff | undefined): HTMLElement | false {
  if (links === undefined) return false;
  const row = (what: "added" | "removed", link: EdgeValue) =>
    h(
      "tr",
      { class: `link-${what}` },
      h("th", {}, what),
      h("td", {}, link.rel),
      h(
        "td",
        { class: what === "added" ? "after" : "before" },
        isThingId(link.href) ? thingLink(link.href) : link.href,
      ),
    );
  const rows = [...links.added.map((l) => row("added", l)), ...links.removed.map((l) => row("removed", l))];
  const table = h(
    "table",
    { class: "diff", "data-testid": "diff-links" },
    h(
      "caption",
      {},
      `Links: ${countsText(links.counts)}; last ${links.last.kind} `,
      ...linkText(links.last.value),
      ` ${byWhom(links.last)}`,
    ),
    h("thead", {}, h("tr", {}, h("th", {}), h("th", {}, "relation"), h("th", {}, "target"))),
    h(
      "tbody",
      {},
      rows.length > 0
        ? rows
        : h("tr", {}, h("td", { class: "muted", colspan: "3" }, "the same links at both ends")),
    ),
  );
  return asCards(table);
}

/**
 * The TD's lines then and now. A Thing registered or removed in between is all one colour: folded
 * under a line that says so, rather than a page of green.
 */
function descriptionDiff(before: unknown, after: unknown): HTMLElement {
  const lines = jsonDiff(before, after);
  if (before !== undefined && after !== undefined) return lines;
  const count = before === undefined ? lines.dataset.added : lines.dataset.removed;
  return h(
    "details",
    {},
    h("summary", {}, `${before === undefined ? "Registered" : "Removed"} in between: its TD, ${count} lines`),
    lines,
  );
}

/** A JSON value as text with its objects' keys sorted: two values are the same when these are. */
function sortedJson(value: unknown): string {
  return JSON.stringify(value, (_key, item: unknown) =>
    typeof item === "object" && item !== null && !Array.isArray(item)
      ? Object.fromEntries(Object.entries(item).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)))
      : item,
  );
}

/**
 * A property's last write in between, beside what the Thing reported: `asked for 1500 by operator
 * at …`, and when `reported` (given: the property's `after`) is another value, a mark that says so.
 */
function askedCell(
  desired: DiffChange | undefined,
  unit: string | undefined,
  reported?: { value: unknown },
): HTMLElement {
  if (desired === undefined) return h("td", { class: "asked none" });
  const differs = reported !== undefined && sortedJson(reported.value) !== sortedJson(desired.value);
  return h(
    "td",
    { class: differs ? "asked differs" : "asked" },
    "asked for ",
    withUnit(desired.value, unit),
    ` by ${desired.cause.actor} at ${showTime(desired.time)}`,
    differs &&
      h(
        "strong",
        { class: "differs" },
        " — reported ",
        withUnit(reported.value, unit),
        ", not what was asked",
      ),
  );
}

/**
 * The Changes view showing a property's readings between the diff's two times: where a value that
 * changed and came back is told (its ends alone would read as no change at all).
 */
function readingsHref(diff: ThingDiff, affordance: string): string {
  const query = new URLSearchParams({
    thing: diff.thing,
    affordance,
    kind: "reported",
    since: diff.from,
    until: diff.to,
  });
  return `#/changes?${query.toString()}`;
}

function diffTable({ diff, tds, note }: LoadedDiff): HTMLElement {
  // Affordances named as the TD at the end names them (at the start, for a Thing removed since).
  const td = tds[1] ?? tds[0];
  // A column of what was asked for only when a property was written in between.
  const asked = diff.properties.some((property) => property.desired !== undefined);
  const rows = diff.properties.map((property) => {
    const named = affordanceIn(td, "properties", property.affordance);
    // The same value at both ends, moved in between (93 °C, 95 °C, 93 °C): no change of value to
    // strike out, but Changes to see.
    const back = property.before !== undefined && sortedJson(property.before) === sortedJson(property.after);
    const changes = `${property.changes} Change${property.changes === 1 ? "" : "s"}`;
    return h(
      "tr",
      { "data-affordance": property.affordance, class: back ? "back" : undefined },
      affordanceHeading(property.affordance, named),
      // Struck out when there was a value before (an added one has nothing to strike).
      h(
        "td",
        { class: property.before === undefined ? "before none" : back ? "before same" : "before" },
        withUnit(property.before, named?.unit),
      ),
      h("td", { class: "arrow" }, "→"),
      h("td", { class: back ? "after same" : "after" }, withUnit(property.after, named?.unit)),
      asked && askedCell(property.desired, named?.unit, { value: property.after }),
      h(
        "td",
        { class: "counts" },
        back
          ? [
              property.changes > 1 ? "changed and back: " : "reported again, the same: ",
              h(
                "a",
                {
                  href: readingsHref(diff, property.affordance),
                  title: `Its readings from ${showTime(diff.from)} to ${showTime(diff.to)}`,
                },
                `${changes} in between`,
              ),
            ]
          : changes,
      ),
      h(
        "td",
        { class: "muted" },
        property.cause === undefined
          ? ""
          : `last by ${property.cause.actor}${property.cause.release === undefined ? "" : `, release ${property.cause.release.slice(0, 12)}`}${property.cause.rule === undefined ? "" : `, rule ${property.cause.rule}`}`,
      ),
    );
  });
  return h(
    "div",
    { "data-testid": "diff" },
    h(
      "p",
      {},
      `From ${showTime(diff.from)} (seq ${diff.fromSeq}) to ${showTime(diff.to)} (seq ${diff.toSeq}):`,
    ),
    note !== undefined && absenceNotice(note),
    reachabilityTable(diff.reachability),
    rows.length === 0
      ? h("p", { class: "muted" }, "no property changed")
      : asCards(
          h(
            "table",
            { class: "diff" },
            h("caption", {}, "Properties"),
            h(
              "thead",
              {},
              h(
                "tr",
                {},
                h("th", {}, "property"),
                h("th", {}, "before"),
                h("th", { "aria-hidden": "true" }),
                h("th", {}, "after"),
                asked && h("th", {}, "asked for"),
                h("th", {}, "in between"),
                h("th", {}, "cause"),
              ),
            ),
            h("tbody", {}, rows),
          ),
        ),
    interactionTable("write", diff.writes, td),
    interactionTable("action", diff.actions, td),
    interactionTable("event", diff.events, td),
    driftTable(diff.drift, td),
    linksTable(diff.links),
    releasesLine(diff.releases),
    diff.description !== undefined &&
      h(
        "div",
        { "data-testid": "diff-description" },
        h("p", { class: "caption" }, "Description"),
        descriptionDiff(tds[0], tds[1]),
        h(
          "details",
          {},
          h("summary", {}, "As a JSON merge patch (RFC 7396)"),
          h("pre", {}, JSON.stringify(diff.description, null, 2)),
        ),
      ),
  );
}

/** A sentence in place of what the hub could only refuse. */
function absenceNotice({ text, testid }: Absence): HTMLElement {
  return h("p", { class: "notice", "data-testid": testid }, text);
}

/**
 * The Thing's newest Change (undefined: this hub never registered it) and when it was in the
 * directory. Asked of the global feed filtered by the Thing, which answers an id it never had
 * with no Changes, not a 404 the browser's console would show.
 */
/** Removals looked at: each is a stretch of time the Thing was out of the directory. */
const MAX_REMOVALS = 100;

async function lifetimeOf(
  client: InteractionClient,
  id: string,
): Promise<{ last: Change | undefined; lifetime: Lifetime }> {
  const changes = (query: ChangesQuery) => client.changes({ thing: id, limit: 1, ...query });
  const [newest, first, described, removals] = await Promise.all([
    changes({ order: "desc" }),
    changes({ kind: "described", order: "asc" }),
    changes({ kind: "described", order: "desc" }),
    changes({ kind: "removed", order: "asc", limit: MAX_REMOVALS }),
  ]);
  // Each removal lasts until the Thing's next registration, if it came back.
  const away = await Promise.all(
    removals.changes.map(async (removal) => {
      const [back] = (await changes({ kind: "described", order: "asc", cursor: removal.seq })).changes;
      return { removed: timeOfChange(removal), ...(back && { back: timeOfChange(back) }) };
    }),
  );
  const registered = first.changes[0];
  const td = described.changes[0]?.value as { title?: unknown } | undefined;
  return {
    last: newest.changes[0],
    lifetime: {
      title: typeof td?.title === "string" ? td.title : id,
      ...(registered !== undefined && { registered: timeOfChange(registered) }),
      away,
    },
  };
}

export const timeView: View = ({ client, live }, root, argument) => {
  // `#/time/<id>?at=…&from=…&to=…`: what was asked is kept in the address, to be shared or kept
  // (an id the UI puts in an address is percent-encoded, so its first raw `?` starts the times).
  const mark = argument.indexOf("?");
  const id = idFromHash(mark === -1 ? argument : argument.slice(0, mark));
  const params = new URLSearchParams(mark === -1 ? "" : argument.slice(mark + 1));
  let disposed = false;
  let cancelRedraw: (() => void) | undefined;
  // The Thing by its title (its id as the tooltip), and by its id once removed (no title then).
  const heading = h("h1", {}, "Time travel: ", thingLink(id));
  const titles = new Map<string, string>();
  const nameLinks = (under: ParentNode) => void nameThingLinksFrom(client, under, titles);
  replace(root, heading, h("p", { class: "muted" }, "Loading…"));
  // Before the forms: a Thing this hub never knew has no past to travel to, and the page says so.
  lifetimeOf(client, id).then(
    ({ last, lifetime }) => {
      if (disposed) return;
      // Named from its last TD, without asking for a TD that a removed Thing no longer has.
      titles.set(id, last === undefined || last.kind === "removed" ? id : lifetime.title);
      nameLinks(heading);
      if (last === undefined)
        replace(
          root,
          heading,
          h(
            "p",
            { class: "notice", "data-testid": "never-registered" },
            `No Thing with id ${id} has ever been registered here.`,
          ),
          h("p", {}, h("a", { href: "#/" }, "Back to the graph")),
        );
      else forms(last, lifetime);
    },
    (err: unknown) => {
      if (disposed) return;
      const back = redrawWhenBack(live, err);
      cancelRedraw = back?.cancel;
      replace(
        root,
        heading,
        problemBox(err),
        back?.note,
        h("p", {}, h("a", { href: "#/" }, "Back to the graph")),
      );
    },
  );

  function forms(last: Change, lifetime: Lifetime): void {
    // Empty means now; relative times are read when a form is sent, not when the page opened.
    const at = timeInput("At", params.get("at") ?? "");
    const from = timeInput("From", params.get("from") ?? "-15m");
    const to = timeInput("To", params.get("to") ?? "");
    let askedState = params.has("at");
    let askedDiff = params.has("from");
    /** The address says what the page shows (replaced: no new history entry, no redraw). */
    const remember = () => {
      const next = new URLSearchParams();
      if (askedState) next.set("at", at.value.trim());
      if (askedDiff) next.set("from", from.value.trim());
      if (askedDiff && to.value.trim() !== "") next.set("to", to.value.trim());
      const query = next.toString();
      history.replaceState(null, "", `#/time/${encodeURIComponent(id)}${query === "" ? "" : `?${query}`}`);
    };
    /** Out of the directory (before its registration, after a removal) there is no state to ask for. */
    const absent = (time: string | undefined) => absentAt(lifetime, time ?? new Date().toISOString());
    const showState = () =>
      show<ThingState | Absence>(
        stateOut,
        () => {
          const time = hubTime(at, "At");
          const absence = absent(time);
          return absence !== undefined ? Promise.resolve(absence) : client.stateAt(id, time);
        },
        (state) => ("testid" in state ? absenceNotice(state) : stateTable(state)),
      );
    const showDiff = () =>
      show<LoadedDiff | Absence>(
        diffOut,
        () => {
          const end = hubTime(to, "To");
          const start = hubTime(from, "From") ?? new Date().toISOString();
          // Both ends in one stretch out of the directory: nothing to compare (said as the state is).
          const [atStart, atEnd] = [absent(start), absent(end)];
          if (atEnd !== undefined && atStart?.text === atEnd.text) return Promise.resolve(atEnd);
          return loadDiff(client, id, start, end, lifetime);
        },
        (loaded) => ("testid" in loaded ? absenceNotice(loaded) : diffTable(loaded)),
      );
    const stateOut = h("div");
    const diffOut = h("div");
    const show = <T>(out: HTMLElement, request: () => Promise<T>, render: (value: T) => HTMLElement) => {
      let load: Promise<T>;
      try {
        load = request();
      } catch (err) {
        return replace(out, problemBox(err));
      }
      replace(out, h("p", { class: "muted" }, "Loading…"));
      load.then(
        (value) => {
          if (disposed) return;
          replace(out, render(value));
          nameLinks(out);
        },
        (err: unknown) => !disposed && replace(out, problemBox(err)),
      );
    };
    replace(
      root,
      heading,
      last.kind === "removed" &&
        h(
          "p",
          { class: "notice", role: "status", "data-testid": "removed" },
          `Removed from the directory at ${showTime(timeOfChange(last))}; its past stays in the Log.`,
        ),
      h("p", { class: "muted" }, `Times: ${TIME_HINT} (your time zone), or with Z or an offset.`),
      h("h2", {}, "State at a time"),
      h(
        "form",
        {
          class: "filters",
          onsubmit: (event: Event) => {
            event.preventDefault();
            askedState = true;
            remember();
            showState();
          },
        },
        h("label", {}, "At (empty: now)", at),
        h("button", { type: "submit" }, "Show state"),
      ),
      stateOut,
      h("h2", {}, "Diff between two times"),
      h(
        "form",
        {
          class: "filters",
          onsubmit: (event: Event) => {
            event.preventDefault();
            askedDiff = true;
            remember();
            showDiff();
          },
        },
        h("label", {}, "From", from),
        h("label", {}, "To (empty: now)", to),
        h("button", { type: "submit" }, "Show diff"),
      ),
      diffOut,
    );
    if (askedState) showState();
    if (askedDiff) showDiff();
  }

  return () => {
    disposed = true;
    cancelRedraw?.();
  };
};
