// A request for a resource the hub has, with a method it does not take (DELETE /changes/1, PUT
// /log/checkpoint): 405 with the methods it takes in Allow (RFC 9110 §15.5.6), not 404.
import type { FastifyInstance, FastifyRequest } from "fastify";
import { MethodNotAllowedError } from "../../core/index.js";

export interface RouteTable {
  /** The methods of the routes whose pattern matches `request`'s path (none: no such resource). */
  allowed(request: FastifyRequest): string[];
}

/** The routes' patterns as regular expressions: `:param` one path segment, `*` the rest. */
function patternOf(url: string): RegExp {
  const source = url
    .split(/(:[A-Za-z0-9_]+|\*)/)
    .map((part) =>
      part === "*" ? ".*" : part.startsWith(":") ? "[^/]+" : part.replace(/[.+?^${}()|[\]\\]/g, "\\$&"),
    )
    .join("");
  return new RegExp(`^${source}$`);
}

/** Follows every route the app registers after this call. */
export function trackRoutes(app: FastifyInstance): RouteTable {
  const routes: Array<{ pattern: RegExp; methods: string[] }> = [];
  app.addHook("onRoute", (route) => {
    const methods = (Array.isArray(route.method) ? route.method : [route.method]).map(String);
    routes.push({ pattern: patternOf(route.url), methods });
  });
  return {
    allowed(request) {
      const path = request.url.split("?", 1)[0] ?? "";
      const methods = new Set<string>();
      for (const route of routes) if (route.pattern.test(path)) for (const m of route.methods) methods.add(m);
      return [...methods].sort();
    },
  };
}

/** The error for a request no route takes: 405 when its path is a resource, else undefined. */
export function methodNotAllowed(
  routes: RouteTable,
  request: FastifyRequest,
): MethodNotAllowedError | undefined {
  const allow = routes.allowed(request);
  if (allow.length === 0) return undefined;
  const path = request.url.split("?", 1)[0] ?? "";
  return new MethodNotAllowedError(`${path} takes ${allow.join(", ")}, not ${request.method}`, allow);
}
