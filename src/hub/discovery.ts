// Discovery by introduction (W3C WoT Discovery §6): register the Thing whose TD is at a URL, or
// every Thing a host lists at `/.well-known/wot` when that is a TD directory's own TD (its
// `things` property, paged). Fetching goes through a binding, which applies the address policy,
// size and time bounds, and re-checks redirects; every URL here is attacker-controlled.
import {
  BindingError,
  ConflictError,
  HyperthingsError,
  NotFoundError,
  ValidationError,
  type Cause,
  type RegisteredThingDescription,
  type ThingDescription,
} from "../core/index.js";
import type { Directory } from "./directory.js";

/**
 * What fetches a TD (or a listing) from a URL: the HTTP or CoAP binding's `discover`. It answers the
 * document and the URL it came from after redirects, against which its relative references resolve.
 */
/**
 * The ids of Things that MQTT auto-inventory registers: their TDs carry the admin token as their
 * stored credentials for the hub's broker, which a replacing TD would keep, on any topic.
 */
const ANNOUNCED = /^urn:(homie|homeassistant):/;

export interface DescriptionFetcher {
  discover(url: string): Promise<{ readonly document: unknown; readonly url: string }>;
}

export interface DiscoveryOptions {
  /** Most Things registered from one directory. */
  maxThings?: number;
  /** Page size asked of a directory. */
  pageSize?: number;
}

export interface DiscoveryResult {
  /** The ids registered (created or replaced), in the order found. */
  registered: string[];
  /**
   * Those of `registered` whose TD replaced one the directory held (the `described` Change keeps
   * the one before): a TD fetched from elsewhere may carry the id of a Thing registered already.
   */
  replaced: string[];
  /** Those of `registered` the hub already held exactly so: nothing was recorded for them. */
  unchanged: string[];
  /** TDs of a listing that were not registered, and why. */
  refused: { index: number; id?: string; detail: string }[];
  /** The directory whose listing was followed, when there was one. */
  directory?: string;
}

const WELL_KNOWN = "/.well-known/wot";

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function typesOf(td: Record<string, unknown>): string[] {
  const types = td["@type"];
  return typeof types === "string"
    ? [types]
    : Array.isArray(types)
      ? types.filter((t) => typeof t === "string")
      : [];
}

export class Discovery {
  private readonly maxThings: number;
  private readonly pageSize: number;

  constructor(
    private readonly directory: Directory,
    private readonly fetcher: DescriptionFetcher,
    options: DiscoveryOptions = {},
  ) {
    this.maxThings = options.maxThings ?? 10_000;
    this.pageSize = options.pageSize ?? 100;
  }

  /** Fetches what is at `url` (a bare host means its `/.well-known/wot`) and registers what it describes. */
  async discover(url: string, cause: Cause): Promise<DiscoveryResult> {
    const start = this.checkUrl(url);
    const { document, url: found } = await this.fetch(start.href);
    // RFC 3986 §5.1.3: the base is where the document was found, after redirects (a host that
    // sends `/lamp` on to `/lamp/` serves forms relative to `/lamp/`).
    const location = new URL(found);
    if (Array.isArray(document)) return this.registerAll(document, cause);
    if (isObject(document) && typesOf(document).some((t) => /(^|:)ThingDirectory$/.test(t))) {
      const listing = this.listingUrl(document, location);
      return { ...(await this.registerListing(listing, cause)), directory: listing.href };
    }
    if (!isObject(document)) {
      throw new ValidationError(`${start.href} did not answer with a Thing Description (a JSON object)`, [
        { pointer: "/url", message: "is not the URL of a TD" },
      ]);
    }
    // TD 1.1 §5.3.1: relative references resolve against `base`, else the TD's own location.
    const td = (
      document.base === undefined ? { ...document, base: location.href } : document
    ) as ThingDescription;
    const { id, created, unchanged } = await this.register(td, cause);
    return {
      registered: [id],
      replaced: created || unchanged ? [] : [id],
      unchanged: unchanged ? [id] : [],
      refused: [],
    };
  }

  private checkUrl(text: string): URL {
    let url: URL;
    try {
      url = new URL(text);
    } catch {
      throw new ValidationError(`"${text}" is not a URL`, [
        { pointer: "/url", message: "must be an absolute http(s) or coap URL" },
      ]);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:" && url.protocol !== "coap:") {
      throw new ValidationError(`Discovery fetches http, https and coap URLs, not ${url.protocol}`, [
        { pointer: "/url", message: "must be an absolute http(s) or coap URL" },
      ]);
    }
    if (url.username !== "" || url.password !== "") {
      throw new ValidationError("A discovery URL carries no credentials", [
        { pointer: "/url", message: "has credentials" },
      ]);
    }
    // A coap: URL's path is "" for a bare host (it is not a WHATWG "special" scheme).
    if ((url.pathname === "/" || url.pathname === "") && url.search === "") url.pathname = WELL_KNOWN;
    return url;
  }

  private async fetch(url: string): Promise<{ document: unknown; url: string }> {
    try {
      return await this.fetcher.discover(url);
    } catch (error) {
      const reason =
        error instanceof BindingError ? (error.detail as { reason?: string } | undefined)?.reason : undefined;
      if (reason === "address-denied") {
        throw new ValidationError(
          `Discovery may not reach ${url}: ${error instanceof Error ? error.message : ""}`,
          [{ pointer: "/url", message: "the address is not allowed" }],
        );
      }
      const status =
        error instanceof BindingError
          ? (error.detail as { status?: unknown } | undefined)?.status
          : undefined;
      if (reason === "status" && (status === 404 || status === 410) && error instanceof BindingError) {
        // Nothing at that URL: say what discovery takes, rather than leave "answered 404" to decode.
        const hint =
          new URL(url).pathname === WELL_KNOWN
            ? `${new URL(url).host} announces no TD directory at ${WELL_KNOWN}; give the URL of a Thing Description itself`
            : "no Thing Description is there; give a TD's URL, a TD directory's, or a bare host (http://host:port) to ask its " +
              WELL_KNOWN;
        throw new BindingError(`${error.message}: ${hint}`, error.thing, error.detail);
      }
      if ((reason === "unreachable" || reason === "timeout") && error instanceof BindingError) {
        // Nothing answered: what a person can check, from where the hub stands (not the CLI's).
        const hint =
          "check that the device runs and that the URL's host and port are its own, as this hub reaches them";
        throw new BindingError(`${error.message}: ${hint}`, error.thing, error.detail);
      }
      throw error;
    }
  }

  /** The directory's listing: its `things` property's form, else `/things` on the same origin. */
  private listingUrl(td: Record<string, unknown>, from: URL): URL {
    const base = typeof td.base === "string" ? td.base : from.href;
    const things = isObject(td.properties) ? td.properties.things : undefined;
    const forms = isObject(things) && Array.isArray(things.forms) ? things.forms : [];
    const form = forms.find((f): f is { href: string } => isObject(f) && typeof f.href === "string");
    // The href may be a URI template (RFC 6570), as WoT Discovery's own directory TD writes it:
    // `things{?offset,limit}`. Its expressions go; offset and limit are set page by page.
    const href = form?.href.replace(/\{[^}]*\}/g, "");
    try {
      return new URL(href ?? "/things", base);
    } catch {
      return new URL("/things", from);
    }
  }

  /**
   * Registers every TD of a directory, page by page (`offset`/`limit`), bounded in count. Each page
   * is registered before the next is fetched, so what is held is one page (at most the fetcher's
   * response bound), however many pages a directory serves.
   */
  private async registerListing(listing: URL, cause: Cause): Promise<DiscoveryResult> {
    const result: DiscoveryResult = { registered: [], replaced: [], unchanged: [], refused: [] };
    const seen = new Set<string>();
    let index = 0;
    for (let offset = 0; index < this.maxThings; offset += this.pageSize) {
      const page = new URL(listing);
      page.searchParams.set("offset", String(offset));
      page.searchParams.set("limit", String(this.pageSize));
      const { document: items } = await this.fetch(page.href);
      if (!Array.isArray(items)) {
        throw new ValidationError(`The directory listing at ${page.href} is not a JSON array of TDs`, [
          { pointer: "/url", message: "the directory's listing is not an array" },
        ]);
      }
      const fresh: unknown[] = [];
      for (const item of items) {
        const id = isObject(item) && typeof item.id === "string" ? item.id : undefined;
        if (id !== undefined && seen.has(id)) continue;
        if (id !== undefined) seen.add(id);
        fresh.push(item);
      }
      await this.registerAll(fresh.slice(0, this.maxThings - index), cause, result, index);
      index += fresh.length;
      // A short page ends the listing; so does a page with nothing new (a directory that ignores offset).
      if (items.length < this.pageSize || fresh.length === 0) break;
    }
    return result;
  }

  private async registerAll(
    items: unknown[],
    cause: Cause,
    result: DiscoveryResult = { registered: [], replaced: [], unchanged: [], refused: [] },
    first = 0,
  ): Promise<DiscoveryResult> {
    for (const [i, item] of items.slice(0, this.maxThings).entries()) {
      const index = first + i;
      const id = isObject(item) && typeof item.id === "string" ? item.id : undefined;
      try {
        const { id: registered, created, unchanged } = await this.register(item as ThingDescription, cause);
        result.registered.push(registered);
        if (unchanged) result.unchanged.push(registered);
        else if (!created) result.replaced.push(registered);
      } catch (error) {
        if (!(error instanceof HyperthingsError) || error.status >= 500) throw error;
        result.refused.push({ index, ...(id === undefined ? {} : { id }), detail: error.message });
      }
    }
    return result;
  }

  private async holds(id: string): Promise<boolean> {
    try {
      await this.directory.getLive(id);
      return true;
    } catch (error) {
      if (error instanceof NotFoundError) return false;
      throw error;
    }
  }

  private async register(
    td: ThingDescription,
    cause: Cause,
  ): Promise<{ id: string; created: boolean; unchanged: boolean }> {
    // Registration information a directory added (WoT Discovery §7.3.1.2) is not ours to keep.
    const { registration: _ignored, ...clean } = td as RegisteredThingDescription & {
      registration?: unknown;
    };
    if (typeof clean.id === "string") {
      if (ANNOUNCED.test(clean.id) && (await this.holds(clean.id))) {
        throw new ConflictError(
          `${clean.id} is a Thing its device announces over MQTT (Homie or Home Assistant discovery): a TD from elsewhere does not replace it, with the credentials the hub keeps for its broker; remove it first (things rm ${clean.id}) to register this one`,
        );
      }
      const { id, created, unchanged } = await this.directory.put(clean.id, clean, cause);
      return { id, created, unchanged: unchanged === true };
    }
    return { id: (await this.directory.create(clean, cause)).id, created: true, unchanged: false };
  }
}
