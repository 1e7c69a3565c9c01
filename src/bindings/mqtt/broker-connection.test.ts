import { once } from "node:events";
import { createServer, connect, type Server, type Socket } from "node:net";
import { afterEach, describe, expect, it } from "vitest";
import { withTimeout } from "./broker-connection.js";
import { holdThread } from "../../../test/support/held-thread.js";

describe("withTimeout", () => {
  const servers: Server[] = [];
  const sockets: Socket[] = [];
  afterEach(() => {
    for (const socket of sockets.splice(0)) socket.destroy();
    for (const server of servers.splice(0)) server.close();
  });

  /** A connected pair of sockets on loopback: the broker's end and the hub's. */
  async function pair(): Promise<{ broker: Socket; hub: Socket }> {
    const server = createServer();
    servers.push(server);
    server.listen(0, "127.0.0.1");
    await once(server, "listening");
    const { port } = server.address() as { port: number };
    const accepted = once(server, "connection") as Promise<[Socket]>;
    const hub = connect(port, "127.0.0.1");
    const [broker] = await accepted;
    sockets.push(hub, broker);
    await once(hub, "connect");
    return { broker, hub };
  }

  it("takes an answer that arrived while its thread was held up past the timeout", async () => {
    const { broker, hub } = await pair();
    const answer = new Promise<string>((resolve) =>
      hub.once("data", (chunk: Buffer) => resolve(chunk.toString())),
    );
    const outcome = withTimeout(answer, 50);
    // The answer reaches the kernel's buffer at once; the thread is then held up past the
    // timeout in a callback of the check phase, so the timer is due before the loop polls.
    setImmediate(() => {
      broker.write("answer");
      holdThread(200);
    });
    await expect(outcome).resolves.toBe("answer");
  });

  it("gives up when nothing comes in time", async () => {
    await expect(withTimeout(new Promise(() => undefined), 20)).rejects.toMatchObject({
      reason: "timeout",
      message: "no answer from the broker in 20 ms",
    });
  });
});
