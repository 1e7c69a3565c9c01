// The HTTP client discovery fetches TDs with: the HTTP binding, under the hub's address policy
// (the one its bindings use; PITFALLS: every URL is attacker-controlled), with bounded sizes and
// times and no retries.
import { AddressPolicy, HttpBinding, METADATA_AND_LINK_LOCAL_RANGES } from "../bindings/index.js";

export function createDiscoveryFetcher(
  addressPolicy = new AddressPolicy({ deny: METADATA_AND_LINK_LOCAL_RANGES }),
): HttpBinding {
  return new HttpBinding({
    addressPolicy,
    connectTimeoutMs: 5_000,
    headersTimeoutMs: 10_000,
    bodyTimeoutMs: 10_000,
    bodyDeadlineMs: 20_000,
    maxResponseBytes: 4 * 1024 * 1024,
    maxRedirects: 3,
    retry: { attempts: 1 },
  });
}
