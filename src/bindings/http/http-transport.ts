// HTTP exchanges for the binding: one undici Agent (keep-alive pools per origin) whose connector
// checks every address against the policy; redirects followed by hand, on the same origin only;
// timeouts, bounded retries with backoff for idempotent methods, and a bound on response bodies.
import type { IncomingHttpHeaders } from "node:http";
import { setTimeout as delay } from "node:timers/promises";
import { Agent, buildConnector } from "undici";
import type { Dispatcher } from "undici";
import { backoffDelay } from "../backoff.js";
import type { BackoffOptions } from "../backoff.js";
import { BindingError } from "../../core/index.js";
import { bindingError, bindingFailure, withUnknownOutcome } from "../binding.js";
import type { BindingFailureReason, Credentials, Operation } from "../binding.js";
import type { AddressPolicy } from "../address-policy.js";

export interface HttpTransportOptions {
  readonly addressPolicy: AddressPolicy;
  readonly connectTimeoutMs: number;
  readonly headersTimeoutMs: number;
  readonly bodyTimeoutMs: number;
  /** Reading a whole body (`fetch`), at most: between-chunk timeouts alone let a trickle last for hours. */
  readonly bodyDeadlineMs: number;
  /** How long an idle kept-alive connection stays open. */
  readonly keepAliveTimeoutMs: number;
  /** Connections per origin; undefined for no bound (each SSE stream holds one). */
  readonly connectionsPerOrigin?: number;
  readonly maxResponseBytes: number;
  readonly maxRedirects: number;
  /** Attempts in all (1 = no retry) for idempotent methods, and the backoff between them. */
  readonly retry: BackoffOptions & { readonly attempts: number };
  readonly random: () => number;
}

/** One request, with what errors must name. */
export interface HttpExchange {
  readonly thing: string;
  readonly op?: Operation;
  readonly method: string;
  readonly url: string;
  readonly credentials: readonly Credentials[];
  readonly accept?: string;
  readonly contentType?: string;
  readonly body?: Buffer;
  readonly headers?: Readonly<Record<string, string>>;
  readonly headersTimeoutMs?: number;
  readonly bodyTimeoutMs?: number;
  readonly signal?: AbortSignal;
  /** Retry on failure; default: when the method is idempotent (RFC 9110 §9.2.2). */
  readonly retry?: boolean;
}

/** A response body as undici gives it: a Readable of Buffers with `dump()`. */
export type ResponseBody = Dispatcher.ResponseData["body"];

export interface HttpAnswer {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  /** The URL that answered, after redirects. */
  readonly url: string;
}

const IDEMPOTENT = new Set(["GET", "HEAD", "PUT", "DELETE", "OPTIONS"]);
const REDIRECTS = new Set([301, 302, 303, 307, 308]);
// RFC 9110 §15.6.4 and §15.5.9, RFC 6585 §4: worth asking again later.
const RETRY_STATUSES = new Set([408, 429, 502, 503, 504]);
const RETRY_REASONS = new Set<BindingFailureReason>(["timeout", "unreachable"]);
// Failures after the request went out, or may have: the Thing may have acted on it.
const AFTER_SENDING = new Set([
  "UND_ERR_HEADERS_TIMEOUT",
  "UND_ERR_BODY_TIMEOUT",
  "UND_ERR_SOCKET",
  "ECONNRESET",
  "EPIPE",
]);
// Methods that change nothing, whose failure leaves nothing unknown.
const SAFE = new Set(["GET", "HEAD", "OPTIONS"]);
const ERROR_BODY_BYTES = 64 * 1024;

export class HttpTransport {
  readonly #options: HttpTransportOptions;
  readonly #agent: Agent;

  constructor(options: HttpTransportOptions) {
    this.#options = options;
    const policy = options.addressPolicy;
    // One connector per port, whose lookup knows it: a name's addresses are checked with their
    // port before the socket is made (a protected port, such as the hub's own, gets no packet).
    const byPort = new Map<number, buildConnector.connector>();
    const connectByName = (port: number): buildConnector.connector => {
      let connector = byPort.get(port);
      if (connector === undefined) {
        connector = buildConnector({ timeout: options.connectTimeoutMs, lookup: policy.lookupFor(port) });
        byPort.set(port, connector);
      }
      return connector;
    };
    // Node calls `lookup` only for names; an IP literal is checked here, before any packet.
    const connect: buildConnector.connector = (connectOptions, callback) => {
      const port = Number(connectOptions.port) || (connectOptions.protocol === "https:" ? 443 : 80);
      const denied = policy.checkHost(connectOptions.hostname, port);
      if (denied !== undefined) {
        callback(denied, null);
        return;
      }
      connectByName(port)(connectOptions, callback);
    };
    this.#agent = new Agent({
      connect,
      headersTimeout: options.headersTimeoutMs,
      bodyTimeout: options.bodyTimeoutMs,
      keepAliveTimeout: options.keepAliveTimeoutMs,
      ...(options.connectionsPerOrigin === undefined ? {} : { connections: options.connectionsPerOrigin }),
    });
  }

  /** Sends the exchange and reads the whole body (bounded); a non-2xx answer is a BindingError. */
  async fetch(exchange: HttpExchange): Promise<HttpAnswer & { readonly body: Buffer }> {
    return this.#withRetries(exchange, async () => {
      const { answer, body } = await this.#send(exchange);
      const bytes = await this.#readBody(exchange, answer, body);
      // undici hands the connection back to its pool a moment after the body ends: yielding once
      // lets the caller's next request reuse it rather than open a second connection.
      await new Promise((resolve) => setImmediate(resolve));
      return { ...answer, body: bytes };
    });
  }

  /** Sends the exchange and hands over the body as a stream, for SSE; a non-2xx answer is a BindingError. */
  async open(exchange: HttpExchange): Promise<HttpAnswer & { readonly body: ResponseBody }> {
    return this.#withRetries(exchange, async () => {
      const { answer, body } = await this.#send(exchange);
      return { ...answer, body };
    });
  }

  async close(): Promise<void> {
    await this.#agent.destroy();
  }

  async #withRetries<T>(exchange: HttpExchange, attempt: () => Promise<T>): Promise<T> {
    const retry = exchange.retry ?? IDEMPOTENT.has(exchange.method);
    const { attempts } = this.#options.retry;
    // Once one attempt may have reached the Thing, the exchange's outcome stays unknown, whatever
    // the later attempts answer (a connection refused after a timeout says nothing of the first).
    let unknown = false;
    for (let n = 0; ; n++) {
      try {
        return await attempt();
      } catch (error) {
        const failure = bindingFailure(error);
        unknown ||= failure?.outcome === "unknown";
        const failed = () => (unknown && error instanceof BindingError ? withUnknownOutcome(error) : error);
        // RFC 9110 §10.2.3: the Thing says when to ask again. Sooner would be refused again (and
        // add to what overloads it); a wait longer than the backoff's cap is not the hub's to
        // spend on one request, so the Thing's answer is the result.
        const retryAfter = retryAfterOf(error);
        const retryable =
          retry &&
          n + 1 < attempts &&
          exchange.signal?.aborted !== true &&
          failure !== undefined &&
          retryAfter <= this.#options.retry.maxDelayMs &&
          (RETRY_REASONS.has(failure.reason) ||
            (failure.status !== undefined && RETRY_STATUSES.has(failure.status)));
        if (!retryable) throw failed();
        const wait = Math.max(backoffDelay(n, this.#options.retry, this.#options.random), retryAfter);
        await delay(wait, undefined, {
          signal: exchange.signal,
        }).catch(() => {
          throw failed();
        });
      }
    }
  }

  /** One attempt: follows redirects (each hop's address checked when it connects). */
  async #send(exchange: HttpExchange): Promise<{ answer: HttpAnswer; body: ResponseBody }> {
    const first = parseUrl(exchange, exchange.url);
    let url = first;
    let method = exchange.method;
    let body = exchange.body;
    const credentials = exchange.credentials;
    for (let hop = 0; ; hop++) {
      const context = { thing: exchange.thing, href: url.href, op: exchange.op, credentials };
      const { target, headers } = prepare(
        exchange,
        url,
        credentials,
        body === undefined ? undefined : exchange.contentType,
      );
      let response: Dispatcher.ResponseData;
      try {
        response = await this.#agent.request({
          origin: target.origin,
          path: `${target.pathname}${target.search}`,
          method,
          headers,
          body,
          signal: exchange.signal,
          headersTimeout: exchange.headersTimeoutMs ?? this.#options.headersTimeoutMs,
          bodyTimeout: exchange.bodyTimeoutMs ?? this.#options.bodyTimeoutMs,
        });
      } catch (error) {
        throw transportError(context, method, error);
      }
      const { statusCode: status } = response;
      const answer = { status, headers: response.headers, url: url.href };
      const location = header(response.headers, "location");
      if (REDIRECTS.has(status) && location !== undefined) {
        await response.body.dump();
        if (hop >= this.#options.maxRedirects) {
          throw bindingError(context, "content", `more than ${this.#options.maxRedirects} redirects`, {
            status,
          });
        }
        const next = parseUrl({ ...exchange, url: url.href }, location, url);
        // A TD names the hosts it may send the hub to; a redirect does not get to add one.
        if (next.origin !== first.origin) {
          throw bindingError(
            context,
            "unsupported",
            `${method} answered ${status} to ${next.href}: redirects to another origin than ${first.origin} are not followed`,
            { status },
          );
        }
        // RFC 9110 §15.4: 303, and 301/302 after POST, continue as GET without the body.
        if (status === 303 || ((status === 301 || status === 302) && method === "POST")) {
          method = "GET";
          body = undefined;
        }
        url = next;
        continue;
      }
      if (status < 200 || status > 299) {
        const excerpt = await readExcerpt(response.body, this.#options.bodyDeadlineMs);
        const error = bindingError(context, "status", `${method} answered ${status}`, {
          status,
          body: excerpt,
        });
        const retryAfter = parseRetryAfter(header(response.headers, "retry-after"));
        if (retryAfter !== undefined) RETRY_AFTER.set(error, retryAfter);
        throw error;
      }
      return { answer, body: response.body };
    }
  }

  async #readBody(exchange: HttpExchange, answer: HttpAnswer, body: ResponseBody): Promise<Buffer> {
    const limit = this.#options.maxResponseBytes;
    const context = {
      thing: exchange.thing,
      href: answer.url,
      op: exchange.op,
      credentials: exchange.credentials,
    };
    const tooLarge = () =>
      bindingError(context, "too-large", `the answer is larger than ${limit} bytes`, {
        status: answer.status,
      });
    const declared = Number(header(answer.headers, "content-length") ?? Number.NaN);
    if (declared > limit) {
      body.destroy();
      throw tooLarge();
    }
    const chunks: Buffer[] = [];
    let size = 0;
    const deadline = this.#options.bodyDeadlineMs;
    const timer = setTimeout(
      () =>
        body.destroy(
          bindingError(
            context,
            "timeout",
            `${exchange.method} failed: the body did not end within ${deadline} ms`,
            {
              status: answer.status,
            },
          ),
        ),
      deadline,
    );
    try {
      for await (const chunk of body as AsyncIterable<Buffer>) {
        size += chunk.length;
        if (size > limit) {
          body.destroy();
          throw tooLarge();
        }
        chunks.push(chunk);
      }
    } catch (error) {
      if (bindingFailure(error) !== undefined) throw error;
      throw transportError(context, exchange.method, error);
    } finally {
      clearTimeout(timer);
    }
    return Buffer.concat(chunks, size);
  }
}

function prepare(
  exchange: HttpExchange,
  url: URL,
  credentials: readonly Credentials[],
  contentType: string | undefined,
): { target: URL; headers: Record<string, string> } {
  const target = new URL(url);
  const headers: Record<string, string> = { ...exchange.headers };
  if (exchange.accept !== undefined) headers.accept = exchange.accept;
  if (contentType !== undefined) headers["content-type"] = contentType;
  const cookies: string[] = [];
  for (const credential of credentials) {
    switch (credential.scheme) {
      case "nosec":
        break;
      case "basic":
        headers[credential.name.toLowerCase()] =
          `Basic ${Buffer.from(`${credential.username}:${credential.password}`, "utf8").toString("base64")}`;
        break;
      case "bearer":
      case "apikey": {
        const secret = credential.scheme === "bearer" ? credential.token : credential.key;
        if (credential.in === "query") target.searchParams.set(credential.name, secret);
        else if (credential.in === "cookie") cookies.push(`${credential.name}=${encodeURIComponent(secret)}`);
        else if (credential.scheme === "bearer" && credential.name.toLowerCase() === "authorization") {
          headers.authorization = `Bearer ${secret}`;
        } else headers[credential.name.toLowerCase()] = secret;
        break;
      }
    }
  }
  if (cookies.length > 0) headers.cookie = cookies.join("; ");
  return { target, headers };
}

function parseUrl(exchange: HttpExchange, href: string, base?: URL): URL {
  let url: URL;
  try {
    url = new URL(href, base);
  } catch (cause) {
    throw bindingError({ ...exchange, href }, "content", `"${href}" is not a URL`, { cause });
  }
  if (url.protocol !== "http:" && url.protocol !== "https:") {
    throw bindingError(
      { ...exchange, href: url.href },
      "unsupported",
      `the HTTP binding does not follow ${url.protocol}`,
    );
  }
  if (url.username !== "" || url.password !== "") {
    throw bindingError({ ...exchange, href: url.href }, "unsupported", "credentials in a URL are not sent");
  }
  return url;
}

function header(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

async function readExcerpt(body: ResponseBody, deadlineMs: number): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  const timer = setTimeout(() => body.destroy(), deadlineMs);
  try {
    for await (const chunk of body as AsyncIterable<Buffer>) {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= ERROR_BODY_BYTES) {
        body.destroy();
        break;
      }
    }
  } catch {
    // The status is the answer; a body cut short only shortens the excerpt.
  } finally {
    clearTimeout(timer);
  }
  return Buffer.concat(chunks).toString("utf8");
}

// Retry-After of a status error, kept beside the error rather than in its public detail.
const RETRY_AFTER = new WeakMap<object, number>();

/** The `Retry-After` (ms) of the answer an error stands for; 0 when it had none. */
export function retryAfterOf(error: unknown): number {
  return typeof error === "object" && error !== null ? (RETRY_AFTER.get(error) ?? 0) : 0;
}

/** RFC 9110 §10.2.3: seconds, or an HTTP date; in ms. */
function parseRetryAfter(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - Date.now());
}

/** Maps undici and socket errors to the binding's reasons. */
function transportError(
  context: { thing: string; href: string; op?: Operation },
  method: string,
  error: unknown,
): Error {
  const codes = errorCodes(error);
  const code = codes.includes("ERR_ADDRESS_DENIED") ? "ERR_ADDRESS_DENIED" : codes[0];
  const reason: BindingFailureReason =
    code === "ERR_ADDRESS_DENIED"
      ? "address-denied"
      : code === "UND_ERR_CONNECT_TIMEOUT" ||
          code === "UND_ERR_HEADERS_TIMEOUT" ||
          code === "UND_ERR_BODY_TIMEOUT"
        ? "timeout"
        : code === "UND_ERR_ABORTED" ||
            code === "ABORT_ERR" ||
            (error instanceof Error && error.name === "AbortError")
          ? "closed"
          : "unreachable";
  const why = socketFailure(error) ?? (error instanceof Error ? error.message : String(error));
  const sent = !SAFE.has(method) && code !== undefined && AFTER_SENDING.has(code);
  return bindingError(context, reason, `${method} failed: ${why}`, {
    cause: error,
    ...(sent && { outcome: "unknown" as const }),
  });
}

/**
 * A connection that never opened, in words, as the CoAP binding says it (`nothing listens at
 * 127.0.0.1 port 9000`), with the socket's code kept for searching; undefined for other errors.
 */
function socketFailure(error: unknown): string | undefined {
  for (let e = error, depth = 0; typeof e === "object" && e !== null && depth < 4; depth++) {
    const { code, address, port, hostname } = e as Record<string, unknown>;
    const at = typeof address === "string" ? address : undefined;
    if (code === "ECONNREFUSED" && at !== undefined && typeof port === "number")
      return `nothing listens at ${at} port ${port} (connection refused, ECONNREFUSED)`;
    if ((code === "EHOSTUNREACH" || code === "ENETUNREACH") && at !== undefined)
      return `no route to ${at} (${code})`;
    if ((code === "ENOTFOUND" || code === "EAI_AGAIN") && typeof hostname === "string")
      return `the name ${hostname} is not found (${code})`;
    e = (e as { cause?: unknown }).cause;
  }
  return undefined;
}

function errorCodes(error: unknown): string[] {
  const codes: string[] = [];
  for (let e = error, depth = 0; typeof e === "object" && e !== null && depth < 4; depth++) {
    const code = (e as { code?: unknown }).code;
    if (typeof code === "string") codes.push(code);
    e = (e as { cause?: unknown }).cause;
  }
  return codes;
}
