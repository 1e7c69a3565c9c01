// The HTTP API's edges, over a real socket: what each resource says it allows, which media types
// it answers, and what a careless or hostile client gets.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startTestHub, type TestHub } from "./support/test-hub.js";

interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
}

async function expectProblem(res: Response, status: number): Promise<Problem> {
  expect(res.status, `${res.url}: ${res.status}`).toBe(status);
  expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json\b/);
  const problem = (await res.json()) as Problem;
  expect(problem.status).toBe(status);
  return problem;
}

/** A path that only `url`'s pattern names: each parameter given a value no static route has. */
function samplePath(url: string): string {
  return url
    .replace(/:id\b/g, "urn:example:allow")
    .replace(/:seq\b/g, "1")
    .replace(/:name\b/g, "p")
    .replace(/:invocation\b/g, "i")
    .replace(/:username\b/g, "u")
    .replace(/\*$/, "assets/x.js");
}

const METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

describe("the HTTP API's edges", () => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub();
  });
  afterAll(async () => {
    await hub.stop();
  });

  it("answers every method a route does not take with 405 and an Allow of exactly that route's methods", async () => {
    const routes = hub.app.routeTable.list();
    expect(routes.map((r) => r.url)).toContain("/things/batch");
    for (const { url, methods } of routes) {
      const path = samplePath(url);
      expect(path, url).not.toMatch(/\/:|\*/);
      const allow = [...methods].sort().join(", ");
      for (const method of METHODS.filter((m) => !methods.includes(m))) {
        const res = await hub.request(path, { method, auth: false });
        expect(res.status, `${method} ${path}`).toBe(405);
        expect(res.headers.get("allow"), `${method} ${path}`).toBe(allow);
        if (method !== "HEAD") {
          const problem = await expectProblem(res, 405);
          expect(problem.detail).toBe(`${path} takes ${allow}, not ${method}`);
        } else await res.body?.cancel();
      }
    }
  });

  it("answers a static route next to a parametric one as its own resource: /things/batch is POST only", async () => {
    for (const method of ["OPTIONS", "GET", "HEAD", "PUT", "DELETE", "PATCH"]) {
      const res = await hub.request("/things/batch", { method });
      expect(res.status, method).toBe(405);
      expect(res.headers.get("allow"), method).toBe("POST");
    }
    // The parametric route still answers its own paths.
    const thing = await hub.request("/things/urn:example:none");
    await expectProblem(thing, 404);
    const options = await hub.request("/things/urn:example:none", { method: "OPTIONS" });
    expect(options.headers.get("allow")).toBe("DELETE, GET, HEAD, PATCH, PUT");
    await options.body?.cancel();
  });
});
