// The JSON Schema of release manifests (docs/releases.md). Editors use its copy in
// schemas/manifest.schema.json for completion; the build validates every manifest file with it.

const identifier = "^[A-Za-z0-9][A-Za-z0-9._-]*$";

const selector = {
  description:
    "Which Things this entry applies to: one by id, or every Thing a graph filter matches when the release is planned.",
  type: "object",
  properties: {
    id: { type: "string", minLength: 1, description: "The Thing's id (its TD `id`)." },
    filter: {
      type: "string",
      minLength: 1,
      description: "A graph filter, resolved at plan time (docs/releases.md).",
    },
  },
  minProperties: 1,
  maxProperties: 1,
  additionalProperties: false,
};

const action = {
  description: "An action to invoke once per Thing and release: its name, or its name and input.",
  type: ["string", "object"],
  if: { type: "string" },
  then: { minLength: 1 },
  else: {
    properties: {
      name: { type: "string", minLength: 1, description: "The action's name in the Thing's TD." },
      input: { description: "The action's input; must fit the action's input schema." },
    },
    required: ["name"],
    additionalProperties: false,
  },
};

const link = {
  type: "object",
  description: "A link to add to the Thing's TD: a typed edge to another Thing.",
  properties: {
    rel: {
      type: "string",
      minLength: 1,
      description: "The relation: partOf, hosts, runsOn, controls, dependsOn or any IRI.",
    },
    href: { type: "string", minLength: 1, description: "The target, usually another Thing's id." },
  },
  required: ["rel", "href"],
  additionalProperties: false,
};

const entry = {
  description: "Desired state for selected Things, or a use of a template.",
  type: "object",
  if: { required: ["use"] },
  then: {
    properties: {
      use: {
        type: "string",
        pattern: identifier,
        description: "The name of a template defined here or in an included file.",
      },
      with: {
        type: "object",
        description: "The template's parameters; `${name}` in the template is replaced by the value.",
      },
    },
    additionalProperties: false,
  },
  else: {
    properties: {
      select: { $ref: "#/$defs/selector" },
      properties: {
        type: "object",
        description: "Desired property values, by property name; each must fit the property's schema.",
      },
      actions: {
        type: "array",
        items: { $ref: "#/$defs/action" },
        description: "Actions to invoke once, in order.",
      },
      links: { type: "array", items: { $ref: "#/$defs/link" }, description: "Links to create." },
    },
    required: ["select"],
    additionalProperties: false,
  },
};

const template = {
  type: "object",
  description: "A parameterised composite: several Things, their links and desired values.",
  properties: {
    description: { type: "string" },
    params: {
      type: "object",
      description: "The parameters the template takes; one without a default is required.",
      propertyNames: { pattern: identifier },
      additionalProperties: {
        type: "object",
        properties: {
          description: { type: "string" },
          default: { description: "The value when a use does not give one." },
          required: { type: "boolean", description: "True by default when there is no default." },
        },
        additionalProperties: false,
      },
    },
    things: { type: "array", items: { $ref: "#/$defs/entry" }, minItems: 1 },
  },
  required: ["things"],
  additionalProperties: false,
};

export const MANIFEST_SCHEMA_ID = "https://hyperthings.dev/schemas/manifest.schema.json";

export const manifestSchema = {
  $schema: "http://json-schema.org/draft-07/schema#",
  $id: MANIFEST_SCHEMA_ID,
  title: "Hyperthings release manifest",
  description:
    "Desired state for Things, built by `things build` into an immutable, content-addressed release (docs/releases.md). A file without `release` is a library: its templates and things are used by the manifests that include it.",
  type: "object",
  properties: {
    release: {
      type: "string",
      pattern: identifier,
      description: "The release's name (one manifest per build has it).",
    },
    supersedes: {
      type: "string",
      pattern: "^sha256:[0-9a-f]{64}$",
      description: "The id of the release this one replaces.",
    },
    drift: {
      description: "What happens when a Thing drifts from this release: record (default), alert or revert.",
      type: ["string", "object"],
      if: { type: "string" },
      then: { enum: ["record", "alert", "revert"] },
      else: {
        properties: {
          policy: { enum: ["record", "alert", "revert"] },
          maxReverts: {
            type: "integer",
            minimum: 1,
            description: "revert: at most this many corrective writes…",
          },
          withinSeconds: {
            type: "integer",
            minimum: 1,
            description: "…per Thing and property within this many seconds.",
          },
        },
        required: ["policy"],
        additionalProperties: false,
      },
    },
    include: {
      type: "array",
      items: { type: "string", minLength: 1 },
      description: "Manifest files (relative to this one) whose templates and things this one uses.",
    },
    templates: {
      type: "object",
      propertyNames: { pattern: identifier },
      additionalProperties: { $ref: "#/$defs/template" },
      description: "Templates by name, usable here and from any manifest that includes this file.",
    },
    things: {
      type: "array",
      items: { $ref: "#/$defs/entry" },
      description: "The desired state, entry by entry.",
    },
  },
  additionalProperties: false,
  $defs: { selector, action, link, entry, template },
} as const;
