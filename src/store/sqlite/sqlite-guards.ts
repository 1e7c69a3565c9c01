// The triggers that keep the Log and the release index append-only, as the migrations leave
// them (sqlite-migrations.ts 1 and 5, sqlite-release-migration.ts). Whoever can write the file can
// drop them; each opening puts back any that is missing or altered, and says which.
import type Database from "better-sqlite3";

/** Each guard trigger's CREATE statement, as the last migration that touched it wrote it. */
export const GUARD_TRIGGERS: Readonly<Record<string, string>> = {
  changes_no_update: `CREATE TRIGGER changes_no_update BEFORE UPDATE ON changes
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END`,
  changes_no_delete: `CREATE TRIGGER changes_no_delete BEFORE DELETE ON changes
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END`,
  changes_no_replace: `CREATE TRIGGER changes_no_replace BEFORE INSERT ON changes
    WHEN NEW.seq <= (SELECT size FROM log_head WHERE id = 1)
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END`,
  log_head_no_shrink: `CREATE TRIGGER log_head_no_shrink BEFORE UPDATE OF size ON log_head
    WHEN NEW.size < OLD.size
    BEGIN SELECT RAISE(ABORT, 'the log is append-only'); END`,
  releases_no_update: `CREATE TRIGGER releases_no_update BEFORE UPDATE ON releases
    BEGIN SELECT RAISE(ABORT, 'releases are immutable'); END`,
  releases_no_delete: `CREATE TRIGGER releases_no_delete BEFORE DELETE ON releases
    BEGIN SELECT RAISE(ABORT, 'releases are immutable'); END`,
};

/** A guard trigger an opening found missing or altered, and put back. */
export interface RestoredGuard {
  readonly trigger: string;
  readonly found: "missing" | "altered";
}

/** SQL compared without its layout (the migrations' indentation is stored as written). */
const plain = (sql: string) => sql.replace(/\s+/g, " ").trim();

/**
 * Puts back, in one transaction, each guard trigger that is missing or whose statement differs
 * (a trigger of the same name that lets everything through). Run after the migrations.
 */
export function restoreGuards(db: Database.Database): RestoredGuard[] {
  const stored = new Map(
    (
      db.prepare("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'").all() as Array<{
        name: string;
        sql: string | null;
      }>
    ).map((row) => [row.name, row.sql ?? ""]),
  );
  const restored: RestoredGuard[] = [];
  for (const [trigger, sql] of Object.entries(GUARD_TRIGGERS)) {
    const found = stored.get(trigger);
    if (found !== undefined && plain(found) === plain(sql)) continue;
    restored.push({ trigger, found: found === undefined ? "missing" : "altered" });
  }
  if (restored.length === 0) return restored;
  db.transaction(() => {
    for (const { trigger } of restored) {
      db.exec(`DROP TRIGGER IF EXISTS ${trigger}`);
      db.exec(GUARD_TRIGGERS[trigger] ?? "");
    }
  }).immediate();
  return restored;
}
