// The SecretStore on PostgreSQL: sealed credentials in `thing_secrets`, in the schema the
// PostgresStore made (migration 1), on a small pool of its own. Secrets change rarely and never
// with the Log, so they stay out of the Store's group-commit queue.
import type pg from "pg";
import type { UnavailableError } from "../../core/index.js";
import type { SecretStore } from "../../hub/index.js";
import { openMigratedPool, sideQuery, type PostgresConnectionOptions } from "./postgres-connection.js";

/** The migration (its 1-based number) that creates `thing_secrets`. */
const SECRETS_SCHEMA_VERSION = 1;

export interface PostgresSecretStoreOptions extends PostgresConnectionOptions {
  /**
   * Why writes are refused now, if they are (the PostgresStore's `writeRefusal`: the schema's
   * lock lost): credentials are written by the hub holding the schema, as the Log is.
   */
  writeRefusal?: () => UnavailableError | undefined;
}

export class PostgresSecretStore implements SecretStore {
  private constructor(
    private readonly pool: pg.Pool,
    /** The URL (without its password) and schema, for messages. */
    private readonly where: string,
    private readonly writeRefusal: () => UnavailableError | undefined,
  ) {}

  /** A statement, refused as unavailable (503, Retry-After) when PostgreSQL cannot be reached. */
  private query<R extends pg.QueryResultRow>(
    write: boolean,
    text: string,
    values: unknown[],
  ): Promise<pg.QueryResult<R>> {
    return sideQuery<R>(
      { pool: this.pool, where: this.where, writeRefusal: this.writeRefusal },
      "credentials",
      write,
      text,
      values,
    );
  }

  /** Opens the secret store of a schema a PostgresStore has opened (and so migrated) before. */
  static async open(options: PostgresSecretStoreOptions): Promise<PostgresSecretStore> {
    const { pool, where } = await openMigratedPool(options, SECRETS_SCHEMA_VERSION, "the secret store needs");
    return new PostgresSecretStore(pool, where, options.writeRefusal ?? (() => undefined));
  }

  async put(thing: string, name: string, sealed: Uint8Array): Promise<void> {
    await this.query(
      true,
      `INSERT INTO thing_secrets (thing, name, sealed) VALUES ($1, $2, $3)
       ON CONFLICT (thing, name) DO UPDATE SET sealed = excluded.sealed`,
      [thing, name, Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength)],
    );
  }

  async get(thing: string): Promise<Map<string, Uint8Array>> {
    const { rows } = await this.query<{ name: string; sealed: Buffer }>(
      false,
      "SELECT name, sealed FROM thing_secrets WHERE thing = $1 ORDER BY name",
      [thing],
    );
    return new Map(rows.map((row) => [row.name, new Uint8Array(row.sealed)]));
  }

  async names(thing: string): Promise<string[]> {
    const { rows } = await this.query<{ name: string }>(
      false,
      "SELECT name FROM thing_secrets WHERE thing = $1 ORDER BY name",
      [thing],
    );
    return rows.map((row) => row.name);
  }

  async remove(thing: string, name?: string): Promise<number> {
    const result =
      name === undefined
        ? await this.query(true, "DELETE FROM thing_secrets WHERE thing = $1", [thing])
        : await this.query(true, "DELETE FROM thing_secrets WHERE thing = $1 AND name = $2", [thing, name]);
    return result.rowCount ?? 0;
  }

  private ended = false;

  async close(): Promise<void> {
    if (this.ended) return;
    this.ended = true;
    await this.pool.end();
  }
}
