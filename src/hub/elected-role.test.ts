// The election of work that a hub's replicas do one at a time, against a store's role as a lock
// in memory: who runs it, what standby says, and the takeover when the holder stops or loses it.
import pino from "pino";
import { describe, expect, it, vi } from "vitest";
import type { HeldRole } from "../store/index.js";
import { ElectedRole, type ElectedWork } from "./elected-role.js";

/** One named lock among several processes, as Store.holdRole takes it; `end` ends the holder's session. */
function lock() {
  let holder: { settle: (why: string) => void } | undefined;
  /** Told when a holder gives the lock up (Store.onRoleGivenUp). */
  const waiting = new Set<() => void>();
  const onRoleGivenUp = (_role: string, listener: () => void) => {
    waiting.add(listener);
    return Promise.resolve(() => void waiting.delete(listener));
  };
  const end = (why: string) => {
    const held = holder;
    holder = undefined;
    held?.settle(why);
  };
  const holdRole = (): Promise<HeldRole | undefined> => {
    if (holder !== undefined) return Promise.resolve(undefined);
    let settle: (why: string) => void = () => undefined;
    const lost = new Promise<string>((resolve) => (settle = resolve));
    const held = { settle };
    holder = held;
    return Promise.resolve({
      lost,
      confirm: () => Promise.resolve(holder === held),
      release: () => {
        if (holder === held) {
          end("given up");
          for (const told of waiting) told();
        }
        return Promise.resolve();
      },
    });
  };
  return { holdRole, onRoleGivenUp, end, held: () => holder !== undefined };
}

/** Work that counts its runs: `running` while started and not stopped. */
function work(name: string, log: string[]): ElectedWork<string> {
  return {
    role: "chores",
    what: "the chores",
    standby: "another replica does the chores",
    start: () => {
      log.push(`${name} starts`);
      return Promise.resolve(name);
    },
    stop: (running) => {
      log.push(`${running} stops`);
      return Promise.resolve();
    },
  };
}

const logger = pino({ level: "silent" });

describe("work elected among replicas", () => {
  it("runs on the replica holding the role, and the other takes it over when that one closes", async () => {
    const { holdRole } = lock();
    const log: string[] = [];
    const a = new ElectedRole(work("a", log), { holdRole }, logger, 10);
    const b = new ElectedRole(work("b", log), { holdRole }, logger, 10);
    await a.start();
    await b.start();
    expect(a.status()).toEqual({ state: "running" });
    expect(b.status()).toEqual({ state: "standby", reason: "another replica does the chores" });
    expect(b.running).toBeUndefined();

    await a.close();
    // The work stops before the role is given up: no moment with both running it.
    expect(log).toEqual(["a starts", "a stops"]);
    await vi.waitFor(() => expect(b.status()).toEqual({ state: "running" }), { timeout: 5_000 });
    expect(log).toEqual(["a starts", "a stops", "b starts"]);
    await b.close();
  });

  it("stops the work when the holder's session ends, and takes the role again once it is free", async () => {
    const { holdRole, end, held } = lock();
    const log: string[] = [];
    const a = new ElectedRole(work("a", log), { holdRole }, logger, 10);
    await a.start();
    end("the session ended");
    await vi.waitFor(() => expect(log).toEqual(["a starts", "a stops", "a starts"]), { timeout: 5_000 });
    expect(a.status()).toEqual({ state: "running" });
    await a.close();
    expect(held()).toBe(false);
  });

  it("lets the work ask whether its replica still holds the role", async () => {
    const { holdRole, end } = lock();
    const log: string[] = [];
    let confirm: () => Promise<boolean> = () => Promise.resolve(true);
    const a = new ElectedRole(
      {
        ...work("a", log),
        start: (asked) => {
          confirm = asked;
          return Promise.resolve("a");
        },
      },
      { holdRole },
      logger,
      60_000,
    );
    await a.start();
    expect(await confirm()).toBe(true);
    end("the session ended");
    expect(await confirm()).toBe(false);
    await a.close();
  });

  it("takes the role over as soon as its holder gives it up, not at its next try", async () => {
    const roles = lock();
    const log: string[] = [];
    // The next try is a minute away: only being told of the release can start b within the test.
    const a = new ElectedRole(work("a", log), roles, logger, 60_000);
    const b = new ElectedRole(work("b", log), roles, logger, 60_000);
    await a.start();
    await b.start();
    expect(b.status().state).toBe("standby");
    await a.close();
    await vi.waitFor(() => expect(b.status()).toEqual({ state: "running" }), { timeout: 5_000 });
    expect(log).toEqual(["a starts", "a stops", "b starts"]);
    await b.close();
  });

  it("tries again at once when the role was given up while it was trying", async () => {
    const roles = lock();
    const log: string[] = [];
    const a = new ElectedRole(work("a", log), roles, logger, 60_000);
    await a.start();
    // b's try is refused (a holds the role), and a gives the role up before b hears the refusal.
    let asked = false;
    let answer: () => void = () => undefined;
    const b = new ElectedRole(
      work("b", log),
      {
        holdRole: async () => {
          const held = await roles.holdRole();
          asked = true;
          await new Promise<void>((resolve) => (answer = resolve));
          return held;
        },
        onRoleGivenUp: roles.onRoleGivenUp,
      },
      logger,
      60_000,
    );
    const starting = b.start();
    await vi.waitFor(() => expect(asked).toBe(true));
    await a.close();
    answer();
    await starting;
    // Its next try is a minute away: it was told of the release during this one, and tries again.
    await vi.waitFor(() => {
      answer();
      expect(b.status()).toEqual({ state: "running" });
    });
    await b.close();
  });

  it("says why it stands by when the store cannot be asked, and runs the work once it can", async () => {
    const { holdRole } = lock();
    let down = true;
    const log: string[] = [];
    const a = new ElectedRole(
      work("a", log),
      { holdRole: () => (down ? Promise.reject(new Error("connection refused")) : holdRole()) },
      logger,
      10,
    );
    await a.start();
    expect(a.status()).toEqual({
      state: "standby",
      reason: "the store could not say whether another replica runs the chores (connection refused)",
    });
    down = false;
    await vi.waitFor(() => expect(a.status()).toEqual({ state: "running" }), { timeout: 5_000 });
    await a.close();
  });
});
