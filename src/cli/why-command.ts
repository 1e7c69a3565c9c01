// `things why SEQ`: the chain of causes behind one Change, read from the Log — a value the Thing
// reported back to the write that asked for it, an outcome to its command, a command to who sent it.
import type { Command } from "commander";
import type { HubClient } from "../client/index.js";
import { canonicalJson, type Change } from "../core/index.js";
import { clientOf, connectionHelpWith, positiveInteger, talking } from "./client-commands.js";
import { describeChange } from "./history-commands.js";

/** One link of the chain: the Change, and how it follows from the one after it. */
interface Link {
  change: Change;
  /** How the Change before it in the chain came of this one. */
  relation: string;
}

interface Why {
  change: Change;
  chain: Link[];
  /** Where the chain ends: who acted, or why nothing before it is known. */
  origin: string;
}

const COMMAND_KINDS = ["desired", "invoked"] as const;
/** How many reports of an unchanged value are followed back before the chain says where it stopped. */
const REPEATS_FOLLOWED = 20;
const OUTCOME_KINDS = ["completed", "failed"];

function sameValue(a: unknown, b: unknown): boolean {
  return a !== undefined && b !== undefined && canonicalJson(a) === canonicalJson(b);
}

/** The command (`desired`/`invoked`) an outcome or another Change of one correlation belongs to. */
async function commandOf(client: HubClient, change: Change): Promise<Change | undefined> {
  const correlation = change.cause.correlation;
  if (correlation === undefined || change.affordance === undefined) return undefined;
  // An outcome follows its command closely: the affordance's last 100 commands before it.
  const page = await client.history(change.thing, {
    affordance: change.affordance,
    kind: COMMAND_KINDS,
    order: "desc",
    cursor: change.seq,
    limit: 100,
  });
  return page.changes.find((c) => c.cause.correlation === correlation);
}

/** The outcome (`completed`/`failed`) of a command, when the Log has it. */
async function outcomeOf(client: HubClient, command: Change): Promise<Change | undefined> {
  if (command.affordance === undefined) return undefined;
  const page = await client.history(command.thing, {
    affordance: command.affordance,
    kind: OUTCOME_KINDS,
    order: "asc",
    cursor: command.seq,
    limit: 100,
  });
  return page.changes.find((c) => c.cause.correlation === command.cause.correlation);
}

/** `by admin via http, release sha256:…, rule revert, correlation …`: a Change's cause in words. */
function causeWords(change: Change): string {
  const { actor, via, release, rule, correlation } = change.cause;
  return [
    `${actor}${via === undefined ? "" : ` via ${via}`}`,
    release && `release ${release}`,
    rule && `rule ${rule}`,
    correlation && `correlation ${correlation}`,
  ]
    .filter(Boolean)
    .join(", ");
}

/** Where a chain ends, on a command or any Change that is no one's consequence in the Log. */
function originOf(change: Change): string {
  const { actor, release, rule } = change.cause;
  if (release !== undefined) {
    const rollout = change.cause.via === "rollout" ? change.cause.correlation?.split("#")[0] : undefined;
    return (
      `${actor} ${rule === undefined ? "" : `(rule ${rule}) `}for release ${release}` +
      (rollout === undefined ? "" : `, rollout ${rollout} (things rollouts ${rollout})`)
    );
  }
  return `${actor}${change.cause.via === undefined ? "" : ` via ${change.cause.via}`}`;
}

/**
 * A reported value back to the write that asked for it: the newest `desired` of that value since
 * the Thing last reported the property, if there is one.
 */
async function writeBehind(
  client: HubClient,
  change: Change,
): Promise<{ write?: Change; since?: Change; other?: Change }> {
  const affordance = change.affordance;
  if (affordance === undefined) return {};
  const before = await client.history(change.thing, {
    affordance,
    kind: "reported",
    order: "desc",
    cursor: change.seq,
    limit: 1,
  });
  const since = before.changes[0];
  const writes = await client.history(change.thing, {
    affordance,
    kind: "desired",
    order: "desc",
    cursor: change.seq,
    limit: 100,
  });
  const recent = writes.changes.filter((c) => since === undefined || c.seq > since.seq);
  return {
    write: recent.find((c) => sameValue(c.value, change.value)),
    ...(since !== undefined && { since }),
    ...(recent[0] !== undefined && { other: recent[0] }),
  };
}

async function explain(client: HubClient, seq: number): Promise<Why> {
  const change = await client.change(seq);
  const chain: Link[] = [];
  let command: Change | undefined;
  if (change.kind === "reported") {
    // A value reported again unchanged (a poll, an observer that restarted) has the cause of the
    // report that first brought it: follow those back, a bounded number of them.
    let subject = change;
    for (let hops = 0; ; hops++) {
      const { write, since, other } = await writeBehind(client, subject);
      if (write !== undefined) {
        command = write;
        chain.push({ change: write, relation: "the write that asked for this value" });
        break;
      }
      if (since !== undefined && sameValue(since.value, subject.value)) {
        if (hops === REPEATS_FOLLOWED) {
          return {
            change,
            chain,
            origin: `not found within ${REPEATS_FOLLOWED} reports of the same value: things why ${since.seq} goes on`,
          };
        }
        chain.push({ change: since, relation: "the same value, reported before" });
        subject = since;
        continue;
      }
      const last = since === undefined ? "it was first reported" : `the report before it (seq ${since.seq})`;
      const nearest =
        other === undefined
          ? ""
          : `; the last write since, seq ${other.seq}, asked for ${canonicalJson(other.value)}`;
      return {
        change,
        chain,
        origin:
          `the Thing itself: nothing the hub sent asked for ${canonicalJson(subject.value)} since ${last}` +
          `${nearest} (changed on the device, or by a path the hub does not see)`,
      };
    }
  } else if (OUTCOME_KINDS.includes(change.kind)) {
    command = await commandOf(client, change);
    if (command !== undefined) chain.push({ change: command, relation: "the command it ends" });
  } else if ((COMMAND_KINDS as readonly string[]).includes(change.kind)) {
    command = change;
  }
  if (command !== undefined) {
    const outcome = await outcomeOf(client, command);
    if (outcome !== undefined && outcome.seq !== change.seq) {
      chain.push({ change: outcome, relation: "its outcome" });
    }
  }
  return { change, chain, origin: originOf(command ?? change) };
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
    .argument("<seq>", "the Change's position in the Log", positiveInteger)
    .option("--json", "the chain as one JSON object: {change, chain: [{relation, change}], origin}")
    .addHelpText("after", () =>
      connectionHelpWith("0 done, 1 failed (the hub refused or is unreachable), 2 usage"),
    )
    .action(
      talking(async (seq: number, options: { json?: boolean }, command: Command) => {
        const why = await explain(clientOf(command), seq);
        process.stdout.write(options.json ? `${JSON.stringify(why)}\n` : whyLines(why));
      }),
    );
}
