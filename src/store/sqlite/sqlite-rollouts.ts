// The rollout ledger inside the embedded store (tables `rollouts` and `rollout_steps`): which
// Things a rollout covers and how far each got. Its writes run in the store's batch transactions
// (group commit), so a step claimed as `applying` is durable before its first command goes out.
import type Database from "better-sqlite3";
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

export class SqliteRollouts {
  private readonly stmt;

  constructor(db: Database.Database) {
    this.stmt = {
      insertRollout: db.prepare(
        `INSERT INTO rollouts (id, release, name, status, options, actor, created)
         VALUES (@id, @release, @name, @status, @options, @actor, @created)`,
      ),
      insertStep: db.prepare(
        `INSERT INTO rollout_steps (rollout, release, thing, position, status, items, desired, reason, updated)
         VALUES (@rollout, @release, @thing, @position, @status, @items, @desired, @reason, @updated)`,
      ),
      updateStep: db.prepare<{
        rollout: string;
        thing: string;
        status: string;
        items: string | null;
        reason: string | null;
        updated: string;
        expect: string | null;
      }>(
        `UPDATE rollout_steps SET status = @status, items = coalesce(@items, items),
           reason = coalesce(@reason, reason), updated = @updated
         WHERE rollout = @rollout AND thing = @thing AND (@expect IS NULL OR status = @expect)`,
      ),
      endRollout: db.prepare<{ id: string; status: string; ended: string; reason: string | null }>(
        "UPDATE rollouts SET status = @status, ended = @ended, reason = @reason WHERE id = @id AND status = 'running'",
      ),
      skipPending: db.prepare<{ rollout: string; reason: string; updated: string }>(
        `UPDATE rollout_steps SET status = 'skipped', reason = @reason, updated = @updated
         WHERE rollout = @rollout AND status = 'pending'`,
      ),
      running: db.prepare<[string], RolloutRow>(
        "SELECT * FROM rollouts WHERE status = 'running' AND release = ?",
      ),
      busyThing: db.prepare<[string], { rollout: string; release: string; status: RolloutStepStatus }>(
        // A step being applied holds its Thing even once its rollout has ended (cancelled, or
        // stopped past its failures): the step finishes its items first.
        `SELECT s.rollout, s.release, s.status FROM rollout_steps s JOIN rollouts r ON r.id = s.rollout
         WHERE s.thing = ? AND (s.status = 'applying' OR (s.status = 'pending' AND r.status = 'running'))
         LIMIT 1`,
      ),
      get: db.prepare<[string], RolloutRow>("SELECT * FROM rollouts WHERE id = ?"),
      list: db.prepare<
        { status: string | null; release: string | null; inFlight: number; limit: number; offset: number },
        RolloutRow
      >(
        `SELECT * FROM rollouts r WHERE (@status IS NULL OR status = @status)
           AND (@release IS NULL OR release = @release)
           AND (@inFlight = 0 OR EXISTS
             (SELECT 1 FROM rollout_steps s WHERE s.rollout = r.id AND s.status = 'applying'))
         ORDER BY created DESC, id DESC LIMIT @limit OFFSET @offset`,
      ),
      steps: db.prepare<{ rollout: string; status: string | null; after: number; limit: number }, StepRow>(
        `SELECT * FROM rollout_steps WHERE rollout = @rollout AND position > @after
           AND (@status IS NULL OR status = @status)
         ORDER BY position LIMIT @limit`,
      ),
      stepsOfThing: db.prepare<[string], StepRow>(
        "SELECT * FROM rollout_steps WHERE thing = ? ORDER BY updated DESC, rollout",
      ),
      progress: db.prepare<[string], { status: RolloutStepStatus; n: number }>(
        "SELECT status, count(*) AS n FROM rollout_steps WHERE rollout = ? GROUP BY status",
      ),
    };
  }

  /**
   * ConflictError when another rollout of the same release is running, or when a Thing this one
   * would apply to is still to be applied by another running rollout, or is being applied by one
   * that has ended meanwhile: two releases written to one Thing at once would leave it holding
   * one's values and the other as its active release.
   */
  create(rollout: Rollout, steps: readonly RolloutStep[]): void {
    const running = this.stmt.running.get(rollout.release);
    if (running) {
      throw new ConflictError(
        `Rollout ${running.id} of release ${rollout.release} is running; wait for it to end`,
      );
    }
    for (const step of steps) {
      if (step.status !== "pending") continue;
      const busy = this.stmt.busyThing.get(step.thing);
      if (busy) {
        throw new ConflictError(
          `Rollout ${busy.rollout} of release ${busy.release} is still to apply its step to ${step.thing}` +
            (busy.status === "applying"
              ? " (it is being applied now); wait for the step to end"
              : "; wait for it to end"),
        );
      }
    }
    this.stmt.insertRollout.run({
      id: rollout.id,
      release: rollout.release,
      name: rollout.name,
      status: rollout.status,
      options: JSON.stringify(rollout.options),
      actor: rollout.actor,
      created: rollout.created,
    });
    for (const step of steps) {
      this.stmt.insertStep.run({
        rollout: step.rollout,
        release: step.release,
        thing: step.thing,
        position: step.position,
        status: step.status,
        items: JSON.stringify(step.items),
        desired: JSON.stringify(step.desired),
        reason: step.reason ?? null,
        updated: step.updated,
      });
    }
  }

  updateStep(rollout: string, thing: string, update: RolloutStepUpdate): boolean {
    const result = this.stmt.updateStep.run({
      rollout,
      thing,
      status: update.status,
      items: update.items === undefined ? null : JSON.stringify(update.items),
      reason: update.reason ?? null,
      updated: update.updated,
      expect: update.expect ?? null,
    });
    return result.changes > 0;
  }

  end(id: string, status: "completed" | "failed", ended: string, reason?: string): boolean {
    const changed = this.stmt.endRollout.run({ id, status, ended, reason: reason ?? null }).changes > 0;
    if (changed && status === "failed") {
      this.stmt.skipPending.run({ rollout: id, reason: reason ?? "the rollout stopped", updated: ended });
    }
    return changed;
  }

  get(id: string): Rollout | undefined {
    const row = this.stmt.get.get(id);
    return row ? rolloutOf(row) : undefined;
  }

  list(options: ListRolloutsOptions): Rollout[] {
    return this.stmt.list
      .all({
        status: options.status ?? null,
        release: options.release ?? null,
        inFlight: options.inFlight === true ? 1 : 0,
        limit: options.limit,
        offset: options.offset,
      })
      .map(rolloutOf);
  }

  steps(rollout: string, query: RolloutStepQuery): RolloutStep[] {
    return this.stmt.steps
      .all({ rollout, status: query.status ?? null, after: query.after ?? -1, limit: query.limit })
      .map(stepOf);
  }

  stepsOfThing(thing: string): RolloutStep[] {
    return this.stmt.stepsOfThing.all(thing).map(stepOf);
  }

  progress(rollout: string): RolloutProgress {
    const progress = emptyProgress();
    for (const row of this.stmt.progress.all(rollout)) {
      progress[row.status] = row.n;
      progress.total += row.n;
    }
    return progress;
  }
}
