// A bound on MQTT packet size for the embedded broker: aedes' parser buffers a packet of any
// declared length (up to 256 MiB) before handling it. This reads the fixed header of every packet
// as bytes go by (MQTT 3.1.1 §2.2: type byte, then a variable-length Remaining Length) and says
// when one declares more than the limit, before its body arrives. Pure state machine.

export class FrameLimit {
  /** 0: expecting a type byte; 1..4: reading length byte n; -1: skipping a body. */
  private stage = 0;
  private length = 0;
  private multiplier = 1;
  private remaining = 0;
  /** Why the stream broke the limit or the encoding; once set, stays set. */
  problem: string | undefined;

  constructor(private readonly maxPacketBytes: number) {}

  /** Feeds bytes; returns false (and sets `problem`) once a packet is too large or malformed. */
  push(chunk: Uint8Array): boolean {
    if (this.problem !== undefined) return false;
    let i = 0;
    while (i < chunk.length) {
      if (this.stage === -1) {
        const take = Math.min(this.remaining, chunk.length - i);
        this.remaining -= take;
        i += take;
        if (this.remaining === 0) this.stage = 0;
        continue;
      }
      const byte = chunk[i++] ?? 0;
      if (this.stage === 0) {
        this.stage = 1;
        this.length = 0;
        this.multiplier = 1;
        continue;
      }
      this.length += (byte & 0x7f) * this.multiplier;
      this.multiplier *= 128;
      if (byte & 0x80) {
        if (this.stage === 4) {
          this.problem = "a packet's Remaining Length is longer than 4 bytes";
          return false;
        }
        this.stage++;
        continue;
      }
      if (this.length > this.maxPacketBytes) {
        this.problem = `a packet of ${this.length} bytes is larger than the limit of ${this.maxPacketBytes}`;
        return false;
      }
      this.remaining = this.length;
      this.stage = this.remaining === 0 ? 0 : -1;
    }
    return true;
  }
}
