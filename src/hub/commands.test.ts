// Reads through the hub answer with the device's value before its `reported` Change commits; the
// recording follows, in order with the Thing's later commands, and a failed one is logged.
import { pino } from "pino";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import type { Cause, Change, RegisteredThingDescription } from "../core/index.js";
import { InProcessBus } from "../bus/index.js";
import { bindingError } from "../bindings/index.js";
import type { Binding, Target } from "../bindings/index.js";
import { SqliteStore } from "../store/index.js";
import { Commands } from "./commands.js";
import { createHubClock } from "./hub-clock.js";
import { Ingest, type Report } from "./ingest.js";
import { POLL_INTERVAL_TERM, RECORD_TERM } from "./observation.js";

const ID = "urn:test:commands:lamp";
const FORMS = [{ href: "http://127.0.0.1:1/level" }];

const TD: RegisteredThingDescription = {
  "@context": "https://www.w3.org/2022/wot/td/v1.1",
  id: ID,
  title: "Lamp",
  securityDefinitions: { nosec_sc: { scheme: "nosec" } },
  security: "nosec_sc",
  properties: {
    level: { type: "integer", forms: FORMS },
    every: { type: "integer", readOnly: true, [RECORD_TERM]: "every", forms: FORMS },
  },
};

/** A promise and what settles it. */
function gate(): { promise: Promise<void>; open: () => void; fail: (error: Error) => void } {
  let open: () => void = () => undefined;
  let fail: (error: Error) => void = () => undefined;
  const promise = new Promise<void>((resolve, reject) => {
    open = resolve;
    fail = reject;
  });
  return { promise, open, fail };
}

describe("Commands: reads through the hub", () => {
  let store: SqliteStore;
  let ingest: Ingest;
  /** Each ingest call, in the order made, and whether it reached the store. */
  let calls: { kind: string; affordance?: string; committed: boolean }[];
  /** When set, ingest calls wait for it before they append. */
  let hold: ReturnType<typeof gate> | undefined;
  let deviceValue: number | undefined;
  /** When set, the device's writes fail with it. */
  let writeError: Error | undefined;
  let errors: unknown[];
  let commands: Commands;
  const requester = { actor: "admin", via: "http" } as const;

  beforeEach(async () => {
    store = new SqliteStore({ path: ":memory:" });
    const clock = createHubClock("urn:test:hub", undefined, () => new Date());
    ingest = new Ingest(store, new InProcessBus(), clock);
    await store.describe({ td: TD, cause: { actor: "test" }, hlc: clock.stamp().hlc });
    calls = [];
    hold = undefined;
    deviceValue = 3;
    writeError = undefined;
    errors = [];
    const binding: Pick<Binding, "readProperty" | "writeProperty"> = {
      readProperty: async (_target: Target) => deviceValue,
      writeProperty: async (_target: Target, value: unknown) => {
        if (writeError !== undefined) throw writeError;
        deviceValue = value as number;
      },
    };
    const logger = pino({ level: "error" }, { write: (line: string) => errors.push(JSON.parse(line)) });
    commands = new Commands(
      {
        store,
        bindings: { schemes: ["http"], bindingFor: () => binding as Binding },
        thing: async () => ({ td: TD, version: 1 }),
        secrets: async () => ({}),
        ingest: async (thing: string, reports: readonly Report[], cause: Cause): Promise<Change[]> => {
          const call = { kind: reports[0]?.kind ?? "", affordance: reports[0]?.affordance, committed: false };
          calls.push(call);
          if (hold !== undefined) await hold.promise;
          const changes = await ingest.ingest(thing, reports, cause);
          call.committed = true;
          return changes;
        },
        logger,
      },
      { actionPollMs: 1000, actionTimeoutMs: 10_000 },
    );
  });

  afterEach(async () => {
    hold?.open();
    await commands.close();
    await store.close();
  });

  it("answers with the device's value before its reported Change is committed, then records it", async () => {
    hold = gate();
    expect(await commands.readProperty(ID, "level", requester)).toBe(3);
    // Answered while the recording still waits to reach the store.
    await Promise.resolve();
    expect(calls.filter((c) => c.committed)).toEqual([]);
    hold.open();
    await commands.recorded(ID);
    expect(calls).toEqual([{ kind: "reported", affordance: "level", committed: true }]);
    const [latest] = await store.streamsAt(ID, undefined, ["reported"]);
    expect(latest?.latest).toMatchObject({ kind: "reported", affordance: "level", value: 3 });
  });

  it('records a value once while it stays the same ("change"), every read with "every", in read order', async () => {
    hold = gate();
    await commands.readProperty(ID, "level", requester);
    await commands.readProperty(ID, "level", requester);
    await commands.readProperty(ID, "every", requester);
    await commands.readProperty(ID, "every", requester);
    deviceValue = 4;
    await commands.readProperty(ID, "level", requester);
    hold.open();
    await commands.recorded();
    const reported = await store.history({ thing: ID, kinds: ["reported"], order: "asc", limit: 100 });
    expect(reported.map((c) => [c.affordance, c.value])).toEqual([
      ["level", 3],
      ["every", 3],
      ["every", 3],
      ["level", 4],
    ]);
  });

  it("records a write's Changes after those of the values read before it", async () => {
    hold = gate();
    await commands.readProperty(ID, "level", requester);
    const writing = commands.writeProperty(ID, "level", 7, requester);
    await Promise.resolve();
    hold.open();
    await writing;
    expect(calls.map((c) => [c.kind, c.affordance])).toEqual([
      ["reported", "level"],
      ["desired", "level"],
      ["completed", "level"],
    ]);
    const kinds = (await store.history({ thing: ID, order: "asc", limit: 100 })).map((c) => c.kind);
    expect(kinds.slice(-3)).toEqual(["reported", "desired", "completed"]);
  });

  it("records a write whose answer never came as failed with an unknown outcome, and a refused one without", async () => {
    const href = "http://127.0.0.1:1/level";
    writeError = bindingError({ thing: ID, href, op: "writeproperty" }, "timeout", "PUT failed: timeout", {
      outcome: "unknown",
    });
    await expect(commands.writeProperty(ID, "level", 7, requester)).rejects.toThrow("PUT failed");
    writeError = bindingError({ thing: ID, href, op: "writeproperty" }, "unreachable", "PUT failed: refused");
    await expect(commands.writeProperty(ID, "level", 8, requester)).rejects.toThrow("PUT failed");
    const failed = await store.history({ thing: ID, kinds: ["failed"], order: "asc", limit: 10 });
    expect(failed.map((c) => c.value)).toEqual([
      { reason: "timeout", message: `${ID}: PUT failed: timeout`, outcome: "unknown" },
      { reason: "unreachable", message: `${ID}: PUT failed: refused` },
    ]);
  });

  it("answers a read the device answered with no value as a failure when the schema wants one", async () => {
    deviceValue = undefined;
    const read = commands.readProperty(ID, "level", requester);
    await expect(read).rejects.toThrow("the Thing answered no value for level");
    const [failed] = await store.history({ thing: ID, kinds: ["failed"], order: "asc", limit: 10 });
    expect(failed?.value).toMatchObject({ reason: "invalid" });
    expect(await store.history({ thing: ID, kinds: ["reported"], order: "asc", limit: 10 })).toEqual([]);
  });

  it("a recording that fails is logged; the read had its answer", async () => {
    hold = gate();
    expect(await commands.readProperty(ID, "level", requester)).toBe(3);
    hold.fail(new Error("disk full"));
    await commands.recorded(ID);
    expect(errors).toEqual([
      expect.objectContaining({
        msg: "a value read through the hub was not recorded",
        thing: ID,
        affordance: "level",
      }),
    ]);
    expect(await store.history({ thing: ID, kinds: ["reported"], order: "asc", limit: 100 })).toEqual([]);
  });
});

describe("Commands: a property observed for a client with URI variables", () => {
  it("polls as often as the TD asks (hyperthings:pollInterval), as the hub's own observation does", async () => {
    const store = new SqliteStore({ path: ":memory:" });
    const td: RegisteredThingDescription = {
      ...TD,
      [POLL_INTERVAL_TERM]: 2000,
      properties: {
        level: {
          type: "integer",
          observable: true,
          [POLL_INTERVAL_TERM]: 250,
          uriVariables: { unit: { type: "string" } },
          forms: [{ href: "http://127.0.0.1:1/level{?unit}" }],
        },
        other: { type: "integer", uriVariables: { unit: { type: "string" } }, forms: FORMS },
      },
    };
    const targets: Target[] = [];
    const binding: Pick<Binding, "observeProperty"> = {
      observeProperty: async (target: Target) => {
        targets.push(target);
        return { close: async () => undefined };
      },
    };
    const commands = new Commands(
      {
        store,
        bindings: { schemes: ["http"], bindingFor: () => binding as Binding },
        thing: async () => ({ td, version: 1 }),
        secrets: async () => ({}),
        ingest: async () => [],
        logger: pino({ level: "silent" }),
      },
      { actionPollMs: 1000, actionTimeoutMs: 10_000 },
    );
    try {
      const ignore = () => undefined;
      await commands.subscribe(ID, "property", "level", { unit: "F" }, ignore, ignore);
      await commands.subscribe(ID, "property", "other", { unit: "F" }, ignore, ignore);
      expect(targets.map((t) => [t.href, t.pollIntervalMs])).toEqual([
        ["http://127.0.0.1:1/level?unit=F", 250],
        ["http://127.0.0.1:1/level", 2000],
      ]);
    } finally {
      await commands.close();
      await store.close();
    }
  });
});
