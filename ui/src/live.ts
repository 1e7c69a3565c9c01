// The one live stream of Changes the whole page shares (GET /changes/stream through the typed
// client, which resumes after drops): views subscribe while they are shown.
import {
  HubUnreachableError,
  type Change,
  type HubClient,
  type WatchStatus,
} from "../../src/client/index.js";
import { h } from "./dom.js";
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

  /** Calls `then` once, when the stream is open again after it dropped (or is dropping now). */
  whenBack(then: () => void): () => void {
    let dropped = this.status.state !== "open";
    let done = false;
    const stop = this.onStatus((status) => {
      if (status.state !== "open") dropped = true;
      else if (dropped && !done) {
        done = true;
        queueMicrotask(() => {
          stop();
          then();
        });
      }
    });
    return stop;
  }

  onStatus(listener: (status: LiveState) => void): () => void {
    this.statusListeners.add(listener);
    listener(this.status);
    return () => this.statusListeners.delete(listener);
  }
}

/**
 * A view whose load found no hub (it is restarting, the network dropped) is drawn again by itself
 * once the live feed is back, as opening its address would (the router's hashchange): returns the
 * line that says so, and the cancellation for the view's leave; nothing for any other error.
 */
export function redrawWhenBack(
  live: LiveFeed,
  err: unknown,
): { note: HTMLElement; cancel: () => void } | undefined {
  if (!(err instanceof HubUnreachableError)) return undefined;
  const cancel = live.whenBack(() => window.dispatchEvent(new HashChangeEvent("hashchange")));
  return { note: h("p", { class: "muted" }, "This page is drawn again as soon as the hub answers."), cancel };
}
