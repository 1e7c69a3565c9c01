// The SecretStore on SQLite: sealed credentials in `thing_secrets` (migration 2), on a connection
// of its own to the hub's database file. Secrets change rarely and never with the Log, so they
// stay out of the Store's group-commit queue; SQLite's locking (busy_timeout) orders the writers.
import Database from "better-sqlite3";
import type { SecretStore } from "../../hub/index.js";
import { migrations } from "./sqlite-migrations.js";

/** The migration (its 1-based number) that creates `thing_secrets`. */
const SECRETS_SCHEMA_VERSION = 2;

export interface SqliteSecretStoreOptions {
  /** The database file the SqliteStore has opened (and so migrated) before. */
  path: string;
}

export class SqliteSecretStore implements SecretStore {
  private readonly db: Database.Database;
  private readonly stmt;

  constructor(options: SqliteSecretStoreOptions) {
    if (options.path === ":memory:") {
      throw new Error("SqliteSecretStore needs the database file of a SqliteStore, not :memory:");
    }
    this.db = new Database(options.path, { fileMustExist: true });
    try {
      this.db.pragma("journal_mode = WAL");
      this.db.pragma("synchronous = FULL");
      this.db.pragma("busy_timeout = 5000");
      const version = this.db.pragma("user_version", { simple: true }) as number;
      if (version < SECRETS_SCHEMA_VERSION || version > migrations.length) {
        throw new Error(
          `The database schema is version ${version}; the secret store needs ${SECRETS_SCHEMA_VERSION} to ${migrations.length} (open the SqliteStore first)`,
        );
      }
    } catch (error) {
      this.db.close();
      throw error;
    }
    const db = this.db;
    this.stmt = {
      put: db.prepare<[string, string, Buffer]>(
        `INSERT INTO thing_secrets (thing, name, sealed) VALUES (?, ?, ?)
         ON CONFLICT (thing, name) DO UPDATE SET sealed = excluded.sealed`,
      ),
      get: db.prepare<[string], { name: string; sealed: Buffer }>(
        "SELECT name, sealed FROM thing_secrets WHERE thing = ? ORDER BY name",
      ),
      names: db.prepare<[string], { name: string }>(
        "SELECT name FROM thing_secrets WHERE thing = ? ORDER BY name",
      ),
      removeOne: db.prepare<[string, string]>("DELETE FROM thing_secrets WHERE thing = ? AND name = ?"),
      removeAll: db.prepare<[string]>("DELETE FROM thing_secrets WHERE thing = ?"),
    };
  }

  async put(thing: string, name: string, sealed: Uint8Array): Promise<void> {
    this.stmt.put.run(thing, name, Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength));
  }

  async get(thing: string): Promise<Map<string, Uint8Array>> {
    return new Map(this.stmt.get.all(thing).map((row) => [row.name, new Uint8Array(row.sealed)]));
  }

  async names(thing: string): Promise<string[]> {
    return this.stmt.names.all(thing).map((row) => row.name);
  }

  async remove(thing: string, name?: string): Promise<number> {
    const result = name === undefined ? this.stmt.removeAll.run(thing) : this.stmt.removeOne.run(thing, name);
    return result.changes;
  }

  async close(): Promise<void> {
    if (this.db.open) this.db.close();
  }
}
