// Rollouts, drift and lineage over HTTP for programs and the CLI (docs/releases.md): start a
// rollout, follow its progress (Server-Sent Events), list rollouts, what drifts, a Thing's releases.
import type { RolloutStep, RolloutStepStatus } from "../core/index.js";
import type { DriftEntry, LineageEntry, RolloutEvent, RolloutView } from "../hub/index.js";
import { thingPathOf } from "./directory-client.js";
import { HubClient } from "./hub-client.js";
import { readEventStream } from "./server-sent-events.js";

export type { DriftEntry, LineageEntry, RolloutEvent, RolloutView } from "../hub/index.js";

export interface RolloutRequest {
  /** A graph filter: only the Things of the release it matches. */
  select?: string;
  concurrency?: number;
  maxFailures?: number;
}

/** A page of GET /drift?limit=: `total` is how many drift now in all. */
export interface DriftPage {
  drift: DriftEntry[];
  total: number;
  next?: string;
}

export interface Lineage {
  thing: string;
  active: string | null;
  lineage: LineageEntry[];
}

export class RolloutClient extends HubClient {
  /** `POST /releases/{id}/rollouts`: resolves once the hub has recorded the rollout (it runs on). */
  async startRollout(release: string, request: RolloutRequest = {}): Promise<RolloutView> {
    const response = await this.request("POST", `releases/${encodeURIComponent(release)}/rollouts`, {
      body: JSON.stringify(request),
      contentType: "application/json",
    });
    return (await this.jsonOf(response)) as RolloutView;
  }

  /** `POST /rollouts/{id}/cancel`: the rollout as it is once cancelled (steps in flight finish). */
  async cancelRollout(id: string): Promise<RolloutView> {
    const response = await this.request("POST", `rollouts/${encodeURIComponent(id)}/cancel`);
    return (await this.jsonOf(response)) as RolloutView;
  }

  async rollout(id: string): Promise<RolloutView> {
    return (await this.jsonOf(
      await this.request("GET", `rollouts/${encodeURIComponent(id)}`),
    )) as RolloutView;
  }

  async rollouts(query: { status?: string; release?: string; limit?: number } = {}): Promise<RolloutView[]> {
    const url = new URL("rollouts", this.url);
    for (const [name, value] of Object.entries(query)) {
      if (value !== undefined) url.searchParams.set(name, String(value));
    }
    return ((await this.jsonOf(await this.request("GET", url))) as { rollouts: RolloutView[] }).rollouts;
  }

  /** A rollout's steps in order (all pages). */
  async steps(id: string, status?: RolloutStepStatus): Promise<RolloutStep[]> {
    const out: RolloutStep[] = [];
    let cursor: number | undefined;
    for (;;) {
      const url = new URL(`rollouts/${encodeURIComponent(id)}/steps`, this.url);
      url.searchParams.set("limit", "1000");
      if (status !== undefined) url.searchParams.set("status", status);
      if (cursor !== undefined) url.searchParams.set("cursor", String(cursor));
      const page = (await this.jsonOf(await this.request("GET", url))) as {
        steps: RolloutStep[];
        next?: number;
      };
      out.push(...page.steps);
      if (page.next === undefined) return out;
      cursor = page.next;
    }
  }

  /** The rollout's progress as it happens: `status` now, then `step`/`status` events until it ends. */
  async *rolloutEvents(id: string, signal?: AbortSignal): AsyncGenerator<RolloutEvent, void, undefined> {
    const response = await this.request("GET", `rollouts/${encodeURIComponent(id)}/events`, {
      accept: "text/event-stream",
      signal,
    });
    if (!response.body) return;
    for await (const event of readEventStream(response.body)) {
      if (event.event === "step" || event.event === "status") yield JSON.parse(event.data) as RolloutEvent;
    }
  }

  async drift(thing?: string): Promise<DriftEntry[]> {
    const url = new URL("drift", this.url);
    if (thing !== undefined) url.searchParams.set("thing", thing);
    return ((await this.jsonOf(await this.request("GET", url))) as { drift: DriftEntry[] }).drift;
  }

  /** One page of what drifts now, by Thing and property; `next` is the cursor of the page after it. */
  async driftPage(options: { thing?: string; limit: number; cursor?: string }): Promise<DriftPage> {
    const url = new URL("drift", this.url);
    if (options.thing !== undefined) url.searchParams.set("thing", options.thing);
    url.searchParams.set("limit", String(options.limit));
    if (options.cursor !== undefined) url.searchParams.set("cursor", options.cursor);
    return (await this.jsonOf(await this.request("GET", url))) as DriftPage;
  }

  async lineage(thing: string, limit?: number): Promise<Lineage> {
    const url = new URL(`${thingPathOf(thing)}/releases`, this.url);
    if (limit !== undefined) url.searchParams.set("limit", String(limit));
    return (await this.jsonOf(await this.request("GET", url))) as Lineage;
  }
}
