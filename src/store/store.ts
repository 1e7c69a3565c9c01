// The Store: durable home of the directory and of the Log. One interface, one folder per backend
// (sqlite/ embedded, postgres/ at scale); a shared conformance suite runs against each.
import type { Change, Cause, RegisteredThingDescription } from "../core/index.js";

/** A Thing as the directory holds it: the TD as registered plus registration information. */
export interface ThingRecord {
  id: string;
  td: RegisteredThingDescription;
  /** When the directory first registered this Thing (RFC 3339). */
  created: string;
  /** When its TD last changed in the directory (RFC 3339). */
  modified: string;
  /** Absolute expiry (RFC 3339): the directory drops the TD after it. */
  expires?: string;
  /** Time to live in seconds, as the registrant gave it. */
  ttl?: number;
  /** The `seq` of the last Change to this Thing's description: a version for compare-and-set. */
  version: number;
}

export interface DescribeCommand {
  td: RegisteredThingDescription;
  cause: Cause;
  /** The hub's time of the mutation (RFC 3339), used for `created`/`modified` and the Change. */
  time: string;
  expires?: string;
  ttl?: number;
  /**
   * Precondition: `"absent"` — fail with ConflictError if the Thing exists; a number — fail
   * with ConflictError unless the Thing's current `version` equals it; undefined — upsert.
   */
  expect?: "absent" | number;
}

export interface DescribeResult {
  created: boolean;
  record: ThingRecord;
  change: Change;
}

export interface RemoveCommand {
  id: string;
  cause: Cause;
  time: string;
  /** As in DescribeCommand: fail with ConflictError unless the version matches. */
  expect?: number;
}

export interface ListOptions {
  offset: number;
  limit: number;
  /** Leave out Things whose `expires` is at or before this time (RFC 3339). */
  liveAt?: string;
}

export interface Store {
  /** Registers or replaces a TD and appends a `described` Change, in one durable transaction. */
  describe(command: DescribeCommand): Promise<DescribeResult>;
  /** Removes a TD and appends a `removed` Change; NotFoundError when absent. */
  remove(command: RemoveCommand): Promise<Change>;
  getThing(id: string): Promise<ThingRecord | undefined>;
  /** Things ordered by id. */
  listThings(options: ListOptions): Promise<ThingRecord[]>;
  /** How many Things there are; with `liveAt`, only those unexpired at that time. */
  countThings(liveAt?: string): Promise<number>;
  /** Every Thing, in id order, in pages — for scans such as JSONPath search. */
  scanThings(batchSize?: number): AsyncIterable<ThingRecord>;
  /** Ids of Things whose `expires` is at or before `time`. */
  expiredThings(time: string, limit: number): Promise<string[]>;
  /** Changes with `seq > after`, oldest first, at most `limit`. */
  changesAfter(after: number, limit: number): Promise<Change[]>;
  /** The highest `seq` in the Log (0 when empty). */
  lastSeq(): Promise<number>;
  /** Waits for queued writes to commit, then releases the database. */
  close(): Promise<void>;
}
