// The web UI's entry: sign in with a token, then hash routes to the views. Every failure ends up
// as words in the page (an error boundary below catches what a view did not).
import type { AppContext, View } from "./app-context.js";
import { changesView } from "./changes-view.js";
import { h, idFromHash, replace } from "./dom.js";
import { messageOf, problemBox } from "./errors.js";
import { graphView } from "./graph-view.js";
import { LiveFeed } from "./live.js";
import { logView } from "./log-view.js";
import { releasesView } from "./releases-view.js";
import { clientFor, signIn, signOut, storedToken } from "./session.js";
import { thingView } from "./thing-view.js";
import { timeView } from "./time-view.js";

const app = document.getElementById("app") ?? document.body;
const banner = h("div", { class: "banner", role: "alert", hidden: true });
let context: AppContext | undefined;
let leave: (() => void) | undefined;

window.addEventListener("error", (event) => showBanner(messageOf(event.error ?? event.message)));
window.addEventListener("unhandledrejection", (event) => showBanner(messageOf(event.reason)));

function showBanner(text: string): void {
  banner.textContent = text;
  banner.hidden = false;
}

/** The Thing id a `#/thing/…` or `#/time/…` address names, for the tab's title; the address if none. */
function titleId(argument: string): string {
  const mark = argument.indexOf("?");
  try {
    return decodeURIComponent(mark === -1 ? argument : argument.slice(0, mark));
  } catch {
    return argument;
  }
}

/** Each view, and the title of its tab: with several open in an incident, tabs say which is which. */
const ROUTES: [RegExp, View, (argument: string) => string][] = [
  [/^#\/thing\/(.+)$/, (ctx, root, id) => thingView(ctx, root, idFromHash(id)), titleId],
  [/^#\/time\/(.+)$/, timeView, (argument) => `${titleId(argument)} in time`],
  [/^#\/changes\??(.*)$/, changesView, () => "Changes"],
  [/^#\/log$/, logView, () => "Log"],
  [/^#\/releases$/, releasesView, () => "Releases"],
  [/^(?:#\/?)?$/, graphView, () => "Graph"],
];

function signInPage(problem?: unknown): void {
  leave?.();
  leave = undefined;
  const token = h("input", {
    type: "password",
    name: "token",
    autocomplete: "current-password",
    "aria-label": "Token",
    required: true,
  });
  const outcome = h("div", {}, problem !== undefined && problemBox(problem));
  replace(
    app,
    h(
      "main",
      { class: "sign-in" },
      h("h1", {}, "Hyperthings"),
      h(
        "p",
        {},
        "Sign in with a token of this hub: the admin token that ",
        h("code", {}, "things serve"),
        " or ",
        h("code", {}, "npm start"),
        " printed, or a read-only token.",
      ),
      h(
        "form",
        {
          onsubmit: (event: Event) => {
            event.preventDefault();
            replace(outcome, h("p", { class: "muted" }, "Checking…"));
            signIn(token.value.trim()).then(
              (client) => start(client),
              (err: unknown) => replace(outcome, problemBox(err)),
            );
          },
        },
        h("label", {}, "Token ", token),
        h("button", { type: "submit" }, "Sign in"),
      ),
      outcome,
    ),
  );
  token.focus();
}

function start(client: AppContext["client"]): void {
  const live = new LiveFeed(storedToken());
  context = { client, live };
  // A status region: a screen reader says when the feed drops and comes back, as the dot shows it.
  const liveStatus = h("span", { class: "live", "data-testid": "live", role: "status" });
  live.onStatus((status) => {
    liveStatus.dataset.state = status.state;
    liveStatus.textContent =
      status.state === "open"
        ? "● live"
        : status.state === "failed"
          ? `live feed stopped: ${status.reason}`
          : `○ reconnecting${status.reason === undefined ? "" : ` (${status.reason})`}`;
    if (status.state === "failed" && /token/.test(status.reason)) {
      live.stop();
      signOut();
      signInPage(new Error(status.reason));
    }
  });
  // The shared worker failed (docs/ui.md, "Several tabs"): said once, as the feeds go on in the tab.
  const liveNote = h("span", { class: "muted", "data-testid": "live-fallback", hidden: true });
  live.onFallback((reason) => {
    liveNote.textContent = `Live updates run in this tab: ${reason}. Nothing is lost: its feeds went on where they were.`;
    liveNote.hidden = false;
  });
  live.start();
  const main = h("main");
  replace(
    app,
    h(
      "header",
      {},
      h("a", { href: "#/", class: "brand" }, "Hyperthings"),
      h(
        "nav",
        {},
        h("a", { href: "#/" }, "Graph"),
        h("a", { href: "#/changes" }, "Changes"),
        h("a", { href: "#/releases" }, "Releases"),
        h("a", { href: "#/log" }, "Log"),
      ),
      liveStatus,
      liveNote,
      h(
        "button",
        {
          type: "button",
          onclick: () => {
            live.stop();
            signOut();
            signInPage();
          },
        },
        "Sign out",
      ),
    ),
    banner,
    main,
  );
  route(main);
  window.onhashchange = () => route(main);
}

function route(main: HTMLElement): void {
  if (context === undefined) return;
  leave?.();
  leave = undefined;
  banner.hidden = true;
  const hash = location.hash;
  for (const [pattern, view, title] of ROUTES) {
    const match = pattern.exec(hash);
    if (match === null) continue;
    document.title = `${title(match[1] ?? "")} · Hyperthings`;
    try {
      leave = view(context, main, match[1] ?? "");
    } catch (err) {
      replace(main, problemBox(err));
    }
    return;
  }
  document.title = "Not found · Hyperthings";
  replace(
    main,
    h("h1", {}, "Not found"),
    h("p", {}, `Nothing here: ${hash}. `, h("a", { href: "#/" }, "Back to the graph")),
  );
}

const token = storedToken();
if (token === undefined) signInPage();
else start(clientFor(token));
