// The web UI as an incident responder uses it at 3 a.m., in Chromium (playwright-core) against a
// real hub: on a phone as on a laptop, every view fits the window; a property's chart draws what
// the Log holds (a value held until it changed, not a slope between two readings).
import type { Page } from "playwright-core";
import { expect, it } from "vitest";
import { describeInBrowser, useBrowserAndHub } from "./support/ui-browser.js";
import { minimalTd, putTd, startTestHub } from "./support/test-hub.js";

// Bounds on waiting for what the page shows: generous, as ui.test.ts, for a loaded shared machine.
const SHOWN_MS = 60_000;
// A long id, as real ones are: it has to wrap in a phone's title, not widen the page.
const BOILER = "urn:example:ui-responder:building-7:basement:boiler-room:espresso-machine";
const ROOM = "urn:example:ui-responder:building-7:basement:boiler-room";
const MINUTE = 60_000;

describeInBrowser("the web UI as an incident responder uses it", { timeout: 4 * SHOWN_MS }, () => {
  /** The hub's clock runs this far behind the wall clock: the past is written by moving it. */
  let lag = 2 * 60 * MINUTE;
  /** When the setpoint's readings were written, just before the busy minute of the Thing's state. */
  let seeded = 0;
  const ui = useBrowserAndHub(async () => {
    const hub = await startTestHub({}, {}, { clock: () => new Date(Date.now() - lag) });
    await putTd(hub, minimalTd({ id: ROOM, title: "Boiler room" }));
    await putTd(
      hub,
      minimalTd({
        id: BOILER,
        title: "Espresso machine",
        links: [{ rel: "partOf", href: ROOM }],
        properties: {
          state: { type: "string", title: "Mode", forms: [{ href: "http://127.0.0.1:9/state" }] },
          setpoint: {
            type: "number",
            unit: "Cel",
            forms: [{ href: "http://127.0.0.1:9/setpoint" }],
          },
          pressure: {
            type: "number",
            title: "Boiler pressure",
            unit: "bar",
            forms: [{ href: "http://127.0.0.1:9/pressure" }],
          },
        },
        actions: {
          brew: { title: "Brew a shot", forms: [{ href: "http://127.0.0.1:9/brew" }] },
          flush: { forms: [{ href: "http://127.0.0.1:9/flush" }] },
        },
      }),
    );
    const by = { actor: "test", via: "test" };
    // Two hours ago the pressure became 9, and has not changed since.
    await hub.hub.ingest(BOILER, [{ kind: "reported", affordance: "pressure", value: 9 }], by);
    // 30 minutes ago the setpoint was 0; 5 minutes ago it became 100.
    lag = 30 * MINUTE;
    await hub.hub.ingest(BOILER, [{ kind: "reported", affordance: "setpoint", value: 0 }], by);
    lag = 5 * MINUTE;
    await hub.hub.ingest(BOILER, [{ kind: "reported", affordance: "setpoint", value: 100 }], by);
    lag = 0;
    seeded = Date.now();
    // A busy minute since: 60 readings of its state push the setpoint out of the page's timeline.
    await hub.hub.ingest(
      BOILER,
      Array.from({ length: 60 }, (_, i) => ({ kind: "reported", affordance: "state", value: `step ${i}` })),
      by,
    );
    return hub;
  }, SHOWN_MS);

  /** Where a chart's line is on its canvas (the pixels of its colour): its ends, and its height across. */
  async function lineOf(
    page: Page,
    property: string,
  ): Promise<{ left: number; right: number; rows: number[] }> {
    return page.evaluate(`(() => {
      const canvas = document.querySelector('.chart[data-property="${property}"] canvas');
      const { width, height } = canvas;
      const pixels = canvas.getContext("2d").getImageData(0, 0, width, height).data;
      const line = (x, y) => {
        const i = (y * width + x) * 4;
        return pixels[i] < 90 && pixels[i + 1] > 90 && pixels[i + 1] < 150 && pixels[i + 2] > 150;
      };
      let left = width, right = -1;
      for (let y = 0; y < height; y++)
        for (let x = 0; x < width; x++)
          if (line(x, y)) {
            left = Math.min(left, x);
            right = Math.max(right, x);
          }
      // The line's top row a quarter, half and three quarters of the way across.
      const rows = [1, 2, 3].map((q) => {
        const x = Math.round(left + ((right - left) * q) / 4);
        for (let y = 0; y < height; y++) if (line(x, y)) return y;
        return -1;
      });
      return { left, right, rows };
    })()`);
  }

  function signedIn(viewport: { width: number; height: number }): Promise<Page> {
    return ui.open({ viewport, hash: "#/log" });
  }

  it("fits every view in a phone's window (390 × 844): nothing wider than it, Sign out on screen", async () => {
    const page = await signedIn({ width: 390, height: 844 });
    try {
      const id = encodeURIComponent(BOILER);
      const views: [string, string][] = [
        ["#/", "Things"],
        [`#/thing/${id}`, "Espresso machine"],
        [`#/time/${id}?at=-10m&from=-1h&to=now`, "Time travel"],
        ["#/changes", "Changes"],
        ["#/releases", "Releases and drift"],
        ["#/log", "Log"],
      ];
      for (const [hash, heading] of views) {
        await page.evaluate(`location.hash = ${JSON.stringify(hash)}`);
        await page.getByRole("heading", { level: 1, name: heading }).waitFor();
        // The view's content, not only its title: a table, a diff, the checkpoint.
        if (hash.startsWith("#/thing/")) await page.locator("td.value").first().waitFor();
        if (hash.startsWith("#/time/")) await page.locator("table.diff").first().waitFor();
        if (hash === "#/changes") await page.locator("tr.change").first().waitFor();
        if (hash === "#/log") await page.locator("dl").waitFor();
        const width = await page.evaluate<number>("document.documentElement.scrollWidth");
        expect(width, `${hash} is ${width} px wide`).toBeLessThanOrEqual(390);
        const signOut = await page.getByRole("button", { name: "Sign out" }).boundingBox();
        expect((signOut?.x ?? Infinity) + (signOut?.width ?? 0), hash).toBeLessThanOrEqual(390);
      }
      // The graph takes the window's width, with its legend below, not a sliver beside it.
      await page.evaluate('location.hash = "#/"');
      const graph = await page.getByTestId("graph").boundingBox();
      expect(graph?.width).toBeGreaterThanOrEqual(300);
    } finally {
      await page.context().close();
    }
  });

  it("draws a property's history as steps: the value it held until it changed, no slope between", async () => {
    const page = await signedIn({ width: 1280, height: 720 });
    try {
      await page.evaluate(`location.hash = ${JSON.stringify(`#/thing/${encodeURIComponent(BOILER)}`)}`);
      const chart = page.locator('.chart[data-property="setpoint"]');
      await chart.scrollIntoViewIfNeeded();
      await page.locator('.chart[data-property="setpoint"][data-points="2"] canvas').waitFor();
      // The rows of the line's colour in three columns of the canvas: a quarter and half way
      // from the first reading (0) to the second (100), and the lowest row the line reaches.
      const [quarter, half, lowest] = await page.evaluate<[number, number, number]>(`(() => {
          const canvas = document.querySelector('.chart[data-property="setpoint"] canvas');
          const { width, height } = canvas;
          const pixels = canvas.getContext("2d").getImageData(0, 0, width, height).data;
          const line = (x, y) => {
            const i = (y * width + x) * 4;
            return pixels[i] < 90 && pixels[i + 1] > 90 && pixels[i + 1] < 150 && pixels[i + 2] > 150;
          };
          let left = width, right = -1, lowest = -1;
          for (let y = 0; y < height; y++)
            for (let x = 0; x < width; x++)
              if (line(x, y)) {
                left = Math.min(left, x);
                right = Math.max(right, x);
                lowest = Math.max(lowest, y);
              }
          const rowIn = (x) => {
            for (let y = 0; y < height; y++) if (line(x, y)) return y;
            return -1;
          };
          return [rowIn(Math.round(left + (right - left) / 4)), rowIn(Math.round((left + right) / 2)), lowest];
        })()`);
      expect(quarter).toBeGreaterThan(0);
      // The setpoint was 0 all that time: the line runs flat at the bottom, where 0 is (the
      // marker of that reading reaches a few pixels lower). A slope from 0 to 100 was 26 px
      // higher half way than a quarter of the way, 57 px above the bottom.
      expect(Math.abs(quarter - half)).toBeLessThanOrEqual(2);
      expect(lowest - half).toBeLessThanOrEqual(6);
    } finally {
      await page.context().close();
    }
  });

  it("draws the value a property held over the range when it did not change in it: flat, from before the range to now", async () => {
    const page = await signedIn({ width: 1280, height: 720 });
    try {
      await page.evaluate(`location.hash = ${JSON.stringify(`#/thing/${encodeURIComponent(BOILER)}`)}`);
      const chart = page.locator('.chart[data-property="pressure"]');
      await chart.scrollIntoViewIfNeeded();
      // The range is the last hour: the reading of two hours ago is the value it held all along.
      await page.locator('.chart[data-property="pressure"][data-points="1"] canvas').waitFor();
      await expect(chart.locator(".chart-held").textContent()).resolves.toMatch(
        /^9 bar since .+, before this range: unchanged in it\.$/,
      );
      // Headed as the Properties table names it, with the name the Log uses.
      await expect(chart.locator("xpath=../h3").textContent()).resolves.toBe("Boiler pressure");
      const over = await chart.locator(".u-over").boundingBox();
      const line = await lineOf(page, "pressure");
      // A line from the left edge of the plot to its right edge (now), at one height.
      expect(line.right - line.left).toBeGreaterThanOrEqual(0.95 * (over?.width ?? Infinity));
      expect(line.rows[0]).toBeGreaterThan(0);
      expect(new Set(line.rows).size).toBe(1);
    } finally {
      await page.context().close();
    }
  });

  it("links a Thing's page to all its Changes, where one its busy timeline no longer shows is found", async () => {
    const page = await signedIn({ width: 1280, height: 720 });
    try {
      await page.evaluate(`location.hash = ${JSON.stringify(`#/thing/${encodeURIComponent(BOILER)}`)}`);
      await page.locator("tr.change").first().waitFor();
      // The page's timeline holds the newest 50: the setpoint's readings are older.
      expect(await page.locator("tr.change", { hasText: "setpoint" }).count()).toBe(0);
      await page.getByRole("link", { name: "All its Changes, by kind, actor and time" }).click();
      await page.getByRole("heading", { level: 1, name: "Changes" }).waitFor();
      expect(await page.getByLabel("Thing", { exact: true }).inputValue()).toBe(BOILER);
      await page.locator("tr.change", { hasText: "setpoint" }).first().waitFor();
      expect(await page.locator("tr.change", { hasText: "setpoint" }).count()).toBe(2);
    } finally {
      await page.context().close();
    }
  });

  it("shows the Changes of a range with an end, kept in the address a link shares, and none after it", async () => {
    const page = await signedIn({ width: 1280, height: 720 });
    try {
      const thing = new URLSearchParams({ thing: BOILER }).toString();
      await page.evaluate(`location.hash = ${JSON.stringify(`#/changes?${thing}`)}`);
      await page.locator("tr.change").first().waitFor();
      // Up to two minutes before the busy minute: the setpoint's two readings, none of the state's.
      const until = new Date(seeded - 2 * MINUTE).toISOString();
      await page.getByLabel("Since").fill("-1h");
      await page.getByLabel("Until").fill(until);
      await page.getByRole("button", { name: "Filter" }).click();
      const status = page.locator("main > div.muted", {
        hasText: /^2 Changes from .+ to .+, newest first\.$/,
      });
      await status.waitFor();
      expect(await page.locator("tr.change td:nth-child(5)").allTextContents()).toEqual([
        "setpoint",
        "setpoint",
      ]);
      const asked = new URLSearchParams(new URL(page.url()).hash.split("?")[1]);
      expect(Object.fromEntries(asked)).toEqual({ thing: BOILER, since: "-1h", until });
      // The view's own pages of the range (not the titles' requests, one Thing's last TD each).
      const pages = `performance.getEntriesByType("resource").map((e) => e.name).filter((n) => n.includes("/changes?") && n.includes("order=desc") && new URL(n).searchParams.get("kind") !== "described,removed")`;
      const sent = await page.evaluate<string>(`${pages}.at(-1)`);
      expect(new URL(sent).searchParams.get("until")).toBe(until);
      // The link opened again (another person's tab): the same range, the same rows.
      await page.reload();
      await status.waitFor();
      await expect(page.getByLabel("Until").inputValue()).resolves.toBe(until);
      expect(await page.locator("tr.change").count()).toBe(2);
      // A Change now is after the range's end: read again, the range has the same two.
      const [late] = await ui.hub.hub.ingest(
        BOILER,
        [{ kind: "reported", affordance: "state", value: "late" }],
        {
          actor: "test",
          via: "test",
        },
      );
      const reads = `${pages}.length`;
      const before = await page.evaluate<number>(reads);
      await page.getByRole("button", { name: "Filter" }).click();
      await page.waitForFunction(`${reads} > ${before}`);
      await status.waitFor();
      expect(await page.locator(`tr.change[data-seq="${late?.seq}"]`).count()).toBe(0);
      expect(await page.locator("tr.change").count()).toBe(2);
    } finally {
      await page.context().close();
    }
  });

  it("takes a person using only the keyboard to the Things and their links, shows where the focus is, and opens one with Enter", async () => {
    const page = await signedIn({ width: 1280, height: 720 });
    try {
      await page.evaluate('location.hash = "#/"');
      await page.locator('[data-testid="graph"][data-rendered="2"]').waitFor();
      /** Tab, as often as it takes (a bounded number of times), until `where` holds. */
      const tabTo = async (where: string): Promise<void> => {
        for (let i = 0; i < 40; i++) {
          await page.keyboard.press("Tab");
          if (
            await page.evaluate<boolean>(`(() => { const at = document.activeElement; return ${where}; })()`)
          )
            return;
        }
        throw new Error(`Tab never reached ${where}`);
      };
      const outline = () =>
        page.evaluate<[string, number]>(
          "(() => { const style = getComputedStyle(document.activeElement); return [style.outlineStyle, parseFloat(style.outlineWidth)]; })()",
        );
      await tabTo('at?.tagName === "SUMMARY"');
      const [style, width] = await outline();
      expect(style).not.toBe("none");
      expect(width).toBeGreaterThanOrEqual(2);
      await page.keyboard.press("Enter");
      await page.getByTestId("graph-list").locator("li[data-thing]").first().waitFor();
      // The machine's link to the room it is part of: a link of its own, reached with Tab.
      await tabTo(
        `at?.textContent === "Boiler room" && at.closest("li[data-thing]")?.dataset.thing === ${JSON.stringify(BOILER)}`,
      );
      expect((await outline())[0]).not.toBe("none");
      await page.keyboard.press("Enter");
      await page.getByRole("heading", { level: 1, name: "Boiler room" }).waitFor();
      expect(new URL(page.url()).hash).toBe(`#/thing/${encodeURIComponent(ROOM)}`);
    } finally {
      await page.context().close();
    }
  });

  it("fits its charts to the window as the window is made narrower and wider again", async () => {
    const page = await signedIn({ width: 1280, height: 720 });
    try {
      await page.evaluate(`location.hash = ${JSON.stringify(`#/thing/${encodeURIComponent(BOILER)}`)}`);
      await page.locator(".charts").scrollIntoViewIfNeeded();
      await page.locator('.chart[data-property="setpoint"] canvas').waitFor();
      /** The chart's box, and its canvas: as wide as the box. */
      const widths = () =>
        page.evaluate<[number, number]>(`(() => {
          const chart = document.querySelector('.chart[data-property="setpoint"]');
          return [chart.clientWidth, chart.querySelector("canvas").getBoundingClientRect().width];
        })()`);
      const fitted = async () => {
        const [box, canvas] = await widths();
        return Math.abs(box - canvas) <= 1 ? box : -1;
      };
      await expect.poll(fitted, { timeout: SHOWN_MS }).toBeGreaterThan(0);
      const [before] = await widths();
      await page.setViewportSize({ width: 640, height: 720 });
      await expect.poll(fitted, { timeout: SHOWN_MS }).toBeGreaterThan(0);
      const [narrow] = await widths();
      expect(narrow).toBeLessThan(640);
      expect(await page.evaluate<number>("document.documentElement.scrollWidth")).toBeLessThanOrEqual(640);
      await page.setViewportSize({ width: 1280, height: 720 });
      await expect.poll(async () => (await fitted()) === before, { timeout: SHOWN_MS }).toBe(true);
    } finally {
      await page.context().close();
    }
  });

  it("goes from a Thing to what was done to it, and from a Change to the Thing as it was just before it", async () => {
    const page = await signedIn({ width: 1280, height: 720 });
    try {
      await page.evaluate(`location.hash = ${JSON.stringify(`#/thing/${encodeURIComponent(BOILER)}`)}`);
      await page.getByRole("link", { name: /^What was done to it in the last day/ }).click();
      await page.getByRole("heading", { level: 1, name: "Changes" }).waitFor();
      // Its readings left out: what it was told to do and what was done to its description.
      await page.locator("tr.change.kind-described").first().waitFor();
      expect(await page.locator("tr.change.kind-reported").count()).toBe(0);
      expect(await page.getByLabel("Kinds").inputValue()).toContain("desired");
      // The setpoint's change from 0 to 100, in all its Changes: its number opens the time view.
      await page.evaluate(
        `location.hash = ${JSON.stringify(`#/changes?${new URLSearchParams({ thing: BOILER, kind: "reported", since: "-1h" }).toString()}`)}`,
      );
      const row = page.locator("tr.change", { hasText: "setpoint" }).filter({ hasText: "(was 0 °C)" });
      await row.getByRole("link", { name: /the Thing before and after it$/ }).click();
      await page.getByRole("heading", { level: 1, name: "Time travel" }).waitFor();
      // Just before it, the setpoint was still 0; between then and the Change, 0 became 100.
      const state = page
        .getByTestId("state")
        .locator("tr", { has: page.locator("th", { hasText: /^setpoint$/ }) });
      await expect(state.locator("td.value").textContent()).resolves.toBe("0 °C");
      const diff = page
        .getByTestId("diff")
        .locator("tr", { has: page.locator("th", { hasText: /^setpoint$/ }) });
      await expect(diff.locator("td.after").textContent()).resolves.toBe("100 °C");
    } finally {
      await page.context().close();
    }
  });

  it("names each Write and Invoke button by its property or action, for a screen reader", async () => {
    const page = await signedIn({ width: 1280, height: 720 });
    try {
      await page.evaluate(`location.hash = ${JSON.stringify(`#/thing/${encodeURIComponent(BOILER)}`)}`);
      await page.locator("td.value").first().waitFor();
      // An action without a title by its name made readable (flush: Flush), as its card's heading.
      for (const name of ["Write Mode", "Write setpoint", "Invoke Brew a shot", "Invoke Flush"])
        expect(await page.getByRole("button", { name, exact: true }).count(), name).toBe(1);
    } finally {
      await page.context().close();
    }
  });

  it("shows a UCUM unit as people write it (Cel as °C): by the property and in its chart", async () => {
    const page = await signedIn({ width: 1280, height: 720 });
    try {
      await page.evaluate(`location.hash = ${JSON.stringify(`#/thing/${encodeURIComponent(BOILER)}`)}`);
      await page.locator("td.value").first().waitFor();
      const row = page.locator("table.properties tr", { has: page.locator('td[data-property="setpoint"]') });
      expect(await row.locator("th").textContent()).toBe("setpoint °C");
      // A unit no code names stays as the TD writes it.
      const pressure = page.locator("table.properties tr", {
        has: page.locator('td[data-property="pressure"]'),
      });
      expect(await pressure.locator("th").textContent()).toBe("Boiler pressure bar");
      const chart = page.locator('.chart[data-property="setpoint"]');
      await chart.scrollIntoViewIfNeeded();
      await chart.locator(".u-legend", { hasText: "setpoint (°C)" }).waitFor();
    } finally {
      await page.context().close();
    }
  });

  it("tells a chart's times on the 24-hour clock, as the timeline does", async () => {
    const page = await signedIn({ width: 1280, height: 720 });
    try {
      await page.evaluate(`location.hash = ${JSON.stringify(`#/thing/${encodeURIComponent(BOILER)}`)}`);
      const chart = page.locator('.chart[data-property="setpoint"]');
      await chart.scrollIntoViewIfNeeded();
      await page.locator('.chart[data-property="setpoint"][data-points="2"] canvas').waitFor();
      // The cursor over the chart: the legend says its time (uPlot's own said "3:12:09am").
      const over = await chart.locator(".u-over").boundingBox();
      await page.mouse.move(
        (over?.x ?? 0) + (over?.width ?? 0) / 2,
        (over?.y ?? 0) + (over?.height ?? 0) / 2,
      );
      const time = chart.locator(".u-legend .u-series").first().locator(".u-value");
      await expect.poll(() => time.textContent(), { timeout: SHOWN_MS }).toMatch(/ \d{2}:\d{2}:\d{2}$/);
    } finally {
      await page.context().close();
    }
  });

  it("keeps the focus on Show more in the drift list while the page is drawn again", async () => {
    // 51 properties held at 1 by a release and each reported 2: one more drift entry than shown.
    const id = "urn:example:ui-responder:drifter";
    const names = Array.from({ length: 51 }, (_, i) => `p${String(i).padStart(2, "0")}`);
    const forms = [{ href: "http://127.0.0.1:9/p" }];
    await putTd(
      ui.hub,
      minimalTd({
        id,
        title: "Drifter",
        properties: Object.fromEntries(names.map((name) => [name, { type: "integer", forms }])),
      }),
    );
    const by = { actor: "test", via: "test" };
    const desired = Object.fromEntries(names.map((name) => [name, 1]));
    const applied = {
      release: "sha256:ui-responder",
      name: "drifter",
      rollout: "r",
      desired,
      drift: { policy: "record" },
    };
    await ui.hub.hub.ingest(id, [{ kind: "applied", value: applied }], by);
    await ui.hub.hub.ingest(
      id,
      names.map((name) => ({ kind: "reported" as const, affordance: name, value: 2 })),
      by,
    );
    const page = await signedIn({ width: 1280, height: 720 });
    try {
      await page.evaluate('location.hash = "#/releases"');
      const more = page.getByRole("button", { name: "Show 1 more" });
      await more.focus();
      // A reading moves the drift: the page is drawn again with the new observed value.
      await ui.hub.hub.ingest(id, [{ kind: "reported", affordance: "p00", value: 3 }], by);
      const first = page
        .locator('[data-testid="drift"] tbody tr')
        .filter({ has: page.locator("td:nth-child(2)", { hasText: /^p00$/ }) });
      await first.locator("td.observed", { hasText: /^3$/ }).waitFor();
      // The button a keyboard reached is still there, and still has the focus: Enter shows the rest.
      expect(await page.evaluate<string | null>("document.activeElement?.textContent ?? null")).toBe(
        "Show 1 more",
      );
      await page.keyboard.press("Enter");
      await page.locator('[data-testid="drift"][data-count="51"]').waitFor();
    } finally {
      await page.context().close();
      await ui.hub.request(`/things/${encodeURIComponent(id)}`, { method: "DELETE" });
    }
  });
});
