// Times as people write them: RFC 3339 / ISO 8601, `now`, relative (`-15m`, `-1h30m`, `+30s`,
// `2 hours ago`), and local calendar forms (`today`, `yesterday 14:02`, `last tuesday 14:02`,
// `14:02:30`), relative to a given `now` (injected, never read from the system here) and the
// process's time zone. Words are read in any case.
import { ValidationError } from "./errors.js";

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};
/** The words for each unit, as people write them after a number (`-15 minutes`, `2 hrs ago`). */
const UNIT_WORDS: Record<string, string> = {
  millisecond: "ms",
  sec: "s",
  second: "s",
  min: "m",
  minute: "m",
  hr: "h",
  hour: "h",
  day: "d",
  week: "w",
};
/**
 * A unit, its longest spellings first (so `minutes` is not read as `m` then `inutes`), never
 * followed by another letter (`-1mo` is no month, nor a minute).
 */
const UNIT = "(?:milliseconds?|ms|minutes?|mins?|m|seconds?|secs?|s|hours?|hrs?|h|days?|d|weeks?|w)(?![a-z])";
/** `1h`, `30 minutes`: one step of a relative time. */
const STEP = new RegExp(`(\\d+(?:\\.\\d+)?)\\s*(${UNIT})`, "y");
const STEPS = `(?:\\d+(?:\\.\\d+)?\\s*${UNIT}\\s*)+`;
/** `-15m`, `-1h30m`, `+30s`, `-2 hours`: a signed run of steps. */
const RELATIVE = new RegExp(`^([+-])\\s*(${STEPS})$`);
/** `2 hours ago`, `1h30m ago`, `90s ago`: the same steps, back from now. */
const AGO = new RegExp(`^(${STEPS})\\s*ago$`);
/** `15m`, `2 hours`: steps with neither a sign nor `ago`, which could be either way from now. */
const UNSIGNED = new RegExp(`^${STEPS}$`);

/** The milliseconds of a run of steps (`1h30m`, `1 hour 30 minutes`). */
function stepsMs(steps: string): number {
  let ms = 0;
  STEP.lastIndex = 0;
  for (let step = STEP.exec(steps); step; step = STEP.exec(steps)) {
    const word = step[2] ?? "";
    const unit = UNIT_MS[word] !== undefined ? word : UNIT_WORDS[word.replace(/s$/, "")];
    ms += Number(step[1]) * (UNIT_MS[unit ?? ""] ?? Number.NaN);
    while (steps[STEP.lastIndex] === " ") STEP.lastIndex++;
  }
  return ms;
}
/** A day (`today`, `yesterday`, or a weekday's name, checked by weekdayOf), then a time of day. */
const CALENDAR = /^(?:(today|yesterday|(?:last\s+)?[a-z]{3,9})\s*)?(?:(\d{1,2}):(\d{2})(?::(\d{2}))?)?$/;
const WEEKDAYS = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"];
/** A date, a time of day, a fraction and a zone (Z or an offset), each checked after the match. */
const ISO =
  /^(\d{4})-(\d{2})-(\d{2})(?:[t ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?(?:(z)|([+-])(\d{2}):?(\d{2}))?)?$/;

/** The weekday a word names (0 = Sunday), or undefined when it names none (`tuesnesday`). */
function weekdayOf(word: string): number | undefined {
  const day = WEEKDAYS.findIndex((name) => name.startsWith(word.slice(0, 3)));
  const full = WEEKDAYS[day];
  if (full === undefined) return undefined;
  const extra = day === 2 ? ["tues"] : day === 4 ? ["thur", "thurs"] : [];
  return [full.slice(0, 3), full, ...extra].includes(word) ? day : undefined;
}

/** Parses a time expression; a precise ValidationError names what was not understood. */
export function parseTimeExpression(text: string, now: Date, pointer = ""): Date {
  const input = text.trim().toLowerCase();
  // A form it reads with a field out of range says which (`the hour 25 is out of range`): the
  // forms themselves would not help who wrote one of them.
  const fail = (problem?: string): never => {
    throw new ValidationError(
      `"${text}" is not a time: ${problem ?? "use RFC 3339 (2026-11-25T14:02:00Z), a relative time (-15m, -1h30m, 2 hours ago) or a local time (yesterday 14:02, last tuesday 14:02)"}`,
      [{ pointer, message: problem === undefined ? "is not a time" : `is not a time: ${problem}` }],
    );
  };
  const shifted = (ms: number): Date => {
    const date = new Date(now.getTime() + ms);
    // Beyond ±100,000,000 days a Date is invalid: out of range is as wrong as unreadable.
    return Number.isNaN(date.getTime())
      ? fail("it is beyond the range of times (100,000,000 days either side of 1970)")
      : date;
  };
  if (input.length === 0 || input.length > 64) return fail();
  if (input === "now") return new Date(now.getTime());
  const relative = RELATIVE.exec(input);
  if (relative) {
    const ms = stepsMs(relative[2] ?? "");
    return shifted(relative[1] === "-" ? -ms : ms);
  }
  const ago = AGO.exec(input);
  if (ago) return shifted(-stepsMs(ago[1] ?? ""));
  if (UNSIGNED.test(input))
    return fail(`a relative time takes a sign: -${input} (${input} ago) or +${input} (${input} from now)`);
  const calendar = CALENDAR.exec(input);
  if (calendar && (calendar[1] !== undefined || calendar[2] !== undefined)) {
    const [, day, hours, minutes, seconds] = calendar;
    const date = new Date(now.getTime());
    if (day === "yesterday") date.setDate(date.getDate() - 1);
    else if (day !== undefined && day !== "today") {
      // A weekday is the last one before today, 1 to 7 days back (`today` names today's).
      const weekday = weekdayOf(day.replace(/^last\s+/, ""));
      if (weekday === undefined) return fail();
      date.setDate(date.getDate() - (((date.getDay() - weekday + 6) % 7) + 1));
    }
    const h = hours === undefined ? 0 : Number(hours);
    const m = minutes === undefined ? 0 : Number(minutes);
    const sec = seconds === undefined ? 0 : Number(seconds);
    const problem = timeOfDayProblem(h, m, sec);
    if (problem !== undefined) return fail(problem);
    return (
      localTime(
        text,
        pointer,
        { y: date.getFullYear(), mo: date.getMonth() + 1, d: date.getDate(), h, mi: m, sec, ms: 0 },
        hours === undefined,
      ) ?? fail()
    );
  }
  const iso = ISO.exec(input);
  if (iso) {
    const time = isoTime(iso);
    if (typeof time === "string") return fail(time);
    if (!time.local) return time.date;
    return localTime(text, pointer, time.local, iso[4] === undefined) ?? fail();
  }
  return fail();
}

interface LocalFields {
  y: number;
  mo: number;
  d: number;
  h: number;
  mi: number;
  sec: number;
  ms: number;
}

const pad = (n: number, width = 2) => String(Math.abs(n)).padStart(width, "0");
const DAY_MS = 86_400_000;

/** `+01:00`: an offset east of UTC, in minutes, as RFC 3339 writes it. */
function offsetText(minutes: number): string {
  return `${minutes < 0 ? "-" : "+"}${pad(Math.trunc(Math.abs(minutes) / 60))}:${pad(Math.abs(minutes) % 60)}`;
}

/** The process's offset east of UTC at an instant, in minutes. */
const offsetAt = (ms: number) => -new Date(ms).getTimezoneOffset();

/**
 * The instant a local date and time names in the process's time zone. A time the clocks skipped
 * (02:30 when they went from 02:00 to 03:00) or went through twice (02:30 when they went back
 * from 03:00 to 02:00) names no single instant: a Date would quietly take 03:30, or the first
 * 02:30, and a history, a state or a diff would answer for a time the user did not ask for. Both
 * are refused, naming the times with offsets to give instead.
 */
function localTime(
  text: string,
  pointer: string,
  { y, mo, d, h, mi, sec, ms }: LocalFields,
  dayStart = false,
): Date | undefined {
  // The wall time read as if it were UTC; each offset in force around it gives one candidate.
  const wall = new Date(0);
  wall.setUTCFullYear(y, mo - 1, d);
  wall.setUTCHours(h, mi, sec, ms);
  const asUtc = wall.getTime();
  if (Number.isNaN(asUtc)) return undefined;
  const offsets = [...new Set([offsetAt(asUtc - DAY_MS), offsetAt(asUtc), offsetAt(asUtc + DAY_MS)])];
  const named = (instant: number) => {
    const t = new Date(instant);
    return (
      t.getFullYear() === y &&
      t.getMonth() === mo - 1 &&
      t.getDate() === d &&
      t.getHours() === h &&
      t.getMinutes() === mi &&
      t.getSeconds() === sec
    );
  };
  const fits = offsets.filter((offset) => named(asUtc - offset * 60_000)).sort((a, b) => b - a);
  const first = fits[0];
  if (fits.length === 1 && first !== undefined) return new Date(asUtc - first * 60_000);
  // A day alone (`today`, `2026-09-06`) is its first instant, even where the clocks skip its
  // midnight (America/Santiago) or go through it twice.
  if (dayStart) {
    return new Date(asUtc - (first ?? Math.min(...offsets)) * 60_000);
  }
  const day = `${pad(y, 4)}-${pad(mo)}-${pad(d)}`;
  const clock = `${pad(h)}:${pad(mi)}${sec === 0 ? "" : `:${pad(sec)}`}`;
  const withOffset = (offset: number) => `${day}T${pad(h)}:${pad(mi)}:${pad(sec)}${offsetText(offset)}`;
  const zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const ordered = [...offsets].sort((a, b) => b - a);
  if (fits.length === 0) {
    const [later, earlier] = [Math.max(...ordered), Math.min(...ordered)];
    throw new ValidationError(
      `"${text}" names ${clock} on ${day}, a time the clocks skipped in ${zone} (they moved from UTC${offsetText(earlier)} to UTC${offsetText(later)}): give it with an offset, such as ${withOffset(earlier)}`,
      [{ pointer, message: `is a local time that did not happen in ${zone}` }],
    );
  }
  throw new ValidationError(
    `"${text}" names ${clock} on ${day}, which happened twice in ${zone} (the clocks went back from UTC${offsetText(fits[0] ?? 0)} to UTC${offsetText(fits[1] ?? 0)}): give it with an offset, ${withOffset(fits[0] ?? 0)} or ${withOffset(fits[1] ?? 0)}`,
    [{ pointer, message: `is a local time that happened twice in ${zone}` }],
  );
}

/** An RFC 3339 date-time (a zone required), each field in its range: 2024-02-30T00:00:00Z is not one. */
export function isRfc3339Time(text: string): boolean {
  const match = RFC3339.exec(text.toLowerCase());
  return match !== null && typeof isoTime(match) !== "string";
}

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})t(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:(z)|([+-])(\d{2}):(\d{2}))$/;

const MONTHS = "January February March April May June July August September October November December".split(
  " ",
);

/** Which of a time of day's fields is out of its range, in words; undefined when none is. */
function timeOfDayProblem(h: number, mi: number, sec: number): string | undefined {
  if (h > 23) return `the hour ${pad(h)} is out of range (00–23)`;
  if (mi > 59) return `the minute ${pad(mi)} is out of range (00–59)`;
  if (sec > 59) return `the second ${pad(sec)} is out of range (00–59)`;
  return undefined;
}

/**
 * The time an ISO 8601 match names, or what is out of range when a field is (Date.parse
 * would read 2026-02-30 as March 2nd). With a zone, the instant; without one, the local fields
 * (localTime reads them in the process's time zone), a date alone at its midnight, as the calendar
 * forms are: Date.parse reads a date alone as UTC and a date with a time as local.
 */
function isoTime(match: RegExpExecArray): { date: Date; local?: LocalFields } | string {
  const [, year, month, day, hours, minutes, seconds, fraction, z, sign, offsetHours, offsetMinutes] = match;
  const y = Number(year);
  const mo = Number(month);
  const d = Number(day);
  const h = Number(hours ?? 0);
  const mi = Number(minutes ?? 0);
  const sec = Number(seconds ?? 0);
  const ms = Math.floor(Number(`0.${fraction ?? "0"}`) * 1000);
  // Day 0 of the next month is the last day of this one.
  const daysInMonth = new Date(Date.UTC(y, mo, 0)).getUTCDate();
  if (mo < 1 || mo > 12) return `the month ${pad(mo)} is out of range (01–12)`;
  if (d < 1 || d > daysInMonth) {
    return `the day ${pad(d)} is out of range (01–${daysInMonth} in ${MONTHS[mo - 1] ?? ""} ${pad(y, 4)})`;
  }
  const timeProblem = timeOfDayProblem(h, mi, sec);
  if (timeProblem !== undefined) return timeProblem;
  const date = new Date(0);
  if (z === undefined && sign === undefined) return { date, local: { y, mo, d, h, mi, sec, ms } };
  const oh = Number(offsetHours ?? 0);
  const om = Number(offsetMinutes ?? 0);
  if (oh > 23 || om > 59) {
    return `the offset ${sign ?? "+"}${pad(oh)}:${pad(om)} is out of range (-23:59 to +23:59)`;
  }
  // setUTCFullYear, not Date.UTC, which reads the years 0–99 as 1900–1999.
  date.setUTCFullYear(y, mo - 1, d);
  date.setUTCHours(h, mi, sec, ms);
  date.setTime(date.getTime() - (sign === "-" ? -1 : 1) * (oh * 60 + om) * 60_000);
  return Number.isNaN(date.getTime()) ? "it is beyond the range of times" : { date };
}
