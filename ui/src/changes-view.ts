// The global change feed: the Log's Changes in a time range, filtered by Thing, kind and actor,
// newest first, and live after that.
import type { Change, ChangeFilter } from "../../src/client/index.js";
import type { View } from "./app-context.js";
import { changeRow, changeTable } from "./change-row.js";
import { h, replace } from "./dom.js";
import { problemBox } from "./errors.js";
import { RANGES } from "./thing-view.js";

const MAX_ROWS = 2000;

export const changesView: View = ({ client, live }, root, query) => {
  const params = new URLSearchParams(query);
  const thing = h("input", {
    name: "thing",
    placeholder: "Thing id",
    value: params.get("thing") ?? "",
    "aria-label": "Thing",
  });
  const kind = h("input", {
    name: "kind",
    placeholder: "kinds, e.g. reported,desired",
    value: params.get("kind") ?? "",
    "aria-label": "Kind",
  });
  const actor = h("input", {
    name: "actor",
    placeholder: "actor",
    value: params.get("actor") ?? "",
    "aria-label": "Actor",
  });
  const since = h(
    "select",
    { name: "since", "aria-label": "Since" },
    Object.entries(RANGES).map(([value, label]) =>
      h("option", { value, selected: value === (params.get("since") ?? "-1h") }, label),
    ),
  );
  const status = h("div", { class: "muted" });
  const { table, body } = changeTable(true);
  const form = h(
    "form",
    {
      class: "filters",
      onsubmit: (event: Event) => {
        event.preventDefault();
        const next = new URLSearchParams();
        for (const [name, input] of [
          ["thing", thing],
          ["kind", kind],
          ["actor", actor],
          ["since", since],
        ] as const) {
          if (input.value.trim() !== "") next.set(name, input.value.trim());
        }
        location.hash = `#/changes?${next.toString()}`;
      },
    },
    thing,
    kind,
    actor,
    since,
    h("button", { type: "submit" }, "Filter"),
  );
  replace(root, h("h1", {}, "Changes"), form, status, table);

  const filter: ChangeFilter = {
    ...(thing.value !== "" && { thing: thing.value }),
    ...(kind.value !== "" && {
      kind: kind.value
        .split(",")
        .map((k) => k.trim())
        .filter(Boolean),
    }),
    ...(actor.value !== "" && { actor: actor.value }),
  };
  const kinds = filter.kind === undefined ? undefined : new Set(filter.kind);
  const matches = (change: Change) =>
    (filter.thing === undefined || change.thing === filter.thing) &&
    (kinds === undefined || kinds.has(change.kind)) &&
    (filter.actor === undefined || change.cause.actor === filter.actor);

  let lastSeq = Number.POSITIVE_INFINITY;
  const early: Change[] = [];
  const unsubscribe = live.subscribe((change) => {
    if (!matches(change)) return;
    if (lastSeq === Number.POSITIVE_INFINITY) return void early.push(change);
    if (change.seq <= lastSeq) return;
    lastSeq = change.seq;
    body.prepend(changeRow(change, { showThing: true }));
    while (body.rows.length > MAX_ROWS) body.lastElementChild?.remove();
  });
  const abort = new AbortController();

  void (async () => {
    try {
      // The range's newest MAX_ROWS in one request: a busy hub's week holds millions, and reading
      // them all oldest first to keep the last rows took one request per 500 of them.
      const page = await client.changes({ ...filter, since: since.value, limit: MAX_ROWS, order: "desc" });
      if (abort.signal.aborted) return;
      const rows: Change[] = page.changes.reverse();
      const more = page.next !== undefined;
      lastSeq = rows.at(-1)?.seq ?? 0;
      for (const change of early) {
        if (change.seq <= lastSeq) continue;
        rows.push(change);
        lastSeq = change.seq;
      }
      body.append(...rows.reverse().map((change) => changeRow(change, { showThing: true })));
      replace(
        status,
        rows.length === 0
          ? "No Change matches in this range; new ones appear here live."
          : more
            ? `The newest ${rows.length} Changes of the range, newest first (it holds more); new ones appear live.`
            : `${rows.length} Changes, newest first; new ones appear live.`,
      );
    } catch (err) {
      replace(status, problemBox(err));
    }
  })();

  return () => {
    abort.abort();
    unsubscribe();
  };
};
