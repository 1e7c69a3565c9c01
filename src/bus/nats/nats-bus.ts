// The NATS JetStream Bus: the hub's own subscribers get each Change locally (an InProcessBus), and
// every Change also goes to a JetStream stream, in seq order, for other programs (docs/nats.md).
// Memory stays bounded: at most `window` publishes await their PubAck; when NATS is away or slow
// no Change is queued, only the first seq JetStream has not acknowledged, and the bus catches up
// from the Store once it can. As a replica (several hubs on one Log, docs/replicas.md) it also
// reads the stream, and hands every Change, its own and the other replicas', to its subscribers
// in seq order (SequencedDelivery).
import { jetstream, jetstreamManager, DeliverPolicy, DiscardPolicy, StorageType } from "@nats-io/jetstream";
import type { ConsumerMessages, JetStreamClient, JetStreamManager, StreamConfig } from "@nats-io/jetstream";
import { connect, type NatsConnection } from "@nats-io/transport-node";
import { parseHlc, type Change } from "../../core/index.js";
import type { Bus, BusStatus, ChangeHandler } from "../bus.js";
import { InProcessBus } from "../in-process/in-process-bus.js";
import { SequencedDelivery } from "../sequenced-delivery.js";
import { changeMessageId, changeSubject, seqOfMessageId } from "./subject.js";

/** What the bus logs through (a pino Logger is one). */
export interface BusLogger {
  info(details: object, message: string): void;
  warn(details: object, message: string): void;
  error(details: object, message: string): void;
}

export interface NatsBusOptions {
  /** The NATS servers (`nats://host:port`), already checked (parseNatsServers). */
  servers: readonly string[];
  /** The JetStream stream that holds the hub's Changes; created or updated at connect. */
  stream: string;
  /** Subjects are `<prefix>.changes.<thing>.<kind>`. */
  prefix: string;
  /** The stream's limits: how long a message is kept (ms) and the stream's bytes; 0: no limit. */
  maxAgeMs: number;
  maxBytes: number;
  /**
   * The committed Changes after `afterSeq`, oldest first, at most `limit` of them: how the bus
   * catches up with what JetStream has not acknowledged (start-hub gives `store.changesAfter`).
   */
  replay(afterSeq: number, limit: number): Promise<Change[]>;
  /** The Log's last seq (what the bus is behind of at start). */
  lastSeq(): Promise<number>;
  logger: BusLogger;
  /** Publishes awaiting their PubAck at once; past it the bus catches up from the Store instead. */
  window?: number;
  /** How long a PubAck may take before the publish counts as failed, ms. */
  ackTimeoutMs?: number;
  /** The first delay before connecting again or catching up after a failure, ms (doubling, to 30 s). */
  retryMs?: number;
  /** JetStream's deduplication window (the same Msg-Id within it is stored once), ms. */
  duplicateWindowMs?: number;
  /**
   * One of several hub replicas appending to one Log: the bus reads the stream, and delivers the
   * other replicas' Changes to local subscribers too, all in seq order (call `begin` before the
   * hub's parts read the Store).
   */
  replica?: boolean;
  /** A replica reads the Log's last seq this often, ms: Changes a replica committed but never published reach the others. */
  headPollMs?: number;
}

export const NATS_BUS_DEFAULTS = {
  window: 256,
  ackTimeoutMs: 5_000,
  retryMs: 1_000,
  duplicateWindowMs: 2 * 60_000,
  headPollMs: 2_000,
} as const;

/**
 * JetStream refused a publish because the stream's last message is not the one it expected
 * (wrong last msg ID, wrong last sequence): with replicas, another one published meanwhile.
 */
const ORDER_REFUSALS = new Set([10070, 10071, 10164]);

const MAX_RETRY_MS = 30_000;
/** Messages of other publishers looked back over for this hub's last Change at start. */
const SCAN_BACK = 64;

export class NatsBus implements Bus {
  private readonly local: InProcessBus;
  private readonly window: number;
  private readonly ackTimeoutMs: number;
  private readonly retryMs: number;
  private readonly server: string;
  private hubId: string | undefined;
  private nc: NatsConnection | undefined;
  private js: JetStreamClient | undefined;
  private connected = false;
  private closed = false;
  /** Every seq up to this one is in the stream (PubAck received, or found there at catch-up). */
  private acked = 0;
  /** The next seq to send; all below it are acknowledged or in `pending`. */
  private nextSeq = 1;
  /** The highest seq the hub has committed (published to this bus, or the Log's last at start). */
  private latest = 0;
  /** Seqs sent and awaiting their PubAck (true once acknowledged but behind an older one), in order. */
  private readonly pending = new Map<number, boolean>();
  /** Sending Changes as they are published (true) or catching up from the Store (false). */
  private live = false;
  /** A publish failed: once none is pending, the bus reads where the stream is and catches up. */
  private resync = true;
  /** What the next publish expects of the stream (the first after a resync names its last seq). */
  private expectNext: { lastSequence: number } | undefined;
  private working: Promise<void> | undefined;
  private retryTimer: NodeJS.Timeout | undefined;
  private retryDelay: number;
  private problem: { since: string; reason: string } | undefined;
  private readonly waiters: { seq: number; resolve: () => void }[] = [];
  /** A replica's delivery in seq order; undefined for a hub alone on its Log. */
  private readonly sequenced: SequencedDelivery | undefined;
  private consuming: Promise<void> | undefined;
  private consumer: ConsumerMessages | undefined;
  private headTimer: NodeJS.Timeout | undefined;
  /** A read of the Log's head failed: said once, until one succeeds. */
  private headFailing = false;

  constructor(
    private readonly options: NatsBusOptions,
    onSubscriberError: (error: unknown) => void = () => undefined,
  ) {
    this.local = new InProcessBus(onSubscriberError);
    this.window = options.window ?? NATS_BUS_DEFAULTS.window;
    this.ackTimeoutMs = options.ackTimeoutMs ?? NATS_BUS_DEFAULTS.ackTimeoutMs;
    this.retryMs = options.retryMs ?? NATS_BUS_DEFAULTS.retryMs;
    this.retryDelay = this.retryMs;
    this.sequenced =
      options.replica === true
        ? new SequencedDelivery({
            replay: (after, limit) => options.replay(after, limit),
            deliver: (change) => this.deliver(change),
            onError: (error) =>
              options.logger.warn(
                { err: error },
                `reading the Log's Changes for this replica failed (${reasonOf(error)}); retrying`,
              ),
            retryMs: this.retryMs,
          })
        : undefined;
    // Said in logs and /health: without the credentials a URL may hold.
    this.server = options.servers
      .map((server) => {
        const url = new URL(server);
        return `${url.protocol}//${url.host}`;
      })
      .join(",");
  }

  /**
   * Starts publishing to JetStream as `hubId` (the Msg-Id names it): connects in the background,
   * retrying while NATS is unreachable, and catches up from the last Change the stream holds of
   * this hub. Returns after the first attempt to connect; `status()` tells how it goes.
   */
  async start(hubId: string): Promise<void> {
    this.hubId = hubId;
    this.latest = Math.max(this.latest, await this.options.lastSeq());
    // The first attempt is awaited (bounded by the connect timeout), so that what the hub says
    // at start, connected or unreachable, is so.
    await new Promise<void>((firstAttempt) => void this.connectLoop(firstAttempt));
  }

  /**
   * A replica: from now on, subscribers get every Change after the Log's current last seq, in
   * order, whoever committed it. Called before the hub's parts read the Store; nothing for a hub
   * alone on its Log.
   */
  async begin(): Promise<void> {
    if (this.sequenced === undefined) return;
    this.sequenced.begin(await this.options.lastSeq());
    const poll = this.options.headPollMs ?? NATS_BUS_DEFAULTS.headPollMs;
    this.headTimer = setInterval(() => this.readHead(), poll);
    this.headTimer.unref();
  }

  publish(changes: readonly Change[]): void {
    if (this.sequenced !== undefined) {
      for (const change of changes) this.sequenced.accept(change);
      return;
    }
    this.local.publish(changes);
    this.forward(changes);
  }

  /** A replica's Change, in seq order: to the local subscribers, and on to JetStream. */
  private deliver(change: Change): void {
    this.local.publish([change]);
    this.forward([change]);
  }

  /** Sends committed Changes to JetStream as they come, or leaves them to the catch-up. */
  private forward(changes: readonly Change[]): void {
    for (const change of changes) {
      if (change.seq > this.latest) this.latest = change.seq;
      if (this.hubId === undefined || change.seq < this.nextSeq) continue;
      if (this.live && this.connected && change.seq === this.nextSeq && this.pending.size < this.window)
        this.send(change);
      else this.live = false;
    }
    if (!this.live) this.wake();
  }

  subscribe(handler: ChangeHandler): () => void {
    return this.local.subscribe(handler);
  }

  status(): BusStatus {
    return {
      kind: "nats",
      server: this.server,
      stream: this.options.stream,
      subjects: `${this.options.prefix}.changes.>`,
      connected: this.connected,
      lastAcknowledged: this.acked,
      lastCommitted: this.latest,
      lag: Math.max(0, this.latest - this.acked),
      inFlight: this.pending.size,
      window: this.window,
      catchingUp: !this.live,
      ...(this.sequenced && { delivered: this.sequenced.position }),
      ...(this.problem && { problem: this.problem }),
    };
  }

  /** Resolves once JetStream has acknowledged every Change up to `seq` (or the bus is closed). */
  acknowledged(seq: number): Promise<void> {
    if (this.acked >= seq || this.closed) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ seq, resolve }));
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.retryTimer);
    clearInterval(this.headTimer);
    this.sequenced?.close();
    await this.consumer?.close().catch(() => undefined);
    await this.consuming;
    await this.local.close();
    await this.working?.catch(() => undefined);
    // What is in flight gets its PubAck first (a Change the hub stops on is not left half-sent);
    // what is not acknowledged is caught up at the next start anyway.
    const nc = this.nc;
    this.nc = undefined;
    const wasConnected = this.connected;
    this.connected = false;
    // Draining waits for the server: not while it is away, and not for longer than a PubAck may take.
    if (nc !== undefined) {
      let timer: NodeJS.Timeout | undefined;
      const bound = new Promise<void>((resolve) => (timer = setTimeout(resolve, this.ackTimeoutMs)));
      await Promise.race([wasConnected ? nc.drain().catch(() => undefined) : Promise.resolve(), bound]);
      clearTimeout(timer);
      if (!nc.isClosed()) await nc.close().catch(() => undefined);
    }
    for (const waiter of this.waiters.splice(0)) waiter.resolve();
  }

  private async connectLoop(firstAttempt: () => void): Promise<void> {
    let told = false;
    while (!this.closed) {
      try {
        const nc = await connect({
          servers: [...this.options.servers],
          name: `hyperthings ${this.hubId ?? ""}`.trim(),
          maxReconnectAttempts: -1,
          reconnectTimeWait: this.retryMs,
          timeout: 5_000,
        });
        if (this.closed) {
          firstAttempt();
          await nc.close();
          return;
        }
        this.nc = nc;
        this.js = jetstream(nc, { timeout: this.ackTimeoutMs });
        this.connected = true;
        this.problem = undefined;
        this.options.logger.info(
          { server: this.server, stream: this.options.stream },
          `connected to NATS at ${this.server}: publishing Changes to JetStream stream ${this.options.stream} as ${this.options.prefix}.changes.>`,
        );
        void this.followStatus(nc);
        this.wake();
        firstAttempt();
        return;
      } catch (error) {
        const reason = reasonOf(error);
        this.setProblem(`NATS at ${this.server} is unreachable: ${reason}`);
        if (!told) {
          told = true;
          this.options.logger.warn(
            { server: this.server, err: error },
            `NATS at ${this.server} is unreachable (${reason}): the hub runs without it, keeps trying, and publishes its Changes to JetStream once it connects`,
          );
        }
        firstAttempt();
        await new Promise<void>((resolve) => {
          this.retryTimer = setTimeout(() => {
            this.retryTimer = undefined;
            resolve();
          }, this.nextRetryDelay());
        });
      }
    }
    firstAttempt();
  }

  private async followStatus(nc: NatsConnection): Promise<void> {
    for await (const event of nc.status()) {
      if (this.closed) return;
      if (event.type === "disconnect") {
        this.connected = false;
        this.setProblem(`disconnected from NATS at ${this.server}`);
        this.options.logger.warn(
          { server: this.server },
          `disconnected from NATS at ${this.server}; reconnecting`,
        );
      } else if (event.type === "reconnect") {
        this.connected = true;
        this.problem = undefined;
        this.options.logger.info({ server: this.server }, `reconnected to NATS at ${this.server}`);
        this.retryDelay = this.retryMs;
        this.wake();
      }
    }
  }

  /** Sends one Change; its PubAck moves `acked`, its failure makes the bus resync. */
  private send(change: Change): void {
    const js = this.js;
    const hubId = this.hubId;
    if (js === undefined || hubId === undefined) return;
    const seq = change.seq;
    this.nextSeq = seq + 1;
    this.pending.set(seq, false);
    // The stream takes this Change only right after the previous one: a publish lost on a cut
    // connection cannot let a later one in before it (the first after a resync names the
    // stream's last sequence instead, as the previous message may have aged out).
    const expect = this.expectNext ?? { lastMsgID: changeMessageId(hubId, seq - 1) };
    this.expectNext = undefined;
    js.publish(changeSubject(this.options.prefix, change), JSON.stringify(change), {
      msgID: changeMessageId(hubId, seq),
      expect,
      timeout: this.ackTimeoutMs,
    }).then(
      () => this.settle(seq, undefined),
      (error: unknown) => this.settle(seq, error),
    );
  }

  private settle(seq: number, error: unknown): void {
    if (!this.pending.has(seq)) return;
    if (error === undefined) {
      this.pending.set(seq, true);
      // After a failure, the resync reads what the stream holds instead.
      if (!this.resync) {
        for (const [first, done] of this.pending) {
          if (!done) break;
          this.pending.delete(first);
          this.acked = first;
        }
        this.retryDelay = this.retryMs;
        if (this.live && this.connected) this.problem = undefined;
        this.release();
      }
    } else {
      this.pending.delete(seq);
      if (this.sequenced !== undefined && ORDER_REFUSALS.has((error as { code?: number }).code ?? 0)) {
        // Another replica published first: no trouble, and no wait before reading where the stream is.
        this.resync = true;
        this.live = false;
        if ([...this.pending.values()].every((done) => done)) this.pending.clear();
        this.wake();
        return;
      }
      if (!this.resync) {
        const reason = reasonOf(error);
        this.setProblem(`JetStream did not take Change ${seq}: ${reason}`);
        this.options.logger.warn(
          { seq, err: error },
          `JetStream did not take Change ${seq} (${reason}): catching up from the Log once it can`,
        );
      }
      this.resync = true;
      this.live = false;
      // Not at once: a Change the server refuses every time (one past its max_payload) must not
      // have the bus read the stream and send it again in a loop.
      this.retryTimer ??= setTimeout(() => {
        this.retryTimer = undefined;
        this.wake();
      }, this.nextRetryDelay());
    }
    if (this.resync && [...this.pending.values()].every((done) => done)) this.pending.clear();
    this.wake();
  }

  private release(): void {
    for (let i = this.waiters.length - 1; i >= 0; i--) {
      const waiter = this.waiters[i];
      if (waiter !== undefined && waiter.seq <= this.acked) {
        this.waiters.splice(i, 1);
        waiter.resolve();
      }
    }
  }

  /** Starts what the bus has to do next, one thing at a time: a resync, or a page of catch-up. */
  private wake(): void {
    if (this.closed || this.working !== undefined || this.retryTimer !== undefined) return;
    if (this.js === undefined || !this.connected || this.live) return;
    if (this.resync) {
      if (this.pending.size > 0) return;
      this.working = this.readStream();
    } else {
      if (this.pending.size >= this.window) return;
      this.working = this.catchUp();
    }
    this.working
      .catch((error: unknown) => {
        const reason = reasonOf(error);
        this.setProblem(`catching up with JetStream failed: ${reason}`);
        this.options.logger.warn({ err: error }, `catching up with JetStream failed (${reason}); retrying`);
        this.resync = true;
        this.retryTimer = setTimeout(() => {
          this.retryTimer = undefined;
          this.wake();
        }, this.nextRetryDelay());
      })
      .finally(() => {
        this.working = undefined;
        this.wake();
      });
  }

  /** Makes sure the stream exists with this bus's subjects and limits, and finds this hub's last Change in it. */
  private async readStream(): Promise<void> {
    const nc = this.nc;
    const hubId = this.hubId;
    if (nc === undefined || hubId === undefined) return;
    const jsm = await jetstreamManager(nc, { timeout: this.ackTimeoutMs });
    const lastSeq = await this.ensureStream(jsm);
    if (this.sequenced !== undefined) this.consuming ??= this.consume();
    const found = lastSeq > 0 ? await this.lastOfHub(jsm, lastSeq, hubId) : undefined;
    // Without a Change of this hub in the stream (a new stream, or its messages aged out), the
    // bus goes on from what it knows was acknowledged; at start, from the first Change the
    // stream would still keep (its max age), not the whole Log again.
    let from = found ?? this.acked;
    if (found === undefined && this.acked === 0 && this.options.maxAgeMs > 0 && this.latest > 0) {
      const first = await this.firstChangeSince(Date.now() - this.options.maxAgeMs);
      if (first > 1) {
        from = first - 1;
        const hours = Math.round((this.options.maxAgeMs / 3_600_000) * 10) / 10;
        this.options.logger.info(
          { stream: this.options.stream, from: first },
          `JetStream stream ${this.options.stream} holds none of this hub's Changes: publishing those of the stream's max age (${hours} h), from seq ${first}; the older ones are in the hub's Log (GET /changes)`,
        );
      }
    }
    if (found !== undefined && found < this.acked) {
      this.options.logger.warn(
        { stream: this.options.stream, found, acknowledged: this.acked },
        `JetStream stream ${this.options.stream} holds this hub's Changes only up to ${found} (purged or recreated?): publishing again from ${found + 1}`,
      );
    }
    this.acked = from;
    this.nextSeq = from + 1;
    this.expectNext = { lastSequence: lastSeq };
    this.resync = false;
    this.release();
    if (this.nextSeq > this.latest) this.live = true;
  }

  /**
   * This hub's last Change in the stream, looking back over a few messages of other publishers;
   * undefined when there is none there.
   */
  private async lastOfHub(
    jsm: JetStreamManager,
    lastSeq: number,
    hubId: string,
  ): Promise<number | undefined> {
    for (let seq = lastSeq; seq > 0 && seq > lastSeq - SCAN_BACK; seq--) {
      const message = await jsm.streams.getMessage(this.options.stream, { seq }).catch(() => null);
      if (message === null) return undefined;
      const found = seqOfMessageId(hubId, message.header.get("Nats-Msg-Id"));
      if (found !== undefined) return found;
      if (seq === lastSeq) {
        this.options.logger.warn(
          { stream: this.options.stream },
          `JetStream stream ${this.options.stream} ends with a message that is not this hub's: give each hub its own stream and prefix`,
        );
      }
    }
    return undefined;
  }

  /**
   * The first seq whose Change the hub stamped at `time` or later (its HLC's wall time), by
   * bisecting the Log: a read of one Change per step. `latest + 1` when there is none.
   */
  private async firstChangeSince(time: number): Promise<number> {
    let low = 1;
    let high = this.latest + 1;
    while (low < high) {
      const middle = Math.floor((low + high) / 2);
      const [change] = await this.options.replay(middle - 1, 1);
      if (change === undefined) {
        high = middle;
        continue;
      }
      let wall: number;
      try {
        wall = parseHlc(change.hlc).wall;
      } catch {
        wall = time;
      }
      if (wall >= time) high = middle;
      else low = middle + 1;
    }
    return low;
  }

  /**
   * A replica reads the stream from now on (an ordered consumer, which resumes by itself after a
   * reconnection): each of this hub's Changes in it goes to the subscribers in seq order; the
   * Log's head is read once it reads, so that what was published before is not waited for.
   */
  private consume(): Promise<void> {
    const js = this.js;
    const hubId = this.hubId;
    const sequenced = this.sequenced;
    if (js === undefined || hubId === undefined || sequenced === undefined) return Promise.resolve();
    const run = async () => {
      const consumer = await js.consumers.get(this.options.stream, {
        filter_subjects: `${this.options.prefix}.changes.>`,
        deliver_policy: DeliverPolicy.New,
      });
      const messages = await consumer.consume();
      if (this.closed) {
        await messages.close();
        return;
      }
      this.consumer = messages;
      this.readHead();
      for await (const message of messages) {
        const seq = seqOfMessageId(hubId, message.headers?.get("Nats-Msg-Id"));
        if (seq === undefined) continue;
        let change: Change;
        try {
          change = message.json<Change>();
        } catch {
          continue;
        }
        if (change.seq !== seq) continue;
        this.streamHolds(seq);
        sequenced.accept(change);
      }
    };
    return run()
      .catch((error: unknown) => {
        if (this.closed) return;
        const reason = reasonOf(error);
        this.options.logger.warn(
          { err: error },
          `reading the other replicas' Changes from JetStream stream ${this.options.stream} failed (${reason}); trying again`,
        );
      })
      .finally(() => {
        this.consumer = undefined;
        this.consuming = undefined;
      });
  }

  /**
   * The stream holds this hub's Changes up to `seq` (another replica published them): with nothing
   * of its own in flight, the bus goes on after it instead of sending them again.
   */
  private streamHolds(seq: number): void {
    if (seq < this.nextSeq || this.pending.size > 0 || this.working !== undefined || this.resync) return;
    this.acked = seq;
    this.nextSeq = seq + 1;
    this.expectNext = undefined;
    this.release();
  }

  /** A replica: the Log's last seq, so that Changes nobody published yet are read from the Store. */
  private readHead(): void {
    if (this.closed || this.sequenced === undefined) return;
    this.options.lastSeq().then(
      (seq) => {
        this.headFailing = false;
        this.sequenced?.committed(seq);
      },
      (error: unknown) => {
        if (this.headFailing) return;
        this.headFailing = true;
        this.options.logger.warn(
          { err: error },
          `reading the Log's head failed (${reasonOf(error)}); trying again`,
        );
      },
    );
    // A consumer that ended (the stream was deleted, say) starts again once connected.
    if (this.consuming === undefined && this.connected && !this.resync) this.consuming = this.consume();
  }

  /** Creates the stream, or updates its subjects and limits; answers its last sequence. */
  private async ensureStream(jsm: JetStreamManager): Promise<number> {
    const subject = `${this.options.prefix}.changes.>`;
    const limits: Partial<StreamConfig> = {
      max_age: this.options.maxAgeMs * 1_000_000,
      max_bytes: this.options.maxBytes === 0 ? -1 : this.options.maxBytes,
      duplicate_window: (this.options.duplicateWindowMs ?? NATS_BUS_DEFAULTS.duplicateWindowMs) * 1_000_000,
    };
    const info = await jsm.streams.info(this.options.stream).catch((error: unknown) => {
      if ((error as { code?: number }).code === 10059 || /not found/i.test(String(error))) return undefined;
      throw error;
    });
    if (info === undefined) {
      const created = await jsm.streams.add({
        name: this.options.stream,
        subjects: [subject],
        storage: StorageType.File,
        discard: DiscardPolicy.Old,
        ...limits,
      });
      return created.state.last_seq;
    }
    const subjects = info.config.subjects ?? [];
    const changed =
      !subjects.includes(subject) ||
      info.config.max_age !== limits.max_age ||
      info.config.max_bytes !== limits.max_bytes ||
      info.config.duplicate_window !== limits.duplicate_window;
    if (changed) {
      await jsm.streams.update(this.options.stream, {
        subjects: subjects.includes(subject) ? subjects : [...subjects, subject],
        ...limits,
      });
    }
    return info.state.last_seq;
  }

  /** Sends the next page of committed Changes JetStream lacks, as many as the window has room for. */
  private async catchUp(): Promise<void> {
    if (this.nextSeq > this.latest) {
      this.live = true;
      return;
    }
    const room = this.window - this.pending.size;
    const changes = await this.options.replay(this.nextSeq - 1, room);
    if (this.closed || this.resync || !this.connected) return;
    for (const change of changes) {
      if (change.seq !== this.nextSeq) continue;
      this.send(change);
    }
    if (changes.length === 0) this.latest = this.nextSeq - 1;
    // Caught up: what is published from here on is sent as it comes.
    if (this.nextSeq > this.latest) this.live = true;
  }

  private setProblem(reason: string): void {
    this.problem = { since: this.problem?.since ?? new Date().toISOString(), reason };
  }

  private nextRetryDelay(): number {
    const delay = this.retryDelay;
    this.retryDelay = Math.min(MAX_RETRY_MS, this.retryDelay * 2);
    return delay;
  }
}

function reasonOf(error: unknown): string {
  return error instanceof Error ? error.message : typeof error === "string" ? error : JSON.stringify(error);
}
