// Server-Sent Event streams of the Log (directory events, the change feed): replay from
// Last-Event-ID out of the durable Log, then live, with heartbeats and a bound on how far a
// slow client may fall behind (it is closed, and resumes where it stopped).
import type { FastifyReply, FastifyRequest } from "fastify";
import type { ServerResponse } from "node:http";
import {
  UnauthorizedError,
  ValidationError,
  parseSeq,
  type BindingError,
  type Change,
} from "../../core/index.js";
import type { Commands, Hub, UriVariables } from "../../hub/index.js";
import { holdStreamSlot } from "./stream-slots.js";
import { withinMs } from "./stream-stall.js";

/**
 * A stream whose unsent output grows past this (or past its share of `streamBufferBytes`) is
 * closed; the client resumes from its last id.
 */
const MAX_BUFFERED_BYTES = 4 * 1024 * 1024;
const HEARTBEAT_MS = 15_000;

export type RenderEvent = (change: Change) => { event: string; data: string } | undefined;

/** Streams open on this process, ended when the server closes. */
export const openStreams = new Set<ServerResponse>();

/** The `Last-Event-ID` header as a Log position, refused when malformed or past the Log's end. */
export async function lastEventId(request: FastifyRequest, hub: Hub): Promise<number | undefined> {
  const header = request.headers["last-event-id"];
  if (header === undefined || header === "") return undefined;
  const text = Array.isArray(header) ? (header[0] ?? "") : header;
  const after = parseSeq(text, { name: "Last-Event-ID", pointer: "/headers/last-event-id", min: 0 });
  const last = await hub.store.lastSeq();
  if (after > last) {
    throw new ValidationError(
      `Last-Event-ID ${after} is past the end of this hub's log (its last event is ${last}); ` +
        "reconnect without it, or with an id this hub sent",
      [{ pointer: "/headers/last-event-id", message: `must be at most ${last}` }],
    );
  }
  return after;
}

export function openEventStream(
  request: FastifyRequest,
  reply: FastifyReply,
  hub: Hub,
  after: number | undefined,
  render: RenderEvent,
): void {
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
  // HEAD: the headers alone. Node drops a HEAD answer's writes without sending even its headers,
  // so the stream would follow the Log for nobody, forever, never seen to fall behind.
  if (request.method === "HEAD") {
    res.end();
    return;
  }
  res.write("retry: 2000\n\n");
  openStreams.add(res);

  // A write after the stream was cut would fail; one failing on its own (a reset) ends it too.
  const open = () => !res.destroyed && !res.writableEnded;
  res.on("error", (err) => request.log.debug({ err }, "an event stream failed"));
  let cutting = false;
  /**
   * A client that does not read: its socket is destroyed (ending it would wait for that client to
   * read what is queued first) and it stops following, once. It resumes with its last id.
   */
  const cut = (why: string) => {
    if (cutting) return;
    cutting = true;
    follower.stop();
    request.log.warn(
      { unsentBytes: res.writableLength, why },
      "closing an event stream whose client does not keep up; it may resume with Last-Event-ID",
    );
    res.destroy();
  };
  /**
   * The events of one commit (they arrive together), or of one replayed page, written as one chunk:
   * one syscall, and one buffer for the socket to take rather than four per event (a page of 500
   * was 2,000, more than one writev takes, so the loop's next poll could not send it all).
   */
  let batch = "";
  const flush = () => {
    const text = batch;
    batch = "";
    if (text === "" || !open()) return;
    res.write(text);
    // Its share of what all streams may hold: 300 clients that read nothing each held 4 MiB
    // (with the strings' overhead, 3.4 GB of the hub's memory), however small each share is.
    const limit = Math.min(
      MAX_BUFFERED_BYTES,
      Math.floor(hub.config.streamBufferBytes / Math.max(1, openStreams.size)),
    );
    if (res.writableLength > limit) cut(`more than ${limit} bytes unsent`);
  };
  const follower = hub.follow(
    (change) => {
      if (!open()) return;
      const event = render(change);
      if (!event) return;
      if (batch === "") process.nextTick(flush);
      batch += `id: ${change.seq}\nevent: ${event.event}\ndata: ${event.data}\n\n`;
      // A commit larger than a stream may hold goes out (or is cut) as it comes, not built whole.
      if (batch.length > MAX_BUFFERED_BYTES) flush();
    },
    {
      ...(after !== undefined && { after }),
      // A replay waits for the client to read; one that reads nothing for streamStallMs is cut.
      pace: () => {
        flush();
        if (!res.writableNeedDrain || !open()) return Promise.resolve();
        const drained = new Promise<void>((resolve) => {
          const done = () => {
            res.off("drain", done);
            res.off("close", done);
            resolve();
          };
          res.once("drain", done);
          res.once("close", done);
        });
        return withinMs(drained, hub.config.streamStallMs, () =>
          cut(`nothing read for ${hub.config.streamStallMs} ms while replaying`),
        );
      },
    },
  );
  const heartbeat = setInterval(() => {
    if (open()) res.write(": keep-alive\n\n");
  }, HEARTBEAT_MS).unref();
  res.on("close", () => {
    clearInterval(heartbeat);
    follower.stop();
    openStreams.delete(res);
  });
  follower.ready.catch((err: unknown) => {
    request.log.error({ err }, "event stream replay failed");
    if (open()) res.end();
  });
}

/**
 * An event or a property of a Thing subscribed with URI variables, relayed as Server-Sent Events
 * while the client stays (`GET /things/{id}/events/{name}?var=value`, `…/properties/{name}/observe?var=value`):
 * one `message` per value (data = the event's data or the property's value; no id: nothing is
 * recorded, so there is nothing to resume from), an `error`
 * event (data = `{reason, message}`) for a failure the subscription goes on after (a break it
 * reconnects from, data that does not fit the schema), and the end of the stream after one it
 * does not. Subscribed before the answer starts, so that a Thing that cannot be reached is a 502
 * problem rather than an empty stream.
 */
export async function relayAffordance(
  request: FastifyRequest,
  reply: FastifyReply,
  commands: Pick<Commands, "subscribe">,
  affordance: { thing: string; kind: "event" | "property"; name: string },
  uriVariables: UriVariables,
): Promise<void> {
  // The Thing is asked, once per client, as a live read asks it: not for anonymous callers, who
  // could otherwise have the hub open (and poll) a device stream per connection they hold.
  if (request.principal === undefined) {
    throw new UnauthorizedError(
      `Asking a Thing for a stream of its own (a ${affordance.kind} with URI variables) requires a bearer token; without them the stream is the Log's, open while reads are`,
    );
  }
  // Before the Thing is asked for anything: a client past its streams costs it nothing.
  holdStreamSlot(request, reply);
  // What comes before the answer's head is written (a polled property's first value) waits here.
  const early: string[] = [];
  const out: { res?: ServerResponse } = {};
  const open = () => out.res !== undefined && !out.res.destroyed && !out.res.writableEnded;
  const send = (chunk: string) => {
    if (out.res === undefined) early.push(chunk);
    else if (open() && out.res.writableLength <= MAX_BUFFERED_BYTES) out.res.write(chunk);
    // A client that does not read is cut: nothing is recorded, so it loses only what it did not read.
    else if (open()) out.res.destroy();
  };
  let ended = false;
  const subscription = await commands.subscribe(
    affordance.thing,
    affordance.kind,
    affordance.name,
    uriVariables,
    (data) => send(`event: message\ndata: ${JSON.stringify(data ?? null)}\n\n`),
    (error: BindingError) => {
      const detail = error.detail as { reason?: unknown; ended?: unknown } | undefined;
      const reason = typeof detail?.reason === "string" ? detail.reason : "error";
      send(`event: error\ndata: ${JSON.stringify({ reason, message: error.message })}\n\n`);
      if (detail?.ended === true) {
        ended = true;
        if (open()) out.res?.end();
      }
    },
  );
  reply.hijack();
  const stream = reply.raw;
  stream.writeHead(200, {
    "content-type": "text/event-stream; charset=utf-8",
    "cache-control": "no-cache",
    // No Connection header: Node writes keep-alive, or close when the client asked to close (a
    // HEAD answered with keep-alive held the socket open for nobody).
    "x-accel-buffering": "no",
  });
  openStreams.add(stream);
  stream.on("error", (err) => request.log.debug({ err }, "an event relay failed"));
  const heartbeat = setInterval(() => {
    if (open()) stream.write(": keep-alive\n\n");
  }, HEARTBEAT_MS).unref();
  stream.on("close", () => {
    clearInterval(heartbeat);
    openStreams.delete(stream);
    subscription.close().catch((err: unknown) => request.log.debug({ err }, "closing an event relay failed"));
  });
  if (request.method === "HEAD") {
    stream.end();
    return;
  }
  stream.write(early.splice(0).join(""));
  out.res = stream;
  if (ended) stream.end();
}
