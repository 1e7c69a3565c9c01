import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { Vocabulary, type RegisteredThingDescription } from "../core/index.js";
import type { StateView } from "../store/index.js";
import { GraphIndex } from "./graph-index.js";
import { smallestAfter } from "./graph.js";

const vocabulary = new Vocabulary({
  prefixes: { s: "https://s.example/" },
  classes: { "s:Lamp": ["s:Device"] },
});

function td(
  id: string,
  links: Array<{ rel: string; href: string }>,
  type = "s:Lamp",
): RegisteredThingDescription {
  return {
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    "@type": type,
    id,
    title: id,
    security: "nosec_sc",
    securityDefinitions: { nosec_sc: { scheme: "nosec" } },
    links,
  };
}

describe("the graph index", () => {
  it("applies each description, removal and value once, in Log order, whatever order they arrive in", () => {
    const index = new GraphIndex(vocabulary);
    index.describe(td("u:a", [{ rel: "partOf", href: "u:b" }]), 5);
    // An older description seen late (the rebuild racing the bus) changes nothing.
    index.describe(td("u:a", [{ rel: "partOf", href: "u:c" }]), 3);
    expect(index.outgoing("u:a").map((e) => e.to)).toEqual(["u:b"]);
    expect(index.incoming("u:b").map((e) => e.from)).toEqual(["u:a"]);
    index.report("u:a", "on", true, 9);
    index.report("u:a", "on", false, 7);
    expect(index.stateValue("u:a", "on")).toBe(true);

    index.remove("u:a", 10);
    index.describe(td("u:a", [{ rel: "partOf", href: "u:b" }]), 6);
    expect(index.has("u:a")).toBe(false);
    expect(index.incoming("u:b")).toEqual([]);
    expect([...index.ofType("https://s.example/Lamp")]).toEqual([]);
    const visited: string[] = [];
    index.forEachState("on", (id) => visited.push(id));
    expect(visited).toEqual([]);
    // Reports of a Thing not (or no longer) registered are stragglers: dropped.
    index.report("u:a", "on", false, 10);
    index.report("u:z", "on", false, 12);
    expect(index.stateValue("u:a", "on")).toBeUndefined();
    expect(index.stateValue("u:z", "on")).toBeUndefined();

    index.describe(td("u:a", [], "Lamp"), 11);
    expect(index.typesOf("u:a")).toEqual(["https://s.example/Lamp"]);
    expect(index.tdField("u:a", ["title"])).toBe("u:a");
    expect(index.tdField("u:a", ["securityDefinitions"])).toBeUndefined();
  });

  it("with the Store's state view, reads values from it for registered Things only, and keeps none itself", () => {
    // The Store keeps the streams of Things removed since (u:gone) and of kinds other than reported.
    const streams = new Map<string, unknown>([
      ["u:a on reported", true],
      ["u:gone on reported", false],
      ["u:a on desired", false],
    ]);
    const view: StateView = {
      latest: (thing, affordance, kind) => {
        const value = streams.get(`${thing} ${affordance} ${kind}`);
        return value === undefined ? undefined : { seq: 1, value };
      },
      forEach: (affordance, kind, visit) => {
        for (const [key, value] of streams) {
          const [thing, a, k] = key.split(" ");
          if (a === affordance && k === kind) visit(thing ?? "", value, 1);
        }
      },
      count: (affordance, kind) =>
        [...streams.keys()].filter((k) => k.endsWith(` ${affordance} ${kind}`)).length,
    };
    const index = new GraphIndex(vocabulary, view);
    expect(index.readsStoreState).toBe(true);
    index.describe(td("u:a", []), 5);
    index.report("u:a", "on", false, 9);
    expect(index.stateValue("u:a", "on")).toBe(true);
    expect(index.stateValue("u:gone", "on")).toBeUndefined();
    const visited: Array<[string, unknown]> = [];
    index.forEachState("on", (id, value) => visited.push([id, value]));
    expect(visited).toEqual([["u:a", true]]);
    // An estimate for planning: what the Store holds.
    expect(index.countWithState("on")).toBe(2);

    index.remove("u:a", 10);
    expect(index.stateValue("u:a", "on")).toBeUndefined();
    visited.length = 0;
    index.forEachState("on", (id, value) => visited.push([id, value]));
    expect(visited).toEqual([]);
    expect(new GraphIndex(vocabulary).readsStoreState).toBe(false);
  });

  it("moves an edge when a new description changes it, keeping other Things' edges to the same target", () => {
    const index = new GraphIndex(vocabulary);
    index.describe(td("u:a", [{ rel: "partOf", href: "u:x" }]), 1);
    index.describe(td("u:b", [{ rel: "partOf", href: "u:x" }]), 2);
    index.describe(td("u:a", [{ rel: "partOf", href: "u:y" }]), 3);
    expect(index.incoming("u:x").map((e) => e.from)).toEqual(["u:b"]);
    expect(index.incoming("u:y").map((e) => e.from)).toEqual(["u:a"]);
  });
});

describe("a page's ids", () => {
  it("are the k smallest after the cursor, sorted, like sorting them all (property)", () => {
    fc.assert(
      fc.property(
        fc.uniqueArray(fc.string({ maxLength: 4 }), { maxLength: 60 }),
        fc.option(fc.string({ maxLength: 4 }), { nil: undefined }),
        fc.integer({ min: 1, max: 10 }),
        (ids, after, k) => {
          const want = ids
            .filter((id) => after === undefined || id > after)
            .sort()
            .slice(0, k);
          expect(smallestAfter(ids, after, k)).toEqual(want);
        },
      ),
      { numRuns: 300 },
    );
  });
});
