// Every command's --help ends with examples, and each example is a command line its command takes.
import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import { commandExamples } from "./command-examples.js";
import { buildProgram } from "./program.js";

/** The commands a person runs (not groups such as `credentials`, nor `help`), keyed as the examples are. */
function leafCommands(program: Command): Map<string, Command> {
  const leaves = new Map<string, Command>();
  const visit = (command: Command, prefix: string): void => {
    for (const sub of command.commands) {
      const key = `${prefix}${sub.name()}`;
      if (sub.commands.length > 0) visit(sub, `${key} `);
      else if (sub.name() !== "help") leaves.set(key, sub);
    }
  };
  visit(program, "");
  return leaves;
}

/** A shell line's words, as sh would split them: quotes kept together and removed. */
function words(line: string): string[] {
  const out: string[] = [];
  let word: string | undefined;
  let quote: string | undefined;
  for (const char of line) {
    if (quote !== undefined) {
      if (char === quote) quote = undefined;
      else word = (word ?? "") + char;
    } else if (char === "'" || char === '"') {
      quote = char;
      word ??= "";
    } else if (char === " ") {
      if (word !== undefined) out.push(word);
      word = undefined;
    } else word = (word ?? "") + char;
  }
  if (word !== undefined) out.push(word);
  return out;
}

/** The `things …` part of an example: without a comment, the pipes around it, and env assignments. */
function thingsWords(example: string): string[] {
  const line = example.replace(/\s+#.*$/, "");
  const segment = line.split(" | ").find((part) => /(^|\s)things\s/.test(`${part} `)) ?? "";
  const all = words(segment);
  return all.slice(all.indexOf("things") + 1);
}

function helpOf(command: Command): string {
  let text = "";
  command.configureOutput({ writeOut: (s) => (text += s) });
  command.outputHelp();
  return text;
}

describe("the examples of each command's help", () => {
  it("are there for every command", () => {
    const program = buildProgram();
    for (const [key, command] of leafCommands(program)) {
      const help = helpOf(command);
      expect(help, `things ${key} --help`).toMatch(/\nExamples:\n {2}things /);
    }
    // No examples are kept for a command that does not exist.
    const keys = [...leafCommands(program).keys()];
    for (const key of Object.keys(commandExamples)) expect(keys).toContain(key);
  });

  it("each run the command they are shown for, with options it takes", () => {
    for (const [key, examples] of Object.entries(commandExamples)) {
      for (const example of examples) {
        const program = buildProgram();
        const command = leafCommands(program).get(key);
        if (command === undefined) throw new Error(`no command ${key}`);
        const args = thingsWords(example);
        const path = key.split(" ");
        expect(args.slice(0, path.length), example).toEqual(path);
        // --url and --token belong to `things` itself, and go anywhere on the line.
        const rest = args
          .slice(path.length)
          .filter((_, i, all) => !["--url", "--token"].includes(all[i - 1] ?? ""));
        const own = rest.filter((word) => word !== "--url" && word !== "--token");
        const { operands, unknown } = command.parseOptions(own);
        expect(unknown, example).toEqual([]);
        const required = command.registeredArguments.filter((a) => a.required).length;
        const variadic = command.registeredArguments.some((a) => a.variadic);
        expect(operands.length, example).toBeGreaterThanOrEqual(required);
        if (!variadic)
          expect(operands.length, example).toBeLessThanOrEqual(command.registeredArguments.length);
      }
    }
  });
});
