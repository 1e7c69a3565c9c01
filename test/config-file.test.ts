// `things serve --config FILE` (HYPERTHINGS_CONFIG): a YAML or JSON file of settings under the
// flags and the environment, refused with one line naming the file, the line and the key.
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { MAX_CONFIG_FILE_BYTES, configFileKeys, loadConfig, readConfigFile } from "../src/hub/index.js";
import { runThings, runThingsToEnd } from "./support/things-process.js";

const root = mkdtempSync(join(tmpdir(), "hyperthings-config-file-"));
afterAll(() => rmSync(root, { recursive: true, force: true }));

let files = 0;
/** A folder of its own holding `name` with `text`, at `mode`. */
function fileWith(name: string, text: string, mode = 0o600): string {
  const folder = join(root, `case-${++files}`);
  mkdirSync(folder);
  const path = join(folder, name);
  writeFileSync(path, text);
  chmodSync(path, mode);
  return path;
}

const TOKEN = "ht_file-token-0123456789abcdef";
const EXAMPLE = join(import.meta.dirname, "..", "examples", "hyperthings.yaml");

describe("the example configuration file", () => {
  const text = readFileSync(EXAMPLE, "utf8");

  it("names every setting, and its settings are valid as they stand", () => {
    const named = [...text.matchAll(/^(?:# )?(\w+):/gm)].map((m) => m[1]);
    expect(Object.keys(configFileKeys).filter((key) => !named.includes(key))).toEqual([]);
    const config = loadConfig({}, {}, readConfigFile(EXAMPLE));
    expect(config).toMatchObject({ port: 8080, dataDir: "/var/lib/hyperthings", mqtt: "embedded" });
  });

  it("is valid too with its commented settings in force instead", () => {
    const commented = [...text.matchAll(/^# (\w+):(.*)$/gm)].filter((m) => (m[1] ?? "") in configFileKeys);
    const keys = new Set(commented.map((m) => m[1]));
    const active = text.split("\n").filter((line) => !keys.has(/^(\w+):/.exec(line)?.[1]));
    const path = fileWith(
      "commented.yaml",
      [...active, ...commented.map((m) => `${m[1] ?? ""}:${m[2] ?? ""}`)].join("\n"),
    );
    const config = loadConfig({}, {}, readConfigFile(path));
    expect(config).toMatchObject({
      replica: true,
      mqtt: "external",
      adminToken: "ht_a-token-of-at-least-16-characters",
    });
    expect(config.vocabulary).toBe(join(path, "..", "vocab", "types.json"));
  });
});

describe("a configuration file's settings", () => {
  it("take YAML or JSON, with lists as lists or commas, and paths relative to the file", () => {
    const yaml = fileWith(
      "hub.yaml",
      "dataDir: data\nallow: [10.0.0.0/8, fd00::/8]\ndeny: 10.9.0.0/16\nauthRead: true\nmqtt: false\n",
    );
    const config = loadConfig({}, {}, readConfigFile(yaml));
    expect(config.deny).toContain("10.9.0.0/16");
    expect(config).toMatchObject({
      dataDir: join(yaml, "..", "data"),
      allow: ["10.0.0.0/8", "fd00::/8"],
      authRead: true,
      mqtt: "off",
    });
    const json = fileWith("hub.json", '{\n  "port": 0,\n  "bus": ["nats://a:4222", "nats://b:4222"]\n}\n');
    expect(loadConfig({}, {}, readConfigFile(json))).toMatchObject({
      port: 0,
      bus: { servers: ["nats://a:4222", "nats://b:4222"] },
    });
    expect(readConfigFile(fileWith("empty.yaml", "# nothing yet\n")).settings.size).toBe(0);
  });

  it("are under the flags and the environment: an environment value or a flag replaces a bad one", () => {
    const file = readConfigFile(fileWith("hub.yaml", "port: 70000\nhost: 127.0.0.2\n"));
    expect(() => loadConfig({}, {}, file)).toThrow(
      /hub\.yaml:1:7: port must be a whole number from 0 to 65535/,
    );
    expect(loadConfig({}, { HYPERTHINGS_PORT: "9000" }, file)).toMatchObject({
      port: 9000,
      host: "127.0.0.2",
    });
    expect(loadConfig({ port: "9001" }, { HYPERTHINGS_PORT: "9000" }, file).port).toBe(9001);
    // An empty variable is an unset one: the file's value holds.
    expect(loadConfig({ port: 1 }, { HYPERTHINGS_HOST: "" }, file).host).toBe("127.0.0.2");
  });
});

/** A `things serve --port 0` with `args`, until it listens: what it printed. */
async function served(args: string[], env: NodeJS.ProcessEnv = {}): Promise<string> {
  const hub = runThings(["serve", ...args], env);
  try {
    await hub.waitFor(/^ {2}access: .*$/m);
    return hub.stdout();
  } finally {
    hub.process.kill("SIGTERM");
    await hub.exited;
  }
}

describe("things serve --config", () => {
  const file = fileWith(
    "hyperthings.yaml",
    `port: 0\nmqtt: false\nobserve: false\ndataDir: from-file\nadminToken: ${TOKEN}\n`,
  );
  const folder = join(file, "..");

  it("starts with the file's settings, and says which file it read", async () => {
    const out = await served(["--config", file]);
    expect(out).toContain(`  data: ${join(folder, "from-file")}\n`);
    expect(out).toContain(`  config: ${file}: 5 settings; flags and HYPERTHINGS_ variables win over it\n`);
    expect(out).toContain(`  admin token: from adminToken in ${file}:5:13\n`);
    expect(out).toContain("  MQTT: off\n");
  });

  it("takes the file from HYPERTHINGS_CONFIG, with the environment over it and the flags over both", async () => {
    const byEnvironment = await served([], {
      HYPERTHINGS_CONFIG: file,
      HYPERTHINGS_DATA: join(folder, "from-environment"),
      HYPERTHINGS_ADMIN_TOKEN: `${TOKEN}-env`,
    });
    expect(byEnvironment).toContain(`  data: ${join(folder, "from-environment")}\n`);
    expect(byEnvironment).toContain(`  config: ${file} (HYPERTHINGS_CONFIG): 5 settings`);
    expect(byEnvironment).toContain("  admin token: from HYPERTHINGS_ADMIN_TOKEN\n");
    expect(byEnvironment).not.toContain("ignored:");
    const byFlag = await served(["--config", file, "--data", join(folder, "from-flag")], {
      HYPERTHINGS_DATA: join(folder, "from-environment"),
    });
    expect(byFlag).toContain(`  data: ${join(folder, "from-flag")}\n`);
  });

  // Each file would put the data in its folder's `data`: a refused one leaves no such folder.
  const refusals: [string, string, string, number, (path: string) => string][] = [
    [
      "an unknown key",
      "hub.yaml",
      "port: 0\ndataDirectory: data\n",
      0o600,
      (p) => `${p}:2:1: dataDirectory is no setting (did you mean dataDir?)`,
    ],
    [
      "an environment variable's name as a key",
      "hub.yaml",
      "HYPERTHINGS_PORT: 0\n",
      0o600,
      (p) => `${p}:1:1: HYPERTHINGS_PORT is no setting (did you mean port?)`,
    ],
    [
      "a key in another spelling",
      "hub.yaml",
      "data_dir: data\n",
      0o600,
      (p) => `${p}:1:1: data_dir is no setting (did you mean dataDir?)`,
    ],
    [
      "a number given as text",
      "hub.yaml",
      'dataDir: data\nport: "8080"\n',
      0o600,
      (p) => `${p}:2:7: port must be a whole number, not the text "8080"`,
    ],
    [
      "on/off given as text",
      "hub.yaml",
      "dataDir: data\nobserve: yes\n",
      0o600,
      (p) => `${p}:2:10: observe must be true or false, not the text "yes"`,
    ],
    [
      "a list that is a mapping",
      "hub.yaml",
      "dataDir: data\nallow: {a: 1}\n",
      0o600,
      (p) => `${p}:2:8: allow must be a list of texts, or one text with commas, not a mapping`,
    ],
    [
      "a key without a value",
      "hub.yaml",
      "dataDir: data\nhost:\n",
      0o600,
      (p) => `${p}:2:1: host has no value: give one, or leave the key out`,
    ],
    [
      "a value out of range",
      "hub.yaml",
      "dataDir: data\nport: 0\nbodyLimit: 10\n",
      0o600,
      (p) => `${p}:3:12: bodyLimit must be a whole number from 1024 to 1073741824, not "10"`,
    ],
    [
      "a value none of those allowed",
      "hub.yaml",
      "dataDir: data\nport: 0\nlogLevel: loud\n",
      0o600,
      (p) => `${p}:3:11: logLevel must be one of fatal, error, warn, info, debug, trace, silent, not "loud"`,
    ],
    [
      "a short token",
      "hub.yaml",
      "dataDir: data\nport: 0\nadminToken: short\n",
      0o600,
      (p) => `${p}:3:13: adminToken must be at least 16 characters long`,
    ],
    [
      "a replica without its store",
      "hub.yaml",
      "dataDir: data\nport: 0\nreplica: true\n",
      0o600,
      (p) =>
        `${p}:3:10: replica needs --store postgres://… and --bus nats://…: replicas share one PostgreSQL schema and learn each other's Changes over NATS JetStream (docs/replicas.md)`,
    ],
    [
      "a host name that is none",
      "hub.yaml",
      "dataDir: data\nport: 0\nallowedHosts: [hub.example, hub:80]\n",
      0o600,
      (p) =>
        `${p}:3:15: allowedHosts takes host names such as hub.example.com, .example.com (every name under it) or *, separated by commas; "hub:80" is not one`,
    ],
    [
      "an address range that is none",
      "hub.yaml",
      "dataDir: data\nport: 0\ndeny: 10.0.0.0/33\n",
      0o600,
      (p) =>
        `${p}:3:7: deny takes CIDR ranges such as 10.0.0.0/8 or fd00::/8, or ports such as 127.0.0.1:5432 or [::1]:6379, separated by commas; "10.0.0.0/33" is not one`,
    ],
    [
      "a token of the wrong type, without echoing it",
      "hub.yaml",
      "dataDir: data\nport: 0\nadminToken: 12345678901234567890\n",
      0o600,
      (p) => `${p}:3:13: adminToken must be text, not a number`,
    ],
    [
      "a vocabulary file that is not there",
      "hub.yaml",
      "dataDir: data\nport: 0\nmqtt: false\nvocabulary: types.json\n",
      0o600,
      (p) =>
        `The vocabulary ${join(p, "..", "types.json")} (vocabulary in ${p}:4:13) cannot be read: no such file or folder`,
    ],
    [
      "a path from the home folder",
      "hub.yaml",
      "port: 0\ndataDir: ~/data\n",
      0o600,
      (p) => `${p}:2:10: dataDir must be absolute or relative to this file's folder: "~" is not expanded`,
    ],
    [
      "YAML that does not parse",
      "hub.yaml",
      "dataDir: data\nport: [0\n",
      0o600,
      (p) => `${p}:3:1: Flow sequence in block collection must be sufficiently indented and end with a ]`,
    ],
    [
      "a key given twice",
      "hub.yaml",
      "dataDir: data\nport: 0\nport: 1\n",
      0o600,
      (p) => `${p}:3:1: Map keys must be unique`,
    ],
    [
      "JSON that does not parse",
      "hub.json",
      '{"dataDir": "data",\n "port": 0,,}\n',
      0o600,
      (p) => `${p}:2:12: Unexpected , in flow map`,
    ],
    [
      "a file that is no mapping",
      "hub.yaml",
      "- port: 0\n",
      0o600,
      (p) =>
        `${p}:1:1: a configuration file is a mapping of settings (port: 8080, …), as README.md lists them`,
    ],
    [
      "a token in a file every user may read",
      "hub.yaml",
      `dataDir: data\nport: 0\nadminToken: ${TOKEN}\n`,
      0o644,
      (p) =>
        `${p} holds a secret, adminToken (line 3), yet every user of this machine may read it (mode 0644): chmod o-r it (0640 leaves it to its group, 0600 to its owner)`,
    ],
    [
      "a store password in a file every user may read",
      "hub.yaml",
      "dataDir: data\nstore: postgres://hub:pw@db/things\n",
      0o604,
      (p) =>
        `${p} holds a secret, store (line 2), yet every user of this machine may read it (mode 0604): chmod o-r it (0640 leaves it to its group, 0600 to its owner)`,
    ],
  ];

  it.each(refusals)(
    "refuses %s in one line naming the file, and starts nothing",
    async (_what, name, text, mode, message) => {
      const path = fileWith(name, text, mode);
      const run = await runThingsToEnd(["serve", "--config", path]);
      expect({ code: run.code, stderr: run.stderr, stdout: run.stdout }).toEqual({
        code: 1,
        stderr: `things: ${message(path)}\n`,
        stdout: "",
      });
      expect(existsSync(join(path, "..", "data"))).toBe(false);
    },
  );

  it("refuses a file it cannot read, and an empty --config as a usage error", async () => {
    const missing = join(root, "missing.yaml");
    // --config wins over HYPERTHINGS_CONFIG.
    const other = fileWith("other.yaml", "port: 0\n");
    expect(
      await runThingsToEnd(["serve", "--config", missing], { env: { HYPERTHINGS_CONFIG: other } }),
    ).toMatchObject({
      code: 1,
      stderr: `things: the configuration file ${missing} cannot be read: no such file or folder\n`,
    });
    expect(await runThingsToEnd(["serve"], { env: { HYPERTHINGS_CONFIG: root } })).toMatchObject({
      code: 1,
      stderr: `things: the configuration file ${root} cannot be read: it is a folder, not a file\n`,
    });
    expect(await runThingsToEnd(["serve", "--config", ""])).toMatchObject({
      code: 2,
      stderr: "things: --config must not be empty\n",
    });
  });

  it("refuses a file over 1 MiB in one line naming the file and the limit, by its size", async () => {
    // Valid YAML, one long string: the size is what is refused, not the content.
    const path = fileWith("huge.yaml", "x".repeat(MAX_CONFIG_FILE_BYTES + 1));
    const run = await runThingsToEnd(["serve", "--config", path]);
    expect({ code: run.code, stderr: run.stderr, stdout: run.stdout }).toEqual({
      code: 1,
      stderr: `things: the configuration file ${path} is ${MAX_CONFIG_FILE_BYTES + 1} bytes; a configuration file may be 1048576 bytes (1 MiB) at most\n`,
      stdout: "",
    });
    // One of just the limit is read (and refused for what it holds, not for its size).
    const limit = fileWith("limit.yaml", `port: 0\n${"#".repeat(MAX_CONFIG_FILE_BYTES - 9)}\n`);
    expect(readConfigFile(limit).settings.get("port")?.text).toBe("0");
  });

  it.skipIf(!existsSync("/dev/zero"))(
    "refuses a file that has no size and never ends, without reading it whole",
    () => {
      expect(() => readConfigFile("/dev/zero")).toThrow(
        "the configuration file /dev/zero is more than 1 MiB; a configuration file may be 1048576 bytes (1 MiB) at most",
      );
    },
  );

  it("lets a secret stay in a file its group may read (a service's group)", () => {
    const path = fileWith("hub.yaml", `adminToken: ${TOKEN}\n`, 0o640);
    expect(readConfigFile(path).settings.get("adminToken")?.text).toBe(TOKEN);
  });
});
