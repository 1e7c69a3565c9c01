import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ECHO_LIMIT, echoed, quoted } from "./echo.js";

describe("quoted and echoed", () => {
  it("give a value within the limit whole", () => {
    expect(quoted("abc")).toBe('"abc"');
    expect(quoted('a"b\n')).toBe('"a\\"b\\n"');
    expect(echoed("urn:x")).toBe("urn:x");
    const edge = "a".repeat(ECHO_LIMIT);
    expect(quoted(edge)).toBe(`"${edge}"`);
    // 80 characters, 160 UTF-16 units: still whole.
    const emoji = "😀".repeat(ECHO_LIMIT);
    expect(echoed(emoji)).toBe(emoji);
  });

  it("give a longer one's first characters, an ellipsis and its length", () => {
    const long = "a".repeat(5000);
    expect(quoted(long)).toBe(`"${"a".repeat(ECHO_LIMIT)}…" (5,000 characters)`);
    expect(echoed(long)).toBe(`${"a".repeat(ECHO_LIMIT)}… (5,000 characters)`);
    expect(echoed("😀".repeat(81))).toBe(`${"😀".repeat(80)}… (81 characters)`);
    expect(quoted("abcdef", 3)).toBe('"abc…" (6 characters)');
  });

  it("never quote more than the limit of any text, nor cut a character in two", () => {
    fc.assert(
      fc.property(
        fc.string({ unit: "grapheme", maxLength: 300 }),
        fc.integer({ min: 1, max: 100 }),
        (text, limit) => {
          const out = echoed(text, limit);
          const points = [...text];
          if (points.length <= limit) expect(out).toBe(text);
          else
            expect(out).toBe(
              `${points.slice(0, limit).join("")}… (${points.length.toLocaleString("en-US")} characters)`,
            );
        },
      ),
    );
  });
});
