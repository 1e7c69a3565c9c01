// TypeScript types for the W3C WoT Thing Description 1.1 information model.
// https://www.w3.org/TR/wot-thing-description11/ §5.3. Extension terms (prefixed, from @context)
// are allowed anywhere, hence the index signatures.

export type MultiLanguage = Record<string, string>;

export type DataSchemaType = "object" | "array" | "string" | "number" | "integer" | "boolean" | "null";

export interface DataSchema {
  "@type"?: string | string[];
  title?: string;
  titles?: MultiLanguage;
  description?: string;
  descriptions?: MultiLanguage;
  const?: unknown;
  default?: unknown;
  unit?: string;
  oneOf?: DataSchema[];
  enum?: unknown[];
  readOnly?: boolean;
  writeOnly?: boolean;
  format?: string;
  contentEncoding?: string;
  contentMediaType?: string;
  type?: DataSchemaType;
  // ArraySchema
  items?: DataSchema | DataSchema[];
  minItems?: number;
  maxItems?: number;
  // NumberSchema / IntegerSchema
  minimum?: number;
  exclusiveMinimum?: number;
  maximum?: number;
  exclusiveMaximum?: number;
  multipleOf?: number;
  // ObjectSchema
  properties?: Record<string, DataSchema>;
  required?: string[];
  // StringSchema
  minLength?: number;
  maxLength?: number;
  pattern?: string;
  [extension: string]: unknown;
}

export interface ExpectedResponse {
  contentType: string;
  [extension: string]: unknown;
}

export interface AdditionalExpectedResponse {
  success?: boolean;
  contentType?: string;
  schema?: string;
  [extension: string]: unknown;
}

export interface Form {
  href: string;
  op?: string | string[];
  contentType?: string;
  contentCoding?: string;
  subprotocol?: string;
  security?: string | string[];
  scopes?: string | string[];
  response?: ExpectedResponse;
  additionalResponses?: AdditionalExpectedResponse | AdditionalExpectedResponse[];
  [extension: string]: unknown;
}

export interface InteractionAffordance {
  "@type"?: string | string[];
  title?: string;
  titles?: MultiLanguage;
  description?: string;
  descriptions?: MultiLanguage;
  forms: Form[];
  uriVariables?: Record<string, DataSchema>;
  [extension: string]: unknown;
}

export type PropertyAffordance = InteractionAffordance &
  DataSchema & {
    observable?: boolean;
  };

export interface ActionAffordance extends InteractionAffordance {
  input?: DataSchema;
  output?: DataSchema;
  safe?: boolean;
  idempotent?: boolean;
  synchronous?: boolean;
}

export interface EventAffordance extends InteractionAffordance {
  subscription?: DataSchema;
  data?: DataSchema;
  dataResponse?: DataSchema;
  cancellation?: DataSchema;
}

export interface Link {
  href: string;
  type?: string;
  rel?: string;
  anchor?: string;
  sizes?: string;
  hreflang?: string | string[];
  [extension: string]: unknown;
}

export interface SecurityScheme {
  "@type"?: string | string[];
  scheme: string;
  description?: string;
  descriptions?: MultiLanguage;
  proxy?: string;
  [extension: string]: unknown;
}

export interface VersionInfo {
  instance: string;
  model?: string;
  [extension: string]: unknown;
}

export type Context = string | Record<string, unknown> | Array<string | Record<string, unknown>>;

export interface ThingDescription {
  "@context": Context;
  "@type"?: string | string[];
  id?: string;
  title: string;
  titles?: MultiLanguage;
  description?: string;
  descriptions?: MultiLanguage;
  version?: VersionInfo;
  created?: string;
  modified?: string;
  support?: string;
  base?: string;
  properties?: Record<string, PropertyAffordance>;
  actions?: Record<string, ActionAffordance>;
  events?: Record<string, EventAffordance>;
  links?: Link[];
  forms?: Form[];
  security: string | string[];
  securityDefinitions: Record<string, SecurityScheme>;
  profile?: string | string[];
  schemaDefinitions?: Record<string, DataSchema>;
  uriVariables?: Record<string, DataSchema>;
  [extension: string]: unknown;
}

/** A TD as stored by the directory: it always has an id. */
export type RegisteredThingDescription = ThingDescription & { id: string };
