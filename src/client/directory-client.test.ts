// Why a fetch got no answer (unreachableReason), from the errors this Node.js's fetch really gives.
import { describe, expect, it } from "vitest";
import { createServer } from "node:net";
import { unreachableReason } from "./directory-client.js";

const NOT_HTTP = "what answers there does not speak HTTP — is it the address `things serve` printed?";

/** The error the global fetch throws for a server that greets in its own protocol (as NATS does). */
async function fetchFromNonHttpServer(): Promise<TypeError> {
  const server = createServer((socket) => {
    socket.on("error", () => {});
    socket.write('INFO {"server_id":"x"}\r\n');
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  try {
    return await fetch(`http://127.0.0.1:${port}/`).then(
      () => {
        throw new Error("a server that is no HTTP server was answered");
      },
      (err: TypeError) => err,
    );
  } finally {
    server.close();
  }
}

describe("unreachableReason", () => {
  it("says a server that greets in another protocol does not speak HTTP, with this Node.js's fetch", async () => {
    const err = await fetchFromNonHttpServer();
    expect((err.cause as { name?: string } | undefined)?.name).toBe("HTTPParserError");
    expect(unreachableReason(err)).toBe(NOT_HTTP);
  });

  it("says so for llhttp's error with its code (Node 20, 22) and without one (Node 24)", () => {
    const message = "Response does not match the HTTP/1.1 protocol (Expected HTTP/, RTSP/ or ICE/)";
    for (const code of ["HPE_INVALID_CONSTANT", undefined]) {
      const cause = Object.assign(new Error(message), { name: "HTTPParserError", code });
      expect(unreachableReason(new TypeError("fetch failed", { cause })), String(code)).toBe(NOT_HTTP);
    }
  });

  it("names a refused connection and an unknown host in words", () => {
    const refused = Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:1"), { code: "ECONNREFUSED" });
    expect(unreachableReason(new TypeError("fetch failed", { cause: refused }))).toBe(
      "connection refused — is `things serve` running?",
    );
    const unknown = Object.assign(new Error("getaddrinfo ENOTFOUND hub.invalid"), { code: "ENOTFOUND" });
    expect(unreachableReason(new TypeError("fetch failed", { cause: unknown }))).toBe(
      "no such host — check the hub's address (--url, HYPERTHINGS_URL)",
    );
  });
});
