// The web UI in a real browser: Debian's Chromium driven by playwright-core against a real hub
// that observes the simulated fleet (src/sim). Sign in (and a wrong token), the graph, the espresso
// machine's page with live values, forms, a chart and the timeline, the change feed, the diff, the
// Log, and an unreachable Thing. With HYPERTHINGS_UI_SCREENSHOTS=<folder> it also saves screenshots
// of the main views there (`npm run screenshots` puts them in docs/img).
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { BrowserContext, ConsoleMessage, Page } from "playwright-core";
import { afterAll, beforeAll, expect, it } from "vitest";
import { InteractionClient } from "../src/client/index.js";
import type { ThingDescription } from "../src/core/index.js";
import { EspressoMachine, Fleet, simThingId } from "../src/sim/index.js";
import { changeAfter, minimalTd, startTestHub, type TestHub } from "./support/test-hub.js";
import { runThingsToEnd } from "./support/things-process.js";
import { describeInBrowser, launchPersistentChromium } from "./support/ui-browser.js";

const screenshots = process.env.HYPERTHINGS_UI_SCREENSHOTS;
const ESPRESSO = simThingId("espresso-machine");
// Playwright's waits are bounded: a UI that never shows what it should fails the test.
const SHOWN_MS = 60_000;

async function lastSeq(hub: TestHub): Promise<number> {
  return ((await (await hub.request("/health")).json()) as { lastSeq: number }).lastSeq;
}

/** The change rows of the page are newest first. */
async function expectNewestFirst(page: Page): Promise<void> {
  const rows = await page.locator("tr.change").all();
  const seqs = await Promise.all(rows.map(async (row) => Number(await row.getAttribute("data-seq"))));
  expect(seqs).toEqual([...seqs].sort((a, b) => b - a));
}

async function capture(page: Page, name: string): Promise<void> {
  if (screenshots !== undefined)
    await page.screenshot({ path: join(screenshots, `${name}.png`), fullPage: true });
}

// Each step waits for what the page shows (bounded by SHOWN_MS): a loaded machine is slow, not wrong.
describeInBrowser("the web UI in a browser", { timeout: 2 * SHOWN_MS }, () => {
  let hub: TestHub;
  let fleet: Fleet;
  let things: number;
  /** When the hub started, in seconds: the charts' readings are all after it. */
  let started: number;
  let context: BrowserContext;
  let page: Page;
  let userData: string;
  /** The hub's data, kept when it is restarted on it (the restarted hub does not remove it). */
  let firstDataDir: string | undefined;
  const problems: string[] = [];

  beforeAll(async () => {
    started = Date.now() / 1000;
    // The HTTP fleet without the MQTT sensors; simulated time runs 20× so the boiler moves.
    fleet = await Fleet.start({ kinds: ["espresso", "switch", "containers", "service"], speed: 20 });
    // Reconnection after 20 ms, at most 200 ms apart: the unreachable Thing is noticed at once.
    hub = await startTestHub({ observe: true, reconnectMs: 20, maxReconnectMs: 200 });
    const client = new InteractionClient({ url: hub.url, token: hub.token });
    const descriptions = fleet.descriptions();
    for (const td of descriptions) await client.put(td);
    things = descriptions.length;
    userData = mkdtempSync(join(tmpdir(), "hyperthings-chromium-"));
    context = await launchPersistentChromium(userData, { width: 1280, height: 860 });
    page = context.pages()[0] ?? (await context.newPage());
    page.setDefaultTimeout(SHOWN_MS);
    page.on("pageerror", (err) => problems.push(err.message));
  }, 2 * SHOWN_MS);

  afterAll(async () => {
    await context?.close();
    await hub?.stop();
    if (firstDataDir !== undefined) rmSync(firstDataDir, { recursive: true, force: true });
    await fleet?.close();
    if (userData !== undefined) rmSync(userData, { recursive: true, force: true });
  });

  it("refuses a wrong token with a message in the page", async () => {
    await page.goto(`${hub.url}/`);
    await page.getByLabel("Token").fill("not-the-token");
    await page.getByRole("button", { name: "Sign in" }).click();
    await expect(page.getByRole("alert").textContent()).resolves.toContain(
      "The token was refused by the hub",
    );
    expect(await page.evaluate('sessionStorage.getItem("hyperthings.token")')).toBeNull();
  });

  it("signs in and draws the graph of the Things and their links, with a legend", async () => {
    await page.getByLabel("Token").fill(hub.token);
    await page.getByRole("button", { name: "Sign in" }).click();
    await page.locator(`[data-testid="graph"][data-rendered="${things}"]`).waitFor();
    const status = await page.locator("main > p").first().textContent();
    expect(status).toMatch(new RegExp(`^${things} Things, [1-9][0-9]* links`));
    const legend = await page.getByLabel("Legend").textContent();
    expect(legend).toContain("saref:Appliance (1)");
    await page.locator('[data-testid="live"][data-state="open"]').waitFor();
    await capture(page, "graph");
  });

  it("hides a type's Things when its legend entry is switched off, with the mouse or the keyboard", async () => {
    const appliance = page.getByRole("button", { name: "saref:Appliance (1)" });
    await appliance.click();
    expect(await appliance.getAttribute("aria-pressed")).toBe("false");
    await page.locator(`[data-testid="graph"][data-shown="${things - 1}"]`).waitFor();
    await expect(page.locator("main > p").first().textContent()).resolves.toContain(
      `; ${things - 1} shown (the types switched off in the legend are hidden)`,
    );
    await appliance.focus();
    await page.keyboard.press("Enter");
    expect(await appliance.getAttribute("aria-pressed")).toBe("true");
    await page.locator(`[data-testid="graph"][data-shown="${things}"]`).waitFor();
  });

  it("follows Things registered, changed and removed while the graph is shown", async () => {
    const id = "urn:test:ui:graph-newcomer";
    const client = new InteractionClient({ url: hub.url, token: hub.token });
    const switchOff = page.getByRole("button", { name: "saref:Appliance (1)" });
    await switchOff.click(); // a type switched off stays off as the graph changes
    await client.put(
      minimalTd({
        id,
        "@context": ["https://www.w3.org/2022/wot/td/v1.1", { saref: "https://saref.etsi.org/core/" }],
        "@type": "saref:Meter",
        title: "Newcomer gauge",
        links: [{ rel: "controlledBy", href: ESPRESSO }],
      }) as ThingDescription,
    );
    await page.locator(`[data-testid="graph"][data-rendered="${things + 1}"]`).waitFor();
    await page.getByRole("button", { name: "saref:Meter (1)" }).waitFor();
    await expect(page.locator("main > p").first().textContent()).resolves.toContain(`${things + 1} Things`);
    expect(await switchOff.getAttribute("aria-pressed")).toBe("false");
    await page.locator(`[data-testid="graph"][data-shown="${things}"]`).waitFor();
    await page.getByLabel("Find a Thing").fill("newcomer");
    await page.getByRole("link", { name: "Newcomer gauge" }).waitFor();
    // A new title is found by search; the Thing's removal takes its node and its type away.
    await client.put(
      minimalTd({
        id,
        "@context": ["https://www.w3.org/2022/wot/td/v1.1", { saref: "https://saref.etsi.org/core/" }],
        "@type": "saref:Meter",
        title: "Renamed gauge",
      }) as ThingDescription,
    );
    await page.getByLabel("Find a Thing").fill("renamed");
    await page.getByRole("link", { name: "Renamed gauge" }).waitFor();
    await client.remove(id);
    await page.locator(`[data-testid="graph"][data-rendered="${things}"]`).waitFor();
    await page.getByRole("button", { name: "saref:Meter (1)" }).waitFor({ state: "detached" });
    await page.getByLabel("Find a Thing").fill("");
    await switchOff.click();
    await page.locator(`[data-testid="graph"][data-shown="${things}"]`).waitFor();
    expect(problems).toEqual([]);
  });

  it("loads without an error in the browser's console", async () => {
    const errors: string[] = [];
    const listener = (message: ConsoleMessage) => {
      if (message.type() === "error") errors.push(message.text());
    };
    page.on("console", listener);
    await page.reload();
    await page.locator(`[data-testid="graph"][data-rendered="${things}"]`).waitFor();
    await page.locator('[data-testid="live"][data-state="open"]').waitFor();
    page.off("console", listener);
    expect(errors).toEqual([]);
    // The icon the page names is one the hub serves (the browser fetches it when it likes).
    const icon = await page.evaluate<string | undefined>('document.querySelector("link[rel=icon]")?.href');
    expect(icon).toBeDefined();
    expect((await fetch(icon ?? "")).status).toBe(200);
  });

  it("opens the first Thing found with Enter in the graph's search", async () => {
    await page.getByLabel("Find a Thing").fill("core sw");
    await page.getByLabel("Find a Thing").press("Enter");
    await page.locator(`main[data-rendered="${simThingId("switch-1")}"]`).waitFor();
    await page.goto(`${hub.url}/#/`);
    await page.locator(`[data-testid="graph"][data-rendered="${things}"]`).waitFor();
  });

  it("opens the espresso machine found in the graph and shows its live values", async () => {
    const measured = Number(await page.evaluate('performance.getEntriesByName("thing").length'));
    await page.getByLabel("Find a Thing").fill("espresso");
    await page.getByRole("link", { name: "Espresso machine" }).click();
    await page.locator(`main[data-rendered="${ESPRESSO}"]`).waitFor();
    await page.locator('td.value[data-property="setpoint"]', { hasText: "93" }).waitFor();
    const measures = await page.evaluate('performance.getEntriesByName("thing").length');
    expect(measures).toBe(measured + 1);
    // Each tab says which view it shows: several are open at once in an incident.
    expect(await page.title()).toBe(`${ESPRESSO} · Hyperthings`);
  });

  it("refuses a value that does not fit the schema before sending it", async () => {
    const before = await lastSeq(hub);
    const form = page.locator('form.write[data-property="setpoint"]');
    await form.getByLabel("setpoint").fill("120");
    await form.getByRole("button", { name: "Write" }).click();
    await expect(form.getByRole("alert").textContent()).resolves.toMatch(/Not sent: .*must be <= 98/);
    expect(fleet.thing(ESPRESSO, EspressoMachine).readProperty("setpoint")).toBe(93);
    const changes = await hub.request(`/changes?thing=${encodeURIComponent(ESPRESSO)}&kind=desired`);
    expect(((await changes.json()) as { changes: unknown[] }).changes).toEqual([]);
    expect(await lastSeq(hub)).toBeGreaterThanOrEqual(before);
  });

  it("shows the hub's problem inline when the Thing refuses an action", async () => {
    // The boiler is cold: the machine refuses to brew (409), the hub says so as a problem.
    fleet.thing(ESPRESSO, EspressoMachine).boiler.temperature = 20;
    const form = page.locator('form.invoke[data-action="brew"]');
    await form.getByLabel("size").selectOption("double");
    await form.getByRole("button", { name: "Invoke" }).click();
    await expect(form.getByRole("alert").textContent()).resolves.toMatch(/\(50[0-9]\).*409/);
    // The problem is in the action's card, under its button, not beside or over it.
    const card = await form.boundingBox();
    const alert = await form.getByRole("alert").boundingBox();
    const button = await form.getByRole("button", { name: "Invoke" }).boundingBox();
    expect(card && alert && button).toBeTruthy();
    if (card && alert && button) {
      expect(alert.x).toBeGreaterThanOrEqual(card.x);
      expect(alert.x + alert.width).toBeLessThanOrEqual(card.x + card.width);
      expect(alert.y).toBeGreaterThanOrEqual(button.y + button.height);
      expect(alert.y + alert.height).toBeLessThanOrEqual(card.y + card.height);
    }
  });

  it("writes the setpoint: the Change appears live in the timeline and the chart takes the new value", async () => {
    const chart = '.chart[data-property="setpoint"]';
    // Charts are drawn once they scroll into view, as a person reading the page would bring them.
    await page.locator(".charts").scrollIntoViewIfNeeded();
    await page.locator(`${chart}[data-points]`).waitFor();
    const points = Number(await page.locator(chart).getAttribute("data-points"));
    const after = await lastSeq(hub);
    const form = page.locator('form.write[data-property="setpoint"]');
    await form.getByLabel("setpoint").fill("90");
    await form.getByRole("button", { name: "Write" }).click();
    await form.getByRole("status").filter({ hasText: "accepted" }).waitFor();
    const reported = await changeAfter(
      hub,
      after,
      (c) => c.kind === "reported" && c.affordance === "setpoint" && c.value === 90,
    );
    await page.locator(`tr.change[data-seq="${reported.seq}"]`).waitFor();
    await page.locator("tr.change.kind-desired", { hasText: "90" }).first().waitFor();
    await page.locator('td.value[data-property="setpoint"]', { hasText: "90" }).waitFor();
    await page.waitForFunction(`Number(document.querySelector('${chart}')?.dataset.points) > ${points}`);
    expect(fleet.thing(ESPRESSO, EspressoMachine).readProperty("setpoint")).toBe(90);
    // Long values (the TD of the `described` Change) wrap in their cell: the page is no wider
    // than the window.
    const widths = await page.evaluate<[number, number]>(
      "[document.documentElement.scrollWidth, document.documentElement.clientWidth]",
    );
    expect(widths[0]).toBeLessThanOrEqual(widths[1]);
    await capture(page, "thing");
  });

  it("draws each chart from its first reading up to now, also with a single reading", async () => {
    // The machine reports how many shots it brewed once at start (and again after a brew): a
    // time axis of one reading would otherwise span uPlot's default of 1,000 days.
    const opened = Date.now() / 1000;
    await page.locator(".charts").scrollIntoViewIfNeeded();
    for (const property of ["shots", "setpoint", "temperature"]) {
      const chart = page.locator(`.chart[data-property="${property}"][data-from]`);
      await chart.waitFor();
      const from = Number(await chart.getAttribute("data-from"));
      const to = Number(await chart.getAttribute("data-to"));
      expect(to - from, property).toBeGreaterThanOrEqual(9);
      // Up to now (when the chart was last drawn), and from a reading of this test's hub.
      expect(to, property).toBeLessThanOrEqual(Date.now() / 1000 + 1);
      expect(to, property).toBeGreaterThanOrEqual(started - 1);
      expect(from, property).toBeGreaterThanOrEqual(started - 11);
      expect(from, property).toBeLessThanOrEqual(opened);
    }
  });

  it("invokes an action with a form generated from its input schema", async () => {
    const machine = fleet.thing(ESPRESSO, EspressoMachine);
    machine.boiler.temperature = machine.boiler.setpoint;
    const form = page.locator('form.invoke[data-action="brew"]');
    await form.getByLabel("size").selectOption("single");
    await form.getByRole("button", { name: "Invoke" }).click();
    await expect(form.getByRole("status").filter({ hasText: "Completed" }).textContent()).resolves.toContain(
      '"size":"single"',
    );
  });

  it("filters the global change feed by kind and actor", async () => {
    await page.goto(`${hub.url}/#/changes?kind=desired&actor=admin`);
    await page.locator("tr.change").first().waitFor();
    const kinds = await page.locator("tr.change .kind").allTextContents();
    expect(kinds.length).toBeGreaterThan(0);
    expect(new Set(kinds)).toEqual(new Set(["desired"]));
    expect(await page.title()).toBe("Changes · Hyperthings");
    // Newest first, from one request for the range's newest Changes.
    await expectNewestFirst(page);
    await capture(page, "changes");
  });

  it("says in the change feed what is wrong with a filter, as the hub words it", async () => {
    await page.goto(`${hub.url}/#/changes?kind=${encodeURIComponent("Bad-kind!")}`);
    await page.getByRole("alert").filter({ hasText: "must be kinds separated by commas" }).waitFor();
    expect(await page.locator("tr.change").count()).toBe(0);
  });

  it("keeps a range the address gives that is not one of the presets, and asks the hub for it", async () => {
    await page.goto(`${hub.url}/#/changes?kind=desired&since=-2d`);
    await page.locator("tr.change").first().waitFor();
    await expect(page.getByLabel("Since").inputValue()).resolves.toBe("-2d");
    // The view's page of the range (not the titles' requests, one Thing's last TD each).
    const sent = await page.evaluate<string>(
      'performance.getEntriesByType("resource").map((e) => e.name).filter((n) => n.includes("/changes?") && n.includes("order=desc") && new URL(n).searchParams.get("kind") !== "described,removed").at(-1)',
    );
    // Read in the browser, as the time view reads its fields: sent as the time it meant.
    const since = Date.parse(new URL(sent).searchParams.get("since") ?? "");
    expect(Math.abs(since - (Date.now() - 2 * 86_400_000))).toBeLessThan(5 * 60_000);
    // One it cannot read is said, as the time view says it, and nothing is asked of the hub.
    await page.goto(`${hub.url}/#/changes?since=${encodeURIComponent("tomorrowish")}`);
    await page.getByRole("alert").filter({ hasText: '"tomorrowish" is not a time' }).waitFor();
  });

  it("filters the change feed by type and adds matching Changes live, filtered by the hub", async () => {
    await page.goto(`${hub.url}/#/changes?type=saref:Appliance&kind=reported`);
    await page.locator("tr.change").first().waitFor();
    await expect(page.getByLabel("Type").inputValue()).resolves.toBe("saref:Appliance");
    // Each row's Thing, by id (the link shows its title).
    const things = await page
      .locator("tr.change td.thing a")
      .evaluateAll((links: Array<{ getAttribute(name: string): string | null }>) =>
        links.map((link) => link.getAttribute("data-thing-id")),
      );
    expect(things.length).toBeGreaterThan(0);
    expect(new Set(things)).toEqual(new Set([ESPRESSO]));
    // A switch's reading, then the machine's: when the machine's row is there, the switch's
    // (earlier in the one ordered stream) would be too if the filter let it through.
    const cause = { actor: "test", via: "test" };
    const [other] = await hub.hub.ingest(
      simThingId("switch-1"),
      [{ kind: "reported", affordance: "portsUp", value: 3 }],
      cause,
    );
    const [mine] = await hub.hub.ingest(
      ESPRESSO,
      [{ kind: "reported", affordance: "shots", value: 7 }],
      cause,
    );
    await page.locator(`tr.change[data-seq="${mine?.seq}"]`).waitFor();
    expect(await page.locator(`tr.change[data-seq="${other?.seq}"]`).count()).toBe(0);
    // The count above the rows follows the live ones (it said how many the page had).
    await page.waitForFunction(
      `(() => { const n = document.querySelectorAll("tr.change").length; return (document.querySelector("main > div.muted")?.textContent ?? "").split(" ").includes(String(n)); })()`,
    );
    // Newest first, live ones too (the machine goes on reporting meanwhile).
    await expectNewestFirst(page);
  });

  it("shows the state at a time and the diff between two times", async () => {
    await page.goto(`${hub.url}/#/time/${encodeURIComponent(ESPRESSO)}`);
    await page.getByLabel("From").fill("2000-01-01T00:00:00");
    await page.getByRole("button", { name: "Show diff" }).click();
    const diff = page.getByTestId("diff");
    const properties = diff.locator("table", { has: page.locator("caption", { hasText: /^Properties$/ }) });
    // Named by its title (Boiler setpoint), its value with its unit.
    const setpoint = properties.locator('tr[data-affordance="setpoint"]');
    await setpoint.waitFor();
    await expect(setpoint.locator("th").textContent()).resolves.toBe("Boiler setpoint");
    await expect(setpoint.locator("td.after").textContent()).resolves.toBe("90 °C");
    // Who asked for it: the write, by the admin who signed in (the value is as the machine reported it).
    const write = page.getByTestId("diff-writes").locator('tr[data-affordance="setpoint"]');
    await expect(write.locator("td.counts").textContent()).resolves.toMatch(/^[1-9]\d* desired, /);
    await expect(write.locator("td.muted").textContent()).resolves.toMatch(/^by admin at /);
    // The brews asked for earlier: one refused by the cold machine, one completed.
    const brew = page.getByTestId("diff-actions").locator('tr[data-affordance="brew"]');
    await expect(brew.locator("td.counts").textContent()).resolves.toMatch(
      /^[2-9]\d* invoked, [1-9]\d* completed, [1-9]\d* failed$/,
    );
    await page.getByRole("button", { name: "Show state" }).click();
    const state = page.getByTestId("state").locator('tr[data-affordance="setpoint"]');
    await expect(state.locator("td.value").textContent()).resolves.toBe("90 °C");
    // Before the machine was registered, there was no such Thing: said in a sentence, not asked.
    await page.getByLabel("At").fill("2000-01-01T00:00:00");
    await page.getByRole("button", { name: "Show state" }).click();
    await page
      .getByTestId("before-registration")
      .filter({ hasText: /^Espresso machine was registered at .+; nothing before\.$/ })
      .first()
      .waitFor();
    // Registered in between: its whole TD is added lines, folded under one that says so.
    const description = page.getByTestId("diff-description");
    await expect(description.locator("summary").first().textContent()).resolves.toMatch(
      /^Registered in between: its TD, \d+ lines$/,
    );
    const registered = description.locator(".json-diff");
    expect(Number(await registered.getAttribute("data-removed"))).toBe(0);
    await registered
      .locator(".line.added", { hasText: '"title": "Espresso machine"' })
      .waitFor({ state: "attached" });
    await capture(page, "diff");
  });

  it("draws a TD's change between two times as a line diff: removed lines red, added green", async () => {
    const id = "urn:test:ui:lamp";
    const client = new InteractionClient({ url: hub.url, token: hub.token });
    const forms = [{ href: "http://127.0.0.1:9/level" }];
    await client.put(
      minimalTd({
        id,
        title: "Lamp v1",
        properties: { level: { type: "integer", forms } },
      }) as ThingDescription,
    );
    // A second later (the form takes whole seconds), the TD changes: a new title and property.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const between = new Date();
    await new Promise((resolve) => setTimeout(resolve, 1100));
    await client.put(
      minimalTd({
        id,
        title: "Lamp v2",
        properties: { level: { type: "integer", forms }, colour: { type: "string", forms } },
      }) as ThingDescription,
    );
    await page.goto(`${hub.url}/#/time/${encodeURIComponent(id)}`);
    // datetime-local is local time, to the second.
    const local = new Date(between.getTime() - between.getTimezoneOffset() * 60_000);
    await page.getByLabel("From").fill(local.toISOString().slice(0, 19));
    await page.getByRole("button", { name: "Show diff" }).click();
    const lines = page.getByTestId("diff-description").locator(".json-diff");
    await lines.waitFor();
    await expect(lines.locator(".line.removed").allTextContents()).resolves.toContain(
      '-   "title": "Lamp v1",\n',
    );
    await expect(lines.locator(".line.added").allTextContents()).resolves.toContain(
      '+   "title": "Lamp v2",\n',
    );
    await lines.locator(".line.added", { hasText: '"colour"' }).waitFor();
    // The id did not change: no red or green line has it.
    const marked = await lines.locator(".line.added, .line.removed").allTextContents();
    expect(marked.some((line) => line.includes('"id"'))).toBe(false);
    await capture(page, "td-diff");
    await client.remove(id);
  });

  it("draws whether the Thing answered, its drift, the links it lost and the release rolled out in between", async () => {
    const id = "urn:test:ui:field-sensor";
    const gateway = "urn:test:ui:gateway";
    const client = new InteractionClient({ url: hub.url, token: hub.token });
    await client.put(
      minimalTd({
        id,
        title: "Field sensor",
        properties: { level: { type: "integer", forms: [{ href: "http://127.0.0.1:9/level" }] } },
        links: [{ rel: "partOf", href: gateway }],
      }) as ThingDescription,
    );
    // Stopped observing at once (its form is nothing), so only these say it went away.
    await hub.hub.ingest(id, [{ kind: "unreachable", value: "connect ECONNREFUSED" }], {
      actor: "hub:observer",
      via: "http",
    });
    const unlink = await hub.request(
      `/things/${encodeURIComponent(id)}/links?rel=partOf&href=${encodeURIComponent(gateway)}`,
      { method: "DELETE" },
    );
    expect(unlink.status).toBe(204);
    const applied = {
      release: "sha256:4f1c2d3e4f5a6b7c8d9e0f",
      name: "evening",
      rollout: "urn:uuid:r",
      desired: { level: 3 },
      drift: { policy: "record" },
    };
    await hub.hub.ingest(id, [{ kind: "applied", value: applied }], { actor: "admin", via: "rollout" });
    const drift = { status: "drifting", release: "sha256:r1", desired: 3, observed: 7, policy: "record" };
    await hub.hub.ingest(id, [{ kind: "drift", affordance: "level", value: drift }], {
      actor: "hub:drift",
      via: "drift",
      release: "sha256:r1",
    });
    await page.goto(`${hub.url}/#/time/${encodeURIComponent(id)}`);
    await page.getByLabel("From").fill("-1h");
    await page.getByRole("button", { name: "Show diff" }).click();
    const reachability = page.getByTestId("diff-reachability");
    await reachability.waitFor();
    // Registered within the hour: at its start the Thing was not in the directory, not "reachable".
    await expect(reachability.locator("tbody td").allTextContents()).resolves.toEqual([
      "not in the directory",
      "unreachable",
      "1 unreachable",
      "unreachable: connect ECONNREFUSED",
      expect.stringMatching(/^by hub:observer at /),
    ]);
    const level = page.getByTestId("diff-drift").locator('tr[data-affordance="level"]');
    await expect(level.locator("td.counts").textContent()).resolves.toBe("1 drift");
    await expect(level.locator("td.last").textContent()).resolves.toBe("drifting: desired 3, observed 7");
    await expect(level.locator("td.muted").textContent()).resolves.toMatch(
      /^by hub:drift, release sha256:r1 at /,
    );
    // Registered with the link and unlinked since: none at either end, and the Changes say so.
    const links = page.getByTestId("diff-links");
    await expect(links.locator("caption").textContent()).resolves.toMatch(
      new RegExp(`^Links: 1 linked, 1 unlinked; last unlinked partOf ${gateway} by admin at `),
    );
    await expect(links.locator("tbody").textContent()).resolves.toBe("the same links at both ends");
    // The release rolled out in between, and the one now active.
    await expect(page.getByTestId("diff-releases").textContent()).resolves.toMatch(
      /^Releases: 1 applied; now evening \(sha256:4f1c2d3e4f5a…\) by admin at /,
    );
    await capture(page, "diff-reachability");
    await client.remove(id);
  });

  it("takes the times the API takes: relative ones, and says which time it cannot read", async () => {
    await page.goto(`${hub.url}/#/time/${encodeURIComponent(ESPRESSO)}`);
    // The hub started for this test less than an hour ago: the machine was registered in between.
    await page.getByLabel("From").fill("-1h");
    await page.getByLabel("To").fill("now");
    const asked = Date.now();
    await page.getByRole("button", { name: "Show diff" }).click();
    const diff = page.getByTestId("diff");
    await expect(
      diff.getByTestId("diff-description").locator("summary").first().textContent(),
    ).resolves.toMatch(/^Registered in between: its TD, \d+ lines$/);
    const sent = await page.evaluate<string>(
      'performance.getEntriesByType("resource").map((e) => e.name).filter((n) => n.includes("/diff?")).at(-1)',
    );
    const from = Date.parse(new URL(sent).searchParams.get("from") ?? "");
    expect(Math.abs(from - (asked - 3_600_000))).toBeLessThan(60_000);
    await page.getByLabel("At").fill("2 seconds ago");
    await page.getByRole("button", { name: "Show state" }).click();
    await page.getByTestId("state").waitFor();
    // A time it cannot read is said beside the form, and nothing is asked of the hub.
    const requests: string[] = [];
    page.on("request", (request) => requests.push(request.url()));
    await page.getByLabel("At").fill("yesterdayy 14:02");
    await page.getByRole("button", { name: "Show state" }).click();
    await expect(page.locator("main").getByRole("alert").textContent()).resolves.toMatch(
      /^Not sent: At "yesterdayy 14:02" is not a time: use RFC 3339/,
    );
    page.removeAllListeners("request");
    expect(requests.filter((url) => url.includes("/state"))).toEqual([]);
  });

  it("draws a Thing's page again when its TD changes, and says when it is removed", async () => {
    const id = "urn:test:ui:desk";
    const client = new InteractionClient({ url: hub.url, token: hub.token });
    const forms = [{ href: "http://127.0.0.1:9/p" }];
    await client.put(
      minimalTd({
        id,
        title: "Desk",
        properties: { level: { type: "integer", forms } },
      }) as ThingDescription,
    );
    await page.goto(`${hub.url}/#/thing/${encodeURIComponent(id)}`);
    await page.locator(`main[data-rendered="${id}"]`).waitFor();
    // A property added to its TD gets its row and its form, and its reports show there.
    await client.put(
      minimalTd({
        id,
        title: "Desk v2",
        properties: { level: { type: "integer", forms }, colour: { type: "string", forms } },
      }) as ThingDescription,
    );
    await page.locator("main h1", { hasText: "Desk v2" }).waitFor();
    await page.locator('form.write[data-property="colour"]').waitFor();
    await hub.hub.ingest(id, [{ kind: "reported", affordance: "colour", value: "teal" }], {
      actor: "test",
      via: "test",
    });
    await page.locator('td.value[data-property="colour"]', { hasText: "teal" }).waitFor();
    // Removed: the page says so, and points at its past.
    await client.remove(id);
    await expect(page.locator("main").getByRole("alert").textContent()).resolves.toMatch(
      /^Not found \(404\)/,
    );
    await page.getByRole("link", { name: "Its past: state at a time, and diff" }).waitFor();
  });

  it("keeps the times asked in the time view's address, which shows them again when opened", async () => {
    const address = `${hub.url}/#/time/${encodeURIComponent(ESPRESSO)}`;
    // Opened from a shared link: the diff it names is drawn without a click.
    await page.goto(`${address}?from=-1h&to=now`);
    await expect(page.getByLabel("From").inputValue()).resolves.toBe("-1h");
    await expect(
      page.getByTestId("diff-description").locator("summary").first().textContent(),
    ).resolves.toMatch(/^Registered in between/);
    // Asked in the page: the address says so, and a reload shows both again.
    await page.getByLabel("At").fill("2 seconds ago");
    await page.getByRole("button", { name: "Show state" }).click();
    await page.getByTestId("state").waitFor();
    const params = new URLSearchParams(new URL(page.url()).hash.split("?")[1]);
    expect(Object.fromEntries(params)).toEqual({ at: "2 seconds ago", from: "-1h", to: "now" });
    await page.reload();
    await page.getByTestId("state").waitFor();
    await page.getByTestId("diff").waitFor();
    await expect(page.getByLabel("At").inputValue()).resolves.toBe("2 seconds ago");
  });

  it("fills the write forms with the Thing's values, live, but not over what someone typed", async () => {
    const id = "urn:test:ui:plug";
    const client = new InteractionClient({ url: hub.url, token: hub.token });
    const forms = [{ href: "http://127.0.0.1:9/p" }];
    await client.put(
      minimalTd({
        id,
        title: "Plug",
        properties: { on: { type: "boolean", forms }, level: { type: "integer", forms } },
      }) as ThingDescription,
    );
    const cause = { actor: "test", via: "test" };
    await hub.hub.ingest(
      id,
      [
        { kind: "reported", affordance: "on", value: true },
        { kind: "reported", affordance: "level", value: 4 },
      ],
      cause,
    );
    await page.goto(`${hub.url}/#/thing/${encodeURIComponent(id)}`);
    await page.locator(`main[data-rendered="${id}"]`).waitFor();
    // A box left unticked would read as "off" for a plug that is on: it shows what the Thing has.
    const on = page.locator('form.write[data-property="on"]').getByLabel("on");
    const level = page.locator('form.write[data-property="level"]').getByLabel("level");
    expect(await on.isChecked()).toBe(true);
    expect(await level.inputValue()).toBe("4");
    await hub.hub.ingest(id, [{ kind: "reported", affordance: "on", value: false }], cause);
    await page.locator('td.value[data-property="on"]', { hasText: "false" }).waitFor();
    expect(await on.isChecked()).toBe(false);
    // What someone is typing stays while the Thing's value changes.
    await level.fill("7");
    await hub.hub.ingest(id, [{ kind: "reported", affordance: "level", value: 5 }], cause);
    await page.locator('td.value[data-property="level"]', { hasText: "5" }).waitFor();
    expect(await level.inputValue()).toBe("7");
    await client.remove(id);
  });

  it("says that a Thing the hub never knew has no past to travel to, and that a removed one's stays", async () => {
    await page.goto(`${hub.url}/#/time/${encodeURIComponent("urn:test:ui:nope")}`);
    await expect(page.getByTestId("never-registered").textContent()).resolves.toBe(
      "No Thing with id urn:test:ui:nope has ever been registered here.",
    );
    expect(await page.getByRole("button", { name: "Show state" }).count()).toBe(0);
    // Removed from the directory, a Thing keeps its past: the forms are there, and say so.
    const id = "urn:test:ui:gone";
    const client = new InteractionClient({ url: hub.url, token: hub.token });
    await client.put(minimalTd({ id, title: "Gone" }) as ThingDescription);
    await client.remove(id);
    await page.goto(`${hub.url}/#/time/${encodeURIComponent(id)}`);
    await expect(page.getByTestId("removed").textContent()).resolves.toMatch(
      /^Removed from the directory at .+; its past stays in the Log\.$/,
    );
    await page.getByRole("button", { name: "Show state" }).waitFor();
  });

  it("shows the Log's last signed checkpoint", async () => {
    await page.goto(`${hub.url}/#/log`);
    // The fleet keeps the Log growing: the page's checkpoint is one the hub signed, of its size.
    const shown = page.getByTestId("checkpoint");
    const size = Number(await shown.getAttribute("data-size"));
    const root = await shown.getAttribute("data-root");
    expect(size).toBeGreaterThan(0);
    expect(await shown.textContent()).toContain(`${size} Changes, signed`);
    const answer = await hub.request(`/log/checkpoints?after=${size - 1}&limit=1`);
    const [signed] = (await answer.json()) as { size: number; root: string }[];
    expect(signed).toMatchObject({ size, root });
    // Kept from the page, the checkpoint is one `things verify --checkpoint` takes.
    const [download] = await Promise.all([
      page.waitForEvent("download"),
      page.getByTestId("keep-checkpoint").click(),
    ]);
    expect(download.suggestedFilename()).toBe(`checkpoint-${size}.json`);
    const kept = join(userData, download.suggestedFilename());
    await download.saveAs(kept);
    expect(JSON.parse(readFileSync(kept, "utf8"))).toEqual(signed);
    const run = await runThingsToEnd([
      "verify",
      "--checkpoint",
      kept,
      "--url",
      hub.url,
      "--token",
      hub.token,
    ]);
    expect(run.code, run.stderr).toBe(0);
    expect(run.stdout).toContain(`and 1 saved (size ${size})`);
  });

  it("shows rollouts with their progress, the releases, and a Thing as it drifts from its release", async () => {
    const text = [
      "release: ui-setpoint",
      "things:",
      `  - select: { id: "${ESPRESSO}" }`,
      "    properties: { setpoint: 91 }",
    ].join("\n");
    const built = await hub.hub.releases.build([{ path: "release.yaml", text }], { actor: "test" });
    const release = built.release.id;
    const started = await hub.request(`/releases/${encodeURIComponent(release)}/rollouts`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{}",
    });
    expect(started.status).toBe(202);
    const { id } = (await started.json()) as { id: string };
    await hub.hub.rollouts?.settled(id);
    await page.goto(`${hub.url}/#/releases`);
    const rollout = page.locator(`tr[data-rollout="${id}"]`);
    await rollout.waitFor();
    expect(await rollout.getAttribute("data-status")).toBe("completed");
    expect(await rollout.textContent()).toContain("1/1");
    expect(await rollout.getByRole("progressbar").getAttribute("value")).toBe("1");
    await page.locator(`tr[data-release="${release}"]`, { hasText: "ui-setpoint" }).waitFor();
    expect(await page.getByTestId("drift").getAttribute("data-count")).toBe("0");
    // Set by hand to another value, the machine drifts from its release: the page shows it.
    await new InteractionClient({ url: hub.url, token: hub.token }).writeProperty(ESPRESSO, "setpoint", 92);
    const drifting = page.locator('[data-testid="drift"] tbody tr', {
      has: page.locator(`a[data-thing-id="${ESPRESSO}"]`),
    });
    await drifting.waitFor();
    expect(await drifting.locator("td.desired").textContent()).toBe("91");
    expect(await drifting.locator("td.observed").textContent()).toBe("92");
    // The Thing by its title, its id as the tooltip.
    await drifting.locator(`a[title="${ESPRESSO}"]`, { hasText: "Espresso machine" }).waitFor();
    const answer = await hub.request("/drift");
    expect(JSON.stringify(await answer.json())).toContain(ESPRESSO);
    await capture(page, "releases");
  });

  it("shows 50 drift entries of thousands, and 50 more at a click, paged from the hub", async () => {
    // One Thing with 1,200 properties held by a release, each reported otherwise: 1,200 drift
    // (and the espresso machine's one, from the test above). The `applied` Change is the one a
    // rollout ends a step with; the hub takes it from ingest as it would from a rollout.
    const id = "urn:test:ui:drifter";
    const count = 1200;
    const names = Array.from({ length: count }, (_, i) => `p${String(i).padStart(4, "0")}`);
    const forms = [{ href: "http://127.0.0.1:9/p" }];
    await new InteractionClient({ url: hub.url, token: hub.token }).put(
      minimalTd({
        id,
        title: "Drifter",
        properties: Object.fromEntries(names.map((name) => [name, { type: "integer", forms }])),
      }) as ThingDescription,
    );
    const desired = Object.fromEntries(names.map((name) => [name, 1]));
    const value = {
      release: "sha256:ui-drifter",
      name: "drifter",
      rollout: "ui-drifter",
      desired,
      drift: { policy: "record" },
    };
    await hub.hub.ingest(id, [{ kind: "applied", value }], { actor: "test", via: "test" });
    await hub.hub.ingest(
      id,
      names.map((name) => ({ kind: "reported" as const, affordance: name, value: 2 })),
      { actor: "test", via: "test" },
    );
    const total = count + 1;
    await expect
      .poll(async () => ((await (await hub.request("/drift?limit=1")).json()) as { total: number }).total)
      .toBe(total);
    await page.goto(`${hub.url}/#/releases`);
    const drift = page.getByTestId("drift");
    await page.locator(`[data-testid="drift"][data-total="${total}"]`).waitFor();
    expect(await drift.getAttribute("data-count")).toBe("50");
    expect(await page.locator('[data-testid="drift"] tbody tr').count()).toBe(50);
    await expect(page.getByTestId("drift-shown").textContent()).resolves.toBe(
      `The first 50 of ${total.toLocaleString("en")} entries, by Thing and property.`,
    );
    await page.getByRole("button", { name: "Show 50 more" }).click();
    await page.locator('[data-testid="drift"][data-count="100"]').waitFor();
    expect(await page.locator('[data-testid="drift"] tbody tr').count()).toBe(100);
    // The rows after the first 50 are the next ones by Thing and property, none twice.
    const properties = await page.locator('[data-testid="drift"] tbody tr td:nth-child(2)').allTextContents();
    expect(new Set(properties).size).toBe(100);
    // The page keeps 100 as it is drawn again (every 5 s, and on Changes of provisioning).
    await hub.hub.ingest(id, [{ kind: "reported", affordance: "p0000", value: 3 }], {
      actor: "test",
      via: "test",
    });
    const first = page
      .locator('[data-testid="drift"] tbody tr')
      .filter({ has: page.locator("td:nth-child(2)", { hasText: /^p0000$/ }) });
    await first.locator("td.observed", { hasText: /^3$/ }).waitFor();
    expect(await drift.getAttribute("data-count")).toBe("100");
    // Its drift goes with it: the Things of the tests after this one are the fleet's.
    await new InteractionClient({ url: hub.url, token: hub.token }).remove(id);
  });

  it("says in words that an address with a broken %-escape names no Thing", async () => {
    for (const route of ["thing", "time"]) {
      await page.goto(`${hub.url}/#/${route}/%E0%A4%A`);
      await expect(page.locator("main").getByRole("alert").textContent()).resolves.toBe(
        'This address names no Thing: "%E0%A4%A" is not a percent-encoded Thing id.',
      );
    }
  });

  it("charts the latest readings of a range that holds more than a chart draws, and says so", async () => {
    // 10,005 readings at once, the newest last: more than the chart's 10,000 points.
    const readings = Array.from({ length: 10_005 }, (_, i) => ({
      kind: "reported" as const,
      affordance: "temperature",
      value: 20 + (i % 70),
    }));
    const recorded = await hub.hub.ingest(ESPRESSO, readings, { actor: "test", via: "test" });
    const newest = recorded.at(-1)?.seq ?? 0;
    await page.goto(`${hub.url}/#/thing/${encodeURIComponent(ESPRESSO)}`);
    await page.locator(`main[data-rendered="${ESPRESSO}"]`).waitFor();
    await page.locator(".charts").scrollIntoViewIfNeeded();
    const chart = page.locator('.chart[data-property="temperature"][data-loaded-to]');
    await chart.waitFor();
    expect(Number(await chart.getAttribute("data-points"))).toBe(10_000);
    // The newest of them is drawn (not the oldest 10,000 of the hour), and the page says more exist.
    expect(Number(await chart.getAttribute("data-loaded-to"))).toBeGreaterThanOrEqual(newest);
    await expect(chart.locator(".chart-note").textContent()).resolves.toMatch(
      /^The latest 10,000 readings, since .+; the range holds more\.$/,
    );
  });

  it("says in the page when the Thing is unreachable", async () => {
    await page.goto(`${hub.url}/#/thing/${encodeURIComponent(ESPRESSO)}`);
    await page.locator(`main[data-rendered="${ESPRESSO}"]`).waitFor();
    // An outage earlier today, over since: the graph gives the reason of the one going on.
    const cause = { actor: "test", via: "test" };
    await hub.hub.ingest(ESPRESSO, [{ kind: "unreachable", value: "an earlier outage" }], cause);
    await hub.hub.ingest(ESPRESSO, [{ kind: "reachable", value: "back" }], cause);
    const after = await lastSeq(hub);
    await fleet.close();
    const outage = await changeAfter(hub, after, (c) => c.kind === "unreachable" && c.thing === ESPRESSO);
    await page.locator(".reachability").getByText("Espresso machine is unreachable").waitFor();
    await page.goto(`${hub.url}/#/`);
    const listed = page.getByLabel("Unreachable Things").locator("li", { hasText: "Espresso machine" });
    await listed.filter({ hasText: String(outage.value) }).waitFor();
    expect(await listed.textContent()).not.toContain("an earlier outage");
    expect(problems).toEqual([]);
  });

  it("breaks a chart's line where the Thing was unreachable, and resumes it when it answers again", async () => {
    // The fleet is closed (above): the machine's last setpoint is followed by an outage.
    await page.goto(`${hub.url}/#/thing/${encodeURIComponent(ESPRESSO)}`);
    await page.locator(`main[data-rendered="${ESPRESSO}"]`).waitFor();
    await page.locator(".charts").scrollIntoViewIfNeeded();
    const chart = page.locator('.chart[data-property="setpoint"][data-gaps]');
    await chart.waitFor();
    const gaps = Number(await chart.getAttribute("data-gaps"));
    const points = Number(await chart.getAttribute("data-points"));
    expect(gaps).toBeGreaterThanOrEqual(1);
    // Live: back (the setpoint it held is drawn again there), then away again (a gap).
    const cause = { actor: "test", via: "test" };
    await hub.hub.ingest(ESPRESSO, [{ kind: "reachable", value: "back" }], cause);
    await page.waitForFunction(
      `Number(document.querySelector('.chart[data-property="setpoint"]')?.dataset.points) === ${points + 1}`,
    );
    await hub.hub.ingest(ESPRESSO, [{ kind: "unreachable", value: "away" }], cause);
    await page.waitForFunction(
      `Number(document.querySelector('.chart[data-property="setpoint"]')?.dataset.gaps) === ${gaps + 1}`,
    );
    expect(problems).toEqual([]);
  });

  it("draws a page again by itself once the hub it could not reach answers again", async () => {
    await page.goto(`${hub.url}/#/log`);
    await page.getByTestId("checkpoint").waitFor();
    // The hub goes away (its data stays), and the page is asked for a Thing meanwhile.
    const { port } = new URL(hub.url);
    await hub.close();
    firstDataDir = hub.dataDir;
    // Said in the header's status region, which a screen reader announces.
    await page.locator("header").getByRole("status").filter({ hasText: "○ reconnecting" }).waitFor();
    await page.goto(`${hub.url}/#/thing/${encodeURIComponent(ESPRESSO)}`);
    // Waited for, not read at once: on a slow machine main can hold several alerts by then, each
    // "No answer from the hub" (seen in CI: four; the requests failing one after another).
    await page
      .locator("main")
      .getByRole("alert")
      .filter({ hasText: /^No answer from the hub/ })
      .first()
      .waitFor();
    await page.getByText("This page is drawn again as soon as the hub answers.").first().waitFor();
    // Back on the same address: the page follows the live feed back, without a reload.
    hub = await startTestHub({ port: Number(port), dataDir: firstDataDir });
    await page.locator("header").getByRole("status").filter({ hasText: "● live" }).waitFor();
    await page.locator(`main[data-rendered="${ESPRESSO}"]`).waitFor();
    expect(problems).toEqual([]);
  });

  it("works with more tabs open than the browser's 6 connections to the hub: one shared stream", async () => {
    // 8 tabs of the same browser, each with the live feed of the header and a Changes view of
    // its own (filtered three ways): a stream each would take 16 connections, and from the
    // fourth tab on the browser's requests to the hub would wait forever.
    const id = "urn:test:ui:tabs";
    const client = new InteractionClient({ url: hub.url, token: hub.token });
    const forms = [{ href: "http://127.0.0.1:9/level" }];
    await client.put(
      minimalTd({
        id,
        title: "Tabs",
        properties: { level: { type: "integer", forms } },
      }) as ThingDescription,
    );
    const feeds = [
      `thing=${encodeURIComponent(id)}`,
      "kind=reported",
      `actor=tabs-test&thing=${encodeURIComponent(id)}`,
      "",
    ];
    const tabs: Page[] = [];
    try {
      for (let i = 0; i < 8; i++) {
        const tab = await context.newPage();
        tab.setDefaultTimeout(SHOWN_MS);
        tab.on("pageerror", (err) => problems.push(err.message));
        // Each tab signed in (a token lives in its tab's sessionStorage).
        await tab.addInitScript(`sessionStorage.setItem("hyperthings.token", ${JSON.stringify(hub.token)})`);
        await tab.goto(`${hub.url}/#/changes?${feeds[i % feeds.length]}`);
        await tab.locator("main > div.muted", { hasText: "new ones appear" }).waitFor();
        await tab.locator('[data-testid="live"][data-state="open"]').waitFor();
        tabs.push(tab);
      }
      const [change] = await hub.hub.ingest(id, [{ kind: "reported", affordance: "level", value: 5 }], {
        actor: "tabs-test",
        via: "test",
      });
      for (const tab of tabs) await tab.locator(`tr.change[data-seq="${change?.seq}"]`).waitFor();
      // The last tab's plain requests are answered: a connection is free for them.
      const last = tabs.at(-1);
      const status = await last?.evaluate(`fetch("/health").then((response) => response.status)`);
      expect(status).toBe(200);
      // A tab closed takes its feeds away; the others go on (one of each filter is still open).
      await tabs.shift()?.close();
      const [next] = await hub.hub.ingest(id, [{ kind: "reported", affordance: "level", value: 6 }], {
        actor: "tabs-test",
        via: "test",
      });
      for (const tab of tabs) await tab.locator(`tr.change[data-seq="${next?.seq}"]`).waitFor();
    } finally {
      for (const tab of tabs) await tab.close();
      await client.remove(id);
    }
    expect(problems).toEqual([]);
  });

  it("finds a rare Change of the range in the feed however many others came after it", async () => {
    // The hub scans the Log a stretch at a time for a filter it has no index for (an actor): past
    // 100,000 others, the newest page comes back empty, with `next`, and the feed reads on.
    const id = "urn:test:ui:chatty";
    const client = new InteractionClient({ url: hub.url, token: hub.token });
    const forms = [{ href: "http://127.0.0.1:9/level" }];
    await client.put(
      minimalTd({
        id,
        title: "Chatty",
        properties: { level: { type: "integer", forms } },
      }) as ThingDescription,
    );
    const level = (value: number) => ({ kind: "reported" as const, affordance: "level", value });
    const [rare] = await hub.hub.ingest(id, [level(-1)], { actor: "rare-actor", via: "test" });
    const readings = Array.from({ length: 10_000 }, (_, i) => level(i));
    for (let i = 0; i < 11; i++) await hub.hub.ingest(id, readings, { actor: "test", via: "test" });
    await page.goto(`${hub.url}/#/changes?actor=rare-actor`);
    await page.locator(`tr.change[data-seq="${rare?.seq}"]`).waitFor();
    await expect(page.locator("main > div.muted").textContent()).resolves.toBe(
      "1 Change, newest first; new ones appear live.",
    );
  });

  it("moves a chart's time axis on to now while no reading comes", async () => {
    // The fleet is closed (above): the machine reports nothing more. The page's clock is moved
    // on a minute rather than waited for (the clock stays installed in this browser: the tests after
    // this one are those that move it).
    await page.clock.install();
    await page.goto(`${hub.url}/#/thing/${encodeURIComponent(ESPRESSO)}`);
    await page.reload();
    await page.locator(`main[data-rendered="${ESPRESSO}"]`).waitFor();
    await page.locator(".charts").scrollIntoViewIfNeeded();
    const chart = '.chart[data-property="setpoint"]';
    await page.locator(`${chart}[data-to]`).waitFor();
    const to = Number(await page.locator(chart).getAttribute("data-to"));
    // Again and again, not once.
    for (const minutes of [1, 2]) {
      await page.clock.fastForward("01:00");
      await page.waitForFunction(
        `Number(document.querySelector('${chart}')?.dataset.to) >= ${to + 60 * minutes - 1}`,
      );
    }
    expect(problems).toEqual([]);
  });

  it("keeps a chart zoomed by dragging while Changes come and the clock moves on, until it is reset", async () => {
    // After the test above: the page's clock is installed, so the chart's ticks come on demand.
    const chart = '.chart[data-property="setpoint"]';
    const box = await page.locator(`${chart} .u-over`).boundingBox();
    expect(box).not.toBeNull();
    if (box === null) return;
    const before = Number(await page.locator(chart).getAttribute("data-to"));
    const y = box.y + box.height / 2;
    await page.mouse.move(box.x + box.width * 0.2, y);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.4, y, { steps: 5 });
    await page.mouse.up();
    // The axis shows the stretch dragged across: it ends well before now.
    await page.waitForFunction(`Number(document.querySelector('${chart}')?.dataset.to) < ${before - 5}`);
    expect(await page.locator(chart).getAttribute("data-zoomed")).toBe("true");
    const from = await page.locator(chart).getAttribute("data-from");
    const to = await page.locator(chart).getAttribute("data-to");
    expect(Number(from)).toBeLessThan(Number(to));
    // A new reading arrives live (the chart takes it), and the clock ticks on: still zoomed.
    const lastSeqShown = Number(await page.locator(chart).getAttribute("data-last-seq"));
    const [reading] = await hub.hub.ingest(
      ESPRESSO,
      [{ kind: "reported", affordance: "setpoint", value: 94 }],
      {
        actor: "test",
        via: "test",
      },
    );
    expect(reading?.seq).toBeGreaterThan(lastSeqShown);
    await page.locator(`${chart}[data-last-seq="${reading?.seq}"]`).waitFor();
    await page.clock.fastForward("00:30");
    expect(await page.locator(chart).getAttribute("data-from")).toBe(from);
    expect(await page.locator(chart).getAttribute("data-to")).toBe(to);
    expect(await page.locator(chart).getAttribute("data-zoomed")).toBe("true");
    // A double-click returns to following now; so does Reset zoom after another drag.
    await page.locator(`${chart} .u-over`).dblclick();
    await page.locator(`${chart}:not([data-zoomed])`).waitFor();
    const now = Number(await page.evaluate("Date.now()")) / 1000;
    expect(Number(await page.locator(chart).getAttribute("data-to"))).toBeGreaterThanOrEqual(now - 1);
    await page.mouse.move(box.x + box.width * 0.3, y);
    await page.mouse.down();
    await page.mouse.move(box.x + box.width * 0.5, y, { steps: 5 });
    await page.mouse.up();
    await page.locator(`${chart}[data-zoomed="true"]`).waitFor();
    await page.locator(chart).getByRole("button", { name: "Reset zoom" }).click();
    await page.locator(`${chart}:not([data-zoomed])`).waitFor();
    await page.clock.fastForward("00:30");
    const later = Number(await page.evaluate("Date.now()")) / 1000;
    await page.waitForFunction(`Number(document.querySelector('${chart}')?.dataset.to) >= ${later - 1}`);
    expect(problems).toEqual([]);
  });
});
