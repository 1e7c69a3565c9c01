// The bounds on what one GraphQL operation may ask: the depth of its selections, its cost (every
// field counts, lists multiply by the page size asked or assumed), and a rate per socket.
// Checked before anything runs, so an expensive operation changes and costs nothing.
import {
  GraphQLError,
  Kind,
  SchemaMetaFieldDef,
  TypeMetaFieldDef,
  getNamedType,
  isListType,
  isNonNullType,
  type ASTVisitor,
  type FieldNode,
  type FragmentDefinitionNode,
  type GraphQLField,
  type GraphQLResolveInfo,
  type GraphQLSchema,
  type GraphQLType,
  type OperationDefinitionNode,
  type SelectionSetNode,
  type ValidationContext,
  isObjectType,
  isInterfaceType,
  type GraphQLCompositeType,
} from "graphql";
import { quoted } from "../../core/index.js";
import type { HubConfig } from "../../hub/index.js";

type GraphqlLimits = HubConfig["graphql"];
import { ERROR_CODES } from "./errors.js";

/** What a list field without `first` is assumed to hold, for the cost. */
export const ASSUMED_LIST_SIZE = 10;

/**
 * What a call of a field that reads the store costs on top of its 1, once per call (a list's
 * elements are priced as any list's): about one unit per 10 µs it holds the hub, so that the
 * default maxCost (20,000) is some 200 ms of work. Priced at 1, 500 aliased `stateAt` (1–2 ms
 * each) held the hub for a second in one request, round the rate limit. docs/graphql.md lists them.
 */
export const STORE_WEIGHTS: Readonly<Record<string, number>> = {
  "Query.thing": 10,
  "Query.things": 20,
  "Query.search": 200,
  "Query.changes": 100,
  "Query.change": 10,
  "Query.history": 100,
  "Query.stateAt": 200,
  "Query.diff": 200,
  "Query.log": 10,
  "Query.releases": 20,
  "Query.release": 10,
  "Query.plan": 1000,
  "Query.drift": 200,
  "Query.rollouts": 20,
  "Query.rollout": 10,
  "Query.lineage": 20,
  "Thing.properties": 20,
  "Thing.property": 20,
  "Thing.history": 20,
  "Thing.links": 10,
  "Thing.linkedFrom": 10,
  "Link.target": 10,
  "Link.source": 10,
  // A chain reads two or three of the affordance's pages, more for a value reported again unchanged.
  "Change.why": 100,
  "Rollout.steps": 20,
};

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
  /** What its introspection (`__schema`, `__type`) costs, priced as the rest is but bounded apart. */
  introspection: number;
}

/**
 * The most an operation's introspection may cost: about twice graphql-js's introspection query
 * (getIntrospectionQuery with every option costs 47,811 here), so any tool's passes. It is not
 * counted against maxCost, but it is not free either: a thousand aliased `__schema` selections
 * (68 kB of query) held the hub for 6 s and 200 MB; what passes this bound takes ~0.1 s.
 */
export const MAX_INTROSPECTION_COST = 100_000;

/** What measuring a document's selections needs: its schema, fragments and the hub's limits. */
interface Measuring {
  schema: GraphQLSchema;
  fragments: ReadonlyMap<string, FragmentDefinitionNode>;
  limits: GraphqlLimits;
  /**
   * A fragment's measure depends on where it is spread only by the level (for the cut-off past
   * maxDepth) and the page it sits in: each is measured once per such place. Walked anew at
   * every spread, fragments that each spread the next twice cost 2^n (24 of them in a 985-byte
   * query held the hub for 20 s).
   */
  measured: Map<string, Measure>;
}

/** The depth and cost of a selection set, as docs/graphql.md prices them. */
function measure(
  m: Measuring,
  set: SelectionSetNode,
  parent: GraphQLCompositeType,
  seen: ReadonlySet<string>,
  level: number,
  page?: number,
): Measure {
  const { schema, fragments, limits, measured } = m;
  let depth = 0;
  let cost = 0;
  let introspection = 0;
  for (const selection of set.selections) {
    if (selection.kind === Kind.FIELD) {
      const name = selection.name.value;
      if (name === "__typename") continue;
      if (name === SchemaMetaFieldDef.name || name === TypeMetaFieldDef.name) {
        // Its depth is MaxIntrospectionDepthRule's (a specified rule); its cost is bounded apart.
        const meta = name === SchemaMetaFieldDef.name ? SchemaMetaFieldDef : TypeMetaFieldDef;
        const type = getNamedType(meta.type) as GraphQLCompositeType;
        const sub = selection.selectionSet
          ? measure(m, selection.selectionSet, type, seen, level + 1)
          : { depth: 0, cost: 0, introspection: 0 };
        introspection += 1 + sub.cost + sub.introspection;
        continue;
      }
      const field = isObjectType(parent) || isInterfaceType(parent) ? parent.getFields()[name] : undefined;
      if (!field) continue; // unknown fields are another rule's error
      const inner = getNamedType(field.type);
      let sub: Measure = { depth: 0, cost: 0, introspection: 0 };
      // Past the limit, the answer is known: stop before a hostile document makes this slow.
      if (selection.selectionSet && level <= limits.maxDepth) {
        const inside = pageOf(selection, field, limits);
        sub = measure(m, selection.selectionSet, inner as GraphQLCompositeType, seen, level + 1, inside);
      }
      depth = Math.max(depth, 1 + sub.depth);
      const weight = STORE_WEIGHTS[`${parent.name}.${name}`] ?? 0;
      cost += weight + multiplier(selection, field, limits, page) * (1 + sub.cost);
      introspection += sub.introspection;
    } else if (selection.kind === Kind.INLINE_FRAGMENT) {
      const typeName = selection.typeCondition?.name.value;
      const type = (typeName ? schema.getType(typeName) : parent) as GraphQLCompositeType;
      const sub = measure(m, selection.selectionSet, type, seen, level, page);
      depth = Math.max(depth, sub.depth);
      cost += sub.cost;
      introspection += sub.introspection;
    } else {
      const name = selection.name.value;
      const fragment = fragments.get(name);
      if (!fragment || seen.has(name)) continue; // cycles are NoFragmentCycles' error
      const key = `${name}\u0000${level}\u0000${page ?? ""}`;
      let sub = measured.get(key);
      if (sub === undefined) {
        const type = schema.getType(fragment.typeCondition.name.value) as GraphQLCompositeType;
        sub = measure(m, fragment.selectionSet, type, new Set([...seen, name]), level, page);
        measured.set(key, sub);
      }
      depth = Math.max(depth, sub.depth);
      cost += sub.cost;
      introspection += sub.introspection;
    }
    if (cost > limits.maxCost * 1000 || introspection > MAX_INTROSPECTION_COST * 1000) break;
  }
  return { depth, cost, introspection };
}

/**
 * A validation rule that refuses an operation deeper than `maxDepth` or costlier than `maxCost`.
 * Introspection (`__schema`, `__type`) is not counted against maxCost (tools ask it whole) but
 * against MAX_INTROSPECTION_COST.
 */
export function limitsRule(limits: GraphqlLimits) {
  return function QueryLimits(context: ValidationContext): ASTVisitor {
    const schema = context.getSchema();
    const fragments = new Map<string, FragmentDefinitionNode>();
    for (const def of context.getDocument().definitions) {
      if (def.kind === Kind.FRAGMENT_DEFINITION) fragments.set(def.name.value, def);
    }
    const m: Measuring = { schema, fragments, limits, measured: new Map() };

    return {
      OperationDefinition(node: OperationDefinitionNode) {
        const root = schema.getRootType(node.operation);
        if (!root) return;
        const { depth, cost, introspection } = measure(m, node.selectionSet, root, new Set(), 1);
        const name = node.name ? `Operation ${quoted(node.name.value)}` : "The operation";
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
              `${name} costs ${cost} (each field 1, each call of a field that reads the store more, ` +
                `e.g. stateAt ${STORE_WEIGHTS["Query.stateAt"]}; lists times the page size asked); ` +
                `this hub allows at most ${limits.maxCost}: ask for fewer such fields, smaller pages or fewer levels`,
              { nodes: [node], extensions: { code: ERROR_CODES.cost, cost, maxCost: limits.maxCost } },
            ),
          );
        }
        if (introspection > MAX_INTROSPECTION_COST) {
          context.reportError(
            new GraphQLError(
              `${name}'s introspection costs ${introspection}; this hub allows at most ${MAX_INTROSPECTION_COST}, ` +
                `about twice a whole introspection query: ask for __schema once`,
              {
                nodes: [node],
                extensions: { code: ERROR_CODES.cost, cost: introspection, maxCost: MAX_INTROSPECTION_COST },
              },
            ),
          );
        }
      },
    };
  };
}

/** One operation's cost as it runs: its priced cost, corrected by each list's real length. */
interface RunningCost {
  measuring: Measuring;
  spent: number;
  exceeded: boolean;
  /** The priced cost of one element of a list field, by its node. */
  elements: WeakMap<FieldNode, number>;
}

const running = new WeakMap<OperationDefinitionNode, RunningCost>();

/**
 * Prices a list whose length validation could only assume (ASSUMED_LIST_SIZE: `links`,
 * `linkedFrom`) at its real length, once its resolver has it: a Thing with thousands of links
 * nested three deep would otherwise cost millions of resolver calls for a query priced at a few
 * hundred. Throws COST_LIMIT_EXCEEDED once the operation's real cost passes `maxCost`, and for
 * every such list after it. Keyed by the operation: used by queries and mutations, never by the
 * subscriptions' streamed types (they hold no such list), whose operation runs once per event.
 */
export function chargeListLength(info: GraphQLResolveInfo, limits: GraphqlLimits, length: number): void {
  // The Things at the other end, a page at a time: what `links` lists is in(rel) of the Thing.
  const direction = info.fieldName === "linkedFrom" ? "out" : "in";
  charge(
    info,
    limits,
    length,
    () =>
      `${String(info.path.key)} holds ${length} elements where ${ASSUMED_LIST_SIZE} were assumed; ` +
      `ask for fewer levels, or page through those Things with things(filter: "${direction}(rel) { id = … }", first: …)`,
  );
}

/**
 * Prices a `search` at the TDs it reads, every one of the directory's, before it reads them: its
 * answer is a list validation assumes of ASSUMED_LIST_SIZE, yet even one value (`$`) may be the
 * whole directory, and a thousand aliased searches were priced at 10,000 and answered 1.7 GB.
 */
export function chargeSearch(info: GraphQLResolveInfo, limits: GraphqlLimits, things: number): void {
  charge(
    info,
    limits,
    things,
    () =>
      `${String(info.path.key)} reads ${things} TDs where ${ASSUMED_LIST_SIZE} were assumed; ` +
      `ask for fewer searches at once, or search with GET /search/jsonpath?query=…`,
  );
}

function charge(info: GraphQLResolveInfo, limits: GraphqlLimits, length: number, why: () => string): void {
  let cost = running.get(info.operation);
  if (!cost) {
    const fragments = new Map(Object.entries(info.fragments));
    const measuring: Measuring = { schema: info.schema, fragments, limits, measured: new Map() };
    const root = info.schema.getRootType(info.operation.operation);
    const priced = root ? measure(measuring, info.operation.selectionSet, root, new Set(), 1).cost : 0;
    cost = { measuring, spent: priced, exceeded: false, elements: new WeakMap() };
    running.set(info.operation, cost);
  }
  const node = info.fieldNodes[0];
  let element = node ? cost.elements.get(node) : 0;
  if (node && element === undefined) {
    const type = getNamedType(info.returnType) as GraphQLCompositeType;
    element =
      1 + (node.selectionSet ? measure(cost.measuring, node.selectionSet, type, new Set(), 1).cost : 0);
    cost.elements.set(node, element);
  }
  cost.spent += (length - ASSUMED_LIST_SIZE) * (element ?? 1);
  if (cost.exceeded || cost.spent > limits.maxCost) {
    cost.exceeded = true;
    throw new GraphQLError(`The operation costs more than ${limits.maxCost} as it runs: ${why()}`, {
      extensions: { code: ERROR_CODES.cost, cost: cost.spent, maxCost: limits.maxCost },
    });
  }
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
