// The W3C WoT TD 1.1 examples (third-party material in ../shared/conformance/wot-td/) through the
// directory API: every valid one is registered and comes back unchanged apart from what the
// directory adds; every invalid one is refused with a 400 problem and stores nothing.
import { existsSync, readFileSync, readdirSync } from "node:fs";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import { DISCOVERY_CONTEXT, canonicalJson } from "../src/core/index.js";
import { startTestHub, type TestHub } from "./support/test-hub.js";

type Json = Record<string, unknown>;

const conformance = new URL("../../shared/conformance/wot-td/", import.meta.url);
const available = existsSync(new URL("valid/", conformance)) && existsSync(new URL("invalid/", conformance));

function examples(kind: "valid" | "invalid"): Array<[string, string]> {
  if (!available) return [];
  const folder = new URL(`${kind}/`, conformance);
  return readdirSync(folder)
    .filter((name) => name.endsWith(".json"))
    .sort()
    .map((name) => [name, readFileSync(new URL(name, folder), "utf8")]);
}

/** The example's id, read leniently (an invalid example may be malformed in other ways). */
function idOf(text: string): string | undefined {
  try {
    const value = JSON.parse(text) as unknown;
    if (typeof value === "object" && value !== null && "id" in value && typeof value.id === "string")
      return value.id;
  } catch {
    // Malformed JSON has no id: it is POSTed.
  }
  return undefined;
}

/**
 * The TD as registered: the answer without what the directory adds, which is the `registration`
 * member and the discovery context (a single context the directory had to turn into an array to
 * append it to goes back to a single one).
 */
function withoutDirectoryAdditions(answer: Json, original: Json): Json {
  const td = { ...answer };
  delete td.registration;
  const context = td["@context"];
  if (
    Array.isArray(context) &&
    !(Array.isArray(original["@context"]) && original["@context"].includes(DISCOVERY_CONTEXT))
  ) {
    const kept = context.filter((c) => c !== DISCOVERY_CONTEXT);
    td["@context"] = !Array.isArray(original["@context"]) && kept.length === 1 ? kept[0] : kept;
  }
  return td;
}

async function health(hub: TestHub): Promise<{ things: number; lastSeq: number }> {
  return (await (await hub.request("/health", { auth: false })).json()) as {
    things: number;
    lastSeq: number;
  };
}

if (!available) {
  describe("W3C WoT TD 1.1 conformance examples", () => {
    it.skip("skipped: ../shared/conformance not found", () => undefined);
  });
} else {
  describe("W3C WoT TD 1.1 conformance examples", () => {
    let hub: TestHub;
    beforeAll(async () => {
      hub = await startTestHub();
    });
    afterAll(async () => {
      await hub.stop();
    });

    const valid = examples("valid");
    const invalid = examples("invalid");

    it("finds examples of both kinds", () => {
      expect(valid.length).toBeGreaterThan(0);
      expect(invalid.length).toBeGreaterThan(0);
    });

    it.each(valid)(
      "registers the valid example %s and returns it unchanged apart from the registration information",
      async (_name, text) => {
        const original = JSON.parse(text) as Json;
        const id = idOf(text);
        const res = id
          ? await hub.request(thingPath(id), {
              method: "PUT",
              headers: { "content-type": "application/td+json" },
              body: text,
            })
          : await hub.request("/things", {
              method: "POST",
              headers: { "content-type": "application/td+json" },
              body: text,
            });
        const answer = res.status >= 400 ? await res.text() : "";
        expect(res.status, answer).toBe(201);
        const location = res.headers.get("location") ?? "";
        if (id) expect(location).toBe(thingPath(id));
        else expect(location).toMatch(/^\/things\/urn:uuid:/);

        const got = await hub.request(location, { auth: false });
        expect(got.status).toBe(200);
        const returned = (await got.json()) as Json;
        const registration = returned.registration as Json;
        expect(typeof registration.created).toBe("string");
        expect(typeof registration.modified).toBe("string");
        expect(returned["@context"]).toContain(DISCOVERY_CONTEXT);
        const registered = withoutDirectoryAdditions(returned, original);
        if (!id) {
          expect(registered.id).toBe(decodeURIComponent(location.slice("/things/".length)));
          delete registered.id;
        }
        expect(canonicalJson(registered)).toBe(canonicalJson(original));

        expect((await hub.request(location, { method: "DELETE" })).status).toBe(204);
      },
    );

    it.each(invalid)(
      "refuses the invalid example %s with a 400 problem and stores nothing",
      async (_name, text) => {
        const before = await health(hub);
        const id = idOf(text);
        // PUT under its own id, so that the only thing wrong is what the example is about.
        const res = id
          ? await hub.request(thingPath(id), {
              method: "PUT",
              headers: { "content-type": "application/td+json" },
              body: text,
            })
          : await hub.request("/things", {
              method: "POST",
              headers: { "content-type": "application/td+json" },
              body: text,
            });
        expect(res.status).toBe(400);
        expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json\b/);
        const problem = (await res.json()) as {
          type: string;
          title: string;
          status: number;
          detail: string;
          errors?: Array<{ pointer: string; detail: string }>;
        };
        expect(problem.status).toBe(400);
        for (const member of [problem.type, problem.title, problem.detail])
          expect(typeof member).toBe("string");
        expect(problem.detail).not.toMatch(/differs from the id in the URL|not a valid IRI/);
        expect(problem.errors?.length ?? 0, "the problem names the failing places").toBeGreaterThan(0);
        for (const error of problem.errors ?? []) expect(error.pointer).toMatch(/^(\/.*)?$/);
        expect(await health(hub)).toEqual(before);
        if (id) expect((await hub.request(thingPath(id), { auth: false })).status).toBe(404);
      },
    );
  });
}
