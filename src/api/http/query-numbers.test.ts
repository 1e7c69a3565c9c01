import Fastify, { type FastifyInstance } from "fastify";
import { afterEach, describe, expect, it } from "vitest";
import { sendProblem } from "./problem.js";
import { COMMA_LIST, registerQueryNumbers } from "./query-numbers.js";

describe("a query parameter given twice", () => {
  const apps: FastifyInstance[] = [];
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close();
  });

  /** A server with one route whose query takes `kinds` and `names`, as the hub's schemas are read. */
  async function serve(): Promise<FastifyInstance> {
    const app = Fastify({ ajv: { customOptions: { keywords: [COMMA_LIST] } } });
    apps.push(app);
    app.setErrorHandler((error, request, reply) => sendProblem(request, reply, error));
    registerQueryNumbers(app);
    app.get(
      "/ping",
      {
        schema: {
          querystring: {
            type: "object",
            properties: {
              // Marked a list, in words that say nothing of commas.
              kinds: { type: "string", description: "the kinds to show", [COMMA_LIST]: true },
              // Words that say "separated by commas", and no mark: one value.
              names: { type: "string", description: "a name; names are never separated by commas" },
            },
          },
        },
      },
      async () => ({ ok: true }),
    );
    return app;
  }

  it("says a list is separated by commas for a parameter its schema marks a list, whatever its description says", async () => {
    const app = await serve();
    const list = await app.inject({ url: "/ping?kinds=a&kinds=b" });
    expect(list.statusCode).toBe(400);
    expect(list.json()).toMatchObject({
      detail: "Invalid query: query/kinds is given 2 times: give it once (a list is separated by commas)",
      errors: [{ pointer: "/query/kinds" }],
    });
    const one = await app.inject({ url: "/ping?names=a&names=b&names=c" });
    expect(one.statusCode).toBe(400);
    expect(one.json()).toMatchObject({
      detail: "Invalid query: query/names is given 3 times: give it once",
      errors: [{ pointer: "/query/names" }],
    });
    expect((await app.inject({ url: "/ping?kinds=a,b&names=x" })).statusCode).toBe(200);
  });
});
