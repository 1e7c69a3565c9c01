// Worker threads that hash the Log's entry lines (core's hashEntries) for `things verify`, while
// the main thread fetches the entries and feeds the hashes to the verifier in order. Node's
// hashing is synchronous, so another thread is how the verification gets a second core.
import { existsSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { Worker } from "node:worker_threads";
import type { HashedEntries } from "../core/index.js";

const WORKER = new URL("./log-entry-hasher-worker.js", import.meta.url);

interface Waiting {
  resolve: (hashed: HashedEntries) => void;
  reject: (error: Error) => void;
}

export class EntryHashers {
  readonly #workers: Worker[] = [];
  readonly #waiting = new Map<number, Waiting>();
  #next = 0;
  #ids = 0;
  #failed: Error | undefined;
  #closed = false;

  /** Whether the worker's code is there to run (not when running from TypeScript sources). */
  static available(): boolean {
    return WORKER.protocol === "file:" && existsSync(fileURLToPath(WORKER));
  }

  constructor(threads: number) {
    for (let i = 0; i < threads; i++) {
      const worker = new Worker(WORKER);
      worker.on("message", (message: { id: number; hashed: HashedEntries }) => {
        const waiting = this.#waiting.get(message.id);
        this.#waiting.delete(message.id);
        waiting?.resolve(message.hashed);
      });
      worker.on("error", (error) => this.#fail(error));
      worker.on("exit", (code) => {
        if (code !== 0) this.#fail(new Error(`a hashing thread stopped (exit code ${code})`));
      });
      this.#workers.push(worker);
    }
  }

  /**
   * The chunk's lines hashed (`hashEntries`), on the threads in turn. A copy of the chunk is sent,
   * so the caller may reuse it; answers come in the order asked when there is one thread.
   */
  hash(chunk: Uint8Array): Promise<HashedEntries> {
    if (this.#failed !== undefined) return Promise.reject(this.#failed);
    if (this.#closed) return Promise.reject(new Error("the hashing threads are closed"));
    const worker = this.#workers[this.#next++ % this.#workers.length];
    if (worker === undefined) return Promise.reject(new Error("no hashing thread"));
    const id = this.#ids++;
    // A copy with an ArrayBuffer of its own, handed over: a Buffer's slice() is a view (handing
    // its ArrayBuffer over would empty the caller's Buffer), and a small Buffer's ArrayBuffer is
    // Node's shared pool, which Node 22 and later refuse to hand over (DataCloneError).
    const copy = new Uint8Array(chunk);
    return new Promise<HashedEntries>((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      worker.postMessage({ id, chunk: copy }, [copy.buffer]);
    });
  }

  /** Stops the threads; what is still being hashed is dropped (its promises never settle). */
  async close(): Promise<void> {
    this.#closed = true;
    this.#waiting.clear();
    const workers = this.#workers.splice(0);
    await Promise.all(workers.map((worker) => worker.terminate()));
  }

  #fail(error: Error): void {
    if (this.#closed) return;
    this.#failed ??= error;
    for (const waiting of this.#waiting.values()) waiting.reject(error);
    this.#waiting.clear();
  }
}
