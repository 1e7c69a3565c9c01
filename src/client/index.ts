// The public face of the client: talk to a hub over HTTP, from Node.js or a browser.
// The shapes of what the hub answers (type-only: nothing of core is loaded).
export type {
  ActionAffordance,
  Cause,
  Change,
  Checkpoint,
  DataSchema,
  Link,
  PropertyAffordance,
  RegisteredThingDescription,
  ThingDescription,
} from "../core/index.js";
export {
  DirectoryClient,
  HubError,
  HubUnreachableError,
  nextLinkOf,
  thingPathOf,
  type HubClientOptions,
  type HubHealth,
  type ListOptions,
  type ProblemFields,
  type ProblemLocation,
  type PutResult,
  type ThingPage,
} from "./directory-client.js";
export {
  HubClient,
  type AffordanceDiff,
  type AffordanceState,
  type ChangeFilter,
  type ChangePage,
  type ChangesQuery,
  type ConsistencyProof,
  type HistoryQuery,
  type InclusionProof,
  type LogKey,
  type Report,
  type ThingDiff,
  type ThingState,
  type TimeArgument,
  type WatchOptions,
  type WatchStatus,
} from "./hub-client.js";
export { EventStreamParser, readEventStream, type ServerSentEvent } from "./server-sent-events.js";
export {
  InteractionClient,
  type ActionResult,
  type ActionStatus,
  type CredentialsInput,
} from "./interaction-client.js";
export { ReleaseClient, type ReleasePage, type StoredRelease } from "./release-client.js";
export {
  GraphqlClient,
  GraphqlRequestError,
  GraphqlSocketError,
  CHANGE_FIELDS,
  type ChangesOptions,
  type GraphqlCause,
  type GraphqlChange,
  type GraphqlClientOptions,
  type GraphqlErrorEntry,
  type GraphqlLink,
  type GraphqlThing,
  type PropertyValue,
  type SocketStatus,
  type SubscribeOptions,
  type ChangeFilter as GraphqlChangeFilter,
} from "./graphql-client.js";
export {
  RolloutClient,
  type DriftEntry,
  type Lineage,
  type LineageEntry,
  type RolloutEvent,
  type RolloutRequest,
  type RolloutView,
} from "./rollout-client.js";
