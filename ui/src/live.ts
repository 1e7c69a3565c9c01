// The one live stream of Changes the whole page shares (GET /changes/stream through the typed
// client, which resumes after drops): views subscribe while they are shown.
import type { Change, HubClient, WatchStatus } from "../../src/client/index.js";
import { messageOf } from "./errors.js";

export type LiveState = WatchStatus | { state: "failed"; reason: string };

export class LiveFeed {
  private readonly listeners = new Set<(change: Change) => void>();
  private readonly statusListeners = new Set<(status: LiveState) => void>();
  private readonly abort = new AbortController();
  status: LiveState = { state: "retrying", after: "", reason: "connecting" };

  constructor(private readonly client: HubClient) {}

  start(): void {
    void this.run();
  }

  stop(): void {
    this.abort.abort();
  }

  private async run(): Promise<void> {
    try {
      for await (const change of this.client.watch(
        {},
        { signal: this.abort.signal, onStatus: (status) => this.setStatus(status) },
      )) {
        for (const listener of this.listeners) listener(change);
      }
    } catch (err) {
      this.setStatus({ state: "failed", reason: messageOf(err) });
    }
  }

  private setStatus(status: LiveState): void {
    this.status = status;
    for (const listener of this.statusListeners) listener(status);
  }

  /** Calls `listener` with every Change from now on; returns the unsubscription. */
  subscribe(listener: (change: Change) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  onStatus(listener: (status: LiveState) => void): () => void {
    this.statusListeners.add(listener);
    listener(this.status);
    return () => this.statusListeners.delete(listener);
  }
}
