// The typed client's directory listing against a real hub: every TD once, while the collection
// changes between the pages it reads.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import { DirectoryClient } from "../src/client/index.js";
import { minimalTd, startTestHub, type TestHub } from "./support/test-hub.js";

const ids = Array.from({ length: 30 }, (_, i) => `urn:example:listed-${String(i).padStart(2, "0")}`);

describe("DirectoryClient.listAll", () => {
  let hub: TestHub;
  beforeAll(async () => {
    hub = await startTestHub();
    for (const id of ids) {
      const res = await hub.request(thingPath(id), {
        method: "PUT",
        headers: { "content-type": "application/td+json" },
        body: JSON.stringify(minimalTd({ id })),
      });
      expect(res.status).toBe(201);
    }
  });
  afterAll(async () => {
    await hub.stop();
  });

  it("yields every TD that stays registered, once, when TDs before the next page are removed and added while it lists", async () => {
    let pages = 0;
    const removed = ids.slice(2, 7);
    const added = ["urn:example:listed-00a", "urn:example:listed-99"];
    const client = new DirectoryClient({
      url: hub.url,
      token: hub.token,
      fetch: async (input, init) => {
        const response = await fetch(input, init);
        // After the first page: five TDs it held are removed, which moves the rest of the
        // collection five places towards the start; and two TDs appear, one on each side.
        if (input instanceof URL && input.pathname === "/things" && ++pages === 1) {
          for (const id of removed)
            expect((await hub.request(thingPath(id), { method: "DELETE" })).status).toBe(204);
          for (const id of added) {
            const res = await hub.request(thingPath(id), {
              method: "PUT",
              headers: { "content-type": "application/td+json" },
              body: JSON.stringify(minimalTd({ id })),
            });
            expect(res.status).toBe(201);
          }
        }
        return response;
      },
    });
    const listed: string[] = [];
    for await (const td of client.listAll({ pageSize: 10 })) listed.push(td.id);
    // The first page was read before the removals; the TD added before the end of what was
    // already read is not seen (it was not there all along), the one after it is.
    expect(listed).toEqual([...ids.slice(0, 10), ...ids.slice(10), "urn:example:listed-99"]);
    expect(new Set(listed).size).toBe(listed.length);
  });
});
