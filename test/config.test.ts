// Settings that reach the store: read from the environment, checked, and applied.
import type Database from "better-sqlite3";
import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Writable } from "node:stream";
import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { configEnvironment, configFileKeys, loadConfig, unknownEnvironment } from "../src/hub/index.js";
import { startHub } from "../src/cli/start-hub.js";
import { startTestHub } from "./support/test-hub.js";

describe("the SNMP trap port setting", () => {
  it("is none unless --snmp-trap-port or HYPERTHINGS_SNMP_TRAP_PORT gives a port, 0 to 65535", () => {
    const at = { dataDir: "/nonexistent" };
    expect(loadConfig(at, {}).snmpTrapPort).toBeUndefined();
    expect(loadConfig(at, { HYPERTHINGS_SNMP_TRAP_PORT: "" }).snmpTrapPort).toBeUndefined();
    expect(loadConfig(at, { HYPERTHINGS_SNMP_TRAP_PORT: "1162" }).snmpTrapPort).toBe(1162);
    expect(
      loadConfig({ ...at, snmpTrapPort: "0" }, { HYPERTHINGS_SNMP_TRAP_PORT: "1162" }).snmpTrapPort,
    ).toBe(0);
    expect(() => loadConfig({ ...at, snmpTrapPort: "70000" }, {})).toThrow(
      'SNMP trap port (--snmp-trap-port) must be a whole number from 0 to 65535, not "70000"',
    );
    expect(() => loadConfig(at, { HYPERTHINGS_SNMP_TRAP_PORT: "162x" })).toThrow(
      'SNMP trap port (HYPERTHINGS_SNMP_TRAP_PORT) must be a whole number from 0 to 65535, not "162x"',
    );
  });
});

describe("the stop's grace setting", () => {
  it("is 1000 ms unless HYPERTHINGS_STOP_GRACE_MS gives 0 to 60000, and names the variable of a bad one", () => {
    const at = { dataDir: "/nonexistent" };
    expect(loadConfig(at, {}).stopGraceMs).toBe(1000);
    expect(loadConfig(at, { HYPERTHINGS_STOP_GRACE_MS: "0" }).stopGraceMs).toBe(0);
    expect(loadConfig({ ...at, stopGraceMs: 250 }, { HYPERTHINGS_STOP_GRACE_MS: "0" }).stopGraceMs).toBe(250);
    expect(() => loadConfig(at, { HYPERTHINGS_STOP_GRACE_MS: "60001" })).toThrow(
      'stop grace (HYPERTHINGS_STOP_GRACE_MS) must be a whole number from 0 to 60000, not "60001"',
    );
    expect(() => loadConfig(at, { HYPERTHINGS_STOP_GRACE_MS: "1s" })).toThrow(
      'stop grace (HYPERTHINGS_STOP_GRACE_MS) must be a whole number from 0 to 60000, not "1s"',
    );
  });
});

describe("the store setting", () => {
  it("is the SQLite file unless --store or HYPERTHINGS_STORE names PostgreSQL, and refuses any other URL without echoing it", () => {
    const at = { dataDir: "/nonexistent" };
    expect(loadConfig(at, {}).store).toBeUndefined();
    expect(loadConfig(at, { HYPERTHINGS_STORE: "" }).store).toBeUndefined();
    expect(loadConfig(at, { HYPERTHINGS_STORE: "postgres://hub@db/things" }).store).toBe(
      "postgres://hub@db/things",
    );
    expect(
      loadConfig(
        { ...at, store: "postgresql://hub@other/x?schema=a" },
        { HYPERTHINGS_STORE: "postgres://hub@db/things" },
      ).store,
    ).toBe("postgresql://hub@other/x?schema=a");
    expect(() => loadConfig({ ...at, store: "mysql://root:secret@db/things" }, {})).toThrow(
      "store (--store) must be a postgres:// or postgresql:// URL (PostgreSQL), or unset for the embedded SQLite file in the data directory; it is a mysql:// URL",
    );
    expect(() => loadConfig(at, { HYPERTHINGS_STORE: "db.example:5432" })).toThrow(
      /^store \(HYPERTHINGS_STORE\) must be a postgres:\/\/ or postgresql:\/\/ URL .*; it is a db\.example:\/\/ URL$/,
    );
    expect(() => loadConfig(at, { HYPERTHINGS_STORE: "hyperthings.db" })).toThrow(/; it is no URL$/);
    expect(() => loadConfig({ ...at, store: " " }, {})).toThrow("--store must not be empty");
  });
});

describe("the SQLite memory map setting", () => {
  it("reads HYPERTHINGS_SQLITE_MMAP_MIB, 1024 when unset, and refuses anything but 0 to 2047", () => {
    const at = { dataDir: "/nonexistent" };
    expect(loadConfig(at, {}).sqliteMmapMiB).toBe(1024);
    expect(loadConfig(at, { HYPERTHINGS_SQLITE_MMAP_MIB: "0" }).sqliteMmapMiB).toBe(0);
    expect(loadConfig({ ...at, sqliteMmapMiB: 8 }, { HYPERTHINGS_SQLITE_MMAP_MIB: "0" }).sqliteMmapMiB).toBe(
      8,
    );
    for (const bad of ["2048", "-1", "1G", "0.5"]) {
      expect(() => loadConfig(at, { HYPERTHINGS_SQLITE_MMAP_MIB: bad })).toThrow(
        `SQLite memory map (MiB) (HYPERTHINGS_SQLITE_MMAP_MIB) must be a whole number from 0 to 2047, not "${bad}"`,
      );
    }
  });

  it("gives the hub's store the map asked for", async () => {
    const hub = await startTestHub({}, { HYPERTHINGS_SQLITE_MMAP_MIB: "16" });
    try {
      const db = (hub.hub.store as unknown as { db: Database.Database }).db;
      expect(db.pragma("mmap_size", { simple: true })).toBe(16 * 2 ** 20);
    } finally {
      await hub.stop();
    }
  });
});

describe("the data directory and the address", () => {
  it("take an empty HYPERTHINGS_DATA or HYPERTHINGS_HOST as unset, and refuse an empty --data or --host", () => {
    const empty = loadConfig({}, { HYPERTHINGS_DATA: "", HYPERTHINGS_HOST: "" });
    expect(empty.dataDir).toBe(loadConfig({}, {}).dataDir);
    expect(empty.dataDir).not.toBe("");
    expect(empty.host).toBe("127.0.0.1");
    expect(loadConfig({}, { HYPERTHINGS_DATA: "/srv/hub", HYPERTHINGS_HOST: "::1" })).toMatchObject({
      dataDir: "/srv/hub",
      host: "::1",
    });
    expect(() => loadConfig({ dataDir: "" }, {})).toThrow("--data must not be empty");
    expect(() => loadConfig({ host: " " }, {})).toThrow("--host must not be empty");
  });

  it("reads the allowed host names from --allowed-hosts or HYPERTHINGS_ALLOWED_HOSTS, and refuses what is no name", () => {
    expect(loadConfig({}, {}).allowedHosts).toEqual([]);
    expect(loadConfig({}, { HYPERTHINGS_ALLOWED_HOSTS: " Hub.Example.com, ,hub " }).allowedHosts).toEqual([
      "hub.example.com",
      "hub",
    ]);
    expect(
      loadConfig({ allowedHosts: "a.example" }, { HYPERTHINGS_ALLOWED_HOSTS: "b.example" }).allowedHosts,
    ).toEqual(["a.example"]);
    expect(() => loadConfig({ allowedHosts: "hub.example.com:8080" }, {})).toThrow(
      '--allowed-hosts (HYPERTHINGS_ALLOWED_HOSTS) takes host names such as hub.example.com, .example.com (every name under it) or *, separated by commas; "hub.example.com:8080" is not one',
    );
  });
});

describe("an environment variable set to nothing", () => {
  it("is unset for every setting: the defaults hold", () => {
    const empty = Object.fromEntries(
      Object.values(configEnvironment).map((name): [string, string] => [name, ""]),
    );
    const blank = Object.fromEntries(
      Object.values(configEnvironment).map((name): [string, string] => [name, " "]),
    );
    const defaults = loadConfig({}, {});
    expect(loadConfig({}, empty)).toEqual(defaults);
    expect(loadConfig({}, blank)).toEqual(defaults);
    // What is set still counts, and a wrong value is still refused.
    expect(loadConfig({}, { ...empty, HYPERTHINGS_PORT: "9090" }).port).toBe(9090);
    expect(() => loadConfig({}, { ...empty, HYPERTHINGS_PORT: "x" })).toThrow(
      'port (HYPERTHINGS_PORT) must be a whole number from 0 to 65535, not "x"',
    );
  });
});

describe("a setting refused at start", () => {
  it("is named with where its value came from: the flag, or the environment variable", () => {
    const refusal = (overrides: Parameters<typeof loadConfig>[0], env: NodeJS.ProcessEnv) => {
      try {
        loadConfig(overrides, env);
      } catch (error) {
        return (error as Error).message;
      }
      return "accepted";
    };
    expect(refusal({ port: "x" }, { HYPERTHINGS_PORT: "8080" })).toBe(
      'port (--port) must be a whole number from 0 to 65535, not "x"',
    );
    expect(refusal({}, { HYPERTHINGS_BODY_LIMIT: "1e6" })).toBe(
      'body limit (HYPERTHINGS_BODY_LIMIT) must be a whole number from 1024 to 1073741824, not "1e6"',
    );
    expect(refusal({}, { HYPERTHINGS_LOG_LEVEL: "verbose" })).toMatch(
      /^log level \(HYPERTHINGS_LOG_LEVEL\) must be one of fatal, .*, not "verbose"$/,
    );
    expect(refusal({ auth: "all" }, {})).toMatch(/^auth \(--auth\) must be "write" .* not "all"$/);
    expect(refusal({}, { HYPERTHINGS_AUTH: "READ" })).toMatch(/^auth \(HYPERTHINGS_AUTH\) must be/);
    for (const [variable, value] of [
      ["HYPERTHINGS_CHECKPOINT_CHANGES", "0"],
      ["HYPERTHINGS_CHECKPOINT_MS", "1.5"],
      ["HYPERTHINGS_POLL_MS", "5"],
      ["HYPERTHINGS_RECONNECT_MS", "0"],
      ["HYPERTHINGS_MAX_RECONNECT_MS", "-1"],
      ["HYPERTHINGS_MQTT_PORT", "99999"],
      ["HYPERTHINGS_MQTT_MAX_PAYLOAD", "1"],
      ["HYPERTHINGS_MQTT_RETAINED_PER_CLIENT", "many"],
      ["HYPERTHINGS_MQTT_RETAINED_BYTES_PER_CLIENT", "-5"],
    ] as const) {
      expect(refusal({}, { [variable]: value })).toMatch(
        new RegExp(`\\(${variable}\\) must be a whole number`),
      );
    }
    expect(refusal({ mqttPort: "x" }, {})).toMatch(/^MQTT port \(--mqtt-port\) must be/);
  });
});

describe("the secret files of the data directory", () => {
  it("says at start which of the admin token and the keys other users may read", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-modes-"));
    try {
      const first = await startTestHub({ dataDir });
      await first.stop();
      chmodSync(join(dataDir, "admin-token"), 0o644);
      chmodSync(join(dataDir, "log-key.pem"), 0o640);
      const lines: string[] = [];
      const destination = new Writable({
        write(chunk: Buffer, _encoding, done) {
          lines.push(chunk.toString());
          done();
        },
      });
      const config = loadConfig({ dataDir, port: 0, observe: false, mqtt: false }, {});
      const second = await startHub(config, { logger: pino({ level: "warn" }, destination) });
      await second.close();
      const warnings = lines.map((line) => (JSON.parse(line) as { msg: string }).msg);
      expect(warnings).toContain(
        `${join(dataDir, "admin-token")} may be read by other users of this machine (mode 0644): chmod 600 it`,
      );
      expect(warnings).toContain(
        `${join(dataDir, "log-key.pem")} may be read by other users of this machine (mode 0640): chmod 600 it`,
      );
      expect(warnings.some((w) => w.includes("secrets.key"))).toBe(false);
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });

  it("makes the database and its -wal and -shm readable by the hub's user alone, in a directory that existed open to all", async () => {
    // A data directory made by a package or a container volume (0755): the Log in it holds every
    // value every Thing reported, and before this the umask left it to every user (0644).
    const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-modes-"));
    chmodSync(dataDir, 0o755);
    const database = join(dataDir, "hyperthings.db");
    const modeOf = (path: string) => (statSync(path).mode & 0o777).toString(8);
    try {
      const first = await startTestHub({ dataDir });
      try {
        expect([database, `${database}-wal`, `${database}-shm`].map(modeOf)).toEqual(["600", "600", "600"]);
      } finally {
        await first.stop();
      }
      // One made so before (by an older hub) is said at every start.
      chmodSync(database, 0o644);
      const lines: string[] = [];
      const destination = new Writable({
        write(chunk: Buffer, _encoding, done) {
          lines.push(chunk.toString());
          done();
        },
      });
      const config = loadConfig({ dataDir, port: 0, observe: false, mqtt: false }, {});
      const second = await startHub(config, { logger: pino({ level: "warn" }, destination) });
      await second.close();
      const warnings = lines.map((line) => (JSON.parse(line) as { msg: string }).msg);
      expect(warnings).toContain(
        `${database} may be read by other users of this machine (mode 0644), and with it every value the Log holds: chmod 600 ${database} ${database}-wal ${database}-shm`,
      );
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe("a token a person chose", () => {
  it("is refused, by the variable's name, when short or not one word (it could never be sent as `Bearer <token>`)", () => {
    expect(() => loadConfig({}, { HYPERTHINGS_ADMIN_TOKEN: "my admin token for the hub" })).toThrow(
      "HYPERTHINGS_ADMIN_TOKEN must be one word: no spaces or control characters",
    );
    expect(() => loadConfig({}, { HYPERTHINGS_READ_TOKEN: "short" })).toThrow(
      "HYPERTHINGS_READ_TOKEN must be at least 16 characters long",
    );
  });

  it.each([
    ["short", "must be at least 16 characters long"],
    ["my admin token for the hub", "must be one word: no spaces or control characters"],
  ])("in the admin-token file (%j) stops the start, naming the file", async (token, problem) => {
    const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-token-"));
    try {
      writeFileSync(join(dataDir, "admin-token"), `${token}\n`, { mode: 0o600 });
      await expect(startTestHub({ dataDir, mqtt: false })).rejects.toThrow(
        `The admin token in ${join(dataDir, "admin-token")} ${problem}: put another in it, or delete it and a new one is made`,
      );
    } finally {
      rmSync(dataDir, { recursive: true, force: true });
    }
  });
});

describe("HYPERTHINGS_ variables that are no setting", () => {
  it("are named, with the setting a near name most likely meant; the CLI's and the tests' are not", () => {
    expect(
      unknownEnvironment({
        HYPERTHINGS_DATA_DIR: "/srv/hub",
        HYPERTHINGS_PROT: "9000",
        HYPERTHINGS_FOO: "1",
        HYPERTHINGS_DATA: "/srv/hub",
        HYPERTHINGS_URL: "http://127.0.0.1:8080",
        HYPERTHINGS_TOKEN: "ht_x",
        HYPERTHINGS_TEST_MQTT_URL: "mqtt://127.0.0.1:1883",
        HYPERTHINGS_REQUIRE_SERVICES: "1",
        PATH: "/usr/bin",
      }),
    ).toEqual([
      { name: "HYPERTHINGS_DATA_DIR", meant: "HYPERTHINGS_DATA" },
      { name: "HYPERTHINGS_FOO", meant: undefined },
      { name: "HYPERTHINGS_PROT", meant: "HYPERTHINGS_PORT" },
    ]);
  });
});

describe("the README's settings table", () => {
  it("names every flag of `things serve --help`, every HYPERTHINGS_ setting and every file key", () => {
    const root = join(import.meta.dirname, "..");
    const help = execFileSync(process.execPath, [join(root, "bin/things.js"), "serve", "--help"], {
      encoding: "utf8",
    });
    const readme = readFileSync(join(root, "README.md"), "utf8");
    const table = readme
      .split("\n")
      .filter((line) => line.startsWith("| "))
      .join("\n");
    const flags = [...help.matchAll(/^ {2}(?:-\w, )?(--[a-z-]+)/gm)].map((m) => m[1] ?? "");
    expect(flags).toEqual(expect.arrayContaining(["--mqtt-prefix", "--mqtt-anonymous"]));
    const missing = [
      ...flags.filter((flag) => flag !== "--help" && !table.includes(`\`${flag}`)),
      ...Object.values(configEnvironment).filter((name) => !new RegExp(`\`${name}[\`=]`).test(table)),
      ...Object.keys(configFileKeys).filter((key) => !new RegExp(`\`${key}[\`:]`).test(table)),
    ];
    expect(missing).toEqual([]);
  });
});
