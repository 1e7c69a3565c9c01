// Migration 4 of the embedded store: the rollout ledger. A rollout's steps (one per Thing) are
// written before anything is sent, and each step is claimed (`applying`) durably before its first
// command goes out, so a hub that restarts resumes a rollout without applying a step twice
// (hub/rollouts.ts). Unlike the Log, these rows change: they are the rollout's working state; what
// was done is in the Log, as Changes caused by the release.
export const rolloutsMigration = `
  CREATE TABLE rollouts (
    id       TEXT PRIMARY KEY,
    release  TEXT NOT NULL,
    name     TEXT NOT NULL,
    status   TEXT NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    options  TEXT NOT NULL,
    actor    TEXT NOT NULL,
    created  TEXT NOT NULL,
    ended    TEXT,
    reason   TEXT
  );
  CREATE INDEX rollouts_created ON rollouts (created);
  -- At most one running rollout per release.
  CREATE UNIQUE INDEX rollouts_running ON rollouts (release) WHERE status = 'running';

  CREATE TABLE rollout_steps (
    rollout  TEXT NOT NULL REFERENCES rollouts (id),
    release  TEXT NOT NULL,
    thing    TEXT NOT NULL,
    position INTEGER NOT NULL,
    status   TEXT NOT NULL
      CHECK (status IN ('pending', 'applying', 'completed', 'failed', 'skipped')),
    items    TEXT NOT NULL,
    desired  TEXT NOT NULL,
    reason   TEXT,
    updated  TEXT NOT NULL,
    PRIMARY KEY (rollout, thing)
  ) WITHOUT ROWID;
  CREATE UNIQUE INDEX rollout_steps_position ON rollout_steps (rollout, position);
  CREATE INDEX rollout_steps_thing ON rollout_steps (thing);
`;
