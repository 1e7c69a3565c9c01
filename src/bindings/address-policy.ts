// Which network addresses the bindings may connect to. Every URL in a TD is attacker-controlled
// (PITFALLS.md), so the check runs on the resolved address at connect time, for every connection.
import { lookup as dnsLookup } from "node:dns";
import type { LookupAddress } from "node:dns";
import { BlockList, isIP } from "node:net";
import type { LookupFunction } from "node:net";
import { ValidationError } from "../core/index.js";

/** CIDR lists; an address may be reached when it is in `allow` and not in `deny`. */
export interface AddressPolicyOptions {
  /** Default: every address (`0.0.0.0/0`, `::/0`). */
  readonly allow?: readonly string[];
  /** Default: none. */
  readonly deny?: readonly string[];
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
  ) {
    const where =
      addresses.length === 1 && addresses[0] === host
        ? host
        : `${host} resolves to ${addresses.join(", ") || "no address"}, which`;
    super(`${where} is not allowed by the address policy${rule === "" ? "" : ` (${rule})`}`);
    this.name = "AddressDeniedError";
  }
}

export class AddressPolicy {
  readonly #allow: BlockList;
  readonly #allowText: string;
  // One list per deny rule, to name the rule that refused an address.
  readonly #denyRules: { cidr: string; blocks: BlockList }[] = [];

  constructor(options: AddressPolicyOptions = {}) {
    const allow = options.allow ?? ["0.0.0.0/0", "::/0"];
    this.#allow = toBlockList(allow, "allow");
    this.#allowText = allow.join(", ");
    for (const [i, cidr] of (options.deny ?? []).entries()) {
      const blocks = new BlockList();
      addCidr(blocks, cidr, `/deny/${i}`);
      this.#denyRules.push({ cidr, blocks });
    }
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

  /** For a host that is an IP literal (brackets allowed), the denial if there is one; else undefined. */
  checkHost(host: string): AddressDeniedError | undefined {
    const bare = host.startsWith("[") && host.endsWith("]") ? host.slice(1, -1) : host;
    if (isIP(bare) === 0 || this.allows(bare)) return undefined;
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
