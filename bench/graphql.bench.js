#!/usr/bin/env node
// The GraphQL fan-out benchmark: a real hub as a child process, N WebSocket clients (graphql-ws
// over ws) each subscribed to `changes(filter: {thing})`, then one Change at a time reported over
// HTTP and timed until every subscriber has it. Prints ONE JSON line on stdout; progress goes to
// stderr. See bench/README.md.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { createClient } from "graphql-ws";
import WebSocket from "ws";
import { cpuMs, nearestRank, startHub, stopHub } from "./support.js";

const THING = "urn:bench:graphql:sensor";

const USAGE = `usage: node bench/graphql.bench.js [--subscribers N] [--fanouts N] [--timeout SECONDS]
  --subscribers N   WebSocket clients, one subscription each (default 1000)
  --fanouts N       measured Changes, one at a time (default 200)
  --timeout SECONDS the whole run (default 600)
Other flags (given to every bench by bench/run.js) are ignored.`;

function parseOptions(argv) {
  const options = { subscribers: 1000, fanouts: 200, timeout: 600 };
  const integers = { "--subscribers": "subscribers", "--fanouts": "fanouts", "--timeout": "timeout" };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === "--help" || flag === "-h") {
      process.stderr.write(`${USAGE}\n`);
      process.exit(0);
    }
    const key = integers[flag];
    if (key === undefined) continue;
    const value = Number(argv[i + 1]);
    if (!Number.isSafeInteger(value) || value < 1) {
      process.stderr.write(`${flag} takes a positive integer\n${USAGE}\n`);
      process.exit(2);
    }
    options[key] = value;
    i++;
  }
  return options;
}

const log = (message) => process.stderr.write(`[graphql] ${message}\n`);

const percentile = (sorted, p) => nearestRank(sorted, p / 100);

async function request(url, token, method, path, body, contentType = "application/json") {
  const response = await fetch(`${url}${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, "content-type": contentType },
    body: JSON.stringify(body),
  });
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${await response.text()}`);
  return (response.headers.get("content-type") ?? "").includes("json") ? response.json() : undefined;
}

async function main() {
  const options = parseOptions(process.argv.slice(2));
  const deadline = Date.now() + options.timeout * 1000;
  const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-bench-graphql-"));
  const token = randomBytes(24).toString("hex");
  // Every subscriber connects from 127.0.0.1: one client address, as far as the hub can tell.
  const hub = startHub({
    dataDir,
    token,
    serveArgs: ["--no-observe", "--no-mqtt"],
    env: { HYPERTHINGS_MAX_STREAMS_PER_CLIENT: String(Math.max(64, options.subscribers + 8)) },
  });
  const clients = [];
  let failure;
  try {
    const url = await hub.url;
    log(`hub at ${url}; ${options.subscribers} subscribers, ${options.fanouts} Changes`);
    await request(
      url,
      token,
      "PUT",
      `/things/${encodeURIComponent(THING)}`,
      {
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        id: THING,
        title: "Bench sensor",
        securityDefinitions: { nosec_sc: { scheme: "nosec" } },
        security: "nosec_sc",
        properties: { temperature: { type: "number", forms: [{ href: "http://127.0.0.1:9/t" }] } },
      },
      "application/td+json",
    );

    // Each subscriber: its own socket and subscription, from the Log's start (after: 0), so that
    // one that goes live late still gets every reported Change: the warm-up waits for all.
    const wsUrl = `${url.replace(/^http/, "ws")}/graphql`;
    const query = `subscription ($thing: ID!) { changes(filter: { thing: $thing, kinds: ["reported"] }, after: 0) { seq value } }`;
    let onDelivery = () => {};
    let errors = 0;
    for (let i = 0; i < options.subscribers; i++) {
      const client = createClient({
        url: wsUrl,
        webSocketImpl: WebSocket,
        retryAttempts: 0,
        connectionParams: { token },
      });
      clients.push(client);
      client.subscribe(
        { query, variables: { thing: THING } },
        {
          next: (result) => {
            if (result.errors) errors++;
            else onDelivery(result.data.changes.seq, performance.now());
          },
          error: () => errors++,
          complete: () => {},
        },
      );
    }

    /** Reports one value and resolves with every subscriber's delivery time of it. */
    const fanout = async (value) => {
      const received = [];
      let seq = -1;
      const pending = [];
      let done;
      const all = new Promise((resolve) => (done = resolve));
      onDelivery = (s, at) => {
        if (seq === -1) pending.push([s, at]);
        else if (s === seq) {
          received.push(at);
          if (received.length === options.subscribers) done();
        }
      };
      const start = performance.now();
      const answer = await request(url, token, "POST", `/things/${encodeURIComponent(THING)}/changes`, {
        kind: "reported",
        affordance: "temperature",
        value,
      });
      seq = answer.seqs[0];
      for (const [s, at] of pending) if (s === seq) received.push(at);
      if (received.length === options.subscribers) done();
      const bound = new Promise((_, reject) =>
        setTimeout(
          () =>
            reject(
              new Error(`${received.length}/${options.subscribers} subscribers got seq ${seq} within 30 s`),
            ),
          30_000,
        ).unref(),
      );
      await Promise.race([all, bound]);
      return received.map((at) => at - start);
    };

    // Warm-up: the first Change reaches every subscriber once all are live; then a few more.
    for (let i = 0; i < 5; i++) await fanout(-1);

    const latencies = [];
    const lastLatencies = [];
    const cpuBefore = cpuMs(hub.child.pid);
    const started = performance.now();
    for (let i = 0; i < options.fanouts && Date.now() < deadline; i++) {
      const times = await fanout(i);
      for (const t of times) latencies.push(t);
      lastLatencies.push(Math.max(...times));
    }
    const elapsed = performance.now() - started;
    const cpu = cpuMs(hub.child.pid) - cpuBefore;
    latencies.sort((a, b) => a - b);
    lastLatencies.sort((a, b) => a - b);
    const fanouts = lastLatencies.length;
    if (errors > 0) throw new Error(`${errors} subscription errors`);
    process.stdout.write(
      `${JSON.stringify({
        bench: "graphql",
        subscribers: options.subscribers,
        fanouts,
        deliveries: latencies.length,
        deliveryMs: {
          p50: percentile(latencies, 50),
          p99: percentile(latencies, 99),
          max: percentile(latencies, 100),
        },
        lastSubscriberMs: { p50: percentile(lastLatencies, 50), p99: percentile(lastLatencies, 99) },
        deliveriesPerSecond: Math.round((latencies.length / elapsed) * 1000),
        hubCpuMsPerFanout: Math.round((cpu / fanouts) * 100) / 100,
        hubCpuUsPerDelivery: Math.round(((cpu * 1000) / latencies.length) * 100) / 100,
        machine: { cpus: availableParallelism(), load1: Math.round(loadavg()[0] * 100) / 100 },
      })}\n`,
    );
  } catch (err) {
    failure = err;
  } finally {
    await Promise.all(clients.map((c) => c.dispose()));
    await stopHub(hub);
    rmSync(dataDir, { recursive: true, force: true });
  }
  if (failure) {
    log(`FAILED: ${failure instanceof Error ? failure.message : String(failure)}`);
    process.exitCode = 1;
  }
}

await main();
