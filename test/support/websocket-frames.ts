// What a graphql-ws client sends on a raw socket (for tests that must control when it reads): the
// upgrade request at /graphql and its masked text frames.
import { randomBytes } from "node:crypto";

/** The HTTP upgrade to a graphql-transport-ws WebSocket at /graphql (RFC 6455 §4.1). */
export function graphqlUpgrade(hostname: string, port: string | number): string {
  return (
    `GET /graphql HTTP/1.1\r\nHost: ${hostname}:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
    `Sec-WebSocket-Key: ${randomBytes(16).toString("base64")}\r\nSec-WebSocket-Version: 13\r\n` +
    "Sec-WebSocket-Protocol: graphql-transport-ws\r\n\r\n"
  );
}

/** One masked text frame, as a client sends it (RFC 6455 §5.2). */
export function clientFrame(message: unknown): Buffer {
  const payload = Buffer.from(JSON.stringify(message));
  const mask = randomBytes(4);
  const length =
    payload.length < 126
      ? Buffer.from([0x81, 0x80 | payload.length])
      : Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff]);
  return Buffer.concat([length, mask, payload.map((byte, i) => byte ^ (mask[i % 4] as number))]);
}
