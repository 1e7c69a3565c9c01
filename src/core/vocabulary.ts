// The type vocabulary: prefixes and `subClassOf` between semantic types, so that a query for a
// supertype (saref:Sensor) finds Things of its subtypes (saref:TemperatureSensor). Loaded from a
// small replaceable JSON file (vocab/types.json); see docs/queries.md.
import { ValidationError } from "./errors.js";
import { expandIri, localName, termProblem, type IriScope } from "./iri.js";

/** The vocabulary file's shape: `{ "prefixes": {p: namespace}, "classes": {type: [supertypes]} }`. */
export interface VocabularyDocument {
  prefixes?: Record<string, string>;
  classes?: Record<string, string[]>;
}

export class Vocabulary {
  /** The vocabulary's prefixes: the fallback for TDs and queries that do not declare them. */
  readonly scope: IriScope;
  private readonly subtypes = new Map<string, Set<string>>();
  private readonly byLocalName = new Map<string, string | null>();

  constructor(document: VocabularyDocument = {}) {
    this.scope = { prefixes: new Map(Object.entries(document.prefixes ?? {})) };
    const direct = new Map<string, Set<string>>(); // supertype -> direct subtypes
    const note = (iri: string) => {
      const name = localName(iri);
      const known = this.byLocalName.get(name);
      // A local name shared by two classes is ambiguous: it resolves to neither.
      this.byLocalName.set(name, known === undefined || known === iri ? iri : null);
    };
    for (const [type, supers] of Object.entries(document.classes ?? {})) {
      const sub = expandIri(type, this.scope);
      note(sub);
      for (const sup of supers) {
        const superIri = expandIri(sup, this.scope);
        note(superIri);
        let set = direct.get(superIri);
        if (!set) direct.set(superIri, (set = new Set()));
        set.add(sub);
      }
    }
    // The transitive closure, cycle-safe: each type's set of itself and every subtype.
    for (const root of direct.keys()) {
      const all = new Set<string>([root]);
      const stack = [root];
      for (let t = stack.pop(); t !== undefined; t = stack.pop()) {
        for (const s of direct.get(t) ?? []) {
          if (!all.has(s)) {
            all.add(s);
            stack.push(s);
          }
        }
      }
      this.subtypes.set(root, all);
    }
  }

  /** The type and all its subtypes, as full IRIs. */
  subtypesOf(iri: string): ReadonlySet<string> {
    return this.subtypes.get(iri) ?? new Set([iri]);
  }

  /**
   * The full IRI of a type term in a given scope: expanded with the scope's prefixes, then the
   * vocabulary's; a bare name left over is looked up by local name among the vocabulary's classes
   * (`Host` → the one class named Host), so TDs and queries may use short names.
   */
  resolve(term: string, scope?: IriScope): string {
    let iri = scope ? expandIri(term, scope) : term;
    if (iri === term) iri = expandIri(term, this.scope);
    if (iri === term && !term.includes(":")) return this.byLocalName.get(term) ?? term;
    return iri;
  }
}

/** Validates a parsed vocabulary file; `source` names it in errors. */
export function parseVocabulary(value: unknown, source: string): Vocabulary {
  const fail = (pointer: string, message: string) =>
    new ValidationError(`The vocabulary ${source} is invalid at ${pointer || "/"}: ${message}`, [
      { pointer, message },
    ]);
  if (typeof value !== "object" || value === null || Array.isArray(value))
    throw fail("", "must be an object");
  const { prefixes, classes, ...rest } = value as Record<string, unknown>;
  const extra = Object.keys(rest).find((k) => !k.startsWith("$") && k !== "description");
  if (extra !== undefined) throw fail(`/${extra}`, "is not a vocabulary member (prefixes, classes)");
  const document: VocabularyDocument = {};
  if (prefixes !== undefined) {
    if (typeof prefixes !== "object" || prefixes === null || Array.isArray(prefixes))
      throw fail("/prefixes", "must be an object of prefix → namespace IRI");
    for (const [k, v] of Object.entries(prefixes)) {
      if (typeof v !== "string" || !/^[A-Za-z][A-Za-z0-9+.-]*:/.test(v))
        throw fail(`/prefixes/${k}`, "must be a namespace IRI");
    }
    document.prefixes = prefixes as Record<string, string>;
  }
  if (classes !== undefined) {
    if (typeof classes !== "object" || classes === null || Array.isArray(classes))
      throw fail("/classes", "must be an object of type → array of supertypes");
    for (const [k, v] of Object.entries(classes)) {
      const problem = termProblem(k);
      if (problem) throw fail(`/classes/${k}`, `the type ${problem}`);
      if (!Array.isArray(v) || v.some((s) => typeof s !== "string" || termProblem(s) !== undefined))
        throw fail(`/classes/${k}`, "must be an array of supertype names or IRIs");
    }
    document.classes = classes as Record<string, string[]>;
  }
  return new Vocabulary(document);
}
