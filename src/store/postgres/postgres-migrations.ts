// Versioned schema of the PostgreSQL store, in a PostgreSQL schema of its own. Each migration
// runs once, in order, in one transaction, at opening; `schema_migrations` records how far the
// schema has come. Never edit a released migration: add the next one.

export const migrations: readonly string[] = [
  // 1: the directory, the Log with its Merkle tree and checkpoints, the streams, releases, the
  // rollout ledger and the sealed secrets. Texts compare byte-wise (COLLATE "C"), as JavaScript
  // and SQLite compare the ids and clocks the hub writes. JSON is kept as the text the hub wrote
  // (never jsonb, which rewrites numbers and member order): the leaf hashes cover it.
  `
  CREATE TABLE things (
    id       text COLLATE "C" PRIMARY KEY,
    created  text NOT NULL,
    modified text NOT NULL,
    expires  text COLLATE "C",
    ttl      bigint,
    version  bigint NOT NULL
  );
  CREATE INDEX things_expires ON things (expires) WHERE expires IS NOT NULL;
  CREATE INDEX things_version ON things (version);

  -- The Log: append-only (the triggers below), keyed by seq. One secondary index serves a
  -- stream's history, its latest value and counts; one finds a position by clock.
  CREATE TABLE changes (
    seq        bigint PRIMARY KEY,
    hlc        text COLLATE "C" NOT NULL,
    at         text,
    thing      text COLLATE "C" NOT NULL,
    affordance text COLLATE "C",
    kind       text COLLATE "C" NOT NULL,
    value      text,
    previous   text,
    cause      text NOT NULL,
    leaf       bytea NOT NULL CHECK (length(leaf) = 32)
  );
  CREATE INDEX changes_stream ON changes (thing, (coalesce(affordance, '')), kind, seq);
  CREATE INDEX changes_hlc ON changes (hlc);

  -- Every (thing, affordance, kind) stream the Log has (affordance '' for the Thing itself):
  -- a Thing's history walks its streams, each in changes_stream.
  CREATE TABLE streams (
    thing      text COLLATE "C" NOT NULL,
    affordance text COLLATE "C" NOT NULL,
    kind       text COLLATE "C" NOT NULL,
    PRIMARY KEY (thing, affordance, kind)
  );

  -- RFC 9162 subtree hashes of 2^level leaves, from 16 leaves up (proofs hash at most 16 leaves).
  CREATE TABLE merkle_nodes (
    level smallint NOT NULL,
    idx   bigint NOT NULL,
    hash  bytea NOT NULL,
    PRIMARY KEY (level, idx)
  );

  -- The Log's head: its size and Merkle frontier. Every append locks this row first (FOR
  -- UPDATE), so appends from any number of processes take their seqs one transaction at a time.
  CREATE TABLE log_head (
    id       integer PRIMARY KEY CHECK (id = 1),
    size     bigint NOT NULL,
    frontier text NOT NULL
  );
  INSERT INTO log_head VALUES (1, 0, '{"size":0,"hashes":[]}');

  CREATE TABLE checkpoints (
    size      bigint PRIMARY KEY,
    origin    text NOT NULL,
    root      text NOT NULL,
    time      text NOT NULL,
    signature text NOT NULL
  );

  -- A release is stored once, in the Log, as the value of its released Change.
  CREATE TABLE releases (
    id        text COLLATE "C" PRIMARY KEY,
    name      text NOT NULL,
    seq       bigint NOT NULL,
    stored_at text NOT NULL
  );
  CREATE INDEX releases_seq ON releases (seq);

  CREATE TABLE rollouts (
    id      text COLLATE "C" PRIMARY KEY,
    release text COLLATE "C" NOT NULL,
    name    text NOT NULL,
    status  text NOT NULL CHECK (status IN ('running', 'completed', 'failed')),
    options text NOT NULL,
    actor   text NOT NULL,
    created text COLLATE "C" NOT NULL,
    ended   text,
    reason  text
  );
  CREATE INDEX rollouts_created ON rollouts (created);
  CREATE UNIQUE INDEX rollouts_running ON rollouts (release) WHERE status = 'running';

  CREATE TABLE rollout_steps (
    rollout  text COLLATE "C" NOT NULL REFERENCES rollouts (id),
    release  text NOT NULL,
    thing    text COLLATE "C" NOT NULL,
    position integer NOT NULL,
    status   text NOT NULL
      CHECK (status IN ('pending', 'applying', 'completed', 'failed', 'skipped')),
    items    text NOT NULL,
    desired  text NOT NULL,
    reason   text,
    updated  text COLLATE "C" NOT NULL,
    PRIMARY KEY (rollout, thing)
  );
  CREATE UNIQUE INDEX rollout_steps_position ON rollout_steps (rollout, position);
  CREATE INDEX rollout_steps_thing ON rollout_steps (thing);
  CREATE INDEX rollout_steps_applying ON rollout_steps (rollout) WHERE status = 'applying';

  -- The credentials the hub uses towards Things, sealed by the hub (the key is not here).
  CREATE TABLE thing_secrets (
    thing  text COLLATE "C" NOT NULL,
    name   text COLLATE "C" NOT NULL,
    sealed bytea NOT NULL,
    PRIMARY KEY (thing, name)
  );

  CREATE FUNCTION log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'the log is append-only'; END $$;
  CREATE FUNCTION releases_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN RAISE EXCEPTION 'releases are immutable'; END $$;
  `,
  // 2: the change feed filtered by actor or by release (`GET /changes?actor=`, `?release=`) found
  // each page by scanning the Log from one end for matching causes (hundreds of ms at 100k
  // Changes for a rare actor): one index per filter, on the cause's member as the feed's WHERE
  // writes it, then seq, so that a page is one range of the index in either order. An actor's
  // (or a release's) Changes are appended at the end of its range; only Changes on behalf of a
  // release are in the release index.
  `
  CREATE INDEX changes_actor ON changes ((cause::json ->> 'actor'), seq);
  CREATE INDEX changes_release ON changes ((cause::json ->> 'release'), seq)
    WHERE (cause::json ->> 'release') IS NOT NULL;
  `,
  // 3: a diff counted each changed stream's Changes between its two positions (countStream), one
  // index entry and one row at a time: O(Changes in the interval). Each Change now carries its
  // ordinal in its stream (1 for the stream's first), written by the append that makes it
  // (FLUSH_SQL), so that a count is the difference of two ordinals, each the latest entry at or
  // before a position in changes_stream. The Log's rows are filled in once, here: the guard that
  // refuses UPDATE of the Log is set aside for this one statement if it is in force (a guard found
  // disabled or missing is left so, for the opening to put back and say), and nothing the leaf
  // hashes cover is touched. The secondary indexes are built again after the UPDATE rather than
  // kept up through it (1M Changes: 30 s instead of 78 s, bench/postgres-migration.bench.js).
  // That is longer than a statement_timeout the URL may set (operations.md suggests 30 s): the
  // migrations' transaction sets none, nor a lock_timeout (migrateLocked). It also indexes the
  // feed's correlation filter (`GET /changes?correlation=`), as migration 2 the actor and release
  // ones: only commands, their outcomes and rollout steps carry a correlation.
  `
  ALTER TABLE changes ADD COLUMN ordinal bigint;
  DROP INDEX IF EXISTS changes_stream, changes_hlc, changes_actor, changes_release, changes_correlation;
  DO $$
  DECLARE
    guarded boolean := EXISTS (SELECT 1 FROM pg_trigger
      WHERE tgrelid = 'changes'::regclass AND tgname = 'changes_no_update' AND tgenabled <> 'D');
  BEGIN
    IF guarded THEN ALTER TABLE changes DISABLE TRIGGER changes_no_update; END IF;
    UPDATE changes c SET ordinal = o.n FROM (
      SELECT seq, row_number() OVER (PARTITION BY thing, coalesce(affordance, ''), kind ORDER BY seq) AS n
        FROM changes) o
     WHERE c.seq = o.seq;
    IF guarded THEN ALTER TABLE changes ENABLE TRIGGER changes_no_update; END IF;
  END $$;
  ALTER TABLE changes ALTER COLUMN ordinal SET NOT NULL;
  CREATE INDEX changes_stream ON changes (thing, (coalesce(affordance, '')), kind, seq);
  CREATE INDEX changes_hlc ON changes (hlc);
  CREATE INDEX changes_actor ON changes ((cause::json ->> 'actor'), seq);
  CREATE INDEX changes_release ON changes ((cause::json ->> 'release'), seq)
    WHERE (cause::json ->> 'release') IS NOT NULL;
  CREATE INDEX changes_correlation ON changes ((cause::json ->> 'correlation'), seq)
    WHERE (cause::json ->> 'correlation') IS NOT NULL;
  `,
  // 4: the MQTT credentials the embedded broker takes (hub/mqtt-credentials.ts), kept in each
  // hub's <data>/mqtt-credentials.json before: shared here, every replica takes what any issued.
  `
  CREATE TABLE mqtt_credentials (
    username        text PRIMARY KEY,
    kind            text NOT NULL,
    generation      integer NOT NULL,
    issued_at       text,
    issued_by       text,
    last_used_at    text,
    revoked_at      text,
    revoked_by      text,
    revoked_because text
  );
  `,
  // 5: each replica read the whole of mqtt_credentials every second, for what the others revoked.
  // Every write of a record now takes the next revision from one head row (locked by the write
  // until it commits, so revisions are in commit order: a reader that has seen revision N has seen
  // every write before it), and a replica reads the records written since the last it saw.
  // Set by a trigger, so that a write the hub did not make (an operator's UPDATE) counts too.
  `
  CREATE TABLE mqtt_credentials_head (
    id       integer PRIMARY KEY CHECK (id = 1),
    revision bigint NOT NULL
  );
  INSERT INTO mqtt_credentials_head (id, revision) VALUES (1, 0);
  ALTER TABLE mqtt_credentials ADD COLUMN revision bigint NOT NULL DEFAULT 0;
  CREATE INDEX mqtt_credentials_revision ON mqtt_credentials (revision);
  CREATE FUNCTION mqtt_credentials_revise() RETURNS trigger LANGUAGE plpgsql AS $$
  BEGIN
    EXECUTE format('UPDATE %I.mqtt_credentials_head SET revision = revision + 1 WHERE id = 1 RETURNING revision',
      TG_TABLE_SCHEMA) INTO NEW.revision;
    RETURN NEW;
  END $$;
  CREATE TRIGGER mqtt_credentials_revise BEFORE INSERT OR UPDATE ON mqtt_credentials
    FOR EACH ROW EXECUTE FUNCTION mqtt_credentials_revise();
  `,
  // 6: replicas are one hub only with the same identity files; one started with files of its own
  // on a Log still empty went on as another hub (another id in its clocks and Msg-Ids, another
  // key sealing credentials). The first replica records the hub's id and its keys' fingerprints;
  // the others are refused unless theirs are the same.
  `
  CREATE TABLE replica_identity (
    id          integer PRIMARY KEY CHECK (id = 1),
    hub         text NOT NULL,
    log_key     text NOT NULL,
    secrets_key text NOT NULL
  );
  `,
];

/**
 * The triggers that keep the Log and the release index append-only. Whoever may alter the schema
 * can drop or disable them; each opening puts back any that is missing or disabled, and says which
 * (the store's `restoredGuards`). Created by the opening itself, not by a migration, so that the
 * statements here are the ones in force; written as `pg_get_triggerdef` gives them back.
 */
export const GUARD_TRIGGERS: Readonly<Record<string, { table: string; sql: string }>> = {
  changes_no_update: {
    table: "changes",
    sql: "CREATE TRIGGER changes_no_update BEFORE DELETE OR UPDATE ON changes FOR EACH ROW EXECUTE FUNCTION log_append_only()",
  },
  changes_no_truncate: {
    table: "changes",
    sql: "CREATE TRIGGER changes_no_truncate BEFORE TRUNCATE ON changes FOR EACH STATEMENT EXECUTE FUNCTION log_append_only()",
  },
  log_head_no_shrink: {
    table: "log_head",
    sql: "CREATE TRIGGER log_head_no_shrink BEFORE UPDATE ON log_head FOR EACH ROW WHEN ((new.size < old.size)) EXECUTE FUNCTION log_append_only()",
  },
  releases_no_update: {
    table: "releases",
    sql: "CREATE TRIGGER releases_no_update BEFORE DELETE OR UPDATE ON releases FOR EACH ROW EXECUTE FUNCTION releases_immutable()",
  },
};
