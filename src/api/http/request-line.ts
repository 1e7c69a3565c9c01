// What HTTP/1.1 requires of a request's target and Host before anything is done for it (RFC 9112
// §3.2): one Host, not empty, on an HTTP/1.1 request; the asterisk-form only with OPTIONS. Node
// answered a request without Host with an empty 400 (no problem document), took the first of
// several Host headers (a proxy in front may route by another), and GET * reached the web UI.
import type { FastifyInstance, FastifyRequest } from "fastify";
import { ValidationError } from "../../core/index.js";

/** The refusal of a request whose Host or target HTTP/1.1 does not allow, or undefined. */
export function malformedRequestLine(request: FastifyRequest): ValidationError | undefined {
  const raw = request.raw;
  const hosts = raw.rawHeaders.filter((_, i) => i % 2 === 0 && raw.rawHeaders[i]?.toLowerCase() === "host");
  const host = (message: string, detail: string) =>
    new ValidationError(detail, [{ pointer: "/headers/host", message }]);
  if (hosts.length > 1)
    return host(
      "must be given once",
      `The request has ${hosts.length} Host headers; send one (RFC 9112 §3.2)`,
    );
  if (hosts.length === 0 && raw.httpVersion === "1.1")
    return host(
      "is required",
      "An HTTP/1.1 request names the hub in a Host header (RFC 9112 §3.2): this one has none",
    );
  if (hosts.length === 1 && (request.headers.host ?? "").trim() === "")
    return host(
      "must name the hub",
      "The request's Host header is empty; name the hub in it (RFC 9112 §3.2)",
    );
  if (raw.url === "*" && request.method !== "OPTIONS")
    return new ValidationError(
      `The request target * is only for OPTIONS (RFC 9112 §3.2.4), not ${request.method}: name a resource such as /things`,
      [{ pointer: "/target", message: "must be a path but for OPTIONS" }],
    );
  return undefined;
}

export function registerRequestLineCheck(app: FastifyInstance): void {
  app.addHook("onRequest", async (request) => {
    const refusal = malformedRequestLine(request);
    if (refusal !== undefined) throw refusal;
  });
}
