import Fastify, { type FastifyInstance } from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { sharedValidators } from "./route-validators.js";

const AJV = { customOptions: { coerceTypes: true, allErrors: true } };

/** A schema built anew on each call, as each server's routes build theirs. */
function limitSchema() {
  return {
    type: "object",
    properties: { limit: { type: "integer", minimum: 1 } },
    required: ["limit"],
  };
}

describe("route validators shared by the servers of one process", () => {
  const apps: FastifyInstance[] = [];
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
  });

  it("compiles a schema once: a second server's equal schema gets the same validator", () => {
    const first = sharedValidators({}, AJV);
    const second = sharedValidators({}, AJV);
    const validator = first({ schema: limitSchema() });
    expect(second({ schema: limitSchema() })).toBe(validator);
    // Another schema, or other Ajv options, is compiled on its own.
    expect(second({ schema: { ...limitSchema(), required: [] } })).not.toBe(validator);
    const strict = sharedValidators({}, { customOptions: { coerceTypes: false } });
    expect(strict({ schema: limitSchema() })).not.toBe(validator);
  });

  it("validates in each server as fastify's own compiler does: coerced values, every error", async () => {
    for (let i = 0; i < 2; i++) {
      const app = Fastify({
        schemaController: { compilersFactory: { buildValidator: sharedValidators } },
        ajv: AJV,
      });
      apps.push(app);
      app.get("/items", { schema: { querystring: limitSchema() } }, async (request) => request.query);
      expect((await app.inject({ url: "/items?limit=5" })).json()).toEqual({ limit: 5 });
      const refused = await app.inject({ url: "/items?limit=0" });
      expect(refused.statusCode).toBe(400);
      expect(refused.json()).toMatchObject({ message: "querystring/limit must be >= 1" });
    }
  });
});
