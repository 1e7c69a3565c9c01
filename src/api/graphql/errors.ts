// The hub's errors as GraphQL errors: each carries `extensions.code` (a stable name a program can
// switch on) and, for invalid input, the failing places as JSON pointers — the GraphQL face of
// the problem documents of src/api/http/problem.ts.
import { GraphQLError, type GraphQLFormattedError } from "graphql";
import {
  BatchRefusedError,
  BindingError,
  HyperthingsError,
  ValidationError,
  quoted,
} from "../../core/index.js";

/** The codes this API puts in `extensions.code`. */
export const ERROR_CODES = {
  parse: "GRAPHQL_PARSE_FAILED",
  validation: "GRAPHQL_VALIDATION_FAILED",
  badInput: "BAD_USER_INPUT",
  notFound: "NOT_FOUND",
  conflict: "CONFLICT",
  unauthenticated: "UNAUTHENTICATED",
  forbidden: "FORBIDDEN",
  unavailable: "UNAVAILABLE",
  binding: "BINDING_FAILED",
  depth: "DEPTH_LIMIT_EXCEEDED",
  cost: "COST_LIMIT_EXCEEDED",
  first: "PAGE_LIMIT_EXCEEDED",
  answerSize: "ANSWER_TOO_LARGE",
  rate: "RATE_LIMITED",
  subscriptions: "TOO_MANY_SUBSCRIPTIONS",
  badRequest: "BAD_REQUEST",
  internal: "INTERNAL_SERVER_ERROR",
} as const;

export type ErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES];

const CODE_OF: Record<string, ErrorCode> = {
  validation: ERROR_CODES.badInput,
  "batch-refused": ERROR_CODES.badInput,
  "not-found": ERROR_CODES.notFound,
  conflict: ERROR_CODES.conflict,
  unauthorized: ERROR_CODES.unauthenticated,
  forbidden: ERROR_CODES.forbidden,
  unavailable: ERROR_CODES.unavailable,
  binding: ERROR_CODES.binding,
};

export function graphqlError(message: string, code: ErrorCode, extensions: Record<string, unknown> = {}) {
  return new GraphQLError(message, { extensions: { code, ...extensions } });
}

/**
 * A message of graphql-js's own (`Cannot query field "…" on type "Query".`) with each name or
 * value it quotes bounded as the hub's own messages bound them (`quoted()`): graphql-js repeats a
 * 10,000-character field name whole.
 */
export function boundedMessage(message: string): string {
  return message.replace(/"([^"]{81,})"/g, (_, text: string) => quoted(text));
}

/** The extensions a hub error carries: its code, and what a person needs to act on it. */
function extensionsOf(error: HyperthingsError): Record<string, unknown> {
  const extensions: Record<string, unknown> = { code: CODE_OF[error.code] ?? ERROR_CODES.internal };
  if (error instanceof ValidationError && error.errors.length > 0) {
    extensions.errors = error.errors.map((e) => ({ pointer: e.pointer, detail: e.message }));
  }
  if (error instanceof BatchRefusedError) {
    extensions.refused = error.listed();
    extensions.errors = error.listed().flatMap((r) => r.errors);
  }
  if (error instanceof BindingError && error.thing !== undefined) extensions.thing = error.thing;
  if ("retryAfter" in error && typeof error.retryAfter === "number") extensions.retryAfter = error.retryAfter;
  return extensions;
}

/**
 * Formats an error for the client. Errors of the hub keep their message and get their code;
 * anything unexpected is logged by the caller and answered as an internal error, without details.
 */
export function formatError(error: GraphQLError, onInternal?: (err: unknown) => void): GraphQLFormattedError {
  const original = error.originalError;
  if (original instanceof HyperthingsError) {
    return { ...error.toJSON(), message: original.message, extensions: extensionsOf(original) };
  }
  const formatted = error.toJSON();
  if (formatted.extensions?.code !== undefined) return formatted;
  if (original !== undefined && !(original instanceof GraphQLError)) {
    // A failure inside a resolver that is not one of the hub's: coercion of input is the one
    // expected kind (graphql-js reports it as a GraphQLError, handled below).
    onInternal?.(original);
    return {
      message: "The hub failed to answer; see its log",
      ...(formatted.locations && { locations: formatted.locations }),
      ...(formatted.path && { path: formatted.path }),
      extensions: { code: ERROR_CODES.internal },
    };
  }
  // graphql-js's own errors before execution (unknown fields, wrong argument types) and input coercion.
  return {
    ...formatted,
    message: boundedMessage(formatted.message),
    extensions: { ...formatted.extensions, code: ERROR_CODES.validation },
  };
}
