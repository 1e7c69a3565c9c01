// `things observe --json` and `things watch --json` print a Change in one shape: the Log's, as
// `GET /changes/{seq}` gives it — the values a Thing had when observe began as much as the live ones.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import type { Change } from "../src/core/index.js";
import { minimalTd, putTd, startTestHub, type TestHub } from "./support/test-hub.js";
import { runThings, type ThingsProcess } from "./support/things-process.js";

const ID = "urn:test:change-json:meter";
const FORMS = [{ href: "http://meter.example/p" }];

async function report(hub: TestHub, affordance: string, value: unknown): Promise<number> {
  const res = await hub.request(`${thingPath(ID)}/changes`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ kind: "reported", affordance, value }),
  });
  const body = (await res.json()) as { seqs: number[] };
  expect(res.status, JSON.stringify(body)).toBe(201);
  return body.seqs[0] ?? 0;
}

async function changeAt(hub: TestHub, seq: number): Promise<Change> {
  return (await (await hub.request(`/changes/${seq}`)).json()) as Change;
}

/** The JSON line of the Change of `seq` that `child` printed, once it has. */
async function lineOf(child: ThingsProcess, seq: number): Promise<Change> {
  const [line] = await child.waitFor(new RegExp(`^\\{.*"seq":${seq}\\b.*$`, "m"));
  return JSON.parse(line) as Change;
}

describe("the JSON of a Change on the CLI's live commands", () => {
  let hub: TestHub;

  beforeAll(async () => {
    hub = await startTestHub();
    await putTd(
      hub,
      minimalTd({
        id: ID,
        properties: {
          power: { type: "number", forms: FORMS },
          label: { type: "string", forms: FORMS },
        },
      }),
    );
  });
  afterAll(async () => {
    await hub?.stop();
  });

  it("observe --json prints the values now and the live ones as watch --json does: each as GET /changes/{seq} gives it", async () => {
    const power = await report(hub, "power", 12.5);
    const label = await report(hub, "label", "hall");
    const auth = ["--url", hub.url, "--token", hub.token];
    const observe = runThings(["observe", ID, "--json", ...auth]);
    const watch = runThings(["watch", "--thing", ID, "--json", ...auth]);
    try {
      // The values now: the Changes that reported them, in the Log's shape.
      expect(await lineOf(observe, power)).toEqual(await changeAt(hub, power));
      expect(await lineOf(observe, label)).toEqual(await changeAt(hub, label));
      await watch.waitFor(/^watching /m, "stderr");
      const live = await report(hub, "power", 13);
      const logged = await changeAt(hub, live);
      expect(logged.previous).toBe(12.5);
      expect(await lineOf(observe, live)).toEqual(logged);
      expect(await lineOf(watch, live)).toEqual(logged);
    } finally {
      observe.process.kill("SIGINT");
      watch.process.kill("SIGINT");
      await Promise.all([observe.exited, watch.exited]);
    }
  });
});
