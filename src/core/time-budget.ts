// Synchronous work that input from outside can make slow without bound — a TD's `pattern` or a
// JSONPath `match()` whose regular expression backtracks catastrophically (ReDoS, PITFALLS.md) —
// runs with a time budget, so it fails alone instead of blocking the event loop for everyone.
import { Script, createContext } from "node:vm";

/** How long one regular expression may run on one value. */
export const REGEXP_BUDGET_MS = 100;

const call = new Script("run()");
const context = createContext({ run: (): unknown => undefined });

/**
 * CPU time this thread has used (Node ≥ 22.19), or where Node cannot say (Node 20) the whole
 * process, an upper bound of it.
 */
const cpuUsage: (previous?: NodeJS.CpuUsage) => NodeJS.CpuUsage =
  (process as { threadCpuUsage?: typeof process.cpuUsage }).threadCpuUsage?.bind(process) ??
  process.cpuUsage.bind(process);

/**
 * Times `run` is tried at most when it ran out of its budget without having had the CPU for it.
 * Work that had the CPU and was slow is stopped at the first try; work that waits for a core on a
 * busy machine holds the event loop at most this many budgets.
 */
const MAX_TRIES = 3;

/**
 * Runs `run` and returns its result, or `{ done: false }` when it was stopped after `ms`
 * milliseconds. V8 interrupts JavaScript, regular expressions included, when a vm script's
 * timeout passes (node:vm `timeout`). That timeout is wall-clock time: on a busy machine a thread
 * can wait longer than the budget for a core, and a value that fits a pattern was refused as not
 * fitting it. So when this thread used less than a quarter of the
 * budget in CPU time meanwhile, `run` was kept off the CPU, not slow: it is tried again. `run`
 * must be safe to call again (a regular expression's `test`).
 */
export function withinBudget<T>(run: () => T, ms: number): { done: true; value: T } | { done: false } {
  context.run = run;
  try {
    for (let tries = 1; ; tries++) {
      const before = cpuUsage();
      try {
        return { done: true, value: call.runInContext(context, { timeout: ms }) as T };
      } catch (err) {
        if ((err as { code?: unknown }).code !== "ERR_SCRIPT_EXECUTION_TIMEOUT") throw err;
        const used = cpuUsage(before);
        if (tries >= MAX_TRIES || (used.user + used.system) / 1000 >= ms / 4) return { done: false };
      }
    }
  } finally {
    context.run = () => undefined;
  }
}

/**
 * Whether a pattern certainly matches a text quickly, so that it may run without a budget (a
 * budget costs ~0.1 ms: a watchdog thread per call): no quantified group (`(a|a)*`, `(a+)+`:
 * exponential), at most three quantifiers (backtracking grows as the text's length to their
 * number) and a text of at most 256 characters.
 */
export function quickToMatch(pattern: string, text: string): boolean {
  if (text.length > 256 || /\)[*+?{]/.test(pattern)) return false;
  return (pattern.replace(/\\./g, "").match(/[*+?{]/g)?.length ?? 0) <= 3;
}

/**
 * A regular expression for Ajv (`code.regExp`) whose `test` gives up after REGEXP_BUDGET_MS:
 * a value it could not match in time does not fit the pattern.
 */
export function boundedRegExp(
  pattern: string,
  flags: string,
): { test(text: string): boolean; toString(): string } {
  const regexp = new RegExp(pattern, flags);
  return {
    test(text: string): boolean {
      if (quickToMatch(pattern, text)) return regexp.test(text);
      const result = withinBudget(() => regexp.test(text), REGEXP_BUDGET_MS);
      return result.done && result.value;
    },
    // Ajv keeps one compiled pattern per `String(rx)` for all its schemas: without this, every
    // object here was "[object Object]", and every pattern was checked as the first one compiled.
    toString: () => regexp.toString(),
  };
}
