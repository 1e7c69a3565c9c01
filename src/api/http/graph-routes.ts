// The graph over HTTP (docs/queries.md): filtered queries (`GET /graph`), a Thing's links in and
// out, editing them (the TD's `links` change through the directory), and its neighbourhood.
import type { FastifyInstance } from "fastify";
import { MAX_GRAPH_PAGE, MAX_NEIGHBOURHOOD_DEPTH, type Hub } from "../../hub/index.js";
import { actorOf } from "./authorization.js";
import { idOf, idParam } from "./directory-routes.js";
import { refuseBody } from "./content-types.js";

const term = { type: "string", minLength: 1, maxLength: 2048 } as const;
/** One link to add or remove: the body of POST and the query of DELETE /things/{id}/links. */
const linkTerms = {
  type: "object",
  required: ["rel", "href"],
  additionalProperties: false,
  properties: { rel: term, href: term },
} as const;

export function graphRoutes(hub: Hub) {
  const { graph } = hub;
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.get(
      "/graph",
      {
        schema: {
          summary: "The Things matching a graph filter, by id, with their current state, a page at a time",
          tags: ["graph"],
          querystring: {
            type: "object",
            required: ["filter"],
            additionalProperties: false,
            properties: {
              filter: {
                type: "string",
                minLength: 1,
                maxLength: 8192,
                description:
                  "e.g. type = saref:TemperatureSensor AND state.temperature > 30 (docs/queries.md)",
              },
              limit: { type: "integer", minimum: 1, maximum: MAX_GRAPH_PAGE, default: 100 },
              cursor: { type: "string", minLength: 1, maxLength: 4096 },
            },
          },
        },
      },
      async (request) => {
        const { filter, limit, cursor } = request.query as { filter: string; limit: number; cursor?: string };
        return graph.query(filter, { limit, ...(cursor !== undefined && { cursor }) });
      },
    );

    app.get(
      "/graph/summary",
      {
        schema: {
          summary:
            "Every Thing (id, title, expanded @types, reachable) and every link between Things, in one light response for drawing the graph",
          tags: ["graph"],
          querystring: { type: "object", additionalProperties: false, properties: {} },
        },
      },
      async () => graph.summary(),
    );

    app.get(
      "/things/:id/links",
      {
        schema: {
          summary: "A Thing's links: out of it (its TD's links) or into it (other TDs' links naming it)",
          tags: ["graph"],
          params: idParam,
          querystring: {
            type: "object",
            additionalProperties: false,
            properties: {
              rel: term,
              direction: { type: "string", enum: ["out", "in"], default: "out" },
            },
          },
        },
      },
      async (request) => {
        const { rel, direction } = request.query as { rel?: string; direction: "out" | "in" };
        const id = idOf(request);
        return direction === "in" ? graph.linkedFrom(id, rel) : graph.links(id, rel);
      },
    );

    app.post(
      "/things/:id/links",
      {
        schema: {
          summary:
            "Link a Thing to another: adds {rel, href} to its TD's links (a described, then a linked Change)",
          tags: ["graph"],
          params: idParam,
          body: linkTerms,
        },
      },
      async (request, reply) => {
        const { rel, href } = request.body as { rel: string; href: string };
        const change = await graph.link(
          idOf(request),
          rel,
          href,
          { actor: actorOf(request), via: "http" },
          { rel: "/body/rel", to: "/body/href" },
        );
        // 200 when the link was there already: linking is idempotent.
        return reply
          .code(change ? 201 : 200)
          .send({ linked: change !== undefined, ...(change && { seq: change.seq }) });
      },
    );

    app.delete(
      "/things/:id/links",
      {
        preValidation: refuseBody,
        schema: {
          summary:
            "Unlink: removes the {rel, href} links from the Thing's TD (a described, then an unlinked Change)",
          tags: ["graph"],
          params: idParam,
          querystring: linkTerms,
        },
      },
      async (request, reply) => {
        const { rel, href } = request.query as { rel: string; href: string };
        await graph.unlink(
          idOf(request),
          rel,
          href,
          { actor: actorOf(request), via: "http" },
          { rel: "/query/rel", to: "/query/href" },
        );
        return reply.code(204).send();
      },
    );

    app.get(
      "/things/:id/neighbourhood",
      {
        schema: {
          summary: "The Things within depth links of a Thing, both ways, as a tree without repeats",
          tags: ["graph"],
          params: idParam,
          querystring: {
            type: "object",
            additionalProperties: false,
            properties: {
              depth: { type: "integer", minimum: 1, maximum: MAX_NEIGHBOURHOOD_DEPTH, default: 1 },
              rel: term,
            },
          },
        },
      },
      async (request) => {
        const { depth, rel } = request.query as { depth: number; rel?: string };
        return graph.neighbourhood(idOf(request), depth, rel);
      },
    );
  };
}
