// The Bus contract, run against every backend: local delivery in seq order to every subscriber,
// a throwing subscriber skipped and reported, unsubscribing, and nothing after close; a NATS bus
// running as a replica too. (The NATS bus's JetStream side is tested against a real server in
// test/nats-bus.test.ts and test/replicas.test.ts.)
import { describe, expect, it } from "vitest";
import type { Change } from "../core/index.js";
import { InProcessBus, NatsBus, type Bus } from "./index.js";

function change(seq: number): Change {
  return {
    seq,
    hlc: `${seq}`,
    thing: "urn:test:lamp",
    kind: "reported",
    value: seq,
    cause: { actor: "test" },
  };
}

function natsBus(onError: (error: unknown) => void, replica: boolean): NatsBus {
  return new NatsBus(
    {
      servers: ["nats://127.0.0.1:1"],
      stream: "UNUSED",
      prefix: "unused",
      maxAgeMs: 0,
      maxBytes: 0,
      replay: () => Promise.resolve([]),
      lastSeq: () => Promise.resolve(0),
      logger: { info: () => undefined, warn: () => undefined, error: () => undefined },
      replica,
    },
    onError,
  );
}

const backends: [string, (onError: (error: unknown) => void) => Promise<Bus>][] = [
  ["in-process", (onError) => Promise.resolve(new InProcessBus(onError))],
  ["NATS (its local delivery)", (onError) => Promise.resolve(natsBus(onError, false))],
  [
    "NATS as a replica (its local delivery, in seq order)",
    async (onError) => {
      const bus = natsBus(onError, true);
      await bus.begin();
      return bus;
    },
  ],
];

describe.each(backends)("the %s bus", (_name, create) => {
  it("delivers published Changes in seq order to every subscriber, at once", async () => {
    const bus = await create(() => undefined);
    const a: number[] = [];
    const b: number[] = [];
    bus.subscribe((c) => a.push(c.seq));
    bus.subscribe((c) => b.push(c.seq));
    bus.publish([change(1), change(2)]);
    bus.publish([change(3)]);
    expect(a).toEqual([1, 2, 3]);
    expect(b).toEqual([1, 2, 3]);
    await bus.close();
  });

  it("reports a subscriber that throws and goes on delivering to the others", async () => {
    const errors: unknown[] = [];
    const bus = await create((error) => errors.push(error));
    const seen: number[] = [];
    bus.subscribe(() => {
      throw new Error("subscriber broke");
    });
    bus.subscribe((c) => seen.push(c.seq));
    bus.publish([change(1), change(2)]);
    expect(seen).toEqual([1, 2]);
    expect(errors).toHaveLength(2);
    await bus.close();
  });

  it("stops delivering to one that unsubscribed, and to all once closed", async () => {
    const bus = await create(() => undefined);
    const seen: number[] = [];
    const stop = bus.subscribe((c) => seen.push(c.seq));
    bus.publish([change(1)]);
    stop();
    bus.publish([change(2)]);
    const after: number[] = [];
    bus.subscribe((c) => after.push(c.seq));
    await bus.close();
    bus.publish([change(3)]);
    expect(seen).toEqual([1]);
    expect(after).toEqual([]);
  });
});
