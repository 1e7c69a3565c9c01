import { describe, expect, it } from "vitest";
import { parseBrokerUrl } from "./external-broker.js";

/** The message parseBrokerUrl refuses `text` with. */
function refusal(text: string): string {
  try {
    parseBrokerUrl(text);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error(`${text} was taken`);
}

describe("parseBrokerUrl's refusals", () => {
  it.each([
    // Does not parse: the port is out of range.
    ["mqtt://hub:s3cret@broker.example:99999", "is not a URL", "mqtt://hub:***@broker.example:99999"],
    // Not MQTT.
    [
      "http://hub:s3cret@broker.example:1883",
      "must be mqtt://host[:port]",
      "http://hub:***@broker.example:1883",
    ],
    // No scheme: `new URL` takes `hub:` for one.
    ["hub:s3cret@broker.example:1883", "must be mqtt://host[:port]", "hub:***@broker.example:1883"],
  ])("of %s name the problem and the URL without its password", (given, problem, shown) => {
    const message = refusal(given);
    expect(message).not.toContain("s3cret");
    expect(message).toContain(problem);
    expect(message).toContain(shown);
  });

  it("still take a URL with credentials", () => {
    expect(parseBrokerUrl("mqtt://hub:s3cret@broker.example:1883").password).toBe("s3cret");
  });
});
