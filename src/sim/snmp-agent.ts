// A real SNMP agent (net-snmp's, SNMPv1, v2c and v3 over UDP) on a port the system picks, serving
// scalars that a simulated Thing keeps current: what the SNMP Things of the fleet and the tests
// of the SNMP binding talk to.
import { createSocket } from "node:dgram";
import type { Socket, SocketType } from "node:dgram";
import { MaxAccess, MibProviderType, ObjectType, createAgent } from "net-snmp";
import type { User } from "net-snmp";

/** One scalar object: its OID without the `.0` instance, its type, and whether a SET may change it. */
export interface SnmpScalar {
  readonly name: string;
  readonly oid: string;
  readonly type: ObjectType;
  readonly writable?: boolean;
  readonly value: number | string;
  /** Integer range a SET must stay in (the agent answers wrongValue/badValue otherwise). */
  readonly range?: { readonly min: number; readonly max: number };
  /** Told of each value a SET committed. */
  readonly onSet?: (value: unknown) => void;
}

export interface SnmpAgentOptions {
  /** The communities the agent answers; a request with another is dropped unanswered. */
  readonly communities: readonly string[];
  /**
   * SNMPv3 USM users (net-snmp's: name, level, protocols, passphrases as `authKey`/`privKey`).
   * net-snmp's agent answers an unknown user, and a level below the user's, with a report, and
   * drops a request whose digest or encryption does not check out.
   */
  readonly users?: readonly User[];
  readonly scalars: readonly SnmpScalar[];
  /** Default 127.0.0.1. */
  readonly host?: string;
}

interface MibInstanceNode {
  value: unknown;
}
interface MibRequestLike {
  readonly operation: number;
  readonly instanceNode: MibInstanceNode;
  readonly setValue?: unknown;
  readonly commitSet?: boolean;
  done(error?: { errorStatus: number }): void;
}
interface Mib {
  registerProvider(provider: object): void;
  setScalarValue(name: string, value: unknown): void;
  getScalarValue(name: string): unknown;
}
interface Agent {
  getMib(): Mib;
  getAuthorizer(): { addCommunity(community: string): void; addUser(user: User): void };
  close(callback?: () => void): void;
  listener: { sockets: Record<string, Socket> };
}

/** RFC 3416 §3: a SetRequest-PDU's tag. */
const SET_REQUEST = 163;

export class SnmpAgent {
  readonly #agent: Agent;

  private constructor(
    readonly host: string,
    readonly port: number,
    agent: Agent,
  ) {
    this.#agent = agent;
  }

  /** Starts the agent and waits until its socket is bound. */
  static async start(options: SnmpAgentOptions): Promise<SnmpAgent> {
    const host = options.host ?? "127.0.0.1";
    // net-snmp takes port 0 for "161": its socket module is given one that binds to port 0.
    const sockets: Socket[] = [];
    const dgramModule = {
      createSocket: (type: SocketType) => {
        const socket = createSocket(type);
        const bind = socket.bind.bind(socket);
        (socket as { bind: unknown }).bind = (_port: number, address: string) => bind(0, address);
        sockets.push(socket);
        return socket;
      },
    };
    const agent = createAgent(
      { port: 0, address: host, transport: host.includes(":") ? "udp6" : "udp4", dgramModule },
      () => undefined,
    ) as Agent;
    const socket = sockets[0];
    if (socket === undefined) throw new Error("the SNMP agent made no socket");
    await new Promise<void>((resolve, reject) => {
      socket.once("listening", resolve);
      socket.once("error", reject);
    });
    for (const community of options.communities) agent.getAuthorizer().addCommunity(community);
    for (const user of options.users ?? []) agent.getAuthorizer().addUser({ ...user });
    const mib = agent.getMib();
    for (const scalar of options.scalars) {
      const onSet = scalar.onSet;
      mib.registerProvider({
        name: scalar.name,
        type: MibProviderType.Scalar,
        oid: scalar.oid,
        scalarType: scalar.type,
        maxAccess: MaxAccess[scalar.writable === true ? "read-write" : "read-only"],
        ...(scalar.range === undefined ? {} : { constraints: { ranges: [scalar.range] } }),
        handler: (request: MibRequestLike) => {
          // A SET runs the handler twice: to test it, then to commit it (RFC 3416 §4.2.5).
          if (request.operation === SET_REQUEST && request.commitSet === true && onSet !== undefined)
            onSet(request.setValue);
          request.done();
        },
      });
      mib.setScalarValue(scalar.name, scalar.value);
    }
    return new SnmpAgent(host, socket.address().port, agent);
  }

  /** `snmp://host:port` of the agent. */
  get origin(): string {
    return `snmp://${this.host.includes(":") ? `[${this.host}]` : this.host}:${this.port}`;
  }

  /** The current value of a scalar, as the agent serves it. */
  get(name: string): unknown {
    const value = this.#agent.getMib().getScalarValue(name);
    return Buffer.isBuffer(value) ? value.toString("utf8") : value;
  }

  /** Changes a scalar, as the device would (a battery discharging). */
  set(name: string, value: number | string): void {
    this.#agent.getMib().setScalarValue(name, value);
  }

  close(): Promise<void> {
    return new Promise((resolve) => {
      try {
        this.#agent.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}

export { ObjectType as SnmpType };
