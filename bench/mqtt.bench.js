#!/usr/bin/env node
// The MQTT and proxy benchmark: a real hub as a child process on the machine's Mosquitto
// (HYPERTHINGS_TEST_MQTT_URL, default mqtt://127.0.0.1:1883). Measures (1) readings ingested as
// durable Changes through the broker, side by side with Mosquitto's own pass-through to a plain
// subscriber, (2) publish-to-/changes/stream latency at a paced rate, (3) property reads proxied
// through the hub over HTTP against reading the Thing directly.
// Prints ONE JSON line on stdout; everything else goes to stderr. See bench/README.md.
import { randomBytes } from "node:crypto";
import { mkdtempSync, rmSync } from "node:fs";
import { createServer } from "node:http";
import { connect as netConnect } from "node:net";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { MqttClient } from "mqtt";
import { Pool, request as undiciRequest } from "undici";
import { cpuMs, nearestRank, rssMiB, startHub, stopHub } from "./support.js";

const BROKER_URL = process.env.HYPERTHINGS_TEST_MQTT_URL || "mqtt://127.0.0.1:1883";

// ---------------------------------------------------------------------------------------------
// Options

const USAGE = `usage: node bench/mqtt.bench.js [--things N] [--readings N] [--publishers N] [--window N]
       [--rate N] [--paced-seconds N] [--reads N] [--idle-ms N] [--timeout SECONDS]
       [--hub-node-args "<node flags for the hub>"]
  --things N          Things registered, each with one numeric property (default 100)
  --readings N        readings published in the throughput phase, hub and pass-through each (default 200000)
  --publishers N      publishing MQTT connections (default 4)
  --window N          QoS 1 publishes in flight per publisher (default 256)
  --rate N            readings/s in the paced latency phase (default 5000)
  --paced-seconds N   length of the paced phase (default 10)
  --reads N           property reads, through the hub and directly, each (default 5000)
  --idle-ms N         a phase ends when nothing more arrived for this long (default 3000)
  --timeout SECONDS   the whole run (default 600)
  --hub-node-args     node flags for the hub only, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
The broker: HYPERTHINGS_TEST_MQTT_URL (default mqtt://127.0.0.1:1883); unreachable → "skipped".`;

function parseOptions(argv) {
  const options = {
    things: 100,
    readings: 200_000,
    publishers: 4,
    window: 256,
    rate: 5_000,
    pacedSeconds: 10,
    reads: 5_000,
    idleMs: 3_000,
    timeout: 600,
    hubNodeArgs: [],
  };
  const integers = {
    "--things": "things",
    "--readings": "readings",
    "--publishers": "publishers",
    "--window": "window",
    "--rate": "rate",
    "--paced-seconds": "pacedSeconds",
    "--reads": "reads",
    "--idle-ms": "idleMs",
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
      options.hubNodeArgs = value.split(/\s+/).filter(Boolean);
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
  const within = (key, lo, hi) => {
    if (options[key] < lo || options[key] > hi) throw new Error(`--${key} must be ${lo}..${hi}`);
  };
  within("things", 1, 100_000);
  within("readings", 1, 10_000_000);
  within("publishers", 1, 64);
  within("window", 1, 10_000);
  within("rate", 1, 100_000);
  within("pacedSeconds", 1, 600);
  within("reads", 1, 1_000_000);
  within("idleMs", 100, 60_000);
  within("timeout", 10, 24 * 3600);
  return options;
}

const log = (message) => process.stderr.write(`[bench mqtt] ${message}\n`);
/** Set on SIGINT/SIGTERM: every loop stops. */
let stopping = false;
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));
const round = (x) => Math.round(x * 100) / 100;
const nowMs = () => Number(process.hrtime.bigint()) / 1e6;

/** Nearest-rank percentiles of latencies in ms. */
function percentiles(values) {
  const sorted = Float64Array.from(values).sort();
  const at = (q) => nearestRank(sorted, q);
  return { count: sorted.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1) };
}

const thingPath = (id) => `/things/${encodeURIComponent(id).replace(/%3A/gi, ":")}`;

// ---------------------------------------------------------------------------------------------
// MQTT clients of our own: mqtt.js, MQTT 3.1.1, TCP_NODELAY on the socket (PITFALLS)

function mqttClient(name, clientId) {
  const broker = new URL(BROKER_URL);
  const host = broker.hostname.replace(/^\[(.*)\]$/, "$1");
  const port = broker.port === "" ? 1883 : Number(broker.port);
  if (broker.protocol !== "mqtt:")
    throw new Error(`only mqtt:// brokers are supported here, not ${BROKER_URL}`);
  const client = new MqttClient(
    () => {
      const socket = netConnect({ host, port });
      socket.setNoDelay(true);
      return socket;
    },
    {
      protocolId: "MQTT",
      protocolVersion: 4,
      clientId,
      clean: true,
      keepalive: 30,
      reconnectPeriod: 0,
      connectTimeout: 3_000,
      ...(broker.username === "" ? {} : { username: decodeURIComponent(broker.username) }),
      ...(broker.password === "" ? {} : { password: decodeURIComponent(broker.password) }),
    },
  );
  const connected = new Promise((resolve, reject) => {
    const fail = (err) => reject(new Error(`${name}: ${err?.message ?? err}`));
    client.once("connect", () => {
      client.off("error", fail);
      client.on("error", (err) => log(`${name}: ${err.message}`));
      resolve(client);
    });
    client.once("error", fail);
    client.once("close", () => fail(new Error(`no connection to ${BROKER_URL}`)));
  });
  return connected;
}

async function brokerProblem() {
  try {
    const client = await mqttClient("probe", `bench-probe-${randomBytes(4).toString("hex")}`);
    await client.endAsync();
    return undefined;
  } catch (err) {
    return err?.message ?? String(err);
  }
}

/**
 * Publishes `count` readings at QoS 1 as fast as the broker acknowledges them, with `window`
 * publishes in flight; `topicOf(i)` and `payloadOf(i)` make the i-th. Resolves when all are
 * acknowledged (or on a failure, which counts as an error).
 */
function floodPublish(client, count, window, topicOf, payloadOf, stats) {
  return new Promise((resolve) => {
    let next = 0;
    let inFlight = 0;
    const pump = () => {
      while (inFlight < window && next < count && !stopping) {
        const i = next++;
        inFlight++;
        client.publish(topicOf(i), payloadOf(i), { qos: 1 }, (err) => {
          inFlight--;
          if (err) {
            if (stats.errors++ < 5) log(`publish #${i}: ${err.message}`);
          } else stats.acked++;
          if (next >= count || stopping) {
            if (inFlight === 0) resolve();
          } else pump();
        });
      }
      if ((next >= count || stopping) && inFlight === 0) resolve();
    };
    pump();
  });
}

/** A TD with one numeric property; its form is never used (the device reports through the gateway). */
function sensorTd(id) {
  return {
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    id,
    title: `bench sensor ${id}`,
    securityDefinitions: { nosec_sc: { scheme: "nosec" } },
    security: "nosec_sc",
    properties: {
      value: {
        type: "number",
        readOnly: true,
        forms: [{ href: "http://127.0.0.1:1/value", op: "readproperty" }],
      },
    },
  };
}

// ---------------------------------------------------------------------------------------------
// /changes/stream as Server-Sent Events

/** Opens the stream; `onChange(change, atMs)` for each `change` event. Resolves once it is open. */
async function openChangeStream(hubUrl, onChange) {
  const controller = new AbortController();
  const { statusCode, body } = await undiciRequest(`${hubUrl}/changes/stream`, {
    headers: { accept: "text/event-stream" },
    signal: controller.signal,
    bodyTimeout: 0,
    headersTimeout: 10_000,
  });
  if (statusCode !== 200) throw new Error(`/changes/stream answered ${statusCode}`);
  body.setEncoding("utf8");
  let buffer = "";
  let data = [];
  const done = (async () => {
    try {
      for await (const chunk of body) {
        const at = nowMs();
        buffer += chunk;
        let newline;
        while ((newline = buffer.indexOf("\n")) >= 0) {
          const line = buffer.slice(0, newline).replace(/\r$/, "");
          buffer = buffer.slice(newline + 1);
          if (line === "") {
            if (data.length > 0) {
              try {
                onChange(JSON.parse(data.join("\n")), at);
              } catch {
                // not a Change (a comment or keep-alive)
              }
            }
            data = [];
          } else if (line.startsWith("data:")) data.push(line.slice(line[5] === " " ? 6 : 5));
        }
      }
    } catch {
      // aborted at the end
    }
  })();
  return {
    close: async () => {
      controller.abort();
      await done;
    },
  };
}

async function lastSeq(pool) {
  const { statusCode, body } = await pool.request({ method: "GET", path: "/health" });
  const json = await body.json();
  if (statusCode !== 200 || typeof json.lastSeq !== "number") {
    throw new Error(`/health answered ${statusCode} ${JSON.stringify(json).slice(0, 200)}`);
  }
  return json.lastSeq;
}

// ---------------------------------------------------------------------------------------------
// Phases

/** Waits until `count()` reaches `target` or stops growing for `idleMs`; returns the time of its last growth. */
async function settle(count, target, idleMs, deadline, stepMs = 20) {
  let last = await count();
  let lastGrowth = nowMs();
  while (last < target && !stopping && Date.now() < deadline) {
    await sleep(stepMs);
    const n = await count();
    if (n > last) {
      last = n;
      lastGrowth = nowMs();
    } else if (nowMs() - lastGrowth > idleMs) break;
  }
  return { count: last, lastGrowth };
}

/** The rate between the moments `lo` and `hi` of the total were reached (the steady middle of a run). */
function sustained(timeline, total) {
  if (total < 10) return null;
  const lo = timeline.find(([, n]) => n >= total * 0.1);
  const hi = timeline.find(([, n]) => n >= total * 0.9);
  if (!lo || !hi || hi[0] <= lo[0]) return null;
  return Math.round(((hi[1] - lo[1]) * 1000) / (hi[0] - lo[0]));
}

async function throughput(kind, publishers, options, deadline, topicOf, count, hubPid) {
  const per = Math.ceil(options.readings / publishers.length);
  const stats = { acked: 0, errors: 0 };
  const timeline = [];
  const payloadOf = (i) => String(i);
  const cpuBefore = hubPid ? cpuMs(hubPid) : 0;
  const started = nowMs();
  log(`${kind}: start at ${Math.round(started * 1000)} µs, ${options.readings} readings`);
  let publishedAt = null;
  const publishing = Promise.all(
    publishers.map((client, p) => {
      const quota = Math.max(0, Math.min(per, options.readings - p * per));
      return floodPublish(
        client,
        quota,
        options.window,
        (i) => topicOf(p * per + i),
        (i) => payloadOf(p * per + i),
        stats,
      );
    }),
  ).then(() => (publishedAt = nowMs()));
  // Sample the count while the readings flow, then until it settles.
  let sampling = true;
  const sampler = (async () => {
    while (sampling && !stopping) {
      timeline.push([nowMs() - started, await count()]);
      await sleep(50);
    }
  })();
  await publishing;
  const { count: received, lastGrowth } = await settle(count, options.readings, options.idleMs, deadline);
  sampling = false;
  await sampler;
  timeline.push([lastGrowth - started, received]);
  const wallMs = lastGrowth - started;
  const hubCpu = hubPid ? cpuMs(hubPid) - cpuBefore : 0;
  const result = {
    published: stats.acked,
    publishErrors: stats.errors,
    received,
    lost: stats.acked - received,
    publishPerSecond: Math.round((stats.acked * 1000) / (publishedAt - started)),
    perSecond: wallMs > 0 ? Math.round((received * 1000) / wallMs) : null,
    sustainedPerSecond: sustained(timeline, received),
    seconds: round(wallMs / 1000),
    ...(hubPid && {
      hubCpuUs: received > 0 ? Math.round((hubCpu * 1000) / received) : null,
      hubCpuPct: Math.round((hubCpu * 100) / wallMs),
    }),
  };
  log(`${kind}: end at ${Math.round(nowMs() * 1000)} µs: ${JSON.stringify(result)}`);
  return result;
}

async function paced(publisher, hubUrl, options, deadline, topicOf, base) {
  const total = options.rate * options.pacedSeconds;
  const sentAt = new Float64Array(total);
  const dueAt = new Float64Array(total);
  const fromPublish = [];
  const fromDue = [];
  let matched = 0;
  let foreign = 0;
  const stream = await openChangeStream(hubUrl, (change, at) => {
    const i = change.value - base;
    if (change.kind !== "reported" || !Number.isInteger(i) || i < 0 || i >= total || sentAt[i] === 0) {
      foreign++;
      return;
    }
    fromPublish.push(at - sentAt[i]);
    fromDue.push(at - dueAt[i]);
    sentAt[i] = 0;
    matched++;
  });
  const stats = { acked: 0, errors: 0 };
  let missed = 0;
  const started = nowMs();
  log(`paced: start at ${Math.round(started * 1000)} µs, ${options.rate}/s for ${options.pacedSeconds} s`);
  let next = 0;
  const end = started + options.pacedSeconds * 1000;
  while (next < total && !stopping) {
    const now = nowMs();
    if (now > end + 1000) break;
    const due = Math.min(total, Math.floor(((now - started) * options.rate) / 1000) + 1);
    while (next < due) {
      const i = next++;
      dueAt[i] = started + (i * 1000) / options.rate;
      sentAt[i] = nowMs();
      publisher.publish(topicOf(i), String(base + i), { qos: 1 }, (err) => {
        if (err) {
          if (stats.errors++ < 5) log(`paced publish #${i}: ${err.message}`);
        } else stats.acked++;
      });
    }
    await sleep(1);
  }
  missed = total - next;
  await settle(async () => matched, next, options.idleMs, deadline);
  await stream.close();
  const result = {
    rate: options.rate,
    seconds: options.pacedSeconds,
    published: next,
    publishErrors: stats.errors,
    missed,
    received: matched,
    lost: next - matched,
    latencyMs: percentiles(fromPublish),
    fromDueMs: percentiles(fromDue),
  };
  if (foreign > 0) result.otherChanges = foreign;
  log(`paced: end at ${Math.round(nowMs() * 1000)} µs: ${JSON.stringify(result)}`);
  return result;
}

async function proxyReads(hubUrl, hubPool, token, options) {
  // A tiny Thing: one property, a JSON number.
  const server = createServer((req, res) => {
    if (req.method === "GET" && req.url === "/properties/temperature") {
      const body = "21.5";
      res.writeHead(200, { "content-type": "application/json", "content-length": body.length });
      res.end(body);
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address();
  const thingUrl = `http://127.0.0.1:${port}`;
  const id = `urn:hyperthings:bench:proxy-${port}`;
  const direct = new Pool(thingUrl, { connections: 1, pipelining: 1 });
  try {
    const td = {
      "@context": "https://www.w3.org/2022/wot/td/v1.1",
      id,
      title: "bench proxy thermometer",
      securityDefinitions: { nosec_sc: { scheme: "nosec" } },
      security: "nosec_sc",
      base: `${thingUrl}/`,
      properties: {
        temperature: {
          type: "number",
          readOnly: true,
          forms: [{ href: "properties/temperature", op: "readproperty", contentType: "application/json" }],
        },
        // The same reading, recorded at every read: a durable commit on each read's path.
        recorded: {
          type: "number",
          readOnly: true,
          "hyperthings:record": "every",
          forms: [{ href: "properties/temperature", op: "readproperty", contentType: "application/json" }],
        },
      },
    };
    const put = await hubPool.request({
      method: "PUT",
      path: thingPath(id),
      headers: { "content-type": "application/td+json", authorization: `Bearer ${token}` },
      body: JSON.stringify(td),
    });
    const putText = await put.body.text();
    if (put.statusCode !== 201) throw new Error(`registering the proxy Thing: ${put.statusCode} ${putText}`);
    const viaPath = `${thingPath(id)}/properties/temperature`;
    const recordedPath = `${thingPath(id)}/properties/recorded`;
    const headers = { authorization: `Bearer ${token}`, accept: "application/json" };
    let errors = 0;
    const readOnce = async (pool, path) => {
      const t0 = process.hrtime.bigint();
      const { statusCode, body } = await pool.request({ method: "GET", path, headers });
      const text = await body.text();
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (statusCode !== 200 || JSON.parse(text) !== 21.5) {
        if (errors++ < 5) log(`read ${path}: ${statusCode} ${text.slice(0, 200)}`);
      }
      return ms;
    };
    // Warm-up, then interleaved one at a time: both see the same machine at the same moments.
    for (let i = 0; i < Math.min(500, options.reads) && !stopping; i++) {
      await readOnce(direct, "/properties/temperature");
      await readOnce(hubPool, viaPath);
      await readOnce(hubPool, recordedPath);
    }
    errors = 0;
    const viaHub = [];
    const viaHubRecorded = [];
    const directly = [];
    const started = nowMs();
    log(`proxy: start at ${Math.round(started * 1000)} µs, ${options.reads} reads each`);
    for (let i = 0; i < options.reads && !stopping; i++) {
      directly.push(await readOnce(direct, "/properties/temperature"));
      viaHub.push(await readOnce(hubPool, viaPath));
      viaHubRecorded.push(await readOnce(hubPool, recordedPath));
    }
    const hub = percentiles(viaHub);
    const thing = percentiles(directly);
    const recorded = percentiles(viaHubRecorded);
    const result = {
      reads: viaHub.length,
      viaHubMs: hub,
      directMs: thing,
      addedMs: { p50: round(hub.p50 - thing.p50), p99: round(hub.p99 - thing.p99) },
      recorded: {
        viaHubMs: recorded,
        addedMs: { p50: round(recorded.p50 - thing.p50), p99: round(recorded.p99 - thing.p99) },
      },
      errors,
    };
    log(`proxy: end at ${Math.round(nowMs() * 1000)} µs: ${JSON.stringify(result)}`);
    return result;
  } finally {
    await direct.close().catch(() => {});
    await new Promise((resolve) => server.close(resolve));
  }
}

// ---------------------------------------------------------------------------------------------

async function main() {
  const options = parseOptions(process.argv.slice(2));
  const deadline = Date.now() + options.timeout * 1000;
  const problem = await brokerProblem();
  if (problem !== undefined) {
    log(`no MQTT broker at ${BROKER_URL}: ${problem}`);
    process.stdout.write(
      `${JSON.stringify({ bench: "mqtt", skipped: `no MQTT broker at ${BROKER_URL}: ${problem}` })}\n`,
    );
    return;
  }
  const loadBefore = round(loadavg()[0]);
  const run = randomBytes(6).toString("hex");
  const prefix = `hyperthings-bench/${run}`;
  const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-bench-mqtt-"));
  const token = `bench_${randomBytes(24).toString("base64url")}`;
  const clients = [];
  let hub;
  let pool;
  let cleaning;
  const cleanup = () =>
    (cleaning ??= (async () => {
      stopping = true;
      for (const client of clients) await client.endAsync(true).catch(() => {});
      if (pool) await pool.destroy().catch(() => {});
      let exit;
      if (hub)
        exit = await stopHub(hub, () => log("the hub did not exit within 20 s of SIGTERM: killing it"));
      rmSync(dataDir, { recursive: true, force: true });
      return exit;
    })());
  for (const signal of ["SIGINT", "SIGTERM"]) {
    process.once(signal, () => {
      log(`${signal}: stopping the hub`);
      cleanup().finally(() => process.exit(130));
    });
  }
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
      serveArgs: ["--mqtt-url", BROKER_URL, "--mqtt-prefix", prefix],
      // Auto-inventory listens under the run's prefix too: nothing else on the broker is touched.
      env: {
        HYPERTHINGS_MQTT_HOMIE_ROOT: `${prefix}/homie`,
        HYPERTHINGS_MQTT_HA_PREFIX: `${prefix}/homeassistant`,
      },
      timeoutMs: Math.min(30_000, deadline - Date.now()),
      echoStdout: true,
    });
    const url = await hub.url;
    const pid = hub.child.pid;
    pool = new Pool(url, { connections: 4, pipelining: 1, headersTimeout: 30_000, bodyTimeout: 30_000 });

    // Things, each with one numeric property.
    const ids = Array.from(
      { length: options.things },
      (_, i) => `urn:hyperthings:bench:mqtt-${run}-${String(i).padStart(6, "0")}`,
    );
    for (const id of ids) {
      const { statusCode, body } = await pool.request({
        method: "PUT",
        path: thingPath(id),
        headers: { "content-type": "application/td+json", authorization: `Bearer ${token}` },
        body: JSON.stringify(sensorTd(id)),
      });
      const text = await body.text();
      if (statusCode !== 201) throw new Error(`registering ${id}: ${statusCode} ${text.slice(0, 300)}`);
    }
    // The ids hold only `:`, `-` and alphanumerics: one topic level each, as they are.
    const gatewayTopics = ids.map((id) => `${prefix}/things/${id}/properties/value`);
    const passTopics = ids.map((id) => `${prefix}/passthrough/things/${id}/properties/value`);

    for (let p = 0; p < options.publishers; p++) {
      clients.push(await mqttClient(`publisher ${p}`, `bench-pub-${run}-${p}`));
    }
    const publishers = clients.slice();

    // 1a. Mosquitto's own pass-through: the same publishers to a plain QoS 1 subscriber.
    const subscriber = await mqttClient("subscriber", `bench-sub-${run}`);
    clients.push(subscriber);
    let passReceived = 0;
    subscriber.on("message", () => passReceived++);
    await subscriber.subscribeAsync(`${prefix}/passthrough/#`, { qos: 1 });
    const passthrough = await throughput(
      "passthrough",
      publishers,
      options,
      deadline,
      (i) => passTopics[i % passTopics.length],
      async () => passReceived,
    );
    await subscriber.unsubscribeAsync(`${prefix}/passthrough/#`);

    // 1b. The hub: each reading a durable Change, counted by the Log's end (/health lastSeq).
    const base = await lastSeq(pool);
    const ingest = await throughput(
      "ingest",
      publishers,
      options,
      deadline,
      (i) => gatewayTopics[i % gatewayTopics.length],
      async () => (await lastSeq(pool)) - base,
      pid,
    );
    // Let the hub drain what the broker still queues for it: until the Log stops growing.
    await settle(() => lastSeq(pool), Infinity, options.idleMs, deadline);

    // 2. Publish-to-/changes/stream latency at a paced rate; values distinct from phase 1.
    const pacedResult = await paced(
      publishers[0],
      url,
      options,
      deadline,
      (i) => gatewayTopics[i % gatewayTopics.length],
      1_000_000_000,
    );

    // 3. Property reads through the hub's HTTP proxy against reading the Thing directly.
    const proxy = await proxyReads(url, pool, token, options);

    for (const [phase, figures] of [
      ["passthrough", passthrough],
      ["ingest", ingest],
      ["paced", pacedResult],
    ]) {
      if (figures.lost > 0) {
        log(
          `${phase}: ${figures.lost} of ${figures.published} readings acknowledged by the broker never arrived ` +
            "(Mosquitto drops QoS 1 messages past max_queued_messages for a subscriber that falls behind)",
        );
      }
    }
    const ratio = passthrough.perSecond > 0 ? round(ingest.perSecond / passthrough.perSecond) : null;
    const aims = {
      ingestPerSecond: { aim: ">= 20000", value: ingest.perSecond, met: ingest.perSecond >= 20_000 },
      ratioToPassthrough: { aim: ">= 0.5", value: ratio, met: ratio !== null && ratio >= 0.5 },
      pacedP99Ms: {
        aim: "< 25",
        value: pacedResult.latencyMs.p99,
        met: pacedResult.lost === 0 && pacedResult.latencyMs.p99 !== null && pacedResult.latencyMs.p99 < 25,
      },
      proxyAddedP50Ms: { aim: "< 1", value: proxy.addedMs.p50, met: proxy.addedMs.p50 < 1 },
    };
    result = {
      bench: "mqtt",
      broker: BROKER_URL.replace(/\/\/[^@/]*@/, "//"),
      things: options.things,
      publishers: options.publishers,
      window: options.window,
      passthrough,
      ingest: { ...ingest, ratioToPassthrough: ratio },
      paced: pacedResult,
      proxy,
      aims,
      aimsMet: Object.values(aims).every((a) => a.met),
      rssPeakMiB: rssMiB(pid, "VmHWM"),
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
    result.passthrough.publishErrors +
    result.ingest.publishErrors +
    result.paced.publishErrors +
    result.proxy.errors;
  if (errors > 0) {
    log(`${errors} errors: the figures are not valid`);
    process.exitCode = 1;
  }
}

main().catch((err) => {
  log(`failed: ${err?.stack ?? err}`);
  process.exitCode = 1;
});
