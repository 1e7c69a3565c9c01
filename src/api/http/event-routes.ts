// Directory notifications (W3C WoT Discovery §7.3.2.5) as Server-Sent Events: thing_created,
// thing_updated, thing_deleted. Event ids are Log positions (`seq`), so a client that
// reconnects with Last-Event-ID gets every event it missed, from the durable Log.
import type { FastifyInstance, FastifyRequest } from "fastify";
import type { ServerResponse } from "node:http";
import { ValidationError, createMergePatch, type Change } from "../../core/index.js";
import type { Hub } from "../../hub/index.js";

export const DIRECTORY_EVENT_TYPES = ["thing_created", "thing_updated", "thing_deleted"] as const;
type DirectoryEventType = (typeof DIRECTORY_EVENT_TYPES)[number];

/** A stream whose unsent output grows past this is closed; the client resumes from its last id. */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
const HEARTBEAT_MS = 15_000;

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

function lastEventId(request: FastifyRequest): number | undefined {
  const header = request.headers["last-event-id"];
  if (header === undefined || header === "") return undefined;
  const text = Array.isArray(header) ? (header[0] ?? "") : header;
  if (!/^\d{1,15}$/.test(text)) {
    throw new ValidationError(`Last-Event-ID must be an event id this hub sent (a number), not "${text}"`, [
      { pointer: "/headers/last-event-id", message: "must be a non-negative integer" },
    ]);
  }
  return Number(text);
}

export function eventRoutes(hub: Hub) {
  const streams = new Set<ServerResponse>();

  return async function plugin(app: FastifyInstance): Promise<void> {
    // Open streams would hold the server open forever: end them when it closes.
    app.addHook("preClose", async () => {
      for (const raw of streams) raw.end();
    });

    const stream = (path: string, types: readonly DirectoryEventType[], summary: string) => {
      app.get(
        path,
        {
          schema: {
            summary,
            tags: ["events"],
            querystring: {
              type: "object",
              additionalProperties: false,
              properties: { diff: { type: "boolean", default: false } },
            },
          },
        },
        async (request, reply) => {
          const diff = (request.query as { diff: boolean }).diff;
          const after = lastEventId(request);
          if (after !== undefined) {
            const last = await hub.store.lastSeq();
            if (after > last) {
              throw new ValidationError(
                `Last-Event-ID ${after} is past the end of this hub's log (its last event is ${last}); ` +
                  "reconnect without it, or with an id this hub sent",
                [{ pointer: "/headers/last-event-id", message: `must be at most ${last}` }],
              );
            }
          }
          const wanted = new Set(types);
          reply.hijack();
          const res = reply.raw;
          res.writeHead(200, {
            "content-type": "text/event-stream; charset=utf-8",
            "cache-control": "no-cache",
            connection: "keep-alive",
            "x-accel-buffering": "no",
          });
          res.write("retry: 2000\n\n");
          streams.add(res);

          const follower = hub.follow(
            (change) => {
              const type = eventTypeOf(change);
              if (!type || !wanted.has(type)) return;
              const data = JSON.stringify(eventData(type, change, diff));
              res.write(`id: ${change.seq}\nevent: ${type}\ndata: ${data}\n\n`);
              if (res.writableLength > MAX_BUFFERED_BYTES) {
                request.log.warn("closing an event stream whose client does not keep up");
                res.end();
              }
            },
            {
              ...(after !== undefined && { after }),
              pace: () =>
                res.writableNeedDrain
                  ? new Promise<void>((resolve) => res.once("drain", resolve))
                  : Promise.resolve(),
            },
          );
          const heartbeat = setInterval(() => res.write(": keep-alive\n\n"), HEARTBEAT_MS).unref();
          const cleanup = () => {
            clearInterval(heartbeat);
            follower.stop();
            streams.delete(res);
          };
          res.on("close", cleanup);
          follower.ready.catch((err: unknown) => {
            request.log.error({ err }, "event stream replay failed");
            res.end();
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
