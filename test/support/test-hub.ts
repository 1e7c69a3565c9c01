// Starts a real hub on port 0 with a fresh data directory, for end-to-end tests.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Logger } from "pino";
import { thingPath } from "../../src/api/index.js";
import { startHub, createLogger, type RunningHub } from "../../src/cli/index.js";
import type { Change } from "../../src/core/index.js";
import { loadConfig, type ConfigOverrides } from "../../src/hub/index.js";

export interface TestHub extends RunningHub {
  token: string;
  dataDir: string;
  /** fetch against the hub, with the admin token unless `auth: false`. */
  request(path: string, init?: RequestInit & { auth?: boolean | string }): Promise<Response>;
  stop(): Promise<void>;
}

export async function startTestHub(
  overrides: ConfigOverrides = {},
  env: NodeJS.ProcessEnv = {},
  options: { clock?: () => Date; logger?: Logger } = {},
): Promise<TestHub> {
  const dataDir = overrides.dataDir ?? mkdtempSync(join(tmpdir(), "hyperthings-test-"));
  // Observation reaches out to every Thing's forms: only the tests that want it turn it on. A stop
  // does not keep the test's own idle keep-alive connections for a next request that never comes
  // (the tests of the stop's grace spawn `things serve`, which has it).
  const config = loadConfig(
    { port: 0, logLevel: "silent", observe: false, stopGraceMs: 0, ...overrides, dataDir },
    env,
  );
  const running = await startHub(config, {
    logger: options.logger ?? createLogger(config.logLevel),
    ...(options.clock && { clock: options.clock }),
  });
  const token = running.hub.adminToken.token;
  return {
    ...running,
    // Which replica runs the MQTT gateway changes while it runs.
    get mqtt() {
      return running.mqtt;
    },
    token,
    dataDir,
    request(path, init = {}) {
      const { auth = true, ...rest } = init;
      const headers = new Headers(rest.headers);
      if (auth !== false) headers.set("authorization", `Bearer ${typeof auth === "string" ? auth : token}`);
      return fetch(`${running.url}${path}`, { ...rest, headers });
    },
    async stop() {
      await running.close();
      if (overrides.dataDir === undefined) rmSync(dataDir, { recursive: true, force: true });
    },
  };
}

/** Puts a TD at /things/{its id}, new (201) or replacing one (204); throws with the hub's answer otherwise. */
export async function putTd(hub: TestHub, td: Record<string, unknown>): Promise<void> {
  const res = await hub.request(thingPath(td.id as string), {
    method: "PUT",
    headers: { "content-type": "application/td+json" },
    body: JSON.stringify(td),
  });
  if (res.status !== 201 && res.status !== 204) {
    throw new Error(`PUT ${String(td.id)} answered ${res.status}: ${await res.text()}`);
  }
}

/**
 * Registers a new Thing (PUT /things/{id}, 201 expected) and, when given, the credentials the hub
 * uses with it (PUT …/credentials, 200 expected); throws with the hub's answer otherwise.
 */
export async function registerThing(
  hub: TestHub,
  id: string,
  td: Record<string, unknown>,
  credentials?: { username: string; password: string },
): Promise<void> {
  const put = await hub.request(thingPath(id), {
    method: "PUT",
    headers: { "content-type": "application/td+json" },
    body: JSON.stringify(td),
  });
  if (put.status !== 201) throw new Error(`PUT ${id} answered ${put.status}: ${await put.text()}`);
  if (credentials === undefined) return;
  const set = await hub.request(`${thingPath(id)}/credentials`, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(credentials),
  });
  if (set.status !== 200)
    throw new Error(`PUT ${id}/credentials answered ${set.status}: ${await set.text()}`);
}

/** A minimal valid TD 1.1, with overrides. */
export function minimalTd(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    title: "Lamp",
    securityDefinitions: { nosec_sc: { scheme: "nosec" } },
    security: "nosec_sc",
    ...overrides,
  };
}

/** The first Change after `after` (a seq) that matches, from the Log then live; fails after a bound. */
export function changeAfter(
  hub: TestHub,
  after: number,
  matches: (change: Change) => boolean,
  waitMs = 15_000,
): Promise<Change> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      follower.stop();
      reject(new Error(`no such Change after seq ${after} within ${waitMs} ms`));
    }, waitMs);
    const follower = hub.hub.follow(
      (change) => {
        if (!matches(change)) return;
        clearTimeout(timer);
        follower.stop();
        resolve(change);
      },
      { after },
    );
  });
}

/**
 * Bulk for a stream to carry: `calls` ingest calls of `perCall` reports each of the Thing's
 * object property `config`, `{ level, note }` with a note of `noteBytes` characters.
 */
export async function reportBulk(
  hub: TestHub,
  id: string,
  calls: number,
  perCall: number,
  noteBytes: number,
): Promise<void> {
  const note = "x".repeat(noteBytes);
  for (let i = 0; i < calls; i++) {
    const reports = Array.from({ length: perCall }, (_, k) => ({
      kind: "reported",
      affordance: "config",
      value: { level: i * perCall + k, note },
    }));
    await hub.hub.ingest(id, reports, { actor: "test", via: "test" });
  }
}
