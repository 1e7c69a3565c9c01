// GraphQL over HTTP (the GraphQL-over-HTTP draft): POST /graphql with a JSON body for any query or
// mutation, GET /graphql?query=… for queries only. Answers `application/graphql-response+json`
// when the client accepts it (request errors then get a 4xx status), `application/json` otherwise.
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { OperationTypeNode, execute, type GraphQLError, type GraphQLSchema } from "graphql";
import { ValidationError, parseExactJson } from "../../core/index.js";
import type { Hub } from "../../hub/index.js";
import { ERROR_CODES, formatError, graphqlError } from "./errors.js";
import { AnswerBudget, boundedResult, rootTypenameBytes } from "./answer-size.js";
import { TokenBucket } from "./limits.js";
import { prepareOperation, validationRules, type OperationRequest } from "./operation.js";
import type { GraphqlContext } from "./resolvers.js";

export const GRAPHQL_RESPONSE_TYPE = "application/graphql-response+json";

const requestBody = {
  type: "object",
  required: ["query"],
  properties: {
    query: { type: "string", minLength: 1 },
    variables: { type: ["object", "null"] },
    operationName: { type: ["string", "null"] },
    extensions: { type: ["object", "null"] },
  },
} as const;

const requestQuery = {
  type: "object",
  required: ["query"],
  additionalProperties: false,
  properties: {
    query: { type: "string", minLength: 1 },
    variables: { type: "string", description: "The variables, as JSON" },
    operationName: { type: "string" },
    extensions: { type: "string" },
  },
} as const;

/** A request error's HTTP status under graphql-response+json: who is refused, or a bad request. */
function requestErrorStatus(errors: readonly GraphQLError[]): number {
  const code = errors[0]?.extensions.code;
  if (code === ERROR_CODES.unauthenticated) return 401;
  if (code === ERROR_CODES.forbidden) return 403;
  return 400;
}

/** Clients whose operation rate is tracked at once; past it the oldest are forgotten. */
const MAX_TRACKED_CLIENTS = 10_000;

export function graphqlRoutes(hub: Hub, schema: GraphQLSchema) {
  const limits = hub.config.graphql;
  const rules = validationRules(limits);
  // The socket's rate, per client address over HTTP (a Map keeps insertion order: oldest first).
  const buckets = new Map<string, TokenBucket>();
  const admit = (address: string): boolean => {
    let bucket = buckets.get(address);
    if (!bucket) {
      if (buckets.size >= MAX_TRACKED_CLIENTS) buckets.delete(buckets.keys().next().value as string);
      bucket = new TokenBucket(limits.operationsPerSecond, limits.operationsBurst);
      buckets.set(address, bucket);
    }
    return bucket.take();
  };

  const run = async (
    request: FastifyRequest,
    reply: FastifyReply,
    operationRequest: OperationRequest,
    method: "GET" | "POST",
  ): Promise<FastifyReply> => {
    const accept = request.headers.accept ?? "";
    const modern = accept.includes(GRAPHQL_RESPONSE_TYPE);
    const send = (status: number, body: unknown) =>
      reply
        .code(modern ? status : 200)
        .type(modern ? GRAPHQL_RESPONSE_TYPE : "application/json")
        .send(typeof body === "string" ? body : JSON.stringify(body));
    const onInternal = (err: unknown) => request.log.error({ err }, "a GraphQL resolver failed");
    if (!admit(request.ip)) {
      const error = graphqlError(
        `Too many operations from ${request.ip}: at most ${limits.operationsPerSecond} a second (bursts of ${limits.operationsBurst})`,
        ERROR_CODES.rate,
      );
      return reply
        .code(429)
        .header("retry-after", String(Math.max(1, Math.ceil(1 / limits.operationsPerSecond))))
        .type(modern ? GRAPHQL_RESPONSE_TYPE : "application/json")
        .send(JSON.stringify({ errors: [formatError(error)] }));
    }
    const prepared = prepareOperation(hub, schema, rules, operationRequest, request.principal);
    if (prepared.operation?.operation === OperationTypeNode.MUTATION && method === "GET") {
      // GraphQL over HTTP §GET: a mutation over GET is refused with 405, whoever sends it.
      const error = graphqlError("Mutations are sent with POST", ERROR_CODES.badRequest);
      return reply
        .code(405)
        .header("allow", "POST")
        .type(modern ? GRAPHQL_RESPONSE_TYPE : "application/json")
        .send(JSON.stringify({ errors: [formatError(error)] }));
    }
    if (!prepared.ok) {
      return send(requestErrorStatus(prepared.errors), {
        errors: prepared.errors.map((e) => formatError(e, onInternal)),
      });
    }
    if (prepared.operation.operation === OperationTypeNode.SUBSCRIPTION) {
      const error = graphqlError(
        "Subscriptions are streams: open a WebSocket to /graphql (graphql-ws protocol)",
        ERROR_CODES.badRequest,
      );
      return send(400, { errors: [formatError(error)] });
    }
    const context: GraphqlContext = {
      hub,
      principal: request.principal,
      limits,
      via: "graphql",
      overflow: () => {},
      answer: new AnswerBudget(limits.maxAnswerBytes),
    };
    const answer = context.answer as AnswerBudget;
    answer.charge(rootTypenameBytes(schema, prepared.document, operationRequest.operationName));
    const mutation = prepared.operation.operation === OperationTypeNode.MUTATION;
    const executed = await execute({
      schema,
      document: prepared.document,
      operationName: operationRequest.operationName ?? null,
      variableValues: operationRequest.variables ?? null,
      contextValue: context,
    });
    const bodyOf = (result: typeof executed) => ({
      ...(result.errors && { errors: result.errors.map((e) => formatError(e, onInternal)) }),
      ...("data" in result && { data: result.data }),
    });
    let result = boundedResult(executed, answer, mutation);
    let text = JSON.stringify(bodyOf(result));
    const bytes = Buffer.byteLength(text);
    if (result === executed && bytes > answer.maxBytes) {
      result = boundedResult(executed, answer, mutation, bytes);
      text = JSON.stringify(bodyOf(result));
    }
    // Variables that do not fit their types: a request error (no data at all).
    return send(result.data === undefined ? 400 : 200, text);
  };

  return async function plugin(app: FastifyInstance): Promise<void> {
    app.post(
      "/graphql",
      {
        schema: {
          summary: "Run a GraphQL query or mutation (docs/graphql.md); subscriptions use the WebSocket",
          tags: ["graphql"],
          produces: [GRAPHQL_RESPONSE_TYPE, "application/json"],
          body: requestBody,
        },
      },
      async (request, reply) => run(request, reply, request.body as OperationRequest, "POST"),
    );

    app.get(
      "/graphql",
      {
        schema: {
          summary: "Run a GraphQL query given in the URL (queries only)",
          tags: ["graphql"],
          produces: [GRAPHQL_RESPONSE_TYPE, "application/json"],
          querystring: requestQuery,
        },
      },
      async (request, reply) => {
        const q = request.query as { query: string; variables?: string; operationName?: string };
        let variables: Record<string, unknown> | undefined;
        if (q.variables !== undefined && q.variables !== "") {
          let parsed: unknown;
          try {
            // Read as a POST body's JSON is (duplicate names, nesting, inexact integers).
            parsed = parseExactJson(q.variables);
          } catch (err) {
            if (!(err instanceof ValidationError)) throw err;
            throw new ValidationError(
              `variables: ${err.message}`,
              err.errors.map((e) => ({ ...e, pointer: `/query/variables${e.pointer}` })),
            );
          }
          if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
            throw new ValidationError("variables must be a JSON object", [
              { pointer: "/query/variables", message: "must be a JSON object" },
            ]);
          }
          variables = parsed as Record<string, unknown>;
        }
        return run(
          request,
          reply,
          {
            query: q.query,
            variables,
            ...(q.operationName !== undefined && { operationName: q.operationName }),
          },
          "GET",
        );
      },
    );
  };
}
