// `things demo` as a person runs it: a child process whose output says where things are. It comes
// up with the hub and the fleet, serves the TDs, observes the Things, and stops cleanly on SIGINT.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import { minimalTd } from "./support/test-hub.js";
import { simThingId } from "../src/sim/index.js";
import { firstData } from "./support/sse.js";
import { OUTPUT_BOUND_MS, runThings as run } from "./support/things-process.js";

/**
 * The first Change of a Thing of one kind (and of one affordance, if given), from the hub's SSE
 * change stream (bounded in time).
 */
async function firstChange(
  hub: string,
  thing: string,
  kind: string,
  affordance?: string,
): Promise<Record<string, unknown>> {
  const query = new URLSearchParams({ thing, kind });
  const response = await fetch(`${hub}/changes/stream?${query.toString()}`, {
    signal: AbortSignal.timeout(OUTPUT_BOUND_MS),
  });
  const data = await firstData(
    response,
    (change) => affordance === undefined || (change as { affordance?: string }).affordance === affordance,
  );
  return data as Record<string, unknown>;
}

describe("things demo", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-demo-"));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it("comes up with the fleet registered and observed, prints the UI's URL and where the admin token is, and stops on SIGINT", async () => {
    const demo = run(["demo", "--port", "0", "--data", dataDir, "--chaos", "0"]);
    try {
      const [, count] = await demo.waitFor(
        /demo: (\d+) simulated Things \(\1 registered\): \d+ over HTTP, 1 over CoAP, 1 over SNMP/,
      );
      expect(Number(count)).toBeGreaterThan(0);
      const tokenFile = join(dataDir, "admin-token");
      const [, url] = await demo.waitFor(
        /open (http:\/\/127\.0\.0\.1:\d+)\/ and sign in with the admin token in (\S+)\n/,
      );
      const hub = url as string;
      // The output is no terminal (a log, as `npm start > demo.log` makes): the token stays in its
      // file, as `serve` keeps it.
      const token = readFileSync(tokenFile, "utf8").trim();
      expect(token).toMatch(/^ht_/);
      expect(demo.stdout()).toContain(`and sign in with the admin token in ${tokenFile}\n`);
      // On a port of its own, the CLI finds neither the hub nor its token by itself: the next step
      // it prints says both, the token read from its file.
      await demo.waitFor(/ {2}try: {2}/);
      expect(demo.stdout()).toContain(
        `  try:  export HYPERTHINGS_URL=${hub} HYPERTHINGS_TOKEN="$(cat ${tokenFile})"; npx things ls   ·   Ctrl-C stops it all\n`,
      );
      expect(demo.stdout() + demo.stderr()).not.toContain(token);
      // The directory holds the fleet's HTTP Things, each TD pointing at a live simulator.
      const espresso = (await (await fetch(`${hub}${thingPath(simThingId("espresso-machine"))}`)).json()) as {
        base: string;
        "@type": string[];
      };
      expect(espresso["@type"]).toContain("saref:Appliance");
      const served = (await (await fetch(espresso.base)).json()) as { id: string };
      expect(served.id).toBe(simThingId("espresso-machine"));
      for (const name of ["switch-1", "host-1", "container-web", "order-service"]) {
        expect((await fetch(`${hub}${thingPath(simThingId(name))}`)).status, name).toBe(200);
      }
      // The admin token works; the hub reads the simulator through its own binding.
      const read = await fetch(`${hub}${thingPath(simThingId("espresso-machine"))}/properties/setpoint`, {
        headers: { authorization: `Bearer ${token}` },
      });
      expect(read.status).toBe(200);
      expect(typeof (await read.json())).toBe("number");
      // The hub observes it: the boiler's temperature arrives as `reported` Changes (the read
      // above may be recorded first, as the admin's).
      const reported = await firstChange(hub, simThingId("espresso-machine"), "reported", "temperature");
      expect(reported).toMatchObject({ cause: { actor: "hub:observer" } });
      // And the smart plug over CoAP: its readings arrive by CoAP Observe, the first as the
      // answer to the hub's registration (read:coap), the later ones as notifications (coap);
      // the stream may start at either.
      const plug = await firstChange(hub, simThingId("smart-plug"), "reported");
      expect(plug).toMatchObject({
        cause: { actor: "hub:observer", via: expect.stringMatching(/^(read:)?coap$/) as unknown },
      });
      // The UPS speaks SNMP only: the hub was given its community, and polls it (reads).
      const ups = await firstChange(hub, simThingId("ups-1"), "reported");
      expect(ups).toMatchObject({ cause: { actor: "hub:observer", via: "read:snmp" } });
    } finally {
      demo.process.kill("SIGINT");
    }
    expect(await demo.exited).toBe(0);
    expect(demo.stdout()).toMatch(
      /\nHyperthings urn:uuid:\S+ stopped: requests finished, queued writes committed, the database closed\n$/,
    );
    expect(demo.stderr()).not.toMatch(/"level":(50|60)/);
  });

  it("run again on the same data, says the fleet's TDs were replaced (new ports), not registered anew, and records no outage of the old ones", async () => {
    const demo = run(["demo", "--port", "0", "--data", dataDir, "--chaos", "0"]);
    try {
      await demo.waitFor(/demo: (\d+) simulated Things \(\1 re-registered at their new addresses\)/);
      const [, url] = await demo.waitFor(/open (http:\/\/127\.0\.0\.1:\d+)\/ and sign in/);
      const hub = url as string;
      // The plug is observed at its new address (a CoAP port nobody holds answers at once: the
      // hub, had it observed the TD of the first run, would have recorded an outage by now).
      await firstChange(hub, simThingId("smart-plug"), "reported");
      const outages = (await (await fetch(`${hub}/changes?kind=unreachable`)).json()) as {
        changes: { thing: string; value: unknown }[];
      };
      expect(outages.changes.filter((c) => c.thing.startsWith("urn:hyperthings:demo:"))).toEqual([]);
      expect(demo.stderr()).not.toMatch(/the Thing is unreachable|cannot observe/);
    } finally {
      demo.process.kill("SIGINT");
    }
    expect(await demo.exited).toBe(0);
  });

  it("started a second time on the same data while the first runs, says so in one line and exits 1", async () => {
    const demo = run(["demo", "--port", "0", "--data", dataDir, "--chaos", "0"]);
    try {
      await demo.waitFor(/open http:\/\/127\.0\.0\.1:\d+\//);
      const second = run(["demo", "--port", "0", "--data", dataDir, "--chaos", "0"]);
      expect(await second.exited).toBe(1);
      expect(second.stdout()).toBe("");
      expect(second.stderr()).toBe(
        `things: ${join(dataDir, "hyperthings.db")} is in use by another hub (it holds ${join(dataDir, "hyperthings.db")}-lock): stop that hub first, or give this one another data directory (--data)\n`,
      );
    } finally {
      demo.process.kill("SIGINT");
    }
    expect(await demo.exited).toBe(0);
    expect(demo.stderr()).not.toMatch(/"level":(50|60)/);
  });
});

describe("things demo --config", () => {
  const folder = mkdtempSync(join(tmpdir(), "hyperthings-demo-config-"));
  afterAll(() => rmSync(folder, { recursive: true, force: true }));
  const TOKEN = "ht_demo-file-token-0123456789abcdef";

  it("takes the file's settings: its data directory, admin token, closed reads, body limit and no MQTT", async () => {
    const file = join(folder, "demo.yaml");
    writeFileSync(
      file,
      `port: 0\ndataDir: from-file\nadminToken: ${TOKEN}\nauthRead: true\nbodyLimit: 4096\nmqtt: false\n`,
    );
    chmodSync(file, 0o600);
    const demo = run(["demo", "--config", file, "--chaos", "0"]);
    try {
      await demo.waitFor(/demo: (\d+) simulated Things \(\1 registered\)/);
      const [, url] = await demo.waitFor(/open (http:\/\/127\.0\.0\.1:\d+)\/ and sign in with [^\n]*\n/);
      const hub = url as string;
      const out = demo.stdout();
      expect(out).toContain(`  data: ${join(folder, "from-file")}\n`);
      expect(out).toContain(`  config: ${file}: 6 settings; flags and HYPERTHINGS_ variables win over it\n`);
      expect(out).toContain(`and sign in with the admin token from adminToken in ${file}:`);
      expect(out).not.toContain(TOKEN);
      expect(out).toContain("  MQTT: off\n");
      // authRead: reads need the token; the file's token opens them, on the demo's fleet.
      const espresso = `${hub}${thingPath(simThingId("espresso-machine"))}`;
      expect((await fetch(espresso)).status).toBe(401);
      const auth = { authorization: `Bearer ${TOKEN}` };
      expect((await fetch(espresso, { headers: auth })).status).toBe(200);
      // bodyLimit: a TD of 5 KiB is over it.
      const big = await fetch(`${hub}${thingPath("urn:example:demo:big")}`, {
        method: "PUT",
        headers: { ...auth, "content-type": "application/td+json" },
        body: JSON.stringify(minimalTd({ description: "x".repeat(5 * 1024) })),
      });
      expect(big.status).toBe(413);
    } finally {
      demo.process.kill("SIGINT");
    }
    expect(await demo.exited).toBe(0);
  });
});
