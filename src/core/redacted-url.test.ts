import { describe, expect, it } from "vitest";
import { redactedUrl } from "./redacted-url.js";

describe("redactedUrl", () => {
  it.each([
    ["mqtt://hub:s3cret@broker.example:1883", "mqtt://hub:***@broker.example:1883"],
    ["nats://hub:s3cret@127.0.0.1:4222", "nats://hub:***@127.0.0.1:4222"],
    ["postgres://root:s3cret@127.0.0.1:5432/test", "postgres://root:***@127.0.0.1:5432/test"],
    // Does not parse (the port is out of range): redacted all the same, the port still shown.
    ["mqtt://hub:s3cret@broker.example:99999", "mqtt://hub:***@broker.example:99999"],
    // No scheme: `new URL` takes `hub:` for one and sees no password at all.
    ["hub:s3cret@broker.example:1883", "hub:***@broker.example:1883"],
    // Unencoded `@`, `/` and `#` in the password.
    ["mqtt://hub:s3c@r/e#t@broker.example", "mqtt://hub:***@broker.example"],
    [
      "postgres://root@127.0.0.1/test?password=s3cret&sslmode=require",
      "postgres://root@127.0.0.1/test?password=***&sslmode=require",
    ],
  ])("hides the password of %s", (given, shown) => {
    expect(redactedUrl(given)).toBe(shown);
    expect(redactedUrl(given)).not.toContain("s3c");
  });

  it.each(["mqtt://broker.example:1883", "mqtt://hub@broker.example", "nats://127.0.0.1:4222", "not a url"])(
    "leaves %s, which holds no password, as given",
    (given) => {
      expect(redactedUrl(given)).toBe(given);
    },
  );
});
