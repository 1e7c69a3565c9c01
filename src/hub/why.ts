// Why a Change happened, read from the Log: a value the Thing reported back to the write that
// asked for it, an outcome to its command, a command to who sent it. One reading for every
// surface (GET /changes/{seq}/why, GraphQL's Change.why, `things why`).
import { canonicalJson, deliveryOf, type Change } from "../core/index.js";
import type { Store } from "../store/index.js";

/** One link of the chain: a Change, and how the Change before it in the chain came of it. */
export interface WhyLink {
  relation: string;
  change: Change;
}

/** A Change, the chain of its causes in the Log, and where the chain ends. */
export interface Why {
  change: Change;
  chain: WhyLink[];
  /** Where the chain ends: who acted, or why nothing before it is known. */
  origin: string;
  /**
   * For a `reported` Change, how its value was got: `read by the hub over HTTP` (cause via
   * `read:http`) or `pushed by the device over MQTT` (via `mqtt`); absent otherwise.
   */
  delivery?: string;
}

const COMMAND_KINDS = ["desired", "invoked"];
const OUTCOME_KINDS = ["completed", "failed"];
/** How many reports of an unchanged value are followed back before the chain says where it stopped. */
const REPEATS_FOLLOWED = 20;
/** An outcome follows its command closely: the affordance's last 100 commands before it are read. */
const NEARBY = 100;

function sameValue(a: unknown, b: unknown): boolean {
  return a !== undefined && b !== undefined && canonicalJson(a) === canonicalJson(b);
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

/** Reads a Change's causes from a store's Log. */
export class Causes {
  constructor(private readonly store: Store) {}

  /** The affordance's Changes of some kinds just before (desc) or after (asc) a seq. */
  private near(change: Change, kinds: readonly string[], order: "asc" | "desc", limit: number) {
    return this.store.history({
      thing: change.thing,
      ...(change.affordance !== undefined && { affordance: change.affordance }),
      kinds,
      ...(order === "desc" ? { before: change.seq } : { after: change.seq }),
      order,
      limit,
    });
  }

  /** The command (`desired`/`invoked`) an outcome or another Change of one correlation belongs to. */
  private async commandOf(change: Change): Promise<Change | undefined> {
    const correlation = change.cause.correlation;
    if (correlation === undefined || change.affordance === undefined) return undefined;
    const commands = await this.near(change, COMMAND_KINDS, "desc", NEARBY);
    return commands.find((c) => c.cause.correlation === correlation);
  }

  /** The outcome (`completed`/`failed`) of a command, when the Log has it. */
  private async outcomeOf(command: Change): Promise<Change | undefined> {
    if (command.affordance === undefined) return undefined;
    const outcomes = await this.near(command, OUTCOME_KINDS, "asc", NEARBY);
    return outcomes.find((c) => c.cause.correlation === command.cause.correlation);
  }

  /**
   * A reported value back to the write that asked for it: the newest `desired` of that value since
   * the Thing last reported the property, if there is one.
   */
  private async writeBehind(change: Change): Promise<{ write?: Change; since?: Change; other?: Change }> {
    if (change.affordance === undefined) return {};
    const [since] = await this.near(change, ["reported"], "desc", 1);
    const writes = await this.near(change, ["desired"], "desc", NEARBY);
    const recent = writes.filter((c) => since === undefined || c.seq > since.seq);
    return {
      write: recent.find((c) => sameValue(c.value, change.value)),
      ...(since !== undefined && { since }),
      ...(recent[0] !== undefined && { other: recent[0] }),
    };
  }

  /** The chain of causes behind `change`, newest first, where it ends, and how its value was got. */
  async why(change: Change): Promise<Why> {
    const why = await this.chainOf(change);
    const delivery = deliveryOf(change);
    return delivery === undefined ? why : { ...why, delivery };
  }

  private async chainOf(change: Change): Promise<Why> {
    const chain: WhyLink[] = [];
    let command: Change | undefined;
    if (change.kind === "reported") {
      // A value reported again unchanged (a poll, an observer that restarted) has the cause of the
      // report that first brought it: follow those back, a bounded number of them.
      let subject = change;
      for (let hops = 0; ; hops++) {
        const { write, since, other } = await this.writeBehind(subject);
        if (write !== undefined) {
          command = write;
          chain.push({ relation: "the write that asked for this value", change: write });
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
          chain.push({ relation: "the same value, reported before", change: since });
          subject = since;
          continue;
        }
        const last =
          since === undefined ? "it was first reported" : `the report before it (seq ${since.seq})`;
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
      command = await this.commandOf(change);
      if (command !== undefined) chain.push({ relation: "the command it ends", change: command });
    } else if (COMMAND_KINDS.includes(change.kind)) {
      command = change;
    }
    if (command !== undefined) {
      const outcome = await this.outcomeOf(command);
      if (outcome !== undefined && outcome.seq !== change.seq) {
        chain.push({ relation: "its outcome", change: outcome });
      }
    }
    return { change, chain, origin: originOf(command ?? change) };
  }
}
