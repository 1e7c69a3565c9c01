// What every test of the web UI sets up: Debian's Chromium (or HYPERTHINGS_CHROMIUM) driven by
// playwright-core, headless, against a real hub; without Chromium or a built UI the suite is
// skipped with the reason (a failure under HYPERTHINGS_REQUIRE_SERVICES=1, as in CI).
import { existsSync } from "node:fs";
import { chromium, type Browser, type BrowserContext, type Page } from "playwright-core";
import { afterAll, beforeAll, describe, it } from "vitest";
import type { TestHub } from "./test-hub.js";

export const CHROMIUM = process.env.HYPERTHINGS_CHROMIUM ?? "/usr/bin/chromium";
const BUILT = new URL("../../dist/ui/index.html", import.meta.url);
const ARGS = [
  "--no-sandbox",
  "--disable-gpu",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
  "--no-first-run",
];

/** Why the UI cannot be tested here, or undefined when it can. */
export function uiUnavailable(): string | undefined {
  if (!existsSync(CHROMIUM)) return `no Chromium at ${CHROMIUM}`;
  if (!existsSync(BUILT)) return "the UI is not built (npm run build)";
  return undefined;
}

/**
 * `describe` for tests that need a browser and the built UI: without them, one skipped test that
 * says why, or one failing test where services are required.
 */
export function describeInBrowser(name: string, options: { timeout: number }, body: () => void): void {
  const missing = uiUnavailable();
  if (missing === undefined) {
    describe(name, options, body);
    return;
  }
  describe(name, () => {
    if (process.env.HYPERTHINGS_REQUIRE_SERVICES === "1")
      it("needs Chromium and a built UI (HYPERTHINGS_REQUIRE_SERVICES=1)", () => {
        throw new Error(missing);
      });
    else it.skip(`skipped: ${missing}`, () => undefined);
  });
}

/** A headless Chromium; each test opens a context (a window with its own sessionStorage) of it. */
export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, headless: true, args: ARGS });
}

/** A headless Chromium with a profile folder: its tabs share a SharedWorker, downloads land in it. */
export function launchPersistentChromium(
  userData: string,
  viewport: { width: number; height: number },
): Promise<BrowserContext> {
  return chromium.launchPersistentContext(userData, {
    executablePath: CHROMIUM,
    viewport,
    headless: true,
    args: ARGS,
  });
}

/** Signs in on the page's sign-in form at `hash` (`#/` by default), as a person pastes the token. */
export async function signIn(page: Page, hub: TestHub, hash = "#/"): Promise<void> {
  await page.goto(`${hub.url}/${hash}`);
  await page.getByLabel("Token").fill(hub.token);
  await page.getByRole("button", { name: "Sign in" }).click();
  await page.getByRole("button", { name: "Sign out" }).waitFor();
}

export interface BrowserAndHub {
  readonly hub: TestHub;
  readonly browser: Browser;
  /**
   * A page in a new context of the browser (closed with `page.context().close()`), with waits
   * bounded by the suite's `shownMs`, signed in at `hash` unless `signIn: false`. `prepare` runs on
   * the context before the page opens (routes to intercept, init scripts).
   */
  open(options?: {
    hash?: string;
    viewport?: { width: number; height: number };
    /** A phone's touch screen (Playwright's device emulation: touch events, a coarse pointer). */
    touch?: boolean;
    signIn?: boolean;
    prepare?: (context: BrowserContext) => Promise<unknown>;
  }): Promise<Page>;
}

/**
 * The suite's hub (from `start`, which also registers what the tests look at) and browser, started
 * before its tests and stopped after them. Call it in a `describeInBrowser` body.
 */
export function useBrowserAndHub(start: () => Promise<TestHub>, shownMs: number): BrowserAndHub {
  let hub: TestHub | undefined;
  let browser: Browser | undefined;
  beforeAll(async () => {
    hub = await start();
    browser = await launchChromium();
  }, 4 * shownMs);
  afterAll(async () => {
    await browser?.close();
    await hub?.stop();
  });
  const running = <T>(value: T | undefined, what: string): T => {
    if (value === undefined) throw new Error(`the suite's ${what} did not start`);
    return value;
  };
  return {
    get hub() {
      return running(hub, "hub");
    },
    get browser() {
      return running(browser, "browser");
    },
    async open(options = {}) {
      const context = await running(browser, "browser").newContext({
        viewport: options.viewport ?? { width: 1280, height: 720 },
        ...(options.touch === true ? { isMobile: true, hasTouch: true, deviceScaleFactor: 2 } : {}),
      });
      await options.prepare?.(context);
      const page = await context.newPage();
      page.setDefaultTimeout(shownMs);
      if (options.signIn !== false) await signIn(page, running(hub, "hub"), options.hash);
      return page;
    },
  };
}
