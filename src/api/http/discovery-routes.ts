// Discovery by introduction over HTTP: `POST /discover {url}` registers the Thing whose TD is at
// the URL, or every Thing listed by the TD directory a host announces at `/.well-known/wot`; and
// `POST /things/{id}/mqtt-credentials` and `POST /mqtt-credentials` give a device (a registered
// Thing's, or a Homie or Home Assistant one that registers itself) its password for the embedded broker.
import type { FastifyInstance } from "fastify";
import { ConflictError, UnavailableError, ValidationError } from "../../core/index.js";
import type { Discovery, Hub } from "../../hub/index.js";
import {
  announcerCredentials,
  announcerProblem,
  announcerTopics,
  deviceCredentials,
  type Announcer,
} from "../mqtt/device-credentials.js";
import { encodeTopicLevel } from "../mqtt/topic-layout.js";
import { actorOf } from "./authorization.js";
import { idOf, idParam } from "./directory-routes.js";

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

    app.post(
      "/things/:id/mqtt-credentials",
      {
        schema: {
          summary: "The user name and password a device uses on the hub's embedded MQTT broker",
          description:
            "The device may publish and subscribe under {prefix}/things/{id}/ only. Derived from the admin " +
            "token: rotating the token revokes every device password.",
          tags: ["mqtt"],
          params: idParam,
        },
      },
      async (request) => {
        const id = idOf(request);
        await hub.directory.getLive(id);
        // Only the embedded broker knows these passwords: elsewhere they would open nothing.
        if (hub.config.mqtt !== "embedded") {
          throw new ConflictError(
            hub.config.mqtt === "external"
              ? "This hub uses a broker of your own (--mqtt-url): that broker gives devices their passwords"
              : "This hub runs without MQTT (--no-mqtt): there is no broker to give a device a password for",
          );
        }
        return deviceCredentials(hub.adminToken.token, id);
      },
    );

    app.post(
      "/mqtt-credentials",
      {
        schema: {
          summary:
            "The user name and password of a Homie or Home Assistant device on the embedded MQTT broker",
          description:
            'For a device that registers itself by announcing (docs/mqtt.md): {"homie": "{device id}"} opens ' +
            '{homie root}/5/{device}/#; {"homeassistant": "{node id}"} opens the discovery topics of that node ' +
            "and {node}/#. The answer lists the topic filters it may publish to and subscribe within. Derived " +
            "from the admin token: rotating the token revokes them.",
          tags: ["mqtt"],
          body: {
            type: "object",
            additionalProperties: false,
            minProperties: 1,
            maxProperties: 1,
            properties: {
              homie: { type: "string", minLength: 1, maxLength: 64 },
              homeassistant: { type: "string", minLength: 1, maxLength: 64 },
            },
          },
        },
      },
      async (request) => {
        const body = request.body as { homie?: string; homeassistant?: string };
        const announcer: Announcer =
          body.homie !== undefined
            ? { convention: "homie", name: body.homie }
            : { convention: "homeassistant", name: body.homeassistant ?? "" };
        const roots = {
          prefix: hub.config.mqttPrefix,
          homieRoot: hub.config.mqttHomieRoot,
          homeAssistantPrefix: hub.config.mqttHomeAssistantPrefix,
        };
        const problem = announcerProblem(announcer, roots);
        if (problem !== undefined) {
          throw new ValidationError(problem, [
            { pointer: `/${announcer.convention}`, message: "not a valid id" },
          ]);
        }
        if (hub.config.mqtt !== "embedded") {
          throw new ConflictError(
            hub.config.mqtt === "external"
              ? "This hub uses a broker of your own (--mqtt-url): that broker gives devices their passwords"
              : "This hub runs without MQTT (--no-mqtt): there is no broker to give a device a password for",
          );
        }
        return {
          ...announcerCredentials(hub.adminToken.token, announcer),
          ...announcerTopics(announcer, roots, encodeTopicLevel),
        };
      },
    );
  };
}
