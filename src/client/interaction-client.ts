// The interaction half of the typed client: a Thing's properties and actions through the hub
// (read, write, invoke, an asynchronous action's status), its proxy TD, and the credentials the
// hub holds for it. Global fetch only, like its bases.
import type { ThingDescription } from "../core/index.js";
import { HubError, thingPathOf } from "./directory-client.js";
import { HubClient } from "./hub-client.js";
import { readEventStream } from "./server-sent-events.js";

const JSON_TYPE = "application/json";

/** One item of a relayed stream: a value the Thing sent, or a failure the stream goes on after. */
export type RelayedItem =
  { readonly value: unknown } | { readonly error: { readonly reason: string; readonly message: string } };

/** What an invocation gives: the output of an action that ended, or the status resource of one that runs on. */
export type ActionResult = { status: "completed"; output?: unknown } | { status: "running"; href: string };

/** An asynchronous action's status (TD 1.1 ActionStatus), as the hub keeps it. */
export interface ActionStatus {
  status: "running" | "completed" | "failed";
  output?: unknown;
  error?: unknown;
  href?: string;
}

/**
 * A secret for one of the Thing's security definitions: basic, bearer, apikey or
 * snmp:community (a key), snmp:usm (the passphrases its security level needs).
 */
export type CredentialsInput = { schemeName?: string } & (
  | { username: string; password: string }
  | { token: string }
  | { key: string }
  | { authPassphrase: string; privPassphrase?: string }
);

/** Values for the URI variables an affordance declares (TD `uriVariables`), sent as the query. */
export type UriVariableValues = Readonly<Record<string, string>>;

function affordancePath(
  id: string,
  kind: "properties" | "actions",
  name: string,
  uriVariables: UriVariableValues = {},
): string {
  const query = new URLSearchParams(uriVariables).toString();
  return `${thingPathOf(id)}/${kind}/${encodeURIComponent(name)}${query === "" ? "" : `?${query}`}`;
}

async function jsonOrNothing(response: Response): Promise<unknown> {
  if (response.status === 204) return undefined;
  const text = await response.text();
  if (text.length === 0) return undefined;
  try {
    return JSON.parse(text);
  } catch {
    throw new HubError({
      status: response.status,
      title: "Unexpected answer",
      detail: "the answer is not JSON",
    });
  }
}

export class InteractionClient extends HubClient {
  /**
   * A Thing's event, or a property's values, asked of the Thing with URI variables
   * (`GET …/events/{name}?…`, `…/properties/{name}/observe?…`): nothing of it is recorded, so it is
   * not resumed; it ends when the hub ends it (the Thing ended the subscription), or at `signal`.
   * A refusal (400) or a Thing that cannot be reached (502) is a HubError before any item.
   */
  async *relay(
    id: string,
    kind: "event" | "property",
    name: string,
    uriVariables: UriVariableValues,
    signal?: AbortSignal,
  ): AsyncGenerator<RelayedItem, void, undefined> {
    const query = new URLSearchParams(uriVariables).toString();
    const path =
      kind === "event"
        ? `${thingPathOf(id)}/events/${encodeURIComponent(name)}`
        : `${thingPathOf(id)}/properties/${encodeURIComponent(name)}/observe`;
    const response = await this.request("GET", `${path}${query === "" ? "" : `?${query}`}`, {
      accept: "text/event-stream",
      signal,
    });
    if (response.body === null) return;
    try {
      for await (const event of readEventStream(response.body)) {
        const data: unknown = JSON.parse(event.data);
        if (event.event === "error") {
          const failure = data as { reason?: unknown; message?: unknown };
          yield { error: { reason: String(failure.reason), message: String(failure.message) } };
        } else yield { value: data };
      }
    } catch (err) {
      if (signal?.aborted === true) return;
      throw err;
    }
  }

  /** Reads a property from the Thing through the hub (undefined when the Thing sent no value). */
  async readProperty(id: string, name: string, uriVariables?: UriVariableValues): Promise<unknown> {
    return jsonOrNothing(await this.request("GET", affordancePath(id, "properties", name, uriVariables)));
  }

  /** Writes a property; the hub checks the value against the property's schema before sending it. */
  async writeProperty(
    id: string,
    name: string,
    value: unknown,
    uriVariables?: UriVariableValues,
  ): Promise<void> {
    await this.request("PUT", affordancePath(id, "properties", name, uriVariables), {
      body: JSON.stringify(value),
      contentType: JSON_TYPE,
    });
  }

  /** Invokes an action, with an input if it takes one. */
  async invokeAction(
    id: string,
    name: string,
    input?: unknown,
    uriVariables?: UriVariableValues,
  ): Promise<ActionResult> {
    const response = await this.request("POST", affordancePath(id, "actions", name, uriVariables), {
      ...(input !== undefined && { body: JSON.stringify(input), contentType: JSON_TYPE }),
    });
    if (response.status === 201) {
      const location = response.headers.get("location");
      await response.body?.cancel();
      if (location === null) {
        throw new HubError({
          status: 201,
          title: "Unexpected answer",
          detail: "an asynchronous action without a Location",
        });
      }
      return { status: "running", href: new URL(location, this.url).href };
    }
    const output = await jsonOrNothing(response);
    return output === undefined ? { status: "completed" } : { status: "completed", output };
  }

  /** An asynchronous action's status, by the href `invokeAction` gave. */
  async actionStatus(href: string): Promise<ActionStatus> {
    return (await this.jsonOf(await this.request("GET", new URL(href, this.url)))) as ActionStatus;
  }

  /** The Thing's proxy TD: its forms point at the hub. */
  async proxyDescription(id: string): Promise<ThingDescription> {
    const response = await this.request("GET", `${thingPathOf(id)}/proxy`, {
      accept: "application/td+json, application/json",
    });
    return (await this.jsonOf(response)) as ThingDescription;
  }

  /**
   * Sets the credentials the hub uses towards the Thing; returns the security definition they are
   * for, and the origins they will be sent to (those of the forms the definition applies to).
   */
  async setCredentials(
    id: string,
    credentials: CredentialsInput,
  ): Promise<{ schemeName: string; origins: string[] }> {
    const response = await this.request("PUT", `${thingPathOf(id)}/credentials`, {
      body: JSON.stringify(credentials),
      contentType: JSON_TYPE,
    });
    return (await this.jsonOf(response)) as { schemeName: string; origins: string[] };
  }

  /** Forgets the credentials of one security definition, or all of the Thing's. */
  async removeCredentials(id: string, schemeName?: string): Promise<void> {
    const url = new URL(`${thingPathOf(id)}/credentials`, this.url);
    if (schemeName !== undefined) url.searchParams.set("schemeName", schemeName);
    await this.request("DELETE", url);
  }

  /**
   * The security definitions the hub holds credentials for, and the origins each is sent to
   * (never the credentials).
   */
  async credentialNames(id: string): Promise<{ names: string[]; origins: Record<string, string[]> }> {
    const response = await this.request("GET", `${thingPathOf(id)}/credentials`);
    return (await this.jsonOf(response)) as { names: string[]; origins: Record<string, string[]> };
  }
}
