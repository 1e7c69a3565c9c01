// The few error classes the whole hub speaks. Each carries what a person needs to act on it;
// the API maps them to RFC 9457 problem documents and the CLI to one line and an exit code.

/** One failing place in an input, as a JSON pointer (RFC 6901) and what is wrong there. */
export interface ErrorLocation {
  pointer: string;
  message: string;
}

export abstract class HyperthingsError extends Error {
  /** A short, stable, human-readable summary of the problem type (RFC 9457 `title`). */
  abstract readonly title: string;
  /** The HTTP status this error maps to. */
  abstract readonly status: number;
  /** A stable machine-readable slug, used to build the problem `type` URI. */
  abstract readonly code: string;

  constructor(message: string) {
    super(message);
    // The class's own name (ValidationError, …), for stack traces and logs.
    this.name = new.target.name;
  }
}

export class ValidationError extends HyperthingsError {
  readonly title = "Invalid input";
  readonly status = 400;
  readonly code = "validation";
  constructor(
    message: string,
    readonly errors: ErrorLocation[] = [],
  ) {
    super(message);
  }
}

export class NotFoundError extends HyperthingsError {
  readonly title = "Not found";
  readonly status = 404;
  readonly code = "not-found";
}

export class ConflictError extends HyperthingsError {
  readonly title = "Conflict";
  readonly status = 409;
  readonly code = "conflict";
}

export class UnauthorizedError extends HyperthingsError {
  readonly title = "Unauthorized";
  readonly status = 401;
  readonly code = "unauthorized";
}

export class ForbiddenError extends HyperthingsError {
  readonly title = "Forbidden";
  readonly status = 403;
  readonly code = "forbidden";
}

/**
 * RFC 9110 §15.5.20: a request that names a host this server is not (its Host header), such as a
 * web page's name made to resolve to the hub (DNS rebinding).
 */
export class MisdirectedRequestError extends HyperthingsError {
  readonly title = "Misdirected request";
  readonly status = 421;
  readonly code = "misdirected-request";
}

export class UnavailableError extends HyperthingsError {
  readonly title = "Unavailable";
  readonly status = 503;
  readonly code = "unavailable";
  constructor(
    message: string,
    /** Seconds after which a retry may succeed (HTTP `Retry-After`). */
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

/** A client that holds or asks more than its share of something the hub bounds per client. */
export class TooManyRequestsError extends HyperthingsError {
  readonly title = "Too many requests";
  readonly status = 429;
  readonly code = "too-many-requests";
  constructor(
    message: string,
    /** Seconds after which a retry may succeed (HTTP `Retry-After`). */
    readonly retryAfter?: number,
  ) {
    super(message);
  }
}

export class BindingError extends HyperthingsError {
  readonly title = "Thing did not answer as expected";
  readonly status = 502;
  readonly code = "binding";
  constructor(
    message: string,
    readonly thing?: string,
    readonly detail?: unknown,
  ) {
    super(message);
  }
}

/** A request body in a form the hub does not read (a content coding, a charset other than UTF-8). */
export class UnsupportedMediaError extends HyperthingsError {
  readonly title = "Unsupported media type";
  readonly status = 415;
  readonly code = "unsupported-media-type";
}

/**
 * A request whose `Accept` names no media type the resource answers with (RFC 9110 §15.5.7);
 * `answers` lists those it does.
 */
export class NotAcceptableError extends HyperthingsError {
  readonly title = "Not acceptable";
  readonly status = 406;
  readonly code = "not-acceptable";
  constructor(
    message: string,
    readonly answers: readonly string[],
  ) {
    super(message);
  }
}

/** A request with a method its resource does not take; `allow` lists those it does. */
export class MethodNotAllowedError extends HyperthingsError {
  readonly title = "Method not allowed";
  readonly status = 405;
  readonly code = "method-not-allowed";
  constructor(
    message: string,
    readonly allow: readonly string[],
  ) {
    super(message);
  }
}

/**
 * A conditional request (HTTP `If-Match`, `If-None-Match`) whose condition does not hold: the
 * resource is not in the version the client based its change on (RFC 9110 §13.1).
 */
export class PreconditionFailedError extends HyperthingsError {
  readonly title = "Precondition failed";
  readonly status = 412;
  readonly code = "precondition-failed";
}

/** One TD of a batch that the directory refuses, and why (docs/api.md, `POST /things/batch`). */
export interface BatchRefusal {
  /** Its place in the batch, from 0. */
  index: number;
  /** Its id, when it gave one as a string. */
  id?: string;
  /** The status a request of this TD alone would have had: 400 invalid, 413 too large. */
  status: number;
  message: string;
  /** Where, as JSON pointers into the whole batch (`/3/properties/x`). */
  errors: ErrorLocation[];
}

/**
 * A batch of TDs refused whole: nothing of it was registered. Each refused TD is listed; its
 * status is 413 when every refused TD is too large, else 400.
 */
export class BatchRefusedError extends HyperthingsError {
  readonly title = "Batch refused";
  readonly status: number;
  readonly code = "batch-refused";
  constructor(
    message: string,
    readonly refused: readonly BatchRefusal[],
  ) {
    super(message);
    this.status = refused.length > 0 && refused.every((r) => r.status === 413) ? 413 : 400;
  }

  /** Each refused TD as the API's answers list it (`detail`, not `message`, as RFC 9457 names it). */
  listed(): Array<{
    index: number;
    id?: string;
    status: number;
    detail: string;
    errors: Array<{ pointer: string; detail: string }>;
  }> {
    return this.refused.map((r) => ({
      index: r.index,
      ...(r.id !== undefined && { id: r.id }),
      status: r.status,
      detail: r.message,
      errors: r.errors.map((e) => ({ pointer: e.pointer, detail: e.message })),
    }));
  }
}

/**
 * What a device's error answer says, in one line for a person: the `detail`, `message`, `error` or
 * `title` of a JSON body (a problem document, an Express-style error), else the text itself, with
 * its whitespace folded and cut at 200 characters. Empty when it says nothing.
 */
export function deviceSays(body: string): string {
  let text = body;
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed === "object" && parsed !== null && !Array.isArray(parsed)) {
      const members = parsed as Record<string, unknown>;
      const said = ["detail", "message", "error", "title"]
        .map((name) => members[name])
        .find((value): value is string => typeof value === "string" && value.trim() !== "");
      if (said !== undefined) text = said;
    } else if (typeof parsed === "string") text = parsed;
  } catch {
    // Not JSON: the text as it came.
  }
  const line = text.replace(/\s+/g, " ").trim();
  return line.length > 200 ? `${line.slice(0, 199)}…` : line;
}

/**
 * The Log's store lacks what its own head says it holds (a Change's row deleted outside the hub,
 * past its triggers): no fault of the request, and no retry mends it. `seq` is the Change found
 * missing or damaged.
 */
export class DamagedLogError extends HyperthingsError {
  readonly title = "The Log's store is damaged";
  readonly status = 500;
  readonly code = "log-damaged";
  constructor(
    message: string,
    readonly seq: number,
  ) {
    super(message);
  }
}
