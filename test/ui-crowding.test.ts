// Where the web UI was squeezed or crowded, in Chromium (playwright-core) against a real hub: the
// Changes as cards on a phone (the table scrolled sideways and squeezed its values), a number and
// its unit on one line in a diff beside a wide "asked for", and the links around a Thing with many
// named only when it is chosen (their names piled up around the demo's container host).
import type { Page } from "playwright-core";
import { expect, it } from "vitest";
import { describeInBrowser, useBrowserAndHub } from "./support/ui-browser.js";
import { minimalTd, putTd, startTestHub } from "./support/test-hub.js";

// Bounds on waiting for what the page shows: generous, as ui.test.ts, for a loaded shared machine.
const SHOWN_MS = 60_000;
const PHONE = { width: 390, height: 844 };
const LAPTOP = { width: 1280, height: 860 };
const BOILER = "urn:test:ui-crowding:boiler";
const HOST = "urn:test:ui-crowding:host";
const CONTAINERS = Array.from({ length: 6 }, (_, i) => `urn:test:ui-crowding:container-${i + 1}`);
const MACHINE = "urn:test:ui-crowding:machine";
const SWITCH = "urn:test:ui-crowding:switch";
const CORRELATION = "c-ui-crowding-write-5d1e";
const FORM = (path: string) => [{ href: `http://127.0.0.1:9/${path}` }];

describeInBrowser("the web UI where it was squeezed or crowded", { timeout: 4 * SHOWN_MS }, () => {
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
          setpoint: { type: "number", title: "Boiler setpoint", unit: "Cel", forms: FORM("setpoint") },
          recipe: { type: "object", forms: FORM("recipe") },
        },
      }),
    );
    // A host and its containers, each linked both ways (runsOn, hosts), as the demo's are; and
    // two Things with one link between them.
    await putTd(
      hub,
      minimalTd({
        id: HOST,
        title: "Container host",
        links: CONTAINERS.map((href) => ({ rel: "hosts", href })),
      }),
    );
    for (const [i, id] of CONTAINERS.entries())
      await putTd(
        hub,
        minimalTd({ id, title: `Container ${i + 1}`, links: [{ rel: "runsOn", href: HOST }] }),
      );
    await putTd(hub, minimalTd({ id: SWITCH, title: "Core switch" }));
    await putTd(
      hub,
      minimalTd({ id: MACHINE, title: "Espresso machine", links: [{ rel: "dependsOn", href: SWITCH }] }),
    );
    const sensor = { actor: "hub:observer", via: "http" };
    await hub.hub.ingest(
      BOILER,
      [
        { kind: "reported", affordance: "temperature", value: 20 },
        { kind: "reported", affordance: "setpoint", value: 85 },
        {
          kind: "reported",
          affordance: "recipe",
          value: { dose: 18.5, yield: 36, grind: "fine", preinfusion: 4, temperature: 93 },
        },
      ],
      sensor,
    );
    // Half an hour ago the first values; since, a write of 90 °C and the boiler at 90 °C.
    lag = 0;
    await hub.hub.ingest(BOILER, [{ kind: "desired", affordance: "setpoint", value: 90 }], {
      actor: "admin",
      via: "http",
      correlation: CORRELATION,
    });
    await hub.hub.ingest(
      BOILER,
      [
        { kind: "reported", affordance: "setpoint", value: 90 },
        { kind: "reported", affordance: "temperature", value: 90 },
      ],
      sensor,
    );
    return hub;
  }, SHOWN_MS);

  /** The box of an element's text: its lines' rectangles together. */
  async function textBox(page: Page, selector: string): Promise<{ height: number; lineHeight: number }> {
    return page.evaluate<{ height: number; lineHeight: number }>(`(() => {
      const cell = document.querySelector(${JSON.stringify(selector)});
      const range = document.createRange();
      range.selectNodeContents(cell);
      const style = getComputedStyle(cell);
      const lineHeight = parseFloat(style.lineHeight) || 1.2 * parseFloat(style.fontSize);
      return { height: range.getBoundingClientRect().height, lineHeight };
    })()`);
  }

  it("shows each Change as a card on a phone: nothing scrolls sideways, every piece and link kept", async () => {
    const query = new URLSearchParams({ thing: BOILER, since: "-1h" }).toString();
    const page = await ui.open({ viewport: PHONE, hash: `#/changes?${query}` });
    try {
      const rows = page.locator("tr.change");
      const recipe = rows.filter({ hasText: "recipe" });
      await recipe.locator("td.value").filter({ hasText: '"grind":"fine"' }).waitFor();
      // Neither the page nor the table's own box scrolls sideways.
      const widths = await page.evaluate<{ page: number; table: number; box: number }>(`(() => {
        const table = document.querySelector("table.changes");
        return { page: document.scrollingElement.scrollWidth, table: table.scrollWidth, box: table.clientWidth };
      })()`);
      expect(widths.page).toBeLessThanOrEqual(PHONE.width);
      expect(widths.table).toBeLessThanOrEqual(widths.box);
      // Each card holds its pieces within the window; a value is as wide as the card, not a
      // column of a few letters.
      const [card, value] = await Promise.all([
        recipe.boundingBox(),
        recipe.locator("td.value").boundingBox(),
      ]);
      expect(value?.width ?? 0).toBeGreaterThan(300);
      expect((card?.x ?? 0) + (card?.width ?? Infinity)).toBeLessThanOrEqual(PHONE.width);
      type Box = { right: number; width: number };
      const cells = await recipe
        .locator("td")
        .evaluateAll((tds: Array<{ className: string; getBoundingClientRect(): Box }>) =>
          // A DOMRect's sides are getters: read one by one (a spread would copy none).
          tds.map((td) => {
            const box = td.getBoundingClientRect();
            return { name: td.className, right: box.right, width: box.width };
          }),
        );
      for (const cell of cells) {
        expect(cell.right, cell.name).toBeLessThanOrEqual(PHONE.width);
        expect(cell.width, cell.name).toBeGreaterThan(0);
      }
      // Every piece of the table is in the card: number (a link), time, Thing (a link), kind,
      // affordance, value, cause.
      const setpoint = rows.filter({ hasText: "setpoint" }).filter({ hasText: "(was 85 °C)" });
      await expect(setpoint.locator("td.seq a").getAttribute("href")).resolves.toMatch(/^#\/time\//);
      await expect(setpoint.locator("td.time").textContent()).resolves.toMatch(/\d/);
      await setpoint.locator("td.thing a", { hasText: "Boiler" }).waitFor();
      await expect(setpoint.locator(".kind").textContent()).resolves.toBe("reported");
      await expect(setpoint.locator("td.value").textContent()).resolves.toBe("90 °C (was 85 °C)");
      await expect(setpoint.locator("td.cause").textContent()).resolves.toContain("hub:observer via http");
      const desired = rows.filter({ has: page.locator(".kind", { hasText: "desired" }) });
      await desired.locator("td.cause a.correlation").waitFor();
      // Why? opens the chain under the card, within the window.
      await desired.getByRole("button", { name: /^Why did Change \d+ happen\?$/ }).click();
      const chain = page.locator("tr.why");
      await chain.getByText("Origin:").waitFor();
      const box = await chain.boundingBox();
      expect((box?.x ?? 0) + (box?.width ?? Infinity)).toBeLessThanOrEqual(PHONE.width);
      expect(await page.evaluate<number>("document.scrollingElement.scrollWidth")).toBeLessThanOrEqual(
        PHONE.width,
      );
    } finally {
      await page.context().close();
    }
  });

  it("keeps a Thing's title on one line in the Changes view at a laptop's width, beside TDs as values", async () => {
    const page = await ui.open({ viewport: LAPTOP, hash: "#/changes?since=-1h" });
    try {
      // A TD registered is a Change whose value (cut to 160 characters) is the widest cell.
      await page.locator("tr.change.kind-described td.value").first().waitFor();
      const host = page.locator("tr.change td.thing a", { hasText: "Container host" }).first();
      await host.waitFor();
      const { height, lineHeight } = await textBox(
        page,
        `tr.change[data-seq="${await host.locator("xpath=ancestor::tr").getAttribute("data-seq")}"] td.thing`,
      );
      expect(height, "Container host's lines").toBeLessThan(1.5 * lineHeight);
    } finally {
      await page.context().close();
    }
  });

  it("keeps a number and its unit on one line in a diff beside a wide 'asked for'", async () => {
    const query = new URLSearchParams({ from: "-15m", to: "now" }).toString();
    const page = await ui.open({ viewport: LAPTOP, hash: `#/time/${encodeURIComponent(BOILER)}?${query}` });
    try {
      // The properties' table (the writes' has its own test id).
      const properties = '[data-testid="diff"] table.diff:not([data-testid])';
      await page.locator(`${properties} tr[data-affordance="setpoint"] td.asked`).waitFor();
      for (const name of ["temperature", "setpoint"]) {
        const selector = `${properties} tr[data-affordance="${name}"] td.after`;
        await expect(page.locator(selector).textContent()).resolves.toBe("90 °C");
        const { height, lineHeight } = await textBox(page, selector);
        expect(height, `${name}'s "after" is one line`).toBeLessThan(1.5 * lineHeight);
      }
      const asked = `${properties} tr[data-affordance="setpoint"] td.asked`;
      await expect(page.locator(asked).textContent()).resolves.toMatch(/^asked for 90 °C by admin at /);
    } finally {
      await page.context().close();
    }
  });

  it("puts the Log's terms above their values on a phone: the root hash in two lines, not five", async () => {
    const page = await ui.open({ viewport: PHONE, hash: "#/log" });
    try {
      const root = '[data-testid="checkpoint"] dt:nth-of-type(2) + dd';
      await page.locator(root).waitFor();
      await expect(page.locator(root).textContent()).resolves.toMatch(/^[0-9a-f]{64}$/);
      const box = await page.locator(root).boundingBox();
      expect(box?.width ?? 0).toBeGreaterThan(300);
      const { height, lineHeight } = await textBox(page, root);
      expect(height, "the root hash's lines").toBeLessThan(2.5 * lineHeight);
      expect(await page.evaluate<number>("document.scrollingElement.scrollWidth")).toBeLessThanOrEqual(
        PHONE.width,
      );
    } finally {
      await page.context().close();
    }
  });

  it("names the links around a Thing with many only when it is chosen, drawn on a backdrop; a lone link is named at once", async () => {
    const page = await ui.open({ viewport: LAPTOP });
    try {
      const graph = page.getByTestId("graph");
      await page.locator('[data-testid="graph"][data-rendered]').waitFor();
      // At rest: the host's twelve links unnamed (their names piled up), the machine's one named.
      await page.locator('[data-testid="graph"][data-named-links="1"]').waitFor();
      expect(await graph.getAttribute("data-crowded-links")).toBe(String(2 * CONTAINERS.length));
      // The host chosen (from the list, as the keyboard does): its links are named.
      await page.getByText("The Things as a list, with their links").click();
      await page.locator(`li[data-thing="${HOST}"] > a`).focus();
      await page.locator(`[data-testid="graph"][data-selected="${HOST}"]`).waitFor();
      // Its twelve named, on top; the lone link's name too, unless it would lie over one of
      // theirs: then it is held back (and counted so) until the host is let go.
      const named = async () => [
        Number(await graph.getAttribute("data-named-links")),
        Number(await graph.getAttribute("data-hidden-link-names")),
      ];
      await expect
        .poll(async () => (await named()).reduce((sum, n) => sum + n), { timeout: SHOWN_MS })
        .toBe(2 * CONTAINERS.length + 1);
      expect((await named())[0]).toBeGreaterThanOrEqual(2 * CONTAINERS.length);
      // The Thing chosen stands out: its label on a backdrop (and on top), as a hovered one's.
      await page.locator('[data-testid="graph"][data-selected-backdrop="true"]').waitFor();
      // Chosen elsewhere: the host's names go again.
      await page.locator(`li[data-thing="${MACHINE}"] > a`).focus();
      await page.locator('[data-testid="graph"][data-named-links="1"]').waitFor();
    } finally {
      await page.context().close();
    }
  });
});
