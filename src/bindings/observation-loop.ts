// What every binding's observations share: a loop that runs until closed, listeners that stop
// being called at close, and errors handed to the caller as BindingErrors (ending the observation
// or not). Used by the HTTP, CoAP and SNMP bindings.
import { setTimeout as delay } from "node:timers/promises";
import { BindingError } from "../core/index.js";
import { bindingFailure } from "./binding.js";
import type { Delivery, ErrorListener, Subscription, ValueListener } from "./binding.js";

/** One running observation: its loop, its abort signal, and listeners that stop at close. */
export class Observation implements Subscription {
  readonly #controller = new AbortController();
  readonly #onValue: ValueListener;
  readonly #onError: ErrorListener;
  #loop: Promise<void> = Promise.resolve();

  constructor(onValue: ValueListener, onError: ErrorListener) {
    this.#onValue = onValue;
    this.#onError = onError;
  }

  get signal(): AbortSignal {
    return this.#controller.signal;
  }

  get closed(): boolean {
    return this.#controller.signal.aborted;
  }

  /** Runs the loop; an error it throws ends the observation (told to `onError` with `ended`). */
  run(loop: () => Promise<void>): void {
    this.#loop = loop().catch((error: unknown) => {
      if (!this.closed) this.error(asBindingError(error), true);
    });
  }

  /** Hands a value on; `read` when the binding asked the Thing for it (a poll), not pushed. */
  value(value: unknown, delivery?: Delivery): void {
    if (!this.closed) call((v: unknown) => this.#onValue(v, delivery), value);
  }

  error(error: BindingError, ended = false): void {
    if (this.closed) return;
    call(this.#onError, ended ? endedError(error) : error);
    if (ended) this.#controller.abort();
  }

  /** Waits `ms`, or less if closed; says whether the observation is still open. */
  async pause(ms: number): Promise<boolean> {
    await delay(ms, undefined, { signal: this.signal }).catch(() => undefined);
    return !this.closed;
  }

  async close(): Promise<void> {
    this.#controller.abort();
    await this.#loop;
  }
}

// A listener that throws is a bug in the caller: it surfaces as an uncaught exception, as a
// throwing EventEmitter listener does, rather than stopping the observation or being swallowed.
function call<T>(listener: (value: T) => void | Promise<void>, value: T): void {
  const rethrow = (error: unknown) =>
    queueMicrotask(() => {
      throw error;
    });
  try {
    listener(value)?.catch(rethrow);
  } catch (error) {
    rethrow(error);
  }
}

function endedError(error: BindingError): BindingError {
  const failure = bindingFailure(error);
  if (failure === undefined) return error;
  const ended = new BindingError(error.message, error.thing, { ...failure, ended: true });
  ended.cause = error.cause;
  return ended;
}

export function asBindingError(error: unknown): BindingError {
  if (error instanceof BindingError) return error;
  return new BindingError(error instanceof Error ? error.message : String(error));
}

/** The subscriptions a binding has open, so that closing the binding closes every one. */
export class OpenSubscriptions {
  readonly #open = new Set<Subscription>();

  /** The subscription, wrapped so that closing it also forgets it. */
  track(subscription: Subscription): Subscription {
    const open = this.#open;
    const tracked: Subscription = {
      async close() {
        open.delete(tracked);
        await subscription.close();
      },
    };
    open.add(tracked);
    return tracked;
  }

  async closeAll(): Promise<void> {
    await Promise.all([...this.#open].map((s) => s.close()));
    this.#open.clear();
  }
}
