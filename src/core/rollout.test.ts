import { describe, expect, it } from "vitest";
import type { Plan } from "./release.js";
import { blockingItems, stepsFromPlan } from "./rollout.js";

const plan: Plan = {
  release: "sha256:r2",
  name: "evening",
  problems: [],
  summary: { things: 3, change: 3, inPlace: 1, cannot: 1 },
  things: [
    {
      thing: "urn:a",
      reachable: true,
      items: [
        { kind: "property", name: "brightness", observed: 10, desired: 40, status: "change", step: 0 },
        { kind: "property", name: "mode", observed: "eco", desired: "eco", status: "in-place", step: 0 },
        { kind: "action", name: "identify", desired: 2, status: "change", step: 0 },
      ],
    },
    {
      thing: "urn:b",
      reachable: false,
      items: [
        {
          kind: "property",
          name: "brightness",
          desired: 40,
          status: "cannot",
          reason: "unreachable",
          step: 1,
        },
      ],
    },
    {
      thing: "urn:c",
      reachable: true,
      items: [
        {
          kind: "link",
          name: "partOf urn:rack",
          desired: { rel: "partOf", href: "urn:rack" },
          status: "change",
          step: 2,
        },
      ],
    },
  ],
};

describe("stepsFromPlan", () => {
  it("makes one step per Thing in plan order, with every desired property value (in place too)", () => {
    const steps = stepsFromPlan("urn:uuid:r", plan, () => undefined, "2026-01-01T00:00:00.000Z");
    expect(steps.map((s) => [s.thing, s.position, s.status])).toEqual([
      ["urn:a", 0, "pending"],
      ["urn:b", 1, "pending"],
      ["urn:c", 2, "pending"],
    ]);
    expect(steps[0]?.desired).toEqual({ brightness: 40, mode: "eco" });
    expect(steps[0]?.items.map((i) => i.status)).toEqual(["pending", "in-place", "pending"]);
    // An unreachable Thing is tried: its item is pending, not refused.
    expect(steps[1]?.items[0]).toMatchObject({ status: "pending", desired: 40 });
    expect(steps[2]?.desired).toEqual({});
  });

  it("skips a Thing whose active release is already this one: a release is applied once", () => {
    const steps = stepsFromPlan(
      "urn:uuid:r",
      plan,
      (t) => (t === "urn:a" ? "sha256:r2" : "sha256:r1"),
      "now",
    );
    expect(steps.map((s) => s.status)).toEqual(["skipped", "pending", "pending"]);
    expect(steps[0]?.reason).toMatch(/already active/);
  });
});

describe("blockingItems", () => {
  it("blames the release for what cannot be done, except an unreachable Thing", () => {
    expect(blockingItems(plan)).toEqual([]);
    const bad: Plan = {
      ...plan,
      things: [
        {
          thing: "urn:a",
          reachable: true,
          items: [
            { kind: "property", name: "model", desired: "x", status: "cannot", reason: "read-only", step: 0 },
          ],
        },
      ],
    };
    const blocking = blockingItems(bad);
    expect(blocking.map((b) => [b.thing, b.item.reason])).toEqual([["urn:a", "read-only"]]);
  });
});
