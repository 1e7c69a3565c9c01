import { describe, expect, it } from "vitest";
import { badPorts, isBadPort } from "./bad-ports.js";

describe("bad ports", () => {
  it("are the ports this Node.js's fetch refuses, without connecting", async () => {
    for (const port of badPorts()) {
      const refused = await fetch(`http://127.0.0.1:${port}/`).then(
        () => undefined,
        (err: TypeError) => (err.cause as { message?: string } | undefined)?.message,
      );
      expect(refused, `port ${port}`).toBe("bad port");
    }
  });

  it("leave out the hub's default port and the ephemeral ones", () => {
    expect(isBadPort(6000)).toBe(true);
    expect(isBadPort(8080)).toBe(false);
    expect(isBadPort(49152)).toBe(false);
  });
});
