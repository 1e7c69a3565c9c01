// The public face of the bus: the interface and the backends.
export type * from "./bus.js";
export { InProcessBus } from "./in-process/in-process-bus.js";
