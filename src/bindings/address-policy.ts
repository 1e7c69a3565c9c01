// Which network addresses the bindings may connect to. Every URL in a TD is attacker-controlled
// (PITFALLS.md), so the check runs on the resolved address at connect time, for every connection.
import { lookup as dnsLookup } from "node:dns";
import type { LookupAddress } from "node:dns";
import { BlockList, isIP } from "node:net";
import type { LookupFunction } from "node:net";
import { ValidationError } from "../core/index.js";

/**
 * CIDR lists; an address may be reached when it is in `allow` and not in `deny`. An entry with a
 * port (`127.0.0.1:5432`, `[::1]:6379`) names one endpoint: in `allow`, it lifts the protection of
 * that endpoint (and narrows nothing); in `deny`, it denies that port only.
 */
export interface AddressPolicyOptions {
  /** Default: every address (`0.0.0.0/0`, `::/0`). */
  readonly allow?: readonly string[];
  /** Default: none. */
  readonly deny?: readonly string[];
  /** Ports kept from Things unless `allow` names them with their port; default: none. */
  readonly protect?: readonly ProtectedEndpoint[];
}

/** A port at an address or range that Things may not make the hub connect to, and what is there. */
export interface ProtectedEndpoint {
  /** An address or CIDR range: `127.0.0.0/8`, `::1`. */
  readonly cidr: string;
  readonly port: number;
  /** What listens there, as a refusal says it: `the hub's own HTTP listener`. */
  readonly what: string;
}

/**
 * Databases, caches and queues that listen on loopback and speak to whoever connects: a Thing's
 * form naming one (`http://127.0.0.1:6379/…`) is no device, and would have the hub talk to it.
 */
export const LOOPBACK_SERVICE_PORTS: ReadonlyMap<number, string> = new Map([
  [5432, "PostgreSQL"],
  [3306, "MySQL"],
  [6379, "Redis"],
  [11211, "memcached"],
  [27017, "MongoDB"],
  [4222, "NATS"],
  [2379, "etcd"],
  [5672, "AMQP"],
  [9092, "Kafka"],
]);

/** LOOPBACK_SERVICE_PORTS on both loopbacks, as protected endpoints. */
export function loopbackServiceEndpoints(): ProtectedEndpoint[] {
  return [...LOOPBACK_SERVICE_PORTS].flatMap(([port, name]) =>
    ["127.0.0.0/8", "::1/128"].map((cidr) => ({ cidr, port, what: `a ${name} port on loopback` })),
  );
}

/** `address:port` or `[v6]:port`, parsed; undefined for a CIDR range or an address alone. */
export function parseEndpoint(entry: string): { address: string; port: number } | undefined {
  const match = /^(?:\[([0-9a-fA-F:.]+)\]|(\d{1,3}(?:\.\d{1,3}){3})):(\d{1,5})$/.exec(entry);
  if (match === null) return undefined;
  const address = match[1] ?? match[2] ?? "";
  const port = Number(match[3]);
  if (isIP(address) === 0 || port < 1 || port > 65535) return undefined;
  return { address, port };
}

/**
 * Loopback, link-local, private, shared and unspecified ranges (RFC 6890), for a hub that must
 * not reach its own network through a Thing's URLs: `new AddressPolicy({ deny: LOCAL_RANGES })`.
 */
export const LOCAL_RANGES: readonly string[] = [
  "0.0.0.0/8",
  "10.0.0.0/8",
  "100.64.0.0/10",
  "127.0.0.0/8",
  "169.254.0.0/16",
  "172.16.0.0/12",
  "192.168.0.0/16",
  "::/128",
  "::1/128",
  "fc00::/7",
  "fe80::/10",
];

/**
 * Denied to every hub whatever else is configured: the cloud metadata endpoints (AWS, GCP, Azure
 * and others answer at 169.254.169.254; AWS also at fd00:ec2::254) and link-local ranges.
 */
export const METADATA_AND_LINK_LOCAL_RANGES: readonly string[] = [
  "169.254.169.254/32",
  "fd00:ec2::254/128",
  "169.254.0.0/16",
  "fe80::/10",
  // The same IPv4 link-local range written as IPv6: IPv4-compatible (::169.254.169.254) and the
  // NAT64 well-known prefix (64:ff9b::169.254.169.254, RFC 6052), which a NAT64 network routes to it.
  "::a9fe:0/112",
  "64:ff9b::a9fe:0/112",
];

// Connecting to an unspecified address reaches this host (Linux: loopback), whatever a deny list of
// loopback ranges says; it is checked as both loopbacks too.
const UNSPECIFIED = new BlockList();
UNSPECIFIED.addAddress("0.0.0.0", "ipv4");
UNSPECIFIED.addAddress("::", "ipv6");
const LOOPBACKS: readonly (readonly [string, "ipv4" | "ipv6"])[] = [
  ["127.0.0.1", "ipv4"],
  ["::1", "ipv6"],
];

function isUnspecified(address: string, family: number): boolean {
  return UNSPECIFIED.check(address, family === 4 ? "ipv4" : "ipv6");
}

/** Raised (as the `error` of a connect) when an address is not allowed. */
export class AddressDeniedError extends Error {
  readonly code = "ERR_ADDRESS_DENIED";
  constructor(
    readonly host: string,
    readonly addresses: readonly string[],
    /** The rule that refused the (first) address: `deny 127.0.0.0/8` or `not in allow …`. */
    readonly rule = "",
    /** The whole sentence, when the rule is a protected port's. */
    sentence?: string,
  ) {
    const where =
      addresses.length === 1 && addresses[0] === host
        ? host
        : `${host} resolves to ${addresses.join(", ") || "no address"}, which`;
    super(sentence ?? `${where} is not allowed by the address policy${rule === "" ? "" : ` (${rule})`}`);
    this.name = "AddressDeniedError";
  }
}

/** One endpoint rule: a port at a range of addresses. */
interface EndpointRule {
  readonly blocks: BlockList;
  readonly port: number;
  /** What is there (a protected port), or the `--deny` entry that named it. */
  readonly what?: string;
  readonly entry: string;
}

function endpointRule(cidr: string, port: number, pointer: string): Omit<EndpointRule, "what" | "entry"> {
  const blocks = new BlockList();
  addCidr(blocks, cidr, pointer);
  return { blocks, port };
}

function familyOf(address: string): "ipv4" | "ipv6" {
  return isIP(address) === 6 ? "ipv6" : "ipv4";
}

function hostPort(address: string, port: number): string {
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
}

export class AddressPolicy {
  readonly #allow: BlockList;
  readonly #allowText: string;
  // One list per deny rule, to name the rule that refused an address.
  readonly #denyRules: { cidr: string; blocks: BlockList }[] = [];
  /** Ports denied (`--deny` with a port) or protected (the hub's own, loopback databases). */
  readonly #deniedEndpoints: EndpointRule[] = [];
  /** Ports `--allow` names: their protection is lifted. */
  readonly #allowedEndpoints: EndpointRule[] = [];

  constructor(options: AddressPolicyOptions = {}) {
    const ranges: string[] = [];
    for (const [i, entry] of (options.allow ?? []).entries()) {
      const endpoint = parseEndpoint(entry);
      if (endpoint === undefined) ranges.push(entry);
      else
        this.#allowedEndpoints.push({
          ...endpointRule(endpoint.address, endpoint.port, `/allow/${i}`),
          entry,
        });
    }
    // Endpoints alone narrow nothing: every address stays allowed but for the lists.
    const allow = ranges.length > 0 ? ranges : ["0.0.0.0/0", "::/0"];
    this.#allow = toBlockList(allow, "allow");
    this.#allowText = allow.join(", ");
    for (const [i, cidr] of (options.deny ?? []).entries()) {
      const endpoint = parseEndpoint(cidr);
      if (endpoint !== undefined) {
        this.#deniedEndpoints.push({
          ...endpointRule(endpoint.address, endpoint.port, `/deny/${i}`),
          entry: cidr,
        });
        continue;
      }
      const blocks = new BlockList();
      addCidr(blocks, cidr, `/deny/${i}`);
      this.#denyRules.push({ cidr, blocks });
    }
    this.protect(options.protect ?? []);
  }

  /**
   * Keeps more ports from Things, e.g. the hub's own HTTP port once it listens: a TD naming one
   * is refused unless `allow` names it with its port.
   */
  protect(endpoints: readonly ProtectedEndpoint[]): void {
    for (const [i, { cidr, port, what }] of endpoints.entries()) {
      this.#deniedEndpoints.push({
        ...endpointRule(cidr, port, `/protect/${i}`),
        what,
        entry: `${cidr} port ${port}`,
      });
    }
  }

  /**
   * The refusal of a connection to `address` (an IP address) on `port`: by its address (as
   * `ruleFor`), or as a denied or protected port that `allow` does not name. Undefined: allowed.
   */
  endpointDenial(host: string, address: string, port: number): AddressDeniedError | undefined {
    const family = isIP(address);
    if (family === 0) return new AddressDeniedError(host, [address], "not an IP address");
    // The ranges first: an endpoint `allow` names lifts a port's protection, not a denied range.
    const rule = this.ruleFor(address);
    if (rule !== undefined) return new AddressDeniedError(host, [address], rule);
    // Connecting to an unspecified address reaches this host's loopback.
    const reached = isUnspecified(address, family) ? LOOPBACKS.map(([a]) => a) : [address];
    for (const target of reached) {
      const denied = this.#deniedEndpoints.find(
        (r) => r.port === port && r.blocks.check(target, familyOf(target)),
      );
      if (denied === undefined || this.#explicitlyAllowed(target, port)) continue;
      const named = hostPort(target, port);
      const resolved = host === address ? "" : `${host} resolves to ${address}; `;
      const via = target === address ? "" : `connecting to ${address} reaches ${target}; `;
      const sentence =
        denied.what === undefined
          ? `${resolved}${via}${named} is not allowed by the address policy (deny ${denied.entry})`
          : `${resolved}${via}${named} is ${denied.what}, which the address policy keeps from Things: --allow ${named} to reach it`;
      return new AddressDeniedError(host, [address], denied.what ?? `deny ${denied.entry}`, sentence);
    }
    return undefined;
  }

  #explicitlyAllowed(address: string, port: number): boolean {
    return this.#allowedEndpoints.some((r) => r.port === port && r.blocks.check(address, familyOf(address)));
  }

  /** Why an address is refused (`deny 127.0.0.0/8`, `not in allow 10.0.0.0/8`), or undefined. */
  ruleFor(address: string): string | undefined {
    const family = isIP(address);
    if (family === 0) return "not an IP address";
    const own = this.#ruleFor(address, family === 4 ? "ipv4" : "ipv6");
    if (own !== undefined || !isUnspecified(address, family)) return own;
    for (const [loopback, type] of LOOPBACKS) {
      const rule = this.#ruleFor(loopback, type);
      if (rule !== undefined) return `${rule}: connecting to ${address} reaches ${loopback}`;
    }
    return undefined;
  }

  /**
   * True when the bindings may connect to this IP address (v4, v6, or v4-mapped v6). An
   * unspecified address (0.0.0.0, ::) connects to this host: it is allowed only with loopback.
   */
  allows(address: string): boolean {
    return this.ruleFor(address) === undefined;
  }

  #ruleFor(address: string, type: "ipv4" | "ipv6"): string | undefined {
    if (!this.#allow.check(address, type)) return `not in allow ${this.#allowText}`;
    const rule = this.#denyRules.find((r) => r.blocks.check(address, type));
    return rule === undefined ? undefined : `deny ${rule.cidr}`;
  }

  /**
   * A `lookup` for `net.connect`, `tls.connect` and undici's connector: resolves the name, keeps
   * the allowed addresses, and fails with AddressDeniedError when none is left. Node does not
   * call `lookup` for an IP literal: check those with `checkHost` first.
   */
  readonly lookup: LookupFunction = (hostname, options, callback) => {
    dnsLookup(hostname, { ...options, all: true }, (error, addresses: LookupAddress[]) => {
      if (error) {
        callback(error, "", 0);
        return;
      }
      const allowed = addresses.filter((a) => this.allows(a.address));
      const first = allowed[0];
      if (first === undefined) {
        callback(
          new AddressDeniedError(
            hostname,
            addresses.map((a) => a.address),
            addresses[0] === undefined ? "" : (this.ruleFor(addresses[0].address) ?? ""),
          ),
          "",
          0,
        );
      } else if (options.all === true) {
        callback(null, allowed);
      } else {
        callback(null, first.address, first.family);
      }
    });
  };

  /**
   * A `lookup` for connections to `port`: as `lookup`, and the denied and protected ports are
   * left out too.
   */
  lookupFor(port: number): LookupFunction {
    return (hostname, options, callback) => {
      dnsLookup(hostname, { ...options, all: true }, (error, addresses: LookupAddress[]) => {
        if (error) {
          callback(error, "", 0);
          return;
        }
        const allowed = addresses.filter((a) => this.endpointDenial(hostname, a.address, port) === undefined);
        const first = allowed[0];
        if (first === undefined) {
          const denial =
            addresses[0] === undefined
              ? undefined
              : this.endpointDenial(hostname, addresses[0].address, port);
          callback(denial ?? new AddressDeniedError(hostname, [], ""), "", 0);
        } else if (options.all === true) {
          callback(null, allowed);
        } else {
          callback(null, first.address, first.family);
        }
      });
    };
  }

  /**
   * For a host that is an IP literal (brackets allowed), the denial if there is one, of its address
   * or, given a port, of that port at it; else undefined.
   */
  checkHost(host: string, port?: number): AddressDeniedError | undefined {
    const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
    if (isIP(bare) === 0) return undefined;
    if (port !== undefined) return this.endpointDenial(bare, bare, port);
    if (this.allows(bare)) return undefined;
    return new AddressDeniedError(bare, [bare], this.ruleFor(bare) ?? "");
  }
}

function toBlockList(cidrs: readonly string[], list: string): BlockList {
  const blocks = new BlockList();
  for (const [i, cidr] of cidrs.entries()) addCidr(blocks, cidr, `/${list}/${i}`);
  return blocks;
}

function addCidr(blocks: BlockList, cidr: string, pointer: string): void {
  const [address = "", prefixText, extra] = cidr.split("/");
  const family = isIP(address);
  const max = family === 4 ? 32 : 128;
  const prefix = prefixText === undefined ? max : Number(prefixText);
  if (family === 0 || extra !== undefined || !/^\d{1,3}$/.test(prefixText ?? String(max)) || prefix > max) {
    throw new ValidationError(`"${cidr}" is not an address or CIDR range`, [
      { pointer, message: "expected e.g. 10.0.0.0/8 or fd00::/8" },
    ]);
  }
  blocks.addSubnet(address, prefix, family === 4 ? "ipv4" : "ipv6");
}
