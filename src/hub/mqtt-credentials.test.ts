// The record of the MQTT credentials issued: generations, revocation with a Thing, two processes
// sharing one store (replicas), the records a hub kept in its data directory taken into the store,
// and a file the hub cannot read refused with what to do.
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  MQTT_CREDENTIALS_FILE,
  MQTT_CREDENTIALS_IMPORTED,
  MemoryMqttCredentialStore,
  MqttCredentials,
} from "./mqtt-credentials.js";

const silent = pino({ level: "silent" });
const clock = () => new Date("2026-12-07T09:00:00.000Z");

describe("MqttCredentials", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "hyperthings-mqtt-credentials-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  async function opened(store = new MemoryMqttCredentialStore()): Promise<MqttCredentials> {
    const registry = new MqttCredentials(store, clock, silent);
    await registry.open(dir);
    return registry;
  }

  it("issues the first generation, the same again, and the next after a revocation, kept in its store", async () => {
    const store = new MemoryMqttCredentialStore();
    const registry = await opened(store);
    expect(await registry.issue("homie:boiler", "homie", "admin")).toMatchObject({
      issued: true,
      credential: { generation: 0, issuedAt: "2026-12-07T09:00:00.000Z", issuedBy: "admin" },
    });
    expect((await registry.issue("homie:boiler", "homie", "ops")).issued).toBe(false);
    expect(await registry.revoke("homie:boiler", "ops", "revoked by an admin")).toMatchObject({
      revokedBy: "ops",
    });
    expect(await registry.revoke("homie:boiler", "ops", "again")).toBeUndefined();
    await registry.close();
    const reopened = await opened(store);
    expect(reopened.get("homie:boiler")).toMatchObject({ generation: 0, revokedBy: "ops" });
    expect((await reopened.issue("homie:boiler", "homie", "admin")).credential.generation).toBe(1);
    await expect(reopened.issue("homie:boiler", "thing", "admin")).rejects.toThrow(/Homie device's already/);
  });

  it("shares one store between processes: each takes what the other issued, and hears of its revocations", async () => {
    const store = new MemoryMqttCredentialStore();
    const a = await opened(store);
    const b = await opened(store);
    const revokedOnB: string[] = [];
    b.onRevoked((credential) => revokedOnB.push(`${credential.username}#${credential.generation}`));
    await a.issue("urn:dev:lamp", "thing", "admin");
    // B has not read it yet; asked for the record as the store has it now, it has.
    expect(b.get("urn:dev:lamp")).toBeUndefined();
    expect(await b.current("urn:dev:lamp")).toMatchObject({ generation: 0 });
    // Issued again through B: the same one, not a second.
    expect(await b.issue("urn:dev:lamp", "thing", "ops")).toMatchObject({ issued: false });
    // Revoked and issued anew through A: B, reading the store again, is told the one it had ended.
    await a.revoke("urn:dev:lamp", "admin", "revoked by an admin");
    await a.issue("urn:dev:lamp", "thing", "admin");
    await b.refresh();
    expect(revokedOnB).toEqual(["urn:dev:lamp#0"]);
    expect(b.get("urn:dev:lamp")).toMatchObject({ generation: 1 });
    expect(b.get("urn:dev:lamp")?.revokedAt).toBeUndefined();
    // Revoked through B when A revoked it a moment before: once.
    await a.revoke("urn:dev:lamp", "admin", "first");
    expect(await b.revoke("urn:dev:lamp", "ops", "second")).toBeUndefined();
    expect(await a.current("urn:dev:lamp")).toMatchObject({ generation: 1, revokedBecause: "first" });
  });

  it("revokes what opens a removed Thing's device, unless the device removed it itself", async () => {
    const registry = await opened();
    for (const [username, kind] of [
      ["urn:dev:lamp", "thing"],
      ["homie:boiler", "homie"],
      ["homeassistant:kitchen", "homeassistant"],
      ["homeassistant:hall", "homeassistant"],
    ] as const)
      await registry.issue(username, kind, "admin");
    const revoked: string[] = [];
    registry.onRevoked((credential) => revoked.push(credential.username));
    await registry.thingRemoved({ thing: "urn:homie:boiler", cause: { actor: "mqtt:homie" } });
    await registry.thingRemoved({
      thing: "urn:homeassistant:sensor:kitchen:temperature",
      cause: { actor: "admin" },
    });
    await registry.thingRemoved({ thing: "urn:dev:lamp", cause: { actor: "hub:expiry" } });
    await registry.thingRemoved({ thing: "urn:homeassistant:sensor:temperature", cause: { actor: "admin" } });
    expect(revoked).toEqual(["homeassistant:kitchen", "urn:dev:lamp"]);
    expect(registry.get("urn:dev:lamp")?.revokedBecause).toBe(
      "its Thing urn:dev:lamp expired from the directory",
    );
  });

  it("takes the records a hub kept in its data directory into the store once, and keeps the file aside", async () => {
    const kept = {
      format: 1,
      credentials: [
        { username: "homie:boiler", kind: "homie", generation: 2, issuedAt: "2026-12-01T00:00:00.000Z" },
        {
          username: "urn:dev:lamp",
          kind: "thing",
          generation: 0,
          revokedAt: "2026-12-02T00:00:00.000Z",
          revokedBy: "admin",
          revokedBecause: "revoked by an admin",
        },
      ],
    };
    writeFileSync(join(dir, MQTT_CREDENTIALS_FILE), JSON.stringify(kept));
    const store = new MemoryMqttCredentialStore();
    const registry = await opened(store);
    expect(await store.list()).toEqual(kept.credentials);
    expect(registry.get("urn:dev:lamp")?.revokedAt).toBe("2026-12-02T00:00:00.000Z");
    expect(existsSync(join(dir, MQTT_CREDENTIALS_FILE))).toBe(false);
    expect(JSON.parse(readFileSync(join(dir, MQTT_CREDENTIALS_IMPORTED), "utf8"))).toEqual(kept);
  });

  it("refuses a file it cannot read, saying what to do", async () => {
    writeFileSync(join(dir, MQTT_CREDENTIALS_FILE), "{not json");
    await expect(opened()).rejects.toThrow(/restore it from a backup, or delete it/);
  });
});
