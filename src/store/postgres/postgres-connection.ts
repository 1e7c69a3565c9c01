// Connections to PostgreSQL for the store and the secret store: a pool whose sessions work in the
// hub's own schema, bigints read as numbers, and PostgreSQL's failures said in the hub's words.
import pg from "pg";
import { UnavailableError } from "../../core/index.js";
import { GUARD_TRIGGERS, migrations } from "./postgres-migrations.js";

/** The schema the hub's tables live in when none is given. */
export const DEFAULT_SCHEMA = "hyperthings";

/** A schema name the hub takes as it is (no quoting games): lower case, digits, underscores. */
const SCHEMA_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

export interface PostgresConnectionOptions {
  /**
   * A `postgres://` or `postgresql://` connection URL; it may name the schema (`?schema=name`) and
   * session settings (`?options=-c%20statement_timeout%3D5s`).
   */
  url: string;
  /**
   * The PostgreSQL schema of the hub's tables (default: the URL's `schema`, else `hyperthings`);
   * made on first opening.
   */
  schema?: string;
  /** Connections in the pool at most (default 10). */
  maxConnections?: number;
}

/** The schema the options name (see PostgresConnectionOptions.schema), checked. */
export function schemaOf(options: PostgresConnectionOptions): string {
  let fromUrl: string | null = null;
  try {
    fromUrl = new URL(options.url).searchParams.get("schema");
  } catch {
    // pg says what is wrong with the URL when it connects.
  }
  return checkSchemaName(options.schema ?? fromUrl ?? DEFAULT_SCHEMA);
}

/** Refuses a schema name that is not a plain lower-case identifier, saying what one is. */
export function checkSchemaName(schema: string): string {
  if (!SCHEMA_NAME.test(schema)) {
    throw new Error(
      `The PostgreSQL schema name ${JSON.stringify(schema)} is not one the hub takes: ` +
        "use 1 to 63 lower-case letters, digits and underscores, not starting with a digit",
    );
  }
  return schema;
}

/** The URL without its password, for messages. */
export function redactedUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.password !== "") parsed.password = "***";
    return parsed.toString();
  } catch {
    return "(a URL that does not parse)";
  }
}

// int8 (seq, sizes, counts) as a JavaScript number: every value the hub stores is a safe integer.
const INT8_OID = 20;
const types = {
  getTypeParser: ((oid: number, format?: "text" | "binary") =>
    oid === INT8_OID && format !== "binary"
      ? (text: string) => Number(text)
      : (pg.types.getTypeParser(oid, format ?? "text") as (
          text: string,
        ) => unknown)) as pg.CustomTypesConfig["getTypeParser"],
};

/**
 * A pool whose every session has `search_path` set to the schema, after any session settings the
 * URL gives (`?options=-c%20statement_timeout%3D5s`).
 */
export function createPool(options: PostgresConnectionOptions, schema: string): pg.Pool {
  // pg lets the URL's `options` win over the config's: they are taken out, and given with ours.
  let connectionString = options.url;
  let settings = "";
  try {
    const url = new URL(options.url);
    settings = url.searchParams.get("options") ?? "";
    url.searchParams.delete("options");
    // The hub's own parameter: PostgreSQL would refuse it as a setting.
    url.searchParams.delete("schema");
    connectionString = url.toString();
  } catch {
    // pg says what is wrong with the URL when it connects.
  }
  const pool = new pg.Pool({
    connectionString,
    max: options.maxConnections ?? 10,
    types,
    options: `${settings} -c search_path=${schema}`.trim(),
  });
  // An idle connection that drops (a server restart) must not end the process: the next query
  // fails and says so.
  pool.on("error", () => {});
  return pool;
}

/** PostgreSQL error classes that say the server, not the request, is the trouble. */
const UNAVAILABLE_SQLSTATE = /^(08|53|57|58|25006|40001|40P01)/;
const UNAVAILABLE_NODE_CODE = /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH)$/;

/** Whether an error is the database's unavailability (a refused connection, a full disk, …). */
export function isUnavailability(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code !== "string") {
    return (
      error instanceof Error &&
      /Connection terminated|timeout exceeded when trying to connect/.test(error.message)
    );
  }
  return UNAVAILABLE_SQLSTATE.test(code) || UNAVAILABLE_NODE_CODE.test(code);
}

/** Seconds a writer refused for want of the database is told to wait before a retry. */
export const UNWRITABLE_RETRY_AFTER_S = 10;

/**
 * A write that failed because PostgreSQL could not take it (down, out of disk, read-only, too many
 * connections) is the hub's trouble, not the request's: refused as unavailable (503, Retry-After),
 * saying that nothing of it was recorded. Any other error is left as it is.
 */
export function unwritten(error: unknown, where: string): unknown {
  if (!isUnavailability(error)) return error;
  const code = (error as { code?: unknown }).code;
  const refused = new UnavailableError(
    code === "53100"
      ? `PostgreSQL (${where}) is out of disk space: nothing of this write was recorded. Retry once space has been freed there`
      : `The hub could not write to PostgreSQL (${where}: ${(error as Error).message}): nothing of this write was recorded. Retry shortly`,
    UNWRITABLE_RETRY_AFTER_S,
  );
  refused.cause = error;
  return refused;
}

/** Why PostgreSQL could not be reached at opening, in one line that names it and what to check. */
export function unreachable(url: string, error: unknown): Error {
  return new Error(
    `PostgreSQL at ${redactedUrl(url)} cannot be used: ${(error as Error).message}. ` +
      "Check that the server runs, that the URL (--store, HYPERTHINGS_STORE) names it, and that its user may connect",
    { cause: error },
  );
}

/** A guard trigger an opening found missing, disabled or altered, and put back. */
export interface RestoredGuard {
  readonly trigger: string;
  readonly found: "missing" | "disabled" | "altered";
}

/** The trigger functions' bodies, as the code has them. */
const GUARD_FUNCTIONS: Readonly<Record<string, string>> = {
  log_append_only: "BEGIN RAISE EXCEPTION 'the log is append-only'; END",
  releases_immutable: "BEGIN RAISE EXCEPTION 'releases are immutable'; END",
};

/** SQL compared without its layout. */
const plain = (sql: string) => sql.replace(/\s+/g, " ").trim();

/** What is wrong with the guards, found in one query: functions to put back, triggers to put back. */
interface GuardProblems {
  functions: string[];
  triggers: RestoredGuard[];
}

async function guardProblems(client: pg.PoolClient, schema: string): Promise<GuardProblems> {
  const { rows } = await client.query<{
    kind: string;
    name: string;
    text: string;
    enabled: string | null;
    fn: string | null;
  }>(
    `SELECT 'function' AS kind, proname AS name, prosrc AS text, NULL AS enabled, NULL AS fn FROM pg_proc
      WHERE pronamespace = $1::regnamespace AND proname = ANY($2::text[])
     UNION ALL
     SELECT 'trigger', t.tgname, pg_get_triggerdef(t.oid), t.tgenabled::text, p.proname
       FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_proc p ON p.oid = t.tgfoid
      WHERE c.relnamespace = $1::regnamespace AND NOT t.tgisinternal`,
    [schema, Object.keys(GUARD_FUNCTIONS)],
  );
  const functions = Object.entries(GUARD_FUNCTIONS)
    .filter(([name, body]) => {
      const found = rows.find((row) => row.kind === "function" && row.name === name);
      return found === undefined || plain(found.text) !== body;
    })
    .map(([name]) => name);
  const triggers: RestoredGuard[] = [];
  for (const [name, guard] of Object.entries(GUARD_TRIGGERS)) {
    const found = rows.find((row) => row.kind === "trigger" && row.name === name);
    if (found === undefined) triggers.push({ trigger: name, found: "missing" });
    else if (
      plain(found.text.replace(` ON ${schema}.`, " ON ")) !== plain(guard.sql) ||
      functions.includes(found.fn ?? "")
    )
      triggers.push({ trigger: name, found: "altered" });
    else if (found.enabled === "D") triggers.push({ trigger: name, found: "disabled" });
  }
  return { functions, triggers };
}

/**
 * Makes the schema and brings it to the code's version, then puts back any guard trigger that is
 * missing, disabled or altered; refuses a schema newer than the code. A schema that is up to date
 * with its guards in place is only read (one query); otherwise the work is one transaction under
 * an advisory lock (two hubs opening a new schema at once must not both run migration 1).
 */
export async function migrate(pool: pg.Pool, schema: string): Promise<RestoredGuard[]> {
  const client = await pool.connect();
  try {
    const version = await client
      .query<{ version: number | null }>(`SELECT max(version) AS version FROM ${schema}.schema_migrations`)
      .then((result) => result.rows[0]?.version ?? 0)
      .catch(() => 0);
    if (version > migrations.length) throw newerSchema(schema, version);
    if (version === migrations.length) {
      const problems = await guardProblems(client, schema);
      if (problems.functions.length === 0 && problems.triggers.length === 0) return [];
    }
    return await migrateLocked(client, schema);
  } finally {
    client.release();
  }
}

function newerSchema(schema: string, version: number): Error {
  return new Error(
    `The PostgreSQL schema ${schema} is at version ${version}, newer than this hub understands (${migrations.length}): ` +
      "upgrade the hub, or give this one another schema",
  );
}

async function migrateLocked(client: pg.PoolClient, schema: string): Promise<RestoredGuard[]> {
  try {
    await client.query("BEGIN");
    await client.query("SELECT pg_advisory_xact_lock(hashtext($1))", [`hyperthings:migrate:${schema}`]);
    await client.query(`CREATE SCHEMA IF NOT EXISTS ${schema}`);
    // Never anywhere else: a session whose search_path lost the schema would migrate `public`.
    await client.query(`SET LOCAL search_path TO ${schema}`);
    await client.query(
      "CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY, applied text NOT NULL)",
    );
    const { rows } = await client.query<{ version: number | null }>(
      "SELECT max(version) AS version FROM schema_migrations",
    );
    const current = rows[0]?.version ?? 0;
    if (current > migrations.length) throw newerSchema(schema, current);
    for (let v = current; v < migrations.length; v++) {
      await client.query(migrations[v] ?? "");
      await client.query("INSERT INTO schema_migrations (version, applied) VALUES ($1, $2)", [
        v + 1,
        new Date().toISOString(),
      ]);
    }
    const problems = await guardProblems(client, schema);
    for (const name of problems.functions) {
      await client.query(
        `CREATE OR REPLACE FUNCTION ${name}() RETURNS trigger LANGUAGE plpgsql AS $$ ${GUARD_FUNCTIONS[name] ?? ""} $$`,
      );
    }
    for (const { trigger, found } of problems.triggers) {
      const guard = GUARD_TRIGGERS[trigger];
      if (!guard) continue;
      if (found !== "missing") await client.query(`DROP TRIGGER ${trigger} ON ${guard.table}`);
      await client.query(guard.sql);
    }
    await client.query("COMMIT");
    // A new schema gets its guards here: that is no restoration to speak of.
    return current === 0 ? [] : problems.triggers;
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  }
}
