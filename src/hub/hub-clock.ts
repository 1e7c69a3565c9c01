// The hub's clocks: wall time (injectable, for tests) and the hybrid logical clock that orders
// its Changes (monotonic even when the wall clock steps back, resumed from the Log at start).
import { HybridLogicalClock, formatHlc, parseHlc, type HlcTimestamp } from "../core/index.js";

export interface HubClock {
  /** Wall time, for expiry and registration times. */
  now(): Date;
  /** The next HLC stamp for a Change, and its wall time. */
  stamp(): { hlc: string; time: Date };
  /** The next HLC stamp alone (no Date made: ingest stamps every Change). */
  hlc(): string;
  /**
   * The Log's now: the wall time, or the wall time of the last stamp issued when that is ahead
   * (the system clock stepped back, and the HLC went on from where it was): the time that
   * includes every Change made so far.
   */
  logNow(): Date;
  /**
   * Goes on after a stamp another replica gave a Change (docs/replicas.md), so that this one's
   * next Changes sort after it; a malformed stamp, or one more than a minute ahead, is ignored.
   */
  observe(hlc: string): void;
}

/** `<12 hex digits of wall>-`: where the counter starts in formatHlc's text. */
const WALL_PREFIX = 13;

export function createHubClock(node: string, lastHlc: string | undefined, clock: () => Date): HubClock {
  const hlc = new HybridLogicalClock({
    node,
    clock: () => clock().getTime(),
    ...(lastHlc !== undefined && { last: parseHlc(lastHlc) }),
  });
  let wall = -1;
  let wallText = "";
  const nodeText = `-${node}`;
  // formatHlc, for a node the clock has checked: the wall's digits change once per ms.
  const text = (stamp: HlcTimestamp): string => {
    if (stamp.wall !== wall) {
      wall = stamp.wall;
      wallText = formatHlc(stamp).slice(0, WALL_PREFIX);
    }
    return `${wallText}${stamp.counter.toString(16).padStart(8, "0")}${nodeText}`;
  };
  return {
    now: clock,
    stamp: () => {
      const stamp = hlc.now();
      return { hlc: text(stamp), time: new Date(stamp.wall) };
    },
    hlc: () => text(hlc.now()),
    observe: (text) => {
      try {
        hlc.receive(parseHlc(text));
      } catch {
        // Not a stamp this clock may follow: its own next stamps stay on the wall clock.
      }
    },
    logNow: () => {
      const wallNow = clock();
      const last = hlc.last.wall;
      return last > wallNow.getTime() ? new Date(last) : wallNow;
    },
  };
}

/** The smallest HLC string of a wall time: every Change at or after it sorts at or after this. */
export function hlcFloor(time: Date): string {
  return `${time.getTime().toString(16).padStart(12, "0")}-`;
}
