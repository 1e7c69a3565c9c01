// Connections that never send a request. Node's headers timeout counts from a request's first
// byte: a connection that sends nothing was kept for ever (measured: still open after 130 s), so
// anyone who reaches the hub could hold its file descriptors with silent sockets, past every
// bound on streams. Such a connection is closed once it has said nothing for the headers timeout.
import type { FastifyInstance } from "fastify";
import type { Socket } from "node:net";

/**
 * Closes `socket` without an answer if it has read nothing once the loop has polled it. A timer
 * runs before the loop polls the sockets: when the thread was held up past the timeout (a long
 * callback, the process descheduled on a busy machine), a request that arrived meanwhile is still
 * unread. Nothing read at all: no request is in progress, so nothing is cut short. (An upgraded
 * socket sent its handshake; no listener of `upgrade` here: graphql-socket.ts counts them.)
 */
function closeIfSilent(socket: Socket): void {
  setImmediate(() => {
    if (socket.bytesRead === 0) socket.destroy();
  });
}

/**
 * Node 20 checks the headers timeout of a connection from the moment it is made, too (every
 * `connectionsCheckingInterval`), and reports a silent one as a request timeout (`clientError`,
 * ERR_HTTP_REQUEST_TIMEOUT) before the loop polls it. Answered by `handler`, a silent connection
 * got a 408 when that check came first (the hub held up past both), none when the hub's own timer
 * did, and a request that had arrived unread meanwhile got a 408 too. This judges such a connection
 * as the hub's timer does; every other client error goes to `handler`.
 */
export function silentConnectionsFirst(
  handler: (error: NodeJS.ErrnoException, socket: Socket) => void,
): (error: NodeJS.ErrnoException, socket: Socket) => void {
  return (error, socket) => {
    if (error.code === "ERR_HTTP_REQUEST_TIMEOUT" && socket.bytesRead === 0 && !socket.destroyed) {
      closeIfSilent(socket);
      return;
    }
    handler(error, socket);
  };
}

export function closeSilentConnections(app: FastifyInstance, timeoutMs: number): void {
  const waiting = new Map<Socket, NodeJS.Timeout>();
  const spoke = (socket: Socket) => {
    clearTimeout(waiting.get(socket));
    waiting.delete(socket);
  };
  app.server.on("connection", (socket: Socket) => {
    const timer = setTimeout(() => {
      waiting.delete(socket);
      closeIfSilent(socket);
    }, timeoutMs).unref();
    waiting.set(socket, timer);
    socket.once("close", () => spoke(socket));
  });
  app.server.on("request", (request: { socket: Socket }) => spoke(request.socket));
}
