// SNMPv3 end to end through a real hub (port 0): Things whose forms are snmp: with a snmp:usm
// security definition, served by a real net-snmp agent on loopback (UDP, port 0) that knows one
// authPriv user; the passphrases set through PUT /things/{id}/credentials.
import { AuthProtocols, PrivProtocols, SecurityLevel } from "net-snmp";
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import type { Change } from "../src/core/index.js";
import type { SnmpAgent } from "../src/sim/snmp-agent.js";
import { registerThing, startTestHub, type TestHub } from "./support/test-hub.js";
import { CHARGE, SELF_TEST, startUpsAgent } from "./support/ups-snmp-agent.js";

const ID = "urn:test:snmp-v3:ups";
const OPEN_ID = "urn:test:snmp-v3:ups-open";
const AUTH = "e2e-auth-4f0b9";
const PRIV = "e2e-priv-c27a1";
const BIN = fileURLToPath(new URL("../bin/things.js", import.meta.url));

/** `things ARGS` against the hub, as a child process, with `input` on its standard input. */
function things(args: string[], input = ""): Promise<{ code: number; stdout: string; stderr: string }> {
  const env = Object.fromEntries(
    Object.entries(process.env).filter(([name]) => !name.startsWith("HYPERTHINGS_")),
  );
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

let agent: SnmpAgent;
let hub: TestHub;

function upsTd(id: string, origin: string, definition: Record<string, unknown>): Record<string, unknown> {
  return {
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    id,
    title: "UPS",
    securityDefinitions: { usm_sc: { scheme: "snmp:usm", "snmp:user": "ops", ...definition } },
    security: "usm_sc",
    properties: {
      charge: {
        type: "integer",
        readOnly: true,
        observable: false,
        forms: [{ href: `${origin}/${CHARGE}` }],
      },
      selfTest: {
        type: "integer",
        observable: false,
        forms: [{ href: `${origin}/${SELF_TEST}`, "snmp:type": "Integer32" }],
      },
    },
  };
}

const AUTH_PRIV = {
  "snmp:securityLevel": "authPriv",
  "snmp:authProtocol": "SHA",
  "snmp:privProtocol": "AES",
};

async function history(id: string, after: number): Promise<Change[]> {
  const res = await hub.request(`${thingPath(id)}/history?order=asc&limit=1000&affordance=selfTest`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { changes: Change[] }).changes.filter((c) => c.seq > after);
}

function put(path: string, body: unknown): Promise<Response> {
  return hub.request(path, {
    method: "PUT",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

beforeAll(async () => {
  agent = await startUpsAgent({
    users: [
      {
        name: "ops",
        level: SecurityLevel.authPriv,
        authProtocol: AuthProtocols.sha,
        authKey: AUTH,
        privProtocol: PrivProtocols.aes,
        privKey: PRIV,
      },
    ],
  });
  hub = await startTestHub();
  await registerThing(hub, ID, upsTd(ID, agent.origin, AUTH_PRIV));
  await registerThing(hub, OPEN_ID, upsTd(OPEN_ID, agent.origin, { "snmp:securityLevel": "noAuthNoPriv" }));
});

afterAll(async () => {
  await hub?.stop();
  await agent?.close();
});

describe("an SNMPv3 Thing through the hub", () => {
  it("refuses passphrases that do not fit the definition with a problem naming the field, storing nothing", async () => {
    const short = await put(`${thingPath(ID)}/credentials`, {
      authPassphrase: "short",
      privPassphrase: PRIV,
    });
    expect(short.status).toBe(400);
    const problem = (await short.json()) as { detail: string; errors?: { pointer: string }[] };
    expect(problem.detail).toContain("authPassphrase is shorter than 8 bytes, which SNMPv3 refuses");
    expect(problem.errors?.[0]?.pointer).toBe("/authPassphrase");
    const noPriv = await put(`${thingPath(ID)}/credentials`, { authPassphrase: AUTH });
    expect(noPriv.status).toBe(400);
    expect(((await noPriv.json()) as { detail: string }).detail).toContain(
      "authPriv needs a priv passphrase",
    );
    const listed = await hub.request(`${thingPath(ID)}/credentials`);
    expect(await listed.json()).toMatchObject({ names: [] });
  });

  it("the CLI sets both passphrases from two lines of standard input", async () => {
    const run = await things(
      ["credentials", "set", ID, "--auth-passphrase", "-", "--priv-passphrase", "-"],
      `${AUTH}\n${PRIV}\n`,
    );
    expect(run).toMatchObject({
      code: 0,
      stdout: `credentials set for security "usm_sc" of ${ID}, sent only to ${agent.origin}\n`,
    });
  });

  it("reads and writes with the authPriv user: desired then completed, and the agent holds the value", async () => {
    const read = await hub.request(`${thingPath(ID)}/properties/charge`);
    expect(read.status).toBe(200);
    expect(await read.json()).toBe(97);

    await hub.hub.commands?.recorded(ID);
    const after = await hub.hub.store.lastSeq();
    const write = await put(`${thingPath(ID)}/properties/selfTest`, 1);
    expect(write.status).toBe(204);
    expect(agent.get("selfTest")).toBe(1);
    expect((await history(ID, after)).map((c) => c.kind)).toEqual(["desired", "completed"]);
  });

  it("a wrong auth passphrase: 502 with reason security, recorded as failed and never as completed", async () => {
    agent.set("selfTest", 0);
    const set = await put(`${thingPath(ID)}/credentials`, {
      authPassphrase: "wrong-auth-pass",
      privPassphrase: PRIV,
    });
    expect(set.status).toBe(200);
    await hub.hub.commands?.recorded(ID);
    const after = await hub.hub.store.lastSeq();
    const write = await put(`${thingPath(ID)}/properties/selfTest`, 2);
    expect(write.status).toBe(502);
    const problem = (await write.json()) as { device: Record<string, unknown> };
    expect(problem.device).toMatchObject({ reason: "security", body: "usmStatsWrongDigests" });
    expect(problem.device.outcome).toBeUndefined();
    expect(agent.get("selfTest")).toBe(0);
    const changes = await history(ID, after);
    expect(changes.map((c) => c.kind)).toEqual(["desired", "failed"]);
    expect(changes[1]?.value).toMatchObject({ reason: "security" });
  });

  it("a noAuthNoPriv TD against the authPriv-only user: the agent refuses it, precisely", async () => {
    const read = await hub.request(`${thingPath(OPEN_ID)}/properties/charge`);
    expect(read.status).toBe(502);
    const problem = (await read.json()) as { detail: string; device: Record<string, unknown> };
    expect(problem.device).toMatchObject({ reason: "security", body: "usmStatsWrongDigests" });
    expect(problem.detail).toContain('requires authentication for user "ops"');
    // noAuthNoPriv holds no passphrases: setting some is refused.
    const set = await put(`${thingPath(OPEN_ID)}/credentials`, { authPassphrase: AUTH });
    expect(set.status).toBe(400);
  });

  it("never shows the passphrases: not in the TD, the history, or the credentials listing", async () => {
    for (const path of [
      thingPath(ID),
      `${thingPath(ID)}/history?limit=1000`,
      `${thingPath(ID)}/credentials`,
    ]) {
      const text = await (await hub.request(path)).text();
      for (const secret of [AUTH, PRIV, "wrong-auth-pass"]) expect(text).not.toContain(secret);
    }
  });
});
