// A hub's database file read for verification alone (`things verify --db`): read-only, no hub, no
// migration, and none of the checks that make a hub refuse a damaged file, since a damaged file is
// exactly what an auditor needs to look into.
import Database from "better-sqlite3";
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

export class SqliteLogFile {
  private readonly db: Database.Database;
  private readonly entriesStatement: Database.Statement<[number, number], EntriesRow>;

  /** Opens `path` read-only; an Error names the file and what is wrong with it. */
  constructor(readonly path: string) {
    try {
      this.db = new Database(path, { readonly: true, fileMustExist: true });
      this.entriesStatement = this.db.prepare<[number, number], EntriesRow>(LOG_ENTRIES_SQL);
    } catch (err) {
      throw new Error(`cannot read ${path} as a hub's database: ${(err as Error).message}`, { cause: err });
    }
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
  }
}
