// The public face of the hub.
export { Hub, type HubOptions, type Principal } from "./hub.js";
export { Directory, assertThingId, type RegisterResult } from "./directory.js";
export {
  loadConfig,
  configDefaults,
  configEnvironment,
  defaultDataDir,
  type HubConfig,
  type ConfigOverrides,
} from "./config.js";
export { ADMIN_TOKEN_FILE, type AdminToken } from "./admin-token.js";
export type { Follower, FollowOptions } from "./change-stream.js";
export { HUB_VERSION } from "./version.js";
