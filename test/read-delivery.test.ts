// How a reported value was got, end to end: a real hub (port 0) observing a simulated HTTP Thing —
// one property polled, one pushed over SSE — and read through GET /things/{id}/properties/{name}
// and GraphQL's readProperty; each `reported` Change's cause says `via: "read:http"` or `"http"`,
// and GET /changes/{seq}/why and `things why SEQ` (the built CLI; `npm run build` first) say "read
// by the hub over HTTP" or "pushed by the device over HTTP".
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import type { Change } from "../src/core/index.js";
import type { Why } from "../src/hub/index.js";
import { SimulatedHttpThing } from "./support/simulated-http-thing.js";
import { changeAfter, registerThing, startTestHub, type TestHub } from "./support/test-hub.js";
import { runThingsToEnd } from "./support/things-process.js";

const ID = "urn:test:read-delivery:sensor";
const USERNAME = "operator";
const PASSWORD = `pw-${randomBytes(12).toString("hex")}`;

describe("a reported Change says whether the hub read the value or the Thing pushed it", () => {
  const device = new SimulatedHttpThing({ username: USERNAME, password: PASSWORD, pollIntervalMs: 100 });
  let hub: TestHub;

  beforeAll(async () => {
    await device.start();
    hub = await startTestHub({ observe: true, reconnectMs: 20, maxReconnectMs: 200 });
    await registerThing(hub, ID, device.td(ID), { username: USERNAME, password: PASSWORD });
  });

  afterAll(async () => {
    await hub?.stop();
    await device.stop();
  });

  const reported = (affordance: string, value: unknown) => (c: Change) =>
    c.thing === ID && c.kind === "reported" && c.affordance === affordance && c.value === value;

  const why = async (seq: number): Promise<Why> => {
    const res = await hub.request(`/changes/${seq}/why`);
    expect(res.status).toBe(200);
    return (await res.json()) as Why;
  };

  const thingsWhy = async (seq: number): Promise<string> => {
    const run = await runThingsToEnd(["why", String(seq), "--url", hub.url, "--token", hub.token]);
    expect(run).toMatchObject({ code: 0, stderr: "" });
    return run.stdout;
  };

  it("a polled property's value is via read:http; an SSE push is via http, and why says which", async () => {
    const after = await hub.hub.store.lastSeq();
    device.level = 4;
    const polled = await changeAfter(hub, after, reported("level", 4));
    expect(polled.cause).toEqual({ actor: "hub:observer", via: "read:http" });

    await device.streamOpen("/properties/temperature/observe");
    device.setTemperature(23.5);
    const pushed = await changeAfter(hub, after, reported("temperature", 23.5));
    expect(pushed.cause).toEqual({ actor: "hub:observer", via: "http" });

    expect((await why(polled.seq)).delivery).toBe("read by the hub over HTTP");
    expect((await why(pushed.seq)).delivery).toBe("pushed by the device over HTTP");
    expect(await thingsWhy(polled.seq)).toContain("cause: hub:observer, read by the hub over HTTP\n");
    expect(await thingsWhy(pushed.seq)).toContain("cause: hub:observer, pushed by the device over HTTP\n");
  });

  it("a read through GET /things/{id}/properties/{name} is via read:http with surface http", async () => {
    const after = await hub.hub.store.lastSeq();
    device.temperature = 19.25;
    const res = await hub.request(`${thingPath(ID)}/properties/temperature`);
    expect(res.status).toBe(200);
    expect(await res.json()).toBe(19.25);
    const read = await changeAfter(hub, after, reported("temperature", 19.25));
    expect(read.cause).toEqual({
      actor: "admin",
      via: "read:http",
      surface: "http",
      correlation: expect.any(String) as unknown,
    });
    expect((await why(read.seq)).delivery).toBe("read by the hub over HTTP");
    expect(await thingsWhy(read.seq)).toContain(
      "cause: admin via http, read by the hub over HTTP, correlation ",
    );
  });

  it("a read through GraphQL's readProperty keeps its surface: via read:http, surface graphql", async () => {
    const after = await hub.hub.store.lastSeq();
    device.temperature = 17.75;
    const res = await hub.request("/graphql", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        query: 'mutation ($id: ID!) { readProperty(thing: $id, name: "temperature") }',
        variables: { id: ID },
      }),
    });
    expect(await res.json()).toEqual({ data: { readProperty: 17.75 } });
    const read = await changeAfter(hub, after, reported("temperature", 17.75));
    expect(read.cause).toEqual({
      actor: "admin",
      via: "read:http",
      surface: "graphql",
      correlation: expect.any(String) as unknown,
    });

    const answer = await hub.request("/graphql", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        query: `{ change(seq: ${read.seq}) { cause { via surface } why { delivery } } }`,
      }),
    });
    expect(await answer.json()).toEqual({
      data: {
        change: {
          cause: { via: "read:http", surface: "graphql" },
          why: { delivery: "read by the hub over HTTP" },
        },
      },
    });
    expect(await thingsWhy(read.seq)).toContain(
      "cause: admin via graphql, read by the hub over HTTP, correlation ",
    );
  });

  it("a value posted to POST /things/{id}/changes is pushed: via http, no surface", async () => {
    const res = await hub.request(`${thingPath(ID)}/changes`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ kind: "reported", affordance: "temperature", value: 42.5 }),
    });
    expect(res.status).toBe(201);
    const [seq] = ((await res.json()) as { seqs: number[] }).seqs;
    const why = await hub.request(`/changes/${seq}/why`);
    const answer = (await why.json()) as Why;
    expect(answer.change.cause).toEqual({ actor: "admin", via: "http" });
    expect(answer.delivery).toBe("pushed by the device over HTTP");
  });
});
