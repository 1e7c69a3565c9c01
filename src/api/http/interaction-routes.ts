// The interaction API: a managed Thing's properties, actions and events through the hub
// (read, write, invoke, live streams), every command recorded as Changes; and the Thing's proxy
// TD, whose forms point here.
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import {
  NotFoundError,
  UnauthorizedError,
  UnavailableError,
  ValidationError,
  echoed,
  quoted,
} from "../../core/index.js";
import { uriVariablesFromQuery, type AffordanceKind } from "../../bindings/index.js";
import type { Commands, Hub, Requester, UriVariables } from "../../hub/index.js";
import { actorOf } from "./authorization.js";
import { EVENT_STREAM_ANSWERS } from "./accept.js";
import { TD_ANSWERS, idOf, sendTd } from "./directory-routes.js";
import { lastEventId, openEventStream, relayAffordance } from "./event-stream.js";
import { proxyDescription } from "./proxy-description.js";
import { thingPath } from "./thing-path.js";

const JSON_TYPE = "application/json";

const affordanceParams = {
  type: "object",
  properties: {
    id: { type: "string", description: "The Thing's id (an IRI), percent-encoded" },
    name: { type: "string", description: "The affordance's name, percent-encoded" },
  },
} as const;

function nameOf(request: FastifyRequest): string {
  const name = (request.params as Record<string, string>).name ?? "";
  if (name.length === 0) throw new ValidationError("The URL names no affordance");
  return name;
}

function requesterOf(request: FastifyRequest): Requester {
  return { actor: actorOf(request), via: "http" };
}

/** `/things/{id}/actions/{name}/{invocation}`: an asynchronous action's status resource. */
export function invocationPath(id: string, action: string, invocation: string): string {
  return `${thingPath(id)}/actions/${encodeURIComponent(action)}/${encodeURIComponent(invocation)}`;
}

function sendJson(reply: FastifyReply, value: unknown): FastifyReply {
  if (value === undefined) return reply.code(204).send();
  return reply.type(JSON_TYPE).send(JSON.stringify(value));
}

export function interactionRoutes(hub: Hub) {
  const commands = (): Commands => {
    if (hub.commands === undefined) {
      throw new UnavailableError("This hub runs without bindings: it cannot reach Things");
    }
    return hub.commands;
  };

  /**
   * The query string as the affordance's URI variables (TD `uriVariables`), typed by their schemas;
   * a parameter the affordance does not declare is a 400, never silently dropped.
   */
  const uriVariables = async (request: FastifyRequest, kind: AffordanceKind): Promise<UriVariables> => {
    const query = request.query as Record<string, string | string[] | undefined>;
    if (Object.keys(query).length === 0) return {};
    const { td } = await hub.directory.getLive(idOf(request));
    return uriVariablesFromQuery(td, { kind, name: nameOf(request) }, query);
  };

  /** The Thing's TD, after checking it has this affordance (404 otherwise). */
  const affordance = async (id: string, kind: "properties" | "events", name: string) => {
    const { td } = await hub.directory.getLive(id);
    const group = td[kind];
    if (group === undefined || !Object.hasOwn(group, name)) {
      throw new NotFoundError(
        `Thing ${echoed(id)} has no ${kind === "events" ? "event" : "property"} ${quoted(name)}`,
      );
    }
    return td;
  };

  return async function plugin(app: FastifyInstance): Promise<void> {
    app.get(
      "/things/:id/properties/:name",
      {
        schema: {
          summary: "Read a property from the Thing (recorded as a `reported` Change); needs a token",
          tags: ["interaction"],
          params: affordanceParams,
        },
      },
      async (request, reply) => {
        // A read reaches the device and writes to the Log: not for anonymous callers.
        if (request.principal === undefined) {
          throw new UnauthorizedError("Reading a property from a Thing requires a bearer token");
        }
        const variables = await uriVariables(request, "property");
        const value = await commands().readProperty(
          idOf(request),
          nameOf(request),
          requesterOf(request),
          variables,
        );
        return sendJson(reply, value);
      },
    );

    app.put(
      "/things/:id/properties/:name",
      {
        schema: {
          summary:
            "Write a property (the value as JSON): checked against its schema, recorded as `desired`, then `completed` or `failed`",
          tags: ["interaction"],
          params: affordanceParams,
        },
      },
      async (request, reply) => {
        if (request.body === undefined) {
          throw new ValidationError("The request has no body: send the value to write, as JSON");
        }
        const variables = await uriVariables(request, "property");
        await commands().writeProperty(
          idOf(request),
          nameOf(request),
          request.body,
          requesterOf(request),
          variables,
        );
        return reply.code(204).send();
      },
    );

    app.post(
      "/things/:id/actions/:name",
      {
        schema: {
          summary:
            "Invoke an action (the input as JSON, if any): `invoked`, then `completed` with the output or `failed`; 201 + Location for an asynchronous action",
          tags: ["interaction"],
          params: affordanceParams,
        },
      },
      async (request, reply) => {
        const id = idOf(request);
        const name = nameOf(request);
        const variables = await uriVariables(request, "action");
        const outcome = await commands().invokeAction(
          id,
          name,
          request.body,
          requesterOf(request),
          variables,
        );
        if (outcome.kind === "completed") return sendJson(reply, outcome.output);
        const href = invocationPath(id, name, outcome.correlation);
        return reply
          .code(201)
          .header("location", href)
          .type(JSON_TYPE)
          .send(JSON.stringify({ status: "running", href }));
      },
    );

    app.get(
      "/things/:id/actions/:name/:invocation",
      {
        schema: {
          summary: "The status of an asynchronous action invoked through the hub (TD 1.1 ActionStatus)",
          tags: ["interaction"],
          params: {
            type: "object",
            properties: { ...affordanceParams.properties, invocation: { type: "string" } },
          },
        },
      },
      async (request, reply) => {
        const id = idOf(request);
        const name = nameOf(request);
        const { invocation } = request.params as { invocation: string };
        const status = await commands().invocationStatus(id, name, invocation);
        return sendJson(reply, { ...status, href: invocationPath(id, name, invocation) });
      },
    );

    app.get(
      "/things/:id/events/:name",
      {
        schema: {
          summary:
            "The Thing's event, live, as Server-Sent Events: one `message` per `emitted` Change (data = the event's data, id = seq); with the event's URI variables as query parameters, the Thing's occurrences for them, not recorded",
          tags: ["interaction"],
          produces: EVENT_STREAM_ANSWERS,
          params: affordanceParams,
        },
      },
      async (request, reply) => {
        const id = idOf(request);
        const name = nameOf(request);
        await affordance(id, "events", name);
        // With URI variables, the Thing is asked for this stream: its occurrences depend on them.
        const variables = await uriVariables(request, "event");
        if (Object.keys(variables).length > 0) {
          await relayAffordance(request, reply, commands(), { thing: id, kind: "event", name }, variables);
          return;
        }
        const after = await lastEventId(request, hub);
        openEventStream(request, reply, hub, after, (change) =>
          change.thing === id && change.kind === "emitted" && change.affordance === name
            ? { event: "message", data: JSON.stringify(change.value ?? null) }
            : undefined,
        );
      },
    );

    app.get(
      "/things/:id/properties/:name/observe",
      {
        schema: {
          summary:
            "The property's values, live, as Server-Sent Events: one `message` per `reported` Change (id = seq); with the property's URI variables as query parameters, the Thing's values for them, not recorded",
          tags: ["interaction"],
          produces: EVENT_STREAM_ANSWERS,
          params: affordanceParams,
        },
      },
      async (request, reply) => {
        const id = idOf(request);
        const name = nameOf(request);
        await affordance(id, "properties", name);
        // With URI variables, the Thing is asked for this stream: its values depend on them.
        const variables = await uriVariables(request, "property");
        if (Object.keys(variables).length > 0) {
          await relayAffordance(request, reply, commands(), { thing: id, kind: "property", name }, variables);
          return;
        }
        const after = await lastEventId(request, hub);
        openEventStream(request, reply, hub, after, (change) =>
          change.thing === id && change.kind === "reported" && change.affordance === name
            ? { event: "message", data: JSON.stringify(change.value ?? null) }
            : undefined,
        );
      },
    );

    app.get(
      "/things/:id/proxy",
      {
        schema: {
          summary: "The Thing's proxy TD: its forms point at this hub, with bearer security",
          produces: TD_ANSWERS,
          tags: ["interaction"],
          params: { type: "object", properties: { id: affordanceParams.properties.id } },
        },
      },
      async (request, reply) => {
        const { td } = await hub.directory.getLive(idOf(request));
        return sendTd(request, reply, proxyDescription(td, `${request.protocol}://${request.host}`));
      },
    );
  };
}
