// The Changes view in the TD's language, in Chromium (playwright-core) against a real hub: each row's
// affordance by its title and its value with its unit, from the TD its Thing had at that Change (a
// unit renamed since shows the old one on the old rows), the TDs read a few Things a request, not
// one a row, and live rows named by a TD that came live without asking again.
import type { Page } from "playwright-core";
import { expect, it } from "vitest";
import { describeInBrowser, useBrowserAndHub } from "./support/ui-browser.js";
import { minimalTd, putTd, startTestHub } from "./support/test-hub.js";

const SHOWN_MS = 60_000;
const BOILER = "urn:test:ui-changes-td:boiler";
/** More Things than one request asks for (25), each with a reading on the page. */
const SENSORS = 30;
const sensor = (i: number) => `urn:test:ui-changes-td:sensor-${i}`;
const FORM = (path: string) => [{ href: `http://127.0.0.1:9/${path}` }];
const observer = { actor: "hub:observer", via: "http" };

/** The boiler's TD with its temperature named and measured as given. */
const boilerTd = (title: string, unit: string) =>
  minimalTd({
    id: BOILER,
    title: "Boiler",
    properties: {
      temperature: { title, type: "number", unit, forms: FORM("t") },
      setpoint: { title: "Setpoint", type: "number", unit: "Cel", forms: FORM("s") },
    },
  });

describeInBrowser(
  "the Changes view named and measured by the TD of each Change",
  { timeout: 4 * SHOWN_MS },
  () => {
    const ui = useBrowserAndHub(async () => {
      const hub = await startTestHub();
      const reading = (thing: string, affordance: string, value: number) =>
        hub.hub.ingest(thing, [{ kind: "reported", affordance, value }], observer);
      await putTd(hub, boilerTd("Boiler temperature", "Cel"));
      for (const value of [20, 21, 22]) await reading(BOILER, "temperature", value);
      // The TD changes: another title, and Fahrenheit. The readings before keep °C.
      await putTd(hub, boilerTd("Water temperature", "[degF]"));
      for (const value of [70, 71]) await reading(BOILER, "temperature", value);
      for (let i = 0; i < SENSORS; i++) {
        await putTd(
          hub,
          minimalTd({
            id: sensor(i),
            title: `Sensor ${i}`,
            properties: { humidity: { type: "number", unit: "%", forms: FORM(`h${i}`) } },
          }),
        );
        await reading(sensor(i), "humidity", 40 + i);
      }
      return hub;
    }, SHOWN_MS);

    /** The boiler's temperature rows, newest first: affordance cell, its tooltip, and value. */
    const boilerRows = async (page: Page) =>
      page.evaluate<Array<[string, string, string]>>(
        `[...document.querySelectorAll("tr.change[data-thing='${BOILER}']")]
        .filter((row) => row.querySelector("td.affordance").title === "temperature")
        .map((row) => [row.querySelector("td.affordance").textContent, row.querySelector("td.affordance").title,
          row.querySelector("td.value").textContent])`,
      );

    it("names each row's affordance and unit as the TD then did, reading the TDs a few Things a request", async () => {
      const page = await ui.open({ hash: "#/log" });
      try {
        const graphql: string[] = [];
        const perThing: string[] = [];
        page.on("request", (request) => {
          const url = new URL(request.url());
          if (url.pathname === "/graphql") graphql.push(request.postData() ?? "");
          if (url.pathname.startsWith("/things/") || url.searchParams.get("kind")?.includes("described"))
            perThing.push(request.url());
        });
        await page.goto(`${ui.hub.url}/#/changes?since=-1h&kind=reported`);
        await page.locator("tr.change td.value", { hasText: "°F" }).first().waitFor();
        await page.locator("tr.change td.value", { hasText: "%" }).first().waitFor();
        await expect(page.locator("tr.change").count()).resolves.toBe(5 + SENSORS);
        expect(await boilerRows(page)).toEqual([
          ["Water temperature", "temperature", "71 °F (was 70 °F)"],
          // The value before it was read under the TD before: no unit rather than a wrong one.
          ["Water temperature", "temperature", "70 °F (was 22)"],
          ["Boiler temperature", "temperature", "22 °C (was 21 °C)"],
          ["Boiler temperature", "temperature", "21 °C (was 20 °C)"],
          ["Boiler temperature", "temperature", "20 °C"],
        ]);
        // A property without a title keeps its name, and its own unit.
        const humidity = page.locator("tr.change", { has: page.locator(`a[title="${sensor(0)}"]`) });
        await expect(humidity.locator("td.affordance").textContent()).resolves.toBe("humidity");
        await expect(humidity.locator("td.value").textContent()).resolves.toBe("40 %");
        // 31 Things' TDs in two requests (25 a request), not one per Thing or per row.
        expect(graphql).toHaveLength(2);
        expect(perThing).toEqual([]);

        // A TD that comes live names the rows after it, without asking again; the old rows keep theirs.
        await putTd(ui.hub, boilerTd("Water temperature", "K"));
        await ui.hub.hub.ingest(
          BOILER,
          [{ kind: "reported", affordance: "temperature", value: 345 }],
          observer,
        );
        await page.locator("tr.change td.value", { hasText: "345 K" }).waitFor();
        expect((await boilerRows(page)).map(([, , value]) => value)).toEqual([
          "345 K (was 71)",
          "71 °F (was 70 °F)",
          "70 °F (was 22)",
          "22 °C (was 21 °C)",
          "21 °C (was 20 °C)",
          "20 °C",
        ]);
        expect(graphql).toHaveLength(2);
      } finally {
        await page.context().close();
      }
    });
  },
);
