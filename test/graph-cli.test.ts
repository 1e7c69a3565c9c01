// `things link|unlink|find|links|graph`: the built CLI as a child process against a real hub on
// port 0 (`npm test` builds dist/ first; otherwise run `npm run build`).
import { execFile } from "node:child_process";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { minimalTd, startTestHub, type TestHub } from "./support/test-hub.js";

const BIN = fileURLToPath(new URL("../bin/things.js", import.meta.url));

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function things(hub: TestHub, args: string[]): Promise<Run> {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) if (!k.startsWith("HYPERTHINGS_")) env[k] = v;
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      [BIN, "--url", hub.url, "--token", hub.token, ...args],
      { env, timeout: 20_000, encoding: "utf8" },
      (err, stdout, stderr) => {
        if (err === null) resolve({ code: 0, stdout, stderr });
        else if (typeof err.code === "number") resolve({ code: err.code, stdout, stderr });
        else reject(new Error(`things ${args.join(" ")} did not finish: ${stderr}`));
      },
    );
  });
}

describe("things link, unlink, find, links and graph", () => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub();
    const put = async (td: Record<string, unknown>) => {
      const r = await hub.request(`/things/${encodeURIComponent(String(td.id))}`, {
        method: "PUT",
        headers: { "content-type": "application/td+json" },
        body: JSON.stringify(td),
      });
      expect(r.status).toBeLessThan(300);
    };
    await put(minimalTd({ id: "urn:c:host", "@type": "Host", title: "Host one" }));
    await put(minimalTd({ id: "urn:c:web", "@type": "Container", title: "Web" }));
    await put(
      minimalTd({
        id: "urn:c:orders",
        "@type": "Service",
        title: "Orders",
        properties: { up: { type: "boolean", forms: [{ href: "http://127.0.0.1:9/up" }] } },
        links: [{ rel: "runsOn", href: "urn:c:web" }],
      }),
    );
    const r = await hub.request(`/things/${encodeURIComponent("urn:c:orders")}/changes`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify([{ kind: "reported", affordance: "up", value: true }]),
    });
    expect(r.status).toBeLessThan(300);
  });
  afterAll(async () => {
    await hub.stop();
  });

  it("links two Things, then finds what runs on the host transitively, with state", async () => {
    const link = await things(hub, ["link", "urn:c:web", "runsOn", "urn:c:host"]);
    expect(link).toMatchObject({ code: 0, stdout: "linked urn:c:web runsOn urn:c:host\n" });

    const table = await things(hub, ["find", 'out(runsOn, *) { id = "urn:c:host" }']);
    expect(table.code).toBe(0);
    const lines = table.stdout.trimEnd().split("\n");
    expect(lines[0]).toMatch(/^ID\s+TITLE\s+TYPE\s+STATE$/);
    expect(lines.slice(1).map((l) => l.split(/\s+/)[0])).toEqual(["urn:c:orders", "urn:c:web"]);
    expect(lines[1]).toContain("up=true");
    // --limit shows that many, and says when more match; not when exactly that many do.
    const first = await things(hub, ["find", 'out(runsOn, *) { id = "urn:c:host" }', "--limit", "1"]);
    expect(
      first.stdout
        .trimEnd()
        .split("\n")
        .slice(1)
        .map((l) => l.split(/\s+/)[0]),
    ).toEqual(["urn:c:orders"]);
    expect(first.stderr).toBe("showing the first 1; give --limit for more\n");
    const both = await things(hub, ["find", 'out(runsOn, *) { id = "urn:c:host" }', "--limit", "2"]);
    expect(both.stderr).toBe("");

    const json = await things(hub, ["find", "type = Service", "--json"]);
    expect(JSON.parse(json.stdout)).toEqual([
      expect.objectContaining({
        id: "urn:c:orders",
        state: { up: true },
      }),
    ]);
    expect((JSON.parse(json.stdout) as Array<{ td: { title: string } }>)[0]?.td.title).toBe("Orders");
  });

  it("prints a neighbourhood as a tree", async () => {
    const run = await things(hub, ["graph", "urn:c:host", "--depth", "2"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(
      [
        // Types as the vocabulary's prefixes write them, not as full IRIs.
        "urn:c:host  Host one  [ht:Host]",
        "└─ runsOn ← urn:c:web  Web  [ht:Container]",
        "   └─ runsOn ← urn:c:orders  Orders  [ht:Service]",
        "",
      ].join("\n"),
    );
    const incoming = await things(hub, ["links", "urn:c:host", "--in", "--json"]);
    expect(JSON.parse(incoming.stdout)).toEqual([
      { from: "urn:c:web", rel: "runsOn", to: "urn:c:host", resolved: true },
    ]);
  });

  it("points a Thing met again to where it is drawn: above, or below when it is expanded further down", async () => {
    // a → b → c → a: from a, c is one hop away (in) but is met first two hops away, under b.
    for (const [id, to] of [
      ["urn:c:ring-a", "urn:c:ring-b"],
      ["urn:c:ring-b", "urn:c:ring-c"],
      ["urn:c:ring-c", "urn:c:ring-a"],
    ] as const) {
      const r = await hub.request(`/things/${encodeURIComponent(id)}`, {
        method: "PUT",
        headers: { "content-type": "application/td+json" },
        body: JSON.stringify(minimalTd({ id, title: id.slice(-1), links: [{ rel: "next", href: to }] })),
      });
      expect(r.status).toBe(201);
    }
    const run = await things(hub, ["graph", "urn:c:ring-a", "--depth", "2"]);
    expect(run.code).toBe(0);
    expect(run.stdout).toBe(
      [
        "urn:c:ring-a  a",
        "├─ next → urn:c:ring-b  b",
        "│  └─ next → urn:c:ring-c  c  (see below)",
        "└─ next ← urn:c:ring-c  c",
        "",
      ].join("\n"),
    );
  });

  it("unlinks, and says in one line why a bad filter, a missing link or a depth past 10 fails", async () => {
    expect((await things(hub, ["unlink", "urn:c:web", "runsOn", "urn:c:host"])).code).toBe(0);

    const missing = await things(hub, ["unlink", "urn:c:web", "runsOn", "urn:c:host"]);
    expect(missing.code).toBe(1);
    expect(missing.stderr).toMatch(/^things: urn:c:web has no runsOn link to urn:c:host\n$/);

    const deep = await things(hub, ["graph", "urn:c:host", "--depth", "11"]);
    expect(deep.code).toBe(2);
    expect(deep.stderr).toBe('things: --depth must be a whole number from 1 to 10, not "11"\n');

    const bad = await things(hub, ["find", "type = Host AND"]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/^things: Bad graph filter at position 16: [^\n]+\n$/);
  });
});
