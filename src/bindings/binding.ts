// The Binding: the adapter that speaks one protocol to a Thing, driven by a TD's forms.
// Modelled on node-wot's ProtocolClient (packages/core/src/protocol-interfaces.ts), but smaller.
import { BindingError } from "../core/index.js";
import type { DataSchema, Form } from "../core/index.js";

/** The TD 1.1 operation types (§5.3.4.2, `op`). */
export type Operation =
  | "readproperty"
  | "writeproperty"
  | "observeproperty"
  | "unobserveproperty"
  | "invokeaction"
  | "queryaction"
  | "cancelaction"
  | "subscribeevent"
  | "unsubscribeevent"
  | "readallproperties"
  | "writeallproperties"
  | "readmultipleproperties"
  | "writemultipleproperties"
  | "observeallproperties"
  | "unobserveallproperties"
  | "queryallactions"
  | "subscribeallevents"
  | "unsubscribeallevents";

/**
 * What the hub knows to authenticate to a Thing, one entry per security scheme the form
 * requires (TD §5.3.3; all entries apply). Built from the TD's `securityDefinitions`, which say
 * where a credential goes (`in`, `name`), and the hub's secrets, which say what it is.
 * Defined here rather than in core because only bindings apply it.
 */
export type Credentials =
  | { readonly scheme: "nosec" }
  | {
      readonly scheme: "basic";
      readonly username: string;
      readonly password: string;
      /** Header that carries `Basic …`; `Authorization` unless the scheme names another. */
      readonly name: string;
    }
  | {
      readonly scheme: "bearer";
      readonly token: string;
      readonly in: "header" | "query" | "cookie";
      /** `Authorization` by default, or the header, query parameter or cookie the scheme names. */
      readonly name: string;
    }
  | {
      readonly scheme: "apikey";
      readonly key: string;
      readonly in: "header" | "query" | "cookie";
      readonly name: string;
    }
  | {
      /** SNMPv1/v2c: the community string that every request carries (RFC 1901). */
      readonly scheme: "snmp-community";
      readonly community: string;
    }
  | {
      /**
       * SNMPv3: a USM user (RFC 3414). The TD names the user, the level and the protocols; the
       * passphrases are the hub's secrets, present as the level needs them.
       */
      readonly scheme: "snmp-usm";
      readonly user: string;
      readonly level: SnmpSecurityLevel;
      readonly authProtocol?: SnmpAuthProtocol;
      readonly authPassphrase?: string;
      readonly privProtocol?: SnmpPrivProtocol;
      readonly privPassphrase?: string;
    };

/** RFC 3411 §3.4.3: what an SNMPv3 message carries; `snmp:securityLevel` of a `snmp:usm` scheme. */
export const SNMP_SECURITY_LEVELS = ["noAuthNoPriv", "authNoPriv", "authPriv"] as const;
export type SnmpSecurityLevel = (typeof SNMP_SECURITY_LEVELS)[number];
/** `snmp:authProtocol`: HMAC-MD5-96 and HMAC-SHA-96 (RFC 3414), HMAC-SHA-2 (RFC 7860). */
export const SNMP_AUTH_PROTOCOLS = ["MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512"] as const;
export type SnmpAuthProtocol = (typeof SNMP_AUTH_PROTOCOLS)[number];
/**
 * `snmp:privProtocol`: CBC-DES (RFC 3414), CFB128-AES-128 (RFC 3826), and AES-256 with the key
 * extended as in draft-blumenthal-aes-usm (`AES-256`) or as Cisco does it (`AES-256-C`, Reeder).
 */
export const SNMP_PRIV_PROTOCOLS = ["DES", "AES", "AES-256", "AES-256-C"] as const;
export type SnmpPrivProtocol = (typeof SNMP_PRIV_PROTOCOLS)[number];

/** The `snmp:type` names a form may give for a SET: the writable SMIv2 types (RFC 2578 §7.1). */
export const SNMP_SET_TYPES = [
  "Integer32",
  "Unsigned32",
  "Gauge32",
  "TimeTicks",
  "OctetString",
  "ObjectIdentifier",
  "IpAddress",
] as const;
export type SnmpSetType = (typeof SNMP_SET_TYPES)[number];

/** The protocol terms of a form that the bindings understand, validated once by form selection. */
export interface FormTerms {
  /** `contentType`, `application/json` when the form has none (TD §5.3.4.2). */
  readonly contentType: string;
  /** HTTP: `htv:methodName`, overriding the operation's default method. */
  readonly methodName?: string;
  /** `subprotocol`: `sse` and `longpoll` over HTTP. */
  readonly subprotocol?: string;
  /** MQTT: `mqv:topic`, the topic to publish to or subscribe to. */
  readonly topic?: string;
  /** MQTT: `mqv:filter`, a topic filter (may hold wildcards) to subscribe to. */
  readonly filter?: string;
  /** MQTT: `mqv:qos`. */
  readonly qos?: 0 | 1 | 2;
  /** MQTT: `mqv:retain`. */
  readonly retain?: boolean;
  /** MQTT: `mqv:controlPacket`, without the `mqv:` prefix. */
  readonly controlPacket?: "publish" | "subscribe" | "unsubscribe";
  /** MQTT 5 request/response: the form's `response` carries `mqv:topic`, where replies arrive. */
  readonly responseTopic?: string;
  /** CoAP: `cov:method`, overriding the operation's default method. */
  readonly coapMethod?: CoapMethod;
  /** CoAP: `cov:contentFormat`, the Content-Format number sent instead of the one of `contentType`. */
  readonly contentFormat?: number;
  /** CoAP: `cov:accept`, the Content-Format asked for (the Accept option). */
  readonly accept?: number;
  /** SNMP: `snmp:version`, `1`, `2c` (the default, `3` with a `snmp:usm` security) or `3`. */
  readonly snmpVersion?: "1" | "2c" | "3";
  /** SNMP: `snmp:type`, the SMIv2 type a SET sends the value as (`Integer32`, `OctetString`, …). */
  readonly snmpType?: SnmpSetType;
}

/** The CoAP request methods (RFC 7252 §12.1.1, RFC 8132), as `cov:method` names them. */
export type CoapMethod = "GET" | "POST" | "PUT" | "DELETE" | "FETCH" | "PATCH" | "iPATCH";

/** Everything a binding needs for one operation on one Thing; built by `targetFor`. */
export interface Target {
  /** The Thing's id (its title when it has none): every error names it. */
  readonly thing: string;
  /** The operation the form was chosen for. */
  readonly op: Operation;
  /** Absolute URL: the form's `href`, URI variables expanded, resolved against the TD's `base`. */
  readonly href: string;
  /** The form as the TD has it, for extension terms a binding may want beyond `terms`. */
  readonly form: Form;
  /** Where the form is among the affordance's (or the Thing's) forms, in TD order. */
  readonly formIndex?: number;
  readonly terms: FormTerms;
  /** The affordance, absent for Thing-level forms (`readallproperties`, …). */
  readonly affordance?: { readonly kind: "property" | "action" | "event"; readonly name: string };
  /** The schema of what comes back: the property's value, the action's output, the event's data. */
  readonly schema?: DataSchema;
  /** The schema of what goes out: the action's input, the event's subscription. */
  readonly inputSchema?: DataSchema;
  /** The credentials to apply; empty for `nosec`. */
  readonly credentials: readonly Credentials[];
  /** For observation by polling (a form without a push subprotocol): ms between reads. */
  readonly pollIntervalMs?: number;
}

/** An open observation or event subscription. */
export interface Subscription {
  /** Ends it: no callback runs once the returned promise settles. Safe to call twice. */
  close(): Promise<void>;
}

/** TD 1.1 action status (the status resource of an asynchronous action). */
export interface ActionStatus {
  readonly status: "pending" | "running" | "completed" | "failed";
  readonly output?: unknown;
  readonly error?: unknown;
}

/** A running asynchronous action (TD 1.1: `synchronous: false`, answered with a status resource). */
export interface ActionHandle {
  /** The absolute URL of the action's status resource. */
  readonly href: string;
  /** `queryaction`: asks the Thing once. */
  query(): Promise<ActionStatus>;
  /** Asks until the action completes (its output) or fails (a BindingError), for a bounded time. */
  result(): Promise<unknown>;
  /** `cancelaction`. */
  cancel(): Promise<void>;
}

/** What `invokeAction` gives back: the output, or a handle on an action that runs on. */
export type ActionOutcome =
  | { readonly kind: "completed"; readonly output: unknown }
  | { readonly kind: "running"; readonly handle: ActionHandle };

/**
 * Takes one value. It may return a promise: a binding that acknowledges deliveries (MQTT QoS 1
 * and 2) acknowledges only once it settles, so a value is acked after the hub has committed it.
 * A listener that throws or rejects is a bug in the caller and surfaces as an uncaught error.
 */
export type ValueListener = (value: unknown, delivery?: Delivery) => void | Promise<void>;

/**
 * How an observed value came: `read` when the hub asked the Thing for it (a poll, a retained MQTT
 * message the broker sent for a new subscription), `pushed` (the default) when the Thing sent it
 * on its own (an SSE event, a long-poll answer, a CoAP notification, an MQTT publish).
 */
export type Delivery = "read" | "pushed";
export type ErrorListener = (error: BindingError) => void;

/** What `discover` found: the document, and the URL that answered it after redirects. */
export interface Discovered {
  readonly document: unknown;
  /** The document's own location: its relative references resolve against it (RFC 3986 §5.1.3). */
  readonly url: string;
}

/**
 * One protocol. A binding is chosen by the URI scheme of a form's resolved `href` and owns its
 * connections (one per origin or broker, reused by every target). Every method rejects with a
 * `BindingError` that names the Thing, the href and the device's answer.
 *
 * Subscriptions reconnect by themselves: errors after a subscription is open go to `onError`,
 * and the subscription goes on unless the error's `detail.ended` is true.
 */
export interface Binding {
  /** URI schemes this binding serves, lower case, without the colon: `["http", "https"]`. */
  readonly schemes: readonly string[];
  /** `readproperty` (or a Thing-level `readallproperties` / `readmultipleproperties`). */
  readProperty(target: Target): Promise<unknown>;
  /** `writeproperty` (or `writeallproperties` / `writemultipleproperties` with an object). */
  writeProperty(target: Target, value: unknown): Promise<void>;
  /** `invokeaction`: the output of a synchronous action, or a handle on an asynchronous one. */
  invokeAction(target: Target, input?: unknown): Promise<ActionOutcome>;
  /** `observeproperty`: resolves once the observation is established. */
  observeProperty(target: Target, onValue: ValueListener, onError: ErrorListener): Promise<Subscription>;
  /** `subscribeevent`: resolves once the subscription is established. */
  subscribeEvent(target: Target, onData: ValueListener, onError: ErrorListener): Promise<Subscription>;
  /** Fetches a Thing Description from a URL (WoT Discovery, direct introduction); not validated. */
  discover?(url: string, credentials?: readonly Credentials[]): Promise<Discovered>;
  /** Closes every connection and subscription of this binding. */
  close(): Promise<void>;
}

/** Why a binding failed, in `BindingError.detail`. */
export type BindingFailureReason =
  /** The Thing answered with an error status. */
  | "status"
  /** No answer in time (connect, headers, body, or a reply that never came). */
  | "timeout"
  /** The connection could not be made or broke. */
  | "unreachable"
  /** The address the URL resolves to is not allowed by the address policy. */
  | "address-denied"
  /** The answer was larger than the binding accepts. */
  | "too-large"
  /** The answer could not be decoded, or is not what the protocol says it must be. */
  | "content"
  /** The form asks for something this binding does not do. */
  | "unsupported"
  /** An asynchronous action ended with `failed`. */
  | "action-failed"
  /** The binding or subscription was closed while the operation ran. */
  | "closed"
  /**
   * The Thing refused the hub's security: an SNMPv3 report (unknown user, wrong digest, …),
   * named in `body`.
   */
  | "security";

/** `BindingError.detail`: what a person needs to see what went wrong with which device. */
export interface BindingFailure {
  readonly reason: BindingFailureReason;
  readonly href: string;
  readonly op?: Operation;
  /** The device's answer: HTTP status, MQTT reason code, or SNMP error-status (RFC 3416 §3). */
  readonly status?: number;
  /** The start of the device's answer body. */
  readonly body?: string;
  /** For subscriptions: true when this error ended the subscription. */
  readonly ended?: boolean;
  /**
   * `"unknown"` when a write or an action failed after its request had gone out, or may have
   * (no answer in time, a connection that broke): the Thing may have done it all the same.
   */
  readonly outcome?: "unknown";
}

/** The first characters of a device's answer kept in an error. */
export const BODY_EXCERPT_LENGTH = 512;

/** What stands for a secret in an error. */
export const REDACTED = "[redacted]";

/**
 * Secrets at least this long are redacted wherever they occur; shorter ones only where they stand
 * as a whole token. A short secret ("a", "pub") cannot be told apart from ordinary text: redacting
 * it inside words garbles the message ("[redacted]ommunity") and shows where the secret is.
 */
export const MIN_SECRET_SUBSTRING_LENGTH = 8;

// A character that continues a token: a secret next to one is part of a longer word.
const TOKEN_CHARACTER = String.raw`[\p{L}\p{N}_]`;

/**
 * `text` with every secret of `credentials` replaced by REDACTED, as sent and as a device may
 * echo it (a 404 page that repeats the URL with its `?key=`, a page that prints the headers):
 * plain, percent-encoded, form-encoded, JSON-escaped, and the base64 of a Basic header. A form
 * of MIN_SECRET_SUBSTRING_LENGTH characters or more is redacted wherever it occurs; a shorter
 * one only where no letter, digit or `_` adjoins it, as in `?key=qk&`, `"x-api-key":"qk"` or
 * `Bearer qk` — so a short secret that is also a word of the message is redacted there too.
 */
export function redactSecrets(text: string, credentials: readonly Credentials[]): string {
  const secrets: string[] = [];
  for (const credential of credentials) {
    if (credential.scheme === "basic") {
      secrets.push(
        credential.password,
        Buffer.from(`${credential.username}:${credential.password}`, "utf8").toString("base64"),
      );
    } else if (credential.scheme === "bearer") secrets.push(credential.token);
    else if (credential.scheme === "apikey") secrets.push(credential.key);
    else if (credential.scheme === "snmp-community") secrets.push(credential.community);
    else if (credential.scheme === "snmp-usm") {
      if (credential.authPassphrase !== undefined) secrets.push(credential.authPassphrase);
      if (credential.privPassphrase !== undefined) secrets.push(credential.privPassphrase);
    }
  }
  const forms = new Set<string>();
  for (const secret of secrets) {
    if (secret === "") continue;
    forms.add(secret);
    forms.add(encodeURIComponent(secret));
    forms.add(new URLSearchParams({ s: secret }).toString().slice(2));
    forms.add(JSON.stringify(secret).slice(1, -1));
  }
  if (forms.size === 0) return text;
  // Longest first: an alternation takes the first that matches, so no part of a longer form is
  // left behind by a shorter one.
  const pattern = [...forms]
    .sort((a, b) => b.length - a.length)
    .map((form) => {
      const escaped = form.replace(/[\\^$.*+?()[\]{}|/]/g, "\\$&");
      return form.length >= MIN_SECRET_SUBSTRING_LENGTH
        ? escaped
        : `(?<!${TOKEN_CHARACTER})${escaped}(?!${TOKEN_CHARACTER})`;
    })
    .join("|");
  return text.replace(new RegExp(pattern, "gu"), REDACTED);
}

/**
 * Builds the BindingError for a target; `cause` keeps the underlying error for logs. The target's
 * credentials, when it has them, are redacted from the message and the device's answer: both go
 * to API answers and to the Log, where the hub's secrets must never appear.
 */
export function bindingError(
  target: {
    readonly thing: string;
    readonly href: string;
    readonly op?: Operation;
    readonly credentials?: readonly Credentials[];
  },
  reason: BindingFailureReason,
  message: string,
  answer: { status?: number; body?: string; ended?: boolean; outcome?: "unknown"; cause?: unknown } = {},
): BindingError {
  const credentials = target.credentials ?? [];
  const redact = (text: string) => (credentials.length === 0 ? text : redactSecrets(text, credentials));
  const detail: BindingFailure = {
    reason,
    href: target.href,
    ...(target.op === undefined ? {} : { op: target.op }),
    ...(answer.status === undefined ? {} : { status: answer.status }),
    ...(answer.body === undefined ? {} : { body: redact(answer.body).slice(0, BODY_EXCERPT_LENGTH) }),
    ...(answer.ended === undefined ? {} : { ended: answer.ended }),
    ...(answer.outcome === undefined ? {} : { outcome: answer.outcome }),
  };
  const error = new BindingError(`${target.thing}: ${redact(message)}`, target.thing, detail);
  if (answer.cause !== undefined) error.cause = answer.cause;
  return error;
}

/** `error` saying that what it failed to do may have been done (`BindingFailure.outcome`). */
export function withUnknownOutcome(error: BindingError): BindingError {
  const failure = bindingFailure(error);
  if (failure === undefined || failure.outcome !== undefined) return error;
  const marked = new BindingError(error.message, error.thing, { ...failure, outcome: "unknown" });
  marked.cause = error.cause;
  return marked;
}

/** The failure detail of a BindingError made by `bindingError`, if it is one. */
export function bindingFailure(error: unknown): BindingFailure | undefined {
  if (!(error instanceof BindingError)) return undefined;
  const detail = error.detail as Partial<BindingFailure> | undefined;
  return typeof detail?.reason === "string" ? (detail as BindingFailure) : undefined;
}
