// Discovery by introduction over HTTP: `POST /discover {url}` registers the Thing whose TD is at
// the URL, or every Thing listed by the TD directory a host announces at `/.well-known/wot`.
import type { FastifyInstance } from "fastify";
import { UnavailableError } from "../../core/index.js";
import type { Discovery, Hub } from "../../hub/index.js";
import { actorOf } from "./authorization.js";

export function discoveryRoutes(hub: Hub, discovery: Discovery | undefined) {
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.post(
      "/discover",
      {
        schema: {
          summary: "Register the Thing whose TD is at a URL, or every Thing a TD directory lists",
          description:
            "A URL with no path means the host's /.well-known/wot. When that is a TD directory's own TD, " +
            "its listing is followed page by page. Answers with the ids registered, those of them that replaced " +
            "a TD the hub held, those it held exactly so already (nothing recorded), and the TDs refused with why.",
          tags: ["discovery"],
          body: {
            type: "object",
            required: ["url"],
            additionalProperties: false,
            properties: { url: { type: "string", minLength: 1, maxLength: 4096 } },
          },
        },
      },
      async (request) => {
        if (discovery === undefined)
          throw new UnavailableError("This hub has no discovery (it runs without bindings)");
        const { url } = request.body as { url: string };
        return discovery.discover(url, { actor: actorOf(request), via: "http" });
      },
    );
  };
}
