// The time view's diff and state around what the Log holds, in Chromium (playwright-core) against
// a real hub: a value that changed and came back between the two times is told as such (not as a
// change of value, 93 °C → 93 °C struck out), and a time before the Thing's registration is said
// in a sentence, with nothing asked that the hub can only refuse (no 404 in the console).
import type { Page } from "playwright-core";
import { expect, it } from "vitest";
import { describeInBrowser, useBrowserAndHub } from "./support/ui-browser.js";
import { minimalTd, putTd, startTestHub } from "./support/test-hub.js";

// Bounds on waiting for what the page shows: generous, as ui.test.ts, for a loaded shared machine.
const SHOWN_MS = 60_000;
const BOILER = "urn:test:ui-time-travel:boiler";
const FORM = (path: string) => [{ href: `http://127.0.0.1:9/${path}` }];
/** Registered, removed and registered again: a stretch of time out of the directory. */
const KETTLE = "urn:test:ui-time-travel:kettle";
/** An id no Thing has: the kettle links to it. */
const NOWHERE = "urn:test:ui-time-travel:nowhere";

describeInBrowser("the time view around what the Log holds", { timeout: 4 * SHOWN_MS }, () => {
  /** The hub's clock runs this far behind the wall clock: the past is written by moving it. */
  let lag = 30 * 60_000;
  const ui = useBrowserAndHub(async () => {
    const hub = await startTestHub({}, {}, { clock: () => new Date(Date.now() - lag) });
    // Registered half an hour ago, at 93 °C; 95 °C twenty minutes ago, 93 °C again ten minutes ago.
    await putTd(
      hub,
      minimalTd({
        id: BOILER,
        title: "Boiler",
        properties: {
          temperature: { type: "number", title: "Boiler temperature", unit: "Cel", forms: FORM("t") },
          setpoint: { type: "number", title: "Boiler setpoint", unit: "Cel", forms: FORM("s") },
        },
      }),
    );
    const sensor = { actor: "hub:observer", via: "http" };
    const report = (affordance: string, value: number) =>
      hub.hub.ingest(BOILER, [{ kind: "reported", affordance, value }], sensor);
    await report("temperature", 93);
    await report("setpoint", 85);
    // The kettle: registered 28 minutes ago, removed 22 minutes ago, registered again 12 minutes
    // ago (in the order of time: the hub's clock never goes back).
    const kettle = minimalTd({
      id: KETTLE,
      title: "Kettle",
      properties: { level: { type: "number", forms: FORM("l") } },
    });
    lag = 28 * 60_000;
    await putTd(hub, kettle);
    await hub.hub.ingest(KETTLE, [{ kind: "reported", affordance: "level", value: 1 }], sensor);
    lag = 22 * 60_000;
    const removal = await hub.request(`/things/${encodeURIComponent(KETTLE)}`, { method: "DELETE" });
    if (removal.status !== 204) throw new Error(`DELETE answered ${removal.status}`);
    lag = 20 * 60_000;
    await report("temperature", 95);
    await report("setpoint", 90);
    lag = 12 * 60_000;
    // Back, with a link to a Thing this hub never had, and unreachable since.
    await putTd(hub, { ...kettle, links: [{ rel: "partOf", href: NOWHERE }] });
    await hub.hub.ingest(KETTLE, [{ kind: "reported", affordance: "level", value: 2 }], sensor);
    await hub.hub.ingest(KETTLE, [{ kind: "unreachable", value: "connect ECONNREFUSED" }], sensor);
    lag = 10 * 60_000;
    await report("temperature", 93);
    lag = 0;
    return hub;
  }, SHOWN_MS);

  /** Every error the page's console says, and every answer of 400 or more, from now on. */
  function errorsOf(page: Page): string[] {
    const errors: string[] = [];
    page.on("console", (message) => {
      if (message.type() === "error") errors.push(message.text());
    });
    page.on("response", (response) => {
      if (response.status() >= 400) errors.push(`${response.status()} ${response.url()}`);
    });
    return errors;
  }

  it("tells a value that changed and came back between the two times, with a link to its Changes", async () => {
    const query = new URLSearchParams({ from: "-25m", to: "now" }).toString();
    const page = await ui.open({ hash: `#/time/${encodeURIComponent(BOILER)}?${query}` });
    try {
      const properties = '[data-testid="diff"] table.diff:not([data-testid])';
      const temperature = page.locator(`${properties} tr[data-affordance="temperature"]`);
      await temperature.waitFor();
      // The setpoint moved: a change of value, struck out and added.
      const setpoint = page.locator(`${properties} tr[data-affordance="setpoint"]`);
      await expect(setpoint.locator("td.before").textContent()).resolves.toBe("85 °C");
      await expect(setpoint.locator("td.after").textContent()).resolves.toBe("90 °C");
      expect((await setpoint.getAttribute("class")) ?? "").not.toContain("back");
      // The temperature is 93 °C at both ends: not struck out as a change, said as changed and back.
      expect((await temperature.getAttribute("class")) ?? "").toContain("back");
      await expect(temperature.locator("td.before").textContent()).resolves.toBe("93 °C");
      await expect(
        page.evaluate<string>(
          `getComputedStyle(document.querySelector('${properties} tr[data-affordance="temperature"] td.before')).textDecorationLine`,
        ),
      ).resolves.toBe("none");
      await expect(temperature.locator("td.counts").textContent()).resolves.toBe(
        "changed and back: 2 Changes in between",
      );
      // Its link shows those Changes: 95 °C and 93 °C again, not the 93 °C before the range.
      await temperature.getByRole("link", { name: "2 Changes in between" }).click();
      const rows = page.locator("tr.change");
      await rows
        .locator("td.value")
        .filter({ hasText: /^93 °C \(was 95 °C\)$/ })
        .waitFor();
      await expect(rows.locator("td.value").allTextContents()).resolves.toEqual([
        "93 °C (was 95 °C)",
        "95 °C (was 93 °C)",
      ]);
      const hash = decodeURIComponent(new URL(page.url()).hash);
      expect(hash).toContain("affordance=temperature");
      expect(hash).toContain(`thing=${BOILER}`);
    } finally {
      await page.context().close();
    }
  });

  it("keeps a value that changed and came back within a phone's window", async () => {
    const query = new URLSearchParams({ from: "-25m", to: "now" }).toString();
    const page = await ui.open({
      viewport: { width: 390, height: 844 },
      hash: `#/time/${encodeURIComponent(BOILER)}?${query}`,
    });
    try {
      const counts = page.locator(
        '[data-testid="diff"] table.diff:not([data-testid]) tr[data-affordance="temperature"] td.counts',
      );
      await counts.getByRole("link", { name: "2 Changes in between" }).waitFor();
      // The sentence wraps in its card: neither it nor the page runs past the window's edge.
      const box = await counts.boundingBox();
      expect((box?.x ?? 0) + (box?.width ?? Infinity)).toBeLessThanOrEqual(390);
      expect(await page.evaluate<number>("document.scrollingElement.scrollWidth")).toBeLessThanOrEqual(390);
    } finally {
      await page.context().close();
    }
  });

  it("says a time before the Thing's registration in a sentence, with no error in the console", async () => {
    const query = new URLSearchParams({ at: "-2h", from: "-2h", to: "now" }).toString();
    const page = await ui.open({ hash: "#/" });
    const errors = errorsOf(page);
    try {
      await page.goto(`${ui.hub.url}/#/time/${encodeURIComponent(BOILER)}?${query}`);
      // The diff from two hours ago: the Thing registered in between, and a sentence says when.
      const diff = page.getByTestId("diff");
      await diff.locator('tr[data-affordance="temperature"]').waitFor();
      await expect(diff.getByTestId("before-registration").textContent()).resolves.toMatch(
        /^Boiler was registered at .+; nothing before\.$/,
      );
      // The state two hours ago: the same sentence, where the hub would answer 404.
      const state = page.locator('[data-testid="before-registration"]').first();
      await expect(state.textContent()).resolves.toMatch(/^Boiler was registered at .+; nothing before\.$/);
      await expect(page.getByTestId("state").count()).resolves.toBe(0);
      // Both ends before it: the sentence alone.
      await page.getByLabel("To", { exact: true }).fill("-1h");
      await page.getByRole("button", { name: "Show diff" }).click();
      await page.locator('[data-testid="before-registration"]').nth(1).waitFor();
      await expect(diff.count()).resolves.toBe(0);
      // And a time after it, as before: the state then.
      await page.getByLabel("At", { exact: true }).fill("-15m");
      await page.getByRole("button", { name: "Show state" }).click();
      await page.getByTestId("state").locator('tr[data-affordance="temperature"]').waitFor();
      await expect(
        page.getByTestId("state").locator('tr[data-affordance="temperature"] td.value').textContent(),
      ).resolves.toBe("95 °C");
      expect(errors).toEqual([]);
    } finally {
      await page.context().close();
    }
  });

  it("says in a sentence that an id was never registered, with no error in the console", async () => {
    const page = await ui.open({ hash: "#/" });
    const errors = errorsOf(page);
    try {
      const id = "urn:test:ui-time-travel:nope";
      await page.goto(`${ui.hub.url}/#/time/${encodeURIComponent(id)}?at=-5m`);
      await expect(page.getByTestId("never-registered").textContent()).resolves.toBe(
        `No Thing with id ${id} has ever been registered here.`,
      );
      // No forms that could only fail, and the heading names the id.
      await expect(page.getByRole("button", { name: "Show state" }).count()).resolves.toBe(0);
      await expect(page.locator("h1").textContent()).resolves.toBe(`Time travel: ${id}`);
      expect(errors).toEqual([]);
    } finally {
      await page.context().close();
    }
  });

  it("says a time between a Thing's removal and its registration again in a sentence, with no error in the console", async () => {
    const query = new URLSearchParams({ at: "-17m", from: "-17m", to: "now" }).toString();
    const page = await ui.open({ hash: "#/" });
    const errors = errorsOf(page);
    try {
      await page.goto(`${ui.hub.url}/#/time/${encodeURIComponent(KETTLE)}?${query}`);
      const gap =
        /^Kettle was removed from the directory at .+ and registered again at .+; nothing in between\.$/;
      // The diff from then: it came back in between, and a sentence says when it was away.
      const diff = page.getByTestId("diff");
      await diff.locator('tr[data-affordance="level"]').waitFor();
      await expect(diff.getByTestId("not-in-directory").textContent()).resolves.toMatch(gap);
      // Its reachability then is no answer at all: it was not there to answer.
      await expect(
        diff.getByTestId("diff-reachability").locator("tbody td").allTextContents(),
      ).resolves.toEqual(expect.arrayContaining(["not in the directory", "unreachable"]));
      await expect(
        diff.getByTestId("diff-reachability").locator("tbody td").first().textContent(),
      ).resolves.toBe("not in the directory");
      // Its link added in between points at a Thing the hub never had: named by its id.
      await expect(diff.getByTestId("diff-links").locator("td.after a").textContent()).resolves.toBe(NOWHERE);
      // The state then: the same sentence, where the hub would answer 404.
      const state = page.locator('[data-testid="not-in-directory"]').first();
      await expect(state.textContent()).resolves.toMatch(gap);
      await expect(page.getByTestId("state").count()).resolves.toBe(0);
      // Both ends while it was away: the sentence alone.
      await page.getByLabel("To", { exact: true }).fill("-15m");
      await page.getByRole("button", { name: "Show diff" }).click();
      await page.locator('[data-testid="not-in-directory"]').nth(1).waitFor();
      await expect(diff.count()).resolves.toBe(0);
      // Before it was removed, and after it came back: the state then.
      const ends: Array<[string, string]> = [
        ["-25m", "1"],
        ["-5m", "2"],
      ];
      for (const [at, level] of ends) {
        await page.getByLabel("At", { exact: true }).fill(at);
        await page.getByRole("button", { name: "Show state" }).click();
        await page
          .getByTestId("state")
          .locator('tr[data-affordance="level"] td.value', { hasText: new RegExp(`^${level}$`) })
          .waitFor();
      }
      expect(errors).toEqual([]);
    } finally {
      await page.context().close();
    }
  });
});
