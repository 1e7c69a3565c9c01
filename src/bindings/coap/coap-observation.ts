// Observation over CoAP: RFC 7641 Observe (registering again when it ends or goes stale), and
// polling with readproperty for forms that do not offer it.
import { backoffDelay } from "../backoff.js";
import { bindingError, bindingFailure } from "../binding.js";
import type { Delivery, ErrorListener, Subscription, Target, ValueListener } from "../binding.js";
import { decodeValue } from "../content.js";
import { Observation, asBindingError } from "../observation-loop.js";
import type { CoapAnswer, CoapExchange, CoapObservation, CoapTransport } from "./coap-transport.js";

export interface CoapObservationOptions {
  /** Polling: ms between reads when the target names none. */
  readonly pollIntervalMs: number;
  /** Registering again after an observation ended: first delay, and the cap of its backoff. */
  readonly reconnectMs: number;
  readonly maxReconnectMs: number;
  /** Past a notification's Max-Age and this much more without a new one, the Thing is asked again. */
  readonly freshnessMarginMs: number;
  readonly random: () => number;
}

/** Decodes by the answer's Content-Format, else the form's `contentType`; bytes that do not decode are a BindingError. */
export function decodeCoapAnswer(target: Target, answer: CoapAnswer, op = target.op): unknown {
  const type = answer.contentType ?? target.terms.contentType;
  try {
    return decodeValue(answer.payload, type);
  } catch (cause) {
    throw bindingError({ ...target, op }, "content", `the answer is not ${type}`, {
      body: answer.payload.toString("utf8"),
      cause,
    });
  }
}

/** A 4.xx answer will not get better by asking again (RFC 7252 §5.9.2): it ends the observation. */
function isFinal(error: unknown): boolean {
  const status = bindingFailure(error)?.status;
  return status !== undefined && status >= 400 && status < 500;
}

/**
 * RFC 7641: registers, reports the answer (for a property; an event's registration answer is the
 * resource's state, not an occurrence) and every notification. When the observation ends — an
 * error notification, a broken socket, or nothing newer than the last notification's Max-Age —
 * it registers again with backoff. A Thing that answers without registering is polled instead.
 */
export async function observeByObserve(
  transport: CoapTransport,
  target: Target,
  exchange: CoapExchange,
  onValue: ValueListener,
  onError: ErrorListener,
  options: CoapObservationOptions & { readonly reportFirst: boolean },
): Promise<Subscription> {
  const observation = new Observation(onValue, onError);
  let wake: (() => void) | undefined;
  let ended: Error | undefined;
  let fresh = 0;
  const register = () =>
    transport.observe(
      exchange,
      (answer) => {
        fresh = Date.now() + answer.maxAge * 1000 + options.freshnessMarginMs;
        deliver(answer);
      },
      (error) => {
        ended = error;
        wake?.();
      },
    );
  // A registration's answer is the value the hub asked for (a read, as after every reconnect); a
  // notification is the Thing's push (RFC 7641 §4.2).
  const deliver = (answer: CoapAnswer, delivery: Delivery = "pushed") => {
    try {
      observation.value(decodeCoapAnswer(target, answer), delivery);
    } catch (error) {
      observation.error(asBindingError(error));
    }
  };
  // The first registration establishes the observation: a Thing that refuses it cannot be observed.
  let current: CoapObservation = await register();
  if (current.first.observe === undefined) {
    // Not observable after all: read it every poll interval instead.
    current.close(false);
    observation.error(
      bindingError(
        target,
        "unsupported",
        "the Thing answered without registering the observation (RFC 7641): it is polled instead",
      ),
    );
    if (options.reportFirst) deliver(current.first, "read");
    return pollInto(observation, transport, target, { ...exchange, method: "GET" }, current.first, options);
  }
  if (options.reportFirst) deliver(current.first, "read");
  fresh = Date.now() + current.first.maxAge * 1000 + options.freshnessMarginMs;
  observation.run(async () => {
    let attempt = 0;
    for (;;) {
      // Waits for the end of the observation, or for it to go stale.
      while (ended === undefined && !observation.closed) {
        const wait = Math.max(fresh - Date.now(), 1);
        const woken = new Promise<void>((resolve) => (wake = resolve));
        await Promise.race([woken, observation.pause(wait)]);
        wake = undefined;
        if (ended === undefined && Date.now() >= fresh) break;
      }
      current.close(observation.closed);
      if (observation.closed) return;
      if (ended !== undefined) {
        const final = isFinal(ended);
        observation.error(asBindingError(ended), final);
        if (final) return;
      }
      ended = undefined;
      // Registers again, backing off while it fails.
      for (;;) {
        if (attempt > 0) {
          const wait = backoffDelay(
            attempt - 1,
            { baseDelayMs: options.reconnectMs, maxDelayMs: options.maxReconnectMs },
            options.random,
          );
          if (!(await observation.pause(wait))) return;
        }
        attempt++;
        try {
          current = await register();
        } catch (error) {
          if (observation.closed) return;
          const final = isFinal(error);
          observation.error(asBindingError(error), final);
          if (final) return;
          continue;
        }
        if (observation.closed) {
          current.close(true);
          return;
        }
        attempt = 0;
        fresh = Date.now() + current.first.maxAge * 1000 + options.freshnessMarginMs;
        if (options.reportFirst) deliver(current.first, "read");
        break;
      }
    }
  });
  return observation;
}

/** Polling: a read every `pollIntervalMs` (or the target's); a value is reported when its bytes change. */
export async function observeByPolling(
  transport: CoapTransport,
  target: Target,
  exchange: CoapExchange,
  onValue: ValueListener,
  onError: ErrorListener,
  options: CoapObservationOptions,
): Promise<Subscription> {
  const observation = new Observation(onValue, onError);
  // The first read establishes the observation: a Thing that cannot be read cannot be observed.
  const first = await transport.request(exchange);
  observation.value(decodeCoapAnswer(target, first), "read");
  return pollInto(observation, transport, target, exchange, first, options);
}

function pollInto(
  observation: Observation,
  transport: CoapTransport,
  target: Target,
  exchange: CoapExchange,
  first: CoapAnswer,
  options: CoapObservationOptions,
): Observation {
  const interval = target.pollIntervalMs ?? options.pollIntervalMs;
  let last = first.payload;
  observation.run(async () => {
    while (await observation.pause(interval)) {
      try {
        const answer = await transport.request(exchange);
        if (observation.closed) return;
        if (answer.payload.equals(last)) continue;
        last = answer.payload;
        observation.value(decodeCoapAnswer(target, answer), "read");
      } catch (error) {
        if (observation.closed) return;
        const final = isFinal(error);
        observation.error(asBindingError(error), final);
        if (final) return;
      }
    }
  });
  return observation;
}
