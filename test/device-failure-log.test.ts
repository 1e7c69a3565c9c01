// What the hub's log says when a Thing fails a request made through the hub: the caller gets a
// 502 problem with the device's reason; the operator's log gets a line at info, not an error with
// a stack (which is for the hub's own trouble: a full disk, a damaged Log).
import { PassThrough } from "node:stream";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import { createLogger } from "../src/cli/start-hub.js";
import { closedPort } from "./support/closed-port.js";
import { minimalTd, putTd, startTestHub, type TestHub } from "./support/test-hub.js";

const ID = "urn:test:away-lamp";

describe("a Thing's failure behind a 502, in the hub's log", () => {
  let hub: TestHub;
  const lines: Array<Record<string, unknown>> = [];

  beforeAll(async () => {
    const stream = new PassThrough();
    stream.on("data", (chunk: Buffer) => {
      for (const line of chunk.toString("utf8").split("\n").filter(Boolean))
        lines.push(JSON.parse(line) as Record<string, unknown>);
    });
    hub = await startTestHub({ logLevel: "info" }, {}, { logger: createLogger("info", stream) });
    const port = await closedPort();
    await putTd(
      hub,
      minimalTd({
        id: ID,
        properties: { on: { type: "boolean", forms: [{ href: `http://127.0.0.1:${port}/on` }] } },
      }),
    );
  });
  afterAll(async () => hub.stop());

  it("is a line at info naming the Thing and the device's reason, not an error with a stack", async () => {
    const res = await hub.request(`${thingPath(ID)}/properties/on`);
    expect(res.status).toBe(502);
    const detail = ((await res.json()) as { detail: string }).detail;
    const said = lines.filter((line) => line.msg === detail);
    expect(said).toHaveLength(1);
    expect(said[0]).toMatchObject({ level: 30, thing: ID, device: { reason: "unreachable" } });
    expect(said[0]).not.toHaveProperty("err");
    expect(lines.filter((line) => (line.level as number) >= 50)).toEqual([]);
  });
});
