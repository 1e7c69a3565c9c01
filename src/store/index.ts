// The public face of the store: the interface, and the backends chosen by configuration.
export type * from "./store.js";
export {
  SqliteStore,
  makeDataDirectory,
  makeDirectory,
  unmadeDirectory,
  type SqliteStoreOptions,
} from "./sqlite/sqlite-store.js";
export { SqliteSecretStore, type SqliteSecretStoreOptions } from "./sqlite/sqlite-secret-store.js";
export { backupSqliteDatabase, type BackupProgress, type BackupResult } from "./sqlite/sqlite-backup.js";
export { SqliteLogFile, type LogFileHead } from "./sqlite/sqlite-log-file.js";
export { PostgresStore, type PostgresStoreOptions } from "./postgres/postgres-store.js";
export { PostgresSecretStore, type PostgresSecretStoreOptions } from "./postgres/postgres-secret-store.js";
export { PostgresMqttCredentialStore } from "./postgres/postgres-mqtt-credentials.js";
export { SqliteMqttCredentialStore } from "./sqlite/sqlite-mqtt-credentials.js";
export { PostgresLogReader, type PostgresLogHead } from "./postgres/postgres-log-reader.js";
export {
  DEFAULT_SCHEMA as DEFAULT_POSTGRES_SCHEMA,
  type PostgresConnectionOptions,
} from "./postgres/postgres-connection.js";
