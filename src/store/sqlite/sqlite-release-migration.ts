// Migration 3 of the embedded store: the release index. A release is stored once, in the Log,
// as the value of its `released` Change; this table finds it by id and lists them. Releases are
// immutable: no UPDATE, no DELETE (a change of mind is a new release that supersedes it).
export const releasesMigration = `
  CREATE TABLE releases (
    id        TEXT PRIMARY KEY,
    name      TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    stored_at TEXT NOT NULL
  );
  CREATE INDEX releases_seq ON releases (seq);
  CREATE TRIGGER releases_no_update BEFORE UPDATE ON releases
    BEGIN SELECT RAISE(ABORT, 'releases are immutable'); END;
  CREATE TRIGGER releases_no_delete BEFORE DELETE ON releases
    BEGIN SELECT RAISE(ABORT, 'releases are immutable'); END;
`;
