// ThingSecrets over the SQLite secret store: the key file, sealing (AES-256-GCM bound to the Thing
// and the definition name), and which security definition a secret is for.
import Database from "better-sqlite3";
import { readFileSync, statSync } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ValidationError, type RegisteredThingDescription } from "../core/index.js";
import { SqliteSecretStore, SqliteStore } from "../store/index.js";
import { SECRET_KEY_FILE, ThingSecrets, loadOrCreateSecretKey } from "./thing-secrets.js";

function td(
  securityDefinitions: RegisteredThingDescription["securityDefinitions"],
): RegisteredThingDescription {
  return {
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    id: "urn:test:secrets:lamp",
    title: "Lamp",
    securityDefinitions,
    security: Object.keys(securityDefinitions),
  };
}

describe("ThingSecrets", () => {
  let dir: string;
  let path: string;
  let store: SqliteStore;
  let secretStore: SqliteSecretStore;
  let secrets: ThingSecrets;
  const changed: string[] = [];

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), "hyperthings-secrets-"));
    path = join(dir, "hyperthings.db");
    store = new SqliteStore({ path });
    secretStore = new SqliteSecretStore({ path });
    secrets = new ThingSecrets(secretStore, loadOrCreateSecretKey(dir));
    secrets.onChange = (thing) => changed.push(thing);
    changed.length = 0;
  });

  afterEach(async () => {
    await secrets.close();
    await store.close();
    await rm(dir, { recursive: true, force: true });
  });

  it("creates the key once, mode 0600, and reads the same key back", () => {
    const file = join(dir, SECRET_KEY_FILE);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const text = readFileSync(file, "utf8");
    expect(Buffer.from(text.trim(), "base64")).toHaveLength(32);
    expect(loadOrCreateSecretKey(dir).equals(Buffer.from(text.trim(), "base64"))).toBe(true);
  });

  it("keeps secrets sealed in the database and opens them for the bindings", async () => {
    const thing = td({ basic_sc: { scheme: "basic" }, bearer_sc: { scheme: "bearer" } });
    expect(await secrets.set(thing, { username: "ops", password: "s3cret-basic" })).toBe("basic_sc");
    expect(await secrets.set(thing, { token: "s3cret-token" })).toBe("bearer_sc");
    expect(changed).toEqual([thing.id, thing.id]);
    expect(await secrets.secretsOf(thing)).toEqual({
      basic_sc: { username: "ops", password: "s3cret-basic", origins: [] },
      bearer_sc: { token: "s3cret-token", origins: [] },
    });
    expect(await secrets.names(thing.id)).toEqual(["basic_sc", "bearer_sc"]);
    const db = new Database(path, { readonly: true });
    const rows = db.prepare("SELECT sealed FROM thing_secrets").all() as { sealed: Buffer }[];
    db.close();
    expect(rows).toHaveLength(2);
    for (const { sealed } of rows) {
      expect(sealed.includes("s3cret")).toBe(false);
      expect(sealed.includes("ops")).toBe(false);
    }

    expect(await secrets.remove(thing.id, "bearer_sc")).toBe(1);
    expect(await secrets.secretsOf(thing)).toEqual({
      basic_sc: { username: "ops", password: "s3cret-basic", origins: [] },
    });
    expect(await secrets.remove(thing.id)).toBe(1);
    expect(await secrets.remove(thing.id)).toBe(0);
    expect(await secrets.secretsOf(thing)).toEqual({});
  });

  it("cannot open a secret moved to another Thing, or opened with another key", async () => {
    const thing = td({ basic_sc: { scheme: "basic" } });
    await secrets.set(thing, { username: "ops", password: "pw" });
    const [sealed] = (await secretStore.get(thing.id)).values();
    if (sealed === undefined) throw new Error("nothing stored");
    await secretStore.put("urn:test:secrets:other", "basic_sc", sealed);
    await expect(secrets.secretsOf({ ...thing, id: "urn:test:secrets:other" })).rejects.toThrow(
      /cannot be opened/,
    );

    const otherKeyDir = await mkdtemp(join(tmpdir(), "hyperthings-secrets-key-"));
    try {
      const stranger = new ThingSecrets(secretStore, loadOrCreateSecretKey(otherKeyDir));
      await expect(stranger.secretsOf(thing)).rejects.toThrow(/cannot be opened/);
    } finally {
      await rm(otherKeyDir, { recursive: true, force: true });
    }
  });

  it("finds the definition a secret is for, and refuses what fits none or several", async () => {
    const one = td({
      nosec_sc: { scheme: "nosec" },
      key_sc: { scheme: "apikey", in: "header", name: "X-Key" },
    });
    expect(await secrets.set(one, { key: "k" })).toBe("key_sc");
    await expect(secrets.set(one, { token: "t" })).rejects.toThrow(
      /has no security definition that takes a token/,
    );

    const two = td({ a: { scheme: "bearer" }, b: { scheme: "bearer" } });
    await expect(secrets.set(two, { token: "t" })).rejects.toThrow(
      /several security definitions .*\("a", "b"\)/,
    );
    expect(await secrets.set(two, { schemeName: "b", token: "t" })).toBe("b");
    await expect(secrets.set(two, { schemeName: "c", token: "t" })).rejects.toThrow(
      /no security definition "c"/,
    );
    await expect(secrets.set(two, { schemeName: "a", key: "k" })).rejects.toThrow(/does not take a key/);
  });

  it("binds a secret to the origins of the forms its definition applies to when it is set", async () => {
    const thing: RegisteredThingDescription = {
      ...td({ basic_sc: { scheme: "basic" }, key_sc: { scheme: "apikey", in: "header", name: "X-Key" } }),
      security: ["basic_sc"],
      base: "http://lamp.example:8080/",
      properties: {
        on: { type: "boolean", forms: [{ href: "on" }, { href: "mqtt://broker.example/lamp/on" }] },
        level: { type: "integer", forms: [{ href: "https://cloud.example/level", security: "key_sc" }] },
      },
    };
    await secrets.set(thing, { username: "ops", password: "pw" });
    await secrets.set(thing, { key: "k" });
    expect(await secrets.secretsOf(thing)).toEqual({
      basic_sc: {
        username: "ops",
        password: "pw",
        origins: ["http://lamp.example:8080", "mqtt://broker.example"],
      },
      key_sc: { key: "k", origins: ["https://cloud.example"] },
    });
  });

  it("binds a secret stored before binding to the TD it is first used with, once", async () => {
    const thing: RegisteredThingDescription = {
      ...td({ basic_sc: { scheme: "basic" } }),
      properties: { on: { type: "boolean", forms: [{ href: "http://lamp.example/on" }] } },
    };
    // As a hub of an earlier version sealed it: no origins.
    const legacy = new ThingSecrets(secretStore, loadOrCreateSecretKey(dir));
    await legacy.set(thing, { username: "ops", password: "pw" });
    const [name, sealed] = [...(await secretStore.get(thing.id))][0] ?? [];
    if (name === undefined || sealed === undefined) throw new Error("nothing stored");
    const opened = (legacy as unknown as { open(t: string, n: string, s: Uint8Array): object }).open(
      thing.id,
      name,
      sealed,
    );
    const { origins: _origins, ...unbound } = opened as { origins?: string[] };
    const sealer = legacy as unknown as { seal(t: string, n: string, s: object): Uint8Array };
    await secretStore.put(thing.id, name, sealer.seal(thing.id, name, unbound));

    const bound = { username: "ops", password: "pw", origins: ["http://lamp.example"] };
    const fresh = () => new ThingSecrets(secretStore, loadOrCreateSecretKey(dir));
    expect(await fresh().secretsOf(thing)).toEqual({ basic_sc: bound });
    // Kept as bound: a TD pointing elsewhere later does not move it.
    const moved: RegisteredThingDescription = {
      ...thing,
      properties: { on: { type: "boolean", forms: [{ href: "http://evil.example/" }] } },
    };
    expect(await fresh().secretsOf(moved)).toEqual({ basic_sc: bound });
  });

  it("refuses malformed secrets before storing anything", async () => {
    const thing = td({ basic_sc: { scheme: "basic" } });
    const cases = [
      {},
      { username: "ops" },
      { password: "pw" },
      { username: "ops", password: "pw", token: "t" },
      { username: "a:b", password: "pw" },
      { username: "ops", password: "line\nbreak" },
      { username: "", password: "pw" },
    ];
    for (const input of cases) {
      await expect(secrets.set(thing, input), JSON.stringify(input)).rejects.toBeInstanceOf(ValidationError);
    }
    expect(await secrets.names(thing.id)).toEqual([]);
    expect(changed).toEqual([]);
  });
  it("holds a snmp:usm user's two passphrases in one definition, as its level needs them", async () => {
    const usm = (level: string, extra: Record<string, string> = {}) =>
      td({
        usm_sc: {
          scheme: "snmp:usm",
          "snmp:user": "ops",
          "snmp:securityLevel": level,
          "snmp:authProtocol": "SHA-256",
          ...extra,
        },
      });
    const authPriv = usm("authPriv", { "snmp:privProtocol": "AES" });
    expect(
      await secrets.set(authPriv, { authPassphrase: "auth-pass-1", privPassphrase: "priv-pass-1" }),
    ).toBe("usm_sc");
    expect(await secrets.secretsOf(authPriv)).toEqual({
      usm_sc: { authPassphrase: "auth-pass-1", privPassphrase: "priv-pass-1", origins: [] },
    });

    const refused = async (thing: RegisteredThingDescription, input: Record<string, string>) => {
      try {
        await secrets.set(thing, input);
      } catch (error) {
        expect(error).toBeInstanceOf(ValidationError);
        const { message } = error as ValidationError;
        return { message, pointer: (error as ValidationError).errors[0]?.pointer };
      }
      throw new Error("expected a ValidationError");
    };
    expect(await refused(authPriv, { authPassphrase: "auth-pass-2" })).toEqual({
      message:
        'security "usm_sc" of urn:test:secrets:lamp (user "ops", authPriv): authPriv needs a priv passphrase too',
      pointer: "/privPassphrase",
    });
    expect(await refused(authPriv, { authPassphrase: "short", privPassphrase: "priv-pass-2" })).toMatchObject(
      {
        message: expect.stringContaining(
          "authPassphrase is shorter than 8 bytes, which SNMPv3 refuses",
        ) as unknown,
        pointer: "/authPassphrase",
      },
    );
    expect(await refused(authPriv, { privPassphrase: "priv-pass-2" })).toMatchObject({
      pointer: "/authPassphrase",
    });
    expect(
      await refused(usm("authNoPriv"), { authPassphrase: "auth-pass-2", privPassphrase: "priv-pass-2" }),
    ).toMatchObject({ pointer: "/privPassphrase" });
    expect(await refused(usm("noAuthNoPriv", {}), { authPassphrase: "auth-pass-2" })).toMatchObject({
      pointer: "/securityDefinitions/usm_sc/snmp:authProtocol",
    });
    expect(
      await refused(usm("authPriv", { "snmp:privProtocol": "3DES" }), {
        authPassphrase: "auth-pass-2",
        privPassphrase: "priv-pass-2",
      }),
    ).toMatchObject({
      message: expect.stringContaining('"3DES" is unknown: one of DES, AES, AES-256, AES-256-C') as unknown,
      pointer: "/securityDefinitions/usm_sc/snmp:privProtocol",
    });
    expect(await refused(authPriv, { key: "community" })).toMatchObject({ pointer: "/schemeName" });
    // Nothing refused was stored: the first secret is still the one held.
    expect(await secrets.secretsOf(authPriv)).toEqual({
      usm_sc: { authPassphrase: "auth-pass-1", privPassphrase: "priv-pass-1", origins: [] },
    });
  });
});

describe("SqliteSecretStore", () => {
  it("refuses a database the SqliteStore has not brought to its schema", async () => {
    const dir = await mkdtemp(join(tmpdir(), "hyperthings-secrets-"));
    try {
      const path = join(dir, "old.db");
      const db = new Database(path);
      db.pragma("user_version = 1");
      db.close();
      expect(() => new SqliteSecretStore({ path })).toThrow(/needs 2/);
      expect(() => new SqliteSecretStore({ path: join(dir, "missing.db") })).toThrow();
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
