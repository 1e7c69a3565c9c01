// A request for a resource the hub has, with a method it does not take (DELETE /changes/1, PUT
// /log/checkpoint): 405 with the methods it takes in Allow (RFC 9110 §15.5.6), not 404. OPTIONS
// on such a resource: 204 with the same Allow (RFC 9110 §9.3.7).
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { MethodNotAllowedError, echoed } from "../../core/index.js";

/** One route pattern (`/things/:id`) and the methods registered for it. */
export interface RouteEntry {
  url: string;
  methods: string[];
}

export interface RouteTable {
  /**
   * The methods of the resource `request`'s path names (none: no such resource), OPTIONS among
   * them: those of the most specific route pattern matching it, as the router reads paths — a static segment before
   * a parameter, a parameter before a wildcard — so that /things/batch is POST only, not also
   * every method of /things/{id}.
   */
  allowed(request: FastifyRequest): string[];
  /** The route pattern of the resource `request`'s path names, or undefined. */
  resourceOf(request: FastifyRequest): string | undefined;
  /** Every route pattern with its methods, in the order they were registered. */
  list(): RouteEntry[];
}

declare module "fastify" {
  interface FastifyInstance {
    routeTable: RouteTable;
  }
}

interface Route {
  url: string;
  pattern: RegExp;
  /** Per path segment: 0 static, 1 a parameter, 2 a wildcard (lower is more specific). */
  rank: number[];
  methods: Set<string>;
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

function rankOf(url: string): number[] {
  return url.split("/").map((segment) => (segment.includes("*") ? 2 : segment.includes(":") ? 1 : 0));
}

/** Negative when `a` is the more specific pattern: the first segment where they differ decides. */
function compareRanks(a: number[], b: number[]): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const d = (a[i] ?? 0) - (b[i] ?? 0);
    if (d !== 0) return d;
  }
  return a.length - b.length;
}

function pathOf(request: FastifyRequest): string {
  return request.url.split("?", 1)[0] ?? "";
}

/** Follows every route the app registers after this call; the table is `app.routeTable` too. */
export function trackRoutes(app: FastifyInstance): RouteTable {
  const routes = new Map<string, Route>();
  app.addHook("onRoute", (route) => {
    const methods = (Array.isArray(route.method) ? route.method : [route.method]).map(String);
    const known = routes.get(route.url);
    if (known !== undefined) for (const m of methods) known.methods.add(m);
    else
      routes.set(route.url, {
        url: route.url,
        pattern: patternOf(route.url),
        rank: rankOf(route.url),
        methods: new Set(methods),
      });
  });
  const resourceOf = (path: string): Route | undefined => {
    let best: Route | undefined;
    for (const route of routes.values()) {
      if (!route.pattern.test(path)) continue;
      if (best === undefined || compareRanks(route.rank, best.rank) < 0) best = route;
    }
    return best;
  };
  const table: RouteTable = {
    allowed(request) {
      const route = resourceOf(pathOf(request));
      return route === undefined ? [] : [...new Set([...route.methods, "OPTIONS"])].sort();
    },
    resourceOf(request) {
      return resourceOf(pathOf(request))?.url;
    },
    list() {
      return [...routes.values()].map((r) => ({ url: r.url, methods: [...r.methods].sort() }));
    },
  };
  app.decorate("routeTable", table);
  return table;
}

/** The error for a request no route takes: 405 when its path is a resource, else undefined. */
export function methodNotAllowed(
  routes: RouteTable,
  request: FastifyRequest,
): MethodNotAllowedError | undefined {
  const allow = routes.allowed(request);
  if (allow.length === 0) return undefined;
  const path = pathOf(request);
  return new MethodNotAllowedError(
    `${echoed(path)} takes ${allow.join(", ")}, not ${echoed(request.method)}`,
    allow,
  );
}

/**
 * Answers OPTIONS on a resource the hub has (the router has no OPTIONS route; this runs where it
 * finds none): 204 with its Allow. `OPTIONS *` asks about the server in general: every method
 * some resource takes. A CORS preflight is answered the same, without Access-Control-Allow-*
 * headers: the hub answers no other origin's page (docs/operations.md, Security). Returns
 * undefined when the path names no resource.
 */
export function answerOptions(
  routes: RouteTable,
  request: FastifyRequest,
  reply: FastifyReply,
): FastifyReply | undefined {
  if (request.method !== "OPTIONS") return undefined;
  const allow =
    request.url === "*"
      ? [...new Set(routes.list().flatMap((r) => [...r.methods, "OPTIONS"]))].sort()
      : routes.allowed(request);
  if (allow.length === 0) return undefined;
  return reply.code(204).header("allow", allow.join(", ")).send();
}

/**
 * The router keeps one tree per method, so GET /things/batch, which no GET route names, fell
 * through to GET /things/{id} and was answered as a Thing whose id is "batch". A path that names
 * a route of its own is that route's resource: a method it does not take is a 405, whoever asks.
 */
export function refuseShadowedRoutes(app: FastifyInstance, routes: RouteTable): void {
  app.addHook("onRequest", async (request) => {
    const route = request.routeOptions.url;
    if (route === undefined || request.is404) return;
    const resource = routes.resourceOf(request);
    if (resource !== undefined && resource !== route) {
      const error = methodNotAllowed(routes, request);
      if (error !== undefined) throw error;
    }
  });
}
