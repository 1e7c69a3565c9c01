// Why a file or a folder could not be read, written or made, in words a person acts on.

/**
 * Node's `ENOENT: no such file or directory, open …` repeats the path, and a bare code says
 * little: the CLI and the hub's start say what is wrong with the path they name themselves.
 */
export function fileProblem(err: unknown): string {
  switch ((err as NodeJS.ErrnoException).code) {
    case "ENOENT":
      return "no such file or folder";
    case "EACCES":
    case "EPERM":
      return "permission denied";
    case "EISDIR":
      return "it is a folder, not a file";
    case "ENOTDIR":
      return "a part of its path is not a folder";
    case "EROFS":
      return "the file system is read-only";
    case "ENOSPC":
      return "the disk is full";
    case "EEXIST":
      return "it exists already";
    default:
      return err instanceof Error ? err.message : String(err);
  }
}
