// The hub: wires a Store, a Bus and the services built on them, and runs their lifecycle.
import { join } from "node:path";
import type { Logger } from "pino";
import type { Bus } from "../bus/index.js";
import type { Store } from "../store/index.js";
import {
  ADMIN_TOKEN_FILE,
  loadOrCreateAdminToken,
  tokenDigest,
  tokenMatches,
  type AdminToken,
} from "./admin-token.js";
import { exposedMode } from "./data-files.js";
import { loadOrCreateHubId } from "./hub-identity.js";
import { followChanges, type FollowOptions, type Follower } from "./change-stream.js";
import type { HubConfig } from "./config.js";
import { Directory } from "./directory.js";
import type { Change, Cause, RegisteredThingDescription, Vocabulary } from "../core/index.js";
import { createHubClock, type HubClock } from "./hub-clock.js";
import { Ingest, type IngestOptions, type Report } from "./ingest.js";
import { History } from "./history.js";
import { Causes } from "./why.js";
import { LOG_KEY_FILE, Notary, requireSigningFiles } from "./notary.js";
import type { BindingSet } from "../bindings/index.js";
import { Commands } from "./commands.js";
import { Observation } from "./observation.js";
import { ElectedRole, type ElectedWork, type RoleStatus } from "./elected-role.js";
import { ExpirySweep } from "./expiry-sweep.js";
import type { SecretStore } from "./secret-store.js";
import { MqttCredentials, type MqttCredentialStore } from "./mqtt-credentials.js";
import { SECRET_KEY_FILE, ThingSecrets, loadOrCreateSecretKey } from "./thing-secrets.js";
import { Rollouts } from "./rollouts.js";
import { Drift } from "./drift.js";
import { Releases } from "./releases.js";
import { Graph } from "./graph.js";
import { loadVocabulary } from "./graph-vocabulary.js";

/** Who is making a request, once their token has been checked. */
export interface Principal {
  name: string;
  admin: boolean;
}

/** The store's role whose holder observes the Things, among a hub's replicas. */
export const OBSERVATION_ROLE = "observation";
/** The store's role whose holder sweeps expired TDs, among a hub's replicas. */
export const EXPIRY_SWEEP_ROLE = "expiry-sweep";
/** The store's role whose holder runs the rollouts, among a hub's replicas. */
export const ROLLOUTS_ROLE = "rollouts";
/** The store's role whose holder judges drift (and reverts it), among a hub's replicas. */
export const DRIFT_ROLE = "drift";

export interface HubOptions {
  logger: Logger;
  /** The backends, chosen by whoever starts the hub (the hub never knows which one runs). */
  store: Store;
  bus: Bus;
  clock?: () => Date;
  /** The bindings to talk to Things with (the hub closes them); without, it neither observes nor commands. */
  bindings?: BindingSet;
  /** Where the credentials for Things are kept, sealed; without, none can be set. */
  secrets?: SecretStore;
  /** Where the records of the embedded MQTT broker's credentials are kept (the hub closes it). */
  mqttCredentials: MqttCredentialStore;
  /** The type vocabulary, read already; by default `open` reads `config.vocabulary` first. */
  vocabulary?: Vocabulary;
  /**
   * Whoever opens the hub starts `observation` itself, later: `things demo` first points the
   * fleet's TDs of an earlier run at their new addresses, so that the old ones are never observed.
   */
  observeLater?: boolean;
}

/** Following an asynchronous action: ask its status this often, for at most this long. */
const ACTION_POLL_MS = 1000;
/** How often a replica reads the MQTT credentials again for those another replica revoked (docs/replicas.md). */
const MQTT_CREDENTIALS_REFRESH_MS = 1_000;
const ACTION_TIMEOUT_MS = 5 * 60_000;

export class Hub {
  readonly directory: Directory;
  readonly history: History;
  /** Why a Change happened: the chain of its causes in the Log (`things why`). */
  readonly causes: Causes;
  readonly notary: Notary;
  /** Releases: immutable desired state, stored and planned (see releases.ts). */
  readonly releases: Releases;
  /** The graph of Things: links as edges, typed queries, link editing (see graph.ts). */
  readonly graph: Graph;
  /** The credentials the hub holds for Things; undefined without a SecretStore. */
  readonly secrets: ThingSecrets | undefined;
  /** The credentials issued for the embedded MQTT broker: listed, revoked, gone with their Thing. */
  readonly mqttCredentials: MqttCredentials;
  /** Reads, writes and invocations through the bindings; undefined without bindings. */
  readonly commands: Commands | undefined;
  /** Releases applied Thing by Thing through the commands; undefined without bindings. */
  readonly rollouts: Rollouts | undefined;
  /** What differs from each Thing's active release, and the releases' drift policies. */
  readonly drift: Drift;
  /** The observation of every Thing; undefined without bindings or with `observe` off. */
  readonly observation: Observation | undefined;
  /** Replicas observe one at a time: the one holding the store's observation role. */
  private observing: ElectedRole<Observation> | undefined;
  private readonly ingestion: Ingest;
  private readonly expirySweep: ExpirySweep;
  /** Replicas sweep one at a time: the one holding the store's expiry-sweep role. */
  private sweeping: ElectedRole<ExpirySweep> | undefined;
  /** Replicas resume the recorded rollouts one at a time: the one holding the store's rollouts role. */
  private resuming: ElectedRole<Rollouts> | undefined;
  /** Replicas judge drift one at a time: the one holding the store's drift role. */
  private judging: ElectedRole<Drift> | undefined;
  private tokenDigests: { admin: Buffer; reader?: Buffer } | undefined;
  private closing: Promise<void> | undefined;

  private constructor(
    /** This hub's stable id (an IRI), kept in the data directory. */
    readonly id: string,
    readonly config: HubConfig,
    readonly store: Store,
    readonly bus: Bus,
    readonly adminToken: AdminToken,
    readonly logger: Logger,
    readonly clock: HubClock,
    vocabulary: Vocabulary,
    private readonly mqttCredentialStore: MqttCredentialStore,
    private readonly bindings?: BindingSet,
    secretStore?: SecretStore,
  ) {
    this.directory = new Directory(store, bus, clock, {
      maxSearchResults: config.maxSearchResults,
      linkScope: vocabulary.scope,
      maxTdBytes: config.bodyLimit,
    });
    this.expirySweep = new ExpirySweep(this.directory, config.expirySweepMs, logger);
    this.ingestion = new Ingest(store, bus, clock);
    this.history = new History(
      store,
      () => clock.now(),
      () => clock.logNow(),
      vocabulary.scope,
    );
    this.causes = new Causes(store);
    this.releases = new Releases({
      hubId: id,
      store,
      bus,
      clock,
      canCommand: bindings !== undefined,
      finder: () => this.graph,
      appliedOf: (release, thing) => this.rollouts?.appliedOf(release, thing) ?? Promise.resolve([]),
    });
    this.graph = new Graph({
      store,
      bus,
      directory: this.directory,
      clock,
      logger: logger.child({ part: "graph" }),
      vocabulary,
    });
    this.notary = new Notary(id, config.dataDir, store, bus, clock, logger, {
      everyChanges: config.checkpointEveryChanges,
      everyMs: config.checkpointEveryMs,
    });
    this.secrets =
      secretStore &&
      new ThingSecrets(secretStore, loadOrCreateSecretKey(config.dataDir), { cache: !config.replica });
    const secrets = this.secrets;
    const secretsOf = (td: RegisteredThingDescription) => secrets?.secretsOf(td) ?? Promise.resolve({});
    const ingest = this.ingest.bind(this);
    // Replicas share the records: each reads them again every second for what another revoked.
    this.mqttCredentials = new MqttCredentials(
      mqttCredentialStore,
      () => clock.now(),
      logger.child({ part: "mqtt" }),
      {
        refreshMs: config.replica ? MQTT_CREDENTIALS_REFRESH_MS : 0,
      },
    );
    // A replica's clock goes on after the other replicas' Changes: seq and hlc keep growing together.
    if (config.replica) bus.subscribe((change) => clock.observe(change.hlc));
    // A removed or expired Thing's MQTT credentials are revoked with it (its device is disconnected).
    bus.subscribe((change) => {
      if (change.kind !== "removed") return;
      this.mqttCredentials
        .thingRemoved(change)
        .catch((err: unknown) =>
          logger.error({ err, thing: change.thing }, "MQTT credentials were not revoked"),
        );
    });
    if (secrets) {
      // A removed Thing's secrets go with it; new ones, or none, restart its observation.
      secrets.onChange = (thing) => this.observation?.sync(thing, true);
      bus.subscribe((change) => {
        if (change.kind !== "removed") return;
        secrets
          .remove(change.thing)
          .catch((err: unknown) => logger.error({ err }, "secrets were not removed"));
      });
    }
    this.commands =
      bindings &&
      new Commands(
        {
          store,
          bindings,
          thing: (id) => this.directory.getLive(id),
          secrets: secretsOf,
          ingest,
          logger,
        },
        { actionPollMs: ACTION_POLL_MS, actionTimeoutMs: ACTION_TIMEOUT_MS },
      );
    this.rollouts =
      this.commands &&
      new Rollouts({
        store,
        commands: this.commands,
        directory: this.directory,
        releases: this.releases,
        ingest,
        clock,
        logger: logger.child({ part: "rollouts" }),
      });
    this.drift = new Drift({
      store,
      follow: (handler, options) => this.follow(handler, options),
      ingest,
      commands: this.commands,
      isApplying: (thing) => this.rollouts?.isApplying(thing) ?? false,
      seen: (change) => this.rollouts?.seen(change),
      inFlight: async () => (await this.rollouts?.thingsInFlight()) ?? new Set<string>(),
      clock,
      logger: logger.child({ part: "drift" }),
    });
    this.observation =
      bindings && config.observe
        ? new Observation(
            {
              store,
              bus,
              bindings,
              secrets: secretsOf,
              ingest,
              logger: logger.child({ part: "observation" }),
            },
            {
              pollIntervalMs: config.pollIntervalMs,
              reconnectMs: config.reconnectMs,
              maxReconnectMs: config.maxReconnectMs,
            },
          )
        : undefined;
  }

  static async open(config: HubConfig, options: HubOptions): Promise<Hub> {
    const { logger, store, bus } = options;
    // Read before anything is made in the data directory: a start refused for a bad vocabulary
    // must not leave an admin token behind that was never shown.
    const vocabulary = options.vocabulary ?? loadVocabulary(config.vocabulary);
    // Nor for a data directory restored without its hub id or signing key (nothing is made anew).
    if ((await store.latestCheckpoint()) !== undefined) requireSigningFiles(config.dataDir);
    const adminToken = loadOrCreateAdminToken(config.dataDir, config.adminToken);
    const id = loadOrCreateHubId(config.dataDir);
    // The clock resumes after the last Change, so seq and hlc keep growing together.
    const last = await store.getChange(await store.lastSeq());
    const clock = createHubClock(id, last?.hlc, options.clock ?? (() => new Date()));
    const hub = new Hub(
      id,
      config,
      store,
      bus,
      adminToken,
      logger,
      clock,
      vocabulary,
      options.mqttCredentials,
      options.bindings,
      options.secrets,
    );
    await hub.mqttCredentials.open(config.dataDir);
    await hub.notary.start();
    // The admin token and the keys give whoever reads them the hub (and its Log's signature):
    // one that other users may read is said at every start, not silently used.
    for (const file of [ADMIN_TOKEN_FILE, LOG_KEY_FILE, SECRET_KEY_FILE]) {
      const path = join(config.dataDir, file);
      const mode = exposedMode(path);
      if (mode !== undefined) {
        logger.warn(
          { file: path, mode: mode.toString(8).padStart(4, "0") },
          `${path} may be read by other users of this machine (mode ${mode.toString(8).padStart(4, "0")}): chmod 600 it`,
        );
      }
    }
    await hub.startExpirySweep();
    if (options.observeLater !== true) await hub.startObservation();
    // The graph's indexes are built in the background; a query before they are ready waits.
    hub.graph.start();
    await hub.startDrift();
    // Rollouts that were running when the hub stopped go on where they stopped.
    await hub.resumeRollouts();
    return hub;
  }

  /** Validates reported state against the Thing's TD and records it (see ingest.ts). */
  ingest(
    thing: string,
    reports: readonly Report[],
    cause: Cause,
    options?: IngestOptions,
  ): Promise<Change[]> {
    return this.ingestion.ingest(thing, reports, cause, options);
  }

  /**
   * Starts observing every Thing (see observation.ts); replicas of one hub observe one at a time,
   * the one holding the store's `observation` role (docs/replicas.md), or every reading would be
   * recorded once per replica.
   */
  async startObservation(): Promise<void> {
    const { observation } = this;
    if (observation === undefined || this.observing !== undefined || this.closing !== undefined) return;
    this.observing = await this.elect({
      role: OBSERVATION_ROLE,
      what: "the observation of the Things",
      standby:
        "another replica of this hub observes the Things (it holds the store's observation lock): " +
        "this one takes over when it stops",
      start: () => {
        observation.start();
        return Promise.resolve(observation);
      },
      stop: (running) => running.stop(),
    });
    if (this.observing === undefined) observation.start();
  }

  /** Replicas of one hub sweep expired TDs one at a time, the one holding the `expiry-sweep` role. */
  private async startExpirySweep(): Promise<void> {
    const { expirySweep } = this;
    this.sweeping = await this.elect({
      role: EXPIRY_SWEEP_ROLE,
      what: "the sweep of expired Thing Descriptions",
      standby:
        "another replica of this hub sweeps expired Thing Descriptions (it holds the store's expiry-sweep lock): " +
        "this one takes over when it stops",
      start: () => {
        expirySweep.start();
        return Promise.resolve(expirySweep);
      },
      stop: (running) => running.stop(),
    });
    if (this.sweeping === undefined) expirySweep.start();
  }

  /**
   * Resumes the rollouts recorded as running. Of replicas, only the one holding the store's
   * `rollouts` role drives rollouts, or each would drive them once more (every write sent and every
   * step recorded once per replica): the others record those started through their API, and the
   * holder takes them up from the store (docs/replicas.md).
   */
  private async resumeRollouts(): Promise<void> {
    const { rollouts } = this;
    if (rollouts === undefined) return;
    if (this.config.replica && this.store.holdRole !== undefined) rollouts.watch();
    this.resuming = await this.elect({
      role: ROLLOUTS_ROLE,
      what: "the rollouts",
      standby:
        "another replica of this hub runs the rollouts (it holds the store's rollouts lock): " +
        "this one records those started through it for that one, and takes over when it stops",
      start: async () => {
        await rollouts.lead();
        return rollouts;
      },
      // Its session ended: it stops driving them, for the replica that holds the role next.
      stop: (running) => running.suspend(),
    });
    if (this.resuming === undefined) await rollouts.resume();
  }

  /**
   * Drift is judged from the Log, one replica at a time: the one holding the store's `drift` role,
   * or each would record every drift once more (and, under `revert`, write the old value back once
   * more). The others keep what drifts as the Log says (`GET /drift`), and the replica that takes
   * the role over judges from the Log as it is then (docs/replicas.md).
   */
  private async startDrift(): Promise<void> {
    const { drift } = this;
    const replica = this.config.replica && this.store.holdRole !== undefined;
    await drift.start({ judging: !replica });
    this.judging = await this.elect({
      role: DRIFT_ROLE,
      what: "the judging of drift",
      standby:
        "another replica of this hub judges drift (it holds the store's drift lock): " +
        "this one takes over when it stops",
      start: async (confirm) => {
        await drift.lead(confirm);
        return drift;
      },
      stop: (running) => running.suspend(),
    });
  }

  /** On a replica, work elected among the replicas (docs/replicas.md); undefined on a hub alone. */
  private async elect<T>(work: ElectedWork<T>): Promise<ElectedRole<T> | undefined> {
    const holdRole = this.store.holdRole?.bind(this.store);
    if (!this.config.replica || holdRole === undefined) return undefined;
    const elected = new ElectedRole<T>(
      work,
      { holdRole, onRoleGivenUp: this.store.onRoleGivenUp?.bind(this.store) },
      this.logger.child({ role: work.role }),
      this.config.electionMs,
    );
    await elected.start();
    return elected;
  }

  /**
   * On a replica, whether it runs the work the replicas do one at a time (`standby` while another
   * one does): the observation of the Things (undefined without it), the sweep of expired TDs and
   * the rollouts (undefined without bindings), and the judging of drift. Undefined on a hub alone.
   */
  electedStatus():
    | { observation?: RoleStatus; expirySweep: RoleStatus; rollouts?: RoleStatus; drift?: RoleStatus }
    | undefined {
    if (this.sweeping === undefined) return undefined;
    const observation = this.observing?.status();
    const rollouts = this.resuming?.status();
    const drift = this.judging?.status();
    return {
      ...(observation !== undefined && { observation }),
      expirySweep: this.sweeping.status(),
      ...(rollouts !== undefined && { rollouts }),
      ...(drift !== undefined && { drift }),
    };
  }

  /** The principal a bearer token stands for, or undefined when it stands for nobody. */
  authenticate(token: string): Principal | undefined {
    this.tokenDigests ??= {
      admin: tokenDigest(this.adminToken.token),
      ...(this.config.readToken !== undefined && { reader: tokenDigest(this.config.readToken) }),
    };
    if (tokenMatches(token, this.tokenDigests.admin)) return { name: "admin", admin: true };
    const reader = this.tokenDigests.reader;
    if (reader !== undefined && tokenMatches(token, reader)) return { name: "reader", admin: false };
    return undefined;
  }

  /** Committed Changes after a position, then live ones (see change-stream.ts). */
  follow(handler: (change: Change) => void, options?: FollowOptions): Follower {
    return followChanges(this.store, this.bus, handler, options);
  }

  /**
   * The first step of a stop, before the servers close: rollouts take no new step, and the
   * commands waiting on a Thing end at once, recorded as `interrupted` (Commands.abandon), so that
   * the clients that sent them are answered and a Thing that does not answer holds nothing up.
   */
  abandonCommands(): void {
    this.rollouts?.halt();
    this.commands?.abandon();
  }

  /** Stops background work, lets queued writes commit, and closes the store. Idempotent. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.abandonCommands();
      await this.sweeping?.close();
      await this.expirySweep.stop();
      // Rollouts stop taking steps (the running ones resume at the next start, or on the replica
      // that takes the rollouts role over once this one has given it up); drift stops following.
      await this.resuming?.close();
      await this.rollouts?.close();
      // The replica judging drift records what it decided, then gives the role up.
      await this.judging?.close();
      await this.drift.close();
      // Observation and commands first: what they have received is recorded before the store closes.
      await this.observing?.close();
      await this.observation?.close();
      await this.commands?.close();
      await this.bindings?.close();
      await this.secrets?.close();
      await this.mqttCredentials.close();
      await this.mqttCredentialStore.close();
      await this.notary.close();
      this.graph.close();
      await this.bus.close();
      await this.store.close();
    })();
    return this.closing;
  }
}
