// Validation of Thing Descriptions against the TD 1.1 information model (Ajv, our own schemas).
// PLACEHOLDER: replaced by the full implementation.
import { ValidationError } from "./errors.js";
import type { ThingDescription } from "./thing-description.js";

export function validateThingDescription(td: unknown): asserts td is ThingDescription {
  if (typeof td !== "object" || td === null || Array.isArray(td)) {
    throw new ValidationError("A Thing Description is a JSON object", [{ pointer: "", message: "must be object" }]);
  }
}

/** Parses JSON text, refusing duplicate member names (which JSON.parse silently merges). */
export function parseJsonStrict(text: string): unknown {
  try {
    return JSON.parse(text) as unknown;
  } catch (err) {
    throw new ValidationError(`Malformed JSON: ${(err as Error).message}`);
  }
}
