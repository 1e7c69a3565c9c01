// The global change feed: the Log's Changes in a time range, filtered by Thing, type, affordance,
// kind, actor, release and correlation, newest first, and live after that (unless the range has an
// end).
import { GraphqlClient, type Change, type ChangeFilter } from "../../src/client/index.js";
import { RECORDED_KINDS } from "../../src/core/change.js";
import type { GraphSummary } from "../../src/client/hub-client.js";
import type { View } from "./app-context.js";
import { affordanceOfChange } from "./affordance-names.js";
import { affordanceText, changeRow, changeTable, changeValue } from "./change-row.js";
import { h, replace, showTime } from "./dom.js";
import { problemBox } from "./errors.js";
import { redrawWhenBack } from "./live.js";
import { storedToken } from "./session.js";
import { descriptionsOverGraphql, ThingDescriptions } from "./thing-descriptions.js";
import { followTitles, nameThingLinks, titleDescribed, titlesOf } from "./thing-titles.js";
import { RANGES } from "./thing-view.js";
import { hubTime, timeInput } from "./time-view.js";

/**
 * Rows a page shows, and *Show more* adds: the range's newest first (a range of 2,000 rows drawn at
 * once was a page ~60,000 px tall); the next ones from the feed's cursor.
 */
const PAGE_ROWS = 100;
/**
 * Every kind but `reported`: what was done to the Things and what happened to them — writes,
 * actions and their outcomes, events, TDs, links, outages, releases, drift — without the readings
 * that bury them on a busy fleet (the demo's sensors report several a second).
 */
const ALL_BUT_READINGS = RECORDED_KINDS.filter((kind) => kind !== "reported").join(",");

/** The filters of the view, as query parameters of its hash and of GET /changes. */
const FIELDS = [
  { name: "thing", label: "Thing", placeholder: "Thing id or title" },
  { name: "type", label: "Type", placeholder: "e.g. saref:Appliance" },
  { name: "affordance", label: "Affordance", placeholder: "e.g. setpoint" },
  { name: "kind", label: "Kinds", placeholder: "e.g. reported,desired" },
  { name: "actor", label: "Actor", placeholder: "e.g. admin" },
  { name: "release", label: "Release", placeholder: "release id" },
  { name: "correlation", label: "Correlation", placeholder: "correlation id" },
] as const;

/** The Since of a range not given one: the last hour, or the whole Log for a correlation. */
function sinceByDefault(correlation: string): string {
  return correlation.trim() === "" ? "-1h" : "";
}

/**
 * How many filters the address puts in force: each field with a value, *Until*, and *Since* when
 * it is not the range's default (the last hour; the Log's start for a correlation).
 */
function activeFilters(params: URLSearchParams): number {
  const filled = (name: string) => (params.get(name)?.trim() ?? "") !== "";
  const since = params.get("since")?.trim() ?? "";
  return (
    FIELDS.filter(({ name }) => filled(name)).length +
    (filled("until") ? 1 : 0) +
    (since !== "" && since !== sinceByDefault(params.get("correlation") ?? "") ? 1 : 0)
  );
}

/** The Thing a link names. */
function idOfLink(link: HTMLElement): string {
  return link.dataset.thingId ?? "";
}

/** "1 Change", "2 Changes". */
function changes(n: number): string {
  return `${n} ${n === 1 ? "Change" : "Changes"}`;
}

export const changesView: View = ({ client, live }, root, query) => {
  let cancelRedraw: (() => void) | undefined;
  const params = new URLSearchParams(query);
  const inputs = FIELDS.map(({ name, label, placeholder }) => ({
    name,
    label,
    input: h("input", { name, placeholder, value: params.get(name) ?? "", "aria-label": label }),
  }));
  // The range: any time the API takes (`-2d`, `yesterday 22:00`), the presets offered as a list;
  // read in this browser, as the time view reads its fields, and sent to the hub as RFC 3339. An
  // `until` closes the range: the page is what the Log held then, and nothing comes live. A
  // correlation is precise (one command's Changes, one rollout step's: a few): without a Since it
  // is looked for in the whole Log, as a command's outcome can come long after it.
  const precise = (params.get("correlation")?.trim() ?? "") !== "";
  const since = timeInput(
    "Since",
    params.get("since")?.trim() || sinceByDefault(params.get("correlation") ?? ""),
  );
  since.setAttribute("list", "change-ranges");
  since.placeholder = precise ? "the Log's start" : "-1h";
  const until = timeInput("Until", params.get("until")?.trim() ?? "");
  const presets = h(
    "datalist",
    { id: "change-ranges" },
    Object.entries(RANGES).map(([value, label]) => h("option", { value }, label)),
  );
  // The Thing field offers the Things by title (their ids as the values sent), read from the
  // hub's graph summary the first time it is used; a title typed whole is sent as its Thing's id.
  const thingInput = inputs.find((field) => field.name === "thing")?.input;
  const thingOptions = h("datalist", { id: "change-things" });
  thingInput?.setAttribute("list", "change-things");
  // One summary for the view: the rows' titles (for more than a few Things) come from it too.
  const abort = new AbortController();
  let summary: Promise<GraphSummary> | undefined;
  const graphSummary = (): Promise<GraphSummary> => (summary ??= client.graphSummary(abort.signal));
  let directory: Promise<Map<string, string>> | undefined;
  const things = (): Promise<Map<string, string>> =>
    (directory ??= graphSummary().then(
      (summary) => {
        const byId = new Map<string, string>();
        for (const thing of summary.things) if (thing.title !== undefined) byId.set(thing.id, thing.title);
        replace(
          thingOptions,
          [...byId].map(([id, title]) => h("option", { value: id, label: title })),
        );
        return byId;
      },
      () => new Map<string, string>(), // no suggestions; the field takes an id as before
    ));
  thingInput?.addEventListener("focus", () => void things());
  /** The Thing field's text as an id: a title that names exactly one Thing (any case) is its id. */
  const thingId = async (text: string): Promise<string> => {
    if (text === "" || text.includes(":")) return text;
    const wanted = text.toLowerCase();
    const named = [...(await things())].filter(([, title]) => title.toLowerCase() === wanted);
    return named.length === 1 ? (named[0]?.[0] ?? text) : text;
  };
  const status = h("div", { class: "muted changes-status" });
  const moreButton = h("button", { type: "button", class: "more", hidden: true }, `Show ${PAGE_ROWS} more`);
  const { table, body } = changeTable(true);
  /** The Changes shown (not the chains of causes opened under some of them). */
  const rowCount = (): number => body.querySelectorAll(":scope > tr.change").length;
  /** The filters into the address: the view is drawn again from it. */
  const applyFilters = (): void => {
    const next = new URLSearchParams();
    for (const { name, input } of inputs) if (input.value.trim() !== "") next.set(name, input.value.trim());
    const from = since.value.trim() || sinceByDefault(next.get("correlation") ?? "");
    if (from !== "") next.set("since", from);
    if (until.value.trim() !== "") next.set("until", until.value.trim());
    // The same address again (Filter pressed twice, or after "now" moved on) reads the range again.
    const hash = `#/changes?${next.toString()}`;
    if (location.hash === hash) window.dispatchEvent(new HashChangeEvent("hashchange"));
    else location.hash = hash;
  };
  const form = h(
    "form",
    {
      id: "change-filters",
      class: "filters",
      onsubmit: (event: Event) => {
        event.preventDefault();
        if (thingInput === undefined) return applyFilters();
        void thingId(thingInput.value.trim()).then((id) => {
          thingInput.value = id;
          applyFilters();
        });
      },
    },
    // Visible labels: a filled-in box no longer shows its placeholder.
    inputs.map(({ label, input }) => h("label", {}, label, input)),
    h("label", {}, "Since", since),
    h("label", {}, "Until", until),
    presets,
    thingOptions,
    h("button", { type: "submit" }, "Filter"),
  );
  // One click to what an incident needs first: the same filters, every kind but the readings.
  const kindInput = inputs.find((field) => field.name === "kind")?.input;
  const butReadings = h(
    "button",
    {
      type: "button",
      "aria-pressed": String(kindInput?.value.trim() === ALL_BUT_READINGS),
      title: ALL_BUT_READINGS.replaceAll(",", ", "),
    },
    "Everything but readings",
  );
  butReadings.addEventListener("click", () => {
    if (kindInput === undefined) return;
    kindInput.value = kindInput.value.trim() === ALL_BUT_READINGS ? "" : ALL_BUT_READINGS;
    form.requestSubmit();
  });
  // On a phone the filters took the whole first screen: there they fold behind one button that
  // says how many are in force (the address's; the CSS shows it under 760 px only, so wide screens
  // keep the form as it was). Folded again when the view is drawn again after Filter: the rows first.
  const active = activeFilters(params);
  const fold = h(
    "button",
    {
      type: "button",
      class: "filters-toggle",
      "aria-expanded": "false",
      "aria-controls": "change-filters",
    },
    active === 0 ? "Filters" : `Filters (${active} active)`,
  );
  fold.addEventListener("click", () =>
    fold.setAttribute("aria-expanded", String(fold.getAttribute("aria-expanded") !== "true")),
  );
  replace(
    root,
    h("h1", {}, "Changes"),
    fold,
    form,
    h(
      "p",
      { class: "quick-filters" },
      butReadings,
      h("span", { class: "muted" }, " — writes, actions, events, TDs, links, outages, releases, drift"),
    ),
    status,
    table,
    moreButton,
  );

  let range: { since?: string; until?: string };
  try {
    // Empty only for a correlation: from the Log's start.
    const start = hubTime(since, "Since");
    const end = hubTime(until, "Until");
    range = { ...(start !== undefined && { since: start }), ...(end !== undefined && { until: end }) };
  } catch (err) {
    replace(status, problemBox(err));
    return () => undefined;
  }
  const closed = range.until !== undefined;
  /** What the rows cover, said with their count. */
  const span = closed
    ? ` from ${range.since === undefined ? "the Log's start" : showTime(range.since)} to ${showTime(range.until ?? "")}`
    : "";

  const value = (name: string) => inputs.find((field) => field.name === name)?.input.value.trim() ?? "";
  const kinds = value("kind")
    .split(",")
    .map((k) => k.trim())
    .filter(Boolean);
  const filter: ChangeFilter = {
    ...(value("thing") !== "" && { thing: value("thing") }),
    ...(value("type") !== "" && { type: value("type") }),
    ...(value("affordance") !== "" && { affordance: value("affordance") }),
    ...(kinds.length > 0 && { kind: kinds }),
    ...(value("actor") !== "" && { actor: value("actor") }),
    ...(value("release") !== "" && { release: value("release") }),
    ...(value("correlation") !== "" && { correlation: value("correlation") }),
  };

  let lastSeq = 0;
  /**
   * Where the range's next page starts (the feed's cursor, newest first: before this seq); undefined
   * once the range's start is shown. Live rows that push old ones out of the page move it up.
   */
  let cursor: number | undefined;
  /** The rows the page holds: a page, and another at each *Show more*. */
  let wanted = PAGE_ROWS;
  let loading = true;
  let counted = false;
  /** How many rows there are, said again as live ones come (the first count would soon lie). */
  const count = () => {
    const shown = rowCount();
    replace(
      status,
      shown === 0
        ? closed
          ? `No Change matches${span}.`
          : "No Change matches in this range; new ones appear here live."
        : cursor !== undefined
          ? `The newest ${changes(shown)} of the range${span}, newest first (it holds more)${closed ? "." : "; new ones appear live."}`
          : `${changes(shown)}${span}, newest first${closed ? "." : "; new ones appear live."}`,
    );
  };
  // Each row names its Thing by title (the id as the tooltip). The titles come after the rows,
  // from the hub, for the Things the page shows, and for those that come live, a second later;
  // until then (and for a Thing removed since), a Thing a `described` Change shows is named by the
  // title its TD had then, and any other by its id. A Thing renamed while the page is shown is
  // renamed in it, in the rows and in the *Why?* chains open under them.
  const titles = new Map<string, string>();
  const asked = new Set<string>();
  const stopFollowing = followTitles(live, body, titles);
  const learn = (change: Change): void => {
    const title = titleDescribed(change);
    if (title !== undefined && !titles.has(change.thing)) titles.set(change.thing, title);
  };
  // Each row's affordance by its title and each value with its property's unit, from the TD its
  // Thing had at the Change (a unit renamed since shows the old one on the old rows): each Thing's
  // TD versions over the page's span, asked for after the rows, several Things a request
  // (GraphQL), and kept for *Show more*; versions that come live are followed from the Log's end
  // as the page read it (below), so live rows need no request.
  const graphql = new GraphqlClient({ url: location.origin, token: storedToken() });
  const descriptions = new ThingDescriptions(
    descriptionsOverGraphql((query, variables) =>
      graphql.request(query, variables, { signal: abort.signal }),
    ),
  );
  const shownChanges = new Map<number, Change>();
  /** A Change's affordance as the TD in force at it declares it (its title, a property's unit). */
  const affordanceOf = (change: Change) =>
    affordanceOfChange(descriptions.at(change.thing, change.seq), change);
  const unitOf = (change: Change): string | undefined =>
    change.kind === "reported" || change.kind === "desired" ? affordanceOf(change)?.unit : undefined;
  /**
   * The unit of a reading's value before it: the reading's own, unless the TD in force changed the
   * property's unit (°C to °F) and no reading of it shown lies between that TD and this one — then
   * the value before may have been read under the old unit, and is shown without one.
   */
  const previousUnitOf = (change: Change): string | undefined => {
    const unit = unitOf(change);
    const version = descriptions.versionAt(change.thing, change.seq);
    if (unit === undefined || version === undefined) return unit;
    // The TD before it (not read when this page needs none of its rows: taken as the same unit).
    const tdBefore = descriptions.covers(change.thing, version)
      ? descriptions.at(change.thing, version)
      : undefined;
    if (tdBefore === undefined || affordanceOfChange(tdBefore, change)?.unit === unit) return unit;
    for (const [seq, shown] of shownChanges)
      if (
        seq > version &&
        seq < change.seq &&
        shown.thing === change.thing &&
        shown.kind === change.kind &&
        shown.affordance === change.affordance
      )
        return unit;
    return undefined;
  };
  /** Reads the TDs in force at these Changes, then draws their Things' rows again with them. */
  const describe = async (shown: Iterable<Change>): Promise<void> => {
    const wanted = [...shown].filter((change) => change.affordance !== undefined);
    if (wanted.length === 0) return;
    const read = await descriptions.cover(wanted);
    // Those read now, and those another reading was already bringing when these rows came.
    if (!abort.signal.aborted) describeRows(new Set([...read, ...wanted.map((change) => change.thing)]));
  };
  /** The affordances and values of these Things' rows drawn again, as their TDs then name them. */
  const describeRows = (things: ReadonlySet<string>): void => {
    for (const tr of body.querySelectorAll<HTMLElement>(":scope > tr.change")) {
      if (!things.has(tr.dataset.thing ?? "")) continue;
      const change = shownChanges.get(Number(tr.dataset.seq));
      const named = change === undefined ? undefined : affordanceOf(change);
      if (change === undefined || named === undefined) continue;
      tr.querySelector("td.affordance")?.replaceChildren(...affordanceText(change, named));
      tr.querySelector("td.value")?.replaceChildren(
        ...changeValue(change, { value: unitOf(change), previous: previousUnitOf(change) }).filter(
          (part) => part !== false,
        ),
      );
    }
  };
  const row = (change: Change): HTMLElement => {
    learn(change);
    shownChanges.set(change.seq, change);
    return changeRow(change, {
      showThing: true,
      unitOf,
      previousUnitOf,
      affordanceOf,
      titleOf: (id) => titles.get(id),
      why: (seq) => client.why(seq),
      chainDrawn: (chain) =>
        askTitles([...chain.querySelectorAll<HTMLElement>("a[data-thing-id]")].map(idOfLink)),
    });
  };
  /** Asks for the titles of Things not asked for yet; `now`: from a summary read now, not the view's. */
  const askTitles = (ids: Iterable<string>, now = false): void => {
    const fresh = [...ids].filter((id) => !asked.has(id));
    if (fresh.length === 0) return;
    for (const id of fresh) asked.add(id);
    const from = now ? () => client.graphSummary(abort.signal) : graphSummary;
    void titlesOf(client, fresh, from).then((found) => {
      if (abort.signal.aborted) return;
      for (const [id, title] of found) titles.set(id, title);
      nameThingLinks(body, titles);
    });
  };
  /** Things that came live, asked for together: a burst of them costs one request. */
  const arrived = new Set<string>();
  let arrivedTimer: ReturnType<typeof setTimeout> | undefined;
  const arrivedUndescribed: Change[] = [];
  const askLater = (change: Change, shown: HTMLElement): void => {
    if (change.affordance !== undefined && !descriptions.covers(change.thing, change.seq))
      arrivedUndescribed.push(change);
    // Its Thing, and the one a link added or removed points at.
    const ids = [...shown.querySelectorAll<HTMLElement>("a[data-thing-id]")].map(idOfLink);
    for (const id of ids) if (!asked.has(id)) arrived.add(id);
    if (arrived.size === 0 && arrivedUndescribed.length === 0) return;
    arrivedTimer ??= setTimeout(() => {
      arrivedTimer = undefined;
      // Things that came after the view's summary may be new to the hub since.
      askTitles([...arrived], true);
      arrived.clear();
      // Rows still drawn, of Things whose TDs this page has not read.
      const undescribed = arrivedUndescribed.splice(0).filter((change) => shownChanges.has(change.seq));
      void describe(undescribed).catch(() => undefined);
    }, 1000);
  };
  const show = (change: Change) => {
    if (change.seq <= lastSeq) return;
    lastSeq = change.seq;
    const shown = row(change);
    body.prepend(shown);
    askLater(change, shown);
    // The page keeps its size: the oldest rows go (with a chain opened under one), and the next
    // page starts where it now ends, so *Show more* brings them back.
    if (!loading && rowCount() > wanted) {
      while (rowCount() > wanted) {
        const last = body.lastElementChild;
        if (!(last instanceof HTMLElement)) break;
        if (last.dataset.seq !== undefined) shownChanges.delete(Number(last.dataset.seq));
        last.remove();
      }
      const end = body.querySelector<HTMLElement>(":scope > tr.change:last-of-type");
      if (end?.dataset.seq !== undefined) cursor = Number(end.dataset.seq);
      moreButton.hidden = false;
    }
    if (counted) count();
  };
  /**
   * The range's next rows, newest first, after those shown, until `wanted` or the range's start:
   * one request, or more when a filter the hub scans the Log for (kind, actor, type, release)
   * answers a page short, or empty, with `next` (it reads a stretch of the Log per page).
   */
  const readPages = async (): Promise<void> => {
    loading = true;
    moreButton.disabled = true;
    const read: Change[] = [];
    do {
      const page = await client.changes({
        ...filter,
        ...range,
        limit: wanted - rowCount(),
        order: "desc",
        ...(cursor !== undefined && { cursor }),
      });
      if (abort.signal.aborted) return;
      body.append(...page.changes.map(row));
      read.push(...page.changes);
      lastSeq = Math.max(lastSeq, page.changes[0]?.seq ?? 0);
      cursor = page.next;
      if (cursor !== undefined && rowCount() < wanted)
        replace(status, `Reading the range… ${changes(rowCount())} so far.`);
    } while (cursor !== undefined && rowCount() < wanted);
    loading = false;
    moreButton.disabled = false;
    moreButton.hidden = cursor === undefined;
    // The rows' Things, and those their links added or removed point at.
    askTitles(new Set([...body.querySelectorAll<HTMLElement>("a[data-thing-id]")].map(idOfLink)));
    // No TDs (the hub did not answer): the names and values as they are.
    void describe(read).catch(() => undefined);
  };
  moreButton.addEventListener("click", () => {
    if (loading) return;
    wanted = rowCount() + PAGE_ROWS;
    readPages().then(count, (err: unknown) => {
      if (abort.signal.aborted) return;
      loading = false;
      moreButton.disabled = false;
      replace(status, problemBox(err));
    });
  });

  void (async () => {
    try {
      // The Log's end first: the page holds everything up to it (and maybe more), and the live
      // stream goes on after it, filtered by the hub as the page is (a Thing's type is the hub's
      // to know), so that no Change falls between the two and none is shown twice.
      const head = (await client.health()).lastSeq;
      const early: Change[] = [];
      let loaded = false;
      const stream = (async () => {
        // A closed range takes no live Change: they all come after its end.
        if (closed) return;
        // From the stream the browser's tabs share (live.ts): a tab of its own would use one of the
        // browser's 6 connections to the hub.
        for await (const change of live.watch(filter, { lastEventId: head, signal: abort.signal })) {
          if (loaded) show(change);
          else early.push(change);
        }
      })();
      // Awaited below, once the page is shown; a page that fails first must not leave it unhandled.
      stream.catch(() => undefined);
      // The TDs that come after the Log's end as read, on the same shared stream, none missed
      // (the header's feed starts when it connects, maybe after a TD the page did not read): the
      // rows of their Things named again, whichever of the TD and a row after it came first.
      if (!closed)
        void (async () => {
          const described = { kind: ["described", "removed"] };
          for await (const change of live.watch(described, { lastEventId: head, signal: abort.signal })) {
            descriptions.learn(change);
            describeRows(new Set([change.thing]));
          }
        })().catch(() => undefined); // a row's names are a help: the values stay as they are
      // The range's newest page: a busy hub's week holds millions, and reading them all oldest
      // first to keep the last rows took one request per 500 of them.
      await readPages();
      if (abort.signal.aborted) return;
      loaded = true;
      for (const change of early) show(change);
      counted = true;
      count();
      await stream;
    } catch (err) {
      if (abort.signal.aborted) return;
      const back = redrawWhenBack(live, err);
      cancelRedraw = back?.cancel;
      replace(status, problemBox(err), back?.note);
      // The page or the stream failed: the other one stops too.
      abort.abort();
    }
  })();

  return () => {
    abort.abort();
    stopFollowing();
    cancelRedraw?.();
    if (arrivedTimer !== undefined) clearTimeout(arrivedTimer);
  };
};
