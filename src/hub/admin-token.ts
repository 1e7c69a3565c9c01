// The admin token: created at first start in the data directory (mode 0600) and shown once,
// or given at start in HYPERTHINGS_ADMIN_TOKEN for automation.
import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const ADMIN_TOKEN_FILE = "admin-token";

export interface AdminToken {
  token: string;
  /** True when this start created it: the one time it is printed. */
  created: boolean;
  /** Where it is kept, when it came from the data directory. */
  path?: string;
}

export function loadOrCreateAdminToken(dataDir: string, given: string | undefined): AdminToken {
  if (given !== undefined) return { token: given, created: false };
  const path = join(dataDir, ADMIN_TOKEN_FILE);
  try {
    const token = readFileSync(path, "utf8").trim();
    if (token.length > 0) return { token, created: false, path };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const token = `ht_${randomBytes(32).toString("base64url")}`;
  // "wx": never overwrite a token another process created meanwhile.
  writeFileSync(path, `${token}\n`, { mode: 0o600, flag: "wx" });
  return { token, created: true, path };
}

/** A token's digest, computed once, for constant-time comparisons with `tokenMatches`. */
export function tokenDigest(token: string): Buffer {
  return createHash("sha256").update(token).digest();
}

/** Constant-time comparison of a presented token with an expected token's digest. */
export function tokenMatches(presented: string, expected: Buffer): boolean {
  return timingSafeEqual(tokenDigest(presented), expected);
}
