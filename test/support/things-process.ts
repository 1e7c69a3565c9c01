// `things` as a child process, as a person runs it: its output read as it comes, a wait for a
// line bounded in time, and its exit code; or run to its end.
import { execFile, spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { fileURLToPath } from "node:url";

const BIN = fileURLToPath(new URL("../../bin/things.js", import.meta.url));
/** The longest a child may take to say something a test waits for. */
export const OUTPUT_BOUND_MS = 20_000;

export interface ThingsProcess {
  process: ChildProcessWithoutNullStreams;
  /** Resolves with the first match of `pattern` in stdout, or stderr (now or later); fails after a bound. */
  waitFor(pattern: RegExp, stream?: "stdout" | "stderr"): Promise<RegExpMatchArray>;
  /** Resolves with the exit code once the process has ended and its output has been read to the end. */
  exited: Promise<number | null>;
  stdout(): string;
  stderr(): string;
}

export function runThings(args: string[], env: NodeJS.ProcessEnv = {}): ThingsProcess {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, HYPERTHINGS_LOG_LEVEL: "warn", ...env },
  });
  let out = "";
  let err = "";
  const waiters: (() => void)[] = [];
  child.stdout.on("data", (chunk: Buffer) => {
    out += chunk.toString("utf8");
    for (const w of waiters.splice(0)) w();
  });
  child.stderr.on("data", (chunk: Buffer) => {
    err += chunk.toString("utf8");
    for (const w of waiters.splice(0)) w();
  });
  // "close", not "exit": at "exit" the pipes may still hold output not read yet (Node: child_process).
  const exited = new Promise<number | null>((resolve) => child.on("close", (code) => resolve(code)));
  return {
    process: child,
    exited,
    stdout: () => out,
    stderr: () => err,
    waitFor(pattern, stream = "stdout") {
      const text = () => (stream === "stdout" ? out : err);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no ${String(pattern)} in: ${out}\nstderr: ${err}`)),
          OUTPUT_BOUND_MS,
        );
        const check = () => {
          const match = pattern.exec(text());
          if (match) {
            clearTimeout(timer);
            resolve(match);
          } else waiters.push(check);
        };
        void exited.then(() => {
          if (!pattern.test(text())) {
            clearTimeout(timer);
            reject(new Error(`exited before ${String(pattern)}: ${out}\nstderr: ${err}`));
          }
        });
        check();
      });
    },
  };
}

/** What a `things` run that ended said, and its exit code. */
export interface ThingsRun {
  code: number;
  stdout: string;
  stderr: string;
}

/** The parent's environment without its HYPERTHINGS_ settings (so only the test's flags count), plus `extra`. */
export function cleanEnvironment(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith("HYPERTHINGS_")) env[name] = value;
  }
  return { ...env, ...extra };
}

export interface ThingsRunOptions {
  /** Added to the clean environment. */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** The run is killed, and the promise fails, after this long. */
  timeoutMs?: number;
  /** Run as this user (the test must run as root to give one). */
  user?: { uid: number; gid: number };
}

/** Runs `things ARGS` to its end with stdin closed; fails when it does not finish in time. */
export function runThingsToEnd(args: string[], options: ThingsRunOptions = {}): Promise<ThingsRun> {
  const { env = {}, cwd, timeoutMs = 30_000, user } = options;
  return new Promise((resolve, reject) => {
    const child = execFile(
      process.execPath,
      [BIN, ...args],
      {
        env: cleanEnvironment(env),
        timeout: timeoutMs,
        encoding: "utf8",
        maxBuffer: 64 * 1024 * 1024,
        ...(cwd !== undefined && { cwd }),
        ...(user !== undefined && { uid: user.uid, gid: user.gid }),
      },
      (err, stdout, stderr) => {
        if (err === null) resolve({ code: 0, stdout, stderr });
        else if (typeof err.code === "number") resolve({ code: err.code, stdout, stderr });
        else
          reject(
            new Error(`things ${args.join(" ")} did not finish (${err.signal ?? err.message}): ${stderr}`),
          );
      },
    );
    child.stdin?.end();
  });
}
