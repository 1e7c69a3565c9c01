import { describe, expect, it } from "vitest";
import { deviceSays } from "./errors.js";

describe("deviceSays", () => {
  it("takes what a JSON error answer says, in the order detail, message, error, title", () => {
    const problem = {
      type: "about:blank",
      title: "Conflict",
      status: 409,
      detail: "the boiler is at 77.5 °C",
    };
    expect(deviceSays(JSON.stringify(problem))).toBe("the boiler is at 77.5 °C");
    expect(deviceSays('{"message":"door open","error":"x"}')).toBe("door open");
    expect(deviceSays('{"error":"level 9 is not allowed"}')).toBe("level 9 is not allowed");
    expect(deviceSays('{"title":"Bad Request","detail":"  "}')).toBe("Bad Request");
    expect(deviceSays('"just a string"')).toBe("just a string");
  });

  it("gives other text as it came, on one line and at most 200 characters", () => {
    expect(deviceSays("Cannot GET /p\n\n  (try /q)")).toBe("Cannot GET /p (try /q)");
    expect(deviceSays('{"status":500}')).toBe('{"status":500}');
    expect(deviceSays("[1,2]")).toBe("[1,2]");
    expect(deviceSays("")).toBe("");
    const long = deviceSays("x".repeat(500));
    expect(long).toHaveLength(200);
    expect(long.endsWith("…")).toBe(true);
  });
});
