import Fastify, { type FastifyInstance } from "fastify";
import { connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { sendProblem } from "./problem.js";
import { registerShutdown } from "./shutdown.js";
import { answersOn, holdThread } from "../../../test/support/held-thread.js";

const REQUEST = "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n";

describe("stopping the HTTP server", () => {
  const apps: FastifyInstance[] = [];
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close().catch(() => undefined);
  });

  async function serve(graceMs: number): Promise<{ app: FastifyInstance; port: number }> {
    const app = Fastify({ return503OnClosing: false, forceCloseConnections: "idle" });
    apps.push(app);
    app.setErrorHandler((error, request, reply) => sendProblem(request, reply, error));
    app.get("/ping", async () => ({ ok: true }));
    registerShutdown(app, { graceMs });
    await app.listen({ port: 0, host: "127.0.0.1" });
    return { app, port: (app.server.address() as { port: number }).port };
  }

  /** A connection whose first request was answered (keep-alive), and what it gets until it closes. */
  async function answeredOnce(port: number) {
    const socket = connect(port, "127.0.0.1");
    const outcome = answersOn(socket);
    await new Promise<void>((resolve) => socket.once("connect", resolve));
    const first = new Promise<void>((resolve) => {
      const seen = (chunk: Buffer) => {
        if (chunk.toString("latin1").includes('{"ok":true}')) {
          socket.off("data", seen);
          resolve();
        }
      };
      socket.on("data", seen);
    });
    socket.write(REQUEST);
    await first;
    return { socket, outcome };
  }

  /** The answers in `text`: the first a 200, the second the stop's 503 closing the connection. */
  function expectAnsweredThenRefused(text: string): void {
    const answers = text.split(/(?=HTTP\/1\.1 \d{3} )/);
    expect(answers).toHaveLength(2);
    expect(answers[0]).toMatch(/^HTTP\/1\.1 200 /);
    expect(answers[1]).toMatch(/^HTTP\/1\.1 503 /);
    expect(answers[1]).toMatch(/\r\nconnection: close\r\n/i);
    expect(answers[1]).toMatch(/\r\nretry-after: \d+\r\n/i);
    expect(answers[1]).toMatch(/\r\ncontent-type: application\/problem\+json/i);
  }

  it("reads what arrived while its thread was held up before it decides the connections are quiet", async () => {
    const { app, port } = await serve(0);
    const { socket, outcome } = await answeredOnce(port);

    const closed = app.close();
    // While the stop waits for quiet, the client sends its next request and the thread is then
    // held up past the quiet period in a callback of the loop's check phase, so the stop's timer
    // is due before the loop next polls the sockets.
    setTimeout(() => {
      setImmediate(() => {
        socket.write(REQUEST);
        holdThread(200);
      });
    }, 10);
    await closed;
    const { text, reset } = await outcome;

    // The request was read and answered (503, the connection closed after it), not reset unread.
    expect(reset).toBe(false);
    expectAnsweredThenRefused(text);
  });

  it("keeps a connection it answered just before the stop for its client's next request, sent late", async () => {
    const { app, port } = await serve(2_000);
    const { socket, outcome } = await answeredOnce(port);

    const closed = app.close();
    // The client is held up (a busy or descheduled process): its next request comes well after
    // the stop's quiet period, on a connection whose last answer said keep-alive.
    setTimeout(() => socket.write(REQUEST), 300);
    await closed;
    const { text, reset } = await outcome;

    expect(reset).toBe(false);
    expectAnsweredThenRefused(text);
  });

  it("closes at once a connection idle for longer than the grace, without an answer", async () => {
    const { app, port } = await serve(100);
    const { socket, outcome } = await answeredOnce(port);
    await new Promise((resolve) => setTimeout(resolve, 300));

    let wrote = false;
    const late = setTimeout(() => {
      wrote = true;
      socket.write(REQUEST);
    }, 20_000);
    await app.close();
    const { text, reset } = await outcome;
    clearTimeout(late);

    // Closed by the stop before its client sent again: nothing was cut, nothing answered.
    expect(wrote).toBe(false);
    expect(reset).toBe(false);
    expect(text.split(/(?=HTTP\/1\.1 \d{3} )/)).toHaveLength(1);
  });
});
