// Each Thing's semantic types through the Log, so that the change feed's `type` filter matches a
// Change by the TD in force at its seq, not by the Thing's TD now (docs/api.md, the change feed).
import type { Change } from "../core/index.js";
import type { Bus } from "../bus/index.js";
import type { Store } from "../store/index.js";

/** Seqs of the Log read at a time for `described` Changes while the history is built or caught up. */
const READ_STEP = 10_000;

/** The seqs `from <= seq < to` in which a Thing was of a type (`to` is Infinity while it still is). */
export interface SeqSpan {
  from: number;
  to: number;
}

/**
 * A semantic type as the change feed filters by it (Graph.typeFilter): a Change matches when its
 * Thing was of the type, or of a subtype, as of that Change.
 */
export interface TypeFilter {
  /**
   * Whether the Change's Thing was of the type then: a `described` Change by the TD it carries,
   * any other by the TD of the Thing's last `described` Change before it (a `removed` Change, and
   * what follows it, by the TD it removed). Give it every Change of a stream, in Log order.
   */
  accepts(change: Change): boolean;
  /** The Things that were of the type at some time (none: no Change can match). */
  readonly things: ReadonlySet<string>;
  /** The seq spans in which the Thing was of the type, oldest first. */
  spansOf(thing: string): readonly SeqSpan[];
  /**
   * The Things of the type all through the seqs `after < seq < before`, cut where a Thing became
   * of the type or stopped being so: the piece at the low end (asc) or the high end (desc).
   */
  piece(
    after: number,
    before: number,
    order: "asc" | "desc",
  ): { after: number; before: number; things: string[] };
  /** The Log position up to which every description is known: a page reads no Change past it. */
  readonly upTo: number;
}

interface ThingTypes {
  /** The seq of the last `described` Change applied (they are applied in Log order). */
  last: number;
  /** From which seq on the Thing had each of its type lists, oldest first; the first from 0. */
  froms: number[];
  types: Array<readonly string[]>;
}

const NO_SPANS: readonly SeqSpan[] = [];

/**
 * Per Thing ever described, the seqs at which its types changed (one entry per Thing that never
 * changed them): built from the Log's `described` Changes at the first use, then kept in step
 * from the Bus. Memory grows with the Things ever registered, not with their Changes.
 */
export class TypeHistory {
  private readonly things = new Map<string, ThingTypes>();
  /** The Things that ever had each type (expanded IRI). */
  private readonly byType = new Map<string, Set<string>>();
  /** One array per distinct list of types, so that lists compare by identity. */
  private readonly interned = new Map<string, readonly string[]>();
  /** Every `described` Change up to this seq has been applied. */
  private position = 0;
  private ready: Promise<void> | undefined;
  /** Changes published while the history is being built, applied once it is. */
  private backlog: Change[] | undefined;
  private readonly unsubscribe: () => void;
  private closed = false;

  constructor(
    private readonly store: Store,
    bus: Bus,
    /** The expanded IRIs of a TD's `@type`, read with its own `@context`. */
    private readonly typesIn: (td: unknown) => readonly string[],
  ) {
    this.unsubscribe = bus.subscribe((change) => {
      if (this.backlog) this.backlog.push(change);
      else if (this.ready) this.onChange(change);
    });
  }

  close(): void {
    this.closed = true;
    this.unsubscribe();
  }

  /** The Bus delivers Changes in seq order: each one moves the position on. */
  private onChange(change: Change): void {
    if (change.kind === "described") this.apply(change.thing, change.seq, change.value);
    if (change.seq > this.position) this.position = change.seq;
  }

  private apply(thing: string, seq: number, td: unknown): void {
    const types = this.intern(this.typesIn(td));
    const entry = this.things.get(thing);
    if (!entry) {
      this.things.set(thing, { last: seq, froms: [0], types: [types] });
      this.index(thing, types);
      return;
    }
    if (seq <= entry.last) return;
    entry.last = seq;
    if (entry.types.at(-1) === types) return;
    entry.froms.push(seq);
    entry.types.push(types);
    this.index(thing, types);
  }

  private index(thing: string, types: readonly string[]): void {
    for (const type of types) {
      let set = this.byType.get(type);
      if (!set) this.byType.set(type, (set = new Set()));
      set.add(thing);
    }
  }

  private intern(types: readonly string[]): readonly string[] {
    const key = [...types].sort().join("\n");
    let known = this.interned.get(key);
    if (!known) this.interned.set(key, (known = Object.freeze([...types])));
    return known;
  }

  /** The Thing's types at `seq` (before its first description, its first ones). */
  private typesAt(thing: string, seq: number): readonly string[] | undefined {
    const entry = this.things.get(thing);
    if (!entry) return undefined;
    let lo = 0;
    let hi = entry.froms.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >>> 1;
      if ((entry.froms[mid] ?? 0) <= seq) lo = mid;
      else hi = mid - 1;
    }
    return entry.types[lo];
  }

  /** Applies the `described` Changes with `after < seq <= upTo`, read from the Log in order. */
  private async readDescribed(after: number, upTo: number): Promise<void> {
    let low = after;
    while (low < upTo && !this.closed) {
      const before = Math.min(low + READ_STEP, upTo) + 1;
      let from = low;
      for (;;) {
        const page = await this.store.feed({
          kinds: ["described"],
          after: from,
          before,
          order: "asc",
          limit: 1000,
        });
        for (const change of page) this.apply(change.thing, change.seq, change.value);
        const last = page.at(-1);
        if (!last || page.length < 1000) break;
        from = last.seq;
      }
      low = before - 1;
      await new Promise((resolve) => setImmediate(resolve));
    }
  }

  /** Builds the history from the Log once; Changes published meanwhile are applied after. */
  private whenReady(): Promise<void> {
    this.ready ??= (async () => {
      this.backlog = [];
      try {
        const last = await this.store.lastSeq();
        await this.readDescribed(0, last);
        if (this.closed) throw new Error("the type history was closed while it was built");
        if (last > this.position) this.position = last;
      } finally {
        const backlog = this.backlog;
        this.backlog = undefined;
        for (const change of backlog) this.onChange(change);
      }
    })();
    this.ready.catch(() => {
      this.ready = undefined;
      this.things.clear();
      this.byType.clear();
      this.position = 0;
    });
    return this.ready;
  }

  /**
   * Built, and caught up with the Log: a Change committed but not yet published (or never) has
   * its description read from the Log, so that a page read now sees the types it made.
   */
  async current(): Promise<number> {
    await this.whenReady();
    const last = await this.store.lastSeq();
    if (last > this.position) {
      const from = this.position;
      await this.readDescribed(from, last);
      if (last > this.position) this.position = last;
    }
    return this.position;
  }

  /** The filter for Things of any of these types (expanded IRIs: a type and its subtypes). */
  async filter(wanted: ReadonlySet<string>): Promise<TypeFilter> {
    const upTo = await this.current();
    const matching = new Map<readonly string[], boolean>();
    const of = (types: readonly string[] | undefined): boolean => {
      if (types === undefined) return false;
      let known = matching.get(types);
      if (known === undefined) matching.set(types, (known = types.some((t) => wanted.has(t))));
      return known;
    };
    const candidates = new Set<string>();
    for (const type of wanted) for (const thing of this.byType.get(type) ?? []) candidates.add(thing);
    // Spans of each Thing; those of the type throughout apart, and the seqs where any other's changes.
    const spans = new Map<string, SeqSpan[]>();
    const whole: string[] = [];
    const partial: string[] = [];
    const cuts = new Set<number>();
    for (const thing of candidates) {
      const entry = this.things.get(thing);
      if (!entry) continue;
      const list: SeqSpan[] = [];
      entry.types.forEach((types, i) => {
        if (!of(types)) return;
        const from = entry.froms[i] ?? 0;
        const to = entry.froms[i + 1] ?? Number.POSITIVE_INFINITY;
        const previous = list.at(-1);
        if (previous && previous.to === from) previous.to = to;
        else list.push({ from, to });
      });
      if (list.length === 0) continue;
      spans.set(thing, list);
      const [first] = list;
      if (list.length === 1 && first?.from === 0 && first.to === Number.POSITIVE_INFINITY) whole.push(thing);
      else {
        partial.push(thing);
        for (const s of list) {
          if (s.from > 0) cuts.add(s.from);
          if (s.to !== Number.POSITIVE_INFINITY) cuts.add(s.to);
        }
      }
    }
    const sortedCuts = [...cuts].sort((a, b) => a - b);
    /** Descriptions seen by a stream past `upTo`, before the Bus delivered them here. */
    const ahead = new Map<string, readonly string[]>();
    const inSpan = (thing: string, seq: number) =>
      (spans.get(thing) ?? NO_SPANS).some((s) => s.from <= seq && seq < s.to);
    return {
      things: new Set(spans.keys()),
      upTo,
      spansOf: (thing) => spans.get(thing) ?? NO_SPANS,
      accepts: (change) => {
        if (change.seq > this.position) {
          if (change.kind === "described") {
            const types = this.typesIn(change.value);
            ahead.set(change.thing, types);
            return types.some((t) => wanted.has(t));
          }
          const types = ahead.get(change.thing);
          if (types) return types.some((t) => wanted.has(t));
        } else if (ahead.size > 0) ahead.clear();
        return of(this.typesAt(change.thing, change.seq));
      },
      piece: (after, before, order) => {
        let low = after;
        let high = before;
        if (order === "asc") {
          const cut = sortedCuts.find((c) => c > low + 1 && c < high);
          if (cut !== undefined) high = cut;
        } else {
          const cut = sortedCuts.findLast((c) => c > low + 1 && c < high);
          if (cut !== undefined) low = cut - 1;
        }
        const things = [...whole, ...partial.filter((t) => inSpan(t, low + 1))];
        return { after: low, before: high, things };
      },
    };
  }
}
