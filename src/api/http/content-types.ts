// Request bodies: JSON only (TD, plain JSON, merge patch), parsed strictly (duplicate member
// names are an error), within the configured size limit. Each route takes plain JSON and only
// the JSON media types that mean something to it (acceptedMediaTypes).
import { errorCodes, type FastifyInstance, type FastifyRequest } from "fastify";
import {
  UnsupportedMediaError,
  ValidationError,
  echoed,
  parseExactJson,
  utf8Text,
} from "../../core/index.js";

export const TD_CONTENT_TYPE = "application/td+json";
export const MERGE_PATCH_CONTENT_TYPE = "application/merge-patch+json";
/** JSON-LD, which a TD is: the listing is served so, and older TDD clients send TDs so. */
export const JSON_LD_CONTENT_TYPE = "application/ld+json";

/**
 * The media types a request to this route may send: application/json everywhere; a TD where
 * Things are registered (PUT /things/{id}, POST /things); only a merge patch where a PATCH goes
 * (WoT Discovery §7.3.2.1.3, tdd-things-update-partial-contenttype: plain JSON names no patch
 * format, RFC 5789 §2.2).
 */
export function acceptedMediaTypes(request: FastifyRequest): string[] {
  if (request.method === "PATCH") return [MERGE_PATCH_CONTENT_TYPE];
  const route = request.routeOptions.url ?? "";
  if (route === "/things" || route === "/things/:id")
    return ["application/json", JSON_LD_CONTENT_TYPE, TD_CONTENT_TYPE];
  return ["application/json"];
}

/**
 * For a route that reads no body (`preValidation`): one sent to it was ignored while the request
 * went ahead, such as `{"homie": …}` meant for POST /mqtt-credentials, which issued a Thing's
 * credentials instead. An empty object is taken as none.
 */
export async function refuseBody(request: FastifyRequest): Promise<void> {
  const body = request.body;
  // `{}` says nothing that could be ignored: some clients send it with every POST.
  if (body === undefined || (isPlainObject(body) && Object.keys(body).length === 0)) return;
  const route = (request.routeOptions.url ?? "").replace(/:(\w+)/g, "{$1}");
  throw new ValidationError(`${request.method} ${route} takes no body: send it without one`, [
    { pointer: "/body", message: "must be absent" },
  ]);
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

export function registerContentTypes(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    ["application/json", TD_CONTENT_TYPE, JSON_LD_CONTENT_TYPE, MERGE_PATCH_CONTENT_TYPE],
    { parseAs: "buffer" },
    (request, body, done) => {
      // The parser serves every route; a TD or a merge patch sent where neither means anything
      // is refused as any other unknown type is (415), not read as plain JSON.
      const [essence = "", ...parameters] = (request.headers["content-type"] ?? "").split(";");
      const type = essence.trim().toLowerCase();
      if (!acceptedMediaTypes(request).includes(type)) {
        done(new errorCodes.FST_ERR_CTP_INVALID_MEDIA_TYPE(type), undefined);
        return;
      }
      // JSON is UTF-8 (RFC 8259 §8.1); a body in another charset, or compressed, would be read
      // as something it is not.
      const charset = parameters
        .map((p) => p.trim().toLowerCase())
        .find((p) => p.startsWith("charset="))
        ?.slice("charset=".length)
        .replace(/^"(.*)"$/, "$1");
      if (charset !== undefined && charset !== "utf-8" && charset !== "utf8") {
        done(
          new UnsupportedMediaError(`A JSON body is UTF-8: charset=${echoed(charset)} is not taken`),
          undefined,
        );
        return;
      }
      const coding = request.headers["content-encoding"]?.trim().toLowerCase();
      if (coding !== undefined && coding !== "" && coding !== "identity") {
        done(
          new UnsupportedMediaError(
            `The hub takes request bodies as they are: Content-Encoding ${coding} is not taken`,
          ),
          undefined,
        );
        return;
      }
      // Content-Length: 0 is no body (RFC 9110 §8.6), whatever Content-Type a client sends
      // with every request: each route then says whether it needs one (a DELETE, an action
      // without input, a POST …/mqtt-credentials take none, and were refused for "no body").
      if ((body as Buffer).length === 0) {
        done(null, undefined);
        return;
      }
      let text: string;
      try {
        text = utf8Text(body as Buffer, "The request body");
      } catch (err) {
        done(err as Error, undefined);
        return;
      }
      // JSON-text is one value between optional whitespace (RFC 8259 §2): whitespace alone is a
      // body, and no JSON, wherever it is sent (Content-Length: 0 is the way to send none).
      // A UTF-8 byte order mark, which utf8Text drops, is no whitespace: said as what it is.
      if (/^[ \t\n\r]*$/.test(text)) {
        const bytes = (body as Buffer).length;
        const what = text === "" ? "a byte order mark" : "whitespace";
        done(
          new ValidationError(
            `The request body is only ${what} (${bytes} byte${bytes === 1 ? "" : "s"}), which is no JSON value: send one, or no body at all (Content-Length: 0)`,
            [{ pointer: "", message: `is only ${what}, not a JSON value` }],
          ),
          undefined,
        );
        return;
      }
      try {
        done(null, parseExactJson(text));
      } catch (err) {
        done(err as Error, undefined);
      }
    },
  );
}
