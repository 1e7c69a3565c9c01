// The directory's own Thing Description (W3C WoT Discovery §7.3.2.1), served at
// /.well-known/wot so that any WoT client can find and use the directory API.
import type { FastifyInstance, FastifyRequest } from "fastify";
import { UnavailableError, type DataSchema, type RegisteredThingDescription } from "../../core/index.js";
import type { Hub } from "../../hub/index.js";
import type { MqttStatus } from "../mqtt/index.js";
import { TD_ANSWERS, sendTd } from "./directory-routes.js";

const GET = { "htv:methodName": "GET" };

export function directoryDescription(hub: Hub, base: string, version: string): RegisteredThingDescription {
  const write = { security: "bearer_sc" };
  const readSecurity = hub.config.authRead ? "bearer_sc" : "nosec_sc";
  const tdInput: DataSchema = { description: "A Thing Description", type: "object" };
  const idVariable: Record<string, DataSchema> = {
    id: { title: "Thing id", type: "string", format: "iri-reference" },
  };
  const eventForm = (type: string) => ({
    op: "subscribeevent",
    href: `events/${type}{?diff}`,
    subprotocol: "sse",
    contentType: "text/event-stream",
  });
  return {
    "@context": ["https://www.w3.org/2022/wot/td/v1.1", "https://www.w3.org/2022/wot/discovery"],
    "@type": "ThingDirectory",
    id: hub.id,
    title: "Hyperthings directory",
    description: "A W3C WoT Thing Description Directory that records every change of every Thing.",
    version: { instance: version },
    base,
    securityDefinitions: {
      nosec_sc: { scheme: "nosec" },
      bearer_sc: { scheme: "bearer", in: "header", name: "Authorization", format: "opaque" },
    },
    security: readSecurity,
    properties: {
      things: {
        description: "The Thing Descriptions in the directory, a page at a time",
        type: "array",
        items: { type: "object" },
        readOnly: true,
        // WoT Discovery §7.3.2.4's Thing Model: every argument the listing takes, format too.
        uriVariables: {
          offset: { type: "integer", minimum: 0, default: 0 },
          limit: { type: "integer", minimum: 1, maximum: hub.config.maxPageLimit, default: 100 },
          format: { type: "string", enum: ["array", "collection"], default: "array" },
        },
        forms: [
          {
            href: "things{?offset,limit,format}",
            op: "readproperty",
            contentType: "application/ld+json",
            ...GET,
          },
        ],
      },
    },
    actions: {
      createThing: {
        description: "Register a TD under its id",
        uriVariables: idVariable,
        input: tdInput,
        forms: [
          { href: "things/{id}", "htv:methodName": "PUT", contentType: "application/td+json", ...write },
        ],
      },
      createAnonymousThing: {
        description: "Register a TD without an id; the answer's Location names the one given",
        input: tdInput,
        output: { type: "string", description: "The new TD's id" },
        forms: [{ href: "things", "htv:methodName": "POST", contentType: "application/td+json", ...write }],
      },
      retrieveThing: {
        description: "One TD, with its registration information",
        uriVariables: idVariable,
        output: tdInput,
        safe: true,
        idempotent: true,
        forms: [{ href: "things/{id}", contentType: "application/td+json", ...GET }],
      },
      updateThing: {
        description: "Replace a TD",
        uriVariables: idVariable,
        input: tdInput,
        idempotent: true,
        forms: [
          { href: "things/{id}", "htv:methodName": "PUT", contentType: "application/td+json", ...write },
        ],
      },
      partiallyUpdateThing: {
        description: "Change part of a TD with a JSON merge patch (RFC 7396)",
        uriVariables: idVariable,
        input: { type: "object" },
        forms: [
          {
            href: "things/{id}",
            "htv:methodName": "PATCH",
            contentType: "application/merge-patch+json",
            ...write,
          },
        ],
      },
      deleteThing: {
        description: "Remove a TD",
        uriVariables: idVariable,
        idempotent: true,
        forms: [{ href: "things/{id}", "htv:methodName": "DELETE", ...write }],
      },
      searchJSONPath: {
        description: "RFC 9535 JSONPath over every TD",
        uriVariables: { query: { type: "string" } },
        output: { type: "array" },
        safe: true,
        idempotent: true,
        forms: [{ href: "search/jsonpath?query={query}", contentType: "application/json", ...GET }],
      },
    },
    events: {
      thingCreated: {
        description: "A TD was registered",
        data: { type: "object" },
        forms: [eventForm("thing_created")],
      },
      thingUpdated: {
        description: "A TD changed",
        data: { type: "object" },
        forms: [eventForm("thing_updated")],
      },
      thingDeleted: {
        description: "A TD was removed",
        data: { type: "object" },
        forms: [eventForm("thing_deleted")],
      },
    },
  };
}

function baseUrl(request: FastifyRequest): string {
  return `${request.protocol}://${request.host}/`;
}

export function wellKnownRoutes(hub: Hub, version: string, mqttStatus?: () => MqttStatus | undefined) {
  return async function plugin(app: FastifyInstance): Promise<void> {
    app.get(
      "/.well-known/wot",
      {
        schema: {
          summary: "The directory's own Thing Description",
          tags: ["directory"],
          produces: TD_ANSWERS,
        },
      },
      async (request, reply) => sendTd(request, reply, directoryDescription(hub, baseUrl(request), version)),
    );
    app.get(
      "/health",
      { schema: { summary: "Liveness and a few figures", tags: ["operations"] } },
      async (_request, reply) => {
        // A hub that takes no write (its disk full, the file gone read-only) is not healthy, even
        // though it answers: a probe sees 503 and why.
        // A store that cannot be read (its database away) is failing too: said, not a 500.
        let figures: { things: number; lastSeq: number } | undefined;
        let unreadable: { since: string; reason: string } | undefined;
        try {
          figures = { things: await hub.store.countThings(), lastSeq: await hub.store.lastSeq() };
        } catch (error) {
          if (!(error instanceof UnavailableError)) throw error;
          unreadable = { since: new Date().toISOString(), reason: error.message };
        }
        const failing = hub.store.writeFailure() ?? unreadable;
        if (failing !== undefined) void reply.code(503);
        // Files changed behind the store's back that it works around (nothing is lost), until an
        // operator restarts the hub: it takes writes, so 200, but not "ok".
        const storage = hub.store.storageProblem();
        // A bus that does not keep up with the Log (NATS away, or far behind) leaves the hub
        // taking writes and serving its own subscribers: degraded, with how far behind it is.
        const bus = hub.bus.status?.();
        const busBehind = bus !== undefined && (!bus.connected || bus.lag > bus.window);
        // Whether this process runs the MQTT gateway (replicas on one external broker: one does).
        const mqtt = mqttStatus?.();
        // Whether this replica observes the Things and sweeps expired TDs (replicas of one hub: one does).
        const elected = hub.electedStatus();
        return {
          status: failing !== undefined ? "failing" : storage !== undefined || busBehind ? "degraded" : "ok",
          hub: hub.id,
          version,
          ...figures,
          ...(failing !== undefined && { writes: { failingSince: failing.since, reason: failing.reason } }),
          ...(storage !== undefined && { storage: { problemSince: storage.since, reason: storage.reason } }),
          ...(bus !== undefined && { bus }),
          ...(mqtt !== undefined && { mqtt }),
          ...elected,
        };
      },
    );
  };
}
