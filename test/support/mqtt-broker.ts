// The machine's MQTT broker for tests that need a real one (HYPERTHINGS_TEST_MQTT_URL, default
// Mosquitto on 127.0.0.1:1883), and whether the run requires it (HYPERTHINGS_REQUIRE_SERVICES=1).
import { connectAsync } from "mqtt";

export const brokerUrl = process.env.HYPERTHINGS_TEST_MQTT_URL || "mqtt://127.0.0.1:1883";

/** True when a missing service fails the run instead of skipping its tests (CI). */
export const servicesRequired = process.env.HYPERTHINGS_REQUIRE_SERVICES === "1";

/** Why the broker cannot be used, or undefined when it answers an MQTT CONNECT. */
export async function brokerProblem(url: string = brokerUrl): Promise<string | undefined> {
  try {
    const client = await connectAsync(url, { reconnectPeriod: 0, connectTimeout: 3_000 });
    await client.endAsync();
    return undefined;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}
