// The record of the MQTT credentials issued: generations, revocation with a Thing, what survives a
// restart, and a file the hub cannot read refused with what to do.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { MQTT_CREDENTIALS_FILE, MqttCredentials } from "./mqtt-credentials.js";

const silent = pino({ level: "silent" });
const clock = () => new Date("2026-12-07T09:00:00.000Z");

describe("MqttCredentials", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "hyperthings-mqtt-credentials-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("issues the first generation, the same again, and the next after a revocation, kept across a restart", () => {
    const registry = new MqttCredentials(dir, clock, silent);
    expect(registry.issue("homie:boiler", "homie", "admin")).toMatchObject({
      issued: true,
      credential: { generation: 0, issuedAt: "2026-12-07T09:00:00.000Z", issuedBy: "admin" },
    });
    expect(registry.issue("homie:boiler", "homie", "ops").issued).toBe(false);
    expect(registry.revoke("homie:boiler", "ops", "revoked by an admin")).toMatchObject({ revokedBy: "ops" });
    expect(registry.revoke("homie:boiler", "ops", "again")).toBeUndefined();
    const reopened = new MqttCredentials(dir, clock, silent);
    expect(reopened.get("homie:boiler")).toMatchObject({ generation: 0, revokedBy: "ops" });
    expect(reopened.issue("homie:boiler", "homie", "admin").credential.generation).toBe(1);
    expect(() => reopened.issue("homie:boiler", "thing", "admin")).toThrow(/Homie device's already/);
  });

  it("revokes what opens a removed Thing's device, unless the device removed it itself", () => {
    const registry = new MqttCredentials(dir, clock, silent);
    for (const [username, kind] of [
      ["urn:dev:lamp", "thing"],
      ["homie:boiler", "homie"],
      ["homeassistant:kitchen", "homeassistant"],
      ["homeassistant:hall", "homeassistant"],
    ] as const)
      registry.issue(username, kind, "admin");
    const revoked: string[] = [];
    registry.onRevoked((credential) => revoked.push(credential.username));
    registry.thingRemoved({ thing: "urn:homie:boiler", cause: { actor: "mqtt:homie" } });
    registry.thingRemoved({
      thing: "urn:homeassistant:sensor:kitchen:temperature",
      cause: { actor: "admin" },
    });
    registry.thingRemoved({ thing: "urn:dev:lamp", cause: { actor: "hub:expiry" } });
    registry.thingRemoved({ thing: "urn:homeassistant:sensor:temperature", cause: { actor: "admin" } });
    expect(revoked).toEqual(["homeassistant:kitchen", "urn:dev:lamp"]);
    expect(registry.get("urn:dev:lamp")?.revokedBecause).toBe(
      "its Thing urn:dev:lamp expired from the directory",
    );
  });

  it("refuses a file it cannot read, saying what to do", () => {
    writeFileSync(join(dir, MQTT_CREDENTIALS_FILE), "{not json");
    expect(() => new MqttCredentials(dir, clock, silent)).toThrow(/restore it from a backup, or delete it/);
  });
});
