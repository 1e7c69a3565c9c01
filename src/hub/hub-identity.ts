// The hub's identity: a stable id created at first start in the data directory. It names the
// hub in its own TD, in log checkpoints and, later, towards peers.
import { randomUUID } from "node:crypto";
import { join } from "node:path";
import { createDataFile, readDataFile } from "./data-files.js";

export const HUB_ID_FILE = "hub-id";

/** What an HLC takes as its node id (hybrid-logical-clock.ts): printable ASCII, no spaces. */
const HUB_ID = /^[\x21-\x7e]{1,256}$/;

export function loadOrCreateHubId(dataDir: string): string {
  const path = join(dataDir, HUB_ID_FILE);
  const text = readDataFile(path) ?? createDataFile(path, `urn:uuid:${randomUUID()}\n`, 0o644);
  const id = text.trim();
  if (!HUB_ID.test(id)) {
    throw new Error(
      `${path} ${id.length === 0 ? "is empty" : "does not hold a hub id (1–256 printable characters, no spaces)"}: ` +
        "restore it from the backup of this data directory, as the Log's checkpoints name the hub by it " +
        "(on a new hub whose Log is empty, delete it and a new id is made)",
    );
  }
  return id;
}
