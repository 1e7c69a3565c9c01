import { describe, expect, it } from "vitest";
import fc from "fast-check";
import {
  planApplicable,
  planRelease,
  releaseId,
  sealRelease,
  RELEASE_FORMAT,
  type PlanThing,
  type ReleaseStep,
} from "./release.js";
import { parseReleaseDocument } from "./release-schema.js";
import { ValidationError } from "./errors.js";
import type { ThingDescription } from "./thing-description.js";

const provenance = { sources: [], builder: "test", builtAt: "2026-11-25T00:00:00.000Z" };

function release(steps: ReleaseStep[]) {
  return sealRelease({ format: RELEASE_FORMAT, name: "r", drift: { policy: "record" }, steps }, provenance);
}

function lamp(id: string, state: Record<string, unknown> = {}, reachable = true): PlanThing {
  const td: ThingDescription = {
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    id,
    title: "Lamp",
    security: "nosec_sc",
    securityDefinitions: { nosec_sc: { scheme: "nosec" } },
    properties: {
      brightness: { type: "integer", minimum: 0, maximum: 100, forms: [{ href: "b" }] },
      model: { type: "string", readOnly: true, forms: [{ href: "m" }] },
    },
    actions: {
      blink: { input: { type: "integer" }, forms: [{ href: "a" }] },
      reboot: { forms: [{ href: "r" }] },
    },
    links: [{ rel: "partOf", href: "urn:room" }],
  };
  return { id, td, state, reachable };
}

describe("planRelease", () => {
  it("says change for a differing value, in-place for an equal one, and keeps observed and desired", () => {
    const plan = planRelease(
      release([
        { select: { id: "a" }, properties: { brightness: 40 } },
        { select: { id: "b" }, properties: { brightness: 40 } },
      ]),
      [lamp("a", { brightness: 10 }), lamp("b", { brightness: 40 })],
    );
    expect(plan.things[0]?.items[0]).toMatchObject({
      name: "brightness",
      observed: 10,
      desired: 40,
      status: "change",
    });
    expect(plan.things[1]?.items[0]).toMatchObject({ observed: 40, status: "in-place" });
    expect(plan.summary).toEqual({ things: 2, change: 1, inPlace: 1, cannot: 0 });
    expect(planApplicable(plan)).toBe(true);
  });

  it("says cannot, with the reason, for read-only, unknown, unreachable and schema-mismatched affordances", () => {
    const plan = planRelease(
      release([
        {
          select: { id: "a" },
          properties: { model: "x", colour: "red", brightness: 140 },
          actions: [{ name: "blink", input: "fast" }, { name: "fly" }],
        },
        { select: { id: "down" }, properties: { brightness: 1 }, actions: [{ name: "reboot" }] },
      ]),
      [lamp("a"), lamp("down", {}, false)],
    );
    const reasons = Object.fromEntries(
      plan.things.flatMap((t) => t.items.map((i) => [`${t.thing}/${i.name}`, i.reason])),
    );
    expect(reasons).toEqual({
      "a/model": "read-only",
      "a/colour": "unknown-affordance",
      "a/brightness": "schema-mismatch",
      "a/blink": "schema-mismatch",
      "a/fly": "unknown-affordance",
      "down/brightness": "unreachable",
      "down/reboot": "unreachable",
    });
    expect(plan.things[0]?.items.find((i) => i.name === "brightness")?.detail).toMatch(/<= 100/);
    expect(planApplicable(plan)).toBe(false);
  });

  it("says schema-mismatch for a link whose href no TD may hold, even on an unreachable Thing", () => {
    const plan = planRelease(
      release([
        {
          select: { id: "down" },
          links: [
            { rel: "controls", href: "not an iri" },
            { rel: "controls", href: "urn:lamp" },
            { rel: "partOf", href: "http://x/%zz" },
          ],
        },
      ]),
      [lamp("down", {}, false)],
    );
    expect(plan.things[0]?.items.map((i) => [i.name, i.status, i.reason])).toEqual([
      ["controls not an iri", "cannot", "schema-mismatch"],
      ["controls urn:lamp", "change", undefined],
      ["partOf http://x/%zz", "cannot", "schema-mismatch"],
    ]);
    expect(planApplicable(plan)).toBe(false);
  });

  it("says unknown-affordance for names every object inherits (constructor, toString, __proto__)", () => {
    const properties = JSON.parse('{"constructor": 1, "__proto__": {"x": 1}, "hasOwnProperty": 2}') as Record<
      string,
      unknown
    >;
    const plan = planRelease(
      release([{ select: { id: "a" }, properties, actions: [{ name: "toString" }, { name: "valueOf" }] }]),
      [lamp("a")],
    );
    const items = plan.things[0]?.items ?? [];
    expect(items.map((i) => [i.name, i.status, i.reason])).toEqual([
      ["constructor", "cannot", "unknown-affordance"],
      ["__proto__", "cannot", "unknown-affordance"],
      ["hasOwnProperty", "cannot", "unknown-affordance"],
      ["toString", "cannot", "unknown-affordance"],
      ["valueOf", "cannot", "unknown-affordance"],
    ]);
    expect(planApplicable(plan)).toBe(false);
  });

  it("a read-only property already at the desired value is in place, and an unreachable Thing's link can still be added", () => {
    const plan = planRelease(
      release([
        {
          select: { id: "a" },
          properties: { model: "x" },
          links: [
            { rel: "partOf", href: "urn:room" },
            { rel: "controls", href: "b" },
          ],
        },
      ]),
      [lamp("a", { model: "x" }, false)],
    );
    expect(plan.things[0]?.items.map((i) => [i.name, i.status])).toEqual([
      ["model", "in-place"],
      ["partOf urn:room", "in-place"],
      ["controls b", "change"],
    ]);
  });

  it("an action this release already invoked is in place", () => {
    const thing = { ...lamp("a"), applied: ["actions/reboot"] };
    const plan = planRelease(
      release([{ select: { id: "a" }, actions: [{ name: "reboot" }, { name: "blink", input: 2 }] }]),
      [thing],
    );
    expect(plan.things[0]?.items.map((i) => i.status)).toEqual(["in-place", "change"]);
  });

  it("reports selectors matching nothing as problems with their source, and resolves filters from the matches given", () => {
    const r = release([
      { select: { id: "ghost" }, properties: { brightness: 1 } },
      { select: { filter: "type = Lamp" }, properties: { brightness: 2 } },
    ]);
    const withSources = {
      ...r,
      provenance: {
        ...provenance,
        steps: [
          { file: "m.yaml", line: 3, column: 5 },
          { file: "m.yaml", line: 5, column: 5 },
        ],
      },
    };
    const none = planRelease(withSources, [lamp("a")]);
    expect(none.problems.map((p) => [p.step, p.source?.line])).toEqual([
      [0, 3],
      [1, 5],
    ]);
    const some = planRelease(withSources, [lamp("a"), lamp("b")], {
      matches: new Map([[1, ["a", "b"]]]),
      only: new Set(["b"]),
    });
    // Narrowed to b, a step naming a Thing outside the selection is no problem of this plan.
    expect(some.problems).toEqual([]);
    expect(some.things.map((t) => t.thing)).toEqual(["b"]);
    const whole = planRelease(withSources, [lamp("a"), lamp("b")], { matches: new Map([[1, ["a", "b"]]]) });
    expect(whole.problems.map((p) => p.step)).toEqual([0]);
  });

  it("plans what two steps both ask of one Thing once: one write, one invocation, one link", () => {
    const plan = planRelease(
      release([
        { select: { filter: "all" }, properties: { brightness: 5 }, actions: [{ name: "reboot" }] },
        {
          select: { id: "a" },
          properties: { brightness: 5 },
          actions: [{ name: "reboot" }, { name: "blink", input: 2 }, { name: "blink", input: 2 }],
          links: [
            { rel: "controls", href: "urn:x" },
            { rel: "controls", href: "urn:x" },
          ],
        },
      ]),
      [lamp("a")],
      { matches: new Map([[0, ["a"]]]) },
    );
    expect(plan.things[0]?.items.map((i) => [i.kind, i.name, i.status, i.step])).toEqual([
      ["property", "brightness", "change", 0],
      ["action", "reboot", "change", 0],
      ["action", "blink", "change", 1],
      ["link", "controls urn:x", "change", 1],
    ]);
    expect(planApplicable(plan)).toBe(true);
  });

  it("marks an action asked of one Thing twice with different inputs as a conflict", () => {
    const plan = planRelease(
      release([
        { select: { id: "a" }, actions: [{ name: "blink", input: 1 }] },
        { select: { filter: "all" }, actions: [{ name: "blink", input: 2 }] },
      ]),
      [lamp("a")],
      { matches: new Map([[1, ["a"]]]) },
    );
    expect(plan.things[0]?.items.map((i) => [i.status, i.reason])).toEqual([
      ["change", undefined],
      ["cannot", "conflict"],
    ]);
    expect(plan.things[0]?.items[1]?.detail).toMatch(/another step invokes it with 1/);
    expect(planApplicable(plan)).toBe(false);
  });

  it("marks two steps wanting different values of one property on one Thing as a conflict", () => {
    const plan = planRelease(
      release([
        { select: { id: "a" }, properties: { brightness: 1 } },
        { select: { filter: "all" }, properties: { brightness: 2 } },
      ]),
      [lamp("a")],
      { matches: new Map([[1, ["a"]]]) },
    );
    expect(plan.things[0]?.items.map((i) => i.reason)).toEqual([undefined, "conflict"]);
  });
});

describe("release ids", () => {
  it("cover the body, never the provenance, and change with any desired value", () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 100 }),
        fc.integer({ min: 0, max: 100 }),
        fc.string(),
        (a, b, builder) => {
          const one = release([{ select: { id: "x" }, properties: { brightness: a } }]);
          const other = sealRelease(
            { ...one, steps: [{ select: { id: "x" }, properties: { brightness: b } }] },
            { ...provenance, builder },
          );
          expect(one.id === other.id).toBe(a === b);
          expect(releaseId(other)).toBe(other.id);
        },
      ),
    );
  });

  it("are recomputed at the edge: a document claiming another id is refused, one without an id is sealed", () => {
    const one = release([{ select: { id: "x" }, properties: { brightness: 1 } }]);
    expect(parseReleaseDocument(JSON.parse(JSON.stringify(one))).id).toBe(one.id);
    const { id: _id, ...anonymous } = one;
    expect(parseReleaseDocument(anonymous).id).toBe(one.id);
    expect(() => parseReleaseDocument({ ...one, name: "other" })).toThrow(ValidationError);
    expect(() => parseReleaseDocument({ ...one, steps: [{ select: { id: "x" }, extra: 1 }] })).toThrow(
      /not allowed/,
    );
  });

  it("refuse a provenance whose builtAt is no RFC 3339 date-time, naming it", () => {
    const one = release([{ select: { id: "x" }, properties: { brightness: 1 } }]);
    const { id: _id, ...anonymous } = one;
    for (const builtAt of ["yesterday", "2026-02-30T10:00:00Z", "2026-12-06 10:00", ""]) {
      const document = { ...anonymous, provenance: { ...one.provenance, builtAt } };
      expect(() => parseReleaseDocument(document)).toThrow(
        expect.objectContaining({
          errors: [{ pointer: "/provenance/builtAt", message: "must be an RFC 3339 date-time with a zone" }],
        }),
      );
    }
    const document = {
      ...anonymous,
      provenance: { ...one.provenance, builtAt: "2026-12-06T10:00:00+01:00" },
    };
    expect(parseReleaseDocument(document).provenance.builtAt).toBe("2026-12-06T10:00:00+01:00");
  });
});
