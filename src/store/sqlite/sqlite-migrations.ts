// Versioned schema of the embedded store. Each migration runs once, in order, in a transaction,
// at start; `PRAGMA user_version` records how far a database has come. Never edit a released
// migration: add the next one.
import { releasesMigration } from "./sqlite-release-migration.js";
import { rolloutsMigration } from "./sqlite-rollout-migration.js";

export const migrations: readonly string[] = [
  // 1: the directory, the Log with its Merkle tree and checkpoints, the state projection and the
  // history index. The Log is append-only: keyed by seq, no secondary index (an index on
  // (thing, time) makes every insert dirty a random page — PITFALLS.md), no UPDATE, no DELETE,
  // no insert over an existing seq. See docs/changes.md for the design.
  `
  -- The directory: one row per registered Thing. Its TD is the value of the Change that
  -- described it last (seq = version), so a TD is stored once, in the Log.
  CREATE TABLE things (
    id       TEXT PRIMARY KEY,
    created  TEXT NOT NULL,
    modified TEXT NOT NULL,
    expires  TEXT,
    ttl      INTEGER,
    version  INTEGER NOT NULL
  );
  CREATE INDEX things_expires ON things (expires) WHERE expires IS NOT NULL;

  CREATE TABLE changes (
    seq        INTEGER PRIMARY KEY,
    hlc        TEXT NOT NULL,
    at         TEXT,
    thing      TEXT NOT NULL,
    affordance TEXT,
    kind       TEXT NOT NULL,
    value      TEXT,
    previous   TEXT,
    cause      TEXT NOT NULL,
    leaf       BLOB NOT NULL
  );
  CREATE TRIGGER changes_no_update BEFORE UPDATE ON changes
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
  CREATE TRIGGER changes_no_delete BEFORE DELETE ON changes
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
  CREATE TRIGGER changes_no_replace BEFORE INSERT ON changes
    WHEN EXISTS (SELECT 1 FROM changes WHERE seq = NEW.seq)
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;

  -- RFC 9162 subtree hashes of 2^level leaves, stored from level 8 (256 leaves) up; smaller
  -- subtrees are hashed from the leaves when a proof needs them.
  CREATE TABLE merkle_nodes (
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB NOT NULL,
    PRIMARY KEY (level, idx)
  ) WITHOUT ROWID;

  -- The Log's head, written with every batch: its size, the Merkle frontier, and how far the
  -- history index has been merged.
  CREATE TABLE log_head (
    id             INTEGER PRIMARY KEY CHECK (id = 1),
    size           INTEGER NOT NULL,
    frontier       TEXT NOT NULL,
    history_merged INTEGER NOT NULL
  );
  INSERT INTO log_head VALUES (1, 0, '{"size":0,"hashes":[]}', 0);

  -- The state projection: the latest Change of each (thing, affordance, kind) stream.
  CREATE TABLE streams (
    thing      TEXT NOT NULL,
    affordance TEXT NOT NULL,
    kind       TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    value      TEXT,
    PRIMARY KEY (thing, affordance, kind)
  ) WITHOUT ROWID;

  -- The history index, merged from memory in sorted batches (see docs/changes.md).
  CREATE TABLE history (
    thing      TEXT NOT NULL,
    affordance TEXT NOT NULL,
    kind       TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    PRIMARY KEY (thing, affordance, kind, seq)
  ) WITHOUT ROWID;

  CREATE TABLE checkpoints (
    size      INTEGER PRIMARY KEY,
    origin    TEXT NOT NULL,
    root      TEXT NOT NULL,
    time      TEXT NOT NULL,
    signature TEXT NOT NULL
  );
  `,
  // 2: the credentials the hub uses towards Things, by Thing and security definition name, each
  // sealed with AES-256-GCM by the hub (the key is not in the database). Mutable, unlike the Log:
  // a secret is replaced or forgotten, never kept for history.
  `
  CREATE TABLE thing_secrets (
    thing  TEXT NOT NULL,
    name   TEXT NOT NULL,
    sealed BLOB NOT NULL,
    PRIMARY KEY (thing, name)
  ) WITHOUT ROWID;
  `,
  // 3: the release index (sqlite-release-migration.ts).
  releasesMigration,
  // 4: the rollout ledger (sqlite-rollout-migration.ts).
  rolloutsMigration,
  // 5: an insert over an existing seq is refused by comparing with the Log's size in log_head (one
  // row) instead of looking the seq up in changes: the same refusal, as every committed row has
  // seq <= size, at half the cost (the lookup took ~0.5 µs of the writer's ~2 µs per row). The
  // size itself can no longer go down, so that a row cannot be let through by lowering it.
  `
  DROP TRIGGER changes_no_replace;
  CREATE TRIGGER changes_no_replace BEFORE INSERT ON changes
    WHEN NEW.seq <= (SELECT size FROM log_head WHERE id = 1)
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
  CREATE TRIGGER log_head_no_shrink BEFORE UPDATE OF size ON log_head
    WHEN NEW.size < OLD.size
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END;
  `,
  // 6: the history index and the projection keyed by a stream's number instead of its three
  // texts (a Thing id of ~40 bytes in every index entry): an entry takes ~10 bytes instead of
  // ~65, and a merge writes a sixth of the pages (measured: 0.9 µs and 232 bytes written per entry
  // against 2.5 µs and 1,301 bytes). Numbers are given in the order streams first appear, and a
  // merge cycle walks them in that order, so each chunk still writes one contiguous range. The
  // old names stay, as views, for anyone who reads the file.
  `
  CREATE TABLE stream_ids (
    id         INTEGER PRIMARY KEY,
    thing      TEXT NOT NULL,
    affordance TEXT NOT NULL,
    kind       TEXT NOT NULL,
    UNIQUE (thing, affordance, kind)
  );
  INSERT INTO stream_ids (thing, affordance, kind)
    SELECT thing, affordance, kind FROM streams
    UNION SELECT thing, affordance, kind FROM history
    ORDER BY 1, 2, 3;
  CREATE TABLE history_entries (
    stream INTEGER NOT NULL,
    seq    INTEGER NOT NULL,
    PRIMARY KEY (stream, seq)
  ) WITHOUT ROWID;
  INSERT INTO history_entries (stream, seq)
    SELECT s.id, h.seq FROM history h
    JOIN stream_ids s ON s.thing = h.thing AND s.affordance = h.affordance AND s.kind = h.kind
    ORDER BY 1, 2;
  CREATE TABLE stream_state (
    stream INTEGER PRIMARY KEY,
    seq    INTEGER NOT NULL,
    value  TEXT
  );
  INSERT INTO stream_state (stream, seq, value)
    SELECT s.id, t.seq, t.value FROM streams t
    JOIN stream_ids s ON s.thing = t.thing AND s.affordance = t.affordance AND s.kind = t.kind
    ORDER BY 1;
  DROP TABLE history;
  DROP TABLE streams;
  CREATE VIEW history AS
    SELECT s.thing, s.affordance, s.kind, h.seq FROM history_entries h JOIN stream_ids s ON s.id = h.stream;
  CREATE VIEW streams AS
    SELECT s.thing, s.affordance, s.kind, t.seq, t.value FROM stream_state t JOIN stream_ids s ON s.id = t.stream;
  `,
  // 7: subtree hashes keyed by where they end, then level (merkleNodeId), instead of (level,
  // idx). The subtrees one Change completes all end at its position, so every batch appends its
  // nodes at the table's end: one page. Keyed by level first, each level was an insertion point
  // of its own, and a batch of 32 one-Change calls wrote 3 to 7 pages of this table (of ~11 in
  // its WAL frames; measured by the page numbers of the frames).
  `
  CREATE TABLE merkle_subtrees (
    id    INTEGER PRIMARY KEY,
    level INTEGER NOT NULL,
    idx   INTEGER NOT NULL,
    hash  BLOB NOT NULL,
    CHECK (id = ((idx + 1) << level) * 64 + level)
  );
  INSERT INTO merkle_subtrees (id, level, idx, hash)
    SELECT ((idx + 1) << level) * 64 + level, level, idx, hash FROM merkle_nodes ORDER BY 1;
  DROP TABLE merkle_nodes;
  ALTER TABLE merkle_subtrees RENAME TO merkle_nodes;
  `,
  // 8: the directory listing's revision (max(version), on every page of GET /things) read the
  // whole table: ~8.7 ms a page with 100,000 TDs. With the index it is one look at its last entry.
  `
  CREATE INDEX things_version ON things (version);
  `,
  // 9: the steps being applied, found without reading every step: a hub that starts finishes
  // those of every rollout, ended or not (a cancelled rollout's step in flight when it stopped).
  `
  CREATE INDEX rollout_steps_applying ON rollout_steps (rollout) WHERE status = 'applying';
  `,
  // 10: the MQTT credentials the embedded broker takes (hub/mqtt-credentials.ts), kept in
  // <data>/mqtt-credentials.json before: a record per user name, never a password.
  `
  CREATE TABLE mqtt_credentials (
    username        TEXT PRIMARY KEY,
    kind            TEXT NOT NULL,
    generation      INTEGER NOT NULL,
    issued_at       TEXT,
    issued_by       TEXT,
    last_used_at    TEXT,
    revoked_at      TEXT,
    revoked_by      TEXT,
    revoked_because TEXT
  );
  `,
];
