// Ctrl-C (SIGINT) and SIGTERM stop `things checkpoint`, `prove`, `add` and `rollout` with one
// line and exit 130 or 143, as they stop verify and export — with real signals sent to the built
// CLI while it waits on a hub that holds its requests unanswered.
import { spawn } from "node:child_process";
import { once } from "node:events";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, type IncomingMessage, type Server, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cleanEnvironment } from "./support/things-process.js";

const BIN = fileURLToPath(new URL("../bin/things.js", import.meta.url));
const RELEASE = `sha256:${"ab".repeat(32)}`;

/**
 * A hub that answers the requests `answer` takes (returning true) and holds every other one open,
 * telling the test which request it holds.
 */
class HoldingHub {
  private readonly server: Server;
  private readonly held: ServerResponse[] = [];
  private waiting: ((path: string) => void) | undefined;
  url = "";

  constructor(private readonly answer: (req: IncomingMessage, res: ServerResponse) => boolean) {
    this.server = createServer((req, res) => {
      if (this.answer(req, res)) return;
      this.held.push(res);
      this.waiting?.(`${req.method ?? ""} ${req.url ?? ""}`);
    });
  }

  async start(): Promise<void> {
    this.server.listen(0, "127.0.0.1");
    await once(this.server, "listening");
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  /** Resolves with the next request held. */
  nextHeld(): Promise<string> {
    return new Promise((resolve) => (this.waiting = resolve));
  }

  close(): void {
    for (const res of this.held) res.destroy();
    this.server.close();
  }
}

/** Runs `things ARGS`, sends `signal` once the hub holds a request, and gives what it did. */
async function interrupted(
  hub: HoldingHub,
  args: string[],
  signal: NodeJS.Signals,
): Promise<{ code: number | null; stdout: string; stderr: string; held: string }> {
  const heldNow = hub.nextHeld();
  const child = spawn(process.execPath, [BIN, ...args, "--url", hub.url, "--token", "t"], {
    env: cleanEnvironment({ TZ: "UTC" }),
  });
  let stdout = "";
  let stderr = "";
  child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
  child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
  const exited = once(child, "close");
  try {
    const held = await heldNow;
    child.kill(signal);
    const [code] = (await exited) as [number | null];
    return { code, stdout, stderr, held };
  } finally {
    child.kill("SIGKILL");
  }
}

const SIGNALS = [
  ["SIGINT", 130],
  ["SIGTERM", 143],
] as const;

describe("things checkpoint, prove, add and rollout stopped by a signal", () => {
  let work: string;
  /** Holds every request. */
  let silent: HoldingHub;
  /** Starts a rollout (POST …/rollouts answered), and holds its events. */
  let rolling: HoldingHub;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), "hyperthings-signals-"));
    silent = new HoldingHub(() => false);
    rolling = new HoldingHub((req, res) => {
      if (req.method !== "POST" || !(req.url ?? "").endsWith("/rollouts")) return false;
      res.writeHead(202, { "content-type": "application/json" });
      res.end(
        JSON.stringify({
          id: "rollout-7",
          release: RELEASE,
          name: "evening",
          status: "running",
          created: "2026-01-01T00:00:00.000Z",
          options: { concurrency: 16, maxFailures: 0 },
          progress: { total: 2, pending: 2, applying: 0, completed: 0, failed: 0, skipped: 0 },
        }),
      );
      return true;
    });
    await Promise.all([silent.start(), rolling.start()]);
  });
  afterAll(() => {
    silent?.close();
    rolling?.close();
    rmSync(work, { recursive: true, force: true });
  });

  it.each(SIGNALS)("checkpoint and prove say they were interrupted (%s), exit %i", async (signal, code) => {
    for (const [args, what] of [
      [["checkpoint"], "checkpoint"],
      [["checkpoint", "--out", join(work, `kept-${signal}.json`)], "checkpoint"],
      [["prove", "3"], "prove"],
    ] as const) {
      const run = await interrupted(silent, [...args], signal);
      expect(run, `${args.join(" ")} (held ${run.held})`).toMatchObject({
        code,
        stdout: "",
        stderr: `things: ${what} interrupted (${signal})\n`,
      });
    }
  });

  it.each(SIGNALS)("add says whether the batch was sent (%s), exit %i", async (signal, code) => {
    const file = join(work, "lamp.json");
    writeFileSync(
      file,
      JSON.stringify({
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        id: "urn:test:signals:lamp",
        title: "Lamp",
        securityDefinitions: { nosec_sc: { scheme: "nosec" } },
        security: "nosec_sc",
      }),
    );
    const run = await interrupted(silent, ["add", file], signal);
    expect(run.held).toBe("POST /things/batch");
    expect(run).toMatchObject({
      code,
      stdout: "",
      stderr: `things: add interrupted (${signal}); the 1 TD(s) were sent as one batch, which the hub registers whole or not at all: \`things get ID\` tells which\n`,
    });
  });

  it.each(SIGNALS)(
    "rollout says whether a rollout was started, and how to follow or cancel it (%s), exit %i",
    async (signal, code) => {
      const before = await interrupted(silent, ["rollout", "evening"], signal);
      expect(before).toMatchObject({
        code,
        stdout: "",
        stderr: `things: rollout interrupted (${signal}); no rollout was started\n`,
      });
      const asked = await interrupted(silent, ["rollout", RELEASE], signal);
      expect(asked.held).toBe(`POST /releases/${encodeURIComponent(RELEASE)}/rollouts`);
      expect(asked.stderr).toBe(
        `things: rollout interrupted (${signal}); the hub was asked to start the rollout and may have: \`things rollouts\` lists it\n`,
      );
      const during = await interrupted(rolling, ["rollout", RELEASE], signal);
      expect(during.held).toBe("GET /rollouts/rollout-7/events");
      expect(during).toMatchObject({
        code,
        stdout: "",
        stderr:
          `rollout rollout-7 of evening (${RELEASE})\n` +
          `things: rollout interrupted (${signal}); rollout rollout-7 goes on at the hub: \`things rollouts rollout-7\` follows it, \`things rollouts rollout-7 --cancel\` stops it\n`,
      });
    },
  );
});
