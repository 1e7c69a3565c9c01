// The MqttCredentialStore on SQLite: the embedded broker's credential records in
// `mqtt_credentials` (migration 10), on a connection of its own to the hub's database file.
// They change rarely and never with the Log, so they stay out of the Store's group-commit queue.
import Database from "better-sqlite3";
import type { MqttCredential, MqttCredentialChanges, MqttCredentialStore } from "../../hub/index.js";
import {
  MQTT_CREDENTIAL_COLUMNS,
  mqttCredentialOf,
  mqttCredentialRow,
  type MqttCredentialRow,
} from "../mqtt-credential-rows.js";
import { migrations } from "./sqlite-migrations.js";

/** The migration (its 1-based number) that creates `mqtt_credentials`. */
const MQTT_CREDENTIALS_SCHEMA_VERSION = 10;

export class SqliteMqttCredentialStore implements MqttCredentialStore {
  private readonly db: Database.Database;
  private readonly stmt;

  /** `path`: the database file the SqliteStore has opened (and so migrated) before. */
  constructor(path: string) {
    this.db = new Database(path, { fileMustExist: true });
    try {
      this.db.pragma("journal_mode = WAL");
      this.db.pragma("synchronous = FULL");
      this.db.pragma("busy_timeout = 5000");
      const version = this.db.pragma("user_version", { simple: true }) as number;
      if (version < MQTT_CREDENTIALS_SCHEMA_VERSION || version > migrations.length) {
        throw new Error(
          `The database schema is version ${version}; the MQTT credentials need ${MQTT_CREDENTIALS_SCHEMA_VERSION} to ${migrations.length} (open the SqliteStore first)`,
        );
      }
    } catch (error) {
      this.db.close();
      throw error;
    }
    const db = this.db;
    this.stmt = {
      all: db.prepare<[], MqttCredentialRow>(
        `SELECT ${MQTT_CREDENTIAL_COLUMNS} FROM mqtt_credentials ORDER BY username`,
      ),
      one: db.prepare<[string], MqttCredentialRow>(
        `SELECT ${MQTT_CREDENTIAL_COLUMNS} FROM mqtt_credentials WHERE username = ?`,
      ),
      insert: db.prepare<[MqttCredentialRow]>(
        `INSERT INTO mqtt_credentials (${MQTT_CREDENTIAL_COLUMNS})
         VALUES (@username, @kind, @generation, @issued_at, @issued_by, @last_used_at, @revoked_at,
           @revoked_by, @revoked_because)
         ON CONFLICT (username) DO NOTHING`,
      ),
      update: db.prepare<[MqttCredentialRow & { was_generation: number; was_revoked_at: string | null }]>(
        `UPDATE mqtt_credentials SET kind = @kind, generation = @generation, issued_at = @issued_at,
           issued_by = @issued_by,
           last_used_at = CASE WHEN generation = @generation
             THEN nullif(max(coalesce(last_used_at, ''), coalesce(@last_used_at, '')), '')
             ELSE @last_used_at END,
           revoked_at = @revoked_at, revoked_by = @revoked_by, revoked_because = @revoked_because
         WHERE username = @username AND generation = @was_generation AND revoked_at IS @was_revoked_at`,
      ),
      used: db.prepare<[{ username: string; at: string }]>(
        `UPDATE mqtt_credentials SET last_used_at = max(coalesce(last_used_at, ''), @at)
         WHERE username = @username`,
      ),
    };
  }

  async list(username?: string): Promise<MqttCredential[]> {
    if (username === undefined) return this.stmt.all.all().map(mqttCredentialOf);
    const row = this.stmt.one.get(username);
    return row === undefined ? [] : [mqttCredentialOf(row)];
  }

  /** Every record: the file is one hub's alone, which writes them all itself and never asks for more. */
  async changedSince(): Promise<MqttCredentialChanges> {
    return { records: await this.list(), revision: undefined };
  }

  async replace(record: MqttCredential, previous: MqttCredential | undefined): Promise<boolean> {
    const result =
      previous === undefined
        ? this.stmt.insert.run(mqttCredentialRow(record))
        : this.stmt.update.run({
            ...mqttCredentialRow(record),
            was_generation: previous.generation,
            was_revoked_at: previous.revokedAt ?? null,
          });
    return result.changes === 1;
  }

  async used(times: ReadonlyArray<{ readonly username: string; readonly at: string }>): Promise<void> {
    this.db.transaction(() => {
      for (const { username, at } of times) this.stmt.used.run({ username, at });
    })();
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
