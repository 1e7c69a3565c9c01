// The CoAP binding (W3C WoT Binding Templates, CoAP; RFC 7252): read, write, invoke, observation
// of properties and events by RFC 7641 Observe (or polling), and TDs fetched over CoAP.
import { AddressPolicy } from "../address-policy.js";
import { bindingError } from "../binding.js";
import type {
  ActionOutcome,
  Binding,
  CoapMethod,
  Credentials,
  Discovered,
  ErrorListener,
  Operation,
  Subscription,
  Target,
  ValueListener,
} from "../binding.js";
import { encodeFor, isJson } from "../content.js";
import { formOps } from "../form-selection.js";
import { OpenSubscriptions } from "../observation-loop.js";
import { decodeCoapAnswer, observeByObserve, observeByPolling } from "./coap-observation.js";
import type { CoapObservationOptions } from "./coap-observation.js";
import { CoapTransport } from "./coap-transport.js";
import type { CoapExchange } from "./coap-transport.js";

export interface CoapBindingOptions {
  /** Which addresses may be reached; default: all. */
  readonly addressPolicy?: AddressPolicy;
  /** From a request to its answer (the last block of a block-wise one), retransmissions included; default 10 s. */
  readonly requestTimeoutMs?: number;
  /** The largest answer taken, a block-wise one included; default 1 MiB. */
  readonly maxPayloadBytes?: number;
  /** Polling: ms between reads; default 5 s. */
  readonly pollIntervalMs?: number;
  /** Registering an observation again after it ended: first delay (default 1 s) and cap (default 30 s). */
  readonly reconnectMs?: number;
  readonly maxReconnectMs?: number;
  /** An observation with nothing newer than its last Max-Age plus this is registered again; default 10 s. */
  readonly freshnessMarginMs?: number;
  /** Jitter source, for tests; default Math.random. */
  readonly random?: () => number;
}

/** The defaults of CoapBindingOptions, in one place. */
export const COAP_BINDING_DEFAULTS = {
  requestTimeoutMs: 10_000,
  maxPayloadBytes: 1024 * 1024,
  pollIntervalMs: 5_000,
  reconnectMs: 1_000,
  maxReconnectMs: 30_000,
  freshnessMarginMs: 10_000,
} as const;

// CoAP Binding Templates, default mappings, for forms without cov:method.
const DEFAULT_METHODS: Partial<Record<Operation, CoapMethod>> = {
  readproperty: "GET",
  writeproperty: "PUT",
  readallproperties: "GET",
  writeallproperties: "PUT",
  readmultipleproperties: "GET",
  writemultipleproperties: "PUT",
  invokeaction: "POST",
  observeproperty: "GET",
  subscribeevent: "GET",
};

/** `subprotocol` of an observe form in the CoAP Binding Templates' older vocabulary. */
const OBSERVE_SUBPROTOCOL = "cov:observe";

export class CoapBinding implements Binding {
  readonly schemes = ["coap"] as const;
  readonly #transport: CoapTransport;
  readonly #observation: CoapObservationOptions;
  readonly #subscriptions = new OpenSubscriptions();

  constructor(options: CoapBindingOptions = {}) {
    const d = COAP_BINDING_DEFAULTS;
    this.#transport = new CoapTransport({
      addressPolicy: options.addressPolicy ?? new AddressPolicy(),
      requestTimeoutMs: options.requestTimeoutMs ?? d.requestTimeoutMs,
      maxPayloadBytes: options.maxPayloadBytes ?? d.maxPayloadBytes,
    });
    this.#observation = {
      pollIntervalMs: options.pollIntervalMs ?? d.pollIntervalMs,
      reconnectMs: options.reconnectMs ?? d.reconnectMs,
      maxReconnectMs: options.maxReconnectMs ?? d.maxReconnectMs,
      freshnessMarginMs: options.freshnessMarginMs ?? d.freshnessMarginMs,
      random: options.random ?? Math.random,
    };
  }

  async readProperty(target: Target): Promise<unknown> {
    const answer = await this.#transport.request(this.#exchange(target));
    return decodeCoapAnswer(target, answer);
  }

  async writeProperty(target: Target, value: unknown): Promise<void> {
    await this.#transport.request(this.#exchange(target, value));
  }

  async invokeAction(target: Target, input?: unknown): Promise<ActionOutcome> {
    const answer = await this.#transport.request(this.#exchange(target, input));
    return { kind: "completed", output: decodeCoapAnswer(target, answer) };
  }

  /** Observe when the form offers it (its `op`, or `subprotocol: "cov:observe"`), polling otherwise. */
  async observeProperty(
    target: Target,
    onValue: ValueListener,
    onError: ErrorListener,
  ): Promise<Subscription> {
    this.#checkSubprotocol(target);
    const exchange = this.#exchange(target);
    const observable =
      target.terms.subprotocol === OBSERVE_SUBPROTOCOL ||
      formOps(target.form, "property").includes("observeproperty");
    const options = { ...this.#observation, reportFirst: true };
    return this.#track(
      observable
        ? observeByObserve(this.#transport, target, exchange, onValue, onError, options)
        : observeByPolling(this.#transport, target, exchange, onValue, onError, options),
    );
  }

  /** An event is a resource observed (RFC 7641): each notification after the registration is one occurrence. */
  async subscribeEvent(target: Target, onData: ValueListener, onError: ErrorListener): Promise<Subscription> {
    this.#checkSubprotocol(target);
    const options = { ...this.#observation, reportFirst: false };
    return this.#track(
      observeByObserve(this.#transport, target, this.#exchange(target), onData, onError, options),
    );
  }

  async discover(url: string, credentials: readonly Credentials[] = []): Promise<Discovered> {
    const target = { thing: url, href: url, credentials };
    this.#checkCredentials(target);
    const answer = await this.#transport.request({ thing: url, method: "GET", url, credentials });
    // Whatever Content-Format it is served as, a TD is JSON.
    const type =
      answer.contentType !== undefined && isJson(answer.contentType)
        ? answer.contentType
        : "application/json";
    const document = decodeCoapAnswer(
      {
        thing: url,
        op: "readproperty",
        href: url,
        form: { href: url },
        terms: { contentType: type },
        credentials,
      },
      { ...answer, contentType: type },
    );
    return { document, url };
  }

  async close(): Promise<void> {
    await this.#subscriptions.closeAll();
    await this.#transport.close();
  }

  #checkSubprotocol(target: Target): void {
    const subprotocol = target.terms.subprotocol;
    if (subprotocol !== undefined && subprotocol !== OBSERVE_SUBPROTOCOL) {
      throw bindingError(target, "unsupported", `subprotocol "${subprotocol}" is not supported over CoAP`);
    }
  }

  /** CoAP has no credentials of its own: only `nosec` is sent (DTLS and OSCORE are not supported). */
  #checkCredentials(target: {
    thing: string;
    href: string;
    op?: Operation;
    credentials: readonly Credentials[];
  }): void {
    const scheme = target.credentials.find((c) => c.scheme !== "nosec")?.scheme;
    if (scheme !== undefined) {
      throw bindingError(
        target,
        "unsupported",
        `the CoAP binding sends no credentials: security scheme "${scheme}" cannot be applied over CoAP`,
      );
    }
  }

  #exchange(target: Target, value?: unknown): CoapExchange {
    const method = target.terms.coapMethod ?? DEFAULT_METHODS[target.op];
    if (method === undefined)
      throw bindingError(target, "unsupported", `the CoAP binding does not do ${target.op}`);
    this.#checkCredentials(target);
    const payload = encodeFor(target, value);
    return {
      thing: target.thing,
      op: target.op,
      method,
      url: target.href,
      credentials: target.credentials,
      ...(payload === undefined
        ? {}
        : { payload, contentFormat: target.terms.contentFormat ?? target.terms.contentType }),
      ...(target.terms.accept === undefined ? {} : { accept: target.terms.accept }),
    };
  }

  async #track(opening: Promise<Subscription>): Promise<Subscription> {
    return this.#subscriptions.track(await opening);
  }
}
