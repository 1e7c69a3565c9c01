import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  canonicalCauseJson,
  canonicalChangeJson,
  canonicalChangeText,
  canonicalJson,
  contentHash,
  plainCauseText,
  sha256Hex,
} from "./canonical-json.js";

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

  // Any member may be missing, undefined, or of any JSON shape, and extra members may appear: the
  // fast path must agree with the generic one on all of them, byte for byte.
  const member = fc.oneof(fc.constant(undefined), fc.jsonValue(), fc.string(), fc.double({ noNaN: true }));
  const cause = fc.oneof(
    fc.record(
      {
        actor: member,
        via: member,
        release: member,
        rule: member,
        correlation: member,
      },
      { requiredKeys: [] },
    ),
    fc.dictionary(fc.string(), fc.jsonValue()),
    fc.jsonValue(),
  );
  const change = fc.record(
    {
      seq: fc.oneof(fc.nat(), member),
      hlc: fc.oneof(fc.string(), member),
      at: member,
      thing: fc.oneof(fc.string(), member),
      affordance: member,
      kind: fc.oneof(fc.constantFrom("reported", "described", "emitted"), member),
      value: member,
      previous: member,
      cause,
      leaf: member,
    },
    { requiredKeys: [] },
  );
  const withExtra = fc.tuple(change, fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 2 }));

  function generic(value: object): string | Error {
    try {
      const { leaf: _leaf, ...content } = value as Record<string, unknown>;
      return canonicalJson(content);
    } catch (error) {
      return error as Error;
    }
  }
  function fast(value: object): string | Error {
    try {
      return canonicalChangeJson(value);
    } catch (error) {
      return error as Error;
    }
  }

  it("writes a Change exactly as canonicalJson writes it without its leaf (property)", () => {
    fc.assert(
      fc.property(withExtra, fc.boolean(), ([c, extra], addExtra) => {
        const value: object = addExtra ? { ...extra, ...c } : c;
        const expected = generic(value);
        const actual = fast(value);
        if (expected instanceof Error) {
          expect(actual).toBeInstanceOf(TypeError);
          expect(expected).toBeInstanceOf(TypeError);
        } else expect(actual).toBe(expected);
      }),
      { numRuns: 2000 },
    );
  });

  it("writes a typical Change's members sorted, without leaf, and refuses what JSON cannot hold", () => {
    const typical = {
      seq: 7,
      hlc: "019ab2c3d4e5-00000002-urn:x",
      thing: "urn:t",
      kind: "reported",
      affordance: "temperature",
      value: { b: 1, a: [2, -0] },
      cause: { via: "http", actor: "admin" },
      leaf: "ab",
    };
    expect(canonicalChangeJson(typical)).toBe(
      '{"affordance":"temperature","cause":{"actor":"admin","via":"http"},"hlc":"019ab2c3d4e5-00000002-urn:x",' +
        '"kind":"reported","seq":7,"thing":"urn:t","value":{"a":[2,0],"b":1}}',
    );
    expect(() => canonicalChangeJson({ ...typical, value: Number.POSITIVE_INFINITY })).toThrow(TypeError);
    expect(() => canonicalChangeJson({ ...typical, cause: { actor: Number.NaN } })).toThrow(TypeError);
  });

  // The store's path: the same Change from its members, with the JSON values as canonical texts.
  const recorded = fc.record(
    {
      seq: fc.nat(),
      hlc: fc.oneof(fc.string(), fc.string({ unit: "binary" }), fc.jsonValue()),
      at: fc.oneof(member, fc.string({ unit: "binary" })),
      thing: fc.oneof(fc.string(), fc.string({ unit: "binary" }), fc.jsonValue()),
      affordance: fc.oneof(member, fc.string({ unit: "binary" })),
      kind: fc.oneof(fc.constantFrom("reported", "described"), fc.string(), fc.string({ unit: "binary" })),
      value: member,
      previous: member,
      cause: fc.oneof(cause, fc.constant({ actor: "admin", via: "http" })),
    },
    { requiredKeys: ["seq", "hlc", "thing", "kind", "cause"] },
  );

  it("canonicalChangeText, from the members' texts, writes what canonicalChangeJson writes (property)", () => {
    const textOf = (v: unknown) => (v === undefined ? undefined : canonicalJson(v));
    fc.assert(
      fc.property(recorded, (c) => {
        const expected = generic(c);
        if (expected instanceof Error) return;
        const actual = canonicalChangeText({
          seq: c.seq,
          hlc: c.hlc as string,
          at: c.at as string | undefined,
          thing: c.thing as string,
          affordance: c.affordance as string | undefined,
          kind: c.kind,
          value: textOf(c.value),
          previous: textOf(c.previous),
          cause: canonicalJson(c.cause),
        });
        expect(actual).toBe(expected);
      }),
      { numRuns: 2000 },
    );
  });

  it("canonicalChangeText writes strings that need escapes as JSON.stringify does, plain ones between quotes", () => {
    const strings = [
      'a"b',
      "a\\b",
      "tab\there",
      "nul\u0000",
      "\u001f",
      "\u007f",
      "lone \ud800",
      "pair 😀",
      "ü€ \u2028",
      "",
    ];
    for (const s of strings) {
      const c = { seq: 1, hlc: s, thing: s, kind: s, affordance: s, at: s, cause: "{}" };
      expect(canonicalChangeText(c)).toBe(canonicalChangeJson({ ...c, cause: {} }));
      expect(canonicalChangeText(c)).toContain(`"thing":${JSON.stringify(s)}`);
    }
  });

  it("plainCauseText, where it answers, is JSON.stringify's text and the canonical one (property)", () => {
    let answered = 0;
    fc.assert(
      fc.property(cause, (c) => {
        const text = plainCauseText(c);
        if (text === undefined) return;
        answered++;
        expect(text).toBe(JSON.stringify(c));
        expect(text).toBe(canonicalJson(c));
        expect(text).toBe(canonicalCauseJson(c));
      }),
      { numRuns: 2000 },
    );
    // The generator reaches the plain path, not only the others.
    expect(answered).toBeGreaterThan(20);
  });

  it("plainCauseText answers only plain causes: known members, in order, strings without escapes", () => {
    expect(plainCauseText({ actor: "ops", via: "http" })).toBe('{"actor":"ops","via":"http"}');
    expect(plainCauseText({})).toBe("{}");
    expect(plainCauseText({ via: "http", actor: "ops" })).toBeUndefined(); // out of order
    expect(plainCauseText({ actor: "ops", extra: "x" })).toBeUndefined(); // unknown member
    expect(plainCauseText({ actor: 'a"b' })).toBeUndefined(); // needs an escape
    expect(plainCauseText({ actor: "ops", rule: undefined })).toBeUndefined();
    expect(plainCauseText({ actor: 7 })).toBeUndefined();
    expect(plainCauseText(Object.assign(Object.create(null), { actor: "ops" }))).toBeUndefined();
    expect(plainCauseText([])).toBeUndefined();
    expect(plainCauseText(null)).toBeUndefined();
    expect(plainCauseText("ops")).toBeUndefined();
  });

  it("canonicalCauseJson writes any cause as canonicalJson does (property)", () => {
    fc.assert(
      fc.property(cause, (c) => {
        let expected: string | Error;
        try {
          expected = canonicalJson(c);
        } catch (error) {
          expected = error as Error;
        }
        if (expected instanceof Error) expect(() => canonicalCauseJson(c)).toThrow(TypeError);
        else expect(canonicalCauseJson(c)).toBe(expected);
      }),
      { numRuns: 2000 },
    );
  });
});
