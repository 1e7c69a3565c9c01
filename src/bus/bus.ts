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
}
