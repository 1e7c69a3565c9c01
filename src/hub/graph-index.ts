// The graph's in-memory indexes — adjacency (out and in, dangling targets included), @type, a
// small projection of each TD and each property's current value — the GraphView that queries in
// core evaluate over. Rebuilt from the Store at start and kept in step from the Bus (graph.ts);
// every entry carries the Log position it came from, so replays and races apply idempotently.
// With a Store that keeps its state projection in memory (Store.stateView), a property's values
// are copied here only once a query asks for them ("tracked"), from the projection, and kept in
// step from then on: readings of properties no query has used cost the graph nothing.
import type { StateView } from "../store/index.js";
import {
  edgesOf,
  memberAt,
  scopeOf,
  type Context,
  type GraphEdge,
  type IriScope,
  type GraphView,
  type RegisteredThingDescription,
  type Vocabulary,
} from "../core/index.js";

/** TD members left out of the projection `td.…` filters see: affordances, forms, security, context. */
const NOT_PROJECTED = new Set([
  "@context",
  "@type",
  "properties",
  "actions",
  "events",
  "forms",
  "links",
  "security",
  "securityDefinitions",
  "schemaDefinitions",
  "uriVariables",
]);

interface ThingEntry {
  /** The seq of the `described` Change this entry reflects. */
  version: number;
  types: string[];
  fields: Record<string, unknown>;
  edges: GraphEdge[];
}

export interface IncomingEdge {
  from: string;
  relIri: string;
  edge: GraphEdge;
}

const NO_EDGES: readonly never[] = [];

/** The kind of Change whose values `state.…` filters see: a property's reported readings. */
const REPORTED = "reported";

/** Prefixes declared by TDs that the index remembers (GraphIndex.declaredPrefix). */
const MAX_DECLARED_PREFIXES = 10_000;

export class GraphIndex implements GraphView {
  private readonly things = new Map<string, ThingEntry>();
  private readonly incomingEdges = new Map<string, IncomingEdge[]>();
  private readonly byType = new Map<string, Set<string>>();
  private readonly values = new Map<string, Map<string, { seq: number; value: unknown }>>();
  /**
   * Seq of each Thing's last removal: an older description replayed later is ignored, and a Thing
   * registered again has no value from before it (its old registration's readings are not its own).
   */
  private readonly removedAt = new Map<string, number>();

  /** Scopes by their context's JSON: a fleet's TDs share a handful of contexts. */
  private readonly scopes = new Map<string, IriScope>();
  /**
   * The prefixes registered TDs declare that the vocabulary does not (or maps elsewhere), with
   * each namespace they were given: `homie:Device` in a filter means what the Homie TDs mean by
   * it. Kept once seen (at most MAX_DECLARED_PREFIXES), so a prefix may outlive its last TD.
   */
  private readonly declared = new Map<string, Set<string>>();

  /**
   * `state`: the Store's state projection. With it, `values` holds only the properties a query
   * has asked for, each built from the projection at the first such query; without it, every
   * property `report` is given.
   */
  constructor(
    private readonly vocabulary: Vocabulary,
    private readonly state?: StateView,
  ) {}

  /** Whether `report` would keep a value of this property (cheap: for every reading). */
  tracks(property: string): boolean {
    return this.state === undefined || this.values.has(property);
  }

  /**
   * The values of a property, by Thing; with a state view, built from it at the first call (for
   * a property some Thing has, so that no query can make the index hold names of its choosing).
   */
  private valuesOf(property: string): Map<string, { seq: number; value: unknown }> | undefined {
    const known = this.values.get(property);
    if (known !== undefined || this.state === undefined || this.state.count(property, REPORTED) === 0)
      return known;
    const perThing = new Map<string, { seq: number; value: unknown }>();
    // Only registered Things, and only their readings since their last removal: the Store keeps
    // the streams of removed ones (their history stays), and of their old registrations.
    this.state.forEach(property, REPORTED, (id, value, seq) => {
      if (this.things.has(id) && seq > (this.removedAt.get(id) ?? 0)) perThing.set(id, { seq, value });
    });
    this.values.set(property, perThing);
    return perThing;
  }

  private scopeOf(context: Context | undefined): IriScope {
    const key = typeof context === "string" ? context : JSON.stringify(context ?? null);
    let scope = this.scopes.get(key);
    if (!scope) {
      scope = scopeOf(context, this.vocabulary.scope);
      if (this.scopes.size >= 1000) this.scopes.clear();
      this.scopes.set(key, scope);
      for (const [prefix, namespace] of scope.prefixes) {
        if (this.vocabulary.scope.prefixes.get(prefix) === namespace) continue;
        let namespaces = this.declared.get(prefix);
        if (!namespaces) {
          if (this.declared.size >= MAX_DECLARED_PREFIXES) continue;
          this.declared.set(prefix, (namespaces = new Set()));
        }
        namespaces.add(namespace);
      }
    }
    return scope;
  }

  get size(): number {
    return this.things.size;
  }

  /** The namespaces registered TDs have given `prefix` (none when the vocabulary's is the only one). */
  declaredPrefix(prefix: string): ReadonlySet<string> | undefined {
    return this.declared.get(prefix);
  }

  /** The prefixes registered TDs declare with one namespace only (so they say one thing), not the vocabulary's. */
  *unambiguousDeclaredPrefixes(): IterableIterator<[string, string]> {
    for (const [prefix, namespaces] of this.declared)
      if (namespaces.size === 1 && !this.vocabulary.scope.prefixes.has(prefix))
        for (const namespace of namespaces) yield [prefix, namespace];
  }

  /** Forgets everything (before a rebuild). */
  clear(): void {
    this.things.clear();
    this.incomingEdges.clear();
    this.byType.clear();
    this.values.clear();
    this.removedAt.clear();
  }

  /** A TD's `@type`s as full IRIs (its own context's prefixes first, then the vocabulary's). */
  typesIn(
    td: Pick<RegisteredThingDescription, "@context" | "@type">,
    scope: IriScope = this.scopeOf(td["@context"]),
  ): string[] {
    const declared = td["@type"];
    const list: unknown[] = Array.isArray(declared) ? declared : declared === undefined ? [] : [declared];
    return [
      ...new Set(
        list.filter((t): t is string => typeof t === "string").map((t) => this.vocabulary.resolve(t, scope)),
      ),
    ];
  }

  describe(td: RegisteredThingDescription, seq: number): void {
    const id = td.id;
    const existing = this.things.get(id);
    if ((existing && existing.version >= seq) || (this.removedAt.get(id) ?? 0) >= seq) return;
    if (existing) this.unindex(id, existing);
    const scope = this.scopeOf(td["@context"]);
    const types = this.typesIn(td, scope);
    const fields: Record<string, unknown> = {};
    for (const [key, value] of Object.entries(td)) if (!NOT_PROJECTED.has(key)) fields[key] = value;
    const entry: ThingEntry = {
      version: seq,
      types,
      fields,
      edges: edgesOf(td, this.vocabulary.scope, scope),
    };
    this.things.set(id, entry);
    // Described before any query tracked a property (a rebuild), or registered again: the tracked
    // properties take its latest readings, as a property tracked from now on would, but only those
    // since its last removal (a Thing registered again starts with no state).
    if (!existing && this.state) {
      const removal = this.removedAt.get(id) ?? 0;
      for (const [property, perThing] of this.values) {
        const latest = this.state.latest(id, property, REPORTED);
        if (latest && latest.seq > removal && (perThing.get(id)?.seq ?? 0) < latest.seq)
          perThing.set(id, latest);
      }
    }
    for (const t of types) {
      let set = this.byType.get(t);
      if (!set) this.byType.set(t, (set = new Set()));
      set.add(id);
    }
    for (const edge of entry.edges) {
      let list = this.incomingEdges.get(edge.to);
      if (!list) this.incomingEdges.set(edge.to, (list = []));
      list.push({ from: id, relIri: edge.relIri, edge });
    }
  }

  /** The Thing's last removal, read from the Log when the index is built: see `removedAt`. */
  noteRemoval(id: string, seq: number): void {
    if ((this.removedAt.get(id) ?? 0) < seq) this.removedAt.set(id, seq);
  }

  remove(id: string, seq: number): void {
    const existing = this.things.get(id);
    if (existing && existing.version >= seq) return;
    this.removedAt.set(id, seq);
    if (!existing) return;
    this.unindex(id, existing);
    this.things.delete(id);
    for (const perThing of this.values.values()) perThing.delete(id);
  }

  private unindex(id: string, entry: ThingEntry): void {
    for (const t of entry.types) {
      const set = this.byType.get(t);
      set?.delete(id);
      if (set?.size === 0) this.byType.delete(t);
    }
    for (const edge of entry.edges) {
      const list = this.incomingEdges.get(edge.to);
      if (!list) continue;
      const kept = list.filter((e) => e.from !== id);
      if (kept.length > 0) this.incomingEdges.set(edge.to, kept);
      else this.incomingEdges.delete(edge.to);
    }
  }

  report(id: string, property: string, value: unknown, seq: number): void {
    let perThing = this.values.get(property);
    const current = perThing?.get(id);
    // Updated in place (only `value` is ever handed out): no object per reading. A Thing's values
    // go when it does (`remove`), so one that has a value here is registered.
    if (current) {
      if (current.seq < seq) {
        current.seq = seq;
        current.value = value;
      }
      return;
    }
    // A Thing reports only once described (ingest checks the TD), so this only drops stragglers
    // (and a reading of an old registration, replayed).
    if (!this.things.has(id) || seq <= (this.removedAt.get(id) ?? 0)) return;
    // With a state view, a property no query has asked for is not kept (valuesOf builds it).
    if (!perThing && this.state) return;
    if (!perThing) this.values.set(property, (perThing = new Map<string, { seq: number; value: unknown }>()));
    perThing.set(id, { seq, value });
  }

  /** The edges out of a registered Thing, or undefined when it is not registered. */
  edges(id: string): readonly GraphEdge[] | undefined {
    return this.things.get(id)?.edges;
  }

  incomingOf(id: string): readonly IncomingEdge[] {
    return this.incomingEdges.get(id) ?? NO_EDGES;
  }

  title(id: string): string | undefined {
    const title = this.things.get(id)?.fields.title;
    return typeof title === "string" ? title : undefined;
  }

  // GraphView
  ids(): Iterable<string> {
    return this.things.keys();
  }
  has(id: string): boolean {
    return this.things.has(id);
  }
  ofType(iri: string): Iterable<string> {
    return this.byType.get(iri) ?? NO_EDGES;
  }
  countOfType(iri: string): number {
    return this.byType.get(iri)?.size ?? 0;
  }
  countWithState(property: string): number {
    // For planning: without building the property's values.
    return this.values.get(property)?.size ?? this.state?.count(property, REPORTED) ?? 0;
  }
  typesOf(id: string): readonly string[] {
    return this.things.get(id)?.types ?? NO_EDGES;
  }
  outgoing(id: string): ReadonlyArray<{ relIri: string; to: string }> {
    return this.things.get(id)?.edges ?? NO_EDGES;
  }
  incoming(id: string): ReadonlyArray<{ relIri: string; from: string }> {
    return this.incomingEdges.get(id) ?? NO_EDGES;
  }
  tdField(id: string, path: readonly string[]): unknown {
    return memberAt(this.things.get(id)?.fields, path);
  }
  stateValue(id: string, property: string): unknown {
    return this.valuesOf(property)?.get(id)?.value;
  }
  forEachState(property: string, visit: (id: string, value: unknown) => void): void {
    // Values are only kept for registered Things (see report and remove): no check per entry.
    this.valuesOf(property)?.forEach((entry, id) => visit(id, entry.value));
  }
}
