// The rollout ledger's rows as both stores hold them (tables `rollouts` and `rollout_steps`, the
// same columns in SQLite and PostgreSQL), and the records they make.
import type { Rollout, RolloutStep, RolloutStepStatus } from "../core/index.js";

export interface RolloutRow {
  id: string;
  release: string;
  name: string;
  status: Rollout["status"];
  options: string;
  actor: string;
  created: string;
  ended: string | null;
  reason: string | null;
}

export interface StepRow {
  rollout: string;
  release: string;
  thing: string;
  position: number;
  status: RolloutStepStatus;
  items: string;
  desired: string;
  reason: string | null;
  updated: string;
}

export function rolloutOf(row: RolloutRow): Rollout {
  return {
    id: row.id,
    release: row.release,
    name: row.name,
    status: row.status,
    options: JSON.parse(row.options) as Rollout["options"],
    actor: row.actor,
    created: row.created,
    ...(row.ended !== null && { ended: row.ended }),
    ...(row.reason !== null && { reason: row.reason }),
  };
}

export function stepOf(row: StepRow): RolloutStep {
  return {
    rollout: row.rollout,
    release: row.release,
    thing: row.thing,
    position: row.position,
    status: row.status,
    items: JSON.parse(row.items) as RolloutStep["items"],
    desired: JSON.parse(row.desired) as RolloutStep["desired"],
    ...(row.reason !== null && { reason: row.reason }),
    updated: row.updated,
  };
}
