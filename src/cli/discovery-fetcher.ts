// The HTTP client discovery fetches TDs with: the HTTP binding, under an address policy that
// keeps link-local addresses and the cloud metadata endpoints out of reach (PITFALLS: every URL
// is attacker-controlled), with bounded sizes and times and no retries.
import { AddressPolicy, HttpBinding } from "../bindings/index.js";

/** Denied to discovery by default: link-local (169.254.169.254 is the metadata endpoint) and the IPv6 metadata addresses. */
export const DISCOVERY_DENIED_RANGES: readonly string[] = [
  "169.254.0.0/16",
  "fe80::/10",
  "fd00:ec2::254/128",
];

export function createDiscoveryFetcher(): HttpBinding {
  return new HttpBinding({
    addressPolicy: new AddressPolicy({ deny: DISCOVERY_DENIED_RANGES }),
    connectTimeoutMs: 5_000,
    headersTimeoutMs: 10_000,
    bodyTimeoutMs: 10_000,
    maxResponseBytes: 4 * 1024 * 1024,
    maxRedirects: 3,
    retry: { attempts: 1 },
  });
}
