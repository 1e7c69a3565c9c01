import { existsSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { GraphQLScalarType, Kind, isNonNullType, isObjectType, parse, validate } from "graphql";
import { buildHubSchema } from "./schema.js";
import { SCHEMA_SDL } from "./schema-sdl.js";

const schema = buildHubSchema();

function safeInt(): GraphQLScalarType {
  const type = schema.getType("SafeInt");
  if (!(type instanceof GraphQLScalarType)) throw new Error("no SafeInt scalar");
  return type;
}

function fieldType(typeName: string, field: string): string {
  const type = schema.getType(typeName);
  if (!isObjectType(type)) throw new Error(`no type ${typeName}`);
  const found = type.getFields()[field];
  if (!found) throw new Error(`no field ${typeName}.${field}`);
  return String(isNonNullType(found.type) ? found.type.ofType : found.type);
}

describe("SafeInt: seqs and counts past GraphQL's 32-bit Int", () => {
  it("types every seq, Log cursor, Log size and count of Changes as SafeInt", () => {
    const fields: Array<[string, string]> = [
      ["Change", "seq"],
      ["ChangePage", "next"],
      ["PropertyValue", "seq"],
      ["ThingState", "seq"],
      ["ThingDiff", "fromSeq"],
      ["ThingDiff", "toSeq"],
      ["AffordanceDiff", "changes"],
      ["InteractionChange", "seq"],
      ["LogHead", "size"],
      ["Checkpoint", "size"],
      ["LineageEntry", "seq"],
    ];
    for (const [type, field] of fields) {
      expect(`${type}.${field}: ${fieldType(type, field)}`).toBe(`${type}.${field}: SafeInt`);
    }
  });

  it("answers a seq past 2^31 - 1 as the number it is", () => {
    const seq = 2 ** 31 + 5;
    expect(safeInt().serialize(seq)).toBe(2_147_483_653);
    expect(safeInt().serialize(Number.MAX_SAFE_INTEGER)).toBe(Number.MAX_SAFE_INTEGER);
    expect(() => safeInt().serialize(1.5)).toThrow("SafeInt cannot represent 1.5");
  });

  it("takes a literal or a variable up to 2^53 - 1, and refuses past it naming the value as written", () => {
    expect(validate(schema, parse("{ change(seq: 3000000000) { seq } }"))).toEqual([]);
    expect(safeInt().parseLiteral({ kind: Kind.INT, value: "3000000000" }, undefined)).toBe(3_000_000_000);
    expect(safeInt().parseValue(3_000_000_000)).toBe(3_000_000_000);
    const errors = validate(schema, parse("{ change(seq: 9007199254740993) { seq } }"));
    expect(errors.map((e) => e.message)).toEqual([
      'Expected value of type "SafeInt!", found 9007199254740993; SafeInt cannot represent 9007199254740993: it takes a whole number from -9007199254740991 to 9007199254740991',
    ]);
    expect(validate(schema, parse('{ change(seq: "12") { seq } }')).map((e) => e.message)).toEqual([
      'Expected value of type "SafeInt!", found "12"; SafeInt cannot represent a non-integer value: it takes a whole number from -9007199254740991 to 9007199254740991',
    ]);
    expect(() => safeInt().parseValue("12")).toThrow('SafeInt cannot represent "12"');
    expect(() => safeInt().parseValue(2 ** 53)).toThrow("SafeInt cannot represent 9007199254740992");
  });
});

// docs/graphql.md shows the whole schema: kept in step with the one the hub serves.
const doc = fileURLToPath(new URL("../../../docs/graphql.md", import.meta.url));

describe.skipIf(!existsSync(doc))("docs/graphql.md", () => {
  it("shows the schema the hub serves, line for line", () => {
    const markdown = readFileSync(doc, "utf8");
    const heading = markdown.indexOf("## The schema");
    const start = markdown.indexOf("```graphql", heading) + "```graphql".length;
    const shown = markdown.slice(start, markdown.indexOf("```", start));
    const lines = (sdl: string) =>
      sdl
        .split("\n")
        .map((line) => line.trim())
        .filter(Boolean);
    expect(heading).toBeGreaterThan(-1);
    expect(lines(shown)).toEqual(lines(SCHEMA_SDL));
  });
});
