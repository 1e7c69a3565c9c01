#!/usr/bin/env node
// The simulated fleet's own cost (issue 7): how long `--things` HTTP Things take to start (one
// server per kind, all copies by path), and the CPU one step of simulated time costs for all of
// them (the ticker's work, with no observers), and for serving reads of their properties over
// HTTP. So that benchmarks driving 10,000 Things know the simulator is not their bottleneck.
// Prints ONE JSON line on stdout; everything else goes to stderr. See bench/README.md.
import { existsSync } from "node:fs";
import { loadavg } from "node:os";
import { fileURLToPath } from "node:url";
import { Agent, request } from "undici";

const DIST = new URL("../dist/sim/index.js", import.meta.url);
const USAGE = `usage: node bench/sim.bench.js [--things N] [--ticks T] [--reads R]
  --things N   HTTP Things in the fleet (default 10000; whole copies of 7)
  --ticks T    measured steps of simulated time (default 40)
  --reads R    measured property reads over HTTP, 16 at a time (default 5000)
Other flags (given by npm run bench to every benchmark) are ignored.`;

function parseOptions(argv) {
  const options = { things: 10_000, ticks: 40, reads: 5_000 };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    if (flag === "--help" || flag === "-h") {
      process.stderr.write(`${USAGE}\n`);
      process.exit(0);
    }
    const name = flag.replace(/^--/, "");
    if (name in options) {
      const value = Number(argv[++i]);
      if (!Number.isInteger(value) || value < 1) {
        process.stderr.write(`sim.bench: ${flag} needs a whole number ≥ 1\n${USAGE}\n`);
        process.exit(2);
      }
      options[name] = value;
    } else if (flag.startsWith("--") && argv[i + 1] !== undefined && !argv[i + 1].startsWith("--")) i++;
  }
  return options;
}

const cpuMs = (since) => {
  const used = process.cpuUsage(since);
  return (used.user + used.system) / 1000;
};

async function main() {
  const options = parseOptions(process.argv.slice(2));
  if (!existsSync(fileURLToPath(DIST))) throw new Error("dist/ is missing: run `npm run build` first");
  const { Fleet } = await import(DIST.href);
  const scale = Math.max(1, Math.round(options.things / 7));
  const kinds = ["espresso", "switch", "containers", "service"];
  let cpu = process.cpuUsage();
  let wall = performance.now();
  const fleet = await Fleet.start({ scale, kinds, tickMs: 0 });
  const tds = fleet.descriptions();
  const start = { wallMs: performance.now() - wall, cpuMs: cpuMs(cpu) };
  process.stderr.write(`sim.bench: ${tds.length} Things up in ${start.wallMs.toFixed(0)} ms\n`);

  cpu = process.cpuUsage();
  for (let i = 0; i < options.ticks; i++) fleet.advance(0.25);
  const tickCpuMs = cpuMs(cpu) / options.ticks;

  // Reads of a property of Things picked in turn, over keep-alive connections.
  const agent = new Agent({ connections: 16 });
  const urls = tds.map((td) => {
    const [name] = Object.keys(td.properties ?? {});
    return new URL(`properties/${name}`, td.base).href;
  });
  let next = 0;
  let failed = 0;
  cpu = process.cpuUsage();
  wall = performance.now();
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next < options.reads) {
        const url = urls[next++ % urls.length];
        const { statusCode, body } = await request(url, { dispatcher: agent });
        await body.text();
        if (statusCode !== 200) failed++;
      }
    }),
  );
  const readWallMs = performance.now() - wall;
  const readCpuMs = cpuMs(cpu);
  await agent.close();
  await fleet.close();
  if (failed > 0) throw new Error(`${failed} reads failed`);
  process.stdout.write(
    `${JSON.stringify({
      bench: "sim",
      things: tds.length,
      startMs: Math.round(start.wallMs),
      startCpuMs: Math.round(start.cpuMs),
      tickCpuMs: Number(tickCpuMs.toFixed(2)),
      tickCpuUsPerThing: Number(((tickCpuMs * 1000) / tds.length).toFixed(3)),
      reads: options.reads,
      readsPerSecond: Math.round(options.reads / (readWallMs / 1000)),
      // Client and servers share this process: CPU per read covers both ends.
      readCpuUs: Number(((readCpuMs * 1000) / options.reads).toFixed(1)),
      rssMb: Math.round(process.memoryUsage().rss / 1e6),
      loadavg: loadavg()[0],
    })}\n`,
  );
}

main().catch((err) => {
  process.stderr.write(`sim.bench: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
