// Request bodies: JSON only (TD, plain JSON, merge patch), parsed strictly (duplicate member
// names are an error), within the configured size limit. Each route takes plain JSON and only
// the JSON media types that mean something to it (acceptedMediaTypes).
import { errorCodes, type FastifyInstance, type FastifyRequest } from "fastify";
import { ValidationError, parseJsonStrict } from "../../core/index.js";

export const TD_CONTENT_TYPE = "application/td+json";
export const MERGE_PATCH_CONTENT_TYPE = "application/merge-patch+json";

/**
 * The media types a request to this route may send: application/json everywhere; a TD where
 * Things are registered (PUT /things/{id}, POST /things); a merge patch where a PATCH goes.
 */
export function acceptedMediaTypes(request: FastifyRequest): string[] {
  if (request.method === "PATCH") return ["application/json", MERGE_PATCH_CONTENT_TYPE];
  const route = request.routeOptions.url ?? "";
  if (route === "/things" || route === "/things/:id") return ["application/json", TD_CONTENT_TYPE];
  return ["application/json"];
}

export function registerContentTypes(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    ["application/json", TD_CONTENT_TYPE, MERGE_PATCH_CONTENT_TYPE],
    { parseAs: "string" },
    (request, body, done) => {
      // The parser serves every route; a TD or a merge patch sent where neither means anything
      // is refused as any other unknown type is (415), not read as plain JSON.
      const type = request.headers["content-type"]?.split(";")[0]?.trim().toLowerCase() ?? "";
      if (!acceptedMediaTypes(request).includes(type)) {
        done(new errorCodes.FST_ERR_CTP_INVALID_MEDIA_TYPE(type), undefined);
        return;
      }
      const text = body as string;
      if (text.trim().length === 0) {
        done(new ValidationError("The request has no body"), undefined);
        return;
      }
      try {
        done(null, parseJsonStrict(text));
      } catch (err) {
        done(err as Error, undefined);
      }
    },
  );
}
