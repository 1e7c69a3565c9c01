#!/usr/bin/env node
// The graph benchmark (issue 5): a generated graph of N Things and L links, loaded straight into
// the hub's store (not the subject here), then queried through a real hub's HTTP API, one query at
// a time: a typed 3-hop traversal (the temperature sensors three partOf hops below a building) and
// a type+value filter over all Things (temperature sensors above 30). Also the hub's RSS with the
// graph loaded, and how long its first query took (the indexes are built from the store then).
// Prints ONE JSON line on stdout; everything else goes to stderr. See bench/README.md.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { Pool } from "undici";
import { cpuMs, nearestRank, rssMiB, startHub, stopHub } from "./support.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));

const USAGE = `usage: node bench/graph.bench.js [--things N] [--links L] [--queries Q] [--timeout SECONDS]
  --things N         Things in the graph (default 100000)
  --links L          links between them (default 3 × things)
  --queries Q        measured queries of each kind (default 300)
  --timeout SECONDS  the whole run (default 1800)
  --hub-node-args    node flags for the hub only, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
Other flags (given by npm run bench to every benchmark) are ignored.`;

function parseOptions(argv) {
  const options = { things: 100_000, links: undefined, queries: 300, timeout: 1800, hubNodeArgs: [] };
  const integers = {
    "--things": "things",
    "--links": "links",
    "--queries": "queries",
    "--timeout": "timeout",
  };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === "--help" || flag === "-h") {
      process.stderr.write(`${USAGE}\n`);
      process.exit(0);
    }
    if (flag === "--hub-node-args" && argv[i + 1] !== undefined) {
      options.hubNodeArgs = argv[i + 1].split(/\s+/).filter(Boolean);
      i++;
      continue;
    }
    const key = integers[flag];
    if (key === undefined) continue;
    const value = argv[i + 1];
    if (value === undefined || !/^\d+$/.test(value))
      throw new Error(`${flag} needs a whole number\n${USAGE}`);
    options[key] = Number(value);
    i++;
  }
  options.links ??= options.things * 3;
  if (options.things < 100 || options.things > 2_000_000) throw new Error("--things must be 100..2000000");
  if (options.links > 20 * options.things) throw new Error("--links must be at most 20 × things");
  if (options.queries < 1 || options.queries > 100_000) throw new Error("--queries must be 1..100000");
  return options;
}

const log = (message) => process.stderr.write(`[bench graph] ${message}\n`);
const round = (x) => Math.round(x * 100) / 100;

/** A small deterministic PRNG (mulberry32): the same graph on every run. */
function prng(seed) {
  let a = seed;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = Math.imul(a ^ (a >>> 15), 1 | a);
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const CONTEXT = ["https://www.w3.org/2022/wot/td/v1.1", { saref: "https://saref.etsi.org/core/" }];
const NOSEC = { securityDefinitions: { nosec_sc: { scheme: "nosec" } }, security: "nosec_sc" };

/**
 * Buildings ⊃ floors ⊃ rooms ⊃ devices by `partOf` (1 building per 100 Things, 4 floors each,
 * 5 rooms per floor, the rest devices), half the devices temperature sensors; the links left
 * over are `dependsOn`/`controls` between random devices. Returns the TDs, the sensor ids, the
 * building ids and the link count.
 */
function makeGraph(things, links) {
  const r = prng(42);
  const buildings = Math.max(1, Math.floor(things / 100));
  const floors = buildings * 4;
  const rooms = floors * 5;
  const devices = things - buildings - floors - rooms;
  if (devices < 1) throw new Error("too few Things for the building hierarchy");
  const tds = [];
  const sensors = [];
  const buildingIds = [];
  let linkCount = 0;
  for (let b = 0; b < buildings; b++) {
    const id = `urn:bench:building-${b}`;
    buildingIds.push(id);
    tds.push({ "@context": CONTEXT, "@type": "brick:Building", id, title: `Building ${b}`, ...NOSEC });
  }
  for (let f = 0; f < floors; f++) {
    const id = `urn:bench:floor-${f}`;
    tds.push({
      "@context": CONTEXT,
      "@type": "brick:Floor",
      id,
      title: `Floor ${f}`,
      ...NOSEC,
      links: [{ rel: "partOf", href: `urn:bench:building-${Math.floor(f / 4)}` }],
    });
    linkCount++;
  }
  for (let m = 0; m < rooms; m++) {
    const id = `urn:bench:room-${m}`;
    tds.push({
      "@context": CONTEXT,
      "@type": "brick:Room",
      id,
      title: `Room ${m}`,
      ...NOSEC,
      links: [{ rel: "partOf", href: `urn:bench:floor-${Math.floor(m / 5)}` }],
    });
    linkCount++;
  }
  const deviceTds = [];
  for (let d = 0; d < devices; d++) {
    const id = `urn:bench:device-${d}`;
    const sensor = d % 2 === 0;
    const td = {
      "@context": CONTEXT,
      "@type": sensor ? "saref:TemperatureSensor" : "saref:Switch",
      id,
      title: `Device ${d}`,
      ...NOSEC,
      properties: sensor
        ? { temperature: { type: "number", readOnly: true, forms: [{ href: `http://127.0.0.1:9/${d}/t` }] } }
        : { on: { type: "boolean", forms: [{ href: `http://127.0.0.1:9/${d}/on` }] } },
      links: [{ rel: "partOf", href: `urn:bench:room-${Math.floor(r() * rooms)}` }],
    };
    linkCount++;
    if (sensor) sensors.push(id);
    deviceTds.push(td);
  }
  // The remaining links: devices depending on or controlling other devices, at random.
  while (linkCount < links) {
    const from = deviceTds[Math.floor(r() * devices)];
    const to = `urn:bench:device-${Math.floor(r() * devices)}`;
    from.links.push({ rel: r() < 0.5 ? "dependsOn" : "controls", href: to });
    linkCount++;
  }
  tds.push(...deviceTds);
  return { tds, sensors, buildingIds, linkCount };
}

/** Writes the graph and one reported temperature per sensor straight into the store, in batches. */
async function loadStore(dataDir, graph) {
  const { SqliteStore } = await import(join(ROOT, "dist", "store", "index.js"));
  const { formatHlc } = await import(join(ROOT, "dist", "core", "index.js"));
  const store = new SqliteStore({ path: join(dataDir, "hyperthings.db") });
  const cause = { actor: "bench", via: "bench" };
  // One millisecond per Change, ending before now: the hub's clock resumes after the last one.
  let wall = Date.now() - graph.tds.length - graph.sensors.length - 60_000;
  const hlc = () => formatHlc({ wall: wall++, counter: 0, node: "bench" });
  const r = prng(7);
  const CHUNK = 2000;
  for (let i = 0; i < graph.tds.length; i += CHUNK) {
    await Promise.all(graph.tds.slice(i, i + CHUNK).map((td) => store.describe({ td, cause, hlc: hlc() })));
  }
  for (let i = 0; i < graph.sensors.length; i += CHUNK) {
    const drafts = graph.sensors.slice(i, i + CHUNK).map((thing) => ({
      thing,
      affordance: "temperature",
      kind: "reported",
      value: round(r() * 40),
      cause,
      hlc: hlc(),
    }));
    await store.append(drafts);
  }
  await store.close();
}

function summary(latencies) {
  const sorted = Float64Array.from(latencies).sort();
  const at = (q) => nearestRank(sorted, q);
  return { queries: sorted.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1) };
}

async function main() {
  const options = parseOptions(process.argv.slice(2));
  const deadline = Date.now() + options.timeout * 1000;
  const loadBefore = round(loadavg()[0]);
  const graph = makeGraph(options.things, options.links);
  log(`${graph.tds.length} Things, ${graph.linkCount} links, ${graph.sensors.length} temperature sensors`);
  const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-bench-graph-"));
  const token = `bench_${randomBytes(24).toString("base64url")}`;
  let hub;
  let pool;
  try {
    const loadStarted = performance.now();
    await loadStore(dataDir, graph);
    const loadMs = Math.round(performance.now() - loadStarted);
    log(`loaded into the store in ${loadMs} ms`);

    hub = startHub({
      dataDir,
      token,
      hubNodeArgs: options.hubNodeArgs,
      serveArgs: ["--no-observe", "--no-mqtt"],
      timeoutMs: 60_000,
    });
    const url = await hub.url;
    pool = new Pool(url, { connections: 1 });
    const query = async (filter, limit) => {
      const path = `/graph?filter=${encodeURIComponent(filter)}&limit=${limit}`;
      const started = performance.now();
      const { statusCode, body } = await pool.request({
        method: "GET",
        path,
        headers: { authorization: `Bearer ${token}` },
      });
      const answer = await body.json();
      const ms = performance.now() - started;
      if (statusCode !== 200) throw new Error(`GET /graph answered ${statusCode}: ${JSON.stringify(answer)}`);
      return { ms, answer };
    };

    // The first query builds the indexes from the store.
    const first = await query("type = brick:Building", 1);
    log(`first query (index build) ${Math.round(first.ms)} ms`);
    const rss = rssMiB(hub.child.pid);
    log(`hub RSS with the graph loaded: ${rss} MiB`);

    const r = prng(99);
    const measure = async (name, make) => {
      // A few unmeasured queries first, so the JIT has seen the paths.
      for (let i = 0; i < Math.min(10, options.queries); i++) await query(...make());
      const latencies = [];
      const cpuBefore = cpuMs(hub.child.pid);
      let matched = 0;
      for (let i = 0; i < options.queries && Date.now() < deadline; i++) {
        const { ms, answer } = await query(...make());
        latencies.push(ms);
        matched += answer.items.length;
      }
      const cpuPerQuery = round((cpuMs(hub.child.pid) - cpuBefore) / latencies.length);
      const s = {
        ...summary(latencies),
        hubCpuMsPerQuery: cpuPerQuery,
        meanItems: round(matched / latencies.length),
      };
      log(`${name}: ${JSON.stringify(s)}`);
      return s;
    };
    const traversal = await measure("typed 3-hop traversal", () => [
      `type = saref:TemperatureSensor AND out(partOf, 3) { id = "${graph.buildingIds[Math.floor(r() * graph.buildingIds.length)]}" }`,
      100,
    ]);
    const typeValue = await measure("type+value filter", () => [
      `type = saref:Sensor AND state.temperature > ${30 + Math.floor(r() * 10)}`,
      100,
    ]);
    const rssAfter = rssMiB(hub.child.pid);
    const rssPeak = rssMiB(hub.child.pid, "VmHWM");
    process.stdout.write(
      `${JSON.stringify({
        bench: "graph",
        things: graph.tds.length,
        links: graph.linkCount,
        loadIntoStoreMs: loadMs,
        firstQueryMs: Math.round(first.ms),
        traversal3Hop: traversal,
        typeValueFilter: typeValue,
        hubRssMiB: rss,
        hubRssAfterMiB: rssAfter,
        hubRssPeakMiB: rssPeak,
        loadavgBefore: loadBefore,
        loadavgAfter: round(loadavg()[0]),
      })}\n`,
    );
  } finally {
    if (pool) await pool.destroy().catch(() => {});
    if (hub) await stopHub(hub);
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  log(err instanceof Error ? (err.stack ?? err.message) : String(err));
  process.exit(1);
});
