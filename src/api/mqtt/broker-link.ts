// How the gateway sits on a broker: the embedded one (in-process hooks) or an external one (an
// MQTT client). Either way, a message a handler takes is acknowledged only once the handler's
// promise settles, so a report is acked after its Change is committed.
import type { Announcer } from "./device-credentials.js";

/** Who published a message, when the hub's own broker authenticated them. */
export type MqttPrincipal =
  | { readonly kind: "admin"; readonly name: string }
  | { readonly kind: "reader"; readonly name: string }
  | { readonly kind: "device"; readonly name: string; readonly thing: string }
  | {
      /** A Homie or Home Assistant device with announcer credentials (device-credentials.ts). */
      readonly kind: "announcer";
      readonly name: string;
      readonly announcer: Announcer;
      /** The filters it may publish to, and subscribe within. */
      readonly topics: { readonly publish: readonly string[]; readonly subscribe: readonly string[] };
    }
  | { readonly kind: "anonymous"; readonly name: string };

export interface InboundMessage {
  readonly topic: string;
  readonly payload: Buffer;
  readonly retain: boolean;
  /** The publisher, on the embedded broker; undefined through an external broker. */
  readonly publisher?: MqttPrincipal;
  /** MQTT 5 Correlation Data the publisher sent, through an external broker. */
  readonly correlationData?: Buffer;
}

/** What a message carries besides its payload. */
export interface PublishOptions {
  readonly qos: 0 | 1;
  readonly retain?: boolean;
  /**
   * MQTT 5 Correlation Data and Response Topic (§3.3.2.3.5-6), so that an MQTT 5 device can say
   * which message it answers; left out where the link speaks MQTT 3.1.1 (the embedded broker).
   */
  readonly correlation?: { readonly data: Buffer; readonly responseTopic: string };
}

/**
 * Takes one message. QoS 1 and 2 messages are acknowledged after the promise resolves; when it
 * rejects (the hub could not take it), the embedded broker closes the publisher's connection
 * unacknowledged (the device sends again), and the external link keeps it unacknowledged and
 * hands it over again later, until it is taken (or the connection drops: the broker resends).
 */
export type InboundHandler = (message: InboundMessage) => Promise<void>;

export interface HandleOptions {
  /** Whether the retained messages a broker holds are sent on subscribing (default true). */
  readonly retained?: boolean;
}

export interface BrokerLink {
  /** `mqtt://host:port`: where devices connect. */
  readonly url: string;
  readonly kind: "embedded" | "external";
  /**
   * Sends matching messages to `handler` (in arrival order per publisher); resolves once subscribed.
   * With `retained: false`, the messages a broker keeps retained are not sent when the hub
   * (re)subscribes (MQTT 5 Retain Handling 2): only those published while it listens.
   */
  handle(filters: readonly string[], handler: InboundHandler, options?: HandleOptions): Promise<void>;
  /**
   * Every handler is in place (called once, after the `handle` calls): messages that came before,
   * such as those a broker kept for the hub's session while it was away, are delivered now.
   */
  open?(): void;
  /**
   * Publishes without waiting; false when the message was dropped because the link's outgoing
   * queue is full or it is offline (QoS 0 messages are not kept for later).
   */
  publish(topic: string, payload: Buffer, options: PublishOptions): boolean;
  /**
   * Whether a message on `topic` would reach a subscriber, where the link can know (the embedded
   * broker); absent on an external broker, whose subscribers the hub cannot see.
   */
  wants?(topic: string): boolean;
  /** Closes the connections of a Thing's device (the Thing was removed), where the link has them. */
  disconnectDevice?(thing: string): void;
  /** Whether any client subscribed to anything (where the link can know): cheaper than `wants`. */
  wantsAny?(): boolean;
  close(): Promise<void>;
}

/**
 * The longest topic the links and the gateway remember (parsed, matched to handlers): devices
 * repeat short topics, and a topic may be 64 KiB (10,000 remembered ones held 650 MB); a longer
 * one is worked out again each time it comes.
 */
export const MAX_REMEMBERED_TOPIC_LENGTH = 1_024;

/** MQTT 3.1.1 §4.7 topic filter matching (`+` one level, `#` the rest; `$` topics only literally). */
export function topicMatches(filter: string, topic: string): boolean {
  if (topic.startsWith("$") && (filter.startsWith("+") || filter.startsWith("#"))) return false;
  const f = filter.split("/");
  const t = topic.split("/");
  for (let i = 0; i < f.length; i++) {
    const level = f[i];
    if (level === "#") return true;
    if (i >= t.length) return false;
    if (level !== "+" && level !== t[i]) return false;
  }
  return f.length === t.length;
}
