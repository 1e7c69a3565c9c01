// The signed-in session: the hub is the page's own origin, the token lives in sessionStorage (it
// goes when the tab closes), and every view talks to the hub through the typed client.
import { InteractionClient } from "../../src/client/index.js";

const TOKEN_KEY = "hyperthings.token";

export function storedToken(): string | undefined {
  return sessionStorage.getItem(TOKEN_KEY) ?? undefined;
}

export function clientFor(token: string | undefined): InteractionClient {
  return new InteractionClient({ url: location.origin, token });
}

/**
 * Checks a token against the hub before keeping it: a read that carries it answers 401 when the
 * hub does not know it (even where reads are open), and that error is the caller's to show.
 */
export async function signIn(token: string): Promise<InteractionClient> {
  const client = clientFor(token);
  await client.list({ limit: 1 });
  sessionStorage.setItem(TOKEN_KEY, token);
  return client;
}

export function signOut(): void {
  sessionStorage.removeItem(TOKEN_KEY);
}
