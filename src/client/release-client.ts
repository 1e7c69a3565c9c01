// Releases over HTTP for programs and the CLI: store a built release, list and read them, plan
// one (docs/releases.md). Global fetch only, like the rest of the client.
import type { Plan, Release, ReleaseSummary } from "../core/index.js";
import { HubClient } from "./hub-client.js";

export interface StoredRelease {
  id: string;
  /** False when the hub already had this release (nothing was written). */
  created: boolean;
  storedAt: string;
}

export interface ReleasePage {
  releases: ReleaseSummary[];
  /** The cursor of the next page; absent on the last page. */
  next?: number;
}

export class ReleaseClient extends HubClient {
  /** Stores a release document (`POST /releases`); idempotent by id. */
  async storeRelease(release: Release): Promise<StoredRelease> {
    const response = await this.request("POST", "releases", {
      body: JSON.stringify(release),
      contentType: "application/json",
    });
    return (await this.jsonOf(response)) as StoredRelease;
  }

  /** Stored releases, newest first. */
  async releases(query: { name?: string; limit?: number; cursor?: number } = {}): Promise<ReleasePage> {
    const url = new URL("releases", this.url);
    if (query.name !== undefined) url.searchParams.set("name", query.name);
    if (query.limit !== undefined) url.searchParams.set("limit", String(query.limit));
    if (query.cursor !== undefined) url.searchParams.set("cursor", String(query.cursor));
    return (await this.jsonOf(await this.request("GET", url))) as ReleasePage;
  }

  async release(id: string): Promise<Release & { storedAt: string }> {
    return (await this.jsonOf(await this.request("GET", `releases/${id}`))) as Release & { storedAt: string };
  }

  /** What rolling the release out would do now; `select` narrows it to a graph filter's Things. */
  async plan(id: string, select?: string): Promise<Plan> {
    const url = new URL(`releases/${id}/plan`, this.url);
    if (select !== undefined) url.searchParams.set("select", select);
    return (await this.jsonOf(await this.request("GET", url))) as Plan;
  }
}
