// The MqttCredentialStore on PostgreSQL: the embedded broker's credential records in
// `mqtt_credentials` (migration 4), shared by a hub's replicas, on a small pool of its own.
import type pg from "pg";
import { UnavailableError } from "../../core/index.js";
import type { MqttCredential, MqttCredentialKind, MqttCredentialStore } from "../../hub/index.js";
import {
  isLostConnection,
  openMigratedPool,
  unwritten,
  UNWRITABLE_RETRY_AFTER_S,
  type PostgresConnectionOptions,
} from "./postgres-connection.js";

/** The migration (its 1-based number) that creates `mqtt_credentials`. */
const MQTT_CREDENTIALS_SCHEMA_VERSION = 4;

interface Row {
  username: string;
  kind: string;
  generation: number;
  issued_at: string | null;
  issued_by: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
  revoked_by: string | null;
  revoked_because: string | null;
}

const COLUMNS =
  "username, kind, generation, issued_at, issued_by, last_used_at, revoked_at, revoked_by, revoked_because";

function recordOf(row: Row): MqttCredential {
  return {
    username: row.username,
    kind: row.kind as MqttCredentialKind,
    generation: row.generation,
    ...(row.issued_at !== null && { issuedAt: row.issued_at }),
    ...(row.issued_by !== null && { issuedBy: row.issued_by }),
    ...(row.last_used_at !== null && { lastUsedAt: row.last_used_at }),
    ...(row.revoked_at !== null && { revokedAt: row.revoked_at }),
    ...(row.revoked_by !== null && { revokedBy: row.revoked_by }),
    ...(row.revoked_because !== null && { revokedBecause: row.revoked_because }),
  };
}

function valuesOf(record: MqttCredential): unknown[] {
  return [
    record.username,
    record.kind,
    record.generation,
    record.issuedAt ?? null,
    record.issuedBy ?? null,
    record.lastUsedAt ?? null,
    record.revokedAt ?? null,
    record.revokedBy ?? null,
    record.revokedBecause ?? null,
  ];
}

export class PostgresMqttCredentialStore implements MqttCredentialStore {
  private ended = false;

  private constructor(
    private readonly pool: pg.Pool,
    /** The URL (without its password) and schema, for messages. */
    private readonly where: string,
    private readonly writeRefusal: () => UnavailableError | undefined,
  ) {}

  /** Opens the records of a schema a PostgresStore has opened (and so migrated) before. */
  static async open(
    options: PostgresConnectionOptions & { writeRefusal?: () => UnavailableError | undefined },
  ): Promise<PostgresMqttCredentialStore> {
    const { pool, where } = await openMigratedPool(
      options,
      MQTT_CREDENTIALS_SCHEMA_VERSION,
      "the MQTT credentials need",
    );
    return new PostgresMqttCredentialStore(pool, where, options.writeRefusal ?? (() => undefined));
  }

  /** A statement, refused as unavailable (503, Retry-After) when PostgreSQL cannot be reached. */
  private async query<R extends pg.QueryResultRow>(
    write: boolean,
    text: string,
    values: unknown[],
  ): Promise<pg.QueryResult<R>> {
    const refusal = write ? this.writeRefusal() : undefined;
    if (refusal) throw refusal;
    try {
      return await this.pool.query<R>(text, values);
    } catch (error) {
      if (write) throw unwritten(error, `${this.where}, MQTT credentials`);
      if (!isLostConnection(error)) throw error;
      const refused = new UnavailableError(
        `The hub could not read MQTT credentials from PostgreSQL (${this.where}: ${(error as Error).message}). Retry shortly`,
        UNWRITABLE_RETRY_AFTER_S,
      );
      refused.cause = error;
      throw refused;
    }
  }

  async list(username?: string): Promise<MqttCredential[]> {
    const { rows } =
      username === undefined
        ? await this.query<Row>(false, `SELECT ${COLUMNS} FROM mqtt_credentials ORDER BY username`, [])
        : await this.query<Row>(false, `SELECT ${COLUMNS} FROM mqtt_credentials WHERE username = $1`, [
            username,
          ]);
    return rows.map(recordOf);
  }

  async replace(record: MqttCredential, previous: MqttCredential | undefined): Promise<boolean> {
    const result =
      previous === undefined
        ? await this.query(
            true,
            `INSERT INTO mqtt_credentials (${COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (username) DO NOTHING`,
            valuesOf(record),
          )
        : await this.query(
            true,
            `UPDATE mqtt_credentials SET kind = $2, generation = $3, issued_at = $4, issued_by = $5,
               last_used_at = CASE WHEN generation = $3 THEN greatest(last_used_at, $6) ELSE $6 END,
               revoked_at = $7, revoked_by = $8, revoked_because = $9
             WHERE username = $1 AND generation = $10 AND revoked_at IS NOT DISTINCT FROM $11`,
            [...valuesOf(record), previous.generation, previous.revokedAt ?? null],
          );
    return result.rowCount === 1;
  }

  async used(times: ReadonlyArray<{ readonly username: string; readonly at: string }>): Promise<void> {
    if (times.length === 0) return;
    await this.query(
      true,
      `UPDATE mqtt_credentials c SET last_used_at = greatest(c.last_used_at, u.at)
         FROM unnest($1::text[], $2::text[]) AS u(username, at) WHERE c.username = u.username`,
      [times.map((t) => t.username), times.map((t) => t.at)],
    );
  }

  async close(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await this.pool.end();
  }
}
