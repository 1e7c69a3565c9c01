// Registration information of the W3C WoT Discovery directory (§7.3.2.1.4): what the directory
// knows about a TD's registration, split from the TD on the way in and added on the way out.
import { ValidationError } from "./errors.js";
import { isRfc3339Time } from "./time-expression.js";
import type { Context, RegisteredThingDescription, ThingDescription } from "./thing-description.js";

export const DISCOVERY_CONTEXT = "https://www.w3.org/2022/wot/discovery";
/** The longest time to live a registrant may ask for: ten years, in seconds. */
export const MAX_TTL_SECONDS = 10 * 365 * 24 * 3600;

export interface RegistrationRequest {
  ttl?: number;
  expires?: string;
}

export interface RegistrationInfo {
  created: string;
  modified: string;
  expires?: string;
  ttl?: number;
  retrieved: string;
}

/**
 * Takes the `registration` member off a submitted TD and returns what the registrant may set
 * in it (`ttl` or `expires`); `created`/`modified`/`retrieved` are the directory's to say.
 */
export function splitRegistration(td: ThingDescription): {
  td: ThingDescription;
  request: RegistrationRequest;
} {
  const { registration, ...rest } = td;
  if (registration === undefined) return { td: rest, request: {} };
  if (typeof registration !== "object" || registration === null || Array.isArray(registration)) {
    throw new ValidationError("registration must be an object", [
      { pointer: "/registration", message: "must be object" },
    ]);
  }
  const { ttl, expires } = registration as Record<string, unknown>;
  const request: RegistrationRequest = {};
  if (ttl !== undefined) {
    if (typeof ttl !== "number" || !Number.isInteger(ttl) || ttl < 1 || ttl > MAX_TTL_SECONDS) {
      throw new ValidationError(
        `registration.ttl must be a whole number of seconds from 1 to ${MAX_TTL_SECONDS}`,
        [{ pointer: "/registration/ttl", message: "must be an integer in [1, 315360000]" }],
      );
    }
    request.ttl = ttl;
  }
  if (expires !== undefined) {
    // Date.parse would take "Jan 1 2031", "5000", a time without a zone (as local time) and
    // 2030-02-30 (as March 2nd): an expiry other than the one the registrant meant.
    if (typeof expires !== "string" || !isRfc3339Time(expires)) {
      throw new ValidationError(
        "registration.expires must be an RFC 3339 date-time with a time zone, such as 2030-01-01T00:00:00Z",
        [{ pointer: "/registration/expires", message: "must be an RFC 3339 date-time" }],
      );
    }
    request.expires = new Date(expires).toISOString();
  }
  return { td: rest, request };
}

/** The absolute expiry a request asks for, given the time of registration; ttl wins over expires. */
export function expiryOf(request: RegistrationRequest, now: Date): string | undefined {
  if (request.ttl !== undefined) return new Date(now.getTime() + request.ttl * 1000).toISOString();
  if (request.expires !== undefined) {
    if (Date.parse(request.expires) <= now.getTime()) {
      throw new ValidationError(`registration.expires (${request.expires}) is in the past`, [
        { pointer: "/registration/expires", message: "must be in the future" },
      ]);
    }
    return request.expires;
  }
  return undefined;
}

function withDiscoveryContext(context: Context): Context {
  const list = Array.isArray(context) ? context : [context];
  if (list.includes(DISCOVERY_CONTEXT)) return context;
  return [...list, DISCOVERY_CONTEXT];
}

/** The enriched TD a directory returns: the TD as registered, with its registration info. */
export function enrichThingDescription(
  td: RegisteredThingDescription,
  registration: RegistrationInfo,
): RegisteredThingDescription {
  return { ...td, "@context": withDiscoveryContext(td["@context"]), registration };
}
