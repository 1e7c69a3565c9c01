// End-to-end: a Thing whose forms take URI variables (TD `uriVariables`, RFC 6570 `{?x}`), used
// through the hub: the query string of the hub's interaction endpoints is passed on as those
// variables, typed and checked by their schemas; anything else is refused before the Thing is asked.
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { Servient } from "@node-wot/core";
// A CommonJS package whose named exports Node's loader cannot see: taken from its module.exports.
import wotHttp from "@node-wot/binding-http";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import type { Change } from "../src/core/index.js";
import { putTd, startTestHub, type TestHub } from "./support/test-hub.js";
import { runThings, runThingsToEnd, type ThingsRun } from "./support/things-process.js";

const ID = "urn:test:uri-variables:counter";
/** `things ARGS` against the hub, as a child process, without HYPERTHINGS_ settings of the parent. */
function things(hub: TestHub, args: string[]): Promise<ThingsRun> {
  return runThingsToEnd([...args, "--url", hub.url, "--token", hub.token]);
}

describe("URI variables through the hub", () => {
  let hub: TestHub;
  let device: Server;
  let deviceUrl: string;
  /** The path and query of every request the Thing got. */
  const requests: string[] = [];
  let counter = 0;

  beforeAll(async () => {
    device = createServer((req, res) => {
      const url = new URL(req.url ?? "/", "http://device");
      requests.push(`${req.method} ${url.pathname}${url.search}`);
      res.setHeader("content-type", "application/json");
      if (url.pathname.startsWith("/files/")) {
        res.end(JSON.stringify(url.pathname));
      } else if (url.pathname === "/temperature") {
        res.end(JSON.stringify(url.searchParams.get("unit") === "F" ? 70 : 21));
      } else if (url.pathname === "/increment") {
        counter += Number(url.searchParams.get("step") ?? "1");
        res.end(JSON.stringify(counter));
      } else {
        res.statusCode = 404;
        res.end("{}");
      }
    });
    device.listen(0, "127.0.0.1");
    await once(device, "listening");
    deviceUrl = `http://127.0.0.1:${(device.address() as AddressInfo).port}/`;
    hub = await startTestHub();
    await putTd(hub, {
      "@context": "https://www.w3.org/2022/wot/td/v1.1",
      id: ID,
      title: "Counter",
      base: deviceUrl,
      securityDefinitions: { nosec_sc: { scheme: "nosec" } },
      security: "nosec_sc",
      properties: {
        temperature: {
          type: "number",
          readOnly: true,
          uriVariables: { unit: { type: "string", enum: ["C", "F"] } },
          forms: [{ href: "temperature{?unit}" }],
        },
        file: {
          type: "string",
          readOnly: true,
          uriVariables: { name: { type: "string" } },
          forms: [{ href: "files/{name}" }],
        },
        tree: {
          type: "string",
          readOnly: true,
          uriVariables: { path: { type: "string" } },
          forms: [{ href: "files/{+path}" }],
        },
      },
      actions: {
        increment: {
          output: { type: "integer" },
          uriVariables: { step: { type: "integer", minimum: 1 } },
          forms: [{ href: "increment{?step}" }],
        },
      },
    });
  });

  afterAll(async () => {
    await hub?.stop();
    device?.close();
  });

  async function changesSince(seq: number): Promise<Change[]> {
    await hub.hub.commands?.recorded(ID);
    const res = await hub.request(`${thingPath(ID)}/history?order=asc&limit=1000`);
    return ((await res.json()) as { changes: Change[] }).changes.filter((c) => c.seq > seq);
  }

  it("passes a property read's query on as its URI variables, and records only the plain read", async () => {
    const before = await hub.hub.store.lastSeq();
    const fahrenheit = await hub.request(`${thingPath(ID)}/properties/temperature?unit=F`);
    expect(fahrenheit.status).toBe(200);
    expect(await fahrenheit.json()).toBe(70);
    expect(requests.at(-1)).toBe("GET /temperature?unit=F");
    // What a read with variables answers depends on them: it is not the property's state.
    expect(await changesSince(before)).toEqual([]);

    const plain = await hub.request(`${thingPath(ID)}/properties/temperature`);
    expect(await plain.json()).toBe(21);
    expect(requests.at(-1)).toBe("GET /temperature");
    expect(await changesSince(before)).toMatchObject([
      { kind: "reported", affordance: "temperature", value: 21 },
    ]);
  });

  it("invokes an action with its typed URI variables, recorded in the cause of its Changes", async () => {
    const before = await hub.hub.store.lastSeq();
    const res = await hub.request(`${thingPath(ID)}/actions/increment?step=3`, { method: "POST" });
    expect(res.status).toBe(200);
    expect(await res.json()).toBe(counter);
    expect(requests.at(-1)).toBe("POST /increment?step=3");
    const changes = await changesSince(before);
    expect(changes.map((c) => c.kind)).toEqual(["invoked", "completed"]);
    for (const change of changes) expect(change.cause.uriVariables).toEqual({ step: 3 });
  });

  it("things watch --json prints each Change as the Log holds it, the cause's URI variables too", async () => {
    const before = await hub.hub.store.lastSeq();
    const since = new Date(Date.now() - 1000).toISOString();
    const res = await hub.request(`${thingPath(ID)}/actions/increment?step=3`, { method: "POST" });
    expect(res.status).toBe(200);
    const logged = await changesSince(before);
    expect(logged.map((c) => c.kind)).toEqual(["invoked", "completed"]);
    const last = logged.at(-1)?.seq ?? 0;
    const watcher = runThings(
      ["watch", "--thing", ID, "--since", since, "--json", "--url", hub.url, "--token", hub.token],
      { TZ: "UTC" },
    );
    try {
      await watcher.waitFor(new RegExp(`"seq":${last}\\b`));
      const lines = watcher
        .stdout()
        .trim()
        .split("\n")
        .map((line) => JSON.parse(line) as Change)
        .filter((c) => c.seq > before);
      // Every member, as GET /changes/{seq} gives it: nothing left out, nothing added.
      const fromLog = await Promise.all(
        logged.map(async (c) => (await (await hub.request(`/changes/${c.seq}`)).json()) as Change),
      );
      expect(lines).toStrictEqual(fromLog);
      for (const line of lines) expect(line.cause.uriVariables).toEqual({ step: 3 });
    } finally {
      watcher.process.kill("SIGINT");
      await watcher.exited;
    }
  });

  it("refuses a parameter the affordance does not declare, or one that does not fit, asking nothing", async () => {
    const before = await hub.hub.store.lastSeq();
    const asked = requests.length;
    const cases: [string, string, RegExp][] = [
      ["POST", "actions/increment?stp=3", /no URI variable "stp" \(it takes step\)/],
      ["POST", "actions/increment?step=two", /"step" must be an integer: "two" is not/],
      ["POST", "actions/increment?step=0", /"step" does not fit its schema/],
      ["POST", "actions/increment?step=1&step=2", /"step" is given more than once/],
      ["GET", "properties/temperature?unit=K", /"unit" does not fit its schema/],
      ["GET", "properties/temperature?limit=5", /no URI variable "limit" \(it takes unit\)/],
    ];
    for (const [method, path, detail] of cases) {
      const res = await hub.request(`${thingPath(ID)}/${path}`, { method });
      expect(res.status, path).toBe(400);
      expect(res.headers.get("content-type"), path).toMatch(/^application\/problem\+json/);
      expect(((await res.json()) as { detail: string }).detail, path).toMatch(detail);
    }
    expect(requests.length).toBe(asked);
    expect(await changesSince(before)).toEqual([]);
  });

  it("refuses a URI variable that is a dot segment (. or ..), which would move the request to another path", async () => {
    const ok = await hub.request(`${thingPath(ID)}/properties/file?name=a.b`);
    expect(await ok.json()).toBe("/files/a.b");
    const nested = await hub.request(`${thingPath(ID)}/properties/tree?path=a/b`);
    expect(await nested.json()).toBe("/files/a/b");
    const asked = requests.length;
    const cases: [string, string][] = [
      ["file?name=..", "name"],
      ["file?name=.", "name"],
      ["file?name=%2E%2E", "name"],
      ["tree?path=../admin", "path"],
      ["tree?path=a/./b", "path"],
      ["tree?path=a/%2e%2E/admin", "path"],
    ];
    for (const [path, name] of cases) {
      const res = await hub.request(`${thingPath(ID)}/properties/${path}`);
      expect(res.status, path).toBe(400);
      const problem = (await res.json()) as { detail: string; errors: { pointer: string }[] };
      expect(problem.detail, path).toMatch(new RegExp(`URI variable "${name}" .* dot segment`));
      expect(problem.errors[0]?.pointer, path).toBe(`/uriVariables/${name}`);
    }
    expect(requests.length).toBe(asked);
  });

  it("reads and invokes with --var from the CLI, and says in one line what is wrong with one", async () => {
    expect(await things(hub, ["read", ID, "temperature", "--var", "unit=F"])).toEqual({
      code: 0,
      stdout: "70\n",
      stderr: "",
    });
    const invoked = await things(hub, ["invoke", ID, "increment", "--var", "step=2"]);
    expect(invoked).toMatchObject({ code: 0, stdout: `${counter}\n` });
    expect(requests.at(-1)).toBe("POST /increment?step=2");

    const asked = requests.length;
    const unknown = await things(hub, ["invoke", ID, "increment", "--var", "steps=2"]);
    expect(unknown.code).not.toBe(0);
    expect(unknown.stderr).toMatch(/no URI variable "steps" \(it takes step\)/);
    expect(unknown.stderr.trim().split("\n")).toHaveLength(1);
    const malformed = await things(hub, ["read", ID, "temperature", "--var", "unit"]);
    expect(malformed.code).not.toBe(0);
    expect(malformed.stderr).toContain('expected name=value, such as unit=F, not "unit"');
    expect(requests.length).toBe(asked);
  });

  it("says in the proxy TD which query parameters the hub's forms take", async () => {
    const res = await hub.request(`${thingPath(ID)}/proxy`);
    const proxy = (await res.json()) as {
      properties: Record<string, { uriVariables?: unknown; forms: { href: string }[] }>;
      actions: Record<string, { uriVariables?: unknown; forms: { href: string }[] }>;
    };
    expect(proxy.properties.temperature?.forms[0]?.href).toMatch(/\/properties\/temperature\{\?unit\}$/);
    expect(proxy.properties.temperature?.uriVariables).toEqual({
      unit: { type: "string", enum: ["C", "F"] },
    });
    expect(proxy.actions.increment?.forms[0]?.href).toMatch(/\/actions\/increment\{\?step\}$/);
  });

  it("lets a node-wot client that consumes the proxy TD invoke with URI variables", async () => {
    const proxy = (await (await hub.request(`${thingPath(ID)}/proxy`)).json()) as WoT.ThingDescription;
    const client = new Servient();
    client.addClientFactory(new wotHttp.HttpClientFactory());
    client.addCredentials({ [ID]: { token: hub.token } });
    try {
      const wot = await client.start();
      const consumed = await wot.consume(proxy);
      const output = await consumed.invokeAction("increment", undefined, { uriVariables: { step: 4 } });
      expect(await output?.value()).toBe(counter);
      expect(requests.at(-1)).toBe("POST /increment?step=4");
      expect(
        await (await consumed.readProperty("temperature", { uriVariables: { unit: "F" } })).value(),
      ).toBe(70);
    } finally {
      await client.shutdown();
    }
  });
});
