// The hub's clock: stamps in formatHlc's form, increasing, across milliseconds and clock steps back.
import { describe, expect, it } from "vitest";
import { formatHlc, parseHlc } from "../core/index.js";
import { createHubClock } from "./hub-clock.js";

describe("createHubClock", () => {
  it("stamps formatHlc's text of each timestamp, strictly increasing, whatever the wall clock does", () => {
    // Two stamps in one ms, a step forward, a step back (the counter carries on), forward again.
    const walls = [
      1_735_689_600_000, 1_735_689_600_000, 1_735_689_600_007, 1_735_689_599_000, 1_735_689_600_020,
    ];
    let i = 0;
    const clock = createHubClock(
      "urn:hub:test",
      undefined,
      () => new Date(walls[Math.min(i++, walls.length - 1)] as number),
    );
    // Stamps and bare HLCs share one sequence.
    const stamps = walls.map((_, k) => (k % 2 === 0 ? clock.stamp() : { hlc: clock.hlc(), time: undefined }));
    for (const { hlc, time } of stamps) {
      expect(hlc).toBe(formatHlc(parseHlc(hlc)));
      if (time) expect(time.getTime()).toBe(parseHlc(hlc).wall);
    }
    expect(stamps.map((s) => s.hlc)).toEqual([
      "01941f297c00-00000000-urn:hub:test",
      "01941f297c00-00000001-urn:hub:test",
      "01941f297c07-00000000-urn:hub:test",
      "01941f297c07-00000001-urn:hub:test",
      "01941f297c14-00000000-urn:hub:test",
    ]);
  });

  it("goes on after a stamp it observes, and ignores one far ahead or malformed", () => {
    const clock = createHubClock("urn:hub:test", undefined, () => new Date(1_735_689_600_000));
    expect(clock.stamp().hlc).toBe("01941f297c00-00000000-urn:hub:test");
    // Another replica's stamp 7 ms ahead (within the drift bound): the next stamp sorts after it.
    clock.observe("01941f297c07-00000003-urn:hub:test");
    expect(clock.stamp().hlc).toBe("01941f297c07-00000005-urn:hub:test");
    clock.observe("ffffffffffff-00000000-urn:hub:test");
    clock.observe("not a stamp");
    expect(clock.stamp().hlc).toBe("01941f297c07-00000006-urn:hub:test");
  });

  it("resumes after the last stamp it is given (a restart)", () => {
    const clock = createHubClock(
      "urn:hub:test",
      "01941f297c07-00000005-urn:hub:test",
      () => new Date(1_735_689_600_000),
    );
    expect(clock.stamp().hlc).toBe("01941f297c07-00000006-urn:hub:test");
  });
});
