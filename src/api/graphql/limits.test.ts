import { describe, expect, it } from "vitest";
import { getIntrospectionQuery, parse, validate } from "graphql";
import { configDefaults } from "../../hub/index.js";
import { MAX_INTROSPECTION_COST, TokenBucket, limitsRule } from "./limits.js";
import { buildHubSchema } from "./schema.js";

const schema = buildHubSchema();
const limits = { ...configDefaults.graphql, maxDepth: 5, maxCost: 1000, maxFirst: 100 };

function codesOf(query: string): unknown[] {
  return validate(schema, parse(query), [limitsRule(limits)]).map((e) => e.extensions.code);
}

describe("the operation limits", () => {
  it("counts depth through fragments, and refuses past the limit", () => {
    expect(codesOf(`{ thing(id: "urn:a") { links { target { id } } } }`)).toEqual([]);
    const deep = `{ thing(id: "urn:a") { ...F } } fragment F on Thing { links { target { links { target { id } } } } }`;
    expect(codesOf(deep)).toContain("DEPTH_LIMIT_EXCEEDED");
  });

  it("multiplies lists by the page size asked, and a variable page by the maximum", () => {
    expect(codesOf(`{ things(first: 10) { items { history(first: 10) { changes { seq } } } } }`)).toEqual([]);
    expect(codesOf(`{ things(first: 100) { items { history(first: 100) { changes { seq } } } } }`)).toEqual([
      "COST_LIMIT_EXCEEDED",
    ]);
    expect(
      codesOf(`query ($n: Int) { things(first: $n) { items { history(first: $n) { changes { seq } } } } }`),
    ).toEqual(["COST_LIMIT_EXCEEDED"]);
  });

  it("measures each fragment once where it is spread: a doubling chain of 40 is counted, not walked 2^40 times", () => {
    const chain = (leaf: string) =>
      `{ thing(id: "urn:a") { ...F0 } } ` +
      Array.from({ length: 40 }, (_, i) => `fragment F${i} on Thing { ...F${i + 1} ...F${i + 1} }`).join(
        " ",
      ) +
      ` fragment F40 on Thing { ${leaf} }`;
    // Free leaves: nothing to refuse, and nothing to walk 2^40 times either.
    expect(codesOf(chain("__typename"))).toEqual([]);
    // Each F40 costs 1, so the operation 2^40 (counted until it is past 1,000 times the limit).
    expect(codesOf(chain("id"))).toEqual(["COST_LIMIT_EXCEEDED"]);
    const [error] = validate(schema, parse(chain("id")), [limitsRule(limits)]);
    expect(error?.extensions.cost).toBeGreaterThan(1000 * limits.maxCost);
  });

  it("lets introspection through whatever its depth", () => {
    const query = `{ __schema { types { fields { type { ofType { ofType { ofType { ofType { name } } } } } } } } }`;
    expect(codesOf(query)).toEqual([]);
  });

  it("prices introspection apart from maxCost: a tool's whole introspection passes, a thousand aliased ones do not", () => {
    const full = getIntrospectionQuery({
      descriptions: true,
      specifiedByUrl: true,
      directiveIsRepeatable: true,
      schemaDescription: true,
      inputValueDeprecation: true,
    });
    expect(codesOf(full)).toEqual([]);
    const aliased = `{ ${Array.from(
      { length: 1000 },
      (_, i) => `a${i}: __schema { types { fields { args { name } type { name } } } }`,
    ).join(" ")} }`;
    const errors = validate(schema, parse(aliased), [limitsRule(limits)]);
    expect(errors.map((e) => e.extensions.code)).toEqual(["COST_LIMIT_EXCEEDED"]);
    expect(errors[0]?.extensions).toMatchObject({ maxCost: MAX_INTROSPECTION_COST });
    expect(errors[0]?.message).toMatch(/introspection costs \d+; this hub allows at most 100000/);
  });
});

describe("TokenBucket", () => {
  it("allows a burst, then the rate, as time passes", () => {
    let now = 0;
    const bucket = new TokenBucket(2, 3, () => now);
    expect([bucket.take(), bucket.take(), bucket.take(), bucket.take()]).toEqual([true, true, true, false]);
    now += 500;
    expect([bucket.take(), bucket.take()]).toEqual([true, false]);
    now += 10_000;
    expect([bucket.take(), bucket.take(), bucket.take(), bucket.take()]).toEqual([true, true, true, false]);
  });
});
