// Connections that never send a request. Node's headers timeout counts from a request's first
// byte: a connection that sends nothing was kept for ever (measured: still open after 130 s), so
// anyone who reaches the hub could hold its file descriptors with silent sockets, past every
// bound on streams. Such a connection is closed once it has said nothing for the headers timeout.
import type { FastifyInstance } from "fastify";
import type { Socket } from "node:net";

export function closeSilentConnections(app: FastifyInstance, timeoutMs: number): void {
  const waiting = new Map<Socket, NodeJS.Timeout>();
  const spoke = (socket: Socket) => {
    clearTimeout(waiting.get(socket));
    waiting.delete(socket);
  };
  app.server.on("connection", (socket: Socket) => {
    const timer = setTimeout(() => {
      waiting.delete(socket);
      // A timer runs before the loop polls the sockets: when the thread was held up past the
      // timeout (a long callback, the process descheduled on a busy machine), a request that
      // arrived meanwhile is still unread. Let the loop poll once before judging.
      setImmediate(() => {
        // Nothing read at all: no request is in progress, so nothing is cut short. (An upgraded
        // socket sent its handshake; no listener of `upgrade` here: graphql-socket.ts counts them.)
        if (socket.bytesRead === 0) socket.destroy();
      });
    }, timeoutMs).unref();
    waiting.set(socket, timer);
    socket.once("close", () => spoke(socket));
  });
  app.server.on("request", (request: { socket: Socket }) => spoke(request.socket));
}
