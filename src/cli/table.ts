// Plain-text tables for people: left-aligned padded columns, cells cut with "…" to fit a width.

export interface TableOptions {
  /** The widest a line may be (a terminal's columns); no limit when absent. */
  maxWidth?: number | undefined;
  /** No column is cut narrower than this, nor than its header (default 8). */
  minColumnWidth?: number;
  /** The indexes of columns never cut (dates, short codes). */
  uncut?: number[];
}

const GAP = "  ";

/** Width in code points; good enough for ids, titles and types (no East Asian width tables). */
function widthOf(text: string): number {
  return Array.from(text).length;
}

function cut(text: string, width: number): string {
  const chars = Array.from(text);
  return chars.length <= width ? text : `${chars.slice(0, Math.max(0, width - 1)).join("")}…`;
}

/** Control characters (a newline in a title) would break the rows apart. */
function oneLine(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f]+/g, " ");
}

/**
 * The table as text, one line per row after the header, each ending in a newline. When it is wider
 * than `maxWidth`, the widest columns give up width first, down to their minimum.
 */
export function formatTable(headers: string[], rows: string[][], options: TableOptions = {}): string {
  const cells = rows.map((row) => headers.map((_, i) => oneLine(row[i] ?? "")));
  const widths = headers.map((header, i) =>
    Math.max(widthOf(header), ...cells.map((row) => widthOf(row[i] ?? ""))),
  );
  if (options.maxWidth !== undefined) {
    const minimum = headers.map((header, i) =>
      options.uncut?.includes(i) ? (widths[i] ?? 0) : Math.max(widthOf(header), options.minColumnWidth ?? 8),
    );
    let excess = widths.reduce((sum, w) => sum + w, 0) + GAP.length * (headers.length - 1) - options.maxWidth;
    while (excess > 0) {
      let widest = -1;
      for (let i = 0; i < widths.length; i++) {
        const w = widths[i] ?? 0;
        if (w > (minimum[i] ?? 0) && (widest === -1 || w > (widths[widest] ?? 0))) widest = i;
      }
      if (widest === -1) break;
      widths[widest] = (widths[widest] ?? 0) - 1;
      excess--;
    }
  }
  const line = (row: string[]) =>
    row
      .map((cell, i) => {
        const width = widths[i] ?? 0;
        const text = cut(cell, width);
        return i === row.length - 1 ? text : text + " ".repeat(width - widthOf(text));
      })
      .join(GAP)
      .trimEnd();
  return [headers, ...cells].map((row) => `${line(row)}\n`).join("");
}
