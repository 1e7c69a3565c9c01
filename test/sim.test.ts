// The simulated fleet against a real hub: the espresso machine's boiler approaches a setpoint
// written through the hub, bad input is refused by the Things themselves (400, 405, 409, 415),
// the container host's links resolve in the directory, the Homie sensors register themselves on
// the hub's broker, and the chaos monkey makes Changes the hub did not cause.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import {
  ChaosMonkey,
  Container,
  EspressoMachine,
  MicroService,
  Fleet,
  OUTPUT_SOURCE,
  NetworkSwitch,
  SETPOINT_RANGE,
  simThingId,
} from "../src/sim/index.js";
import { changeAfter, startTestHub, type TestHub } from "./support/test-hub.js";

const ESPRESSO = simThingId("espresso-machine");

async function json(response: Response): Promise<unknown> {
  return await response.json();
}

async function register(hub: TestHub, fleet: Fleet): Promise<void> {
  for (const td of fleet.descriptions()) {
    const response = await hub.request(thingPath(td.id), {
      method: "PUT",
      headers: { "content-type": "application/td+json" },
      body: JSON.stringify(td),
    });
    expect(response.status, `${td.id}: ${await response.clone().text()}`).toBeLessThan(300);
  }
}

/** The last seq in the hub's Log. */
function lastSeq(hub: TestHub): Promise<number> {
  return hub.hub.store.lastSeq();
}

describe("the simulated fleet with a hub", () => {
  let hub: TestHub;
  let fleet: Fleet;

  beforeAll(async () => {
    // Polling (the UPS's SNMP properties) every 100 ms: a value changes in the Log soon after.
    hub = await startTestHub({
      observe: true,
      mqttPort: 0,
      reconnectMs: 20,
      maxReconnectMs: 200,
      pollIntervalMs: 100,
      snmpTrapPort: 0,
    });
    // No ticker: the test lets simulated time pass. The sensors publish to the hub's broker.
    fleet = await Fleet.start({
      tickMs: 0,
      random: () => 0.5,
      mqtt: {
        url: hub.mqtt?.url ?? "",
        username: "sim",
        password: hub.token,
      },
      // The UPS sends its traps to the hub's receiver.
      snmpTraps: { host: "127.0.0.1", port: hub.snmpTrapPort ?? 0 },
    });
    await register(hub, fleet);
  });

  afterAll(async () => {
    await fleet?.disconnectSensors();
    await hub?.stop();
    await fleet?.close();
  });

  it("serves proper TDs: semantic types, a context with prefixes, forms at the Things' own addresses", async () => {
    const url = fleet.descriptionUrl(ESPRESSO);
    const td = (await json(await fetch(url))) as Record<string, unknown>;
    expect(td).toMatchObject({
      id: ESPRESSO,
      base: url,
    });
    expect(td["@type"]).toContain("saref:Appliance");
    expect(JSON.stringify(td["@context"])).toContain("https://saref.etsi.org/core/");
    const stored = (await json(await hub.request(thingPath(ESPRESSO)))) as { base: string };
    expect(stored.base).toBe(url);
    // Every form resolves to the simulator.
    const temperature = (await json(await fetch(new URL("properties/temperature", url)))) as number;
    expect(typeof temperature).toBe("number");
  });

  it("moves the boiler's temperature towards a setpoint written through the hub, closer at every step", async () => {
    const machine = fleet.thing(ESPRESSO, EspressoMachine);
    const write = await hub.request(`${thingPath(ESPRESSO)}/properties/setpoint`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: "91.5",
    });
    expect(write.status).toBeLessThan(300);
    expect(machine.boiler.setpoint).toBe(91.5);
    const read = async () =>
      (await json(await hub.request(`${thingPath(ESPRESSO)}/properties/temperature`))) as number;
    const distances: number[] = [Math.abs(91.5 - (await read()))];
    while ((distances.at(-1) as number) > 0.5) {
      fleet.advance(4);
      distances.push(Math.abs(91.5 - (await read())));
      expect(distances.length).toBeLessThan(100);
    }
    for (let i = 1; i < distances.length; i++) expect(distances[i]).toBeLessThan(distances[i - 1] as number);
    expect(await json(await hub.request(`${thingPath(ESPRESSO)}/properties/setpoint`))).toBe(91.5);
  });

  it("refuses bad input itself with a problem document: out of range, wrong type, read-only, not JSON", async () => {
    const base = fleet.descriptionUrl(ESPRESSO);
    const put = (path: string, body: string, type = "application/json") =>
      fetch(new URL(path, base), { method: "PUT", headers: { "content-type": type }, body });
    const tooHot = await put("properties/setpoint", String(SETPOINT_RANGE.maximum + 20));
    expect(tooHot.status).toBe(400);
    expect(tooHot.headers.get("content-type")).toBe("application/problem+json");
    const refusal = (await json(tooHot)) as { status: number; detail: string };
    expect(refusal.status).toBe(400);
    expect(refusal.detail).toContain("<= 98");
    expect((await put("properties/setpoint", '"hot"')).status).toBe(400);
    expect((await put("properties/setpoint", "{")).status).toBe(400);
    expect((await put("properties/setpoint", "92", "text/plain")).status).toBe(415);
    expect((await put("properties/temperature", "92")).status).toBe(405);
    expect((await fetch(new URL("properties/nothing", base))).status).toBe(404);
    expect((await fetch(new URL("/no-such-thing/", base))).status).toBe(404);
    expect((await put("properties/setpoint", JSON.stringify("x".repeat(100_000)))).status).toBe(413);
    const brew = (body: unknown) =>
      fetch(new URL("actions/brew", base), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
    expect((await brew({ size: "triple" })).status).toBe(400);
    expect((await brew({})).status).toBe(400);
    // Nothing was changed by any of it.
    expect(fleet.thing(ESPRESSO, EspressoMachine).boiler.setpoint).toBe(91.5);
  });

  it("refuses through the hub a brew size the TD does not allow, naming the sizes it does", async () => {
    const response = await hub.request(`${thingPath(ESPRESSO)}/actions/brew`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ size: "triple" }),
    });
    const problem = (await response.json()) as {
      detail: string;
      errors: Array<{ pointer: string; detail: string }>;
    };
    expect(response.status, JSON.stringify(problem)).toBe(400);
    expect(problem.detail).toBe(
      'The input for brew does not fit its schema: /size must be one of "single", "double"',
    );
    expect(problem.errors).toEqual([{ pointer: "/size", detail: 'must be one of "single", "double"' }]);
  });

  it("brews only at temperature: 409 while cold, a shot and a `ready` event once there", async () => {
    const machine = fleet.thing(ESPRESSO, EspressoMachine);
    const invoke = () =>
      hub.request(`${thingPath(ESPRESSO)}/actions/brew`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ size: "double" }),
      });
    machine.boiler.draw(20);
    const cold = await invoke();
    expect(cold.status).toBeGreaterThanOrEqual(400);
    expect(await json(cold)).toMatchObject({ device: { status: 409 } });
    const after = await lastSeq(hub);
    const ready = changeAfter(hub, after, (c) => c.thing === ESPRESSO && c.kind === "emitted");
    while (!machine.boiler.ready) fleet.advance(2);
    expect((await ready).value).toMatchObject({ temperature: expect.any(Number) as number });
    const shot = await invoke();
    expect(shot.status).toBe(200);
    expect(await json(shot)).toMatchObject({ size: "double", shot: 1 });
    expect(machine.shots).toBe(1);
  });

  it("links the container host and its containers both ways, and every link resolves in the directory", async () => {
    const host = (await json(await hub.request(thingPath(simThingId("host-1"))))) as {
      links: { rel: string; href: string }[];
    };
    const hosted = host.links.filter((l) => l.rel === "hosts").map((l) => l.href);
    expect(hosted).toHaveLength(3);
    for (const id of hosted) {
      const container = (await json(await hub.request(thingPath(id)))) as {
        links: { rel: string; href: string }[];
      };
      expect(container.links).toContainEqual({ rel: "runsOn", href: simThingId("host-1") });
    }
    for (const td of fleet.descriptions()) {
      for (const l of (td.links ?? []) as { href: string }[]) {
        expect((await hub.request(thingPath(l.href))).status, `${td.id} → ${l.href}`).toBe(200);
      }
    }
  });

  it("types its Things in the hub's own vocabulary: a query for a supertype finds them", async () => {
    // ht:Host and ht:Container are ht:ComputeResources (vocab/types.json), ht:NetworkSwitch an
    // ht:NetworkDevice: the demo answers the queries docs/queries.md shows.
    const found = async (filter: string) => {
      const response = await hub.request(`/graph?filter=${encodeURIComponent(filter)}&limit=100`);
      const body = (await response.json()) as { items?: Array<{ id: string }> };
      expect(response.status, JSON.stringify(body)).toBe(200);
      return (body.items ?? []).map((item) => item.id).sort();
    };
    await expect(found("type = ht:ComputeResource")).resolves.toEqual(
      ["container-cache", "container-orders", "container-web", "host-1"].map((name) => simThingId(name)),
    );
    await expect(found("type = ht:NetworkDevice")).resolves.toEqual([simThingId("switch-1")]);
    await expect(found("type = ht:Software")).resolves.toEqual([simThingId("order-service")]);
  });

  it("writes its schema.org types as the hub's vocabulary does: schema:Product finds the espresso machine", async () => {
    // The TDs say `schema:Product`; a filter with the same words must find them (README's demo).
    const response = await hub.request(`/graph?filter=${encodeURIComponent("type = schema:Product")}`);
    const body = (await response.json()) as { items?: Array<{ id: string }> };
    expect(response.status, JSON.stringify(body)).toBe(200);
    expect((body.items ?? []).map((item) => item.id)).toEqual([ESPRESSO]);
    const webApi = await hub.request(`/graph?filter=${encodeURIComponent("type = schema:WebAPI")}`);
    expect(((await webApi.json()) as { items: Array<{ id: string }> }).items.map((item) => item.id)).toEqual([
      simThingId("order-service"),
    ]);
  });

  it("starts, stops and restarts containers through the hub; the service on one goes critical while it is down", async () => {
    const orders = fleet.thing(simThingId("container-orders"), Container);
    const service = fleet.thing(simThingId("order-service"), MicroService);
    const invoke = (name: string) =>
      hub.request(`${thingPath(orders.id)}/actions/${name}`, { method: "POST" });
    expect(service.health).toBe("passing");
    expect((await invoke("stop")).status).toBe(200);
    expect(orders.state).toBe("exited");
    expect(service.health).toBe("critical");
    expect(await json(await invoke("stop"))).toMatchObject({ device: { status: 409 } });
    expect((await invoke("start")).status).toBe(200);
    expect(orders.state).toBe("running");
    expect((await invoke("restart")).status).toBe(200);
    expect(orders.state).toBe("restarting");
    fleet.advance(5);
    expect(orders).toMatchObject({ state: "running", restarts: 1 });
    const host = (await json(
      await hub.request(`${thingPath(simThingId("host-1"))}/properties/containers`),
    )) as Record<string, string>;
    expect(host).toEqual({ web: "running", orders: "running", cache: "running" });
  });

  it("has a UPS that speaks SNMP only: observed by polling once the hub holds its community, its alarm written with SET, its outage trapped", async () => {
    const ups = fleet.ups(simThingId("ups-1"));
    const [snmp] = fleet.snmpThings;
    expect(snmp?.td.id).toBe(ups.id);
    expect(JSON.stringify(snmp?.td)).not.toContain(ups.community);
    // Earlier tests let time pass: half charged now, whatever they did.
    ups.charge = 50;
    fleet.advance(0);
    const start = await lastSeq(hub);
    const put = await hub.request(thingPath(ups.id), {
      method: "PUT",
      headers: { "content-type": "application/td+json" },
      body: JSON.stringify(snmp?.td),
    });
    expect(put.status).toBe(201);
    const credentials = await hub.request(`${thingPath(ups.id)}/credentials`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ key: ups.community }),
    });
    expect(credentials.status).toBe(200);
    const isCharge = (c: { thing: string; affordance?: string; kind: string }) =>
      c.thing === ups.id && c.affordance === "charge" && c.kind === "reported";
    const first = await changeAfter(hub, start, isCharge);
    // Polled: the hub read it (the trap below is pushed, via snmp).
    expect(first).toMatchObject({ value: 50, cause: { actor: "hub:observer", via: "read:snmp" } });
    // On mains, the battery charges: 0.1 % a simulated second.
    fleet.advance(30);
    const next = await changeAfter(hub, first.seq, isCharge);
    expect(next.value).toBe(53);
    expect(ups.read("outputSource")).toBe(OUTPUT_SOURCE.normal);

    const muted = await hub.request(`${thingPath(ups.id)}/properties/alarm`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: "3",
    });
    expect(muted.status).toBe(204);
    expect(ups.read("alarm")).toBe(3);
    // Not a value the TD allows: refused by the hub, the UPS untouched.
    const bad = await hub.request(`${thingPath(ups.id)}/properties/alarm`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: "9",
    });
    expect(bad.status).toBe(400);
    expect(ups.read("alarm")).toBe(3);

    // The mains fail: the UPS goes on battery and sends upsTrapOnBattery, an emitted Change.
    const before = await lastSeq(hub);
    ups.cutPower(60);
    expect(ups.read("outputSource")).toBe(OUTPUT_SOURCE.battery);
    const trap = await changeAfter(hub, before, (c) => c.thing === ups.id && c.kind === "emitted");
    expect(trap).toMatchObject({
      affordance: "onBattery",
      value: { "1.3.6.1.2.1.33.1.2.3.0": ups.minutesRemaining, "1.3.6.1.2.1.33.1.2.2.0": 0 },
      cause: { actor: "hub:observer", via: "snmp" },
    });
  });

  it("has its Homie sensors registered by the hub's auto-inventory, and observed", async () => {
    expect(fleet.homieDevices).toHaveLength(4);
    for (const id of fleet.homieDevices) {
      const described = await changeAfter(hub, 0, (c) => c.thing === id && c.kind === "described");
      expect(described.cause).toMatchObject({ actor: "mqtt:homie" });
    }
    const kitchen = fleet.homieDevices[0] as string;
    const td = (await json(await hub.request(thingPath(kitchen)))) as { properties: Record<string, unknown> };
    expect(Object.keys(td.properties)).toEqual(
      expect.arrayContaining(["climate_temperature", "climate_humidity", "climate_co2", "indicator_led"]),
    );
    const reported = await changeAfter(
      hub,
      0,
      (c) => c.thing === kitchen && c.kind === "reported" && c.affordance === "climate_temperature",
    );
    expect(typeof reported.value).toBe("number");
  });

  it("writes a Homie sensor's settable property through the hub, over MQTT", async () => {
    const kitchen = fleet.sensors[0];
    expect(kitchen?.led).toBe(false);
    const after = await lastSeq(hub);
    const id = `urn:homie:${kitchen?.device ?? ""}`;
    const write = await hub.request(`${thingPath(id)}/properties/indicator_led`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: "true",
    });
    expect(write.status).toBeLessThan(300);
    // The sensor takes the value and publishes it; the hub records what it reports.
    const reported = await changeAfter(
      hub,
      after,
      (c) => c.thing === id && c.kind === "reported" && c.affordance === "indicator_led" && c.value === true,
    );
    expect(reported.value).toBe(true);
    expect(kitchen?.led).toBe(true);
  });

  it("lets the chaos monkey change a setpoint behind the hub's back, and the hub records it as observed", async () => {
    const machine = fleet.thing(ESPRESSO, EspressoMachine);
    // The hub observes the setpoint already (its first value is in the Log).
    await changeAfter(
      hub,
      0,
      (c) => c.thing === ESPRESSO && c.kind === "reported" && c.affordance === "setpoint",
    );
    const before = machine.boiler.setpoint;
    const after = await lastSeq(hub);
    const mischief = new ChaosMonkey(
      () => [machine],
      () => 0.9,
    ).strike();
    expect(mischief).toMatchObject({ thing: ESPRESSO, affordance: "setpoint" });
    expect(machine.boiler.setpoint).not.toBe(before);
    const change = await changeAfter(
      hub,
      after,
      (c) => c.thing === ESPRESSO && c.affordance === "setpoint" && c.value === machine.boiler.setpoint,
    );
    expect(change.kind).toBe("reported");
    expect(change.cause).toMatchObject({ actor: "hub:observer" });
  });

  it("enables or disables a switch port behind the hub's back, and the hub records it as observed", async () => {
    const sw = fleet.thing(simThingId("switch-1"), NetworkSwitch);
    await changeAfter(hub, 0, (c) => c.thing === sw.id && c.kind === "reported" && c.affordance === "ports");
    const after = await lastSeq(hub);
    const mischief = new ChaosMonkey(
      () => [sw],
      () => 0.1,
    ).strike();
    expect(mischief).toMatchObject({ thing: sw.id, affordance: "ports", what: "disabled port 1" });
    const change = await changeAfter(hub, after, (c) => c.thing === sw.id && c.affordance === "ports");
    expect(change).toMatchObject({
      kind: "reported",
      cause: { actor: "hub:observer" },
      value: { "1": { enabled: false, link: "down", speed: 0 } },
    });
  });
});
