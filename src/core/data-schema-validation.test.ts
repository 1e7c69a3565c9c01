import { describe, expect, it } from "vitest";
import { compileDataSchema, patternValuesHeld } from "./data-schema-validation.js";

describe("compileDataSchema", () => {
  it("checks each schema by its own pattern, and holds a bounded number of patterns however many it compiled", () => {
    // More distinct patterns than one Ajv instance is let compile (MAX_COMPILED, 2,000).
    const count = 4_500;
    const checks = [];
    let most = 0;
    for (let i = 0; i < count; i++) {
      checks.push(compileDataSchema({ type: "string", pattern: `^p${i}$` }));
      most = Math.max(most, patternValuesHeld());
    }
    // Ajv's own store of patterns was read (the test would prove nothing otherwise), and bounded.
    expect(most).toBeGreaterThan(1_000);
    expect(most).toBeLessThanOrEqual(2_000);
    // Checks compiled by an earlier instance, and by the latest, each keep their own pattern.
    for (const i of [0, 1_999, 2_000, 3_333, count - 1]) {
      expect(checks[i]?.(`p${i}`)).toEqual([]);
      const problems = checks[i]?.(`p${i + 1}`) ?? [];
      expect(problems.map((p) => p.pointer)).toEqual([""]);
      expect(problems[0]?.message).toContain(`^p${i}$`);
    }
  });
});
