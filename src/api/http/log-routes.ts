// The Log's tamper evidence over HTTP (RFC 9162 style): the hub's public key, signed
// checkpoints, inclusion and consistency proofs, and the entries themselves for verification.
import type { FastifyInstance } from "fastify";
import { ValidationError, parseSeqList, wholeNumbers } from "../../core/index.js";
import type { Hub } from "../../hub/index.js";
import { COMMA_LIST } from "./query-numbers.js";

/**
 * `after` past the Log's end is no position this hub's Log has had (another hub's, or one from
 * before the database was restored from a backup): an empty page would read as "nothing since"
 * while the Log has Changes there. Asked only when a page comes back empty.
 */
async function checkAfter(after: number, hub: Hub): Promise<void> {
  const last = await hub.store.lastSeq();
  if (after > last) {
    throw new ValidationError(
      `after ${after} is past the end of the Log (${last} Changes): it is no position this hub's Log has had; start again from 0`,
      [{ pointer: "/query/after", message: `must be at most ${last}` }],
    );
  }
}

/**
 * A number past what the Log holds (`why`: "is past the end of the Log (5 Changes)"), refused
 * with what it must be instead.
 */
function pastTheLog(name: string, value: number, max: number, why: string): ValidationError {
  const message =
    max < 1 ? "must name a Change, and the Log holds none yet" : `must be ${wholeNumbers(1, max)}`;
  return new ValidationError(`${name} ${value} ${why}: it ${message}`, [
    { pointer: `/query/${name}`, message },
  ]);
}

/**
 * The size of the tree proofs are asked in: `size` when given, checked against the Log's end,
 * else the latest checkpoint's (signed now if Changes are not yet covered).
 */
async function treeSize(hub: Hub, size: number | undefined): Promise<number> {
  if (size === undefined) return (await hub.notary.checkpoint())?.size ?? 0;
  const last = await hub.store.lastSeq();
  if (size > last) throw pastTheLog("size", size, last, `is past the end of the Log (${last} Changes)`);
  return size;
}

/** Changes whose inclusion proofs one GET /log/proof/inclusions may ask for. */
export const MAX_PROOFS = 500;

export function logRoutes(hub: Hub) {
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.get(
      "/log/key",
      { schema: { summary: "The Ed25519 public key that signs this hub's checkpoints", tags: ["log"] } },
      async () => ({ origin: hub.id, algorithm: "Ed25519", publicKey: hub.notary.publicKeyPem }),
    );

    app.get(
      "/log/checkpoint",
      {
        schema: {
          summary: "The latest signed checkpoint (signed now if Changes are not yet covered)",
          tags: ["log"],
        },
      },
      async (_request, reply) => {
        const checkpoint = await hub.notary.checkpoint();
        if (!checkpoint) return reply.code(204).send();
        return checkpoint;
      },
    );

    app.get(
      "/log/checkpoints",
      {
        schema: {
          summary: "Signed checkpoints, oldest first, after a tree size",
          tags: ["log"],
          querystring: {
            type: "object",
            additionalProperties: false,
            properties: {
              after: { type: "integer", minimum: 0, default: 0 },
              limit: { type: "integer", minimum: 1, maximum: 100_000, default: 1000 },
            },
          },
        },
      },
      async (request, reply) => {
        const { after, limit } = request.query as { after: number; limit: number };
        const checkpoints = await hub.store.checkpoints({ after, limit });
        if (checkpoints.length === 0) await checkAfter(after, hub);
        // A full page may not be the last: a verifier that stopped there would check the Changes
        // after it against no signature.
        const last = checkpoints.at(-1);
        if (checkpoints.length === limit && last) {
          void reply.header("link", `</log/checkpoints?after=${last.size}&limit=${limit}>; rel="next"`);
        }
        return checkpoints;
      },
    );

    app.get(
      "/log/proof/inclusion",
      {
        schema: {
          summary:
            "RFC 9162 inclusion proof of Change `seq` in the tree of `size` (default: the latest checkpoint)",
          tags: ["log"],
          querystring: {
            type: "object",
            required: ["seq"],
            additionalProperties: false,
            properties: { seq: { type: "integer", minimum: 1 }, size: { type: "integer", minimum: 1 } },
          },
        },
      },
      async (request) => {
        const query = request.query as { seq: number; size?: number };
        const size = await treeSize(hub, query.size);
        if (query.seq > size) throw pastTheLog("seq", query.seq, size, `is past the tree of ${size} Changes`);
        return hub.notary.inclusion(query.seq, size);
      },
    );

    app.get(
      "/log/proof/inclusions",
      {
        schema: {
          summary: `RFC 9162 inclusion proofs of up to ${MAX_PROOFS} Changes in the tree of \`size\` (default: the latest checkpoint), read together`,
          tags: ["log"],
          querystring: {
            type: "object",
            required: ["seqs"],
            additionalProperties: false,
            properties: {
              // Read by parseSeqList, which says which item is wrong: a pattern over the whole
              // list could only say that the list is.
              seqs: {
                type: "string",
                description: `up to ${MAX_PROOFS} seqs (whole numbers from 1) separated by commas`,
                [COMMA_LIST]: true,
              },
              size: { type: "integer", minimum: 1 },
            },
          },
        },
      },
      async (request) => {
        const query = request.query as { seqs: string; size?: number };
        const size = await treeSize(hub, query.size);
        const source = { name: "seqs", pointer: "/query/seqs", maxItems: MAX_PROOFS, max: size };
        return hub.notary.inclusions(parseSeqList(query.seqs, source), size);
      },
    );

    app.get(
      "/log/proof/consistency",
      {
        schema: {
          summary: "RFC 9162 consistency proof between the trees of `from` and `to` Changes",
          tags: ["log"],
          querystring: {
            type: "object",
            required: ["from", "to"],
            additionalProperties: false,
            properties: { from: { type: "integer", minimum: 1 }, to: { type: "integer", minimum: 1 } },
          },
        },
      },
      async (request) => {
        const { from, to } = request.query as { from: number; to: number };
        const last = await hub.store.lastSeq();
        if (to > last) throw pastTheLog("to", to, last, `is past the end of the Log (${last} Changes)`);
        if (from > to) throw pastTheLog("from", from, to, `is larger than to (${to})`);
        return hub.notary.consistency(from, to);
      },
    );

    app.get(
      "/log/entries",
      {
        schema: {
          summary:
            "The Log's Changes as NDJSON, oldest first, for verification and export: each line a Change's canonical JSON (RFC 8785) with its recorded leaf hash as a last member",
          tags: ["log"],
          produces: ["application/x-ndjson"],
          querystring: {
            type: "object",
            additionalProperties: false,
            properties: {
              after: { type: "integer", minimum: 0, default: 0 },
              limit: { type: "integer", minimum: 1, maximum: 100_000, default: 10_000 },
            },
          },
        },
      },
      async (request, reply) => {
        const { after, limit } = request.query as { after: number; limit: number };
        // The store writes the lines from what it holds (each Change's canonical JSON and its
        // recorded leaf), so a verifier hashes their bytes as sent: nothing is parsed here.
        const page = await hub.store.logEntries(after, limit);
        if (page.count === 0) await checkAfter(after, hub);
        if (page.count === limit) {
          void reply.header("link", `</log/entries?after=${page.last}&limit=${limit}>; rel="next"`);
        }
        return reply
          .type("application/x-ndjson")
          .send(Buffer.from(page.body.buffer, page.body.byteOffset, page.body.byteLength));
      },
    );
  };
}
