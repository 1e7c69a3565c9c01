// A uPlot chart of one numeric property's reported history over a time range, that takes new
// points from the live feed. The times the Thing was unreachable break the line: a gap, not a
// straight line drawn across the outage as if the value had moved smoothly through it. Each value
// is held until the next (the last one until now, the one before the range from its start): the
// line steps, as the property did.
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { Change, InteractionClient } from "../../src/client/index.js";
import { parseTimeExpression } from "../../src/core/time-expression.js";
import { h, replace, show, showTime } from "./dom.js";
import { problemBox } from "./errors.js";
import { timeOfChange } from "./change-row.js";

const MAX_POINTS = 10_000;
/** Outages read with the history: a Thing that flaps more often than this in a range is rare. */
const MAX_OUTAGES = 1000;
/** A chart's height, in CSS pixels; its width is its box's. */
const HEIGHT = 180;
/** The narrowest time axis, in seconds. */
const MIN_SPAN_S = 10;
/** How often the time axis, and the value held, move on to now while no reading comes. */
const FOLLOW_NOW_MS = 5000;
/**
 * Times as the rest of the page shows them (showTime: 24-hour clock): uPlot's own are "2:02pm",
 * which a person matching the chart to the timeline's 14:02 has to convert at 3 a.m.
 */
const clock = uPlot.fmtDate("{HH}:{mm}");
const clockSeconds = uPlot.fmtDate("{HH}:{mm}:{ss}");
const day = (date: Date) => date.toLocaleDateString();
/** Tick labels: the time, and under it the day where a new one starts (and at the first tick). */
const timeTicks = (_u: uPlot, splits: number[], _axis: number, _space: number, step: number) =>
  splits.map((split, i) => {
    const date = new Date(split * 1000);
    const time = step < 60 ? clockSeconds(date) : clock(date);
    const before = splits[i - 1];
    return before === undefined || day(new Date(before * 1000)) !== day(date)
      ? `${time}\n${day(date)}`
      : time;
  });
/** The cursor's time in the legend, to the second. */
const cursorTime = (_u: uPlot, time: number | null) =>
  time === null ? "--" : `${day(new Date(time * 1000))} ${clockSeconds(new Date(time * 1000))}`;

/** Each reading held until the next; a gap starts when the Thing went unreachable, not before. */
const steps = uPlot.paths.stepped?.({ align: 1, alignGaps: 1 });

export interface HistoryChart {
  element: HTMLElement;
  /** Takes a live Change of the Thing: a reading of this property, or an outage. */
  add(change: Change): void;
  dispose(): void;
}

/** A chart as wide as its box (uPlot's canvas is sized in pixels, not by the style sheet). */
function chartWidth(element: HTMLElement): number {
  return Math.max(200, Math.floor(element.clientWidth || 640));
}

export function historyChart(
  client: InteractionClient,
  thing: string,
  property: string,
  since: string,
  unit: string | undefined,
): HistoryChart {
  const element = h("div", { class: "chart", "data-property": property, "data-points": 0 });
  const xs: number[] = [];
  // null: no number then (the Thing was unreachable, or reported something else); uPlot breaks
  // the line there.
  const ys: (number | null)[] = [];
  let gaps = 0;
  let plot: uPlot | undefined;
  const widthOf = () => chartWidth(element);
  let disposed = false;
  // Live Changes that arrive while the history loads wait, then join after its last seq.
  let buffer: Change[] | undefined = [];
  let lastSeq = 0;

  // Set when the range holds more readings than the chart draws: it says so under the chart.
  let note: HTMLElement | undefined;
  // Set when the line starts with the value held from before the range: when it was read.
  let heldNote: HTMLElement | undefined;

  /** The last number drawn: the value still held when the Thing answers again. */
  let held: number | undefined;
  const push = (change: Change) => {
    if (change.seq <= lastSeq) return;
    let value: number | null;
    if (change.kind === "reported" && change.affordance === property)
      value = typeof change.value === "number" ? change.value : null;
    else if (change.kind === "unreachable") value = null;
    // Back after an outage: the hub records a property when it changes, so with no reading since,
    // the Thing holds the value it had before; the line resumes there.
    else if (change.kind === "reachable" && (ys.length === 0 || ys.at(-1) === null) && held !== undefined)
      value = held;
    else return;
    // One gap is enough until the next number.
    if (value === null && (ys.length === 0 || ys.at(-1) === null)) return;
    lastSeq = change.seq;
    xs.push(timeOfChange(change) / 1000);
    ys.push(value);
    if (value === null) gaps++;
    else held = value;
    // A page left open keeps the latest MAX_POINTS: memory stays bounded.
    if (xs.length > MAX_POINTS) {
      xs.shift();
      if (ys.shift() === null) gaps--;
    }
  };

  /**
   * The stretch of time a person dragged across to look at (a spike): it stays while readings come
   * and the clock moves on, until they double-click the chart or press Reset zoom.
   */
  let zoom: [number, number] | undefined;
  const resetZoom = h(
    "button",
    { type: "button", class: "chart-reset", hidden: true, onclick: () => unzoom() },
    "Reset zoom",
  );

  /**
   * The time axis: from the first reading (or the range's start, for a value held from before it)
   * to now, at least MIN_SPAN_S wide. uPlot's own range for one reading spans 1,000 days.
   * While zoomed, the zoomed stretch: uPlot asks for this range at every new reading as well.
   */
  const timeRange = (): [number, number] => {
    if (zoom !== undefined) {
      element.dataset.from = String(Math.round(zoom[0]));
      element.dataset.to = String(Math.round(zoom[1]));
      return zoom;
    }
    const last = xs.at(-1) ?? Date.now() / 1000;
    const end = Math.max(last, Date.now() / 1000);
    const start = Math.min(xs[0] ?? end, end - MIN_SPAN_S);
    element.dataset.from = String(Math.round(start));
    element.dataset.to = String(Math.round(end));
    return [start, end];
  };
  /**
   * What uPlot draws: the readings, and the last value held on to now. The hub records a value
   * when it changes, not each time it is read again: a property that has not changed since has
   * that value still (a Thing that stops answering is recorded unreachable, which ends the line).
   */
  let tailed = false;
  const data = (): uPlot.AlignedData => {
    const last = ys.at(-1);
    const now = Date.now() / 1000;
    tailed = last !== null && last !== undefined && now > (xs.at(-1) ?? now);
    return tailed
      ? [
          [...xs, now],
          [...ys, last],
        ]
      : [xs, ys];
  };
  // uPlot ranges the axis only when data comes: without this, a page left open would keep the end
  // it had at the last reading, and the value held would stop short of now.
  const followNow = setInterval(() => {
    if (plot === undefined || zoom !== undefined) return;
    plot.setData(data());
  }, FOLLOW_NOW_MS);

  /** A drag across the plot: its stretch of time becomes the axis, kept until reset. */
  const zoomTo = (u: uPlot) => {
    const { left, width } = u.select;
    if (width < 2) return;
    const min = u.posToVal(left, "x");
    const max = u.posToVal(left + width, "x");
    u.setSelect({ left: 0, top: 0, width: 0, height: 0 }, false);
    if (!(max > min)) return;
    zoom = [min, max];
    element.dataset.zoomed = "true";
    resetZoom.hidden = false;
    u.setScale("x", { min, max });
  };
  const unzoom = () => {
    if (zoom === undefined) return;
    zoom = undefined;
    delete element.dataset.zoomed;
    resetZoom.hidden = true;
    if (plot === undefined) return;
    const [min, max] = timeRange();
    plot.setScale("x", { min, max });
  };

  // The chart takes its box's width, and again whenever the box changes (the window resized or
  // turned, a sidebar closed): drawn once at the width of its first frame, it overflowed a window
  // made narrower and left half of a wider one empty.
  const resized = new ResizeObserver(() => {
    const width = widthOf();
    if (plot !== undefined && width !== plot.width) plot.setSize({ width, height: HEIGHT });
  });
  resized.observe(element);

  const draw = () => {
    element.dataset.points = String(xs.length - gaps);
    element.dataset.gaps = String(gaps);
    element.dataset.lastSeq = String(lastSeq);
    if (plot === undefined) {
      if (xs.length === gaps)
        return replace(
          element,
          heldNote ?? h("p", { class: "muted" }, `No reported ${property} in this range.`),
        );
      replace(element, ...(note ? [note] : []), ...(heldNote ? [heldNote] : []), resetZoom);
      plot = new uPlot(
        {
          width: widthOf(),
          height: HEIGHT,
          series: [
            { value: cursorTime },
            {
              label: unit === undefined ? property : `${property} (${unit})`,
              stroke: "#1f77b4",
              width: 2,
              // The hub records a value when it changes: it held until the next reading (or the
              // outage), so the line steps there. A slope would show values the Thing never had.
              paths: steps,
              // A marker for each reading; none where the held value meets now (no reading there).
              points: {
                filter: (u, _series, show) =>
                  show && tailed ? Array.from({ length: u.data[0].length - 1 }, (_, i) => i) : null,
              },
            },
          ],
          // Time ticks at least 90 px apart: a span of seconds has no label per half second.
          axes: [{ space: 90, values: timeTicks }, { size: 60 }],
          scales: { x: { time: true, range: () => timeRange() } },
          // A drag zooms through zoomTo, not uPlot's own setScale: the zoom has to outlive the
          // next reading and the clock's tick, which both range the axis again.
          cursor: { drag: { x: true, y: false, setScale: false } },
          hooks: { setSelect: [zoomTo] },
        },
        data(),
        element,
      );
      // uPlot's own double-click ranges the axis again, which a zoom keeps: this ends the zoom.
      plot.over.addEventListener("dblclick", unzoom);
    } else {
      plot.setData(data());
    }
  };

  void (async () => {
    try {
      // The range's start as one time for all three requests (a relative `-1h` read once, here).
      const start = parseTimeExpression(since, new Date());
      // The newest readings of the range: a busy sensor over a long range holds more than a
      // chart draws, and its latest values are the ones a person looks for. And the reading and
      // the reachability before it: the hub records a value when it changes, so a property that
      // did not change in the range held that value all along.
      const [page, outages, before, reachBefore] = await Promise.all([
        client.history(thing, {
          affordance: property,
          kind: "reported",
          since: start,
          order: "desc",
          limit: MAX_POINTS,
        }),
        client.history(thing, {
          kind: ["unreachable", "reachable"],
          since: start,
          order: "desc",
          limit: MAX_OUTAGES,
        }),
        client.history(thing, {
          affordance: property,
          kind: "reported",
          until: start,
          order: "desc",
          limit: 1,
        }),
        client.history(thing, { kind: ["unreachable", "reachable"], until: start, order: "desc", limit: 1 }),
      ]);
      if (disposed) return;
      const changes = page.changes.reverse();
      const startS = start.getTime() / 1000;
      const prior = before.changes[0];
      if (prior !== undefined && !changes.some((c) => c.seq === prior.seq)) {
        const down = reachBefore.changes[0];
        if (typeof prior.value === "number") {
          // Drawn from the range's start: held since then (said under the chart), unless the
          // Thing went unreachable after it and was still away then, which starts as a gap.
          if (down?.kind === "unreachable" && down.seq > prior.seq) held = prior.value;
          else {
            push(prior);
            xs[xs.length - 1] = Math.max(startS, xs.at(-1) ?? startS);
          }
          heldNote = h(
            "p",
            { class: "muted chart-held" },
            `${unit === undefined ? show(prior.value) : `${show(prior.value)} ${unit}`} since ${showTime(timeOfChange(prior))}, before this range`,
            down?.kind === "unreachable" && down.seq > prior.seq
              ? `; unreachable since ${showTime(timeOfChange(down))}.`
              : `${changes.length === 0 ? ": unchanged in it" : ""}.`,
          );
          element.dataset.heldFrom = String(prior.seq);
        }
      }
      const first = prior ?? changes[0];
      // Each outage between the readings drawn, in the Log's order among them.
      const merged = [...changes, ...outages.changes.filter((c) => first !== undefined && c.seq > first.seq)];
      merged.sort((a, b) => a.seq - b.seq);
      if (page.next !== undefined && first) {
        note = h(
          "p",
          { class: "muted chart-note" },
          `The latest ${MAX_POINTS.toLocaleString("en")} readings, since ${new Date(timeOfChange(first)).toLocaleString()}; the range holds more.`,
        );
      }
      for (const change of merged) push(change);
      // The last reading the range held when loaded (live ones join after it).
      element.dataset.loadedTo = String(lastSeq);
      for (const change of buffer ?? []) push(change);
      buffer = undefined;
      draw();
    } catch (err) {
      replace(element, problemBox(err));
    }
  })();

  return {
    element,
    add(change) {
      if (buffer !== undefined) return void buffer.push(change);
      push(change);
      draw();
    },
    dispose() {
      disposed = true;
      clearInterval(followNow);
      resized.disconnect();
      plot?.destroy();
    },
  };
}
