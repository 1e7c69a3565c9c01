// The one reader of the CLI's whole-number arguments and options (a seq, --limit, --depth, --scale…):
// a bad one is a usage error in the project's one line, naming what it is for and what it takes.
import { CliError } from "./cli-error.js";

/**
 * A parser for commander (or a call) reading `name`'s value: a whole number from `min` (to `max`),
 * else `seq must be a whole number from 1, not "abc"` and exit code 2.
 */
export function wholeNumber(name: string, min: number, max?: number): (text: string) => number {
  return (text) => {
    const value = Number(text);
    if (
      !/^\d+$/.test(text) ||
      !Number.isSafeInteger(value) ||
      value < min ||
      (max !== undefined && value > max)
    ) {
      const range = max === undefined ? `from ${min}` : `from ${min} to ${max}`;
      throw new CliError(`${name} must be a whole number ${range}, not "${text}"`, 2);
    }
    return value;
  };
}
