import Fastify, { type FastifyInstance } from "fastify";
import { connect } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { closeSilentConnections } from "./silent-connections.js";
import { answersOn, holdThread } from "../../../test/support/held-thread.js";

describe("closing silent connections", () => {
  const apps: FastifyInstance[] = [];
  afterEach(async () => {
    for (const app of apps.splice(0)) await app.close().catch(() => undefined);
  });

  it("reads what arrived while its thread was held up before it judges a connection silent", async () => {
    const app = Fastify();
    apps.push(app);
    app.get("/ping", async () => ({ ok: true }));
    closeSilentConnections(app, 50);
    await app.listen({ port: 0, host: "127.0.0.1" });
    const { port } = app.server.address() as { port: number };

    const accepted = new Promise<void>((resolve) => app.server.once("connection", () => resolve()));
    const socket = connect(port, "127.0.0.1");
    const outcome = answersOn(socket);
    await accepted;
    // The client sends its request at once, and the thread is then held up past the timeout in a
    // callback of the loop's check phase: the timer is due before the loop next polls the socket.
    setImmediate(() => {
      socket.write("GET /ping HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
      holdThread(200);
    });
    const { text, reset } = await outcome;

    // The request was read and answered, not cut unread.
    expect(reset).toBe(false);
    expect(text).toMatch(/^HTTP\/1\.1 200 /);
    expect(text).toContain('{"ok":true}');
  });

  it("closes a connection that sent nothing within the timeout", async () => {
    const app = Fastify();
    apps.push(app);
    closeSilentConnections(app, 50);
    await app.listen({ port: 0, host: "127.0.0.1" });
    const { port } = app.server.address() as { port: number };
    const socket = connect(port, "127.0.0.1");
    const { text } = await answersOn(socket);
    expect(text).toBe("");
  });
});
