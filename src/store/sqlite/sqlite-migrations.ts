// Versioned schema of the embedded store. Each migration runs once, in order, in a transaction,
// at start; `PRAGMA user_version` records how far a database has come. Never edit a released
// migration: add the next one.

export const migrations: readonly string[] = [
  // 1: the directory and the Log. The Log is append-only: no secondary index (an index on
  // (thing, time) makes every insert dirty a random page — PITFALLS.md), no UPDATE, no DELETE.
  `
  CREATE TABLE things (
    id       TEXT PRIMARY KEY,
    td       TEXT NOT NULL,
    created  TEXT NOT NULL,
    modified TEXT NOT NULL,
    expires  TEXT,
    ttl      INTEGER,
    version  INTEGER NOT NULL
  );
  CREATE INDEX things_expires ON things (expires) WHERE expires IS NOT NULL;

  CREATE TABLE changes (
    seq        INTEGER PRIMARY KEY,
    time       TEXT NOT NULL,
    at         TEXT,
    thing      TEXT NOT NULL,
    affordance TEXT,
    kind       TEXT NOT NULL,
    value      TEXT,
    previous   TEXT,
    cause      TEXT NOT NULL
  );
  CREATE TRIGGER changes_no_update BEFORE UPDATE ON changes
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
  CREATE TRIGGER changes_no_delete BEFORE DELETE ON changes
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
  `,
];
