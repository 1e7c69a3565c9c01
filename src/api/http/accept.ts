// Content negotiation (RFC 9110 §12.5.1): each route answers in the media types its schema's
// `produces` names (application/json when it names none); a request whose Accept takes none of
// them, nor the problem documents errors come in, is a 406 before anything is done for it.
import type { FastifyInstance, FastifyRequest } from "fastify";
import { NotAcceptableError } from "../../core/index.js";

/** What errors are answered in: a client that takes only them still gets its answer. */
const PROBLEM = "application/problem+json";
const DEFAULT_ANSWERS = ["application/json"] as const;
/** What a Server-Sent Events route answers in. */
export const EVENT_STREAM_ANSWERS = ["text/event-stream"] as const;

/**
 * The weight (RFC 9110 §12.5.1 `q`) an Accept header gives a media type: that of its most
 * specific matching range (`type/subtype` over `type/*` over `*\/*`), 0 when none matches.
 */
export function acceptWeight(accept: string, mediaType: string): number {
  const essence = mediaType.split(";", 1)[0]?.trim().toLowerCase() ?? "";
  const [type] = essence.split("/");
  let best = { specificity: -1, q: 0 };
  for (const range of accept.split(",")) {
    const [name = "", ...parameters] = range.split(";").map((part) => part.trim().toLowerCase());
    const specificity = name === essence ? 2 : name === `${type}/*` ? 1 : name === "*/*" ? 0 : -1;
    if (specificity <= best.specificity) continue;
    const q = parameters.find((p) => p.startsWith("q="))?.slice(2);
    const weight = q === undefined ? 1 : Number(q);
    best = { specificity, q: Number.isFinite(weight) ? Math.min(Math.max(weight, 0), 1) : 0 };
  }
  return best.q;
}

/** The media types the route of `request` answers with. */
export function answeredMediaTypes(request: FastifyRequest): readonly string[] {
  const produces = request.routeOptions.schema?.produces;
  return produces !== undefined && produces.length > 0 ? produces : DEFAULT_ANSWERS;
}

/**
 * Throws a 406 when the request's Accept takes none of `answers` (nor problem documents). No
 * Accept, or an empty one, takes anything.
 */
export function assertAcceptable(request: FastifyRequest, answers: readonly string[]): void {
  const accept = request.headers.accept?.trim();
  if (accept === undefined || accept === "") return;
  if ([...answers, PROBLEM].some((type) => acceptWeight(accept, type) > 0)) return;
  const path = request.url.split("?", 1)[0] ?? "";
  const types = answers.map((type) => type.split(";", 1)[0]?.trim() ?? type);
  const shown = accept.length > 200 ? `${accept.slice(0, 200)}…` : accept;
  throw new NotAcceptableError(
    `${request.method} ${path} answers ${types.join(" or ")}, which the request's Accept (${shown}) does not take`,
    types,
  );
}

export function registerAcceptCheck(app: FastifyInstance): void {
  app.addHook("onRequest", async (request) => {
    if (request.is404) return;
    assertAcceptable(request, answeredMediaTypes(request));
  });
}
