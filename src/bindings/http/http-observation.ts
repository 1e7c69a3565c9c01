// Observation over HTTP: Server-Sent Events (reconnecting with Last-Event-ID), long-poll, and
// polling with readproperty for forms without a push subprotocol.
import type { IncomingHttpHeaders } from "node:http";
import { setTimeout as delay } from "node:timers/promises";
import { MAX_RETRY_AFTER_MS, backoffDelay } from "../backoff.js";
import { bindingError, bindingFailure } from "../binding.js";
import type {
  Credentials,
  ErrorListener,
  Operation,
  Subscription,
  Target,
  ValueListener,
} from "../binding.js";
import { decodeJsonOrText, decodeValue, mediaType } from "../content.js";
import { Observation, asBindingError } from "../observation-loop.js";
import { EventStreamParser, EventStreamTooLargeError } from "./event-stream.js";
import { retryAfterOf, type HttpExchange, type HttpTransport } from "./http-transport.js";

export interface ObservationOptions {
  /** Polling: ms between reads when the target names none. */
  readonly pollIntervalMs: number;
  /** Long-poll: how long the Thing may hold a request before it is asked again. */
  readonly longPollTimeoutMs: number;
  /** SSE: the reconnection time unless the stream sets one with `retry:`, and the backoff cap. */
  readonly reconnectMs: number;
  readonly maxReconnectMs: number;
  /** SSE: the largest event accepted. */
  readonly maxEventBytes: number;
  readonly random: () => number;
}

/** A 4xx answer (but 408 and 429) will not get better by asking again: it ends the observation. */
function isFinal(error: unknown): boolean {
  const status = bindingFailure(error)?.status;
  return status !== undefined && status >= 400 && status < 500 && status !== 408 && status !== 429;
}

/** At least `wait`, or as long as the Thing's answer said to wait before asking again (capped). */
function notBefore(wait: number, error: unknown): number {
  return Math.max(wait, Math.min(retryAfterOf(error), MAX_RETRY_AFTER_MS));
}

function exchangeFor(target: Target, overrides: Partial<HttpExchange> = {}): HttpExchange {
  return {
    thing: target.thing,
    op: target.op,
    method: target.terms.methodName ?? "GET",
    url: target.href,
    credentials: target.credentials,
    accept: target.terms.contentType,
    ...overrides,
  };
}

/** Decodes by the answer's Content-Type, else `fallbackType`; undecodable bytes are a BindingError. */
export function decodeAnswer(
  context: { readonly thing: string; readonly op?: Operation; readonly credentials?: readonly Credentials[] },
  answer: { readonly body: Buffer; readonly headers: IncomingHttpHeaders; readonly url: string },
  fallbackType: string,
): unknown {
  const type = answer.headers["content-type"] ?? fallbackType;
  try {
    return decodeValue(answer.body, type);
  } catch (cause) {
    const where = {
      thing: context.thing,
      href: answer.url,
      ...(context.op === undefined ? {} : { op: context.op }),
      ...(context.credentials === undefined ? {} : { credentials: context.credentials }),
    };
    throw bindingError(where, "content", `the answer is not valid ${mediaType(type)}`, {
      body: answer.body.toString("utf8"),
      cause,
    });
  }
}

/** The shortest reconnection time taken from an event stream's `retry:`, in ms. */
const MIN_SSE_RETRY_MS = 250;

/** `subprotocol: "sse"`: one event per value; reconnects with `Last-Event-ID` after a break. */
export async function observeBySse(
  transport: HttpTransport,
  target: Target,
  onValue: ValueListener,
  onError: ErrorListener,
  options: ObservationOptions,
): Promise<Subscription> {
  const observation = new Observation(onValue, onError);
  const dataType = mediaType(target.terms.contentType);
  const parser = new EventStreamParser((event) => {
    const bytes = Buffer.from(event.data, "utf8");
    if (dataType === "text/event-stream") {
      observation.value(decodeJsonOrText(bytes));
      return;
    }
    try {
      observation.value(decodeAnswer(target, { body: bytes, headers: {}, url: target.href }, dataType));
    } catch (error) {
      observation.error(asBindingError(error));
    }
  }, options.maxEventBytes);

  const connect = async () => {
    const headers: Record<string, string> = {};
    if (parser.lastEventId !== "") headers["last-event-id"] = parser.lastEventId;
    // An event stream may stay quiet for hours: no body timeout (TCP keep-alive finds dead peers).
    const exchange = exchangeFor(target, {
      accept: "text/event-stream",
      headers,
      bodyTimeoutMs: 0,
      signal: observation.signal,
    });
    const answer = await transport.open(exchange);
    const type = answer.headers["content-type"];
    if (answer.status === 204 || typeof type !== "string" || mediaType(type) !== "text/event-stream") {
      // HTML §9.2.3: a 204, or a type other than text/event-stream, means "do not reconnect".
      await answer.body.dump();
      const why =
        answer.status === 204 ? "the Thing ended the stream (204)" : `not an event stream (${String(type)})`;
      throw bindingError({ ...target, href: answer.url }, "content", why, { status: answer.status });
    }
    return answer;
  };

  let stream = await connect();
  observation.run(async () => {
    let failures = 0;
    for (;;) {
      try {
        for await (const chunk of stream.body as AsyncIterable<Buffer>) parser.push(chunk);
      } catch (error) {
        if (observation.closed) return;
        if (error instanceof EventStreamTooLargeError) {
          observation.error(bindingError(target, "too-large", error.message, { cause: error }));
        }
        // A broken stream is what reconnecting is for; only failing to reconnect is reported.
      }
      parser.end();
      let refusal: unknown;
      for (;;) {
        // The Thing's `retry:` within bounds: `retry: 0` on a stream that ends after each event
        // would reconnect as fast as the Thing answers (and past 2^31 - 1 ms a timer fires at
        // once), and a day-long one would stop the observation without a word.
        const base = Math.min(
          Math.max(parser.retryMs ?? options.reconnectMs, MIN_SSE_RETRY_MS),
          options.maxReconnectMs,
        );
        const wait = notBefore(
          failures === 0
            ? base
            : backoffDelay(failures, { baseDelayMs: base, maxDelayMs: options.maxReconnectMs }),
          refusal,
        );
        if (!(await observation.pause(wait))) return;
        try {
          stream = await connect();
          failures = 0;
          break;
        } catch (error) {
          if (observation.closed) return;
          const final = isFinal(error) || bindingFailure(error)?.reason === "content";
          observation.error(asBindingError(error), final);
          if (final) return;
          failures++;
          refusal = error;
        }
      }
    }
  });
  return observation;
}

/**
 * How long the first long-poll request must stay unanswered, without failing, for the Thing to
 * count as reached: a Thing that holds the request has accepted it. A refused connection or an
 * unknown host fails well within this (a Thing that cannot be reached cannot be subscribed to).
 */
const LONG_POLL_CONTACT_MS = 250;
/**
 * Answers in a row, each within LONG_POLL_CONTACT_MS of its request, after which a Thing is taken
 * not to hold long-poll requests (a plain GET endpoint, a 204 at once): asking it again at once
 * would loop as fast as it answers, so the next requests wait, backing off. A few in a row are a
 * burst of queued values.
 */
const LONG_POLL_PROMPT_ANSWERS = 10;
const HELD: unique symbol = Symbol("held");

/** `subprotocol: "longpoll"`: each answer is one value; the request is sent again at once. */
export async function observeByLongPoll(
  transport: HttpTransport,
  target: Target,
  onValue: ValueListener,
  onError: ErrorListener,
  options: ObservationOptions,
): Promise<Subscription> {
  const observation = new Observation(onValue, onError);
  const request = () =>
    transport.fetch(
      exchangeFor(target, {
        headersTimeoutMs: options.longPollTimeoutMs,
        retry: false,
        signal: observation.signal,
      }),
    );
  // The first request establishes the subscription: it answers, or it is still held after a
  // moment. If it fails first, the subscription fails (unreachable, 4xx…), as an SSE stream's
  // first connection or a polled property's first read does.
  let sent = performance.now();
  let first: ReturnType<typeof request> | undefined = request();
  const early = await Promise.race([
    first,
    delay<typeof HELD>(Math.min(LONG_POLL_CONTACT_MS, options.longPollTimeoutMs), HELD, { ref: false }),
  ]).catch(async (error: unknown): Promise<typeof HELD> => {
    // Held for the whole window with nothing to say is contact too: the loop asks again.
    const failure = bindingFailure(error);
    if (failure?.reason === "timeout" || failure?.status === 408) return HELD;
    await observation.close();
    throw error;
  });
  // An answer already in is taken by the loop, as any other.
  if (early !== HELD) first = Promise.resolve(early);
  observation.run(async () => {
    let failures = 0;
    let prompt = 0;
    while (!observation.closed) {
      try {
        if (first === undefined) sent = performance.now();
        const pending = first ?? request();
        first = undefined;
        const answer = await pending;
        failures = 0;
        prompt = performance.now() - sent < LONG_POLL_CONTACT_MS ? prompt + 1 : 0;
        if (answer.status !== 204) {
          observation.value(decodeAnswer(target, answer, target.terms.contentType));
        }
        if (prompt >= LONG_POLL_PROMPT_ANSWERS) {
          if (prompt === LONG_POLL_PROMPT_ANSWERS) {
            observation.error(
              bindingError(
                { ...target, href: answer.url },
                "content",
                `the Thing answered ${prompt} long-poll requests in a row at once instead of holding them: it is asked again after a delay`,
                { status: answer.status },
              ),
            );
          }
          const wait = backoffDelay(
            prompt - LONG_POLL_PROMPT_ANSWERS,
            { baseDelayMs: options.reconnectMs, maxDelayMs: options.maxReconnectMs },
            options.random,
          );
          await observation.pause(wait);
        }
      } catch (error) {
        if (observation.closed) return;
        const failure = bindingFailure(error);
        // The Thing held the request for the whole window with nothing to say: ask again.
        if (failure?.reason === "timeout" || failure?.status === 408) {
          prompt = 0;
          continue;
        }
        const final = isFinal(error);
        observation.error(asBindingError(error), final);
        if (final) return;
        const wait = backoffDelay(failures++, {
          baseDelayMs: options.reconnectMs,
          maxDelayMs: options.maxReconnectMs,
        });
        await observation.pause(notBefore(wait, error));
      }
    }
  });
  return observation;
}

/** No push subprotocol: reads every interval, and reports the value when its bytes change. */
export async function observeByPolling(
  transport: HttpTransport,
  target: Target,
  onValue: ValueListener,
  onError: ErrorListener,
  options: ObservationOptions,
): Promise<Subscription> {
  const observation = new Observation(onValue, onError);
  const interval = target.pollIntervalMs ?? options.pollIntervalMs;
  const read = () => transport.fetch(exchangeFor(target, { signal: observation.signal }));
  // The first read establishes the observation: a Thing that cannot be read cannot be observed.
  const first = await read();
  let last = first.body;
  observation.value(decodeAnswer(target, first, target.terms.contentType), "read");
  observation.run(async () => {
    while (await observation.pause(interval)) {
      try {
        const answer = await read();
        if (answer.body.equals(last)) continue;
        last = answer.body;
        observation.value(decodeAnswer(target, answer, target.terms.contentType), "read");
      } catch (error) {
        if (observation.closed) return;
        const final = isFinal(error);
        observation.error(asBindingError(error), final);
        if (final) return;
        // A 429 or 503 with Retry-After: the next read waits as long as the Thing asked.
        const extra = notBefore(interval, error) - interval;
        if (extra > 0 && !(await observation.pause(extra))) return;
      }
    }
  });
  return observation;
}
