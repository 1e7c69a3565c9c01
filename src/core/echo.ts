// What an error message quotes of a client's input, bounded: a 1 MB bad value must not come back
// as a 1 MB problem document (or log line), and the first characters are enough to know it again.

/** How many characters of a client's value an error message quotes. */
export const ECHO_LIMIT = 80;

/** The first `limit` characters (code points: a surrogate pair is never cut), and how many there are. */
function cut(text: string, limit: number): { head: string; count: number } | undefined {
  // Cheap for what is short: a UTF-16 length within the limit is within it in code points too.
  if (text.length <= limit) return undefined;
  let count = 0;
  let end = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code >= 0xd800 && code <= 0xdbff && i + 1 < text.length) {
      const next = text.charCodeAt(i + 1);
      if (next >= 0xdc00 && next <= 0xdfff) i++;
    }
    count++;
    if (count === limit) end = i + 1;
  }
  return count <= limit ? undefined : { head: text.slice(0, end), count };
}

/**
 * A client's value as an error message quotes it: `"abc"` (JSON-quoted, so quotes and control
 * characters inside show as escapes), or past `limit` characters its beginning and its length:
 * `"aaaa…" (5,000 characters)`.
 */
export function quoted(text: string, limit = ECHO_LIMIT): string {
  const long = cut(text, limit);
  if (long === undefined) return JSON.stringify(text);
  return `${JSON.stringify(`${long.head}…`)} (${long.count.toLocaleString("en-US")} characters)`;
}

/**
 * The same, unquoted, for a value a message names as it is (a Thing's id, a path): `urn:x`, or
 * `urn:aaaa… (5,000 characters)`.
 */
export function echoed(text: string, limit = ECHO_LIMIT): string {
  const long = cut(text, limit);
  if (long === undefined) return text;
  return `${long.head}… (${long.count.toLocaleString("en-US")} characters)`;
}
