// `things rollout RELEASE`: apply a release once, Thing by Thing, with a progress bar (or plain
// lines when stderr is not a terminal) and a live summary; `things rollouts`, `things drift`,
// `things lineage ID`: rollouts, what drifts now, and which release replaced which on a Thing.
import type { Command } from "commander";
import {
  HubError,
  ReleaseClient,
  RolloutClient,
  type RolloutEvent,
  type RolloutView,
} from "../client/index.js";
import type { RolloutProgress, RolloutStep } from "../core/index.js";
import { CliError } from "./cli-error.js";
import { exitOnSignal } from "./exit-on-signal.js";
import { connectionHelpWith, connectionOf, talking } from "./client-commands.js";
import { compactValue, localTime } from "./history-commands.js";
import { resolveRelease } from "./release-commands.js";
import { formatTable } from "./table.js";
import { wholeNumber } from "./whole-number.js";

/**
 * Completed, but some Things failed within --max-failures: not 0, which a script takes for "every
 * Thing has the release" (as Ansible's 2 for failed hosts under max_fail_percentage), and not 1,
 * which says the rollout stopped.
 */
const ROLLOUT_PARTIAL_EXIT_CODE = 3;
/**
 * `--status`, checked before the hub is asked: a usage error (exit 2) in words, not the hub's
 * "Invalid query: query/status must be one of …" and exit 1.
 */
function rolloutStatus(text: string): string {
  if (!["running", "completed", "failed"].includes(text)) {
    throw new CliError(`--status must be running, completed or failed, not "${text}"`, 2);
  }
  return text;
}

const ROLLOUT_EXIT_CODES =
  "0 the rollout completed on every Thing, 1 failed (the rollout stopped past --max-failures, no such release, the hub refused or is unreachable), 2 usage, " +
  `${ROLLOUT_PARTIAL_EXIT_CODE} completed, but some Things failed within --max-failures (they keep their previous release; each is named once, with its reason), ` +
  "130/143 stopped by SIGINT/SIGTERM (a rollout started goes on at the hub: the line says how to follow or cancel it)";
/** How often the event stream is opened again when it drops while the rollout still runs. */
const MAX_RECONNECTS = 10;

function rolloutClientOf(command: Command): RolloutClient {
  const { url, token } = connectionOf(command);
  try {
    return new RolloutClient({ url, token });
  } catch (err) {
    throw new CliError((err as Error).message, 2);
  }
}

function count(text: string | undefined, name: string, min: number): number | undefined {
  if (text === undefined) return undefined;
  return wholeNumber(name, min)(text);
}

function summary(progress: RolloutProgress): string {
  return (
    `${progress.completed} completed, ${progress.failed} failed, ${progress.skipped} skipped` +
    (progress.pending + progress.applying > 0 ? `, ${progress.pending + progress.applying} to go` : "") +
    ` of ${progress.total}`
  );
}

const done = (p: RolloutProgress) => p.completed + p.failed + p.skipped;

/** Shows progress: a bar on a terminal, one line per Thing that ends otherwise. */
interface ProgressView {
  event(e: RolloutEvent): void;
  /** The rollout's steps as they stand, for what the event stream did not show. */
  catchUp(steps: readonly RolloutStep[]): void;
  stop(): void;
  /** The Things whose end a line named, with its reason: the summary does not name them again. */
  readonly named: ReadonlySet<string>;
}

async function progressView(total: number): Promise<ProgressView> {
  // A bar only where a person watches both streams: with stdout a pipe or a file (CI logs, `|
  // tee`), the lines below, which a log keeps, and each Thing's end is told once.
  if (process.stderr.isTTY && process.stdout.isTTY) {
    // Loaded for a terminal only, not by every `things` command.
    const { default: cliProgress } = await import("cli-progress");
    const bar = new cliProgress.SingleBar(
      {
        stream: process.stderr,
        format: "{bar} {value}/{total} Things | {completed} completed, {failed} failed, {skipped} skipped",
        hideCursor: true,
      },
      cliProgress.Presets.shades_classic,
    );
    bar.start(total, 0, { completed: 0, failed: 0, skipped: 0 });
    let stopped = false;
    return {
      event(e) {
        if (stopped) return;
        bar.update(done(e.progress), {
          completed: e.progress.completed,
          failed: e.progress.failed,
          skipped: e.progress.skipped,
        });
      },
      catchUp: () => undefined,
      stop: () => {
        if (stopped) return;
        stopped = true;
        bar.stop();
      },
      named: new Set(),
    };
  }
  // One line per Thing that ended, each once: those that ended before the stream was followed
  // (or while it reconnected) are caught up from the rollout's steps.
  const printed = new Set<string>();
  const print = (thing: string, status: string, reason: string | undefined) => {
    if (printed.has(thing)) return;
    printed.add(thing);
    process.stderr.write(`${printed.size}/${total} ${status} ${thing}${reason ? `: ${reason}` : ""}\n`);
  };
  return {
    event(e) {
      if (e.type === "step" && ENDED.has(e.status)) print(e.thing, e.status, e.reason);
    },
    catchUp(steps) {
      for (const step of steps) if (ENDED.has(step.status)) print(step.thing, step.status, step.reason);
    },
    stop: () => undefined,
    named: printed,
  };
}

const ENDED: ReadonlySet<string> = new Set(["completed", "failed", "skipped"]);

/**
 * The rollout ended (cancelled, or stopped past --max-failures) with steps still out: the stream
 * goes on until they end, and a person watching is told why nothing seems to happen meanwhile.
 */
function waitingLine(event: RolloutEvent): string | undefined {
  if (event.type !== "status" || event.status === "running" || event.progress.applying === 0)
    return undefined;
  const n = event.progress.applying;
  return (
    `rollout ${event.status}${event.reason ? ` (${event.reason})` : ""}: waiting for the ${n} step(s) in flight ` +
    "to end (a command out to a Thing is not taken back)\n"
  );
}

async function follow(
  client: RolloutClient,
  started: RolloutView,
): Promise<{ ended: RolloutView; named: ReadonlySet<string> }> {
  const view = await progressView(started.progress.total);
  return { ended: await followWith(client, started, view), named: view.named };
}

async function followWith(
  client: RolloutClient,
  started: RolloutView,
  view: ProgressView,
): Promise<RolloutView> {
  let waiting = false;
  try {
    for (let attempt = 0; attempt <= MAX_RECONNECTS; attempt++) {
      try {
        let first = true;
        for await (const event of client.rolloutEvents(started.id)) {
          view.event(event);
          const line = waiting ? undefined : waitingLine(event);
          if (line !== undefined) {
            waiting = true;
            view.stop();
            process.stderr.write(line);
          }
          // The stream starts with the status now: steps that ended before it are caught up.
          if (first) view.catchUp(await client.steps(started.id));
          first = false;
        }
      } catch (err) {
        if (attempt === MAX_RECONNECTS) throw err;
      }
      const now = await client.rollout(started.id);
      if (now.status !== "running") {
        view.catchUp(await client.steps(started.id));
        return now;
      }
    }
    view.catchUp(await client.steps(started.id));
    return await client.rollout(started.id);
  } finally {
    view.stop();
  }
}

function rolloutRows(rollouts: RolloutView[]): string[][] {
  return rollouts.map((r) => [
    r.id,
    r.name,
    r.status,
    `${done(r.progress)}/${r.progress.total}`,
    String(r.progress.failed),
    localTime(r.created),
    r.release,
  ]);
}

export function registerRolloutCommands(program: Command): void {
  program
    .command("rollout")
    .description("apply a release once, Thing by Thing, through the Things' own APIs")
    .argument(
      "<release>",
      "a release id, an id prefix as `things releases` shows it (sha256: may be left out), or a name (its newest release)",
    )
    .option("--select <filter>", "only the release's Things this graph filter matches")
    .option("--concurrency <n>", "how many Things at once (default 16)")
    .option("--max-failures <n>", "failed Things tolerated; one more stops the rollout (default 0)")
    .option("--json", "print the rollout as the hub reports it at the end, on one line")
    .addHelpText("after", () => connectionHelpWith(ROLLOUT_EXIT_CODES))
    .action(
      talking(
        async (
          release: string,
          options: { select?: string; concurrency?: string; maxFailures?: string; json?: boolean },
          command: Command,
        ) => {
          const concurrency = count(options.concurrency, "--concurrency", 1);
          const maxFailures = count(options.maxFailures, "--max-failures", 0);
          // Stopping the command does not stop the rollout: once started, it goes on at the hub.
          let rollout: { asked: boolean; id?: string } = { asked: false };
          const stopped = exitOnSignal("rollout", () =>
            rollout.id !== undefined
              ? `; rollout ${rollout.id} goes on at the hub: \`things rollouts ${rollout.id}\` follows it, \`things rollouts ${rollout.id} --cancel\` stops it`
              : rollout.asked
                ? "; the hub was asked to start the rollout and may have: `things rollouts` lists it"
                : "; no rollout was started",
          );
          try {
            const client = rolloutClientOf(command);
            const { url, token } = connectionOf(command);
            const id = await resolveRelease(new ReleaseClient({ url, token }), release);
            rollout = { asked: true };
            const started = await client.startRollout(id, {
              ...(options.select !== undefined && { select: options.select }),
              ...(concurrency !== undefined && { concurrency }),
              ...(maxFailures !== undefined && { maxFailures }),
            });
            rollout = { asked: true, id: started.id };
            process.stderr.write(`rollout ${started.id} of ${started.name} (${started.release})\n`);
            const { ended, named: told } = await follow(client, started);
            if (options.json) process.stdout.write(`${JSON.stringify(ended)}\n`);
            else process.stdout.write(`rollout ${ended.id} ${ended.status}: ${summary(ended.progress)}\n`);
            const failed =
              ended.status === "failed" || ended.progress.failed > 0
                ? await client.steps(ended.id, "failed")
                : [];
            // Each failed Thing is named once, with its reason: a progress line said it already
            // (not a terminal), or the list below does (a bar names none).
            const untold = failed.filter((step) => !told.has(step.thing));
            for (const step of untold.slice(0, 20)) {
              process.stderr.write(`  failed ${step.thing}: ${step.reason ?? ""}\n`);
            }
            if (untold.length > 20) {
              process.stderr.write(
                `  … and ${untold.length - 20} more: \`things rollouts ${ended.id}\` lists them\n`,
              );
            }
            if (ended.status === "failed") {
              throw new CliError(`the rollout failed: ${ended.reason ?? summary(ended.progress)}`);
            }
            if (ended.progress.failed > 0) {
              // Completed, within what was allowed to fail: a distinct exit code, so that a script
              // does not take it for a clean run; the Things were named above, with their reasons.
              throw new CliError(
                `${ended.progress.failed} Thing(s) failed, within --max-failures ` +
                  `${ended.options.maxFailures}; they keep their previous release`,
                ROLLOUT_PARTIAL_EXIT_CODE,
              );
            }
          } finally {
            stopped();
          }
        },
      ),
    );

  program
    .command("rollouts")
    .description("rollouts, newest first, with their progress; with an id, that rollout's steps")
    .argument("[id]", "a rollout id")
    .option("--status <status>", "only running, completed or failed rollouts", rolloutStatus)
    .option(
      "--cancel",
      "cancel the rollout ID: no new step starts, pending ones are skipped, a step in flight sends nothing more and makes no release active",
    )
    .option("--json", "as JSON, on one line")
    .addHelpText("after", () => connectionHelpWith("0 done, 1 failed, 2 usage"))
    .action(
      talking(
        async (
          id: string | undefined,
          options: { status?: string; cancel?: boolean; json?: boolean },
          command: Command,
        ) => {
          const client = rolloutClientOf(command);
          if (options.cancel && id === undefined) throw new CliError("--cancel needs a rollout id", 2);
          if (id !== undefined) {
            const rollout = await (options.cancel ? client.cancelRollout(id) : client.rollout(id)).catch(
              (err: unknown) => {
                if (err instanceof HubError && err.status === 404)
                  throw new CliError(`no rollout ${id}: \`things rollouts\` lists them`);
                throw err;
              },
            );
            const steps = await client.steps(id);
            if (options.json) {
              process.stdout.write(`${JSON.stringify({ ...rollout, steps })}\n`);
              return;
            }
            process.stdout.write(
              `rollout ${rollout.id} of ${rollout.name} (${rollout.release}) ${rollout.status}: ${summary(rollout.progress)}\n` +
                (rollout.reason ? `  ${rollout.reason}\n` : ""),
            );
            const rows = steps.map((s) => [s.thing, s.status, localTime(s.updated), s.reason ?? ""]);
            process.stdout.write(
              formatTable(["THING", "STATUS", "UPDATED", "REASON"], rows, {
                maxWidth: process.stdout.columns,
                uncut: [1, 2],
              }),
            );
            return;
          }
          const rollouts = await client.rollouts(
            options.status === undefined ? {} : { status: options.status },
          );
          if (options.json) {
            process.stdout.write(`${JSON.stringify(rollouts)}\n`);
            return;
          }
          if (rollouts.length === 0) {
            process.stderr.write(
              options.status === undefined
                ? "no rollouts yet (things rollout RELEASE starts one)\n"
                : `no ${options.status} rollouts\n`,
            );
            return;
          }
          process.stdout.write(
            formatTable(
              ["ID", "RELEASE", "STATUS", "DONE", "FAILED", "CREATED", "RELEASE ID"],
              rolloutRows(rollouts),
              {
                maxWidth: process.stdout.columns,
                uncut: [0, 2, 3, 5],
              },
            ),
          );
        },
      ),
    );

  program
    .command("drift")
    .description("what drifts now: properties whose observed value differs from the Thing's active release")
    .option("--thing <id>", "only this Thing")
    .option("--json", "as JSON, on one line")
    .addHelpText("after", () => connectionHelpWith("0 done, 1 failed, 2 usage"))
    .action(
      talking(async (options: { thing?: string; json?: boolean }, command: Command) => {
        const drift = await rolloutClientOf(command).drift(options.thing);
        if (options.json) {
          process.stdout.write(`${JSON.stringify(drift)}\n`);
          return;
        }
        if (drift.length === 0) {
          process.stderr.write(
            `nothing drifts${options.thing === undefined ? "" : ` on ${options.thing}`}: every property observed holds its release's value\n`,
          );
          return;
        }
        const rows = drift.map((d) => [
          d.thing,
          d.affordance,
          compactValue(d.desired),
          compactValue(d.observed),
          localTime(d.since),
          d.policy,
        ]);
        process.stdout.write(
          formatTable(["THING", "PROPERTY", "DESIRED", "OBSERVED", "SINCE", "POLICY"], rows, {
            maxWidth: process.stdout.columns,
            uncut: [4, 5],
          }),
        );
      }),
    );

  program
    .command("lineage")
    .description("a Thing's releases: the active one first, and which release replaced which")
    .argument("<id>", "the Thing's id")
    .option("--json", "as JSON, on one line")
    .addHelpText("after", () => connectionHelpWith("0 done, 1 failed, 2 usage"))
    .action(
      talking(async (id: string, options: { json?: boolean }, command: Command) => {
        const lineage = await rolloutClientOf(command).lineage(id);
        if (options.json) {
          process.stdout.write(`${JSON.stringify(lineage)}\n`);
          return;
        }
        if (lineage.lineage.length === 0) {
          process.stderr.write(`no release has been rolled out to ${id}\n`);
          return;
        }
        const rows = lineage.lineage.map((l) => [
          localTime(l.at),
          l.name,
          l.release,
          l.replaced ?? "",
          l.actor,
          l.rollout,
        ]);
        process.stdout.write(
          formatTable(["AT", "RELEASE", "ID", "REPLACED", "BY", "ROLLOUT"], rows, {
            maxWidth: process.stdout.columns,
            uncut: [0],
          }),
        );
      }),
    );
}
