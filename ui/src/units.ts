// A TD's `unit` as a person reads it: TDs often write units as UCUM codes (`Cel`, `MiBy`, `1/s`),
// which a responder would take for a typo; the usual symbol is shown for the codes known here,
// any other unit as the TD writes it.

/** UCUM codes (case-sensitive, https://ucum.org/ucum) and the symbols people write for them. */
const SYMBOLS: Record<string, string> = {
  Cel: "°C",
  "[degF]": "°F",
  By: "B",
  kBy: "kB",
  KiBy: "KiB",
  MBy: "MB",
  MiBy: "MiB",
  GBy: "GB",
  GiBy: "GiB",
  "1/s": "/s",
  "1/min": "/min",
  "1/h": "/h",
  "bit/s": "bit/s",
  "[ppm]": "ppm",
};

/** The unit as shown: its usual symbol for a UCUM code, else as written. */
export function unitText(unit: string): string {
  return SYMBOLS[unit] ?? unit;
}
