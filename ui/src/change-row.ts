// One Change as a row: when, which Thing and affordance, what kind, the value (and the one
// before), and its cause — actor, protocol, release, rule — with a way to read the chain of causes
// behind it (GET /changes/{seq}/why).
import type { Change, Why } from "../../src/client/index.js";
import { h, replace, show, showTime } from "./dom.js";
import { problemBox, saidByDevice } from "./errors.js";
import { isThingId, thingLink } from "./thing-titles.js";
import { affordanceLabel, withUnit, type Named } from "./affordance-names.js";

/** The hub clock's wall time of a Change (its hlc begins with 12 hex digits of milliseconds). */
export function timeOfChange(change: Pick<Change, "hlc">): number {
  return Number.parseInt(change.hlc.slice(0, 12), 16);
}

const MAX_VALUE_TEXT = 160;

/** A value cut to a line or two (a `described` Change holds a whole TD); all of it as the tooltip. */
function valueText(value: unknown): HTMLElement {
  const text = show(value);
  return text.length <= MAX_VALUE_TEXT
    ? h("span", {}, text)
    : h("span", { title: text.slice(0, 4000) }, `${text.slice(0, MAX_VALUE_TEXT)}…`);
}

/**
 * What a `failed` Change records, in words: the hub's message and what the device said (its
 * answer's body is JSON in JSON otherwise, escaped twice); the record as it is, as the tooltip.
 */
function failureText(value: unknown): HTMLElement {
  const failure = typeof value === "object" && value !== null ? (value as Record<string, unknown>) : {};
  if (typeof failure.message !== "string") return valueText(value);
  return h(
    "span",
    { class: "failure", title: show(value).slice(0, 4000) },
    `${failure.message}${saidByDevice(failure.body)}`,
  );
}

/**
 * A link added or removed as a person reads it: `partOf → Boiler`, the Thing it points at a link
 * named by its title (not `{"rel":"partOf","href":"urn:…"}`); the record as it is, as the tooltip.
 */
function linkText(value: unknown): HTMLElement {
  const link = typeof value === "object" && value !== null ? (value as Record<string, unknown>) : {};
  const { rel, href } = link;
  if (typeof rel !== "string" || typeof href !== "string") return valueText(value);
  return h(
    "span",
    { class: "link-change", title: show(value).slice(0, 4000) },
    `${rel} → `,
    isThingId(href) ? thingLink(href) : href,
  );
}

/** How many of a TD's affordances of a kind: `2 properties`, `1 action`. */
function affordanceCount(td: Record<string, unknown>, group: string, one: string, many: string): string {
  const affordances = td[group];
  const n = typeof affordances === "object" && affordances !== null ? Object.keys(affordances).length : 0;
  return n === 0 ? "" : `${n} ${n === 1 ? one : many}`;
}

/**
 * A TD registered or replaced, in a line: its title and what it offers (`TD Boiler: 2 properties,
 * 1 action`), where its JSON's first 160 characters were `@context` alone; all of it as the tooltip.
 */
function descriptionText(value: unknown): HTMLElement {
  if (typeof value !== "object" || value === null || Array.isArray(value)) return valueText(value);
  const td = value as Record<string, unknown>;
  const offers = [
    affordanceCount(td, "properties", "property", "properties"),
    affordanceCount(td, "actions", "action", "actions"),
    affordanceCount(td, "events", "event", "events"),
  ].filter((part) => part !== "");
  const title = typeof td.title === "string" ? td.title : "without a title";
  return h(
    "span",
    { class: "description", title: show(value).slice(0, 4000) },
    `TD ${title}${offers.length === 0 ? "" : `: ${offers.join(", ")}`}`,
  );
}

/**
 * A Change's value as a row shows it: a failure in words, a link as its relation and its Thing, a
 * TD by its title, anything else as short text.
 */
export function valueOf(change: Pick<Change, "kind" | "value">): HTMLElement {
  if (change.kind === "failed") return failureText(change.value);
  if (change.kind === "linked" || change.kind === "unlinked") return linkText(change.value);
  if (change.kind === "described") return descriptionText(change.value);
  return valueText(change.value);
}

/**
 * The time view around a Change: the Thing as it was just before it (`at`), and what changed from
 * then to the Change's own time (`from`, `to`). Times to the millisecond, as the Log keeps them.
 */
export function aroundHref(change: Pick<Change, "thing" | "hlc">): string {
  const time = timeOfChange(change);
  const before = new Date(time - 1).toISOString();
  const query = new URLSearchParams({ at: before, from: before, to: new Date(time).toISOString() });
  return `#/time/${encodeURIComponent(change.thing)}?${query.toString()}`;
}

/**
 * The Changes view of a Change's correlation (one command's Changes, one rollout step's): all of
 * them, however long before the Change the first one came (a correlation is a precise filter: the
 * view reads the whole Log for it), and live after it.
 */
export function correlationHref(change: Pick<Change, "cause">): string {
  const query = new URLSearchParams({ correlation: change.cause.correlation ?? "" });
  return `#/changes?${query.toString()}`;
}

/** A correlation as a short tag: a long one cut, all of it as the tooltip. */
function correlationTag(change: Change): HTMLElement | false {
  const correlation = change.cause.correlation;
  if (correlation === undefined) return false;
  return h(
    "a",
    {
      class: "tag correlation",
      href: correlationHref(change),
      title: `The Changes of correlation ${correlation}: one command's, one rollout step's`,
    },
    `correlation ${correlation.length > 16 ? `${correlation.slice(0, 12)}…` : correlation}`,
  );
}

/** The kinds whose value is the property's own (read, or asked for): shown with its unit. */
const PROPERTY_VALUE_KINDS = new Set(["reported", "desired"]);

/**
 * A Change's value cell: the value, with its property's unit (`21.5 °C`) for a reading or a write
 * when `units.value` is given, and the value before it for a reading, with `units.previous` (the
 * same unit unless said: a reading's TD may have changed its unit since the one before it).
 */
export function changeValue(
  change: Change,
  units: { value?: string | undefined; previous?: string | undefined } = {},
): Array<string | HTMLElement | false> {
  const quantity = (value: unknown, unit: string | undefined) =>
    unit !== undefined && typeof value === "number" ? withUnit(value, unit) : [valueText(value)];
  return [
    change.value === undefined
      ? ""
      : PROPERTY_VALUE_KINDS.has(change.kind)
        ? h("span", {}, ...quantity(change.value, units.value))
        : valueOf(change),
    // What the property held before (docs/changes.md: `previous` is the value before for the
    // same Thing, affordance and kind): only a reported value's previous is a value the Thing
    // held. An invocation's is the input of the invocation before it, a failure's the failure
    // before it, a write's the value asked for before: none of them what this one replaced.
    change.previous !== undefined &&
      change.kind === "reported" &&
      h("span", { class: "muted" }, " (was ", ...quantity(change.previous, units.previous), ")"),
  ];
}

export interface ChangeRowOptions {
  /** A column with the Change's Thing. */
  showThing?: boolean;
  /** A Thing's title, when known, for the links to it. */
  titleOf?: (id: string) => string | undefined;
  /** The chain of causes behind a Change (the client's `why`): with it, each row has a *Why?* button. */
  why?: (seq: number) => Promise<Why>;
  /**
   * Called with a chain once drawn: the view names the Things its links point at that `titleOf`
   * did not know (they show their ids until then), and renames them as their TDs change.
   */
  chainDrawn?: (chain: HTMLElement) => void;
  /** The unit of the Change's property in its Thing's TD, when known (`Cel`). */
  unitOf?: (change: Change) => string | undefined;
  /** The unit of the value before it, when not `unitOf`'s (undefined: none shown). */
  previousUnitOf?: (change: Change) => string | undefined;
  /** The Change's affordance as its Thing's TD (the one in force then) declares it: its title. */
  affordanceOf?: (change: Change) => Named | undefined;
}

/**
 * A Change's affordance cell's content: its TD title when known, with its name beside it in code
 * font where the title does not say it (`Boiler setpoint`, `Mode state`); the name alone otherwise.
 */
export function affordanceText(
  change: Pick<Change, "affordance">,
  named?: Named,
): Array<string | HTMLElement> {
  return change.affordance === undefined ? [] : affordanceLabel(change.affordance, named);
}

/** A Change's affordance cell: named as `affordanceText` says, its name the tooltip. */
function affordanceCell(change: Change, named: Named | undefined): HTMLElement {
  return h(
    "td",
    { class: "affordance", ...(change.affordance !== undefined && { title: change.affordance }) },
    ...affordanceText(change, named),
  );
}

/**
 * A Change in a line: its number (to the Thing around it), Thing, kind, affordance, value and actor;
 * the affordance by its title and a reading's or a write's value with its unit where the view knows
 * the TD in force at that Change (its name and the bare value otherwise).
 */
function changeInLine(change: Change, options: ChangeRowOptions): (HTMLElement | false)[] {
  const { titleOf } = options;
  const named = change.affordance === undefined ? undefined : options.affordanceOf?.(change);
  const unit = PROPERTY_VALUE_KINDS.has(change.kind) ? options.unitOf?.(change) : undefined;
  return [
    h(
      "a",
      { href: aroundHref(change), title: "The Thing just before this Change, and what it changed" },
      `Change ${change.seq}`,
    ),
    h("span", {}, " ", thingLink(change.thing, titleOf?.(change.thing))),
    h("span", { class: "kind" }, ` ${change.kind}`),
    h("span", {}, change.affordance === undefined ? "" : [" ", ...affordanceText(change, named)]),
    h(
      "span",
      {},
      change.value === undefined
        ? ""
        : [
            " ",
            ...(unit !== undefined && typeof change.value === "number"
              ? withUnit(change.value, unit)
              : [valueOf(change)]),
          ],
    ),
    h("span", { class: "muted" }, ` by ${change.cause.actor} at ${showTime(timeOfChange(change))}`),
    correlationTag(change),
  ];
}

/** The chain of causes behind a Change, newest first, and where it ends. */
function whyChain(why: Why, options: ChangeRowOptions): HTMLElement {
  return h(
    "div",
    { class: "why-chain", role: "group", "aria-label": `Why Change ${why.change.seq} happened` },
    why.chain.length === 0
      ? h("p", { class: "muted" }, "No Change in the Log led to it: its own cause is its origin.")
      : h(
          "ol",
          {},
          why.chain.map((link) =>
            h(
              "li",
              {},
              h("span", { class: "muted" }, `${link.relation}: `),
              changeInLine(link.change, options),
            ),
          ),
        ),
    h("p", { class: "origin" }, h("strong", {}, "Origin: "), why.origin),
  );
}

/**
 * *Why?*: opens, in a row under the Change's, the chain of its causes as the hub reads it from the
 * Log; pressed again, closes it.
 */
function whyButton(change: Change, options: ChangeRowOptions): HTMLElement | false {
  const why = options.why;
  if (why === undefined) return false;
  let opened: HTMLTableRowElement | undefined;
  const button = h(
    "button",
    {
      type: "button",
      class: "why",
      "aria-expanded": "false",
      "aria-label": `Why did Change ${change.seq} happen?`,
      title: "The chain of causes behind this Change",
    },
    "Why?",
  );
  button.addEventListener("click", () => {
    const row = button.closest("tr");
    if (opened !== undefined || row === null) {
      opened?.remove();
      opened = undefined;
      button.setAttribute("aria-expanded", "false");
      return;
    }
    const cell = h("td", { colspan: row.cells.length }, h("span", { class: "muted" }, "Reading the Log…"));
    const shown = h("tr", { class: "why" }, cell);
    opened = shown;
    row.after(shown);
    button.setAttribute("aria-expanded", "true");
    why(change.seq).then(
      (answer) => {
        const chain = whyChain(answer, options);
        replace(cell, chain);
        options.chainDrawn?.(chain);
      },
      (err: unknown) => replace(cell, problemBox(err)),
    );
  });
  return button;
}

/** The units of a Change's value and of the one before it. */
function unitsOf(change: Change, options: ChangeRowOptions): { value?: string; previous?: string } {
  const value = options.unitOf?.(change);
  const previous = options.previousUnitOf === undefined ? value : options.previousUnitOf(change);
  return { ...(value !== undefined && { value }), ...(previous !== undefined && { previous }) };
}

export function changeRow(change: Change, options: ChangeRowOptions = {}): HTMLElement {
  const cause = change.cause;
  return h(
    "tr",
    { class: `change kind-${change.kind}`, "data-seq": change.seq, "data-thing": change.thing },
    // What did it look like before? The seq opens the Thing just before and after this Change.
    h(
      "td",
      { class: "seq" },
      h(
        "a",
        {
          href: aroundHref(change),
          title: "The Thing just before this Change, and what it changed",
          "aria-label": `Change ${change.seq}: the Thing before and after it`,
        },
        String(change.seq),
      ),
    ),
    h("td", { class: "time" }, showTime(timeOfChange(change))),
    options.showThing === true &&
      h("td", { class: "thing" }, thingLink(change.thing, options.titleOf?.(change.thing))),
    h("td", { class: "change-kind" }, h("span", { class: "kind" }, change.kind)),
    affordanceCell(change, options.affordanceOf?.(change)),
    h("td", { class: "value" }, changeValue(change, unitsOf(change, options))),
    h(
      "td",
      { class: "cause" },
      cause.actor,
      cause.via !== undefined && h("span", { class: "muted" }, ` via ${cause.via}`),
      cause.release !== undefined && h("span", { class: "tag" }, `release ${cause.release.slice(0, 12)}`),
      cause.rule !== undefined && h("span", { class: "tag" }, `rule ${cause.rule}`),
      correlationTag(change),
      whyButton(change, options),
    ),
  );
}

export function changeTable(showThing: boolean): { table: HTMLTableElement; body: HTMLTableSectionElement } {
  const body = h("tbody");
  const table = h(
    "table",
    { class: "changes" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        h("th", {}, "seq"),
        h("th", {}, "time"),
        showThing && h("th", {}, "Thing"),
        h("th", {}, "kind"),
        h("th", {}, "affordance"),
        h("th", {}, "value"),
        h("th", {}, "cause"),
      ),
    ),
    body,
  );
  return { table, body };
}
