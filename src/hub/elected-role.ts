// Work that the replicas of one hub do one at a time (docs/replicas.md): the replica holding the
// store's role for it runs it; the others try to take the role every 2 s, and the first to try
// after the holder stops (or its session ends) takes it over.
import type { Logger } from "pino";
import type { HeldRole } from "../store/index.js";

/** How often a replica that does not run the work tries to take it over. */
export const ELECTION_MS = 2_000;

/** Whether this process runs the work now, and why not. */
export interface RoleStatus {
  /** `running` here, or `standby`: another replica runs it, and this one takes over when it stops. */
  readonly state: "running" | "standby";
  readonly reason?: string;
}

/** The work one replica does at a time. */
export interface ElectedWork<T> {
  /** The store's role (Store.holdRole) whose holder runs it. */
  readonly role: string;
  /** What it is, in a sentence: "the MQTT gateway". */
  readonly what: string;
  /** Why a replica waits while another holds the role. */
  readonly standby: string;
  /**
   * Starts it. `confirm` asks the store whether this process still holds the role, for work that
   * must not act on a stale belief (the MQTT gateway reconnecting under the hub's client id); when
   * it is not held (or the store does not answer), the work is stopped as when the role is lost.
   */
  start(confirm: () => Promise<boolean>): Promise<T>;
  /** Stops it, once what it took in is recorded: the role is given up only then. */
  stop(running: T): Promise<void>;
}

export class ElectedRole<T> {
  /** The work while this process runs it. */
  running: T | undefined;
  private role: HeldRole | undefined;
  private reason = "not elected yet";
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly work: ElectedWork<T>,
    private readonly holdRole: (role: string) => Promise<HeldRole | undefined>,
    private readonly logger: Logger,
    private readonly retryMs = ELECTION_MS,
  ) {}

  /** The first election: work that cannot start here stops the hub's start, as it would alone. */
  async start(): Promise<void> {
    await this.elect(true);
  }

  status(): RoleStatus {
    return this.running !== undefined ? { state: "running" } : { state: "standby", reason: this.reason };
  }

  private async elect(first = false): Promise<void> {
    if (this.closed) return;
    const { what } = this.work;
    let role: HeldRole | undefined;
    try {
      role = await this.holdRole(this.work.role);
    } catch (error) {
      this.reason = `the store could not say whether another replica runs ${what} (${(error as Error).message})`;
      this.later();
      return;
    }
    if (role === undefined) {
      this.reason = this.work.standby;
      this.later();
      return;
    }
    if (this.closed) return role.release();
    const held = role;
    try {
      this.running = await this.work.start(() => held.confirm());
    } catch (error) {
      role.release();
      if (first) throw error;
      this.reason = `${what} did not start here (${(error as Error).message})`;
      this.logger.error({ err: error }, `${what} did not start on this replica`);
      this.later();
      return;
    }
    this.role = role;
    // Closed while it started: nothing else will stop it.
    if (this.closed) return this.close();
    this.logger.info(`this replica runs ${what}`);
    void role.lost.then(async (why) => {
      const running = this.running;
      this.running = undefined;
      this.role = undefined;
      if (this.closed) return;
      this.reason = `this replica stopped running ${what}: ${why}`;
      this.logger.warn(this.reason);
      if (running !== undefined) await this.work.stop(running).catch((err: unknown) => this.failed(err));
      this.later();
    });
  }

  private failed(err: unknown): void {
    this.logger.error({ err }, `${this.work.what} did not stop cleanly on this replica`);
  }

  private later(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => void this.elect(), this.retryMs);
    this.timer.unref();
  }

  /** Stops the work if it runs here, then gives the role up (another replica takes it over). */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    const running = this.running;
    this.running = undefined;
    if (running !== undefined) await this.work.stop(running);
    this.role?.release();
  }
}
