import { describe, expect, it } from "vitest";
import { MAX_INSTANCE, instanceOf } from "./problem.js";

describe("instanceOf", () => {
  it("is the target as sent when it is at most MAX_INSTANCE characters", () => {
    const target = `/changes?kind=${"a".repeat(MAX_INSTANCE - 14)}`;
    expect(target).toHaveLength(MAX_INSTANCE);
    expect(instanceOf(target)).toBe(target);
    expect(instanceOf("/things?limit=1")).toBe("/things?limit=1");
  });

  it("is the path alone when the query makes it longer", () => {
    expect(instanceOf(`/changes?kind=${"a".repeat(MAX_INSTANCE)}`)).toBe("/changes");
    expect(instanceOf(`/changes?${"?".repeat(MAX_INSTANCE)}`)).toBe("/changes");
  });

  it("cuts a longer path to MAX_INSTANCE characters, never inside a %-escape nor a character's UTF-8 bytes", () => {
    const plain = `/${"a".repeat(5000)}?q=1`;
    expect(instanceOf(plain)).toBe(plain.slice(0, MAX_INSTANCE));
    // An escape that ends at the cut is kept; "%4" or "%" at the cut is left out whole.
    const at = (a: number) => `/${"a".repeat(a)}%41${"b".repeat(100)}`;
    expect(instanceOf(at(MAX_INSTANCE - 4))).toBe(`/${"a".repeat(MAX_INSTANCE - 4)}%41`);
    expect(instanceOf(at(MAX_INSTANCE - 3))).toBe(`/${"a".repeat(MAX_INSTANCE - 3)}`);
    expect(instanceOf(at(MAX_INSTANCE - 2))).toBe(`/${"a".repeat(MAX_INSTANCE - 2)}`);
    expect(instanceOf(at(MAX_INSTANCE - 1))).toBe(`/${"a".repeat(MAX_INSTANCE - 1)}`);
    // é (%C3%A9) and 😀 (%F0%9F%98%80) whole or not at all, wherever the cut falls.
    for (const char of ["%C3%A9", "%F0%9F%98%80"]) {
      for (let pad = 0; pad < char.length; pad++) {
        const path = `/${"a".repeat(pad)}${char.repeat(MAX_INSTANCE)}`;
        const cut = instanceOf(path);
        expect(cut.length).toBeLessThanOrEqual(MAX_INSTANCE);
        expect(cut.length).toBeGreaterThan(MAX_INSTANCE - char.length);
        expect(() => decodeURIComponent(cut)).not.toThrow();
        expect(path.startsWith(cut)).toBe(true);
      }
    }
  });
});
