// End to end through a real hub (port 0): a Thing whose forms are snmp:, served by a real net-snmp
// agent on loopback (UDP, port 0), its community held in the hub's secrets. Every wait is for a
// Change, bounded, never for time to pass.
import { ObjectType, Version2c, createSession } from "net-snmp";
import { createSocket } from "node:dgram";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import type { Change } from "../src/core/index.js";
import type { SnmpAgent } from "../src/sim/snmp-agent.js";
import { changeAfter, registerThing, startTestHub, type TestHub } from "./support/test-hub.js";
import { CHARGE, SELF_TEST, SYS_NAME, startUpsAgent } from "./support/ups-snmp-agent.js";

const ID = "urn:test:snmp:ups";
const COMMUNITY = "c0mmunity-e2e-5d1";
const ON_BATTERY = "1.3.6.1.2.1.33.2.0.1";

let agent: SnmpAgent;
let hub: TestHub;

function upsTd(origin: string): Record<string, unknown> {
  return {
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    id: ID,
    title: "UPS",
    securityDefinitions: { community_sc: { scheme: "snmp:community" } },
    security: "community_sc",
    properties: {
      name: {
        type: "string",
        observable: false,
        forms: [{ href: `${origin}/${SYS_NAME}`, "snmp:type": "OctetString" }],
      },
      charge: {
        type: "integer",
        minimum: 0,
        maximum: 100,
        readOnly: true,
        observable: true,
        forms: [{ href: `${origin}/${CHARGE}` }],
      },
      // A TD that says integer where the agent holds text: the hub checks what the agent answers.
      mislabeled: {
        type: "integer",
        observable: false,
        forms: [{ href: `${origin}/${SYS_NAME}` }],
      },
      selfTest: {
        type: "integer",
        observable: false,
        forms: [{ href: `${origin}/${SELF_TEST}`, "snmp:type": "Integer32" }],
      },
    },
    events: {
      onBattery: {
        data: { type: "object", properties: { "1.3.6.1.2.1.33.1.2.2.0": { type: "integer" } } },
        forms: [{ href: `${origin}/${ON_BATTERY}` }],
      },
    },
  };
}

async function history(id: string, query = ""): Promise<Change[]> {
  const res = await hub.request(`${thingPath(id)}/history?order=asc&limit=1000${query}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { changes: Change[] }).changes;
}

function put(path: string, body: unknown): Promise<Response> {
  return hub.request(path, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

beforeAll(async () => {
  agent = await startUpsAgent({ communities: [COMMUNITY] });
  hub = await startTestHub({ observe: true, pollIntervalMs: 100, snmpTrapPort: 0 });
});

afterAll(async () => {
  await hub?.stop();
  await agent?.close();
});

describe("an SNMP Thing through the hub", () => {
  it("observes by polling once the community is set, recording reported Changes as the agent's value changes", async () => {
    const start = await hub.hub.store.lastSeq();
    await registerThing(hub, ID, upsTd(agent.origin));
    const set = await put(`${thingPath(ID)}/credentials`, { key: COMMUNITY });
    expect(set.status).toBe(200);
    expect(await set.json()).toMatchObject({ schemeName: "community_sc" });

    const first = await changeAfter(
      hub,
      start,
      (c) => c.thing === ID && c.affordance === "charge" && c.kind === "reported",
    );
    expect(first.value).toBe(97);
    agent.set("charge", 95);
    const next = await changeAfter(
      hub,
      first.seq,
      (c) => c.thing === ID && c.affordance === "charge" && c.kind === "reported",
    );
    // Polled: the hub read it (a trap would be pushed, via snmp).
    expect(next).toMatchObject({ value: 95, cause: { actor: "hub:observer", via: "read:snmp" } });
  });

  it("records a trap of the event's OID from the Thing, with its community, as an emitted Change", async () => {
    // The event's subscription opened with the observation that recorded the charge above.
    const after = await hub.hub.store.lastSeq();
    const port = hub.snmpTrapPort;
    expect(port).toBeGreaterThan(0);
    const session = createSession("127.0.0.1", COMMUNITY, { trapPort: port, version: Version2c });
    try {
      await new Promise<void>((resolve, reject) =>
        session.trap(
          ON_BATTERY,
          [{ oid: "1.3.6.1.2.1.33.1.2.2.0", type: ObjectType.Integer32, value: 4 }],
          (error) => (error === null ? resolve() : reject(error)),
        ),
      );
    } finally {
      session.close();
    }
    const emitted = await changeAfter(hub, after, (c) => c.thing === ID && c.kind === "emitted");
    expect(emitted).toMatchObject({
      affordance: "onBattery",
      value: { "1.3.6.1.2.1.33.1.2.2.0": 4 },
      cause: { actor: "hub:observer", via: "snmp" },
    });
  });

  it("reads a property with GET through the hub", async () => {
    const res = await hub.request(`${thingPath(ID)}/properties/name`);
    expect(res.status).toBe(200);
    expect(await res.json()).toBe("ups-1");
  });

  it("checks a decoded value against the TD's schema: text where the TD says integer is a 502, recorded as failed", async () => {
    await hub.hub.commands?.recorded(ID);
    const after = await hub.hub.store.lastSeq();
    const res = await hub.request(`${thingPath(ID)}/properties/mislabeled`);
    expect(res.status).toBe(502);
    expect(((await res.json()) as { detail: string }).detail).toMatch(/schema/);
    const changes = (await history(ID, "&affordance=mislabeled")).filter((c) => c.seq > after);
    expect(changes.map((c) => c.kind)).toEqual(["failed"]);
  });

  it("writes with SET: desired then completed, and the agent holds the new value", async () => {
    // The read before this one is recorded after its answer: wait for it, to count only the write's.
    await hub.hub.commands?.recorded(ID);
    const after = await hub.hub.store.lastSeq();
    const res = await put(`${thingPath(ID)}/properties/name`, "ups-rack-4");
    expect(res.status).toBe(204);
    expect(agent.get("sysName")).toBe("ups-rack-4");
    const changes = (await history(ID, "&affordance=name")).filter(
      (c) => c.seq > after && c.cause.actor === "admin",
    );
    expect(changes.map((c) => c.kind)).toEqual(["desired", "completed"]);
    expect(changes[0]).toMatchObject({ value: "ups-rack-4", cause: { via: "http" } });
    expect(changes[1]?.cause.correlation).toBe(changes[0]?.cause.correlation);
  });

  it("a SET the agent refuses: 502 naming the SNMP error, recorded as failed, nothing changed", async () => {
    const after = await hub.hub.store.lastSeq();
    const res = await put(`${thingPath(ID)}/properties/selfTest`, 7);
    expect(res.status).toBe(502);
    const problem = (await res.json()) as { device: { reason: string; body: string } };
    expect(problem.device.reason).toBe("status");
    expect(["wrongValue", "badValue"]).toContain(problem.device.body);
    expect(agent.get("selfTest")).toBe(0);
    const changes = (await history(ID, "&affordance=selfTest")).filter(
      (c) => c.seq > after && c.cause.actor === "admin",
    );
    expect(changes.map((c) => c.kind)).toEqual(["desired", "failed"]);
    expect(changes[1]?.value).toMatchObject({ reason: "status" });
  });

  it("never shows the community: not in the TD, the history, or the credentials listing", async () => {
    for (const path of [
      thingPath(ID),
      `${thingPath(ID)}/history?limit=1000`,
      `${thingPath(ID)}/credentials`,
    ]) {
      const res = await hub.request(path);
      expect(res.status).toBe(200);
      expect(await res.text()).not.toContain(COMMUNITY);
    }
  });
});

describe("the hub's SNMP trap port", () => {
  it("stops the start, in one sentence, when the port is taken", async () => {
    const holder = createSocket("udp4");
    await new Promise<void>((resolve) => holder.bind(0, "127.0.0.1", resolve));
    try {
      const port = holder.address().port;
      await expect(startTestHub({ snmpTrapPort: port })).rejects.toThrow(
        `SNMP trap port ${port} on 127.0.0.1 is already in use; choose another with --snmp-trap-port`,
      );
    } finally {
      holder.close();
    }
  });
});
