// The directory of Things: registration, update, removal and lookup of TDs, every mutation
// recorded as a Change — with the `linked`/`unlinked` Changes of the edges it adds or drops — in
// one transaction, and published on the Bus after commit.
import { randomUUID } from "node:crypto";
import {
  BatchRefusedError,
  ConflictError,
  NotFoundError,
  PreconditionFailedError,
  ValidationError,
  applyMergePatch,
  canonicalJson,
  compileJsonPath,
  enrichThingDescription,
  expiryOf,
  iriProblem,
  linkChanges,
  newThingId,
  splitRegistration,
  validateThingDescription,
  type BatchRefusal,
  type Cause,
  type Change,
  type ErrorLocation,
  type IriScope,
  type RegisteredThingDescription,
  type RegistrationRequest,
  echoed,
  quoted,
} from "../core/index.js";
import type { Bus } from "../bus/index.js";
import type { ChangeDraft, DescribeCommand, Store, ThingRecord } from "../store/index.js";
import type { HubClock } from "./hub-clock.js";

export interface DirectoryOptions {
  maxSearchResults?: number;
  /** The vocabulary's prefixes, for link `rel`s a TD's own @context does not define. */
  linkScope?: IriScope;
  /** The largest TD a batch takes, in bytes of its JSON: what a request of it alone may be. */
  maxTdBytes?: number;
}

/** The most TDs one batch registers (`POST /things/batch`, docs/api.md). */
export const MAX_BATCH_THINGS = 10_000;
/** Past this many, the refused TDs of a batch beyond them are counted in its detail, not each said. */
const REFUSALS_SAID = 5;

export interface RegisterResult {
  id: string;
  created: boolean;
  change: Change;
  /** The `linked`/`unlinked` Changes recorded with it. */
  related: Change[];
  /** The write changed nothing: `change` is the Change that described the TD it already held. */
  unchanged?: boolean;
}

/**
 * A condition on the stored TD that a change needs (HTTP `If-Match` / `If-None-Match`, RFC 9110
 * §13.1): entity tags as the client sent them, compared with the TD's (`entityTagOf`).
 */
export interface WriteCondition {
  /** `*`: the Thing must exist; tags: its current tag must be one of them. */
  ifMatch?: "*" | readonly string[];
  /** `*`: the Thing must not exist (create only). */
  ifNoneMatch?: "*";
}

/** A registration's entity tag: its version, a Log position that every change of the TD moves. */
export function entityTagOf(record: { version: number }): string {
  return `"${record.version}"`;
}

/** Throws PreconditionFailedError unless the stored record (undefined: none) meets the condition. */
function checkCondition(id: string, condition: WriteCondition, current: ThingRecord | undefined): void {
  const { ifMatch, ifNoneMatch } = condition;
  if (ifMatch !== undefined) {
    if (current === undefined)
      throw new PreconditionFailedError(`If-Match: no Thing with id ${id} is registered`);
    if (ifMatch !== "*" && !ifMatch.includes(entityTagOf(current)))
      throw new PreconditionFailedError(
        `If-Match: the TD of ${echoed(id)} is at ${entityTagOf(current)}, not ${echoed(ifMatch.join(", "))}; read it again`,
      );
  }
  if (ifNoneMatch === "*" && current !== undefined)
    throw new PreconditionFailedError(`If-None-Match: a Thing with id ${id} is already registered`);
}

/** How many times a merge patch is retried when another writer changed the TD meanwhile. */
const PATCH_ATTEMPTS = 5;
/**
 * How many times a replacement or removal is retried when another writer changed the TD between
 * its read and its write (its edge Changes are drafted against what it read). Each round one of
 * the concurrent writers wins, so this bounds the writers racing on one Thing, not the load.
 */
const WRITE_ATTEMPTS = 20;

/** The cause of the removal of a TD whose registration expired. */
const EXPIRY_CAUSE: Cause = { actor: "hub:expiry", via: "hub" };

/** The `registration` member as its registrant set it: a ttl, else an absolute expiry. */
function registrationRequestOf(record: ThingRecord): { registration?: RegistrationRequest } {
  if (record.ttl !== undefined) return { registration: { ttl: record.ttl } };
  if (record.expires !== undefined) return { registration: { expires: record.expires } };
  return {};
}

export function assertThingId(id: string, pointer = "/id"): void {
  const problem = iriProblem(id);
  if (problem) {
    throw new ValidationError(`The Thing id ${quoted(id)} is not a valid IRI: it ${problem}`, [
      { pointer, message: problem },
    ]);
  }
}

/** A submitted TD, checked and ready for the store (Directory.prepare). */
type Prepared = ReturnType<Directory["prepare"]>;

export class Directory {
  private readonly maxSearchResults: number;
  private readonly linkScope: IriScope | undefined;
  private readonly maxTdBytes: number | undefined;

  constructor(
    private readonly store: Store,
    private readonly bus: Bus,
    private readonly hubClock: HubClock,
    options: DirectoryOptions = {},
  ) {
    this.maxSearchResults = options.maxSearchResults ?? 100_000;
    this.linkScope = options.linkScope;
    this.maxTdBytes = options.maxTdBytes;
  }

  /**
   * The `linked`/`unlinked` drafts taking the stored TD's edges to the new one's, with the
   * command's cause and the hub clock (each after the one before, so they sort after it).
   */
  private edgeDrafts(
    id: string,
    before: RegisteredThingDescription | undefined,
    after: RegisteredThingDescription | undefined,
    cause: Cause,
  ): ChangeDraft[] {
    return linkChanges(id, before, after, cause, this.linkScope).map((input) => ({
      ...input,
      hlc: this.hubClock.stamp().hlc,
    }));
  }

  /** Validates a submitted TD and prepares the store command: the edge of the directory. */
  private prepare(body: unknown, id: string | undefined) {
    validateThingDescription(body);
    const { td, request } = splitRegistration(body);
    if (id !== undefined && td.id !== undefined && td.id !== id) {
      throw new ValidationError(
        `The TD's id (${echoed(td.id)}) differs from the id in the URL (${echoed(id)})`,
        [{ pointer: "/id", message: `must equal the id in the URL, ${id}` }],
      );
    }
    const thingId = id ?? td.id ?? newThingId();
    assertThingId(thingId);
    const { hlc, time } = this.hubClock.stamp();
    const registered = { ...td, id: thingId } as RegisteredThingDescription;
    const expires = expiryOf(request, time);
    return { td: registered, ttl: request.ttl, expires, hlc };
  }

  /**
   * What a write of `prepared` over `current` answers when it would change nothing: the TD it
   * holds, and no expiry to set or renew (no Change, no event, the same version and ETag, as
   * `kubectl apply` says "unchanged"); undefined when it changes something.
   */
  private async unchanged(
    prepared: Prepared,
    current: ThingRecord | undefined,
  ): Promise<RegisterResult | undefined> {
    if (
      current === undefined ||
      prepared.ttl !== undefined ||
      prepared.expires !== undefined ||
      current.expires !== undefined ||
      canonicalJson(prepared.td) !== canonicalJson(current.td)
    )
      return undefined;
    const change = await this.store.getChange(current.version);
    return change && { id: current.id, created: false, change, related: [], unchanged: true };
  }

  /** The store command describing `prepared` over `current`, its edge Changes drafted against it. */
  private describeCommand(
    prepared: Prepared,
    cause: Cause,
    current: ThingRecord | undefined,
  ): DescribeCommand {
    const related = this.edgeDrafts(prepared.td.id, current?.td, prepared.td, cause);
    return {
      td: prepared.td,
      cause,
      hlc: prepared.hlc,
      ...(prepared.expires !== undefined && { expires: prepared.expires }),
      ...(prepared.ttl !== undefined && { ttl: prepared.ttl }),
      expect: current ? current.version : "absent",
      ...(related.length > 0 && { related }),
    };
  }

  /**
   * Describes the Thing over `current` (the stored record, undefined when absent): the edge
   * Changes are drafted against it, so the store checks it is still the stored version.
   */
  private async commit(
    prepared: Prepared,
    cause: Cause,
    current: ThingRecord | undefined,
  ): Promise<RegisterResult> {
    const unchanged = await this.unchanged(prepared, current);
    if (unchanged) return unchanged;
    const result = await this.store.describe(this.describeCommand(prepared, cause, current));
    this.bus.publish([result.change, ...result.related]);
    return { id: result.record.id, created: result.created, change: result.change, related: result.related };
  }

  /**
   * `POST /things/batch`: registers or replaces every TD of the batch (one with an id as PUT
   * /things/{id} does, one without as POST /things) in one store transaction, or none: every TD is
   * checked first, and when any is refused, all are listed in one BatchRefusedError. The
   * Changes share one correlation id. Results in the batch's order.
   */
  async registerAll(batch: unknown, cause: Cause): Promise<RegisterResult[]> {
    const prepared = this.prepareAll(batch);
    const together: Cause = { ...cause, correlation: cause.correlation ?? randomUUID() };
    for (let attempt = 1; ; attempt++) {
      const currents = await Promise.all(prepared.map((p) => this.currentFor(p.td.id, undefined)));
      const results: RegisterResult[] = new Array<RegisterResult>(prepared.length);
      const commands: DescribeCommand[] = [];
      const places: number[] = [];
      for (const [i, p] of prepared.entries()) {
        const current = currents[i];
        const unchanged = await this.unchanged(p, current);
        if (unchanged) {
          results[i] = unchanged;
          continue;
        }
        // Stamped now, in Log order: each TD's edge Changes after it and before the next TD.
        commands.push(this.describeCommand({ ...p, hlc: this.hubClock.stamp().hlc }, together, current));
        places.push(i);
      }
      if (commands.length === 0) return results;
      let described;
      try {
        described = await this.store.describeAll(commands);
      } catch (err) {
        // Another writer changed one of them between the reads and the write: read them again.
        if (!(err instanceof ConflictError) || attempt >= WRITE_ATTEMPTS) throw err;
        continue;
      }
      this.bus.publish(described.flatMap((r) => [r.change, ...r.related]));
      described.forEach((r, k) => {
        results[places[k] ?? 0] = {
          id: r.record.id,
          created: r.created,
          change: r.change,
          related: r.related,
        };
      });
      return results;
    }
  }

  /** Every TD of a batch checked and prepared, or a BatchRefusedError listing each one refused. */
  private prepareAll(batch: unknown): Prepared[] {
    if (!Array.isArray(batch)) {
      throw new ValidationError("A batch is a JSON array of TDs", [
        { pointer: "", message: "must be an array" },
      ]);
    }
    if (batch.length === 0) {
      throw new ValidationError("The batch holds no TD", [
        { pointer: "", message: "must hold a TD at least" },
      ]);
    }
    if (batch.length > MAX_BATCH_THINGS) {
      throw new ValidationError(
        `A batch holds at most ${MAX_BATCH_THINGS} TDs, this one ${batch.length}: send it in parts`,
        [{ pointer: "", message: `must hold at most ${MAX_BATCH_THINGS} TDs` }],
      );
    }
    const refused: BatchRefusal[] = [];
    const prepared: Prepared[] = [];
    const placeOf = new Map<string, number>();
    batch.forEach((td: unknown, index) => {
      const given = typeof td === "object" && td !== null && "id" in td ? td.id : undefined;
      const refuse = (status: number, message: string, errors: readonly ErrorLocation[]) => {
        const located = errors.length > 0 ? errors : [{ pointer: "", message }];
        refused.push({
          index,
          ...(typeof given === "string" && { id: given }),
          status,
          message,
          errors: located.map((e) => ({ pointer: `/${index}${e.pointer}`, message: e.message })),
        });
      };
      const bytes = this.maxTdBytes === undefined ? 0 : Buffer.byteLength(JSON.stringify(td) ?? "");
      if (this.maxTdBytes !== undefined && bytes > this.maxTdBytes) {
        const message = `The TD is ${bytes} bytes of JSON, more than the ${this.maxTdBytes} a TD may have (the hub's body limit)`;
        refuse(413, message, [{ pointer: "", message: `must be at most ${this.maxTdBytes} bytes` }]);
        return;
      }
      try {
        const p = this.prepare(td, undefined);
        const first = placeOf.get(p.td.id);
        if (first !== undefined) {
          refuse(400, `The batch gives the id ${p.td.id} twice: at /${first} and at /${index}`, [
            { pointer: "/id", message: `repeats the id of /${first}` },
          ]);
          return;
        }
        placeOf.set(p.td.id, index);
        prepared.push(p);
      } catch (err) {
        if (!(err instanceof ValidationError)) throw err;
        refuse(400, err.message, err.errors);
      }
    });
    if (refused.length === 0) return prepared;
    const said = refused
      .slice(0, REFUSALS_SAID)
      .map((r) => `/${r.index}${r.id === undefined ? "" : ` (${r.id})`}: ${r.message}`)
      .join("; ");
    const more = refused.length - REFUSALS_SAID;
    throw new BatchRefusedError(
      `${refused.length} of the batch's ${batch.length} TDs refused, none registered: ${said}${more > 0 ? ` (and ${more} more)` : ""}`,
      refused,
    );
  }

  /** `POST /things`: an anonymous TD gets a fresh `urn:uuid:` id. */
  async create(body: unknown, cause: Cause): Promise<RegisterResult> {
    if (typeof body === "object" && body !== null && "id" in body) {
      throw new ValidationError("This TD has an id: register it with PUT /things/{id}", [
        { pointer: "/id", message: "an anonymous TD (POST) has no id" },
      ]);
    }
    return this.commit(this.prepare(body, undefined), cause, undefined);
  }

  /**
   * Reads the live record (undefined when absent) and checks the condition on it, if any. A
   * record that expired and is not yet swept is removed first, as the sweep would have: a write
   * over it then creates the TD anew (201, a new `created`, thing_created) after its expiry, as
   * for a client that was told 404 it must, instead of replacing what no one could see.
   */
  private async currentFor(
    id: string,
    condition: WriteCondition | undefined,
  ): Promise<ThingRecord | undefined> {
    const record = await this.store.getThing(id);
    const live = record && this.isExpired(record, this.hubClock.now()) ? await this.expire(record) : record;
    if (condition) checkCondition(id, condition, live);
    return live;
  }

  /**
   * Records the removal of an expired record, caused by the expiry; undefined once it is gone
   * (by this or by another writer), or the record that renewed or replaced it meanwhile.
   */
  private async expire(record: ThingRecord): Promise<ThingRecord | undefined> {
    try {
      await this.removeRecord(record, EXPIRY_CAUSE);
      return undefined;
    } catch (err) {
      if (!(err instanceof NotFoundError) && !(err instanceof ConflictError)) throw err;
      const now = await this.store.getThing(record.id);
      return now && !this.isExpired(now, this.hubClock.now()) ? now : undefined;
    }
  }

  /**
   * Runs a write drafted over the current record, reading again when another writer got in
   * between; with a condition, once: the condition names the version the write is based on.
   */
  private async retrying<T>(
    id: string,
    condition: WriteCondition | undefined,
    attempts: number,
    write: (current: ThingRecord | undefined) => Promise<T>,
  ): Promise<T> {
    for (let attempt = 1; ; attempt++) {
      const current = await this.currentFor(id, condition);
      try {
        return await write(current);
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err;
        if (condition)
          throw new PreconditionFailedError(
            `The TD of ${id} changed while this request was applied; read it again`,
          );
        if (attempt >= attempts) throw err;
      }
    }
  }

  /** `PUT /things/{id}`: creates or replaces the TD. */
  async put(id: string, body: unknown, cause: Cause, condition?: WriteCondition): Promise<RegisterResult> {
    assertThingId(id);
    const prepared = this.prepare(body, id);
    // An upsert: when another writer got in between the read and the write, read again.
    return this.retrying(id, condition, WRITE_ATTEMPTS, (current) => this.commit(prepared, cause, current));
  }

  /** `PATCH /things/{id}` with an RFC 7396 merge patch; the result must be a valid TD. */
  async patch(id: string, patch: unknown, cause: Cause, condition?: WriteCondition): Promise<RegisterResult> {
    assertThingId(id);
    if (typeof patch !== "object" || patch === null || Array.isArray(patch)) {
      throw new ValidationError("A merge patch for a TD is a JSON object", [
        { pointer: "", message: "must be object" },
      ]);
    }
    for (let attempt = 1; ; attempt++) {
      const current = await this.getLive(id);
      if (condition) checkCondition(id, condition, current);
      // The patch applies to the TD with what its registrant set of its registration, so that
      // `"registration": {"ttl": null}` ends the expiry and a ttl left as it was counts again
      // from now: an empty patch renews a ttl registration (WoT Discovery §7.3.2.1.3).
      const patched = applyMergePatch({ ...current.td, ...registrationRequestOf(current) }, patch);
      const prepared = this.prepare(patched, id);
      try {
        return await this.commit(prepared, cause, current);
      } catch (err) {
        if (!(err instanceof ConflictError)) throw err;
        if (condition)
          throw new PreconditionFailedError(
            `The TD of ${id} changed while this request was applied; read it again`,
          );
        if (attempt >= PATCH_ATTEMPTS) throw err;
      }
    }
  }

  /**
   * Changes a TD by a function of its current version: `edit` returns the merge patch to apply
   * (or undefined: nothing to do), and is applied again to the TD as it is then when another
   * writer changed it in between, so that neither change is lost (link, unlink, a rollout's link).
   */
  async edit(
    id: string,
    cause: Cause,
    edit: (td: RegisteredThingDescription) => Record<string, unknown> | undefined,
  ): Promise<RegisterResult | undefined> {
    for (let attempt = 1; ; attempt++) {
      const current = await this.getLive(id);
      const patch = edit(current.td);
      if (patch === undefined) return undefined;
      try {
        return await this.patch(id, patch, cause, { ifMatch: [entityTagOf(current)] });
      } catch (err) {
        if (!(err instanceof PreconditionFailedError)) throw err;
        if (attempt >= WRITE_ATTEMPTS)
          throw new ConflictError(`The TD of ${id} kept changing while this change was applied; retry`);
      }
    }
  }

  async remove(id: string, cause: Cause, condition?: WriteCondition): Promise<Change> {
    assertThingId(id);
    return this.retrying(id, condition, WRITE_ATTEMPTS, (current) => {
      // Expired is gone too (GET says 404): its removal is recorded as the expiry's (currentFor),
      // not as this caller's.
      if (!current || this.isExpired(current, this.hubClock.now()))
        throw new NotFoundError(`No Thing with id ${echoed(id)}`);
      return this.removeRecord(current, cause);
    });
  }

  /** Removes the Thing if `record` is still its stored version, with its edges' `unlinked` Changes. */
  private async removeRecord(record: ThingRecord, cause: Cause): Promise<Change> {
    const hlc = this.hubClock.stamp().hlc;
    const related = this.edgeDrafts(record.id, record.td, undefined, cause);
    const result = await this.store.remove({
      id: record.id,
      cause,
      hlc,
      expect: record.version,
      ...(related.length > 0 && { related }),
    });
    this.bus.publish([result.change, ...result.related]);
    return result.change;
  }

  private isExpired(record: ThingRecord, now: Date): boolean {
    return record.expires !== undefined && Date.parse(record.expires) <= now.getTime();
  }

  /** A registered, unexpired Thing, or NotFoundError. */
  async getLive(id: string): Promise<ThingRecord> {
    assertThingId(id);
    const record = await this.store.getThing(id);
    if (!record || this.isExpired(record, this.hubClock.now()))
      throw new NotFoundError(`No Thing with id ${echoed(id)}`);
    return record;
  }

  /** The TD with its registration information, as the directory serves it. */
  enriched(record: ThingRecord, now = this.hubClock.now()): RegisteredThingDescription {
    return enrichThingDescription(record.td, {
      created: record.created,
      modified: record.modified,
      ...(record.expires !== undefined && { expires: record.expires }),
      ...(record.ttl !== undefined && { ttl: record.ttl }),
      retrieved: now.toISOString(),
    });
  }

  async get(id: string): Promise<RegisteredThingDescription> {
    return this.enriched(await this.getLive(id));
  }

  /**
   * A page of the live TDs in id order, their total, and the collection's revision: it changes
   * whenever a TD is registered, updated, removed or expires (WoT Discovery §7.3.2.1.5: the
   * `etag` of the canonical link, so a client paging through sees whether the pages still fit).
   */
  async list(
    offset: number,
    limit: number,
  ): Promise<{ items: RegisteredThingDescription[]; total: number; revision: string }> {
    const now = this.hubClock.now();
    const liveAt = now.toISOString();
    const [records, total, version] = await Promise.all([
      this.store.listThings({ offset, limit, liveAt }),
      this.store.countThings(liveAt),
      this.store.thingsVersion(),
    ]);
    const items = records.map((r) => this.enriched(r, now));
    // A TD written after a moment has a version above every one of that moment, so when the
    // highest version is the same again, the live TDs are some of those that were live then,
    // unchanged: the same count then means the same collection.
    return { items, total, revision: `${version}-${total}` };
  }

  /**
   * RFC 9535 JSONPath over the collection of registered TDs (WoT Discovery §7.3.2.4: the root is
   * the array of all TDs), each as the directory serves it, with its registration information.
   * Element-wise queries stream TD by TD; the others need the whole array.
   */
  async searchJsonPath(query: string, pointer = "/query"): Promise<unknown[]> {
    const path = compileJsonPath(query, pointer);
    const now = this.hubClock.now();
    const results: unknown[] = [];
    const collection: RegisteredThingDescription[] = [];
    const add = (values: unknown[]) => {
      for (const value of values) results.push(value);
      if (results.length > this.maxSearchResults) {
        throw new ValidationError(
          `The query selects more than ${this.maxSearchResults} values; make it more specific`,
          [{ pointer, message: "selects too many values" }],
        );
      }
    };
    for await (const record of this.store.scanThings()) {
      if (this.isExpired(record, now)) continue;
      const td = this.enriched(record, now);
      if (path.elementwise) add(path.values([td]));
      else collection.push(td);
    }
    if (!path.elementwise) add(path.values(collection));
    return results;
  }

  /** Drops TDs whose registration expired; each removal is a Change caused by the hub. */
  async sweepExpired(): Promise<number> {
    const now = this.hubClock.now();
    const ids = await this.store.expiredThings(now.toISOString(), 500);
    let removed = 0;
    for (const id of ids) {
      const record = await this.store.getThing(id);
      if (!record || !this.isExpired(record, now)) continue;
      try {
        await this.removeRecord(record, EXPIRY_CAUSE);
        removed++;
      } catch (err) {
        // Removed or renewed by someone else in the meantime: nothing to do.
        if (!(err instanceof NotFoundError) && !(err instanceof ConflictError)) throw err;
      }
    }
    return removed;
  }
}
