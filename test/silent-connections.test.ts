// A connection that never sends a request is closed after the headers timeout: otherwise anyone
// who reaches the hub could hold its file descriptors with silent sockets for ever.
import { once } from "node:events";
import { connect } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "./support/test-hub.js";

/** The longest the test waits for the hub to close the connection before it fails. */
const BOUND_MS = 10_000;

describe("silent connections", () => {
  let hub: TestHub;
  beforeAll(async () => {
    // The headers timeout is the request timeout's, when that is shorter than 60 s.
    hub = await startTestHub({ requestTimeoutMs: 300 });
  });
  afterAll(() => hub.stop());

  it("closes a connection that sends nothing, and answers one that sends a request", async () => {
    const { port } = new URL(hub.url);
    const silent = connect(Number(port), "127.0.0.1");
    await once(silent, "connect");
    const closed = await Promise.race([
      once(silent, "close").then(() => "closed"),
      new Promise<string>((resolve) => setTimeout(() => resolve("still open"), BOUND_MS).unref()),
    ]);
    silent.destroy();
    expect(closed).toBe("closed");

    const speaking = connect(Number(port), "127.0.0.1");
    await once(speaking, "connect");
    speaking.write("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    const [answer] = (await once(speaking, "data")) as [Buffer];
    expect(answer.toString("utf8")).toMatch(/^HTTP\/1\.1 200/);
    speaking.destroy();
  });
});
