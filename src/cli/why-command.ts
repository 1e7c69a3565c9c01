// `things why SEQ`: the chain of causes behind one Change, as the hub reads it from the Log
// (GET /changes/{seq}/why) — a value the Thing reported back to the write that asked for it, an
// outcome to its command, a command to who sent it.
import type { Command } from "commander";
import type { Why } from "../client/index.js";
import { deliveryOf, type Change } from "../core/index.js";
import { clientOf, connectionHelpWith, talking } from "./client-commands.js";
import { wholeNumber } from "./whole-number.js";
import { describeChange } from "./history-commands.js";

/**
 * `admin via http, release sha256:…, rule revert, correlation …`: a Change's cause in words; for a
 * reported value, how it was got (`hub:observer, read by the hub over HTTP`; a read someone asked
 * for names their surface: `admin via graphql, read by the hub over COAP`).
 */
function causeWords(change: Change): string {
  const { actor, via, surface, release, rule, correlation } = change.cause;
  const delivery = deliveryOf(change);
  const through = delivery === undefined ? via : surface;
  return [
    `${actor}${through === undefined ? "" : ` via ${through}`}`,
    delivery,
    release && `release ${release}`,
    rule && `rule ${rule}`,
    correlation && `correlation ${correlation}`,
  ]
    .filter(Boolean)
    .join(", ");
}

function whyLines(why: Why): string {
  const lines = [
    `seq ${why.change.seq}  ${describeChange(why.change)}`,
    `  cause: ${causeWords(why.change)}`,
  ];
  for (const link of why.chain) {
    lines.push(`← ${link.relation}: seq ${link.change.seq}  ${describeChange(link.change)}`);
    lines.push(`  cause: ${causeWords(link.change)}`);
  }
  lines.push(`origin: ${why.origin}`);
  return `${lines.join("\n")}\n`;
}

export function registerWhyCommand(program: Command): void {
  program
    .command("why")
    .description(
      "why a Change happened: a reported value back to the write that asked for it, an outcome to its command, a command to who sent it",
    )
    .argument("<seq>", "the Change's position in the Log", wholeNumber("seq", 1))
    .option(
      "--json",
      "the chain as one JSON object: {change, chain: [{relation, change}], origin, delivery?}",
    )
    .addHelpText("after", () =>
      connectionHelpWith("0 done, 1 failed (the hub refused or is unreachable), 2 usage"),
    )
    .action(
      talking(async (seq: number, options: { json?: boolean }, command: Command) => {
        const why = await clientOf(command).why(seq);
        process.stdout.write(options.json ? `${JSON.stringify(why)}\n` : whyLines(why));
      }),
    );
}
