#!/usr/bin/env node
// History on the PostgreSQL store at ~100k Changes: a hub (the build, in-process) on a schema of
// its own fills its Log, then times stateAt and diff of one Thing at random times, diff over all
// its Changes, the whole fleet's diff (its first page, and later pages filtered by a rare actor and
// by a release), and the change feed filtered by the two, oldest and newest first. Prints ONE JSON line on stdout; everything else goes to stderr. The schema is dropped at
// the end. See bench/README.md.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { performance } from "node:perf_hooks";
import { fileURLToPath } from "node:url";
import pg from "pg";
import { POSTGRES_URL, nearestRank, parseFlags } from "./support.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const dist = (part) => join(ROOT, "dist", part, "index.js");

const USAGE = `usage: node bench/postgres-history.bench.js [--changes N] [--things N] [--properties N] [--queries N] [--url URL]
  --changes N   Changes in the Log before measuring (default 100000)
  --things N    Things (default 100); Thing 0 gets 1 in 10 batches
  --properties N  numeric properties of each Thing, reported in turn (default 3)
  --queries N   queries of each kind (default 500)
  --url URL     PostgreSQL (default HYPERTHINGS_TEST_POSTGRES_URL or postgres://root@127.0.0.1:5432/test)`;

const parse = (argv) =>
  parseFlags(
    argv,
    {
      changes: 100_000,
      things: 100,
      properties: 3,
      queries: 500,
      url: POSTGRES_URL,
    },
    USAGE,
  );

const log = (line) => process.stderr.write(`${line}\n`);
/** The Things' properties: three named ones, or `p0`… when asked for another number. */
const propertiesOf = (n) =>
  n === 3 ? ["temperature", "humidity", "power"] : Array.from({ length: n }, (_, i) => `p${i}`);
const thingId = (i) => `urn:hyperthings:bench:pg:thing-${String(i).padStart(4, "0")}`;

function makeTd(i, properties) {
  return {
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    id: thingId(i),
    title: `Sensor ${i}`,
    securityDefinitions: { nosec_sc: { scheme: "nosec" } },
    security: "nosec_sc",
    properties: Object.fromEntries(
      properties.map((p) => [p, { type: "number", forms: [{ href: `http://192.0.2.1/things/${i}/${p}` }] }]),
    ),
  };
}

/** mulberry32: a seeded generator, so that runs compare. */
function random(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

async function timed(name, count, query) {
  const latencies = [];
  let errors = 0;
  for (let i = 0; i < count; i++) {
    const t0 = performance.now();
    const ok = await query(i);
    latencies.push(performance.now() - t0);
    if (ok !== true) errors++;
  }
  latencies.sort((a, b) => a - b);
  const result = {
    queries: count,
    p50: nearestRank(latencies, 0.5),
    p99: nearestRank(latencies, 0.99),
    max: nearestRank(latencies, 1),
    errors,
  };
  log(`${name}: ${JSON.stringify(result)}`);
  return result;
}

async function main() {
  const options = parse(process.argv.slice(2));
  const { startHub, createLogger } = await import(dist("cli"));
  const { loadConfig } = await import(dist("hub"));
  const schema = `hyperthings_bench_${process.pid}`;
  const store = `${options.url}${options.url.includes("?") ? "&" : "?"}schema=${schema}`;
  const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-bench-pg-"));
  const config = loadConfig(
    { port: 0, host: "127.0.0.1", logLevel: "silent", dataDir, observe: false, store },
    {},
  );
  const running = await startHub(config, { logger: createLogger("silent") });
  const { hub } = running;
  const r = random(0x9e);
  const properties = propertiesOf(options.properties);
  try {
    for (let i = 0; i < options.things; i++)
      await hub.directory.put(thingId(i), makeTd(i, properties), { actor: "bench" });

    // The fill: batches of 30 reports; 1 in 10 for Thing 0 (the one queried); 1 in 100 by a rare
    // actor, 1 in 100 on behalf of a release.
    const hot = thingId(0);
    const hotTimes = [];
    const batches = Math.ceil(options.changes / 30);
    const fillStart = performance.now();
    let next = 0;
    await Promise.all(
      Array.from({ length: 16 }, async () => {
        while (next < batches) {
          const b = next++;
          const thing = b % 10 === 0 ? hot : thingId(1 + Math.floor(r() * (options.things - 1)));
          // 50 and 60 are the hot Thing's: a filtered fleet diff's later pages find it too.
          const cause =
            b % 100 === 7 || b % 100 === 50
              ? { actor: "bench:rare" }
              : b % 100 === 13 || b % 100 === 60
                ? { actor: "bench", release: "sha256:bench-release" }
                : { actor: "bench" };
          const reports = Array.from({ length: 30 }, (_, k) => ({
            kind: "reported",
            affordance: properties[(b + k) % properties.length],
            value: Math.round(r() * 10_000) / 10,
          }));
          const recorded = await hub.ingest(thing, reports, cause);
          if (thing === hot) hotTimes.push(Date.parse(recorded[0].hlc.slice(0, 24)) || Date.now());
        }
      }),
    );
    const fillSeconds = (performance.now() - fillStart) / 1000;
    const size = await hub.store.lastSeq();
    log(`filled ${size} Changes in ${fillSeconds.toFixed(1)} s`);

    const first = Math.min(...hotTimes);
    const last = Math.max(...hotTimes);
    const randomTime = () => new Date(first + Math.floor(r() * (last - first + 1)));
    const stateAt = await timed("stateAt", options.queries, async () => {
      const state = await hub.history.stateAt(hot, randomTime());
      return state.thing === hot;
    });
    const diff = await timed("diff", options.queries, async () => {
      const a = randomTime();
      const b = randomTime();
      const d = await hub.history.diff(hot, a <= b ? a : b, a <= b ? b : a);
      return d.thing === hot;
    });
    // The longest interval: every Change of the Thing between the two (a diff's cost that grew
    // with the interval shows here first).
    const diffWhole = await timed("diff whole", options.queries, async () => {
      const d = await hub.history.diff(hot, new Date(first - 1), new Date(last + 1));
      return d.thing === hot;
    });
    // The whole fleet's diff (GET /diff), its first page of 20 Things between two random times.
    let fleetThings = 0;
    const fleet = await timed("fleetDiff", options.queries, async () => {
      const a = randomTime();
      const b = randomTime();
      const page = await hub.history.fleetDiff({ from: a <= b ? a : b, to: a <= b ? b : a, limit: 20 });
      fleetThings += page.things.length;
      return page.things.every((d) => typeof d.thing === "string");
    });
    const fleetPerThing = fleetThings > 0 ? (fleet.p50 * options.queries) / fleetThings : 0;
    log(
      `fleetDiff: ${(fleetThings / options.queries).toFixed(1)} Things a page, p50 ${fleetPerThing.toFixed(2)} ms a Thing`,
    );
    // A filtered fleet diff's later page (pages of 5, from the whole of the hot Thing's history):
    // each Thing on it is looked up in the filter's Changes before the page (the hot Thing too).
    const laterPages = async (name, filter) => {
      const asked = [];
      for (let i = 0; i < options.queries; i++) {
        const a = randomTime();
        const range = { from: new Date(first - 1), to: a };
        const page = await hub.history.fleetDiff({ ...filter, ...range, limit: 5 });
        if (page.next !== undefined) asked.push({ ...range, cursor: page.next });
      }
      return timed(name, asked.length, async (i) => {
        const page = await hub.history.fleetDiff({ ...filter, ...asked[i], limit: 5 });
        return page.things.every((d) => typeof d.thing === "string");
      });
    };
    const fleetActorLater = await laterPages("fleetDiff actor later page", { actor: "bench:rare" });
    const fleetReleaseLater = await laterPages("fleetDiff release later page", {
      release: "sha256:bench-release",
    });
    const randomSeq = () => Math.floor(r() * size);
    const feed = async (filter, order) => {
      const after = order === "asc" ? randomSeq() : 0;
      const before = order === "desc" ? randomSeq() + 1 : undefined;
      const page = await hub.store.feed({ ...filter, after, ...(before && { before }), order, limit: 50 });
      return page.every((c) =>
        filter.actor ? c.cause.actor === filter.actor : c.cause.release === filter.release,
      );
    };
    const actorAsc = await timed("feed actor asc", options.queries, () =>
      feed({ actor: "bench:rare" }, "asc"),
    );
    const actorDesc = await timed("feed actor desc", options.queries, () =>
      feed({ actor: "bench:rare" }, "desc"),
    );
    const releaseDesc = await timed("feed release desc", options.queries, () =>
      feed({ release: "sha256:bench-release" }, "desc"),
    );
    process.stdout.write(
      `${JSON.stringify({
        bench: "postgres-history",
        changes: size,
        fillChangesPerSecond: Math.round(size / fillSeconds),
        stateAtMs: stateAt,
        diffMs: diff,
        diffWholeMs: diffWhole,
        feedActorAscMs: actorAsc,
        feedActorDescMs: actorDesc,
        feedReleaseDescMs: releaseDesc,
        fleetDiffMs: fleet,
        fleetDiffThingsPerPage: Math.round((fleetThings / options.queries) * 10) / 10,
        fleetDiffMsPerThing: Math.round(fleetPerThing * 100) / 100,
        fleetDiffActorLaterPageMs: fleetActorLater,
        fleetDiffReleaseLaterPageMs: fleetReleaseLater,
      })}\n`,
    );
  } finally {
    await running.close();
    rmSync(dataDir, { recursive: true, force: true });
    const client = new pg.Client({ connectionString: options.url });
    await client.connect();
    if (process.env.BENCH_KEEP_SCHEMA === "1") log(`kept schema ${schema}`);
    else await client.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await client.end();
  }
}

await main();
