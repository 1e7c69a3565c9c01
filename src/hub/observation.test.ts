// What the observer plans to observe of a TD (observable properties, events, the extension terms
// for polling and recording), and the ingest rules of the Changes it and the commands record.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { ValidationError, type RegisteredThingDescription } from "../core/index.js";
import { InProcessBus } from "../bus/index.js";
import { SqliteStore } from "../store/index.js";
import { createHubClock } from "./hub-clock.js";
import { Ingest } from "./ingest.js";
import { Limiter, POLL_INTERVAL_TERM, RECORD_TERM, observationPlans } from "./observation.js";

const FORMS = [{ href: "http://127.0.0.1:1/x" }];

function td(overrides: Partial<RegisteredThingDescription> = {}): RegisteredThingDescription {
  return {
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    id: "urn:test:observation:thing",
    title: "Thing",
    securityDefinitions: { nosec_sc: { scheme: "nosec" } },
    security: "nosec_sc",
    properties: {
      temperature: { type: "number", observable: true, forms: FORMS },
      setpoint: { type: "number", forms: FORMS },
      secret: { type: "string", observable: true, writeOnly: true, forms: FORMS },
      level: {
        type: "integer",
        observable: true,
        [POLL_INTERVAL_TERM]: 250,
        [RECORD_TERM]: "every",
        forms: FORMS,
      },
    },
    events: { alarm: { data: { type: "string" }, forms: FORMS } },
    actions: { reset: { forms: FORMS } },
    ...overrides,
  };
}

describe("observationPlans", () => {
  it("observes observable, readable properties and every event", () => {
    const plans = observationPlans(td(), { pollIntervalMs: 5000 });
    expect(plans.map((p) => [p.kind, p.name, p.record, p.pollIntervalMs])).toEqual([
      ["property", "temperature", "change", 5000],
      ["property", "level", "every", 250],
      ["event", "alarm", "every", 5000],
    ]);
    const temperature = plans[0];
    expect(temperature?.check?.(21)).toEqual([]);
    expect(temperature?.check?.("warm")).not.toEqual([]);
  });

  it("takes the Thing's terms as defaults for its affordances, and warns about bad ones", () => {
    const warnings: string[] = [];
    const plans = observationPlans(
      td({
        [POLL_INTERVAL_TERM]: 1000,
        [RECORD_TERM]: "every",
        properties: {
          a: { type: "number", observable: true, forms: FORMS },
          b: {
            type: "number",
            observable: true,
            [POLL_INTERVAL_TERM]: 5,
            [RECORD_TERM]: "sometimes",
            forms: FORMS,
          },
        },
      }),
      { pollIntervalMs: 5000 },
      (message) => warnings.push(message),
    );
    expect(
      plans.filter((p) => p.kind === "property").map((p) => [p.name, p.record, p.pollIntervalMs]),
    ).toEqual([
      ["a", "every", 1000],
      ["b", "every", 1000],
    ]);
    expect(warnings).toEqual([
      `/properties/b/${RECORD_TERM} must be "every" or "change"`,
      `/properties/b/${POLL_INTERVAL_TERM} must be whole milliseconds from 100 to 86400000`,
    ]);
  });
});

describe("ingest rules for observation and commands", () => {
  let store: SqliteStore;
  let ingest: Ingest;
  const cause = { actor: "test" };

  beforeEach(async () => {
    store = new SqliteStore({ path: ":memory:" });
    const bus = new InProcessBus();
    const clock = createHubClock("urn:test:hub", undefined, () => new Date());
    ingest = new Ingest(store, bus, clock);
    await store.describe({ td: td(), cause, hlc: clock.stamp().hlc });
  });

  afterEach(async () => {
    await store.close();
  });

  it("takes unreachable and reachable about the Thing, not an affordance", async () => {
    const [away, back] = await ingest.ingest(
      "urn:test:observation:thing",
      [
        { kind: "unreachable", value: "connect ECONNREFUSED" },
        { kind: "reachable", value: "the Thing answers again" },
      ],
      cause,
    );
    expect(away).toMatchObject({ kind: "unreachable", value: "connect ECONNREFUSED" });
    expect(back?.affordance).toBeUndefined();
    await expect(
      ingest.ingest(
        "urn:test:observation:thing",
        [{ kind: "unreachable", affordance: "temperature" }],
        cause,
      ),
    ).rejects.toThrow(ValidationError);
  });

  it("takes completed and failed for property writes and failed for events, by name", async () => {
    const changes = await ingest.ingest(
      "urn:test:observation:thing",
      [
        { kind: "completed", affordance: "setpoint" },
        { kind: "failed", affordance: "setpoint", value: { reason: "status", status: 409 } },
        { kind: "failed", affordance: "alarm", value: { reason: "invalid" } },
        { kind: "completed", affordance: "reset" },
      ],
      cause,
    );
    expect(changes.map((c) => [c.kind, c.affordance])).toEqual([
      ["completed", "setpoint"],
      ["failed", "setpoint"],
      ["failed", "alarm"],
      ["completed", "reset"],
    ]);
    await expect(
      ingest.ingest("urn:test:observation:thing", [{ kind: "completed", affordance: "alarm" }], cause),
    ).rejects.toThrow(/has no action "alarm"/);
    await expect(
      ingest.ingest("urn:test:observation:thing", [{ kind: "failed", affordance: "toString" }], cause),
    ).rejects.toThrow(ValidationError);
  });
});

describe("the limit on Things connecting at once", () => {
  it("lets the queued Things go ahead of one that never answers, once it has held its place holdMs", async () => {
    const limiter = new Limiter(1, 20);
    void limiter.run(() => new Promise<never>(() => undefined)); // a device that accepts and never answers
    // Without the hold, this would wait for ever behind it.
    await expect(limiter.run(() => Promise.resolve("connected"))).resolves.toBe("connected");
  });

  it("keeps at most max connecting while they answer within holdMs", async () => {
    const limiter = new Limiter(2, 60_000);
    const ends: Array<() => void> = [];
    const started: number[] = [];
    const runs = [0, 1, 2].map((n) =>
      limiter.run(
        () =>
          new Promise<void>((resolve) => {
            started.push(n);
            ends.push(resolve);
          }),
      ),
    );
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toEqual([0, 1]);
    ends[0]?.();
    await runs[0];
    await new Promise((resolve) => setImmediate(resolve));
    expect(started).toEqual([0, 1, 2]);
    ends[1]?.();
    ends[2]?.();
    await Promise.all(runs);
  });
});
