// Ingest keeps each Thing's TD to check reports against: taken from the `described` Change the bus
// carries (no read of the store for a Thing registered a moment ago), replaced by a newer TD,
// dropped when the Thing is removed.
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import {
  APPLIED_KIND,
  NotFoundError,
  RECORDED_KINDS,
  ValidationError,
  checkKindFilter,
  type Change,
  type RegisteredThingDescription,
} from "../core/index.js";
import { InProcessBus } from "../bus/index.js";
import { SqliteStore } from "../store/index.js";
import { ALERT_KIND, DRIFT_KIND, RELEASED_KIND } from "./index.js";
import { createHubClock, type HubClock } from "./hub-clock.js";
import { Ingest } from "./ingest.js";

const ID = "urn:test:ingest:lamp";
const FORMS = [{ href: "http://127.0.0.1:1/level" }];
const cause = { actor: "test", via: "test" };

function lamp(maximum: number): RegisteredThingDescription {
  return {
    "@context": "https://www.w3.org/2022/wot/td/v1.1",
    id: ID,
    title: "Lamp",
    securityDefinitions: { nosec_sc: { scheme: "nosec" } },
    security: "nosec_sc",
    properties: { level: { type: "integer", minimum: 0, maximum, forms: FORMS } },
  };
}

describe("Ingest: the TDs it checks reports against", () => {
  let store: SqliteStore;
  let bus: InProcessBus;
  let clock: HubClock;
  let ingest: Ingest;
  let reads: number;

  beforeEach(() => {
    store = new SqliteStore({ path: ":memory:" });
    bus = new InProcessBus();
    clock = createHubClock("urn:test:hub", undefined, () => new Date());
    ingest = new Ingest(store, bus, clock);
    reads = 0;
    const getThing = store.getThing.bind(store);
    store.getThing = (id: string) => {
      reads++;
      return getThing(id);
    };
  });

  afterEach(async () => {
    await store.close();
  });

  /** Registers a TD as the Directory does: commit, then publish its `described` Change. */
  async function register(td: RegisteredThingDescription): Promise<Change> {
    const { change } = await store.describe({ td, cause, hlc: clock.hlc() });
    bus.publish([change]);
    return change;
  }

  const report = (value: number) =>
    ingest.ingest(ID, [{ kind: "reported", affordance: "level", value }], cause);

  it("checks the first report of a Thing registered a moment ago against its TD, without reading the store", async () => {
    await register(lamp(10));
    await expect(report(7)).resolves.toMatchObject([{ thing: ID, value: 7 }]);
    await expect(report(11)).rejects.toBeInstanceOf(ValidationError);
    expect(reads).toBe(0);
  });

  it("checks against the newer TD once it is described, and refuses reports once the Thing is removed", async () => {
    await register(lamp(10));
    await report(7);
    await register(lamp(5));
    await expect(report(7)).rejects.toThrow(/does not fit its schema/);
    await expect(report(4)).resolves.toHaveLength(1);
    expect(reads).toBe(0);
    const { change } = await store.remove({ id: ID, cause, hlc: clock.hlc() });
    bus.publish([change]);
    await expect(report(4)).rejects.toBeInstanceOf(NotFoundError);
  });

  it("refuses a value JSON cannot hold, or nested too deep, wherever it comes from (a binding, MQTT)", async () => {
    const td = lamp(10);
    td.properties = { ...td.properties, settings: { type: "object", forms: FORMS } };
    await register(td);
    const refusal = (value: unknown) =>
      ingest
        .ingest(
          ID,
          [
            { kind: "reported", affordance: "level", value: 1 },
            { kind: "reported", affordance: "settings", value },
          ],
          cause,
        )
        .then(
          () => undefined,
          (error: unknown) => error,
        );
    const infinite = await refusal({ gain: Number.POSITIVE_INFINITY });
    expect(infinite).toBeInstanceOf(ValidationError);
    expect((infinite as ValidationError).errors).toEqual([
      { pointer: "/1/value/gain", message: expect.stringMatching(/^is a number out of range/) as unknown },
    ]);
    let deep: unknown = 1;
    for (let i = 0; i < 10_000; i++) deep = [deep];
    const nested = await refusal({ a: deep });
    expect((nested as ValidationError).errors[0]?.pointer).toBe(`/1/value/a${"/0".repeat(63)}`);
    expect((nested as ValidationError).message).toMatch(/nests deeper than 64 levels/);
    expect(await store.lastSeq()).toBe(1);
  });

  it("checks each Thing against its own properties, whether other Things' are the same or not", async () => {
    // Things whose properties are the same share their compiled checks: a Thing whose TD differs
    // in a schema, or that is described again, is checked against its own.
    const lampNamed = (id: string, maximum: number, extra?: Record<string, unknown>) => ({
      ...lamp(maximum),
      id,
      properties: { level: { type: "integer", minimum: 0, maximum, forms: FORMS }, ...extra },
    });
    const [a, b, c, d] = ["urn:test:ingest:a", "urn:test:ingest:b", "urn:test:ingest:c", "urn:test:ingest:d"];
    const reportTo = (id: string, value: number, affordance = "level") =>
      ingest.ingest(id, [{ kind: "reported", affordance, value }], cause);
    await register(lampNamed(a, 10) as RegisteredThingDescription);
    await register(lampNamed(b, 10) as RegisteredThingDescription);
    await register(lampNamed(c, 5) as RegisteredThingDescription);
    await register(
      lampNamed(d, 10, { power: { type: "number", forms: FORMS } }) as RegisteredThingDescription,
    );
    await expect(reportTo(a, 8)).resolves.toHaveLength(1);
    await expect(reportTo(b, 11)).rejects.toThrow(/does not fit its schema/);
    await expect(reportTo(b, 9)).resolves.toHaveLength(1);
    await expect(reportTo(c, 8)).rejects.toThrow(/does not fit its schema/);
    await expect(reportTo(c, 5)).resolves.toHaveLength(1);
    await expect(reportTo(d, 2.5, "power")).resolves.toHaveLength(1);
    await expect(reportTo(a, 2.5, "power")).rejects.toThrow(/has no property "power"/);
    await expect(reportTo(b, 2.5, "power")).rejects.toThrow(/has no property "power"/);
    // b described again with c's schema: b is checked as c, and a as before.
    await register(lampNamed(b, 5) as RegisteredThingDescription);
    await expect(reportTo(b, 8)).rejects.toThrow(/does not fit its schema/);
    await expect(reportTo(a, 8)).resolves.toHaveLength(1);
    expect(reads).toBe(0);
  });

  it("reads the store for a Thing it has not seen described (a hub started on an existing Log)", async () => {
    // Described before this Ingest was listening: nothing was published to it.
    await store.describe({ td: lamp(10), cause, hlc: clock.hlc() });
    await expect(report(3)).resolves.toHaveLength(1);
    await expect(report(4)).resolves.toHaveLength(1);
    expect(reads).toBe(1);
  });
});

describe("the kinds a filter may name", () => {
  it("include every kind the hub's parts record (a kind left out would be refused as a filter)", () => {
    for (const kind of [DRIFT_KIND, ALERT_KIND, RELEASED_KIND, APPLIED_KIND, "unreachable", "reachable"]) {
      expect(RECORDED_KINDS).toContain(kind);
    }
    expect(() => checkKindFilter(["reported", "drift"], "/kind")).not.toThrow();
    expect(() => checkKindFilter(["reported", "reprted", "emited"], "/kind")).toThrow(
      /^No Changes are of kinds "reprted", "emited": the kinds this hub records are described, /,
    );
  });
});
