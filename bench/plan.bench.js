#!/usr/bin/env node
// The plan benchmark: a release for N Things planned by a real hub (in-process, SQLite on disk,
// the HTTP server on a free port). N Things are registered with a reported value each; one
// release names every Thing by id, another selects them all with one graph filter. Measures
// the pure planner, the hub's plan (store reads + graph filter + planner) and GET
// /releases/{id}/plan, each as wall time and CPU time. Aim (issue 6): < 2 s for 10,000 Things.
// Prints ONE JSON line on stdout; everything else goes to stderr. See bench/README.md.
import { mkdtempSync, rmSync } from "node:fs";
import { availableParallelism, loadavg, tmpdir } from "node:os";
import { join } from "node:path";

const USAGE = `usage: node bench/plan.bench.js [--things N] [--rounds N]
  --things N   Things in the release (default 10000)
  --rounds N   plans measured per variant; the best and the median are reported (default 3)
Other flags (given by bench/run.js to every bench) are ignored.`;

function parseOptions(argv) {
  const options = { things: 10_000, rounds: 3 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === "--help" || flag === "-h") {
      process.stderr.write(`${USAGE}\n`);
      process.exit(0);
    }
    const key = { "--things": "things", "--rounds": "rounds" }[flag];
    if (key === undefined) continue;
    const value = Number(argv[++i]);
    if (!Number.isInteger(value) || value < 1) {
      process.stderr.write(`${flag} needs a positive whole number\n${USAGE}\n`);
      process.exit(2);
    }
    options[key] = value;
  }
  return options;
}

const log = (message) => process.stderr.write(`[plan] ${message}\n`);

/** Wall and CPU milliseconds of one call. */
async function measure(run) {
  const cpu = process.cpuUsage();
  const start = performance.now();
  const result = await run();
  const wallMs = performance.now() - start;
  const used = process.cpuUsage(cpu);
  return { result, wallMs, cpuMs: (used.user + used.system) / 1000 };
}

async function rounds(n, run) {
  const samples = [];
  let result;
  for (let i = 0; i < n; i++) {
    const m = await measure(run);
    result = m.result;
    samples.push(m);
  }
  const byWall = [...samples].sort((a, b) => a.wallMs - b.wallMs);
  const round = (x) => Math.round(x * 10) / 10;
  return {
    result,
    figures: {
      bestMs: round(byWall[0].wallMs),
      medianMs: round(byWall[Math.floor(byWall.length / 2)].wallMs),
      cpuMs: round(Math.min(...samples.map((s) => s.cpuMs))),
    },
  };
}

function td(i) {
  return {
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    id: `urn:bench:plan:lamp:${i}`,
    title: "Bench lamp",
    securityDefinitions: { nosec_sc: { scheme: "nosec" } },
    security: "nosec_sc",
    base: "http://127.0.0.1:9/",
    properties: {
      brightness: { type: "integer", minimum: 0, maximum: 100, forms: [{ href: "brightness" }] },
      model: { type: "string", readOnly: true, forms: [{ href: "model" }] },
    },
    actions: { identify: { input: { type: "integer", minimum: 1 }, forms: [{ href: "identify" }] } },
  };
}

async function main() {
  const options = parseOptions(process.argv.slice(2));
  const { startHub, createLogger } = await import("../dist/cli/index.js");
  const { loadConfig } = await import("../dist/hub/index.js");
  const { planRelease, sealRelease, RELEASE_FORMAT } = await import("../dist/core/index.js");
  const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-plan-bench-"));
  const config = loadConfig({ port: 0, logLevel: "silent", observe: false, dataDir }, {});
  const running = await startHub(config, { logger: createLogger("silent") });
  const { hub } = running;
  const cause = { actor: "bench", via: "bench" };
  try {
    log(`registering ${options.things} Things, each with a reported value`);
    const CHUNK = 1000;
    for (let from = 0; from < options.things; from += CHUNK) {
      const ids = [];
      for (let i = from; i < Math.min(options.things, from + CHUNK); i++) ids.push(i);
      await Promise.all(ids.map((i) => hub.directory.put(td(i).id, td(i), cause)));
      await Promise.all(
        ids.map((i) =>
          hub.ingest(
            td(i).id,
            [{ kind: "reported", affordance: "brightness", value: i % 3 === 0 ? 40 : 10 }],
            cause,
          ),
        ),
      );
    }
    const provenance = { sources: [], builder: "bench", builtAt: new Date().toISOString() };
    const byId = sealRelease(
      {
        format: RELEASE_FORMAT,
        name: "bench-by-id",
        drift: { policy: "record" },
        steps: Array.from({ length: options.things }, (_, i) => ({
          select: { id: td(i).id },
          properties: { brightness: 40 },
          actions: [{ name: "identify", input: 2 }],
        })),
      },
      provenance,
    );
    const byFilter = sealRelease(
      {
        format: RELEASE_FORMAT,
        name: "bench-by-filter",
        drift: { policy: "record" },
        steps: [{ select: { filter: 'td.title = "Bench lamp"' }, properties: { brightness: 40 } }],
      },
      provenance,
    );
    const stored = await measure(() => hub.releases.store(byId, cause));
    await hub.releases.store(byFilter, cause);

    // The pure planner alone, on what the hub would hand it.
    const things = Array.from({ length: options.things }, (_, i) => ({
      id: td(i).id,
      td: td(i),
      state: { brightness: i % 3 === 0 ? 40 : 10 },
      reachable: true,
    }));
    const pure = await rounds(options.rounds, () => planRelease(byId, things));
    const hubById = await rounds(options.rounds, () => hub.releases.plan(byId.id));
    const hubByFilter = await rounds(options.rounds, () => hub.releases.plan(byFilter.id));
    const http = await rounds(options.rounds, async () => {
      const response = await fetch(`${running.url}/releases/${byId.id}/plan`);
      if (!response.ok) throw new Error(`GET plan answered ${response.status}`);
      return response.json();
    });
    const summary = hubById.result.summary;
    if (summary.things !== options.things || hubByFilter.result.summary.things !== options.things) {
      throw new Error(
        `the plans cover ${summary.things} and ${hubByFilter.result.summary.things} Things, not ${options.things}`,
      );
    }
    const figures = {
      bench: "plan",
      things: options.things,
      rounds: options.rounds,
      storeReleaseMs: Math.round(stored.wallMs),
      pure: pure.figures,
      hubById: hubById.figures,
      hubByFilter: hubByFilter.figures,
      http: { ...http.figures, bytes: JSON.stringify(http.result).length },
      plan: summary,
      aimMs: 2000,
      withinAim: hubById.figures.medianMs < 2000 && http.figures.medianMs < 2000,
      machine: { cpus: availableParallelism(), load1: Math.round(loadavg()[0] * 100) / 100 },
    };
    process.stdout.write(`${JSON.stringify(figures)}\n`);
  } finally {
    await running.close();
    rmSync(dataDir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  process.stderr.write(`[plan] failed: ${err?.stack ?? err}\n`);
  process.exit(1);
});
