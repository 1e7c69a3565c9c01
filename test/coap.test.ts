// End-to-end: a real hub (port 0) managing the simulated smart plug, served over CoAP by a real
// node-coap server on loopback (port 0): writes, reads and actions through the hub's HTTP API, and
// RFC 7641 observation recorded as `reported` Changes. Every wait is for a Change, bounded.
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { request as coapRequest } from "coap";
import type { IncomingMessage } from "coap";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import type { Change } from "../src/core/index.js";
import { SimCoapServer, SmartPlug } from "../src/sim/index.js";
import { changeAfter, putTd, startTestHub, type TestHub } from "./support/test-hub.js";

const ID = "urn:test:coap:plug";
const BIN = fileURLToPath(new URL("../bin/things.js", import.meta.url));

/** `things ARGS` against the hub, as a child process (`npm run build` first). */
function things(hub: TestHub, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [BIN, ...args, "--url", hub.url, "--token", hub.token],
      { timeout: 20_000, encoding: "utf8" },
      (err, stdout, stderr) => {
        if (err === null) resolve({ code: 0, stdout, stderr });
        else if (typeof err.code === "number") resolve({ code: err.code, stdout, stderr });
        else reject(new Error(`things ${args.join(" ")} did not finish: ${stderr}`));
      },
    );
  });
}

async function history(hub: TestHub, query: string): Promise<Change[]> {
  const res = await hub.request(`${thingPath(ID)}/history?order=asc&limit=1000${query}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { changes: Change[] }).changes;
}

/** One CoAP request to the simulator, as any client would send it; its code and payload. */
function ask(
  url: string,
  method: "GET" | "PUT" | "POST",
  payload?: string,
  format = "application/json",
): Promise<{ code: string; payload: string }> {
  const target = new URL(url);
  return new Promise((resolve, reject) => {
    const req = coapRequest({
      hostname: target.hostname,
      port: Number(target.port),
      pathname: target.pathname,
      method,
      agent: false,
      ...(payload === undefined ? {} : { contentFormat: format }),
    });
    req.on("response", (res: IncomingMessage) =>
      resolve({ code: res.code, payload: res.payload.toString("utf8") }),
    );
    req.on("error", reject);
    req.end(payload);
  });
}

describe("the simulated smart plug over CoAP", () => {
  const server = new SimCoapServer();
  const plug = new SmartPlug("urn:test:coap:bare-plug", "bare-plug");
  beforeAll(async () => {
    server.add(plug);
    await server.listen("127.0.0.1", 0);
  });
  afterAll(async () => {
    await server.close();
  });

  it("serves its TD at its base, with coap forms, and refuses bad input itself with CoAP error codes", async () => {
    const base = server.baseOf(plug);
    const td = await ask(base, "GET");
    expect(td.code).toBe("2.05");
    expect(JSON.parse(td.payload)).toMatchObject({ id: plug.id, base });
    expect(await ask(`${base}properties/on`, "PUT", '"off"')).toMatchObject({ code: "4.00" });
    expect(await ask(`${base}properties/on`, "PUT", "{")).toMatchObject({ code: "4.00" });
    expect(await ask(`${base}properties/on`, "PUT", "false", "text/plain")).toMatchObject({ code: "4.15" });
    expect(await ask(`${base}properties/power`, "PUT", "5")).toEqual({
      code: "4.05",
      payload: "power is read-only",
    });
    expect(await ask(`${base}properties/nothing`, "GET")).toMatchObject({ code: "4.04" });
    expect(await ask(`${base}actions/toggle`, "GET")).toMatchObject({ code: "4.05" });
    // Nothing was changed by any of it.
    expect(plug.on).toBe(true);
    expect(await ask(`${base}actions/toggle`, "POST")).toEqual({ code: "2.04", payload: "false" });
  });
});

describe("a CoAP Thing managed through the hub", () => {
  const server = new SimCoapServer();
  const plug = new SmartPlug(ID, "plug");
  let hub: TestHub;
  let power = 0.5;

  beforeAll(async () => {
    server.add(plug);
    await server.listen("127.0.0.1", 0);
    hub = await startTestHub({ observe: true, reconnectMs: 20, maxReconnectMs: 200 });
    await putTd(hub, server.description(plug));
  });

  afterAll(async () => {
    await hub?.stop();
    await server.close();
  });

  it("observes the plug with CoAP Observe: each new power reading is a `reported` Change via coap", async () => {
    const first = await changeAfter(
      hub,
      0,
      (c) => c.thing === ID && c.kind === "reported" && c.affordance === "power",
    );
    // The registration's answer is the value the hub asked for; the notifications are pushed.
    expect(first).toMatchObject({ value: 60, cause: { actor: "hub:observer", via: "read:coap" } });
    expect(server.observers).toBe(2);
    for (const random of [0.9, 0.1, 0.75]) {
      const after = await hub.hub.store.lastSeq();
      plug.advance(2, () => random);
      const reported = await changeAfter(
        hub,
        after,
        (c) => c.thing === ID && c.kind === "reported" && c.affordance === "power",
      );
      expect(reported.value).toBe(plug.power);
      expect(reported.cause).toEqual({ actor: "hub:observer", via: "coap" });
      power = plug.power;
    }
    // One registration per property, no polling: the notifications carried the readings.
    expect(server.observers).toBe(2);
  });

  it("writes a property with PUT over CoAP: desired, then completed with one correlation; the plug switches off", async () => {
    const after = await hub.hub.store.lastSeq();
    const res = await hub.request(`${thingPath(ID)}/properties/on`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: "false",
    });
    expect(res.status).toBe(204);
    expect(plug.on).toBe(false);
    const changes = (await history(hub, "&affordance=on")).filter(
      (c) => c.seq > after && c.cause.actor === "admin",
    );
    expect(changes.map((c) => c.kind)).toEqual(["desired", "completed"]);
    expect(changes[0]).toMatchObject({ value: false, cause: { actor: "admin", via: "http" } });
    expect(changes[1]?.cause.correlation).toBe(changes[0]?.cause.correlation);
    // The plug's own notification of its new state comes back through observation.
    const reported = await changeAfter(
      hub,
      after,
      (c) => c.thing === ID && c.kind === "reported" && c.affordance === "power" && c.value === 0,
    );
    expect(reported.cause).toMatchObject({ actor: "hub:observer", via: "coap" });
  });

  it("reads a property and invokes an action through the hub", async () => {
    const read = await hub.request(`${thingPath(ID)}/properties/on`);
    expect(read.status).toBe(200);
    expect(await read.json()).toBe(false);
    const after = await hub.hub.store.lastSeq();
    const invoked = await hub.request(`${thingPath(ID)}/actions/toggle`, { method: "POST" });
    expect(invoked.status).toBe(200);
    expect(await invoked.json()).toBe(true);
    expect(plug.on).toBe(true);
    const changes = (await history(hub, "&affordance=toggle")).filter((c) => c.seq > after);
    expect(changes.map((c) => [c.kind, c.value])).toEqual([
      ["invoked", undefined],
      ["completed", true],
    ]);
    const back = await changeAfter(hub, after, (c) => c.kind === "reported" && c.affordance === "power");
    expect(back.value).toBe(power);
  });

  it("refuses a coaps-only property precisely: no form the hub can use, nothing sent", async () => {
    const td = server.description(plug);
    const id = "urn:test:coap:secure-plug";
    await putTd(hub, {
      ...td,
      id,
      base: td.base?.replace(/^coap:/, "coaps:"),
    });
    const res = await hub.request(`${thingPath(id)}/properties/on`);
    expect(res.status).toBe(404);
    expect(((await res.json()) as { detail: string }).detail).toMatch(/no form for readproperty.*coap/);
    expect((await hub.request(thingPath(id), { method: "DELETE" })).status).toBe(204);
  });

  it("answers a device's refusal with 502 and the CoAP code, recorded as failed", async () => {
    // The plug's server checks its own TD; a TD that says `power` is writable gets its 4.05.
    const td = server.description(plug);
    const power = td.properties?.power;
    if (power === undefined) throw new Error("no power property");
    await putTd(hub, {
      ...td,
      properties: {
        ...td.properties,
        power: {
          ...power,
          readOnly: false,
          forms: [{ ...power.forms[0], op: ["readproperty", "writeproperty"] }],
        },
      },
    });
    const after = await hub.hub.store.lastSeq();
    const res = await hub.request(`${thingPath(ID)}/properties/power`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: "5",
    });
    expect(res.status).toBe(502);
    const problem = (await res.json()) as { device: { reason: string; status: number; body: string } };
    expect(problem.device).toMatchObject({ reason: "status", status: 405, body: "power is read-only" });
    const changes = (await history(hub, "&affordance=power")).filter(
      (c) => c.seq > after && c.cause.actor === "admin",
    );
    expect(changes.map((c) => c.kind)).toEqual(["desired", "failed"]);
  });
});

describe("discovery over CoAP", () => {
  const server = new SimCoapServer();
  const plug = new SmartPlug("urn:test:coap:discovered-plug", "found");
  let hub: TestHub;

  beforeAll(async () => {
    server.add(plug);
    await server.listen("127.0.0.1", 0);
    hub = await startTestHub();
  });

  afterAll(async () => {
    await hub?.stop();
    await server.close();
  });

  it("`things discover coap://…` fetches the TD over CoAP and registers it", async () => {
    const run = await things(hub, ["discover", server.baseOf(plug)]);
    expect(run).toMatchObject({ code: 0, stdout: `${plug.id}\n` });
    const stored = (await (await hub.request(thingPath(plug.id))).json()) as { base: string };
    expect(stored.base).toBe(server.baseOf(plug));
    // Registered, it is used over CoAP like any other.
    const read = await hub.request(`${thingPath(plug.id)}/properties/power`);
    expect(await read.json()).toBe(60);
  });

  it("says in one line why a CoAP URL could not be discovered, and registers nothing", async () => {
    const missing = await things(hub, ["discover", `${server.url}nothing/`]);
    expect(missing.code).toBe(1);
    expect(missing.stderr.trim().split("\n")).toHaveLength(1);
    expect(missing.stderr).toMatch(/4\.04/);
    const secure = await things(hub, ["discover", "coaps://127.0.0.1:5684/plug/"]);
    expect(secure.code).toBe(1);
    expect(secure.stderr).toMatch(/not coaps:/);
    expect(((await (await hub.request("/things")).json()) as unknown[]).length).toBe(1);
  });
});
