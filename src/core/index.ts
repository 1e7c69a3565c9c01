// The public face of core: the domain, with no I/O.
export * from "./errors.js";
export * from "./canonical-json.js";
export * from "./thing-description.js";
export * from "./thing-description-validation.js";
export * from "./thing-id.js";
export * from "./merge-patch.js";
export * from "./change.js";
export * from "./jsonpath.js";
export * from "./registration.js";
export * from "./hybrid-logical-clock.js";
export * from "./merkle.js";
export * from "./checkpoint.js";
export * from "./data-schema-validation.js";
export * from "./time-expression.js";
export * from "./mqtt-device.js";
export * from "./homie.js";
export * from "./home-assistant.js";
