// Thing titles for the links the views draw, which would otherwise show bare ids (urn:…): a link
// names its Thing by title, with the id as its tooltip, and by id when the Thing has no title (or
// is no longer registered).
import type { Change, InteractionClient } from "../../src/client/index.js";
import type { GraphSummary } from "../../src/client/hub-client.js";
import { thingHref } from "./dom.js";
import type { LiveFeed } from "./live.js";

/** Up to this many Things are asked for one by one (their TDs); more, in one GET /graph/summary. */
const ASKED_ONE_BY_ONE = 8;

/** A link to a Thing's page: its title when known, its id otherwise; the id as the tooltip. */
export function thingLink(id: string, title?: string): HTMLAnchorElement {
  const link = document.createElement("a");
  link.href = thingHref(id);
  link.dataset.thingId = id;
  nameLink(link, title);
  return link;
}

function nameLink(link: HTMLAnchorElement, title: string | undefined): void {
  const id = link.dataset.thingId ?? "";
  link.textContent = title ?? id;
  if (title === undefined || title === id) link.removeAttribute("title");
  else link.title = id;
}

/** Whether a link's `href` names a Thing by its id (`urn:…`), not a web address. */
export function isThingId(href: string): boolean {
  return href.includes(":") && !href.startsWith("http");
}

/**
 * Names the links to Things under `root`, asking the hub for the titles `known` does not hold
 * yet and keeping them there (a Thing without a title as its id), so that a view drawn again
 * asks only for the Things new to it.
 */
export async function nameThingLinksFrom(
  client: InteractionClient,
  root: ParentNode,
  known: Map<string, string> = new Map(),
): Promise<void> {
  const ids = [...root.querySelectorAll<HTMLAnchorElement>("a[data-thing-id]")].map(
    (link) => link.dataset.thingId ?? "",
  );
  const missing = [...new Set(ids)].filter((id) => !known.has(id));
  if (missing.length > 0) {
    const found = await titlesOf(client, missing);
    for (const id of missing) known.set(id, found.get(id) ?? id);
  }
  nameThingLinks(root, known);
}

/** The links to Things under `root` named by the titles now known (the others stay as they are). */
export function nameThingLinks(root: ParentNode, titles: ReadonlyMap<string, string>): void {
  for (const link of root.querySelectorAll<HTMLAnchorElement>("a[data-thing-id]")) {
    const title = titles.get(link.dataset.thingId ?? "");
    if (title !== undefined) nameLink(link, title);
  }
}

/** The title a `described` Change's TD gives its Thing, if any. */
export function titleDescribed(change: Change): string | undefined {
  const td = change.value;
  if (change.kind !== "described" || typeof td !== "object" || td === null) return undefined;
  const title = (td as { title?: unknown }).title;
  return typeof title === "string" ? title : undefined;
}

/**
 * Keeps the links to Things under `root` (an open *Why?* chain among them) named as their Things
 * are now, from the live feed: a new TD's title renames them, a Thing removed or left without a
 * title is named by its id. `titles` is kept up to date too. Returns the unsubscription.
 */
export function followTitles(live: LiveFeed, root: ParentNode, titles: Map<string, string>): () => void {
  return live.subscribe((change) => {
    if (change.kind !== "described" && change.kind !== "removed") return;
    titles.set(change.thing, titleDescribed(change) ?? change.thing);
    const renamed = new Map([[change.thing, titles.get(change.thing) ?? change.thing]]);
    nameThingLinks(root, renamed);
  });
}

/**
 * A Thing's last `described` or `removed` Change (undefined: none, an id no Thing ever had), from
 * the feed filtered by it: a `described` one's value is its TD now. Unlike `GET /things/{id}`, a
 * Thing removed or never registered is no 404, which the browser's console would show.
 */
export async function lastDescription(client: InteractionClient, thing: string): Promise<Change | undefined> {
  return (await client.changes({ thing, kind: ["described", "removed"], order: "desc", limit: 1 }))
    .changes[0];
}

/**
 * The titles of these Things: a few Things' last TDs, or the graph's summary (every Thing's title in one light
 * request) for more, from `summary` when the view has one to share. A Thing not registered, or
 * without a title, is left out; so are all of them when the hub does not answer (the links keep
 * their ids: a title is a help, not the page).
 */
export async function titlesOf(
  client: InteractionClient,
  ids: Iterable<string>,
  summary: () => Promise<GraphSummary> = () => client.graphSummary(),
): Promise<Map<string, string>> {
  const wanted = [...new Set(ids)];
  const titles = new Map<string, string>();
  if (wanted.length === 0) return titles;
  try {
    if (wanted.length <= ASKED_ONE_BY_ONE) {
      // Each Thing's last TD or removal, from the feed filtered by it: a Thing removed, or an id
      // no Thing ever had (a link's target), is no Change there, where its TD would be a 404 that
      // the browser's console shows.
      const last = await Promise.all(
        wanted.map((thing) => lastDescription(client, thing).catch(() => undefined)),
      );
      for (const change of last) {
        const title = change === undefined ? undefined : titleDescribed(change);
        if (change !== undefined && title !== undefined) titles.set(change.thing, title);
      }
    } else {
      const set = new Set(wanted);
      for (const thing of (await summary()).things)
        if (thing.title !== undefined && set.has(thing.id)) titles.set(thing.id, thing.title);
    }
  } catch {
    // No titles: the links show ids, as they did.
  }
  return titles;
}
