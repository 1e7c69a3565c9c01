// The web UI in a real browser: Debian's Chromium driven by playwright-core against a real hub
// that observes a simulated HTTP Thing. Sign in (and a wrong token), the graph, a Thing's page
// with live values, forms, a chart and the timeline, the change feed, the diff, the Log.
// With HYPERTHINGS_UI_SCREENSHOTS=<folder> it also saves screenshots of the main views there.
import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { InteractionClient } from "../src/client/index.js";
import { CURSED_LEVEL, SimulatedHttpThing } from "./support/simulated-http-thing.js";
import { changeAfter, minimalTd, startTestHub, type TestHub } from "./support/test-hub.js";

const CHROMIUM = process.env.HYPERTHINGS_CHROMIUM ?? "/usr/bin/chromium";
const required = process.env.HYPERTHINGS_REQUIRE_SERVICES === "1";
const screenshots = process.env.HYPERTHINGS_UI_SCREENSHOTS;
const BUILT = existsSync(new URL("../dist/ui/index.html", import.meta.url));
const USERNAME = "barista";
const PASSWORD = "crema";
const SENSOR = "urn:test:ui:sensor";
const CONTROLLER = "urn:test:ui:controller";
// Playwright's waits are bounded: a UI that never shows what it should fails the test.
const SHOWN_MS = 60_000;

async function lastSeq(hub: TestHub): Promise<number> {
  return ((await (await hub.request("/health")).json()) as { lastSeq: number }).lastSeq;
}

async function capture(page: Page, name: string): Promise<void> {
  if (screenshots !== undefined)
    await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
}

const missing = !existsSync(CHROMIUM)
  ? `no Chromium at ${CHROMIUM}`
  : !BUILT
    ? "the UI is not built (npm run build)"
    : undefined;

if (missing !== undefined && !required) {
  describe("the web UI in a browser", () => {
    it.skip(`skipped: ${missing}`, () => undefined);
  });
} else if (missing !== undefined) {
  describe("the web UI in a browser", () => {
    it(`needs Chromium and a built UI (HYPERTHINGS_REQUIRE_SERVICES=1)`, () => {
      throw new Error(missing);
    });
  });
} else {
  // Each step waits for what the page shows (bounded by SHOWN_MS): a loaded machine is slow, not wrong.
  describe("the web UI in a browser", { timeout: 2 * SHOWN_MS }, () => {
    let hub: TestHub;
    let sim: SimulatedHttpThing;
    let context: BrowserContext;
    let page: Page;
    let userData: string;
    const problems: string[] = [];

    beforeAll(async () => {
      sim = new SimulatedHttpThing({ username: USERNAME, password: PASSWORD, pollIntervalMs: 200 });
      await sim.start();
      hub = await startTestHub({ observe: true });
      const client = new InteractionClient({ url: hub.url, token: hub.token });
      await client.put({ ...sim.td(SENSOR), "@type": "saref:Sensor" } as never);
      await client.setCredentials(SENSOR, { username: USERNAME, password: PASSWORD });
      await client.put(
        minimalTd({
          id: CONTROLLER,
          title: "Controller",
          "@type": "saref:Actuator",
          links: [{ href: SENSOR, rel: "controls" }],
        }) as never,
      );
      userData = mkdtempSync(join(tmpdir(), "hyperthings-chromium-"));
      context = await chromium.launchPersistentContext(userData, {
        executablePath: CHROMIUM,
        viewport: { width: 1280, height: 860 },
        headless: true,
        args: [
          "--no-sandbox",
          "--disable-gpu",
          "--disable-background-networking",
          "--disable-component-update",
          "--disable-sync",
          "--no-first-run",
        ],
      });
      page = context.pages()[0] ?? (await context.newPage());
      page.setDefaultTimeout(SHOWN_MS);
      page.on("pageerror", (err) => problems.push(err.message));
    }, 2 * SHOWN_MS);

    afterAll(async () => {
      await context?.close();
      await hub?.stop();
      await sim?.stop();
      if (userData !== undefined) rmSync(userData, { recursive: true, force: true });
    });

    it("refuses a wrong token with a message in the page", async () => {
      await page.goto(`${hub.url}/`);
      await page.getByLabel("Token").fill("not-the-token");
      await page.getByRole("button", { name: "Sign in" }).click();
      await expect(page.getByRole("alert").textContent()).resolves.toContain(
        "The token was refused by the hub",
      );
      expect(await page.evaluate('sessionStorage.getItem("hyperthings.token")')).toBeNull();
    });

    it("signs in and draws the graph of the Things and their links, with a legend", async () => {
      await page.getByLabel("Token").fill(hub.token);
      await page.getByRole("button", { name: "Sign in" }).click();
      await page.locator('[data-testid="graph"][data-rendered="2"]').waitFor();
      await expect(page.locator("main").textContent()).resolves.toContain("2 Things, 1 links");
      const legend = await page.getByLabel("Legend").textContent();
      expect(legend).toContain("saref:Sensor (1)");
      expect(legend).toContain("saref:Actuator (1)");
      await page.locator('[data-testid="live"][data-state="open"]').waitFor();
      await capture(page, "graph");
    });

    it("opens a Thing found in the graph and shows its live values", async () => {
      await page.getByLabel("Find a Thing").fill("simulated");
      await page.getByRole("link", { name: "Simulated sensor" }).click();
      await page.locator(`main[data-rendered="${SENSOR}"]`).waitFor();
      await page.locator('td.value[data-property="level"]', { hasText: "1" }).waitFor();
      const measures = await page.evaluate('performance.getEntriesByName("thing").length');
      expect(measures).toBe(1);
    });

    it("refuses a value that does not fit the schema before sending it", async () => {
      const before = await lastSeq(hub);
      const form = page.locator('form.write[data-property="level"]');
      await form.getByLabel("level").fill("11");
      await form.getByRole("button", { name: "Write" }).click();
      await expect(form.getByRole("alert").textContent()).resolves.toMatch(/Not sent: .*must be <= 10/);
      expect(sim.requests.filter((r) => r.method === "PUT")).toHaveLength(0);
      expect(await lastSeq(hub)).toBe(before);
    });

    it("shows the hub's problem inline when the Thing refuses a write", async () => {
      const form = page.locator('form.write[data-property="level"]');
      await form.getByLabel("level").fill(String(CURSED_LEVEL));
      await form.getByRole("button", { name: "Write" }).click();
      await expect(form.getByRole("alert").textContent()).resolves.toMatch(/\(502\).*PUT answered 409/);
      expect(sim.level).toBe(1);
    });

    it("writes a property: the Change appears live in the timeline and the chart takes the new value", async () => {
      const points = Number(await page.locator('.chart[data-property="level"]').getAttribute("data-points"));
      const after = await lastSeq(hub);
      const form = page.locator('form.write[data-property="level"]');
      await form.getByLabel("level").fill("4");
      await form.getByRole("button", { name: "Write" }).click();
      await form.getByRole("status").filter({ hasText: "accepted" }).waitFor();
      const reported = await changeAfter(
        hub,
        after,
        (c) => c.kind === "reported" && c.affordance === "level" && c.value === 4,
      );
      await page.locator(`tr.change[data-seq="${reported.seq}"]`).waitFor();
      await page.locator("tr.change.kind-desired", { hasText: "4" }).first().waitFor();
      await page.locator('td.value[data-property="level"]', { hasText: "4" }).waitFor();
      await page.waitForFunction(
        `Number(document.querySelector('.chart[data-property="level"]')?.dataset.points) > ${points}`,
      );
      expect(sim.level).toBe(4);
      await capture(page, "thing");
    });

    it("invokes an action with a form generated from its input schema", async () => {
      const form = page.locator('form.invoke[data-action="reset"]');
      await form.getByLabel("to").fill("2");
      await form.getByRole("button", { name: "Invoke" }).click();
      await expect(
        form.getByRole("status").filter({ hasText: "Completed" }).textContent(),
      ).resolves.toContain('"level":2');
      expect(sim.level).toBe(2);
    });

    it("filters the global change feed by kind and actor", async () => {
      await page.goto(`${hub.url}/#/changes?kind=desired&actor=admin`);
      await page.locator("tr.change").first().waitFor();
      const kinds = await page.locator("tr.change .kind").allTextContents();
      expect(kinds.length).toBeGreaterThan(0);
      expect(new Set(kinds)).toEqual(new Set(["desired"]));
      await capture(page, "changes");
    });

    it("shows the state at a time and the diff between two times", async () => {
      await changeAfter(hub, 0, (c) => c.kind === "reported" && c.affordance === "level" && c.value === 2);
      await page.goto(`${hub.url}/#/time/${encodeURIComponent(SENSOR)}`);
      await page.getByLabel("From").fill("2000-01-01T00:00:00");
      await page.getByRole("button", { name: "Show diff" }).click();
      const diff = page.getByTestId("diff");
      await diff.locator("tr", { hasText: "level" }).waitFor();
      await expect(diff.locator("tr", { hasText: "level" }).locator("td.after").textContent()).resolves.toBe(
        "2",
      );
      await page.getByLabel("At").fill("2000-01-01T00:00:00");
      await page.getByRole("button", { name: "Show state" }).click();
      await page.getByTestId("state").getByText("no property had a value then").waitFor();
      await capture(page, "diff");
    });

    it("shows the Log's last signed checkpoint", async () => {
      await page.goto(`${hub.url}/#/log`);
      const checkpoint = await page.getByTestId("checkpoint").textContent();
      const signed = await hub.request("/log/checkpoint").then((r) => r.json() as Promise<{ root: string }>);
      expect(checkpoint).toContain(signed.root);
    });

    it("says in the page when the Thing is unreachable", async () => {
      await page.goto(`${hub.url}/#/thing/${encodeURIComponent(SENSOR)}`);
      await page.locator(`main[data-rendered="${SENSOR}"]`).waitFor();
      const after = await lastSeq(hub);
      await sim.stop();
      await changeAfter(hub, after, (c) => c.kind === "unreachable" && c.thing === SENSOR);
      await page.locator(".reachability").getByText("Simulated sensor is unreachable").waitFor();
      await page.goto(`${hub.url}/#/`);
      await page.getByLabel("Unreachable Things").getByText("Simulated sensor").waitFor();
      expect(problems).toEqual([]);
    });
  });
}
