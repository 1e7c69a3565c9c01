// A managed Thing's proxy TD: its TD with every form pointing at the hub's interaction endpoints
// and bearer security, so that any WoT client uses the Thing through the hub (and its Log).
import type {
  ActionAffordance,
  DataSchema,
  EventAffordance,
  Form,
  PropertyAffordance,
  RegisteredThingDescription,
  ThingDescription,
} from "../../core/index.js";
import { thingPath } from "./thing-path.js";

/** The name of the proxy TD's one security definition. */
export const PROXY_SECURITY = "hub_bearer";

const JSON_TYPE = "application/json";

/** The proxy TD of `td` on the hub at `origin` (`http://host:port`, as the client reached it). */
export function proxyDescription(td: RegisteredThingDescription, origin: string): ThingDescription {
  const thingUrl = `${origin}${thingPath(td.id)}`;
  // The device's own addressing (base, Thing-level forms) and security stay behind. URI variables
  // become query parameters of the hub's forms, the TD's own merged into each affordance's.
  const {
    base: _base,
    forms: _forms,
    uriVariables: thingVariables,
    security: _security,
    securityDefinitions: _securityDefinitions,
    properties,
    actions,
    events,
    ...rest
  } = td;
  const proxy: ThingDescription = {
    ...rest,
    securityDefinitions: {
      [PROXY_SECURITY]: {
        scheme: "bearer",
        in: "header",
        name: "Authorization",
        description: "A token of the hub (admin to write and invoke, read-only to read)",
      },
    },
    security: PROXY_SECURITY,
  };
  if (properties !== undefined) {
    proxy.properties = mapEntries(properties, (name, property) =>
      withVariables(
        proxyProperty(property, `${thingUrl}/properties/${encodeURIComponent(name)}`),
        thingVariables,
        property.uriVariables,
      ),
    );
  }
  if (actions !== undefined) {
    proxy.actions = mapEntries(actions, (name, action) =>
      withVariables(
        proxyAction(action, `${thingUrl}/actions/${encodeURIComponent(name)}`),
        thingVariables,
        action.uriVariables,
      ),
    );
  }
  if (events !== undefined) {
    proxy.events = mapEntries(events, (name, event) =>
      withVariables(
        proxyEvent(event, `${thingUrl}/events/${encodeURIComponent(name)}`),
        thingVariables,
        event.uriVariables,
      ),
    );
  }
  return proxy;
}

/**
 * The affordance with the URI variables its forms on the device take, as the query of each of
 * its forms (RFC 6570 `{?a,b}`: read, write, invoke, observe, subscribe); the hub passes them on.
 * A stream given none follows the hub's own observation (which uses their defaults).
 */
function withVariables<T extends PropertyAffordance | ActionAffordance | EventAffordance>(
  affordance: T,
  ...declared: (Record<string, DataSchema> | undefined)[]
): T {
  const variables: Record<string, DataSchema> = {};
  for (const group of declared) Object.assign(variables, group);
  const names = Object.keys(variables);
  if (names.length === 0) return affordance;
  const query = `{?${names.map(encodeURIComponent).join(",")}}`;
  return {
    ...affordance,
    uriVariables: variables,
    forms: affordance.forms.map((form) => ({ ...form, href: `${form.href}${query}` })),
  };
}

function mapEntries<T, U>(group: Record<string, T>, map: (name: string, value: T) => U): Record<string, U> {
  return Object.fromEntries(Object.entries(group).map(([name, value]) => [name, map(name, value)]));
}

function proxyProperty(property: PropertyAffordance, href: string): PropertyAffordance {
  const { forms: _forms, uriVariables: _uriVariables, ...schema } = property;
  const ops: string[] = [];
  if (property.writeOnly !== true) ops.push("readproperty");
  if (property.readOnly !== true) ops.push("writeproperty");
  const forms: Form[] = [{ href, op: ops.length > 0 ? ops : ["readproperty"], contentType: JSON_TYPE }];
  if (property.observable === true) {
    forms.push({
      href: `${href}/observe`,
      op: ["observeproperty"],
      subprotocol: "sse",
      contentType: JSON_TYPE,
    });
  }
  return { ...schema, forms };
}

function proxyAction(action: ActionAffordance, href: string): ActionAffordance {
  const { forms: _forms, uriVariables: _uriVariables, ...rest } = action;
  return { ...rest, forms: [{ href, op: "invokeaction", contentType: JSON_TYPE }] };
}

function proxyEvent(event: EventAffordance, href: string): EventAffordance {
  const { forms: _forms, uriVariables: _uriVariables, ...rest } = event;
  return { ...rest, forms: [{ href, op: "subscribeevent", subprotocol: "sse", contentType: JSON_TYPE }] };
}
