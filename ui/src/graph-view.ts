// The graph of every Thing and its links (sigma's WebGL renderer over a graphology graph):
// colours by type with a legend, live reachability, click a node to open the Thing.
import Graph from "graphology";
import Sigma, { DEFAULT_STYLES } from "sigma";
import { extremityArrow, layerPlain, pathCurved, pathLine } from "sigma/rendering";
import type { Change } from "../../src/client/index.js";
import type { View } from "./app-context.js";
import { h, replace, thingHref } from "./dom.js";
import { problemBox } from "./errors.js";
import { redrawWhenBack } from "./live.js";
import { graphOfSummary, layoutOf, legendOf } from "./thing-graph.js";

const UNREACHABLE_COLOR = "#b0b0b0";
const MAX_MATCHES = 20;
/** Above this many Things, labels show on hover only: drawing 10,000 of them costs seconds. */
const LABELLED_GRAPH = 2000;
/** Edge labels only on small graphs. */
const LABELLED_EDGES = 200;
export const graphView: View = ({ client, live }, root) => {
  performance.mark("graph-start");
  const abort = new AbortController();
  let renderer: Sigma | undefined;
  let cancelRedraw: (() => void) | undefined;
  const status = h("p", { class: "muted" }, "Loading the Things…");
  const canvas = h("div", { class: "graph", "data-testid": "graph" });
  const legend = h("ul", { class: "legend", "aria-label": "Legend" });
  const unreachableList = h("ul", { class: "unreachable", "aria-label": "Unreachable Things" });
  const search = h("input", {
    type: "search",
    placeholder: "Find a Thing by title or id",
    "aria-label": "Find a Thing",
  });
  const matches = h("ul", { class: "matches" });
  replace(
    root,
    h("h1", {}, "Things"),
    status,
    h(
      "div",
      { class: "graph-layout" },
      canvas,
      h(
        "aside",
        {},
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
        : [...unreachable].map(([id, reason]) =>
            h("li", {}, h("a", { href: thingHref(id) }, titles.get(id) ?? id), " — ", reason),
          ),
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
  }
  const unsubscribe = live.subscribe(applyReachability);

  // Enter opens the first Thing found, as a click on it would: the keyboard's way into a Thing.
  search.addEventListener("keydown", (event) => {
    if (event.key !== "Enter") return;
    const first = matches.querySelector("a");
    if (first !== null) location.hash = first.getAttribute("href") ?? "#/";
  });
  search.addEventListener("input", () => {
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
        : found.map((id) => h("li", {}, h("a", { href: thingHref(id) }, titles.get(id) ?? id))),
    );
  });

  void (async () => {
    try {
      // One request: the hub's light projection of the graph, built from its in-memory indexes.
      const summary = await client.graphSummary(abort.signal);
      if (abort.signal.aborted) return;
      performance.measure("graph-load", "graph-start");
      const { nodes, edges } = graphOfSummary(summary);
      const types = legendOf(nodes);
      const positions = layoutOf(nodes);
      const size = nodes.length > 1000 ? 3 : nodes.length > 100 ? 6 : 12;
      const labelEdges = nodes.length <= LABELLED_EDGES;
      graph = new Graph({ multi: true, type: "directed" });
      // In bulk (graphology's import): no per-node events or checks beyond the one pass.
      graph.import({
        nodes: nodes.map((node) => {
          const color = types.get(node.type)?.color ?? "#666";
          colors.set(node.id, color);
          titles.set(node.id, node.title);
          if (!node.reachable) unreachable.set(node.id, "unreachable");
          return {
            key: node.id,
            attributes: {
              label: node.title,
              size,
              color: node.reachable ? color : UNREACHABLE_COLOR,
              ...positions.get(node.id),
            },
          };
        }),
        edges: edges.map((edge) => ({
          source: edge.source,
          target: edge.target,
          attributes: labelEdges ? { label: edge.rel, color: "#ccc", size: 1 } : { color: "#ccc", size: 1 },
        })),
      });
      showUnreachable();
      // Each type of the legend is a switch: pressed, its Things are drawn; released, hidden (and
      // their links with them), so one kind of Thing can be looked at among thousands.
      const byType = new Map<string, string[]>();
      const typeOfNode = new Map<string, string>();
      for (const node of nodes) {
        typeOfNode.set(node.id, node.type);
        const group = byType.get(node.type);
        if (group === undefined) byType.set(node.type, [node.id]);
        else group.push(node.id);
      }
      const hiddenTypes = new Set<string>();
      const showCount = () => {
        let hidden = 0;
        for (const type of hiddenTypes) hidden += byType.get(type)?.length ?? 0;
        canvas.dataset.shown = String(nodes.length - hidden);
        replace(
          status,
          `${nodes.length} Things, ${edges.length} links`,
          hidden > 0 && `; ${nodes.length - hidden} shown (the types switched off in the legend are hidden)`,
          ". Click a node to open it.",
        );
      };
      const toggle = (type: string, button: HTMLButtonElement) => {
        const hide = !hiddenTypes.has(type);
        if (hide) hiddenTypes.add(type);
        else hiddenTypes.delete(type);
        button.setAttribute("aria-pressed", String(!hide));
        const keys = byType.get(type) ?? [];
        renderer?.setNodesState(keys, { isHidden: hide });
        // A link is drawn while both its ends are.
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
        showCount();
      };
      replace(
        legend,
        [...types].map(([type, { color, count }]) => {
          const button = h(
            "button",
            { type: "button", class: "legend-type", "aria-pressed": "true", "data-type": type },
            h("span", { class: "swatch", style: `background:${color}` }),
            `${type} (${count})`,
          );
          button.addEventListener("click", () => toggle(type, button));
          return h("li", {}, button);
        }),
        h("li", {}, h("span", { class: "swatch", style: `background:${UNREACHABLE_COLOR}` }), "unreachable"),
      );
      showCount();
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
          edges: { ...DEFAULT_STYLES.edges, path: "straight", parallelPath: "curved", head: "arrow" },
        },
        settings: {
          // On a graph small enough to label, every node's label: sigma's default leaves out
          // those that share a grid cell with another.
          labelDensity: nodes.length <= LABELLED_EDGES ? Number.POSITIVE_INFINITY : 1,
          // Sizes in pixels whatever the graph's extent; labels (glyph atlases) only where they can be read.
          itemSizesReference: "screen",
          renderLabels: nodes.length <= LABELLED_GRAPH,
          renderEdgeLabels: labelEdges,
          hideEdgesOnMove: true,
          labelRenderedSizeThreshold: 8,
        },
      });
      performance.measure("graph-sigma", "graph-built");
      renderer.on("clickNode", ({ node }) => {
        location.hash = thingHref(node);
      });
      renderer.once("afterRender", () => {
        performance.mark("graph-rendered");
        performance.measure("graph", "graph-start", "graph-rendered");
        canvas.dataset.rendered = String(nodes.length);
      });
      renderer.refresh();
      // The summary said which Things are unreachable; the last day's Changes say why (newest first).
      if (unreachable.size === 0) return;
      const page = await client.changes({ kind: ["unreachable"], since: "-24h", limit: 1000 });
      const reasons = new Map<string, string>();
      for (const change of page.changes)
        if (!reasons.has(change.thing) && typeof change.value === "string")
          reasons.set(change.thing, change.value);
      for (const [id, reason] of reasons)
        if (unreachable.get(id) === "unreachable") unreachable.set(id, reason);
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
    unsubscribe();
    renderer?.kill();
  };
};
