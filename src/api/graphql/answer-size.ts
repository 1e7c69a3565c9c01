// The bound on the bytes of one GraphQL answer (one subscription message): every field is charged,
// as it resolves, at least the bytes it adds to the serialized answer, and once the sum passes
// `graphql.maxAnswerBytes` the rest of the operation resolves to nothing and the answer is one
// ANSWER_TOO_LARGE error. What is charged is a lower bound (a character is one byte; escapes
// aside), so the serialized answer is checked exactly as well before it goes out.
import {
  GraphQLError,
  Kind,
  defaultFieldResolver,
  getOperationAST,
  isAbstractType,
  getNamedType,
  isLeafType,
  isListType,
  isNonNullType,
  isObjectType,
  type ExecutionResult,
  type DocumentNode,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLNamedType,
  type SelectionSetNode,
  type GraphQLField,
  type GraphQLFieldResolver,
  type GraphQLResolveInfo,
  type GraphQLSchema,
} from "graphql";
import { ERROR_CODES } from "./errors.js";

/** The bytes an answer (or a subscription message) is charged, against its bound. */
export class AnswerBudget {
  spent = 0;
  exceeded = false;

  constructor(readonly maxBytes: number) {}

  /** Adds `bytes`; true while the answer stays within the bound. */
  charge(bytes: number): boolean {
    this.spent += bytes;
    if (this.spent > this.maxBytes) this.exceeded = true;
    return !this.exceeded;
  }
}

/** What a resolver's context carries for the bound: the budget of the answer being built. */
interface Budgeted {
  answer?: AnswerBudget;
}

/**
 * At least the bytes `value` takes as JSON: strings count one byte a character (UTF-8 and escapes
 * only add), the rest exactly. Stops walking once past `room`, so a huge value costs little.
 */
export function jsonBytesAtLeast(value: unknown, room: number): number {
  // Most leaves are one string or number: answered without the walk's closure.
  if (typeof value === "string") return value.length + 2;
  if (typeof value === "number") return Number.isFinite(value) ? String(value).length : 4;
  if (typeof value === "boolean") return value ? 4 : 5;
  let total = 0;
  const walk = (item: unknown): void => {
    if (total > room) return;
    switch (typeof item) {
      case "string":
        total += item.length + 2;
        return;
      case "number":
        total += Number.isFinite(item) ? String(item).length : 4;
        return;
      case "boolean":
        total += item ? 4 : 5;
        return;
      case "object":
        if (item === null) {
          total += 4;
          return;
        }
        if (Array.isArray(item)) {
          total += 2 + Math.max(0, item.length - 1);
          for (const member of item) walk(member);
          return;
        }
        total += 2;
        for (const key in item) {
          const member = (item as Record<string, unknown>)[key];
          if (member === undefined || typeof member === "function") continue;
          total += key.length + 4; // "key": and a comma (one too many, for the last)
          walk(member);
          if (total > room) return;
        }
        return;
      default:
        return; // undefined and functions are left out of JSON
    }
  };
  walk(value);
  return total;
}

/** The error an answer past the bound gets, instead of its data. */
export function answerTooLarge(maxBytes: number, mutation: boolean, bytes?: number): GraphQLError {
  const size = bytes === undefined ? `is larger than ${maxBytes} bytes` : `is ${bytes} bytes`;
  return new GraphQLError(
    `The answer ${size}; this hub answers at most ${maxBytes} (graphql.maxAnswerBytes): ` +
      `ask for fewer fields, smaller pages (first) or fewer aliases` +
      (mutation ? "; the mutation itself was carried out, and its Changes are in the Log" : ""),
    {
      extensions: {
        code: ERROR_CODES.answerSize,
        maxAnswerBytes: maxBytes,
        ...(bytes !== undefined && { bytes }),
      },
    },
  );
}

/** The bytes a field's name (or alias) adds: `"name":` and a comma. */
function keyBytes(info: GraphQLResolveInfo): number {
  const node = info.fieldNodes[0];
  return (node?.alias?.value ?? info.fieldName).length + 4;
}

/**
 * The response keys of the `__typename` selections in these selection sets (fragments included):
 * graphql-js answers them without a resolver, and merges the ones with the same key.
 */
function typenameKeys(
  sets: readonly SelectionSetNode[],
  fragments: Readonly<Record<string, FragmentDefinitionNode | undefined>>,
): Set<string> {
  const keys = new Set<string>();
  const seen = new Set<string>();
  const walk = (set: SelectionSetNode): void => {
    for (const selection of set.selections) {
      if (selection.kind === Kind.FIELD) {
        if (selection.name.value === "__typename") keys.add(selection.alias?.value ?? "__typename");
      } else if (selection.kind === Kind.INLINE_FRAGMENT) {
        walk(selection.selectionSet);
      } else if (!seen.has(selection.name.value)) {
        seen.add(selection.name.value);
        const fragment = fragments[selection.name.value];
        if (fragment) walk(fragment.selectionSet);
      }
    }
  };
  for (const set of sets) walk(set);
  return keys;
}

/** `"key":"Type",` for each key, with the type's name at its shortest (an interface's types). */
function typenameBytesOf(keys: ReadonlySet<string>, nameLength: number): number {
  let bytes = 0;
  for (const key of keys) bytes += key.length + 6 + nameLength;
  return bytes;
}

const typenames = new WeakMap<FieldNode, number>();

/** The bytes the `__typename` selections of an object take: charged with the object. */
function typenameBytes(info: GraphQLResolveInfo, type: GraphQLNamedType): number {
  const node = info.fieldNodes[0];
  if (!node?.selectionSet) return 0;
  const known = typenames.get(node);
  if (known !== undefined) return known;
  const names = isAbstractType(type)
    ? info.schema.getPossibleTypes(type).map((t) => t.name.length)
    : [type.name.length];
  const sets = info.fieldNodes.flatMap((field) => (field.selectionSet ? [field.selectionSet] : []));
  const bytes = typenameBytesOf(typenameKeys(sets, info.fragments), Math.min(...names, 64));
  typenames.set(node, bytes);
  return bytes;
}

/**
 * The bytes of the operation's own `__typename` selections (`{ a: __typename b: __typename … }`),
 * which no field's charge covers: charged before it runs.
 */
export function rootTypenameBytes(
  schema: GraphQLSchema,
  document: DocumentNode,
  operationName: string | null | undefined,
): number {
  const operation = getOperationAST(document, operationName ?? undefined);
  const root = operation ? schema.getRootType(operation.operation) : undefined;
  if (!operation || !root) return 0;
  const fragments: Record<string, FragmentDefinitionNode> = {};
  for (const def of document.definitions)
    if (def.kind === Kind.FRAGMENT_DEFINITION) fragments[def.name.value] = def;
  return typenameBytesOf(typenameKeys([operation.selectionSet], fragments), root.name.length);
}

/** What charging a field's value needs to know of its type, worked out once per field. */
interface FieldShape {
  named: GraphQLNamedType;
  leaf: boolean;
  list: boolean;
  /** A mutation's root field: charged, but never skipped. */
  always: boolean;
}

function shapeOf(field: GraphQLField<unknown, unknown>, always: boolean): FieldShape {
  const named = getNamedType(field.type);
  const inner = isNonNullType(field.type) ? field.type.ofType : field.type;
  return { named, leaf: isLeafType(named), list: isListType(inner), always };
}

/** The bytes a resolved value adds, at least, for the field it resolves. */
function valueBytes(shape: FieldShape, info: GraphQLResolveInfo, value: unknown, room: number): number {
  if (value === null || value === undefined) return 4;
  if (shape.leaf) return jsonBytesAtLeast(value, room);
  // An object, or a list of objects: brackets, commas and `__typename`s; its fields charge the rest.
  const perObject = 3 + typenameBytes(info, shape.named);
  return shape.list && Array.isArray(value) ? 2 + value.length * perObject : perObject;
}

function isPromise(value: unknown): value is Promise<unknown> {
  return typeof (value as Promise<unknown> | null)?.then === "function";
}

/** Charges a field's resolved value to the budget; throws once it is spent (but for a mutation). */
function settle(budget: AnswerBudget, shape: FieldShape, info: GraphQLResolveInfo, value: unknown): unknown {
  const room = budget.maxBytes - budget.spent;
  if (!budget.charge(keyBytes(info) + valueBytes(shape, info, value, room)) && !shape.always) {
    throw answerTooLarge(budget.maxBytes, false);
  }
  return value;
}

/**
 * Wraps every field of the schema's object types so that it charges its answer's budget (the
 * context's `answer`, when it has one), and resolves to nothing once the budget is spent: a
 * nullable field to null, a non-null one by throwing (which nulls its parent). Root mutation
 * fields always run (a command is not skipped for the size of an answer); only their answer is
 * dropped.
 */
export function bindAnswerBudget(schema: GraphQLSchema): void {
  const mutationRoot = schema.getMutationType();
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith("__")) continue;
    for (const field of Object.values(type.getFields())) {
      const resolve: GraphQLFieldResolver<unknown, unknown> = field.resolve ?? defaultFieldResolver;
      const shape = shapeOf(field, type === mutationRoot);
      const nonNull = isNonNullType(field.type);
      field.resolve = (source, args, context: Budgeted, info) => {
        const budget = context?.answer;
        if (!budget) return resolve(source, args, context, info);
        if (budget.exceeded && !shape.always) {
          if (nonNull) throw answerTooLarge(budget.maxBytes, false);
          return null;
        }
        const value = resolve(source, args, context, info);
        if (isPromise(value)) return value.then((resolved) => settle(budget, shape, info, resolved));
        return settle(budget, shape, info, value);
      };
    }
  }
}

/**
 * The answer as it goes out: the result itself while it is within the bound, else only the
 * ANSWER_TOO_LARGE error (no partial data: what a client cannot have whole it should not take
 * for whole). `serialized` is the exact size when the caller has it (HTTP serializes anyway).
 */
export function boundedResult(
  result: ExecutionResult,
  budget: AnswerBudget,
  mutation: boolean,
  serialized?: number,
): ExecutionResult {
  if (budget.exceeded) return { errors: [answerTooLarge(budget.maxBytes, mutation)], data: null };
  if (serialized !== undefined && serialized > budget.maxBytes) {
    return { errors: [answerTooLarge(budget.maxBytes, mutation, serialized)], data: null };
  }
  return result;
}

/** The answer's `{"data":…}` and the lists of objects nested in lists, beyond what fields charge. */
const ENVELOPE_BYTES = 64;

/**
 * The exact size of a result serialized, when a check is needed: a result without errors whose
 * charge is under a sixth of the bound is within it (a character escapes to at most 6 bytes, and
 * everything else is charged exactly or nearly: a `__typename` of an interface at its shortest
 * type's name), so the common small message is not serialized twice.
 */
export function exactSizeIfNeeded(result: ExecutionResult, budget: AnswerBudget): number | undefined {
  if (!result.errors?.length && (budget.spent + ENVELOPE_BYTES) * 6 < budget.maxBytes) return undefined;
  return Buffer.byteLength(JSON.stringify(result));
}
