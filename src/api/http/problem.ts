// RFC 9457 problem documents: the one place where errors become HTTP answers.
import type { FastifyError, FastifyReply, FastifyRequest } from "fastify";
import {
  BatchRefusedError,
  BindingError,
  DamagedLogError,
  HyperthingsError,
  MethodNotAllowedError,
  NotAcceptableError,
  ValidationError,
  type ErrorLocation,
  echoed,
  quoted,
} from "../../core/index.js";
import { STATUS_CODES } from "node:http";
import type { Duplex } from "node:stream";
import { acceptedMediaTypes } from "./content-types.js";
import { integerWords } from "./query-numbers.js";

export const PROBLEM_CONTENT_TYPE = "application/problem+json";

/** The longest path segment the router takes, decoded (server.ts: a Thing id's own bound). */
export const MAX_PATH_SEGMENT = 2048;

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
  instance?: string;
  /** RFC 9457 §3 extension: each failing place in the input, as a JSON pointer. */
  errors?: Array<{ pointer: string; detail: string }>;
  /** W3C WoT Discovery §7.3.2.1: the same, in the directory API's own shape. */
  validationErrors?: Array<{ field: string; description: string }>;
  [extension: string]: unknown;
}

export function problemType(code: string): string {
  return `urn:hyperthings:problem:${code}`;
}

function withLocations(problem: Problem, locations: ErrorLocation[]): Problem {
  if (locations.length === 0) return problem;
  problem.errors = locations.map((l) => ({ pointer: l.pointer, detail: l.message }));
  problem.validationErrors = locations.map((l) => ({ field: l.pointer, description: l.message }));
  return problem;
}

/** What a route schema's validator (Ajv) says about one place in the input. */
interface SchemaError {
  keyword: string;
  instancePath: string;
  schemaPath: string;
  message?: string;
  /** The keyword's particulars: `allowedValues` (enum), `additionalProperty`, `missingProperty`. */
  params?: Record<string, unknown>;
  /** With Ajv's `verbose` (server.ts): the schema of the failing place, and the value there. */
  parentSchema?: unknown;
  data?: unknown;
}

/**
 * The words for a schema error. A pattern says what it stands for in its schema's `description`
 * ("kinds separated by commas, …"): a regular expression is no explanation.
 */
function messageOf(error: SchemaError, context: string): string {
  const schema = error.parentSchema as { description?: unknown; properties?: unknown } | undefined;
  const description = schema?.description;
  if (error.keyword === "pattern" && typeof description === "string") return `must be ${description}`;
  // An integer parameter out of its bounds, in words with both of them ("must be a whole number
  // from 1 to 100000, not 0"), not Ajv's "must be >= 1" that names one.
  const integer = schema as { type?: unknown; minimum?: unknown; maximum?: unknown } | undefined;
  if (
    context === "query" &&
    (error.keyword === "minimum" || error.keyword === "maximum") &&
    integer?.type === "integer"
  ) {
    return `must be ${integerWords(integer)}, not ${String(error.data)}`;
  }
  const allowed = error.params?.allowedValues;
  if (error.keyword === "enum" && Array.isArray(allowed)) {
    return `must be one of ${allowed.map((v) => JSON.stringify(v)).join(", ")}`;
  }
  // A body of one member among several (`{"homie"}` or `{"homeassistant"}`): its choices, in
  // words, not Ajv's "must NOT have fewer than 1 properties".
  const members =
    typeof schema?.properties === "object" && schema.properties !== null
      ? Object.keys(schema.properties).map((k) => JSON.stringify(k))
      : [];
  const bound = error.params?.limit;
  if (members.length > 1 && bound === 1 && error.keyword === "minProperties") {
    return `must have one of ${members.join(", ")}`;
  }
  if (members.length > 1 && bound === 1 && error.keyword === "maxProperties") {
    const given =
      typeof error.data === "object" && error.data !== null ? Object.keys(error.data).length : undefined;
    return `must have only one of ${members.join(", ")}${given === undefined ? "" : `, not ${given}`}`;
  }
  // A list's bounds, with what it held: "must hold at least 1 item, not 0" rather than Ajv's
  // "must NOT have fewer than 1 items".
  if ((error.keyword === "minItems" || error.keyword === "maxItems") && typeof bound === "number") {
    const held = Array.isArray(error.data) ? `, not ${error.data.length}` : "";
    const least = error.keyword === "minItems" ? "at least" : "at most";
    return `must hold ${least} ${bound} item${bound === 1 ? "" : "s"}${held}`;
  }
  const extra = error.params?.additionalProperty;
  if (error.keyword === "additionalProperties" && typeof extra === "string") {
    // The members it does take, from the schema: a typo is then plain to see.
    const known =
      typeof schema?.properties === "object" && schema.properties !== null
        ? Object.keys(schema.properties)
        : [];
    const what = context === "query" ? "parameter" : "member";
    const takes =
      known.length > 0
        ? ` (it takes ${known.map((k) => JSON.stringify(k)).join(", ")})`
        : context === "query"
          ? " (it takes none)"
          : "";
    return `has no ${what} ${quoted(extra)}${takes}`;
  }
  return error.message ?? "is invalid";
}

/**
 * A body that may be one thing or a list of them (`oneOf`, `anyOf`) fails in every branch, and
 * Ajv reports them all: an object with a bad member also "must be array". Only the branches of
 * the input's own type are kept (a branch whose `type` failed right at the input is another
 * type's), without the choice's own "must match exactly one schema"; when no branch is of its
 * type, everything stays.
 */
function errorsOfItsType<E extends SchemaError>(errors: readonly E[]): E[] {
  let kept = [...errors];
  for (const choice of errors) {
    if (choice.keyword !== "oneOf" && choice.keyword !== "anyOf") continue;
    const prefix = `${choice.schemaPath}/`;
    const branchOf = (e: E): string | undefined =>
      e.schemaPath.startsWith(prefix) ? e.schemaPath.slice(prefix.length).split("/")[0] : undefined;
    const branches = new Set<string>();
    const otherTypes = new Set<string>();
    for (const e of errors) {
      const branch = branchOf(e);
      if (branch === undefined) continue;
      branches.add(branch);
      if (e.schemaPath === `${prefix}${branch}/type` && e.instancePath === choice.instancePath)
        otherTypes.add(branch);
    }
    if (otherTypes.size === 0) continue;
    if (otherTypes.size === branches.size) {
      // Of no branch's type (123 where an object or an array is taken): one error naming the
      // types, not one per branch and Ajv's "must match exactly one schema in oneOf".
      const types = errors
        .filter((e) => e.instancePath === choice.instancePath && otherTypes.has(branchOf(e) ?? ""))
        .filter((e) => e.schemaPath.endsWith("/type"))
        .map((e) => String(e.params?.type));
      const one = { ...choice, keyword: "type", message: `must be ${[...new Set(types)].join(" or ")}` };
      kept = [...kept.filter((e) => e !== choice && branchOf(e) === undefined), one];
      continue;
    }
    kept = kept.filter((e) => e !== choice && !otherTypes.has(branchOf(e) ?? ""));
  }
  return kept;
}

/**
 * Fastify's own errors (parsing, limits, route schemas), named by their codes; with the request,
 * the route's own limit and media types.
 */
function fromFastifyError(err: FastifyError, request?: FastifyRequest): Problem {
  const status = err.statusCode ?? 500;
  switch (err.code) {
    case "FST_ERR_CTP_BODY_TOO_LARGE": {
      const limit = request?.routeOptions.bodyLimit;
      return {
        type: problemType("body-too-large"),
        title: "Request body too large",
        status: 413,
        ...(typeof limit === "number"
          ? { detail: `The request body is larger than this endpoint takes (${formatBytes(limit)})`, limit }
          : { detail: err.message }),
      };
    }
    case "FST_ERR_CTP_INVALID_MEDIA_TYPE":
      return {
        type: problemType("unsupported-media-type"),
        title: "Unsupported media type",
        status: 415,
        detail: `${unsupportedMediaType(request)}; send ${request ? acceptedMediaTypes(request).join(" or ") : "application/json"}`,
      };
    // The router's own refusals of a path: fastify's messages echo the whole path (kilobytes of
    // it) and name neither what is wrong nor the bound.
    case "FST_ERR_BAD_URL":
      return {
        type: problemType("request"),
        title: "Bad request",
        status: 400,
        detail:
          "The URL's path has a %-escape that is not UTF-8 text: write each byte of a character's UTF-8 as %XX (é is %C3%A9) and a % itself as %25",
      };
    case "FST_ERR_MAX_PARAM_LENGTH":
      return {
        type: problemType("request"),
        title: "URI too long",
        status: 414,
        detail: `A segment of the URL's path is longer than ${MAX_PATH_SEGMENT} characters once decoded; a Thing id is at most ${MAX_PATH_SEGMENT}`,
      };
    case "FST_ERR_CTP_EMPTY_JSON_BODY":
      return {
        type: problemType("validation"),
        title: "Invalid input",
        status: 400,
        detail: "The request has no body",
      };
    default:
      break;
  }
  // A body-less request where a body is due fails the route's schema ("body must be object").
  if (
    err.validation &&
    err.validationContext === "body" &&
    request !== undefined &&
    request.body === undefined
  ) {
    return {
      type: problemType("validation"),
      title: "Invalid input",
      status: 400,
      detail: `The request has no body; send ${acceptedMediaTypes(request).join(" or ")}`,
    };
  }
  if (err.validation) {
    // One name for the query in every pointer: the hub's own checks say /query/… too.
    const context = err.validationContext === "querystring" ? "query" : (err.validationContext ?? "request");
    const errors = errorsOfItsType(err.validation);
    const locations = errors.map((v) => {
      // A missing member or parameter is pointed at by its own name ("query/from is required"),
      // not at its parent with Ajv's "must have required property 'from'".
      const missing = v.keyword === "required" ? v.params?.missingProperty : undefined;
      return typeof missing === "string"
        ? { pointer: `/${context}${v.instancePath}/${missing}`, message: "is required" }
        : { pointer: `/${context}${v.instancePath}`, message: messageOf(v, context) };
    });
    // Fastify's message names every error; this one, those kept.
    const detail = locations.map((l) => `${l.pointer.slice(1)} ${l.message}`).join(", ");
    return withLocations(
      {
        type: problemType("validation"),
        title: "Invalid input",
        status: 400,
        detail: `Invalid ${context}: ${detail}`,
      },
      locations,
    );
  }
  if (status >= 400 && status < 500) {
    const title = status === 400 ? "Bad request" : (STATUS_CODES[status] ?? "Bad request");
    return { type: problemType("request"), title, status, detail: err.message };
  }
  return {
    type: problemType("internal"),
    title: "Internal error",
    status: 500,
    detail: "The hub failed to answer; see its log",
  };
}

/**
 * Which Content-Type was refused, in words: fastify's own message ("Unsupported Media Type")
 * names none, and `curl -d` sends a form type its user never wrote.
 */
function unsupportedMediaType(request: FastifyRequest | undefined): string {
  const header = request?.headers["content-type"]?.trim();
  if (header === undefined || header === "") return "The request has a body but no Content-Type";
  const type = header.split(";")[0]?.trim().toLowerCase() ?? header;
  const curl =
    type === "application/x-www-form-urlencoded"
      ? " (what curl -d sends unless given -H 'Content-Type: application/json')"
      : "";
  return `The body's Content-Type, ${echoed(type)}${curl}, is not taken here`;
}

export function toProblem(error: unknown, request?: FastifyRequest): Problem {
  if (error instanceof HyperthingsError) {
    const problem: Problem = {
      type: problemType(error.code),
      title: error.title,
      status: error.status,
      detail: error.message,
    };
    if (error instanceof BindingError) return withDeviceAnswer(problem, error);
    if (error instanceof BatchRefusedError) return withRefusals(problem, error);
    if (error instanceof NotAcceptableError) problem.answers = error.answers;
    return error instanceof ValidationError ? withLocations(problem, error.errors) : problem;
  }
  return fromFastifyError(error as FastifyError, request);
}

/**
 * A refused batch: every place in it (`errors`, as for any invalid body), and each refused TD
 * with its index, id, status and reason (`refused`).
 */
function withRefusals(problem: Problem, error: BatchRefusedError): Problem {
  withLocations(
    problem,
    error.refused.flatMap((r) => r.errors),
  );
  problem.refused = error.listed();
  return problem;
}

/**
 * A Thing's failure, as the bindings describe it (`BindingFailure`): which Thing, why, and what the
 * device answered; a Thing that did not answer in time is a 504.
 */
function withDeviceAnswer(problem: Problem, error: BindingError): Problem {
  const detail = (typeof error.detail === "object" && error.detail !== null ? error.detail : {}) as Record<
    string,
    unknown
  >;
  const pick = (name: string, type: "string" | "number") =>
    typeof detail[name] === type ? { [name]: detail[name] } : {};
  if (error.thing !== undefined) problem.thing = error.thing;
  problem.device = {
    ...pick("reason", "string"),
    ...pick("op", "string"),
    ...pick("href", "string"),
    ...pick("status", "number"),
    ...pick("body", "string"),
    ...pick("outcome", "string"),
  };
  if (detail.reason === "timeout") {
    problem.status = 504;
    problem.title = "Thing did not answer in time";
  }
  return problem;
}

/** 1048576 → "1 MiB", 1500 → "1,500 bytes". */
function formatBytes(bytes: number): string {
  if (bytes >= 1024 * 1024 && bytes % (1024 * 1024) === 0) return `${bytes / (1024 * 1024)} MiB`;
  if (bytes >= 1024 && bytes % 1024 === 0) return `${bytes / 1024} KiB`;
  return `${bytes.toLocaleString("en-US")} bytes`;
}

/** The longest request target a problem's `instance` repeats whole. */
export const MAX_INSTANCE = 1024;

/**
 * A problem's `instance` (RFC 9457 §3.1.5): the request's path and query as sent, when that is at
 * most `MAX_INSTANCE` characters; past it, the path alone (a long query is what the client sent, and
 * `detail` says what in it was wrong); and a path longer than that, its first `MAX_INSTANCE`
 * characters, never cutting a %-escape in two. Either way still a URI reference, and a problem
 * document never repeats kilobytes of a request's target.
 */
export function instanceOf(target: string): string {
  if (target.length <= MAX_INSTANCE) return target;
  const query = target.indexOf("?");
  const path = query === -1 ? target : target.slice(0, query);
  if (path.length <= MAX_INSTANCE) return path;
  let end = MAX_INSTANCE;
  // "%4" or "%" at the end would be an escape cut in two: end before it.
  const percent = path.lastIndexOf("%", end - 1);
  if (percent !== -1 && percent > end - 3) end = percent;
  // Nor a character's UTF-8 bytes ("%C3%A9" is é) cut in two: end before its lead byte.
  let continuations = 0;
  for (let at = end - 3; at >= 0 && path[at] === "%"; at -= 3) {
    const byte = Number.parseInt(path.slice(at + 1, at + 3), 16);
    if (Number.isNaN(byte) || byte < 0x80) break;
    if (byte < 0xc0) {
      continuations++;
      continue;
    }
    const length = byte >= 0xf0 ? 4 : byte >= 0xe0 ? 3 : 2;
    if (continuations + 1 < length) end = at;
    break;
  }
  // Nor a surrogate pair (a target as sent is ASCII, but Node takes some bytes past it).
  const code = path.charCodeAt(end - 1);
  if (code >= 0xd800 && code <= 0xdbff) end--;
  return path.slice(0, end);
}

export function sendProblem(request: FastifyRequest, reply: FastifyReply, error: unknown): FastifyReply {
  const problem = toProblem(error, request);
  problem.instance = instanceOf(request.url);
  if (problem.status >= 500 && !(error instanceof HyperthingsError)) {
    request.log.error({ err: error }, "request failed");
  } else if (error instanceof DamagedLogError) {
    // Not the client's fault, and no retry mends it: the operator must hear of it.
    request.log.error({ seq: error.seq }, error.message);
  } else if (error instanceof BindingError) {
    // The Thing's trouble, not the hub's: the caller has it in the problem, the operator a line.
    request.log.info({ thing: error.thing, device: problem.device }, error.message);
  } else if (problem.status >= 500 && error instanceof Error && error.cause !== undefined) {
    // The hub's own trouble behind a known answer (a full disk): the operator must hear of it.
    request.log.error({ err: error.cause }, error.message);
  }
  if (error instanceof HyperthingsError && "retryAfter" in error && typeof error.retryAfter === "number") {
    void reply.header("retry-after", String(error.retryAfter));
  }
  if (problem.status === 401) void reply.header("www-authenticate", 'Bearer realm="hyperthings"');
  if (error instanceof MethodNotAllowedError) void reply.header("allow", error.allow.join(", "));
  // The answer was chosen by Accept: a cache must not serve it to a client that sends another.
  if (error instanceof NotAcceptableError) void reply.header("vary", "accept");
  // RFC 5789 §2.2: a patch document of a type the resource does not take names those it does.
  if (problem.status === 415 && request.method === "PATCH")
    void reply.header("accept-patch", acceptedMediaTypes(request).join(", "));
  return reply.code(problem.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(problem));
}

/**
 * Refuses a WebSocket handshake with a problem document (fastify never sees an upgrade), with
 * `Allow` for a 405 and any `headers` given.
 */
export function refuseUpgrade(
  socket: Duplex,
  error: HyperthingsError,
  instance: string,
  headers: Record<string, string> = {},
): void {
  const problem: Problem = { ...toProblem(error), instance: instanceOf(instance) };
  const body = JSON.stringify(problem);
  const extra = {
    ...(error instanceof MethodNotAllowedError && { Allow: error.allow.join(", ") }),
    ...headers,
  };
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${problem.status} ${problem.title}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\n` +
        Object.entries(extra)
          .map(([name, value]) => `${name}: ${value}\r\n`)
          .join("") +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy();
}

/**
 * Node's HTTP parser refuses some requests before fastify sees them (headers past 16 KiB, bytes
 * that are not HTTP, a request that took too long to arrive); fastify's own answer to them is
 * a JSON body of its own. This writes a problem document instead, on the socket, and closes it.
 */
export function sendClientErrorProblem(error: NodeJS.ErrnoException, socket: Duplex): void {
  // A reset connection has nobody left to answer.
  if (error.code === "ECONNRESET" || socket.destroyed) return;
  const [status, title, detail] =
    error.code === "ERR_HTTP_REQUEST_TIMEOUT"
      ? [408, "Request Timeout", "The request did not arrive in time"]
      : error.code === "HPE_HEADER_OVERFLOW"
        ? [
            431,
            "Request Header Fields Too Large",
            "The request's line and headers together are larger than the hub takes (16 KiB)",
          ]
        : [400, "Bad Request", `The request is not well-formed HTTP/1.1 (${error.code ?? error.message})`];
  const body = JSON.stringify({ type: problemType("request"), title, status, detail } satisfies Problem);
  if (socket.writable) {
    socket.write(
      `HTTP/1.1 ${status} ${title}\r\nContent-Type: ${PROBLEM_CONTENT_TYPE}\r\n` +
        `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
  }
  socket.destroy(error);
}
