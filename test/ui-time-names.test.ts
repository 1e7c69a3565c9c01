// The rough edges a walk through the demo found, in Chromium (playwright-core) against a real hub:
// the time view names properties by their titles and shows their units, with its tables' headings
// over their columns.
import type { Page } from "playwright-core";
import { expect, it } from "vitest";
import { describeInBrowser, useBrowserAndHub } from "./support/ui-browser.js";
import { minimalTd, putTd, startTestHub } from "./support/test-hub.js";

// Bounds on waiting for what the page shows: generous, as ui.test.ts, for a loaded shared machine.
const SHOWN_MS = 60_000;
const BOILER = "urn:test:ui-time-names:boiler";
const CORRELATION = "c-ui-time-names-brew-7f3a2b";
const FORM = (path: string) => [{ href: `http://127.0.0.1:9/${path}` }];

describeInBrowser("the web UI's names, units and headings", { timeout: 4 * SHOWN_MS }, () => {
  /** The hub's clock runs this far behind the wall clock: the past is written by moving it. */
  let lag = 30 * 60_000;
  const ui = useBrowserAndHub(async () => {
    const hub = await startTestHub({}, {}, { clock: () => new Date(Date.now() - lag) });
    await putTd(
      hub,
      minimalTd({
        id: BOILER,
        title: "Boiler",
        properties: {
          temperature: { type: "number", title: "Boiler temperature", unit: "Cel", forms: FORM("t") },
          state: { type: "string", title: "Mode", forms: FORM("state") },
          setpoint: { type: "number", unit: "Cel", forms: FORM("setpoint") },
        },
        actions: {
          brew: {
            title: "Brew a shot",
            input: { type: "object", properties: { size: { type: "string" } } },
            forms: FORM("brew"),
          },
        },
      }),
    );
    const sensor = { actor: "sensor", via: "test" };
    const operator = { actor: "operator", via: "test" };
    // The shots' Changes share a correlation (one command's), as a binding records them.
    const brewing = { ...operator, via: "http", correlation: CORRELATION };
    await hub.hub.ingest(
      BOILER,
      [
        { kind: "reported", affordance: "temperature", value: 20 },
        { kind: "reported", affordance: "state", value: "idle" },
        { kind: "reported", affordance: "setpoint", value: 85 },
      ],
      sensor,
    );
    // Half an hour ago the first values; since, the Changes a diff of the last 15 minutes has.
    lag = 0;
    await hub.hub.ingest(
      BOILER,
      [
        { kind: "reported", affordance: "temperature", value: 21.5 },
        { kind: "reported", affordance: "state", value: "heating" },
      ],
      sensor,
    );
    await hub.hub.ingest(BOILER, [{ kind: "desired", affordance: "setpoint", value: 90 }], operator);
    await hub.hub.ingest(BOILER, [{ kind: "reported", affordance: "setpoint", value: 88 }], sensor);
    // Two shots asked for; the second refused by the machine, as a binding records a refusal.
    for (const size of ["single", "double"])
      await hub.hub.ingest(BOILER, [{ kind: "invoked", affordance: "brew", value: { size } }], brewing);
    await hub.hub.ingest(
      BOILER,
      [
        {
          kind: "failed",
          affordance: "brew",
          value: {
            message: `${BOILER}: POST answered 409`,
            body: JSON.stringify({ detail: "no water in the tank" }),
          },
        },
      ],
      brewing,
    );
    return hub;
  }, SHOWN_MS);

  async function timeView(page: Page): Promise<void> {
    const query = new URLSearchParams({ at: "now", from: "-15m", to: "now" }).toString();
    await page.evaluate(`location.hash = ${JSON.stringify(`#/time/${encodeURIComponent(BOILER)}?${query}`)}`);
    await page.getByTestId("state").locator("tr").first().waitFor();
    await page.getByTestId("diff").locator("table.diff").first().waitFor();
  }

  it("names the time view's properties by title, their values with units, under headings that fit their columns", async () => {
    const page = await ui.open({ hash: "#/log" });
    try {
      await timeView(page);
      const state = page.getByTestId("state");
      const row = (name: string) => state.locator(`tr[data-affordance="${name}"]`);
      // A title that says its name is the name enough; one that does not shows the name as a key.
      expect(await row("temperature").locator("th").textContent()).toBe("Boiler temperature");
      expect(await row("temperature").locator("th").getAttribute("title")).toBe("temperature");
      expect(await row("state").locator("th").textContent()).toBe("Mode state");
      expect(await row("state").locator("th code.key").textContent()).toBe("state");
      expect(await row("setpoint").locator("th").textContent()).toBe("setpoint");
      expect(await row("temperature").locator("td.value").textContent()).toBe("21.5 °C");
      expect(await row("state").locator("td.value").textContent()).toBe("heating");

      const diff = page
        .getByTestId("diff")
        .locator("table.diff", { has: page.locator("caption", { hasText: "Properties" }) });
      const changed = (name: string) => diff.locator(`tbody tr[data-affordance="${name}"]`);
      expect(await changed("temperature").locator("th").textContent()).toBe("Boiler temperature");
      expect(await changed("temperature").locator("td.before").textContent()).toBe("20 °C");
      expect(await changed("temperature").locator("td.after").textContent()).toBe("21.5 °C");
      expect(await changed("setpoint").locator("td.asked").textContent()).toMatch(
        /^asked for 90 °C by operator at /,
      );
      // Each heading over its column: the counts under "in between", "asked for" over what was.
      const headings = await diff.locator("thead th").allTextContents();
      const cells = await page.evaluate<string[]>(`[...document.querySelectorAll(
        '[data-testid="diff"] table.diff:not([data-testid]) tr[data-affordance="setpoint"] > *',
      )].map((cell) => cell.className)`);
      expect(headings.length).toBe(cells.length);
      expect(headings[cells.indexOf("counts")]).toBe("in between");
      expect(headings[cells.findIndex((c) => c.startsWith("asked"))]).toBe("asked for");
      expect(headings[cells.indexOf("after")]).toBe("after");
    } finally {
      await page.context().close();
    }
  });

  it("says what a property held before only for its values: not an invocation's previous input, nor a failure's JSON", async () => {
    const page = await ui.open({ hash: `#/thing/${encodeURIComponent(BOILER)}` });
    try {
      const timeline = page.locator("table.changes");
      await timeline.locator("tr.change.kind-failed").waitFor();
      // The second shot's row says what it asked for, not "(was {size: single})".
      const invoked = timeline.locator("tr.change.kind-invoked td.value");
      expect(await invoked.allTextContents()).toEqual(['{"size":"double"}', '{"size":"single"}']);
      // A reading still says the value it replaced.
      const reading = timeline.locator("tr.change.kind-reported", { hasText: "temperature" }).first();
      expect(await reading.locator("td.value").textContent()).toBe("21.5 °C (was 20 °C)");

      await timeView(page);
      const brew = page.getByTestId("diff-actions").locator('tr[data-affordance="brew"]');
      expect(await brew.locator("th").textContent()).toBe("Brew a shot");
      expect(await brew.locator("td.counts").textContent()).toBe("2 invoked, 1 failed");
      expect(await brew.locator("td.last").textContent()).toBe(
        `failed ${BOILER}: POST answered 409 — the device said: no water in the tank`,
      );
    } finally {
      await page.context().close();
    }
  });

  it("heads each chart by the property's title without saying its name twice", async () => {
    const page = await ui.open({ hash: `#/thing/${encodeURIComponent(BOILER)}` });
    try {
      await page.locator(".charts").scrollIntoViewIfNeeded();
      const heading = (name: string) =>
        page.locator(`.chart[data-property="${name}"]`).locator("xpath=../h3");
      await heading("temperature").waitFor();
      // "Boiler temperature temperature" said the property's name twice.
      const text = await heading("temperature").textContent();
      expect(text).toBe("Boiler temperature");
      expect(text).not.toMatch(/\b(\w+) \1\b/i);
      expect(await heading("setpoint").textContent()).toBe("setpoint");
    } finally {
      await page.context().close();
    }
  });

  it("keeps a Change's tags and Why? button whole, on the cause's line at a laptop's width, within a phone's", async () => {
    for (const viewport of [
      { width: 1280, height: 720 },
      { width: 390, height: 844 },
    ]) {
      const query = new URLSearchParams({ thing: BOILER, since: "-1h" }).toString();
      const page = await ui.open({ viewport, hash: `#/changes?${query}` });
      try {
        const cause = page.locator("tr.change.kind-failed td.cause");
        await cause.locator("button.why").waitFor();
        const boxes = await page.evaluate<
          { text: string; middle: number; fontSize: number; height: number }[]
        >(
          `[...document.querySelectorAll("tr.change.kind-failed td.cause :is(.tag, button.why)")].map((piece) => {
            const box = piece.getBoundingClientRect();
            return {
              text: piece.textContent,
              middle: box.top + box.height / 2,
              fontSize: parseFloat(getComputedStyle(piece).fontSize),
              height: box.height,
            };
          })`,
        );
        expect(boxes.map((box) => box.text)).toEqual([`correlation c-ui-time-na…`, "Why?"]);
        // Each on one line: no taller than two lines of its text would be.
        for (const box of boxes)
          expect(box.height, `${box.text} at ${viewport.width} px`).toBeLessThan(2 * box.fontSize);
        if (viewport.width === 1280) {
          // On a laptop the tag and the button sit on one line, beside the actor.
          expect(Math.abs((boxes[0]?.middle ?? 0) - (boxes[1]?.middle ?? Infinity))).toBeLessThan(4);
        }
        const width = await page.evaluate<number>("document.documentElement.scrollWidth");
        expect(width).toBeLessThanOrEqual(viewport.width);
      } finally {
        await page.context().close();
      }
    }
  });
});
