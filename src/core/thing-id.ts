// Thing ids: IRIs (RFC 3987). A TD registered without one is given `urn:uuid:…`.
import { randomUUID } from "node:crypto";

/** A fresh `urn:uuid:` id for an anonymous TD. */
export function newThingId(): string {
  return `urn:uuid:${randomUUID()}`;
}

// RFC 3987 §2.2: an absolute IRI is a scheme, ":", then characters that exclude controls,
// spaces and the delimiters "<>\"{}|\\^`". Percent signs must start a %XX escape.
const SCHEME = /^[A-Za-z][A-Za-z0-9+.-]*:/;
// eslint-disable-next-line no-control-regex
const FORBIDDEN = /[\u0000-\u0020<>"{}|\\^`\u007f-\u009f]/;
const BAD_PERCENT = /%(?![0-9A-Fa-f]{2})/;
// RFC 3986 §3.2.2: "[" and "]" only enclose an IP literal host, `//[::1]:8080/…`; nowhere else.
const IP_LITERAL_AUTHORITY =
  /^\/\/(?:[^/?#@[\]]*@)?\[[0-9A-Za-z:.~!$&'()*+,;=_%-]+\](?::\d*)?(?:[/?#][^[\]]*)?$/;

/** The reason `value` is not an absolute IRI usable as a Thing id, or undefined if it is one. */
export function iriProblem(value: string): string | undefined {
  if (value.length === 0) return "is empty";
  if (value.length > 2048) return "is longer than 2048 characters";
  if (!SCHEME.test(value)) return "has no scheme (an id is an absolute IRI such as urn:example:lamp)";
  if (FORBIDDEN.test(value)) return 'contains a space, a control character or one of <>"{}|\\^`';
  if (BAD_PERCENT.test(value)) return "contains a % that does not start a %XX escape";
  const rest = value.slice(value.indexOf(":") + 1);
  if (rest.length === 0) return "has nothing after its scheme";
  if (/[[\]]/.test(rest) && !IP_LITERAL_AUTHORITY.test(rest)) {
    return "contains [ or ], which an IRI allows only around an IPv6 host (http://[::1]:8080/)";
  }
  return undefined;
}

export function isIri(value: string): boolean {
  return iriProblem(value) === undefined;
}
