// Loads the type vocabulary (vocab/types.json by default, replaceable by configuration): the
// file's I/O lives here, its validation and meaning in core/vocabulary.ts.
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { ValidationError, parseJsonStrict, parseVocabulary, type Vocabulary } from "../core/index.js";
import { fileProblem } from "./file-problem.js";

/** The vocabulary shipped with the hub (from src/hub or dist/hub, two levels below the package). */
export const DEFAULT_VOCABULARY_PATH = fileURLToPath(new URL("../../vocab/types.json", import.meta.url));

/**
 * Reads and checks a vocabulary file; `setting` names where the path came from (`--vocabulary`,
 * HYPERTHINGS_VOCABULARY), for the one line that says what is wrong with it.
 */
export function loadVocabulary(path: string = DEFAULT_VOCABULARY_PATH, setting?: string): Vocabulary {
  const source = setting === undefined ? path : `${path} (${setting})`;
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    throw new ValidationError(`The vocabulary ${source} cannot be read: ${fileProblem(err)}`);
  }
  let value: unknown;
  try {
    value = parseJsonStrict(text.replace(/^\uFEFF/, ""));
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    throw new ValidationError(`The vocabulary ${source} is not a vocabulary: ${err.message}`);
  }
  return parseVocabulary(value, source);
}
