// Picks the form for an operation and turns it into a Target: default `op`s, URI templates,
// `href` resolved against `base`, the protocol terms validated once. Pure: no I/O.
import {
  ECHO_LIMIT,
  NotFoundError,
  ValidationError,
  compileDataSchema,
  echoed,
  quoted,
} from "../core/index.js";
import type {
  ActionAffordance,
  DataSchema,
  EventAffordance,
  Form,
  InteractionAffordance,
  PropertyAffordance,
  ThingDescription,
} from "../core/index.js";
import { SNMP_SET_TYPES, bindingError } from "./binding.js";
import type { Binding, CoapMethod, FormTerms, Operation, SnmpSetType, Target } from "./binding.js";
import { credentialsFor, escapePointer, originOf, securityOf } from "./credentials.js";
import type { Secrets } from "./credentials.js";

export type AffordanceKind = "property" | "action" | "event";

/** TD 1.1 §5.3.4.2: the `op` a form has when it says none, by where it sits. */
export const DEFAULT_OPS: Readonly<Record<AffordanceKind, readonly Operation[]>> = {
  property: ["readproperty", "writeproperty"],
  action: ["invokeaction"],
  event: ["subscribeevent", "unsubscribeevent"],
};

/** The operations a form serves: its own `op`, else the defaults for its place (none at Thing level). */
export function formOps(form: Form, kind?: AffordanceKind): readonly string[] {
  if (form.op !== undefined) return typeof form.op === "string" ? [form.op] : form.op;
  return kind === undefined ? [] : DEFAULT_OPS[kind];
}

/** The lower-case URI scheme of an absolute URL, or undefined for a relative reference. */
export function uriScheme(href: string): string | undefined {
  return /^([A-Za-z][A-Za-z0-9+.-]*):/.exec(href)?.[1]?.toLowerCase();
}

/**
 * The first form (TD order is the Thing's preference) that serves `op` and, when `schemes` is
 * given, whose resolved href has one of them. Returns its index too, for error pointers.
 */
export function selectForm(
  forms: readonly Form[],
  op: Operation,
  options: { kind?: AffordanceKind; base?: string; schemes?: readonly string[]; after?: number } = {},
): { form: Form; index: number } | undefined {
  for (const [index, form] of forms.entries()) {
    if (options.after !== undefined && index <= options.after) continue;
    if (!formOps(form, options.kind).includes(op)) continue;
    if (options.schemes !== undefined) {
      const scheme =
        uriScheme(form.href) ?? (options.base === undefined ? undefined : uriScheme(options.base));
      if (scheme === undefined || !options.schemes.includes(scheme)) continue;
    }
    return { form, index };
  }
  return undefined;
}

/** Resolves a form's href (after template expansion) against the TD's `base` (RFC 3986 §5). */
export function resolveHref(href: string, base?: string): string {
  let url: URL;
  try {
    url = base === undefined ? new URL(href) : new URL(href, new URL(base));
  } catch (cause) {
    const why =
      base === undefined && uriScheme(href) === undefined ? "a relative href needs a base" : "not a URL";
    const error = new ValidationError(`cannot resolve href "${href}": ${why}`, [
      { pointer: "/base", message: why },
    ]);
    error.cause = cause;
    throw error;
  }
  return url.href;
}

// RFC 6570 operators of levels 1–3: first character, separator, named, string for empty, reserved.
const OPERATORS: Readonly<
  Record<string, { first: string; sep: string; named: boolean; empty: string; reserved: boolean }>
> = {
  "": { first: "", sep: ",", named: false, empty: "", reserved: false },
  "+": { first: "", sep: ",", named: false, empty: "", reserved: true },
  "#": { first: "#", sep: ",", named: false, empty: "", reserved: true },
  ".": { first: ".", sep: ".", named: false, empty: "", reserved: false },
  "/": { first: "/", sep: "/", named: false, empty: "", reserved: false },
  ";": { first: ";", sep: ";", named: true, empty: "", reserved: false },
  "?": { first: "?", sep: "&", named: true, empty: "=", reserved: false },
  "&": { first: "&", sep: "&", named: true, empty: "=", reserved: false },
};

const VARNAME = /^(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2})+(?:\.(?:[A-Za-z0-9_]|%[0-9A-Fa-f]{2})+)*$/;

/** The variable names of a URI template, in order. */
export function templateVariables(template: string): string[] {
  const names: string[] = [];
  forEachExpression(template, (_operator, varNames) => {
    names.push(...varNames);
    return "";
  });
  return names;
}

/**
 * RFC 6570 expansion, levels 1 to 3 (`{x}`, `{+x}`, `{#x}`, `{.x}`, `{/x}`, `{;x}`, `{?x,y}`,
 * `{&x}`); values are strings, numbers or booleans; an absent variable expands to nothing.
 * Level 4 (`{x:3}`, `{x*}`) and list or map values are refused, and so is a value that expands to
 * a dot segment (`.`, `..`, `%2e%2e`) in the path: RFC 3986 §5.2.4 removes those, so a form
 * `http://dev/files/{x}` with x = `..` would reach `http://dev/` instead.
 */
export function expandUriTemplate(template: string, variables: Readonly<Record<string, unknown>>): string {
  return forEachExpression(template, (operator, names) => {
    const spec = OPERATORS[operator];
    if (spec === undefined) throw templateError(template, `operator "${operator}" is not supported`);
    const parts: string[] = [];
    for (const name of names) {
      const raw = Object.hasOwn(variables, name) ? variables[name] : undefined;
      if (raw === undefined || raw === null) continue;
      if (typeof raw !== "string" && typeof raw !== "number" && typeof raw !== "boolean") {
        throw new ValidationError(`URI variable "${name}" must be a string, number or boolean`, [
          { pointer: `/uriVariables/${escapePointer(name)}`, message: "lists and maps are not supported" },
        ]);
      }
      const value = encodeTemplateValue(String(raw), spec.reserved);
      if (PATH_OPERATORS.has(operator) && value.split("/").some(isDotSegment)) {
        throw new ValidationError(
          `URI variable "${name}" may not be or hold a dot segment ("." or ".."): it would move the request to another path than the form's`,
          [{ pointer: `/uriVariables/${escapePointer(name)}`, message: "a dot segment (. or ..)" }],
        );
      }
      if (!spec.named) parts.push(value);
      else parts.push(value === "" ? `${name}${spec.empty}` : `${name}=${value}`);
    }
    return parts.length === 0 ? "" : spec.first + parts.join(spec.sep);
  });
}

/** The operators whose expansion lands in a URI's path: simple, reserved and path-segment. */
const PATH_OPERATORS: ReadonlySet<string> = new Set(["", "+", "/"]);

/** WHATWG URL: `.` and `..`, with any dot written `%2e`, are dot segments. */
function isDotSegment(segment: string): boolean {
  const dots = segment.replace(/%2e/gi, ".");
  return dots === "." || dots === "..";
}

function forEachExpression(template: string, expand: (operator: string, names: string[]) => string): string {
  let out = "";
  let at = 0;
  while (at < template.length) {
    const open = template.indexOf("{", at);
    const close = template.indexOf("}", at);
    if (open === -1) {
      if (close !== -1) throw templateError(template, "unmatched }");
      out += template.slice(at);
      break;
    }
    if (close !== -1 && close < open) throw templateError(template, "unmatched }");
    const end = template.indexOf("}", open);
    if (end === -1) throw templateError(template, "unclosed {");
    out += template.slice(at, open);
    let body = template.slice(open + 1, end);
    let operator = "";
    if (body !== "" && "+#./;?&=,!@|".includes(body.charAt(0))) {
      operator = body.charAt(0);
      body = body.slice(1);
    }
    const names = body.split(",");
    for (const name of names) {
      if (name.endsWith("*") || name.includes(":"))
        throw templateError(template, "level 4 modifiers are not supported");
      if (!VARNAME.test(name)) throw templateError(template, `"${name}" is not a variable name`);
    }
    out += expand(operator, names);
    at = end + 1;
  }
  return out;
}

// RFC 6570 §3.2.1: unreserved characters pass; with `+` and `#`, reserved ones and %-triplets too.
const UNRESERVED = /[A-Za-z0-9\-._~]/;
const RESERVED = /[:/?#[\]@!$&'()*+,;=]/;

function encodeTemplateValue(value: string, reserved: boolean): string {
  let out = "";
  for (let i = 0; i < value.length; i++) {
    const char = value.charAt(i);
    if (UNRESERVED.test(char) || (reserved && RESERVED.test(char))) {
      out += char;
    } else if (reserved && char === "%" && /^[0-9A-Fa-f]{2}$/.test(value.slice(i + 1, i + 3))) {
      out += value.slice(i, i + 3);
      i += 2;
    } else {
      const code = value.codePointAt(i) ?? 0;
      const whole = String.fromCodePoint(code);
      // A lone surrogate cannot be UTF-8 encoded: send U+FFFD, as the WHATWG URL parser does.
      const encodable = code >= 0xd800 && code <= 0xdfff ? "\uFFFD" : whole;
      for (const byte of Buffer.from(encodable, "utf8"))
        out += `%${byte.toString(16).toUpperCase().padStart(2, "0")}`;
      i += whole.length - 1;
    }
  }
  return out;
}

function templateError(template: string, why: string): ValidationError {
  return new ValidationError(`bad URI template "${template}": ${why}`, [{ pointer: "/href", message: why }]);
}

/** Reads and checks the protocol terms of a form; errors point into the TD at `pointer`. */
export function parseFormTerms(form: Form, pointer = ""): FormTerms {
  const fail = (term: string, message: string): never => {
    throw new ValidationError(`form term ${term}: ${message}`, [
      { pointer: `${pointer}/${escapePointer(term)}`, message },
    ]);
  };
  const optionalString = (term: string, value: unknown): string | undefined => {
    if (value === undefined) return undefined;
    if (typeof value !== "string" || value === "") return fail(term, "expected a non-empty string");
    return value;
  };
  const terms: {
    -readonly [K in keyof FormTerms]: FormTerms[K];
  } = { contentType: optionalString("contentType", form.contentType) ?? "application/json" };

  const method = optionalString("htv:methodName", form["htv:methodName"]);
  if (method !== undefined) {
    if (!HTTP_METHODS.includes(method)) fail("htv:methodName", `expected one of ${HTTP_METHODS.join(", ")}`);
    terms.methodName = method;
  }
  const subprotocol = optionalString("subprotocol", form.subprotocol);
  if (subprotocol !== undefined) terms.subprotocol = subprotocol;
  const topic = optionalString("mqv:topic", form["mqv:topic"]);
  if (topic !== undefined) {
    if (/[+#\0]/.test(topic)) fail("mqv:topic", "a topic has no wildcards (use mqv:filter) and no NUL");
    terms.topic = topic;
  }
  const filter = optionalString("mqv:filter", form["mqv:filter"]);
  if (filter !== undefined) {
    if (!isTopicFilter(filter)) fail("mqv:filter", "not an MQTT topic filter (MQTT 5 §4.7)");
    terms.filter = filter;
  }
  const qos = form["mqv:qos"];
  if (qos !== undefined) {
    const level = Number(qos);
    if (
      (typeof qos !== "string" && typeof qos !== "number") ||
      ![0, 1, 2].includes(level) ||
      String(qos).trim() === ""
    ) {
      fail("mqv:qos", 'expected "0", "1" or "2"');
    }
    terms.qos = level as 0 | 1 | 2;
  }
  const retain = form["mqv:retain"];
  if (retain !== undefined) {
    if (typeof retain !== "boolean") fail("mqv:retain", "expected a boolean");
    terms.retain = retain as boolean;
  }
  const controlPacket = optionalString("mqv:controlPacket", form["mqv:controlPacket"]);
  if (controlPacket !== undefined) {
    const packet = controlPacket.replace(/^mqv:/, "");
    if (packet !== "publish" && packet !== "subscribe" && packet !== "unsubscribe") {
      fail("mqv:controlPacket", "expected publish, subscribe or unsubscribe");
    }
    terms.controlPacket = packet as "publish" | "subscribe" | "unsubscribe";
  }
  const response = form.response as Record<string, unknown> | undefined;
  if (response !== undefined && response["mqv:topic"] !== undefined) {
    const responseTopic = response["mqv:topic"];
    if (typeof responseTopic !== "string" || responseTopic === "" || /[+#\0]/.test(responseTopic)) {
      fail("response/mqv:topic", "expected a topic without wildcards");
    }
    terms.responseTopic = responseTopic as string;
  }
  const coapMethod = optionalString("cov:method", form["cov:method"]);
  if (coapMethod !== undefined) {
    if (!(COAP_METHODS as readonly string[]).includes(coapMethod)) {
      fail("cov:method", `expected one of ${COAP_METHODS.join(", ")}`);
    }
    terms.coapMethod = coapMethod as CoapMethod;
  }
  const contentFormat = contentFormatTerm("cov:contentFormat", form["cov:contentFormat"], fail);
  if (contentFormat !== undefined) terms.contentFormat = contentFormat;
  const accept = contentFormatTerm("cov:accept", form["cov:accept"], fail);
  if (accept !== undefined) terms.accept = accept;
  const version = form["snmp:version"];
  if (version !== undefined) {
    if (version !== "1" && version !== "2c" && version !== "3") {
      fail("snmp:version", 'expected "1", "2c" or "3"');
    }
    terms.snmpVersion = version as "1" | "2c" | "3";
  }
  const snmpType = optionalString("snmp:type", form["snmp:type"]);
  if (snmpType !== undefined) {
    if (!(SNMP_SET_TYPES as readonly string[]).includes(snmpType))
      fail("snmp:type", `expected one of ${SNMP_SET_TYPES.join(", ")}`);
    terms.snmpType = snmpType as SnmpSetType;
  }
  return terms;
}

/** A CoAP Content-Format number: an unsigned 16-bit integer (RFC 7252 §12.3). */
function contentFormatTerm(term: string, value: unknown, fail: (term: string, message: string) => never) {
  if (value === undefined) return undefined;
  if (typeof value !== "number" || !Number.isInteger(value) || value < 0 || value > 65535) {
    return fail(term, "expected a Content-Format number from 0 to 65535");
  }
  return value;
}

const HTTP_METHODS = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

/** The CoAP methods `cov:method` may name (RFC 7252 §12.1.1, RFC 8132). */
export const COAP_METHODS: readonly CoapMethod[] = [
  "GET",
  "POST",
  "PUT",
  "DELETE",
  "FETCH",
  "PATCH",
  "iPATCH",
];

/** MQTT 5 §4.7.1: `#` only last and alone in its level, `+` alone in its level; no NUL. */
export function isTopicFilter(filter: string): boolean {
  if (filter === "" || filter.includes("\0")) return false;
  const levels = filter.split("/");
  return levels.every(
    (level, i) =>
      (level === "#" && i === levels.length - 1) ||
      level === "+" ||
      (!level.includes("#") && !level.includes("+")),
  );
}

/**
 * `observeproperty`: the property's observe forms first, in TD order, then its read forms (polled)
 * that are not observe forms too. `after` is a place in that order, not in the TD's: a read form
 * listed before the observe form that failed is still tried after it.
 */
function observeOrPoll(
  forms: readonly Form[],
  options: Parameters<typeof selectForm>[2] & object,
): { form: Form; index: number } | undefined {
  const { after, ...rest } = options;
  const order: { form: Form; index: number }[] = [];
  for (const op of ["observeproperty", "readproperty"] as const) {
    for (let next = selectForm(forms, op, rest); next !== undefined;) {
      const { index } = next;
      if (!order.some((candidate) => candidate.index === index)) order.push(next);
      next = selectForm(forms, op, { ...rest, after: index });
    }
  }
  if (after === undefined) return order[0];
  const at = order.findIndex((candidate) => candidate.index === after);
  return at === -1 ? order.find((candidate) => candidate.index > after) : order[at + 1];
}

/** What to build a Target for. */
export interface TargetRequest {
  readonly op: Operation;
  /** The affordance; absent for Thing-level operations such as `readallproperties`. */
  readonly affordance?: { readonly kind: AffordanceKind; readonly name: string };
  /** Values for the URI variables the affordance or the TD declares. */
  readonly uriVariables?: Readonly<Record<string, unknown>>;
  /** The hub's secrets for this Thing, by security definition name. */
  readonly secrets?: Secrets;
  /** Only forms whose scheme is one of these (the schemes the hub has bindings for). */
  readonly schemes?: readonly string[];
  /** For observation by polling: ms between reads (the binding's default otherwise). */
  readonly pollIntervalMs?: number;
  /**
   * Only forms after this index of the affordance's forms: the next one to try when the Thing
   * could not be reached through the form at `after` (Target.formIndex). For `observeproperty`,
   * after it in the order observe forms, then read forms (so a read form listed first is polled
   * once every observe form failed).
   */
  readonly after?: number;
}

/**
 * The Target for an operation on a Thing: the chosen form with its href expanded and resolved,
 * its terms checked, the affordance's schemas and the credentials. `observeproperty` on a
 * property without an observe form falls back to its read form, which a binding then polls.
 */
export function targetFor(td: ThingDescription, request: TargetRequest): Target {
  const thing = td.id ?? td.title;
  const { op, affordance } = request;
  let interaction: InteractionAffordance | undefined;
  let forms: readonly Form[];
  let pointer: string;
  if (affordance === undefined) {
    forms = td.forms ?? [];
    pointer = "/forms";
  } else {
    const group = { property: td.properties, action: td.actions, event: td.events }[affordance.kind];
    interaction =
      group !== undefined && Object.hasOwn(group, affordance.name) ? group[affordance.name] : undefined;
    if (interaction === undefined) {
      throw new NotFoundError(`Thing ${thing} has no ${affordance.kind} "${affordance.name}"`);
    }
    forms = interaction.forms;
    pointer = `/${affordance.kind === "property" ? "properties" : `${affordance.kind}s`}/${escapePointer(affordance.name)}/forms`;
  }
  const options = { kind: affordance?.kind, base: td.base, schemes: request.schemes, after: request.after };
  const chosen = op === "observeproperty" ? observeOrPoll(forms, options) : selectForm(forms, op, options);
  if (chosen === undefined) {
    const where = affordance === undefined ? "" : ` on ${affordance.kind} "${affordance.name}"`;
    const schemes = request.schemes === undefined ? "" : ` with a scheme in ${request.schemes.join(", ")}`;
    throw new NotFoundError(`Thing ${thing} has no form for ${op}${where}${schemes}`);
  }
  const formPointer = `${pointer}/${chosen.index}`;
  const { form } = chosen;

  const declared = affordance === undefined ? { ...td.uriVariables } : declaredUriVariables(td, affordance);
  const given = request.uriVariables ?? {};
  checkUriVariables(given, declared);
  // A variable not given takes the `default` its schema declares (TD 1.1 §5.3.2.1 DataSchema).
  const values = { ...uriVariableDefaults(declared), ...given };
  const href = resolveHref(expandUriTemplate(form.href, values), td.base);

  const target: {
    -readonly [K in keyof Target]: Target[K];
  } = {
    thing,
    op,
    href,
    form,
    formIndex: chosen.index,
    terms: parseFormTerms(form, formPointer),
    credentials: credentialsFor(td, form, href, request.secrets, thing),
  };
  if (affordance !== undefined && interaction !== undefined) {
    target.affordance = { kind: affordance.kind, name: affordance.name };
    if (affordance.kind === "property") {
      const schema: Partial<PropertyAffordance> = { ...(interaction as PropertyAffordance) };
      delete schema.forms;
      target.schema = schema;
    } else if (affordance.kind === "action") {
      const action = interaction as ActionAffordance;
      if (action.output !== undefined) target.schema = action.output;
      if (action.input !== undefined) target.inputSchema = action.input;
    } else {
      const event = interaction as EventAffordance;
      if (event.data !== undefined) target.schema = event.data;
      if (event.subscription !== undefined) target.inputSchema = event.subscription;
    }
  }
  if (request.pollIntervalMs !== undefined) target.pollIntervalMs = request.pollIntervalMs;
  return target;
}

/**
 * The origins of the TD's forms that a security definition applies to: where a secret set for it
 * now may be sent (`Secret.origins`). A form whose href cannot be resolved has none.
 */
export function securedOrigins(td: ThingDescription, name: string): string[] {
  const origins = new Set<string>();
  const affordances: InteractionAffordance[] = [
    ...Object.values(td.properties ?? {}),
    ...Object.values(td.actions ?? {}),
    ...Object.values(td.events ?? {}),
  ];
  const forms: Form[] = [...(td.forms ?? []), ...affordances.flatMap((affordance) => affordance.forms)];
  for (const form of forms) {
    if (!securityOf(td, form).includes(name)) continue;
    let href: string;
    try {
      href = resolveHref(expandUriTemplate(form.href, {}), td.base);
    } catch {
      continue;
    }
    const origin = originOf(href);
    if (origin !== undefined) origins.add(origin);
  }
  return [...origins].sort();
}

/** The URI variables an affordance's forms take: the TD's, and the affordance's own over them. */
export function declaredUriVariables(
  td: ThingDescription,
  affordance: { readonly kind: AffordanceKind; readonly name: string },
): Record<string, DataSchema> {
  const group = { property: td.properties, action: td.actions, event: td.events }[affordance.kind];
  const interaction =
    group !== undefined && Object.hasOwn(group, affordance.name) ? group[affordance.name] : undefined;
  return { ...td.uriVariables, ...interaction?.uriVariables };
}

/**
 * The `default` of each declared URI variable that has a usable one: a string, number or boolean
 * of the schema's type (one that does not fit is left out, as if there were none).
 */
export function uriVariableDefaults(
  declared: Readonly<Record<string, DataSchema>>,
): Record<string, string | number | boolean> {
  const defaults: Record<string, string | number | boolean> = {};
  for (const [name, schema] of Object.entries(declared)) {
    const value = schema.default;
    if (typeof value !== "string" && typeof value !== "number" && typeof value !== "boolean") continue;
    if (fitsType(value, schema.type)) defaults[name] = value;
  }
  return defaults;
}

function fitsType(value: unknown, type: unknown): boolean {
  return (
    type === undefined ||
    (type === "string" && typeof value === "string") ||
    (type === "boolean" && typeof value === "boolean") ||
    (type === "number" && typeof value === "number" && Number.isFinite(value)) ||
    (type === "integer" && Number.isInteger(value))
  );
}

/**
 * URI variables as a query string gives them (`?step=3`), each typed and checked as the
 * affordance's or the TD's `uriVariables` declare it. A name not declared, one given twice, or a
 * value that does not fit its schema is a ValidationError that says which and what is declared.
 */
export function uriVariablesFromQuery(
  td: ThingDescription,
  affordance: { readonly kind: AffordanceKind; readonly name: string },
  query: Readonly<Record<string, string | readonly string[] | undefined>>,
): Record<string, string | number | boolean> {
  const declared = declaredUriVariables(td, affordance);
  const names = Object.keys(declared);
  const values: Record<string, string | number | boolean> = {};
  for (const [name, given] of Object.entries(query)) {
    if (given === undefined) continue;
    const pointer = `/uriVariables/${escapePointer(name)}`;
    const schema = Object.hasOwn(declared, name) ? declared[name] : undefined;
    if (schema === undefined) {
      // A name the TD does not declare is the client's, of any length: past what a message quotes
      // of it, the pointer is at uriVariables itself, not a copy of the name.
      const at = name.length <= ECHO_LIMIT ? pointer : "/uriVariables";
      const takes =
        names.length > 0 ? `it takes ${names.map((n) => echoed(n)).join(", ")}` : "it takes no URI variables";
      throw new ValidationError(
        `The ${affordance.kind} ${quoted(affordance.name)} has no URI variable ${quoted(name)} (${takes}): a query parameter here is one`,
        [{ pointer: at, message: "not in the affordance's or the TD's uriVariables" }],
      );
    }
    if (typeof given !== "string") {
      throw new ValidationError(`URI variable ${quoted(name)} is given more than once`, [
        { pointer, message: "give it once" },
      ]);
    }
    const value = typedVariable(given, schema.type);
    if (value === undefined) {
      throw new ValidationError(
        `URI variable ${quoted(name)} must be ${schema.type === "integer" ? "an" : "a"} ${String(schema.type)}: ${quoted(given)} is not`,
        [{ pointer, message: `expected ${String(schema.type)}` }],
      );
    }
    const problems = compileDataSchema(schema)(value);
    const first = problems[0];
    if (first !== undefined) {
      throw new ValidationError(
        `URI variable ${quoted(name)} does not fit its schema: ${first.pointer || "the value"} ${first.message}`,
        [{ pointer, message: first.message }],
      );
    }
    values[name] = value;
  }
  return values;
}

/** A query parameter's text as the type its schema names; undefined when it is not one. */
function typedVariable(text: string, type: unknown): string | number | boolean | undefined {
  switch (type) {
    case undefined:
    case "string":
      return text;
    case "boolean":
      return text === "true" ? true : text === "false" ? false : undefined;
    case "integer":
      return /^-?\d+$/.test(text) && Number.isSafeInteger(Number(text)) ? Number(text) : undefined;
    case "number": {
      const number = text.trim() === "" ? Number.NaN : Number(text);
      return Number.isFinite(number) ? number : undefined;
    }
    default:
      // Objects, arrays and null: a URI variable cannot be one (TD 1.1 §5.3.1.1).
      return undefined;
  }
}

function checkUriVariables(
  values: Readonly<Record<string, unknown>>,
  declared: Readonly<Record<string, DataSchema>>,
): void {
  for (const [name, value] of Object.entries(values)) {
    const where = `/uriVariables/${escapePointer(name)}`;
    const schema = Object.hasOwn(declared, name) ? declared[name] : undefined;
    if (schema === undefined) {
      // A name the TD does not declare is the client's, of any length: past what a message quotes
      // of it, the pointer is at uriVariables itself, not a copy of the name.
      const at = name.length <= ECHO_LIMIT ? where : "/uriVariables";
      throw new ValidationError(`URI variable ${quoted(name)} is not declared`, [
        { pointer: at, message: "not in the affordance's or the TD's uriVariables" },
      ]);
    }
    if (value === undefined) continue;
    if (!fitsType(value, schema.type)) {
      throw new ValidationError(`URI variable "${name}" must be of type ${schema.type ?? "any"}`, [
        { pointer: where, message: `expected ${schema.type ?? "any"}` },
      ]);
    }
  }
}

/** The binding for a target's href, from bindings keyed by scheme. */
export function bindingFor(bindings: ReadonlyMap<string, Binding>, target: Target): Binding {
  const scheme = uriScheme(target.href) ?? "";
  const binding = bindings.get(scheme);
  if (binding === undefined) {
    throw bindingError(target, "unsupported", `no binding for the URI scheme "${scheme}"`);
  }
  return binding;
}
