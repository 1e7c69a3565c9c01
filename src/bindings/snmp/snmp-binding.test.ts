// The SNMP binding against a real net-snmp agent on loopback (UDP, port 0), and against a UDP
// socket that never answers.
import { createSocket } from "node:dgram";
import type { Socket } from "node:dgram";
import { ObjectType, Version2c, createSession } from "net-snmp";
import type { Varbind } from "net-snmp";
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { ConflictError, ValidationError } from "../../core/index.js";
import type { ThingDescription } from "../../core/index.js";
import type { SnmpAgent } from "../../sim/snmp-agent.js";
import { AddressPolicy } from "../address-policy.js";
import { bindingFailure } from "../binding.js";
import type { BindingFailure, Target } from "../binding.js";
import type { Secrets } from "../credentials.js";
import { targetFor } from "../form-selection.js";
import { SnmpBinding } from "./snmp-binding.js";
import { decodeVarbind } from "./snmp-values.js";
import {
  CHARGE,
  SELF_TEST,
  SYS_NAME,
  resetUpsAgent,
  startUpsAgent,
} from "../../../test/support/ups-snmp-agent.js";

const COMMUNITY = "ups-community-7f3a";

let agent: SnmpAgent;
let binding: SnmpBinding;
const sets: unknown[] = [];

beforeAll(async () => {
  agent = await startUpsAgent({ communities: [COMMUNITY], onSelfTestSet: (value) => sets.push(value) });
});
afterAll(async () => {
  await agent.close();
});
beforeEach(() => {
  binding = new SnmpBinding({ timeoutMs: 500, retries: 0, pollIntervalMs: 10 });
  resetUpsAgent(agent);
  sets.length = 0;
});
afterEach(async () => {
  await binding.close();
});

function upsTd(origin: string, forms: Record<string, Record<string, unknown>> = {}): ThingDescription {
  const form = (oid: string, name: string) => ({ href: `${origin}/${oid}`, ...forms[name] });
  return {
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    id: "urn:test:ups",
    title: "UPS",
    securityDefinitions: { community_sc: { scheme: "snmp:community" } },
    security: "community_sc",
    properties: {
      name: { type: "string", forms: [form(SYS_NAME, "name")] },
      charge: { type: "integer", readOnly: true, forms: [form(CHARGE, "charge")] },
      selfTest: { type: "integer", forms: [form(SELF_TEST, "selfTest")] },
      missing: { type: "integer", forms: [form("1.3.6.1.2.1.1.99.0", "missing")] },
      instance: { type: "string", forms: [form("1.3.6.1.2.1.1.5.7", "instance")] },
    },
  };
}

const secrets: Secrets = { community_sc: { key: COMMUNITY } };

function target(
  op: "readproperty" | "writeproperty" | "observeproperty",
  name: string,
  options: { origin?: string; forms?: Record<string, Record<string, unknown>>; secrets?: Secrets } = {},
): Target {
  return targetFor(upsTd(options.origin ?? agent.origin, options.forms), {
    op,
    affordance: { kind: "property", name },
    secrets: options.secrets ?? secrets,
  });
}

async function failureOf(promise: Promise<unknown>): Promise<BindingFailure & { message: string }> {
  try {
    await promise;
  } catch (error) {
    const failure = bindingFailure(error);
    if (failure === undefined) throw error;
    return { ...failure, message: (error as Error).message };
  }
  throw new Error("expected a BindingError");
}

/** A UDP socket that takes every datagram and answers none; counts them. */
async function silentSocket(): Promise<{ socket: Socket; port: number; received: () => number }> {
  const socket = createSocket("udp4");
  let count = 0;
  socket.on("message", () => count++);
  await new Promise<void>((resolve) => socket.bind(0, "127.0.0.1", resolve));
  return { socket, port: socket.address().port, received: () => count };
}

describe("SnmpBinding: GET", () => {
  it("reads an OctetString as text and an Integer32 as a number, with the community from the hub's secrets", async () => {
    expect(await binding.readProperty(target("readproperty", "name"))).toBe("ups-1");
    expect(await binding.readProperty(target("readproperty", "charge"))).toBe(97);
  });

  it("answers noSuchObject and noSuchInstance as a status error that names them", async () => {
    const object = await failureOf(binding.readProperty(target("readproperty", "missing")));
    expect(object).toMatchObject({ reason: "status", body: "noSuchObject", op: "readproperty" });
    expect(object.message).toContain("noSuchObject for 1.3.6.1.2.1.1.99.0");
    const instance = await failureOf(binding.readProperty(target("readproperty", "instance")));
    expect(instance).toMatchObject({ reason: "status", body: "noSuchInstance" });
  });

  it("names an instance with a URI variable: snmp://host/OID.{index}", async () => {
    const td: ThingDescription = {
      ...upsTd(agent.origin),
      properties: {
        system: {
          type: "string",
          uriVariables: { index: { type: "integer", minimum: 0 } },
          forms: [{ href: `${agent.origin}/1.3.6.1.2.1.1.5.{index}` }],
        },
      },
    };
    const read = targetFor(td, {
      op: "readproperty",
      affordance: { kind: "property", name: "system" },
      uriVariables: { index: 0 },
      secrets,
    });
    expect(read.href).toBe(`${agent.origin}/${SYS_NAME}`);
    expect(await binding.readProperty(read)).toBe("ups-1");
  });

  it("speaks SNMPv1 when the form says snmp:version 1", async () => {
    const v1 = target("readproperty", "charge", { forms: { charge: { "snmp:version": "1" } } });
    expect(v1.terms.snmpVersion).toBe("1");
    expect(await binding.readProperty(v1)).toBe(97);
  });
});

describe("SnmpBinding: SET", () => {
  it("writes an OctetString with the snmp:type of the form, and the agent holds the new value", async () => {
    const write = target("writeproperty", "name", { forms: { name: { "snmp:type": "OctetString" } } });
    await binding.writeProperty(write, "ups-rack-4");
    expect(agent.get("sysName")).toBe("ups-rack-4");
    expect(await binding.readProperty(target("readproperty", "name"))).toBe("ups-rack-4");
  });

  it("without snmp:type, sets the type the agent answers a GET with", async () => {
    await binding.writeProperty(target("writeproperty", "selfTest"), 2);
    expect(sets).toEqual([2]);
    expect(agent.get("selfTest")).toBe(2);
  });

  it("reports wrongType when the form's type is not the agent's, and the value stays", async () => {
    const wrong = target("writeproperty", "selfTest", {
      forms: { selfTest: { "snmp:type": "OctetString" } },
    });
    const failure = await failureOf(binding.writeProperty(wrong, "start"));
    expect(failure).toMatchObject({ reason: "status", status: 7, body: "wrongType" });
    expect(failure.message).toContain("refused the SET of 1.3.6.1.2.1.33.1.7.1.0: wrongType");
    expect(failure.outcome).toBeUndefined();
    expect(agent.get("selfTest")).toBe(0);
  });

  it("reports notWritable for a read-only object, and the value stays", async () => {
    const readOnly = target("writeproperty", "charge", { forms: { charge: { "snmp:type": "Integer32" } } });
    const failure = await failureOf(binding.writeProperty(readOnly, 5));
    expect(failure).toMatchObject({ reason: "status", status: 17, body: "notWritable" });
    expect(agent.get("charge")).toBe(97);
  });

  it("reports the agent's refusal of a value out of the object's range", async () => {
    const write = target("writeproperty", "selfTest", { forms: { selfTest: { "snmp:type": "Integer32" } } });
    const failure = await failureOf(binding.writeProperty(write, 9));
    expect(failure.reason).toBe("status");
    expect(["wrongValue", "badValue"]).toContain(failure.body);
    expect(sets).toEqual([]);
    expect(agent.get("selfTest")).toBe(0);
  });

  it("refuses, before sending, a value its snmp:type cannot carry", async () => {
    const silent = await silentSocket();
    try {
      const write = target("writeproperty", "selfTest", {
        origin: `snmp://127.0.0.1:${silent.port}`,
        forms: { selfTest: { "snmp:type": "Unsigned32" } },
      });
      const failure = await failureOf(binding.writeProperty(write, -1));
      expect(failure).toMatchObject({ reason: "unsupported" });
      expect(failure.message).toContain("-1 is not a Unsigned32");
      expect(silent.received()).toBe(0);
    } finally {
      silent.socket.close();
    }
  });

  it("reports a SET to an OID the agent lacks as the status it answered", async () => {
    const write = target("writeproperty", "missing", { forms: { missing: { "snmp:type": "Integer32" } } });
    const failure = await failureOf(binding.writeProperty(write, 1));
    expect(failure.reason).toBe("status");
    expect(failure.body).toMatch(/noSuchObject|notWritable|noCreation/);
  });
});

describe("SnmpBinding: no answer, addresses, credentials", () => {
  it("times out against an agent that never answers: a read once per try, a write once, with outcome unknown", async () => {
    const silent = await silentSocket();
    const retrying = new SnmpBinding({ timeoutMs: 100, retries: 2 });
    try {
      const origin = `snmp://127.0.0.1:${silent.port}`;
      const read = await failureOf(retrying.readProperty(target("readproperty", "charge", { origin })));
      expect(read).toMatchObject({ reason: "timeout" });
      expect(read.outcome).toBeUndefined();
      expect(silent.received()).toBe(3);
      const write = target("writeproperty", "selfTest", {
        origin,
        forms: { selfTest: { "snmp:type": "Integer32" } },
      });
      const written = await failureOf(retrying.writeProperty(write, 1));
      expect(written).toMatchObject({ reason: "timeout", outcome: "unknown" });
      expect(silent.received()).toBe(4);
    } finally {
      await retrying.close();
      silent.socket.close();
    }
  });

  it("sends at most maxInFlightPerAgent requests to one agent at a time: the next goes when one ends", async () => {
    const silent = await silentSocket();
    const limited = new SnmpBinding({ timeoutMs: 100, retries: 0, maxInFlightPerAgent: 2 });
    try {
      const origin = `snmp://127.0.0.1:${silent.port}`;
      const settled: boolean[] = [false, false, false];
      // When the third request arrives, one of the first two has ended (timed out): never three at once.
      const third = new Promise<boolean[]>((resolve) =>
        silent.socket.on("message", () => {
          if (silent.received() === 3) resolve([...settled]);
        }),
      );
      const reads = settled.map((_, i) =>
        limited.readProperty(target("readproperty", "charge", { origin })).catch((error: unknown) => {
          settled[i] = true;
          return error;
        }),
      );
      const atThird = await third;
      expect(atThird.slice(0, 2).some(Boolean)).toBe(true);
      expect(atThird[2]).toBe(false);
      for (const failure of await Promise.all(reads)) expect(bindingFailure(failure)?.reason).toBe("timeout");
    } finally {
      await limited.close();
      silent.socket.close();
    }
  });

  it("gets no answer with a wrong community (the agent drops it), and never puts the community in an error", async () => {
    const wrong = target("readproperty", "charge", { secrets: { community_sc: { key: "not-it" } } });
    const failure = await failureOf(binding.readProperty(wrong));
    expect(failure.reason).toBe("timeout");
    expect(JSON.stringify(failure)).not.toContain("not-it");
  });

  it("refuses a denied address before any datagram goes out", async () => {
    const silent = await silentSocket();
    const denied = new SnmpBinding({
      addressPolicy: new AddressPolicy({ deny: ["127.0.0.0/8", "::1/128"] }),
    });
    try {
      const origin = `snmp://127.0.0.1:${silent.port}`;
      const failure = await failureOf(denied.readProperty(target("readproperty", "charge", { origin })));
      expect(failure).toMatchObject({ reason: "address-denied" });
      expect(failure.message).toContain("127.0.0.1 is not allowed by the address policy (deny 127.0.0.0/8)");
      const byName = await failureOf(
        denied.readProperty(target("readproperty", "charge", { origin: `snmp://localhost:${silent.port}` })),
      );
      expect(byName).toMatchObject({ reason: "address-denied" });
      expect(silent.received()).toBe(0);
    } finally {
      await denied.close();
      silent.socket.close();
    }
  });

  it("needs the community from the hub's secrets: none held is refused before anything is sent", () => {
    expect(() => target("readproperty", "charge", { secrets: {} })).toThrow(ConflictError);
  });

  it("applies an snmp:community scheme to snmp: forms only", () => {
    const td = upsTd("http://127.0.0.1:1");
    expect(() =>
      targetFor(td, { op: "readproperty", affordance: { kind: "property", name: "charge" }, secrets }),
    ).toThrow(/applies to snmp: forms only/);
  });

  it("rejects unknown versions and types in the form, pointing at the term", async () => {
    const v4 = () => target("readproperty", "charge", { forms: { charge: { "snmp:version": "4" } } });
    expect(v4).toThrow(ValidationError);
    expect(v4).toThrow(/"1", "2c" or "3"/);
    // SNMPv3 needs a USM user, which a community is not.
    const v3 = target("readproperty", "charge", { forms: { charge: { "snmp:version": "3" } } });
    const failure = await failureOf(binding.readProperty(v3));
    expect(failure).toMatchObject({ reason: "unsupported" });
    expect(failure.message).toContain("SNMPv3 needs a snmp:usm security definition");
    try {
      target("writeproperty", "name", { forms: { name: { "snmp:type": "Float" } } });
      expect.unreachable();
    } catch (error) {
      expect((error as ValidationError).errors[0]?.pointer).toBe("/properties/name/forms/0/snmp:type");
    }
  });

  it("refuses an href whose path is not a numeric OID, or that names port 0, before sending", async () => {
    const bad = { ...target("readproperty", "charge"), href: `${agent.origin}/sysName.0` };
    expect(await failureOf(binding.readProperty(bad))).toMatchObject({ reason: "unsupported" });
    const zero = { ...target("readproperty", "charge"), href: `snmp://127.0.0.1:0/${CHARGE}` };
    const failure = await failureOf(binding.readProperty(zero));
    expect(failure).toMatchObject({ reason: "unsupported" });
    expect(failure.message).toContain("port 0");
  });
});

describe("SnmpBinding: observation by polling", () => {
  it("reports the first value, then each value that changed, until closed", async () => {
    const values: unknown[] = [];
    let seen: (() => void) | undefined;
    const subscription = await binding.observeProperty(
      target("observeproperty", "charge"),
      (value) => {
        values.push(value);
        seen?.();
      },
      () => undefined,
    );
    try {
      expect(values).toEqual([97]);
      const next = new Promise<void>((resolve) => (seen = resolve));
      agent.set("charge", 96);
      await next;
      expect(values).toEqual([97, 96]);
    } finally {
      await subscription.close();
    }
  });

  it("fails to observe a property that cannot be read", async () => {
    const failure = await failureOf(
      binding.observeProperty(
        target("observeproperty", "missing"),
        () => undefined,
        () => undefined,
      ),
    );
    expect(failure).toMatchObject({ reason: "status", body: "noSuchObject" });
  });
});

describe("SnmpBinding: events from traps", () => {
  const ON_BATTERY = "1.3.6.1.2.1.33.2.0.1";
  const eventTd = (origin: string, oid = ON_BATTERY): ThingDescription => ({
    ...upsTd(origin),
    events: { onBattery: { forms: [{ href: `${origin}/${oid}` }] } },
  });
  const eventTarget = (origin: string, oid?: string) =>
    targetFor(eventTd(origin, oid), {
      op: "subscribeevent",
      affordance: { kind: "event", name: "onBattery" },
      secrets,
    });

  /** Sends a notification to the receiver, as an agent on loopback would. */
  function notify(port: number, community: string, oid: string, varbinds: Varbind[], inform = false) {
    const session = createSession("127.0.0.1", community, {
      trapPort: port,
      version: Version2c,
      timeout: 1000,
    });
    return new Promise<void>((resolve, reject) => {
      const done = (error: Error | null) => {
        session.close();
        if (error === null) resolve();
        else reject(error);
      };
      if (inform) session.inform(oid, varbinds, done);
      else session.trap(oid, varbinds, done);
    });
  }

  it("hands on the traps of the event's OID from the Thing's address with its community, and no others", async () => {
    const trapping = new SnmpBinding({ traps: { port: 0, host: "127.0.0.1" } });
    try {
      const port = await trapping.listenForTraps();
      const events: unknown[] = [];
      let arrived: (() => void) | undefined;
      const subscription = await trapping.subscribeEvent(
        eventTarget("snmp://127.0.0.1"),
        (data) => {
          events.push(data);
          arrived?.();
        },
        () => undefined,
      );
      const next = () => new Promise<void>((resolve) => (arrived = resolve));
      const seconds = { oid: "1.3.6.1.2.1.33.1.2.2.0", type: ObjectType.Integer32, value: 12 };
      // Another community, another notification: not this event.
      await notify(port, "not-it", ON_BATTERY, [seconds]);
      await notify(port, COMMUNITY, "1.3.6.1.2.1.33.2.0.3", [seconds]);
      let one = next();
      await notify(port, COMMUNITY, ON_BATTERY, [seconds]);
      await one;
      expect(events).toEqual([{ "1.3.6.1.2.1.33.1.2.2.0": 12 }]);
      // An inform is acknowledged (the sender's callback resolves only then), and handed on too.
      one = next();
      await notify(port, COMMUNITY, ON_BATTERY, [{ ...seconds, value: 13 }], true);
      await one;
      expect(events).toEqual([{ "1.3.6.1.2.1.33.1.2.2.0": 12 }, { "1.3.6.1.2.1.33.1.2.2.0": 13 }]);
      await subscription.close();
    } finally {
      await trapping.close();
    }
  });

  it("refuses to subscribe without a trap port, and to a Thing at a denied address", async () => {
    const failure = await failureOf(
      binding.subscribeEvent(
        eventTarget(agent.origin),
        () => undefined,
        () => undefined,
      ),
    );
    expect(failure).toMatchObject({ reason: "unsupported" });
    expect(failure.message).toContain("--snmp-trap-port");
    const denied = new SnmpBinding({
      traps: { port: 0, host: "127.0.0.1" },
      addressPolicy: new AddressPolicy({ deny: ["127.0.0.0/8"] }),
    });
    try {
      const refused = await failureOf(
        denied.subscribeEvent(
          eventTarget("snmp://127.0.0.1"),
          () => undefined,
          () => undefined,
        ),
      );
      expect(refused).toMatchObject({ reason: "address-denied" });
    } finally {
      await denied.close();
    }
  });

  it("says when the trap port cannot be bound", async () => {
    const holder = await silentSocket();
    const taken = new SnmpBinding({ traps: { port: holder.port, host: "127.0.0.1" } });
    try {
      const failure = await failureOf(
        taken.subscribeEvent(
          eventTarget("snmp://127.0.0.1"),
          () => undefined,
          () => undefined,
        ),
      );
      expect(failure).toMatchObject({ reason: "unsupported" });
      expect(failure.message).toMatch(/trap receiver cannot listen: .*EADDRINUSE/);
    } finally {
      await taken.close();
      holder.socket.close();
    }
  });
});

describe("decodeVarbind", () => {
  it("decodes the SMIv2 types to JSON values", () => {
    const big = Buffer.from("0123456789abcdef01", "hex");
    expect(decodeVarbind({ oid: "1.3", type: ObjectType.Counter64, value: Buffer.from("00ff", "hex") })).toBe(
      255,
    );
    expect(decodeVarbind({ oid: "1.3", type: ObjectType.Counter64, value: big })).toBe(
      BigInt(`0x${big.toString("hex")}`).toString(),
    );
    expect(decodeVarbind({ oid: "1.3", type: ObjectType.TimeTicks, value: 123456 })).toBe(123456);
    expect(decodeVarbind({ oid: "1.3", type: ObjectType.Gauge32, value: 4294967295 })).toBe(4294967295);
    expect(decodeVarbind({ oid: "1.3", type: ObjectType.OctetString, value: Buffer.from("Salle B ✓") })).toBe(
      "Salle B ✓",
    );
    expect(
      decodeVarbind({ oid: "1.3", type: ObjectType.OctetString, value: Buffer.from("001a2b3c4d5e", "hex") }),
    ).toBe("00:1a:2b:3c:4d:5e");
    expect(decodeVarbind({ oid: "1.3", type: ObjectType.OID, value: "1.3.6.1.4.1.8072" })).toBe(
      "1.3.6.1.4.1.8072",
    );
    expect(decodeVarbind({ oid: "1.3", type: ObjectType.IpAddress, value: "10.0.0.7" })).toBe("10.0.0.7");
  });
});
