import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { compileJsonPath } from "./jsonpath.js";
import { ValidationError } from "./errors.js";

const sortJson = (values: unknown[]) => values.map((v) => JSON.stringify(v)).sort();

const collection = [
  { id: "urn:a", title: "Lamp", properties: { on: { type: "boolean" } }, tags: [1, 2] },
  { id: "urn:b", title: "Fan", properties: { speed: { type: "integer" } }, tags: [3] },
  { id: "urn:c", title: "Lamp", tags: [] },
];

describe("JSONPath over the collection of TDs", () => {
  it("selects from the array of all TDs, as WoT Discovery specifies", () => {
    expect(compileJsonPath("$[?@.title=='Lamp'].id").values(collection)).toEqual(["urn:a", "urn:c"]);
    expect(compileJsonPath("$[0].id").values(collection)).toEqual(["urn:a"]);
  });

  it("marks queries that depend on positions or on the root as not element-wise", () => {
    for (const q of ["$", "$[0]", "$[-1:]", "$[0,1].id", "$..[0]", "$[?@.title == $[0].title]"]) {
      expect(compileJsonPath(q).elementwise, q).toBe(false);
    }
    for (const q of ["$[*].title", "$[?@.title=='Lamp'].id", "$..title", "$..tags[0]", "$[*].tags[-1]"]) {
      expect(compileJsonPath(q).elementwise, q).toBe(true);
    }
  });

  it("gives the same values TD by TD as over the whole collection when element-wise", () => {
    const queries = [
      "$[*].title",
      "$[?@.title=='Lamp'].id",
      "$..type",
      "$..tags[0]",
      "$[*].tags[-1]",
      "$..*",
    ];
    fc.assert(
      fc.property(fc.constantFrom(...queries), fc.shuffledSubarray(collection), (q, docs) => {
        const path = compileJsonPath(q);
        expect(path.elementwise).toBe(true);
        const streamed = docs.flatMap((d) => path.values([d]));
        // RFC 9535 §2.5.2.2 leaves the order between siblings' descendants open: TD by TD (each
        // TD's subtree in turn) is one of the allowed orders, so `..` compares as a multiset.
        if (q.startsWith("$..")) expect(sortJson(streamed)).toEqual(sortJson(path.values(docs)));
        else expect(streamed).toEqual(path.values(docs));
      }),
    );
  });

  it("refuses an invalid query with the position in the message", () => {
    expect(() => compileJsonPath("$[")).toThrow(ValidationError);
    expect(() => compileJsonPath("$[")).toThrow(/\$\[/);
    expect(() => compileJsonPath("")).toThrow(/empty/);
  });
});
