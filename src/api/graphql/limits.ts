// The bounds on what one GraphQL operation may ask: the depth of its selections, its cost (every
// field counts, lists multiply by the page size asked or assumed), and a rate per socket.
// Checked before anything runs, so an expensive operation changes and costs nothing.
import {
  GraphQLError,
  Kind,
  getNamedType,
  isListType,
  isNonNullType,
  type ASTVisitor,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLType,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValidationContext,
  isObjectType,
  isInterfaceType,
  type GraphQLCompositeType,
} from "graphql";
import type { HubConfig } from "../../hub/index.js";

type GraphqlLimits = HubConfig["graphql"];
import { ERROR_CODES } from "./errors.js";

/** What a list field without `first` is assumed to hold, for the cost. */
const ASSUMED_LIST_SIZE = 10;

function isList(type: GraphQLType): boolean {
  return isListType(isNonNullType(type) ? type.ofType : type);
}

/** The page size a field asks for: its `first` literal, the limit for a variable, or its default. */
function pageSize(node: FieldNode, field: GraphQLField<unknown, unknown>, limits: GraphqlLimits): number {
  const arg = node.arguments?.find((a) => a.name.value === "first");
  if (arg?.value.kind === Kind.INT) return Math.max(0, Number(arg.value.value));
  if (arg?.value.kind === Kind.VARIABLE) return limits.maxFirst;
  const declared = field.args.find((a) => a.name === "first");
  if (declared && typeof declared.defaultValue === "number") return declared.defaultValue;
  return ASSUMED_LIST_SIZE;
}

/**
 * The field's multiplier: a list costs once per element — its own `first`, the page size of the
 * page it sits in, or an assumed size. A page (a field with `first` that is not a list) costs once;
 * its size multiplies the lists inside it.
 */
function multiplier(
  node: FieldNode,
  field: GraphQLField<unknown, unknown>,
  limits: GraphqlLimits,
  pageOfParent: number | undefined,
): number {
  const hasFirst = field.args.some((a) => a.name === "first");
  if (!isList(field.type)) return 1;
  return Math.max(1, hasFirst ? pageSize(node, field, limits) : (pageOfParent ?? ASSUMED_LIST_SIZE));
}

/** The page size a page field (with `first`, not a list) gives the lists directly inside it. */
function pageOf(
  node: FieldNode,
  field: GraphQLField<unknown, unknown>,
  limits: GraphqlLimits,
): number | undefined {
  const hasFirst = field.args.some((a) => a.name === "first");
  return hasFirst && !isList(field.type) ? pageSize(node, field, limits) : undefined;
}

interface Measure {
  depth: number;
  cost: number;
}

/**
 * A validation rule that refuses an operation deeper than `maxDepth` or costlier than `maxCost`.
 * Introspection (`__schema`, `__type`) is free: tools ask it whole.
 */
export function limitsRule(limits: GraphqlLimits) {
  return function QueryLimits(context: ValidationContext): ASTVisitor {
    const schema = context.getSchema();
    const fragments = new Map<string, FragmentDefinitionNode>();
    for (const def of context.getDocument().definitions) {
      if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def);
    }

    // A fragment's measure depends on where it is spread only by the level (for the cut-off past
    // maxDepth) and the page it sits in: each is measured once per such place. Walked anew at
    // every spread, fragments that each spread the next twice cost 2^n (24 of them in a 985-byte
    // query held the hub for 20 s).
    const measured = new Map<string, Measure>();
    const measure = (
      set: SelectionSetNode,
      parent: GraphQLCompositeType,
      seen: ReadonlySet<string>,
      level: number,
      page?: number,
    ): Measure => {
      let depth = 0;
      let cost = 0;
      for (const selection of set.selections) {
        if (selection.kind === Kind.FIELD) {
          const name = selection.name.value;
          if (name.startsWith("__")) continue;
          const field =
            isObjectType(parent) || isInterfaceType(parent) ? parent.getFields()[name] : undefined;
          if (!field) continue; // unknown fields are another rule's error
          const inner = getNamedType(field.type);
          let sub: Measure = { depth: 0, cost: 0 };
          // Past the limit, the answer is known: stop before a hostile document makes this slow.
          if (selection.selectionSet && level <= limits.maxDepth) {
            const inside = pageOf(selection, field, limits);
            sub = measure(selection.selectionSet, inner as GraphQLCompositeType, seen, level + 1, inside);
          }
          depth = Math.max(depth, 1 + sub.depth);
          cost += multiplier(selection, field, limits, page) * (1 + sub.cost);
        } else if (selection.kind === Kind.INLINE_FRAGMENT) {
          const typeName = selection.typeCondition?.name.value;
          const type = (typeName ? schema.getType(typeName) : parent) as GraphQLCompositeType;
          const sub = measure(selection.selectionSet, type, seen, level, page);
          depth = Math.max(depth, sub.depth);
          cost += sub.cost;
        } else {
          const name = selection.name.value;
          const fragment = fragments.get(name);
          if (!fragment || seen.has(name)) continue; // cycles are NoFragmentCycles' error
          const key = `${name}\u0000${level}\u0000${page ?? ""}`;
          let sub = measured.get(key);
          if (sub === undefined) {
            const type = schema.getType(fragment.typeCondition.name.value) as GraphQLCompositeType;
            sub = measure(fragment.selectionSet, type, new Set([...seen, name]), level, page);
            measured.set(key, sub);
          }
          depth = Math.max(depth, sub.depth);
          cost += sub.cost;
        }
        if (cost > limits.maxCost * 1000) break;
      }
      return { depth, cost };
    };

    return {
      OperationDefinition(node: OperationDefinitionNode) {
        const root = schema.getRootType(node.operation);
        if (!root) return;
        const { depth, cost } = measure(node.selectionSet, root, new Set(), 1);
        const name = node.name ? `Operation "${node.name.value}"` : "The operation";
        if (depth > limits.maxDepth) {
          context.reportError(
            new GraphQLError(`${name} is ${depth} levels deep; this hub allows at most ${limits.maxDepth}`, {
              nodes: [node],
              extensions: { code: ERROR_CODES.depth, depth, maxDepth: limits.maxDepth },
            }),
          );
        }
        if (cost > limits.maxCost) {
          context.reportError(
            new GraphQLError(
              `${name} costs ${cost} (each field 1, lists times the page size asked); ` +
                `this hub allows at most ${limits.maxCost}: ask for smaller pages or fewer levels`,
              { nodes: [node], extensions: { code: ERROR_CODES.cost, cost, maxCost: limits.maxCost } },
            ),
          );
        }
      },
    };
  };
}

/** A token bucket: `rate` operations a second, bursts up to `burst`. Time is injected. */
export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private readonly rate: number,
    private readonly burst: number,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.tokens = burst;
    this.last = now();
  }

  take(): boolean {
    const t = this.now();
    this.tokens = Math.min(this.burst, this.tokens + ((t - this.last) / 1000) * this.rate);
    this.last = t;
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }
}
