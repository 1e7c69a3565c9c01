// Provisioning at a glance: what drifts now (observed against the active release), the rollouts
// with their progress, and the stored releases. Drawn again every few seconds and whenever the
// live feed brings a Change of provisioning (applied, drift, a rollout's own commands).
import { ReleaseClient, RolloutClient } from "../../src/client/index.js";
import type { DriftEntry, ReleasePage, RolloutView } from "../../src/client/index.js";
import type { View } from "./app-context.js";
import { asCards, h, replace, show, showTime } from "./dom.js";
import { problemBox } from "./errors.js";
import { storedToken } from "./session.js";
import { nameThingLinksFrom, thingLink } from "./thing-titles.js";

const REFRESH_MS = 5000;
const SHOWN = 50;

type ReleaseSummary = ReleasePage["releases"][number];

/** `sha256:0a1b2c3d…`: enough of a release id to tell it apart, the whole of it on hover. */
function releaseLabel(id: string): HTMLElement {
  return h("code", { title: id }, id.length > 19 ? `${id.slice(0, 19)}…` : id);
}

/** "1 entry", "2 entries". */
function entries(n: number): string {
  return `${n.toLocaleString("en")} ${n === 1 ? "entry" : "entries"}`;
}

function driftTable(drift: DriftEntry[], total: number): HTMLElement {
  if (drift.length === 0) {
    return h(
      "p",
      { "data-testid": "drift", "data-count": 0 },
      "Nothing drifts: every Thing holds its release's values.",
    );
  }
  const table = h(
    "table",
    { "data-testid": "drift", "data-count": drift.length, "data-total": total },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Thing", "Property", "Desired", "Observed", "Since", "Policy", "Release"].map((t) => h("th", {}, t)),
      ),
    ),
    h(
      "tbody",
      {},
      drift.map((entry) =>
        h(
          "tr",
          {},
          h("td", {}, thingLink(entry.thing)),
          h("td", {}, entry.affordance),
          h("td", { class: "desired" }, show(entry.desired)),
          h("td", { class: "observed" }, show(entry.observed)),
          h("td", {}, showTime(entry.since)),
          h("td", {}, entry.policy),
          h("td", {}, releaseLabel(entry.release)),
        ),
      ),
    ),
  );
  return asCards(table);
}

function rolloutTable(rollouts: RolloutView[]): HTMLElement {
  if (rollouts.length === 0)
    return h(
      "p",
      { "data-testid": "rollouts" },
      "No rollout yet: a release is rolled out with ",
      h("code", {}, "things rollout"),
      ".",
    );
  const table = h(
    "table",
    { "data-testid": "rollouts" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Release", "Status", "Progress", "Started", "By", "Ended"].map((t) => h("th", {}, t)),
      ),
    ),
    h(
      "tbody",
      {},
      rollouts.map((rollout) => {
        const { progress } = rollout;
        const done = progress.total - progress.pending - progress.applying;
        return h(
          "tr",
          { "data-rollout": rollout.id, "data-status": rollout.status },
          h("td", {}, rollout.name, " ", releaseLabel(rollout.release)),
          h("td", {}, rollout.status, rollout.reason !== undefined && ` (${rollout.reason})`),
          h(
            "td",
            {},
            h("progress", {
              max: Math.max(1, progress.total),
              value: done,
              "aria-label": `${rollout.name} progress`,
            }),
            ` ${done}/${progress.total}`,
            progress.failed > 0 && `, ${progress.failed} failed`,
            progress.skipped > 0 && `, ${progress.skipped} skipped`,
          ),
          h("td", {}, showTime(rollout.created)),
          h("td", {}, rollout.actor),
          h("td", {}, rollout.ended === undefined ? "—" : showTime(rollout.ended)),
        );
      }),
    ),
  );
  return asCards(table);
}

function releaseTable(releases: ReleaseSummary[]): HTMLElement {
  if (releases.length === 0)
    return h(
      "p",
      { "data-testid": "releases" },
      "No release stored yet: one is built from manifests with ",
      h("code", {}, "things build"),
      ".",
    );
  const table = h(
    "table",
    { "data-testid": "releases" },
    h(
      "thead",
      {},
      h(
        "tr",
        {},
        ["Name", "Id", "Steps", "Drift", "Stored", "Supersedes"].map((t) => h("th", {}, t)),
      ),
    ),
    h(
      "tbody",
      {},
      releases.map((release) =>
        h(
          "tr",
          { "data-release": release.id },
          h("td", {}, release.name),
          h("td", {}, releaseLabel(release.id)),
          h("td", {}, String(release.steps)),
          h("td", {}, release.drift),
          h("td", {}, showTime(release.storedAt)),
          h("td", {}, release.supersedes === undefined ? "—" : releaseLabel(release.supersedes)),
        ),
      ),
    ),
  );
  return asCards(table);
}

export const releasesView: View = ({ client, live }, root) => {
  const options = { url: location.origin, token: storedToken() };
  const releases = new ReleaseClient(options);
  const rollouts = new RolloutClient(options);
  const out = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  replace(root, h("h1", {}, "Releases and drift"), out);
  // The page's parts stay in place as it is drawn again (every 5 s, and at each Change of
  // provisioning): only their contents change, so that the button a person is about to click, or
  // has reached with Tab, is still there, focused, after the next redraw.
  const driftShownLine = h("p", { class: "muted", "data-testid": "drift-shown", hidden: true });
  const driftBox = h("div");
  const moreButton = h("button", {
    type: "button",
    hidden: true,
    onclick: () => {
      driftShown += SHOWN;
      void draw();
    },
  });
  const rolloutBox = h("div");
  const releaseBox = h("div");
  let laidOut = false;
  let disposed = false;
  const titles = new Map<string, string>();
  let drawing = false;
  let again = false;
  /** How many drift entries are shown: 50, and 50 more at each "Show more" (kept across redraws). */
  let driftShown = SHOWN;
  /** Pages of GET /drift up to `driftShown` entries, by Thing and property; and how many drift in all. */
  const driftPages = async (): Promise<{ drift: DriftEntry[]; total: number }> => {
    const drift: DriftEntry[] = [];
    let cursor: string | undefined;
    let total = 0;
    do {
      const page = await rollouts.driftPage({
        limit: Math.min(1000, driftShown - drift.length),
        ...(cursor !== undefined && { cursor }),
      });
      drift.push(...page.drift);
      total = page.total;
      cursor = page.next;
    } while (cursor !== undefined && drift.length < driftShown);
    return { drift, total };
  };
  const draw = async (): Promise<void> => {
    if (drawing) {
      again = true;
      return;
    }
    drawing = true;
    try {
      const [drift, started, stored] = await Promise.all([
        driftPages(),
        rollouts.rollouts({ limit: SHOWN }),
        releases.releases({ limit: SHOWN }),
      ]);
      if (disposed) return;
      const shown = drift.drift.length;
      const more = shown > 0 && shown < drift.total;
      driftShownLine.hidden = !more;
      driftShownLine.textContent = more
        ? `The first ${shown.toLocaleString("en")} of ${entries(drift.total)}, by Thing and property.`
        : "";
      moreButton.hidden = !more;
      moreButton.textContent = `Show ${Math.min(SHOWN, drift.total - shown)} more`;
      replace(driftBox, driftTable(drift.drift, drift.total));
      // Each drifting Thing by its title, asked for once (the table is drawn again every 5 s).
      void nameThingLinksFrom(client, driftBox, titles);
      replace(rolloutBox, rolloutTable(started));
      replace(releaseBox, releaseTable(stored.releases));
      if (!laidOut) {
        replace(
          out,
          h("h2", {}, "Drift now"),
          driftShownLine,
          driftBox,
          moreButton,
          h("h2", {}, "Rollouts"),
          rolloutBox,
          h("h2", {}, "Releases"),
          releaseBox,
        );
        laidOut = true;
      }
    } catch (err) {
      if (!disposed) {
        replace(out, problemBox(err));
        laidOut = false;
      }
    } finally {
      drawing = false;
      if (again && !disposed) {
        again = false;
        void draw();
      }
    }
  };
  void draw();
  const timer = setInterval(() => void draw(), REFRESH_MS);
  const stop = live.subscribe((change) => {
    if (change.kind === "applied" || change.kind === "drift" || change.cause?.release !== undefined)
      void draw();
  });
  return () => {
    disposed = true;
    clearInterval(timer);
    stop();
  };
};
