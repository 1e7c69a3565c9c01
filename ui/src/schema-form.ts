// Forms generated from a TD's data schemas (TD 1.1 §5.3.2): one field per schema, nested for
// objects, JSON text where no simple field fits; what is entered is checked against the schema
// with Ajv before anything is sent, and each failing place is named next to the form.
import { Ajv, type ErrorObject, type ValidateFunction } from "ajv";
import type { DataSchema } from "../../src/client/index.js";
import { h } from "./dom.js";

export type FormReading = { ok: true; value: unknown } | { ok: false; errors: string[] };

export interface SchemaForm {
  element: HTMLElement;
  /** The value entered, checked against the schema. */
  read(): FormReading;
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

interface Field {
  element: HTMLElement;
  read(): { value: unknown } | { error: string } | undefined;
}

function fieldOf(schema: DataSchema, label: string, initial: unknown): Field {
  const name = label;
  if (schema.enum !== undefined && schema.enum.length > 0) {
    const options = schema.enum;
    const select = h(
      "select",
      { name, "aria-label": label },
      options.map((option, index) =>
        h(
          "option",
          { value: String(index), selected: JSON.stringify(option) === JSON.stringify(initial) },
          typeof option === "string" ? option : JSON.stringify(option),
        ),
      ),
    );
    return { element: select, read: () => ({ value: options[Number(select.value)] }) };
  }
  switch (schema.type) {
    case "number":
    case "integer": {
      const input = h("input", {
        type: "number",
        name,
        "aria-label": label,
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
      };
    }
    case "boolean": {
      const input = h("input", { type: "checkbox", name, "aria-label": label, checked: initial === true });
      return { element: input, read: () => ({ value: input.checked }) };
    }
    case "string": {
      const input = h("input", {
        type: "text",
        name,
        "aria-label": label,
        value: typeof initial === "string" ? initial : undefined,
      });
      return {
        element: input,
        read: () => (input.value === "" && initial === undefined ? undefined : { value: input.value }),
      };
    }
    case "object": {
      if (schema.properties !== undefined) {
        const fields = Object.entries(schema.properties).map(([key, sub]) => {
          const start =
            typeof initial === "object" && initial !== null
              ? (initial as Record<string, unknown>)[key]
              : undefined;
          return { key, field: fieldOf(sub, key, start ?? sub.default) };
        });
        return {
          element: h(
            "fieldset",
            {},
            h("legend", {}, label),
            fields.map(({ key, field }) => h("label", {}, h("span", {}, key), field.element)),
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
        };
      }
      break;
    }
    default:
      break;
  }
  // Arrays, oneOf, untyped schemas: JSON text.
  const area = h("textarea", { name, "aria-label": `${label} (JSON)`, rows: 3 });
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
  };
}

/** A form for one value of `schema`; `initial` fills it in. */
export function schemaForm(schema: DataSchema, label: string, initial?: unknown): SchemaForm {
  const field = fieldOf(schema, label, initial ?? schema.default);
  return {
    element: field.element,
    read() {
      const reading = field.read();
      if (reading === undefined) return { ok: false, errors: [`${label}: enter a value`] };
      if ("error" in reading) return { ok: false, errors: [reading.error] };
      const errors = checkValue(schema, reading.value);
      return errors.length > 0 ? { ok: false, errors } : { ok: true, value: reading.value };
    },
  };
}
