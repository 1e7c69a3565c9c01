// The credentials the hub has issued for its embedded MQTT broker: whom each opens, when and by
// whom it was issued, when it was last used, and whether it was revoked. Kept in the store
// (MqttCredentialStore), so that every replica of a hub takes what any of them issued and refuses
// what any revoked; never a password: a password is derived from the admin token, the user name
// and the record's generation (api/mqtt/device-credentials.ts).
import { renameSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import { ConflictError, type Change } from "../core/index.js";
import { readDataFile } from "./data-files.js";

/**
 * Where hubs kept the records before the store did: read into the store once at start, then
 * renamed with `.imported` (MQTT_CREDENTIALS_IMPORTED).
 */
export const MQTT_CREDENTIALS_FILE = "mqtt-credentials.json";
export const MQTT_CREDENTIALS_IMPORTED = `${MQTT_CREDENTIALS_FILE}.imported`;

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

/**
 * Where the records are kept: the hub's store (SQLite, or PostgreSQL shared by replicas). Writes
 * are conditional, so that two processes issuing or revoking at once agree on one record.
 */
export interface MqttCredentialStore {
  /** The records, by user name: every one, or the one of `username`. */
  list(username?: string): Promise<MqttCredential[]>;
  /**
   * Writes `record` as its user name's record if that is still `previous` (the same generation and
   * revocation; undefined: no record): false, writing nothing, when another process changed it first.
   */
  replace(record: MqttCredential, previous: MqttCredential | undefined): Promise<boolean>;
  /**
   * The records written since `revision` (one this returned before; undefined: every record), and
   * the revision to ask from next. A store that keeps no revisions answers every record, and
   * undefined.
   */
  changedSince(revision: number | undefined): Promise<MqttCredentialChanges>;
  /** Records sign-in times, keeping for each user name the later of the stored one and this. */
  used(times: ReadonlyArray<{ readonly username: string; readonly at: string }>): Promise<void>;
  close(): Promise<void>;
}

/** What MqttCredentialStore.changedSince answers. */
export interface MqttCredentialChanges {
  readonly records: MqttCredential[];
  readonly revision: number | undefined;
}

/** The records in memory only, for a broker whose records need not outlive it (tests, tools). */
export class MemoryMqttCredentialStore implements MqttCredentialStore {
  readonly #records = new Map<string, MqttCredential>();

  async list(username?: string): Promise<MqttCredential[]> {
    if (username !== undefined) {
      const record = this.#records.get(username);
      return record === undefined ? [] : [record];
    }
    return [...this.#records.values()].sort((a, b) => (a.username < b.username ? -1 : 1));
  }

  async replace(record: MqttCredential, previous: MqttCredential | undefined): Promise<boolean> {
    const held = this.#records.get(record.username);
    const same =
      previous === undefined
        ? held === undefined
        : held !== undefined &&
          held.generation === previous.generation &&
          held.revokedAt === previous.revokedAt;
    if (same) this.#records.set(record.username, record);
    return same;
  }

  async changedSince(): Promise<MqttCredentialChanges> {
    return { records: await this.list(), revision: undefined };
  }

  async used(times: ReadonlyArray<{ readonly username: string; readonly at: string }>): Promise<void> {
    for (const { username, at } of times) {
      const held = this.#records.get(username);
      if (held !== undefined && (held.lastUsedAt ?? "") < at)
        this.#records.set(username, { ...held, lastUsedAt: at });
    }
  }

  async close(): Promise<void> {}
}

/** How long a sign-in's time may wait in memory before it is saved. */
const LAST_USED_SAVE_MS = 5_000;
/** How many times an issue or a revocation is tried again when another process changed the record first. */
const WRITE_TRIES = 5;
const FORMAT = 1;

export interface MqttCredentialsOptions {
  /**
   * How often the records written since the last read are read from the store, in milliseconds, for
   * what other processes (replicas) revoked: their connections here are closed then. 0: never (a
   * hub alone writes them all).
   */
  refreshMs?: number;
}

export class MqttCredentials {
  readonly #store: MqttCredentialStore;
  readonly #now: () => Date;
  readonly #logger: Logger;
  /** The records as last read or written here: what a connected client is checked against. */
  readonly #records = new Map<string, MqttCredential>();
  readonly #listeners = new Set<(credential: MqttCredential) => void>();
  /** Sign-in times not saved yet, by user name. */
  readonly #unsaved = new Map<string, string>();
  readonly #refreshMs: number;
  /** The store's revision as of the last refresh: the next reads what was written after it. */
  #revision: number | undefined;
  #saveTimer: NodeJS.Timeout | undefined;
  #refreshTimer: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(
    store: MqttCredentialStore,
    now: () => Date,
    logger: Logger,
    options: MqttCredentialsOptions = {},
  ) {
    this.#store = store;
    this.#now = now;
    this.#logger = logger;
    this.#refreshMs = options.refreshMs ?? 0;
  }

  /**
   * Reads the records, after taking those of a hub that kept them in `<dataDir>/mqtt-credentials.json`
   * into the store (a record the store has already stays as it is); then reads them again every
   * `refreshMs`.
   */
  async open(dataDir: string): Promise<void> {
    const path = join(dataDir, MQTT_CREDENTIALS_FILE);
    const text = readDataFile(path);
    if (text !== undefined) {
      for (const record of parseCredentialsFile(path, text)) await this.#store.replace(record, undefined);
      renameSync(path, join(dataDir, MQTT_CREDENTIALS_IMPORTED));
      this.#logger.info({ file: path }, "MQTT credentials taken into the store from the data directory");
    }
    await this.refresh();
    if (this.#refreshMs > 0) this.#scheduleRefresh();
  }

  #scheduleRefresh(): void {
    if (this.#closed) return;
    this.#refreshTimer = setTimeout(() => {
      this.refresh()
        .catch((err: unknown) =>
          this.#logger.warn({ err }, "MQTT credentials were not read again from the store"),
        )
        .finally(() => this.#scheduleRefresh());
    }, this.#refreshMs);
    this.#refreshTimer.unref();
  }

  /**
   * Reads the records written to the store since the last read (every one at the first): the
   * connections of those revoked elsewhere are closed.
   */
  async refresh(): Promise<void> {
    const { records, revision } = await this.#store.changedSince(this.#revision);
    for (const record of records) this.#absorb(record);
    this.#revision = revision;
  }

  /** The record of a user name as last read here, revoked or not. */
  get(username: string): MqttCredential | undefined {
    return this.#records.get(username);
  }

  /** The record of a user name as the store has it now (another replica may have changed it). */
  async current(username: string): Promise<MqttCredential | undefined> {
    const [record] = await this.#store.list(username);
    return record === undefined ? this.#records.get(username) : this.#absorb(record);
  }

  /** Every record, by user name, as the store has it now. */
  async list(): Promise<MqttCredential[]> {
    for (const record of await this.#store.list()) this.#absorb(record);
    return [...this.#records.values()].sort((a, b) =>
      a.username < b.username ? -1 : a.username > b.username ? 1 : 0,
    );
  }

  /**
   * The credential in force for a user name: the one already issued, or a new one (the next
   * generation after a revoked one). `issued` says whether it is new.
   */
  async issue(
    username: string,
    kind: MqttCredentialKind,
    actor: string,
  ): Promise<{ credential: MqttCredential; issued: boolean }> {
    for (let tries = 0; tries < WRITE_TRIES; tries++) {
      const held = await this.current(username);
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
      if (!(await this.#store.replace(credential, held))) continue;
      this.#absorb(credential);
      this.#logger.info(
        { username, kind, generation: credential.generation, actor },
        "MQTT credentials issued",
      );
      return { credential, issued: true };
    }
    throw busy(username);
  }

  /**
   * Records a credential of the first generation that a client signed in with, issued before the
   * hub kept records (its password was derived the same way): listed, and revocable, from now on.
   */
  async adopt(username: string, kind: MqttCredentialKind): Promise<MqttCredential> {
    const credential: MqttCredential = { username, kind, generation: 0 };
    if (await this.#store.replace(credential, undefined)) {
      this.#logger.info(
        { username, kind },
        "MQTT credentials issued before the hub kept records, recorded at first use",
      );
    }
    return (await this.current(username)) ?? this.#absorb(credential);
  }

  /** Revokes the credential in force for a user name; undefined when none is. */
  async revoke(username: string, actor: string, because: string): Promise<MqttCredential | undefined> {
    for (let tries = 0; tries < WRITE_TRIES; tries++) {
      const held = await this.current(username);
      if (held === undefined || held.revokedAt !== undefined) return undefined;
      const revoked: MqttCredential = {
        ...held,
        revokedAt: this.#now().toISOString(),
        revokedBy: actor,
        revokedBecause: because,
      };
      if (!(await this.#store.replace(revoked, held))) continue;
      this.#logger.info({ username, kind: held.kind, actor, because }, "MQTT credentials revoked");
      this.#absorb(revoked);
      return revoked;
    }
    throw busy(username);
  }

  /**
   * A Thing was removed or expired: the credentials that open its device go with it. Not when the
   * device removed it itself by announcing so (Homie, Home Assistant: actor `mqtt:…`), since it
   * announces itself again with them. Every replica is told of the removal: the first revokes, the
   * others find it revoked.
   */
  async thingRemoved(change: Pick<Change, "thing" | "cause">): Promise<void> {
    const { thing, cause } = change;
    if (cause.actor.startsWith("mqtt:")) return;
    const because =
      cause.actor === "hub:expiry"
        ? `its Thing ${thing} expired from the directory`
        : `its Thing ${thing} was removed`;
    for (const [username, kind] of credentialsOfThing(thing)) {
      if ((await this.current(username))?.kind === kind) await this.revoke(username, cause.actor, because);
    }
  }

  /** A client signed in with this user name's credential now. */
  used(username: string): void {
    const held = this.#records.get(username);
    if (held === undefined) return;
    const at = this.#now().toISOString();
    this.#records.set(username, { ...held, lastUsedAt: at });
    this.#unsaved.set(username, at);
    // Saved a little later: devices reconnecting together cost one write, not one each.
    this.#saveTimer ??= setTimeout(() => {
      this.#saveTimer = undefined;
      void this.#saveUses();
    }, LAST_USED_SAVE_MS).unref();
  }

  /** Told of each revocation, here or (within `refreshMs`) by another process on the store. */
  onRevoked(listener: (credential: MqttCredential) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Saves the last sign-in times still in memory. */
  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#refreshTimer);
    clearTimeout(this.#saveTimer);
    this.#saveTimer = undefined;
    await this.#saveUses();
  }

  /**
   * Takes a record read from or written to the store as this process's; says a revocation (or a
   * newer generation, issued after one) to the listeners once. A later sign-in time kept here stays.
   */
  #absorb(record: MqttCredential): MqttCredential {
    const before = this.#records.get(record.username);
    const lastUsedAt = [before?.lastUsedAt, record.lastUsedAt]
      .filter((at) => at !== undefined)
      .sort()
      .at(-1);
    const kept: MqttCredential = {
      ...record,
      ...(lastUsedAt !== undefined && before?.generation === record.generation && { lastUsedAt }),
    };
    this.#records.set(record.username, kept);
    const ended =
      before !== undefined &&
      before.revokedAt === undefined &&
      (record.revokedAt !== undefined || record.generation !== before.generation);
    if (ended) {
      const revoked = record.revokedAt !== undefined ? kept : { ...before, revokedAt: record.issuedAt ?? "" };
      for (const listener of this.#listeners) listener(revoked);
    }
    return kept;
  }

  async #saveUses(): Promise<void> {
    if (this.#unsaved.size === 0) return;
    const times = [...this.#unsaved].map(([username, at]) => ({ username, at }));
    this.#unsaved.clear();
    try {
      await this.#store.used(times);
    } catch (err) {
      this.#logger.warn({ err }, "the last use of MQTT credentials was not saved");
    }
  }
}

/** The records of a `mqtt-credentials.json` that hubs kept before the store did. */
function parseCredentialsFile(path: string, text: string): MqttCredential[] {
  try {
    const parsed = JSON.parse(text) as { format?: unknown; credentials?: unknown };
    if (parsed.format !== FORMAT) throw new Error(`format ${String(parsed.format)}, not ${FORMAT}`);
    if (!Array.isArray(parsed.credentials)) throw new Error("no credentials array");
    return parsed.credentials as MqttCredential[];
  } catch (cause) {
    throw new Error(
      `${path} is not a list of MQTT credentials this hub reads: restore it from a backup, or delete it (every credential issued is then refused, and those from before the hub kept records are taken again)`,
      { cause },
    );
  }
}

function busy(username: string): ConflictError {
  return new ConflictError(
    `The MQTT credentials of ${username} were changed by another replica ${WRITE_TRIES} times while this one wrote them: try again`,
  );
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
