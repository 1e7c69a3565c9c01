// jsonLimitProblem: what JSON the hub takes, held to Unicode itself for strings.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { inexactInteger, jsonLimitProblem } from "./json-limits.js";

/** Whether a string is whole Unicode text: UTF-8 round-trips it exactly (a lone surrogate becomes U+FFFD). */
function isUnicodeText(s: string): boolean {
  return new TextDecoder().decode(new TextEncoder().encode(s)) === s;
}

/** Strings of any UTF-16 code units: whole characters, and surrogate halves that may or may not pair up. */
const codeUnits = fc.string({
  unit: fc.oneof(
    fc.integer({ min: 0xd800, max: 0xdfff }).map((c) => String.fromCharCode(c)),
    fc.string({ unit: "binary", minLength: 1, maxLength: 1 }),
  ),
});

describe("jsonLimitProblem", () => {
  it("refuses a string or member name exactly when it holds a lone surrogate, saying where", () => {
    fc.assert(
      fc.property(codeUnits, codeUnits, (text, name) => {
        expect(jsonLimitProblem(text) === undefined).toBe(isUnicodeText(text));
        const nested = { ok: [1, { [name]: "x" }] };
        const problem = jsonLimitProblem(nested);
        expect(problem === undefined).toBe(isUnicodeText(name));
        if (problem) expect(problem.message).toMatch(/^has a member name with a lone surrogate/);
      }),
      { numRuns: 2000 },
    );
  });

  it("points at the string that holds one", () => {
    expect(jsonLimitProblem({ a: ["fine \u{1F600}", "bad \udc00"] })).toEqual({
      pointer: "/a/1",
      message: expect.stringMatching(/^is a string with a lone surrogate/) as unknown,
    });
    expect(jsonLimitProblem("\ud83d\ude00")).toBeUndefined();
    expect(jsonLimitProblem("\ude00\ud83d")?.pointer).toBe("");
  });
});

describe("inexactInteger", () => {
  const message = (written: string): string =>
    `is ${written}, which a JSON number here (a 64-bit float) holds only as ${String(Number(written))}`;

  it("finds an integer in digits that a 64-bit float would turn into another, saying where and into what", () => {
    for (const text of ["9007199254740991", "-9007199254740991", "[0,1,-1,123]", "{}", "[]", '"x"', "true"])
      expect(inexactInteger(text), text).toBeUndefined();
    expect(inexactInteger("9007199254740993")).toEqual({ pointer: "", message: message("9007199254740993") });
    expect(inexactInteger(' {"a" : [ 1, {"b~/": -9007199254740995 } ] } ')).toEqual({
      pointer: "/a/1/b~0~1",
      message: message("-9007199254740995"),
    });
    expect(
      inexactInteger('{"s":"12345678901234567890","12345678901234567890":[true,null,"\\"",1e400]}'),
    ).toBeUndefined();
    // Written with a fraction or an exponent, a number says it is a float: the nearest one is taken.
    for (const text of ["9.007199254740993e15", "12345678901234567890.5", "1E+30", "-90071992547409930e-1"])
      expect(inexactInteger(text), text).toBeUndefined();
    // Held exactly (2^53, 2^64, 10^21), or written as the hub writes that float back: taken.
    for (const text of [
      "9007199254740992",
      "18446744073709551616",
      "1000000000000000000000",
      "12345678901234567000",
    ])
      expect(inexactInteger(text), text).toBeUndefined();
    // The first one, in the text's order (not the parsed object's, which puts "1" before "b").
    expect(inexactInteger('{"b":{"x":[99999999999999999]},"1":18446744073709551615}')?.pointer).toBe(
      "/b/x/0",
    );
    expect(inexactInteger('[1,2,{"k\\u00e9\\n":[3,12345678901234567890]}]')?.pointer).toBe("/2/ké\n/1");
  });

  it("looks only at and under a place when given one, skipping those before it", () => {
    const text =
      '{"extensions":{"n":9007199254740993},"variables":{"a":[1,9007199254740995]},"variablesX":9007199254740997}';
    expect(inexactInteger(text)?.pointer).toBe("/extensions/n");
    expect(inexactInteger(text, "/variables")).toEqual({
      pointer: "/variables/a/1",
      message: message("9007199254740995"),
    });
    expect(inexactInteger(text, "/variables/a/0")).toBeUndefined();
    expect(inexactInteger('{"v":9007199254740993}', "/v")?.pointer).toBe("/v");
  });

  it("points at exactly the first integer of any JSON text that a 64-bit float does not give back as written", () => {
    const MAX = BigInt(Number.MAX_SAFE_INTEGER);
    // A value, or a place for an integer literal of any size.
    const { value } = fc.letrec<{ value: unknown }>((tie) => ({
      value: fc.oneof(
        { depthSize: "small" },
        fc.jsonValue({ maxDepth: 1 }),
        fc.bigInt({ min: -(2n ** 80n), max: 2n ** 80n }),
        fc.bigInt({ min: -MAX - 3n, max: MAX + 3n }),
        fc.bigInt({ min: 10n ** 15n, max: 10n ** 18n }),
        fc.bigInt({ min: MAX - 3n, max: MAX + 40n }),
        fc.integer({ min: 53, max: 80 }).map((n) => 2n ** BigInt(n)),
        fc.array(tie("value"), { maxLength: 4 }),
        fc.dictionary(fc.string(), tie("value"), { maxKeys: 4 }),
      ),
    }));
    const text = (v: unknown): string =>
      JSON.stringify(v, (_key, item: unknown) =>
        typeof item === "bigint" ? `\u0000${String(item)}\u0000` : item,
      ).replaceAll(/"\\u0000(-?\d+)\\u0000"/g, "$1");
    /** The first bigint, in text order, that its float does not give back; JSON.stringify's numbers always are. */
    const expected = (v: unknown, pointer: string): string | undefined => {
      if (typeof v === "bigint")
        return BigInt(Number(v)) !== v && String(Number(v)) !== String(v) ? pointer : undefined;
      if (typeof v !== "object" || v === null) return undefined;
      for (const [key, item] of Object.entries(v)) {
        const found = expected(item, `${pointer}/${key.replaceAll("~", "~0").replaceAll("/", "~1")}`);
        if (found !== undefined) return found;
      }
      return undefined;
    };
    fc.assert(
      fc.property(value, (v) => {
        expect(inexactInteger(text(v))?.pointer).toBe(expected(v, ""));
      }),
      { numRuns: 3000 },
    );
  });
});
