// The admin token: created at first start in the data directory (mode 0600) and shown once,
// or given at start in HYPERTHINGS_ADMIN_TOKEN for automation.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { join } from "node:path";
import { createDataFile, readDataFile } from "./data-files.js";

export const ADMIN_TOKEN_FILE = "admin-token";

export interface AdminToken {
  token: string;
  /** True when this start created it: the one time it is printed. */
  created: boolean;
  /** Where it is kept, when it came from the data directory. */
  path?: string;
}

/**
 * What is wrong with a token a person chose (HYPERTHINGS_ADMIN_TOKEN, HYPERTHINGS_READ_TOKEN, the
 * admin-token file), or undefined: a short one is guessable, and one with a space or a control
 * character can never be sent (`Authorization: Bearer <token>` takes one word).
 */
export function tokenProblem(token: string): string | undefined {
  if (token.length < 16) return "must be at least 16 characters long";
  // eslint-disable-next-line no-control-regex
  if (/[\s\u0000-\u001f\u007f]/.test(token)) return "must be one word: no spaces or control characters";
  return undefined;
}

export function loadOrCreateAdminToken(dataDir: string, given: string | undefined): AdminToken {
  if (given !== undefined) return { token: given, created: false };
  const path = join(dataDir, ADMIN_TOKEN_FILE);
  const existing = readDataFile(path);
  if (existing !== undefined) {
    const token = existing.trim();
    if (token.length === 0) {
      throw new Error(`${path} is empty: put the admin token in it, or delete it and a new one is made`);
    }
    const problem = tokenProblem(token);
    if (problem !== undefined) {
      throw new Error(
        `The admin token in ${path} ${problem}: put another in it, or delete it and a new one is made`,
      );
    }
    return { token, created: false, path };
  }
  const made = `ht_${randomBytes(32).toString("base64url")}`;
  // Never overwrite a token another process created meanwhile: take that one.
  const token = createDataFile(path, `${made}\n`, 0o600).trim();
  return { token, created: token === made, path };
}

/** A token's digest, computed once, for constant-time comparisons with `tokenMatches`. */
export function tokenDigest(token: string): Buffer {
  return createHash("sha256").update(token).digest();
}

/** Constant-time comparison of a presented token with an expected token's digest. */
export function tokenMatches(presented: string, expected: Buffer): boolean {
  return timingSafeEqual(tokenDigest(presented), expected);
}
