import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { generateKeyPairSync } from "node:crypto";
import type { Change } from "./change.js";
import { ValidationError } from "./errors.js";
import {
  LogVerifier,
  checkpointBody,
  signCheckpoint,
  signCheckpointAsync,
  verifyCheckpoint,
  verifyLog,
  type Checkpoint,
  type UnsignedCheckpoint,
} from "./checkpoint.js";
import { MerkleFrontier, changeLeafHash, hashToHex } from "./merkle.js";

const hub = generateKeyPairSync("ed25519");
const otherHub = generateKeyPairSync("ed25519");
const ORIGIN = "urn:hub:lab";
const T0 = Date.UTC(2024, 4, 1, 12);

function changeAt(seq: number): Change {
  return {
    seq,
    hlc: `${(T0 + seq).toString(16).padStart(12, "0")}-00000000-urn:hub:lab`,
    thing: `urn:example:sensor-${seq % 3}`,
    affordance: "temperature",
    kind: "reported",
    value: 20 + seq / 10,
    previous: seq > 1 ? 20 + (seq - 1) / 10 : undefined,
    cause: { actor: "hub:poll", via: "http" },
  };
}

/** A Log of `size` Changes and the hub's checkpoints at the given sizes. */
function logWith(size: number, checkpointSizes: number[]): { changes: Change[]; checkpoints: Checkpoint[] } {
  const changes = Array.from({ length: size }, (_, i) => changeAt(i + 1));
  const roots = new Map<number, string>();
  const frontier = new MerkleFrontier();
  roots.set(0, hashToHex(frontier.root()));
  for (const change of changes) {
    frontier.append(changeLeafHash(change));
    roots.set(frontier.size, hashToHex(frontier.root()));
  }
  const checkpoints = checkpointSizes.map((n) =>
    signCheckpoint(
      { origin: ORIGIN, size: n, root: roots.get(n) ?? "", time: new Date(T0 + 1000 * n).toISOString() },
      hub.privateKey,
    ),
  );
  return { changes, checkpoints };
}

function thrown(action: () => unknown): ValidationError {
  try {
    action();
  } catch (error) {
    if (error instanceof ValidationError) return error;
    throw error;
  }
  throw new Error("expected a ValidationError");
}

const unsigned: UnsignedCheckpoint = {
  origin: ORIGIN,
  size: 3,
  root: "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
  time: "2024-05-01T12:00:00.000Z",
};

const hexHash = fc.uint8Array({ minLength: 32, maxLength: 32 }).map((b) => Buffer.from(b).toString("hex"));
const rfc3339 = fc
  .date({ min: new Date("0001-01-01T00:00:00Z"), max: new Date("9999-12-31T23:59:59Z"), noInvalidDate: true })
  .map((d) => d.toISOString());
const unsignedCheckpoint: fc.Arbitrary<UnsignedCheckpoint> = fc.record({
  origin: fc.stringMatching(/^[^\s\p{Cc}]{1,40}$/u),
  size: fc.oneof(fc.nat(1000), fc.constant(Number.MAX_SAFE_INTEGER)),
  root: hexHash,
  time: fc.oneof(
    rfc3339,
    fc.constantFrom(
      "2024-05-01T14:00:00+02:00",
      "1990-12-31T23:59:60Z",
      "2024-02-29T00:00:00.123456789-00:30",
    ),
  ),
});

describe("checkpoint signatures", () => {
  it("signs the four-line note body", () => {
    expect(checkpointBody(unsigned)).toBe(
      "urn:hub:lab\n3\nrra8/idLcKFPsGel5VeCZNsPqbUa9eC6FZFY8yngbnc=\n2024-05-01T12:00:00.000Z\n",
    );
    const signed = signCheckpoint(unsigned, hub.privateKey);
    expect(signed).toEqual({
      ...unsigned,
      signature: expect.stringMatching(/^[A-Za-z0-9+/]{86}==$/) as unknown,
    });
    expect(verifyCheckpoint(signed, hub.publicKey)).toEqual({
      origin: ORIGIN,
      size: 3,
      root: Buffer.from(unsigned.root, "hex"),
      time: unsigned.time,
    });
  });

  it("signs on the thread pool exactly as it signs here, and refuses a malformed checkpoint", async () => {
    // Ed25519 signatures are deterministic: the same key and body give the same signature.
    for (const checkpoint of fc.sample(unsignedCheckpoint, { numRuns: 20, seed: 7 })) {
      const signed = await signCheckpointAsync(checkpoint, hub.privateKey);
      expect(signed).toEqual(signCheckpoint(checkpoint, hub.privateKey));
      expect(verifyCheckpoint(signed, hub.publicKey).size).toBe(checkpoint.size);
    }
    await expect(signCheckpointAsync({ ...unsigned, root: "not hex" }, hub.privateKey)).rejects.toThrow(
      ValidationError,
    );
    await expect(signCheckpointAsync(unsigned, "not a key")).rejects.toThrow();
  });

  it("round-trips any well-formed checkpoint", () => {
    fc.assert(
      fc.property(unsignedCheckpoint, (checkpoint) => {
        const signed = signCheckpoint(checkpoint, hub.privateKey);
        const verified = verifyCheckpoint(JSON.parse(JSON.stringify(signed)) as Checkpoint, hub.publicKey);
        expect(hashToHex(verified.root)).toBe(checkpoint.root);
        expect(verified.size).toBe(checkpoint.size);
      }),
      { numRuns: 50 },
    );
  });

  it("fails the signature when any signed field changes", () => {
    fc.assert(
      fc.property(unsignedCheckpoint, fc.nat(), (checkpoint, n) => {
        const signed = signCheckpoint(checkpoint, hub.privateKey);
        const otherRoot = checkpoint.root.replace(/^./, (c) => (c === "0" ? "1" : "0"));
        const tampered: Checkpoint[] = [
          { ...signed, origin: `${signed.origin}x` },
          { ...signed, size: signed.size === 0 ? 1 : signed.size - 1 },
          { ...signed, root: otherRoot },
          {
            ...signed,
            time: signed.time === "2000-01-01T00:00:00Z" ? "2000-01-01T00:00:01Z" : "2000-01-01T00:00:00Z",
          },
          {
            ...signed,
            signature: signCheckpoint({ ...checkpoint, size: checkpoint.size === 0 ? 1 : 0 }, hub.privateKey)
              .signature,
          },
        ];
        const forged = tampered[n % tampered.length] as Checkpoint;
        expect(thrown(() => verifyCheckpoint(forged, hub.publicKey)).errors[0]?.pointer).toBe("/signature");
      }),
      { numRuns: 50 },
    );
  });

  it("fails the signature under another hub's key", () => {
    const signed = signCheckpoint(unsigned, otherHub.privateKey);
    expect(thrown(() => verifyCheckpoint(signed, hub.publicKey)).message).toMatch(/does not verify/);
    expect(() => verifyCheckpoint(signed, otherHub.publicKey)).not.toThrow();
  });

  it("takes keys as KeyObjects, PEM or DER", () => {
    const pkcs8Pem = hub.privateKey.export({ format: "pem", type: "pkcs8" });
    const pkcs8Der = new Uint8Array(hub.privateKey.export({ format: "der", type: "pkcs8" }));
    const spkiPem = hub.publicKey.export({ format: "pem", type: "spki" });
    const spkiDer = new Uint8Array(hub.publicKey.export({ format: "der", type: "spki" }));
    for (const privateKey of [hub.privateKey, pkcs8Pem, pkcs8Der]) {
      const signed = signCheckpoint(unsigned, privateKey);
      for (const publicKey of [hub.publicKey, spkiPem, spkiDer, pkcs8Pem]) {
        expect(() => verifyCheckpoint(signed, publicKey)).not.toThrow();
      }
    }
  });

  it("refuses keys that are not Ed25519", () => {
    const ec = generateKeyPairSync("ec", { namedCurve: "P-256" });
    expect(() => signCheckpoint(unsigned, ec.privateKey)).toThrow(/Ed25519 private key/);
    expect(() => signCheckpoint(unsigned, hub.publicKey)).toThrow(ValidationError);
    expect(() => verifyCheckpoint(signCheckpoint(unsigned, hub.privateKey), ec.publicKey)).toThrow(
      /Ed25519 public key/,
    );
    expect(() => verifyCheckpoint(signCheckpoint(unsigned, hub.privateKey), "not a key")).toThrow(
      ValidationError,
    );
  });

  it("names each malformed field", () => {
    const cases: Array<[Record<string, unknown>, string]> = [
      [{ origin: "" }, "/origin"],
      [{ origin: "urn:hub:lab\nforged" }, "/origin"],
      [{ origin: "two words" }, "/origin"],
      [{ size: -1 }, "/size"],
      [{ size: 1.5 }, "/size"],
      [{ size: "3" }, "/size"],
      [{ root: unsigned.root.toUpperCase() }, "/root"],
      [{ root: unsigned.root.slice(2) }, "/root"],
      [{ time: "2024-05-01 12:00:00Z" }, "/time"],
      [{ time: "2024-02-30T12:00:00Z" }, "/time"],
      [{ time: "2023-02-29T12:00:00Z" }, "/time"],
      [{ time: "2024-05-01T24:00:00Z" }, "/time"],
      [{ time: "2024-05-01T12:00:00" }, "/time"],
      [{ time: "2024-05-01T12:00:00+25:00" }, "/time"],
    ];
    for (const [change, pointer] of cases) {
      const bad: UnsignedCheckpoint = { ...unsigned, ...change };
      expect(
        thrown(() => signCheckpoint(bad, hub.privateKey)).errors.map((e) => e.pointer),
        pointer,
      ).toEqual([pointer]);
      expect(
        thrown(() => verifyCheckpoint({ ...bad, signature: "" }, hub.publicKey)).errors[0]?.pointer,
      ).toBe(pointer);
    }
    const signed = signCheckpoint(unsigned, hub.privateKey);
    for (const signature of ["", "abc", `${signed.signature.slice(0, 85)}B==`, `${signed.signature}=`]) {
      expect(thrown(() => verifyCheckpoint({ ...signed, signature }, hub.publicKey)).errors[0]?.pointer).toBe(
        "/signature",
      );
    }
  });

  it("checks the origin when asked to", () => {
    const signed = signCheckpoint(unsigned, hub.privateKey);
    expect(() => verifyCheckpoint(signed, hub.publicKey, { origin: ORIGIN })).not.toThrow();
    expect(
      thrown(() => verifyCheckpoint(signed, hub.publicKey, { origin: "urn:hub:other" })).errors[0]?.pointer,
    ).toBe("/origin");
  });
});

describe("verifyLog", () => {
  it("accepts an untouched Log and says how much of it the checkpoints prove", () => {
    const { changes, checkpoints } = logWith(40, [0, 1, 7, 16, 33]);
    expect(verifyLog(changes, checkpoints, hub.publicKey)).toEqual({ ok: true, size: 40, provenSize: 33 });
    expect(verifyLog(changes, [...checkpoints].reverse(), hub.publicKey, { origin: ORIGIN })).toEqual({
      ok: true,
      size: 40,
      provenSize: 33,
    });
    expect(verifyLog([], [], hub.publicKey)).toEqual({ ok: true, size: 0, provenSize: 0 });
    expect(verifyLog(changes, [], hub.publicKey)).toEqual({ ok: true, size: 40, provenSize: 0 });
  });

  it("pins a tampered Change to its seq when there is a checkpoint at every size", () => {
    const size = 12;
    const { changes, checkpoints } = logWith(
      size,
      Array.from({ length: size + 1 }, (_, i) => i),
    );
    for (let seq = 1; seq <= size; seq++) {
      const tampered = changes.map((c) => (c.seq === seq ? { ...c, value: 99 } : c));
      const result = verifyLog(tampered, checkpoints, hub.publicKey);
      expect(result).toMatchObject({ ok: false, firstBadSeq: seq, problem: "root-mismatch" });
      expect(result.ok === false && result.reason).toMatch(new RegExp(`seq ${seq} differs`));
    }
  });

  it("finds any tampered field of any Change, from the last checkpoint that still holds", () => {
    const tamperings: Array<(c: Change) => Change> = [
      (c) => ({ ...c, value: "forged" }),
      (c) => ({ ...c, previous: 0 }),
      (c) => ({ ...c, thing: "urn:example:other" }),
      (c) => ({ ...c, kind: "desired" }),
      (c) => ({ ...c, time: "2000-01-01T00:00:00.000Z" }),
      (c) => ({ ...c, at: "2000-01-01T00:00:00.000Z" }),
      (c) => ({ ...c, cause: { ...c.cause, actor: "mallory" } }),
      (c) => ({ ...c, cause: { ...c.cause, via: undefined } }),
    ];
    fc.assert(
      fc.property(
        fc
          .integer({ min: 1, max: 60 })
          .chain((size) =>
            fc.tuple(
              fc.constant(size),
              fc.uniqueArray(fc.integer({ min: 0, max: size }), { maxLength: 6 }),
              fc.integer({ min: 1, max: size }),
              fc.nat(tamperings.length - 1),
            ),
          ),
        ([size, checkpointSizes, seq, how]) => {
          const { changes, checkpoints } = logWith(size, checkpointSizes);
          const tamper = tamperings[how] as (c: Change) => Change;
          const tampered = changes.map((c) => (c.seq === seq ? tamper(c) : c));
          const result = verifyLog(tampered, checkpoints, hub.publicKey);
          const covered = checkpointSizes.some((n) => n >= seq);
          if (covered) {
            const lastGood = Math.max(0, ...checkpointSizes.filter((n) => n < seq));
            expect(result).toMatchObject({ ok: false, firstBadSeq: lastGood + 1, problem: "root-mismatch" });
          } else {
            // Nothing signed covers it yet: the verifier can only say how far the proof reaches.
            expect(result).toEqual({ ok: true, size, provenSize: Math.max(0, ...checkpointSizes) });
          }
        },
      ),
      { numRuns: 100 },
    );
  });

  it("reports a missing, repeated or reordered Change at its position", () => {
    const { changes, checkpoints } = logWith(10, [10]);
    const without4 = changes.filter((c) => c.seq !== 4);
    expect(verifyLog(without4, checkpoints, hub.publicKey)).toEqual({
      ok: false,
      firstBadSeq: 4,
      problem: "sequence",
      reason: "expected seq 4, found 5",
    });
    const repeated = [...changes.slice(0, 6), changes[5] as Change, ...changes.slice(6)];
    expect(verifyLog(repeated, checkpoints, hub.publicKey)).toMatchObject({
      firstBadSeq: 7,
      problem: "sequence",
    });
    const swapped = [...changes];
    [swapped[2], swapped[3]] = [swapped[3] as Change, swapped[2] as Change];
    expect(verifyLog(swapped, checkpoints, hub.publicKey)).toMatchObject({
      firstBadSeq: 3,
      problem: "sequence",
    });
    const renumbered = changes.map((c) => (c.seq === 2 ? { ...c, seq: "2" as unknown as number } : c));
    expect(verifyLog(renumbered, checkpoints, hub.publicKey)).toMatchObject({
      firstBadSeq: 2,
      reason: 'expected seq 2, found "2"',
    });
  });

  it("reports a Log cut short of a signed checkpoint", () => {
    const { changes, checkpoints } = logWith(10, [5, 10]);
    expect(verifyLog(changes.slice(0, 8), checkpoints, hub.publicKey)).toMatchObject({
      ok: false,
      firstBadSeq: 9,
      problem: "missing-changes",
    });
  });

  it("reports a forged or foreign checkpoint from the last one that holds", () => {
    const { changes, checkpoints } = logWith(20, [5, 10, 15]);
    const [five, ten, fifteen] = checkpoints as [Checkpoint, Checkpoint, Checkpoint];
    const cases: Array<[Checkpoint, string]> = [
      [{ ...ten, size: 11 }, "does not verify"],
      [{ ...ten, root: fifteen.root }, "does not verify"],
      [{ ...ten, time: "2030-01-01T00:00:00.000Z" }, "does not verify"],
      [signCheckpoint(ten, otherHub.privateKey), "does not verify"],
      [{ ...ten, time: "yesterday" }, "/time"],
    ];
    for (const [forged, why] of cases) {
      const result = verifyLog(changes, [five, forged, fifteen], hub.publicKey);
      expect(result, why).toMatchObject({ ok: false, firstBadSeq: 6, problem: "bad-checkpoint" });
      expect(result.ok === false && result.reason).toContain(why);
    }
    // Beyond the end of the Log, a forged checkpoint is still reported as forged.
    expect(verifyLog(changes, [five, { ...ten, size: 25 }], hub.publicKey)).toMatchObject({
      firstBadSeq: 6,
      problem: "bad-checkpoint",
    });
    expect(verifyLog(changes, checkpoints, otherHub.publicKey)).toMatchObject({
      firstBadSeq: 1,
      problem: "bad-checkpoint",
    });
    expect(verifyLog(changes, [five, { ...ten, size: Number.NaN }], hub.publicKey)).toMatchObject({
      firstBadSeq: 1,
      problem: "bad-checkpoint",
    });
    expect(verifyLog(changes, checkpoints, hub.publicKey, { origin: "urn:hub:other" })).toMatchObject({
      firstBadSeq: 1,
      problem: "bad-checkpoint",
    });
  });

  it("catches a validly signed checkpoint whose root is not this Log's", () => {
    const { changes } = logWith(6, []);
    const honest = logWith(6, [3, 6]).checkpoints;
    const wrongRoot = signCheckpoint({ ...(honest[1] as Checkpoint), size: 3 }, hub.privateKey);
    expect(verifyLog(changes, [wrongRoot, honest[1] as Checkpoint], hub.publicKey)).toMatchObject({
      ok: false,
      firstBadSeq: 1,
      problem: "root-mismatch",
    });
  });

  it("blames the range after the last proven size when a second checkpoint of one size disagrees", () => {
    // The Log's own checkpoints at 2 and 6 hold; one kept apart at 6 signs another root (the
    // history it covered was rewritten since): seq 3..6, whichever of the two comes first.
    const { changes, checkpoints } = logWith(6, [2, 6]);
    const kept = signCheckpoint({ ...(checkpoints[1] as Checkpoint), root: "ab".repeat(32) }, hub.privateKey);
    for (const order of [
      [...checkpoints, kept],
      [kept, ...checkpoints],
    ]) {
      const verdict = verifyLog(changes, order, hub.publicKey);
      expect(verdict).toMatchObject({ ok: false, firstBadSeq: 3, problem: "root-mismatch" });
      expect(verdict.ok ? "" : verdict.reason).toContain("one of seq 3..6 differs");
    }
  });

  it("reports a Change that has no JSON form", () => {
    const { changes, checkpoints } = logWith(5, [5]);
    const broken = changes.map((c) => (c.seq === 3 ? { ...c, value: Number.NaN } : c));
    expect(verifyLog(broken, checkpoints, hub.publicKey)).toMatchObject({
      ok: false,
      firstBadSeq: 3,
      problem: "unhashable-change",
    });
  });

  it("gives the same verdict page by page as all at once", () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 30 }), fc.integer({ min: 1, max: 7 }), (size, pageSize) => {
        const { changes, checkpoints } = logWith(size, [0, Math.floor(size / 2), size]);
        const verifier = new LogVerifier(checkpoints, hub.publicKey);
        for (let i = 0; i < changes.length; i += pageSize) {
          for (const change of changes.slice(i, i + pageSize)) expect(verifier.push(change)).toBeUndefined();
        }
        expect(verifier.end()).toEqual(verifyLog(changes, checkpoints, hub.publicKey));
      }),
      { numRuns: 30 },
    );
  });
});
