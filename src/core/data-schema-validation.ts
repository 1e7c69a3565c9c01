// Values against a TD data schema (TD 1.1 §5.3.2): what a reported property value, an action
// input or an event's data must fit. Compiled once per schema by the caller, then cheap per value.
import type { Ajv, ErrorObject } from "ajv";
import { addAjvFormats, createAjv } from "./lazy-ajv.js";
import { canonicalJson } from "./canonical-json.js";
import type { DataSchema } from "./thing-description.js";
import type { ErrorLocation } from "./errors.js";
import { boundedRegExp } from "./time-budget.js";

// TD data schemas are JSON Schema plus TD terms (forms, observable, unit, @type, titles…) that
// must not be taken for keywords: strict off, so unknown terms are ignored as annotations.
let ajv: Ajv | undefined;
/** Schemas compiled by `ajv` since it was made. */
let compiledByAjv = 0;

/** Returns the problems of a value (empty when it fits), each as a JSON pointer into the value. */
export type DataSchemaCheck = (value: unknown) => ErrorLocation[];

/** The TD terms of an affordance that are not part of its data schema. */
const NOT_SCHEMA = new Set(["forms", "observable", "uriVariables", "@type", "titles", "descriptions"]);

/** Values an enum's message lists before it says how many more there are. */
const MAX_LISTED = 10;

/**
 * Ajv's sentence, with the values an `enum` or `const` allows written out: "must be equal to one
 * of the allowed values" leaves whoever sent the value to go and read the TD.
 */
function messageOf(error: ErrorObject): string {
  const params = error.params as { allowedValues?: unknown; allowedValue?: unknown };
  if (error.keyword === "enum" && Array.isArray(params.allowedValues)) {
    const allowed: unknown[] = params.allowedValues;
    const listed = allowed.slice(0, MAX_LISTED).map((value) => JSON.stringify(value));
    const more = allowed.length > MAX_LISTED ? ` (and ${allowed.length - MAX_LISTED} more)` : "";
    return `must be one of ${listed.join(", ")}${more}`;
  }
  if (error.keyword === "const") return `must be ${JSON.stringify(params.allowedValue)}`;
  return error.message ?? "is invalid";
}

/**
 * Compiled checks by the schema's canonical text: a fleet of Things shares a few schemas, and a
 * compile costs ~0.65 ms. Least recently used first out, so memory stays bounded.
 */
const compiled = new Map<string, DataSchemaCheck>();
const MAX_COMPILED = 2_000;

export function compileDataSchema(schema: DataSchema): DataSchemaCheck {
  const plain = Object.fromEntries(Object.entries(schema).filter(([key]) => !NOT_SCHEMA.has(key)));
  const key = canonicalJson(plain);
  const cached = compiled.get(key);
  if (cached) {
    compiled.delete(key);
    compiled.set(key, cached);
    return cached;
  }
  // Ajv also keeps, per instance and forever, a value for each distinct `pattern` (and the like)
  // it has compiled: a new instance every MAX_COMPILED compiles bounds those too (checks already
  // compiled keep what they use).
  if (ajv && compiledByAjv >= MAX_COMPILED) ajv = undefined;
  if (!ajv) {
    compiledByAjv = 0;
    // A TD's `pattern` comes from outside: matching it on a value runs with a time budget.
    const regExp = Object.assign((pattern: string, u: string) => boundedRegExp(pattern, u), {
      code: "boundedRegExp",
    });
    ajv = createAjv({ strict: false, allErrors: true, validateFormats: true, code: { regExp } });
    addAjvFormats(ajv);
  }
  const validate = ajv.compile(plain);
  compiledByAjv++;
  // Ajv keeps every compiled schema in its own cache, forever: ours is the one that is bounded.
  ajv.removeSchema(plain);
  const check: DataSchemaCheck = (value) =>
    validate(value)
      ? []
      : (validate.errors ?? []).map((e: ErrorObject) => ({
          pointer: e.instancePath,
          message: messageOf(e),
        }));
  compiled.set(key, check);
  if (compiled.size > MAX_COMPILED) {
    const oldest = compiled.keys().next().value;
    if (oldest !== undefined) compiled.delete(oldest);
  }
  return check;
}

/**
 * For tests: how many `pattern` values the Ajv instance in use holds (read from Ajv's value scope,
 * which is not public API: 0 if that ever changes).
 */
export function patternValuesHeld(): number {
  const values = (ajv?.scope as unknown as { _values?: Record<string, Map<unknown, unknown> | undefined> })
    ?._values;
  return values?.pattern?.size ?? 0;
}
