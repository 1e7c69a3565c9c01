// GET /graph/summary through a real hub: the light projection the UI draws the graph from — every
// Thing with its title, expanded types and reachability, the links between registered Things only,
// the vocabulary's prefixes and those the TDs declare — kept live from the Bus, rebuilt after a restart, and its bad input.
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import type { GraphSummary } from "../src/client/hub-client.js";
import { InteractionClient } from "../src/client/index.js";
import { changeAfter, minimalTd, startTestHub, type TestHub } from "./support/test-hub.js";

const SAREF = ["https://www.w3.org/2022/wot/td/v1.1", { saref: "https://saref.etsi.org/core/" }];
const APPLIANCE = "https://saref.etsi.org/core/Appliance";
const SENSOR = "https://saref.etsi.org/core/TemperatureSensor";

describe("GET /graph/summary", () => {
  let hub: TestHub | undefined;
  const dirs: string[] = [];
  afterEach(async () => {
    await hub?.stop();
    hub = undefined;
    for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  });

  function running(): TestHub {
    if (hub === undefined) throw new Error("no hub started");
    return hub;
  }

  async function put(td: Record<string, unknown>): Promise<void> {
    const response = await running().request(`/things/${encodeURIComponent(String(td.id))}`, {
      method: "PUT",
      headers: { "content-type": "application/td+json" },
      body: JSON.stringify(td),
    });
    expect(response.status, await response.clone().text()).toBeLessThan(300);
  }

  /** A Thing nothing answers for: observation records it unreachable (a real failed connection). */
  async function dead(id: string): Promise<void> {
    const after = await running().hub.store.lastSeq();
    await put(
      minimalTd({
        id,
        title: "Dead lamp",
        links: [{ rel: "partOf", href: "urn:t:machine" }],
        properties: {
          on: {
            type: "boolean",
            observable: true,
            "hyperthings:pollInterval": 50,
            forms: [{ href: "http://127.0.0.1:9/on", op: ["readproperty"] }],
          },
        },
      }),
    );
    await changeAfter(running(), after, (c) => c.thing === id && c.kind === "unreachable");
  }

  function client(): InteractionClient {
    return new InteractionClient({ url: running().url, token: running().token });
  }

  function byId(summary: GraphSummary): Map<string, GraphSummary["things"][number]> {
    return new Map(summary.things.map((t) => [t.id, t]));
  }

  async function fleet(): Promise<void> {
    await put(
      minimalTd({ "@context": SAREF, "@type": "saref:Appliance", id: "urn:t:machine", title: "Machine" }),
    );
    await put(
      minimalTd({
        "@context": SAREF,
        "@type": ["saref:TemperatureSensor", "Thing"],
        id: "urn:t:probe",
        title: "Probe",
        links: [
          { rel: "partOf", href: "urn:t:machine" },
          // Not registered: no edge to draw.
          { rel: "near", href: "urn:t:nowhere" },
        ],
      }),
    );
  }

  it("gives every Thing with expanded types and each link between registered Things", async () => {
    hub = await startTestHub();
    await fleet();
    const summary = await client().graphSummary();
    expect(summary.prefixes.saref).toBe("https://saref.etsi.org/core/");
    const things = byId(summary);
    expect(things.size).toBe(2);
    expect(things.get("urn:t:machine")).toEqual({
      id: "urn:t:machine",
      title: "Machine",
      types: [APPLIANCE],
      reachable: true,
    });
    expect(things.get("urn:t:probe")?.types).toContain(SENSOR);
    expect(summary.links).toEqual([{ from: "urn:t:probe", rel: "partOf", to: "urn:t:machine" }]);
  });

  it("follows reachability, new links and removals live", async () => {
    hub = await startTestHub({ observe: true, reconnectMs: 20, maxReconnectMs: 200 });
    await fleet();
    await client().graphSummary(); // the index is built; what follows comes from the Bus
    await dead("urn:t:lamp");
    await put(
      minimalTd({ id: "urn:t:room", title: "Room", links: [{ rel: "contains", href: "urn:t:probe" }] }),
    );
    let summary = await client().graphSummary();
    expect(byId(summary).get("urn:t:lamp")?.reachable).toBe(false);
    expect(byId(summary).get("urn:t:machine")?.reachable).toBe(true);
    expect(summary.links).toContainEqual({ from: "urn:t:lamp", rel: "partOf", to: "urn:t:machine" });
    expect(summary.links).toContainEqual({ from: "urn:t:room", rel: "contains", to: "urn:t:probe" });

    expect((await hub.request("/things/urn%3At%3Aprobe", { method: "DELETE" })).status).toBe(204);
    summary = await client().graphSummary();
    expect(byId(summary).has("urn:t:probe")).toBe(false);
    // Links into and out of a removed Thing are gone with it.
    expect(summary.links).toEqual([{ from: "urn:t:lamp", rel: "partOf", to: "urn:t:machine" }]);
  });

  it("is rebuilt from the store after a restart, reachability included", async () => {
    const dataDir = mkdtempSync(join(tmpdir(), "hyperthings-summary-"));
    dirs.push(dataDir);
    hub = await startTestHub({ dataDir, observe: true, reconnectMs: 20, maxReconnectMs: 200 });
    await fleet();
    await dead("urn:t:lamp");
    const before = await client().graphSummary();
    await hub.stop();
    // Without observation: what the summary says comes from the Log alone.
    hub = await startTestHub({ dataDir });
    const after = await client().graphSummary();
    expect(byId(after).get("urn:t:lamp")?.reachable).toBe(false);
    // The same links (the order is the index's, not promised).
    expect(after.links).toHaveLength(2);
    expect(after.links).toEqual(expect.arrayContaining(before.links));
    expect([...byId(after).keys()].sort()).toEqual([...byId(before).keys()].sort());
  });

  it("gives the prefixes the TDs declare with one namespace, so their types can be written as they are", async () => {
    hub = await startTestHub();
    await put(
      minimalTd({
        id: "urn:t:pump",
        title: "Pump",
        "@context": ["https://www.w3.org/2022/wot/td/v1.1", { acme: "https://acme.example/ns#" }],
        "@type": "acme:Pump",
      }),
    );
    // Two TDs giving `dual` different namespaces: it says nothing on its own, so it is left out.
    for (const [id, namespace] of [
      ["urn:t:a", "https://a.example/"],
      ["urn:t:b", "https://b.example/"],
    ])
      await put(
        minimalTd({
          id,
          "@context": ["https://www.w3.org/2022/wot/td/v1.1", { dual: namespace }],
          "@type": "dual:Thing",
        }),
      );
    const summary = await client().graphSummary();
    expect(byId(summary).get("urn:t:pump")?.types).toEqual(["https://acme.example/ns#Pump"]);
    expect(summary.prefixes.acme).toBe("https://acme.example/ns#");
    expect(summary.prefixes.saref).toBe("https://saref.etsi.org/core/");
    expect(summary.prefixes).not.toHaveProperty("dual");
  });

  it("refuses unknown parameters, and anonymous callers when reads need a token", async () => {
    hub = await startTestHub({ auth: "read" });
    const bad = await hub.request("/graph/summary?fields=id");
    expect(bad.status).toBe(400);
    expect(bad.headers.get("content-type")).toContain("application/problem+json");
    const anonymous = await hub.request("/graph/summary", { auth: false });
    expect(anonymous.status).toBe(401);
    expect(anonymous.headers.get("content-type")).toContain("application/problem+json");
  });
});
