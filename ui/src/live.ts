// The live Changes of the page (GET /changes/stream), from the one stream that all the browser's
// tabs of this hub share (change-streams.ts, in a SharedWorker): the feed that views subscribe to
// while they are shown, and filtered feeds (the Changes view's). It resumes after drops.
import {
  HubUnreachableError,
  type Change,
  type ChangeFilter,
  type WatchStatus,
} from "../../src/client/index.js";
import { ChangeStreams, errorFrom, lockName, type StreamMessage, type TabMessage } from "./change-streams.js";
import { h } from "./dom.js";
import { messageOf } from "./errors.js";

export type LiveState = WatchStatus | { state: "failed"; reason: string };

/** What a feed of this page is told. */
interface FeedHandlers {
  change(change: Change): void;
  status(status: WatchStatus): void;
  failed(error: Error): void;
}

/**
 * This page's port to the shared stream: a SharedWorker's, or, in a browser without them, one
 * run in the page (a connection per tab, as before). Messages wait until the tab holds its lock,
 * which tells the worker when the tab is gone.
 */
class SharedStreamPort {
  private readonly port: MessagePort;
  private readonly ready: Promise<void>;
  private readonly handlers = new Map<number, FeedHandlers>();
  private nextFeed = 1;

  constructor() {
    if (typeof SharedWorker === "function") {
      const worker = new SharedWorker(new URL("./live-worker.ts", import.meta.url), {
        type: "module",
        name: "hyperthings-live",
      });
      this.port = worker.port;
    } else {
      const channel = new MessageChannel();
      new ChangeStreams(location.origin).connect(channel.port2);
      this.port = channel.port1;
    }
    this.port.onmessage = (event: MessageEvent<StreamMessage>) => this.receive(event.data);
    this.port.start();
    // Not crypto.randomUUID: a hub reached over plain HTTP on another host is no secure context,
    // which has neither it nor Web Locks (the pagehide message below then says when a tab goes).
    const tab = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
    this.ready =
      navigator.locks === undefined
        ? Promise.resolve()
        : new Promise<void>((granted) => {
            // Held as long as the page lives: the worker's request for it is granted when it goes.
            void navigator.locks.request(lockName(tab), () => {
              granted();
              return new Promise<never>(() => undefined);
            });
          }).then(() => this.send({ type: "hello", tab }));
    // Where locks are missing, and for a page kept in the back/forward cache: said when it goes.
    window.addEventListener("pagehide", () => this.port.postMessage({ type: "bye" } satisfies TabMessage));
    window.addEventListener("pageshow", (event) => {
      if (event.persisted) location.reload();
    });
  }

  private send(message: TabMessage): void {
    this.port.postMessage(message);
  }

  watch(token: string | undefined, filter: ChangeFilter, after: number | undefined, handlers: FeedHandlers) {
    const feed = this.nextFeed++;
    this.handlers.set(feed, handlers);
    void this.ready.then(() =>
      this.send({ type: "watch", feed, token, filter, ...(after !== undefined && { after }) }),
    );
    return () => {
      if (!this.handlers.delete(feed)) return;
      void this.ready.then(() => this.send({ type: "unwatch", feed }));
    };
  }

  private receive(message: StreamMessage): void {
    for (const feed of message.feeds) {
      const handlers = this.handlers.get(feed);
      if (handlers === undefined) continue;
      if (message.type === "change") handlers.change(message.change);
      else if (message.type === "status") handlers.status(message.status);
      else {
        this.handlers.delete(feed);
        handlers.failed(errorFrom(message.error));
      }
    }
  }
}

let shared: SharedStreamPort | undefined;
const sharedPort = () => (shared ??= new SharedStreamPort());

export class LiveFeed {
  private readonly listeners = new Set<(change: Change) => void>();
  private readonly statusListeners = new Set<(status: LiveState) => void>();
  private unwatch: (() => void) | undefined;
  status: LiveState = { state: "retrying", after: "", reason: "connecting" };

  /** `token`: the signed-in one; tabs signed in with the same token share one connection. */
  constructor(private readonly token: string | undefined) {}

  start(): void {
    this.unwatch = sharedPort().watch(this.token, {}, undefined, {
      change: (change) => {
        for (const listener of this.listeners) listener(change);
      },
      status: (status) => this.setStatus(status),
      failed: (err) => this.setStatus({ state: "failed", reason: messageOf(err) }),
    });
  }

  stop(): void {
    this.unwatch?.();
    this.unwatch = undefined;
  }

  /**
   * The Changes that match `filter` after `lastEventId` (a seq), as `HubClient.watch` yields them,
   * but from the shared stream; ends when `signal` aborts, throws what the hub refused.
   */
  async *watch(
    filter: ChangeFilter,
    options: { lastEventId?: number; signal?: AbortSignal } = {},
  ): AsyncGenerator<Change, void, undefined> {
    const queue: Change[] = [];
    let failure: Error | undefined;
    let wake: (() => void) | undefined;
    const stop = sharedPort().watch(this.token, filter, options.lastEventId, {
      change: (change) => {
        queue.push(change);
        wake?.();
      },
      status: () => undefined,
      failed: (err) => {
        failure = err;
        wake?.();
      },
    });
    const onAbort = () => wake?.();
    options.signal?.addEventListener("abort", onAbort);
    try {
      for (;;) {
        if (options.signal?.aborted) return;
        const change = queue.shift();
        if (change !== undefined) {
          yield change;
          continue;
        }
        if (failure !== undefined) throw failure;
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
    } finally {
      stop();
      options.signal?.removeEventListener("abort", onAbort);
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
