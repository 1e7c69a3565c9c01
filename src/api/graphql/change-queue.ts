// A bounded queue between the hub's change stream and one subscription's socket: the bus hands
// Changes over synchronously and never waits; the socket takes them at its own pace. A queue that
// fills up means a socket that does not keep up: it overflows once, and the caller closes it.

/** An async iterator over pushed values, holding at most `capacity` of them. */
export class BoundedQueue<T> implements AsyncIterableIterator<T> {
  private readonly items: T[] = [];
  private head = 0;
  private waiting: ((result: IteratorResult<T>) => void) | undefined;
  private drained: (() => void) | undefined;
  private done = false;
  /** No more pushes: ends once what is queued has been taken. */
  private finishing = false;

  constructor(
    private readonly capacity: number,
    /** Called once, when a push finds the queue full; the queue then ends. */
    private readonly onOverflow: () => void,
    /** Called once, when the consumer stops (return) or the queue ends. */
    private readonly onEnd: () => void,
  ) {}

  get size(): number {
    return this.items.length - this.head;
  }

  push(item: T): void {
    if (this.done || this.finishing) return;
    const waiting = this.waiting;
    if (waiting) {
      this.waiting = undefined;
      waiting({ value: item, done: false });
      return;
    }
    if (this.size >= this.capacity) {
      this.onOverflow();
      this.end();
      return;
    }
    this.items.push(item);
  }

  /** Resolves when the queue holds at most `level` items (for pacing a replay). */
  below(level: number): Promise<void> {
    if (this.size <= level || this.done) return Promise.resolve();
    return new Promise((resolve) => {
      this.drained = () => {
        if (this.size <= level || this.done) {
          this.drained = undefined;
          resolve();
        }
      };
    });
  }

  next(): Promise<IteratorResult<T>> {
    if (this.size > 0) {
      const value = this.items[this.head] as T;
      this.head++;
      if (this.head > 1024 && this.head * 2 > this.items.length) {
        this.items.splice(0, this.head);
        this.head = 0;
      }
      this.drained?.();
      if (this.finishing && this.size === 0) this.end();
      return Promise.resolve({ value, done: false });
    }
    if (this.done) return Promise.resolve({ value: undefined, done: true });
    return new Promise((resolve) => {
      this.waiting = resolve;
    });
  }

  return(): Promise<IteratorResult<T>> {
    this.end();
    return Promise.resolve({ value: undefined, done: true });
  }

  throw(error: unknown): Promise<IteratorResult<T>> {
    this.end();
    return Promise.reject(error instanceof Error ? error : new Error(String(error)));
  }

  /** Ends the stream once the consumer has taken what is queued (nothing more is taken). */
  finish(): void {
    if (this.done || this.finishing) return;
    this.finishing = true;
    if (this.size === 0) this.end();
  }

  /** Ends the stream: a waiting consumer finishes, queued items are dropped. */
  end(): void {
    if (this.done) return;
    this.done = true;
    this.items.length = 0;
    this.head = 0;
    this.waiting?.({ value: undefined, done: true });
    this.waiting = undefined;
    this.drained?.();
    this.onEnd();
  }

  [Symbol.asyncIterator](): AsyncIterableIterator<T> {
    return this;
  }
}
