// A connection that never sends a request is closed after the headers timeout: otherwise anyone
// who reaches the hub could hold its file descriptors with silent sockets for ever.
import { once } from "node:events";
import { connect, type Socket } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { answersOn, holdThread } from "./support/held-thread.js";
import { startTestHub, type TestHub } from "./support/test-hub.js";

/** The headers timeout here, and Node's own check of it runs as often (server.ts). */
const TIMEOUT_MS = 300;

describe("silent connections", () => {
  let hub: TestHub;
  beforeAll(async () => {
    // The headers timeout is the request timeout's, when that is shorter than 60 s.
    hub = await startTestHub({ requestTimeoutMs: TIMEOUT_MS });
  });
  afterAll(() => hub.stop());

  /** A connection to the hub, once the hub has accepted it. */
  async function accepted(): Promise<Socket> {
    const accepting = once(hub.app.server, "connection");
    const socket = connect(Number(new URL(hub.url).port), "127.0.0.1");
    await accepting;
    return socket;
  }

  it("closes a connection that sends nothing, without an answer, and answers one that sends a request", async () => {
    const silent = await accepted();
    const { text } = await answersOn(silent);
    expect(text).toBe("");

    const speaking = await accepted();
    speaking.write("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    const [answer] = (await once(speaking, "data")) as [Buffer];
    expect(answer.toString("utf8")).toMatch(/^HTTP\/1\.1 200/);
    speaking.destroy();
  });

  // Two timers judge a silent connection: the hub's own, and Node's check of the headers timeout
  // (every connectionsCheckingInterval), which reports it as a request timeout. On a busy machine
  // the thread is held up past both, and both come due in one turn of the loop.
  it("closes a silent connection without an answer when the hub was held up past both timers", async () => {
    const silent = await accepted();
    const outcome = answersOn(silent);
    holdThread(3 * TIMEOUT_MS);
    expect(await outcome).toEqual({ text: "", reset: false });
  });

  it("answers a request that arrived while the hub was held up past both timers", async () => {
    const speaking = await accepted();
    const outcome = answersOn(speaking);
    // Sent at once, and read only after the thread is free again: both timers are due by then.
    setImmediate(() => {
      speaking.write("GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
      holdThread(3 * TIMEOUT_MS);
    });
    const { text, reset } = await outcome;
    expect(reset).toBe(false);
    expect(text).toMatch(/^HTTP\/1\.1 200/);
  });
});
