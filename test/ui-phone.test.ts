// The web UI on a phone, in Chromium (playwright-core, a phone's window with touch emulated)
// against a real hub: the graph spread over its tall canvas with no label over another, a tap that
// chooses a Thing and shows its panel, one finger left to scroll the page past the graph.
import { join } from "node:path";
import type { Page } from "playwright-core";
import { expect, it } from "vitest";
import { describeInBrowser, useBrowserAndHub } from "./support/ui-browser.js";
import { minimalTd, putTd, startTestHub } from "./support/test-hub.js";

// Bounds on waiting for what the page shows: generous, as ui.test.ts, for a loaded shared machine.
const SHOWN_MS = 60_000;
/** With HYPERTHINGS_UI_SCREENSHOTS=<folder> (npm run screenshots), the pictures of docs/ui.md. */
const screenshots = process.env.HYPERTHINGS_UI_SCREENSHOTS;
const PHONE = { width: 390, height: 844 };
const SAREF = ["https://www.w3.org/2022/wot/td/v1.1", { saref: "https://saref.etsi.org/core/" }];
const ID = (name: string) => `urn:test:ui-phone:${name}`;
/** A fleet like the demo's: nine Things of five types, with long titles and links between them. */
const FLEET: Array<[string, string, string, Array<{ rel: string; href: string }>]> = [
  ["machine", "Espresso machine", "saref:Appliance", [{ rel: "dependsOn", href: ID("switch") }]],
  ["switch", "Core switch", "saref:Device", []],
  ["plug", "Desk lamp plug", "saref:Device", []],
  ["ups", "UPS", "saref:Device", [{ rel: "dependsOn", href: ID("switch") }]],
  [
    "host",
    "Container host",
    "saref:Meter",
    ["orders", "web", "cache"].map((name) => ({ rel: "hosts", href: ID(`container-${name}`) })),
  ],
  ["container-orders", "Container orders", "saref:Sensor", [{ rel: "runsOn", href: ID("host") }]],
  ["container-web", "Container web", "saref:Sensor", [{ rel: "runsOn", href: ID("host") }]],
  ["container-cache", "Container cache", "saref:Sensor", [{ rel: "runsOn", href: ID("host") }]],
  ["service", "Order service", "saref:Actuator", [{ rel: "runsOn", href: ID("container-orders") }]],
];

const BOILER = ID("boiler");
const FORM = (path: string) => [{ href: `http://127.0.0.1:9/${path}` }];

describeInBrowser("the web UI on a phone", { timeout: 4 * SHOWN_MS }, () => {
  const ui = useBrowserAndHub(async () => {
    const hub = await startTestHub();
    for (const [name, title, type, links] of FLEET)
      await putTd(hub, minimalTd({ "@context": SAREF, "@type": type, id: ID(name), title, links }));
    // A boiler with a history: readings, a write, an outage, a release it drifts from.
    await putTd(
      hub,
      minimalTd({
        id: BOILER,
        title: "Boiler",
        links: [{ rel: "dependsOn", href: ID("switch") }],
        properties: {
          temperature: { type: "number", title: "Boiler temperature", unit: "Cel", forms: FORM("t") },
          setpoint: { type: "number", title: "Boiler setpoint", unit: "Cel", forms: FORM("setpoint") },
          recipe: { type: "object", forms: FORM("recipe") },
        },
      }),
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
    await hub.hub.ingest(BOILER, [{ kind: "desired", affordance: "setpoint", value: 90 }], {
      actor: "operator@example.org",
      via: "http",
    });
    await hub.hub.ingest(
      BOILER,
      [{ kind: "unreachable", value: "connect ECONNREFUSED 127.0.0.1:9" }],
      sensor,
    );
    await hub.hub.ingest(BOILER, [{ kind: "reachable" }], sensor);
    const applied = {
      release: "sha256:4f1c2d3e4f5a6b7c8d9e0f",
      name: "boiler-setpoint",
      rollout: "urn:uuid:ui-phone-rollout",
      desired: { setpoint: 80 },
      drift: { policy: "record" },
    };
    await hub.hub.ingest(BOILER, [{ kind: "applied", value: applied }], { actor: "admin", via: "rollout" });
    await hub.hub.ingest(
      BOILER,
      [
        { kind: "reported", affordance: "setpoint", value: 90 },
        { kind: "reported", affordance: "temperature", value: 90 },
      ],
      sensor,
    );
    const text = [
      "release: boiler-setpoint",
      "things:",
      `  - select: { id: "${BOILER}" }`,
      "    properties: { setpoint: 80 }",
    ];
    await hub.hub.releases.build([{ path: "release.yaml", text: text.join("\n") }], { actor: "test" });
    return hub;
  }, SHOWN_MS);

  /**
   * Where the graph's canvas shows a colour (a node's), in CSS pixels of the page: the box of all
   * its pixels and their middle. Nodes are the only saturated pixels: links are grey, labels black.
   */
  async function colourOnCanvas(
    page: Page,
    colour?: string,
  ): Promise<{
    top: number;
    bottom: number;
    left: number;
    right: number;
    x: number;
    y: number;
    height: number;
  }> {
    const graph = page.getByTestId("graph");
    // The screenshot scrolls the canvas into the window: its box is read after it.
    const png = (await graph.screenshot()).toString("base64");
    const box = await graph.boundingBox();
    if (box === null) throw new Error("no graph");
    const found = await page.evaluate<{
      top: number;
      bottom: number;
      left: number;
      right: number;
      x: number;
      y: number;
      scale: number;
    }>(
      `(async () => {
        const colour = ${JSON.stringify(colour ?? null)};
        const image = new Image();
        image.src = "data:image/png;base64,${png}";
        await image.decode();
        const canvas = document.createElement("canvas");
        canvas.width = image.width;
        canvas.height = image.height;
        const context = canvas.getContext("2d");
        context.drawImage(image, 0, 0);
        const { data, width, height } = context.getImageData(0, 0, canvas.width, canvas.height);
        let want;
        if (colour !== null) {
          const probe = document.createElement("span");
          probe.style.color = colour;
          document.body.append(probe);
          want = getComputedStyle(probe).color.match(/\\d+/g).map(Number);
          probe.remove();
        }
        let [top, bottom, left, right, sx, sy, n] = [Infinity, -Infinity, Infinity, -Infinity, 0, 0, 0];
        for (let y = 0; y < height; y++)
          for (let x = 0; x < width; x++) {
            const i = (y * width + x) * 4;
            const [r, g, b] = [data[i], data[i + 1], data[i + 2]];
            const hit = want === undefined
              ? Math.max(r, g, b) - Math.min(r, g, b) > 80
              : Math.abs(r - want[0]) + Math.abs(g - want[1]) + Math.abs(b - want[2]) < 30;
            if (!hit) continue;
            [top, bottom, left, right] = [Math.min(top, y), Math.max(bottom, y), Math.min(left, x), Math.max(right, x)];
            sx += x;
            sy += y;
            n++;
          }
        return { top, bottom, left, right, x: sx / n, y: sy / n, scale: width / ${box.width} };
      })()`,
    );
    const css = (value: number) => value / found.scale;
    return {
      top: css(found.top),
      bottom: css(found.bottom),
      left: css(found.left),
      right: css(found.right),
      x: box.x + css(found.x),
      y: box.y + css(found.y),
      height: box.height,
    };
  }

  it("spreads the graph over a phone's canvas with no label over another, and a tap shows a Thing's panel", async () => {
    const page = await ui.open({ viewport: PHONE, touch: true });
    try {
      await page.locator(`[data-testid="graph"][data-rendered="${FLEET.length + 1}"]`).waitFor();
      // No Thing's disc and label over another's, as the renderer placed them.
      await page.locator('[data-testid="graph"][data-label-overlaps="0"]').waitFor();
      // The nodes reach from near the top of the tall canvas to near its bottom, not a square
      // band across its middle (they spanned 48% of its height, fitted to its width).
      const nodes = await colourOnCanvas(page);
      expect(
        (nodes.bottom - nodes.top) / nodes.height,
        "the nodes' share of the canvas's height",
      ).toBeGreaterThan(0.7);
      // One finger on the canvas scrolls the page (two move the graph): it takes most of the window.
      await expect(
        page.evaluate<string>(
          `getComputedStyle(document.querySelector('[data-testid="graph"] .sigma-mouse')).touchAction`,
        ),
      ).resolves.not.toBe("none");

      // A tap on the espresso machine (the one Thing of its type's colour) chooses it, and its
      // panel says what it is, its link and the way to its page; the page stays the graph.
      const colour = await page.evaluate<string>(
        `getComputedStyle(document.querySelector('button[data-type="saref:Appliance"] .swatch')).backgroundColor`,
      );
      const machine = await colourOnCanvas(page, colour);
      const canvasTop = () =>
        page.evaluate<number>(
          `document.querySelector('[data-testid="graph"]').getBoundingClientRect().top + scrollY`,
        );
      const before = await canvasTop();
      await page.touchscreen.tap(machine.x, machine.y);
      const panel = page.getByTestId("graph-panel");
      await panel.getByRole("heading", { name: "Espresso machine" }).waitFor();
      // The canvas stayed put under the finger: the line saying which Thing is chosen had room.
      expect(await canvasTop()).toBe(before);
      expect(await page.getByTestId("graph").getAttribute("data-selected")).toBe(ID("machine"));
      await expect(panel.textContent()).resolves.toContain("saref:Appliance");
      await expect(panel.getByRole("link", { name: "Core switch" }).getAttribute("href")).resolves.toBe(
        `#/thing/${encodeURIComponent(ID("switch"))}`,
      );
      const box = await panel.boundingBox();
      expect((box?.x ?? 0) + (box?.width ?? Infinity)).toBeLessThanOrEqual(PHONE.width);
      expect(new URL(page.url()).hash).toBe("#/");
      if (screenshots !== undefined)
        await page.screenshot({ path: join(screenshots, "graph-phone.png"), fullPage: true });
      // Its panel opens its page.
      await panel.getByRole("link", { name: "Open its page" }).tap();
      await page.getByRole("heading", { level: 1, name: "Espresso machine" }).waitFor();
    } finally {
      await page.context().close();
    }
  });

  it("spreads the graph again over its new shape when the phone is turned, the Thing chosen kept", async () => {
    const page = await ui.open({ viewport: PHONE, touch: true });
    try {
      const graph = page.getByTestId("graph");
      await page.locator(`[data-testid="graph"][data-rendered="${FLEET.length + 1}"]`).waitFor();
      await page.locator('[data-testid="graph"][data-label-overlaps="0"]').waitFor();
      const tall = await graph.getAttribute("data-spread-for");
      // A Thing chosen from the list, as the keyboard or a tap does.
      await page.getByText("The Things as a list, with their links").click();
      await page.locator(`li[data-thing="${ID("machine")}"] > a`).focus();
      await page.locator(`[data-testid="graph"][data-selected="${ID("machine")}"]`).waitFor();
      await page.getByText("The Things as a list, with their links").click();
      // Turned: the canvas is wider than tall now.
      await page.setViewportSize({ width: PHONE.height, height: PHONE.width });
      await page.locator(`[data-testid="graph"]:not([data-spread-for="${tall}"])`).waitFor();
      const [width, height] = ((await graph.getAttribute("data-spread-for")) ?? "0x0").split("x").map(Number);
      expect(width).toBeGreaterThan(height ?? Infinity);
      await page.locator('[data-testid="graph"][data-label-overlaps="0"]').waitFor();
      // The nodes reach across the wide canvas (its right part holds their labels), not a tall
      // band in its middle: they spanned 31% of its width, still laid out for the tall one.
      const box = await graph.boundingBox();
      const nodes = await colourOnCanvas(page);
      expect(
        (nodes.right - nodes.left) / (box?.width ?? Infinity),
        "the nodes' share of its width",
      ).toBeGreaterThan(0.5);
      // The Thing chosen is still chosen, and its panel still says which.
      expect(await graph.getAttribute("data-selected")).toBe(ID("machine"));
      await page.getByTestId("graph-panel").getByRole("heading", { name: "Espresso machine" }).waitFor();
      // Turned back: the same layout as it was first drawn there.
      await page.setViewportSize(PHONE);
      await page.locator(`[data-testid="graph"][data-spread-for="${tall}"]`).waitFor();
      await page.locator('[data-testid="graph"][data-label-overlaps="0"]').waitFor();
    } finally {
      await page.context().close();
    }
  });

  it("keeps the user's zoom when a window resized spreads the graph again", async () => {
    const page = await ui.open({ viewport: { width: 1280, height: 860 } });
    try {
      const graph = page.getByTestId("graph");
      await page.locator(`[data-testid="graph"][data-rendered="${FLEET.length + 1}"]`).waitFor();
      const wide = await graph.getAttribute("data-spread-for");
      // Zoomed in with the wheel over the middle of the graph, until the camera comes to rest.
      const box = await graph.boundingBox();
      if (box === null) throw new Error("no graph");
      await page.mouse.move(box.x + box.width / 2, box.y + box.height / 2);
      await page.mouse.wheel(0, -600);
      const settled = () =>
        page.waitForFunction(
          `new Promise((resolve) => {
            const zoom = () => document.querySelector('[data-testid="graph"]').dataset.zoom;
            const before = zoom();
            setTimeout(() => resolve(before !== "1.000" && zoom() === before), 500);
          })`,
        );
      await settled();
      const zoom = Number(await graph.getAttribute("data-zoom"));
      expect(zoom).toBeLessThan(1);
      // Narrower: spread again over the new shape, and still zoomed as the user left it.
      await page.setViewportSize({ width: 900, height: 860 });
      await page.locator(`[data-testid="graph"]:not([data-spread-for="${wide}"])`).waitFor();
      await settled();
      expect(Number(await graph.getAttribute("data-zoom"))).toBeCloseTo(zoom, 2);
    } finally {
      await page.context().close();
    }
  });

  /**
   * Where the tables matching `selector` break out of a phone's window: a table that scrolls
   * sideways in its box, a cell past the window's right edge; and the page's own width.
   */
  async function outOfWindow(page: Page, selector: string): Promise<{ page: number; broken: string[] }> {
    return page.evaluate<{ page: number; broken: string[] }>(`(() => {
      const broken = [];
      for (const table of document.querySelectorAll(${JSON.stringify(selector)})) {
        const name = table.dataset.testid ?? table.querySelector("caption")?.textContent ?? "a table";
        if (table.scrollWidth > table.clientWidth + 1)
          broken.push(name + " scrolls: " + table.scrollWidth + " px in " + table.clientWidth);
        for (const cell of table.querySelectorAll("tbody th, tbody td")) {
          const box = cell.getBoundingClientRect();
          if (box.width > 0 && box.right > innerWidth + 1)
            broken.push(name + ": " + cell.textContent + " ends at " + Math.round(box.right) + " px");
        }
      }
      return { page: document.scrollingElement.scrollWidth, broken };
    })()`);
  }

  it("shows a diff's rows and the releases view's as cards on a phone: nothing scrolls sideways, every cell named", async () => {
    const query = new URLSearchParams({ from: "-1h", to: "now" }).toString();
    const page = await ui.open({
      viewport: PHONE,
      touch: true,
      hash: `#/time/${encodeURIComponent(BOILER)}?${query}`,
    });
    try {
      const after = page.locator(
        '[data-testid="diff"] table.diff:not([data-testid]) tr[data-affordance="setpoint"] td.after',
      );
      await after.waitFor();
      for (const section of ["diff-writes", "diff-reachability", "diff-drift", "diff-links"])
        await page.getByTestId(section).waitFor();
      const diff = await outOfWindow(page, '[data-testid="diff"] table');
      expect(diff.broken).toEqual([]);
      expect(diff.page).toBeLessThanOrEqual(PHONE.width);
      // A value has the card's width, with its column's heading before it, not a column of a
      // few letters in a box that scrolls.
      await expect(after.textContent()).resolves.toBe("90 °C");
      await expect(after.getAttribute("data-label")).resolves.toBe("after");
      expect((await after.boundingBox())?.width ?? 0).toBeGreaterThan(250);
      const asked = page.locator(
        '[data-testid="diff"] table.diff:not([data-testid]) tr[data-affordance="setpoint"] td.asked',
      );
      await expect(asked.textContent()).resolves.toMatch(/^asked for 90 °C by operator@example.org at /);

      await page.goto(`${ui.hub.url}/#/releases`);
      await page.locator('[data-testid="drift"] tbody tr').waitFor();
      await page.locator('[data-testid="releases"] tbody tr').waitFor();
      const releases = await outOfWindow(page, "table");
      expect(releases.broken).toEqual([]);
      expect(releases.page).toBeLessThanOrEqual(PHONE.width);
      const observed = page.locator('[data-testid="drift"] td.observed');
      await expect(observed.getAttribute("data-label")).resolves.toBe("Observed");
      await expect(observed.textContent()).resolves.toBe("90");
    } finally {
      await page.context().close();
    }
  });

  it("gives each of the Changes view's filters room for its whole hint on a phone, two to a row", async () => {
    const page = await ui.open({ viewport: PHONE, touch: true, hash: "#/changes" });
    try {
      // Folded on a phone: opened first.
      await page.getByRole("button", { name: "Filters", exact: true }).click();
      await page.locator("form.filters button").waitFor();
      // Each field's hint (its placeholder) measured in the field's font, against the room inside it.
      const fields = await page.evaluate<
        Array<{ hint: string; text: number; room: number; left: number; right: number }>
      >(`(() => {
        const context = document.createElement("canvas").getContext("2d");
        return [...document.querySelectorAll("form.filters input[placeholder]")].map((input) => {
          const style = getComputedStyle(input);
          context.font = style.font;
          const box = input.getBoundingClientRect();
          const room = input.clientWidth - parseFloat(style.paddingLeft) - parseFloat(style.paddingRight);
          return { hint: input.placeholder, text: context.measureText(input.placeholder).width, room, left: box.left, right: box.right };
        });
      })()`);
      expect(fields.length).toBeGreaterThanOrEqual(6);
      for (const field of fields) {
        expect(field.text, `"${field.hint}" in ${Math.round(field.room)} px`).toBeLessThanOrEqual(field.room);
        expect(field.right, field.hint).toBeLessThanOrEqual(PHONE.width);
      }
      // Two to a row: the fields that are no time start at two places across the window.
      const lefts = new Set(
        fields.filter((field) => field.hint !== "now").map((field) => Math.round(field.left)),
      );
      expect(lefts.size).toBe(2);
      expect(await page.evaluate<number>("document.scrollingElement.scrollWidth")).toBeLessThanOrEqual(
        PHONE.width,
      );
    } finally {
      await page.context().close();
    }
  });
  it("folds the Changes view's filters behind one button on a phone, saying how many are active, opened by the keyboard too", async () => {
    const query = new URLSearchParams({ thing: BOILER, kind: "reported", since: "-1h" }).toString();
    const page = await ui.open({ viewport: PHONE, touch: true, hash: `#/changes?${query}` });
    try {
      const fold = page.getByRole("button", { name: "Filters (2 active)" });
      const thing = page.getByLabel("Thing", { exact: true });
      await page.locator("tr.change").first().waitFor();
      await expect(fold.getAttribute("aria-expanded")).resolves.toBe("false");
      await expect(thing.isVisible()).resolves.toBe(false);
      // The rows start on the first screen, under the button, not below a screen of fields.
      const first = await page.locator("tr.change").first().boundingBox();
      expect(first?.y ?? Infinity).toBeLessThan(PHONE.height / 2);
      // Enter opens it and Space closes it again, the fields kept as the address has them.
      await fold.focus();
      await page.keyboard.press("Enter");
      await expect(fold.getAttribute("aria-expanded")).resolves.toBe("true");
      await thing.waitFor();
      await expect(thing.inputValue()).resolves.toBe(BOILER);
      await page.keyboard.press("Space");
      await thing.waitFor({ state: "hidden" });
      await expect(fold.getAttribute("aria-expanded")).resolves.toBe("false");
      // Filtered again from the form, folded again over the rows, with the new count.
      await fold.click();
      await page.getByLabel("Actor", { exact: true }).fill("hub:observer");
      await page.getByRole("button", { name: "Filter", exact: true }).click();
      await page.getByRole("button", { name: "Filters (3 active)" }).waitFor();
      await expect(thing.isVisible()).resolves.toBe(false);
    } finally {
      await page.context().close();
    }
    // On a laptop nothing is folded: no button, the fields in view.
    const laptop = await ui.open({ viewport: { width: 1280, height: 800 }, hash: `#/changes?${query}` });
    try {
      await laptop.getByLabel("Thing", { exact: true }).waitFor();
      await expect(laptop.locator("button.filters-toggle").isVisible()).resolves.toBe(false);
    } finally {
      await laptop.context().close();
    }
  });
});
