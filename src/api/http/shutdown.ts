// Stopping the HTTP server without dropping a request on the floor: while the hub stops, what
// arrives is answered with a problem document (503, Retry-After, `Connection: close`), and what
// clients already sent on their keep-alive connections is read and answered before those close.
import type { FastifyInstance } from "fastify";
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";
import { UnavailableError } from "../../core/index.js";

/** Seconds a client is told to wait before it tries a stopping hub again (a restart takes a few). */
export const STOPPING_RETRY_AFTER_S = 5;
/** The connections are quiet once nothing was read from any of them for this long… */
const QUIET_MS = 50;
/** …or, at the latest, after this long: a client that keeps sending does not hold the stop. */
const MAX_DRAIN_MS = 2_000;

export interface ShutdownOptions {
  /**
   * How long a keep-alive connection answered just before the stop is kept for its client's next
   * request (answered 503, `Connection: close`), in milliseconds. Its last answer said keep-alive,
   * so its client may send again at any moment, and a client held up (a busy or descheduled
   * process) sends later than the quiet period: closing the connection then resets a request its
   * client cannot tell was not recorded. A connection idle for longer is closed at once; the stop
   * waits for no more than this (and {@link MAX_DRAIN_MS}) in all. 0: no wait beyond the quiet.
   */
  readonly graceMs: number;
}

function bytesRead(sockets: ReadonlySet<Socket>): number {
  let total = 0;
  for (const socket of sockets) total += socket.bytesRead;
  return total;
}

/**
 * Fastify's own answer while it closes (`return503OnClosing`) is a body of its own, not a problem
 * document, and has no Retry-After: the server is built with it off, and this answers instead.
 * `server.close()` destroys every connection with no request in progress, and under load a
 * request sits unread in a connection's buffer for a while (the event loop is busy): that
 * request was reset, and its client could not tell whether it was done. So before fastify
 * closes the server (`preClose`), the stop waits until the connections have gone quiet: what was
 * sent meanwhile is read and answered (503, `Connection: close`, so the client stops using the
 * connection), and only connections with nothing to read are closed.
 *
 * A request whose body has still not all arrived then is cut: the hub reads a body whole before
 * it acts on it, so nothing of it was recorded. Left alone, it held the stop for as long as its
 * client trickled bytes, since Node stops enforcing the request timeout once the server closes.
 */
/**
 * The sockets an `upgrade` listener took over from the HTTP server (the GraphQL WebSocket): no
 * HTTP request is ever in progress on them, and their owner closes them on its own terms (1001)
 * when the hub stops, so the stop's sweep of idle connections leaves them alone.
 */
export const upgradedSockets = new WeakSet<object>();

export function registerShutdown(app: FastifyInstance, options: ShutdownOptions = { graceMs: 0 }): void {
  let stopping = false;
  const sockets = new Set<Socket>();
  /** When each connection last had a request read or an answer sent (or was made). */
  const lastActive = new WeakMap<Socket, number>();
  /** The connections with a request in progress (an answer not yet sent, an event stream), and how many. */
  const serving = new Map<Socket, number>();
  /** Set once the stop has closed the connections with nothing in progress. */
  let swept = false;
  const closeIfIdle = (socket: Socket) => {
    if (!serving.has(socket) && !upgradedSockets.has(socket)) socket.destroy();
  };
  app.server.on("connection", (socket: Socket) => {
    sockets.add(socket);
    lastActive.set(socket, performance.now());
    socket.once("close", () => sockets.delete(socket));
    // Connected after the sweep: it has a moment to send its request (answered 503), no more.
    // (Polled once more before it is judged, as in the wait for quiet below.)
    if (swept) setTimeout(() => setImmediate(() => closeIfIdle(socket)), QUIET_MS).unref();
  });
  app.server.on("request", (request: IncomingMessage, response: ServerResponse) => {
    const { socket } = request;
    serving.set(socket, (serving.get(socket) ?? 0) + 1);
    lastActive.set(socket, performance.now());
    response.once("close", () => {
      lastActive.set(socket, performance.now());
      const left = (serving.get(socket) ?? 1) - 1;
      if (left > 0) serving.set(socket, left);
      else serving.delete(socket);
    });
  });
  /** The requests whose bodies are still arriving. */
  const receiving = new Set<IncomingMessage>();
  app.server.on("request", (request: IncomingMessage) => {
    if (request.complete) return;
    receiving.add(request);
    const done = () => receiving.delete(request);
    request.once("end", done);
    request.once("close", done);
  });
  app.addHook("onRequest", async (_request, reply) => {
    if (!stopping) return;
    void reply.header("connection", "close");
    throw new UnavailableError(
      "The hub is stopping; retry once it has started again",
      STOPPING_RETRY_AFTER_S,
    );
  });
  // A request taken before the stop and answered during it: its connection closes after the
  // answer. Kept alive, it held the stop until its client sent again or timed out (72 s).
  app.addHook("onSend", async (_request, reply) => {
    if (stopping) void reply.header("connection", "close");
  });
  app.addHook("preClose", async () => {
    stopping = true;
    const started = performance.now();
    const deadline = started + Math.max(MAX_DRAIN_MS, options.graceMs);
    /** An idle keep-alive connection answered less than the grace ago: its client may still send. */
    const awaited = (now: number) =>
      [...sockets].some(
        (socket) =>
          !serving.has(socket) &&
          !upgradedSockets.has(socket) &&
          now - (lastActive.get(socket) ?? 0) < options.graceMs,
      );
    let read = bytesRead(sockets);
    for (;;) {
      await new Promise<void>((resolve) => setTimeout(resolve, QUIET_MS));
      // A timer runs before the loop polls the sockets: when the thread was held up past the
      // quiet period (a long callback, the process descheduled on a busy machine), what arrived
      // meanwhile is still unread when the timer fires. Let the loop poll once before counting.
      await new Promise<void>((resolve) => setImmediate(resolve));
      const now = bytesRead(sockets);
      const at = performance.now();
      if ((now === read && !awaited(at)) || at >= deadline) break;
      read = now;
    }
    const unfinished = [...receiving].filter((request) => !request.complete);
    if (unfinished.length > 0) {
      app.log.warn(
        { requests: unfinished.length },
        "stopping: cut requests whose bodies had not arrived (nothing of them was recorded)",
      );
    }
    for (const request of unfinished) request.socket.destroy();
    // Node's server.close() (fastify's forceCloseConnections: "idle") closes a keep-alive connection
    // between two requests, but not one that never sent a whole request: a browser's or a proxy's
    // spare connection, or a client that stopped half-way through its headers. Such a connection
    // held the stop until the headers timeout (up to 60 s). Nothing of it was read, so nothing is lost.
    swept = true;
    for (const socket of sockets) closeIfIdle(socket);
  });
}
