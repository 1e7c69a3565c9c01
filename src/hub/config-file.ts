// The configuration file of `things serve --config FILE` (HYPERTHINGS_CONFIG): YAML or JSON, one
// key per setting (configFileKeys), read and type-checked here; loadConfig checks the values.
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { dirname, resolve } from "node:path";
import { loadYaml, ValidationError } from "../core/index.js";
import {
  closestName,
  configEnvironment,
  configFileKeys,
  type ConfigFile,
  type ConfigFileKey,
} from "./config.js";
import { fileProblem } from "./file-problem.js";

/** The largest configuration file read: one naming every setting, with comments, is a few KiB. */
export const MAX_CONFIG_FILE_BYTES = 1024 * 1024;

function tooLarge(path: string, bytes: number | undefined): ValidationError {
  const size = bytes === undefined ? "more than 1 MiB" : `${bytes} bytes`;
  return new ValidationError(
    `the configuration file ${path} is ${size}; a configuration file may be ${MAX_CONFIG_FILE_BYTES} bytes (1 MiB) at most`,
  );
}

/**
 * The text of the file and its mode, read no further than the bound: a file over it is refused
 * by its size before it is read, and a FIFO or a device (`/dev/zero`), which has no size, once
 * it gave more.
 */
function readBounded(path: string): { text: string; mode: number } {
  const fd = openSync(path, "r");
  try {
    const stat = fstatSync(fd);
    if (stat.isFile() && stat.size > MAX_CONFIG_FILE_BYTES) throw tooLarge(path, stat.size);
    const buffer = Buffer.alloc(MAX_CONFIG_FILE_BYTES + 1);
    let length = 0;
    while (length < buffer.length) {
      const n = readSync(fd, buffer, length, buffer.length - length, null);
      if (n === 0) break;
      length += n;
    }
    if (length > MAX_CONFIG_FILE_BYTES) throw tooLarge(path, undefined);
    return { text: buffer.toString("utf8", 0, length), mode: stat.mode };
  } finally {
    closeSync(fd);
  }
}

/** The settings that hold a secret: the tokens, and the URLs that may carry a password. */
const SECRET_KEYS: readonly ConfigFileKey[] = ["adminToken", "readToken"];
const URL_KEYS: readonly ConfigFileKey[] = ["store", "mqttUrl", "bus"];

function isConfigFileKey(name: string): name is ConfigFileKey {
  return Object.hasOwn(configFileKeys, name);
}

/**
 * The key a person most likely meant: the one of an environment variable given as a key, the
 * one spelt alike but for case, `_` and `-` (`data_dir`), or one within 2 edits.
 */
function meantKey(name: string): string | undefined {
  const keys = Object.keys(configFileKeys);
  const byVariable = Object.entries(configEnvironment).find(([, variable]) => variable === name);
  if (byVariable !== undefined) return byVariable[0];
  const plain = (key: string) => key.toLowerCase().replace(/[-_]/g, "");
  return keys.find((key) => plain(key) === plain(name)) ?? closestName(name, keys);
}

/** A value as a message names it: `the text "8080"`, `a list`, `true`; a secret's by its type alone. */
function described(value: unknown, secret: boolean): string {
  if (secret)
    return Array.isArray(value) ? "a list" : typeof value === "object" ? "a mapping" : `a ${typeof value}`;
  if (typeof value === "string") return `the text "${value}"`;
  if (Array.isArray(value)) return "a list";
  if (typeof value === "object" && value !== null) return "a mapping";
  return String(value);
}

/** A value of the file as the text its environment variable would hold; a message if its type is wrong. */
function textOf(key: ConfigFileKey, value: unknown, folder: string): string | { problem: string } {
  const kind = configFileKeys[key];
  const secret = SECRET_KEYS.includes(key) || URL_KEYS.includes(key);
  if (value === null || value === undefined)
    return { problem: `${key} has no value: give one, or leave the key out` };
  if (typeof value === "string" && value.trim() === "") return { problem: `${key} must not be empty` };
  switch (kind) {
    case "integer":
      return typeof value === "number"
        ? String(value)
        : { problem: `${key} must be a whole number, not ${described(value, secret)}` };
    case "boolean":
      if (typeof value !== "boolean")
        return { problem: `${key} must be true or false, not ${described(value, secret)}` };
      // As the variables take them: HYPERTHINGS_AUTH=read|write, HYPERTHINGS_MQTT=on|off.
      if (key === "authRead") return value ? "read" : "write";
      if (key === "mqtt") return value ? "on" : "off";
      return String(value);
    case "list":
      if (typeof value === "string") return value;
      if (Array.isArray(value) && value.every((item) => typeof item === "string" && item.trim() !== ""))
        return value.join(",");
      return {
        problem: `${key} must be a list of texts, or one text with commas, not ${described(value, secret)}`,
      };
    case "path":
      if (typeof value !== "string")
        return { problem: `${key} must be a path, not ${described(value, secret)}` };
      // No shell reads the file: "~/hub" would be a folder named "~" beside it.
      if (value.startsWith("~"))
        return { problem: `${key} must be absolute or relative to this file's folder: "~" is not expanded` };
      return resolve(folder, value);
    case "string":
      return typeof value === "string"
        ? value
        : { problem: `${key} must be text, not ${described(value, secret)}` };
  }
}

/** Whether a setting's text holds a secret: a token, or a URL (one of a list) with a password. */
function holdsSecret(key: ConfigFileKey, text: string): boolean {
  if (SECRET_KEYS.includes(key)) return true;
  if (!URL_KEYS.includes(key)) return false;
  return text.split(",").some((url) => {
    try {
      return new URL(url.trim()).password !== "";
    } catch {
      return false;
    }
  });
}

/**
 * Reads the configuration file at `given`: a mapping of settings, each of the type its key takes
 * (relative paths are the file's folder's). One that holds a secret must not be readable by every
 * user of this machine. Every problem is a ValidationError naming the file, and the line.
 */
export function readConfigFile(given: string): ConfigFile {
  const path = resolve(given);
  let text: string;
  let mode: number;
  try {
    ({ text, mode } = readBounded(path));
  } catch (err) {
    if (err instanceof ValidationError) throw err;
    throw new ValidationError(`the configuration file ${path} cannot be read: ${fileProblem(err)}`);
  }
  const { LineCounter, parseDocument, isMap, isNode, isScalar } = loadYaml();
  const lines = new LineCounter();
  // JSON is YAML 1.2: one parser for both gives JSON files the same line and column errors.
  const doc = parseDocument(text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  const at = (offset: number | undefined): string => {
    const { line, col } = lines.linePos(offset ?? 0);
    return `${path}:${line}:${col}`;
  };
  const error = doc.errors[0];
  if (error !== undefined) {
    const pos = error.linePos?.[0] ?? lines.linePos(error.pos[0]);
    throw new ValidationError(
      `${path}:${pos.line}:${pos.col}: ${error.message.split("\n")[0] ?? error.message}`,
    );
  }
  const settings = new Map<ConfigFileKey, { text: string; at: string }>();
  // An empty file (or one of comments only) sets nothing.
  if (doc.contents === null) return { path, settings };
  if (!isMap(doc.contents)) {
    throw new ValidationError(
      `${at(doc.contents.range?.[0])}: a configuration file is a mapping of settings (port: 8080, …), as README.md lists them`,
    );
  }
  const folder = dirname(path);
  const secrets: string[] = [];
  for (const pair of doc.contents.items) {
    const keyNode = pair.key;
    const name = isScalar(keyNode) ? String(keyNode.value) : "";
    const keyAt = at(isScalar(keyNode) ? keyNode.range?.[0] : undefined);
    if (!isConfigFileKey(name)) {
      const meant = name === "" ? undefined : meantKey(name);
      throw new ValidationError(
        `${keyAt}: ${name === "" ? "a key must be a name" : `${name} is no setting`}${meant === undefined ? "" : ` (did you mean ${meant}?)`}`,
      );
    }
    const valueNode = pair.value;
    const value: unknown = isNode(valueNode) ? valueNode.toJS(doc, { maxAliasCount: 100 }) : valueNode;
    // A key without a value is pointed at by its key.
    const valueAt = isNode(valueNode) && value !== null ? at(valueNode.range?.[0]) : keyAt;
    const result = textOf(name, value, folder);
    if (typeof result !== "string") throw new ValidationError(`${valueAt}: ${result.problem}`);
    settings.set(name, { text: result, at: valueAt });
    if (holdsSecret(name, result))
      secrets.push(`${name} (line ${lines.linePos(keyNode.range?.[0] ?? 0).line})`);
  }
  // Others' read bit: the group may be the service's (root:hyperthings, mode 0640).
  if (secrets.length > 0 && process.platform !== "win32" && (mode & 0o004) !== 0) {
    throw new ValidationError(
      `${path} holds a secret, ${secrets.join(", ")}, yet every user of this machine may read it (mode 0${(mode & 0o777).toString(8)}): chmod o-r it (0640 leaves it to its group, 0600 to its owner)`,
    );
  }
  return { path, settings };
}
