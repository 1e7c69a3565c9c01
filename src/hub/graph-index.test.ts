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
    // Own members only: no TD has a member the object prototype lends every object.
    expect(index.tdField("u:a", ["constructor"])).toBeUndefined();
    expect(index.tdField("u:a", ["title", "length"])).toBeUndefined();
  });

  it("with the Store's state view, keeps a property's values only once a query asks, built from the view, for registered Things", () => {
    // The Store keeps the streams of Things removed since (u:gone) and of kinds other than reported.
    const streams = new Map<string, { seq: number; value: unknown }>([
      ["u:a on reported", { seq: 3, value: true }],
      ["u:gone on reported", { seq: 4, value: false }],
      ["u:a on desired", { seq: 5, value: false }],
    ]);
    const view: StateView = {
      latest: (thing, affordance, kind) => streams.get(`${thing} ${affordance} ${kind}`),
      forEach: (affordance, kind, visit) => {
        for (const [key, { seq, value }] of streams) {
          const [thing, a, k] = key.split(" ");
          if (a === affordance && k === kind) visit(thing ?? "", value, seq);
        }
      },
      count: (affordance, kind) =>
        [...streams.keys()].filter((k) => k.endsWith(` ${affordance} ${kind}`)).length,
    };
    const index = new GraphIndex(vocabulary, view);
    index.describe(td("u:a", []), 1);
    // No query has asked for `on` yet: readings are not kept, and the count comes from the view.
    index.report("u:a", "on", false, 9);
    expect(index.tracks("on")).toBe(false);
    expect(index.countWithState("on")).toBe(2);
    expect(index.stateValue("u:a", "on")).toBe(true);
    expect(index.tracks("on")).toBe(true);
    expect(index.stateValue("u:gone", "on")).toBeUndefined();
    const visited = (property: string): Array<[string, unknown]> => {
      const out: Array<[string, unknown]> = [];
      index.forEachState(property, (id, value) => out.push([id, value]));
      return out;
    };
    expect(visited("on")).toEqual([["u:a", true]]);
    expect(index.countWithState("on")).toBe(1);
    // Tracked, it follows the readings; older ones change nothing.
    index.report("u:a", "on", false, 12);
    index.report("u:a", "on", true, 11);
    expect(index.stateValue("u:a", "on")).toBe(false);
    // A property no Thing has is not kept, whatever a query asks.
    expect(visited("nothing")).toEqual([]);
    expect(index.tracks("nothing")).toBe(false);

    index.remove("u:a", 20);
    expect(index.stateValue("u:a", "on")).toBeUndefined();
    expect(visited("on")).toEqual([]);
    // Registered again, it starts with no value: the Store's reading (seq 3) is of its old
    // registration, and so is one replayed from before the removal.
    index.describe(td("u:a", []), 21);
    expect(index.stateValue("u:a", "on")).toBeUndefined();
    index.report("u:a", "on", true, 19);
    expect(visited("on")).toEqual([]);
    // Its first reading since is its value, and a property first asked for now sees it too.
    streams.set("u:a on reported", { seq: 22, value: false });
    streams.set("u:a level reported", { seq: 22, value: 4 });
    streams.set("u:a dim reported", { seq: 8, value: 1 });
    index.report("u:a", "on", false, 22);
    expect(index.stateValue("u:a", "on")).toBe(false);
    expect(visited("level")).toEqual([["u:a", 4]]);
    expect(visited("dim")).toEqual([]);
    expect(new GraphIndex(vocabulary).tracks("anything")).toBe(true);
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
