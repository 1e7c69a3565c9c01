// The small files of a hub's data directory (hub-id, log-key.pem, admin-token): created once,
// exclusively (two hubs starting on one directory share one), and durably (a power cut right
// after first start must not leave an empty file that the Log's checkpoints then disagree with).
import {
  closeSync,
  fsyncSync,
  linkSync,
  mkdirSync,
  openSync,
  readFileSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
} from "node:fs";
import { basename, dirname, join } from "node:path";

/** The file's text, or undefined when it does not exist. */
export function readDataFile(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
}

/**
 * Creates `path` with `text`, flushed to disk with its directory entry, unless it exists: then
 * returns the text already there (another process's, created first) instead.
 */
export function createDataFile(path: string, text: string, mode: number): string {
  // Written and flushed under a name of its own, then linked into place: the link fails if the
  // file exists, and a file that exists under `path` is always whole.
  const temporary = writeTemporary(path, text, mode, "wx");
  try {
    linkSync(temporary, path);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "EEXIST") throw err;
    return readFileSync(path, "utf8");
  } finally {
    unlinkSync(temporary);
  }
  syncDirectory(dirname(path));
  return text;
}

/** `text` written and flushed to a file of its own beside `path` (its directory made if need be); its name. */
function writeTemporary(path: string, text: string, mode: number, flags: "w" | "wx"): string {
  const dir = dirname(path);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const temporary = join(dir, `.${basename(path)}.${process.pid}.${Date.now()}.tmp`);
  const fd = openSync(temporary, flags, mode);
  try {
    writeSync(fd, text);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  return temporary;
}

/** Flushes `dir`'s entries to disk: a file linked or renamed into it stays after a crash. */
function syncDirectory(dir: string): void {
  const dirFd = openSync(dir, "r");
  try {
    fsyncSync(dirFd);
  } finally {
    closeSync(dirFd);
  }
}

/**
 * The permission bits of a secret file that users other than its owner may use (group or other
 * bits set: a key restored from a backup with `cp`, or copied in by hand), or undefined when
 * it is the owner's alone or does not exist.
 */
export function exposedMode(path: string): number | undefined {
  let mode: number;
  try {
    mode = statSync(path).mode & 0o777;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  return (mode & 0o077) === 0 ? undefined : mode;
}

/**
 * Replaces `path` with `text`, whole or not at all: written and flushed under a name of its own,
 * renamed into place, and the directory flushed, so that a crash leaves the old file or the new.
 */
export function replaceDataFile(path: string, text: string, mode: number): void {
  const temporary = writeTemporary(path, text, mode, "w");
  try {
    renameSync(temporary, path);
  } catch (err) {
    unlinkSync(temporary);
    throw err;
  }
  syncDirectory(dirname(path));
}
