// How a release argument is read (`things plan`, `things rollout`): a full id, an id prefix, or a
// name, against a client that lists a fixed set of releases.
import { describe, expect, it } from "vitest";
import type { ReleaseClient } from "../client/index.js";
import { resolveRelease } from "./release-commands.js";

const NEWER = `sha256:5914afee${"1".repeat(56)}`;
const OLDER = `sha256:6a919978${"2".repeat(56)}`;

/** A client whose only answer is the stored releases, newest first, on one page. */
const client = {
  releases: async () =>
    Promise.resolve({
      releases: [
        { id: NEWER, name: "demo-baseline" },
        { id: OLDER, name: "demo-baseline" },
      ],
    }),
} as unknown as ReleaseClient;

describe("resolveRelease", () => {
  it("reads a name as its newest release, and an id prefix with sha256: as that release", async () => {
    expect(await resolveRelease(client, "demo-baseline")).toBe(NEWER);
    expect(await resolveRelease(client, "sha256:6a91")).toBe(OLDER);
  });

  it("reads an id prefix without sha256: (hex copied from a hash) as that release", async () => {
    expect(await resolveRelease(client, "6a919978")).toBe(OLDER);
    expect(await resolveRelease(client, "5914AFEE")).toBe(NEWER);
  });

  it("refuses what names no release, and a prefix too short to be one, in one line", async () => {
    await expect(resolveRelease(client, "nope")).rejects.toThrow(
      "no release is named nope or has an id starting with it (see things releases)",
    );
    await expect(resolveRelease(client, "6a9")).rejects.toThrow(/^no release is named 6a9 /);
  });
});
