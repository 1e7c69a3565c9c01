// A worker thread of `things verify` (log-entry-hashers.ts): hashes chunks of the Log's entry
// lines with core's hashEntries and sends the leaf hashes back; the main thread judges them.
import { parentPort } from "node:worker_threads";
import { hashEntries } from "../core/log-entry.js";

parentPort?.on("message", (message: { id: number; chunk: Uint8Array }) => {
  const hashed = hashEntries(message.chunk);
  // Made here, so plain ArrayBuffers: handed over, not copied.
  const buffers = [hashed.seqs.buffer, hashed.leaves.buffer, hashed.status.buffer] as ArrayBuffer[];
  parentPort?.postMessage({ id: message.id, hashed }, buffers);
});
