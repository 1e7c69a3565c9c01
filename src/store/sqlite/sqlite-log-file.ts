// A hub's database file read for verification alone (`things verify --db`): read-only, no hub, no
// migration, and none of the checks that make a hub refuse a damaged file, since a damaged file is
// exactly what an auditor needs to look into.
import Database from "better-sqlite3";
import { accessSync, constants, copyFileSync, existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, dirname, join } from "node:path";
import type { Checkpoint } from "../../core/index.js";
import type { LogEntries } from "../store.js";
import { LOG_ENTRIES_SQL, type EntriesRow } from "./sqlite-log.js";

/** What the file's head row says, beside what its `changes` table holds. */
export interface LogFileHead {
  /** The Log's size by its head row (`log_head`), undefined when the row is missing. */
  headSize: number | undefined;
  /** The greatest seq in the `changes` table (0 when empty). */
  lastSeq: number;
}

/** Opens a database file read-only, with the statement that reads its Log. */
function openReadOnly(path: string): {
  db: Database.Database;
  entries: Database.Statement<[number, number], EntriesRow>;
} {
  const db = new Database(path, { readonly: true, fileMustExist: true });
  try {
    return { db, entries: db.prepare<[number, number], EntriesRow>(LOG_ENTRIES_SQL) };
  } catch (err) {
    db.close();
    throw err;
  }
}

function writable(path: string): boolean {
  try {
    accessSync(path, constants.W_OK);
    return true;
  } catch {
    return false;
  }
}

/**
 * Whether SQLite refused a file it may read because it could not write beside it: a database in
 * WAL mode is read through its `-shm` index, which a reader creates (or writes) next to the file,
 * so a copy on a read-only mount, or in a directory this user cannot write, fails to open with
 * "unable to open database file" or "attempt to write a readonly database".
 */
function refusedForWant(err: unknown, path: string): boolean {
  const code = (err as { code?: unknown }).code;
  if (typeof code !== "string" || !/^SQLITE_(CANTOPEN|READONLY)/.test(code)) return false;
  try {
    accessSync(path, constants.R_OK);
  } catch {
    return false;
  }
  return (
    !writable(dirname(path)) || [`${path}-wal`, `${path}-shm`].some((f) => existsSync(f) && !writable(f))
  );
}

export class SqliteLogFile {
  private readonly db: Database.Database;
  private readonly entriesStatement: Database.Statement<[number, number], EntriesRow>;
  /**
   * Where the file (and its `-wal`) was copied to be read, when SQLite could not read it in place
   * (`refusedForWant`); removed by `close`. SQLite's `immutable=1` would read it in place, but
   * it ignores the `-wal`, whose committed Changes a verification must not miss.
   */
  readonly copiedTo: string | undefined;

  /** Opens `path` read-only; an Error names the file and what is wrong with it. */
  constructor(readonly path: string) {
    let opened;
    try {
      opened = openReadOnly(path);
    } catch (err) {
      if (!refusedForWant(err, path)) {
        throw new Error(`cannot read ${path} as a hub's database: ${(err as Error).message}`, { cause: err });
      }
      let copy: string | undefined;
      try {
        copy = mkdtempSync(join(tmpdir(), "hyperthings-verify-"));
        const file = join(copy, basename(path));
        copyFileSync(path, file);
        if (existsSync(`${path}-wal`)) copyFileSync(`${path}-wal`, `${file}-wal`);
        opened = openReadOnly(file);
        this.copiedTo = copy;
      } catch (error) {
        if (copy !== undefined) rmSync(copy, { recursive: true, force: true });
        throw new Error(
          `cannot read ${path}: SQLite reads a database in WAL mode through files it writes beside it, and ${dirname(path)} (or its -wal/-shm) is not writable here; copying it to ${tmpdir()} failed too (${(error as Error).message}): copy ${basename(path)} (and its -wal, if there is one) to a directory you can write to, and verify the copy`,
          { cause: err },
        );
      }
    }
    this.db = opened.db;
    this.entriesStatement = opened.entries;
  }

  head(): LogFileHead {
    const head = this.db.prepare("SELECT size FROM log_head WHERE id = 1").pluck().get() as
      number | undefined;
    const last = this.db.prepare("SELECT max(seq) FROM changes").pluck().get() as number | null;
    return { headSize: head, lastSeq: last ?? 0 };
  }

  /** Every signed checkpoint in the file, oldest first. */
  checkpoints(): Checkpoint[] {
    return this.db
      .prepare("SELECT origin, size, root, time, signature FROM checkpoints ORDER BY size")
      .all() as Checkpoint[];
  }

  /** The Changes after `after`, at most `limit`, as the hub's `GET /log/entries` writes them. */
  entries(after: number, limit: number): LogEntries {
    const row = this.entriesStatement.get(after, limit);
    const count = row?.count ?? 0;
    return { body: row?.body ?? new Uint8Array(0), count, last: count > 0 ? (row?.last ?? after) : after };
  }

  close(): void {
    this.db.close();
    if (this.copiedTo !== undefined) rmSync(this.copiedTo, { recursive: true, force: true });
  }
}
