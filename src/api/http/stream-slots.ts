// How many long-lived streams (Server-Sent Events, GraphQL WebSockets) one client address may hold
// open at once. Each holds a socket, a file descriptor and a follower of the Log for as long as its
// client likes, and reads are open by default: without a bound one address took every descriptor
// the hub had (3,000 SSE streams cost ~55 MB and 3,000 descriptors here), and nobody else got in.
import type { FastifyReply, FastifyRequest } from "fastify";
import { TooManyRequestsError } from "../../core/index.js";

declare module "fastify" {
  interface FastifyInstance {
    streamSlots: StreamSlots;
  }
}

export class StreamSlots {
  readonly #held = new Map<string, number>();

  constructor(readonly perClient: number) {}

  /** The streams `address` holds now. */
  heldBy(address: string): number {
    return this.#held.get(address) ?? 0;
  }

  /**
   * Takes a slot for a stream of `address`: the function that gives it back (calling it again does
   * nothing); a TooManyRequestsError when that address holds all of its own.
   */
  take(address: string): () => void {
    const held = this.heldBy(address);
    if (held >= this.perClient) {
      throw new TooManyRequestsError(
        `${address} holds ${held} streams (event streams and GraphQL sockets) open on this hub, the most one client address may (HYPERTHINGS_MAX_STREAMS_PER_CLIENT): close one first`,
        10,
      );
    }
    this.#held.set(address, held + 1);
    let given = false;
    return () => {
      if (given) return;
      given = true;
      const now = this.heldBy(address) - 1;
      if (now <= 0) this.#held.delete(address);
      else this.#held.set(address, now);
    };
  }
}

/**
 * Takes a stream slot for the request's client, given back when its answer ends or its connection
 * closes; throws TooManyRequestsError (429) before anything is sent when it has none left.
 */
export function holdStreamSlot(request: FastifyRequest, reply: FastifyReply): void {
  reply.raw.once("close", request.server.streamSlots.take(request.ip));
}
