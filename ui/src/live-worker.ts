// The SharedWorker that holds the one change stream of all the browser's tabs of this hub
// (change-streams.ts): each tab connects a port.
import { ChangeStreams } from "./change-streams.js";

const streams = new ChangeStreams(location.origin);
const scope = globalThis as unknown as { onconnect: ((event: MessageEvent) => void) | null };
scope.onconnect = (event) => {
  for (const port of event.ports) streams.connect(port);
};
