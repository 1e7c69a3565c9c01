// The hub's version, from package.json (the same relative path from src/hub and dist/hub).
import { createRequire } from "node:module";

const packageJson = createRequire(import.meta.url)("../../package.json") as { version: string };

export const HUB_VERSION = packageJson.version;
