// The Changes view filtered by an affordance, in Chromium (playwright-core) against a real hub:
// `#/changes?affordance=setpoint` lists that property's Changes of every Thing, and no other, in
// the page and live; its field says what it is filtered by.
import type { Page } from "playwright-core";
import { expect, it } from "vitest";
import { describeInBrowser, useBrowserAndHub } from "./support/ui-browser.js";
import { minimalTd, putTd, startTestHub } from "./support/test-hub.js";

// Bounds on waiting for what the page shows: generous, as ui.test.ts, for a loaded shared machine.
const SHOWN_MS = 60_000;
const A = "urn:test:ui-affordance:a";
const B = "urn:test:ui-affordance:b";
const OBSERVER = { actor: "hub:observer", via: "http" } as const;

describeInBrowser("the Changes view filtered by an affordance", { timeout: 4 * SHOWN_MS }, () => {
  /** The seqs of the setpoint Changes, of both Things. */
  const setpoints: number[] = [];
  const ui = useBrowserAndHub(async () => {
    const hub = await startTestHub();
    const forms = [{ href: "http://127.0.0.1:9/p" }];
    const properties = {
      setpoint: { type: "number", forms },
      temperature: { type: "number", forms },
    };
    for (const [id, title] of [
      [A, "Meeting-room thermostat"],
      [B, "Lobby thermostat"],
    ] as const) {
      await putTd(hub, minimalTd({ id, title, properties }));
      const changes = await hub.hub.ingest(
        id,
        [
          { kind: "reported", affordance: "temperature", value: 20 },
          { kind: "reported", affordance: "setpoint", value: 21 },
          { kind: "reported", affordance: "temperature", value: 21 },
        ],
        OBSERVER,
      );
      setpoints.push(changes[1]?.seq ?? 0);
    }
    return hub;
  }, SHOWN_MS);

  /** The seqs of the Changes the page's change table shows, top to bottom. */
  async function shownSeqs(page: Page): Promise<number[]> {
    const rows = await page.locator("table.changes tr.change").all();
    return Promise.all(rows.map(async (row) => Number(await row.getAttribute("data-seq"))));
  }

  it("lists one affordance's Changes of every Thing, and only those come live", async () => {
    const page = await ui.open({ hash: "#/changes?affordance=setpoint" });
    try {
      const newest = setpoints.at(-1) ?? 0;
      await page.locator(`table.changes tr.change[data-seq="${newest}"]`).waitFor();
      expect(await shownSeqs(page)).toEqual([...setpoints].reverse());
      expect(await page.getByRole("textbox", { name: "Affordance" }).inputValue()).toBe("setpoint");
      // Live: B's temperature moves, then A's setpoint: only the setpoint is added.
      await ui.hub.hub.ingest(B, [{ kind: "reported", affordance: "temperature", value: 22 }], OBSERVER);
      const [moved] = await ui.hub.hub.ingest(
        A,
        [{ kind: "reported", affordance: "setpoint", value: 30 }],
        OBSERVER,
      );
      await page.locator(`table.changes tr.change[data-seq="${moved?.seq}"]`).waitFor();
      expect(await shownSeqs(page)).toEqual([moved?.seq, ...[...setpoints].reverse()]);
    } finally {
      await page.context().close();
    }
  });
});
