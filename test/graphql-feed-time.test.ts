// GraphQL's global feed bounded by time, as GET /changes and `things changes` are: "what did
// admin do between 02:55 and 03:05" in one query. A real hub on port 0 with a clock set by hand.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { minimalTd, putTd, startTestHub, type TestHub } from "./support/test-hub.js";

const THERMOSTAT = "urn:test:gql-thermostat";

interface Answer {
  data?: { changes: { changes: Array<{ seq: number; value: unknown; time: string }>; next: number | null } };
  errors?: Array<{ message: string; extensions?: { code?: string; errors?: Array<{ pointer: string }> } }>;
}

describe("GraphQL changes(since:, until:)", () => {
  let hub: TestHub;
  let now = new Date("2026-03-01T02:50:00.000Z");

  beforeAll(async () => {
    hub = await startTestHub({}, {}, { clock: () => now });
    await putTd(
      hub,
      minimalTd({
        id: THERMOSTAT,
        properties: { setpoint: { type: "number", forms: [{ href: "http://127.0.0.1:9/s" }] } },
      }),
    );
    for (const [time, value] of [
      ["2026-03-01T02:55:00.000Z", 21],
      ["2026-03-01T03:00:00.000Z", 30],
      ["2026-03-01T03:10:00.000Z", 22],
    ] as const) {
      now = new Date(time);
      await hub.hub.ingest(THERMOSTAT, [{ kind: "reported", affordance: "setpoint", value }], {
        actor: "admin",
        via: "test",
      });
    }
    now = new Date("2026-03-01T04:00:00.000Z");
  });

  afterAll(async () => hub.stop());

  async function feed(args: string): Promise<Answer> {
    const response = await hub.request("/graphql", {
      method: "POST",
      auth: true,
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        query: `{ changes(filter: { thing: "${THERMOSTAT}", kinds: ["reported"], actor: "admin" }, ${args}) { changes { seq value time } next } }`,
      }),
    });
    return (await response.json()) as Answer;
  }

  it("keeps the Changes between since and until, both inclusive, oldest or newest first", async () => {
    const asc = await feed(`since: "2026-03-01T02:55:00Z", until: "2026-03-01T03:00:00Z"`);
    expect(asc.errors).toBeUndefined();
    expect(asc.data?.changes.changes.map((c) => c.value)).toEqual([21, 30]);
    const desc = await feed(`since: "2026-03-01T02:56:00Z", order: DESC`);
    expect(desc.data?.changes.changes.map((c) => c.value)).toEqual([22, 30]);
    // Relative times read against the hub's clock (04:00 here).
    const relative = await feed(`since: "-62m", until: "-59m"`);
    expect(relative.data?.changes.changes.map((c) => c.value)).toEqual([30]);
  });

  it("refuses a time it cannot read, and since after until, naming the argument", async () => {
    const bad = await feed(`since: "yesterdy"`);
    expect(bad.errors?.map((e) => e.extensions?.code)).toEqual(["BAD_USER_INPUT"]);
    expect(bad.errors?.[0]?.extensions?.errors?.[0]?.pointer).toBe("/since");
    const crossed = await feed(`since: "2026-03-01T03:10:00Z", until: "2026-03-01T02:55:00Z"`);
    expect(crossed.errors?.map((e) => e.extensions?.code)).toEqual(["BAD_USER_INPUT"]);
  });
});
