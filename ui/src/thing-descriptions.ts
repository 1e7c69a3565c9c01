// The TD each Change was made under — its Thing's TD in force at the Change's seq, not today's — so
// that the Changes view and a Thing's timeline name an old row's affordance and unit as they were
// then (a unit renamed since shows the old one on the old rows). A Thing's TD versions are its `described` Changes (the
// version is their seq, as a TD's ETag says): the TD in force at seq S is the value of the Thing's
// last `described` Change before S; after a `removed` one it has none.
import type { Change } from "../../src/client/index.js";

/** One of a Thing's TD versions: the `described` (TD) or `removed` (none) Change that began it. */
export interface Description {
  seq: number;
  td: unknown;
}

/** What is asked of the hub for one Thing: its `described` and `removed` Changes before `before`, newest first. */
export interface DescriptionsAsked {
  thing: string;
  /** Only those before this seq; from the Log's end when undefined. */
  before?: number;
}

/** A page of one Thing's `described`/`removed` Changes, newest first, and where the next starts. */
export interface DescriptionsPage {
  changes: Array<Pick<Change, "seq" | "kind" | "value">>;
  next?: number;
}

/** Reads a page for each of several Things at once (one request for them all). */
export type DescriptionsSource = (asked: readonly DescriptionsAsked[]) => Promise<DescriptionsPage[]>;

/** What is known of one Thing: its versions, read from the Log's end down to `scanned`. */
interface Known {
  /** Newest first. */
  versions: Description[];
  /**
   * The versions hold every `described`/`removed` Change from this seq on (0: all of them;
   * Infinity: none read yet); the next page starts before it.
   */
  scanned: number;
}

/** The seq above which `at` answers: the oldest version read, when the reading got that far. */
function bottomOf(known: Known): number {
  if (known.scanned === 0) return 0;
  const oldest = known.versions.at(-1)?.seq;
  return known.scanned === Number.POSITIVE_INFINITY || oldest === undefined || oldest < known.scanned
    ? Number.POSITIVE_INFINITY
    : oldest;
}

/** Things asked for in one request: the hub prices each at about 100 of its 20,000 per operation. */
export const THINGS_PER_REQUEST = 25;

/**
 * A Thing's TD versions, asked for once per page of the view and kept: `cover` asks the hub for the
 * versions in force at the seqs of the rows shown (several Things a request), `at` answers from
 * what is kept, and `learn` keeps the versions that come live (from a feed that starts at or before
 * the Log's end as `cover` first reads it) so that live rows need no request of their own.
 */
export class ThingDescriptions {
  private readonly known = new Map<string, Known>();

  constructor(private readonly source: DescriptionsSource) {}

  /** The TD in force at `seq` (undefined: not known yet, or none then). */
  at(thing: string, seq: number): unknown {
    const known = this.known.get(thing);
    if (known === undefined || seq <= bottomOf(known)) return undefined;
    return known.versions.find((version) => version.seq < seq)?.td;
  }

  /** The seq of the version in force at `seq` (its `described` or `removed` Change), if known. */
  versionAt(thing: string, seq: number): number | undefined {
    const known = this.known.get(thing);
    if (known === undefined || seq <= bottomOf(known)) return undefined;
    return known.versions.find((version) => version.seq < seq)?.seq;
  }

  /** Whether `at` answers for this seq from what is kept (or from what is being read now). */
  covers(thing: string, seq: number): boolean {
    const known = this.known.get(thing);
    return known !== undefined && seq > bottomOf(known);
  }

  /**
   * A Thing's Changes of every kind, newest first, as read from the Log's end (a Thing's timeline):
   * the versions among them, kept as `cover` would have read them, so that `at` answers at once
   * for the rows after the oldest of them. `from` is the oldest seq the reading holds everything
   * from (0: the Thing's whole past was read).
   */
  keep(thing: string, changes: ReadonlyArray<Pick<Change, "seq" | "kind" | "value">>, from: number): void {
    let known = this.known.get(thing);
    if (known === undefined)
      this.known.set(thing, (known = { versions: [], scanned: Number.POSITIVE_INFINITY }));
    for (const change of changes)
      if (change.kind === "described" || change.kind === "removed")
        add(known, { seq: change.seq, td: change.kind === "described" ? change.value : undefined });
    known.scanned = Math.min(known.scanned, from);
  }

  /** A `described` or `removed` Change seen live: a new version of a Thing being read or read. */
  learn(change: Change): void {
    if (change.kind !== "described" && change.kind !== "removed") return;
    const known = this.known.get(change.thing);
    if (known === undefined) return; // read from the Log's end when first needed
    add(known, { seq: change.seq, td: change.kind === "described" ? change.value : undefined });
  }

  /**
   * Makes `at` answer for every (Thing, seq) given, asking the hub only for what is not kept: a
   * Thing new to the page, from the Log's end down to its version before its lowest seq; one
   * known, only further down. Returns the Things whose versions were read.
   */
  async cover(wanted: Iterable<{ thing: string; seq: number }>): Promise<Set<string>> {
    const lowest = new Map<string, number>();
    for (const { thing, seq } of wanted)
      if (!this.covers(thing, seq)) lowest.set(thing, Math.min(seq, lowest.get(thing) ?? seq));
    const read = new Set<string>();
    let asked: Array<{ thing: string; down: number; known: Known }> = [];
    for (const [thing, down] of lowest) {
      let known = this.known.get(thing);
      // Kept from now, so that a version coming live while the first page is read is not lost.
      if (known === undefined)
        this.known.set(thing, (known = { versions: [], scanned: Number.POSITIVE_INFINITY }));
      if (known.scanned > 0) asked.push({ thing, down, known });
    }
    while (asked.length > 0) {
      const batch = asked.slice(0, THINGS_PER_REQUEST);
      const pages = await this.source(
        batch.map(({ thing, known }) => ({
          thing,
          ...(known.scanned !== Number.POSITIVE_INFINITY && { before: known.scanned }),
        })),
      );
      const again: typeof asked = [];
      batch.forEach((ask, i) => {
        const page = pages[i] ?? { changes: [] };
        for (const change of page.changes)
          add(ask.known, { seq: change.seq, td: change.kind === "described" ? change.value : undefined });
        ask.known.scanned = page.next ?? 0;
        read.add(ask.thing);
        // Not down to the version before the lowest seq yet: the next page.
        if (bottomOf(ask.known) >= ask.down && ask.known.scanned > 0) again.push(ask);
      });
      asked = [...again, ...asked.slice(THINGS_PER_REQUEST)];
    }
    return read;
  }
}

/** Keeps a version once, newest first. */
function add(known: Known, version: Description): void {
  if (known.versions.some((kept) => kept.seq === version.seq)) return;
  known.versions.push(version);
  known.versions.sort((a, b) => b.seq - a.seq);
}

/** Versions read per Thing and page: most Things have had one or two TDs in a page's span. */
const VERSIONS_PER_PAGE = 4;

/**
 * The source over GraphQL (docs/graphql.md): one `changes` per Thing, aliased, in one request —
 * the feed filtered by the Thing and `described`/`removed`, newest first, which answers an id no
 * Thing ever had (a link's target) with none rather than an error.
 */
export function descriptionsOverGraphql(
  request: (query: string, variables: Record<string, unknown>) => Promise<Record<string, unknown>>,
): DescriptionsSource {
  return async (asked) => {
    const variables: Record<string, unknown> = {};
    const fields = asked.map(({ thing, before }, i) => {
      variables[`thing${i}`] = thing;
      if (before !== undefined) variables[`before${i}`] = before;
      return (
        `d${i}: changes(filter: {thing: $thing${i}, kinds: ["described", "removed"]}, order: DESC, ` +
        `first: ${VERSIONS_PER_PAGE}${before === undefined ? "" : `, after: $before${i}`}) { changes { seq kind value } next }`
      );
    });
    const declared = asked.map(
      ({ before }, i) => `$thing${i}: ID!${before === undefined ? "" : `, $before${i}: SafeInt!`}`,
    );
    const data = await request(
      `query ThingDescriptions(${declared.join(", ")}) { ${fields.join(" ")} }`,
      variables,
    );
    return asked.map((_, i) => {
      const page = data[`d${i}`] as
        { changes?: DescriptionsPage["changes"]; next?: number | null } | undefined;
      return {
        changes: page?.changes ?? [],
        ...(typeof page?.next === "number" && { next: page.next }),
      };
    });
  };
}
