// The embedded Bus: synchronous fan-out inside one process. A subscriber that throws is
// reported and skipped; it never stops delivery to the others.
import type { Change } from "../../core/index.js";
import type { Bus, ChangeHandler } from "../bus.js";

export class InProcessBus implements Bus {
  private readonly handlers = new Set<ChangeHandler>();

  constructor(private readonly onSubscriberError: (error: unknown) => void = () => undefined) {}

  publish(changes: readonly Change[]): void {
    for (const change of changes) {
      for (const handler of this.handlers) {
        try {
          handler(change);
        } catch (error) {
          this.onSubscriberError(error);
        }
      }
    }
  }

  subscribe(handler: ChangeHandler): () => void {
    this.handlers.add(handler);
    return () => this.handlers.delete(handler);
  }

  close(): Promise<void> {
    this.handlers.clear();
    return Promise.resolve();
  }
}
