#!/usr/bin/env node
// The `things` command. Runs the compiled CLI; `npm ci` (prepare) and `npm run build` make it.
import { existsSync } from "node:fs";

const main = new URL("../dist/cli/main.js", import.meta.url);
if (!existsSync(main)) {
  process.stderr.write("things: the CLI is not built yet; run `npm run build` in the checkout first\n");
  process.exit(1);
}
await import(main.href);
