// Semantic terms as full IRIs: expands compact IRIs (`saref:TemperatureSensor`) and terms with the
// prefixes a TD's JSON-LD `@context` declares. Remote contexts are never fetched (PITFALLS.md):
// only the contexts shipped here are understood; any other string context is ignored.
import type { Context } from "./thing-description.js";

/** Prefixes and terms in scope for one document: JSON-LD 1.1 §4.1.5 compact IRIs, §4.1.2 @vocab. */
export interface IriScope {
  readonly prefixes: ReadonlyMap<string, string>;
  readonly vocab?: string;
}

const TD_NAMESPACE = "https://www.w3.org/2019/wot/td#";

/** The prefixes the WoT TD contexts (1.0 and 1.1) define; the only remote contexts known here. */
const TD_CONTEXT_PREFIXES: Record<string, string> = {
  td: TD_NAMESPACE,
  jsonschema: "https://www.w3.org/2019/wot/json-schema#",
  wotsec: "https://www.w3.org/2019/wot/security#",
  hctl: "https://www.w3.org/2019/wot/hypermedia#",
  htv: "http://www.w3.org/2011/http#",
  rdfs: "http://www.w3.org/2000/01/rdf-schema#",
  xsd: "http://www.w3.org/2001/XMLSchema#",
  dct: "http://purl.org/dc/terms/",
  schema: "http://schema.org/",
};

/** Context documents shipped with the hub, by their URL. */
export const KNOWN_CONTEXTS: ReadonlyMap<string, Record<string, string>> = new Map([
  ["https://www.w3.org/2022/wot/td/v1.1", TD_CONTEXT_PREFIXES],
  ["https://www.w3.org/2019/wot/td/v1", TD_CONTEXT_PREFIXES],
  ["http://www.w3.org/ns/td", TD_CONTEXT_PREFIXES],
]);

const PREFIX_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;

/** The prefixes and @vocab a TD's `@context` declares (inline objects and the contexts shipped here). */
export function scopeOf(context: Context | undefined, fallback?: IriScope): IriScope {
  const prefixes = new Map<string, string>(fallback?.prefixes);
  let vocab = fallback?.vocab;
  const entries = context === undefined ? [] : Array.isArray(context) ? context : [context];
  for (const entry of entries) {
    if (typeof entry === "string") {
      for (const [k, v] of Object.entries(KNOWN_CONTEXTS.get(entry) ?? {})) prefixes.set(k, v);
      continue;
    }
    if (typeof entry !== "object" || entry === null) continue;
    for (const [key, value] of Object.entries(entry)) {
      if (key === "@vocab" && typeof value === "string") vocab = value;
      else if (key.startsWith("@")) continue;
      else if (typeof value === "string") prefixes.set(key, value);
      else if (
        typeof value === "object" &&
        value !== null &&
        typeof (value as { "@id"?: unknown })["@id"] === "string"
      )
        prefixes.set(key, (value as { "@id": string })["@id"]);
    }
  }
  return vocab === undefined ? { prefixes } : { prefixes, vocab };
}

const ABSOLUTE = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//;

/**
 * The full IRI of a term: an absolute IRI stays as it is; `prefix:rest` with a known prefix is
 * expanded; a bare term defined in the scope (or under its @vocab) is expanded; anything else is
 * returned unchanged (an IRI with an unknown scheme, or a bare name such as an IANA link relation).
 */
export function expandIri(term: string, scope: IriScope): string {
  if (ABSOLUTE.test(term)) return term;
  const colon = term.indexOf(":");
  if (colon > 0) {
    const prefix = term.slice(0, colon);
    const namespace = scope.prefixes.get(prefix);
    if (namespace !== undefined && PREFIX_NAME.test(prefix)) return namespace + term.slice(colon + 1);
    return term;
  }
  const defined = scope.prefixes.get(term);
  if (defined !== undefined && defined !== term) return expandIri(defined, { prefixes: scope.prefixes });
  if (scope.vocab !== undefined && term.length > 0) return scope.vocab + term;
  return term;
}

/** An expanded IRI written with the longest namespace among the prefixes (`saref:Appliance`). */
export function compactIri(iri: string, prefixes: ReadonlyArray<readonly [string, string]>): string {
  let best: readonly [string, string] | undefined;
  for (const entry of prefixes)
    if (iri.startsWith(entry[1]) && iri.length > entry[1].length && entry[1].length > (best?.[1].length ?? 0))
      best = entry;
  return best === undefined ? iri : `${best[0]}:${iri.slice(best[1].length)}`;
}

/** The last segment of an IRI (after `#`, `/` or `:`): `https://saref.etsi.org/core/Sensor` → `Sensor`. */
export function localName(iri: string): string {
  const cut = Math.max(iri.lastIndexOf("#"), iri.lastIndexOf("/"), iri.lastIndexOf(":"));
  return iri.slice(cut + 1);
}

// A term a person types in a query: a bare name, a compact IRI or an absolute IRI, without
// spaces, quotes or the delimiters RFC 3987 forbids.
// eslint-disable-next-line no-control-regex
const BAD_TERM = /[\u0000-\u0020<>"{}|\\^`\u007f-\u009f]/;

/** Why a term given in a query is not a usable name or IRI, or undefined when it is. */
export function termProblem(term: string): string | undefined {
  if (term.length === 0) return "is empty";
  if (term.length > 2048) return "is longer than 2048 characters";
  if (BAD_TERM.test(term)) return 'contains a space, a control character or one of <>"{}|\\^`';
  if (/%(?![0-9A-Fa-f]{2})/.test(term)) return "contains a % that does not start a %XX escape";
  if (term.startsWith(":") || term.endsWith(":")) return "has an empty prefix or local name";
  return undefined;
}
