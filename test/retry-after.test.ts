// End-to-end: a Thing that answers 503 with Retry-After (in maintenance) is not asked again by the
// hub's observation before the time it gave, even though the hub's own backoff is much shorter.
import { once } from "node:events";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Change } from "../src/core/index.js";
import { changeAfter, putTd, startTestHub, type TestHub } from "./support/test-hub.js";

const ID = "urn:test:retry-after:meter";
/** Longer than the HTTP binding's own retries wait within one request (5 s): the outage is the hub's. */
const RETRY_AFTER_S = 6;

describe("a Thing in maintenance (503 + Retry-After)", () => {
  let hub: TestHub;
  let device: Server;
  /** When each read arrived, and what it was answered. */
  const reads: { at: number; status: number }[] = [];

  beforeAll(async () => {
    device = createServer((_req, res) => {
      const status = reads.length === 2 ? 503 : 200;
      reads.push({ at: performance.now(), status });
      if (status === 503) res.setHeader("retry-after", String(RETRY_AFTER_S));
      res.setHeader("content-type", "application/json");
      res.statusCode = status;
      res.end(JSON.stringify(status === 503 ? { error: "maintenance" } : reads.length));
    });
    device.listen(0, "127.0.0.1");
    await once(device, "listening");
    const url = `http://127.0.0.1:${(device.address() as AddressInfo).port}/`;
    // The hub's own backoff after an outage: 20 ms, at most 200 ms.
    hub = await startTestHub({ observe: true, reconnectMs: 20, maxReconnectMs: 200 });
    await putTd(hub, {
      "@context": "https://www.w3.org/2022/wot/td/v1.1",
      id: ID,
      title: "Meter",
      base: url,
      securityDefinitions: { nosec_sc: { scheme: "nosec" } },
      security: "nosec_sc",
      properties: {
        level: {
          type: "integer",
          observable: true,
          "hyperthings:pollInterval": 100,
          forms: [{ href: "level" }],
        },
      },
    });
  });

  afterAll(async () => {
    await hub?.stop();
    device?.close();
  });

  it("records the outage, and reads again only once the Retry-After has passed", async () => {
    const unreachable: Change = await changeAfter(hub, 0, (c) => c.thing === ID && c.kind === "unreachable");
    expect(unreachable.value).toContain("503");
    const reachable = await changeAfter(
      hub,
      unreachable.seq,
      (c) => c.thing === ID && c.kind === "reachable",
      (RETRY_AFTER_S + 10) * 1000,
    );
    expect(reachable.seq).toBeGreaterThan(unreachable.seq);
    const refused = reads.findIndex((r) => r.status === 503);
    const next = reads[refused + 1];
    expect(next).toBeDefined();
    // Timers do not fire early: the next read is at least the Retry-After later.
    expect((next?.at ?? 0) - (reads[refused]?.at ?? 0)).toBeGreaterThanOrEqual(RETRY_AFTER_S * 1000 - 10);
  });
});
