// Two JSON documents (a Thing's TD then and now) drawn as a line diff: removed lines red, added
// lines green, long unchanged stretches folded to a few lines of context around each change.
import { diffLines } from "diff";
import { h } from "./dom.js";

/** Unchanged lines shown before and after each change. */
const CONTEXT = 3;

/** `undefined` (no document then) diffs as nothing. */
function linesOf(value: unknown): string {
  return value === undefined ? "" : `${JSON.stringify(value, null, 2)}\n`;
}

export function jsonDiff(before: unknown, after: unknown): HTMLElement {
  const parts = diffLines(linesOf(before), linesOf(after));
  const rows: HTMLElement[] = [];
  let added = 0;
  let removed = 0;
  parts.forEach((part, index) => {
    const lines = part.value.replace(/\n$/, "").split("\n");
    if (part.added || part.removed) {
      const mark = part.added ? "+" : "-";
      if (part.added) added += lines.length;
      else removed += lines.length;
      for (const line of lines)
        rows.push(h("span", { class: part.added ? "line added" : "line removed" }, `${mark} ${line}\n`));
      return;
    }
    // Unchanged: the lines next to a change stay, the rest fold into one line that says how many.
    const keepHead = index > 0 ? CONTEXT : 0;
    const keepTail = index < parts.length - 1 ? CONTEXT : 0;
    if (lines.length <= keepHead + keepTail + 1) {
      for (const line of lines) rows.push(h("span", { class: "line" }, `  ${line}\n`));
      return;
    }
    for (const line of lines.slice(0, keepHead)) rows.push(h("span", { class: "line" }, `  ${line}\n`));
    const folded = lines.length - keepHead - keepTail;
    rows.push(
      h("span", { class: "line folded" }, `  … ${folded} unchanged line${folded === 1 ? "" : "s"}\n`),
    );
    for (const line of lines.slice(lines.length - keepTail))
      rows.push(h("span", { class: "line" }, `  ${line}\n`));
  });
  return h(
    "div",
    { class: "json-diff", "data-added": added, "data-removed": removed },
    h("p", { class: "muted" }, `${added} line${added === 1 ? "" : "s"} added, ${removed} removed`),
    h("pre", {}, rows),
  );
}
