// DNS rebinding: a web page of evil.example whose name is made to resolve to the hub's address
// (127.0.0.1, or 192.168.1.10 on a LAN) reaches the hub as its own origin, and its visitor's browser
// lets it read every answer. Such a request names evil.example in its Host header: the hub answers
// only to its own names (RFC 9110 §7.2, §15.5.20: 421), whatever address it listens on.
import type { FastifyInstance } from "fastify";
import type { IncomingMessage } from "node:http";
import { isIP } from "node:net";
import { hostname } from "node:os";
import { MisdirectedRequestError, quoted } from "../../core/index.js";
import type { HubConfig } from "../../hub/index.js";

/** The host name of a Host header (`name:port`, `[v6]:port`), lower-cased, without its port or a final dot. */
function hostNameOf(header: string): string {
  const host = header.trim().toLowerCase();
  if (host.startsWith("[")) return host.slice(1, host.indexOf("]") === -1 ? undefined : host.indexOf("]"));
  const colon = host.lastIndexOf(":");
  return (colon === -1 ? host : host.slice(0, colon)).replace(/\.$/, "");
}

/**
 * This machine's own names: its host name, its first label when that is a domain name, and that
 * label under `.local` (mDNS, RFC 6762: `raspberrypi.local`), which only this network can answer.
 */
export function machineNames(): string[] {
  const name = hostname().toLowerCase();
  const short = name.split(".")[0] || name;
  return [...new Set([name, short, `${short}.local`])];
}

/** Whether a name is one an `--allowed-hosts` entry names: itself, or under a `.domain` entry. */
function allowedBy(name: string, entry: string): boolean {
  if (entry === "*") return true;
  if (entry.startsWith(".")) return name === entry.slice(1) || name.endsWith(entry);
  return name === entry;
}

/**
 * The refusal of a request whose Host names neither an IP address, `localhost` (or a
 * `*.localhost` name), this machine's host name, nor a name of `--allowed-hosts`; else undefined.
 * A request without Host is not refused here (an HTTP/1.1 one was already refused as a 400; an
 * HTTP/1.0 one, never a browser's, is answered).
 */
export function misdirectedHost(
  config: Pick<HubConfig, "host" | "allowedHosts">,
  header: string | undefined,
): MisdirectedRequestError | undefined {
  if (header === undefined) return undefined;
  const name = hostNameOf(header);
  const machine = machineNames();
  if (
    isIP(name) !== 0 ||
    name === "localhost" ||
    name.endsWith(".localhost") ||
    machine.includes(name) ||
    config.allowedHosts.some((entry) => allowedBy(name, entry))
  ) {
    return undefined;
  }
  const names = ["localhost", ...config.allowedHosts, ...machine].join(", ");
  return new MisdirectedRequestError(
    `This hub answers to its names (${names}) and IP addresses, not to ${quoted(name)} ` +
      `(a web page may have made that name resolve to the hub's address): if it is the hub's, start the hub with --allowed-hosts ${name}`,
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
