// The graph filter language (docs/queries.md): its syntax tree and a parser that reports the
// position of the first error. Evaluation is in graph-query.ts.
import { ValidationError } from "./errors.js";
import { termProblem } from "./iri.js";

export type Comparison = "=" | "!=" | "<" | "<=" | ">" | ">=";
export type Literal = string | number | boolean | null;

/** What a comparison looks at. */
export type Field =
  | { kind: "id" }
  | { kind: "type" }
  /** A member of the TD, by path: `td.title`, `td.version.instance`. */
  | { kind: "td"; path: string[] }
  /** The Thing's current (reported) value of a property, or a member inside it: `state.temperature`. */
  | { kind: "state"; path: string[] };

export type GraphQuery =
  | { op: "and"; of: GraphQuery[] }
  | { op: "or"; of: GraphQuery[] }
  | { op: "not"; of: GraphQuery }
  | { op: "compare"; field: Field; cmp: Comparison; value: Literal }
  | {
      /** Things with a path of `rel` edges (any rel when absent), `min`..`max` hops long
       * (`max` absent: no bound, cycle-safe), leading out of them (`out`) or into them (`in`),
       * to a Thing matching `where` (any Thing when absent). */
      op: "related";
      direction: "out" | "in";
      rel?: string;
      min: number;
      max?: number;
      where?: GraphQuery;
    };

/** The most hops a bounded `k` or `n..m` may ask for; beyond, use `*`. */
export const MAX_HOPS = 32;
/** Filters longer than this are refused before parsing. */
export const MAX_FILTER_LENGTH = 8192;
const MAX_NESTING = 32;

type Token =
  | { t: "word"; v: string; pos: number }
  | { t: "string"; v: string; pos: number }
  | { t: "punct"; v: string; pos: number }
  | { t: "end"; pos: number };

const WORD = /[^\s(){},"'=!<>]/;

class FilterSyntaxError extends ValidationError {}

function fail(pointer: string, pos: number, message: string): never {
  throw new FilterSyntaxError(`Bad graph filter at position ${pos + 1}: ${message}`, [
    { pointer, message: `position ${pos + 1}: ${message}` },
  ]);
}

function tokenize(text: string, pointer: string): Token[] {
  const tokens: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text.charAt(i);
    if (/\s/.test(c)) {
      i++;
    } else if (c === '"' || c === "'") {
      const start = i;
      let value = "";
      i++;
      for (;;) {
        if (i >= text.length) fail(pointer, start, "the string is not closed");
        const d = text.charAt(i);
        if (d === c) break;
        if (d === "\\") {
          const e = text.charAt(i + 1);
          if (e !== "\\" && e !== '"' && e !== "'") fail(pointer, i, "only \\\\, \\\" and \\' are escapes");
          value += e;
          i += 2;
        } else {
          value += d;
          i++;
        }
      }
      i++;
      tokens.push({ t: "string", v: value, pos: start });
    } else if ("(){},".includes(c)) {
      tokens.push({ t: "punct", v: c, pos: i++ });
    } else if (c === "!" || c === "<" || c === ">" || c === "=") {
      const two = text.slice(i, i + 2);
      if (two === "!=" || two === "<=" || two === ">=") {
        tokens.push({ t: "punct", v: two, pos: i });
        i += 2;
      } else if (c === "!") {
        fail(pointer, i, 'expected "!="');
      } else {
        tokens.push({ t: "punct", v: c, pos: i++ });
      }
    } else {
      const start = i;
      while (i < text.length && WORD.test(text.charAt(i))) i++;
      tokens.push({ t: "word", v: text.slice(start, i), pos: start });
    }
  }
  tokens.push({ t: "end", pos: text.length });
  return tokens;
}

const COMPARISONS = new Set(["=", "!=", "<", "<=", ">", ">="]);
const NAME = /^[A-Za-z_@$][A-Za-z0-9_@$-]*$/;

/**
 * Parses a filter such as `type = saref:TemperatureSensor AND state.temperature > 30 AND
 * out(partOf, *) { id = "urn:example:building-3" }`. Throws ValidationError naming the position
 * (1-based) of the first problem; `pointer` says where the filter came from (e.g. `/query/filter`).
 */
export function parseGraphFilter(text: string, pointer = "/filter"): GraphQuery {
  if (text.length > MAX_FILTER_LENGTH)
    fail(pointer, MAX_FILTER_LENGTH, `a filter is at most ${MAX_FILTER_LENGTH} characters`);
  const tokens = tokenize(text, pointer);
  let k = 0;
  const peek = (): Token => tokens[k] ?? { t: "end", pos: text.length };
  const next = (): Token => tokens[k++] ?? { t: "end", pos: text.length };
  const describe = (tok: Token) => (tok.t === "end" ? "the end of the filter" : `"${tok.v}"`);
  const isKeyword = (tok: Token, word: string) => tok.t === "word" && tok.v.toUpperCase() === word;
  const expect = (v: string) => {
    const tok = next();
    if (tok.t !== "punct" || tok.v !== v)
      fail(pointer, tok.pos, `expected "${v}" but found ${describe(tok)}`);
  };

  const orExpr = (depth: number): GraphQuery => {
    if (depth > MAX_NESTING) fail(pointer, peek().pos, `filters nest at most ${MAX_NESTING} deep`);
    const of = [andExpr(depth)];
    while (isKeyword(peek(), "OR")) {
      next();
      of.push(andExpr(depth));
    }
    return of.length === 1 ? (of[0] as GraphQuery) : { op: "or", of };
  };
  const andExpr = (depth: number): GraphQuery => {
    const of = [unary(depth)];
    while (isKeyword(peek(), "AND")) {
      next();
      of.push(unary(depth));
    }
    return of.length === 1 ? (of[0] as GraphQuery) : { op: "and", of };
  };
  const unary = (depth: number): GraphQuery => {
    const tok = peek();
    if (isKeyword(tok, "NOT")) {
      // A chain of NOTs nests too: each one is a level the evaluator recurses through per Thing.
      if (depth + 1 > MAX_NESTING) fail(pointer, tok.pos, `filters nest at most ${MAX_NESTING} deep`);
      next();
      return { op: "not", of: unary(depth + 1) };
    }
    if (tok.t === "punct" && tok.v === "(") {
      next();
      const inner = orExpr(depth + 1);
      expect(")");
      return inner;
    }
    if (tok.t === "word" && (tok.v === "out" || tok.v === "in")) {
      const after = tokens[k + 1];
      if (after?.t === "punct" && after.v === "(") return relation(depth);
    }
    return comparison();
  };
  const term = (what: string): string => {
    const tok = next();
    if (tok.t === "end" || tok.t === "punct")
      fail(pointer, tok.pos, `expected ${what} but found ${describe(tok)}`);
    const problem = termProblem(tok.v);
    if (problem) fail(pointer, tok.pos, `${what} "${tok.v}" ${problem}`);
    return tok.v;
  };
  const integer = (tok: Token): number => {
    if (tok.t !== "word" || !/^\d+$/.test(tok.v))
      fail(pointer, tok.pos, `expected a number of hops but found ${describe(tok)}`);
    const n = Number(tok.v);
    if (n > MAX_HOPS) fail(pointer, tok.pos, `at most ${MAX_HOPS} hops; use * for any number`);
    return n;
  };
  const relation = (depth: number): GraphQuery => {
    const dirTok = next();
    const direction = dirTok.t === "word" && dirTok.v === "in" ? "in" : "out";
    expect("(");
    const relTok = peek();
    let rel: string | undefined;
    if (relTok.t === "word" && relTok.v === "*") next();
    else rel = term("a relation");
    let min = 1;
    let max: number | undefined = 1;
    const comma = peek();
    if (comma.t === "punct" && comma.v === ",") {
      next();
      const hops = next();
      // Hops: `k`, `n..m`, `n..*` or `*` (= 1..*). The word tokenizer keeps `1..3` together.
      const m = hops.t === "word" ? /^(\d+|\*)(?:\.\.(\d+|\*))?$/.exec(hops.v) : null;
      if (!m) fail(pointer, hops.pos, `expected hops (2, 1..3, 2..* or *) but found ${describe(hops)}`);
      const [, a = "", b] = m;
      const asNumber = (s: string) => integer({ t: "word", v: s, pos: hops.pos });
      if (a === "*") {
        if (b !== undefined) fail(pointer, hops.pos, "hops start with a number: 1..*");
        max = undefined;
      } else if (b === undefined) {
        min = max = asNumber(a);
      } else {
        min = asNumber(a);
        max = b === "*" ? undefined : asNumber(b);
      }
      if (min < 1) fail(pointer, hops.pos, "a relation is at least 1 hop");
      if (max !== undefined && max < min) fail(pointer, hops.pos, `${min}..${max} is an empty range of hops`);
    }
    expect(")");
    const query: GraphQuery = { op: "related", direction, min, ...(max !== undefined && { max }) };
    if (rel !== undefined) query.rel = rel;
    const brace = peek();
    if (brace.t === "punct" && brace.v === "{") {
      next();
      query.where = orExpr(depth + 1);
      expect("}");
    }
    return query;
  };
  const comparison = (): GraphQuery => {
    const tok = next();
    if (tok.t !== "word")
      fail(
        pointer,
        tok.pos,
        `expected a filter (type, id, td.…, state.…, out(…), in(…)) but found ${describe(tok)}`,
      );
    let field: Field;
    const [head, ...path] = tok.v.split(".");
    if (head === "id" && path.length === 0) field = { kind: "id" };
    else if (head === "type" && path.length === 0) field = { kind: "type" };
    else if ((head === "td" || head === "state") && path.length > 0) {
      const bad = path.find((p) => !NAME.test(p));
      if (bad !== undefined) fail(pointer, tok.pos, `"${bad}" is not a member name in ${tok.v}`);
      field = { kind: head, path };
    } else {
      fail(pointer, tok.pos, `unknown field "${tok.v}": use type, id, td.<member> or state.<property>`);
    }
    const opTok = next();
    if (opTok.t !== "punct" || !COMPARISONS.has(opTok.v))
      fail(pointer, opTok.pos, `expected a comparison (=, !=, <, <=, >, >=) but found ${describe(opTok)}`);
    const cmp = opTok.v as Comparison;
    if ((field.kind === "type" || field.kind === "id") && cmp !== "=" && cmp !== "!=")
      fail(pointer, opTok.pos, `${field.kind} is compared with = or != only`);
    const valueTok = next();
    let value: Literal;
    if (valueTok.t === "string") value = valueTok.v;
    else if (valueTok.t === "word") {
      const v = valueTok.v;
      if (v === "true" || v === "false") value = v === "true";
      else if (v === "null") value = null;
      else if (/^-?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?$/i.test(v)) value = Number(v);
      else value = v;
    } else fail(pointer, valueTok.pos, `expected a value but found ${describe(valueTok)}`);
    if (field.kind === "type" || field.kind === "id") {
      if (typeof value !== "string") fail(pointer, valueTok.pos, `a ${field.kind} is a name or an IRI`);
      const problem = termProblem(value);
      if (problem) fail(pointer, valueTok.pos, `the ${field.kind} "${value}" ${problem}`);
    }
    return { op: "compare", field, cmp, value };
  };

  if (peek().t === "end") fail(pointer, 0, "the filter is empty");
  const query = orExpr(0);
  const rest = peek();
  if (rest.t !== "end")
    fail(pointer, rest.pos, `expected AND, OR or the end of the filter but found ${describe(rest)}`);
  return query;
}

/** A filter written back as text, parseable by parseGraphFilter to the same tree. */
export function formatGraphFilter(query: GraphQuery): string {
  const literal = (v: Literal) =>
    typeof v === "string" ? `"${v.replace(/["'\\]/g, (c) => "\\" + c)}"` : String(v);
  switch (query.op) {
    case "and":
      return query.of
        .map((q) => (q.op === "or" ? `(${formatGraphFilter(q)})` : formatGraphFilter(q)))
        .join(" AND ");
    case "or":
      return query.of
        .map((q) => (q.op === "and" ? `(${formatGraphFilter(q)})` : formatGraphFilter(q)))
        .join(" OR ");
    case "not":
      return `NOT (${formatGraphFilter(query.of)})`;
    case "compare": {
      const f = query.field;
      const name = f.kind === "td" || f.kind === "state" ? `${f.kind}.${f.path.join(".")}` : f.kind;
      return `${name} ${query.cmp} ${literal(query.value)}`;
    }
    case "related": {
      const hops =
        query.max === undefined
          ? `${query.min}..*`
          : query.min === query.max
            ? `${query.min}`
            : `${query.min}..${query.max}`;
      const where = query.where ? ` { ${formatGraphFilter(query.where)} }` : "";
      return `${query.direction}(${query.rel ?? "*"}, ${hops})${where}`;
    }
  }
}

/** Validates a GraphQuery given as a value (e.g. from GraphQL) exactly as its text would be. */
export function assertGraphQuery(query: GraphQuery, pointer = "/filter"): GraphQuery {
  let text: string;
  try {
    text = formatGraphFilter(query);
  } catch {
    throw new ValidationError("The graph query is not a filter tree (docs/queries.md)", [
      { pointer, message: "is not a graph query" },
    ]);
  }
  return parseGraphFilter(text, pointer);
}
