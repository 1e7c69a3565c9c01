// The JSON Schema of a release document as the hub accepts it (`POST /releases`): what the
// build produces (release.ts). The hub validates it again at its edge; the id it recomputes.
import type { ValidateFunction } from "ajv";
import { ValidationError } from "./errors.js";
import { createAjv } from "./lazy-ajv.js";
import { isRfc3339Time } from "./time-expression.js";
import {
  RELEASE_FORMAT,
  documentReleaseId,
  sealRelease,
  type Release,
  type ReleaseBody,
  type ReleaseProvenance,
} from "./release.js";

const policy = { enum: ["record", "alert", "revert"] };

export const releaseDocumentSchema = {
  $schema: "http://json-schema.org/draft-07/schema#",
  $id: "https://hyperthings.dev/schemas/release.schema.json",
  title: "Hyperthings release document",
  type: "object",
  properties: {
    id: { type: "string", pattern: "^sha256:[0-9a-f]{64}$" },
    format: { const: RELEASE_FORMAT },
    name: { type: "string", pattern: "^[A-Za-z0-9][A-Za-z0-9._-]*$", maxLength: 200 },
    supersedes: { type: "string", pattern: "^sha256:[0-9a-f]{64}$" },
    drift: {
      type: "object",
      properties: {
        policy,
        revert: {
          type: "object",
          properties: {
            maxReverts: { type: "integer", minimum: 1 },
            withinSeconds: { type: "integer", minimum: 1 },
          },
          required: ["maxReverts", "withinSeconds"],
          additionalProperties: false,
        },
      },
      required: ["policy"],
      additionalProperties: false,
    },
    steps: {
      type: "array",
      minItems: 1,
      maxItems: 100_000,
      items: {
        type: "object",
        properties: {
          select: {
            type: "object",
            properties: { id: { type: "string", minLength: 1 }, filter: { type: "string", minLength: 1 } },
            minProperties: 1,
            maxProperties: 1,
            additionalProperties: false,
          },
          properties: { type: "object" },
          actions: {
            type: "array",
            items: {
              type: "object",
              properties: { name: { type: "string", minLength: 1 }, input: {} },
              required: ["name"],
              additionalProperties: false,
            },
          },
          links: {
            type: "array",
            items: {
              type: "object",
              properties: { rel: { type: "string", minLength: 1 }, href: { type: "string", minLength: 1 } },
              required: ["rel", "href"],
              additionalProperties: false,
            },
          },
        },
        required: ["select"],
        additionalProperties: false,
      },
    },
    provenance: {
      type: "object",
      properties: {
        sources: {
          type: "array",
          items: {
            type: "object",
            properties: { path: { type: "string" }, sha256: { type: "string", pattern: "^[0-9a-f]{64}$" } },
            required: ["path", "sha256"],
            additionalProperties: false,
          },
        },
        builder: { type: "string", maxLength: 500 },
        builtAt: { type: "string", format: "date-time" },
        steps: {
          type: "array",
          items: {
            type: "object",
            properties: {
              file: { type: "string" },
              line: { type: "integer", minimum: 0 },
              column: { type: "integer", minimum: 0 },
              template: { type: "string" },
            },
            required: ["file", "line", "column"],
            additionalProperties: false,
          },
        },
      },
      required: ["sources", "builder", "builtAt"],
      additionalProperties: false,
    },
  },
  required: ["format", "name", "drift", "steps", "provenance"],
  additionalProperties: false,
} as const;

let validate: ValidateFunction | undefined;

/**
 * Checks a release document from outside and seals it: the id is computed here, and one that was
 * sent must match it (a document cannot claim another's id).
 */
export function parseReleaseDocument(document: unknown): Release {
  validate ??= createAjv({ strict: false, allErrors: true, validateFormats: false }).compile(
    releaseDocumentSchema,
  );
  if (!validate(document)) {
    const errors = (validate.errors ?? []).map((e) => ({
      pointer: e.instancePath || "/",
      message:
        e.keyword === "additionalProperties"
          ? `${String((e.params as { additionalProperty: string }).additionalProperty)} is not allowed here`
          : (e.message ?? "is invalid"),
    }));
    throw new ValidationError(
      `The release document is invalid: ${errors[0]?.pointer ?? ""} ${errors[0]?.message ?? ""}`,
      errors,
    );
  }
  const doc = document as ReleaseBody & { id?: string; provenance: ReleaseProvenance };
  // The schema's `format` is not checked (formats are off): lineage and `things releases` sort
  // and show this time, so "yesterday" must not pass for one.
  if (!isRfc3339Time(doc.provenance.builtAt)) {
    throw new ValidationError(
      "The release document is invalid: /provenance/builtAt is not an RFC 3339 date-time",
      [{ pointer: "/provenance/builtAt", message: "must be an RFC 3339 date-time with a zone" }],
    );
  }
  if (doc.provenance.steps && doc.provenance.steps.length !== doc.steps.length) {
    throw new ValidationError("provenance.steps must have one entry per step", [
      {
        pointer: "/provenance/steps",
        message: `has ${doc.provenance.steps.length} entries for ${doc.steps.length} steps`,
      },
    ]);
  }
  const release = sealRelease(doc, doc.provenance);
  // A document from before bodies had one shape may claim the hash of the body as it is written.
  if (doc.id !== undefined && doc.id !== release.id && doc.id !== documentReleaseId(doc)) {
    throw new ValidationError(`The release's id is not the hash of its content (${release.id})`, [
      { pointer: "/id", message: `is ${doc.id}, but the content hashes to ${release.id}` },
    ]);
  }
  return release;
}
