// Element building for the UI's plain DOM views: h("tag", { attributes }, ...children).
type Child = Node | string | number | false | null | undefined;
type Attributes = Record<string, string | number | boolean | EventListener | undefined>;

export function h<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  attributes: Attributes = {},
  ...children: (Child | Child[])[]
): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === false) continue;
    if (typeof value === "function") element.addEventListener(name.replace(/^on/, ""), value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

export function append(parent: Node, children: (Child | Child[])[]): void {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** Replaces an element's content. */
export function replace(parent: Element, ...children: (Child | Child[])[]): void {
  parent.replaceChildren();
  append(parent, children);
}

/** A value as short text: strings as they are, everything else as JSON. */
export function show(value: unknown): string {
  if (value === undefined) return "—";
  if (typeof value === "string") return value;
  return JSON.stringify(value);
}

/** A time as local date and time, to the second. */
export function showTime(time: string | number | Date): string {
  const date = new Date(time);
  return Number.isNaN(date.getTime()) ? String(time) : date.toLocaleString(undefined, { hour12: false });
}

/** `#/thing/<id>`: ids are IRIs, so they are percent-encoded into the hash. */
export function thingHref(id: string): string {
  return `#/thing/${encodeURIComponent(id)}`;
}

/** The Thing id a `#/thing/…` or `#/time/…` address carries; a broken %-escape says so in words. */
export function idFromHash(encoded: string): string {
  try {
    return decodeURIComponent(encoded);
  } catch {
    throw new Error(`This address names no Thing: "${encoded}" is not a percent-encoded Thing id.`);
  }
}

/**
 * Names each cell of a table by its column's heading (`data-label`) and marks the table `cards`:
 * in a narrow window (a phone) each row is drawn as a card, each cell a line with its heading
 * before it (style.css), where the table scrolled sideways inside its box.
 */
export function asCards<T extends HTMLTableElement>(table: T): T {
  table.classList.add("cards");
  const headings = [...table.querySelectorAll("thead th")].map((th) => th.textContent?.trim() ?? "");
  for (const row of table.querySelectorAll("tbody tr"))
    [...row.children].forEach((cell, i) => {
      const heading = headings[i];
      if (heading !== undefined && heading !== "" && cell.tagName === "TD")
        cell.setAttribute("data-label", heading);
    });
  return table;
}
