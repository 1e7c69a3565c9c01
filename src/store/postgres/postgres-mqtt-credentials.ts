// The MqttCredentialStore on PostgreSQL: the embedded broker's credential records in
// `mqtt_credentials` (migrations 4 and 5), shared by a hub's replicas, on a small pool of its own.
import type pg from "pg";
import type { UnavailableError } from "../../core/index.js";
import type { MqttCredential, MqttCredentialChanges, MqttCredentialStore } from "../../hub/index.js";
import {
  MQTT_CREDENTIAL_COLUMNS,
  mqttCredentialOf,
  mqttCredentialValues,
  type MqttCredentialRow,
} from "../mqtt-credential-rows.js";
import { openMigratedPool, sideQuery, type PostgresConnectionOptions } from "./postgres-connection.js";

/** The migration (its 1-based number) that gives `mqtt_credentials` its revisions. */
const MQTT_CREDENTIALS_SCHEMA_VERSION = 5;

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
  private query<R extends pg.QueryResultRow>(
    write: boolean,
    text: string,
    values: unknown[],
  ): Promise<pg.QueryResult<R>> {
    return sideQuery<R>(
      { pool: this.pool, where: this.where, writeRefusal: this.writeRefusal },
      "MQTT credentials",
      write,
      text,
      values,
    );
  }

  async list(username?: string): Promise<MqttCredential[]> {
    const { rows } =
      username === undefined
        ? await this.query<MqttCredentialRow>(
            false,
            `SELECT ${MQTT_CREDENTIAL_COLUMNS} FROM mqtt_credentials ORDER BY username`,
            [],
          )
        : await this.query<MqttCredentialRow>(
            false,
            `SELECT ${MQTT_CREDENTIAL_COLUMNS} FROM mqtt_credentials WHERE username = $1`,
            [username],
          );
    return rows.map(mqttCredentialOf);
  }

  /**
   * The records whose revision is past `revision`, with the head's: one index probe when none was
   * written. A head behind `revision` (the schema restored from a dump meanwhile) reads them all.
   */
  async changedSince(revision: number | undefined): Promise<MqttCredentialChanges> {
    const read = (after: number) =>
      this.query<Partial<MqttCredentialRow> & { head: string }>(
        false,
        `SELECT h.revision::text AS head, ${MQTT_CREDENTIAL_COLUMNS.replace(/(\w+)/g, "c.$1")}
           FROM mqtt_credentials_head h LEFT JOIN mqtt_credentials c ON c.revision > $1
          ORDER BY c.revision`,
        [after],
      );
    let { rows } = await read(revision ?? -1);
    let head = Number(rows[0]?.head ?? 0);
    if (revision !== undefined && head < revision) {
      ({ rows } = await read(-1));
      head = Number(rows[0]?.head ?? 0);
    }
    const records = rows
      .filter((row): row is MqttCredentialRow & { head: string } => row.username != null)
      .map(mqttCredentialOf);
    return { records, revision: head };
  }

  async replace(record: MqttCredential, previous: MqttCredential | undefined): Promise<boolean> {
    const result =
      previous === undefined
        ? await this.query(
            true,
            `INSERT INTO mqtt_credentials (${MQTT_CREDENTIAL_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
             ON CONFLICT (username) DO NOTHING`,
            mqttCredentialValues(record),
          )
        : await this.query(
            true,
            `UPDATE mqtt_credentials SET kind = $2, generation = $3, issued_at = $4, issued_by = $5,
               last_used_at = CASE WHEN generation = $3 THEN greatest(last_used_at, $6) ELSE $6 END,
               revoked_at = $7, revoked_by = $8, revoked_because = $9
             WHERE username = $1 AND generation = $10 AND revoked_at IS NOT DISTINCT FROM $11`,
            [...mqttCredentialValues(record), previous.generation, previous.revokedAt ?? null],
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
