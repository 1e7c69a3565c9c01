// docs/cli.md is the reference of the `things` command: it names every command and every flag
// each one takes, and no flag that a command does not take.
import { readFileSync } from "node:fs";
import type { Command } from "commander";
import { describe, expect, it } from "vitest";
import { buildProgram } from "./program.js";

const DOC = readFileSync(new URL("../../docs/cli.md", import.meta.url), "utf8");

/** The commands a person runs, by their full name (`credentials set`), as the doc heads them. */
function leafCommands(program: Command): Map<string, Command> {
  const leaves = new Map<string, Command>();
  const visit = (command: Command, prefix: string): void => {
    for (const sub of command.commands) {
      const name = `${prefix}${sub.name()}`;
      if (sub.commands.length > 0) visit(sub, `${name} `);
      else if (sub.name() !== "help") leaves.set(name, sub);
    }
  };
  visit(program, "");
  return leaves;
}

/** Each `### things NAME …` section of the doc, by NAME: its text up to the next heading. */
function sections(): Map<string, string> {
  const found = new Map<string, string>();
  for (const part of DOC.split(/^(?=##+ )/m)) {
    const name = /^### things ((?:credentials )?[a-z-]+)/.exec(part)?.[1];
    if (name !== undefined) found.set(name, part);
  }
  return found;
}

function longFlags(command: Command): string[] {
  return command.options.flatMap((option) => (option.long && option.long !== "--help" ? [option.long] : []));
}

/** The flags a section's table lists: the first cell of each row. */
function flagsListed(section: string): string[] {
  return [...section.matchAll(/^\| `[^`]*?(--[a-z][a-z-]*)[^`]*` \|/gm)].map((match) => match[1] ?? "");
}

describe("docs/cli.md", () => {
  const commands = leafCommands(buildProgram());
  const documented = sections();

  it("has a section for every command, and none for a command that does not exist", () => {
    expect([...documented.keys()].sort()).toEqual([...commands.keys()].sort());
  });

  it("lists every flag each command takes, and none it does not", () => {
    const serve = commands.get("serve");
    for (const [name, command] of commands) {
      const section = documented.get(name) ?? "";
      const listed = flagsListed(section);
      // `things demo` takes every flag of `things serve`, which the doc says rather than repeats.
      const shared = section.includes("Every flag of `things serve`") && serve ? longFlags(serve) : [];
      expect([...listed, ...shared].sort(), name).toEqual(longFlags(command).sort());
    }
  });

  it("says of each flag what its --help says", () => {
    // The doc may quote in backticks what --help writes plain.
    const plain = (text: string) => text.replace(/`/g, "").replace(/\s+/g, " ").trim();
    for (const [name, command] of commands) {
      const rows = (documented.get(name) ?? "").split("\n");
      for (const option of command.options) {
        const start = `| \`${option.flags}\` |`;
        const row = rows.find((line) => line.startsWith(start));
        if (row === undefined) continue; // demo's shared flags, said once under serve
        const said = row.slice(start.length).replace(/\|\s*$/, "");
        // --help adds a flag's default value after its description; the doc writes it there too.
        const shown =
          option.defaultValue === undefined || /\bdefault\b/.test(option.description)
            ? option.description
            : `${option.description} (default ${String(option.defaultValue)})`;
        expect(plain(said), `${name} ${option.flags}`).toBe(plain(shown));
      }
    }
  });
});
