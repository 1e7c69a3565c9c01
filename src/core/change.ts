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
  /** The protocol or surface it came through (`http`, `mqtt`, `cli`, …). */
  via?: string;
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
