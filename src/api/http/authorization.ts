// Who may do what: every mutation needs an admin bearer token; reads are open unless the hub
// runs with `--auth read`. Health is always open, for probes.
import type { FastifyInstance, FastifyRequest } from "fastify";
import { ForbiddenError, UnauthorizedError } from "../../core/index.js";
import type { Hub, Principal } from "../../hub/index.js";

declare module "fastify" {
  interface FastifyRequest {
    principal: Principal | undefined;
  }
}

const READ_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
/** The web UI's page and assets: a browser loads them before it has a token to send. */
const isUiPath = (path: string): boolean => path === "/" || path === "/ui/" || path.startsWith("/ui/");
const ALWAYS_OPEN = new Set(["/health"]);
/** Routes that authorise each operation themselves, by what it does (GraphQL: queries vs mutations). */
const OWN_AUTHORIZATION = new Set(["/graphql"]);

function bearerToken(request: FastifyRequest): string | undefined {
  const header = request.headers.authorization;
  if (header === undefined) return undefined;
  const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
  if (!match?.[1]) throw new UnauthorizedError("The Authorization header must be `Bearer <token>`");
  return match[1];
}

export function registerAuthorization(app: FastifyInstance, hub: Hub): void {
  app.decorateRequest("principal", undefined);
  app.addHook("onRequest", async (request) => {
    const token = bearerToken(request);
    if (token !== undefined) {
      request.principal = hub.authenticate(token);
      if (!request.principal) throw new UnauthorizedError("The bearer token is not valid for this hub");
    }
    // No route takes this method and path: the answer is 404, or 405 with the methods the path
    // takes (DELETE /changes/1), whoever asks; a token would not make it anything else.
    if (request.is404) return;
    const path = request.url.split("?", 1)[0] ?? "";
    if (ALWAYS_OPEN.has(path) || OWN_AUTHORIZATION.has(path)) return;
    const isRead = READ_METHODS.has(request.method);
    if (isRead && isUiPath(path)) return;
    if (isRead && !hub.config.authRead) return;
    if (!request.principal) {
      throw new UnauthorizedError(
        isRead
          ? "This hub requires a bearer token for reads"
          : "Changing anything on this hub requires an admin bearer token",
      );
    }
    if (!isRead && !request.principal.admin) {
      throw new ForbiddenError(`The token of "${request.principal.name}" may read but not change anything`);
    }
  });
}

/** The actor recorded in a Change caused by this request. */
export function actorOf(request: FastifyRequest): string {
  return request.principal?.name ?? "anonymous";
}
