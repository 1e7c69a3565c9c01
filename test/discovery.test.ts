// Discovery by introduction against a real HTTP host on port 0: a host whose /.well-known/wot is a
// TD directory's TD (its listing paged with offset/limit), a single TD's URL (relative forms
// resolved against where it came from), a denied address, and `things discover` from the CLI.
import { spawn } from "node:child_process";
import { createServer, type Server } from "node:http";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import { closedPort } from "./support/closed-port.js";
import { minimalTd, startTestHub, type TestHub } from "./support/test-hub.js";

const BIN = fileURLToPath(new URL("../bin/things.js", import.meta.url));
const LISTED = Array.from({ length: 150 }, (_, i) => `urn:test:discovered:${String(i).padStart(3, "0")}`);

function listedTd(id: string): Record<string, unknown> {
  return minimalTd({
    id,
    title: id.slice(-3),
    properties: { on: { type: "boolean", forms: [{ href: "http://127.0.0.1:1/on" }] } },
  });
}

describe("discovery", () => {
  let hub: TestHub;
  let host: Server;
  let origin: string;
  const pagesAsked: string[] = [];
  const registeredBefore: boolean[] = [];

  beforeAll(async () => {
    hub = await startTestHub({ mqtt: false });
    host = createServer((request, response) => {
      const url = new URL(request.url ?? "/", origin);
      const json = (status: number, body: unknown, type = "application/td+json") => {
        response.writeHead(status, { "content-type": type });
        response.end(JSON.stringify(body));
      };
      if (url.pathname === "/.well-known/wot") {
        json(200, {
          "@context": ["https://www.w3.org/2022/wot/td/v1.1", "https://www.w3.org/2022/wot/discovery"],
          "@type": "ThingDirectory",
          title: "A directory",
          securityDefinitions: { nosec_sc: { scheme: "nosec" } },
          security: "nosec_sc",
          properties: { things: { type: "array", readOnly: true, forms: [{ href: "/listing" }] } },
        });
      } else if (url.pathname === "/listing") {
        pagesAsked.push(url.search);
        const offset = Number(url.searchParams.get("offset") ?? 0);
        const limit = Number(url.searchParams.get("limit") ?? 100);
        // What the hub holds of the pages before, when it asks for this one.
        void hub.hub.directory.get(LISTED[offset - 1] ?? "urn:test:none").then(
          () => registeredBefore.push(true),
          () => registeredBefore.push(offset === 0),
        );
        json(200, LISTED.slice(offset, offset + limit).map(listedTd), "application/ld+json");
      } else if (url.pathname === "/lamp/td") {
        json(
          200,
          minimalTd({
            id: "urn:test:single-lamp",
            properties: { on: { type: "boolean", forms: [{ href: "on" }] } },
          }),
        );
      } else if (url.pathname === "/moved/lamp") {
        // As a static file server does for a folder: on to the path with a trailing slash.
        response.writeHead(301, { location: "/moved/lamp/" }).end();
      } else if (url.pathname === "/moved/lamp/") {
        json(
          200,
          minimalTd({
            id: "urn:test:moved-lamp",
            properties: { on: { type: "boolean", forms: [{ href: "on" }] } },
          }),
        );
      } else if (url.pathname === "/moved/lamp/on") {
        json(200, true, "application/json");
      } else if (url.pathname === "/homie/td") {
        // A directory's TD with the id of a Thing a Homie device announced on the hub's broker.
        json(
          200,
          minimalTd({
            id: "urn:homie:boiler-9",
            events: { all: { forms: [{ href: "mqtt://127.0.0.1:1883", "mqv:filter": "#" }] } },
          }),
        );
      } else if (url.pathname === "/broken/td") {
        json(200, { title: "no security" });
      } else {
        json(404, { error: "no such thing" }, "application/json");
      }
    });
    await new Promise<void>((resolve) => host.listen(0, "127.0.0.1", resolve));
    const address = host.address();
    origin = `http://127.0.0.1:${typeof address === "object" && address ? address.port : 0}`;
  });

  afterAll(async () => {
    await new Promise<void>((resolve) => host.close(() => resolve()));
    await hub.stop();
  });

  const discover = (url: string, auth: boolean | string = true) =>
    hub.request("/discover", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ url }),
      auth,
    });

  it("registers every Thing a host's TD directory lists, page by page", async () => {
    const response = await discover(origin);
    expect(response.status).toBe(200);
    const result = (await response.json()) as { registered: string[]; refused: unknown[]; directory: string };
    expect(result.registered).toEqual(LISTED);
    expect(result.refused).toEqual([]);
    expect(result.directory).toBe(`${origin}/listing`);
    expect(pagesAsked).toEqual(["?offset=0&limit=100", "?offset=100&limit=100"]);
    // Each page is registered before the next is fetched: one page is held at a time.
    expect(registeredBefore).toEqual([true, true]);
    const td = (await (await hub.request(thingPath(LISTED[42] ?? ""))).json()) as { title: string };
    expect(td.title).toBe("042");
  });

  it("registers every Thing of another hub, whose directory TD's listing form is a URI template", async () => {
    const other = await startTestHub({ mqtt: false });
    try {
      const ids = ["urn:test:other-1", "urn:test:other-2"];
      for (const id of ids) {
        const res = await other.request(thingPath(id), {
          method: "PUT",
          headers: { "content-type": "application/td+json" },
          body: JSON.stringify(minimalTd({ id })),
        });
        expect(res.status).toBe(201);
      }
      const response = await discover(`${other.url}/.well-known/wot`);
      expect(response.status, await response.clone().text()).toBe(200);
      const result = (await response.json()) as { registered: string[]; directory: string };
      expect(result.registered).toEqual(ids);
      expect(result.directory).toBe(`${other.url}/things`);
    } finally {
      await other.stop();
    }
  });

  it("registers the Thing at a TD's URL, resolving its relative forms against that URL", async () => {
    const response = await discover(`${origin}/lamp/td`);
    expect(await response.json()).toEqual({
      registered: ["urn:test:single-lamp"],
      replaced: [],
      unchanged: [],
      refused: [],
    });
    const td = (await (await hub.request(thingPath("urn:test:single-lamp"))).json()) as { base: string };
    expect(td.base).toBe(`${origin}/lamp/td`);
  });

  it("resolves a TD's relative forms against the URL that answered it, after a redirect", async () => {
    const response = await discover(`${origin}/moved/lamp`);
    expect(await response.json()).toMatchObject({ registered: ["urn:test:moved-lamp"] });
    const td = (await (await hub.request(thingPath("urn:test:moved-lamp"))).json()) as { base: string };
    expect(td.base).toBe(`${origin}/moved/lamp/`);
    const read = await hub.request(`${thingPath("urn:test:moved-lamp")}/properties/on`);
    expect(read.status, await read.clone().text()).toBe(200);
    expect(await read.json()).toBe(true);
  });

  it("answers a URL that does not give a valid TD with the reason", async () => {
    const response = await discover(`${origin}/broken/td`);
    expect(response.status).toBe(400);
    const missing = await discover(`${origin}/nothing/here`);
    expect(missing.status).toBe(502);
    expect(((await missing.json()) as { detail: string }).detail).toMatch(/404/);
  });

  it("refuses a URL whose address the policy denies (the cloud metadata endpoint)", async () => {
    const response = await discover("http://169.254.169.254/latest/meta-data/");
    expect(response.status).toBe(400);
    const problem = (await response.json()) as { detail: string; errors: Array<{ pointer: string }> };
    expect(problem.detail).toMatch(/Discovery may not reach http:\/\/169\.254\.169\.254\/.*not allow/);
    expect(problem.errors[0]?.pointer).toBe("/url");
    const scheme = await discover("file:///etc/passwd");
    expect(scheme.status).toBe(400);
  });

  it("needs an admin token", async () => {
    expect((await discover(`${origin}/lamp/td`, false)).status).toBe(401);
  });

  it("says which Things a discovered TD replaced, and keeps the TD before in the Log", async () => {
    await discover(`${origin}/lamp/td`);
    const lamp = thingPath("urn:test:single-lamp");
    const held = (await (await hub.request(lamp)).json()) as Record<string, unknown>;
    const { registration: _registration, ...td } = held;
    const renamed = await hub.request(lamp, {
      method: "PUT",
      headers: { "content-type": "application/td+json" },
      body: JSON.stringify({
        ...td,
        "@context": "https://www.w3.org/2022/wot/td/v1.1",
        title: "Renamed here",
      }),
    });
    expect(renamed.status).toBe(204);
    const again = await discover(`${origin}/lamp/td`);
    expect(await again.json()).toEqual({
      registered: ["urn:test:single-lamp"],
      replaced: ["urn:test:single-lamp"],
      unchanged: [],
      refused: [],
    });
    const history = await hub.request(`${lamp}/history?kind=described&limit=1`);
    const [last] = ((await history.json()) as { changes: Array<{ previous?: { title: string } }> }).changes;
    expect(last?.previous?.title).toBe("Renamed here");
  });

  it("does not replace a Thing a device announced over MQTT (urn:homie:…), whose broker credentials it would take", async () => {
    const id = "urn:homie:boiler-9";
    const announced = minimalTd({ id, title: "Announced" });
    const put = await hub.request(thingPath(id), {
      method: "PUT",
      headers: { "content-type": "application/td+json" },
      body: JSON.stringify(announced),
    });
    expect(put.status).toBeLessThan(300);
    const res = await discover(`${origin}/homie/td`);
    expect(res.status).toBe(409);
    expect(((await res.json()) as { detail: string }).detail).toBe(
      `${id} is a Thing its device announces over MQTT (Homie or Home Assistant discovery): a TD from elsewhere does not replace it, with the credentials the hub keeps for its broker; remove it first (things rm ${id}) to register this one`,
    );
    const held = (await (await hub.request(thingPath(id))).json()) as { title: string };
    expect(held.title).toBe("Announced");
  });

  it("records nothing for a Thing discovered again as the hub holds it, and says it was unchanged", async () => {
    await discover(`${origin}/lamp/td`);
    const before = await hub.hub.store.lastSeq();
    const again = await discover(`${origin}/lamp/td`);
    expect(await again.json()).toEqual({
      registered: ["urn:test:single-lamp"],
      replaced: [],
      unchanged: ["urn:test:single-lamp"],
      refused: [],
    });
    expect(await hub.hub.store.lastSeq()).toBe(before);
  });

  it("works from the CLI: `things discover URL` prints the ids registered, and says which it held already", async () => {
    await discover(`${origin}/lamp/td`);
    const child = spawn(
      process.execPath,
      [BIN, "discover", `${origin}/lamp/td`, "--url", hub.url, "--token", hub.token],
      {
        stdio: ["ignore", "pipe", "pipe"],
      },
    );
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (chunk: Buffer) => (stdout += chunk.toString("utf8")));
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
    expect(code).toBe(0);
    expect(stdout).toBe("urn:test:single-lamp\n");
    expect(stderr).toBe("1 Thing(s) registered, 1 unchanged (the hub held them so already)\n");
  });

  it("says what discovery takes when nothing is at the URL: a TD's URL, or a host with a directory", async () => {
    // A host that serves no /.well-known/wot, as a device serving only its own TD does.
    const bare = createServer((_request, response) => response.writeHead(404).end());
    await new Promise<void>((resolve) => bare.listen(0, "127.0.0.1", resolve));
    try {
      const address = bare.address() as { port: number };
      const response = await discover(`http://127.0.0.1:${address.port}`);
      expect(response.status).toBe(502);
      const problem = (await response.json()) as { detail: string };
      expect(problem.detail).toBe(
        `http://127.0.0.1:${address.port}/.well-known/wot: GET answered 404: 127.0.0.1:${address.port} announces no TD directory at /.well-known/wot; give the URL of a Thing Description itself`,
      );
    } finally {
      await new Promise((resolve) => bare.close(resolve));
    }
    const child = spawn(
      process.execPath,
      [BIN, "discover", `${origin}/nothing`, "--url", hub.url, "--token", hub.token],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let stderr = "";
    child.stderr.on("data", (chunk: Buffer) => (stderr += chunk.toString("utf8")));
    const code = await new Promise<number | null>((resolve) => child.once("close", resolve));
    expect(code).toBe(1);
    expect(stderr).toBe(
      `things: ${origin}/nothing: GET answered 404: no Thing Description is there; give a TD's URL, a TD directory's, or a bare host (http://host:port) to ask its /.well-known/wot\n`,
    );
  });

  it("says what to check when nothing answers at the URL: the device, and its address as the hub reaches it", async () => {
    const port = await closedPort();
    const response = await discover(`http://127.0.0.1:${port}/.well-known/wot`);
    expect(response.status).toBe(502);
    expect(((await response.json()) as { detail: string }).detail).toBe(
      `http://127.0.0.1:${port}/.well-known/wot: GET failed: nothing listens at 127.0.0.1 port ${port} ` +
        "(connection refused, ECONNREFUSED): check that the device runs and that the URL's host and port " +
        "are its own, as this hub reaches them",
    );
  });
});
