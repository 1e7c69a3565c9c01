// The SecretStore: where the hub keeps the credentials it uses towards Things, sealed. The hub
// encrypts before it stores and decrypts after it loads (thing-secrets.ts), so a backend only
// ever holds ciphertext; declared here, implemented per backend (store/sqlite/sqlite-secret-store.ts).

export interface SecretStore {
  /** Stores (or replaces) the sealed secret of one security definition of a Thing. */
  put(thing: string, name: string, sealed: Uint8Array): Promise<void>;
  /** The sealed secrets of a Thing, by security definition name. */
  get(thing: string): Promise<Map<string, Uint8Array>>;
  /** The security definition names a Thing has secrets for, sorted. */
  names(thing: string): Promise<string[]>;
  /** Forgets one secret of a Thing, or all of them without `name`; how many went. */
  remove(thing: string, name?: string): Promise<number>;
  close(): Promise<void>;
}
