// Links as edges: the edges a TD's `links` declare, with `rel` as a full IRI, and the difference
// between two versions of a TD as `linked`/`unlinked` Change inputs. The TD stays the source of truth.
import type { Cause, ChangeInput } from "./change.js";
import { expandIri, scopeOf, type IriScope } from "./iri.js";
import type { ThingDescription } from "./thing-description.js";

/** One edge out of a Thing, as its TD declares it. */
export interface GraphEdge {
  /** The relation as written in the TD (`hosts`, `ht:hosts`). */
  rel: string;
  /** The relation as a full IRI (or the bare name when no context defines it, like IANA relations). */
  relIri: string;
  /** The other Thing's id: the link's `href` as written (relative hrefs stay dangling). */
  to: string;
  type?: string;
  anchor?: string;
}

/**
 * A link relation as a full IRI: a compact IRI (`ht:hosts`) or a term the context defines is
 * expanded, but `@vocab` is not applied. The TD context defines `rel` as a plain string
 * (`hctl:hasRelationType`, not vocabulary-relative), so `runsOn` and the IANA relations stay
 * bare names even in a TD whose context sets `@vocab` for its types.
 */
export function relationIri(rel: string, scope: IriScope): string {
  return expandIri(rel, scope.vocab === undefined ? scope : { prefixes: scope.prefixes });
}

/** Links without a `rel` are not edges; `rel` defaults to nothing (RFC 8288 needs one). */
export function edgesOf(
  td: Pick<ThingDescription, "links" | "@context">,
  fallback?: IriScope,
  /** The TD's scope when the caller has it already (scopeOf its @context with the fallback). */
  known?: IriScope,
): GraphEdge[] {
  const links = Array.isArray(td.links) ? td.links : [];
  if (links.length === 0) return [];
  const scope = known ?? scopeOf(td["@context"], fallback);
  const edges: GraphEdge[] = [];
  const seen = new Set<string>();
  for (const link of links) {
    if (typeof link !== "object" || link === null) continue;
    if (typeof link.rel !== "string" || typeof link.href !== "string" || link.rel.length === 0) continue;
    const relIri = relationIri(link.rel, scope);
    const key = `${relIri} ${link.href}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const edge: GraphEdge = { rel: link.rel, relIri, to: link.href };
    if (typeof link.type === "string") edge.type = link.type;
    if (typeof link.anchor === "string") edge.anchor = link.anchor;
    edges.push(edge);
  }
  return edges;
}

/** What a `linked`/`unlinked` Change carries as its value. */
export interface EdgeValue {
  rel: string;
  href: string;
  type?: string;
  anchor?: string;
}

function edgeValue(edge: GraphEdge): EdgeValue {
  return {
    rel: edge.rel,
    href: edge.to,
    ...(edge.type !== undefined && { type: edge.type }),
    ...(edge.anchor !== undefined && { anchor: edge.anchor }),
  };
}

/**
 * The `unlinked` then `linked` Changes that take the edges of `before` to those of `after`
 * (either may be undefined: a registration, a removal). Edges are the same when their rel IRI
 * and target are.
 */
export function linkChanges(
  thing: string,
  before: Pick<ThingDescription, "links" | "@context"> | undefined,
  after: Pick<ThingDescription, "links" | "@context"> | undefined,
  cause: Cause,
  fallback?: IriScope,
): ChangeInput[] {
  const old = before ? edgesOf(before, fallback) : [];
  const now = after ? edgesOf(after, fallback) : [];
  const key = (e: GraphEdge) => `${e.relIri} ${e.to}`;
  const oldKeys = new Set(old.map(key));
  const newKeys = new Set(now.map(key));
  const out: ChangeInput[] = [];
  for (const e of old) {
    if (!newKeys.has(key(e))) out.push({ thing, kind: "unlinked", value: edgeValue(e), cause });
  }
  for (const e of now) {
    if (!oldKeys.has(key(e))) out.push({ thing, kind: "linked", value: edgeValue(e), cause });
  }
  return out;
}
