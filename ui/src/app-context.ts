// What every view gets: the signed-in client and the shared live feed.
import type { InteractionClient } from "../../src/client/index.js";
import type { LiveFeed } from "./live.js";

export interface AppContext {
  client: InteractionClient;
  live: LiveFeed;
}

/** A view draws into `root` and returns what to do when it is left (stop streams, free WebGL). */
export type View = (context: AppContext, root: HTMLElement, argument: string) => () => void;
