// An affordance as a person reads it: by its TD title, with its name (the key the Log, the API and
// the CLI use) beside it in code font when the name says something the title does not, and a
// property's values with its unit.
import { h, show } from "./dom.js";
import { readableName } from "./schema-form.js";
import { unitText } from "./units.js";

/** What the views read of an affordance in a TD: its title, and a property's unit. */
export interface Named {
  title?: string;
  unit?: string;
}

/** The words of a name or title, in lower case: `boilerTemp_2` is boiler, temp, 2. */
function words(text: string): string[] {
  return readableName(text)
    .toLowerCase()
    .split(/[^\p{L}\p{N}]+/u)
    .filter((word) => word !== "");
}

/** Whether a title already says its name: each word of the name is one of the title's. */
export function titleSaysName(title: string, name: string): boolean {
  const said = new Set(words(title));
  return words(name).every((word) => said.has(word));
}

/**
 * An affordance's heading text: its title, then its name as a key (`Mode state`) only when the
 * title does not already say it (`Boiler temperature`, not `Boiler temperature temperature`);
 * its name by itself when it has no title. The name is always the tooltip.
 */
export function affordanceLabel(name: string, affordance: Named | undefined): Array<string | HTMLElement> {
  const title = affordance?.title;
  if (title === undefined || title === name) return [name];
  if (titleSaysName(title, name)) return [title];
  return [title, " ", h("code", { class: "key" }, name)];
}

/** A table's heading cell for an affordance, named as `affordanceLabel` says, its name as tooltip. */
export function affordanceHeading(name: string, affordance: Named | undefined): HTMLElement {
  return h("th", { title: name, "data-name": name }, ...affordanceLabel(name, affordance));
}

/**
 * A value with its property's unit (`21.5 °C`): the unit beside a number only, the two one piece
 * that a squeezed column never breaks between the number and its unit.
 */
export function withUnit(value: unknown, unit: string | undefined): Array<string | HTMLElement> {
  if (unit === undefined || typeof value !== "number") return [show(value)];
  return [h("span", { class: "quantity" }, show(value), h("span", { class: "unit" }, ` ${unitText(unit)}`))];
}

/** An affordance of a TD (`properties`, `actions` or `events`) by name, if the TD has it. */
export function affordanceIn(
  td: unknown,
  group: "properties" | "actions" | "events",
  name: string,
): Named | undefined {
  if (typeof td !== "object" || td === null) return undefined;
  const affordances = (td as Record<string, unknown>)[group];
  if (typeof affordances !== "object" || affordances === null) return undefined;
  const affordance = (affordances as Record<string, unknown>)[name];
  if (typeof affordance !== "object" || affordance === null) return undefined;
  const { title, unit } = affordance as { title?: unknown; unit?: unknown };
  return {
    ...(typeof title === "string" ? { title } : {}),
    ...(typeof unit === "string" ? { unit } : {}),
  };
}

/** Where a Change's affordance is declared, by its kind (an outcome may be a write's or an action's). */
function groupsOf(kind: string): Array<"properties" | "actions" | "events"> {
  if (kind === "emitted") return ["events"];
  if (kind === "invoked") return ["actions"];
  if (kind === "completed" || kind === "failed") return ["actions", "properties"];
  return ["properties", "actions", "events"];
}

/** The affordance a Change names, as a TD (the one in force at the Change) declares it, if it does. */
export function affordanceOfChange(
  td: unknown,
  change: { kind: string; affordance?: string | undefined },
): Named | undefined {
  if (change.affordance === undefined || td === undefined) return undefined;
  for (const group of groupsOf(change.kind)) {
    const found = affordanceIn(td, group, change.affordance);
    if (found !== undefined) return found;
  }
  return undefined;
}
