// Times as people write them: RFC 3339 / ISO 8601, `now`, relative (`-15m`, `-2h`, `-1d`,
// `+30s`), and local calendar forms (`today`, `yesterday 14:02`, `14:02:30`), relative to a
// given `now` (injected, never read from the system here) and the process's time zone.
import { ValidationError } from "./errors.js";

const UNIT_MS: Record<string, number> = {
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 604_800_000,
};

const RELATIVE = /^([+-])\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)$/;
const CALENDAR = /^(?:(today|yesterday)\s*)?(?:(\d{1,2}):(\d{2})(?::(\d{2}))?)?$/;
const ISO = /^\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:\.\d{1,9})?)?(?:Z|[+-]\d{2}:?\d{2})?)?$/i;

/** Parses a time expression; a precise ValidationError names what was not understood. */
export function parseTimeExpression(text: string, now: Date, pointer = ""): Date {
  const input = text.trim();
  const fail = (): never => {
    throw new ValidationError(
      `"${text}" is not a time: use RFC 3339 (2026-11-25T14:02:00Z), a relative time (-15m, -2h, -1d) or a local time (yesterday 14:02)`,
      [{ pointer, message: "is not a time" }],
    );
  };
  if (input.length === 0 || input.length > 64) return fail();
  if (input === "now") return new Date(now.getTime());
  const relative = RELATIVE.exec(input);
  if (relative) {
    const [, sign, amount, unit] = relative;
    const ms = Number(amount) * (UNIT_MS[unit ?? ""] ?? Number.NaN);
    const date = new Date(now.getTime() + (sign === "-" ? -ms : ms));
    // Beyond ±100,000,000 days a Date is invalid: out of range is as wrong as unreadable.
    return Number.isNaN(date.getTime()) ? fail() : date;
  }
  const calendar = CALENDAR.exec(input);
  if (calendar && (calendar[1] !== undefined || calendar[2] !== undefined)) {
    const [, day, hours, minutes, seconds] = calendar;
    const date = new Date(now.getTime());
    if (day === "yesterday") date.setDate(date.getDate() - 1);
    const h = hours === undefined ? 0 : Number(hours);
    const m = minutes === undefined ? 0 : Number(minutes);
    const sec = seconds === undefined ? 0 : Number(seconds);
    if (h > 23 || m > 59 || sec > 59) return fail();
    date.setHours(h, m, sec, 0);
    return date;
  }
  if (ISO.test(input)) {
    const ms = Date.parse(input.replace(" ", "T"));
    if (!Number.isNaN(ms) && !Number.isNaN(new Date(ms).getTime())) return new Date(ms);
  }
  return fail();
}
