// The hub serves the built web UI at / and its assets under /ui/, never in the way of an API
// route; without a build, / answers a problem document that says how to build it.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildServer } from "../src/api/index.js";
import { startTestHub, type TestHub } from "./support/test-hub.js";

const PAGE = '<!doctype html><script type="module" src="/ui/assets/index-abc123.js"></script>';
const SCRIPT = "console.log('hyperthings');";

describe("the web UI's routes", () => {
  let hub: TestHub;
  let built: string;
  let empty: string;

  beforeAll(async () => {
    hub = await startTestHub();
    built = mkdtempSync(join(tmpdir(), "hyperthings-ui-"));
    mkdirSync(join(built, "assets"));
    writeFileSync(join(built, "index.html"), PAGE);
    writeFileSync(join(built, "assets", "index-abc123.js"), SCRIPT);
    writeFileSync(join(built, "assets", "secret.key"), "not an asset type");
    empty = mkdtempSync(join(tmpdir(), "hyperthings-no-ui-"));
  });

  afterAll(async () => {
    await hub.stop();
    rmSync(built, { recursive: true, force: true });
    rmSync(empty, { recursive: true, force: true });
  });

  async function server(directory: string, on: TestHub = hub) {
    const app = await buildServer(on.hub, { uiDirectory: directory });
    await app.ready();
    return app;
  }

  it("serves the page at / and /ui/, and hashed assets as immutable", async () => {
    const app = await server(built);
    for (const url of ["/", "/ui/"]) {
      const page = await app.inject({ method: "GET", url });
      expect(page.statusCode).toBe(200);
      expect(page.headers["content-type"]).toBe("text/html; charset=utf-8");
      expect(page.headers["cache-control"]).toBe("no-cache");
      expect(page.headers["content-security-policy"]).toContain("default-src 'self'");
      expect(page.body).toBe(PAGE);
    }
    const script = await app.inject({ method: "GET", url: "/ui/assets/index-abc123.js" });
    expect(script.statusCode).toBe(200);
    expect(script.headers["content-type"]).toBe("text/javascript; charset=utf-8");
    expect(script.headers["cache-control"]).toContain("immutable");
    expect(script.body).toBe(SCRIPT);
    await app.close();
  });

  it("answers 404 problems for files the build did not make, and for paths out of it", async () => {
    const app = await server(built);
    for (const url of [
      "/ui/assets/missing.js",
      "/ui/assets/secret.key",
      "/ui/../package.json",
      "/ui/%2e%2e/package.json",
    ]) {
      const answer = await app.inject({ method: "GET", url });
      expect(answer.statusCode, url).toBe(404);
      expect(answer.headers["content-type"], url).toContain("application/problem+json");
    }
    await app.close();
  });

  it("leaves the API's routes alone", async () => {
    const app = await server(built);
    const things = await app.inject({ method: "GET", url: "/things" });
    expect(things.statusCode).toBe(200);
    expect(things.json()).toEqual([]);
    const missing = await app.inject({ method: "GET", url: "/no-such-route" });
    expect(missing.statusCode).toBe(404);
    expect(missing.headers["content-type"]).toContain("application/problem+json");
    await app.close();
  });

  it("without a build, / is a 503 problem that says how to build the UI, and the API still works", async () => {
    const app = await server(empty);
    const answer = await app.inject({ method: "GET", url: "/" });
    expect(answer.statusCode).toBe(503);
    expect(answer.headers["content-type"]).toContain("application/problem+json");
    expect(answer.json<{ detail: string }>().detail).toContain("npm run build");
    expect((await app.inject({ method: "GET", url: "/health" })).statusCode).toBe(200);
    await app.close();
  });

  it("serves the UI without a token where reads need one, but not the API", async () => {
    const guarded = await startTestHub({ auth: "read" });
    const app = await server(built, guarded);
    expect((await app.inject({ method: "GET", url: "/" })).statusCode).toBe(200);
    expect((await app.inject({ method: "GET", url: "/ui/assets/index-abc123.js" })).statusCode).toBe(200);
    expect((await app.inject({ method: "GET", url: "/things" })).statusCode).toBe(401);
    expect((await app.inject({ method: "POST", url: "/things" })).statusCode).toBe(401);
    // No route takes POST /: 405 with what it takes, with or without a token.
    const post = await app.inject({ method: "POST", url: "/" });
    expect(post.statusCode).toBe(405);
    expect(post.headers.allow).toBe("GET, HEAD, OPTIONS");
    await app.close();
    await guarded.stop();
  });
});
