// Work that the replicas of one hub do one at a time (docs/replicas.md): the replica holding the
// store's role for it runs it; the others try to take the role when its holder gives it up (a
// stop), and every 2 s (for a holder whose session ended unawares), and the first to try takes it.
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

/** The store's side of an election (Store.holdRole, Store.onRoleGivenUp). */
export interface Roles {
  holdRole(role: string): Promise<HeldRole | undefined>;
  onRoleGivenUp?(role: string, listener: () => void): Promise<() => void>;
}

export class ElectedRole<T> {
  /** The work while this process runs it. */
  running: T | undefined;
  private role: HeldRole | undefined;
  private reason = "not elected yet";
  private timer: NodeJS.Timeout | undefined;
  private closed = false;
  /** An election is under way; `again`: the role was given up meanwhile, so try once more at once. */
  private electing = false;
  private again = false;
  private unwatch: (() => void) | undefined;

  constructor(
    private readonly work: ElectedWork<T>,
    private readonly roles: Roles,
    private readonly logger: Logger,
    private readonly retryMs = ELECTION_MS,
  ) {}

  /** The first election: work that cannot start here stops the hub's start, as it would alone. */
  async start(): Promise<void> {
    // Told when the holder gives the role up (it stops): taken over then, not at the next try.
    if (this.roles.onRoleGivenUp !== undefined) {
      try {
        this.unwatch = await this.roles.onRoleGivenUp(this.work.role, () => this.wake());
      } catch (error) {
        this.logger.warn(
          { err: error },
          `this replica does not hear when another gives ${this.work.what} up: it tries to take it over every ${this.retryMs} ms`,
        );
      }
    }
    await this.elect(true);
  }

  /** The role was given up by its holder: try to take it now. */
  private wake(): void {
    if (this.closed || this.running !== undefined) return;
    if (this.electing) {
      this.again = true;
      return;
    }
    clearTimeout(this.timer);
    void this.elect();
  }

  status(): RoleStatus {
    return this.running !== undefined ? { state: "running" } : { state: "standby", reason: this.reason };
  }

  private async elect(first = false): Promise<void> {
    this.electing = true;
    try {
      await this.tryElect(first);
    } finally {
      this.electing = false;
    }
  }

  private async tryElect(first: boolean): Promise<void> {
    if (this.closed) return;
    const { what } = this.work;
    let role: HeldRole | undefined;
    try {
      role = await this.roles.holdRole(this.work.role);
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
      await role.release();
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
    const wait = this.again ? 0 : this.retryMs;
    this.again = false;
    this.timer = setTimeout(() => void this.elect(), wait);
    this.timer.unref();
  }

  /** Stops the work if it runs here, then gives the role up (another replica takes it over). */
  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    this.unwatch?.();
    const running = this.running;
    this.running = undefined;
    if (running !== undefined) await this.work.stop(running);
    // Given up on its session, which tells the replicas waiting for it: one takes it over at once.
    await this.role?.release();
  }
}
