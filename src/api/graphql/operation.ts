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
import type { HubConfig, Hub, Principal } from "../../hub/index.js";

type GraphqlLimits = HubConfig["graphql"];
import { ERROR_CODES, graphqlError } from "./errors.js";
import { limitsRule } from "./limits.js";

export interface OperationRequest {
  query: string;
  variables?: Record<string, unknown> | null | undefined;
  operationName?: string | null | undefined;
}

export type PreparedOperation =
  | { ok: true; document: DocumentNode; operation: OperationDefinitionNode }
  | { ok: false; errors: readonly GraphQLError[] };

/** The largest query text accepted, in characters (bodies are bounded too; this bounds parsing). */
const MAX_QUERY_LENGTH = 100_000;
/** Parsing stops after this many tokens: a huge flat document is refused before it costs much. */
const MAX_TOKENS = 20_000;

/** Validation rules: the specification's, then the hub's limits. */
export function validationRules(limits: GraphqlLimits) {
  return [...specifiedRules, limitsRule(limits)];
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
  let document: DocumentNode;
  try {
    document = parse(request.query, { maxTokens: MAX_TOKENS });
  } catch (err) {
    const error = err as GraphQLError;
    return refuse(
      new GraphQLError(error.message, {
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
          ? new GraphQLError(e.message, {
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
          ? `The document has no operation named "${request.operationName}"`
          : "The document has several operations: name the one to run (operationName)",
        ERROR_CODES.badRequest,
      ),
    );
  }
  const refusal = authorise(hub, operation, principal);
  return refusal ? refuse(refusal) : { ok: true, document, operation };
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
