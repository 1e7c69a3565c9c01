// What a Thing answered when it refused a command, in the web UI, in Chromium (playwright-core)
// against a real hub and a simulated HTTP device that refuses one value with a reason: the reason
// is shown where the command was sent, not only the status the hub got.
import { afterAll, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import { CURSED_LEVEL, SimulatedHttpThing } from "./support/simulated-http-thing.js";
import { describeInBrowser, useBrowserAndHub } from "./support/ui-browser.js";
import { putTd, startTestHub } from "./support/test-hub.js";

// Bounds on waiting for what the page shows: generous, as ui.test.ts, for a loaded shared machine.
const SHOWN_MS = 60_000;
const ID = "urn:test:ui-device-answers:sensor";
const REASON = `level ${CURSED_LEVEL} is not allowed while the door is open`;

describeInBrowser("a Thing's refusal in the web UI", { timeout: 4 * SHOWN_MS }, () => {
  const device = new SimulatedHttpThing({ username: "operator", password: "pw-ui-device-answers" });
  const ui = useBrowserAndHub(async () => {
    await device.start();
    const hub = await startTestHub();
    await putTd(hub, device.td(ID));
    const credentials = await hub.request(`${thingPath(ID)}/credentials`, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ username: "operator", password: "pw-ui-device-answers" }),
    });
    expect(credentials.status, await credentials.text()).toBe(200);
    return hub;
  }, SHOWN_MS);
  afterAll(() => device.stop());

  it("says why the Thing refused a write, in its own words, under the Write button and in the timeline", async () => {
    const page = await ui.open({ hash: `#/thing/${encodeURIComponent(ID)}` });
    try {
      const form = page.locator('form.write[data-property="level"]');
      await form.getByLabel("level").fill(String(CURSED_LEVEL));
      await form.getByRole("button", { name: "Write" }).click();
      const problem = form.getByRole("alert");
      await problem.waitFor();
      expect(await problem.textContent()).toContain("answered 409");
      expect(await problem.textContent()).toContain(`the device said: ${REASON}`);
      // The failed Change the refusal was recorded as, in the timeline live: in words, not JSON.
      const failed = page.locator("table.changes tr.change.kind-failed td.value");
      await failed.first().waitFor();
      expect(await failed.first().textContent()).toBe(`${ID}: PUT answered 409 — the device said: ${REASON}`);
    } finally {
      await page.context().close();
    }
  });
});
