// The Log's notary: the hub's Ed25519 key (created at first start, kept in the data directory),
// signed checkpoints at least every N Changes or T seconds, and RFC 9162 proofs against them.
import { createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from "node:crypto";
import { existsSync } from "node:fs";
import { join } from "node:path";
import type { Logger } from "pino";
import {
  DamagedLogError,
  NotFoundError,
  UnavailableError,
  ValidationError,
  changeLeafHash,
  consistencyProofRanges,
  hashFromHex,
  hashToHex,
  inclusionProofRanges,
  signCheckpointAsync,
  verifyCheckpoint,
  verifyInclusion,
  type Checkpoint,
} from "../core/index.js";
import type { Bus } from "../bus/index.js";
import type { LogHead, Store } from "../store/index.js";
import { createDataFile, readDataFile } from "./data-files.js";
import { HUB_ID_FILE } from "./hub-identity.js";
import type { HubClock } from "./hub-clock.js";

export const LOG_KEY_FILE = "log-key.pem";

/** Proofs that fail from the leaves too, logged one line each (a request asks for up to 500). */
const MAX_DAMAGE_LINES = 10;

export interface NotaryOptions {
  /** Sign a checkpoint once this many Changes are not yet covered by one. */
  everyChanges: number;
  /** …or once the oldest uncovered Change is this old (milliseconds). */
  everyMs: number;
}

export interface InclusionProof {
  seq: number;
  size: number;
  leaf: string;
  root: string;
  proof: string[];
  /** The signed checkpoint of that size, when there is one. */
  checkpoint?: Checkpoint;
}

/** Inclusion proofs of several Changes in one tree (GET /log/proof/inclusions). */
export interface InclusionProofs {
  size: number;
  root: string;
  proofs: Array<{ seq: number; leaf: string; proof: string[] }>;
  /** The signed checkpoint of that size, when there is one. */
  checkpoint?: Checkpoint;
}

export interface ConsistencyProof {
  from: number;
  to: number;
  fromRoot: string;
  toRoot: string;
  proof: string[];
}

/** What to do when the hub id or the key does not match the Log's checkpoints. */
function restoreAdvice(dataDir: string): string {
  return `restore ${join(dataDir, HUB_ID_FILE)} and ${join(dataDir, LOG_KEY_FILE)} from the backup taken with the database (docs/operations.md, "Backups")`;
}

/**
 * Refuses a data directory whose Log has a signed checkpoint but that lacks hub-id or
 * log-key.pem, before they are made anew: a new id or key could only be refused by the checkpoints
 * afterwards, and was left behind, the refusal naming it as if it were the one restored.
 */
export function requireSigningFiles(dataDir: string): void {
  const missing = [HUB_ID_FILE, LOG_KEY_FILE].filter((name) => !existsSync(join(dataDir, name)));
  if (missing.length === 0) return;
  throw new Error(
    `${missing.map((name) => join(dataDir, name)).join(" and ")} ${missing.length > 1 ? "are" : "is"} missing, ` +
      `but the Log's checkpoints name this hub by its id and are signed with its key: ${restoreAdvice(dataDir)}`,
  );
}

/** The Log's signing key in the data directory, made there when it has none. */
export function loadOrCreateLogKey(dataDir: string): KeyObject {
  const path = join(dataDir, LOG_KEY_FILE);
  const pem =
    readDataFile(path) ??
    createDataFile(
      path,
      generateKeyPairSync("ed25519").privateKey.export({ type: "pkcs8", format: "pem" }).toString(),
      0o600,
    );
  let key: KeyObject | undefined;
  try {
    key = createPrivateKey(pem);
  } catch {
    key = undefined;
  }
  if (key?.asymmetricKeyType !== "ed25519") {
    throw new Error(
      `${path} ${pem.trim().length === 0 ? "is empty" : "does not hold an Ed25519 private key (PEM)"}: restore it ` +
        "from the backup of this data directory, as the Log's checkpoints are signed with it (on a new hub " +
        "whose Log is empty, delete it and a new key is made)",
    );
  }
  return key;
}

/**
 * A proof that the store cannot work out because the Log there is damaged (a row deleted outside
 * the hub) is said as such, naming the proof asked for and the Change found missing.
 */
function unworkable(what: string): (err: unknown) => never {
  return (err) => {
    if (err instanceof DamagedLogError) {
      throw new DamagedLogError(`${what} cannot be worked out: ${err.message}`, err.seq);
    }
    throw err;
  };
}

export class Notary {
  private readonly privateKey: KeyObject;
  /** The public key as SPKI PEM, served at GET /log/key. */
  readonly publicKeyPem: string;
  private timer: NodeJS.Timeout | undefined;
  /** The size of the Log that the newest checkpoint signed, or being signed, covers. */
  private covered: number | undefined;
  /** The highest seq published so far. */
  private seen = 0;
  /** The count asked for a checkpoint that has not read the Log's head yet. */
  private due = false;
  /** The checkpoint being signed. */
  private signing: Promise<Checkpoint | undefined> | undefined;
  /** The one to sign after it, shared by everyone who asks meanwhile. */
  private next: Promise<Checkpoint | undefined> | undefined;
  private readonly unsubscribe: () => void;

  constructor(
    private readonly origin: string,
    private readonly dataDir: string,
    private readonly store: Store,
    bus: Bus,
    private readonly clock: HubClock,
    private readonly logger: Logger,
    private readonly options: NotaryOptions,
  ) {
    this.privateKey = loadOrCreateLogKey(dataDir);
    this.publicKeyPem = createPublicKey(this.privateKey).export({ type: "spki", format: "pem" }).toString();
    this.unsubscribe = bus.subscribe((change) => {
      if (change.seq > this.seen) this.seen = change.seq;
      // Without `start`, counted from the first Change published.
      this.covered ??= change.seq - 1;
      this.count();
    });
  }

  /**
   * Counts from the Log as it is: Changes that no checkpoint covers (a hub that stopped without
   * signing its last one: a crash, a power cut) are signed for within the count or the time
   * bound, as if they had just been published. Before anything else publishes.
   */
  async start(): Promise<void> {
    const head = await this.store.logHead();
    const latest = await this.store.latestCheckpoint();
    if (latest) this.checkOwn(latest);
    this.covered ??= latest?.size ?? 0;
    if (head.size > this.seen) this.seen = head.size;
    this.count();
  }

  /**
   * The Log's latest checkpoint names this hub and is signed with its key: a data directory
   * restored without hub-id or log-key.pem would otherwise go on under a new id or key, and no
   * verifier could ever check the old checkpoints and the new ones together.
   */
  private checkOwn(checkpoint: Checkpoint): void {
    const restore = restoreAdvice(this.dataDir);
    if (checkpoint.origin !== this.origin) {
      throw new Error(
        `The Log's checkpoints name the hub ${checkpoint.origin}, but this data directory's hub id is ${this.origin}: ${restore}`,
      );
    }
    try {
      verifyCheckpoint(checkpoint, this.publicKeyPem, { origin: this.origin });
    } catch {
      throw new Error(
        `The Log's checkpoints are not signed with the key in ${join(this.dataDir, LOG_KEY_FILE)} (the checkpoint of ${checkpoint.size} Changes does not verify with it): ${restore}`,
      );
    }
  }

  /**
   * Asks for a checkpoint once `everyChanges` Changes are not covered by one, or arms the time
   * bound. By seq, not by event: the Changes of one published batch past the count, and those
   * committed before a checkpoint read the Log's head, are covered by it; counting them again
   * made a second checkpoint right after the first (~1.8 signatures per `everyChanges` at
   * 100,000 Changes/s instead of one).
   */
  private count(): void {
    if (this.due || this.covered === undefined || this.seen <= this.covered) return;
    if (this.seen - this.covered >= this.options.everyChanges) {
      this.due = true;
      this.checkpointSoon();
    } else this.timer ??= setTimeout(() => this.checkpointSoon(), this.options.everyMs).unref();
  }

  private checkpointSoon(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    this.checkpoint().catch((err: unknown) => this.logger.error({ err }, "signing a log checkpoint failed"));
  }

  /**
   * Signs a checkpoint of the Log as it is now (none when nothing new since the last one). One
   * asked for while another is being signed follows it: that one read the Log's head before the
   * call, and may not cover what committed since (a hub's last checkpoint before it stops must).
   */
  checkpoint(): Promise<Checkpoint | undefined> {
    if (this.signing === undefined) {
      this.signing = this.sign().finally(() => (this.signing = undefined));
      return this.signing;
    }
    this.next ??= this.signing
      .catch(() => undefined)
      .then(() => {
        this.next = undefined;
        return this.checkpoint();
      });
    return this.next;
  }

  private async sign(): Promise<Checkpoint | undefined> {
    let head: LogHead;
    try {
      head = await this.store.logHead();
    } finally {
      this.due = false;
    }
    // What committed after this read counts towards the next checkpoint.
    this.covered = Math.max(this.covered ?? 0, head.size);
    this.count();
    const latest = await this.store.latestCheckpoint();
    if (head.size === 0 || (latest && latest.size >= head.size)) return latest;
    // Replicas sign with one key under one id: one started with identity files of its own signs nothing.
    if (latest) this.checkOwn(latest);
    // The Log's now, not the wall clock's: after the clock stepped back, a checkpoint stamped by
    // it would say the tree was signed before the Changes it covers were made, and before the
    // checkpoint it follows.
    const time = Math.max(this.clock.logNow().getTime(), latest ? Date.parse(latest.time) : 0);
    const checkpoint = await signCheckpointAsync(
      {
        origin: this.origin,
        size: head.size,
        root: hashToHex(head.root),
        time: new Date(time).toISOString(),
      },
      this.privateKey,
    );
    await this.store.addCheckpoint(checkpoint);
    return checkpoint;
  }

  /** RFC 9162 §2.1.3: the inclusion proof of Change `seq` in the tree of `size` leaves. */
  async inclusion(seq: number, size?: number): Promise<InclusionProof> {
    const { proofs, ...tree } = await this.inclusions([seq], size, "/query/seq");
    const [one] = proofs;
    if (!one) throw new NotFoundError(`Change ${seq} is not in the Log`);
    return {
      seq,
      size: tree.size,
      leaf: one.leaf,
      root: tree.root,
      proof: one.proof,
      ...(tree.checkpoint && { checkpoint: tree.checkpoint }),
    };
  }

  /**
   * The inclusion proofs of several Changes in one tree, read together (one transaction of the
   * store for all their subtrees): what `things export --thing` asks for, instead of a request per
   * Change. `pointer` names the query parameter a bad seq is reported against.
   */
  async inclusions(
    seqs: readonly number[],
    size?: number,
    pointer = "/query/seqs",
  ): Promise<InclusionProofs> {
    const head = await this.store.logHead();
    const treeSize = size ?? (await this.store.latestCheckpoint())?.size ?? head.size;
    const bad = seqs.find((seq) => !Number.isSafeInteger(seq) || seq < 1);
    if (bad !== undefined) {
      throw new ValidationError(`seq ${bad} is not a whole number from 1`, [
        { pointer, message: "must be >= 1" },
      ]);
    }
    if (treeSize > head.size) {
      throw new ValidationError(`size ${treeSize} is past the end of the Log (${head.size} Changes)`, [
        { pointer: "/query/size", message: `must be at most ${head.size}` },
      ]);
    }
    const past = seqs.find((seq) => seq > treeSize);
    if (past !== undefined) {
      const holds = treeSize === 0 ? "holds no Changes yet" : `holds seqs 1..${treeSize}`;
      throw new ValidationError(`seq ${past} is not in a tree of ${treeSize} Changes: it ${holds}`, [
        { pointer, message: `must be at most ${treeSize}` },
      ]);
    }
    const checkpoint = (await this.store.checkpoints({ after: treeSize - 1, limit: 1 }))[0];
    // The root is known without hashing when a checkpoint or the head has exactly that size.
    const knownRoot =
      checkpoint?.size === treeSize
        ? hashFromHex(checkpoint.root)
        : treeSize === head.size
          ? head.root
          : undefined;
    const paths = seqs.map((seq) => inclusionProofRanges(seq - 1, treeSize));
    const what = `The inclusion proof${seqs.length === 1 ? "" : "s"} of Change${seqs.length === 1 ? "" : "s"} ${seqs.join(", ")} in the tree of ${treeSize} Changes`;
    const hashes = await this.store
      .subtreeHashes([
        ...(knownRoot ? [] : [[0, treeSize] as const]),
        ...seqs.flatMap((seq, i) => [[seq - 1, seq] as const, ...(paths[i] ?? [])]),
      ])
      .catch(unworkable(what));
    const root = knownRoot ?? hashes.shift();
    if (!root) throw new NotFoundError(`the Log has no tree of ${treeSize} Changes`);
    const proofsOf = (from: readonly Uint8Array[]) => {
      let at = 0;
      return seqs.map((seq, i) => {
        const length = (paths[i]?.length ?? 0) + 1;
        const [leaf, ...proof] = from.slice(at, (at += length));
        if (!leaf) throw new NotFoundError(`Change ${seq} is not in the Log`);
        return { seq, leaf, proof };
      });
    };
    let proofs = proofsOf(hashes);
    // Against a signed (or the current) root, each proof is checked before it goes out: the
    // subtrees stored for speed are derived data, and a damaged one would make a proof fail
    // that the Log itself (its leaves, its checkpoints) still proves. Those are worked out from
    // the leaves again, and the damage is logged.
    const unproven = knownRoot
      ? proofs.filter((p) => !verifyInclusion(p.leaf, p.seq - 1, treeSize, p.proof, knownRoot))
      : [];
    if (knownRoot && unproven.length > 0) {
      proofs = proofsOf(
        await this.store
          .subtreeHashes(
            seqs.flatMap((seq, i) => [[seq - 1, seq] as const, ...(paths[i] ?? [])]),
            { fromLeaves: true },
          )
          .catch(unworkable(what)),
      );
      await this.logDamage(
        unproven.map((p) => p.seq),
        proofs.filter((p) => !verifyInclusion(p.leaf, p.seq - 1, treeSize, p.proof, knownRoot)),
        treeSize,
      );
    }
    return {
      size: treeSize,
      root: hashToHex(root),
      proofs: proofs.map((p) => ({ seq: p.seq, leaf: hashToHex(p.leaf), proof: p.proof.map(hashToHex) })),
      ...(checkpoint?.size === treeSize && { checkpoint }),
    };
  }

  /**
   * Says what was found when proofs from the stored subtrees did not lead to the signed root:
   * those that do once worked out from the leaves had a damaged stored subtree on their path
   * (derived data); those that still do not have an altered leaf hash, or Change, on theirs. Of
   * those, a proof whose own recorded leaf is not its Change's hash names that Change.
   */
  private async logDamage(
    unproven: readonly number[],
    still: ReadonlyArray<{ seq: number; leaf: Uint8Array }>,
    size: number,
  ): Promise<void> {
    const leafAltered = new Set(still.map((p) => p.seq));
    const mended = unproven.filter((seq) => !leafAltered.has(seq));
    if (mended.length > 0) {
      this.logger.error(
        { seqs: mended, size },
        "stored Merkle subtrees of the Log are damaged: these inclusion proofs were worked out from the leaves instead (restore the database from a backup)",
      );
    }
    const advice = "(`things verify` names the Change; restore the database from a backup)";
    for (const { seq, leaf } of still.slice(0, MAX_DAMAGE_LINES)) {
      const change = await this.store.getChange(seq);
      const own = change !== undefined && hashToHex(changeLeafHash(change)) !== hashToHex(leaf);
      this.logger.error(
        { seqs: [seq], size },
        `the inclusion proof of Change ${seq} does not lead to the root signed at size ${size}, even worked out from the leaves: ` +
          (own
            ? `the recorded leaf hash of Change ${seq} is not the hash of the Change the database holds, so a leaf hash was altered outside the hub `
            : "a leaf hash or a Change on its path was altered in the database outside the hub ") +
          advice,
      );
    }
    if (still.length > MAX_DAMAGE_LINES) {
      this.logger.error(
        { seqs: still.slice(MAX_DAMAGE_LINES).map((p) => p.seq), size },
        `the inclusion proofs of ${still.length - MAX_DAMAGE_LINES} more Changes do not lead to the root signed at size ${size} either ${advice}`,
      );
    }
  }

  /** RFC 9162 §2.1.4: the consistency proof between the trees of `from` and `to` leaves. */
  async consistency(from: number, to: number): Promise<ConsistencyProof> {
    const head = await this.store.logHead();
    if (!Number.isSafeInteger(from) || from < 1 || !Number.isSafeInteger(to) || from > to) {
      throw new ValidationError(`from (${from}) must be a whole number from 1 and at most to (${to})`, [
        { pointer: "/query/from", message: "must be >= 1 and <= to" },
      ]);
    }
    if (to > head.size) {
      throw new ValidationError(`to (${to}) is past the end of the Log (${head.size} Changes)`, [
        { pointer: "/query/to", message: `must be at most ${head.size}` },
      ]);
    }
    const [fromRoot, toRoot, ...proof] = await this.store
      .subtreeHashes([[0, from], [0, to], ...consistencyProofRanges(from, to)])
      .catch(unworkable(`The consistency proof between the trees of ${from} and ${to} Changes`));
    if (!fromRoot || !toRoot) throw new NotFoundError("The Log has no such trees");
    return {
      from,
      to,
      fromRoot: hashToHex(fromRoot),
      toRoot: hashToHex(toRoot),
      proof: proof.map(hashToHex),
    };
  }

  /** Signs a last checkpoint, so that everything committed before a stop is covered. */
  async close(): Promise<void> {
    this.unsubscribe();
    clearTimeout(this.timer);
    try {
      await this.checkpoint();
    } catch (err) {
      // A store that takes no write (its database away, its lock lost) must not keep the hub
      // from stopping: the next checkpoint signed covers these Changes.
      if (!(err instanceof UnavailableError)) throw err;
      this.logger.warn({ err }, "the last log checkpoint before stopping could not be stored");
    }
  }
}
