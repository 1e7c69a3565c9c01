#!/usr/bin/env node
// The rollout benchmark: a real hub as a child process (`things serve`, SQLite on disk) rolls one
// release out to N simulated Things — half over HTTP (one node:http server answering for every
// Thing under its own base URL), half over MQTT (the machine's broker; one client plays every
// device) — and the bench measures the time to converge, the hub's CPU time per Thing and its
// peak RSS, and checks that every Thing got its write exactly once. The simulator is light on
// purpose (one server, one MQTT client): the figures are the hub's, not the fleet's.
// Aim (issue 6): 10,000 Things converged in < 20 s with bounded concurrency, hub memory bounded.
// Prints ONE JSON line on stdout; everything else goes to stderr. See bench/README.md.
import { randomBytes } from "node:crypto";
import { once } from "node:events";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import mqtt from "mqtt";
import { startHub, stopHub } from "./support.js";

const TOKEN = `ht_${randomBytes(24).toString("hex")}`;
const DESIRED = 42;

const USAGE = `usage: node bench/rollout.bench.js [--things N] [--concurrency N] [--mqtt-share P]
  --things N        simulated Things (default 10000)
  --concurrency N   the rollout's concurrency (default 200)
  --mqtt-share P    percent of the Things on MQTT (default 50; 0 without a broker)
Other flags (given by bench/run.js to every bench) are ignored. The MQTT broker is
HYPERTHINGS_TEST_MQTT_URL or mqtt://127.0.0.1:1883. ROLLOUT_BENCH_HUB_PROF=DIR writes a CPU
profile of the hub there.`;

function parseOptions(argv) {
  const options = { things: 10_000, concurrency: 200, mqttShare: 50 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === "--help" || flag === "-h") {
      process.stderr.write(`${USAGE}\n`);
      process.exit(0);
    }
    const key = { "--things": "things", "--concurrency": "concurrency", "--mqtt-share": "mqttShare" }[flag];
    if (key === undefined) continue;
    const value = Number(argv[++i]);
    if (!Number.isInteger(value) || value < (key === "mqttShare" ? 0 : 1)) {
      process.stderr.write(`${flag} needs a whole number\n${USAGE}\n`);
      process.exit(2);
    }
    options[key] = value;
  }
  return options;
}

const log = (message) => process.stderr.write(`[rollout] ${message}\n`);

/** The child's CPU time (user + system, ms) and RSS (bytes), from /proc. */
function usageOf(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  const rss = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"));
  return { cpuMs: ticks * 10, rss: rss ? Number(rss[1]) * 1024 : 0 };
}

/** One HTTP server for every HTTP Thing: PUT /t/{i}/level counts the write. */
async function startHttpThings(writes) {
  const server = createServer((request, response) => {
    const chunks = [];
    request.on("data", (c) => chunks.push(c));
    request.on("end", () => {
      const match = /^\/t\/(\d+)\/level$/.exec(request.url ?? "");
      if (!match) return response.writeHead(404).end();
      const i = Number(match[1]);
      if (request.method === "PUT") {
        writes.set(i, (writes.get(i) ?? 0) + 1);
        return response.writeHead(204).end();
      }
      response.writeHead(200, { "content-type": "application/json" }).end("1");
    });
  });
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  return server;
}

function td(i, kind, base, brokerUrl, prefix) {
  const level = { type: "integer", minimum: 0, maximum: 100 };
  const forms =
    kind === "http"
      ? [{ href: `${base}/t/${i}/level`, op: ["readproperty", "writeproperty"] }]
      : [{ href: brokerUrl, "mqv:topic": `${prefix}/${i}/level/set`, op: "writeproperty", "mqv:qos": "1" }];
  return {
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    id: `urn:bench:rollout:${kind}:${i}`,
    title: "Bench dimmer",
    securityDefinitions: { nosec_sc: { scheme: "nosec" } },
    security: "nosec_sc",
    properties: { level: { ...level, forms } },
  };
}

async function pool(items, concurrency, run) {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await run(items[next++]);
  };
  await Promise.all(Array.from({ length: concurrency }, worker));
}

async function main() {
  const options = parseOptions(process.argv.slice(2));
  const { sealRelease, RELEASE_FORMAT } = await import("../dist/core/index.js");
  const brokerUrl = process.env.HYPERTHINGS_TEST_MQTT_URL ?? "mqtt://127.0.0.1:1883";
  const prefix = `hyperthings-bench/${randomBytes(4).toString("hex")}`;
  const httpWrites = new Map();
  const mqttWrites = new Map();
  let device;
  if (options.mqttShare > 0) {
    try {
      device = await mqtt.connectAsync(brokerUrl, { reconnectPeriod: 0, connectTimeout: 3000 });
      await device.subscribeAsync(`${prefix}/+/level/set`, { qos: 1 });
      device.on("message", (topic) => {
        const i = Number(topic.split("/").at(-3));
        mqttWrites.set(i, (mqttWrites.get(i) ?? 0) + 1);
      });
    } catch (err) {
      log(`no MQTT broker at ${brokerUrl} (${err.message}): every Thing over HTTP`);
      options.mqttShare = 0;
    }
  }
  const mqttThings = Math.round((options.things * options.mqttShare) / 100);
  const httpThings = options.things - mqttThings;
  const server = await startHttpThings(httpWrites);
  const base = `http://127.0.0.1:${server.address().port}`;
  const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-rollout-bench-"));
  const hub = startHub({
    dataDir,
    token: TOKEN,
    hubNodeArgs: process.env.ROLLOUT_BENCH_HUB_PROF
      ? ["--cpu-prof", `--cpu-prof-dir=${process.env.ROLLOUT_BENCH_HUB_PROF}`]
      : [],
    serveArgs: ["--no-mqtt", "--no-observe"],
  });
  const { child } = hub;
  const url = await hub.url;
  const headers = { authorization: `Bearer ${TOKEN}`, "content-type": "application/json" };
  try {
    log(`registering ${httpThings} HTTP and ${mqttThings} MQTT Things`);
    const tds = [
      ...Array.from({ length: httpThings }, (_, i) => td(i, "http", base, brokerUrl, prefix)),
      ...Array.from({ length: mqttThings }, (_, i) => td(i, "mqtt", base, brokerUrl, prefix)),
    ];
    await pool(tds, 32, async (thing) => {
      const response = await fetch(`${url}/things/${encodeURIComponent(thing.id)}`, {
        method: "PUT",
        headers: { ...headers, "content-type": "application/td+json" },
        body: JSON.stringify(thing),
      });
      if (response.status !== 201)
        throw new Error(`PUT ${thing.id} answered ${response.status}: ${await response.text()}`);
    });
    const release = sealRelease(
      {
        format: RELEASE_FORMAT,
        name: "bench-rollout",
        drift: { policy: "record" },
        steps: [{ select: { filter: 'td.title = "Bench dimmer"' }, properties: { level: DESIRED } }],
      },
      { sources: [], builder: "bench", builtAt: new Date().toISOString() },
    );
    const stored = await fetch(`${url}/releases`, { method: "POST", headers, body: JSON.stringify(release) });
    if (!stored.ok) throw new Error(`POST /releases answered ${stored.status}: ${await stored.text()}`);

    const before = usageOf(child.pid);
    let peakRss = before.rss;
    const start = performance.now();
    const started = await fetch(`${url}/releases/${encodeURIComponent(release.id)}/rollouts`, {
      method: "POST",
      headers,
      body: JSON.stringify({ concurrency: options.concurrency, maxFailures: 0 }),
    });
    if (started.status !== 202) throw new Error(`the rollout was refused: ${await started.text()}`);
    const { id } = await started.json();
    const acceptedMs = performance.now() - start;
    let rollout;
    for (;;) {
      // Sampling, not waiting for time to pass in a test: the bench reads the hub as it works.
      await new Promise((resolve) => setTimeout(resolve, 100));
      peakRss = Math.max(peakRss, usageOf(child.pid).rss);
      rollout = await (await fetch(`${url}/rollouts/${encodeURIComponent(id)}`)).json();
      if (rollout.status !== "running") break;
    }
    const convergeMs = performance.now() - start;
    const after = usageOf(child.pid);
    const once = (writes, n) => writes.size === n && [...writes.values()].every((c) => c === 1);
    const figures = {
      bench: "rollout",
      things: options.things,
      http: httpThings,
      mqtt: mqttThings,
      concurrency: options.concurrency,
      status: rollout.status,
      progress: rollout.progress,
      acceptedMs: Math.round(acceptedMs),
      convergeMs: Math.round(convergeMs),
      thingsPerSecond: Math.round((options.things / convergeMs) * 1000),
      hubCpuMs: after.cpuMs - before.cpuMs,
      hubCpuUsPerThing: Math.round(((after.cpuMs - before.cpuMs) * 1000) / options.things),
      hubRssStartMb: Math.round(before.rss / 2 ** 20),
      hubRssPeakMb: Math.round(peakRss / 2 ** 20),
      writtenOnce: once(httpWrites, httpThings) && (mqttThings === 0 || once(mqttWrites, mqttThings)),
      aimMs: 20_000,
      withinAim: rollout.status === "completed" && convergeMs < 20_000,
      machine: { cpus: availableParallelism(), load1: Math.round(loadavg()[0] * 100) / 100 },
    };
    process.stdout.write(`${JSON.stringify(figures)}\n`);
  } finally {
    await stopHub(hub);
    server.close();
    await device?.endAsync();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`[rollout] failed: ${err?.stack ?? err}\n`);
  process.exit(1);
});
