// `things verify|prove|export`: check a hub's Log against its signed checkpoints, prove one Change
// is in it, and export a run of it that anyone can verify offline (`things verify --file`).
import type { Command } from "commander";
import { createHash, createPrivateKey, createPublicKey, type KeyObject } from "node:crypto";
import {
  closeSync,
  existsSync,
  linkSync,
  createReadStream,
  createWriteStream,
  openSync,
  readFileSync,
  readSync,
  renameSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { once } from "node:events";
import { availableParallelism } from "node:os";
import { dirname, join, resolve as resolvePath } from "node:path";
import { createInterface } from "node:readline";
import type { Readable, Writable } from "node:stream";
import { finished, pipeline } from "node:stream/promises";
import { createGunzip, createGzip } from "node:zlib";
import {
  HubError,
  type HubClient,
  type InclusionProof,
  type InclusionProofs,
  type LogKey,
} from "../client/index.js";
import {
  LogVerifier,
  MerkleFrontier,
  ValidationError,
  parseJsonStrict,
  canonicalJson,
  changeLeafHash,
  hashFromHex,
  hashToHex,
  hashesEqual,
  inclusionProofRanges,
  verifyCheckpoint,
  verifyConsistency,
  verifyInclusion,
  type Change,
  type Checkpoint,
  type HashedEntries,
  type LeafMismatch,
  type LogFailure,
  type MerkleFrontierJson,
} from "../core/index.js";
import { clientOf, connectionHelpWith, sinceAndUntil, stillToComeNote, talking } from "./client-commands.js";
import { fileProblem } from "../hub/file-problem.js";
import { CliError } from "./cli-error.js";
import { exitOnSignal } from "./exit-on-signal.js";
import { wholeNumber } from "./whole-number.js";
import { EntryHashers } from "./log-entry-hashers.js";
import { describeChange } from "./history-commands.js";
// The names only: the hub's index would load the whole hub on every `things` command.
import { defaultDataDir } from "../hub/config.js";
import { HUB_ID_FILE } from "../hub/hub-identity.js";
import { LOG_KEY_FILE } from "../hub/notary.js";
import type { LogEntries, LogFileHead, PostgresLogReader, SqliteLogFile } from "../store/index.js";

/** `1 change`, `25 changes`: a count and its noun, as a summary line says them. */
const counted = (n: number, noun: string): string => `${n} ${noun}${n === 1 ? "" : "s"}`;

/** The exit code of a verification that ran and found the Log, a proof or an export wrong. */
export const VERIFICATION_FAILED = 3;
/** The `format` of the first line of an export. */
export const EXPORT_FORMAT = "hyperthings-log-export/1";
/** The `format` of the first line of one Thing's export (`things export --thing`). */
export const THING_EXPORT_FORMAT = "hyperthings-thing-export/1";
/** Inclusion proofs asked for in one request while exporting one Thing (the hub's MAX_PROOFS). */
const PROOFS_PER_REQUEST = 500;
/** Such requests on their way at once. */
const PROOF_REQUESTS_IN_FLIGHT = 2;

/** Entries per request of `things verify`: the hub writes the next page while this one is hashed. */
const VERIFY_PAGE_SIZE = 20_000;
/**
 * Up to this many Changes, `things verify` hashes them on its own thread unless --threads says
 * otherwise: they come in one page, so there is no next page to fetch while a thread hashes, and
 * starting the thread costs more than hashing them (bench figures in docs/cli.md).
 */
export const VERIFY_THREADLESS_CHANGES = VERIFY_PAGE_SIZE;
/**
 * Entries hashed on the main thread between two turns of the event loop, in which a signal
 * (Ctrl-C) is heard: a few milliseconds' worth, at a cost too small to measure.
 */
const ENTRIES_BETWEEN_TURNS = 1000;

/** Resolves after the event loop has gone round once: its signals and I/O handled. */
function turnOfTheLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** How many bytes of entry lines go to a hashing thread at once, and how many such runs may wait. */
const HASH_RUN_BYTES = 256 * 1024;
const HASH_RUNS_IN_FLIGHT = 4;

const EXPORT_EXIT_CODES =
  "0 written, 1 failed (the hub refused or is unreachable, the file cannot be written), " +
  "2 usage (a bad option or time, or --out names a file that exists), " +
  "3 the hub's Log does not extend a --consistent-with checkpoint (nothing is written), " +
  "130/143 stopped by SIGINT/SIGTERM (nothing is left beside the --out file either)";

const EXIT_CODES =
  "0 verified, 1 failed to run (the hub refused or is unreachable, a file is unreadable), 2 usage, " +
  "3 verification failed (an altered Change, a bad signature, a proof that does not hold), " +
  "130/143 stopped by SIGINT/SIGTERM (verify --db leaves no copy of the file behind)";

// ---------------------------------------------------------------------------------------------
// Verdicts and progress

interface Failed {
  ok: false;
  /** The first seq that cannot be vouched for, when the failure is about a Change. */
  seq?: number;
  /** When only a range is known (a signed root that does not match): its last seq. */
  through?: number;
  problem: string;
  reason: string;
}

function failed(seq: number | undefined, problem: string, reason: string, through?: number): Failed {
  return {
    ok: false,
    ...(seq !== undefined && { seq }),
    ...(seq !== undefined && through !== undefined && through > seq && { through }),
    problem,
    reason,
  };
}

/** Core's verdict on a Log, as the CLI reports it. */
function failedLog(verdict: LogFailure): Failed {
  return failed(verdict.firstBadSeq, verdict.problem, verdict.reason, verdict.lastBadSeq);
}

/** Thrown inside a verification to end it with a verdict; caught and printed by `report`. */
class VerificationFailure extends Error {
  constructor(readonly verdict: Failed) {
    super(verdict.reason);
    this.name = "VerificationFailure";
  }
}

function fail(seq: number | undefined, problem: string, reason: string, through?: number): never {
  throw new VerificationFailure(failed(seq, problem, reason, through));
}

/** Prints a verdict: its line (or JSON) on stdout, and exit code 3 when it failed. */
function report(
  verdict: Failed | { ok: true; line: string; json: Record<string, unknown> },
  json: boolean,
  what = "log verification",
): void {
  if (verdict.ok) {
    process.stdout.write(json ? `${JSON.stringify({ ok: true, ...verdict.json })}\n` : `${verdict.line}\n`);
    return;
  }
  const where =
    verdict.seq === undefined
      ? ""
      : verdict.through === undefined
        ? ` at seq ${verdict.seq}`
        : ` in seq ${verdict.seq}..${verdict.through}`;
  process.stdout.write(json ? `${JSON.stringify(verdict)}\n` : `${what} FAILED${where}: ${verdict.reason}\n`);
  process.exitCode = VERIFICATION_FAILED;
}

/**
 * `verifying [=====>     ] 45,000/100,000 changes  31,000/s` on stderr, when it is a terminal
 * (`exporting 45,000 changes  31,000/s` while the total is not known).
 */
class ProgressBar {
  private readonly enabled: boolean;
  private readonly started = Date.now();
  private shownAt = 0;
  private shown = false;

  constructor(
    private readonly label: string,
    private total: number,
    private readonly stream: NodeJS.WriteStream = process.stderr,
  ) {
    this.enabled = stream.isTTY;
  }

  setTotal(total: number): void {
    this.total = total;
  }

  update(done: number): void {
    if (!this.enabled) return;
    const now = Date.now();
    // A few redraws a second is enough; more would cost more than the work it shows.
    if (now - this.shownAt < 100 && done < this.total) return;
    this.shownAt = now;
    const width = 30;
    const fraction = this.total > 0 ? Math.min(1, done / this.total) : 0;
    const filled = Math.round(fraction * width);
    const bar = "=".repeat(Math.max(0, filled - 1)) + (filled > 0 ? ">" : "") + " ".repeat(width - filled);
    const seconds = (now - this.started) / 1000;
    const rate = seconds > 0 ? ` ${Math.round(done / seconds).toLocaleString("en")}/s` : "";
    // With no total known (one Thing's export), the count alone.
    const text =
      this.total > 0
        ? `${this.label} [${bar}] ${done.toLocaleString("en")}/${this.total.toLocaleString("en")} changes${rate}`
        : `${this.label} ${done.toLocaleString("en")} changes${rate}`;
    this.stream.write(`\r\x1b[K${text.slice(0, Math.max(10, (this.stream.columns || 80) - 1))}`);
    this.shown = true;
  }

  clear(): void {
    if (!this.shown) return;
    this.stream.write("\r\x1b[K");
    this.shown = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Keys

function publicKeyOf(pem: string, source: string): KeyObject {
  try {
    const key = createPublicKey(pem);
    if (key.asymmetricKeyType !== "ed25519") throw new Error(`it is a ${key.asymmetricKeyType ?? "?"} key`);
    return key;
  } catch (err) {
    return fail(undefined, "bad-key", `${source} is not an Ed25519 public key: ${(err as Error).message}`);
  }
}

/** `SHA256:…`: the SHA-256 of the key's SPKI DER in base64, as ssh shows key fingerprints. */
function fingerprintOf(key: KeyObject): string {
  const der = key.export({ type: "spki", format: "der" });
  return `SHA256:${createHash("sha256").update(der).digest("base64").replace(/=+$/, "")}`;
}

/** With `--key FILE`, the key the Log must be signed with; the hub's (or the export's) key must be it. */
function checkPinnedKey(key: KeyObject, file: string | undefined, whose: string): void {
  if (file === undefined) return;
  let pem: string;
  try {
    pem = readFileSync(file, "utf8");
  } catch (err) {
    // An unreadable file failed to run (EXIT_CODES), as for --file.
    throw new CliError(`cannot read --key ${file}: ${fileProblem(err)}`, 1);
  }
  let pinned: KeyObject;
  try {
    pinned = createPublicKey(pem);
  } catch {
    // OpenSSL's words (error:1E08010C:DECODER routines::unsupported) say nothing to the user.
    throw new CliError(
      `--key ${file} is not a public key in PEM (-----BEGIN PUBLIC KEY-----, as GET /log/key gives it)`,
      2,
    );
  }
  if (pinned.asymmetricKeyType !== "ed25519") {
    throw new CliError(
      `--key ${file} is not an Ed25519 public key: it is a ${pinned.asymmetricKeyType ?? "?"} key`,
      2,
    );
  }
  const same = pinned
    .export({ type: "spki", format: "der" })
    .equals(key.export({ type: "spki", format: "der" }));
  if (!same) {
    fail(
      undefined,
      "untrusted-key",
      `${whose} key ${fingerprintOf(key)} is not the key in ${file} (${fingerprintOf(pinned)})`,
    );
  }
}

function leafHex(change: Change): string | undefined {
  try {
    return hashToHex(changeLeafHash(change));
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------
// verify: the whole Log of a hub

interface VerifyOptions {
  file?: string;
  /** A hub's database file (or a copy), or its PostgreSQL URL, verified without a hub. */
  db?: string;
  /** With a PostgreSQL --db: the hub's data directory (its log-key.pem and hub-id). */
  data?: string;
  key?: string;
  json?: boolean;
  threads?: number;
  /** Checkpoints saved earlier (`things checkpoint --out`), that the Log must still hold. */
  checkpoint?: string[];
}

/**
 * Checkpoints kept apart from the hub: a `things checkpoint --out FILE` (one JSON object), or an
 * export (either format, plain or gzip), whose signed checkpoint it carries: after a restore from
 * a backup the hub signs other Changes under the same seqs and key, and an export taken before is
 * what shows it. Whether they are well-formed and signed is the verifier's to say (bad-checkpoint).
 */
async function savedCheckpoints(files: readonly string[]): Promise<SavedCheckpoint[]> {
  const saved: SavedCheckpoint[] = [];
  for (const file of files) {
    const fromExport = await exportCheckpoint(file);
    if (fromExport !== undefined) {
      saved.push({ file, checkpoint: fromExport });
      continue;
    }
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      throw new CliError(`cannot read ${file}: ${fileProblem(err)}`);
    }
    let value: unknown;
    try {
      value = parseJsonStrict(text.replace(/^\uFEFF/, ""));
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      throw new CliError(`${file} is not a checkpoint: ${err.message}`);
    }
    if (!isObject(value)) throw new CliError(`${file} is not a checkpoint: a JSON object is expected`);
    saved.push({ file, checkpoint: value as unknown as Checkpoint });
  }
  return saved;
}

interface SavedCheckpoint {
  file: string;
  checkpoint: Checkpoint;
}

/**
 * The signed checkpoint an export ends at (a run's last line, a Thing's header), read as the
 * export is streamed; undefined when the file does not start with an export's header line.
 */
async function exportCheckpoint(file: string): Promise<Checkpoint | undefined> {
  const { lines, close } = await exportLines(file);
  try {
    let header: Record<string, unknown> | undefined;
    let last: string | undefined;
    for await (const line of lines) {
      if (header === undefined) {
        let value: unknown;
        try {
          value = JSON.parse(line);
        } catch {
          return undefined;
        }
        if (!isObject(value) || value.type !== "header") return undefined;
        header = value;
        if (header.format === THING_EXPORT_FORMAT) {
          if (!isObject(header.checkpoint)) break;
          return header.checkpoint as unknown as Checkpoint;
        }
        if (header.format !== EXPORT_FORMAT) break;
      }
      last = line;
    }
    if (header === undefined) return undefined;
    let trailer: unknown;
    try {
      trailer = JSON.parse(last ?? "");
    } catch {
      trailer = undefined;
    }
    if (header.format !== EXPORT_FORMAT && header.format !== THING_EXPORT_FORMAT) {
      throw new CliError(
        `${file} is an export of a format this CLI does not read (${String(header.format)})`,
      );
    }
    if (!isObject(trailer) || trailer.type !== "checkpoint" || !isObject(trailer.checkpoint)) {
      throw new CliError(`${file} is an export without its checkpoint at the end: it is incomplete`);
    }
    return trailer.checkpoint as unknown as Checkpoint;
  } finally {
    close();
  }
}

function leafMismatchReason(m: LeafMismatch): string {
  return (
    `the Change no longer matches the leaf hash recorded when it was logged ` +
    `(it hashes to ${m.actual}, the log recorded ${m.recorded}): it was altered`
  );
}

/**
 * Streams every entry of the hub's Log through core's LogVerifier (each Change's leaf hash and the
 * Merkle root at every signed checkpoint, signatures checked with the hub's key), a page at a time.
 * Each Change is also compared with the leaf hash the hub recorded for it, which names an altered
 * Change exactly where a checkpoint's root only says that something in its range differs.
 */
async function verifyHub(client: LogReader, options: VerifyOptions, file?: LogFileReader): Promise<void> {
  const kept = await savedCheckpoints(options.checkpoint ?? []);
  const saved = kept.map((k) => k.checkpoint);
  const logKey: LogKey = await client.logKey();
  const key = publicKeyOf(logKey.publicKey, file?.keyName ?? "the hub's /log/key");
  checkPinnedKey(key, options.key, file === undefined ? "the hub's" : "the database's");
  // A saved checkpoint that does not verify says nothing about the Log yet: about the file, or
  // the hub's key or id since. Said of the file, not of the seq it covers.
  saved.forEach((checkpoint, i) => {
    try {
      verifyCheckpoint(checkpoint, key, { origin: logKey.origin });
    } catch (err) {
      if (!(err instanceof ValidationError)) throw err;
      fail(
        undefined,
        "bad-checkpoint",
        `the checkpoint saved in ${kept[i]?.file ?? "?"} does not verify with the hub's key ` +
          `${fingerprintOf(key)} and id ${logKey.origin}: ${err.message} (the file was altered, or the hub's key or id changed since)`,
      );
    }
  });
  // Asking for the latest checkpoint has the hub sign one covering every Change committed so far.
  const latest = await client.checkpoint();
  if (latest === undefined && saved.length > 0) {
    // An empty Log that once signed a checkpoint lost every Change: the verifier says which.
    const verdict = new LogVerifier(saved, key, { origin: logKey.origin }).end();
    if (!verdict.ok) return report(failedLog(verdict), options.json === true);
  }
  if (latest === undefined && (file?.lastSeq ?? 0) === 0) {
    const damage = file?.damage();
    if (damage !== undefined) return report(damage, options.json === true);
    report(
      {
        ok: true,
        line: "the log is empty: nothing to verify",
        json: { size: 0, checkpoints: 0, origin: logKey.origin },
      },
      options.json === true,
    );
    return;
  }
  // Checkpoints signed after `latest` cover Changes this run will not read.
  const checkpoints: Checkpoint[] = [];
  for await (const checkpoint of client.checkpointsAll()) {
    if (latest === undefined || checkpoint.size <= latest.size) checkpoints.push(checkpoint);
  }
  if (latest !== undefined && !checkpoints.some((c) => c.size === latest.size)) checkpoints.push(latest);
  // A hub signs a checkpoint covering its whole Log when asked; a file is read to its last row,
  // past its last checkpoint (each of those Changes is still checked against its recorded leaf).
  const size = file?.lastSeq ?? latest?.size ?? 0;
  // The saved ones too, whatever their size: one beyond the Log's end says it was cut short, and
  // one whose root the Log no longer has says it was rewritten (and re-signed) since.
  const verifier = new LogVerifier([...checkpoints, ...saved], key, { origin: logKey.origin });
  const progress = new ProgressBar("verifying", size);
  let failure: LogFailure | undefined;
  let done = 0;
  const threads = options.threads ?? defaultHashingThreads(size);
  const hashers = threads > 0 && EntryHashers.available() ? new EntryHashers(threads) : undefined;
  try {
    // The entries' bytes go to the verifier unparsed: a line that is its Change's canonical JSON
    // is hashed as it came, and the verifier also compares each Change with the leaf hash the hub
    // recorded for it (firstLeafMismatch). With hashing threads, runs of lines are hashed there
    // (hashEntries) while this thread fetches the next ones, and their hashes are given to the
    // verifier here, in order (pushHashed): the Merkle tree and the signatures stay on this thread.
    const chunks = client.logEntryChunks({ upTo: size, pageSize: VERIFY_PAGE_SIZE });
    if (hashers === undefined) {
      lines: for await (const chunk of chunks) {
        for (let start = 0; start < chunk.length && done < size;) {
          let end = chunk.indexOf(0x0a, start);
          if (end < 0) end = chunk.length;
          if (end > start) {
            failure = verifier.pushEntry(chunk, start, end);
            if (failure !== undefined) break lines;
            done++;
            // A database file's page comes at once, with no I/O to wait for: without a turn of
            // the event loop now and then, Ctrl-C would be heard only after the verdict.
            if (done % ENTRIES_BETWEEN_TURNS === 0) {
              progress.update(done);
              await turnOfTheLoop();
            }
          }
          start = end + 1;
        }
        progress.update(done);
        if (done >= size) break;
      }
    } else {
      const inFlight: Array<Promise<HashedEntries>> = [];
      const settle = async (): Promise<boolean> => {
        const hashed = await (inFlight.shift() as Promise<HashedEntries>);
        failure = verifier.pushHashed(hashed, size - done);
        done += Math.min(hashed.count, size - done);
        progress.update(done);
        return failure === undefined && done < size;
      };
      let run: Uint8Array[] = [];
      let runBytes = 0;
      const send = (): void => {
        inFlight.push(hashers.hash(run.length === 1 ? (run[0] as Uint8Array) : Buffer.concat(run, runBytes)));
        run = [];
        runBytes = 0;
      };
      let going = true;
      for await (const chunk of chunks) {
        // Runs of ~256 KiB: one message each way per ~1,000 lines.
        run.push(chunk);
        runBytes += chunk.length;
        if (runBytes >= HASH_RUN_BYTES) send();
        if (inFlight.length >= HASH_RUNS_IN_FLIGHT && !(going = await settle())) break;
      }
      if (going && runBytes > 0) send();
      while (going && inFlight.length > 0) going = await settle();
      // Runs asked for beyond a failure are not waited for.
      for (const pending of inFlight) pending.catch(() => undefined);
    }
  } finally {
    progress.clear();
    await hashers?.close();
  }
  const mismatch = verifier.firstLeafMismatch;
  const result = failure ?? verifier.end();
  if (!result.ok) {
    // A root mismatch spans a checkpoint's range; the altered Change inside it is named exactly.
    if (mismatch !== undefined && result.problem === "root-mismatch" && mismatch.seq >= result.firstBadSeq) {
      return report(
        failed(mismatch.seq, "altered-change", leafMismatchReason(mismatch)),
        options.json === true,
      );
    }
    return report(failedLog(result), options.json === true);
  }
  if (mismatch !== undefined && mismatch.seq > result.provenSize) {
    // No signature covers it: the Change, or its recorded leaf hash, was altered.
    return report(
      failed(mismatch.seq, "altered-change", leafMismatchReason(mismatch)),
      options.json === true,
    );
  }
  if (mismatch !== undefined) {
    // The Changes match the signed roots, so it is the hub's record of a leaf hash that is wrong.
    return report(
      failed(
        mismatch.seq,
        "leaf-record",
        `the hub's recorded leaf hash ${mismatch.recorded} is not the Change's (${mismatch.actual}), ` +
          `though the Change matches the signed checkpoints: the hub's leaf index is damaged`,
      ),
      options.json === true,
    );
  }
  const damage = file?.damage();
  if (damage !== undefined) return report(damage, options.json === true);
  const root = checkpoints.find((c) => c.size === result.provenSize) ?? latest;
  const unsigned =
    result.size > result.provenSize
      ? `; seq ${result.provenSize + 1}..${result.size} come after the last checkpoint: each matches the leaf hash recorded for it, but no signature covers them`
      : "";
  report(
    {
      ok: true,
      line:
        `verified ${counted(result.size, "change")}, ${counted(checkpoints.length, "checkpoint")}` +
        (saved.length > 0
          ? ` and ${saved.length} saved (${saved.length === 1 ? "size" : "sizes"} ${saved.map((c) => c.size).join(", ")})`
          : "") +
        (root === undefined
          ? ", no signed checkpoint"
          : `, log root ${root.root} signed at ${root.time} by ${root.origin}`) +
        ` (key ${fingerprintOf(key)})${unsigned}`,
      json: {
        size: result.size,
        ...(result.size > result.provenSize && { signedSize: result.provenSize }),
        checkpoints: checkpoints.length,
        saved: saved.length,
        ...(root !== undefined && { root: root.root, signedAt: root.time, origin: root.origin }),
        key: fingerprintOf(key),
      },
    },
    options.json === true,
  );
}

/**
 * Hashing threads when --threads is not given: one when there are 2 cores or more and the Log is
 * longer than VERIFY_THREADLESS_CHANGES, else none (the verdict is the same either way).
 */
function defaultHashingThreads(size: number): number {
  return size > VERIFY_THREADLESS_CHANGES && availableParallelism() > 1 ? 1 : 0;
}

/** What `things verify` reads a Log through: the hub's client, or a database file (`--db`). */
type LogReader = Pick<HubClient, "logKey" | "checkpoint" | "checkpointsAll" | "logEntryChunks">;

/** A database file read by `things verify --db`, beside the LogReader over it. */
interface LogFileReader {
  /** What the key was read from, for messages. */
  keyName: string;
  /** The last seq in its `changes` table: read to it, past the last checkpoint. */
  lastSeq: number;
  /** What is wrong with the file though its Changes verify: a head row that disagrees with them. */
  damage(): Failed | undefined;
}

/**
 * `things verify --db FILE`, closing the file whatever happens: Ctrl-C, or a service manager's
 * SIGTERM, mid-verification would otherwise leave the copy of a file it could not read in place
 * (a whole database, and its -wal) in the temporary directory, as export would leave its part.
 */
async function verifyDbFile(path: string, options: VerifyOptions): Promise<void> {
  if (options.data !== undefined)
    throw new CliError("--data goes with a PostgreSQL --db: a database file's keys are beside it", 2);
  // Before its key is looked for beside it: a missing key beside a missing file says the wrong thing.
  if (!existsSync(path)) throw new CliError(`cannot read --db ${path}: no such file`);
  // A hub's data directory given for its database: not "no log-key.pem beside" it.
  if (statSync(path).isDirectory()) {
    const inside = join(path, "hyperthings.db");
    throw new CliError(
      `--db ${path} is a folder: give the database file${existsSync(inside) ? ` in it, ${inside}` : " (a hub's hyperthings.db)"}`,
      2,
    );
  }
  // The store (SQLite's driver) is loaded only when a file is verified, not by every command.
  const { SqliteLogFile: LogFile } = await import("../store/index.js");
  let source: ReturnType<typeof logFileSource> | undefined;
  // Listening before the copy is made: a signal during it (a synchronous copy) is handled once
  // the copy returns, and then removes it; without a listener it would end the process at once.
  const release = exitOnSignal("verify", () => {
    const copy = source?.copiedTo;
    source?.close();
    return copy === undefined ? "" : `; its copy in ${copy} was removed`;
  });
  try {
    source = logFileSource(LogFile, path, options.key);
    return await verifyHub(source.reader, options, source.reader);
  } finally {
    source?.close();
    release();
  }
}

const POSTGRES_URL = /^postgres(ql)?:\/\//;

/**
 * `things verify --db postgres://…[?schema=…]`: a hub's Log in PostgreSQL, read in one read-only
 * snapshot without a hub, however damaged. Its key is the public half of the `log-key.pem` in the
 * hub's data directory (--data, HYPERTHINGS_DATA, or the default one), or --key's; its origin the
 * `hub-id` there, or its checkpoints'.
 */
async function verifyPostgres(url: string, options: VerifyOptions): Promise<void> {
  const dir = resolvePath(options.data ?? (process.env.HYPERTHINGS_DATA || defaultDataDir()));
  const keyPath = join(dir, LOG_KEY_FILE);
  let publicKey: string;
  let keyName: string;
  if (options.key !== undefined) ({ publicKey, keyName } = givenKey(options.key));
  else if (existsSync(keyPath)) ({ publicKey, keyName } = hubKey(keyPath));
  else {
    throw new CliError(
      `there is no ${LOG_KEY_FILE} in ${dir}: give the hub's data directory with --data, or its public key with --key (the PEM of GET /log/key)`,
      2,
    );
  }
  // The store (pg) is loaded only when a database is verified, not by every command.
  const { PostgresLogReader } = await import("../store/index.js");
  let log: PostgresLogReader;
  try {
    log = await PostgresLogReader.open({ url });
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  try {
    let checkpoints: Checkpoint[];
    let head: { headSize: number | undefined; lastSeq: number };
    try {
      checkpoints = await log.checkpoints();
      head = await log.head();
    } catch (err) {
      throw new CliError(`cannot read the Log in ${log.where}: ${(err as Error).message}`);
    }
    let origin: string | undefined;
    if (options.key === undefined) {
      try {
        origin = readFileSync(join(dir, HUB_ID_FILE), "utf8").trim() || undefined;
      } catch {
        // Without hub-id, the checkpoints name the hub; the verifier checks they all agree.
      }
    }
    origin ??= checkpoints[0]?.origin ?? "";
    const reader = storeLogReader({
      keyName,
      publicKey,
      origin,
      checkpoints,
      head,
      where: log.where,
      entries: (after, count) => log.entries(after, count),
    });
    return await verifyHub(reader, options, reader);
  } finally {
    await log.close().catch(() => {});
  }
}

/** The public half of a hub's `log-key.pem`, and how verify names it. */
function hubKey(keyPath: string): { publicKey: string; keyName: string } {
  try {
    const publicKey = createPublicKey(createPrivateKey(readFileSync(keyPath, "utf8")))
      .export({ type: "spki", format: "pem" })
      .toString();
    return { publicKey, keyName: `the key in ${keyPath}` };
  } catch (err) {
    throw new CliError(`cannot read the key ${keyPath}: ${fileProblem(err)}`);
  }
}

/** A public key given with --key (the PEM of GET /log/key). */
function givenKey(keyFile: string): { publicKey: string; keyName: string } {
  try {
    return { publicKey: readFileSync(keyFile, "utf8"), keyName: keyFile };
  } catch (err) {
    throw new CliError(`cannot read --key ${keyFile}: ${fileProblem(err)}`, 2);
  }
}

/**
 * A Log read straight from a store (an SQLite file, a PostgreSQL schema) for `things verify --db`:
 * its Changes a page at a time, its checkpoints, its head checked against them, and the key given.
 */
function storeLogReader(source: {
  keyName: string;
  publicKey: string;
  origin: string;
  checkpoints: Checkpoint[];
  head: { headSize: number | undefined; lastSeq: number };
  where: string;
  /** Up to `count` Changes after seq `after`, as one NDJSON body. */
  entries(after: number, count: number): LogEntries | Promise<LogEntries>;
}): LogReader & LogFileReader {
  const { keyName, publicKey, origin, checkpoints, head, where } = source;
  return {
    keyName,
    lastSeq: head.lastSeq,
    logKey: async (): Promise<LogKey> => ({ origin, algorithm: "Ed25519", publicKey }),
    checkpoint: async (): Promise<Checkpoint | undefined> => checkpoints.at(-1),
    async *checkpointsAll(): AsyncGenerator<Checkpoint, void, undefined> {
      yield* checkpoints;
    },
    async *logEntryChunks(options: { after?: number; upTo?: number; pageSize?: number } = {}) {
      const upTo = options.upTo ?? head.lastSeq;
      const limit = options.pageSize ?? VERIFY_PAGE_SIZE;
      for (let after = options.after ?? 0; after < upTo;) {
        const page = await source.entries(after, Math.min(limit, upTo - after));
        if (page.count === 0) return;
        yield page.body;
        after = page.last;
      }
    },
    damage: (): Failed | undefined => headDamage(head, where),
  };
}

/** A head row that disagrees with the Changes there are: what is wrong though they verify. */
function headDamage(
  head: { headSize: number | undefined; lastSeq: number },
  where: string,
): Failed | undefined {
  const { headSize, lastSeq } = head;
  if (headSize === undefined)
    return failed(undefined, "damaged-head", `${where} has no log_head row: its Log's head was deleted`);
  if (headSize > lastSeq) {
    return failed(
      lastSeq + 1,
      "missing-changes",
      `the Log's head in ${where} says ${headSize} changes, but its changes table ends at seq ${lastSeq}: ` +
        `seq ${lastSeq + 1}${headSize > lastSeq + 1 ? `..${headSize}` : ""} ${headSize > lastSeq + 1 ? "are" : "is"} missing (deleted, or the head raised)`,
      headSize,
    );
  }
  if (headSize < lastSeq) {
    return failed(
      headSize + 1,
      "damaged-head",
      `the Log's head in ${where} says ${headSize} changes, but its changes table goes on to seq ${lastSeq}: ` +
        `the head was lowered, or rows were inserted behind the hub's back`,
      lastSeq,
    );
  }
  return undefined;
}

/**
 * `things verify --db FILE`: a hub's database file (or a copy), read-only and without a hub — the
 * way to see what was altered in a file a hub refuses to open. The key is the public half of the
 * `log-key.pem` beside it (or --key's), and its origin the `hub-id` beside it.
 */
function logFileSource(
  LogFile: typeof SqliteLogFile,
  path: string,
  keyFile: string | undefined,
): {
  reader: LogReader & LogFileReader;
  /** The temporary copy read instead of the file, if it could not be read in place. */
  copiedTo: string | undefined;
  /** Closes the file, and removes its copy; once. */
  close: () => void;
} {
  const dir = dirname(path);
  let publicKey: string;
  let keyName: string;
  const keyPath = join(dir, LOG_KEY_FILE);
  if (existsSync(keyPath)) ({ publicKey, keyName } = hubKey(keyPath));
  else if (keyFile !== undefined) ({ publicKey, keyName } = givenKey(keyFile));
  else {
    throw new CliError(
      `there is no ${LOG_KEY_FILE} beside ${path}: give the hub's public key with --key (the PEM of GET /log/key)`,
      2,
    );
  }
  let log: SqliteLogFile;
  try {
    log = new LogFile(path);
  } catch (err) {
    throw new CliError((err as Error).message);
  }
  if (log.copiedTo !== undefined) {
    process.stderr.write(
      `things: ${path} cannot be read in place (SQLite writes beside a database in WAL mode, and ${dirname(path)} or its -wal/-shm is not writable here): verifying a copy made in ${log.copiedTo}, removed after\n`,
    );
  }
  let checkpoints: Checkpoint[];
  let head: LogFileHead;
  try {
    checkpoints = log.checkpoints();
    head = log.head();
  } catch (err) {
    log.close();
    throw new CliError(`cannot read ${path} as a hub's database: ${(err as Error).message}`);
  }
  let origin: string | undefined;
  try {
    origin = readFileSync(join(dir, HUB_ID_FILE), "utf8").trim() || undefined;
  } catch {
    // Without hub-id beside it, the checkpoints name the hub; the verifier checks they all agree.
  }
  origin ??= checkpoints[0]?.origin ?? "";
  const reader = storeLogReader({
    keyName,
    publicKey,
    origin,
    checkpoints,
    head,
    where: path,
    entries: (after, count) => log.entries(after, count),
  });
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    log.close();
  };
  return { reader, copiedTo: log.copiedTo, close };
}

// ---------------------------------------------------------------------------------------------
// checkpoint: one signed checkpoint, to keep apart from the hub

interface CheckpointOptions {
  out?: string;
  key?: string;
}

/**
 * The hub's latest signed checkpoint (it signs one covering every Change so far), checked with its
 * key: an auditor keeps it, and `things verify --checkpoint FILE` later proves that the Log still
 * holds exactly what it signed — not cut short, not rewritten and signed again.
 */
async function saveCheckpoint(client: HubClient, options: CheckpointOptions): Promise<void> {
  if (options.out !== undefined && options.out !== STDOUT) checkNotFolder(options.out, "checkpoint.json");
  const logKey: LogKey = await client.logKey();
  const key = publicKeyOf(logKey.publicKey, "the hub's /log/key");
  checkPinnedKey(key, options.key, "the hub's");
  const checkpoint = await client.checkpoint();
  if (checkpoint === undefined) throw new CliError("the log is empty: there is no checkpoint to keep yet");
  try {
    verifyCheckpoint(checkpoint, key, { origin: logKey.origin });
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    return fail(undefined, "bad-checkpoint", `the hub's latest checkpoint: ${err.message}`);
  }
  const text = `${JSON.stringify(checkpoint)}\n`;
  if (options.out === undefined || options.out === STDOUT) {
    process.stdout.write(text);
    return;
  }
  try {
    writeFileSync(options.out, text, { flag: "wx" });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "EEXIST")
      throw new CliError(`${options.out} exists: name a new file (a kept checkpoint is never replaced)`, 2);
    throw new CliError(`cannot write --out ${options.out}: ${fileProblem(err)}`);
  }
  process.stdout.write(
    `saved the checkpoint of size ${checkpoint.size} (root ${checkpoint.root}) signed at ${checkpoint.time} ` +
      `by ${checkpoint.origin} (key ${fingerprintOf(key)}) to ${options.out}; ` +
      `later: things verify --checkpoint ${options.out}\n`,
  );
}

// ---------------------------------------------------------------------------------------------
// prove: one Change

interface ProveOptions {
  size?: number;
  key?: string;
  json?: boolean;
}

async function prove(seq: number, options: ProveOptions, client: HubClient): Promise<void> {
  const logKey = await client.logKey();
  const key = publicKeyOf(logKey.publicKey, "the hub's /log/key");
  checkPinnedKey(key, options.key, "the hub's");
  let proof: InclusionProof;
  try {
    proof = await client.inclusionProof(seq, options.size);
  } catch (err) {
    // The hub's Log is damaged where the proof reads (a row deleted outside it): a failed proof,
    // said in the hub's words, not a request that went wrong.
    if (err instanceof HubError && err.type === "urn:hyperthings:problem:log-damaged") {
      return fail(seq, "damaged-log", err.message);
    }
    throw err;
  }
  const checkpoint = proof.checkpoint;
  if (checkpoint === undefined || checkpoint.size !== proof.size) {
    throw new CliError(
      `no checkpoint was signed at size ${proof.size}; give the size of a signed checkpoint with --size, or leave it out to use the latest`,
    );
  }
  let root: Uint8Array;
  try {
    root = verifyCheckpoint(checkpoint, key, { origin: logKey.origin }).root;
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    return fail(seq, "bad-checkpoint", `the checkpoint of size ${checkpoint.size}: ${err.message}`);
  }
  const change = await client.change(seq);
  if (change.seq !== seq) fail(seq, "wrong-change", `the hub answered with change ${String(change.seq)}`);
  const actual = leafHex(change);
  if (actual === undefined) return fail(seq, "unhashable-change", "the Change cannot be hashed");
  let path: Uint8Array[];
  try {
    path = proof.proof.map((h, i) => hashFromHex(h, `/proof/${i}`));
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    return fail(seq, "bad-proof", `the inclusion proof is malformed: ${err.message}`);
  }
  const leaf = hashFromHex(actual);
  if (!verifyInclusion(leaf, seq - 1, checkpoint.size, path, root)) {
    const recordedHolds =
      /^[0-9a-f]{64}$/.test(proof.leaf) &&
      verifyInclusion(hashFromHex(proof.leaf), seq - 1, checkpoint.size, path, root);
    fail(
      seq,
      recordedHolds ? "altered-change" : "bad-proof",
      recordedHolds
        ? `the Change as the hub serves it hashes to ${actual}, but the signed log holds ${proof.leaf} at that position: it was altered after it was logged`
        : `the inclusion proof does not lead from the Change's leaf hash ${actual} to the root ${checkpoint.root} signed at ${checkpoint.time}`,
    );
  }
  const fingerprint = fingerprintOf(key);
  if (options.json) {
    process.stdout.write(
      `${JSON.stringify({ ok: true, seq, leaf: actual, size: checkpoint.size, root: checkpoint.root, signedAt: checkpoint.time, origin: checkpoint.origin, key: fingerprint, proof: proof.proof.length, change })}\n`,
    );
    return;
  }
  process.stdout.write(
    [
      `proved: change ${seq} is in the log of ${checkpoint.size} changes that ${checkpoint.origin} signed at ${checkpoint.time}`,
      `  change  ${describeChange(change)}`,
      `  leaf    ${actual}  (recomputed here from the Change)`,
      `  root    ${checkpoint.root}  (Ed25519 signature verified with key ${fingerprint})`,
      `  proof   ${proof.proof.length} hash${proof.proof.length === 1 ? "" : "es"}  (RFC 9162 inclusion proof verified)`,
    ].join("\n") + "\n",
  );
}

// ---------------------------------------------------------------------------------------------
// export, and verify --file
//
// An export is NDJSON, one object per line:
//
//   {"type":"header","format":"hyperthings-log-export/1","origin":…,"publicKey":<SPKI PEM>,
//    "exportedAt":…,"from":F,"to":N,"prefix":{"size":F-1,"hashes":[…]}}
//   {"type":"change","change":{…the Change of seq F, with its recorded "leaf"…}}
//   … one line per Change, seq F to N in order …
//   {"type":"checkpoint","checkpoint":{origin,size:N,root,time,signature},
//    "proofs":{"inclusion":[{"seq":F,"proof":[…]},{"seq":N,"proof":[…]}],
//              "consistency":{"checkpoint":{…size P < F…},"proof":[…]}}}   (consistency only if P exists)
//   (with `--consistent-with KEPT…`, also "consistentWith":[{"checkpoint":{…kept…},"proof":[…]}] in
//    "proofs": RFC 9162 consistency proofs from checkpoints kept apart, for `verify --checkpoint`)
//
// N is the size of the hub's latest signed checkpoint (signed on request), so the run ends where
// the signed tree ends. `prefix` is the RFC 9162 compact range of the Changes before F: the roots
// of the perfect subtrees covering seq 1..F-1, largest first (one per set bit of F-1; empty when
// F = 1). They are the left siblings on the path of the inclusion proof of Change F, which the
// export takes them from and carries too.
//
// `things verify --file` reads it once, in constant memory, with no hub, and checks:
//  1. the checkpoint's Ed25519 signature, with the export's key (or the one given by --key, which
//     the export's key must be: otherwise the key proves only that the file is self-consistent),
//     and that it is of the export's origin and covers exactly seq 1..N;
//  2. each Change, recomputed with changeLeafHash, against the leaf hash recorded with it — a
//     Change edited alone is named by its seq — and that the seqs run F..N without gap;
//  3. that `prefix` followed by those leaf hashes has the Merkle root the checkpoint signs. This
//     proves, up to SHA-256 collisions, that the exported Changes are exactly, unaltered and in
//     order, leaves F..N of the signed tree; when F = 1 the whole tree is recomputed from the
//     Changes. A Change edited together with its recorded leaf is caught here, though only as
//     "one of seq F..N";
//  4. the inclusion proofs of Changes F and N against the signed root (standard RFC 9162 §2.1.3.2
//     artifacts for other tools; implied by 3);
//  5. with a consistency proof: the earlier checkpoint's signature, and RFC 9162 §2.1.4.2 that its
//     tree of P Changes is a prefix of the tree of N — so an export that ended at P (a previous
//     export) and this one describe one append-only Log.
// It does not prove anything about the content of Changes 1..F-1 (only their hashes are in the
// export), nor that the hub has not signed a different tree of the same size elsewhere (compare
// the root with one seen by others for that), nor what happened after N.

/** The members every export's header line starts with. */
interface ExportHeaderCommon {
  type: "header";
  origin: string;
  publicKey: string;
  exportedAt: string;
}

interface ExportHeader extends ExportHeaderCommon {
  format: string;
  from: number;
  to: number;
  prefix: MerkleFrontierJson;
}

interface ExportTrailer {
  type: "checkpoint";
  checkpoint: Checkpoint;
  proofs: {
    inclusion: Array<{ seq: number; proof: string[] }>;
    consistency?: { checkpoint: Checkpoint; proof: string[] };
    /** From each checkpoint given with `--consistent-with`, to the export's. */
    consistentWith?: KeptConsistency[];
  };
}

/**
 * An RFC 9162 consistency proof from a checkpoint kept apart from the hub (`things export
 * --consistent-with FILE`) to the export's: what lets `things verify --file X --checkpoint FILE`
 * prove, offline, that the tree the export shows extends the one the auditor kept.
 */
interface KeptConsistency {
  checkpoint: Checkpoint;
  proof: string[];
}

/** The compact range left of leaf `index`: its left siblings in an inclusion proof, largest first. */
function prefixOf(index: number, size: number, proof: readonly string[]): MerkleFrontierJson {
  const ranges = inclusionProofRanges(index, size);
  if (ranges.length !== proof.length) {
    throw new CliError(
      `the hub's inclusion proof of change ${index + 1} has ${proof.length} hashes, not ${ranges.length}`,
    );
  }
  const left = ranges
    .map(([start, end], i) => ({ start, end, hash: proof[i] ?? "" }))
    .filter((node) => node.end <= index)
    .sort((a, b) => a.start - b.start);
  return { size: index, hashes: left.map((node) => node.hash) };
}

/** Writes lines to a file, waiting when the disk is slower than the hub. */
class LineWriter {
  private readonly stream: Writable;
  /** Settles once every line is in the file (through gzip, if so). */
  private readonly done: Promise<void>;
  private failure: Error | undefined;
  private toStdout = false;

  /** `gzip`: the lines are compressed on their way to the file; `-` is standard output. */
  constructor(path: string, gzip: boolean) {
    if (path === STDOUT) {
      // Standard output is not ours to end: done once what was written has been handed on.
      this.stream = process.stdout;
      this.done = Promise.resolve();
      this.toStdout = true;
      process.stdout.once("error", (err: Error) => (this.failure ??= err));
      return;
    }
    // The owner's alone, whatever the umask: an export holds every value of the Changes it covers,
    // which the hub may serve only to token holders (--auth read); chmod it to share it.
    const file = createWriteStream(path, { flags: "w", mode: 0o600 });
    if (gzip) {
      const zip = createGzip();
      this.stream = zip;
      this.done = pipeline(zip, file);
    } else {
      this.stream = file;
      this.done = finished(file);
    }
    this.done.catch((err: Error) => (this.failure ??= err));
  }

  async write(value: unknown): Promise<void> {
    if (this.failure) throw this.failure;
    // `once` rejects if the stream fails while we wait.
    if (!this.stream.write(`${JSON.stringify(value)}\n`)) await once(this.stream, "drain");
  }

  async close(): Promise<void> {
    if (this.toStdout) {
      await new Promise<void>((resolve) => this.stream.write("", () => resolve()));
    } else {
      this.stream.end();
      await this.done;
    }
    if (this.failure) throw this.failure;
  }

  destroy(): void {
    if (!this.toStdout) this.stream.destroy();
  }
}

/**
 * Writes an export with `write`: beside the target, renamed at the end, so that a failed export
 * leaves no partial file.
 */
async function writeExport(
  { out, force }: ExportTarget,
  progress: ProgressBar,
  write: (writer: LineWriter) => Promise<void>,
): Promise<void> {
  if (out === STDOUT) {
    // A pipe has no file to move into place: the lines go out as they are made.
    const writer = new LineWriter(STDOUT, false);
    try {
      await write(writer);
      await writer.close();
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== undefined) {
        throw new CliError(`cannot write to standard output: ${(err as Error).message}`);
      }
      throw err;
    } finally {
      progress.clear();
    }
    return;
  }
  const partial = `${out}.partial-${process.pid}`;
  // A name ending in .gz asks for gzip: proofs repeat their upper hashes from line to line, and
  // a Thing's export of 100,001 Changes went from 148 MB to 10.6 MB.
  const writer = new LineWriter(partial, out.endsWith(".gz"));
  // Ctrl-C, or a service manager's SIGTERM, mid-export: the part written so far would be left
  // beside the target (as the backup's would), a file named like the export that no one asked for.
  const release = exitOnSignal("export", () => {
    progress.clear();
    writer.destroy();
    rmSync(partial, { force: true });
    return `; nothing was written to ${out}`;
  });
  try {
    await write(writer);
    await writer.close();
    if (force) renameSync(partial, out);
    else {
      // A link is never made over an existing file: one that appeared meanwhile stays as it was.
      linkSync(partial, out);
      rmSync(partial);
    }
  } catch (err) {
    writer.destroy();
    try {
      rmSync(partial, { force: true });
    } catch {
      // Below a file (ENOTDIR) there is no partial file to remove: the error says why.
    }
    if ((err as NodeJS.ErrnoException).code !== undefined) {
      throw new CliError(`cannot write --out ${out}: ${fileProblem(err)}`);
    }
    throw err;
  } finally {
    release();
    progress.clear();
  }
}

/** `--out -`: standard output, as `things add -` reads standard input. */
const STDOUT = "-";

/** Where an export's summary goes: stdout, unless the export itself does. */
function summaryStream(out: string): NodeJS.WriteStream {
  return out === STDOUT ? process.stderr : process.stdout;
}

function outName(out: string): string {
  return out === STDOUT ? "standard output" : out;
}

/** Where an export goes: `force` replaces a file already there. */
interface ExportTarget {
  out: string;
  force?: boolean;
}

/**
 * An --out that names a folder is a usage error, said as such before the hub is asked anything:
 * not "exists" (a file), nor a folder that --force would fail to replace at the very end.
 */
function checkNotFolder(out: string, example: string): void {
  let folder = false;
  try {
    folder = statSync(out).isDirectory();
  } catch {
    // Nothing there (or nothing this can see): writing it says what is wrong, if anything.
  }
  if (folder) {
    throw new CliError(`--out ${out} is a folder: name a file to write, such as ${join(out, example)}`, 2);
  }
}

/** An export never replaces a file unless asked to: it may be the evidence of an earlier one. */
function checkExportTarget({ out, force }: ExportTarget): void {
  if (out !== STDOUT) checkNotFolder(out, "log.ndjson.gz");
  if (out !== STDOUT && !force && existsSync(out)) {
    throw new CliError(`${out} exists: name a new file, or add --force to replace it`, 2);
  }
}

/**
 * What every export starts from: its target checked and `--since` (and `--until`) read (before
 * asking the hub anything), the hub's key, its latest checkpoint (signed now if Changes are not
 * yet covered), which the export ends at, and the proofs from the kept checkpoints of
 * `--consistent-with`.
 */
async function exportStart(
  options: { since?: string; until?: string; consistentWith?: string[] } & ExportTarget,
  client: HubClient,
): Promise<{
  since: Date | undefined;
  until: Date | undefined;
  /** Why nothing may be found since `since`: a time of day still to come, read as today's. */
  sinceNote: string;
  checkpoint: Checkpoint;
  common: ExportHeaderCommon;
  consistentWith: KeptConsistency[];
}> {
  checkExportTarget(options);
  const now = new Date();
  const { since, until } = sinceAndUntil(options, now);
  const note = stillToComeNote("--since", options.since, since, now);
  const sinceNote = note === undefined ? "" : ` (${note})`;
  const logKey = await client.logKey();
  const checkpoint = await client.checkpoint();
  if (checkpoint === undefined) throw new CliError("the log is empty: nothing to export");
  const common = {
    type: "header" as const,
    origin: logKey.origin,
    publicKey: logKey.publicKey,
    exportedAt: new Date().toISOString(),
  };
  const consistentWith = await keptConsistencies(
    options.consistentWith,
    client,
    common.origin,
    common.publicKey,
    checkpoint,
  );
  return { since, until, sinceNote, checkpoint, common, consistentWith };
}

/**
 * `--consistent-with FILE…`: for each checkpoint kept apart from the hub (a `things checkpoint`
 * file, or an export), checked with the hub's key, the RFC 9162 consistency proof from it to the
 * export's checkpoint, checked too. A hub whose Log no longer extends a kept checkpoint — cut
 * short, or rewritten and signed again — gets no export: that is the finding.
 */
async function keptConsistencies(
  files: readonly string[] | undefined,
  client: HubClient,
  origin: string,
  publicKey: string,
  checkpoint: Checkpoint,
): Promise<KeptConsistency[]> {
  if (files === undefined || files.length === 0) return [];
  const key = publicKeyOf(publicKey, "the hub's /log/key");
  const root = checkpointRoot(checkpoint, key, origin, "the hub's latest checkpoint");
  const size = checkpoint.size;
  const proven: KeptConsistency[] = [];
  for (const saved of await savedCheckpoints(files)) {
    const kept = saved.checkpoint;
    const keptRoot = keptRootOf(saved, key, origin, "the hub's");
    if (kept.size > size) {
      fail(
        size + 1,
        "missing-changes",
        `the checkpoint saved in ${saved.file} covers ${kept.size} changes, the hub's latest only ${size}: its Log was cut short since`,
      );
    }
    const proof = kept.size === size ? [] : (await client.consistencyProof(kept.size, size)).proof;
    if (!verifyConsistency(kept.size, size, hashesOf(proof, "the hub's consistency proof"), keptRoot, root)) {
      fail(
        undefined,
        kept.size === size ? "fork" : "inconsistent",
        `the hub's Log of ${size} changes (signed at ${checkpoint.time}) does not extend the checkpoint saved in ` +
          `${saved.file} (${kept.size} changes, signed at ${kept.time}): it was rewritten since ` +
          `(things verify --checkpoint ${saved.file} names the stretch)`,
      );
    }
    proven.push({ checkpoint: kept, proof });
  }
  return proven;
}

async function exportLog(
  options: { since?: string; consistentWith?: string[] } & ExportTarget,
  client: HubClient,
): Promise<void> {
  const { since, sinceNote, checkpoint, common, consistentWith } = await exportStart(options, client);
  const to = checkpoint.size;
  let from = 1;
  if (since !== undefined) {
    const first = (await client.changes({ since, limit: 1 })).changes[0];
    if (first === undefined || first.seq > to) {
      // The checkpoint was signed just now, over every Change committed: none since is in it.
      throw new CliError(
        `no change since ${since.toISOString()} in the Log up to its latest checkpoint (size ${to}): nothing to export${sinceNote}`,
      );
    }
    from = first.seq;
  }
  const [firstProof, lastProof] = await Promise.all([
    client.inclusionProof(from, to),
    client.inclusionProof(to, to),
  ]);
  // The latest checkpoint before the exported run, to chain this export to an earlier one.
  let previous: Checkpoint | undefined;
  for await (const c of client.checkpointsAll()) {
    if (c.size >= from) break;
    previous = c;
  }
  const consistency = previous && (await client.consistencyProof(previous.size, to));
  const header: ExportHeader = {
    ...common,
    format: EXPORT_FORMAT,
    from,
    to,
    prefix: prefixOf(from - 1, to, firstProof.proof),
  };
  const trailer: ExportTrailer = {
    type: "checkpoint",
    checkpoint,
    proofs: {
      inclusion: [
        { seq: from, proof: firstProof.proof },
        { seq: to, proof: lastProof.proof },
      ],
      ...(previous && consistency && { consistency: { checkpoint: previous, proof: consistency.proof } }),
      ...(consistentWith.length > 0 && { consistentWith }),
    },
  };
  const progress = new ProgressBar("exporting", to - from + 1);
  let count = 0;
  await writeExport(options, progress, async (writer) => {
    await writer.write(header);
    for await (const change of client.logEntriesAll({ after: from - 1, upTo: to })) {
      await writer.write({ type: "change", change });
      progress.update(++count);
    }
    if (count !== to - from + 1) {
      throw new CliError(`the hub sent ${count} of the ${to - from + 1} changes ${from}..${to}`);
    }
    await writer.write(trailer);
  });
  summaryStream(options.out).write(
    `exported ${counted(count, "change")} (seq ${from}..${to}) to ${outName(options.out)}, ` +
      `with the checkpoint of size ${to} signed at ${checkpoint.time}` +
      (previous ? ` and a consistency proof from size ${previous.size}` : "") +
      keptSummary(consistentWith, options.consistentWith) +
      "\n",
  );
}

// ---------------------------------------------------------------------------------------------
// export --thing: one Thing's Changes, each with its own inclusion proof
//
//   {"type":"header","format":"hyperthings-thing-export/1","origin":…,"publicKey":<SPKI PEM>,
//    "exportedAt":…,"thing":ID,"since":T,"until":U (when given),"checkpoint":{origin,size:N,root,time,signature},
//    "consistentWith":[{"checkpoint":{…kept…},"proof":[…]}] (with `--consistent-with KEPT…`)}
//   {"type":"change","change":{…with its recorded "leaf"…},"proof":[…]}
//   … one line per Change of the Thing with seq <= N (from T, up to U), in seq order …
//   {"type":"end","changes":K}
//
// The checkpoint comes first, so that `things verify --file` checks each line as it reads it, in
// constant memory: the Change recomputed against its leaf (an edit is named by its seq), that it
// is the Thing's and after the one before, and its RFC 9162 inclusion proof against the signed
// root. The end line makes a file cut short fail. What it proves: each exported Change is, unaltered,
// the Change of its seq in the tree the hub signed. What it does not prove: that none of the
// Thing's Changes is left out (the whole run, `things export --since`, proves that), nor anything
// about the other Things, whose Changes are not in the file at all.

interface ThingExportHeader extends ExportHeaderCommon {
  format: string;
  thing: string;
  since?: string;
  until?: string;
  checkpoint: Checkpoint;
  /** From each checkpoint given with `--consistent-with`, to `checkpoint`. */
  consistentWith?: KeptConsistency[];
}

async function exportThing(
  options: { since?: string; until?: string; thing: string; consistentWith?: string[] } & ExportTarget,
  client: HubClient,
): Promise<void> {
  const { since, until, sinceNote, checkpoint, common, consistentWith } = await exportStart(options, client);
  const size = checkpoint.size;
  const header: ThingExportHeader = {
    ...common,
    format: THING_EXPORT_FORMAT,
    thing: options.thing,
    ...(since !== undefined && { since: since.toISOString() }),
    ...(until !== undefined && { until: until.toISOString() }),
    checkpoint,
    ...(consistentWith.length > 0 && { consistentWith }),
  };
  const progress = new ProgressBar("exporting", 0);
  let count = 0;
  let first: number | undefined;
  let last: number | undefined;
  await writeExport(options, progress, async (writer) => {
    // The proofs of a run are asked for as soon as it is full, and written in order: the next
    // page of history and up to PROOF_REQUESTS_IN_FLIGHT runs' proofs are on their way together.
    const inFlight: Array<{ changes: Change[]; answer: Promise<InclusionProofs> }> = [];
    const writeOldest = async (): Promise<void> => {
      const oldest = inFlight.shift();
      if (oldest === undefined) return;
      const { proofs } = await oldest.answer;
      for (const [i, change] of oldest.changes.entries()) {
        if (proofs[i]?.seq !== change.seq) {
          throw new CliError(`the hub answered with no inclusion proof of change ${change.seq}`);
        }
        await writer.write({ type: "change", change, proof: proofs[i]?.proof });
        first ??= change.seq;
        last = change.seq;
        progress.update(++count);
      }
    };
    const send = async (changes: Change[]): Promise<void> => {
      if (changes.length === 0) return;
      const answer = client.inclusionProofs(
        changes.map((c) => c.seq),
        size,
      );
      // Awaited in turn by writeOldest; a failure meanwhile must not go unhandled.
      answer.catch(() => undefined);
      inFlight.push({ changes, answer });
      if (inFlight.length > PROOF_REQUESTS_IN_FLIGHT) await writeOldest();
    };
    await writer.write(header);
    let run: Change[] = [];
    for await (const change of client.historyAll(options.thing, {
      order: "asc",
      limit: 1000,
      ...(since !== undefined && { since }),
      ...(until !== undefined && { until }),
    })) {
      // Only what the checkpoint covers: a later Change has no proof against it.
      if (change.seq > size) break;
      run.push(change);
      if (run.length === PROOFS_PER_REQUEST) {
        await send(run);
        run = [];
      }
    }
    await send(run);
    while (inFlight.length > 0) await writeOldest();
    if (count === 0) {
      throw new CliError(
        `${options.thing} has no change${since ? ` since ${since.toISOString()}` : ""}${until ? ` until ${until.toISOString()}` : ""} in the Log up to its latest checkpoint (size ${size}): nothing to export${sinceNote}`,
      );
    }
    await writer.write({ type: "end", changes: count });
  });
  summaryStream(options.out).write(
    `exported ${counted(count, "change")} of ${options.thing} (seq ${first}..${last}) to ${outName(options.out)}, ` +
      `each with its inclusion proof in the checkpoint of size ${size} signed at ${checkpoint.time}` +
      keptSummary(consistentWith, options.consistentWith) +
      "\n",
  );
}

/** `things verify --file` on one Thing's export, a line at a time (see the comment above). */
class ThingExportCheck {
  private readonly key: KeyObject;
  private readonly root: Uint8Array;
  private count = 0;
  private first: number | undefined;
  private last = 0;
  private ended = false;
  /**
   * Per affordance and kind, the last Change of it in the file and its value (canonical JSON). The
   * hub records with each Change of an affordance the value of the one before it (`previous`):
   * a Change whose `previous` is not the value of the file's last one of its stream had another
   * Change between them, which the file left out.
   */
  private readonly streams = new Map<string, { seq: number; value: string | undefined }>();
  /**
   * The first such gap, said once the file is read: a line moved later in the file shows as a gap
   * where it was taken from, and then as a line out of order, which is what happened.
   */
  private gap: Failed | undefined;

  /** The consistency proofs the header carries, checked. */
  private readonly proven: ProvenPrefix[];

  constructor(
    private readonly header: ThingExportHeader,
    pinnedKey: string | undefined,
    private readonly kept: readonly SavedCheckpoint[] = [],
  ) {
    if (
      typeof header.thing !== "string" ||
      typeof header.origin !== "string" ||
      typeof header.publicKey !== "string"
    ) {
      fail(undefined, "not-an-export", "the header needs thing, origin, publicKey and checkpoint");
    }
    if (!isObject(header.checkpoint)) fail(undefined, "not-an-export", "the header has no checkpoint");
    this.key = publicKeyOf(header.publicKey, "the export's publicKey");
    checkPinnedKey(this.key, pinnedKey, "the export's");
    this.root = checkpointRoot(header.checkpoint, this.key, header.origin, "the checkpoint");
    this.proven = carriedConsistencies(
      header.consistentWith,
      this.key,
      header.origin,
      header.checkpoint,
      this.root,
    );
  }

  /** How many Changes have been checked so far. */
  get checked(): number {
    return this.count;
  }

  line(text: string, lineNo: number): void {
    if (text.trim() === "") return;
    if (this.ended) fail(undefined, "trailing-content", `line ${lineNo} follows the end line`);
    const entry = jsonLine(text, lineNo);
    if (isObject(entry) && entry.type === "end") {
      if (this.gap !== undefined) throw new VerificationFailure(this.gap);
      if (entry.changes !== this.count) {
        fail(
          undefined,
          "missing-changes",
          `the end line counts ${JSON.stringify(entry.changes)} changes, the file has ${this.count}`,
        );
      }
      this.ended = true;
      return;
    }
    const change =
      isObject(entry) && entry.type === "change" && isObject(entry.change) ? entry.change : undefined;
    if (change === undefined || !isObject(entry)) {
      return fail(undefined, "not-a-change", `line ${lineNo} is neither a change nor the end line`);
    }
    const seq = change.seq;
    const size = this.header.checkpoint.size;
    if (typeof seq === "number" && Number.isSafeInteger(seq) && seq > 0 && seq <= this.last) {
      fail(
        seq,
        "sequence",
        `line ${lineNo}: seq ${seq} comes after seq ${this.last}: the file's lines are out of order, or one is repeated`,
      );
    }
    if (typeof seq !== "number" || !Number.isSafeInteger(seq) || seq <= this.last || seq > size) {
      fail(
        undefined,
        "sequence",
        `line ${lineNo}: seq ${JSON.stringify(seq)} does not follow seq ${this.last} within the checkpoint's ${size} changes`,
      );
    }
    if (change.thing !== this.header.thing) {
      fail(
        seq,
        "other-thing",
        `the change is of ${JSON.stringify(change.thing)}, not of ${this.header.thing}`,
      );
    }
    const actual = recordedLeaf(change, seq);
    const path = hashesOf(entry.proof, `the inclusion proof of change ${seq}`, seq);
    if (!verifyInclusion(hashFromHex(actual), seq - 1, size, path, this.root)) {
      fail(
        seq,
        "bad-proof",
        `the change is not the one of seq ${seq} in the tree signed at ${this.header.checkpoint.time}: its inclusion proof does not lead to the signed root`,
      );
    }
    this.chain(change, seq);
    this.first ??= seq;
    this.last = seq;
    this.count++;
  }

  /** A proven Change against the last one of its stream in the file (see `streams`). */
  private chain(change: Record<string, unknown>, seq: number): void {
    const { affordance, kind } = change;
    if (typeof affordance !== "string" || typeof kind !== "string") return;
    const key = `${affordance}\u0000${kind}`;
    const before = this.streams.get(key);
    const text = (value: unknown) => (value === undefined ? undefined : canonicalJson(value));
    const previous = text(change.previous);
    // Only a recorded previous value that differs tells: a Change without one says nothing.
    if (before?.value !== undefined && previous !== undefined && previous !== before.value) {
      this.gap ??= failed(
        before.seq + 1,
        "missing-changes",
        `the ${kind} change of ${affordance} at seq ${seq} follows the value ${previous}, but the file's ` +
          `last one before it (seq ${before.seq}) has ${before.value}: a change between them is not in the file`,
        seq - 1,
      );
    }
    this.streams.set(key, { seq, value: text(change.value) });
  }

  finish(json: boolean): void {
    if (this.gap !== undefined) throw new VerificationFailure(this.gap);
    if (!this.ended)
      fail(
        undefined,
        "truncated",
        `the export ends ${this.count > 0 ? `after the change of seq ${this.last} ` : ""}without its end line: it is incomplete`,
      );
    const { checkpoint, thing, origin } = this.header;
    checkKept(this.kept, this.key, origin, { checkpoint, root: this.root }, this.proven);
    report(
      {
        ok: true,
        line:
          `verified ${counted(this.count, "change")} of ${thing} (seq ${this.first}..${this.last}), each proven in the log ` +
          `of ${checkpoint.size} changes with root ${checkpoint.root} signed at ${checkpoint.time} by ${origin} ` +
          `(key ${fingerprintOf(this.key)}); an export of one Thing proves each change it holds, not that none is ` +
          `left out (a gap between two of an affordance's changes of different values would have shown)` +
          keptLine(this.kept),
        json: {
          thing,
          changes: this.count,
          first: this.first,
          last: this.last,
          size: checkpoint.size,
          root: checkpoint.root,
          signedAt: checkpoint.time,
          origin,
          key: fingerprintOf(this.key),
          ...keptJson(this.kept),
        },
      },
      json,
    );
  }
}

/** `kept: [{file, size}]` in a verdict's JSON, when checkpoints were held against the export. */
function keptJson(kept: readonly SavedCheckpoint[]): { kept?: Array<{ file: string; size: number }> } {
  return kept.length === 0 ? {} : { kept: kept.map((k) => ({ file: k.file, size: k.checkpoint.size })) };
}

/** An exported Change's leaf hash, recomputed: it must be the one recorded with it. */
function recordedLeaf(change: Record<string, unknown>, seq: number): string {
  const actual = leafHex(change as unknown as Change);
  if (actual === undefined) return fail(seq, "unhashable-change", "the Change cannot be hashed");
  if (change.leaf !== actual) {
    fail(
      seq,
      "altered-change",
      `the Change hashes to ${actual}, but the export records its leaf as ${JSON.stringify(change.leaf)}: it was edited`,
    );
  }
  return actual;
}

/** A line of an export, parsed; `seq` is the Change a failure is about, when it is known. */
function jsonLine(text: string, lineNo: number, seq?: number): unknown {
  try {
    return JSON.parse(text);
  } catch (err) {
    // JSON that runs out before it closes (the parser stopped at the line's end): a file cut
    // short, as a copy or a download interrupted leaves it, not a line someone wrote.
    const message = (err as Error).message;
    const at = /at position (\d+)/.exec(message)?.[1];
    if (text.trimStart().startsWith("{") && (/end of JSON input/.test(message) || Number(at) === text.length))
      return fail(seq, "truncated", `line ${lineNo} ends in the middle of its JSON: the file was cut short`);
    return fail(seq, "not-json", `line ${lineNo} is not JSON`);
  }
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function hashesOf(value: unknown, what: string, seq?: number): Uint8Array[] {
  if (!Array.isArray(value)) return fail(seq, "bad-proof", `${what} is not an array of hashes`);
  try {
    return value.map((h, i) => hashFromHex(h, `/${i}`));
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    return fail(seq, "bad-proof", `${what}: ${err.message}`);
  }
}

function checkpointRoot(checkpoint: unknown, key: KeyObject, origin: string, what: string): Uint8Array {
  try {
    return verifyCheckpoint(checkpoint as Checkpoint, key, { origin }).root;
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    return fail(undefined, "bad-checkpoint", `${what}: ${err.message}`);
  }
}

/** A kept checkpoint's root, once it verifies with the key and hub id; said of its file when not. */
function keptRootOf(saved: SavedCheckpoint, key: KeyObject, origin: string, whose: string): Uint8Array {
  try {
    return verifyCheckpoint(saved.checkpoint, key, { origin }).root;
  } catch (err) {
    if (!(err instanceof ValidationError)) throw err;
    return fail(
      undefined,
      "bad-checkpoint",
      `the checkpoint saved in ${saved.file} does not verify with ${whose} key ${fingerprintOf(key)} and id ` +
        `${origin}: ${err.message} (the file was altered, or another hub or key signed it)`,
    );
  }
}

/** `; with consistency proofs from the checkpoints saved in a.json (size 504), …`, for a summary. */
function keptSummary(proven: readonly KeptConsistency[], files: readonly string[] | undefined): string {
  if (proven.length === 0 || files === undefined) return "";
  const each = proven.map((p, i) => `${files[i] ?? "?"} (size ${p.checkpoint.size})`);
  return `; with consistency proofs from the checkpoint${each.length === 1 ? "" : "s"} saved in ${each.join(", ")}`;
}

/** A signed checkpoint an export proves its own tree extends, with its root. */
interface ProvenPrefix {
  checkpoint: Checkpoint;
  root: Uint8Array;
}

/**
 * The consistency proofs an export carries from kept checkpoints (`consistentWith`), each checked
 * against the export's signed root (a proof that does not hold is an altered file): their
 * checkpoints are what `verify --file --checkpoint` may match a kept one to.
 */
function carriedConsistencies(
  value: unknown,
  key: KeyObject,
  origin: string,
  signed: Checkpoint,
  signedRoot: Uint8Array,
): ProvenPrefix[] {
  if (value === undefined) return [];
  if (!Array.isArray(value))
    return fail(undefined, "bad-proof", "the export's consistentWith is not an array");
  return value.map((item: unknown, i) => {
    const what = `the export's consistency proof ${i + 1}`;
    if (!isObject(item)) return fail(undefined, "bad-proof", `${what} is not an object`);
    const earlier = item.checkpoint as Checkpoint;
    const root = checkpointRoot(earlier, key, origin, `the checkpoint of ${what}`);
    const path = hashesOf(item.proof, what);
    if (!verifyConsistency(earlier.size, signed.size, path, root, signedRoot)) {
      fail(
        undefined,
        "inconsistent",
        `${what} does not show the tree signed at ${earlier.time} (${earlier.size} changes) to be a prefix of the tree signed at ${signed.time}`,
      );
    }
    return { checkpoint: earlier, root };
  });
}

/**
 * `verify --file X --checkpoint FILE…`, offline: each checkpoint kept apart must be signed with the
 * export's key by its hub, and be a tree that the export's signed tree extends — shown by equal
 * roots (the same size), by the export's own leaves (a run that reaches back to it), or by a
 * consistency proof the export carries from its size (`things export --consistent-with FILE`).
 * Anything else is not proven, and fails: "not shown" must not read as "consistent".
 */
function checkKept(
  kept: readonly SavedCheckpoint[],
  key: KeyObject,
  origin: string,
  signed: ProvenPrefix,
  proven: readonly ProvenPrefix[],
  rootAt: (size: number) => Uint8Array | undefined = () => undefined,
): void {
  const size = signed.checkpoint.size;
  for (const saved of kept) {
    const root = keptRootOf(saved, key, origin, "the export's");
    const k = saved.checkpoint.size;
    const known = k === size ? signed.root : (rootAt(k) ?? proven.find((p) => p.checkpoint.size === k)?.root);
    if (known === undefined) {
      fail(
        undefined,
        "unproven",
        (k > size
          ? `the checkpoint saved in ${saved.file} (size ${k}) is newer than the export's (size ${size})`
          : `the export holds no consistency proof from the checkpoint saved in ${saved.file} (size ${k})`) +
          `: export again from the hub with --consistent-with ${saved.file}`,
      );
    }
    if (!hashesEqual(known, root)) {
      fail(
        undefined,
        "fork",
        `the checkpoint saved in ${saved.file} signs the root ${saved.checkpoint.root} for ${k} changes, but the ` +
          `export proves ${hashToHex(known)} for them: the hub signed two different Logs`,
      );
    }
  }
}

/** `; extends the checkpoint saved in a.json (size 504)`, for a verdict. */
function keptLine(kept: readonly SavedCheckpoint[]): string {
  if (kept.length === 0) return "";
  const each = kept.map((k) => `${k.file} (size ${k.checkpoint.size})`);
  return `; extends the checkpoint${each.length === 1 ? "" : "s"} saved in ${each.join(", ")}`;
}

/** The header of one Thing's export, or undefined when the line is something else. */
function thingExportHeader(line: string): ThingExportHeader | undefined {
  let header: unknown;
  try {
    header = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (!isObject(header) || header.type !== "header" || header.format !== THING_EXPORT_FORMAT)
    return undefined;
  return header as unknown as ThingExportHeader;
}

/** The export's header line, checked. */
function readHeader(line: string | undefined, file: string): ExportHeader {
  let header: unknown;
  try {
    header = line === undefined ? undefined : JSON.parse(line);
  } catch {
    header = undefined;
  }
  if (!isObject(header) || header.type !== "header" || header.format !== EXPORT_FORMAT) {
    return fail(undefined, "not-an-export", `${file} does not start with a ${EXPORT_FORMAT} header line`);
  }
  const { origin, publicKey, from, to } = header;
  const isSeq = (n: unknown): n is number => typeof n === "number" && Number.isSafeInteger(n) && n >= 1;
  if (
    typeof origin !== "string" ||
    typeof publicKey !== "string" ||
    !isSeq(from) ||
    !isSeq(to) ||
    from > to
  ) {
    return fail(undefined, "not-an-export", "the header needs origin, publicKey, and 1 <= from <= to");
  }
  return header as unknown as ExportHeader;
}

/** Whether the file starts as gzip does (0x1f 0x8b), whatever its name. */
function isGzipFile(file: string): boolean {
  let fd: number | undefined;
  try {
    fd = openSync(file, "r");
    const magic = Buffer.alloc(2);
    return readSync(fd, magic, 0, 2, 0) === 2 && magic[0] === 0x1f && magic[1] === 0x8b;
  } catch (err) {
    throw new CliError(`cannot read ${file}: ${fileProblem(err)}`);
  } finally {
    if (fd !== undefined) closeSync(fd);
  }
}

/**
 * The lines of an export, gunzipped if it is gzip; a gzip stream cut short or altered fails the
 * verification (its own checksum and length tell), as a plain file cut short does.
 */
async function exportLines(file: string): Promise<{ lines: AsyncIterable<string>; close: () => void }> {
  const gzip = isGzipFile(file);
  const raw = createReadStream(file);
  await once(raw, "open").catch((err: Error) => {
    throw new CliError(`cannot read ${file}: ${fileProblem(err)}`);
  });
  let input: Readable = raw;
  if (gzip) {
    const gunzip = createGunzip();
    // A failure of either ends the lines below with it.
    pipeline(raw, gunzip).catch(() => undefined);
    input = gunzip;
  }
  const reader = createInterface({ input, crlfDelay: Number.POSITIVE_INFINITY });
  const lines = (async function* () {
    try {
      yield* reader;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (gzip && typeof code === "string" && code.startsWith("Z_")) {
        fail(
          undefined,
          "damaged",
          `${file} is not a whole gzip stream (${(err as Error).message}): it was cut short or altered`,
        );
      }
      throw err;
    }
  })();
  return {
    lines,
    close: () => {
      reader.close();
      input.destroy();
      raw.destroy();
    },
  };
}

/** `things verify --file`: see the comment above `ExportHeader` for what it proves. */
async function verifyExport(options: VerifyOptions & { file: string }): Promise<void> {
  const file = options.file;
  // Read first: a kept checkpoint the run reaches back to is checked against its leaves as they pass.
  const kept = await savedCheckpoints(options.checkpoint ?? []);
  const keptSizes = new Set(kept.map((k) => k.checkpoint.size));
  const rootsAt = new Map<number, Uint8Array>();
  const { lines, close } = await exportLines(file);
  const progress = new ProgressBar("verifying", 0);
  try {
    let header: ExportHeader | undefined;
    let key: KeyObject | undefined;
    let frontier: MerkleFrontier | undefined;
    let trailer: ExportTrailer | undefined;
    let firstLeaf: Uint8Array | undefined;
    let lastLeaf: Uint8Array | undefined;
    let thingCheck: ThingExportCheck | undefined;
    let lineNo = 0;
    for await (const line of lines) {
      lineNo++;
      if (thingCheck !== undefined) {
        thingCheck.line(line, lineNo);
        progress.update(thingCheck.checked);
        continue;
      }
      if (header === undefined) {
        const thingHeader = thingExportHeader(line);
        if (thingHeader !== undefined) {
          thingCheck = new ThingExportCheck(thingHeader, options.key, kept);
          continue;
        }
        header = readHeader(line, file);
        key = publicKeyOf(header.publicKey, "the export's publicKey");
        checkPinnedKey(key, options.key, "the export's");
        try {
          frontier = MerkleFrontier.fromJSON(header.prefix);
        } catch (err) {
          if (!(err instanceof ValidationError)) throw err;
          fail(undefined, "not-an-export", `the header's prefix: ${err.message}`);
        }
        if (frontier.size !== header.from - 1) {
          fail(
            header.from,
            "bad-prefix",
            `the prefix covers ${frontier.size} changes, not ${header.from - 1}`,
          );
        }
        if (keptSizes.has(frontier.size)) rootsAt.set(frontier.size, frontier.root());
        progress.setTotal(header.to - header.from + 1);
        continue;
      }
      if (line.trim() === "") continue;
      if (trailer !== undefined) fail(undefined, "trailing-content", `line ${lineNo} follows the checkpoint`);
      const expected = (frontier?.size ?? 0) + 1;
      // After seq `to` the checkpoint comes: a line there that is not JSON is about no Change.
      const entry = jsonLine(line, lineNo, expected <= header.to ? expected : undefined);
      if (isObject(entry) && entry.type === "checkpoint") {
        trailer = entry as unknown as ExportTrailer;
        continue;
      }
      const change =
        isObject(entry) && entry.type === "change" && isObject(entry.change) ? entry.change : undefined;
      if (change === undefined)
        fail(expected, "not-a-change", `line ${lineNo} is neither a change nor the checkpoint`);
      if (typeof change.seq === "number" && change.seq >= header.from && change.seq < expected) {
        fail(
          expected,
          "sequence",
          `line ${lineNo}: change ${change.seq} comes after change ${expected - 1}: the export's lines are out of order, or one is repeated`,
        );
      }
      if (change.seq !== expected) {
        fail(
          expected,
          "sequence",
          `line ${lineNo}: expected change ${expected}, found ${JSON.stringify(change.seq)}`,
        );
      }
      if (expected > header.to)
        fail(expected, "sequence", `the header says the export ends at seq ${header.to}`);
      const actual = recordedLeaf(change, expected);
      const leaf = hashFromHex(actual);
      frontier?.append(leaf);
      if (frontier !== undefined && keptSizes.has(frontier.size)) rootsAt.set(frontier.size, frontier.root());
      if (expected === header.from) firstLeaf = leaf;
      lastLeaf = leaf;
      progress.update(expected - header.from + 1);
    }
    if (thingCheck !== undefined) {
      progress.clear();
      return thingCheck.finish(options.json === true);
    }
    if (header === undefined || key === undefined || frontier === undefined) {
      return fail(undefined, "not-an-export", `${file} is empty`);
    }
    if (trailer === undefined) {
      return fail(
        undefined,
        "truncated",
        `the export ends after seq ${frontier.size} without its checkpoint: it is incomplete`,
      );
    }
    if (frontier.size !== header.to || firstLeaf === undefined || lastLeaf === undefined) {
      return fail(
        frontier.size + 1,
        "missing-changes",
        `the export ends at seq ${frontier.size}, not ${header.to}`,
      );
    }
    const checkpoint = trailer.checkpoint;
    const root = checkpointRoot(checkpoint, key, header.origin, "the checkpoint");
    if (checkpoint.size !== header.to) {
      fail(
        undefined,
        "bad-checkpoint",
        `the checkpoint covers ${checkpoint.size} changes, the export ends at ${header.to}`,
      );
    }
    const recomputed = frontier.root();
    if (!hashesEqual(recomputed, root)) {
      const range =
        header.from === header.to ? `seq ${header.from}` : `one of seq ${header.from}..${header.to}`;
      fail(
        header.from,
        "root-mismatch",
        `the exported changes${header.from > 1 ? " after the prefix" : ""} hash to the root ${hashToHex(recomputed)}, ` +
          `but the checkpoint of ${checkpoint.time} signs ${checkpoint.root}: ${range}${header.from > 1 ? " (or the prefix hashes)" : ""} differs from what was signed`,
        header.to,
      );
    }
    const inclusion =
      isObject(trailer.proofs) && Array.isArray(trailer.proofs.inclusion) ? trailer.proofs.inclusion : [];
    for (const [seq, leaf] of [
      [header.from, firstLeaf],
      [header.to, lastLeaf],
    ] as const) {
      const item = inclusion.find((p) => isObject(p) && p.seq === seq);
      if (item === undefined) fail(seq, "bad-proof", `the export has no inclusion proof of change ${seq}`);
      const path = hashesOf(item.proof, `the inclusion proof of change ${seq}`, seq);
      if (!verifyInclusion(leaf, seq - 1, header.to, path, root)) {
        fail(seq, "bad-proof", `the inclusion proof of change ${seq} does not lead to the signed root`);
      }
    }
    const consistency = isObject(trailer.proofs) ? trailer.proofs.consistency : undefined;
    const proven = carriedConsistencies(
      isObject(trailer.proofs) ? trailer.proofs.consistentWith : undefined,
      key,
      header.origin,
      checkpoint,
      root,
    );
    let chained = "";
    if (consistency !== undefined) {
      const earlier = consistency.checkpoint;
      const earlierRoot = checkpointRoot(earlier, key, header.origin, "the earlier checkpoint");
      const path = hashesOf(consistency.proof, "the consistency proof");
      if (!verifyConsistency(earlier.size, header.to, path, earlierRoot, root)) {
        fail(
          undefined,
          "inconsistent",
          `the tree signed at ${earlier.time} (${earlier.size} changes) is not a prefix of the tree signed at ${checkpoint.time}`,
        );
      }
      proven.push({ checkpoint: earlier, root: earlierRoot });
      chained = `; consistent with the checkpoint of size ${earlier.size} signed at ${earlier.time}`;
    }
    checkKept(kept, key, header.origin, { checkpoint, root }, proven, (size) => rootsAt.get(size));
    progress.clear();
    const count = header.to - header.from + 1;
    report(
      {
        ok: true,
        line:
          `verified ${counted(count, "change")} (seq ${header.from}..${header.to}), checkpoint of size ${header.to}, ` +
          `log root ${checkpoint.root} signed at ${checkpoint.time} by ${header.origin} (key ${fingerprintOf(key)})` +
          (header.from > 1 ? `; changes 1..${header.from - 1} are covered by hashes only` : "") +
          chained +
          keptLine(kept),
        json: {
          from: header.from,
          to: header.to,
          size: count,
          root: checkpoint.root,
          signedAt: checkpoint.time,
          origin: header.origin,
          key: fingerprintOf(key),
          ...(consistency !== undefined && { consistentWith: consistency.checkpoint.size }),
          ...keptJson(kept),
        },
      },
      options.json === true,
    );
  } finally {
    progress.clear();
    close();
  }
}

// ---------------------------------------------------------------------------------------------
// The commands

/** Runs a verification, printing its verdict when it ends with one. */
function verifying<Args extends unknown[]>(
  what: string,
  json: (...args: Args) => boolean,
  action: (...args: Args) => Promise<void>,
) {
  return talking(async (...args: Args): Promise<void> => {
    try {
      await action(...args);
    } catch (err) {
      if (err instanceof VerificationFailure) return report(err.verdict, json(...args), what);
      throw err;
    }
  });
}

type ExportOptions = {
  since?: string;
  until?: string;
  thing?: string;
  consistentWith?: string[];
} & ExportTarget;

export function registerLogCommands(program: Command): void {
  const help = () => connectionHelpWith(EXIT_CODES);

  program
    .command("verify")
    .description(
      "verify the hub's whole Log against its signed checkpoints, or an export file offline (--file)",
    )
    .option(
      "--file <file>",
      "verify this export (from `things export`; plain or gzip) instead, without a hub",
    )
    .option(
      "--db <file>",
      "verify a hub's database file (hyperthings.db, or a copy), or its PostgreSQL store (postgres://…?schema=…), instead, without a hub: one a hub refuses to open too",
    )
    .option(
      "--key <file>",
      "the hub's public key (PEM) to trust; by default the one the hub or the file gives",
    )
    .option(
      "--data <dir>",
      "with --db postgres://…: the hub's data directory, whose log-key.pem and hub-id go with the Log (env HYPERTHINGS_DATA, default a per-user data folder)",
    )
    .option("--json", "the verdict as one JSON object")
    .option(
      "--checkpoint <file...>",
      "checkpoints saved earlier (`things checkpoint --out FILE`, or an export, whose checkpoint is taken): the Log must still hold each one (with --file: the export must prove it extends each one, offline)",
    )
    .option(
      "--threads <n>",
      `threads that hash the entries besides the one that fetches them and checks the tree (default 1 when there are 2 cores or more and the Log has more than ${VERIFY_THREADLESS_CHANGES} Changes, else 0)`,
      wholeNumber("--threads", 0),
    )
    .addHelpText("after", help)
    .action(
      verifying(
        "log verification",
        (options: VerifyOptions, _command: Command) => options.json === true,
        async (options: VerifyOptions, command: Command) => {
          if (options.file !== undefined && options.db !== undefined)
            throw new CliError("--file and --db: verify one at a time", 2);
          // A database file's copy is removed at a signal: verifyDbFile listens for it itself.
          if (options.db !== undefined && !POSTGRES_URL.test(options.db))
            return verifyDbFile(options.db, options);
          const release = exitOnSignal("verify");
          try {
            if (options.file !== undefined) return await verifyExport({ ...options, file: options.file });
            if (options.db !== undefined) return await verifyPostgres(options.db, options);
            return await verifyHub(clientOf(command), options);
          } finally {
            release();
          }
        },
      ),
    );

  program
    .command("checkpoint")
    .description(
      "the hub's latest signed checkpoint as JSON, checked with its key: keep it, and `things verify --checkpoint FILE` later proves the Log still holds it",
    )
    .option("--out <file>", "write it to this new file (never over an existing one) instead of stdout (-)")
    .option("--key <file>", "the hub's public key (PEM) to trust; by default the one the hub gives")
    .addHelpText("after", help)
    .action(
      verifying(
        "checkpoint",
        (_options: CheckpointOptions, _command: Command) => false,
        async (options: CheckpointOptions, command: Command) => {
          // Its --out file is written at once (never half), after every read: nothing to remove.
          const release = exitOnSignal("checkpoint");
          try {
            await saveCheckpoint(clientOf(command), options);
          } finally {
            release();
          }
        },
      ),
    );

  program
    .command("prove")
    .description("prove that one Change is in the signed Log: its hash, an inclusion proof and a checkpoint")
    .argument("<seq>", "the Change's position in the Log", wholeNumber("seq", 1))
    .option(
      "--size <n>",
      "prove it in the tree of this many Changes (a signed checkpoint's size)",
      wholeNumber("--size", 1),
    )
    .option("--key <file>", "the hub's public key (PEM) to trust; by default the one the hub gives")
    .option("--json", "what was proven as one JSON object")
    .addHelpText("after", help)
    .action(
      verifying(
        "proof",
        (_seq: number, options: ProveOptions, _command: Command) => options.json === true,
        async (seq: number, options: ProveOptions, command: Command) => {
          const release = exitOnSignal("prove");
          try {
            await prove(seq, options, clientOf(command));
          } finally {
            release();
          }
        },
      ),
    );

  program
    .command("export")
    .description("write the Log's Changes (all, or since a time) with a checkpoint and proofs, as NDJSON")
    .option("--since <time>", "only Changes from this time on (default: all)")
    .option(
      "--until <time>",
      "with --thing, only Changes up to this time (a run goes on to the latest checkpoint, to prove none is left out)",
    )
    .option(
      "--thing <id>",
      "only this Thing's Changes, each with its own inclusion proof (proves each one, not that none is left out)",
    )
    .requiredOption(
      "--out <file>",
      "the new file to write (gzip-compressed when its name ends in .gz), readable by you alone (mode 0600: it holds every value it covers; `chmod` it to share it); never over an existing one; - for standard output",
    )
    .option(
      "--consistent-with <file...>",
      "checkpoints kept apart (`things checkpoint --out FILE`, or an earlier export): carry a consistency proof from each, so that `things verify --file FILE --checkpoint KEPT` proves offline that the Log extends it",
    )
    .option("--force", "replace the --out file if it exists")
    .addHelpText(
      "after",
      () =>
        `\nCheck the file anywhere, without the hub, with \`things verify --file FILE\`.\n` +
        connectionHelpWith(EXPORT_EXIT_CODES),
    )
    .action(
      verifying(
        "export",
        (_options: ExportOptions, _command: Command) => false,
        async (options: ExportOptions, command: Command) => {
          if (options.thing !== undefined)
            return exportThing({ ...options, thing: options.thing }, clientOf(command));
          // A run's proof is that its Changes are every one from its first to the signed tree's
          // end: one that stopped earlier would prove nothing about what it left out after.
          if (options.until !== undefined) {
            throw new CliError(
              "--until needs --thing: an export of every Thing's Changes goes on to the Log's latest checkpoint, which is what proves none is left out",
              2,
            );
          }
          return exportLog(options, clientOf(command));
        },
      ),
    );
}
