// Announcer credentials and their topic filters: a subscription `filterWithin` lets through never
// matches a topic outside what it was let within, and a password opens only its own user name.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { topicMatches } from "./broker-link.js";
import {
  announcerCredentials,
  announcerOf,
  deviceCredentials,
  filterWithin,
  isDevicePassword,
} from "./device-credentials.js";

const level = fc.constantFrom("a", "b", "homie", "5", "x");
const topic = fc.array(level, { minLength: 1, maxLength: 5 }).map((levels) => levels.join("/"));
const filter = fc
  .tuple(fc.array(fc.oneof(level, fc.constant("+")), { minLength: 1, maxLength: 5 }), fc.boolean())
  .map(([levels, rest]) => [...levels, ...(rest ? ["#"] : [])].join("/"));

describe("filterWithin", () => {
  it("lets a filter through only when every topic it matches, the allowed filter matches", () => {
    fc.assert(
      fc.property(filter, filter, topic, (given, allowed, t) => {
        if (filterWithin(given, allowed) && topicMatches(given, t))
          expect(topicMatches(allowed, t)).toBe(true);
      }),
      { numRuns: 5_000 },
    );
  });

  it("takes a device's own filters and refuses wider ones", () => {
    expect(filterWithin("homie/5/boiler/#", "homie/5/boiler/#")).toBe(true);
    expect(filterWithin("homie/5/boiler/heater/+/set", "homie/5/boiler/#")).toBe(true);
    expect(filterWithin("homie/5/boiler", "homie/5/boiler/#")).toBe(true);
    expect(filterWithin("homie/5/+/heater", "homie/5/boiler/#")).toBe(false);
    expect(filterWithin("homie/#", "homie/5/boiler/#")).toBe(false);
    expect(filterWithin("ha/+/node/+/config", "ha/+/node/+/config")).toBe(true);
    expect(filterWithin("ha/#", "ha/+/node/+/config")).toBe(false);
    expect(filterWithin("ha/sensor/node/t/config/x", "ha/+/node/+/config")).toBe(false);
  });
});

describe("announcer credentials", () => {
  it("open their own user name, under the token they were derived from, and no other", () => {
    const homie = announcerCredentials("token", { convention: "homie", name: "boiler" });
    expect(announcerOf("token", homie.username, homie.password)).toEqual({
      convention: "homie",
      name: "boiler",
    });
    expect(announcerOf("other-token", homie.username, homie.password)).toBeUndefined();
    expect(announcerOf("token", "homie:boiler-2", homie.password)).toBeUndefined();
    expect(announcerOf("token", "homeassistant:boiler", homie.password)).toBeUndefined();
    expect(announcerOf("token", "boiler", homie.password)).toBeUndefined();
  });
});

describe("credentials of a generation", () => {
  it("open only their own generation: one issued after a revocation is another password", () => {
    const first = deviceCredentials("token", "urn:dev:lamp");
    const second = deviceCredentials("token", "urn:dev:lamp", 1);
    expect(second.password).not.toBe(first.password);
    expect(isDevicePassword("token", "urn:dev:lamp", first.password, 0)).toBe(true);
    expect(isDevicePassword("token", "urn:dev:lamp", first.password, 1)).toBe(false);
    expect(isDevicePassword("token", "urn:dev:lamp", second.password, 1)).toBe(true);
    const homie = announcerCredentials("token", { convention: "homie", name: "boiler" }, 2);
    expect(announcerOf("token", homie.username, homie.password, 2)).toBeDefined();
    expect(announcerOf("token", homie.username, homie.password, 0)).toBeUndefined();
  });
});
