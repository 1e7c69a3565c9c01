// The hub's HTTP face: a fastify server with one plugin per API area, problem documents for
// every error, bearer-token authorization, and an OpenAPI document built from the route schemas.
import swagger from "@fastify/swagger";
import Fastify, { LogController, type FastifyBaseLogger, type FastifyInstance } from "fastify";
import { NotFoundError, echoed } from "../../core/index.js";
import { HUB_VERSION, type Discovery, type Hub } from "../../hub/index.js";
import type { MqttStatus } from "../mqtt/index.js";
import { registerAcceptCheck } from "./accept.js";
import { registerAuthorization } from "./authorization.js";
import { registerHostCheck } from "./host-check.js";
import { registerRequestLineCheck } from "./request-line.js";
import { registerContentTypes } from "./content-types.js";
import { registerExpectContinue } from "./expect-continue.js";
import { answerOptions, methodNotAllowed, refuseShadowedRoutes, trackRoutes } from "./method-not-allowed.js";
import { COMMA_LIST, refuseUnknownQuery, registerQueryNumbers } from "./query-numbers.js";
import { wellKnownRoutes } from "./directory-description.js";
import { directoryRoutes } from "./directory-routes.js";
import { eventRoutes } from "./event-routes.js";
import { MAX_PATH_SEGMENT, sendClientErrorProblem, sendProblem } from "./problem.js";
import { sharedValidators } from "./route-validators.js";
import { searchRoutes } from "./search-routes.js";
import { registerShutdown } from "./shutdown.js";
import { closeSilentConnections, silentConnectionsFirst } from "./silent-connections.js";
import { StreamSlots } from "./stream-slots.js";
import { historyRoutes } from "./history-routes.js";
import { logRoutes } from "./log-routes.js";
import { discoveryRoutes } from "./discovery-routes.js";
import { interactionRoutes } from "./interaction-routes.js";
import { credentialRoutes } from "./credential-routes.js";
import { mqttCredentialRoutes } from "./mqtt-credential-routes.js";
import { graphRoutes } from "./graph-routes.js";
import { rolloutRoutes } from "./rollout-routes.js";
import { releaseRoutes } from "./release-routes.js";
import { uiRoutes } from "./ui-routes.js";
import { graphqlApi } from "../graphql/index.js";

export interface ServerOptions {
  /** `POST /discover`; without it, that route answers 503. */
  discovery?: Discovery;
  /** The built web UI to serve at `/` (default: dist/ui, where `npm run build` puts it). */
  uiDirectory?: string;
  /** What `GET /health` says of MQTT on this process (started after the server); none without MQTT. */
  mqtt?: () => MqttStatus | undefined;
}

export async function buildServer(hub: Hub, options: ServerOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({
    // The cast keeps fastify's instance type generic over its base logger, not pino's Logger.
    // eslint-disable-next-line @typescript-eslint/no-unnecessary-type-assertion
    loggerInstance: hub.logger as FastifyBaseLogger,
    bodyLimit: hub.config.bodyLimit,
    // Fastify turns Node's request timeout off: a client sending its body a byte at a time held its
    // connection (and a file descriptor) for as long as it liked. Node checks the deadlines every
    // connectionsCheckingInterval (default 30 s): no less often than the timeout itself. Node 20
    // ignores the request timeout while the headers timeout (default 60 s) is longer.
    requestTimeout: hub.config.requestTimeoutMs,
    http: {
      connectionsCheckingInterval: Math.min(30_000, hub.config.requestTimeoutMs),
      headersTimeout: Math.min(60_000, hub.config.requestTimeoutMs),
      // Node's own refusal of a request without Host is an empty 400: request-line.ts answers it.
      requireHostHeader: false,
    },
    // One line per request at 5,000 requests/s is noise: requests are logged at debug below.
    logController: new LogController({ disableRequestLogging: true }),
    // Thing ids are IRIs; some are long.
    routerOptions: { maxParamLength: MAX_PATH_SEGMENT },
    // While the server closes, registerShutdown answers with a problem document instead.
    return503OnClosing: false,
    // A URL the router cannot decode (a bad %-escape) gets a problem document like every error.
    frameworkErrors: (error, request, reply) => {
      void sendProblem(request, reply, error);
    },
    // …and so does a request Node's HTTP parser refuses (headers too large, not HTTP at all).
    // A connection that sent nothing is closed without an answer, whichever timer finds it first.
    clientErrorHandler: silentConnectionsFirst(sendClientErrorProblem),
    // Compiled once per process, not once per server (route-validators.ts). Fastify takes any
    // builder given here as a custom one, and then leaves a `headers` schema's names as they are
    // instead of lower-casing them: a route that checks headers names them in lower case.
    schemaController: { compilersFactory: { buildValidator: sharedValidators } },
    ajv: {
      // verbose: each error carries its schema, whose description explains a pattern (problem.ts).
      customOptions: {
        coerceTypes: true,
        removeAdditional: false,
        useDefaults: true,
        allErrors: true,
        verbose: true,
        // A query parameter's mark that it lists several values (query-numbers.ts): no check.
        keywords: [COMMA_LIST],
      },
    },
  });
  closeSilentConnections(app, Math.min(60_000, hub.config.requestTimeoutMs));
  app.addHook("onResponse", async (request, reply) => {
    request.log.debug(
      { method: request.method, url: request.url, status: reply.statusCode, ms: reply.elapsedTime },
      "request",
    );
  });

  await app.register(swagger, {
    openapi: {
      openapi: "3.1.0",
      info: {
        title: "Hyperthings",
        version: HUB_VERSION,
        description:
          "The W3C WoT Thing Description Directory API of a Hyperthings hub, and its operations endpoints.",
      },
      components: { securitySchemes: { bearer: { type: "http", scheme: "bearer" } } },
      security: [{ bearer: [] }],
    },
  });

  app.setErrorHandler((error, request, reply) => sendProblem(request, reply, error));
  const routes = trackRoutes(app);
  app.setNotFoundHandler(
    (request, reply) =>
      answerOptions(routes, request, reply) ??
      sendProblem(
        request,
        reply,
        methodNotAllowed(routes, request) ??
          new NotFoundError(`No such resource: ${request.method} ${echoed(request.url.split("?")[0] ?? "")}`),
      ),
  );
  registerShutdown(app, { graceMs: hub.config.stopGraceMs });
  app.decorate("streamSlots", new StreamSlots(hub.config.maxStreamsPerClient));
  registerContentTypes(app);
  registerExpectContinue(app);
  registerQueryNumbers(app);
  refuseUnknownQuery(app);
  registerRequestLineCheck(app);
  registerHostCheck(app, hub.config);
  refuseShadowedRoutes(app, routes);
  registerAuthorization(app, hub);
  registerAcceptCheck(app);

  await app.register(directoryRoutes(hub));
  await app.register(searchRoutes(hub));
  await app.register(eventRoutes(hub));
  await app.register(historyRoutes(hub));
  await app.register(logRoutes(hub));
  await app.register(interactionRoutes(hub));
  await app.register(credentialRoutes(hub));
  await app.register(mqttCredentialRoutes(hub));
  await app.register(graphRoutes(hub));
  await app.register(rolloutRoutes(hub));
  await app.register(releaseRoutes(hub));
  await app.register(discoveryRoutes(hub, options.discovery));
  await app.register(wellKnownRoutes(hub, HUB_VERSION, options.mqtt));
  await app.register(graphqlApi(hub));
  await app.register(
    uiRoutes({ ...(options.uiDirectory !== undefined && { directory: options.uiDirectory }) }),
  );
  app.get("/openapi.json", { schema: { hide: true } }, async () => app.swagger());
  return app;
}
