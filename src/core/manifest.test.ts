import { describe, expect, it } from "vitest";
import { buildRelease, type ManifestErrorLocation } from "./manifest.js";
import { ValidationError } from "./errors.js";
import { releaseId } from "./release.js";
import { manifestSchema } from "./manifest-schema.js";
import { readFileSync } from "node:fs";

const opts = { builder: "test", builtAt: "2026-01-01T00:00:00.000Z" };
const SIMPLE = `release: evening-lights
things:
  - select: { id: "urn:example:dimmer" }
    properties: { brightness: 40 }
drift: record
`;

function errorsOf(sources: { path: string; text: string }[]): ManifestErrorLocation[] {
  try {
    buildRelease(sources, opts);
  } catch (error) {
    expect(error).toBeInstanceOf(ValidationError);
    return (error as ValidationError).errors as ManifestErrorLocation[];
  }
  throw new Error("the build succeeded");
}

describe("buildRelease", () => {
  it("builds the simplest manifest exactly as written", () => {
    const release = buildRelease([{ path: "evening.yaml", text: SIMPLE }], opts);
    expect(release.name).toBe("evening-lights");
    expect(release.drift).toEqual({ policy: "record" });
    expect(release.steps).toEqual([{ select: { id: "urn:example:dimmer" }, properties: { brightness: 40 } }]);
    expect(release.id).toMatch(/^sha256:[0-9a-f]{64}$/);
    expect(release.id).toBe(releaseId(release));
    expect(release.provenance.sources).toHaveLength(1);
    expect(release.provenance.steps?.[0]).toMatchObject({ file: "evening.yaml", line: 3 });
  });

  it("refuses an alias to a node that contains it, and an alias bomb, as errors of the file", () => {
    const cyclic = errorsOf([
      {
        path: "loop.yaml",
        text: 'release: loop\nthings:\n  - select: { id: "urn:x" }\n    properties: &p { level: *p }\n',
      },
    ]);
    expect(cyclic).toEqual([
      expect.objectContaining({ file: "loop.yaml", line: 4, pointer: "/things/0/properties/level" }),
    ]);
    expect(cyclic[0]?.message).toMatch(/refers to a node that contains it/);
    const laughs = ["a: &a [x, x, x, x, x, x, x, x, x]"];
    for (const name of "bcdefghi") {
      const previous = String.fromCharCode(name.charCodeAt(0) - 1);
      laughs.push(`${name}: &${name} [${Array(9).fill(`*${previous}`).join(", ")}]`);
    }
    const bomb = errorsOf([
      {
        path: "bomb.yaml",
        text: `release: bomb\nthings:\n  - select: { id: "urn:x" }\n    properties:\n${laughs.map((l) => `      ${l}`).join("\n")}\n`,
      },
    ]);
    expect(bomb).toEqual([expect.objectContaining({ file: "bomb.yaml", line: 1 })]);
    expect(bomb[0]?.message).toMatch(/alias/i);
  });

  it("gives the same id to the same desired state written as JSON, in another order, built at another time", () => {
    const yaml = buildRelease([{ path: "a.yaml", text: SIMPLE }], opts);
    const json = buildRelease(
      [
        {
          path: "b.json",
          text: JSON.stringify({
            drift: "record",
            things: [{ properties: { brightness: 40 }, select: { id: "urn:example:dimmer" } }],
            release: "evening-lights",
          }),
        },
      ],
      { builder: "other", builtAt: "2027-01-01T00:00:00.000Z" },
    );
    expect(json.id).toBe(yaml.id);
    expect(json.provenance.sources[0]?.sha256).not.toBe(yaml.provenance.sources[0]?.sha256);
    const changed = buildRelease([{ path: "a.yaml", text: SIMPLE.replace("40", "41") }], opts);
    expect(changed.id).not.toBe(yaml.id);
  });

  it("expands templates with parameters, defaults and nested uses, across included files", () => {
    const library = `templates:
  room:
    params:
      prefix: { description: the room's id prefix }
      level: { default: 30 }
    things:
      - select: { id: "\${prefix}:dimmer" }
        properties: { brightness: "\${level}", label: "room \${prefix} at \${level}" }
        links: [{ rel: controls, href: "\${prefix}:lamp" }]
      - use: lamp
        with: { id: "\${prefix}:lamp" }
  lamp:
    params: { id: {} }
    things:
      - select: { id: "\${id}" }
        actions: [identify, { name: fade, input: { to: 0 } }]
`;
    const main = `release: house
include: [lib.yaml]
drift: revert
things:
  - use: room
    with: { prefix: "urn:k" }
  - use: room
    with: { prefix: "urn:b", level: 70 }
`;
    const release = buildRelease(
      [
        { path: "main.yaml", text: main },
        { path: "lib.yaml", text: library },
      ],
      opts,
    );
    expect(release.drift).toEqual({ policy: "revert", revert: { maxReverts: 3, withinSeconds: 3600 } });
    expect(release.steps).toEqual([
      {
        select: { id: "urn:k:dimmer" },
        properties: { brightness: 30, label: "room urn:k at 30" },
        links: [{ rel: "controls", href: "urn:k:lamp" }],
      },
      { select: { id: "urn:k:lamp" }, actions: [{ name: "identify" }, { name: "fade", input: { to: 0 } }] },
      {
        select: { id: "urn:b:dimmer" },
        properties: { brightness: 70, label: "room urn:b at 70" },
        links: [{ rel: "controls", href: "urn:b:lamp" }],
      },
      { select: { id: "urn:b:lamp" }, actions: [{ name: "identify" }, { name: "fade", input: { to: 0 } }] },
    ]);
    expect(release.provenance.steps?.[1]).toMatchObject({
      file: "main.yaml",
      line: 5,
      template: "room > lamp",
    });
    expect(release.provenance.sources.map((s) => s.path)).toEqual(["lib.yaml", "main.yaml"]);
  });

  it("points at file, line and column of invalid YAML", () => {
    const [error] = errorsOf([{ path: "bad.yaml", text: "release: x\nthings: [\n  - {a: 1\n" }]);
    expect(error).toMatchObject({ file: "bad.yaml" });
    expect(error?.line).toBeGreaterThanOrEqual(2);
  });

  it("points at a misspelt field with its line and JSON pointer", () => {
    const errors = errorsOf([
      { path: "m.yaml", text: "release: x\nthings:\n  - select: { id: a }\n    propertes: { a: 1 }\n" },
    ]);
    expect(errors).toContainEqual(
      expect.objectContaining({ file: "m.yaml", line: 4, column: 5, pointer: "/things/0/propertes" }),
    );
  });

  it("rejects unknown and missing template parameters, and unknown references, where they are written", () => {
    const text = `release: x
templates:
  t:
    params: { a: {} }
    things:
      - select: { id: "\${a}" }
        properties: { p: "\${b}" }
things:
  - use: t
    with: { a: "urn:x", c: 1 }
  - use: t
  - use: nothing
`;
    const errors = errorsOf([{ path: "t.yaml", text }]);
    expect(errors).toContainEqual(expect.objectContaining({ line: 10, pointer: "/things/0/with/c" }));
    expect(errors.find((e) => e.pointer === "/things/0/with/c")?.message).toMatch(/no parameter c/);
    expect(errors).toContainEqual(expect.objectContaining({ pointer: "/things/1/with" }));
    expect(errors.find((e) => e.pointer === "/things/1/with")?.message).toMatch(/needs parameter a/);
    expect(errors).toContainEqual(expect.objectContaining({ pointer: "/things/2/use", line: 12 }));
  });

  it("reports a template cycle with its path", () => {
    const text = `release: x
templates:
  a: { things: [{ use: b }] }
  b: { things: [{ use: a }] }
things:
  - use: a
`;
    const errors = errorsOf([{ path: "c.yaml", text }]);
    expect(errors.some((e) => /template cycle: a > b > a/.test(e.message))).toBe(true);
  });

  it("needs exactly one manifest naming the release, and a bad drift policy is refused", () => {
    expect(errorsOf([{ path: "lib.yaml", text: "things: []\n" }])[0]?.message).toMatch(
      /no manifest names a release/,
    );
    const errors = errorsOf([{ path: "d.yaml", text: SIMPLE.replace("drift: record", "drift: fight") }]);
    expect(errors[0]).toMatchObject({ line: 5, pointer: "/drift" });
  });
});

describe("schemas/manifest.schema.json", () => {
  it("is the schema the build validates with (editors see what the build enforces)", () => {
    const file = JSON.parse(
      readFileSync(new URL("../../schemas/manifest.schema.json", import.meta.url), "utf8"),
    ) as unknown;
    expect(file).toEqual(JSON.parse(JSON.stringify(manifestSchema)));
    expect(manifestSchema.$id).toMatch(/^https:/);
  });
});

describe("examples/releases", () => {
  it("the house example builds: two rooms from one template, a filter step, revert with its limits", () => {
    const read = (name: string) => ({
      path: name,
      text: readFileSync(new URL(`../../examples/releases/house/${name}`, import.meta.url), "utf8"),
    });
    const release = buildRelease([read("house.yaml"), read("templates.yaml")], opts);
    expect(release.steps.map((s) => s.select)).toEqual([
      { id: "urn:example:kitchen:dimmer" },
      { id: "urn:example:kitchen:lamp" },
      { id: "urn:example:living:dimmer" },
      { id: "urn:example:living:lamp" },
      { filter: "type = saref:Actuator" },
    ]);
    expect(release.steps[2]?.properties).toEqual({ brightness: 25 });
    expect(release.drift.revert).toEqual({ maxReverts: 3, withinSeconds: 3600 });
  });
});

describe("template expansion", () => {
  it("stops a template that would multiply into more steps than a release may hold", () => {
    const fan = (name: string, inner: string) =>
      `  ${name}: { things: [${Array(11).fill(`{ use: ${inner} }`).join(", ")}] }\n`;
    const text =
      "release: boom\ntemplates:\n" +
      fan("a", "b") +
      fan("b", "c") +
      fan("c", "d") +
      fan("d", "e") +
      fan("e", "f") +
      "  f: { things: [{ select: { id: x }, properties: { p: 1 } }] }\nthings:\n  - use: a\n";
    const errors = errorsOf([{ path: "boom.yaml", text }]);
    expect(errors.some((e) => /more than 100000 steps/.test(e.message))).toBe(true);
  });
});
