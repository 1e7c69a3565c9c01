// The UI's shared change stream when its SharedWorker fails to load (docs/ui.md, "Several tabs"):
// the page runs the stream itself, says so, and its live feeds go on — in Chromium (playwright-core)
// against a real hub, the worker's script made to fail by route interception.
import { expect, it } from "vitest";
import { minimalTd, putTd, startTestHub } from "./support/test-hub.js";
import { describeInBrowser, useBrowserAndHub } from "./support/ui-browser.js";

// Bounds on waiting for what the page shows: generous, as ui.test.ts, for a loaded shared machine.
const SHOWN_MS = 60_000;
const LAMP = "urn:example:ui-fallback:lamp";

describeInBrowser("the UI's live feed without its SharedWorker", { timeout: 4 * SHOWN_MS }, () => {
  const ui = useBrowserAndHub(async () => {
    const hub = await startTestHub();
    await putTd(
      hub,
      minimalTd({
        id: LAMP,
        properties: { on: { type: "boolean", forms: [{ href: "http://127.0.0.1:9/on" }] } },
      }),
    );
    return hub;
  }, SHOWN_MS);

  it("runs the stream in the page when the worker's script fails to load, says so, and adds Changes live", async () => {
    const refused: string[] = [];
    const page = await ui.open({
      hash: "#/changes",
      prepare: (context) =>
        context.route(/\/assets\/live-worker-[^/]*\.js$/, async (route) => {
          refused.push(route.request().url());
          await route.abort("failed");
        }),
    });
    try {
      await page.locator('[data-testid="live"][data-state="open"]').waitFor();
      expect(refused.length).toBeGreaterThan(0);
      const note = page.getByTestId("live-fallback");
      await note.waitFor();
      expect(await note.textContent()).toMatch(
        /^Live updates run in this tab: the shared stream's worker failed \(its script did not load\)\. Nothing is lost/,
      );
      // The Changes view's own feed, and the header's, both from the stream in the page.
      await page.locator("tr.change").first().waitFor();
      const [change] = await ui.hub.hub.ingest(LAMP, [{ kind: "reported", affordance: "on", value: true }], {
        actor: "test",
        via: "test",
      });
      await page.locator(`tr.change[data-seq="${change?.seq}"]`).waitFor();
      // Asked for once on the stream in the page: given once.
      expect(await page.locator(`tr.change[data-seq="${change?.seq}"]`).count()).toBe(1);
    } finally {
      await page.context().close();
    }
  });

  it("says nothing of the kind when the worker loads", async () => {
    const page = await ui.open({ hash: "#/changes" });
    try {
      await page.locator('[data-testid="live"][data-state="open"]').waitFor();
      await page.locator("tr.change").first().waitFor();
      const [change] = await ui.hub.hub.ingest(LAMP, [{ kind: "reported", affordance: "on", value: false }], {
        actor: "test",
        via: "test",
      });
      await page.locator(`tr.change[data-seq="${change?.seq}"]`).waitFor();
      expect(await page.getByTestId("live-fallback").isHidden()).toBe(true);
    } finally {
      await page.context().close();
    }
  });
});
