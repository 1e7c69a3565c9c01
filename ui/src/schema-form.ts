// Forms generated from a TD's data schemas (TD 1.1 §5.3.2): one field per schema, nested for
// objects, JSON text where no simple field fits; what is entered is checked against the schema
// with Ajv before anything is sent, and each failing place is named next to the form.
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import type { DataSchema } from "../../src/client/index.js";
import { h } from "./dom.js";
import { unitText } from "./units.js";

export type FormReading = { ok: true; value: unknown } | { ok: false; errors: string[] };

export interface SchemaForm {
  element: HTMLElement;
  /** The value entered, checked against the schema. */
  read(): FormReading;
  /**
   * Shows `value` (the Thing's current one) in the fields, unless someone has typed into them
   * since the form was last sent: a checkbox left unticked would otherwise read as `false`.
   */
  fill(value: unknown): void;
}

// TD data schemas carry terms JSON Schema does not know (unit, readOnly, @type, titles): not strict.
const ajv = new Ajv({ strict: false, allErrors: true, validateFormats: false });
const compiled = new WeakMap<object, ValidateFunction>();

function validatorOf(schema: DataSchema): ValidateFunction {
  let validate = compiled.get(schema);
  if (validate === undefined) {
    validate = ajv.compile(schema as object);
    compiled.set(schema, validate);
  }
  return validate;
}

function describe(error: ErrorObject): string {
  return `${error.instancePath === "" ? "the value" : error.instancePath} ${error.message ?? "is not valid"}`;
}

export function checkValue(schema: DataSchema, value: unknown): string[] {
  const validate = validatorOf(schema);
  return validate(value) ? [] : (validate.errors ?? []).map(describe);
}

/** A TD name as words: `enablePort` and `enable_port` are "Enable port", `maxRPM` "Max RPM". */
export function readableName(name: string): string {
  const words = name
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1 $2")
    .split(/[\s_-]+/)
    .filter((word) => word !== "")
    // An acronym (RPM) stays as it is; other words go to lower case after the first.
    .map((word, i) =>
      word.length > 1 && word === word.toUpperCase() ? word : i === 0 ? word : word.toLowerCase(),
    );
  const text = words.join(" ");
  return text === "" ? name : text.charAt(0).toUpperCase() + text.slice(1);
}

/** A schema's bounds in words: `from 1 to 48`, `at least 0`, `under 100`. */
function rangeText(schema: DataSchema): string | undefined {
  const low =
    schema.minimum !== undefined
      ? { n: schema.minimum, word: "at least" }
      : schema.exclusiveMinimum !== undefined
        ? { n: schema.exclusiveMinimum, word: "over" }
        : undefined;
  const high =
    schema.maximum !== undefined
      ? { n: schema.maximum, word: "at most" }
      : schema.exclusiveMaximum !== undefined
        ? { n: schema.exclusiveMaximum, word: "under" }
        : undefined;
  if (low !== undefined && high !== undefined && schema.minimum !== undefined && schema.maximum !== undefined)
    return `from ${low.n} to ${high.n}`;
  return (
    [low && `${low.word} ${low.n}`, high && `${high.word} ${high.n}`].filter(Boolean).join(" and ") ||
    undefined
  );
}

/**
 * What a field takes, in words, from its schema (type, unit, range): `a whole number from 1 to 48`,
 * `a number in °C, at least 0` (a UCUM unit as its symbol), `one of single, double`; undefined for an object (its fields say).
 */
export function schemaHint(schema: DataSchema): string | undefined {
  if (schema.enum !== undefined && schema.enum.length > 0)
    return `one of ${schema.enum.map((option) => (typeof option === "string" ? option : JSON.stringify(option))).join(", ")}`;
  const unit = schema.unit === undefined ? "" : ` in ${unitText(schema.unit)}`;
  const range = rangeText(schema);
  switch (schema.type) {
    case "integer":
    case "number":
      return `${schema.type === "integer" ? "a whole number" : "a number"}${unit}${range === undefined ? "" : `${unit === "" ? " " : ", "}${range}`}`;
    case "boolean":
      return "on (ticked) or off";
    case "string": {
      const lengths = [
        schema.minLength !== undefined && `at least ${schema.minLength} characters`,
        schema.maxLength !== undefined && `at most ${schema.maxLength} characters`,
      ].filter(Boolean);
      return `text${unit}${lengths.length === 0 ? "" : `, ${lengths.join(" and ")}`}`;
    }
    case "object":
      return schema.properties === undefined ? "a JSON object" : undefined;
    case "array":
      return "a JSON list";
    default:
      return "a JSON value";
  }
}

let hints = 0;
/** The hint shown after a field, and the id its control points at with aria-describedby. */
export function hintFor(schema: DataSchema): { id: string; element: HTMLElement } | undefined {
  const text = schemaHint(schema);
  if (text === undefined) return undefined;
  const id = `field-hint-${++hints}`;
  return { id, element: h("small", { class: "hint", id }, text) };
}

interface Field {
  element: HTMLElement;
  read(): { value: unknown } | { error: string } | undefined;
  fill(value: unknown): void;
}

function fieldOf(schema: DataSchema, label: string, initial: unknown, describedBy?: string): Field {
  const name = label;
  // The hint (type, unit, range) that names what the field takes, read after its name.
  const described = { "aria-describedby": describedBy };
  if (schema.enum !== undefined && schema.enum.length > 0) {
    const options = schema.enum;
    const select = h(
      "select",
      { name, "aria-label": label, ...described },
      options.map((option, index) =>
        h(
          "option",
          { value: String(index), selected: JSON.stringify(option) === JSON.stringify(initial) },
          typeof option === "string" ? option : JSON.stringify(option),
        ),
      ),
    );
    return {
      element: select,
      read: () => ({ value: options[Number(select.value)] }),
      fill: (value) => {
        const index = options.findIndex((option) => JSON.stringify(option) === JSON.stringify(value));
        if (index !== -1) select.value = String(index);
      },
    };
  }
  switch (schema.type) {
    case "number":
    case "integer": {
      const input = h("input", {
        type: "number",
        name,
        "aria-label": label,
        ...described,
        // The browser's own range check would hide the schema's message: Ajv checks instead.
        step: "any",
        value: typeof initial === "number" ? initial : undefined,
        placeholder: [schema.minimum, schema.maximum].some((bound) => bound !== undefined)
          ? `${schema.minimum ?? "…"} to ${schema.maximum ?? "…"}`
          : undefined,
      });
      return {
        element: input,
        read: () => {
          if (input.value.trim() === "") return undefined;
          const value = Number(input.value);
          return Number.isFinite(value) ? { value } : { error: `${label} is not a number` };
        },
        fill: (value) => {
          if (typeof value === "number") input.value = String(value);
        },
      };
    }
    case "boolean": {
      const input = h("input", {
        type: "checkbox",
        name,
        "aria-label": label,
        ...described,
        checked: initial === true,
      });
      return {
        element: input,
        read: () => ({ value: input.checked }),
        fill: (value) => {
          if (typeof value === "boolean") input.checked = value;
        },
      };
    }
    case "string": {
      const input = h("input", {
        type: "text",
        name,
        "aria-label": label,
        ...described,
        value: typeof initial === "string" ? initial : undefined,
      });
      return {
        element: input,
        read: () => (input.value === "" && initial === undefined ? undefined : { value: input.value }),
        fill: (value) => {
          if (typeof value === "string") input.value = value;
        },
      };
    }
    case "object": {
      if (schema.properties !== undefined) {
        const fields = Object.entries(schema.properties).map(([key, sub]) => {
          const start =
            typeof initial === "object" && initial !== null
              ? (initial as Record<string, unknown>)[key]
              : undefined;
          // Named by its title, or its key made readable ("port" is Port), with its hint after it.
          const hint = hintFor(sub);
          const title = sub.title ?? readableName(key);
          return { key, title, hint, field: fieldOf(sub, title, start ?? sub.default, hint?.id) };
        });
        return {
          element: h(
            "fieldset",
            described,
            h("legend", {}, label),
            fields.map(({ title, hint, field }) =>
              h("label", {}, h("span", {}, title), field.element, hint?.element),
            ),
          ),
          read: () => {
            const value: Record<string, unknown> = {};
            for (const { key, field } of fields) {
              const reading = field.read();
              if (reading === undefined) continue;
              if ("error" in reading) return reading;
              value[key] = reading.value;
            }
            return { value };
          },
          fill: (value) => {
            if (typeof value !== "object" || value === null) return;
            for (const { key, field } of fields) field.fill((value as Record<string, unknown>)[key]);
          },
        };
      }
      break;
    }
    default:
      break;
  }
  // Arrays, oneOf, untyped schemas: JSON text.
  const area = h("textarea", { name, "aria-label": `${label} (JSON)`, ...described, rows: 3 });
  if (initial !== undefined) area.value = JSON.stringify(initial);
  return {
    element: area,
    read: () => {
      if (area.value.trim() === "") return undefined;
      try {
        return { value: JSON.parse(area.value) as unknown };
      } catch {
        return { error: `${label} is not JSON` };
      }
    },
    fill: (value) => {
      if (value !== undefined) area.value = JSON.stringify(value);
    },
  };
}

/**
 * A form for one value of `schema`, named `label`; `initial` fills it in; `describedBy` is the id
 * of the hint the caller shows beside it (hintFor).
 */
export function schemaForm(
  schema: DataSchema,
  label: string,
  initial?: unknown,
  describedBy?: string,
): SchemaForm {
  const field = fieldOf(schema, label, initial ?? schema.default, describedBy);
  // Typed into since last sent: the person's value stays until they send it.
  let edited = false;
  field.element.addEventListener("input", () => (edited = true));
  field.element.addEventListener("change", () => (edited = true));
  return {
    element: field.element,
    fill(value) {
      if (!edited) field.fill(value);
    },
    read() {
      const reading = field.read();
      if (reading === undefined) return { ok: false, errors: [`${label}: enter a value`] };
      if ("error" in reading) return { ok: false, errors: [reading.error] };
      const errors = checkValue(schema, reading.value);
      if (errors.length > 0) return { ok: false, errors };
      // Read to be sent: the Thing's values show again from here on.
      edited = false;
      return { ok: true, value: reading.value };
    },
  };
}
