// A Change's causes in the web UI, in Chromium (playwright-core) against a real hub: *Why?* on a
// Change's row (in the Changes view and a Thing's timeline) opens the chain the hub reads from the
// Log (GET /changes/{seq}/why) under the row, each Change of it linked as elsewhere (its number to
// the Thing around it, its Thing to its page), and where the chain ends; a Change's correlation
// as a link to the Changes view filtered by it (`?correlation=`), live too, in tabs that share one
// stream.
import type { Locator, Page } from "playwright-core";
import { expect, it } from "vitest";
import { describeInBrowser, useBrowserAndHub } from "./support/ui-browser.js";
import { minimalTd, putTd, startTestHub } from "./support/test-hub.js";

// Bounds on waiting for what the page shows: generous, as ui.test.ts, for a loaded shared machine.
const SHOWN_MS = 60_000;
const THERMOSTAT = "urn:test:ui-why:thermostat";
const TITLE = "Meeting-room thermostat";
/** A Thing whose command's outcome came days after it (a valve stuck half-way, freed at last). */
const VALVE = "urn:test:ui-why:valve";
const DAY_MS = 24 * 3600 * 1000;

describeInBrowser("a Change's causes in the web UI", { timeout: 4 * SHOWN_MS }, () => {
  /** The seqs of the scenario's Changes, by name. */
  const seq: Record<string, number> = {};
  const ui = useBrowserAndHub(async () => {
    // The hub's clock, set back three days for the valve's command, then the real time again.
    let behindMs = 3 * DAY_MS;
    const hub = await startTestHub({}, {}, { clock: () => new Date(Date.now() - behindMs) });
    const forms = [{ href: "http://127.0.0.1:9/setpoint" }];
    await putTd(
      hub,
      minimalTd({ id: VALVE, title: "Valve", properties: { open: { type: "boolean", forms } } }),
    );
    const stuck = { actor: "carol", via: "http", correlation: "c-ui-why-stuck" };
    const [asked] = await hub.hub.ingest(
      VALVE,
      [{ kind: "desired", affordance: "open", value: true }],
      stuck,
    );
    seq.valveAsked = asked?.seq ?? 0;
    behindMs = 0;
    const [freed] = await hub.hub.ingest(VALVE, [{ kind: "completed", affordance: "open" }], stuck);
    seq.valveFreed = freed?.seq ?? 0;
    await putTd(
      hub,
      minimalTd({ id: THERMOSTAT, title: TITLE, properties: { setpoint: { type: "number", forms } } }),
    );
    const observer = { actor: "hub:observer", via: "http" };
    const alice = { actor: "alice", via: "http", correlation: "c-ui-why-1" };
    const record = async (name: string, report: object, cause: object) => {
      const [change] = await hub.hub.ingest(THERMOSTAT, [report as never], cause as never);
      seq[name] = change?.seq ?? 0;
    };
    await record("first", { kind: "reported", affordance: "setpoint", value: 21 }, observer);
    await record("write", { kind: "desired", affordance: "setpoint", value: 30 }, alice);
    await record("done", { kind: "completed", affordance: "setpoint" }, alice);
    await record("readBack", { kind: "reported", affordance: "setpoint", value: 30 }, observer);
    return hub;
  }, SHOWN_MS);

  /** The row of Change `at` in the page's change table. */
  const rowOf = (page: Page, at: number): Locator =>
    page.locator(`table.changes tr.change[data-seq="${at}"]`);

  /** The seqs of the Changes a page's change table shows, top to bottom. */
  async function shownSeqs(page: Page): Promise<number[]> {
    const rows = await page.locator("table.changes tr.change").all();
    return Promise.all(rows.map(async (row) => Number(await row.getAttribute("data-seq"))));
  }

  /** Presses *Why?* on Change `at`'s row and answers the chain opened under it. */
  async function openWhy(page: Page, at: number): Promise<Locator> {
    const button = rowOf(page, at).getByRole("button", { name: `Why did Change ${at} happen?` });
    await button.click();
    expect(await button.getAttribute("aria-expanded")).toBe("true");
    const chain = page.getByRole("group", { name: `Why Change ${at} happened` });
    await chain.locator(".origin").waitFor();
    // Under the Change's own row.
    expect(await rowOf(page, at).locator("xpath=following-sibling::tr[1]").getAttribute("class")).toBe("why");
    return chain;
  }

  it("opens a reported value's chain in the Changes view: the write, its outcome, and who sent it", async () => {
    const page = await ui.open({ hash: `#/changes?thing=${encodeURIComponent(THERMOSTAT)}` });
    try {
      await rowOf(page, seq.readBack ?? 0).waitFor();
      const chain = await openWhy(page, seq.readBack ?? 0);
      const links = chain.locator("li");
      expect(await links.count()).toBe(2);
      const [write, outcome] = [links.nth(0), links.nth(1)];
      expect(await write.textContent()).toContain("the write that asked for this value: ");
      expect(await write.textContent()).toContain(`Change ${seq.write}`);
      expect(await write.textContent()).toContain("desired setpoint 30 by alice");
      expect(await outcome.textContent()).toContain(`its outcome: Change ${seq.done}`);
      expect(await outcome.textContent()).toContain("completed");
      expect(await chain.locator(".origin").textContent()).toBe("Origin: alice via http");
      // Each Change of the chain links to the Thing around it, and to its Thing's page by title.
      const seqLink = write.getByRole("link", { name: `Change ${seq.write}` });
      expect(decodeURIComponent((await seqLink.getAttribute("href")) ?? "")).toMatch(
        new RegExp(`^#/time/${THERMOSTAT}\\?at=`),
      );
      await write.getByRole("link", { name: TITLE }).waitFor();
      await seqLink.click();
      await page.waitForURL((url) => url.hash.startsWith("#/time/"));
    } finally {
      await page.context().close();
    }
  });

  it("says where a chain ends when no Change led to it, and closes it when pressed again", async () => {
    const page = await ui.open({ hash: `#/changes?thing=${encodeURIComponent(THERMOSTAT)}` });
    try {
      const at = seq.first ?? 0;
      await rowOf(page, at).waitFor();
      const chain = await openWhy(page, at);
      expect(await chain.locator("li").count()).toBe(0);
      expect(await chain.textContent()).toContain("No Change in the Log led to it");
      expect(await chain.locator(".origin").textContent()).toMatch(
        /^Origin: the Thing itself: nothing the hub sent asked for 21 since it was first reported/,
      );
      const button = rowOf(page, at).getByRole("button", { name: `Why did Change ${at} happen?` });
      await button.click();
      await chain.waitFor({ state: "detached" });
      expect(await button.getAttribute("aria-expanded")).toBe("false");
    } finally {
      await page.context().close();
    }
  });

  it("opens a Change's chain from a Thing's timeline too", async () => {
    const page = await ui.open({ hash: `#/thing/${encodeURIComponent(THERMOSTAT)}` });
    try {
      await page.locator(`[data-rendered="${THERMOSTAT}"]`).waitFor();
      const chain = await openWhy(page, seq.done ?? 0);
      expect(await chain.locator("li").textContent()).toContain(`the command it ends: Change ${seq.write}`);
      expect(await chain.locator(".origin").textContent()).toBe("Origin: alice via http");
    } finally {
      await page.context().close();
    }
  });

  it("links a Change's correlation to the Changes view filtered by it", async () => {
    const page = await ui.open({ hash: `#/changes?thing=${encodeURIComponent(THERMOSTAT)}` });
    try {
      await rowOf(page, seq.readBack ?? 0).waitFor();
      // A value the observer reported has no correlation; the write has one, and so has its chain.
      expect(
        await rowOf(page, seq.readBack ?? 0)
          .locator("a.correlation")
          .count(),
      ).toBe(0);
      const chain = await openWhy(page, seq.readBack ?? 0);
      expect(await chain.locator("a.correlation").count()).toBe(2);
      const link = rowOf(page, seq.write ?? 0).getByRole("link", { name: "correlation c-ui-why-1" });
      await link.click();
      await page.waitForURL(
        (url) => new URLSearchParams(url.hash.split("?")[1]).get("correlation") === "c-ui-why-1",
      );
      // The view is drawn again from the new address: its field, once it is, holds the correlation.
      await expect
        .poll(() => page.getByLabel("Correlation", { exact: true }).inputValue(), { timeout: SHOWN_MS })
        .toBe("c-ui-why-1");
      // The write and its outcome, not the reports around them.
      await page.locator("main > div.muted", { hasText: "2 Changes" }).waitFor();
      expect(await shownSeqs(page)).toEqual([seq.done, seq.write]);
    } finally {
      await page.context().close();
    }
  });

  it("links a correlation to all its Changes, however long before the one it is on they came", async () => {
    const page = await ui.open({ hash: `#/changes?thing=${encodeURIComponent(VALVE)}` });
    try {
      // The last hour holds the outcome, not the command three days before it.
      await rowOf(page, seq.valveFreed ?? 0).waitFor();
      expect(await shownSeqs(page)).toEqual([seq.valveFreed]);
      await rowOf(page, seq.valveFreed ?? 0)
        .getByRole("link", { name: "correlation c-ui-why-stuck" })
        .click();
      await page.waitForURL((url) => url.hash === "#/changes?correlation=c-ui-why-stuck");
      await page.locator("main > div.muted", { hasText: "2 Changes" }).waitFor();
      expect(await shownSeqs(page)).toEqual([seq.valveFreed, seq.valveAsked]);
      // The range is the whole Log, and says so; a Since typed in still narrows it.
      const since = page.getByLabel("Since", { exact: true });
      expect(await since.inputValue()).toBe("");
      expect(await since.getAttribute("placeholder")).toBe("the Log's start");
      await since.fill("-1d");
      await page.getByRole("button", { name: "Filter" }).click();
      await page.locator("main > div.muted", { hasText: "1 Change," }).waitFor();
      expect(await shownSeqs(page)).toEqual([seq.valveFreed]);
    } finally {
      await page.context().close();
    }
  });

  it("adds a correlation's new Changes live, to each tab its own, on the stream the tabs share", async () => {
    const first = await ui.open({ hash: "#/changes?correlation=c-ui-why-a" });
    const context = first.context();
    try {
      const second = await context.newPage();
      second.setDefaultTimeout(SHOWN_MS);
      await second.addInitScript(
        `sessionStorage.setItem("hyperthings.token", ${JSON.stringify(ui.hub.token)})`,
      );
      await second.goto(`${ui.hub.url}/#/changes?correlation=c-ui-why-b`);
      for (const tab of [first, second]) {
        await tab.locator("main > div.muted", { hasText: "new ones appear" }).waitFor();
        await tab.locator('[data-testid="live"][data-state="open"]').waitFor();
      }
      const command = (correlation: string, value: number) =>
        ui.hub.hub.ingest(THERMOSTAT, [{ kind: "desired", affordance: "setpoint", value }], {
          actor: "bob",
          via: "http",
          correlation,
        });
      // Alternately, so that a Change sent to the wrong tab would come before the one waited for.
      const a = await command("c-ui-why-a", 18);
      const b = await command("c-ui-why-b", 19);
      const a2 = await command("c-ui-why-a", 20);
      const b2 = await command("c-ui-why-b", 21);
      await first.locator(`tr.change[data-seq="${a2[0]?.seq}"]`).waitFor();
      await second.locator(`tr.change[data-seq="${b2[0]?.seq}"]`).waitFor();
      expect(await shownSeqs(first)).toEqual([a2[0]?.seq, a[0]?.seq]);
      expect(await shownSeqs(second)).toEqual([b2[0]?.seq, b[0]?.seq]);
    } finally {
      await context.close();
    }
  });

  it("names the Things of a chain opened in a Thing's timeline by title", async () => {
    const page = await ui.open({ hash: `#/thing/${encodeURIComponent(VALVE)}` });
    try {
      await page.locator(`[data-rendered="${VALVE}"]`).waitFor();
      const chain = await openWhy(page, seq.valveFreed ?? 0);
      const thing = chain.locator("li a[data-thing-id]");
      await expect.poll(() => thing.textContent(), { timeout: SHOWN_MS }).toBe("Valve");
      expect(await thing.getAttribute("title")).toBe(VALVE);
    } finally {
      await page.context().close();
    }
  });

  // Last: the valve is renamed.
  it("renames a Thing in an open chain when its TD gets a new title, as in the rows", async () => {
    const page = await ui.open({ hash: "#/changes?correlation=c-ui-why-stuck" });
    try {
      await rowOf(page, seq.valveFreed ?? 0).waitFor();
      const chain = await openWhy(page, seq.valveFreed ?? 0);
      const named = (title: string) => chain.locator("li").getByRole("link", { name: title, exact: true });
      await named("Valve").waitFor();
      await putTd(
        ui.hub,
        minimalTd({
          id: VALVE,
          title: "Boiler feed valve",
          properties: { open: { type: "boolean", forms: [{ href: "http://127.0.0.1:9/open" }] } },
        }),
      );
      await named("Boiler feed valve").waitFor();
      await rowOf(page, seq.valveFreed ?? 0)
        .getByRole("link", { name: "Boiler feed valve", exact: true })
        .waitFor();
      // The chain stays open, under its row.
      expect(await chain.count()).toBe(1);
    } finally {
      await page.context().close();
    }
  });
});
