// Releases over HTTP: store a built release (idempotent by id), read and list them, and plan one
// against the Things as the hub knows them now. See docs/releases.md.
import type { FastifyInstance } from "fastify";
import type { Hub } from "../../hub/index.js";
import { actorOf } from "./authorization.js";

/** A release document for 10,000 Things is a few MiB: more than Fastify's 1 MiB default. */
const RELEASE_BODY_LIMIT = 32 * 1024 * 1024;

const idParams = {
  type: "object",
  required: ["id"],
  additionalProperties: false,
  properties: {
    id: {
      type: "string",
      pattern: "^sha256:[0-9a-f]{64}$",
      description: "a release id: sha256: and 64 lowercase hex digits",
    },
  },
} as const;

export function releaseRoutes(hub: Hub) {
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.post(
      "/releases",
      {
        bodyLimit: RELEASE_BODY_LIMIT,
        schema: {
          summary:
            "Store a release document (built by `things build`); 201 when new, 200 when this id was already stored",
          tags: ["releases"],
        },
      },
      async (request, reply) => {
        const result = await hub.releases.store(request.body, { actor: actorOf(request), via: "http" });
        void reply.code(result.created ? 201 : 200).header("location", `/releases/${result.release.id}`);
        return { id: result.release.id, created: result.created, storedAt: result.storedAt };
      },
    );

    app.get(
      "/releases",
      {
        schema: {
          summary: "Stored releases, newest first",
          tags: ["releases"],
          querystring: {
            type: "object",
            additionalProperties: false,
            properties: {
              name: { type: "string", minLength: 1 },
              limit: { type: "integer", minimum: 1, maximum: 1000, default: 100 },
              cursor: { type: "integer", minimum: 1 },
            },
          },
        },
      },
      async (request, reply) => {
        const query = request.query as { name?: string; limit: number; cursor?: number };
        const page = await hub.releases.list({
          limit: query.limit,
          ...(query.cursor !== undefined && { before: query.cursor }),
          ...(query.name !== undefined && { name: query.name }),
        });
        if (page.next !== undefined) {
          const next = new URLSearchParams({ limit: String(query.limit), cursor: String(page.next) });
          if (query.name !== undefined) next.set("name", query.name);
          void reply.header("link", `</releases?${next.toString()}>; rel="next"`);
        }
        return page;
      },
    );

    app.get(
      "/releases/:id",
      {
        schema: {
          summary: "One release document, with its provenance",
          tags: ["releases"],
          params: idParams,
        },
      },
      async (request) => {
        const { id } = request.params as { id: string };
        const record = await hub.releases.record(id);
        return { ...record.release, storedAt: record.storedAt };
      },
    );

    app.get(
      "/releases/:id/plan",
      {
        schema: {
          summary:
            "What rolling the release out would do now, per Thing: change, in place, or cannot (and why)",
          tags: ["releases"],
          params: idParams,
          querystring: {
            type: "object",
            additionalProperties: false,
            properties: { select: { type: "string", minLength: 1, maxLength: 4096 } },
          },
        },
      },
      async (request) => {
        const { id } = request.params as { id: string };
        const { select } = request.query as { select?: string };
        return hub.releases.plan(id, select === undefined ? {} : { select });
      },
    );
  };
}
