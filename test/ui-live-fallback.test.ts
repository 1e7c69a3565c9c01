// The UI's shared change stream when its SharedWorker fails to load (docs/ui.md, "Several tabs"):
// the page runs the stream itself, says so, and its live feeds go on — in Chromium (playwright-core)
// against a real hub, the worker's script made to fail by route interception.
import { existsSync } from "node:fs";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { minimalTd, putTd, startTestHub, type TestHub } from "./support/test-hub.js";

const CHROMIUM = process.env.HYPERTHINGS_CHROMIUM ?? "/usr/bin/chromium";
const required = process.env.HYPERTHINGS_REQUIRE_SERVICES === "1";
const BUILT = existsSync(new URL("../dist/ui/index.html", import.meta.url));
const SHOWN_MS = 20_000;
const LAMP = "urn:example:ui-fallback:lamp";

const missing = !existsSync(CHROMIUM)
  ? `no Chromium at ${CHROMIUM}`
  : !BUILT
    ? "the UI is not built (npm run build)"
    : undefined;

if (missing !== undefined) {
  describe("the UI's live feed without its SharedWorker", () => {
    if (required)
      it("needs Chromium and a built UI (HYPERTHINGS_REQUIRE_SERVICES=1)", () => {
        throw new Error(missing);
      });
    else it.skip(`skipped: ${missing}`, () => undefined);
  });
} else {
  describe("the UI's live feed without its SharedWorker", { timeout: 4 * SHOWN_MS }, () => {
    let hub: TestHub;
    let browser: Browser;

    beforeAll(async () => {
      hub = await startTestHub();
      await putTd(
        hub,
        minimalTd({
          id: LAMP,
          properties: { on: { type: "boolean", forms: [{ href: "http://127.0.0.1:9/on" }] } },
        }),
      );
      browser = await chromium.launch({
        executablePath: CHROMIUM,
        headless: true,
        args: ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"],
      });
    }, 4 * SHOWN_MS);

    afterAll(async () => {
      await browser?.close();
      await hub?.stop();
    });

    async function signedIn(context: BrowserContext): Promise<Page> {
      const page = await context.newPage();
      page.setDefaultTimeout(SHOWN_MS);
      await page.goto(`${hub.url}/#/changes`);
      await page.getByLabel("Token").fill(hub.token);
      await page.getByRole("button", { name: "Sign in" }).click();
      return page;
    }

    it("runs the stream in the page when the worker's script fails to load, says so, and adds Changes live", async () => {
      const context = await browser.newContext();
      const refused: string[] = [];
      await context.route(/\/assets\/live-worker-[^/]*\.js$/, async (route) => {
        refused.push(route.request().url());
        await route.abort("failed");
      });
      try {
        const page = await signedIn(context);
        await page.locator('[data-testid="live"][data-state="open"]').waitFor();
        expect(refused.length).toBeGreaterThan(0);
        const note = page.getByTestId("live-fallback");
        await note.waitFor();
        expect(await note.textContent()).toMatch(
          /^Live updates run in this tab: the shared stream's worker failed \(its script did not load\)\. Nothing is lost/,
        );
        // The Changes view's own feed, and the header's, both from the stream in the page.
        await page.locator("tr.change").first().waitFor();
        const [change] = await hub.hub.ingest(LAMP, [{ kind: "reported", affordance: "on", value: true }], {
          actor: "test",
          via: "test",
        });
        await page.locator(`tr.change[data-seq="${change?.seq}"]`).waitFor();
        // Asked for once on the stream in the page: given once.
        expect(await page.locator(`tr.change[data-seq="${change?.seq}"]`).count()).toBe(1);
      } finally {
        await context.close();
      }
    });

    it("says nothing of the kind when the worker loads", async () => {
      const context = await browser.newContext();
      try {
        const page = await signedIn(context);
        await page.locator('[data-testid="live"][data-state="open"]').waitFor();
        await page.locator("tr.change").first().waitFor();
        const [change] = await hub.hub.ingest(LAMP, [{ kind: "reported", affordance: "on", value: false }], {
          actor: "test",
          via: "test",
        });
        await page.locator(`tr.change[data-seq="${change?.seq}"]`).waitFor();
        expect(await page.getByTestId("live-fallback").isHidden()).toBe(true);
      } finally {
        await context.close();
      }
    });
  });
}
