// The hub's MQTT face as this process runs it, and as `GET /health` tells it. Replicas of one hub
// on one external broker run the gateway one at a time, the one holding the store's `mqtt-gateway`
// role (docs/replicas.md): each replica's gateway would otherwise take every device message and
// republish every Change once per replica, under one client id that they would take from each other.
import type { Hub } from "../../hub/index.js";
import type { HeldRole } from "../../store/index.js";
import { parseBrokerUrl } from "./external-broker.js";
import { startMqtt, type RunningMqtt } from "./mqtt-service.js";

/** The store's role whose holder runs the gateway on an external broker. */
export const GATEWAY_ROLE = "mqtt-gateway";
/** How often a replica that does not run the gateway tries to take it over. */
export const GATEWAY_ELECTION_MS = 2_000;

/** What `GET /health` says of MQTT on this process. */
export interface MqttStatus {
  /** `running` here, or `standby`: another replica runs it, and this one takes over when it stops. */
  readonly gateway: "running" | "standby";
  readonly kind: "embedded" | "external";
  /** Where devices connect, without credentials. */
  readonly broker: string;
  /** Why this replica does not run it. */
  readonly reason?: string;
}

export interface MqttFace {
  /** The gateway and its broker while this process runs them. */
  readonly running: RunningMqtt | undefined;
  status(): MqttStatus;
  close(): Promise<void>;
}

/**
 * Starts MQTT as the hub's configuration says (undefined when it is off); a replica on an external
 * broker runs the gateway only while it holds the store's role, and tries to take it otherwise.
 */
export async function startMqttFace(hub: Hub): Promise<MqttFace | undefined> {
  const { config } = hub;
  const holdRole = hub.store.holdRole?.bind(hub.store);
  if (config.replica && config.mqtt === "external" && config.mqttUrl !== undefined && holdRole) {
    const url = parseBrokerUrl(config.mqttUrl);
    const elected = new ElectedGateway(hub, `${url.protocol}//${url.host}`, holdRole);
    await elected.start();
    return elected;
  }
  const running = await startMqtt(hub);
  return (
    running && {
      running,
      status: () => ({ gateway: "running", kind: running.kind, broker: running.url }),
      close: () => running.close(),
    }
  );
}

class ElectedGateway implements MqttFace {
  running: RunningMqtt | undefined;
  private role: HeldRole | undefined;
  private reason = "not elected yet";
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(
    private readonly hub: Hub,
    private readonly broker: string,
    private readonly holdRole: (role: string) => Promise<HeldRole | undefined>,
  ) {}

  /** The first election: a gateway that cannot start here stops the hub's start, as alone. */
  async start(): Promise<void> {
    await this.elect(true);
  }

  status(): MqttStatus {
    return this.running
      ? { gateway: "running", kind: "external", broker: this.broker }
      : { gateway: "standby", kind: "external", broker: this.broker, reason: this.reason };
  }

  private async elect(first = false): Promise<void> {
    if (this.closed) return;
    let role: HeldRole | undefined;
    try {
      role = await this.holdRole(GATEWAY_ROLE);
    } catch (error) {
      this.reason = `the store could not say whether another replica runs the gateway (${(error as Error).message})`;
      this.later();
      return;
    }
    if (role === undefined) {
      this.reason =
        "another replica of this hub runs the MQTT gateway on this broker (it holds the store's mqtt-gateway lock): " +
        "this one takes over when it stops";
      this.later();
      return;
    }
    if (this.closed) return role.release();
    try {
      this.running = await startMqtt(this.hub);
    } catch (error) {
      role.release();
      if (first) throw error;
      this.reason = `the gateway did not start here (${(error as Error).message})`;
      this.hub.logger.error({ err: error }, "the MQTT gateway did not start on this replica");
      this.later();
      return;
    }
    this.role = role;
    // Closed while it started: nothing else will close it.
    if (this.closed) return this.close();
    this.hub.logger.info({ broker: this.broker }, "this replica runs the MQTT gateway");
    void role.lost.then(async (why) => {
      const running = this.running;
      this.running = undefined;
      this.role = undefined;
      if (this.closed) return;
      this.reason = `this replica stopped running the gateway: ${why}`;
      this.hub.logger.warn(this.reason);
      await running?.close();
      this.later();
    });
  }

  private later(): void {
    if (this.closed) return;
    this.timer = setTimeout(() => void this.elect(), GATEWAY_ELECTION_MS);
    this.timer.unref();
  }

  async close(): Promise<void> {
    this.closed = true;
    clearTimeout(this.timer);
    await this.running?.close();
    this.role?.release();
  }
}
