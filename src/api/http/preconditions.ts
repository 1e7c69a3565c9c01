// RFC 9110 §13 conditional requests, in one place: the validators a resource has (its entity tag,
// its last modification) and the order in which a request's conditions on them are evaluated.
import type { FastifyRequest } from "fastify";
import { PreconditionFailedError, ValidationError, echoed, quoted } from "../../core/index.js";

/** What a resource's current representation is compared by. */
export interface Validators {
  /** Its entity tag, quoted (`"42"` or `W/"…"`). */
  etag: string;
  /** When it last changed (ms since the epoch); none: If-(Un)Modified-Since are ignored. */
  lastModified?: number;
}

/** The entity tags of an `If-Match` / `If-None-Match` header (RFC 9110 §8.8.3), or `*`. */
export function entityTags(header: string | string[] | undefined): "*" | string[] | undefined {
  if (header === undefined) return undefined;
  const text = Array.isArray(header) ? header.join(",") : header;
  if (text.trim() === "*") return "*";
  return text.match(/(?:W\/)?"[^"]*"/g) ?? [];
}

/** The tags of `If-Match`, or `*`; a 400 when it holds none. */
export function ifMatchOf(request: FastifyRequest): "*" | string[] | undefined {
  const ifMatch = entityTags(request.headers["if-match"]);
  // `If-Match: 42` (no quotes) or an empty one names no version: it was answered 412 "is at "42",
  // not ", as if the TD had changed. RFC 9110 §8.8.3: an entity tag is quoted.
  if (Array.isArray(ifMatch) && ifMatch.length === 0) {
    throw new ValidationError(
      'If-Match takes * or the TD\'s ETag as the hub gave it, quotes included ("42"), not ' +
        quoted(String(request.headers["if-match"])),
      [{ pointer: "/headers/if-match", message: 'must be * or entity tags such as "42"' }],
    );
  }
  return ifMatch;
}

const weak = (tag: string): string => tag.replace(/^W\//, "");

/** RFC 9110 §8.8.3.2: strong comparison (If-Match): both strong and the same. */
function strongMatch(tags: "*" | readonly string[], etag: string): boolean {
  return tags === "*" || (!etag.startsWith("W/") && tags.includes(etag));
}

/** RFC 9110 §8.8.3.2: weak comparison (If-None-Match): the same opaque tag, weak or not. */
function weakMatch(tags: "*" | readonly string[], etag: string): boolean {
  return tags === "*" || tags.some((t) => weak(t) === weak(etag));
}

const MONTHS = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec";
/**
 * RFC 9110 §5.6.7: IMF-fixdate, and the obsolete RFC 850 and asctime forms a recipient must
 * still read. Anything else (an ISO date, "yesterday") is no HTTP-date: the header is ignored.
 */
const HTTP_DATE = new RegExp(
  `^(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \\d{2} (?:${MONTHS}) \\d{4} \\d{2}:\\d{2}:\\d{2} GMT` +
    `|(?:Mon|Tues|Wednes|Thurs|Fri|Satur|Sun)day, \\d{2}-(?:${MONTHS})-\\d{2} \\d{2}:\\d{2}:\\d{2} GMT` +
    `|(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun) (?:${MONTHS}) [ \\d]\\d \\d{2}:\\d{2}:\\d{2} \\d{4})$`,
);

/** The time an HTTP-date names (ms), or undefined when it is none (RFC 9110 §13.1.3: ignored). */
export function parseHttpDate(header: string | string[] | undefined): number | undefined {
  if (typeof header !== "string") return undefined;
  const text = header.trim();
  if (!HTTP_DATE.test(text)) return undefined;
  // asctime has no zone: it is GMT.
  const ms = Date.parse(/GMT$/.test(text) ? text : `${text} GMT`);
  return Number.isNaN(ms) ? undefined : ms;
}

/** An HTTP-date (IMF-fixdate) for `Last-Modified`: whole seconds, as the header holds. */
export function httpDate(ms: number): string {
  return new Date(ms).toUTCString();
}

/** HTTP-dates hold whole seconds: a change at 12:00:00.700 was not "after 12:00:00". */
const seconds = (ms: number): number => Math.floor(ms / 1000);

/**
 * If-Unmodified-Since (RFC 9110 §13.1.4), when it applies: not beside If-Match (§13.2.2 step 2),
 * nor for a resource with no modification date, nor when the date is no HTTP-date. A 412 when the
 * resource changed after the date.
 */
export function checkUnmodifiedSince(request: FastifyRequest, resource: Validators, what: string): void {
  if (request.headers["if-match"] !== undefined || resource.lastModified === undefined) return;
  const since = parseHttpDate(request.headers["if-unmodified-since"]);
  if (since === undefined || seconds(resource.lastModified) <= seconds(since)) return;
  throw new PreconditionFailedError(
    `If-Unmodified-Since: ${what} was modified at ${httpDate(resource.lastModified)}, after ${httpDate(since)}; read it again`,
  );
}

/**
 * RFC 9110 §13.2.2, for a GET or HEAD: the preconditions in their order. Throws a 412 for
 * If-Match or If-Unmodified-Since; true when the answer is a 304 (If-None-Match, compared weakly,
 * or, without it, If-Modified-Since); false when it is the representation.
 */
export function notModified(request: FastifyRequest, resource: Validators, what: string): boolean {
  const ifMatch = ifMatchOf(request);
  if (ifMatch !== undefined && !strongMatch(ifMatch, resource.etag))
    throw new PreconditionFailedError(
      `If-Match: ${what} is at ${resource.etag}, not ${ifMatch === "*" ? "*" : echoed(ifMatch.join(", "))}`,
    );
  checkUnmodifiedSince(request, resource, what);
  const ifNoneMatch = entityTags(request.headers["if-none-match"]);
  if (ifNoneMatch !== undefined) return weakMatch(ifNoneMatch, resource.etag);
  if (resource.lastModified === undefined) return false;
  const since = parseHttpDate(request.headers["if-modified-since"]);
  return since !== undefined && seconds(resource.lastModified) <= seconds(since);
}
