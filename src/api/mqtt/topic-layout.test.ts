// The gateway's topic layout: any Thing id and affordance name survive a trip through one topic
// level, encoded topics hold no MQTT separators or wildcards, and parsing inverts building.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { ValidationError } from "../../core/index.js";
import { TopicLayout, checkTopicPrefix, decodeTopicLevel, encodeTopicLevel } from "./topic-layout.js";

const text = fc.string({ unit: "grapheme", minLength: 1, maxLength: 40 });
const idLike = fc.oneof(
  text,
  fc.constantFrom("urn:dev:ops:lamp-1", "https://example.com/things/1?x=%41#y", "urn:a+b#c/d%2F"),
);

describe("encodeTopicLevel", () => {
  it("round-trips any string and leaves no /, +, # or NUL", () => {
    fc.assert(
      fc.property(fc.string({ unit: "grapheme" }), (value) => {
        const level = encodeTopicLevel(value);
        // eslint-disable-next-line no-control-regex
        expect(level).not.toMatch(/[/+#\u0000]/);
        expect(decodeTopicLevel(level)).toBe(value);
      }),
    );
  });

  it("keeps ids readable: colons and letters stay as they are", () => {
    expect(encodeTopicLevel("urn:dev:ops:lamp-1")).toBe("urn:dev:ops:lamp-1");
    expect(encodeTopicLevel("https://example.com/a")).toBe("https:%2F%2Fexample.com%2Fa");
    expect(encodeTopicLevel("50%")).toBe("50%25");
  });

  it("accepts a level a device %-encoded more than needed, and refuses a malformed escape", () => {
    expect(decodeTopicLevel("urn%3Aa")).toBe("urn:a");
    expect(decodeTopicLevel("bad%zz")).toBeUndefined();
  });
});

describe("TopicLayout", () => {
  const layout = new TopicLayout("hyperthings");

  it("parses what it builds", () => {
    fc.assert(
      fc.property(idLike, text, (thing, name) => {
        expect(layout.parse(layout.property(thing, name))).toEqual({ kind: "property", thing, name });
        expect(layout.parse(layout.event(thing, name))).toEqual({ kind: "event", thing, name });
        expect(layout.parse(layout.setResult(thing, name))).toEqual({ kind: "set-result", thing, name });
        expect(layout.parse(layout.set(thing, name))).toBeUndefined();
        expect(layout.parse(layout.errors(thing))).toBeUndefined();
        expect(layout.isThingTopic(layout.property(thing, name), thing)).toBe(true);
      }),
    );
  });

  it("names a malformed level rather than guessing", () => {
    expect(layout.parse("hyperthings/things/bad%zz/properties/on")).toMatchObject({
      kind: "malformed",
      rawThing: "bad%zz",
    });
    expect(layout.parse("elsewhere/things/a/properties/b")).toBeUndefined();
  });

  it("builds change topics with the kind and the encoded id", () => {
    expect(layout.change("reported", "https://x.example/t/1")).toBe(
      "hyperthings/changes/reported/https:%2F%2Fx.example%2Ft%2F1",
    );
  });

  it("refuses prefixes with wildcards, empty levels or a leading $", () => {
    for (const bad of ["", "a/+/b", "#", "a//b", "/a", "a/", "$SYS"]) {
      expect(() => checkTopicPrefix(bad)).toThrow(ValidationError);
    }
    expect(checkTopicPrefix("test/run-1/hyperthings")).toBe("test/run-1/hyperthings");
  });
});
