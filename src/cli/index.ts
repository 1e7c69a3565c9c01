// The public face of the CLI part: how tests and other entry points start a hub in-process.
export { startHub, createLogger, type RunningHub } from "./start-hub.js";
