// `things discover URL`: the hub fetches the TD at URL (or the TD directory a host announces at
// /.well-known/wot) and registers what it describes; prints the ids registered.
import type { Command } from "commander";
import { clientOf, connectionHelpWith, talking } from "./client-commands.js";

export function registerDiscoverCommand(program: Command): void {
  program
    .command("discover")
    .description("register the Thing whose TD is at URL, or every Thing a host's /.well-known/wot lists")
    .argument(
      "<url>",
      "a TD's URL (http, https or coap), a TD directory's URL, or a host (http://host:port, coap://host:port) to ask its /.well-known/wot",
    )
    .addHelpText(
      "after",
      connectionHelpWith("0 done, 1 failed (the hub refused or could not fetch), 2 usage"),
    )
    .action(
      talking(async (url: string, _options: unknown, command: Command) => {
        const result = await clientOf(command).discover(url);
        const out = process.stdout;
        for (const id of result.registered) out.write(`${id}\n`);
        for (const refusal of result.refused) {
          process.stderr.write(
            `things: not registered: ${refusal.id ?? `item ${refusal.index}`}: ${refusal.detail}\n`,
          );
        }
        const from = result.directory === undefined ? "" : ` from the directory at ${result.directory}`;
        // A TD fetched from elsewhere may take the id of a Thing registered already: say so.
        for (const id of result.replaced) {
          process.stderr.write(
            `things: replaced the TD the hub held for ${id} (its history keeps the one before)\n`,
          );
        }
        const replaced =
          result.replaced.length === 0 ? "" : `, ${result.replaced.length} of them replacing a TD`;
        // Older hubs do not say which were unchanged.
        const unchanged = result.unchanged ?? [];
        const same =
          unchanged.length === 0 ? "" : `, ${unchanged.length} unchanged (the hub held them so already)`;
        process.stderr.write(`${result.registered.length} Thing(s) registered${replaced}${same}${from}\n`);
      }),
    );
}
