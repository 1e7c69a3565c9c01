// The web UI (ui/, built by Vite into dist/ui): its page at `/` and `/ui/`, its assets under
// `/ui/`, so it never shadows an API route. Without a build the hub still starts and `/` says how
// to build it. The files are read once at start-up: only what the build produced is ever served.
import { existsSync, readdirSync, readFileSync, statSync } from "node:fs";
import { extname, join, relative, sep } from "node:path";
import { fileURLToPath } from "node:url";
import type { FastifyInstance, FastifyReply } from "fastify";
import { NotFoundError, UnavailableError, echoed } from "../../core/index.js";
import { assertAcceptable } from "./accept.js";

/** Where the build puts the UI, seen from dist/api/http (built) and from src/api/http (tests, tsx). */
const CANDIDATES = ["../../ui/", "../../../dist/ui/"].map((path) =>
  fileURLToPath(new URL(path, import.meta.url)),
);

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
  ".woff2": "font/woff2",
  ".map": "application/json",
};

// Ajv compiles each TD data schema into a function (client-side validation): hence 'unsafe-eval'.
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self' 'unsafe-eval'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data: blob:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
].join("; ");

interface Asset {
  body: Buffer;
  type: string;
}

/** The built UI's files by their path under /ui/, or undefined when there is no build. */
export function loadUi(directory?: string): Map<string, Asset> | undefined {
  const root = directory ?? CANDIDATES.find((candidate) => existsSync(join(candidate, "index.html")));
  if (root === undefined || !existsSync(join(root, "index.html"))) return undefined;
  const assets = new Map<string, Asset>();
  const walk = (folder: string) => {
    for (const name of readdirSync(folder)) {
      const path = join(folder, name);
      if (statSync(path).isDirectory()) walk(path);
      else {
        const type = CONTENT_TYPES[extname(name)];
        if (type !== undefined)
          assets.set(relative(root, path).split(sep).join("/"), { body: readFileSync(path), type });
      }
    }
  };
  walk(root);
  return assets;
}

function send(reply: FastifyReply, asset: Asset, immutable: boolean): FastifyReply {
  return reply
    .header("content-type", asset.type)
    .header("cache-control", immutable ? "public, max-age=31536000, immutable" : "no-cache")
    .header("content-security-policy", CONTENT_SECURITY_POLICY)
    .header("x-content-type-options", "nosniff")
    .send(asset.body);
}

export function uiRoutes(options: { directory?: string } = {}) {
  return async function ui(app: FastifyInstance): Promise<void> {
    const assets = loadUi(options.directory);
    const page = async (_request: unknown, reply: FastifyReply) => {
      const index = assets?.get("index.html");
      if (index === undefined) {
        throw new UnavailableError(
          "The web UI is not built: run `npm run build` (it builds ui/ into dist/ui), then restart the hub. The API is available under /things.",
        );
      }
      return send(reply, index, false);
    };
    const html = [CONTENT_TYPES[".html"] ?? "text/html"];
    app.get("/", { schema: { hide: true, produces: html } }, page);
    app.get("/ui/", { schema: { hide: true, produces: html } }, page);
    // Every type a file may have; each file is then checked against its own (a browser's Accept
    // for a script or a style sheet takes */* anyway).
    const files = [...new Set(Object.values(CONTENT_TYPES))];
    app.get("/ui/*", { schema: { hide: true, produces: files } }, async (request, reply) => {
      const path = (request.params as { "*": string })["*"];
      const asset = assets?.get(path);
      if (asset === undefined)
        throw new NotFoundError(`No such file of the web UI: ${echoed(`/ui/${path}`)}`);
      assertAcceptable(request, [asset.type]);
      // Vite names every asset by its content hash: they never change.
      return send(reply, asset, path.startsWith("assets/"));
    });
  };
}
