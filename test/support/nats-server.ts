// The machine's NATS server with JetStream for tests that need a real one (HYPERTHINGS_TEST_NATS_URL,
// default nats://127.0.0.1:4222), and a TCP proxy of the test's own to cut the way to it.
import { jetstreamManager } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { createConnection, createServer, type Server, type Socket } from "node:net";

export const natsUrl = process.env.HYPERTHINGS_TEST_NATS_URL || "nats://127.0.0.1:4222";

export { servicesRequired } from "./mqtt-broker.js";

/** Why NATS JetStream cannot be used, or undefined when it answers a JetStream request. */
export async function natsProblem(url: string = natsUrl): Promise<string | undefined> {
  let nc: NatsConnection | undefined;
  try {
    nc = await connect({ servers: url, timeout: 3_000, reconnect: false });
    await (await jetstreamManager(nc)).getAccountInfo();
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  } finally {
    await nc?.close();
  }
}

/**
 * A TCP proxy to NATS on a port of its own (`port`), which the test cuts (every connection
 * dropped, nothing listening) and restores on the same port.
 */
export class NatsProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  port = 0;

  constructor(private readonly target: URL = new URL(natsUrl)) {}

  /** Listens on `port` (0 the first time: a free one). */
  async open(port = this.port): Promise<void> {
    const server = createServer((client) => {
      const upstream = createConnection({
        host: this.target.hostname,
        port: Number(this.target.port || 4222),
      });
      for (const socket of [client, upstream]) {
        this.sockets.add(socket);
        socket.on("close", () => this.sockets.delete(socket));
        socket.on("error", () => undefined);
      }
      client.pipe(upstream).pipe(client);
      client.on("close", () => upstream.destroy());
      upstream.on("close", () => client.destroy());
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: "127.0.0.1", port }, () => resolve());
    });
    this.server = server;
    const address = server.address();
    if (typeof address === "object" && address !== null) this.port = address.port;
  }

  /** Drops every connection and stops listening. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const socket of this.sockets) socket.destroy();
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  get url(): string {
    return `nats://127.0.0.1:${this.port}`;
  }
}
