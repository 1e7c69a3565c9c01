// One GraphQL operation from the outside, checked before it runs, the same way over HTTP and over
// WebSocket: parsed, validated (with the depth and cost limits), its operation picked, and
// authorised as the HTTP API authorises (reads open unless `--auth read`, commands need an admin).
import {
  GraphQLError,
  OperationTypeNode,
  getOperationAST,
  parse,
  specifiedRules,
  validate,
  type DocumentNode,
  type GraphQLSchema,
  type OperationDefinitionNode,
} from "graphql";
import { quoted } from "../../core/index.js";
import type { HubConfig, Hub, Principal } from "../../hub/index.js";

type GraphqlLimits = HubConfig["graphql"];
import { ERROR_CODES, boundedMessage, graphqlError } from "./errors.js";
import { limitsRule } from "./limits.js";

export interface OperationRequest {
  query: string;
  variables?: Record<string, unknown> | null | undefined;
  operationName?: string | null | undefined;
}

export type PreparedOperation =
  | { ok: true; document: DocumentNode; operation: OperationDefinitionNode }
  /** `operation` when the document names one that is refused (e.g. for who asks). */
  | { ok: false; errors: readonly GraphQLError[]; operation?: OperationDefinitionNode };

/** The largest query text accepted, in characters (bodies are bounded too; this bounds parsing). */
const MAX_QUERY_LENGTH = 100_000;
/** Parsing stops after this many tokens: a huge flat document is refused before it costs much. */
const MAX_TOKENS = 20_000;

/** Validation rules: the specification's, then the hub's limits. */
export function validationRules(limits: GraphqlLimits) {
  return [...specifiedRules, limitsRule(limits)];
}

/**
 * How deep `{`, `[` and `(` may nest in a document: graphql-js parses recursively, and a query of
 * 1,500 nested selections (or a literal 5,000 deep) overflowed its stack. Selections stop at the
 * depth limit anyway; values (a JSON literal) may nest MAX_JSON_DEPTH levels.
 */
const MAX_NESTING = 160;

/** The deepest nesting of brackets in a document, strings and comments aside; stops past `limit`. */
function nestingOf(text: string, limit: number): number {
  let depth = 0;
  let deepest = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === "#") {
      const end = text.indexOf("\n", i);
      i = end === -1 ? text.length : end;
    } else if (c === '"') {
      if (text.startsWith('"""', i)) {
        let end = text.indexOf('"""', i + 3);
        while (end !== -1 && text[end - 1] === "\\") end = text.indexOf('"""', end + 1);
        i = end === -1 ? text.length : end + 2;
      } else {
        for (i++; i < text.length && text[i] !== '"' && text[i] !== "\n"; i++) if (text[i] === "\\") i++;
      }
    } else if (c === "{" || c === "[" || c === "(") {
      deepest = Math.max(deepest, ++depth);
      if (deepest > limit) return deepest;
    } else if (c === "}" || c === "]" || c === ")") {
      depth--;
    }
  }
  return deepest;
}

function refuse(error: GraphQLError): PreparedOperation {
  return { ok: false, errors: [error] };
}

export function prepareOperation(
  hub: Hub,
  schema: GraphQLSchema,
  rules: ReturnType<typeof validationRules>,
  request: OperationRequest,
  principal: Principal | undefined,
): PreparedOperation {
  if (request.query.length > MAX_QUERY_LENGTH) {
    return refuse(
      graphqlError(
        `The query is ${request.query.length} characters long; at most ${MAX_QUERY_LENGTH}`,
        ERROR_CODES.cost,
      ),
    );
  }
  if (nestingOf(request.query, MAX_NESTING) > MAX_NESTING) {
    return refuse(
      graphqlError(
        `The document nests more than ${MAX_NESTING} levels of braces, brackets and parentheses; this hub parses no deeper`,
        ERROR_CODES.depth,
      ),
    );
  }
  let document: DocumentNode;
  try {
    document = parse(request.query, { maxTokens: MAX_TOKENS });
  } catch (err) {
    const error = err as GraphQLError;
    return refuse(
      new GraphQLError(boundedMessage(error.message), {
        ...(error.source && error.positions && { source: error.source, positions: error.positions }),
        extensions: { code: ERROR_CODES.parse },
      }),
    );
  }
  const errors = validate(schema, document, rules, { maxErrors: 20 });
  if (errors.length > 0) {
    return {
      ok: false,
      errors: errors.map((e) =>
        e.extensions.code === undefined
          ? new GraphQLError(boundedMessage(e.message), {
              ...(e.nodes && { nodes: e.nodes }),
              extensions: { code: ERROR_CODES.validation },
            })
          : e,
      ),
    };
  }
  const operation = getOperationAST(document, request.operationName ?? undefined);
  if (!operation) {
    return refuse(
      graphqlError(
        request.operationName
          ? `The document has no operation named ${quoted(request.operationName)}`
          : "The document has several operations: name the one to run (operationName)",
        ERROR_CODES.badRequest,
      ),
    );
  }
  const refusal = authorise(hub, operation, principal);
  return refusal ? { ok: false, errors: [refusal], operation } : { ok: true, document, operation };
}

/** The HTTP API's rules, per operation: reads open unless `--auth read`; commands need an admin. */
function authorise(hub: Hub, operation: OperationDefinitionNode, principal: Principal | undefined) {
  if (operation.operation === OperationTypeNode.MUTATION) {
    if (!principal)
      return graphqlError("Commands (mutations) require a bearer token", ERROR_CODES.unauthenticated);
    if (!principal.admin) {
      return graphqlError(
        `The token of "${principal.name}" may read but not change anything`,
        ERROR_CODES.forbidden,
      );
    }
    return undefined;
  }
  if (hub.config.authRead && !principal) {
    return graphqlError("This hub requires a bearer token for reads", ERROR_CODES.unauthenticated);
  }
  return undefined;
}
