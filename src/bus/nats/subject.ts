// How a Change is named on NATS (docs/nats.md): its subject, its message id, and the checks on the
// settings that make them (server URL, subject prefix, stream name).
import { createHash } from "node:crypto";
import { redactedUrl, ValidationError, type Change } from "../../core/index.js";

/** A token longer than this is replaced by a hash: NATS caps a subject's length (4 KiB by default). */
const MAX_TOKEN = 200;

/**
 * One subject token for a Thing id or a kind: the UTF-8 bytes percent-encoded except
 * `A–Z a–z 0–9 - _` (so no `.`, `*`, `>`, space or control character, and `decodeURIComponent`
 * gives the id back); one that would be longer than 200 characters (or empty, or not well-formed
 * UTF-16) is `~` and the SHA-256 of the text in hex instead (no percent-encoded token starts with `~`). The payload always holds the id.
 */
export function subjectToken(text: string): string {
  let encoded = "";
  try {
    encoded = encodeURIComponent(text).replace(
      /[.!~*'()]/g,
      (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
    );
  } catch {
    // URIError: no UTF-8 form (a lone surrogate); hashed below.
  }
  if (encoded.length > 0 && encoded.length <= MAX_TOKEN) return encoded;
  return `~${createHash("sha256").update(text).digest("hex")}`;
}

/** `<prefix>.changes.<thing token>.<kind token>`. */
export function changeSubject(prefix: string, change: Change): string {
  return `${prefix}.changes.${subjectToken(change.thing)}.${subjectToken(change.kind)}`;
}

/** What JetStream deduplicates on: the same Change published twice is stored once. */
export function changeMessageId(hubId: string, seq: number): string {
  return `${hubId}:${seq}`;
}

/** The hub's seq in one of its own message ids; undefined for another publisher's. */
export function seqOfMessageId(hubId: string, id: string | undefined): number | undefined {
  if (id === undefined || !id.startsWith(`${hubId}:`)) return undefined;
  const text = id.slice(hubId.length + 1);
  return /^[1-9]\d{0,15}$/.test(text) ? Number(text) : undefined;
}

/**
 * The NATS servers of `--bus`: one or more `nats://` or `tls://` URLs separated by commas, each a
 * host and an optional port (credentials, if any, in the URL's user part); undefined for the
 * in-process bus. Throws a ValidationError naming the setting.
 */
export function parseNatsServers(setting: string, text: string): string[] {
  const servers = text
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s !== "");
  if (servers.length === 0) throw new ValidationError(`${setting} must not be empty`);
  for (const server of servers) {
    let url: URL;
    try {
      url = new URL(server);
    } catch {
      throw new ValidationError(
        `${setting} must be "in-process" or nats://host[:port] (several separated by commas), not "${redactedUrl(server)}"`,
      );
    }
    if (url.protocol !== "nats:" && url.protocol !== "tls:") {
      throw new ValidationError(
        `${setting} must be "in-process" or nats://host[:port] (or tls://…), not "${redactedUrl(server)}": the scheme ${url.protocol} is not NATS`,
      );
    }
    if (url.hostname === "" || (url.pathname !== "" && url.pathname !== "/") || url.search || url.hash) {
      throw new ValidationError(
        `${setting} must be nats://host[:port] with nothing after the port, not "${redactedUrl(server)}"`,
      );
    }
  }
  return servers;
}

/** A subject prefix: dot-separated tokens of `A–Z a–z 0–9 - _` (no wildcards, no empty token). */
export function checkSubjectPrefix(setting: string, text: string): string {
  if (text.length > 128 || !/^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$/.test(text)) {
    throw new ValidationError(
      `${setting} must be NATS subject tokens of letters, digits, "-" and "_" separated by dots (at most 128 characters), not "${text}"`,
    );
  }
  return text;
}

/** A JetStream stream name: letters, digits, "-" and "_" (no dots, wildcards or spaces). */
export function checkStreamName(setting: string, text: string): string {
  if (!/^[A-Za-z0-9_-]{1,64}$/.test(text)) {
    throw new ValidationError(`${setting} must be 1–64 letters, digits, "-" or "_", not "${text}"`);
  }
  return text;
}
