// POST /things/batch over real HTTP, on SQLite and on PostgreSQL: every TD of a batch registered in
// one transaction, or none, with one problem document listing each TD refused.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { thingPath } from "../src/api/index.js";
import type { Change } from "../src/core/index.js";
import { MAX_BATCH_THINGS } from "../src/hub/index.js";
import { dropSchema, postgresProblem, storeUrl, temporarySchema } from "./support/postgres.js";
import { minimalTd, startTestHub, type TestHub } from "./support/test-hub.js";

type Json = Record<string, unknown>;

const TD_BYTES = 4096;
const problem = await postgresProblem();
const schema = temporarySchema();

function batch(hub: TestHub, body: unknown): Promise<Response> {
  return hub.request("/things/batch", {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
  });
}

async function lastSeq(hub: TestHub): Promise<number> {
  const res = await hub.request("/health", { auth: false });
  return ((await res.json()) as { lastSeq: number }).lastSeq;
}

async function changesAfter(hub: TestHub, seq: number): Promise<Change[]> {
  const res = await hub.request(`/changes?cursor=${seq}&limit=100`);
  const body = (await res.json()) as { changes: Change[] };
  return body.changes;
}

const stores = [
  { name: "SQLite", store: undefined, skip: undefined },
  { name: "PostgreSQL", store: storeUrl(schema), skip: problem },
];

describe.each(stores)("POST /things/batch on $name", ({ store, skip }) => {
  let hub: TestHub;
  beforeAll(async () => {
    if (skip !== undefined) return;
    hub = await startTestHub({ bodyLimit: TD_BYTES, ...(store !== undefined && { store }) });
  });
  afterAll(async () => {
    await hub?.stop();
    if (store !== undefined && skip === undefined) await dropSchema(schema);
  });

  it.skipIf(skip !== undefined)(
    "registers, replaces and keeps every TD in one go, its Changes one after another with one correlation",
    async () => {
      const kept = minimalTd({ id: "urn:example:batch:kept", title: "Kept" });
      const replaced = minimalTd({ id: "urn:example:batch:replaced", title: "Old" });
      for (const td of [kept, replaced]) {
        const put = await hub.request(thingPath(td.id as string), {
          method: "PUT",
          headers: { "content-type": "application/td+json" },
          body: JSON.stringify(td),
        });
        expect(put.status).toBe(201);
      }
      const before = await lastSeq(hub);
      const res = await batch(hub, [
        minimalTd({
          id: "urn:example:batch:new",
          links: [{ rel: "dependsOn", href: "urn:example:batch:kept" }],
        }),
        kept,
        { ...replaced, title: "New" },
        minimalTd({ title: "Anonymous" }),
      ]);
      const answer = (await res.json()) as { things: Array<{ id: string; status: string; version: number }> };
      expect(res.status, JSON.stringify(answer)).toBe(200);
      const [created, unchanged, updated, anonymous] = answer.things;
      expect(created).toStrictEqual({ id: "urn:example:batch:new", status: "created", version: before + 1 });
      expect(unchanged).toMatchObject({ id: "urn:example:batch:kept", status: "unchanged" });
      expect(unchanged?.version).toBeLessThanOrEqual(before);
      expect(updated).toStrictEqual({
        id: "urn:example:batch:replaced",
        status: "updated",
        version: before + 3,
      });
      expect(anonymous?.id).toMatch(/^urn:uuid:/);
      expect(anonymous).toMatchObject({ status: "created", version: before + 4 });

      const changes = await changesAfter(hub, before);
      expect(changes.map((c) => [c.seq, c.thing, c.kind])).toStrictEqual([
        [before + 1, "urn:example:batch:new", "described"],
        [before + 2, "urn:example:batch:new", "linked"],
        [before + 3, "urn:example:batch:replaced", "described"],
        [before + 4, anonymous?.id, "described"],
      ]);
      const correlations = new Set(changes.map((c) => c.cause.correlation));
      expect(correlations.size).toBe(1);
      expect([...correlations][0]).toEqual(expect.any(String));
      // Log order is clock order: the edge's Change between its TD's and the next TD's.
      const hlcs = changes.map((c) => c.hlc);
      expect([...hlcs].sort()).toStrictEqual(hlcs);
      const got = await hub.request(thingPath("urn:example:batch:replaced"));
      expect(((await got.json()) as Json).title).toBe("New");
    },
  );

  it.skipIf(skip !== undefined)(
    "refuses the whole batch when any TD is refused, each refused TD listed with its index, id and pointers",
    async () => {
      const existing = minimalTd({ id: "urn:example:batch:existing", title: "Before" });
      await batch(hub, [existing]);
      const before = await lastSeq(hub);
      const res = await batch(hub, [
        minimalTd({ id: "urn:example:batch:fine" }),
        { ...existing, title: "After" },
        minimalTd({ id: "urn:example:batch:untitled", title: undefined }),
        minimalTd({ id: "urn:example:batch:fine", title: "Again" }),
        minimalTd({ id: "urn:example:batch:big", description: "x".repeat(TD_BYTES) }),
        "not a TD",
      ]);
      expect(res.status).toBe(400);
      expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
      const body = (await res.json()) as {
        type: string;
        detail: string;
        errors: Array<{ pointer: string; detail: string }>;
        refused: Array<{ index: number; id?: string; status: number; detail: string; errors: unknown[] }>;
      };
      expect(body.type).toBe("urn:hyperthings:problem:batch-refused");
      expect(body.detail).toMatch(
        /^4 of the batch's 6 TDs refused, none registered: \/2 \(urn:example:batch:untitled\)/,
      );
      expect(body.refused.map((r) => [r.index, r.id, r.status])).toStrictEqual([
        [2, "urn:example:batch:untitled", 400],
        [3, "urn:example:batch:fine", 400],
        [4, "urn:example:batch:big", 413],
        [5, undefined, 400],
      ]);
      expect(body.refused[1]?.errors).toStrictEqual([{ pointer: "/3/id", detail: "repeats the id of /0" }]);
      expect(body.refused[2]?.detail).toContain(`more than the ${TD_BYTES} a TD may have`);
      expect(body.errors.map((e) => e.pointer)).toContain("/4");
      expect(
        body.errors.some((e) => e.pointer.startsWith("/2") && /title/.test(e.detail + body.detail)),
      ).toBe(true);
      // Nothing of it: no Change, the TD before kept, the fine one absent.
      expect(await lastSeq(hub)).toBe(before);
      expect((await hub.request(thingPath("urn:example:batch:fine"))).status).toBe(404);
      const got = await hub.request(thingPath("urn:example:batch:existing"));
      expect(((await got.json()) as Json).title).toBe("Before");
    },
  );

  it.skipIf(skip !== undefined)("a batch whose refused TDs are all too large is a 413", async () => {
    const res = await batch(hub, [
      minimalTd({ id: "urn:example:batch:huge", description: "y".repeat(TD_BYTES) }),
    ]);
    expect(res.status).toBe(413);
    const body = (await res.json()) as { refused: Array<{ index: number; status: number }> };
    expect(body.refused).toStrictEqual([expect.objectContaining({ index: 0, status: 413 })]);
  });

  it.skipIf(skip !== undefined)(
    `refuses a batch of more than ${MAX_BATCH_THINGS} TDs, one that is no array, and an empty one`,
    async () => {
      const before = await lastSeq(hub);
      const many = Array.from({ length: MAX_BATCH_THINGS + 1 }, (_, i) =>
        minimalTd({ id: `urn:example:many:${i}` }),
      );
      const tooMany = await batch(hub, many);
      expect(tooMany.status).toBe(400);
      expect(((await tooMany.json()) as Json).detail).toBe(
        `A batch holds at most ${MAX_BATCH_THINGS} TDs, this one ${MAX_BATCH_THINGS + 1}: send it in parts`,
      );
      const single = await batch(hub, minimalTd({ id: "urn:example:batch:single" }));
      expect(single.status).toBe(400);
      expect(((await single.json()) as Json).detail).toMatch(/must be array/);
      const empty = await batch(hub, []);
      expect(empty.status).toBe(400);
      expect(((await empty.json()) as Json).detail).toBe("The batch holds no TD");
      expect(await lastSeq(hub)).toBe(before);
    },
  );

  it.skipIf(skip !== undefined)("needs the admin token", async () => {
    const res = await hub.request("/things/batch", {
      method: "POST",
      auth: false,
      headers: { "content-type": "application/json" },
      body: JSON.stringify([minimalTd({ id: "urn:example:batch:anon" })]),
    });
    expect(res.status).toBe(401);
  });
});
