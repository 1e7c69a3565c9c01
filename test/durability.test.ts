// Acknowledged means durable: every Change the hub answered for survives a restart, a graceful
// stop and a crash (SIGKILL of a real `things serve` process), and TDs and Log stay in step.
import { spawn, type ChildProcess } from "node:child_process";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { once } from "node:events";
import { createServer, type IncomingMessage } from "node:http";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import { HTTP_BINDING_DEFAULTS } from "../src/bindings/index.js";
import { minimalTd, registerThing, startTestHub } from "./support/test-hub.js";

const BIN = fileURLToPath(new URL("../bin/things.js", import.meta.url));
const BUILT_CLI = new URL("../dist/cli/main.js", import.meta.url);
const ADMIN_TOKEN = "durability-admin-token-0123456789";
/** The longest a child process may take to start or to exit before the test fails. */
const PROCESS_BOUND_MS = 20_000;

const dataDirs: string[] = [];
function freshDataDir(): string {
  const dir = mkdtempSync(join(tmpdir(), "hyperthings-durability-"));
  dataDirs.push(dir);
  return dir;
}

afterEach(() => {
  for (const dir of dataDirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

function tdFor(i: number): Record<string, unknown> {
  const id = `urn:example:durable:${String(i).padStart(4, "0")}`;
  return minimalTd({ id, title: `Durable ${i}` });
}

describe("durability of the directory in-process", () => {
  it("keeps 200 TDs registered concurrently, and their 200 Changes, across a restart on the same data directory", async () => {
    const dataDir = freshDataDir();
    const first = await startTestHub({ dataDir });
    const tds = Array.from({ length: 200 }, (_, i) => tdFor(i));
    const answers = await Promise.all(
      tds.map((td) =>
        first.request(thingPath(String(td.id)), {
          method: "PUT",
          headers: { "content-type": "application/td+json" },
          body: JSON.stringify(td),
        }),
      ),
    );
    expect(answers.map((r) => r.status)).toEqual(tds.map(() => 201));
    await first.stop();

    const second = await startTestHub({ dataDir });
    try {
      const health = (await (await second.request("/health")).json()) as { things: number; lastSeq: number };
      expect(health).toMatchObject({ things: 200, lastSeq: 200 });
      const listed = (await (await second.request("/things?limit=1000")).json()) as Array<
        Record<string, unknown>
      >;
      expect(listed.map((td) => td.id)).toEqual(tds.map((td) => td.id));
      for (const td of listed) {
        expect(td["@context"]).toContain("https://www.w3.org/2022/wot/td/v1.1");
        expect(td.title).toBe(tds.find((t) => t.id === td.id)?.title);
      }
      const changes = await second.hub.store.changesAfter(0, 1000);
      expect(changes.map((c) => c.seq)).toEqual(Array.from({ length: 200 }, (_, i) => i + 1));
      expect(new Set(changes.map((c) => c.thing)).size).toBe(200);
      expect(changes.every((c) => c.kind === "described" && c.previous === undefined)).toBe(true);
      // The same admin token, kept in the data directory, still works.
      expect(second.token).toBe(first.token);
    } finally {
      await second.stop();
    }
  });
});

describe("a request in flight when the hub stops", () => {
  it("is answered, and its connection closed, so that it does not hold the stop until the client sends again", async () => {
    const hub = await startTestHub({ mqtt: false });
    const id = "urn:example:durable:in-flight";
    await registerThing(
      hub,
      id,
      minimalTd({ id, properties: { power: { type: "number", forms: [{ href: "http://127.0.0.1:9/p" }] } } }),
    );
    const body = JSON.stringify({ kind: "reported", affordance: "power", value: 7 });
    const socket = connect(Number(new URL(hub.url).port), "127.0.0.1");
    await once(socket, "connect");
    let answer = "";
    socket.on("data", (chunk: Buffer) => (answer += chunk.toString()));
    const closed = once(socket, "close");
    socket.write(
      `POST ${thingPath(id)}/changes HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${hub.token}\r\n` +
        `Content-Type: application/json\r\nContent-Length: ${body.length}\r\nExpect: 100-continue\r\n\r\n`,
    );
    // "100 Continue": the hub has taken the request in; its body comes once the stop has begun.
    while (!answer.includes("100 Continue")) await once(socket, "data");
    const stopped = hub.stop();
    socket.write(body);
    let bound: NodeJS.Timeout | undefined;
    const late = new Promise<string>((resolve) => (bound = setTimeout(() => resolve("still open"), 10_000)));
    try {
      expect(await Promise.race([closed.then(() => "closed"), late])).toBe("closed");
      expect(await Promise.race([stopped.then(() => "stopped"), late])).toBe("stopped");
    } finally {
      clearTimeout(bound);
      socket.destroy();
    }
    expect(answer).toMatch(/HTTP\/1\.1 201 Created\r\n/);
    expect(answer).toMatch(/\r\nconnection: close\r\n/i);
  });
});

describe("a request whose body has not arrived when the hub stops", () => {
  it("is cut, so that a client trickling its body does not hold the stop, and nothing of it is recorded", async () => {
    const dataDir = freshDataDir();
    const hub = await startTestHub({ mqtt: false, dataDir });
    const id = "urn:example:durable:trickle";
    await registerThing(
      hub,
      id,
      minimalTd({ id, properties: { power: { type: "number", forms: [{ href: "http://127.0.0.1:9/p" }] } } }),
    );
    const before = (await hub.hub.store.changesAfter(0, 1000)).length;
    const socket = connect(Number(new URL(hub.url).port), "127.0.0.1");
    await once(socket, "connect");
    let answer = "";
    socket.on("data", (chunk: Buffer) => (answer += chunk.toString()));
    socket.on("error", () => undefined);
    const closed = once(socket, "close");
    socket.write(
      `POST ${thingPath(id)}/changes HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${hub.token}\r\n` +
        `Content-Type: application/json\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n`,
    );
    while (!answer.includes("100 Continue")) await once(socket, "data");
    // A few bytes of the 1,000 announced; the rest never comes (Node no longer times it out).
    socket.write('{"kind":');
    const stopped = hub.stop();
    let bound: NodeJS.Timeout | undefined;
    const late = new Promise<string>((resolve) => (bound = setTimeout(() => resolve("still open"), 10_000)));
    try {
      expect(await Promise.race([stopped.then(() => "stopped"), late])).toBe("stopped");
      expect(await Promise.race([closed.then(() => "closed"), late])).toBe("closed");
    } finally {
      clearTimeout(bound);
      socket.destroy();
    }
    expect(answer).not.toMatch(/HTTP\/1\.1 20\d/);
    const reopened = await startTestHub({ mqtt: false, dataDir });
    try {
      expect((await reopened.hub.store.changesAfter(0, 1000)).length).toBe(before);
    } finally {
      await reopened.stop();
    }
  });
});

interface ServeProcess {
  child: ChildProcess;
  url: string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** What it wrote on stderr so far (its log, with --log-level other than silent). */
  stderr: () => string;
}

/** `things serve` in a child process, on a free port; resolves once it printed its URL. */
async function serve(dataDir: string, extra: readonly string[] = []): Promise<ServeProcess> {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith("HYPERTHINGS_")) env[name] = value;
  }
  env.HYPERTHINGS_ADMIN_TOKEN = ADMIN_TOKEN;
  const child = spawn(
    process.execPath,
    [BIN, "serve", "--port", "0", "--data", dataDir, "--log-level", "silent", ...extra],
    {
      env,
      stdio: ["ignore", "pipe", "pipe"],
    },
  );
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once("close", (code, signal) => resolve({ code, signal }));
  });
  let stdout = "";
  let stderr = "";
  child.stderr?.on("data", (chunk: Buffer) => (stderr += chunk.toString()));
  const url = await new Promise<string>((resolve, reject) => {
    const bound = setTimeout(() => {
      child.kill("SIGKILL");
      reject(
        new Error(
          `things serve printed no URL within ${PROCESS_BOUND_MS} ms; stdout: ${stdout} stderr: ${stderr}`,
        ),
      );
    }, PROCESS_BOUND_MS);
    child.stdout?.on("data", (chunk: Buffer) => {
      stdout += chunk.toString();
      const match = /listening on (http:\/\/\S+)/.exec(stdout);
      if (match?.[1]) {
        clearTimeout(bound);
        resolve(match[1]);
      }
    });
    void exited.then(({ code, signal }) => {
      clearTimeout(bound);
      reject(
        new Error(`things serve exited (code ${code}, signal ${signal}) before listening; stderr: ${stderr}`),
      );
    });
  });
  return { child, url, exited, stderr: () => stderr };
}

async function exitOf(
  process: ServeProcess,
): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let bound: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    bound = setTimeout(
      () => reject(new Error(`the hub did not exit within ${PROCESS_BOUND_MS} ms`)),
      PROCESS_BOUND_MS,
    );
  });
  try {
    return await Promise.race([process.exited, timeout]);
  } finally {
    clearTimeout(bound);
  }
}

function putTo(url: string, td: Record<string, unknown>): Promise<Response> {
  return fetch(`${url}${thingPath(String(td.id))}`, {
    method: "PUT",
    headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/td+json" },
    body: JSON.stringify(td),
  });
}

async function healthOf(url: string): Promise<{ things: number; lastSeq: number }> {
  return (await (await fetch(`${url}/health`)).json()) as { things: number; lastSeq: number };
}

describe("durability of a `things serve` process", () => {
  const running: ServeProcess[] = [];
  beforeAll(() => {
    if (!existsSync(BUILT_CLI))
      throw new Error("dist/ is missing: run `npm run build` first (`npm test` does)");
  });
  afterEach(async () => {
    for (const p of running.splice(0)) {
      if (p.child.exitCode === null && p.child.signalCode === null) {
        p.child.kill("SIGKILL");
        await p.exited;
      }
    }
  });
  async function start(dataDir: string, extra: readonly string[] = []): Promise<ServeProcess> {
    const p = await serve(dataDir, extra);
    running.push(p);
    return p;
  }

  it("keeps every acknowledged TD when the process is killed with SIGKILL, even with writes in flight", async () => {
    const dataDir = freshDataDir();
    const first = await start(dataDir);
    const acknowledged = new Set<string>();

    // One at a time: each is acknowledged before the next is sent.
    for (let i = 0; i < 20; i++) {
      const td = tdFor(i);
      const res = await putTo(first.url, td);
      expect(res.status).toBe(201);
      acknowledged.add(String(td.id));
    }

    // Then a burst, killed as soon as half of it is acknowledged.
    const burst = Array.from({ length: 300 }, (_, i) => tdFor(1000 + i));
    let killed = false;
    const settled = await Promise.allSettled(
      burst.map(async (td) => {
        const res = await putTo(first.url, td);
        if (res.status === 201) acknowledged.add(String(td.id));
        if (!killed && acknowledged.size >= 20 + burst.length / 2) {
          killed = true;
          first.child.kill("SIGKILL");
        }
        return res.status;
      }),
    );
    if (!killed) first.child.kill("SIGKILL");
    expect((await exitOf(first)).signal).toBe("SIGKILL");
    // Whatever was not refused is either acknowledged (201) or lost with the connection.
    for (const outcome of settled) if (outcome.status === "fulfilled") expect(outcome.value).toBe(201);
    expect(acknowledged.size).toBeGreaterThanOrEqual(20 + burst.length / 2);

    const second = await start(dataDir);
    for (const id of acknowledged) {
      const res = await fetch(`${second.url}${thingPath(id)}`);
      expect(res.status, id).toBe(200);
      expect(((await res.json()) as { id: string }).id).toBe(id);
    }
    const health = await healthOf(second.url);
    expect(health.things).toBeGreaterThanOrEqual(acknowledged.size);
    expect(health.things).toBeLessThanOrEqual(20 + burst.length);
    // Each registration is a TD and a Change, committed together: a crash never splits them.
    expect(health.lastSeq).toBe(health.things);
  });

  it("exits with code 0 on SIGTERM, ending open event streams, and keeps what it acknowledged", async () => {
    const dataDir = freshDataDir();
    const first = await start(dataDir);
    const td = tdFor(1);
    expect((await putTo(first.url, td)).status).toBe(201);

    const events = await fetch(`${first.url}/events`, { signal: AbortSignal.timeout(PROCESS_BOUND_MS) });
    expect(events.status).toBe(200);
    const reader = events.body?.getReader();
    first.child.kill("SIGTERM");
    expect(await exitOf(first)).toEqual({ code: 0, signal: null });
    // The stream ended cleanly with the process: the reader reaches its end, no error.
    for (;;) {
      const chunk = await reader?.read();
      if (!chunk || chunk.done) break;
    }

    const second = await start(dataDir);
    const res = await fetch(`${second.url}${thingPath(String(td.id))}`);
    expect(res.status).toBe(200);
    expect(await healthOf(second.url)).toMatchObject({ things: 1, lastSeq: 1 });
  });

  it("answers requests that arrive while it stops on SIGTERM with a problem document and Retry-After, resets none, and keeps every Change it acknowledged", async () => {
    const dataDir = freshDataDir();
    const first = await start(dataDir, ["--no-observe", "--no-mqtt"]);
    const td = minimalTd({
      id: "urn:example:durable:meter",
      properties: { power: { type: "number", forms: [{ href: "http://127.0.0.1:9/power" }] } },
    });
    expect((await putTo(first.url, td)).status).toBe(201);
    const acknowledged: number[] = [];
    const refused: { contentType: string | null; retryAfter: string | null; body: string }[] = [];
    const failures: string[] = [];
    let stop = false;
    // Producers that keep sending, each over its own keep-alive connection, until told to wait.
    const producer = async (): Promise<void> => {
      while (!stop) {
        try {
          const res = await fetch(`${first.url}${thingPath(String(td.id))}/changes`, {
            method: "POST",
            headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
            body: JSON.stringify({ kind: "reported", affordance: "power", value: acknowledged.length }),
          });
          const body = await res.text();
          if (res.status === 201) acknowledged.push(...(JSON.parse(body) as { seqs: number[] }).seqs);
          else if (res.status === 503) {
            refused.push({
              contentType: res.headers.get("content-type"),
              retryAfter: res.headers.get("retry-after"),
              body,
            });
            // A client that honours Retry-After comes back later (the hub is gone by then).
            return;
          } else failures.push(`${res.status} ${body}`);
        } catch (error) {
          const code = (error as { cause?: { code?: string } }).cause?.code ?? String(error);
          // Refused: the hub no longer listens, so the request was never taken.
          if (code === "ECONNREFUSED") stop = true;
          else failures.push(code);
        }
      }
    };
    const producers = Array.from({ length: 32 }, () => producer());
    while (acknowledged.length < 200) await new Promise((resolve) => setImmediate(resolve));
    first.child.kill("SIGTERM");
    expect(await exitOf(first)).toEqual({ code: 0, signal: null });
    stop = true;
    await Promise.all(producers);

    // No request was reset mid-way (its client could not tell whether it was recorded), and
    // what came while the hub stopped was refused in the API's own words.
    expect(failures).toEqual([]);
    for (const answer of refused) {
      expect(answer.contentType).toMatch(/^application\/problem\+json/);
      expect(answer.retryAfter).toMatch(/^\d+$/);
      expect(JSON.parse(answer.body)).toMatchObject({
        status: 503,
        type: "urn:hyperthings:problem:unavailable",
      });
    }

    const second = await start(dataDir, ["--no-observe", "--no-mqtt"]);
    const res = await fetch(`${second.url}${thingPath(String(td.id))}/history?order=asc&limit=10000`);
    const page = (await res.json()) as { changes: { seq: number }[] };
    const recorded = new Set(page.changes.map((c) => c.seq));
    expect(acknowledged.filter((seq) => !recorded.has(seq))).toEqual([]);
  });

  it("keeps every acknowledged Change when its -wal file is deleted while it runs and it is then killed, and says so in its log and /health", async () => {
    const dataDir = freshDataDir();
    const first = await start(dataDir, ["--no-observe", "--no-mqtt", "--log-level", "error"]);
    const td = minimalTd({
      id: "urn:example:durable:wal",
      properties: { power: { type: "number", forms: [{ href: "http://127.0.0.1:9/power" }] } },
    });
    expect((await putTo(first.url, td)).status).toBe(201);
    const acknowledged: number[] = [];
    const report = async (value: number): Promise<void> => {
      const res = await fetch(`${first.url}${thingPath(String(td.id))}/changes`, {
        method: "POST",
        headers: { authorization: `Bearer ${ADMIN_TOKEN}`, "content-type": "application/json" },
        body: JSON.stringify({ kind: "reported", affordance: "power", value }),
      });
      expect(res.status).toBe(201);
      acknowledged.push(...((await res.json()) as { seqs: number[] }).seqs);
    };
    for (let i = 0; i < 10; i++) await report(i);
    // An operator "cleans temporary files": every Change so far is in the WAL, none checkpointed.
    rmSync(join(dataDir, "hyperthings.db-wal"));
    // Found with nothing written meanwhile (the periodic check), and logged.
    const logged = /hyperthings\.db-wal was deleted while the hub ran: every commit is now checkpointed/;
    let bound: NodeJS.Timeout | undefined;
    const late = new Promise<"late">(
      (resolve) => (bound = setTimeout(() => resolve("late"), PROCESS_BOUND_MS)),
    );
    try {
      while (!logged.test(first.stderr())) {
        const more = once(first.child.stderr ?? first.child, "data").then(() => "more" as const);
        if ((await Promise.race([more, late])) === "late") break;
      }
    } finally {
      clearTimeout(bound);
    }
    expect(first.stderr()).toMatch(logged);
    const health = (await (await fetch(`${first.url}/health`)).json()) as {
      status: string;
      storage?: { problemSince: string; reason: string };
    };
    expect(health.status).toBe("degraded");
    expect(health.storage?.reason).toMatch(logged);
    // Written after it: each is in the database before it is acknowledged.
    for (let i = 10; i < 20; i++) await report(i);
    first.child.kill("SIGKILL");
    expect((await exitOf(first)).signal).toBe("SIGKILL");

    const second = await start(dataDir, ["--no-observe", "--no-mqtt"]);
    expect(await healthOf(second.url)).toMatchObject({ things: 1, lastSeq: 21 });
    const res = await fetch(`${second.url}${thingPath(String(td.id))}/history?order=asc&limit=100`);
    const page = (await res.json()) as { changes: { seq: number }[] };
    const recorded = new Set(page.changes.map((c) => c.seq));
    expect(acknowledged.filter((seq) => !recorded.has(seq))).toEqual([]);
  });

  it(
    "on SIGTERM gives up the commands waiting on a Thing that does not answer, answers their clients 503 and records them as interrupted, well before the binding's timeout",
    async () => {
      // A device that takes requests and never answers them.
      const requests: IncomingMessage[] = [];
      const sockets = new Set<Socket>();
      const device = createServer((request) => requests.push(request));
      device.on("connection", (socket: Socket) => sockets.add(socket));
      device.listen(0, "127.0.0.1");
      await once(device, "listening");
      const address = device.address();
      const port = typeof address === "object" && address !== null ? address.port : 0;
      try {
        const dataDir = freshDataDir();
        const first = await start(dataDir, ["--no-observe", "--no-mqtt"]);
        const td = minimalTd({
          id: "urn:example:durable:silent",
          properties: { level: { type: "number", forms: [{ href: `http://127.0.0.1:${port}/level` }] } },
          actions: { reboot: { forms: [{ href: `http://127.0.0.1:${port}/reboot` }] } },
        });
        expect((await putTo(first.url, td)).status).toBe(201);
        const authorization = `Bearer ${ADMIN_TOKEN}`;
        const path = `${first.url}${thingPath(String(td.id))}`;
        const write = fetch(`${path}/properties/level`, {
          method: "PUT",
          headers: { authorization, "content-type": "application/json" },
          body: "5",
        });
        const invoke = fetch(`${path}/actions/reboot`, { method: "POST", headers: { authorization } });
        // Awaited below; a cut connection fails the test there, not as an unhandled rejection.
        for (const answer of [write, invoke]) answer.catch(() => undefined);
        while (requests.length < 2) await once(device, "request");
        // Each request waits for the device's answer headers this long before the hub gives it up.
        const deadline = performance.now() + HTTP_BINDING_DEFAULTS.headersTimeoutMs;
        first.child.kill("SIGTERM");
        let bound: NodeJS.Timeout | undefined;
        const timedOut = new Promise<"timed out">((resolve) => {
          bound = setTimeout(() => resolve("timed out"), deadline - performance.now());
        });
        try {
          expect(await Promise.race([first.exited, timedOut])).toEqual({ code: 0, signal: null });
        } finally {
          clearTimeout(bound);
        }
        for (const answer of [await write, await invoke]) {
          expect(answer.status).toBe(503);
          expect(answer.headers.get("content-type")).toMatch(/^application\/problem\+json/);
          expect(answer.headers.get("retry-after")).toMatch(/^\d+$/);
          const problem = (await answer.json()) as { detail: string };
          expect(problem.detail).toMatch(
            /^The hub is stopping: urn:example:durable:silent had not answered .*unknown/,
          );
        }

        const second = await start(dataDir, ["--no-observe", "--no-mqtt"]);
        const res = await fetch(`${second.url}${thingPath(String(td.id))}/history?order=asc`);
        const page = (await res.json()) as {
          changes: { kind: string; affordance?: string; value?: unknown; cause: { correlation?: string } }[];
        };
        for (const [affordance, sent] of [
          ["level", "desired"],
          ["reboot", "invoked"],
        ] as const) {
          const mine = page.changes.filter((c) => c.affordance === affordance);
          expect(mine.map((c) => c.kind)).toEqual([sent, "failed"]);
          expect(mine[1]?.cause.correlation).toBe(mine[0]?.cause.correlation);
          expect(mine[1]?.value).toMatchObject({ reason: "interrupted", outcome: "unknown" });
        }
      } finally {
        for (const socket of sockets) socket.destroy();
        device.close();
      }
    },
    HTTP_BINDING_DEFAULTS.headersTimeoutMs + 3 * PROCESS_BOUND_MS,
  );
});
