// Drift across a restart of a hub alone: a hub that stops while a corrective write is out to a
// simulated service (src/sim, over HTTP) checks that drift again when it starts on the same data
// directory, as a replica taking the drift role over does, instead of waiting for a next report
// that a Thing holding the drifting value never sends. Every wait is for a Change, bounded.
import { createServer, type Server, type Socket } from "node:net";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import type { Change, DriftValue } from "../src/core/index.js";
import { MicroService, SimHttpServer } from "../src/sim/index.js";
import { changeAfter, registerThing, startTestHub, type TestHub } from "./support/test-hub.js";

const ID = "urn:test:drift-restart:orders";

/** A listener that takes connections and what they send, and never answers: a device that hangs. */
async function hanging(port: number): Promise<{ received: Promise<void>; close: () => Promise<void> }> {
  const sockets = new Set<Socket>();
  let heard = () => {};
  const received = new Promise<void>((resolve) => (heard = resolve));
  const server: Server = createServer((socket) => {
    sockets.add(socket);
    socket.on("data", (data) => {
      if (data.toString("latin1").startsWith("PUT ")) heard();
    });
    socket.on("error", () => undefined);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(port, "127.0.0.1", () => resolve());
  });
  return {
    received,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The order service, counting the writes that reach it. */
class CountedService extends MicroService {
  readonly writes: unknown[] = [];
  override writeProperty(name: string, value: unknown): void {
    this.writes.push(value);
    super.writeProperty(name, value);
  }
}

const isDrift = (status: DriftValue["status"]) => (c: Change) =>
  c.thing === ID && c.kind === "drift" && (c.value as DriftValue).status === status;

describe("a hub alone restarted with a corrective write out", () => {
  const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-drift-restart-"));
  const running: TestHub[] = [];
  let sim = new SimHttpServer();

  afterAll(async () => {
    for (const hub of running) await hub.stop();
    await sim.close();
    rmSync(dataDir, { recursive: true, force: true });
  });

  it("reads the property back at its next start and reverts it then, without waiting for a report", async () => {
    const service = new CountedService(ID, "orders");
    sim.add(service);
    await sim.listen("127.0.0.1", 0);
    const port = Number(new URL(sim.url).port);

    const first = await startTestHub({ dataDir, observe: true, mqtt: false });
    running.push(first);
    let after = await first.hub.store.lastSeq();
    await registerThing(first, ID, sim.description(service));
    await changeAfter(first, after, (c) => c.thing === ID && c.affordance === "logLevel");
    const { release } = await first.hub.releases.build(
      [
        {
          path: "release.yaml",
          text:
            `release: orders-logging\nthings:\n  - select: { id: "${ID}" }\n    properties: { logLevel: warn }\n` +
            "drift: { policy: revert, maxReverts: 2, withinSeconds: 3600 }\n",
        },
      ],
      { actor: "test" },
    );
    const rollouts = first.hub.rollouts;
    if (!rollouts) throw new Error("the hub has no rollouts");
    const started = await rollouts.start(release.id, {}, { actor: "test" });
    expect((await rollouts.settled(started.id)).status).toBe("completed");
    expect(service.logLevel).toBe("warn");

    // The service goes to `debug`, then hangs (its port takes requests and never answers), and
    // says `debug` to the hub: the corrective write reaches the hung port, and the hub stops with
    // it out.
    await sim.close();
    service.logLevel = "debug";
    const hung = await hanging(port);
    after = await first.hub.store.lastSeq();
    await first.hub.ingest(ID, [{ kind: "reported", affordance: "logLevel", value: "debug" }], {
      actor: "device",
      via: "test",
    });
    const drift = await changeAfter(first, after, isDrift("drifting"));
    expect(drift.value).toMatchObject({ observed: "debug", revert: "sent" });
    await hung.received;
    await running.splice(0, 1)[0]?.stop();
    await hung.close();
    expect(service.logLevel).toBe("debug");

    // The service is back, holding `debug`, and says nothing new: the restarted hub reads it back
    // and sends the second corrective write the limit allows, which holds.
    sim = new SimHttpServer();
    sim.add(service);
    await sim.listen("127.0.0.1", port);
    const restarted = await startTestHub({ dataDir, observe: true, mqtt: false });
    running.push(restarted);
    const resolved = await changeAfter(restarted, drift.seq, isDrift("resolved"));
    expect(resolved.value).toMatchObject({ desired: "warn", observed: "debug" });
    expect(service.logLevel).toBe("warn");
    const res = await restarted.request(
      `/things/${encodeURIComponent(ID)}/history?order=asc&limit=100&kind=drift,reported`,
    );
    const changes = ((await res.json()) as { changes: Change[] }).changes.filter(
      (c) => c.seq > drift.seq && c.seq <= resolved.seq && c.affordance === "logLevel",
    );
    // The read back at the start, the second write's drift Change, then the service's `warn` (its
    // own push, or the read back after the write: whichever the hub records first) ends it.
    expect(
      changes.map((c) => [
        c.kind,
        c.kind === "drift" ? (c.value as DriftValue).revert : c.value,
        c.cause.actor,
      ]),
    ).toEqual([
      ["reported", "debug", "hub:drift"],
      ["drift", "sent", "hub:drift"],
      ["reported", "warn", expect.stringMatching(/^hub:(drift|observer)$/)],
      ["drift", undefined, "hub:drift"],
    ]);
    // The rollout's write and the restarted hub's; the hung one never reached the service.
    expect(service.writes).toEqual(["warn", "warn"]);
  }, 60_000);
});
