import { describe, expect, it } from "vitest";
import { boundedRegExp, quickToMatch, withinBudget } from "./time-budget.js";

describe("time budget", () => {
  it("stops a regular expression that backtracks catastrophically: the value does not match", () => {
    expect(boundedRegExp("^(a|a)*$", "u").test(`${"a".repeat(40)}!`)).toBe(false);
    expect(boundedRegExp("(a+)+$", "u").test(`${"a".repeat(60)}!`)).toBe(false);
  });

  it("matches as the regular expression does when it finishes in time", () => {
    const mac = boundedRegExp("^[0-9a-f]{2}(:[0-9a-f]{2}){5}$", "u");
    expect(mac.test("00:1a:2b:3c:4d:5e")).toBe(true);
    expect(mac.test("00:1a:2b")).toBe(false);
    expect(boundedRegExp("^[A-Z]{2}-\\d+$", "u").test("AB-12")).toBe(true);
  });

  it("runs only patterns without quantified groups and with few quantifiers on short texts unbudgeted", () => {
    expect(quickToMatch("^[A-Z]{2}-\\d+$", "AB-12")).toBe(true);
    expect(quickToMatch("(a+)+$", "a")).toBe(false);
    expect(quickToMatch("^(a|a)*$", "a")).toBe(false);
    expect(quickToMatch("^\\d*\\d*\\d*\\d*x$", "1")).toBe(false);
    expect(quickToMatch("^a+$", "a".repeat(257))).toBe(false);
  });

  it("runs again work that was kept off the CPU past its budget (a busy machine), so a value that fits is not refused", () => {
    // Atomics.wait sleeps as a thread waiting for a core does: the budget passes, no CPU is used.
    const cell = new Int32Array(new SharedArrayBuffer(4));
    let calls = 0;
    const result = withinBudget(() => {
      calls++;
      if (calls === 1) Atomics.wait(cell, 0, 0, 300);
      return 42;
    }, 100);
    expect(result).toEqual({ done: true, value: 42 });
    expect(calls).toBe(2);
  });

  it("gives up on work kept off the CPU every time it is tried: the wait stays bounded", () => {
    const cell = new Int32Array(new SharedArrayBuffer(4));
    let calls = 0;
    const result = withinBudget(() => {
      calls++;
      Atomics.wait(cell, 0, 0, 300);
      return 42;
    }, 50);
    expect(result).toEqual({ done: false });
    expect(calls).toBe(3);
  });

  it("passes on what the work returns or throws", () => {
    expect(withinBudget(() => 42, 100)).toEqual({ done: true, value: 42 });
    expect(() =>
      withinBudget(() => {
        throw new RangeError("inner");
      }, 100),
    ).toThrow("inner");
  });
});
