// A typed client of a hub's W3C WoT Discovery directory API (/things, /search/jsonpath, /health),
// and the transport every client of the hub shares. It uses the global fetch and nothing else
// from Node.js, so that it runs in browsers too.
import type { RegisteredThingDescription, ThingDescription } from "../core/index.js";

const TD_CONTENT_TYPE = "application/td+json";
/** The page size when listing every Thing: the hub's own default page. */
const DEFAULT_PAGE_SIZE = 100;
/** Every problem document the hub itself sends has a type under this (src/api/http/problem.ts). */
export const HUB_PROBLEM_TYPE = "urn:hyperthings:problem:";
/** How many times one listing moves its window back before it gives up on a collection in flux. */
const MAX_WINDOW_MOVES = 1000;

export interface HubClientOptions {
  /**
   * The hub's base URL, e.g. `http://127.0.0.1:8080`. The hub serves at the root of its port; a
   * path (`http://proxy/hub/`) is kept, for a proxy that serves the hub under it.
   */
  url: string;
  /** A bearer token: mutations need one; reads only when the hub runs with `--auth read`. */
  token?: string | undefined;
  /** The fetch to use; the global one by default. */
  fetch?: typeof globalThis.fetch;
}

/** One failing place in what was sent (RFC 9457 §3 `errors` extension). */
export interface ProblemLocation {
  pointer: string;
  detail: string;
}

export interface ProblemFields {
  status: number;
  title: string;
  detail?: string | undefined;
  type?: string | undefined;
  instance?: string | undefined;
  errors?: ProblemLocation[] | undefined;
  /** A Thing's failure (502/504): what the device answered, as the hub's problem document has it. */
  device?: DeviceAnswer | undefined;
  /** A refused batch of TDs: each TD refused (docs/api.md, `POST /things/batch`). */
  refused?: BatchRefusal[] | undefined;
}

/** One TD of a batch that the hub refused: its place, id, status, why and where (pointers into the batch). */
export interface BatchRefusal {
  index: number;
  id?: string;
  status: number;
  detail: string;
  errors: ProblemLocation[];
}

/** What `POST /things/batch` did with one TD. */
export interface BatchResult {
  id: string;
  status: "created" | "updated" | "unchanged";
  /** The TD's version (its `ETag`): the Log position of its last Change. */
  version: number;
}

/** The `device` member of a problem about a Thing that failed (docs/bindings.md). */
export interface DeviceAnswer {
  reason?: string;
  status?: number;
  /** The device's own answer, as text (bounded). */
  body?: string;
  [member: string]: unknown;
}

/** The hub refused a request: its RFC 9457 problem document, as an error. */
export class HubError extends Error {
  readonly status: number;
  readonly title: string;
  readonly detail: string | undefined;
  readonly type: string | undefined;
  readonly instance: string | undefined;
  readonly errors: ProblemLocation[];
  readonly device: DeviceAnswer | undefined;
  readonly refused: BatchRefusal[];

  constructor(problem: ProblemFields) {
    super(problem.detail ?? problem.title);
    this.name = "HubError";
    this.status = problem.status;
    this.title = problem.title;
    this.detail = problem.detail;
    this.type = problem.type;
    this.instance = problem.instance;
    this.errors = problem.errors ?? [];
    this.device = problem.device;
    this.refused = problem.refused ?? [];
  }
}

/** No answer at all: the hub is not running, the host is unknown, the connection broke. */
export class HubUnreachableError extends Error {
  constructor(
    readonly url: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot reach the hub at ${url}: ${reason}`, options);
    this.name = "HubUnreachableError";
  }
}

export interface PutResult {
  id: string;
  /** True when the directory had no TD with this id (201), false when it replaced one (204). */
  created: boolean;
  /** The TD's version after the request: the Log position of its last Change (its `ETag`). */
  version?: number;
}

export interface ListOptions {
  offset?: number;
  limit?: number;
}

export interface ThingPage {
  things: RegisteredThingDescription[];
  /** How many Things the directory holds (`X-Total-Count`), when the hub says. */
  total?: number;
  /** The absolute URL of the next page (`Link: <…>; rel="next"`), if there is one. */
  next?: string;
  /**
   * The `etag` of the page's canonical link (WoT Discovery §7.3.2.1.5): the state of the whole
   * collection when the page was read.
   */
  revision?: string;
}

export interface HubHealth {
  status: string;
  hub: string;
  version: string;
  things: number;
  lastSeq: number;
}

/** Whether a page holds a TD at or before `id` (ids sort as the directory sorts them). */
function startsAtOrBefore(page: ThingPage, id: string): boolean {
  const first = page.things[0];
  return first !== undefined && first.id <= id;
}

/** `/things/{id}` relative to the hub's base: the id percent-encoded, `:` and `@` kept readable. */
export function thingPathOf(id: string): string {
  return `things/${encodeURIComponent(id).replace(/%3A/gi, ":").replace(/%40/g, "@")}`;
}

/** The link of one relation in an RFC 8288 Link header: its target and its parameters' text. */
function linkOf(header: string | null, relation: string): { target: string; params: string } | undefined {
  if (header === null) return undefined;
  for (const match of header.matchAll(/<([^>]*)>([^<]*)/g)) {
    const rel = /;\s*rel\s*=\s*(?:"([^"]*)"|([^;,\s]+))/i.exec(match[2] ?? "");
    const relations = (rel?.[1] ?? rel?.[2] ?? "").toLowerCase().split(/\s+/);
    if (relations.includes(relation)) return { target: match[1] ?? "", params: match[2] ?? "" };
  }
  return undefined;
}

/** The target of the `rel="next"` link in an RFC 8288 Link header, resolved against `base`. */
export function nextLinkOf(header: string | null, base: URL): string | undefined {
  const link = linkOf(header, "next");
  return link && new URL(link.target, base).href;
}

/** The `etag` parameter of the `rel="canonical"` link: the revision of a paged collection. */
export function collectionRevisionOf(header: string | null): string | undefined {
  const params = linkOf(header, "canonical")?.params ?? "";
  const etag = /;\s*etag\s*=\s*(?:"([^"]*)"|([^;,\s]+))/i.exec(params);
  return etag ? (etag[1] ?? etag[2]) : undefined;
}

/** Why a fetch got no answer, in words, from the error codes Node.js (undici) gives. */
export function unreachableReason(err: TypeError): string {
  const cause = err.cause as
    { code?: unknown; name?: unknown; message?: unknown; errors?: Array<{ code?: unknown }> } | undefined;
  const code = cause?.code ?? cause?.errors?.[0]?.code;
  // What answered is no HTTP server (NATS, Redis, PostgreSQL, MQTT…): llhttp refused its bytes.
  // Node 20's and 22's undici give llhttp's code (HPE_…); Node 24's gives the error no code.
  if (cause?.name === "HTTPParserError" || (typeof code === "string" && code.startsWith("HPE_")))
    return "what answers there does not speak HTTP — is it the address `things serve` printed?";
  switch (code) {
    case "ECONNREFUSED":
      return "connection refused — is `things serve` running?";
    case "ENOTFOUND":
    case "EAI_AGAIN":
      return "no such host — check the hub's address (--url, HYPERTHINGS_URL)";
    case "ECONNRESET":
    case "UND_ERR_SOCKET":
      return "the connection was closed before the hub answered";
    case "ETIMEDOUT":
    case "UND_ERR_CONNECT_TIMEOUT":
      return "the connection timed out";
    case "EHOSTUNREACH":
    case "ENETUNREACH":
      return "no route to the host";
    default:
      // An https:// URL to a plain HTTP port: the first bytes back are no TLS record.
      if (typeof code === "string" && /^ERR_SSL_|^EPROTO$/.test(code))
        return "what answers there does not speak TLS — the hub itself serves plain HTTP: give an http:// URL, or its TLS proxy's";
      if (typeof code === "string") return code;
      // The Fetch standard's "bad ports" (6000, 6665–6669, 5060…): fetch never connects to them.
      if (cause?.message === "bad port")
        return 'fetch never connects to this port (a "bad port" of the Fetch standard, as in browsers) — run the hub on another --port';
      return typeof cause?.message === "string" && cause.message.length > 0 ? cause.message : err.message;
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function text(value: unknown): string | undefined {
  return typeof value === "string" ? value : undefined;
}

/** The `refused` member of a refused batch's problem, each entry kept only when well formed. */
function refusalsOf(problem: Record<string, unknown>): BatchRefusal[] | undefined {
  const { refused } = problem;
  if (!Array.isArray(refused)) return undefined;
  return refused.filter(isObject).flatMap((r) =>
    typeof r.index === "number" && typeof r.status === "number"
      ? [
          {
            index: r.index,
            ...(typeof r.id === "string" && { id: r.id }),
            status: r.status,
            detail: text(r.detail) ?? "",
            errors: locationsOf(r),
          },
        ]
      : [],
  );
}

/** RFC 9457 `errors`, or the WoT Discovery `validationErrors` some directories send instead. */
function locationsOf(problem: Record<string, unknown>): ProblemLocation[] {
  const { errors, validationErrors } = problem;
  if (Array.isArray(errors)) {
    return errors
      .filter(isObject)
      .map((e) => ({ pointer: text(e.pointer) ?? "", detail: text(e.detail) ?? "" }));
  }
  if (Array.isArray(validationErrors)) {
    return validationErrors
      .filter(isObject)
      .map((e) => ({ pointer: text(e.field) ?? "", detail: text(e.description) ?? "" }));
  }
  return [];
}

async function hubErrorOf(response: Response): Promise<HubError> {
  const raw = await response.text();
  const fallback = response.statusText || `HTTP ${response.status}`;
  let body: unknown;
  try {
    body = JSON.parse(raw);
  } catch {
    // Not a problem document (a proxy's HTML page, say): the status and a little of the text.
    const detail = raw.trim().slice(0, 200);
    return new HubError({
      status: response.status,
      title: fallback,
      detail: detail.length > 0 ? detail : undefined,
    });
  }
  if (!isObject(body)) return new HubError({ status: response.status, title: fallback });
  return new HubError({
    status: typeof body.status === "number" ? body.status : response.status,
    title: text(body.title) ?? fallback,
    detail: text(body.detail),
    type: text(body.type),
    instance: text(body.instance),
    errors: locationsOf(body),
    device: isObject(body.device) ? body.device : undefined,
    refused: refusalsOf(body),
  });
}

/** The media types the hub answers JSON in: `application/json`, any `+json`, NDJSON. */
const JSON_MEDIA_TYPE = /^application\/(?:[\w.+-]+\+)?json$|^application\/x-ndjson$/;

/** An answer's media type (`text/html`), lower case and without parameters; undefined when none. */
function mediaTypeOf(response: Response): string | undefined {
  const type = response.headers.get("content-type")?.split(";")[0]?.trim().toLowerCase();
  return type === undefined || type === "" ? undefined : type;
}

/** Whether a media type is what the hub would answer a request with this Accept in. */
function isAnswerTo(type: string, accept: string): boolean {
  return accept.includes("text/event-stream") ? type === "text/event-stream" : JSON_MEDIA_TYPE.test(type);
}

/** Whether a 2xx answer has no body to read (204, 205, or an empty one). */
function hasNoBody(response: Response): boolean {
  return response.status === 204 || response.status === 205 || response.headers.get("content-length") === "0";
}

/** The first characters of a text, on one line and bounded, for a message. */
function openingOf(text: string, max = 60): string {
  const line = text.replace(/\s+/g, " ").trim();
  const chars = Array.from(line);
  return chars.length <= max ? line : `${chars.slice(0, max - 1).join("")}…`;
}

/** The first characters of an answer's body (read up to a few KiB, then let go), for a message. */
async function openingOfBody(response: Response): Promise<string> {
  const body: ReadableStream<Uint8Array> | null = response.body;
  if (body === null) return "";
  const reader = body.getReader();
  const decoder = new TextDecoder();
  let text = "";
  try {
    while (text.length < 4096) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
  } catch {
    // What was read is enough to show.
  } finally {
    await reader.cancel().catch(() => undefined);
  }
  return openingOf(text);
}

/** `text/html: "<!DOCTYPE html>…"`: what an answer was (its body read as `text`), as a message says it. */
export function answerOf(response: Response, text: string): string {
  return answerShown(mediaTypeOf(response), openingOf(text));
}

function answerShown(type: string | undefined, opening: string): string {
  const kind = type === undefined ? "no content type" : type;
  return opening === "" ? `${kind} and an empty body` : `${kind}: ${JSON.stringify(opening)}`;
}

/** Whether `url` (a `/health`) answers 200 with a hub's health: its id and version. */
async function answersAsHub(fetch: typeof globalThis.fetch, url: URL): Promise<boolean> {
  try {
    const response = await fetch(url, { headers: { accept: "application/json" } });
    if (!response.ok) return false;
    const health: unknown = await response.json();
    return isObject(health) && typeof health.hub === "string" && typeof health.version === "string";
  } catch {
    return false;
  }
}

/**
 * Whether what answers at the base URL `base` is a hub, asked of its `health`: undefined if it is,
 * else why the URL is wrong, as an error to say instead of the answer that made us ask. `what` is
 * what made us ask, said when nothing there is a hub. A base with a path, on a host:port whose
 * root is a hub's, is told to give the root (the hub serves at the root; a path is for a proxy).
 */
export async function notAHubAt(
  fetch: typeof globalThis.fetch,
  base: URL,
  what: string,
): Promise<HubUnreachableError | undefined> {
  if (await answersAsHub(fetch, new URL("health", base))) return undefined;
  const shown = base.href.replace(/\/$/, "");
  const root = new URL("/", base);
  if (base.pathname !== "/" && (await answersAsHub(fetch, new URL("health", root)))) {
    const origin = root.href.replace(/\/$/, "");
    return new HubUnreachableError(
      shown,
      `the hub there serves at ${origin}, not under ${base.pathname.replace(/\/$/, "")} — give ${origin} (--url, HYPERTHINGS_URL)`,
    );
  }
  return new HubUnreachableError(
    shown,
    `what answers there is no Hyperthings hub (${what}) — is it the address \`things serve\` printed?`,
  );
}

/**
 * A 2xx answer that is not what the hub answers (an HTML page, plain text, no content type: a web
 * server of another kind, or a page of the hub's UI under a path), as an error that says so:
 * undefined when it is JSON (or an event stream, when that was asked for), or has no body.
 */
export async function unlikeTheHubs(
  fetch: typeof globalThis.fetch,
  base: URL,
  method: string,
  url: URL,
  response: Response,
  accept: string,
): Promise<HubError | HubUnreachableError | undefined> {
  const type = mediaTypeOf(response);
  if (type === undefined ? hasNoBody(response) : isAnswerTo(type, accept)) return undefined;
  const shown = answerShown(type, await openingOfBody(response));
  return notAnswerOfTheHub(
    fetch,
    base,
    response.status,
    `${method} ${url.pathname} answered ${response.status} with ${shown}`,
  );
}

/** Why an answer is not the hub's: no hub there (what to give instead), or the hub's own fault. */
async function notAnswerOfTheHub(
  fetch: typeof globalThis.fetch,
  base: URL,
  status: number,
  what: string,
): Promise<HubError | HubUnreachableError> {
  // With the answer's own status (2xx): a stream that keeps answering so is not retried.
  return (
    (await notAHubAt(fetch, base, what)) ??
    new HubError({ status, title: "Unexpected answer", detail: `the hub's ${what}` })
  );
}

/** The request (`GET /things`) each answer of `request` is to, for messages about the answer. */
const requestOf = new WeakMap<Response, string>();

/** Bytes sent in this many at a time when their progress is followed. */
const SENT_CHUNK = 64 * 1024;

/** A body streamed a chunk at a time, saying after each how much was taken. */
function streamed(
  bytes: Uint8Array,
  onSent: (bytes: number, total: number) => void,
): ReadableStream<Uint8Array> {
  let sent = 0;
  return new ReadableStream<Uint8Array>({
    pull(controller) {
      if (sent >= bytes.length) {
        controller.close();
        return;
      }
      const chunk = bytes.subarray(sent, sent + SENT_CHUNK);
      sent += chunk.length;
      controller.enqueue(chunk);
      onSent(sent, bytes.length);
    },
  });
}

/** The directory half of `HubClient` (see hub-client.ts), and the requests both halves make. */
export class DirectoryClient {
  /** The base URL, ending in `/`, that relative paths resolve against. */
  readonly url: string;
  private readonly token: string | undefined;
  private readonly fetch: typeof globalThis.fetch;

  constructor(options: HubClientOptions) {
    let base: URL;
    try {
      base = new URL(options.url);
    } catch {
      throw new TypeError(`"${options.url}" is not a hub URL; give one like http://127.0.0.1:8080`);
    }
    if (base.protocol !== "http:" && base.protocol !== "https:") {
      throw new TypeError(`"${options.url}" is not an http or https URL`);
    }
    base.search = "";
    base.hash = "";
    if (!base.pathname.endsWith("/")) base.pathname += "/";
    this.url = base.href;
    this.token = options.token;
    // Bound to globalThis: browsers refuse a fetch called as a method of another object.
    this.fetch = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
  }

  /** A request to the hub (a path relative to its base, or a URL); a HubError unless it answers 2xx. */
  protected async request(
    method: string,
    target: string | URL,
    options: {
      accept?: string;
      body?: string | ReadableStream<Uint8Array>;
      contentType?: string;
      headers?: Record<string, string>;
      signal?: AbortSignal | undefined;
    } = {},
  ): Promise<Response> {
    const url = typeof target === "string" ? new URL(target, this.url) : target;
    const headers = new Headers({ accept: options.accept ?? "application/json" });
    if (this.token !== undefined) headers.set("authorization", `Bearer ${this.token}`);
    if (options.contentType !== undefined) headers.set("content-type", options.contentType);
    for (const [name, value] of Object.entries(options.headers ?? {})) headers.set(name, value);
    let response: Response;
    try {
      response = await this.fetch(url, {
        method,
        headers,
        ...(options.body !== undefined && { body: options.body }),
        // A streamed body goes one way at a time (fetch standard: `duplex`, which Node.js requires).
        ...(typeof options.body === "object" && { duplex: "half" }),
        ...(options.signal !== undefined && { signal: options.signal }),
      });
    } catch (err) {
      // fetch rejects with a TypeError when there is no answer; anything else (an abort) is not ours.
      if (err instanceof TypeError) {
        throw new HubUnreachableError(this.url.replace(/\/$/, ""), unreachableReason(err), { cause: err });
      }
      throw err;
    }
    if (!response.ok) {
      const refusal = await hubErrorOf(response);
      throw (await this.notTheHub(refusal)) ?? refusal;
    }
    requestOf.set(response, `${method} ${url.pathname}`);
    const unlike = await unlikeTheHubs(
      this.fetch,
      new URL(this.url),
      method,
      url,
      response,
      options.accept ?? "application/json",
    );
    if (unlike !== undefined) throw unlike;
    return response;
  }

  /**
   * The JSON of a 2xx answer from `request`: a body that does not parse (what claims to be JSON
   * and is not) is said as `request` says an answer of another type.
   */
  protected async jsonOf(response: Response): Promise<unknown> {
    const raw = await response.text();
    try {
      return JSON.parse(raw) as unknown;
    } catch {
      const asked = requestOf.get(response) ?? new URL(response.url || this.url).pathname;
      throw await notAnswerOfTheHub(
        this.fetch,
        new URL(this.url),
        response.status,
        `${asked} answered ${response.status} with ${answerOf(response, raw)}, which is not JSON`,
      );
    }
  }

  /**
   * A refusal that may not be the hub's (no problem document of the hub's, or a base URL with a
   * path, as `http://hub:8080/things` by mistake) is checked: unless the base URL's `health`
   * answers as a hub, what is wrong with the URL, said instead of a refusal the hub never made.
   * A 5xx is left as it is: a proxy before a hub that is down says so itself.
   */
  private async notTheHub(refusal: HubError): Promise<HubUnreachableError | undefined> {
    const base = new URL(this.url);
    const atRoot = base.pathname === "/";
    if (refusal.status >= 500 || (atRoot && refusal.type?.startsWith(HUB_PROBLEM_TYPE))) return undefined;
    return notAHubAt(this.fetch, base, `GET ${base.pathname}health does not answer as a hub does`);
  }

  /** Registers or replaces a TD: PUT /things/{id} when it has an id, otherwise POST /things. */
  async put(td: ThingDescription): Promise<PutResult> {
    if (td.id === undefined) return this.create(td);
    const response = await this.request("PUT", thingPathOf(td.id), {
      body: JSON.stringify(td),
      contentType: TD_CONTENT_TYPE,
    });
    const etag = /^"(\d+)"$/.exec(response.headers.get("etag") ?? "");
    return { id: td.id, created: response.status === 201, ...(etag && { version: Number(etag[1]) }) };
  }

  /**
   * Registers or replaces every TD, all in one transaction or none (POST /things/batch): a
   * HubError whose `refused` lists each TD refused. `onSent(bytes, total)` hears how much of the
   * body is sent (then the body is streamed: Node.js, or a browser that streams request bodies).
   */
  async putAll(
    tds: readonly ThingDescription[],
    options: { onSent?: (bytes: number, total: number) => void } = {},
  ): Promise<BatchResult[]> {
    const body = JSON.stringify(tds);
    const { onSent } = options;
    const response = await this.request("POST", "things/batch", {
      body: onSent === undefined ? body : streamed(new TextEncoder().encode(body), onSent),
      contentType: "application/json",
    });
    const answer = (await this.jsonOf(response)) as { things?: unknown };
    if (!Array.isArray(answer.things) || answer.things.length !== tds.length) {
      throw new HubError({
        status: response.status,
        title: "Unexpected answer",
        detail: `the hub answered the batch of ${tds.length} TDs with no list of as many results`,
      });
    }
    return answer.things as BatchResult[];
  }

  /** Registers an anonymous TD (POST /things); the hub names the id it gave in `Location`. */
  async create(td: ThingDescription): Promise<PutResult> {
    const url = new URL("things", this.url);
    const response = await this.request("POST", url, {
      body: JSON.stringify(td),
      contentType: TD_CONTENT_TYPE,
    });
    const location = response.headers.get("location");
    const path = location === null ? "" : new URL(location, url).pathname;
    // Ids are percent-encoded in the path, so the last `/things/` starts the id.
    const at = path.lastIndexOf("/things/");
    if (at === -1) {
      throw new HubError({
        status: response.status,
        title: "Unexpected answer",
        detail: `the hub registered the TD but its Location (${location ?? "none"}) names no /things/{id}`,
      });
    }
    return { id: decodeURIComponent(path.slice(at + "/things/".length)), created: true };
  }

  /** One TD, with the directory's registration information (`registration.created`, `.modified`…). */
  async get(id: string): Promise<RegisteredThingDescription> {
    const response = await this.request("GET", thingPathOf(id), {
      accept: `${TD_CONTENT_TYPE}, application/json`,
    });
    return (await this.jsonOf(response)) as RegisteredThingDescription;
  }

  /** One page of TDs, in id order. */
  async list(options: ListOptions = {}): Promise<ThingPage> {
    const url = new URL("things", this.url);
    if (options.offset !== undefined) url.searchParams.set("offset", String(options.offset));
    if (options.limit !== undefined) url.searchParams.set("limit", String(options.limit));
    return this.page(url);
  }

  /**
   * Every TD, in id order, fetching page after page by following `Link: rel="next"`. Pages are
   * windows by offset, so a TD removed before the window while the listing runs would shift a
   * TD past it unseen: when the collection's revision changed and a page does not start at or
   * before the last TD yielded, the window is moved back until it does. Every TD registered
   * during the whole listing is yielded, once.
   */
  async *listAll(
    options: { pageSize?: number } = {},
  ): AsyncGenerator<RegisteredThingDescription, void, undefined> {
    const limit = options.pageSize ?? DEFAULT_PAGE_SIZE;
    let url: URL | undefined = new URL("things", this.url);
    url.searchParams.set("limit", String(limit));
    const seen = new Set<string>();
    let last: string | undefined;
    let revision: string | undefined;
    let moves = 0;
    while (url !== undefined) {
      if (seen.has(url.href))
        throw new Error(`the hub's next link leads back to a page already read: ${url.href}`);
      seen.add(url.href);
      let page: ThingPage = await this.page(url);
      const changed = revision !== undefined && page.revision !== revision;
      for (let back = url; changed && last !== undefined && !startsAtOrBefore(page, last);) {
        const offset = Number(back.searchParams.get("offset") ?? Number.NaN);
        if (!Number.isSafeInteger(offset) || offset <= 0) break;
        if (++moves > MAX_WINDOW_MOVES)
          throw new Error(
            `the directory kept changing while it was listed (${MAX_WINDOW_MOVES} pages read again)`,
          );
        back = new URL(back);
        back.searchParams.set("offset", String(Math.max(0, offset - limit)));
        page = await this.page(back);
        // Pages already read are read again from here on: that is no loop of the hub's.
        seen.clear();
      }
      revision = page.revision;
      for (const td of page.things) {
        if (last !== undefined && td.id <= last) continue;
        last = td.id;
        yield td;
      }
      url = page.next === undefined ? undefined : new URL(page.next);
    }
  }

  private async page(url: URL): Promise<ThingPage> {
    const response = await this.request("GET", url, { accept: "application/ld+json, application/json" });
    const things: unknown = await this.jsonOf(response);
    if (!Array.isArray(things)) {
      throw new HubError({
        status: response.status,
        title: "Unexpected answer",
        detail: "the listing is not a JSON array",
      });
    }
    const total = Number(response.headers.get("x-total-count") ?? Number.NaN);
    const next = nextLinkOf(response.headers.get("link"), url);
    const revision = collectionRevisionOf(response.headers.get("link"));
    return {
      things: things as RegisteredThingDescription[],
      ...(Number.isSafeInteger(total) && { total }),
      ...(next !== undefined && { next }),
      ...(revision !== undefined && { revision }),
    };
  }

  async remove(id: string): Promise<void> {
    await this.request("DELETE", thingPathOf(id));
  }

  /** RFC 9535 JSONPath over every TD: the selected values, in id order. */
  async searchJsonPath(query: string): Promise<unknown[]> {
    const url = new URL("search/jsonpath", this.url);
    url.searchParams.set("query", query);
    return (await this.jsonOf(await this.request("GET", url))) as unknown[];
  }

  async health(): Promise<HubHealth> {
    return (await this.jsonOf(await this.request("GET", "health"))) as HubHealth;
  }

  /**
   * Discovery by introduction (POST /discover): the hub fetches the TD at `url`, or the TD
   * directory a host announces at `/.well-known/wot`, and registers what it describes.
   */
  async discover(url: string): Promise<DiscoverResult> {
    const response = await this.request("POST", "discover", {
      body: JSON.stringify({ url }),
      contentType: "application/json",
    });
    return (await this.jsonOf(response)) as DiscoverResult;
  }

  /**
   * A device's user name and password on the hub's embedded MQTT broker (docs/mqtt.md): a
   * registered Thing's (POST /things/{id}/mqtt-credentials), or those of a Homie or Home Assistant
   * device that registers itself (POST /mqtt-credentials), with the topics they open.
   */
  async mqttCredentials(
    device: { thing: string } | { homie: string } | { homeassistant: string },
  ): Promise<MqttCredentials> {
    const response =
      "thing" in device
        ? await this.request("POST", `${thingPathOf(device.thing)}/mqtt-credentials`)
        : await this.request("POST", "mqtt-credentials", {
            body: JSON.stringify(device),
            contentType: "application/json",
          });
    return (await this.jsonOf(response)) as MqttCredentials;
  }

  /** Every MQTT credential the hub issued, revoked ones too, never a password (GET /mqtt-credentials). */
  async listMqttCredentials(): Promise<IssuedMqttCredentials[]> {
    const response = await this.request("GET", "mqtt-credentials");
    return ((await this.jsonOf(response)) as { credentials: IssuedMqttCredentials[] }).credentials;
  }

  /** Revokes an MQTT credential: its connections are closed, and it signs in no more. */
  async revokeMqttCredentials(username: string): Promise<void> {
    await this.request("DELETE", `mqtt-credentials/${encodeURIComponent(username).replace(/%3A/gi, ":")}`);
  }
}

/** An MQTT credential as the hub lists it: whom it opens, its topics, its issue, use and revocation. */
export interface IssuedMqttCredentials {
  username: string;
  kind: "thing" | "homie" | "homeassistant";
  publish: string[];
  subscribe: string[];
  /** Absent for one issued before the hub kept records (listed from its first use). */
  issuedAt?: string;
  issuedBy?: string;
  lastUsedAt?: string;
  revokedAt?: string;
  revokedBy?: string;
  revokedBecause?: string;
}

/** A device's credentials on the embedded broker, with the topics they open and when they were issued. */
export interface MqttCredentials {
  username: string;
  password: string;
  issuedAt?: string;
  issuedBy?: string;
  publish?: string[];
  subscribe?: string[];
}

/** What `discover` registered, and what it refused from a directory's listing. */
export interface DiscoverResult {
  registered: string[];
  /** Those of `registered` whose TD replaced one the hub held. */
  replaced: string[];
  /** Those of `registered` the hub already held exactly so (nothing recorded); absent from older hubs. */
  unchanged?: string[];
  refused: { index: number; id?: string; detail: string }[];
  directory?: string;
}
