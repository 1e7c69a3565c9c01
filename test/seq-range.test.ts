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
    expect(many.detail).toBe(`seq ${UNSAFE} is out of range: at most ${LARGEST}`);
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
    // In a variable, the JSON of the request is read before GraphQL sees it: refused all the same.
    const variable = await ask({
      query: "query ($seq: Int!) { change(seq: $seq) { seq } }",
      variables: { seq: "UNSAFE" },
    });
    expect(variable.data).toBeUndefined();
    expect(variable.errors?.[0]?.message).toMatch(/^Variable "\$seq" got invalid value/);
    const history = await ask({
      query: `{ thing(id: "urn:test:seq-range") { history(after: ${UNSAFE}) { next } } }`,
    });
    expect(history.data).toBeUndefined();
    expect(history.errors?.[0]?.message).toContain(UNSAFE);
  });
});
