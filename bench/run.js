#!/usr/bin/env node
// Runs every bench/*.bench.js in turn, each as a child process, and passes its one JSON line
// through to stdout; exits non-zero when any bench fails. Flags are passed to every bench, e.g.
// `npm run bench -- --things 1000`. See bench/README.md.
import { spawn } from "node:child_process";
import { readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";

const BENCH_DIR = fileURLToPath(new URL(".", import.meta.url));
const ROOT = join(BENCH_DIR, "..");
/** A bench that runs longer than this is stopped (SIGTERM, then SIGKILL) and counts as failed. */
const BENCH_TIMEOUT_MS = 30 * 60 * 1000;

const log = (message) => process.stderr.write(`[bench] ${message}\n`);

function runBench(file, args) {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [join(BENCH_DIR, file), ...args], {
      cwd: ROOT,
      stdio: ["ignore", "pipe", "inherit"],
    });
    let stdout = "";
    child.stdout.setEncoding("utf8");
    child.stdout.on("data", (chunk) => {
      if (stdout.length < 1024 * 1024) stdout += chunk;
    });
    let killer;
    const timer = setTimeout(() => {
      log(`${file}: still running after ${BENCH_TIMEOUT_MS / 60000} min; stopping it`);
      child.kill("SIGTERM");
      killer = setTimeout(() => child.kill("SIGKILL"), 60_000);
    }, BENCH_TIMEOUT_MS);
    child.on("error", (err) => log(`${file}: ${err.message}`));
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      clearTimeout(killer);
      resolve({ code, signal, stdout });
    });
  });
}

const files = readdirSync(BENCH_DIR)
  .filter((name) => name.endsWith(".bench.js"))
  .sort();
const args = process.argv.slice(2);
let failed = 0;
for (const file of files) {
  log(`${file} ${args.join(" ")}`);
  const { code, signal, stdout } = await runBench(file, args);
  const lines = stdout.split("\n").filter((line) => line.trim() !== "");
  let parsed = false;
  if (lines.length === 1) {
    try {
      JSON.parse(lines[0]);
      parsed = true;
    } catch {
      // reported below
    }
  }
  if (parsed) process.stdout.write(`${lines[0]}\n`);
  if (code !== 0 || !parsed) {
    failed++;
    const why = code !== 0 ? `exit code ${code ?? "none"}${signal ? `, signal ${signal}` : ""}` : "";
    const output = parsed ? "" : `${lines.length} lines on stdout instead of one JSON line`;
    log(`${file} FAILED: ${[why, output].filter(Boolean).join("; ")}`);
    if (!parsed && lines.length > 0) log(`its stdout began: ${lines.slice(0, 3).join(" | ").slice(0, 500)}`);
  }
}
if (files.length === 0) log("no bench/*.bench.js found");
process.exitCode = failed > 0 || files.length === 0 ? 1 : 0;
