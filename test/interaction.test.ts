// End-to-end tests of observation and command and control: a real hub (port 0) managing a
// simulated HTTP Thing (node:http, basic auth) and an MQTT Thing on the machine's broker; the
// built CLI as child processes (`npm run build` first). No protocol is mocked; every wait is for
// an event (a Change, a request), bounded, never for time to pass.
import { execFile, spawn } from "node:child_process";
import { once } from "node:events";
import { createServer as createHttpServer } from "node:http";
import { createServer as createNetServer, type AddressInfo } from "node:net";
import { createInterface } from "node:readline";
import { randomBytes } from "node:crypto";
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { fileURLToPath } from "node:url";
import { connectAsync, type MqttClient } from "mqtt";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { thingPath } from "../src/api/index.js";
import { validateThingDescription, type Change } from "../src/core/index.js";
import { CURSED_LEVEL, SimulatedHttpThing } from "./support/simulated-http-thing.js";
import {
  changeAfter,
  registerThing,
  startTestHub,
  type TestHub,
  putTd as register,
} from "./support/test-hub.js";
import { brokerProblem, brokerUrl, servicesRequired as requireServices } from "./support/mqtt-broker.js";

const BIN = fileURLToPath(new URL("../bin/things.js", import.meta.url));
const WAIT_MS = 15_000;
const USERNAME = "operator";
const PASSWORD = `pw-${randomBytes(12).toString("hex")}`;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The environment of the parent, without any HYPERTHINGS_ setting that would leak in. */
function cleanEnvironment(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!name.startsWith("HYPERTHINGS_")) env[name] = value;
  }
  return env;
}

/** `things ARGS` against the hub, as a child process. */
function things(hub: TestHub, args: string[], input = ""): Promise<Run> {
  const env = cleanEnvironment();
  return new Promise((resolve, reject) => {
    const child = execFile(
      process.execPath,
      [BIN, ...args, "--url", hub.url, "--token", hub.token],
      { env, timeout: 20_000, encoding: "utf8" },
      (err, stdout, stderr) => {
        if (err === null) resolve({ code: 0, stdout, stderr });
        else if (typeof err.code === "number") resolve({ code: err.code, stdout, stderr });
        else reject(new Error(`things ${args.join(" ")} did not finish: ${stderr}`));
      },
    );
    child.stdin?.end(input);
  });
}

async function lastSeq(hub: TestHub): Promise<number> {
  return hub.hub.store.lastSeq();
}

async function history(hub: TestHub, id: string, query = ""): Promise<Change[]> {
  const res = await hub.request(`${thingPath(id)}/history?order=asc&limit=1000${query}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { changes: Change[] }).changes;
}

function put(
  hub: TestHub,
  path: string,
  body: unknown,
  init: { auth?: boolean | string } = {},
): Promise<Response> {
  return hub.request(path, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    ...init,
  });
}

describe("a simulated HTTP Thing managed through the hub", () => {
  const id = "urn:test:interaction:sensor";
  const device = new SimulatedHttpThing({ username: USERNAME, password: PASSWORD, pollIntervalMs: 100 });
  let hub: TestHub;

  beforeAll(async () => {
    await device.start();
    hub = await startTestHub({ observe: true, reconnectMs: 20, maxReconnectMs: 200 });
    await register(hub, device.td(id));
  });

  afterAll(async () => {
    await hub?.stop();
    await device.stop();
  });

  it("without credentials, observes nothing; credentials set with the CLI reach the Thing as basic auth", async () => {
    // Registered, but the hub holds no secret for basic_sc: nothing may be sent half-authenticated.
    await hub.hub.observation?.settled();
    expect(device.requests).toEqual([]);

    const after = await lastSeq(hub);
    const run = await things(
      hub,
      ["credentials", "set", id, "--username", USERNAME, "--password", "-"],
      `${PASSWORD}\n`,
    );
    expect(run.stderr).toBe("");
    const origin = new URL(device.url).origin;
    expect(run).toMatchObject({
      code: 0,
      stdout: `credentials set for security "basic_sc" of ${id}, sent only to ${origin}\n`,
    });

    const reported = await changeAfter(hub, after, (c) => c.thing === id && c.kind === "reported");
    expect(reported.cause).toEqual({ actor: "hub:observer", via: "http" });
    const expected = `Basic ${Buffer.from(`${USERNAME}:${PASSWORD}`).toString("base64")}`;
    expect(device.requests.length).toBeGreaterThan(0);
    expect(device.requests.every((r) => r.authorization === expected)).toBe(true);

    const ls = await things(hub, ["credentials", "ls", id]);
    expect(ls).toMatchObject({ code: 0, stdout: `basic_sc\t${origin}\n` });
  });

  it("sets a Thing's bearer token with the CLI's --bearer; --token stays the hub's own token", async () => {
    const bearerId = "urn:test:interaction:bearer";
    const bearerToken = `tok-${randomBytes(12).toString("hex")}`;
    await register(hub, {
      ...device.td(bearerId),
      securityDefinitions: { bearer_sc: { scheme: "bearer" } },
      security: "bearer_sc",
    });
    const wrong = await things(hub, ["credentials", "set", bearerId, "--token", "-"], `${bearerToken}\n`);
    expect(wrong.code).toBe(2);
    expect(wrong.stderr).toContain("a Thing's bearer token is --bearer");
    const run = await things(hub, ["credentials", "set", bearerId, "--bearer", "-"], `${bearerToken}\n`);
    expect(run).toMatchObject({
      code: 0,
      stdout: `credentials set for security "bearer_sc" of ${bearerId}, sent only to ${new URL(device.url).origin}\n`,
    });
    const arrived = device.requests.length;
    await things(hub, ["read", bearerId, "temperature"]);
    expect(device.requests.slice(arrived).map((r) => r.authorization)).toContain(`Bearer ${bearerToken}`);
  });

  it("a command on a Thing whose credentials the hub lacks is a 409 that says how to set them, not a 401", async () => {
    const lockedId = "urn:test:interaction:locked";
    await register(hub, {
      ...device.td(lockedId),
      securityDefinitions: { bearer_sc: { scheme: "bearer" } },
      security: "bearer_sc",
    });
    const res = await hub.request(`${thingPath(lockedId)}/properties/temperature`);
    expect(res.status).toBe(409);
    // The caller's own token was fine: nothing tells it to sign in again.
    expect(res.headers.get("www-authenticate")).toBeNull();
    expect(((await res.json()) as { detail: string }).detail).toBe(
      `the hub holds no token for security "bearer_sc" of Thing ${lockedId}: set it with things credentials set ${lockedId} (PUT /things/{id}/credentials)`,
    );
    const run = await things(hub, ["read", lockedId, "temperature"]);
    expect(run).toMatchObject({ code: 1, stdout: "" });
    expect(run.stderr).toBe(
      `things: the hub holds no token for security "bearer_sc" of Thing ${lockedId}: set it with things credentials set ${lockedId} (PUT /things/{id}/credentials)\n`,
    );
  });

  it("refuses an empty secret in one line naming the flag, and keeps the credentials it held", async () => {
    const before = await hub.request(`${thingPath(id)}/credentials`);
    const held = await before.text();
    const cases: Array<{ args: string[]; stderr: string }> = [
      {
        args: ["--username", USERNAME, "--password", "-"],
        stderr: "things: --password -: standard input held no password; pipe it in",
      },
      { args: ["--username", USERNAME, "--password", ""], stderr: "things: --password must not be empty\n" },
      { args: ["--username", "", "--password", PASSWORD], stderr: "things: --username must not be empty\n" },
      { args: ["--bearer", "-"], stderr: "things: --bearer -: standard input held no token; pipe it in" },
    ];
    for (const { args, stderr } of cases) {
      const run = await things(hub, ["credentials", "set", id, ...args], "\n");
      expect(run.code, args.join(" ")).toBe(2);
      expect(run.stderr.startsWith(stderr), run.stderr).toBe(true);
      expect(run.stderr.split("\n")).toHaveLength(2);
    }
    const after = await hub.request(`${thingPath(id)}/credentials`);
    expect(await after.text()).toBe(held);
  });

  it("records observed values as reported Changes: pushed over SSE, and polled only when they change", async () => {
    const after = await lastSeq(hub);
    await device.streamOpen("/properties/temperature/observe");
    device.setTemperature(23.25);
    const pushed = await changeAfter(
      hub,
      after,
      (c) => c.thing === id && c.affordance === "temperature" && c.value === 23.25,
    );
    expect(pushed).toMatchObject({ kind: "reported", cause: { actor: "hub:observer", via: "http" } });

    device.level = 6;
    const polled = await changeAfter(
      hub,
      after,
      (c) => c.thing === id && c.affordance === "level" && c.value === 6,
    );
    expect(polled.kind).toBe("reported");
    // Only on change: a few more polls of the same value add nothing.
    await device.moreRequests(3);
    const levels = (await history(hub, id, "&affordance=level&kind=reported")).filter((c) => c.seq > after);
    expect(levels.map((c) => c.value)).toEqual([6]);

    const visible = await history(hub, id, "&kind=reported");
    expect(visible.some((c) => c.seq === pushed.seq && c.value === 23.25)).toBe(true);
  });

  it("records the Thing's events as emitted Changes and streams them at /things/{id}/events/{name}", async () => {
    await device.streamOpen("/events/alarm");
    const controller = new AbortController();
    const res = await hub.request(`${thingPath(id)}/events/alarm`, {
      headers: { accept: "text/event-stream" },
      signal: AbortSignal.any([controller.signal, AbortSignal.timeout(WAIT_MS)]),
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/event-stream/);
    const after = await lastSeq(hub);
    device.alarm(42);
    const emitted = await changeAfter(hub, after, (c) => c.thing === id && c.kind === "emitted");
    expect(emitted).toMatchObject({ affordance: "alarm", value: { code: 42 } });
    const reader = (res.body as ReadableStream<Uint8Array> | null)?.getReader();
    let text = "";
    while (reader !== undefined && !/data: [^\n]*\n\n/.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += new TextDecoder().decode(value);
    }
    controller.abort();
    expect(text).toContain(`id: ${emitted.seq}\n`);
    expect(text).toContain(`data: {"code":42}\n`);
  });

  it("reads through the binding and records the value, caused by the reader — once while it stays the same", async () => {
    // `name` is not observed: only the reads record it.
    const after = await lastSeq(hub);
    for (let i = 0; i < 2; i++) {
      const res = await hub.request(`${thingPath(id)}/properties/name`);
      expect(res.status).toBe(200);
      expect(await res.json()).toBe(device.name);
    }
    // The answers went out before the values were recorded (docs/bindings.md).
    await hub.hub.commands?.recorded(id);
    const reads = (await history(hub, id, "&affordance=name&kind=reported")).filter((c) => c.seq > after);
    expect(reads).toHaveLength(1);
    expect(reads[0]).toMatchObject({
      kind: "reported",
      value: device.name,
      // How the hub got it (it read the Thing over HTTP), and what the reader asked through.
      cause: { actor: "admin", via: "read:http", surface: "http" },
    });
    expect(typeof reads[0]?.cause.correlation).toBe("string");

    const anonymous = await hub.request(`${thingPath(id)}/properties/level`, { auth: false });
    expect(anonymous.status).toBe(401);
  });

  it('records every read of a property whose hyperthings:record is "every"', async () => {
    const everyId = `${id}:every`;
    const td = device.td(everyId);
    const properties = td.properties as Record<string, Record<string, unknown>>;
    properties.name = { ...properties.name, "hyperthings:record": "every" };
    await register(hub, td);
    const credentials = await put(hub, `${thingPath(everyId)}/credentials`, {
      username: USERNAME,
      password: PASSWORD,
    });
    expect(credentials.status).toBe(200);
    const after = await lastSeq(hub);
    for (let i = 0; i < 2; i++) {
      const res = await hub.request(`${thingPath(everyId)}/properties/name`);
      expect(await res.json()).toBe(device.name);
    }
    await hub.hub.commands?.recorded(everyId);
    const reads = (await history(hub, everyId, "&affordance=name&kind=reported")).filter(
      (c) => c.seq > after,
    );
    expect(reads.map((c) => c.value)).toEqual([device.name, device.name]);
    // The same device under a second id would be observed twice; later tests count its requests.
    expect((await hub.request(thingPath(everyId), { method: "DELETE" })).status).toBe(204);
  });

  it("writes: desired, then completed with the same correlation; the value reaches the Thing", async () => {
    const after = await lastSeq(hub);
    const res = await put(hub, `${thingPath(id)}/properties/level`, 3);
    expect(res.status).toBe(204);
    expect(device.level).toBe(3);
    const last = device.requests.filter((r) => r.method === "PUT").at(-1);
    expect(last?.body).toBe("3");
    const changes = (await history(hub, id, "&affordance=level")).filter(
      (c) => c.seq > after && c.cause.actor === "admin",
    );
    expect(changes.map((c) => c.kind)).toEqual(["desired", "completed"]);
    expect(changes[0]).toMatchObject({ value: 3, cause: { actor: "admin", via: "http" } });
    expect(changes[1]?.cause.correlation).toBe(changes[0]?.cause.correlation);
  });

  it("a write the Thing refuses: 502 with the device's answer, recorded as failed", async () => {
    const after = await lastSeq(hub);
    const res = await put(hub, `${thingPath(id)}/properties/level`, CURSED_LEVEL);
    expect(res.status).toBe(502);
    expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    const problem = (await res.json()) as { thing: string; device: { status: number; body: string } };
    expect(problem.thing).toBe(id);
    expect(problem.device.status).toBe(409);
    expect(problem.device.body).toContain("door is open");
    const changes = (await history(hub, id, "&affordance=level")).filter(
      (c) => c.seq > after && c.cause.actor === "admin",
    );
    expect(changes.map((c) => c.kind)).toEqual(["desired", "failed"]);
    expect(changes[1]?.cause.correlation).toBe(changes[0]?.cause.correlation);
    expect(changes[1]?.value).toMatchObject({ reason: "status", status: 409 });
  });

  it("refuses a bad value, a read-only property and unknown affordances without reaching the Thing", async () => {
    const after = await lastSeq(hub);
    const writes = () => device.requests.filter((r) => r.method !== "GET").length;
    const before = writes();

    const bad = await put(hub, `${thingPath(id)}/properties/level`, 11);
    expect(bad.status).toBe(400);
    expect(((await bad.json()) as { detail: string }).detail).toMatch(/does not fit/);
    const wrongType = await put(hub, `${thingPath(id)}/properties/level`, "high");
    expect(wrongType.status).toBe(400);
    const readOnly = await put(hub, `${thingPath(id)}/properties/name`, "other");
    expect(readOnly.status).toBe(400);
    expect(((await readOnly.json()) as { detail: string }).detail).toMatch(/read-only/);
    const badInput = await hub.request(`${thingPath(id)}/actions/reset`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ to: "zero" }),
    });
    expect(badInput.status).toBe(400);
    // No input at all, for an action whose input has required members: refused, not sent.
    const noInput = await hub.request(`${thingPath(id)}/actions/reset`, { method: "POST" });
    expect(noInput.status).toBe(400);
    expect(await noInput.json()).toMatchObject({
      detail: "The action reset takes an input: an object with to",
      errors: [{ pointer: "", detail: "an input is required" }],
    });

    expect((await hub.request(`${thingPath(id)}/properties/nope`)).status).toBe(404);
    expect((await put(hub, `${thingPath(id)}/properties/nope`, 1)).status).toBe(404);
    expect((await hub.request(`${thingPath(id)}/actions/nope`, { method: "POST" })).status).toBe(404);
    expect((await hub.request(`${thingPath("urn:test:none")}/properties/level`)).status).toBe(404);

    expect(writes()).toBe(before);
    const commands = (await history(hub, id)).filter((c) => c.seq > after && c.cause.actor === "admin");
    expect(commands).toEqual([]);
  });

  it("invokes a synchronous action: invoked, then completed with the output, one correlation", async () => {
    const after = await lastSeq(hub);
    const res = await hub.request(`${thingPath(id)}/actions/reset`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ to: 2 }),
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ level: 2 });
    const changes = (await history(hub, id, "&affordance=reset")).filter((c) => c.seq > after);
    expect(changes.map((c) => [c.kind, c.value])).toEqual([
      ["invoked", { to: 2 }],
      ["completed", { level: 2 }],
    ]);
    expect(changes[0]?.cause).toMatchObject({ actor: "admin", via: "http" });
    expect(changes[1]?.cause.correlation).toBe(changes[0]?.cause.correlation);
  });

  it("invokes an asynchronous action: 201 and a hub-side status resource that ends completed", async () => {
    const after = await lastSeq(hub);
    const res = await hub.request(`${thingPath(id)}/actions/calibrate`, { method: "POST" });
    expect(res.status).toBe(201);
    const location = res.headers.get("location") ?? "";
    expect(location).toMatch(new RegExp(`^${thingPath(id)}/actions/calibrate/[0-9a-f-]{36}$`));
    expect(await res.json()).toEqual({ status: "running", href: location });
    const completed = await changeAfter(hub, after, (c) => c.thing === id && c.kind === "completed");
    expect(completed).toMatchObject({ affordance: "calibrate", value: { offset: 0.5 } });
    expect(location.endsWith(completed.cause.correlation ?? "?")).toBe(true);
    const status = await hub.request(location);
    expect(await status.json()).toEqual({ status: "completed", output: { offset: 0.5 }, href: location });
  });

  it("serves a proxy TD that validates, whose write form works through the hub", async () => {
    const res = await hub.request(`${thingPath(id)}/proxy`);
    expect(res.status).toBe(200);
    const proxy = (await res.json()) as Record<string, unknown> & {
      properties: Record<string, { forms: { href: string; op: string[] }[] }>;
      securityDefinitions: Record<string, { scheme: string }>;
    };
    expect(() => validateThingDescription(proxy)).not.toThrow();
    expect(proxy.id).toBe(id);
    expect(Object.values(proxy.securityDefinitions).map((s) => s.scheme)).toEqual(["bearer"]);
    const hrefs = JSON.stringify(proxy).match(/"href":"[^"]*"/g) ?? [];
    expect(hrefs.length).toBeGreaterThan(0);
    expect(hrefs.every((h) => h.startsWith(`"href":"${hub.url}/things/`))).toBe(true);
    expect(JSON.stringify(proxy)).not.toContain(device.url);

    const form = proxy.properties.level?.forms.find((f) => f.op.includes("writeproperty"));
    expect(form).toBeDefined();
    const write = await fetch(form?.href ?? "", {
      method: "PUT",
      headers: { authorization: `Bearer ${hub.token}`, "content-type": "application/json" },
      body: "5",
    });
    expect(write.status).toBe(204);
    expect(device.level).toBe(5);
  });

  it("reads, writes and invokes with the CLI", async () => {
    device.level = 7;
    expect(await things(hub, ["read", id, "level"])).toMatchObject({ code: 0, stdout: "7\n" });
    expect(await things(hub, ["read", id, "name"])).toMatchObject({ code: 0, stdout: '"sim-1"\n' });
    expect(await things(hub, ["write", id, "level", "8"])).toMatchObject({ code: 0, stdout: "" });
    expect(device.level).toBe(8);
    expect(await things(hub, ["invoke", id, "reset", '{"to":1}'])).toMatchObject({
      code: 0,
      stdout: '{"level":1}\n',
    });
    expect(device.level).toBe(1);
    expect(await things(hub, ["invoke", id, "calibrate"])).toMatchObject({
      code: 0,
      stdout: '{"offset":0.5}\n',
    });
  });

  it("the CLI says in one line why a write was refused or failed", async () => {
    const refused = await things(hub, ["write", id, "level", "loud"]);
    expect(refused.code).toBe(1);
    expect(refused.stderr).toMatch(/^things: The value for level does not fit its schema[^\n]*\n$/);
    // What was not JSON went as a string, and the line says so.
    expect(refused.stderr).toContain('(loud is not JSON, so it was sent as the string "loud")');
    const failed = await things(hub, ["write", id, "level", String(CURSED_LEVEL)]);
    expect(failed.code).toBe(1);
    expect(failed.stderr).toMatch(/^things: the Thing failed: [^\n]*409[^\n]*\n$/);
    // …and in the device's own words, taken from its JSON answer.
    expect(failed.stderr).toContain(
      `(the device said: level ${CURSED_LEVEL} is not allowed while the door is open)\n`,
    );
  });

  it("the CLI says where a value that looks like JSON breaks, and how to quote it, sending nothing", async () => {
    const before = device.level;
    const object = await things(hub, ["invoke", id, "reset", "{to:1}"]);
    expect(object).toMatchObject({ code: 2, stdout: "" });
    expect(object.stderr).toBe(
      `things: {to:1} is not valid JSON (at line 1, column 2: unexpected "t"; expected a member name in double quotes): put it in single quotes, its names and strings in double quotes: '{"size":"double"}'\n`,
    );
    const quoted = await things(hub, ["write", id, "name", '"sim-2']);
    expect(quoted).toMatchObject({ code: 2, stdout: "" });
    expect(quoted.stderr).toBe(
      'things: "sim-2 is not valid JSON (at line 1, column 7: unterminated string): a plain string needs no double quotes\n',
    );
    expect(device.level).toBe(before);
  });

  it("the CLI refuses an integer a 64-bit float would round, sending nothing, rather than send it rounded", async () => {
    const before = device.level;
    const refused = await things(hub, ["write", id, "level", "9007199254740993"]);
    expect(refused).toMatchObject({ code: 2, stdout: "" });
    expect(refused.stderr).toBe(
      "things: 9007199254740993: The JSON at the top level is 9007199254740993, which a JSON number here (a 64-bit float) holds only as 9007199254740992: send it as a string, or with an exponent to take the nearest float\n",
    );
    const nested = await things(hub, ["invoke", id, "reset", '{"to":12345678901234567890}']);
    expect(nested).toMatchObject({ code: 2, stdout: "" });
    expect(nested.stderr).toContain("The JSON at /to is 12345678901234567890");
    expect(device.level).toBe(before);
  });

  it("observes a Thing's values live with the CLI until Ctrl-C", async () => {
    const child = spawn(
      process.execPath,
      [BIN, "observe", id, "level", "--json", "--url", hub.url, "--token", hub.token],
      {
        env: cleanEnvironment(),
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    const bound = setTimeout(() => child.kill("SIGKILL"), WAIT_MS);
    try {
      const lines = createInterface({ input: child.stdout })[Symbol.asyncIterator]();
      const next = async (): Promise<{ affordance: string; kind: string; value: unknown }> => {
        const line = await lines.next();
        if (line.done === true) throw new Error("things observe ended early");
        return JSON.parse(line.value) as { affordance: string; kind: string; value: unknown };
      };
      const now = await next();
      expect(now).toMatchObject({ affordance: "level", kind: "reported", value: device.level });
      device.level = now.value === 0 ? 1 : 0;
      let live = await next();
      while (live.value !== device.level) live = await next();
      expect(live).toMatchObject({ affordance: "level", kind: "reported" });
      const exited = once(child, "exit");
      child.kill("SIGINT");
      const [code] = (await exited) as [number | null];
      expect(code).toBe(0);
    } finally {
      clearTimeout(bound);
    }
  });

  it("never returns the credentials: no API answer holds the password, nor the database file", async () => {
    const paths = [
      "/things",
      thingPath(id),
      `${thingPath(id)}/proxy`,
      `${thingPath(id)}/credentials`,
      `${thingPath(id)}/history?limit=10000`,
      `${thingPath(id)}/state`,
      "/changes?limit=10000",
      "/search/jsonpath?query=%24..*",
      "/.well-known/wot",
      "/openapi.json",
      "/health",
    ];
    for (const path of paths) {
      const res = await hub.request(path);
      expect(res.status, path).toBe(200);
      const text = await res.text();
      expect(text, path).not.toContain(PASSWORD);
      expect(text, path).not.toContain(Buffer.from(`${USERNAME}:${PASSWORD}`).toString("base64"));
    }
    const names = await hub.request(`${thingPath(id)}/credentials`);
    expect(await names.json()).toEqual({
      names: ["basic_sc"],
      origins: { basic_sc: [new URL(device.url).origin] },
    });
    const readerless = await hub.request(`${thingPath(id)}/credentials`, { auth: false });
    expect(readerless.status).toBe(401);
    for (const file of readdirSync(hub.dataDir)) {
      const bytes = readFileSync(join(hub.dataDir, file));
      expect(bytes.includes(PASSWORD), file).toBe(false);
    }
  });

  it("does not send a Thing's credentials to a form its TD moved to another origin, until they are set again", async () => {
    const movedId = "urn:test:interaction:moved";
    await register(hub, device.td(movedId));
    await put(hub, `${thingPath(movedId)}/credentials`, { username: USERNAME, password: PASSWORD });
    expect((await hub.request(`${thingPath(movedId)}/properties/name`)).status).toBe(200);

    // Another server, as a TD changed by someone who wants the password would name.
    const seen: (string | undefined)[] = [];
    const stranger = createHttpServer((req, res) => {
      seen.push(req.headers.authorization);
      res.setHeader("content-type", "application/json");
      res.end(JSON.stringify("stranger"));
    });
    stranger.listen(0, "127.0.0.1");
    await once(stranger, "listening");
    const strangerUrl = `http://127.0.0.1:${(stranger.address() as AddressInfo).port}`;
    try {
      const td = device.td(movedId) as { properties: Record<string, { forms: { href: string }[] }> };
      const name = td.properties.name;
      if (name === undefined) throw new Error("the simulated Thing has no name property");
      name.forms = [{ href: `${strangerUrl}/name` }];
      expect((await put(hub, thingPath(movedId), td)).status).toBe(204);

      const refused = await hub.request(`${thingPath(movedId)}/properties/name`);
      expect(refused.status).toBe(409);
      const problem = (await refused.json()) as { detail: string };
      expect(problem.detail).toContain(`were set for ${new URL(device.url).origin}`);
      expect(problem.detail).toContain(`now points at ${strangerUrl}`);
      expect(seen).toEqual([]);

      // Set again, for the TD as it is now: they go there.
      const set = await put(hub, `${thingPath(movedId)}/credentials`, {
        username: USERNAME,
        password: PASSWORD,
      });
      expect(await set.json()).toEqual({
        schemeName: "basic_sc",
        origins: [new URL(device.url).origin, strangerUrl].sort(),
      });
      const read = await hub.request(`${thingPath(movedId)}/properties/name`);
      expect(await read.json()).toBe("stranger");
      expect(seen).toEqual([`Basic ${Buffer.from(`${USERNAME}:${PASSWORD}`).toString("base64")}`]);
    } finally {
      // Its observation would keep asking the simulated Thing, which a later test counts.
      expect((await hub.request(thingPath(movedId), { method: "DELETE" })).status).toBe(204);
      stranger.close();
    }
  });

  it("records one unreachable Change when the Thing goes away and one reachable when it is back", async () => {
    const after = await lastSeq(hub);
    await device.stop();
    const away = await changeAfter(hub, after, (c) => c.thing === id && c.kind === "unreachable");
    expect(away.affordance).toBeUndefined();
    expect(typeof away.value).toBe("string");
    expect(away.cause).toEqual({ actor: "hub:observer", via: "http" });

    await device.start();
    const back = await changeAfter(hub, away.seq, (c) => c.thing === id && c.kind === "reachable");
    expect(back.affordance).toBeUndefined();
    // The observation goes on: a new value is recorded after the return.
    device.level = 10;
    await changeAfter(hub, back.seq, (c) => c.thing === id && c.affordance === "level" && c.value === 10);
    const turns = (await history(hub, id, "&kind=unreachable,reachable")).filter((c) => c.seq > after);
    expect(turns.map((c) => c.kind)).toEqual(["unreachable", "reachable"]);
  });

  it("records one unreachable Change, and no reachable, for a Thing whose event connections are dropped at once", async () => {
    // A Thing whose port takes each connection and closes it: nothing is ever answered.
    const connections: number[] = [];
    const waiters: Array<() => void> = [];
    const dropper = createNetServer((socket) => {
      connections.push(Date.now());
      socket.destroy();
      for (const wake of waiters.splice(0)) wake();
    });
    await new Promise<void>((resolve) => dropper.listen(0, "127.0.0.1", resolve));
    const { port } = dropper.address() as AddressInfo;
    const dropId = "urn:test:interaction:dropper";
    try {
      const after = await lastSeq(hub);
      await register(hub, {
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        id: dropId,
        title: "Dropper",
        securityDefinitions: { nosec_sc: { scheme: "nosec" } },
        security: "nosec_sc",
        events: {
          alarm: { data: { type: "string" }, forms: [{ href: `http://127.0.0.1:${port}/events/alarm` }] },
        },
      });
      await changeAfter(hub, after, (c) => c.thing === dropId && c.kind === "unreachable");
      // Six more tries (the hub retries with backoff from 20 ms): each is a connection here.
      const seen = connections.length;
      while (connections.length < seen + 6) {
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(
            () => reject(new Error(`${connections.length - seen} tries came`)),
            WAIT_MS,
          );
          waiters.push(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      }
      const turns = (await history(hub, dropId, "&kind=unreachable,reachable")).map((c) => c.kind);
      expect(turns).toEqual(["unreachable"]);
    } finally {
      await hub.request(thingPath(dropId), { method: "DELETE" });
      await new Promise<void>((resolve) => dropper.close(() => resolve()));
    }
  });

  it("records a failed Change, with the Thing's answer, when the Thing refuses a property's observation", async () => {
    // A Thing whose token expired after two reads: every later read is answered 401.
    let reads = 0;
    const expiring = createHttpServer((_req, res) => {
      if (++reads <= 2) res.writeHead(200, { "content-type": "application/json" }).end(String(reads));
      else res.writeHead(401, { "content-type": "text/plain" }).end("token expired");
    });
    await new Promise<void>((resolve) => expiring.listen(0, "127.0.0.1", resolve));
    const { port } = expiring.address() as AddressInfo;
    const expiringId = "urn:test:interaction:expiring";
    try {
      const after = await lastSeq(hub);
      await register(hub, {
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        id: expiringId,
        title: "Expiring",
        securityDefinitions: { nosec_sc: { scheme: "nosec" } },
        security: "nosec_sc",
        properties: {
          count: {
            type: "integer",
            observable: true,
            "hyperthings:pollInterval": 100,
            forms: [{ href: `http://127.0.0.1:${port}/count` }],
          },
        },
      });
      const failed = await changeAfter(hub, after, (c) => c.thing === expiringId && c.kind === "failed");
      expect(failed).toMatchObject({
        affordance: "count",
        cause: { actor: "hub:observer", via: "http" },
        value: { reason: "status", status: 401, body: "token expired" },
      });
      expect((failed.value as { message: string }).message).toMatch(/^not observed any more: .*401/);
      const kinds = (await history(hub, expiringId)).map((c) => `${c.kind} ${String(c.value)}`);
      expect(kinds.slice(1, 3)).toEqual(["reported 1", "reported 2"]);
    } finally {
      await hub.request(thingPath(expiringId), { method: "DELETE" });
      await new Promise<void>((resolve) => expiring.close(() => resolve()));
    }
  });

  it("records the end of a write and an invocation in flight when the Thing is removed, and answers it", async () => {
    const other = new SimulatedHttpThing({ username: USERNAME, password: PASSWORD });
    await other.start();
    try {
      const otherId = "urn:test:interaction:removed-in-flight";
      await registerThing(hub, otherId, other.td(otherId), { username: USERNAME, password: PASSWORD });
      const release = other.holdAnswers();
      const write = put(hub, `${thingPath(otherId)}/properties/level`, 4);
      const invoke = hub.request(`${thingPath(otherId)}/actions/reset`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ to: 2 }),
      });
      // Both commands have reached the Thing, which holds its answers.
      await vi.waitFor(
        () => {
          expect(
            other.requests
              .filter((r) => r.method !== "GET")
              .map((r) => r.path)
              .sort(),
          ).toEqual(["/actions/reset", "/properties/level"]);
        },
        { timeout: WAIT_MS, interval: 20 },
      );
      expect((await hub.request(thingPath(otherId), { method: "DELETE" })).status).toBe(204);
      release();
      expect((await write).status).toBe(204);
      const invoked = await invoke;
      expect(invoked.status).toBe(200);
      expect(await invoked.json()).toEqual({ level: 2 });
      const changes = await history(hub, otherId);
      const kinds = changes.map((c) => `${c.kind}${c.affordance === undefined ? "" : ` ${c.affordance}`}`);
      expect(kinds.slice(kinds.indexOf("removed"))).toEqual(
        expect.arrayContaining(["removed", "completed level", "completed reset"]),
      );
      const desired = changes.find((c) => c.kind === "desired");
      const completed = changes.find((c) => c.kind === "completed" && c.affordance === "level");
      expect(completed?.cause.correlation).toBe(desired?.cause.correlation);
      expect(changes.find((c) => c.kind === "completed" && c.affordance === "reset")?.value).toEqual({
        level: 2,
      });
      // The removed Thing's other reports are still refused.
      await expect(
        hub.hub.ingest(otherId, [{ kind: "reported", affordance: "level", value: 1 }], {
          actor: "test",
          via: "test",
        }),
      ).rejects.toThrow(/No Thing/);
    } finally {
      await other.stop();
    }
  });

  it("stops observing a removed Thing: it gets no more requests", async () => {
    const control = new SimulatedHttpThing({ username: USERNAME, password: PASSWORD, pollIntervalMs: 100 });
    await control.start();
    try {
      const controlId = "urn:test:interaction:control";
      await register(hub, control.td(controlId));
      await things(hub, ["credentials", "set", controlId, "--username", USERNAME, "--password", PASSWORD]);
      await control.moreRequests(1);

      const removed = await hub.request(thingPath(id), { method: "DELETE" });
      expect(removed.status).toBe(204);
      // The barrier: the removal has reached the observation (the bus may deliver it after the
      // answer), every stop it asked for is done, and the control Thing has been polled several
      // times since, as the removed one would have been.
      await vi.waitFor(() => expect(hub.hub.observation?.status().map((s) => s.thing)).not.toContain(id), {
        timeout: 10_000,
        interval: 20,
      });
      await hub.hub.observation?.settled();
      const count = device.requests.length;
      await control.moreRequests(5);
      expect(device.requests.length).toBe(count);
      // Its credentials went with it.
      expect(await hub.hub.secrets?.names(id)).toEqual([]);
    } finally {
      await control.stop();
    }
  });
});

const problem = await brokerProblem();

if (problem !== undefined && !requireServices) {
  describe("an MQTT Thing observed through the machine's broker", () => {
    it.skip(`skipped: no MQTT broker at ${brokerUrl} (${problem})`, () => undefined);
  });
} else {
  describe("an MQTT Thing observed through the machine's broker", () => {
    const id = "urn:test:interaction:mqtt-thermostat";
    const prefix = `hyperthings-test/${randomBytes(6).toString("hex")}`;
    let hub: TestHub;
    let device: MqttClient;

    beforeAll(async () => {
      if (problem !== undefined) throw new Error(`no MQTT broker at ${brokerUrl}: ${problem}`);
      device = await connectAsync(brokerUrl, { reconnectPeriod: 0 });
      hub = await startTestHub({ observe: true, reconnectMs: 20, maxReconnectMs: 200 });
    });

    afterAll(async () => {
      // Clear the retained value for the next run.
      await device?.publishAsync(`${prefix}/temperature`, "", { retain: true, qos: 1 });
      await device?.endAsync();
      await hub?.stop();
    });

    it("records what the Thing publishes on its mqv:topic as reported Changes", async () => {
      // Retained, so the hub gets it whenever its subscription starts: no race with the publish.
      await device.publishAsync(`${prefix}/temperature`, "19.5", { retain: true, qos: 1 });
      const after = await lastSeq(hub);
      await register(hub, {
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        id,
        title: "MQTT thermostat",
        securityDefinitions: { nosec_sc: { scheme: "nosec" } },
        security: "nosec_sc",
        properties: {
          temperature: {
            type: "number",
            observable: true,
            "hyperthings:record": "every",
            forms: [
              {
                href: brokerUrl,
                "mqv:topic": `${prefix}/temperature`,
                op: "observeproperty",
                "mqv:qos": "1",
              },
            ],
          },
        },
      });
      const first = await changeAfter(hub, after, (c) => c.thing === id && c.kind === "reported");
      expect(first).toMatchObject({
        affordance: "temperature",
        value: 19.5,
        // The broker's retained value, sent because the hub subscribed: read, not published.
        cause: { actor: "hub:observer", via: "read:mqtt" },
      });

      await device.publishAsync(`${prefix}/temperature`, "20.25", { qos: 1 });
      const second = await changeAfter(hub, first.seq, (c) => c.thing === id && c.kind === "reported");
      expect(second.value).toBe(20.25);
      expect(second.cause).toEqual({ actor: "hub:observer", via: "mqtt" });
      // "every": the same value again is a new sample.
      await device.publishAsync(`${prefix}/temperature`, "20.25", { qos: 1 });
      const third = await changeAfter(hub, second.seq, (c) => c.thing === id && c.kind === "reported");
      expect(third.value).toBe(20.25);

      // Garbage that does not fit the schema is recorded as failed, never as state.
      await device.publishAsync(`${prefix}/temperature`, "warm", { qos: 1 });
      const failed = await changeAfter(hub, third.seq, (c) => c.thing === id && c.kind !== "reported");
      expect(failed).toMatchObject({
        kind: "failed",
        affordance: "temperature",
        value: { reason: "invalid" },
      });
      const state = (await (await hub.request(`${thingPath(id)}/state`)).json()) as {
        properties: Record<string, { value: unknown }>;
      };
      expect(state.properties.temperature?.value).toBe(20.25);
    });
  });
}

describe("a device's error answer that quotes the Thing's secret", () => {
  const id = "urn:test:interaction:echoing";
  // The device refuses every request, and its answer repeats the token it was sent.
  const device = createHttpServer((req, res) => {
    const token = (req.headers.authorization ?? "").replace(/^Bearer /, "");
    res
      .writeHead(500, { "content-type": "text/plain" })
      .end(
        `a device refused token ${token} (Authorization: ${req.headers.authorization ?? ""}); glued:${token}x`,
      );
  });
  let hub: TestHub;

  beforeAll(async () => {
    device.listen(0, "127.0.0.1");
    await once(device, "listening");
    const { port } = device.address() as AddressInfo;
    hub = await startTestHub({ observe: false });
    await register(hub, {
      "@context": "https://www.w3.org/2022/wot/td/v1.1",
      id,
      title: "Echoing",
      securityDefinitions: { bearer_sc: { scheme: "bearer" } },
      security: "bearer_sc",
      base: `http://127.0.0.1:${port}/`,
      properties: { level: { type: "number", forms: [{ href: "level" }] } },
    });
  });

  afterAll(async () => {
    await hub?.stop();
    device.close();
  });

  /** The CLI's line and the API's problem document for a read that the device refuses. */
  async function refusedRead(secret: string): Promise<{ cli: Run; problem: string }> {
    const set = await things(hub, ["credentials", "set", id, "--bearer", "-"], `${secret}\n`);
    expect(set.code).toBe(0);
    const cli = await things(hub, ["read", id, "level"]);
    expect(cli.code).toBe(1);
    const res = await hub.request(`${thingPath(id)}/properties/level`);
    expect(res.status).toBeGreaterThanOrEqual(500);
    return { cli, problem: await res.text() };
  }

  it("redacts a long secret wherever it appears, even inside other text", async () => {
    const secret = `tok-${randomBytes(12).toString("hex")}`;
    const { cli, problem } = await refusedRead(secret);
    for (const text of [cli.stderr, problem]) expect(text).not.toContain(secret);
    const body = (JSON.parse(problem) as { device?: { body?: string } }).device?.body;
    expect(body).toBe(
      "a device refused token [redacted] (Authorization: Bearer [redacted]); glued:[redacted]x",
    );
  });

  it("redacts a one-letter secret where it stands as itself, and leaves the words that contain it readable", async () => {
    const { cli, problem } = await refusedRead("a");
    const body = (JSON.parse(problem) as { device?: { body?: string } }).device?.body;
    expect(body).toBe(
      "[redacted] device refused token [redacted] (Authorization: Bearer [redacted]); glued:ax",
    );
    expect(`${cli.stderr}${problem}`).not.toMatch(/\[redacted\]\w|\w\[redacted\]/);
  });
});
