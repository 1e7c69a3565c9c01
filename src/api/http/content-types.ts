// Request bodies: JSON only (TD, plain JSON, merge patch), parsed strictly (duplicate member
// names are an error), within the configured size limit.
import type { FastifyInstance } from "fastify";
import { ValidationError, parseJsonStrict } from "../../core/index.js";

export const TD_CONTENT_TYPE = "application/td+json";
export const MERGE_PATCH_CONTENT_TYPE = "application/merge-patch+json";

export function registerContentTypes(app: FastifyInstance): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    ["application/json", TD_CONTENT_TYPE, MERGE_PATCH_CONTENT_TYPE],
    { parseAs: "string" },
    (_request, body, done) => {
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
