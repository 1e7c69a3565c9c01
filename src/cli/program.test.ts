// The words of other tools that `things` answers with its own commands, instead of a guess by spelling.
import { CommanderError } from "commander";
import { describe, expect, it } from "vitest";
import { OTHER_TOOLS_WORDS, buildProgram } from "./program.js";

/** What `things ARGS` writes on stderr for a usage error. */
async function usageError(args: string[]): Promise<string> {
  let written = "";
  const program = buildProgram().configureOutput({ writeErr: (text) => (written += text) });
  await expect(program.parseAsync(args, { from: "user" })).rejects.toBeInstanceOf(CommanderError);
  return written;
}

describe("an unknown command", () => {
  it("that is another tool's word (terraform apply, kubectl logs) names the commands that do it", async () => {
    expect(await usageError(["apply"])).toBe(
      "things: unknown command 'apply': to apply desired state, build a release and roll it out: things build PATH, things plan RELEASE, things rollout RELEASE\n",
    );
    // Commander's guess by spelling was "Did you mean ls?".
    expect(await usageError(["logs"])).toBe(
      "things: unknown command 'logs': things history ID (one Thing's Changes), things changes (every Thing's), things watch (live)\n",
    );
  });

  it("that is a misspelling still gets commander's suggestion", async () => {
    expect(await usageError(["lss"])).toBe("things: unknown command 'lss' (Did you mean ls?)\n");
  });

  it("is never answered with a command that does not exist, nor shadows one that does", () => {
    const names = new Set(buildProgram().commands.map((c) => c.name()));
    for (const [word, hint] of Object.entries(OTHER_TOOLS_WORDS)) {
      expect(names.has(word), word).toBe(false);
      for (const [, named] of hint.matchAll(/things ([a-z-]+)/g))
        expect(names, `${word}: ${hint}`).toContain(named);
    }
  });
});
