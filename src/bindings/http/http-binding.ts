// The HTTP binding (W3C WoT Binding Templates, HTTP): read, write, invoke — synchronous and TD 1.1
// asynchronous actions — and observation by SSE, long-poll or polling, over keep-alive connections.
import { setTimeout as delay } from "node:timers/promises";
import { AddressPolicy } from "../address-policy.js";
import type { BindingError } from "../../core/index.js";
import { bindingError } from "../binding.js";
import type {
  ActionHandle,
  ActionOutcome,
  ActionStatus,
  Binding,
  Credentials,
  Discovered,
  ErrorListener,
  Operation,
  Subscription,
  Target,
  ValueListener,
} from "../binding.js";
import { encodeFor, isJson } from "../content.js";
import { OpenSubscriptions } from "../observation-loop.js";
import { decodeAnswer, observeByLongPoll, observeByPolling, observeBySse } from "./http-observation.js";
import type { ObservationOptions } from "./http-observation.js";
import { HttpTransport } from "./http-transport.js";
import type { HttpExchange, HttpTransportOptions } from "./http-transport.js";

export interface HttpBindingOptions {
  /** Which addresses may be reached; default: all. */
  readonly addressPolicy?: AddressPolicy;
  /** Default 10 s. */
  readonly connectTimeoutMs?: number;
  /** Until the response headers arrive; default 30 s. */
  readonly headersTimeoutMs?: number;
  /** Between two chunks of a response body; default 30 s. */
  readonly bodyTimeoutMs?: number;
  /** A whole response body, from its headers to its end (a Thing that trickles it); default 60 s. */
  readonly bodyDeadlineMs?: number;
  /** Default 4 s (below the 5 s of Node's and many devices' servers, so they never close first). */
  readonly keepAliveTimeoutMs?: number;
  /** Default: no bound. */
  readonly connectionsPerOrigin?: number;
  /** Default 1 MiB. */
  readonly maxResponseBytes?: number;
  /** Default 5. */
  readonly maxRedirects?: number;
  /** For GET, PUT, DELETE: attempts in all (default 3) and the backoff between them (200 ms doubling, to 5 s). */
  readonly retry?: {
    readonly attempts?: number;
    readonly baseDelayMs?: number;
    readonly maxDelayMs?: number;
  };
  /** Polling: ms between reads; default 5 s. */
  readonly pollIntervalMs?: number;
  /** Long-poll: how long a request may be held; default 60 s. */
  readonly longPollTimeoutMs?: number;
  /** SSE and long-poll: first reconnection delay (default 1 s) and the cap of its backoff (default 30 s). */
  readonly reconnectMs?: number;
  readonly maxReconnectMs?: number;
  /** Asynchronous actions: ms between status queries (default 1 s) and how long to wait in all (default 5 min). */
  readonly actionPollIntervalMs?: number;
  readonly actionTimeoutMs?: number;
  /** Jitter source, for tests; default Math.random. */
  readonly random?: () => number;
  /** Clock, for tests; default Date.now. */
  readonly now?: () => number;
}

/** The defaults of HttpBindingOptions, in one place. */
export const HTTP_BINDING_DEFAULTS = {
  connectTimeoutMs: 10_000,
  headersTimeoutMs: 30_000,
  bodyTimeoutMs: 30_000,
  bodyDeadlineMs: 60_000,
  keepAliveTimeoutMs: 4_000,
  maxResponseBytes: 1024 * 1024,
  maxRedirects: 5,
  retry: { attempts: 3, baseDelayMs: 200, maxDelayMs: 5_000 },
  pollIntervalMs: 5_000,
  longPollTimeoutMs: 60_000,
  reconnectMs: 1_000,
  maxReconnectMs: 30_000,
  actionPollIntervalMs: 1_000,
  actionTimeoutMs: 5 * 60_000,
} as const;

// HTTP Binding Templates §3 (default mappings), for forms without htv:methodName.
const DEFAULT_METHODS: Partial<Record<Operation, string>> = {
  readproperty: "GET",
  writeproperty: "PUT",
  readallproperties: "GET",
  writeallproperties: "PUT",
  readmultipleproperties: "GET",
  writemultipleproperties: "PUT",
  invokeaction: "POST",
  queryaction: "GET",
  cancelaction: "DELETE",
  observeproperty: "GET",
  subscribeevent: "GET",
};

export class HttpBinding implements Binding {
  readonly schemes = ["http", "https"] as const;
  readonly #transport: HttpTransport;
  readonly #observation: ObservationOptions;
  readonly #action: {
    readonly pollIntervalMs: number;
    readonly timeoutMs: number;
    readonly now: () => number;
  };
  readonly #subscriptions = new OpenSubscriptions();

  constructor(options: HttpBindingOptions = {}) {
    const d = HTTP_BINDING_DEFAULTS;
    const random = options.random ?? Math.random;
    const transport: HttpTransportOptions = {
      addressPolicy: options.addressPolicy ?? new AddressPolicy(),
      connectTimeoutMs: options.connectTimeoutMs ?? d.connectTimeoutMs,
      headersTimeoutMs: options.headersTimeoutMs ?? d.headersTimeoutMs,
      bodyTimeoutMs: options.bodyTimeoutMs ?? d.bodyTimeoutMs,
      bodyDeadlineMs: options.bodyDeadlineMs ?? d.bodyDeadlineMs,
      keepAliveTimeoutMs: options.keepAliveTimeoutMs ?? d.keepAliveTimeoutMs,
      ...(options.connectionsPerOrigin === undefined
        ? {}
        : { connectionsPerOrigin: options.connectionsPerOrigin }),
      maxResponseBytes: options.maxResponseBytes ?? d.maxResponseBytes,
      maxRedirects: options.maxRedirects ?? d.maxRedirects,
      retry: { ...d.retry, ...options.retry },
      random,
    };
    this.#transport = new HttpTransport(transport);
    this.#observation = {
      pollIntervalMs: options.pollIntervalMs ?? d.pollIntervalMs,
      longPollTimeoutMs: options.longPollTimeoutMs ?? d.longPollTimeoutMs,
      reconnectMs: options.reconnectMs ?? d.reconnectMs,
      maxReconnectMs: options.maxReconnectMs ?? d.maxReconnectMs,
      maxEventBytes: transport.maxResponseBytes,
      random,
    };
    this.#action = {
      pollIntervalMs: options.actionPollIntervalMs ?? d.actionPollIntervalMs,
      timeoutMs: options.actionTimeoutMs ?? d.actionTimeoutMs,
      now: options.now ?? Date.now,
    };
  }

  async readProperty(target: Target): Promise<unknown> {
    const answer = await this.#transport.fetch(this.#exchange(target));
    return decodeAnswer(target, answer, target.terms.contentType);
  }

  async writeProperty(target: Target, value: unknown): Promise<void> {
    await this.#transport.fetch(this.#exchange(target, value));
  }

  async invokeAction(target: Target, input?: unknown): Promise<ActionOutcome> {
    const answer = await this.#transport.fetch(this.#exchange(target, input));
    // TD 1.1 asynchronous action: 201 Created or 202 Accepted, pointing at a status resource.
    if (answer.status === 201 || answer.status === 202) {
      const location = answer.headers.location;
      const href =
        typeof location === "string" ? location : statusHref(answer.body, answer.headers["content-type"]);
      if (href !== undefined) {
        // The Thing took the action (201/202) whatever it names as its status resource; one that
        // cannot be followed makes a handle that says why, so the action is reported as running
        // and then as not followed, never as an error of the hub.
        const statusUrl = URL.canParse(href, answer.url) ? new URL(href, answer.url) : undefined;
        // As a redirect, a status resource does not get to add a host to those the TD names: one
        // on another origin is not asked (the hub would fetch any URL a device names, and keep
        // its answer in the Log), and the action is reported as not followed.
        const origin = new URL(target.href).origin;
        const refusal =
          statusUrl === undefined
            ? bindingError(
                { ...target, op: "queryaction", href },
                "content",
                `the action's status resource "${href}" is not a URL: it is not followed`,
                { status: answer.status },
              )
            : statusUrl.origin === origin
              ? undefined
              : bindingError(
                  { ...target, op: "queryaction", href: statusUrl.href },
                  "unsupported",
                  `the action's status resource ${statusUrl.href} is on another origin than ${origin}: it is not followed`,
                  { status: answer.status },
                );
        const handle = new HttpActionHandle(this.#transport, {
          thing: target.thing,
          href: statusUrl?.href ?? href,
          credentials: target.credentials,
          ...this.#action,
          ...(refusal === undefined ? {} : { refusal }),
        });
        return { kind: "running", handle };
      }
    }
    return {
      kind: "completed",
      output: decodeAnswer(target, answer, target.terms.contentType),
    };
  }

  async observeProperty(
    target: Target,
    onValue: ValueListener,
    onError: ErrorListener,
  ): Promise<Subscription> {
    const subprotocol = target.terms.subprotocol;
    if (subprotocol === "sse")
      return this.#track(observeBySse(this.#transport, target, onValue, onError, this.#observation));
    if (subprotocol === "longpoll") {
      return this.#track(observeByLongPoll(this.#transport, target, onValue, onError, this.#observation));
    }
    if (subprotocol === undefined) {
      return this.#track(observeByPolling(this.#transport, target, onValue, onError, this.#observation));
    }
    throw bindingError(target, "unsupported", `subprotocol "${subprotocol}" is not supported over HTTP`);
  }

  /** SSE when the form says `sse`, long-poll otherwise (node-wot's default for HTTP events). */
  async subscribeEvent(target: Target, onData: ValueListener, onError: ErrorListener): Promise<Subscription> {
    const subprotocol = target.terms.subprotocol;
    if (subprotocol === "sse")
      return this.#track(observeBySse(this.#transport, target, onData, onError, this.#observation));
    if (subprotocol === undefined || subprotocol === "longpoll") {
      return this.#track(observeByLongPoll(this.#transport, target, onData, onError, this.#observation));
    }
    throw bindingError(target, "unsupported", `subprotocol "${subprotocol}" is not supported over HTTP`);
  }

  async discover(url: string, credentials: readonly Credentials[] = []): Promise<Discovered> {
    const answer = await this.#transport.fetch({
      thing: url,
      method: "GET",
      url,
      credentials,
      accept: "application/td+json, application/json;q=0.9",
    });
    // Whatever type it is served as, a TD is JSON.
    const type = answer.headers["content-type"];
    const json = typeof type === "string" && isJson(type) ? type : "application/json";
    const document = decodeAnswer({ thing: url }, { ...answer, headers: { "content-type": json } }, json);
    return { document, url: answer.url };
  }

  async close(): Promise<void> {
    await this.#subscriptions.closeAll();
    await this.#transport.close();
  }

  #exchange(target: Target, value?: unknown): HttpExchange {
    const method = target.terms.methodName ?? DEFAULT_METHODS[target.op];
    if (method === undefined)
      throw bindingError(target, "unsupported", `the HTTP binding does not do ${target.op}`);
    const body = encodeFor(target, value);
    return {
      thing: target.thing,
      op: target.op,
      method,
      url: target.href,
      credentials: target.credentials,
      accept: target.terms.contentType,
      contentType: target.terms.contentType,
      ...(body === undefined ? {} : { body }),
    };
  }

  async #track(opening: Promise<Subscription>): Promise<Subscription> {
    return this.#subscriptions.track(await opening);
  }
}

/** TD 1.1: an ActionStatus body may carry the status resource as `href`. */
function statusHref(body: Buffer, contentType: string | string[] | undefined): string | undefined {
  if (typeof contentType !== "string" || !isJson(contentType) || body.length === 0) return undefined;
  try {
    const parsed: unknown = JSON.parse(body.toString("utf8"));
    const href = (parsed as { href?: unknown } | null)?.href;
    return typeof href === "string" ? href : undefined;
  } catch {
    // No JSON, so no href: the answer is then an output, decoded (and reported) by the caller.
    return undefined;
  }
}

const STATUSES = new Set(["pending", "running", "completed", "failed"]);

interface ActionContext {
  readonly thing: string;
  readonly href: string;
  readonly credentials: readonly Credentials[];
  readonly pollIntervalMs: number;
  readonly timeoutMs: number;
  readonly now: () => number;
  /** Why the status resource is not asked, if it is not. */
  readonly refusal?: BindingError;
}

class HttpActionHandle implements ActionHandle {
  readonly href: string;
  readonly #transport: HttpTransport;
  readonly #context: ActionContext;

  constructor(transport: HttpTransport, context: ActionContext) {
    this.href = context.href;
    this.#transport = transport;
    this.#context = context;
  }

  async query(): Promise<ActionStatus> {
    const { thing, href, credentials, refusal } = this.#context;
    if (refusal !== undefined) throw refusal;
    const answer = await this.#transport.fetch({
      thing,
      op: "queryaction",
      method: "GET",
      url: href,
      credentials,
      accept: "application/json",
    });
    const context = { thing, href: answer.url, op: "queryaction", credentials } as const;
    const status = decodeAnswer(context, answer, "application/json");
    const state = (status as { status?: unknown } | null)?.status;
    if (typeof state !== "string" || !STATUSES.has(state)) {
      throw bindingError(context, "content", "the action status resource answered no TD 1.1 ActionStatus", {
        status: answer.status,
        body: answer.body.toString("utf8"),
      });
    }
    return status as ActionStatus;
  }

  async result(): Promise<unknown> {
    const { thing, href, credentials, pollIntervalMs, timeoutMs, now } = this.#context;
    const deadline = now() + timeoutMs;
    for (;;) {
      const status = await this.query();
      if (status.status === "completed") return status.output;
      if (status.status === "failed") {
        const body = JSON.stringify(status.error ?? null);
        throw bindingError(
          { thing, href, op: "queryaction", credentials },
          "action-failed",
          "the action failed",
          {
            body,
          },
        );
      }
      if (now() + pollIntervalMs > deadline) {
        throw bindingError(
          { thing, href, op: "queryaction" },
          "timeout",
          `the action did not end in ${timeoutMs} ms`,
        );
      }
      await delay(pollIntervalMs);
    }
  }

  async cancel(): Promise<void> {
    const { thing, href, credentials, refusal } = this.#context;
    if (refusal !== undefined) throw refusal;
    await this.#transport.fetch({ thing, op: "cancelaction", method: "DELETE", url: href, credentials });
  }
}
