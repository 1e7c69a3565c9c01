// A hub's Log in PostgreSQL read for verification alone (`things verify --db postgres://…`): one
// read-only session, no hub, no migration, no guard put back, and none of the checks that make a
// hub refuse a damaged schema, since a damaged Log is exactly what an auditor needs to look into.
// Everything is read in one REPEATABLE READ transaction: one snapshot, whatever a running hub
// appends meanwhile.
import type pg from "pg";
import type { Checkpoint } from "../../core/index.js";
import type { ChangeRow } from "../recorded-json.js";
import type { LogEntries } from "../store.js";
import { createPool, redactedUrl, schemaOf, type PostgresConnectionOptions } from "./postgres-connection.js";

/** A JSON string as JSON.stringify (and RFC 8785) writes it. */
const quote = (text: string) => JSON.stringify(text);

/**
 * Changes as `GET /log/entries` writes them (Store.logEntries): NDJSON, members in RFC 8785
 * order, the JSON texts as stored, the recorded leaf last. A row altered in the database is
 * written as it is.
 */
export function logEntriesOf(rows: readonly ChangeRow[], after: number): LogEntries {
  let body = "";
  for (const c of rows) {
    body += "{";
    if (c.affordance !== null) body += `"affordance":${quote(c.affordance)},`;
    if (c.at !== null) body += `"at":${quote(c.at)},`;
    body += `"cause":${c.cause},"hlc":${quote(c.hlc)},"kind":${quote(c.kind)}`;
    if (c.previous !== null) body += `,"previous":${c.previous}`;
    body += `,"seq":${c.seq},"thing":${quote(c.thing)}`;
    if (c.value !== null) body += `,"value":${c.value}`;
    body += `,"leaf":"${c.leaf.toString("hex")}"}\n`;
  }
  return { body: Buffer.from(body, "utf8"), count: rows.length, last: rows.at(-1)?.seq ?? after };
}

/** What the schema's head row says, beside what its `changes` table holds. */
export interface PostgresLogHead {
  /** The Log's size by its head row (`log_head`), undefined when the row is missing. */
  headSize: number | undefined;
  /** The greatest seq in the `changes` table (0 when empty). */
  lastSeq: number;
}

export class PostgresLogReader {
  private constructor(
    private readonly pool: pg.Pool,
    private readonly client: pg.PoolClient,
    /** The URL (without its password) and schema, for messages. */
    readonly where: string,
  ) {}

  /**
   * Opens a read-only snapshot of the schema's Log; an Error names the database and schema and
   * what is wrong (unreachable, no such schema, no Log in it).
   */
  static async open(options: PostgresConnectionOptions): Promise<PostgresLogReader> {
    const schema = schemaOf(options);
    const where = `${redactedUrl(options.url)}, schema ${schema}`;
    const pool = createPool({ ...options, maxConnections: 1 }, schema);
    let client: pg.PoolClient | undefined;
    try {
      client = await pool.connect().catch((error: unknown) => {
        throw new Error(`cannot reach PostgreSQL at ${where}: ${(error as Error).message}`, { cause: error });
      });
      await client.query("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
      const { rows } = await client.query<{
        changes: string | null;
        head: string | null;
        checkpoints: string | null;
      }>(`SELECT to_regclass($1) AS changes, to_regclass($2) AS head, to_regclass($3) AS checkpoints`, [
        `${schema}.changes`,
        `${schema}.log_head`,
        `${schema}.checkpoints`,
      ]);
      const found = rows[0];
      if (!found?.changes || !found.head || !found.checkpoints) {
        throw new Error(
          `there is no hub's Log in ${where} (no changes, log_head or checkpoints table there)`,
        );
      }
      return new PostgresLogReader(pool, client, where);
    } catch (error) {
      client?.release(true);
      await pool.end().catch(() => {});
      throw error;
    }
  }

  async head(): Promise<PostgresLogHead> {
    const { rows } = await this.client.query<{ size: number | null; last: number | null }>(
      "SELECT (SELECT size FROM log_head WHERE id = 1) AS size, (SELECT max(seq) FROM changes) AS last",
    );
    return { headSize: rows[0]?.size ?? undefined, lastSeq: rows[0]?.last ?? 0 };
  }

  /** Every signed checkpoint in the schema, oldest first. */
  async checkpoints(): Promise<Checkpoint[]> {
    const { rows } = await this.client.query<Checkpoint>(
      "SELECT origin, size, root, time, signature FROM checkpoints ORDER BY size",
    );
    return rows;
  }

  /** The Changes after `after`, at most `limit`, as the hub's `GET /log/entries` writes them. */
  async entries(after: number, limit: number): Promise<LogEntries> {
    const { rows } = await this.client.query<ChangeRow>({
      name: "hyperthings-verify-entries",
      text: "SELECT * FROM changes WHERE seq > $1 ORDER BY seq LIMIT $2",
      values: [after, limit],
    });
    return logEntriesOf(rows, after);
  }

  async close(): Promise<void> {
    await this.client.query("ROLLBACK").catch(() => {});
    this.client.release();
    await this.pool.end();
  }
}
