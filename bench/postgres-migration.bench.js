#!/usr/bin/env node
// How long the PostgreSQL store's latest migration takes on a big Log, and whether the hub's
// reads and writes wait for it: a schema of its own at the migration before, with its guard
// triggers, filled with generated Changes by SQL (no hub: the rows' leaves are not real hashes),
// then the latest migration run as an opening runs it, one transaction, while another session
// reads a Change. Prints ONE JSON line on stdout; everything else goes to stderr. The schema is
// dropped at the end. See bench/README.md.
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { POSTGRES_URL, parseFlags } from "./support.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

const USAGE = `usage: node bench/postgres-migration.bench.js [--changes N] [--things N] [--url URL]
  --changes N   Changes in the Log before the migration (default 1000000)
  --things N    Things, each with 3 reported properties (default 1000)
  --url URL     PostgreSQL (default HYPERTHINGS_TEST_POSTGRES_URL or postgres://root@127.0.0.1:5432/test)`;

const parse = (argv) =>
  parseFlags(
    argv,
    {
      changes: 1_000_000,
      things: 1000,
      url: POSTGRES_URL,
    },
    USAGE,
  );

const log = (line) => process.stderr.write(`${line}\n`);
const seconds = (since) => Math.round((performance.now() - since) / 10) / 100;

async function main() {
  const options = parse(process.argv.slice(2));
  const { migrations, GUARD_TRIGGERS } = await import(
    join(ROOT, "dist", "store", "postgres", "postgres-migrations.js")
  );
  const schema = `hyperthings_bench_migration_${process.pid}`;
  const session = () => new pg.Client({ connectionString: options.url, options: `-c search_path=${schema}` });
  const db = session();
  const reader = session();
  await db.connect();
  await reader.connect();
  try {
    await db.query(`CREATE SCHEMA ${schema}`);
    await db.query("CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied text NOT NULL)");
    const before = migrations.length - 1;
    for (let v = 0; v < before; v++) {
      await db.query(migrations[v]);
      await db.query("INSERT INTO schema_migrations VALUES ($1, 'bench')", [v + 1]);
    }
    for (const { sql } of Object.values(GUARD_TRIGGERS)) await db.query(sql);

    // Reports of 3 properties spread over the Things, the causes of a hub's ingest.
    let started = performance.now();
    await db.query(
      `INSERT INTO changes (seq, hlc, at, thing, affordance, kind, value, previous, cause, leaf)
       SELECT g, lpad(to_hex(1700000000000 + g), 12, '0') || '-00000000-urn:hub:bench', NULL,
         'urn:hyperthings:bench:thing-' || lpad(((g / 3) % $2)::text, 5, '0'),
         (ARRAY['temperature', 'humidity', 'power'])[g % 3 + 1], 'reported',
         ((g * 7919) % 100000 / 10.0)::text, ((g * 104729) % 100000 / 10.0)::text,
         CASE WHEN g % 100 = 13 THEN '{"actor":"bench","release":"sha256:bench-release"}'
           ELSE '{"actor":"bench","via":"http"}' END,
         sha256(g::text::bytea)
       FROM generate_series(1, $1::bigint) AS g`,
      [options.changes, options.things],
    );
    await db.query("VACUUM ANALYZE changes");
    log(`filled ${options.changes} Changes in ${seconds(started)} s`);
    const size = async () =>
      Number((await db.query("SELECT pg_total_relation_size('changes') AS b")).rows[0].b);
    const bytesBefore = await size();

    // The migration, as an opening runs it; a read of one Change starts meanwhile.
    started = performance.now();
    await db.query("BEGIN");
    const migrating = db.query(migrations[before]).then(async () => {
      await db.query("INSERT INTO schema_migrations VALUES ($1, 'bench')", [before + 1]);
      await db.query("COMMIT");
      return performance.now();
    });
    await new Promise((resolve) => setTimeout(resolve, 200));
    const readStarted = performance.now();
    const read = reader.query("SELECT seq FROM changes WHERE seq = 1").then(() => performance.now());
    const [migrated, answered] = await Promise.all([migrating, read]);
    const migrationSeconds = Math.round((migrated - started) / 10) / 100;
    const readWaitedSeconds = Math.round((answered - readStarted) / 10) / 100;
    log(`migration ${migrations.length} in ${migrationSeconds} s; a read waited ${readWaitedSeconds} s`);
    const bytesAfter = await size();
    started = performance.now();
    await db.query("VACUUM changes");
    const vacuumSeconds = seconds(started);
    log(`VACUUM after it: ${vacuumSeconds} s`);
    process.stdout.write(
      `${JSON.stringify({
        bench: "postgres-migration",
        migration: migrations.length,
        changes: options.changes,
        migrationSeconds,
        readWaitedSeconds,
        tableMiBBefore: Math.round(bytesBefore / 2 ** 20),
        tableMiBAfter: Math.round(bytesAfter / 2 ** 20),
        vacuumSeconds,
      })}\n`,
    );
  } finally {
    await db.query("ROLLBACK").catch(() => {});
    await db.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await db.end();
    await reader.end();
  }
}

await main();
