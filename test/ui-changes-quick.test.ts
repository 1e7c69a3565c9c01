// The Changes view as an incident responder opens it on a busy fleet, in Chromium (playwright-core)
// against a real hub: one click shows every Change but the readings that bury them — the write,
// the outage, the event — with the other filters kept, and a click again brings the readings back.
import { expect, it } from "vitest";
import { describeInBrowser, useBrowserAndHub } from "./support/ui-browser.js";
import { minimalTd, putTd, startTestHub } from "./support/test-hub.js";

// Bounds on waiting for what the page shows: generous, as ui.test.ts, for a loaded shared machine.
const SHOWN_MS = 60_000;
const BOILER = "urn:test:ui-changes-quick:boiler";
const SENSOR = "urn:test:ui-changes-quick:sensor";
const FORM = (path: string) => [{ href: `http://127.0.0.1:9/${path}` }];

describeInBrowser("the Changes view's one click past the readings", { timeout: 4 * SHOWN_MS }, () => {
  const ui = useBrowserAndHub(async () => {
    const hub = await startTestHub();
    const properties = {
      temperature: { type: "number", unit: "Cel", forms: FORM("t") },
      setpoint: { type: "number", unit: "Cel", forms: FORM("s") },
    };
    await putTd(
      hub,
      minimalTd({ id: BOILER, title: "Boiler", properties, events: { ready: { forms: FORM("ready") } } }),
    );
    await putTd(hub, minimalTd({ id: SENSOR, title: "Sensor", properties }));
    const observer = { actor: "hub:observer", via: "http" };
    // A write, an outage and an event among a hundred readings.
    await hub.hub.ingest(BOILER, [{ kind: "desired", affordance: "setpoint", value: 90 }], {
      actor: "operator",
      via: "http",
    });
    await hub.hub.ingest(
      BOILER,
      [{ kind: "unreachable", value: "connect ECONNREFUSED 127.0.0.1:9" }],
      observer,
    );
    await hub.hub.ingest(BOILER, [{ kind: "reachable" }], observer);
    await hub.hub.ingest(
      BOILER,
      [{ kind: "emitted", affordance: "ready", value: { temperature: 90 } }],
      observer,
    );
    for (let i = 0; i < 50; i++)
      for (const thing of [BOILER, SENSOR])
        await hub.hub.ingest(
          thing,
          [{ kind: "reported", affordance: "temperature", value: 20 + i / 10 }],
          observer,
        );
    return hub;
  }, SHOWN_MS);

  it("shows every Change but the readings at one click, other filters kept, and the readings again at another", async () => {
    const query = new URLSearchParams({ thing: BOILER, since: "-1h" }).toString();
    const page = await ui.open({ hash: `#/changes?${query}` });
    try {
      const kinds = page.locator("tr.change .kind");
      // The newest rows are the readings: the write, the outage and the event are far below them.
      await page.locator("tr.change").filter({ hasText: "temperature" }).first().waitFor();
      expect((await kinds.allTextContents()).slice(0, 10)).toEqual(Array(10).fill("reported"));
      const button = page.getByRole("button", { name: "Everything but readings" });
      await expect(button.getAttribute("aria-pressed")).resolves.toBe("false");
      await button.click();
      await page.locator('button[aria-pressed="true"]', { hasText: "Everything but readings" }).waitFor();
      await page.locator("tr.change.kind-desired").waitFor();
      // What was done and what happened, newest first; the Thing filter kept (no Sensor row).
      await expect(kinds.allTextContents()).resolves.toEqual([
        "emitted",
        "reachable",
        "unreachable",
        "desired",
        "described",
      ]);
      const hash = new URLSearchParams(new URL(page.url()).hash.split("?")[1] ?? "");
      expect(hash.get("thing")).toBe(BOILER);
      expect(hash.get("kind")?.split(",")).not.toContain("reported");
      expect(hash.get("kind")?.split(",")).toContain("unreachable");
      // Again: the readings are back.
      await page.getByRole("button", { name: "Everything but readings" }).click();
      await page.locator('button[aria-pressed="false"]', { hasText: "Everything but readings" }).waitFor();
      await page.locator("tr.change.kind-reported").first().waitFor();
    } finally {
      await page.context().close();
    }
  });
});
