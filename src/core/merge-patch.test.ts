import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { applyMergePatch, createMergePatch } from "./merge-patch.js";

describe("JSON merge patch (RFC 7396)", () => {
  it("applies the examples of RFC 7396 appendix A", () => {
    expect(applyMergePatch({ a: "b" }, { a: "c" })).toEqual({ a: "c" });
    expect(applyMergePatch({ a: "b" }, { b: "c" })).toEqual({ a: "b", b: "c" });
    expect(applyMergePatch({ a: "b" }, { a: null })).toEqual({});
    expect(applyMergePatch({ a: [{ b: "c" }] }, { a: [1] })).toEqual({ a: [1] });
    expect(applyMergePatch({ a: { b: "c" } }, { a: { b: "d", c: null } })).toEqual({ a: { b: "d" } });
    expect(applyMergePatch(["a", "b"], ["c", "d"])).toEqual(["c", "d"]);
    expect(applyMergePatch({ a: "foo" }, "bar")).toEqual("bar");
    expect(applyMergePatch({ e: null }, { a: 1 })).toEqual({ e: null, a: 1 });
  });

  it("does not modify its inputs", () => {
    const target = { a: { b: 1 } };
    applyMergePatch(target, { a: { b: 2 } });
    expect(target).toEqual({ a: { b: 1 } });
  });

  it("creates a patch that turns one null-free document into another", () => {
    const json = fc.letrec((tie) => ({
      value: fc.oneof(
        { depthSize: "small" },
        fc.string(),
        fc.integer(),
        fc.boolean(),
        fc.array(tie("value"), { maxLength: 3 }),
        fc.dictionary(fc.string({ maxLength: 3 }), tie("value"), { maxKeys: 4 }),
      ),
    })).value;
    fc.assert(
      fc.property(json, json, (a, b) => {
        const patch = createMergePatch(a, b);
        expect(patch === undefined ? a : applyMergePatch(a, patch)).toEqual(b);
      }),
    );
  });

  it("creates no patch for equal documents", () => {
    expect(createMergePatch({ a: [1, { b: 2 }] }, { a: [1, { b: 2 }] })).toBeUndefined();
  });

  it("takes a member named __proto__ or constructor as a member, as JSON.parse reads it", () => {
    const parse = (text: string) => JSON.parse(text) as unknown;
    const patched = applyMergePatch(parse('{"a":1}'), parse('{"__proto__":{"x":1},"b":{"constructor":2}}'));
    expect(JSON.stringify(patched)).toBe('{"a":1,"__proto__":{"x":1},"b":{"constructor":2}}');
    expect(Object.getPrototypeOf(patched)).toBe(Object.prototype);
    expect((patched as { x?: unknown }).x).toBeUndefined();
    // Removed, and patched inside.
    expect(JSON.stringify(applyMergePatch(patched, parse('{"__proto__":null}')))).toBe(
      '{"a":1,"b":{"constructor":2}}',
    );
    expect(JSON.stringify(applyMergePatch(patched, parse('{"__proto__":{"y":2}}')))).toBe(
      '{"a":1,"__proto__":{"x":1,"y":2},"b":{"constructor":2}}',
    );
    // The patch between two documents says what an inherited name would hide.
    expect(JSON.stringify(createMergePatch(parse('{"constructor":1,"toString":2}'), parse("{}")))).toBe(
      '{"constructor":null,"toString":null}',
    );
    expect(JSON.stringify(createMergePatch(parse("{}"), parse('{"__proto__":{"x":1}}')))).toBe(
      '{"__proto__":{"x":1}}',
    );
    expect(createMergePatch(parse('{"constructor":1}'), parse('{"x":1}'))).toEqual({
      constructor: null,
      x: 1,
    });
  });
});
