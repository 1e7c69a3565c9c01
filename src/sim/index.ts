// Simulated Things that speak real protocols on loopback, for the demo, tests and benchmarks.
export { Fleet, FLEET_KINDS, SIM_ID_PREFIX, simSlug, simThingId } from "./fleet.js";
export type { FleetKind, FleetOptions, FleetServer } from "./fleet.js";
export { Boiler, BOILER_DEFAULTS, READY_BAND, type BoilerParameters } from "./boiler.js";
export { EspressoMachine, SETPOINT_RANGE } from "./espresso-machine.js";
export { NetworkSwitch, type PortState } from "./network-switch.js";
export { Container, ContainerHost, type ContainerState } from "./container-host.js";
export { MicroService, type Health } from "./micro-service.js";
export { RoomSensor, type MqttTarget } from "./room-sensors.js";
export { ChaosMonkey, type Mischief } from "./chaos-monkey.js";
export { BATTERY_STATUS, ON_BATTERY_TRAP, OUTPUT_SOURCE, Ups, type TrapDestination } from "./ups.js";
export { SnmpAgent, SnmpType, type SnmpAgentOptions, type SnmpScalar } from "./snmp-agent.js";
export { SimHttpServer } from "./sim-http-server.js";
export { SimCoapServer } from "./sim-coap-server.js";
export { SmartPlug } from "./smart-plug.js";
export { SimProblem, SimulatedThing } from "./simulated-thing.js";
