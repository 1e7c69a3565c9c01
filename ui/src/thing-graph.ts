// The graph model: Things as nodes coloured by their semantic type, TD `links` that point at
// another registered Thing as edges, laid out cluster by type so 10,000 Things need no
// force simulation before the first frame.
import type { GraphSummary } from "../../src/client/hub-client.js";
import { compactIri } from "../../src/core/iri.js";
import type { Link, RegisteredThingDescription } from "../../src/client/index.js";

export interface GraphNode {
  id: string;
  title: string;
  type: string;
}

export interface GraphEdge {
  source: string;
  target: string;
  rel: string;
}

export const PALETTE = [
  "#1f77b4",
  "#ff7f0e",
  "#2ca02c",
  "#d62728",
  "#9467bd",
  "#8c564b",
  "#e377c2",
  "#17becf",
  "#bcbd22",
  "#7f7f7f",
];

/** The Thing's type for the legend: its first `@type` that is not the generic `Thing`. */
export function typeOf(td: Pick<RegisteredThingDescription, "@type">): string {
  const types = td["@type"] === undefined ? [] : Array.isArray(td["@type"]) ? td["@type"] : [td["@type"]];
  return types.find((type) => type !== "Thing" && type !== "td:Thing") ?? "Thing";
}

/** The Thing a link points at: its id as given, or a hub URL `…/things/{id}`. */
export function linkTarget(link: Link, known: ReadonlySet<string>): string | undefined {
  if (known.has(link.href)) return link.href;
  const at = link.href.lastIndexOf("/things/");
  if (at === -1) return undefined;
  let id: string;
  try {
    id = decodeURIComponent(link.href.slice(at + "/things/".length).split(/[?#]/, 1)[0] ?? "");
  } catch {
    return undefined;
  }
  return known.has(id) ? id : undefined;
}

export function graphOf(tds: readonly RegisteredThingDescription[]): {
  nodes: GraphNode[];
  edges: GraphEdge[];
} {
  const known = new Set(tds.map((td) => td.id));
  const nodes = tds.map((td) => ({ id: td.id, title: td.title, type: typeOf(td) }));
  const edges: GraphEdge[] = [];
  for (const td of tds) {
    for (const link of td.links ?? []) {
      const target = linkTarget(link, known);
      if (target !== undefined && target !== td.id)
        edges.push({ source: td.id, target, rel: link.rel ?? "link" });
    }
  }
  return { nodes, edges };
}

const TD_THING = "https://www.w3.org/2019/wot/td#Thing";

/** Nodes and edges from the hub's light projection (GET /graph/summary): no TD is fetched. */
export function graphOfSummary(summary: GraphSummary): {
  nodes: Array<GraphNode & { reachable: boolean }>;
  edges: GraphEdge[];
} {
  const prefixes = Object.entries(summary.prefixes);
  // A fleet has a handful of distinct types: compact each once.
  const compacted = new Map<string, string>();
  const nodes = summary.things.map((thing) => {
    const first = thing.types.find((type) => type !== TD_THING);
    let type = "Thing";
    if (first !== undefined) {
      type = compacted.get(first) ?? compactIri(first, prefixes);
      compacted.set(first, type);
    }
    return { id: thing.id, title: thing.title ?? thing.id, type, reachable: thing.reachable };
  });
  const edges = summary.links.map((link) => ({ source: link.from, target: link.to, rel: link.rel }));
  return { nodes, edges };
}

/** Each type's colour, most numerous type first. */
export function legendOf(nodes: readonly GraphNode[]): Map<string, { color: string; count: number }> {
  const counts = new Map<string, number>();
  for (const node of nodes) counts.set(node.type, (counts.get(node.type) ?? 0) + 1);
  const sorted = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0]));
  return new Map(
    sorted.map(([type, count], index) => [type, { color: PALETTE[index % PALETTE.length] ?? "#666", count }]),
  );
}

export const GOLDEN_ANGLE = Math.PI * (3 - Math.sqrt(5));

/** Positions: one disc per type (a sunflower spiral inside), the discs around a circle. */
export function layoutOf(nodes: readonly GraphNode[]): Map<string, { x: number; y: number }> {
  const byType = new Map<string, GraphNode[]>();
  for (const node of nodes) {
    const group = byType.get(node.type);
    if (group === undefined) byType.set(node.type, [node]);
    else group.push(node);
  }
  const groups = [...byType.values()].sort((a, b) => b.length - a.length);
  const radii = groups.map((group) => Math.sqrt(group.length) + 1);
  const ring = groups.length === 1 ? 0 : radii.reduce((sum, r) => sum + r, 0) / Math.PI + 2;
  const positions = new Map<string, { x: number; y: number }>();
  groups.forEach((group, g) => {
    const angle = (2 * Math.PI * g) / groups.length;
    const cx = ring * Math.cos(angle);
    const cy = ring * Math.sin(angle);
    group.forEach((node, i) => {
      const r = Math.sqrt(i + 0.5);
      positions.set(node.id, {
        x: cx + r * Math.cos(i * GOLDEN_ANGLE),
        y: cy + r * Math.sin(i * GOLDEN_ANGLE),
      });
    });
  });
  return positions;
}
