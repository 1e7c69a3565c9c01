// Finding one's way in the web UI, in Chromium (playwright-core) against a real hub: the graph's
// canvas by the keyboard alone (the arrow keys choose the nearest Thing that way, Enter opens it),
// time fields that show the whole of a time written to the millisecond with its offset, and links
// that name Things by title, not by id; a Thing's page says which Things link to it, and shows a
// property's JSON value as wide as a phone's window.
import type { Page } from "playwright-core";
import { expect, it } from "vitest";
import { InteractionClient } from "../src/client/index.js";
import { graphOfSummary, layoutOf } from "../ui/src/thing-graph.js";
import { describeInBrowser, useBrowserAndHub } from "./support/ui-browser.js";
import { minimalTd, putTd, startTestHub } from "./support/test-hub.js";

// Bounds on waiting for what the page shows: generous, as ui.test.ts, for a loaded shared machine.
const SHOWN_MS = 60_000;
/** An RFC 3339 time as long as they come: milliseconds and an offset. */
const LONG_TIME = "2026-12-07T08:15:30.123+01:00";
const MACHINE = "urn:test:wayfinding:machine-1";
const GRINDER = "urn:test:wayfinding:machine-2";
const PROBE = "urn:test:wayfinding:probe";
const NOWHERE = "urn:test:wayfinding:nowhere";
const PORTS = Object.fromEntries(
  Array.from({ length: 8 }, (_, i) => [
    String(i + 1),
    { enabled: true, link: i === 6 ? "down" : "up", speed: 1000 },
  ]),
);
const SAREF = ["https://www.w3.org/2022/wot/td/v1.1", { saref: "https://saref.etsi.org/core/" }];

describeInBrowser("finding one's way in the web UI", { timeout: 4 * SHOWN_MS }, () => {
  const ui = useBrowserAndHub(async () => {
    const hub = await startTestHub();
    // Two types: two appliances on one disc, a probe on the other (the layout of thing-graph.ts).
    for (const [id, title, type, links] of [
      [MACHINE, "Espresso machine", "saref:Appliance", []],
      [
        GRINDER,
        "Grinder",
        "saref:Appliance",
        [
          { rel: "partOf", href: MACHINE },
          // No Thing has this id: the link shows it as it is.
          { rel: "near", href: NOWHERE },
        ],
      ],
      [PROBE, "Boiler probe", "saref:TemperatureSensor", [{ rel: "partOf", href: MACHINE }]],
    ] as const)
      await putTd(
        hub,
        minimalTd({
          "@context": SAREF,
          "@type": type,
          id,
          title,
          links,
          properties: {
            // An object, as a switch's ports are: long JSON without a space to wrap at.
            ports: { type: "object", readOnly: true, forms: [{ href: "http://127.0.0.1:9/ports" }] },
          },
        }),
      );
    await hub.hub.ingest(GRINDER, [{ kind: "reported", affordance: "ports", value: PORTS }], {
      actor: "test",
      via: "test",
    });
    return hub;
  }, SHOWN_MS);

  /** The Things as the graph lays them out: graph coordinates, y up (sigma draws y up on the screen). */
  async function layout(): Promise<Array<{ id: string; title: string; x: number; y: number }>> {
    const summary = await new InteractionClient({ url: ui.hub.url, token: ui.hub.token }).graphSummary();
    const { nodes } = graphOfSummary(summary);
    const positions = layoutOf(nodes);
    return nodes.map((node) => ({
      id: node.id,
      title: node.title,
      ...(positions.get(node.id) ?? { x: 0, y: 0 }),
    }));
  }

  async function press(page: Page, key: string, says: string): Promise<void> {
    await page.keyboard.press(key);
    await page.getByRole("status").filter({ hasText: says }).waitFor();
  }

  it("moves a selection over the graph's canvas with the arrow keys, says which, and opens it with Enter", async () => {
    const things = await layout();
    const byX = [...things].sort((a, b) => a.x - b.x);
    const [left, middle, right] = byX;
    if (left === undefined || middle === undefined || right === undefined) throw new Error("three Things");
    const page = await ui.open();
    try {
      const canvas = page.getByTestId("graph");
      await page.locator('[data-testid="graph"][data-rendered="3"]').waitFor();
      await canvas.focus();
      // As far left as it goes: the leftmost Thing, and then nothing further.
      for (let i = 0; i < 3; i++) await page.keyboard.press("ArrowLeft");
      await press(page, "ArrowLeft", `No Thing to the left of ${left.title}`);
      expect(await canvas.getAttribute("data-selected")).toBe(left.id);
      await expect(
        page.getByRole("status").filter({ hasText: "Selected:" }).textContent(),
      ).resolves.toContain(`Selected: ${left.title} (`);
      // Right: the nearest that way, then the next, then nothing further.
      await press(page, "ArrowRight", `Selected: ${middle.title} (`);
      expect(await canvas.getAttribute("data-selected")).toBe(middle.id);
      await press(page, "ArrowRight", `Selected: ${right.title} (`);
      await press(page, "ArrowRight", `No Thing to the right of ${right.title}`);
      // Up or down, whichever way the middle one is from the right one: back to it; the other way, none.
      const [toward, away, word] =
        middle.y > right.y ? ["ArrowUp", "ArrowDown", "below"] : ["ArrowDown", "ArrowUp", "above"];
      await press(page, away, `No Thing ${word} ${right.title}`);
      await press(page, toward, `Selected: ${middle.title} (`);
      // Enter opens the Thing chosen.
      await page.keyboard.press("Enter");
      await page.getByRole("heading", { level: 1, name: middle.title }).waitFor();
      expect(decodeURIComponent(new URL(page.url()).hash)).toBe(`#/thing/${middle.id}`);
    } finally {
      await page.context().close();
    }
  });

  it("marks in the graph's list the Thing chosen on the canvas, and chooses on the canvas the Thing reached in the list", async () => {
    const things = await layout();
    const [left, middle, right] = [...things].sort((a, b) => a.x - b.x);
    if (left === undefined || middle === undefined || right === undefined) throw new Error("three Things");
    const page = await ui.open();
    try {
      const canvas = page.getByTestId("graph");
      await page.locator('[data-testid="graph"][data-rendered="3"]').waitFor();
      await page.getByText("The Things as a list, with their links").click();
      const list = page.getByTestId("graph-list");
      await list.locator(`li[data-thing="${right.id}"]`).waitFor();
      /** The list's items marked as the current one: only the Thing the canvas has chosen. */
      const marked = () =>
        list
          .locator('li[aria-current="true"]')
          .evaluateAll((items: Array<{ getAttribute(name: string): string | null }>) =>
            items.map((item) => item.getAttribute("data-thing")),
          );
      await canvas.focus();
      for (let i = 0; i < 3; i++) await page.keyboard.press("ArrowLeft");
      await press(page, "ArrowLeft", `No Thing to the left of ${left.title}`);
      await expect(marked()).resolves.toEqual([left.id]);
      await press(page, "ArrowRight", `Selected: ${middle.title} (`);
      await expect(marked()).resolves.toEqual([middle.id]);
      // The other way: the right one's link reached in the list is the canvas's choice.
      await list.locator(`li[data-thing="${right.id}"] > a`).focus();
      await page
        .getByRole("status")
        .filter({ hasText: `Selected: ${right.title} (` })
        .waitFor();
      expect(await canvas.getAttribute("data-selected")).toBe(right.id);
      await expect(marked()).resolves.toEqual([right.id]);
      // And the arrows go on from there on the canvas.
      await canvas.focus();
      await page.keyboard.press("ArrowLeft");
      await page.locator(`[data-testid="graph"][data-selected]:not([data-selected="${right.id}"])`).waitFor();
      await expect(marked()).resolves.toEqual([await canvas.getAttribute("data-selected")]);
    } finally {
      await page.context().close();
    }
  });

  it("shows the whole of a time to the millisecond with its offset in every time field, on a laptop and a phone", async () => {
    const views: Array<[hash: string, fields: string[]]> = [
      ["#/changes", ["Since", "Until"]],
      [`#/time/${encodeURIComponent(MACHINE)}`, ["At", "From", "To"]],
    ];
    for (const viewport of [
      { width: 1280, height: 720 },
      { width: 390, height: 844 },
    ]) {
      const page = await ui.open({ viewport, hash: "#/log" });
      try {
        for (const [hash, fields] of views) {
          await page.evaluate(`location.hash = ${JSON.stringify(hash)}`);
          // On a phone the Changes view's filters are folded behind one button: opened first.
          if (hash === "#/changes" && viewport.width < 760)
            await page.getByRole("button", { name: "Filters", exact: true }).click();
          for (const label of fields) {
            const field = page.getByLabel(label, { exact: true });
            await field.fill(LONG_TIME);
            // Text wider than its box scrolls inside it: scrollWidth grows past clientWidth.
            const [scroll, client] = await field.evaluate(
              (input: { scrollWidth: number; clientWidth: number }) => [input.scrollWidth, input.clientWidth],
            );
            expect(
              scroll,
              `${label} in ${hash} at ${viewport.width} px: ${scroll} px of text in ${client} px`,
            ).toBeLessThanOrEqual(client);
          }
          // And the page no wider than the window for it.
          expect(
            await page.evaluate<number>("document.documentElement.scrollWidth"),
            hash,
          ).toBeLessThanOrEqual(viewport.width);
        }
      } finally {
        await page.context().close();
      }
    }
  });

  it("names Things by title in links, with the id as the tooltip: the graph, the Changes view, a Thing's links", async () => {
    const page = await ui.open();
    try {
      const titled = (scope: ReturnType<Page["locator"]>, title: string, id: string) =>
        scope
          .locator(`a[title=${JSON.stringify(id)}]`, { hasText: title })
          .first()
          .waitFor();
      // The graph's list of Things and their links.
      await page.locator('[data-testid="graph"][data-rendered="3"]').waitFor();
      await page.getByText("The Things as a list, with their links").click();
      const list = page.getByTestId("graph-list");
      await titled(list.locator(`li[data-thing="${GRINDER}"]`), "Espresso machine", MACHINE);
      await titled(list, "Boiler probe", PROBE);

      // A Thing's links: another Thing by its title; an id no Thing has, as it is.
      await page.evaluate(`location.hash = ${JSON.stringify(`#/thing/${encodeURIComponent(GRINDER)}`)}`);
      const links = page.locator("ul.links");
      await titled(links, "Espresso machine", MACHINE);
      expect(await links.locator("li", { hasText: "partOf" }).textContent()).toBe(
        "partOf → Espresso machine",
      );
      expect(await links.locator("li", { hasText: "near" }).textContent()).toBe(`near → ${NOWHERE}`);

      // The Changes view: more Things than are asked for one by one (the graph's summary then).
      for (let i = 1; i <= 7; i++)
        await putTd(ui.hub, minimalTd({ id: `urn:test:wayfinding:lamp-${i}`, title: `Lamp ${i}` }));
      await page.evaluate('location.hash = "#/changes"');
      const rows = page.locator("table.changes tbody");
      await rows.locator("tr.change").first().waitFor();
      for (const [title, id] of [
        ["Espresso machine", MACHINE],
        ["Grinder", GRINDER],
        ["Boiler probe", PROBE],
        ["Lamp 7", "urn:test:wayfinding:lamp-7"],
      ] as const)
        await titled(rows.locator("td.thing"), title, id);
      // A Thing registered while the view is open: its live row names it too.
      await putTd(ui.hub, minimalTd({ id: "urn:test:wayfinding:kettle", title: "Kettle" }));
      await titled(rows.locator("td.thing"), "Kettle", "urn:test:wayfinding:kettle");
      expect(await rows.locator("td.thing a", { hasText: "urn:" }).count()).toBe(0);
    } finally {
      await page.context().close();
    }
  });

  it("lists on a Thing's page the Things that link to it, by title, as well as its own links", async () => {
    const page = await ui.open({ hash: `#/thing/${encodeURIComponent(MACHINE)}` });
    try {
      // The machine links to nothing; the grinder and the probe are part of it.
      const into = page.getByRole("list", { name: "Links to it" });
      await into.locator(`a[title=${JSON.stringify(PROBE)}]`).waitFor();
      expect((await into.locator("li").allTextContents()).sort()).toEqual([
        "← partOf of Boiler probe",
        "← partOf of Grinder",
      ]);
      await into.getByRole("link", { name: "Grinder" }).click();
      await page.getByRole("heading", { level: 1, name: "Grinder" }).waitFor();
      // The grinder's own links; nothing links to it, and no empty list says otherwise.
      await page
        .getByRole("list", { name: "Its links" })
        .locator(`a[title=${JSON.stringify(MACHINE)}]`)
        .waitFor();
      expect(await page.getByRole("list", { name: "Links to it" }).count()).toBe(0);
    } finally {
      await page.context().close();
    }
  });

  it("names the Thing and the Things its links point at by title in the time view", async () => {
    const page = await ui.open({
      hash: `#/time/${encodeURIComponent(GRINDER)}?from=${encodeURIComponent("2000-01-01T00:00:00Z")}`,
    });
    try {
      await page
        .getByRole("heading", { level: 1 })
        .locator(`a[title="${GRINDER}"]`, { hasText: "Grinder" })
        .waitFor();
      // Registered with its links in between: both added, the one to a Thing by its title.
      const added = page.getByTestId("diff-links").locator("tr.link-added");
      await added.locator(`a[title="${MACHINE}"]`, { hasText: "Espresso machine" }).waitFor();
      expect((await added.locator("td").allTextContents()).sort()).toEqual(
        ["Espresso machine", NOWHERE, "near", "partOf"].sort(),
      );
      // The caption's last link Change names its target as the rows do: a link, by title if it has one.
      const caption = page.getByTestId("diff-links").locator("caption");
      expect(await caption.locator("a[data-thing-id]").count()).toBe(1);
      expect(await caption.textContent()).toMatch(
        /^Links: 2 linked; last linked (partOf Espresso machine|near urn:test:wayfinding:nowhere) by /,
      );
    } finally {
      await page.context().close();
    }
  });

  it("shows a property's JSON value as wide as a phone's window, under its name and time", async () => {
    const phone = { width: 390, height: 844 };
    const page = await ui.open({ viewport: phone, hash: `#/thing/${encodeURIComponent(GRINDER)}` });
    try {
      const value = page.locator('td.value[data-property="ports"]');
      await value.filter({ hasText: '"speed":1000' }).waitFor();
      const [cell, name] = await Promise.all([
        value.boundingBox(),
        page.locator("table.properties th", { hasText: "ports" }).boundingBox(),
      ]);
      // Most of the window's width (it has 366 px inside the page's margins), below the name.
      expect(cell?.width ?? 0).toBeGreaterThan(300);
      expect(cell?.y ?? 0).toBeGreaterThanOrEqual((name?.y ?? 0) + (name?.height ?? 0) - 1);
      expect(await page.evaluate<number>("document.documentElement.scrollWidth")).toBeLessThanOrEqual(
        phone.width,
      );
    } finally {
      await page.context().close();
    }
  });

  it("finds a Thing's Changes by its title typed in the Changes view's Thing field, offering the Things by title", async () => {
    const page = await ui.open({ hash: "#/changes" });
    try {
      const field = page.getByLabel("Thing", { exact: true });
      await field.focus();
      // Offered: each Thing's id, labelled with its title.
      await page.locator(`datalist#change-things option[value="${GRINDER}"][label="Grinder"]`).waitFor({
        state: "attached",
      });
      await field.fill("grinder");
      await page.getByRole("button", { name: "Filter" }).click();
      await page.waitForFunction(
        `new URLSearchParams(location.hash.split("?")[1]).get("thing") === ${JSON.stringify(GRINDER)}`,
      );
      await expect(field.inputValue()).resolves.toBe(GRINDER);
      await page.locator("tr.change").first().waitFor();
      const things = await page
        .locator("tr.change td.thing a")
        .evaluateAll((links: Array<{ getAttribute(name: string): string | null }>) =>
          links.map((link) => link.getAttribute("data-thing-id")),
        );
      expect(new Set(things)).toEqual(new Set([GRINDER]));
    } finally {
      await page.context().close();
    }
  });

  it("frames the graph so that the labels of the Things at its edges are drawn whole, on a laptop and a phone", async () => {
    for (const viewport of [
      { width: 1280, height: 720 },
      { width: 390, height: 844 },
    ]) {
      const page = await ui.open({ viewport });
      try {
        const graph = page.getByTestId("graph");
        // However many Things the tests before have registered by now: each label whole.
        await page.locator('[data-testid="graph"][data-rendered]').waitFor();
        // Labels are black; nodes are coloured and links light grey: a dark pixel in the columns
        // along the canvas's left and right edges is a label cut by the edge.
        const png = (await graph.screenshot()).toString("base64");
        const cut = await page.evaluate<number>(`(async () => {
          const image = new Image();
          image.src = "data:image/png;base64,${png}";
          await image.decode();
          const canvas = document.createElement("canvas");
          canvas.width = image.width;
          canvas.height = image.height;
          const context = canvas.getContext("2d");
          context.drawImage(image, 0, 0);
          const { data, width, height } = context.getImageData(0, 0, canvas.width, canvas.height);
          let dark = 0;
          for (let y = 0; y < height; y++)
            for (const x of [2, 3, 4, 5, 6, width - 7, width - 6, width - 5, width - 4, width - 3]) {
              const i = (y * width + x) * 4;
              if (data[i] < 100 && data[i + 1] < 100 && data[i + 2] < 100) dark++;
            }
          return dark;
        })()`);
        expect(cut, `dark pixels along the edges at ${viewport.width} px`).toBe(0);
      } finally {
        await page.context().close();
      }
    }
  });

  it("says how to make a release and a rollout where there is none, the commands as code, not in backticks", async () => {
    const page = await ui.open({ hash: "#/releases" });
    try {
      for (const [id, command] of [
        ["rollouts", "things rollout"],
        ["releases", "things build"],
      ] as const) {
        const empty = page.getByTestId(id);
        await empty.locator("code").waitFor();
        expect(await empty.locator("code").textContent()).toBe(command);
        expect(await empty.textContent()).not.toContain("`");
      }
    } finally {
      await page.context().close();
    }
  });

  // Last: it registers more Things, which the graph's tests above do not expect.
  it("asks for the graph's summary once in the Changes view, for the rows' titles and the Thing field's list", async () => {
    // More Things than are asked for one by one: their titles come from the summary.
    for (let i = 1; i <= 9; i++)
      await putTd(ui.hub, minimalTd({ id: `urn:test:wayfinding:lamp-${i}`, title: `Lamp ${i}` }));
    // Signed in on a view that asks for no summary.
    const page = await ui.open({ hash: "#/log" });
    try {
      const asked: string[] = [];
      page.on("request", (request) => {
        if (new URL(request.url()).pathname === "/graph/summary") asked.push(request.url());
      });
      await page.goto(`${ui.hub.url}/#/changes`);
      await page.locator("tr.change td.thing").getByRole("link", { name: "Lamp 9", exact: true }).waitFor();
      await page.getByLabel("Thing", { exact: true }).focus();
      await page
        .locator('datalist#change-things option[value="urn:test:wayfinding:lamp-9"][label="Lamp 9"]')
        .waitFor({ state: "attached" });
      expect(asked).toHaveLength(1);
    } finally {
      await page.context().close();
    }
  });
});
