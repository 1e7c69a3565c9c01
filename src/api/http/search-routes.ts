// Syntactic search of the directory (W3C WoT Discovery §7.3.2.4): RFC 9535 JSONPath.
import type { FastifyInstance } from "fastify";
import type { Hub } from "../../hub/index.js";

export function searchRoutes(hub: Hub) {
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.get(
      "/search/jsonpath",
      {
        schema: {
          summary: "Evaluate an RFC 9535 JSONPath query over every TD; the selected values, as one array",
          tags: ["search"],
          querystring: {
            type: "object",
            required: ["query"],
            additionalProperties: false,
            properties: { query: { type: "string", description: "e.g. $[?@.title=='Lamp'].id" } },
          },
        },
      },
      async (request, reply) => {
        const { query } = request.query as { query: string };
        const values = await hub.directory.searchJsonPath(query);
        return reply.type("application/json").send(JSON.stringify(values));
      },
    );
  };
}
