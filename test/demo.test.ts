// `things demo` and `things sim` as a person runs them: child processes whose output says where
// things are. The demo comes up with the hub and the fleet, serves the TDs, observes the Things,
// and stops cleanly on SIGINT; `things sim --scale 3` runs three copies with unique ids.
import { spawn, type ChildProcessWithoutNullStreams } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import { simThingId } from "../src/sim/index.js";

const BIN = fileURLToPath(new URL("../bin/things.js", import.meta.url));
/** The longest a child may take to say something we wait for. */
const OUTPUT_BOUND_MS = 20_000;

interface Child {
  process: ChildProcessWithoutNullStreams;
  /** Resolves with the first match of `pattern` in stdout (now or later); fails after a bound. */
  waitFor(pattern: RegExp): Promise<RegExpMatchArray>;
  /** Resolves with the exit code. */
  exited: Promise<number | null>;
  stdout(): string;
  stderr(): string;
}

function run(args: string[], env: NodeJS.ProcessEnv = {}): Child {
  const child = spawn(process.execPath, [BIN, ...args], {
    env: { ...process.env, HYPERTHINGS_LOG_LEVEL: "warn", ...env },
  });
  let out = "";
  let err = "";
  const waiters: (() => void)[] = [];
  child.stdout.on("data", (chunk: Buffer) => {
    out += chunk.toString("utf8");
    for (const w of waiters.splice(0)) w();
  });
  child.stderr.on("data", (chunk: Buffer) => (err += chunk.toString("utf8")));
  const exited = new Promise<number | null>((resolve) => child.on("exit", (code) => resolve(code)));
  return {
    process: child,
    exited,
    stdout: () => out,
    stderr: () => err,
    waitFor(pattern) {
      return new Promise((resolve, reject) => {
        const timer = setTimeout(
          () => reject(new Error(`no ${String(pattern)} in: ${out}\nstderr: ${err}`)),
          OUTPUT_BOUND_MS,
        );
        const check = () => {
          const match = pattern.exec(out);
          if (match) {
            clearTimeout(timer);
            resolve(match);
          } else waiters.push(check);
        };
        void exited.then(() => {
          if (!pattern.test(out)) {
            clearTimeout(timer);
            reject(new Error(`exited before ${String(pattern)}: ${out}\nstderr: ${err}`));
          }
        });
        check();
      });
    },
  };
}

/** The first Change of a Thing of one kind, from the hub's SSE change stream (bounded in time). */
async function firstChange(hub: string, thing: string, kind: string): Promise<Record<string, unknown>> {
  const query = new URLSearchParams({ thing, kind });
  const response = await fetch(`${hub}/changes/stream?${query.toString()}`, {
    signal: AbortSignal.timeout(OUTPUT_BOUND_MS),
  });
  const decoder = new TextDecoder();
  let text = "";
  for await (const chunk of response.body as AsyncIterable<Uint8Array>) {
    text += decoder.decode(chunk, { stream: true });
    const data = /^data: (.*)$/m.exec(text);
    if (data) {
      await response.body?.cancel().catch(() => undefined);
      return JSON.parse(data[1] as string) as Record<string, unknown>;
    }
  }
  throw new Error(`the change stream ended: ${text}`);
}

describe("things demo", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-demo-"));
  afterAll(() => rmSync(dataDir, { recursive: true, force: true }));

  it("comes up with the fleet registered and observed, prints the UI's URL and the admin token, and stops on SIGINT", async () => {
    const demo = run(["demo", "--port", "0", "--data", dataDir, "--chaos", "0"]);
    try {
      const [, url, token] = await demo.waitFor(
        /open (http:\/\/127\.0\.0\.1:\d+)\/ and sign in with (ht_\S+)/,
      );
      const hub = url as string;
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
        headers: { authorization: `Bearer ${token as string}` },
      });
      expect(read.status).toBe(200);
      expect(typeof (await read.json())).toBe("number");
      // The hub observes it: the boiler's temperature arrives as `reported` Changes.
      const reported = await firstChange(hub, simThingId("espresso-machine"), "reported");
      expect(reported).toMatchObject({ cause: { actor: "hub:observer" } });
    } finally {
      demo.process.kill("SIGINT");
    }
    expect(await demo.exited).toBe(0);
    expect(demo.stderr()).not.toMatch(/"level":(50|60)/);
  });
});

describe("things sim", () => {
  it("runs three copies of the fleet with unique ids, serves each TD where it says, and stops on SIGINT", async () => {
    const sim = run(["sim", "--scale", "3"]);
    try {
      const [, count] = await sim.waitFor(/Simulated fleet: (\d+) Things over HTTP/);
      // The listing ends with a line that says how to stop it.
      await sim.waitFor(/Ctrl-C stops it/);
      const things = [...sim.stdout().matchAll(/^ {2}(urn:\S+) {2}(http:\S+)$/gm)];
      expect(things).toHaveLength(Number(count));
      const ids = things.map((m) => m[1]);
      expect(new Set(ids).size).toBe(ids.length);
      expect(ids.length).toBe(3 * 7);
      expect(ids).toEqual(
        expect.arrayContaining([simThingId("espresso-machine"), simThingId("espresso-machine", 2)]),
      );
      for (const [, id, url] of things.slice(0, 7)) {
        const td = (await (await fetch(url as string)).json()) as { id: string; base: string };
        expect(td).toMatchObject({ id, base: url });
      }
    } finally {
      sim.process.kill("SIGINT");
    }
    expect(await sim.exited).toBe(0);
  });

  it("says in one line what is wrong with its options, and exits non-zero", async () => {
    const sim = run(["sim", "--scale", "0"]);
    expect(await sim.exited).toBe(2);
    expect(sim.stderr().trim()).toBe('things: --scale must be a whole number ≥ 1, not "0"');
  });
});
