// GraphQL at /graphql: one schema over HTTP (graphql-routes.ts) and over WebSocket with the
// graphql-ws protocol (graphql-socket.ts). See docs/graphql.md.
import type { FastifyInstance } from "fastify";
import type { Hub } from "../../hub/index.js";
import { graphqlRoutes } from "./graphql-routes.js";
import { attachGraphqlSocket } from "./graphql-socket.js";
import { buildHubSchema } from "./schema.js";

export { SCHEMA_SDL } from "./schema-sdl.js";
export { ERROR_CODES } from "./errors.js";
export { GRAPHQL_PATH, CLOSE_TOO_SLOW } from "./graphql-socket.js";

export function graphqlApi(hub: Hub) {
  const schema = buildHubSchema();
  return async function plugin(app: FastifyInstance): Promise<void> {
    await app.register(graphqlRoutes(hub, schema));
    attachGraphqlSocket(app, hub, schema);
  };
}
