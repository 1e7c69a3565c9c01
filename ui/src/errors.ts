// Errors shown in the page, never only in the console: the hub's problem documents with their
// failing places, an unreachable hub, or anything else thrown.
import { HubError, HubUnreachableError } from "../../src/client/index.js";
import { deviceSays } from "../../src/core/errors.js";
import { h } from "./dom.js";

/**
 * What a Thing said when it refused (its answer's `detail`, `message`… as the CLI shows it), after
 * the hub's words for it: `POST answered 409` alone does not say why. Empty when it said nothing.
 */
export function saidByDevice(body: unknown): string {
  const said = typeof body === "string" ? deviceSays(body) : "";
  return said === "" ? "" : ` — the device said: ${said}`;
}

/** The words for an error: the problem's title and detail, or the reason there was no answer. */
export function messageOf(err: unknown): string {
  if (err instanceof HubError) {
    if (err.status === 401) return "The token was refused by the hub: sign in again with a valid token.";
    const detail = err.detail !== undefined && err.detail !== err.title ? `: ${err.detail}` : "";
    return `${err.title} (${err.status})${detail}${saidByDevice(err.device?.body)}`;
  }
  if (err instanceof HubUnreachableError) return `No answer from the hub: ${err.reason}`;
  return err instanceof Error ? err.message : String(err);
}

/** A problem box: the message and, for a problem document, each failing place (RFC 9457 `errors`). */
export function problemBox(err: unknown): HTMLElement {
  const places = err instanceof HubError ? err.errors : [];
  return h(
    "div",
    { class: "problem", role: "alert" },
    h("p", {}, messageOf(err)),
    places.length > 0 &&
      h(
        "ul",
        {},
        places.map((place) => h("li", {}, h("code", {}, place.pointer || "/"), " ", place.detail)),
      ),
  );
}
