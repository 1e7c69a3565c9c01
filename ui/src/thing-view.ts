// A Thing's page: its description, live property values with forms to write them, its actions
// with forms to invoke them, a chart of each numeric property's history, and its change timeline.
import {
  GraphqlClient,
  type Change,
  type DataSchema,
  type PropertyAffordance,
  type RegisteredThingDescription,
} from "../../src/client/index.js";
import type { View } from "./app-context.js";
import { affordanceText, changeRow, changeTable, changeValue } from "./change-row.js";
import { h, replace, show, showTime } from "./dom.js";
import { messageOf, problemBox } from "./errors.js";
import { affordanceLabel, affordanceOfChange } from "./affordance-names.js";
import { historyChart, type HistoryChart } from "./history-chart.js";
import { redrawWhenBack } from "./live.js";
import { hintFor, readableName, schemaForm, type SchemaForm } from "./schema-form.js";
import { storedToken } from "./session.js";
import { descriptionsOverGraphql, ThingDescriptions } from "./thing-descriptions.js";
import { typeOf } from "./thing-graph.js";
import { unitText } from "./units.js";
import { followTitles, isThingId, nameThingLinks, nameThingLinksFrom, thingLink } from "./thing-titles.js";

const TIMELINE_SIZE = 50;
/** The kinds of Change someone or something did to a Thing, as against what it reported. */
const DONE_KINDS = "desired,invoked,completed,failed,described,linked,unlinked,applied,drift";
/** Timeline rows drawn with the page; the rest follow in the next frame. */
const TIMELINE_FIRST = 15;
export const RANGES: Record<string, string> = {
  "-15m": "last 15 minutes",
  "-1h": "last hour",
  "-6h": "last 6 hours",
  "-24h": "last day",
  "-7d": "last week",
};

function isNumeric(schema: DataSchema): boolean {
  return schema.type === "number" || schema.type === "integer";
}

function message(text: string, kind: "ok" | "problem" = "ok"): HTMLElement {
  return h(
    "div",
    { class: kind === "ok" ? "notice" : "problem", role: kind === "ok" ? "status" : "alert" },
    text,
  );
}

export const thingView: View = ({ client, live }, root, id) => {
  performance.mark("thing-start");
  let disposed = false;
  const abort = new AbortController();
  let chartsSeen: IntersectionObserver | undefined;
  let cancelRedraw: (() => void) | undefined;
  const charts: HistoryChart[] = [];
  const pending: Change[] = [];
  let onChange: ((change: Change) => void) | undefined;
  let stopFollowing: (() => void) | undefined;
  const unsubscribe = live.subscribe((change) => {
    if (change.thing !== id) return;
    if (onChange === undefined) pending.push(change);
    else onChange(change);
  });
  replace(root, h("p", { class: "muted" }, `Loading ${id}…`));

  void (async () => {
    let td: RegisteredThingDescription;
    try {
      td = await client.get(id);
    } catch (err) {
      // Nothing to show live values in: stop taking them (they would pile up unseen).
      unsubscribe();
      pending.length = 0;
      const back = disposed ? undefined : redrawWhenBack(live, err);
      cancelRedraw = back?.cancel;
      if (!disposed)
        replace(
          root,
          h("h1", {}, id),
          problemBox(err),
          back?.note,
          h(
            "p",
            {},
            h("a", { href: "#/" }, "Back to the graph"),
            // A Thing removed from the directory keeps its past in the Log.
            " · ",
            h("a", { href: `#/time/${encodeURIComponent(id)}` }, "Its past: state at a time, and diff"),
          ),
        );
      return;
    }
    if (disposed) return;
    const properties = Object.entries(td.properties ?? {});
    const actions = Object.entries(td.actions ?? {});
    const reachability = h("div", { class: "reachability" });
    const valueCells = new Map<string, HTMLElement>();
    const timeCells = new Map<string, HTMLElement>();
    const writeForms = new Map<string, SchemaForm>();

    const propertyRows = properties.map(([name, property]) => {
      const value = h("td", { class: "value", "data-property": name }, "…");
      const time = h("td", { class: "muted" });
      valueCells.set(name, value);
      timeCells.set(name, time);
      return h(
        "tr",
        {},
        h(
          "th",
          {},
          property.title ?? name,
          property.unit !== undefined && h("span", { class: "muted" }, ` ${unitText(property.unit)}`),
        ),
        value,
        time,
        h(
          "td",
          {},
          property.readOnly === true ? h("span", { class: "muted" }, "read-only") : writeForm(name, property),
        ),
      );
    });

    function writeForm(name: string, property: PropertyAffordance): HTMLElement {
      const form = schemaForm(property, name);
      writeForms.set(name, form);
      const outcome = h("div", { class: "outcome" });
      return h(
        "form",
        {
          class: "write",
          "data-property": name,
          onsubmit: (event: Event) => {
            event.preventDefault();
            const reading = form.read();
            if (!reading.ok)
              return replace(
                outcome,
                h(
                  "div",
                  { class: "problem", role: "alert" },
                  h("p", {}, `Not sent: ${reading.errors.join("; ")}`),
                ),
              );
            replace(outcome, message("Writing…"));
            client.writeProperty(id, name, reading.value).then(
              () => replace(outcome, message(`${name} ← ${show(reading.value)} accepted by the Thing.`)),
              (err: unknown) => replace(outcome, problemBox(err)),
            );
          },
        },
        form.element,
        // Several Write buttons on a page: each says which property it writes to a screen reader (in
        // its text, not an aria-label, which a search by label would take for the input's).
        h(
          "button",
          { type: "submit" },
          "Write",
          h("span", { class: "unseen" }, ` ${property.title ?? name}`),
        ),
        outcome,
      );
    }

    const actionForms = actions.map(([name, action]) => {
      // The input named as a person reads it (its title, the action's, or the name made readable),
      // with what it takes (type, unit, range) beside it, not as `enablePort input`.
      const input = action.input;
      const hint = input === undefined ? undefined : hintFor(input);
      const label = input?.title ?? action.title ?? readableName(name);
      const form = input === undefined ? undefined : schemaForm(input, label, undefined, hint?.id);
      const outcome = h("div", { class: "outcome" });
      return h(
        "form",
        {
          class: "invoke",
          "data-action": name,
          onsubmit: (event: Event) => {
            event.preventDefault();
            const reading = form?.read() ?? { ok: true, value: undefined };
            if (!reading.ok)
              return replace(
                outcome,
                h(
                  "div",
                  { class: "problem", role: "alert" },
                  h("p", {}, `Not sent: ${reading.errors.join("; ")}`),
                ),
              );
            replace(outcome, message("Invoking…"));
            client.invokeAction(id, name, reading.value).then(
              (result) =>
                replace(
                  outcome,
                  message(
                    result.status === "completed"
                      ? `Completed${result.output === undefined ? "" : `: ${show(result.output)}`}`
                      : `Running: ${result.href}`,
                  ),
                ),
              (err: unknown) => replace(outcome, problemBox(err)),
            );
          },
        },
        h("h3", {}, action.title ?? readableName(name)),
        action.description !== undefined && h("p", { class: "muted" }, action.description),
        form?.element,
        hint?.element,
        h(
          "button",
          { type: "submit" },
          "Invoke",
          h("span", { class: "unseen" }, ` ${action.title ?? readableName(name)}`),
        ),
        outcome,
      );
    });

    const range = h(
      "select",
      { "aria-label": "Time range" },
      Object.entries(RANGES).map(([value, label]) =>
        h("option", { value, selected: value === "-1h" }, label),
      ),
    );
    const chartBox = h("div", { class: "charts" });
    const numeric = properties.filter(([, property]) => isNumeric(property));
    const drawCharts = () => {
      for (const chart of charts.splice(0)) chart.dispose();
      for (const [name, property] of numeric)
        charts.push(historyChart(client, id, name, range.value, property.unit && unitText(property.unit)));
      // Headed as the Properties table names them (the TD's title), with the name the Log uses
      // as a key only when the title does not already say it (no "Boiler temperature temperature").
      replace(
        chartBox,
        charts.map((chart, i) => {
          const [name, property] = numeric[i] ?? ["", {}];
          return h("div", {}, h("h3", { title: name }, affordanceLabel(name, property)), chart.element);
        }),
      );
    };
    range.addEventListener("change", drawCharts);

    const { table: timeline, body: timelineBody } = changeTable(false);
    // Each row of the timeline opens the chain of its Change's causes (*Why?*), its Things named by
    // title, asked for once drawn and renamed as their TDs change.
    const chainTitles = new Map<string, string>([[id, td.title]]);
    stopFollowing = followTitles(live, timelineBody, chainTitles);
    // Each row's affordance by its title and a reading's or a write's value with its property's
    // unit from the TD in force at that Change, not today's (a unit changed from °C to °F leaves
    // the old rows in °C), as the Changes view does. The timeline's own `described` Changes are
    // versions of its TD, kept at once; the rows older than the oldest of them wait for the TD
    // before it, one request for the Thing, after the rows. Without a `described` Change among
    // the rows, the TD read above is the one in force at every row (the timeline is read after it).
    const graphql = new GraphqlClient({ url: location.origin, token: storedToken() });
    const descriptions = new ThingDescriptions(
      descriptionsOverGraphql((query, variables) =>
        graphql.request(query, variables, { signal: abort.signal }),
      ),
    );
    let versionsSeen = false;
    const shownChanges = new Map<number, Change>();
    const tdAt = (seq: number): unknown =>
      !versionsSeen ? td : descriptions.covers(id, seq) ? descriptions.at(id, seq) : undefined;
    // Another Thing's Change (in a *Why?* chain): its TD is not read here, so its names as they are.
    const affordanceOf = (change: Change) =>
      change.thing === id ? affordanceOfChange(tdAt(change.seq), change) : undefined;
    const unitOf = (change: Change): string | undefined =>
      change.kind === "reported" || change.kind === "desired" ? affordanceOf(change)?.unit : undefined;
    /**
     * The unit of a reading's value before it: that of the TD in force at the reading before it
     * when the timeline holds it; otherwise the reading's own, unless the TD before the one in force
     * measured it in another unit (the value before may have been read under it: none shown).
     */
    const previousUnitOf = (change: Change): string | undefined => {
      let before: Change | undefined;
      for (const [seq, shown] of shownChanges)
        if (
          seq < change.seq &&
          (before === undefined || seq > before.seq) &&
          shown.kind === change.kind &&
          shown.affordance === change.affordance
        )
          before = shown;
      if (before !== undefined) return unitOf(before);
      const unit = unitOf(change);
      const version = versionsSeen ? descriptions.versionAt(id, change.seq) : undefined;
      if (unit === undefined || version === undefined || !descriptions.covers(id, version)) return unit;
      const tdBefore = descriptions.at(id, version);
      // None before it (the Thing's first TD): the value before was read under this one.
      return tdBefore === undefined || affordanceOfChange(tdBefore, change)?.unit === unit ? unit : undefined;
    };
    /** The affordances and values of the rows drawn again, once the TDs in force at them are read. */
    const describeRows = (): void => {
      for (const tr of timelineBody.querySelectorAll<HTMLElement>(":scope > tr.change")) {
        const change = shownChanges.get(Number(tr.dataset.seq));
        if (change === undefined || change.affordance === undefined) continue;
        tr.querySelector("td.affordance")?.replaceChildren(...affordanceText(change, affordanceOf(change)));
        tr.querySelector("td.value")?.replaceChildren(
          ...changeValue(change, { value: unitOf(change), previous: previousUnitOf(change) }).filter(
            (part) => part !== false,
          ),
        );
      }
    };
    const timelineRow = (change: Change): HTMLElement => {
      shownChanges.set(change.seq, change);
      return changeRow(change, rowOptions);
    };
    const rowOptions = {
      unitOf,
      previousUnitOf,
      affordanceOf,
      why: (seq: number) => client.why(seq),
      titleOf: (thing: string) => chainTitles.get(thing),
      chainDrawn: (chain: HTMLElement) => void nameThingLinksFrom(client, chain, chainTitles),
    };
    // A link to another Thing (an id, not a web address) names it by title once the hub says it.
    const linkedThings = (td.links ?? []).map((link) => link.href).filter(isThingId);
    const links = (td.links ?? []).map((link) =>
      h(
        "li",
        {},
        link.rel ?? "link",
        " → ",
        linkedThings.includes(link.href) ? thingLink(link.href) : h("a", { href: link.href }, link.href),
      ),
    );
    const linkList = h("ul", { class: "links", "aria-label": "Its links" }, links);
    // The links into it, from other Things' TDs: what depends on it, what runs on it, what it
    // holds. One request gives them, and the titles of the Things its own links point at.
    const linkedFrom = h("ul", { class: "links", "aria-label": "Links to it", hidden: true });
    client.neighbourhood(id).then(
      (around) => {
        if (disposed) return;
        const titles = new Map<string, string>();
        for (const { node } of around.links) if (node.title !== undefined) titles.set(node.id, node.title);
        nameThingLinks(linkList, titles);
        // The timeline's links added or removed, named too (its Things' titles kept for the chains).
        for (const [thing, title] of titles) if (!chainTitles.has(thing)) chainTitles.set(thing, title);
        nameThingLinks(timelineBody, chainTitles);
        const into = around.links.filter((link) => link.direction === "in");
        replace(
          linkedFrom,
          into.map(({ rel, node }) => h("li", {}, `← ${rel} of `, thingLink(node.id, node.title))),
        );
        linkedFrom.hidden = into.length === 0;
      },
      (err: unknown) => {
        if (disposed) return;
        replace(
          linkedFrom,
          h("li", { class: "muted" }, `The links to it could not be read: ${messageOf(err)}`),
        );
        linkedFrom.hidden = false;
      },
    );

    replace(
      root,
      h("h1", {}, td.title),
      h("p", {}, h("code", {}, id), " ", h("span", { class: "tag" }, typeOf(td))),
      reachability,
      td.description !== undefined && h("p", {}, td.description),
      links.length > 0 && linkList,
      linkedFrom,
      h(
        "p",
        {},
        h("a", { href: `#/time/${encodeURIComponent(id)}` }, "State at a time, and diff between two times"),
      ),
      h("h2", {}, "Properties"),
      properties.length === 0
        ? h("p", { class: "muted" }, "none")
        : h("table", { class: "properties" }, h("tbody", {}, propertyRows)),
      actions.length > 0 && [h("h2", {}, "Actions"), h("div", { class: "actions" }, actionForms)],
      numeric.length > 0 && [h("h2", {}, "History ", range), chartBox],
      h("h2", {}, "Changes"),
      // The timeline holds the newest 50: a busy sensor's readings push a write of ten minutes
      // ago out of it. The Changes view finds it (by kind, actor, release, over a range).
      h(
        "p",
        {},
        `The newest ${TIMELINE_SIZE}, and new ones live. `,
        h(
          "a",
          { href: `#/changes?${new URLSearchParams({ thing: id }).toString()}` },
          "All its Changes, by kind, actor and time",
        ),
        " · ",
        // Who did what to it, without its readings: what a person looks for after an incident.
        h(
          "a",
          {
            href: `#/changes?${new URLSearchParams({ thing: id, kind: DONE_KINDS, since: "-24h" }).toString()}`,
          },
          "What was done to it in the last day: writes, actions, its TD, links, releases",
        ),
        ". Each Change's number opens the Thing as it was just before it.",
      ),
      timeline,
    );
    // Charts (a history request and a uPlot each) are drawn once their box scrolls into view.
    chartsSeen = new IntersectionObserver((entries) => {
      if (!entries.some((entry) => entry.isIntersecting)) return;
      chartsSeen?.disconnect();
      if (!disposed) drawCharts();
    });
    if (numeric.length > 0) chartsSeen.observe(chartBox);

    const setReachability = (change: Change | undefined) => {
      if (change?.kind === "unreachable") {
        replace(
          reachability,
          h(
            "div",
            { class: "problem", role: "alert" },
            h(
              "p",
              {},
              `${td.title} is unreachable since ${showTime(change.hlc ? Number.parseInt(change.hlc.slice(0, 12), 16) : Date.now())}: ${show(change.value)}`,
            ),
          ),
        );
      } else if (change?.kind === "reachable") {
        replace(reachability);
      }
    };
    const setValue = (name: string, value: unknown, time: string | number) => {
      const cell = valueCells.get(name);
      if (cell === undefined) return;
      cell.textContent = show(value);
      writeForms.get(name)?.fill(value);
      cell.classList.remove("flash");
      void cell.offsetWidth;
      cell.classList.add("flash");
      timeCells.get(name)?.replaceChildren(showTime(time));
    };

    try {
      const [state, history, reach] = await Promise.all([
        client.stateAt(id),
        client.history(id, { limit: TIMELINE_SIZE }),
        // Newest first: a `removed` before any turn means the turns are of an earlier registration.
        client.history(id, { kind: ["unreachable", "reachable", "removed"], limit: 1 }),
      ]);
      if (disposed) return;
      for (const [name] of properties) {
        const value = state.properties[name];
        if (value === undefined)
          valueCells.get(name)?.replaceChildren(h("span", { class: "muted" }, "no value yet"));
        else setValue(name, value.value, value.time);
      }
      const lastTurn = reach.changes[0];
      setReachability(lastTurn?.kind === "removed" ? undefined : lastTurn);
      // The TD's versions among the rows (read from the Log's end: all of them from the oldest row
      // on, or from the Thing's start when the timeline holds its whole past).
      const oldest = history.changes.at(-1)?.seq;
      versionsSeen = history.changes.some(
        (change) => change.kind === "described" || change.kind === "removed",
      );
      descriptions.keep(id, history.changes, history.next === undefined || oldest === undefined ? 0 : oldest);
      for (const change of history.changes) shownChanges.set(change.seq, change);
      // The first rows with the page, the others in the next frame (after older rows, before live ones).
      const later = history.changes.slice(TIMELINE_FIRST);
      const marker = h("tr", { hidden: true });
      timelineBody.append(...history.changes.slice(0, TIMELINE_FIRST).map(timelineRow), marker);
      nameThingLinks(timelineBody, chainTitles);
      requestAnimationFrame(() => {
        if (disposed) return;
        marker.replaceWith(...later.map(timelineRow));
        nameThingLinks(timelineBody, chainTitles);
      });
      // The rows older than the timeline's oldest TD version: the TD before it, then drawn again.
      const undescribed = versionsSeen
        ? history.changes.filter(
            (change) => change.affordance !== undefined && !descriptions.covers(id, change.seq),
          )
        : [];
      if (undescribed.length > 0)
        descriptions.cover(undescribed).then(
          () => void (disposed || describeRows()),
          () => undefined, // the hub did not answer: those rows' names and values as they are
        );
      let lastSeq = Math.max(state.seq, history.changes[0]?.seq ?? 0);
      onChange = (change) => {
        if (change.seq <= lastSeq) return;
        lastSeq = change.seq;
        // A new TD (or none): the properties, forms and charts drawn from the old one no longer
        // hold. The page is drawn again from the hub, as opening its address would.
        if (change.kind === "described" || change.kind === "removed") {
          descriptions.learn(change);
          window.dispatchEvent(new HashChangeEvent("hashchange"));
          return;
        }
        if (change.kind === "reported" && change.affordance !== undefined)
          setValue(change.affordance, change.value, Number.parseInt(change.hlc.slice(0, 12), 16));
        setReachability(change);
        for (const chart of charts) chart.add(change);
        const row = timelineRow(change);
        nameThingLinks(row, chainTitles);
        timelineBody.prepend(row);
        while (timelineBody.rows.length > TIMELINE_SIZE * 4) {
          const last = timelineBody.lastElementChild;
          if (last instanceof HTMLElement && last.dataset.seq !== undefined)
            shownChanges.delete(Number(last.dataset.seq));
          last?.remove();
        }
      };
      for (const change of pending.splice(0)) onChange(change);
      performance.mark("thing-rendered");
      performance.measure("thing", "thing-start", "thing-rendered");
      root.dataset.rendered = id;
    } catch (err) {
      unsubscribe();
      pending.length = 0;
      const back = disposed ? undefined : redrawWhenBack(live, err);
      cancelRedraw = back?.cancel;
      if (!disposed) root.prepend(problemBox(err), back?.note ?? "");
    }
  })();

  return () => {
    disposed = true;
    abort.abort();
    stopFollowing?.();
    chartsSeen?.disconnect();
    cancelRedraw?.();
    unsubscribe();
    for (const chart of charts) chart.dispose();
  };
};
