import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { hrefTopic, isTopicFilter, topicMatches } from "./mqtt-topic.js";

describe("topicMatches (MQTT 5 §4.7)", () => {
  it.each([
    ["a/b", "a/b", true],
    ["a/+", "a/b", true],
    ["a/+", "a/b/c", false],
    ["a/#", "a", true],
    ["a/#", "a/b/c", true],
    ["#", "a/b", true],
    ["+/+", "/b", true],
    ["+", "/b", false],
    ["a/b", "a/b/c", false],
    ["#", "$SYS/x", false],
    ["+/x", "$SYS/x", false],
    ["$SYS/#", "$SYS/x", true],
  ])("matches filter %s against topic %s: %s", (filter, topic, expected) => {
    expect(topicMatches(filter, topic)).toBe(expected);
  });
  it("matches any topic against itself, and against the filter made by replacing levels with +", () => {
    const level = fc.stringMatching(/^[a-z0-9 ]{0,5}$/);
    fc.assert(
      fc.property(
        fc.array(level, { minLength: 1, maxLength: 6 }).filter((l) => l.join("/") !== ""),
        fc.array(fc.boolean()),
        (levels, wild) => {
          const topic = levels.join("/");
          expect(topicMatches(topic, topic)).toBe(true);
          const filter = levels.map((l, i) => (wild[i] === true ? "+" : l)).join("/");
          expect(isTopicFilter(filter)).toBe(true);
          expect(topicMatches(filter, topic)).toBe(true);
          expect(topicMatches(`${filter}/#`, topic)).toBe(true);
          expect(topicMatches(`${filter}/+`, topic)).toBe(false);
        },
      ),
    );
  });
  it("takes the topic of an mqtt:// href from its path", () => {
    expect(hrefTopic("mqtt://broker:1883/lamp/brightness")).toBe("lamp/brightness");
    expect(hrefTopic("mqtt://broker/a%20b")).toBe("a b");
    expect(hrefTopic("mqtt://broker")).toBeUndefined();
  });
});
