// Rollouts, drift and lineage over HTTP: start a rollout of a release, follow its progress (JSON
// and Server-Sent Events), list what drifts now, and a Thing's releases (docs/api.md).
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { UnavailableError, ValidationError, type RolloutStepStatus, quoted } from "../../core/index.js";
import { assertThingId, type Hub, type RolloutEvent, type Rollouts } from "../../hub/index.js";
import { actorOf } from "./authorization.js";
import { EVENT_STREAM_ANSWERS } from "./accept.js";
import { idOf, idParam } from "./directory-routes.js";
import { openStreams } from "./event-stream.js";
import { holdStreamSlot } from "./stream-slots.js";
import { refuseBody } from "./content-types.js";

const HEARTBEAT_MS = 15_000;
const stepStatus = {
  type: "string",
  enum: ["pending", "applying", "completed", "failed", "skipped"],
} as const;
const limit = { type: "integer", minimum: 1, maximum: 1000, default: 100 } as const;

/** A page of `GET /drift` ends at a Thing and property: its cursor names them (base64url JSON). */
function driftCursor(thing: string, affordance: string): string {
  return Buffer.from(JSON.stringify([thing, affordance])).toString("base64url");
}

function driftCursorKey(cursor: string): [string, string] {
  let key: unknown;
  try {
    key = JSON.parse(Buffer.from(cursor, "base64url").toString("utf8"));
  } catch {
    key = undefined;
  }
  if (!Array.isArray(key) || key.length !== 2 || !key.every((part) => typeof part === "string")) {
    throw new ValidationError(`cursor ${quoted(cursor)} is not one that GET /drift gave as \`next\``, [
      { pointer: "/query/cursor", message: "is not a cursor of GET /drift" },
    ]);
  }
  return key as [string, string];
}

/** The order of Drift.list: by Thing, then property. */
function compareDriftKeys(a: [string, string], b: [string, string]): number {
  if (a[0] !== b[0]) return a[0] < b[0] ? -1 : 1;
  return a[1] === b[1] ? 0 : a[1] < b[1] ? -1 : 1;
}

function rolloutsOf(hub: Hub): Rollouts {
  if (!hub.rollouts)
    throw new UnavailableError("This hub runs without bindings: it cannot roll out releases");
  return hub.rollouts;
}

function writeEvent(reply: FastifyReply, event: string, data: unknown): void {
  reply.raw.write(`event: ${event}\ndata: ${JSON.stringify(data)}\n\n`);
}

/**
 * `GET /rollouts/{id}/events`: the rollout now (`status`), then each step and status as it
 * happens; ends once the rollout has ended and no step of it is in flight (a step out when it was
 * cancelled, or stopped past --max-failures, ends after it: its end is said too).
 */
async function streamRollout(hub: Hub, request: FastifyRequest, reply: FastifyReply): Promise<void> {
  const rollouts = rolloutsOf(hub);
  const id = (request.params as { id: string }).id;
  const initial = await rollouts.get(id);
  holdStreamSlot(request, reply);
  reply.hijack();
  const res = reply.raw;
  res.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    // No Connection header: Node writes keep-alive, or close when the client asked to close (a
    // HEAD answered with keep-alive held the socket open for nobody).
    "x-accel-buffering": "no",
  });
  // HEAD: the headers alone (Node would send nothing, and the stream would stay open for nobody).
  if (request.method === "HEAD") {
    res.end();
    return;
  }
  openStreams.add(res);
  // Subscribe before reading again, so nothing falls between the two.
  const buffered: RolloutEvent[] = [];
  let live = false;
  const end = () => {
    unsubscribe();
    clearInterval(heartbeat);
    openStreams.delete(res);
    res.end();
  };
  const send = (event: RolloutEvent) => {
    if (event.rollout !== id) return;
    writeEvent(reply, event.type, event);
    if (event.type === "status" && event.status !== "running") ended = true;
    if (ended && event.progress.applying === 0) end();
  };
  let ended = false;
  const unsubscribe = rollouts.subscribe((event) => {
    if (live) send(event);
    else buffered.push(event);
  }, id);
  const heartbeat = setInterval(() => res.write(": keep-alive\n\n"), HEARTBEAT_MS).unref();
  res.on("close", () => {
    unsubscribe();
    clearInterval(heartbeat);
    openStreams.delete(res);
  });
  const now = await rollouts.get(id).catch(() => initial);
  writeEvent(reply, "status", {
    type: "status",
    rollout: id,
    status: now.status,
    ...(now.reason !== undefined && { reason: now.reason }),
    progress: now.progress,
  });
  if (now.status !== "running") {
    ended = true;
    if (now.progress.applying === 0) return end();
  }
  live = true;
  for (const event of buffered.splice(0)) send(event);
}

export function rolloutRoutes(hub: Hub) {
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.post(
      "/releases/:id/rollouts",
      {
        schema: {
          summary: "Roll out a release: apply each planned step once, Thing by Thing (202, then follow it)",
          tags: ["releases"],
          params: { type: "object", properties: { id: { type: "string", minLength: 1, maxLength: 256 } } },
          body: {
            type: "object",
            additionalProperties: false,
            properties: {
              select: { type: "string", minLength: 1, maxLength: 8192 },
              concurrency: { type: "integer", minimum: 1, maximum: 1000 },
              maxFailures: { type: "integer", minimum: 0 },
            },
          },
        },
        // Every option has its default: no body is `{}`, not a 400 "The request has no body".
        preValidation: async (request) => {
          if (request.body === undefined) request.body = {};
        },
      },
      async (request, reply) => {
        const { id } = request.params as { id: string };
        const body = request.body as { select?: string; concurrency?: number; maxFailures?: number };
        const rollout = await rolloutsOf(hub).start(id, body, { actor: actorOf(request) });
        return reply
          .code(202)
          .header("location", `/rollouts/${encodeURIComponent(rollout.id)}`)
          .send(rollout);
      },
    );

    app.get(
      "/rollouts",
      {
        schema: {
          summary: "Rollouts, newest first, with their progress",
          tags: ["releases"],
          querystring: {
            type: "object",
            additionalProperties: false,
            properties: {
              status: { type: "string", enum: ["running", "completed", "failed"] },
              release: { type: "string" },
              limit,
              offset: { type: "integer", minimum: 0, default: 0 },
            },
          },
        },
      },
      async (request) => {
        const q = request.query as { status?: "running"; release?: string; limit: number; offset: number };
        return { rollouts: await rolloutsOf(hub).list(q) };
      },
    );

    app.get(
      "/rollouts/:id",
      {
        schema: {
          summary: "One rollout: its release, options, status and progress (steps by status)",
          tags: ["releases"],
          params: { type: "object", properties: { id: { type: "string", minLength: 1 } } },
        },
      },
      async (request) => rolloutsOf(hub).get((request.params as { id: string }).id),
    );

    app.post(
      "/rollouts/:id/cancel",
      {
        preValidation: refuseBody,
        schema: {
          summary:
            "Cancel a running rollout: no new step starts, pending steps are skipped, a step in flight sends nothing more and makes no release active; 409 once it has ended",
          tags: ["releases"],
          params: { type: "object", properties: { id: { type: "string", minLength: 1 } } },
        },
      },
      async (request) =>
        rolloutsOf(hub).cancel((request.params as { id: string }).id, { actor: actorOf(request) }),
    );

    app.get(
      "/rollouts/:id/steps",
      {
        schema: {
          summary:
            "A rollout's steps (one per Thing) in order, with each item's outcome; cursor = last position",
          tags: ["releases"],
          params: { type: "object", properties: { id: { type: "string", minLength: 1 } } },
          querystring: {
            type: "object",
            additionalProperties: false,
            properties: { status: stepStatus, cursor: { type: "integer", minimum: -1 }, limit },
          },
        },
      },
      async (request) => {
        const q = request.query as { status?: RolloutStepStatus; cursor?: number; limit: number };
        const steps = await rolloutsOf(hub).steps((request.params as { id: string }).id, {
          limit: q.limit,
          ...(q.status !== undefined && { status: q.status }),
          ...(q.cursor !== undefined && { after: q.cursor }),
        });
        const last = steps.at(-1);
        return { steps, ...(steps.length === q.limit && last && { next: last.position }) };
      },
    );

    app.get(
      "/rollouts/:id/events",
      {
        schema: {
          summary:
            "A rollout's progress as Server-Sent Events: `status` now, then `step` and `status` events until it ends",
          tags: ["releases"],
          produces: EVENT_STREAM_ANSWERS,
          params: { type: "object", properties: { id: { type: "string", minLength: 1 } } },
        },
      },
      (request, reply) => streamRollout(hub, request, reply),
    );

    app.get(
      "/drift",
      {
        schema: {
          summary: "What drifts now: per Thing and property, the active release's value and the observed one",
          tags: ["releases"],
          querystring: {
            type: "object",
            additionalProperties: false,
            properties: {
              thing: { type: "string" },
              // No default: a client that asks for no page gets every entry, as before pages.
              limit: { type: "integer", minimum: 1, maximum: 1000 },
              cursor: { type: "string", minLength: 1, maxLength: 4096 },
            },
          },
        },
      },
      async (request) => {
        const q = request.query as { thing?: string; limit?: number; cursor?: string };
        // A mistyped id is said as such, as for a lineage, not answered "nothing drifts".
        if (q.thing !== undefined) {
          assertThingId(q.thing, "/query/thing");
          await hub.history.assertKnown(q.thing);
        }
        const all = hub.drift.list(q.thing);
        // The entries are ordered by Thing and property; a cursor is the last one a page showed, so
        // a page goes on after it even when entries before it resolved in between.
        const after = q.cursor === undefined ? undefined : driftCursorKey(q.cursor);
        const rest =
          after === undefined ? all : all.filter((e) => compareDriftKeys([e.thing, e.affordance], after) > 0);
        const page = q.limit === undefined ? rest : rest.slice(0, q.limit);
        const last = page.at(-1);
        return {
          drift: page,
          total: all.length,
          ...(page.length < rest.length && last && { next: driftCursor(last.thing, last.affordance) }),
        };
      },
    );

    app.get(
      "/things/:id/releases",
      {
        schema: {
          summary: "A Thing's lineage: its active release, and which release replaced which, newest first",
          tags: ["releases"],
          params: idParam,
          querystring: { type: "object", additionalProperties: false, properties: { limit } },
        },
      },
      async (request) => {
        const id = idOf(request);
        await hub.history.assertKnown(id);
        const { limit: n } = request.query as { limit: number };
        const lineage = await rolloutsOf(hub).lineage(id, n);
        return { thing: id, active: lineage[0]?.release ?? null, lineage };
      },
    );
  };
}
