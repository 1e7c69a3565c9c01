// End-to-end tests of the `things` directory commands: the built CLI as a child process, against
// a real hub on port 0. `npm test` builds dist/ first; otherwise run `npm run build`.
import { execFile } from "node:child_process";
import {
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import {
  createServer as createHttpServer,
  get as httpGet,
  type IncomingMessage,
  type Server as HttpServer,
  type ServerResponse,
} from "node:http";
import { connect, createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { badPorts } from "../src/client/index.js";
import { OTHER_TOOLS_WORDS } from "../src/cli/program.js";
import { minimalTd, startTestHub, type TestHub } from "./support/test-hub.js";
import { cleanEnvironment, runThings, runThingsToEnd } from "./support/things-process.js";

const BIN = fileURLToPath(new URL("../bin/things.js", import.meta.url));
const EXAMPLES = fileURLToPath(new URL("../examples/things/", import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `things ARGS` to its end; stdin gets `input` (or nothing) and is closed. */
function things(
  args: string[],
  options: { input?: string; env?: Record<string, string> } = {},
): Promise<Run> {
  return new Promise((resolve, reject) => {
    const child = execFile(
      process.execPath,
      [BIN, ...args],
      { env: cleanEnvironment(options.env ?? {}), timeout: 20_000, encoding: "utf8" },
      (err, stdout, stderr) => {
        if (err === null) {
          resolve({ code: 0, stdout, stderr });
        } else if (typeof err.code === "number") {
          resolve({ code: err.code, stdout, stderr });
        } else {
          // Killed by the timeout, or never started.
          reject(
            new Error(`things ${args.join(" ")} did not finish (${err.signal ?? err.message}): ${stderr}`),
          );
        }
      },
    );
    child.stdin?.end(options.input ?? "");
  });
}

/** stderr is exactly one line, starting with `things: `. */
function expectOneLine(run: Run): string {
  expect(run.code).not.toBe(0);
  expect(run.stderr).toMatch(/^things: [^\n]+\n$/);
  return run.stderr;
}

function lamp(id: string | undefined, overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return minimalTd({ ...(id !== undefined && { id }), ...overrides });
}

let hub: TestHub;
let work: string;

/** `things ARGS --url HUB --token TOKEN`. */
function thingsAt(args: string[], options: { input?: string } = {}): Promise<Run> {
  return things([...args, "--url", hub.url, "--token", hub.token], options);
}

function writeJson(name: string, value: unknown): string {
  const path = join(work, name);
  writeFileSync(path, JSON.stringify(value, null, 2));
  return path;
}

async function storedIds(): Promise<string[]> {
  const response = await hub.request("/things");
  return ((await response.json()) as Array<{ id: string }>).map((td) => td.id);
}

/** Starts a server on a free port of 127.0.0.1: its base URL. */
async function listening(server: HttpServer): Promise<string> {
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return `http://127.0.0.1:${(server.address() as { port: number }).port}`;
}

/** A proxy's forwarding: the hub's answer to the same request, at `path`. */
function forwardToHub(path: string, request: IncomingMessage, response: ServerResponse): void {
  httpGet(`${hub.url}${path}`, { headers: request.headers }, (answer) => {
    response.writeHead(answer.statusCode ?? 502, answer.headers);
    answer.pipe(response);
  }).on("error", () => response.destroy());
}

async function register(...tds: Array<Record<string, unknown>>): Promise<void> {
  for (const td of tds) {
    const response = await hub.request(`/things/${encodeURIComponent(String(td.id))}`, {
      method: "PUT",
      headers: { "content-type": "application/td+json" },
      body: JSON.stringify(td),
    });
    expect(response.status).toBe(201);
  }
}

beforeEach(async () => {
  hub = await startTestHub();
  work = mkdtempSync(join(tmpdir(), "hyperthings-cli-"));
});

afterEach(async () => {
  await hub.stop();
  rmSync(work, { recursive: true, force: true });
});

describe("things add", () => {
  it("registers a TD file, says unchanged when the same TD is added again, and updated when it differs", async () => {
    const file = writeJson("lamp.json", lamp("urn:test:lamp-1"));
    const first = await thingsAt(["add", file]);
    expect(first).toMatchObject({ code: 0, stdout: "registered urn:test:lamp-1\n", stderr: "" });
    const recorded = await hub.hub.store.lastSeq();
    // The hub records nothing for a TD it holds as it is: "updated" would say it changed.
    const second = await thingsAt(["add", file]);
    expect(second).toMatchObject({ code: 0, stdout: "unchanged urn:test:lamp-1\n", stderr: "" });
    expect(await hub.hub.store.lastSeq()).toBe(recorded);
    writeJson("lamp.json", { ...lamp("urn:test:lamp-1"), title: "Renamed lamp" });
    const third = await thingsAt(["add", file]);
    expect(third).toMatchObject({ code: 0, stdout: "updated urn:test:lamp-1\n", stderr: "" });
    expect(await storedIds()).toEqual(["urn:test:lamp-1"]);
  });

  it("says unchanged for a TD given twice in one run, not updated", async () => {
    const file = writeJson("lamp.json", lamp("urn:test:lamp-twice"));
    const run = await thingsAt(["add", file, work]);
    expect(run).toMatchObject({
      code: 0,
      stdout: "registered urn:test:lamp-twice\nunchanged urn:test:lamp-twice\n",
      stderr: "",
    });
  });

  it("registers every *.json of a folder in name order and ignores other files and subfolders", async () => {
    const folder = join(work, "fleet");
    mkdirSync(join(folder, "nested"), { recursive: true });
    writeFileSync(join(folder, "b.json"), JSON.stringify(lamp("urn:test:b")));
    writeFileSync(join(folder, "a.json"), JSON.stringify(lamp("urn:test:z")));
    writeFileSync(join(folder, "notes.txt"), "not a TD");
    writeFileSync(join(folder, "nested", "c.json"), JSON.stringify(lamp("urn:test:c")));
    const run = await thingsAt(["add", folder]);
    expect(run).toMatchObject({
      code: 0,
      stdout: "registered urn:test:z\nregistered urn:test:b\n",
      stderr: "",
    });
    expect(await storedIds()).toEqual(["urn:test:b", "urn:test:z"]);
  });

  it("registers every example Thing shipped in examples/things", async () => {
    const run = await thingsAt(["add", EXAMPLES]);
    expect(run.stderr).toBe("");
    expect(run.code).toBe(0);
    expect(run.stdout.trim().split("\n")).toHaveLength(6);
    expect(await storedIds()).toHaveLength(6);
  });

  it("says that standard input or a file held nothing, not that it is malformed JSON", async () => {
    const fromStdin = await thingsAt(["add", "-"], { input: "\n" });
    expect(expectOneLine(fromStdin)).toBe(
      "things: standard input held nothing: pipe TDs into it (things add - < lamp.json) (nothing added)\n",
    );
    const empty = join(work, "empty.json");
    writeFileSync(empty, "");
    expect(expectOneLine(await thingsAt(["add", empty]))).toBe(
      `things: ${empty} is empty: a TD file holds a TD (a JSON object) or an array of TDs (nothing added)\n`,
    );
    expect(await storedIds()).toEqual([]);
  });

  it("reads TDs from stdin when given -", async () => {
    const run = await thingsAt(["add", "-"], { input: JSON.stringify(lamp("urn:test:from-stdin")) });
    expect(run).toMatchObject({ code: 0, stdout: "registered urn:test:from-stdin\n" });
    expect(await storedIds()).toEqual(["urn:test:from-stdin"]);
  });

  it("registers each TD of a file holding an array, and reports the id the hub gave an anonymous TD", async () => {
    const file = writeJson("two.json", [lamp("urn:test:first"), lamp(undefined, { title: "Anonymous" })]);
    const run = await thingsAt(["add", file]);
    expect(run.code).toBe(0);
    const [first, second, ...rest] = run.stdout.split("\n");
    expect(first).toBe("registered urn:test:first");
    expect(second).toMatch(/^registered urn:uuid:[0-9a-f-]{36}$/);
    expect(rest).toEqual([""]);
    const anonymousId = (second ?? "").slice("registered ".length);
    expect((await storedIds()).sort()).toEqual(["urn:test:first", anonymousId].sort());
    const stored = (await (await hub.request(`/things/${anonymousId}`)).json()) as { title: string };
    expect(stored.title).toBe("Anonymous");
  });

  it("adds nothing of a folder when the hub refuses one TD (over its body limit), naming its file", async () => {
    const folder = join(work, "fleet");
    mkdirSync(folder);
    writeFileSync(join(folder, "a.json"), JSON.stringify(lamp("urn:test:small")));
    // Valid TD 1.1, so the CLI's own checks pass; only the hub knows its body limit (1 MiB).
    writeFileSync(
      join(folder, "b.json"),
      JSON.stringify(lamp("urn:test:huge", { description: "x".repeat(1100 * 1024) })),
    );
    const before = await hub.hub.store.lastSeq();
    const run = await thingsAt(["add", folder]);
    expect(run.stdout).toBe("");
    expect(expectOneLine(run)).toMatch(
      new RegExp(
        `^things: ${join(folder, "b.json").replace(/[.\\/]/g, "\\$&")}: The TD is \\d+ bytes of JSON, more than the 1048576 a TD may have .*\\(nothing added\\)\\n$`,
      ),
    );
    expect(await storedIds()).toEqual([]);
    expect(await hub.hub.store.lastSeq()).toBe(before);
  });

  it("adds nothing when two files give one id different TDs, naming the second at its place", async () => {
    await register(lamp("urn:test:shared", { title: "As registered" }));
    writeJson("1-new.json", lamp("urn:test:new-one"));
    writeJson("2-first.json", lamp("urn:test:shared", { title: "First" }));
    writeJson("3-second.json", [lamp("urn:test:other"), lamp("urn:test:shared", { title: "Second" })]);
    const run = await thingsAt(["add", work]);
    expect(run.stdout).toBe("");
    expect(expectOneLine(run)).toBe(
      `things: ${join(work, "3-second.json")}#/1/id: The batch gives the id urn:test:shared twice: at /1 and at /3 (nothing added)\n`,
    );
    expect(await storedIds()).toEqual(["urn:test:shared"]);
    const stored = (await (await hub.request("/things/urn:test:shared")).json()) as { title: string };
    expect(stored.title).toBe("As registered");
  });

  it("says each TD the hub refused when it refuses several, on one line, and adds nothing", async () => {
    writeJson("a.json", lamp("urn:test:fine"));
    writeJson("b.json", lamp("urn:test:big-1", { description: "y".repeat(1100 * 1024) }));
    writeJson("c.json", lamp("urn:test:big-2", { description: "z".repeat(1100 * 1024) }));
    const run = await thingsAt(["add", work]);
    const line = expectOneLine(run);
    expect(line).toMatch(/^things: the hub refused 2 TDs, nothing added: /);
    expect(line).toContain(`${join(work, "b.json")}: The TD is`);
    expect(line).toContain(`; ${join(work, "c.json")}: The TD is`);
    expect(await storedIds()).toEqual([]);
  });

  it("takes the hub and the token from HYPERTHINGS_URL and HYPERTHINGS_TOKEN", async () => {
    const file = writeJson("lamp.json", lamp("urn:test:by-env"));
    const run = await things(["add", file], {
      env: { HYPERTHINGS_URL: hub.url, HYPERTHINGS_TOKEN: hub.token },
    });
    expect(run).toMatchObject({ code: 0, stdout: "registered urn:test:by-env\n" });
  });

  it("says, when no token was given to a hub that needs one, where the admin token is to be found", async () => {
    const file = writeJson("lamp.json", lamp("urn:test:no-token"));
    const run = await things(["add", file], { env: { HYPERTHINGS_URL: hub.url } });
    expect(run.code).toBe(1);
    expect(expectOneLine(run)).toBe(
      "things: Changing anything on this hub requires an admin bearer token; give a token with --token or " +
        "HYPERTHINGS_TOKEN: none was given (the CLI reads an admin-token file only for the hub at " +
        "http://127.0.0.1:8080; this one printed its token at its first start, and keeps it in its data " +
        "directory's admin-token) (nothing added)\n",
    );
  });

  it("takes an empty HYPERTHINGS_URL as unset (the default hub), and refuses an empty --url", async () => {
    const run = await things(["ls"], { env: { HYPERTHINGS_URL: "", HYPERTHINGS_DATA: "" } });
    // The CLI talked to the default address, not to "" (whether a hub answers there or not).
    expect(run.stderr).not.toContain("is not a hub URL");
    if (run.code !== 0) expect(expectOneLine(run)).toContain("http://127.0.0.1:8080");
    const flag = await things(["ls", "--url", ""]);
    expect(flag.code).toBe(2);
    expect(expectOneLine(flag)).toContain('"" is not a hub URL');
  });

  it("refuses an empty --token, which the default local hub's admin token would stand in for, but not an empty HYPERTHINGS_TOKEN", async () => {
    // The default hub (whose admin token the data directory may hold), and another one.
    for (const args of [
      ["rm", "urn:test:lamp", "--token", ""],
      ["ls", "--token", "", "--url", "http://127.0.0.1:9"],
    ]) {
      expect(await things(args), args.join(" ")).toEqual({
        code: 2,
        stdout: "",
        stderr: "things: --token is empty: give the hub's token, or leave --token out\n",
      });
    }
    const env = await things(["ls", "--url", hub.url], { env: { HYPERTHINGS_TOKEN: "" } });
    expect(env.code).toBe(0);
  });
});

describe("things get, ls, rm, search", () => {
  const sensor = lamp("urn:test:sensor-1", {
    "@context": ["https://www.w3.org/2022/wot/td/v1.1", { saref: "https://saref.etsi.org/core/" }],
    "@type": "saref:TemperatureSensor",
    title: "Room sensor",
  });
  const lamp1 = lamp("urn:test:lamp-1", { "@type": ["Lamp", "saref:Actuator"], title: "Desk lamp" });
  const lamp2 = lamp("urn:test:lamp-2", { "@type": "Lamp", title: "Floor lamp" });

  it("get prints the TD with its registration as pretty JSON, and --json prints it on one line", async () => {
    await register(sensor);
    const pretty = await thingsAt(["get", "urn:test:sensor-1"]);
    expect(pretty.code).toBe(0);
    const td = JSON.parse(pretty.stdout) as Record<string, unknown>;
    expect(td).toMatchObject({ id: "urn:test:sensor-1", title: "Room sensor", registration: {} });
    expect(pretty.stdout).toContain('\n  "id": "urn:test:sensor-1"');
    const compact = await thingsAt(["get", "urn:test:sensor-1", "--json"]);
    expect(compact.stdout.trim().split("\n")).toHaveLength(1);
    expect((JSON.parse(compact.stdout) as { id: string }).id).toBe("urn:test:sensor-1");
  });

  it("ls prints a table of id, title, type and modification time, in id order", async () => {
    await register(sensor, lamp1, lamp2);
    const run = await thingsAt(["ls"]);
    expect(run).toMatchObject({ code: 0, stderr: "" });
    const lines = run.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\s+TITLE\s+TYPE\s+MODIFIED$/);
    expect(lines.slice(1).map((line) => line.split(/\s{2,}/))).toEqual([
      [
        "urn:test:lamp-1",
        "Desk lamp",
        "Lamp, saref:Actuator",
        expect.stringMatching(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/),
      ],
      ["urn:test:lamp-2", "Floor lamp", "Lamp", expect.stringMatching(/Z$/)],
      ["urn:test:sensor-1", "Room sensor", "saref:TemperatureSensor", expect.stringMatching(/Z$/)],
    ]);
    // The columns line up: every TITLE starts where the header's does.
    const titleAt = (lines[0] ?? "").indexOf("TITLE");
    for (const line of lines.slice(1)) expect(line[titleAt - 1]).toBe(" ");
  });

  it("ls --json prints every Thing as one JSON array, following the hub's pages", async () => {
    const many = Array.from({ length: 130 }, (_, i) => lamp(`urn:test:many-${String(i).padStart(3, "0")}`));
    await register(...many);
    const run = await thingsAt(["ls", "--json"]);
    expect(run.code).toBe(0);
    const listed = JSON.parse(run.stdout) as Array<{ id: string }>;
    expect(listed.map((td) => td.id)).toEqual(many.map((td) => td.id));
  });

  it("ls --limit shows at most that many Things", async () => {
    await register(sensor, lamp1, lamp2);
    const run = await thingsAt(["ls", "--json", "--limit", "2"]);
    expect((JSON.parse(run.stdout) as Array<{ id: string }>).map((td) => td.id)).toEqual([
      "urn:test:lamp-1",
      "urn:test:lamp-2",
    ]);
  });

  it("ls --type lists the Things of a type or its subtypes, as the graph filter does", async () => {
    await register(sensor, lamp1, lamp2);
    const ids = async (type: string) =>
      (JSON.parse((await thingsAt(["ls", "--type", type, "--json"])).stdout) as Array<{ id: string }>).map(
        (td) => td.id,
      );
    const types = [
      "Lamp",
      "TemperatureSensor",
      "saref:TemperatureSensor",
      "https://saref.etsi.org/core/TemperatureSensor",
      "Actuator",
      // Supertypes in the vocabulary: a temperature sensor is a saref:Sensor, and a saref:Device
      // as the lamp (a saref:Actuator) is.
      "saref:Sensor",
      "saref:Device",
      "Temperature",
    ];
    expect(await Promise.all(types.map(ids))).toEqual([
      ["urn:test:lamp-1", "urn:test:lamp-2"],
      ["urn:test:sensor-1"],
      ["urn:test:sensor-1"],
      ["urn:test:sensor-1"],
      ["urn:test:lamp-1"],
      ["urn:test:sensor-1"],
      ["urn:test:lamp-1", "urn:test:sensor-1"],
      [],
    ]);
    const limited = await thingsAt(["ls", "--type", "saref:Device", "--limit", "1", "--json"]);
    expect((JSON.parse(limited.stdout) as Array<{ id: string }>).map((td) => td.id)).toEqual([
      "urn:test:lamp-1",
    ]);
    const table = await thingsAt(["ls", "--type", "Lamp"]);
    expect(table.stdout).toContain("urn:test:lamp-2");
    expect(table.stdout).not.toContain("urn:test:sensor-1");
  });

  it("rm removes each Thing named and reports it", async () => {
    await register(sensor, lamp1, lamp2);
    const run = await thingsAt(["rm", "urn:test:lamp-1", "urn:test:sensor-1"]);
    expect(run).toMatchObject({ code: 0, stdout: "removed urn:test:lamp-1\nremoved urn:test:sensor-1\n" });
    expect(await storedIds()).toEqual(["urn:test:lamp-2"]);
  });

  it("rm removes the Things named even when some ids name none, and says which, exiting 1", async () => {
    await register(sensor, lamp1, lamp2);
    const run = await thingsAt([
      "rm",
      "urn:test:nobody",
      "urn:test:lamp-1",
      "urn:test:ghost",
      "urn:test:sensor-1",
    ]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("removed urn:test:lamp-1\nremoved urn:test:sensor-1\n");
    expect(expectOneLine(run)).toBe(
      "things: 2 ids name no Thing, nothing removed for them: urn:test:nobody, urn:test:ghost\n",
    );
    expect(await storedIds()).toEqual(["urn:test:lamp-2"]);
  });

  it("search prints one JSON value per line, and --json prints them as one array", async () => {
    await register(sensor, lamp1, lamp2);
    const lines = await thingsAt(["search", "$[*].title"]);
    expect(lines).toMatchObject({ code: 0, stdout: '"Desk lamp"\n"Floor lamp"\n"Room sensor"\n' });
    const array = await thingsAt(["search", "$[*]['@type']", "--json"]);
    expect(array.stdout.trim().split("\n")).toHaveLength(1);
    expect(JSON.parse(array.stdout)).toEqual([["Lamp", "saref:Actuator"], "Lamp", "saref:TemperatureSensor"]);
  });

  it("search's help gives examples that select from the TDs: its root is the array of every TD", async () => {
    await register(lamp1, lamp("urn:test:lamp-3", { title: "Lamp" }));
    const help = await thingsAt(["search", "--help"]);
    const examples = [...help.stdout.replace(/\s+/g, " ").matchAll(/'(\$[^']*)'/g)].map((m) => m[1] ?? "");
    expect(examples.length).toBeGreaterThan(0);
    for (const example of examples) {
      const run = await thingsAt(["search", example]);
      expect(run.code).toBe(0);
      expect(run.stdout, `things search '${example}' selects something`).not.toBe("");
    }
  });

  it("search that selects nothing prints nothing and succeeds", async () => {
    await register(lamp1);
    expect(await thingsAt(["search", "$[*].nothing"])).toMatchObject({ code: 0, stdout: "", stderr: "" });
  });
});

describe("things on a terminal", () => {
  // `script` runs the command on a pseudo-terminal, as a person's shell does.
  const onTerminal = (args: string[]): Promise<Run> =>
    new Promise((resolve, reject) => {
      const command = [process.execPath, BIN, ...args]
        .map((a) => `'${a.replaceAll("'", "'\\''")}'`)
        .join(" ");
      execFile(
        "script",
        ["-qec", command, "/dev/null"],
        {
          env: cleanEnvironment({ HYPERTHINGS_URL: hub.url, HYPERTHINGS_TOKEN: hub.token }),
          timeout: 20_000,
        },
        (err, stdout, stderr) => {
          if (err !== null && typeof err.code !== "number") reject(new Error(err.message));
          else resolve({ code: err === null ? 0 : Number(err.code), stdout, stderr });
        },
      );
    });

  it("shows a TD's and a device's control characters escaped, so that they cannot drive the terminal", async () => {
    // A title an announcing device chose: a window title, a colour, a cleared screen.
    const title = "Lamp\u001b]0;owned\u0007\u001b[31m\u001b[2J\u009b1m";
    await register(lamp("urn:test:terminal", { title }));
    const state = await onTerminal(["state", "urn:test:terminal"]);
    expect(state.code, state.stdout).toBe(0);
    expect(state.stdout).toContain(
      "Lamp\\u001b]0;owned\\u0007\\u001b[31m\\u001b[2J\\u009b1m  urn:test:terminal",
    );
    // eslint-disable-next-line no-control-regex
    expect(state.stdout).not.toMatch(/[\u001b\u0007\u009b]/);
    // A failure's one line too (here the hub's answer names the id given).
    const failed = await onTerminal(["get", "urn:test:\u001b[2Jgone"]);
    expect(failed.code).not.toBe(0);
    expect(failed.stdout).toContain("urn:test:\\u001b[2Jgone");
    // eslint-disable-next-line no-control-regex
    expect(failed.stdout).not.toMatch(/\u001b/);
    // Through a pipe the bytes are left as they are: --json and exports are the hub's, byte for byte.
    const piped = await thingsAt(["state", "urn:test:terminal", "--json"]);
    expect(JSON.parse(piped.stdout)).toMatchObject({ td: { title } });
  });
});

describe("failures: one line on stderr and a non-zero exit", () => {
  it("get of an unknown id says so", async () => {
    const run = await thingsAt(["get", "urn:test:nobody"]);
    expect(run.code).toBe(1);
    expect(expectOneLine(run)).toContain("urn:test:nobody");
    expect(run.stdout).toBe("");
  });

  it("an id with a typo gets the registered id nearest to it, any other unknown id where ids are listed", async () => {
    await register(lamp("urn:test:espresso-machine"), lamp("urn:test:switch-1"));
    for (const args of [
      ["get", "urn:test:espreso-machine"],
      ["read", "urn:test:espreso-machine", "setpoint"],
    ]) {
      expect(expectOneLine(await thingsAt(args))).toBe(
        "things: No Thing with id urn:test:espreso-machine (did you mean urn:test:espresso-machine?)\n",
      );
    }
    expect(expectOneLine(await thingsAt(["state", "urn:test:switch-2"]))).toBe(
      "things: No Thing with id urn:test:switch-2 has ever been registered here (did you mean urn:test:switch-1?)\n",
    );
    expect(expectOneLine(await thingsAt(["get", "urn:other:thing"]))).toBe(
      "things: No Thing with id urn:other:thing: `things ls` lists their ids\n",
    );
  });

  it("diff of an id with a typo gets the registered id nearest to it; a known Thing absent then says when", async () => {
    await register(lamp("urn:test:espresso-machine"));
    const window = ["--from", "-1h", "--to", "now"];
    expect(expectOneLine(await thingsAt(["diff", "urn:test:espreso-machine", ...window]))).toBe(
      "things: No Thing with id urn:test:espreso-machine has ever been registered here (did you mean urn:test:espresso-machine?)\n",
    );
    expect(
      expectOneLine(await thingsAt(["diff", "urn:test:espresso-machine", "--from", "-3h", "--to", "-2h"])),
    ).toMatch(
      /^things: urn:test:espresso-machine was not in the directory between \S+Z and \S+Z: it was registered after that, at \S+Z \(seq \d+\); ask for times from then on\n$/,
    );
  });

  it("rollouts --status that is no status is a usage error in words, before the hub is asked", async () => {
    expect(await things(["rollouts", "--status", "paused", "--url", "http://127.0.0.1:9"])).toEqual({
      code: 2,
      stdout: "",
      stderr: 'things: --status must be running, completed or failed, not "paused"\n',
    });
    expect(await thingsAt(["rollouts", "--status", "failed"])).toEqual({
      code: 0,
      stdout: "",
      stderr: "no failed rollouts\n",
    });
  });

  it("rm of an unknown id says so", async () => {
    const run = await thingsAt(["rm", "urn:test:nobody"]);
    expect(expectOneLine(run)).toContain("urn:test:nobody");
  });

  it("add of a TD without a title names the file and what is missing, and stores nothing", async () => {
    const untitled = lamp("urn:test:untitled");
    delete untitled.title;
    const file = writeJson("untitled.json", untitled);
    const run = await thingsAt(["add", file]);
    expect(run.code).toBe(1);
    const line = expectOneLine(run);
    expect(line).toContain(`${file}`);
    expect(line).toContain("title");
    expect(await storedIds()).toEqual([]);
  });

  it("add of a TD with several problems names each at its place in the file, on one line", async () => {
    const file = writeJson("broken.json", [
      lamp("urn:test:broken", {
        security: "missing",
        properties: { on: { type: "bogus", forms: [{ href: "http://127.0.0.1:1/on" }] } },
      }),
    ]);
    const run = await thingsAt(["add", file]);
    const line = expectOneLine(run);
    expect(line).toContain(`${file}#/0/properties/on/type: The Thing Description is not valid TD 1.1:`);
    expect(line).toContain('; #/0/security names security scheme "missing"');
    expect(line).not.toContain("more problem");
    expect(await storedIds()).toEqual([]);
  });

  it("add of an invalid TD in an array names the file and the JSON pointer into it, and adds none of the array", async () => {
    const file = writeJson("fleet.json", [
      lamp("urn:test:good"),
      lamp("urn:test:bad", { properties: { on: { type: "boolean", forms: "not an array" } } }),
      lamp("urn:test:never-sent"),
    ]);
    const run = await thingsAt(["add", file]);
    expect(run.stdout).toBe("");
    const line = expectOneLine(run);
    expect(line).toContain(`${file}#/1/properties/on/forms`);
    expect(line).toContain("(nothing added)");
    expect(await storedIds()).toEqual([]);
  });

  it("add of a folder names every problem of every file at once, and adds nothing", async () => {
    const folder = join(work, "things");
    mkdirSync(folder);
    writeFileSync(join(folder, "a-good.json"), JSON.stringify(lamp("urn:test:good")));
    writeFileSync(join(folder, "b-malformed.json"), '{ "title": "Lamp",\n');
    const untitled = lamp("urn:test:untitled");
    delete untitled.title;
    writeFileSync(
      join(folder, "c-fleet.json"),
      JSON.stringify([lamp("urn:test:fine"), untitled, lamp("urn:test:bad id")]),
    );
    writeFileSync(join(folder, "d-number.json"), "42");
    writeFileSync(
      join(folder, "e-expired.json"),
      JSON.stringify(lamp("urn:test:expired", { registration: { expires: "2001-01-01T00:00:00Z" } })),
    );
    const run = await thingsAt(["add", folder, join(work, "missing.json")]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    const line = expectOneLine(run);
    expect(line).toMatch(/^things: 6 TDs or files have problems, nothing added: /);
    expect(line).toMatch(new RegExp(`${join(folder, "b-malformed.json")}: [^;]*malformed JSON`, "i"));
    expect(line).toContain(`${join(folder, "c-fleet.json")}#/1`);
    expect(line).toContain("title");
    expect(line).toContain(`${join(folder, "c-fleet.json")}#/2/id: `);
    expect(line).toContain("is not a valid Thing id");
    expect(line).toContain(
      `${join(folder, "d-number.json")}: a TD file holds a TD (a JSON object) or an array of TDs, not a number`,
    );
    expect(line).toContain(
      `${join(folder, "e-expired.json")}#/registration/expires: registration.expires (2001-01-01T00:00:00.000Z) is in the past`,
    );
    expect(line).toContain(`cannot read ${join(work, "missing.json")}: no such file or folder`);
    expect(line).not.toContain("a-good.json");
    expect(await storedIds()).toEqual([]);
  });

  it("add of malformed JSON names the file, and sends nothing, not even the valid files before it", async () => {
    const good = writeJson("a.json", lamp("urn:test:good"));
    const broken = join(work, "b.json");
    writeFileSync(broken, '{ "title": "Lamp",\n');
    const run = await thingsAt(["add", good, broken]);
    expect(run.stdout).toBe("");
    const line = expectOneLine(run);
    expect(line).toContain(broken);
    expect(line).toMatch(/malformed json/i);
    expect(await storedIds()).toEqual([]);
  });

  it("add of a file that does not exist names it", async () => {
    const run = await thingsAt(["add", join(work, "missing.json")]);
    expect(expectOneLine(run)).toContain("missing.json");
  });

  it("add without a token says a token is needed and how to give one", async () => {
    const file = writeJson("lamp.json", lamp("urn:test:lamp"));
    const run = await things(["add", file, "--url", hub.url]);
    expect(run.code).toBe(1);
    expect(expectOneLine(run)).toMatch(/token.*--token or HYPERTHINGS_TOKEN/);
    expect(await storedIds()).toEqual([]);
  });

  it("a hub that is not running is reported as unreachable", async () => {
    const stopped = await startTestHub();
    await stopped.stop();
    const run = await things(["ls", "--url", stopped.url]);
    expect(run.code).toBe(1);
    expect(expectOneLine(run)).toBe(
      `things: cannot reach the hub at ${stopped.url}: connection refused — is \`things serve\` running?\n`,
    );
  });

  it("a --url at a server that is no hub says what it is not, and what to give instead", async () => {
    // A server that greets in its own protocol, as NATS, Redis or an MQTT broker's port does.
    const other = createServer((socket) => {
      socket.on("error", () => {});
      socket.write('INFO {"server_id":"x"}\r\n');
    });
    await new Promise<void>((resolve) => other.listen(0, "127.0.0.1", resolve));
    const { port } = other.address() as { port: number };
    try {
      const notHttp = await things(["ls", "--url", `http://127.0.0.1:${port}`]);
      expect(notHttp.code).toBe(1);
      expect(expectOneLine(notHttp)).toBe(
        `things: cannot reach the hub at http://127.0.0.1:${port}: what answers there does not speak HTTP — is it the address \`things serve\` printed?\n`,
      );
    } finally {
      other.close();
    }
    const tls = await things(["ls", "--url", hub.url.replace(/^http:/, "https:")]);
    expect(tls.code).toBe(1);
    expect(expectOneLine(tls)).toMatch(/does not speak TLS — .*give an http:\/\/ URL/);
    // 6000 is one of the ports fetch refuses, whatever listens there.
    const badPort = await things(["ls", "--url", "http://127.0.0.1:6000"]);
    expect(badPort.code).toBe(1);
    expect(expectOneLine(badPort)).toMatch(/"bad port" .* run the hub on another --port\n$/);
    const noHost = await things(["ls", "--url", "http://no-such-hub.invalid:8080"]);
    expect(noHost.code).toBe(1);
    expect(expectOneLine(noHost)).toMatch(
      /no such host — check the hub's address \(--url, HYPERTHINGS_URL\)\n$/,
    );
  });

  it("a number argument that is no whole number in range says which and what it takes, as a usage error", async () => {
    for (const [args, line] of [
      [["why", "abc"], 'seq must be a whole number from 1, not "abc"'],
      [["prove", "0"], 'seq must be a whole number from 1, not "0"'],
      [["prove", "3", "--size", "1.5"], '--size must be a whole number from 1, not "1.5"'],
      [["history", "urn:test:lamp", "--limit", "ten"], '--limit must be a whole number from 1, not "ten"'],
      [["verify", "--threads", "x"], '--threads must be a whole number from 0, not "x"'],
      [["graph", "urn:test:lamp", "--depth", "0"], '--depth must be a whole number from 1 to 10, not "0"'],
      [["rollout", "r1", "--concurrency", "0"], '--concurrency must be a whole number from 1, not "0"'],
    ] as const) {
      const run = await thingsAt([...args]);
      expect(run.code).toBe(2);
      expect(expectOneLine(run)).toBe(`things: ${line}\n`);
    }
  });

  it("a --url at an HTTP server that is no hub, or under a path the hub does not serve, says which and what to give", async () => {
    // An HTTP server of another kind (here a problem document, as `things sim`'s devices answer).
    const other = createHttpServer((_request, response) => {
      response.writeHead(404, { "content-type": "application/problem+json" });
      response.end(
        JSON.stringify({ title: "Not found", status: 404, detail: "nothing is served at /things" }),
      );
    });
    // A proxy that serves the hub under /hub/, as docs/cli.md's --url allows.
    const proxy = createHttpServer((request, response) => {
      forwardToHub((request.url ?? "").replace(/^\/hub\//, "/"), request, response);
    });
    const otherUrl = await listening(other);
    const proxyUrl = await listening(proxy);
    try {
      for (const args of [["ls"], ["get", "urn:test:lamp"]]) {
        expect(expectOneLine(await things([...args, "--url", otherUrl]))).toBe(
          `things: cannot reach the hub at ${otherUrl}: what answers there is no Hyperthings hub (GET /health does not answer as a hub does) — is it the address \`things serve\` printed?\n`,
        );
        expect(expectOneLine(await things([...args, "--url", `${hub.url}/things`]))).toBe(
          `things: cannot reach the hub at ${hub.url}/things: the hub there serves at ${hub.url}, not under /things — give ${hub.url} (--url, HYPERTHINGS_URL)\n`,
        );
      }
      // Through a proxy that strips its path, the hub's own refusal, as before.
      expect(expectOneLine(await things(["get", "urn:test:lamp", "--url", `${proxyUrl}/hub/`]))).toBe(
        "things: No Thing with id urn:test:lamp: `things ls` lists their ids\n",
      );
    } finally {
      other.close();
      proxy.close();
    }
  });

  it("a --url at an HTTP server that answers 200 with no JSON says it is no hub, with what it answered", async () => {
    // A web server of another kind: every path answers 200 with its page.
    const page = "<!DOCTYPE html>\n<html><body>Welcome to nginx!</body></html>\n";
    const web = createHttpServer((_request, response) => {
      response.writeHead(200, { "content-type": "text/html; charset=utf-8" });
      response.end(page);
    });
    // The hub behind a proxy whose streams (the live feed, the Log's NDJSON) answer with a page.
    const proxy = createHttpServer((request, response) => {
      const path = request.url ?? "";
      if (/^\/(changes\/stream|log\/entries)\b/.test(path)) {
        response.writeHead(200, { "content-type": "text/html" });
        response.end(page);
        return;
      }
      forwardToHub(path, request, response);
    });
    const webUrl = await listening(web);
    const proxyUrl = await listening(proxy);
    await register(lamp("urn:test:lamp"));
    const shown = 'text/html: "<!DOCTYPE html> <html><body>Welcome to nginx!</body></html>"';
    try {
      for (const [args, request] of [
        [["ls"], "GET /things"],
        [["history", "urn:test:lamp"], "GET /things/urn:test:lamp/history"],
        [["verify"], "GET /log/key"],
        // The live feed goes over GraphQL: its first request is a query.
        [["watch"], "POST /graphql"],
      ] as const) {
        const run = await things([...args, "--url", webUrl]);
        expect(run.code, args.join(" ")).toBe(1);
        expect(expectOneLine(run)).toBe(
          `things: cannot reach the hub at ${webUrl}: what answers there is no Hyperthings hub (${request} answered 200 with ${shown}) — is it the address \`things serve\` printed?\n`,
        );
      }
      // A hub whose stream answers are no stream: said, not read as an empty stream for ever.
      const observed = await things(["observe", "urn:test:lamp", "--url", proxyUrl]);
      expect(observed.code).toBe(1);
      expect(observed.stderr).toMatch(
        /^things: the hub's GET \/changes\/stream answered 200 with text\/html: "<!DOCTYPE html> <html>.*"\n$/,
      );
      const verified = await things(["verify", "--url", proxyUrl]);
      expect(verified.code).toBe(1);
      expect(verified.stderr).toMatch(
        /^things: the hub's GET \/log\/entries answered 200 with text\/html: "<!DOCTYPE html> <html>.*"\n$/m,
      );
    } finally {
      web.close();
      proxy.close();
    }
  });

  it("an unknown command exits with the usage code 2", async () => {
    const run = await things(["lss"]);
    expect(run.code).toBe(2);
    expect(expectOneLine(run)).toContain("lss");
  });

  it("things help with a command it does not have says so in one line, exit 2, with the nearest command", async () => {
    for (const [args, line] of [
      [["help", "nope"], 'things: unknown command "nope"\n'],
      [["help", "dif"], 'things: unknown command "dif" (did you mean diff?)\n'],
      [
        ["help", "credentials", "sett"],
        'things: unknown command "credentials sett" (did you mean credentials set?)\n',
      ],
      [["help", "logs"], `things: unknown command "logs": ${OTHER_TOOLS_WORDS.logs}\n`],
    ] as const) {
      const run = await things([...args]);
      expect(run, args.join(" ")).toMatchObject({ code: 2, stdout: "", stderr: line });
    }
    // A command it has: that command's help, as --help prints it.
    const [help, flag] = await Promise.all([things(["help", "diff"]), things(["diff", "--help"])]);
    expect(help).toMatchObject({ code: 0, stderr: "" });
    expect(help.stdout).toBe(flag.stdout);
    expect(help.stdout).toMatch(/^Usage: things diff /);
    const group = await things(["help", "credentials", "set"]);
    expect(group).toMatchObject({ code: 0, stderr: "" });
    expect(group.stdout).toMatch(/^Usage: things credentials set /);
    const all = await things(["help"]);
    expect(all).toMatchObject({ code: 0, stderr: "" });
    expect(all.stdout).toMatch(/^Usage: things \[options\] \[command\]\n/);
  });

  it("an unknown option exits with the usage code 2", async () => {
    const run = await things(["ls", "--colour"]);
    expect(run.code).toBe(2);
    expect(expectOneLine(run)).toContain("--colour");
  });

  it("a --limit that is not a positive whole number exits with the usage code 2", async () => {
    const run = await things(["ls", "--limit", "0", "--url", hub.url]);
    expect(run.code).toBe(2);
    expectOneLine(run);
  });

  it("a seq or a count written as the hub would refuse it (01, +1, 1e0) exits with the usage code 2", async () => {
    for (const args of [
      ["why", "01"],
      ["prove", "+1"],
      ["ls", "--limit", "1e0"],
      ["verify", "--threads", "00"],
    ]) {
      const run = await things([...args, "--url", hub.url]);
      expect(run.code, args.join(" ")).toBe(2);
      expectOneLine(run);
    }
  });
});

describe("things loads what a command uses", () => {
  /**
   * Preloaded with `node --import`: on exit, writes on stderr the npm packages the process loaded
   * through require (ESM imports of CommonJS packages go through it too), on one line.
   */
  const PRELOAD =
    "data:text/javascript," +
    encodeURIComponent(`
      import { createRequire } from "node:module";
      const require = createRequire("file:///");
      process.on("exit", () => {
        const packages = new Set();
        for (const path of Object.keys(require.cache)) {
          const match = /\\/node_modules\\/((?:@[^/]+\\/)?[^/]+)\\//.exec(path);
          if (match) packages.add(match[1]);
        }
        process.stderr.write("loaded packages: " + [...packages].sort().join(" ") + "\\n");
      });
    `);

  /** The npm packages `things ARGS` loaded through require. */
  function packagesLoadedBy(args: string[]): Promise<string[]> {
    return new Promise((resolve, reject) => {
      execFile(
        process.execPath,
        ["--import", PRELOAD, BIN, ...args],
        { env: cleanEnvironment(), timeout: 30_000, encoding: "utf8" },
        (err, _stdout, stderr) => {
          const line = /^loaded packages: (.*)$/m.exec(stderr);
          if (line?.[1] === undefined)
            reject(new Error(`things ${args.join(" ")}: ${err?.message ?? ""} ${stderr}`));
          else resolve(line[1].split(" ").filter((name) => name !== ""));
        },
      );
    });
  }

  it("loads yaml only for a build, and ws, cli-progress and diff not for a plain command", async () => {
    for (const args of [
      ["--version"],
      ["ls", "--url", "http://127.0.0.1:9"],
      ["get", "urn:x", "--url", "http://127.0.0.1:9"],
    ]) {
      const loaded = await packagesLoadedBy(args);
      for (const lazy of ["yaml", "ws", "cli-progress", "diff"])
        expect(loaded, args.join(" ")).not.toContain(lazy);
    }
    const manifest = fileURLToPath(new URL("../examples/releases/demo-baseline.yaml", import.meta.url));
    expect(await packagesLoadedBy(["build", manifest, "--dry-run"])).toContain("yaml");
  });

  it("loads yaml for a serve only when a --config file is given", async () => {
    // A taken port ends each start once its settings are read, before a data directory is made.
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const folder = mkdtempSync(join(tmpdir(), "hyperthings-serve-yaml-"));
    try {
      const port = String((taken.address() as { port: number }).port);
      const config = join(folder, "hub.yaml");
      writeFileSync(config, `port: ${port}\nmqtt: false\n`);
      const data = join(folder, "data");
      // fastify: the start got as far as the hub's modules.
      const plain = await packagesLoadedBy(["serve", "--port", port, "--no-mqtt", "--data", data]);
      expect(plain).toContain("fastify");
      expect(plain).not.toContain("yaml");
      const filed = await packagesLoadedBy(["serve", "--config", config, "--data", data]);
      expect(filed).toEqual(expect.arrayContaining(["fastify", "yaml"]));
      expect(existsSync(data)).toBe(false);
    } finally {
      taken.close();
      rmSync(folder, { recursive: true, force: true });
    }
  });
});

describe("things --help", () => {
  it("says where the token comes from when none is given", async () => {
    const help = await things(["add", "--help"]);
    expect(help.code).toBe(0);
    expect(help.stdout).toContain("HYPERTHINGS_TOKEN");
    expect(help.stdout).toContain("admin-token");
  });
});

describe("things with a file it cannot read", () => {
  it("says why in words, naming the file, before asking any hub: build, add, query, verify --file", async () => {
    const work = mkdtempSync(join(tmpdir(), "hyperthings-files-"));
    try {
      const missing = join(work, "missing");
      const cases: Array<{ args: string[]; code: number; stderr: string }> = [
        {
          args: ["build", `${missing}.yaml`],
          code: 1,
          stderr: `cannot read ${missing}.yaml: no such file or folder`,
        },
        {
          args: ["add", `${missing}.json`],
          code: 1,
          stderr: `cannot read ${missing}.json: no such file or folder (nothing added)`,
        },
        {
          args: ["query", `@${missing}.graphql`],
          code: 2,
          stderr: `cannot read the query in ${missing}.graphql: no such file or folder`,
        },
        {
          args: ["verify", "--file", work],
          code: 1,
          stderr: `cannot read ${work}: it is a folder, not a file`,
        },
        {
          args: ["verify", "--file", `${missing}.ndjson`],
          code: 1,
          stderr: `cannot read ${missing}.ndjson: no such file or folder`,
        },
      ];
      for (const { args, code, stderr } of cases) {
        const run = await runThingsToEnd([...args, "--url", "http://127.0.0.1:9"]);
        expect({ code: run.code, stderr: run.stderr }, args.join(" ")).toEqual({
          code,
          stderr: `things: ${stderr}\n`,
        });
      }
    } finally {
      rmSync(work, { recursive: true, force: true });
    }
  });
});

describe("things serve with a bad setting", () => {
  it("refuses a flag's bad value as usage (exit 2), a variable's as a failure (exit 1), in one line, starting nothing", async () => {
    const data = mkdtempSync(join(tmpdir(), "hyperthings-serve-"));
    try {
      const cases: Array<{ args: string[]; env?: NodeJS.ProcessEnv; code: number; stderr: string }> = [
        {
          args: ["serve", "--port", "abc"],
          code: 2,
          stderr: 'things: port (--port) must be a whole number from 0 to 65535, not "abc"\n',
        },
        {
          args: ["demo", "--log-level", "loud"],
          code: 2,
          stderr:
            'things: log level (--log-level) must be one of fatal, error, warn, info, debug, trace, silent, not "loud"\n',
        },
        {
          args: ["serve"],
          env: { HYPERTHINGS_PORT: "abc" },
          code: 1,
          stderr: 'things: port (HYPERTHINGS_PORT) must be a whole number from 0 to 65535, not "abc"\n',
        },
        // The flag is good; the variable it does not override is at fault.
        {
          args: ["serve", "--port", "0"],
          env: { HYPERTHINGS_AUTH: "yes" },
          code: 1,
          stderr:
            'things: auth (HYPERTHINGS_AUTH) must be "write" (mutations need a token) or "read" (everything does), not "yes"\n',
        },
      ];
      for (const { args, env = {}, code, stderr } of cases) {
        const run = await runThingsToEnd([...args, "--data", data, "--no-mqtt"], { env });
        expect({ code: run.code, stderr: run.stderr, stdout: run.stdout }, args.join(" ")).toEqual({
          code,
          stderr,
          stdout: "",
        });
      }
      expect(readdirSync(data)).toEqual([]);
      const help = await runThingsToEnd(["serve", "--help"]);
      expect(help.stdout).toContain("2 usage (an unknown flag, or a flag's bad value)");
      // The help wraps its lines: compare the words.
      const words = help.stdout.replace(/\s+/g, " ");
      expect(words).toContain("every request does (env HYPERTHINGS_AUTH)");
      expect(words).toContain("(env HYPERTHINGS_LOG_LEVEL, default info)");
    } finally {
      rmSync(data, { recursive: true, force: true });
    }
  });
});

describe("things serve with a bad vocabulary file", () => {
  it("names the flag or the variable and the path, and says what is wrong in words, in one line, starting nothing", async () => {
    const data = mkdtempSync(join(tmpdir(), "hyperthings-serve-"));
    const files = mkdtempSync(join(tmpdir(), "hyperthings-vocabulary-"));
    try {
      const missing = join(files, "nope.json");
      const malformed = join(files, "malformed.json");
      writeFileSync(malformed, '{ "classes": \n');
      const other = join(files, "td.json");
      writeFileSync(other, JSON.stringify({ title: "a TD, not a vocabulary" }));
      const cases: Array<{ args: string[]; env?: Record<string, string>; stderr: string }> = [
        {
          args: ["--vocabulary", missing],
          stderr: `The vocabulary ${missing} (--vocabulary) cannot be read: no such file or folder`,
        },
        {
          args: ["--vocabulary", files],
          stderr: `The vocabulary ${files} (--vocabulary) cannot be read: it is a folder, not a file`,
        },
        {
          args: [],
          env: { HYPERTHINGS_VOCABULARY: missing },
          stderr: `The vocabulary ${missing} (HYPERTHINGS_VOCABULARY) cannot be read: no such file or folder`,
        },
        {
          args: ["--vocabulary", malformed],
          stderr: `The vocabulary ${malformed} (--vocabulary) is not a vocabulary: Malformed JSON at line 2, column 1: unexpected end of input`,
        },
        {
          args: ["--vocabulary", other],
          stderr: `The vocabulary ${other} (--vocabulary) is invalid at /title: is not a vocabulary member (prefixes, classes)`,
        },
      ];
      for (const { args, env = {}, stderr } of cases) {
        const run = await runThingsToEnd(["serve", "--data", data, "--port", "0", "--no-mqtt", ...args], {
          env,
        });
        expect({ code: run.code, stderr: run.stderr, stdout: run.stdout }, args.join(" ")).toEqual({
          code: 1,
          stderr: `things: ${stderr}\n`,
          stdout: "",
        });
      }
      expect(readdirSync(data)).toEqual([]);
    } finally {
      rmSync(data, { recursive: true, force: true });
      rmSync(files, { recursive: true, force: true });
    }
  });
});

describe("things serve on every address", () => {
  it("says it listens on every address of the machine, and gives a URL that reaches it", async () => {
    const data = mkdtempSync(join(tmpdir(), "hyperthings-serve-"));
    const serve = runThings(
      ["serve", "--data", data, "--host", "0.0.0.0", "--port", "0", "--no-mqtt"],
      cleanEnvironment(),
    );
    try {
      const [line, url] = await serve.waitFor(/listening on (http:\/\/\S+).*\n/);
      expect(line).toMatch(
        /^listening on http:\/\/127\.0\.0\.1:\d+ \(and on every address of this machine\)\n$/,
      );
      // Who may read what, said at start: on every address, that matters.
      await serve.waitFor(/ {2}access: reads are open to anyone who reaches the hub; [^\n]*\n/);
      expect((await fetch(`${url ?? ""}/health`)).status).toBe(200);
    } finally {
      serve.process.kill("SIGTERM");
      await serve.exited;
      rmSync(data, { recursive: true, force: true });
    }
  });
});

describe("things serve on a port fetch refuses", () => {
  it("warns in one line that browsers and things cannot reach it, and still starts", async () => {
    // A bad port free here now (6000 is X11's): the hub must bind it for the warning to be said.
    let port: number | undefined;
    for (const candidate of badPorts().filter((p) => p >= 1024)) {
      const free = await new Promise<boolean>((resolve) => {
        const probe = createServer();
        probe.once("error", () => resolve(false));
        probe.listen(candidate, "127.0.0.1", () => probe.close(() => resolve(true)));
      });
      if (free) {
        port = candidate;
        break;
      }
    }
    if (port === undefined) throw new Error("no bad port above 1023 is free on this machine");
    const data = mkdtempSync(join(tmpdir(), "hyperthings-serve-"));
    const serve = runThings(
      ["serve", "--data", data, "--port", String(port), "--no-mqtt"],
      cleanEnvironment(),
    );
    try {
      await serve.waitFor(/ {2}access: [^\n]*\n/);
      expect(serve.stdout().split("\n")[1]).toBe(
        `  warning: browsers and fetch refuse port ${port} (a "bad port" of the Fetch standard): neither the UI nor \`things\` can reach this hub; run it on another --port`,
      );
      // The hub runs: a client that does not block ports (node:http) reaches it.
      const status = await new Promise<number | undefined>((resolve, reject) =>
        httpGet(`http://127.0.0.1:${port}/health`, (res) => {
          res.resume();
          resolve(res.statusCode);
        }).on("error", reject),
      );
      expect(status).toBe(200);
    } finally {
      serve.process.kill("SIGTERM");
      await serve.exited;
      rmSync(data, { recursive: true, force: true });
    }
  });
});

describe("things serve with the embedded MQTT broker", () => {
  it("says where devices connect and with what password, in one line", async () => {
    const data = mkdtempSync(join(tmpdir(), "hyperthings-serve-"));
    const serve = runThings(["serve", "--data", data, "--port", "0", "--mqtt-port", "0"], cleanEnvironment());
    try {
      const [line] = await serve.waitFor(/ {2}MQTT: [^\n]*\n/);
      expect(line).toMatch(
        /^ {2}MQTT: mqtt:\/\/127\.0\.0\.1:\d+ \(embedded broker; password: the admin token, or a device's from things mqtt-credentials\), topics under hyperthings\/\n$/,
      );
    } finally {
      serve.process.kill("SIGTERM");
      await serve.exited;
      rmSync(data, { recursive: true, force: true });
    }
  });
});

describe("things serve's new admin token", () => {
  it("is not printed when the output is no terminal (a service's log), only where it is kept", async () => {
    const data = mkdtempSync(join(tmpdir(), "hyperthings-serve-"));
    const serve = runThings(["serve", "--data", data, "--port", "0", "--no-mqtt"], cleanEnvironment());
    try {
      await serve.waitFor(/ {2}access: [^\n]*\n/);
      const token = readFileSync(join(data, "admin-token"), "utf8").trim();
      expect(token).toMatch(/^ht_/);
      expect(serve.stdout() + serve.stderr()).not.toContain(token);
      expect(serve.stdout()).toContain(
        `  admin token: made, in ${join(data, "admin-token")} (mode 0600); not printed, since this output is no terminal\n`,
      );
    } finally {
      serve.process.kill("SIGTERM");
      await serve.exited;
      rmSync(data, { recursive: true, force: true });
    }
  });
});

describe("things serve with the default MQTT port taken", () => {
  it("says once that the embedded broker listens on another port", async (context) => {
    // The default port (1883) falls back only when no port is given: the test runs where it is
    // taken already (the machines' Mosquitto), and binds no fixed port itself.
    const taken = await new Promise<boolean>((resolve) => {
      const socket = connect(1883, "127.0.0.1");
      socket.once("connect", () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (!taken) context.skip();
    const data = mkdtempSync(join(tmpdir(), "hyperthings-serve-"));
    const serve = runThings(["serve", "--data", data, "--port", "0"], cleanEnvironment());
    try {
      await serve.waitFor(/ {2}access: [^\n]*\n/);
      // Everything it wrote by its end: the log (stderr, warnings on) and the banner (stdout).
      serve.process.kill("SIGTERM");
      expect(await serve.exited).toBe(0);
      const output = serve.stdout() + serve.stderr();
      const notices = output.match(/MQTT: port 1883 is taken; the embedded broker listens on/g) ?? [];
      expect(notices, output).toHaveLength(1);
      expect(serve.stdout()).toMatch(
        /\n {2}MQTT: port 1883 is taken; the embedded broker listens on 127\.0\.0\.1:\d+ instead/,
      );
    } finally {
      serve.process.kill("SIGTERM");
      await serve.exited;
      rmSync(data, { recursive: true, force: true });
    }
  });
});

describe("things serve that cannot start", () => {
  let parent: string;
  beforeEach(() => {
    parent = mkdtempSync(join(tmpdir(), "hyperthings-serve-"));
  });
  afterEach(() => rmSync(parent, { recursive: true, force: true }));

  /** `things serve ARGS` on a data directory not made yet: one line, exit 1, and nothing created. */
  async function refusedBeforeTheData(args: string[], message: string): Promise<void> {
    const data = join(parent, "data");
    const run = await things(["serve", "--data", data, ...args]);
    expect(run.code).toBe(1);
    expect(run.stdout).toBe("");
    expect(run.stderr).toBe(`things: ${message}\n`);
    // No admin token was made that nobody was shown, and no database was created.
    expect(existsSync(data) ? readdirSync(data) : []).toEqual([]);
  }

  it("on a port in use, says so and creates nothing in the data directory", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const { port } = taken.address() as { port: number };
    try {
      await refusedBeforeTheData(
        ["--port", String(port)],
        `port ${port} on 127.0.0.1 is already in use; choose another with --port (env HYPERTHINGS_PORT; 0 takes any free one)`,
      );
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  it("on a host that is no address of this machine, names the setting and creates nothing", async () => {
    // 192.0.2.1 is TEST-NET-1 (RFC 5737): never a local address, and binding it sends nothing.
    await refusedBeforeTheData(
      ["--port", "0", "--host", "192.0.2.1"],
      "--host 192.0.2.1 (env HYPERTHINGS_HOST) is not an address of this machine; give one of its addresses, such as 127.0.0.1 or 0.0.0.0",
    );
  });

  it("on an MQTT port given and in use, says so and creates nothing", async () => {
    const taken = createServer();
    await new Promise<void>((resolve) => taken.listen(0, "127.0.0.1", resolve));
    const { port } = taken.address() as { port: number };
    try {
      await refusedBeforeTheData(
        ["--port", "0", "--mqtt-port", String(port)],
        `MQTT port ${port} on 127.0.0.1 is already in use; choose another with --mqtt-port, use a broker of your own with --mqtt-url, or turn MQTT off with --no-mqtt`,
      );
    } finally {
      await new Promise((resolve) => taken.close(resolve));
    }
  });

  // Node's recursive mkdir retries for ever under /proc (the parent is there, the child ENOENT):
  // the hub hung. A generous limit: a loaded machine starts it in seconds, a hang never ends.
  it.runIf(existsSync("/proc/self"))(
    "with a data directory that cannot be made (under /proc), says why in one line instead of hanging",
    async () => {
      for (const data of ["/proc/hyperthings-test", "/proc/hyperthings-test/data"]) {
        const run = await runThingsToEnd(["serve", "--data", data, "--port", "0", "--no-mqtt"], {
          timeoutMs: 60_000,
        });
        expect({ code: run.code, stdout: run.stdout, stderr: run.stderr }, data).toEqual({
          code: 1,
          stdout: "",
          stderr:
            `things: The data directory ${data} (--data, HYPERTHINGS_DATA) cannot be made: /proc takes no new ` +
            "directories (a virtual file system such as /proc or /sys). It must be a directory this user may write, " +
            "on a file system that is not read-only\n",
        });
      }
    },
    150_000,
  );

  it("with an MQTT broker URL that is no URL, says so and creates nothing", async () => {
    await refusedBeforeTheData(
      ["--port", "0", "--mqtt-url", "notaurl"],
      'The MQTT broker URL "notaurl" is not a URL',
    );
  });

  it("with an MQTT broker URL or NATS server it refuses, names the problem without printing the password", async () => {
    await refusedBeforeTheData(
      ["--port", "0", "--mqtt-url", "mqtt://hub:s3cret@127.0.0.1:99999"],
      'The MQTT broker URL "mqtt://hub:***@127.0.0.1:99999" is not a URL',
    );
    // A setting refused while reading the configuration: exit code 2.
    const data = join(parent, "data");
    const bus = await things([
      "serve",
      "--data",
      data,
      "--port",
      "0",
      "--bus",
      "nats://hub:s3cret@127.0.0.1:4222/x",
    ]);
    expect(bus.code).toBe(2);
    expect(bus.stderr).toBe(
      'things: bus (--bus) must be nats://host[:port] with nothing after the port, not "nats://hub:***@127.0.0.1:4222/x"\n',
    );
    expect(existsSync(data) ? readdirSync(data) : []).toEqual([]);
  });
});

describe("things mqtt-credentials", () => {
  it("prints a Homie device's credentials and topics, a registered Thing's as JSON, and refuses in one line", async () => {
    const homie = await thingsAt(["mqtt-credentials", "--homie", "boiler-3"]);
    expect(homie.code, homie.stderr).toBe(0);
    const answer = await hub.request("/mqtt-credentials", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ homie: "boiler-3" }),
    });
    const { password } = (await answer.json()) as { password: string };
    expect(homie.stdout.split("\n").slice(0, 3)).toEqual([
      "username: homie:boiler-3",
      `password: ${password}`,
      "publish: homie/5/boiler-3/#",
    ]);
    await register(lamp("urn:test:mqtt-lamp"));
    const thing = await thingsAt(["mqtt-credentials", "urn:test:mqtt-lamp", "--json"]);
    expect(thing.code, thing.stderr).toBe(0);
    expect(JSON.parse(thing.stdout)).toMatchObject({ username: "urn:test:mqtt-lamp" });
    const overTheHub = await thingsAt(["mqtt-credentials", "--homeassistant", "hyperthings"]);
    expect(expectOneLine(overTheHub)).toMatch(/first topic level/);
    expect(overTheHub.code).toBe(1);
    const none = await thingsAt(["mqtt-credentials"]);
    expect(expectOneLine(none)).toMatch(/give one of/);
    expect(none.code).toBe(2);
    const both = await thingsAt(["mqtt-credentials", "--list", "--revoke", "homie:boiler-3"]);
    expect(expectOneLine(both)).toMatch(/give one of/);
    expect(both.code).toBe(2);
  });

  it("lists the credentials issued, revokes one, and says in one line that it is revoked already", async () => {
    const issued = await thingsAt(["mqtt-credentials", "--homie", "boiler-4"]);
    expect(issued.code, issued.stderr).toBe(0);
    const list = await thingsAt(["mqtt-credentials", "--list"]);
    expect(list.code, list.stderr).toBe(0);
    const [header, ...rows] = list.stdout.trimEnd().split("\n");
    expect(header).toMatch(/^USERNAME +KIND +PUBLISHES +ISSUED +LAST USED +STATE$/);
    const row = rows.find((r) => r.startsWith("homie:boiler-4 "));
    expect(row).toMatch(/^homie:boiler-4 +homie +homie\/5\/boiler-4\/# +\S+ by admin +never +in force$/);
    const revoked = await thingsAt(["mqtt-credentials", "--revoke", "homie:boiler-4"]);
    expect(revoked.code, revoked.stderr).toBe(0);
    expect(revoked.stdout).toBe(
      "revoked the MQTT credentials of homie:boiler-4: its connections are closed\n",
    );
    const json = await thingsAt(["mqtt-credentials", "--list", "--json"]);
    const entries = JSON.parse(json.stdout) as { username: string; revokedBy?: string; password?: string }[];
    expect(entries.find((e) => e.username === "homie:boiler-4")).toMatchObject({ revokedBy: "admin" });
    expect(entries.every((e) => e.password === undefined)).toBe(true);
    const again = await thingsAt(["mqtt-credentials", "--revoke", "homie:boiler-4"]);
    expect(expectOneLine(again)).toMatch(/revoked already/);
    expect(again.code).toBe(1);
    const never = await thingsAt(["mqtt-credentials", "--revoke", "homie:never-issued"]);
    expect(expectOneLine(never)).toMatch(/issued no MQTT credentials for homie:never-issued/);
    expect(never.code).toBe(1);
  });
});
