// What was asked of a Thing, as the web UI shows it, in Chromium (playwright-core) against a real
// hub: a diff puts the value a property's last write asked for beside what the Thing reported
// (marked when they differ), and an action's form names its input as a person reads it, with what
// it takes (type, unit, range).
import { expect, it } from "vitest";
import { describeInBrowser, useBrowserAndHub } from "./support/ui-browser.js";
import { minimalTd, putTd, startTestHub } from "./support/test-hub.js";

// Bounds on waiting for what the page shows: generous, as ui.test.ts, for a loaded shared machine.
const SHOWN_MS = 60_000;
const FAN = "urn:test:asked:fan";
const FORM = [{ href: "http://127.0.0.1:9/x" }];

describeInBrowser("what was asked of a Thing, in the web UI", { timeout: 4 * SHOWN_MS }, () => {
  const ui = useBrowserAndHub(async () => {
    const hub = await startTestHub();
    await putTd(
      hub,
      minimalTd({
        id: FAN,
        title: "Extractor fan",
        properties: {
          speed: { type: "integer", unit: "rpm", minimum: 0, maximum: 3000, forms: FORM },
          mode: { type: "string", enum: ["eco", "boost"], forms: FORM },
        },
        actions: {
          // No titles: the names, made readable.
          enablePort: {
            input: { type: "object", properties: { port: { type: "integer", minimum: 1, maximum: 48 } } },
            forms: FORM,
          },
          setBoostMinutes: { input: { type: "number", unit: "min", minimum: 1 }, forms: FORM },
          // A title: the action's own words.
          calibrate: { title: "Calibrate the sensor", input: { type: "boolean" }, forms: FORM },
        },
      }),
    );
    const operator = { actor: "operator", via: "test" };
    // Asked for 1500, reported 1400: not what was asked. Asked for eco, reported eco.
    await hub.hub.ingest(FAN, [{ kind: "desired", affordance: "speed", value: 1500 }], operator);
    await hub.hub.ingest(FAN, [{ kind: "completed", affordance: "speed" }], operator);
    await hub.hub.ingest(FAN, [{ kind: "reported", affordance: "speed", value: 1400 }], {
      actor: "device",
      via: "test",
    });
    await hub.hub.ingest(FAN, [{ kind: "desired", affordance: "mode", value: "eco" }], operator);
    await hub.hub.ingest(FAN, [{ kind: "reported", affordance: "mode", value: "eco" }], {
      actor: "device",
      via: "test",
    });
    return hub;
  }, SHOWN_MS);

  it("shows in a diff what each property's last write asked for beside what was reported, marked where they differ", async () => {
    const page = await ui.open({
      hash: `#/time/${encodeURIComponent(FAN)}?from=${encodeURIComponent("2000-01-01T00:00:00Z")}`,
    });
    try {
      const properties = page.getByTestId("diff").locator("table.diff", { hasText: "Properties" });
      const speed = properties.locator('tr[data-affordance="speed"]');
      await speed.locator("td.asked").waitFor();
      expect(await speed.locator("td.after").textContent()).toBe("1400 rpm");
      const asked = speed.locator("td.asked");
      await expect(asked.textContent()).resolves.toMatch(/^asked for 1500 rpm by operator at \S/);
      expect(await asked.getAttribute("class")).toContain("differs");
      expect(await asked.locator("strong.differs").textContent()).toBe(
        " — reported 1400 rpm, not what was asked",
      );
      // The same value reported as asked: said, not marked.
      const mode = properties.locator('tr[data-affordance="mode"] td.asked');
      await expect(mode.textContent()).resolves.toMatch(/^asked for eco by operator at \S/);
      expect(await mode.locator("strong.differs").count()).toBe(0);
      // The writes: the last is the outcome (no value); what was asked stands beside it.
      const write = page.getByTestId("diff-writes").locator('tr[data-affordance="speed"]');
      await expect(write.locator("td.asked").textContent()).resolves.toMatch(
        /^asked for 1500 rpm by operator at /,
      );
      expect(await write.locator("td.last").textContent()).toBe("completed");
    } finally {
      await page.context().close();
    }
  });

  it("names an action's input by its title or its name made readable, with its type, unit and range", async () => {
    const page = await ui.open({ hash: `#/thing/${encodeURIComponent(FAN)}` });
    try {
      const enable = page.locator('form.invoke[data-action="enablePort"]');
      await enable.getByRole("heading", { name: "Enable port" }).waitFor();
      // An object: its field named by its key made readable, and what it takes after it.
      const port = enable.getByLabel("Port", { exact: true });
      await expect(port.getAttribute("type")).resolves.toBe("number");
      const described = async (field: typeof port) =>
        page.locator(`#${await field.getAttribute("aria-describedby")}`).textContent();
      await expect(described(port)).resolves.toBe("a whole number from 1 to 48");
      expect(await enable.locator("legend").textContent()).toBe("Enable port");
      expect(await page.getByText("enablePort input").count()).toBe(0);

      const boost = page.locator('form.invoke[data-action="setBoostMinutes"]');
      const minutes = boost.getByLabel("Set boost minutes", { exact: true });
      await expect(described(minutes)).resolves.toBe("a number in min, at least 1");
      await expect(boost.locator("small.hint").isVisible()).resolves.toBe(true);

      const calibrate = page.locator('form.invoke[data-action="calibrate"]');
      const tick = calibrate.getByLabel("Calibrate the sensor", { exact: true });
      await expect(tick.getAttribute("type")).resolves.toBe("checkbox");
      await expect(described(tick)).resolves.toBe("on (ticked) or off");
    } finally {
      await page.context().close();
    }
  });
});
