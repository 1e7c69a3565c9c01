// The yaml parser, loaded on first use: core is imported by every `things` command, and only a
// release build reads YAML (yaml is 72 modules, ~25 ms of CPU on these machines), as lazy-ajv.ts.
import { createRequire } from "node:module";
import type * as YamlModule from "yaml";

const require = createRequire(import.meta.url);

export function loadYaml(): typeof YamlModule {
  return require("yaml") as typeof YamlModule;
}
