#!/usr/bin/env node
// A/B harness for the event loop's CPU per one-Change ingest call (bench/README.md, "ab-ingest.js"):
// two built hubs in one process (each a `dist/` of its own: a scratch clone's and this one's),
// each filled until every one of --things Things has Changes, then rounds of one-Change calls
// from --producers concurrent producers, alternating between the hubs (A B, B A, A B, …). Each
// round ends with its own merge into the history index, as the Log bench's ingest phases do.
// Prints one line per round and, at the end, the B/A ratio of the main thread's CPU per Change
// of each pair and their median. Not run by `npm run bench` (no .bench.js suffix).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileURLToPath } from "node:url";

const USAGE = `usage: node --max-semi-space-size=64 bench/ab-ingest.js --a DIR [--b DIR] [--things N]
       [--fill-batch N] [--producers N] [--round N] [--pairs N] [--only a|b]
  --a DIR         a checkout whose dist/ is hub A (built: npm run build, or npx tsc -b tsconfig.build.json)
  --b DIR         the same for hub B (default: this checkout)
  --things N      Things registered in each hub, 3 numeric properties each (default 10000)
  --fill-batch N  Changes per fill call; every Thing gets one call, so the fill is N × --things (default 30)
  --producers N   concurrent one-Change producers in each round (default 1000)
  --round N       one-Change calls per round (default 50000)
  --pairs N       rounds of each hub (default 8)
  --only a|b      start only that hub and run its rounds back to back (for a CPU profile)`;

function parseOptions(argv) {
  const options = {
    a: undefined,
    b: fileURLToPath(new URL("..", import.meta.url)),
    things: 10_000,
    fillBatch: 30,
    producers: 1000,
    round: 50_000,
    pairs: 8,
    only: undefined,
  };
  const integers = {
    "--things": "things",
    "--fill-batch": "fillBatch",
    "--producers": "producers",
    "--round": "round",
    "--pairs": "pairs",
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = argv[i + 1];
    if (flag === "--help" || flag === "-h") {
      console.log(USAGE);
      process.exit(0);
    }
    if (value === undefined) throw new Error(`${flag} needs a value\n${USAGE}`);
    i++;
    if (flag === "--a" || flag === "--b") options[flag.slice(2)] = resolve(value);
    else if (flag === "--only" && (value === "a" || value === "b")) options.only = value;
    else if (flag in integers) {
      const n = Number(value);
      if (!Number.isSafeInteger(n) || n < 1) throw new Error(`${flag} must be a positive integer`);
      options[integers[flag]] = n;
    } else throw new Error(`unknown option ${flag}\n${USAGE}`);
  }
  if (options.a === undefined && options.only !== "b") throw new Error(`--a is required\n${USAGE}`);
  return options;
}

const PROPERTIES = ["temperature", "humidity", "power"];
const log = (message) => process.stderr.write(`${message}\n`);
const thingId = (i) => `urn:hyperthings:bench:ab:thing-${String(i).padStart(6, "0")}`;

function makeTd(i) {
  return {
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    id: thingId(i),
    title: `Sensor ${i}`,
    securityDefinitions: { nosec_sc: { scheme: "nosec" } },
    security: "nosec_sc",
    base: `http://192.0.2.${1 + (i % 250)}/things/${i}/`,
    properties: Object.fromEntries(
      PROPERTIES.map((p) => [
        p,
        {
          type: "number",
          readOnly: true,
          forms: [{ href: `properties/${p}`, contentType: "application/json" }],
        },
      ]),
    ),
  };
}

/** Seeded random numbers (mulberry32), the same sequence for both hubs. */
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

/** The main thread's CPU time in ns (schedstat: ns resolution, this thread only). */
function mainThreadCpuNs() {
  const text = readFileSync(`/proc/self/task/${process.pid}/schedstat`, "utf8");
  return Number(text.slice(0, text.indexOf(" ")));
}

const monotonicUs = () => process.hrtime.bigint() / 1000n;

async function startHub(root, name) {
  const { startHub: start, createLogger } = await import(join(root, "dist", "cli", "index.js"));
  const { loadConfig } = await import(join(root, "dist", "hub", "index.js"));
  const dataDir = mkdtempSync(join(tmpdir(), `hyperthings-ab-${name}-`));
  const config = loadConfig({ port: 0, host: "127.0.0.1", logLevel: "silent", dataDir, observe: false }, {});
  try {
    const running = await start(config, { logger: createLogger("silent") });
    return { name, root, dataDir, running, hub: running.hub };
  } catch (error) {
    rmSync(dataDir, { recursive: true, force: true });
    throw error;
  }
}

/** `calls` calls from `workers` producers; `call(i)` gives [thing, reports]. Changes recorded. */
async function load(hub, calls, workers, call) {
  let next = 0;
  let changes = 0;
  const worker = async () => {
    while (next < calls) {
      const [thing, reports] = call(next++);
      // A fresh cause per call, as an HTTP request or an MQTT message brings.
      const recorded = await hub.ingest(thing, reports, { actor: "bench", via: "bench" });
      if (recorded.length !== reports.length) throw new Error(`${recorded.length} Changes recorded`);
      changes += recorded.length;
    }
  };
  await Promise.all(Array.from({ length: Math.min(workers, calls) }, worker));
  return changes;
}

async function prepare(entry, options) {
  const { hub } = entry;
  let next = 0;
  await Promise.all(
    Array.from({ length: 64 }, async () => {
      while (next < options.things) {
        const i = next++;
        await hub.directory.put(thingId(i), makeTd(i), { actor: "bench", via: "bench" });
      }
    }),
  );
  const r = mulberry32(0xf111);
  // Every Thing gets one call of --fill-batch Changes, cycling through its properties.
  await load(hub, options.things, 64, (i) => {
    const first = Math.floor(r() * 3);
    const reports = Array.from({ length: options.fillBatch }, (_, k) => ({
      kind: "reported",
      affordance: PROPERTIES[(first + k) % 3],
      value: Math.round(r() * 10_000) / 10,
    }));
    return [thingId(i), reports];
  });
  await hub.store.mergeTail();
}

async function round(entry, options, seed) {
  const { hub } = entry;
  const r = mulberry32(seed);
  global.gc?.();
  const cpu0 = process.cpuUsage();
  const main0 = mainThreadCpuNs();
  const t0 = performance.now();
  const startUs = monotonicUs();
  const changes = await load(hub, options.round, options.producers, () => [
    thingId(Math.floor(r() * options.things)),
    [{ kind: "reported", affordance: PROPERTIES[Math.floor(r() * 3)], value: Math.round(r() * 10_000) / 10 }],
  ]);
  const ackMs = performance.now() - t0;
  const mainAcks = mainThreadCpuNs() - main0;
  await hub.store.mergeTail();
  const wallMs = performance.now() - t0;
  const main = mainThreadCpuNs() - main0;
  const cpu = process.cpuUsage(cpu0);
  const endUs = monotonicUs();
  return {
    hub: entry.name,
    startUs: String(startUs),
    endUs: String(endUs),
    changes,
    perSecond: Math.round(changes / (ackMs / 1000)),
    mainUsPerChangeAcks: mainAcks / 1000 / changes,
    mainUsPerChange: main / 1000 / changes,
    processUsPerChange: (cpu.user + cpu.system) / changes,
    mergeMs: Math.round(wallMs - ackMs),
  };
}

const median = (xs) => {
  const s = [...xs].sort((x, y) => x - y);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
};
const r3 = (x) => Math.round(x * 1000) / 1000;

async function main() {
  const options = parseOptions(process.argv.slice(2));
  const hubs = [];
  // Ctrl-C or a kill: the hubs' temp dirs go too.
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.once(signal, () => {
      for (const entry of hubs) rmSync(entry.dataDir, { recursive: true, force: true });
      process.exit(130);
    });
  }
  try {
    const names = options.only ? [options.only] : ["a", "b"];
    for (const name of names) hubs.push(await startHub(options[name], name));
    for (const entry of hubs) {
      const t0 = performance.now();
      await prepare(entry, options);
      log(`${entry.name} (${entry.root}): filled in ${Math.round(performance.now() - t0)} ms`);
    }
    // One unmeasured round each first: both hubs' code is compiled and their caches warm.
    for (const entry of hubs) await round(entry, options, 1);
    const results = { a: [], b: [] };
    for (let pair = 0; pair < options.pairs; pair++) {
      const order = pair % 2 === 0 ? hubs : [...hubs].reverse();
      for (const entry of order) {
        const result = await round(entry, options, 1000 + pair);
        results[entry.name].push(result);
        log(
          `pair ${pair} ${entry.name}: ${result.perSecond}/s, main ${r3(result.mainUsPerChangeAcks)} µs/Change ` +
            `(${r3(result.mainUsPerChange)} with its merge), process ${r3(result.processUsPerChange)}, ` +
            `merge ${result.mergeMs} ms; ${result.startUs}–${result.endUs} µs`,
        );
      }
    }
    const summary = { options: { ...options } };
    if (!options.only) {
      const ratio = (field) => results.a.map((a, i) => r3(results.b[i][field] / a[field]));
      for (const field of ["mainUsPerChangeAcks", "mainUsPerChange", "processUsPerChange", "perSecond"]) {
        const ratios = ratio(field);
        summary[field] = { ratiosBA: ratios, medianBA: r3(median(ratios)) };
      }
    }
    for (const name of Object.keys(results)) {
      const rs = results[name];
      if (rs.length === 0) continue;
      summary[name] = {
        mainUsPerChangeAcks: r3(median(rs.map((x) => x.mainUsPerChangeAcks))),
        mainUsPerChange: r3(median(rs.map((x) => x.mainUsPerChange))),
        processUsPerChange: r3(median(rs.map((x) => x.processUsPerChange))),
        perSecond: median(rs.map((x) => x.perSecond)),
      };
    }
    console.log(JSON.stringify(summary));
  } finally {
    for (const entry of hubs) {
      await entry.running.close();
      rmSync(entry.dataDir, { recursive: true, force: true });
    }
  }
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
