// A seq past Number.MAX_SAFE_INTEGER (2^53 - 1) in a request, on every surface that takes one: a
// JavaScript number is no longer the seq written there (9007199254740993 reads as ...992), so it
// is refused as out of range, naming the parameter and the seq as written — never rounded into a
// "past the end" message, nor read as another seq.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { minimalTd, putTd, startTestHub, type TestHub } from "./support/test-hub.js";

interface Problem {
  status: number;
  detail: string;
  errors?: Array<{ pointer: string; detail: string }>;
}

/** 2^53 + 1: Number() reads it as 2^53, a seq that differs from the one written. */
const UNSAFE = "9007199254740993";
/** 2^53 - 1: the largest seq a request may name, past this Log's end. */
const LARGEST = "9007199254740991";
/** A 16-digit seq within range, past this Log's end. */
const SIXTEEN_DIGITS = "1000000000000000";

describe("a seq past 2^53 in a request", () => {
  let hub: TestHub;
  let end: number;

  beforeAll(async () => {
    hub = await startTestHub({});
    await putTd(hub, minimalTd({ id: "urn:test:seq-range" }));
    end = await hub.hub.store.lastSeq();
  });
  afterAll(async () => hub.stop());

  async function problemOf(path: string, headers: Record<string, string> = {}): Promise<Problem> {
    const res = await hub.request(path, { headers });
    expect(res.status, path).toBe(400);
    expect(res.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    return (await res.json()) as Problem;
  }

  it("GET /changes/{seq} and /changes/{seq}/why refuse it as out of range, and say past the end below it", async () => {
    for (const path of [`/changes/${UNSAFE}`, `/changes/${UNSAFE}/why`, "/changes/99999999999999999999"]) {
      const seq = path.split("/")[2];
      const problem = await problemOf(path);
      expect(problem.detail).toBe(`seq ${seq} is out of range: at most ${LARGEST}`);
      expect(problem.errors?.map((e) => e.pointer)).toEqual(["/params/seq"]);
    }
    for (const seq of [LARGEST, SIXTEEN_DIGITS]) {
      expect((await problemOf(`/changes/${seq}`)).detail).toBe(
        `seq ${seq} is past the end of the Log (${end} Changes)`,
      );
    }
  });

  it("GET /log/proof/inclusion?seq= and /log/proof/inclusions?seqs= refuse it as out of range", async () => {
    const one = await problemOf(`/log/proof/inclusion?seq=${UNSAFE}`);
    expect(one.detail).toBe(`Invalid query: query/seq is out of range: at most ${LARGEST}, not "${UNSAFE}"`);
    expect(one.errors?.map((e) => e.pointer)).toEqual(["/query/seq"]);
    const many = await problemOf(`/log/proof/inclusions?seqs=1,${UNSAFE}`);
    // As written, past every tree: never read as a nearby seq.
    const end = (await problemOf(`/log/proof/inclusion?seq=${LARGEST}`)).detail.match(/tree of (\d+)/)?.[1];
    expect(many.detail).toBe(
      `seqs item 2 ("${UNSAFE}") is past the tree of ${end} Changes: it must be a whole number from 1 to ${end}`,
    );
    expect(many.errors?.map((e) => e.pointer)).toEqual(["/query/seqs"]);
  });

  it("Last-Event-ID refuses it as out of range, and a 16-digit id within range as past the end", async () => {
    for (const path of ["/changes/stream", "/events"]) {
      const unsafe = await problemOf(path, { "last-event-id": UNSAFE });
      expect(unsafe.detail).toBe(`Last-Event-ID ${UNSAFE} is out of range: at most ${LARGEST}`);
      expect(unsafe.errors?.map((e) => e.pointer)).toEqual(["/headers/last-event-id"]);
      const past = await problemOf(path, { "last-event-id": SIXTEEN_DIGITS });
      expect(past.detail).toMatch(
        new RegExp(`^Last-Event-ID ${SIXTEEN_DIGITS} is past the end of this hub's log`),
      );
    }
  });

  it("every surface takes a seq in the same form, and refuses the same others", async () => {
    // The path, the query and the header: 1 as the hub writes it, not with a leading zero, a sign,
    // a space, a fraction, an exponent or in hex.
    const surfaces: Array<[string, (seq: string) => [string, Record<string, string>]]> = [
      ["/params/seq", (seq) => [`/changes/${encodeURIComponent(seq)}`, {}]],
      ["/query/seq", (seq) => [`/log/proof/inclusion?seq=${encodeURIComponent(seq)}`, {}]],
      ["/query/seqs", (seq) => [`/log/proof/inclusions?seqs=${encodeURIComponent(seq)}`, {}]],
      ["/query/after", (seq) => [`/log/entries?after=${encodeURIComponent(seq)}`, {}]],
      ["/headers/last-event-id", (seq) => ["/changes/stream", { "last-event-id": seq }]],
    ];
    for (const [pointer, request] of surfaces) {
      // (HTTP takes the spaces around a header's value off: " 1" is "1" there.)
      const spaced = pointer === "/headers/last-event-id" ? [] : [" 1"];
      for (const bad of ["01", "+1", "1.0", "1e0", "0x1", ...spaced]) {
        const [path, headers] = request(bad);
        const problem = await problemOf(path, headers);
        expect(
          problem.errors?.map((e) => e.pointer),
          `${pointer} ${bad}`,
        ).toEqual([pointer]);
      }
    }
    for (const [pointer, request] of surfaces.slice(0, 4)) {
      const [path] = request("1");
      expect((await hub.request(path)).status, pointer).toBe(200);
    }
    const controller = new AbortController();
    const stream = await hub.request("/changes/stream", {
      headers: { "last-event-id": "1" },
      signal: controller.signal,
    });
    expect(stream.status).toBe(200);
    controller.abort();
    // GraphQL's grammar (an IntValue) and JSON's (a variable) have no leading zero either.
    const res = await hub.request("/graphql", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ query: "{ change(seq: 01) { seq } }" }),
    });
    const answer = (await res.json()) as { data?: unknown; errors?: Array<{ message: string }> };
    expect(answer.data).toBeUndefined();
    expect(answer.errors?.[0]?.message).toMatch(/^Syntax Error: Invalid number, unexpected digit after 0/);
  });

  it("GraphQL refuses it as an argument or a variable, and answers no Change for it", async () => {
    const ask = async (body: object) => {
      const res = await hub.request("/graphql", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body).replace('"UNSAFE"', UNSAFE),
      });
      return (await res.json()) as { data?: unknown; errors?: Array<{ message: string }> };
    };
    const literal = await ask({ query: `{ change(seq: ${UNSAFE}) { seq } }` });
    expect(literal.data).toBeUndefined();
    expect(literal.errors?.[0]?.message).toContain(UNSAFE);
    // In a variable, the JSON of the request is read before GraphQL sees it: refused there, as
    // any JSON body with an integer a 64-bit float does not hold (a problem document naming it).
    const variable = await hub.request("/graphql", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        query: "query ($seq: SafeInt!) { change(seq: $seq) { seq } }",
        variables: { seq: "UNSAFE" },
      }).replace('"UNSAFE"', UNSAFE),
    });
    expect(variable.status).toBe(400);
    expect(variable.headers.get("content-type")).toMatch(/^application\/problem\+json/);
    expect(await variable.json()).toMatchObject({
      type: "urn:hyperthings:problem:validation",
      errors: [{ pointer: "/variables/seq" }],
    });
    const history = await ask({
      query: `{ thing(id: "urn:test:seq-range") { history(after: ${UNSAFE}) { next } } }`,
    });
    expect(history.data).toBeUndefined();
    expect(history.errors?.[0]?.message).toContain(UNSAFE);
  });

  it("GraphQL takes a seq past 2^31 - 1 (its Int's end) as the seq it is: past this Log's end", async () => {
    const res = await hub.request("/graphql", {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({
        query: `query ($after: SafeInt) { change(seq: ${LARGEST}) { seq } changes(after: $after) { changes { seq } next } }`,
        variables: { after: 3_000_000_000 },
      }),
    });
    const answer = (await res.json()) as { data?: unknown; errors?: unknown };
    expect(answer.errors).toBeUndefined();
    expect(answer.data).toEqual({ change: null, changes: { changes: [], next: null } });
  });
});
