// A Thing's timeline in the TD's language, in Chromium (playwright-core) against a real hub: each
// row's affordance by its title and its value with its unit, from the TD the Thing had at that
// Change (a unit changed from °C to °F leaves the old rows in °C), the TD before the timeline's
// oldest version asked for once, and none asked for when the timeline holds no TD change.
import type { Page } from "playwright-core";
import { expect, it } from "vitest";
import { describeInBrowser, useBrowserAndHub } from "./support/ui-browser.js";
import { minimalTd, putTd, startTestHub } from "./support/test-hub.js";

const SHOWN_MS = 60_000;
const BOILER = "urn:test:ui-thing-td:boiler";
const SENSOR = "urn:test:ui-thing-td:sensor";
/** Readings in °C before the TD changes: more than the timeline's 50 with those after it. */
const CELSIUS_READINGS = 60;
const FORM = (path: string) => [{ href: `http://127.0.0.1:9/${path}` }];
const observer = { actor: "hub:observer", via: "http" };

/** The boiler's TD with its temperature named and measured as given. */
const boilerTd = (title: string, unit: string) =>
  minimalTd({
    id: BOILER,
    title: "Boiler",
    properties: { temperature: { title, type: "number", unit, forms: FORM("t") } },
  });

describeInBrowser(
  "a Thing's timeline named and measured by the TD of each Change",
  { timeout: 4 * SHOWN_MS },
  () => {
    const ui = useBrowserAndHub(async () => {
      const hub = await startTestHub();
      const reading = (thing: string, value: number) =>
        hub.hub.ingest(thing, [{ kind: "reported", affordance: "temperature", value }], observer);
      await putTd(hub, boilerTd("Boiler temperature", "Cel"));
      for (let i = 0; i < CELSIUS_READINGS - 1; i++) await reading(BOILER, i);
      // The last one in °C read back after a write asked for it: its *Why?* chain says it in °C.
      const alice = { actor: "alice", via: "http", correlation: "c-ui-thing-td" };
      await hub.hub.ingest(BOILER, [{ kind: "desired", affordance: "temperature", value: 59 }], alice);
      await hub.hub.ingest(BOILER, [{ kind: "completed", affordance: "temperature" }], alice);
      await reading(BOILER, 59);
      // The TD changes: another title, and Fahrenheit. The readings before keep °C.
      await putTd(hub, boilerTd("Water temperature", "[degF]"));
      for (const value of [170, 171]) await reading(BOILER, value);
      await putTd(
        hub,
        minimalTd({
          id: SENSOR,
          title: "Sensor",
          properties: { temperature: { type: "number", unit: "Cel", forms: FORM("s") } },
        }),
      );
      for (let i = 0; i < CELSIUS_READINGS; i++) await reading(SENSOR, i);
      return hub;
    }, SHOWN_MS);

    /** The timeline's readings, newest first: affordance cell, its tooltip, and value. */
    const readings = async (page: Page) =>
      page.evaluate<Array<[string, string, string]>>(
        `[...document.querySelectorAll("table.changes tr.change.kind-reported")]
        .map((row) => [row.querySelector("td.affordance").textContent, row.querySelector("td.affordance").title,
          row.querySelector("td.value").textContent])`,
      );

    /** Opens a Thing's page, counting the GraphQL requests it makes. */
    const openThing = async (thing: string) => {
      const page = await ui.open({ hash: "#/log" });
      const graphql: string[] = [];
      page.on("request", (request) => {
        if (new URL(request.url()).pathname === "/graphql") graphql.push(request.postData() ?? "");
      });
      await page.goto(`${ui.hub.url}/#/thing/${encodeURIComponent(thing)}`);
      await page.locator(`[data-rendered="${thing}"]`).waitFor({ state: "attached" });
      return { page, graphql };
    };

    it("shows °C on the readings before the TD changed to °F, and °F after it", async () => {
      const { page, graphql } = await openThing(BOILER);
      try {
        // The oldest rows come before the TD's change in the timeline: their TD is asked for.
        await page.locator("table.changes tr.change td.value", { hasText: "15 °C (was 14 °C)" }).waitFor();
        const rows = await readings(page);
        // 50 rows: the 2 readings in °F, the TD's change, the newest 45 readings in °C, a write, its outcome.
        expect(rows).toHaveLength(47);
        expect(rows.slice(0, 4)).toEqual([
          ["Water temperature", "temperature", "171 °F (was 170 °F)"],
          // The value before it was read under the TD before: in °C.
          ["Water temperature", "temperature", "170 °F (was 59 °C)"],
          ["Boiler temperature", "temperature", "59 °C (was 58 °C)"],
          ["Boiler temperature", "temperature", "58 °C (was 57 °C)"],
        ]);
        expect(rows.at(-1)).toEqual(["Boiler temperature", "temperature", "15 °C (was 14 °C)"]);
        expect(rows.slice(2).every(([, , value]) => /^\d+ °C \(was \d+ °C\)$/.test(value))).toBe(true);
        // The TD before the timeline's own version, in one request.
        expect(graphql).toHaveLength(1);
        // The write in °C, in its row and in the *Why?* chain of the value read back after it.
        const write = page.locator("table.changes tr.change.kind-desired");
        await expect(write.locator("td.value").textContent()).resolves.toBe("59 °C");
        const readBack = page.locator("table.changes tr.change.kind-reported", {
          hasText: "59 °C (was 58 °C)",
        });
        await readBack.locator("button.why").click();
        const chain = page.locator(".why-chain li").first();
        await chain.waitFor();
        expect(await chain.textContent()).toContain("desired Boiler temperature 59 °C by alice");
        // The Properties table says today's unit.
        await expect(page.locator("table.properties th").first().textContent()).resolves.toBe(
          "Water temperature °F",
        );
      } finally {
        await page.context().close();
      }
    });

    it("asks for no TD when the timeline holds none of its changes: the TD read is in force at every row", async () => {
      const { page, graphql } = await openThing(SENSOR);
      try {
        await page.locator("table.changes tr.change").nth(49).waitFor();
        const rows = await readings(page);
        expect(rows).toHaveLength(50);
        expect(
          rows.every(([name, , value]) => name === "temperature" && / °C \(was \d+ °C\)$/.test(value)),
        ).toBe(true);
        expect(graphql).toEqual([]);
      } finally {
        await page.context().close();
      }
    });
  },
);
