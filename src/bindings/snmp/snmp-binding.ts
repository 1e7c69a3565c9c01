// The SNMP binding (SNMPv1, v2c, and v3 with USM users, over UDP; RFC 3416, RFC 3414): a property
// is one OID, read with GET, written with SET in the ASN.1 type the form names, observed by
// polling; an event is a (v1/v2c) trap.
import { isIP } from "node:net";
import { ErrorStatus, Version1, Version2c, createSession, createV3Session } from "net-snmp";
import type { Session, Varbind } from "net-snmp";
import { BindingError } from "../../core/index.js";
import { AddressDeniedError, AddressPolicy } from "../address-policy.js";
import { bindingError, bindingFailure, withUnknownOutcome } from "../binding.js";
import type {
  ActionOutcome,
  Binding,
  ErrorListener,
  SnmpSetType,
  Subscription,
  Target,
  ValueListener,
} from "../binding.js";
import { decodeVarbind, encodeForSet, isOid, setTypeOf, typeName, varbindException } from "./snmp-values.js";
import { Observation, OpenSubscriptions, asBindingError } from "../observation-loop.js";
import { SnmpTrapReceiver } from "./trap-receiver.js";
import { usmErrorOf, usmExplanation, usmUser } from "./snmp-usm.js";
import type { UsmCredentials } from "./snmp-usm.js";

/** How a request is secured: a community (v1, v2c) or a USM user (v3). */
type Security =
  | { readonly version: "1" | "2c"; readonly community: string }
  | { readonly version: "3"; readonly usm: UsmCredentials };

/** A callback-style net-snmp call on a session. */
type Call = (session: Session, done: (error: Error | null, varbinds?: Varbind[]) => void) => void;
/** Sends one call on the exchange's session; `acts` marks a SET (sent once, its outcome may be unknown). */
type Send = (retries: number, call: Call, acts?: boolean) => Promise<Varbind[]>;

export interface SnmpBindingOptions {
  /** Which addresses may be reached; default: all. */
  readonly addressPolicy?: AddressPolicy;
  /** How long to wait for an answer to one request; default 2 s. */
  readonly timeoutMs?: number;
  /** GETs sent again after a timeout (UDP loses datagrams); default 2. SETs are sent once. */
  readonly retries?: number;
  /** Polling: ms between reads; default 5 s. */
  readonly pollIntervalMs?: number;
  /** The community sent to a Thing whose form is `nosec`; default `public`. */
  readonly defaultCommunity?: string;
  /** Requests to one agent (address and port) at a time; the others wait their turn. Default 4. */
  readonly maxInFlightPerAgent?: number;
  /**
   * Where to receive SNMPv2c traps and informs for `subscribeevent` (port 0: one the system
   * picks); without it, events over SNMP are refused.
   */
  readonly traps?: { readonly port: number; readonly host?: string };
}

/** The defaults of SnmpBindingOptions, in one place. */
export const SNMP_BINDING_DEFAULTS = {
  timeoutMs: 2_000,
  retries: 2,
  pollIntervalMs: 5_000,
  defaultCommunity: "public",
  maxInFlightPerAgent: 4,
} as const;

/** RFC 3417 §2: the agent's well-known port. */
const SNMP_PORT = 161;

export class SnmpBinding implements Binding {
  readonly schemes = ["snmp"] as const;
  readonly #policy: AddressPolicy;
  readonly #timeoutMs: number;
  readonly #retries: number;
  readonly #pollIntervalMs: number;
  readonly #defaultCommunity: string;
  /** Sessions with a request in flight, closed (failing their requests) by `close`. */
  readonly #sessions = new Set<Session>();
  readonly #subscriptions = new OpenSubscriptions();
  readonly #traps: { readonly port: number; readonly host?: string } | undefined;
  readonly #maxInFlight: number;
  /** Per agent (address and port): requests in flight, and those waiting for a slot. */
  readonly #inFlight = new Map<string, { active: number; waiting: (() => void)[] }>();
  #receiver: Promise<SnmpTrapReceiver> | undefined;
  #closed = false;

  constructor(options: SnmpBindingOptions = {}) {
    const d = SNMP_BINDING_DEFAULTS;
    this.#policy = options.addressPolicy ?? new AddressPolicy();
    this.#timeoutMs = options.timeoutMs ?? d.timeoutMs;
    this.#retries = options.retries ?? d.retries;
    this.#pollIntervalMs = options.pollIntervalMs ?? d.pollIntervalMs;
    this.#defaultCommunity = options.defaultCommunity ?? d.defaultCommunity;
    this.#traps = options.traps;
    this.#maxInFlight = Math.max(1, options.maxInFlightPerAgent ?? d.maxInFlightPerAgent);
  }

  /**
   * Starts the trap receiver now (it starts at the first event subscription otherwise), so that a
   * port in use is known at once; resolves to the port it listens on.
   */
  async listenForTraps(): Promise<number> {
    if (this.#traps === undefined) throw new Error("the SNMP binding has no trap port");
    if (this.#receiver === undefined) {
      const starting = SnmpTrapReceiver.start(this.#traps);
      this.#receiver = starting;
      // A failed start is tried again by the next subscription.
      starting.catch(() => {
        if (this.#receiver === starting) this.#receiver = undefined;
      });
    }
    return (await this.#receiver).port;
  }

  async readProperty(target: Target): Promise<unknown> {
    return decodeVarbind(await this.#get(target));
  }

  async writeProperty(target: Target, value: unknown): Promise<void> {
    if (target.op !== "writeproperty") throw unsupported(target);
    if (this.#securityOf(target).version === "3") return this.#writeV3(target, value);
    // Without `snmp:type`, the type is the one the agent answers a GET with: one more round trip.
    let type: SnmpSetType | undefined = target.terms.snmpType;
    if (type === undefined) type = setTypeFor(target, await this.#get({ ...target, op: "readproperty" }));
    const encoded = encodeForSet(type, value);
    if (!encoded.ok) throw bindingError(target, "unsupported", `cannot SET ${oidOf(target)}: ${encoded.why}`);
    // A SET is sent once: sent again after a lost answer, it would act twice on an OID that
    // triggers something (a self-test, a RowStatus).
    const answer = await this.#request(target, 0, (session, done) =>
      session.set([{ oid: oidOf(target), type: encoded.tag, value: encoded.value }], done),
    );
    checkSetAnswer(target, answer);
  }

  /**
   * SNMPv3: a GET on the same session first (engine discovered once), so that a wrong passphrase
   * is known before anything that acts is sent: an agent drops a request whose digest it cannot
   * check without a word (RFC 3414 §3.2 step 6 lets it), which after a SET would leave the
   * outcome unknown. The GET also gives the type when the form has no `snmp:type`.
   */
  async #writeV3(target: Target, value: unknown): Promise<void> {
    const oid = oidOf(target);
    const given = target.terms.snmpType;
    if (given !== undefined) {
      const encoded = encodeForSet(given, value);
      if (!encoded.ok) throw bindingError(target, "unsupported", `cannot SET ${oid}: ${encoded.why}`);
    }
    const answer = await this.#exchange(target, async (send) => {
      const current = (await send(this.#retries, (session, done) => session.get([oid], done)))[0];
      if (current === undefined) throw bindingError(target, "content", "the agent answered with no varbind");
      let type = given;
      if (type === undefined) {
        // An exception (noSuchInstance) is fine with a given type: a SET may create the instance.
        const exception = varbindException(current);
        if (exception !== undefined) {
          throw bindingError(target, "status", `the agent answered ${exception} for ${oid}`, {
            body: exception,
          });
        }
        type = setTypeFor(target, current);
      }
      const encoded = encodeForSet(type, value);
      if (!encoded.ok) throw bindingError(target, "unsupported", `cannot SET ${oid}: ${encoded.why}`);
      return send(
        0,
        (session, done) => session.set([{ oid, type: encoded.tag, value: encoded.value }], done),
        true,
      );
    });
    checkSetAnswer(target, answer);
  }

  async invokeAction(target: Target): Promise<ActionOutcome> {
    throw unsupported(target);
  }

  async observeProperty(
    target: Target,
    onValue: ValueListener,
    onError: ErrorListener,
  ): Promise<Subscription> {
    if (target.terms.subprotocol !== undefined) {
      throw bindingError(
        target,
        "unsupported",
        `subprotocol "${target.terms.subprotocol}" is not supported over SNMP: a property is observed by polling`,
      );
    }
    const interval = target.pollIntervalMs ?? this.#pollIntervalMs;
    const read: Target = { ...target, op: "readproperty" };
    // The first read establishes the observation: a Thing that cannot be read cannot be observed.
    const first = decodeVarbind(await this.#get(read));
    const polling = new Observation(onValue, onError);
    polling.value(first, "read");
    let last = JSON.stringify(first);
    polling.run(async () => {
      while (await polling.pause(interval)) {
        try {
          const value = decodeVarbind(await this.#get(read));
          const text = JSON.stringify(value);
          if (text === last) continue;
          last = text;
          polling.value(value, "read");
        } catch (error) {
          polling.error(asBindingError(error));
        }
      }
    });
    return this.#subscriptions.track(polling);
  }

  /**
   * An event is a notification (SNMPv2c trap or inform) whose `snmpTrapOID.0` is the OID of the
   * form's href, sent from the address of its host with the Thing's community: each one is handed
   * on as an object of its varbinds, `{ OID: value }` (without sysUpTime.0 and snmpTrapOID.0).
   */
  async subscribeEvent(target: Target, onData: ValueListener, onError: ErrorListener): Promise<Subscription> {
    if (target.op !== "subscribeevent") throw unsupported(target);
    if (this.#traps === undefined) {
      throw bindingError(
        target,
        "unsupported",
        "the hub receives no SNMP traps: start it with --snmp-trap-port to subscribe to events over SNMP",
      );
    }
    if (this.#closed) throw bindingError(target, "closed", "the SNMP binding is closed");
    const url = parseSnmpUrl(target);
    const security = this.#securityOf(target);
    if (security.version === "3") {
      throw bindingError(
        target,
        "unsupported",
        "SNMPv3 traps and informs are not received: the hub's trap receiver takes SNMPv2c notifications only",
      );
    }
    const filter = {
      address: (await this.#resolve(target, url.host)).address,
      community: security.community,
      trapOid: oidOf(target),
    };
    let receiver: SnmpTrapReceiver;
    try {
      await this.listenForTraps();
      receiver = await (this.#receiver as Promise<SnmpTrapReceiver>);
    } catch (cause) {
      const why = cause instanceof Error ? cause.message : String(cause);
      // The hub's own port, not the Thing: not an outage of the Thing.
      throw bindingError(target, "unsupported", `the SNMP trap receiver cannot listen: ${why}`, { cause });
    }
    const polling = new Observation(onData, onError);
    const stop = receiver.subscribe(filter, (notification) => {
      const data: Record<string, unknown> = {};
      for (const varbind of notification.varbinds) data[varbind.oid] = decodeVarbind(varbind);
      polling.value(data);
    });
    return this.#subscriptions.track({
      async close() {
        stop();
        await polling.close();
      },
    });
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.#subscriptions.closeAll();
    for (const session of this.#sessions) session.close();
    this.#sessions.clear();
    // Requests waiting for a slot go on, find the binding closed, and fail with `closed`.
    for (const queue of this.#inFlight.values()) for (const wake of queue.waiting.splice(0)) wake();
    const receiver = this.#receiver;
    this.#receiver = undefined;
    await receiver?.then((r) => r.close()).catch(() => undefined);
  }

  /** One GET; the varbind, or a `status` error naming the exception (noSuchObject, …). */
  async #get(target: Target): Promise<Varbind> {
    if (target.op !== "readproperty" && target.op !== "observeproperty") throw unsupported(target);
    const oid = oidOf(target);
    const varbinds = await this.#request(target, this.#retries, (session, done) => session.get([oid], done));
    const varbind = varbinds[0];
    if (varbind === undefined) throw bindingError(target, "content", "the agent answered with no varbind");
    const exception = varbindException(varbind);
    if (exception !== undefined) {
      throw bindingError(target, "status", `the agent answered ${exception} for ${oid}`, {
        body: exception,
      });
    }
    return varbind;
  }

  /** One request (a GET, or a SET sent once when `retries` is 0) on a session of its own. */
  #request(target: Target, retries: number, call: Call): Promise<Varbind[]> {
    return this.#exchange(target, (send) => send(retries, call, target.op === "writeproperty"));
  }

  /**
   * Requests on a session of their own (its own UDP port, so that no answer to another request
   * can be taken for these), to the address the policy allows, closed once they are answered.
   * SNMPv3 discovers the agent's engine (RFC 3414 §4) before the first one, as net-snmp does.
   */
  async #exchange(target: Target, exchange: (send: Send) => Promise<Varbind[]>): Promise<Varbind[]> {
    if (this.#closed) throw bindingError(target, "closed", "the SNMP binding is closed");
    const url = parseSnmpUrl(target);
    const security = this.#securityOf(target);
    const address = await this.#resolve(target, url.host, url.port);
    const release = await this.#slot(`${address.address} ${url.port}`);
    if (this.#closed) {
      release();
      throw bindingError(target, "closed", "the SNMP binding was closed");
    }
    const options = {
      port: url.port,
      transport: address.family === 6 ? "udp6" : "udp4",
      timeout: this.#timeoutMs,
      retries: 0,
      backoff: 1,
    } as const;
    const session =
      security.version === "3"
        ? createV3Session(address.address, usmUser(security.usm), options)
        : createSession(address.address, security.community, {
            ...options,
            version: security.version === "1" ? Version1 : Version2c,
          });
    this.#sessions.add(session);
    const failed = new Promise<never>((_resolve, reject) => {
      // A socket error (an ICMP port unreachable surfaces as ECONNREFUSED on some systems).
      session.on("error", (error) => reject(error));
    });
    failed.catch(() => undefined);
    let acting = false;
    let retries = 0;
    const send: Send = (tries, call, acts = false) => {
      acting = acts;
      retries = tries;
      // net-snmp reads the session's retries when it makes each request.
      (session as unknown as { retries: number }).retries = tries;
      const answered = new Promise<Varbind[]>((resolve, reject) => {
        try {
          call(session, (error, varbinds) => (error === null ? resolve(varbinds ?? []) : reject(error)));
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
      return Promise.race([answered, failed]);
    };
    try {
      return await exchange(send);
    } catch (error) {
      const failure = this.#failure(target, error, { security, session, acting, retries });
      throw acting && bindingFailure(failure)?.reason === "timeout" ? withUnknownOutcome(failure) : failure;
    } finally {
      this.#sessions.delete(session);
      release();
      try {
        session.close();
      } catch {
        // Already closed (by `close`): nothing left to free.
      }
    }
  }

  /**
   * Waits for one of the agent's `maxInFlightPerAgent` request slots: a Thing with many polled
   * properties must not flood a small agent, which drops what its UDP buffer cannot hold.
   */
  async #slot(agent: string): Promise<() => void> {
    let queue = this.#inFlight.get(agent);
    if (queue === undefined) {
      queue = { active: 0, waiting: [] };
      this.#inFlight.set(agent, queue);
    }
    const slots = queue;
    if (slots.active >= this.#maxInFlight) await new Promise<void>((resolve) => slots.waiting.push(resolve));
    slots.active++;
    let released = false;
    return () => {
      if (released) return;
      released = true;
      slots.active--;
      const next = slots.waiting.shift();
      if (next !== undefined) next();
      else if (slots.active === 0) this.#inFlight.delete(agent);
    };
  }

  #failure(
    target: Target,
    error: unknown,
    exchange: { security: Security; session: Session; acting: boolean; retries: number },
  ): BindingError {
    if (error instanceof BindingError) return error;
    const cause = error;
    const name = error instanceof Error ? error.name : "";
    const message = error instanceof Error ? error.message : String(error);
    const request = exchange.acting ? "SET" : "GET";
    if (this.#closed) return bindingError(target, "closed", "the SNMP binding was closed", { cause });
    const { security } = exchange;
    if (security.version === "3") {
      const usm = usmErrorOf(error);
      if (usm !== undefined) {
        const failure = bindingError(
          target,
          "security",
          `the agent refused the ${request} of ${oidOf(target)}: ${usm.counter} (${usmExplanation(usm.counter, security.usm)})`,
          { body: usm.counter, cause },
        );
        // A report says the agent did not process the request; an answer that fails our own
        // check came after the agent may have done the SET.
        return exchange.acting && !usm.reported ? withUnknownOutcome(failure) : failure;
      }
      // Engine discovery answered, the authenticated request not: the agent dropped what it could
      // not authenticate or decrypt (net-snmp's agent does; RFC 3414 §3.2 allows it).
      const discovered = (exchange.session as unknown as { msgSecurityParameters?: unknown })
        .msgSecurityParameters;
      if (
        name === "RequestTimedOutError" &&
        !exchange.acting &&
        discovered !== undefined &&
        security.usm.level !== "noAuthNoPriv"
      ) {
        const tries = exchange.retries + 1;
        return bindingError(
          target,
          "security",
          `the agent answered engine discovery but none of ${tries} ${security.usm.level} ${tries === 1 ? "request" : "requests"} of user "${security.usm.user}" in ${this.#timeoutMs} ms each: an agent drops a request whose digest or encryption it cannot check, so the auth or priv passphrase (or snmp:authProtocol, snmp:privProtocol) most likely differs from the agent's`,
          { cause },
        );
      }
    }
    if (name === "RequestTimedOutError") {
      const tries = exchange.retries + 1;
      const silent =
        security.version === "3" ? "an unknown engine" : "a wrong community is not answered either";
      return bindingError(
        target,
        "timeout",
        `no answer from the SNMP agent in ${this.#timeoutMs} ms (${tries} ${tries === 1 ? "request" : "requests"}); ${silent}`,
        { cause },
      );
    }
    if (name === "RequestFailedError") {
      const status = (error as { status?: unknown }).status;
      const code = typeof status === "number" ? status : ErrorStatus.GeneralError;
      const statusName = errorStatusName(code);
      return bindingError(
        target,
        "status",
        `the agent refused the ${request} of ${oidOf(target)}: ${statusName}`,
        { status: code, body: statusName, cause },
      );
    }
    if (name === "ResponseInvalidError")
      return bindingError(target, "content", `the agent's answer is not valid SNMP: ${message}`, { cause });
    if (name === "RequestInvalidError")
      return bindingError(target, "unsupported", `the request cannot be sent: ${message}`, { cause });
    return bindingError(target, "unreachable", message, { cause });
  }

  /**
   * The community or USM user of the target's credentials, and the version they speak: a
   * `snmp:usm` security is SNMPv3, a community v1 or v2c (`snmp:version`, default 2c).
   */
  #securityOf(target: Target): Security {
    let community: string | undefined;
    let usm: UsmCredentials | undefined;
    for (const credential of target.credentials) {
      if (credential.scheme === "snmp-community") community = credential.community;
      else if (credential.scheme === "snmp-usm") usm = credential;
      else if (credential.scheme !== "nosec") {
        throw bindingError(
          target,
          "unsupported",
          `SNMP carries a community or a USM user only, not ${credential.scheme}`,
        );
      }
    }
    const version = target.terms.snmpVersion;
    if (usm !== undefined) {
      if (community !== undefined)
        throw bindingError(target, "unsupported", "a form cannot use both snmp:community and snmp:usm");
      if (version !== undefined && version !== "3") {
        throw bindingError(
          target,
          "unsupported",
          `snmp:usm is SNMPv3, and the form says snmp:version "${version}": remove it or say "3"`,
        );
      }
      return { version: "3", usm };
    }
    if (version === "3") {
      throw bindingError(
        target,
        "unsupported",
        `SNMPv3 needs a ${"snmp:usm"} security definition naming the user${community === undefined ? "" : ", not a community"}`,
      );
    }
    return { version: version ?? "2c", community: community ?? this.#defaultCommunity };
  }

  /** The address to send to: an IP literal as allowed by the policy, or a name through its lookup. */
  async #resolve(target: Target, host: string, port?: number): Promise<{ address: string; family: 4 | 6 }> {
    const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
    const denied = this.#policy.checkHost(bare, port);
    if (denied !== undefined) throw bindingError(target, "address-denied", denied.message, { cause: denied });
    const family = isIP(bare);
    if (family !== 0) return { address: bare, family: family === 6 ? 6 : 4 };
    return new Promise((resolve, reject) => {
      (port === undefined ? this.#policy.lookup : this.#policy.lookupFor(port))(
        bare,
        { all: false },
        (error, address, found) => {
          if (error !== null) {
            const reason = error instanceof AddressDeniedError ? "address-denied" : "unreachable";
            reject(bindingError(target, reason, error.message, { cause: error }));
          } else if (typeof address === "string") {
            resolve({ address, family: found === 6 ? 6 : 4 });
          } else {
            reject(bindingError(target, "unreachable", `${bare} resolves to no address`));
          }
        },
      );
    });
  }
}

/** The host, port and OID of an `snmp://host[:port]/OID` href. */
function parseSnmpUrl(target: Target): { host: string; port: number } {
  const url = new URL(target.href);
  if (url.hostname === "") throw bindingError(target, "unsupported", "an snmp: href needs a host");
  if (url.username !== "" || url.password !== "") {
    throw bindingError(
      target,
      "unsupported",
      "credentials in a URL are not sent: use a snmp:community scheme",
    );
  }
  if (url.search !== "" || url.hash !== "") {
    throw bindingError(
      target,
      "unsupported",
      "an snmp: href has no query or fragment: snmp://host[:port]/OID",
    );
  }
  oidOf(target);
  // net-snmp takes port 0 for 161: refused rather than sent elsewhere than the href says.
  if (url.port === "0") throw bindingError(target, "unsupported", "an snmp: href cannot name port 0");
  return { host: url.hostname, port: url.port === "" ? SNMP_PORT : Number(url.port) };
}

/** The OID a target's href names: its path without the leading `/` (a leading `.` is allowed). */
function oidOf(target: Target): string {
  const path = new URL(target.href).pathname.slice(1).replace(/^\./, "");
  if (!isOid(path)) {
    throw bindingError(
      target,
      "unsupported",
      `"${path}" is not a numeric OID: an snmp: href is snmp://host[:port]/1.3.6.1.2.1.1.5.0`,
    );
  }
  return path;
}

/** RFC 3416 §3 error-status names, as the RFC writes them (`notWritable`, `wrongType`). */
function errorStatusName(code: number): string {
  const name = (ErrorStatus as unknown as Record<number, string | undefined>)[code];
  if (name === undefined) return `error-status ${code}`;
  return name.charAt(0).toLowerCase() + name.slice(1);
}

/** The SMIv2 type to SET an OID as, from what a GET of it answered. */
function setTypeFor(target: Target, current: Varbind): SnmpSetType {
  const type = setTypeOf(current.type);
  if (type !== undefined) return type;
  throw bindingError(
    target,
    "unsupported",
    `${oidOf(target)} holds a ${typeName(current.type)}, which SNMP SET cannot take: give the form an snmp:type`,
  );
}

/** Some agents answer a SET of an OID they lack with the exception and no error-status. */
function checkSetAnswer(target: Target, answer: readonly Varbind[]): void {
  const exception = answer[0] === undefined ? undefined : varbindException(answer[0]);
  if (exception !== undefined) {
    throw bindingError(target, "status", `the agent answered the SET of ${oidOf(target)} with ${exception}`, {
      body: exception,
    });
  }
}

function unsupported(target: Target): BindingError {
  return bindingError(target, "unsupported", `the SNMP binding does not do ${target.op}`);
}
