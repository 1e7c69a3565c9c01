// jsonLimitProblem: what JSON the hub takes, held to Unicode itself for strings.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { jsonLimitProblem } from "./json-limits.js";

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
