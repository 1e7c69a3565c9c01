import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { isRfc3339Time, parseTimeExpression } from "./time-expression.js";
import { ValidationError } from "./errors.js";

const now = new Date("2026-11-25T12:30:00.000Z");

/** That `bad` is refused with `problem`, in the message and at `pointer`. */
function expectRefused(bad: string, pointer: string, problem: string): void {
  let error: unknown;
  try {
    parseTimeExpression(bad, now, pointer);
  } catch (err) {
    error = err;
  }
  expect(error, bad).toBeInstanceOf(ValidationError);
  expect((error as ValidationError).message).toBe(`"${bad}" is not a time: ${problem}`);
  expect((error as ValidationError).errors).toEqual([{ pointer, message: `is not a time: ${problem}` }]);
}

describe("time expressions", () => {
  it("reads RFC 3339 times with zones and fractions", () => {
    expect(parseTimeExpression("2026-11-24T14:02:00Z", now).toISOString()).toBe("2026-11-24T14:02:00.000Z");
    expect(parseTimeExpression("2026-11-24T14:02:00.123+01:00", now).toISOString()).toBe(
      "2026-11-24T13:02:00.123Z",
    );
  });

  it("reads relative times against the given now", () => {
    expect(parseTimeExpression("-15m", now).toISOString()).toBe("2026-11-25T12:15:00.000Z");
    expect(parseTimeExpression("-2h", now).toISOString()).toBe("2026-11-25T10:30:00.000Z");
    expect(parseTimeExpression("+30s", now).toISOString()).toBe("2026-11-25T12:30:30.000Z");
    expect(parseTimeExpression("-1d", now).toISOString()).toBe("2026-11-24T12:30:00.000Z");
    expect(parseTimeExpression("now", now).getTime()).toBe(now.getTime());
  });

  it("reads local calendar forms in the process's time zone", () => {
    const expected = new Date(now.getTime());
    expected.setDate(expected.getDate() - 1);
    expected.setHours(14, 2, 0, 0);
    expect(parseTimeExpression("yesterday 14:02", now).getTime()).toBe(expected.getTime());
    const today = new Date(now.getTime());
    today.setHours(0, 0, 0, 0);
    expect(parseTimeExpression("today", now).getTime()).toBe(today.getTime());
  });

  it("reads compound relative times and `… ago`", () => {
    expect(parseTimeExpression("-1h30m", now).toISOString()).toBe("2026-11-25T11:00:00.000Z");
    expect(parseTimeExpression("-1d 12h", now).toISOString()).toBe("2026-11-24T00:30:00.000Z");
    expect(parseTimeExpression("+1m30s", now).toISOString()).toBe("2026-11-25T12:31:30.000Z");
    expect(parseTimeExpression("-250ms", now).toISOString()).toBe("2026-11-25T12:29:59.750Z");
    expect(parseTimeExpression("2 hours ago", now).toISOString()).toBe("2026-11-25T10:30:00.000Z");
    expect(parseTimeExpression("1 day ago", now).toISOString()).toBe("2026-11-24T12:30:00.000Z");
    expect(parseTimeExpression("90s ago", now).toISOString()).toBe("2026-11-25T12:28:30.000Z");
    expect(parseTimeExpression("3 Weeks ago", now).toISOString()).toBe("2026-11-04T12:30:00.000Z");
  });

  it("takes the same steps and unit words signed or with `ago`: -15 minutes, 1h30m ago", () => {
    for (const [text, iso] of [
      ["-15 minutes", "2026-11-25T12:15:00.000Z"],
      ["-15min", "2026-11-25T12:15:00.000Z"],
      ["-2 hours", "2026-11-25T10:30:00.000Z"],
      ["+30 seconds", "2026-11-25T12:30:30.000Z"],
      ["-1 week", "2026-11-18T12:30:00.000Z"],
      ["1h30m ago", "2026-11-25T11:00:00.000Z"],
      ["1 hour 30 minutes ago", "2026-11-25T11:00:00.000Z"],
      ["2 hrs ago", "2026-11-25T10:30:00.000Z"],
      ["1d 12h ago", "2026-11-24T00:30:00.000Z"],
      ["500 milliseconds ago", "2026-11-25T12:29:59.500Z"],
    ] as const) {
      expect(parseTimeExpression(text, now).toISOString(), text).toBe(iso);
    }
    // A unit is a whole word: no month hides in `mo`, no minute in `minutesx`.
    for (const bad of ["-1mo", "-15minutesx", "1h30 ago", "15mago", "-1 month"]) {
      expect(() => parseTimeExpression(bad, now), bad).toThrow(ValidationError);
    }
  });

  it("reads a weekday as the last one before today, with or without `last` and a time", () => {
    // Found by stepping back a day at a time, in the process's zone, as a person counts.
    const before = (weekday: number, hours: number, minutes: number): number => {
      const date = new Date(now.getTime());
      do date.setDate(date.getDate() - 1);
      while (date.getDay() !== weekday);
      date.setHours(hours, minutes, 0, 0);
      return date.getTime();
    };
    const today = now.getDay();
    for (const [text, weekday, h, m] of [
      ["tuesday 14:02", 2, 14, 2],
      ["last Tuesday 14:02", 2, 14, 2],
      ["tue 14:02", 2, 14, 2],
      ["tues", 2, 0, 0],
      ["Thurs 09:30", 4, 9, 30],
      ["last sunday", 0, 0, 0],
      ["saturday 23:59", 6, 23, 59],
    ] as const) {
      expect(parseTimeExpression(text, now).getTime(), text).toBe(before(weekday, h, m));
    }
    // Today's weekday names the same day a week ago; `today` names today.
    const name = ["sunday", "monday", "tuesday", "wednesday", "thursday", "friday", "saturday"][today];
    const weekAgo = new Date(now.getTime());
    weekAgo.setDate(weekAgo.getDate() - 7);
    weekAgo.setHours(8, 0, 0, 0);
    expect(parseTimeExpression(`${name} 08:00`, now).getTime()).toBe(weekAgo.getTime());
    expect(parseTimeExpression("Yesterday 14:02", now).getTime()).toBe(
      parseTimeExpression("yesterday 14:02", now).getTime(),
    );
  });

  it("refuses what it does not understand with a ValidationError", () => {
    for (const bad of [
      "",
      "tomorrow-ish",
      "25:00",
      "-15 parsecs",
      "2026-13-45T99:00Z",
      "yesterday 14:61",
      "tuesnesday 14:02",
      "last 14:02",
      "last",
      "-1h30",
      "3 parsecs ago",
      "ago",
      "- h",
    ]) {
      expect(() => parseTimeExpression(bad, now, "/query/at"), bad).toThrow(ValidationError);
    }
  });

  it("refuses a date the calendar does not have, which Date.parse would move to the next month", () => {
    for (const bad of [
      "2026-02-30T00:00:00Z",
      "2026-02-29",
      "2026-04-31T12:00",
      "2026-00-10",
      "2026-01-00",
      "2026-12-06T12:00+24:00",
      "2026-12-06T12:00+01:60",
    ]) {
      expect(() => parseTimeExpression(bad, now, "/query/at"), bad).toThrow(ValidationError);
    }
    expect(parseTimeExpression("2024-02-29T12:00:00Z", now).toISOString()).toBe("2024-02-29T12:00:00.000Z");
    expect(parseTimeExpression("2026-04-30T23:59:59.999999999-02:30", now).toISOString()).toBe(
      "2026-05-01T02:29:59.999Z",
    );
    expect(parseTimeExpression("0050-06-01T00:00:00Z", now).toISOString()).toBe("0050-06-01T00:00:00.000Z");
  });

  it("says which field is out of range in a form it reads, instead of listing the forms", () => {
    for (const [bad, problem] of [
      ["yesterday 25:00", "the hour 25 is out of range (00–23)"],
      ["25:00", "the hour 25 is out of range (00–23)"],
      ["last tuesday 14:61", "the minute 61 is out of range (00–59)"],
      ["today 10:00:60", "the second 60 is out of range (00–59)"],
      ["2026-13-01", "the month 13 is out of range (01–12)"],
      ["2026-00-10T10:00Z", "the month 00 is out of range (01–12)"],
      ["2026-02-29", "the day 29 is out of range (01–28 in February 2026)"],
      ["2024-04-31T12:00", "the day 31 is out of range (01–30 in April 2024)"],
      ["2026-01-00", "the day 00 is out of range (01–31 in January 2026)"],
      ["2026-12-06T24:00:00Z", "the hour 24 is out of range (00–23)"],
      ["2026-12-06T12:00+24:00", "the offset +24:00 is out of range (-23:59 to +23:59)"],
      ["2026-12-06T12:00-01:60", "the offset -01:60 is out of range (-23:59 to +23:59)"],
      ["-100000000000d", "it is beyond the range of times (100,000,000 days either side of 1970)"],
    ] as const) {
      expectRefused(bad, "/query/at", problem);
    }
    // What it does not read at all still gets the forms it does.
    expect(() => parseTimeExpression("half past nine", now)).toThrow(/is not a time: use RFC 3339 \(/);
  });

  it("asks a relative time without its sign for one, instead of listing the forms: 15m is -15m or +15m", () => {
    for (const [bad, steps] of [
      ["15m", "15m"],
      ["1h30m", "1h30m"],
      ["2 hours", "2 hours"],
      [" 90s ", "90s"],
    ] as const) {
      const problem = `a relative time takes a sign: -${steps} (${steps} ago) or +${steps} (${steps} from now)`;
      expectRefused(bad, "/query/since", problem);
    }
  });

  it("reads a date or date-time without a zone as local time, a date alone as its local midnight", () => {
    const midnight = new Date(2026, 11, 6, 0, 0, 0, 0);
    expect(parseTimeExpression("2026-12-06", now).getTime()).toBe(midnight.getTime());
    expect(parseTimeExpression("2026-12-06T00:00", now).getTime()).toBe(midnight.getTime());
    expect(parseTimeExpression("2026-12-06 14:02:30.5", now).getTime()).toBe(
      new Date(2026, 11, 6, 14, 2, 30, 500).getTime(),
    );
  });

  it("tells an RFC 3339 date-time with a zone and fields in range from anything else", () => {
    for (const good of [
      "2024-02-29T00:00:00Z",
      "2026-12-06T14:02:30.123456789+05:30",
      "2026-12-06t14:02:30z",
    ]) {
      expect(isRfc3339Time(good), good).toBe(true);
    }
    for (const bad of [
      "2024-02-30T00:00:00Z",
      "2026-12-06T14:02:30",
      "2026-12-06",
      "2026-12-06T24:00:00Z",
      "-15m",
      "2026-12-06T14:02:30+0530",
    ]) {
      expect(isRfc3339Time(bad), bad).toBe(false);
    }
  });

  it("round-trips every ISO string of a valid date", () => {
    fc.assert(
      fc.property(
        fc.date({ min: new Date("1970-01-01"), max: new Date("2200-01-01"), noInvalidDate: true }),
        (d) => {
          expect(parseTimeExpression(d.toISOString(), now).getTime()).toBe(d.getTime());
        },
      ),
    );
  });
});

describe("local times the clocks skipped or went through twice", () => {
  /** Runs `body` with the process in time zone `zone` (Node reads TZ again when it is set). */
  function inZone(zone: string, body: () => void): void {
    const before = process.env.TZ;
    process.env.TZ = zone;
    try {
      body();
    } finally {
      if (before === undefined) delete process.env.TZ;
      else process.env.TZ = before;
    }
  }
  const refusal = (text: string, at: string): ValidationError => {
    try {
      parseTimeExpression(text, new Date(at), "/query/at");
    } catch (error) {
      if (error instanceof ValidationError) return error;
      throw error;
    }
    throw new Error(`${text} was read as a time`);
  };

  it("refuses a time the clocks skipped, naming the offset to give, instead of reading another hour", () => {
    inZone("Europe/Berlin", () => {
      // 2026-03-29: 02:00 CET became 03:00 CEST. A Date would quietly read 02:30 as 03:30.
      for (const [text, at] of [
        ["2026-03-29 02:30", "2026-03-30T12:00:00Z"],
        ["2026-03-29T02:30:00", "2026-03-30T12:00:00Z"],
        ["yesterday 02:30", "2026-03-30T12:00:00Z"],
        ["sunday 02:30", "2026-03-31T12:00:00Z"],
      ] as const) {
        const error = refusal(text, at);
        expect(error.message).toBe(
          `"${text}" names 02:30 on 2026-03-29, a time the clocks skipped in Europe/Berlin (they moved from UTC+01:00 to UTC+02:00): give it with an offset, such as 2026-03-29T02:30:00+01:00`,
        );
        expect(error.errors).toEqual([
          { pointer: "/query/at", message: "is a local time that did not happen in Europe/Berlin" },
        ]);
      }
      // Either side of the gap, and the offset form the message offers, are times.
      expect(parseTimeExpression("2026-03-29 01:59", new Date()).toISOString()).toBe(
        "2026-03-29T00:59:00.000Z",
      );
      expect(parseTimeExpression("2026-03-29 03:00", new Date()).toISOString()).toBe(
        "2026-03-29T01:00:00.000Z",
      );
      expect(parseTimeExpression("2026-03-29T02:30:00+01:00", new Date()).toISOString()).toBe(
        "2026-03-29T01:30:00.000Z",
      );
    });
  });

  it("refuses a time that happened twice, naming both, instead of taking the first", () => {
    inZone("America/New_York", () => {
      const error = refusal("yesterday 01:30", "2026-11-02T12:00:00Z");
      expect(error.message).toBe(
        '"yesterday 01:30" names 01:30 on 2026-11-01, which happened twice in America/New_York (the clocks went back from UTC-04:00 to UTC-05:00): give it with an offset, 2026-11-01T01:30:00-04:00 or 2026-11-01T01:30:00-05:00',
      );
      expect(parseTimeExpression("2026-11-01T01:30:00-05:00", new Date()).toISOString()).toBe(
        "2026-11-01T06:30:00.000Z",
      );
      expect(parseTimeExpression("2026-11-01 02:30", new Date()).toISOString()).toBe(
        "2026-11-01T07:30:00.000Z",
      );
    });
    // Half-hour shifts too.
    inZone("Australia/Lord_Howe", () => {
      expect(refusal("2026-04-05 01:45", "2026-12-01T00:00:00Z").message).toContain(
        "2026-04-05T01:45:00+11:00 or 2026-04-05T01:45:00+10:30",
      );
    });
  });

  it("reads a day alone as its first instant, even where the clocks skip its midnight", () => {
    inZone("America/Santiago", () => {
      // 2026-09-06: 00:00 -04 became 01:00 -03; the day starts at 01:00.
      expect(parseTimeExpression("2026-09-06", new Date()).toISOString()).toBe("2026-09-06T04:00:00.000Z");
      expect(parseTimeExpression("today", new Date("2026-09-06T15:00:00Z")).toISOString()).toBe(
        "2026-09-06T04:00:00.000Z",
      );
      expect(refusal("2026-09-06 00:30", "2026-09-07T00:00:00Z").errors[0]?.message).toBe(
        "is a local time that did not happen in America/Santiago",
      );
    });
  });
});
