// A real SNMP agent (net-snmp's, SNMPv1, v2c and v3 over UDP) on a port the system picks, serving
// scalars that a simulated Thing keeps current: what the SNMP Things of the fleet and the tests
// of the SNMP binding talk to.
import { createSocket } from "node:dgram";
import type { RemoteInfo, Socket, SocketType } from "node:dgram";
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
  /**
   * Answer a request whose digest or encryption does not check out with a usmStatsWrongDigests or
   * usmStatsDecryptionErrors report, as snmpd does (RFC 3414 §3.2 steps 6 and 8), instead of
   * dropping it as net-snmp's agent does; default true.
   */
  readonly reportSecurityFailures?: boolean;
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
  readonly engine: { readonly engineID: Buffer; readonly engineBoots: number; readonly engineTime: number };
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
    // The datagram being handled: net-snmp's agent tells of a failed check while handling it.
    let handling: { buffer: Buffer; from: RemoteInfo; socket: Socket } | undefined;
    const dgramModule = {
      createSocket: (type: SocketType) => {
        const socket = createSocket(type);
        const bind = socket.bind.bind(socket);
        (socket as { bind: unknown }).bind = (_port: number, address: string) => bind(0, address);
        const on = socket.on.bind(socket);
        (socket as { on: unknown }).on = (event: string, listener: (...args: unknown[]) => void) =>
          on(event, (...args: unknown[]) => {
            if (event !== "message") return listener(...args);
            handling = { buffer: args[0] as Buffer, from: args[1] as RemoteInfo, socket };
            try {
              listener(...args);
            } finally {
              handling = undefined;
            }
          });
        sockets.push(socket);
        return socket;
      },
    };
    const reports = options.reportSecurityFailures ?? true;
    // The agent's engine, once it exists (its ID and time go into a report).
    const made: { agent?: Agent } = {};
    const agent = createAgent(
      { port: 0, address: host, transport: host.includes(":") ? "udp6" : "udp4", dgramModule },
      (error: unknown) => {
        if (!reports || error === null || handling === undefined || made.agent === undefined) return;
        const counter = securityFailureOf(error);
        if (counter === undefined) return;
        const report = usmReport(handling.buffer, made.agent.engine, counter);
        if (report !== undefined) handling.socket.send(report, handling.from.port, handling.from.address);
      },
    ) as Agent;
    made.agent = agent;
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

// RFC 3414 §5: usmStats counters, under 1.3.6.1.6.3.15.1.1.
const WRONG_DIGESTS = 5;
const DECRYPTION_ERRORS = 6;

/** The usmStats counter a failed check of net-snmp's agent stands for. */
function securityFailureOf(error: unknown): number | undefined {
  if (!(error instanceof Error) || error.name !== "ResponseInvalidError") return undefined;
  const code = (error as { code?: unknown }).code;
  if (code === 5) return WRONG_DIGESTS; // EAuthFailure: "Authentication digest … does not match"
  if (code === 4) return DECRYPTION_ERRORS; // ECouldNotDecrypt
  return undefined;
}

/**
 * An unauthenticated Report-PDU (RFC 3412 §7.1 step 3) naming the counter, for the SNMPv3 request
 * in `request` when its reportable flag is set: the manager matches it by msgID. BER by hand,
 * as net-snmp does not export its message encoder.
 */
function usmReport(request: Buffer, engine: Agent["engine"], counter: number): Buffer | undefined {
  // SEQUENCE { version, msgGlobalData SEQUENCE { msgID, msgMaxSize, msgFlags, msgSecurityModel } … }
  const message = readTlv(request, 0);
  const version = message === undefined ? undefined : readTlv(request, message.body);
  if (version === undefined || request[version.body] !== 3) return undefined;
  const global = readTlv(request, version.end);
  const msgId = global === undefined ? undefined : readTlv(request, global.body);
  if (msgId === undefined) return undefined;
  const maxSize = readTlv(request, msgId.end);
  const flags = maxSize === undefined ? undefined : readTlv(request, maxSize.end);
  if (flags === undefined) return undefined;
  const reportable = ((request[flags.body] ?? 0) & 0x04) !== 0;
  if (!reportable) return undefined;
  const int = (n: number) => {
    const bytes = intBytes(n);
    return tlv(0x02, Buffer.from((bytes[0] ?? 0x80) & 0x80 ? [0, ...bytes] : bytes));
  };
  const octets = (bytes: Buffer | string) => tlv(0x04, Buffer.from(bytes));
  const oid = Buffer.from([43, 6, 1, 6, 3, 15, 1, 1, counter, 0]);
  const varbind = tlv(0x30, Buffer.concat([tlv(0x06, oid), tlv(0x41, Buffer.of(1))]));
  const pdu = tlv(0xa8, Buffer.concat([int(0), int(0), int(0), tlv(0x30, varbind)]));
  const security = tlv(
    0x30,
    Buffer.concat([
      octets(engine.engineID),
      int(engine.engineBoots),
      int(engine.engineTime),
      octets(""),
      octets(""),
      octets(""),
    ]),
  );
  return tlv(
    0x30,
    Buffer.concat([
      int(3),
      tlv(
        0x30,
        Buffer.concat([request.subarray(msgId.start, msgId.end), int(65507), octets(Buffer.of(0)), int(3)]),
      ),
      octets(security),
      tlv(0x30, Buffer.concat([octets(engine.engineID), octets(""), pdu])),
    ]),
  );
}

/** One BER tag-length-value at `start`: where its contents begin and where it ends. */
function readTlv(buffer: Buffer, start: number): { start: number; body: number; end: number } | undefined {
  const first = buffer[start + 1];
  if (first === undefined) return undefined;
  let length = first;
  let body = start + 2;
  if (first & 0x80) {
    const count = first & 0x7f;
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + (buffer[body + i] ?? 0);
    body += count;
  }
  return body + length <= buffer.length ? { start, body, end: body + length } : undefined;
}

function tlv(tag: number, body: Buffer): Buffer {
  const length =
    body.length < 128
      ? Buffer.of(body.length)
      : Buffer.from([0x80 | 2, body.length >> 8, body.length & 0xff]);
  return Buffer.concat([Buffer.of(tag), length, body]);
}

function intBytes(n: number): number[] {
  const bytes: number[] = [];
  for (let v = n; v > 0; v = Math.floor(v / 256)) bytes.unshift(v % 256);
  return bytes;
}
