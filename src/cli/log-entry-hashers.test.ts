// The hashing threads of `things verify`, run from the build (a worker runs JavaScript, not the
// TypeScript sources): what they are given is theirs, whatever kind of buffer the caller holds.
import { afterEach, beforeAll, describe, expect, it } from "vitest";
import { canonicalChangeJson } from "../core/canonical-json.js";
import type { Change } from "../core/change.js";
import { hashEntries } from "../core/log-entry.js";
import { changeLeafHash, hashToHex } from "../core/merkle.js";
import type { EntryHashers as Hashers } from "./log-entry-hashers.js";

const BUILT = new URL("../../dist/cli/log-entry-hashers.js", import.meta.url).href;

/** `count` lines as `/log/entries` serves them: each Change's canonical JSON with its leaf hash. */
function entryLines(count: number, first = 1): string {
  let text = "";
  for (let seq = first; seq < first + count; seq++) {
    const change = {
      seq,
      thing: "urn:example:lamp",
      affordance: "on",
      kind: "reported",
      value: seq % 2 === 0,
    };
    const json = canonicalChangeJson(change);
    text += `${json.slice(0, -1)},"leaf":"${hashToHex(changeLeafHash(change as unknown as Change))}"}\n`;
  }
  return text;
}

describe("EntryHashers", () => {
  let EntryHashers: typeof Hashers;
  let hashers: Hashers | undefined;

  beforeAll(async () => {
    ({ EntryHashers } = (await import(BUILT)) as { EntryHashers: typeof Hashers });
    expect(EntryHashers.available()).toBe(true);
  });

  afterEach(async () => {
    await hashers?.close();
    hashers = undefined;
  });

  it("hashes lines held in a slice of Node's shared Buffer pool (a short Buffer.from, as PostgreSQL's log reader makes)", async () => {
    hashers = new EntryHashers(1);
    const chunk = Buffer.from(entryLines(3), "utf8");
    // Small Buffers are views into one pooled ArrayBuffer (8 KiB on Node 20, 64 KiB on Node 24),
    // which Node 22 and later refuse to transfer to a thread (DataCloneError); Node 20 copied it.
    expect(chunk.byteLength).toBeLessThan(chunk.buffer.byteLength);
    const hashed = await hashers.hash(chunk);
    expect(hashed.count).toBe(3);
    expect(hashed).toEqual(hashEntries(chunk));
    expect(hashed.leaves.some((byte) => byte !== 0)).toBe(true);
  });

  it("leaves the caller's Buffer whole: what it hands to the thread is a copy", async () => {
    hashers = new EntryHashers(1);
    // Buffer.alloc: a Buffer with an ArrayBuffer of its own, which could be handed over (and the
    // caller's Buffer emptied), as Buffer.concat makes past half of Buffer.poolSize.
    const text = entryLines(40);
    const chunk = Buffer.alloc(Buffer.byteLength(text));
    chunk.write(text, "utf8");
    expect(chunk.buffer.byteLength).toBe(chunk.byteLength);
    const hashed = await hashers.hash(chunk);
    expect(hashed.count).toBe(40);
    expect(chunk.length).toBe(Buffer.byteLength(text));
    expect(chunk.toString("utf8")).toBe(text);
    expect(hashed).toEqual(hashEntries(chunk));
  });

  it("hashes a view into a larger buffer as the view's lines only", async () => {
    hashers = new EntryHashers(2);
    const before = entryLines(2, 1);
    const inside = entryLines(5, 3);
    const whole = new TextEncoder().encode(before + inside + entryLines(2, 8));
    const view = whole.subarray(Buffer.byteLength(before), Buffer.byteLength(before + inside));
    const [first, second] = await Promise.all([hashers.hash(view), hashers.hash(view)]);
    expect(first?.count).toBe(5);
    expect(first).toEqual(hashEntries(view));
    expect(second).toEqual(first);
    expect(whole.byteLength).toBe(Buffer.byteLength(before + inside) + Buffer.byteLength(entryLines(2, 8)));
  });
});
