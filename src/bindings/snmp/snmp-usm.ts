// SNMPv3 with the User-based Security Model (RFC 3414): the `snmp:usm` vocabulary as net-snmp's
// user, and what an agent's USM reports (or net-snmp's own checks of an answer) mean.
import { AuthProtocols, PrivProtocols, ResponseInvalidCode, SecurityLevel } from "net-snmp";
import type { User } from "net-snmp";
import type { Credentials, SnmpAuthProtocol, SnmpPrivProtocol } from "../binding.js";

export type UsmCredentials = Extract<Credentials, { scheme: "snmp-usm" }>;

const AUTH: Readonly<Record<SnmpAuthProtocol, AuthProtocols>> = {
  MD5: AuthProtocols.md5,
  SHA: AuthProtocols.sha,
  "SHA-224": AuthProtocols.sha224,
  "SHA-256": AuthProtocols.sha256,
  "SHA-384": AuthProtocols.sha384,
  "SHA-512": AuthProtocols.sha512,
};

const PRIV: Readonly<Record<SnmpPrivProtocol, PrivProtocols>> = {
  DES: PrivProtocols.des,
  AES: PrivProtocols.aes,
  "AES-256": PrivProtocols.aes256b,
  "AES-256-C": PrivProtocols.aes256r,
};

/** net-snmp's user for a `snmp-usm` credential; it localizes the passphrases to the engine itself. */
export function usmUser(credentials: UsmCredentials): User {
  const user: User = { name: credentials.user, level: SecurityLevel[credentials.level] };
  if (credentials.authProtocol !== undefined && credentials.authPassphrase !== undefined) {
    user.authProtocol = AUTH[credentials.authProtocol];
    user.authKey = credentials.authPassphrase;
  }
  if (credentials.privProtocol !== undefined && credentials.privPassphrase !== undefined) {
    user.privProtocol = PRIV[credentials.privProtocol];
    user.privKey = credentials.privPassphrase;
  }
  return user;
}

/** RFC 3414 §5: the usmStats counters an agent's Report-PDU names, by what net-snmp calls them. */
const REPORTS: readonly (readonly [prefix: string, counter: string])[] = [
  ["Unsupported Security Level", "usmStatsUnsupportedSecLevels"],
  ["Not In Time Window", "usmStatsNotInTimeWindows"],
  ["Unknown User Name", "usmStatsUnknownUserNames"],
  ["Unknown Engine ID", "usmStatsUnknownEngineIDs"],
  ["Wrong Digest", "usmStatsWrongDigests"],
  ["Decryption Error", "usmStatsDecryptionErrors"],
];

// Not in @types/net-snmp's enum, but in net-snmp's.
const NOT_IN_TIME_WINDOW = (ResponseInvalidCode as unknown as Record<string, number | undefined>)[
  "ENotInTimeWindow"
];

/**
 * The usmStats counter a net-snmp error stands for: an agent's report (`reported`), or net-snmp's
 * own check of the agent's answer failing (RFC 3414 §3.2 steps 6–8 count those under the same
 * names); undefined for any other error.
 */
export function usmErrorOf(error: unknown): { counter: string; reported: boolean } | undefined {
  if (!(error instanceof Error) || error.name !== "ResponseInvalidError") return undefined;
  const code = (error as { code?: unknown }).code;
  if (code === ResponseInvalidCode.ECouldNotDecrypt)
    return { counter: "usmStatsDecryptionErrors", reported: false };
  if (code === NOT_IN_TIME_WINDOW) return { counter: "usmStatsNotInTimeWindows", reported: false };
  if (code !== ResponseInvalidCode.EAuthFailure) return undefined;
  for (const [prefix, counter] of REPORTS)
    if (error.message.startsWith(prefix)) return { counter, reported: true };
  // "Authentication digest … does not match …": an answer signed with another key.
  if (error.message.startsWith("Authentication digest"))
    return { counter: "usmStatsWrongDigests", reported: false };
  return undefined;
}

/** What each counter tells the operator, for the error's message. */
export function usmExplanation(counter: string, credentials: UsmCredentials): string {
  const user = `user "${credentials.user}"`;
  switch (counter) {
    case "usmStatsUnknownUserNames":
      return `the agent has no ${user}`;
    case "usmStatsWrongDigests":
      return credentials.level === "noAuthNoPriv"
        ? `the agent requires authentication for ${user}, and the TD's snmp:securityLevel is noAuthNoPriv`
        : `the digest does not match: the auth passphrase or snmp:authProtocol of ${user} differs from the agent's`;
    case "usmStatsDecryptionErrors":
      return `the PDU cannot be decrypted: the priv passphrase or snmp:privProtocol of ${user} differs from the agent's`;
    case "usmStatsUnsupportedSecLevels":
      return `the agent does not take ${credentials.level} for ${user}: set snmp:securityLevel to the user's level`;
    case "usmStatsNotInTimeWindows":
      return "the message is outside the agent's time window (RFC 3414 §3.2 step 7), even after resynchronising";
    case "usmStatsUnknownEngineIDs":
      return "the agent does not know the engine ID the request names";
    default:
      return counter;
  }
}
