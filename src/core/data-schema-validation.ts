// Values against a TD data schema (TD 1.1 §5.3.2): what a reported property value, an action
// input or an event's data must fit. Compiled once per schema by the caller, then cheap per value.
import type { Ajv, ErrorObject } from "ajv";
import { addAjvFormats, createAjv } from "./lazy-ajv.js";
import type { DataSchema } from "./thing-description.js";
import type { ErrorLocation } from "./errors.js";

// TD data schemas are JSON Schema plus TD terms (forms, observable, unit, @type, titles…) that
// must not be taken for keywords: strict off, so unknown terms are ignored as annotations.
let ajv: Ajv | undefined;

/** Returns the problems of a value (empty when it fits), each as a JSON pointer into the value. */
export type DataSchemaCheck = (value: unknown) => ErrorLocation[];

/** The TD terms of an affordance that are not part of its data schema. */
const NOT_SCHEMA = new Set(["forms", "observable", "uriVariables", "@type", "titles", "descriptions"]);

export function compileDataSchema(schema: DataSchema): DataSchemaCheck {
  const plain = Object.fromEntries(Object.entries(schema).filter(([key]) => !NOT_SCHEMA.has(key)));
  if (!ajv) {
    ajv = createAjv({ strict: false, allErrors: true, validateFormats: true });
    addAjvFormats(ajv);
  }
  const validate = ajv.compile(plain);
  return (value) =>
    validate(value)
      ? []
      : (validate.errors ?? []).map((e: ErrorObject) => ({
          pointer: e.instancePath,
          message: e.message ?? "is invalid",
        }));
}
