// Starts the hub's MQTT face from its configuration: the embedded broker (or a link to an
// external one), the gateway on the documented topics, and auto-inventory of Homie and Home
// Assistant devices.
import { createHash } from "node:crypto";
import { readFileSync, renameSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { NotFoundError } from "../../core/index.js";
import { originOf } from "../../bindings/index.js";
import type { Hub } from "../../hub/index.js";
import { AutoInventory } from "./auto-inventory.js";
import type { BrokerLink } from "./broker-link.js";
import { EMBEDDED_BROKER_LIMITS, EmbeddedBroker } from "./embedded-broker.js";
import { ExternalBroker } from "./external-broker.js";
import { MqttGateway } from "./gateway.js";
import { TopicLayout } from "./topic-layout.js";

/** In the data directory: the port the embedded broker fell back to, tried first at the next start. */
export const MQTT_PORT_FILE = "mqtt-port";

export interface RunningMqtt {
  readonly kind: "embedded" | "external";
  /** Where devices connect, without credentials: `mqtt://127.0.0.1:1883`. */
  readonly url: string;
  /**
   * What the hub did instead of what it was asked, in one line for the operator; else undefined.
   * Not logged here: whoever starts the hub says it once (`things serve` in its banner, under MQTT).
   */
  readonly notice: string | undefined;
  /** Whether the embedded broker lets clients in without a password. */
  readonly anonymous: boolean;
  readonly gateway: MqttGateway;
  close(): Promise<void>;
}

export interface StartMqttOptions {
  /**
   * On an external broker: asked before each reconnection, which happens only once it resolves
   * true (replicas: whether this one still holds the gateway's role). Without it, the gateway
   * reconnects by itself.
   */
  readonly mayReconnect?: () => Promise<boolean>;
}

/** Starts MQTT as the hub's configuration says; undefined when it is off. */
export async function startMqtt(hub: Hub, options: StartMqttOptions = {}): Promise<RunningMqtt | undefined> {
  const { config, logger } = hub;
  if (config.mqtt === "off") return undefined;
  const layout = new TopicLayout(config.mqttPrefix);
  const log = logger.child({ part: "mqtt" });
  let link: BrokerLink & { notice: string | undefined };
  if (config.mqtt === "external" && config.mqttUrl !== undefined) {
    // One stable client id per hub and prefix, so that two hubs on one broker do not evict each
    // other, and the replicas of one hub share one session (docs/replicas.md).
    const digest = createHash("sha256").update(`${hub.id}\n${config.mqttPrefix}`).digest("hex").slice(0, 12);
    link = await ExternalBroker.start({
      url: config.mqttUrl,
      clientId: `hyperthings-${digest}`,
      logger: log,
      ...(options.mayReconnect && { mayReconnect: options.mayReconnect }),
    });
  } else {
    const portFile = join(config.dataDir, MQTT_PORT_FILE);
    const lastFallbackPort = config.mqttPortFallback ? readPort(portFile) : undefined;
    const broker = await EmbeddedBroker.start({
      host: config.host,
      port: config.mqttPort,
      portFallback: config.mqttPortFallback,
      ...(lastFallbackPort === undefined ? {} : { lastFallbackPort }),
      anonymous: config.mqttAnonymous,
      authenticate: (token) => hub.authenticate(token),
      adminToken: hub.adminToken.token,
      credentials: hub.mqttCredentials,
      thingExists: async (id) => {
        try {
          await hub.directory.getLive(id);
          return true;
        } catch (error) {
          if (error instanceof NotFoundError) return false;
          throw error;
        }
      },
      layout,
      roots: {
        prefix: config.mqttPrefix,
        homieRoot: config.mqttHomieRoot,
        homeAssistantPrefix: config.mqttHomeAssistantPrefix,
      },
      maxPacketBytes: config.mqttMaxPayload,
      maxRetainedPerClient: {
        topics: config.mqttRetainedPerClient,
        bytes: config.mqttRetainedBytesPerClient,
      },
      maxSubscriptionsPerClient: {
        filters: config.mqttSubscriptionsPerClient,
        // A thousand filters of 256 bytes each; more filters than the default are given room too.
        bytes: Math.max(EMBEDDED_BROKER_LIMITS.subscriptions.bytes, config.mqttSubscriptionsPerClient * 256),
      },
      logger: log,
    });
    const fallback = broker.fallbackPort;
    if (fallback !== undefined && fallback !== lastFallbackPort) {
      try {
        // Whole or not at all: written beside it, then renamed into place.
        writeFileSync(`${portFile}.tmp`, `${fallback}\n`);
        renameSync(`${portFile}.tmp`, portFile);
      } catch (err) {
        log.warn({ err, file: portFile }, `the MQTT port ${fallback} was not remembered for the next start`);
      }
    }
    link = broker;
  }
  const gateway = new MqttGateway(hub, link, { layout, maxPayloadBytes: config.mqttMaxPayload, logger: log });
  // On the embedded broker, discovered devices' TDs say `basic`: the hub's own bindings get the
  // admin token as their password, so that they can observe and write those devices. It is set
  // again when a device announces itself after the token rotated (the old one opens nothing).
  const secrets = hub.secrets;
  const needsPassword = link.kind === "embedded" && !config.mqttAnonymous;
  const inventory = new AutoInventory(hub, link, {
    ...(needsPassword && secrets !== undefined
      ? {
          onRegistered: async (td) => {
            const password = hub.adminToken.token;
            const broker = originOf(link.url);
            const held = Object.values(await secrets.secretsOf(td));
            // Setting it restarts the Thing's observation: only when it is not the one held, for
            // this broker (a secret goes only where it was set for: a new port needs it set again).
            if (held.some((secret) => secret.password === password && secret.origins?.includes(broker ?? "")))
              return;
            await secrets.set(td, { username: "hyperthings", password });
          },
        }
      : {}),
    maxPayloadBytes: config.mqttMaxPayload,
    homieRoot: config.mqttHomieRoot,
    homeAssistantPrefix: config.mqttHomeAssistantPrefix,
    layout,
    logger: log,
    device: {
      broker: link.url,
      ...(needsPassword
        ? {
            security: {
              scheme: "basic",
              description: "the hub's embedded broker: any user name, the hub's admin token as password",
            },
          }
        : {}),
    },
  });
  try {
    await gateway.start();
    await inventory.start();
    link.open?.();
  } catch (error) {
    gateway.stop();
    await link.close();
    throw error;
  }
  log.info({ url: link.url, kind: link.kind, prefix: config.mqttPrefix }, "MQTT gateway started");
  let closing: Promise<void> | undefined;
  return {
    kind: link.kind,
    url: link.url,
    notice: link.notice,
    anonymous: link.kind === "embedded" && config.mqttAnonymous,
    gateway,
    close: () => {
      closing ??= (async () => {
        gateway.stop();
        await link.close();
      })();
      return closing;
    },
  };
}

/** The port in `path`, or undefined when there is none (or it is no port). */
function readPort(path: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(path, "utf8");
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
    throw err;
  }
  const port = Number(text.trim());
  return Number.isInteger(port) && port > 0 && port <= 65535 ? port : undefined;
}
