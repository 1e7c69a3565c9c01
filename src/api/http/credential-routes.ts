// The credentials the hub uses towards a Thing, by security definition name: set and removed by
// an admin, never returned — GET says only which definitions have one.
import type { FastifyInstance, FastifyRequest } from "fastify";
import {
  ForbiddenError,
  NotFoundError,
  UnauthorizedError,
  UnavailableError,
  echoed,
  quoted,
} from "../../core/index.js";
import type { Hub, SecretInput, ThingSecrets } from "../../hub/index.js";
import { idOf, idParam } from "./directory-routes.js";
import { refuseBody } from "./content-types.js";

const secretText = { type: "string", minLength: 1, maxLength: 4096 } as const;
const schemeName = { type: "string", minLength: 1, maxLength: 256 } as const;

function requireAdmin(request: FastifyRequest): void {
  if (request.principal === undefined) throw new UnauthorizedError("Credentials need an admin bearer token");
  if (!request.principal.admin) {
    throw new ForbiddenError(`The token of "${request.principal.name}" may not see or change credentials`);
  }
}

export function credentialRoutes(hub: Hub) {
  const secrets = (): ThingSecrets => {
    if (hub.secrets === undefined) throw new UnavailableError("This hub keeps no credentials");
    return hub.secrets;
  };

  return async function plugin(app: FastifyInstance): Promise<void> {
    app.addHook("onRequest", async (request) => requireAdmin(request));

    app.put(
      "/things/:id/credentials",
      {
        schema: {
          summary:
            "Set the credentials for one of the Thing's security definitions (basic: username + password; bearer: token; apikey and snmp:community: key; snmp:usm: authPassphrase, + privPassphrase at authPriv); kept encrypted, never returned",
          tags: ["credentials"],
          params: idParam,
          body: {
            type: "object",
            additionalProperties: false,
            properties: {
              schemeName,
              username: secretText,
              password: secretText,
              token: secretText,
              key: secretText,
              authPassphrase: secretText,
              privPassphrase: secretText,
            },
          },
        },
      },
      async (request) => {
        const { td } = await hub.directory.getLive(idOf(request));
        const name = await secrets().set(td, request.body as SecretInput);
        return { schemeName: name, origins: (await secrets().originsOf(td))[name] ?? [] };
      },
    );

    app.delete(
      "/things/:id/credentials",
      {
        preValidation: refuseBody,
        schema: {
          summary: "Forget the credentials of one security definition (?schemeName=) or all of the Thing's",
          tags: ["credentials"],
          params: idParam,
          querystring: { type: "object", additionalProperties: false, properties: { schemeName } },
        },
      },
      async (request, reply) => {
        const id = idOf(request);
        await hub.directory.getLive(id);
        const { schemeName: name } = request.query as { schemeName?: string };
        const removed = await secrets().remove(id, name);
        if (removed === 0) {
          throw new NotFoundError(
            name === undefined
              ? `The hub holds no credentials for ${id}`
              : `The hub holds no credentials for ${quoted(name)} of ${echoed(id)}`,
          );
        }
        return reply.code(204).send();
      },
    );

    app.get(
      "/things/:id/credentials",
      {
        schema: {
          summary:
            "Which of the Thing's security definitions the hub holds credentials for, and the origins each is sent to (never the credentials)",
          tags: ["credentials"],
          params: idParam,
        },
      },
      async (request) => {
        const { td } = await hub.directory.getLive(idOf(request));
        const origins = await secrets().originsOf(td);
        return { names: Object.keys(origins).sort(), origins };
      },
    );
  };
}
