#!/usr/bin/env node
// The directory benchmark: a real hub as a child process, loaded over HTTP with undici.
// Registers N realistic TDs, then measures GET by id, listing pages and JSONPath searches.
// Prints ONE JSON line on stdout; everything else goes to stderr. See bench/README.md.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Pool } from "undici";
import { cpuTimesMs, nearestRank, rssMiB, HUB_NODE_ARGS, hubNodeArgs, startHub, stopHub } from "./support.js";

// ---------------------------------------------------------------------------------------------
// Options

const USAGE = `usage: node bench/directory.bench.js [--things N] [--clients N] [--gets N] [--pages N]
       [--searches N] [--timeout SECONDS] [--hub-node-args "<node flags for the hub>"]
  --things N           TDs to register (default 10000)
  --clients N          connections and concurrent workers (default 32)
  --gets N             measured GET /things/{id} requests (default 20000)
  --pages N            measured listing pages of 100 (default 500)
  --searches N         measured JSONPath searches by @type (default 30), then one nested filter
  --timeout SECONDS    the whole run, hub start to hub exit (default 900)
  --hub-node-args      node flags for the hub only, added to bench/support.js HUB_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"`;

function parseOptions(argv) {
  const options = {
    things: 10_000,
    clients: 32,
    gets: 20_000,
    pages: 500,
    searches: 30,
    timeout: 900,
    hubNodeArgs: [...HUB_NODE_ARGS],
  };
  const integers = {
    "--things": "things",
    "--clients": "clients",
    "--gets": "gets",
    "--pages": "pages",
    "--searches": "searches",
    "--timeout": "timeout",
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (flag === "--help" || flag === "-h") {
      process.stderr.write(`${USAGE}\n`);
      process.exit(0);
    }
    if (flag === "--hub-node-args" && value !== undefined) {
      options.hubNodeArgs = hubNodeArgs(value);
      i++;
      continue;
    }
    const key = integers[flag];
    if (key === undefined || value === undefined || !/^\d+$/.test(value)) {
      throw new Error(`unknown flag or missing value: ${flag} ${value ?? ""}\n${USAGE}`);
    }
    options[key] = Number(value);
    i++;
  }
  if (options.things < 1 || options.things > 1_000_000) throw new Error("--things must be 1..1000000");
  if (options.clients < 1 || options.clients > 1024) throw new Error("--clients must be 1..1024");
  if (options.gets > 10_000_000 || options.pages > 100_000 || options.searches > 10_000) {
    throw new Error("--gets, --pages or --searches is unreasonably large");
  }
  if (options.timeout < 10 || options.timeout > 24 * 3600)
    throw new Error("--timeout must be 10..86400 seconds");
  return options;
}

const log = (message) => process.stderr.write(`[bench directory] ${message}\n`);
/** Set on SIGINT/SIGTERM: every load loop stops at its next request. */
let stopping = false;

// ---------------------------------------------------------------------------------------------
// Realistic Thing Descriptions, deterministic (seeded) so that runs are comparable

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const TD_CONTEXT = [
  "https://www.w3.org/2022/wot/td/v1.1",
  { saref: "https://saref.etsi.org/core/", mqv: "http://www.example.org/mqtt-binding#" },
];

const statusProperty = {
  title: "Status",
  type: "string",
  enum: ["ok", "degraded", "fault", "maintenance"],
  readOnly: true,
};
const batteryProperty = {
  title: "Battery level",
  type: "integer",
  unit: "percent",
  minimum: 0,
  maximum: 100,
  readOnly: true,
};
const configProperty = (intervalMin) => ({
  title: "Configuration",
  type: "object",
  properties: {
    interval: { type: "integer", unit: "s", minimum: intervalMin, maximum: 3600 },
    enabled: { type: "boolean" },
  },
});

/** Per kind: the @type, the property pool (first ones always present), one action and one event. */
const KINDS = [
  {
    name: "climate",
    type: "saref:TemperatureSensor",
    properties: (r) => ({
      temperature: {
        title: "Temperature",
        type: "number",
        unit: "Cel",
        minimum: -40,
        maximum: r() < 0.5 ? 85 : 125,
        readOnly: true,
        observable: true,
      },
      humidity: {
        title: "Humidity",
        type: "number",
        unit: "percent",
        minimum: 0,
        maximum: 100,
        readOnly: true,
        observable: true,
      },
      status: statusProperty,
      battery: batteryProperty,
      dewPoint: { type: "number", unit: "Cel", readOnly: true },
      config: configProperty(r() < 0.5 ? 5 : 30),
    }),
    action: ["calibrate", { title: "Calibrate", input: { type: "number", minimum: -5, maximum: 5 } }],
    event: [
      "overheating",
      {
        title: "Over temperature",
        data: { type: "object", properties: { temperature: { type: "number", unit: "Cel" } } },
      },
    ],
  },
  {
    name: "light",
    type: "saref:LightSwitch",
    properties: (r) => ({
      on: { title: "On", type: "boolean", observable: true },
      brightness: { title: "Brightness", type: "integer", unit: "percent", minimum: 0, maximum: 100 },
      status: statusProperty,
      colorTemperature: {
        title: "Colour temperature",
        type: "integer",
        unit: "K",
        minimum: 2700,
        maximum: r() < 0.5 ? 6500 : 5000,
      },
      power: { title: "Power", type: "number", unit: "W", minimum: 0, readOnly: true },
      config: configProperty(1),
    }),
    action: ["toggle", { title: "Toggle", output: { type: "boolean" } }],
    event: [
      "switched",
      {
        title: "Switched",
        data: { type: "object", properties: { on: { type: "boolean" }, by: { type: "string" } } },
      },
    ],
  },
  {
    name: "meter",
    type: "saref:Meter",
    properties: () => ({
      energy: { title: "Energy", type: "number", unit: "kWh", minimum: 0, readOnly: true, observable: true },
      power: { title: "Active power", type: "number", unit: "W", readOnly: true, observable: true },
      voltage: { title: "Voltage", type: "number", unit: "V", minimum: 0, maximum: 400, readOnly: true },
      current: { title: "Current", type: "number", unit: "A", minimum: 0, maximum: 63, readOnly: true },
      status: statusProperty,
      config: configProperty(60),
    }),
    action: [
      "resetCounter",
      {
        title: "Reset counter",
        input: { type: "object", properties: { reason: { type: "string" } } },
        idempotent: true,
      },
    ],
    event: [
      "overload",
      {
        title: "Overload",
        data: {
          type: "object",
          properties: {
            power: { type: "number", unit: "W" },
            phase: { type: "integer", minimum: 1, maximum: 3 },
          },
        },
      },
    ],
  },
  {
    name: "valve",
    type: "saref:Actuator",
    properties: () => ({
      position: {
        title: "Position",
        type: "integer",
        unit: "percent",
        minimum: 0,
        maximum: 100,
        observable: true,
      },
      flow: { title: "Flow", type: "number", unit: "l/min", minimum: 0, readOnly: true },
      status: statusProperty,
      battery: batteryProperty,
      temperature: {
        title: "Water temperature",
        type: "number",
        unit: "Cel",
        minimum: 0,
        maximum: 100,
        readOnly: true,
      },
      config: configProperty(10),
    }),
    action: [
      "setPosition",
      {
        title: "Move to a position",
        input: { type: "integer", unit: "percent", minimum: 0, maximum: 100 },
        idempotent: true,
      },
    ],
    event: [
      "blocked",
      {
        title: "Blocked",
        data: { type: "object", properties: { position: { type: "integer" }, code: { type: "string" } } },
      },
    ],
  },
  {
    name: "smoke",
    type: "saref:SmokeSensor",
    properties: () => ({
      smoke: { title: "Smoke detected", type: "boolean", readOnly: true, observable: true },
      battery: batteryProperty,
      status: statusProperty,
      temperature: {
        title: "Temperature",
        type: "number",
        unit: "Cel",
        minimum: -10,
        maximum: 60,
        readOnly: true,
      },
      lastTest: { title: "Last self-test", type: "string", format: "date-time", readOnly: true },
      config: configProperty(300),
    }),
    action: [
      "selfTest",
      { title: "Run a self-test", output: { type: "object", properties: { passed: { type: "boolean" } } } },
    ],
    event: [
      "alarm",
      {
        title: "Smoke alarm",
        data: { type: "object", properties: { level: { type: "integer", minimum: 1, maximum: 3 } } },
      },
    ],
  },
];

const BUILDINGS = ["north", "south", "east", "west", "annex"];

/** One TD; `i` makes it distinct, `r` varies its shape. */
function makeTd(i, r) {
  const kind = KINDS[Math.floor(r() * KINDS.length)];
  const n = String(i).padStart(6, "0");
  const id = `urn:hyperthings:bench:${kind.name}-${n}`;
  const building = BUILDINGS[i % BUILDINGS.length];
  const floor = 1 + (i % 12);
  const room = `${building}-${floor}${String(i % 40).padStart(2, "0")}`;
  const mqtt = r() < 0.3;
  const base = `http://127.0.0.1:${20000 + (i % 10000)}/`;
  const all = Object.entries(kind.properties(r));
  // The first three are always there; then 0..3 more: 3..6 properties in all.
  const count = 3 + Math.floor(r() * 4);
  const properties = {};
  for (const [name, schema] of all.slice(0, count)) {
    const writable = schema.readOnly !== true;
    const forms = mqtt
      ? [
          {
            href: "mqtt://127.0.0.1:1883",
            "mqv:topic": `${room}/${n}/${name}`,
            op: schema.observable ? ["readproperty", "observeproperty"] : "readproperty",
          },
        ]
      : [
          {
            href: `properties/${name}`,
            op: [
              "readproperty",
              ...(writable ? ["writeproperty"] : []),
              ...(schema.observable ? ["observeproperty"] : []),
            ],
            contentType: "application/json",
          },
        ];
    properties[name] = { ...schema, forms };
  }
  const [actionName, action] = kind.action;
  const [eventName, event] = kind.event;
  return {
    "@context": TD_CONTEXT,
    "@type": kind.type,
    id,
    title: `${kind.name} ${n} in room ${room}`,
    description: `${kind.type.slice(6)} on floor ${floor} of the ${building} building, batch ${1 + (i % 37)}`,
    version: { instance: `1.${i % 5}.${i % 11}` },
    securityDefinitions: {
      bearer_sc: { scheme: "bearer", in: "header", name: "Authorization", format: "jwt" },
    },
    security: "bearer_sc",
    base,
    properties,
    actions: {
      [actionName]: {
        ...action,
        forms: [{ href: `actions/${actionName}`, op: "invokeaction", contentType: "application/json" }],
      },
    },
    events: {
      [eventName]: {
        ...event,
        forms: [
          {
            href: `events/${eventName}`,
            op: "subscribeevent",
            subprotocol: "sse",
            contentType: "text/event-stream",
          },
        ],
      },
    },
    links: [
      { rel: "partOf", href: `urn:hyperthings:bench:room-${room}` },
      { rel: "manufacturer", href: `https://vendor.example/products/${kind.name}` },
    ],
  };
}

function makeFleet(things) {
  const r = mulberry32(0x5eed);
  const ids = new Array(things);
  const bodies = new Array(things);
  let bytes = 0;
  let temperatureSensors = 0;
  let hotCelsius = 0;
  for (let i = 0; i < things; i++) {
    const td = makeTd(i, r);
    ids[i] = td.id;
    bodies[i] = JSON.stringify(td);
    bytes += Buffer.byteLength(bodies[i]);
    if (td["@type"] === "saref:TemperatureSensor") temperatureSensors++;
    const t = td.properties.temperature;
    if (t?.unit === "Cel" && t.maximum >= 100) hotCelsius++;
  }
  return { ids, bodies, meanBytes: Math.round(bytes / things), expected: { temperatureSensors, hotCelsius } };
}

// ---------------------------------------------------------------------------------------------
// Figures

function summary(latenciesMs, count, wallMs, errors) {
  const sorted = Float64Array.from(latenciesMs.subarray(0, count)).sort();
  const at = (q) => nearestRank(sorted, q);
  return {
    requests: count,
    perSecond: wallMs > 0 ? Math.round((count * 1000) / wallMs) : null,
    p50: at(0.5),
    p90: at(0.9),
    p99: at(0.99),
    max: at(1),
    errors,
  };
}

const round = (x) => Math.round(x * 100) / 100;

// ---------------------------------------------------------------------------------------------
// Load

/**
 * Runs `total` requests with `workers` concurrent workers; `request(i)` performs the i-th and
 * returns true when its answer is the expected one. Bounded by count and by `deadline`.
 */
async function load(name, total, workers, deadline, pid, request) {
  const latencies = new Float64Array(total);
  let next = 0;
  let done = 0;
  let errors = 0;
  let shown = 0;
  let timedOut = false;
  const fail = (i, why) => {
    errors++;
    if (shown++ < 5) log(`${name} #${i}: ${why}`);
  };
  const cpuBefore = cpuTimesMs(pid);
  const clientBefore = process.cpuUsage();
  const started = process.hrtime.bigint();
  // The monotonic clock in µs, as in a .cpuprofile's timestamps: a profile can be cut by phase.
  log(`${name}: start at ${started / 1000n} µs`);
  let lastReport = Date.now();
  const worker = async () => {
    while (next < total) {
      if (stopping) return;
      if (Date.now() > deadline) {
        timedOut = true;
        return;
      }
      const i = next++;
      const t0 = process.hrtime.bigint();
      try {
        const why = await request(i);
        if (why !== true) fail(i, why);
      } catch (err) {
        fail(i, err?.message ?? String(err));
      }
      latencies[done++] = Number(process.hrtime.bigint() - t0) / 1e6;
      if (Date.now() - lastReport > 2000) {
        lastReport = Date.now();
        log(`${name}: ${done}/${total}`);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(workers, total) }, worker));
  if (stopping) throw new Error(`${name}: stopped by a signal`);
  const ended = process.hrtime.bigint();
  const wallMs = Number(ended - started) / 1e6;
  if (timedOut) {
    errors += total - done;
    log(`${name}: stopped at the time limit after ${done}/${total}`);
  }
  const cpuAfter = cpuTimesMs(pid);
  const client = process.cpuUsage(clientBefore);
  const hubUser = cpuAfter.user - cpuBefore.user;
  const hubSystem = cpuAfter.system - cpuBefore.system;
  const hubCpu = hubUser + hubSystem;
  const result = {
    ...summary(latencies, done, wallMs, errors),
    // The hub's CPU time, so that figures from a busy machine can still be judged.
    hubCpuUs: done > 0 ? Math.round((hubCpu * 1000) / done) : null,
    hubCpuPct: wallMs > 0 ? Math.round((hubCpu * 100) / wallMs) : null,
    // The load generator shares the machine: near 100 it, not the hub, may be the limit.
    clientCpuPct: wallMs > 0 ? Math.round((client.user + client.system) / 10 / wallMs) : null,
  };
  log(
    `${name}: end at ${ended / 1000n} µs: ${JSON.stringify(result)}; hub CPU ${hubUser} ms user, ${hubSystem} ms system`,
  );
  return result;
}

/** Reads the whole body; returns its size. */
async function drain(body) {
  let bytes = 0;
  for await (const chunk of body) bytes += chunk.length;
  return bytes;
}

const thingPath = (id) => `/things/${encodeURIComponent(id).replace(/%3A/gi, ":")}`;

/** Runs of `things get` measured: a person's wait for one answer, start-up included. */
const CLI_RUNS = 5;

/**
 * The real `things get ID` (bin/things.js) against the hub, CLI_RUNS times one after another: the
 * median of its own CPU time (all its threads, written by the process as it exits) and of its
 * wall time, start to exit. Most of either is loading the command and its first request.
 */
async function cliGet(url, token, id) {
  const cli = fileURLToPath(new URL("../bin/things.js", import.meta.url));
  const cpuAtExit = `data:text/javascript,process.on("exit",()=>process.stderr.write("\\ncpu-us "+JSON.stringify(process.cpuUsage())+"\\n"))`;
  const cpu = [];
  const wall = [];
  let errors = 0;
  for (let i = 0; i < CLI_RUNS && !stopping; i++) {
    const started = process.hrtime.bigint();
    const { code, stdout, stderr } = await new Promise((resolve) => {
      const child = spawn(process.execPath, ["--import", cpuAtExit, cli, "get", id, "--json", "--url", url], {
        env: { ...process.env, HYPERTHINGS_TOKEN: token },
        stdio: ["ignore", "pipe", "pipe"],
      });
      let out = "";
      let err = "";
      child.stdout.setEncoding("utf8").on("data", (chunk) => (out += chunk));
      child.stderr.setEncoding("utf8").on("data", (chunk) => (err += chunk));
      child.on("close", (exitCode) => resolve({ code: exitCode, stdout: out, stderr: err }));
    });
    wall.push(Number(process.hrtime.bigint() - started) / 1e6);
    const usage = /^cpu-us (.*)$/m.exec(stderr);
    if (code !== 0 || usage === null || !stdout.includes(id)) {
      errors++;
      log(`things get #${i}: exit ${code}: ${stderr.trim().slice(0, 300)}`);
      continue;
    }
    const { user, system } = JSON.parse(usage[1]);
    cpu.push((user + system) / 1000);
  }
  const median = (values) => nearestRank(Float64Array.from(values).sort(), 0.5);
  return { runs: CLI_RUNS, cpuMs: median(cpu), wallMs: median(wall), errors };
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const options = parseOptions(process.argv.slice(2));
  const deadline = Date.now() + options.timeout * 1000;
  const fleet = makeFleet(options.things);
  // Other work on the machine skews every figure: say how busy it was.
  const loadBefore = round(loadavg()[0]);
  log(`${options.things} TDs, mean ${fleet.meanBytes} bytes; ${options.clients} clients`);

  const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-bench-"));
  const token = `bench_${randomBytes(24).toString("base64url")}`;
  let hub;
  let pool;
  let cleaning;
  const cleanup = () =>
    (cleaning ??= (async () => {
      stopping = true;
      if (pool) await pool.destroy().catch(() => {});
      let exit;
      if (hub)
        exit = await stopHub(hub, () => log("the hub did not exit within 20 s of SIGTERM: killing it"));
      rmSync(dataDir, { recursive: true, force: true });
      return exit;
    })());
  // Ctrl-C or the runner's SIGTERM: still stop the hub and remove the data.
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.once(signal, () => {
      log(`${signal}: stopping the hub`);
      cleanup().finally(() => process.exit(130));
    });
  }
  // A hard limit, whatever hangs.
  const watchdog = setTimeout(
    () => {
      log("time limit exceeded: killing the hub");
      hub?.child.kill("SIGKILL");
      rmSync(dataDir, { recursive: true, force: true });
      process.exit(2);
    },
    options.timeout * 1000 + 30_000,
  ).unref();

  let result;
  try {
    hub = startHub({
      dataDir,
      token,
      hubNodeArgs: options.hubNodeArgs,
      // The generated TDs point at addresses where nothing listens (and at the machine's
      // Mosquitto): observing 10,000 of them would measure the observer, not the directory.
      serveArgs: ["--no-observe", "--mqtt-port", "0"],
      timeoutMs: Math.min(30_000, deadline - Date.now()),
      echoStdout: true,
    });
    const url = await hub.url;
    if (new URL(url).hostname !== "127.0.0.1") throw new Error(`the hub listens on ${url}, not 127.0.0.1`);
    const pid = hub.child.pid;
    pool = new Pool(url, {
      connections: options.clients,
      pipelining: 1,
      headersTimeout: 30_000,
      bodyTimeout: 30_000,
    });
    const { clients } = options;

    // 1. Registration: PUT each TD once; acknowledged means 201 Created.
    const putHeaders = { "content-type": "application/td+json", authorization: `Bearer ${token}` };
    const register = await load("register", options.things, clients, deadline, pid, async (i) => {
      const { statusCode, body } = await pool.request({
        method: "PUT",
        path: thingPath(fleet.ids[i]),
        headers: putHeaders,
        body: fleet.bodies[i],
      });
      const text = await body.text();
      return statusCode === 201 || `status ${statusCode} ${text.slice(0, 300)}`;
    });
    const rss = rssMiB(pid);
    log(`hub RSS after loading: ${rss} MiB`);

    // 2. GET /things/{id} for random ids, after an unmeasured warm-up.
    const r = mulberry32(42);
    const getOne = async () => {
      const id = fleet.ids[Math.floor(r() * options.things)];
      const { statusCode, body } = await pool.request({ method: "GET", path: thingPath(id) });
      const bytes = await drain(body);
      return (statusCode === 200 && bytes > 0) || `status ${statusCode}, ${bytes} bytes`;
    };
    await load("get warm-up", Math.min(1000, options.gets), clients, deadline, pid, getOne);
    const get = await load("get", options.gets, clients, deadline, pid, getOne);

    // 3. Listing pages of 100 at random offsets across the whole range.
    const limit = Math.min(100, options.things);
    const list = await load("list", options.pages, clients, deadline, pid, async () => {
      const offset = Math.floor(r() * (options.things - limit + 1));
      const { statusCode, headers, body } = await pool.request({
        method: "GET",
        path: `/things?offset=${offset}&limit=${limit}`,
      });
      const bytes = await drain(body);
      const total = Number(headers["x-total-count"]);
      return (
        (statusCode === 200 && total === options.things && bytes > 0) ||
        `status ${statusCode}, total ${total}, ${bytes} bytes`
      );
    });

    // 4. JSONPath over every TD, one search at a time; the answer must hold exactly the expected ids.
    const search = (query, expected) => async () => {
      const { statusCode, body } = await pool.request({
        method: "GET",
        path: `/search/jsonpath?query=${encodeURIComponent(query)}`,
      });
      const text = await body.text();
      if (statusCode !== 200) return `status ${statusCode} ${text.slice(0, 300)}`;
      const found = JSON.parse(text).length;
      return found === expected || `${found} results, expected ${expected}`;
    };
    const byType = await load(
      "jsonpath",
      options.searches,
      1,
      deadline,
      pid,
      search("$[?@['@type']=='saref:TemperatureSensor'].id", fleet.expected.temperatureSensors),
    );
    const nested = await load(
      "jsonpath nested",
      1,
      1,
      deadline,
      pid,
      search(
        "$[?@.properties.temperature.unit=='Cel' && @.properties.temperature.maximum >= 100].id",
        fleet.expected.hotCelsius,
      ),
    );

    // 5. The CLI: `things get` of one TD, as a person runs it.
    const cli = await cliGet(url, token, fleet.ids[0]);

    const rssPeak = rssMiB(pid, "VmHWM");
    result = {
      bench: "directory",
      things: options.things,
      tdBytes: fleet.meanBytes,
      register: { clients, ...register },
      get: { clients, ...get },
      list: { clients, limit, ...list },
      jsonpath: {
        query: "@type",
        matches: fleet.expected.temperatureSensors,
        ...byType,
        nested: { matches: fleet.expected.hotCelsius, ms: nested.max, errors: nested.errors },
      },
      cliGet: cli,
      rssMiB: rss,
      rssPeakMiB: rssPeak,
      node: process.version,
      cpus: availableParallelism(),
      load1: [loadBefore, round(loadavg()[0])],
    };
  } finally {
    clearTimeout(watchdog);
    const exit = await cleanup();
    if (exit && exit.code !== 0) log(`the hub exited with code ${exit.code}, signal ${exit.signal}`);
  }
  process.stdout.write(`${JSON.stringify(result)}\n`);
  const errors =
    result.register.errors +
    result.get.errors +
    result.list.errors +
    result.jsonpath.errors +
    result.jsonpath.nested.errors +
    result.cliGet.errors;
  if (errors > 0) {
    log(`${errors} errors: the figures are not valid`);
    process.exitCode = 1;
  }
}

main().catch((err) => {
  log(`failed: ${err?.stack ?? err}`);
  process.exitCode = 1;
});
