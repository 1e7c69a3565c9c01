// What the CLI adds to a hub's 401, by where its token came from: the hint names the file it
// looked in, or why it looked in none.
import { describe, expect, it } from "vitest";
import { unauthorizedHint } from "./client-commands.js";

describe("unauthorizedHint", () => {
  it("names the admin-token file it looked for, and how to point it at another data directory", () => {
    expect(
      unauthorizedHint({ kind: "no-file", path: "/home/you/.local/share/hyperthings/admin-token" }),
    ).toBe(
      "; give a token with --token or HYPERTHINGS_TOKEN: none was given, and there is no " +
        "/home/you/.local/share/hyperthings/admin-token (a hub started with --data DIR keeps its token " +
        "in DIR/admin-token: set HYPERTHINGS_DATA=DIR)",
    );
  });

  it("says a token read from the file is another hub's, and a token given is to be given again", () => {
    expect(unauthorizedHint({ kind: "file", path: "/srv/hub/admin-token" })).toBe(
      "; the admin token in /srv/hub/admin-token is another hub's: give this one's with --token or HYPERTHINGS_TOKEN",
    );
    expect(unauthorizedHint({ kind: "given" })).toBe("; give a token with --token or HYPERTHINGS_TOKEN");
  });
});
