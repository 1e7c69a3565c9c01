// The typed client of a whole hub: the directory (directory-client.ts) plus the Log — reporting
// state, history, state at a time, diffs, the change feed and its live stream, and the log's
// key, checkpoints, proofs and entries for verification. Global fetch only, like its base.
import type { Change, Checkpoint } from "../core/index.js";
import {
  DirectoryClient,
  HubError,
  HubUnreachableError,
  thingPathOf,
  nextLinkOf,
} from "./directory-client.js";
import { EventStreamParser, readEventStream, type ServerSentEvent } from "./server-sent-events.js";

/** A time for the hub: a Date, or text the hub parses (RFC 3339, `-15m`, `yesterday 14:02` in the hub's zone). */
export type TimeArgument = Date | string;

/** One observation as a program or device reports it (POST /things/{id}/changes). */
export interface Report {
  kind: "reported" | "emitted";
  affordance: string;
  value?: unknown;
  /** The device's own time (RFC 3339). */
  at?: string;
}

export interface HistoryQuery {
  affordance?: string;
  /** One kind, or several (`reported`, `desired`, …). */
  kind?: string | readonly string[];
  since?: TimeArgument;
  until?: TimeArgument;
  /** The `seq` of the last Change of the previous page. */
  cursor?: number;
  /** Newest first (`desc`, the default) or oldest first. */
  order?: "asc" | "desc";
  /** The page size, 1..10000 (the hub's default is 100). */
  limit?: number;
}

/** The global feed's filters (GET /changes, /changes/stream). */
export interface ChangeFilter {
  thing?: string;
  /** Only Changes of Things of this type or a subtype (as the graph filter `type = …`) when each was made. */
  type?: string;
  /** Only Changes of this property, action or event, of any Thing. */
  affordance?: string;
  kind?: string | readonly string[];
  actor?: string;
  release?: string;
  /** The cause's correlation: one command's Changes, one rollout step's. */
  correlation?: string;
}

export interface ChangesQuery extends ChangeFilter {
  since?: TimeArgument;
  until?: TimeArgument;
  cursor?: number;
  limit?: number;
  /** Oldest first (default), or newest first: the cursor is then the last seq of the page before. */
  order?: "asc" | "desc";
}

/** A fleet diff's query (GET /diff): the feed's filters, the two times, and a page of Things. */
export interface FleetDiffQuery extends ChangeFilter {
  from: TimeArgument;
  /** Now by default. */
  to?: TimeArgument;
  /** The `next` of the previous page. */
  cursor?: number;
  /** At most this many Things, 1..100 (the hub's default is 20). */
  limit?: number;
}

export interface ChangePage {
  changes: Change[];
  /** The cursor of the next page; absent on the last page. */
  next?: number;
  /** The absolute URL of the next page (`Link: rel="next"`), when the hub sent one. */
  nextUrl?: string;
}

// The answers' shapes are the hub's own types (type-only: nothing of the hub is loaded).
export type {
  AffordanceDiff,
  AffordanceDrift,
  AffordanceState,
  DiffChange,
  DriftDiff,
  FleetDiff,
  InteractionDiff,
  LinksDiff,
  ReachabilityDiff,
  ReleasesDiff,
  ThingDiff,
  ThingState,
  Why,
  WhyLink,
} from "../hub/index.js";
import type {
  Why,
  FleetDiff,
  GraphPage,
  ThingDiff,
  ThingState,
  InclusionProof,
  InclusionProofs,
  ConsistencyProof,
} from "../hub/index.js";
export type { ConsistencyProof, GraphPage, InclusionProof, InclusionProofs } from "../hub/index.js";

/** The key that signs the hub's checkpoints (GET /log/key). */
export interface LogKey {
  origin: string;
  algorithm: string;
  /** SPKI PEM. */
  publicKey: string;
}

export interface WatchStatus {
  /** `open`: the stream is connected; `retrying`: it dropped, and will reconnect in `delayMs`. */
  state: "open" | "retrying";
  /** The Last-Event-ID the stream resumes after ("" for none). */
  after: string;
  delayMs?: number;
  /** Why it dropped. */
  reason?: string;
}

export interface WatchOptions {
  /**
   * Start after this Log position (a seq, as an SSE event id). By default the stream starts at the
   * Log's end as it is when the hub first answers `watch` (from /health), so that not even a Change
   * committed before the first connection is up, or while reconnecting, is missed. A hub that does
   * not answer yet (starting, restarting, unreachable, /health 503) is retried as a dropped stream is.
   */
  lastEventId?: number | string;
  /** Stops the stream; the iteration then simply ends. */
  signal?: AbortSignal;
  /** Told when the stream opens and when it drops and will reconnect. */
  onStatus?: (status: WatchStatus) => void;
  /** The first reconnection delay when the hub sent no `retry:` (default 1000 ms); it doubles up to `maxRetryMs`. */
  retryMs?: number;
  maxRetryMs?: number;
}

const DEFAULT_RETRY_MS = 1000;
const MAX_RETRY_MS = 30_000;
const ENTRIES_PAGE_SIZE = 10_000;
const CHECKPOINTS_PAGE_SIZE = 1000;

function timeParameter(value: TimeArgument): string {
  return value instanceof Date ? value.toISOString() : value;
}

function kindParameter(value: string | readonly string[]): string {
  return typeof value === "string" ? value : value.join(",");
}

/**
 * A response's body in chunks that end at a line feed; the bytes after a chunk's last line feed
 * wait for the next chunk (and a last line without one is given at the end).
 */
async function* wholeLines(
  body: ReadableStream<Uint8Array> | null,
): AsyncGenerator<Uint8Array, void, undefined> {
  if (body === null) return;
  const reader = body.getReader();
  let carry: Uint8Array | undefined;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      let chunk = value;
      if (carry !== undefined) {
        const joined = new Uint8Array(carry.length + chunk.length);
        joined.set(carry);
        joined.set(chunk, carry.length);
        chunk = joined;
        carry = undefined;
      }
      const lastLineFeed = chunk.lastIndexOf(0x0a);
      if (lastLineFeed < 0) {
        carry = chunk;
        continue;
      }
      if (lastLineFeed + 1 < chunk.length) carry = chunk.slice(lastLineFeed + 1);
      yield chunk.subarray(0, lastLineFeed + 1);
    }
    if (carry !== undefined && carry.length > 0) yield carry;
  } finally {
    await reader.cancel().catch(() => undefined);
  }
}

/** Sets the query parameters that are defined. */
function withQuery(url: URL, query: Record<string, string | number | undefined>): URL {
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined) url.searchParams.set(name, String(value));
  }
  return url;
}

function filterQuery(filter: ChangeFilter): Record<string, string | undefined> {
  return {
    thing: filter.thing,
    type: filter.type,
    affordance: filter.affordance,
    kind: filter.kind === undefined ? undefined : kindParameter(filter.kind),
    actor: filter.actor,
    release: filter.release,
    correlation: filter.correlation,
  };
}

function unexpected(status: number, detail: string): HubError {
  return new HubError({ status, title: "Unexpected answer", detail });
}

/** Waits `ms`, or less if `signal` aborts (then resolves false). */
function pause(ms: number, signal: AbortSignal | undefined): Promise<boolean> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve(false);
    const onAbort = () => {
      clearTimeout(timer);
      resolve(false);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve(true);
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/** An event's JSON data; data that is not JSON is the hub's fault, said as such. */
function parseEvent<T>(event: ServerSentEvent, status: number): T {
  try {
    return JSON.parse(event.data) as T;
  } catch {
    throw unexpected(status, `event ${event.id} is not JSON`);
  }
}

/** Whether a failed watch connection is worth retrying: no answer, a dropped body, or a 5xx/429. */
function isTransient(err: unknown): boolean {
  if (err instanceof HubUnreachableError) return true;
  if (err instanceof HubError) return err.status >= 500 || err.status === 429 || err.status === 408;
  // fetch's body stream fails with a TypeError ("terminated") when the connection breaks mid-way.
  return err instanceof TypeError;
}

function reasonOf(err: unknown): string {
  if (err instanceof HubUnreachableError) return err.reason;
  if (err instanceof TypeError) {
    const cause = err.cause as { message?: unknown } | undefined;
    return typeof cause?.message === "string" ? `${err.message}: ${cause.message}` : err.message;
  }
  return err instanceof Error ? err.message : String(err);
}

/** GET /graph/summary (docs/queries.md): types are expanded IRIs; `prefixes` shows them compactly. */
export interface GraphSummary {
  prefixes: Record<string, string>;
  things: Array<{ id: string; title?: string; types: string[]; reachable: boolean }>;
  links: Array<{ from: string; rel: string; to: string }>;
}

/**
 * GET /things/{id}/neighbourhood (docs/queries.md): the Things within `depth` links of one, both
 * ways, as a tree; a Thing met again is a leaf with `repeated`, a link to an id no Thing has one
 * with `resolved: false`.
 */
export interface ThingNeighbourhood {
  id: string;
  title?: string;
  types: string[];
  resolved: boolean;
  repeated?: true;
  links: Array<{ rel: string; direction: "out" | "in"; node: ThingNeighbourhood }>;
  /** On the root only: the prefixes to write `types` compactly with, as GraphSummary's. */
  prefixes?: Record<string, string>;
}

export class HubClient extends DirectoryClient {
  private async json<T>(
    target: string | URL,
    signal?: AbortSignal,
  ): Promise<{ body: T; response: Response }> {
    const response = await this.request("GET", target, { signal });
    return { body: (await this.jsonOf(response)) as T, response };
  }

  // -------------------------------------------------------------------------------------------
  // State and history

  /** Reports observations of a Thing; answered once committed, with their Log positions. */
  async report(id: string, reports: Report | readonly Report[]): Promise<{ seqs: number[] }> {
    const response = await this.request("POST", `${thingPathOf(id)}/changes`, {
      body: JSON.stringify(reports),
      contentType: "application/json",
    });
    return (await this.jsonOf(response)) as { seqs: number[] };
  }

  /** One page of a Thing's Changes, newest first unless `order: "asc"`. */
  async history(id: string, query: HistoryQuery = {}): Promise<ChangePage> {
    const url = withQuery(new URL(`${thingPathOf(id)}/history`, this.url), {
      affordance: query.affordance,
      kind: query.kind === undefined ? undefined : kindParameter(query.kind),
      since: query.since === undefined ? undefined : timeParameter(query.since),
      until: query.until === undefined ? undefined : timeParameter(query.until),
      cursor: query.cursor,
      order: query.order,
      limit: query.limit,
    });
    return this.changePage(url);
  }

  /** Every Change of a Thing that matches, page after page (`limit` is the page size). */
  historyAll(id: string, query: HistoryQuery = {}): AsyncGenerator<Change, void, undefined> {
    return this.follow((cursor) => this.history(id, { ...query, ...(cursor !== undefined && { cursor }) }));
  }

  /** The Thing as it was at `at` (now by default): its TD then and each property's value then. */
  async stateAt(id: string, at?: TimeArgument): Promise<ThingState> {
    const url = withQuery(new URL(`${thingPathOf(id)}/state`, this.url), {
      at: at === undefined ? undefined : timeParameter(at),
    });
    return (await this.json<ThingState>(url)).body;
  }

  /** What changed on the Thing between `from` and `to` (now by default). */
  async diff(id: string, from: TimeArgument, to?: TimeArgument): Promise<ThingDiff> {
    const url = withQuery(new URL(`${thingPathOf(id)}/diff`, this.url), {
      from: timeParameter(from),
      to: to === undefined ? undefined : timeParameter(to),
    });
    return (await this.json<ThingDiff>(url)).body;
  }

  /** A page of what changed anywhere between `from` and `to` (now by default): each Thing's diff. */
  async fleetDiff(query: FleetDiffQuery): Promise<FleetDiff> {
    const url = withQuery(new URL("diff", this.url), {
      ...filterQuery(query),
      from: timeParameter(query.from),
      to: query.to === undefined ? undefined : timeParameter(query.to),
      cursor: query.cursor,
      limit: query.limit,
    });
    return (await this.json<FleetDiff>(url)).body;
  }

  /** One page of the global feed, oldest first. */
  async changes(query: ChangesQuery = {}): Promise<ChangePage> {
    const url = withQuery(new URL("changes", this.url), {
      ...filterQuery(query),
      since: query.since === undefined ? undefined : timeParameter(query.since),
      until: query.until === undefined ? undefined : timeParameter(query.until),
      cursor: query.cursor,
      limit: query.limit,
      order: query.order,
    });
    return this.changePage(url);
  }

  /** Every Change of the feed that matches, oldest first, page after page. */
  changesAll(query: ChangesQuery = {}): AsyncGenerator<Change, void, undefined> {
    return this.follow((cursor) => this.changes({ ...query, ...(cursor !== undefined && { cursor }) }));
  }

  /**
   * The Things linked to one and from it, `depth` links away (1 by default), with their titles;
   * only links of relation `rel` when given.
   */
  async neighbourhood(id: string, depth = 1, rel?: string): Promise<ThingNeighbourhood> {
    const url = withQuery(new URL(`${thingPathOf(id)}/neighbourhood`, this.url), { depth, rel });
    return (await this.json<ThingNeighbourhood>(url)).body;
  }

  /** The whole graph, light (GET /graph/summary): each Thing's id, title, types, reachability, and the links. */
  async graphSummary(signal?: AbortSignal): Promise<GraphSummary> {
    return (await this.json<GraphSummary>(new URL("graph/summary", this.url), signal)).body;
  }

  /**
   * The Things a graph filter matches (GET /graph, docs/queries.md: `type = saref:Sensor AND …`),
   * by id, a page at a time (`next` is the cursor of the next page), each with its TD and state.
   */
  async graph(filter: string, options: { limit?: number; cursor?: string } = {}): Promise<GraphPage> {
    const url = withQuery(new URL("graph", this.url), {
      filter,
      limit: options.limit,
      cursor: options.cursor,
    });
    return (await this.json<GraphPage>(url)).body;
  }

  /** Every Thing a graph filter matches, by id, page after page (`pageSize` each). */
  async *graphAll(
    filter: string,
    options: { pageSize?: number } = {},
  ): AsyncGenerator<GraphPage["items"][number], void, undefined> {
    let cursor: string | undefined;
    do {
      const page = await this.graph(filter, {
        limit: options.pageSize,
        ...(cursor !== undefined && { cursor }),
      });
      yield* page.items;
      cursor = page.next;
    } while (cursor !== undefined);
  }

  /** One Change, by its position in the Log. */
  async change(seq: number): Promise<Change> {
    return (await this.json<Change>(`changes/${seq}`)).body;
  }

  /** Why Change `seq` happened: the chain of its causes in the Log (GET /changes/{seq}/why). */
  async why(seq: number): Promise<Why> {
    return (await this.json<Why>(`changes/${seq}/why`)).body;
  }

  private async changePage(url: URL): Promise<ChangePage> {
    const { body, response } = await this.json<Partial<ChangePage>>(url);
    if (typeof body !== "object" || body === null || !Array.isArray(body.changes)) {
      throw unexpected(response.status, "a page of Changes is an object with a `changes` array");
    }
    const nextUrl = nextLinkOf(response.headers.get("link"), url);
    return {
      changes: body.changes,
      ...(typeof body.next === "number" && { next: body.next }),
      ...(nextUrl !== undefined && { nextUrl }),
    };
  }

  // Page after page: the `Link: rel="next"` URL when there is one, else the `next` cursor.
  private async *follow(
    first: (cursor: number | undefined) => Promise<ChangePage>,
  ): AsyncGenerator<Change, void, undefined> {
    let page = await first(undefined);
    const seen = new Set<string>();
    for (;;) {
      yield* page.changes;
      if (page.nextUrl !== undefined) {
        if (seen.has(page.nextUrl))
          throw new Error(`the hub's next link leads back to a page already read: ${page.nextUrl}`);
        seen.add(page.nextUrl);
        page = await this.changePage(new URL(page.nextUrl));
      } else if (page.next !== undefined) {
        page = await first(page.next);
      } else {
        return;
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // The live feed

  /**
   * The feed live (GET /changes/stream, Server-Sent Events), one Change at a time, until `signal`
   * aborts. When the connection drops (the hub restarts, a proxy times out) it reconnects with
   * exponential backoff from the hub's `retry:` time and resumes with `Last-Event-ID` after the
   * last Change it yielded, so nothing is missed or repeated. A refusal (4xx) ends it with a HubError.
   */
  async *watch(
    filter: ChangeFilter = {},
    options: WatchOptions = {},
  ): AsyncGenerator<Change, void, undefined> {
    const url = withQuery(new URL("changes/stream", this.url), filterQuery(filter));
    for await (const { event, status } of this.changeEvents(url, options)) {
      if (event.event !== "change") continue;
      yield parseEvent<Change>(event, status);
    }
  }

  /**
   * Several feeds on one connection (GET /changes/stream?match=…): each Change once, with the
   * indexes of the filters it matches. A browser's tabs share one such stream (docs/ui.md), since
   * HTTP/1.1 gives a browser 6 connections to the hub. Reconnects and resumes as `watch` does.
   */
  async *watchMatching(
    filters: readonly ChangeFilter[],
    options: WatchOptions = {},
  ): AsyncGenerator<{ change: Change; matches: number[] }, void, undefined> {
    const url = new URL("changes/stream", this.url);
    for (const filter of filters) {
      const query = new URLSearchParams();
      for (const [name, value] of Object.entries(filterQuery(filter)))
        if (value !== undefined) query.set(name, String(value));
      url.searchParams.append("match", query.toString());
    }
    for await (const { event, status } of this.changeEvents(url, options)) {
      if (event.event !== "matched") continue;
      yield parseEvent<{ change: Change; matches: number[] }>(event, status);
    }
  }

  /** The events of a change stream, reconnecting and resuming with Last-Event-ID (see `watch`). */
  private async *changeEvents(
    url: URL,
    options: WatchOptions,
  ): AsyncGenerator<{ event: ServerSentEvent; status: number }, void, undefined> {
    const { signal } = options;
    const parser = new EventStreamParser();
    // Where the stream starts: given, or the Log's end when the hub first answers (a hub not up
    // yet, or restarting, is waited for as a dropped stream is, not a reason to give up).
    let started = options.lastEventId !== undefined;
    if (started) parser.lastEventId = String(options.lastEventId);
    let failures = 0;
    for (;;) {
      let reason = "the hub ended the stream";
      try {
        if (!started) {
          parser.lastEventId = String((await this.health()).lastSeq);
          started = true;
        }
        const response = await this.request("GET", url, {
          accept: "text/event-stream",
          headers: parser.lastEventId === "" ? {} : { "last-event-id": parser.lastEventId },
          signal,
        });
        if (response.body === null) throw unexpected(response.status, "the event stream has no body");
        failures = 0;
        options.onStatus?.({ state: "open", after: parser.lastEventId });
        for await (const event of readEventStream(response.body, parser)) {
          yield { event, status: response.status };
        }
      } catch (err) {
        if (signal?.aborted) return;
        if (!isTransient(err)) throw err;
        reason = reasonOf(err);
      }
      if (signal?.aborted) return;
      const base = parser.retry ?? options.retryMs ?? DEFAULT_RETRY_MS;
      const delayMs = Math.min(options.maxRetryMs ?? MAX_RETRY_MS, base * 2 ** Math.min(failures, 16));
      failures++;
      options.onStatus?.({ state: "retrying", after: parser.lastEventId, delayMs, reason });
      if (!(await pause(delayMs, signal))) return;
    }
  }

  // -------------------------------------------------------------------------------------------
  // The Log's tamper evidence

  async logKey(): Promise<LogKey> {
    return (await this.json<LogKey>("log/key")).body;
  }

  /** The latest signed checkpoint, which the hub signs now if Changes are not yet covered; none for an empty Log. */
  async checkpoint(): Promise<Checkpoint | undefined> {
    const response = await this.request("GET", "log/checkpoint");
    if (response.status === 204) return undefined;
    return (await this.jsonOf(response)) as Checkpoint;
  }

  /** Signed checkpoints of sizes greater than `after`, oldest first. */
  async checkpoints(options: { after?: number; limit?: number } = {}): Promise<Checkpoint[]> {
    const url = withQuery(new URL("log/checkpoints", this.url), {
      after: options.after,
      limit: options.limit,
    });
    const { body, response } = await this.json<unknown>(url);
    if (!Array.isArray(body)) throw unexpected(response.status, "the checkpoints are not a JSON array");
    return body as Checkpoint[];
  }

  /** Every signed checkpoint of size greater than `after`, oldest first, page after page. */
  async *checkpointsAll(
    options: { after?: number; pageSize?: number } = {},
  ): AsyncGenerator<Checkpoint, void, undefined> {
    const limit = options.pageSize ?? CHECKPOINTS_PAGE_SIZE;
    let after = options.after ?? 0;
    for (;;) {
      const page = await this.checkpoints({ after, limit });
      yield* page;
      const last = page.at(-1);
      if (last === undefined || page.length < limit) return;
      if (!(last.size > after)) throw unexpected(200, `the checkpoints after size ${after} go backwards`);
      after = last.size;
    }
  }

  /** RFC 9162 inclusion proof of Change `seq` in the tree of `size` Changes (default: the latest checkpoint). */
  async inclusionProof(seq: number, size?: number): Promise<InclusionProof> {
    const url = withQuery(new URL("log/proof/inclusion", this.url), { seq, size });
    return (await this.json<InclusionProof>(url)).body;
  }

  /**
   * RFC 9162 inclusion proofs of several Changes (up to the hub's MAX_PROOFS, 500) in the tree of
   * `size` Changes (default: the latest checkpoint), in one request.
   */
  async inclusionProofs(seqs: readonly number[], size?: number): Promise<InclusionProofs> {
    const url = withQuery(new URL("log/proof/inclusions", this.url), { seqs: seqs.join(","), size });
    return (await this.json<InclusionProofs>(url)).body;
  }

  /** RFC 9162 consistency proof between the trees of `from` and `to` Changes. */
  async consistencyProof(from: number, to: number): Promise<ConsistencyProof> {
    const url = withQuery(new URL("log/proof/consistency", this.url), { from, to });
    return (await this.json<ConsistencyProof>(url)).body;
  }

  /** Up to `limit` Changes after seq `after`, each with the leaf hash the hub recorded (NDJSON). */
  async logEntries(options: { after?: number; limit?: number } = {}): Promise<Change[]> {
    const url = withQuery(new URL("log/entries", this.url), { after: options.after, limit: options.limit });
    const response = await this.request("GET", url, { accept: "application/x-ndjson" });
    const text = await response.text();
    const entries: Change[] = [];
    let start = 0;
    while (start < text.length) {
      let end = text.indexOf("\n", start);
      if (end === -1) end = text.length;
      if (end > start) {
        try {
          entries.push(JSON.parse(text.slice(start, end)) as Change);
        } catch {
          throw unexpected(response.status, `line ${entries.length + 1} of the log entries is not JSON`);
        }
      }
      start = end + 1;
    }
    return entries;
  }

  /**
   * Up to `limit` entries after seq `after` as the hub sent them: NDJSON bytes, one Change a line
   * with its recorded leaf, unparsed — for `LogVerifier.pushEntry`, which hashes a canonical
   * line's bytes as they are.
   */
  async logEntriesText(options: { after?: number; limit?: number } = {}): Promise<Uint8Array> {
    const url = withQuery(new URL("log/entries", this.url), { after: options.after, limit: options.limit });
    const response = await this.request("GET", url, { accept: "application/x-ndjson" });
    return new Uint8Array(await response.arrayBuffer());
  }

  /**
   * The entries after `after` up to seq `upTo` (or the Log's end) as the hub sends them, NDJSON
   * bytes unparsed: chunks of whole lines, as they arrive (a line split between two network reads
   * is joined), so that a verifier hashes one chunk while the next is on its way. The hub's pages
   * (`pageSize` entries) follow its `Link: rel="next"`; the next is asked for as soon as the
   * current one's headers are in. The last page may run past `upTo`.
   */
  async *logEntryChunks(
    options: { after?: number; upTo?: number; pageSize?: number } = {},
  ): AsyncGenerator<Uint8Array, void, undefined> {
    const limit = options.pageSize ?? ENTRIES_PAGE_SIZE;
    const upTo = options.upTo ?? Number.POSITIVE_INFINITY;
    const page = (after: number): Promise<Response> => {
      const url = withQuery(new URL("log/entries", this.url), { after, limit });
      const pending = this.request("GET", url, { accept: "application/x-ndjson" });
      // Handled when awaited; this only keeps an early `break` from leaving it unhandled.
      pending.catch(() => undefined);
      return pending;
    };
    let after = options.after ?? 0;
    let pending: Promise<Response> | undefined = page(after);
    try {
      while (pending !== undefined) {
        const response: Response = await pending;
        pending = undefined;
        const link = nextLinkOf(response.headers.get("link"), new URL(this.url));
        if (link !== undefined) {
          const next = Number(new URL(link).searchParams.get("after"));
          if (!(Number.isSafeInteger(next) && next > after)) {
            throw unexpected(response.status, `the log entries after seq ${after} go backwards`);
          }
          after = next;
          if (after < upTo) pending = page(after);
        }
        yield* wholeLines(response.body);
      }
    } finally {
      // Stopped early: the page asked for in advance is not read.
      if (pending !== undefined) void pending.then((r) => r.body?.cancel()).catch(() => undefined);
    }
  }

  /**
   * Every Change after `after` (up to seq `upTo`), in seq order, a page at a time; the next page is
   * fetched while the current one is consumed, and a short page ends it.
   */
  async *logEntriesAll(
    options: { after?: number; upTo?: number; pageSize?: number } = {},
  ): AsyncGenerator<Change, void, undefined> {
    const limit = options.pageSize ?? ENTRIES_PAGE_SIZE;
    const upTo = options.upTo ?? Number.POSITIVE_INFINITY;
    let after = options.after ?? 0;
    let pending = this.logEntries({ after, limit });
    for (;;) {
      const page = await pending;
      const last = page.at(-1);
      const more = last !== undefined && page.length === limit && last.seq < upTo;
      if (more) {
        if (!(last.seq > after)) throw unexpected(200, `the log entries after seq ${after} go backwards`);
        after = last.seq;
        pending = this.logEntries({ after, limit });
        // Handled when awaited; this only keeps an early `break` from leaving it unhandled.
        pending.catch(() => undefined);
      }
      for (const change of page) {
        if (change.seq > upTo) return;
        yield change;
      }
      if (!more) return;
    }
  }
}
