// The one way into the Log for observed state: validate each Change against the Thing's TD,
// append it with the state projection in one transaction (group commit in the store), publish
// it after commit. Backpressure comes from the store's bounded queue (UnavailableError → 503).
import { createHash } from "node:crypto";
import {
  NotFoundError,
  ValidationError,
  compileDataSchema,
  isRfc3339Time,
  jsonLimitProblem,
  type Cause,
  type Change,
  type DataSchema,
  type DataSchemaCheck,
  type RegisteredThingDescription,
  echoed,
  quoted,
} from "../core/index.js";
import type { Bus } from "../bus/index.js";
import type { ChangeDraft, Store } from "../store/index.js";
import type { HubClock } from "./hub-clock.js";

/** A Change as a producer reports it. */
export interface Report {
  kind: string;
  affordance?: string;
  value?: unknown;
  /** The device's own time (RFC 3339). */
  at?: string;
}

export interface IngestOptions {
  /**
   * The TD a command was sent with. The Thing may have acted on a command even if it was removed
   * while the command was in flight: its outcome (`completed`, `failed`) is then recorded against
   * this TD, so the Log does not leave the command without an end. Other kinds are refused as for
   * any removed Thing.
   */
  readonly sentWith?: RegisteredThingDescription;
}

/** The kinds that end a command, which `IngestOptions.sentWith` lets through after a removal. */
const OUTCOMES = new Set(["completed", "failed"]);

/** Which affordances a kind of Change is about, and which of their schemas its value must fit. */
const SINGULAR = { properties: "property", actions: "action", events: "event" } as const;

type Section = "properties" | "actions" | "events";

const KIND_RULES: Record<
  string,
  {
    /** Where the affordance is looked up; none for Thing-level kinds (no affordance allowed). */
    section?: Section;
    /** Further sections the affordance may be in, without a schema check. */
    orSections?: readonly Section[];
    schema?: "input" | "output" | "data" | "self";
  }
> = {
  reported: { section: "properties", schema: "self" },
  desired: { section: "properties", schema: "self" },
  emitted: { section: "events", schema: "data" },
  invoked: { section: "actions", schema: "input" },
  // An action's end, or a property write's (desired → completed/failed, by correlation).
  completed: { section: "actions", orSections: ["properties"], schema: "output" },
  // A command that failed, or a value from the Thing that did not fit its schema.
  failed: { section: "actions", orSections: ["properties", "events"] },
  // The Thing went away / came back (observation); the value is the reason.
  unreachable: {},
  reachable: {},
};

/** How many (Thing, affordance) checks are remembered; the compiled schemas themselves are shared. */
const MAX_CACHED_CHECKS = 200_000;

interface CachedThing {
  version: number;
  td: RegisteredThingDescription;
  /**
   * The checks of a property's own schema (reported and desired values), by property: a report
   * for a random Thing of many finds its Thing's maps out of the CPU's caches, so one map less
   * to go through is a cache miss less (with 64 one-Change producers over 10,000 Things,
   * `check` went from 6.4–10.6 % of the event loop's samples to 5.0 %). One map for all the
   * Things whose `properties` are the same (Ingest.sharedProperties), set at the first report.
   */
  properties: PropertyChecks | undefined;
  /** Any other kind's, by kind, then affordance: no key is built per report. */
  checks: Map<string, Map<string, DataSchemaCheck | undefined>>;
  /** How many checks `checks` holds (those of `properties` are counted where they are shared). */
  checkCount: number;
}

type PropertyChecks = Map<string, DataSchemaCheck | undefined>;

/** A rule whose checks are a property's own schema (CachedThing.properties). */
function ofProperties(rule: { section?: Section; schema?: string }): boolean {
  return rule.section === "properties" && rule.schema === "self";
}

export class Ingest {
  private readonly things = new Map<string, CachedThing>();
  /**
   * The property checks of the Things whose `properties` are the same, by the SHA-256 of their
   * JSON text: the devices of one model share one map, which stays in the CPU's caches while
   * reports come for random Things of a fleet (a map per Thing missed them at every report).
   */
  private readonly propertyChecks = new Map<string, PropertyChecks>();
  /** Checks and shared maps of checks held, bounded by MAX_CACHED_CHECKS. */
  private cachedChecks = 0;

  constructor(
    private readonly store: Store,
    private readonly bus: Bus,
    private readonly clock: HubClock,
  ) {
    // A new TD changes what its Changes must fit, and it is at hand: a Thing registered a moment
    // ago reports without a read of the store. A removed one's reports are refused again.
    bus.subscribe((change) => {
      if (change.kind === "described") this.described(change.thing, change.seq, change.value);
      else if (change.kind === "removed") this.forget(change.thing);
    });
  }

  private described(thing: string, seq: number, td: unknown): void {
    const cached = this.things.get(thing);
    if (cached !== undefined && cached.version >= seq) return;
    this.forget(thing);
    if (typeof td !== "object" || td === null) return;
    this.things.set(thing, {
      version: seq,
      td: td as RegisteredThingDescription,
      properties: undefined,
      checks: new Map(),
      checkCount: 0,
    });
  }

  private forget(thing: string): void {
    const cached = this.things.get(thing);
    if (cached) {
      this.cachedChecks -= cached.checkCount;
      this.things.delete(thing);
    }
  }

  private async thing(
    id: string,
    reports: readonly Report[],
    sentWith: RegisteredThingDescription | undefined,
  ): Promise<CachedThing> {
    const cached = this.things.get(id);
    if (cached) return cached;
    const record = await this.store.getThing(id);
    if (!record) {
      if (sentWith !== undefined && sentWith.id === id && reports.every((r) => OUTCOMES.has(r.kind))) {
        // Not cached: the removed Thing's other reports are still refused.
        return { version: -1, td: sentWith, properties: undefined, checks: new Map(), checkCount: 0 };
      }
      throw new NotFoundError(`No Thing with id ${echoed(id)}`);
    }
    const entry: CachedThing = {
      version: record.version,
      td: record.td,
      properties: undefined,
      checks: new Map(),
      checkCount: 0,
    };
    this.things.set(id, entry);
    return entry;
  }

  /**
   * The map of property checks for `td`'s properties: the one of every TD whose `properties` have
   * the same JSON text (the same names, schemas and forms: a check compiled from one fits all).
   */
  private sharedProperties(td: RegisteredThingDescription): PropertyChecks {
    const text = JSON.stringify(td.properties ?? {});
    const key = createHash("sha256").update(text).digest("base64");
    let shared = this.propertyChecks.get(key);
    if (shared === undefined) {
      this.makeRoom();
      this.propertyChecks.set(key, (shared = new Map<string, DataSchemaCheck | undefined>()));
      this.cachedChecks++;
    }
    return shared;
  }

  /** Below MAX_CACHED_CHECKS, or every cached check is dropped (they are compiled again when asked for). */
  private makeRoom(): void {
    if (this.cachedChecks < MAX_CACHED_CHECKS) return;
    this.things.clear();
    this.propertyChecks.clear();
    this.cachedChecks = 0;
  }

  private check(thing: CachedThing, report: Report, index: number): DataSchemaCheck | undefined {
    // Checked before: the affordance was found where the kind looks for it (the TD is the same,
    // or `forget` would have dropped the entry), so only the value is left to check.
    const rule = KIND_RULES[report.kind];
    if (!rule) return undefined;
    const properties = ofProperties(rule);
    const known =
      report.affordance === undefined
        ? undefined
        : properties
          ? (thing.properties ??= this.sharedProperties(thing.td))
          : thing.checks.get(report.kind);
    if (known !== undefined) {
      const check = known.get(report.affordance as string);
      if (check !== undefined || known.has(report.affordance as string)) return check;
    }
    const at = (pointer: string) => `/${index}${pointer}`;
    if (rule.section === undefined) {
      if (report.affordance === undefined) return undefined;
      throw new ValidationError(`A ${report.kind} Change is about the Thing, not one of its affordances`, [
        { pointer: at("/affordance"), message: "must be absent" },
      ]);
    }
    if (report.affordance === undefined) {
      throw new ValidationError(`A ${report.kind} Change names the ${SINGULAR[rule.section]} it is about`, [
        { pointer: at("/affordance"), message: "is required" },
      ]);
    }
    const name = report.affordance;
    // Own members only: "constructor" or "toString" is no affordance.
    const group = thing.td[rule.section] ?? {};
    const affordance = (Object.hasOwn(group, name) ? group[name] : undefined) as DataSchema | undefined;
    if (affordance === undefined && rule.orSections?.some((s) => Object.hasOwn(thing.td[s] ?? {}, name))) {
      return undefined;
    }
    if (affordance === undefined) {
      const known = Object.keys(thing.td[rule.section] ?? {});
      throw new ValidationError(
        `${thing.td.id} has no ${SINGULAR[rule.section]} ${quoted(report.affordance)}` +
          (known.length > 0 ? ` (it has ${known.join(", ")})` : ""),
        [{ pointer: at("/affordance"), message: `is not one of the Thing's ${rule.section}` }],
      );
    }
    if (!rule.schema) return undefined;
    let byName = properties
      ? (thing.properties ??= this.sharedProperties(thing.td))
      : thing.checks.get(report.kind);
    if (byName === undefined)
      thing.checks.set(report.kind, (byName = new Map<string, DataSchemaCheck | undefined>()));
    if (!byName.has(name)) {
      const schema =
        rule.schema === "self" ? affordance : (affordance[rule.schema] as DataSchema | undefined);
      this.makeRoom();
      byName.set(name, schema === undefined ? undefined : compileDataSchema(schema));
      // A shared map's checks are counted once, not per Thing (forget leaves them).
      if (!properties) thing.checkCount++;
      this.cachedChecks++;
    }
    return byName.get(name);
  }

  /**
   * Validates every report first (nothing is appended if one is wrong), then appends them all in
   * one transaction; resolves with the recorded Changes once they are durable. Not an async
   * function: a call for a cached Thing makes one promise of its own (`then`), not an async
   * function's frame and its await (one-Change producers make one call per Change).
   */
  ingest(
    thingId: string,
    reports: readonly Report[],
    cause: Cause,
    options?: IngestOptions,
  ): Promise<Change[]> {
    // A cached Thing needs no turn of the microtask queue.
    const thing = this.things.get(thingId);
    if (thing === undefined) {
      return this.thing(thingId, reports, options?.sentWith).then((found) =>
        this.record(found, thingId, reports, cause),
      );
    }
    return this.record(thing, thingId, reports, cause);
  }

  /** Publishes the Changes of an append, once committed, and hands them on. */
  private readonly published = (changes: Change[]): Change[] => {
    this.bus.publish(changes);
    return changes;
  };

  private record(
    thing: CachedThing,
    thingId: string,
    reports: readonly Report[],
    cause: Cause,
  ): Promise<Change[]> {
    let drafts: ChangeDraft[];
    try {
      drafts = this.drafts(thing, thingId, reports, cause);
    } catch (error) {
      // As an async function would: a report that does not fit rejects the call, with what was thrown.
      // eslint-disable-next-line @typescript-eslint/prefer-promise-reject-errors
      return Promise.reject(error);
    }
    return this.store.append(drafts).then(this.published);
  }

  /** The drafts of the reports, each checked (throws ValidationError at the first that does not fit). */
  private drafts(
    thing: CachedThing,
    thingId: string,
    reports: readonly Report[],
    cause: Cause,
  ): ChangeDraft[] {
    return reports.map((report, index) => {
      const check = this.check(thing, report, index);
      // A property's state, or an event's data, that is absent does not fit the schema either (an
      // action's input or output may be absent: the commands that record them decide).
      const schema = KIND_RULES[report.kind]?.schema;
      if (check && report.value === undefined && (schema === "self" || schema === "data")) {
        throw new ValidationError(
          `${/^[aeiou]/.test(report.kind) ? "An" : "A"} ${report.kind} Change of ${report.affordance ?? "?"} needs a value: its schema says what it must be`,
          [{ pointer: `/${index}/value`, message: "is required" }],
        );
      }
      if (report.value !== undefined) {
        const problem = jsonLimitProblem(report.value);
        if (problem) {
          throw new ValidationError(
            `The value for ${report.affordance ?? "the Thing"} cannot be recorded: ${problem.pointer || "it"} ${problem.message}`,
            [{ pointer: `/${index}/value${problem.pointer}`, message: problem.message }],
          );
        }
      }
      if (check && report.value !== undefined) {
        const problems = check(report.value);
        if (problems.length > 0) {
          const first = problems[0];
          throw new ValidationError(
            `The value for ${report.affordance ?? "?"} does not fit its schema: ${first?.pointer || "the value"} ${first?.message ?? ""}`.trim(),
            problems.map((p) => ({ pointer: `/${index}/value${p.pointer}`, message: p.message })),
          );
        }
      }
      const draft: ChangeDraft = { thing: thingId, kind: report.kind, hlc: this.clock.hlc(), cause };
      if (report.affordance !== undefined) draft.affordance = report.affordance;
      if (report.value !== undefined) draft.value = report.value;
      if (report.at !== undefined) {
        // One rule for every surface (HTTP, MQTT): a time the hub itself can read, each field in
        // its range — not 23:59:60, which no Date holds, nor a space for the T.
        if (typeof report.at !== "string" || !isRfc3339Time(report.at)) {
          throw new ValidationError('"at" must be an RFC 3339 date-time such as 2024-05-01T12:00:00.000Z', [
            { pointer: `/${index}/at`, message: "must be an RFC 3339 date-time" },
          ]);
        }
        draft.at = report.at;
      }
      return draft;
    });
  }
}
