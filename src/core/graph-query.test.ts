import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { ValidationError } from "./errors.js";
import { parseGraphFilter } from "./graph-filter.js";
import { linkChanges } from "./graph-links.js";
import { evaluateGraphQuery, type EvaluateOptions, type GraphView } from "./graph-query.js";
import { expandIri, scopeOf } from "./iri.js";
import { Vocabulary, parseVocabulary } from "./vocabulary.js";

interface Node {
  types?: string[];
  fields?: Record<string, unknown>;
  state?: Record<string, unknown>;
  edges?: Array<[rel: string, to: string]>;
}

/** A GraphView over plain data, the way the hub's index answers. */
function viewOf(nodes: Record<string, Node>): GraphView {
  const incoming = new Map<string, Array<{ relIri: string; from: string }>>();
  for (const [id, n] of Object.entries(nodes)) {
    for (const [rel, to] of n.edges ?? []) {
      incoming.set(to, [...(incoming.get(to) ?? []), { relIri: rel, from: id }]);
    }
  }
  const typed = (iri: string) => Object.keys(nodes).filter((id) => nodes[id]?.types?.includes(iri));
  return {
    size: Object.keys(nodes).length,
    countOfType: (iri) => typed(iri).length,
    countWithState: (p) => Object.values(nodes).filter((n) => n.state?.[p] !== undefined).length,
    ids: () => Object.keys(nodes),
    has: (id) => id in nodes,
    ofType: (iri) => Object.keys(nodes).filter((id) => nodes[id]?.types?.includes(iri)),
    typesOf: (id) => nodes[id]?.types ?? [],
    outgoing: (id) => (nodes[id]?.edges ?? []).map(([relIri, to]) => ({ relIri, to })),
    incoming: (id) => incoming.get(id) ?? [],
    tdField: (id, path) =>
      path.reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], nodes[id]?.fields),
    stateValue: (id, p) => nodes[id]?.state?.[p],
    forEachState: (p, visit) => {
      for (const [id, n] of Object.entries(nodes)) if (n.state?.[p] !== undefined) visit(id, n.state[p]);
    },
  };
}

const vocabulary = new Vocabulary({
  prefixes: { s: "https://s.example/" },
  classes: { "s:TemperatureSensor": ["s:Sensor"], "s:Sensor": ["s:Device"], "s:Switch": ["s:Device"] },
});

function options(max = 1_000_000): EvaluateOptions {
  return {
    typesOf: (term) => vocabulary.subtypesOf(vocabulary.resolve(term)),
    relOf: (term) => term,
    maxEdgeVisits: max,
  };
}

function run(filter: string, nodes: Record<string, Node>, max?: number): string[] {
  return [...evaluateGraphQuery(parseGraphFilter(filter), viewOf(nodes), options(max))].sort();
}

const T = "https://s.example/TemperatureSensor";
const SW = "https://s.example/Switch";

describe("graph query evaluation", () => {
  const nodes: Record<string, Node> = {
    "a:hot": {
      types: [T],
      state: { temperature: 31, meta: { unit: "C" } },
      fields: { title: "Hot" },
      edges: [["partOf", "a:room"]],
    },
    "a:cold": {
      types: [T],
      state: { temperature: 12 },
      fields: { title: "Cold" },
      edges: [["partOf", "a:room"]],
    },
    "a:sw": {
      types: [SW],
      state: { on: true },
      fields: { title: "Switch", tags: ["x", "y"] },
      edges: [["controls", "a:hot"]],
    },
    "a:room": { fields: { title: "Room" }, edges: [["partOf", "a:floor"]] },
    "a:floor": {
      edges: [
        ["partOf", "a:building"],
        ["partOf", "a:ghost"],
      ],
    },
    "a:building": {},
  };

  it("filters by type with subtypes, by TD fields and by current values", () => {
    expect(run("type = s:Sensor", nodes)).toEqual(["a:cold", "a:hot"]);
    expect(run("type = Device", nodes)).toEqual(["a:cold", "a:hot", "a:sw"]);
    expect(run("type != s:Sensor AND state.on = true", nodes)).toEqual(["a:sw"]);
    expect(run("state.temperature >= 12 AND state.temperature < 31", nodes)).toEqual(["a:cold"]);
    expect(run('state.meta.unit = "C"', nodes)).toEqual(["a:hot"]);
    expect(run("td.title > M", nodes)).toEqual(["a:room", "a:sw"]);
    expect(run("td.tags = y", nodes)).toEqual(["a:sw"]);
    // A missing value matches no comparison, not even !=; NOT takes it in.
    expect(run("state.temperature != 12", nodes)).toEqual(["a:hot"]);
    expect(run("NOT state.temperature = 12", nodes)).toEqual([
      "a:building",
      "a:floor",
      "a:hot",
      "a:room",
      "a:sw",
    ]);
    // Only members the value holds: not those of the object prototype.
    expect(run('state.meta.constructor != "x"', nodes)).toEqual([]);
    expect(run('state.meta.toString = "x" OR state.meta.unit.length = 1', nodes)).toEqual([]);
    // Numbers and strings are never ordered against each other.
    expect(run('state.temperature > "1"', nodes)).toEqual([]);
  });

  it("follows relations out and in, by hop count and transitively, never to unregistered ids", () => {
    expect(run("out(partOf) { id = a:room }", nodes)).toEqual(["a:cold", "a:hot"]);
    expect(run("out(partOf, 3) { id = a:building }", nodes)).toEqual(["a:cold", "a:hot"]);
    expect(run("out(partOf, 2..3) { id = a:building }", nodes)).toEqual(["a:cold", "a:hot", "a:room"]);
    expect(run("out(partOf, *) { id = a:building }", nodes)).toEqual([
      "a:cold",
      "a:floor",
      "a:hot",
      "a:room",
    ]);
    expect(run("in(partOf, *) { id = a:hot }", nodes)).toEqual(["a:building", "a:floor", "a:room"]);
    expect(run("out(*, 2) { type = s:Switch }", nodes)).toEqual([]);
    expect(run("in(*, 2) { type = s:Switch }", nodes)).toEqual(["a:room"]);
    expect(run("out(controls)", nodes)).toEqual(["a:sw"]);
    expect(run("out(controls) OR type = s:TemperatureSensor AND state.temperature > 20", nodes)).toEqual([
      "a:hot",
      "a:sw",
    ]);
  });

  it("stops a traversal that examines more edges than its bound, with a precise error", () => {
    const err = (() => {
      try {
        run("in(*, *)", nodes, 3);
      } catch (e) {
        return e;
      }
    })();
    expect(err).toBeInstanceOf(ValidationError);
    expect((err as ValidationError).message).toContain("fans out beyond 3 edges");
  });

  const graphs = fc.integer({ min: 1, max: 12 }).chain((n) =>
    fc.record({
      n: fc.constant(n),
      edges: fc.array(fc.tuple(fc.nat(n - 1), fc.nat(n - 1), fc.constantFrom("r", "q")), { maxLength: 40 }),
    }),
  );

  /** The same question answered by brute force: every path up to n+1 hops, one by one. */
  function reachesByPaths(
    n: number,
    edges: Array<[number, number, string]>,
    from: number,
    to: number,
    rel: string,
  ): boolean {
    let frontier = new Set([from]);
    for (let hop = 1; hop <= n + 1; hop++) {
      const next = new Set<number>();
      for (const [a, b, r] of edges) if (r === rel && frontier.has(a)) next.add(b);
      if (next.has(to)) return true;
      frontier = next;
    }
    return false;
  }

  it("answers transitive relations over any graph, cycles included, like a brute-force path search (property)", () => {
    fc.assert(
      fc.property(graphs, fc.nat(11), ({ n, edges }, t) => {
        const target = t % n;
        const nodesOf: Record<string, Node> = {};
        for (let i = 0; i < n; i++) nodesOf[`n:${i}`] = { edges: [] };
        for (const [a, b, r] of edges) nodesOf[`n:${a}`]?.edges?.push([r, `n:${b}`]);
        const got = run(`out(r, *) { id = "n:${target}" }`, nodesOf);
        const want = Object.keys(nodesOf)
          .filter((_, i) => reachesByPaths(n, edges, i, target, "r"))
          .sort();
        expect(got).toEqual(want);
      }),
      { numRuns: 300 },
    );
  });
});

describe("IRIs and the vocabulary", () => {
  it("expands compact IRIs and terms from a TD's context, and leaves unknown prefixes alone", () => {
    const scope = scopeOf([
      "https://www.w3.org/2022/wot/td/v1.1",
      { saref: "https://saref.etsi.org/core/", lamp: { "@id": "https://x.example/Lamp" } },
    ]);
    expect(expandIri("saref:TemperatureSensor", scope)).toBe("https://saref.etsi.org/core/TemperatureSensor");
    expect(expandIri("td:Thing", scope)).toBe("https://www.w3.org/2019/wot/td#Thing");
    expect(expandIri("lamp", scope)).toBe("https://x.example/Lamp");
    expect(expandIri("urn:x:y", scope)).toBe("urn:x:y");
    expect(expandIri("https://saref.etsi.org/core/Switch", scope)).toBe("https://saref.etsi.org/core/Switch");
    expect(expandIri("hosts", scope)).toBe("hosts");
    expect(expandIri("Lamp", scopeOf({ "@vocab": "https://v.example/" }))).toBe("https://v.example/Lamp");
  });

  it("resolves a bare type by its unique local name, and not when two classes share it", () => {
    const v = new Vocabulary({
      prefixes: { a: "https://a/", b: "https://b/" },
      classes: { "a:X": ["a:Y"], "b:X": ["a:Y"], "a:Z": [] },
    });
    expect(v.resolve("Z")).toBe("https://a/Z");
    expect(v.resolve("X")).toBe("X");
    expect([...v.subtypesOf("https://a/Y")].sort()).toEqual(["https://a/X", "https://a/Y", "https://b/X"]);
  });

  it("survives subClassOf cycles", () => {
    const v = new Vocabulary({ classes: { "urn:a": ["urn:b"], "urn:b": ["urn:a"] } });
    expect([...v.subtypesOf("urn:a")].sort()).toEqual(["urn:a", "urn:b"]);
  });

  it("refuses a malformed vocabulary file, naming the place", () => {
    expect(() => parseVocabulary({ classes: { "a b": [] } }, "v.json")).toThrow(
      /v.json is invalid at \/classes\/a b/,
    );
    expect(() => parseVocabulary({ prefixes: { a: 3 } }, "v.json")).toThrow(/\/prefixes\/a/);
    expect(() => parseVocabulary({ classez: {} }, "v.json")).toThrow(/\/classez/);
  });

  it("derives linked and unlinked Changes from two versions of a TD's links, rels compared as IRIs", () => {
    const ctx = ["https://www.w3.org/2022/wot/td/v1.1", { ht: "https://ht.example/" }];
    const before = {
      "@context": ctx,
      links: [
        { rel: "ht:hosts", href: "urn:a" },
        { rel: "partOf", href: "urn:b" },
      ],
    };
    const after = {
      "@context": ctx,
      links: [
        { rel: "https://ht.example/hosts", href: "urn:a" },
        { rel: "partOf", href: "urn:c" },
      ],
    };
    const changes = linkChanges("urn:x", before, after, { actor: "t" });
    expect(changes.map((c) => [c.kind, c.value])).toEqual([
      ["unlinked", { rel: "partOf", href: "urn:b" }],
      ["linked", { rel: "partOf", href: "urn:c" }],
    ]);
    expect(linkChanges("urn:x", before, undefined, { actor: "t" }).every((c) => c.kind === "unlinked")).toBe(
      true,
    );
  });
});
