// The executable schema: the SDL of schema-sdl.ts with the resolvers of resolvers.ts attached,
// and the JSON scalar that carries TDs and values as they are.
import {
  GraphQLScalarType,
  Kind,
  buildSchema,
  isObjectType,
  type GraphQLSchema,
  type ValueNode,
  type GraphQLFieldResolver,
} from "graphql";
import { jsonLimitProblem, jsonLimitSentence } from "../../core/index.js";
import { bindAnswerBudget } from "./answer-size.js";
import { resolvers } from "./resolvers.js";
import { SCHEMA_SDL } from "./schema-sdl.js";

/** A JSON literal written in the query itself (variables arrive as JSON already). */
function literal(node: ValueNode, variables: Record<string, unknown> | null | undefined): unknown {
  switch (node.kind) {
    case Kind.STRING:
    case Kind.BOOLEAN:
    case Kind.ENUM:
      return node.value;
    case Kind.INT:
    case Kind.FLOAT:
      return Number(node.value);
    case Kind.NULL:
      return null;
    case Kind.LIST:
      return node.values.map((v) => literal(v, variables));
    case Kind.OBJECT:
      return Object.fromEntries(node.fields.map((f) => [f.name.value, literal(f.value, variables)]));
    case Kind.VARIABLE:
      return variables?.[node.name.value];
  }
}

/** A JSON value as the hub takes it (core json-limits: nesting, finite numbers), or refused, saying where. */
function withinLimits(value: unknown): unknown {
  const problem = jsonLimitProblem(value);
  if (problem) {
    throw new TypeError(jsonLimitSentence("The JSON value", problem));
  }
  return value;
}

function attachJsonScalar(schema: GraphQLSchema): void {
  const json = schema.getType("JSON");
  if (!(json instanceof GraphQLScalarType)) throw new Error("the schema has no JSON scalar");
  json.serialize = (value) => value;
  json.parseValue = withinLimits;
  json.parseLiteral = (node, variables) => withinLimits(literal(node, variables));
}

const SAFE_INT_RANGE = `a whole number from -${Number.MAX_SAFE_INTEGER} to ${Number.MAX_SAFE_INTEGER}`;

/** A SafeInt as given, or refused naming it as written (a literal's digits, not a rounded number). */
function safeInt(value: unknown, written: string): number {
  if (typeof value !== "number" || !Number.isSafeInteger(value)) {
    throw new TypeError(`SafeInt cannot represent ${written}: it takes ${SAFE_INT_RANGE}`);
  }
  return value;
}

/** Seqs and counts of Changes: JSON numbers past GraphQL's 32-bit Int, exact up to 2^53 - 1. */
function attachSafeIntScalar(schema: GraphQLSchema): void {
  const scalar = schema.getType("SafeInt");
  if (!(scalar instanceof GraphQLScalarType)) throw new Error("the schema has no SafeInt scalar");
  scalar.serialize = (value) => safeInt(value, String(value));
  scalar.parseValue = (value) => safeInt(value, JSON.stringify(value) ?? String(value));
  scalar.parseLiteral = (node) => {
    if (node.kind !== Kind.INT) {
      throw new TypeError(`SafeInt cannot represent a non-integer value: it takes ${SAFE_INT_RANGE}`);
    }
    return safeInt(Number(node.value), node.value);
  };
}

let built: GraphQLSchema | undefined;

/**
 * The hub's schema, built once per process: it holds no hub (a resolver finds its hub in the
 * context), and building it again for each hub a process starts (tests, replicas) took ~60 ms.
 */
export function buildHubSchema(): GraphQLSchema {
  built ??= build();
  return built;
}

function build(): GraphQLSchema {
  const schema = buildSchema(SCHEMA_SDL);
  attachJsonScalar(schema);
  attachSafeIntScalar(schema);
  for (const [typeName, fields] of Object.entries(resolvers)) {
    const type = schema.getType(typeName);
    if (!isObjectType(type)) throw new Error(`the schema has no object type ${typeName}`);
    const defined = type.getFields();
    for (const [fieldName, resolver] of Object.entries(fields)) {
      const field = defined[fieldName];
      if (!field) throw new Error(`the schema has no field ${typeName}.${fieldName}`);
      if (typeof resolver === "function") {
        field.resolve = resolver as GraphQLFieldResolver<unknown, unknown>;
      } else {
        const { subscribe, resolve } = resolver as {
          subscribe: GraphQLFieldResolver<unknown, unknown>;
          resolve: GraphQLFieldResolver<unknown, unknown>;
        };
        field.subscribe = subscribe;
        field.resolve = resolve;
      }
    }
  }
  bindAnswerBudget(schema);
  return schema;
}
