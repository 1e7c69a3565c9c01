// An online copy of a hub's SQLite database, taken while the hub may be writing it. SQLite's
// backup API copies in steps and starts over whenever another connection commits in between, so
// on a hub that ingests it would never end: the copy is taken inside one read transaction held on
// the source, a snapshot, which the hub's commits do not disturb (WAL: readers and the writer
// do not block each other). The copy is written under a temporary name, checked, flushed and only
// then renamed into place, so a file under the destination's name is always a whole database.
import { chmodSync, closeSync, fsyncSync, openSync, renameSync, rmSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import Database from "better-sqlite3";

export interface BackupProgress {
  totalPages: number;
  copiedPages: number;
}

export interface BackupResult {
  /** Changes in the copied Log (its size). */
  changes: number;
  /** TDs in the copied directory. */
  things: number;
  /** Size of the copy. */
  bytes: number;
}

/** Pages copied per step: 1 MiB, so that progress moves many times a second. */
const PAGES_PER_STEP = 256;

/**
 * Copies the database at `source` to `destination` (which must not exist) as of one moment, and
 * checks the copy (`PRAGMA quick_check`). `onProgress` is called after each step.
 */
export async function backupSqliteDatabase(
  source: string,
  destination: string,
  onProgress?: (progress: BackupProgress) => void,
): Promise<BackupResult> {
  const db = new Database(source, { readonly: true, fileMustExist: true });
  const temporary = join(dirname(destination), `.${basename(destination)}.${process.pid}.tmp`);
  let snapshot: { changes: number; things: number };
  try {
    // The snapshot starts with the first read inside the transaction.
    db.exec("BEGIN");
    snapshot = db
      .prepare<[], { changes: number; things: number }>(
        "SELECT (SELECT size FROM log_head) AS changes, (SELECT count(*) FROM things) AS things",
      )
      .get() as { changes: number; things: number };
    await db.backup(temporary, {
      progress: ({ totalPages, remainingPages }) => {
        onProgress?.({ totalPages, copiedPages: totalPages - remainingPages });
        return PAGES_PER_STEP;
      },
    });
    db.exec("COMMIT");
  } catch (err) {
    rmSync(temporary, { force: true });
    throw err;
  } finally {
    db.close();
  }
  try {
    const copy = new Database(temporary, { fileMustExist: true });
    try {
      const problems = copy.pragma("quick_check", { simple: false }) as { quick_check: string }[];
      const found = problems.map((p) => p.quick_check).filter((text) => text !== "ok");
      if (found.length > 0) throw new Error(`the copy failed its check: ${found.slice(0, 3).join("; ")}`);
    } finally {
      copy.close();
    }
    chmodSync(temporary, statSync(source).mode & 0o777);
    flush(temporary);
    renameSync(temporary, destination);
    flush(dirname(destination));
  } catch (err) {
    rmSync(temporary, { force: true });
    for (const suffix of ["-wal", "-shm"]) rmSync(temporary + suffix, { force: true });
    throw err;
  }
  return { ...snapshot, bytes: statSync(destination).size };
}

function flush(path: string): void {
  const fd = openSync(path, "r");
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}
