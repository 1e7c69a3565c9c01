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

interface Field {
  element: HTMLElement;
  read(): { value: unknown } | { error: string } | undefined;
  fill(value: unknown): void;
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
      const input = h("input", { type: "checkbox", name, "aria-label": label, checked: initial === true });
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
    fill: (value) => {
      if (value !== undefined) area.value = JSON.stringify(value);
    },
  };
}

/** A form for one value of `schema`; `initial` fills it in. */
export function schemaForm(schema: DataSchema, label: string, initial?: unknown): SchemaForm {
  const field = fieldOf(schema, label, initial ?? schema.default);
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
