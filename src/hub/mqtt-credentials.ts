// The credentials the hub has issued for its embedded MQTT broker: whom each opens, when and by
// whom it was issued, when it was last used, and whether it was revoked. Kept in
// `<data>/mqtt-credentials.json`, never a password: a password is derived from the admin token,
// the user name and the record's generation (api/mqtt/device-credentials.ts).
import { join } from "node:path";
import type { Logger } from "pino";
import { ConflictError, type Change } from "../core/index.js";
import { readDataFile, replaceDataFile } from "./data-files.js";

export const MQTT_CREDENTIALS_FILE = "mqtt-credentials.json";

/** Whom a credential opens: a registered Thing's device, or a Homie or Home Assistant device. */
export type MqttCredentialKind = "thing" | "homie" | "homeassistant";

export interface MqttCredential {
  /** The Thing's id, `homie:{device}` or `homeassistant:{node}`. */
  readonly username: string;
  readonly kind: MqttCredentialKind;
  /**
   * Part of what the password is derived from: one issued after a revocation is another. 0 for
   * the first, which is the password hubs derived before they kept records.
   */
  readonly generation: number;
  /** Absent for a credential issued before the hub kept records (recorded when first used). */
  readonly issuedAt?: string;
  readonly issuedBy?: string;
  /** The last time a client signed in with it (saved within a few seconds, and at stop). */
  readonly lastUsedAt?: string;
  readonly revokedAt?: string;
  readonly revokedBy?: string;
  /** Why: revoked by an admin, or its Thing was removed or expired. */
  readonly revokedBecause?: string;
}

/** How long a sign-in's time may wait in memory before it is saved. */
const LAST_USED_SAVE_MS = 5_000;
const FORMAT = 1;

export class MqttCredentials {
  readonly #path: string;
  readonly #now: () => Date;
  readonly #logger: Logger;
  readonly #records = new Map<string, MqttCredential>();
  readonly #listeners = new Set<(credential: MqttCredential) => void>();
  #saveTimer: NodeJS.Timeout | undefined;

  constructor(dataDir: string, now: () => Date, logger: Logger) {
    this.#path = join(dataDir, MQTT_CREDENTIALS_FILE);
    this.#now = now;
    this.#logger = logger;
    const text = readDataFile(this.#path);
    if (text === undefined) return;
    let credentials: unknown;
    try {
      const parsed = JSON.parse(text) as { format?: unknown; credentials?: unknown };
      if (parsed.format !== FORMAT) throw new Error(`format ${String(parsed.format)}, not ${FORMAT}`);
      credentials = parsed.credentials;
      if (!Array.isArray(credentials)) throw new Error("no credentials array");
    } catch (cause) {
      throw new Error(
        `${this.#path} is not a list of MQTT credentials this hub reads: restore it from a backup, or delete it (every credential issued is then refused, and those from before the hub kept records are taken again)`,
        { cause },
      );
    }
    for (const record of credentials as MqttCredential[]) this.#records.set(record.username, record);
  }

  /** The record of a user name, revoked or not. */
  get(username: string): MqttCredential | undefined {
    return this.#records.get(username);
  }

  /** Every record, by user name. */
  list(): MqttCredential[] {
    return [...this.#records.values()].sort((a, b) =>
      a.username < b.username ? -1 : a.username > b.username ? 1 : 0,
    );
  }

  /**
   * The credential in force for a user name: the one already issued, or a new one (the next
   * generation after a revoked one). `issued` says whether it is new.
   */
  issue(
    username: string,
    kind: MqttCredentialKind,
    actor: string,
  ): { credential: MqttCredential; issued: boolean } {
    const held = this.#records.get(username);
    if (held !== undefined && held.kind !== kind) {
      throw new ConflictError(
        `The MQTT user name ${username} is a ${describeKind(held.kind)}'s already: revoke it first (things mqtt-credentials --revoke)`,
      );
    }
    if (held !== undefined && held.revokedAt === undefined) return { credential: held, issued: false };
    const credential: MqttCredential = {
      username,
      kind,
      generation: held === undefined ? 0 : held.generation + 1,
      issuedAt: this.#now().toISOString(),
      issuedBy: actor,
    };
    this.#put(credential);
    this.#logger.info(
      { username, kind, generation: credential.generation, actor },
      "MQTT credentials issued",
    );
    return { credential, issued: true };
  }

  /**
   * Records a credential of the first generation that a client signed in with, issued before the
   * hub kept records (its password was derived the same way): listed, and revocable, from now on.
   */
  adopt(username: string, kind: MqttCredentialKind): MqttCredential {
    const held = this.#records.get(username);
    if (held !== undefined) return held;
    const credential: MqttCredential = { username, kind, generation: 0 };
    this.#put(credential);
    this.#logger.info(
      { username, kind },
      "MQTT credentials issued before the hub kept records, recorded at first use",
    );
    return credential;
  }

  /** Revokes the credential in force for a user name; undefined when none is. */
  revoke(username: string, actor: string, because: string): MqttCredential | undefined {
    const held = this.#records.get(username);
    if (held === undefined || held.revokedAt !== undefined) return undefined;
    const revoked: MqttCredential = {
      ...held,
      revokedAt: this.#now().toISOString(),
      revokedBy: actor,
      revokedBecause: because,
    };
    this.#put(revoked);
    this.#logger.info({ username, kind: held.kind, actor, because }, "MQTT credentials revoked");
    for (const listener of this.#listeners) listener(revoked);
    return revoked;
  }

  /**
   * A Thing was removed or expired: the credentials that open its device go with it. Not when the
   * device removed it itself by announcing so (Homie, Home Assistant: actor `mqtt:…`), since it
   * announces itself again with them.
   */
  thingRemoved(change: Pick<Change, "thing" | "cause">): void {
    const { thing, cause } = change;
    if (cause.actor.startsWith("mqtt:")) return;
    const because =
      cause.actor === "hub:expiry"
        ? `its Thing ${thing} expired from the directory`
        : `its Thing ${thing} was removed`;
    for (const [username, kind] of credentialsOfThing(thing)) {
      if (this.#records.get(username)?.kind === kind) this.revoke(username, cause.actor, because);
    }
  }

  /** A client signed in with this user name's credential now. */
  used(username: string): void {
    const held = this.#records.get(username);
    if (held === undefined) return;
    this.#records.set(username, { ...held, lastUsedAt: this.#now().toISOString() });
    // Saved a little later: devices reconnecting together cost one write, not one each.
    this.#saveTimer ??= setTimeout(() => {
      this.#saveTimer = undefined;
      this.#saveQuietly();
    }, LAST_USED_SAVE_MS).unref();
  }

  /** Told of each revocation, at once (the broker closes the connections that used it). */
  onRevoked(listener: (credential: MqttCredential) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Saves the last sign-in times still in memory. */
  close(): void {
    if (this.#saveTimer === undefined) return;
    clearTimeout(this.#saveTimer);
    this.#saveTimer = undefined;
    this.#saveQuietly();
  }

  #put(credential: MqttCredential): void {
    const before = this.#records.get(credential.username);
    this.#records.set(credential.username, credential);
    try {
      this.#save();
    } catch (error) {
      // Not saved is not done: an issue or a revocation that a restart would forget is refused.
      if (before === undefined) this.#records.delete(credential.username);
      else this.#records.set(credential.username, before);
      throw error;
    }
  }

  #save(): void {
    const credentials = this.list();
    replaceDataFile(this.#path, `${JSON.stringify({ format: FORMAT, credentials }, null, 1)}\n`, 0o600);
  }

  #saveQuietly(): void {
    try {
      this.#save();
    } catch (err) {
      this.#logger.warn({ err, file: this.#path }, "the last use of MQTT credentials was not saved");
    }
  }
}

/** The user names (with their kind) of the credentials that open a Thing's device. */
function credentialsOfThing(thing: string): [string, MqttCredentialKind][] {
  const names: [string, MqttCredentialKind][] = [[thing, "thing"]];
  const parts = thing.split(":");
  if (parts[0] === "urn" && parts[1] === "homie" && parts.length === 3 && parts[2] !== "")
    names.push([`homie:${parts[2]}`, "homie"]);
  // urn:homeassistant:{component}:{node}:{object}: the node's credentials open every entity of it.
  if (parts[0] === "urn" && parts[1] === "homeassistant" && parts.length === 5 && parts[3] !== "")
    names.push([`homeassistant:${parts[3]}`, "homeassistant"]);
  return names;
}

function describeKind(kind: MqttCredentialKind): string {
  return kind === "thing" ? "registered Thing" : kind === "homie" ? "Homie device" : "Home Assistant node";
}
