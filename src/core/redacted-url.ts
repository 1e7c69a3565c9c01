// URLs in messages and logs: the password a broker, bus or database URL may carry is not shown.

/**
 * `text` (a URL, or what was given as one) with the password of its user part, and the value of a
 * `password=` query parameter, as `***`; the rest as given, so that a message refusing the URL
 * still shows what is wrong with it. Works on the text, not on a parse: a URL that does not parse
 * (a bad port, no scheme: `user:secret@host`) is redacted too. The user part is taken to run from
 * after `scheme://` to the last `@` (a password may hold an unencoded `/`, `?` or `#`), so text
 * that is not a URL with credentials may lose more than a password, never less.
 */
export function redactedUrl(text: string): string {
  const scheme = /^[A-Za-z][A-Za-z0-9+.-]*:\/\//.exec(text)?.[0].length ?? 0;
  const at = text.lastIndexOf("@");
  const colon = text.indexOf(":", scheme);
  const withoutUserPassword =
    at > scheme && colon !== -1 && colon < at ? `${text.slice(0, colon)}:***${text.slice(at)}` : text;
  return withoutUserPassword.replace(/([?&]password=)[^&#]*/gi, "$1***");
}
