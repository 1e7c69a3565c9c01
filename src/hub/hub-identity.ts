// The hub's identity: a stable id created at first start in the data directory. It names the
// hub in its own TD, in log checkpoints and, later, towards peers.
import { randomUUID } from "node:crypto";
import { mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

export const HUB_ID_FILE = "hub-id";

export function loadOrCreateHubId(dataDir: string): string {
  const path = join(dataDir, HUB_ID_FILE);
  try {
    const id = readFileSync(path, "utf8").trim();
    if (id.length > 0) return id;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
  }
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const id = `urn:uuid:${randomUUID()}`;
  try {
    writeFileSync(path, `${id}\n`, { mode: 0o644, flag: "wx" });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST") return readFileSync(path, "utf8").trim();
    throw err;
  }
  return id;
}
