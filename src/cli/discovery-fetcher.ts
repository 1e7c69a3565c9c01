// The clients discovery fetches TDs with: the HTTP and CoAP bindings, under the hub's address
// policy (the one its bindings use; PITFALLS: every URL is attacker-controlled), with bounded sizes
// and times and no retries.
import {
  AddressPolicy,
  CoapBinding,
  HttpBinding,
  METADATA_AND_LINK_LOCAL_RANGES,
  uriScheme,
} from "../bindings/index.js";
import type { Discovered } from "../bindings/index.js";

/** Fetches a TD by the scheme of its URL: `coap:` over CoAP, anything else over HTTP (which refuses what is not http). */
export interface DiscoveryFetcher {
  discover(url: string): Promise<Discovered>;
  close(): Promise<void>;
}

/** The most a discovered TD (or a page of a directory's listing) may weigh, over either protocol. */
const MAX_DOCUMENT_BYTES = 4 * 1024 * 1024;

export function createDiscoveryFetcher(
  addressPolicy = new AddressPolicy({ deny: METADATA_AND_LINK_LOCAL_RANGES }),
): DiscoveryFetcher {
  const http = new HttpBinding({
    addressPolicy,
    connectTimeoutMs: 5_000,
    headersTimeoutMs: 10_000,
    bodyTimeoutMs: 10_000,
    bodyDeadlineMs: 20_000,
    maxResponseBytes: MAX_DOCUMENT_BYTES,
    maxRedirects: 3,
    retry: { attempts: 1 },
  });
  const coap = new CoapBinding({
    addressPolicy,
    requestTimeoutMs: 10_000,
    maxPayloadBytes: MAX_DOCUMENT_BYTES,
  });
  return {
    discover: (url) => {
      const scheme = uriScheme(url);
      return scheme === "coap" || scheme === "coaps" ? coap.discover(url) : http.discover(url);
    },
    close: async () => {
      await Promise.all([http.close(), coap.close()]);
    },
  };
}
