// The hub's MQTT face as this process runs it, and as `GET /health` tells it. Replicas of one hub
// on one external broker run the gateway one at a time, the one holding the store's `mqtt-gateway`
// role (docs/replicas.md): each replica's gateway would otherwise take every device message and
// republish every Change once per replica, under one client id that they would take from each other.
import { ElectedRole, type Hub } from "../../hub/index.js";
import { parseBrokerUrl } from "./external-broker.js";
import { startMqtt, type RunningMqtt } from "./mqtt-service.js";

/** The store's role whose holder runs the gateway on an external broker. */
export const GATEWAY_ROLE = "mqtt-gateway";

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
    const broker = `${url.protocol}//${url.host}`;
    const elected = new ElectedRole<RunningMqtt>(
      {
        role: GATEWAY_ROLE,
        what: "the MQTT gateway",
        standby:
          "another replica of this hub runs the MQTT gateway on this broker (it holds the store's mqtt-gateway lock): " +
          "this one takes over when it stops",
        // Only the elected replica may hold the hub's session: one dropped by the broker (maybe
        // because the next elected replica connected, while this one had not yet learnt that it
        // lost the role) reconnects only once the store confirms it still holds the role.
        start: async (confirm) => {
          const running = await startMqtt(hub, { mayReconnect: confirm });
          if (running === undefined) throw new Error("MQTT is off");
          return running;
        },
        stop: (running) => running.close(),
      },
      { holdRole, onRoleGivenUp: hub.store.onRoleGivenUp?.bind(hub.store) },
      hub.logger.child({ broker }),
      config.electionMs,
    );
    await elected.start();
    return {
      get running() {
        return elected.running;
      },
      status: () => {
        const { state, reason } = elected.status();
        return state === "running"
          ? { gateway: "running", kind: "external", broker }
          : { gateway: "standby", kind: "external", broker, ...(reason !== undefined && { reason }) };
      },
      close: () => elected.close(),
    };
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
