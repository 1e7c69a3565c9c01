// Drift judged from the Changes it follows: a report that comes while a rollout applies a step to
// the Thing is judged against the release the step ends with, not dropped.
import pino from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { AppliedValue, Cause, Change, DriftValue } from "../core/index.js";
import { SqliteStore } from "../store/index.js";
import { Drift } from "./drift.js";
import { createHubClock } from "./hub-clock.js";
import type { Report } from "./ingest.js";

const THING = "urn:test:drift:dimmer";
const RELEASE = `sha256:${"a".repeat(64)}`;

describe("Drift", () => {
  let store: SqliteStore;
  let drift: Drift;
  let handler: (change: Change) => void = () => {};
  let applying = false;
  let seq = 0;
  const recorded: { thing: string; report: Report; cause: Cause }[] = [];
  const clock = createHubClock("urn:test:hub", undefined, () => new Date());

  function change(kind: string, affordance: string | undefined, value?: unknown): Change {
    seq++;
    return {
      seq,
      hlc: clock.hlc(),
      thing: THING,
      kind,
      ...(affordance !== undefined && { affordance }),
      ...(value !== undefined && { value }),
      cause: { actor: "test", via: "test" },
    };
  }

  function applied(level: number): Change {
    const value: AppliedValue = {
      release: RELEASE,
      name: "r",
      rollout: "urn:uuid:r",
      desired: { level },
      drift: { policy: "record" },
    };
    return change("applied", undefined, value);
  }

  /** The drift Changes recorded so far (their values). */
  async function drifts(): Promise<DriftValue[]> {
    await drift.close();
    return recorded.filter((r) => r.report.kind === "drift").map((r) => r.report.value as DriftValue);
  }

  beforeEach(async () => {
    store = new SqliteStore({ path: ":memory:" });
    recorded.length = 0;
    applying = false;
    drift = new Drift({
      store,
      follow: (h) => {
        handler = h;
        return { stop: () => {}, ready: Promise.resolve(), buffered: 0 };
      },
      ingest: (thing, reports, cause) => {
        for (const report of reports) recorded.push({ thing, report, cause });
        return Promise.resolve(reports.map((r) => ({ ...change(r.kind, r.affordance, r.value), cause })));
      },
      commands: undefined,
      isApplying: () => applying,
      clock,
      logger: pino({ level: "silent" }),
    });
    await drift.start();
  });
  afterEach(async () => {
    await store.close();
  });

  it("judges a report that came while the step was applied, after its write went through, against the new release", async () => {
    applying = true;
    handler(change("desired", "level", 40));
    handler(change("completed", "level"));
    // The Thing took the write and made it 30: the only report of that value (polling records changes only).
    handler(change("reported", "level", 30));
    handler(applied(40));
    applying = false;
    expect(drift.list()).toEqual([
      expect.objectContaining({
        thing: THING,
        affordance: "level",
        desired: 40,
        observed: 30,
        release: RELEASE,
      }),
    ]);
    expect(await drifts()).toEqual([
      expect.objectContaining({ status: "drifting", desired: 40, observed: 30 }),
    ]);
  });

  it("leaves alone a report from before the write went through, and one equal to the release", async () => {
    applying = true;
    // Polled before the Thing took the write: no word on the value written.
    handler(change("reported", "level", 10));
    handler(change("desired", "level", 40));
    handler(change("completed", "level"));
    handler(applied(40));
    handler(change("reported", "level", 40));
    handler(applied(40));
    applying = false;
    expect(drift.list()).toEqual([]);
    expect(await drifts()).toEqual([]);
  });
});
