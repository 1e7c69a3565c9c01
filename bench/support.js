// What the benchmarks share: the hub started as a child process (and stopped), and its CPU time
// and memory read from /proc. Not a benchmark itself: bench/run.js runs only *.bench.js files.
import { spawn } from "node:child_process";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

export const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const HUB_BIN = join(ROOT, "bin", "things.js");

/**
 * Node flags the hub runs with in the benchmarks, as docs/operations.md recommends for a busy hub
 * (and `npm start` uses): a 64 MiB semi-space halves the young-generation collections of a hub
 * ingesting 10,000 Changes/s, and with them what they promote into the old generation.
 */
export const HUB_NODE_ARGS = ["--max-semi-space-size=64"];

/** --hub-node-args "<flags>": added to HUB_NODE_ARGS. */
export function hubNodeArgs(value) {
  return [...HUB_NODE_ARGS, ...value.split(/\s+/).filter(Boolean)];
}

const round2 = (x) => Math.round(x * 100) / 100;

/**
 * Starts `things serve` on 127.0.0.1, port 0, with `dataDir` and the admin `token`, in an
 * environment without the caller's HYPERTHINGS_* variables (plus `env`). `serveArgs` follow the
 * common serve flags; `hubNodeArgs` are node flags for the hub only (Node refuses --cpu-prof in
 * NODE_OPTIONS). The hub's stderr (and its stdout with `echoStdout`) is copied to ours with a
 * `[hub]` prefix. `url` resolves with the address the hub says it listens on, and rejects when
 * the hub exits first or says nothing within `timeoutMs`.
 */
export function startHub({
  dataDir,
  token,
  serveArgs = [],
  hubNodeArgs = [],
  env: extraEnv = {},
  timeoutMs = 30_000,
  echoStdout = false,
}) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith("HYPERTHINGS_")));
  env.HYPERTHINGS_ADMIN_TOKEN = token;
  Object.assign(env, extraEnv);
  const child = spawn(
    process.execPath,
    [
      ...hubNodeArgs,
      HUB_BIN,
      "serve",
      "--port",
      "0",
      "--host",
      "127.0.0.1",
      "--data",
      dataDir,
      "--log-level",
      "warn",
      ...serveArgs,
    ],
    { cwd: ROOT, env, stdio: ["ignore", "pipe", "pipe"] },
  );
  const exited = new Promise((resolve) => child.once("exit", (code, signal) => resolve({ code, signal })));
  createInterface({ input: child.stderr }).on("line", (line) => process.stderr.write(`[hub] ${line}\n`));
  const url = new Promise((resolve, reject) => {
    const timer = setTimeout(
      () =>
        reject(new Error(`the hub did not say where it listens within ${Math.round(timeoutMs / 1000)} s`)),
      Math.max(0, timeoutMs),
    );
    createInterface({ input: child.stdout }).on("line", (line) => {
      if (echoStdout) process.stderr.write(`[hub] ${line}\n`);
      const match = /listening on (http:\/\/\S+)/.exec(line);
      if (match) {
        clearTimeout(timer);
        resolve(match[1]);
      }
    });
    exited.then(({ code, signal }) => {
      clearTimeout(timer);
      reject(new Error(`the hub exited before listening (code ${code}, signal ${signal})`));
    });
  });
  return { child, exited, url };
}

/** Stops a hub from startHub: SIGTERM, then SIGKILL after 20 s (`onKill` is told first). */
export async function stopHub(hub, onKill = () => {}) {
  if (hub.child.exitCode !== null || hub.child.signalCode !== null) return hub.exited;
  hub.child.kill("SIGTERM");
  const timer = setTimeout(() => {
    onKill();
    hub.child.kill("SIGKILL");
  }, 20_000);
  const result = await hub.exited;
  clearTimeout(timer);
  return result;
}

// USER_HZ: 100 on every Linux this runs on (`getconf CLK_TCK`).
const CLOCK_TICKS = 100;

/** CPU time the process used so far, all its threads, user and system apart, in ms (/proc/<pid>/stat). */
export function cpuTimesMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  // Fields after the command name (which may hold spaces) start at field 3; utime is 14, stime 15.
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  return {
    user: (Number(fields[11]) * 1000) / CLOCK_TICKS,
    system: (Number(fields[12]) * 1000) / CLOCK_TICKS,
  };
}

/** CPU time the process used so far (user + system), all its threads, in ms. */
export function cpuMs(pid) {
  const { user, system } = cpuTimesMs(pid);
  return user + system;
}

/** A memory figure of the process from /proc/<pid>/status (VmRSS, or VmHWM for the peak), in MiB. */
export function rssMiB(pid, field = "VmRSS") {
  const status = readFileSync(`/proc/${pid}/status`, "utf8");
  const match = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(status);
  return match ? round2(Number(match[1]) / 1024) : null;
}

/** The nearest-rank percentile `q` (0 to 1) of ascending `sorted`, to 0.01; null when empty. */
export function nearestRank(sorted, q) {
  const n = sorted.length;
  return n === 0 ? null : round2(sorted[Math.min(n - 1, Math.max(0, Math.ceil(q * n) - 1))]);
}

/** The PostgreSQL the benches use: HYPERTHINGS_TEST_POSTGRES_URL, else the test machine's. */
export const POSTGRES_URL =
  process.env.HYPERTHINGS_TEST_POSTGRES_URL || "postgres://root@127.0.0.1:5432/test";

/**
 * `--name value` flags over `defaults` (numbers, but `url`); an unknown flag or a missing value
 * prints `usage` and exits 2.
 */
export function parseFlags(argv, defaults, usage) {
  const options = { ...defaults };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i]?.replace(/^--/, "");
    const value = argv[i + 1];
    if (!(name in options) || value === undefined) {
      process.stderr.write(`${usage}\n`);
      process.exit(2);
    }
    options[name] = name === "url" ? value : Number(value);
  }
  return options;
}
