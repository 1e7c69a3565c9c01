// Releases: immutable, content-addressed desired state (docs/releases.md). Stored once, in the
// Log, as the value of a `released` Change on the hub's own id; planned against the Things as
// the hub knows them now (filters resolved through the graph at plan time).
import {
  NotFoundError,
  ValidationError,
  buildRelease,
  documentReleaseId,
  parseReleaseDocument,
  planRelease,
  type BuildOptions,
  type Cause,
  type ErrorLocation,
  type ManifestSource,
  type Plan,
  type PlanThing,
  type Release,
  type ReleaseBody,
  type ReleaseSummary,
  type StepSource,
  type ThingDescription,
} from "../core/index.js";
import type { Bus } from "../bus/index.js";
import type { ReleaseRecord, Store } from "../store/index.js";
import { REACHABILITY_STREAM_KINDS, latestReachability } from "./history.js";
import { ofRegistration } from "./registration.js";
import type { HubClock } from "./hub-clock.js";

/** The Change kind that records a stored release. */
export const RELEASED_KIND = "released";

/** A Thing a filter matched; with its TD and reported state when the finder has them at hand. */
export interface FoundThing {
  id: string;
  td?: ThingDescription;
  state?: Record<string, unknown>;
}

/** How the hub finds the Things a graph filter matches (hub.graph). */
export interface ThingFinder {
  query(
    filter: string,
    page: { cursor?: string; limit: number; pointer?: string },
  ): Promise<{ items: { id: string }[]; next?: string }>;
}

export interface ReleasesContext {
  /** The hub's own id: the Thing `released` Changes are recorded on. */
  readonly hubId: string;
  readonly store: Store;
  readonly bus: Bus;
  readonly clock: HubClock;
  /** The graph, once the hub has one; without, filter selectors match nothing. */
  readonly finder?: () => ThingFinder | undefined;
  /** Whether the hub can talk to Things at all (it has bindings). */
  readonly canCommand: boolean;
  /** Affordance keys a release already applied on a Thing (the rollout ledger), when known. */
  readonly appliedOf?: (release: string, thing: string) => Promise<readonly string[]>;
}

export interface StoreResult {
  created: boolean;
  release: Release;
  storedAt: string;
}

export interface ReleaseListOptions {
  limit: number;
  /** The `seq` cursor of the last release of the previous page. */
  before?: number;
  name?: string;
}

const FILTER_PAGE = 1000;

function summaryOf(record: ReleaseRecord): ReleaseSummary & { seq: number } {
  const { release } = record;
  return {
    id: release.id,
    name: release.name,
    ...(release.supersedes !== undefined && { supersedes: release.supersedes }),
    drift: release.drift.policy,
    steps: release.steps.length,
    builtAt: release.provenance.builtAt,
    builder: release.provenance.builder,
    storedAt: record.storedAt,
    seq: record.seq,
  };
}

function located(source: StepSource | undefined, message: string): string {
  return source ? `${source.file}:${source.line}:${source.column}: ${message}` : message;
}

export class Releases {
  constructor(private readonly context: ReleasesContext) {}

  /** Compiles manifests (core/manifest.ts) and stores the release. */
  async build(
    sources: readonly ManifestSource[],
    cause: Cause,
    options: Partial<BuildOptions> = {},
  ): Promise<StoreResult> {
    const release = buildRelease(sources, {
      builder: options.builder ?? "hyperthings hub",
      builtAt: options.builtAt ?? this.context.clock.now().toISOString(),
      ...(options.resolveInclude && { resolveInclude: options.resolveInclude }),
    });
    return this.store(release, cause);
  }

  /**
   * `POST /releases`: validates a release document from outside, checks it against the Things it
   * names by id, and stores it — once: the same id again changes nothing.
   */
  async store(document: unknown, cause: Cause): Promise<StoreResult> {
    const release = parseReleaseDocument(document);
    // A release stored before bodies had one shape keeps the id of its body as it was sent.
    const sent = documentReleaseId(document as ReleaseBody);
    const existing =
      (await this.context.store.getRelease(release.id)) ??
      (sent === release.id ? undefined : await this.context.store.getRelease(sent));
    if (existing) return { created: false, release: existing.release, storedAt: existing.storedAt };
    await this.check(release);
    const { hlc } = this.context.clock.stamp();
    const result = await this.context.store.putRelease({
      release,
      thing: this.context.hubId,
      cause: { ...cause, release: release.id },
      hlc,
    });
    if (result.change) this.context.bus.publish([result.change]);
    return { created: result.created, release: result.record.release, storedAt: result.record.storedAt };
  }

  /** What the hub can say before storing: the superseded release exists, named Things fit. */
  private async check(release: Release): Promise<void> {
    const errors: ErrorLocation[] = [];
    if (release.supersedes !== undefined && !(await this.context.store.getRelease(release.supersedes))) {
      errors.push({ pointer: "/supersedes", message: `no release ${release.supersedes} is stored` });
    }
    const finder = this.context.finder?.();
    const things: PlanThing[] = [];
    const seen = new Set<string>();
    for (const [index, step] of release.steps.entries()) {
      const source = release.provenance.steps?.[index];
      if ("filter" in step.select) {
        // Filters are resolved at plan time; here only their syntax is checked.
        if (finder) {
          try {
            await finder.query(step.select.filter, { limit: 1 });
          } catch (error) {
            if (!(error instanceof ValidationError)) throw error;
            errors.push({
              pointer: `/steps/${index}/select/filter`,
              message: located(source, error.message),
            });
          }
        }
        continue;
      }
      const id = step.select.id;
      if (seen.has(id)) continue;
      seen.add(id);
      const thing = await this.planThing(id, release.id, true);
      if (thing) things.push(thing);
    }
    // Filter steps match nothing here (they are resolved at plan time): their problems are not errors.
    const plan = planRelease(release, things);
    for (const problem of plan.problems) {
      if (!("id" in problem.select)) continue;
      errors.push({
        pointer: `/steps/${problem.step}/select/id`,
        message: located(problem.source, `no Thing ${problem.select.id} is registered`),
      });
    }
    for (const thingPlan of plan.things) {
      for (const item of thingPlan.items) {
        if (item.status !== "cannot" || item.reason === "unreachable" || item.reason === "read-only")
          continue;
        const index = item.step;
        const member = item.kind === "property" ? `properties/${item.name}` : `${item.kind}s`;
        errors.push({
          pointer: `/steps/${index}/${member}`,
          message: located(
            release.provenance.steps?.[index],
            `${item.kind} ${item.name} of ${thingPlan.thing}: ${item.reason ?? ""}${item.detail ? ` (${item.detail})` : ""}`,
          ),
        });
      }
    }
    if (errors.length > 0) {
      throw new ValidationError(`The release cannot be stored: ${errors[0]?.message ?? ""}`, errors);
    }
  }

  /** A Thing as the planner needs it, or undefined when it is not registered (or has expired). */
  private async planThing(
    id: string,
    release: string,
    forCheck = false,
    found?: FoundThing,
  ): Promise<PlanThing | undefined> {
    let td = found?.td;
    if (!td) {
      const record = await this.context.store.getThing(id);
      if (!record) return undefined;
      if (record.expires !== undefined && Date.parse(record.expires) <= this.context.clock.now().getTime()) {
        return undefined;
      }
      td = record.td;
    }
    // A finder that gave the state saves reading the reported streams again.
    const kinds = found?.state ? REACHABILITY_STREAM_KINDS : ["reported", ...REACHABILITY_STREAM_KINDS];
    const streams = await this.context.store.streamsAt(id, undefined, kinds);
    const state: Record<string, unknown> = { ...found?.state };
    // A Thing registered again has not reported what its old registration did: unknown, not old.
    for (const stream of ofRegistration(streams))
      if (stream.kind === "reported") state[stream.affordance] = stream.latest.value;
    const reachable = this.context.canCommand && latestReachability(streams)?.kind !== "unreachable";
    const applied =
      forCheck || !this.context.appliedOf ? undefined : await this.context.appliedOf(release, id);
    return { id, td, state, reachable: forCheck || reachable, ...(applied && { applied }) };
  }

  private async resolve(filter: string, pointer?: string): Promise<FoundThing[]> {
    const finder = this.context.finder?.();
    if (!finder) return [];
    const found: FoundThing[] = [];
    let cursor: string | undefined;
    do {
      const page = await finder.query(filter, {
        limit: FILTER_PAGE,
        ...(pointer !== undefined && { pointer }),
        ...(cursor !== undefined && { cursor }),
      });
      found.push(...page.items);
      cursor = page.next;
    } while (cursor !== undefined);
    return found;
  }

  async get(id: string): Promise<Release> {
    return (await this.record(id)).release;
  }

  async record(id: string): Promise<ReleaseRecord> {
    const record = await this.context.store.getRelease(id);
    if (!record) throw new NotFoundError(`No release ${id} is stored (see GET /releases)`);
    return record;
  }

  /** Releases, newest first, a page at a time. */
  async list(
    options: ReleaseListOptions = { limit: 100 },
  ): Promise<{ releases: ReleaseSummary[]; next?: number }> {
    const records = await this.context.store.listReleases({
      limit: options.limit + 1,
      ...(options.before !== undefined && { before: options.before }),
      ...(options.name !== undefined && { name: options.name }),
    });
    const page = records.slice(0, options.limit).map(summaryOf);
    const last = page.at(-1);
    return {
      releases: page.map(({ seq: _seq, ...summary }) => summary),
      ...(records.length > options.limit && last && { next: last.seq }),
    };
  }

  /**
   * What rolling the release out would do now, per Thing. `select` (a graph filter) narrows it
   * to the Things it matches; a selector of the release matching nothing is a plan problem.
   */
  /**
   * `select` narrows the plan to the Things a graph filter matches; `selectPointer` is where it
   * came from, for errors (`/query/select` by default: the plan's query parameter).
   */
  async plan(id: string, options: { select?: string; selectPointer?: string } = {}): Promise<Plan> {
    const release = await this.get(id);
    const matches = new Map<number, string[]>();
    const ids = new Set<string>();
    const known = new Map<string, FoundThing>();
    for (const [index, step] of release.steps.entries()) {
      if ("id" in step.select) ids.add(step.select.id);
      else {
        const found = await this.resolve(step.select.filter);
        matches.set(
          index,
          found.map((f) => f.id),
        );
        for (const thing of found) {
          ids.add(thing.id);
          known.set(thing.id, thing);
        }
      }
    }
    const only =
      options.select === undefined
        ? undefined
        : new Set(
            (await this.resolve(options.select, options.selectPointer ?? "/query/select")).map((f) => f.id),
          );
    const things: PlanThing[] = [];
    for (const thing of ids) {
      if (only && !only.has(thing)) continue;
      const planned = await this.planThing(thing, release.id, false, known.get(thing));
      if (planned) things.push(planned);
    }
    return planRelease(release, things, { matches, ...(only && { only }) });
  }
}
