// The boiler's PID loop: it approaches the setpoint from either side without oscillating, and
// heats only while it must.
import { describe, expect, it } from "vitest";
import { Boiler, READY_BAND } from "./boiler.js";

/** The distance to the setpoint after each of `steps` steps of `dt` simulated seconds. */
function distances(boiler: Boiler, steps: number, dt: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < steps; i++) {
    boiler.advance(dt);
    out.push(Math.abs(boiler.setpoint - boiler.temperature));
  }
  return out;
}

describe("Boiler", () => {
  it("heats from the room's temperature towards the setpoint, getting closer at every step, and holds it", () => {
    const boiler = new Boiler(93);
    const start = boiler.temperature;
    expect(boiler.ready).toBe(false);
    const path = distances(boiler, 400, 0.25);
    // Monotone approach until it is within the ready band; never beyond the band afterwards.
    const arrived = path.findIndex((d) => d <= READY_BAND);
    expect(arrived).toBeGreaterThan(0);
    for (let i = 1; i <= arrived; i++) expect(path[i]).toBeLessThan(path[i - 1] as number);
    for (const d of path.slice(arrived)) expect(d).toBeLessThanOrEqual(READY_BAND);
    expect(boiler.temperature).toBeGreaterThan(start);
    expect(boiler.ready).toBe(true);
  });

  it("cools towards a lowered setpoint with the heater off, then holds it", () => {
    const boiler = new Boiler(96);
    boiler.advance(200);
    boiler.setpoint = 88;
    boiler.advance(0.25);
    expect(boiler.heating).toBe(false);
    const path = distances(boiler, 600, 0.25);
    const arrived = path.findIndex((d) => d <= READY_BAND);
    expect(arrived).toBeGreaterThan(0);
    for (let i = 1; i <= arrived; i++) expect(path[i]).toBeLessThan(path[i - 1] as number);
    expect(Math.abs(boiler.temperature - 88)).toBeLessThanOrEqual(READY_BAND);
    // Holding a temperature above the room's takes some power.
    expect(boiler.heating).toBe(true);
  });

  it("takes the same path whether time passes in one long step or many short ones", () => {
    const a = new Boiler(90);
    const b = new Boiler(90);
    a.advance(30);
    for (let i = 0; i < 300; i++) b.advance(0.1);
    expect(a.temperature).toBeCloseTo(b.temperature, 6);
  });
});
