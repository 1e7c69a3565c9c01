// JSON Schemas (draft-07, compiled by Ajv) of the W3C WoT Thing Description 1.1 information model,
// written from https://www.w3.org/TR/wot-thing-description11/ §5.3 and §6 (not copied from W3C's file).
//
// Design: every choice between alternatives is an `if`/`then`/`else` on a discriminator (the JSON
// type, or `scheme` of a security scheme), never `oneOf`/`anyOf`, so a failure is reported from the
// one branch that applies instead of from every branch. Objects stay open (`additionalProperties`
// is never false): TD 1.1 is open-world, and extension terms (`htv:methodName`, `saref:x`) are valid
// anywhere. Misspelled operation types, data types and scheme names (`invokeAction`) are caught by
// `enum`. `hints` is an annotation keyword: the message to report when the keyword named in it fails.
// Rules a schema cannot express (security names resolve, no Thing Model terms, safe `pattern`s) are
// checked in code, in thing-description-validation.ts.
import type { SchemaObject } from "ajv";

export const TD_CONTEXT_V1 = "https://www.w3.org/2019/wot/td/v1";
export const TD_CONTEXT_V11 = "https://www.w3.org/2022/wot/td/v1.1";

/** Form `op` values (§5.3.4, Form), by where the form sits. */
export const PROPERTY_OPERATIONS = [
  "readproperty",
  "writeproperty",
  "observeproperty",
  "unobserveproperty",
] as const;
export const ACTION_OPERATIONS = ["invokeaction", "queryaction", "cancelaction"] as const;
export const EVENT_OPERATIONS = ["subscribeevent", "unsubscribeevent"] as const;
export const THING_OPERATIONS = [
  "readallproperties",
  "writeallproperties",
  "readmultipleproperties",
  "writemultipleproperties",
  "observeallproperties",
  "unobserveallproperties",
  "queryallactions",
  "subscribeallevents",
  "unsubscribeallevents",
] as const;

/** §5.3.3 security schemes defined by TD 1.1; others are extensions with a prefixed name. */
export const SECURITY_SCHEMES = [
  "nosec",
  "combo",
  "basic",
  "digest",
  "apikey",
  "bearer",
  "psk",
  "oauth2",
  "auto",
] as const;

export const DATA_TYPES = ["boolean", "integer", "number", "string", "object", "array", "null"] as const;

/** The custom formats the schemas use; thing-description-validation.ts registers them with Ajv. */
export const FORMAT_IRI = "td-iri";
export const FORMAT_IRI_REFERENCE = "td-iri-reference";

// RFC 5646 §2.1 Language-Tag (langtag / privateuse / the irregular grandfathered tags).
const LANGUAGE_TAG =
  "^(?:(?:[A-Za-z]{2,3}(?:-[A-Za-z]{3}){0,3}|[A-Za-z]{4,8})(?:-[A-Za-z]{4})?(?:-(?:[A-Za-z]{2}|[0-9]{3}))?" +
  "(?:-(?:[A-Za-z0-9]{5,8}|[0-9][A-Za-z0-9]{3}))*(?:-[0-9A-WY-Za-wy-z](?:-[A-Za-z0-9]{2,8})+)*(?:-[xX](?:-[A-Za-z0-9]{1,8})+)?" +
  "|[xX](?:-[A-Za-z0-9]{1,8})+|[iI]-[A-Za-z]{2,9}|en-GB-oed|sgn-(?:BE-FR|BE-NL|CH-DE))$";

const CONTEXT_HINT = `must be ${TD_CONTEXT_V11} (or ${TD_CONTEXT_V1}), alone or first in an array`;

const ref = (name: string): SchemaObject => ({ $ref: `#/definitions/${name}` });

const str: SchemaObject = { type: "string" };
const bool: SchemaObject = { type: "boolean" };
const num: SchemaObject = { type: "number" };
const count: SchemaObject = { type: "integer", minimum: 0 };

/** A value that is one `item` or an array of them (the TD JSON form allows a lone value for an array). */
function oneOrMany(item: SchemaObject, what: string, minItems = 0): SchemaObject {
  const many: SchemaObject = { items: item };
  if (minItems > 0) {
    many.minItems = minItems;
    many.hints = { minItems: "must not be an empty array" };
  }
  return {
    if: { type: "array" },
    then: many,
    else: { ...item, hints: { type: `must be ${what} or an array of them`, ...(item.hints as object) } },
  };
}

/** A member that must be absent; `hint` says why. */
function forbidden(hint: string): SchemaObject {
  return { not: {}, hints: { not: hint } };
}

function mapOf(value: SchemaObject, nonEmpty = false): SchemaObject {
  const schema: SchemaObject = { type: "object", additionalProperties: value };
  if (nonEmpty) {
    schema.minProperties = 1;
    schema.hints = { minProperties: "must have at least one entry" };
  }
  return schema;
}

function operations(ops: readonly string[]): SchemaObject {
  return oneOrMany({ type: "string", enum: [...ops] }, "an operation type", 1);
}

/** Members every annotated element shares (§5.3.1). */
const annotations = {
  "@type": ref("typeDeclaration"),
  title: str,
  titles: ref("multiLanguage"),
  description: str,
  descriptions: ref("multiLanguage"),
};

/** §5.3.2 DataSchema and its subclasses, as members (shared by DataSchema and PropertyAffordance). */
const dataSchemaMembers = {
  ...annotations,
  const: {},
  default: {},
  unit: str,
  oneOf: { type: "array", items: ref("dataSchema") },
  enum: {
    type: "array",
    minItems: 1,
    uniqueItems: true,
    hints: { minItems: "must not be empty (an enum lists at least one value)" },
  },
  readOnly: bool,
  writeOnly: bool,
  format: str,
  contentEncoding: str,
  contentMediaType: str,
  type: { enum: [...DATA_TYPES] },
  // ArraySchema
  items: { if: { type: "array" }, then: { items: ref("dataSchema") }, else: ref("dataSchema") },
  minItems: count,
  maxItems: count,
  // NumberSchema, IntegerSchema
  minimum: num,
  maximum: num,
  exclusiveMinimum: num,
  exclusiveMaximum: num,
  multipleOf: { type: "number", exclusiveMinimum: 0 },
  // ObjectSchema
  properties: mapOf(ref("dataSchema")),
  required: { type: "array", items: str },
  // StringSchema
  minLength: count,
  maxLength: count,
  pattern: str,
};

/** §5.3.4 Form, for forms whose operations are `ops`. */
function form(ops: readonly string[], opRequired: boolean): SchemaObject {
  return {
    type: "object",
    required: opRequired ? ["href", "op"] : ["href"],
    properties: {
      href: ref("iriReference"),
      op: operations(ops),
      contentType: str,
      contentCoding: str,
      subprotocol: str,
      security: ref("securityNames"),
      scopes: oneOrMany(str, "a string"),
      response: ref("expectedResponse"),
      additionalResponses: oneOrMany(ref("additionalResponse"), "an object"),
    },
  };
}

function forms(formDefinition: string): SchemaObject {
  return {
    type: "array",
    minItems: 1,
    items: ref(formDefinition),
    hints: { minItems: "must not be empty (an affordance has at least one form)" },
  };
}

/** §5.3.1 InteractionAffordance members. */
function affordance(formDefinition: string): Record<string, SchemaObject> {
  return { ...annotations, forms: forms(formDefinition), uriVariables: mapOf(ref("dataSchema")) };
}

/** The `then` of a security scheme: the members that scheme `name` defines (§5.3.3). */
function scheme(name: string, members: Record<string, SchemaObject>, extra: SchemaObject = {}): SchemaObject {
  return {
    if: { properties: { scheme: { const: name } }, required: ["scheme"] },
    then: { properties: members, ...extra },
  };
}

const IN_LOCATIONS = ["header", "query", "body", "cookie", "auto"];
const securityNameList: SchemaObject = {
  type: "array",
  minItems: 2,
  items: str,
  hints: { minItems: "must name at least two security schemes" },
};

export const thingDescriptionSchema: SchemaObject = {
  $id: "https://hyperthings.invalid/schemas/thing-description-1.1.json",
  definitions: {
    iri: { type: "string", format: FORMAT_IRI },
    iriReference: { type: "string", format: FORMAT_IRI_REFERENCE },
    multiLanguage: {
      type: "object",
      propertyNames: { pattern: LANGUAGE_TAG, hints: { pattern: "is not a BCP 47 language tag" } },
      additionalProperties: str,
    },
    typeDeclaration: oneOrMany(str, "a string"),
    securityNames: oneOrMany(str, "a security scheme name", 1),
    dataSchema: { type: "object", properties: dataSchemaMembers },
    expectedResponse: { type: "object", required: ["contentType"], properties: { contentType: str } },
    additionalResponse: { type: "object", properties: { success: bool, contentType: str, schema: str } },
    propertyForm: form(PROPERTY_OPERATIONS, false),
    actionForm: form(ACTION_OPERATIONS, false),
    eventForm: form(EVENT_OPERATIONS, false),
    thingForm: form(THING_OPERATIONS, true),
    propertyAffordance: {
      type: "object",
      required: ["forms"],
      properties: { ...dataSchemaMembers, ...affordance("propertyForm"), observable: bool },
    },
    actionAffordance: {
      type: "object",
      required: ["forms"],
      properties: {
        ...affordance("actionForm"),
        input: ref("dataSchema"),
        output: ref("dataSchema"),
        safe: bool,
        idempotent: bool,
        synchronous: bool,
      },
    },
    eventAffordance: {
      type: "object",
      required: ["forms"],
      properties: {
        ...affordance("eventForm"),
        subscription: ref("dataSchema"),
        data: ref("dataSchema"),
        dataResponse: ref("dataSchema"),
        cancellation: ref("dataSchema"),
      },
    },
    // §5.3.4 Link; `sizes` belongs to icon links only.
    link: {
      type: "object",
      required: ["href"],
      properties: {
        href: ref("iriReference"),
        type: str,
        rel: str,
        anchor: ref("iriReference"),
        hreflang: oneOrMany(
          { type: "string", pattern: LANGUAGE_TAG, hints: { pattern: "must be a BCP 47 language tag" } },
          "a language tag",
        ),
      },
      if: { properties: { rel: { const: "icon" } }, required: ["rel"] },
      then: {
        properties: {
          sizes: {
            type: "string",
            pattern: "^(?:any|[0-9]+[xX][0-9]+(?: +[0-9]+[xX][0-9]+)*)$",
            hints: { pattern: 'must be "any" or space-separated sizes such as "16x16 32x32"' },
          },
        },
      },
      else: {
        properties: { sizes: forbidden('must not be present: sizes is only for a link with rel "icon"') },
      },
    },
    // §5.3.3 SecurityScheme and its subclasses, chosen by `scheme`.
    securityScheme: {
      type: "object",
      required: ["scheme"],
      properties: {
        "@type": ref("typeDeclaration"),
        description: str,
        descriptions: ref("multiLanguage"),
        proxy: ref("iriReference"),
        scheme: {
          type: "string",
          if: { pattern: "^[^:]+:" },
          else: {
            enum: [...SECURITY_SCHEMES],
            hints: {
              enum: `must be one of ${SECURITY_SCHEMES.join(", ")}, or a prefixed extension scheme such as ace:ACESecurityScheme`,
            },
          },
        },
      },
      allOf: [
        scheme(
          "combo",
          { oneOf: securityNameList, allOf: securityNameList },
          {
            if: { properties: { oneOf: {} }, required: ["oneOf"] },
            then: { properties: { allOf: forbidden("must not be present together with oneOf") } },
            else: {
              properties: { allOf: {} },
              required: ["allOf"],
              hints: {
                required: "must have either oneOf or allOf, listing the security schemes it combines",
              },
            },
          },
        ),
        scheme("basic", { in: { enum: IN_LOCATIONS }, name: str }),
        scheme("digest", { qop: { enum: ["auth", "auth-int"] }, in: { enum: IN_LOCATIONS }, name: str }),
        scheme("apikey", { in: { enum: [...IN_LOCATIONS, "uri"] }, name: str }),
        scheme("bearer", {
          authorization: ref("iriReference"),
          alg: str,
          format: str,
          in: { enum: IN_LOCATIONS },
          name: str,
        }),
        scheme("psk", { identity: str }),
        scheme("oauth2", {
          authorization: ref("iriReference"),
          token: ref("iriReference"),
          refresh: ref("iriReference"),
          scopes: oneOrMany(str, "a string"),
          flow: str,
        }),
        scheme("auto", { name: forbidden("must not be present: an auto scheme has no name") }),
      ],
    },
    // §5.3.1 Thing
    thing: {
      type: "object",
      required: ["@context", "title", "security", "securityDefinitions"],
      properties: {
        // The TD context URI comes first; later entries are extensions (prefixes, @language).
        "@context": {
          if: { type: "array" },
          then: {
            minItems: 1,
            items: [{ enum: [TD_CONTEXT_V11, TD_CONTEXT_V1], hints: { enum: CONTEXT_HINT } }],
            additionalItems: {
              type: ["string", "object"],
              not: { const: TD_CONTEXT_V1 },
              hints: {
                type: "must be a context URI or a context object",
                not: `must not be the TD 1.0 context after another one (put ${TD_CONTEXT_V1} first)`,
              },
            },
            hints: { minItems: `must not be empty: it starts with ${TD_CONTEXT_V11}` },
          },
          else: { enum: [TD_CONTEXT_V11, TD_CONTEXT_V1], hints: { enum: CONTEXT_HINT } },
        },
        ...annotations,
        id: str,
        version: {
          type: "object",
          required: ["instance"],
          properties: { instance: str, model: str },
        },
        created: { type: "string", format: "date-time" },
        modified: { type: "string", format: "date-time" },
        support: ref("iriReference"),
        base: ref("iri"),
        properties: mapOf(ref("propertyAffordance")),
        actions: mapOf(ref("actionAffordance")),
        events: mapOf(ref("eventAffordance")),
        links: { type: "array", items: ref("link") },
        forms: {
          type: "array",
          minItems: 1,
          items: ref("thingForm"),
          hints: { minItems: "must not be empty" },
        },
        security: ref("securityNames"),
        securityDefinitions: mapOf(ref("securityScheme"), true),
        profile: oneOrMany({ type: "string", format: FORMAT_IRI }, "an IRI", 1),
        schemaDefinitions: mapOf(ref("dataSchema"), true),
        uriVariables: mapOf(ref("dataSchema")),
      },
    },
  },
  $ref: "#/definitions/thing",
};
