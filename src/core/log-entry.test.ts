import { describe, expect, it } from "vitest";
import fc from "fast-check";
import { generateKeyPairSync } from "node:crypto";
import { canonicalChangeJson } from "./canonical-json.js";
import type { Change } from "./change.js";
import { LogVerifier, signCheckpoint, type Checkpoint } from "./checkpoint.js";
import { EntryReader, canonicalChangeSeq, hashEntries } from "./log-entry.js";
import { MerkleFrontier, changeLeafHash, hashToHex } from "./merkle.js";

const utf8 = (text: string): Uint8Array => new TextEncoder().encode(text);
/** The text as it is sent: UTF-8 has no lone surrogates (the encoder writes U+FFFD for them). */
const sent = (text: string): string => new TextDecoder().decode(utf8(text));

/** Every member name in a JSON value, at any depth. */
function namesIn(value: unknown): string[] {
  if (Array.isArray(value)) return value.flatMap(namesIn);
  if (typeof value !== "object" || value === null) return [];
  return Object.entries(value).flatMap(([name, member]) => [name, ...namesIn(member)]);
}

/** The line `/log/entries` serves: the canonical JSON, then the recorded leaf as a last member. */
function hubLine(change: Change, leaf = hashToHex(changeLeafHash(change))): string {
  const { leaf: _recorded, ...content } = change;
  return `${canonicalChangeJson(content).slice(0, -1)},"leaf":"${leaf}"}`;
}

function seqOf(text: string): number {
  const bytes = utf8(text);
  return canonicalChangeSeq(bytes, 0, bytes.length);
}

// Member names of every kind (a Change's own, `leaf`, `__proto__`, non-ASCII, escaped) and values
// of every kind (fc.jsonValue: unicode strings, doubles, nested objects and arrays).
const memberName = fc.oneof(
  fc.constantFrom("seq", "value", "cause", "leaf", "__proto__", "a\nb", "é", "\u{1f600}", "\ue000", ""),
  fc.string({ maxLength: 6 }),
  fc.string({ unit: "binary", maxLength: 4 }),
);
const jsonObject = fc.dictionary(memberName, fc.jsonValue({ maxDepth: 3 }), { maxKeys: 6 });
const changeLike = fc
  .tuple(fc.oneof(fc.nat(1_000_000), fc.constant(Number.MAX_SAFE_INTEGER)), jsonObject)
  .map(([seq, rest]) => {
    const { leaf: _leaf, ...content } = rest;
    return { ...content, seq } as unknown as Change;
  });

/** Random edits of a text: a character replaced, inserted or removed, among JSON's own. */
const edited = (text: string) =>
  fc
    .tuple(
      fc.nat(Math.max(0, text.length - 1)),
      fc.constantFrom("replace", "insert", "remove"),
      // No line feed: it separates entries.
      fc.constantFrom(...' \t\r{}[],:"\\-+.eE0159aflnrtu\u0000\u007f\u00e9\ud800'),
    )
    .map(([at, how, c]) =>
      how === "remove"
        ? text.slice(0, at) + text.slice(at + 1)
        : text.slice(0, at) + c + text.slice(how === "replace" ? at + 1 : at),
    );

describe("canonicalChangeSeq", () => {
  it("accepts only text that is canonicalChangeJson of what it parses to, and gives its seq (property)", () => {
    const text = fc.oneof(
      changeLike.map((c) => canonicalChangeJson(c)),
      changeLike.chain((c) => edited(canonicalChangeJson(c))),
      changeLike.map((c) => JSON.stringify(c)),
      changeLike.map((c) => JSON.stringify(c, null, 1)),
      fc.json(),
    );
    fc.assert(
      fc.property(text, (t) => {
        const seq = seqOf(t);
        if (seq < 0) return;
        const parsed = JSON.parse(sent(t)) as Record<string, unknown>;
        expect(canonicalChangeJson(parsed)).toBe(sent(t));
        expect(parsed.seq).toBe(seq);
        expect(Object.hasOwn(parsed, "leaf")).toBe(false);
      }),
      { numRuns: 3000 },
    );
  });

  it("recognises the canonical JSON of a Change with plain member names (property)", () => {
    const plain = fc.record(
      {
        seq: fc.nat(1_000_000_000),
        hlc: fc.string(),
        thing: fc.string({ unit: "binary" }),
        kind: fc.string({ unit: "grapheme" }),
        affordance: fc.string(),
        value: fc.jsonValue({ maxDepth: 4 }),
        previous: fc.double({ noNaN: true, noDefaultInfinity: true }),
        cause: fc.record({ actor: fc.string(), via: fc.string() }, { requiredKeys: ["actor"] }),
      },
      { requiredKeys: ["seq", "hlc", "thing", "kind", "cause"] },
    );
    fc.assert(
      fc.property(plain, (change) => {
        const text = canonicalChangeJson(change);
        // Lone surrogates and names beyond printable ASCII or with escapes are left to JSON.parse;
        // everything else is read.
        const plainNames = namesIn(change).every((name) => /^[\x20-\x21\x23-\x5b\x5d-\x7e]*$/.test(name));
        if (/\\ud[89a-f]/i.test(text) || !plainNames) return;
        expect(seqOf(text)).toBe(change.seq);
      }),
      { numRuns: 2000 },
    );
  });

  it("reads a number as canonical exactly when it is ECMAScript's form of itself (property)", () => {
    const spelled = fc
      .double({ noNaN: true, noDefaultInfinity: true })
      .chain((n) =>
        fc.constantFrom(
          String(n),
          n.toExponential(),
          n.toFixed(2),
          n.toPrecision(3),
          n.toPrecision(17),
          String(n).toUpperCase(),
          `${String(n)}0`,
          `-${String(n)}`,
        ),
      );
    fc.assert(
      fc.property(spelled, (text) => {
        const isJsonNumber = /^-?(0|[1-9]\d*)(\.\d+)?([eE][+-]?\d+)?$/.test(text);
        const canonical = isJsonNumber && String(Number(text)) === text;
        expect(seqOf(`{"seq":1,"v":${text}}`)).toBe(canonical ? 1 : -1);
      }),
      { numRuns: 3000 },
    );
  });

  it("refuses whitespace, unsorted or repeated members, a top-level leaf, other escapes, and -0", () => {
    expect(seqOf('{"a":[1,"x",{"b":null}],"seq":7}')).toBe(7);
    for (const text of [
      '{"seq": 7}',
      '{"seq":7,"a":1}',
      '{"a":1,"a":2,"seq":7}',
      '{"leaf":"00","seq":7}',
      '{"seq":7,"v":"\\u000a"}',
      '{"seq":7,"v":"\\/"}',
      '{"seq":7,"v":"\\u00E9"}',
      '{"seq":7,"v":-0}',
      '{"seq":7,"v":1.50}',
      '{"seq":7.5}',
      '{"seq":"7"}',
      '{"v":1}',
      "[7]",
      '{"seq":7}x',
    ]) {
      expect(seqOf(text), text).toBe(-1);
    }
    // Not well-formed UTF-8 (a lone continuation byte) inside a string.
    const bytes = utf8('{"seq":7,"v":"ab"}');
    bytes[14] = 0x80;
    expect(canonicalChangeSeq(bytes, 0, bytes.length)).toBe(-1);
  });
});

describe("EntryReader", () => {
  it("hashes a hub line's bytes to the Change's leaf and compares the recorded one (property)", () => {
    const reader = new EntryReader();
    fc.assert(
      fc.property(changeLike, fc.boolean(), (change, recordedRight) => {
        const leaf = hashToHex(changeLeafHash(change));
        const recorded = recordedRight ? leaf : leaf.replace(/^./, (c) => (c === "0" ? "1" : "0"));
        const bytes = utf8(`\n${hubLine(change, recorded)}\n`);
        const fast = reader.readFast(bytes, 1, bytes.length - 1);
        if (fast === undefined) return; // a text left to JSON.parse (checked above)
        expect(fast.seq).toBe(change.seq);
        expect(hashToHex(fast.leaf)).toBe(leaf);
        expect(fast.recordedMatches).toBe(recordedRight);
        expect(fast.recorded).toBe(recordedRight ? undefined : recorded);
      }),
      { numRuns: 2000 },
    );
  });

  it("reads a line without a recorded leaf, and leaves a recorded leaf that is not hex to JSON.parse", () => {
    const reader = new EntryReader();
    const change = { seq: 3, hlc: "h", thing: "t", kind: "reported", cause: { actor: "a" } } as Change;
    const bare = utf8(canonicalChangeJson(change));
    expect(reader.readFast(bare, 0, bare.length)).toMatchObject({
      seq: 3,
      recordedMatches: false,
      recorded: undefined,
    });
    const upper = utf8(hubLine(change, hashToHex(changeLeafHash(change)).toUpperCase()));
    expect(reader.readFast(upper, 0, upper.length)).toBeUndefined();
  });
});

const hub = generateKeyPairSync("ed25519");
const ORIGIN = "urn:hub:lab";

function changeAt(seq: number): Change {
  return {
    seq,
    hlc: `${(1_700_000_000_000 + seq).toString(16).padStart(12, "0")}-00000000-urn:hub:lab`,
    thing: `urn:example:sensor-${seq % 3}`,
    affordance: seq % 2 === 0 ? "temperature" : "température",
    kind: "reported",
    value: seq % 5 === 0 ? { reading: 20 + seq / 10, unit: "°C" } : 20 + seq / 10,
    cause: seq % 7 === 0 ? { via: "http", actor: "admin" } : { actor: "hub:poll", via: "http" },
  };
}

function signedLog(size: number, every: number): { changes: Change[]; checkpoints: Checkpoint[] } {
  const changes = Array.from({ length: size }, (_, i) => changeAt(i + 1));
  const frontier = new MerkleFrontier();
  const checkpoints: Checkpoint[] = [];
  for (const change of changes) {
    frontier.append(changeLeafHash(change));
    if (frontier.size % every === 0 || frontier.size === size) {
      checkpoints.push(
        signCheckpoint(
          {
            origin: ORIGIN,
            size: frontier.size,
            root: hashToHex(frontier.root()),
            time: "2024-05-01T12:00:00Z",
          },
          hub.privateKey,
        ),
      );
    }
  }
  return { changes, checkpoints };
}

describe("LogVerifier.pushEntry", () => {
  const { changes, checkpoints } = signedLog(40, 4);
  const lineForms = {
    hub: (c: Change) => hubLine(c),
    stringify: (c: Change) => JSON.stringify({ ...c, leaf: hashToHex(changeLeafHash(c)) }),
  };

  function viaEntries(lines: readonly string[]) {
    const verifier = new LogVerifier(checkpoints, hub.publicKey, { origin: ORIGIN });
    const body = utf8(lines.map((l) => `${l}\n`).join(""));
    let start = 0;
    let failure;
    while (start < body.length && failure === undefined) {
      const end = body.indexOf(0x0a, start);
      failure = verifier.pushEntry(body, start, end);
      start = end + 1;
    }
    return { verdict: failure ?? verifier.end(), mismatch: verifier.firstLeafMismatch };
  }

  /** The lines hashed apart in runs of `runs` lines at a time, then given in order to pushHashed. */
  function viaHashed(lines: readonly string[], run: number) {
    const verifier = new LogVerifier(checkpoints, hub.publicKey, { origin: ORIGIN });
    let failure;
    for (let i = 0; i < lines.length && failure === undefined; i += run) {
      const chunk = utf8(
        lines
          .slice(i, i + run)
          .map((l) => `${l}\n`)
          .join(""),
      );
      failure = verifier.pushHashed(hashEntries(chunk));
    }
    return { verdict: failure ?? verifier.end(), mismatch: verifier.firstLeafMismatch };
  }

  function viaObjects(lines: readonly string[]) {
    const verifier = new LogVerifier(checkpoints, hub.publicKey, { origin: ORIGIN });
    for (const line of lines) {
      const failure = verifier.push(JSON.parse(line) as Change);
      if (failure !== undefined) return failure;
    }
    return verifier.end();
  }

  it("verifies an intact Log in the hub's form and in any other JSON form", () => {
    for (const form of Object.values(lineForms)) {
      expect(viaEntries(changes.map(form))).toEqual({
        verdict: { ok: true, size: 40, provenSize: 40 },
        mismatch: undefined,
      });
    }
  });

  it("gives push's verdict for any edit of any line, hashed one by one or apart in runs, and names a Change that no longer hashes to its recorded leaf (property)", () => {
    const form = fc.constantFrom(...Object.values(lineForms));
    const scenario = fc
      .tuple(form, fc.integer({ min: 0, max: changes.length - 1 }))
      .chain(([toLine, index]) => {
        const lines = changes.map(toLine);
        return edited(lines[index] as string).map((line) => ({ lines, index, line }));
      });
    fc.assert(
      fc.property(scenario, fc.integer({ min: 1, max: 50 }), ({ lines, index, line }, run) => {
        const altered = lines.map((l, i) => (i === index ? sent(line) : l));
        const { verdict, mismatch } = viaEntries(altered);
        expect(viaHashed(altered, run)).toEqual({ verdict, mismatch });
        let parsed: unknown;
        try {
          parsed = JSON.parse(sent(line));
        } catch {
          parsed = undefined;
        }
        if (typeof parsed !== "object" || parsed === null || Array.isArray(parsed)) {
          expect(verdict).toMatchObject({ ok: false, problem: "malformed-entry", firstBadSeq: index + 1 });
          return;
        }
        expect(verdict).toEqual(viaObjects(altered));
        const change = parsed as Change;
        let actual: string | undefined;
        try {
          actual = hashToHex(changeLeafHash(change));
        } catch {
          actual = undefined;
        }
        if (change.seq === index + 1 && actual !== undefined && actual !== change.leaf) {
          expect(mismatch).toEqual({ seq: index + 1, recorded: change.leaf, actual });
        } else {
          expect(mismatch).toBeUndefined();
        }
      }),
      { numRuns: 1500 },
    );
  });

  it("names the first altered Change while the root only says which checkpoint's range differs", () => {
    const lines = changes.map(lineForms.hub);
    lines[10] = lines[10]?.replace(/"value":[^,]+/, '"value":999') ?? "";
    const { verdict, mismatch } = viaEntries(lines);
    expect(verdict).toMatchObject({ ok: false, problem: "root-mismatch", firstBadSeq: 9 });
    expect(mismatch).toMatchObject({ seq: 11, recorded: hashToHex(changeLeafHash(changeAt(11))) });
  });
});
