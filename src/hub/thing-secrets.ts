// The credentials the hub holds for Things, by security definition name: checked against the TD,
// sealed with AES-256-GCM (key in `<data>/secrets.key`, mode 0600, made at first start) before
// they reach the SecretStore, and opened only to build the Targets of the bindings.
import { createCipheriv, createDecipheriv, randomBytes } from "node:crypto";
import { join } from "node:path";
import { ValidationError, echoed, quoted, type ThingDescription } from "../core/index.js";
// From the bindings' light modules, not their index: that loads every protocol library, which the
// CLI's commands (backup, verify) that import this file for its file name would pay for at start.
import {
  MIN_USM_PASSPHRASE_LENGTH,
  SNMP_COMMUNITY,
  SNMP_USM,
  usmDefinition,
  type Secret,
  type Secrets,
} from "../bindings/credentials.js";
import { securedOrigins } from "../bindings/form-selection.js";
import type { SecretStore } from "./secret-store.js";
import { createDataFile, readDataFile } from "./data-files.js";

export const SECRET_KEY_FILE = "secrets.key";

/** A secret as an operator gives it: one kind, for a named security definition or the only fitting one. */
export interface SecretInput {
  schemeName?: string;
  username?: string;
  password?: string;
  token?: string;
  key?: string;
  /** `snmp:usm`: the USM user's passphrases, as its security level needs them. */
  authPassphrase?: string;
  privPassphrase?: string;
}

type SecretKind = "basic" | "token" | "key" | "usm";

const KIND_NAMES: Readonly<Record<SecretKind, string>> = {
  basic: "a username and password",
  token: "a token",
  key: "a key",
  usm: "USM passphrases",
};

const KEY_BYTES = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
/** The first byte of a sealed secret: the format, so that a later one can be told apart. */
const FORMAT = 1;
const MAX_SECRET_LENGTH = 4096;
/** Decrypted secrets kept in memory, by Thing, at most. */
const MAX_CACHED_THINGS = 10_000;

/** Which secret each supported scheme takes. */
const TAKES: Readonly<Record<string, SecretKind>> = {
  basic: "basic",
  bearer: "token",
  apikey: "key",
  [SNMP_COMMUNITY]: "key",
  [SNMP_USM]: "usm",
};

/** Reads the key, or makes one (32 random bytes, base64, mode 0600) if there is none yet. */
export function loadOrCreateSecretKey(dataDir: string): Buffer {
  const path = join(dataDir, SECRET_KEY_FILE);
  // Never overwrite a key another process created meanwhile (its secrets need it): take that one.
  const text =
    readDataFile(path) ?? createDataFile(path, `${randomBytes(KEY_BYTES).toString("base64")}\n`, 0o600);
  const key = Buffer.from(text.trim(), "base64");
  if (key.length !== KEY_BYTES) {
    throw new Error(`${path} does not hold a ${KEY_BYTES}-byte key in base64; restore it from a backup`);
  }
  return key;
}

export class ThingSecrets {
  /** Told after a Thing's secrets were set or removed (the hub restarts its observation). */
  onChange: (thing: string) => void = () => undefined;
  private readonly cache = new Map<string, Secrets>();
  /** Sets, removals and loads one at a time: a load that binds an old secret must not undo a set. */
  private queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: SecretStore,
    private readonly key: Buffer,
    /**
     * Keep opened secrets in memory. Not with replicas: another replica sets and removes secrets
     * in the shared store without a Change that would tell this one (docs/replicas.md).
     */
    private readonly options: { cache: boolean } = { cache: true },
  ) {
    if (key.length !== KEY_BYTES) throw new Error(`a secret key has ${KEY_BYTES} bytes`);
  }

  /**
   * Checks the secret against the Thing's security definitions and stores it, sealed, bound to the
   * origins of the forms that definition applies to now. Returns the name of the definition.
   */
  async set(td: ThingDescription & { id: string }, input: SecretInput): Promise<string> {
    const { kind, secret } = secretOf(input);
    const name = definitionFor(td, kind, input.schemeName);
    if (kind === "usm") checkUsmSecret(td, name, secret);
    const bound: Secret = { ...secret, origins: securedOrigins(td, name) };
    await this.serial(async () => {
      await this.store.put(td.id, name, this.seal(td.id, name, bound));
      this.cache.delete(td.id);
    });
    this.onChange(td.id);
    return name;
  }

  /** Forgets one secret (by definition name) or all of a Thing's; how many went. */
  async remove(thing: string, name?: string): Promise<number> {
    const removed = await this.serial(async () => {
      const count = await this.store.remove(thing, name);
      this.cache.delete(thing);
      return count;
    });
    if (removed > 0) this.onChange(thing);
    return removed;
  }

  names(thing: string): Promise<string[]> {
    return this.store.names(thing);
  }

  /**
   * The Thing's secrets, opened, as `targetFor` takes them. A secret stored before secrets were
   * bound to origins is bound now, to the origins of the TD it is first used with.
   */
  async secretsOf(td: ThingDescription & { id: string }): Promise<Secrets> {
    const thing = td.id;
    const cached = this.cache.get(thing);
    if (cached !== undefined) return cached;
    return this.serial(async () => {
      const secrets: Record<string, Secret> = {};
      for (const [name, sealed] of await this.store.get(thing)) {
        let secret = this.open(thing, name, sealed);
        if (secret.origins === undefined) {
          secret = { ...secret, origins: securedOrigins(td, name) };
          await this.store.put(thing, name, this.seal(thing, name, secret));
        }
        secrets[name] = secret;
      }
      if (!this.options.cache) return secrets;
      if (this.cache.size >= MAX_CACHED_THINGS) this.cache.clear();
      this.cache.set(thing, secrets);
      return secrets;
    });
  }

  private serial<T>(work: () => Promise<T>): Promise<T> {
    const next = this.queue.then(work, work);
    this.queue = next.catch(() => undefined);
    return next;
  }

  /** The origins each of the Thing's secrets is sent to, by security definition name. */
  async originsOf(td: ThingDescription & { id: string }): Promise<Record<string, string[]>> {
    const origins: Record<string, string[]> = {};
    for (const [name, secret] of Object.entries(await this.secretsOf(td)))
      origins[name] = [...(secret.origins ?? [])];
    return origins;
  }

  close(): Promise<void> {
    this.cache.clear();
    return this.store.close();
  }

  // The Thing and the name are authenticated data: a sealed secret moved to another row fails.
  private seal(thing: string, name: string, secret: Secret): Uint8Array {
    const iv = randomBytes(IV_BYTES);
    const cipher = createCipheriv("aes-256-gcm", this.key, iv);
    cipher.setAAD(Buffer.from(`${thing}\u0000${name}`, "utf8"));
    const body = Buffer.concat([cipher.update(JSON.stringify(secret), "utf8"), cipher.final()]);
    return Buffer.concat([Buffer.of(FORMAT), iv, cipher.getAuthTag(), body]);
  }

  private open(thing: string, name: string, sealed: Uint8Array): Secret {
    const bytes = Buffer.from(sealed.buffer, sealed.byteOffset, sealed.byteLength);
    if (bytes[0] !== FORMAT || bytes.length < 1 + IV_BYTES + TAG_BYTES) {
      throw new Error(`the secret "${name}" of ${thing} is not in a format this hub reads`);
    }
    const iv = bytes.subarray(1, 1 + IV_BYTES);
    const tag = bytes.subarray(1 + IV_BYTES, 1 + IV_BYTES + TAG_BYTES);
    const decipher = createDecipheriv("aes-256-gcm", this.key, iv);
    decipher.setAAD(Buffer.from(`${thing}\u0000${name}`, "utf8"));
    decipher.setAuthTag(tag);
    try {
      const text = Buffer.concat([
        decipher.update(bytes.subarray(1 + IV_BYTES + TAG_BYTES)),
        decipher.final(),
      ]).toString("utf8");
      return JSON.parse(text) as Secret;
    } catch (cause) {
      throw new Error(`the secret "${name}" of ${thing} cannot be opened with ${SECRET_KEY_FILE}`, { cause });
    }
  }
}

function secretOf(input: SecretInput): { kind: SecretKind; secret: Secret } {
  const check = (field: keyof SecretInput, value: string | undefined): string | undefined => {
    if (value === undefined) return undefined;
    // CR, LF and NUL would let a secret leave its header.
    if (value.length === 0 || value.length > MAX_SECRET_LENGTH || /[\r\n\0]/.test(value)) {
      throw new ValidationError(
        `${field} must be 1 to ${MAX_SECRET_LENGTH} characters, without line breaks`,
        [{ pointer: `/${field}`, message: "is not a usable secret" }],
      );
    }
    return value;
  };
  const username = check("username", input.username);
  const password = check("password", input.password);
  const token = check("token", input.token);
  const key = check("key", input.key);
  const authPassphrase = check("authPassphrase", input.authPassphrase);
  const privPassphrase = check("privPassphrase", input.privPassphrase);
  const given = [
    username !== undefined || password !== undefined,
    token !== undefined,
    key !== undefined,
    authPassphrase !== undefined || privPassphrase !== undefined,
  ];
  if (given.filter(Boolean).length !== 1) {
    throw new ValidationError(
      "Give one secret: a username and a password, a token, a key, or USM passphrases",
      [
        {
          pointer: "",
          message: "needs exactly one of username+password, token, key, authPassphrase(+privPassphrase)",
        },
      ],
    );
  }
  if (authPassphrase !== undefined || privPassphrase !== undefined) {
    return {
      kind: "usm",
      secret: {
        ...(authPassphrase === undefined ? {} : { authPassphrase }),
        ...(privPassphrase === undefined ? {} : { privPassphrase }),
      },
    };
  }
  if (token !== undefined) return { kind: "token", secret: { token } };
  if (key !== undefined) return { kind: "key", secret: { key } };
  if (username === undefined || password === undefined) {
    const missing = username === undefined ? "username" : "password";
    throw new ValidationError(`Basic credentials need a username and a password`, [
      { pointer: `/${missing}`, message: "is required with basic credentials" },
    ]);
  }
  if (username.includes(":")) {
    // RFC 7617 §2: the user-id cannot contain a colon.
    throw new ValidationError("A basic username cannot contain a colon (RFC 7617)", [
      { pointer: "/username", message: "contains ':'" },
    ]);
  }
  return { kind: "basic", secret: { username, password } };
}

/**
 * Security definitions' names as a message lists them: each quoted and bounded, at most the first
 * five, so that a TD's many or long names do not make a message of kilobytes.
 */
function listed(names: readonly string[]): string {
  const shown = names.slice(0, 5).map((name) => quoted(name));
  return names.length > 5 ? `${shown.join(", ")} and ${names.length - 5} more` : shown.join(", ");
}

/** The security definition a secret is for: the named one, or the only one taking its kind. */
function definitionFor(
  td: ThingDescription & { id: string },
  kind: SecretKind,
  named: string | undefined,
): string {
  const definitions = td.securityDefinitions;
  const what = KIND_NAMES[kind];
  if (named !== undefined) {
    const scheme = Object.hasOwn(definitions, named) ? definitions[named]?.scheme : undefined;
    if (scheme === undefined) {
      throw new ValidationError(
        `${echoed(td.id)} has no security definition ${quoted(named)} (it has ${listed(Object.keys(definitions))})`,
        [{ pointer: "/schemeName", message: "is not in the TD's securityDefinitions" }],
      );
    }
    const takes = TAKES[scheme];
    if (takes !== kind) {
      const needs =
        takes === undefined
          ? `the hub holds no secrets for ${quoted(scheme)} schemes (only basic, bearer, apikey, ${SNMP_COMMUNITY}, ${SNMP_USM})`
          : `a ${scheme} scheme takes ${KIND_NAMES[takes]}`;
      throw new ValidationError(
        `Security definition ${quoted(named)} of ${echoed(td.id)} does not take ${what}: ${needs}`,
        [{ pointer: "/schemeName", message: `is a ${quoted(scheme)} scheme` }],
      );
    }
    return named;
  }
  const fitting = Object.entries(definitions)
    .filter(([, scheme]) => TAKES[scheme.scheme] === kind)
    .map(([name]) => name);
  if (fitting.length === 1 && fitting[0] !== undefined) return fitting[0];
  throw new ValidationError(
    fitting.length === 0
      ? `${echoed(td.id)} has no security definition that takes ${what}`
      : `${echoed(td.id)} has several security definitions that take ${what} (${listed(fitting)}): name one`,
    [{ pointer: "/schemeName", message: fitting.length === 0 ? "no definition fits" : "is required" }],
  );
}

/**
 * The passphrases a `snmp:usm` definition's level needs, no more: authNoPriv an auth passphrase,
 * authPriv both, noAuthNoPriv none; each of at least 8 characters, which USM requires (RFC 3414
 * §11.2) and agents enforce. The definition itself must be complete (its protocols known).
 */
function checkUsmSecret(td: ThingDescription & { id: string }, name: string, secret: Secret): void {
  const scheme = td.securityDefinitions[name];
  if (scheme === undefined) return;
  const { level, user } = usmDefinition(name, scheme);
  const fail = (field: string, message: string): never => {
    throw new ValidationError(`security "${name}" of ${td.id} (user "${user}", ${level}): ${message}`, [
      { pointer: `/${field}`, message },
    ]);
  };
  if (level === "noAuthNoPriv") {
    fail(
      secret.authPassphrase === undefined ? "privPassphrase" : "authPassphrase",
      "noAuthNoPriv uses no passphrases: the hub needs none for it",
    );
  }
  if (secret.authPassphrase === undefined) fail("authPassphrase", `${level} needs an auth passphrase`);
  if (level === "authPriv" && secret.privPassphrase === undefined)
    fail("privPassphrase", "authPriv needs a priv passphrase too");
  if (level === "authNoPriv" && secret.privPassphrase !== undefined)
    fail("privPassphrase", "authNoPriv encrypts nothing: give no priv passphrase, or say authPriv in the TD");
  for (const field of ["authPassphrase", "privPassphrase"] as const) {
    const value = secret[field];
    if (value !== undefined && Buffer.byteLength(value, "utf8") < MIN_USM_PASSPHRASE_LENGTH) {
      fail(
        field,
        `${field} is shorter than ${MIN_USM_PASSPHRASE_LENGTH} bytes, which SNMPv3 refuses (RFC 3414 §11.2)`,
      );
    }
  }
}
