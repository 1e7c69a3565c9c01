// Following the Log: a replay that stalls holds a bounded number of live Changes, and still hands
// over every Change once, in order, when it goes on.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Change, RegisteredThingDescription } from "../core/index.js";
import { InProcessBus } from "../bus/index.js";
import { SqliteStore } from "../store/index.js";
import { followChanges } from "./change-stream.js";
import { minimalTd } from "../../test/support/test-hub.js";
import { createHubClock, type HubClock } from "./hub-clock.js";

const ID = "urn:test:follow:meter";
const cause = { actor: "test", via: "test" };
const td = minimalTd({
  id: ID,
  title: "Meter",
  properties: { power: { type: "number", forms: [{ href: "http://127.0.0.1:1/power" }] } },
}) as RegisteredThingDescription;

describe("followChanges", () => {
  let store: SqliteStore;
  let bus: InProcessBus;
  let clock: HubClock;

  beforeEach(async () => {
    store = new SqliteStore({ path: ":memory:" });
    bus = new InProcessBus();
    clock = createHubClock("urn:test:hub", undefined, () => new Date());
    const { change } = await store.describe({ td, cause, hlc: clock.hlc() });
    bus.publish([change]);
  });
  afterEach(async () => {
    await store.close();
  });

  /** Appends `n` readings in batches of 100, publishing each batch after commit as the hub does. */
  async function readings(n: number, from: number): Promise<void> {
    for (let i = 0; i < n; i += 100) {
      const drafts = Array.from({ length: Math.min(100, n - i) }, (_, k) => ({
        thing: ID,
        affordance: "power",
        kind: "reported",
        value: from + i + k,
        cause,
        hlc: clock.hlc(),
      }));
      bus.publish(await store.append(drafts));
    }
  }

  it("holds at most maxBuffered live Changes while its consumer stalls, then hands over each once, in order", async () => {
    await readings(1_000, 0);
    const seen: number[] = [];
    let release!: () => void;
    const stalled = new Promise<void>((resolve) => (release = resolve));
    let paces = 0;
    const follower = followChanges(store, bus, (c: Change) => seen.push(c.seq), {
      after: 0,
      pageSize: 200,
      maxBuffered: 500,
      // The consumer stalls after the first page until released.
      pace: () => (paces++ === 0 ? stalled : Promise.resolve()),
    });
    while (seen.length < 200) await new Promise((resolve) => setImmediate(resolve));
    // 12,000 more Changes committed and published while it is stalled.
    await readings(12_000, 1_000);
    expect(follower.buffered).toBeGreaterThan(0);
    expect(follower.buffered).toBeLessThanOrEqual(500);
    release();
    await follower.ready;
    const last = await store.lastSeq();
    expect(seen).toEqual(Array.from({ length: last }, (_, i) => i + 1));
    // Live from here: the next one arrives once, right after it is published.
    await readings(100, 13_000);
    expect(seen.slice(last)).toEqual(Array.from({ length: 100 }, (_, i) => last + 1 + i));
    follower.stop();
  });
});
