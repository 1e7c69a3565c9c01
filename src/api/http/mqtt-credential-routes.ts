// The credentials devices sign in with on the hub's embedded MQTT broker: issued for a registered
// Thing (`POST /things/{id}/mqtt-credentials`) or a Homie or Home Assistant device that registers
// itself (`POST /mqtt-credentials`), listed (`GET /mqtt-credentials`, never a password) and revoked
// (`DELETE /mqtt-credentials/{username}`). The hub keeps the records (hub/mqtt-credentials.ts).
import type { FastifyInstance, FastifyRequest } from "fastify";
import {
  ConflictError,
  ForbiddenError,
  NotFoundError,
  UnauthorizedError,
  ValidationError,
} from "../../core/index.js";
import type { Hub, MqttCredential } from "../../hub/index.js";
import {
  announcerCredentials,
  announcerNamed,
  announcerProblem,
  announcerTopics,
  deviceCredentials,
  deviceTopics,
  type Announcer,
} from "../mqtt/device-credentials.js";
import { encodeTopicLevel } from "../mqtt/topic-layout.js";
import { actorOf } from "./authorization.js";
import { idOf, idParam } from "./directory-routes.js";
import { refuseBody } from "./content-types.js";

const usernameParam = {
  type: "object",
  properties: {
    username: {
      type: "string",
      description:
        "The credential's user name (a Thing's id, homie:{device}, homeassistant:{node}), percent-encoded",
    },
  },
} as const;

function requireAdmin(request: FastifyRequest): void {
  if (request.principal === undefined)
    throw new UnauthorizedError("MQTT credentials need an admin bearer token");
  if (!request.principal.admin) {
    throw new ForbiddenError(`The token of "${request.principal.name}" may not see MQTT credentials`);
  }
}

export function mqttCredentialRoutes(hub: Hub) {
  const registry = hub.mqttCredentials;
  const roots = () => ({
    prefix: hub.config.mqttPrefix,
    homieRoot: hub.config.mqttHomieRoot,
    homeAssistantPrefix: hub.config.mqttHomeAssistantPrefix,
  });
  // Only the embedded broker knows these passwords: elsewhere they would open nothing.
  const requireEmbedded = () => {
    if (hub.config.mqtt !== "embedded") {
      throw new ConflictError(
        hub.config.mqtt === "external"
          ? "This hub uses a broker of your own (--mqtt-url): that broker gives devices their passwords"
          : "This hub runs without MQTT (--no-mqtt): there is no broker to give a device a password for",
      );
    }
  };
  /** What a credential opens, under the hub's topic roots now. */
  const topicsOf = (credential: Pick<MqttCredential, "username" | "kind">) => {
    if (credential.kind === "thing")
      return deviceTopics(credential.username, hub.config.mqttPrefix, encodeTopicLevel);
    const announcer = announcerNamed(credential.username);
    return announcer === undefined
      ? { publish: [], subscribe: [] }
      : announcerTopics(announcer, roots(), encodeTopicLevel);
  };
  const listed = (credential: MqttCredential) => {
    const { generation: _, ...shown } = credential;
    return { ...shown, ...topicsOf(credential) };
  };

  return async function plugin(app: FastifyInstance): Promise<void> {
    app.post(
      "/things/:id/mqtt-credentials",
      {
        preValidation: refuseBody,
        schema: {
          summary: "The user name and password a device uses on the hub's embedded MQTT broker",
          description:
            "The device may publish and subscribe under {prefix}/things/{id}/ only. Asked again, the same " +
            "credentials, until they are revoked (DELETE /mqtt-credentials/{id}, or the Thing is removed or " +
            "expires); then new ones. Derived from the admin token: rotating the token revokes every device password.",
          tags: ["mqtt"],
          params: idParam,
        },
      },
      async (request) => {
        const id = idOf(request);
        await hub.directory.getLive(id);
        requireEmbedded();
        const { credential } = await registry.issue(id, "thing", actorOf(request));
        return {
          ...deviceCredentials(hub.adminToken.token, id, credential.generation),
          ...topicsOf(credential),
          ...issuance(credential),
        };
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
            "and {node}/#. The answer lists the topic filters it may publish to and subscribe within. Asked " +
            "again, the same credentials until they are revoked; then new ones. Derived from the admin token: " +
            "rotating the token revokes them.",
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
        const problem = announcerProblem(announcer, roots());
        if (problem !== undefined) {
          throw new ValidationError(problem, [
            { pointer: `/${announcer.convention}`, message: "not a valid id" },
          ]);
        }
        requireEmbedded();
        const username = `${announcer.convention}:${announcer.name}`;
        const { credential } = await registry.issue(username, announcer.convention, actorOf(request));
        return {
          ...announcerCredentials(hub.adminToken.token, announcer, credential.generation),
          ...announcerTopics(announcer, roots(), encodeTopicLevel),
          ...issuance(credential),
        };
      },
    );

    app.get(
      "/mqtt-credentials",
      {
        schema: {
          summary:
            "Every MQTT credential the hub issued: whom it opens, when and by whom, last use, revocation",
          description:
            "Never a password. Revoked credentials stay listed, with when, by whom and why they were revoked. " +
            "A credential issued before the hub kept records is listed from its first use on (no issuedAt).",
          tags: ["mqtt"],
        },
      },
      async (request) => {
        requireAdmin(request);
        return { credentials: (await registry.list()).map(listed) };
      },
    );

    app.delete(
      "/mqtt-credentials/:username",
      {
        preValidation: refuseBody,
        schema: {
          summary: "Revoke an MQTT credential: its connections are closed, and it signs in no more",
          description:
            "Issuing credentials for the same user name again gives another password. 404 when no credential " +
            "of that user name is in force (none was issued, or it was revoked already).",
          tags: ["mqtt"],
          params: usernameParam,
        },
      },
      async (request, reply) => {
        const { username } = request.params as { username: string };
        if (username === "")
          throw new ValidationError("The URL names no user name: use /mqtt-credentials/{username}");
        const held = await registry.current(username);
        if (held === undefined) throw new NotFoundError(`The hub issued no MQTT credentials for ${username}`);
        const revoked = await registry.revoke(username, actorOf(request), "revoked by an admin");
        if (revoked === undefined) {
          throw new NotFoundError(
            `The MQTT credentials of ${username} were revoked already, at ${held.revokedAt ?? "?"} (${held.revokedBecause ?? "by an admin"})`,
          );
        }
        return reply.code(204).send();
      },
    );
  };
}

/** When and by whom a credential was issued, when the hub knows. */
function issuance(credential: MqttCredential): { issuedAt?: string; issuedBy?: string } {
  return {
    ...(credential.issuedAt !== undefined && { issuedAt: credential.issuedAt }),
    ...(credential.issuedBy !== undefined && { issuedBy: credential.issuedBy }),
  };
}
