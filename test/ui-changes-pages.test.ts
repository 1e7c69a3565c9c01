// The Changes view over a long range, in Chromium (playwright-core) against a real hub: a page of
// the newest Changes at a time (not 2,000 rows, ~60,000 px, at once), the next at *Show more* from
// the feed's cursor with the filters kept, live Changes on top without a gap below; and each value
// with its property's unit, as the Thing's page shows it.
import type { Page } from "playwright-core";
import { expect, it } from "vitest";
import { describeInBrowser, useBrowserAndHub } from "./support/ui-browser.js";
import { minimalTd, putTd, startTestHub } from "./support/test-hub.js";

// Bounds on waiting for what the page shows: generous, as ui.test.ts, for a loaded shared machine.
const SHOWN_MS = 60_000;
const BOILER = "urn:test:ui-changes-pages:boiler";
const SENSOR = "urn:test:ui-changes-pages:sensor";
const FORM = (path: string) => [{ href: `http://127.0.0.1:9/${path}` }];
const READINGS = 250;
const observer = { actor: "hub:observer", via: "http" };

describeInBrowser("the Changes view a page at a time, with units", { timeout: 4 * SHOWN_MS }, () => {
  const ui = useBrowserAndHub(async () => {
    const hub = await startTestHub();
    await putTd(
      hub,
      minimalTd({
        id: BOILER,
        title: "Boiler",
        properties: {
          temperature: { type: "number", unit: "Cel", forms: FORM("t") },
          setpoint: { type: "number", unit: "Cel", forms: FORM("s") },
        },
      }),
    );
    await putTd(
      hub,
      minimalTd({
        id: SENSOR,
        title: "Sensor",
        properties: { humidity: { type: "number", unit: "%", forms: FORM("h") } },
      }),
    );
    await hub.hub.ingest(BOILER, [{ kind: "desired", affordance: "setpoint", value: 90 }], {
      actor: "operator",
      via: "http",
    });
    // The boiler's readings 1000 to 1249 °C, a sensor's among them: the Thing filter matters.
    for (let i = 0; i < READINGS; i++) {
      await hub.hub.ingest(
        BOILER,
        [{ kind: "reported", affordance: "temperature", value: 1000 + i }],
        observer,
      );
      if (i % 50 === 0)
        await hub.hub.ingest(
          SENSOR,
          [{ kind: "reported", affordance: "humidity", value: 40 + i / 50 }],
          observer,
        );
    }
    return hub;
  }, SHOWN_MS);

  /** The rows' values, top to bottom, and their seqs. */
  const rowsOf = async (page: Page) => ({
    values: await page.locator("tr.change td.value").allTextContents(),
    seqs: (
      await page.evaluate<string[]>(
        "[...document.querySelectorAll('tr.change')].map((row) => row.dataset.seq)",
      )
    ).map(Number),
  });
  const readings = (from: number, to: number) =>
    Array.from({ length: from - to + 1 }, (_, k) => `${from - k} °C (was ${from - k - 1} °C)`);

  it("shows the newest 100 Changes, and the next 100 at a click from where the page ends, the filter kept", async () => {
    const query = new URLSearchParams({ thing: BOILER, since: "-1h" }).toString();
    const page = await ui.open({ hash: `#/changes?${query}` });
    try {
      const rows = page.locator("tr.change");
      const more = page.getByRole("button", { name: "Show 100 more" });
      await more.waitFor();
      await expect(rows.count()).resolves.toBe(100);
      // A page a person scrolls, not 252 rows at once.
      expect(await page.evaluate<number>("document.scrollingElement.scrollHeight")).toBeLessThan(6000);
      await expect(page.locator(".changes-status").textContent()).resolves.toMatch(
        /^The newest 100 Changes of the range, newest first \(it holds more\); new ones appear live\.$/,
      );
      // Each reading with its property's unit, the one before it too.
      await page
        .locator("tr.change td.value", { hasText: `${999 + READINGS} °C (was ${998 + READINGS} °C)` })
        .waitFor();
      expect((await rowsOf(page)).values).toEqual(readings(999 + READINGS, 900 + READINGS));

      // A Change made now comes on top; the page keeps its size, and the one pushed out comes back
      // with the next page: no gap, none twice.
      await hub().hub.ingest(
        BOILER,
        [{ kind: "reported", affordance: "temperature", value: 2000 }],
        observer,
      );
      await page.locator("tr.change td.value", { hasText: `2000 °C (was ${999 + READINGS} °C)` }).waitFor();
      await expect(rows.count()).resolves.toBe(100);
      await more.click();
      await rows.nth(199).waitFor();
      const shown = await rowsOf(page);
      expect(shown.values).toEqual([
        `2000 °C (was ${999 + READINGS} °C)`,
        ...readings(999 + READINGS, 801 + READINGS),
      ]);
      expect(shown.seqs).toEqual([...shown.seqs].sort((a, b) => b - a));
      // To the range's start: the boiler's Changes only (the Thing filter kept), and no button.
      await more.click();
      await page.locator("tr.change.kind-described").waitFor();
      await expect(more.count()).resolves.toBe(0);
      const all = await rowsOf(page);
      expect(all.values.slice(-3)).toEqual(["1000 °C", "90 °C", "TD Boiler: 2 properties"]);
      expect(all.values).toHaveLength(READINGS + 3);
      expect(new Set(all.seqs).size).toBe(READINGS + 3);
      await expect(page.locator(".changes-status").textContent()).resolves.toMatch(
        new RegExp(`^${READINGS + 3} Changes, newest first; new ones appear live\\.$`),
      );
    } finally {
      await page.context().close();
    }
  });

  it("shows each Thing's values with its own units in the whole feed", async () => {
    const page = await ui.open({ hash: "#/changes?since=-1h&kind=reported" });
    try {
      await page.locator("tr.change td.value", { hasText: "%" }).first().waitFor();
      const sensor = page.locator("tr.change", {
        has: page.locator("td.affordance", { hasText: "humidity" }),
      });
      await expect(sensor.locator("td.value").first().textContent()).resolves.toBe("44 % (was 43 %)");
      const boiler = page.locator("tr.change", {
        has: page.locator("td.affordance", { hasText: "temperature" }),
      });
      await expect(boiler.locator("td.value").first().textContent()).resolves.toMatch(
        /^\d+ °C \(was \d+ °C\)$/,
      );
    } finally {
      await page.context().close();
    }
  });

  const hub = () => ui.hub;

  it("says a link added as its relation and the Thing it points at, by title, and a TD by its title and affordances", async () => {
    const added = await hub().request(`/things/${encodeURIComponent(SENSOR)}/links`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ rel: "partOf", href: BOILER }),
    });
    expect(added.status).toBe(201);
    const page = await ui.open({ hash: "#/changes?since=-1h&kind=linked,described" });
    try {
      const linked = page.locator("tr.change.kind-linked td.value");
      await linked.locator("a", { hasText: "Boiler" }).waitFor();
      await expect(linked.textContent()).resolves.toBe("partOf → Boiler");
      await expect(linked.locator("a").getAttribute("title")).resolves.toBe(BOILER);
      const sensor = page.locator("tr.change.kind-described", {
        has: page.locator("td.thing", { hasText: "Sensor" }),
      });
      await expect(sensor.first().locator("td.value").textContent()).resolves.toBe("TD Sensor: 1 property");
      // The TD itself is the tooltip.
      await expect(sensor.first().locator("td.value [title]").getAttribute("title")).resolves.toContain(
        `"id":"${SENSOR}"`,
      );
    } finally {
      await page.context().close();
    }
  });

  it("gives one Thing's rows their units without the whole fleet's summary", async () => {
    const page = await ui.open({ hash: "#/log" });
    try {
      const summaries: string[] = [];
      page.on("request", (request) => {
        if (new URL(request.url()).pathname === "/graph/summary") summaries.push(request.url());
      });
      await page.goto(
        `${ui.hub.url}/#/changes?${new URLSearchParams({ thing: BOILER, since: "-1h" }).toString()}`,
      );
      await page.locator("tr.change td.value", { hasText: "°C" }).first().waitFor();
      expect(summaries).toEqual([]);
    } finally {
      await page.context().close();
    }
  });
});
