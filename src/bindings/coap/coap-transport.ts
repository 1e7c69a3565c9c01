// CoAP requests (RFC 7252) over node-coap, one connected UDP socket per device address: the
// address policy is applied before any datagram leaves, ICMP errors reach the request that caused
// them, and answers are bounded in time and size (block-wise transfers included, RFC 7959).
import { randomBytes } from "node:crypto";
import { createSocket } from "node:dgram";
import type { RemoteInfo, Socket } from "node:dgram";
import { isIP } from "node:net";
import { Agent } from "coap";
import type { IncomingMessage, ObserveReadStream, OutgoingMessage } from "coap";
import { parse as parsePacket } from "coap-packet";
import { AddressDeniedError } from "../address-policy.js";
import type { AddressPolicy } from "../address-policy.js";
import { bindingError, bindingFailure } from "../binding.js";
import type { BindingFailureReason, CoapMethod, Credentials, Operation } from "../binding.js";

/** The largest request payload sent in one datagram; larger ones go block-wise (RFC 7959). */
const REQUEST_BLOCK_BYTES = 1024;

// Methods that change nothing: their failure leaves nothing unknown.
const SAFE = new Set<CoapMethod>(["GET", "FETCH"]);

export interface CoapTransportOptions {
  readonly addressPolicy: AddressPolicy;
  /** From the request to its (last block's) answer, retransmissions included. */
  readonly requestTimeoutMs: number;
  /** The largest payload taken, a block-wise one included. */
  readonly maxPayloadBytes: number;
}

/** One request, with what errors must name. */
export interface CoapExchange {
  readonly thing: string;
  readonly op?: Operation;
  readonly method: CoapMethod;
  readonly url: string;
  readonly credentials?: readonly Credentials[];
  /** The payload's Content-Format: a registered media type or a number. */
  readonly contentFormat?: string | number;
  /** `cov:accept`: the Content-Format asked for. */
  readonly accept?: number;
  readonly payload?: Buffer;
}

export interface CoapAnswer {
  /** `2.05`, `2.04`, … */
  readonly code: string;
  readonly payload: Buffer;
  /** The answer's Content-Format as a media type, when it has a registered one. */
  readonly contentType?: string;
  /** RFC 7641: the Observe option of a notification, absent when the Thing did not register it. */
  readonly observe?: number;
  /** Max-Age in seconds (RFC 7252 §5.10.5: 60 when absent). */
  readonly maxAge: number;
}

/** An observation as the transport keeps it: notifications, its end, and its deregistration. */
export interface CoapObservation {
  /** The answer to the registration. */
  readonly first: CoapAnswer;
  /** Stops it; `deregister` asks the Thing to forget the observer (RFC 7641 §3.6). */
  close(deregister: boolean): void;
}

/** A CoAP response code as a number, as errors carry statuses: 4.04 → 404. */
export function codeNumber(code: string): number {
  const [kind = "0", detail = "0"] = code.split(".");
  return Number(kind) * 100 + Number(detail);
}

/** The device's address and port, the socket that reaches them, and the requests waiting there. */
interface Origin {
  readonly socket: Socket;
  readonly agent: Agent;
  readonly pending: Set<(error: Error) => void>;
}

/** What the transport checks of one exchange's incoming datagrams, by token. */
interface Bound {
  /** The most a (block-wise) answer may carry. */
  readonly limit: number;
  readonly tooLarge: () => void;
  /** node-coap threw handling a datagram of this exchange (a Thing that breaks block-wise rules). */
  readonly broken: (error: unknown) => void;
}

export class CoapTransport {
  readonly #options: CoapTransportOptions;
  readonly #origins = new Map<string, Promise<Origin>>();
  readonly #bounds = new Map<string, Bound>();
  #closed = false;

  constructor(options: CoapTransportOptions) {
    this.#options = options;
  }

  /** Sends the exchange and waits for its whole answer; a 4.xx/5.xx answer is a BindingError. */
  async request(exchange: CoapExchange): Promise<CoapAnswer> {
    const origin = await this.#originFor(exchange);
    return new Promise<CoapAnswer>((resolve, reject) => {
      this.#send(
        origin,
        exchange,
        {},
        {
          response: (response) => {
            try {
              resolve(this.#answer(exchange, response));
            } catch (error) {
              reject(error instanceof Error ? error : new Error(String(error)));
            }
          },
          failure: reject,
        },
      );
    });
  }

  /**
   * Registers an observation (GET with Observe 0, RFC 7641 §3.1) and resolves with the answer to
   * it; later notifications go to `onNotification`, and the observation's end (an error
   * notification, one without Observe, a broken socket, a notification too large) to `onEnd`,
   * once. No callback runs after `close`.
   */
  async observe(
    exchange: CoapExchange,
    onNotification: (answer: CoapAnswer) => void,
    onEnd: (error: Error) => void,
  ): Promise<CoapObservation> {
    const origin = await this.#originFor(exchange);
    return new Promise<CoapObservation>((resolve, reject) => {
      const { token, tokenBytes } = this.#send(
        origin,
        exchange,
        { observe: 0 },
        {
          failure: reject,
          response: (response) => {
            const stream = "append" in response ? (response as ObserveReadStream) : undefined;
            let first: CoapAnswer;
            try {
              first = this.#answer(exchange, response);
            } catch (error) {
              // node-coap keeps a stream open for an error answer to an Observe request: drop it.
              stream?.close(false);
              reject(error instanceof Error ? error : new Error(String(error)));
              return;
            }
            if (first.observe === undefined || stream === undefined) {
              // The Thing answered without registering the observer (RFC 7641 §3.1): nothing follows.
              stream?.close(false);
              resolve({ first, close: () => undefined });
              return;
            }
            let ended = false;
            const stop = () => {
              ended = true;
              origin.pending.delete(end);
              this.#bounds.delete(token);
              stream.removeAllListeners("data");
            };
            function end(error: Error): void {
              if (ended) return;
              stop();
              stream?.close(false);
              onEnd(error);
            }
            origin.pending.add(end);
            this.#bounds.set(token, {
              limit: this.#options.maxPayloadBytes,
              tooLarge: () => end(this.#tooLarge(exchange)),
              broken: (error) => end(this.#broken(exchange, error)),
            });
            // The registration's own answer is pushed to the stream too: it is `first`, not a notification.
            let skip = true;
            stream.on("data", (payload: unknown) => {
              if (skip) {
                skip = false;
                return;
              }
              if (ended) return;
              let answer: CoapAnswer;
              try {
                // The chunk is this notification's payload; the stream's own `payload` is the
                // latest datagram's, which a notification right behind may have replaced.
                answer = this.#answer(exchange, stream, Buffer.isBuffer(payload) ? payload : undefined);
              } catch (error) {
                // RFC 7641 §3.2: a notification with an error code ends the observation.
                end(error instanceof Error ? error : new Error(String(error)));
                return;
              }
              onNotification(answer);
              // RFC 7641 §3.2: so does one without the Observe option.
              if (answer.observe === undefined && !ended) {
                end(this.#failure(exchange, "closed", "the Thing ended the observation"));
              }
            });
            stream.on("error", (error: Error) =>
              end(this.#failure(exchange, "unreachable", `the observation broke: ${error.message}`, error)),
            );
            resolve({
              first,
              close: (deregister) => {
                if (ended) return;
                stop();
                stream.close(false);
                if (deregister) this.#deregister(origin, exchange, tokenBytes);
              },
            });
          },
        },
      );
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    const origins = await Promise.allSettled(this.#origins.values());
    this.#origins.clear();
    for (const result of origins) {
      if (result.status !== "fulfilled") continue;
      const { socket, agent, pending } = result.value;
      for (const fail of [...pending]) fail(this.#closedError());
      agent.close();
      await new Promise<void>((resolve) => {
        socket.close(() => resolve());
      });
    }
  }

  #closedError(): Error {
    return Object.assign(new Error("the CoAP binding was closed"), { code: "ERR_COAP_CLOSED" });
  }

  /**
   * Sends one request on the origin with a token of its own (to bound a block-wise answer),
   * under the request timeout: `response` gets its first answer, or `failure` the timeout, the
   * socket's error, or the bound broken, once.
   */
  #send(
    origin: Origin,
    exchange: CoapExchange,
    how: { readonly observe?: 0 | 1; readonly token?: Buffer },
    handlers: { response: (response: IncomingMessage) => void; failure: (error: Error) => void },
  ): { token: string; tokenBytes: Buffer } {
    const url = new URL(exchange.url);
    const tokenBytes = how.token ?? randomBytes(8);
    const token = tokenBytes.toString("hex");
    let request: OutgoingMessage;
    try {
      request = origin.agent.request({
        method: exchange.method,
        token: tokenBytes,
        ...(how.observe === undefined ? {} : { observe: how.observe }),
      });
      // Uri-Host lets one address serve several names (RFC 7252 §5.10.1); an IP literal needs none.
      const host = hostOf(url);
      if (isIP(host) === 0) request.setOption("Uri-Host", host);
      const path = uriPath(url);
      if (path.length > 0) request.setOption("Uri-Path", path);
      const query = uriQuery(url);
      if (query.length > 0) request.setOption("Uri-Query", query);
      if (exchange.payload !== undefined && exchange.contentFormat !== undefined) {
        const format = exchange.contentFormat;
        try {
          request.setOption("Content-Format", format);
        } catch (cause) {
          throw new Error(
            `no CoAP Content-Format is registered for ${String(format)}: give the form a cov:contentFormat`,
            { cause },
          );
        }
      }
      if (exchange.accept !== undefined) request.setOption("Accept", exchange.accept);
      // RFC 7959 §2.5: a payload larger than a block goes in blocks of 1024 bytes (SZX 6), each
      // acknowledged (2.31 Continue) before the next; node-coap sends them once it sees Block1.
      if (exchange.payload !== undefined && exchange.payload.length > REQUEST_BLOCK_BYTES) {
        request.setOption("Block1", Buffer.of(6));
      }
    } catch (cause) {
      throw this.#failure(
        exchange,
        "unsupported",
        cause instanceof Error ? cause.message : String(cause),
        cause,
      );
    }
    let settled = false;
    const settle = () => {
      if (settled) return false;
      settled = true;
      clearTimeout(timer);
      origin.pending.delete(fail);
      this.#bounds.delete(token);
      return true;
    };
    // What ends a request before its answer: after it, the Thing may have acted on it.
    const fail = (error: Error, reason: BindingFailureReason = "unreachable") => {
      if (!settle()) return;
      origin.agent.abort(request);
      if (bindingFailure(error) !== undefined) {
        handlers.failure(error);
        return;
      }
      const closed = (error as { code?: string }).code === "ERR_COAP_CLOSED";
      handlers.failure(
        this.#failure(
          exchange,
          closed ? "closed" : reason,
          `${exchange.method} failed: ${error.message}`,
          error,
        ),
      );
    };
    const timeoutMs = this.#options.requestTimeoutMs;
    const timer = setTimeout(() => {
      fail(
        this.#failure(
          exchange,
          "timeout",
          `${exchange.method} had no answer within ${timeoutMs} ms`,
          undefined,
          !SAFE.has(exchange.method),
        ),
      );
    }, timeoutMs);
    origin.pending.add(fail);
    this.#bounds.set(token, {
      limit: this.#options.maxPayloadBytes,
      tooLarge: () => fail(this.#tooLarge(exchange)),
      broken: (error) => fail(this.#broken(exchange, error)),
    });
    request.on("response", (response: IncomingMessage) => {
      if (settle()) handlers.response(response);
    });
    request.on("error", (error: Error) => fail(error));
    // node-coap's own exchange lifetime (247 s) is longer than the request timeout: ours decides.
    request.on("timeout", () => undefined);
    request.end(exchange.payload);
    return { token, tokenBytes };
  }

  /**
   * RFC 7641 §3.6: a GET with Observe 1 and the registration's token asks the Thing to forget the
   * observer. Its answer, or none, changes nothing: a Thing that missed it gets a Reset for its
   * next notification.
   */
  #deregister(origin: Origin, exchange: CoapExchange, token: Buffer): void {
    if (this.#closed) return;
    try {
      this.#send(
        origin,
        { ...exchange, method: "GET" },
        { observe: 1, token },
        {
          response: () => undefined,
          failure: () => undefined,
        },
      );
    } catch {
      // Nothing to deregister with: the Thing forgets the observer at its next notification.
    }
  }

  #tooLarge(exchange: CoapExchange): Error {
    return this.#failure(
      exchange,
      "too-large",
      `the answer is larger than ${this.#options.maxPayloadBytes} bytes`,
    );
  }

  #answer(exchange: CoapExchange, response: IncomingMessage, chunk?: Buffer): CoapAnswer {
    const code = response.code;
    const payload = chunk ?? (Buffer.isBuffer(response.payload) ? response.payload : Buffer.alloc(0));
    if (code === "0.00") {
      // A Reset: the Thing could not take the request at all (RFC 7252 §4.2).
      throw this.#failure(exchange, "unreachable", `${exchange.method} was answered with a Reset`);
    }
    if (!code.startsWith("2.")) {
      throw bindingError(this.#context(exchange), "status", `${exchange.method} answered ${code}`, {
        status: codeNumber(code),
        body: payload.toString("utf8"),
      });
    }
    if (payload.length > this.#options.maxPayloadBytes) throw this.#tooLarge(exchange);
    const headers = response.headers as Record<string, unknown>;
    const format = headers["Content-Format"];
    const observe = headers.Observe;
    const maxAge = headers["Max-Age"];
    return {
      code,
      payload,
      ...(typeof format === "string" ? { contentType: format } : {}),
      ...(typeof observe === "number" ? { observe } : {}),
      maxAge: typeof maxAge === "number" ? maxAge : 60,
    };
  }

  #context(exchange: CoapExchange) {
    return {
      thing: exchange.thing,
      href: exchange.url,
      ...(exchange.op === undefined ? {} : { op: exchange.op }),
      ...(exchange.credentials === undefined ? {} : { credentials: exchange.credentials }),
    };
  }

  #failure(
    exchange: CoapExchange,
    reason: BindingFailureReason,
    message: string,
    cause?: unknown,
    unknownOutcome = false,
  ): Error {
    return bindingError(this.#context(exchange), reason, message, {
      ...(cause === undefined ? {} : { cause }),
      ...(unknownOutcome ? { outcome: "unknown" as const } : {}),
    });
  }

  /** The origin's socket, made once per address and port: the name resolved through the policy. */
  async #originFor(exchange: CoapExchange): Promise<Origin> {
    if (this.#closed) throw this.#failure(exchange, "closed", "the CoAP binding is closed");
    let url: URL;
    try {
      url = new URL(exchange.url);
    } catch (cause) {
      throw this.#failure(exchange, "content", `"${exchange.url}" is not a URL`, cause);
    }
    if (url.protocol === "coaps:") {
      throw this.#failure(
        exchange,
        "unsupported",
        "coaps (CoAP over DTLS) is not supported: node-coap has no DTLS; use a coap form",
      );
    }
    if (url.protocol !== "coap:") {
      throw this.#failure(exchange, "unsupported", `the CoAP binding does not do ${url.protocol}`);
    }
    const port = url.port === "" ? 5683 : Number(url.port);
    const { address, family } = await this.#resolve(exchange, hostOf(url), port);
    const key = `${address}|${port}`;
    let origin = this.#origins.get(key);
    if (origin === undefined) {
      origin = this.#connect(address, family, port);
      this.#origins.set(key, origin);
      origin.catch(() => this.#origins.delete(key));
    }
    try {
      return await origin;
    } catch (cause) {
      throw this.#failure(
        exchange,
        "unreachable",
        `cannot open a socket to ${address} port ${port}: ${cause instanceof Error ? cause.message : String(cause)}`,
        cause,
      );
    }
  }

  async #resolve(
    exchange: CoapExchange,
    host: string,
    port: number,
  ): Promise<{ address: string; family: 4 | 6 }> {
    const policy = this.#options.addressPolicy;
    const literal = isIP(host);
    if (literal !== 0) {
      const denied = policy.checkHost(host, port);
      if (denied !== undefined) throw this.#failure(exchange, "address-denied", denied.message, denied);
      return { address: host, family: literal === 6 ? 6 : 4 };
    }
    return new Promise((resolve, reject) => {
      policy.lookupFor(port)(host, {}, (error, address, family) => {
        if (error !== null) {
          const reason = error instanceof AddressDeniedError ? "address-denied" : "unreachable";
          const message =
            reason === "address-denied" ? error.message : `cannot resolve ${host}: ${error.message}`;
          reject(this.#failure(exchange, reason, message, error));
        } else resolve({ address: address as string, family: family === 6 ? 6 : 4 });
      });
    });
  }

  async #connect(address: string, family: 4 | 6, port: number): Promise<Origin> {
    const socket = createSocket(family === 6 ? "udp6" : "udp4");
    await new Promise<void>((resolve, reject) => {
      socket.once("error", reject);
      socket.connect(port, address, () => {
        socket.off("error", reject);
        resolve();
      });
    });
    // A connected socket receives only this device's datagrams and the ICMP errors of what was
    // sent to it (ECONNREFUSED for a closed port). node-coap sends with an address and a port,
    // which a connected socket refuses: its sends go out without them.
    const send = socket.send.bind(socket) as (
      msg: Buffer,
      offset: number,
      length: number,
      cb?: (error: Error | null) => void,
    ) => void;
    (socket as unknown as { send: unknown }).send = (
      msg: Buffer,
      offset: number,
      length: number,
      _port: unknown,
      _address: unknown,
      callback?: (error: Error | null) => void,
    ) => {
      // A retransmission due after the socket closed throws (ERR_SOCKET_DGRAM_NOT_RUNNING) in
      // node-coap's timer, where nothing would catch it: it goes to the callback instead.
      try {
        send(msg, offset, length, callback);
      } catch (error) {
        callback?.(error instanceof Error ? error : new Error(String(error)));
      }
    };
    const pending = new Set<(error: Error) => void>();
    // Before node-coap sees a datagram: a block-wise answer is cut off at the size bound.
    socket.prependListener("message", (message: Buffer) => this.#check(message));
    const agent = new Agent({ socket });
    // node-coap throws from its datagram handler on some answers it cannot follow (a Thing that
    // acknowledges the wrong blocks again and again): thrown there, it would end the process.
    // It fails the exchange the datagram belongs to instead.
    const handle = socket.listeners("message").at(-1) as (message: Buffer, from: RemoteInfo) => void;
    socket.removeListener("message", handle);
    socket.on("message", (message: Buffer, from: RemoteInfo) => {
      try {
        handle(message, from);
      } catch (error) {
        this.#boundOf(message)?.broken(error);
      }
    });
    // An error of the socket (an ICMP error for what was sent) fails everything waiting on it:
    // UDP does not say which datagram caused it.
    agent.on("error", (error: Error) => {
      const code = (error as { code?: string }).code;
      const message =
        code === "ECONNREFUSED"
          ? `nothing listens at ${address} port ${port} (ICMP port unreachable)`
          : error.message;
      for (const fail of [...pending]) fail(Object.assign(new Error(message), { cause: error }));
    });
    return { socket, agent, pending };
  }

  #broken(exchange: CoapExchange, error: unknown): Error {
    const why = error instanceof Error ? error.message : String(error);
    return this.#failure(
      exchange,
      "content",
      `the Thing's answer broke the CoAP exchange: ${why}`,
      error,
      !SAFE.has(exchange.method),
    );
  }

  /** The checks of the exchange a datagram belongs to, by its token. */
  #boundOf(message: Buffer): Bound | undefined {
    try {
      return this.#bounds.get(parsePacket(message).token.toString("hex"));
    } catch {
      return undefined;
    }
  }

  /** RFC 7959 §2.2: block `num` of `size` bytes ends at (num + 1) × size; past the bound, it fails. */
  #check(message: Buffer): void {
    if (this.#bounds.size === 0) return;
    let packet: ReturnType<typeof parsePacket>;
    try {
      packet = parsePacket(message);
    } catch {
      return;
    }
    const bound = this.#bounds.get(packet.token.toString("hex"));
    if (bound === undefined) return;
    const block2 = packet.options.find((option) => option.name === "Block2");
    const size2 = packet.options.find((option) => option.name === "Size2");
    let total = packet.payload.length;
    if (block2 !== undefined && Buffer.isBuffer(block2.value) && block2.value.length > 0) {
      const value = block2.value.readUIntBE(0, Math.min(block2.value.length, 3));
      const num = value >> 4;
      const size = 2 ** ((value & 0x07) + 4);
      total = num * size + packet.payload.length;
    }
    if (
      size2 !== undefined &&
      Buffer.isBuffer(size2.value) &&
      size2.value.length > 0 &&
      size2.value.length <= 4
    ) {
      total = Math.max(total, size2.value.readUIntBE(0, size2.value.length));
    }
    if (total > bound.limit) bound.tooLarge();
  }
}

/** The URL's host without IPv6 brackets. */
function hostOf(url: URL): string {
  const host = url.hostname;
  return host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
}

/** RFC 7252 §6.4 steps 8 and 9: one Uri-Path option per path segment, one Uri-Query per argument, decoded. */
function uriPath(url: URL): Buffer[] {
  if (url.pathname === "" || url.pathname === "/") return [];
  return url.pathname.slice(1).split("/").map(decodedBytes);
}

function uriQuery(url: URL): Buffer[] {
  if (url.search === "" || url.search === "?") return [];
  return url.search.slice(1).split("&").map(decodedBytes);
}

function decodedBytes(part: string): Buffer {
  try {
    return Buffer.from(decodeURIComponent(part), "utf8");
  } catch {
    // A lone `%` that is no escape: the bytes as written.
    return Buffer.from(part, "utf8");
  }
}
