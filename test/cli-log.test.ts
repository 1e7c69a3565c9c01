// End-to-end tests of the `things` Log commands (history, state, diff, watch, verify, prove,
// export) and of the client methods under them: the built CLI as a child process, against a real
// hub on port 0. `npm test` builds dist/ first; otherwise run `npm run build`.
import Database from "better-sqlite3";
import { execFileSync, spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { generateKeyPairSync, sign } from "node:crypto";
import {
  chmodSync,
  closeSync,
  constants,
  cpSync,
  existsSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  rmSync,
  statSync,
  watch,
  writeFileSync,
} from "node:fs";
import { open } from "node:fs/promises";
import { createServer, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";
import { once } from "node:events";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { createInterface } from "node:readline";
import { gunzipSync, gzipSync } from "node:zlib";
import { fileURLToPath } from "node:url";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { HubClient } from "../src/client/index.js";
import { changeLeafHash, hashToHex, type Change, type ThingDescription } from "../src/core/index.js";
import { minimalTd, startTestHub, type TestHub } from "./support/test-hub.js";
import { cleanEnvironment, runThings, runThingsToEnd, type ThingsRun } from "./support/things-process.js";

const BIN = fileURLToPath(new URL("../bin/things.js", import.meta.url));
/** The longest a test waits for a line it expects from a running command. */
const LINE_BOUND_MS = 15_000;
const LAMP = "urn:test:lamp";

/** The parent's environment without HYPERTHINGS_ settings, in UTC so that local times are fixed. */
function environment(): NodeJS.ProcessEnv {
  return cleanEnvironment({ TZ: "UTC" });
}

/** Runs `things ARGS` to its end. */
function things(args: string[]): Promise<ThingsRun> {
  return runThingsToEnd(args, { env: { TZ: "UTC" } });
}

function thingsAt(hub: TestHub, args: string[]): Promise<ThingsRun> {
  return things([...args, "--url", hub.url, "--token", hub.token]);
}

const WORKER_THREAD_COUNT = fileURLToPath(new URL("./support/worker-thread-count.js", import.meta.url));

/** `things ARGS` against the hub, and how many worker threads it started. */
async function thingsCountingThreads(hub: TestHub, args: string[]): Promise<ThingsRun & { threads: number }> {
  const dir = mkdtempSync(join(tmpdir(), "hyperthings-threads-"));
  try {
    const file = join(dir, "count");
    const run = await runThingsToEnd([...args, "--url", hub.url, "--token", hub.token], {
      env: { TZ: "UTC", NODE_OPTIONS: `--import=${WORKER_THREAD_COUNT}`, WORKER_THREAD_COUNT_FILE: file },
    });
    return { ...run, threads: Number(readFileSync(file, "utf8")) };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Resolves once a file of `dir` matching `name` holds `lines` lines; fails after LINE_BOUND_MS. */
function waitForFile(dir: string, name: (file: string) => boolean, lines: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const done = (): boolean => {
      const file = readdirSync(dir).find(name);
      if (file === undefined) return false;
      return readFileSync(join(dir, file), "utf8").split("\n").length > lines;
    };
    // Watching first, then looking: a write between a first look and the watch would go unseen.
    const finish = () => {
      clearTimeout(timer);
      watcher.close();
      resolve();
    };
    const watcher = watch(dir, () => {
      if (done()) finish();
    });
    const timer = setTimeout(() => {
      watcher.close();
      reject(
        new Error(
          `no file of ${lines} lines in ${dir} within ${LINE_BOUND_MS} ms: ${readdirSync(dir).join(", ")}`,
        ),
      );
    }, LINE_BOUND_MS);
    if (done()) finish();
  });
}

/** The lines a stream has written, and a bounded wait for the next one that matches. */
class Lines {
  readonly seen: string[] = [];
  private waiters: Array<{ match: (line: string) => boolean; resolve: (line: string) => void }> = [];

  constructor(stream: NodeJS.ReadableStream) {
    createInterface({ input: stream }).on("line", (line) => {
      this.seen.push(line);
      this.waiters = this.waiters.filter((w) => {
        if (!w.match(line)) return true;
        w.resolve(line);
        return false;
      });
    });
  }

  /** The first line (already seen or still to come) that matches; fails after LINE_BOUND_MS. */
  waitFor(match: (line: string) => boolean, what: string): Promise<string> {
    const known = this.seen.find(match);
    if (known !== undefined) return Promise.resolve(known);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(
        () =>
          reject(new Error(`no line ${what} within ${LINE_BOUND_MS} ms; saw ${JSON.stringify(this.seen)}`)),
        LINE_BOUND_MS,
      );
      this.waiters.push({
        match,
        resolve: (line) => {
          clearTimeout(timer);
          resolve(line);
        },
      });
    });
  }
}

/** A long-running `things` command (watch), its stdout and stderr as lines. */
class Running {
  readonly child: ChildProcessWithoutNullStreams;
  readonly stdout: Lines;
  readonly stderr: Lines;
  readonly exited: Promise<number | null>;

  constructor(args: string[]) {
    this.child = spawn(process.execPath, [BIN, ...args], { env: environment() });
    this.stdout = new Lines(this.child.stdout);
    this.stderr = new Lines(this.child.stderr);
    this.exited = new Promise((resolve) => this.child.on("close", (code) => resolve(code)));
  }

  async stop(): Promise<number | null> {
    if (this.child.exitCode === null) this.child.kill("SIGTERM");
    return this.exited;
  }
}

/** `things diff ID --from FROM --to TO`'s lines, once it has ended well and said nothing on stderr. */
async function diffLines(hub: TestHub, id: string, from: string, to: string): Promise<string[]> {
  const run = await thingsAt(hub, ["diff", id, "--from", from, "--to", to]);
  expect(run).toMatchObject({ code: 0, stderr: "" });
  expect(run.stdout.endsWith("\n")).toBe(true);
  return run.stdout.slice(0, -1).split("\n");
}

function clientOf(hub: TestHub): HubClient {
  return new HubClient({ url: hub.url, token: hub.token });
}

function lampTd(): ThingDescription {
  return minimalTd({
    id: LAMP,
    title: "Desk lamp",
    version: { instance: "1.2.0" },
    properties: {
      brightness: { type: "number", forms: [{ href: "https://lamp.example/brightness" }] },
      power: { type: "string", forms: [{ href: "https://lamp.example/power" }] },
    },
  }) as ThingDescription;
}

/** A hub's clock that tests move by hand, so that every Change has a known time. */
function manualClock(start: string): { now: () => Date; set: (iso: string) => void } {
  let now = new Date(start);
  return { now: () => now, set: (iso) => (now = new Date(iso)) };
}

/** The rows of a table printed by the CLI, cells split on runs of two or more spaces. */
function rowsOf(stdout: string): string[][] {
  return stdout
    .trimEnd()
    .split("\n")
    .map((line) => line.split(/\s{2,}/));
}

// ---------------------------------------------------------------------------------------------

describe("things history, state and diff", () => {
  let hub: TestHub;
  const clock = manualClock("2026-01-01T10:00:00.000Z");

  beforeAll(async () => {
    hub = await startTestHub({ checkpointEveryChanges: 10 }, {}, { clock: clock.now });
    const client = clientOf(hub);
    await client.put(lampTd());
    for (const [time, value] of [
      ["2026-01-01T10:01:00.000Z", 10],
      ["2026-01-01T10:02:00.000Z", 20],
      ["2026-01-01T10:03:00.000Z", 30],
    ] as const) {
      clock.set(time);
      await client.report(LAMP, { kind: "reported", affordance: "brightness", value });
    }
    clock.set("2026-01-01T10:03:30.000Z");
    expect(await client.report(LAMP, [{ kind: "reported", affordance: "power", value: "on" }])).toEqual({
      seqs: [5],
    });
  });

  afterAll(async () => {
    await hub.stop();
  });

  it("history prints seq, local time, affordance, kind, compact value and actor, newest first", async () => {
    const run = await thingsAt(hub, ["history", LAMP]);
    expect(run).toMatchObject({ code: 0, stderr: "" });
    const rows = rowsOf(run.stdout);
    expect(rows.slice(0, 5)).toEqual([
      ["SEQ", "TIME", "AFFORDANCE", "KIND", "VALUE", "ACTOR"],
      ["5", "2026-01-01 10:03:30.000", "power", "reported", '"on"', "admin"],
      ["4", "2026-01-01 10:03:00.000", "brightness", "reported", "30", "admin"],
      ["3", "2026-01-01 10:02:00.000", "brightness", "reported", "20", "admin"],
      ["2", "2026-01-01 10:01:00.000", "brightness", "reported", "10", "admin"],
    ]);
    // The description's value is the whole TD, cut short.
    expect(run.stdout.split("\n")[5]).toMatch(
      /^1 +2026-01-01 10:00:00\.000 +described +\{"@context":.*… +admin$/,
    );
  });

  it("changes lists every Thing's Changes newest first, with the Thing, and says when there are more", async () => {
    const run = await thingsAt(hub, ["changes", "--limit", "3"]);
    expect(run.code).toBe(0);
    expect(rowsOf(run.stdout)).toEqual([
      ["SEQ", "TIME", "THING", "AFFORDANCE", "KIND", "VALUE", "ACTOR"],
      ["5", "2026-01-01 10:03:30.000", LAMP, "power", "reported", '"on"', "admin"],
      ["4", "2026-01-01 10:03:00.000", LAMP, "brightness", "reported", "30", "admin"],
      ["3", "2026-01-01 10:02:00.000", LAMP, "brightness", "reported", "20", "admin"],
    ]);
    expect(run.stderr).toBe("more Changes before seq 3: the same command with --cursor 3\n");
    const rest = await thingsAt(hub, ["changes", "--limit", "3", "--cursor", "3", "--json"]);
    expect((JSON.parse(rest.stdout) as Change[]).map((c) => c.seq)).toEqual([2, 1]);
    expect(rest.stderr).toBe("");
    const reported = await thingsAt(hub, [
      "changes",
      "--oldest-first",
      "--kind",
      "reported",
      "--since",
      "2026-01-01T10:01:30Z",
      "--json",
    ]);
    expect((JSON.parse(reported.stdout) as Change[]).map((c) => c.seq)).toEqual([3, 4, 5]);
    // A window of the past, newest first: from its end, not from now.
    const window = await thingsAt(hub, [
      "changes",
      "--since",
      "2026-01-01T10:01:30Z",
      "--until",
      "2026-01-01T10:03:00Z",
      "--limit",
      "1",
    ]);
    expect(rowsOf(window.stdout).map((row) => row[0])).toEqual(["SEQ", "4"]);
    expect(window.stderr).toBe("more Changes before seq 4: the same command with --cursor 4\n");
    const backwards = await thingsAt(hub, ["changes", "--since", "10:03", "--until", "10:01"]);
    expect(backwards.code).toBe(2);
    expect(backwards.stderr).toMatch(/^things: --since .* is after --until/);
    const none = await thingsAt(hub, ["changes", "--type", "Toaster", "--json"]);
    expect(JSON.parse(none.stdout)).toEqual([]);
    // As a table, nothing found is said in words, not as a header with no rows.
    const nothing = await thingsAt(hub, ["changes", "--thing", LAMP, "--kind", "emitted"]);
    expect(nothing).toMatchObject({ code: 0, stdout: "", stderr: "no Change matches\n" });
    // An id the hub never had (a typo) is named as the likely reason.
    const typo = await thingsAt(hub, ["changes", "--thing", "urn:example:no-such-lamp"]);
    expect(typo).toMatchObject({
      code: 0,
      stdout: "",
      stderr:
        "no Change matches: no Thing urn:example:no-such-lamp has ever been registered with this hub: `things ls` lists their ids\n",
    });
  });

  it("history --json --oldest-first --affordance gives the Changes as a JSON array", async () => {
    const run = await thingsAt(hub, [
      "history",
      LAMP,
      "--affordance",
      "brightness",
      "--oldest-first",
      "--json",
    ]);
    expect(run.code).toBe(0);
    const changes = JSON.parse(run.stdout) as Change[];
    expect(changes.map((c) => [c.seq, c.value])).toEqual([
      [2, 10],
      [3, 20],
      [4, 30],
    ]);
  });

  it("history selects by --since/--until, --kind and --limit", async () => {
    const window = await thingsAt(hub, [
      "history",
      LAMP,
      "--since",
      "2026-01-01T10:01:30Z",
      "--until",
      "2026-01-01T10:03:00Z",
      "--json",
    ]);
    expect((JSON.parse(window.stdout) as Change[]).map((c) => c.seq)).toEqual([4, 3]);
    const described = await thingsAt(hub, ["history", LAMP, "--kind", "described,removed", "--json"]);
    expect((JSON.parse(described.stdout) as Change[]).map((c) => c.kind)).toEqual(["described"]);
    const limited = await thingsAt(hub, ["history", LAMP, "--limit", "2"]);
    expect(rowsOf(limited.stdout).map((row) => row[0])).toEqual(["SEQ", "5", "4"]);
    // A misspelt kind is an error in one line, not "no Change matches".
    for (const args of [
      ["history", LAMP, "--kind", "reprted"],
      ["changes", "--kind", "reported,reprted"],
    ]) {
      const typo = await thingsAt(hub, args);
      expect(typo.code).not.toBe(0);
      expect(typo.stdout).toBe("");
      expect(typo.stderr).toMatch(/^things: .*"reprted".*reported, desired/);
      expect(typo.stderr.trim().split("\n")).toHaveLength(1);
    }
  });

  it("history says when there are more Changes than shown, and --cursor goes on from the last one", async () => {
    const pages: string[][] = [];
    let args = ["history", LAMP, "--limit", "2"];
    for (;;) {
      const run = await thingsAt(hub, args);
      expect(run.code).toBe(0);
      pages.push(
        rowsOf(run.stdout)
          .slice(1)
          .map((row) => row[0] ?? ""),
      );
      const more = /^more Changes before seq (\d+): the same command with --cursor (\d+)\n$/.exec(run.stderr);
      if (!more) {
        expect(run.stderr).toBe("");
        break;
      }
      expect(more[1]).toBe(pages.at(-1)?.at(-1));
      args = ["history", LAMP, "--limit", "2", "--cursor", more[2] ?? ""];
    }
    expect(pages).toEqual([["5", "4"], ["3", "2"], ["1"]]);
    // Oldest first, and with --json: stdout stays the JSON array; the hint is on stderr.
    const first = await thingsAt(hub, ["history", LAMP, "--oldest-first", "--limit", "3", "--json"]);
    expect((JSON.parse(first.stdout) as Change[]).map((c) => c.seq)).toEqual([1, 2, 3]);
    expect(first.stderr).toBe("more Changes after seq 3: the same command with --cursor 3\n");
    const rest = await thingsAt(hub, [
      "history",
      LAMP,
      "--oldest-first",
      "--limit",
      "3",
      "--cursor",
      "3",
      "--json",
    ]);
    expect((JSON.parse(rest.stdout) as Change[]).map((c) => c.seq)).toEqual([4, 5]);
    expect(rest.stderr).toBe("");
    // Exactly as many as the limit: no hint.
    const exact = await thingsAt(hub, ["history", LAMP, "--limit", "5"]);
    expect(rowsOf(exact.stdout)).toHaveLength(6);
    expect(exact.stderr).toBe("");
    const bad = await thingsAt(hub, ["history", LAMP, "--cursor", "0"]);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toBe('things: --cursor must be a whole number from 1, not "0"\n');
  });

  it("a hint to go on repeats a relative time as the time it read, so that the next page does not move", async () => {
    // `-3650d` read again later would begin later: the pages after it would leave out what lies
    // between. An absolute time (--until) is repeated as it is, by the command itself.
    for (const command of [["history", LAMP], ["changes"]]) {
      const before = Date.now();
      const run = await thingsAt(hub, [
        ...command,
        "--since",
        "-3650d",
        "--until",
        "2026-01-01T10:05:00Z",
        "--limit",
        "2",
      ]);
      const more = /^more Changes before seq (\d+): the same command with --cursor \1 --since (\S+)\n$/.exec(
        run.stderr,
      );
      expect(more, run.stderr).not.toBeNull();
      const since = Date.parse(more?.[2] ?? "");
      expect(since).toBeGreaterThanOrEqual(before - 3650 * 86_400_000);
      expect(since).toBeLessThanOrEqual(Date.now() - 3650 * 86_400_000);
      const next = await thingsAt(hub, [
        ...command,
        "--since",
        more?.[2] ?? "",
        "--until",
        "2026-01-01T10:05:00Z",
        "--limit",
        "2",
        "--cursor",
        more?.[1] ?? "",
        "--json",
      ]);
      expect((JSON.parse(next.stdout) as Change[]).map((c) => c.seq)).toEqual([3, 2]);
    }
  });

  it("refuses a local time the clocks skipped or went through twice in the user's zone, with one line and exit code 2", async () => {
    // A local time the clocks skipped or went through twice, in the user's own zone.
    for (const [zone, at, message] of [
      [
        "Europe/Berlin",
        "2026-03-29 02:30",
        /^things: "2026-03-29 02:30" names 02:30 on 2026-03-29, a time the clocks skipped in Europe\/Berlin .* such as 2026-03-29T02:30:00\+01:00\n$/,
      ],
      [
        "America/New_York",
        "2026-11-01 01:30",
        /^things: "2026-11-01 01:30" names 01:30 on 2026-11-01, which happened twice in America\/New_York .* 2026-11-01T01:30:00-04:00 or 2026-11-01T01:30:00-05:00\n$/,
      ],
    ] as const) {
      const run = await runThingsToEnd(["state", LAMP, "--at", at, "--url", "http://127.0.0.1:9"], {
        env: { TZ: zone },
      });
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(message);
    }
  });

  it("says which field of a time is out of range, for every command and flag that takes a TIME", async () => {
    for (const [time, problem] of [
      ["yesterday 25:00", "the hour 25 is out of range (00–23)"],
      ["2026-13-01", "the month 13 is out of range (01–12)"],
    ] as const) {
      for (const args of [
        ["history", LAMP, "--since", time],
        ["history", LAMP, "--until", time],
        ["changes", "--since", time],
        ["changes", "--until", time],
        ["state", LAMP, "--at", time],
        ["diff", LAMP, "--from", time],
        ["diff", LAMP, "--from", "-1h", "--to", time],
        ["watch", "--since", time],
        ["export", "--since", time, "--out", "/nonexistent/x"],
      ]) {
        expect(await things([...args, "--url", "http://127.0.0.1:9"]), args.join(" ")).toEqual({
          code: 2,
          stdout: "",
          stderr: `things: "${time}" is not a time: ${problem}\n`,
        });
      }
    }
  });

  it("refuses a time it cannot read with one line and exit code 2, before asking the hub", async () => {
    for (const args of [
      ["history", LAMP, "--since", "tomorrowish"],
      ["state", LAMP, "--at", "25:99"],
      ["diff", LAMP, "--from", "2026-13-45"],
      ["export", "--since", "soon", "--out", "/nonexistent/x"],
    ]) {
      const run = await things([...args, "--url", "http://127.0.0.1:9"]);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(/^things: "[^"]+" is not a time: [^\n]+\n$/);
    }
    // Times out of order are a usage error too; a --from after now is read as now, as the hub does.
    for (const [args, message] of [
      [["diff", LAMP, "--from", "-1m", "--to", "-2m"], /^things: --from \(\S+\) is after --to \(\S+\)\n$/],
      [
        ["history", LAMP, "--since", "-1m", "--until", "-2m"],
        /^things: --since \(\S+\) is after --until \(\S+\)\n$/,
      ],
    ] as const) {
      const run = await things([...args, "--url", "http://127.0.0.1:9"]);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(message);
    }
    const ahead = await thingsAt(hub, ["diff", LAMP, "--from", "+1m", "--json"]);
    expect(ahead).toMatchObject({ code: 0, stderr: "" });
    const diff = JSON.parse(ahead.stdout) as { from: string; to: string };
    expect(diff.from).toBe(diff.to);
  });

  it("says that a time of day still to come was read as today's, and gives yesterday's", async () => {
    // The night an incident spans, asked about in the morning: `--since 23:59` is tonight's.
    // Of two zones 26 hours apart (2 hours on the clock) one is far from midnight now, so that
    // 23:59 is still to come there and 00:01 has come.
    const zone = ["Etc/GMT-14", "Etc/GMT+12"].find((z) => {
      const hour = Number(
        new Intl.DateTimeFormat("en-GB", { timeZone: z, hour: "2-digit", hourCycle: "h23" }).format(
          new Date(),
        ),
      );
      return hour >= 1 && hour <= 22;
    });
    const inZone = (args: string[]) =>
      runThingsToEnd([...args, "--url", hub.url, "--token", hub.token], { env: { TZ: zone } });
    const hint = (option: string) =>
      `${option} 23:59 is today's 23:59, still to come; for yesterday's, give ${option} 'yesterday 23:59'`;
    for (const [args, option] of [
      [["history", LAMP, "--since", "23:59", "--until", "00:01"], "--since"],
      [["changes", "--since", "23:59", "--until", "00:01"], "--since"],
      [["diff", LAMP, "--from", "23:59", "--to", "00:01"], "--from"],
    ] as const) {
      const run = await inZone([...args]);
      expect(run.code, run.stderr).toBe(2);
      expect(run.stderr).toMatch(/^things: --\w+ \(\S+\) is after --\w+ \(\S+\): /);
      expect(run.stderr.endsWith(`: ${hint(option)}\n`), run.stderr).toBe(true);
    }
    // Alone, it finds nothing: said with the reason, not only "no Change matches".
    for (const args of [
      ["history", LAMP, "--since", "23:59"],
      ["changes", "--since", "today 23:59"],
    ]) {
      const run = await inZone(args);
      expect(run).toMatchObject({ code: 0, stdout: "" });
      expect(run.stderr).toBe(
        `no Change matches: ${hint("--since").replace("--since 23:59 is", `--since ${args.at(-1)} is`)}\n`,
      );
    }
    const dir = mkdtempSync(join(tmpdir(), "hyperthings-ahead-"));
    try {
      const out = join(dir, "x.ndjson");
      const run = await inZone(["export", "--thing", LAMP, "--since", "23:59", "--out", out]);
      expect(run.code).toBe(1);
      expect(run.stderr).toMatch(/: nothing to export \(--since 23:59 is today's 23:59, still to come; /);
      expect(existsSync(out)).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    // The hub reads a state's --at, or a diff's --from, still to come as now: answered, and said.
    for (const [args, option] of [
      [["state", LAMP, "--at", "23:59"], "--at"],
      [["diff", LAMP, "--from", "23:59"], "--from"],
    ] as const) {
      const run = await inZone([...args]);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stdout).not.toBe("");
      expect(run.stderr).toBe(
        `note: ${option} 23:59 is today's 23:59, still to come, so it was read as now; for yesterday's, give ${option} 'yesterday 23:59'\n`,
      );
    }
    // A --to still to come is read as now too: after --from is mended to yesterday's, a --to left
    // as today's would stretch the diff to now without a word.
    for (const args of [
      ["diff", LAMP, "--from", "yesterday 23:58", "--to", "23:59"],
      ["diff", "--from", "yesterday 23:58", "--to", "23:59"],
    ]) {
      const run = await inZone(args);
      expect(run.code, run.stderr).toBe(0);
      expect(run.stderr).toContain(
        "note: --to 23:59 is today's 23:59, still to come, so it was read as now; for yesterday's, give --to 'yesterday 23:59'\n",
      );
    }
    expect((await inZone(["state", LAMP, "--at", "00:01"])).stderr).toBe("");
    // watch replays nothing since then, and goes live: said under its first line.
    const watcher = runThings(["watch", "--since", "23:59", "--url", hub.url, "--token", hub.token], {
      TZ: zone,
    });
    try {
      // The note is written with the first line, in one write (atomic on a pipe).
      while (!watcher.stderr().includes("(Ctrl-C to stop)\n")) await once(watcher.process.stderr, "data");
      expect(watcher.stderr()).toMatch(
        /^watching \S+ after seq \d+ \(the last before \S+ 23:59:00\.000\) \(Ctrl-C to stop\)\nnote: --since 23:59 is today's 23:59, still to come, so it was read as now; for yesterday's, give --since 'yesterday 23:59'\n$/,
      );
    } finally {
      watcher.process.kill("SIGINT");
      await watcher.exited;
    }
    // A time that has come, or one that is not a time of day, gets no such note.
    const past = await inZone(["changes", "--since", "00:01", "--until", "-1h", "--kind", "emitted"]);
    expect(past.stderr).not.toContain("still to come");
    const relative = await inZone(["history", LAMP, "--since", "+1h"]);
    expect(relative.stderr).toBe("no Change matches\n");
  });

  it("state prints the TD's title and version, then each property's value, time and actor", async () => {
    const now = await thingsAt(hub, ["state", LAMP]);
    expect(now).toMatchObject({ code: 0, stderr: "" });
    expect(now.stdout).toBe(
      [
        "Desk lamp  urn:test:lamp  version 1.2.0",
        "as of 2026-01-01 10:03:30.000 (seq 5)",
        "  brightness  30    (2026-01-01 10:03:00.000, by admin)",
        '  power       "on"  (2026-01-01 10:03:30.000, by admin)',
        "",
      ].join("\n"),
    );
    const then = await thingsAt(hub, ["state", LAMP, "--at", "2026-01-01T10:02:30Z"]);
    expect(then.stdout).toContain("as of 2026-01-01 10:02:30.000 (seq 3)\n");
    expect(then.stdout).toContain("  brightness  20  (2026-01-01 10:02:00.000, by admin)\n");
    expect(then.stdout).toContain("  power       -   (no value reported)\n");
    const json = await thingsAt(hub, ["state", LAMP, "--at", "2026-01-01T10:02:30Z", "--json"]);
    expect(JSON.parse(json.stdout)).toMatchObject({
      thing: LAMP,
      seq: 3,
      properties: { brightness: { value: 20, seq: 3 } },
    });
  });

  it("diff prints each property before → after, how many changes and the last cause, and the TD's change", async () => {
    // 10:03:45 has not come on the hub's clock (10:03:30): the diff ends at its now.
    expect(await diffLines(hub, LAMP, "2026-01-01T10:01:30Z", "2026-01-01T10:03:45Z")).toEqual([
      "urn:test:lamp  from 2026-01-01 10:01:30.000 (seq 2) to 2026-01-01 10:03:30.000 (seq 5)",
      "  brightness  10     → 30  (2 changes, last by admin at 2026-01-01 10:03:00.000)",
      '  power       (none) → "on"  (1 change, last by admin at 2026-01-01 10:03:30.000)',
      "description: unchanged",
    ]);
    const fromBefore = await thingsAt(hub, ["diff", LAMP, "--from", "2026-01-01T09:00:00Z"]);
    expect(fromBefore.stdout).toContain(
      "description: registered in between, by admin at 2026-01-01 10:00:00.000\n",
    );
    const json = await thingsAt(hub, ["diff", LAMP, "--from", "2026-01-01T10:01:30Z", "--json"]);
    expect(JSON.parse(json.stdout)).toMatchObject({
      fromSeq: 2,
      toSeq: 5,
      properties: [
        { affordance: "brightness", before: 10, after: 30, changes: 2 },
        { affordance: "power", after: "on", changes: 1 },
      ],
    });
  });

  it("a Thing the hub never had is one line and exit code 1", async () => {
    const run = await thingsAt(hub, ["history", "urn:test:nothing"]);
    expect(run.code).toBe(1);
    expect(run.stderr).toMatch(/^things: .*urn:test:nothing[^\n]*\n$/);
  });

  it("the client follows every page of history, the feed, checkpoints and log entries", async () => {
    const client = clientOf(hub);
    const seqs = async (changes: AsyncIterable<Change>) => {
      const all: number[] = [];
      for await (const c of changes) all.push(c.seq);
      return all;
    };
    expect(await seqs(client.historyAll(LAMP, { order: "asc", limit: 2 }))).toEqual([1, 2, 3, 4, 5]);
    expect(await seqs(client.historyAll(LAMP, { limit: 2 }))).toEqual([5, 4, 3, 2, 1]);
    expect(await seqs(client.changesAll({ thing: LAMP, limit: 2 }))).toEqual([1, 2, 3, 4, 5]);
    expect(await seqs(client.logEntriesAll({ pageSize: 2 }))).toEqual([1, 2, 3, 4, 5]);
    expect(await seqs(client.logEntriesAll({ after: 1, upTo: 3, pageSize: 2 }))).toEqual([2, 3]);
    // The same entries as bytes, in chunks of whole lines, following the hub's Link from page to page.
    const entrySeqs = async (options: Parameters<typeof client.logEntryChunks>[0]) => {
      const all: number[] = [];
      for await (const chunk of client.logEntryChunks(options)) {
        expect(chunk.at(-1)).toBe(0x0a);
        const lines = new TextDecoder().decode(chunk).slice(0, -1).split("\n");
        all.push(...lines.map((line) => (JSON.parse(line) as Change).seq));
      }
      return all;
    };
    expect(await entrySeqs({ pageSize: 2 })).toEqual([1, 2, 3, 4, 5]);
    expect(await entrySeqs({ after: 1, upTo: 3, pageSize: 2 })).toEqual([2, 3]);
    expect(await entrySeqs({ after: 5 })).toEqual([]);
    const checkpoint = await client.checkpoint();
    expect(checkpoint?.size).toBe(5);
    const sizes: number[] = [];
    for await (const c of client.checkpointsAll({ pageSize: 1 })) sizes.push(c.size);
    expect(sizes.at(-1)).toBe(5);
    expect((await client.change(3)).value).toBe(20);
    expect(await client.inclusionProof(3, 5)).toMatchObject({ seq: 3, size: 5, checkpoint: { size: 5 } });
  });
});

// ---------------------------------------------------------------------------------------------

describe("things diff with actions and events", () => {
  let hub: TestHub;
  const clock = manualClock("2026-02-01T10:00:00.000Z");
  const PUMP = "urn:test:pump";

  beforeAll(async () => {
    hub = await startTestHub({}, {}, { clock: clock.now });
    const forms = [{ href: "https://pump.example/x" }];
    await clientOf(hub).put(
      minimalTd({
        id: PUMP,
        properties: { speed: { type: "number", forms } },
        actions: { flush: { input: { type: "integer" }, forms } },
        events: { clogged: { data: { type: "string" }, forms } },
      }) as ThingDescription,
    );
    const operator = { actor: "operator", via: "test" };
    for (const [time, reports] of [
      ["2026-02-01T10:01:00.000Z", [{ kind: "emitted", affordance: "clogged", value: "inlet" }]],
      [
        "2026-02-01T10:02:00.000Z",
        [
          { kind: "invoked", affordance: "flush", value: 30 },
          { kind: "completed", affordance: "flush" },
        ],
      ],
      [
        "2026-02-01T10:03:00.000Z",
        [
          { kind: "desired", affordance: "speed", value: 1200 },
          { kind: "failed", affordance: "speed", value: { reason: "refused" } },
        ],
      ],
    ] as const) {
      clock.set(time);
      await hub.hub.ingest(PUMP, reports, operator);
    }
    clock.set("2026-02-01T10:05:00.000Z");
  });

  afterAll(async () => {
    await hub.stop();
  });

  it("lists the writes, actions and events in between: how many of each kind, and the last", async () => {
    expect(await diffLines(hub, PUMP, "2026-02-01T10:00:30Z", "2026-02-01T10:05:00Z")).toEqual([
      "urn:test:pump  from 2026-02-01 10:00:30.000 (seq 1) to 2026-02-01 10:05:00.000 (seq 6)",
      "  no property changed",
      // A write the pump refused: its value never changed, but what was asked and who asked show.
      "writes:",
      '  speed  1 desired, 1 failed; asked for 1200 by operator at 2026-02-01 10:03:00.000; last failed {"reason":"refused"} by operator at 2026-02-01 10:03:00.000',
      "actions:",
      "  flush  1 invoked, 1 completed; last completed by operator at 2026-02-01 10:02:00.000",
      "events:",
      '  clogged  1 emitted; last emitted "inlet" by operator at 2026-02-01 10:01:00.000',
      "description: unchanged",
    ]);
  });

  it("prints a TD changed in between as a patch of its lines", async () => {
    const forms = [{ href: "https://pump.example/x" }];
    clock.set("2026-02-01T10:06:00.000Z");
    await clientOf(hub).put(
      minimalTd({
        id: PUMP,
        title: "Pump 2",
        properties: { speed: { type: "number", maximum: 3000, forms } },
        actions: { flush: { input: { type: "integer" }, forms } },
        events: { clogged: { data: { type: "string" }, forms } },
      }) as ThingDescription,
    );
    clock.set("2026-02-01T10:07:00.000Z");
    const lines = await diffLines(hub, PUMP, "2026-02-01T10:05:00Z", "2026-02-01T10:07:00Z");
    const line = "description: changed (properties, title), by admin at 2026-02-01 10:06:00.000";
    expect(lines).toContain(line);
    const patch = lines.slice(lines.indexOf(line) + 1);
    expect(patch[0]).toMatch(/^ {2}@@ -\d+,\d+ \+\d+,\d+ @@$/);
    expect(patch).toContain('  -  "title": "Lamp",');
    expect(patch).toContain('  +  "title": "Pump 2",');
    expect(patch.some((line) => /^ {2}\+ +"maximum": 3000/.test(line))).toBe(true);
    // Only the changed stretches and their context, not the whole TD; no colour into a pipe.
    expect(patch.some((line) => line.includes('"clogged"'))).toBe(false);
    expect(patch.join("\n")).not.toContain("\u001b[");
  });

  it("says a Thing registered and removed in between was, not that its description is unchanged", async () => {
    clock.set("2026-02-01T10:08:00.000Z");
    await clientOf(hub).remove(PUMP);
    clock.set("2026-02-01T10:09:00.000Z");
    const lines = await diffLines(hub, PUMP, "2026-02-01T09:00:00Z", "2026-02-01T10:09:00Z");
    expect(lines.at(-1)).toBe(
      "description: registered and removed in between (2 described, 1 removed; the last removed by admin at 2026-02-01 10:08:00.000)",
    );
    const removed = await diffLines(hub, PUMP, "2026-02-01T10:07:00Z", "2026-02-01T10:09:00Z");
    expect(removed.at(-1)).toBe("description: removed, by admin at 2026-02-01 10:08:00.000");
  });
});

describe("things diff beside a write", () => {
  let hub: TestHub;
  const clock = manualClock("2026-02-02T10:00:00.000Z");
  const PUMP = "urn:test:pump:written";

  beforeAll(async () => {
    hub = await startTestHub({}, {}, { clock: clock.now });
    const forms = [{ href: "https://pump.example/x" }];
    await clientOf(hub).put(
      minimalTd({ id: PUMP, properties: { speed: { type: "number", forms } } }) as ThingDescription,
    );
    const observer = { actor: "hub:observer", via: "http" };
    const operator = { actor: "operator", via: "http", correlation: "c-1" };
    for (const [time, report, cause] of [
      ["2026-02-02T10:01:00.000Z", { kind: "reported", affordance: "speed", value: 800 }, observer],
      ["2026-02-02T10:03:00.000Z", { kind: "desired", affordance: "speed", value: 1200 }, operator],
      ["2026-02-02T10:03:01.000Z", { kind: "completed", affordance: "speed" }, operator],
      ["2026-02-02T10:04:00.000Z", { kind: "reported", affordance: "speed", value: 1200 }, observer],
      ["2026-02-02T10:06:00.000Z", { kind: "desired", affordance: "speed", value: 1500 }, operator],
      [
        "2026-02-02T10:06:01.000Z",
        { kind: "failed", affordance: "speed", value: { reason: "busy" } },
        operator,
      ],
    ] as const) {
      clock.set(time);
      await hub.hub.ingest(PUMP, [report], cause);
    }
    clock.set("2026-02-02T10:08:00.000Z");
  });

  afterAll(async () => {
    await hub.stop();
  });

  it("shows beside a property's before → after the value its last write in between asked for, and who asked", async () => {
    const taken = await diffLines(hub, PUMP, "2026-02-02T10:02:00Z", "2026-02-02T10:05:00Z");
    expect(taken[1]).toBe(
      "  speed  800 → 1200  (1 change, last by hub:observer at 2026-02-02 10:04:00.000; asked for 1200 by operator at 2026-02-02 10:03:00.000)",
    );
    // The last write in between asked for 1500, which the pump refused: the reported value says 1200.
    const refused = await diffLines(hub, PUMP, "2026-02-02T10:02:00Z", "2026-02-02T10:07:00Z");
    expect(refused[1]).toBe(
      "  speed  800 → 1200  (1 change, last by hub:observer at 2026-02-02 10:04:00.000; asked for 1500 by operator at 2026-02-02 10:06:00.000)",
    );
    expect(refused.slice(2)).toEqual([
      "writes:",
      '  speed  2 desired, 1 completed, 1 failed; asked for 1500 by operator at 2026-02-02 10:06:00.000; last failed {"reason":"busy"} by operator at 2026-02-02 10:06:01.000',
      "description: unchanged",
    ]);
    // No write in between (the one that asked for 1200 was before `from`, its outcome too): nothing asked.
    const unwritten = await diffLines(hub, PUMP, "2026-02-02T10:03:30Z", "2026-02-02T10:05:00Z");
    expect(unwritten[1]).toBe(
      "  speed  800 → 1200  (1 change, last by hub:observer at 2026-02-02 10:04:00.000)",
    );
    // The outcome in between, its write before: the outcome alone, nothing asked in between.
    const outcomeOnly = await diffLines(hub, PUMP, "2026-02-02T10:03:00.500Z", "2026-02-02T10:05:00Z");
    expect(outcomeOnly[3]).toBe(
      "  speed  1 completed; last completed by operator at 2026-02-02 10:03:01.000",
    );
  });

  it("gives the write as the property's desired in the HTTP and GraphQL diffs", async () => {
    const run = await thingsAt(hub, [
      "diff",
      PUMP,
      "--from",
      "2026-02-02T10:02:00Z",
      "--to",
      "2026-02-02T10:07:00Z",
      "--json",
    ]);
    expect(run.code, run.stderr).toBe(0);
    const diff = JSON.parse(run.stdout) as {
      properties: Array<Record<string, unknown>>;
      writes: Array<Record<string, unknown>>;
    };
    const asked = {
      seq: 6,
      kind: "desired",
      value: 1500,
      cause: { actor: "operator", via: "http", correlation: "c-1" },
      time: "2026-02-02T10:06:00.000Z",
    };
    expect(diff.properties[0]?.desired).toEqual(asked);
    expect(diff.writes[0]).toMatchObject({ affordance: "speed", desired: asked, last: { kind: "failed" } });
    const unwritten = (await clientOf(hub).diff(PUMP, "2026-02-02T10:03:30Z", "2026-02-02T10:05:00Z"))
      .properties[0];
    expect(unwritten).toMatchObject({ after: 1200 });
    expect(unwritten).not.toHaveProperty("desired");
    const res = await hub.request("/graphql", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        query: `{ diff(thing: "${PUMP}", from: "2026-02-02T10:02:00Z", to: "2026-02-02T10:05:00Z") { properties { after desired { seq value cause { actor } } } writes { desired { seq } last { seq } } } }`,
      }),
    });
    expect(await res.json()).toEqual({
      data: {
        diff: {
          properties: [{ after: 1200, desired: { seq: 3, value: 1200, cause: { actor: "operator" } } }],
          writes: [{ desired: { seq: 3 }, last: { seq: 4 } }],
        },
      },
    });
  });
});

describe("things diff with reachability, drift and links", () => {
  let hub: TestHub;
  const clock = manualClock("2026-03-01T10:00:00.000Z");
  const SENSOR = "urn:test:field-sensor";
  const GATEWAY = "urn:test:gateway";
  const LIGHT = "urn:test:light";
  const linkEdit = async (method: "POST" | "DELETE", rel: string, href: string) => {
    const path = `/things/${encodeURIComponent(SENSOR)}/links`;
    const res = await hub.request(
      method === "POST" ? path : `${path}?rel=${rel}&href=${encodeURIComponent(href)}`,
      {
        method,
        ...(method === "POST" && {
          headers: { "content-type": "application/json" },
          body: JSON.stringify({ rel, href }),
        }),
      },
    );
    expect(res.status).toBe(method === "POST" ? 201 : 204);
  };

  beforeAll(async () => {
    hub = await startTestHub({}, {}, { clock: clock.now });
    const forms = [{ href: "https://sensor.example/x" }];
    await clientOf(hub).put(
      minimalTd({
        id: SENSOR,
        properties: { level: { type: "number", forms } },
        links: [{ rel: "partOf", href: GATEWAY }],
      }) as ThingDescription,
    );
    const observer = { actor: "hub:observer", via: "http" };
    clock.set("2026-03-01T10:01:00.000Z");
    await hub.hub.ingest(SENSOR, [{ kind: "unreachable", value: "connect ECONNREFUSED" }], observer);
    clock.set("2026-03-01T10:02:00.000Z");
    await hub.hub.ingest(SENSOR, [{ kind: "reachable", value: "the Thing answers again" }], observer);
    clock.set("2026-03-01T10:03:00.000Z");
    await hub.hub.ingest(SENSOR, [{ kind: "unreachable", value: "timeout" }], observer);
    clock.set("2026-03-01T10:04:00.000Z");
    await linkEdit("POST", "controls", LIGHT);
    await linkEdit("DELETE", "partOf", GATEWAY);
    clock.set("2026-03-01T10:04:30.000Z");
    const applied = {
      release: "sha256:4f1c2d3e4f5a6b7c8d9e0f",
      name: "evening",
      rollout: "urn:uuid:r",
      desired: { level: 3 },
      drift: { policy: "record" },
    };
    await hub.hub.ingest(SENSOR, [{ kind: "applied", value: applied }], { actor: "admin", via: "rollout" });
    clock.set("2026-03-01T10:05:00.000Z");
    const value = {
      status: "drifting",
      release: "sha256:r1",
      desired: 3,
      observed: 7,
      since: "2026-03-01T10:05:00.000Z",
      policy: "record",
    };
    await hub.hub.ingest(SENSOR, [{ kind: "drift", affordance: "level", value }], {
      actor: "hub:drift",
      via: "drift",
      release: "sha256:r1",
    });
    clock.set("2026-03-01T10:06:00.000Z");
  });

  afterAll(async () => {
    await hub.stop();
  });

  it("says first whether the Thing answered, then the drift, the links added and removed and the releases in between", async () => {
    const lines = await diffLines(hub, SENSOR, "2026-03-01T10:00:30Z", "2026-03-01T10:06:00Z");
    // The TD's own lines follow (the links changed in it): not this test's business.
    expect(lines.slice(0, 10)).toEqual([
      "urn:test:field-sensor  from 2026-03-01 10:00:30.000 (seq 2) to 2026-03-01 10:06:00.000 (seq 11)",
      'reachability: reachable → unreachable; 2 unreachable, 1 reachable; last unreachable "timeout" by hub:observer at 2026-03-01 10:03:00.000',
      "  no property changed",
      "drift: 1 Change",
      "  level  1 drift; last drifting: desired 3, observed 7 by hub:drift at 2026-03-01 10:05:00.000",
      `links: 1 linked, 1 unlinked; last unlinked partOf ${GATEWAY} by admin at 2026-03-01 10:04:00.000`,
      `  + controls ${LIGHT}`,
      `  - partOf ${GATEWAY}`,
      "releases: 1 applied; now evening (sha256:4f1c2d3e4f5a…) by admin at 2026-03-01 10:04:30.000",
      "description: changed (links) (2 described; the last described by admin at 2026-03-01 10:04:00.000)",
    ]);
  });

  it("says a Thing was unreachable all along, and gives the sections in --json", async () => {
    const lines = await diffLines(hub, SENSOR, "2026-03-01T10:03:30Z", "2026-03-01T10:03:50Z");
    expect(lines[1]).toBe(
      'reachability: unreachable all along; last unreachable "timeout" by hub:observer at 2026-03-01 10:03:00.000',
    );
    const json = await thingsAt(hub, ["diff", SENSOR, "--from", "2026-03-01T10:03:30Z", "--json"]);
    expect(json).toMatchObject({ code: 0, stderr: "" });
    expect(JSON.parse(json.stdout)).toMatchObject({
      reachability: { reachableAtFrom: false, reachableAtTo: false, counts: {}, last: { value: "timeout" } },
      drift: { changes: 1, last: { affordance: "level", value: { observed: 7 } } },
      releases: { counts: { applied: 1 }, last: { kind: "applied", value: { name: "evening" } } },
      links: {
        added: [{ rel: "controls", href: LIGHT }],
        removed: [{ rel: "partOf", href: GATEWAY }],
        counts: { linked: 1, unlinked: 1 },
      },
    });
  });
});

describe("things watch", () => {
  let hub: TestHub;
  let dataDir: string;
  let watcher: Running | undefined;

  /** `things watch ARGS` against the hub, once it has said that it watches. */
  async function startWatching(args: string[]): Promise<Running> {
    watcher = new Running(["watch", ...args, "--url", hub.url, "--token", hub.token]);
    await watcher.stderr.waitFor((l) => l.startsWith("watching "), "saying it watches");
    return watcher;
  }

  beforeEach(async () => {
    dataDir = mkdtempSync(join(tmpdir(), "hyperthings-watch-"));
    hub = await startTestHub({ dataDir });
    await clientOf(hub).put(lampTd());
  });

  afterEach(async () => {
    await watcher?.stop();
    watcher = undefined;
    await hub.stop();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("prints each Change reported after it started, one line each, until stopped", async () => {
    const w = await startWatching(["--thing", LAMP]);
    await clientOf(hub).report(LAMP, { kind: "reported", affordance: "brightness", value: 42 });
    const line = await w.stdout.waitFor((l) => l.includes("brightness"), "with the Change");
    expect(line).toMatch(/^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3} {2}#2 {2}/);
    expect(line.slice(25)).toBe("#2  urn:test:lamp  brightness  reported  42  by admin");
    expect(await w.stop()).toBe(0);
  });

  it("stops quietly, with exit code 0, when its reader closes the pipe (things watch | head -1)", async () => {
    const w = await startWatching(["--thing", LAMP]);
    const client = clientOf(hub);
    await client.report(LAMP, { kind: "reported", affordance: "brightness", value: 1 });
    await w.stdout.waitFor((l) => l.includes("reported  1  "), "with the first Change");
    // The reader goes away, as `head -1` does after its line; the next line finds the pipe closed.
    w.child.stdout.destroy();
    await client.report(LAMP, { kind: "reported", affordance: "brightness", value: 2 });
    expect(await w.exited).toBe(0);
    // Nothing on stderr but the line it started with: no stack trace.
    expect(w.stderr.seen.filter((l) => !l.startsWith("watching "))).toEqual([]);
  });

  it("--since first replays the matching Changes since that time, then the live ones", async () => {
    const client = clientOf(hub);
    await client.report(LAMP, { kind: "reported", affordance: "brightness", value: 1 });
    await new Promise((resolve) => setTimeout(resolve, 20));
    const since = new Date().toISOString();
    await new Promise((resolve) => setTimeout(resolve, 20));
    await client.report(LAMP, [
      { kind: "reported", affordance: "brightness", value: 2 },
      { kind: "reported", affordance: "power", value: "on" },
    ]);
    const w = await startWatching(["--since", since, "--kind", "reported", "--json"]);
    await w.stdout.waitFor((l) => l.includes('"power"'), "with the Changes since");
    await client.report(LAMP, { kind: "reported", affordance: "brightness", value: 4 });
    await w.stdout.waitFor((l) => l.includes('"value":4'), "with the live Change");
    // The reading before --since is not replayed; each one after it is, once, in order.
    expect(w.stdout.seen.map((l) => (JSON.parse(l) as { value: unknown }).value)).toEqual([2, "on", 4]);
  });

  it("--thing of an id the hub never had says it is not registered yet, then waits for that Thing's Changes", async () => {
    // A typo of the lamp's id is offered the lamp's.
    const typo = await startWatching(["--thing", "urn:test:lmap"]);
    expect(typo.stderr.seen[0]).toBe(
      "note: no Thing urn:test:lmap is registered with this hub yet (did you mean urn:test:lamp?); waiting for it: its Changes show once it is",
    );
    await typo.stop();
    // An id named after the lamp's: a Thing to come, not a typo of urn:test:lamp.
    const id = "urn:test:lamp-to-come";
    const w = await startWatching(["--thing", id]);
    expect(w.stderr.seen[0]).toBe(
      `note: no Thing ${id} is registered with this hub yet; waiting for it: its Changes show once it is`,
    );
    await clientOf(hub).put({ ...lampTd(), id });
    const line = await w.stdout.waitFor((l) => l.includes("described"), "with its registration");
    expect(line).toContain(`${id}  -  described`);
  });

  it("--since refuses a time it cannot read, as a usage error", async () => {
    const run = await thingsAt(hub, ["watch", "--since", "the other day"]);
    expect(run.code).toBe(2);
    expect(run.stderr).toMatch(/^things: "the other day" is not a time: [^\n]+\n$/);
  });

  it("--json prints each Change as one JSON line, and filters by kind", async () => {
    const w = await startWatching(["--kind", "emitted,reported", "--json"]);
    await clientOf(hub).put({ ...lampTd(), title: "Renamed lamp" });
    await clientOf(hub).report(LAMP, { kind: "reported", affordance: "power", value: "off" });
    const line = await w.stdout.waitFor((l) => l.includes('"power"'), "with the Change");
    expect(JSON.parse(line)).toMatchObject({ seq: 3, thing: LAMP, kind: "reported", value: "off" });
    // Whole, as GET /changes/{seq} gives it: its leaf hash too.
    const { leaf, ...recorded } = await clientOf(hub).change(3);
    expect(leaf).toMatch(/^[0-9a-f]{64}$/);
    expect(JSON.parse(line)).toEqual({ ...recorded, leaf });
    // The described Change of the renaming was filtered out.
    expect(w.stdout.seen).toHaveLength(1);
  });

  it("--json keeps a value and a previous value of null, as the Log has them", async () => {
    const client = clientOf(hub);
    const dimmer = "urn:test:watch:dimmer";
    await client.put(
      minimalTd({
        id: dimmer,
        properties: {
          // null: the dimmer does not know its level.
          level: { oneOf: [{ type: "number" }, { type: "null" }], forms: [{ href: "https://d.example/l" }] },
        },
      }) as ThingDescription,
    );
    const w = await startWatching(["--thing", dimmer, "--kind", "reported", "--json"]);
    await client.report(dimmer, { kind: "reported", affordance: "level", value: null });
    await client.report(dimmer, { kind: "reported", affordance: "level", value: 7 });
    await client.report(dimmer, { kind: "reported", affordance: "level", value: null });
    await w.stdout.waitFor(() => w.stdout.seen.length === 3, "with the three Changes");
    const printed = w.stdout.seen.map((l) => JSON.parse(l) as Change);
    const logged = await Promise.all(printed.map((c) => client.change(c.seq)));
    expect(logged.map((c) => [c.value, c.previous])).toEqual([
      [null, undefined],
      [7, null],
      [null, 7],
    ]);
    expect(printed).toEqual(logged);
  });

  it("resumes after the hub restarts, with the Changes committed while it was away", async () => {
    const client = clientOf(hub);
    const w = await startWatching(["--thing", LAMP]);
    await client.report(LAMP, { kind: "reported", affordance: "brightness", value: 1 });
    await w.stdout.waitFor((l) => l.includes("reported  1  "), "with the first Change");
    const port = Number(new URL(hub.url).port);
    await hub.stop();
    await w.stderr.waitFor((l) => l.startsWith("connection lost"), "saying the connection dropped");
    hub = await startTestHub({ dataDir, port });
    // Reported before the watcher is back (it waits two seconds at least): it must be replayed.
    await clientOf(hub).report(LAMP, { kind: "reported", affordance: "brightness", value: 2 });
    await w.stderr.waitFor((l) => l.startsWith("reconnected; resuming after seq 2"), "saying it resumed");
    const line = await w.stdout.waitFor((l) => l.includes("reported  2  "), "with the second Change");
    expect(line).toContain("#3  urn:test:lamp  brightness");
    expect(w.stdout.seen).toHaveLength(2);
  });

  it("stops quietly on Ctrl-C while it waits for a hub that does not answer", async () => {
    const w = await startWatching(["--thing", LAMP]);
    await hub.stop();
    // A reconnection tried and failed: nothing answers at the hub's address now.
    await w.stderr.waitFor(
      (l) => l === "connection lost (1006: the hub does not answer); reconnecting",
      "saying the hub does not answer",
    );
    w.child.kill("SIGINT");
    expect(await w.exited).toBe(0);
    expect(
      w.stderr.seen.filter((l) => !l.startsWith("connection lost") && !l.startsWith("watching ")),
    ).toEqual([]);
    hub = await startTestHub({ dataDir }); // for afterEach, which stops it
  });
});

// ---------------------------------------------------------------------------------------------

describe("things verify, prove and export", () => {
  let hub: TestHub;
  let dataDir: string;
  let work: string;
  const clock = manualClock("2026-01-01T10:00:00.000Z");
  /** The seq this suite alters in the database. */
  const ALTERED = 12;

  async function start(): Promise<TestHub> {
    return startTestHub({ dataDir, checkpointEveryChanges: 10 }, {}, { clock: clock.now });
  }

  /** A copy of the hub's data directory as it is now, taken stopped (the hub runs again after). */
  async function backUp(): Promise<string> {
    const backup = mkdtempSync(join(tmpdir(), "hyperthings-backup-"));
    await hub.stop();
    cpSync(dataDir, backup, { recursive: true });
    hub = await start();
    return backup;
  }

  /** The hub restarted on `backup` in place of its data directory, as a restore does. */
  async function restore(backup: string): Promise<void> {
    await hub.stop();
    rmSync(dataDir, { recursive: true, force: true });
    cpSync(backup, dataDir, { recursive: true });
    rmSync(backup, { recursive: true, force: true });
    hub = await start();
  }

  /** A hub on a Log of its own: the lamp and its readings, seq 1..25. */
  async function startWithLog(): Promise<void> {
    dataDir = mkdtempSync(join(tmpdir(), "hyperthings-log-"));
    clock.set("2026-01-01T10:00:00.000Z");
    hub = await start();
    const client = clientOf(hub);
    await client.put(lampTd());
    // Three batches of eight, a minute apart: seq 2..9, 10..17, 18..25, with checkpoints signed
    // at sizes 17 (asked for here, so that its size does not depend on timing) and 25.
    for (let batch = 0; batch < 3; batch++) {
      clock.set(`2026-01-01T10:0${batch + 1}:00.000Z`);
      await eightReadings(batch * 8);
      if (batch === 1) expect((await client.checkpoint())?.size).toBe(17);
    }
  }

  async function stopWithLog(): Promise<void> {
    await hub.stop();
    rmSync(dataDir, { recursive: true, force: true });
  }

  /** Eight brightness readings of the lamp, the values from `first` on. */
  async function eightReadings(first: number): Promise<void> {
    const reports = Array.from({ length: 8 }, (_, i) => ({
      kind: "reported" as const,
      affordance: "brightness",
      value: first + i,
    }));
    await clientOf(hub).report(LAMP, reports);
  }

  /** Stops the hub, rewrites one Change's value behind the Log's back, and starts it again. */
  async function tamper(seq: number, value: string): Promise<void> {
    await hub.stop();
    const db = new Database(join(dataDir, "hyperthings.db"));
    try {
      db.exec("DROP TRIGGER changes_no_update");
      expect(db.prepare("UPDATE changes SET value = ? WHERE seq = ?").run(value, seq).changes).toBe(1);
    } finally {
      db.close();
    }
    hub = await start();
  }

  /**
   * A second lamp, registered (seq 26) and reporting between the first one's readings (seq 27..30:
   * theirs are 27 and 29), with a checkpoint of size 30: the export of LAMP holds seq 1..25, 27, 29.
   */
  async function secondLamp(): Promise<string> {
    const client = clientOf(hub);
    const other = "urn:test:lamp-2";
    clock.set("2026-01-01T10:04:00.000Z");
    await client.put({ ...lampTd(), id: other, title: "Hall lamp" });
    for (let i = 0; i < 2; i++) {
      await client.report(LAMP, [{ kind: "reported", affordance: "brightness", value: 100 + i }]);
      await client.report(other, [{ kind: "reported", affordance: "brightness", value: 200 + i }]);
    }
    expect((await client.checkpoint())?.size).toBe(30);
    return other;
  }

  beforeEach(() => {
    work = mkdtempSync(join(tmpdir(), "hyperthings-export-"));
  });

  afterEach(() => {
    rmSync(work, { recursive: true, force: true });
  });

  // Most tests only read the Log (the files they write go to \`work\`): they share one hub, which
  // keeps the time at 10:03, as after the last batch. Starting a hub and building its Log for
  // each of them was a third of this file's time.
  describe("on one Log, which they only read", () => {
    beforeAll(startWithLog);
    afterAll(stopWithLog);

    it("verify --db reads a database in a directory it cannot write (a read-only copy) through a copy of its own, -wal included", async () => {
      // Copied while the hub runs, as a responder would: its Changes are in the -wal (not yet
      // checkpointed), and the -shm, a live index that belongs to the running hub, is left out.
      const copy = join(work, "read-only");
      cpSync(dataDir, copy, { recursive: true });
      rmSync(join(copy, "hyperthings.db-shm"));
      expect(statSync(join(copy, "hyperthings.db-wal")).size).toBeGreaterThan(0);
      for (const file of readdirSync(copy)) chmodSync(join(copy, file), 0o444);
      chmodSync(copy, 0o555);
      chmodSync(work, 0o755);
      // Root writes where mode bits say no: the command then runs as nobody, for whom they hold.
      const user = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : undefined;
      const db = join(copy, "hyperthings.db");
      let run: ThingsRun;
      try {
        run = await runThingsToEnd(["verify", "--db", db], {
          env: { TZ: "UTC" },
          ...(user !== undefined && { user }),
        });
      } finally {
        chmodSync(copy, 0o755);
      }
      expect(run.stdout).toMatch(/^verified 25 changes, \d+ checkpoints?, log root [0-9a-f]{64} signed at /);
      expect(run.code).toBe(0);
      const note =
        /^things: \S+hyperthings\.db cannot be read in place \(SQLite writes beside a database in WAL mode, and \S+ or its -wal\/-shm is not writable here\): verifying a copy made in (\S+), removed after\n$/.exec(
          run.stderr,
        );
      expect(note, run.stderr).not.toBeNull();
      expect(existsSync(note?.[1] ?? "")).toBe(false);
      // Nothing was written beside the file.
      expect(readdirSync(copy).filter((f) => f.endsWith("-shm"))).toEqual([]);
    });

    it("verify passes on an intact Log: every Change, every checkpoint, the latest root", async () => {
      const run = await thingsAt(hub, ["verify"]);
      expect(run).toMatchObject({ code: 0, stderr: "" });
      expect(run.stdout).toMatch(
        /^verified 25 changes, \d+ checkpoints?, log root [0-9a-f]{64} signed at 2026-01-01T10:03:00\.000Z by \S+ \(key SHA256:\S+\)\n$/,
      );
      const json = await thingsAt(hub, ["verify", "--json"]);
      expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, size: 25 });
      for (const threads of ["0", "2"]) {
        const run = await thingsAt(hub, ["verify", "--json", "--threads", threads]);
        expect(JSON.parse(run.stdout)).toMatchObject({ ok: true, size: 25 });
      }
    });

    it("verify --db stopped by SIGINT or SIGTERM removes the copy it made of a file it could not read in place", async () => {
      for (const [signal, code] of [
        ["SIGINT", 130],
        ["SIGTERM", 143],
      ] as const) {
        const copy = join(work, `read-only-${signal}`);
        cpSync(dataDir, copy, { recursive: true });
        rmSync(join(copy, "hyperthings.db-shm"));
        // hub-id, read after the copy is made, as a FIFO: the command waits there, mid-verification,
        // until the test has sent its signal and then writes the id.
        const hubId = readFileSync(join(copy, "hub-id"), "utf8");
        const fifo = join(copy, "hub-id");
        rmSync(fifo);
        execFileSync("mkfifo", [fifo]);
        for (const file of readdirSync(copy)) chmodSync(join(copy, file), 0o444);
        chmodSync(copy, 0o555);
        chmodSync(work, 0o755);
        const asNobody = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
        // On a hashing thread, as a Log past one page is verified: waiting for the thread's hashes
        // gives the signal its turn of the loop. (This Log of 25 Changes is otherwise hashed on
        // the main thread, through to its verdict without one.)
        const child = spawn(
          process.execPath,
          [BIN, "verify", "--threads", "1", "--db", join(copy, "hyperthings.db")],
          { env: environment(), ...asNobody },
        );
        try {
          let stderr = "";
          const exited = new Promise<number | null>((resolve) => child.on("close", (c) => resolve(c)));
          const made = await new Promise<string>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`no copy noted: ${stderr}`)), LINE_BOUND_MS);
            child.stderr.on("data", (chunk: Buffer) => {
              stderr += chunk.toString("utf8");
              const note = /verifying a copy made in (\S+), removed after\n/.exec(stderr);
              if (note?.[1] !== undefined) {
                clearTimeout(timer);
                resolve(note[1]);
              }
            });
          });
          expect(existsSync(made)).toBe(true);
          child.kill(signal);
          // Then unblocks the read of hub-id: opening a FIFO to write waits for its reader (off the
          // test's thread; a command that died at the signal never opens it, and finally releases it).
          const writing = open(fifo, "w").then(async (handle) => {
            try {
              await handle.writeFile(hubId);
            } finally {
              await handle.close();
            }
          });
          try {
            expect(await exited, stderr).toBe(code);
            expect(stderr).toContain(
              `things: verify interrupted (${signal}); its copy in ${made} was removed\n`,
            );
            expect(existsSync(made)).toBe(false);
          } finally {
            const reader = openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK);
            await writing.catch(() => undefined);
            closeSync(reader);
            rmSync(made, { recursive: true, force: true });
          }
        } finally {
          child.kill("SIGKILL");
          chmodSync(copy, 0o755);
        }
      }
    });

    it("prove checks the Change against a checkpoint of an earlier size, and refuses a size never signed", async () => {
      const sizes: number[] = [];
      for await (const c of clientOf(hub).checkpointsAll()) sizes.push(c.size);
      expect(sizes).toContain(17);
      const earlier = 17;
      const run = await thingsAt(hub, ["prove", "5", "--size", String(earlier), "--json"]);
      expect(run.code).toBe(0);
      expect(JSON.parse(run.stdout)).toMatchObject({ ok: true, seq: 5, size: earlier });
      const refused = await thingsAt(hub, ["prove", "5", "--size", "20"]);
      expect(refused.code).toBe(1);
      expect(refused.stderr).toMatch(/^things: no checkpoint was signed at size \d+[^\n]*\n$/);
      // The hub's refusal without the place in a query the user never wrote.
      const past = await thingsAt(hub, ["prove", "999"]);
      expect(past.code).toBe(1);
      expect(past.stderr).toBe(
        "things: seq 999 is past the tree of 25 Changes: it must be a whole number from 1 to 25\n",
      );
      const pastEarlier = await thingsAt(hub, ["prove", "18", "--size", String(earlier)]);
      expect(pastEarlier.code).toBe(1);
      expect(pastEarlier.stderr).toBe(
        "things: seq 18 is past the tree of 17 Changes: it must be a whole number from 1 to 17\n",
      );
    });

    it("export writes a header, the Changes and the signed checkpoint, and verify --file checks it offline", async () => {
      const file = join(work, "log.ndjson");
      const run = await thingsAt(hub, ["export", "--out", file]);
      expect(run).toMatchObject({ code: 0, stderr: "" });
      expect(run.stdout).toMatch(/^exported 25 changes \(seq 1\.\.25\) to /);
      // Every value of the Log, in a file other users of the machine may not read.
      expect((statSync(file).mode & 0o777).toString(8)).toBe("600");
      const lines = readFileSync(file, "utf8")
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines).toHaveLength(27);
      expect(lines[0]).toMatchObject({ type: "header", from: 1, to: 25, prefix: { size: 0, hashes: [] } });
      expect(lines[1]).toMatchObject({ type: "change", change: { seq: 1, kind: "described" } });
      expect(lines[26]).toMatchObject({ type: "checkpoint", checkpoint: { size: 25 } });
      // No hub: the URL names nothing that listens.
      const verified = await things(["verify", "--file", file, "--url", "http://127.0.0.1:9"]);
      expect(verified).toMatchObject({ code: 0, stderr: "" });
      expect(verified.stdout).toMatch(
        /^verified 25 changes \(seq 1\.\.25\), checkpoint of size 25, log root [0-9a-f]{64} /,
      );
      // `--out -` is standard output, as `things add -` reads standard input: the export there,
      // the summary on stderr, and no file named "-".
      for (const args of [["export"], ["export", "--thing", LAMP]]) {
        const piped = await runThingsToEnd([...args, "--out", "-", "--url", hub.url, "--token", hub.token], {
          env: { TZ: "UTC" },
          cwd: work,
        });
        expect(piped.code).toBe(0);
        expect(piped.stderr).toMatch(/^exported \d+ changes .*to standard output, /);
        const copy = join(work, `piped-${args.length}.ndjson`);
        writeFileSync(copy, piped.stdout);
        expect((await things(["verify", "--file", copy])).code).toBe(0);
      }
      expect(readdirSync(work)).not.toContain("-");
      // Nothing since a time: said as such (the checkpoint, signed on asking, covers every Change
      // committed), and no file is written.
      const empty = join(work, "empty.ndjson");
      for (const args of [["export"], ["export", "--thing", LAMP]]) {
        const nothing = await thingsAt(hub, [...args, "--since", "2026-01-01T11:00:00Z", "--out", empty]);
        expect(nothing.code).toBe(1);
        expect(nothing.stderr).toMatch(
          /^things: (urn:test:lamp has )?no change since 2026-01-01T11:00:00\.000Z in the Log up to its latest checkpoint \(size 25\): nothing to export\n$/,
        );
      }
      expect(readdirSync(work)).not.toContain("empty.ndjson");
    });

    it("checkpoint and export --out naming a folder say it is a folder (exit 2), with --force too, and write nothing", async () => {
      const folder = join(work, "kept");
      execFileSync("mkdir", [folder]);
      for (const [args, example] of [
        [["checkpoint", "--out", folder], "checkpoint.json"],
        [["export", "--out", folder], "log.ndjson.gz"],
        [["export", "--out", folder, "--force"], "log.ndjson.gz"],
        [["export", "--thing", LAMP, "--out", folder, "--force"], "log.ndjson.gz"],
      ] as const) {
        expect(await thingsAt(hub, [...args])).toEqual({
          code: 2,
          stdout: "",
          stderr: `things: --out ${folder} is a folder: name a file to write, such as ${join(folder, example)}\n`,
        });
      }
      expect(readdirSync(work)).toEqual(["kept"]);
      expect(readdirSync(folder)).toEqual([]);
    });

    it("export --out below a file (not a folder) says so in words, not Node's ENOTDIR", async () => {
      const file = join(work, "notes.txt");
      writeFileSync(file, "notes\n");
      const out = join(file, "log.ndjson");
      expect(await thingsAt(hub, ["export", "--out", out])).toEqual({
        code: 1,
        stdout: "",
        stderr: `things: cannot write --out ${out}: a part of its path is not a folder\n`,
      });
      expect(readdirSync(work)).toEqual(["notes.txt"]);
    });

    it("export never writes over an existing file unless --force is given", async () => {
      const file = join(work, "kept.ndjson");
      writeFileSync(file, "evidence\n");
      for (const args of [
        ["export", "--out", file],
        ["export", "--thing", LAMP, "--out", file],
      ]) {
        const refused = await thingsAt(hub, args);
        expect(refused.code).toBe(2);
        expect(refused.stderr).toBe(
          `things: ${file} exists: name a new file, or add --force to replace it\n`,
        );
        expect(readFileSync(file, "utf8")).toBe("evidence\n");
      }
      const forced = await thingsAt(hub, ["export", "--out", file, "--force"]);
      expect(forced).toMatchObject({ code: 0, stderr: "" });
      expect(readFileSync(file, "utf8")).toMatch(/^\{"type":"header"/);
      expect(readdirSync(work).filter((name) => name.includes(".partial-"))).toEqual([]);
      const help = await things(["export", "--help"]);
      expect(help.stdout).toContain("0 written");
      expect(help.stdout).not.toContain("0 verified");
    });

    it("an export stopped by Ctrl-C or SIGTERM leaves no partial file behind", async () => {
      // A proxy to the hub that sends the first line of /log/entries and then holds the answer open:
      // the export is mid-run, its partial file written, when the signal comes.
      const held: ServerResponse[] = [];
      let entriesAsked: () => void = () => undefined;
      const proxy = createServer((req, res) => {
        void (async () => {
          const answer = await fetch(`${hub.url}${req.url ?? "/"}`, {
            headers: { authorization: `Bearer ${hub.token}` },
          });
          const body = await answer.text();
          res.statusCode = answer.status;
          for (const name of ["content-type", "link"]) {
            const value = answer.headers.get(name);
            if (value !== null) res.setHeader(name, value);
          }
          if (!(req.url ?? "").startsWith("/log/entries")) return res.end(body);
          res.write(`${body.split("\n")[0] ?? ""}\n`);
          held.push(res);
          entriesAsked();
        })();
      });
      proxy.listen(0, "127.0.0.1");
      await once(proxy, "listening");
      const url = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
      try {
        for (const [signal, code] of [
          ["SIGINT", 130],
          ["SIGTERM", 143],
        ] as const) {
          const asked = new Promise<void>((resolve) => (entriesAsked = resolve));
          const child = spawn(
            process.execPath,
            [BIN, "export", "--out", join(work, "cut.ndjson"), "--url", url],
            {
              env: environment(),
            },
          );
          let stderr = "";
          child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
          const exited = once(child, "close");
          await asked;
          // The header is in the partial file before the signal.
          await waitForFile(work, (name) => name.startsWith("cut.ndjson.partial-"), 1);
          child.kill(signal);
          const [exitCode] = (await exited) as [number | null];
          expect(exitCode, stderr).toBe(code);
          expect(stderr).toBe(
            `things: export interrupted (${signal}); nothing was written to ${join(work, "cut.ndjson")}\n`,
          );
          expect(readdirSync(work)).toEqual([]);
        }
      } finally {
        for (const res of held) res.destroy();
        proxy.close();
      }
    });

    it("verify of a hub stopped by Ctrl-C or SIGTERM mid-run ends with one line and exit 130 or 143", async () => {
      // A proxy to the hub that holds /log/entries unanswered: verify is mid-run when the signal comes.
      const held: ServerResponse[] = [];
      let entriesAsked: () => void = () => undefined;
      const proxy = createServer((req, res) => {
        if ((req.url ?? "").startsWith("/log/entries")) {
          held.push(res);
          return entriesAsked();
        }
        void (async () => {
          const answer = await fetch(`${hub.url}${req.url ?? "/"}`);
          res.statusCode = answer.status;
          const type = answer.headers.get("content-type");
          if (type !== null) res.setHeader("content-type", type);
          res.end(await answer.text());
        })();
      });
      proxy.listen(0, "127.0.0.1");
      await once(proxy, "listening");
      const url = `http://127.0.0.1:${(proxy.address() as AddressInfo).port}`;
      try {
        for (const [signal, code] of [
          ["SIGINT", 130],
          ["SIGTERM", 143],
        ] as const) {
          const asked = new Promise<void>((resolve) => (entriesAsked = resolve));
          const child = spawn(process.execPath, [BIN, "verify", "--url", url], { env: environment() });
          let stdout = "";
          let stderr = "";
          child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
          child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
          const exited = once(child, "close");
          await asked;
          child.kill(signal);
          const [exitCode] = (await exited) as [number | null];
          expect({ exitCode, stdout, stderr }).toEqual({
            exitCode: code,
            stdout: "",
            stderr: `things: verify interrupted (${signal})\n`,
          });
        }
      } finally {
        for (const res of held) res.destroy();
        proxy.close();
      }
    });

    it("a partial export carries the hashes left of its range and a consistency proof, and verifies", async () => {
      const file = join(work, "since.ndjson");
      const run = await thingsAt(hub, ["export", "--since", "2026-01-01T10:03:00Z", "--out", file]);
      expect(run.code).toBe(0);
      expect(run.stdout).toMatch(
        /^exported 8 changes \(seq 18\.\.25\) to .*, with the checkpoint of size 25 .* and a consistency proof from size 17\n$/,
      );
      const header = JSON.parse(readFileSync(file, "utf8").split("\n")[0] ?? "") as {
        prefix: { size: number; hashes: string[] };
      };
      // 17 = 16 + 1: the roots of the subtrees of seq 1..16 and of seq 17.
      expect(header.prefix.size).toBe(17);
      expect(header.prefix.hashes).toHaveLength(2);
      const verified = await things(["verify", "--file", file]);
      expect(verified.code).toBe(0);
      expect(verified.stdout).toMatch(
        /^verified 8 changes \(seq 18\.\.25\), .*; changes 1\.\.17 are covered by hashes only; consistent with the checkpoint of size 17 /,
      );
      const json = await things(["verify", "--file", file, "--json"]);
      expect(JSON.parse(json.stdout)).toMatchObject({
        ok: true,
        from: 18,
        to: 25,
        size: 8,
        consistentWith: 17,
      });
      const middle = join(work, "middle.ndjson");
      expect((await thingsAt(hub, ["export", "--since", "2026-01-01T10:02:00Z", "--out", middle])).code).toBe(
        0,
      );
      expect(JSON.parse((await things(["verify", "--file", middle, "--json"])).stdout)).toMatchObject({
        ok: true,
        from: 10,
        to: 25,
      });
    });

    it("verify --file names the seq of a hand-edited Change, and fails an edit that recomputes the leaf too", async () => {
      const file = join(work, "log.ndjson");
      expect((await thingsAt(hub, ["export", "--out", file])).code).toBe(0);
      const lines = readFileSync(file, "utf8").trimEnd().split("\n");
      const edit = (seq: number, change: (c: Change) => void): string => {
        const copy = [...lines];
        const entry = JSON.parse(copy[seq] ?? "") as { change: Change };
        change(entry.change);
        copy[seq] = JSON.stringify(entry);
        const path = join(work, `edited-${seq}.ndjson`);
        writeFileSync(path, `${copy.join("\n")}\n`);
        return path;
      };
      const valueOnly = await things(["verify", "--file", edit(9, (c) => (c.value = 999))]);
      expect(valueOnly.code).toBe(3);
      expect(valueOnly.stdout).toMatch(/^log verification FAILED at seq 9: .*edited\n$/);
      const withLeaf = await things([
        "verify",
        "--file",
        edit(9, (c) => {
          c.value = 999;
          c.leaf = hashToHex(changeLeafHash(c));
        }),
      ]);
      expect(withLeaf.code).toBe(3);
      expect(withLeaf.stdout).toMatch(
        /^log verification FAILED in seq 1\.\.25: .*one of seq 1\.\.25 .*differs from what was signed\n$/,
      );
      const truncated = join(work, "truncated.ndjson");
      writeFileSync(truncated, `${lines.slice(0, -1).join("\n")}\n`);
      const cut = await things(["verify", "--file", truncated]);
      expect(cut.code).toBe(3);
      expect(cut.stdout).toMatch(
        /FAILED: the export ends after seq 25 without its checkpoint: it is incomplete\n$/,
      );
      // Cut inside the checkpoint's line: no Change after seq 25 is to blame.
      const cutLast = join(work, "cut-last.ndjson");
      writeFileSync(cutLast, lines.join("\n").slice(0, -40));
      const cutInLast = await things(["verify", "--file", cutLast, "--json"]);
      expect(cutInLast.code).toBe(3);
      expect(JSON.parse(cutInLast.stdout)).toEqual({
        ok: false,
        problem: "truncated",
        reason: "line 27 ends in the middle of its JSON: the file was cut short",
      });
      // A line broken elsewhere than at its end is no JSON, said as such.
      const broken = join(work, "broken.ndjson");
      writeFileSync(broken, `${[...lines.slice(0, 5), "{oops", ...lines.slice(6)].join("\n")}\n`);
      expect(JSON.parse((await things(["verify", "--file", broken, "--json"])).stdout)).toMatchObject({
        problem: "not-json",
        reason: "line 6 is not JSON",
      });
      // A line repeated (line 10 holds seq 10): said as such, not as a Change found in its place.
      const repeated = join(work, "repeated.ndjson");
      writeFileSync(repeated, `${[...lines.slice(0, 11), lines[10], ...lines.slice(11)].join("\n")}\n`);
      const again = await things(["verify", "--file", repeated]);
      expect(again.code).toBe(3);
      expect(again.stdout).toBe(
        "log verification FAILED at seq 11: line 12: change 10 comes after change 10: the export's lines are out of order, or one is repeated\n",
      );
    });

    it("verify --file fails an export with one byte changed in a value, a proof, the prefix or a signature, and says where", async () => {
      // Seq 18..25, with the hashes of seq 1..17 and a consistency proof from the checkpoint of 17.
      const file = join(work, "since.ndjson");
      expect((await thingsAt(hub, ["export", "--since", "2026-01-01T10:03:00Z", "--out", file])).code).toBe(
        0,
      );
      const lines = readFileSync(file, "utf8").trimEnd().split("\n");
      interface Header {
        prefix: { hashes: string[] };
      }
      interface Trailer {
        checkpoint: { signature: string };
        proofs: {
          inclusion: { seq: number; proof: string[] }[];
          consistency: { checkpoint: { size: number; signature: string }; proof: string[] };
        };
      }
      expect((JSON.parse(lines.at(-1) ?? "") as Trailer).proofs.consistency.checkpoint.size).toBe(17);
      /** One character of a hash (hex) or a signature (base64) changed for another of its alphabet. */
      const BASE64 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
      const flip = (text: string): string => {
        const c = text[10] ?? "";
        const other = /^[0-9a-f]{64}$/.test(text)
          ? (parseInt(c, 16) ^ 1).toString(16)
          : (BASE64[BASE64.indexOf(c) ^ 1] ?? "");
        return text.slice(0, 10) + other + text.slice(11);
      };
      /** The export with line `index` edited (re-serialised as the export writes it: one byte differs). */
      const edited = <T>(name: string, index: number, edit: (line: T) => void): string => {
        const copy = [...lines];
        const at = index < 0 ? copy.length + index : index;
        const line = JSON.parse(copy[at] ?? "") as T;
        edit(line);
        copy[at] = JSON.stringify(line);
        const path = join(work, `${name}.ndjson`);
        writeFileSync(path, `${copy.join("\n")}\n`);
        expect(readFileSync(path).length, name).toBe(readFileSync(file).length);
        return path;
      };
      // Seq 21's reading as written in the file, 19, made 18: the bytes themselves, not re-serialised.
      const valueLine = lines.findIndex((l) => l.includes('"seq":21,'));
      const value = join(work, "value.ndjson");
      writeFileSync(
        value,
        `${lines.map((l, i) => (i === valueLine ? l.replace('"value":19,', '"value":18,') : l)).join("\n")}\n`,
      );
      const cases: [string, string, RegExp][] = [
        [
          "value",
          value,
          /^log verification FAILED at seq 21: the Change hashes to [0-9a-f]{64}, but the export records its leaf as "[0-9a-f]{64}": it was edited\n$/,
        ],
        [
          "first inclusion proof",
          edited<Trailer>("first", -1, (t) => {
            const proof = t.proofs.inclusion.find((p) => p.seq === 18)?.proof ?? [];
            proof[0] = flip(proof[0] ?? "");
          }),
          /^log verification FAILED at seq 18: the inclusion proof of change 18 does not lead to the signed root\n$/,
        ],
        [
          "last inclusion proof",
          edited<Trailer>("last", -1, (t) => {
            const proof = t.proofs.inclusion.find((p) => p.seq === 25)?.proof ?? [];
            proof[proof.length - 1] = flip(proof.at(-1) ?? "");
          }),
          /^log verification FAILED at seq 25: the inclusion proof of change 25 does not lead to the signed root\n$/,
        ],
        [
          "prefix",
          edited<Header>("prefix", 0, (h) => (h.prefix.hashes[0] = flip(h.prefix.hashes[0] ?? ""))),
          /^log verification FAILED in seq 18\.\.25: the exported changes after the prefix hash to the root [0-9a-f]{64}, but the checkpoint of 2026-01-01T10:03:00\.000Z signs [0-9a-f]{64}/,
        ],
        [
          "consistency proof",
          edited<Trailer>("consistency", -1, (t) => {
            const proof = t.proofs.consistency.proof;
            proof[0] = flip(proof[0] ?? "");
          }),
          /^log verification FAILED: the tree signed at 2026-01-01T10:02:00\.000Z \(17 changes\) is not a prefix of the tree signed at 2026-01-01T10:03:00\.000Z/,
        ],
        [
          "checkpoint signature",
          edited<Trailer>("signature", -1, (t) => (t.checkpoint.signature = flip(t.checkpoint.signature))),
          /^log verification FAILED: the checkpoint: checkpoint signature does not verify with the given public key\n$/,
        ],
        [
          "earlier checkpoint signature",
          edited<Trailer>("earlier", -1, (t) => {
            const earlier = t.proofs.consistency.checkpoint;
            earlier.signature = flip(earlier.signature);
          }),
          /^log verification FAILED: the earlier checkpoint: checkpoint signature does not verify with the given public key\n$/,
        ],
      ];
      for (const [name, path, said] of cases) {
        const run = await things(["verify", "--file", path]);
        expect(run.code, name).toBe(3);
        expect(run.stdout, name).toMatch(said);
      }
    });

    it("export --thing leaves no file behind when a proof request fails half-way, plain or gzip", async () => {
      // A stand-in for a hub that fails its second request for proofs (the first was answered).
      const thing = "urn:test:failing";
      const zeros = "00".repeat(32);
      const changes = Array.from({ length: 1200 }, (_, i) => ({
        seq: i + 1,
        hlc: "0000000000000000-0000-urn:x",
        thing,
        kind: "reported",
        affordance: "brightness",
        value: i,
        cause: { actor: "test" },
        leaf: zeros,
      }));
      let proofRequests = 0;
      const server = createServer((req, res) => {
        const url = new URL(req.url ?? "/", "http://stand-in");
        const send = (status: number, body: unknown, type = "application/json") => {
          res.writeHead(status, { "content-type": type });
          res.end(JSON.stringify(body));
        };
        if (url.pathname === "/log/key")
          return send(200, { origin: "urn:x", algorithm: "Ed25519", publicKey: "k" });
        if (url.pathname === "/log/checkpoint")
          return send(200, {
            origin: "urn:x",
            size: 1200,
            root: zeros,
            time: "2026-01-01T00:00:00.000Z",
            signature: "s",
          });
        if (url.pathname === `/things/${thing}/history`) return send(200, { changes });
        if (url.pathname === "/log/proof/inclusions" && ++proofRequests !== 2) {
          const seqs = (url.searchParams.get("seqs") ?? "").split(",").map(Number);
          return send(200, {
            size: 1200,
            root: zeros,
            proofs: seqs.map((seq) => ({ seq, leaf: zeros, proof: [] })),
          });
        }
        const problem = {
          type: "about:blank",
          title: "Internal error",
          status: 500,
          detail: "the disk went away",
        };
        return send(500, problem, "application/problem+json");
      });
      server.listen(0, "127.0.0.1");
      await once(server, "listening");
      try {
        const { port } = server.address() as AddressInfo;
        // Plain and through gzip alike.
        for (const name of ["failing.ndjson", "failing.ndjson.gz"]) {
          proofRequests = 0;
          const run = await things([
            "export",
            "--thing",
            thing,
            "--out",
            join(work, name),
            "--url",
            `http://127.0.0.1:${port}`,
          ]);
          expect(run.code).toBe(1);
          expect(run.stderr).toMatch(/the disk went away/);
          expect(proofRequests).toBe(3);
          // Neither the file nor its partial copy.
          expect(readdirSync(work)).toEqual([]);
        }
      } finally {
        server.close();
      }
    });

    it("export to a name ending in .gz writes gzip, and verify --file reads gzip whatever its name", async () => {
      const plain = join(work, "log.ndjson");
      const zipped = join(work, "log.ndjson.gz");
      expect((await thingsAt(hub, ["export", "--out", plain])).code).toBe(0);
      expect((await thingsAt(hub, ["export", "--out", zipped])).code).toBe(0);
      const bytes = readFileSync(zipped);
      expect([bytes[0], bytes[1]]).toEqual([0x1f, 0x8b]);
      // The same lines, but for the time of the export in the header.
      const linesOf = (text: string) =>
        text
          .trimEnd()
          .split("\n")
          .map((l) => JSON.parse(l) as Record<string, unknown>)
          .map(({ exportedAt: _at, ...rest }) => rest);
      expect(linesOf(gunzipSync(bytes).toString("utf8"))).toEqual(linesOf(readFileSync(plain, "utf8")));
      const fromPlain = await things(["verify", "--file", plain]);
      const fromZipped = await things(["verify", "--file", zipped]);
      expect(fromZipped).toMatchObject({ code: 0, stderr: "" });
      expect(fromZipped.stdout).toBe(fromPlain.stdout);
      // One Thing's export too, and a gzip file under any name.
      const lamp = join(work, "lamp.ndjson.gz");
      expect((await thingsAt(hub, ["export", "--thing", LAMP, "--out", lamp])).code).toBe(0);
      const renamed = join(work, "lamp.export");
      writeFileSync(renamed, readFileSync(lamp));
      const thing = await things(["verify", "--file", renamed]);
      expect(thing).toMatchObject({ code: 0, stderr: "" });
      expect(thing.stdout).toMatch(/^verified 25 changes of urn:test:lamp /);
    });

    it("verify --file fails a gzip export cut short, and finds an edit inside a gzip export as in a plain one", async () => {
      const zipped = join(work, "log.ndjson.gz");
      expect((await thingsAt(hub, ["export", "--out", zipped])).code).toBe(0);
      const bytes = readFileSync(zipped);
      const cut = join(work, "cut.ndjson.gz");
      writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length / 2)));
      const truncated = await things(["verify", "--file", cut]);
      expect(truncated.code).toBe(3);
      expect(truncated.stdout).toMatch(
        /^log verification FAILED: .*cut\.ndjson\.gz is not a whole gzip stream \(/,
      );
      const lines = gunzipSync(bytes).toString("utf8").trimEnd().split("\n");
      const entry = JSON.parse(lines[9] ?? "") as { change: Change };
      entry.change.value = 999;
      lines[9] = JSON.stringify(entry);
      const edited = join(work, "edited.ndjson.gz");
      writeFileSync(edited, gzipSync(`${lines.join("\n")}\n`));
      const run = await things(["verify", "--file", edited]);
      expect(run.code).toBe(3);
      expect(run.stdout).toMatch(/^log verification FAILED at seq 9: /);
    });

    it("verify --file fails a checkpoint not signed by the export's key, and a key other than the pinned one", async () => {
      const file = join(work, "log.ndjson");
      expect((await thingsAt(hub, ["export", "--out", file])).code).toBe(0);
      const lines = readFileSync(file, "utf8").trimEnd().split("\n");
      const trailer = JSON.parse(lines.at(-1) ?? "") as { checkpoint: { time: string } };
      trailer.checkpoint.time = "2026-01-01T11:00:00.000Z";
      const forged = join(work, "forged.ndjson");
      writeFileSync(forged, `${[...lines.slice(0, -1), JSON.stringify(trailer)].join("\n")}\n`);
      const run = await things(["verify", "--file", forged]);
      expect(run.code).toBe(3);
      expect(run.stdout).toMatch(
        /^log verification FAILED: the checkpoint: checkpoint signature does not verify/,
      );
      // A key from another hub: the file is consistent, but not signed by the key trusted.
      const other = await startTestHub();
      try {
        const keyFile = join(work, "other.pem");
        writeFileSync(keyFile, (await clientOf(other).logKey()).publicKey);
        const pinned = await things(["verify", "--file", file, "--key", keyFile]);
        expect(pinned.code).toBe(3);
        expect(pinned.stdout).toMatch(
          /^log verification FAILED: the export's key SHA256:\S+ is not the key in /,
        );
        // A --key that is no key at all is a usage error (2), not a failed verification (3).
        const notKey = join(work, "not-a-key.pem");
        writeFileSync(notKey, "root:x:0:0:root:/root:/bin/bash\n");
        const bad = await things(["verify", "--file", file, "--key", notKey]);
        expect(bad.code).toBe(2);
        expect(bad.stderr).toMatch(
          /^things: --key \S+not-a-key\.pem is not a public key in PEM \(-----BEGIN PUBLIC KEY-----, as GET \/log\/key gives it\)\n$/,
        );
        // One that cannot be read failed to run (1), as the help's exit codes say.
        const missing = await things(["verify", "--file", file, "--key", join(work, "missing.pem")]);
        expect(missing.code).toBe(1);
        expect(missing.stderr).toMatch(
          /^things: cannot read --key \S+missing\.pem: no such file or folder\n$/,
        );
      } finally {
        await other.stop();
      }
    });
  });

  // These change the Log, the hub or its files (altered, restored, stopped, with more Changes):
  // each starts from a Log of its own.
  describe("each on a Log of its own, which it changes", () => {
    beforeEach(startWithLog);
    afterEach(stopWithLog);

    it("verify --checkpoint takes an export taken before a restore from backup, and catches the Changes signed again since", async () => {
      const backup = await backUp();
      clock.set("2026-01-01T10:05:00.000Z");
      await eightReadings(100);
      // The evidence an incident responder took before the restore: a run and one Thing, gzipped.
      const run = join(work, "run.ndjson");
      const lamp = join(work, "lamp.ndjson.gz");
      expect((await thingsAt(hub, ["export", "--since", "2026-01-01T10:03:00Z", "--out", run])).code).toBe(0);
      expect((await thingsAt(hub, ["export", "--thing", LAMP, "--out", lamp])).code).toBe(0);
      const intact = await thingsAt(hub, ["verify", "--checkpoint", run, lamp]);
      expect(intact).toMatchObject({ code: 0, stderr: "" });
      expect(intact.stdout).toMatch(
        /^verified 33 changes, \d+ checkpoints? and 2 saved \(sizes 33, 33\), log root /,
      );

      // Restored from the backup of 25, the hub signs other Changes as seq 26..33 with the same key:
      // each export still verifies alone, and only holding it against the hub tells.
      await restore(backup);
      await eightReadings(200);
      expect((await things(["verify", "--file", run])).code).toBe(0);
      for (const kept of [run, lamp]) {
        const rewritten = await thingsAt(hub, ["verify", "--checkpoint", kept]);
        expect(rewritten.code, rewritten.stderr).toBe(3);
        expect(rewritten.stdout).toMatch(
          /^log verification FAILED in seq 26\.\.33: the Merkle root of seq 1\.\.33 is [0-9a-f]{64}, but the checkpoint of .* signs [0-9a-f]{64}: one of seq 26\.\.33 differs from what was signed\n$/,
        );
      }
      // An export cut short carries no checkpoint: said in one line, not taken as one.
      const cut = join(work, "cut.ndjson");
      writeFileSync(cut, `${readFileSync(run, "utf8").split("\n").slice(0, 3).join("\n")}\n`);
      expect(await thingsAt(hub, ["verify", "--checkpoint", cut])).toMatchObject({
        code: 1,
        stdout: "",
        stderr: `things: ${cut} is an export without its checkpoint at the end: it is incomplete\n`,
      });
    }, 90_000);

    it("verify --db of a folder says it is one, naming the database in a hub's data directory", async () => {
      expect(await things(["verify", "--db", dataDir])).toEqual({
        code: 2,
        stdout: "",
        stderr: `things: --db ${dataDir} is a folder: give the database file in it, ${join(dataDir, "hyperthings.db")}\n`,
      });
      expect(await things(["verify", "--db", work])).toEqual({
        code: 2,
        stdout: "",
        stderr: `things: --db ${work} is a folder: give the database file (a hub's hyperthings.db)\n`,
      });
    });

    it("verify --db of a file that does not exist says so, not that no key is beside it", async () => {
      const missing = join(work, "no-such.db");
      expect(await things(["verify", "--db", missing])).toMatchObject({
        code: 1,
        stdout: "",
        stderr: `things: cannot read --db ${missing}: no such file\n`,
      });
    });

    it("verify --db of a Log it hashes on its own thread hears Ctrl-C mid-run: it stops before its verdict", async () => {
      // 5,000 more readings: a Log of up to 20,000 Changes is hashed on the main thread, a page at
      // once read from the file, with no I/O to wait for in between.
      for (let batch = 0; batch < 5; batch++) {
        const reports = Array.from({ length: 1000 }, (_, i) => ({
          kind: "reported" as const,
          affordance: "brightness",
          value: i,
        }));
        await clientOf(hub).report(LAMP, reports);
      }
      const copy = await backUp();
      try {
        // hub-id as a FIFO: the command waits there, before it reads a Change, until the test has
        // sent SIGINT; then it verifies with the signal pending.
        const hubId = readFileSync(join(copy, "hub-id"), "utf8");
        const fifo = join(copy, "hub-id");
        rmSync(fifo);
        execFileSync("mkfifo", [fifo]);
        const child = spawn(process.execPath, [BIN, "verify", "--db", join(copy, "hyperthings.db")], {
          env: environment(),
        });
        let stdout = "";
        let stderr = "";
        child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
        child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
        const exited = once(child, "close");
        try {
          // Opening a FIFO to write waits for its reader: the command is then reading hub-id.
          const writer = await open(fifo, "w");
          child.kill("SIGINT");
          await writer.writeFile(hubId);
          await writer.close();
          const [code] = (await exited) as [number | null];
          expect({ code, stdout, stderr }).toEqual({
            code: 130,
            stdout: "",
            stderr: "things: verify interrupted (SIGINT)\n",
          });
        } finally {
          child.kill("SIGKILL");
        }
      } finally {
        rmSync(copy, { recursive: true, force: true });
      }
    });

    it("checkpoint keeps a signed checkpoint; verify --checkpoint then catches a Log cut short, or rewritten and signed again", async () => {
      // A copy of the hub's data as it is at 25 Changes: the "backup" restored below.
      const backup = await backUp();
      clock.set("2026-01-01T10:05:00.000Z");
      await eightReadings(100);
      const kept = join(work, "checkpoint-33.json");
      const saved = await thingsAt(hub, ["checkpoint", "--out", kept]);
      expect(saved).toMatchObject({ code: 0, stderr: "" });
      expect(saved.stdout).toMatch(/^saved the checkpoint of size 33 \(root [0-9a-f]{64}\) signed at /);
      const file = JSON.parse(readFileSync(kept, "utf8")) as { size: number; root: string };
      expect(file.size).toBe(33);
      expect(saved.stdout).toContain(`(root ${file.root})`);
      // Never over a file that is there: a usage error, said in one line.
      const again = await thingsAt(hub, ["checkpoint", "--out", kept]);
      expect(again.code).toBe(2);
      expect(again.stderr).toBe(
        `things: ${kept} exists: name a new file (a kept checkpoint is never replaced)\n`,
      );
      // A folder that is not there: the flag and the path, and why in words, not Node's ENOENT.
      const nowhere = join(work, "missing-folder", "checkpoint.json");
      const unwritable = await thingsAt(hub, ["checkpoint", "--out", nowhere]);
      expect(unwritable.code).toBe(1);
      expect(unwritable.stderr).toBe(`things: cannot write --out ${nowhere}: no such file or folder\n`);
      const intact = await thingsAt(hub, ["verify", "--checkpoint", kept]);
      expect(intact).toMatchObject({ code: 0, stderr: "" });
      expect(intact.stdout).toMatch(
        /^verified 33 changes, \d+ checkpoints? and 1 saved \(size 33\), log root /,
      );

      // The hub goes back to the backup: its Log of 25 is whole by its own checkpoints, but it no
      // longer holds what it signed at 33.
      await restore(backup);
      expect((await thingsAt(hub, ["verify"])).code).toBe(0);
      const cut = await thingsAt(hub, ["verify", "--checkpoint", kept, "--json"]);
      expect(cut.code).toBe(3);
      expect(JSON.parse(cut.stdout)).toMatchObject({ ok: false, seq: 26, problem: "missing-changes" });

      // Other Changes in their place, signed again by the same hub: only the kept checkpoint tells.
      await eightReadings(200);
      expect((await thingsAt(hub, ["verify"])).code).toBe(0);
      const rewritten = await thingsAt(hub, ["verify", "--checkpoint", kept]);
      expect(rewritten.code).toBe(3);
      expect(rewritten.stdout).toMatch(
        /^log verification FAILED in seq 26\.\.33: the Merkle root of seq 1\.\.33 is [0-9a-f]{64}, but the checkpoint of .* signs [0-9a-f]{64}: one of seq 26\.\.33 differs from what was signed\n$/,
      );
      const range = await thingsAt(hub, ["verify", "--checkpoint", kept, "--json"]);
      expect(JSON.parse(range.stdout)).toMatchObject({
        ok: false,
        seq: 26,
        through: 33,
        problem: "root-mismatch",
      });

      // A kept checkpoint edited since is said of its file, not of the seq it covers.
      const edited = join(work, "edited.json");
      writeFileSync(
        edited,
        JSON.stringify({ ...JSON.parse(readFileSync(kept, "utf8")), root: "0".repeat(64) }),
      );
      const forged = await thingsAt(hub, ["verify", "--checkpoint", edited]);
      expect(forged.code).toBe(3);
      expect(forged.stdout).toMatch(
        /^log verification FAILED: the checkpoint saved in \S+edited\.json does not verify with the hub's key SHA256:\S+ and id \S+: .*signature does not verify.* \(the file was altered, or the hub's key or id changed since\)\n$/,
      );

      // A file that is not a checkpoint is a failure to run (1); with an export, a usage error (2).
      const junk = join(work, "junk.json");
      writeFileSync(junk, "not json");
      const unreadable = await thingsAt(hub, ["verify", "--checkpoint", junk]);
      expect(unreadable.code).toBe(1);
      expect(unreadable.stderr).toMatch(
        /^things: \S+junk\.json is not a checkpoint: Malformed JSON at line 1, column 1: [^\n]*\n$/,
      );
      // With an export, the kept checkpoint is held against the file; one that is no export fails.
      expect((await things(["verify", "--file", junk, "--checkpoint", kept])).code).toBe(3);
    }, 90_000);

    it("verify fails with exit code 3 naming the Change altered in the database", async () => {
      await tamper(ALTERED, "999");
      const run = await thingsAt(hub, ["verify"]);
      expect(run.code).toBe(3);
      expect(run.stdout).toMatch(
        new RegExp(`^log verification FAILED at seq ${ALTERED}: [^\\n]*altered\\n$`),
      );
      const json = await thingsAt(hub, ["verify", "--json"]);
      expect(json.code).toBe(3);
      expect(JSON.parse(json.stdout)).toMatchObject({ ok: false, seq: ALTERED, problem: "altered-change" });
      // Hashing on the main thread (no hashing thread) or on two: the same verdict.
      for (const threads of ["0", "2"]) {
        const run = await thingsAt(hub, ["verify", "--json", "--threads", threads]);
        expect(run.code).toBe(3);
        expect(JSON.parse(run.stdout)).toMatchObject({ ok: false, seq: ALTERED, problem: "altered-change" });
      }
    });

    it("verify hashes a Log of one page on its own thread, and --threads on others, with the same verdict", async () => {
      // 25 Changes: starting a thread would cost more than hashing them.
      const intact = await thingsCountingThreads(hub, ["verify", "--json"]);
      expect(intact).toMatchObject({ code: 0, threads: 0 });
      const threaded = await thingsCountingThreads(hub, ["verify", "--json", "--threads", "1"]);
      expect(threaded).toMatchObject({ code: 0, threads: 1 });
      expect(JSON.parse(threaded.stdout)).toEqual(JSON.parse(intact.stdout));
      await tamper(ALTERED, "999");
      const altered = await thingsCountingThreads(hub, ["verify", "--json"]);
      expect(altered).toMatchObject({ code: 3, threads: 0 });
      expect(JSON.parse(altered.stdout)).toMatchObject({
        ok: false,
        seq: ALTERED,
        problem: "altered-change",
      });
      const alteredThreaded = await thingsCountingThreads(hub, ["verify", "--json", "--threads", "1"]);
      expect(alteredThreaded).toMatchObject({ code: 3, threads: 1 });
      expect(JSON.parse(alteredThreaded.stdout)).toEqual(JSON.parse(altered.stdout));
    });

    it("verify --db checks a database file without a hub, also one the hub refuses to open", async () => {
      await hub.stop();
      const copy = join(work, "copy");
      cpSync(dataDir, copy, { recursive: true });
      const db = join(copy, "hyperthings.db");
      const intact = await things(["verify", "--db", db]);
      expect(intact).toMatchObject({ code: 0, stderr: "" });
      expect(intact.stdout).toMatch(
        /^verified 25 changes, \d+ checkpoints?, log root [0-9a-f]{64} signed at .* \(key SHA256:\S+\)\n$/,
      );
      // The last Change deleted behind the hub's back: its head no longer matches, and a hub
      // refuses the file, naming this command.
      const file = new Database(db);
      try {
        file.exec("DROP TRIGGER changes_no_delete");
        file.exec("DELETE FROM changes WHERE seq = 25");
        file.exec("DROP TRIGGER changes_no_update");
        file.exec(`UPDATE changes SET value = '999' WHERE seq = ${ALTERED}`);
      } finally {
        file.close();
      }
      await expect(startTestHub({ dataDir: copy })).rejects.toThrow(/things verify --db/);
      const altered = await things(["verify", "--db", db, "--json"]);
      expect(altered.code).toBe(3);
      expect(JSON.parse(altered.stdout)).toMatchObject({
        ok: false,
        seq: ALTERED,
        problem: "altered-change",
      });
      const restore = new Database(db);
      try {
        restore.exec(`UPDATE changes SET value = '${String(ALTERED - 2)}' WHERE seq = ${ALTERED}`);
      } finally {
        restore.close();
      }
      const cut = await things(["verify", "--db", db]);
      expect(cut.code).toBe(3);
      expect(cut.stdout).toMatch(
        /^log verification FAILED at seq 25: the checkpoint at size 25 .* but the Log ends at seq 24\n$/,
      );
      // Without the key beside it, the key must be given.
      rmSync(join(copy, "log-key.pem"));
      const keyless = await things(["verify", "--db", db]);
      expect(keyless.code).toBe(2);
      expect(keyless.stderr).toMatch(
        /^things: there is no log-key\.pem beside .*: give the hub's public key with --key/,
      );
      hub = await start();
    });

    it("prove passes on an intact Change and fails on the altered one", async () => {
      await tamper(ALTERED, "999");
      const intact = await thingsAt(hub, ["prove", String(ALTERED - 1)]);
      expect(intact).toMatchObject({ code: 0, stderr: "" });
      expect(intact.stdout).toMatch(
        new RegExp(`^proved: change ${ALTERED - 1} is in the log of 25 changes that \\S+ signed at `),
      );
      expect(intact.stdout).toContain("RFC 9162 inclusion proof verified");
      const altered = await thingsAt(hub, ["prove", String(ALTERED)]);
      expect(altered.code).toBe(3);
      expect(altered.stdout).toMatch(
        new RegExp(`^proof FAILED at seq ${ALTERED}: .*altered after it was logged\\n$`),
      );
    });

    it("export --thing writes one Thing's Changes, each with its inclusion proof, and verify --file checks each offline", async () => {
      const other = await secondLamp();
      const file = join(work, "lamp.ndjson");
      const run = await thingsAt(hub, ["export", "--thing", LAMP, "--out", file]);
      expect(run).toMatchObject({ code: 0, stderr: "" });
      expect(run.stdout).toMatch(
        /^exported 27 changes of urn:test:lamp \(seq 1\.\.29\) to .*, each with its inclusion proof in the checkpoint of size 30 /,
      );
      const lines = readFileSync(file, "utf8")
        .trimEnd()
        .split("\n")
        .map((l) => JSON.parse(l) as Record<string, unknown>);
      expect(lines[0]).toMatchObject({
        type: "header",
        format: "hyperthings-thing-export/1",
        thing: LAMP,
        checkpoint: { size: 30 },
      });
      const seqs = lines.slice(1, -1).map((l) => (l.change as Change).seq);
      expect(seqs).toEqual([...Array.from({ length: 25 }, (_, i) => i + 1), 27, 29]);
      expect(lines.at(-1)).toEqual({ type: "end", changes: 27 });
      // No hub: the URL names nothing that listens.
      const verified = await things(["verify", "--file", file, "--url", "http://127.0.0.1:9"]);
      expect(verified).toMatchObject({ code: 0, stderr: "" });
      expect(verified.stdout).toMatch(
        /^verified 27 changes of urn:test:lamp \(seq 1\.\.29\), each proven in the log of 30 changes with root [0-9a-f]{64} .*not that none is left out \(a gap between two of an affordance's changes of different values would have shown\)\n$/,
      );
      // --since, and the other lamp: only what is theirs.
      const since = join(work, "since.ndjson");
      expect(
        (await thingsAt(hub, ["export", "--thing", LAMP, "--since", "2026-01-01T10:04:00Z", "--out", since]))
          .code,
      ).toBe(0);
      expect(JSON.parse((await things(["verify", "--file", since, "--json"])).stdout)).toMatchObject({
        ok: true,
        thing: LAMP,
        changes: 2,
        first: 27,
        last: 29,
        size: 30,
      });
      // --until: the night of the incident, not everything since (seq 10..17, read at 10:02).
      const night = join(work, "night.ndjson");
      const window = ["--since", "2026-01-01T10:02:00Z", "--until", "2026-01-01T10:02:30Z"];
      expect(await thingsAt(hub, ["export", "--thing", LAMP, ...window, "--out", night])).toMatchObject({
        code: 0,
        stderr: "",
      });
      expect(JSON.parse(readFileSync(night, "utf8").split("\n")[0] ?? "")).toMatchObject({
        since: "2026-01-01T10:02:00.000Z",
        until: "2026-01-01T10:02:30.000Z",
        checkpoint: { size: 30 },
      });
      expect(JSON.parse((await things(["verify", "--file", night, "--json"])).stdout)).toMatchObject({
        ok: true,
        changes: 8,
        first: 10,
        last: 17,
        size: 30,
      });
      // Only one Thing's export may stop before the Log's end; and the times must be in order.
      const whole = join(work, "run.ndjson");
      for (const [args, message] of [
        [
          ["export", ...window, "--out", whole],
          "things: --until needs --thing: an export of every Thing's Changes goes on to the Log's latest checkpoint, which is what proves none is left out\n",
        ],
        [
          [
            "export",
            "--thing",
            LAMP,
            "--since",
            "2026-01-01T10:03:00Z",
            "--until",
            "2026-01-01T10:02:00Z",
            "--out",
            whole,
          ],
          "things: --since (2026-01-01T10:03:00.000Z) is after --until (2026-01-01T10:02:00.000Z)\n",
        ],
      ] as const) {
        expect(await thingsAt(hub, [...args])).toMatchObject({ code: 2, stderr: message });
      }
      expect(existsSync(whole)).toBe(false);
      const hall = join(work, "hall.ndjson");
      expect((await thingsAt(hub, ["export", "--thing", other, "--out", hall])).code).toBe(0);
      expect(JSON.parse((await things(["verify", "--file", hall, "--json"])).stdout)).toMatchObject({
        thing: other,
        changes: 3,
        first: 26,
        last: 30,
      });
      // A Thing with nothing covered since then, and one the hub never had.
      const none = await thingsAt(hub, [
        "export",
        "--thing",
        LAMP,
        "--since",
        "2026-01-01T11:00:00Z",
        "--out",
        join(work, "none"),
      ]);
      expect(none.code).toBe(1);
      expect(none.stderr).toMatch(
        /^things: urn:test:lamp has no change since 2026-01-01T11:00:00\.000Z in the Log up to its latest checkpoint \(size 30\): nothing to export\n$/,
      );
      const unknown = await thingsAt(hub, [
        "export",
        "--thing",
        "urn:test:nothing",
        "--out",
        join(work, "nothing"),
      ]);
      expect(unknown.code).toBe(1);
      expect(unknown.stderr).toMatch(/urn:test:nothing/);
    });

    it("verify --file on one Thing's export names an edited Change, a Change of another Thing, a wrong proof and a file cut short", async () => {
      await secondLamp();
      const file = join(work, "lamp.ndjson");
      expect((await thingsAt(hub, ["export", "--thing", LAMP, "--out", file])).code).toBe(0);
      const lines = readFileSync(file, "utf8").trimEnd().split("\n");
      const edited = (line: number, edit: (entry: { change: Change; proof: string[] }) => void): string => {
        const copy = [...lines];
        const entry = JSON.parse(copy[line] ?? "") as { change: Change; proof: string[] };
        edit(entry);
        copy[line] = JSON.stringify(entry);
        const path = join(work, `edited-${line}-${copy.length}.ndjson`);
        writeFileSync(path, `${copy.join("\n")}\n`);
        return path;
      };
      const verify = (path: string) => things(["verify", "--file", path]);
      // Line 9 holds seq 9.
      const valueOnly = await verify(edited(9, (e) => (e.change.value = 999)));
      expect(valueOnly.code).toBe(3);
      expect(valueOnly.stdout).toMatch(/^log verification FAILED at seq 9: .*it was edited\n$/);
      const withLeaf = await verify(
        edited(9, (e) => {
          e.change.value = 999;
          e.change.leaf = hashToHex(changeLeafHash(e.change));
        }),
      );
      expect(withLeaf.code).toBe(3);
      expect(withLeaf.stdout).toMatch(
        /^log verification FAILED at seq 9: .*its inclusion proof does not lead to the signed root\n$/,
      );
      const swappedProof = await verify(
        edited(9, (e) => (e.proof = (JSON.parse(lines[10] ?? "") as { proof: string[] }).proof)),
      );
      expect(swappedProof.stdout).toMatch(
        /^log verification FAILED at seq 9: .*inclusion proof does not lead/,
      );
      const otherThing = await verify(
        edited(27, (e) => {
          e.change.thing = "urn:test:lamp-2";
          e.change.leaf = hashToHex(changeLeafHash(e.change));
        }),
      );
      expect(otherThing.stdout).toMatch(
        /^log verification FAILED at seq 29: the change is of "urn:test:lamp-2", not of urn:test:lamp\n$/,
      );
      const cut = join(work, "cut.ndjson");
      writeFileSync(cut, `${lines.slice(0, -1).join("\n")}\n`);
      const truncated = await verify(cut);
      expect(truncated.code).toBe(3);
      expect(truncated.stdout).toMatch(
        /FAILED: the export ends after the change of seq 29 without its end line: it is incomplete\n$/,
      );
      const dropped = join(work, "dropped.ndjson");
      // The last Change left out: nothing after it in the file tells, but the end line's count does.
      writeFileSync(dropped, `${[...lines.slice(0, -2), ...lines.slice(-1)].join("\n")}\n`);
      expect((await verify(dropped)).stdout).toMatch(
        /FAILED: the end line counts 27 changes, the file has 26/,
      );
      // A Change left out with the end line's count made to fit: the next Change of the same
      // affordance records a previous value that is not the file's last one of it.
      const entries = lines.map((l) => JSON.parse(l) as { type: string; change?: Change; changes?: number });
      const sameStream = (a: Change | undefined, b: Change | undefined) =>
        a?.affordance !== undefined && a.affordance === b?.affordance && a.kind === b.kind;
      // A Change with one of its stream before it of another value, and one after it.
      const gap = entries.findIndex((e, i) => {
        const before = entries.slice(0, i).findLast((x) => sameStream(x.change, e.change));
        const after = entries.slice(i + 1).find((x) => sameStream(x.change, e.change));
        return (
          before?.change?.value !== undefined &&
          JSON.stringify(before.change.value) !== JSON.stringify(e.change?.value) &&
          after?.change?.previous !== undefined
        );
      });
      const left = entries[gap]?.change;
      expect(left).toBeDefined();
      const recounted = entries
        .filter((_, i) => i !== gap)
        .map((e) => (e.type === "end" ? { ...e, changes: 26 } : e));
      const hidden = join(work, "hidden.ndjson");
      writeFileSync(hidden, `${recounted.map((e) => JSON.stringify(e)).join("\n")}\n`);
      const caught = await verify(hidden);
      expect(caught.code).toBe(3);
      expect(caught.stdout).toMatch(
        new RegExp(
          `^log verification FAILED (at|in) seq [0-9.]+: the ${left?.kind} change of ${left?.affordance} at seq \\d+ follows the value .*: a change between them is not in the file\\n$`,
        ),
      );
      // The headline's seq (or range) holds the one left out.
      const range = /FAILED (?:at seq (\d+)|in seq (\d+)\.\.(\d+))/.exec(caught.stdout) ?? [];
      expect(left?.seq).toBeGreaterThanOrEqual(Number(range[1] ?? range[2]));
      expect(left?.seq).toBeLessThanOrEqual(Number(range[1] ?? range[3]));
      // The same Change moved to after the next of its stream, nothing left out: said as lines out
      // of order, not as a Change missing from the file.
      const next = entries.findIndex((e, i) => i > gap && sameStream(e.change, left));
      const moved = [...entries];
      moved.splice(next, 0, ...moved.splice(gap, 1));
      const reordered = join(work, "reordered.ndjson");
      writeFileSync(reordered, `${moved.map((e) => JSON.stringify(e)).join("\n")}\n`);
      const swapped = await verify(reordered);
      expect(swapped.code).toBe(3);
      expect(swapped.stdout).toMatch(
        new RegExp(
          `^log verification FAILED at seq ${left?.seq}: line \\d+: seq ${left?.seq} comes after seq \\d+: the file's lines are out of order, or one is repeated\n$`,
        ),
      );
    });

    it("export --consistent-with and verify --file --checkpoint prove offline that the Log extends a kept checkpoint, and catch one of another key, an altered proof and a Log signed again", async () => {
      const backup = await backUp();
      // The auditor's checkpoint, kept apart at 25 Changes; the incident comes after it.
      const kept = join(work, "kept-25.json");
      expect((await thingsAt(hub, ["checkpoint", "--out", kept])).code).toBe(0);
      clock.set("2026-01-01T10:05:00.000Z");
      await eightReadings(100);

      const lamp = join(work, "lamp.ndjson");
      const exported = await thingsAt(hub, [
        "export",
        "--thing",
        LAMP,
        "--consistent-with",
        kept,
        "--out",
        lamp,
      ]);
      expect(exported).toMatchObject({ code: 0, stderr: "" });
      expect(exported.stdout).toMatch(
        /; with consistency proofs from the checkpoint saved in \S+kept-25\.json \(size 25\)\n$/,
      );
      // Offline: no --url, only the files (and the key the auditor trusts).
      const keyFile = join(work, "hub.pem");
      writeFileSync(keyFile, (await clientOf(hub).logKey()).publicKey);
      const proven = await things(["verify", "--file", lamp, "--checkpoint", kept, "--key", keyFile]);
      expect(proven).toMatchObject({ code: 0, stderr: "" });
      expect(proven.stdout).toMatch(
        /^verified 33 changes of urn:test:lamp .*; extends the checkpoint saved in \S+kept-25\.json \(size 25\)\n$/,
      );
      const json = await things(["verify", "--file", lamp, "--checkpoint", kept, "--json"]);
      expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, size: 33, kept: [{ file: kept, size: 25 }] });

      // A run that reaches back to the kept size proves it from its own prefix and leaves.
      const run = join(work, "run.ndjson");
      expect((await thingsAt(hub, ["export", "--since", "2026-01-01T10:05:00Z", "--out", run])).code).toBe(0);
      expect(await things(["verify", "--file", run, "--checkpoint", kept])).toMatchObject({
        code: 0,
        stderr: "",
      });

      // An export without the proof proves nothing about the kept checkpoint: a failure, not a pass.
      const plain = join(work, "plain.ndjson");
      expect((await thingsAt(hub, ["export", "--thing", LAMP, "--out", plain])).code).toBe(0);
      const unproven = await things(["verify", "--file", plain, "--checkpoint", kept, "--json"]);
      expect(unproven.code).toBe(3);
      expect(JSON.parse(unproven.stdout)).toMatchObject({ ok: false, problem: "unproven" });
      expect((JSON.parse(unproven.stdout) as { reason: string }).reason).toMatch(
        /export again from the hub with --consistent-with \S+kept-25\.json$/,
      );

      // The same checkpoint signed with another key is refused, said of its file.
      const { privateKey } = generateKeyPairSync("ed25519");
      const keptCheckpoint = JSON.parse(readFileSync(kept, "utf8")) as Record<string, string | number>;
      const signedText = `${keptCheckpoint.origin}\n${keptCheckpoint.size}\n${Buffer.from(String(keptCheckpoint.root), "hex").toString("base64")}\n${keptCheckpoint.time}\n`;
      const otherKey = join(work, "other-key.json");
      writeFileSync(
        otherKey,
        JSON.stringify({
          ...keptCheckpoint,
          signature: sign(null, Buffer.from(signedText), privateKey).toString("base64"),
        }),
      );
      const foreign = await things(["verify", "--file", lamp, "--checkpoint", otherKey]);
      expect(foreign.code).toBe(3);
      expect(foreign.stdout).toMatch(
        /^log verification FAILED: the checkpoint saved in \S+other-key\.json does not verify with the export's key SHA256:\S+ and id \S+: .*signature does not verify/,
      );

      // A consistency proof altered in the file fails the file, whatever is held against it.
      const lines = readFileSync(lamp, "utf8").trimEnd().split("\n");
      const header = JSON.parse(lines[0] ?? "") as { consistentWith: Array<{ proof: string[] }> };
      const first = header.consistentWith[0];
      expect(first?.proof.length).toBeGreaterThan(0);
      if (first !== undefined) first.proof[0] = "0".repeat(64);
      const altered = join(work, "altered.ndjson");
      writeFileSync(altered, `${[JSON.stringify(header), ...lines.slice(1)].join("\n")}\n`);
      const broken = await things(["verify", "--file", altered, "--json"]);
      expect(broken.code).toBe(3);
      expect(JSON.parse(broken.stdout)).toMatchObject({ ok: false, problem: "inconsistent" });

      // Restored from the backup of 25, the hub signs other Changes as seq 26..33 with the same key.
      await restore(backup);
      await eightReadings(200);
      // It will not export a proof it cannot give: nothing is written, exit 3.
      const refused = join(work, "refused.ndjson");
      const rewritten = await thingsAt(hub, [
        "export",
        "--thing",
        LAMP,
        "--consistent-with",
        lamp,
        "--out",
        refused,
      ]);
      expect(rewritten.code).toBe(3);
      expect(rewritten.stdout).toMatch(
        /^export FAILED: the hub's Log of 33 changes .* does not extend the checkpoint saved in \S+lamp\.ndjson \(33 changes, /,
      );
      expect(existsSync(refused)).toBe(false);
      // Offline, the two exports of 33 contradict each other: the hub signed two Logs.
      const after = join(work, "after.ndjson");
      expect((await thingsAt(hub, ["export", "--thing", LAMP, "--out", after])).code).toBe(0);
      const fork = await things(["verify", "--file", after, "--checkpoint", lamp, "--json"]);
      expect(fork.code).toBe(3);
      expect(JSON.parse(fork.stdout)).toMatchObject({ ok: false, problem: "fork" });
      expect((JSON.parse(fork.stdout) as { reason: string }).reason).toMatch(
        /the hub signed two different Logs$/,
      );
    }, 90_000);
  });
});

describe("things verify and export of a Log of one Change", () => {
  let hub: TestHub;
  let work: string;
  beforeAll(async () => {
    hub = await startTestHub();
    work = mkdtempSync(join(tmpdir(), "hyperthings-one-"));
    await clientOf(hub).put(lampTd());
  });
  afterAll(async () => {
    await hub.stop();
    rmSync(work, { recursive: true, force: true });
  });

  it("counts one change and one checkpoint in the singular", async () => {
    const verified = await thingsAt(hub, ["verify"]);
    expect(verified.code).toBe(0);
    expect(verified.stdout).toMatch(/^verified 1 change, 1 checkpoint, log root [0-9a-f]{64} /);
    const run = join(work, "run.ndjson");
    expect((await thingsAt(hub, ["export", "--out", run])).stdout).toMatch(
      /^exported 1 change \(seq 1\.\.1\) to /,
    );
    expect((await things(["verify", "--file", run])).stdout).toMatch(/^verified 1 change \(seq 1\.\.1\), /);
    const one = join(work, "thing.ndjson");
    expect((await thingsAt(hub, ["export", "--thing", LAMP, "--out", one])).stdout).toMatch(
      /^exported 1 change of urn:test:lamp \(seq 1\.\.1\) to /,
    );
    expect((await things(["verify", "--file", one])).stdout).toMatch(
      /^verified 1 change of urn:test:lamp \(seq 1\.\.1\), /,
    );
  });
});
