import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { canonicalJson, contentHash, sha256Hex } from "./canonical-json.js";

describe("canonical JSON (RFC 8785)", () => {
  it("sorts members by UTF-16 code units and writes no whitespace (RFC 8785 §3.2.3 example)", () => {
    const input = {
      "\u20ac": "Euro Sign",
      "\r": "Carriage Return",
      "\ufb33": "Hebrew Letter Dalet With Dagesh",
      "1": "One",
      "\ud83d\ude00": "Emoji: Grinning Face",
      "\u0080": "Control",
      "\u00f6": "Latin Small Letter O With Diaeresis",
    };
    // Object.keys would put the integer-like "1" first: read the order off the text instead.
    const keys = [...canonicalJson(input).matchAll(/"((?:[^"\\]|\\.)*)":/g)].map(
      (m) => JSON.parse(`"${m[1]}"`) as string,
    );
    expect(keys).toEqual(["\r", "1", "\u0080", "\u00f6", "\u20ac", "\ud83d\ude00", "\ufb33"]);
  });

  it("writes numbers in ECMAScript form (RFC 8785 §3.2.2.3)", () => {
    expect(canonicalJson([1e21, 1e-7, -0, 0.000001, 123456789012345680000, 4.5])).toBe(
      "[1e+21,1e-7,0,0.000001,123456789012345680000,4.5]",
    );
  });

  it("leaves out undefined members and refuses values JSON cannot hold", () => {
    expect(canonicalJson({ b: 1, a: undefined })).toBe('{"b":1}');
    expect(() => canonicalJson(Number.NaN)).toThrow(TypeError);
    expect(() => canonicalJson({ x: Number.POSITIVE_INFINITY })).toThrow(TypeError);
    expect(() => canonicalJson(() => 1)).toThrow(TypeError);
  });

  it("round-trips every JSON value and does not depend on member order", () => {
    fc.assert(
      fc.property(fc.jsonValue(), (value) => {
        const text = canonicalJson(value);
        const parsed: unknown = JSON.parse(text);
        expect(parsed).toEqual(JSON.parse(JSON.stringify(value)));
        expect(canonicalJson(parsed)).toBe(text);
        if (parsed !== null && typeof parsed === "object" && !Array.isArray(parsed)) {
          const reversed = Object.fromEntries(Object.entries(parsed).reverse());
          expect(canonicalJson(reversed)).toBe(text);
        }
      }),
    );
  });

  it("hashes the canonical text with SHA-256", () => {
    expect(sha256Hex("")).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    expect(contentHash({ b: 2, a: 1 })).toBe(`sha256:${sha256Hex('{"a":1,"b":2}')}`);
  });
});
