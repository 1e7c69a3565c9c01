// One Change as a row: when, which Thing and affordance, what kind, the value (and the one
// before), and its cause — actor, protocol, release, rule.
import type { Change } from "../../src/client/index.js";
import { h, show, showTime } from "./dom.js";
import { thingLink } from "./thing-titles.js";

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
 * The time view around a Change: the Thing as it was just before it (`at`), and what changed from
 * then to the Change's own time (`from`, `to`). Times to the millisecond, as the Log keeps them.
 */
export function aroundHref(change: Pick<Change, "thing" | "hlc">): string {
  const time = timeOfChange(change);
  const before = new Date(time - 1).toISOString();
  const query = new URLSearchParams({ at: before, from: before, to: new Date(time).toISOString() });
  return `#/time/${encodeURIComponent(change.thing)}?${query.toString()}`;
}

export function changeRow(
  change: Change,
  options: { showThing?: boolean; titleOf?: (id: string) => string | undefined } = {},
): HTMLElement {
  const cause = change.cause;
  return h(
    "tr",
    { class: `change kind-${change.kind}`, "data-seq": change.seq },
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
    h("td", {}, h("span", { class: "kind" }, change.kind)),
    h("td", {}, change.affordance ?? ""),
    h(
      "td",
      { class: "value" },
      change.value === undefined ? "" : valueText(change.value),
      change.previous !== undefined &&
        h("span", { class: "muted" }, " (was ", valueText(change.previous), ")"),
    ),
    h(
      "td",
      { class: "cause" },
      cause.actor,
      cause.via !== undefined && h("span", { class: "muted" }, ` via ${cause.via}`),
      cause.release !== undefined && h("span", { class: "tag" }, `release ${cause.release.slice(0, 12)}`),
      cause.rule !== undefined && h("span", { class: "tag" }, `rule ${cause.rule}`),
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
