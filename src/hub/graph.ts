// The graph of Things: edges from TD `links`, typed queries (docs/queries.md) and link editing
// through the directory (which records each edge change as a `linked`/`unlinked` Change).
// The indexes (graph-index.ts) are built from the Store on first use and kept in step from the Bus.
import {
  DEFAULT_MAX_EDGE_VISITS,
  NotFoundError,
  ValidationError,
  assertGraphQuery,
  evaluateGraphQuery,
  expandIri,
  parseGraphFilter,
  relationIri,
  scopeOf,
  termProblem,
  type Cause,
  type Change,
  type GraphQuery,
  type Link,
  type RegisteredThingDescription,
  type Vocabulary,
  echoed,
  quoted,
} from "../core/index.js";
import type { Logger } from "pino";
import type { Bus } from "../bus/index.js";
import type { Store } from "../store/index.js";
import type { Directory } from "./directory.js";
import { GraphIndex } from "./graph-index.js";
import { TypeHistory, type TypeFilter } from "./type-history.js";
import { ofRegistration } from "./registration.js";
import type { HubClock } from "./hub-clock.js";
import { assertThingId } from "./directory.js";

export interface GraphItem {
  id: string;
  td: RegisteredThingDescription;
  /** The Thing's current reported property values, from the Store's state projection. */
  state: Record<string, unknown>;
}

export interface GraphPage {
  items: GraphItem[];
  /** Give it back as `cursor` for the next page; absent on the last page. */
  next?: string;
}

export interface GraphLink {
  from: string;
  /** The relation as the TD writes it. */
  rel: string;
  to: string;
  /** Whether `to` names a registered Thing (an edge to an unknown id waits for it). */
  resolved: boolean;
  type?: string;
  anchor?: string;
}

/** One Thing in a neighbourhood tree; a Thing met again is a leaf with `repeated`. */
export interface NeighbourhoodNode {
  id: string;
  title?: string;
  types: string[];
  resolved: boolean;
  repeated?: true;
  links: Array<{ rel: string; direction: "out" | "in"; node: NeighbourhoodNode }>;
  /** On the root only: the prefixes to show `types` compactly with, as GraphSummary's. */
  prefixes?: Record<string, string>;
}

/** The whole graph in one light projection for drawing it (GET /graph/summary): no TD is read. */
export interface GraphSummary {
  /** The vocabulary's prefixes, to show the expanded types compactly. */
  prefixes: Record<string, string>;
  things: Array<{ id: string; title?: string; types: string[]; reachable: boolean }>;
  /** Every TD link between registered Things, `to` a Thing id. */
  links: Array<{ from: string; rel: string; to: string }>;
}

export interface GraphOptions {
  /** The fan-out bound of one query, in edges examined. */
  maxEdgeVisits?: number;
  /** The most Things a neighbourhood may hold. */
  maxNeighbourhood?: number;
}

export interface GraphDependencies {
  store: Store;
  bus: Bus;
  directory: Directory;
  clock: HubClock;
  logger: Logger;
  vocabulary: Vocabulary;
}

/** Where a link's relation and target came from, for errors (a body's members, query parameters, arguments). */
export interface EdgePointers {
  rel: string;
  to: string;
}

/** The members of a `{ rel, href }` link. */
const LINK_BODY: EdgePointers = { rel: "/rel", to: "/href" };

export const MAX_GRAPH_PAGE = 1000;
export const MAX_NEIGHBOURHOOD_DEPTH = 10;

/** A page's cursor over Things in id order: the last id it gave (GET /graph, GraphQL `things`). */
export function encodeThingCursor(id: string): string {
  return Buffer.from(JSON.stringify({ after: id })).toString("base64url");
}

export function decodeThingCursor(cursor: string, pointer: string): string {
  try {
    const parsed = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8")) as unknown;
    const after = (parsed as { after?: unknown }).after;
    if (typeof after === "string") return after;
  } catch {
    // fall through to the error below
  }
  throw new ValidationError("The cursor is not one this hub gave out", [
    { pointer, message: "is not a cursor from a previous page" },
  ]);
}

/** The `k` smallest ids greater than `after`, sorted (binary insertion: ~k·log(n/k) inserts). */
export function smallestAfter(ids: Iterable<string>, after: string | undefined, k: number): string[] {
  const best: string[] = [];
  for (const id of ids) {
    if (after !== undefined && id <= after) continue;
    if (best.length === k && id >= (best[k - 1] ?? "")) continue;
    let lo = 0;
    let hi = best.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((best[mid] ?? "") < id) lo = mid + 1;
      else hi = mid;
    }
    best.splice(lo, 0, id);
    if (best.length > k) best.pop();
  }
  return best;
}

export class Graph {
  private readonly index: GraphIndex;
  /** Each Thing's types through the Log, for the change feed's `type` filter. */
  private readonly types: TypeHistory;
  private ready: Promise<void> | undefined;
  /** Changes published while the index is being built, applied once it is. */
  private backlog: Change[] | undefined;
  private readonly unsubscribe: () => void;
  private readonly maxEdgeVisits: number;
  private readonly maxNeighbourhood: number;
  private closed = false;
  /**
   * The latest reachability Change's seq per Thing, negative when it said unreachable; a removal's
   * seq (positive) once it is removed, so that a Thing registered again starts reachable.
   */
  private readonly reachability = new Map<string, number>();
  /** Whether the index is built with every property's values (no Store.stateView to build them from). */
  private readonly reportsFromBus: boolean;

  constructor(
    private readonly deps: GraphDependencies,
    options: GraphOptions = {},
  ) {
    this.index = new GraphIndex(deps.vocabulary, deps.store.stateView);
    this.reportsFromBus = deps.store.stateView === undefined;
    this.maxEdgeVisits = options.maxEdgeVisits ?? DEFAULT_MAX_EDGE_VISITS;
    this.maxNeighbourhood = options.maxNeighbourhood ?? 1000;
    this.unsubscribe = deps.bus.subscribe((change) => this.onChange(change));
    this.types = new TypeHistory(deps.store, deps.bus, (td) =>
      typeof td === "object" && td !== null ? this.index.typesIn(td as RegisteredThingDescription) : [],
    );
  }

  private onChange(change: Change): void {
    // Readings, most of the Log, need nothing here unless a query has used their property.
    if (change.kind === "reported" && !this.index.tracks(change.affordance ?? "")) return;
    if (this.backlog) this.backlog.push(change);
    else if (this.ready) this.apply(change);
  }

  private apply(change: Change): void {
    if (change.kind === "described")
      this.index.describe(change.value as RegisteredThingDescription, change.seq);
    else if (change.kind === "removed") {
      this.index.remove(change.thing, change.seq);
      // Registered again, it starts reachable: its old registration's outage is not its own.
      this.noteReachability(change);
    } else if (change.kind === "reported" && change.affordance !== undefined)
      this.index.report(change.thing, change.affordance, change.value, change.seq);
    else if (change.kind === "unreachable" || change.kind === "reachable") this.noteReachability(change);
  }

  private noteReachability(change: { thing: string; kind: string; seq: number }): void {
    const known = Math.abs(this.reachability.get(change.thing) ?? 0);
    if (change.seq > known)
      this.reachability.set(change.thing, change.kind === "unreachable" ? -change.seq : change.seq);
  }

  /** Starts building the indexes now rather than at the first request. */
  start(): void {
    this.whenReady().catch((err: unknown) => {
      if (!this.closed)
        this.deps.logger.error(
          { err },
          "the graph's indexes could not be built; the next request tries again",
        );
    });
  }

  /** Builds the indexes from the Store once; Changes published meanwhile are applied after. */
  private whenReady(): Promise<void> {
    this.ready ??= (async () => {
      this.backlog = [];
      try {
        for await (const record of this.deps.store.scanThings(1000)) {
          if (this.closed) throw new Error("the graph was closed while its indexes were built");
          this.index.describe(record.td, record.version);
          const streams = await this.deps.store.streamsAt(
            record.id,
            undefined,
            this.reportsFromBus
              ? ["reported", "unreachable", "reachable", "removed"]
              : ["unreachable", "reachable", "removed"],
          );
          // Its last removal first: readings from before it (the index ignores them) are of an
          // old registration.
          for (const s of streams)
            if (s.kind === "removed" && s.affordance === "") this.index.noteRemoval(record.id, s.latest.seq);
          for (const s of streams)
            if (s.kind === "reported")
              this.index.report(record.id, s.affordance, s.latest.value, s.latest.seq);
            else this.noteReachability({ thing: record.id, kind: s.kind, seq: s.latest.seq });
        }
      } finally {
        const backlog = this.backlog;
        this.backlog = undefined;
        for (const change of backlog) this.apply(change);
      }
    })();
    // A failed build (the store closing, a read error) is tried again by the next request.
    this.ready.catch(() => {
      this.ready = undefined;
      this.index.clear();
    });
    return this.ready;
  }

  /** A relation as a filter names it, as a full IRI: as a type is (typeIri), without class names. */
  private relIri(rel: string, pointer: string): string {
    return this.declaredIri(rel, expandIri(rel, this.deps.vocabulary.scope), "relation", pointer);
  }

  /** Things matching a filter (text, docs/queries.md, or a parsed GraphQuery), by id, a page at a time. */
  async query(
    filter: string | GraphQuery,
    page: { cursor?: string; limit: number; pointer?: string; cursorPointer?: string },
  ): Promise<GraphPage> {
    // Where the filter and cursor came from, for errors: query parameters by default, a body's
    // members or GraphQL arguments for some.
    const pointer = page.pointer ?? "/query/filter";
    const query = typeof filter === "string" ? parseGraphFilter(filter, pointer) : assertGraphQuery(filter);
    if (!Number.isInteger(page.limit) || page.limit < 1 || page.limit > MAX_GRAPH_PAGE) {
      throw new ValidationError(`limit must be a whole number from 1 to ${MAX_GRAPH_PAGE}`, [
        { pointer: "/query/limit", message: `must be an integer in [1, ${MAX_GRAPH_PAGE}]` },
      ]);
    }
    const after =
      page.cursor === undefined
        ? undefined
        : decodeThingCursor(page.cursor, page.cursorPointer ?? "/query/cursor");
    await this.whenReady();
    const vocabulary = this.deps.vocabulary;
    const matches = evaluateGraphQuery(query, this.index, {
      typesOf: (term) => vocabulary.subtypesOf(this.typeIri(term, pointer)),
      relOf: (term) => this.relIri(term, pointer),
      maxEdgeVisits: this.maxEdgeVisits,
      pointer,
    });
    // The page's ids: the smallest `limit + 1` after the cursor, without sorting every match.
    const ids = smallestAfter(matches, after, page.limit + 1);
    const items: GraphItem[] = [];
    const now = this.deps.clock.now();
    const more = ids.length > page.limit;
    const last = more ? ids[page.limit - 1] : undefined;
    for (const id of ids.slice(0, page.limit)) {
      const record = await this.deps.store.getThing(id);
      // Removed meanwhile, or expired and not yet swept: not in the directory any more.
      if (!record || (record.expires !== undefined && Date.parse(record.expires) <= now.getTime())) continue;
      items.push({ id, td: this.deps.directory.enriched(record, now), state: await this.stateOf(id) });
    }
    return { items, ...(last !== undefined && { next: encodeThingCursor(last) }) };
  }

  /**
   * A type as a filter names it, as a full IRI: by the vocabulary's prefixes and class names, or
   * else by a prefix the registered TDs declare in their contexts (`homie:Device` as the Homie
   * TDs mean it).
   */
  private typeIri(term: string, pointer: string): string {
    return this.declaredIri(term, this.deps.vocabulary.resolve(term), "type", pointer);
  }

  /**
   * A compact IRI the vocabulary left as it was (`iri` is `term`), expanded with the prefix as the
   * registered TDs declare it: TDs expand their types and link relations with their own contexts,
   * so a filter means by `ex:feeds` what they do. A prefix they give different namespaces is
   * ambiguous: refused, naming them.
   */
  private declaredIri(term: string, iri: string, what: string, pointer: string): string {
    const colon = term.indexOf(":");
    if (iri !== term || colon <= 0 || term.startsWith("//", colon + 1)) return iri;
    const namespaces = this.index.declaredPrefix(term.slice(0, colon));
    if (namespaces === undefined) return iri;
    if (namespaces.size > 1) {
      throw new ValidationError(
        `The prefix ${term.slice(0, colon)}: means ${[...namespaces].join(" or ")} in different TDs: write the ${what} as a full IRI`,
        [{ pointer, message: "has an ambiguous prefix" }],
      );
    }
    return `${[...namespaces][0] ?? ""}${term.slice(colon + 1)}`;
  }

  /**
   * A type term (`saref:Appliance`, a full IRI, or a bare class name of the vocabulary) as the
   * change feed's filter: the Things `GET /graph?filter=type = …` would find (subtypes included),
   * each as of every Change, by the TD in force then (type-history.ts), not only as it is now.
   */
  async typeFilter(term: string, pointer = "/query/type"): Promise<TypeFilter> {
    // As `type = …` in a filter is checked: a malformed type would match nothing, for ever.
    const problem = termProblem(term);
    if (problem)
      throw new ValidationError(`The type ${quoted(term)} ${problem}`, [{ pointer, message: problem }]);
    await this.whenReady();
    return this.types.filter(this.deps.vocabulary.subtypesOf(this.typeIri(term, pointer)));
  }

  /** How many registered Things' ids pass `test`, from the in-memory index. */
  async countThings(test: (id: string) => boolean): Promise<number> {
    await this.whenReady();
    let count = 0;
    for (const id of this.index.ids()) if (test(id)) count++;
    return count;
  }

  /**
   * Every Thing (id, title, expanded types, reachability) and every link between registered
   * Things, from the in-memory indexes alone: what the UI needs to draw the graph in one request.
   */
  async summary(): Promise<GraphSummary> {
    await this.whenReady();
    const things: GraphSummary["things"] = [];
    const links: GraphSummary["links"] = [];
    for (const id of this.index.ids()) {
      const title = this.index.title(id);
      things.push({
        id,
        ...(title !== undefined && { title }),
        types: [...this.index.typesOf(id)],
        reachable: (this.reachability.get(id) ?? 0) >= 0,
      });
      for (const edge of this.index.edges(id) ?? [])
        if (edge.to !== id && this.index.has(edge.to)) links.push({ from: id, rel: edge.rel, to: edge.to });
    }
    return { prefixes: this.prefixes(), things, links };
  }

  /**
   * The vocabulary's prefixes first (they win a tie for the same namespace), then those the TDs
   * declare, so a type from a TD's own context is written as the TD writes it (`acme:Pump`).
   */
  private prefixes(): Record<string, string> {
    return Object.fromEntries([
      ...this.deps.vocabulary.scope.prefixes,
      ...this.index.unambiguousDeclaredPrefixes(),
    ]);
  }

  private async stateOf(id: string): Promise<Record<string, unknown>> {
    const state: Record<string, unknown> = {};
    const streams = await this.deps.store.streamsAt(id, undefined, ["reported", "removed"]);
    // Registered again, the Thing has only what it reported since (a plan reads this state).
    for (const s of ofRegistration(streams)) if (s.kind === "reported") state[s.affordance] = s.latest.value;
    return state;
  }

  /** A `rel` parameter as a full IRI; call it once the indexes are ready (they hold the TDs' prefixes). */
  private relFilter(rel: string | undefined): string | undefined {
    if (rel === undefined) return undefined;
    const problem = termProblem(rel);
    if (problem)
      throw new ValidationError(`The relation ${quoted(rel)} ${problem}`, [
        { pointer: "/query/rel", message: problem },
      ]);
    return this.relIri(rel, "/query/rel");
  }

  /** The edges out of a registered Thing, optionally of one relation. */
  async links(id: string, rel?: string): Promise<GraphLink[]> {
    assertThingId(id);
    await this.whenReady();
    const relIri = this.relFilter(rel);
    const edges = this.index.edges(id);
    if (!edges) throw new NotFoundError(`No Thing with id ${echoed(id)}`);
    return edges
      .filter((e) => relIri === undefined || e.relIri === relIri)
      .map((e) => ({
        from: id,
        rel: e.rel,
        to: e.to,
        resolved: this.index.has(e.to),
        ...(e.type !== undefined && { type: e.type }),
        ...(e.anchor !== undefined && { anchor: e.anchor }),
      }));
  }

  /** The edges into a Thing (also into an id no Thing has yet), optionally of one relation. */
  async linkedFrom(id: string, rel?: string): Promise<GraphLink[]> {
    assertThingId(id);
    await this.whenReady();
    const relIri = this.relFilter(rel);
    const incoming = this.index.incomingOf(id);
    if (incoming.length === 0 && !this.index.has(id))
      throw new NotFoundError(`No Thing with id ${echoed(id)}, and no link to it`);
    return incoming
      .filter((e) => relIri === undefined || e.relIri === relIri)
      .map(({ from, edge }) => ({
        from,
        rel: edge.rel,
        to: id,
        resolved: this.index.has(id),
        ...(edge.type !== undefined && { type: edge.type }),
        ...(edge.anchor !== undefined && { anchor: edge.anchor }),
      }));
  }

  private sameRel(td: RegisteredThingDescription, written: string, rel: string): boolean {
    const scope = scopeOf(td["@context"], this.deps.vocabulary.scope);
    return relationIri(written, scope) === relationIri(rel, scope);
  }

  private assertEdge(rel: string, to: string, at: EdgePointers): void {
    const problem = termProblem(rel);
    if (problem)
      throw new ValidationError(`The relation ${quoted(rel)} ${problem}`, [
        { pointer: at.rel, message: problem },
      ]);
    assertThingId(to, at.to);
  }

  /**
   * Adds `{rel, href: to}` to the TD's `links` through the directory (a `described` Change and
   * a `linked` one, in one transaction). Linking what is already linked changes nothing and
   * returns undefined.
   */
  async link(
    from: string,
    rel: string,
    to: string,
    cause: Cause,
    at: EdgePointers = LINK_BODY,
  ): Promise<Change | undefined> {
    this.assertEdge(rel, to, at);
    // A merge patch replaces `links` whole: drafted on the TD as it is when it is applied.
    const result = await this.deps.directory.edit(from, cause, (td) => {
      const links: Link[] = Array.isArray(td.links) ? td.links : [];
      if (links.some((l) => l.href === to && typeof l.rel === "string" && this.sameRel(td, l.rel, rel)))
        return undefined;
      return { links: [...links, { rel, href: to }] };
    });
    return result?.change;
  }

  /** Removes every link of that relation to `to` from the TD; NotFoundError when there is none. */
  async unlink(
    from: string,
    rel: string,
    to: string,
    cause: Cause,
    at: EdgePointers = LINK_BODY,
  ): Promise<Change> {
    this.assertEdge(rel, to, at);
    const result = await this.deps.directory.edit(from, cause, (td) => {
      const links: Link[] = Array.isArray(td.links) ? td.links : [];
      const kept = links.filter(
        (l) => !(l.href === to && typeof l.rel === "string" && this.sameRel(td, l.rel, rel)),
      );
      if (kept.length === links.length)
        throw new NotFoundError(`${echoed(from)} has no ${echoed(rel)} link to ${echoed(to)}`);
      // A merge patch replaces an array whole; null removes the member when no link is left.
      return { links: kept.length > 0 ? kept : null };
    });
    if (result === undefined)
      throw new NotFoundError(`${echoed(from)} has no ${echoed(rel)} link to ${echoed(to)}`);
    return result.change;
  }

  /** The Things within `depth` edges of a Thing (both directions), as a tree without repeats. */
  async neighbourhood(id: string, depth: number, rel?: string): Promise<NeighbourhoodNode> {
    assertThingId(id);
    if (!Number.isInteger(depth) || depth < 1 || depth > MAX_NEIGHBOURHOOD_DEPTH) {
      throw new ValidationError(`depth must be a whole number from 1 to ${MAX_NEIGHBOURHOOD_DEPTH}`, [
        { pointer: "/query/depth", message: `must be an integer in [1, ${MAX_NEIGHBOURHOOD_DEPTH}]` },
      ]);
    }
    await this.whenReady();
    const relIri = this.relFilter(rel);
    if (!this.index.has(id)) throw new NotFoundError(`No Thing with id ${echoed(id)}`);
    const node = (thing: string): NeighbourhoodNode => {
      const title = this.index.title(thing);
      return {
        id: thing,
        ...(title !== undefined && { title }),
        types: [...this.index.typesOf(thing)],
        resolved: this.index.has(thing),
        links: [],
      };
    };
    const root = node(id);
    const seen = new Set([id]);
    // Each edge is shown once: not again, reversed, under the Thing it led to.
    const shown = new Set<string>();
    let wave = [root];
    for (let level = 0; level < depth && wave.length > 0; level++) {
      const next: NeighbourhoodNode[] = [];
      for (const parent of wave) {
        const neighbours = [
          ...(this.index.edges(parent.id) ?? []).map((e) => ({
            rel: e.rel,
            relIri: e.relIri,
            other: e.to,
            direction: "out" as const,
          })),
          ...this.index
            .incomingOf(parent.id)
            .map((e) => ({ rel: e.edge.rel, relIri: e.relIri, other: e.from, direction: "in" as const })),
        ];
        // Out before in, then by relation and id: the same tree whatever order Things arrived in.
        neighbours.sort(
          (a, b) =>
            (a.direction === b.direction ? 0 : a.direction === "out" ? -1 : 1) ||
            (a.rel < b.rel ? -1 : a.rel > b.rel ? 1 : 0) ||
            (a.other < b.other ? -1 : a.other > b.other ? 1 : 0),
        );
        for (const n of neighbours) {
          if (relIri !== undefined && n.relIri !== relIri) continue;
          const [from, to] = n.direction === "out" ? [parent.id, n.other] : [n.other, parent.id];
          const edge = `${from} ${n.relIri} ${to}`;
          if (shown.has(edge)) continue;
          shown.add(edge);
          const child = node(n.other);
          if (seen.has(n.other)) child.repeated = true;
          else {
            seen.add(n.other);
            next.push(child);
            if (seen.size > this.maxNeighbourhood) {
              throw new ValidationError(
                `The neighbourhood of ${id} at depth ${depth} holds more than ${this.maxNeighbourhood} Things; lower the depth or give a relation`,
                [{ pointer: "/query/depth", message: `more than ${this.maxNeighbourhood} Things` }],
              );
            }
          }
          parent.links.push({ rel: n.rel, direction: n.direction, node: child });
        }
      }
      wave = next;
    }
    root.prefixes = this.prefixes();
    return root;
  }

  close(): void {
    this.closed = true;
    this.unsubscribe();
    this.types.close();
  }
}
