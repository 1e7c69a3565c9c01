// A port on 127.0.0.1 that nothing listens on, for tests of what a refused connection does.
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";

/** A port on which nothing listens (one just closed): a connection to it is refused. */
export async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}
