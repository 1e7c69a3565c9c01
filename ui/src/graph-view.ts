// The graph of every Thing and its links (sigma's WebGL renderer over a graphology graph):
// colours by type with a legend, live reachability, click a node to open the Thing (or choose one
// with the arrow keys and open it with Enter).
import Graph from "graphology";
import Sigma, { DEFAULT_STYLES } from "sigma";
import { extremityArrow, layerPlain, pathCurved, pathLine } from "sigma/rendering";
import type { Change } from "../../src/client/index.js";
import type { View } from "./app-context.js";
import { h, replace, thingHref } from "./dom.js";
import { problemBox } from "./errors.js";
import { redrawWhenBack } from "./live.js";
import type { GraphSummary } from "../../src/client/hub-client.js";
import { thingLink } from "./thing-titles.js";
import { boxesOverlap, turnedBox, uprightBox, type LabelBox } from "./label-boxes.js";
import {
  GOLDEN_ANGLE,
  PALETTE,
  graphOfSummary,
  layoutOf,
  legendOf,
  spreadLabels,
  type GraphEdge,
  type GraphNode,
} from "./thing-graph.js";

const UNREACHABLE_COLOR = "#b0b0b0";
const MAX_MATCHES = 20;
/** The list drawn for the keyboard holds this many Things at most (the search narrows it). */
const MAX_LISTED = 500;
/** Above this many Things, labels show on hover only: drawing 10,000 of them costs seconds. */
const LABELLED_GRAPH = 2000;
/** Edge labels only on small graphs. */
const LABELLED_EDGES = 200;
/**
 * A Thing with more links than this (a container host) has its links named only while it, or the
 * Thing at their other end, is hovered or chosen: their names drawn at once piled up around it.
 */
const CROWDED_LINKS = 4;
/** A Thing hovered or chosen (with the arrow keys or in the list) is drawn to stand out. */
const standsOut = (_attributes: unknown, state: { isHighlighted: boolean; isHovered: boolean }): boolean =>
  state.isHighlighted || state.isHovered;
/** sigma's space around the graph on its canvas, in pixels. */
const STAGE_PADDING = 20;
/** sigma's label: its font (its default) and how far right of its node's disc it starts. */
const LABEL_FONT = "14px sans-serif";
const LABEL_HEIGHT = 18;
const LABEL_GAP = 5;
/** sigma's link label: its font (its default, 12 px) and the height its glyphs take. */
const EDGE_LABEL_FONT = "12px sans-serif";
const EDGE_LABEL_HEIGHT = 14;
/** A label's width on the screen, as its font (a Thing's label's by default) draws it. */
const labelWidth = (() => {
  let context: CanvasRenderingContext2D | null | undefined;
  return (text: string, font = LABEL_FONT): number => {
    context ??= document.createElement("canvas").getContext("2d");
    if (context === null) return (font === LABEL_FONT ? 8 : 7) * text.length;
    context.font = font;
    return context.measureText(text).width;
  };
})();
/**
 * The area sigma draws a graph in on a canvas of `width` × `height`: its padding is taken from the
 * shorter side, and the longer side keeps the canvas's proportions (sigma's camera matrix).
 */
const frameOf = (width: number, height: number): { width: number; height: number } => {
  const short = Math.min(width, height) - 2 * STAGE_PADDING;
  return width >= height
    ? { width: (short * width) / height, height: short }
    : { width: short, height: (short * height) / width };
};
/** A touch screen: one finger scrolls the page past the graph, two move and zoom it. */
const TOUCH = typeof matchMedia === "function" && matchMedia("(pointer: coarse)").matches;
/** A canvas this much wider or taller (px) than the graph was spread for is spread again. */
const RESPREAD_PX = 24;
/** How long after the canvas's last resize it is spread again (a window's edge dragged resizes it often). */
const RESPREAD_MS = 150;
/** How long a TD change waits before the summary is fetched again (the changes of a burst share one). */
const REFRESH_MS = 1000;
export const graphView: View = ({ client, live }, root) => {
  performance.mark("graph-start");
  const abort = new AbortController();
  let renderer: Sigma | undefined;
  let cancelRedraw: (() => void) | undefined;
  const status = h("p", { class: "muted" }, "Loading the Things…");
  // What the arrow keys chose on the canvas, in words: the canvas draws it, this says it.
  const selection = h("p", { class: "graph-selection", role: "status", id: "graph-selection" });
  const canvas = h("div", {
    class: "graph",
    "data-testid": "graph",
    tabindex: 0,
    // The arrow keys are the canvas's own (a screen reader passes them on to it).
    role: "application",
    "aria-label": "Graph of the Things: the arrow keys choose a Thing, Enter opens it",
    "aria-describedby": "graph-selection",
  });
  // The Thing chosen (tapped on a touch screen, reached with the arrow keys or in the list): what
  // it is, its links, and the way to its page, beside the graph (under it on a phone).
  const panel = h("section", { class: "graph-panel", "data-testid": "graph-panel", hidden: true });
  const legend = h("ul", { class: "legend", "aria-label": "Legend" });
  const unreachableList = h("ul", { class: "unreachable", "aria-label": "Unreachable Things" });
  const search = h("input", {
    type: "search",
    placeholder: "Find a Thing by title or id",
    "aria-label": "Find a Thing",
  });
  const matches = h("ul", { class: "matches" });
  // The graph as a list: the keyboard's and a screen reader's way through the Things and their
  // links (the WebGL canvas is neither), each a link that Enter opens. Drawn while it is open.
  const listed = h("div", { class: "graph-list-body" });
  const list = h(
    "details",
    { class: "graph-list", "data-testid": "graph-list" },
    h("summary", {}, "The Things as a list, with their links"),
    listed,
  );
  list.addEventListener("toggle", () => showList());
  // The other way: a Thing reached in the list (Tab, or a click on its link) is chosen on the canvas.
  listed.addEventListener("focusin", (event) => {
    const item = event.target instanceof Element ? event.target.closest<HTMLElement>("li[data-thing]") : null;
    const id = item?.dataset.thing;
    if (id !== undefined && id !== selected && isShown(id)) select(id);
  });
  replace(
    root,
    h("h1", {}, "Things"),
    status,
    list,
    selection,
    h(
      "div",
      { class: "graph-layout" },
      canvas,
      h(
        "aside",
        {},
        panel,
        search,
        matches,
        h("h2", {}, "Types"),
        legend,
        h("h2", {}, "Unreachable"),
        unreachableList,
      ),
    ),
  );

  const unreachable = new Map<string, string>();
  const colors = new Map<string, string>();
  const titles = new Map<string, string>();
  let graph: Graph | undefined;

  function showUnreachable(): void {
    replace(
      unreachableList,
      unreachable.size === 0
        ? h("li", { class: "muted" }, "none")
        : [...unreachable].map(([id, reason]) => h("li", {}, thingLink(id, titles.get(id)), " — ", reason)),
    );
  }

  function applyReachability(change: Change): void {
    if (change.kind !== "unreachable" && change.kind !== "reachable") return;
    if (change.kind === "unreachable")
      unreachable.set(change.thing, typeof change.value === "string" ? change.value : "unreachable");
    else unreachable.delete(change.thing);
    if (graph?.hasNode(change.thing)) {
      graph.setNodeAttribute(
        change.thing,
        "color",
        change.kind === "unreachable" ? UNREACHABLE_COLOR : (colors.get(change.thing) ?? "#666"),
      );
    }
    showUnreachable();
    relist();
    if (change.thing === selected) showPanel();
  }
  const unsubscribe = live.subscribe(applyReachability);

  // Enter opens the first Thing found, as a click on it would: the keyboard's way into a Thing.
  search.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    const first = matches.querySelector("a");
    if (first !== null) location.hash = first.getAttribute("href") ?? "#/";
  });
  const showMatches = (): void => {
    const text = search.value.trim().toLowerCase();
    if (text === "") return replace(matches);
    const found: string[] = [];
    for (const [id, title] of titles) {
      if (title.toLowerCase().includes(text) || id.toLowerCase().includes(text)) found.push(id);
      if (found.length === MAX_MATCHES) break;
    }
    replace(
      matches,
      found.length === 0
        ? h("li", { class: "muted" }, "no Thing matches")
        : found.map((id) => h("li", {}, thingLink(id, titles.get(id)))),
    );
  };
  search.addEventListener("input", () => {
    showMatches();
    relist();
  });
  // Down from the search box goes to the first Thing found, as Tab would after the box.
  search.addEventListener("keydown", (event) => {
    if (event.key !== "ArrowDown") return;
    const first = matches.querySelector("a");
    if (first === null) return;
    event.preventDefault();
    first.focus();
  });

  /**
   * The list: the Things shown in the graph (the legend's switches hold), those the search finds
   * when it has text, by title, at most MAX_LISTED; each with the links from it and to it.
   */
  const showList = (): void => {
    if (!list.open || graph === undefined) return;
    const shown = graph;
    const text = search.value.trim().toLowerCase();
    const ids = shown
      .nodes()
      .filter((id) => !hiddenTypes.has(typeOfNode.get(id) ?? ""))
      .filter((id) => {
        const title = titles.get(id) ?? id;
        return text === "" || title.toLowerCase().includes(text) || id.toLowerCase().includes(text);
      })
      .sort((a, b) => (titles.get(a) ?? a).localeCompare(titles.get(b) ?? b) || a.localeCompare(b));
    const thing = (id: string) => thingLink(id, titles.get(id));
    const items = ids.slice(0, MAX_LISTED).map((id) => {
      const links: HTMLElement[] = [];
      shown.forEachOutEdge(id, (_edge, attributes, _source, target) =>
        links.push(h("li", {}, `${String(attributes.rel)} → `, thing(target))),
      );
      shown.forEachInEdge(id, (_edge, attributes, source) =>
        links.push(h("li", {}, `← ${String(attributes.rel)} of `, thing(source))),
      );
      return h(
        "li",
        // The Thing chosen on the canvas is the one marked here too.
        {
          "data-thing": id,
          class: id === selected ? "selected" : undefined,
          "aria-current": id === selected ? "true" : undefined,
        },
        thing(id),
        " ",
        h("span", { class: "tag" }, typeOfNode.get(id) ?? "Thing"),
        unreachable.has(id) && h("span", { class: "muted" }, " unreachable"),
        links.length > 0 && h("ul", { "aria-label": `Links of ${titles.get(id) ?? id}` }, links),
      );
    });
    // Drawn again as Things come and go: the link a person has reached with Tab keeps the focus.
    const active = document.activeElement;
    const at = active instanceof HTMLAnchorElement && listed.contains(active) ? active : undefined;
    const item = at?.closest<HTMLElement>("li[data-thing]");
    const nth = item ? [...item.querySelectorAll("a")].indexOf(at as HTMLAnchorElement) : -1;
    replace(
      listed,
      h(
        "p",
        { class: "muted" },
        ids.length === 0
          ? "No Thing to list."
          : ids.length > MAX_LISTED
            ? `The first ${MAX_LISTED} of ${ids.length.toLocaleString("en")} by title: Find a Thing narrows the list.`
            : `${ids.length} ${ids.length === 1 ? "Thing" : "Things"} by title; Tab moves from link to link, Enter opens one.`,
      ),
      items.length > 0 && h("ul", { class: "things" }, items),
    );
    const again = items.find((li) => li.dataset.thing === item?.dataset.thing);
    again?.querySelectorAll("a")[Math.max(0, nth)]?.focus();
  };
  /** The list drawn again once per frame, however many Changes come in it. */
  let listDue = false;
  const relist = (): void => {
    if (listDue || !list.open) return;
    listDue = true;
    requestAnimationFrame(() => {
      listDue = false;
      if (!abort.signal.aborted) showList();
    });
  };

  // What is drawn, kept so that the summary fetched again after a TD change updates it in place
  // (positions, colours of the types already shown, and the legend's switches stay as they were).
  let size = 12;
  let labelEdges = false;
  const typeColors = new Map<string, string>();
  const typeOfNode = new Map<string, string>();
  const byType = new Map<string, Set<string>>();
  const typeCenters = new Map<string, { x: number; y: number }>();
  const hiddenTypes = new Set<string>();
  let outerRing = 0;
  /** The layout's middle, and the pixels one of its units became when it was spread over the canvas. */
  let centre = { x: 0, y: 0 };
  let unit = 1;

  const colorOf = (type: string): string => {
    let color = typeColors.get(type);
    if (color === undefined) {
      color = PALETTE[typeColors.size % PALETTE.length] ?? "#666";
      typeColors.set(type, color);
    }
    return color;
  };
  const setType = (id: string, type: string | undefined): void => {
    const old = typeOfNode.get(id);
    if (old !== undefined) byType.get(old)?.delete(id);
    if (type === undefined) {
      typeOfNode.delete(id);
      return;
    }
    typeOfNode.set(id, type);
    const group = byType.get(type);
    if (group === undefined) byType.set(type, new Set([id]));
    else group.add(id);
  };
  /** A place for a Thing that arrived after the first frame: on its type's disc, or a new disc outside. */
  const placeOf = (type: string): { x: number; y: number } => {
    let center = typeCenters.get(type);
    if (center === undefined) {
      outerRing += 4 * unit;
      const angle = typeCenters.size * GOLDEN_ANGLE;
      center = { x: centre.x + outerRing * Math.cos(angle), y: centre.y + outerRing * Math.sin(angle) };
      typeCenters.set(type, center);
    }
    const i = byType.get(type)?.size ?? 0;
    const r = Math.sqrt(i + 0.5) * unit;
    return { x: center.x + r * Math.cos(i * GOLDEN_ANGLE), y: center.y + r * Math.sin(i * GOLDEN_ANGLE) };
  };
  const nodeColor = (id: string): string =>
    unreachable.has(id) ? UNREACHABLE_COLOR : (colors.get(id) ?? "#666");
  const edgeAttributes = (rel: string) =>
    labelEdges ? { label: rel, rel, color: "#ccc", size: 1 } : { rel, color: "#ccc", size: 1 };
  /** Marks the links at a Thing with more than CROWDED_LINKS: their names wait for a hover or a choice. */
  const markCrowded = (): void => {
    if (graph === undefined || !labelEdges) return;
    const shown = graph;
    let crowded = 0;
    shown.forEachEdge((edge, attributes, source, target) => {
      const is = shown.degree(source) > CROWDED_LINKS || shown.degree(target) > CROWDED_LINKS;
      if (is) crowded++;
      if (attributes.crowded !== is) shown.setEdgeAttribute(edge, "crowded", is);
    });
    canvas.dataset.crowdedLinks = String(crowded);
  };
  /** The links of the Thing hovered and of the one chosen: drawn darker, their names shown. */
  let hovered: string | undefined;
  let lit = new Set<string>();
  const lightLinks = (): void => {
    const next = new Set<string>();
    for (const id of [hovered, selected])
      if (id !== undefined && graph?.hasNode(id) === true) for (const edge of graph.edges(id)) next.add(edge);
    const off = [...lit].filter((edge) => !next.has(edge) && graph?.hasEdge(edge) === true);
    renderer?.setEdgesState(off, { isHighlighted: false });
    renderer?.setEdgesState([...next], { isHighlighted: true });
    lit = next;
  };
  /** One key per link (a TD may list the same link twice). */
  const edgeKeys = (edges: readonly GraphEdge[]): Array<[string, GraphEdge]> => {
    const seen = new Map<string, number>();
    return edges.map((edge) => {
      const base = `${edge.source}\n${edge.rel}\n${edge.target}`;
      const n = seen.get(base) ?? 0;
      seen.set(base, n + 1);
      return [n === 0 ? base : `${base}\n${n}`, edge];
    });
  };

  const showCount = (): void => {
    if (graph === undefined) return;
    let hidden = 0;
    for (const type of hiddenTypes) hidden += byType.get(type)?.size ?? 0;
    const total = graph.order;
    canvas.dataset.shown = String(total - hidden);
    replace(
      status,
      `${total} Things, ${graph.size} links`,
      hidden > 0 && `; ${total - hidden} shown (the types switched off in the legend are hidden)`,
      TOUCH
        ? ". Tap a node to choose it, or open one from the list; two fingers move and zoom the graph."
        : ". Click a node to open it, choose one with the arrow keys on the graph and Enter, or open one from the list.",
    );
  };
  /** A link is drawn while both its ends are. */
  const showEdgesOf = (keys: Iterable<string>): void => {
    const shown: string[] = [];
    const hidden: string[] = [];
    for (const key of keys)
      graph?.forEachEdge(key, (edge, _attributes, source, target) => {
        const off =
          hiddenTypes.has(typeOfNode.get(source) ?? "") || hiddenTypes.has(typeOfNode.get(target) ?? "");
        (off ? hidden : shown).push(edge);
      });
    renderer?.setEdgesState(hidden, { isHidden: true });
    renderer?.setEdgesState(shown, { isHidden: false });
  };
  // Each type of the legend is a switch: pressed, its Things are drawn; released, hidden (and
  // their links with them), so one kind of Thing can be looked at among thousands.
  const toggle = (type: string, button: HTMLButtonElement): void => {
    const hide = !hiddenTypes.has(type);
    if (hide) hiddenTypes.add(type);
    else hiddenTypes.delete(type);
    button.setAttribute("aria-pressed", String(!hide));
    const keys = [...(byType.get(type) ?? [])];
    renderer?.setNodesState(keys, { isHidden: hide });
    if (hide && selected !== undefined && typeOfNode.get(selected) === type) select(undefined);
    showEdgesOf(keys);
    showCount();
    relist();
  };
  const showLegend = (): void => {
    // Most numerous type first; a type's colour stays the one it was first drawn in.
    const counts = [...byType]
      .filter(([, ids]) => ids.size > 0)
      .sort((a, b) => b[1].size - a[1].size || a[0].localeCompare(b[0]));
    replace(
      legend,
      counts.map(([type, ids]) => {
        const button = h(
          "button",
          {
            type: "button",
            class: "legend-type",
            "aria-pressed": String(!hiddenTypes.has(type)),
            "data-type": type,
          },
          h("span", { class: "swatch", style: `background:${colorOf(type)}` }),
          `${type} (${ids.size})`,
        );
        button.addEventListener("click", () => toggle(type, button));
        return h("li", {}, button);
      }),
      h("li", {}, h("span", { class: "swatch", style: `background:${UNREACHABLE_COLOR}` }), "unreachable"),
    );
  };

  // The keyboard on the canvas: the arrow keys move a selection to the nearest Thing shown in that
  // direction, as the camera shows them on the screen; Enter opens it. The canvas highlights it
  // (its label drawn, the node larger) and the line above it says which it is.
  let selected: string | undefined;
  const isShown = (id: string): boolean =>
    graph?.hasNode(id) === true && !hiddenTypes.has(typeOfNode.get(id) ?? "");
  const onScreen = (id: string): { x: number; y: number } | undefined => {
    if (renderer === undefined || graph?.hasNode(id) !== true) return undefined;
    const attributes = graph.getNodeAttributes(id);
    return renderer.graphToViewport({ x: attributes.x as number, y: attributes.y as number });
  };
  /**
   * The shown Thing nearest `from` on the screen: with a direction (dx, dy), the nearest within 45°
   * of it, or failing that the nearest anywhere that way; without one (0, 0), the nearest at all.
   */
  const nearestTowards = (from: { x: number; y: number }, dx: number, dy: number, skip?: string) => {
    let inCone: [string, number] | undefined;
    let ahead: [string, number] | undefined;
    graph?.forEachNode((id) => {
      if (id === skip || !isShown(id)) return;
      const at = onScreen(id);
      if (at === undefined) return;
      const [ex, ey] = [at.x - from.x, at.y - from.y];
      const distance = Math.hypot(ex, ey);
      const along = ex * dx + ey * dy;
      if (dx !== 0 || dy !== 0) {
        if (along <= 0) return;
        if (Math.abs(ex * dy - ey * dx) <= along && (inCone === undefined || distance < inCone[1]))
          inCone = [id, distance];
      }
      if (ahead === undefined || distance < ahead[1]) ahead = [id, distance];
    });
    return (inCone ?? ahead)?.[0];
  };
  const describeThing = (id: string): string => {
    const links = graph === undefined ? 0 : graph.degree(id);
    const type = typeOfNode.get(id) ?? "Thing";
    return `${titles.get(id) ?? id} (${type}${unreachable.has(id) ? ", unreachable" : ""}), ${links} ${links === 1 ? "link" : "links"}`;
  };
  /** The list's item of the Thing chosen, marked and scrolled to. */
  const markListed = (): void => {
    for (const item of listed.querySelectorAll<HTMLElement>("li[data-thing].selected")) {
      item.classList.remove("selected");
      item.removeAttribute("aria-current");
    }
    if (selected === undefined) return;
    const item = [...listed.querySelectorAll<HTMLElement>("li[data-thing]")].find(
      (li) => li.dataset.thing === selected,
    );
    if (item === undefined) return;
    item.classList.add("selected");
    item.setAttribute("aria-current", "true");
    // Scrolled to within the list's own box, not the page: the canvas the arrows act on stays in view.
    if (item.offsetTop < listed.scrollTop) listed.scrollTop = item.offsetTop;
    else if (item.offsetTop + item.offsetHeight > listed.scrollTop + listed.clientHeight)
      listed.scrollTop = item.offsetTop + item.offsetHeight - listed.clientHeight;
  };
  const select = (id: string | undefined, note?: string): void => {
    if (selected !== undefined && graph?.hasNode(selected) === true)
      renderer?.setNodeState(selected, { isHighlighted: false });
    selected = id;
    // Said again once the canvas is drawn with this choice (afterRender below).
    delete canvas.dataset.selectedBackdrop;
    markListed();
    lightLinks();
    showPanel();
    if (id === undefined) {
      delete canvas.dataset.selected;
      replace(selection);
      return;
    }
    renderer?.setNodeState(id, { isHighlighted: true });
    canvas.dataset.selected = id;
    replace(selection, note, `Selected: ${describeThing(id)}.${TOUCH ? "" : " Enter opens it."}`);
    // A Thing off the screen is brought into view.
    const at = onScreen(id);
    const { width, height } = renderer?.getDimensions() ?? { width: 0, height: 0 };
    const display = renderer?.getNodeDisplayData(id);
    if (at !== undefined && display !== undefined && (at.x < 0 || at.y < 0 || at.x > width || at.y > height))
      void renderer?.getCamera().animate({ x: display.x, y: display.y }, { duration: 300 });
  };
  /**
   * Where the labels lie on the screen, as the renderer placed them: how many pairs of drawn labels
   * overlap — two Things' (each its disc and its label), a link's and a Thing's, two links' — and
   * which links' names would lie over a Thing's disc or label, or another link's name, if drawn
   * (said on the canvas, as the rendered count is, for the browser tests: none, where the graph's
   * labels fit its canvas). The Thing chosen or hovered, and its links, are left out of the count:
   * drawn larger, darker and on top, on a backdrop, they stand out over their neighbours rather
   * than being read side by side with them.
   */
  const labelLayout = (drawn: Sigma): { overlaps: number; clashes: Set<string> } => {
    const clashes = new Set<string>();
    const displayed = drawn.getNodeDisplayedLabels();
    if (graph === undefined || displayed.size > LABELLED_EDGES) return { overlaps: -1, clashes };
    const shown = graph;
    const standing = (id: string) => id === selected || id === hovered;
    /** Each Thing shown: its disc, and its label beside it when drawn. */
    const things = new Map<string, LabelBox>();
    shown.forEachNode((id) => {
      const data = drawn.getNodeDisplayData(id);
      if (data === undefined || data.visibility === "hidden" || !isShown(id)) return;
      const at = drawn.framedGraphToViewport(data);
      const r = drawn.scaleSize(data.size);
      if (!displayed.has(id)) return things.set(id, uprightBox(at.x - r, at.y - r, at.x + r, at.y + r));
      const half = Math.max(r, LABEL_HEIGHT / 2);
      const right = at.x + r + LABEL_GAP + labelWidth(data.label ?? "");
      things.set(id, uprightBox(at.x - r, at.y - half, right, at.y + half));
    });
    let overlaps = 0;
    const labelled = [...things].filter(([id]) => displayed.has(id) && !standing(id));
    for (let i = 0; i < labelled.length; i++)
      for (let j = i + 1; j < labelled.length; j++) {
        const [a, b] = [labelled[i]?.[1], labelled[j]?.[1]];
        if (a !== undefined && b !== undefined && boxesOverlap(a, b)) overlaps++;
      }
    if (!labelEdges) return { overlaps, clashes };
    // A link's name: centred on the middle of its line (a curved one's bends off it by up to
    // half its curvature: the box covers both sides), along it, cut to the line between the discs.
    const nameOf = (edge: string): LabelBox | undefined => {
      const [source, target] = shown.extremities(edge);
      const [from, to] = [drawn.getNodeDisplayData(source), drawn.getNodeDisplayData(target)];
      const data = drawn.getEdgeDisplayData(edge);
      if (from === undefined || to === undefined || data === undefined || data.label == null)
        return undefined;
      const [a, b] = [drawn.framedGraphToViewport(from), drawn.framedGraphToViewport(to)];
      const chord = Math.hypot(b.x - a.x, b.y - a.y);
      const body = chord - drawn.scaleSize(from.size) - drawn.scaleSize(to.size);
      const length = Math.min(body, labelWidth(data.label, EDGE_LABEL_FONT));
      if (length <= 0) return undefined;
      const curvature = Math.abs((data as { curvature?: number }).curvature ?? 0);
      const middle = { x: (a.x + b.x) / 2, y: (a.y + b.y) / 2 };
      return turnedBox(middle, { x: b.x - a.x, y: b.y - a.y }, length, EDGE_LABEL_HEIGHT + curvature * chord);
    };
    // The links whose names would be drawn: those of a Thing chosen or hovered, and those
    // between two Things whose labels are drawn (sigma's rule), unless crowded.
    const names: Array<{ edge: string; box: LabelBox; lit: boolean }> = [];
    shown.forEachEdge((edge, attributes, source, target) => {
      if (!things.has(source) || !things.has(target)) return;
      const isLit = lit.has(edge);
      if (!isLit && (attributes.crowded === true || !displayed.has(source) || !displayed.has(target))) return;
      const box = nameOf(edge);
      if (box !== undefined) names.push({ edge, box, lit: isLit });
    });
    // Those of the Things that stand out first: they are drawn whatever lies under them.
    names.sort((a, b) => Number(b.lit) - Number(a.lit));
    const drawnNames = drawn.getEdgeDisplayedLabels();
    const kept: LabelBox[] = [];
    for (const { edge, box, lit: isLit } of names) {
      const over =
        [...things.values()].some((thing) => boxesOverlap(thing, box)) ||
        kept.some((name) => boxesOverlap(name, box));
      if (!isLit && drawnNames.has(edge)) {
        for (const [id, thing] of things) if (!standing(id) && boxesOverlap(thing, box)) overlaps++;
        for (const name of kept) if (boxesOverlap(name, box)) overlaps++;
      }
      if (over && !isLit) clashes.add(edge);
      else kept.push(box);
    }
    return { overlaps, clashes };
  };
  /** The panel of the Thing chosen: its title, type, reachability and links, and its page's link. */
  const showPanel = (): void => {
    const id = selected;
    if (id === undefined || graph?.hasNode(id) !== true) {
      panel.hidden = true;
      replace(panel);
      return;
    }
    const shown = graph;
    const thing = (other: string) => thingLink(other, titles.get(other));
    const links: HTMLElement[] = [];
    shown.forEachOutEdge(id, (_edge, attributes, _source, target) =>
      links.push(h("li", {}, `${String(attributes.rel)} → `, thing(target))),
    );
    shown.forEachInEdge(id, (_edge, attributes, source) =>
      links.push(h("li", {}, `← ${String(attributes.rel)} of `, thing(source))),
    );
    const reason = unreachable.get(id);
    panel.hidden = false;
    panel.dataset.thing = id;
    replace(
      panel,
      h("h2", { title: id }, titles.get(id) ?? id),
      h(
        "p",
        {},
        h("span", { class: "tag" }, typeOfNode.get(id) ?? "Thing"),
        reason !== undefined && h("span", { class: "unreachable-note" }, ` unreachable — ${reason}`),
      ),
      links.length === 0
        ? h("p", { class: "muted" }, "No links.")
        : h("ul", { class: "panel-links", "aria-label": `Links of ${titles.get(id) ?? id}` }, links),
      h("a", { class: "open", href: thingHref(id) }, "Open its page"),
    );
  };
  /** The Thing nearest the middle of the graph's box: where a selection starts. */
  const selectMiddle = (): void => {
    const { width, height } = renderer?.getDimensions() ?? { width: 0, height: 0 };
    const middle = nearestTowards({ x: width / 2, y: height / 2 }, 0, 0);
    if (middle === undefined) replace(selection, "No Thing shown to choose.");
    else select(middle);
  };
  const ARROWS: Record<string, { dx: number; dy: number; way: string }> = {
    ArrowRight: { dx: 1, dy: 0, way: "to the right of" },
    ArrowLeft: { dx: -1, dy: 0, way: "to the left of" },
    ArrowUp: { dx: 0, dy: -1, way: "above" },
    ArrowDown: { dx: 0, dy: 1, way: "below" },
  };
  canvas.addEventListener("keydown", (event) => {
    if (renderer === undefined || event.altKey || event.ctrlKey || event.metaKey) return;
    if (event.key === "Enter") {
      if (selected === undefined) return;
      event.preventDefault();
      location.hash = thingHref(selected);
      return;
    }
    const arrow = ARROWS[event.key];
    if (arrow === undefined) return;
    event.preventDefault(); // not the page's scrolling
    const from = selected !== undefined && isShown(selected) ? selected : undefined;
    const at = from === undefined ? undefined : onScreen(from);
    if (from === undefined || at === undefined) return selectMiddle();
    const next = nearestTowards(at, arrow.dx, arrow.dy, from);
    if (next === undefined) select(from, `No Thing ${arrow.way} ${titles.get(from) ?? from}. `);
    else select(next);
  });
  // Tabbed to (not clicked): a Thing is chosen at once, so the arrows have somewhere to start.
  canvas.addEventListener("focus", () => {
    if (renderer !== undefined && selected === undefined && canvas.matches(":focus-visible")) selectMiddle();
  });

  /**
   * A graph small enough to label every Thing: laid out, then spread over the canvas's shape (a
   * phone's is tall) with no label over another, where they fit (`labelsFit`); where they do not,
   * sigma's label grid picks which to draw, and zooming in shows the others. Undefined for a
   * bigger graph, or a canvas with no size: the layout as it is. Sets `unit` and `centre`, where
   * Things that come later are placed.
   */
  let spreadFor: { width: number; height: number } | undefined;
  const spreadOver = (
    nodes: readonly GraphNode[],
  ): { positions: Map<string, { x: number; y: number }>; labelsFit: boolean } | undefined => {
    const [width, height] = [canvas.clientWidth, canvas.clientHeight];
    if (!labelEdges || width === 0 || height === 0) return undefined;
    // Room to spare around each label: sigma measures its glyphs itself, and fits the whole to
    // the canvas a little smaller than laid out here.
    const widths = new Map(nodes.map((node) => [node.id, 1.1 * labelWidth(node.title) + 6]));
    const frame = frameOf(width, height);
    const spread = spreadLabels(layoutOf(nodes), widths, {
      ...frame,
      radius: size,
      labelHeight: LABEL_HEIGHT + 6,
      labelGap: LABEL_GAP,
    });
    unit = spread.unit;
    centre = { x: frame.width / 2, y: frame.height / 2 };
    spreadFor = { width, height };
    canvas.dataset.spreadFor = `${Math.round(width)}x${Math.round(height)}`;
    return { positions: spread.positions, labelsFit: spread.overlaps === 0 };
  };
  /**
   * The canvas took another shape (a phone turned, a window resized): the graph spread again over
   * it, as it would be drawn first at that size. The Thing chosen stays chosen; a camera the user
   * moved (zoomed or panned) keeps its zoom and stays on the Thing nearest the middle of the view.
   */
  const respread = (): void => {
    if (graph === undefined || renderer === undefined || spreadFor === undefined) return;
    const [width, height] = [canvas.clientWidth, canvas.clientHeight];
    // A scrollbar coming or going is no new shape.
    if (Math.abs(width - spreadFor.width) < RESPREAD_PX && Math.abs(height - spreadFor.height) < RESPREAD_PX)
      return;
    const shown = graph;
    const drawn = renderer;
    const camera = drawn.getCamera();
    const before = camera.getState();
    const moved = before.ratio !== 1 || before.x !== 0.5 || before.y !== 0.5;
    // The Thing the view is on, found before the window's new size moves it.
    const { width: oldWidth, height: oldHeight } = drawn.getDimensions();
    const middle = moved ? nearestTowards({ x: oldWidth / 2, y: oldHeight / 2 }, 0, 0) : undefined;
    const nodes = shown.nodes().map((id) => ({
      id,
      title: titles.get(id) ?? id,
      type: typeOfNode.get(id) ?? "Thing",
    }));
    const spread = spreadOver(nodes);
    if (spread === undefined) return;
    shown.updateEachNodeAttributes((id, attributes) => ({
      ...attributes,
      ...(spread.positions.get(id) ?? { x: attributes.x as number, y: attributes.y as number }),
    }));
    outerRing = 0;
    for (const place of spread.positions.values())
      outerRing = Math.max(outerRing, Math.hypot(place.x - centre.x, place.y - centre.y));
    centreTypes();
    drawn.setSetting("labelDensity", spread.labelsFit ? Number.POSITIVE_INFINITY : 1);
    drawn.resize();
    drawn.refresh();
    if (middle !== undefined) {
      const at = drawn.getNodeDisplayData(middle);
      if (at !== undefined) camera.setState({ x: at.x, y: at.y, ratio: before.ratio });
    }
  };
  /** Each disc's centre, where the Things of its type that arrive later are placed. */
  const centreTypes = (): void => {
    if (graph === undefined) return;
    for (const [type, ids] of byType) {
      if (ids.size === 0) continue;
      let x = 0;
      let y = 0;
      for (const id of ids) {
        x += graph.getNodeAttribute(id, "x") as number;
        y += graph.getNodeAttribute(id, "y") as number;
      }
      typeCenters.set(type, { x: x / ids.size, y: y / ids.size });
    }
  };
  let respreadTimer: ReturnType<typeof setTimeout> | undefined;
  const resized = new ResizeObserver(() => {
    if (respreadTimer !== undefined) clearTimeout(respreadTimer);
    // Once the window has its new size (a drag of its edge resizes it many times).
    respreadTimer = setTimeout(() => {
      respreadTimer = undefined;
      if (!abort.signal.aborted) respread();
    }, RESPREAD_MS);
  });
  resized.observe(canvas);

  /** Brings the drawn graph to a summary fetched again: Things and links added, removed or changed. */
  const sync = (summary: GraphSummary): void => {
    if (graph === undefined) return;
    const { nodes, edges } = graphOfSummary(summary);
    const present = new Set<string>();
    const moved: string[] = [];
    for (const node of nodes) {
      present.add(node.id);
      titles.set(node.id, node.title);
      if (!node.reachable && !unreachable.has(node.id)) unreachable.set(node.id, "unreachable");
      if (!graph.hasNode(node.id)) {
        const place = placeOf(node.type);
        setType(node.id, node.type);
        colors.set(node.id, colorOf(node.type));
        graph.addNode(node.id, { label: node.title, size, color: nodeColor(node.id), ...place });
        if (hiddenTypes.has(node.type)) renderer?.setNodesState([node.id], { isHidden: true });
        continue;
      }
      if (graph.getNodeAttribute(node.id, "label") !== node.title)
        graph.setNodeAttribute(node.id, "label", node.title);
      if (typeOfNode.get(node.id) !== node.type) {
        setType(node.id, node.type);
        colors.set(node.id, colorOf(node.type));
        graph.setNodeAttribute(node.id, "color", nodeColor(node.id));
        renderer?.setNodesState([node.id], { isHidden: hiddenTypes.has(node.type) });
        moved.push(node.id);
      }
    }
    for (const id of graph.nodes()) {
      if (present.has(id)) continue;
      if (id === selected) select(undefined);
      graph.dropNode(id);
      setType(id, undefined);
      titles.delete(id);
      colors.delete(id);
      unreachable.delete(id);
    }
    const wanted = new Map(edgeKeys(edges));
    for (const key of graph.edges()) if (!wanted.has(key)) graph.dropEdge(key);
    const added: string[] = [];
    for (const [key, edge] of wanted) {
      if (graph.hasEdge(key) || !graph.hasNode(edge.source) || !graph.hasNode(edge.target)) continue;
      graph.addEdgeWithKey(key, edge.source, edge.target, edgeAttributes(edge.rel));
      added.push(edge.source);
    }
    showEdgesOf([...added, ...moved]);
    markCrowded();
    lightLinks();
    showLegend();
    showUnreachable();
    showCount();
    showMatches(); // a search shown follows the Things' titles and removals
    relist();
    showPanel();
    canvas.dataset.rendered = String(graph.order);
  };

  // A TD registered, changed or removed while the graph is shown: the summary again, at most one
  // request at a time and one a second, so a discovery registering thousands costs a few requests.
  let refreshing = false;
  let refreshDue = false;
  let refreshTimer: ReturnType<typeof setTimeout> | undefined;
  const refresh = (): void => {
    if (graph === undefined || abort.signal.aborted) return;
    if (refreshing || refreshTimer !== undefined) {
      refreshDue = true;
      return;
    }
    refreshTimer = setTimeout(() => {
      refreshTimer = undefined;
      refreshing = true;
      refreshDue = false;
      client
        .graphSummary(abort.signal)
        .then(sync)
        .catch(() => undefined) // the next change, or the page drawn again when the hub is back, retries
        .finally(() => {
          refreshing = false;
          if (refreshDue) refresh();
        });
    }, REFRESH_MS);
  };
  const unsubscribeTds = live.subscribe((change) => {
    // A Thing removed and registered again starts reachable: its old outage is not its own.
    if (change.kind === "removed" && unreachable.delete(change.thing)) showUnreachable();
    if (change.kind === "described" || change.kind === "removed") refresh();
  });

  void (async () => {
    try {
      // One request: the hub's light projection of the graph, built from its in-memory indexes.
      const summary = await client.graphSummary(abort.signal);
      if (abort.signal.aborted) return;
      performance.measure("graph-load", "graph-start");
      const { nodes, edges } = graphOfSummary(summary);
      const types = legendOf(nodes);
      for (const [type, { color }] of types) typeColors.set(type, color);
      size = nodes.length > 1000 ? 3 : nodes.length > 100 ? 6 : 12;
      labelEdges = nodes.length <= LABELLED_EDGES;
      const spread = spreadOver(nodes);
      const positions = spread?.positions ?? layoutOf(nodes);
      const labelsFit = spread?.labelsFit ?? false;
      graph = new Graph({ multi: true, type: "directed" });
      // In bulk (graphology's import): no per-node events or checks beyond the one pass.
      graph.import({
        nodes: nodes.map((node) => {
          const color = colorOf(node.type);
          colors.set(node.id, color);
          titles.set(node.id, node.title);
          setType(node.id, node.type);
          if (!node.reachable) unreachable.set(node.id, "unreachable");
          const place = positions.get(node.id) ?? { x: 0, y: 0 };
          outerRing = Math.max(outerRing, Math.hypot(place.x - centre.x, place.y - centre.y));
          return {
            key: node.id,
            attributes: {
              label: node.title,
              size,
              color: node.reachable ? color : UNREACHABLE_COLOR,
              ...place,
            },
          };
        }),
        edges: edgeKeys(edges).map(([key, edge]) => ({
          key,
          source: edge.source,
          target: edge.target,
          attributes: edgeAttributes(edge.rel),
        })),
      });
      centreTypes();
      markCrowded();
      showUnreachable();
      showLegend();
      showCount();
      showList();
      performance.mark("graph-built");
      renderer = new Sigma(graph, canvas, {
        // Arrows (a link has a direction: a container runsOn its host), and links both ways
        // between two Things (runsOn and hosts) curve apart, each with its own label, instead
        // of being drawn, labels and all, on top of each other.
        primitives: {
          edges: {
            paths: [pathLine(), pathCurved()],
            extremities: [extremityArrow()],
            layers: [layerPlain()],
          },
        },
        styles: {
          // The Thing the arrow keys chose stands out as a hovered one does: larger, on top, its
          // label drawn on a backdrop. Either state: sigma's `whenState` with a list asks for all
          // of them at once (a chosen Thing stood out only while hovered too).
          nodes: {
            ...DEFAULT_STYLES.nodes,
            depth: { when: standsOut, then: "topNodes", else: "nodes" },
            size: (attributes, state) =>
              (attributes.size as number) * (state.isHighlighted ? 1.8 : 1) + (state.isHighlighted ? 4 : 0),
            labelVisibility: { when: standsOut, then: "visible", else: "auto" },
            backdropVisibility: { when: standsOut, then: "visible", else: "hidden" },
          },
          // The links around a Thing with many are named while one of their ends is hovered or
          // chosen (then drawn darker, on top), and listed in words in the list above.
          edges: {
            ...DEFAULT_STYLES.edges,
            path: "straight",
            parallelPath: "curved",
            head: "arrow",
            color: (attributes, state) => (state.isHighlighted ? "#6b7280" : (attributes.color as string)),
            labelVisibility: (attributes, state) =>
              state.isHighlighted || state.isHovered
                ? "visible"
                : attributes.crowded === true || attributes.nameClashes === true
                  ? "hidden"
                  : "auto",
          },
        },
        settings: {
          // On a graph small enough to label, every node's label: sigma's default leaves out
          // those that share a grid cell with another.
          labelDensity: labelsFit ? Number.POSITIVE_INFINITY : 1,
          // Sizes in pixels whatever the graph's extent; labels (glyph atlases) only where they
          // can be read: up to 2,000 Things, at every node size drawn (sigma's default hides the
          // labels of nodes under 6 px, so graphs of 101–2,000 Things showed none until zoomed).
          itemSizesReference: "screen",
          renderLabels: nodes.length <= LABELLED_GRAPH,
          renderEdgeLabels: labelEdges,
          hideEdgesOnMove: true,
          stagePadding: STAGE_PADDING,
          // On a touch screen the page scrolls past the graph under one finger (the canvas takes
          // most of a phone's window); two fingers move and zoom the graph, a tap chooses a Thing.
          gestureTarget: TOUCH ? "shared" : "graph",
          labelRenderedSizeThreshold: Math.min(8, size),
          // The camera frames the labels too, where they are drawn: a Thing at the edge of the
          // graph is read whole ("Espresso machine", not "Espress" cut by the canvas's edge).
          autoRescaleContent: nodes.length <= LABELLED_GRAPH ? "labels" : "nodes",
        },
      });
      performance.measure("graph-sigma", "graph-built");
      // A click opens the Thing; a tap chooses it (there is no hover to say which it is first),
      // and its panel opens it; a tap beside every Thing lets it go.
      renderer.on("clickNode", ({ node, event }) => {
        if (!event.original.type.startsWith("touch")) {
          location.hash = thingHref(node);
          return;
        }
        select(node);
        // Under the graph on a phone: brought up into the window.
        panel.scrollIntoView({ block: "nearest", behavior: "smooth" });
      });
      renderer.on("clickStage", ({ event }) => {
        if (event.original.type.startsWith("touch")) select(undefined);
      });
      renderer.on("enterNode", ({ node }) => {
        hovered = node;
        lightLinks();
      });
      renderer.on("leaveNode", () => {
        hovered = undefined;
        lightLinks();
      });
      // How many links are named on the canvas, and whether the Thing chosen is drawn on its
      // backdrop, said as the rendered count is (the browser tests).
      const named = renderer;
      named.on("afterRender", () => {
        canvas.dataset.namedLinks = String(named.getEdgeDisplayedLabels().size);
        // The camera's zoom (1: the whole graph framed), which a new shape of the canvas keeps.
        canvas.dataset.zoom = named.getCamera().getState().ratio.toFixed(3);
        const layout = labelLayout(named);
        canvas.dataset.labelOverlaps = String(layout.overlaps);
        canvas.dataset.hiddenLinkNames = String(layout.clashes.size);
        // A link's name that would lie over a Thing or another name is not drawn (until there is
        // room: zoomed in, or the Things moved): set once per change, which draws the graph again.
        named.getGraph().forEachEdge((edge, attributes) => {
          const clash = layout.clashes.has(edge);
          if ((attributes.nameClashes === true) !== clash)
            named.getGraph().setEdgeAttribute(edge, "nameClashes", clash);
        });
        if (selected === undefined) delete canvas.dataset.selectedBackdrop;
        else
          canvas.dataset.selectedBackdrop = String(
            named.getNodeDisplayData(selected)?.backdropVisibility === "visible",
          );
      });
      renderer.once("afterRender", () => {
        performance.mark("graph-rendered");
        performance.measure("graph", "graph-start", "graph-rendered");
        canvas.dataset.rendered = String(graph?.order ?? nodes.length);
      });
      renderer.refresh();
      // The summary said which Things are unreachable; the last day's Changes say why: each one's
      // newest, read newest first until every one has its reason. A page of so rare a kind may hold
      // few or none on a busy Log (the hub scans a stretch of it per page), so the pages go on.
      const unexplained = new Set<string>();
      for (const [id, reason] of unreachable) if (reason === "unreachable") unexplained.add(id);
      if (unexplained.size === 0) return;
      const outages = client.changesAll({ kind: ["unreachable"], since: "-24h", limit: 1000, order: "desc" });
      for await (const change of outages) {
        if (abort.signal.aborted) return;
        if (!unexplained.delete(change.thing)) continue;
        // A live Change since (a newer reason, or the Thing back) stays as it is.
        if (typeof change.value === "string" && unreachable.get(change.thing) === "unreachable")
          unreachable.set(change.thing, change.value);
        if (unexplained.size === 0) break;
      }
      showUnreachable();
    } catch (err) {
      if (abort.signal.aborted) return;
      const back = redrawWhenBack(live, err);
      cancelRedraw = back?.cancel;
      replace(status, problemBox(err), back?.note);
    }
  })();

  return () => {
    abort.abort();
    cancelRedraw?.();
    if (refreshTimer !== undefined) clearTimeout(refreshTimer);
    if (respreadTimer !== undefined) clearTimeout(respreadTimer);
    resized.disconnect();
    unsubscribe();
    unsubscribeTds();
    renderer?.kill();
  };
};
