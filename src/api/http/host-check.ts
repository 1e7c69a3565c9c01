// DNS rebinding: a web page of evil.example whose name is made to resolve to 127.0.0.1 reaches a
// hub there as its own origin, and its browser lets it read every answer. Such a request names
// evil.example in its Host header: a hub on a loopback address answers only to this machine's names.
import type { FastifyInstance } from "fastify";
import type { IncomingMessage } from "node:http";
import { isIP } from "node:net";
import { ForbiddenError } from "../../core/index.js";
import type { HubConfig } from "../../hub/index.js";

function isLoopbackAddress(host: string): boolean {
  const bare = host.replace(/^\[(.*)\]$/, "$1").toLowerCase();
  return bare === "localhost" || bare === "::1" || (isIP(bare) === 4 && bare.startsWith("127."));
}

/** The host name of a Host header (`name:port`, `[v6]:port`), lower-cased, without its port. */
function hostNameOf(header: string): string {
  const host = header.trim().toLowerCase();
  if (host.startsWith("[")) return host.slice(1, host.indexOf("]") === -1 ? undefined : host.indexOf("]"));
  const colon = host.lastIndexOf(":");
  return colon === -1 ? host : host.slice(0, colon);
}

/**
 * The refusal of a request whose Host names neither this machine nor an allowed name, when the hub
 * listens on a loopback address; else undefined. A hub on another address is reached by whatever
 * names its network gives it, and answers any.
 */
export function misdirectedHost(
  config: Pick<HubConfig, "host" | "allowedHosts">,
  header: string | undefined,
): ForbiddenError | undefined {
  if (header === undefined || !isLoopbackAddress(config.host)) return undefined;
  const name = hostNameOf(header);
  if (
    isIP(name) !== 0 ||
    name === "localhost" ||
    name.endsWith(".localhost") ||
    config.allowedHosts.includes(name)
  ) {
    return undefined;
  }
  return new ForbiddenError(
    `This hub listens on ${config.host} and answers to localhost and IP addresses, not to "${name}" ` +
      `(a web page may have made that name resolve to this machine): if it is the hub's, start the hub with --allowed-hosts ${name}`,
  );
}

/**
 * The authority a request names: its target's, when the target is in absolute form
 * (`GET http://name/health`, which RFC 9112 §3.2.2 tells a server to use instead of Host), else
 * its Host header.
 */
export function authorityOf(request: IncomingMessage): string | undefined {
  const target = request.url ?? "";
  if (/^https?:\/\//i.test(target)) {
    try {
      return new URL(target).host;
    } catch {
      return "";
    }
  }
  return request.headers.host;
}

export function registerHostCheck(app: FastifyInstance, config: HubConfig): void {
  app.addHook("onRequest", async (request) => {
    const refusal = misdirectedHost(config, authorityOf(request.raw));
    if (refusal !== undefined) throw refusal;
  });
}
