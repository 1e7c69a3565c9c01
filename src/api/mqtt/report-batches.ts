// Device reports grouped so that many share one ingest call and one group commit: the reports
// that arrive in one turn of the event loop for one Thing (and one publisher) go to `ingest`
// together, and while they commit the next ones wait and then go together, so that a Thing's
// reports are recorded in arrival order. Each report's promise settles after its Change committed.
import { HyperthingsError, NotFoundError, ValidationError, type Cause } from "../../core/index.js";
import type { Report } from "../../hub/index.js";

export type IngestReports = (thing: string, reports: Report[], cause: Cause) => Promise<unknown>;

/** Reports in one ingest call at most: bounds one transaction's share of a single Thing. */
const MAX_REPORTS_PER_CALL = 5_000;

interface Waiting {
  readonly report: Report;
  /** Tells the device why its report changed nothing. */
  readonly refuse: (error: unknown) => void;
  readonly resolve: () => void;
  readonly reject: (error: unknown) => void;
}

interface Lane {
  readonly key: string;
  readonly thing: string;
  readonly cause: Cause;
  waiting: Waiting[];
  /** A call of this lane is committing; the next waits for it (arrival order). */
  busy: boolean;
  /** Listed to start at the next flush. */
  listed: boolean;
}

export class ReportBatches {
  readonly #ingest: IngestReports;
  readonly #lanes = new Map<string, Lane>();
  #ready: Lane[] = [];
  #scheduled = false;

  constructor(ingest: IngestReports) {
    this.#ingest = ingest;
  }

  /**
   * Queues one report. Resolves once its Change is committed, or once it was refused for a reason
   * that is the device's (then `refuse` was called); rejects, after `refuse`, when the hub could
   * not take it (a full queue, a failing disk), so that it is not acknowledged.
   */
  take(thing: string, actor: string, report: Report, refuse: (error: unknown) => void): Promise<void> {
    const key = `${thing}\u0000${actor}`;
    let lane = this.#lanes.get(key);
    if (lane === undefined) {
      lane = { key, thing, cause: { actor, via: "mqtt" }, waiting: [], busy: false, listed: false };
      this.#lanes.set(key, lane);
    }
    const current = lane;
    return new Promise<void>((resolve, reject) => {
      current.waiting.push({ report, refuse, resolve, reject });
      if (!current.busy && !current.listed) {
        current.listed = true;
        this.#ready.push(current);
        if (!this.#scheduled) {
          this.#scheduled = true;
          // After the poll phase: every message read from the sockets in this turn joins.
          setImmediate(() => this.#flush());
        }
      }
    });
  }

  #flush(): void {
    this.#scheduled = false;
    const lanes = this.#ready;
    this.#ready = [];
    for (const lane of lanes) {
      lane.listed = false;
      void this.#run(lane);
    }
  }

  async #run(lane: Lane): Promise<void> {
    lane.busy = true;
    let batch: Waiting[] = [];
    try {
      while (lane.waiting.length > 0) {
        batch = lane.waiting.slice(0, MAX_REPORTS_PER_CALL);
        lane.waiting = lane.waiting.slice(batch.length);
        await this.#commit(lane, batch);
        batch = [];
      }
    } catch (error) {
      // Only a bug gets here (#commit settles what ingest refuses): nothing may wait forever.
      for (const waiting of [...batch, ...lane.waiting]) waiting.reject(error);
      lane.waiting = [];
    } finally {
      lane.busy = false;
      this.#lanes.delete(lane.key);
    }
  }

  async #commit(lane: Lane, batch: Waiting[]): Promise<void> {
    let rest = batch;
    while (rest.length > 0) {
      try {
        await this.#ingest(
          lane.thing,
          rest.map((w) => w.report),
          lane.cause,
        );
        for (const waiting of rest) waiting.resolve();
        return;
      } catch (error) {
        if (!isDevicesFault(error) || error instanceof NotFoundError || rest.length === 1) {
          for (const waiting of rest) settle(waiting, error);
          return;
        }
        // Ingest checks every report before it appends any: take out the one it names, tell its
        // device as if it had come alone, and commit the others.
        const bad = badIndex(error, rest.length);
        if (bad === undefined) {
          for (const waiting of rest) await this.#commit(lane, [waiting]);
          return;
        }
        const waiting = rest[bad];
        if (waiting !== undefined) settle(waiting, alone(error));
        rest = [...rest.slice(0, bad), ...rest.slice(bad + 1)];
      }
    }
  }
}

function isDevicesFault(error: unknown): error is HyperthingsError {
  return error instanceof HyperthingsError && error.status < 500;
}

function settle(waiting: Waiting, error: unknown): void {
  waiting.refuse(error);
  // The device's fault is answered on its errors topic and acknowledged; anything else is not
  // acknowledged, so that the device (or the broker) sends it again.
  if (isDevicesFault(error)) waiting.resolve();
  else waiting.reject(error);
}

/** Which report of a batch a ValidationError is about: its pointers start with `/{index}`. */
function badIndex(error: HyperthingsError, size: number): number | undefined {
  if (!(error instanceof ValidationError)) return undefined;
  const match = /^\/(\d+)(?:\/|$)/.exec(error.errors[0]?.pointer ?? "");
  const index = match === null ? Number.NaN : Number(match[1]);
  return Number.isInteger(index) && index < size ? index : undefined;
}

/** The error as the report alone would have got it: pointers at `/0`. */
function alone(error: HyperthingsError): HyperthingsError {
  if (!(error instanceof ValidationError)) return error;
  return new ValidationError(
    error.message,
    error.errors.map((e) => ({ ...e, pointer: e.pointer.replace(/^\/\d+/, "/0") })),
  );
}
