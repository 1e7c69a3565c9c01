// The Log's verification status: its signing key and the last signed checkpoint (RFC 9162 tree
// size and root), which `things verify` checks offline.
import type { View } from "./app-context.js";
import { h, replace, showTime } from "./dom.js";
import { problemBox } from "./errors.js";
import { redrawWhenBack } from "./live.js";

export const logView: View = ({ client, live }, root) => {
  let cancelRedraw: (() => void) | undefined;
  const out = h("div", {}, h("p", { class: "muted" }, "Loading…"));
  replace(root, h("h1", {}, "Log"), out);
  let disposed = false;
  void Promise.all([client.checkpoint(), client.logKey(), client.health()]).then(
    ([checkpoint, key, health]) => {
      if (disposed) return;
      replace(
        out,
        checkpoint === undefined
          ? h("p", { "data-testid": "checkpoint" }, "The Log is empty: no checkpoint yet.")
          : h(
              "dl",
              { "data-testid": "checkpoint", "data-size": checkpoint.size, "data-root": checkpoint.root },
              h("dt", {}, "Last signed checkpoint"),
              h("dd", {}, `${checkpoint.size} Changes, signed ${showTime(checkpoint.time)}`),
              h("dt", {}, "Root hash"),
              h("dd", {}, h("code", {}, checkpoint.root)),
              h("dt", {}, "Unsigned Changes after it"),
              h("dd", {}, String(Math.max(0, health.lastSeq - checkpoint.size))),
              h("dt", {}, "Origin"),
              h("dd", {}, h("code", {}, checkpoint.origin)),
              h("dt", {}, "Signature"),
              h("dd", {}, `${key.algorithm}, `, h("code", { class: "wrap" }, checkpoint.signature)),
            ),
        h(
          "p",
          {},
          "Verify the whole Log offline against this key with ",
          h("code", {}, "things verify"),
          ".",
        ),
        checkpoint !== undefined &&
          h(
            "p",
            {},
            h(
              "a",
              {
                // The checkpoint as the hub signed it, one JSON object: what `things checkpoint` keeps.
                href: URL.createObjectURL(
                  new Blob([`${JSON.stringify(checkpoint)}\n`], { type: "application/json" }),
                ),
                download: `checkpoint-${checkpoint.size}.json`,
                "data-testid": "keep-checkpoint",
              },
              "Keep this checkpoint",
            ),
            " where the hub cannot change it; later, ",
            h("code", {}, `things verify --checkpoint checkpoint-${checkpoint.size}.json`),
            " proves the Log still holds what it signed (not cut short, not rewritten).",
          ),
        h("details", {}, h("summary", {}, "Public key"), h("pre", {}, key.publicKey)),
      );
    },
    (err: unknown) => {
      if (disposed) return;
      const back = redrawWhenBack(live, err);
      cancelRedraw = back?.cancel;
      replace(out, problemBox(err), back?.note);
    },
  );
  return () => {
    disposed = true;
    cancelRedraw?.();
  };
};
