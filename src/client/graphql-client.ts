// The typed GraphQL client of a hub (docs/graphql.md): queries and mutations over HTTP (fetch),
// subscriptions over one WebSocket with the graphql-ws protocol, reconnecting by itself; a
// `changes` stream resumes after the last seq it delivered, so a reconnect loses and repeats
// nothing. Runs in Node.js and in browsers: Node 20 has no global WebSocket, so give it `ws`.
// The client entry alone: graphql-ws's main one also loads its server, and with it all of graphql.
import { createClient, type Client, type SubscribePayload } from "graphql-ws/client";
import type { Change, RegisteredThingDescription } from "../core/index.js";
import {
  HUB_PROBLEM_TYPE,
  HubError,
  HubUnreachableError,
  answerOf,
  notAHubAt,
  unreachableReason,
} from "./directory-client.js";

/** The members of a problem document the client reads. */
interface ProblemBody {
  title?: string;
  detail?: string;
  type?: string;
}

/** One error of a GraphQL answer, with the hub's `extensions.code`. */
export interface GraphqlErrorEntry {
  message: string;
  path?: ReadonlyArray<string | number>;
  locations?: ReadonlyArray<{ line: number; column: number }>;
  extensions?: { code?: string; [name: string]: unknown };
}

/** The hub answered the operation with errors (and maybe partial data). */
export class GraphqlRequestError extends Error {
  readonly code: string | undefined;
  constructor(
    readonly errors: readonly GraphqlErrorEntry[],
    readonly data?: unknown,
  ) {
    super(errors.map((e) => e.message).join("; ") || "the operation failed");
    this.name = "GraphqlRequestError";
    this.code = errors[0]?.extensions?.code;
  }
}

/** The WebSocket closed for good (a refused token, a protocol error), or could not be opened. */
export class GraphqlSocketError extends Error {
  constructor(
    readonly code: number | undefined,
    readonly reason: string,
  ) {
    super(
      code === undefined
        ? reason
        : `the hub closed the GraphQL socket (${code}): ${reason || "no reason given"}`,
    );
    this.name = "GraphqlSocketError";
  }
}

/**
 * What a subscription's sink was told went wrong, as an Error: GraphQL errors, the socket's close,
 * or an event of the socket's (a WebSocket ErrorEvent is no Error, and reads "[object Object]").
 */
function subscriptionFailure(err: unknown): Error {
  if (Array.isArray(err)) return new GraphqlRequestError(err as GraphqlErrorEntry[]);
  if (isCloseEvent(err)) return new GraphqlSocketError(err.code, err.reason);
  if (err instanceof Error) return err;
  const said = (err as { message?: unknown; error?: unknown } | null | undefined) ?? {};
  const message =
    typeof said.message === "string" && said.message !== ""
      ? said.message
      : said.error instanceof Error
        ? said.error.message
        : undefined;
  return new GraphqlSocketError(undefined, `the GraphQL socket failed: ${message ?? "no reason given"}`);
}

export interface SocketStatus {
  state: "connecting" | "open" | "closed";
  code?: number;
  reason?: string;
}

export interface GraphqlClientOptions {
  /** The hub's base URL: http(s)://host:port; /graphql is added, and ws(s):// for the socket. */
  url: string;
  token?: string | undefined;
  fetch?: typeof globalThis.fetch;
  /** A WebSocket implementation where there is no global one (Node 20: `import WebSocket from "ws"`). */
  webSocketImpl?: unknown;
  /** Reconnection attempts after the socket drops (default: for ever, with graphql-ws's backoff). */
  retryAttempts?: number;
  /** Told when the socket connects, opens and closes. */
  onStatus?: (status: SocketStatus) => void;
  /**
   * Results one subscription may hold for a consumer that has not taken them (default 10,000).
   * Past it the client stops the subscription and subscribes again once the consumer has taken
   * them all: `changes`, `events` and `state` resume after what they delivered.
   */
  maxPending?: number;
}

export interface ChangeFilter {
  thing?: string;
  type?: string;
  /** Only Changes of this property, action or event, of any Thing. */
  affordance?: string;
  kinds?: readonly string[];
  actor?: string;
  release?: string;
  /** The cause's correlation: one command's Changes, one rollout step's. */
  correlation?: string;
}

export interface SubscribeOptions {
  signal?: AbortSignal;
}

export interface ChangesOptions extends SubscribeOptions {
  /** Start after this seq: committed Changes after it first, then live ones. */
  after?: number;
}

export interface GraphqlCause {
  actor: string;
  via?: string | null;
  /** For a value the hub read on someone's request, the surface they asked through. */
  surface?: string | null;
  release?: string | null;
  rule?: string | null;
  correlation?: string | null;
  /** The URI variables a command was sent with (TD `uriVariables`), when it had any. */
  uriVariables?: Record<string, string | number | boolean> | null;
}

export interface GraphqlChange extends Omit<Change, "cause" | "leaf"> {
  time: string;
  /** Whether `value` is the Change's (it may be null) or stands for none. */
  hasValue: boolean;
  /** Whether `previous` is the Change's (it may be null) or stands for none. */
  hasPrevious: boolean;
  cause: GraphqlCause;
  leaf?: string | null;
}

export interface PropertyValue {
  name: string;
  value: unknown;
  seq: number;
  time: string;
  at?: string | null;
  cause: GraphqlCause;
}

export interface GraphqlThing {
  id: string;
  title: string | null;
  types: string[];
  td: RegisteredThingDescription;
  version: number;
  modified: string;
}

export interface GraphqlLink {
  from: string;
  rel: string;
  to: string;
  resolved: boolean;
  type?: string | null;
  anchor?: string | null;
}

export interface GraphqlRolloutProgress {
  pending: number;
  applying: number;
  completed: number;
  failed: number;
  skipped: number;
  total: number;
}

/** A rollout as the typed helpers ask for it (docs/graphql.md). */
export interface GraphqlRollout {
  id: string;
  release: string;
  name: string;
  status: "running" | "completed" | "failed";
  concurrency: number;
  maxFailures: number;
  select: string | null;
  actor: string;
  created: string;
  ended: string | null;
  reason: string | null;
  progress: GraphqlRolloutProgress;
}

export interface GraphqlRolloutItem {
  kind: "property" | "action" | "link";
  name: string;
  desired: unknown;
  status: string;
  error: unknown;
}

export interface GraphqlRolloutStep {
  thing: string;
  position: number;
  status: "pending" | "applying" | "completed" | "failed" | "skipped";
  items: GraphqlRolloutItem[];
  desired: Record<string, unknown>;
  reason: string | null;
  updated: string;
}

/** One event of the rolloutProgress subscription. */
export interface GraphqlRolloutEvent {
  type: "status" | "step";
  rollout: string;
  thing: string | null;
  status: string;
  reason: string | null;
  progress: GraphqlRolloutProgress;
}

export interface GraphqlLineageEntry {
  release: string;
  name: string;
  rollout: string;
  replaced: string | null;
  seq: number;
  at: string;
  actor: string;
  desired: Record<string, unknown>;
  drift: unknown;
}

export interface GraphqlLineage {
  thing: string;
  active: string | null;
  entries: GraphqlLineageEntry[];
}

export interface RolloutStartOptions {
  select?: string;
  concurrency?: number;
  maxFailures?: number;
}

/** Every member of a Cause: a Change's as the Log holds it (`things watch --json` prints them). */
const CAUSE_FIELDS = "cause { actor via release rule correlation uriVariables }";
/** The Change fields the typed helpers ask for: every member of the Change (docs/changes.md). */
export const CHANGE_FIELDS = `seq thing affordance kind value previous hasValue hasPrevious at time hlc ${CAUSE_FIELDS} leaf`;
const THING_FIELDS = "id title types td version modified";
const PROGRESS_FIELDS = "progress { pending applying completed failed skipped total }";
const ROLLOUT_FIELDS = `id release name status concurrency maxFailures select actor created ended reason ${PROGRESS_FIELDS}`;
const STEP_FIELDS = "thing position status items { kind name desired status error } desired reason updated";
const PROPERTY_FIELDS = `name value seq time at ${CAUSE_FIELDS}`;

/**
 * A page size written into the query text: the hub prices a variable `first` at its largest page,
 * a literal at its value (docs/graphql.md, limits).
 */
function pageArgument(first: number | undefined): number {
  const n = first ?? 100;
  if (!Number.isSafeInteger(n)) throw new TypeError(`first must be an integer, not ${n}`);
  return n;
}

function hubBase(url: string): URL {
  let base: URL;
  try {
    base = new URL(url);
  } catch {
    throw new TypeError(`"${url}" is not a hub URL; give one like http://127.0.0.1:8080`);
  }
  if (base.protocol !== "http:" && base.protocol !== "https:") {
    throw new TypeError(`"${url}" is not an http or https URL`);
  }
  base.search = "";
  base.hash = "";
  if (!base.pathname.endsWith("/")) base.pathname += "/";
  return base;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function isCloseEvent(value: unknown): value is { code: number; reason: string } {
  return typeof value === "object" && value !== null && "code" in value && "reason" in value;
}

export class GraphqlClient {
  /** The HTTP endpoint, http(s)://…/graphql. */
  readonly endpoint: string;
  /** The WebSocket endpoint, ws(s)://…/graphql. */
  readonly socketUrl: string;
  private readonly fetch: typeof globalThis.fetch;
  private socket: Client | undefined;

  constructor(private readonly options: GraphqlClientOptions) {
    const base = hubBase(options.url);
    this.endpoint = new URL("graphql", base).href;
    const ws = new URL("graphql", base);
    ws.protocol = base.protocol === "https:" ? "wss:" : "ws:";
    this.socketUrl = ws.href;
    this.fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  /** Runs a query or mutation over HTTP; its data, or a GraphqlRequestError with the hub's errors. */
  async request<T = Record<string, unknown>>(
    query: string,
    variables?: Record<string, unknown>,
    options: { operationName?: string; signal?: AbortSignal } = {},
  ): Promise<T> {
    const headers = new Headers({
      accept: "application/graphql-response+json, application/json;q=0.9",
      "content-type": "application/json",
    });
    if (this.options.token !== undefined) headers.set("authorization", `Bearer ${this.options.token}`);
    let response: Response;
    try {
      response = await this.fetch(this.endpoint, {
        method: "POST",
        headers,
        body: JSON.stringify({
          query,
          ...(variables !== undefined && { variables }),
          ...(options.operationName !== undefined && { operationName: options.operationName }),
        }),
        ...(options.signal !== undefined && { signal: options.signal }),
      });
    } catch (err) {
      if (err instanceof TypeError) {
        throw new HubUnreachableError(this.endpoint, unreachableReason(err), { cause: err });
      }
      throw err;
    }
    const type = response.headers.get("content-type") ?? "";
    const raw = await response.text();
    let body: unknown;
    try {
      body = JSON.parse(raw);
    } catch {
      body = undefined;
    }
    const problem =
      type.startsWith("application/problem+json") && isObject(body) ? (body as ProblemBody) : undefined;
    const base = hubBase(this.options.url);
    // An answer no hub gives (an HTML page, JSON of another kind, a problem of another server's):
    // the URL is checked, and what is wrong with it said instead.
    const hubsProblem =
      problem !== undefined &&
      (response.status >= 500 ||
        (base.pathname === "/" && problem.type?.startsWith(HUB_PROBLEM_TYPE) === true));
    const graphqlAnswer = problem === undefined && isObject(body) && ("data" in body || "errors" in body);
    if (!hubsProblem && !graphqlAnswer) {
      const what = `POST ${new URL(this.endpoint).pathname} answered ${response.status} with ${answerOf(response, raw)}`;
      const elsewhere = await notAHubAt(this.fetch, base, what);
      if (elsewhere !== undefined) throw elsewhere;
      if (problem === undefined)
        throw new HubError({
          status: response.status,
          title: "Unexpected answer",
          detail: `the hub's ${what}`,
        });
    }
    if (!graphqlAnswer) {
      throw new HubError({
        status: response.status,
        title: problem?.title ?? response.statusText,
        ...(problem?.detail !== undefined && { detail: problem.detail }),
        ...(problem?.type !== undefined && { type: problem.type }),
      });
    }
    const answer = body as { data?: T | null; errors?: GraphqlErrorEntry[] };
    if (answer.errors && answer.errors.length > 0) throw new GraphqlRequestError(answer.errors, answer.data);
    return answer.data as T;
  }

  /** The shared socket, opened on the first subscription and reconnecting while any is active. */
  private client(): Client {
    this.socket ??= createClient({
      url: this.socketUrl,
      lazy: true,
      retryAttempts: this.options.retryAttempts ?? Number.POSITIVE_INFINITY,
      // Every close but a refusal is worth a retry: the hub restarting, a slow-consumer close (1013).
      shouldRetry: (event) => !(isCloseEvent(event) && (event.code === 4403 || event.code === 4401)),
      connectionParams: () => (this.options.token !== undefined ? { token: this.options.token } : {}),
      ...(this.options.webSocketImpl !== undefined && { webSocketImpl: this.options.webSocketImpl }),
      on: {
        connecting: () => this.options.onStatus?.({ state: "connecting" }),
        connected: () => this.options.onStatus?.({ state: "open" }),
        closed: (event) =>
          this.options.onStatus?.({
            state: "closed",
            ...(isCloseEvent(event) && { code: event.code, reason: event.reason }),
          }),
      },
    });
    return this.socket;
  }

  /**
   * Runs a subscription on the socket; each result's data, until `signal` aborts or the hub
   * completes it. The variables are sent again as they are on every reconnection. A consumer
   * that falls `maxPending` results behind does not make the client hold more: the subscription
   * is stopped, and started again (with its variables as they are then) once it has caught up.
   */
  async *subscribe<T = Record<string, unknown>>(
    query: string,
    variables: Record<string, unknown> = {},
    options: SubscribeOptions = {},
  ): AsyncGenerator<T> {
    const maxPending = Math.max(1, this.options.maxPending ?? 10_000);
    const pending: T[] = [];
    let failure: Error | undefined;
    let finished = false;
    /** Stopped for a consumer that fell behind: subscribed again once `pending` is empty. */
    let paused = false;
    let wake: (() => void) | undefined;
    const notify = () => {
      wake?.();
      wake = undefined;
    };
    // graphql-ws sends this very payload again on every reconnection: `variables` is kept
    // up to date so that a resumed stream starts where the last one stopped.
    const payload: SubscribePayload = { query, variables };
    let dispose = () => {};
    const start = () => {
      paused = false;
      // A stopped subscription's sink may still be told things (its complete, a message in
      // flight): only the current one counts.
      let current = true;
      const stop = this.client().subscribe<T>(payload, {
        next: (result) => {
          if (!current) return;
          if (result.errors && result.errors.length > 0) {
            failure = new GraphqlRequestError(result.errors, result.data);
          } else if (result.data) pending.push(result.data);
          if (pending.length >= maxPending && failure === undefined) {
            current = false;
            paused = true;
            stop();
          }
          notify();
        },
        error: (err) => {
          if (!current) return;
          // Stopped by its consumer: what the socket says after that (a reconnection abandoned)
          // is no failure of the stream.
          if (!options.signal?.aborted) failure = subscriptionFailure(err);
          finished = true;
          notify();
        },
        complete: () => {
          if (!current) return;
          finished = true;
          notify();
        },
      });
      dispose = () => {
        current = false;
        stop();
      };
    };
    start();
    const onAbort = () => {
      finished = true;
      notify();
    };
    options.signal?.addEventListener("abort", onAbort, { once: true });
    try {
      for (;;) {
        if (failure !== undefined) throw failure;
        if (pending.length > 0) {
          const data = pending.shift() as T;
          yield data;
          continue;
        }
        if (finished || options.signal?.aborted) return;
        if (paused) {
          start();
          continue;
        }
        await new Promise<void>((resolve) => (wake = resolve));
      }
    } finally {
      options.signal?.removeEventListener("abort", onAbort);
      dispose();
    }
  }

  /** The Log's last seq now: where a stream without a start begins, so nothing committed meanwhile is missed. */
  private async logEnd(): Promise<number> {
    return (await this.request<{ log: { size: number } }>("query LogEnd { log { size } }")).log.size;
  }

  /**
   * The Changes that match, live; with `after`, the committed ones after that seq first. Resumes
   * after the last seq it delivered whenever the socket reconnects: no gap, no duplicate.
   */
  async *changes(filter: ChangeFilter = {}, options: ChangesOptions = {}): AsyncGenerator<GraphqlChange> {
    // Without a start, the Log's end now: a Change committed before the socket is up is not missed.
    let last = options.after ?? (await this.logEnd());
    const variables: Record<string, unknown> = {
      filter,
      after: last,
    };
    const query = `subscription Changes($filter: ChangeFilter, $after: SafeInt) { changes(filter: $filter, after: $after) { ${CHANGE_FIELDS} } }`;
    const stream = this.subscribe<{ changes: GraphqlChange }>(query, variables, {
      ...(options.signal !== undefined && { signal: options.signal }),
    });
    for await (const { changes: change } of stream) {
      if (change.seq <= last) continue;
      last = change.seq;
      variables.after = last;
      yield change;
    }
  }

  /**
   * A Thing's events (of one event, or all), live; with `after`, the committed ones after that seq
   * first. Like `changes`, resumes after the last seq it delivered whenever the socket reconnects.
   */
  async *events(thing: string, name?: string, options: ChangesOptions = {}): AsyncGenerator<GraphqlChange> {
    let last = options.after ?? (await this.logEnd());
    const variables: Record<string, unknown> = { thing, name, after: last };
    const query = `subscription Events($thing: ID!, $name: String, $after: SafeInt) { events(thing: $thing, name: $name, after: $after) { ${CHANGE_FIELDS} } }`;
    const stream = this.subscribe<{ events: GraphqlChange }>(query, variables, {
      ...(options.signal !== undefined && { signal: options.signal }),
    });
    for await (const { events: event } of stream) {
      if (event.seq <= last) continue;
      last = event.seq;
      variables.after = last;
      yield event;
    }
  }

  /**
   * A Thing's property values: the current ones, then each new one. After a reconnection the hub
   * sends the current values again: a value already delivered (by its seq) is not yielded twice.
   */
  async *state(thing: string, options: SubscribeOptions = {}): AsyncGenerator<PropertyValue> {
    const query = `subscription State($thing: ID!) { state(thing: $thing) { ${PROPERTY_FIELDS} } }`;
    const delivered = new Map<string, number>();
    for await (const { state: value } of this.subscribe<{ state: PropertyValue }>(
      query,
      { thing },
      options,
    )) {
      if (value.seq <= (delivered.get(value.name) ?? 0)) continue;
      delivered.set(value.name, value.seq);
      yield value;
    }
  }

  async thing(id: string): Promise<GraphqlThing | null> {
    const data = await this.request<{ thing: GraphqlThing | null }>(
      `query Thing($id: ID!) { thing(id: $id) { ${THING_FIELDS} } }`,
      { id },
    );
    return data.thing;
  }

  async things(
    options: { filter?: string; first?: number; after?: string } = {},
  ): Promise<{ items: GraphqlThing[]; next: string | null }> {
    const data = await this.request<{ things: { items: GraphqlThing[]; next: string | null } }>(
      `query Things($filter: String, $after: String) { things(filter: $filter, first: ${pageArgument(options.first)}, after: $after) { items { ${THING_FIELDS} } next } }`,
      { filter: options.filter, after: options.after },
    );
    return data.things;
  }

  async links(id: string, rel?: string): Promise<{ links: GraphqlLink[]; linkedFrom: GraphqlLink[] } | null> {
    const data = await this.request<{ thing: { links: GraphqlLink[]; linkedFrom: GraphqlLink[] } | null }>(
      `query Links($id: ID!, $rel: String) { thing(id: $id) { links(rel: $rel) { from rel to resolved type anchor } linkedFrom(rel: $rel) { from rel to resolved type anchor } } }`,
      { id, rel },
    );
    return data.thing;
  }

  async history(
    thing: string,
    options: {
      affordance?: string;
      kinds?: readonly string[];
      first?: number;
      after?: number;
      order?: "ASC" | "DESC";
    } = {},
  ): Promise<{ changes: GraphqlChange[]; next: number | null }> {
    const data = await this.request<{ history: { changes: GraphqlChange[]; next: number | null } }>(
      `query History($thing: ID!, $affordance: String, $kinds: [String!], $after: SafeInt, $order: Order) {
        history(thing: $thing, affordance: $affordance, kinds: $kinds, first: ${pageArgument(options.first)}, after: $after, order: $order) { changes { ${CHANGE_FIELDS} } next } }`,
      {
        thing,
        affordance: options.affordance,
        kinds: options.kinds,
        after: options.after,
        order: options.order,
      },
    );
    return data.history;
  }

  async register(
    td: Record<string, unknown>,
  ): Promise<{ id: string; created: boolean; change: GraphqlChange }> {
    const data = await this.request<{ register: { id: string; created: boolean; change: GraphqlChange } }>(
      `mutation Register($td: JSON!) { register(td: $td) { id created change { ${CHANGE_FIELDS} } } }`,
      { td },
    );
    return data.register;
  }

  async remove(id: string): Promise<GraphqlChange> {
    const data = await this.request<{ remove: GraphqlChange }>(
      `mutation Remove($id: ID!) { remove(id: $id) { ${CHANGE_FIELDS} } }`,
      { id },
    );
    return data.remove;
  }

  async writeProperty(thing: string, name: string, value: unknown): Promise<{ correlation: string }> {
    const data = await this.request<{ writeProperty: { correlation: string } }>(
      `mutation Write($thing: ID!, $name: String!, $value: JSON!) { writeProperty(thing: $thing, name: $name, value: $value) { correlation } }`,
      { thing, name, value },
    );
    return data.writeProperty;
  }

  async invokeAction(
    thing: string,
    name: string,
    input?: unknown,
  ): Promise<{ status: string; output: unknown; correlation: string }> {
    const data = await this.request<{
      invokeAction: { status: string; output: unknown; correlation: string };
    }>(
      `mutation Invoke($thing: ID!, $name: String!, $input: JSON) { invokeAction(thing: $thing, name: $name, input: $input) { status output correlation } }`,
      { thing, name, input },
    );
    return data.invokeAction;
  }

  /** The Change that added the link, or null when it was already there. */
  async link(from: string, rel: string, to: string): Promise<GraphqlChange | null> {
    const data = await this.request<{ link: GraphqlChange | null }>(
      `mutation Link($from: ID!, $rel: String!, $to: ID!) { link(from: $from, rel: $rel, to: $to) { ${CHANGE_FIELDS} } }`,
      { from, rel, to },
    );
    return data.link;
  }

  async unlink(from: string, rel: string, to: string): Promise<GraphqlChange> {
    const data = await this.request<{ unlink: GraphqlChange }>(
      `mutation Unlink($from: ID!, $rel: String!, $to: ID!) { unlink(from: $from, rel: $rel, to: $to) { ${CHANGE_FIELDS} } }`,
      { from, rel, to },
    );
    return data.unlink;
  }

  /** Rollouts, newest first, of one release or all; `next` is the `after` of the next page. */
  async rollouts(
    options: { release?: string; status?: GraphqlRollout["status"]; first?: number; after?: number } = {},
  ): Promise<{ rollouts: GraphqlRollout[]; next: number | null }> {
    const data = await this.request<{ rollouts: { rollouts: GraphqlRollout[]; next: number | null } }>(
      `query Rollouts($release: ID, $status: String, $after: Int) { rollouts(release: $release, status: $status, first: ${pageArgument(options.first)}, after: $after) { rollouts { ${ROLLOUT_FIELDS} } next } }`,
      { release: options.release, status: options.status, after: options.after },
    );
    return data.rollouts;
  }

  /** One rollout with a page of its steps, or null when there is none with this id. */
  async rollout(
    id: string,
    steps: { status?: GraphqlRolloutStep["status"]; first?: number; after?: number } = {},
  ): Promise<(GraphqlRollout & { steps: { steps: GraphqlRolloutStep[]; next: number | null } }) | null> {
    const data = await this.request<{
      rollout: (GraphqlRollout & { steps: { steps: GraphqlRolloutStep[]; next: number | null } }) | null;
    }>(
      `query Rollout($id: ID!, $status: String, $after: Int) { rollout(id: $id) { ${ROLLOUT_FIELDS} steps(status: $status, first: ${pageArgument(steps.first)}, after: $after) { steps { ${STEP_FIELDS} } next } } }`,
      { id, status: steps.status, after: steps.after },
    );
    return data.rollout;
  }

  /** A Thing's active release, and which release replaced which, newest first. */
  async lineage(thing: string, first?: number): Promise<GraphqlLineage> {
    const data = await this.request<{ lineage: GraphqlLineage }>(
      `query Lineage($thing: ID!) { lineage(thing: $thing, first: ${pageArgument(first)}) { thing active entries { release name rollout replaced seq at actor desired drift } } }`,
      { thing },
    );
    return data.lineage;
  }

  /** Starts a rollout of a stored release (needs an admin token); follow it with `rolloutProgress`. */
  async startRollout(release: string, options: RolloutStartOptions = {}): Promise<GraphqlRollout> {
    const data = await this.request<{ rollout: GraphqlRollout }>(
      `mutation Rollout($release: ID!, $select: String, $concurrency: Int, $maxFailures: Int) { rollout(release: $release, select: $select, concurrency: $concurrency, maxFailures: $maxFailures) { ${ROLLOUT_FIELDS} } }`,
      { release, ...options },
    );
    return data.rollout;
  }

  /** Cancels a running rollout; the steps in flight finish. */
  async cancelRollout(id: string): Promise<GraphqlRollout> {
    const data = await this.request<{ cancelRollout: GraphqlRollout }>(
      `mutation CancelRollout($id: ID!) { cancelRollout(id: $id) { ${ROLLOUT_FIELDS} } }`,
      { id },
    );
    return data.cancelRollout;
  }

  /** A rollout's progress: its status now, then each finished step and status, until it ends. */
  async *rolloutProgress(id: string, options: SubscribeOptions = {}): AsyncGenerator<GraphqlRolloutEvent> {
    const query = `subscription RolloutProgress($id: ID!) { rolloutProgress(id: $id) { type rollout thing status reason ${PROGRESS_FIELDS} } }`;
    for await (const data of this.subscribe<{ rolloutProgress: GraphqlRolloutEvent }>(
      query,
      { id },
      options,
    )) {
      yield data.rolloutProgress;
    }
  }

  /** Closes the socket, ending every subscription. */
  async close(): Promise<void> {
    const socket = this.socket;
    this.socket = undefined;
    try {
      await socket?.dispose();
    } catch (err) {
      // Closed while a reconnection was under way: graphql-ws rejects that attempt with its own
      // close ({code: 1000, reason: "All Subscriptions Gone"}), which is the closing asked for.
      if (!isCloseEvent(err)) throw err;
    }
  }
}
