// The Bus: how committed Changes reach their subscribers (API streams, rules, peers).
// Publish only after commit. A subscriber must not block: it takes the Change and returns.
import type { Change } from "../core/index.js";

export type ChangeHandler = (change: Change) => void;

export interface Bus {
  /** Delivers committed Changes, in `seq` order, to every subscriber. */
  publish(changes: readonly Change[]): void;
  /** Returns the function that ends the subscription. */
  subscribe(handler: ChangeHandler): () => void;
  close(): Promise<void>;
  /** How a bus that publishes beyond the process is doing (GET /health); none for the in-process one. */
  status?(): BusStatus;
}

/** A bus that hands Changes to a broker: whether it is connected and how far behind the Log it is. */
export interface BusStatus {
  kind: string;
  /** The broker's address(es), without credentials. */
  server: string;
  stream: string;
  /** The subjects the Changes go to. */
  subjects: string;
  connected: boolean;
  /** Every Change up to this seq is held by the broker. */
  lastAcknowledged: number;
  /** The Log's last seq as the bus knows it. */
  lastCommitted: number;
  /** lastCommitted − lastAcknowledged. */
  lag: number;
  /** Publishes awaiting the broker's acknowledgement, and how many may at once. */
  inFlight: number;
  window: number;
  /** True while the bus reads Changes from the Store to send instead of sending them as published. */
  catchingUp: boolean;
  /** A replica (docs/replicas.md): the last seq handed to its subscribers, its own Changes and the other replicas'. */
  delivered?: number;
  /** The latest trouble, until it is over. */
  problem?: { since: string; reason: string };
}
