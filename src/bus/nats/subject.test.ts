// Subject tokens for Thing ids: any text gives one valid NATS token, distinct texts distinct
// tokens, and a short one gives its text back.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { subjectToken } from "./subject.js";

describe("subjectToken", () => {
  it("is one NATS subject token for any text: no dot, wildcard or white space, at most 200 characters", () => {
    fc.assert(
      fc.property(
        fc.oneof(
          fc.string({ unit: "binary", maxLength: 120 }),
          fc.string({ unit: "grapheme-ascii", maxLength: 300 }),
        ),
        (text) => /^[A-Za-z0-9_%~-]{1,200}$/.test(subjectToken(text)),
      ),
      { numRuns: 40 },
    );
  });

  it("gives the text back through decodeURIComponent, unless it is a hash (~)", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme", maxLength: 60 }), (text) => {
        const token = subjectToken(text);
        if (!token.startsWith("~")) expect(decodeURIComponent(token)).toBe(text);
      }),
    );
  });

  it("tells different texts apart", () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 300 }), fc.string({ maxLength: 300 }), (a, b) => {
        fc.pre(a !== b);
        expect(subjectToken(a)).not.toBe(subjectToken(b));
      }),
    );
  });

  it("encodes what a subject cannot hold, and hashes what is too long", () => {
    expect(subjectToken("urn:dev:lamp.1*x>y z")).toBe("urn%3Adev%3Alamp%2E1%2Ax%3Ey%20z");
    expect(subjectToken("")).toMatch(/^~[0-9a-f]{64}$/);
    expect(subjectToken("urn:x:\uD800")).toMatch(/^~[0-9a-f]{64}$/);
    expect(subjectToken(`urn:x:${"a".repeat(300)}`)).toMatch(/^~[0-9a-f]{64}$/);
  });
});
