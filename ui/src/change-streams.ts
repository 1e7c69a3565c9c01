// One change stream for all the tabs of a browser (docs/ui.md, "Several tabs"): HTTP/1.1 gives a
// browser 6 connections to the hub, and a stream per tab and per feed view used them all up with
// a few tabs. This runs in a SharedWorker (live-worker.ts), or in the page where there is none.
// Tabs talk to it over MessagePorts: each asks for feeds (filters); it holds one connection per
// token, GET /changes/stream?match=… with the distinct filters of all its tabs, and sends each tab
// the Changes of its feeds.
import { HubClient, HubError, HubUnreachableError } from "../../src/client/index.js";
import type { Change, ChangeFilter, ProblemFields, WatchStatus } from "../../src/client/index.js";

/** What a tab sends. */
export type TabMessage =
  /** The tab holds the Web Lock `lockName(tab)` while it lives: its feeds end when the lock is free. */
  | { type: "hello"; tab: string }
  /** A feed: Changes matching `filter` after `after` (from now when absent). */
  | { type: "watch"; feed: number; token: string | undefined; filter: ChangeFilter; after?: number }
  | { type: "unwatch"; feed: number }
  /** The tab goes (pagehide): all its feeds end. */
  | { type: "bye" };

/** An error as it crosses a port: a problem document, no answer, or words. */
export type StreamError =
  | { kind: "problem"; problem: ProblemFields }
  | { kind: "unreachable"; url: string; reason: string }
  | { kind: "other"; message: string };

/** What the shared stream sends a tab. */
export type StreamMessage =
  | { type: "change"; feeds: number[]; change: Change }
  | { type: "status"; feeds: number[]; status: WatchStatus }
  | { type: "failed"; feeds: number[]; error: StreamError };

export const lockName = (tab: string) => `hyperthings-tab:${tab}`;

/** Several tabs asking at once (a browser restoring them) make one reconnection, not one each. */
const SETTLE_MS = 20;

interface Feed {
  port: MessagePort;
  feed: number;
  /** The filter as a query: feeds with the same one share a `match` of the stream. */
  key: string;
  filter: ChangeFilter;
  /** The last seq sent to this feed: a resumption from earlier (for another feed) is not repeated. */
  lastSeq: number;
}

export function errorOf(err: unknown): StreamError {
  if (err instanceof HubError) {
    return {
      kind: "problem",
      problem: {
        status: err.status,
        title: err.title,
        detail: err.detail,
        type: err.type,
        instance: err.instance,
        errors: err.errors,
      },
    };
  }
  if (err instanceof HubUnreachableError) return { kind: "unreachable", url: err.url, reason: err.reason };
  return { kind: "other", message: err instanceof Error ? err.message : String(err) };
}

export function errorFrom(error: StreamError): Error {
  if (error.kind === "problem") return new HubError(error.problem);
  if (error.kind === "unreachable") return new HubUnreachableError(error.url, error.reason);
  return new Error(error.message);
}

function keyOf(filter: ChangeFilter): string {
  const kinds =
    filter.kind === undefined ? [] : typeof filter.kind === "string" ? [filter.kind] : filter.kind;
  return JSON.stringify([
    filter.thing,
    filter.type,
    filter.affordance,
    kinds.join(","),
    filter.actor,
    filter.release,
    filter.correlation,
  ]);
}

/** The feeds of one token, on one connection. */
class TokenStream {
  private readonly feeds = new Map<string, Feed>();
  private readonly client: HubClient;
  private abort: AbortController | undefined;
  private settling: ReturnType<typeof setTimeout> | undefined;
  /** The last seq the connection passed (or started after): a reconnection resumes there. */
  private position: number | undefined;
  /** A new feed's own start, earlier than `position`: the next connection starts there. */
  private resumeFrom: number | undefined;
  /** The filters of the connection, and those added since it last opened (to blame a refusal on). */
  private keys: string[] = [];
  private added = new Set<string>();
  private status: WatchStatus | undefined;

  constructor(
    origin: string,
    token: string | undefined,
    private readonly empty: () => void,
  ) {
    this.client = new HubClient({ url: origin, token });
  }

  add(port: MessagePort, feed: number, filter: ChangeFilter, after: number | undefined): void {
    const key = keyOf(filter);
    this.feeds.set(`${portId(port)}:${feed}`, {
      port,
      feed,
      key,
      filter,
      lastSeq: after ?? this.position ?? 0,
    });
    if (this.status !== undefined) post(port, { type: "status", feeds: [feed], status: this.status });
    // A feed that starts before the connection's position needs what came since: the connection
    // resumes from there (the other feeds are not sent again what they had).
    const replay = after !== undefined && (this.position === undefined || after < this.position);
    if (replay) this.resumeFrom = Math.min(this.resumeFrom ?? after, after);
    if (replay || !this.keys.includes(key) || this.abort === undefined) {
      this.added.add(key);
      this.settle();
    }
  }

  remove(port: MessagePort, feed?: number): void {
    for (const [id, one] of this.feeds)
      if (one.port === port && (feed === undefined || one.feed === feed)) this.feeds.delete(id);
    // A filter no tab asks for any more leaves the connection at the next change of filters: a
    // connection that carries a little more is cheaper than a reconnection at every tab closed.
    if (this.feeds.size === 0) {
      this.stop();
      this.empty();
    }
  }

  stop(): void {
    clearTimeout(this.settling);
    this.abort?.abort();
    this.abort = undefined;
  }

  private settle(): void {
    clearTimeout(this.settling);
    this.settling = setTimeout(() => this.connect(), SETTLE_MS);
  }

  private connect(): void {
    this.abort?.abort();
    const abort = new AbortController();
    this.abort = abort;
    this.keys = [...new Set([...this.feeds.values()].map((one) => one.key))];
    const filters = this.keys.map(
      (key) => [...this.feeds.values()].find((one) => one.key === key)?.filter ?? {},
    );
    const from =
      this.resumeFrom !== undefined
        ? Math.min(this.resumeFrom, this.position ?? this.resumeFrom)
        : this.position;
    this.resumeFrom = undefined;
    void this.run(filters, this.keys, from, abort.signal);
  }

  private async run(filters: ChangeFilter[], keys: string[], from: number | undefined, signal: AbortSignal) {
    try {
      for await (const { change, matches } of this.client.watchMatching(filters, {
        ...(from !== undefined && { lastEventId: from }),
        signal,
        onStatus: (status) => {
          if (signal.aborted) return;
          if (status.state === "open") {
            this.added.clear();
            if (this.position === undefined && status.after !== "") this.position = Number(status.after);
          }
          this.status = status;
          this.broadcast((feeds, port) => post(port, { type: "status", feeds, status }));
        },
      })) {
        if (signal.aborted) return;
        this.position = Math.max(this.position ?? 0, change.seq);
        const wanted = new Set(matches.map((i) => keys[i]));
        const byPort = new Map<MessagePort, number[]>();
        for (const one of this.feeds.values()) {
          if (!wanted.has(one.key) || change.seq <= one.lastSeq) continue;
          one.lastSeq = change.seq;
          const list = byPort.get(one.port);
          if (list) list.push(one.feed);
          else byPort.set(one.port, [one.feed]);
        }
        for (const [port, feeds] of byPort) post(port, { type: "change", feeds, change });
      }
    } catch (err) {
      if (signal.aborted) return;
      const error = errorOf(err);
      // A filter just added that the hub refuses (400) is that feed's failure, not everyone's.
      const blamed =
        err instanceof HubError && err.status === 400 && this.added.size > 0
          ? new Set(this.added)
          : undefined;
      this.added.clear();
      for (const [id, one] of this.feeds) {
        if (blamed !== undefined && !blamed.has(one.key)) continue;
        this.feeds.delete(id);
        post(one.port, { type: "failed", feeds: [one.feed], error });
      }
      this.abort = undefined;
      if (this.feeds.size > 0) this.settle();
      else this.empty();
    }
  }

  private broadcast(send: (feeds: number[], port: MessagePort) => void): void {
    const byPort = new Map<MessagePort, number[]>();
    for (const one of this.feeds.values()) byPort.set(one.port, [...(byPort.get(one.port) ?? []), one.feed]);
    for (const [port, feeds] of byPort) send(feeds, port);
  }
}

const portIds = new WeakMap<MessagePort, number>();
let nextPortId = 1;
function portId(port: MessagePort): number {
  let id = portIds.get(port);
  if (id === undefined) portIds.set(port, (id = nextPortId++));
  return id;
}

function post(port: MessagePort, message: StreamMessage): void {
  port.postMessage(message);
}

/** The tabs' feeds, one TokenStream per token. */
export class ChangeStreams {
  private readonly streams = new Map<string, TokenStream>();
  /** Which stream each of a port's feeds is on. */
  private readonly feedsOf = new Map<MessagePort, Map<number, TokenStream>>();

  constructor(private readonly origin: string) {}

  connect(port: MessagePort): void {
    port.onmessage = (event: MessageEvent<TabMessage>) => this.receive(port, event.data);
    port.start();
  }

  private receive(port: MessagePort, message: TabMessage): void {
    if (message.type === "hello") {
      // Granted when the tab is gone, however it went (closed, crashed, navigated away).
      void navigator.locks?.request(lockName(message.tab), () => this.drop(port));
    } else if (message.type === "bye") {
      this.drop(port);
    } else if (message.type === "watch") {
      const key = message.token ?? "";
      let stream = this.streams.get(key);
      if (stream === undefined) {
        const created = new TokenStream(this.origin, message.token, () => {
          if (this.streams.get(key) === created) this.streams.delete(key);
        });
        this.streams.set(key, (stream = created));
      }
      let feeds = this.feedsOf.get(port);
      if (feeds === undefined) this.feedsOf.set(port, (feeds = new Map<number, TokenStream>()));
      feeds.set(message.feed, stream);
      stream.add(port, message.feed, message.filter, message.after);
    } else {
      const feeds = this.feedsOf.get(port);
      feeds?.get(message.feed)?.remove(port, message.feed);
      feeds?.delete(message.feed);
    }
  }

  private drop(port: MessagePort): void {
    const feeds = this.feedsOf.get(port);
    this.feedsOf.delete(port);
    for (const stream of new Set(feeds?.values())) stream.remove(port);
    port.close();
  }
}
