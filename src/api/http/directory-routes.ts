// The W3C WoT Discovery Thing Description Directory API (§7.3.2): create, retrieve, update,
// patch, delete and list TDs under /things.
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { MAX_BATCH_THINGS, entityTagOf, type Hub, type WriteCondition } from "../../hub/index.js";
import { actorOf } from "./authorization.js";
import { acceptWeight } from "./accept.js";
import {
  JSON_LD_CONTENT_TYPE,
  MERGE_PATCH_CONTENT_TYPE,
  TD_CONTENT_TYPE,
  refuseBody,
} from "./content-types.js";
import { thingPath } from "./thing-path.js";
import { NotFoundError, ValidationError } from "../../core/index.js";
import {
  type Validators,
  checkUnmodifiedSince,
  entityTags,
  httpDate,
  ifMatchOf,
  notModified,
  parseHttpDate,
} from "./preconditions.js";

export const idParam = {
  type: "object",
  properties: { id: { type: "string", description: "The Thing's id (an IRI), percent-encoded" } },
} as const;

const tdBody = {
  type: "object",
  description:
    "A W3C WoT Thing Description 1.1 (application/td+json, application/ld+json or application/json)",
} as const;

/** A batch of 10,000 TDs of a few KiB each is tens of MiB: more than one TD's body limit. */
const BATCH_BODY_LIMIT = 32 * 1024 * 1024;

/**
 * What a route answering one TD answers in: application/td+json first (WoT Discovery
 * §7.3.2.1.2 prefers it), plain JSON, and JSON-LD, which a TD is.
 */
export const TD_ANSWERS = [TD_CONTENT_TYPE, "application/json", JSON_LD_CONTENT_TYPE] as const;

/**
 * Answers with TD JSON in the media type the client prefers: another than application/td+json
 * only when the client weighs it higher. The answer varies with Accept, so a cache must not
 * serve one client's type to another.
 */
export function sendTd(request: FastifyRequest, reply: FastifyReply, body: unknown): FastifyReply {
  const accept = request.headers.accept;
  let type: string = TD_CONTENT_TYPE;
  if (accept !== undefined) {
    let weight = acceptWeight(accept, TD_CONTENT_TYPE);
    for (const other of TD_ANSWERS) {
      const w = acceptWeight(accept, other);
      if (w > weight) [type, weight] = [other, w];
    }
  }
  return reply.type(type).header("vary", "accept").send(JSON.stringify(body));
}

/**
 * The condition of a conditional write: `If-Match` (strong comparison, so a weak tag matches
 * nothing), `If-None-Match: *` (create only), and, without If-Match, `If-Unmodified-Since`
 * (RFC 9110 §13.1.4): checked against the TD now, then held as an If-Match on the version it
 * was checked against, so that a change in between is refused too, not written over.
 */
async function writeConditionOf(
  request: FastifyRequest,
  directory: Hub["directory"],
): Promise<WriteCondition | undefined> {
  let ifMatch = ifMatchOf(request);
  const ifNoneMatch = entityTags(request.headers["if-none-match"]);
  if (ifNoneMatch !== undefined && ifNoneMatch !== "*") {
    throw new ValidationError("If-None-Match on a write takes only *: create the TD only if it is absent", [
      { pointer: "/headers/if-none-match", message: "must be *" },
    ]);
  }
  if (ifMatch === undefined && parseHttpDate(request.headers["if-unmodified-since"]) !== undefined) {
    const id = idOf(request);
    // A Thing not registered has no modification date: the header is ignored (§13.1.4).
    const current = await directory.getLive(id).catch((err: unknown) => {
      if (err instanceof NotFoundError) return undefined;
      throw err;
    });
    if (current !== undefined) {
      checkUnmodifiedSince(request, validatorsOf(current), `the TD of ${id}`);
      ifMatch = [entityTagOf(current)];
    }
  }
  if (ifMatch === undefined && ifNoneMatch === undefined) return undefined;
  return { ...(ifMatch !== undefined && { ifMatch }), ...(ifNoneMatch !== undefined && { ifNoneMatch }) };
}

/** A TD's validators: its version's entity tag, and the time of the Change that gave it its TD. */
function validatorsOf(record: { version: number; modified: string }): Validators {
  const modified = Date.parse(record.modified);
  return { etag: entityTagOf(record), ...(!Number.isNaN(modified) && { lastModified: modified }) };
}

export function idOf(request: FastifyRequest): string {
  const id = (request.params as Record<string, string>).id ?? "";
  if (id.length === 0) throw new ValidationError("The URL names no Thing: use /things/{id}");
  return id;
}

export function directoryRoutes(hub: Hub) {
  const { directory } = hub;
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.get(
      "/things",
      {
        schema: {
          summary: "List Thing Descriptions, in id order, a page at a time",
          tags: ["directory"],
          produces: [JSON_LD_CONTENT_TYPE, "application/json"],
          querystring: {
            type: "object",
            additionalProperties: false,
            properties: {
              offset: { type: "integer", minimum: 0, default: 0 },
              limit: { type: "integer", minimum: 1, maximum: hub.config.maxPageLimit, default: 100 },
              format: { type: "string", enum: ["array", "collection"], default: "array" },
            },
          },
        },
      },
      async (request, reply) => {
        const { offset, limit, format } = request.query as { offset: number; limit: number; format: string };
        const { items, total, revision } = await directory.list(offset, limit);
        // Weak (RFC 9110 §8.8.1): each TD's `retrieved` differs from one answer to the next, the
        // listing does not. The revision moves with every registration, update, removal and
        // expiry; the page asked for is part of the answer too.
        const etag = `W/"${revision}:${offset}:${limit}:${format}"`;
        void reply.header("etag", etag);
        if (notModified(request, { etag }, "the listing")) return reply.code(304).send();
        // WoT Discovery §7.3.2.1.5: the next link keeps every argument (the format too), and every
        // page names its collection with a canonical link whose etag is the collection's revision.
        const collection = format === "collection";
        const page = (at: number) =>
          `/things?offset=${at}&limit=${limit}${collection ? "&format=collection" : ""}`;
        const next = offset + limit < total ? page(offset + limit) : undefined;
        const canonical = collection ? "/things?format=collection" : "/things";
        const links = [`<${canonical}>; rel="canonical"; etag="${revision}"`];
        if (next) links.push(`<${next}>; rel="next"`);
        void reply.header("link", links.join(", "));
        void reply.header("x-total-count", String(total));
        if (collection) {
          return reply.type("application/ld+json").send(
            JSON.stringify({
              "@context": "https://www.w3.org/2022/wot/discovery",
              "@type": "ThingCollection",
              "@id": page(offset),
              total,
              members: items,
              ...(next && { next }),
            }),
          );
        }
        return reply.type("application/ld+json").send(JSON.stringify(items));
      },
    );

    app.post(
      "/things",
      {
        schema: {
          summary: "Register an anonymous TD; the directory gives it a urn:uuid id",
          tags: ["directory"],
          body: tdBody,
        },
      },
      async (request, reply) => {
        const result = await directory.create(request.body, { actor: actorOf(request), via: "http" });
        return reply.code(201).header("location", thingPath(result.id)).send();
      },
    );

    app.post(
      "/things/batch",
      {
        // Never below what one TD may be: a batch of one is a batch.
        bodyLimit: Math.max(BATCH_BODY_LIMIT, hub.config.bodyLimit),
        schema: {
          summary: `Register or replace up to ${MAX_BATCH_THINGS} TDs in one transaction: all of them, or none and a problem listing each refused TD`,
          tags: ["directory"],
          body: {
            type: "array",
            description: "TDs: with an id, as PUT /things/{id}; without, as POST /things",
          },
        },
      },
      async (request, reply) => {
        const results = await directory.registerAll(request.body, { actor: actorOf(request), via: "http" });
        return reply.code(200).send({
          things: results.map((r) => ({
            id: r.id,
            status: r.unchanged ? "unchanged" : r.created ? "created" : "updated",
            version: r.change.seq,
          })),
        });
      },
    );

    app.get(
      "/things/:id",
      {
        schema: {
          summary: "Retrieve one TD with its registration information",
          tags: ["directory"],
          produces: TD_ANSWERS,
          params: idParam,
        },
      },
      async (request, reply) => {
        const id = idOf(request);
        const record = await directory.getLive(id);
        const validators = validatorsOf(record);
        void reply.header("etag", validators.etag);
        if (validators.lastModified !== undefined)
          void reply.header("last-modified", httpDate(validators.lastModified));
        // RFC 9110 §15.4.5: a 304 carries the Vary a 200 would have.
        if (notModified(request, validators, `the TD of ${id}`))
          return reply.code(304).header("vary", "accept").send();
        return sendTd(request, reply, directory.enriched(record));
      },
    );

    app.put(
      "/things/:id",
      {
        schema: {
          summary: "Create (201) or replace (204) the TD with this id",
          tags: ["directory"],
          params: idParam,
          body: tdBody,
        },
      },
      async (request, reply) => {
        const result = await directory.put(
          idOf(request),
          request.body,
          { actor: actorOf(request), via: "http" },
          await writeConditionOf(request, directory),
        );
        void reply.header("etag", entityTagOf({ version: result.change.seq }));
        return result.created
          ? reply.code(201).header("location", thingPath(result.id)).send()
          : reply.code(204).send();
      },
    );

    app.patch(
      "/things/:id",
      {
        schema: {
          summary: `Update part of a TD with a JSON merge patch (RFC 7396, ${MERGE_PATCH_CONTENT_TYPE})`,
          tags: ["directory"],
          consumes: [MERGE_PATCH_CONTENT_TYPE],
          params: idParam,
          body: { type: "object" },
        },
      },
      async (request, reply) => {
        const result = await directory.patch(
          idOf(request),
          request.body,
          { actor: actorOf(request), via: "http" },
          await writeConditionOf(request, directory),
        );
        return reply
          .code(204)
          .header("etag", entityTagOf({ version: result.change.seq }))
          .send();
      },
    );

    app.delete(
      "/things/:id",
      {
        preValidation: refuseBody,
        schema: { summary: "Remove a TD from the directory", tags: ["directory"], params: idParam },
      },
      async (request, reply) => {
        await directory.remove(
          idOf(request),
          { actor: actorOf(request), via: "http" },
          await writeConditionOf(request, directory),
        );
        return reply.code(204).send();
      },
    );
  };
}
