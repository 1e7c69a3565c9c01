// The machine's PostgreSQL for tests that need a real one (HYPERTHINGS_TEST_POSTGRES_URL, default
// postgres://root@127.0.0.1:5432/test), and a schema of their own for each test, dropped after.
import { randomBytes } from "node:crypto";
import { createConnection, createServer, type Server, type Socket } from "node:net";
import pg from "pg";
import { describe, expect, it, vi } from "vitest";
import { servicesRequired } from "./mqtt-broker.js";

export { servicesRequired };

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

/**
 * `describe(name, body)` when PostgreSQL answers. Otherwise one test in its place that is skipped
 * with the reason, or fails when the run requires the services (HYPERTHINGS_REQUIRE_SERVICES=1).
 */
export function describeWithPostgres(name: string, problem: string | undefined, body: () => void): void {
  if (problem === undefined) describe(name, body);
  else if (!servicesRequired) {
    describe(name, () => {
      it.skip(`skipped: no PostgreSQL at ${postgresUrl} (${problem})`, () => undefined);
    });
  } else {
    describe(name, () => {
      it(`needs PostgreSQL at ${postgresUrl} (HYPERTHINGS_REQUIRE_SERVICES=1)`, () => {
        throw new Error(`no PostgreSQL at ${postgresUrl}: ${problem}`);
      });
    });
  }
}

/**
 * Resolves once exactly one session waits on a lock held by session `pid` (as a commit waits on a
 * row another session holds), asked through `db`; fails after 20 s.
 */
export async function blockedBy(db: pg.Client, pid: number | undefined): Promise<void> {
  await vi.waitFor(
    async () => {
      const { rows } = await db.query<{ n: number }>(
        "SELECT count(*)::int AS n FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid))",
        [pid],
      );
      expect(rows[0]?.n).toBe(1);
    },
    { timeout: 20_000, interval: 50 },
  );
}

/** The test database's URL for a store in `schema`. */
export function storeUrl(schema: string): string {
  return `${postgresUrl}${postgresUrl.includes("?") ? "&" : "?"}schema=${schema}`;
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

/**
 * A TCP proxy between the hub and PostgreSQL that a test cuts (every connection dropped, new ones
 * refused: PostgreSQL down or restarting), stalls (nothing passed on either way, connections kept,
 * new ones accepted and never answered: a network that drops packets) and opens again on its port.
 */
export class PostgresProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly pairs = new Set<{ client: Socket; upstream: Socket; stalled: boolean }>();
  private stalled = false;
  port = 0;

  constructor(private readonly target: URL = new URL(postgresUrl)) {}

  /** Listens on `port` (0 the first time: a free one), passing on what new connections send. */
  async open(port = this.port): Promise<void> {
    this.stalled = false;
    if (this.server !== undefined) return;
    const server = createServer((client) => {
      this.track(client);
      if (this.stalled) return;
      const upstream = createConnection({
        host: this.target.hostname,
        port: Number(this.target.port || 5432),
      });
      this.track(upstream);
      const pair = { client, upstream, stalled: false };
      this.pairs.add(pair);
      client.pipe(upstream).pipe(client);
      // A stalled pair's ends never hear of each other: the server keeps its session, as it does
      // when the network to a client that went away drops everything.
      client.on("close", () => {
        this.pairs.delete(pair);
        if (!pair.stalled) upstream.destroy();
      });
      upstream.on("close", () => {
        if (!pair.stalled) client.destroy();
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once("error", reject);
      server.listen({ host: "127.0.0.1", port }, () => resolve());
    });
    this.server = server;
    const address = server.address();
    if (typeof address === "object" && address !== null) this.port = address.port;
  }

  private track(socket: Socket): void {
    this.sockets.add(socket);
    socket.on("close", () => this.sockets.delete(socket));
    socket.on("error", () => undefined);
  }

  /** Drops every connection and stops listening: connections are refused. */
  async cut(): Promise<void> {
    const server = this.server;
    this.server = undefined;
    for (const socket of this.sockets) socket.destroy();
    this.pairs.clear();
    if (server !== undefined) await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /**
   * Passes nothing more on, either way, on the connections there are (for good) and on new ones
   * (until `open`), and keeps them all open.
   */
  stall(): void {
    this.stalled = true;
    for (const pair of this.pairs) {
      pair.stalled = true;
      pair.client.unpipe();
      pair.upstream.unpipe();
      pair.client.pause();
      pair.upstream.pause();
    }
  }

  /**
   * Passes nothing more on, either way, on the one connection whose end towards PostgreSQL has
   * the local port `clientPort` (pg_stat_activity's client_port of its session), and keeps it
   * open: that session's network is cut, the other connections go on. False when there is none.
   */
  stallConnection(clientPort: number): boolean {
    for (const pair of this.pairs) {
      if (pair.upstream.localPort !== clientPort) continue;
      pair.stalled = true;
      pair.client.unpipe();
      pair.upstream.unpipe();
      pair.client.pause();
      pair.upstream.pause();
      return true;
    }
    return false;
  }

  /** The test's PostgreSQL URL through this proxy, with the query string given. */
  url(query: string): string {
    const url = new URL(postgresUrl);
    url.host = `127.0.0.1:${this.port}`;
    return `${url.toString()}${url.search === "" ? "?" : "&"}${query}`;
  }
}
