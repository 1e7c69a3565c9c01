import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { ValidationError } from "./errors.js";
import {
  assertGraphQuery,
  formatGraphFilter,
  parseGraphFilter,
  type Comparison,
  type GraphQuery,
} from "./graph-filter.js";

function errorOf(text: string): ValidationError {
  try {
    parseGraphFilter(text, "/query/filter");
  } catch (err) {
    if (err instanceof ValidationError) return err;
    throw err;
  }
  throw new Error(`"${text}" parsed`);
}

describe("graph filter syntax", () => {
  it("parses types, values, relations and their combinations into a tree", () => {
    const q = parseGraphFilter(
      'type = saref:TemperatureSensor AND state.temperature > 30 AND out(partOf, *) { id = "urn:example:building-3" }',
    );
    expect(q).toEqual({
      op: "and",
      of: [
        { op: "compare", field: { kind: "type" }, cmp: "=", value: "saref:TemperatureSensor" },
        { op: "compare", field: { kind: "state", path: ["temperature"] }, cmp: ">", value: 30 },
        {
          op: "related",
          direction: "out",
          rel: "partOf",
          min: 1,
          where: { op: "compare", field: { kind: "id" }, cmp: "=", value: "urn:example:building-3" },
        },
      ],
    });
  });

  it("binds AND tighter than OR, and parentheses and NOT override it", () => {
    expect(formatGraphFilter(parseGraphFilter("id = a:1 OR id = a:2 AND id = a:3"))).toBe(
      'id = "a:1" OR (id = "a:2" AND id = "a:3")',
    );
    expect(parseGraphFilter("not (id = a:1 or id = a:2)")).toMatchObject({ op: "not", of: { op: "or" } });
  });

  it("reads hops as k, n..m, n..* and *", () => {
    expect(parseGraphFilter("in(hosts, 3)")).toMatchObject({ min: 3, max: 3, direction: "in" });
    expect(parseGraphFilter("out(*, 2..4)")).toEqual({ op: "related", direction: "out", min: 2, max: 4 });
    expect(parseGraphFilter("out(runsOn, 2..*)")).toEqual({
      op: "related",
      direction: "out",
      rel: "runsOn",
      min: 2,
    });
    expect(parseGraphFilter("out(runsOn, *)")).toEqual({
      op: "related",
      direction: "out",
      rel: "runsOn",
      min: 1,
    });
  });

  it("reads literals: strings in either quote, numbers, booleans, null, and bare words as strings", () => {
    const values = [
      "state.a = 'x y'",
      "state.a = -1.5e2",
      "state.a = true",
      "state.a = null",
      "td.title = Lamp",
    ].map((t) => (parseGraphFilter(t) as { value: unknown }).value);
    expect(values).toEqual(["x y", -150, true, null, "Lamp"]);
  });

  it.each([
    ["type = ", 8, "expected a value"],
    ["state.x >> 3", 10, "expected a value"],
    ["out(runsOn, 0)", 13, "at least 1 hop"],
    ["out(runsOn, 3..2)", 13, "empty range"],
    ["colour = red", 1, 'unknown field "colour"'],
    ["type > Sensor", 6, "compared with = or != only"],
    ['id = "urn:a b"', 6, "contains a space"],
    ["(id = a:1", 10, 'expected ")"'],
    ["id = a:1 id = a:2", 10, "expected AND, OR"],
    ["state.a = 'open", 11, "not closed"],
    ["out(runsOn, 99)", 13, "at most 32 hops"],
    ["", 1, "empty"],
  ])("rejects %j with the position of the problem", (text, position, words) => {
    const err = errorOf(text);
    expect(err.message).toContain(`position ${position}:`);
    expect(err.message).toContain(words);
    expect(err.errors[0]?.pointer).toBe("/query/filter");
  });

  it("refuses nesting beyond the bound instead of overflowing the stack", () => {
    expect(errorOf("(".repeat(100) + "id = a:1" + ")".repeat(100)).message).toContain("nest at most");
    // A chain of NOTs is nesting too (2,000 of them fit in a filter's 8,192 characters).
    expect(errorOf("NOT ".repeat(2000) + "id = a:1").message).toBe(
      "Bad graph filter at position 129: filters nest at most 32 deep",
    );
    expect(parseGraphFilter("NOT ".repeat(32) + "id = a:1").op).toBe("not");
  });

  const term = fc.stringMatching(/^[a-z][a-zA-Z0-9]{0,6}(:[A-Za-z0-9_]{1,8})?$/);
  const literal = fc.oneof(
    fc.string({ maxLength: 8 }),
    fc.integer({ min: -1000, max: 1000 }),
    fc.boolean(),
    fc.constant(null),
  );
  const cmp = fc.constantFrom<Comparison[]>("=", "!=", "<", "<=", ">", ">=");
  const query: fc.Arbitrary<GraphQuery> = fc.letrec<{ q: GraphQuery }>((tie) => ({
    q: fc.oneof(
      { depthSize: "small", withCrossShrink: true },
      fc.record({
        op: fc.constant("compare" as const),
        field: fc.constant({ kind: "type" as const }),
        cmp: fc.constantFrom("=" as const, "!=" as const),
        value: term,
      }),
      fc.record({
        op: fc.constant("compare" as const),
        field: fc.record({
          kind: fc.constantFrom("td" as const, "state" as const),
          path: fc.array(fc.stringMatching(/^[a-z][a-z0-9_]{0,5}$/), { minLength: 1, maxLength: 2 }),
        }),
        cmp,
        value: literal,
      }),
      fc.record(
        {
          op: fc.constant("related" as const),
          direction: fc.constantFrom("out" as const, "in" as const),
          rel: term,
          min: fc.integer({ min: 1, max: 3 }),
          where: tie("q"),
        },
        { requiredKeys: ["op", "direction", "min"] },
      ),
      fc.record({ op: fc.constant("and" as const), of: fc.array(tie("q"), { minLength: 2, maxLength: 3 }) }),
      fc.record({ op: fc.constant("or" as const), of: fc.array(tie("q"), { minLength: 2, maxLength: 3 }) }),
      fc.record({ op: fc.constant("not" as const), of: tie("q") }),
    ),
  })).q;

  it("parses what it formats back to the same filter (property)", () => {
    fc.assert(
      fc.property(query, (q) => {
        const text = formatGraphFilter(q);
        const parsed = parseGraphFilter(text);
        expect(formatGraphFilter(parsed)).toBe(text);
        expect(assertGraphQuery(parsed)).toEqual(parsed);
      }),
      { numRuns: 300 },
    );
  });

  it("never throws anything but a ValidationError on arbitrary text (property)", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), (text) => {
        try {
          parseGraphFilter(text);
        } catch (err) {
          expect(err).toBeInstanceOf(ValidationError);
        }
      }),
      { numRuns: 500 },
    );
  });
});
