// Ajv and its formats, loaded on first use: most programs that import core (the CLI's client
// commands, a log verifier) never validate a TD or a value, and loading Ajv costs ~0.2 s.
import { createRequire } from "node:module";
import type * as AjvModule from "ajv";
import type { Ajv, Options } from "ajv";
import type addFormats from "ajv-formats";

const require = createRequire(import.meta.url);

export function createAjv(options: Options): Ajv {
  const ajvModule = require("ajv") as typeof AjvModule;
  return new ajvModule.Ajv(options);
}

export function addAjvFormats(ajv: Ajv, formats?: Parameters<typeof addFormats.default>[1]): void {
  const plugin = require("ajv-formats") as typeof addFormats;
  plugin.default(ajv, formats);
}
