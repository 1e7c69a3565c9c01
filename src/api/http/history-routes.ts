// The Log over HTTP, Thing by Thing and as a whole: reporting state (POST …/changes), history,
// state at a time, diffs, the global feed and its live stream (SSE, resumable by seq).
import type { FastifyInstance, FastifyRequest } from "fastify";
import {
  NotFoundError,
  UnavailableError,
  ValidationError,
  changeMatches,
  checkKindFilter,
  parseSeq,
  SEQ_FROM_1_PATTERN,
  parseTimeExpression,
  type Change,
  type ChangeMatch,
  quoted,
} from "../../core/index.js";
import { assertThingId, type HistoryPage, type Hub } from "../../hub/index.js";
import { actorOf } from "./authorization.js";
import { EVENT_STREAM_ANSWERS } from "./accept.js";
import { idOf, idParam } from "./directory-routes.js";
import { openEventStream, lastEventId } from "./event-stream.js";
import { sendProblem } from "./problem.js";
import { COMMA_LIST } from "./query-numbers.js";

/** Kinds a program or device may report over HTTP; the others are the hub's own. */
export const REPORTABLE_KINDS = ["reported", "emitted"] as const;
const MAX_REPORTS = 10_000;

const report = {
  type: "object",
  required: ["kind", "affordance"],
  additionalProperties: false,
  properties: {
    kind: { type: "string", enum: REPORTABLE_KINDS },
    affordance: { type: "string", minLength: 1, maxLength: 256 },
    value: {},
    // Checked by ingest, as for every surface: an RFC 3339 date-time the hub can read.
    at: { type: "string", maxLength: 64, description: "RFC 3339 date-time, e.g. 2024-05-01T12:00:00.000Z" },
  },
} as const;

const kindList = {
  type: "string",
  pattern: "^[A-Za-z][A-Za-z0-9_-]*(,[A-Za-z][A-Za-z0-9_-]*)*$",
  description: "kinds separated by commas, each a letter then letters, digits, _ or - (reported,desired)",
  [COMMA_LIST]: true,
} as const;
const timeText = { type: "string", minLength: 1, maxLength: 64 } as const;
const cursor = { type: "integer", minimum: 0 } as const;
const limit = { type: "integer", minimum: 1, maximum: 10_000, default: 100 } as const;

function time(request: FastifyRequest, text: string | undefined, name: string, hub: Hub): Date | undefined {
  return text === undefined ? undefined : parseTimeExpression(text, hub.clock.now(), `/query/${name}`);
}

/**
 * A cursor is the seq of the last Change a page showed: one past the Log's end is none this hub
 * gave (another hub's, or one from before the database was restored from a backup), and reading
 * on from it would answer "nothing since" while the Log has Changes there.
 */
async function checkCursor(cursor: string | undefined, hub: Hub): Promise<number | undefined> {
  if (cursor === undefined) return undefined;
  const seq = Number(cursor);
  const last = await hub.store.lastSeq();
  if (seq > last) {
    throw new ValidationError(
      `cursor ${seq} is past the end of the Log (${last} Changes): it is not the seq of a Change this hub showed; start again without it`,
      [{ pointer: "/query/cursor", message: `must be at most ${last}` }],
    );
  }
  return seq;
}

const MAX_MATCHES = 32;
/** Things a page of `GET /diff` holds unless told, and at most: each is one Thing's diff. */
const DEFAULT_DIFF_THINGS = 20;
const MAX_DIFF_THINGS = 100;
const FEED_FIELDS = ["thing", "type", "affordance", "kind", "actor", "release", "correlation"] as const;
const KIND_LIST = new RegExp(kindList.pattern);

/**
 * The feeds of `GET /changes/stream?match=…&match=…`, each a query of the feed's own filters
 * (`kind=reported&thing=urn:x`, or empty for all), checked as the feed's query is.
 */
function matchQueries(q: Record<string, unknown> & { match?: string | string[] }): Record<string, string>[] {
  const others = FEED_FIELDS.filter((name) => q[name] !== undefined);
  if (others.length > 0) {
    throw new ValidationError(
      `match cannot be combined with ${others.join(", ")}: give each feed its filters in its match`,
      [{ pointer: `/query/${others[0]}`, message: "cannot be combined with match" }],
    );
  }
  const texts = typeof q.match === "string" ? [q.match] : (q.match ?? []);
  return texts.map((text, i) => {
    const pointer = `/query/match/${i}`;
    const query: Record<string, string> = {};
    for (const [name, value] of new URLSearchParams(text)) {
      if (!(FEED_FIELDS as readonly string[]).includes(name)) {
        throw new ValidationError(
          `match ${i} has ${quoted(name)}, which is not a filter of the feed (${FEED_FIELDS.join(", ")})`,
          [{ pointer, message: `must not have ${name}` }],
        );
      }
      if (query[name] !== undefined) {
        throw new ValidationError(`match ${i} has ${quoted(name)} twice`, [
          { pointer, message: `must have ${name} once` },
        ]);
      }
      if (name === "thing") assertThingId(value, pointer);
      if (name === "kind" && !KIND_LIST.test(value)) {
        throw new ValidationError(`match ${i}: kind ${quoted(value)} is not kinds separated by commas`, [
          { pointer, message: "kind must be kinds separated by commas" },
        ]);
      }
      if (name === "kind") checkKindFilter(value.split(","), pointer);
      if (name === "affordance" && (value.length === 0 || value.length > 256)) {
        throw new ValidationError(`match ${i}: affordance must be a name of 1 to 256 characters`, [
          { pointer, message: "affordance must be 1 to 256 characters" },
        ]);
      }
      query[name] = value;
    }
    return query;
  });
}

function kinds(text: string | undefined): string[] | undefined {
  if (text === undefined) return undefined;
  const list = text.split(",");
  checkKindFilter(list, "/query/kind");
  return list;
}

/**
 * The next page's URL: this one's, with the cursor, and the times as read for this page. A
 * relative time (since=-1h) read again later would move, and leave out the Changes the pages
 * before had not reached yet.
 */
function pageLink(
  request: FastifyRequest,
  page: HistoryPage,
  times: Record<string, Date | undefined>,
): string | undefined {
  if (page.next === undefined) return undefined;
  const url = new URL(request.url, "http://hub");
  url.searchParams.set("cursor", String(page.next));
  for (const [name, time] of Object.entries(times)) if (time) url.searchParams.set(name, time.toISOString());
  return `<${url.pathname}${url.search}>; rel="next"`;
}

/** A Change's position in the Log, in the path: `/changes/{seq}`, `/changes/{seq}/why`. */
const seqParam = {
  type: "object",
  properties: {
    // A pattern, not an integer: its description is what a refusal says ("must be a whole number…").
    seq: {
      type: "string",
      pattern: SEQ_FROM_1_PATTERN,
      description: "a whole number from 1 (a Change's position in the Log)",
    },
  },
} as const;

/**
 * The Change at the path's seq; past the Log's end is no Change this hub has had. One within it
 * that the store lacks is a row deleted behind the hub's back (the triggers refuse it to the
 * hub): said as such, not as the client's seq past an end it is not past.
 */
async function changeAt(request: FastifyRequest, hub: Hub): Promise<Change> {
  const seq = parseSeq((request.params as { seq: string }).seq, {
    name: "seq",
    pointer: "/params/seq",
    min: 1,
  });
  const change = await hub.store.getChange(seq);
  if (!change) {
    const last = await hub.store.lastSeq();
    if (seq <= last) {
      throw new NotFoundError(
        `Change ${seq} is missing from the database, though the Log holds ${last} Changes: its row was deleted outside the hub. ` +
          "`things verify` checks the Log; restore the database from a backup",
      );
    }
    throw new ValidationError(`seq ${seq} is past the end of the Log (${last} Changes)`, [
      { pointer: "/params/seq", message: "is past the end of the Log" },
    ]);
  }
  return change;
}

export function historyRoutes(hub: Hub) {
  /** The bytes of the report bodies taken in and not answered yet (maxIngestBytes). */
  let ingestBytes = 0;
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.post(
      "/things/:id/changes",
      {
        schema: {
          summary: "Report a Thing's state: one Change or an array of them, answered once committed",
          tags: ["history"],
          params: idParam,
          body: { oneOf: [report, { type: "array", minItems: 1, maxItems: MAX_REPORTS, items: report }] },
        },
        // Refused before the body is read and checked: a flood of big arrays costs little.
        onRequest: async (request, reply) => {
          if (hub.store.saturated?.()) {
            throw new UnavailableError("Too many Changes are waiting to be written; retry shortly", 1);
          }
          // The store's queue counts writes and Changes, not bytes: 400 producers of 1 MB reports
          // held 1.9 GB, and more would exhaust the heap. A body counts as its Content-Length (the
          // body limit when unknown) from here until its answer is sent or its connection closes.
          const length = Number(request.headers["content-length"] ?? NaN);
          const bytes = Number.isSafeInteger(length) && length >= 0 ? length : hub.config.bodyLimit;
          if (ingestBytes > 0 && ingestBytes + bytes > hub.config.maxIngestBytes) {
            throw new UnavailableError("Too many bytes of reports are being written; retry shortly", 1);
          }
          ingestBytes += bytes;
          let held = true;
          const release = () => {
            if (held) ingestBytes -= bytes;
            held = false;
          };
          reply.raw.once("close", release);
          reply.raw.once("finish", release);
        },
        // Every pointer into the body as sent, as the route's schema errors are (/body/…): the
        // hub points into the list of reports (/0/value), the JSON parser into the body itself
        // (/value, /1/value; the body is then not parsed).
        errorHandler: (error, request, reply) => {
          const single = request.body !== undefined && !Array.isArray(request.body);
          const inBody = (pointer: string) =>
            `/body${single ? pointer.replace(/^\/0(?=\/|$)/, "") : pointer}`;
          const problem =
            error instanceof ValidationError
              ? new ValidationError(
                  error.message,
                  error.errors.map((e) => ({ ...e, pointer: inBody(e.pointer) })),
                )
              : error;
          void sendProblem(request, reply, problem);
        },
      },
      async (request, reply) => {
        const body = request.body as Parameters<Hub["ingest"]>[1][number] | Parameters<Hub["ingest"]>[1];
        const reports = Array.isArray(body) ? body : [body];
        const changes = await hub.ingest(idOf(request), reports, { actor: actorOf(request), via: "http" });
        return reply.code(201).send({ seqs: changes.map((c) => c.seq) });
      },
    );

    app.get(
      "/things/:id/history",
      {
        schema: {
          summary: "A Thing's Changes, newest first by default, a page at a time (cursor = last seq)",
          tags: ["history"],
          params: idParam,
          querystring: {
            type: "object",
            additionalProperties: false,
            properties: {
              affordance: { type: "string" },
              kind: kindList,
              since: timeText,
              until: timeText,
              cursor,
              order: { type: "string", enum: ["asc", "desc"], default: "desc" },
              limit,
            },
          },
        },
      },
      async (request, reply) => {
        const q = request.query as Record<string, string | undefined> & {
          order: "asc" | "desc";
          limit: number;
        };
        const id = idOf(request);
        await hub.history.assertKnown(id);
        const since = time(request, q.since, "since", hub);
        const until = time(request, q.until, "until", hub);
        const cursor = await checkCursor(q.cursor, hub);
        const page = await hub.history.thingHistory(id, {
          order: q.order,
          limit: q.limit,
          ...(q.affordance !== undefined && { affordance: q.affordance }),
          ...(q.kind !== undefined && { kinds: kinds(q.kind) }),
          ...(since && { since }),
          ...(until && { until }),
          ...(cursor !== undefined && { cursor }),
        });
        const link = pageLink(request, page, { since, until });
        if (link) void reply.header("link", link);
        return page;
      },
    );

    app.get(
      "/things/:id/state",
      {
        schema: {
          summary: "The Thing as it was at a time: its TD then and every property's value then",
          tags: ["history"],
          params: idParam,
          querystring: { type: "object", additionalProperties: false, properties: { at: timeText } },
        },
      },
      async (request) => {
        const { at } = request.query as { at?: string };
        return hub.history.stateAt(idOf(request), time(request, at, "at", hub) ?? hub.clock.now());
      },
    );

    app.get(
      "/things/:id/diff",
      {
        schema: {
          summary:
            "What changed on the Thing between two times: per property before/after and the causes, actions, writes, events, reachability, drift and links",
          tags: ["history"],
          params: idParam,
          querystring: {
            type: "object",
            required: ["from"],
            additionalProperties: false,
            properties: { from: timeText, to: timeText },
          },
        },
      },
      async (request) => {
        const q = request.query as { from: string; to?: string };
        return hub.history.diff(
          idOf(request),
          time(request, q.from, "from", hub),
          time(request, q.to, "to", hub),
        );
      },
    );

    const feedQuery = {
      thing: { type: "string" },
      type: { type: "string" },
      affordance: { type: "string", minLength: 1, maxLength: 256 },
      kind: kindList,
      actor: { type: "string" },
      release: { type: "string" },
      correlation: { type: "string" },
    } as const;

    /** The feed's filters, with `type` (a Thing's @type as of each Change) as the graph reads it. */
    const feedFilter = async (q: Record<string, string | undefined>) => {
      // A malformed id names no Thing: refused, rather than a feed that stays empty.
      if (q.thing !== undefined) assertThingId(q.thing, "/query/thing");
      const filter = {
        ...(q.thing !== undefined && { thing: q.thing }),
        ...(q.affordance !== undefined && { affordance: q.affordance }),
        ...(q.kind !== undefined && { kinds: kinds(q.kind) }),
        ...(q.actor !== undefined && { actor: q.actor }),
        ...(q.release !== undefined && { release: q.release }),
        ...(q.correlation !== undefined && { correlation: q.correlation }),
      };
      // The type's Things as the graph finds them (prefixes, subtypes: docs/queries.md), each as
      // it was at the Change: a Thing re-described or removed since keeps its past Changes' type.
      const type = q.type === undefined ? undefined : await hub.graph.typeFilter(q.type);
      // As a live feed matches: core's changeMatches, the one GraphQL's subscription uses too.
      const match: ChangeMatch = { ...filter, type };
      return { filter, type, match };
    };

    app.get(
      "/changes",
      {
        schema: {
          summary:
            "The global feed of Changes, oldest first (or newest first), filtered, a page at a time (cursor = last seq)",
          tags: ["history"],
          querystring: {
            type: "object",
            additionalProperties: false,
            properties: {
              ...feedQuery,
              since: timeText,
              until: timeText,
              cursor,
              limit,
              order: { type: "string", enum: ["asc", "desc"], default: "asc" },
            },
          },
        },
      },
      async (request, reply) => {
        const q = request.query as Record<string, string | undefined> & {
          limit: number;
          order: "asc" | "desc";
        };
        const { filter, type } = await feedFilter(q);
        const since = time(request, q.since, "since", hub);
        const until = time(request, q.until, "until", hub);
        const cursor = await checkCursor(q.cursor, hub);
        const page = await hub.history.changes({
          ...filter,
          limit: q.limit,
          ...(since && { since }),
          ...(until && { until }),
          ...(cursor !== undefined && { cursor }),
          ...(type && { type }),
          order: q.order,
        });
        const link = pageLink(request, page, { since, until });
        if (link) void reply.header("link", link);
        return page;
      },
    );

    app.get(
      "/diff",
      {
        schema: {
          summary:
            "What changed anywhere between two times: the diff of each Thing with a Change matching the feed's filters in between, a page of Things at a time (cursor = next)",
          tags: ["history"],
          querystring: {
            type: "object",
            required: ["from"],
            additionalProperties: false,
            properties: {
              ...feedQuery,
              from: timeText,
              to: timeText,
              cursor,
              limit: { type: "integer", minimum: 1, maximum: MAX_DIFF_THINGS, default: DEFAULT_DIFF_THINGS },
            },
          },
        },
      },
      async (request, reply) => {
        const q = request.query as Record<string, string | undefined> & { limit: number };
        const { filter, type } = await feedFilter(q);
        const from = time(request, q.from, "from", hub) as Date;
        const to = time(request, q.to, "to", hub);
        const page = await hub.history.fleetDiff({
          ...filter,
          from,
          ...(to && { to }),
          limit: q.limit,
          ...(q.cursor !== undefined && { cursor: Number(q.cursor) }),
          ...(type && { type }),
        });
        // The next page covers the same two times however late it is fetched: as this one read them.
        if (page.next !== undefined) {
          const url = new URL(request.url, "http://hub");
          url.searchParams.set("cursor", String(page.next));
          url.searchParams.set("from", page.from);
          url.searchParams.set("to", page.to);
          void reply.header("link", `<${url.pathname}${url.search}>; rel="next"`);
        }
        return page;
      },
    );

    app.get(
      "/changes/stream",
      {
        schema: {
          summary:
            "The feed, live, as Server-Sent Events (event `change`, id = seq; resumable with Last-Event-ID; `since` replays from a time first)",
          tags: ["history"],
          produces: EVENT_STREAM_ANSWERS,
          querystring: {
            type: "object",
            additionalProperties: false,
            properties: {
              ...feedQuery,
              since: timeText,
              // Several feeds on one connection (a browser's tabs share one: docs/ui.md).
              match: {
                anyOf: [
                  { type: "string", maxLength: 2048 },
                  { type: "array", items: { type: "string", maxLength: 2048 }, maxItems: MAX_MATCHES },
                ],
              },
            },
          },
        },
      },
      async (request, reply) => {
        const q = request.query as Record<string, string | undefined> & { match?: string | string[] };
        const since = time(request, q.since, "since", hub);
        // A reconnection carries the last id it saw, and the same URL: the id wins over `since`.
        const after =
          (await lastEventId(request, hub)) ?? (since ? await hub.history.seqBefore(since) : undefined);
        if (q.match !== undefined) {
          const filters = await Promise.all(matchQueries(q).map((query) => feedFilter(query)));
          openEventStream(request, reply, hub, after, (change) => {
            let matches: number[] | undefined;
            filters.forEach((one, i) => {
              if (changeMatches(one.match, change)) (matches ??= []).push(i);
            });
            if (matches === undefined) return undefined;
            return {
              event: "matched",
              data: `{"matches":[${matches.join(",")}],"change":${JSON.stringify(change)}}`,
            };
          });
          return;
        }
        const feed = await feedFilter(q);
        openEventStream(request, reply, hub, after, (change) => {
          return changeMatches(feed.match, change)
            ? { event: "change", data: JSON.stringify(change) }
            : undefined;
        });
      },
    );

    app.get(
      "/changes/:seq",
      {
        schema: {
          summary: "One Change, by its position in the Log",
          tags: ["history"],
          params: seqParam,
        },
      },
      async (request) => changeAt(request, hub),
    );

    app.get(
      "/changes/:seq/why",
      {
        schema: {
          summary:
            "Why a Change happened: a reported value back to the write that asked for it, an outcome to its command, a command to who sent it",
          tags: ["history"],
          params: seqParam,
        },
      },
      async (request) => hub.causes.why(await changeAt(request, hub)),
    );
  };
}
