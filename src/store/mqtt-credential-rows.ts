// The embedded broker's credential records as both stores hold them (table `mqtt_credentials`,
// the same columns in SQLite and PostgreSQL), and the records they make.
import type { MqttCredential, MqttCredentialKind } from "../hub/index.js";

export interface MqttCredentialRow {
  username: string;
  kind: string;
  generation: number;
  issued_at: string | null;
  issued_by: string | null;
  last_used_at: string | null;
  revoked_at: string | null;
  revoked_by: string | null;
  revoked_because: string | null;
}

/** The columns, in the order of MqttCredentialRow (and of `mqttCredentialValues`). */
export const MQTT_CREDENTIAL_COLUMNS =
  "username, kind, generation, issued_at, issued_by, last_used_at, revoked_at, revoked_by, revoked_because";

export function mqttCredentialOf(row: MqttCredentialRow): MqttCredential {
  return {
    username: row.username,
    kind: row.kind as MqttCredentialKind,
    generation: row.generation,
    ...(row.issued_at !== null && { issuedAt: row.issued_at }),
    ...(row.issued_by !== null && { issuedBy: row.issued_by }),
    ...(row.last_used_at !== null && { lastUsedAt: row.last_used_at }),
    ...(row.revoked_at !== null && { revokedAt: row.revoked_at }),
    ...(row.revoked_by !== null && { revokedBy: row.revoked_by }),
    ...(row.revoked_because !== null && { revokedBecause: row.revoked_because }),
  };
}

export function mqttCredentialRow(record: MqttCredential): MqttCredentialRow {
  return {
    username: record.username,
    kind: record.kind,
    generation: record.generation,
    issued_at: record.issuedAt ?? null,
    issued_by: record.issuedBy ?? null,
    last_used_at: record.lastUsedAt ?? null,
    revoked_at: record.revokedAt ?? null,
    revoked_by: record.revokedBy ?? null,
    revoked_because: record.revokedBecause ?? null,
  };
}

/** The row's values in MQTT_CREDENTIAL_COLUMNS' order, for positional parameters. */
export function mqttCredentialValues(record: MqttCredential): unknown[] {
  return Object.values(mqttCredentialRow(record));
}
