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

  function applied(level: number, policy: "record" | "revert" = "record"): Change {
    const value: AppliedValue = {
      release: RELEASE,
      name: "r",
      rollout: "urn:uuid:r",
      desired: { level },
      drift: { policy },
    };
    return change("applied", undefined, value);
  }

  /** The drift Changes recorded so far (their values). */
  async function drifts(): Promise<DriftValue[]> {
    await drift.close();
    return recorded.filter((r) => r.report.kind === "drift").map((r) => r.report.value as DriftValue);
  }

  const written: unknown[] = [];
  const commands = {
    writeProperty: (_thing: string, _affordance: string, value: unknown) => {
      written.push(value);
      return Promise.resolve({ correlation: "c" });
    },
    readBack: () => Promise.resolve(undefined),
  } as unknown as ConstructorParameters<typeof Drift>[0]["commands"];

  function newDrift(withCommands = false, inFlight?: ReadonlySet<string>): Drift {
    return new Drift({
      ...(inFlight !== undefined && { inFlight: () => Promise.resolve(inFlight) }),
      store,
      follow: (h) => {
        handler = h;
        return { stop: () => {}, ready: Promise.resolve(), buffered: 0 };
      },
      ingest: (thing, reports, cause) => {
        for (const report of reports) recorded.push({ thing, report, cause });
        return Promise.resolve(reports.map((r) => ({ ...change(r.kind, r.affordance, r.value), cause })));
      },
      commands: withCommands ? commands : undefined,
      isApplying: () => applying,
      clock,
      logger: pino({ level: "silent" }),
    });
  }

  beforeEach(async () => {
    store = new SqliteStore({ path: ":memory:" });
    recorded.length = 0;
    written.length = 0;
    applying = false;
    drift = newDrift();
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

  it("a replica that the store says no longer holds the drift role records no drift and sends no write", async () => {
    await drift.close();
    drift = newDrift(true);
    await drift.start({ judging: false });
    // The role's session ended without this replica hearing of it: the store says so when asked.
    await drift.lead(() => Promise.resolve(false));
    handler(applied(40, "revert"));
    handler(change("reported", "level", 30));
    expect(await drifts()).toEqual([]);
    expect(written).toEqual([]);
    // What it kept in memory is what the Log says: nothing drifts.
    expect(drift.list()).toEqual([]);
  });

  it("a replica that loses the drift role between the decision and the corrective write sends nothing", async () => {
    await drift.close();
    drift = newDrift(true);
    await drift.start({ judging: false });
    const answers = [true];
    await drift.lead(() => Promise.resolve(answers.shift() ?? false));
    handler(applied(40, "revert"));
    handler(change("reported", "level", 30));
    expect(await drifts()).toEqual([expect.objectContaining({ status: "drifting", revert: "sent" })]);
    expect(written).toEqual([]);
  });

  it("at a start, judges the latest report the stopped process left unjudged, except a Thing whose rollout step was in flight", async () => {
    await drift.close();
    const td = { "@context": "https://www.w3.org/2022/wot/td/v1.1", id: THING, title: "Dimmer" };
    const cause = { actor: "test", via: "test" };
    await store.describe({ td, cause, hlc: clock.hlc() } as Parameters<SqliteStore["describe"]>[0]);
    const draft = (c: Change) => ({ ...c, hlc: clock.hlc() });
    // Release 40 active; then a step of another release (30) wrote 30 and read it back, and the hub
    // stopped before that step made its release active.
    await store.append([draft(applied(40)), draft(change("reported", "level", 30))]);
    drift = newDrift(false, new Set([THING]));
    await drift.start();
    // The resumed step ends: its release is active, and the report fits it.
    const next = { ...applied(30), seq: (await store.lastSeq()) + 1 };
    handler(next);
    expect(await drifts()).toEqual([]);

    // The same Log with no step in flight: the report drifts from the active release, judged at
    // the start.
    recorded.length = 0;
    drift = newDrift(false, new Set());
    await drift.start();
    expect(await drifts()).toEqual([
      expect.objectContaining({ status: "drifting", desired: 40, observed: 30 }),
    ]);
  });
});
