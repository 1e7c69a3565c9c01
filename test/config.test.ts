// Settings that reach the store: read from the environment, checked, and applied.
import type Database from "better-sqlite3";
import { describe, expect, it } from "vitest";
import { loadConfig, unknownEnvironment } from "../src/hub/index.js";
import { startTestHub } from "./support/test-hub.js";

describe("the SQLite memory map setting", () => {
  it("reads HYPERTHINGS_SQLITE_MMAP_MIB, 1024 when unset, and refuses anything but 0 to 2047", () => {
    const at = { dataDir: "/nonexistent" };
    expect(loadConfig(at, {}).sqliteMmapMiB).toBe(1024);
    expect(loadConfig(at, { HYPERTHINGS_SQLITE_MMAP_MIB: "0" }).sqliteMmapMiB).toBe(0);
    expect(loadConfig({ ...at, sqliteMmapMiB: 8 }, { HYPERTHINGS_SQLITE_MMAP_MIB: "0" }).sqliteMmapMiB).toBe(
      8,
    );
    for (const bad of ["2048", "-1", "1G", "0.5", ""]) {
      expect(() => loadConfig(at, { HYPERTHINGS_SQLITE_MMAP_MIB: bad })).toThrow(
        `SQLite memory map (MiB) must be a whole number from 0 to 2047, not "${bad}"`,
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
