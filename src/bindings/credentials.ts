// Credentials for a form: the TD's securityDefinitions say where a credential goes, the hub's
// secrets say what it is (TD 1.1 §5.3.3). Pure: values in, values out.
import { ConflictError, ValidationError } from "../core/index.js";
import type { Form, SecurityScheme, ThingDescription } from "../core/index.js";
import { SNMP_AUTH_PROTOCOLS, SNMP_PRIV_PROTOCOLS, SNMP_SECURITY_LEVELS } from "./binding.js";
import type { Credentials, SnmpAuthProtocol, SnmpPrivProtocol, SnmpSecurityLevel } from "./binding.js";

/**
 * The security scheme of an SNMPv1/v2c community (an extension: TD 1.1 defines none for SNMP). Its
 * secret is the hub's `key` for the definition; the TD never holds the community in clear.
 */
export const SNMP_COMMUNITY = "snmp:community";

/**
 * The security scheme of an SNMPv3 user (RFC 3414 USM; an extension). The TD says who and how:
 * `snmp:user`, `snmp:securityLevel`, `snmp:authProtocol`, `snmp:privProtocol`; the hub holds the
 * passphrases (`authPassphrase`, `privPassphrase`), never the TD.
 */
export const SNMP_USM = "snmp:usm";

/** RFC 3414 §11.2: a USM passphrase has at least 8 characters (net-snmp's agent refuses less). */
export const MIN_USM_PASSPHRASE_LENGTH = 8;

/** What a `snmp:usm` definition of a TD says, checked. */
export interface UsmDefinition {
  readonly user: string;
  readonly level: SnmpSecurityLevel;
  readonly authProtocol?: SnmpAuthProtocol;
  readonly privProtocol?: SnmpPrivProtocol;
}

/** What the hub holds for one security definition of a Thing. */
export interface Secret {
  readonly username?: string;
  readonly password?: string;
  readonly token?: string;
  readonly key?: string;
  /** `snmp:usm`, authNoPriv and authPriv: the user's authentication passphrase. */
  readonly authPassphrase?: string;
  /** `snmp:usm`, authPriv: the user's privacy (encryption) passphrase. */
  readonly privPassphrase?: string;
  /**
   * Where it may be sent: the origins (`scheme://host[:port]`) of the forms it was set for. A TD
   * changed afterwards to point a form elsewhere does not take the secret with it.
   */
  readonly origins?: readonly string[];
}

/** The hub's secrets for one Thing, by the name of the security definition they satisfy. */
export type Secrets = Readonly<Record<string, Secret>>;

const PLACES = ["header", "query", "cookie"] as const;
type Place = (typeof PLACES)[number];

/**
 * The credentials a form needs: the form's `security`, else the TD's, every named definition
 * applying (TD §5.3.4.2). `nosec` needs nothing; a scheme the bindings do not apply, or one the hub
 * holds no secret for, is refused here rather than sent to the device half-authenticated.
 */
export function credentialsFor(
  td: ThingDescription,
  form: Form,
  href: string,
  secrets: Secrets = {},
  thing = td.id ?? td.title,
): Credentials[] {
  const names = securityOf(td, form);
  const credentials: Credentials[] = [];
  for (const name of names) {
    const scheme = Object.hasOwn(td.securityDefinitions, name) ? td.securityDefinitions[name] : undefined;
    if (scheme === undefined) {
      throw new ValidationError(`security "${name}" is not in securityDefinitions`, [
        { pointer: "/securityDefinitions", message: `no definition named "${name}"` },
      ]);
    }
    const secret = Object.hasOwn(secrets, name) ? secrets[name] : undefined;
    if (secret?.origins !== undefined && scheme.scheme !== "nosec")
      checkOrigin(name, secret.origins, href, thing);
    credentials.push(credentialFor(name, scheme, secret, thing, href));
  }
  return credentials;
}

/** The security definitions a form applies: its own `security`, else the TD's (TD §5.3.4.2). */
export function securityOf(td: ThingDescription, form: Form): string[] {
  return toList(form.security ?? td.security);
}

/**
 * `scheme://host[:port]` of an absolute URL, as a secret's `origins` hold it (`URL.origin` is
 * "null" for `mqtt:` and other schemes WHATWG does not know); undefined when it is no URL.
 */
export function originOf(href: string): string | undefined {
  try {
    const url = new URL(href);
    return url.host === "" ? undefined : `${url.protocol}//${url.host}`;
  } catch {
    return undefined;
  }
}

function checkOrigin(name: string, origins: readonly string[], href: string, thing: string): void {
  const origin = originOf(href);
  if (origin !== undefined && origins.includes(origin)) return;
  const setFor = origins.length === 0 ? "no address" : origins.join(", ");
  throw new ConflictError(
    `the credentials for security "${name}" of Thing ${thing} were set for ${setFor}, and the form now ` +
      `points at ${origin ?? href}: the hub does not send them there; set them again ` +
      `(PUT /things/{id}/credentials) if the Thing has moved`,
  );
}

function credentialFor(
  name: string,
  scheme: SecurityScheme,
  secret: Secret | undefined,
  thing: string,
  href: string,
): Credentials {
  const pointer = `/securityDefinitions/${escapePointer(name)}`;
  // Not a 401: the request to the hub was authorized; what is missing is the hub's own secret for
  // the Thing, which an admin sets (a 401 would tell the caller its own token was refused).
  const missing = (what: string): never => {
    throw new ConflictError(
      `the hub holds no ${what} for security "${name}" of Thing ${thing}: set it with ` +
        `things credentials set ${thing} (PUT /things/{id}/credentials)`,
    );
  };
  switch (scheme.scheme) {
    case "nosec":
      return { scheme: "nosec" };
    case "basic": {
      const place = placeOf(scheme, "header", pointer);
      if (place !== "header") throw unsupportedPlace(place, pointer);
      if (secret?.username === undefined || secret.password === undefined)
        return missing("username and password");
      return {
        scheme: "basic",
        username: secret.username,
        password: secret.password,
        name: nameOf(scheme, pointer) ?? "Authorization",
      };
    }
    case "bearer": {
      if (secret?.token === undefined) return missing("token");
      const place = placeOf(scheme, "header", pointer);
      const headerName = nameOf(scheme, pointer) ?? (place === "header" ? "Authorization" : undefined);
      if (headerName === undefined) throw nameRequired(place, pointer);
      return { scheme: "bearer", token: secret.token, in: place, name: headerName };
    }
    case "apikey": {
      if (secret?.key === undefined) return missing("key");
      // TD §5.3.3.4: `in` defaults to "query".
      const place = placeOf(scheme, "query", pointer);
      const keyName = nameOf(scheme, pointer);
      if (keyName === undefined) throw nameRequired(place, pointer);
      return { scheme: "apikey", key: secret.key, in: place, name: keyName };
    }
    case SNMP_COMMUNITY: {
      // A community travels in every SNMP message; sent anywhere else it would leak.
      if (!/^snmp:/i.test(href)) {
        throw new ValidationError(`security "${name}" (${SNMP_COMMUNITY}) applies to snmp: forms only`, [
          {
            pointer: `${pointer}/scheme`,
            message: `a form of another protocol cannot use ${SNMP_COMMUNITY}`,
          },
        ]);
      }
      if (secret?.key === undefined) return missing("community (as a key)");
      return { scheme: "snmp-community", community: secret.key };
    }
    case SNMP_USM: {
      if (!/^snmp:/i.test(href)) {
        throw new ValidationError(`security "${name}" (${SNMP_USM}) applies to snmp: forms only`, [
          { pointer: `${pointer}/scheme`, message: `a form of another protocol cannot use ${SNMP_USM}` },
        ]);
      }
      const usm = usmDefinition(name, scheme);
      if (usm.level === "noAuthNoPriv") return { scheme: "snmp-usm", ...usm };
      const needed = usm.level === "authPriv" ? "auth and priv passphrases" : "auth passphrase";
      if (secret?.authPassphrase === undefined) return missing(needed);
      if (usm.level === "authNoPriv")
        return { scheme: "snmp-usm", ...usm, authPassphrase: secret.authPassphrase };
      if (secret.privPassphrase === undefined) return missing("priv passphrase");
      return {
        scheme: "snmp-usm",
        ...usm,
        authPassphrase: secret.authPassphrase,
        privPassphrase: secret.privPassphrase,
      };
    }
    default:
      throw new ValidationError(`security scheme "${scheme.scheme}" is not supported by the bindings`, [
        {
          pointer: `${pointer}/scheme`,
          message: `supported: nosec, basic, bearer, apikey, ${SNMP_COMMUNITY}, ${SNMP_USM}`,
        },
      ]);
  }
}

/**
 * The user, level and protocols of a `snmp:usm` definition, or a ValidationError pointing at the
 * term that is missing or unknown: a protocol the level needs must be named (no silent MD5/DES
 * default), and one it does not use must not be (it would suggest protection that is not there).
 */
export function usmDefinition(name: string, scheme: SecurityScheme): UsmDefinition {
  const pointer = `/securityDefinitions/${escapePointer(name)}`;
  const fail = (term: string, message: string): never => {
    throw new ValidationError(`security "${name}" (${SNMP_USM}): ${term} ${message}`, [
      { pointer: `${pointer}/${escapePointer(term)}`, message },
    ]);
  };
  const user = scheme["snmp:user"];
  // RFC 3414 §5: usmUserName is an SnmpAdminString (SIZE(1..32)).
  if (typeof user !== "string" || user.length === 0 || Buffer.byteLength(user, "utf8") > 32)
    fail("snmp:user", "must be the USM user name, 1 to 32 bytes");
  const level = scheme["snmp:securityLevel"];
  if (typeof level !== "string" || !(SNMP_SECURITY_LEVELS as readonly string[]).includes(level))
    fail("snmp:securityLevel", `must be one of ${SNMP_SECURITY_LEVELS.join(", ")}`);
  const auth = scheme["snmp:authProtocol"];
  const priv = scheme["snmp:privProtocol"];
  const usm: { user: string; level: SnmpSecurityLevel } = {
    user: user as string,
    level: level as SnmpSecurityLevel,
  };
  if (usm.level === "noAuthNoPriv") {
    if (auth !== undefined) fail("snmp:authProtocol", "is not used at noAuthNoPriv: remove it");
    if (priv !== undefined) fail("snmp:privProtocol", "is not used at noAuthNoPriv: remove it");
    return usm;
  }
  if (typeof auth !== "string" || !(SNMP_AUTH_PROTOCOLS as readonly string[]).includes(auth)) {
    fail(
      "snmp:authProtocol",
      `${auth === undefined ? "is required at " + usm.level : `${JSON.stringify(auth)} is unknown`}: one of ${SNMP_AUTH_PROTOCOLS.join(", ")}`,
    );
  }
  const authProtocol = auth as SnmpAuthProtocol;
  if (usm.level === "authNoPriv") {
    if (priv !== undefined)
      fail("snmp:privProtocol", "is not used at authNoPriv: remove it, or say authPriv");
    return { ...usm, authProtocol };
  }
  if (typeof priv !== "string" || !(SNMP_PRIV_PROTOCOLS as readonly string[]).includes(priv)) {
    fail(
      "snmp:privProtocol",
      `${priv === undefined ? "is required at authPriv" : `${JSON.stringify(priv)} is unknown`}: one of ${SNMP_PRIV_PROTOCOLS.join(", ")}`,
    );
  }
  return { ...usm, authProtocol, privProtocol: priv as SnmpPrivProtocol };
}

function placeOf(scheme: SecurityScheme, fallback: Place, pointer: string): Place {
  const place = scheme.in ?? fallback;
  if (typeof place === "string" && (PLACES as readonly string[]).includes(place)) return place as Place;
  throw unsupportedPlace(typeof place === "string" ? place : JSON.stringify(place), pointer);
}

function nameOf(scheme: SecurityScheme, pointer: string): string | undefined {
  if (scheme.name === undefined) return undefined;
  if (
    typeof scheme.name !== "string" ||
    scheme.name === "" ||
    !/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(scheme.name)
  ) {
    throw new ValidationError("a security scheme's name must be a header, query or cookie name", [
      { pointer: `${pointer}/name`, message: "expected a token (RFC 9110 §5.6.2)" },
    ]);
  }
  return scheme.name;
}

function unsupportedPlace(place: string, pointer: string): ValidationError {
  return new ValidationError(`credentials "in": "${place}" is not supported`, [
    { pointer: `${pointer}/in`, message: "supported: header, query, cookie (basic: header)" },
  ]);
}

function nameRequired(place: Place, pointer: string): ValidationError {
  return new ValidationError(`credentials in the ${place} need a name`, [
    { pointer: `${pointer}/name`, message: "required" },
  ]);
}

function toList(value: string | string[]): string[] {
  return typeof value === "string" ? [value] : value;
}

/** RFC 6901 §3: `~` and `/` inside a reference token. */
export function escapePointer(token: string): string {
  return token.replaceAll("~", "~0").replaceAll("/", "~1");
}
