// Connections to PostgreSQL for the store and the secret store: a pool whose sessions work in the
// hub's own schema, bigints read as numbers, and PostgreSQL's failures said in the hub's words.
import pg from "pg";
import { redactedUrl, UnavailableError } from "../../core/index.js";
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
  /**
   * Milliseconds a new connection (or a free one from a full pool) is waited for before the
   * operation fails as unavailable (default: the URL's `connect_timeout` in seconds, else 10 s).
   */
  connectTimeoutMs?: number;
  /**
   * Milliseconds one statement's answer is waited for before its connection is given up and the
   * operation fails as unavailable (default: the URL's `query_timeout` in seconds, else 30 s): a
   * network that drops packets answers nothing, and a write must not wait for it forever.
   */
  queryTimeoutMs?: number;
}

/** Default bounds on waiting for PostgreSQL (PostgresConnectionOptions). */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;
export const DEFAULT_QUERY_TIMEOUT_MS = 30_000;

/** The hub's own URL parameters: taken out of the URL before pg sees it. */
const HUB_PARAMETERS = ["schema", "connect_timeout", "query_timeout"] as const;

/** A timeout the URL gives in seconds, checked, in milliseconds. */
function secondsParameter(url: URL, name: string): number | undefined {
  const text = url.searchParams.get(name);
  if (text === null) return undefined;
  const seconds = Number(text);
  if (text.trim() === "" || !Number.isFinite(seconds) || seconds <= 0 || seconds > 86_400) {
    throw new Error(
      `The PostgreSQL URL's ${name} is ${JSON.stringify(text)}: give a number of seconds greater than 0 (at most 86400)`,
    );
  }
  return Math.ceil(seconds * 1000);
}

/** How long the options say to wait for a connection and for a statement's answer, checked. */
export function timeoutsOf(options: PostgresConnectionOptions): { connectMs: number; queryMs: number } {
  let url: URL | undefined;
  try {
    url = new URL(options.url);
  } catch {
    // pg says what is wrong with the URL when it connects.
  }
  return {
    connectMs:
      options.connectTimeoutMs ??
      (url && secondsParameter(url, "connect_timeout")) ??
      DEFAULT_CONNECT_TIMEOUT_MS,
    queryMs:
      options.queryTimeoutMs ?? (url && secondsParameter(url, "query_timeout")) ?? DEFAULT_QUERY_TIMEOUT_MS,
  };
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
export { redactedUrl };

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
 * A small pool (two sessions) of its own on a schema a PostgresStore has opened, and so migrated,
 * before: for the stores that keep a table of that schema apart from the Log, which need migration
 * `version` or later (`needs` says who: "the secret store needs"). `where` names the URL (without
 * its password) and the schema, for messages.
 */
export async function openMigratedPool(
  options: PostgresConnectionOptions,
  version: number,
  needs: string,
): Promise<{ pool: pg.Pool; where: string }> {
  const schema = schemaOf(options);
  const pool = createPool({ maxConnections: 2, ...options }, schema);
  try {
    const { rows } = await pool
      .query<{ version: number | null }>("SELECT max(version) AS version FROM schema_migrations")
      .catch(() => ({ rows: [{ version: 0 }] }));
    const at = rows[0]?.version ?? 0;
    if (at < version || at > migrations.length) {
      throw new Error(
        `The PostgreSQL schema ${schema} (${redactedUrl(options.url)}) is at version ${at}; ` +
          `${needs} ${version} to ${migrations.length} (open the PostgresStore first)`,
      );
    }
  } catch (error) {
    await pool.end().catch(() => {});
    throw error;
  }
  return { pool, where: `${redactedUrl(options.url)}, schema ${schema}` };
}

/**
 * A pool whose every session has `search_path` set to the schema, after any session settings the
 * URL gives (`?options=-c%20statement_timeout%3D5s`).
 */
export function createPool(options: PostgresConnectionOptions, schema: string): pg.Pool {
  const timeouts = timeoutsOf(options);
  // pg lets the URL's `options` win over the config's: they are taken out, and given with ours.
  let connectionString = options.url;
  let settings = "";
  try {
    const url = new URL(options.url);
    settings = url.searchParams.get("options") ?? "";
    url.searchParams.delete("options");
    // The hub's own parameters: PostgreSQL would refuse them as settings.
    for (const name of HUB_PARAMETERS) url.searchParams.delete(name);
    connectionString = url.toString();
  } catch {
    // pg says what is wrong with the URL when it connects.
  }
  const pool = new pg.Pool({
    connectionString,
    max: options.maxConnections ?? 10,
    types,
    connectionTimeoutMillis: timeouts.connectMs,
    // A statement unanswered this long gives its connection up (the pool discards it).
    query_timeout: timeouts.queryMs,
    // The operating system notices a peer gone from an idle connection.
    keepAlive: true,
    // A session whose hub vanished mid-transaction (the network to it cut) would keep the Log's
    // head row locked until the server notices: the server ends it once it idles that long in a
    // transaction (the hub's transactions never idle). The URL's settings come after and win.
    options:
      `-c idle_in_transaction_session_timeout=${timeouts.queryMs} ${settings} -c search_path=${schema}`.trim(),
  });
  // A connection that drops (a server restart, the network cut) must not end the process: pg
  // emits `error` on its client, which has no listener while checked out of the pool (a write's
  // transaction, the schema's lock), and the pool's own `error` for an idle one. The queries on it
  // fail and say so; the pool discards it and makes new ones.
  pool.on("connect", (client) => client.on("error", () => {}));
  pool.on("error", () => {});
  return pool;
}

/** PostgreSQL error classes that say the server, not the request, is the trouble. */
const UNAVAILABLE_SQLSTATE = /^(08|53|57|58|25006|40001|40P01)/;
const UNAVAILABLE_NODE_CODE = /^(ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|ENOTFOUND|EAI_AGAIN|EHOSTUNREACH)$/;
/** pg's own words for a connection lost, never made, or unanswered (query_timeout). */
const LOST_CONNECTION =
  /Connection terminated|timeout exceeded when trying to connect|Query read timeout|is not queryable/;
/** Of those, the ones that say the way to the server (not the server's disk or state) is the trouble. */
const CONNECTION_SQLSTATE = /^(08|57P0[1-3])/;

/** Whether an error is the database's unavailability (a refused connection, a full disk, …). */
export function isUnavailability(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code !== "string") return error instanceof Error && LOST_CONNECTION.test(error.message);
  return UNAVAILABLE_SQLSTATE.test(code) || UNAVAILABLE_NODE_CODE.test(code);
}

/**
 * Whether an error says PostgreSQL could not be reached or answered nothing (down, restarting, the
 * network cut or silent), rather than that it refused the work (out of disk, read-only): what a
 * successful round trip alone shows to be over.
 */
export function isLostConnection(error: unknown): boolean {
  const code = (error as { code?: unknown } | undefined)?.code;
  if (typeof code !== "string") return error instanceof Error && LOST_CONNECTION.test(error.message);
  return CONNECTION_SQLSTATE.test(code) || UNAVAILABLE_NODE_CODE.test(code);
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

/**
 * A guard an opening found missing, disabled or altered, and put back: a trigger, or the CHECK
 * that a leaf hash is 32 bytes. A CHECK that rows already break is put back for new rows only
 * (NOT VALID); `brokenBy` names the first such Change, and each opening names it again (found
 * "not valid") until the database is restored.
 */
export type RestoredGuard = RestoredTrigger | RestoredCheck;
interface RestoredTrigger {
  readonly trigger: string;
  readonly found: "missing" | "disabled" | "altered";
}
interface RestoredCheck {
  readonly constraint: string;
  readonly found: "missing" | "altered" | "not valid";
  readonly brokenBy?: number;
}

/** The CHECKs the code's migrations leave, as pg_get_constraintdef gives them back. */
const GUARD_CHECKS: Readonly<Record<string, { table: string; check: string }>> = {
  changes_leaf_check: { table: "changes", check: "CHECK ((length(leaf) = 32))" },
};

/** The trigger functions' bodies, as the code has them. */
const GUARD_FUNCTIONS: Readonly<Record<string, string>> = {
  log_append_only: "BEGIN RAISE EXCEPTION 'the log is append-only'; END",
  releases_immutable: "BEGIN RAISE EXCEPTION 'releases are immutable'; END",
};

/** SQL compared without its layout. */
const plain = (sql: string) => sql.replace(/\s+/g, " ").trim();

/** What is wrong with the guards, found in one query: functions, triggers and checks to put back. */
interface GuardProblems {
  functions: string[];
  triggers: RestoredTrigger[];
  checks: Array<{ constraint: string; found: "missing" | "altered" | "not valid" }>;
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
      WHERE c.relnamespace = $1::regnamespace AND NOT t.tgisinternal
     UNION ALL
     SELECT 'check', k.conname, pg_get_constraintdef(k.oid), k.convalidated::text, c.relname
       FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
      WHERE c.relnamespace = $1::regnamespace AND k.conname = ANY($3::text[])`,
    [schema, Object.keys(GUARD_FUNCTIONS), Object.keys(GUARD_CHECKS)],
  );
  const functions = Object.entries(GUARD_FUNCTIONS)
    .filter(([name, body]) => {
      const found = rows.find((row) => row.kind === "function" && row.name === name);
      return found === undefined || plain(found.text) !== body;
    })
    .map(([name]) => name);
  const triggers: RestoredTrigger[] = [];
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
  const checks: GuardProblems["checks"] = [];
  for (const [name, guard] of Object.entries(GUARD_CHECKS)) {
    const found = rows.find((row) => row.kind === "check" && row.name === name);
    if (found === undefined) checks.push({ constraint: name, found: "missing" });
    else if (found.fn !== guard.table || plain(found.text.replace(/ NOT VALID$/, "")) !== guard.check)
      checks.push({ constraint: name, found: "altered" });
    else if (found.enabled !== "true") checks.push({ constraint: name, found: "not valid" });
  }
  return { functions, triggers, checks };
}

/**
 * Puts a guard CHECK back as the code has it: for new rows at once (NOT VALID), then for the rows
 * there, unless one breaks it; returns the first Change that does (it stays NOT VALID), if any.
 */
async function restoreCheck(
  client: pg.PoolClient,
  name: string,
  found: "missing" | "altered" | "not valid",
): Promise<number | undefined> {
  const guard = GUARD_CHECKS[name];
  if (!guard) return undefined;
  if (found !== "not valid") {
    if (found === "altered") await client.query(`ALTER TABLE ${guard.table} DROP CONSTRAINT ${name}`);
    await client.query(`ALTER TABLE ${guard.table} ADD CONSTRAINT ${name} ${guard.check} NOT VALID`);
  }
  await client.query("SAVEPOINT guard_check");
  try {
    await client.query(unbounded(`ALTER TABLE ${guard.table} VALIDATE CONSTRAINT ${name}`));
    await client.query("RELEASE SAVEPOINT guard_check");
    return undefined;
  } catch {
    await client.query("ROLLBACK TO SAVEPOINT guard_check");
    const { rows } = await client.query<{ seq: string }>(
      unbounded(
        `SELECT seq FROM ${guard.table} WHERE NOT (${guard.check.slice("CHECK ".length)}) ORDER BY seq LIMIT 1`,
      ),
    );
    return rows[0] === undefined ? undefined : Number(rows[0].seq);
  }
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
      if (problems.functions.length === 0 && problems.triggers.length === 0 && problems.checks.length === 0)
        return [];
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

/**
 * A statement with no bound on its answer (pg's per-query `query_timeout`, at setTimeout's
 * longest): waiting for another hub's migration, or building an index over a big Log, takes as
 * long as it takes, and a hub that gave up would never start.
 */
function unbounded(text: string, values?: unknown[]): pg.QueryConfig {
  return { text, values, query_timeout: 2 ** 31 - 1 } as pg.QueryConfig;
}

async function migrateLocked(client: pg.PoolClient, schema: string): Promise<RestoredGuard[]> {
  try {
    await client.query("BEGIN");
    // The URL's statement_timeout and lock_timeout bound the hub's own statements, not this one
    // transaction: waiting for another hub's migration, or rewriting a big Log (migration 3 takes
    // ~30 s a million Changes), would be rolled back at every start and the hub would never start.
    await client.query("SET LOCAL statement_timeout = 0; SET LOCAL lock_timeout = 0");
    await client.query(
      unbounded("SELECT pg_advisory_xact_lock(hashtext($1))", [`hyperthings:migrate:${schema}`]),
    );
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
      await client.query(unbounded(migrations[v] ?? ""));
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
    const checks: RestoredCheck[] = [];
    for (const { constraint, found } of problems.checks) {
      const brokenBy = await restoreCheck(client, constraint, found);
      checks.push({ constraint, found, ...(brokenBy !== undefined && { brokenBy }) });
    }
    await client.query("COMMIT");
    // A new schema gets its guards here: that is no restoration to speak of.
    return current === 0 ? [] : [...problems.triggers, ...checks];
  } catch (error) {
    await client.query("ROLLBACK").catch(() => {});
    throw error;
  }
}

/**
 * A statement of a store kept beside the Log (secrets, MQTT credentials) on its own pool, whose
 * failure for want of PostgreSQL (down, the network cut or silent) is the hub's trouble, not the
 * request's: refused as unavailable (503, Retry-After). A write is refused first when
 * `writeRefusal` says so (the schema's lock lost). `what` names the records in messages.
 */
export async function sideQuery<R extends pg.QueryResultRow>(
  side: { pool: pg.Pool; where: string; writeRefusal: () => UnavailableError | undefined },
  what: string,
  write: boolean,
  text: string,
  values: unknown[],
): Promise<pg.QueryResult<R>> {
  const refusal = write ? side.writeRefusal() : undefined;
  if (refusal) throw refusal;
  try {
    return await side.pool.query<R>(text, values);
  } catch (error) {
    if (write) throw unwritten(error, `${side.where}, ${what}`);
    if (!isLostConnection(error)) throw error;
    const refused = new UnavailableError(
      `The hub could not read ${what} from PostgreSQL (${side.where}: ${(error as Error).message}). Retry shortly`,
      UNWRITABLE_RETRY_AFTER_S,
    );
    refused.cause = error;
    throw refused;
  }
}
