// End-to-end tests of outbound safety: the hub's one address policy (`--allow`/`--deny`, the cloud
// metadata and link-local ranges denied by default) applied to reads, writes, observation and
// discovery. A real hub on port 0 and a real HTTP server on loopback; no packet may reach it.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import { loadConfig } from "../src/hub/index.js";
import { changeAfter, startTestHub, type TestHub, putTd as register } from "./support/test-hub.js";

interface Problem {
  status: number;
  detail: string;
  device?: { reason?: string; href?: string };
}

/** A TD whose one property (observable, polled) is at `base`. */
function thingAt(id: string, base: string): Record<string, unknown> {
  return {
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    id,
    title: "Somewhere",
    base,
    securityDefinitions: { nosec_sc: { scheme: "nosec" } },
    security: "nosec_sc",
    properties: {
      level: {
        type: "integer",
        observable: true,
        "hyperthings:pollInterval": 100,
        forms: [{ href: "properties/level", op: ["readproperty", "writeproperty", "observeproperty"] }],
      },
    },
  };
}

/** A plain HTTP server on loopback that counts what reaches it. */
class LoopbackThing {
  requests = 0;
  private readonly server: Server = createServer((_req, res) => {
    this.requests++;
    res.writeHead(200, { "content-type": "application/json" }).end("3");
  });

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/`;
  }

  async start(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, "127.0.0.1", resolve));
  }

  async stop(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }
}

describe("outbound safety: configuration", () => {
  it("denies the cloud metadata addresses and link-local ranges by default, on top of --deny", () => {
    const config = loadConfig({ dataDir: "/nonexistent", deny: "127.0.0.0/8, ::1/128" }, {});
    expect(config.allow).toEqual(["0.0.0.0/0", "::/0"]);
    expect(config.deny).toEqual([
      "169.254.169.254/32",
      "fd00:ec2::254/128",
      "169.254.0.0/16",
      "fe80::/10",
      "::a9fe:0/112",
      "64:ff9b::a9fe:0/112",
      "127.0.0.0/8",
      "::1/128",
    ]);
  });

  it("reads HYPERTHINGS_ALLOW and HYPERTHINGS_DENY; the command line wins", () => {
    const env = { HYPERTHINGS_ALLOW: "10.0.0.0/8", HYPERTHINGS_DENY: "10.9.0.0/16" };
    expect(loadConfig({ dataDir: "/nonexistent" }, env)).toMatchObject({
      allow: ["10.0.0.0/8"],
      deny: expect.arrayContaining(["10.9.0.0/16"]) as unknown,
    });
    expect(loadConfig({ dataDir: "/nonexistent", allow: "192.0.2.0/24" }, env).allow).toEqual([
      "192.0.2.0/24",
    ]);
  });

  it("refuses a bad range with one error naming the option and the range", () => {
    expect(() => loadConfig({ dataDir: "/nonexistent", deny: "10.0.0.0/8,10.0.0.0/33" }, {})).toThrow(
      '--deny (HYPERTHINGS_DENY) takes CIDR ranges such as 10.0.0.0/8 or fd00::/8, or ports such as 127.0.0.1:5432 or [::1]:6379, separated by commas; "10.0.0.0/33" is not one',
    );
    expect(() => loadConfig({ dataDir: "/nonexistent" }, { HYPERTHINGS_ALLOW: "lan" })).toThrow(
      /--allow \(HYPERTHINGS_ALLOW\) .* "lan" is not one/,
    );
  });
});

describe("outbound safety: the default policy", () => {
  let hub: TestHub;
  const id = "urn:test:outbound:metadata";

  beforeAll(async () => {
    hub = await startTestHub({ mqtt: false });
    await register(hub, thingAt(id, "http://169.254.169.254/latest/"));
  });

  afterAll(async () => {
    await hub?.stop();
  });

  it("answers a read of a Thing at the metadata address with 502 naming the address and the rule", async () => {
    const res = await hub.request(`${thingPath(id)}/properties/level`);
    expect(res.status).toBe(502);
    const problem = (await res.json()) as Problem;
    expect(problem.detail).toContain(
      "169.254.169.254 is not allowed by the address policy (deny 169.254.169.254/32)",
    );
    expect(problem.device).toEqual({
      reason: "address-denied",
      op: "readproperty",
      href: "http://169.254.169.254/latest/properties/level",
    });
  });

  it("answers a write the same way, and keeps running", async () => {
    const res = await hub.request(`${thingPath(id)}/properties/level`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: "4",
    });
    expect(res.status).toBe(502);
    expect(((await res.json()) as Problem).detail).toContain("(deny 169.254.169.254/32)");
    expect((await hub.request("/things")).status).toBe(200);
  });

  it("refuses a discovery of a link-local URL", async () => {
    const res = await hub.request("/discover", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ url: "http://169.254.10.20/td" }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as Problem).detail).toContain(
      "169.254.10.20 is not allowed by the address policy (deny 169.254.0.0/16)",
    );
  });
});

describe("outbound safety: --deny 127.0.0.0/8", () => {
  const device = new LoopbackThing();
  const id = "urn:test:outbound:loopback";
  let hub: TestHub;

  beforeAll(async () => {
    await device.start();
    hub = await startTestHub({ mqtt: false, observe: true, deny: "127.0.0.0/8" });
  });

  afterAll(async () => {
    await hub?.stop();
    await device.stop();
  });

  it("makes a loopback Thing unreachable, with a Change saying why, and sends it nothing", async () => {
    const after = await hub.hub.store.lastSeq();
    await register(hub, thingAt(id, device.url));
    const away = await changeAfter(hub, after, (c) => c.thing === id && c.kind === "unreachable");
    expect(away.value).toEqual(
      expect.stringContaining("127.0.0.1 is not allowed by the address policy (deny 127.0.0.0/8)"),
    );

    const read = await hub.request(`${thingPath(id)}/properties/level`);
    expect(read.status).toBe(502);
    expect(((await read.json()) as Problem).detail).toContain("(deny 127.0.0.0/8)");
    expect(device.requests).toBe(0);
  });

  it("refuses a discovery on loopback", async () => {
    const res = await hub.request("/discover", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ url: `${device.url}td` }),
    });
    expect(res.status).toBe(400);
    expect(((await res.json()) as Problem).detail).toContain("(deny 127.0.0.0/8)");
    expect(device.requests).toBe(0);
  });
});

describe("outbound safety: the hub's own listeners and backends, and loopback databases", () => {
  const device = new LoopbackThing();
  let hub: TestHub;

  beforeAll(async () => {
    await device.start();
    hub = await startTestHub({ mqttPort: 0 });
  });

  afterAll(async () => {
    await hub?.stop();
    await device.stop();
  });

  async function readThrough(id: string, base: string): Promise<{ status: number; problem: Problem }> {
    await register(hub, thingAt(id, base));
    const res = await hub.request(`${thingPath(id)}/properties/level`);
    return { status: res.status, problem: (await res.json()) as Problem };
  }

  it("does not let a TD reach the hub's own HTTP port, by any of its loopback names", async () => {
    const { port } = new URL(hub.url);
    for (const [i, base] of [
      `http://127.0.0.1:${port}/`,
      `http://localhost:${port}/`,
      `http://0.0.0.0:${port}/`,
    ].entries()) {
      const { status, problem } = await readThrough(`urn:test:outbound:self-${i}`, base);
      expect(status, base).toBe(502);
      expect(problem.device?.reason, base).toBe("address-denied");
      expect(problem.detail, base).toContain(`:${port} is the hub's own HTTP listener`);
    }
  });

  it("does not let a TD reach a database on loopback (PostgreSQL, Redis), over HTTP or MQTT", async () => {
    const { status, problem } = await readThrough("urn:test:outbound:postgres", "http://127.0.0.1:5432/");
    expect(status).toBe(502);
    expect(problem.device?.reason).toBe("address-denied");
    expect(problem.detail).toContain(
      "127.0.0.1:5432 is a PostgreSQL port on loopback, which the address policy keeps from Things: --allow 127.0.0.1:5432 to reach it",
    );
    const id = "urn:test:outbound:redis";
    await register(hub, {
      ...thingAt(id, "mqtt://127.0.0.1:6379/"),
      properties: { level: { type: "integer", forms: [{ href: "mqtt://127.0.0.1:6379/level" }] } },
    });
    const res = await hub.request(`${thingPath(id)}/properties/level`);
    expect(res.status).toBe(502);
    const redis = (await res.json()) as Problem;
    expect(redis.device?.reason).toBe("address-denied");
    expect(redis.detail).toContain("127.0.0.1:6379 is a Redis port on loopback");
  });

  it("still reaches a Thing on loopback at another port (the demo's simulators)", async () => {
    const { status } = await readThrough("urn:test:outbound:simulator", device.url);
    expect(status).toBe(200);
  });

  it("reaches a protected port that --allow names with its port", async () => {
    const open = await startTestHub({ mqtt: false, allow: "127.0.0.1:5432" });
    try {
      const id = "urn:test:outbound:postgres-allowed";
      await register(open, thingAt(id, "http://127.0.0.1:5432/"));
      const res = await open.request(`${thingPath(id)}/properties/level`);
      expect(((await res.json()) as Problem).device?.reason).not.toBe("address-denied");
      expect(open.hub.config.allow).toEqual(["0.0.0.0/0", "::/0", "127.0.0.1:5432"]);
    } finally {
      await open.stop();
    }
  });
});
