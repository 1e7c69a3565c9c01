// The machine's PostgreSQL for tests that need a real one (HYPERTHINGS_TEST_POSTGRES_URL, default
// postgres://root@127.0.0.1:5432/test), and a schema of their own for each test, dropped after.
import { randomBytes } from "node:crypto";
import pg from "pg";

export { servicesRequired } from "./mqtt-broker.js";

export const postgresUrl = process.env.HYPERTHINGS_TEST_POSTGRES_URL || "postgres://root@127.0.0.1:5432/test";

/** Why PostgreSQL cannot be used, or undefined when it answers a query. */
export async function postgresProblem(url: string = postgresUrl): Promise<string | undefined> {
  const client = new pg.Client({ connectionString: url, connectionTimeoutMillis: 3_000 });
  try {
    await client.connect();
    await client.query("SELECT 1");
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  } finally {
    await client.end().catch(() => {});
  }
}

/** A schema name no other test (here or in another process) uses. */
export function temporarySchema(): string {
  return `hyperthings_test_${randomBytes(6).toString("hex")}`;
}

/** Drops a test's schema with everything in it. */
export async function dropSchema(schema: string, url: string = postgresUrl): Promise<void> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
  } finally {
    await client.end();
  }
}
