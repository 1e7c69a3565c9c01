// Evaluation of graph filters (graph-filter.ts) over a read-only view of the graph, without I/O:
// set-at-a-time, indexed atoms (type, id, state, relations) enumerate candidates and the rest is
// tested on them; traversals are breadth-first, cycle-safe and bounded in the edges they examine.
import { ValidationError } from "./errors.js";
import { formatGraphFilter, type Comparison, type GraphQuery, type Literal } from "./graph-filter.js";

/** What the evaluator needs of the graph: the hub's indexes implement it. */
export interface GraphView {
  /** Every registered Thing's id. */
  ids(): Iterable<string>;
  has(id: string): boolean;
  /** How many Things are registered. */
  readonly size: number;
  /** The Things whose `@type` includes this full IRI. */
  ofType(iri: string): Iterable<string>;
  /** How many Things `ofType(iri)` lists. */
  countOfType(iri: string): number;
  /** How many Things `forEachState(property)` visits, at most. */
  countWithState(property: string): number;
  /** A Thing's `@type` values as full IRIs. */
  typesOf(id: string): readonly string[];
  /** Edges out of a Thing (rel as a full IRI). */
  outgoing(id: string): ReadonlyArray<{ relIri: string; to: string }>;
  /** Edges into a Thing, also into ids no Thing has yet. */
  incoming(id: string): ReadonlyArray<{ relIri: string; from: string }>;
  /** A member of the Thing's TD (undefined when absent). */
  tdField(id: string, path: readonly string[]): unknown;
  /** The Thing's current reported value of a property (undefined when none). */
  stateValue(id: string, property: string): unknown;
  /** Every Thing with a current value of the property, with that value. */
  forEachState(property: string, visit: (id: string, value: unknown) => void): void;
}

export interface EvaluateOptions {
  /** The full IRIs a type term in the query stands for: the type and its subtypes. */
  typesOf(term: string): ReadonlySet<string>;
  /** The full IRI of a relation term in the query. */
  relOf(term: string): string;
  /** The most edges one evaluation may examine (the fan-out bound). */
  maxEdgeVisits: number;
  /** Where the filter came from, for errors (e.g. `/query/filter`). */
  pointer?: string;
}

/** The default fan-out bound: ten times the edges of the 100k-Thing benchmark graph. */
export const DEFAULT_MAX_EDGE_VISITS = 3_000_000;

/**
 * The member at `path` inside a JSON value; undefined where there is none. Own members only:
 * `td.constructor` or `state.x.toString` names nothing a TD or a value holds.
 */
export function memberAt(value: unknown, path: readonly string[]): unknown {
  let v = value;
  for (const key of path) {
    if (typeof v !== "object" || v === null || Array.isArray(v)) return undefined;
    v = Object.hasOwn(v, key) ? (v as Record<string, unknown>)[key] : undefined;
  }
  return v;
}

/** A comparison on one value; an array matches when an element does; a missing value never matches. */
export function compareValue(value: unknown, cmp: Comparison, literal: Literal): boolean {
  if (value === undefined) return false;
  if (Array.isArray(value)) {
    if (cmp === "!=") return !value.some((v) => compareValue(v, "=", literal));
    return value.some((v) => compareValue(v, cmp, literal));
  }
  switch (cmp) {
    case "=":
      return value === literal;
    case "!=":
      return value !== literal;
    default: {
      const ordered =
        (typeof value === "number" && typeof literal === "number") ||
        (typeof value === "string" && typeof literal === "string");
      if (!ordered) return false;
      const a = value;
      const b = literal;
      return cmp === "<" ? a < b : cmp === "<=" ? a <= b : cmp === ">" ? a > b : a >= b;
    }
  }
}

class Evaluation {
  private readonly memo = new Map<GraphQuery, Set<string>>();
  private readonly typeSets = new Map<GraphQuery, ReadonlySet<string>>();
  private visits = 0;

  constructor(
    private readonly view: GraphView,
    private readonly options: EvaluateOptions,
  ) {}

  /** Whether a node can list its matches without testing every Thing. */
  private enumerable(q: GraphQuery): boolean {
    switch (q.op) {
      case "compare":
        return (
          q.field.kind === "state" || ((q.field.kind === "id" || q.field.kind === "type") && q.cmp === "=")
        );
      case "related":
        return true;
      case "and":
        return q.of.some((c) => this.enumerable(c));
      case "or":
        return q.of.every((c) => this.enumerable(c));
      case "not":
        return false;
    }
  }

  private typeSet(q: GraphQuery & { op: "compare" }): ReadonlySet<string> {
    let set = this.typeSets.get(q);
    if (!set) this.typeSets.set(q, (set = this.options.typesOf(String(q.value))));
    return set;
  }

  /** An upper bound on how many Things an enumerable node lists, cheap to work out. */
  private estimate(q: GraphQuery): number {
    if (this.memo.has(q)) return this.memo.get(q)?.size ?? 0;
    switch (q.op) {
      case "compare":
        if (q.field.kind === "id") return 1;
        if (q.field.kind === "type") {
          let n = 0;
          for (const iri of this.typeSet(q)) n += this.view.countOfType(iri);
          return n;
        }
        // A comparison keeps part of the values it scans, and scanning a value index is cheaper
        // than building a set of every Thing of a type: a tie goes to the values.
        if (q.field.kind === "state") return this.view.countWithState(q.field.path[0] ?? "") / 2;
        return this.view.size;
      case "related":
        // A traversal from a few Things reaches few; from everything, anything.
        return q.where && this.enumerable(q.where) ? this.estimate(q.where) + 1 : this.view.size;
      case "and":
        return Math.min(...q.of.filter((c) => this.enumerable(c)).map((c) => this.estimate(c)));
      case "or":
        return q.of.reduce((n, c) => n + this.estimate(c), 0);
      case "not":
        return this.view.size;
    }
  }

  /** Every registered Thing matching `q`. */
  set(q: GraphQuery): Set<string> {
    let result = this.memo.get(q);
    if (result) return result;
    result = this.compute(q);
    this.memo.set(q, result);
    return result;
  }

  private filterAll(test: (id: string) => boolean): Set<string> {
    const out = new Set<string>();
    for (const id of this.view.ids()) if (test(id)) out.add(id);
    return out;
  }

  private compute(q: GraphQuery): Set<string> {
    switch (q.op) {
      case "compare":
        return this.compareSet(q);
      case "and": {
        // Only the most selective indexed term lists its matches; the others are tested on them
        // (a typed 3-hop traversal lists the few Things the traversal reaches, not every sensor).
        let base: GraphQuery | undefined;
        let best = Infinity;
        for (const c of q.of) {
          if (!this.enumerable(c)) continue;
          const estimate = this.estimate(c);
          if (estimate < best) [base, best] = [c, estimate];
        }
        const others = q.of.filter((c) => c !== base);
        const keep = (id: string) => others.every((c) => this.test(c, id));
        if (!base) return this.filterAll(keep);
        const out = new Set<string>();
        for (const id of this.set(base)) if (keep(id)) out.add(id);
        return out;
      }
      case "or": {
        if (!this.enumerable(q)) return this.filterAll((id) => q.of.some((c) => this.test(c, id)));
        const out = new Set<string>();
        for (const c of q.of) for (const id of this.set(c)) out.add(id);
        return out;
      }
      case "not":
        return this.filterAll((id) => !this.test(q.of, id));
      case "related":
        return this.related(q);
    }
  }

  private compareSet(q: GraphQuery & { op: "compare" }): Set<string> {
    const { field } = q;
    if (field.kind === "id" && q.cmp === "=") {
      const id = String(q.value);
      return new Set(this.view.has(id) ? [id] : []);
    }
    if (field.kind === "type" && q.cmp === "=") {
      const out = new Set<string>();
      for (const iri of this.typeSet(q)) for (const id of this.view.ofType(iri)) out.add(id);
      return out;
    }
    if (field.kind === "state") {
      const [property = "", ...inner] = field.path;
      const out = new Set<string>();
      const { cmp, value: literal } = q;
      this.view.forEachState(property, (id, value) => {
        if (compareValue(inner.length === 0 ? value : memberAt(value, inner), cmp, literal)) out.add(id);
      });
      return out;
    }
    return this.filterAll((id) => this.test(q, id));
  }

  /** Whether one Thing matches `q`. */
  test(q: GraphQuery, id: string): boolean {
    if (q.op !== "compare") {
      if (q.op === "not") return !this.test(q.of, id);
      if (q.op === "and" && !this.memo.has(q)) return q.of.every((c) => this.test(c, id));
      if (q.op === "or" && !this.memo.has(q)) return q.of.some((c) => this.test(c, id));
      return this.set(q).has(id);
    }
    const { field } = q;
    switch (field.kind) {
      case "id":
        return q.cmp === "=" ? id === q.value : id !== q.value;
      case "type": {
        const wanted = this.typeSet(q);
        const has = this.view.typesOf(id).some((t) => wanted.has(t));
        return q.cmp === "=" ? has : !has;
      }
      case "td":
        return compareValue(this.view.tdField(id, field.path), q.cmp, q.value);
      case "state": {
        const [property = "", ...inner] = field.path;
        return compareValue(memberAt(this.view.stateValue(id, property), inner), q.cmp, q.value);
      }
    }
  }

  private related(q: GraphQuery & { op: "related" }): Set<string> {
    const rel = q.rel === undefined ? undefined : this.options.relOf(q.rel);
    const start = q.where ? this.set(q.where) : new Set(this.view.ids());
    const bound = this.options.maxEdgeVisits;
    // `out(rel)`: Things whose edges lead to the matches, so walk edges backwards from them.
    const step = (nodes: Iterable<string>, into: Set<string>, skip?: Set<string>): void => {
      for (const node of nodes) {
        const edges =
          q.direction === "out"
            ? this.view.incoming(node).map((e) => [e.relIri, e.from] as const)
            : this.view.outgoing(node).map((e) => [e.relIri, e.to] as const);
        this.visits += edges.length;
        if (this.visits > bound) {
          throw new ValidationError(
            `The traversal ${formatGraphFilter({ ...q, where: undefined })} fans out beyond ${bound} edges; narrow it with a type or id filter in its { } or fewer hops`,
            [{ pointer: this.options.pointer ?? "/filter", message: `examines more than ${bound} edges` }],
          );
        }
        for (const [r, other] of edges) {
          if (rel !== undefined && r !== rel) continue;
          if (skip?.has(other)) continue;
          into.add(other);
        }
      }
    };
    let frontier: Set<string> = start;
    for (let level = 1; level <= q.min && frontier.size > 0; level++) {
      const next = new Set<string>();
      step(frontier, next);
      frontier = next;
    }
    let reached: Set<string>;
    if (q.max === undefined) {
      // Transitive: each node is expanded once, so cycles end the walk.
      reached = new Set(frontier);
      let wave = [...frontier];
      while (wave.length > 0) {
        const next = new Set<string>();
        step(wave, next, reached);
        for (const n of next) reached.add(n);
        wave = [...next];
      }
    } else {
      reached = new Set(frontier);
      for (let level = q.min + 1; level <= q.max && frontier.size > 0; level++) {
        const next = new Set<string>();
        step(frontier, next);
        for (const n of next) reached.add(n);
        frontier = next;
      }
    }
    const out = new Set<string>();
    for (const id of reached) if (this.view.has(id)) out.add(id);
    return out;
  }
}

/** The ids of the registered Things that match the filter (unordered). */
export function evaluateGraphQuery(
  query: GraphQuery,
  view: GraphView,
  options: EvaluateOptions,
): Set<string> {
  return new Evaluation(view, options).set(query);
}
