// `things sim` as a person runs it: a child process that prints where each TD is; `--scale 3`
// runs three copies with unique ids, `--register` puts them in a hub, bad options are one line.
import { randomBytes } from "node:crypto";
import { connectAsync } from "mqtt";
import { describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import { simThingId } from "../src/sim/index.js";
import { startTestHub } from "./support/test-hub.js";
import { OUTPUT_BOUND_MS, runThings as run } from "./support/things-process.js";

/** The machine's broker (Mosquitto), as the other tests of external brokers use it. */
const brokerUrl = process.env.HYPERTHINGS_TEST_MQTT_URL || "mqtt://127.0.0.1:1883";

describe("things sim", () => {
  it("runs three copies of the fleet with unique ids, serves each TD where it says, and stops on SIGINT", async () => {
    const sim = run(["sim", "--scale", "3"]);
    try {
      const [, count] = await sim.waitFor(/Simulated fleet: (\d+) Things over HTTP and CoAP/);
      // The listing ends with a line that says how to stop it.
      await sim.waitFor(/Ctrl-C stops it/);
      // The sensors of the fleet it was asked for, left out for want of a broker, are said to be.
      expect(sim.stdout().split("\n")[0]).toMatch(
        /; no Homie sensors: they publish to a broker, give --mqtt-url \(the hub's, as its start prints it\)$/,
      );
      const things = [...sim.stdout().matchAll(/^ {2}(urn:\S+) {2}((?:http|coap):\S+)$/gm)];
      expect(things).toHaveLength(Number(count));
      const ids = things.map((m) => m[1]);
      expect(new Set(ids).size).toBe(ids.length);
      // Per copy: 7 Things over HTTP and the smart plug over CoAP.
      expect(ids.length).toBe(3 * 8);
      expect(things.filter(([, , url]) => url?.startsWith("coap://")).map(([, id]) => id)).toEqual(
        [0, 1, 2].map((copy) => simThingId("smart-plug", copy)),
      );
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

  it("registers every Thing with a hub given by --register and --token", async () => {
    const hub = await startTestHub();
    const sim = run(["sim", "--only", "espresso,containers", "--scale", "2", "--register", hub.url], {
      HYPERTHINGS_TOKEN: hub.token,
    });
    try {
      const [, count] = await sim.waitFor(/registered (\d+) Things with/);
      expect(Number(count)).toBe(2 * 5);
      expect(sim.stdout()).not.toContain("Homie");
      const listed = (await (await hub.request("/things?limit=100")).json()) as {
        id: string;
        base: string;
      }[];
      expect(listed.map((td) => td.id).sort()).toEqual(
        ["espresso-machine", "host-1", "container-web", "container-orders", "container-cache"]
          .flatMap((name) => [simThingId(name), simThingId(name, 1)])
          .sort(),
      );
      // Each registered TD points at the simulator that serves it.
      for (const td of listed.slice(0, 3)) expect((await fetch(td.base)).status).toBe(200);
    } finally {
      sim.process.kill("SIGINT");
      await hub.stop();
    }
    expect(await sim.exited).toBe(0);
  });

  it("registers its UPS with --register and gives the hub its SNMP community, so the hub reads it", async () => {
    const hub = await startTestHub();
    const sim = run(["sim", "--only", "ups", "--register", hub.url], { HYPERTHINGS_TOKEN: hub.token });
    try {
      const [, agent, community] = await sim.waitFor(
        / {2}\S+ups-1 {2}(snmp:\/\/\S+) \(SNMPv2c, community (\S+)\)/,
      );
      await sim.waitFor(/registered 1 Things with/);
      const id = simThingId("ups-1");
      const td = (await (await hub.request(thingPath(id))).json()) as Record<string, unknown>;
      expect(JSON.stringify(td)).toContain(agent as string);
      expect(JSON.stringify(td)).not.toContain(community as string);
      const held = (await (await hub.request(`${thingPath(id)}/credentials`)).json()) as { names: string[] };
      expect(held.names).toEqual(["community_sc"]);
      const read = await hub.request(`${thingPath(id)}/properties/charge`);
      expect(read.status).toBe(200);
      expect(await read.json()).toBeGreaterThanOrEqual(80);
    } finally {
      sim.process.kill("SIGINT");
      await hub.stop();
    }
    expect(await sim.exited).toBe(0);
  });

  it("announces its Homie sensors on the broker of --mqtt-url, under --homie-root", async () => {
    const root = `sim-test-${randomBytes(4).toString("hex")}`;
    const watcher = await connectAsync(brokerUrl, { protocolVersion: 4 });
    const described = new Map<string, Record<string, unknown>>();
    const all = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(
        () => reject(new Error(`only ${[...described.keys()].join(", ")}`)),
        OUTPUT_BOUND_MS,
      );
      watcher.on("message", (topic, payload) => {
        if (payload.length === 0) return;
        described.set(topic, JSON.parse(payload.toString("utf8")) as Record<string, unknown>);
        if (described.size === 4) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    await watcher.subscribeAsync(`${root}/5/+/$description`, { qos: 1 });
    const sim = run(["sim", "--only", "sensors", "--mqtt-url", brokerUrl, "--homie-root", root]);
    try {
      await all;
      await sim.waitFor(/Ctrl-C stops it/);
      expect([...described.keys()].sort()).toEqual(
        ["room-kitchen", "room-lab", "room-lobby", "room-office"].map((d) => `${root}/5/${d}/$description`),
      );
      expect([...described.values()][0]).toMatchObject({
        homie: "5.0",
        nodes: { climate: {}, indicator: {} },
      });
    } finally {
      sim.process.kill("SIGINT");
    }
    expect(await sim.exited).toBe(0);
    // Retained announcements stay on a shared broker: clear them (Homie 5: an empty description).
    for (const topic of described.keys()) await watcher.publishAsync(topic, "", { qos: 1, retain: true });
    await watcher.endAsync();
  });

  it("says in one line what is wrong with its options, and exits non-zero", async () => {
    const sim = run(["sim", "--scale", "0"]);
    expect(await sim.exited).toBe(2);
    expect(sim.stderr().trim()).toBe('things: --scale must be a whole number from 1 to 100000, not "0"');
  });

  it("refuses a --register URL it cannot take before it starts the fleet", async () => {
    const sim = run(["sim", "--register", "notaurl"]);
    expect(await sim.exited).toBe(2);
    expect({ stdout: sim.stdout(), stderr: sim.stderr() }).toEqual({
      stdout: "",
      stderr: 'things: --register: "notaurl" is not a hub URL; give one like http://127.0.0.1:8080\n',
    });
  });

  it("refuses a chaos or tick interval longer than a timer takes (it would fire every millisecond), and a scale past 100,000", async () => {
    for (const [args, message] of [
      [
        ["sim", "--chaos", "3000000000"],
        '--chaos must be a whole number from 0 to 2147483647, not "3000000000"',
      ],
      [
        ["sim", "--tick-ms", "2147483648"],
        '--tick-ms must be a whole number from 0 to 2147483647, not "2147483648"',
      ],
      [["sim", "--scale", "1e9"], '--scale must be a whole number from 1 to 100000, not "1e9"'],
      [
        ["sim", "--scale", "1001", "--only", "espresso,ups"],
        "--scale 1001 with ups would open 1001 SNMP agents (at most 1000): leave ups out of --only",
      ],
      [
        ["demo", "--chaos", "3000000000"],
        '--chaos must be a whole number from 0 to 2147483647, not "3000000000"',
      ],
      // The broker's password is not printed.
      [
        ["sim", "--mqtt-url", "mqtt://hub:s3cret@127.0.0.1:99999"],
        '--mqtt-url: "mqtt://hub:***@127.0.0.1:99999" is not a URL; give one like mqtt://127.0.0.1:1883',
      ],
      [
        ["sim", "--mqtt-url", "http://hub:s3cret@127.0.0.1"],
        '--mqtt-url: "http://hub:***@127.0.0.1" is not an mqtt: or mqtts: URL',
      ],
    ] as const) {
      const sim = run([...args]);
      expect(await sim.exited, args.join(" ")).toBe(2);
      expect(sim.stdout()).toBe("");
      expect(sim.stderr()).toBe(`things: ${message}\n`);
    }
  });
});
