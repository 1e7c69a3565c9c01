// The public face of the API.
export { buildServer } from "./http/server.js";
export { toProblem, type Problem } from "./http/problem.js";
export { thingPath } from "./http/thing-path.js";
export type { ServerOptions } from "./http/server.js";
export {
  startMqtt,
  startMqttFace,
  MQTT_PORT_FILE,
  deviceCredentials,
  encodeTopicLevel,
  parseBrokerUrl,
  mqttPortError,
  type RunningMqtt,
  type MqttFace,
  type MqttStatus,
  type DeviceCredentials,
} from "./mqtt/index.js";
