// TD 1.1 validation and strict JSON parsing: the W3C/Thingweb conformance examples, agreement with
// the W3C JSON Schema, precise error locations, and properties of parseJsonStrict.
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Ajv } from "ajv";
import addFormats from "ajv-formats";
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { type ErrorLocation, ValidationError } from "./errors.js";
import { parseJsonStrict, validateThingDescription } from "./thing-description-validation.js";

const CONFORMANCE = new URL("../../../shared/conformance/wot-td/", import.meta.url);
const present = existsSync(fileURLToPath(CONFORMANCE));

interface Example {
  name: string;
  text: string;
}

function examples(folder: "valid" | "invalid"): Example[] {
  if (!present) return [];
  const dir = new URL(`${folder}/`, CONFORMANCE);
  return readdirSync(dir)
    .filter((f) => f.endsWith(".json"))
    .sort()
    .map((file) => ({ name: `${folder}/${file}`, text: readFileSync(new URL(file, dir), "utf8") }));
}

const valid = examples("valid");
const invalid = examples("invalid");

/** The problems validation reports, or [] when the input is accepted. */
function problems(run: () => void): ErrorLocation[] {
  try {
    run();
  } catch (err) {
    if (err instanceof ValidationError) return err.errors;
    throw err;
  }
  return [];
}

function accepts(text: string): boolean {
  return problems(() => validateThingDescription(parseJsonStrict(text))).length === 0;
}

function thrown(run: () => void): ValidationError {
  try {
    run();
  } catch (err) {
    if (err instanceof ValidationError) return err;
    throw err;
  }
  throw new Error("expected a ValidationError");
}

type Json = Record<string, unknown>;
type Affordance = Json & { forms: Json[] };

/** A small valid TD, fresh for each test to modify. */
function lamp(): Json & {
  properties: Json & { x: Affordance };
  actions: Json & { toggle: Affordance };
  securityDefinitions: Record<string, Json>;
} {
  return {
    "@context": ["https://www.w3.org/2022/wot/td/v1.1", { saref: "https://saref.etsi.org/core/" }],
    id: "urn:example:lamp",
    title: "Lamp",
    securityDefinitions: { basic_sc: { scheme: "basic", in: "header" } },
    security: ["basic_sc"],
    properties: {
      x: { type: "string", forms: [{ href: "https://lamp.example.com/x" }] },
    },
    actions: {
      toggle: { forms: [{ href: "https://lamp.example.com/toggle", op: "invokeaction" }] },
    },
  };
}

function errorsOf(td: unknown): ErrorLocation[] {
  return problems(() => validateThingDescription(td));
}

const SKIPPED = present ? "" : " (skipped: ../shared/conformance not found)";

if (!present) {
  it.skip("conformance examples and W3C schema cross-check (skipped: ../shared/conformance not found)", () => {});
}

// The README of the conformance folder names these: valid for the W3C JSON Schema, but they break a
// rule of the TD specification that a schema cannot express.
const SPEC_RULE_CASES = new Set([
  "invalid/duplicateSecurityDefinitions.json",
  "invalid/invalidSecuMatch.json",
  "invalid/usingTM.json",
]);

describe.skipIf(!present)(`TD 1.1 conformance examples (../shared/conformance/wot-td)${SKIPPED}`, () => {
  it.each(valid)("accepts $name", ({ text }) => {
    expect(problems(() => validateThingDescription(parseJsonStrict(text)))).toEqual([]);
  });

  it.each(invalid)("rejects $name with located errors", ({ text }) => {
    const found = problems(() => validateThingDescription(parseJsonStrict(text)));
    expect(found.length).toBeGreaterThan(0);
    for (const error of found) expect(error.pointer === "" || error.pointer.startsWith("/")).toBe(true);
  });
});

describe.skipIf(!present)(`agreement with the W3C TD 1.1 JSON Schema (draft-07)${SKIPPED}`, () => {
  const w3c = present
    ? (() => {
        const ajv = new Ajv({ strict: false });
        addFormats.default(ajv);
        const schema = JSON.parse(
          readFileSync(new URL("td-json-schema-validation.json", CONFORMANCE), "utf8"),
        ) as object;
        return ajv.compile(schema);
      })()
    : () => true;

  it.each([...valid, ...invalid])("agrees on $name", ({ name, text }) => {
    const theirs = w3c(JSON.parse(text));
    const ours = accepts(text);
    if (SPEC_RULE_CASES.has(name)) {
      expect({ theirs, ours }).toEqual({ theirs: true, ours: false });
    } else {
      expect(ours).toBe(theirs);
    }
  });

  it("finds each spec-rule case among the invalid examples", () => {
    expect(invalid.map((e) => e.name).filter((n) => SPEC_RULE_CASES.has(n))).toHaveLength(
      SPEC_RULE_CASES.size,
    );
  });
});

describe("validateThingDescription: precise errors", () => {
  it("accepts a small TD with extension terms anywhere", () => {
    const td = lamp();
    td["saref:owner"] = { "@id": "urn:example:alice" };
    td.unknownTerm = 42;
    const form = td.properties.x.forms[0];
    if (form) form["htv:methodName"] = "GET";
    td.properties.x["saref:unit"] = "lux";
    td.securityDefinitions = { basic_sc: { scheme: "basic", "saref:note": "x" } };
    expect(errorsOf(td)).toEqual([]);
  });

  it("reports a missing title at the root with one sentence naming it", () => {
    const td = lamp();
    delete td.title;
    const error = thrown(() => validateThingDescription(td));
    expect(error.errors).toEqual([{ pointer: "", message: "must have required property 'title'" }]);
    expect(error.message).toBe(
      "The Thing Description is not valid TD 1.1: the top level must have required property 'title'",
    );
  });

  it("reports a form without href at the form", () => {
    const td = lamp();
    td.properties.x.forms = [{ op: "readproperty" }];
    expect(errorsOf(td)).toEqual([
      { pointer: "/properties/x/forms/0", message: "must have required property 'href'" },
    ]);
  });

  it("counts the further problems in the message", () => {
    const td = lamp();
    td.properties.x.forms = [{}];
    td.created = "yesterday";
    td.security = [];
    const error = thrown(() => validateThingDescription(td));
    expect(error.errors.map((e) => e.pointer).sort()).toEqual([
      "/created",
      "/properties/x/forms/0",
      "/security",
    ]);
    expect(error.message).toMatch(/^The Thing Description is not valid TD 1\.1: .+ \(and 2 more problems\)$/);
  });

  it("reports an undefined security name in security at /security or /security/i", () => {
    const asString = lamp();
    asString.security = "nope";
    expect(errorsOf(asString)).toEqual([
      { pointer: "/security", message: expect.stringContaining('"nope"') as string },
    ]);
    const asArray = lamp();
    asArray.security = ["basic_sc", "nope"];
    expect(errorsOf(asArray).map((e) => e.pointer)).toEqual(["/security/1"]);
  });

  it("reports an undefined security name in a form at the form's security entry", () => {
    const td = lamp();
    td.actions.toggle.forms = [{ href: "/toggle", security: ["someScheme"] }];
    const found = errorsOf(td);
    expect(found.map((e) => e.pointer)).toEqual(["/actions/toggle/forms/0/security/0"]);
    expect(found[0]?.message).toContain("securityDefinitions");
  });

  it("reports one error for an unknown security scheme, not one per scheme kind", () => {
    const td = lamp();
    td.securityDefinitions = { s: { scheme: "mostSecureScheme" } };
    td.security = "s";
    const found = errorsOf(td);
    expect(found).toHaveLength(1);
    expect(found[0]?.pointer).toBe("/securityDefinitions/s/scheme");
    expect(found[0]?.message).toContain("nosec");
  });

  it("accepts extension security schemes with a prefixed name and their own terms", () => {
    const td = lamp();
    td.securityDefinitions = {
      ace: { scheme: "ace:ACESecurityScheme", "ace:as": "coaps://as.example.com/token" },
    };
    td.security = "ace";
    expect(errorsOf(td)).toEqual([]);
  });

  it("checks the members of each security scheme", () => {
    const td = lamp();
    td.securityDefinitions = {
      basic: { scheme: "basic", in: "uri" },
      key: { scheme: "apikey", in: "uri", name: "key" },
      auto: { scheme: "auto", name: "x" },
      digest: { scheme: "digest", qop: "auth-conf" },
    };
    td.security = ["basic"];
    expect(errorsOf(td).map((e) => e.pointer)).toEqual([
      "/securityDefinitions/basic/in",
      "/securityDefinitions/auto/name",
      "/securityDefinitions/digest/qop",
    ]);
  });

  it("requires combo schemes to combine existing schemes, with exactly one of oneOf and allOf, without cycles", () => {
    const td = lamp();
    td.securityDefinitions = {
      basic_sc: { scheme: "basic" },
      bearer_sc: { scheme: "bearer" },
      ok: { scheme: "combo", oneOf: ["basic_sc", "bearer_sc"] },
      dangling: { scheme: "combo", allOf: ["basic_sc", "missing"] },
      neither: { scheme: "combo" },
      both: { scheme: "combo", oneOf: ["basic_sc", "bearer_sc"], allOf: ["basic_sc", "bearer_sc"] },
      a: { scheme: "combo", oneOf: ["basic_sc", "b"] },
      b: { scheme: "combo", allOf: ["bearer_sc", "a"] },
      self: { scheme: "combo", oneOf: ["basic_sc", "self"] },
    };
    td.security = "ok";
    const pointers = errorsOf(td).map((e) => e.pointer);
    expect(pointers).toEqual(
      expect.arrayContaining([
        "/securityDefinitions/dangling/allOf/1",
        "/securityDefinitions/neither",
        "/securityDefinitions/both/allOf",
        "/securityDefinitions/b/allOf/1",
        "/securityDefinitions/self/oneOf/1",
      ]),
    );
    expect(pointers).toHaveLength(5);
  });

  it("catches camelCase operation types and suggests the right one", () => {
    const td = lamp();
    td.actions.toggle.forms = [{ href: "/toggle", op: ["invokeAction"] }];
    const found = errorsOf(td);
    expect(found).toHaveLength(1);
    expect(found[0]?.pointer).toBe("/actions/toggle/forms/0/op/0");
    expect(found[0]?.message).toContain('did you mean "invokeaction"');
  });

  it("allows only the operation types of the form's place", () => {
    const td = lamp();
    td.properties.x.forms = [{ href: "/x", op: "invokeaction" }];
    td.forms = [
      { href: "/all", op: "readproperty" },
      { href: "/all" },
      { href: "/all", op: ["readallproperties", "queryallactions"] },
    ];
    expect(errorsOf(td).map((e) => e.pointer)).toEqual([
      "/properties/x/forms/0/op",
      "/forms/0/op",
      "/forms/1",
    ]);
  });

  it("rejects empty op arrays, empty forms and affordances that are not objects", () => {
    const td = lamp();
    td.properties.x.forms = [{ href: "/x", op: [] }];
    td.actions.toggle.forms = [];
    td.events = { e: "notAnObject" };
    expect(errorsOf(td).map((e) => e.pointer)).toEqual([
      "/properties/x/forms/0/op",
      "/actions/toggle/forms",
      "/events/e",
    ]);
  });

  it("checks data schemas: types, enums, numbers, nesting", () => {
    const td = lamp();
    td.properties.x = {
      type: "object",
      properties: {
        a: { type: "myAmazingType" },
        b: { enum: ["on", "off", "on"] },
        c: { enum: [] },
        d: { type: "array", items: [{ type: "integer", minimum: "0" }], minItems: -1 },
        e: { type: "number", multipleOf: 0 },
      },
      required: ["a", 1],
      forms: [{ href: "/x" }],
    };
    expect(errorsOf(td).map((e) => e.pointer)).toEqual([
      "/properties/x/properties/a/type",
      "/properties/x/properties/b/enum/2",
      "/properties/x/properties/c/enum",
      "/properties/x/properties/d/items/0/minimum",
      "/properties/x/properties/d/minItems",
      "/properties/x/properties/e/multipleOf",
      "/properties/x/required/1",
    ]);
  });

  it("rejects enum and const values that the data schema's own type forbids", () => {
    const td = lamp();
    td.properties.x = { type: "number", enum: [1, "on"], forms: [{ href: "/x" }] };
    td.actions.toggle.input = { type: "integer", const: 1.5 };
    expect(errorsOf(td)).toEqual([
      { pointer: "/properties/x/enum/1", message: 'is a string, but the data schema\'s type is "number"' },
      {
        pointer: "/actions/toggle/input/const",
        message: 'is a number, but the data schema\'s type is "integer"',
      },
    ]);
  });

  it("rejects a pattern that is not a JavaScript u-mode regular expression", () => {
    const td = lamp();
    td.properties.x.pattern = "(unclosed";
    td.actions.toggle.input = { type: "object", properties: { p: { type: "string", pattern: "a\\-b" } } };
    const found = errorsOf(td);
    expect(found.map((e) => e.pointer)).toEqual([
      "/properties/x/pattern",
      "/actions/toggle/input/properties/p/pattern",
    ]);
    expect(found[0]?.message).toContain("regular expression");
  });

  it("rejects a pattern longer than 256 characters and accepts one of 256", () => {
    const td = lamp();
    td.properties.x.pattern = "a".repeat(256);
    expect(errorsOf(td)).toEqual([]);
    td.properties.x.pattern = "a".repeat(257);
    expect(errorsOf(td)).toEqual([
      { pointer: "/properties/x/pattern", message: expect.stringContaining("256") as string },
    ]);
  });

  it("rejects Thing Model terms, placeholders and tm:ThingModel", () => {
    const td = lamp();
    td["tm:optional"] = ["/properties/x"];
    td.properties.x["tm:ref"] = "https://example.com/tm.json#/properties/x";
    td.actions.toggle.forms = [{ href: "https://{{HOST}}/toggle" }];
    td["@type"] = ["Thing", "tm:ThingModel"];
    td.links = [{ rel: "tm:extends", href: "https://example.com/base.tm.json", type: "application/tm+json" }];
    const found = errorsOf(td);
    expect(new Set(found.map((e) => e.pointer))).toEqual(
      new Set([
        "/tm:optional",
        "/properties/x/tm:ref",
        "/actions/toggle/forms/0/href",
        "/@type/1",
        "/links/0/rel",
      ]),
    );
    expect(found.find((e) => e.message.includes("{{HOST}}"))?.pointer).toBe("/actions/toggle/forms/0/href");
  });

  it("requires the TD context first in @context", () => {
    const wrong = lamp();
    wrong["@context"] = "https://www.w3.org/2019/wot/td";
    expect(errorsOf(wrong)).toEqual([
      { pointer: "/@context", message: expect.stringContaining("v1.1") as string },
    ]);
    const second = lamp();
    second["@context"] = [{ saref: "https://saref.etsi.org/core/" }, "https://www.w3.org/2022/wot/td/v1.1"];
    expect(errorsOf(second).map((e) => e.pointer)).toEqual(["/@context/0"]);
    const old = lamp();
    old["@context"] = ["https://www.w3.org/2019/wot/td/v1", "https://www.w3.org/2022/wot/td/v1.1"];
    expect(errorsOf(old)).toEqual([]);
    const missing = lamp();
    delete missing["@context"];
    expect(errorsOf(missing)).toEqual([{ pointer: "", message: "must have required property '@context'" }]);
  });

  it("checks id, dates, version, base, profile and multi-language maps", () => {
    const td = lamp();
    td.id = "lamp 1";
    td.created = "2024-02-30T10:00:00Z";
    td.modified = "2024-02-01T10:00:00Z";
    td.version = { model: "1.0" };
    td.base = "/relative";
    td.profile = [];
    td.titles = { en: "Lamp", "not a tag": "x" };
    td.descriptions = { de: 3 };
    expect(errorsOf(td).map((e) => e.pointer)).toEqual([
      "/titles/not a tag",
      "/descriptions/de",
      "/version",
      "/created",
      "/base",
      "/profile",
      "/id",
    ]);
  });

  it("checks links: href required, sizes only on icons, hreflang a language tag", () => {
    const td = lamp();
    td.links = [
      { href: "https://example.com/icon.png", rel: "icon", sizes: "16x16 32x32", hreflang: ["en", "de-CH"] },
      { rel: "alternate" },
      { href: "https://example.com/x", sizes: "16x16" },
      { href: "https://example.com/y", hreflang: "english please" },
      { href: "has space" },
    ];
    expect(errorsOf(td).map((e) => e.pointer)).toEqual([
      "/links/1",
      "/links/2/sizes",
      "/links/3/hreflang",
      "/links/4/href",
    ]);
  });

  it("accepts URI templates in hrefs but not malformed references", () => {
    const td = lamp();
    td.properties.x.forms = [
      { href: "coaps://lamp.example.com/{p}/x{?a,b}" },
      { href: "/x%zz" },
      { href: "/x{" },
    ];
    expect(errorsOf(td).map((e) => e.pointer)).toEqual([
      "/properties/x/forms/1/href",
      "/properties/x/forms/2/href",
    ]);
  });

  it("checks that additionalResponses name a schema definition", () => {
    const td = lamp();
    td.schemaDefinitions = { error: { type: "object" } };
    td.actions.toggle.forms = [
      {
        href: "/toggle",
        response: { contentType: "application/json" },
        additionalResponses: [{ success: false, schema: "error" }, { schema: "missing" }],
      },
    ];
    expect(errorsOf(td).map((e) => e.pointer)).toEqual([
      "/actions/toggle/forms/0/additionalResponses/1/schema",
    ]);
  });

  it("rejects a non-object as the top level", () => {
    expect(errorsOf([])).toEqual([{ pointer: "", message: "must be an object" }]);
    expect(errorsOf(null)).toEqual([{ pointer: "", message: "must be an object" }]);
  });

  it("bounds nesting depth instead of overflowing the stack", () => {
    const td = lamp();
    let schema: Record<string, unknown> = { type: "string" };
    for (let i = 0; i < 5000; i++) schema = { type: "array", items: schema };
    td.actions.toggle.input = schema;
    const found = errorsOf(td);
    expect(found).toHaveLength(1);
    expect(found[0]?.message).toContain("nested more than");
  });
});

describe("parseJsonStrict", () => {
  it("reports a duplicate member name at the object that repeats it", () => {
    const error = thrown(() => parseJsonStrict('{"a": {"list": [{"b": 1, "c": 2, "b": 3}]}}'));
    expect(error.errors).toEqual([{ pointer: "/a/list/0", message: 'repeats the member name "b"' }]);
    expect(error.message).toContain("/a/list/0");
  });

  it("reports a duplicate at the top level with the empty pointer, and every duplicate", () => {
    const error = thrown(() => parseJsonStrict('{"a/b": {"x": 1, "x": 2}, "k": 1, "k": 2}'));
    expect(error.errors).toEqual([
      { pointer: "/a~1b", message: 'repeats the member name "x"' },
      { pointer: "", message: 'repeats the member name "k"' },
    ]);
  });

  it("compares member names after unescaping", () => {
    expect(() => parseJsonStrict('{"ab": 1, "a\\u0062": 2}')).toThrow(ValidationError);
    expect(parseJsonStrict('{"a\\"": 1, "a\\\\": 2, "x": ["\\\\", {"a\\"": 3}]}')).toEqual({
      'a"': 1,
      "a\\": 2,
      x: ["\\", { 'a"': 3 }],
    });
  });

  it("reports malformed JSON with its line and column", () => {
    const error = thrown(() => parseJsonStrict('{\n  "a": 1,\n  "b": }'));
    expect(error.message).toBe('Malformed JSON at line 3, column 8: unexpected "}"; expected a value');
    expect(error.errors).toHaveLength(1);
    expect(thrown(() => parseJsonStrict('{"a": 1')).message).toMatch(
      /line 1, column 8: unexpected end of input/,
    );
    expect(thrown(() => parseJsonStrict("[1,]")).message).toMatch(/line 1, column 4/);
    expect(thrown(() => parseJsonStrict("")).message).toMatch(/line 1, column 1/);
  });

  it("says where the first 20 repeated names are and counts the rest, however many and deep", () => {
    // Each repeat's pointer is as long as the nesting is deep: 100,000 of them 3,000 deep once
    // took a 600 KB body to a heap out of memory. Too deep is refused before the repeats are looked at.
    const repeats = (count: number, depth: number) =>
      "[".repeat(depth) +
      "{" +
      Array.from({ length: count }, () => '"a":1').join(",") +
      "}" +
      "]".repeat(depth);
    const many = thrown(() => parseJsonStrict(repeats(100_000, 60)));
    expect(many.errors).toHaveLength(20);
    expect(many.errors[0]).toEqual({ pointer: "/0".repeat(60), message: 'repeats the member name "a"' });
    expect(many.message).toBe(
      `The JSON has duplicate member names: the object at ${"/0".repeat(60)} repeats the member name "a" (and 99998 more)`,
    );
    const deep = thrown(() => parseJsonStrict(repeats(100_000, 3_000)));
    expect(deep.errors).toHaveLength(1);
    expect(deep.message).toMatch(/^The JSON nests deeper than 64 levels/);
  });

  it("handles deep nesting without overflowing the stack", () => {
    const depth = 100_000;
    // Parsed, then refused for its depth (json-limits.ts), not a RangeError from the stack.
    expect(thrown(() => parseJsonStrict("[".repeat(depth) + "]".repeat(depth))).message).toBe(
      `The JSON nests deeper than 64 levels of arrays and objects at ${"/0".repeat(64)}`,
    );
    expect(parseJsonStrict("[".repeat(64) + "]".repeat(64))).toEqual(
      JSON.parse("[".repeat(64) + "]".repeat(64)),
    );
    expect(thrown(() => parseJsonStrict("[".repeat(depth) + "]".repeat(depth - 1))).message).toBe(
      `Malformed JSON at line 1, column ${2 * depth}: unexpected end of input`,
    );
  });

  it("parses every JSON.stringify'd value like JSON.parse, without false duplicates", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.constantFrom(undefined, 0, 2, "\t"), (value, indent) => {
        const text = JSON.stringify(value, null, indent);
        expect(parseJsonStrict(text)).toEqual(JSON.parse(text));
      }),
      { numRuns: 500 },
    );
  });

  it("reports an injected duplicate member name, however it is escaped and however deep", () => {
    const entries = fc.uniqueArray(fc.tuple(fc.string(), fc.jsonValue({ maxDepth: 2 })), {
      selector: ([name]) => name,
      minLength: 1,
      maxLength: 5,
    });
    const path = fc.array(fc.option(fc.string(), { nil: undefined }), { maxLength: 4 });
    fc.assert(
      fc.property(
        entries,
        fc.nat(),
        fc.nat(),
        fc.jsonValue({ maxDepth: 1 }),
        fc.boolean(),
        path,
        (members, pick, at, value, escape, outer) => {
          const [name] = members[pick % members.length] ?? [""];
          const spelled = escape
            ? `"${[...Array(name.length).keys()].map((i) => `\\u${name.charCodeAt(i).toString(16).padStart(4, "0")}`).join("")}"`
            : JSON.stringify(name);
          const parts = members.map(([k, v]) => `${JSON.stringify(k)}:${JSON.stringify(v)}`);
          parts.splice((at % members.length) + 1, 0, `${spelled}:${JSON.stringify(value)}`);
          let text = `{${parts.join(",")}}`;
          const tokens: string[] = [];
          for (const segment of outer) {
            if (segment === undefined) {
              text = `[0, ${text}]`;
              tokens.unshift("1");
            } else {
              text = `{${JSON.stringify(segment)}: ${text}}`;
              tokens.unshift(segment.replaceAll("~", "~0").replaceAll("/", "~1"));
            }
          }
          const pointer = tokens.map((t) => `/${t}`).join("");
          const error = thrown(() => parseJsonStrict(text));
          expect(error.errors).toEqual([
            { pointer, message: `repeats the member name ${JSON.stringify(name)}` },
          ]);
        },
      ),
      { numRuns: 500 },
    );
  });

  it("refuses exactly the texts JSON.parse refuses, always with a line and column", () => {
    const edit = fc.tuple(
      fc.nat(),
      fc.constantFrom("insert", "delete", "replace"),
      fc.constantFrom(...'{}[]":,\\ \n0-1.eE+tfnu\u0001x'),
    );
    fc.assert(
      fc.property(
        fc.jsonValue({ maxDepth: 3 }),
        fc.array(edit, { minLength: 1, maxLength: 3 }),
        (value, edits) => {
          let text = JSON.stringify(value, null, 1);
          for (const [position, kind, char] of edits) {
            const i = position % (text.length + 1);
            if (kind === "insert") text = text.slice(0, i) + char + text.slice(i);
            else if (kind === "delete") text = text.slice(0, i) + text.slice(i + 1);
            else text = text.slice(0, i) + char + text.slice(i + 1);
          }
          let parsed: unknown;
          let refused = false;
          try {
            parsed = JSON.parse(text);
          } catch {
            refused = true;
          }
          if (refused) {
            const error = thrown(() => parseJsonStrict(text));
            expect(error.message).toMatch(/^Malformed JSON at line \d+, column \d+: /);
            expect(error.message).not.toContain("is not valid JSON");
          } else {
            try {
              expect(parseJsonStrict(text)).toEqual(parsed);
            } catch (err) {
              // Or a number JSON.parse read as ±Infinity (an exponent grown by the edits).
              expect((err as Error).message).toMatch(
                /^The JSON has duplicate member names|^The JSON is a number out of range/,
              );
            }
          }
        },
      ),
      { numRuns: 2000 },
    );
  });
});
