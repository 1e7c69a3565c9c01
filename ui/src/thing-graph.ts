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

/** The canvas a labelled graph is spread over, in pixels, and what each Thing takes on it. */
export interface SpreadFrame {
  /** The canvas's drawing area (its size less the stage's padding). */
  width: number;
  height: number;
  /** A node's radius. */
  radius: number;
  /** A label's height, and its distance from its node's disc (it is drawn to the right). */
  labelHeight: number;
  labelGap: number;
}

/**
 * Places a labelled graph's Things on a canvas of `frame.width` × `frame.height` pixels (y up, as
 * sigma's graph coordinates): the layout stretched to the canvas's shape (a phone's canvas is
 * taller than wide, and a square layout fitted to its width left its top and bottom empty), then
 * Things whose discs or labels overlap pushed apart, the shorter way, within the canvas. Returns
 * the positions (sigma frames them at about a pixel a unit), the pixels a layout unit became
 * (where Things that come later are placed), and how many pairs of labels still overlap (a graph
 * too big for the canvas: sigma's label grid then picks which to draw).
 */
export function spreadLabels(
  positions: ReadonlyMap<string, { x: number; y: number }>,
  labelWidths: ReadonlyMap<string, number>,
  frame: SpreadFrame,
): { positions: Map<string, { x: number; y: number }>; unit: number; overlaps: number } {
  const ids = [...positions.keys()];
  const { width, height, radius, labelHeight, labelGap } = frame;
  const half = Math.max(radius, labelHeight / 2);
  const right = (id: string) => radius + labelGap + (labelWidths.get(id) ?? 0);
  let [minX, maxX, minY, maxY] = [Infinity, -Infinity, Infinity, -Infinity];
  for (const { x, y } of positions.values()) {
    [minX, maxX, minY, maxY] = [Math.min(minX, x), Math.max(maxX, x), Math.min(minY, y), Math.max(maxY, y)];
  }
  const widest = Math.max(0, ...ids.map(right));
  const spanX = Math.max(0, width - radius - widest);
  const spanY = Math.max(0, height - 2 * half);
  const unitX = maxX > minX ? spanX / (maxX - minX) : 0;
  const unitY = maxY > minY ? spanY / (maxY - minY) : 0;
  const xs = new Float64Array(ids.length);
  const ys = new Float64Array(ids.length);
  const lo = new Float64Array(ids.length);
  const hi = new Float64Array(ids.length);
  ids.forEach((id, i) => {
    const at = positions.get(id) ?? { x: 0, y: 0 };
    xs[i] = radius + (maxX > minX ? (at.x - minX) * unitX : spanX / 2);
    ys[i] = half + (maxY > minY ? (at.y - minY) * unitY : spanY / 2);
    // A label longer than the canvas starts at its left edge.
    lo[i] = radius;
    hi[i] = Math.max(radius, width - right(id));
  });
  const widths = ids.map(right);
  const clamp = (i: number) => {
    xs[i] = Math.min(Math.max(xs[i] ?? 0, lo[i] ?? 0), hi[i] ?? 0);
    ys[i] = Math.min(Math.max(ys[i] ?? 0, half), Math.max(half, height - half));
  };
  /** How far the boxes of i and j overlap along x and y (both positive when they do). */
  const overlap = (i: number, j: number): [number, number] => {
    const [xi, xj, yi, yj] = [xs[i] ?? 0, xs[j] ?? 0, ys[i] ?? 0, ys[j] ?? 0];
    const ox = Math.min(xi + (widths[i] ?? 0), xj + (widths[j] ?? 0)) - Math.max(xi - radius, xj - radius);
    const oy = 2 * half - Math.abs(yi - yj);
    return [ox, oy];
  };
  for (let round = 0; round < 300; round++) {
    let moved = false;
    for (let i = 0; i < ids.length; i++)
      for (let j = i + 1; j < ids.length; j++) {
        const [ox, oy] = overlap(i, j);
        if (ox <= 0 || oy <= 0) continue;
        moved = true;
        // The shorter way out, half each; ties (one place) broken by the order of the ids.
        const centreI = (xs[i] ?? 0) + ((widths[i] ?? 0) - radius) / 2;
        const centreJ = (xs[j] ?? 0) + ((widths[j] ?? 0) - radius) / 2;
        if (ox < oy) {
          const way = centreI < centreJ || (centreI === centreJ && i < j) ? -1 : 1;
          xs[i] = (xs[i] ?? 0) + (way * (ox + 1)) / 2;
          xs[j] = (xs[j] ?? 0) - (way * (ox + 1)) / 2;
        } else {
          const way = (ys[i] ?? 0) < (ys[j] ?? 0) || (ys[i] === ys[j] && i < j) ? -1 : 1;
          ys[i] = (ys[i] ?? 0) + (way * (oy + 1)) / 2;
          ys[j] = (ys[j] ?? 0) - (way * (oy + 1)) / 2;
        }
        clamp(i);
        clamp(j);
      }
    if (!moved) break;
  }
  let overlaps = 0;
  for (let i = 0; i < ids.length; i++)
    for (let j = i + 1; j < ids.length; j++) {
      const [ox, oy] = overlap(i, j);
      if (ox > 0 && oy > 0) overlaps++;
    }
  const spread = new Map(ids.map((id, i) => [id, { x: xs[i] ?? 0, y: ys[i] ?? 0 }]));
  const unit = Math.min(unitX || unitY, unitY || unitX) || 1;
  return { positions: spread, unit, overlaps };
}
