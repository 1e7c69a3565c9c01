// Subject tokens for Thing ids: any text gives one valid NATS token, distinct texts distinct
// tokens, and a short one gives its text back.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { parseNatsServers, subjectToken } from "./subject.js";

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

describe("parseNatsServers' refusals", () => {
  /** The message parseNatsServers refuses `text` with. */
  function refusal(text: string): string {
    try {
      parseNatsServers("--bus", text);
    } catch (error) {
      return (error as Error).message;
    }
    throw new Error(`${text} was taken`);
  }

  it.each([
    // Does not parse: the port is out of range.
    ["nats://hub:s3cret@127.0.0.1:99999", "must be", "nats://hub:***@127.0.0.1:99999"],
    ["mqtt://hub:s3cret@127.0.0.1:4222", "is not NATS", "mqtt://hub:***@127.0.0.1:4222"],
    ["nats://hub:s3cret@127.0.0.1:4222/x", "nothing after the port", "nats://hub:***@127.0.0.1:4222/x"],
    // The second of two servers.
    [
      "nats://127.0.0.1:4222,tls://hub:s3cret@127.0.0.1:4223?x",
      "nothing after the port",
      "tls://hub:***@127.0.0.1:4223?x",
    ],
  ])("of %s name the setting, the problem and the URL without its password", (given, problem, shown) => {
    const message = refusal(given);
    expect(message).not.toContain("s3cret");
    expect(message).toContain("--bus");
    expect(message).toContain(problem);
    expect(message).toContain(shown);
  });

  it("still take servers with credentials, as given", () => {
    expect(parseNatsServers("--bus", "nats://hub:s3cret@127.0.0.1:4222")).toEqual([
      "nats://hub:s3cret@127.0.0.1:4222",
    ]);
  });
});
