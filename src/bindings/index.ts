// The public face of bindings: the Binding interface, form selection, the address policy, and
// the HTTP, MQTT, CoAP and SNMP bindings, with `createBindings` to make the set the hub uses.
import { AddressPolicy } from "./address-policy.js";
import type { Binding, Target } from "./binding.js";
import { CoapBinding } from "./coap/coap-binding.js";
import type { CoapBindingOptions } from "./coap/coap-binding.js";
import { bindingFor } from "./form-selection.js";
import { HttpBinding } from "./http/http-binding.js";
import type { HttpBindingOptions } from "./http/http-binding.js";
import { MqttBinding } from "./mqtt/mqtt-binding.js";
import type { MqttBindingOptions } from "./mqtt/mqtt-binding.js";
import { SnmpBinding } from "./snmp/snmp-binding.js";
import type { SnmpBindingOptions } from "./snmp/snmp-binding.js";

export type {
  ActionHandle,
  ActionOutcome,
  ActionStatus,
  Binding,
  BindingFailure,
  BindingFailureReason,
  CoapMethod,
  Credentials,
  Discovered,
  ErrorListener,
  FormTerms,
  Operation,
  SnmpAuthProtocol,
  SnmpPrivProtocol,
  SnmpSecurityLevel,
  SnmpSetType,
  Subscription,
  Target,
  ValueListener,
  Delivery,
} from "./binding.js";
export {
  SNMP_AUTH_PROTOCOLS,
  SNMP_PRIV_PROTOCOLS,
  SNMP_SECURITY_LEVELS,
  SNMP_SET_TYPES,
  bindingError,
  bindingFailure,
} from "./binding.js";
export type { BackoffOptions } from "./backoff.js";
export { MAX_RETRY_AFTER_MS, backoffDelay } from "./backoff.js";
export type { Secret, Secrets, UsmDefinition } from "./credentials.js";
export {
  MIN_USM_PASSPHRASE_LENGTH,
  SNMP_COMMUNITY,
  SNMP_USM,
  credentialsFor,
  originOf,
  usmDefinition,
} from "./credentials.js";
export type { AffordanceKind, TargetRequest } from "./form-selection.js";
export {
  COAP_METHODS,
  DEFAULT_OPS,
  bindingFor,
  declaredUriVariables,
  expandUriTemplate,
  formOps,
  parseFormTerms,
  resolveHref,
  securedOrigins,
  selectForm,
  targetFor,
  uriScheme,
  uriVariablesFromQuery,
} from "./form-selection.js";
export type { AddressPolicyOptions, ProtectedEndpoint } from "./address-policy.js";
export {
  AddressDeniedError,
  AddressPolicy,
  LOCAL_RANGES,
  LOOPBACK_SERVICE_PORTS,
  METADATA_AND_LINK_LOCAL_RANGES,
  loopbackServiceEndpoints,
  parseEndpoint,
} from "./address-policy.js";
export type { HttpBindingOptions } from "./http/http-binding.js";
export { HTTP_BINDING_DEFAULTS, HttpBinding } from "./http/http-binding.js";
export { retryAfterOf } from "./http/http-transport.js";
export type { MqttBindingOptions, MqttConnectionEvent } from "./mqtt/mqtt-binding.js";
export { MQTT_BINDING_DEFAULTS, MqttBinding, type BrokerCredentials } from "./mqtt/mqtt-binding.js";
export { filterWithin } from "./mqtt/mqtt-topic.js";
export type { CoapBindingOptions } from "./coap/coap-binding.js";
export { COAP_BINDING_DEFAULTS, CoapBinding } from "./coap/coap-binding.js";
export type { SnmpBindingOptions } from "./snmp/snmp-binding.js";
export { SNMP_BINDING_DEFAULTS, SnmpBinding } from "./snmp/snmp-binding.js";

export interface BindingsOptions {
  /** One policy for every binding; default: every address allowed. */
  readonly addressPolicy?: AddressPolicy;
  /** Options of the HTTP binding, or false to leave it out. */
  readonly http?: Omit<HttpBindingOptions, "addressPolicy"> | false;
  /** Options of the MQTT binding, or false to leave it out. */
  readonly mqtt?: Omit<MqttBindingOptions, "addressPolicy"> | false;
  /** Options of the CoAP binding, or false to leave it out. */
  readonly coap?: Omit<CoapBindingOptions, "addressPolicy"> | false;
  /** Options of the SNMP binding, or false to leave it out. */
  readonly snmp?: Omit<SnmpBindingOptions, "addressPolicy"> | false;
}

/** The bindings the hub runs, by URI scheme. */
export interface BindingSet {
  readonly byScheme: ReadonlyMap<string, Binding>;
  /** The schemes served, to pass to `targetFor` so that only usable forms are chosen. */
  readonly schemes: readonly string[];
  /** The binding for a target's href; a BindingError (`unsupported`) if none serves its scheme. */
  bindingFor(target: Target): Binding;
  /** Closes every binding once. */
  close(): Promise<void>;
}

export function createBindings(options: BindingsOptions = {}): BindingSet {
  const addressPolicy = options.addressPolicy ?? new AddressPolicy();
  const bindings: Binding[] = [];
  if (options.http !== false) bindings.push(new HttpBinding({ ...options.http, addressPolicy }));
  if (options.mqtt !== false) bindings.push(new MqttBinding({ ...options.mqtt, addressPolicy }));
  if (options.coap !== false) bindings.push(new CoapBinding({ ...options.coap, addressPolicy }));
  if (options.snmp !== false) bindings.push(new SnmpBinding({ ...options.snmp, addressPolicy }));
  const byScheme = new Map<string, Binding>();
  for (const binding of bindings) for (const scheme of binding.schemes) byScheme.set(scheme, binding);
  return {
    byScheme,
    schemes: [...byScheme.keys()],
    bindingFor: (target) => bindingFor(byScheme, target),
    close: async () => {
      await Promise.all(bindings.map((binding) => binding.close()));
    },
  };
}
