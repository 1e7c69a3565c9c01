// `things backup DIR`: a copy of a hub's data directory, taken while the hub runs or not — the
// database as of one moment (src/store/sqlite/sqlite-backup.ts) and the small files beside it
// without which its Log cannot go on (docs/operations.md). The copy is itself a data directory:
// `things serve --data DIR` starts a hub on it.
import { chmodSync, copyFileSync, existsSync, readdirSync, rmSync, statSync } from "node:fs";
import { join, resolve } from "node:path";
import type { Command } from "commander";
// Each `things` command loads every CLI module: take the names from the hub's light modules, and
// the API (Fastify, the MQTT broker, GraphQL) only when a backup runs, not on every command.
import { ADMIN_TOKEN_FILE } from "../hub/admin-token.js";
import { defaultDataDir } from "../hub/config.js";
import { HUB_ID_FILE } from "../hub/hub-identity.js";
import { LOG_KEY_FILE } from "../hub/notary.js";
import { MQTT_CREDENTIALS_FILE } from "../hub/mqtt-credentials.js";
import { SECRET_KEY_FILE } from "../hub/thing-secrets.js";
import type { BackupProgress } from "../store/index.js";
import { CliError } from "./cli-error.js";
import { exitOnSignal } from "./exit-on-signal.js";

const DATABASE_FILE = "hyperthings.db";

/**
 * The data directory's files beside the database that a backup copies, all made once and never
 * changed after (so copied after the database, which a hub's first start makes before them): the
 * embedded broker's port, where it had to fall back from 1883, so that a restored hub keeps it.
 */
async function writtenOnceFiles(): Promise<string[]> {
  const { MQTT_PORT_FILE } = await import("../api/index.js");
  return [HUB_ID_FILE, LOG_KEY_FILE, SECRET_KEY_FILE, ADMIN_TOKEN_FILE, MQTT_PORT_FILE];
}

/**
 * The MQTT credentials' records of a hub from before the store kept them: a hub of this version
 * takes them into the store at its next start and renames the file. Copied before the database's
 * moment: a hub that takes them in after it leaves them in the copy's file (the copy's database
 * is from before), one that took them in before leaves them in the copy's database, and a record
 * in both is kept as the database has it.
 */
const LEGACY_FILES = [MQTT_CREDENTIALS_FILE];

interface BackupOptions {
  data?: string;
  store?: string;
}

/**
 * A hub on PostgreSQL is backed up with PostgreSQL's own tools, which already do it well (a
 * consistent dump while the hub runs, point-in-time recovery): said in one line, with the schema.
 */
function postgresBackupRefusal(url: string, data: string): CliError {
  let schema = "hyperthings";
  try {
    schema = new URL(url).searchParams.get("schema") ?? schema;
  } catch {
    // The default schema's name is the best guess for a URL that does not parse.
  }
  return new CliError(
    `things backup copies the embedded SQLite store; this hub's store is PostgreSQL: back up its schema with ` +
      `\`pg_dump --schema=${schema} --format=custom\` (restore: pg_restore into an empty database), copy ${data} ` +
      `with it, and check a restored schema with \`things verify --db <url> --data <dir>\``,
    2,
  );
}

const mib = (bytes: number) => `${(bytes / 2 ** 20).toFixed(1)} MiB`;
const count = (n: number, noun: string) => `${n.toLocaleString("en")} ${noun}${n === 1 ? "" : "s"}`;

/** A bar on a terminal (pages of the database copied), nothing otherwise. */
async function progressView(): Promise<{ update(p: BackupProgress): void; stop(): void }> {
  if (!process.stderr.isTTY) return { update: () => undefined, stop: () => undefined };
  // Loaded for a terminal only, not by every `things` command.
  const { default: cliProgress } = await import("cli-progress");
  const bar = new cliProgress.SingleBar(
    {
      stream: process.stderr,
      format: "backing up {bar} {percentage}% | {value}/{total} pages",
      hideCursor: true,
    },
    cliProgress.Presets.shades_classic,
  );
  let started = false;
  return {
    update({ totalPages, copiedPages }) {
      if (!started) bar.start(totalPages, 0);
      started = true;
      bar.setTotal(totalPages);
      bar.update(copiedPages);
    },
    stop: () => {
      if (started) bar.stop();
    },
  };
}

export async function backup(target: string, options: BackupOptions): Promise<string> {
  const data = resolve(options.data ?? (process.env.HYPERTHINGS_DATA || defaultDataDir()));
  const destination = resolve(target);
  const database = join(data, DATABASE_FILE);
  const store = options.store ?? process.env.HYPERTHINGS_STORE;
  if (store !== undefined && store !== "") {
    if (/^postgres(ql)?:\/\//.test(store)) throw postgresBackupRefusal(store, data);
    throw new CliError(`--store must be a postgres:// or postgresql:// URL, or unset for the SQLite file`, 2);
  }
  if (!existsSync(database)) {
    // The data directory of a hub on PostgreSQL (a replica's) holds its id and keys, not its store.
    if (existsSync(join(data, HUB_ID_FILE))) {
      throw new CliError(
        `${data} holds a hub's id and keys but no ${DATABASE_FILE}: its store is PostgreSQL, then; give it ` +
          `with --store (or HYPERTHINGS_STORE), and this says how to back it up`,
      );
    }
    throw new CliError(`no hub data in ${data} (no ${DATABASE_FILE} there)`);
  }
  if (destination === data) throw new CliError(`${destination} is the data directory itself; give another`);
  // The store (SQLite's driver) only when a backup runs, not on every command.
  const { backupSqliteDatabase, makeDirectory, unmadeDirectory } = await import("../store/index.js");
  let created = false;
  if (existsSync(destination)) {
    if (!statSync(destination).isDirectory())
      throw new CliError(`${destination} exists and is not a directory`);
    if (readdirSync(destination).length > 0) {
      throw new CliError(`${destination} is not empty; give a new or empty directory`);
    }
  } else {
    try {
      makeDirectory(destination, 0o700);
    } catch (err) {
      throw new CliError(`${destination} cannot be made: ${unmadeDirectory(destination, err)}`);
    }
    created = true;
  }
  const progress = await progressView();
  /** What a failed backup leaves: nothing (what it made removed, a directory it was given emptied). */
  const clean = () => {
    if (created) rmSync(destination, { recursive: true, force: true });
    else for (const name of readdirSync(destination)) rmSync(join(destination, name), { force: true });
  };
  // Ctrl-C, or a service manager's SIGTERM, during the copy: what it wrote so far would be left
  // behind, and the next backup to that directory refused as "not empty".
  const release = exitOnSignal("backup", () => {
    progress.stop();
    clean();
    return `; nothing is left in ${destination}`;
  });
  /** Copies the data directory's files of these names that exist; the names copied. */
  const copyFiles = (names: readonly string[]): string[] =>
    names.filter((name) => {
      const from = join(data, name);
      if (!existsSync(from)) return false;
      const to = join(destination, name);
      copyFileSync(from, to);
      chmodSync(to, statSync(from).mode & 0o777);
      return true;
    });
  try {
    const legacy = copyFiles(LEGACY_FILES);
    const result = await backupSqliteDatabase(database, join(destination, DATABASE_FILE), (p) =>
      progress.update(p),
    );
    progress.stop();
    const copied = [DATABASE_FILE, ...copyFiles(await writtenOnceFiles()), ...legacy];
    return (
      `backed up ${data} to ${destination}: ${count(result.changes, "Change")}, ` +
      `${count(result.things, "Thing")}, ${mib(result.bytes)} (${copied.join(", ")})\n` +
      `start a hub on it: things serve --data ${destination}\n`
    );
  } catch (err) {
    progress.stop();
    clean();
    if (err instanceof CliError) throw err;
    throw new CliError(`the backup failed: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    release();
  }
}

export function registerBackupCommand(program: Command): void {
  program
    .command("backup")
    .description(
      "copy a hub's data directory (the database as of one moment, its key and id files), while it runs or not",
    )
    .argument(
      "<dir>",
      "where the copy goes: a new or empty directory; `things serve --data <dir>` runs on it",
    )
    .option(
      "-d, --data <dir>",
      "the hub's data directory (env HYPERTHINGS_DATA, default a per-user data folder)",
    )
    .option(
      "--store <url>",
      "the hub's store, as `things serve --store` (env HYPERTHINGS_STORE): a PostgreSQL one is backed up with pg_dump, which this says how",
    )
    .addHelpText(
      "after",
      "\nExit codes: 0 copied and checked, 1 failed (nothing is left in <dir>), 2 usage, 130/143 stopped by SIGINT/SIGTERM (nothing is left either)",
    )
    .action(async (dir: string, options: BackupOptions) => {
      process.stdout.write(await backup(dir, options));
    });
}
