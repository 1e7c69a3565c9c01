// The streams one client address may hold open (HYPERTHINGS_MAX_STREAMS_PER_CLIENT): event streams
// and GraphQL sockets count together; one past the bound is refused with 429 before anything is
// held, and a stream that ends gives its slot back.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { connect, type Socket } from "node:net";
import { once } from "node:events";
import { minimalTd, putTd, startTestHub, type TestHub } from "./support/test-hub.js";

const PER_CLIENT = 2;

/** A request on a raw socket, and the head of the answer (status line and headers) once it came. */
async function open(hub: TestHub, lines: string[]): Promise<{ socket: Socket; head: string; body: string }> {
  const { port } = new URL(hub.url);
  const socket = connect(Number(port), "127.0.0.1");
  await once(socket, "connect");
  socket.write([...lines, "Host: 127.0.0.1", "", ""].join("\r\n"));
  let text = "";
  while (!text.includes("\r\n\r\n")) {
    const [chunk] = (await once(socket, "data")) as [Buffer];
    text += chunk.toString("utf8");
  }
  const end = text.indexOf("\r\n\r\n");
  return { socket, head: text.slice(0, end), body: text.slice(end + 4) };
}

const sse = (hub: TestHub, path = "/events") =>
  open(hub, [`GET ${path} HTTP/1.1`, "Accept: text/event-stream"]);

const webSocket = (hub: TestHub) =>
  open(hub, [
    "GET /graphql HTTP/1.1",
    "Upgrade: websocket",
    "Connection: Upgrade",
    "Sec-WebSocket-Version: 13",
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==",
    "Sec-WebSocket-Protocol: graphql-transport-ws",
  ]);

/** Waits (bounded) until the hub has seen closed connections give their slots back. */
async function heldBecomes(hub: TestHub, count: number): Promise<void> {
  const deadline = Date.now() + 5_000;
  while (hub.app.streamSlots.heldBy("127.0.0.1") !== count) {
    if (Date.now() > deadline) throw new Error(`still ${hub.app.streamSlots.heldBy("127.0.0.1")} held`);
    await new Promise((resolve) => setImmediate(resolve));
  }
}

describe("streams per client address", () => {
  let hub: TestHub;
  const sockets: Socket[] = [];

  beforeAll(async () => {
    hub = await startTestHub({ maxStreamsPerClient: PER_CLIENT });
    await putTd(
      hub,
      minimalTd({
        id: "urn:example:stream-limits",
        properties: { temperature: { type: "number", forms: [{ href: "http://127.0.0.1:9/t" }] } },
      }),
    );
  });
  afterAll(async () => {
    for (const socket of sockets) socket.destroy();
    await hub.stop();
  });

  it("refuses the event stream past the bound with a 429 problem, and a GraphQL socket too", async () => {
    for (let i = 0; i < PER_CLIENT; i++) {
      const stream = await sse(hub, i === 0 ? "/events" : "/changes/stream");
      sockets.push(stream.socket);
      expect(stream.head).toMatch(/^HTTP\/1\.1 200/);
    }
    const refused = await sse(hub);
    sockets.push(refused.socket);
    expect(refused.head).toMatch(/^HTTP\/1\.1 429/);
    expect(refused.head.toLowerCase()).toContain("retry-after: 10");
    expect(refused.head.toLowerCase()).toContain("content-type: application/problem+json");
    // The same stream of one Thing's property, and the socket: one address, one count.
    const observe = await sse(hub, "/things/urn:example:stream-limits/properties/temperature/observe");
    sockets.push(observe.socket);
    expect(observe.head).toMatch(/^HTTP\/1\.1 429/);
    const socket = await webSocket(hub);
    sockets.push(socket.socket);
    expect(socket.head).toMatch(/^HTTP\/1\.1 429/);
    expect(socket.body).toContain("HYPERTHINGS_MAX_STREAMS_PER_CLIENT");
  });

  it("gives a slot back when a stream's client goes, to an event stream or a socket", async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    await heldBecomes(hub, 0);
    const stream = await sse(hub);
    sockets.push(stream.socket);
    expect(stream.head).toMatch(/^HTTP\/1\.1 200/);
    const socket = await webSocket(hub);
    sockets.push(socket.socket);
    expect(socket.head).toMatch(/^HTTP\/1\.1 101/);
    expect(hub.app.streamSlots.heldBy("127.0.0.1")).toBe(2);
  });

  it("holds no slot for a HEAD of a stream, nor for a refused request", async () => {
    for (const socket of sockets.splice(0)) socket.destroy();
    await heldBecomes(hub, 0);
    const head = await open(hub, ["HEAD /events HTTP/1.1"]);
    sockets.push(head.socket);
    expect(head.head).toMatch(/^HTTP\/1\.1 200/);
    const unknown = await sse(hub, "/things/urn:example:nobody/properties/x/observe");
    sockets.push(unknown.socket);
    expect(unknown.head).toMatch(/^HTTP\/1\.1 404/);
    await heldBecomes(hub, 0);
  });
});
