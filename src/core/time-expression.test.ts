import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { parseTimeExpression } from "./time-expression.js";
import { ValidationError } from "./errors.js";

const now = new Date("2026-11-25T12:30:00.000Z");

describe("time expressions", () => {
  it("reads RFC 3339 times with zones and fractions", () => {
    expect(parseTimeExpression("2026-11-24T14:02:00Z", now).toISOString()).toBe("2026-11-24T14:02:00.000Z");
    expect(parseTimeExpression("2026-11-24T14:02:00.123+01:00", now).toISOString()).toBe(
      "2026-11-24T13:02:00.123Z",
    );
  });

  it("reads relative times against the given now", () => {
    expect(parseTimeExpression("-15m", now).toISOString()).toBe("2026-11-25T12:15:00.000Z");
    expect(parseTimeExpression("-2h", now).toISOString()).toBe("2026-11-25T10:30:00.000Z");
    expect(parseTimeExpression("+30s", now).toISOString()).toBe("2026-11-25T12:30:30.000Z");
    expect(parseTimeExpression("-1d", now).toISOString()).toBe("2026-11-24T12:30:00.000Z");
    expect(parseTimeExpression("now", now).getTime()).toBe(now.getTime());
  });

  it("reads local calendar forms in the process's time zone", () => {
    const expected = new Date(now.getTime());
    expected.setDate(expected.getDate() - 1);
    expected.setHours(14, 2, 0, 0);
    expect(parseTimeExpression("yesterday 14:02", now).getTime()).toBe(expected.getTime());
    const today = new Date(now.getTime());
    today.setHours(0, 0, 0, 0);
    expect(parseTimeExpression("today", now).getTime()).toBe(today.getTime());
  });

  it("refuses what it does not understand with a ValidationError", () => {
    for (const bad of ["", "tomorrow-ish", "25:00", "-15 parsecs", "2026-13-45T99:00Z", "yesterday 14:61"]) {
      expect(() => parseTimeExpression(bad, now, "/query/at"), bad).toThrow(ValidationError);
    }
  });

  it("round-trips every ISO string of a valid date", () => {
    fc.assert(
      fc.property(
        fc.date({ min: new Date("1970-01-01"), max: new Date("2200-01-01"), noInvalidDate: true }),
        (d) => {
          expect(parseTimeExpression(d.toISOString(), now).getTime()).toBe(d.getTime());
        },
      ),
    );
  });
});
