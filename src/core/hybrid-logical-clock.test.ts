import { afterEach, describe, expect, it, vi } from "vitest";
import fc from "fast-check";
import { ValidationError } from "./errors.js";
import {
  HLC_MAX_COUNTER,
  HLC_MAX_WALL,
  HybridLogicalClock,
  compareHlc,
  formatHlc,
  parseHlc,
  type HlcTimestamp,
} from "./hybrid-logical-clock.js";

const T0 = 1_714_564_800_000; // 2024-05-01T12:00:00Z

const nodeId = fc.stringMatching(/^[\x21-\x7e]{1,12}$/);
// Small ranges as well as the full ones, so that equal walls and counters (ties) are common.
const timestamp: fc.Arbitrary<HlcTimestamp> = fc.record({
  wall: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: HLC_MAX_WALL })),
  counter: fc.oneof(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: HLC_MAX_COUNTER })),
  node: fc.oneof(fc.constantFrom("a", "ab", "b", "urn:hub:a"), nodeId),
});

/** A physical clock that returns the given readings in turn, then the last one forever. */
function scriptedClock(readings: number[]): () => number {
  let i = 0;
  return () => readings[Math.min(i++, readings.length - 1)] ?? T0;
}

describe("HybridLogicalClock", () => {
  afterEach(() => {
    vi.restoreAllMocks();
  });

  it("follows the physical clock while it moves forward", () => {
    const clock = new HybridLogicalClock({ node: "hub-a", clock: scriptedClock([T0, T0 + 5]) });
    expect(clock.now()).toEqual({ wall: T0, counter: 0, node: "hub-a" });
    expect(clock.now()).toEqual({ wall: T0 + 5, counter: 0, node: "hub-a" });
  });

  it("counts events within one millisecond and while the physical clock steps back", () => {
    const clock = new HybridLogicalClock({
      node: "hub-a",
      clock: scriptedClock([T0, T0, T0 - 1000, T0 + 1]),
    });
    expect(clock.now()).toEqual({ wall: T0, counter: 0, node: "hub-a" });
    expect(clock.now()).toEqual({ wall: T0, counter: 1, node: "hub-a" });
    expect(clock.now()).toEqual({ wall: T0, counter: 2, node: "hub-a" });
    expect(clock.now()).toEqual({ wall: T0 + 1, counter: 0, node: "hub-a" });
  });

  it("issues strictly increasing timestamps, never behind physical time, for any clock readings", () => {
    fc.assert(
      fc.property(
        fc.array(
          fc.oneof(fc.integer({ min: T0 - 50, max: T0 + 50 }), fc.integer({ min: -5, max: HLC_MAX_WALL })),
          {
            minLength: 1,
            maxLength: 200,
          },
        ),
        (readings) => {
          const clock = new HybridLogicalClock({ node: "n", clock: scriptedClock(readings) });
          let previous: HlcTimestamp | undefined;
          for (const reading of readings) {
            const stamp = clock.now();
            expect(stamp.wall).toBeGreaterThanOrEqual(reading);
            if (previous !== undefined) expect(compareHlc(stamp, previous)).toBe(1);
            previous = stamp;
          }
        },
      ),
    );
  });

  it("stays monotonic across interleaved local events and received timestamps", () => {
    const step = fc.oneof(
      fc.record({
        kind: fc.constant("now" as const),
        physical: fc.integer({ min: T0 - 100, max: T0 + 100 }),
      }),
      fc.record({
        kind: fc.constant("receive" as const),
        physical: fc.integer({ min: T0 - 100, max: T0 + 100 }),
        remote: fc.record({
          wall: fc.integer({ min: T0 - 200, max: T0 + 100 }),
          counter: fc.integer({ min: 0, max: 5 }),
          node: nodeId,
        }),
      }),
    );
    fc.assert(
      fc.property(fc.array(step, { minLength: 1, maxLength: 100 }), (steps) => {
        let physical = T0;
        const clock = new HybridLogicalClock({ node: "local", clock: () => physical, maxDriftMs: 1000 });
        let previous = clock.last;
        for (const s of steps) {
          physical = s.physical;
          const stamp = s.kind === "now" ? clock.now() : clock.receive(s.remote);
          expect(compareHlc(stamp, previous)).toBe(1);
          expect(stamp.wall).toBeGreaterThanOrEqual(physical);
          if (s.kind === "receive") {
            // Happened-before: the receive event is after the remote event that caused it.
            expect(
              stamp.wall > s.remote.wall ||
                (stamp.wall === s.remote.wall && stamp.counter > s.remote.counter),
            ).toBe(true);
          }
          expect(clock.last).toEqual(stamp);
          previous = stamp;
        }
      }),
    );
  });

  it("takes on a remote wall ahead of its own and counts past the remote counter", () => {
    const clock = new HybridLogicalClock({ node: "hub-a", clock: () => T0 });
    expect(clock.receive({ wall: T0 + 10, counter: 7, node: "hub-b" })).toEqual({
      wall: T0 + 10,
      counter: 8,
      node: "hub-a",
    });
    expect(clock.receive({ wall: T0 + 10, counter: 2, node: "hub-b" })).toEqual({
      wall: T0 + 10,
      counter: 9,
      node: "hub-a",
    });
    expect(clock.receive({ wall: T0 - 10, counter: 50, node: "hub-b" })).toEqual({
      wall: T0 + 10,
      counter: 10,
      node: "hub-a",
    });
    expect(clock.now()).toEqual({ wall: T0 + 10, counter: 11, node: "hub-a" });
  });

  it("resets the counter when the physical clock passes every wall it has seen", () => {
    let physical = T0;
    const clock = new HybridLogicalClock({ node: "hub-a", clock: () => physical });
    clock.receive({ wall: T0, counter: 40, node: "hub-b" });
    physical = T0 + 1;
    expect(clock.receive({ wall: T0, counter: 99, node: "hub-b" })).toEqual({
      wall: T0 + 1,
      counter: 0,
      node: "hub-a",
    });
  });

  it("rejects a remote timestamp further in the future than the allowed drift, and stays unchanged", () => {
    const clock = new HybridLogicalClock({ node: "hub-a", clock: () => T0, maxDriftMs: 500 });
    const before = clock.now();
    expect(clock.receive({ wall: T0 + 500, counter: 0, node: "hub-b" }).wall).toBe(T0 + 500);
    const error: unknown = (() => {
      try {
        clock.receive({ wall: T0 + 5000, counter: 0, node: "hub-b" });
      } catch (e) {
        return e;
      }
    })();
    expect(error).toBeInstanceOf(ValidationError);
    expect((error as ValidationError).errors[0]?.pointer).toBe("/wall");
    expect(clock.last).toEqual({ wall: T0 + 500, counter: 1, node: "hub-a" });
    expect(compareHlc(clock.last, before)).toBe(1);
  });

  it("rejects malformed remote timestamps", () => {
    const clock = new HybridLogicalClock({ node: "hub-a", clock: () => T0 });
    const bad = [
      { wall: -1, counter: 0, node: "b" },
      { wall: 1.5, counter: 0, node: "b" },
      { wall: T0, counter: -1, node: "b" },
      { wall: T0, counter: HLC_MAX_COUNTER + 1, node: "b" },
      { wall: T0, counter: 0, node: "" },
      { wall: T0, counter: 0, node: "has space" },
      { wall: "1", counter: 0, node: "b" },
      null,
    ];
    for (const remote of bad) {
      expect(() => clock.receive(remote as unknown as HlcTimestamp)).toThrow(ValidationError);
    }
  });

  it("rejects a node id that would break the string order", () => {
    expect(() => new HybridLogicalClock({ node: "hub ä" })).toThrow(ValidationError);
    expect(() => new HybridLogicalClock({ node: "" })).toThrow(ValidationError);
  });

  it("resumes after a restored last timestamp even if the physical clock is behind it", () => {
    const clock = new HybridLogicalClock({
      node: "hub-a",
      clock: () => T0,
      last: { wall: T0 + 60_000, counter: 3, node: "hub-a" },
    });
    expect(clock.now()).toEqual({ wall: T0 + 60_000, counter: 4, node: "hub-a" });
  });

  it("moves the wall on by a millisecond rather than overflow the counter", () => {
    const clock = new HybridLogicalClock({
      node: "hub-a",
      clock: () => T0,
      last: { wall: T0, counter: HLC_MAX_COUNTER, node: "hub-a" },
    });
    expect(clock.now()).toEqual({ wall: T0 + 1, counter: 0, node: "hub-a" });
  });

  it("reads Date.now when no clock is given", () => {
    vi.spyOn(Date, "now").mockReturnValue(T0);
    expect(new HybridLogicalClock({ node: "hub-a" }).now()).toEqual({ wall: T0, counter: 0, node: "hub-a" });
  });

  it("refuses a physical clock that returns no time", () => {
    expect(() => new HybridLogicalClock({ node: "hub-a", clock: () => Number.NaN }).now()).toThrow(
      RangeError,
    );
  });
});

describe("HLC string form", () => {
  it("writes fixed-width lowercase hex fields then the node", () => {
    expect(formatHlc({ wall: T0, counter: 10, node: "urn:hub:a" })).toBe("018f34069e00-0000000a-urn:hub:a");
    expect(formatHlc({ wall: 0, counter: 0, node: "x" })).toBe("000000000000-00000000-x");
  });

  it("round-trips through parseHlc", () => {
    fc.assert(
      fc.property(timestamp, (t) => {
        expect(parseHlc(formatHlc(t))).toEqual(t);
      }),
    );
  });

  it("sorts as strings exactly as compareHlc orders the timestamps", () => {
    fc.assert(
      fc.property(timestamp, timestamp, (a, b) => {
        const x = formatHlc(a);
        const y = formatHlc(b);
        expect(x < y ? -1 : x > y ? 1 : 0).toBe(compareHlc(a, b));
        // Byte order, as a database would sort the ASCII form.
        expect(Math.sign(Buffer.compare(Buffer.from(x), Buffer.from(y)))).toBe(compareHlc(a, b));
      }),
    );
  });

  it("rejects strings that are not the canonical form", () => {
    for (const text of [
      "",
      "018f3437a600-0000000a",
      "018f3437a600-0000000a-",
      "018F3437A600-0000000A-hub",
      "18f3437a600-0000000a-hub",
      "018f3437a600-000000a-hub",
      "018f3437a600-0000000a-hub a",
      "018f3437a600_0000000a_hub",
    ]) {
      expect(() => parseHlc(text), text).toThrow(ValidationError);
    }
  });

  it("orders by wall, then counter, then node", () => {
    const a = { wall: 2, counter: 0, node: "z" };
    const b = { wall: 1, counter: 9, node: "z" };
    const c = { wall: 1, counter: 9, node: "a" };
    expect([a, b, c].sort(compareHlc)).toEqual([c, b, a]);
    expect(compareHlc(c, { ...c })).toBe(0);
  });
});
