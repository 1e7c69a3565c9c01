// The rollout ledger inside the PostgreSQL store (tables `rollouts` and `rollout_steps`): which
// Things a rollout covers and how far each got. Its writes run in the store's batch transactions
// (after the Log's head is locked), so they are ordered with every other hub's on the schema.
import type pg from "pg";
import {
  ConflictError,
  emptyProgress,
  type Rollout,
  type RolloutProgress,
  type RolloutStep,
  type RolloutStepStatus,
} from "../../core/index.js";
import type { ListRolloutsOptions, RolloutStepQuery, RolloutStepUpdate } from "../store.js";
import { rolloutOf, stepOf, type RolloutRow, type StepRow } from "../rollout-rows.js";

/** Queries over a client in a transaction (writes) or the pool (reads). */
type Queryable = Pick<pg.Pool, "query"> | Pick<pg.PoolClient, "query">;

/**
 * ConflictError when another rollout of the same release is running, or when a Thing this one
 * would apply to is still to be applied by another running rollout, or is being applied by one
 * that has ended meanwhile (see SqliteRollouts.create).
 */
export async function createRollout(
  db: Queryable,
  rollout: Rollout,
  steps: readonly RolloutStep[],
): Promise<void> {
  const running = await db.query<RolloutRow>(
    "SELECT * FROM rollouts WHERE status = 'running' AND release = $1",
    [rollout.release],
  );
  const other = running.rows[0];
  if (other) {
    throw new ConflictError(
      `Rollout ${other.id} of release ${rollout.release} is running; wait for it to end`,
    );
  }
  const pending = steps.filter((step) => step.status === "pending").map((step) => step.thing);
  if (pending.length > 0) {
    // A step being applied holds its Thing even once its rollout has ended.
    const busy = await db.query<{
      rollout: string;
      release: string;
      status: RolloutStepStatus;
      thing: string;
    }>(
      `SELECT s.rollout, s.release, s.status, s.thing FROM rollout_steps s JOIN rollouts r ON r.id = s.rollout
        WHERE s.thing = ANY($1::text[]) AND (s.status = 'applying' OR (s.status = 'pending' AND r.status = 'running'))`,
      [pending],
    );
    // The first of this rollout's steps that is held, as the embedded store says it.
    for (const thing of pending) {
      const held = busy.rows.find((row) => row.thing === thing);
      if (!held) continue;
      throw new ConflictError(
        `Rollout ${held.rollout} of release ${held.release} is still to apply its step to ${thing}` +
          (held.status === "applying"
            ? " (it is being applied now); wait for the step to end"
            : "; wait for it to end"),
      );
    }
  }
  await db.query(
    `INSERT INTO rollouts (id, release, name, status, options, actor, created)
     VALUES ($1, $2, $3, $4, $5, $6, $7)`,
    [
      rollout.id,
      rollout.release,
      rollout.name,
      rollout.status,
      JSON.stringify(rollout.options),
      rollout.actor,
      rollout.created,
    ],
  );
  if (steps.length === 0) return;
  await db.query(
    `INSERT INTO rollout_steps (rollout, release, thing, position, status, items, desired, reason, updated)
     SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[], $5::text[], $6::text[],
                          $7::text[], $8::text[], $9::text[])`,
    [
      steps.map((s) => s.rollout),
      steps.map((s) => s.release),
      steps.map((s) => s.thing),
      steps.map((s) => s.position),
      steps.map((s) => s.status),
      steps.map((s) => JSON.stringify(s.items)),
      steps.map((s) => JSON.stringify(s.desired)),
      steps.map((s) => s.reason ?? null),
      steps.map((s) => s.updated),
    ],
  );
}

export async function updateRolloutStep(
  db: Queryable,
  rollout: string,
  thing: string,
  update: RolloutStepUpdate,
): Promise<boolean> {
  const result = await db.query(
    `UPDATE rollout_steps SET status = $3, items = coalesce($4, items), reason = coalesce($5, reason), updated = $6
      WHERE rollout = $1 AND thing = $2 AND ($7::text IS NULL OR status = $7)`,
    [
      rollout,
      thing,
      update.status,
      update.items === undefined ? null : JSON.stringify(update.items),
      update.reason ?? null,
      update.updated,
      update.expect ?? null,
    ],
  );
  return (result.rowCount ?? 0) > 0;
}

export async function endRollout(
  db: Queryable,
  id: string,
  status: "completed" | "failed",
  ended: string,
  reason?: string,
): Promise<boolean> {
  const result = await db.query(
    "UPDATE rollouts SET status = $2, ended = $3, reason = $4 WHERE id = $1 AND status = 'running'",
    [id, status, ended, reason ?? null],
  );
  const changed = (result.rowCount ?? 0) > 0;
  if (changed && status === "failed") {
    await db.query(
      `UPDATE rollout_steps SET status = 'skipped', reason = $2, updated = $3
        WHERE rollout = $1 AND status = 'pending'`,
      [id, reason ?? "the rollout stopped", ended],
    );
  }
  return changed;
}

export async function getRollout(db: Queryable, id: string): Promise<Rollout | undefined> {
  const { rows } = await db.query<RolloutRow>("SELECT * FROM rollouts WHERE id = $1", [id]);
  return rows[0] ? rolloutOf(rows[0]) : undefined;
}

export async function listRollouts(db: Queryable, options: ListRolloutsOptions): Promise<Rollout[]> {
  const { rows } = await db.query<RolloutRow>(
    `SELECT * FROM rollouts r WHERE ($1::text IS NULL OR status = $1) AND ($2::text IS NULL OR release = $2)
       AND (NOT $3 OR EXISTS (SELECT 1 FROM rollout_steps s WHERE s.rollout = r.id AND s.status = 'applying'))
     ORDER BY created DESC, id DESC LIMIT $4 OFFSET $5`,
    [
      options.status ?? null,
      options.release ?? null,
      options.inFlight === true,
      options.limit,
      options.offset,
    ],
  );
  return rows.map(rolloutOf);
}

export async function rolloutSteps(
  db: Queryable,
  rollout: string,
  query: RolloutStepQuery,
): Promise<RolloutStep[]> {
  const { rows } = await db.query<StepRow>(
    `SELECT * FROM rollout_steps WHERE rollout = $1 AND position > $2 AND ($3::text IS NULL OR status = $3)
     ORDER BY position LIMIT $4`,
    [rollout, query.after ?? -1, query.status ?? null, query.limit],
  );
  return rows.map(stepOf);
}

export async function rolloutStepsOfThing(db: Queryable, thing: string): Promise<RolloutStep[]> {
  const { rows } = await db.query<StepRow>(
    "SELECT * FROM rollout_steps WHERE thing = $1 ORDER BY updated DESC, rollout",
    [thing],
  );
  return rows.map(stepOf);
}

export async function rolloutProgress(db: Queryable, rollout: string): Promise<RolloutProgress> {
  const progress = emptyProgress();
  const { rows } = await db.query<{ status: RolloutStepStatus; n: number }>(
    "SELECT status, count(*) AS n FROM rollout_steps WHERE rollout = $1 GROUP BY status",
    [rollout],
  );
  for (const row of rows) {
    progress[row.status] = row.n;
    progress.total += row.n;
  }
  return progress;
}
