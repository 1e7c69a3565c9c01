// The public face of the hub.
export { Hub, type HubOptions, type Principal } from "./hub.js";
export {
  Directory,
  MAX_BATCH_THINGS,
  assertThingId,
  entityTagOf,
  type RegisterResult,
  type WriteCondition,
} from "./directory.js";
export {
  loadConfig,
  configDefaults,
  configEnvironment,
  configFileKeys,
  CONFIG_FILE_VARIABLE,
  defaultDataDir,
  unknownEnvironment,
  type ConfigFile,
  type ConfigFileKey,
  type HubConfig,
  type BusSettings,
  type ConfigOverrides,
} from "./config.js";
export { MAX_CONFIG_FILE_BYTES, readConfigFile } from "./config-file.js";
export { ADMIN_TOKEN_FILE, type AdminToken } from "./admin-token.js";
export { exposedMode } from "./data-files.js";
export type { Follower, FollowOptions } from "./change-stream.js";
export { HUB_VERSION } from "./version.js";
export { ofRegistration, withRemovals } from "./registration.js";
export {
  History,
  latestReachability,
  REACHABILITY_STREAM_KINDS,
  type AffordanceDiff,
  type AffordanceDrift,
  type DiffChange,
  type DriftDiff,
  type InteractionDiff,
  type LinksDiff,
  type ReleasesDiff,
  type ReachabilityDiff,
  type AffordanceState,
  type HistoryOptions,
  type HistoryPage,
  type ThingState,
  type ThingDiff,
  type FleetDiff,
} from "./history.js";
export { Causes, type Why, type WhyLink } from "./why.js";
export {
  Notary,
  LOG_KEY_FILE,
  loadOrCreateLogKey,
  type InclusionProof,
  type InclusionProofs,
  type ConsistencyProof,
} from "./notary.js";
export type { Report } from "./ingest.js";
export { HUB_ID_FILE, loadOrCreateHubId } from "./hub-identity.js";
export { hlcFloor, type HubClock } from "./hub-clock.js";
export {
  Commands,
  failureValue,
  type InvocationStatus,
  type InvokeOutcome,
  type Requester,
  type UriVariables,
} from "./commands.js";
export {
  Observation,
  OBSERVER_ACTOR,
  POLL_INTERVAL_TERM,
  RECORD_TERM,
  observationPlans,
  type ObservationOptions,
} from "./observation.js";
export { ElectedRole, ELECTION_MS, type ElectedWork, type RoleStatus } from "./elected-role.js";
export type { SecretStore } from "./secret-store.js";
export { SECRET_KEY_FILE, ThingSecrets, loadOrCreateSecretKey, type SecretInput } from "./thing-secrets.js";
export {
  MQTT_CREDENTIALS_FILE,
  MQTT_CREDENTIALS_IMPORTED,
  MemoryMqttCredentialStore,
  MqttCredentials,
  type MqttCredential,
  type MqttCredentialChanges,
  type MqttCredentialKind,
  type MqttCredentialStore,
} from "./mqtt-credentials.js";
export {
  Discovery,
  type DescriptionFetcher,
  type DiscoveryOptions,
  type DiscoveryResult,
} from "./discovery.js";
export {
  Releases,
  RELEASED_KIND,
  type ReleaseListOptions,
  type ReleasesContext,
  type StoreResult,
  type ThingFinder,
} from "./releases.js";
export {
  Graph,
  MAX_GRAPH_PAGE,
  MAX_NEIGHBOURHOOD_DEPTH,
  decodeThingCursor,
  encodeThingCursor,
  type GraphItem,
  type GraphLink,
  type GraphOptions,
  type GraphPage,
  type NeighbourhoodNode,
} from "./graph.js";
export type { SeqSpan, TypeFilter } from "./type-history.js";
export { DEFAULT_VOCABULARY_PATH, loadVocabulary } from "./graph-vocabulary.js";
export {
  Rollouts,
  type LineageEntry,
  type ReleaseSource,
  type RolloutEvent,
  type RolloutView,
} from "./rollouts.js";
export { Drift, DRIFT_KIND, ALERT_KIND, DRIFT_ACTOR, type DriftEntry } from "./drift.js";
