// The Change: one immutable record in the hub's Log. See docs/changes.md.

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

/** A Change as recorded: its position in this hub's Log and the hub's time of commit. */
export interface Change extends ChangeInput {
  /** Position in this hub's Log, from 1, without gaps. */
  seq: number;
  /** The hub's time when the Change was recorded (RFC 3339, UTC, milliseconds). */
  time: string;
}
