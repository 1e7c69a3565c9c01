// JSONPath (RFC 9535) queries over TDs: compiled once, evaluated against each document.
import { JSONPathEnvironment, JSONPathError, type JSONPathQuery } from "json-p3";
import { ValidationError } from "./errors.js";

const environment = new JSONPathEnvironment({ strict: true, maxRecursionDepth: 64 });

export interface CompiledJsonPath {
  /** The values the query selects in `document`, in document order. */
  values(document: unknown): unknown[];
}

/** Compiles an RFC 9535 query; a syntax error becomes a ValidationError naming the position. */
export function compileJsonPath(query: string): CompiledJsonPath {
  if (query.length === 0) throw new ValidationError("The JSONPath query is empty; try $..title");
  if (query.length > 4096) throw new ValidationError("The JSONPath query is longer than 4096 characters");
  let compiled: JSONPathQuery;
  try {
    compiled = environment.compile(query);
  } catch (err) {
    if (err instanceof JSONPathError) {
      throw new ValidationError(`Invalid JSONPath query: ${err.message}`, [
        { pointer: "/query", message: err.message },
      ]);
    }
    throw err;
  }
  return {
    values: (document) => compiled.query(document as Parameters<JSONPathQuery["query"]>[0]).values(),
  };
}
