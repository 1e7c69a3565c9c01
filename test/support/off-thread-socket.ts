// A TCP client that runs on a worker thread of its own, so that it goes on reading while the test's
// thread (which runs the hub) is held up (held-thread.ts): a client that keeps up with a hub whose
// loop is late. What it read is counted where the held thread can see it.
import { Worker } from "node:worker_threads";

/** The worker: a plain socket, steered by messages; it counts the bytes it reads in `shared`. */
const WORKER = `
const { parentPort, workerData } = require("node:worker_threads");
const { connect } = require("node:net");
const read = new Int32Array(workerData.shared);
const socket = connect(workerData.port, workerData.host);
socket.on("error", () => undefined);
socket.on("connect", () => parentPort.postMessage({ type: "connect" }));
socket.on("data", (chunk) => {
  Atomics.add(read, 0, chunk.length);
  parentPort.postMessage({ type: "data", data: chunk });
});
socket.on("close", () => parentPort.postMessage({ type: "close" }));
parentPort.on("message", (message) => {
  if (message.type === "write") socket.write(Buffer.from(message.data));
  else if (message.type === "pause") socket.pause();
  else if (message.type === "resume") socket.resume();
});
`;

type FromWorker = { type: "connect" } | { type: "data"; data: Uint8Array } | { type: "close" };

/** The longest `until` waits for a text. */
const TEXT_BOUND_MS = 20_000;

export class OffThreadSocket {
  readonly #worker: Worker;
  readonly #read: Int32Array;
  #text = "";
  #waiters: (() => void)[] = [];
  /** Resolves when the connection has closed (the server ended or cut it). */
  readonly closed: Promise<void>;

  private constructor(port: number, host: string) {
    const shared = new SharedArrayBuffer(4);
    this.#read = new Int32Array(shared);
    this.#worker = new Worker(WORKER, { eval: true, workerData: { port, host, shared } });
    this.closed = new Promise((resolve) => {
      this.#worker.on("message", (message: FromWorker) => {
        if (message.type === "data") this.#text += Buffer.from(message.data).toString("latin1");
        if (message.type === "close") resolve();
        for (const waiter of this.#waiters.splice(0)) waiter();
      });
      this.#worker.once("exit", () => resolve());
    });
  }

  /** Connects from a worker thread; resolves once connected. */
  static async connect(port: number, host = "127.0.0.1"): Promise<OffThreadSocket> {
    const socket = new OffThreadSocket(port, host);
    await new Promise<void>((resolve, reject) => {
      socket.#worker.on("message", (message: FromWorker) => {
        if (message.type === "connect") resolve();
        if (message.type === "close") reject(new Error(`could not connect to ${host}:${port}`));
      });
      socket.#worker.once("error", reject);
    });
    return socket;
  }

  /** Bytes read so far, up to date even while this thread is held up. */
  get bytesRead(): number {
    return Atomics.load(this.#read, 0);
  }

  /** What it read so far that this thread has been told of, as latin1. */
  get text(): string {
    return this.#text;
  }

  write(data: string | Uint8Array): void {
    this.#worker.postMessage({ type: "write", data: typeof data === "string" ? Buffer.from(data) : data });
  }

  /** Stops reading: what the server sends piles up in the kernel's buffers, then in the server's. */
  pause(): void {
    this.#worker.postMessage({ type: "pause" });
  }

  resume(): void {
    this.#worker.postMessage({ type: "resume" });
  }

  /** Resolves once `text` has been read, or the connection has closed; fails after a bound. */
  async until(text: string): Promise<void> {
    let open = true;
    void this.closed.then(() => (open = false));
    const bound = Date.now() + TEXT_BOUND_MS;
    while (!this.#text.includes(text) && open && Date.now() < bound) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.max(0, bound - Date.now()));
        this.#waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
    if (!this.#text.includes(text))
      throw new Error(
        `no ${JSON.stringify(text)} ${open ? `within ${TEXT_BOUND_MS} ms` : "before it closed"}`,
      );
  }

  /** Ends the worker, and with it the connection. */
  async end(): Promise<void> {
    await this.#worker.terminate();
  }
}
