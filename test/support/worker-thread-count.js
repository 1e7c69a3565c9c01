// Preloaded into a `things` process (NODE_OPTIONS=--import …) by tests that must see whether it
// started worker threads: counts the node:worker_threads Workers it makes, and writes the count
// to the file named by WORKER_THREAD_COUNT_FILE when it exits.
import { writeFileSync } from "node:fs";
import { syncBuiltinESMExports } from "node:module";
import workerThreads from "node:worker_threads";

let started = 0;
const Worker = workerThreads.Worker;
workerThreads.Worker = class CountedWorker extends Worker {
  constructor(...args) {
    super(...args);
    started++;
  }
};
// ES modules that import { Worker } see the counted one from here on.
syncBuiltinESMExports();
process.on("exit", () => {
  const file = process.env.WORKER_THREAD_COUNT_FILE;
  if (file !== undefined) writeFileSync(file, String(started));
});
