// The directory's sweep of expired Thing Descriptions (TD `expires`), every `expirySweepMs`;
// replicas of one hub run it one at a time (hub.ts).
import type { Logger } from "pino";
import type { Directory } from "./directory.js";

export class ExpirySweep {
  private timer: NodeJS.Timeout | undefined;
  /** The sweep in progress, if any. */
  private sweeping: Promise<void> | undefined;
  private stopped = true;

  constructor(
    private readonly directory: Pick<Directory, "sweepExpired">,
    private readonly everyMs: number,
    private readonly logger: Logger,
  ) {}

  /** Sweeps every `everyMs` from now on, until `stop`. */
  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.later();
  }

  /** No sweep after this; resolves once the one in progress is done. */
  async stop(): Promise<void> {
    this.stopped = true;
    clearTimeout(this.timer);
    await this.sweeping;
  }

  private later(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.sweeping = this.sweep().finally(() => {
        this.sweeping = undefined;
        this.later();
      });
    }, this.everyMs);
    this.timer.unref();
  }

  private async sweep(): Promise<void> {
    try {
      const n = await this.directory.sweepExpired();
      if (n > 0) this.logger.info({ removed: n }, "dropped expired Thing Descriptions");
    } catch (err) {
      this.logger.error({ err }, "expiry sweep failed");
    }
  }
}
