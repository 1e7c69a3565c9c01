// The Changes view's TD versions (ui/src/thing-descriptions.ts) over a Log held in the test: the TD
// in force at a seq, read a page of versions at a time, several Things a request, and kept.
import { describe, expect, it } from "vitest";
import type { Change } from "../src/client/index.js";
import {
  THINGS_PER_REQUEST,
  ThingDescriptions,
  type DescriptionsAsked,
  type DescriptionsPage,
} from "../ui/src/thing-descriptions.js";

type Version = Pick<Change, "thing" | "seq" | "kind" | "value">;

/** A Log's `described`/`removed` Changes, read as the feed reads them: newest first, `per` a page. */
function logOf(versions: Version[], per = 2) {
  const requests: DescriptionsAsked[][] = [];
  const source = async (asked: readonly DescriptionsAsked[]): Promise<DescriptionsPage[]> => {
    requests.push([...asked]);
    return asked.map(({ thing, before }) => {
      const older = versions
        .filter((v) => v.thing === thing && (before === undefined || v.seq < before))
        .sort((a, b) => b.seq - a.seq);
      const changes = older.slice(0, per);
      const last = changes.at(-1);
      return { changes, ...(older.length > per && last !== undefined && { next: last.seq }) };
    });
  };
  return { source, requests };
}

const td = (unit: string) => ({ title: "Boiler", properties: { t: { unit } } });
const described = (thing: string, seq: number, unit: string): Version => ({
  thing,
  seq,
  kind: "described",
  value: td(unit),
});

describe("a Thing's TD in force at a seq", () => {
  // The boiler measured in K, then °C, then °F, then was removed and registered again in K.
  const versions = [
    described("urn:b", 1, "K"),
    described("urn:b", 10, "Cel"),
    described("urn:b", 20, "[degF]"),
    { thing: "urn:b", seq: 30, kind: "removed", value: undefined } as Version,
    described("urn:b", 40, "K"),
  ];

  it("is the Thing's last TD before the seq, read down only as far as the rows need", async () => {
    const { source, requests } = logOf(versions);
    const tds = new ThingDescriptions(source);
    await tds.cover([
      { thing: "urn:b", seq: 45 },
      { thing: "urn:b", seq: 25 },
    ]);
    expect(tds.at("urn:b", 45)).toEqual(td("K"));
    expect(tds.at("urn:b", 25)).toEqual(td("[degF]"));
    expect(tds.at("urn:b", 35)).toBeUndefined(); // removed
    // 40 and 30, then 20 and 10: the version before seq 25 is 20; 1 is not read.
    expect(requests.map((batch) => batch.map((asked) => asked.before))).toEqual([[undefined], [30]]);
    expect(tds.at("urn:b", 15)).toEqual(td("Cel"));
    expect(tds.covers("urn:b", 11)).toBe(true);
    expect(tds.covers("urn:b", 10)).toBe(false);
    expect(tds.at("urn:b", 10)).toBeUndefined();

    // Older rows (Show more): only the versions below those read.
    await tds.cover([{ thing: "urn:b", seq: 5 }]);
    expect(tds.at("urn:b", 5)).toEqual(td("K"));
    expect(tds.at("urn:b", 10)).toEqual(td("K"));
    expect(requests.at(-1)).toEqual([{ thing: "urn:b", before: 10 }]);
    // Everything read: no request more, for any seq.
    await tds.cover([{ thing: "urn:b", seq: 2 }]);
    expect(requests).toHaveLength(3);
  });

  it("asks for many Things a few requests, not one a Thing, and never again for one read", async () => {
    const things = Array.from({ length: 60 }, (_, i) => `urn:s${i}`);
    const { source, requests } = logOf(things.map((thing, i) => described(thing, i + 1, "%")));
    const tds = new ThingDescriptions(source);
    const read = await tds.cover(things.map((thing) => ({ thing, seq: 100 })));
    expect(read.size).toBe(60);
    expect(requests.map((batch) => batch.length)).toEqual([THINGS_PER_REQUEST, THINGS_PER_REQUEST, 10]);
    await tds.cover(things.map((thing) => ({ thing, seq: 101 })));
    expect(requests).toHaveLength(3);
    expect(tds.at("urn:s59", 101)).toEqual(td("%"));
  });

  it("keeps a TD that comes live, for the rows after it, and one that came while the first page was read", async () => {
    const { source } = logOf([described("urn:b", 10, "Cel")]);
    let live: (() => void) | undefined;
    const tds = new ThingDescriptions(async (asked) => {
      live?.(); // a TD registered while the page is read, after the hub answered it
      return source(asked);
    });
    live = () => tds.learn({ ...described("urn:b", 50, "K"), hlc: "", cause: { actor: "a" } });
    await tds.cover([{ thing: "urn:b", seq: 20 }]);
    expect(tds.at("urn:b", 20)).toEqual(td("Cel"));
    expect(tds.at("urn:b", 51)).toEqual(td("K"));
    live = undefined;
    tds.learn({ ...described("urn:b", 60, "[degF]"), hlc: "", cause: { actor: "a" } });
    expect(tds.at("urn:b", 55)).toEqual(td("K"));
    expect(tds.at("urn:b", 61)).toEqual(td("[degF]"));
  });

  it("keeps the versions a Thing's timeline holds, and asks only for the one before its oldest", async () => {
    const { source, requests } = logOf(versions);
    const tds = new ThingDescriptions(source);
    // A timeline of every kind from the Log's end down to seq 15: the versions 20, 30 and 40 in it.
    const reading = (seq: number) => ({ seq, kind: "reported", value: seq });
    const timeline = [reading(45), ...versions.slice(2).reverse(), reading(15)].sort((a, b) => b.seq - a.seq);
    tds.keep("urn:b", [...timeline.slice(0, 3), reading(25), ...timeline.slice(3)], 15);
    expect(tds.at("urn:b", 45)).toEqual(td("K"));
    expect(tds.at("urn:b", 25)).toEqual(td("[degF]"));
    expect(tds.at("urn:b", 35)).toBeUndefined(); // removed
    expect(tds.covers("urn:b", 20)).toBe(false);
    expect(requests).toEqual([]);
    // The row at 15, older than the timeline's oldest version: the versions below it, once.
    await tds.cover([{ thing: "urn:b", seq: 15 }]);
    expect(tds.at("urn:b", 15)).toEqual(td("Cel"));
    expect(requests).toEqual([[{ thing: "urn:b", before: 15 }]]);
  });
});
