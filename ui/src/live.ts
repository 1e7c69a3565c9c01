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

/** A feed of this page, as the stream was asked for it, and how far it has got. */
interface PageFeed {
  handlers: FeedHandlers;
  token: string | undefined;
  filter: ChangeFilter;
  /** The seq it was asked to start after, then the last seq it was given. */
  after: number | undefined;
  /** The port it was asked for on. */
  sentTo?: MessagePort;
}

/** The shared stream run in this page: a connection per tab, as before SharedWorkers. */
function inPagePort(): MessagePort {
  const channel = new MessageChannel();
  new ChangeStreams(location.origin).connect(channel.port2);
  return channel.port1;
}

/**
 * This page's port to the shared stream: a SharedWorker's, or, in a browser without them or when
 * the worker's script does not load (a proxy that blocks it, a deployment cut short), one run in
 * the page. Messages wait until the tab holds its lock, which tells the worker when the tab is gone.
 */
class SharedStreamPort {
  private port: MessagePort;
  private readonly ready: Promise<void>;
  private readonly tab: string;
  private readonly feeds = new Map<number, PageFeed>();
  private nextFeed = 1;
  /** Why the stream runs in this page though the browser has SharedWorkers; told to listeners. */
  fallback: string | undefined;
  private readonly fallbackListeners = new Set<(reason: string) => void>();

  constructor() {
    this.port = this.workerPort() ?? inPagePort();
    this.listen();
    // Not crypto.randomUUID: a hub reached over plain HTTP on another host is no secure context,
    // which has neither it nor Web Locks (the pagehide message below then says when a tab goes).
    this.tab = `${Date.now().toString(36)}-${Math.random().toString(36).slice(2)}`;
    this.ready =
      navigator.locks === undefined
        ? Promise.resolve()
        : new Promise<void>((granted) => {
            // Held as long as the page lives: the worker's request for it is granted when it goes.
            void navigator.locks.request(lockName(this.tab), () => {
              granted();
              return new Promise<never>(() => undefined);
            });
          }).then(() => this.hello());
    // Where locks are missing, and for a page kept in the back/forward cache: said when it goes.
    window.addEventListener("pagehide", () => this.port.postMessage({ type: "bye" } satisfies TabMessage));
    window.addEventListener("pageshow", (event) => {
      if (event.persisted) location.reload();
    });
  }

  /** The SharedWorker's port; its script failing to load moves the stream into the page. */
  private workerPort(): MessagePort | undefined {
    if (typeof SharedWorker !== "function") return undefined;
    let worker: SharedWorker;
    try {
      worker = new SharedWorker(new URL("./live-worker.ts", import.meta.url), {
        type: "module",
        name: "hyperthings-live",
      });
    } catch (err) {
      // A SecurityError (e.g. a sandboxed page): there is no worker to wait for.
      this.fallback = `the shared stream could not start (${messageOf(err)})`;
      return undefined;
    }
    // Fired when the script cannot be fetched or evaluated: nothing would ever answer the port.
    worker.addEventListener("error", () => this.runInPage("its script did not load"), { once: true });
    return worker.port;
  }

  /**
   * Moves the stream into this page: a new port, and every feed asked for again after the last
   * Change it was given (or where it was asked to start), so none is lost or given twice.
   */
  private runInPage(why: string): void {
    if (this.fallback !== undefined) return;
    this.fallback = `the shared stream's worker failed (${why})`;
    this.port.close();
    this.port = inPagePort();
    this.listen();
    void this.ready.then(() => {
      if (navigator.locks !== undefined) this.hello();
      for (const [feed, f] of this.feeds) this.sendWatch(feed, f);
    });
    for (const listener of this.fallbackListeners) listener(this.fallback);
  }

  onFallback(listener: (reason: string) => void): () => void {
    this.fallbackListeners.add(listener);
    if (this.fallback !== undefined) listener(this.fallback);
    return () => this.fallbackListeners.delete(listener);
  }

  private listen(): void {
    this.port.onmessage = (event: MessageEvent<StreamMessage>) => this.receive(event.data);
    this.port.start();
  }

  private send(message: TabMessage): void {
    this.port.postMessage(message);
  }

  /** The port that has been told the tab's lock: each port once. */
  private helloSentTo: MessagePort | undefined;

  private hello(): void {
    if (this.helloSentTo === this.port) return;
    this.helloSentTo = this.port;
    this.send({ type: "hello", tab: this.tab });
  }

  /** A feed is asked for once per port: a fallback before the lock is held would ask twice. */
  private sendWatch(feed: number, f: PageFeed): void {
    if (f.sentTo === this.port) return;
    f.sentTo = this.port;
    this.send({
      type: "watch",
      feed,
      token: f.token,
      filter: f.filter,
      ...(f.after !== undefined && { after: f.after }),
    });
  }

  watch(token: string | undefined, filter: ChangeFilter, after: number | undefined, handlers: FeedHandlers) {
    const feed = this.nextFeed++;
    const f: PageFeed = { handlers, token, filter, after };
    this.feeds.set(feed, f);
    void this.ready.then(() => {
      if (this.feeds.get(feed) === f) this.sendWatch(feed, f);
    });
    return () => {
      if (!this.feeds.delete(feed)) return;
      void this.ready.then(() => this.send({ type: "unwatch", feed }));
    };
  }

  private receive(message: StreamMessage): void {
    for (const feed of message.feeds) {
      const f = this.feeds.get(feed);
      if (f === undefined) continue;
      if (message.type === "change") {
        f.after = message.change.seq;
        f.handlers.change(message.change);
      } else if (message.type === "status") f.handlers.status(message.status);
      else {
        this.feeds.delete(feed);
        f.handlers.failed(errorFrom(message.error));
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

  /**
   * Calls `listener` (now, or when it happens) if the stream runs in this page because the shared
   * worker failed: the feeds were asked for again, after the last Change each was given.
   */
  onFallback(listener: (reason: string) => void): () => void {
    return sharedPort().onFallback(listener);
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
