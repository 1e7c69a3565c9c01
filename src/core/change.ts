// The Change: one immutable record in the hub's Log. See docs/changes.md.
import { ValidationError } from "./errors.js";

/** What happened. Extensible: bindings, rules and releases add their own kinds. */
export type ChangeKind =
  | "described"
  | "removed"
  | "reported"
  | "desired"
  | "invoked"
  | "completed"
  | "failed"
  | "emitted"
  | "linked"
  | "unlinked"
  | "unreachable"
  | "reachable"
  | "drift"
  | "captured"
  | (string & {});

/** Why it happened: who or what caused the Change. */
export interface Cause {
  /** The authenticated principal (`admin`, a token name) or an internal actor (`hub:expiry`). */
  actor: string;
  /**
   * The protocol or surface it came through (`http`, `mqtt`, `cli`, …). A value the hub read from
   * the Thing itself (a poll, a read through the API) is `read:<scheme>` (`read:http`, `read:coap`);
   * one the Thing pushed is the plain scheme.
   */
  via?: string;
  /**
   * For a value the hub read on someone's request, the surface they asked through (`http`,
   * `graphql`, `graphql-ws`, `rollout`, `drift`): `via` then says how the hub got the value.
   */
  surface?: string;
  release?: string;
  rule?: string;
  correlation?: string;
  /** The URI variables a command was sent with (TD `uriVariables`), when it had any. */
  uriVariables?: Record<string, string | number | boolean>;
}

/** A Change as the producer hands it to the Log (before it has a position). */
export interface ChangeInput {
  thing: string;
  affordance?: string;
  kind: ChangeKind;
  value?: unknown;
  previous?: unknown;
  /** The device's own time, when it sent one (RFC 3339). */
  at?: string;
  cause: Cause;
}

/** A Change as recorded in this hub's Log. See docs/changes.md. */
export interface Change extends ChangeInput {
  /** Position in this hub's Log, from 1, without gaps. */
  seq: number;
  /**
   * The hub's hybrid logical clock when the Change was recorded (`formatHlc`): its wall time in
   * milliseconds, a counter and the hub's id. Increases with `seq`, even when the clock steps back.
   */
  hlc: string;
  /**
   * The Change's RFC 9162 leaf hash (hex) as the Log recorded it. Not covered by the hash itself:
   * `changeLeafHash` leaves it out.
   */
  leaf?: string;
}

/**
 * Every kind this hub records, in docs/changes.md's order: what a kind filter may name. A filter
 * with a misspelt kind (`reprted`) would answer an empty page, which reads as "nothing happened".
 */
export const RECORDED_KINDS: readonly string[] = [
  "described",
  "removed",
  "reported",
  "desired",
  "invoked",
  "completed",
  "failed",
  "emitted",
  "linked",
  "unlinked",
  "unreachable",
  "reachable",
  "released",
  "applied",
  "drift",
  "alert",
];

/** Refuses a kind filter that names a kind this hub never records (`pointer`: where it was). */
export function checkKindFilter(kinds: readonly string[], pointer: string): void {
  const unknown = kinds.filter((kind) => !RECORDED_KINDS.includes(kind));
  if (unknown.length === 0) return;
  const names = unknown.map((kind) => `"${kind}"`).join(", ");
  throw new ValidationError(
    `${unknown.length === 1 ? "No Change is of kind" : "No Changes are of kinds"} ${names}: the kinds this hub records are ${RECORDED_KINDS.join(", ")}`,
    [{ pointer, message: `must name kinds among ${RECORDED_KINDS.join(", ")}` }],
  );
}

/** The wall time of a Change's clock, as RFC 3339 (UTC, milliseconds). */
export function changeTime(change: Pick<Change, "hlc">): string {
  return new Date(Number.parseInt(change.hlc.slice(0, 12), 16)).toISOString();
}

/** The device protocols a `reported` value may come over (the bindings' and gateways' schemes). */
const DEVICE_SCHEMES: ReadonlySet<string> = new Set([
  "http",
  "https",
  "mqtt",
  "mqtts",
  "coap",
  "coaps",
  "coap+tcp",
  "coaps+tcp",
  "snmp",
]);

/**
 * How a `reported` value was got, in words, from its cause's `via` (docs/changes.md, "How a value
 * was got"): `read by the hub over HTTP` for `read:http`, `pushed by the device over MQTT` for
 * `mqtt`; undefined for other kinds and for a `via` that names no device protocol.
 */
export function deliveryOf(change: Pick<Change, "kind" | "cause">): string | undefined {
  if (change.kind !== "reported") return undefined;
  const via = change.cause.via;
  if (via === undefined) return undefined;
  if (via.startsWith("read:")) return `read by the hub over ${via.slice("read:".length).toUpperCase()}`;
  return DEVICE_SCHEMES.has(via) ? `pushed by the device over ${via.toUpperCase()}` : undefined;
}
