// Thing ids as RFC 3987 IRIs: what is refused, and why.
import { describe, expect, it } from "vitest";
import { iriProblem } from "./thing-id.js";

describe("iriProblem", () => {
  it("takes ids of every usual form, an IPv6 host in brackets among them", () => {
    for (const id of [
      "urn:example:lamp",
      "urn:uuid:0b1f3a52-2c53-4a0e-9d63-54d1f4a8d0a1",
      "https://example.com/things/lamp?x=1#main",
      "http://[::1]:8080/lamp",
      "http://user@[fe80::1%25eth0]/x",
      "did:example:123456789abcdefghi",
      "urn:example:λάμπα",
    ]) {
      expect(iriProblem(id), id).toBeUndefined();
    }
  });

  it("refuses [ and ] anywhere but around an IPv6 host", () => {
    for (const id of [
      "urn:ex:[x]",
      "urn:ex:a]",
      "http://example.com/[x]",
      "http://[::1]/a[b]",
      "urn:[::1]",
    ]) {
      expect(iriProblem(id), id).toMatch(/contains \[ or \]/);
    }
  });

  it("says what is wrong with other malformed ids", () => {
    expect(iriProblem("")).toBe("is empty");
    expect(iriProblem("lamp")).toMatch(/has no scheme/);
    expect(iriProblem("urn:ex:a b")).toMatch(/contains a space/);
    expect(iriProblem("urn:ex:100%")).toMatch(/% that does not start/);
    expect(iriProblem("urn:")).toBe("has nothing after its scheme");
  });
});
