// The graph of the demo fleet (`things demo`, as a person runs it) in Chromium, on a laptop and on
// a phone: no label over another, a link's name counted with the Things' (a name that would lie
// over a Thing's label is held back until there is room), some links still named.
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Browser } from "playwright-core";
import { afterAll, beforeAll, expect, it } from "vitest";
import { describeInBrowser, launchChromium } from "./support/ui-browser.js";
import { runThings, type ThingsProcess } from "./support/things-process.js";

// Bounds on waiting for what the page shows: generous, as ui.test.ts, for a loaded shared machine.
const SHOWN_MS = 60_000;
const PHONE = { width: 390, height: 844 };
const LAPTOP = { width: 1280, height: 860 };

describeInBrowser("the demo fleet's graph, its labels", { timeout: 4 * SHOWN_MS }, () => {
  const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-ui-labels-"));
  let demo: ThingsProcess | undefined;
  let browser: Browser | undefined;
  let hub = { url: "", token: "", things: 0 };
  beforeAll(async () => {
    demo = runThings(["demo", "--port", "0", "--mqtt-port", "0", "--data", dataDir, "--chaos", "0"]);
    const [, things] = await demo.waitFor(/demo: \d+ simulated Things .*; (\d+) in the directory/);
    const [, url] = await demo.waitFor(/open (http:\/\/127\.0\.0\.1:\d+)\/ and sign in with /);
    // Not printed (the output is no terminal): the token is in its file.
    const token = readFileSync(join(dataDir, "admin-token"), "utf8").trim();
    hub = { url: url ?? "", token, things: Number(things) };
    browser = await launchChromium();
  }, 4 * SHOWN_MS);
  afterAll(async () => {
    await browser?.close();
    demo?.process.kill("SIGINT");
    await demo?.exited;
    rmSync(dataDir, { recursive: true, force: true });
  });

  for (const [name, viewport, touch] of [
    ["a laptop", LAPTOP, false],
    ["a phone", PHONE, true],
  ] as const)
    it(`draws no label over another on ${name}, links' names counted`, async () => {
      if (browser === undefined) throw new Error("no browser");
      const context = await browser.newContext({
        viewport,
        ...(touch && { isMobile: true, hasTouch: true, deviceScaleFactor: 2 }),
      });
      try {
        const page = await context.newPage();
        page.setDefaultTimeout(SHOWN_MS);
        await page.goto(`${hub.url}/#/`);
        await page.getByLabel("Token").fill(hub.token);
        await page.getByRole("button", { name: "Sign in" }).click();
        const graph = page.getByTestId("graph");
        await page.locator(`[data-testid="graph"][data-rendered="${hub.things}"]`).waitFor();
        // The links' names are measured too: those held back are said, as the overlaps are.
        await page.locator('[data-testid="graph"][data-hidden-link-names]').waitFor();
        await page.locator('[data-testid="graph"][data-label-overlaps="0"]').waitFor();
        // Not every name held back: the links between Things with room around them are named.
        expect(Number(await graph.getAttribute("data-named-links"))).toBeGreaterThan(0);
      } finally {
        await context.close();
      }
    });
});
