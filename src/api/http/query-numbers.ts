// Numbers in a query string as people write them: decimal digits. The route schemas' coercion
// (ajv's coerceTypes) would take anything Number() reads: ?seq=0x10 proved seq 16, ?seq=1e2 seq
// 100, ?seq=%201 seq 1, and 99999999999999999999 came out as a rounded 1e20. A parameter given
// twice is said so, and one that no route reads is refused, not ignored.
import type { FastifyInstance } from "fastify";
import { ValidationError, readInteger, wholeNumbers, quoted } from "../../core/index.js";

const NUMBER = /^-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?$/;

/**
 * The schema keyword that marks a query parameter as one value listing several, separated by
 * commas (`kind=reported,desired`): given twice, it is told so. A keyword, not its description's
 * words, so that rewording a description changes no answer. Ajv takes it as an annotation
 * (server.ts), and OpenAPI 3.1 as a specification extension.
 */
export const COMMA_LIST = "x-comma-list";

interface QueryProperty {
  type?: unknown;
  minimum?: unknown;
  maximum?: unknown;
  [COMMA_LIST]?: unknown;
}

interface QuerySchema {
  properties?: Record<string, QueryProperty>;
}

/** "a whole number from 1 to 100000" for an integer parameter, with the bounds its schema gives. */
export function integerWords(property: QueryProperty): string {
  const { minimum, maximum } = property;
  if (typeof minimum !== "number") return "a whole number";
  return wholeNumbers(minimum, typeof maximum === "number" ? maximum : undefined);
}

export function registerQueryNumbers(app: FastifyInstance): void {
  app.addHook("preValidation", async (request) => {
    const schema = request.routeOptions.schema?.querystring as QuerySchema | undefined;
    if (schema?.properties === undefined) return;
    const query = request.query as Record<string, unknown>;
    for (const [name, property] of Object.entries(schema.properties)) {
      const raw = query[name];
      // ?limit=1&limit=2 comes as a list, which a schema of one value refused as "must be
      // integer" or "must be string": the parameter is right, given more than once. A parameter
      // that takes several (`match`) has no single type.
      if (Array.isArray(raw) && typeof property.type === "string") {
        const list = property[COMMA_LIST] === true ? " (a list is separated by commas)" : "";
        const message = `is given ${raw.length} times: give it once${list}`;
        throw new ValidationError(`Invalid query: query/${name} ${message}`, [
          { pointer: `/query/${name}`, message },
        ]);
      }
      if (typeof raw !== "string") continue;
      let message: string | undefined;
      if (property.type === "integer") {
        const value = readInteger(raw);
        if (value === "form")
          message = `must be ${integerWords(property)}, in decimal digits without a leading zero`;
        else if (value === "range") message = `is out of range: at most ${Number.MAX_SAFE_INTEGER}`;
      } else if (property.type === "number" && !NUMBER.test(raw))
        message = "must be number, in decimal digits";
      if (message !== undefined) {
        throw new ValidationError(`Invalid query: query/${name} ${message}, not ${quoted(raw)}`, [
          { pointer: `/query/${name}`, message },
        ]);
      }
    }
  });
}

/**
 * The query of an interaction route (a property, an action, an event) is the affordance's URI
 * variables, which it checks against the Thing's TD itself.
 */
const URI_VARIABLE_ROUTE = /^\/things\/:id\/(?:properties|actions|events)\//;

/**
 * Gives every route of the API (one with `tags`) that declares no query parameters a schema that
 * takes none: `GET /changes/5?thing=urn:x` or `DELETE /things/{id}?dryRun=true` answered as if
 * the parameter were not there, a filter or an option silently not applied. Registered before the
 * routes; the web UI's pages (hidden) take any query, as links to them may carry one.
 */
export function refuseUnknownQuery(app: FastifyInstance): void {
  app.addHook("onRoute", (route) => {
    const schema = route.schema;
    if (schema === undefined || schema.hide === true || !Array.isArray(schema.tags)) return;
    if (schema.querystring !== undefined || URI_VARIABLE_ROUTE.test(route.url)) return;
    schema.querystring = { type: "object", additionalProperties: false, properties: {} };
  });
}
