// A UPS's SNMP agent for the tests of the SNMP binding and of SNMP Things through the hub: a real
// net-snmp agent on loopback (UDP, port 0) serving MIB-II's sysName and UPS-MIB's battery charge
// and self-test, to the communities or SNMPv3 users a test gives it.
import { SnmpAgent, SnmpType, type SnmpAgentOptions } from "../../src/sim/snmp-agent.js";

/** The instance OIDs (`.0`) of the agent's scalars, as a form's href ends. */
export const SYS_NAME = "1.3.6.1.2.1.1.5.0";
export const CHARGE = "1.3.6.1.2.1.33.1.2.4.0";
export const SELF_TEST = "1.3.6.1.2.1.33.1.7.1.0";

/** What the agent holds when it starts, and again after `resetUpsAgent`. */
const INITIAL = { sysName: "ups-1", charge: 97, selfTest: 0 } as const;

export interface UpsAgentOptions {
  /** SNMPv1/v2c communities it answers; none by default. */
  communities?: readonly string[];
  /** SNMPv3 USM users it knows. */
  users?: SnmpAgentOptions["users"];
  /** Told of each value a SET of the self-test committed. */
  onSelfTestSet?: (value: unknown) => void;
  /** As SnmpAgent's: false drops a request that does not authenticate instead of reporting it. */
  reportSecurityFailures?: boolean;
}

/**
 * Starts the agent: sysName (writable text), charge (read-only integer) and selfTest (writable
 * integer, 0 to 2: a SET of another value is refused).
 */
export function startUpsAgent(options: UpsAgentOptions = {}): Promise<SnmpAgent> {
  const { communities = [], users, onSelfTestSet, reportSecurityFailures } = options;
  return SnmpAgent.start({
    communities,
    ...(users !== undefined && { users }),
    ...(reportSecurityFailures !== undefined && { reportSecurityFailures }),
    scalars: [
      {
        name: "sysName",
        oid: "1.3.6.1.2.1.1.5",
        type: SnmpType.OctetString,
        value: INITIAL.sysName,
        writable: true,
      },
      { name: "charge", oid: "1.3.6.1.2.1.33.1.2.4", type: SnmpType.Integer32, value: INITIAL.charge },
      {
        name: "selfTest",
        oid: "1.3.6.1.2.1.33.1.7.1",
        type: SnmpType.Integer32,
        value: INITIAL.selfTest,
        writable: true,
        range: { min: 0, max: 2 },
        ...(onSelfTestSet !== undefined && { onSet: onSelfTestSet }),
      },
    ],
  });
}

/** Puts back the values the agent started with (between tests that SET them). */
export function resetUpsAgent(agent: SnmpAgent): void {
  for (const [name, value] of Object.entries(INITIAL)) agent.set(name, value);
}
