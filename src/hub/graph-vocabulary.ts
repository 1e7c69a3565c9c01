// Loads the type vocabulary (vocab/types.json by default, replaceable by configuration): the
// file's I/O lives here, its validation and meaning in core/vocabulary.ts.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ValidationError, parseVocabulary, type Vocabulary } from "../core/index.js";

/** The vocabulary shipped with the hub (from src/hub or dist/hub, two levels below the package). */
export const DEFAULT_VOCABULARY_PATH = fileURLToPath(new URL("../../vocab/types.json", import.meta.url));

export function loadVocabulary(path: string = DEFAULT_VOCABULARY_PATH): Vocabulary {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ValidationError(`The vocabulary ${path} cannot be read: ${(err as Error).message}`);
  }
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new ValidationError(`The vocabulary ${path} is not JSON: ${(err as Error).message}`);
  }
  return parseVocabulary(value, path);
}
