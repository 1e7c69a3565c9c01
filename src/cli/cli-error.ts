// A failure the CLI reports as one line, with the exit code scripts can test.
export class CliError extends Error {
  constructor(
    message: string,
    readonly exitCode = 1,
  ) {
    super(message);
    this.name = "CliError";
  }
}

/** Why a file could not be read, in words: Node's `ENOENT: no such file or directory, open …` repeats the path, and a bare code says little. */
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
    default:
      return err instanceof Error ? err.message : String(err);
  }
}
