// The hub's MQTT face: the embedded broker or a link to an external one, the gateway on the
// documented topic layout (docs/mqtt.md), and auto-inventory of Homie and Home Assistant devices.
export { MQTT_PORT_FILE, startMqtt, type RunningMqtt } from "./mqtt-service.js";
export { startMqttFace, type MqttFace, type MqttStatus } from "./mqtt-face.js";
export { MqttGateway, reportOf, type WriteOutcome } from "./gateway.js";
export { TopicLayout, encodeTopicLevel, decodeTopicLevel } from "./topic-layout.js";
export { deviceCredentials, type DeviceCredentials } from "./device-credentials.js";
export { EMBEDDED_BROKER_LIMITS, mqttPortError } from "./embedded-broker.js";
export { parseBrokerUrl } from "./external-broker.js";
