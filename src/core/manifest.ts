// Release manifests (YAML or JSON) compiled into one release document: includes read, templates
// expanded with their parameters, every error pointing at file, line, column and field.
// Pure: the caller reads the files and hands over their text (docs/releases.md).
import type { Document, LineCounter } from "yaml";
import type { ValidateFunction } from "ajv";
import { sha256Hex } from "./canonical-json.js";
import { ValidationError, type ErrorLocation } from "./errors.js";
import { createAjv } from "./lazy-ajv.js";
import { loadYaml } from "./lazy-yaml.js";
import { manifestSchema } from "./manifest-schema.js";
import {
  DEFAULT_REVERT_LIMITS,
  RELEASE_FORMAT,
  sealRelease,
  type DriftSettings,
  type Release,
  type ReleaseAction,
  type ReleaseLink,
  type ReleaseStep,
  type StepSource,
  type ThingSelector,
} from "./release.js";

/** One manifest file as read by the caller: its path (as it should appear in errors) and text. */
export interface ManifestSource {
  path: string;
  text: string;
}

export interface BuildOptions {
  /** The tool, version, user and host that builds (provenance). */
  builder: string;
  /** The build time (provenance), injected so builds are reproducible in tests. */
  builtAt: string;
  /**
   * Resolves an `include` of `from` to the path of a source (e.g. relative to `from`'s folder);
   * the result must be the `path` of one of the sources.
   */
  resolveInclude?: (from: string, include: string) => string;
}

/** A manifest error: where it is, as a JSON pointer in the file and as file:line:column. */
export interface ManifestErrorLocation extends ErrorLocation {
  file: string;
  line: number;
  column: number;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Path = readonly (string | number)[];

interface ParsedFile {
  path: string;
  doc: Document;
  lines: LineCounter;
  value: Record<string, Json>;
}

interface TemplateParam {
  default?: Json;
  required: boolean;
}

interface Template {
  name: string;
  file: ParsedFile;
  params: Map<string, TemplateParam>;
  things: Json[];
}

const MAX_ERRORS = 50;
const MAX_DEPTH = 32;
/** As many steps as a release document may hold (release-schema.ts): templates cannot explode. */
const MAX_STEPS = 100_000;
const REFERENCE = /\$\{([A-Za-z0-9][A-Za-z0-9._-]*)\}/g;
const WHOLE_REFERENCE = /^\$\{([A-Za-z0-9][A-Za-z0-9._-]*)\}$/;

let validateManifest: ValidateFunction | undefined;

function pointerOf(path: Path): string {
  return path.map((p) => `/${String(p).replaceAll("~", "~0").replaceAll("/", "~1")}`).join("");
}

function isObject(value: unknown): value is Record<string, Json> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

class Problems {
  readonly list: ManifestErrorLocation[] = [];

  /** Records a problem at the node `path` leads to in `file`, or at the nearest node above it. */
  at(file: ParsedFile, path: Path, message: string): void {
    if (this.list.length >= MAX_ERRORS) return;
    const { isMap, isNode, isScalar } = loadYaml();
    let offset = 0;
    for (let n = path.length; n >= 0; n--) {
      // A member is pointed at by its key (where an editor puts the cursor), an item by itself.
      const parent: unknown = n > 0 ? file.doc.getIn(path.slice(0, n - 1), true) : undefined;
      const key = isMap(parent)
        ? parent.items.find((pair) => isScalar(pair.key) && String(pair.key.value) === String(path[n - 1]))
        : undefined;
      const node: unknown = key ? key.key : file.doc.getIn(path.slice(0, n), true);
      if (isNode(node) && node.range) {
        offset = node.range[0];
        break;
      }
    }
    const { line, col } = file.lines.linePos(offset);
    this.list.push({ pointer: pointerOf(path), message, file: file.path, line, column: col });
  }

  raw(location: ManifestErrorLocation): void {
    if (this.list.length < MAX_ERRORS) this.list.push(location);
  }

  throwIfAny(): void {
    if (this.list.length === 0) return;
    const first = this.list[0];
    const more = this.list.length > 1 ? ` (and ${this.list.length - 1} more)` : "";
    throw new ValidationError(
      `${first ? formatManifestError(first) : "the manifest is invalid"}${more}`,
      this.list.map((l) => ({ ...l, message: `${l.file}:${l.line}:${l.column}: ${l.message}` })),
    );
  }
}

/** `file:line:column: message (at /pointer)` — the way compilers point at a place. */
export function formatManifestError(location: ManifestErrorLocation): string {
  const at = location.pointer ? ` (at ${location.pointer})` : "";
  return `${location.file}:${location.line}:${location.column}: ${location.message}${at}`;
}

/** The path to a value that contains itself (a YAML alias to an anchor above it), if any. */
function aliasCycle(value: unknown, path: Path = [], above = new Set<object>()): Path | undefined {
  if (typeof value !== "object" || value === null) return undefined;
  if (above.has(value)) return path;
  above.add(value);
  const entries: [string | number, unknown][] = Array.isArray(value)
    ? value.map((item, i): [number, unknown] => [i, item])
    : Object.entries(value);
  for (const [key, member] of entries) {
    const found = aliasCycle(member, [...path, key], above);
    if (found !== undefined) return found;
  }
  above.delete(value);
  return undefined;
}

function parseFile(source: ManifestSource, problems: Problems): ParsedFile | undefined {
  const { LineCounter, parseDocument } = loadYaml();
  const lines = new LineCounter();
  // JSON is YAML 1.2: one parser for both gives JSON files the same line and column errors.
  const doc = parseDocument(source.text, { lineCounter: lines, prettyErrors: false, uniqueKeys: true });
  if (doc.errors.length > 0) {
    for (const error of doc.errors) {
      const pos = error.linePos?.[0] ?? lines.linePos(error.pos[0]);
      problems.raw({
        pointer: "",
        message: error.message.split("\n")[0] ?? error.message,
        file: source.path,
        line: pos.line,
        column: pos.col,
      });
    }
    return undefined;
  }
  const file = { path: source.path, doc, lines, value: {} };
  let value: unknown;
  try {
    value = doc.toJS({ maxAliasCount: 100 }) as unknown;
  } catch (error) {
    // yaml refuses an alias that expands too often (a "billion laughs"): an error of this file.
    problems.at(file, [], error instanceof Error ? error.message : String(error));
    return undefined;
  }
  const cycle = aliasCycle(value);
  if (cycle !== undefined) {
    problems.at(file, cycle, "an alias here refers to a node that contains it: the value would be endless");
    return undefined;
  }
  if (!isObject(value)) {
    problems.at(file, [], "a manifest is a mapping (release, things, templates, include, drift)");
    return undefined;
  }
  validateManifest ??= createAjv({ strict: false, allErrors: true }).compile(manifestSchema);
  if (!validateManifest(value)) {
    for (const error of validateManifest.errors ?? []) {
      if (error.keyword === "if") continue;
      const path = error.instancePath
        .split("/")
        .slice(1)
        .map((p) => p.replaceAll("~1", "/").replaceAll("~0", "~"));
      const params = error.params as Record<string, unknown>;
      const extra =
        error.keyword === "additionalProperties"
          ? `: ${String(params.additionalProperty)} is not allowed here`
          : error.keyword === "enum"
            ? `: one of ${(params.allowedValues as unknown[]).join(", ")}`
            : "";
      if (error.keyword === "additionalProperties") path.push(String(params.additionalProperty));
      problems.at(file, path, `${error.message ?? "is invalid"}${extra}`);
    }
    return undefined;
  }
  return { ...file, value };
}

/** Replaces `${param}` references: a whole-string reference keeps the value's type. */
function substitute(
  value: Json,
  args: ReadonlyMap<string, Json>,
  onUnknown: (name: string, path: Path) => void,
  path: (string | number)[],
): Json {
  if (typeof value === "string") {
    const whole = WHOLE_REFERENCE.exec(value);
    if (whole?.[1] !== undefined) {
      const arg = args.get(whole[1]);
      if (arg === undefined) onUnknown(whole[1], path);
      return arg ?? value;
    }
    return value.replace(REFERENCE, (text, name: string) => {
      const arg = args.get(name);
      if (arg === undefined) {
        onUnknown(name, path);
        return text;
      }
      return typeof arg === "string" ? arg : JSON.stringify(arg);
    });
  }
  if (Array.isArray(value)) return value.map((item, i) => substitute(item, args, onUnknown, [...path, i]));
  if (isObject(value)) {
    const out: Record<string, Json> = {};
    for (const [key, member] of Object.entries(value))
      out[key] = substitute(member, args, onUnknown, [...path, key]);
    return out;
  }
  return value;
}

function driftOf(value: Json | undefined): DriftSettings {
  if (value === undefined || value === null) return { policy: "record" };
  if (typeof value === "string") {
    const policy = value as DriftSettings["policy"];
    return policy === "revert" ? { policy, revert: { ...DEFAULT_REVERT_LIMITS } } : { policy };
  }
  const object = value as Record<string, Json>;
  const policy = object.policy as DriftSettings["policy"];
  if (policy !== "revert") return { policy };
  return {
    policy,
    revert: {
      maxReverts:
        typeof object.maxReverts === "number" ? object.maxReverts : DEFAULT_REVERT_LIMITS.maxReverts,
      withinSeconds:
        typeof object.withinSeconds === "number" ? object.withinSeconds : DEFAULT_REVERT_LIMITS.withinSeconds,
    },
  };
}

function stepOf(entry: Record<string, Json>): ReleaseStep {
  const select = entry.select as Record<string, string>;
  const selector: ThingSelector =
    select.id !== undefined ? { id: select.id } : { filter: select.filter ?? "" };
  const step: ReleaseStep = { select: selector };
  const properties = entry.properties as Record<string, unknown> | undefined;
  if (properties && Object.keys(properties).length > 0) step.properties = properties;
  const actions = (entry.actions as Json[] | undefined)?.map((a): ReleaseAction => {
    if (typeof a === "string") return { name: a };
    const object = a as Record<string, Json>;
    return { name: object.name as string, ...(object.input !== undefined && { input: object.input }) };
  });
  if (actions && actions.length > 0) step.actions = actions;
  const links = (entry.links as Record<string, string>[] | undefined)?.map((l): ReleaseLink => ({
    rel: String(l.rel),
    href: String(l.href),
  }));
  if (links && links.length > 0) step.links = links;
  return step;
}

/**
 * Compiles manifests into a release. Exactly one source names the `release`; the others (and
 * the files it includes) are libraries of templates and things. Throws ValidationError listing
 * every problem found, each with file, line, column and JSON pointer; returns nothing partial.
 */
export function buildRelease(sources: readonly ManifestSource[], options: BuildOptions): Release {
  const problems = new Problems();
  const files = new Map<string, ParsedFile>();
  for (const source of sources) {
    const parsed = parseFile(source, problems);
    if (parsed) files.set(source.path, parsed);
  }
  problems.throwIfAny();

  const roots = [...files.values()].filter((f) => typeof f.value.release === "string");
  if (roots.length !== 1) {
    const first = roots[1] ?? [...files.values()][0];
    if (first) {
      problems.at(
        first,
        roots.length === 0 ? [] : ["release"],
        roots.length === 0
          ? "no manifest names a release (`release: <name>`)"
          : `only one manifest may name the release; ${roots.map((r) => r.path).join(" and ")} both do`,
      );
    } else {
      problems.raw({ pointer: "", message: "no manifest to build", file: "", line: 0, column: 0 });
    }
    problems.throwIfAny();
  }
  const root = roots[0] as ParsedFile;
  for (const file of files.values()) {
    if (file === root) continue;
    for (const key of ["supersedes", "drift"]) {
      if (key in file.value)
        problems.at(file, [key], `${key} belongs in the manifest that names the release`);
    }
  }

  // Includes: every file reachable from the root, each once (a file may include another that
  // includes it back: files are sets, not calls).
  const resolve = options.resolveInclude ?? ((_from: string, include: string) => include);
  const reached: ParsedFile[] = [];
  const pending = [root, ...[...files.values()].filter((f) => f !== root)];
  const seen = new Set<ParsedFile>();
  while (pending.length > 0) {
    const file = pending.shift() as ParsedFile;
    if (seen.has(file)) continue;
    seen.add(file);
    reached.push(file);
    ((file.value.include as string[] | undefined) ?? []).forEach((include, i) => {
      const target = files.get(resolve(file.path, include));
      if (!target) problems.at(file, ["include", i], `cannot include ${include}: no such manifest was read`);
      else pending.push(target);
    });
  }

  // Templates, by name across all files.
  const templates = new Map<string, Template>();
  for (const file of reached) {
    for (const [name, body] of Object.entries(
      (file.value.templates as Record<string, Json> | undefined) ?? {},
    )) {
      const existing = templates.get(name);
      if (existing) {
        problems.at(file, ["templates", name], `template ${name} is also defined in ${existing.file.path}`);
        continue;
      }
      const definition = body as Record<string, Json>;
      const params = new Map<string, TemplateParam>();
      for (const [param, spec] of Object.entries(
        (definition.params as Record<string, Json> | undefined) ?? {},
      )) {
        const s = spec as Record<string, Json>;
        params.set(param, {
          ...(s.default !== undefined && { default: s.default }),
          required: typeof s.required === "boolean" ? s.required : s.default === undefined,
        });
      }
      templates.set(name, { name, file, params, things: definition.things as Json[] });
    }
  }
  problems.throwIfAny();

  const steps: ReleaseStep[] = [];
  const stepSources: StepSource[] = [];
  let tooMany = false;

  /** Expands entries; `site` is where the outermost entry was written (what a step points at). */
  const expand = (
    entries: Json[],
    file: ParsedFile,
    basePath: Path,
    args: ReadonlyMap<string, Json>,
    stack: readonly string[],
    site: StepSource | undefined,
  ): void => {
    entries.forEach((raw, i) => {
      const path = [...basePath, i];
      if (steps.length >= MAX_STEPS) {
        if (!tooMany) problems.at(file, path, `the release would have more than ${MAX_STEPS} steps`);
        tooMany = true;
        return;
      }
      const onUnknown = (name: string, at: Path) =>
        problems.at(
          file,
          [...path, ...at],
          `\${${name}} is not a parameter of template ${stack.at(-1) ?? "?"}`,
        );
      const entry = (stack.length > 0 ? substitute(raw, args, onUnknown, []) : raw) as Record<string, Json>;
      // Where the outermost entry was written (looked up once: nested entries inherit it).
      const entrySite: StepSource =
        site ??
        (() => {
          const node = file.doc.getIn(path, true);
          const here = file.lines.linePos(loadYaml().isNode(node) && node.range ? node.range[0] : 0);
          return { file: file.path, line: here.line, column: here.col };
        })();
      if (typeof entry.use !== "string") {
        steps.push(stepOf(entry));
        stepSources.push(stack.length > 0 ? { ...entrySite, template: stack.join(" > ") } : entrySite);
        return;
      }
      const name = entry.use;
      const template = templates.get(name);
      if (!template) {
        problems.at(file, [...path, "use"], `no template named ${name}`);
        return;
      }
      if (stack.includes(name)) {
        problems.at(file, [...path, "use"], `template cycle: ${[...stack, name].join(" > ")}`);
        return;
      }
      if (stack.length >= MAX_DEPTH) {
        problems.at(file, [...path, "use"], `templates nest deeper than ${MAX_DEPTH}`);
        return;
      }
      const given = (entry.with as Record<string, Json> | undefined) ?? {};
      const bound = new Map<string, Json>();
      let ok = true;
      for (const [param, value] of Object.entries(given)) {
        if (!template.params.has(param)) {
          const known = [...template.params.keys()].join(", ") || "none";
          problems.at(
            file,
            [...path, "with", param],
            `template ${name} has no parameter ${param} (it takes: ${known})`,
          );
          ok = false;
        } else bound.set(param, value);
      }
      for (const [param, spec] of template.params) {
        if (bound.has(param)) continue;
        if (spec.default !== undefined) bound.set(param, spec.default);
        else if (spec.required) {
          problems.at(file, [...path, "with"], `template ${name} needs parameter ${param}`);
          ok = false;
        }
      }
      if (!ok) return;
      expand(
        template.things,
        template.file,
        ["templates", name, "things"],
        bound,
        [...stack, name],
        entrySite,
      );
    });
  };

  for (const file of reached) {
    const things = file.value.things as Json[] | undefined;
    if (things) expand(things, file, ["things"], new Map(), [], undefined);
  }
  // Template bodies are checked where they are used; one never used is checked for cycles only
  // through its uses, so a library may carry templates a release does not need.
  if (steps.length === 0 && problems.list.length === 0) {
    problems.at(root, [], "the release has no things: add entries under `things`");
  }
  // Entries produced by substitution are checked again against the schema's entry shape.
  steps.forEach((step, i) => {
    const source = stepSources[i];
    const target: unknown = "id" in step.select ? step.select.id : step.select.filter;
    if ((typeof target !== "string" || target === "") && source) {
      problems.raw({
        pointer: `/steps/${i}/select`,
        message: "a selector must be a non-empty string",
        ...source,
      });
    }
  });
  problems.throwIfAny();

  const sourcesOut = sources
    .filter((s) => files.has(s.path) && seen.has(files.get(s.path) as ParsedFile))
    .map((s) => ({ path: s.path, sha256: sha256Hex(s.text) }))
    .sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
  return sealRelease(
    {
      format: RELEASE_FORMAT,
      name: root.value.release as string,
      ...(typeof root.value.supersedes === "string" && { supersedes: root.value.supersedes }),
      drift: driftOf(root.value.drift),
      steps,
    },
    { sources: sourcesOut, builder: options.builder, builtAt: options.builtAt, steps: stepSources },
  );
}
