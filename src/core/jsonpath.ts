// JSONPath (RFC 9535) queries over the directory. As in W3C WoT Discovery §7.3.2.4 the query's
// root is the collection of all TDs (a JSON array), so `$[?@.title=='Lamp'].id` selects ids.
import { createRequire } from "node:module";
import type * as JsonP3 from "json-p3";
import type { JSONPathEnvironment, JSONPathQuery } from "json-p3";
import { ValidationError } from "./errors.js";
import { REGEXP_BUDGET_MS, quickToMatch, withinBudget } from "./time-budget.js";

// Loaded on first use, like Ajv (lazy-ajv.ts): most programs that import core never search.
const require = createRequire(import.meta.url);
let jsonp3: typeof JsonP3 | undefined;
let environment: JSONPathEnvironment | undefined;

/** Selectors whose result depends only on each element, not on its position in the array. */
const POSITION_FREE = new Set(["WildcardSelector", "FilterSelector", "NameSelector"]);

export interface CompiledJsonPath {
  /**
   * True when the query over the collection gives the same values as the query over each TD
   * wrapped in a one-element array, concatenated: the directory can then stream TDs instead of
   * holding the whole collection (for a leading `..`, TD by TD is one of the orders RFC 9535
   * §2.5.2.2 allows). False for a bare `$`, for index or slice selectors on the
   * collection (`$[0]`, `$[-3:]`) and for queries that refer to the root again inside a filter.
   */
  readonly elementwise: boolean;
  /** The values the query selects in `document`, in document order. */
  values(document: unknown): unknown[];
}

/**
 * `match()` and `search()` (RFC 9535 §2.4.6–7) run a regular expression from the query, which
 * anyone who may read can send: each call runs with a time budget, and a pattern that backtracks
 * past it stops the query with a ValidationError instead of blocking the hub.
 */
function withBoundedRegExps(env: JSONPathEnvironment): JSONPathEnvironment {
  for (const name of ["match", "search"]) {
    const builtin = env.functionRegister.get(name);
    if (builtin === undefined) continue;
    env.functionRegister.set(name, {
      argTypes: builtin.argTypes,
      returnType: builtin.returnType,
      call: (...args: unknown[]): unknown => {
        const [text, pattern] = args;
        if (typeof text !== "string" || typeof pattern !== "string" || quickToMatch(pattern, text))
          return builtin.call(...args);
        const result = withinBudget(() => builtin.call(...args), REGEXP_BUDGET_MS);
        if (result.done) return result.value;
        throw new ValidationError(
          `The regular expression of ${name}() ran longer than ${REGEXP_BUDGET_MS} ms on one value (it backtracks too much); simplify it`,
          [{ pointer: "/query", message: `${name}() pattern too slow` }],
        );
      },
    });
  }
  return env;
}

/**
 * Compiles an RFC 9535 query; a syntax error becomes a ValidationError naming the position, at
 * `pointer` (where the query came from: a query parameter, a GraphQL argument).
 */
export function compileJsonPath(query: string, pointer = "/query"): CompiledJsonPath {
  if (query.length === 0)
    throw new ValidationError("The JSONPath query is empty; try $[*].title", [
      { pointer, message: "is empty" },
    ]);
  if (query.length > 4096)
    throw new ValidationError("The JSONPath query is longer than 4096 characters", [
      { pointer, message: "is longer than 4096 characters" },
    ]);
  jsonp3 ??= require("json-p3") as typeof JsonP3;
  environment ??= withBoundedRegExps(new jsonp3.JSONPathEnvironment({ strict: true, maxRecursionDepth: 64 }));
  let compiled: JSONPathQuery;
  try {
    compiled = environment.compile(query);
  } catch (err) {
    if (err instanceof jsonp3.JSONPathError) {
      throw new ValidationError(`Invalid JSONPath query: ${err.message}`, [
        { pointer, message: err.message },
      ]);
    }
    throw err;
  }
  const first = compiled.segments[0];
  const elementwise =
    first !== undefined &&
    first.selectors.every((s) => POSITION_FREE.has(s.constructor.name)) &&
    compiled.toString().split("$").length === 2;
  return {
    elementwise,
    values: (document) => compiled.query(document as Parameters<JSONPathQuery["query"]>[0]).values(),
  };
}
