// Thing ids in URLs: `/things/{id}` with the id percent-encoded where it must be (RFC 3986),
// keeping the characters an IRI commonly shows (`:`, `@`) readable.

export function thingPath(id: string): string {
  return `/things/${encodeURIComponent(id).replace(/%3A/gi, ":").replace(/%40/g, "@")}`;
}
