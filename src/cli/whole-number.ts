// The one reader of the CLI's whole-number arguments and options (a seq, --limit, --depth, --scale…):
// a bad one is a usage error in the project's one line, naming what it is for and what it takes.
import { readInteger } from "../core/index.js";
import { CliError } from "./cli-error.js";

/**
 * A parser for commander (or a call) reading `name`'s value: a whole number from `min` (to `max`),
 * written as the hub reads one in a request (core's readInteger: no leading zero), else
 * `seq must be a whole number from 1, not "abc"` and exit code 2.
 */
export function wholeNumber(name: string, min: number, max?: number): (text: string) => number {
  return (text) => {
    const value = readInteger(text);
    if (typeof value !== "number" || value < min || (max !== undefined && value > max)) {
      const range = max === undefined ? `from ${min}` : `from ${min} to ${max}`;
      throw new CliError(`${name} must be a whole number ${range}, not "${text}"`, 2);
    }
    return value;
  };
}
