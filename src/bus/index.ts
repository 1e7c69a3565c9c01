// The public face of the bus: the interface and the backends.
export type * from "./bus.js";
export { InProcessBus } from "./in-process/in-process-bus.js";
export { SequencedDelivery, type SequencedDeliveryOptions } from "./sequenced-delivery.js";
export { NatsBus, NATS_BUS_DEFAULTS, type NatsBusOptions, type BusLogger } from "./nats/nats-bus.js";
export {
  changeSubject,
  checkStreamName,
  checkSubjectPrefix,
  parseNatsServers,
  subjectToken,
} from "./nats/subject.js";
