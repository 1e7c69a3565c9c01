#!/usr/bin/env node
// The UI benchmark: a real hub as a child process with N Things registered (typed, linked: hosts
// run containers, switches connect hosts), Debian's Chromium (playwright-core) on the built UI.
// It reads the performance measures the UI sets itself: `graph` (the graph view from its start
// to sigma's first frame, every Thing loaded; `graph-load` the TDs fetched, `graph-sigma` sigma's
// set-up, WebGL programs included) and `thing` (a Thing's page from its start to its description,
// values and timeline drawn). Prints ONE JSON line on stdout. See bench/README.md.
import { randomBytes } from "node:crypto";
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { loadavg, tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { Pool } from "undici";
import { startHub, stopHub } from "./support.js";

const ROOT = fileURLToPath(new URL("..", import.meta.url));
const CHROMIUM = process.env.HYPERTHINGS_CHROMIUM ?? "/usr/bin/chromium";

const USAGE = `usage: node bench/ui.bench.js [--things N] [--samples N] [--timeout SECONDS] [--gl MODE]
  --things N         Things to register (default 10000)
  --profile N        also print (stderr) the N functions with the most CPU in one graph load
  --gl MODE          Chromium's WebGL: angle (ANGLE on SwiftShader, the default) or off (--disable-gpu)
  --samples N        graph loads and Thing pages measured (default 5 and 10×N)
  --timeout SECONDS  the whole run (default 900)`;

/**
 * How Chromium draws WebGL without a GPU. `off` (--disable-gpu) falls back to SwiftShader through
 * the GPU process' legacy path; `angle` asks for ANGLE on SwiftShader explicitly (Vulkan backend).
 */
const GL_FLAGS = {
  angle: ["--use-angle=swiftshader", "--enable-unsafe-swiftshader", "--ignore-gpu-blocklist"],
  off: ["--disable-gpu"],
};

function parseOptions(argv) {
  const options = { things: 10_000, samples: 5, timeout: 900, gl: "angle", profile: 0 };
  for (let i = 0; i < argv.length; i += 2) {
    const flag = argv[i];
    if (flag === "--help" || flag === "-h") {
      process.stderr.write(`${USAGE}\n`);
      process.exit(0);
    }
    const value = argv[i + 1];
    if (flag === "--gl") {
      if (!(value in GL_FLAGS))
        throw new Error(`--gl must be one of ${Object.keys(GL_FLAGS).join(", ")}\n${USAGE}`);
      options.gl = value;
      continue;
    }
    const key = {
      "--things": "things",
      "--samples": "samples",
      "--timeout": "timeout",
      "--profile": "profile",
    }[flag];
    if (key === undefined || value === undefined || !/^\d+$/.test(value)) {
      throw new Error(`unknown flag or missing value: ${flag} ${value ?? ""}\n${USAGE}`);
    }
    options[key] = Number(value);
  }
  if (options.things < 1 || options.things > 200_000) throw new Error("--things must be 1..200000");
  if (options.samples < 1 || options.samples > 1000) throw new Error("--samples must be 1..1000");
  return options;
}

const log = (message) => process.stderr.write(`[bench ui] ${message}\n`);
const round = (x) => Math.round(x * 10) / 10;

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

function summary(values) {
  const sorted = [...values].sort((a, b) => a - b);
  return {
    median: round(percentile(sorted, 50)),
    p95: round(percentile(sorted, 95)),
    max: round(sorted.at(-1)),
  };
}

// ---------------------------------------------------------------------------------------------
// A fleet of N Things with types and links: every 20th a host, the next ones its containers
// (runsOn), every 100th a switch that connects the hosts around it; the rest are sensors.

function description(i, things) {
  const id = `urn:bench:ui:thing-${i}`;
  const hostOf = (n) => n - (n % 20);
  const common = {
    // The hub's own vocabulary (vocab/types.json), declared as the simulated fleet declares it.
    "@context": ["https://www.w3.org/2022/wot/td/v1.1", { ht: "https://hyperthings.dev/vocab#" }],
    id,
    securityDefinitions: { nosec_sc: { scheme: "nosec" } },
    security: "nosec_sc",
  };
  const base = `http://127.0.0.1:9/${i}/`;
  const number = (title, unit) => ({
    title,
    type: "number",
    unit,
    readOnly: true,
    observable: true,
    forms: [{ href: `${base}${title.toLowerCase()}` }],
  });
  if (i % 100 === 0) {
    const links = [];
    for (let h = i; h < Math.min(things, i + 100); h += 20)
      if (h !== i) links.push({ href: `urn:bench:ui:thing-${h}`, rel: "connects" });
    return {
      ...common,
      "@type": "ht:NetworkSwitch",
      title: `Switch ${i}`,
      links,
      properties: { load: number("Load", "percent") },
    };
  }
  if (i % 20 === 0) {
    return {
      ...common,
      "@type": "ht:Host",
      title: `Host ${i}`,
      properties: { cpu: number("Cpu", "percent") },
    };
  }
  if (i % 20 < 6) {
    return {
      ...common,
      "@type": "ht:Container",
      title: `Container ${i}`,
      links: [{ href: `urn:bench:ui:thing-${hostOf(i)}`, rel: "runsOn" }],
      properties: { memory: number("Memory", "MiB") },
      actions: { restart: { title: "Restart", forms: [{ href: `${base}restart` }] } },
    };
  }
  return {
    ...common,
    "@type": "saref:Sensor",
    title: `Sensor ${i}`,
    links: [{ href: `urn:bench:ui:thing-${hostOf(i)}`, rel: "partOf" }],
    properties: {
      temperature: number("Temperature", "Cel"),
      setpoint: {
        title: "Setpoint",
        type: "number",
        minimum: 5,
        maximum: 30,
        forms: [{ href: `${base}setpoint` }],
      },
    },
  };
}

// ---------------------------------------------------------------------------------------------
async function register(url, token, things) {
  const pool = new Pool(url, { connections: 8 });
  let next = 0;
  let errors = 0;
  const worker = async () => {
    while (next < things) {
      const i = next++;
      const td = description(i, things);
      const answer = await pool.request({
        method: "PUT",
        path: `/things/${encodeURIComponent(td.id).replace(/%3A/gi, ":")}`,
        headers: { "content-type": "application/td+json", authorization: `Bearer ${token}` },
        body: JSON.stringify(td),
      });
      await answer.body.dump();
      if (answer.statusCode !== 201) errors++;
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
  await pool.close();
  return errors;
}

// ---------------------------------------------------------------------------------------------

/** The duration of the UI's own measure `name`, once it is there. */
async function measure(page, name, timeoutMs) {
  await page.waitForFunction(
    `performance.getEntriesByName(${JSON.stringify(name)}, "measure").length > 0`,
    undefined,
    { timeout: timeoutMs },
  );
  return page.evaluate(`performance.getEntriesByName(${JSON.stringify(name)}, "measure").at(-1).duration`);
}

/** One graph load under Chromium's sampling profiler: the `top` functions by self time, to stderr. */
async function profileGraph(context, page, url, top, waitMs) {
  const cdp = await context.newCDPSession(page);
  await cdp.send("Profiler.enable");
  await cdp.send("Profiler.setSamplingInterval", { interval: 200 });
  await cdp.send("Profiler.start");
  await page.goto(`${url}/#/`);
  await page.reload();
  await measure(page, "graph", waitMs);
  const { profile } = await cdp.send("Profiler.stop");
  const interval = (profile.endTime - profile.startTime) / 1000 / Math.max(1, profile.samples.length);
  const self = new Map();
  for (const node of profile.nodes) {
    const { functionName, url: script, lineNumber } = node.callFrame;
    const key = `${functionName || "(anonymous)"} ${script.split("/").pop()}:${lineNumber + 1}`;
    self.set(key, (self.get(key) ?? 0) + (node.hitCount ?? 0) * interval);
  }
  const total = [...self.values()].reduce((a, b) => a + b, 0);
  // "(program)" is native time outside JavaScript: with WebGL, mostly the main thread waiting on the
  // GPU process (SwiftShader compiling and linking shaders behind getShaderParameter & co).
  log(`profile of one graph load: ${total.toFixed(0)} ms sampled; most self time:`);
  for (const [key, ms] of [...self].sort((a, b) => b[1] - a[1]).slice(0, top))
    log(`  ${ms.toFixed(1).padStart(8)} ms  ${key}`);
  await cdp.detach();
}

async function main() {
  const options = parseOptions(process.argv.slice(2));
  const deadline = Date.now() + options.timeout * 1000;
  if (!existsSync(CHROMIUM))
    throw new Error(`no Chromium at ${CHROMIUM} (apt-get install chromium, or set HYPERTHINGS_CHROMIUM)`);
  if (!existsSync(join(ROOT, "dist", "ui", "index.html")))
    throw new Error("the UI is not built: npm run build");
  const loadBefore = round(loadavg()[0]);
  const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-bench-ui-"));
  const userData = mkdtempSync(join(tmpdir(), "hyperthings-bench-chromium-"));
  const token = `bench_${randomBytes(24).toString("base64url")}`;
  let hub;
  let context;
  try {
    hub = startHub({
      dataDir,
      token,
      serveArgs: ["--no-observe", "--mqtt-port", "0"],
      timeoutMs: Math.min(30_000, deadline - Date.now()),
    });
    const url = await hub.url;
    log(`registering ${options.things} Things at ${url}`);
    const started = Date.now();
    const errors = await register(url, token, options.things);
    if (errors > 0) throw new Error(`${errors} registrations failed`);
    log(`registered in ${((Date.now() - started) / 1000).toFixed(1)} s; starting Chromium`);
    context = await chromium.launchPersistentContext(userData, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 860 },
      args: [
        "--no-sandbox",
        ...GL_FLAGS[options.gl],
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
      ],
    });
    await context.addInitScript(`sessionStorage.setItem("hyperthings.token", ${JSON.stringify(token)})`);
    const page = context.pages()[0] ?? (await context.newPage());
    const pageErrors = [];
    page.on("pageerror", (err) => pageErrors.push(err.message));
    const waitMs = Math.max(10_000, Math.min(120_000, deadline - Date.now()));

    // The graph: a fresh page load each time (the first one also warms Chromium's caches).
    const graph = [];
    const graphLoad = [];
    const graphSigma = [];
    const graphFromNavigation = [];
    for (let run = 0; run <= options.samples; run++) {
      // A full load each time: going to the same URL again would only be a same-document navigation.
      if (run === 0) await page.goto(`${url}/#/`);
      else await page.reload();
      const duration = await measure(page, "graph", waitMs);
      const sinceNavigation = await page.evaluate(
        `performance.getEntriesByName("graph-rendered")[0].startTime`,
      );
      const rendered = await page.getAttribute('[data-testid="graph"]', "data-rendered");
      if (Number(rendered) !== options.things)
        throw new Error(`the graph drew ${rendered} Things, not ${options.things}`);
      if (run === 0) continue;
      graph.push(duration);
      graphSigma.push(
        await page.evaluate(`performance.getEntriesByName("graph-sigma", "measure")[0].duration`),
      );
      graphLoad.push(
        await page.evaluate(`performance.getEntriesByName("graph-load", "measure")[0].duration`),
      );
      graphFromNavigation.push(sinceNavigation);
    }

    if (options.profile > 0) await profileGraph(context, page, url, options.profile, waitMs);

    // Thing pages: navigations inside the app (hash changes), as a person clicks a node.
    const thing = [];
    const pages = options.samples * 10;
    for (let n = 0; n < pages; n++) {
      const i = Math.floor((n * 7919) % options.things);
      const id = `urn:bench:ui:thing-${i}`;
      await page.evaluate(
        `performance.clearMeasures("thing"); location.hash = ${JSON.stringify(`#/thing/${encodeURIComponent(id)}`)}`,
      );
      thing.push(await measure(page, "thing", waitMs));
    }
    if (pageErrors.length > 0) throw new Error(`errors in the page: ${pageErrors.join("; ")}`);
    const result = {
      bench: "ui",
      things: options.things,
      gl: options.gl,
      graph: {
        ...summary(graph),
        load: summary(graphLoad),
        sigma: summary(graphSigma),
        fromNavigation: summary(graphFromNavigation),
        samples: graph.length,
        aimMs: 2000,
      },
      thingPage: { ...summary(thing), samples: thing.length, aimMs: 300 },
      loadBefore,
      loadAfter: round(loadavg()[0]),
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await context?.close().catch(() => {});
    if (hub) await stopHub(hub);
    rmSync(dataDir, { recursive: true, force: true });
    rmSync(userData, { recursive: true, force: true });
  }
}

main().catch((err) => {
  log(`failed: ${err?.stack ?? err}`);
  process.exitCode = 1;
});
