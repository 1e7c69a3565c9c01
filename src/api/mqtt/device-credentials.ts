// Per-device MQTT credentials for the embedded broker: the username is the Thing's id, the
// password an HMAC of that id under the hub's admin token. Nothing to store; rotating the admin
// token revokes every device password at once.
import { createHmac, timingSafeEqual } from "node:crypto";

const LABEL = "hyperthings mqtt device password\n";

export interface DeviceCredentials {
  username: string;
  password: string;
}

export function deviceCredentials(adminToken: string, thing: string): DeviceCredentials {
  const password = createHmac("sha256", adminToken)
    .update(LABEL + thing, "utf8")
    .digest("base64url");
  return { username: thing, password };
}

/** True when `password` is the device password of the Thing named by `username`. */
export function isDevicePassword(adminToken: string, username: string, password: string): boolean {
  const expected = Buffer.from(deviceCredentials(adminToken, username).password, "utf8");
  const given = Buffer.from(password, "utf8");
  return expected.length === given.length && timingSafeEqual(expected, given);
}
