// The public face of the client: talk to a hub over HTTP, from Node.js or a browser.
export {
  HubClient,
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
