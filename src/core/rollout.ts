// Rollouts: the one-time application of a release, Thing by Thing (docs/releases.md). The records
// a hub keeps of them, and the pure rules that turn a plan into steps and steps into progress.
import type { DriftSettings, Plan, PlanItem } from "./release.js";

export type RolloutStatus = "running" | "completed" | "failed";

/**
 * A step (one Thing) is `pending` until a worker claims it, `applying` while its items go out,
 * then `completed`, `failed`, or `skipped` (already active, or left when the rollout stopped).
 */
export type RolloutStepStatus = "pending" | "applying" | "completed" | "failed" | "skipped";

export const ROLLOUT_STEP_STATUSES: readonly RolloutStepStatus[] = [
  "pending",
  "applying",
  "completed",
  "failed",
  "skipped",
];

export type RolloutItemStatus = "pending" | "completed" | "failed" | "skipped" | "in-place";

/** One thing to do on one Thing: write a property, invoke an action, add a link. */
export interface RolloutItem {
  kind: "property" | "action" | "link";
  /** The property or action name; for a link, `rel href`. */
  name: string;
  /** The value to write, the action's input, or the link `{rel, href}`. */
  desired?: unknown;
  status: RolloutItemStatus;
  /** Why it failed: the device's answer (`failureValue`) or the hub's reason. */
  error?: unknown;
  /**
   * A property written: what the Thing answered when read back after the write (`value`), or why
   * it could not be read (`error`). Absent when the property cannot be read at all, or was not
   * written over HTTP (over MQTT a write is taken when the Thing gets to it). A value other
   * than `desired` is recorded as drift from the release once the step is applied.
   */
  readBack?: { value: unknown } | { error: string };
}

export interface RolloutOptions {
  /** A graph filter (docs/queries.md, as `GET /graph?filter=`): only the release's Things it matches. */
  select?: string;
  /** How many Things are worked on at once. */
  concurrency: number;
  /** Failed Things tolerated; one more stops the rollout (remaining steps `skipped`). */
  maxFailures: number;
}

export interface Rollout {
  /** `urn:uuid:…`. */
  id: string;
  release: string;
  /** The release's name, for people. */
  name: string;
  status: RolloutStatus;
  options: RolloutOptions;
  /** Who started it. */
  actor: string;
  /** RFC 3339. */
  created: string;
  ended?: string;
  /** Why it ended `failed`. */
  reason?: string;
}

export interface RolloutStep {
  rollout: string;
  release: string;
  thing: string;
  /** Order of application within the rollout, from 0. */
  position: number;
  status: RolloutStepStatus;
  items: RolloutItem[];
  /** Every property value the release wants on this Thing (also those already in place). */
  desired: Record<string, unknown>;
  /** Why it was skipped or failed, for people. */
  reason?: string;
  /** RFC 3339 of its last status change. */
  updated: string;
}

/** How many steps of a rollout are in each status. */
export type RolloutProgress = Record<RolloutStepStatus, number> & { total: number };

/** The kind of the Change a Thing gets when a rollout step on it completes. */
export const APPLIED_KIND = "applied";

/**
 * The value of the `applied` Change a Thing gets when a rollout step on it completes: the Thing's
 * active release from then on (its lineage is the sequence of these Changes).
 */
export interface AppliedValue {
  release: string;
  name: string;
  rollout: string;
  /** The release that was active before, if any. */
  replaced?: string;
  desired: Record<string, unknown>;
  drift: DriftSettings;
}

/**
 * An `applied` Change's value as people read it, `evening (sha256:4f1c2d3e4f5a…)`; undefined
 * when it is not an AppliedValue (a Log written by another hub).
 */
export function appliedLabel(value: unknown): string | undefined {
  const applied = value as Partial<AppliedValue> | undefined;
  if (typeof applied?.name !== "string" || typeof applied.release !== "string") return undefined;
  const id = applied.release.length > 19 ? `${applied.release.slice(0, 19)}…` : applied.release;
  return `${applied.name} (${id})`;
}

/** The value of a `drift` Change. */
export interface DriftValue {
  status: "drifting" | "resolved";
  release: string;
  desired: unknown;
  observed: unknown;
  /** When the affordance started to drift (RFC 3339). */
  since: string;
  /** For `resolved`: when it came back. */
  until?: string;
  policy: DriftSettings["policy"];
  /** With `revert`: whether a corrective write was sent, or the limit held it back. */
  revert?: "sent" | "rate-limited";
}

export function emptyProgress(): RolloutProgress {
  return { pending: 0, applying: 0, completed: 0, failed: 0, skipped: 0, total: 0 };
}

function itemOf(item: PlanItem): RolloutItem {
  return {
    kind: item.kind,
    name: item.name,
    ...(item.desired !== undefined && { desired: item.desired }),
    status: item.status === "in-place" ? "in-place" : "pending",
  };
}

/** Plan items that stop a rollout before it starts: the release itself is wrong for the Thing. */
export function blockingItems(plan: Plan): Array<{ thing: string; item: PlanItem }> {
  const out: Array<{ thing: string; item: PlanItem }> = [];
  for (const thing of plan.things) {
    for (const item of thing.items) {
      // An unreachable Thing is tried, and fails on its own; everything else is the release's fault.
      if (item.status === "cannot" && item.reason !== "unreachable") out.push({ thing: thing.thing, item });
    }
  }
  return out;
}

/**
 * The steps of a rollout from its plan: one per Thing, in the plan's (id) order. A Thing whose
 * active release is already this one is skipped: a release is applied once per Thing.
 */
export function stepsFromPlan(
  rollout: string,
  plan: Plan,
  activeRelease: (thing: string) => string | undefined,
  now: string,
): RolloutStep[] {
  return plan.things.map((thing, position) => {
    const desired: Record<string, unknown> = {};
    for (const item of thing.items) if (item.kind === "property") desired[item.name] = item.desired;
    const active = activeRelease(thing.thing) === plan.release;
    return {
      rollout,
      release: plan.release,
      thing: thing.thing,
      position,
      status: active ? "skipped" : "pending",
      items: thing.items.map(itemOf),
      desired,
      ...(active && { reason: "already active: this release was applied to the Thing before" }),
      updated: now,
    };
  });
}
