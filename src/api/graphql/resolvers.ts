// The resolvers of the schema (schema-sdl.ts): each one a thin call into the hub's services —
// the directory, history, commands, the graph and the change stream — exactly those the HTTP
// routes use, with the authenticated actor as the cause of every Change.
import type { GraphQLFieldResolver } from "graphql";
import {
  NotFoundError,
  UnavailableError,
  ValidationError,
  changeTime,
  changeMatches,
  checkKindFilter,
  parseTimeExpression,
  ROLLOUT_STEP_STATUSES,
  type Cause,
  type Change,
  type ChangeMatch,
  type RegisteredThingDescription,
  type RolloutProgress,
  type RolloutStatus,
  type RolloutStepStatus,
  echoed,
  quoted,
} from "../../core/index.js";
import {
  assertThingId,
  decodeThingCursor,
  encodeThingCursor,
  ofRegistration,
  withRemovals,
  type GraphLink,
  type HubConfig,
  type Hub,
  type Principal,
  type RolloutEvent,
  type RolloutView,
  type Rollouts,
  type TypeFilter,
} from "../../hub/index.js";

type GraphqlLimits = HubConfig["graphql"];
import type { ThingRecord } from "../../store/index.js";
import type { AnswerBudget } from "./answer-size.js";
import { withinMs } from "../http/stream-stall.js";
import { BoundedQueue } from "./change-queue.js";
import { ERROR_CODES, graphqlError } from "./errors.js";
import { chargeListLength, chargeSearch } from "./limits.js";

/** What every resolver gets: the hub, who asks, and how to drop a socket that does not keep up. */
export interface GraphqlContext {
  hub: Hub;
  principal: Principal | undefined;
  limits: GraphqlLimits;
  /** `graphql` over HTTP, `graphql-ws` over WebSocket: the `via` of the Changes caused. */
  via: string;
  /** A subscription's queue overflowed: the socket is closed with this reason. */
  overflow(reason: string): void;
  /** The bytes the answer being built may still take (one per operation, or subscription message). */
  answer?: AnswerBudget;
}

/** A Thing as resolvers pass it on: its id and TD, and the directory's record once loaded. */
interface ThingSource {
  id: string;
  td: RegisteredThingDescription;
  record?: ThingRecord;
}

interface PropertyValue {
  name: string;
  value: unknown;
  seq: number;
  time: string;
  at?: string;
  cause: Cause;
}

type Args = Record<string, unknown>;
type Resolver = GraphQLFieldResolver<unknown, GraphqlContext, Args>;

function causeOf(context: GraphqlContext): Cause {
  return { actor: context.principal?.name ?? "anonymous", via: context.via };
}

/** The most Things a page of `diffs` holds: each is one Thing's diff (as GET /diff). */
const MAX_DIFF_THINGS = 100;

function pageSize(first: unknown, limits: GraphqlLimits, name = "first"): number {
  const n = typeof first === "number" ? first : 100;
  if (n < 1) {
    throw new ValidationError(`${name} must be at least 1, not ${n}`, [
      { pointer: `/${name}`, message: "must be >= 1" },
    ]);
  }
  if (n > limits.maxFirst) {
    throw graphqlError(
      `${name} is ${n}; this hub gives at most ${limits.maxFirst} items a page`,
      ERROR_CODES.first,
      {
        maxFirst: limits.maxFirst,
      },
    );
  }
  return n;
}

function seqArgument(value: unknown, name: string): number | undefined {
  if (value === undefined || value === null) return undefined;
  const n = value as number;
  if (n < 0) {
    throw new ValidationError(`${name} is a position in the Log (a seq, 0 or more), not ${n}`, [
      { pointer: `/${name}`, message: "must be >= 0" },
    ]);
  }
  return n;
}

function time(hub: Hub, text: unknown, name: string): Date | undefined {
  return typeof text === "string" ? parseTimeExpression(text, hub.clock.now(), `/${name}`) : undefined;
}

function optional(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

function stringList(value: unknown): string[] | undefined {
  return Array.isArray(value) ? (value as string[]) : undefined;
}

/** A `kinds` argument, each a kind the hub records (checkKindFilter). */
function kindList(value: unknown, pointer: string): string[] | undefined {
  const kinds = stringList(value);
  if (kinds !== undefined) checkKindFilter(kinds, pointer);
  return kinds;
}

function propertyValue(name: string, change: Change): PropertyValue {
  return {
    name,
    value: change.value,
    seq: change.seq,
    time: changeTime(change),
    ...(change.at !== undefined && { at: change.at }),
    cause: change.cause,
  };
}

function thingSource(record: ThingRecord): ThingSource {
  return { id: record.id, td: record.td, record };
}

/** A live Thing, or undefined when there is none with this id (a malformed IRI still fails). */
async function findThing(hub: Hub, id: string): Promise<ThingSource | undefined> {
  try {
    return thingSource(await hub.directory.getLive(id));
  } catch (err) {
    if (err instanceof NotFoundError) return undefined;
    throw err;
  }
}

async function recordOf(hub: Hub, thing: ThingSource): Promise<ThingRecord> {
  thing.record ??= await hub.directory.getLive(thing.id);
  return thing.record;
}

/** The Log position a subscription resumes after: refused when past the Log's end. */
async function resumePoint(hub: Hub, after: unknown): Promise<number | undefined> {
  const seq = seqArgument(after, "after");
  if (seq === undefined) return undefined;
  const last = await hub.store.lastSeq();
  if (seq > last) {
    throw new ValidationError(
      `after is ${seq}, past the end of this hub's log (its last seq is ${last}); subscribe without it, or with a seq this hub sent`,
      [{ pointer: "/after", message: `must be at most ${last}` }],
    );
  }
  return seq;
}

/**
 * A stream of values from the Log after a position (or live), through a bounded queue: the bus
 * never waits for the socket, and a socket that falls `maxQueued` behind is closed.
 */
function stream<T>(
  context: GraphqlContext,
  select: (change: Change) => T | undefined,
  after: number | undefined,
  initial: readonly T[] = [],
  /** The Change after which there is nothing more to follow: the stream completes. */
  last?: (change: Change) => boolean,
): AsyncIterableIterator<T> {
  const { hub, limits } = context;
  const capacity = Math.max(limits.maxQueued, initial.length + 1);
  let stop = () => {};
  const queue = new BoundedQueue<T>(
    capacity,
    () =>
      context.overflow(
        `subscription fell more than ${limits.maxQueued} Changes behind; resume with changes(after: <last seq>)`,
      ),
    () => stop(),
  );
  for (const value of initial) queue.push(value);
  const follower = hub.follow(
    (change) => {
      const value = select(change);
      if (value !== undefined) queue.push(value);
      if (last?.(change)) queue.finish();
    },
    {
      ...(after !== undefined && { after }),
      pageSize: Math.max(1, Math.min(500, Math.floor(capacity / 2))),
      // A replay waits for the socket to take what is queued; one that takes nothing for
      // streamStallMs is closed (1013), as one that falls too far behind live.
      pace: () =>
        withinMs(queue.below(Math.floor(capacity / 2)), hub.config.streamStallMs, () => {
          context.overflow(
            `took nothing for ${hub.config.streamStallMs} ms while catching up; resume with changes(after: <last seq>)`,
          );
          queue.end();
        }),
    },
  );
  stop = () => follower.stop();
  follower.ready.catch((err: unknown) => {
    hub.logger.error({ err }, "a GraphQL subscription's replay failed");
    queue.end();
  });
  return queue;
}

interface ChangeFilterInput {
  thing?: string | null;
  type?: string | null;
  affordance?: string | null;
  kinds?: string[] | null;
  actor?: string | null;
  release?: string | null;
  correlation?: string | null;
}

/**
 * The feed filter's Things of its type, checking the filter first: a malformed Thing id or type
 * is refused, rather than a feed (or a subscription) that matches nothing for ever.
 */
async function feedType(hub: Hub, f: ChangeFilterInput): Promise<TypeFilter | undefined> {
  if (f.thing != null) assertThingId(f.thing, "/filter/thing");
  if (f.affordance != null && (f.affordance.length === 0 || f.affordance.length > 256)) {
    throw new ValidationError("filter.affordance must be a name of 1 to 256 characters", [
      { pointer: "/filter/affordance", message: "must be 1 to 256 characters" },
    ]);
  }
  if (f.kinds != null) checkKindFilter(f.kinds, "/filter/kinds");
  return f.type == null ? undefined : hub.graph.typeFilter(f.type, "/filter/type");
}

/** The feed's filter, checked (feedType), as the hub's history queries take it: given members only. */
async function feedFilter(hub: Hub, f: ChangeFilterInput) {
  const type = await feedType(hub, f);
  return {
    ...(f.thing != null && { thing: f.thing }),
    ...(f.affordance != null && { affordance: f.affordance }),
    ...(f.kinds != null && { kinds: f.kinds }),
    ...(f.actor != null && { actor: f.actor }),
    ...(f.release != null && { release: f.release }),
    ...(f.correlation != null && { correlation: f.correlation }),
    ...(type && { type }),
  };
}

/** The feed's filter as a predicate; `type` as of each Change (give it every Change, in Log order). */
async function changeMatcher(hub: Hub, input: ChangeFilterInput | undefined) {
  const f = input ?? {};
  const match: ChangeMatch = {
    type: await feedType(hub, f),
    thing: f.thing ?? undefined,
    affordance: f.affordance ?? undefined,
    kinds: f.kinds ?? undefined,
    actor: f.actor ?? undefined,
    release: f.release ?? undefined,
    correlation: f.correlation ?? undefined,
  };
  return (change: Change): boolean => changeMatches(match, change);
}

function commandsOf(hub: Hub) {
  if (hub.commands === undefined) {
    throw new UnavailableError("This hub runs without bindings: it cannot reach Things");
  }
  return hub.commands;
}

function rolloutsOf(hub: Hub): Rollouts {
  if (hub.rollouts === undefined) {
    throw new UnavailableError("This hub runs without bindings: it cannot roll out releases");
  }
  return hub.rollouts;
}

const ROLLOUT_STATUSES: readonly RolloutStatus[] = ["running", "completed", "failed"];

/** A status argument, checked against the ones there are (as the HTTP API's enums). */
function statusArgument<T extends string>(
  value: unknown,
  allowed: readonly T[],
  name: string,
): T | undefined {
  if (value === undefined || value === null) return undefined;
  if (!allowed.includes(value as T)) {
    throw new ValidationError(
      `${name} is one of ${allowed.join(", ")}, not ${typeof value === "string" ? quoted(value) : echoed(JSON.stringify(value))}`,
      [{ pointer: `/${name}`, message: `must be one of ${allowed.join(", ")}` }],
    );
  }
  return value as T;
}

/** The limits of POST /releases/{id}/rollouts's body that its schema checks before the hub does. */
function rolloutSelect(value: unknown): string | undefined {
  if (value === undefined || value === null) return undefined;
  const select = value as string;
  if (select.length < 1 || select.length > 8192) {
    throw new ValidationError(`select must be 1 to 8192 characters, not ${select.length}`, [
      { pointer: "/select", message: "must be 1..8192 characters" },
    ]);
  }
  return select;
}

/** A rollout's next page cursor: an offset, like GET /rollouts's. */
function offsetArgument(value: unknown): number {
  if (value === undefined || value === null) return 0;
  const n = value as number;
  if (n < 0) {
    throw new ValidationError(`after must be the 'next' of a previous page, not ${n}`, [
      { pointer: "/after", message: "must be >= 0" },
    ]);
  }
  return n;
}

const query: Record<string, Resolver> = {
  rollouts: async (_, args, { hub, limits }) => {
    const limit = pageSize(args.first, limits);
    const offset = offsetArgument(args.after);
    const release = optional(args.release);
    const status = statusArgument(args.status, ROLLOUT_STATUSES, "status");
    const rollouts = await rolloutsOf(hub).list({
      limit,
      offset,
      ...(release !== undefined && { release }),
      ...(status !== undefined && { status }),
    });
    return { rollouts, next: rollouts.length === limit ? offset + limit : null };
  },
  rollout: async (_, args, { hub }) => {
    try {
      return await rolloutsOf(hub).get(args.id as string);
    } catch (err) {
      if (err instanceof NotFoundError) return null;
      throw err;
    }
  },
  lineage: async (_, args, { hub, limits }) => {
    const thing = args.thing as string;
    const limit = pageSize(args.first, limits);
    await hub.history.assertKnown(thing);
    const entries = await rolloutsOf(hub).lineage(thing, limit);
    return { thing, active: entries[0]?.release ?? null, entries };
  },

  thing: (_, args, { hub }) => findThing(hub, args.id as string),

  releases: async (_, args, { hub, limits }) => {
    const name = optional(args.name);
    const page = await hub.releases.list({
      limit: pageSize(args.first, limits),
      ...(typeof args.after === "number" && { before: args.after }),
      ...(name !== undefined && { name }),
    });
    return { releases: page.releases, next: page.next ?? null };
  },
  release: async (_, args, { hub }) => {
    const record = await hub.store.getRelease(args.id as string);
    return record ? { ...record.release, storedAt: record.storedAt } : null;
  },
  drift: async (_, args, { hub }) => {
    const thing = optional(args.thing);
    if (thing !== undefined) await hub.history.assertKnown(thing);
    return hub.drift.list(thing);
  },

  plan: (_, args, { hub }) => {
    const select = optional(args.select);
    return hub.releases.plan(args.release as string, select === undefined ? {} : { select });
  },

  things: async (_, args, { hub, limits }) => {
    const limit = pageSize(args.first, limits);
    const filter = optional(args.filter);
    const after = optional(args.after);
    if (filter !== undefined) {
      // Errors point at the arguments, as GraphQL's own do.
      const page = await hub.graph.query(filter, {
        limit,
        pointer: "/filter",
        cursorPointer: "/after",
        ...(after !== undefined && { cursor: after }),
      });
      // The TDs as registered, as thing(id) and the unfiltered pages give them (the page's are
      // enriched for the directory's answer: the discovery context, registration times).
      const items = await Promise.all(page.items.map((i) => findThing(hub, i.id)));
      return {
        items: items.filter((t): t is ThingSource => t !== undefined),
        next: page.next ?? null,
      };
    }
    // After the last id of the page before, not an offset: a Thing registered or removed
    // meanwhile neither hides another nor shows one twice.
    const from = after === undefined ? undefined : decodeThingCursor(after, "/after");
    const records = await hub.store.listThings({
      offset: 0,
      limit: limit + 1,
      liveAt: hub.clock.now().toISOString(),
      ...(from !== undefined && { after: from }),
    });
    const page = records.slice(0, limit);
    const last = page.at(-1);
    return {
      items: page.map(thingSource),
      next: records.length > limit && last ? encodeThingCursor(last.id) : null,
    };
  },

  // Priced at every TD it reads before it reads them (a value may be the whole directory).
  search: async (_, args, { hub, limits }, info) => {
    chargeSearch(info, limits, await hub.store.countThings(hub.clock.now().toISOString()));
    return hub.directory.searchJsonPath(args.jsonpath as string, "/jsonpath");
  },

  changes: async (_, args, { hub, limits }) => {
    const limit = pageSize(args.first, limits);
    const after = seqArgument(args.after, "after");
    const f = (args.filter ?? {}) as ChangeFilterInput;
    // The type's Things go to the feed, which fills the page with their Changes (not a page of
    // the whole Log thinned out).
    const filter = await feedFilter(hub, f);
    const since = time(hub, args.since, "since");
    const until = time(hub, args.until, "until");
    const page = await hub.history.changes({
      limit,
      ...(since && { since }),
      ...(until && { until }),
      ...(after !== undefined && { cursor: after }),
      order: args.order === "DESC" ? "desc" : "asc",
      ...filter,
    });
    return { changes: page.changes, next: page.next ?? null };
  },

  change: (_, args, { hub }) => {
    const seq = args.seq as number;
    // As changes(after:) and GET /changes/{seq} refuse it: no Change has a seq below 1.
    if (seq < 1)
      throw new ValidationError(`seq ${seq} is not a whole number from 1`, [
        { pointer: "/seq", message: "must be >= 1" },
      ]);
    return hub.store.getChange(seq);
  },

  history: async (_, args, { hub, limits }) => {
    const thing = args.thing as string;
    await hub.history.assertKnown(thing);
    const since = time(hub, args.since, "since");
    const until = time(hub, args.until, "until");
    const cursor = seqArgument(args.after, "after");
    const affordance = optional(args.affordance);
    const kinds = kindList(args.kinds, "/kinds");
    const page = await hub.history.thingHistory(thing, {
      order: args.order === "ASC" ? "asc" : "desc",
      limit: pageSize(args.first, limits),
      ...(affordance !== undefined && { affordance }),
      ...(kinds !== undefined && { kinds }),
      ...(since && { since }),
      ...(until && { until }),
      ...(cursor !== undefined && { cursor }),
    });
    return { changes: page.changes, next: page.next ?? null };
  },

  stateAt: async (_, args, { hub }) => {
    const state = await hub.history.stateAt(
      args.thing as string,
      time(hub, args.at, "at") ?? hub.clock.now(),
    );
    const values = (
      map: Record<string, { value: unknown; seq: number; time: string; at?: string; cause: Cause }>,
    ) => Object.entries(map).map(([name, s]) => ({ name, ...s }));
    return { ...state, properties: values(state.properties), desired: values(state.desired) };
  },

  diff: (_, args, { hub }) =>
    hub.history.diff(args.thing as string, time(hub, args.from, "from"), time(hub, args.to, "to")),

  diffs: async (_, args, { hub, limits }) => {
    const limit = Math.min(pageSize(args.first, limits), MAX_DIFF_THINGS);
    const after = seqArgument(args.after, "after");
    const f = (args.filter ?? {}) as ChangeFilterInput;
    const filter = await feedFilter(hub, f);
    const to = time(hub, args.to, "to");
    const page = await hub.history.fleetDiff({
      from: time(hub, args.from, "from") as Date,
      ...(to && { to }),
      limit,
      ...(after !== undefined && { cursor: after }),
      ...filter,
    });
    return { ...page, next: page.next ?? null };
  },

  log: async (_, __, { hub }) => {
    const [head, checkpoint] = await Promise.all([hub.store.logHead(), hub.store.latestCheckpoint()]);
    return { size: head.size, root: Buffer.from(head.root).toString("hex"), checkpoint: checkpoint ?? null };
  },
};

/** The link and unlink mutations' arguments, as error pointers. */
const ARGUMENTS = { rel: "/rel", to: "/to" } as const;

const mutation: Record<string, Resolver> = {
  storeRelease: async (_, args, context) => {
    const result = await context.hub.releases.store(args.document, causeOf(context));
    return { id: result.release.id, created: result.created, storedAt: result.storedAt };
  },
  register: async (_, args, context) => {
    const td = args.td;
    const id =
      typeof td === "object" && td !== null && !Array.isArray(td) ? (td as { id?: unknown }).id : undefined;
    const cause = causeOf(context);
    return typeof id === "string"
      ? context.hub.directory.put(id, td, cause)
      : context.hub.directory.create(td, cause);
  },
  registerAll: (_, args, context) => context.hub.directory.registerAll(args.tds, causeOf(context)),
  update: (_, args, context) => context.hub.directory.patch(args.id as string, args.patch, causeOf(context)),
  remove: (_, args, context) => context.hub.directory.remove(args.id as string, causeOf(context)),
  readProperty: (_, args, context) =>
    commandsOf(context.hub).readProperty(args.thing as string, args.name as string, causeOf(context)),
  writeProperty: async (_, args, context) => {
    const correlation = await commandsOf(context.hub).writeProperty(
      args.thing as string,
      args.name as string,
      args.value,
      causeOf(context),
    );
    return { correlation };
  },
  invokeAction: async (_, args, context) => {
    const outcome = await commandsOf(context.hub).invokeAction(
      args.thing as string,
      args.name as string,
      args.input ?? undefined,
      causeOf(context),
    );
    return outcome.kind === "completed"
      ? { status: "completed", output: outcome.output, correlation: outcome.correlation }
      : { status: "running", output: null, correlation: outcome.correlation };
  },
  // Errors point at the arguments (from, rel, to).
  link: async (_, args, context) =>
    (await context.hub.graph.link(
      args.from as string,
      args.rel as string,
      args.to as string,
      causeOf(context),
      ARGUMENTS,
    )) ?? null,
  unlink: (_, args, context) =>
    context.hub.graph.unlink(
      args.from as string,
      args.rel as string,
      args.to as string,
      causeOf(context),
      ARGUMENTS,
    ),
  rollout: (_, args, context) => {
    const select = rolloutSelect(args.select);
    return rolloutsOf(context.hub).start(
      args.release as string,
      {
        ...(select !== undefined && { select }),
        ...(typeof args.concurrency === "number" && { concurrency: args.concurrency }),
        ...(typeof args.maxFailures === "number" && { maxFailures: args.maxFailures }),
      },
      causeOf(context),
    );
  },
  cancelRollout: (_, args, context) => rolloutsOf(context.hub).cancel(args.id as string, causeOf(context)),
};

const finishedSteps = (p: RolloutProgress) => p.completed + p.failed + p.skipped;

/**
 * One rollout's events: its status now, then each event as the hub emits it, through a bounded
 * queue (the hub never waits for the socket); the stream completes once the rollout has ended and
 * no step of it is in flight (a step out when it was cancelled ends after its status: said too).
 */
async function rolloutStream(
  context: GraphqlContext,
  id: string,
): Promise<AsyncIterableIterator<RolloutEvent>> {
  const rollouts = rolloutsOf(context.hub);
  const { limits } = context;
  // Subscribe before reading the rollout, so that no event falls between the two.
  const buffered: RolloutEvent[] = [];
  let live = false;
  let unsubscribe = () => {};
  const queue = new BoundedQueue<RolloutEvent>(
    Math.max(1, limits.maxQueued),
    () =>
      context.overflow(
        `subscription fell more than ${limits.maxQueued} rollout events behind; subscribe to rolloutProgress again`,
      ),
    () => unsubscribe(),
  );
  unsubscribe = rollouts.subscribe((event) => {
    if (event.rollout !== id) return;
    if (live) queue.push(event);
    else buffered.push(event);
  }, id);
  let now: RolloutView;
  try {
    now = await rollouts.get(id);
  } catch (err) {
    unsubscribe();
    throw err;
  }
  queue.push({
    type: "status",
    rollout: id,
    status: now.status,
    ...(now.reason !== undefined && { reason: now.reason }),
    progress: now.progress,
  });
  if (now.status === "running" || now.progress.applying > 0) {
    live = true;
    // Steps that finished before the read are in its progress already: only later ones follow.
    const before = finishedSteps(now.progress);
    for (const event of buffered.splice(0)) {
      if (event.type === "status" || finishedSteps(event.progress) > before) queue.push(event);
    }
  }
  let finished = false;
  let stopped = false;
  const iterator: AsyncIterableIterator<RolloutEvent> = {
    [Symbol.asyncIterator]: () => iterator,
    next: async () => {
      if (finished) return { value: undefined, done: true };
      const item = await queue.next();
      if (item.done) return item;
      if (item.value.type === "status" && item.value.status !== "running") stopped = true;
      if (stopped && item.value.progress.applying === 0) {
        finished = true;
        queue.end();
      }
      return item;
    },
    return: () => queue.return(),
    throw: (error: unknown) => queue.throw(error),
  };
  return iterator;
}

/**
 * The TD of the Thing whose events a subscription follows; undefined for one resumed after a
 * position the Thing was removed after: its events up to the removal are replayed, then the
 * stream completes, as it would have had the socket stayed open.
 */
async function eventsSource(
  hub: Hub,
  thing: string,
  after: number | undefined,
): Promise<RegisteredThingDescription | undefined> {
  try {
    return (await hub.directory.getLive(thing)).td;
  } catch (err) {
    if (!(err instanceof NotFoundError) || after === undefined) throw err;
    const [removal] = await hub.store.streamsAt(thing, undefined, ["removed"]);
    if (removal === undefined || removal.latest.seq <= after) throw err;
    return undefined;
  }
}

/** A Thing's own streams (its events, its state) complete when it is removed: nothing more comes. */
const removed = (thing: string) => (change: Change) => change.thing === thing && change.kind === "removed";

interface Subscriber {
  subscribe: Resolver;
  resolve: Resolver;
}

const identity: Resolver = (payload) => payload;

const subscription: Record<string, Subscriber> = {
  changes: {
    subscribe: async (_, args, context) => {
      const after = await resumePoint(context.hub, args.after);
      const matches = await changeMatcher(context.hub, args.filter as ChangeFilterInput | undefined);
      return stream(context, (change) => (matches(change) ? change : undefined), after);
    },
    resolve: identity,
  },
  events: {
    subscribe: async (_, args, context) => {
      const thing = args.thing as string;
      const name = optional(args.name);
      const after = await resumePoint(context.hub, args.after);
      const td = await eventsSource(context.hub, thing, after);
      if (td && name !== undefined && (td.events === undefined || !Object.hasOwn(td.events, name))) {
        throw new NotFoundError(`Thing ${echoed(thing)} has no event ${quoted(name)}`);
      }
      return stream(
        context,
        (c) =>
          c.thing === thing && c.kind === "emitted" && (name === undefined || c.affordance === name)
            ? c
            : undefined,
        after,
        [],
        removed(thing),
      );
    },
    resolve: identity,
  },
  state: {
    subscribe: async (_, args, context) => {
      const thing = args.thing as string;
      const { hub } = context;
      await hub.directory.getLive(thing);
      // The current values as of a position, then every reported value after it: no gap.
      const last = await hub.store.lastSeq();
      const streams = await hub.store.streamsAt(thing, last, withRemovals(["reported"]));
      const initial = ofRegistration(streams)
        .filter((s) => s.kind === "reported")
        .map((s) => propertyValue(s.affordance, s.latest));
      return stream(
        context,
        (c) =>
          c.thing === thing && c.kind === "reported" && c.affordance
            ? propertyValue(c.affordance, c)
            : undefined,
        last,
        initial,
        removed(thing),
      );
    },
    resolve: identity,
  },
  rolloutProgress: {
    subscribe: (_, args, context) => rolloutStream(context, args.id as string),
    resolve: identity,
  },
};

const rollout: Record<string, GraphQLFieldResolver<RolloutView, GraphqlContext, Args>> = {
  concurrency: (r) => r.options.concurrency,
  maxFailures: (r) => r.options.maxFailures,
  select: (r) => r.options.select ?? null,
  steps: async (r, args, { hub, limits }) => {
    const limit = pageSize(args.first, limits);
    const status = statusArgument<RolloutStepStatus>(args.status, ROLLOUT_STEP_STATUSES, "status");
    const after = typeof args.after === "number" ? args.after : undefined;
    const steps = await rolloutsOf(hub).steps(r.id, {
      limit,
      ...(status !== undefined && { status }),
      ...(after !== undefined && { after }),
    });
    const last = steps.at(-1);
    return { steps, next: steps.length === limit && last ? last.position : null };
  },
};

const thing: Record<string, GraphQLFieldResolver<ThingSource, GraphqlContext, Args>> = {
  title: (t) => (typeof t.td.title === "string" ? t.td.title : null),
  types: (t) => {
    const types = (t.td as { "@type"?: unknown })["@type"];
    const list: unknown[] = Array.isArray(types) ? types : types === undefined ? [] : [types];
    return list.filter((v) => typeof v === "string");
  },
  td: (t) => t.td,
  version: async (t, _, { hub }) => (await recordOf(hub, t)).version,
  created: async (t, _, { hub }) => (await recordOf(hub, t)).created,
  modified: async (t, _, { hub }) => (await recordOf(hub, t)).modified,
  expires: async (t, _, { hub }) => (await recordOf(hub, t)).expires ?? null,
  // Of the Thing's registration: one registered again has none of its old one's values.
  properties: async (t, _, { hub }) =>
    ofRegistration(await hub.store.streamsAt(t.id, undefined, withRemovals(["reported"])))
      .filter((s) => s.kind === "reported")
      .map((s) => propertyValue(s.affordance, s.latest)),
  property: async (t, args, { hub }) => {
    const streams = ofRegistration(await hub.store.streamsAt(t.id, undefined, withRemovals(["reported"])));
    const s = streams.find((x) => x.kind === "reported" && x.affordance === args.name);
    return s ? propertyValue(s.affordance, s.latest) : null;
  },
  history: async (t, args, { hub, limits }) => {
    const cursor = seqArgument(args.after, "after");
    const affordance = optional(args.affordance);
    const kinds = kindList(args.kinds, "/kinds");
    const page = await hub.history.thingHistory(t.id, {
      order: "desc",
      limit: pageSize(args.first, limits),
      ...(affordance !== undefined && { affordance }),
      ...(kinds !== undefined && { kinds }),
      ...(cursor !== undefined && { cursor }),
    });
    return { changes: page.changes, next: page.next ?? null };
  },
  // Priced at ASSUMED_LIST_SIZE by validation; at their real length here (a Thing may have thousands).
  links: async (t, args, { hub, limits }, info) => {
    const links = await hub.graph.links(t.id, optional(args.rel));
    chargeListLength(info, limits, links.length);
    return links;
  },
  linkedFrom: async (t, args, { hub, limits }, info) => {
    const links = await hub.graph.linkedFrom(t.id, optional(args.rel));
    chargeListLength(info, limits, links.length);
    return links;
  },
};

const link: Record<string, GraphQLFieldResolver<GraphLink, GraphqlContext, Args>> = {
  target: (l, _, { hub }) => (l.resolved ? findThing(hub, l.to) : null),
  source: (l, _, { hub }) => findThing(hub, l.from),
};

const change: Record<string, GraphQLFieldResolver<Change, GraphqlContext, Args>> = {
  time: (c) => changeTime(c),
  hasValue: (c) => c.value !== undefined,
  hasPrevious: (c) => c.previous !== undefined,
  why: (c, _, { hub }) => hub.causes.why(c),
};

/** Resolvers by type and field, for attaching to the schema built from the SDL. */
export const resolvers = {
  Query: query,
  Mutation: mutation,
  Subscription: subscription,
  Thing: thing,
  Link: link,
  Change: change,
  Rollout: rollout,
} as const;
