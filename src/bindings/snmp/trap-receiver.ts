// The hub's SNMP notification receiver: one UDP socket on a configured port, taking SNMPv2c traps
// and informs (RFC 3416 §4.2.6, §4.2.7) and handing each to the subscriptions it matches.
import { createSocket } from "node:dgram";
import type { Socket, SocketType } from "node:dgram";
import { isIP } from "node:net";
import { PduType, createReceiver } from "net-snmp";
import type { Varbind } from "net-snmp";

/** RFC 3416 §4.2.6: the first two varbinds of a notification. */
const SYS_UP_TIME = "1.3.6.1.2.1.1.3.0";
const SNMP_TRAP_OID = "1.3.6.1.6.3.1.1.4.1.0";

/** One notification as received. */
export interface Notification {
  /** The sender's address (IPv4-mapped IPv6 addresses as IPv4). */
  readonly address: string;
  readonly community: string | undefined;
  /** `snmpTrapOID.0`: which notification it is. */
  readonly trapOid: string | undefined;
  /** The varbinds after `sysUpTime.0` and `snmpTrapOID.0`. */
  readonly varbinds: readonly Varbind[];
}

/** What a subscription takes: notifications of this OID from this address with this community. */
export interface NotificationFilter {
  readonly address: string;
  readonly community: string;
  readonly trapOid: string;
}

interface Receiver {
  close(callback?: () => void): void;
}

export class SnmpTrapReceiver {
  readonly #listeners = new Set<{ filter: NotificationFilter; listener: (n: Notification) => void }>();
  #receiver: Receiver | undefined;
  #socket: Socket | undefined;

  private constructor() {}

  /** Binds `port` (0: one the system picks) on `host`; rejects when it cannot (a port in use). */
  static async start(options: { port: number; host?: string }): Promise<SnmpTrapReceiver> {
    const host = options.host ?? "0.0.0.0";
    const receiver = new SnmpTrapReceiver();
    const sockets: Socket[] = [];
    // net-snmp takes port 0 for "162": its socket module is given one that binds the port asked.
    const dgramModule = {
      createSocket: (type: SocketType) => {
        const socket = createSocket(type);
        const bind = socket.bind.bind(socket);
        (socket as { bind: unknown }).bind = (_port: number, address: string) => bind(options.port, address);
        sockets.push(socket);
        return socket;
      },
    };
    receiver.#receiver = createReceiver(
      {
        port: options.port,
        address: host,
        transport: isIP(host) === 6 ? "udp6" : "udp4",
        // Each subscription checks the community its Thing has: any is let through to that check.
        disableAuthorization: true,
        includeAuthentication: true,
        dgramModule,
      },
      (error: Error | null, notification?: { pdu: RawPdu; rinfo: { address: string } }) => {
        // A datagram that is no SNMP message, or not a notification: nothing to hand on.
        if (error !== null || notification === undefined) return;
        receiver.#dispatch(notification.pdu, notification.rinfo.address);
      },
    ) as Receiver;
    const socket = sockets[0];
    try {
      if (socket === undefined) throw new Error("the SNMP trap receiver made no socket");
      await new Promise<void>((resolve, reject) => {
        socket.once("listening", () => resolve());
        socket.once("error", reject);
      });
    } catch (error) {
      await receiver.close();
      throw error;
    }
    receiver.#socket = sockets[0];
    return receiver;
  }

  /** The port it listens on. */
  get port(): number {
    return this.#socket?.address().port ?? 0;
  }

  /** Calls `listener` with each notification that matches; returns the function that stops it. */
  subscribe(filter: NotificationFilter, listener: (notification: Notification) => void): () => void {
    const entry = { filter, listener };
    this.#listeners.add(entry);
    return () => this.#listeners.delete(entry);
  }

  #dispatch(pdu: RawPdu, from: string): void {
    if (pdu.type !== PduType.TrapV2 && pdu.type !== PduType.InformRequest) return;
    const address = from.startsWith("::ffff:") && isIP(from.slice(7)) === 4 ? from.slice(7) : from;
    const varbinds = pdu.varbinds ?? [];
    const trapOid = varbinds.find((v) => v.oid === SNMP_TRAP_OID)?.value;
    const notification: Notification = {
      address,
      community: pdu.community,
      trapOid: typeof trapOid === "string" ? trapOid : undefined,
      varbinds: varbinds.filter((v) => v.oid !== SYS_UP_TIME && v.oid !== SNMP_TRAP_OID),
    };
    for (const { filter, listener } of this.#listeners) {
      if (
        filter.address === notification.address &&
        filter.community === notification.community &&
        filter.trapOid === notification.trapOid
      ) {
        listener(notification);
      }
    }
  }

  close(): Promise<void> {
    this.#listeners.clear();
    return new Promise((resolve) => {
      try {
        this.#receiver?.close(() => resolve());
      } catch {
        resolve();
      }
    });
  }
}

interface RawPdu {
  readonly type: number;
  readonly community?: string;
  readonly varbinds?: Varbind[];
}
