// The packet-size bound of the embedded broker, against PUBLISH packets encoded as MQTT 3.1.1
// §3.3 says and cut into chunks at arbitrary places: it trips exactly when some packet is too large.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { FrameLimit } from "./frame-limit.js";

/** A QoS 1 PUBLISH: fixed header, Remaining Length (§2.2.3), topic, packet id, payload. */
function publish(size: number, topic: string): Buffer {
  const name = Buffer.from(topic, "utf8");
  const body = Buffer.concat([
    Buffer.from([name.length >> 8, name.length & 0xff]),
    name,
    Buffer.from([0, 1]),
    Buffer.alloc(size, 0x61),
  ]);
  const length: number[] = [];
  let rest = body.length;
  do {
    let byte = rest % 128;
    rest = Math.floor(rest / 128);
    if (rest > 0) byte |= 0x80;
    length.push(byte);
  } while (rest > 0);
  return Buffer.concat([Buffer.from([0x32, ...length]), body]);
}

/** Cuts a buffer into chunks at the given relative positions. */
function cut(bytes: Buffer, cuts: number[]): Buffer[] {
  const points = [...new Set(cuts.map((c) => Math.floor(c * bytes.length)))].sort((a, b) => a - b);
  const chunks: Buffer[] = [];
  let at = 0;
  for (const point of [...points, bytes.length]) {
    if (point > at) chunks.push(bytes.subarray(at, point));
    at = Math.max(at, point);
  }
  return chunks;
}

describe("FrameLimit", () => {
  it("trips exactly when a packet's Remaining Length exceeds the limit, however the bytes are cut", () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 20_000 }), { minLength: 1, maxLength: 6 }),
        fc.integer({ min: 100, max: 20_000 }),
        fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { maxLength: 12 }),
        (sizes, limit, cuts) => {
          const packets = sizes.map((size) => publish(size, "t/x"));
          const limiter = new FrameLimit(limit);
          const ok = cut(Buffer.concat(packets), cuts).every((chunk) => limiter.push(chunk));
          // Remaining Length of a QoS 1 PUBLISH: topic length (2 + 3), message id (2), payload.
          const tooLarge = sizes.some((size) => size + 7 > limit);
          expect(ok).toBe(!tooLarge);
          expect(limiter.problem !== undefined).toBe(tooLarge);
        },
      ),
    );
  });

  it("refuses a Remaining Length of more than four bytes", () => {
    const limiter = new FrameLimit(1_000_000);
    expect(limiter.push(Buffer.from([0x30, 0xff, 0xff, 0xff, 0xff, 0x01]))).toBe(false);
    expect(limiter.problem).toMatch(/longer than 4 bytes/);
  });
});
