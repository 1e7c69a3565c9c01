// What both stores do alike when a description is recorded: the check of its expectation against
// the Thing's current version, and the record it makes of its `described` Change.
import { ConflictError, changeTime, type Change } from "../core/index.js";
import type { DescribeCommand, ThingRecord } from "./store.js";

/** Refuses a description whose `expect` the Thing's current registration does not meet. */
export function checkDescribeExpectation(
  command: DescribeCommand,
  existing: { version: number } | undefined,
): void {
  const { id } = command.td;
  if (command.expect === "absent" && existing) {
    throw new ConflictError(`A Thing with id ${id} is already registered`);
  }
  if (typeof command.expect === "number" && existing?.version !== command.expect) {
    throw new ConflictError(`The Thing ${id} was changed concurrently; retry`);
  }
}

/** The Thing's record once `change` described it (`existing`: its registration before, if any). */
export function describedRecord(
  command: DescribeCommand,
  existing: { created: string } | undefined,
  change: Change,
): ThingRecord {
  const time = changeTime(change);
  const record: ThingRecord = {
    id: command.td.id,
    td: command.td,
    created: existing?.created ?? time,
    modified: time,
    version: change.seq,
  };
  if (command.expires !== undefined) record.expires = command.expires;
  if (command.ttl !== undefined) record.ttl = command.ttl;
  return record;
}
