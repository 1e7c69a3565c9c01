// Validation of Thing Descriptions against the TD 1.1 information model (Ajv, our own schemas in
// thing-description-schema.ts, then the rules a schema cannot express), and the strict JSON parser
// that feeds it. Values in, values out: no I/O.
import type { ErrorObject, ValidateFunction } from "ajv";
import { addAjvFormats, createAjv } from "./lazy-ajv.js";
import { type ErrorLocation, ValidationError } from "./errors.js";
import { inexactInteger, jsonLimitProblem, jsonLimitSentence } from "./json-limits.js";
import type { ThingDescription } from "./thing-description.js";
import { FORMAT_IRI, FORMAT_IRI_REFERENCE, thingDescriptionSchema } from "./thing-description-schema.js";
import { iriProblem, isIri } from "./thing-id.js";

type JsonObject = Record<string, unknown>;

function isObject(value: unknown): value is JsonObject {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** RFC 6901 §3: one reference token. */
function token(name: string | number): string {
  if (typeof name === "number") return String(name);
  return name.includes("~") || name.includes("/") ? name.replaceAll("~", "~0").replaceAll("/", "~1") : name;
}

// ---------------------------------------------------------------------------------------------
// Schema validation (compiled once)

// RFC 3987 IRI-reference, where RFC 6570 template expressions ({p}, {?a,b}) may stand for parts:
// forms and links of a TD use them with uriVariables (§5.3.4, Form).
const TEMPLATE_EXPRESSION =
  /\{[+#./;?&=,!@|]?[A-Za-z0-9_.%]+(?::[1-9][0-9]{0,3}|\*)?(?:,[A-Za-z0-9_.%]+(?::[1-9][0-9]{0,3}|\*)?)*\}/g;
// eslint-disable-next-line no-control-regex
const NOT_IN_IRI = /[\u0000-\u0020<>"{}|\\^`\u007f-\u009f]/;
const BAD_PERCENT = /%(?![0-9A-Fa-f]{2})/;

/** Whether a TD may hold the string as an IRI reference (a link's or form's `href`). */
export function isIriReference(value: string): boolean {
  const literal = value.includes("{") ? value.replace(TEMPLATE_EXPRESSION, "x") : value;
  return !NOT_IN_IRI.test(literal) && !BAD_PERCENT.test(literal);
}

// Created and compiled on first use: programs that load core without validating (the CLI) skip
// the cost.
let compiledSchema: ValidateFunction<ThingDescription> | undefined;
function schemaValidator(): ValidateFunction<ThingDescription> {
  if (compiledSchema) return compiledSchema;
  const ajv = createAjv({
    allErrors: true,
    verbose: true,
    strict: true,
    strictTypes: false,
    strictTuples: false,
  });
  // `verbose` gives each error its parentSchema, where our `hints` annotation lives. strictTypes is
  // off because `if: {type: "array"}` discriminators leave `items` without a sibling `type`;
  // strictTuples because `@context` is an open tuple (the TD context, then any extensions).
  ajv.addKeyword({ keyword: "hints", schemaType: "object" });
  ajv.addFormat(FORMAT_IRI, { type: "string", validate: isIri });
  ajv.addFormat(FORMAT_IRI_REFERENCE, { type: "string", validate: isIriReference });
  addAjvFormats(ajv, ["date-time"]);
  compiledSchema = ajv.compile<ThingDescription>(thingDescriptionSchema);
  return compiledSchema;
}

const TYPE_NAMES: Record<string, string> = {
  string: "a string",
  object: "an object",
  array: "an array",
  number: "a number",
  integer: "an integer",
  boolean: "a boolean",
  null: "null",
};

const FORMAT_MESSAGES: Record<string, string> = {
  "date-time": "must be a date-time as in RFC 3339, such as 2024-05-01T12:00:00Z",
  [FORMAT_IRI]: "must be an absolute IRI (RFC 3987), such as https://example.com/x or urn:example:x",
  [FORMAT_IRI_REFERENCE]:
    'must be an IRI reference (RFC 3987), possibly with URI template expressions (RFC 6570): no spaces, no <>"|\\^` and a % only in %XX',
};

function quoted(value: unknown): string {
  return JSON.stringify(value);
}

function enumMessage(allowed: unknown[], data: unknown): string {
  const message = `must be one of ${allowed.map(quoted).join(", ")}`;
  if (typeof data !== "string") return message;
  const lower = data.toLowerCase();
  const near = allowed.find((a) => typeof a === "string" && a.toLowerCase() === lower);
  return near === undefined
    ? message
    : `${message} (did you mean ${quoted(near)}? these names are case-sensitive)`;
}

function hintFor(error: ErrorObject): string | undefined {
  const parent: unknown = error.parentSchema;
  if (!isObject(parent) || !isObject(parent.hints)) return undefined;
  const hint = parent.hints[error.keyword];
  return typeof hint === "string" ? hint : undefined;
}

/** One Ajv error as a place and a sentence; undefined for Ajv's bookkeeping errors. */
function locate(error: ErrorObject): ErrorLocation | undefined {
  // `if`: "must match then schema" repeats the error of the branch; `propertyNames` repeats the
  // error of the name, which Ajv also reports with `propertyName`.
  if (error.keyword === "if" || error.keyword === "propertyNames") return undefined;
  const params = error.params as Record<string, unknown>;
  let pointer = error.instancePath;
  if (typeof error.propertyName === "string") pointer += `/${token(error.propertyName)}`;
  const hint = hintFor(error);
  let message: string;
  switch (error.keyword) {
    case "type": {
      const types = String(params.type).split(",");
      message = hint ?? `must be ${types.map((t) => TYPE_NAMES[t] ?? t).join(" or ")}`;
      break;
    }
    case "enum":
      message = hint ?? enumMessage(params.allowedValues as unknown[], error.data);
      break;
    case "const":
      message = hint ?? `must be ${quoted(params.allowedValue)}`;
      break;
    case "format":
      message = hint ?? FORMAT_MESSAGES[String(params.format)] ?? error.message ?? "has the wrong format";
      break;
    case "uniqueItems": {
      const [i, j] = [Number(params.i), Number(params.j)];
      pointer += `/${Math.max(i, j)}`;
      message = hint ?? `repeats item ${Math.min(i, j)}; the items of this array must be unique`;
      break;
    }
    case "not":
      message = hint ?? "must not match the forbidden form";
      break;
    default:
      message = hint ?? error.message ?? `fails ${error.keyword}`;
  }
  return { pointer, message };
}

// ---------------------------------------------------------------------------------------------
// Rules a schema cannot express

const MAX_DEPTH = 100;
const MAX_PATTERN_LENGTH = 256;
// TD 1.1, Thing Model: a placeholder is {{NAME}}, replaced when a TD is instantiated.
const PLACEHOLDER = /\{\{[^{}]+\}\}/;

/** Why a `security` entry in a TD is unusable, or undefined. */
function undefinedScheme(name: string, definitions: JsonObject): string | undefined {
  if (Object.hasOwn(definitions, name)) return undefined;
  const known = Object.keys(definitions);
  const listed =
    known.length === 0 ? "which defines none" : `which defines ${known.slice(0, 5).map(quoted).join(", ")}`;
  return `names security scheme ${quoted(name)}, which is not in securityDefinitions (${listed}${known.length > 5 ? ", …" : ""})`;
}

/** §5.3.1 Thing, §5.3.4 Form: every name in `security` is a key of `securityDefinitions`. */
function checkSecurityNames(
  value: unknown,
  pointer: string,
  definitions: JsonObject,
  out: ErrorLocation[],
): void {
  if (typeof value === "string") {
    const problem = undefinedScheme(value, definitions);
    if (problem !== undefined) out.push({ pointer, message: problem });
  } else if (Array.isArray(value)) {
    value.forEach((name, i) => {
      if (typeof name !== "string") return;
      const problem = undefinedScheme(name, definitions);
      if (problem !== undefined) out.push({ pointer: `${pointer}/${i}`, message: problem });
    });
  }
}

/** §5.3.3 ComboSecurityScheme: oneOf/allOf name other definitions, without cycles. */
function checkComboSchemes(definitions: JsonObject, out: ErrorLocation[]): void {
  const edges = new Map<string, { target: string; pointer: string }[]>();
  for (const [name, scheme] of Object.entries(definitions)) {
    if (!isObject(scheme) || scheme.scheme !== "combo") continue;
    const list: { target: string; pointer: string }[] = [];
    for (const key of ["oneOf", "allOf"]) {
      const names = scheme[key];
      if (!Array.isArray(names)) continue;
      names.forEach((target, i) => {
        if (typeof target !== "string") return;
        const pointer = `/securityDefinitions/${token(name)}/${key}/${i}`;
        const problem = undefinedScheme(target, definitions);
        if (problem !== undefined) out.push({ pointer, message: problem });
        else list.push({ target, pointer });
      });
    }
    edges.set(name, list);
  }
  // Depth-first search over combo schemes (iterative: a TD may chain thousands); a back edge
  // closes a cycle.
  const state = new Map<string, "open" | "done">();
  for (const start of edges.keys()) {
    if (state.has(start)) continue;
    state.set(start, "open");
    const stack = [{ name: start, next: 0 }];
    for (let frame = stack.at(-1); frame !== undefined; frame = stack.at(-1)) {
      const outgoing = edges.get(frame.name) ?? [];
      const edge = outgoing[frame.next++];
      if (edge === undefined) {
        state.set(frame.name, "done");
        stack.pop();
        continue;
      }
      const seen = state.get(edge.target);
      if (seen === "open") {
        const from = stack.findIndex((f) => f.name === edge.target);
        const cycle = [...stack.slice(from).map((f) => f.name), edge.target].join(" → ");
        out.push({ pointer: edge.pointer, message: `makes combo schemes refer to themselves (${cycle})` });
      } else if (seen === undefined && edges.has(edge.target)) {
        state.set(edge.target, "open");
        stack.push({ name: edge.target, next: 0 });
      }
    }
  }
}

/** The members of a TD that hold its affordances, by kind (TD 1.1 §5.3.1). */
export const AFFORDANCE_KINDS = ["properties", "actions", "events"] as const;
const AFFORDANCE_SCHEMAS: Record<(typeof AFFORDANCE_KINDS)[number], readonly string[]> = {
  properties: [],
  actions: ["input", "output"],
  events: ["subscription", "data", "dataResponse", "cancellation"],
};

function forEachEntry(map: unknown, pointer: string, visit: (value: unknown, pointer: string) => void): void {
  if (!isObject(map)) return;
  for (const [key, value] of Object.entries(map)) visit(value, `${pointer}/${token(key)}`);
}

function forEachForm(td: JsonObject, visit: (form: JsonObject, pointer: string) => void): void {
  const visitForms = (forms: unknown, pointer: string): void => {
    if (!Array.isArray(forms)) return;
    forms.forEach((form, i) => {
      if (isObject(form)) visit(form, `${pointer}/${i}`);
    });
  };
  visitForms(td.forms, "/forms");
  for (const kind of AFFORDANCE_KINDS) {
    forEachEntry(td[kind], `/${kind}`, (affordance, pointer) => {
      if (isObject(affordance)) visitForms(affordance.forms, `${pointer}/forms`);
    });
  }
}

/** Every data schema of a TD (§5.3.2), nested ones included, with its pointer. */
function forEachDataSchema(td: JsonObject, visit: (schema: JsonObject, pointer: string) => void): void {
  const walk = (schema: unknown, pointer: string): void => {
    if (!isObject(schema)) return;
    visit(schema, pointer);
    forEachEntry(schema.properties, `${pointer}/properties`, walk);
    if (Array.isArray(schema.items)) schema.items.forEach((item, i) => walk(item, `${pointer}/items/${i}`));
    else walk(schema.items, `${pointer}/items`);
    if (Array.isArray(schema.oneOf)) schema.oneOf.forEach((item, i) => walk(item, `${pointer}/oneOf/${i}`));
  };
  forEachEntry(td.schemaDefinitions, "/schemaDefinitions", walk);
  forEachEntry(td.uriVariables, "/uriVariables", walk);
  for (const kind of AFFORDANCE_KINDS) {
    forEachEntry(td[kind], `/${kind}`, (affordance, pointer) => {
      if (!isObject(affordance)) return;
      if (kind === "properties") walk(affordance, pointer);
      for (const member of AFFORDANCE_SCHEMAS[kind]) walk(affordance[member], `${pointer}/${member}`);
      forEachEntry(affordance.uriVariables, `${pointer}/uriVariables`, walk);
    });
  }
}

function jsonTypeOf(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value === "number") return Number.isInteger(value) ? "integer" : "number";
  return typeof value;
}

function hasDataType(value: unknown, type: string): boolean {
  const actual = jsonTypeOf(value);
  return actual === type || (type === "number" && actual === "integer");
}

function checkDataSchema(schema: JsonObject, pointer: string, out: ErrorLocation[]): void {
  // PITFALLS: a pattern becomes a regular expression; bound it and make sure it compiles.
  const pattern = schema.pattern;
  if (typeof pattern === "string") {
    if (pattern.length > MAX_PATTERN_LENGTH) {
      out.push({
        pointer: `${pointer}/pattern`,
        message: `is ${pattern.length} characters long; a pattern may have at most ${MAX_PATTERN_LENGTH}`,
      });
    } else {
      try {
        new RegExp(pattern, "u");
      } catch (err) {
        out.push({
          pointer: `${pointer}/pattern`,
          message: `is not a regular expression (ECMAScript, u flag): ${(err as Error).message}`,
        });
      }
    }
  }
  // A value of `enum` or `const` that the schema's own `type` forbids can never be sent.
  const type = schema.type;
  if (typeof type !== "string" || !(type in TYPE_NAMES)) return;
  const clash = (value: unknown): string =>
    `is ${TYPE_NAMES[jsonTypeOf(value)] ?? "a value"}, but the data schema's type is ${quoted(type)}`;
  if (Array.isArray(schema.enum)) {
    schema.enum.forEach((value, i) => {
      if (!hasDataType(value, type)) out.push({ pointer: `${pointer}/enum/${i}`, message: clash(value) });
    });
  }
  if ("const" in schema && !hasDataType(schema.const, type)) {
    out.push({ pointer: `${pointer}/const`, message: clash(schema.const) });
  }
}

/**
 * TD 1.1, Thing Model: a TD carries no `tm:` terms, no {{placeholders}} and is no tm:ThingModel.
 * Also bounds the nesting depth before Ajv recurses into the document. Returns false if too deep.
 */
function checkNoThingModelTerms(
  value: unknown,
  path: Array<string | number>,
  depth: number,
  out: ErrorLocation[],
): boolean {
  // The pointer is built only when there is something to report: this walk visits every node.
  const here = () => path.map((p) => `/${token(p)}`).join("");
  if (depth > MAX_DEPTH) {
    out.push({ pointer: here(), message: `is nested more than ${MAX_DEPTH} levels deep` });
    return false;
  }
  if (typeof value === "string") {
    const placeholder = PLACEHOLDER.exec(value);
    if (placeholder !== null) {
      out.push({
        pointer: here(),
        message: `contains the Thing Model placeholder ${placeholder[0]}, which a Thing Description must replace by a value`,
      });
    }
    return true;
  }
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      path.push(i);
      const ok = checkNoThingModelTerms(value[i], path, depth + 1, out);
      path.pop();
      if (!ok) return false;
    }
    return true;
  }
  if (!isObject(value)) return true;
  for (const key of Object.keys(value)) {
    const member = value[key];
    path.push(key);
    const child = here;
    if (key.startsWith("tm:")) {
      out.push({
        pointer: child(),
        message: `is the Thing Model term ${quoted(key)}, which a Thing Description must not contain`,
      });
      path.pop();
      continue;
    }
    if (PLACEHOLDER.test(key)) {
      out.push({
        pointer: child(),
        message: "has a Thing Model placeholder in its name, which a Thing Description must replace",
      });
    }
    if (key === "@type") {
      const types: unknown[] = Array.isArray(member) ? member : [member];
      types.forEach((type, i) => {
        if (type === "tm:ThingModel") {
          out.push({
            pointer: Array.isArray(member) ? `${child()}/${i}` : child(),
            message:
              "declares a Thing Model (tm:ThingModel); register a Thing Description instantiated from it instead",
          });
        }
      });
    }
    const ok = checkNoThingModelTerms(member, path, depth + 1, out);
    path.pop();
    if (!ok) return false;
  }
  return true;
}

function checkRules(td: JsonObject, out: ErrorLocation[]): void {
  if (typeof td.id === "string") {
    const problem = iriProblem(td.id);
    if (problem !== undefined)
      out.push({ pointer: "/id", message: `is not a valid Thing id: it ${problem}` });
  }

  const definitions = isObject(td.securityDefinitions) ? td.securityDefinitions : {};
  checkSecurityNames(td.security, "/security", definitions, out);
  checkComboSchemes(definitions, out);

  const schemaDefinitions = isObject(td.schemaDefinitions) ? td.schemaDefinitions : {};
  forEachForm(td, (form, pointer) => {
    checkSecurityNames(form.security, `${pointer}/security`, definitions, out);
    // §5.3.4 AdditionalExpectedResponse: `schema` names an entry of schemaDefinitions.
    const responses = form.additionalResponses;
    const list: unknown[] = Array.isArray(responses) ? responses : [responses];
    list.forEach((response, i) => {
      if (!isObject(response) || typeof response.schema !== "string") return;
      if (Object.hasOwn(schemaDefinitions, response.schema)) return;
      out.push({
        pointer: `${pointer}/additionalResponses${Array.isArray(responses) ? `/${i}` : ""}/schema`,
        message: `names schema ${quoted(response.schema)}, which is not in schemaDefinitions`,
      });
    });
  });

  if (Array.isArray(td.links)) {
    td.links.forEach((link, i) => {
      if (isObject(link) && link.rel === "tm:extends") {
        out.push({
          pointer: `/links/${i}/rel`,
          message: "is the Thing Model relation tm:extends, which a Thing Description must not contain",
        });
      }
    });
  }

  forEachDataSchema(td, (schema, pointer) => checkDataSchema(schema, pointer, out));
}

function summarize(errors: ErrorLocation[]): string {
  const [first] = errors;
  if (first === undefined) return "The Thing Description is not valid TD 1.1";
  const where = first.pointer === "" ? "the top level" : first.pointer;
  const more = errors.length - 1;
  const rest = more === 0 ? "" : ` (and ${more} more problem${more === 1 ? "" : "s"})`;
  return `The Thing Description is not valid TD 1.1: ${where} ${first.message}${rest}`;
}

function dedupe(errors: ErrorLocation[]): ErrorLocation[] {
  const seen = new Set<string>();
  return errors.filter((e) => {
    const key = `${e.pointer}\u0000${e.message}`;
    if (seen.has(key)) return false;
    seen.add(key);
    return true;
  });
}

/**
 * Checks that `td` is a valid W3C WoT Thing Description 1.1. Throws a ValidationError listing every
 * problem with its JSON pointer; the message names the first.
 */
export function validateThingDescription(td: unknown): asserts td is ThingDescription {
  const ruleErrors: ErrorLocation[] = [];
  if (isObject(td) && !checkNoThingModelTerms(td, [], 0, ruleErrors)) {
    throw new ValidationError(summarize(ruleErrors), ruleErrors);
  }
  const errors: ErrorLocation[] = [];
  const validateSchema = schemaValidator();
  if (!validateSchema(td)) {
    for (const error of validateSchema.errors ?? []) {
      const location = locate(error);
      if (location !== undefined) errors.push(location);
    }
  }
  errors.push(...ruleErrors);
  if (isObject(td)) checkRules(td, errors);
  if (errors.length > 0) {
    const unique = dedupe(errors);
    throw new ValidationError(summarize(unique), unique);
  }
}

// ---------------------------------------------------------------------------------------------
// Strict JSON

/**
 * JSON that goes into the Log (a request's body, a value or TD given to the CLI), read strictly
 * (parseJsonStrict) and refused where JSON.parse would round an integer (inexactInteger): the
 * Log would record, and sign, a value nobody sent. Its canonical JSON (RFC 8785) has only 64-bit
 * floats, so the exact value cannot be kept either.
 */
export function parseExactJson(text: string): unknown {
  const value = parseJsonStrict(text);
  const inexact = inexactIntegerError(text);
  if (inexact !== undefined) throw inexact;
  return value;
}

/** The refusal of JSON text (known to parse) holding an integer JSON.parse rounds; else undefined. */
export function inexactIntegerError(text: string): ValidationError | undefined {
  const inexact = inexactInteger(text);
  if (inexact === undefined) return undefined;
  return new ValidationError(
    `The JSON at ${inexact.pointer === "" ? "the top level" : inexact.pointer} ${inexact.message}: send it as a string, or with an exponent to take the nearest float`,
    [inexact],
  );
}

/**
 * Parses JSON text (RFC 8259) like JSON.parse, but refuses duplicate member names (§4: names
 * SHOULD be unique; JSON.parse silently keeps the last) and reports malformed text by line and column.
 */
export function parseJsonStrict(text: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch (err) {
    throw malformed(text, err as Error);
  }
  // Depth first: the duplicate scan below builds a pointer per repeated name, as long as the
  // nesting is deep (a 600 KB body of 100,000 repeats 3,000 levels deep ran the hub out of memory).
  const problem = jsonLimitProblem(value);
  if (problem) {
    throw new ValidationError(jsonLimitSentence("The JSON", problem), [problem]);
  }
  // Fast path: JSON.parse keeps one member per name, so the text has duplicates exactly when it
  // has more member names than the parsed objects have keys. Only then locate them.
  if (typeof value === "object" && value !== null && countMemberNames(text) !== countKeys(value)) {
    const { found: duplicates, total } = findDuplicateNames(text);
    if (duplicates.length > 0) {
      const [first] = duplicates;
      const where =
        first === undefined || first.pointer === ""
          ? "the top-level object"
          : `the object at ${first.pointer}`;
      const more = total - 1;
      throw new ValidationError(
        `The JSON has duplicate member names: ${where} ${first?.message ?? ""}${more > 0 ? ` (and ${more} more)` : ""}`,
        duplicates,
      );
    }
  }
  return value;
}

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** Member names in JSON text that JSON.parse accepted: the strings followed by a colon. */
function countMemberNames(text: string): number {
  let names = 0;
  let i = text.indexOf('"');
  while (i !== -1) {
    let end = text.indexOf('"', i + 1);
    for (;;) {
      let k = end - 1;
      while (text.charCodeAt(k) === BACKSLASH) k--;
      if ((end - 1 - k) % 2 === 0) break;
      end = text.indexOf('"', end + 1);
    }
    let next = end + 1;
    let c = text.charCodeAt(next);
    while (c === 0x20 || c === 0x0a || c === 0x0d || c === 0x09) c = text.charCodeAt(++next);
    if (c === 0x3a /* : */) names++;
    i = text.indexOf('"', next);
  }
  return names;
}

/** Own keys of every object in a parsed JSON value (iterative: nesting depth is the input's). */
function countKeys(root: object): number {
  let keys = 0;
  const pending: unknown[] = [root];
  while (pending.length > 0) {
    const value = pending.pop();
    if (typeof value !== "object" || value === null) continue;
    if (Array.isArray(value)) {
      for (const item of value) if (typeof item === "object" && item !== null) pending.push(item);
    } else {
      for (const key of Object.keys(value)) {
        keys++;
        const item = (value as JsonObject)[key];
        if (typeof item === "object" && item !== null) pending.push(item);
      }
    }
  }
  return keys;
}

/**
 * Scans text that JSON.parse accepted and reports every object that repeats a member name, by the
 * object's pointer. Strings are skipped with indexOf, so the cost is close to one pass over the
 * structural characters.
 */
/** Repeated member names located (pointer built) in one error; the others are only counted. */
const MAX_LOCATED_DUPLICATES = 20;

function findDuplicateNames(text: string): { found: ErrorLocation[]; total: number } {
  const found: ErrorLocation[] = [];
  let total = 0;
  // One entry per open container: the names seen (objects) or null (arrays), and the slot (member
  // name or index) of the value being read in it.
  const names: (Set<string> | null)[] = [];
  const slots: (string | number)[] = [];
  let expectName = false;
  const n = text.length;
  for (let i = 0; i < n; i++) {
    const c = text.charCodeAt(i);
    if (c === QUOTE) {
      let end = text.indexOf('"', i + 1);
      let escaped = false;
      for (;;) {
        let backslashes = 0;
        for (let k = end - 1; text.charCodeAt(k) === BACKSLASH; k--) backslashes++;
        if (backslashes % 2 === 0) break;
        escaped = true;
        end = text.indexOf('"', end + 1);
      }
      if (expectName) {
        const raw = text.slice(i + 1, end);
        const name = escaped || raw.includes("\\") ? (JSON.parse(text.slice(i, end + 1)) as string) : raw;
        const top = names.length - 1;
        const seen = names[top];
        if (seen !== undefined && seen !== null) {
          if (seen.has(name)) {
            total++;
            if (found.length < MAX_LOCATED_DUPLICATES) {
              let pointer = "";
              for (let k = 0; k < top; k++) pointer += `/${token(slots[k] ?? "")}`;
              found.push({ pointer, message: `repeats the member name ${quoted(name)}` });
            }
          } else {
            seen.add(name);
          }
        }
        slots[top] = name;
        expectName = false;
      }
      i = end;
    } else if (c === 0x7b /* { */) {
      names.push(new Set());
      slots.push("");
      expectName = true;
    } else if (c === 0x5b /* [ */) {
      names.push(null);
      slots.push(0);
    } else if (c === 0x7d /* } */ || c === 0x5d /* ] */) {
      names.pop();
      slots.pop();
      expectName = false;
    } else if (c === 0x2c /* , */) {
      const top = names.length - 1;
      if (names[top] === null) slots[top] = (slots[top] as number) + 1;
      else expectName = true;
    }
  }
  return { found, total };
}

/** The ValidationError for text JSON.parse refused, with the line and column of the first error. */
function malformed(text: string, err: Error): ValidationError {
  const located = locateSyntaxError(text);
  let offset: number | undefined = located?.offset;
  let reason = located?.reason;
  if (located === undefined) {
    // Our scanner and V8 disagree (they should not): fall back on V8's words and position.
    const position = /at position (\d+)/.exec(err.message);
    offset = position?.[1] === undefined ? undefined : Number(position[1]);
    reason = err.message;
  }
  let place: string | undefined;
  if (offset !== undefined) {
    let line = 1;
    let lineStart = 0;
    for (let i = text.indexOf("\n"); i !== -1 && i < offset; i = text.indexOf("\n", i + 1)) {
      line++;
      lineStart = i + 1;
    }
    place = `line ${line}, column ${offset - lineStart + 1}`;
  }
  const why = reason ?? "not valid JSON";
  return new ValidationError(
    place === undefined ? `Malformed JSON: ${why}` : `Malformed JSON at ${place}: ${why}`,
    [{ pointer: "", message: place === undefined ? why : `${place}: ${why}` }],
  );
}

const NUMBER = /-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?/y;
const ESCAPES = new Set(['"', "\\", "/", "b", "f", "n", "r", "t"]);

function describeCharacter(text: string, i: number): string {
  const c = text.codePointAt(i);
  if (c === undefined) return "end of input";
  if (c === 0xfeff) return "byte order mark U+FEFF";
  if (c < 0x20 || c === 0x7f) return `control character U+${c.toString(16).toUpperCase().padStart(4, "0")}`;
  return quoted(String.fromCodePoint(c));
}

/**
 * RFC 8259 grammar as an iterative state machine (deep nesting cannot overflow the stack): the
 * offset of the first error and why, or undefined if the text is valid. Used only on the error path.
 */
function locateSyntaxError(text: string): { offset: number; reason: string } | undefined {
  const VALUE = 0;
  const NAME = 1;
  const COLON = 2;
  const AFTER = 3;
  const stack: number[] = []; // 0 object, 1 array
  let state = VALUE;
  let justOpened = false;
  let i = 0;
  const n = text.length;
  const fail = (reason: string): { offset: number; reason: string } => ({ offset: i, reason });
  for (;;) {
    while (i < n) {
      const w = text.charCodeAt(i);
      if (w !== 0x20 && w !== 0x09 && w !== 0x0a && w !== 0x0d) break;
      i++;
    }
    if (i >= n) {
      if (state === AFTER && stack.length === 0) return undefined;
      return fail("unexpected end of input");
    }
    const c = text[i];
    const top = stack[stack.length - 1];
    if (state === VALUE) {
      if (c === "{") {
        stack.push(0);
        state = NAME;
        justOpened = true;
        i++;
        continue;
      }
      if (c === "[") {
        stack.push(1);
        justOpened = true;
        i++;
        continue;
      }
      if (c === "]" && justOpened && top === 1) {
        stack.pop();
        state = AFTER;
        justOpened = false;
        i++;
        continue;
      }
      justOpened = false;
      if (c === '"') {
        const problem = scanString();
        if (problem !== undefined) return problem;
      } else if (c === "-" || (c !== undefined && c >= "0" && c <= "9")) {
        NUMBER.lastIndex = i;
        const match = NUMBER.exec(text);
        if (match === null) return fail(`unexpected character ${describeCharacter(text, i)} in a number`);
        i += match[0].length;
        if (text[i] === ".") return fail("incomplete number (a digit must follow the '.')");
      } else if (text.startsWith("true", i)) i += 4;
      else if (text.startsWith("false", i)) i += 5;
      else if (text.startsWith("null", i)) i += 4;
      else return fail(`unexpected ${describeCharacter(text, i)}; expected a value`);
      state = AFTER;
    } else if (state === NAME) {
      if (c === "}" && justOpened) {
        stack.pop();
        state = AFTER;
        justOpened = false;
        i++;
        continue;
      }
      justOpened = false;
      if (c !== '"')
        return fail(`unexpected ${describeCharacter(text, i)}; expected a member name in double quotes`);
      const problem = scanString();
      if (problem !== undefined) return problem;
      state = COLON;
    } else if (state === COLON) {
      if (c !== ":")
        return fail(`unexpected ${describeCharacter(text, i)}; expected ':' after the member name`);
      i++;
      state = VALUE;
    } else {
      if (top === undefined)
        return fail(`unexpected ${describeCharacter(text, i)} after the end of the JSON value`);
      const close = top === 0 ? "}" : "]";
      if (c === ",") {
        state = top === 0 ? NAME : VALUE;
        i++;
      } else if (c === close) {
        stack.pop();
        i++;
      } else {
        return fail(`unexpected ${describeCharacter(text, i)}; expected ',' or '${close}'`);
      }
    }
  }

  function scanString(): { offset: number; reason: string } | undefined {
    i++;
    for (;;) {
      if (i >= n) return fail("unterminated string");
      const c = text.charCodeAt(i);
      if (c === QUOTE) {
        i++;
        return undefined;
      }
      if (c < 0x20) return fail(`${describeCharacter(text, i)} in a string (escape it)`);
      if (c === BACKSLASH) {
        const e = text[i + 1];
        if (e === "u") {
          if (!/^[0-9A-Fa-f]{4}$/.test(text.slice(i + 2, i + 6)))
            return fail("invalid \\u escape in a string");
          i += 6;
        } else if (e !== undefined && ESCAPES.has(e)) {
          i += 2;
        } else {
          return fail(`invalid escape \\${e ?? ""} in a string`);
        }
      } else {
        i++;
      }
    }
  }
}
