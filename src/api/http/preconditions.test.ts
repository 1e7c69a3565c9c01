import { describe, expect, it } from "vitest";
import { httpDate, parseHttpDate } from "./preconditions.js";

describe("parseHttpDate", () => {
  const when = Date.parse("1994-11-06T08:49:37Z");

  it("reads the three forms RFC 9110 §5.6.7 names, and what httpDate writes", () => {
    expect(parseHttpDate("Sun, 06 Nov 1994 08:49:37 GMT")).toBe(when);
    expect(parseHttpDate("Sunday, 06-Nov-94 08:49:37 GMT")).toBe(when);
    expect(parseHttpDate("Sun Nov  6 08:49:37 1994")).toBe(when);
    expect(httpDate(when + 999)).toBe("Sun, 06 Nov 1994 08:49:37 GMT");
  });

  it("takes nothing else: the header is then ignored", () => {
    for (const text of [
      "",
      "1994-11-06T08:49:37Z",
      "yesterday",
      "Sun, 06 Nov 1994 08:49:37 +0000",
      "Sun, 06 Nov 1994 08:49:37 GMT, Sun, 06 Nov 1994 08:49:37 GMT",
      "Sun, 31 Feb 1994 08:49:37 GMT x",
    ]) {
      expect(parseHttpDate(text), text).toBeUndefined();
    }
    expect(parseHttpDate(undefined)).toBeUndefined();
    expect(parseHttpDate(["Sun, 06 Nov 1994 08:49:37 GMT"])).toBeUndefined();
  });
});
