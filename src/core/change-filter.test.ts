import { describe, expect, it } from "vitest";
import type { Change } from "./change.js";
import { changeMatches } from "./change-filter.js";

function change(seq: number, over: Partial<Change> = {}): Change {
  return {
    seq,
    thing: "urn:a",
    kind: "reported",
    affordance: "p",
    value: seq,
    hlc: "0",
    time: "2026-01-01T00:00:00.000Z",
    cause: { actor: "alice", release: "r1" },
    ...over,
  } as Change;
}

describe("changeMatches", () => {
  it("matches every Change with no filter, and each filter alone by its field", () => {
    const c = change(1);
    expect(changeMatches({}, c)).toBe(true);
    expect(changeMatches({ thing: "urn:a" }, c)).toBe(true);
    expect(changeMatches({ thing: "urn:b" }, c)).toBe(false);
    expect(changeMatches({ kinds: ["emitted", "reported"] }, c)).toBe(true);
    expect(changeMatches({ kinds: ["emitted"] }, c)).toBe(false);
    expect(changeMatches({ kinds: [] }, c)).toBe(false);
    expect(changeMatches({ actor: "alice" }, c)).toBe(true);
    expect(changeMatches({ actor: "bob" }, c)).toBe(false);
    expect(changeMatches({ release: "r1" }, c)).toBe(true);
    expect(changeMatches({ release: "r2" }, change(2, { cause: { actor: "alice" } }))).toBe(false);
    const command = change(3, { cause: { actor: "alice", correlation: "c-1" } });
    expect(changeMatches({ correlation: "c-1" }, command)).toBe(true);
    expect(changeMatches({ correlation: "c-2" }, command)).toBe(false);
    expect(changeMatches({ correlation: "c-1" }, c)).toBe(false);
    expect(changeMatches({ correlation: "c-1", actor: "bob" }, command)).toBe(false);
  });

  it("asks the type of every Change, in order, even of one another filter refuses", () => {
    const asked: number[] = [];
    const type = { accepts: (c: Change) => (asked.push(c.seq), c.seq !== 2) };
    const filter = { type, thing: "urn:a" };
    const seen = [change(1), change(2), change(3, { thing: "urn:b" }), change(4)].filter((c) =>
      changeMatches(filter, c),
    );
    expect(seen.map((c) => c.seq)).toEqual([1, 4]);
    expect(asked).toEqual([1, 2, 3, 4]);
  });
});
