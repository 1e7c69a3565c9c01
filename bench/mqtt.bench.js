#!/usr/bin/env node
// The MQTT and proxy benchmark: a real hub as a child process on the machine's Mosquitto
// (HYPERTHINGS_TEST_MQTT_URL, default mqtt://127.0.0.1:1883). Measures (1) readings ingested as
// durable Changes through the broker, side by side with Mosquitto's own pass-through to a plain
// subscriber, (2) publish-to-/changes/stream latency at a paced rate, (3) property reads proxied
// through the hub over HTTP against reading the Thing directly.
// Prints ONE JSON line on stdout; everything else goes to stderr. See bench/README.md.
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, rmSync } from "node:fs";
import { connect as netConnect } from "node:net";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { format } from "node:util";
import { Worker, isMainThread, parentPort, workerData } from "node:worker_threads";
import { MqttClient } from "mqtt";
import { Servient } from "@node-wot/core";
// A CommonJS package whose named exports Node's loader cannot see: taken from its module.exports.
import wotHttp from "@node-wot/binding-http";
import { Pool, request as undiciRequest } from "undici";
import { cpuMs, nearestRank, rssMiB, HUB_NODE_ARGS, hubNodeArgs, startHub, stopHub } from "./support.js";

const { HttpClientFactory, HttpServer } = wotHttp;

const BROKER_URL = process.env.HYPERTHINGS_TEST_MQTT_URL || "mqtt://127.0.0.1:1883";

// ---------------------------------------------------------------------------------------------
// Options

const USAGE = `usage: node bench/mqtt.bench.js [--things N] [--readings N] [--publishers N] [--window N]
       [--outstanding N] [--rate N] [--paced-seconds N] [--reads N] [--idle-ms N] [--timeout SECONDS]
       [--hub-node-args "<node flags for the hub>"]
  --things N          Things registered, each with one numeric property (default 100)
  --readings N        readings published in the throughput phase, hub and pass-through each (default 200000)
  --publishers N      publishing MQTT connections (default 1: Mosquitto reads one packet per
                      connection per turn of its loop, so with more publishers than receivers the
                      receiver's PUBACKs fall behind and the broker drops QoS 1 messages for it)
  --window N          QoS 1 publishes in flight per publisher (default 512)
  --outstanding N     readings published and not yet received, at most, all publishers together
                      (default 4000: below the receiver's Receive Maximum 4096 + Mosquitto's
                      max_queued_messages 1000, so that the broker never drops one)
  --rate N            readings/s in the paced latency phase (default 5000)
  --paced-seconds N   length of the paced phase (default 10)
  --reads N           property reads, through the hub and directly, each (default 5000)
  --idle-ms N         a phase ends when nothing more arrived for this long (default 3000)
  --timeout SECONDS   the whole run (default 600)
  --hub-node-args     node flags for the hub only, added to bench/support.js HUB_NODE_ARGS, e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof"
The broker: HYPERTHINGS_TEST_MQTT_URL (default mqtt://127.0.0.1:1883); unreachable → "skipped".`;

function parseOptions(argv) {
  const options = {
    things: 100,
    readings: 200_000,
    publishers: 1,
    window: 512,
    outstanding: 4_000,
    rate: 5_000,
    pacedSeconds: 10,
    reads: 5_000,
    idleMs: 3_000,
    timeout: 600,
    hubNodeArgs: [...HUB_NODE_ARGS],
  };
  const integers = {
    "--things": "things",
    "--readings": "readings",
    "--publishers": "publishers",
    "--window": "window",
    "--outstanding": "outstanding",
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
  const within = (key, lo, hi) => {
    if (options[key] < lo || options[key] > hi) throw new Error(`--${key} must be ${lo}..${hi}`);
  };
  within("things", 1, 100_000);
  within("readings", 1, 10_000_000);
  within("publishers", 1, 64);
  within("window", 1, 10_000);
  within("outstanding", 1, 1_000_000);
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
/** The wall clock in ms, to the µs: comparable across threads and processes. */
const wallMs = () => performance.timeOrigin + performance.now();

/** Nearest-rank percentiles of latencies in ms. */
function percentiles(values) {
  const sorted = Float64Array.from(values).sort();
  const at = (q) => nearestRank(sorted, q);
  return { count: sorted.length, p50: at(0.5), p90: at(0.9), p99: at(0.99), max: at(1) };
}

const thingPath = (id) => `/things/${encodeURIComponent(id).replace(/%3A/gi, ":")}`;

// ---------------------------------------------------------------------------------------------
// MQTT clients of our own: mqtt.js, MQTT 3.1.1, TCP_NODELAY on the socket (PITFALLS)

/**
 * The hub's client asks for this MQTT 5 Receive Maximum (src/api/mqtt/external-broker.ts); the
 * pass-through subscriber asks for the same, so that the broker treats both receivers alike.
 */
const RECEIVE_MAXIMUM = 4_096;

/** `protocolVersion` 4 (MQTT 3.1.1) or 5 (then with RECEIVE_MAXIMUM). */
function mqttClient(name, clientId, protocolVersion = 4) {
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
      protocolVersion,
      ...(protocolVersion === 5 ? { properties: { receiveMaximum: RECEIVE_MAXIMUM } } : {}),
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
 * Publishes `total` QoS 1 readings over `publishers` (round robin, each with at most `window`
 * unacknowledged) as fast as the broker acknowledges them, but with at most `outstanding`
 * readings published and not yet received end to end (`received()`): the broker's queue for the
 * receiver never overflows (Mosquitto drops QoS 1 messages past `max_queued_messages`), so what
 * is measured is the rate the receiver sustains. `wake()` is called when `received()` grew.
 * `topicOf(i)` and `payloadOf(i)` make the i-th reading.
 */
function flowPublish({ publishers, total, window, outstanding, topicOf, payloadOf, received, stats }) {
  let next = 0;
  let settled = 0;
  let turn = 0;
  const inFlight = new Array(publishers.length).fill(0);
  let finish;
  const done = new Promise((resolve) => (finish = resolve));
  const pump = () => {
    let blocked = 0;
    while (next < total && !stopping && blocked < publishers.length) {
      if (next - received() >= outstanding) return;
      const p = turn;
      turn = (turn + 1) % publishers.length;
      if (inFlight[p] >= window) {
        blocked++;
        continue;
      }
      blocked = 0;
      const i = next++;
      inFlight[p]++;
      publishers[p].publish(topicOf(i), payloadOf(i), { qos: 1 }, (err) => {
        inFlight[p]--;
        settled++;
        if (err) {
          if (stats.errors++ < 5) log(`publish #${i}: ${err.message}`);
        } else stats.acked++;
        pump();
      });
    }
    if ((next >= total || stopping) && settled === next) finish();
  };
  pump();
  return { done, wake: pump };
}

/**
 * Mosquitto's pass-through receiver, in a thread of its own (as the hub is a process of its own):
 * a plain mqtt.js subscriber (MQTT 5, the hub's Receive Maximum, PUBACK as each message arrives)
 * that counts the messages on `filter` into a shared counter and says so every 256 messages and
 * every 5 ms.
 */
async function startSubscriberThread(filter, clientId, { latencies = false } = {}) {
  const counter = new Int32Array(new SharedArrayBuffer(4));
  const worker = new Worker(new URL(import.meta.url), {
    workerData: { role: "subscriber", filter, clientId, counter, latencies, brokerUrl: BROKER_URL },
    stderr: false,
  });
  const listeners = new Set();
  let measured = [];
  const ready = new Promise((resolve, reject) => {
    worker.on("message", (message) => {
      if (message === "ready") resolve();
      else if (Array.isArray(message)) measured = message;
      else for (const listener of listeners) listener();
    });
    worker.once("error", reject);
    worker.once("exit", (code) => reject(new Error(`the subscriber thread exited (${code})`)));
  });
  await ready;
  return {
    count: () => Atomics.load(counter, 0),
    onGrowth: (listener) => listeners.add(listener),
    offGrowth: (listener) => listeners.delete(listener),
    /** With `latencies`: ms from each message's publish (its payload: the wall clock then) to its arrival. */
    latencies: () => measured,
    close: async () => {
      worker.postMessage("stop");
      await new Promise((resolve) => {
        const timer = setTimeout(() => worker.terminate().then(resolve, resolve), 5_000);
        worker.once("exit", () => {
          clearTimeout(timer);
          resolve();
        });
      });
    },
  };
}

/** The subscriber thread's body (see startSubscriberThread). */
async function subscriberThread({ filter, clientId, counter, latencies }) {
  const client = await mqttClient("subscriber", clientId, 5);
  let told = 0;
  let count = 0;
  const measured = [];
  client.on("message", (_topic, payload) => {
    if (latencies) measured.push(wallMs() - Number(payload.toString()));
    count++;
    Atomics.store(counter, 0, count);
    if (count - told >= 256) {
      told = count;
      parentPort.postMessage(count);
    }
  });
  const timer = setInterval(() => {
    if (count !== told) {
      told = count;
      parentPort.postMessage(count);
    }
  }, 5);
  await client.subscribeAsync(filter, { qos: 1 });
  parentPort.postMessage("ready");
  parentPort.once("message", async () => {
    clearInterval(timer);
    if (latencies) parentPort.postMessage(measured);
    await client.endAsync(true).catch(() => {});
    process.exit(0);
  });
}

/** The broker's process, to read its CPU time: HYPERTHINGS_BENCH_BROKER_PID, else the one `mosquitto` running here. */
function brokerPid() {
  const given = process.env.HYPERTHINGS_BENCH_BROKER_PID;
  if (given !== undefined && /^\d+$/.test(given)) return Number(given);
  const host = new URL(BROKER_URL).hostname;
  if (host !== "127.0.0.1" && host !== "localhost" && host !== "[::1]") return undefined;
  const found = [];
  for (const entry of readdirSync("/proc")) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, "utf8").trim() === "mosquitto") found.push(Number(entry));
    } catch {
      // gone, or not ours to read
    }
  }
  return found.length === 1 ? found[0] : undefined;
}

/** CPU time of the hub, the broker and this process (all threads), to take differences of, in ms. */
function cpuNow(hubPid, brokerPidValue) {
  const own = process.cpuUsage();
  let broker = null;
  if (brokerPidValue !== undefined) {
    try {
      broker = cpuMs(brokerPidValue);
    } catch {
      broker = null;
    }
  }
  return { hub: hubPid ? cpuMs(hubPid) : null, broker, bench: (own.user + own.system) / 1000 };
}

/** Per reading (µs) and share of one core (%) of each process between two cpuNow() readings. */
function cpuFigures(before, after, wallMs, readings) {
  const figures = {};
  for (const who of ["hub", "broker", "bench"]) {
    if (before[who] === null || after[who] === null) continue;
    const ms = after[who] - before[who];
    figures[`${who}CpuUs`] = readings > 0 ? Math.round((ms * 1000) / readings) : null;
    figures[`${who}CpuPct`] = wallMs > 0 ? Math.round((ms * 100) / wallMs) : null;
  }
  return figures;
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

/**
 * The Log's growth since `base`, from `GET /health` (lastSeq) asked one at a time every
 * `intervalMs`: the hub's receiver, as startSubscriberThread is the pass-through's.
 */
function startLogGrowth(pool, base, intervalMs = 10) {
  let count = 0;
  let running = true;
  let failure;
  const listeners = new Set();
  const loop = (async () => {
    while (running && !stopping) {
      try {
        const n = (await lastSeq(pool)) - base;
        if (n > count) {
          count = n;
          for (const listener of listeners) listener();
        }
      } catch (err) {
        failure = err;
        return;
      }
      await sleep(intervalMs);
    }
  })();
  return {
    count: () => {
      if (failure !== undefined) throw failure;
      return count;
    },
    onGrowth: (listener) => listeners.add(listener),
    offGrowth: (listener) => listeners.delete(listener),
    close: async () => {
      running = false;
      await loop;
    },
  };
}

/**
 * One throughput phase: `options.readings` readings through `publishers` to `receiver`, flow
 * controlled end to end (flowPublish), until all arrived or nothing arrived for `idleMs`.
 */
async function throughput(kind, { publishers, options, deadline, topicOf, receiver, pids }) {
  const stats = { acked: 0, errors: 0 };
  const timeline = [];
  const payloadOf = (i) => String(i);
  const cpuBefore = cpuNow(pids.hub, pids.broker);
  const started = nowMs();
  log(`${kind}: start at ${Math.round(started * 1000)} µs, ${options.readings} readings`);
  let publishedAt = null;
  let blockedSamples = 0;
  let samples = 0;
  const flow = flowPublish({
    publishers,
    total: options.readings,
    window: options.window,
    outstanding: options.outstanding,
    topicOf,
    payloadOf,
    received: receiver.count,
    stats,
  });
  receiver.onGrowth(flow.wake);
  const publishing = flow.done.then(() => (publishedAt = nowMs()));
  // Sample the count while the readings flow, then until it settles.
  let sampling = true;
  const sampler = (async () => {
    while (sampling && !stopping) {
      const n = receiver.count();
      timeline.push([nowMs() - started, n]);
      samples++;
      if (publishedAt === null && stats.acked + stats.errors - n >= options.outstanding * 0.9)
        blockedSamples++;
      await sleep(50);
    }
  })();
  await publishing;
  const { count: received, lastGrowth } = await settle(
    async () => receiver.count(),
    options.readings,
    options.idleMs,
    deadline,
    5,
  );
  sampling = false;
  await sampler;
  receiver.offGrowth(flow.wake);
  timeline.push([lastGrowth - started, received]);
  const wallMs = lastGrowth - started;
  const result = {
    published: stats.acked,
    publishErrors: stats.errors,
    received,
    lost: stats.acked - received,
    publishPerSecond: Math.round((stats.acked * 1000) / (publishedAt - started)),
    perSecond: wallMs > 0 ? Math.round((received * 1000) / wallMs) : null,
    sustainedPerSecond: sustained(timeline, received),
    seconds: round(wallMs / 1000),
    // Share of the samples in which the publishers waited for the receiver (the window was full).
    receiverBoundPct: samples > 0 ? Math.round((blockedSamples * 100) / samples) : null,
    ...cpuFigures(cpuBefore, cpuNow(pids.hub, pids.broker), wallMs, received),
  };
  log(`${kind}: end at ${Math.round(nowMs() * 1000)} µs: ${JSON.stringify(result)}`);
  return result;
}

/**
 * An open loop: `options.rate` QoS 1 publishes a second for `options.pacedSeconds` from `started`,
 * whatever the answers do; `make(i)` gives the i-th's [topic, payload]. Returns how many were
 * published (those still due when the time was up are not: the loop was blocked).
 */
async function publishPaced(publisher, options, started, stats, make) {
  const total = options.rate * options.pacedSeconds;
  let next = 0;
  const end = started + options.pacedSeconds * 1000;
  while (next < total && !stopping) {
    const now = nowMs();
    if (now > end + 1000) break;
    const due = Math.min(total, Math.floor(((now - started) * options.rate) / 1000) + 1);
    while (next < due) {
      const i = next++;
      const [topic, payload] = make(i);
      publisher.publish(topic, payload, { qos: 1 }, (err) => {
        if (err) {
          if (stats.errors++ < 5) log(`paced publish #${i}: ${err.message}`);
        } else stats.acked++;
      });
    }
    await sleep(1);
  }
  return next;
}

/**
 * The broker's own latency at the paced rate: the same publisher and loop to a plain subscriber
 * thread, each payload the wall clock at its publish. The hub's figures at the same rate are read
 * against it: on a busy machine every process waits for a CPU, the broker and the bench too.
 */
async function pacedPassthrough(publisher, options, deadline, topicOf, filter, clientId) {
  const subscriber = await startSubscriberThread(filter, clientId, { latencies: true });
  const stats = { acked: 0, errors: 0 };
  let published;
  try {
    const started = nowMs();
    log(`paced passthrough: start at ${Math.round(started * 1000)} µs`);
    published = await publishPaced(publisher, options, started, stats, (i) => [
      topicOf(i),
      wallMs().toFixed(3),
    ]);
    await settle(async () => subscriber.count(), published, options.idleMs, deadline);
  } finally {
    await subscriber.close();
  }
  const latencies = subscriber.latencies();
  const result = {
    published,
    publishErrors: stats.errors,
    received: latencies.length,
    lost: published - latencies.length,
    latencyMs: percentiles(latencies),
  };
  log(`paced passthrough: end at ${Math.round(nowMs() * 1000)} µs: ${JSON.stringify(result)}`);
  return result;
}

async function paced(publisher, hubUrl, options, deadline, topicOf, base) {
  const total = options.rate * options.pacedSeconds;
  const sentAt = new Float64Array(total);
  const dueAt = new Float64Array(total);
  const fromPublish = [];
  const fromDue = [];
  // Publish to the hub clock's stamp at ingest (the HLC's wall part, ms): MQTT and the gateway's
  // batching; the rest of `latencyMs` is the commit, the Bus and the stream.
  const toStamp = [];
  const wallOffset = performance.timeOrigin + performance.now() - nowMs();
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
    const stamped = Number.parseInt(String(change.hlc).slice(0, 12), 16);
    if (Number.isFinite(stamped)) toStamp.push(stamped - (sentAt[i] + wallOffset));
    sentAt[i] = 0;
    matched++;
  });
  const stats = { acked: 0, errors: 0 };
  let missed = 0;
  const started = nowMs();
  log(`paced: start at ${Math.round(started * 1000)} µs, ${options.rate}/s for ${options.pacedSeconds} s`);
  const next = await publishPaced(publisher, options, started, stats, (i) => {
    dueAt[i] = started + (i * 1000) / options.rate;
    sentAt[i] = nowMs();
    return [topicOf(i), String(base + i)];
  });
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
    toIngestMs: percentiles(toStamp),
  };
  if (foreign > 0) result.otherChanges = foreign;
  log(`paced: end at ${Math.round(nowMs() * 1000)} µs: ${JSON.stringify(result)}`);
  return result;
}

/**
 * A node-wot servient exposing a thermometer over HTTP (port 0, `baseUri` on loopback: PITFALLS),
 * whose `temperature` and `recorded` properties both read `value()`.
 */
async function startWotThing(value) {
  const server = new HttpServer({ port: 0, address: "127.0.0.1" });
  const servient = new Servient();
  servient.addServer(server);
  const wot = await servient.start();
  Object.assign(server, { baseUri: `http://127.0.0.1:${server.getPort()}` });
  const id = `urn:hyperthings:bench:wot-thermometer-${randomBytes(4).toString("hex")}`;
  const thing = await wot.produce({
    id,
    title: "benchthermometer",
    properties: {
      temperature: { type: "number", readOnly: true },
      recorded: { type: "number", readOnly: true },
    },
  });
  thing.setPropertyReadHandler("temperature", async () => value());
  thing.setPropertyReadHandler("recorded", async () => value());
  await thing.expose();
  return { id, td: thing.getThingDescription(), stop: () => servient.shutdown() };
}

/** A node-wot client (HTTP) that consumes `td`, with a bearer token for the Things in `credentials`. */
async function startWotClient(credentials = {}) {
  const servient = new Servient();
  servient.addClientFactory(new HttpClientFactory());
  servient.addCredentials(credentials);
  const wot = await servient.start();
  return { consume: (td) => wot.consume(td), stop: () => servient.shutdown() };
}

async function proxyReads(hubUrl, hubPool, token, options, hubPid) {
  const VALUE = 21.5;
  const thing = await startWotThing(() => VALUE);
  const client = await startWotClient({ [thing.id]: { token } });
  try {
    // The hub manages the node-wot Thing by its own TD; `recorded` is recorded at every read.
    const td = structuredClone(thing.td);
    td.properties.recorded["hyperthings:record"] = "every";
    const put = await hubPool.request({
      method: "PUT",
      path: thingPath(thing.id),
      headers: { "content-type": "application/td+json", authorization: `Bearer ${token}` },
      body: JSON.stringify(td),
    });
    const putText = await put.body.text();
    if (put.statusCode !== 201)
      throw new Error(`registering the node-wot Thing: ${put.statusCode} ${putText}`);
    const proxied = await hubPool.request({
      method: "GET",
      path: `${thingPath(thing.id)}/proxy`,
      headers: { authorization: `Bearer ${token}` },
    });
    const proxyTd = await proxied.body.json();
    if (proxied.statusCode !== 200) throw new Error(`the proxy TD: ${proxied.statusCode}`);
    // The same node-wot client reads the Thing directly (its own TD) and through the hub (the proxy TD).
    const direct = await client.consume(thing.td);
    const viaHub = await client.consume(proxyTd);
    let errors = 0;
    const readOnce = async (consumed, name) => {
      const t0 = process.hrtime.bigint();
      let value;
      try {
        value = await (await consumed.readProperty(name)).value();
      } catch (err) {
        value = err;
      }
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (value !== VALUE && errors++ < 5) log(`read ${name}: ${value?.message ?? JSON.stringify(value)}`);
      return ms;
    };
    // Warm-up; then two passes, each alternating one direct read with one through the hub, so that
    // both see the same machine at the same moments: `temperature` (its value is already the
    // latest in the Log: nothing to record), then `recorded` (a Change appended at every read,
    // whose commit follows the answer) — apart, so that one's recording does not land on the other.
    for (let i = 0; i < Math.min(500, options.reads) && !stopping; i++) {
      await readOnce(direct, "temperature");
      await readOnce(viaHub, "temperature");
      await readOnce(viaHub, "recorded");
    }
    errors = 0;
    const pass = async (name) => {
      const viaHubMs = [];
      const directMs = [];
      const cpuBefore = hubPid ? cpuMs(hubPid) : 0;
      log(`proxy ${name}: start at ${Math.round(nowMs() * 1000)} µs`);
      for (let i = 0; i < options.reads && !stopping; i++) {
        directMs.push(await readOnce(direct, "temperature"));
        viaHubMs.push(await readOnce(viaHub, name));
      }
      log(`proxy ${name}: end at ${Math.round(nowMs() * 1000)} µs`);
      const hub = percentiles(viaHubMs);
      const own = percentiles(directMs);
      return {
        viaHubMs: hub,
        directMs: own,
        addedMs: { p50: round(hub.p50 - own.p50), p99: round(hub.p99 - own.p99) },
        ...(hubPid && {
          hubCpuUsPerRead: Math.round(((cpuMs(hubPid) - cpuBefore) * 1000) / Math.max(1, viaHubMs.length)),
        }),
      };
    };
    const started = nowMs();
    log(`proxy: start at ${Math.round(started * 1000)} µs, ${options.reads} reads each`);
    const latest = await pass("temperature");
    const recorded = await pass("recorded");
    const result = {
      client: "node-wot",
      reads: latest.viaHubMs.count,
      ...latest,
      recorded,
      errors,
    };
    log(`proxy: end at ${Math.round(nowMs() * 1000)} µs: ${JSON.stringify(result)}`);
    return result;
  } finally {
    await client.stop().catch(() => {});
    await thing.stop().catch(() => {});
  }
}

// ---------------------------------------------------------------------------------------------

async function main() {
  // stdout carries the one JSON line: libraries (node-wot) that print go to stderr.
  for (const level of ["log", "info", "debug"]) {
    console[level] = (...args) => process.stderr.write(`${format(...args)}\n`);
  }
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

    const pids = { hub: pid, broker: brokerPid() };
    if (pids.broker === undefined) log("the broker's process is not known: no broker CPU figures");

    // 1a. Mosquitto's own pass-through: the same publishers to a plain QoS 1 subscriber.
    const subscriber = await startSubscriberThread(`${prefix}/passthrough/#`, `bench-sub-${run}`);
    let passthrough;
    try {
      passthrough = await throughput("passthrough", {
        publishers,
        options,
        deadline,
        topicOf: (i) => passTopics[i % passTopics.length],
        receiver: subscriber,
        pids: { hub: undefined, broker: pids.broker },
      });
    } finally {
      await subscriber.close();
    }

    // 1b. The hub: each reading a durable Change, counted by the Log's end (/health lastSeq).
    const growth = startLogGrowth(pool, await lastSeq(pool));
    let ingest;
    try {
      ingest = await throughput("ingest", {
        publishers,
        options,
        deadline,
        topicOf: (i) => gatewayTopics[i % gatewayTopics.length],
        receiver: growth,
        pids,
      });
    } finally {
      await growth.close();
    }
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
    pacedResult.passthrough = await pacedPassthrough(
      publishers[0],
      options,
      deadline,
      (i) => passTopics[i % passTopics.length],
      `${prefix}/passthrough/#`,
      `bench-sub-paced-${run}`,
    );

    // 3. Property reads through the hub's HTTP proxy against reading the Thing directly.
    const proxy = await proxyReads(url, pool, token, options, pid);

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
      // A rate with readings lost in the broker is not a sustained rate.
      ingestPerSecond: {
        aim: ">= 20000",
        value: ingest.perSecond,
        met: ingest.lost === 0 && ingest.perSecond >= 20_000,
      },
      ratioToPassthrough: {
        aim: ">= 0.5",
        value: ratio,
        met: ingest.lost === 0 && passthrough.lost === 0 && ratio !== null && ratio >= 0.5,
      },
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
      outstanding: options.outstanding,
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
    result.paced.passthrough.publishErrors +
    result.proxy.errors;
  if (errors > 0) {
    log(`${errors} errors: the figures are not valid`);
    process.exitCode = 1;
  }
}

if (isMainThread) {
  main().catch((err) => {
    log(`failed: ${err?.stack ?? err}`);
    process.exitCode = 1;
  });
} else if (workerData?.role === "subscriber") {
  subscriberThread(workerData).catch((err) => {
    log(`subscriber thread failed: ${err?.stack ?? err}`);
    process.exit(1);
  });
}
