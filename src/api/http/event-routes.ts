// Directory notifications (W3C WoT Discovery §7.3.2.5) as Server-Sent Events: thing_created,
// thing_updated, thing_deleted. Event ids are Log positions (`seq`), so a client that
// reconnects with Last-Event-ID gets every event it missed, from the durable Log.
import type { FastifyInstance } from "fastify";
import { createMergePatch, type Change } from "../../core/index.js";
import type { Hub } from "../../hub/index.js";
import { lastEventId, openEventStream, openStreams } from "./event-stream.js";
import { EVENT_STREAM_ANSWERS } from "./accept.js";

export const DIRECTORY_EVENT_TYPES = ["thing_created", "thing_updated", "thing_deleted"] as const;
type DirectoryEventType = (typeof DIRECTORY_EVENT_TYPES)[number];

function eventTypeOf(change: Change): DirectoryEventType | undefined {
  if (change.kind === "removed") return "thing_deleted";
  if (change.kind !== "described") return undefined;
  return change.previous === undefined ? "thing_created" : "thing_updated";
}

/** §7.3.2.5: the id alone, or with `diff=true` the created TD / the update as a merge patch. */
function eventData(type: DirectoryEventType, change: Change, diff: boolean): unknown {
  if (!diff || type === "thing_deleted") return { id: change.thing };
  if (type === "thing_created") return change.value;
  const patch = createMergePatch(change.previous, change.value);
  return { ...(typeof patch === "object" && patch !== null ? patch : {}), id: change.thing };
}

export function eventRoutes(hub: Hub) {
  return async function plugin(app: FastifyInstance): Promise<void> {
    // Open streams would hold the server open forever: end them when it closes.
    app.addHook("preClose", async () => {
      for (const raw of openStreams) raw.end();
    });

    const stream = (path: string, types: readonly DirectoryEventType[], summary: string) => {
      app.get(
        path,
        {
          schema: {
            summary,
            tags: ["events"],
            produces: EVENT_STREAM_ANSWERS,
            querystring: {
              type: "object",
              additionalProperties: false,
              properties: { diff: { type: "boolean", default: false } },
            },
          },
        },
        async (request, reply) => {
          const diff = (request.query as { diff: boolean }).diff;
          const after = await lastEventId(request, hub);
          const wanted = new Set(types);
          openEventStream(request, reply, hub, after, (change) => {
            const type = eventTypeOf(change);
            if (!type || !wanted.has(type)) return undefined;
            return { event: type, data: JSON.stringify(eventData(type, change, diff)) };
          });
        },
      );
    };

    stream(
      "/events",
      DIRECTORY_EVENT_TYPES,
      "Every directory event: thing_created, thing_updated, thing_deleted",
    );
    for (const type of DIRECTORY_EVENT_TYPES) stream(`/events/${type}`, [type], `Only ${type} events`);
  };
}
