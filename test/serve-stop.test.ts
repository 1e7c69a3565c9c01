// A `things serve` process stopped by SIGTERM while clients hold connections open: an idle
// keep-alive connection, an open event stream, a connection that never sent a request and one
// that stopped half-way through its headers. None of them holds the stop.
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { Agent, get, type IncomingMessage } from "node:http";
import { connect, type Socket } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, describe, expect, it } from "vitest";

const BIN = fileURLToPath(new URL("../bin/things.js", import.meta.url));
/**
 * The hub's default request timeout is 300 s, so Node's headers timeout is 60 s and it checks the
 * deadlines every 30 s: a connection that never sent its headers could hold the stop that long.
 */
const NODE_CHECKS_EVERY_MS = 30_000;

function getOn(url: string, agent: Agent | undefined, headers: Record<string, string> = {}) {
  return new Promise<IncomingMessage>((resolve, reject) => {
    get(url, { ...(agent && { agent }), headers }, resolve).once("error", reject);
  });
}

async function openSocket(url: URL): Promise<Socket> {
  const socket = connect(Number(url.port), url.hostname);
  await new Promise<void>((resolve, reject) => {
    socket.once("connect", resolve).once("error", reject);
  });
  socket.on("error", () => undefined);
  return socket;
}

describe("stopping `things serve` with clients connected", () => {
  const cleanup: (() => void)[] = [];
  afterEach(() => {
    for (const step of cleanup.splice(0)) step();
  });

  it(
    "exits on SIGTERM without waiting for idle, streaming, silent or half-sent connections",
    async () => {
      const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-stop-"));
      cleanup.push(() => rmSync(dataDir, { recursive: true, force: true }));
      const env: NodeJS.ProcessEnv = {};
      for (const [name, value] of Object.entries(process.env)) {
        if (!name.startsWith("HYPERTHINGS_")) env[name] = value;
      }
      const child = spawn(
        process.execPath,
        [
          BIN,
          "serve",
          "--port",
          "0",
          "--data",
          dataDir,
          "--log-level",
          "silent",
          "--no-observe",
          "--no-mqtt",
        ],
        { env, stdio: ["ignore", "pipe", "pipe"] },
      );
      cleanup.push(() => child.kill("SIGKILL"));
      const exited = new Promise<number | null>((resolve) => child.once("exit", (code) => resolve(code)));
      let stdout = "";
      const base = await new Promise<string>((resolve, reject) => {
        child.stdout.on("data", (chunk: Buffer) => {
          stdout += chunk.toString();
          const match = /listening on (http:\/\/\S+)/.exec(stdout);
          if (match?.[1]) resolve(match[1]);
        });
        void exited.then((code) => reject(new Error(`things serve exited (${code}) before listening`)));
      });
      const url = new URL(base);

      // An idle keep-alive connection: one request answered, the connection kept for the next.
      const agent = new Agent({ keepAlive: true });
      cleanup.push(() => agent.destroy());
      const health = await getOn(`${base}/health`, agent);
      expect(health.statusCode).toBe(200);
      expect(health.headers.connection).toBe("keep-alive");
      health.resume();
      await new Promise((resolve) => health.once("end", resolve));
      // An open event stream.
      const stream = await getOn(`${base}/events`, undefined, { accept: "text/event-stream" });
      cleanup.push(() => stream.destroy());
      expect(stream.statusCode).toBe(200);
      stream.on("data", () => undefined);
      const streamEnded = new Promise((resolve) => stream.once("close", resolve));
      // A connection that never sent anything (a browser's spare connection)…
      const silent = await openSocket(url);
      cleanup.push(() => silent.destroy());
      const silentClosed = new Promise((resolve) => silent.once("close", resolve));
      // …and one that stopped half-way through its headers.
      const halfSent = await openSocket(url);
      cleanup.push(() => halfSent.destroy());
      const halfSentClosed = new Promise((resolve) => halfSent.once("close", resolve));
      halfSent.write(`GET /health HTTP/1.1\r\nHost: ${url.host}\r\n`);
      // The hub has counted both connections once it answers a request made after them.
      const after = await getOn(`${base}/health`, agent);
      after.resume();
      await new Promise((resolve) => after.once("end", resolve));

      child.kill("SIGTERM");
      let bound: NodeJS.Timeout | undefined;
      const nodeWouldHaveClosed = new Promise<"still running">((resolve) => {
        bound = setTimeout(() => resolve("still running"), NODE_CHECKS_EVERY_MS);
      });
      cleanup.push(() => clearTimeout(bound));
      expect(await Promise.race([exited, nodeWouldHaveClosed])).toBe(0);
      await Promise.all([streamEnded, silentClosed, halfSentClosed]);
    },
    NODE_CHECKS_EVERY_MS + 15_000,
  );
});
