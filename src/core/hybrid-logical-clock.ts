// The hub's Hybrid Logical Clock (Kulkarni et al., "Logical Physical Clocks", OPODIS 2014): a
// timestamp that stays close to physical time yet orders events causally across hubs.
import { quoted } from "./echo.js";
import { ValidationError } from "./errors.js";

/** One HLC timestamp: the logical wall time `l`, the counter `c`, and the node that made it. */
export interface HlcTimestamp {
  /** Milliseconds since the Unix epoch: the largest physical time this node has heard of. */
  readonly wall: number;
  /** Orders events that share a `wall`. */
  readonly counter: number;
  /** The clock's owner (a hub id); breaks ties so that two nodes never make equal stamps. */
  readonly node: string;
}

export interface HybridLogicalClockOptions {
  /** This node's id: 1–256 printable ASCII characters without spaces (see `formatHlc`). */
  node: string;
  /** The physical clock, in milliseconds since the epoch. Defaults to `Date.now`. */
  clock?: () => number;
  /**
   * How far ahead of our physical clock a remote `wall` may be before `receive` rejects it, so a
   * peer with a broken clock cannot drag ours into the future (the paper's ε). Default 60 000 ms;
   * `Infinity` turns the check off.
   */
  maxDriftMs?: number;
  /** The last timestamp this node issued (e.g. read back from the Log on start-up); `now()` stays after it. */
  last?: HlcTimestamp;
}

/** The largest `wall`: 12 hex digits, i.e. until the year 10889. */
export const HLC_MAX_WALL = 0xffff_ffff_ffff;
/** The largest `counter`: 8 hex digits. */
export const HLC_MAX_COUNTER = 0xffff_ffff;
const WALL_DIGITS = 12;
const COUNTER_DIGITS = 8;
const NODE_PATTERN = /^[\x21-\x7e]{1,256}$/;
const DEFAULT_MAX_DRIFT_MS = 60_000;

export class HybridLogicalClock {
  readonly node: string;
  readonly maxDriftMs: number;
  readonly #clock: () => number;
  #wall = 0;
  #counter = 0;

  constructor(options: HybridLogicalClockOptions) {
    const nodeProblem = hlcNodeProblem(options.node);
    if (nodeProblem !== undefined) {
      throw new ValidationError(`HLC node id ${nodeProblem}`, [{ pointer: "/node", message: nodeProblem }]);
    }
    this.node = options.node;
    this.#clock = options.clock ?? Date.now;
    this.maxDriftMs = options.maxDriftMs ?? DEFAULT_MAX_DRIFT_MS;
    if (!(this.maxDriftMs >= 0)) throw new RangeError(`maxDriftMs must be >= 0, got ${this.maxDriftMs}`);
    if (options.last !== undefined) {
      assertTimestamp(options.last, "last");
      this.#wall = options.last.wall;
      this.#counter = options.last.counter;
    }
  }

  /** The last timestamp issued (or restored), without advancing the clock. */
  get last(): HlcTimestamp {
    return { wall: this.#wall, counter: this.#counter, node: this.node };
  }

  /** A timestamp for a local event, strictly after every one this clock has issued. */
  now(): HlcTimestamp {
    // Kulkarni et al. §3.3, "send or local event": l := max(l, pt); c := l unchanged ? c + 1 : 0.
    const physical = this.#physical();
    if (physical > this.#wall) {
      this.#wall = physical;
      this.#counter = 0;
    } else {
      this.#tick(this.#counter);
    }
    return { wall: this.#wall, counter: this.#counter, node: this.node };
  }

  /**
   * Merges a timestamp received from another node and returns the receive event's timestamp, which
   * is after both `remote` and everything this clock has issued. Throws ValidationError (and leaves
   * the clock unchanged) if `remote` is malformed or more than `maxDriftMs` ahead of our physical clock.
   */
  receive(remote: HlcTimestamp): HlcTimestamp {
    assertTimestamp(remote, "remote");
    const physical = this.#physical();
    if (remote.wall - physical > this.maxDriftMs) {
      const message = `is ${remote.wall - physical} ms ahead of this hub's clock (at most ${this.maxDriftMs} allowed)`;
      throw new ValidationError(`HLC timestamp from ${remote.node} ${message}`, [
        { pointer: "/wall", message },
      ]);
    }
    // Kulkarni et al. §3.3, "receive event of message m".
    const wall = Math.max(this.#wall, remote.wall, physical);
    if (wall === this.#wall && wall === remote.wall) {
      this.#tick(Math.max(this.#counter, remote.counter));
    } else if (wall === this.#wall) {
      this.#tick(this.#counter);
    } else if (wall === remote.wall) {
      this.#wall = wall;
      this.#tick(remote.counter);
    } else {
      this.#wall = wall;
      this.#counter = 0;
    }
    return { wall: this.#wall, counter: this.#counter, node: this.node };
  }

  #physical(): number {
    const physical = Math.floor(this.#clock());
    if (!Number.isFinite(physical) || physical > HLC_MAX_WALL) {
      throw new RangeError(`the physical clock returned ${physical}, outside 0..${HLC_MAX_WALL}`);
    }
    return physical;
  }

  // Sets the counter to `after + 1`. If that would overflow the counter's fixed width, moves `wall`
  // one millisecond on instead: still monotonic, and only reachable after 2^32 events in one ms.
  #tick(after: number): void {
    if (after < HLC_MAX_COUNTER) {
      this.#counter = after + 1;
    } else if (this.#wall < HLC_MAX_WALL) {
      this.#wall += 1;
      this.#counter = 0;
    } else {
      throw new RangeError("the HLC has reached its largest representable time");
    }
  }
}

/** Orders timestamps by wall, then counter, then node id (by UTF-16 code unit, = ASCII order). */
export function compareHlc(a: HlcTimestamp, b: HlcTimestamp): number {
  if (a.wall !== b.wall) return a.wall < b.wall ? -1 : 1;
  if (a.counter !== b.counter) return a.counter < b.counter ? -1 : 1;
  return a.node < b.node ? -1 : a.node > b.node ? 1 : 0;
}

/**
 * The compact string form `<wall>-<counter>-<node>`: wall as 12 lowercase hex digits, counter as
 * 8, then the node id, e.g. `018f3b2a9c40-00000000-urn:hub:a`. The fixed widths make plain string
 * order (JavaScript's, or a database's byte order, since the form is ASCII) equal `compareHlc`.
 */
export function formatHlc(timestamp: HlcTimestamp): string {
  assertTimestamp(timestamp, "timestamp");
  return `${timestamp.wall.toString(16).padStart(WALL_DIGITS, "0")}-${timestamp.counter
    .toString(16)
    .padStart(COUNTER_DIGITS, "0")}-${timestamp.node}`;
}

const HLC_STRING = /^([0-9a-f]{12})-([0-9a-f]{8})-([\x21-\x7e]{1,256})$/;

/** Parses the form written by `formatHlc`; throws ValidationError for anything else. */
export function parseHlc(text: string): HlcTimestamp {
  const match = HLC_STRING.exec(text);
  if (match === null) {
    const message = "is not <12 lowercase hex digits>-<8 lowercase hex digits>-<node id>";
    throw new ValidationError(`HLC timestamp ${quoted(text)} ${message}`, [{ pointer: "", message }]);
  }
  const [, wall = "", counter = "", node = ""] = match;
  return { wall: parseInt(wall, 16), counter: parseInt(counter, 16), node };
}

function hlcNodeProblem(node: unknown): string | undefined {
  if (typeof node !== "string") return "is not a string";
  if (!NODE_PATTERN.test(node)) return "must be 1–256 printable ASCII characters without spaces";
  return undefined;
}

function assertTimestamp(value: HlcTimestamp, name: string): void {
  // Remote stamps come off the wire, so check their shape even though the type says it is right.
  const candidate = value as Partial<Record<keyof HlcTimestamp, unknown>> | null;
  const errors = [];
  if (typeof candidate !== "object" || candidate === null) {
    throw new ValidationError(`HLC ${name} is not an object`, [{ pointer: "", message: "is not an object" }]);
  }
  const { wall, counter, node } = candidate;
  if (typeof wall !== "number" || !Number.isInteger(wall) || wall < 0 || wall > HLC_MAX_WALL) {
    errors.push({ pointer: "/wall", message: `must be an integer in 0..${HLC_MAX_WALL}` });
  }
  if (typeof counter !== "number" || !Number.isInteger(counter) || counter < 0 || counter > HLC_MAX_COUNTER) {
    errors.push({ pointer: "/counter", message: `must be an integer in 0..${HLC_MAX_COUNTER}` });
  }
  const nodeProblem = hlcNodeProblem(node);
  if (nodeProblem !== undefined) errors.push({ pointer: "/node", message: nodeProblem });
  if (errors.length > 0) {
    throw new ValidationError(
      `HLC ${name} is malformed: ${errors.map((e) => `${e.pointer} ${e.message}`).join("; ")}`,
      errors,
    );
  }
}
