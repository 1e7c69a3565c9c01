// Text from outside the operator's hands — a Thing's title, a device's reported string, a device's
// error answer — shown on a terminal: its control characters are shown escaped, never sent, so a
// TD or a device cannot drive the terminal that reads it (colours, a window title, a cleared screen,
// a line rewritten with \r, or worse on terminals that answer queries).

// C0 but tab and newline, DEL, and C1 (U+0080–U+009F: a UTF-8 terminal may take U+009B as CSI).
// eslint-disable-next-line no-control-regex
const CONTROLS = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f]/g;

/** The text with each control character written as its JSON escape (`\u001b`). */
export function visibleControls(text: string): string {
  return text.replace(CONTROLS, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`);
}

const guarded = new WeakSet<NodeJS.WriteStream>();

/**
 * Makes what a command writes as text to `stream` show control characters escaped, when `stream`
 * is a terminal. A pipe or a file gets the bytes as they are: `--json` output and exports escape
 * control characters by JSON's rules already, and must stay byte for byte what the hub sent.
 */
export function guardTerminal(stream: NodeJS.WriteStream): void {
  if (stream.isTTY !== true || guarded.has(stream)) return;
  guarded.add(stream);
  const write = stream.write.bind(stream) as (chunk: unknown, ...rest: unknown[]) => boolean;
  stream.write = (chunk: unknown, ...rest: unknown[]) =>
    write(typeof chunk === "string" ? visibleControls(chunk) : chunk, ...rest);
}
